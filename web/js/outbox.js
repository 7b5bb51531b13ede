// Sending. A message the user writes, and a change they make to one (an
// edit, a deletion, a reaction added or taken back), stays in its room's
// `pending` map until the server acks it. Each has a client `id`, and every
// retry (after a reconnect, a rate limit, an overloaded server) sends the
// same `id`, so the server stores it exactly once however often it is sent.
//
// Entries go out oldest first, paced by a token bucket a little under the
// server's default limit (20 a second, bursts of 40, messages and changes
// alike), so pasting many lines or typing fast does not trip
// `rate_limited`; if it happens anyway (a server with lower limits) the
// entry waits and goes again, in order.

import { Disconnected, ProtocolError } from './connection.js';

const RATE_PER_SECOND = 15;
const BURST = 30;
const RATE_LIMITED_WAIT_MS = 1000;
const BUSY_BACKOFF_BASE_MS = 500;
const BUSY_BACKOFF_MAX_MS = 10_000;

/** Errors that a later identical send can get past. */
const RETRYABLE = new Set(['rate_limited', 'overloaded', 'internal']);

/** What failed, as the start of a sentence: "Not sent", "Reaction not added", … */
function failure(entry) {
  switch (entry.kind) {
    case 'edit':
      return 'Edit not saved';
    case 'delete':
      return 'Not deleted';
    case 'react':
      return entry.remove ? 'Reaction not removed' : 'Reaction not added';
    default:
      return 'Not sent';
  }
}

/**
 * Words for an error next to the message it concerns, or in a notice.
 * `earlierOwn`: the entry changes a message this tab sent on an earlier
 * connection (which the server counts as another user's).
 */
export function describeSendError(entry, error, earlierOwn = false) {
  switch (error.code) {
    case 'too_long':
      return `Too long: ${error.message}.`;
    case 'rate_limited':
      return 'Sending too fast; trying again in a moment…';
    case 'overloaded':
    case 'internal':
      return 'The server is busy; trying again…';
    case 'forbidden':
      if (earlierOwn) {
        return `${failure(entry)}: this message was sent before the page reconnected, and the server now counts it as someone else's.`;
      }
      return `${failure(entry)}: not allowed (${error.message}).`;
    case 'not_found':
      if (entry.kind === 'send') return `${failure(entry)}: the message it replies to is gone (${error.message}).`;
      return `${failure(entry)}: ${error.message}.`;
    case 'invalid_room':
      return `Invalid room: ${error.message}.`;
    case 'bad_request':
      return `${failure(entry)}: ${error.message}.`;
    default:
      return `${failure(entry)} (${error.code}): ${error.message}.`;
  }
}

/** The request that carries an entry. */
function frameOf(entry) {
  const { room, id } = entry;
  switch (entry.kind) {
    case 'edit':
      return { type: 'edit', room, seq: entry.target, text: entry.text, id };
    case 'delete':
      return { type: 'delete', room, seq: entry.target, id };
    case 'react':
      return { type: 'react', room, seq: entry.target, emoji: entry.emoji, ...(entry.remove ? { remove: true } : {}), id };
    default:
      return { type: 'send', room, text: entry.text, id, ...(entry.replyTo ? { reply_to: entry.replyTo } : {}) };
  }
}

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `w-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

export class Outbox {
  /**
   * onAck(room, entry, ack): the entry is stored.
   * onRefused(room, entry, error): the server refused a change that is not
   *   worth keeping for the user to retry (a deletion, a reaction).
   * onNotJoined(room): the server says we are not in the room: rejoin it.
   */
  constructor(store, connection, { onAck, onRefused, onNotJoined }) {
    this.store = store;
    this.connection = connection;
    this.onAck = onAck;
    this.onRefused = onRefused;
    this.onNotJoined = onNotJoined;
    this.tokens = BURST;
    this.refilledAt = performance.now();
    this.timer = null;
    // createdAt only orders entries; a counter keeps two in one millisecond in order.
    this.sequence = 0;
  }

  /**
   * Keeps a new entry and sends it when it can. `fields`: {kind: 'send',
   * text, replyTo, after} for a message (`after`: the seq of the message
   * it is shown after until sent); {kind: 'edit', target, text},
   * {kind: 'delete', target} or {kind: 'react', target, emoji, remove}
   * for a change to message `target`.
   */
  enqueue(room, fields, { id = randomId(), createdAt = Date.now() } = {}) {
    const entry = {
      kind: 'send',
      text: '',
      replyTo: null,
      target: null,
      emoji: '',
      remove: false,
      after: Infinity,
      ...fields,
      room: room.name,
      id,
      createdAt: createdAt + this.sequence++ / 1e6,
      state: 'queued',
      notice: '',
      code: '',
      retryAt: 0,
      attempts: 0,
      // The seq the server gave a change, once acked.
      seq: null,
    };
    this.store.addPending(room, entry);
    this.pump();
    return entry;
  }

  /**
   * Sends a failed entry again, as it was (same id: it was not stored), or
   * with `changes` (a reply sent without its quote).
   */
  retry(room, id, changes = {}) {
    const entry = room.pending.get(id);
    if (!entry || entry.state !== 'failed') return;
    Object.assign(entry, changes, { state: 'queued', notice: '', code: '', retryAt: 0 });
    this.store.persistOutbox();
    this.store.changed();
    this.pump();
  }

  discard(room, id) {
    if (room.pending.delete(id)) {
      this.store.persistOutbox();
      this.store.changed();
    }
  }

  /** The connection dropped: everything awaiting an ack goes again later. */
  disconnected() {
    for (const entry of this.store.allPending()) {
      if (entry.state === 'sending') entry.state = 'queued';
    }
  }

  /** Sends what can be sent now and sets a timer for what must wait. */
  pump() {
    clearTimeout(this.timer);
    if (!this.connection.online) return;
    const now = performance.now();
    this.tokens = Math.min(BURST, this.tokens + ((now - this.refilledAt) / 1000) * RATE_PER_SECOND);
    this.refilledAt = now;
    let wakeAt = Infinity;
    // A room whose oldest waiting message must wait holds the newer ones
    // back too, so a room's messages keep the order they were written in.
    const held = new Set();
    for (const entry of this.store.allPending()) {
      // A failed entry waits for the user (edit, retry or discard); an
      // acked one for its change to show.
      if (entry.state !== 'queued' || held.has(entry.room)) continue;
      const room = this.store.room(entry.room);
      if (!room?.joined) continue;
      if (entry.retryAt > now) {
        held.add(entry.room);
        wakeAt = Math.min(wakeAt, entry.retryAt);
        continue;
      }
      if (this.tokens < 1) {
        wakeAt = Math.min(wakeAt, now + ((1 - this.tokens) / RATE_PER_SECOND) * 1000);
        break;
      }
      this.tokens -= 1;
      this.transmit(room, entry);
    }
    if (wakeAt < Infinity) this.timer = setTimeout(() => this.pump(), wakeAt - now);
  }

  async transmit(room, entry) {
    entry.state = 'sending';
    entry.attempts += 1;
    this.store.changed();
    try {
      const ack = await this.connection.request(frameOf(entry));
      if (this.store.room(room.name) === room) this.onAck(room, entry, ack);
    } catch (error) {
      if (room.pending.get(entry.id) !== entry) return;
      this.failed(room, entry, error);
    }
    this.pump();
  }

  failed(room, entry, error) {
    if (error instanceof Disconnected) {
      entry.state = 'queued';
    } else if (error instanceof ProtocolError && error.code === 'not_joined') {
      entry.state = 'queued';
      room.joined = false;
      this.onNotJoined(room);
    } else if (error instanceof ProtocolError && RETRYABLE.has(error.code)) {
      entry.state = 'queued';
      entry.notice = describeSendError(entry, error);
      const wait =
        error.code === 'rate_limited'
          ? RATE_LIMITED_WAIT_MS
          : Math.min(BUSY_BACKOFF_MAX_MS, BUSY_BACKOFF_BASE_MS * 2 ** entry.attempts);
      entry.retryAt = performance.now() + wait * (0.75 + Math.random() / 2);
      // The server's bucket is empty; ours should be too.
      if (error.code === 'rate_limited') this.tokens = 0;
    } else if (entry.kind === 'delete' || entry.kind === 'react') {
      // Nothing the user wrote is lost: they are told, and may do it again.
      room.pending.delete(entry.id);
      this.store.persistOutbox();
      this.onRefused(room, entry, error, this.store.isEarlierOwn(room, entry.target));
    } else {
      entry.state = 'failed';
      entry.code = error.code ?? '';
      entry.notice =
        error instanceof ProtocolError
          ? describeSendError(entry, error, this.store.isEarlierOwn(room, entry.target))
          : `${failure(entry)}: ${error.message}`;
    }
    this.store.changed();
  }
}
