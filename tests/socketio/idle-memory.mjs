// Server memory per idle Socket.IO connection: opens many WebSocket-transport
// Socket.IO connections that each join a room and then only answer
// heartbeats, and reports the server's resident memory per connection.
// Speaks Engine.IO/Socket.IO text packets over `ws` directly, so the client
// side stays cheap enough to hold thousands of connections in one process.
//
//   node idle-memory.mjs http://127.0.0.1:3000 <server pid> [connections] [rooms]
//
// Not part of the test suite (node --test does not pick it up): a
// measurement, run by hand on a quiet machine.

import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

const [url, pid, connections = '10000', rooms = '100', stage = 'join'] = process.argv.slice(2);
if (!url || !pid) {
  console.error('usage: node idle-memory.mjs <server url> <server pid> [connections] [rooms]');
  process.exit(2);
}
const total = Number(connections);
const roomCount = Number(rooms);
const CONCURRENCY = 200;

function rssKiB() {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]);
}

const endpoint = `${url.replace(/^http/, 'ws').replace(/\/$/, '')}/socket.io/?EIO=4&transport=websocket`;

/** Resolves once the connection has joined its room. */
function open(i) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(endpoint, { perMessageDeflate: false });
    const timer = setTimeout(() => reject(new Error(`connection ${i} timed out`)), 30_000);
    const done = () => {
      clearTimeout(timer);
      resolve(ws);
    };
    ws.on('message', (data) => {
      const text = data.toString();
      if (text === '2') ws.send('3');
      else if (text.startsWith('0{')) {
        if (stage === 'open') done();
        else ws.send(`40${JSON.stringify({ name: `idle-${i}` })}`);
      } else if (text.startsWith('40{')) {
        if (stage === 'connect') done();
        else ws.send(`421${JSON.stringify(['join', `room-${i % roomCount}`])}`);
      }
      else if (text.startsWith('431')) done();
    });
    ws.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

const before = rssKiB();
const sockets = [];
let next = 0;
async function worker() {
  while (next < total) {
    const i = next++;
    sockets.push(await open(i));
  }
}
const started = Date.now();
await Promise.all(Array.from({ length: CONCURRENCY }, worker));
const rampSecs = (Date.now() - started) / 1000;
// Let presence batches and allocator bookkeeping settle.
await new Promise((resolve) => setTimeout(resolve, 3000));
const after = rssKiB();
console.log(
  JSON.stringify({
    connections: sockets.length,
    rooms: roomCount,
    ramp_secs: rampSecs,
    rss_before_kib: before,
    rss_after_kib: after,
    kib_per_connection: Number(((after - before) / sockets.length).toFixed(2)),
  }),
);
for (const ws of sockets) ws.terminate();
