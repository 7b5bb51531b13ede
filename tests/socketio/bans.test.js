// Bans through Socket.IO (docs/protocol.md §10.3, §11): a room ban reaches
// a Socket.IO member as an `error` event naming the room, and every event
// naming the room is refused `forbidden` from then on; a server ban sends
// the `error` event, then the namespace's DISCONNECT ("io server
// disconnect", after which socket.io-client stays away), on WebSocket and
// through the engine alike, and a new connection of the user is refused
// with `connect_error`.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ChatServer, SioClient, deadline } from './harness.js';

const servers = [];
const clients = [];

after(async () => {
  for (const client of clients) client.close();
  for (const server of servers) await server.close();
});

async function connect(server, auth, transports = ['polling', 'websocket']) {
  const client = await SioClient.connect(server.url, { auth, transports });
  clients.push(client);
  const welcome = await client.waitFor('welcome');
  return { client, id: welcome.user.id, guest: welcome.guest_token };
}

function api(server, method, path, body) {
  const init = { method };
  if (body !== undefined) {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  return fetch(`${server.url}${path}`, init);
}

test('a room ban takes a Socket.IO member out of the room and keeps them out', async () => {
  const server = await ChatServer.start();
  servers.push(server);
  const { client: mallory, id } = await connect(server, { name: 'mallory' });
  await mallory.request('join', 'general');
  await mallory.request('join', 'random');

  const banned = await api(server, 'PUT', `/api/rooms/general/bans/${id}`, { reason: 'spam' });
  assert.equal(banned.status, 200);
  const notice = await mallory.waitFor('error', (e) => e.room === 'general');
  assert.deepEqual(notice, {
    code: 'forbidden',
    message: 'you are banned from this room',
    room: 'general',
  });

  for (const [event, payload] of [
    ['join', 'general'],
    ['message', { room: 'general', content: 'let me back' }],
    ['history', { room: 'general' }],
    ['typing', 'general'],
  ]) {
    const answer = await mallory.request(event, payload);
    assert.equal(answer.error?.code, 'forbidden', `${event}: ${JSON.stringify(answer)}`);
  }
  const ack = await mallory.request('message', { room: 'random', content: 'still here' });
  assert.equal(ack.room, 'random');

  assert.equal((await api(server, 'DELETE', `/api/rooms/general/bans/${id}`)).status, 204);
  const joined = await mallory.request('join', 'general');
  assert.equal(joined.room, 'general');
});

test('a server ban disconnects every Socket.IO connection of the user for good', async () => {
  const server = await ChatServer.start();
  servers.push(server);
  const first = await connect(server, { name: 'mallory' }, ['websocket']);
  const second = await connect(server, { name: 'mallory', guest: first.guest }, ['polling']);
  assert.equal(second.id, first.id);
  const { client: alice } = await connect(server, { name: 'alice' });

  const disconnects = [first, second].map(({ client }) =>
    deadline(new Promise((resolve) => client.socket.once('disconnect', resolve)), 'disconnect'),
  );
  const banned = await api(server, 'PUT', `/api/bans/${first.id}`);
  assert.equal(banned.status, 200);
  assert.deepEqual(await banned.json(), {
    user: first.id,
    room: null,
    reason: null,
    ts: (await (await api(server, 'GET', '/api/bans')).json()).bans[0].ts,
  });
  for (const { client } of [first, second]) {
    const error = await client.waitFor('error', (e) => e.code === 'forbidden');
    assert.equal(error.message, 'you are banned from this server');
  }
  assert.deepEqual(await Promise.all(disconnects), ['io server disconnect', 'io server disconnect']);
  // Stays away: no reconnection is attempted.
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.ok(!first.client.socket.connected && !second.client.socket.connected);
  assert.ok(alice.socket.connected);

  // Coming back as the same guest is refused at the CONNECT.
  const again = new SioClient(server.url, { auth: { name: 'mallory', guest: first.guest } });
  clients.push(again);
  await assert.rejects(again.connected(), /you are banned from this server/);
});
