// Bans (docs/protocol.md §3 "error", §11): an operator's room ban reaches a
// ChatClient as `room_removed` and the room is no longer followed (no
// reconnect re-joins it); a server ban's 1008 ends the client for good
// (`closed` with a RefusedError), with no reconnection loop.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ChatServer, Clients, nextEvent, sleep } from './harness.js';
import { RefusedError, ServerError } from '../src/index.js';

let server;
const clients = new Clients();

before(async () => {
  server = await ChatServer.start();
});

after(async () => {
  clients.closeAll();
  await server?.close();
});

function api(method, path) {
  return fetch(`${server.url}${path}`, { method });
}

test('a room ban: room_removed, and the room is followed no more', async () => {
  const client = clients.make(server, { name: 'mallory' });
  const welcome = await client.connect();
  await client.join('general');
  await client.join('random');

  const removed = nextEvent(client, 'room_removed');
  assert.equal((await api('PUT', `/api/rooms/general/bans/${welcome.user.id}`)).status, 200);
  const [room, error] = await removed;
  assert.equal(room, 'general');
  assert.ok(error instanceof ServerError);
  assert.equal(error.code, 'forbidden');
  assert.equal(error.frame.room, 'general');

  // A reconnect re-joins the rooms still followed, not this one.
  const rejoined = [];
  client.on('joined', (frame) => rejoined.push(frame.room));
  const failed = [];
  client.on('rejoin_failed', (name) => failed.push(name));
  const again = nextEvent(client, 'joined');
  await server.restart();
  await again;
  await sleep(300);
  assert.deepEqual(rejoined, ['random']);
  assert.deepEqual(failed, []);
  await assert.rejects(client.join('general'), (e) => e instanceof ServerError && e.code === 'forbidden');
});

test('a server ban: closed for good, no reconnection', async () => {
  const client = clients.make(server, { name: 'eve' });
  const welcome = await client.connect();
  let welcomes = 0;
  client.on('welcome', () => welcomes++);
  const closed = nextEvent(client, 'closed');
  assert.equal((await api('PUT', `/api/bans/${welcome.user.id}`)).status, 200);
  const [why] = await closed;
  assert.ok(why instanceof RefusedError, String(why));
  assert.equal(client.state, 'closed');
  await sleep(500);
  assert.equal(welcomes, 0, 'no reconnection');
});
