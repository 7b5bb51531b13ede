// The page's client: the glue between the chat client library (clients/js,
// served at /assets/chat-client/) and the page. The library does the
// protocol: one connection kept open (backoff, heartbeat, refusals told
// from outages), every joined room resumed after a reconnect with each
// entry delivered once and in order, writes queued, paced and retried by
// their `id`. Here its events go into the store, and the view's actions
// come in: which room is shown, where an unsent message is shown, writes
// refused for good kept for the user to retry, edit or discard, the words
// for errors, read markers (reads.js), the guest credential (guest.js).

import { ChatClient, DisconnectedError, RefusedError, ServerError, dmPeer, dmRoom } from '../chat-client/index.js';
import { guestCredential } from './guest.js';
import { labelText } from './people.js';
import { ReadMarkers } from './reads.js';
import { OUTBOX, tabStorage } from './storage.js';
import { quotedText } from './store.js';

const TYPING_EVERY_MS = 2500;
const OLDER_PAGE = 50;
// Going back through older history to show a message (a pin, a quoted
// one) stops after this many pages.
const SEEK_PAGES = 20;

/** "room name must be …" → "Room name must be ….", for showing on its own. */
function sentence(text) {
  const capitalized = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(capitalized) ? capitalized : `${capitalized}.`;
}

/** Words for an error answering a join. */
export function describeJoinError(error) {
  if (!(error instanceof ServerError)) return `Could not join: ${error.message}.`;
  switch (error.code) {
    case 'invalid_room':
      return sentence(error.message);
    case 'forbidden':
      return `Not allowed: ${error.message}.`;
    default:
      return `Could not join (${error.code}): ${error.message}.`;
  }
}

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
function describeSendError(entry, error, earlierOwn = false) {
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

/** What to say on a write waiting to go again: why it waits, if the server said. */
function retryNotice(write) {
  const error = write.lastError;
  return error instanceof ServerError && error.retryable ? describeSendError(write, error) : '';
}

/** Words for why the server will not take the page as it is (a RefusedError), connecting as `name`. */
function describeRefusal(refusal, name) {
  switch (refusal.status) {
    case 400:
      if (!name) return 'The server did not accept the connection.';
      return `The server did not accept the name “${name}”. Choose another name.`;
    case 403:
      return 'The server refused this page (origin not allowed).';
    case 0:
      // Closed with 1008: the server's operator disconnected this user.
      return sentence(refusal.reason || 'disconnected by the server');
    default:
      return 'The server did not accept the connection.';
  }
}

/** The `meta` of a message queued to be shown after message `after` until sent. */
function placedAfter(after) {
  return Number.isFinite(after) ? { after } : undefined;
}

/**
 * A write's outcome comes as the library's events (`ack`, `write_failed`,
 * `outbox`); its promise, which rejects when the write is discarded or the
 * client replaced, is only caught.
 */
function byEvents(promise) {
  promise.catch(() => {});
}

export class PageClient {
  constructor(store) {
    this.store = store;
    /** The library's client, for the current name; null until the page first connects. */
    this.chat = null;
    /** The display name connected with ('': the server picks a guest name). */
    this.name = '';
    /** Why the server would not take the page (a RefusedError), until the next connect. */
    this.refusal = null;
    /** Unsubscribes the page from the current library client's events. */
    this.unsubscribes = [];
    /** Rooms being joined with `since`: their `joined` replies hold no context to show. */
    this.resumed = new Set();
    this.reads = new ReadMarkers(store, (room, seq) => this.chat.read(room, seq));
    this.lastTyping = new Map();
    /** room name → callbacks of a join the user is waiting on. */
    this.firstJoins = new Map();
    window.addEventListener('online', () => this.retryNow());
  }

  get started() {
    return this.chat !== null;
  }

  get online() {
    return this.chat?.online ?? false;
  }

  /**
   * 'idle' (not started), 'connecting', 'online', 'reconnecting', 'asleep'
   * (the server closed the connection for idleness: the library reconnects
   * at the next write, or when asked), or 'refused' (see `refusalText`).
   */
  get state() {
    if (this.refusal) return 'refused';
    // Idle before its first welcome, a new client is only about to connect.
    if (this.chat?.state === 'idle') return this.chat.user ? 'asleep' : 'connecting';
    return this.chat?.state ?? 'idle';
  }

  /** When the next connection attempt starts (ms since the epoch) while waiting for it, else null. */
  get retryAt() {
    return this.chat?.retryAt ?? null;
  }

  get refusalText() {
    return this.refusal ? describeRefusal(this.refusal, this.name) : '';
  }

  /**
   * Whether writes can be queued: not while the server refuses the page
   * (until it connects anew, with another name); the user is told so.
   */
  writable() {
    if (this.chat && !this.refusal) return true;
    this.store.notify(`Not sent. ${this.refusalText || 'Not connected.'}`);
    return false;
  }

  /**
   * Connects now: skips the rest of a wait, or wakes a connection closed
   * for idleness (the user asked, or the network came back).
   */
  retryNow() {
    if (this.state === 'asleep') this.chat.connect().catch(() => {});
    else this.chat?.reconnectNow();
    this.store.changed();
  }

  /**
   * Connects as `name` ('': the server picks a guest name). The name is
   * part of the connection, so a new name takes a new library client: it
   * joins every room on the page again, from where the page is, and sends
   * the writes the one before left (kept in storage).
   */
  connect(name) {
    this.name = name;
    this.refusal = null;
    if (this.chat) this.retire(this.chat);
    const chat = new ChatClient({
      name: name || undefined,
      // Read at every attempt: the credential is shared by the browser's
      // tabs, and one dropped (storage cleared) makes a new guest.
      getGuestToken: () => guestCredential.get(),
      // sessionStorage, not localStorage: localStorage is shared by the
      // browser's tabs, and one tab's save would overwrite another's queue.
      // A tab's own reloads keep it.
      storage: tabStorage(),
      storageKey: OUTBOX,
    });
    this.chat = chat;
    this.listen(chat);
    for (const room of this.store.rooms.values()) this.follow(room);
    // A refusal comes as the `closed` event.
    chat.connect().catch(() => {});
  }

  /** Stops a library client for good: its saved writes go with the next one. */
  retire(chat) {
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    chat.close();
    this.store.disconnected();
  }

  /** Takes the events of library client `chat` into the store. */
  listen(chat) {
    const { store } = this;
    const on = (type, handler) => this.unsubscribes.push(chat.on(type, handler));
    on('state', () => store.changed());
    on('welcome', (welcome) => {
      store.setMe(welcome.user);
      this.loadRooms(chat);
    });
    on('guest_token', (token) => (token ? guestCredential.set(token) : guestCredential.drop()));
    on('joined', (joined, { rejoin, reset }) => this.joined(joined, rejoin, reset));
    on('message', (message) => this.inRoom(message, (room) => store.deliverMessage(room, message)));
    on('change', (change) => this.inRoom(change, (room) => store.deliverChange(room, change)));
    on('presence', (frame) => this.inRoom(frame, (room) => store.presence(room, frame.event, frame.user)));
    on('typing', (frame) => this.inRoom(frame, (room) => store.typing(room, frame.user)));
    on('read', (frame) => store.applyRead(frame));
    on('room_added', (frame) => this.roomAdded(frame));
    on('rejoin_failed', (name, error) => this.refused(name, error));
    on('room_removed', (name, error) => this.refused(name, error));
    on('ack', (ack, write) => this.inRoom(write, (room) => this.acked(room, ack, write)));
    on('write_failed', (error, write) => this.inRoom(write, (room) => this.writeFailed(room, error, write)));
    on('outbox', (writes) => store.syncPending(writes, retryNotice));
    on('disconnected', () => store.disconnected());
    on('closed', (why) => {
      if (!(why instanceof RefusedError)) return;
      this.refusal = why;
      store.changed();
    });
  }

  /** Runs `apply(room)` with the store's room that `item.room` names, if the page has it. */
  inRoom(item, apply) {
    const room = this.store.room(item.room);
    if (room) apply(room);
  }

  /**
   * Brings back what an earlier visit left: its rooms (joined on connect)
   * and the one shown. Unsent writes are the library's to restore.
   */
  restore({ rooms, active }) {
    for (const name of rooms) this.store.addRoom(name).restored = true;
    const first = this.store.rooms.keys().next().value ?? null;
    this.store.setActive(this.store.room(active) ? active : first);
  }

  /**
   * Joins a room and shows it. Resolves once the server has accepted it
   * (at once if already joined; after connecting if offline), rejects with
   * the server's error (invalid name, not allowed).
   */
  join(name) {
    const existing = this.store.room(name);
    if (existing) {
      this.store.setActive(name);
      return existing.everJoined ? Promise.resolve() : this.firstJoins.get(name)?.promise ?? Promise.resolve();
    }
    const first = { previous: this.store.active };
    first.promise = new Promise((resolve, reject) => Object.assign(first, { resolve, reject }));
    this.firstJoins.set(name, first);
    const room = this.store.addRoom(name);
    this.store.setActive(name);
    this.follow(room);
    return first.promise;
  }

  /**
   * Has the library follow `room`: from where the page is in it if it was
   * joined before (a new client after a change of name), else from its
   * latest messages.
   */
  follow(room) {
    if (!this.chat) return;
    const since = room.everJoined ? room.lastSeq : undefined;
    if (since === undefined) this.resumed.delete(room.name);
    else this.resumed.add(room.name);
    this.chat.join(room.name, { since }).catch((error) => {
      // Anything but the server's refusal (the room was left, the client
      // replaced) leaves nothing to do.
      if (error instanceof ServerError && this.store.room(room.name) === room) this.refused(room.name, error);
    });
  }

  /** The server refused a room the page joins: it goes, and the user is told why. */
  refused(name, error) {
    const room = this.store.room(name);
    if (!room) return;
    const first = this.firstJoins.get(name);
    this.forget(name);
    if (first) {
      if (first.previous !== null && this.store.room(first.previous)) this.store.setActive(first.previous);
      first.reject(error);
    } else if (room.everJoined) {
      this.store.notify(`No longer in ${labelText(room, this.store.myIds)}. ${describeJoinError(error)}`);
    }
  }

  /**
   * A room was joined (`rejoin`: again, after a reconnect); what it missed
   * follows, delivered. `reset`: the server's history of it started over,
   * and this join is a newcomer's.
   */
  joined(joined, rejoin, reset) {
    // A direct-message room opened here (`dm`) is joined before the page has it.
    const room = this.store.room(joined.room) ?? this.store.addRoom(joined.room);
    const resumed = this.resumed.delete(room.name);
    if (reset) room.restart();
    this.store.applyJoined(room, joined, reset || (!rejoin && !resumed));
    this.firstJoins.get(room.name)?.resolve();
    this.firstJoins.delete(room.name);
    this.reads.flush(room.name);
  }

  leave(name) {
    if (!this.store.room(name)) return;
    this.forget(name);
    // Nothing to wait for: a connection that drops leaves every room anyway.
    this.chat?.leave(name).catch(() => {});
  }

  /** The page is no longer in room `name`. */
  forget(name) {
    this.store.removeRoom(name);
    this.firstJoins.delete(name);
    this.resumed.delete(name);
    this.reads.forget(name);
  }

  /**
   * Sends a message; `replyTo`: the seq of the message it answers. Returns
   * whether it was queued (see `writable`).
   */
  send(name, text, { replyTo = null } = {}) {
    const room = this.store.room(name);
    if (!room || !this.writable()) return false;
    this.lastTyping.delete(name);
    // Until the server gives it a seq it is shown where it was written:
    // after the latest message the room had.
    const after = room.sorted().at(-1)?.seq ?? 0;
    byEvents(this.chat.send(name, text, { replyTo: replyTo ?? undefined, meta: placedAfter(after) }));
    return true;
  }

  /** Replaces the text of message `seq` (one of ours). */
  edit(name, seq, text) {
    if (this.store.room(name) && this.writable()) byEvents(this.chat.edit(name, seq, text));
  }

  /** Deletes message `seq` (one of ours): it stays as a tombstone. */
  remove(name, seq) {
    if (this.store.room(name) && this.writable()) byEvents(this.chat.delete(name, seq));
  }

  /**
   * Adds our `emoji` to message `seq`, or takes it back (`remove`). Taking
   * back a reaction that has not left the page yet just drops it.
   */
  react(name, seq, emoji, remove = false) {
    const room = this.store.room(name);
    if (!room || !this.writable()) return;
    for (const entry of room.pending.values()) {
      if (
        entry.kind === 'react' && entry.target === seq && entry.emoji === emoji &&
        entry.remove === !remove && entry.state === 'queued' && entry.attempts === 0
      ) {
        this.chat.discard(entry.id);
        return;
      }
    }
    byEvents(this.chat.react(name, seq, emoji, { remove }));
  }

  /**
   * Sends a failed message or edit again, with the same id (it was not
   * stored); `changes`: {replyTo: null} sends a reply without its quote.
   */
  retry(name, id, changes = {}) {
    const entry = this.store.room(name)?.pending.get(id);
    if (!entry || entry.state !== 'failed' || !this.writable()) return;
    Object.assign(entry, changes);
    const { text, replyTo, target } = entry;
    const write =
      entry.kind === 'edit'
        ? this.chat.edit(name, target, text, { id })
        : this.chat.send(name, text, { replyTo: replyTo ?? undefined, id, meta: placedAfter(entry.after) });
    byEvents(write);
  }

  /** Sends a reply whose original is gone again, as a plain message. */
  retryWithoutQuote(name, id) {
    this.retry(name, id, { replyTo: null });
  }

  /** Drops an unsent write: one that failed is the page's alone; one queued, the library's too. */
  discard(name, id) {
    const room = this.store.room(name);
    const entry = room?.pending.get(id);
    if (!entry) return;
    if (entry.state === 'failed') {
      room.pending.delete(id);
      this.store.changed();
    } else {
      this.chat?.discard(id);
    }
  }

  /** The library stored one of our writes. */
  acked(room, ack, write) {
    if (write.kind !== 'send') {
      // The change shows once it is delivered, with what it did (a
      // reaction's list); until then it stays shown as ours.
      const entry = room.pending.get(write.id);
      if (entry) this.store.changeAcked(room, entry, ack.seq);
      return;
    }
    const message = { room: room.name, seq: ack.seq, id: ack.id, from: this.store.me, text: write.text, ts: ack.ts };
    if (write.replyTo) {
      message.reply_to = write.replyTo;
      const original = room.message(write.replyTo);
      if (original) {
        message.quote = { from: original.from, text: quotedText(original.text), ...(original.deleted ? { deleted: true } : {}) };
      }
    }
    this.store.sent(room, write, message);
  }

  /**
   * The server refused one of our writes for good. What the user wrote (a
   * message, an edit) stays, said why, to retry, edit or discard; a
   * deletion or a reaction is only told, and can simply be done again.
   */
  writeFailed(room, error, write) {
    const entry = room.pending.get(write.id);
    if (!entry) return;
    const earlierOwn = write.kind !== 'send' && this.store.isEarlierOwn(room, write.target);
    const notice =
      error instanceof ServerError ? describeSendError(entry, error, earlierOwn) : `${failure(entry)}: ${error.message}.`;
    if (write.kind === 'send' || write.kind === 'edit') {
      this.store.failed(entry, error.code ?? '', notice);
    } else {
      room.pending.delete(write.id);
      this.store.notify(notice);
    }
  }

  /** Tells the room we are typing, at most every few seconds. */
  typing(name) {
    const room = this.store.room(name);
    if (!room?.joined || !this.chat) return;
    const now = Date.now();
    if (now - (this.lastTyping.get(name) ?? 0) < TYPING_EVERY_MS) return;
    this.lastTyping.set(name, now);
    this.chat.typing(name);
  }

  /** Loads the page of history before the oldest loaded message. */
  async loadOlder(name) {
    const room = this.store.room(name);
    if (!room || !room.hasOlder || room.loadingOlder || !this.online) return;
    room.loadingOlder = true;
    room.olderError = '';
    this.store.changed();
    try {
      const page = await this.chat.history(name, { before: room.oldestSeq, limit: OLDER_PAGE });
      this.store.addMessages(room, Array.isArray(page.messages) ? page.messages : [], 'older');
      room.olderExist = page.more;
    } catch (error) {
      room.olderError = `Could not load older messages: ${error.message}.`;
    } finally {
      room.loadingOlder = false;
      this.store.changed();
    }
  }

  /**
   * Loads older history until message `seq` is loaded (a pinned or quoted
   * message from further back). Resolves with whether it is.
   */
  async loadUntil(name, seq) {
    const room = this.store.room(name);
    if (!room) return false;
    for (let page = 0; page < SEEK_PAGES; page += 1) {
      // One load at a time: wait for one under way (scrolling started it).
      while (room.loadingOlder) await new Promise((resolve) => setTimeout(resolve, 50));
      if (room.messages.has(seq) || !room.hasOlder || room.oldestSeq <= seq || this.store.room(name) !== room) break;
      const before = room.oldestSeq;
      await this.loadOlder(name);
      if (room.olderError || room.oldestSeq === before) break;
    }
    return room.messages.has(seq);
  }

  /**
   * Searches for messages holding every word of `query`: in room `room`,
   * or (null) in every room this user may read, joined or not. `cursor`:
   * the `next` of the page before. Resolves with the `search_results`
   * reply; rejects with ServerError (the server's `code`), or at once with
   * DisconnectedError when offline (the search box searches again once
   * back, rather than wait).
   */
  search(query, { room = null, cursor = null } = {}) {
    if (!this.online) return Promise.reject(new DisconnectedError('not connected'));
    return this.chat.search(query, { ...(room !== null ? { room } : {}), ...(cursor !== null ? { cursor } : {}) });
  }

  /** The user has seen the latest of room `name` (the view says when). */
  markRead(name) {
    const room = this.store.room(name);
    if (room) this.reads.seen(room);
  }

  /**
   * Opens the direct-message room with `user` ({id, name}) and shows it.
   * Resolves once it is joined; rejects with the server's error (not_found:
   * they never joined a room).
   */
  async openDm(user) {
    const me = this.store.me;
    const known = me ? this.store.room(dmRoom(me.id, user.id)) : null;
    if (known) {
      known.dmWith ??= user;
      this.store.setActive(known.name);
      return;
    }
    if (!this.chat) throw new DisconnectedError('not connected');
    const joined = await this.chat.dm(user.id);
    // The `joined` event added it, unless it was left meanwhile.
    const room = this.store.room(joined.room);
    if (!room) return;
    room.dmWith = user;
    this.store.setActive(room.name);
  }

  /** The public rooms to discover: the `directory` reply's `rooms`. Offline: rejects at once. */
  async directory() {
    if (!this.online) throw new DisconnectedError('not connected');
    const rooms = await this.chat.directory();
    return Array.isArray(rooms) ? rooms : [];
  }

  /**
   * Asks the server for the user's rooms (they may have joined some in
   * another browser tab or on another device) and joins those the page
   * does not have yet, with their unread counts.
   */
  async loadRooms(chat) {
    let rooms;
    try {
      rooms = await chat.rooms();
    } catch {
      // An older server, or a dropped connection (the next welcome asks again).
      return;
    }
    if (chat !== this.chat) return;
    for (const summary of Array.isArray(rooms) ? rooms : []) {
      if (typeof summary?.room !== 'string') continue;
      const room = this.store.room(summary.room) ?? this.store.addRoom(summary.room);
      this.store.applySummary(room, summary);
      if (!chat.followed.includes(room.name)) this.follow(room);
    }
    if (this.store.active === null && this.store.rooms.size > 0) {
      this.store.setActive(this.store.rooms.keys().next().value);
    }
  }

  /** Someone opened a direct-message room with this user (or this user did, in another tab): join it. */
  roomAdded(frame) {
    if (typeof frame.room !== 'string') return;
    const me = this.store.me?.id;
    // Only a room that really is between this user and someone.
    if (me === undefined || dmPeer(frame.room, me) === null) return;
    const room = this.store.room(frame.room) ?? this.store.addRoom(frame.room);
    if (frame.with && typeof frame.with.id === 'string') room.dmWith = frame.with;
    // Their first message may come with the join rather than live: it is
    // news all the same (a notification in a hidden tab).
    if (!room.everJoined) room.announceUnread = true;
    if (this.store.active === null) this.store.setActive(room.name);
    if (!this.chat.followed.includes(room.name)) this.follow(room);
  }
}
