// Writes: messages and changes (edits, deletions, reactions, pins) wait
// here until the server acks them. Each has an `id`, and every retry
// (after a reconnect, a rate limit, a busy server) sends the same `id`, so
// the server stores it once however often it goes (docs/protocol.md §5.4).
//
// A room's writes go out oldest first, paced by a token bucket a little
// under the server's default limit (20 a second, bursts of 40), so a burst
// of writes does not trip `rate_limited`; if it happens anyway, the write
// waits and goes again, and the room's later writes wait behind it. Given a
// storage adapter, the queue is saved on every change, so a write survives
// a page reload or a process restart and is sent (once) after it.

import { ClosedError, DisconnectedError, ServerError } from './errors.js';

/** @typedef {import('./protocol.js').AckFrame} AckFrame */
/** @typedef {import('./protocol.js').ClientFrame} ClientFrame */

/**
 * A write as the caller gave it.
 * @typedef {{kind: 'send', text: string, replyTo?: number}
 *   | {kind: 'edit', target: number, text: string}
 *   | {kind: 'delete', target: number}
 *   | {kind: 'react', target: number, emoji: string, remove?: boolean}
 *   | {kind: 'pin', target: number, remove?: boolean}} Write
 */

/**
 * A write waiting for its ack.
 * @typedef {Write & {
 *   id: string,
 *   room: string,
 *   meta?: unknown,
 *   createdAt: number,
 *   state: 'queued' | 'sending',
 *   attempts: number,
 *   retryAt: number,
 *   lastError: Error | null,
 * }} PendingWrite
 */

/**
 * Where the queue is kept across reloads: the Web Storage API
 * (`localStorage`, `sessionStorage`) or anything shaped like it; the
 * methods may return promises.
 * @typedef {object} StorageAdapter
 * @property {(key: string) => string | null | Promise<string | null>} getItem
 * @property {(key: string, value: string) => void | Promise<void>} setItem
 * @property {(key: string) => void | Promise<void>} removeItem
 */

/**
 * @typedef {object} SendRate
 * @property {number} perSecond
 * @property {number} burst
 */

/**
 * @typedef {object} OutboxHooks
 * @property {(request: ClientFrame) => Promise<AckFrame>} request sends on the current connection
 * @property {(room: string) => 'ready' | 'wait' | 'unknown'} roomState whether writes to the room can go now
 * @property {(room: string) => void} notJoined the server says the room is not joined here: rejoin it
 * @property {(ack: AckFrame, write: PendingWrite) => void} onAck
 * @property {(error: Error, write: PendingWrite) => void} onFailed
 * @property {() => void} onChange the queue changed
 */

export const DEFAULT_SEND_RATE = { perSecond: 15, burst: 30 };
const RATE_LIMITED_WAIT_MS = 1000;
const BUSY_BACKOFF_BASE_MS = 500;
const BUSY_BACKOFF_MAX_MS = 10_000;

/** A fresh write id: random, so that no two clients (or tabs) share one. */
export function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `c-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * The request that carries a write.
 * @param {PendingWrite} write
 * @returns {ClientFrame}
 */
function frameOf(write) {
  const { room, id } = write;
  switch (write.kind) {
    case 'edit':
      return { type: 'edit', room, seq: write.target, text: write.text, id };
    case 'delete':
      return { type: 'delete', room, seq: write.target, id };
    case 'react':
      return { type: 'react', room, seq: write.target, emoji: write.emoji, ...(write.remove ? { remove: true } : {}), id };
    case 'pin':
      return { type: 'pin', room, seq: write.target, ...(write.remove ? { remove: true } : {}), id };
    default:
      return { type: 'send', room, text: write.text, id, ...(write.replyTo ? { reply_to: write.replyTo } : {}) };
  }
}

/**
 * A saved write, as `save` wrote it, or null when it is not one.
 * @param {any} raw
 * @returns {PendingWrite | null}
 */
function restored(raw) {
  if (!raw || typeof raw.room !== 'string' || typeof raw.id !== 'string') return null;
  const base = { id: raw.id, room: raw.room, meta: raw.meta, createdAt: Number(raw.createdAt) || Date.now(), state: /** @type {const} */ ('queued'), attempts: 0, retryAt: 0, lastError: null };
  const target = raw.target;
  const remove = raw.remove === true;
  switch (raw.kind) {
    case 'send':
      if (typeof raw.text !== 'string') return null;
      return { ...base, kind: 'send', text: raw.text, ...(Number.isSafeInteger(raw.replyTo) ? { replyTo: raw.replyTo } : {}) };
    case 'edit':
      return typeof raw.text === 'string' && Number.isSafeInteger(target) ? { ...base, kind: 'edit', target, text: raw.text } : null;
    case 'delete':
      return Number.isSafeInteger(target) ? { ...base, kind: 'delete', target } : null;
    case 'react':
      return typeof raw.emoji === 'string' && Number.isSafeInteger(target) ? { ...base, kind: 'react', target, emoji: raw.emoji, remove } : null;
    case 'pin':
      return Number.isSafeInteger(target) ? { ...base, kind: 'pin', target, remove } : null;
    default:
      return null;
  }
}

export class Outbox {
  /**
   * @param {OutboxHooks} hooks
   * @param {{storage?: StorageAdapter | null, storageKey?: string, sendRate?: SendRate | null}} options
   */
  constructor(hooks, { storage = null, storageKey = 'chat.outbox', sendRate = DEFAULT_SEND_RATE }) {
    this.hooks = hooks;
    this.storage = storage;
    this.storageKey = storageKey;
    this.rate = sendRate;
    /** @type {Map<string, PendingWrite>} by id, oldest first */
    this.writes = new Map();
    /** @type {Map<string, {resolve: (ack: AckFrame) => void, reject: (error: Error) => void}[]>} */
    this.waiters = new Map();
    this.tokens = sendRate?.burst ?? 0;
    this.refilledAt = Date.now();
    /** @type {any} */
    this.timer = null;
    this.online = false;
    this.closed = false;
  }

  /** The writes waiting for an ack, oldest first. */
  list() {
    return [...this.writes.values()];
  }

  /** Loads what an earlier run saved (writes already queued are kept as they are). */
  async restore() {
    if (!this.storage) return;
    let saved;
    try {
      saved = JSON.parse((await this.storage.getItem(this.storageKey)) ?? '[]');
    } catch {
      return;
    }
    if (!Array.isArray(saved)) return;
    for (const raw of saved) {
      const write = restored(raw);
      if (write && !this.writes.has(write.id)) this.writes.set(write.id, write);
    }
    this.hooks.onChange();
    this.pump();
  }

  /**
   * Queues a write and resolves with its ack. A write whose id is queued
   * already is not queued twice: the promise follows the one queued.
   * @param {string} room
   * @param {Write} write
   * @param {{id?: string, meta?: unknown}} [options]
   * @returns {Promise<AckFrame>}
   */
  add(room, write, { id = newId(), meta } = {}) {
    const promise = new Promise((resolve, reject) => {
      const list = this.waiters.get(id) ?? [];
      list.push({ resolve, reject });
      this.waiters.set(id, list);
    });
    if (!this.writes.has(id)) {
      /** @type {PendingWrite} */
      const pending = { ...write, id, room, meta, createdAt: Date.now(), state: 'queued', attempts: 0, retryAt: 0, lastError: null };
      this.writes.set(id, pending);
      this.changed(true);
      this.pump();
    }
    return /** @type {Promise<AckFrame>} */ (promise);
  }

  /**
   * Drops a queued write (one being sent may still be stored); its promise rejects.
   * @param {string} id
   */
  discard(id) {
    const write = this.writes.get(id);
    if (!write) return false;
    this.settle(write, new ClosedError('discarded'));
    return true;
  }

  /** Every write of `room` is dropped (the room was left, or refused). */
  discardRoom(/** @type {string} */ room, /** @type {Error} */ why) {
    for (const write of this.list()) if (write.room === room) this.settle(write, why);
  }

  /** @param {boolean} online */
  setOnline(online) {
    this.online = online;
    if (!online) {
      for (const write of this.writes.values()) if (write.state === 'sending') write.state = 'queued';
    }
    this.pump();
  }

  /** The client closed: every promise rejects (the saved queue stays for the next run). */
  close(/** @type {Error} */ why) {
    this.closed = true;
    clearTimeout(this.timer);
    for (const [id, list] of this.waiters) {
      this.waiters.delete(id);
      for (const waiter of list) waiter.reject(why);
    }
  }

  /** Sends what can go now and sets a timer for what must wait. */
  pump() {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.online) return;
    const now = Date.now();
    this.refill(now);
    let wakeAt = Infinity;
    // A room whose oldest waiting write must wait holds its newer ones back
    // too, so a room's writes keep the order they were made in.
    const held = new Set();
    for (const write of this.writes.values()) {
      if (write.state !== 'queued' || held.has(write.room)) continue;
      const state = this.hooks.roomState(write.room);
      if (state === 'wait' || write.retryAt > now) {
        held.add(write.room);
        if (write.retryAt > now) wakeAt = Math.min(wakeAt, write.retryAt);
        continue;
      }
      if (this.rate && this.tokens < 1) {
        wakeAt = Math.min(wakeAt, now + ((1 - this.tokens) / this.rate.perSecond) * 1000);
        break;
      }
      if (this.rate) this.tokens -= 1;
      this.transmit(write);
    }
    if (wakeAt < Infinity) this.timer = setTimeout(() => this.pump(), Math.max(0, wakeAt - now));
  }

  /** @param {number} now */
  refill(now) {
    if (!this.rate) return;
    this.tokens = Math.min(this.rate.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.rate.perSecond);
    this.refilledAt = now;
  }

  /** @param {PendingWrite} write */
  async transmit(write) {
    write.state = 'sending';
    write.attempts += 1;
    this.changed(false);
    try {
      const ack = await this.hooks.request(frameOf(write));
      if (this.writes.get(write.id) === write) {
        this.hooks.onAck(ack, write);
        this.settle(write, ack);
      }
    } catch (error) {
      // Cut off by close(): not refused, so it stays saved for the next run.
      if (this.writes.get(write.id) === write && !this.closed) this.failed(write, /** @type {Error} */ (error));
    }
    this.pump();
  }

  /**
   * @param {PendingWrite} write
   * @param {Error} error
   */
  failed(write, error) {
    write.lastError = error;
    if (error instanceof DisconnectedError) {
      write.state = 'queued';
    } else if (error instanceof ServerError && error.code === 'not_joined' && this.hooks.roomState(write.room) !== 'unknown') {
      write.state = 'queued';
      this.hooks.notJoined(write.room);
    } else if (error instanceof ServerError && error.retryable) {
      write.state = 'queued';
      const wait =
        error.code === 'rate_limited'
          ? RATE_LIMITED_WAIT_MS
          : Math.min(BUSY_BACKOFF_MAX_MS, BUSY_BACKOFF_BASE_MS * 2 ** Math.min(write.attempts, 10));
      write.retryAt = Date.now() + wait * (0.75 + Math.random() / 2);
      // The server's bucket is empty: ours should be too.
      if (error.code === 'rate_limited') this.tokens = 0;
    } else {
      this.hooks.onFailed(error, write);
      this.settle(write, error);
      return;
    }
    this.changed(false);
  }

  /**
   * Removes a write and settles its promises.
   * @param {PendingWrite} write
   * @param {AckFrame | Error} outcome
   */
  settle(write, outcome) {
    this.writes.delete(write.id);
    const list = this.waiters.get(write.id) ?? [];
    this.waiters.delete(write.id);
    for (const waiter of list) {
      if (outcome instanceof Error) waiter.reject(outcome);
      else waiter.resolve(outcome);
    }
    this.changed(true);
  }

  /** @param {boolean} persist the set of writes changed (not only a state) */
  changed(persist) {
    if (persist) this.save();
    this.hooks.onChange();
  }

  save() {
    if (!this.storage) return;
    const saved = this.list().map(({ state, attempts, retryAt, lastError, ...kept }) => kept);
    try {
      const done = saved.length === 0 ? this.storage.removeItem(this.storageKey) : this.storage.setItem(this.storageKey, JSON.stringify(saved));
      // An async adapter that fails loses only the copy: the queue in memory goes on.
      Promise.resolve(done).catch(() => {});
    } catch {
      // Storage full or unavailable: the same.
    }
  }
}
