// Moderation and limits through Socket.IO: a message deleted through the
// HTTP API reaches Socket.IO members as a `deleted` change (its own seq,
// the deleted message as `target`) and stays in history as a tombstone; disconnecting a user through the API closes their
// transport (the client reconnects by itself); the idle timeout closes a
// client that only keeps its transport alive.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ChatServer, SioClient, until } from './harness.js';

const servers = [];
const clients = [];

after(async () => {
  for (const client of clients) client.close();
  for (const server of servers) await server.close();
});

async function connect(server, name, transports = ['polling', 'websocket']) {
  const client = await SioClient.connect(server.url, { auth: { name }, transports });
  clients.push(client);
  return client;
}

test('a deleted message: the deleted event, a tombstone in history; a disconnected user reconnects', async () => {
  const server = await ChatServer.start();
  servers.push(server);
  const alice = await connect(server, 'alice');
  const bob = await connect(server, 'bob', ['websocket']);
  await alice.request('join', 'general');
  await bob.request('join', 'general');
  for (const content of ['one', 'two', 'three']) await alice.request('message', { room: 'general', content });

  const response = await fetch(`${server.url}/api/rooms/general/messages/2`, { method: 'DELETE' });
  assert.equal(response.status, 200);
  assert.equal((await response.json()).seq, 4);
  for (const client of [alice, bob]) {
    const deleted = await client.waitFor('deleted');
    assert.deepEqual(
      [deleted.type, deleted.room, deleted.seq, deleted.target, deleted.from.id],
      ['deleted', 'general', 4, 2, 'api'],
    );
  }
  const history = await bob.request('history', { room: 'general' });
  assert.deepEqual(
    history.messages.map((m) => [m.seq, m.content, m.deleted ?? false]),
    [
      [1, 'one', false],
      [2, '', true],
      [3, 'three', false],
    ],
  );

  // Disconnecting bob closes his transport; socket.io-client comes back.
  const bobId = (await bob.waitFor('welcome')).user.id;
  const firstSession = bob.socket.id;
  const closed = new Promise((resolve) => bob.socket.once('disconnect', resolve));
  const kicked = await fetch(`${server.url}/api/users/${bobId}/disconnect`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
  });
  assert.deepEqual(await kicked.json(), { user: bobId, connections: 1 });
  assert.equal(await closed, 'transport close');
  await until(() => bob.socket.connected && bob.socket.id !== firstSession, 'bob reconnected');
  assert.ok(alice.socket.connected);
});

test('the idle timeout closes a client that sends nothing', async () => {
  const server = await ChatServer.start(['--idle-timeout-secs', '1', '--heartbeat-ms', '300']);
  servers.push(server);
  const idle = await connect(server, 'idle', ['websocket']);
  const closed = new Promise((resolve) => idle.socket.once('disconnect', resolve));
  // Engine.IO heartbeats keep flowing; they are not requests.
  assert.equal(await closed, 'transport close');
});
