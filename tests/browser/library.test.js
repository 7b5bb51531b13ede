// The page runs on the JavaScript client library (clients/js): the server
// serves the library's modules as they are, the page loads them and its
// writes go through the library's outbox; what the page keeps on top of it
// works through it too: a new name is a new connection that resumes every
// room and sends what was queued, writes an older page saved are sent after
// an upgrade, an operator's disconnect is said and undone by connecting
// again, and so is a connection the server closed for idleness.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../support/chat-server.js';
import { ChatPage, ChatServer, useChat } from './harness.js';

// The operator's disconnect closes the page's WebSocket (1008); Chromium
// may log that, and the 404s asked for below.
const session = useChat({
  ignored: (text) => /WebSocket connection to .* failed|Failed to load resource/.test(text),
});
const { open } = session;

const LIBRARY = path.join(repoRoot, 'clients/js/src');

/** The frames of type `type` that `page` sends on its WebSockets from now on, as they are sent. */
function sentFrames(page, type) {
  const frames = [];
  page.on('websocket', (ws) =>
    ws.on('framesent', ({ payload }) => {
      const frame = JSON.parse(payload);
      if (frame.type === type) frames.push(frame);
    }),
  );
  return frames;
}

/** Waits until no message of the page waits to be sent. */
function waitForNothingPending(chat) {
  return chat.waitFor(() => document.querySelector('[role=log] article.message[data-state=pending]') === null);
}

test("the library's modules are served as they are, the page loads them, and its writes go through the library", async () => {
  for (const file of readdirSync(LIBRARY).filter((name) => name.endsWith('.js'))) {
    const response = await fetch(`${session.server.url}/assets/chat-client/${file}`);
    assert.equal(response.status, 200, file);
    assert.match(response.headers.get('content-type'), /^text\/javascript/, file);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), readFileSync(path.join(LIBRARY, file)), `${file} as it is`);
  }
  // The page's own protocol code is gone.
  for (const file of ['connection.js', 'outbox.js']) {
    assert.equal((await fetch(`${session.server.url}/assets/js/${file}`)).status, 404, file);
  }

  const loaded = [];
  const alice = await open({}, (page) => page.on('request', (request) => loaded.push(new URL(request.url()).pathname)));
  const sends = sentFrames(alice.page, 'send');
  const bob = await open();
  await alice.join('alice', 'library');
  await bob.join('bob', 'library');
  for (const module of ['index.js', 'client.js', 'connection.js', 'feed.js', 'outbox.js']) {
    assert.ok(loaded.includes(`/assets/chat-client/${module}`), `the page loaded ${module}`);
  }
  await alice.send('through the library');
  await bob.waitForTexts(['through the library']);
  // Ids are the library outbox's (`c-` and 24 hex digits), which sends
  // again by the same id until acked.
  assert.equal(sends.length, 1);
  assert.match(sends[0].id, /^c-[0-9a-f]{24}$/);
});

test('a new name reconnects: every room resumes where it was, and what was written meanwhile is sent once', async () => {
  const alice = await open();
  const bob = await open();
  await alice.join('alice', 'rename');
  await bob.join('bob', 'rename');
  await alice.send('as alice');
  await bob.waitForTexts(['as alice']);
  const joins = sentFrames(alice.page, 'join');

  // The name is part of the connection: a new one is a new connection.
  await alice.name.fill('alicia');
  await alice.name.press('Enter');
  await alice.send('as alicia');
  await bob.send('missed by nobody');
  const expected = ['as alice', 'as alicia', 'missed by nobody'];
  await alice.waitForTexts(expected);
  await bob.waitForTexts(expected);
  await waitForNothingPending(alice);
  await bob.waitForMembers(['alicia', 'bob']);
  // Joined again from where the page was, not from scratch.
  assert.equal(joins.length, 1);
  assert.equal(joins[0].room, 'rename');
  assert.ok(Number.isInteger(joins[0].since), `a join with since: ${JSON.stringify(joins[0])}`);
  const carol = await open();
  await carol.join('carol', 'rename');
  await carol.waitForTexts(expected);
});

test('writes an older page saved (its own format) are sent after the upgrade, once, where they were written', async () => {
  const bob = await open();
  await bob.join('bob', 'upgrade');
  await bob.send('before the upgrade');
  const createdAt = Date.now();
  // What the page before the library left in a tab: an unsent message with
  // its place, and one from older still, without `kind`.
  const saved = [
    { room: 'upgrade', id: `w-${'a'.repeat(24)}`, kind: 'send', text: 'saved with its place', replyTo: null, target: null, emoji: '', remove: false, after: 1, createdAt },
    { room: 'upgrade', id: `w-${'b'.repeat(24)}`, text: 'saved without a kind', createdAt: createdAt + 1 },
  ];
  let sends;
  const olga = await open({}, (page) => {
    sends = sentFrames(page, 'send');
    return page.addInitScript((saved) => {
      // Once: as the tab was when the new page first loaded in it.
      if (sessionStorage.getItem('test.seeded')) return;
      sessionStorage.setItem('test.seeded', '1');
      sessionStorage.setItem('chat.outbox', JSON.stringify(saved));
      localStorage.setItem('chat.name', JSON.stringify('olga'));
      localStorage.setItem('chat.rooms', JSON.stringify(['upgrade']));
    }, saved);
  });
  const expected = ['before the upgrade', 'saved with its place', 'saved without a kind'];
  await bob.waitForTexts(expected);
  await olga.waitForTexts(expected);
  await waitForNothingPending(olga);
  assert.deepEqual(
    sends.map((frame) => frame.id),
    saved.map((entry) => entry.id),
    'sent once each, by the ids they were saved with',
  );
  assert.equal(await olga.page.evaluate(() => sessionStorage.getItem('chat.outbox')), null, 'nothing left to send');
});

test("an operator's disconnect is said, and connecting again resumes the rooms", async () => {
  const alice = await open();
  const bob = await open();
  await alice.join('alice', 'kicked');
  await bob.join('bob', 'kicked');
  await alice.send('before the disconnect');
  await bob.waitForTexts(['before the disconnect']);

  const [user] = await alice.page.evaluate(() => JSON.parse(sessionStorage.getItem('chat.userIds')));
  const response = await fetch(`${session.server.url}/api/users/${encodeURIComponent(user)}/disconnect`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: '{}',
  });
  assert.equal(response.status, 200);
  // Not retried by itself: the page says why, where the name is too.
  await alice.waitFor(() => /operator/.test(document.querySelector('#status')?.textContent ?? ''));
  assert.equal(await alice.page.locator('#status-text').textContent(), "Disconnected by the server's operator.");
  assert.equal(await alice.page.locator('#name-error').textContent(), "Disconnected by the server's operator.");

  // Written meanwhile: not lost, kept in the composer.
  await alice.send('after the disconnect');
  await alice.page.locator('#notices [role=alert]', { hasText: 'Not sent.' }).waitFor();
  assert.equal(await alice.message.inputValue(), 'after the disconnect');

  // Taking the name again connects again.
  await alice.name.press('Enter');
  await alice.waitFor(() => document.querySelector('#status')?.hidden === true);
  await alice.message.press('Enter');
  const expected = ['before the disconnect', 'after the disconnect'];
  await bob.waitForTexts(expected);
  await alice.waitForTexts(expected);
});

test('a connection the server closed for idleness is said; writing, or Try now, connects again', async () => {
  const sleepy = await ChatServer.start(['--idle-timeout-secs', '2']);
  const alice = await ChatPage.open(session.browser, sleepy.url);
  const bob = await ChatPage.open(session.browser, sleepy.url);
  try {
    await alice.join('alice', 'quiet');
    await bob.join('bob', 'quiet');
    for (const chat of [alice, bob]) {
      await chat.waitFor(() => document.querySelector('#status-text')?.textContent === 'Disconnected after a while without activity.');
    }
    // Not reconnected by itself (that would defeat the server's limit):
    // the next message does it.
    await alice.send('awake again');
    await alice.waitFor(() => document.querySelector('[role=log] article.message')?.dataset.state === 'sent');
    await bob.page.getByRole('button', { name: 'Try now' }).click();
    await bob.waitForTexts(['awake again']);
    assert.deepEqual([...alice.errors, ...bob.errors], [], 'no script errors on the pages');
  } finally {
    await alice.close();
    await bob.close();
    await sleepy.close();
  }
});
