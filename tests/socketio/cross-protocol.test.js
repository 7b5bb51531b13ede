// One set of rooms, one sequence, one history for both protocols: messages
// sent over Socket.IO reach native clients and the reverse, and everyone
// sees the same seq order.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ChatServer, NativeClient, SioClient, until } from './harness.js';

let server;
const clients = [];

before(async () => {
  // Room for bursts from both senders without tripping the rate limit.
  server = await ChatServer.start(['--send-rate', '200', '--send-burst', '200']);
});

after(async () => {
  for (const client of clients) client.close();
  await server?.close();
});

async function sio(name, options = {}) {
  const c = await SioClient.connect(server.url, { auth: { name }, ...options });
  clients.push(c);
  return c;
}

async function native(name) {
  const c = await NativeClient.connect(server.url, name);
  clients.push(c);
  return c;
}

test('Socket.IO to native and native to Socket.IO, one sequence', async () => {
  const room = 'bridge';
  const alice = await sio('alice');
  const bob = await native('bob');
  await alice.request('join', room);
  const joined = await bob.request({ type: 'join', room });
  assert.equal(joined.type, 'joined');
  assert.deepEqual(joined.members.map((m) => m.name).sort(), ['alice', 'bob']);

  // Socket.IO sender, native receiver.
  const ack = await alice.request('message', { room, content: 'from Socket.IO', id: 'sio-1' });
  assert.deepEqual(Object.keys(ack).sort(), ['id', 'room', 'seq', 'ts']);
  const atBob = await bob.waitFor((f) => f.type === 'message' && f.id === 'sio-1', 'the message at bob');
  assert.equal(atBob.text, 'from Socket.IO');
  assert.equal(atBob.seq, ack.seq);
  assert.equal(atBob.content, undefined, 'native frames are as the contract has them');

  // Native sender, Socket.IO receiver.
  const nativeAck = await bob.request({ type: 'send', room, text: 'from /ws', id: 'ws-1' });
  assert.equal(nativeAck.type, 'ack');
  assert.equal(nativeAck.seq, ack.seq + 1);
  const atAlice = await alice.waitFor('message', (m) => m.id === 'ws-1', 'the message at alice');
  assert.equal(atAlice.content, 'from /ws');
  assert.equal(atAlice.from.name, 'bob');
  assert.equal(atAlice.seq, nativeAck.seq);
});

test('interleaved senders on both protocols: identical seq order everywhere', async () => {
  const room = 'interleaved';
  const sioSender = await sio('sio-sender');
  const pollingReader = await sio('polling-reader', { transports: ['polling'] });
  const wsReader = await sio('ws-reader', { transports: ['websocket'] });
  const nativeSender = await native('native-sender');
  const nativeReader = await native('native-reader');
  for (const c of [sioSender, pollingReader, wsReader]) await c.request('join', room);
  for (const c of [nativeSender, nativeReader]) await c.request({ type: 'join', room });

  const perSender = 40;
  const sends = [];
  for (let i = 0; i < perSender; i++) {
    sioSender.socket.emit('message', { room, content: `sio ${i}`, id: `s-${i}` });
    sends.push(nativeSender.request({ type: 'send', room, text: `native ${i}`, id: `n-${i}` }));
  }
  await Promise.all(sends);

  const total = perSender * 2;
  const sioIds = (c) => c.received('message').filter((m) => m.room === room).map((m) => [m.seq, m.id]);
  const nativeIds = (c) => c.messages(room).map((m) => [m.seq, m.id]);
  await until(
    () =>
      [sioSender, pollingReader, wsReader].every((c) => sioIds(c).length === total) &&
      [nativeSender, nativeReader].every((c) => nativeIds(c).length === total),
    `${total} messages at every client`,
  );
  const reference = nativeIds(nativeReader);
  assert.deepEqual(
    reference.map(([seq]) => seq),
    Array.from({ length: total }, (_, i) => reference[0][0] + i),
    'seq has no gaps and no repeats',
  );
  for (const c of [sioSender, pollingReader, wsReader]) assert.deepEqual(sioIds(c), reference);
  assert.deepEqual(nativeIds(nativeSender), reference);
  // Each sender's own messages keep their order.
  const order = (prefix) => reference.map(([, id]) => id).filter((id) => id.startsWith(prefix));
  assert.deepEqual(order('s-'), Array.from({ length: perSender }, (_, i) => `s-${i}`));
  assert.deepEqual(order('n-'), Array.from({ length: perSender }, (_, i) => `n-${i}`));

  // One history for both.
  const page = await pollingReader.request('history', { room, limit: 200 });
  assert.deepEqual(page.messages.map((m) => [m.seq, m.id]), reference);
  const nativePage = await nativeReader.request({ type: 'history', room, limit: 200 });
  assert.deepEqual(nativePage.messages.map((m) => [m.seq, m.id]), reference);
});

test('presence crosses protocols, and Socket.IO clients get the system message', async () => {
  const room = 'presence';
  const alice = await sio('alice');
  const bob = await native('bob');
  await alice.request('join', room);
  await bob.request({ type: 'join', room });
  await alice.waitFor('presence', (p) => p.event === 'join' && p.user.name === 'bob');

  const carol = await sio('carol');
  await carol.request('join', room);
  await bob.waitFor((f) => f.type === 'presence' && f.event === 'join' && f.user.name === 'carol', 'carol joining');

  carol.close();
  const left = await bob.waitFor((f) => f.type === 'presence' && f.event === 'leave', 'carol leaving');
  assert.equal(left.user.name, 'carol');
  const system = await alice.waitFor('message', (m) => m.type === 'system', 'the system message');
  assert.deepEqual(system, { type: 'system', room, content: 'carol left the room' });
  assert.ok(!bob.frames.some((f) => f.type === 'message' && f.room === room), 'native clients get presence only');

  bob.close();
  await alice.waitFor('message', (m) => m.type === 'system' && m.content === 'bob left the room');
});
