// The README's runnable examples, run as a user would: examples/tail.mjs
// follows a room and prints what examples/send.mjs sends, and a refused
// send exits non-zero with the server's code.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

import { ChatServer, deadline, repoRoot } from './harness.js';

const examples = path.join(repoRoot, 'clients/js/examples');
const run = promisify(execFile);
let server;

before(async () => {
  server = await ChatServer.start();
});

after(async () => {
  await server?.close();
});

test('examples/tail.mjs prints what examples/send.mjs sends; a refused send says why', async () => {
  const tail = spawn(process.execPath, [path.join(examples, 'tail.mjs'), server.wsUrl, 'examples'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    let stdout = '';
    let stderr = '';
    tail.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    const online = new Promise((resolve) => {
      tail.stderr.on('data', (chunk) => {
        stderr += chunk;
        if (stderr.includes('[online]')) resolve(undefined);
      });
    });
    await deadline(online, 'the tail to connect');

    const sent = await run(process.execPath, [path.join(examples, 'send.mjs'), server.wsUrl, 'examples', 'hello 你好']);
    const ack = JSON.parse(sent.stdout);
    assert.equal(ack.type, 'ack');
    assert.equal(ack.seq, 1);

    const printed = new Promise((resolve) => {
      const check = () => stdout.includes('\n') && resolve(undefined);
      tail.stdout.on('data', check);
      check();
    });
    await deadline(printed, 'the tail to print the message');
    assert.deepEqual(JSON.parse(stdout.split('\n')[0]), { room: 'examples', seq: 1, from: 'sender', text: 'hello 你好' });

    const refused = await run(process.execPath, [path.join(examples, 'send.mjs'), server.wsUrl, 'examples', 'x'.repeat(5000)]).then(
      () => null,
      (error) => error,
    );
    assert.ok(refused, 'a refused send exits non-zero');
    assert.match(refused.stderr, /^refused \(too_long\): /);
  } finally {
    tail.kill('SIGINT');
  }
});
