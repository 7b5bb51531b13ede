// How Socket.IO connections end: a client too slow for its room is dropped
// (its transport closed, so it reconnects by itself) and resumes with
// nothing lost; at shutdown clients are told to reconnect, not to go away;
// after a drain they come back to the restarted node and resume.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ChatServer, NativeClient, SioClient, WAIT_MS, deadline, until } from './harness.js';

const servers = [];
const clients = [];

after(async () => {
  for (const client of clients) client.close();
  for (const server of servers) await server.close();
});

async function slowConsumersDropped(server) {
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const line = metrics.split('\n').find((l) => l.startsWith('chat_slow_consumers_dropped_total'));
  return line ? Number(line.split(' ').pop()) : 0;
}

test('a client that stops reading is dropped, reconnects, and resumes with nothing lost', async () => {
  const server = await ChatServer.start([
    // Small queues, so that filling one takes little; the flooder, which
    // reads, gets at most 2 × 25 items at a time.
    '--outbound-queue',
    '64',
    '--send-rate',
    '2000',
    '--send-burst',
    '500',
  ]);
  servers.push(server);
  const room = 'flood';
  const slow = await SioClient.connect(server.url, { auth: { name: 'slow' }, transports: ['websocket'] });
  clients.push(slow);
  const flooder = await SioClient.connect(server.url, { auth: { name: 'flooder' }, transports: ['websocket'] });
  clients.push(flooder);
  await flooder.request('join', room);

  let lastSeq = 0;
  const seqs = [];
  const take = (m) => {
    if (m.seq <= lastSeq) return;
    seqs.push(m.seq);
    lastSeq = m.seq;
  };
  slow.socket.on('message', (m) => m.room === room && m.type === 'message' && take(m));
  const sessions = [];
  const join = async () => {
    const joined = await slow.request('join', { room, since: lastSeq });
    sessions.push(slow.socket.id);
    joined.messages.forEach(take);
    // More missed than a join returns: page forward until caught up.
    let more = !joined.complete;
    while (more) {
      const page = await slow.request('history', { room, after: lastSeq, limit: 200 });
      page.messages.forEach(take);
      more = page.more;
    }
  };
  await join();
  slow.socket.on('connect', join);

  // The client stops reading its socket; the room keeps talking, 12 KB a message.
  slow.socket.io.engine.transport.ws._socket.pause();
  const text = '你'.repeat(4000);
  let sent = 0;
  const started = Date.now();
  while ((await slowConsumersDropped(server)) === 0) {
    assert.ok(Date.now() - started < 4 * WAIT_MS, `not dropped after ${sent} messages`);
    const batch = [];
    for (let i = 0; i < 25; i++) batch.push(flooder.request('message', { room, content: text, id: `f-${sent++}` }));
    await Promise.all(batch);
  }

  // Reading again, it finds its connection closed, reconnects and resumes.
  slow.socket.io.engine.transport.ws._socket.resume();
  await until(() => sessions.length === 2, 'the join after the drop', 4 * WAIT_MS);
  await flooder.request('message', { room, content: 'last', id: 'last' });
  await until(() => lastSeq === sent + 1, `all ${sent + 1} messages at the slow client`, 4 * WAIT_MS);
  assert.deepEqual(
    seqs,
    Array.from({ length: sent + 1 }, (_, i) => i + 1),
    'every message exactly once, in order',
  );
  assert.notEqual(sessions[0], sessions[1]);
});

test('shutdown: clients are told to reconnect, not to go away', async () => {
  const server = await ChatServer.start();
  servers.push(server);
  const alice = await SioClient.connect(server.url, { auth: { name: 'alice' }, transports: ['websocket'] });
  clients.push(alice);
  const bob = await SioClient.connect(server.url, { auth: { name: 'bob' }, transports: ['polling'] });
  clients.push(bob);
  const reasons = [alice, bob].map((c) =>
    deadline(new Promise((resolve) => c.socket.once('disconnect', resolve)), 'disconnect'),
  );
  await server.stop();
  for (const [i, reason] of (await Promise.all(reasons)).entries()) {
    // Not "io server disconnect", after which a client stays away.
    assert.match(reason, /^transport (close|error)$/, `client ${i}`);
  }
  assert.equal(alice.socket.active, true, 'the client is reconnecting');
  assert.equal(bob.socket.active, true, 'the client is reconnecting');
});

test('drain: websocket and polling clients reconnect to the restarted node and resume', async () => {
  const server = await ChatServer.start();
  servers.push(server);
  const room = 'drained';
  // What an application does: keep the last seq seen, and on every
  // connect join from there. `seen` is everything it got, in order.
  const follow = async (transport) => {
    const client = await SioClient.connect(server.url, { auth: { name: transport }, transports: [transport] });
    clients.push(client);
    const follower = { client, seen: [], lastSeq: 0, connects: 1 };
    const take = (m) => {
      follower.seen.push(m.seq);
      follower.lastSeq = Math.max(follower.lastSeq, m.seq);
    };
    const join = async () => {
      const joined = await client.request('join', { room, since: follower.lastSeq });
      joined.messages.forEach(take);
    };
    client.socket.on('message', (m) => {
      if (m.room === room && m.type === 'message') take(m);
    });
    client.socket.on('connect', () => {
      follower.connects += 1;
      join();
    });
    await join();
    return follower;
  };
  const followers = [await follow('websocket'), await follow('polling')];
  const say = async (texts) => {
    const writer = await NativeClient.connect(server.url, 'writer');
    await writer.request({ type: 'join', room });
    for (const text of texts) await writer.request({ type: 'send', room, text });
    writer.close();
  };
  await say(['one', 'two']);
  await until(() => followers.every((f) => f.lastSeq === 2), 'the first messages live');

  const reasons = followers.map((f) =>
    deadline(new Promise((resolve) => f.client.socket.once('disconnect', resolve)), 'disconnect'),
  );
  const drained = await server.drain();
  assert.equal(drained.status, 202);
  assert.equal(drained.body.draining, true);
  assert.equal(drained.body.connections, 2, 'both clients were connected');
  assert.equal(drained.code, 0, 'the drained server exits 0');
  for (const [i, reason] of (await Promise.all(reasons)).entries()) {
    // Not "io server disconnect", after which a client stays away.
    assert.match(reason, /^transport (close|error)$/, `client ${i}`);
  }
  // Sent while the clients are away: only their `since` brings it.
  await server.startAgain();
  await say(['three']);
  await until(() => followers.every((f) => f.connects === 2), 'both clients reconnected by themselves');
  await say(['four']);
  for (const f of followers) {
    await until(() => f.lastSeq === 4, 'every message after the restart');
    assert.deepEqual(f.seen, [1, 2, 3, 4], 'every message exactly once, in order');
  }
});
