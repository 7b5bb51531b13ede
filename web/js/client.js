// The chat client: what the page does with the protocol. It keeps every
// joined room in sync across reconnects (join + since, then paging forward
// when the server returned only part of what was missed), feeds frames into
// the store, and offers the actions the view calls: join, leave, send,
// typing, loading older history.

import { Connection, ProtocolError } from './connection.js';
import { Outbox } from './outbox.js';

const TYPING_EVERY_MS = 2500;
const OLDER_PAGE = 50;
const CATCH_UP_PAGE = 200;
// An ack can overtake another sender's broadcast of a lower seq, so a hole
// in the seqs is given a moment to fill before the room is resynced.
const GAP_GRACE_MS = 1500;

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
    });
    this.outbox = new Outbox(store, this.connection, {
      onAck: (room, entry, ack) => this.acked(room, entry, ack),
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
   * and this tab's unacknowledged messages (sent again with their ids).
   */
  restore({ rooms, active, outbox }) {
    for (const name of rooms) this.store.addRoom(name).restored = true;
    for (const send of outbox) {
      const room = this.store.addRoom(send.room);
      this.outbox.enqueue(room, send.text, { id: send.id, createdAt: send.createdAt });
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
    // Nothing to wait for: a connection that drops leaves every room anyway.
    if (this.connection.online) this.connection.send({ type: 'leave', room: name });
  }

  send(name, text) {
    const room = this.store.room(name);
    if (!room) return;
    this.lastTyping.delete(name);
    this.outbox.enqueue(room, text);
  }

  retry(name, id) {
    const room = this.store.room(name);
    if (room) this.outbox.retry(room, id);
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
      this.store.addMessages(room, page.messages, 'older');
      room.olderExist = page.more;
    } catch (error) {
      room.olderError = `Could not load older messages: ${error.message}.`;
    } finally {
      room.loadingOlder = false;
      this.store.changed();
    }
  }

  onFrame(frame) {
    const room = typeof frame.room === 'string' ? this.store.room(frame.room) : null;
    switch (frame.type) {
      case 'welcome':
        this.store.setMe(frame.user);
        for (const each of this.store.rooms.values()) this.sync(each);
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
      case 'deleted':
        if (room && Number.isInteger(frame.seq)) this.store.markDeleted(room, frame.seq);
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
        this.store.addMessages(room, page.messages, 'resume');
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
      this.watchGap(room);
    }
  }

  acked(room, entry, ack) {
    const message = {
      room: room.name,
      seq: ack.seq,
      id: ack.id,
      from: this.store.me,
      text: entry.text,
      ts: ack.ts,
    };
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
