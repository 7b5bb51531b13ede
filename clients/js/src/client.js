// The client: what an application holds. It keeps one connection open
// (connection.js), follows the rooms it joined across reconnects (join
// with `since`, then history pages until caught up: docs/protocol.md §5),
// delivers each room's messages and changes in `seq` order exactly once
// (feed.js), and queues writes until acked, retried by `id` (outbox.js).
// Everything the server pushes arrives as events (`client.on(type, fn)`);
// everything asked returns a promise of the reply.

import { Connection } from './connection.js';
import { Emitter } from './emitter.js';
import { ClosedError, DisconnectedError, ServerError, TimeoutError } from './errors.js';
import { Feed, entriesOf, isChange } from './feed.js';
import { DEFAULT_SEND_RATE, Outbox } from './outbox.js';

/** @typedef {import('./protocol.js').ServerFrame} ServerFrame */
/** @typedef {import('./protocol.js').ClientFrame} ClientFrame */
/** @typedef {import('./protocol.js').WelcomeFrame} WelcomeFrame */
/** @typedef {import('./protocol.js').JoinedFrame} JoinedFrame */
/** @typedef {import('./protocol.js').LeftFrame} LeftFrame */
/** @typedef {import('./protocol.js').AckFrame} AckFrame */
/** @typedef {import('./protocol.js').HistoryFrame} HistoryFrame */
/** @typedef {import('./protocol.js').SearchResultsFrame} SearchResultsFrame */
/** @typedef {import('./protocol.js').ReadFrame} ReadFrame */
/** @typedef {import('./protocol.js').RoomSummary} RoomSummary */
/** @typedef {import('./protocol.js').DirectoryEntry} DirectoryEntry */
/** @typedef {import('./protocol.js').Message} Message */
/** @typedef {import('./protocol.js').Change} Change */
/** @typedef {import('./protocol.js').PresenceFrame} PresenceFrame */
/** @typedef {import('./protocol.js').TypingFrame} TypingFrame */
/** @typedef {import('./protocol.js').RoomAddedFrame} RoomAddedFrame */
/** @typedef {import('./protocol.js').User} User */
/** @typedef {import('./connection.js').ConnectionState} ConnectionState */
/** @typedef {import('./connection.js').WebSocketConstructor} WebSocketConstructor */
/** @typedef {import('./backoff.js').BackoffOptions} BackoffOptions */
/** @typedef {import('./outbox.js').PendingWrite} PendingWrite */
/** @typedef {import('./outbox.js').StorageAdapter} StorageAdapter */
/** @typedef {import('./outbox.js').SendRate} SendRate */
/** @typedef {import('./outbox.js').Write} Write */

/**
 * @typedef {object} ChatClientOptions
 * @property {string} [url] `ws://` or `wss://` URL of the server's `/ws` (in a page, default: `ws` next to the page).
 * @property {string} [name] Display name (`?name=`; with a token, used when it has no `name` claim).
 * @property {string} [token] A JWT the server accepts.
 * @property {() => string | Promise<string>} [getToken] Gives a fresh token: called before connecting when the current one is missing or expires within `tokenMarginMs`, and once after the server refused one.
 * @property {number} [tokenMarginMs] How long before its `exp` a token is refreshed (default 30000).
 * @property {string | null} [guestToken] A guest credential an earlier `welcome` gave (keep it from the `guest_token` event): be that user again.
 * @property {() => string | null} [getGuestToken] Reads the guest credential before every connection attempt, in place of `guestToken`: for one kept where others change it too (storage shared by a browser's tabs, which a user may clear).
 * @property {WebSocketConstructor} [WebSocket] The WebSocket class, where there is no global one (Node before 22: the `ws` package's).
 * @property {typeof fetch} [fetch] Used to tell a refused connection from a server that is down (default: the global one).
 * @property {BackoffOptions} [backoff] Reconnect delays.
 * @property {number} [pingEveryMs] Longest silence before the client pings; two such silences mean a dead connection (default: the server's heartbeat, at most 15000).
 * @property {number} [requestTimeoutMs] How long a request (history, search, …) waits for a connection and a reply (default 30000).
 * @property {StorageAdapter | null} [storage] Keeps unacknowledged writes across reloads and restarts (`sessionStorage`, `localStorage`, or any adapter).
 * @property {string} [storageKey] The key the writes are kept under (default `chat.outbox`).
 * @property {SendRate | null} [sendRate] Pace of writes (default 15 a second, bursts of 30; null: unpaced).
 */

/**
 * The events and their arguments.
 * @typedef {object} ChatEvents
 * @property {[ConnectionState]} state The connection's state changed.
 * @property {[WelcomeFrame]} welcome Connected (again): every followed room is being re-joined.
 * @property {[JoinedFrame, {rejoin: boolean, reset: boolean}]} joined A room was joined, or re-joined after a reconnect (members, pins, unread counts); what it missed follows as `message` and `change` events. `reset`: the server's history of the room started over (its seq went back): drop what you hold of it; the frame's `messages` are its latest, as for a first join.
 * @property {[Message]} message A message, live or missed, in its room's order.
 * @property {[Change]} change A change to a message (`edited`, `deleted`, `reaction`, `pinned`), in its room's order.
 * @property {[PresenceFrame]} presence
 * @property {[TypingFrame]} typing
 * @property {[ReadFrame]} read This person's read marker moved on another connection.
 * @property {[RoomAddedFrame]} room_added A direct-message room with this person was opened: `join` it to follow it.
 * @property {[string, Error]} rejoin_failed A followed room was refused on re-join (for example `forbidden`); it is no longer followed.
 * @property {[string, Error]} room_removed The server took a followed room away (an operator banned this person from it: `forbidden`); it is no longer followed, and joining it again is refused until the ban is lifted.
 * @property {[AckFrame, PendingWrite]} ack A write was stored.
 * @property {[Error, PendingWrite]} write_failed A write was refused for good (`too_long`, `forbidden`, `not_found`, …).
 * @property {[PendingWrite[]]} outbox The writes waiting for an ack changed.
 * @property {[{code: number, reason: string}]} disconnected The connection was lost; the client reconnects.
 * @property {[string]} guest_token A guest credential to keep ('' when the server refused the one kept).
 * @property {[Error]} closed The client stopped for good: `close()`, or a refusal (RefusedError).
 * @property {[ServerFrame]} frame Every frame that answers no request, as it came (frames of types this library does not know included).
 */

/**
 * A followed room.
 * @typedef {object} Room
 * @property {string} name
 * @property {Feed | null} feed null until the first `joined`
 * @property {number | null} since the `since` of the first join, if the caller gave one
 * @property {boolean} ready joined on the current connection
 * @property {boolean} joinSent
 * @property {boolean} everJoined
 * @property {boolean} reset the server's history of the room started over; the next `joined` says so
 * @property {{resolve: (frame: JoinedFrame) => void, reject: (error: Error) => void}[]} waiters
 */

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const CATCH_UP_PAGE = 200;

/** The `/ws` URL next to the page, in a browser. */
function pageUrl() {
  const here = /** @type {any} */ (globalThis).location?.href;
  if (typeof here !== 'string') throw new TypeError('`url` is required outside a web page');
  const url = new URL('ws', here);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

/** @extends {Emitter<ChatEvents>} */
export class ChatClient extends Emitter {
  /** @type {Map<string, Room>} */
  #rooms = new Map();
  /** @type {{resolve: (frame: WelcomeFrame) => void, reject: (error: Error) => void}[]} */
  #connectWaiters = [];
  /** @type {Promise<void> | null} */
  #started = null;
  /** @type {Error | null} */
  #closedBy = null;
  #requestTimeoutMs;
  #connection;
  #outbox;

  /** @param {ChatClientOptions} [options] */
  constructor(options = {}) {
    super();
    this.#requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#connection = new Connection(
      { ...options, url: options.url ?? pageUrl() },
      {
        onWelcome: (frame) => this.#welcomed(frame),
        onFrame: (frame) => this.#received(frame),
        onDrop: (info) => this.#dropped(info),
        onState: (state) => this.emit('state', state),
        onClosed: (why) => this.#stopped(why),
        onGuestToken: (token) => this.emit('guest_token', token),
      },
    );
    this.#outbox = new Outbox(
      {
        request: (frame) => this.#connection.request(frame, 0),
        roomState: (room) => {
          const followed = this.#rooms.get(room);
          if (!followed) return 'unknown';
          return followed.ready ? 'ready' : 'wait';
        },
        notJoined: (room) => this.#rejoin(room),
        onAck: (ack, write) => this.emit('ack', ack, write),
        onFailed: (error, write) => this.emit('write_failed', error, write),
        onChange: () => this.emit('outbox', this.#outbox.list()),
      },
      {
        storage: options.storage ?? null,
        storageKey: options.storageKey ?? 'chat.outbox',
        sendRate: options.sendRate === undefined ? DEFAULT_SEND_RATE : options.sendRate,
      },
    );
  }

  /** The connection's state: `idle`, `connecting`, `online`, `reconnecting` or `closed`. */
  get state() {
    return this.#connection.state;
  }

  get online() {
    return this.#connection.online;
  }

  /** When the next reconnect attempt starts (milliseconds since the epoch) while waiting for it, else null: for a countdown. */
  get retryAt() {
    return this.#connection.retryAt;
  }

  /** Who this client is, from the latest `welcome` (null before the first). */
  get user() {
    return this.#connection.welcome?.user ?? null;
  }

  /** The current connection's session id (null before the first `welcome`). */
  get session() {
    return this.#connection.welcome?.session ?? null;
  }

  /** The guest credential to keep, to be this user again later (null with a token). */
  get guestToken() {
    return this.#connection.guestToken;
  }

  /** The rooms this client follows. */
  get followed() {
    return [...this.#rooms.keys()];
  }

  /** The writes waiting for an ack, oldest first. */
  pending() {
    return this.#outbox.list();
  }

  /**
   * The highest `seq` delivered in `room` (messages and changes): where a resume starts.
   * @param {string} room
   * @returns {number | null} null when the room is not followed or not joined yet
   */
  lastSeq(room) {
    return this.#rooms.get(room)?.feed?.last ?? null;
  }

  /**
   * Connects (restoring saved writes first) and resolves with the `welcome`.
   * Rejects with RefusedError when the server will not take this client,
   * ClosedError after `close()`.
   * @returns {Promise<WelcomeFrame>}
   */
  connect() {
    if (this.#closedBy) return Promise.reject(this.#closedBy);
    const welcome = this.#connection.welcome;
    if (this.online && welcome) return Promise.resolve(welcome);
    const promise = new Promise((resolve, reject) => this.#connectWaiters.push({ resolve, reject }));
    this.#start();
    return /** @type {Promise<WelcomeFrame>} */ (promise);
  }

  /** Stops: closes the connection; every promise waiting rejects with ClosedError. Saved writes stay saved. */
  close() {
    this.#connection.close(new ClosedError());
  }

  /**
   * Joins a room and follows it: after every reconnect it is re-joined and
   * what it missed is delivered. Resolves with the `joined` reply (its
   * `messages` are the latest, for context; entries after them arrive as
   * events). With `since`, every entry after it is delivered as events.
   * @param {string} room
   * @param {{since?: number}} [options]
   * @returns {Promise<JoinedFrame>}
   */
  join(room, { since } = {}) {
    if (typeof room !== 'string') return Promise.reject(new TypeError('room must be a string'));
    if (this.#closedBy) return Promise.reject(this.#closedBy);
    let followed = this.#rooms.get(room);
    if (!followed) {
      followed = { name: room, feed: null, since: since ?? null, ready: false, joinSent: false, everJoined: false, reset: false, waiters: [] };
      this.#rooms.set(room, followed);
    } else if (followed.ready) {
      // Joined already: ask again (the reply is fresh) without losing the place.
      followed.ready = false;
    }
    const target = followed;
    const promise = new Promise((resolve, reject) => target.waiters.push({ resolve, reject }));
    this.#start();
    this.#join(target);
    return /** @type {Promise<JoinedFrame>} */ (promise);
  }

  /**
   * Stops following a room and leaves it; its queued writes are dropped.
   * @param {string} room
   * @returns {Promise<void>}
   */
  async leave(room) {
    const followed = this.#rooms.get(room);
    this.#rooms.delete(room);
    const why = new ClosedError(`left ${room}`);
    this.#outbox.discardRoom(room, why);
    for (const waiter of followed?.waiters ?? []) waiter.reject(why);
    if (this.online) await this.#connection.request({ type: 'leave', room }, this.#requestTimeoutMs);
  }

  /**
   * Sends a message. Resolves with the ack once it is stored; until then it
   * is queued (and saved, given a storage adapter), sent again by its `id`
   * after any reconnect. Rejects with ServerError when refused for good.
   * @param {string} room
   * @param {string} text
   * @param {{replyTo?: number, id?: string, meta?: unknown}} [options] `replyTo`: the seq of the message it answers; `id`: the write's id (default: a random one); `meta`: anything JSON, kept with the queued write
   * @returns {Promise<AckFrame>}
   */
  send(room, text, { replyTo, id, meta } = {}) {
    return this.#write(room, { kind: 'send', text, ...(replyTo ? { replyTo } : {}) }, { id, meta });
  }

  /**
   * Replaces the text of message `seq` (one's own; any, for a moderator).
   * @param {string} room
   * @param {number} seq
   * @param {string} text
   * @param {{id?: string, meta?: unknown}} [options]
   */
  edit(room, seq, text, options = {}) {
    return this.#write(room, { kind: 'edit', target: seq, text }, options);
  }

  /**
   * Deletes message `seq`: it stays as a tombstone.
   * @param {string} room
   * @param {number} seq
   * @param {{id?: string, meta?: unknown}} [options]
   */
  delete(room, seq, options = {}) {
    return this.#write(room, { kind: 'delete', target: seq }, options);
  }

  /**
   * Adds a reaction to message `seq`, or takes it back (`remove`).
   * @param {string} room
   * @param {number} seq
   * @param {string} emoji
   * @param {{remove?: boolean, id?: string, meta?: unknown}} [options]
   */
  react(room, seq, emoji, { remove = false, ...options } = {}) {
    return this.#write(room, { kind: 'react', target: seq, emoji, remove }, options);
  }

  /**
   * Pins message `seq`, or unpins it (`remove`); moderators only.
   * @param {string} room
   * @param {number} seq
   * @param {{remove?: boolean, id?: string, meta?: unknown}} [options]
   */
  pin(room, seq, { remove = false, ...options } = {}) {
    return this.#write(room, { kind: 'pin', target: seq, remove }, options);
  }

  /**
   * Drops a queued write; its promise rejects with ClosedError. A write
   * already on its way may still be stored.
   * @param {string} id
   */
  discard(id) {
    return this.#outbox.discard(id);
  }

  /**
   * A page of a room's history: `before` a seq (older) or `after` one (newer).
   * @param {string} room
   * @param {{before?: number, after?: number, limit?: number}} [query]
   * @returns {Promise<HistoryFrame>}
   */
  history(room, query = {}) {
    return this.#ask({ type: 'history', room, ...query });
  }

  /**
   * Messages holding every word of `query`, newest first: in one room, or every room this user may read.
   * @param {string} query
   * @param {{room?: string, cursor?: number, limit?: number}} [options]
   * @returns {Promise<SearchResultsFrame>}
   */
  search(query, options = {}) {
    return this.#ask({ type: 'search', query, ...options });
  }

  /**
   * Moves this person's read marker in `room` forward to `seq`; resolves once stored.
   * @param {string} room
   * @param {number} seq
   * @returns {Promise<ReadFrame>}
   */
  read(room, seq) {
    return this.#ask({ type: 'read', room, seq });
  }

  /**
   * This person's rooms with unread counts, the most recently active first.
   * @returns {Promise<RoomSummary[]>}
   */
  async rooms() {
    const reply = await this.#ask({ type: 'rooms' });
    return reply.rooms;
  }

  /**
   * Public rooms to discover, the most recently active first.
   * @returns {Promise<DirectoryEntry[]>}
   */
  async directory() {
    const reply = await this.#ask({ type: 'directory' });
    return reply.rooms;
  }

  /**
   * Opens the direct-message room with user `user` (an id) and follows it.
   * Resolves with its `joined`, whose `room` names it.
   * @param {string} user
   * @returns {Promise<JoinedFrame>}
   */
  async dm(user) {
    /** @type {JoinedFrame} */
    const joined = await this.#ask({ type: 'dm', user });
    let followed = this.#rooms.get(joined.room);
    if (!followed) {
      followed = { name: joined.room, feed: null, since: null, ready: false, joinSent: false, everJoined: false, reset: false, waiters: [] };
      this.#rooms.set(joined.room, followed);
    }
    if (!followed.joinSent) this.#applyJoined(followed, joined, followed.feed ? null : followed.since);
    return joined;
  }

  /**
   * Tells the room this user is typing (dropped when offline: it is ephemeral).
   * @param {string} room
   */
  typing(room) {
    return this.#connection.send({ type: 'typing', room });
  }

  /**
   * A round trip to the server; resolves with its time in milliseconds.
   * @returns {Promise<number>}
   */
  async ping() {
    const start = Date.now();
    await this.#ask({ type: 'ping' });
    return Date.now() - start;
  }

  /**
   * Skips the rest of the wait before the next connection attempt (the
   * network came back, the user asked), a first connection's too.
   */
  reconnectNow() {
    this.#connection.retryNow();
  }

  #start() {
    if (this.#closedBy) return;
    if (!this.#started) {
      this.#started = this.#outbox.restore().finally(() => this.#connection.open());
    } else if (this.#connection.state === 'idle') {
      this.#connection.open();
    }
  }

  /**
   * @param {string} room
   * @param {Write} write
   * @param {{id?: string, meta?: unknown}} options
   * @returns {Promise<AckFrame>}
   */
  #write(room, write, options) {
    if (this.#closedBy) return Promise.reject(this.#closedBy);
    if (typeof room !== 'string') return Promise.reject(new TypeError('room must be a string'));
    this.#start();
    return this.#outbox.add(room, write, options);
  }

  /**
   * Sends a request once online and resolves with its reply; a request cut
   * off by a reconnect is asked again (every such request is safe to
   * repeat), until `requestTimeoutMs` has passed.
   * @param {ClientFrame} frame
   * @returns {Promise<any>}
   */
  async #ask(frame) {
    if (this.#closedBy) throw this.#closedBy;
    this.#start();
    const deadline = Date.now() + this.#requestTimeoutMs;
    for (;;) {
      await this.#whenOnline(deadline);
      try {
        return await this.#connection.request(frame, Math.max(1, deadline - Date.now()));
      } catch (error) {
        // Cut off by `close()` (or a refusal): the reason, not "not connected".
        if (error instanceof DisconnectedError && this.#closedBy) throw this.#closedBy;
        if (!(error instanceof DisconnectedError)) throw error;
      }
    }
  }

  /**
   * Resolves once online; rejects with TimeoutError at `deadline`.
   * @param {number} deadline
   * @returns {Promise<void>}
   */
  #whenOnline(deadline) {
    if (this.online) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const stop = () => {
        clearTimeout(timer);
        offState();
        offClosed();
      };
      const timer = setTimeout(() => {
        stop();
        reject(new TimeoutError(this.#requestTimeoutMs));
      }, Math.max(0, deadline - Date.now()));
      const offState = this.on('welcome', () => {
        stop();
        resolve();
      });
      const offClosed = this.on('closed', (why) => {
        stop();
        reject(why);
      });
    });
  }

  /** @param {WelcomeFrame} frame */
  #welcomed(frame) {
    for (const waiter of this.#connectWaiters.splice(0)) waiter.resolve(frame);
    this.emit('welcome', frame);
    for (const room of this.#rooms.values()) this.#join(room);
    this.#outbox.setOnline(true);
  }

  /** @param {{code: number, reason: string}} info */
  #dropped(info) {
    for (const room of this.#rooms.values()) {
      room.ready = false;
      room.joinSent = false;
      room.feed?.connectionLost();
    }
    this.#outbox.setOnline(false);
    this.emit('disconnected', info);
  }

  /** @param {Error} why */
  #stopped(why) {
    this.#closedBy = why;
    for (const waiter of this.#connectWaiters.splice(0)) waiter.reject(why);
    for (const room of this.#rooms.values()) for (const waiter of room.waiters.splice(0)) waiter.reject(why);
    this.#outbox.setOnline(false);
    this.#outbox.close(why);
    this.emit('closed', why);
  }

  /** The server says a followed room is not joined on this connection: join it again. */
  #rejoin(/** @type {string} */ name) {
    const room = this.#rooms.get(name);
    if (!room) return;
    room.ready = false;
    this.#join(room);
  }

  /** Sends the room's `join` on the current connection (with `since` once it has a place). */
  async #join(/** @type {Room} */ room) {
    if (room.joinSent || !this.online) return;
    room.joinSent = true;
    const since = room.feed ? room.feed.last : room.since;
    /** @type {ClientFrame} */
    const frame = since === null ? { type: 'join', room: room.name } : { type: 'join', room: room.name, since };
    let joined;
    try {
      joined = await this.#connection.request(frame, 0);
    } catch (error) {
      room.joinSent = false;
      if (error instanceof ServerError && this.#rooms.get(room.name) === room) this.#refused(room, error);
      // A dropped connection needs nothing here: the next welcome joins again.
      return;
    }
    if (this.#rooms.get(room.name) !== room) return;
    this.#applyJoined(room, joined, since);
  }

  /**
   * The server refused a room: it is no longer followed.
   * @param {Room} room
   * @param {ServerError} error
   */
  #refused(room, error) {
    this.#forget(room, error);
    if (room.everJoined) this.emit('rejoin_failed', room.name, error);
  }

  /**
   * Stops following a room: its queued writes and waiting joins fail with `error`.
   * @param {Room} room
   * @param {ServerError} error
   */
  #forget(room, error) {
    this.#rooms.delete(room.name);
    this.#outbox.discardRoom(room.name, error);
    const waiters = room.waiters.splice(0);
    for (const waiter of waiters) waiter.reject(error);
  }

  /**
   * @param {Room} room
   * @param {JoinedFrame} joined
   * @param {number | null} since the join's `since`
   */
  #applyJoined(room, joined, since) {
    room.joinSent = false;
    if (since !== null && joined.seq < since) {
      // The room's sequence ends before where this client stands: the
      // server's history started over (a new data directory). What the
      // client holds is of a room that is gone, so it joins as a newcomer.
      room.feed = null;
      room.since = null;
      room.reset = true;
      this.#join(room);
      return;
    }
    room.ready = true;
    const rejoin = room.everJoined;
    const reset = room.reset;
    room.everJoined = true;
    room.reset = false;
    /** @type {(Message | Change)[]} */
    let missed = [];
    if (since === null && !room.feed) {
      // A first plain join: its messages are context, and the room's
      // stream starts after them.
      room.feed = new Feed(joined.seq);
    } else if (since === null) {
      room.feed?.learnLatest(joined.seq);
    } else {
      const feed = room.feed ?? new Feed(since);
      room.feed = feed;
      feed.learnLatest(joined.seq);
      missed = entriesOf(joined.messages, joined.events).flatMap((entry) => feed.offer(entry));
    }
    this.emit('joined', joined, { rejoin, reset });
    this.#deliver(missed);
    for (const waiter of room.waiters.splice(0)) waiter.resolve(joined);
    this.#catchUp(room);
    this.#outbox.pump();
  }

  /**
   * Asks for the next history page while the room's feed has a hole (a
   * `complete: false` join, or an entry seen above a gap).
   * @param {Room} room
   */
  async #catchUp(room) {
    const feed = room.feed;
    if (!feed || !room.ready || !this.online) return;
    const after = feed.nextFetch();
    if (after === null) return;
    /** @type {HistoryFrame} */
    let page;
    try {
      page = await this.#connection.request({ type: 'history', room: room.name, after, limit: CATCH_UP_PAGE }, 0);
    } catch {
      // Lost with the connection: the re-join starts from the feed's place.
      feed.connectionLost();
      return;
    }
    if (this.#rooms.get(room.name) !== room || room.feed !== feed) return;
    this.#deliver(feed.page(after, entriesOf(page.messages, page.events), page.more));
    this.#catchUp(room);
  }

  /** @param {(Message | Change)[]} entries */
  #deliver(entries) {
    for (const entry of entries) {
      if (isChange(entry)) this.emit('change', /** @type {Change} */ (entry));
      else this.emit('message', /** @type {Message} */ (entry));
    }
  }

  /** @param {ServerFrame} frame */
  #received(frame) {
    this.emit('frame', frame);
    switch (frame.type) {
      case 'message':
      case 'edited':
      case 'deleted':
      case 'reaction':
      case 'pinned':
        this.#live(frame);
        break;
      case 'presence':
        if (this.#rooms.has(frame.room)) this.emit('presence', frame);
        break;
      case 'typing':
        if (this.#rooms.has(frame.room)) this.emit('typing', frame);
        break;
      case 'read':
        this.emit('read', frame);
        break;
      case 'room_added':
        this.emit('room_added', frame);
        break;
      case 'error': {
        // Unasked and naming a room: the server took it away (a ban).
        const room = frame.room === undefined ? undefined : this.#rooms.get(frame.room);
        if (!room) break;
        const error = new ServerError(frame);
        this.#forget(room, error);
        this.emit('room_removed', room.name, error);
        break;
      }
      default:
      // Replies whose request is gone (cut off by a reconnect, timed out).
    }
  }

  /** @param {Message | Change} entry a live message or change */
  #live(entry) {
    const room = this.#rooms.get(entry.room);
    if (!room?.feed) return;
    this.#deliver(room.feed.offer(entry));
    this.#catchUp(room);
  }
}
