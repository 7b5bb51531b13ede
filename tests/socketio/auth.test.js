// Identity from the handshake's `auth: {token, name}`: a name in anonymous
// mode, a JWT when the server checks tokens. A refusal is a
// `connect_error`, after which the client does not retry by itself.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, test } from 'node:test';
import { ChatServer, SioClient, deadline } from './harness.js';

const SECRET = 'a Socket.IO test secret, at least thirty-two bytes';
const servers = [];
const clients = [];

after(async () => {
  for (const client of clients) client.close();
  for (const server of servers) await server.close();
});

async function start(args = []) {
  const server = await ChatServer.start(args);
  servers.push(server);
  return server;
}

function client(server, options) {
  const c = new SioClient(server.url, options);
  clients.push(c);
  return c;
}

/** The `connect_error` a refused client gets. */
function refusal(c) {
  return deadline(new Promise((resolve) => c.socket.once('connect_error', resolve)), 'connect_error');
}

function hs256(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${unsigned}.${createHmac('sha256', SECRET).update(unsigned).digest('base64url')}`;
}

const inAMinute = () => Math.floor(Date.now() / 1000) + 60;

test('anonymous mode: the name from auth, else from the query; bad names are refused', async () => {
  const server = await start();
  const alice = client(server, { auth: { name: '艾丽斯 Alice' } });
  await alice.connected();
  assert.equal((await alice.waitFor('welcome')).user.name, '艾丽斯 Alice');

  const bob = client(server, { query: { name: 'bob' } });
  await bob.connected();
  assert.equal((await bob.waitFor('welcome')).user.name, 'bob');

  const guest = client(server);
  await guest.connected();
  assert.match((await guest.waitFor('welcome')).user.name, /^guest-\d{4}$/);

  const bad = client(server, { auth: { name: ' padded ' } });
  const error = await refusal(bad);
  assert.match(error.message, /name/);
  assert.equal(bad.socket.active, false, 'a refused client does not retry by itself');

  const notAnObject = client(server, { auth: { name: 42 } });
  assert.match((await refusal(notAnObject)).message, /auth/);

  const elsewhere = new SioClient(`${server.url}/admin`, { auth: { name: 'eve' } });
  clients.push(elsewhere);
  assert.equal((await refusal(elsewhere)).message, 'Invalid namespace');
});

test('token mode: auth.token names the user and their rooms', async () => {
  const server = await start(['--jwt-secret', SECRET]);
  const token = hs256({ sub: 'user-42', name: 'Alice', exp: inAMinute(), rooms: ['team-*'] });

  const laptop = client(server, { auth: { token } });
  await laptop.connected();
  const welcome = await laptop.waitFor('welcome');
  assert.equal(welcome.user.name, 'Alice');
  assert.equal((await laptop.request('join', 'team-red')).room, 'team-red');
  assert.equal((await laptop.request('join', 'general')).error?.code, 'forbidden');

  // The same user on a second device: one member, not two.
  const phone = client(server, { auth: { token }, transports: ['polling'] });
  await phone.connected();
  assert.equal((await phone.waitFor('welcome')).user.id, welcome.user.id);
  const joined = await phone.request('join', 'team-red');
  assert.deepEqual(joined.members, [welcome.user]);

  for (const [auth, reason] of [
    [{}, /token is required/],
    [{ token: 'not.a.jwt' }, /malformed/],
    [{ token: hs256({ sub: 'x', exp: Math.floor(Date.now() / 1000) - 3600 }) }, /expired/],
  ]) {
    const refused = client(server, { auth });
    const error = await refusal(refused);
    assert.match(error.message, reason);
    if (auth.token) assert.ok(!error.message.includes(auth.token), 'the token is never echoed');
  }
  assert.ok(!server.stderr.includes(token), 'the token never reaches the log');
});
