// Does one Node process of this library keep up with many busy rooms?
// One ChatClient follows ROOMS rooms while another process (raw `ws`
// senders, so their cost is not counted here) writes RATE messages a second
// in each, for SECONDS. Prints the delivery latency (the message's server
// `ts` to its `message` event here: p50, p99, max), the follower process's
// CPU per message (process.cpuUsage()), and whether it fell behind.
//
//   node scripts/follow-bench.mjs [--rooms 50] [--rate 10] [--seconds 20]
//                                 [--senders 5] [--json]
//                                 [--client library|ws|socketio]
//
// `--client` picks the follower, for comparison in the same conditions:
// this library (the default); a bare `ws` socket that only parses each
// frame (the floor: what the guarantees cost above it); or the official
// socket.io-client on the server's Socket.IO endpoint (WebSocket transport).
//
// It starts its own chat-server: CHAT_SERVER_BIN, else the repository's
// target/release/chat-server, else target/debug/chat-server (figures from a
// debug server are slower on the server's side, not the client's).

import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../../..');

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
}

const ROOMS = option('rooms', 50);
const RATE = option('rate', 10);
const SECONDS = option('seconds', 20);
const SENDERS = option('senders', 5);
const roomNames = Array.from({ length: ROOMS }, (_, i) => `bench-${i + 1}`);
const CLIENT = process.argv.includes('--client') ? process.argv[process.argv.indexOf('--client') + 1] : 'library';

/**
 * Followers of every room, by `--client`: each joins the rooms, calls
 * `on.message(m)` for each message and `on.disconnected()` for each drop,
 * and resolves with something to `close()`.
 */
const FOLLOWERS = {
  async library(server, wsUrl, on, ChatClient) {
    const client = new ChatClient({ url: wsUrl, name: 'follower', WebSocket });
    client.on('disconnected', on.disconnected);
    client.on('message', on.message);
    await Promise.all(roomNames.map((room) => client.join(room)));
    return client;
  },
  async ws(server, wsUrl, on) {
    const ws = new WebSocket(`${wsUrl}?name=follower`, { perMessageDeflate: false });
    let joined = 0;
    const allJoined = new Promise((resolve) => {
      ws.on('message', (data) => {
        const frame = JSON.parse(data.toString());
        if (frame.type === 'message') on.message(frame);
        else if (frame.type === 'joined' && ++joined === roomNames.length) resolve(undefined);
      });
    });
    ws.on('close', on.disconnected);
    await new Promise((resolve) => ws.once('open', resolve));
    for (const room of roomNames) ws.send(JSON.stringify({ type: 'join', room }));
    await allJoined;
    return ws;
  },
  async socketio(server, wsUrl, on) {
    const { io } = await import('socket.io-client');
    const socket = io(server.url, { transports: ['websocket'], query: { name: 'follower' } });
    socket.on('message', (m) => {
      if (m.type === 'message') on.message(m);
    });
    socket.on('disconnect', on.disconnected);
    await Promise.all(roomNames.map((room) => socket.emitWithAck('join', room)));
    return socket;
  },
};
if (!(CLIENT in FOLLOWERS)) throw new Error(`--client must be one of ${Object.keys(FOLLOWERS).join(', ')}`);

if (process.argv.includes('--sender')) {
  await sender();
} else {
  await follower();
}

/** The sender process: raw native clients, each writing to its share of the rooms. */
async function sender() {
  const url = process.argv[process.argv.indexOf('--url') + 1];
  const sockets = await Promise.all(
    Array.from({ length: SENDERS }, (_, i) => {
      const ws = new WebSocket(`${url}?name=sender-${i}`, { perMessageDeflate: false });
      return new Promise((resolve, reject) => {
        ws.once('message', () => resolve(ws));
        ws.once('error', reject);
      });
    }),
  );
  let acked = 0;
  let refused = 0;
  for (const ws of sockets) {
    ws.on('message', (data) => {
      const text = data.toString();
      if (text.startsWith('{"type":"ack"')) acked += 1;
      else if (text.startsWith('{"type":"error"')) refused += 1;
    });
  }
  const roomsOf = (i) => roomNames.filter((_, j) => j % SENDERS === i);
  sockets.forEach((ws, i) => {
    for (const room of roomsOf(i)) ws.send(JSON.stringify({ type: 'join', room }));
  });
  await new Promise((resolve) => process.once('message', resolve)); // go
  const started = Date.now();
  for (let tick = 0; tick < RATE * SECONDS; tick += 1) {
    const wait = started + (tick * 1000) / RATE - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    sockets.forEach((ws, i) => {
      for (const room of roomsOf(i)) ws.send(JSON.stringify({ type: 'send', room, text: `tick ${tick}`, id: `${room}-${tick}` }));
    });
  }
  const total = ROOMS * RATE * SECONDS;
  const until = Date.now() + 30_000;
  while (acked + refused < total && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
  process.send({ acked, refused, sendSeconds: (Date.now() - started) / 1000 });
  for (const ws of sockets) ws.close();
}

async function follower() {
  if (!process.env.CHAT_SERVER_BIN) {
    const release = path.join(repoRoot, 'target/release/chat-server');
    process.env.CHAT_SERVER_BIN = existsSync(release) ? release : path.join(repoRoot, 'target/debug/chat-server');
  }
  // The support module reads CHAT_SERVER_BIN when it loads: after the line above.
  const { ChatServer } = await import(path.join(repoRoot, 'tests/support/chat-server.js'));
  const { ChatClient } = await import('../src/index.js');
  const server = await ChatServer.start(['--send-rate', '100000', '--send-burst', '100000']);
  const wsUrl = `${server.url.replace(/^http/, 'ws')}/ws`;
  const latencies = [];
  const last = new Map();
  let outOfOrder = 0;
  let disconnects = 0;
  const follower = {
    message(m) {
      latencies.push(Date.now() - m.ts);
      if ((last.get(m.room) ?? 0) + 1 !== m.seq) outOfOrder += 1;
      last.set(m.room, m.seq);
    },
    disconnected() {
      disconnects += 1;
    },
  };
  const client = await FOLLOWERS[CLIENT](server, wsUrl, follower, ChatClient);

  const child = fork(fileURLToPath(import.meta.url), [...process.argv.slice(2), '--sender', '--url', wsUrl], { stdio: 'inherit' });
  await new Promise((resolve) => setTimeout(resolve, 500)); // the senders join
  const total = ROOMS * RATE * SECONDS;
  const cpuBefore = process.cpuUsage();
  const started = Date.now();
  child.send('go');
  const sent = await new Promise((resolve) => child.once('message', resolve));
  const sendingDone = Date.now();
  const backlogAtEnd = total - latencies.length;
  while (latencies.length < total && Date.now() - sendingDone < 30_000) await new Promise((resolve) => setTimeout(resolve, 10));
  const drainMs = Date.now() - sendingDone;
  const cpu = process.cpuUsage(cpuBefore);
  const elapsed = (Date.now() - started) / 1000;
  const dropped = disconnects;
  client.close();
  await server.close();

  const sorted = [...latencies].sort((a, b) => a - b);
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const result = {
    client: CLIENT,
    server: process.env.CHAT_SERVER_BIN,
    rooms: ROOMS,
    perRoomPerSecond: RATE,
    seconds: SECONDS,
    sent: total,
    acked: sent.acked,
    delivered: latencies.length,
    outOfOrder,
    disconnects: dropped,
    latencyMs: { p50: pct(50), p99: pct(99), max: sorted.at(-1) },
    backlogWhenSendingStopped: backlogAtEnd,
    drainMs,
    cpuMsTotal: Math.round(cpuMs),
    cpuPercentOfOneCore: Math.round((cpuMs / 1000 / elapsed) * 1000) / 10,
    cpuMicrosecondsPerMessage: Math.round((cpuMs * 1000) / Math.max(1, latencies.length)),
  };
  const behind = result.delivered < total || result.latencyMs.p99 > 1000 || result.disconnects > 0;
  result.fellBehind = behind;
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify(result));
  } else {
    console.log(`${CLIENT} follower of ${ROOMS} rooms, ${RATE} msg/s each for ${SECONDS} s (${total} messages, ${ROOMS * RATE}/s); server ${result.server}`);
    console.log(`delivered      ${result.delivered}/${total} (acked ${result.acked}), out of order ${outOfOrder}, dropped ${dropped} times`);
    console.log(`latency ts→event  p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms, max ${result.latencyMs.max} ms`);
    console.log(`backlog when the senders stopped: ${backlogAtEnd} messages, drained in ${drainMs} ms`);
    console.log(`follower CPU   ${result.cpuMsTotal} ms in ${elapsed.toFixed(1)} s (${result.cpuPercentOfOneCore}% of a core), ${result.cpuMicrosecondsPerMessage} µs per message`);
    console.log(`falls behind:  ${behind ? 'YES' : 'no'}`);
  }
  process.exitCode = behind ? 1 : 0;
}
