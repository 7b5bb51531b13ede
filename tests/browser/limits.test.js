// Sending fast under the server's default rate limit, paging older history
// by scrolling up, errors shown where they happen, and the page in dark mode
// and at phone width.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChatPage, ChatServer, useChat, WAIT_MS } from './harness.js';

// The server has the default limits: 20 sends a second, bursts of 40.
const session = useChat();
const { open } = session;

const BURST = Array.from({ length: 70 }, (_, i) => `burst message ${i + 1}`);

test('a burst of sends beyond the rate limit arrives once each, in order', async () => {
  const alice = await open();
  const bob = await open();
  await alice.join('alice', 'busy');
  await bob.join('bob', 'busy');
  for (const text of BURST) await alice.send(text);
  await bob.waitForTexts(BURST, WAIT_MS * 2);
  await alice.waitFor(
    (n) => document.querySelectorAll('[role=log] article.message[data-state=sent]').length === n,
    BURST.length,
    WAIT_MS * 2,
  );
  await alice.waitForTexts(BURST);
});

test('on a server with a lower rate limit, rate-limited sends say so, wait, and go through in order', async () => {
  const strict = await ChatServer.start(['--send-rate', '2', '--send-burst', '2']);
  const alice = await ChatPage.open(session.browser, strict.url);
  const bob = await ChatPage.open(session.browser, strict.url);
  try {
    await alice.join('alice', 'slow');
    await bob.join('bob', 'slow');
    const texts = ['one', 'two', 'three', 'four', 'five'];
    for (const text of texts) await alice.send(text);
    await alice.page.getByText('Sending too fast; trying again in a moment…').first().waitFor();
    await bob.waitForTexts(texts, WAIT_MS * 2);
    await alice.waitFor(
      () => document.querySelectorAll('[role=log] article.message[data-state=sent]').length === 5,
      undefined,
      WAIT_MS * 2,
    );
    assert.deepEqual([...alice.errors, ...bob.errors], [], 'no script errors on the pages');
  } finally {
    // Pages first: they would try to reconnect to the stopped server.
    await alice.close();
    await bob.close();
    await strict.close();
  }
});

test('older history loads when scrolling up', async () => {
  const carol = await open();
  await carol.join('carol', 'busy');
  // A join shows the latest 50.
  await carol.waitForTexts(BURST.slice(-50));
  // Scrolling to the top fetches the rest (the page keeps the reader's
  // place, so it takes more than one scroll).
  await carol.waitFor(
    (first) => {
      const log = document.querySelector('[role=log]');
      log.scrollTop = 0;
      log.dispatchEvent(new Event('scroll'));
      return log.querySelector('article.message .text')?.textContent === first;
    },
    BURST[0],
  );
  await carol.waitForTexts(BURST);
  await carol.page.getByText('This is the very beginning of the room.').waitFor();
});

test('errors from the server are shown in words next to their cause', async () => {
  const dave = await open();
  await dave.join('dave', 'errors');

  // An invalid room name: said under the Room field; the room is not added.
  await dave.room.fill('x'.repeat(65));
  await dave.joinButton.click();
  const roomError = dave.page.locator('#room-error');
  await roomError.waitFor({ state: 'visible' });
  assert.match(await roomError.textContent(), /^Room name must be at most 64 characters/);
  await dave.waitFor(
    () => [...document.querySelectorAll('#room-list .room-name')].map((n) => n.textContent).join() === 'errors',
  );

  // Too long a message: said on the message itself, which offers Edit.
  const tooLong = 'y'.repeat(4001);
  await dave.send(tooLong);
  const failed = dave.log.locator('article.message[data-state=failed]');
  await failed.waitFor();
  assert.match(await failed.locator('[role=alert]').textContent(), /Too long: .*4001.*4000/);
  await failed.getByRole('button', { name: 'Edit' }).click();
  assert.equal(await dave.message.inputValue(), tooLong);
  await failed.waitFor({ state: 'detached' });
  await dave.message.fill('');
});

test('screenshots: dark mode and phone width', async () => {
  const script = [
    ['erin', 'Morning! ☀️ Anyone up for lunch?'],
    ['frank', '我可以！12:30 在老地方见？'],
    ['erin', 'Perfect 👍\nI will bring the slides.'],
    ['frank', 'مرحبا — see you there'],
  ];
  const dark = await open({ colorScheme: 'dark' });
  const phone = await open({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await dark.join('erin', 'lunch');
  await phone.join('frank', 'lunch');
  for (const [who, text] of script) await (who === 'erin' ? dark : phone).send(text);
  const texts = script.map(([, text]) => text);
  await dark.waitForTexts(texts);
  await phone.waitForTexts(texts);
  await phone.page.getByRole('textbox', { name: 'Message', exact: true }).pressSequentially('On my way');
  await dark.waitFor(() => /frank is typing/.test(document.querySelector('#typing')?.textContent ?? ''));
  await dark.waitForMembers(['erin', 'frank']);
  await dark.screenshot('chat-dark.png');

  const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at phone width`);
  await phone.screenshot('chat-phone.png');
  await phone.page.getByRole('button', { name: 'Menu' }).click();
  await phone.room.waitFor({ state: 'visible' });
  await phone.screenshot('chat-phone-menu.png');
  await phone.page.keyboard.press('Escape');
  await phone.page.getByRole('button', { name: 'People' }).click();
  await phone.members.waitFor({ state: 'visible' });
  await phone.screenshot('chat-phone-members.png');
});
