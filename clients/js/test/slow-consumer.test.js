// A slow consumer: the server (with a small `--outbound-queue`) drops a
// connection that stops reading with close 1013 (docs/protocol.md §8). The
// client's socket is paused under it (the `ws` socket's TCP stream stops
// being read), another client floods the room, and once the server has
// dropped the reader (its presence `leave` reaches the flooder) the socket
// is read again: the client sees 1013, reconnects, resumes with `since`,
// and delivers every message exactly once, in order.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ChatServer, Clients, Recorder, nextEvent, range, recordingWebSocket, until } from './harness.js';

/** Most messages sent before the server must have dropped the paused reader. */
const MAX_FLOOD = 3000;
/** Sent after the drop, while the reader reconnects and catches up. */
const AFTER = 200;
const BATCH = 20;
const TEXT = 'x'.repeat(3900);

let server;
const clients = new Clients();

before(async () => {
  server = await ChatServer.start([
    '--outbound-queue',
    '64',
    '--presence-delay-ms',
    '0',
    '--send-rate',
    '10000',
    '--send-burst',
    '10000',
  ]);
});

after(async () => {
  clients.closeAll();
  await server?.close();
});

test('a consumer dropped with 1013 resumes and delivers everything exactly once, in order', async () => {
  const room = 'flood';
  const sockets = recordingWebSocket();
  const slow = clients.make(server, { name: 'slow', WebSocket: sockets.WebSocket });
  const flooder = clients.make(server, { name: 'flooder', sendRate: null });
  const seen = new Recorder(slow);
  await slow.join(room);
  await flooder.join(room);
  const slowUser = slow.user?.id;
  assert.ok(slowUser);

  // Stop reading: the kernel's buffers fill, then the server's queue.
  const socket = sockets.sockets.at(-1);
  socket._socket.pause();
  const left = nextEvent(
    flooder,
    'presence',
    (p) => p.event === 'leave' && p.user.id === slowUser,
    'the server to drop the slow reader (its presence leave)',
  );
  const dropped = nextEvent(slow, 'disconnected');

  let gone = false;
  left.then(() => {
    gone = true;
  }, () => {});
  const acks = [];
  const sendBatch = async () => {
    for (let j = 0; j < BATCH; j += 1) acks.push(flooder.send(room, `${acks.length + 1} ${TEXT}`));
    await Promise.all(acks);
  };
  // Batches of 20, so the flooder's own queue (acks, broadcasts) stays short.
  while (!gone && acks.length < MAX_FLOOD) await sendBatch();
  await left;
  const beforeDrop = acks.length;
  // Read again at once: the close frame waits behind what the kernel holds,
  // and the server gives up on writing it after 2 s.
  socket._socket.resume();
  // More while it reconnects and catches up.
  while (acks.length < beforeDrop + AFTER) await sendBatch();
  const [info] = await dropped;
  assert.equal(info.code, 1013, `closed as a slow consumer (got ${info.code} ${info.reason})`);
  const stored = await Promise.all(acks);
  const count = stored.length;
  assert.deepEqual(
    stored.map((a) => a.seq),
    range(1, count),
  );

  await until(() => seen.seqs(room).length >= count, `the slow client to deliver all ${count}`, 30_000);
  assert.deepEqual(seen.seqs(room), range(1, count), 'every seq once, in order');
  assert.deepEqual(
    seen.ids(room),
    stored.map((a) => a.id),
  );
  assert.equal(slow.online, true, 'back online');
  assert.ok(sockets.sockets.length >= 2, 'on a new connection');
  assert.ok(seen.disconnects.every((d) => d.code === 1013), 'dropped as slow, and only so');
});
