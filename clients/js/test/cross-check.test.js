// Three clients, one room: this library, the Rust client (the `chat` CLI
// of crates/client, `chat --json tail` following and `chat send` writing)
// and a Socket.IO client (socket.io-client). Each sends, at the same time
// as the others; each follows the room; all three see one identical
// sequence: the same seqs, ids and texts in the same order, which are the
// acked writes of all three.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { io } from 'socket.io-client';

import { CHAT_CLI_BIN, ChatServer, Clients, Recorder, deadline, haveChatCli, range, until } from './harness.js';

const ROOM = 'cross';
const EACH = 6;

let server;
const clients = new Clients();
const children = [];
let sio;

before(async () => {
  server = await ChatServer.start();
});

after(async () => {
  clients.closeAll();
  sio?.disconnect();
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await server?.close();
});

/** Runs the chat CLI to its end; resolves with its stdout. */
function chat(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(CHAT_CLI_BIN, ['--url', server.wsUrl, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
    });
    child.stderr.on('data', (chunk) => {
      err += chunk;
    });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`chat ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

test('the JS client, the Rust client and a Socket.IO client see one identical sequence', async () => {
  assert.ok(haveChatCli(), `the Rust client's chat binary is missing at ${CHAT_CLI_BIN} (set CHAT_CLI_BIN)`);
  const total = 3 * EACH;

  // Followers: the JS client, the Socket.IO client, and `chat tail`.
  const js = clients.make(server, { name: 'js' });
  const seen = new Recorder(js);
  await js.join(ROOM);
  const joinedBy = new Set();
  js.on('presence', (p) => {
    if (p.event === 'join') joinedBy.add(p.user.name);
  });

  sio = io(server.url, { auth: { name: 'sio' }, transports: ['websocket'], reconnection: false });
  const sioMessages = [];
  sio.on('message', (m) => {
    if (m.type === 'message' && m.room === ROOM) sioMessages.push(m);
  });
  await deadline(new Promise((resolve, reject) => {
    sio.once('connect', resolve);
    sio.once('connect_error', reject);
  }), 'socket.io connect');
  const sioJoined = await deadline(sio.emitWithAck('join', { room: ROOM, since: 0 }), 'socket.io join');
  assert.equal(sioJoined.room, ROOM);

  const tail = spawn(
    CHAT_CLI_BIN,
    ['--url', server.wsUrl, '--name', 'rust-tail', '--json', 'tail', ROOM, '--since', '0', '--count', String(total)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(tail);
  let tailOut = '';
  let tailErr = '';
  tail.stdout.on('data', (chunk) => {
    tailOut += chunk;
  });
  tail.stderr.on('data', (chunk) => {
    tailErr += chunk;
  });
  const tailDone = new Promise((resolve) => tail.on('exit', resolve));
  await until(() => joinedBy.has('rust-tail'), 'chat tail to join the room');

  // Senders, all at once: each waits for its own ack before its next.
  const sendJs = (async () => {
    const acks = [];
    for (const i of range(1, EACH)) acks.push(await js.send(ROOM, `from js ${i}`));
    return acks;
  })();
  const sendSio = (async () => {
    const acks = [];
    for (const i of range(1, EACH)) {
      const ack = await deadline(sio.emitWithAck('message', { room: ROOM, content: `from sio ${i}` }), 'a socket.io ack');
      assert.ok(!ack.error, JSON.stringify(ack));
      acks.push(ack);
    }
    return acks;
  })();
  const sendRust = (async () => {
    const acks = [];
    for (const i of range(1, EACH)) {
      const out = await chat(['--name', 'rust', '--json', 'send', ROOM, `from rust ${i}`]);
      acks.push(JSON.parse(out.trim()));
    }
    return acks;
  })();
  const [jsAcks, sioAcks, rustAcks] = await deadline(Promise.all([sendJs, sendSio, sendRust]), 'every send', 30_000);
  for (const ack of rustAcks) assert.equal(ack.type, 'ack');

  const acked = [...jsAcks, ...sioAcks, ...rustAcks].map((a) => ({ seq: a.seq, id: a.id })).sort((a, b) => a.seq - b.seq);
  assert.deepEqual(
    acked.map((a) => a.seq),
    range(1, total),
    'the acks name every seq of the room once',
  );

  const exit = await deadline(tailDone, 'chat tail to print every message and exit', 20_000);
  assert.equal(exit, 0, `chat tail exited ${exit}: ${tailErr}`);
  await until(() => seen.entries(ROOM).length >= total && sioMessages.length >= total, 'every follower to see all');

  const rust = tailOut
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line))
    .map((f) => ({ seq: f.seq, id: f.id, text: f.text, from: f.from.name }));
  const fromJs = seen.entries(ROOM).map((e) => ({ seq: e.seq, id: e.id, text: e.text }));
  const fromSio = sioMessages.map((m) => ({ seq: m.seq, id: m.id, text: m.text }));
  assert.equal(rust.length, total);
  assert.deepEqual(
    rust.map(({ seq, id, text }) => ({ seq, id, text })),
    fromJs,
    'the Rust client and the JS client saw the same sequence',
  );
  assert.deepEqual(fromSio, fromJs, 'the Socket.IO client and the JS client saw the same sequence');
  assert.deepEqual(
    fromJs.map(({ seq, id }) => ({ seq, id })),
    acked,
    'and it is the acked writes',
  );
  // Every sender's texts are there, each once, in the order each sent them.
  for (const who of ['js', 'sio', 'rust']) {
    assert.deepEqual(
      fromJs.filter((e) => e.text.startsWith(`from ${who} `)).map((e) => e.text),
      range(1, EACH).map((i) => `from ${who} ${i}`),
    );
  }
  // Socket.IO's `content` is the text.
  for (const m of sioMessages) assert.equal(m.content, m.text);
});
