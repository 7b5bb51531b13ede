// Changes to messages: edits, deletions, reactions, replies and pins. One
// page acts, another sees it live; a page that was cut off while things
// changed catches up to exactly what the others show; the actions work from
// the keyboard alone, on a phone and in dark mode.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { act, messageWith, useChat, WAIT_MS } from './harness.js';

// While a page is cut off (see `switchableLink`) Chromium logs its failed
// connections; those are the outage itself, not page errors.
const session = useChat({
  ignored: (text) => /WebSocket connection to .* failed|ERR_CONNECTION_REFUSED|Failed to load resource/.test(text),
});
const { open } = session;

/** Calls the server's HTTP API (keyless from this machine) as a moderator would. */
async function api(method, path, body = undefined) {
  const response = await fetch(`${session.server.url}/api/rooms/${path}`, {
    method,
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text);
}

/** A message's reaction chips as "emoji count", in order. */
function chipsOf(message) {
  return message.locator('.chip').evaluateAll((chips) => chips.map((c) => c.textContent));
}

async function waitForChips(chat, message, expected) {
  const seq = await message.getAttribute('data-seq');
  try {
    await chat.waitFor(
      ({ seq, expected }) => {
        const chips = [...document.querySelectorAll(`[role=log] article.message[data-seq="${seq}"] .chip`)];
        return JSON.stringify(chips.map((c) => c.textContent)) === JSON.stringify(expected);
      },
      { seq, expected },
    );
  } catch (error) {
    throw new Error(`chips never became ${JSON.stringify(expected)}: ${JSON.stringify(await chipsOf(message))}`, {
      cause: error,
    });
  }
}

/**
 * Waits until a message's actions are shown (or hidden). Hidden ones are
 * transparent rather than invisible to Playwright (see style.css).
 */
async function waitForActions(chat, message, shown) {
  const seq = await message.getAttribute('data-seq');
  await chat.waitFor(
    ({ seq, shown }) => {
      const actions = document.querySelector(`[role=log] article.message[data-seq="${seq}"] .actions`);
      return actions !== null && getComputedStyle(actions).opacity === (shown ? '1' : '0');
    },
    { seq, shown },
  );
}

/** Reacts with `emoji` through the message's picker. */
async function react(chat, message, emoji) {
  await act(message, 'Add reaction');
  await chat.page.getByRole('menu', { name: 'Add a reaction' }).locator(`[data-emoji="${emoji}"]`).click();
}

/**
 * What a page shows of a room, for comparing pages: each message's text
 * and what was done to it, and the pinned bar. Which chips are one's own
 * (highlighted, "you" in their tooltips) and which messages differ between
 * pages, and are left out.
 */
function snapshot(chat) {
  return chat.page.evaluate(() => ({
    messages: [...document.querySelectorAll('[role=log] article.message')].map((a) => ({
      seq: a.dataset.seq ?? null,
      text: a.querySelector('.bubble > .text')?.textContent ?? null,
      deleted: a.classList.contains('deleted'),
      edited: a.querySelector('.edited-mark') !== null,
      pinned: a.classList.contains('pinned'),
      quote: a.querySelector('.quote')
        ? {
          author: a.querySelector('.quote-author')?.textContent ?? null,
          text: a.querySelector('.quote-text')?.textContent ?? null,
          deleted: a.querySelector('.quote').classList.contains('deleted'),
        }
        : null,
      reactions: [...a.querySelectorAll('.chip')].map((c) => c.textContent),
    })),
    pins: document.querySelector('#pins').hidden
      ? []
      : [...document.querySelectorAll('#pin-list .pin')].map((p) => [p.querySelector('.pin-author').textContent, p.querySelector('.pin-text').textContent]),
  }));
}

/** Waits until `chat` shows what `reference` shows (see `snapshot`). */
async function waitForSameState(chat, reference) {
  const deadline = Date.now() + WAIT_MS;
  let want;
  let have;
  for (;;) {
    [want, have] = await Promise.all([snapshot(reference), snapshot(chat)]);
    if (JSON.stringify(want) === JSON.stringify(have)) return want;
    if (Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.deepEqual(have, want, 'the pages show the same room');
  return want;
}

/**
 * A link between a page and the server that can be cut as a network drop
 * would: its open WebSocket closes, and until it is restored new ones close
 * at once and /healthz fails, so the page keeps trying. (Chromium's offline
 * emulation leaves WebSockets open.)
 */
function switchableLink() {
  const link = { up: true, open: [], connections: 0 };
  link.setup = async (page) => {
    link.page = page;
    await page.route('**/healthz', (route) => (link.up ? route.continue() : route.abort()));
    await page.routeWebSocket(/\/ws/, (ws) => {
      if (!link.up) {
        ws.close({ code: 1001 });
        return;
      }
      link.connections += 1;
      const server = ws.connectToServer();
      link.open.push({ ws, server });
    });
  };
  link.cut = async () => {
    link.up = false;
    for (const { ws, server } of link.open.splice(0)) {
      await ws.close({ code: 1001 });
      await server.close();
    }
  };
  link.restore = async () => {
    link.up = true;
    // What the browser says when the network comes back: the page retries at once.
    await link.page.evaluate(() => window.dispatchEvent(new Event('online')));
  };
  return link;
}

test('edits, deletions, reactions and replies: one page acts, the other sees it live', async () => {
  const alice = await open();
  const bob = await open();
  await alice.join('alice', 'changes');
  await bob.join('bob', 'changes');
  await alice.send('The meeting is at 3');
  await bob.send('Thanks! Which room?');
  await alice.send('to be deleted');
  const both = [alice, bob];
  for (const chat of both) await chat.waitForTexts(['The meeting is at 3', 'Thanks! Which room?', 'to be deleted']);

  // Edit: inline, Enter saves; both see the new text marked "(edited)".
  await act(await messageWith(alice, 'The meeting is at 3'), 'Edit');
  const editor = alice.log.getByRole('textbox', { name: 'Edit message' });
  assert.equal(await editor.inputValue(), 'The meeting is at 3');
  assert.ok(await editor.evaluate((el) => el === document.activeElement), 'the editor has focus');
  await editor.fill('The meeting is at 4, room 2');
  await editor.press('Enter');
  for (const chat of both) {
    const edited = await messageWith(chat, 'The meeting is at 4, room 2');
    await edited.locator('.edited-mark').waitFor();
    assert.equal(await edited.locator('.edited-mark').textContent(), '(edited)');
  }
  // Escape cancels an edit.
  await act(await messageWith(alice, 'The meeting is at 4, room 2'), 'Edit');
  await editor.fill('never saved');
  await editor.press('Escape');
  assert.equal(await editor.count(), 0);
  await messageWith(alice, 'The meeting is at 4, room 2');
  // Someone else's message can be replied to and reacted to, not changed.
  const bobsOnAlice = await messageWith(alice, 'Thanks! Which room?');
  await bobsOnAlice.hover();
  assert.deepEqual(await bobsOnAlice.locator('.actions button').evaluateAll((b) => b.map((x) => x.ariaLabel)), [
    'Reply',
    'Add reaction',
  ]);

  // React: bob through the picker; alice adds hers with a click on the chip,
  // and takes it back with another. Her own chip is highlighted.
  const meetingOnBob = await messageWith(bob, 'The meeting is at 4, room 2');
  await act(meetingOnBob, 'Add reaction');
  await bob.screenshot('changes-actions-menu.png');
  await bob.page.getByRole('menu', { name: 'Add a reaction' }).getByRole('menuitemcheckbox', { name: 'thumbs up' }).click();
  const meetingOnAlice = await messageWith(alice, 'The meeting is at 4, room 2');
  await waitForChips(alice, meetingOnAlice, ['👍1']);
  await waitForChips(bob, meetingOnBob, ['👍1']);
  const aliceChip = meetingOnAlice.locator('.chip', { hasText: '👍' });
  assert.equal(await aliceChip.getAttribute('aria-pressed'), 'false');
  assert.equal(await aliceChip.getAttribute('title'), 'bob reacted with 👍');
  await aliceChip.click();
  await waitForChips(bob, meetingOnBob, ['👍2']);
  await waitForChips(alice, meetingOnAlice, ['👍2']);
  await alice.waitFor(() => !document.querySelector('[role=log] .chip.pending'));
  assert.equal(await aliceChip.getAttribute('aria-pressed'), 'true');
  assert.match(await aliceChip.getAttribute('class'), /\bmine\b/);
  assert.equal(await aliceChip.getAttribute('title'), 'bob and you reacted with 👍');
  assert.equal(
    await meetingOnBob.locator('.chip').getAttribute('title'),
    'you and alice reacted with 👍',
    "bob's tooltip lists who",
  );
  await react(bob, meetingOnBob, '🎉');
  await waitForChips(alice, meetingOnAlice, ['👍2', '🎉1']);
  await aliceChip.click();
  await waitForChips(bob, meetingOnBob, ['👍1', '🎉1']);
  await waitForChips(alice, meetingOnAlice, ['👍1', '🎉1']);
  await alice.waitFor(() => !document.querySelector('[role=log] .chip.pending'));
  assert.equal(await aliceChip.getAttribute('aria-pressed'), 'false');

  // Reply: bob quotes alice's message; the quote shows in both pages.
  await act(meetingOnBob, 'Reply');
  const replyBar = bob.page.locator('#reply-bar');
  await replyBar.waitFor();
  assert.equal(await replyBar.textContent().then((t) => t.replace(/\s+/g, ' ').trim()), 'Replying to alice: The meeting is at 4, room 2');
  assert.ok(await bob.message.evaluate((el) => el === document.activeElement), 'the composer has focus');
  await bob.send('Room 2 works for me');
  await replyBar.waitFor({ state: 'hidden' });
  for (const chat of both) {
    const reply = await messageWith(chat, 'Room 2 works for me');
    await reply.locator('.quote').waitFor();
    assert.equal(await reply.locator('.quote-author').textContent(), 'alice');
    assert.equal(await reply.locator('.quote-text').textContent(), 'The meeting is at 4, room 2');
  }
  // Alice's own chip is highlighted.
  await meetingOnAlice.locator('.chip', { hasText: '🎉' }).click();
  await waitForChips(bob, meetingOnBob, ['👍1', '🎉2']);
  await alice.waitFor(() => document.querySelector('[role=log] .chip.mine:not(.pending)'));
  await alice.page.mouse.move(640, 780);
  await alice.screenshot('changes-edited-reactions-reply.png');

  // An edit of the original shows in its replies' quotes.
  await act(meetingOnAlice, 'Edit');
  await editor.fill('The meeting is at 4, room 3');
  await editor.press('Enter');
  for (const chat of both) {
    const reply = await messageWith(chat, 'Room 2 works for me');
    await chat.waitFor(
      (seq) => document.querySelector(`article[data-seq="${seq}"] .quote-text`)?.textContent === 'The meeting is at 4, room 3',
      await reply.getAttribute('data-seq'),
    );
  }

  // The quote jumps to the original, even when it is far above.
  for (let i = 1; i <= 30; i += 1) await api('POST', 'changes/messages', { text: `filler ${i}` });
  await alice.waitFor(() => [...document.querySelectorAll('[role=log] .text')].at(-1)?.textContent === 'filler 30');
  await alice.send('and one more');
  const replyOnAlice = await messageWith(alice, 'Room 2 works for me');
  await replyOnAlice.scrollIntoViewIfNeeded();
  await replyOnAlice.locator('.quote').click();
  const original = await messageWith(alice, 'The meeting is at 4, room 3');
  await alice.waitFor((seq) => document.querySelector(`article[data-seq="${seq}"]`)?.classList.contains('highlight'), await original.getAttribute('data-seq'));
  assert.ok(await original.evaluate((el) => el === document.activeElement), 'the original has focus');
  assert.ok(await original.isVisible());
  const inView = await original.evaluate((el) => {
    const log = el.closest('[role=log]').getBoundingClientRect();
    const box = el.getBoundingClientRect();
    return box.top >= log.top && box.bottom <= log.bottom;
  });
  assert.ok(inView, 'the original is scrolled into view');

  // Delete: asks first; Cancel keeps it, Delete removes it for everyone.
  const doomed = await messageWith(alice, 'to be deleted');
  await doomed.scrollIntoViewIfNeeded();
  await act(doomed, 'Delete');
  const dialog = alice.page.getByRole('dialog', { name: 'Delete this message?' });
  await dialog.waitFor();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await messageWith(bob, 'to be deleted');
  await act(doomed, 'Delete');
  await dialog.getByRole('button', { name: 'Delete' }).click();
  for (const chat of both) {
    await chat.waitFor(
      (seq) => document.querySelector(`article[data-seq="${seq}"]`)?.classList.contains('deleted'),
      await doomed.getAttribute('data-seq'),
    );
    assert.equal(await chat.log.locator(`article[data-seq="${await doomed.getAttribute('data-seq')}"] .text`).textContent(), 'message deleted');
  }

  // Deleting the original turns its replies' quotes into "message deleted".
  await act(meetingOnAlice, 'Delete');
  await dialog.getByRole('button', { name: 'Delete' }).click();
  for (const chat of both) {
    const reply = await messageWith(chat, 'Room 2 works for me');
    await chat.waitFor(
      (seq) => document.querySelector(`article[data-seq="${seq}"] .quote`)?.classList.contains('deleted'),
      await reply.getAttribute('data-seq'),
    );
    assert.equal(await reply.locator('.quote-text').textContent(), 'message deleted');
  }

  // A newcomer sees the same: history holds the changes' results.
  const carol = await open();
  await carol.join('carol', 'changes');
  await waitForSameState(carol, bob);
  await waitForSameState(alice, bob);
});

test('a change that cannot be made is said, and what was written is kept', async () => {
  const link = switchableLink();
  const alice = await open({}, link.setup);
  const bob = await open();
  await alice.join('alice', 'refusals');
  await bob.join('bob', 'refusals');
  await alice.send('hello');
  await alice.send('see you at 5');
  await bob.send('or at 7?');
  await alice.waitForTexts(['hello', 'see you at 5', 'or at 7?']);

  // A moderator deletes the message alice is editing: her text stays, and
  // can go as a new message.
  const hello = await messageWith(alice, 'hello');
  await act(hello, 'Edit');
  const editor = alice.log.getByRole('textbox', { name: 'Edit message' });
  await editor.fill('hello, everyone');
  await api('DELETE', `refusals/messages/${await hello.getAttribute('data-seq')}`);
  await hello.locator('.editor-problem', { hasText: 'This message was deleted meanwhile.' }).waitFor();
  assert.equal(await editor.inputValue(), 'hello, everyone');
  await hello.getByRole('button', { name: 'Send as a new message' }).click();
  assert.equal(await alice.message.inputValue(), 'hello, everyone');
  await alice.message.press('Enter');
  await bob.waitForTexts(['message deleted', 'see you at 5', 'or at 7?', 'hello, everyone']);

  // An edit made offline goes once back, but a page that lost its guest
  // credential (storage cleared, or not kept) comes back as a new user,
  // who may not change the message: said on the message, with the text
  // kept. (With the credential it is the same user: people.test.js.)
  await link.cut();
  await alice.page.evaluate(() => localStorage.removeItem('chat.guest'));
  await alice.waitFor(() => /Reconnecting/.test(document.querySelector('#status')?.textContent ?? ''));
  const five = await messageWith(alice, 'see you at 5');
  await act(five, 'Edit');
  await editor.fill('see you at 6');
  await editor.press('Enter');
  // A reply written offline, to a message deleted meanwhile.
  await act(await messageWith(alice, 'or at 7?'), 'Reply');
  await alice.send('7 is too late');
  await api('DELETE', 'refusals/messages/3');
  await link.restore();
  const problem = five.locator('.problem');
  await problem.waitFor({ timeout: WAIT_MS * 2 });
  assert.match(
    await problem.textContent(),
    /^Edit not saved: this message was sent before the page reconnected, and the server now counts it as someone else's\. see you at 6/,
  );
  assert.equal(await problem.getAttribute('role'), 'alert');
  assert.equal(await problem.getByRole('button', { name: 'Retry' }).count(), 0, 'retrying cannot help');
  await messageWith(bob, 'see you at 5');
  // It can no longer be changed here, so the text is offered as a new message.
  await five.hover();
  assert.deepEqual(await five.locator('.actions button').evaluateAll((b) => b.map((x) => x.ariaLabel)), ['Reply', 'Add reaction']);
  await problem.getByRole('button', { name: 'Send as a new message' }).click();
  await problem.waitFor({ state: 'detached' });
  assert.equal(await alice.message.inputValue(), 'see you at 6');
  await alice.message.fill('');
  // The reply is refused (what it quotes is gone), and can go without its quote.
  const reply = alice.log.locator('article.message[data-state=failed]');
  await reply.waitFor();
  assert.equal(await reply.locator('.text').textContent(), '7 is too late');
  assert.match(await reply.locator('.problem').textContent(), /^Not sent: the message it replies to is gone \(message 3 was deleted\)\./);
  await reply.getByRole('button', { name: 'Send without quote' }).click();
  await bob.waitForTexts(['message deleted', 'see you at 5', 'message deleted', 'hello, everyone', '7 is too late']);

  // A reaction the server refuses: a notice says so.
  await bob.send('react to me');
  const target = await messageWith(alice, 'react to me');
  await act(target, 'Add reaction');
  await api('DELETE', `refusals/messages/${await target.getAttribute('data-seq')}`);
  await alice.page.getByRole('menuitemcheckbox', { name: 'eyes' }).click();
  const notice = alice.page.locator('#notices [role=alert]');
  await notice.first().waitFor();
  assert.match(await notice.first().textContent(), /^Reaction not added: message \d+ was deleted\./);
});

test('pins made by a moderator show in the pinned bar of every page', async () => {
  const alice = await open();
  const bob = await open();
  await alice.join('alice', 'pins');
  await bob.join('bob', 'pins');
  await alice.send('Rules: be kind');
  await bob.send('Agenda: see the wiki');
  await alice.send('just chatting');
  const both = [alice, bob];
  for (const chat of both) await chat.waitForTexts(['Rules: be kind', 'Agenda: see the wiki', 'just chatting']);
  // The page offers no pinning: that is a moderator's.
  const rules = await messageWith(alice, 'Rules: be kind');
  await rules.hover();
  assert.equal(await rules.getByRole('button', { name: /pin/i }).count(), 0);

  await api('PUT', 'pins/pins/2');
  await api('PUT', 'pins/pins/1');
  const pinned = [
    ['bob', 'Agenda: see the wiki'],
    ['alice', 'Rules: be kind'],
  ];
  for (const chat of both) {
    await chat.page.locator('#pins').waitFor();
    await chat.waitFor(() => document.querySelectorAll('#pin-list .pin').length === 2);
    assert.deepEqual((await snapshot(chat)).pins, pinned, 'earliest pinned first');
    assert.equal(await chat.page.locator('#pins-count').textContent(), '2');
    assert.match(await (await messageWith(chat, 'Rules: be kind')).getAttribute('class'), /\bpinned\b/);
  }
  // A pinned message follows its edits.
  await api('PATCH', 'pins/messages/1', { text: 'Rules: be kind, be brief' });
  for (const chat of both) {
    await chat.waitFor(() => document.querySelector('#pin-list li:nth-child(2) .pin-text')?.textContent === 'Rules: be kind, be brief');
  }

  // Clicking a pin shows its message, after loading older history if need be.
  for (let i = 1; i <= 80; i += 1) await api('POST', 'pins/messages', { text: `chatter ${i}` });
  await alice.waitFor(() => [...document.querySelectorAll('[role=log] .text')].at(-1)?.textContent === 'chatter 80');
  const dave = await open();
  await dave.join('dave', 'pins');
  await dave.waitFor(() => document.querySelectorAll('#pin-list .pin').length === 2);
  assert.equal(await dave.log.locator('article.message[data-seq="1"]').count(), 0, 'not loaded yet');
  await dave.screenshot('changes-pinned-bar.png');
  await dave.page.locator('#pin-list .pin', { hasText: 'Rules' }).click();
  const rulesOnDave = dave.log.locator('article.message[data-seq="1"]');
  await dave.waitFor(() => document.querySelector('article.message[data-seq="1"]')?.classList.contains('highlight'));
  assert.ok(await rulesOnDave.evaluate((el) => el === document.activeElement));

  // Unpinned: gone from the bar; deleted: unpinned too. No pins: no bar.
  await api('DELETE', 'pins/pins/2');
  for (const chat of [...both, dave]) {
    await chat.waitFor(() => document.querySelectorAll('#pin-list .pin').length === 1);
  }
  await api('DELETE', 'pins/messages/1');
  for (const chat of [...both, dave]) await chat.page.locator('#pins').waitFor({ state: 'hidden' });
});

test('a page cut off while things changed shows the same room as the others once back', async () => {
  const link = switchableLink();
  const alice = await open();
  const bob = await open();
  const carol = await open({}, link.setup);
  await alice.join('alice', 'away');
  await bob.join('bob', 'away');
  await carol.join('carol', 'away');
  await alice.send('plans for friday?');
  await bob.send('hiking, if it is dry');
  await alice.send('typo in thsi one');
  await bob.send('delete me later');
  await carol.send('count me in');
  const all = [alice, bob, carol];
  const texts = ['plans for friday?', 'hiking, if it is dry', 'typo in thsi one', 'delete me later', 'count me in'];
  for (const chat of all) await chat.waitForTexts(texts);
  await react(bob, await messageWith(bob, 'plans for friday?'), '👍');
  await waitForChips(carol, await messageWith(carol, 'plans for friday?'), ['👍1']);

  await link.cut();
  await carol.waitFor(() => /Reconnecting/.test(document.querySelector('#status')?.textContent ?? ''));

  // While carol is away: pins, edits, a deletion (of a pinned message),
  // reactions added and taken back, a reply.
  await api('PUT', 'away/pins/2');
  await api('PUT', 'away/pins/4');
  await act(await messageWith(alice, 'typo in thsi one'), 'Edit');
  const editor = alice.log.getByRole('textbox', { name: 'Edit message' });
  await editor.fill('typo in this one');
  await editor.press('Enter');
  await act(await messageWith(bob, 'delete me later'), 'Delete');
  await bob.page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  const friday = await messageWith(alice, 'plans for friday?');
  await react(alice, friday, '❤️');
  await react(alice, await messageWith(alice, 'count me in'), '🎉');
  await (await messageWith(bob, 'plans for friday?')).locator('.chip', { hasText: '👍' }).click();
  await act(await messageWith(bob, 'count me in'), 'Reply');
  await bob.send('great, carol!');
  await api('PATCH', 'away/messages/2', { text: 'hiking, if it is dry (or museums)' });
  // Carol, offline, reacts and replies too: those wait and go once she is back.
  await react(carol, await messageWith(carol, 'hiking, if it is dry'), '👀');
  await act(await messageWith(carol, 'plans for friday?'), 'Reply');
  await carol.send('written while away');
  await alice.waitForTexts([
    'plans for friday?',
    'hiking, if it is dry (or museums)',
    'typo in this one',
    'message deleted',
    'count me in',
    'great, carol!',
  ]);
  // Carol saw none of it; her own reply waits.
  await carol.waitForTexts([...texts, 'written while away']);
  assert.deepEqual(await snapshot(carol).then((s) => s.pins), []);

  await link.restore();
  await carol.waitFor(() => document.querySelector('#status')?.hidden === true, undefined, WAIT_MS * 2);
  await carol.waitFor(() => !document.querySelector('[role=log] article.message[data-state=pending], [role=log] .chip.pending'));
  const state = await waitForSameState(carol, alice);
  await waitForSameState(bob, alice);
  // What they all show: spelled out, so that "the same" is also right.
  const byText = Object.fromEntries(state.messages.map((m) => [m.text, m]));
  assert.deepEqual(
    state.messages.map((m) => m.text),
    [
      'plans for friday?',
      'hiking, if it is dry (or museums)',
      'typo in this one',
      'message deleted',
      'count me in',
      'great, carol!',
      'written while away',
    ],
  );
  assert.deepEqual(byText['plans for friday?'].reactions, ['❤️1'], "bob's 👍 taken back");
  assert.deepEqual(byText['hiking, if it is dry (or museums)'].reactions, ['👀1']);
  assert.deepEqual(byText['count me in'].reactions, ['🎉1']);
  assert.equal(byText['hiking, if it is dry (or museums)'].edited, true);
  assert.equal(byText['typo in this one'].edited, true);
  assert.equal(byText['message deleted'].deleted, true);
  assert.equal(byText['message deleted'].pinned, false, 'a deleted message is unpinned');
  assert.deepEqual(byText['great, carol!'].quote, { author: 'carol', text: 'count me in', deleted: false });
  assert.deepEqual(byText['written while away'].quote, { author: 'alice', text: 'plans for friday?', deleted: false });
  assert.deepEqual(state.pins, [['bob', 'hiking, if it is dry (or museums)']]);

  // And a newcomer, who joins afresh, sees the same again.
  const dave = await open();
  await dave.join('dave', 'away');
  await waitForSameState(dave, alice);
});

test('every action works from the keyboard alone', async () => {
  const alice = await open();
  const bob = await open();
  await alice.join('alice', 'keys');
  await bob.join('bob', 'keys');
  await alice.send('first');
  await bob.send('second');
  await alice.send('third');
  await alice.waitForTexts(['first', 'second', 'third']);
  const { page } = alice;
  const focused = () =>
    page.evaluate(() => {
      const el = document.activeElement;
      const article = el.closest('article.message');
      return {
        what: el === article ? 'message' : el.getAttribute('aria-label') ?? el.tagName.toLowerCase(),
        text: article?.querySelector('.bubble > .text')?.textContent ?? null,
      };
    });

  // Into the conversation: Tab lands on the latest message, arrows move.
  await alice.log.focus();
  await page.keyboard.press('Tab');
  assert.deepEqual(await focused(), { what: 'message', text: 'third' });
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('ArrowUp');
  assert.deepEqual(await focused(), { what: 'message', text: 'first' });
  await page.keyboard.press('ArrowDown');
  assert.deepEqual(await focused(), { what: 'message', text: 'second' });
  // Bob's message: Reply and React only.
  await page.keyboard.press('Tab');
  assert.deepEqual(await focused(), { what: 'Reply', text: 'second' });
  await page.keyboard.press('Tab');
  assert.deepEqual(await focused(), { what: 'Add reaction', text: 'second' });
  await waitForActions(alice, alice.log.locator('article.message[data-seq="2"]'), true);

  // React: the picker opens on the first emoji; arrows pick another.
  await page.keyboard.press('Enter');
  assert.deepEqual(await focused(), { what: 'thumbs up', text: null });
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('Enter');
  assert.deepEqual(await focused(), { what: 'Add reaction', text: 'second' }, 'focus back on the button');
  const second = alice.log.locator('article.message[data-seq="2"]');
  await waitForChips(alice, second, ['❤️1']);
  await waitForChips(bob, bob.log.locator('article.message[data-seq="2"]'), ['❤️1']);
  // The chip is reached with Tab and toggles with Space.
  await page.keyboard.press('Tab');
  assert.deepEqual(await focused(), { what: '❤️ 1: you', text: 'second' });
  await page.keyboard.press('Space');
  await waitForChips(bob, bob.log.locator('article.message[data-seq="2"]'), []);
  await waitForChips(alice, second, []);

  // Reply: from the message to the composer, and the reply is sent.
  await second.focus();
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  assert.ok(await alice.message.evaluate((el) => el === document.activeElement));
  await page.keyboard.type('replying by keyboard');
  await page.keyboard.press('Enter');
  const reply = await messageWith(bob, 'replying by keyboard');
  assert.equal(await reply.locator('.quote-text').textContent(), 'second');

  // Edit own message: Enter saves.
  await alice.log.locator('article.message[data-seq="1"]').focus();
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  assert.deepEqual(await focused(), { what: 'Edit', text: 'first' });
  await page.keyboard.press('Enter');
  assert.deepEqual(await focused(), { what: 'Edit message', text: null });
  await page.keyboard.press('End');
  await page.keyboard.type(', edited');
  await page.keyboard.press('Enter');
  assert.deepEqual(await focused(), { what: 'message', text: 'first, edited' }, 'focus back on the message');
  await messageWith(bob, 'first, edited');

  // Delete: the dialog opens on Cancel; Tab to Delete, Enter.
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  assert.deepEqual(await focused(), { what: 'Delete', text: 'first, edited' });
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Cancel');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await bob.waitForTexts(['message deleted', 'second', 'third', 'replying by keyboard']);
  assert.equal((await focused()).what, 'message', 'focus stays on the message, now a tombstone');
});

test('on a phone, a tap or a long press shows the actions', async () => {
  const alice = await open();
  const phone = await open({ viewport: { width: 390, height: 780 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  await alice.join('alice', 'phone');
  await phone.join('bob', 'phone');
  await alice.send('Anyone up for lunch?');
  await alice.send('The usual place');
  await phone.send('Yes! 12:30?');
  await phone.waitForTexts(['Anyone up for lunch?', 'The usual place', 'Yes! 12:30?']);
  assert.ok(await phone.page.evaluate(() => matchMedia('(hover: none)').matches), 'a touch screen without hover');
  const lunch = await messageWith(phone, 'Anyone up for lunch?');
  const actions = lunch.locator('.actions');
  await waitForActions(phone, lunch, false);
  await lunch.locator('.bubble').tap();
  await waitForActions(phone, lunch, true);
  await actions.getByRole('button', { name: 'Add reaction' }).tap();
  await phone.page.getByRole('menuitemcheckbox', { name: 'thumbs up' }).tap();
  await waitForChips(alice, await messageWith(alice, 'Anyone up for lunch?'), ['👍1']);
  // A tap elsewhere on the message hides them again.
  await lunch.locator('.bubble').tap();
  await waitForActions(phone, lunch, false);

  // A long press on one's own message: edit it.
  const own = await messageWith(phone, 'Yes! 12:30?');
  const bubble = own.locator('.bubble');
  await bubble.dispatchEvent('pointerdown', { pointerType: 'touch', isPrimary: true, bubbles: true });
  await waitForActions(phone, own, true);
  await bubble.dispatchEvent('pointerup', { pointerType: 'touch', isPrimary: true, bubbles: true });
  await own.locator('.actions').getByRole('button', { name: 'Reply' }).tap();
  await phone.message.fill('I will book a table');
  await phone.message.press('Enter');
  await (await messageWith(phone, 'I will book a table')).locator('.quote').waitFor();
  await (await messageWith(phone, 'The usual place')).locator('.bubble').tap();
  await phone.screenshot('changes-phone.png');
  const overflow = await phone.log.evaluate((log) => log.scrollWidth - log.clientWidth);
  assert.ok(overflow <= 0, `log scrolls sideways by ${overflow}px`);
});

test('dark mode: the changes follow the dark colours', async () => {
  const alice = await open({ colorScheme: 'dark' });
  const bob = await open({ colorScheme: 'dark' });
  await alice.join('alice', 'dark');
  await bob.join('bob', 'dark');
  await alice.send('Dark mode is easier on the eyes');
  await bob.send('Agreed, especially at night');
  await alice.waitForTexts(['Dark mode is easier on the eyes', 'Agreed, especially at night']);
  await act(await messageWith(alice, 'Dark mode is easier on the eyes'), 'Edit');
  const editor = alice.log.getByRole('textbox', { name: 'Edit message' });
  await editor.fill('Dark mode is much easier on the eyes');
  await editor.press('Enter');
  await react(bob, await messageWith(bob, 'Dark mode is much easier on the eyes'), '👍');
  await react(alice, await messageWith(alice, 'Dark mode is much easier on the eyes'), '👍');
  await react(bob, await messageWith(bob, 'Dark mode is much easier on the eyes'), '🎉');
  await act(await messageWith(alice, 'Agreed, especially at night'), 'Reply');
  await alice.send('And on the battery');
  await api('PUT', 'dark/pins/1');
  const reply = await messageWith(alice, 'And on the battery');
  await reply.locator('.quote').waitFor();
  await alice.page.locator('#pins').waitFor();
  await waitForChips(alice, await messageWith(alice, 'Dark mode is much easier on the eyes'), ['👍2', '🎉1']);
  await alice.waitFor(() => !document.querySelector('[role=log] .chip.pending'));
  const colours = await alice.page.evaluate(() => {
    const bg = (selector) => getComputedStyle(document.querySelector(selector)).backgroundColor;
    return { body: bg('body'), pins: bg('#pins'), chip: bg('.chip:not(.mine)'), mine: bg('.chip.mine') };
  });
  assert.deepEqual(colours, {
    body: 'rgb(14, 16, 21)',
    pins: 'rgb(23, 26, 33)',
    chip: 'rgb(23, 26, 33)',
    mine: 'rgb(38, 42, 74)',
  });
  await (await messageWith(alice, 'Agreed, especially at night')).hover();
  await alice.screenshot('changes-dark.png');
});
