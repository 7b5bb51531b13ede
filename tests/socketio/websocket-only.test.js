// Clients that open Engine.IO directly on WebSocket (`transports:
// ['websocket']`, and any client that never long-polls) are served on the
// server's own WebSocket path rather than by engineioxide. The same flows
// as over the engine: events and their acks, errors, the system message
// when someone leaves, Engine.IO heartbeats (a client that stops answering
// pings is dropped), and the packet-level rules. (Resume with `since`,
// slow consumers and shutdown over this path are in resume.test.js and
// lifecycle.test.js, whose WebSocket clients take it too.)

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { ChatServer, SioClient, deadline, until } from './harness.js';

const HEARTBEAT_MS = 400;

let server;
const clients = [];

before(async () => {
  server = await ChatServer.start(['--heartbeat-ms', String(HEARTBEAT_MS), '--send-rate', '2', '--send-burst', '3']);
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

/** A bare Engine.IO client over `ws`: every packet it gets, in order. */
class RawEngine {
  static async open(query = '') {
    const url = `${server.url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket${query}`;
    const raw = new RawEngine(new WebSocket(url));
    raw.open = JSON.parse((await raw.next((p) => p.startsWith('0'), 'the open packet')).slice(1));
    return raw;
  }

  constructor(ws) {
    this.ws = ws;
    this.packets = [];
    this.waiters = [];
    this.answerPings = true;
    this.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
    ws.on('message', (data, binary) => {
      const packet = binary ? data : data.toString();
      if (packet === '2' && this.answerPings) ws.send('3');
      this.packets.push(packet);
      this.waiters = this.waiters.filter(({ predicate, resolve }) => {
        const found = this.packets.find(predicate);
        if (found !== undefined) resolve(found);
        return found === undefined;
      });
    });
  }

  next(predicate, what) {
    const found = this.packets.find(predicate);
    if (found !== undefined) return Promise.resolve(found);
    return deadline(new Promise((resolve) => this.waiters.push({ predicate, resolve })), what);
  }

  send(packet) {
    this.ws.send(packet);
  }

  close() {
    this.ws.close();
  }
}

test('events, acks and errors over WebSocket only', async () => {
  const alice = await sio('alice');
  const welcome = await alice.waitFor('welcome');
  assert.equal(welcome.user.name, 'alice');
  assert.equal(welcome.session, alice.socket.id);
  assert.equal(alice.socket.io.engine.transport.name, 'websocket');

  const joined = await alice.request('join', 'ws-only');
  assert.deepEqual(joined.members, [welcome.user]);
  const ack = await alice.request('message', { room: 'ws-only', content: 'hello 你好 👋', id: 'c-1' });
  assert.equal(ack.seq, 1);
  assert.deepEqual(await alice.request('message', { room: 'ws-only', content: 'hello 你好 👋', id: 'c-1' }), {
    ...ack,
    duplicate: true,
  });
  const broadcast = await alice.waitFor('message', (m) => m.seq === 1);
  assert.equal(broadcast.content, 'hello 你好 👋');
  assert.equal(broadcast.text, 'hello 你好 👋');

  assert.deepEqual(await alice.request('typing', 'ws-only'), { room: 'ws-only' });
  const page = await alice.request('history', { room: 'ws-only' });
  assert.deepEqual(page.messages.map((m) => m.seq), [1]);

  // Errors: to the callback, else as an `error` event; the connection stays.
  const notJoined = await alice.request('message', { room: 'elsewhere', content: 'x' });
  assert.equal(notJoined.error.code, 'not_joined');
  assert.equal((await alice.request('dance', 'ws-only')).error.code, 'unknown_type');
  assert.equal((await alice.request('join', '')).error.code, 'invalid_room');
  const limited = [];
  for (let i = 0; i < 5; i++) limited.push(alice.request('message', { room: 'ws-only', content: `m${i}` }));
  const codes = (await Promise.all(limited)).map((r) => r.error?.code ?? 'ok');
  assert.ok(codes.includes('rate_limited'), codes.join());
  alice.socket.emit('message', { room: 'ws-only' });
  const event = await alice.waitFor('error', (e) => e.code === 'bad_request');
  assert.match(event.message, /content/);
  const binary = await alice.request('message', { room: 'ws-only', content: Buffer.from('x') });
  assert.equal(binary.error.code, 'bad_request');

  assert.deepEqual(await alice.request('leave', 'ws-only'), { room: 'ws-only' });
  assert.equal(alice.socket.connected, true);
});

test('someone leaving: presence and the system message, to WebSocket-only clients', async () => {
  const carol = await sio('carol');
  const dave = await sio('dave');
  await carol.request('join', 'leaving');
  await dave.request('join', 'leaving');
  dave.close();
  const system = await carol.waitFor('message', (m) => m.type === 'system');
  assert.deepEqual(system, { type: 'system', room: 'leaving', content: 'dave left the room' });
  const presence = await carol.waitFor('presence', (p) => p.event === 'leave');
  assert.equal(presence.user.name, 'dave');
});

test('Engine.IO heartbeats: pings answered keep a client, a silent one is dropped', async () => {
  const watcher = await sio('watcher');
  await watcher.request('join', 'heartbeat');

  const raw = await RawEngine.open();
  assert.equal(raw.open.pingInterval, HEARTBEAT_MS);
  assert.deepEqual(raw.open.upgrades, []);
  raw.send('40{"name":"quiet"}');
  const connected = JSON.parse((await raw.next((p) => p.startsWith('40'), 'CONNECT answer')).slice(2));
  assert.equal(typeof connected.sid, 'string');
  raw.send('420["join","heartbeat"]');
  await raw.next((p) => p.startsWith('430['), 'the join ack');

  // Answering pings, it stays well past two intervals.
  await new Promise((resolve) => setTimeout(resolve, 4 * HEARTBEAT_MS));
  assert.ok(raw.packets.filter((p) => p === '2').length >= 3, 'pinged every interval');
  assert.equal(raw.ws.readyState, WebSocket.OPEN);

  // Silent: dropped within two intervals, and the room hears it.
  raw.answerPings = false;
  const started = Date.now();
  const code = await deadline(raw.closed, 'the drop of a silent client');
  assert.ok(Date.now() - started <= 3 * HEARTBEAT_MS, `dropped after ${Date.now() - started} ms`);
  assert.equal(code, 1001);
  const left = await watcher.waitFor('presence', (p) => p.event === 'leave' && p.user.name === 'quiet');
  assert.equal(left.room, 'heartbeat');
});

test('packet rules: events before CONNECT, other namespaces, malformed packets', async () => {
  const raw = await RawEngine.open('&name=bob');
  // Before the namespace CONNECT an event belongs to nothing: ignored.
  raw.send('421["join","early"]');
  raw.send('40/admin,');
  const refused = await raw.next((p) => p.startsWith('44/admin,'), 'the namespace refusal');
  assert.match(refused, /Invalid namespace/);
  raw.send('40');
  await raw.next((p) => p.startsWith('40{'), 'CONNECT answer');
  // The name from the query, when auth has none.
  const welcome = JSON.parse((await raw.next((p) => p.startsWith('42["welcome"'), 'welcome')).slice(2));
  assert.equal(welcome[1].user.name, 'bob');
  assert.equal(raw.packets.filter((p) => p.startsWith('431')).length, 0, 'the early event had no answer');
  raw.send('422["join","after"]');
  await raw.next((p) => p.startsWith('432['), 'the join ack');

  // Not Engine.IO framing: the connection is closed as a protocol error.
  raw.send('x-not-a-packet');
  assert.equal(await deadline(raw.closed, 'the close'), 1002);

  // A refused CONNECT (bad name) says why and the socket may try again.
  const retry = await RawEngine.open();
  retry.send('40{"name":""}');
  await retry.next((p) => p.startsWith('44{'), 'connect_error');
  retry.send('40{"name":"ok"}');
  await retry.next((p) => p.startsWith('40{'), 'CONNECT answer');
  retry.close();

  await until(() => raw.ws.readyState === WebSocket.CLOSED, 'closed');
});
