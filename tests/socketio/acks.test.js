// Ack callbacks receive the native reply without `type`; errors reach a
// callback as {error: {code, message}} and otherwise come as an `error`
// event; the limits and codes are the native protocol's.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ChatServer, SioClient } from './harness.js';

let server;
const clients = [];

before(async () => {
  server = await ChatServer.start(['--send-rate', '2', '--send-burst', '3', '--max-rooms-per-connection', '2']);
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

test('every event answers its callback', async () => {
  const alice = await sio('alice');
  const welcome = await alice.waitFor('welcome');
  assert.equal(welcome.user.name, 'alice');
  assert.equal(welcome.session, alice.socket.id, 'the socket id is the session id');

  const joined = await alice.request('join', 'acks');
  assert.deepEqual(Object.keys(joined).sort(), [
    'complete', 'last_read', 'members', 'messages', 'room', 'seq', 'unread', 'unread_mentions',
  ]);
  assert.equal(joined.room, 'acks');
  assert.equal(joined.seq, 0);
  assert.deepEqual(joined.members, [welcome.user]);

  const ack = await alice.request('message', { room: 'acks', content: 'one', id: 'c-1' });
  assert.equal(ack.seq, 1);
  assert.equal(ack.id, 'c-1');
  assert.equal(typeof ack.ts, 'number');
  const again = await alice.request('message', { room: 'acks', content: 'one', id: 'c-1' });
  assert.deepEqual(again, { ...ack, duplicate: true }, 'a retry by id is answered with the original');
  const byText = await alice.request('message', { room: 'acks', text: 'two' });
  assert.equal(byText.seq, 2);

  assert.deepEqual(await alice.request('typing', 'acks'), { room: 'acks' });
  const page = await alice.request('history', { room: 'acks', before: 3, limit: 1 });
  assert.deepEqual(Object.keys(page).sort(), ['messages', 'more', 'room']);
  assert.equal(page.more, true);
  assert.equal(page.messages[0].content, 'two');

  const rejoined = await alice.request('join', { room: 'acks', since: 1 });
  assert.deepEqual(rejoined.messages.map((m) => m.text), ['two']);
  assert.equal(rejoined.complete, true);
  assert.deepEqual(await alice.request('leave', 'acks'), { room: 'acks' });
  assert.deepEqual(alice.received('error'), []);
});

test('errors: to the callback when there is one, else as an error event', async () => {
  const bob = await sio('bob');
  const code = async (event, payload) => {
    const answer = await bob.request(event, payload);
    assert.deepEqual(Object.keys(answer), ['error'], JSON.stringify(answer));
    assert.equal(typeof answer.error.message, 'string');
    return answer.error.code;
  };
  assert.equal(await code('message', { room: 'errors', content: 'x' }), 'not_joined');
  assert.equal(await code('typing', 'errors'), 'not_joined');
  assert.equal(await code('join', ''), 'invalid_room');
  assert.equal(await code('join', 'x'.repeat(65)), 'invalid_room');
  assert.equal(await code('join', 42), 'bad_request');
  assert.equal(await code('dance', 'errors'), 'unknown_type');
  assert.equal(await code('history', { room: 'errors', limit: 0 }), 'bad_request');
  await bob.request('join', 'errors');
  assert.equal(await code('message', { room: 'errors', content: 'x'.repeat(4001) }), 'too_long');
  assert.equal(await code('message', { room: 'errors', content: '' }), 'bad_request');
  assert.equal(await code('message', { room: 'errors' }), 'bad_request');
  await bob.request('join', 'errors-2');
  assert.equal(await code('join', 'errors-3'), 'forbidden');

  // Three sends pass (the burst), the fourth is over the rate.
  const answers = [];
  for (let i = 0; i < 4; i++) answers.push(await bob.request('message', { room: 'errors', content: `m${i}` }));
  assert.equal(answers[3].error?.code, 'rate_limited', JSON.stringify(answers));

  // Without a callback the same refusal comes as an `error` event.
  bob.socket.emit('message', { room: 'nowhere', content: 'x' });
  const error = await bob.waitFor('error');
  assert.equal(error.code, 'not_joined');
  assert.equal(typeof error.message, 'string');

  // Errors never close the connection.
  assert.ok(bob.socket.connected);
  assert.deepEqual(await bob.request('leave', 'errors'), { room: 'errors' });
});

test('binary payloads are refused with bad_request, and the connection stays', async () => {
  const carol = await sio('carol');
  const answer = await carol.request('message', { room: 'r', content: Buffer.from('bytes') });
  assert.equal(answer.error.code, 'bad_request');
  assert.ok(carol.socket.connected);
  assert.equal((await carol.request('join', 'r')).room, 'r');
});

test('without callbacks, replies come as events named after their native type', async () => {
  const dave = await sio('dave');
  dave.socket.emit('join', 'events');
  const joined = await dave.waitFor('joined');
  assert.equal(joined.room, 'events');
  dave.socket.emit('message', { room: 'events', content: 'hi', id: 'e-1' });
  const ack = await dave.waitFor('ack');
  assert.equal(ack.id, 'e-1');
  const message = await dave.waitFor('message');
  assert.equal(message.seq, ack.seq);
  assert.ok(
    dave.events.findIndex(([e]) => e === 'ack') < dave.events.findIndex(([e]) => e === 'message'),
    'the ack comes before the broadcast, as on /ws',
  );
  dave.socket.emit('leave', 'events');
  assert.deepEqual(await dave.waitFor('left'), { room: 'events' });
});
