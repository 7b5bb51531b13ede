// The page's state: the rooms, their transcripts, members, typing and
// unsent messages. Transcripts are keyed by the server's per-room `seq`, so
// a message that arrives twice (a `joined` reply overlapping live
// broadcasts, a history page overlapping what is loaded, an ack followed by
// the sender's own copy) is stored once. Views read the state and listen
// for `change`; only the client (client.js) changes it.

import { remember } from './storage.js';

const TYPING_SHOWN_MS = 4000;

/** One room the page has joined (or is joining). */
export class RoomState {
  constructor(name) {
    this.name = name;
    /** seq → message, as the server stored it. */
    this.messages = new Map();
    this.sortedCache = null;
    /** client id → unsent message: {room, id, text, createdAt, state, notice, retryAt}. */
    this.pending = new Map();
    /**
     * Every seq from where this page's transcript starts up to lastSeq is
     * present: the `since` to resume from. Messages above it (a gap, or an
     * ack overtaking another sender's broadcast) wait in `messages`.
     */
    this.lastSeq = 0;
    /** The server has answered a join: lastSeq is meaningful for `since`. */
    this.everJoined = false;
    /** Remembered from an earlier visit: kept in the list while it rejoins. */
    this.restored = false;
    /** Joined on the current connection (sends and typing are possible). */
    this.joined = false;
    this.syncing = false;
    /** History before the oldest loaded message: false once the server says there is none. */
    this.olderExist = true;
    this.loadingOlder = false;
    this.olderError = '';
    /** user id → {id, name}. */
    this.members = new Map();
    /** user id → {user, until}. */
    this.typing = new Map();
    this.unread = 0;
  }

  /** Messages oldest first. */
  sorted() {
    this.sortedCache ??= [...this.messages.values()].sort((a, b) => a.seq - b.seq);
    return this.sortedCache;
  }

  get oldestSeq() {
    return this.sorted()[0]?.seq ?? this.lastSeq + 1;
  }

  get hasOlder() {
    return this.olderExist && this.oldestSeq > 1;
  }

  /** Seqs above lastSeq are held while lower ones are missing. */
  get hasGap() {
    return this.messages.size > 0 && this.sorted().at(-1).seq > this.lastSeq;
  }
}

export class Store extends EventTarget {
  constructor({ userIds = [] } = {}) {
    super();
    /** This connection's user ({id, name}), null before the first welcome. */
    this.me = null;
    /**
     * Every user id this tab has had. Anonymous users get a new id on every
     * connection, so after a reconnect "is this mine?" must look at all of them.
     */
    this.myIds = new Set(userIds);
    /** name → RoomState, in the order they were joined. */
    this.rooms = new Map();
    this.active = null;
    this.changeQueued = false;
  }

  /** Tells views that something changed; many changes in one task notify once. */
  changed() {
    if (this.changeQueued) return;
    this.changeQueued = true;
    queueMicrotask(() => {
      this.changeQueued = false;
      this.dispatchEvent(new Event('change'));
    });
  }

  room(name) {
    return this.rooms.get(name) ?? null;
  }

  get activeRoom() {
    return this.active === null ? null : this.room(this.active);
  }

  setMe(user) {
    this.me = user;
    this.myIds.add(user.id);
    remember.userIds([...this.myIds]);
    this.changed();
  }

  isOwn(message) {
    return this.myIds.has(message.from?.id);
  }

  addRoom(name) {
    let room = this.room(name);
    if (!room) {
      room = new RoomState(name);
      this.rooms.set(name, room);
      this.changed();
    }
    return room;
  }

  removeRoom(name) {
    if (!this.rooms.delete(name)) return;
    if (this.active === name) this.setActive(this.rooms.keys().next().value ?? null);
    this.rememberRooms();
    this.persistOutbox();
    this.changed();
  }

  setActive(name) {
    this.active = name;
    const room = this.activeRoom;
    if (room) room.unread = 0;
    remember.activeRoom(name);
    this.changed();
  }

  /** Rooms to rejoin on the next visit: those the server accepted (now or on an earlier visit). */
  rememberRooms() {
    remember.rooms([...this.rooms.values()].filter((r) => r.everJoined || r.restored).map((r) => r.name));
  }

  /**
   * Stores messages from the server. `how`:
   * - 'live': a broadcast; unread if not looked at;
   * - 'resume': missed while away (a join with `since`); unread too;
   * - 'initial', 'older': history; never unread.
   * A message whose id is an unsent one of ours settles it: it is stored,
   * whatever became of its ack.
   */
  addMessages(room, messages, how) {
    const counts = how === 'live' || how === 'resume';
    const looking = this.active === room.name && document.visibilityState === 'visible';
    for (const message of messages) {
      if (room.pending.delete(message.id)) this.persistOutbox();
      if (room.messages.has(message.seq)) {
        // History fetched after a deletion brings the tombstone.
        if (message.deleted) this.markDeleted(room, message.seq, false);
        continue;
      }
      room.messages.set(message.seq, message);
      room.sortedCache = null;
      if (counts) {
        room.typing.delete(message.from.id);
        if (!looking && !this.isOwn(message)) room.unread += 1;
      }
    }
    while (room.messages.has(room.lastSeq + 1)) room.lastSeq += 1;
    this.changed();
  }

  /**
   * A moderator deleted message `seq` (the server's `deleted` event, or a
   * tombstone in history): it stays in place, emptied and marked.
   */
  markDeleted(room, seq, notify = true) {
    const message = room.messages.get(seq);
    if (!message || message.deleted) return;
    room.messages.set(seq, { ...message, text: '', deleted: true });
    room.sortedCache = null;
    if (notify) this.changed();
  }

  /**
   * Applies a `joined` reply. A first join starts the transcript at the
   * room's latest seq; a resumed one (`since`) continues where it was.
   */
  applyJoined(room, joined, resumed) {
    if (resumed && joined.seq < room.lastSeq) {
      // The server has fewer messages than we saw: its history was reset.
      // Start again from what it has rather than drop its new messages as
      // already seen.
      room.messages.clear();
      room.sortedCache = null;
      room.lastSeq = 0;
      room.olderExist = true;
      resumed = false;
    }
    if (!resumed) room.lastSeq = Math.max(room.lastSeq, joined.seq - joined.messages.length);
    if (resumed && joined.complete) {
      // Everything after `since` that still exists is here: seqs below the
      // first one were purged by the server's retention, for good.
      const first = joined.messages[0]?.seq ?? joined.seq + 1;
      room.lastSeq = Math.max(room.lastSeq, first - 1);
    }
    room.everJoined = true;
    room.joined = true;
    room.members = new Map(joined.members.map((m) => [m.id, m]));
    room.typing.clear();
    this.addMessages(room, joined.messages, resumed ? 'resume' : 'initial');
    this.rememberRooms();
  }

  /** The connection dropped: nothing is joined until the next welcome. */
  disconnected() {
    for (const room of this.rooms.values()) {
      room.joined = false;
      room.syncing = false;
      room.typing.clear();
    }
    this.changed();
  }

  presence(room, event, user) {
    if (event === 'join') room.members.set(user.id, user);
    if (event === 'leave') {
      room.members.delete(user.id);
      room.typing.delete(user.id);
    }
    this.changed();
  }

  typing(room, user) {
    if (this.myIds.has(user.id)) return;
    const until = Date.now() + TYPING_SHOWN_MS;
    room.typing.set(user.id, { user, until });
    setTimeout(() => {
      if (room.typing.get(user.id)?.until === until) {
        room.typing.delete(user.id);
        this.changed();
      }
    }, TYPING_SHOWN_MS);
    this.changed();
  }

  /** Unsent messages of every room, oldest first: the order they are sent in. */
  allPending() {
    const all = [];
    for (const room of this.rooms.values()) all.push(...room.pending.values());
    return all.sort((a, b) => a.createdAt - b.createdAt);
  }

  addPending(room, entry) {
    room.pending.set(entry.id, entry);
    this.persistOutbox();
    this.changed();
  }

  /** Unsent messages outlive a reload of the tab (sessionStorage). */
  persistOutbox() {
    remember.outbox(
      this.allPending().map(({ room, id, text, createdAt }) => ({ room, id, text, createdAt })),
    );
  }

  get totalUnread() {
    let n = 0;
    for (const room of this.rooms.values()) n += room.unread;
    return n;
  }
}
