// The admin dashboard (/admin) in Chromium against the real server: its
// charts draw the sampler's history after traffic, the rooms and nodes
// tables fill in, and every moderation action works end to end on a chat
// page someone has open (find and delete: a tombstone; search; disconnect:
// the socket closes; room and server bans: `forbidden`, and lifting them).
// With an API key the page asks for it. Screenshots: desktop, phone, dark.
//
// The last test runs two nodes on PostgreSQL and Redis: a ban made in node
// A's dashboard kicks the user connected to node B. Without those services
// it is skipped, by name, unless CI=true, where it fails.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ARTIFACTS, ChatPage, ChatServer, launchBrowser, WAIT_MS } from './harness.js';
const KEY = 'browser-test-api-key-0123';
/** Samples every 200 ms: the charts have points within a second. */
const FAST_STATS = ['--stats-interval-ms', '200'];
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };

let server;
let browser;
const pages = [];

before(async () => {
  server = await ChatServer.start(FAST_STATS);
  browser = await launchBrowser();
});

after(async () => {
  for (const { errors, ignored } of pages) {
    assert.deepEqual(errors.filter((e) => !ignored(e)), [], 'no script errors on the page');
  }
  await browser?.close();
  await server?.close();
});

/** A page's script and console errors, checked at the end. */
function watch(page, ignored = () => false) {
  const entry = { errors: [], ignored };
  page.on('pageerror', (error) => entry.errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') entry.errors.push(message.text());
  });
  pages.push(entry);
}

/** The dashboard of the server at `url`. */
async function openAdmin(url, contextOptions = {}, ignored = undefined) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...contextOptions });
  const page = await context.newPage();
  watch(page, ignored);
  await page.goto(`${url}/admin`);
  return page;
}

/** A chat page at `url` whose person joined `room`; its socket's frames are kept. */
async function openChat(url, name, room) {
  const chat = await ChatPage.open(browser, url);
  watch(chat.page, (e) => /WebSocket|Failed to load resource/.test(e));
  chat.received = [];
  chat.closes = [];
  chat.socketErrors = [];
  // Chromium says why a handshake failed in the console only.
  chat.page.on('console', (message) => chat.socketErrors.push(message.text()));
  chat.page.on('websocket', (ws) => {
    ws.on('socketerror', (error) => chat.socketErrors.push(String(error)));
    ws.on('framereceived', ({ payload }) => {
      try {
        chat.received.push(JSON.parse(payload));
      } catch {
        // not a JSON frame
      }
    });
    ws.on('close', () => chat.closes.push(Date.now()));
  });
  await chat.join(name, room);
  return chat;
}

/** The user id of the member of `room` called `name` (from the API). */
async function userId(url, room, name) {
  const members = await (await fetch(`${url}/api/rooms/${encodeURIComponent(room)}/members`)).json();
  const member = members.find((m) => m.name === name);
  assert.ok(member, `${name} in ${room}: ${JSON.stringify(members)}`);
  return member.id;
}

async function until(what, check, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function screenshot(page, file) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, file), animations: 'disabled', fullPage: true });
}

/** Presses the dialog's confirming button (its label says the action). */
async function confirm(page, action) {
  const dialog = page.getByRole('dialog');
  await dialog.getByRole('button', { name: action, exact: true }).click();
  await dialog.waitFor({ state: 'hidden' });
}

const chart = (page, title) => page.locator(`figure.chart[data-chart="${title}"]`);

test('the dashboard charts traffic and lists rooms and nodes', async () => {
  const alice = await openChat(server.url, 'alice', 'lobby');
  const bob = await openChat(server.url, 'bob', 'lobby');
  for (let i = 0; i < 5; i++) await alice.send(`hello ${i}`);
  await bob.waitForTexts(['hello 0', 'hello 1', 'hello 2', 'hello 3', 'hello 4']);
  const page = await openAdmin(server.url);
  await page.getByRole('heading', { name: 'Rooms' }).waitFor();

  // Samples arrive and the lines are drawn; the stored messages show as a
  // rate above zero at some point of the messages chart.
  const messages = chart(page, 'Messages stored per second');
  await page.waitForFunction(
    () => Number(document.querySelector('figure.chart[data-chart="Messages stored per second"]').dataset.points) >= 3,
    null,
    { timeout: WAIT_MS },
  );
  const line = await messages.locator('path.series-0').getAttribute('d');
  assert.match(line, /^M[\d.]+,[\d.]+h0(L[\d.]+,[\d.]+)+$/, 'a polyline of the samples');
  const heights = [...line.matchAll(/[ML][\d.]+,([\d.]+)/g)].map((m) => Number(m[1]));
  assert.ok(Math.min(...heights) < Math.max(...heights), 'the messages line rises above zero');
  const connections = chart(page, 'Connections');
  await until('connections read 2', async () => (await connections.locator('dd').first().textContent()) === '2');
  // The latency chart: three series, each with its readout.
  const latency = chart(page, 'Ack latency');
  assert.equal(await latency.locator('dt').count(), 3);
  assert.match(await latency.locator('svg desc').textContent(), /^Latest: p50 .*p99 .*p99\.9 /);
  assert.equal(await latency.getByRole('img', { name: /Ack latency/ }).count(), 1, 'the chart is an image with its title');

  // Hover, then the keyboard: the readout follows a past sample.
  const svg = messages.locator('svg');
  const box = await svg.boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
  assert.equal(await messages.locator('line.cursor').getAttribute('visibility'), 'visible');
  await page.mouse.move(0, 0);
  await svg.focus();
  await page.keyboard.press('Home');
  assert.equal(await messages.locator('line.cursor').getAttribute('visibility'), 'visible');
  assert.doesNotMatch(await messages.locator('.when').textContent(), /latest/);
  await page.keyboard.press('Escape');
  assert.match(await messages.locator('.when').textContent(), /latest/);

  const lobby = page.locator('#rooms-table tbody tr[data-room="lobby"]');
  await lobby.waitFor();
  const cells = await lobby.locator('td').allTextContents();
  assert.equal(cells[0], '2', 'members');
  assert.match(cells[1], /alice/);
  assert.match(cells[1], /bob/);
  assert.equal(cells[3], '5', 'last seq');
  const nodes = page.locator('#nodes-table tbody tr');
  assert.equal(await nodes.count(), 1);
  assert.match(await nodes.first().textContent(), /this node.*ready/);
  await screenshot(page, 'admin-desktop.png');
  await page.context().close();
});

test('on a phone the panels stack and tables scroll; dark mode is dark', async () => {
  const phone = await openAdmin(server.url, PHONE);
  await phone.locator('#rooms-table').waitFor();
  await phone.waitForFunction(() => document.querySelector('#nodes-table tbody tr') !== null);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
  const charts = await phone.locator('figure.chart').evaluateAll((figures) => figures.map((f) => f.getBoundingClientRect().left));
  assert.ok(charts.every((left) => left === charts[0]), 'charts in one column');
  await screenshot(phone, 'admin-phone.png');
  await phone.context().close();

  const dark = await openAdmin(server.url, { colorScheme: 'dark' });
  await dark.locator('#rooms-table').waitFor();
  await dark.waitForFunction(() => document.querySelector('#nodes-table tbody tr') !== null);
  const background = await dark.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const [r, g, b] = background.match(/\d+/g).map(Number);
  assert.ok(r + g + b < 150, `a dark background, not ${background}`);
  await screenshot(dark, 'admin-dark.png');
  await dark.context().close();
});

test('find a message by room and seq, and delete it: a tombstone for members', async () => {
  const carol = await openChat(server.url, 'carol', 'modroom');
  const dave = await openChat(server.url, 'dave', 'modroom');
  await carol.send('fine words');
  await carol.send('rude words');
  await dave.waitForTexts(['fine words', 'rude words']);
  const page = await openAdmin(server.url);
  await page.getByLabel('Room', { exact: true }).first().fill('modroom');
  await page.getByLabel('Seq').fill('2');
  await page.getByRole('button', { name: 'Find', exact: true }).click();
  const found = page.locator('#found .entry');
  await found.waitFor();
  assert.equal(await found.locator('.text').textContent(), 'rude words');
  assert.match(await found.locator('.meta').textContent(), /modroom #2 · carol/);
  // Cancel first: nothing happens.
  await found.getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await found.locator('.text').textContent(), 'rude words');
  await found.getByRole('button', { name: 'Delete' }).click();
  await confirm(page, 'Delete');
  await dave.waitForTexts(['fine words', 'message deleted']);
  await carol.waitForTexts(['fine words', 'message deleted']);
  await until('the found message shows deleted', async () => (await page.locator('#found .entry.deleted').count()) === 1);
  assert.match(await page.locator('#notice').textContent(), /Deleted message 2 of modroom/);
  // Its versions: the original text, then the deletion.
  await page.locator('#found').getByRole('button', { name: 'Versions' }).click();
  const versions = page.locator('#found .versions li');
  await versions.nth(1).waitFor();
  assert.match(await versions.nth(0).textContent(), /^#2 “rude words” · carol/);
  assert.match(await versions.nth(1).textContent(), /^#3 deleted · api/);
  // A seq with no message says so.
  await page.getByLabel('Seq').fill('99');
  await page.getByRole('button', { name: 'Find', exact: true }).click();
  await until('no such message', async () => /no message with seq 99/.test(await page.locator('#notice').textContent()));
  await page.context().close();
});

test('search finds messages, and a result opens in Find', async () => {
  const erin = await openChat(server.url, 'erin', 'searchroom');
  await erin.send('the needle is here');
  await erin.send('only hay');
  await erin.waitForTexts(['the needle is here', 'only hay']);
  const page = await openAdmin(server.url);
  await page.getByLabel('Words').fill('needle');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  const results = page.locator('#search-results li');
  await results.first().waitFor();
  assert.equal(await results.count(), 1);
  assert.equal(await results.first().locator('.text').textContent(), 'the needle is here');
  await results.first().getByRole('button', { name: /Open message 1 of searchroom/ }).click();
  await page.locator('#found .entry').waitFor();
  assert.equal(await page.locator('#found .entry .text').textContent(), 'the needle is here');
  await page.context().close();
});

test('disconnect a user: their socket closes', async () => {
  const frank = await openChat(server.url, 'frank', 'kickroom');
  const id = await userId(server.url, 'kickroom', 'frank');
  const page = await openAdmin(server.url);
  await page.locator('#disconnect-user').fill(id);
  await page.getByRole('button', { name: 'Disconnect', exact: true }).click();
  await confirm(page, 'Disconnect');
  await until('frank’s socket closed', () => frank.closes.length > 0);
  await until('the notice', async () => /Disconnected .*: 1 connection closed/.test(await page.locator('#notice').textContent()));
  await page.context().close();
});

/** The `error` frames with code `forbidden` the chat page received. */
const forbidden = (chat) => chat.received.filter((f) => f.type === 'error' && f.code === 'forbidden');

/** Reloads the page: its connection, as the same user, is refused at the upgrade (403). */
async function refusedAtUpgrade(chat) {
  chat.socketErrors.length = 0;
  await chat.page.reload();
  await until('a connection refused with 403', () => chat.socketErrors.some((e) => /handshake.*403/.test(e)));
}

test('room and server bans: the user is refused `forbidden`, and lifting works', async () => {
  const gina = await openChat(server.url, 'gina', 'banroom');
  const id = await userId(server.url, 'banroom', 'gina');
  const page = await openAdmin(server.url);
  await page.locator('#ban-user').fill(id);
  await page.locator('#ban-room').fill('banroom');
  await page.locator('#ban-reason').fill('spam');
  await page.getByRole('button', { name: 'Ban', exact: true }).click();
  await confirm(page, 'Ban');
  await until('gina told forbidden in banroom', () => forbidden(gina).some((f) => f.room === 'banroom'));
  const row = page.locator(`#bans-table tbody tr[data-user="${id}"][data-room="banroom"]`);
  await row.waitFor();
  assert.match(await row.textContent(), /spam/);

  // A server-wide ban: her connection closes, and she cannot come back.
  await page.locator('#ban-room').fill('');
  await page.locator('#ban-reason').fill('');
  await page.getByRole('button', { name: 'Ban', exact: true }).click();
  await confirm(page, 'Ban');
  await until('gina told forbidden for the server', () => forbidden(gina).some((f) => !f.room));
  await until('gina’s socket closed', () => gina.closes.length > 0);
  await refusedAtUpgrade(gina);
  const serverRow = page.locator(`#bans-table tbody tr[data-user="${id}"][data-room=""]`);
  await serverRow.waitFor();
  assert.match(await serverRow.textContent(), /whole server/);

  // Lifted, both: she joins again.
  for (const lifted of [serverRow, row]) {
    await lifted.getByRole('button', { name: /Lift the ban/ }).click();
    await confirm(page, 'Lift');
    await lifted.waitFor({ state: 'detached' });
  }
  const before = gina.received.length;
  await gina.page.reload();
  await gina.join('gina', 'banroom');
  assert.ok(gina.received.slice(before).some((f) => f.type === 'joined' && f.room === 'banroom'));
  await page.context().close();
});

test('with an API key the page asks for it; a wrong one is refused', async () => {
  const keyed = await ChatServer.start([...FAST_STATS, '--api-key', KEY]);
  try {
    // The refused calls are logged by Chromium as failed loads: expected.
    const page = await openAdmin(keyed.url, {}, (e) => /status of 401/.test(e));
    const input = page.getByRole('textbox', { name: 'API key' });
    await input.waitFor();
    assert.equal(await page.locator('#dashboard').isHidden(), true);
    await input.fill('not-the-key-at-all-00');
    await input.press('Enter');
    const alert = page.getByRole('alert');
    await until('the wrong key message', async () => /refused this key/.test(await alert.textContent()));
    await screenshot(page, 'admin-key-prompt.png');
    await input.fill(KEY);
    await page.getByRole('button', { name: 'Use key' }).click();
    await page.locator('#dashboard').waitFor();
    await page.locator('#nodes-table tbody tr').first().waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('chat-admin-key')), KEY);
    // A reload keeps the key for this tab.
    await page.reload();
    await page.locator('#nodes-table tbody tr').first().waitFor();
    await page.context().close();
  } finally {
    await keyed.close();
  }
});

// ---- Cluster: a ban in node A's dashboard reaches node B -----------------

const DB_URL = process.env.CHAT_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.CHAT_TEST_REDIS_URL || 'redis://127.0.0.1:6379/';

/** Resolves whether something accepts TCP connections at `url`'s host and port. */
function reachable(url, defaultPort) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port) || defaultPort });
    socket.setTimeout(2000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

const missing = [
  ...((await reachable(DB_URL, 5432)) ? [] : [`PostgreSQL at ${DB_URL}`]),
  ...((await reachable(REDIS_URL, 6379)) ? [] : [`Redis at ${REDIS_URL}`]),
];
// Under CI the services are provided: a missing one fails the test.
const skip = missing.length && process.env.CI !== 'true' ? `needs ${missing.join(' and ')}` : false;

test('cluster: a ban made in node A’s dashboard kicks the user on node B', { skip }, async () => {
  assert.deepEqual(missing, [], 'PostgreSQL and Redis are available');
  const id = Math.random().toString(36).slice(2, 10);
  const schema = `admin_browser_${id}`;
  const prefix = `test:admin-browser:${id}:`;
  const cluster = [
    '--database-url', DB_URL, '--database-schema', schema,
    '--redis-url', REDIS_URL, '--redis-prefix', prefix, '--node-ttl-ms', '2000',
  ];
  const nodeA = await ChatServer.start([...FAST_STATS, ...cluster]);
  const nodeB = await ChatServer.start([...FAST_STATS, ...cluster]);
  try {
    const hana = await openChat(nodeB.url, 'hana', 'clusterroom');
    const hanaId = await userId(nodeB.url, 'clusterroom', 'hana');
    const page = await openAdmin(nodeA.url);
    await until('both nodes listed', async () => (await page.locator('#nodes-table tbody tr').count()) === 2);
    await page.locator('#ban-user').fill(hanaId);
    await page.getByRole('button', { name: 'Ban', exact: true }).click();
    await confirm(page, 'Ban');
    await until('hana told forbidden on node B', () => forbidden(hana).some((f) => !f.room));
    await until('hana’s socket on node B closed', () => hana.closes.length > 0);
    // Node B refuses her from now on.
    await refusedAtUpgrade(hana);
    await page.context().close();
  } finally {
    await nodeA.close();
    await nodeB.close();
    // The test's own schema and keys (best effort: the tools may be absent).
    spawnSync('psql', [DB_URL, '-c', `DROP SCHEMA IF EXISTS "${schema}" CASCADE`], { stdio: 'ignore' });
    const keys = spawnSync('redis-cli', ['-u', REDIS_URL, '--scan', '--pattern', `${prefix}*`], { encoding: 'utf8' });
    const names = (keys.stdout || '').split('\n').filter(Boolean);
    if (names.length) spawnSync('redis-cli', ['-u', REDIS_URL, 'DEL', ...names], { stdio: 'ignore' });
  }
});
