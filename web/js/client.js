// The chat client: what the page does with the protocol. It keeps every
// joined room in sync across reconnects (join + since, then paging forward
// when the server returned only part of what was missed), feeds frames into
// the store (messages and the changes to them), and offers the actions the
// view calls: join, leave, send (perhaps as a reply), edit, delete, react,
// typing, loading older history, searching. People: the guest credential
// (one person across tabs and reloads), the user's rooms from the server
// (`rooms`), read markers (reads.js), direct messages (`dm`,
// `room_added`) and the room directory.

import { Connection, ProtocolError } from './connection.js';
import { guestCredential } from './guest.js';
import { Outbox, describeSendError } from './outbox.js';
import { dmPeer, dmRoom } from './people.js';
import { ReadMarkers } from './reads.js';
import { isChange, quotedText } from './store.js';

const TYPING_EVERY_MS = 2500;
const OLDER_PAGE = 50;
const CATCH_UP_PAGE = 200;
// An ack can overtake another sender's broadcast of a lower seq, so a hole
// in the seqs is given a moment to fill before the room is resynced.
const GAP_GRACE_MS = 1500;
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
  if (!(error instanceof ProtocolError)) return `Could not join: ${error.message}.`;
  switch (error.code) {
    case 'invalid_room':
      return sentence(error.message);
    case 'forbidden':
      return `Not allowed: ${error.message}.`;
    default:
      return `Could not join (${error.code}): ${error.message}.`;
  }
}

export class ChatClient {
  constructor(store) {
    this.store = store;
    this.connection = new Connection({
      onFrame: (frame) => this.onFrame(frame),
      onState: () => store.changed(),
      onDrop: () => {
        store.disconnected();
        this.outbox.disconnected();
      },
      credential: guestCredential,
    });
    this.reads = new ReadMarkers(store, this.connection);
    this.outbox = new Outbox(store, this.connection, {
      onAck: (room, entry, ack) => this.acked(room, entry, ack),
      onRefused: (room, entry, error, earlierOwn) => store.notify(describeSendError(entry, error, earlierOwn)),
      onNotJoined: (room) => this.sync(room),
    });
    this.lastTyping = new Map();
    this.gapTimers = new Map();
    /** room name → callbacks of a join the user is waiting on. */
    this.firstJoins = new Map();
  }

  get started() {
    return this.connection.state !== 'idle';
  }

  /** Connects as `name`, or reconnects under it; every room is rejoined on welcome. */
  connect(name) {
    this.connection.open(name);
  }

  /**
   * Brings back what an earlier visit left: its rooms (rejoined on connect)
   * and this tab's unacknowledged messages and changes (sent again with
   * their ids).
   */
  restore({ rooms, active, outbox }) {
    for (const name of rooms) this.store.addRoom(name).restored = true;
    for (const saved of outbox) {
      const room = this.store.addRoom(saved.room);
      const { kind = 'send', text = '', replyTo = null, target = null, emoji = '', remove = false } = saved;
      // Saved by an older page without its place: shown last, as it then was.
      const after = saved.after ?? Infinity;
      this.outbox.enqueue(room, { kind, text, replyTo, target, emoji, remove, after }, { id: saved.id, createdAt: saved.createdAt });
    }
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
    const previous = this.store.active;
    const room = this.store.addRoom(name);
    this.store.setActive(name);
    let callbacks;
    const promise = new Promise((resolve, reject) => {
      callbacks = { resolve, reject };
    });
    this.firstJoins.set(name, { promise, ...callbacks, previous });
    this.sync(room);
    return promise;
  }

  leave(name) {
    if (!this.store.room(name)) return;
    this.store.removeRoom(name);
    this.firstJoins.delete(name);
    this.reads.forget(name);
    // Nothing to wait for: a connection that drops leaves every room anyway.
    if (this.connection.online) this.connection.send({ type: 'leave', room: name });
  }

  /** Sends a message; `replyTo`: the seq of the message it answers. */
  send(name, text, { replyTo = null } = {}) {
    const room = this.store.room(name);
    if (!room) return;
    this.lastTyping.delete(name);
    // Until the server gives it a seq it is shown where it was written:
    // after the latest message the room had.
    const after = room.sorted().at(-1)?.seq ?? 0;
    this.outbox.enqueue(room, { kind: 'send', text, replyTo, after });
  }

  /** Replaces the text of message `seq` (one of ours). */
  edit(name, seq, text) {
    const room = this.store.room(name);
    if (room) this.outbox.enqueue(room, { kind: 'edit', target: seq, text });
  }

  /** Deletes message `seq` (one of ours): it stays as a tombstone. */
  remove(name, seq) {
    const room = this.store.room(name);
    if (room) this.outbox.enqueue(room, { kind: 'delete', target: seq });
  }

  /**
   * Adds our `emoji` to message `seq`, or takes it back (`remove`). Taking
   * back a reaction that has not left the page yet just drops it.
   */
  react(name, seq, emoji, remove = false) {
    const room = this.store.room(name);
    if (!room) return;
    for (const entry of room.pending.values()) {
      if (
        entry.kind === 'react' && entry.target === seq && entry.emoji === emoji &&
        entry.remove === !remove && entry.state === 'queued' && entry.attempts === 0
      ) {
        this.outbox.discard(room, entry.id);
        return;
      }
    }
    this.outbox.enqueue(room, { kind: 'react', target: seq, emoji, remove });
  }

  retry(name, id) {
    const room = this.store.room(name);
    if (room) this.outbox.retry(room, id);
  }

  /** Sends a reply whose original is gone again, as a plain message. */
  retryWithoutQuote(name, id) {
    const room = this.store.room(name);
    if (room) this.outbox.retry(room, id, { replyTo: null });
  }

  discard(name, id) {
    const room = this.store.room(name);
    if (room) this.outbox.discard(room, id);
  }

  /** Tells the room we are typing, at most every few seconds. */
  typing(name) {
    const room = this.store.room(name);
    if (!room?.joined) return;
    const now = Date.now();
    if (now - (this.lastTyping.get(name) ?? 0) < TYPING_EVERY_MS) return;
    this.lastTyping.set(name, now);
    this.connection.send({ type: 'typing', room: name });
  }

  /** Loads the page of history before the oldest loaded message. */
  async loadOlder(name) {
    const room = this.store.room(name);
    if (!room || !room.hasOlder || room.loadingOlder || !this.connection.online) return;
    room.loadingOlder = true;
    room.olderError = '';
    this.store.changed();
    try {
      const page = await this.connection.request({
        type: 'history',
        room: name,
        before: room.oldestSeq,
        limit: OLDER_PAGE,
      });
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
   * reply; rejects with ProtocolError (the server's `code`) or
   * Disconnected.
   */
  search(query, { room = null, cursor = null } = {}) {
    const frame = { type: 'search', query };
    if (room !== null) frame.room = room;
    if (cursor !== null) frame.cursor = cursor;
    return this.connection.request(frame);
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
    const joined = await this.connection.request({ type: 'dm', user: user.id });
    const room = this.store.addRoom(joined.room);
    room.dmWith = user;
    if (!room.everJoined) this.store.applyJoined(room, joined, false);
    this.store.setActive(room.name);
  }

  /** The public rooms to discover: the `directory` reply's `rooms`. */
  async directory() {
    const reply = await this.connection.request({ type: 'directory' });
    return Array.isArray(reply.rooms) ? reply.rooms : [];
  }

  /**
   * Asks the server for the user's rooms (they may have joined some in
   * another browser tab or on another device) and joins those the page
   * does not have yet, with their unread counts.
   */
  async loadRooms() {
    let reply;
    try {
      reply = await this.connection.request({ type: 'rooms' });
    } catch {
      // An older server, or a dropped connection (the next welcome asks again).
      return;
    }
    for (const summary of Array.isArray(reply.rooms) ? reply.rooms : []) {
      if (typeof summary?.room !== 'string') continue;
      const known = this.store.room(summary.room);
      const room = known ?? this.store.addRoom(summary.room);
      this.store.applySummary(room, summary);
      // A room joined already (or joining) needs no second join.
      if (!known || !room.joined) this.sync(room);
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
    this.sync(room);
  }

  onFrame(frame) {
    const room = typeof frame.room === 'string' ? this.store.room(frame.room) : null;
    switch (frame.type) {
      case 'welcome':
        guestCredential.set(frame.guest_token);
        this.store.setMe(frame.user);
        for (const each of this.store.rooms.values()) this.sync(each);
        this.loadRooms();
        break;
      case 'read':
        this.store.applyRead(frame);
        break;
      case 'room_added':
        this.roomAdded(frame);
        break;
      case 'message':
        if (room) {
          this.store.addMessages(room, [frame], 'live');
          this.watchGap(room);
        }
        break;
      case 'presence':
        if (room) this.store.presence(room, frame.event, frame.user);
        break;
      case 'typing':
        if (room) this.store.typing(room, frame.user);
        break;
      case 'edited':
      case 'deleted':
      case 'reaction':
      case 'pinned':
        if (room && isChange(frame)) {
          this.store.applyChanges(room, [frame]);
          this.watchGap(room);
        }
        break;
      default:
      // Replies (joined, ack, history, error) went to their request; one
      // that matched none is stale, from before a reconnect.
    }
  }

  /**
   * Joins a room on the current connection: the first time for its latest
   * messages, afterwards with `since` for exactly what was missed. When the
   * server returned only part of that (`complete: false`), pages forward
   * with `history` `after` (our server's extension) until caught up.
   */
  async sync(room) {
    if (room.syncing || !this.connection.online) return;
    room.syncing = true;
    const resumed = room.everJoined;
    const first = this.firstJoins.get(room.name);
    try {
      const frame = { type: 'join', room: room.name };
      if (resumed) frame.since = room.lastSeq;
      const joined = await this.connection.request(frame);
      if (this.store.room(room.name) !== room) return;
      this.store.applyJoined(room, joined, resumed);
      this.firstJoins.delete(room.name);
      first?.resolve();
      while (room.lastSeq < joined.seq && this.store.room(room.name) === room) {
        const before = room.lastSeq;
        const page = await this.connection.request({
          type: 'history',
          room: room.name,
          after: room.lastSeq,
          limit: CATCH_UP_PAGE,
        });
        this.store.applyPage(room, page);
        if (room.lastSeq === before) break;
      }
    } catch (error) {
      // A dropped connection needs nothing here: the next welcome syncs
      // again. A room the server refuses outright is forgotten.
      if (error instanceof ProtocolError && !room.everJoined) {
        this.firstJoins.delete(room.name);
        this.store.removeRoom(room.name);
        if (first && first.previous !== null && this.store.room(first.previous)) {
          this.store.setActive(first.previous);
        }
        first?.reject(error);
      }
    } finally {
      room.syncing = false;
      this.store.changed();
      this.outbox.pump();
      this.reads.flush(room.name);
      this.watchGap(room);
    }
  }

  acked(room, entry, ack) {
    if (entry.kind !== 'send') {
      // The change shows once its broadcast (or a resume) brings it, with
      // what it did (a reaction's list); until then it stays shown as ours.
      if (room.pending.get(entry.id) !== entry) return;
      entry.state = 'acked';
      entry.seq = ack.seq;
      this.store.persistOutbox();
      this.store.settle(room);
      this.store.changed();
      return;
    }
    const message = {
      room: room.name,
      seq: ack.seq,
      id: ack.id,
      from: this.store.me,
      text: entry.text,
      ts: ack.ts,
    };
    if (entry.replyTo) {
      message.reply_to = entry.replyTo;
      const original = room.message(entry.replyTo);
      if (original) {
        message.quote = { from: original.from, text: quotedText(original.text), ...(original.deleted ? { deleted: true } : {}) };
      }
    }
    this.store.addMessages(room, [message], 'sent');
    this.watchGap(room);
  }

  watchGap(room) {
    if (!room.hasGap || this.gapTimers.has(room.name)) return;
    this.gapTimers.set(
      room.name,
      setTimeout(() => {
        this.gapTimers.delete(room.name);
        if (room.hasGap && this.store.room(room.name) === room) this.sync(room);
      }, GAP_GRACE_MS),
    );
  }
}
