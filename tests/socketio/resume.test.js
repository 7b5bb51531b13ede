// A Socket.IO client that loses its connection reconnects by itself; when
// it joins again with `since` it gets every message it missed.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ChatServer, NativeClient, SioClient, until } from './harness.js';

let server;
const clients = [];

before(async () => {
  server = await ChatServer.start();
});

after(async () => {
  for (const client of clients) client.close();
  await server?.close();
});

for (const transport of ['websocket', 'polling']) {
  test(`a ${transport} client that drops resumes with join + since`, async () => {
    const room = `resume-${transport}`;
    // Reconnects half a second after a drop: the messages sent meanwhile
    // can only arrive through the join's `since`.
    const reader = await SioClient.connect(server.url, {
      auth: { name: 'reader' },
      transports: [transport],
      reconnectionDelay: 500,
      randomizationFactor: 0,
    });
    clients.push(reader);
    const writer = await NativeClient.connect(server.url, 'writer');
    clients.push(writer);
    await writer.request({ type: 'join', room });

    // What a client does: keep the last seq seen, and on every connect
    // join from there. `timeline` is everything it got, in order.
    let lastSeq = 0;
    const timeline = [];
    const joins = [];
    const take = (m) => {
      timeline.push([m.seq, m.content]);
      lastSeq = Math.max(lastSeq, m.seq);
    };
    const join = async () => {
      const joined = await reader.request('join', { room, since: lastSeq });
      joins.push(joined);
      joined.messages.forEach(take);
    };
    reader.socket.on('message', (m) => {
      if (m.room === room && m.type === 'message') take(m);
    });
    await join();
    reader.socket.on('connect', join);

    for (let i = 1; i <= 3; i++) await writer.request({ type: 'send', room, text: `before ${i}` });
    await until(() => lastSeq === 3, 'the first three messages live');

    // The transport drops, as in a network failure; more is sent while
    // the client waits to reconnect.
    const firstSession = reader.socket.id;
    reader.socket.io.engine.close();
    for (let i = 1; i <= 4; i++) await writer.request({ type: 'send', room, text: `missed ${i}` });
    await until(() => joins.length === 2, 'the join after reconnecting');
    assert.notEqual(reader.socket.id, firstSession, 'a new session');
    assert.equal(joins[1].complete, true);
    assert.ok(joins[1].messages.length > 0, 'the missed messages came with the join');

    await writer.request({ type: 'send', room, text: 'after' });
    await until(() => lastSeq === 8, 'the message after the reconnection');
    assert.deepEqual(timeline, [
      [1, 'before 1'],
      [2, 'before 2'],
      [3, 'before 3'],
      [4, 'missed 1'],
      [5, 'missed 2'],
      [6, 'missed 3'],
      [7, 'missed 4'],
      [8, 'after'],
    ]);
  });
}
