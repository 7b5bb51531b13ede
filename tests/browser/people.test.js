// People: a guest stays one person across reloads and tabs; unread counts,
// the "New messages" divider and mentions follow the read marker the
// server keeps, in every tab; a mention or a direct message raises a
// notification while the tab is hidden; direct messages both ways; the
// directory of rooms. Two people are two browser contexts; two tabs of one
// person are two pages of one context (they share localStorage).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChatPage, messageWith, useChat } from './harness.js';

// A forged guest credential is refused at the upgrade (401): Chromium
// logs the failed handshake and the page's check of it; that is the test.
const session = useChat({
  ignored: (text) => /WebSocket connection to .* failed|status of 401|Failed to load resource/.test(text),
});
const { open } = session;

/** A second tab of the person `chat` is: a page of the same browser context. */
async function openTab(chat) {
  const page = await chat.page.context().newPage();
  const tab = new ChatPage(page);
  page.on('pageerror', (error) => tab.errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') tab.errors.push(message.text());
  });
  session.pages.push(tab);
  await page.goto(session.server.url);
  return tab;
}

/** The user ids this tab has connected as, oldest first (the page keeps them to know its own messages). */
function userIds(chat) {
  return chat.page.evaluate(() => JSON.parse(sessionStorage.getItem('chat.userIds') ?? '[]'));
}

/** Waits until the page is connected and shows room `room`, joined. */
async function waitForRoom(chat, title) {
  await chat.waitFor(
    (title) => document.querySelector('#room-title')?.textContent === title &&
      !/Joining|Offline/.test(document.querySelector('#room-subtitle')?.textContent ?? ''),
    title,
  );
}

/** Waits until the server has stored every message the page sent. */
function waitForSent(chat) {
  return chat.waitFor(() => document.querySelector('[role=log] article.message[data-state=pending]') === null &&
    document.querySelector('[role=log] article.message.own[data-state=sent]') !== null);
}

/** A room's button in the sidebar (rooms and direct messages alike), by what it shows ("#news", "@bob"). */
function roomButton(chat, room) {
  return chat.page.locator(`.sidebar button[data-room="${room}"]`);
}

/** The badges of a room in the sidebar, as their text ("3 unread", "@1 mention"); [] when none. */
function badges(chat, room) {
  return chat.page.evaluate(
    (room) => [...(document.querySelector(`.sidebar button[data-room="${CSS.escape(room)}"]`)?.querySelectorAll('.badge') ?? [])]
      .map((b) => b.textContent),
    room,
  );
}

async function waitForBadges(chat, room, expected) {
  try {
    await chat.waitFor(
      ({ room, expected }) => {
        const button = document.querySelector(`.sidebar button[data-room="${CSS.escape(room)}"]`);
        const have = button ? [...button.querySelectorAll('.badge')].map((b) => b.textContent) : null;
        return JSON.stringify(have) === JSON.stringify(expected);
      },
      { room, expected },
    );
  } catch (error) {
    throw new Error(`badges of ${room} never became ${JSON.stringify(expected)}: ${JSON.stringify(await badges(chat, room))}`, {
      cause: error,
    });
  }
}

test('a guest is one person across a reload and a second tab; a refused credential makes a new guest', async () => {
  const alice = await open();
  await alice.join('alice', 'lobby');
  await alice.send('hello from the first tab');
  await alice.waitForTexts(['hello from the first tab']);
  const [id] = await userIds(alice);
  assert.ok(id, 'the page knows its user id');
  assert.ok(await alice.page.evaluate(() => localStorage.getItem('chat.guest')), 'the guest credential is kept');

  // A second tab: the same user, so the message is its own there too.
  const tab = await openTab(alice);
  await waitForRoom(tab, '#lobby');
  await tab.waitForTexts(['hello from the first tab']);
  assert.deepEqual(await userIds(tab), [id], 'the second tab is the same user');
  assert.equal(await tab.log.locator('article.message.own').count(), 1);
  await tab.send('hello from the second tab');
  for (const chat of [alice, tab]) {
    await chat.waitForTexts(['hello from the first tab', 'hello from the second tab']);
    await chat.waitFor(() => document.querySelectorAll('[role=log] article.message.own[data-state=sent]').length === 2);
  }
  // Hers to change in either tab, too: the server sees one user.
  const first = await messageWith(tab, 'hello from the first tab');
  await first.hover();
  assert.deepEqual(await first.locator('.actions button').evaluateAll((b) => b.map((x) => x.ariaLabel)), [
    'Reply',
    'Add reaction',
    'Edit',
    'Delete',
  ]);

  // Someone else sees one alice, however many tabs she has.
  const bob = await open();
  await bob.join('bob', 'lobby');
  for (const chat of [alice, tab, bob]) await chat.waitForMembers(['alice', 'bob']);
  // Her messages, written in two tabs, are one author's for him: one group.
  await bob.waitForTexts(['hello from the first tab', 'hello from the second tab']);
  const second = await messageWith(bob, 'hello from the second tab');
  assert.ok(await second.evaluate((m) => m.classList.contains('continued')), 'grouped under one author');

  // A reload: still her, still her messages.
  await alice.page.reload();
  await waitForRoom(alice, '#lobby');
  await alice.waitForTexts(['hello from the first tab', 'hello from the second tab']);
  assert.equal(await alice.log.locator('article.message.own').count(), 2);
  assert.deepEqual(await userIds(alice), [id]);
  await alice.waitForMembers(['alice', 'bob']);

  // A credential the server does not take (forged): the page connects as a
  // new guest instead of staying locked out, and keeps the new credential.
  const carol = await open();
  await carol.page.evaluate(() => {
    localStorage.setItem('chat.name', JSON.stringify('carol'));
    localStorage.setItem('chat.rooms', JSON.stringify(['lobby']));
    localStorage.setItem('chat.guest', 'forged.credential.value');
  });
  await carol.page.reload();
  await waitForRoom(carol, '#lobby');
  await carol.waitForTexts(['hello from the first tab', 'hello from the second tab']);
  const kept = await carol.page.evaluate(() => localStorage.getItem('chat.guest'));
  assert.ok(kept && kept !== 'forged.credential.value', 'the refused credential was replaced');
  await bob.waitForMembers(['alice', 'bob', 'carol']);
});

test('unread counts and mentions survive a reload, reading in one tab clears them in the other', async () => {
  const alice = await open();
  const bob = await open();
  await bob.join('bob', 'news');
  await alice.join('alice', 'news');
  await alice.room.fill('desk');
  await alice.joinButton.click();
  await waitForRoom(alice, '#desk');

  // bob writes in news while alice looks at desk: counted, and the
  // mention apart.
  await bob.send('first story');
  await bob.send('@alice this one is for you');
  await bob.send('third story');
  await waitForBadges(alice, 'news', ['3 unread', '@1 mention']);
  // The title counts what is addressed to her: the mention.
  await alice.waitFor(() => document.title.startsWith('(1) #'));
  assert.match(await alice.page.title(), /^\(1\) #\u2068desk\u2069 · Chat$/);
  await alice.screenshot('people-sidebar-badges.png');

  // A reload: the counts come from the server.
  await alice.page.reload();
  await waitForRoom(alice, '#desk');
  await waitForBadges(alice, 'news', ['3 unread', '@1 mention']);

  // A second tab shows the same; reading news in the first clears it there.
  const tab = await openTab(alice);
  await waitForRoom(tab, '#desk');
  await waitForBadges(tab, 'news', ['3 unread', '@1 mention']);
  await roomButton(alice, 'news').click();
  await waitForRoom(alice, '#news');
  await alice.waitForTexts(['first story', '@alice this one is for you', 'third story']);
  await waitForBadges(alice, 'news', []);
  await waitForBadges(tab, 'news', []);
  await tab.waitFor(() => !document.title.startsWith('('));

  // "New messages" above the first of them, where her marker was.
  const divider = alice.log.locator('.unread-divider');
  assert.equal(await divider.textContent(), 'New messages');
  assert.equal(
    await divider.evaluate((d) => d.nextElementSibling?.querySelector('.bubble > .text')?.textContent),
    'first story',
  );
  // The message that mentions her stands out, and so does her name in it.
  const mention = await messageWith(alice, '@alice this one is for you');
  assert.ok(await mention.evaluate((m) => m.classList.contains('mentions-me')));
  assert.equal(await mention.locator('.mention.me').textContent(), '@alice');
  await alice.screenshot('people-divider-mention.png');

  // Read, so after a reload there is no divider and no count.
  await alice.page.reload();
  await waitForRoom(alice, '#news');
  await alice.waitForTexts(['first story', '@alice this one is for you', 'third story']);
  assert.equal(await alice.log.locator('.unread-divider').count(), 0);
  await waitForBadges(alice, 'news', []);

  // Scrolled up, new messages are counted on the Latest button, and
  // they are not read until she goes down to them.
  for (let i = 1; i <= 30; i += 1) await bob.send(`filler ${i}`);
  await alice.waitFor(() => document.querySelectorAll('[role=log] article.message').length === 33);
  await alice.log.evaluate((log) => {
    log.scrollTop = 0;
  });
  const jump = alice.page.locator('#jump-button');
  await jump.waitFor({ state: 'visible' });
  await bob.send('news while scrolled up');
  await bob.send('more news while scrolled up');
  await alice.waitFor(() => document.querySelector('#jump-count')?.textContent === '2 new messages');
  await waitForBadges(tab, 'news', ['2 unread']);
  await alice.screenshot('people-latest-count.png');
  await jump.click();
  await waitForBadges(tab, 'news', []);
  assert.ok(await alice.page.locator('#jump-count').isHidden());

  // The phone-sized sidebar in dark mode, with badges: a mention, and a
  // direct message (neither tab is reading them).
  await roomButton(alice, 'desk').click();
  await waitForRoom(alice, '#desk');
  await bob.send('@alice one more for the phone');
  await bob.page.locator('#member-list').getByRole('button', { name: 'alice' }).click();
  await bob.page.getByRole('button', { name: 'Message', exact: true }).click();
  await waitForRoom(bob, '@alice');
  await bob.send('and a word in private');
  // Read the sidebar before the phone width: there it is a closed drawer,
  // hidden 0.2 s after the resize, and hidden elements have no role.
  await waitForBadges(tab, 'news', ['1 unread', '@1 mention']);
  const dm = await tab.page.getByRole('list', { name: 'Direct messages' }).locator('button').getAttribute('data-room');
  await waitForBadges(tab, dm, ['1 unread']);
  await tab.page.setViewportSize({ width: 390, height: 844 });
  await tab.page.emulateMedia({ colorScheme: 'dark' });
  await tab.page.getByRole('button', { name: 'Menu' }).click();
  await tab.room.waitFor({ state: 'visible' });
  await tab.screenshot('people-phone-dark-sidebar.png');
});

/**
 * Before the page loads: records `new Notification(...)` (then makes the
 * real one) and asks for permission, and lets the test say whether the
 * tab is hidden (`__setHidden`), as a switch to another tab would.
 */
function recordNotifications(page) {
  return page.addInitScript(() => {
    const Real = window.Notification;
    window.__notifications = [];
    window.__permissionAsks = 0;
    class Recording extends Real {
      constructor(title, options = {}) {
        window.__notifications.push({ title, body: options.body ?? '' });
        super(title, options);
      }
    }
    Recording.requestPermission = (...args) => {
      window.__permissionAsks += 1;
      return Real.requestPermission(...args);
    };
    window.Notification = Recording;
    let hidden = false;
    Object.defineProperty(Document.prototype, 'visibilityState', { get: () => (hidden ? 'hidden' : 'visible'), configurable: true });
    Object.defineProperty(Document.prototype, 'hidden', { get: () => hidden, configurable: true });
    window.__setHidden = (value) => {
      hidden = value;
      document.dispatchEvent(new Event('visibilitychange'));
    };
  });
}

function notifications(chat) {
  return chat.page.evaluate(() => window.__notifications);
}

async function waitForNotifications(chat, expected) {
  try {
    await chat.waitFor((n) => window.__notifications.length === n, expected.length);
  } catch (error) {
    throw new Error(`notifications never became ${JSON.stringify(expected)}: ${JSON.stringify(await notifications(chat))}`, {
      cause: error,
    });
  }
  assert.deepEqual(await notifications(chat), expected);
}

test('a mention or a direct message raises a notification while the tab is hidden, once permitted by a click', async () => {
  const alice = await open({}, recordNotifications);
  const bob = await open();
  await alice.join('alice', 'alerts');
  await bob.join('bob', 'alerts');

  // Permission is asked for only when she presses the button.
  const enable = alice.page.getByRole('button', { name: 'Enable notifications' });
  await enable.waitFor({ state: 'visible' });
  assert.equal(await alice.page.evaluate(() => window.__permissionAsks), 0, 'no question on load');
  await alice.page.context().grantPermissions(['notifications']);
  await enable.click();
  await enable.waitFor({ state: 'hidden' });
  assert.equal(await alice.page.evaluate(() => window.__permissionAsks), 1);
  assert.match(await alice.page.locator('#notify-hint').textContent(), /Notifications are on/);

  // While the tab is visible, nothing pops up.
  await bob.send('@alice are you there?');
  await alice.waitForTexts(['@alice are you there?']);
  // Hidden: a mention does, a message for everyone does not.
  await alice.page.evaluate(() => window.__setHidden(true));
  await bob.send('just chatting');
  await bob.send('hey @alice, look at this');
  await alice.waitForTexts(['@alice are you there?', 'just chatting', 'hey @alice, look at this']);
  await waitForNotifications(alice, [{ title: 'bob in #alerts', body: 'hey @alice, look at this' }]);
  // The hidden tab's title counts the unread mention.
  await alice.waitFor(() => document.title.startsWith('(1) '));

  // A direct message does too.
  await bob.page.locator('#member-list').getByRole('button', { name: 'alice' }).click();
  await bob.page.getByRole('button', { name: 'Message', exact: true }).click();
  await waitForRoom(bob, '@alice');
  await bob.send('psst, a secret');
  await waitForNotifications(alice, [
    { title: 'bob in #alerts', body: 'hey @alice, look at this' },
    { title: 'bob', body: 'psst, a secret' },
  ]);
  await alice.waitFor(() => document.title.startsWith('(2) '));

  // Back to the tab: what is on screen is read.
  await alice.page.evaluate(() => window.__setHidden(false));
  await alice.waitFor(() => document.title.startsWith('(1) '));
});

test('direct messages both ways: from the member list, listed under Direct messages, kept across a reload', async () => {
  const alice = await open();
  const bob = await open();
  await alice.join('alice', 'team');
  await bob.join('bob', 'team');
  await bob.waitForMembers(['alice', 'bob']);

  // bob starts one from the member list.
  await bob.page.locator('#member-list').getByRole('button', { name: 'alice' }).click();
  await bob.page.getByRole('button', { name: 'Message', exact: true }).click();
  await waitForRoom(bob, '@alice');
  const bobDms = bob.page.getByRole('list', { name: 'Direct messages' });
  assert.deepEqual(await bobDms.locator('.room-name').allTextContents(), ['alice']);
  assert.equal(await bob.page.locator('#room-subtitle').textContent(), 'Direct message');
  assert.equal(await bob.message.getAttribute('placeholder'), 'Message @\u2068alice\u2069');

  // alice hears of it (room_added) and has it in her list.
  const aliceDms = alice.page.getByRole('list', { name: 'Direct messages' });
  await aliceDms.getByRole('button', { name: /bob/ }).waitFor();
  const room = await aliceDms.locator('button').getAttribute('data-room');
  assert.match(room, /^dm:/);
  await bob.send('hi alice, just between us');
  await waitForBadges(alice, room, ['1 unread']);
  await alice.screenshot('people-dm-unread.png');
  await roomButton(alice, room).click();
  await waitForRoom(alice, '@bob');
  await alice.waitForTexts(['hi alice, just between us']);
  await alice.send('hi bob');
  await bob.waitForTexts(['hi alice, just between us', 'hi bob']);
  await waitForBadges(alice, room, []);

  // The other way round: alice's "Message" opens the same room, no second one.
  await roomButton(alice, 'team').click();
  await waitForRoom(alice, '#team');
  await alice.page.locator('#member-list').getByRole('button', { name: 'bob' }).click();
  await alice.page.getByRole('button', { name: 'Message', exact: true }).click();
  await waitForRoom(alice, '@bob');
  assert.equal(await aliceDms.locator('button').count(), 1);
  await alice.waitForTexts(['hi alice, just between us', 'hi bob']);
  await alice.screenshot('people-dm.png');

  // A reload keeps it, named after bob (from the server's `rooms`).
  await alice.page.reload();
  await waitForRoom(alice, '@bob');
  await alice.waitForTexts(['hi alice, just between us', 'hi bob']);
  assert.deepEqual(await aliceDms.locator('.room-name').allTextContents(), ['bob']);
});

test('@ completes the names of the room\'s members from the keyboard', async () => {
  const alice = await open();
  const bob = await open();
  const barbara = await open();
  await alice.join('alice', 'names');
  await bob.join('bob', 'names');
  await barbara.join('barbara', 'names');
  await alice.waitForMembers(['alice', 'barbara', 'bob']);

  await alice.message.pressSequentially('thanks @b');
  const list = alice.page.getByRole('listbox', { name: 'People to mention' });
  await list.waitFor();
  const names = () => list.locator('.mention-option-name').allTextContents();
  const selected = () => list.getByRole('option', { selected: true }).locator('.mention-option-name').textContent();
  assert.deepEqual(await names(), ['barbara', 'bob']);
  assert.equal(await selected(), 'barbara');
  await alice.message.press('ArrowDown');
  assert.equal(await selected(), 'bob');
  await alice.screenshot('people-mention-complete.png');
  await alice.message.press('Enter');
  assert.ok(await list.isHidden());
  assert.equal(await alice.message.inputValue(), 'thanks @bob ');
  // Escape closes the list and leaves the text as typed.
  await alice.message.pressSequentially('and @ba');
  await list.waitFor();
  await alice.message.press('Escape');
  assert.ok(await list.isHidden());
  assert.equal(await alice.message.inputValue(), 'thanks @bob and @ba');
  await alice.message.fill('thanks @bob, see above');
  await alice.message.press('Enter');

  // bob is mentioned; barbara is not.
  const onBob = await messageWith(bob, 'thanks @bob, see above');
  await bob.waitFor(() => document.querySelector('[role=log] article.message.mentions-me') !== null);
  assert.equal(await onBob.locator('.mention.me').textContent(), '@bob');
  const onBarbara = await messageWith(barbara, 'thanks @bob, see above');
  assert.ok(!(await onBarbara.evaluate((m) => m.classList.contains('mentions-me'))));
  assert.equal(await onBarbara.locator('.mention').textContent(), '@bob');
});

test('the directory lists public rooms with their members and activity, and joins one', async () => {
  const carol = await open();
  await carol.join('carol', 'garden');
  await carol.send('the tomatoes are in');
  await carol.room.fill('kitchen');
  await carol.joinButton.click();
  await waitForRoom(carol, '#kitchen');
  await carol.send('who took the big pan?');
  await waitForSent(carol);

  // The directory lists rooms that have had a message (the server's rule).
  const dave = await open();
  await dave.join('dave', 'hall');
  await dave.send('anyone around?');
  await waitForSent(dave);
  await dave.page.getByRole('button', { name: 'Browse rooms' }).click();
  const dialog = dave.page.getByRole('dialog', { name: 'Browse rooms' });
  await dialog.waitFor();
  const entry = (room) => dialog.locator('.directory-entry', { has: dave.page.locator('bdi', { hasText: new RegExp(`^${room}$`) }) });
  await entry('garden').waitFor();
  assert.match(await entry('garden').locator('.directory-meta').textContent(), /^1 member · active (now|just now|\d+ seconds? ago)$/);
  assert.match(await entry('kitchen').locator('.directory-meta').textContent(), /^1 member · /);
  assert.equal(await entry('hall').getByRole('button').textContent(), 'Open');
  await dave.screenshot('people-directory.png');

  await entry('garden').getByRole('button', { name: 'Join garden' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await waitForRoom(dave, '#garden');
  await dave.waitForTexts(['the tomatoes are in']);
  assert.deepEqual(await dave.page.locator('#room-list .room-name').allTextContents(), ['hall', 'garden']);
  await carol.page.locator('#room-list').getByRole('button', { name: 'garden' }).click();
  await carol.waitForMembers(['carol', 'dave']);

  // Counted as a member now.
  await dave.page.getByRole('button', { name: 'Browse rooms' }).click();
  await dialog.waitFor();
  await entry('garden').getByText('2 members').waitFor();
  assert.equal(await entry('garden').getByRole('button').textContent(), 'Open');
  await dave.page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
});
