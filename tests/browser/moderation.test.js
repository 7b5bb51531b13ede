// A moderator deletes a message through the HTTP API: the page shows a
// tombstone in its place, live and in the history a latecomer loads.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useChat } from './harness.js';

const session = useChat();

test('a deleted message becomes "message deleted", live and in history', async () => {
  const alice = await session.open();
  const bob = await session.open();
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
  assert.equal((await response.json()).deleted, true);

  const after = ['keep this', 'message deleted', 'and this stays'];
  await alice.waitForTexts(after);
  await bob.waitForTexts(after);
  const tombstone = bob.log.locator('article.message[data-seq="2"]');
  assert.match(await tombstone.getAttribute('class'), /\bdeleted\b/);

  const carol = await session.open();
  await carol.join('carol', 'general');
  await carol.waitForTexts(after);
});
