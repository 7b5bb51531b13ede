// The server restarts mid-conversation: both pages say they are
// reconnecting, come back by themselves, and every message written during
// the outage is delivered exactly once.

import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { test } from 'node:test';
import { useChat, WAIT_MS } from './harness.js';

// Chromium logs failed WebSocket handshakes while the server is down; those
// are the outage itself, not page errors.
const session = useChat({
  ignored: (text) => /WebSocket connection to .* failed|ERR_CONNECTION_REFUSED|Failed to load resource/.test(text),
});
const { open } = session;

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

  await session.server.stop();
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

  await session.server.restart();
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

/**
 * A link between a page and the server that fails once: the first frame
 * matching `cut` (going `up` to the server or `down` to the page) is lost,
 * and the connection with it, as when a network drops mid-exchange.
 */
function failingOnce(direction, cut) {
  const link = { connections: 0, lost: null };
  link.setup = (page) =>
    page.routeWebSocket(/\/ws/, (ws) => {
      link.connections += 1;
      const server = ws.connectToServer();
      const pass = (from, to, dir) =>
        from.onMessage((frame) => {
          if (link.lost === null && dir === direction && cut(JSON.parse(frame))) {
            link.lost = JSON.parse(frame);
            ws.close({ code: 1001 });
            server.close();
            return;
          }
          to.send(frame);
        });
      pass(ws, server, 'up');
      pass(server, ws, 'down');
    });
  return link;
}

for (const [what, direction, cut] of [
  ['stored but never acked', 'down', (frame) => frame.type === 'ack'],
  ['lost on its way to the server', 'up', (frame) => frame.type === 'send'],
]) {
  test(`a message ${what} is delivered once after the reconnect`, async () => {
    const link = failingOnce(direction, cut);
    const room = `cut-${direction}`;
    const alice = await open({}, link.setup);
    const bob = await open();
    await alice.join('alice', room);
    await bob.join('bob', room);

    const text = `a message ${what}`;
    await alice.send(text);
    await bob.waitForTexts([text]);
    await alice.waitFor(() => document.querySelector('[role=log] article.message')?.dataset.state === 'sent');
    assert.ok(link.lost, 'the link failed');
    assert.equal(link.connections, 2, 'the page reconnected once');

    // The conversation goes on, and nothing was doubled, in the pages or
    // in what the server stored.
    await alice.send('and the next one');
    await bob.send('got both');
    const expected = [text, 'and the next one', 'got both'];
    await alice.waitForTexts(expected);
    await bob.waitForTexts(expected);
    const carol = await open();
    await carol.join('carol', room);
    await carol.waitForTexts(expected);
  });
}

test("a server whose history started over: the page shows the room anew, not the old one's transcript", async () => {
  const alice = await open();
  const bob = await open();
  await alice.join('alice', 'reset');
  await bob.join('bob', 'reset');
  const old = ['old 1', 'old 2', 'old 3'];
  for (const text of old) await bob.send(text);
  await alice.waitForTexts(old);

  // The operator starts the server on an empty data directory: the room's
  // seq starts again from 1, below where the pages stand.
  await session.server.stop();
  rmSync(session.server.dataDir, { recursive: true, force: true });
  mkdirSync(session.server.dataDir);
  await session.server.restart();
  for (const chat of [alice, bob]) {
    await chat.waitFor(() => document.querySelector('#status')?.hidden === true, undefined, WAIT_MS * 2);
  }

  // Numbered 1 again: a page that kept its old place would drop it as seen.
  await bob.send('after the reset');
  await alice.waitForTexts(['after the reset']);
  await bob.waitForTexts(['after the reset']);
});
