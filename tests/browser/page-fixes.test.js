// What a trial of the page found, each fixed and kept so: an unsent message
// stays where it was written; the phone's composer is tall from the start;
// Escape closes the drawers; choosing a room puts focus in the composer;
// people's colours are readable and told apart by user id; "#room" in the
// Room box is not doubled; drafts survive a reload; links and a light
// markup are built as elements, never from the text as HTML.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { messageWith, useChat } from './harness.js';

const session = useChat();
const { open } = session;

const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };

/** Posts a message through the HTTP API (keyless from this machine) as `from` ({id, name}). */
async function post(room, text, from, extra = {}) {
  const response = await fetch(`${session.server.url}/api/rooms/${encodeURIComponent(room)}/messages`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ text, from, ...extra }),
  });
  const body = await response.text();
  assert.ok(response.ok, `POST ${room}: ${response.status} ${body}`);
  return JSON.parse(body);
}

/**
 * A link between a page and the server that answers, itself, a send of a
 * text starting "refuse" with an error (while `refusing`), as a server
 * refusing it would; and holds a send starting "hold" back until the next
 * send has gone up, so its ack comes after that one was written.
 */
function refusingLink() {
  const link = { refusing: true };
  link.setup = (page) =>
    page.routeWebSocket(/\/ws/, (ws) => {
      const server = ws.connectToServer();
      let held = null;
      ws.onMessage((raw) => {
        const frame = JSON.parse(raw);
        const text = frame.type === 'send' ? frame.text : '';
        if (text.startsWith('hold') && held === null) {
          held = raw;
          return;
        }
        if (text.startsWith('refuse') && link.refusing) {
          ws.send(JSON.stringify({ type: 'error', ref: frame.ref, code: 'bad_request', message: 'refused by the test' }));
        } else {
          server.send(raw);
        }
        if (held !== null && frame.type === 'send') {
          server.send(held);
          held = null;
        }
      });
      server.onMessage((raw) => ws.send(raw));
    });
  return link;
}

/** Whether `message` lies wholly inside the log's visible area. */
function inView(chat, message) {
  return message.evaluate((el) => {
    const log = el.closest('[role=log]').getBoundingClientRect();
    const box = el.getBoundingClientRect();
    return box.top >= log.top - 1 && box.bottom <= log.bottom + 1;
  });
}

/** The element that has focus, described for an assertion message. */
function focused(chat) {
  return chat.page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return 'body';
    return el.id ? `#${el.id}` : `${el.tagName.toLowerCase()}.${el.className}`;
  });
}

test('an unsent message stays where it was written, marked, with Retry; what others say after it comes below it', async () => {
  const link = refusingLink();
  const alice = await open(PHONE, link.setup);
  const bob = await open();
  await alice.join('alice', 'unsent');
  await bob.join('bob', 'unsent');
  await bob.send('before');
  await alice.waitForTexts(['before']);

  await alice.send('refuse this one');
  const failed = alice.log.locator('article.message[data-state=failed]');
  await failed.waitFor();
  assert.match(await failed.locator('[role=alert]').textContent(), /Not sent: refused by the test/);
  for (const text of ['after 1', 'after 2', 'after 3']) await bob.send(text);
  await alice.waitForTexts(['before', 'refuse this one', 'after 1', 'after 2', 'after 3']);
  const latest = await messageWith(alice, 'after 3');
  assert.ok(await inView(alice, latest), 'the latest message is in view, not hidden by the unsent one');
  await alice.screenshot('page-fixes-unsent-phone.png');

  // Retried, it is sent now: below what was said meanwhile, for everyone.
  link.refusing = false;
  await failed.getByRole('button', { name: 'Retry' }).click();
  const sent = ['before', 'after 1', 'after 2', 'after 3', 'refuse this one'];
  await alice.waitForTexts(sent);
  await bob.waitForTexts(sent);

  // Ours keep the order they were written in: one written after a message
  // still on its way stays below it when that one is stored.
  link.refusing = true;
  await alice.send('hold this one');
  await alice.send('refuse the next');
  await failed.waitFor();
  await bob.waitForTexts([...sent, 'hold this one']);
  await alice.waitForTexts([...sent, 'hold this one', 'refuse the next']);

  // Too long a message: it shows its first lines only, where it was written.
  await failed.getByRole('button', { name: 'Discard' }).click();
  await failed.waitFor({ state: 'detached' });
  const tooLong = 'a line that goes on\n'.repeat(210);
  await alice.send(tooLong);
  await failed.waitFor();
  await bob.send('still in view');
  await messageWith(alice, 'still in view');
  const height = await failed.locator('.text').evaluate((el) => el.getBoundingClientRect().height);
  assert.ok(height < 120, `the unsent message is ${height}px tall`);
  assert.ok(await inView(alice, await messageWith(alice, 'still in view')), 'the latest message is in view');
  await alice.screenshot('page-fixes-unsent-too-long-phone.png');
});

test('the composer is a comfortable height from the start, on a phone and on a desktop', async () => {
  for (const options of [PHONE, {}]) {
    const chat = await open(options);
    await chat.join('hana', 'composer');
    const height = await chat.message.evaluate((el) => el.getBoundingClientRect().height);
    assert.ok(height >= 40, `the composer is ${height}px tall before typing (${JSON.stringify(options.viewport ?? 'desktop')})`);
    if (options === PHONE) await chat.screenshot('page-fixes-phone-composer.png');
  }
});

test('Escape closes the drawers and puts focus back on the button that opened them', async () => {
  const phone = await open(PHONE);
  await phone.join('ivan', 'drawers');
  const menu = phone.page.getByRole('button', { name: 'Menu' });
  const people = phone.page.getByRole('button', { name: 'People' });
  const sidebar = phone.page.locator('#sidebar');
  const members = phone.page.locator('#members-panel');

  // Opened, a drawer has focus in it; Escape from anywhere in it closes it.
  await menu.click();
  assert.ok(await sidebar.evaluate((el) => el.contains(document.activeElement)), 'focus is in the rooms drawer');
  await phone.room.click();
  await phone.page.keyboard.press('Escape');
  await sidebar.waitFor({ state: 'hidden' });
  assert.equal(await focused(phone), '#menu-button');

  await people.click();
  await phone.members.waitFor({ state: 'visible' });
  assert.ok(await members.evaluate((el) => el.contains(document.activeElement)), 'focus is in the members drawer');
  await phone.page.keyboard.press('Escape');
  await members.waitFor({ state: 'hidden' });
  assert.equal(await focused(phone), '#people-button');

  // From the keyboard alone, and at a width where only members are a drawer.
  const tablet = await open({ viewport: { width: 900, height: 800 } });
  await tablet.join('jo', 'drawers');
  await tablet.page.getByRole('button', { name: 'People' }).focus();
  await tablet.page.keyboard.press('Enter');
  await tablet.members.waitFor({ state: 'visible' });
  await tablet.page.keyboard.press('Escape');
  await tablet.page.locator('#members-panel').waitFor({ state: 'hidden' });
  assert.equal(await focused(tablet), '#people-button');
});

test('choosing a room, by click or keyboard, puts focus in the composer', async () => {
  const desk = await open();
  await desk.join('kim', 'first');
  await desk.join('kim', 'second');
  const roomButton = (chat, name) => chat.page.locator(`#room-list button[data-room="${name}"]`);

  await roomButton(desk, 'first').click();
  await desk.waitFor(() => document.querySelector('#room-title')?.textContent === '#first');
  assert.equal(await focused(desk), '#message-input');

  await roomButton(desk, 'second').focus();
  await desk.page.keyboard.press('Enter');
  await desk.waitFor(() => document.querySelector('#room-title')?.textContent === '#second');
  // Focus must stay put once the list is drawn again (its buttons are rebuilt).
  await desk.page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
  assert.equal(await focused(desk), '#message-input');

  const phone = await open(PHONE);
  await phone.join('kim', 'first');
  await phone.page.getByRole('button', { name: 'Menu' }).click();
  await phone.join('kim', 'second');
  await phone.page.getByRole('button', { name: 'Menu' }).click();
  await roomButton(phone, 'first').click();
  await phone.page.locator('#sidebar').waitFor({ state: 'hidden' });
  assert.equal(await focused(phone), '#message-input');
});

/**
 * For each message from someone else: the contrast of its author's name
 * (and of a quoted author's) against what is behind it, and its avatar's
 * colour and the contrast of the initial on it; all from computed styles.
 */
function coloursOf(chat) {
  return chat.page.evaluate(() => {
    const rgb = (css) => css.match(/[\d.]+/g).map(Number);
    const luminance = ([r, g, b]) => {
      const [R, G, B] = [r, g, b].map((c) => {
        const v = c / 255;
        return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * R + 0.7152 * G + 0.0722 * B;
    };
    const contrast = (a, b) => {
      const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
      return (hi + 0.05) / (lo + 0.05);
    };
    const behind = (el) => {
      for (let at = el; at; at = at.parentElement) {
        const colour = rgb(getComputedStyle(at).backgroundColor);
        if (colour[3] === undefined || colour[3] > 0) return colour;
      }
      return [255, 255, 255];
    };
    const nameContrast = (el) => contrast(rgb(getComputedStyle(el).color), behind(el));
    return [...document.querySelectorAll('[role=log] article.message:not(.own)')].map((article) => {
      const avatar = article.querySelector('.avatar');
      const quoted = article.querySelector('.quote-author');
      return {
        author: article.querySelector('.author').textContent,
        name: nameContrast(article.querySelector('.author')),
        quoted: quoted ? nameContrast(quoted) : null,
        avatar: getComputedStyle(avatar).backgroundColor,
        initial: contrast(rgb(getComputedStyle(avatar).color), rgb(getComputedStyle(avatar).backgroundColor)),
      };
    });
  });
}

/** The hue (0–360) of a CSS rgb() colour. */
function hue(css) {
  const [r, g, b] = css.match(/[\d.]+/g).map(Number);
  const max = Math.max(r, g, b);
  const d = max - Math.min(r, g, b);
  if (d === 0) return 0;
  const h = max === r ? ((g - b) / d) % 6 : max === g ? (b - r) / d + 2 : (r - g) / d + 4;
  return (h * 60 + 360) % 360;
}

test("people's colours: names readable in light and dark mode, avatars spread, same names told apart by id", async () => {
  const room = 'colours';
  // Names all round the wheel of the old name-derived hues, yellows and
  // greens among them; ids that differ in one character.
  const names = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'niaj',
    'olivia', 'peggy', 'rupert', 'sybil', 'trent', 'victor', 'walter', 'yusuf', 'zoe', 'amir', 'bea', 'chen', 'dana',
    'eli', 'fatima', 'goro', 'hana', 'ines'];
  const people = names.map((name, i) => ({ id: `user-${i}`, name }));
  const texts = [];
  // Each replies to the one before, so each shows a quoted name too.
  let previous = null;
  for (const person of people) {
    const text = `hello from ${person.name}`;
    previous = (await post(room, text, person, previous === null ? {} : { reply_to: previous })).seq;
    texts.push(text);
  }
  // Two people of one name.
  for (const id of ['sam-a1b2', 'sam-c3d4']) {
    await post(room, `I am ${id}`, { id, name: 'sam' });
    texts.push(`I am ${id}`);
  }

  for (const colorScheme of ['light', 'dark']) {
    const chat = await open({ colorScheme });
    await chat.join(`viewer-${colorScheme}`, room);
    await chat.waitForTexts(texts);
    const shown = await coloursOf(chat);
    assert.equal(shown.length, texts.length);
    for (const { author, name, quoted, initial } of shown) {
      assert.ok(name >= 4.5, `${author}'s name has contrast ${name.toFixed(2)}:1 in ${colorScheme} mode`);
      if (quoted !== null) assert.ok(quoted >= 4.5, `a quoted name has contrast ${quoted.toFixed(2)}:1 in ${colorScheme} mode`);
      assert.ok(initial >= 4.5, `${author}'s avatar initial has contrast ${initial.toFixed(2)}:1 in ${colorScheme} mode`);
    }
    const avatars = shown.slice(0, people.length).map((s) => s.avatar);
    assert.equal(new Set(avatars).size, avatars.length, `no two of ${avatars.length} people share a colour`);
    // Ids that differ in a character are not neighbouring hues: the 30
    // people fall in most of the twelve 30° sectors of the wheel.
    const sectors = new Set(avatars.map((c) => Math.floor(hue(c) / 30)));
    assert.ok(sectors.size >= 8, `the avatars use ${sectors.size} of 12 hue sectors`);
    const [samA, samB] = shown.slice(-2);
    assert.notEqual(samA.avatar, samB.avatar, 'two people named sam have different colours');
    await chat.screenshot(`page-fixes-colours-${colorScheme}.png`);
  }

  // In the member list, two members of one name show the end of their ids.
  const viewer = session.pages.at(-1);
  await (await open()).join('sam', room);
  await (await open()).join('sam', room);
  await viewer.waitForMembers(['sam', 'sam', 'viewer-dark', 'viewer-light']);
  const labels = await viewer.members.locator('.member-label').allTextContents();
  const suffixed = labels.filter((label) => /^sam · \S{4}$/.test(label));
  assert.equal(suffixed.length, 2, `labels: ${JSON.stringify(labels)}`);
  assert.notEqual(suffixed[0], suffixed[1]);
  assert.ok(labels.includes('viewer-dark'), 'a name no one else has shows no id');
  await viewer.screenshot('page-fixes-same-name.png');
});

test('a room typed as "#general" is joined as "general", shown with one "#"', async () => {
  const lee = await open();
  const max = await open();
  await lee.name.fill('lee');
  await lee.room.fill('#hashed');
  await lee.joinButton.click();
  await lee.waitFor(() => document.querySelector('#room-title')?.textContent === '#hashed');
  assert.deepEqual(await lee.page.locator('#room-list .room-name').allTextContents(), ['hashed']);
  assert.equal(await lee.room.inputValue(), '', 'the Room box is emptied once joined');
  // The same room as typed without the "#".
  await max.join('max', 'hashed');
  await lee.waitForMembers(['lee', 'max']);
});

test("the composer's draft is kept per room, over switching rooms and reloads, and cleared on send", async () => {
  const nia = await open();
  await nia.join('nia', 'draft-a');
  await nia.join('nia', 'draft-b');
  await nia.message.pressSequentially('half a thought in b');
  await nia.page.locator('#room-list button[data-room="draft-a"]').click();
  assert.equal(await nia.message.inputValue(), '');
  await nia.message.pressSequentially('written in a');

  await nia.page.reload();
  await nia.waitFor(() => document.querySelector('#room-title')?.textContent === '#draft-a');
  assert.equal(await nia.message.inputValue(), 'written in a');
  await nia.page.locator('#room-list button[data-room="draft-b"]').click();
  await nia.waitFor(() => document.querySelector('#message-input').value === 'half a thought in b');

  // Sent, it is no draft any more; the other room's stays.
  await nia.message.press('Enter');
  await nia.waitForTexts(['half a thought in b']);
  assert.equal(await nia.message.inputValue(), '');
  await nia.page.reload();
  await nia.waitForTexts(['half a thought in b']);
  assert.equal(await nia.message.inputValue(), '');
  await nia.page.locator('#room-list button[data-room="draft-a"]').click();
  await nia.waitFor(() => document.querySelector('#message-input').value === 'written in a');
});

test('links and a light markup are elements built from the text, never HTML', async () => {
  const olga = await open();
  const pete = await open();
  await olga.join('olga', 'markup');
  await pete.join('pete', 'markup');
  const messages = [
    // [as sent, as shown]
    ['see https://example.com/a_b?q=1 and (http://example.org/x).', null],
    ['javascript:alert(1) ftp://example.com/f data:text/html,hi www.example.com', null],
    ['**bold** then *italic* and _also italic_ and `code https://example.com/code`', 'bold then italic and also italic and code https://example.com/code'],
    ['```\nlet x = "<b>not bold</b>";\nhttps://example.com/block\n```', 'let x = "<b>not bold</b>";\nhttps://example.com/block'],
    ['<b>x</b> <img src=x onerror="window.__markup=1"> **<i>y</i>**', '<b>x</b> <img src=x onerror="window.__markup=1"> <i>y</i>'],
    ['snake_case_name, 2*3*4 and a lone * stay as typed', null],
  ];
  for (const [text] of messages) await olga.send(text);
  const shown = messages.map(([text, as]) => as ?? text);
  await olga.waitForTexts(shown);
  await pete.waitForTexts(shown);

  const on = async (chat, index) => {
    const article = await messageWith(chat, shown[index]);
    return article.locator('.text');
  };
  for (const chat of [olga, pete]) {
    // http(s) URLs are links that open apart from this page; the full stop
    // and the bracket around one are not part of it.
    const links = (await on(chat, 0)).locator('a');
    assert.deepEqual(
      await links.evaluateAll((as) => as.map((a) => [a.textContent, a.getAttribute('href'), a.target, a.rel])),
      [
        ['https://example.com/a_b?q=1', 'https://example.com/a_b?q=1', '_blank', 'noopener noreferrer'],
        ['http://example.org/x', 'http://example.org/x', '_blank', 'noopener noreferrer'],
      ],
    );
    assert.equal(await (await on(chat, 1)).locator('a').count(), 0, 'only http: and https: become links');

    const marked = await on(chat, 2);
    assert.deepEqual(await marked.locator('strong').allTextContents(), ['bold']);
    assert.deepEqual(await marked.locator('em').allTextContents(), ['italic', 'also italic']);
    assert.deepEqual(await marked.locator('code').allTextContents(), ['code https://example.com/code']);
    assert.equal(await marked.locator('a').count(), 0, 'no link inside code');

    const block = await on(chat, 3);
    assert.equal(await block.locator('pre > code').textContent(), shown[3]);
    assert.equal(await block.locator('a, b').count(), 0, 'a block of code is only text');

    const html = await on(chat, 4);
    assert.equal(await html.locator('b, img, i').count(), 0, 'markup in a message is shown, not made');
    assert.equal(await html.locator('strong').textContent(), '<i>y</i>');
    assert.equal(await chat.page.evaluate(() => window.__markup), undefined);

    assert.equal(await (await on(chat, 5)).locator('em, strong').count(), 0);
  }
  // Links are in the tab order only with their message, like its buttons.
  const link = (await on(pete, 0)).locator('a').first();
  assert.equal(await link.evaluate((a) => a.tabIndex), -1);
  await pete.screenshot('page-fixes-markup.png');
  await olga.screenshot('page-fixes-markup-own.png');
});
