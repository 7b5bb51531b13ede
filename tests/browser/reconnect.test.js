// The server restarts mid-conversation: both pages say they are
// reconnecting, come back by themselves, and every message written during
// the outage is delivered exactly once.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ChatPage, ChatServer, launchBrowser, WAIT_MS } from './harness.js';

let server;
let browser;
const pages = [];

before(async () => {
  server = await ChatServer.start();
  browser = await launchBrowser();
});

after(async () => {
  for (const chat of pages) assert.deepEqual(chat.errors.filter(notConnectionNoise), [], 'no script errors');
  await browser?.close();
  await server?.close();
});

// Chromium logs failed WebSocket handshakes while the server is down; those
// are the outage itself, not page errors.
function notConnectionNoise(text) {
  return !/WebSocket connection to .* failed|ERR_CONNECTION_REFUSED|Failed to load resource/.test(text);
}

async function open() {
  const chat = await ChatPage.open(browser, server.url);
  pages.push(chat);
  return chat;
}

test('a server restart mid-conversation loses and doubles nothing', async () => {
  const alice = await open();
  const bob = await open();
  await alice.join('alice', 'ops');
  await bob.join('bob', 'ops');
  await alice.send('before the restart (alice)');
  await bob.waitForTexts(['before the restart (alice)']);
  await bob.send('before the restart (bob)');
  const before = ['before the restart (alice)', 'before the restart (bob)'];
  await alice.waitForTexts(before);

  await server.stop();
  for (const chat of [alice, bob]) {
    await chat.waitFor(() => /Reconnecting…/.test(document.querySelector('#status')?.textContent ?? ''));
    assert.ok((await chat.status()).startsWith('Reconnecting…'));
  }

  // Written while the server is down: shown at once, as pending.
  const fromAlice = ['during the outage 1 (alice)', 'during the outage 2 (alice)'];
  const fromBob = ['during the outage (bob)'];
  for (const text of fromAlice) await alice.send(text);
  for (const text of fromBob) await bob.send(text);
  await alice.waitForTexts([...before, ...fromAlice]);
  assert.equal(await alice.log.locator('article.message[data-state=pending]').count(), 2);
  await alice.screenshot('chat-reconnecting.png');

  await server.restart();
  for (const chat of [alice, bob]) {
    await chat.waitFor(() => document.querySelector('#status')?.hidden === true, undefined, WAIT_MS * 2);
  }

  // Both end with the same transcript, each message once; each sender's
  // messages in the order written.
  const everything = [...before, ...fromAlice, ...fromBob];
  for (const chat of [alice, bob]) {
    await chat.waitFor(
      (n) =>
        document.querySelectorAll('[role=log] article.message').length >= n &&
        !document.querySelector('[role=log] article.message[data-state=pending]'),
      everything.length,
    );
  }
  const [aliceSees, bobSees] = await Promise.all([alice.texts(), bob.texts()]);
  assert.deepEqual(aliceSees, bobSees, 'both pages show the same transcript');
  assert.deepEqual([...aliceSees].sort(), [...everything].sort(), 'every message exactly once');
  assert.deepEqual(aliceSees.slice(0, 2), before);
  assert.deepEqual(
    aliceSees.filter((t) => fromAlice.includes(t)),
    fromAlice,
  );
  assert.equal(await alice.log.locator('article.message.own[data-state=sent]').count(), 3);

  // The server stored each once too: a newcomer's history says so.
  const carol = await open();
  await carol.join('carol', 'ops');
  await carol.waitForTexts(aliceSees);

  // And the conversation simply goes on.
  await bob.send('after the restart');
  await alice.waitForTexts([...aliceSees, 'after the restart']);
});
