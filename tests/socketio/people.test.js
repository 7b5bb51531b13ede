// People over Socket.IO with the real `socket.io-client` (docs/protocol.md
// §10.1, §10.2, §3 "People"): a guest who reconnects with `auth: {guest}`
// is the same user, a tampered credential is a `connect_error`, `read`
// answers its callback once stored and reaches the person's other
// connections as a `read` event, `rooms` and `directory` take no
// argument, and `dm` opens a room that a native client is told about.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ChatServer, NativeClient, SioClient } from './harness.js';

let server;
const clients = [];

before(async () => {
  server = await ChatServer.start();
});

after(async () => {
  for (const client of clients) client.close();
  await server?.close();
});

async function sio(auth) {
  const c = await SioClient.connect(server.url, { auth, transports: ['websocket'] });
  clients.push(c);
  return c;
}

test('a guest is one person across connections, and a tampered credential is refused', async () => {
  const first = await sio({ name: 'ana' });
  const welcome = await first.waitFor('welcome');
  assert.match(welcome.guest_token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const second = await sio({ name: 'ana', guest: welcome.guest_token });
  const again = await second.waitFor('welcome');
  assert.equal(again.user.id, welcome.user.id);

  const tampered = `${welcome.guest_token.slice(0, -2)}xx`;
  await assert.rejects(
    sio({ name: 'eve', guest: tampered }),
    (error) => /guest credential not accepted/.test(error.message),
  );

  // The read marker moved on one connection reaches the other.
  const bob = await NativeClient.connect(server.url, 'bob');
  clients.push(bob);
  await bob.request({ type: 'join', room: 'people' });
  await first.request('join', 'people');
  await second.request('join', 'people');
  for (const text of ['one', 'two', 'three']) {
    await bob.request({ type: 'send', room: 'people', text });
  }
  const marked = await first.request('read', { room: 'people', seq: 2 });
  assert.deepEqual(marked, { room: 'people', seq: 2, unread: 1, unread_mentions: 0 });
  const news = await second.waitFor('read', (r) => r.room === 'people');
  assert.equal(news.seq, 2);

  const rooms = await first.request('rooms');
  assert.deepEqual(rooms.rooms.map((r) => [r.room, r.unread]), [['people', 1]]);
  assert.equal(rooms.rooms[0].last.content, 'three');
  const directory = await first.request('directory');
  assert.deepEqual(directory.rooms.map((r) => r.room), ['people']);

  // A direct message, opened from Socket.IO: the native peer hears of it.
  const dm = await first.request('dm', bob.welcome.user.id);
  assert.match(dm.room, /^dm:/);
  const added = await bob.waitFor((f) => f.type === 'room_added', 'room_added');
  assert.equal(added.room, dm.room);
  assert.equal(added.with.id, welcome.user.id);
});
