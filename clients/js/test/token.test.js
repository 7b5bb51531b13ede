// Tokens: a server with an HS256 secret (docs/protocol.md §2, §2.1), tokens
// signed here with node:crypto. A token about to expire is refreshed with
// `getToken` before the next connection; a refused one (401) is refreshed
// once and the client gets in; a `getToken` that keeps giving bad tokens
// ends the client with RefusedError 401.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ChatServer, Clients, epoch, nextEvent, recordingWebSocket, signToken, until } from './harness.js';
import { RefusedError } from '../src/index.js';

const SECRET = 'js-client-tests-secret-0123456789abcdef';
const WRONG_SECRET = 'not-the-server-secret-0123456789abcdef';

let server;
const clients = new Clients();

before(async () => {
  server = await ChatServer.start(['--jwt-secret', SECRET]);
});

after(async () => {
  clients.closeAll();
  await server?.close();
});

function tokenOf(url) {
  return new URL(url).searchParams.get('token');
}

test('a token about to expire is refreshed before reconnecting', async () => {
  const old = signToken(SECRET, { sub: 'ann', name: 'ann-old', exp: epoch(3) });
  const fresh = signToken(SECRET, { sub: 'ann', name: 'ann-fresh', exp: epoch(3600) });
  const calls = [];
  const sockets = recordingWebSocket();
  const client = clients.make(server, {
    token: old,
    tokenMarginMs: 1000,
    WebSocket: sockets.WebSocket,
    getToken: () => {
      calls.push(Date.now());
      return fresh;
    },
  });
  const first = await client.connect();
  assert.equal(first.user.id, 'ann');
  assert.equal(first.user.name, 'ann-old', 'connected with the token it was given');
  assert.equal(calls.length, 0, 'a token with time left is not refreshed');
  assert.equal(tokenOf(sockets.urls()[0]), old);

  // Let the token come within its margin (it stays valid to the server,
  // which allows 30 s of leeway: only the client's refresh can change it).
  await new Promise((resolve) => setTimeout(resolve, 2500));
  const again = nextEvent(client, 'welcome');
  await server.restart();
  const [welcome] = await again;
  assert.equal(calls.length, 1, 'getToken was called once, for the reconnect');
  assert.equal(welcome.user.id, 'ann');
  assert.equal(welcome.user.name, 'ann-fresh', 'the reconnect used the fresh token');
  const last = sockets.urls().at(-1);
  assert.equal(tokenOf(last), fresh);
  assert.ok(
    sockets.urls().slice(1).every((url) => tokenOf(url) === fresh),
    'no connection after the restart used the old token',
  );
});

test('a refused token is refreshed once, then the client gets in', async () => {
  const bad = signToken(WRONG_SECRET, { sub: 'bo', name: 'bo', exp: epoch(3600) });
  const good = signToken(SECRET, { sub: 'bo', name: 'bo', exp: epoch(3600) });
  let calls = 0;
  const sockets = recordingWebSocket();
  const client = clients.make(server, {
    token: bad,
    WebSocket: sockets.WebSocket,
    getToken: () => {
      calls += 1;
      return good;
    },
  });
  const closed = [];
  client.on('closed', (why) => closed.push(why));
  const welcome = await client.connect();
  assert.equal(welcome.user.id, 'bo');
  assert.equal(calls, 1, 'exactly one refresh after the 401');
  assert.deepEqual(
    sockets.urls().map(tokenOf),
    [bad, good],
    'one refused attempt, then one with the fresh token',
  );
  assert.deepEqual(closed, []);
  await client.join('tokens');
  const ack = await client.send('tokens', 'in with a fresh token');
  assert.ok(ack.seq >= 1);
});

test('a getToken that keeps giving refused tokens ends in closed with RefusedError 401', async () => {
  let calls = 0;
  const client = clients.make(server, {
    getToken: () => {
      calls += 1;
      return signToken(WRONG_SECRET, { sub: 'cy', name: 'cy', exp: epoch(3600) });
    },
  });
  const closed = nextEvent(client, 'closed');
  await assert.rejects(client.connect(), (error) => {
    assert.ok(error instanceof RefusedError, `RefusedError, got ${error}`);
    assert.equal(error.status, 401);
    return true;
  });
  const [why] = await closed;
  assert.ok(why instanceof RefusedError);
  assert.equal(why.status, 401);
  assert.match(why.reason, /token/);
  assert.equal(client.state, 'closed');
  // One token to connect with, and one refresh after the refusal; no loop.
  assert.equal(calls, 2);
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(calls, 2, 'no further attempts after the refusal');
});

test('without a token the server (no anonymous access) refuses with 401, and a token-less client stops', async () => {
  const client = clients.make(server, { name: 'nobody' });
  await assert.rejects(client.connect(), (error) => error instanceof RefusedError && error.status === 401);
  await until(() => client.state === 'closed', 'the client to stop');
});
