// Changes to messages over Socket.IO (docs/protocol.md §10.2, §3
// "Changes"): `edit`, `delete`, `react` and `pin` with ack callbacks that
// carry the change's own seq, errors to the callback, the changes received
// as events in the room's order by Socket.IO and native members alike, and
// a Socket.IO client that resumes with `since` getting the changes it
// missed in `events`.

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

async function sio(name) {
  const c = await SioClient.connect(server.url, { auth: { name }, transports: ['websocket'] });
  clients.push(c);
  return c;
}

/** The room's entries (messages and changes) a client received, as `type seq`. */
function entries(client, room) {
  const kinds = ['message', 'edited', 'deleted', 'reaction', 'pinned'];
  return client.events
    .filter(([name, payload]) => kinds.includes(name) && payload?.room === room && payload.seq)
    .map(([name, payload]) => `${name} ${payload.seq}`);
}

test('edit, react, reply and delete: acks with their own seq, events in order on both protocols', async () => {
  const room = 'changes';
  const alice = await sio('alice');
  const bob = await sio('bob');
  const carol = await NativeClient.connect(server.url, 'carol');
  clients.push(carol);
  await alice.request('join', room);
  await bob.request('join', room);
  await carol.request({ type: 'join', room });

  const sent = await alice.request('message', { room, content: 'hello' });
  const edited = await alice.request('edit', { room, seq: sent.seq, text: 'hello, edited', id: 'e-1' });
  assert.deepEqual([edited.room, edited.id, edited.seq], [room, 'e-1', sent.seq + 1]);
  const again = await alice.request('edit', { room, seq: sent.seq, text: 'hello, edited', id: 'e-1' });
  assert.deepEqual([again.seq, again.duplicate], [edited.seq, true]);
  const reacted = await bob.request('react', { room, seq: sent.seq, emoji: '👍' });
  const replied = await bob.request('message', { room, content: 'hi!', reply_to: sent.seq });
  const deleted = await alice.request('delete', { room, seq: sent.seq });
  assert.deepEqual(
    [reacted.seq, replied.seq, deleted.seq],
    [sent.seq + 2, sent.seq + 3, sent.seq + 4],
  );

  const want = [
    `message ${sent.seq}`,
    `edited ${edited.seq}`,
    `reaction ${reacted.seq}`,
    `message ${replied.seq}`,
    `deleted ${deleted.seq}`,
  ];
  await until(() => entries(bob, room).length >= want.length, 'bob has every entry');
  assert.deepEqual(entries(bob, room), want);
  const reply = bob.received('message').find((m) => m.seq === replied.seq);
  assert.deepEqual([reply.reply_to, reply.quote.text, reply.content], [sent.seq, 'hello, edited', 'hi!']);
  const reaction = bob.received('reaction')[0];
  assert.deepEqual(reaction.reactions, [{ emoji: '👍', count: 1, users: [reaction.from] }]);
  const gone = bob.received('deleted')[0];
  assert.deepEqual([gone.type, gone.target], ['deleted', sent.seq]);

  // The native member gets the same frames in the same order.
  await until(() => carol.frames.some((f) => f.type === 'deleted'), 'carol sees the deletion');
  const native = carol.frames
    .filter((f) => f.room === room && f.seq && !f.ref && f.type !== 'joined')
    .map((f) => `${f.type} ${f.seq}`);
  assert.deepEqual(native, want);
});

test('refusals reach the callback with the contract codes', async () => {
  const room = 'refusals';
  const alice = await sio('alice');
  const bob = await sio('bob');
  await alice.request('join', room);
  await bob.request('join', room);
  const { seq } = await alice.request('message', { room, content: 'mine' });
  const codes = [];
  for (const [event, payload] of [
    ['edit', { room, seq, text: 'yours?' }],
    ['delete', { room, seq }],
    ['pin', { room, seq }],
    ['react', { room, seq: seq + 40, emoji: '👍' }],
    ['react', { room, seq, emoji: '👍', remove: true }],
    ['edit', 'not an object'],
  ]) {
    codes.push((await bob.request(event, payload)).error?.code);
  }
  assert.deepEqual(codes, ['forbidden', 'forbidden', 'forbidden', 'not_found', 'not_found', 'bad_request']);
});

test('a client away during changes gets them in `events` when it rejoins with since', async () => {
  const room = 'resume';
  const alice = await sio('alice');
  await alice.request('join', room);
  const first = await alice.request('message', { room, content: 'one' });
  const second = await alice.request('message', { room, content: 'two' });
  await alice.request('edit', { room, seq: first.seq, text: 'one, edited' });
  await alice.request('react', { room, seq: second.seq, emoji: '🎉' });
  await fetch(`${server.url}/api/rooms/${room}/pins/${second.seq}`, { method: 'PUT' });

  const late = await sio('late');
  const joined = await late.request('join', { room, since: second.seq });
  assert.deepEqual(
    joined.events.map((e) => [e.type, e.target]),
    [
      ['edited', first.seq],
      ['reaction', second.seq],
      ['pinned', second.seq],
    ],
  );
  assert.equal(joined.pins[0].seq, second.seq);
  assert.equal(joined.pins[0].content, 'two');
  assert.equal(joined.events[2].message.content, 'two');
  const fresh = await late.request('join', room);
  assert.deepEqual(
    fresh.messages.map((m) => [m.content, m.edited_at !== undefined, m.reactions?.[0]?.emoji]),
    [
      ['one, edited', true, undefined],
      ['two', false, '🎉'],
    ],
  );
});

test('search: by words, as a callback reply, with content on every result', async () => {
  const room = 'searchable';
  const alice = await sio('alice');
  await alice.request('join', room);
  await alice.request('message', { room, content: '今天天气很好' });
  await alice.request('message', { room, content: 'the weather is nice today' });
  const found = await alice.request('search', { query: '天气', room });
  assert.deepEqual(
    found.results.map((m) => m.content),
    ['今天天气很好'],
  );
  assert.equal(found.query, '天气');
  const everywhere = await alice.request('search', 'WEATHER');
  assert.deepEqual(everywhere.results.map((m) => m.text), ['the weather is nice today']);
  assert.equal((await alice.request('search', { query: '' })).error.code, 'bad_request');
});
