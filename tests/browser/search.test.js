// Searching messages from the page: words in any script marked in the
// results, this room or every room, paging, results that follow edits and
// deletions, opening a result in another room, the keyboard alone, a
// phone, dark mode, and what is said when a search cannot be made.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { act, ChatPage, ChatServer, messageWith, useChat, WAIT_MS } from './harness.js';

const session = useChat();
const { open } = session;

/** Posts a message through the server's HTTP API (keyless from this machine). */
async function post(room, text) {
  const response = await fetch(`${session.server.url}/api/rooms/${encodeURIComponent(room)}/messages`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ text }),
  });
  assert.ok(response.ok, `POST ${room}: ${response.status} ${await response.text()}`);
}

/** Opens a page that counts the search requests it sends (`chat.searches`). */
async function openCounting(options = {}) {
  const counter = { n: 0 };
  const chat = await open(options, async (page) => {
    page.on('websocket', (ws) => {
      ws.on('framesent', ({ payload }) => {
        if (typeof payload === 'string' && JSON.parse(payload).type === 'search') counter.n += 1;
      });
    });
  });
  Object.defineProperty(chat, 'searches', { get: () => counter.n });
  return chat;
}

function searchBox(chat) {
  return chat.page.getByRole('searchbox', { name: 'Search messages' });
}

function panel(chat) {
  return chat.page.getByRole('region', { name: 'Search messages' });
}

/** Waits until the panel has an answer (results, nothing found, an error). */
function settled(chat) {
  return chat.waitFor(() => {
    const panel = document.querySelector('#search-panel');
    return !panel.hidden && panel.getAttribute('aria-busy') === 'false';
  });
}

/** Types `query` in the search box and presses Enter; waits for the answer. */
async function search(chat, query) {
  await searchBox(chat).fill(query);
  await searchBox(chat).press('Enter');
  await settled(chat);
}

/** Picks the scope ("This room" or "All rooms"); waits for the answer. */
async function scope(chat, name) {
  await panel(chat).getByRole('radio', { name }).check();
  await settled(chat);
}

/** The results shown: room, author, text, the marked words, the edit mark. */
function results(chat) {
  return chat.page.evaluate(() =>
    [...document.querySelectorAll('#search-results .search-result')].map((r) => ({
      room: r.querySelector('.result-room').textContent,
      author: r.querySelector('.result-author').textContent,
      text: r.querySelector('.result-text').textContent,
      marks: [...r.querySelectorAll('.result-text mark')].map((m) => m.textContent),
      edited: r.querySelector('.edited-mark') !== null,
    })),
  );
}

const texts = (chat) => results(chat).then((list) => list.map((r) => r.text));

async function statusText(chat) {
  return (await chat.page.locator('#search-status').textContent()).replace(/\s+/g, ' ').trim();
}

/** Waits until message `text` is shown by a jump: highlighted, focused and in view. */
async function waitForJump(chat, text) {
  await chat.waitFor((text) => {
    const el = document.activeElement;
    if (!el?.matches('article.message.highlight') || el.querySelector('.bubble > .text')?.textContent !== text) return false;
    const log = el.closest('[role=log]').getBoundingClientRect();
    const box = el.getBoundingClientRect();
    return box.top >= log.top && box.bottom <= log.bottom;
  }, text);
}

test('words in Chinese and English are found and marked, and message markup stays text', async () => {
  const alice = await open();
  const bob = await open();
  await alice.join('alice', 'weather');
  await bob.join('bob', 'weather');
  await alice.send('今天天气很好');
  await bob.send('Deploy done: the DEPLOY went fine');
  await alice.send('<img src=x onerror="window.pwned=1"> deploy <b>bold</b>');
  await bob.send('明天天气怎么样？ Weather tomorrow');
  await alice.send('nothing to see here');
  await alice.waitForTexts([
    '今天天气很好',
    'Deploy done: the DEPLOY went fine',
    '<img src=x onerror="window.pwned=1"> deploy <b>bold</b>',
    '明天天气怎么样？ Weather tomorrow',
    'nothing to see here',
  ]);

  await search(alice, '天气');
  assert.deepEqual(await results(alice), [
    { room: '#weather', author: 'bob', text: '明天天气怎么样？ Weather tomorrow', marks: ['天气'], edited: false },
    { room: '#weather', author: 'alice', text: '今天天气很好', marks: ['天气'], edited: false },
  ]);
  assert.equal(await statusText(alice), '2 messages in #weather, newest first');

  // ASCII letters in either case; every occurrence marked.
  await search(alice, 'DEPLOY');
  assert.deepEqual(
    (await results(alice)).map((r) => [r.author, r.text, r.marks]),
    [
      ['alice', '<img src=x onerror="window.pwned=1"> deploy <b>bold</b>', ['deploy']],
      ['bob', 'Deploy done: the DEPLOY went fine', ['Deploy', 'DEPLOY']],
    ],
  );
  // The markup in a message is its text, nothing more.
  assert.equal(await panel(alice).locator('img, b').count(), 0);
  assert.equal(await alice.page.evaluate(() => window.pwned), undefined);

  // Several words: a message must hold each, and each is marked.
  await search(alice, 'deploy   FINE');
  assert.deepEqual((await results(alice)).map((r) => r.marks), [['Deploy', 'DEPLOY', 'fine']]);
  await search(alice, '天气 weather');
  assert.deepEqual((await results(alice)).map((r) => r.marks), [['天气', 'Weather']]);
  // Words inside words, in either script ("eat" in "Weather"); marks side by side join.
  await search(alice, '天 eat');
  assert.deepEqual((await results(alice)).map((r) => r.marks), [['天天', 'eat']]);

  // A long message shows the part around the first word found.
  const long = `${'lorem ipsum '.repeat(40)}the needle is here ${'dolor sit amet '.repeat(40)}`;
  await bob.send(long);
  await alice.waitFor((n) => document.querySelectorAll('[role=log] article.message').length === n, 6);
  await search(alice, 'NEEDLE');
  const [shown] = await results(alice);
  assert.deepEqual(shown.marks, ['needle']);
  assert.match(shown.text, /^…(lorem |ipsum )+the needle is here (dolor |sit |amet )+(dolor|sit|amet)…$/);
  assert.ok(shown.text.length < 200, `${shown.text.length} characters shown`);

  await search(alice, 'deploy');
  await alice.page.mouse.move(10, 790);
  await alice.screenshot('search-results.png');
});

test('this room or all rooms, including rooms the page never joined', async () => {
  const alice = await open();
  await alice.join('alice', 'alpha');
  await alice.send('lunch at noon?');
  await alice.join('alice', 'beta');
  await alice.send('lunch tomorrow instead');
  await post('gamma', 'lunch in gamma');
  await alice.waitForTexts(['lunch tomorrow instead']);

  // This room (the default): the room shown.
  await search(alice, 'lunch');
  assert.deepEqual((await results(alice)).map((r) => [r.room, r.text]), [['#beta', 'lunch tomorrow instead']]);
  assert.equal(await statusText(alice), '1 message in #beta, newest first');
  await scope(alice, 'All rooms');
  assert.deepEqual((await results(alice)).map((r) => [r.room, r.author, r.text]), [
    ['#gamma', 'api', 'lunch in gamma'],
    ['#beta', 'alice', 'lunch tomorrow instead'],
    ['#alpha', 'alice', 'lunch at noon?'],
  ]);
  assert.equal(await statusText(alice), '3 messages in all rooms, newest first');

  // Nothing found: said, with what to try.
  await search(alice, 'zebra');
  assert.equal(await statusText(alice), 'Nothing found for “zebra” in any room.');
  assert.equal(await panel(alice).locator('.search-result').count(), 0);
  await scope(alice, 'This room');
  assert.equal(await statusText(alice), 'Nothing found for “zebra” in #beta. Try All rooms, or fewer words.');

  // "This room" follows the room shown.
  await search(alice, 'lunch');
  await alice.page.keyboard.press('Escape');
  await alice.page.locator('#room-list').getByRole('button', { name: /alpha/ }).click();
  await searchBox(alice).click();
  await settled(alice);
  assert.deepEqual((await results(alice)).map((r) => [r.room, r.text]), [['#alpha', 'lunch at noon?']]);
});

test('More results loads the next page, newest first', async () => {
  const alice = await open();
  for (let i = 1; i <= 25; i += 1) await post('paging', `page item ${i}`);
  await alice.join('alice', 'paging');
  await search(alice, 'item');
  const newest = Array.from({ length: 25 }, (_, i) => `page item ${25 - i}`);
  assert.deepEqual(await texts(alice), newest.slice(0, 20));
  assert.equal(await statusText(alice), '20+ messages in #paging, newest first');
  const more = panel(alice).getByRole('button', { name: 'More results' });
  await more.click();
  await alice.waitFor(() => document.querySelectorAll('#search-results .search-result').length === 25);
  await settled(alice);
  assert.deepEqual(await texts(alice), newest);
  assert.equal(await statusText(alice), '25 messages in #paging, newest first');
  await more.waitFor({ state: 'hidden' });
});

test('the next search finds an edit by its new text, and no longer finds a deleted message', async () => {
  const alice = await open();
  const bob = await open();
  await alice.join('alice', 'edits');
  await bob.join('bob', 'edits');
  await bob.send('the cat sat on the mat');
  await bob.send('the dog ran off');
  await alice.waitForTexts(['the cat sat on the mat', 'the dog ran off']);
  await search(alice, 'cat');
  assert.deepEqual(await texts(alice), ['the cat sat on the mat']);
  await search(alice, 'dog');
  assert.deepEqual(await texts(alice), ['the dog ran off']);

  // Bob edits one and deletes the other, from his page.
  await act(await messageWith(bob, 'the cat sat on the mat'), 'Edit');
  const editor = bob.log.getByRole('textbox', { name: 'Edit message' });
  await editor.fill('the bird flew over the mat');
  await editor.press('Enter');
  await act(await messageWith(bob, 'the dog ran off'), 'Delete');
  await bob.page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await alice.waitForTexts(['the bird flew over the mat', 'message deleted']);

  await search(alice, 'bird');
  assert.deepEqual(await results(alice), [
    { room: '#edits', author: 'bob', text: 'the bird flew over the mat', marks: ['bird'], edited: true },
  ]);
  await search(alice, 'cat');
  assert.equal(await statusText(alice), 'Nothing found for “cat” in #edits. Try All rooms, or fewer words.');
  await search(alice, 'mat');
  assert.deepEqual(await texts(alice), ['the bird flew over the mat']);
  await search(alice, 'dog');
  assert.deepEqual(await texts(alice), []);
});

test('a result in another room opens that room (joining it) and shows the message', async () => {
  await post('archive', 'the launch code is 4242');
  for (let i = 1; i <= 80; i += 1) await post('archive', `archive chatter ${i}`);
  const alice = await open();
  await alice.join('alice', 'lobby');
  await alice.send('hello lobby');
  await search(alice, '4242');
  await scope(alice, 'All rooms');
  assert.deepEqual((await results(alice)).map((r) => [r.room, r.text]), [['#archive', 'the launch code is 4242']]);
  await panel(alice).locator('.search-result').click();
  await panel(alice).waitFor({ state: 'hidden' });
  // Joined, shown, and the message (older than what a join brings) loaded and shown.
  await alice.waitFor(() => document.querySelector('#room-title')?.textContent === '#archive');
  await waitForJump(alice, 'the launch code is 4242');
  assert.deepEqual(
    await alice.page.locator('#room-list .room-name').allTextContents(),
    ['lobby', 'archive'],
  );

  // Back to a room the page is in: it is shown, no second join.
  await search(alice, 'hello');
  await panel(alice).locator('.search-result').click();
  await alice.waitFor(() => document.querySelector('#room-title')?.textContent === '#lobby');
  await waitForJump(alice, 'hello lobby');
});

test('the keyboard alone: a shortcut, typing, arrows, Enter, Escape', async () => {
  const alice = await openCounting();
  await alice.join('alice', 'notes');
  await alice.send('note one: buy milk');
  await alice.send('note two: call mum');
  await alice.join('alice', 'todo');
  await alice.send('note three: water the plants');
  await alice.waitForTexts(['note three: water the plants']);
  const { page } = alice;
  const focused = () =>
    page.evaluate(() => {
      const el = document.activeElement;
      if (el.matches('article.message')) return `message: ${el.querySelector('.bubble > .text').textContent}`;
      if (el.matches('.search-result')) return `result: ${el.querySelector('.result-text').textContent}`;
      return el.getAttribute('aria-label') ?? el.id ?? el.tagName;
    });

  // `/` in the composer is a slash, not a shortcut.
  await alice.message.focus();
  await page.keyboard.type('a/b');
  assert.equal(await alice.message.inputValue(), 'a/b');
  assert.equal(await panel(alice).isVisible(), false);
  await alice.message.fill('');

  // Ctrl+K from the composer: to the search box. Typing searches once it pauses, not per key.
  await page.keyboard.press('Control+K');
  assert.equal(await focused(), 'search-input');
  await panel(alice).waitFor();
  await page.keyboard.type('note', { delay: 40 });
  await alice.waitFor(() => document.querySelectorAll('#search-results .search-result').length === 1);
  // One search for the word typed (a second only if this machine stalled mid-word).
  const typed = alice.searches;
  assert.ok(typed >= 1 && typed <= 2, `${typed} searches for 4 keys`);
  // Tab to the scope, an arrow to the other one: searched again at once.
  await page.keyboard.press('Tab');
  await page.keyboard.press('ArrowRight');
  await settled(alice);
  assert.equal(await statusText(alice), '3 messages in all rooms, newest first');
  assert.equal(alice.searches, typed + 1);

  // Arrows move through the results (from the box, and back up to it).
  await searchBox(alice).focus();
  await page.keyboard.press('ArrowDown');
  assert.equal(await focused(), 'result: note three: water the plants');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowDown');
  assert.equal(await focused(), 'result: note one: buy milk');
  await page.keyboard.press('ArrowDown');
  assert.equal(await focused(), 'result: note one: buy milk', 'the last stays');
  await page.keyboard.press('ArrowUp');
  assert.equal(await focused(), 'result: note two: call mum');
  await page.keyboard.press('Home');
  await page.keyboard.press('ArrowUp');
  assert.equal(await focused(), 'search-input');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('End');
  assert.equal(await focused(), 'result: note one: buy milk');
  // Enter opens it, in its room.
  await page.keyboard.press('Enter');
  await panel(alice).waitFor({ state: 'hidden' });
  await waitForJump(alice, 'note one: buy milk');
  assert.equal(await page.locator('#room-title').textContent(), '#notes');

  // `/` from the message: the panel again, with the words kept; Escape
  // closes it and focus goes back to the message.
  await page.keyboard.press('/');
  assert.equal(await focused(), 'search-input');
  assert.equal(await searchBox(alice).inputValue(), 'note');
  await panel(alice).waitFor();
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Escape');
  await panel(alice).waitFor({ state: 'hidden' });
  assert.equal(await focused(), 'message: note one: buy milk');
  assert.equal(await searchBox(alice).inputValue(), 'note', 'Escape keeps the words');
  await page.keyboard.press('Control+K');
  await page.keyboard.press('Escape');
  assert.equal(await focused(), 'message: note one: buy milk');
  assert.equal(alice.searches, typed + 1, 'opening again searched nothing again');
});

test('on a phone, search takes the header and the results the screen', async () => {
  const alice = await open();
  const phone = await open({ viewport: { width: 390, height: 780 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  await alice.join('alice', 'trip');
  await phone.join('bob', 'trip');
  await alice.send('Train tickets are booked for Friday 🚆');
  await alice.send('火车票已经订好了，周五出发');
  await phone.send('Great! Which train?');
  await alice.send('The 8:15 train, platform 4');
  await phone.waitForTexts([
    'Train tickets are booked for Friday 🚆',
    '火车票已经订好了，周五出发',
    'Great! Which train?',
    'The 8:15 train, platform 4',
  ]);
  assert.equal(await searchBox(phone).isVisible(), false, 'a button stands for the box');
  await phone.page.getByRole('button', { name: 'Search messages' }).tap();
  assert.ok(await searchBox(phone).evaluate((el) => el === document.activeElement));
  await searchBox(phone).fill('train');
  await searchBox(phone).press('Enter');
  await settled(phone);
  assert.deepEqual(await texts(phone), [
    'The 8:15 train, platform 4',
    'Great! Which train?',
    'Train tickets are booked for Friday 🚆',
  ]);
  const box = await panel(phone).boundingBox();
  assert.deepEqual([box.x, box.width], [0, 390], 'the panel spans the screen');
  const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
  await phone.screenshot('search-phone.png');

  await panel(phone).locator('.search-result').last().tap();
  await panel(phone).waitFor({ state: 'hidden' });
  await waitForJump(phone, 'Train tickets are booked for Friday 🚆');
  assert.equal(await searchBox(phone).isVisible(), false);
});

test('dark mode: the panel follows the dark colours', async () => {
  const alice = await open({ colorScheme: 'dark' });
  await alice.join('alice', 'night');
  await alice.send('Dark mode is easier on the eyes at night');
  await alice.send('夜间模式对眼睛更好');
  await alice.send('Night owls unite');
  await search(alice, 'night');
  assert.deepEqual(await texts(alice), ['Night owls unite', 'Dark mode is easier on the eyes at night']);
  const colours = await alice.page.evaluate(() => {
    const bg = (selector) => getComputedStyle(document.querySelector(selector)).backgroundColor;
    return { panel: bg('#search-panel'), mark: bg('#search-results mark'), input: bg('#search-input') };
  });
  assert.deepEqual(colours, { panel: 'rgb(23, 26, 33)', mark: 'rgb(74, 63, 18)', input: 'rgb(14, 16, 21)' });
  await alice.screenshot('search-dark.png');
});

test('what cannot be searched is said: too many words, too fast', async () => {
  const strict = await ChatServer.start(['--search-rate', '0.2']);
  const alice = await ChatPage.open(session.browser, strict.url);
  try {
    await alice.join('alice', 'limits');
    await alice.send('one two three');
    await search(alice, 'a b c d e f g h i');
    assert.equal(await statusText(alice), 'Too many words: a search has at most 8 (this one has 9).');
    await search(alice, 'x'.repeat(201));
    assert.equal(await statusText(alice), 'Too long: a search is at most 200 characters (this one has 201).');
    // One search in 5 seconds, bursts of 1: the second in a row is refused.
    await search(alice, 'one');
    assert.deepEqual(await texts(alice), ['one two three']);
    await search(alice, 'two');
    assert.equal(await statusText(alice), 'Too many searches in a row: wait a moment, then search again.');
    assert.equal(await alice.page.locator('#search-status').evaluate((el) => el.classList.contains('error')), true);
    assert.deepEqual([...alice.errors], [], 'no script errors on the page');
  } finally {
    await alice.close();
    await strict.close();
  }
});
