// The seed article's React client (seed-client/), built with Vite and served
// from its own origin, in Chromium against chat-server on another origin:
// join a room, send, see messages from Socket.IO and native clients, and the
// system message when someone leaves. A page on an origin the server does
// not allow cannot connect.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { ChatServer, NativeClient, SioClient, WAIT_MS, deadline, repoRoot } from './harness.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARTIFACTS = process.env.CHAT_ARTIFACTS_DIR || path.join(repoRoot, 'ci-artifacts');
const SEED = path.join(repoRoot, 'tests/socketio/seed-client');
const BUILD_TIMEOUT_MS = 120_000;

let browser;
const servers = [];
const cleanups = [];

before(async () => {
  // Playwright already turns off background networking; these keep
  // Chromium off the network too.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--disable-gpu', '--disable-quic'] });
});

after(async () => {
  await browser?.close();
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** `vite build` of the seed client, talking to `chatUrl`; returns the output dir. */
async function build(chatUrl) {
  const outDir = mkdtempSync(path.join(tmpdir(), 'seed-client-'));
  cleanups.push(() => rmSync(outDir, { recursive: true, force: true }));
  const vite = spawn(
    process.execPath,
    [path.join(SEED, 'node_modules/vite/bin/vite.js'), 'build', '--outDir', outDir, '--emptyOutDir'],
    { cwd: SEED, env: { ...process.env, VITE_CHAT_URL: chatUrl }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  vite.stdout.on('data', (chunk) => (output += chunk));
  vite.stderr.on('data', (chunk) => (output += chunk));
  const code = await deadline(new Promise((resolve) => vite.on('exit', resolve)), 'vite build', BUILD_TIMEOUT_MS).catch(
    (error) => {
      vite.kill('SIGKILL');
      throw error;
    },
  );
  assert.equal(code, 0, `vite build failed:\n${output}`);
  return outDir;
}

/** Serves `dir` on 127.0.0.1: the page's own origin. */
async function serve(dir) {
  const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8' };
  const server = createServer((request, response) => {
    const file = path.join(dir, request.url === '/' ? 'index.html' : path.normalize(request.url));
    if (!file.startsWith(dir)) return response.writeHead(403).end();
    try {
      const body = readFileSync(file);
      response.writeHead(200, { 'Content-Type': types[path.extname(file)] ?? 'application/octet-stream' });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${server.address().port}/`;
}

async function chatServer(args = []) {
  const server = await ChatServer.start(args);
  cleanups.push(() => server.close());
  return server;
}

/** The seed page as a person uses it. */
async function open(pageUrl, setup = () => {}) {
  const context = await browser.newContext();
  cleanups.push(() => context.close());
  const page = await context.newPage();
  setup(page);
  const console = [];
  page.on('console', (message) => console.push(message.text()));
  page.on('pageerror', (error) => console.push(`pageerror: ${error.message}`));
  await page.goto(pageUrl);
  return {
    page,
    console,
    room: page.locator('input').nth(0),
    message: page.locator('input').nth(1),
    join: page.getByRole('button', { name: '加入聊天室' }),
    send: page.getByRole('button', { name: '发送消息' }),
    items: page.locator('li'),
    /** Waits until the list shows exactly `expected`. */
    async shows(expected) {
      try {
        await page.waitForFunction(
          (expected) => JSON.stringify([...document.querySelectorAll('li')].map((li) => li.textContent)) === JSON.stringify(expected),
          expected,
          { timeout: WAIT_MS, polling: 50 },
        );
      } catch (error) {
        const actual = await this.items.allTextContents();
        throw new Error(`the page never showed ${JSON.stringify(expected)}; it shows ${JSON.stringify(actual)}`, {
          cause: error,
        });
      }
    },
  };
}

test('the seed client, from its own origin, chats with Socket.IO and native clients', async () => {
  const server = await chatServer();
  const pageUrl = await serve(await build(server.url));
  assert.notEqual(new URL(pageUrl).origin, new URL(server.url).origin, 'two origins');

  // A native client and a Socket.IO client are in the room; then the page joins.
  const native = await NativeClient.connect(server.url, 'native-bob');
  cleanups.push(() => native.close());
  await native.request({ type: 'join', room: '聊天室' });
  const carol = await SioClient.connect(server.url, { auth: { name: 'carol' } });
  cleanups.push(() => carol.close());
  await carol.request('join', '聊天室');
  const seed = await open(pageUrl);
  await seed.room.fill('聊天室');
  await seed.join.click();
  const arrived = await native.waitFor((f) => f.type === 'presence' && f.event === 'join' && /^guest-/.test(f.user.name), 'the page joining');
  assert.equal(arrived.room, '聊天室');

  await seed.message.fill('大家好 👋');
  await seed.send.click();
  await seed.shows(['大家好 👋']);
  assert.equal(await seed.message.inputValue(), '', 'the input is cleared');
  const atBob = await native.waitFor((f) => f.type === 'message' && f.text === '大家好 👋', 'the page message at bob');

  const ack = await native.request({ type: 'send', room: '聊天室', text: 'hello from /ws' });
  assert.equal(ack.seq, atBob.seq + 1);
  await seed.shows(['大家好 👋', 'hello from /ws']);
  await carol.request('message', { room: '聊天室', content: 'hi from Socket.IO' });
  await seed.shows(['大家好 👋', 'hello from /ws', 'hi from Socket.IO']);

  carol.close();
  await seed.shows(['大家好 👋', 'hello from /ws', 'hi from Socket.IO', 'carol left the room']);

  mkdirSync(ARTIFACTS, { recursive: true });
  await seed.page.screenshot({ path: path.join(ARTIFACTS, 'socketio-seed-client.png') });
  assert.deepEqual(
    seed.console.filter((line) => /error/i.test(line)),
    [],
    'no errors in the page',
  );
});

test('a page from an origin the server does not allow cannot connect', async () => {
  const server = await chatServer(['--allowed-origins', 'https://chat.example.com']);
  const pageUrl = await serve(await build(server.url));
  const answered = [];
  const seed = await open(pageUrl, (page) =>
    page.on('requestfinished', (request) => {
      if (new URL(request.url()).pathname === '/socket.io/') answered.push(request.url());
    }),
  );
  await deadline(
    (async () => {
      while (!seed.console.some((line) => /CORS policy/.test(line))) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })(),
    'the browser to block the handshake',
  );
  assert.deepEqual(answered, [], 'no Socket.IO request got through');
});
