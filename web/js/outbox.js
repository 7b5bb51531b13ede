// Sending. A message the user writes stays in its room's `pending` map
// until the server acks it. Each has a client `id`, and every retry (after
// a reconnect, a rate limit, an overloaded server) sends the same `id`, so
// the server stores it exactly once however often it is sent.
//
// Messages go out oldest first, paced by a token bucket a little under the
// server's default limit (20 a second, bursts of 40), so pasting many lines
// or typing fast does not trip `rate_limited`; if it happens anyway (a
// server with lower limits) the message waits and goes again, in order.

import { Disconnected, ProtocolError } from './connection.js';

const RATE_PER_SECOND = 15;
const BURST = 30;
const RATE_LIMITED_WAIT_MS = 1000;
const BUSY_BACKOFF_BASE_MS = 500;
const BUSY_BACKOFF_MAX_MS = 10_000;

/** Errors that a later identical send can get past. */
const RETRYABLE = new Set(['rate_limited', 'overloaded', 'internal']);

/** Words for an error next to the message it concerns. */
function describeSendError(error) {
  switch (error.code) {
    case 'too_long':
      return `Too long: ${error.message}.`;
    case 'rate_limited':
      return 'Sending too fast; trying again in a moment…';
    case 'overloaded':
    case 'internal':
      return 'The server is busy; trying again…';
    case 'forbidden':
      return `Not allowed: ${error.message}.`;
    case 'invalid_room':
      return `Invalid room: ${error.message}.`;
    case 'bad_request':
      return `Not accepted: ${error.message}.`;
    default:
      return `Not sent (${error.code}): ${error.message}.`;
  }
}

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `w-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

export class Outbox {
  /**
   * onAck(room, entry, ack): the message is stored.
   * onNotJoined(room): the server says we are not in the room: rejoin it.
   */
  constructor(store, connection, { onAck, onNotJoined }) {
    this.store = store;
    this.connection = connection;
    this.onAck = onAck;
    this.onNotJoined = onNotJoined;
    this.tokens = BURST;
    this.refilledAt = performance.now();
    this.timer = null;
    // createdAt only orders entries; a counter keeps two in one millisecond in order.
    this.sequence = 0;
  }

  /** Keeps a new message and sends it when it can. */
  enqueue(room, text, { id = randomId(), createdAt = Date.now() } = {}) {
    const entry = {
      room: room.name,
      id,
      text,
      createdAt: createdAt + this.sequence++ / 1e6,
      state: 'queued',
      notice: '',
      code: '',
      retryAt: 0,
      attempts: 0,
    };
    this.store.addPending(room, entry);
    this.pump();
    return entry;
  }

  /** Sends a failed message again, as it was (same id). */
  retry(room, id) {
    const entry = room.pending.get(id);
    if (!entry || entry.state !== 'failed') return;
    Object.assign(entry, { state: 'queued', notice: '', code: '', retryAt: 0 });
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
      // A failed message waits for the user (edit, retry or discard).
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
      const ack = await this.connection.request({ type: 'send', room: room.name, text: entry.text, id: entry.id });
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
      entry.notice = describeSendError(error);
      const wait =
        error.code === 'rate_limited'
          ? RATE_LIMITED_WAIT_MS
          : Math.min(BUSY_BACKOFF_MAX_MS, BUSY_BACKOFF_BASE_MS * 2 ** entry.attempts);
      entry.retryAt = performance.now() + wait * (0.75 + Math.random() / 2);
      // The server's bucket is empty; ours should be too.
      if (error.code === 'rate_limited') this.tokens = 0;
    } else {
      entry.state = 'failed';
      entry.code = error.code ?? '';
      entry.notice =
        error instanceof ProtocolError ? describeSendError(error) : `Not sent: ${error.message}`;
    }
    this.store.changed();
  }
}
