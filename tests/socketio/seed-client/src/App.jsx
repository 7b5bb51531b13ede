import React, { useState } from 'react';
import { io } from 'socket.io-client';

const socket = io(import.meta.env.VITE_CHAT_URL || 'http://localhost:3000');

const App = () => {
  const [room, setRoom] = useState('');
  const [message, setMessage] = useState('');
  const [messages, setMessages] = useState([]);

  const handleJoin = () => {
    socket.emit('join', room);
  };

  const handleMessage = () => {
    socket.emit('message', { room, content: message });
    setMessage('');
  };

  socket.on('message', (data) => {
    setMessages([...messages, data]);
  });

  return (
    <div>
      <input type="text" value={room} onChange={(e) => setRoom(e.target.value)} />
      <input type="text" value={message} onChange={(e) => setMessage(e.target.value)} />
      <button onClick={handleJoin}>加入聊天室</button>
      <button onClick={handleMessage}>发送消息</button>
      <ul>
        {messages.map((msg, index) => (
          <li key={index}>{msg.content}</li>
        ))}
      </ul>
    </div>
  );
};

export default App;
