// The page's state: the rooms, their transcripts, pins, members, typing and
// unsent messages and changes. The client library delivers each room's
// entries in `seq` order, once each; transcripts are keyed by `seq` all the
// same, because older history, a join's latest messages and messages made
// from our own acks overlap what was delivered, and each is stored once, in
// its newest state. Changes to messages (edits, deletions, reactions, pins)
// are entries of the same sequence with seqs of their own; they are applied
// by the rules of the server's reference `RoomState` (crates/protocol/src/
// frames/changes.rs): a page that applies every entry delivered, live or on
// resume, shows what a page joining afresh shows. Views read the state and
// listen for `change`; only the page's client (client.js) changes it.

import { isDm } from '../chat-client/index.js';
import { remember } from './storage.js';

const TYPING_SHOWN_MS = 4000;
/** Characters of the quoted message a reply's quote shows (the server's QUOTE_CHARS). */
const QUOTE_CHARS = 100;

/** The start of `text` a quote shows, counted in Unicode scalar values as the server does. */
export function quotedText(text) {
  return Array.from(text).slice(0, QUOTE_CHARS).join('');
}

/**
 * A message turned into its tombstone: its place, id, author, ts and
 * reply_to kept; its text, edit mark, quote and reactions gone.
 */
function tombstone(message) {
  return { ...message, text: '', deleted: true, edited_at: null, quote: null, reactions: [] };
}

/** `message` (the change's target) after `change`. */
function applied(message, change) {
  switch (change.type) {
    case 'edited':
      return { ...message, text: change.text, edited_at: change.ts };
    case 'deleted':
      return tombstone(message);
    case 'reaction':
      return { ...message, reactions: Array.isArray(change.reactions) ? change.reactions : [] };
    default:
      return message;
  }
}

/** A reply after a change to the message it quotes. */
function requoted(message, change) {
  if (!message.quote) return message;
  switch (change.type) {
    case 'edited':
      return { ...message, quote: { ...message.quote, text: quotedText(change.text) } };
    case 'deleted':
      return { ...message, quote: { ...message.quote, text: '', deleted: true } };
    default:
      return message;
  }
}

const CHANGE_TYPES = new Set(['edited', 'deleted', 'reaction', 'pinned']);

/** Whether `frame` is a change entry the page can apply. */
function isChange(frame) {
  return (
    frame !== null &&
    typeof frame === 'object' &&
    CHANGE_TYPES.has(frame.type) &&
    Number.isInteger(frame.seq) &&
    Number.isInteger(frame.target)
  );
}

/** Whether `message` mentions one of `ids` (the server resolved its `@name`s to `mentions`). */
export function mentionsOneOf(message, ids) {
  return Array.isArray(message.mentions) && message.mentions.some((id) => ids.has(id));
}

/** How many of the `joined`/`rooms` counts to believe: numbers, else none. */
function count(value) {
  return Number.isInteger(value) && value > 0 ? value : 0;
}

/** One room the page has joined (or is joining). */
export class RoomState {
  constructor(name) {
    this.name = name;
    /** seq → message, in its current state. */
    this.messages = new Map();
    this.sortedCache = null;
    /** Pinned messages in their current state, the earliest pinned first. */
    this.pins = [];
    /**
     * client id → unsent entry: a message ({kind: 'send', text, replyTo,
     * after: the seq of the message it is shown after})
     * or a change ({kind: 'edit' | 'delete' | 'react', target, text, emoji,
     * remove}), with {room, id, createdAt, attempts, state, notice, code}.
     * `state`: 'queued' or 'sending' while in the client library's queue;
     * 'failed' when refused for good (the user retries, edits or discards
     * it); 'acked' for a change stored but not delivered yet (`seq`).
     */
    this.pending = new Map();
    /** Ids of writes delivered while the library's queue still holds them (their ack is on its way). */
    this.delivered = new Set();
    /**
     * Every entry of the room up to this seq has been applied (delivered in
     * order by the client library, or the latest when first joined): where
     * a new connection resumes from.
     */
    this.lastSeq = 0;
    /** The server has answered a join: lastSeq is meaningful for `since`. */
    this.everJoined = false;
    /** Remembered from an earlier visit: kept in the list while it rejoins. */
    this.restored = false;
    /** Joined on the current connection (sends and typing are possible). */
    this.joined = false;
    /** History before the oldest loaded message: false once the server says there is none. */
    this.olderExist = true;
    this.loadingOlder = false;
    this.olderError = '';
    /** user id → {id, name}. */
    this.members = new Map();
    /** user id → {user, until}. */
    this.typing = new Map();
    /** The user's read marker: every entry up to this seq was read (here or on another device). */
    this.lastRead = 0;
    /**
     * The server's count of unread messages (and mentions of the user
     * among them) after `lastRead`, up to `seq`. Messages after `seq` all
     * reach the page, so they are counted here (see `unreadCounts`).
     */
    this.counted = { seq: 0, unread: 0, mentions: 0 };
    /** In a direct-message room: the other person ({id, name}), once known. */
    this.dmWith = null;
    /** Opened by someone else just now: its unread news is announced once joined. */
    this.announceUnread = false;
  }

  /**
   * The server's history of the room started over (its seq went back):
   * forget what the room held, not what the user has yet to send.
   */
  restart() {
    this.messages.clear();
    this.sortedCache = null;
    this.pins = [];
    this.delivered.clear();
    this.lastSeq = 0;
    this.lastRead = 0;
    this.counted = { seq: 0, unread: 0, mentions: 0 };
    this.olderExist = true;
    this.olderError = '';
  }

  /**
   * Moves the read marker forward to `seq`; `counts` ({unread, mentions}):
   * the server's counts after it, for when the page cannot count them
   * itself. Returns whether it moved.
   */
  markRead(seq, counts = null) {
    if (!Number.isInteger(seq) || seq <= this.lastRead) return false;
    this.lastRead = seq;
    if (seq >= this.counted.seq) {
      // Past everything the server counted: the page holds what follows.
      this.counted = { seq, unread: 0, mentions: 0 };
    } else if (counts) {
      // Read on another device up to a point before what the page holds:
      // the server's counts are as of about what the page holds.
      this.counted = { seq: Math.max(this.counted.seq, this.lastSeq), ...counts };
    }
    return true;
  }

  /**
   * Takes the server's word on where the user is (a `joined` reply, a
   * `rooms` summary): marker `lastRead`, and counts up to `seq`.
   */
  setReadState({ seq, lastRead, unread, mentions }) {
    if (this.lastRead > lastRead) {
      // Read here further than the server knows yet (the marker waits to
      // be sent, ReadMarkers.flush): the page holds everything after it.
      this.counted = { seq: this.lastRead, unread: 0, mentions: 0 };
      return;
    }
    this.lastRead = lastRead;
    this.counted = { seq: Math.max(seq, lastRead), unread, mentions };
  }

  /**
   * {unread, mentions}: messages after the read marker from others, not
   * deleted; those that mention one of `myIds` too. The server's counts up
   * to `counted.seq`, and what the page holds after that.
   */
  unreadCounts(myIds) {
    let { unread, mentions } = this.counted;
    const from = Math.max(this.counted.seq, this.lastRead);
    const messages = this.sorted();
    for (let i = messages.length - 1; i >= 0 && messages[i].seq > from; i -= 1) {
      const message = messages[i];
      if (message.deleted || myIds.has(message.from?.id)) continue;
      unread += 1;
      if (mentionsOneOf(message, myIds)) mentions += 1;
    }
    return { unread, mentions };
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

  /** Entry `seq` was applied: the entries are delivered in order, so every one before it was too. */
  appliedThrough(seq) {
    if (Number.isInteger(seq) && seq > this.lastSeq) this.lastSeq = seq;
  }

  message(seq) {
    return this.messages.get(seq) ?? null;
  }

  /** A new message, or a newer state of one held; pinned copies follow it. */
  putMessage(message) {
    this.messages.set(message.seq, message);
    this.sortedCache = null;
    if (this.pins.some((p) => p.seq === message.seq)) {
      this.pins = this.pins.map((p) => (p.seq === message.seq ? message : p));
    }
  }

  /**
   * Applies a change to every copy of its target (and to the quotes of
   * replies to it): RoomState::apply_change.
   */
  applyChange(change) {
    const target = change.target;
    const message = this.messages.get(target);
    if (message) this.messages.set(target, applied(message, change));
    for (const [seq, each] of this.messages) {
      if (each.reply_to === target) {
        const reply = requoted(each, change);
        if (reply !== each) this.messages.set(seq, reply);
      }
    }
    this.pins = this.pins.map((pinned) => {
      let copy = pinned.seq === target ? applied(pinned, change) : pinned;
      if (copy.reply_to === target) copy = requoted(copy, change);
      return copy;
    });
    if (change.type === 'pinned') {
      this.pins = this.pins.filter((p) => p.seq !== target);
      const pinned = this.messages.get(target) ?? change.message;
      if (change.pinned && pinned) this.pins.push(pinned);
    } else if (change.type === 'deleted') {
      this.pins = this.pins.filter((p) => p.seq !== target);
    }
    this.sortedCache = null;
  }
}

/**
 * `held` replaced by `incoming`, a state of the same message read from the
 * server. A state read before a change the page already applied (a
 * history page answered just after a live edit) must not undo it: a
 * deletion is final, and a later edit keeps its text. For states no older
 * than what is held (every case the server's ordering produces) this is
 * `incoming` as it is, as RoomState::apply_message has it.
 */
function newerState(held, incoming) {
  if (incoming.deleted) return incoming;
  if (held.deleted) return held;
  if ((held.edited_at ?? 0) > (incoming.edited_at ?? 0)) {
    return { ...incoming, text: held.text, edited_at: held.edited_at };
  }
  return incoming;
}

/**
 * Our message `sent` is stored as `seq`: those we wrote after it, still
 * unsent, are shown below it, so ours keep the order they were written in.
 */
function keepBelow(room, sent, seq) {
  for (const entry of room.pending.values()) {
    if (entry.kind === 'send' && entry.createdAt > sent.createdAt) entry.after = Math.max(entry.after, seq);
  }
}

/** Entries in the client library's queue; the others are the page's to keep. */
const QUEUED = new Set(['queued', 'sending']);

/** A write of the library's queue (PendingWrite) as the page shows it. */
function pendingEntry(write) {
  const { id, room, kind, text = '', replyTo = null, target = null, emoji = '', remove = false, createdAt } = write;
  // Where a message was written: given as `meta` when it was queued.
  const after = Number.isInteger(write.meta?.after) ? write.meta.after : Infinity;
  return {
    id, room, kind, text, replyTo, target, emoji, remove, after, createdAt,
    attempts: 0, state: 'queued', notice: '', code: '', seq: null,
  };
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

  /** Tells the user something that concerns no one place on the page (a refused change). */
  notify(text) {
    this.dispatchEvent(new CustomEvent('notice', { detail: { text } }));
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

  /**
   * Whether this connection may edit and delete the message: its author is
   * this connection's user. (An anonymous user is a new user on every
   * connection: messages sent before a reconnect stay "own" on the page
   * but are the server's to refuse.)
   */
  canChange(message) {
    return this.me !== null && message.from?.id === this.me.id && !message.deleted;
  }

  /** Whether message `seq` is one this tab sent on an earlier connection (not ours to change now). */
  isEarlierOwn(room, seq) {
    const message = room.message(seq);
    return message !== null && this.isOwn(message) && message.from.id !== this.me?.id;
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
    this.changed();
  }

  setActive(name) {
    // Unread counts fall as the view reports what was seen (client.markRead).
    this.active = name;
    remember.activeRoom(name);
    this.changed();
  }

  /** Rooms to rejoin on the next visit: those the server accepted (now or on an earlier visit). */
  rememberRooms() {
    remember.rooms([...this.rooms.values()].filter((r) => r.everJoined || r.restored).map((r) => r.name));
  }

  /**
   * Stores messages from the server, new ones and newer states of held
   * ones. `how`:
   * - 'delivered': the room's next entry, as the client library delivers
   *   them (live, or missed while away); announced as a `message` event,
   *   for notifications;
   * - 'initial', 'older': history (a first join's latest messages, a page
   *   before the oldest loaded);
   * - 'sent': made from our own ack; never replaces what the server sent.
   * Which are unread follows from the read marker (RoomState.unreadCounts).
   */
  addMessages(room, messages, how) {
    for (const message of messages) {
      if (!message || !Number.isInteger(message.seq)) continue;
      const held = room.messages.get(message.seq);
      if (held) {
        if (how !== 'sent') room.putMessage(newerState(held, message));
        continue;
      }
      room.putMessage(message);
      if (how === 'delivered') {
        room.typing.delete(message.from.id);
        if (!this.isOwn(message)) this.dispatchEvent(new CustomEvent('message', { detail: { room, message } }));
      }
    }
    this.changed();
  }

  /** The room's next entry, a message, as the client library delivers it. */
  deliverMessage(room, message) {
    this.showed(room, message.id, message.seq);
    this.addMessages(room, [message], 'delivered');
    room.appliedThrough(message.seq);
    this.settle(room);
  }

  /** The room's next entry, a change to a message, as the client library delivers it. */
  deliverChange(room, change) {
    if (!isChange(change)) return;
    this.showed(room, change.id, change.seq);
    room.applyChange(change);
    room.appliedThrough(change.seq);
    this.settle(room);
    this.changed();
  }

  /**
   * A write of ours shows in the room as entry `seq`: it is stored,
   * whatever became of its ack (which may still be on its way).
   */
  showed(room, id, seq) {
    const entry = room.pending.get(id);
    if (!entry) return;
    room.pending.delete(id);
    if (QUEUED.has(entry.state)) room.delivered.add(id);
    if (entry.kind === 'send') keepBelow(room, entry, seq);
  }

  /** Our message `write` was acked: it shows at once as `message`, made from the ack, until delivered. */
  sent(room, write, message) {
    room.pending.delete(write.id);
    keepBelow(room, write, message.seq);
    this.addMessages(room, [message], 'sent');
  }

  /** Our change `entry` was acked as `seq`: it stays shown as ours until the room shows it. */
  changeAcked(room, entry, seq) {
    entry.state = 'acked';
    entry.seq = seq;
    this.settle(room);
    this.changed();
  }

  /** Our write `entry` was refused for good: kept, with `notice`, for the user to retry, edit or discard. */
  failed(entry, code, notice) {
    Object.assign(entry, { state: 'failed', code, notice });
    this.changed();
  }

  /** Drops our acked changes once the room shows them (every entry up to their seq is applied). */
  settle(room) {
    for (const entry of room.pending.values()) {
      if (entry.state === 'acked' && entry.seq <= room.lastSeq) {
        room.pending.delete(entry.id);
        this.changed();
      }
    }
  }

  /**
   * The client library's queue of writes changed: each room's unsent
   * entries follow it (`notice(write)`: what to say on one waiting to go
   * again). Failed entries and acked changes are the page's, kept as they are.
   */
  syncPending(writes, notice) {
    const listed = new Set(writes.map((write) => write.id));
    for (const room of this.rooms.values()) {
      for (const id of room.delivered) if (!listed.has(id)) room.delivered.delete(id);
      for (const [id, entry] of room.pending) if (QUEUED.has(entry.state) && !listed.has(id)) room.pending.delete(id);
    }
    for (const write of writes) {
      const room = this.room(write.room);
      if (!room || room.delivered.has(write.id)) continue;
      const entry = room.pending.get(write.id) ?? pendingEntry(write);
      // A retried entry takes its new place in the queue (createdAt).
      const { state, attempts, createdAt } = write;
      Object.assign(entry, { state, attempts, createdAt, notice: notice(write), code: '' });
      room.pending.set(write.id, entry);
    }
    this.changed();
  }

  /**
   * Applies a `joined` reply (RoomState::apply_joined): members, pins, the
   * read marker. `context`: a first join without `since`, whose messages
   * are the room's latest and start the transcript at its latest seq; any
   * other join's messages and changes are delivered after it, one by one.
   */
  applyJoined(room, joined, context) {
    room.everJoined = true;
    room.joined = true;
    if (Number.isInteger(joined.last_read)) {
      room.setReadState({
        seq: joined.seq,
        lastRead: joined.last_read,
        unread: count(joined.unread),
        mentions: count(joined.unread_mentions),
      });
    }
    room.members = new Map(joined.members.map((m) => [m.id, m]));
    room.typing.clear();
    room.pins = Array.isArray(joined.pins) ? [...joined.pins] : [];
    if (context) {
      this.addMessages(room, Array.isArray(joined.messages) ? joined.messages : [], 'initial');
      room.appliedThrough(joined.seq);
      if (room.announceUnread) this.announceLatestUnread(room);
    }
    this.settle(room);
    this.rememberRooms();
    this.changed();
  }

  /**
   * A room someone just opened with the user (`room_added`) came with
   * unread messages: the latest is announced as if it came live.
   */
  announceLatestUnread(room) {
    room.announceUnread = false;
    const latest = room
      .sorted()
      .findLast((m) => m.seq > room.lastRead && !m.deleted && !this.isOwn(m));
    if (latest) this.dispatchEvent(new CustomEvent('message', { detail: { room, message: latest } }));
  }

  /** The connection dropped: nothing is joined until the next welcome. */
  disconnected() {
    for (const room of this.rooms.values()) {
      room.joined = false;
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

  /** {unread, mentions} of a room (see RoomState.unreadCounts). */
  unreadOf(room) {
    return room.unreadCounts(this.myIds);
  }

  /**
   * A `read` frame: the marker moved (our own request's reply, or news
   * of another tab or device of this user). A marker only moves forward.
   */
  applyRead(frame) {
    const room = this.room(frame.room);
    if (!room || !Number.isInteger(frame.seq)) return;
    const counts = { unread: count(frame.unread), mentions: count(frame.unread_mentions) };
    if (room.markRead(frame.seq, counts)) this.changed();
  }

  /**
   * One of the user's rooms as `rooms` summed it up. Counts are taken
   * only for a room not joined yet on this page: a `joined` reply is newer.
   */
  applySummary(room, summary) {
    if (summary.with && typeof summary.with.id === 'string') room.dmWith = summary.with;
    if (!room.everJoined && Number.isInteger(summary.last_read) && Number.isInteger(summary.seq)) {
      room.setReadState({
        seq: summary.seq,
        lastRead: summary.last_read,
        unread: count(summary.unread),
        mentions: count(summary.unread_mentions),
      });
    }
    this.changed();
  }

  /**
   * What the tab's title counts: messages addressed to the user, that is
   * unread mentions in rooms and unread messages in direct-message rooms
   * (a busy public room alone does not make the tab shout). `except`: a
   * room the user is looking at, whose new messages are being read.
   */
  attentionCount(except = null) {
    let n = 0;
    for (const room of this.rooms.values()) {
      if (room.name === except) continue;
      const { unread, mentions } = this.unreadOf(room);
      n += isDm(room.name) ? unread : mentions;
    }
    return n;
  }
}
