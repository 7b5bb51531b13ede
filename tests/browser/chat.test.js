// Two people chat in one room; a third arrives later and sees the history.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useChat } from './harness.js';

const HTML_PAYLOAD = '<img src=x onerror="window.__injected=1"><b>bold?</b><script>window.__injected=2</script>';
const LONG_WORD = `https://example.com/${'averyveryverylongpathwithoutanybreaks'.repeat(6)}`;

const { open } = useChat();

test('two people chat, see presence, typing, unread counts; a latecomer sees the history', async () => {
  const alice = await open();
  const bob = await open();

  await alice.join('alice', 'general');
  await bob.join('bob', 'general');
  await alice.waitForMembers(['alice', 'bob']);
  await bob.waitForMembers(['alice', 'bob']);

  await alice.send('Hello Bob 👋');
  await bob.waitForTexts(['Hello Bob 👋']);
  await bob.send('你好 Alice！Shall we meet at 3?');
  await bob.send('Line one\nline two');
  const conversation = ['Hello Bob 👋', '你好 Alice！Shall we meet at 3?', 'Line one\nline two'];
  await alice.waitForTexts(conversation);
  await bob.waitForTexts(conversation);

  // Own messages are marked as such, and as sent once acked.
  const aliceFirst = alice.log.locator('article.message').first();
  assert.match(await aliceFirst.getAttribute('class'), /\bown\b/);
  await alice.waitFor(() => document.querySelector('[role=log] article.message')?.dataset.state === 'sent');
  assert.doesNotMatch(await bob.log.locator('article.message').first().getAttribute('class'), /\bown\b/);

  // Shift+Enter makes a new line; Enter sends.
  await alice.message.fill('first line');
  await alice.message.press('Shift+Enter');
  await alice.message.pressSequentially('second line');
  assert.equal(await alice.message.inputValue(), 'first line\nsecond line');
  await alice.message.press('Enter');
  conversation.push('first line\nsecond line');
  await bob.waitForTexts(conversation);
  assert.equal(await alice.message.inputValue(), '');

  // "… is typing" while someone types.
  await bob.message.pressSequentially('typing something');
  await alice.waitFor(() => document.querySelector('#typing')?.textContent === 'bob is typing…');
  await bob.message.fill('');

  // Markup is shown as text, never run or rendered.
  await alice.send(HTML_PAYLOAD);
  conversation.push(HTML_PAYLOAD);
  await bob.waitForTexts(conversation);
  for (const chat of [alice, bob]) {
    assert.equal(await chat.log.locator('img, b, script').count(), 0, 'no element made from message text');
    assert.equal(await chat.page.evaluate(() => window.__injected), undefined);
  }

  // Right-to-left text, CJK and a long unbroken string stay inside the log.
  await bob.send('שלום! مرحبا بالجميع — RTL text flows right to left.');
  await alice.send(LONG_WORD);
  conversation.push('שלום! مرحبا بالجميع — RTL text flows right to left.', LONG_WORD);
  await alice.waitForTexts(conversation);
  await bob.waitForTexts(conversation);
  const overflow = await alice.log.evaluate((log) => log.scrollWidth - log.clientWidth);
  assert.ok(overflow <= 0, `log scrolls sideways by ${overflow}px`);

  // A latecomer gets the conversation so far on joining.
  const carol = await open();
  await carol.join('carol', 'general');
  await carol.waitForTexts(conversation);
  await alice.waitForMembers(['alice', 'bob', 'carol']);
  await carol.waitForMembers(['alice', 'bob', 'carol']);

  // Unread counts: alice looks at another room while bob writes in general.
  await alice.room.fill('random');
  await alice.joinButton.click();
  await alice.waitFor(() => document.querySelector('#room-title')?.textContent === '#random');
  await bob.send('Are you there, Alice?');
  conversation.push('Are you there, Alice?');
  await carol.waitForTexts(conversation);
  const generalButton = alice.page.locator('#room-list button', { hasText: 'general' });
  await alice.waitFor(
    () => document.querySelector('#room-list button[data-room=general] .badge')?.textContent === '1 unread',
  );
  await alice.screenshot('chat-light-unread.png');
  await generalButton.click();
  await alice.waitForTexts(conversation);
  assert.equal(await generalButton.locator('.badge').count(), 0, 'reading the room clears its count');

  await alice.screenshot('chat-light.png');

  // A reload keeps the name, the rooms and which messages are one's own.
  await alice.page.reload();
  await alice.waitForTexts(conversation);
  assert.equal(await alice.name.inputValue(), 'alice');
  assert.deepEqual(await alice.page.locator('#room-list .room-name').allTextContents(), ['general', 'random']);
  assert.equal(await alice.log.locator('article.message.own').count(), 4);

  // Leaving: the others see carol go.
  await carol.page.getByRole('button', { name: 'Leave', exact: true }).click();
  await alice.waitForMembers(['alice', 'bob']);
  await bob.waitForMembers(['alice', 'bob']);
});

test('a name the server would refuse is explained next to the Name field', async () => {
  const dave = await open();
  await dave.name.fill(' dave');
  await dave.room.fill('general');
  await dave.joinButton.click();
  const error = dave.page.locator('#name-error');
  await error.waitFor({ state: 'visible' });
  assert.match(await error.textContent(), /start or end with a space/);
});

test('a bidi override in a name is refused, and names of either direction stay apart from the words around them', async () => {
  const mallory = await open();
  await mallory.name.fill('al\u202eecila');
  await mallory.room.fill('general');
  await mallory.joinButton.click();
  const error = mallory.page.locator('#name-error');
  await error.waitFor({ state: 'visible' });
  assert.match(await error.textContent(), /U\+202E \(a format character\)/);

  // Right-to-left names and rooms: each in an element of its own (a <bdi>
  // or `dir`), so "is typing…" and the `#` keep their place.
  const dana = await open();
  const eli = await open();
  await dana.join('dana', 'חדר');
  await eli.join('אלי', 'חדר');
  await eli.message.pressSequentially('שלום');
  await dana.waitFor(() => document.querySelector('#typing bdi')?.textContent === 'אלי');
  assert.equal(await dana.page.locator('#typing').textContent(), 'אלי is typing…');
  assert.equal(await dana.page.locator('#room-title bdi').textContent(), 'חדר');
  assert.equal(await dana.page.locator('.history-edge strong bdi').textContent(), 'חדר');
  await dana.waitForMembers(['dana', 'אלי']);
  for (const selector of ['.member-name', '#room-list .room-name']) {
    assert.equal(await dana.page.locator(selector).first().getAttribute('dir'), 'auto', selector);
  }
});
