// Throughput in Node: one client of this library follows 50 rooms while
// raw senders write 10 messages a second in each of them for 20 seconds
// (10,000 messages, 500 a second). The follower must deliver every one
// exactly once, in order, in every room. How far behind it falls, and
// what it costs, is measured by scripts/follow-bench.mjs.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ChatServer, Clients, RawClient, Recorder, range, until } from './harness.js';

const ROOMS = 50;
const PER_SECOND = 10;
const SECONDS = 20;
const SENDERS = 5;

let server;
const clients = new Clients();
const raw = [];

before(async () => {
  server = await ChatServer.start(['--send-rate', '1000', '--send-burst', '1000']);
});

after(async () => {
  clients.closeAll();
  for (const r of raw) r.close();
  await server?.close();
});

test(`a follower of ${ROOMS} rooms at ${PER_SECOND} messages/s each delivers everything once, in order`, { timeout: 90_000 }, async () => {
  const rooms = range(1, ROOMS).map((i) => `load-${i}`);
  const follower = clients.make(server, { name: 'follower' });
  const seen = new Recorder(follower);
  await Promise.all(rooms.map((room) => follower.join(room)));

  // Each sender writes to its share of the rooms.
  for (let i = 0; i < SENDERS; i += 1) raw.push(await RawClient.connect(server, `sender-${i}`));
  const roomsOf = (i) => rooms.filter((_, j) => j % SENDERS === i);
  await Promise.all(raw.flatMap((s, i) => roomsOf(i).map((room) => s.request({ type: 'join', room }))));

  /** @type {Map<string, {seq: number, id: string}[]>} */
  const acked = new Map(rooms.map((room) => [room, []]));
  const pending = [];
  const started = Date.now();
  for (let tick = 0; tick < PER_SECOND * SECONDS; tick += 1) {
    // One message per room per tick, ticks 100 ms apart.
    const due = started + (tick * 1000) / PER_SECOND;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    raw.forEach((sender, i) => {
      for (const room of roomsOf(i)) {
        const id = `${room}-${tick}`;
        pending.push(
          sender.request({ type: 'send', room, text: `tick ${tick} in ${room}`, id }).then((ack) => {
            assert.equal(ack.type, 'ack', JSON.stringify(ack));
            acked.get(room).push({ seq: ack.seq, id: ack.id });
          }),
        );
      }
    });
  }
  await Promise.all(pending);
  const total = ROOMS * PER_SECOND * SECONDS;
  await until(
    () => rooms.every((room) => seen.seqs(room).length >= PER_SECOND * SECONDS),
    `the follower to deliver all ${total}`,
    30_000,
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  for (const room of rooms) {
    const expected = acked.get(room).sort((a, b) => a.seq - b.seq);
    assert.deepEqual(
      expected.map((a) => a.seq),
      range(1, PER_SECOND * SECONDS),
      `${room}: the acks`,
    );
    assert.deepEqual(seen.seqs(room), range(1, PER_SECOND * SECONDS), `${room}: every seq once, in order`);
    assert.deepEqual(
      seen.ids(room),
      expected.map((a) => a.id),
      `${room}: the acked writes`,
    );
  }
  assert.deepEqual(seen.disconnects, [], 'the follower kept up: never dropped');
});
