// Which web pages may connect: by default the server's own origin and this
// machine's (any port), with CORS headers so a front end on its own origin
// can long-poll; other origins are refused before any session exists, on
// both transports. `--allowed-origins` replaces the list.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import WebSocket from 'ws';
import { ChatServer, deadline } from './harness.js';

const servers = [];

after(async () => {
  for (const server of servers) await server.close();
});

async function start(args = []) {
  const server = await ChatServer.start(args);
  servers.push(server);
  return server;
}

/** The polling handshake, as a page at `origin` would send it. */
function handshake(server, origin) {
  const headers = origin ? { Origin: origin } : {};
  return fetch(`${server.url}/socket.io/?EIO=4&transport=polling`, { headers });
}

function preflight(server, origin) {
  return fetch(`${server.url}/socket.io/?EIO=4&transport=polling&sid=x`, {
    method: 'OPTIONS',
    headers: {
      Origin: origin,
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'content-type',
    },
  });
}

/** Resolves with the HTTP status of a WebSocket handshake from `origin`. */
function websocketStatus(server, origin) {
  const url = `${server.url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
  return deadline(
    new Promise((resolve) => {
      const ws = new WebSocket(url, { origin });
      ws.on('open', () => {
        ws.close();
        resolve(101);
      });
      ws.on('unexpected-response', (_, response) => resolve(response.statusCode));
      ws.on('error', () => {});
    }),
    'the WebSocket handshake',
  );
}

test('by default: this machine on any port, the server itself, and non-browser clients', async () => {
  const server = await start();
  const own = server.url; // http://127.0.0.1:PORT

  for (const origin of ['http://localhost:5173', 'http://127.0.0.1:8080', own]) {
    const response = await handshake(server, origin);
    assert.equal(response.status, 200, origin);
    assert.equal(response.headers.get('access-control-allow-origin'), origin);
    assert.match(response.headers.get('vary'), /origin/i);
    assert.match(await response.text(), /^0\{"sid"/);
    const answer = await preflight(server, origin);
    assert.equal(answer.headers.get('access-control-allow-origin'), origin);
    assert.match(answer.headers.get('access-control-allow-methods'), /POST/);
  }

  const refused = await handshake(server, 'https://evil.example');
  assert.equal(refused.status, 403);
  assert.equal(refused.headers.get('access-control-allow-origin'), null);
  assert.equal((await preflight(server, 'https://evil.example')).headers.get('access-control-allow-origin'), null);

  const noOrigin = await handshake(server, null);
  assert.equal(noOrigin.status, 200, 'clients that are not web pages send no Origin');

  assert.equal(await websocketStatus(server, 'http://localhost:5173'), 101);
  assert.equal(await websocketStatus(server, 'https://evil.example'), 403);
});

test('--allowed-origins replaces the list', async () => {
  const server = await start(['--allowed-origins', 'https://app.example.com,http://10.1.2.3:*']);
  assert.equal((await handshake(server, 'https://app.example.com')).status, 200);
  assert.equal((await handshake(server, 'http://10.1.2.3:9999')).status, 200);
  assert.equal((await handshake(server, 'http://localhost:5173')).status, 403);
  assert.equal((await handshake(server, server.url)).status, 200, 'its own origin is always allowed');
  assert.equal(await websocketStatus(server, 'http://localhost:5173'), 403);

  const anyone = await start(['--allowed-origins', '*']);
  assert.equal((await handshake(anyone, 'https://anywhere.example')).status, 200);
});
