// A moderator deletes a message through the HTTP API: the page shows a
// tombstone in its place, live and in the history a latecomer loads. The
// deletion is an entry of the room's sequence with a seq of its own (the
// `deleted` frame's `target` is the message): the page counts it as seen,
// so the next message follows without a gap to resync. An operator bans a
// member from a room through the API: the page says why and leaves the
// room.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useChat } from './harness.js';

const session = useChat();

test('a deleted message becomes "message deleted", live and in history', async () => {
  const alice = await session.open();
  const bob = await session.open();
  // Every `join` bob's page sends: one, unless it saw a hole in the seqs.
  const bobJoins = [];
  bob.page.on('websocket', (ws) =>
    ws.on('framesent', ({ payload }) => {
      const frame = JSON.parse(payload);
      if (frame.type === 'join') bobJoins.push(frame);
    }),
  );
  await alice.join('alice', 'general');
  await bob.join('bob', 'general');
  await alice.send('keep this');
  await alice.send('regret this');
  await alice.send('and this stays');
  await bob.waitForTexts(['keep this', 'regret this', 'and this stays']);

  // The page's own server, called from this machine: no API key needed.
  const url = `${session.server.url}/api/rooms/general/messages/2`;
  const response = await fetch(url, { method: 'DELETE' });
  assert.equal(response.status, 200);
  const ack = await response.json();
  assert.equal(ack.seq, 4, "the deletion's own seq, after the three messages");

  const after = ['keep this', 'message deleted', 'and this stays'];
  await alice.waitForTexts(after);
  await bob.waitForTexts(after);
  const tombstone = bob.log.locator('article.message[data-seq="2"]');
  assert.match(await tombstone.getAttribute('class'), /\bdeleted\b/);
  // Nothing can be done to a tombstone: it offers no actions.
  assert.equal(await tombstone.locator('.actions').count(), 0);

  // The next message is seq 5: shown at once, with no resync for seq 4.
  await alice.send('after the deletion');
  await bob.waitForTexts([...after, 'after the deletion']);
  assert.equal(await bob.log.locator('article.message[data-seq="5"] .text').textContent(), 'after the deletion');
  await new Promise((resolve) => setTimeout(resolve, 2000));
  assert.deepEqual(bobJoins, [{ type: 'join', room: 'general', ref: bobJoins[0].ref }], 'bob joined once, never resynced');

  const carol = await session.open();
  await carol.join('carol', 'general');
  await carol.waitForTexts([...after, 'after the deletion']);
});

test('a room ban: the page says why and stops following the room', async () => {
  const mallory = await session.open();
  await mallory.join('mallory', 'banned-here');
  await mallory.send('spam');
  await mallory.waitForTexts(['spam']);
  const members = await (await fetch(`${session.server.url}/api/rooms/banned-here/members`)).json();
  const id = members.find((m) => m.name === 'mallory').id;
  const listed = () => [...document.querySelectorAll('#room-list li')].some((e) => /banned-here/.test(e.textContent));
  assert.ok(await mallory.page.evaluate(listed), 'the room is in the sidebar');

  const url = `${session.server.url}/api/rooms/banned-here/bans/${encodeURIComponent(id)}`;
  const response = await fetch(url, { method: 'PUT' });
  assert.equal(response.status, 200);
  const notice = mallory.page.getByRole('alert').filter({ hasText: 'you are banned from this room' });
  await notice.waitFor({ timeout: 15_000 });
  assert.match(await notice.textContent(), /No longer in .*banned-here/);
  // Out of the room: not in the sidebar any more.
  await mallory.waitFor(`!(${listed})()`);
});
