// Resume across a crash: the server is killed with SIGKILL (no close
// frames, no shutdown) and started again on the same port and data dir.
// A follower and a sender; messages sent before the crash, while the
// server is down (queued offline by the sender's outbox) and after it.
// The follower ends with every acked message exactly once, in seq order,
// without gaps; each queued write is stored once.

import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { after, before, test } from 'node:test';

import { ChatServer, Clients, Recorder, deadline, nextEvent, range, until } from './harness.js';

let server;
const clients = new Clients();

before(async () => {
  server = await ChatServer.start();
});

after(async () => {
  clients.closeAll();
  await server?.close();
});

test('a follower resumes across kill -9 and a restart: every acked message once, in order', async () => {
  const room = 'resume';
  // The follower comes back later than the sender, so that the queued
  // writes and some of the later ones are stored while it is away, and the
  // rest arrive live while it catches up.
  const follower = clients.make(server, { name: 'follower', backoff: { baseMs: 1200, maxMs: 1500 } });
  const sender = clients.make(server, { name: 'sender' });
  const seen = new Recorder(follower);
  await follower.join(room);
  await sender.join(room);

  const before = await Promise.all(range(1, 10).map((i) => sender.send(room, `before ${i}`)));
  await until(() => seen.seqs(room).length === 10, 'the follower to see the first 10');

  const followerDropped = nextEvent(follower, 'disconnected');
  const senderDropped = nextEvent(sender, 'disconnected');
  await server.kill9();
  await followerDropped;
  await senderDropped;
  assert.equal(sender.online, false);

  // Written while the server is down: queued, not lost, not rejected.
  const queuedIds = range(1, 10).map((i) => `during-${i}`);
  const during = queuedIds.map((id, i) => sender.send(room, `during ${i + 1}`, { id }));
  assert.deepEqual(
    sender.pending().map((w) => w.id),
    queuedIds,
    'the writes wait in the outbox, oldest first',
  );

  await server.relaunch();
  const duringAcks = await deadline(Promise.all(during), 'the queued writes to be acked after the restart');
  assert.deepEqual(sender.pending(), [], 'the outbox is empty once every write is acked');
  const afterAcks = [];
  for (const i of range(1, 10)) {
    afterAcks.push(await sender.send(room, `after ${i}`));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  const acks = [...before, ...duringAcks, ...afterAcks];
  assert.equal(new Set(acks.map((a) => a.seq)).size, 30, 'every write took its own seq');
  assert.deepEqual(
    duringAcks.map((a) => a.id),
    queuedIds,
  );
  const ackedSeqs = acks.map((a) => a.seq).sort((a, b) => a - b);
  assert.deepEqual(ackedSeqs, range(1, 30), 'the room holds exactly these 30 entries');

  await until(() => seen.seqs(room).length >= 30, 'the follower to deliver all 30');
  // Anything late (a duplicate) would come right away: give it a moment.
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(seen.seqs(room), range(1, 30), 'the follower delivered every seq once, in order');
  const byseq = new Map(acks.map((a) => [a.seq, a.id]));
  assert.deepEqual(
    seen.ids(room),
    range(1, 30).map((seq) => byseq.get(seq)),
    'each delivered entry is the acked write of its seq',
  );
  assert.equal(follower.lastSeq(room), 30);
  assert.ok(seen.disconnects.length >= 1, 'the follower did see the drop');

  // Stored once each: the room's history, read by a third client.
  const reader = clients.make(server, { name: 'reader' });
  const page = await reader.history(room, { limit: 200 });
  assert.deepEqual(
    page.messages.map((m) => m.seq),
    range(1, 30),
  );
  for (const id of queuedIds) {
    assert.equal(page.messages.filter((m) => m.id === id).length, 1, `${id} is stored once`);
  }
});

test('a room whose history started over on the server is joined anew, with a `reset` joined event', async () => {
  const reset = await ChatServer.start();
  try {
    const room = 'started-over';
    const follower = clients.make(reset, { name: 'follower' });
    const sender = clients.make(reset, { name: 'sender' });
    const seen = new Recorder(follower);
    await follower.join(room);
    await sender.join(room);
    await Promise.all(range(1, 5).map((i) => sender.send(room, `old ${i}`)));
    await until(() => seen.seqs(room).length === 5, 'the follower to see the old messages');

    // An empty data directory: the room's seq starts again from 1.
    await reset.kill9();
    rmSync(reset.dataDir, { recursive: true, force: true });
    mkdirSync(reset.dataDir);
    const rejoined = nextEvent(follower, 'joined', (_, info) => info.rejoin);
    await reset.relaunch();
    const [joined, info] = await deadline(rejoined, 'the follower to join again');
    assert.deepEqual(info, { rejoin: true, reset: true });
    assert.equal(joined.seq, 0);
    assert.equal(follower.lastSeq(room), 0);

    // Numbered 1 again: a follower that kept its old place would drop it.
    await until(() => sender.online, 'the sender to be back');
    const ack = await sender.send(room, 'new 1');
    assert.equal(ack.seq, 1);
    await until(() => seen.seqs(room).length === 6, 'the follower to see the new message');
    assert.deepEqual(seen.entries(room).at(-1), { seq: 1, id: ack.id, kind: 'message', text: 'new 1', ts: ack.ts });
  } finally {
    await reset.close();
  }
});
