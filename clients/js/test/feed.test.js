// The per-room feed on its own (no server): the same cases as the Rust
// client's feed.rs, since both implement docs/protocol.md §5.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Feed, entriesOf } from '../src/feed.js';

const user = { id: 'u', name: 'n' };
const message = (seq) => ({ room: 'r', seq, id: `m${seq}`, from: user, text: `text ${seq}`, ts: 0 });
const edit = (seq, target) => ({ type: 'edited', room: 'r', seq, id: `e${seq}`, target, from: user, text: `edited by ${seq}`, ts: 0 });
const del = (seq, target) => ({ type: 'deleted', room: 'r', seq, id: `d${seq}`, target, from: user, ts: 0 });
const seqs = (entries) => entries.map((entry) => entry.seq);
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Offers each entry, collecting what is delivered. */
function offerAll(feed, entries) {
  return entries.flatMap((entry) => feed.offer(entry));
}

test('delivers in order and drops repeats', () => {
  const feed = new Feed(2);
  assert.deepEqual(seqs(offerAll(feed, [1, 2, 3, 3, 4, 2, 5].map(message))), [3, 4, 5]);
  assert.equal(feed.last, 5);
  assert.equal(feed.nextFetch(), null);
});

test('changes take their place in the sequence', () => {
  const feed = new Feed(0);
  const out = offerAll(feed, [message(1), edit(3, 1), message(2), del(4, 2), edit(3, 1), message(5)]);
  assert.deepEqual(seqs(out), [1, 2, 3, 4, 5]);
  assert.equal(out[2].type, 'edited');
  assert.equal(out[3].type, 'deleted');
  assert.equal(feed.last, 5, 'the resume cursor counts changes too');
});

test('a missing change is a hole like a missing message', () => {
  const feed = new Feed(0);
  const out = offerAll(feed, [message(1), message(3)]);
  assert.deepEqual(seqs(out), [1]);
  assert.equal(feed.nextFetch(), 1);
  out.push(...feed.page(1, [edit(2, 1)], false));
  assert.deepEqual(seqs(out), [1, 2, 3]);
});

test('a hole holds later entries back and asks for one page at a time', () => {
  const feed = new Feed(0);
  const out = offerAll(feed, [message(1), message(4), message(5)]);
  assert.deepEqual(seqs(out), [1]);
  assert.equal(feed.nextFetch(), 1);
  assert.equal(feed.nextFetch(), null, 'one page at a time');
  out.push(...feed.page(1, [message(2), edit(3, 2), message(4)], false));
  assert.deepEqual(seqs(out), [1, 2, 3, 4, 5]);
  assert.equal(feed.nextFetch(), null);
});

test('an incomplete join pages until caught up', () => {
  // Joined with since=10: the reply held 11..12 of 11..16.
  const feed = new Feed(10);
  feed.learnLatest(16);
  const out = offerAll(feed, [message(11), edit(12, 11), message(17)]);
  assert.equal(feed.nextFetch(), 12);
  out.push(...feed.page(12, entriesOf([message(14)], [edit(13, 11)]), true));
  assert.equal(feed.nextFetch(), 14);
  out.push(...feed.page(14, [message(15), message(17), del(16, 15)], false));
  assert.deepEqual(seqs(out), range(11, 17));
  assert.equal(feed.nextFetch(), null);
});

test('a page with more but nothing new keeps paging', () => {
  const feed = new Feed(3);
  feed.fetching = true;
  feed.page(3, [], true);
  assert.equal(feed.nextFetch(), 3);
});

test('a hole the server cannot fill is skipped', () => {
  const feed = new Feed(1);
  const out = feed.offer(message(4));
  assert.equal(feed.nextFetch(), 1);
  out.push(...feed.page(1, [], false));
  assert.deepEqual(seqs(out), [4]);
  assert.equal(feed.nextFetch(), null);

  const announced = new Feed(1);
  announced.learnLatest(9);
  assert.equal(announced.nextFetch(), 1);
  announced.page(1, [], false);
  assert.equal(announced.nextFetch(), null);
});

test('entries purged below a page are skipped, not asked for again', () => {
  // Resuming after 5 in a room whose entries up to 99 were purged.
  const feed = new Feed(5);
  feed.learnLatest(300);
  assert.equal(feed.nextFetch(), 5);
  const out = feed.page(5, range(100, 299).map(message), true);
  assert.deepEqual(seqs(out), range(100, 299));
  assert.equal(feed.nextFetch(), 299, 'the next page, not the same');
  feed.page(299, [message(300)], false);
  assert.equal(feed.last, 300);
  assert.equal(feed.nextFetch(), null);
});

test('a lost connection forgets the page in flight', () => {
  const feed = new Feed(0);
  feed.learnLatest(5);
  assert.equal(feed.nextFetch(), 0);
  feed.connectionLost();
  assert.equal(feed.nextFetch(), 0);
});

test('an entry whose seq is not a number is never delivered', () => {
  const feed = new Feed(0);
  assert.deepEqual(feed.offer({ ...message(1), seq: '1' }), []);
  assert.deepEqual(seqs(feed.offer(message(1))), [1]);
});
