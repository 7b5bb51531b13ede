// The package as published: `npm pack` (whose prepack builds types/),
// installed from its tarball into a fresh project, then (a) imported from
// Node and connected to the server, (b) used from a TypeScript file that
// the repository's TypeScript checks (`moduleResolution: nodenext`): the
// API and the event types resolve, and are not `any`.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';

import { ChatServer } from './harness.js';

const run = promisify(execFile);
const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tsc = path.join(pkgDir, 'node_modules/typescript/bin/tsc');
const wsEntry = pathToFileURL(path.join(pkgDir, 'node_modules/ws/wrapper.mjs')).href;

let server;
let work;
let project;

before(async () => {
  server = await ChatServer.start();
  work = mkdtempSync(path.join(tmpdir(), 'chat-js-pack-'));
  project = path.join(work, 'consumer');
  mkdirSync(project);
});

after(async () => {
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('npm pack, install the tarball, import it, connect, and type-check a TypeScript consumer', { timeout: 120_000 }, async () => {
  const { stdout: packed } = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: pkgDir });
  const [info] = JSON.parse(packed.slice(packed.indexOf('[')));
  const files = info.files.map((f) => f.path).sort();
  for (const needed of ['package.json', 'src/index.js', 'src/protocol.d.ts', 'types/index.d.ts', 'types/client.d.ts', 'types/protocol.d.ts']) {
    assert.ok(files.includes(needed), `the tarball holds ${needed} (it holds ${files.join(', ')})`);
  }
  assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('node_modules/')), 'no tests or dependencies in the tarball');
  const tarball = path.join(work, info.filename);

  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // No runtime dependencies: the tarball installs without the registry.
  await run('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball], { cwd: project });
  assert.ok(readdirSync(path.join(project, 'node_modules/@chat-server/client')).includes('types'));

  // (a) Node: import by the package's name, connect, send, read back.
  writeFileSync(
    path.join(project, 'use.mjs'),
    `import WebSocket from ${JSON.stringify(wsEntry)};
import { ChatClient, ServerError, ERROR_CODES } from '@chat-server/client';
const client = new ChatClient({ url: process.argv[2], name: 'packed', WebSocket });
const welcome = await client.connect();
await client.join('packed');
const ack = await client.send('packed', 'from the tarball');
const page = await client.history('packed');
let code = null;
try { await client.history('packed', { limit: 0 }); } catch (e) { code = e instanceof ServerError ? e.code : String(e); }
client.close();
console.log(JSON.stringify({ user: welcome.user.name, seq: ack.seq, texts: page.messages.map((m) => m.text), code, codes: ERROR_CODES.length }));
`,
  );
  const { stdout } = await run(process.execPath, ['use.mjs', server.wsUrl], { cwd: project, timeout: 30_000 });
  assert.deepEqual(JSON.parse(stdout), { user: 'packed', seq: 1, texts: ['from the tarball'], code: 'bad_request', codes: 10 });

  // (b) TypeScript: the published types, through the package's exports.
  writeFileSync(
    path.join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'es2022',
        lib: ['es2022', 'dom'],
        module: 'nodenext',
        moduleResolution: 'nodenext',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: [],
      },
      files: ['consumer.ts'],
    }),
  );
  writeFileSync(
    path.join(project, 'consumer.ts'),
    `import {
  ChatClient,
  ClosedError,
  RefusedError,
  ServerError,
  dmRoom,
  type AckFrame,
  type ChatClientOptions,
  type ChatEvents,
  type ErrorCode,
  type Message,
  type PendingWrite,
  type ServerFrame,
  type WebSocketConstructor,
} from '@chat-server/client';

declare const WS: WebSocketConstructor;
const options: ChatClientOptions = { url: 'ws://127.0.0.1:1/ws', name: 'ts', WebSocket: WS, sendRate: null, getToken: async () => 'x' };
const client = new ChatClient(options);

client.on('message', (message: Message) => {
  const seq: number = message.seq;
  const from: string = message.from.name;
  const reply: number | undefined = message.reply_to;
  // @ts-expect-error a message's seq is a number, not a string
  const wrong: string = message.seq;
  void [seq, from, reply, wrong];
});
client.on('change', (change) => {
  if (change.type === 'edited') {
    const text: string = change.text;
    void text;
  }
  // @ts-expect-error no such change kind
  if (change.type === 'renamed') return;
});
client.on('disconnected', ({ code, reason }) => void [code.toFixed(), reason.trim()]);
client.on('outbox', (writes: PendingWrite[]) => void writes.map((w) => w.id));
client.on('closed', (why) => {
  if (why instanceof RefusedError) void why.status.toFixed();
});
// @ts-expect-error no such event
client.on('no-such-event', () => {});

const events: (keyof ChatEvents)[] = ['state', 'welcome', 'joined', 'message', 'change', 'ack', 'write_failed', 'frame'];

async function use(): Promise<number> {
  const ack: AckFrame = await client.send('general', 'hi', { replyTo: 1, id: 'c-1' });
  const duplicate: true | undefined = ack.duplicate;
  const history = await client.history('general', { after: ack.seq, limit: 10 });
  const first: Message | undefined = history.messages[0];
  const rooms = await client.rooms();
  const unread: number = rooms[0]?.unread ?? 0;
  try {
    await client.search('x');
  } catch (error) {
    if (error instanceof ServerError) {
      const code: ErrorCode = error.code;
      void code;
    } else if (error instanceof ClosedError) {
      void error.message;
    }
  }
  // @ts-expect-error send takes a room and a text
  await client.send('general');
  void [duplicate, first, events];
  return unread + (client.lastSeq('general') ?? 0) + client.pending().length;
}

function frameType(frame: ServerFrame): string {
  switch (frame.type) {
    case 'ack':
      return frame.id;
    case 'error':
      return frame.code;
    default:
      return frame.type;
  }
}

void [use, frameType, dmRoom('a', 'b')];
`,
  );
  // Each `@ts-expect-error` above must find its error: were the types
  // `any`, these unused directives would fail the check.
  try {
    await run(process.execPath, [tsc, '--noEmit', '-p', 'tsconfig.json'], { cwd: project });
  } catch (error) {
    assert.fail(`tsc found errors in the consumer:\n${error.stdout}${error.stderr}`);
  }
});
