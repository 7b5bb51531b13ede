// The frames of the chat server's native protocol (`/ws`), as TypeScript
// types. The normative text is the repository's `docs/protocol.md`; the
// wire types are defined once, in Rust (`crates/protocol`), and
// `test/frames.samples.ts`, generated from the Rust samples of every frame
// with every optional field set, is type-checked against these types in CI
// (`npm run typecheck`), so the two cannot drift apart silently.

/** A request's `ref`: a number, or a string of at most 64 characters. */
export type Ref = number | string;

/** A user as the wire shows it: stable id and display name. */
export interface User {
  id: string;
  name: string;
}

/** The start of the message a reply quotes, as it is now. */
export interface Quote {
  from: User;
  /** The first 100 characters; empty once deleted. */
  text: string;
  deleted?: true;
}

/** One emoji's reactions on a message: the first 10 users, and how many in all. */
export interface Reaction {
  emoji: string;
  count: number;
  users: User[];
}

/** A stored message in its current state (a `message` frame without `type`). */
export interface Message {
  room: string;
  seq: number;
  id: string;
  from: User;
  text: string;
  /** Server clock at commit, milliseconds since the Unix epoch (UTC). */
  ts: number;
  /** A tombstone: removed, its text empty. */
  deleted?: true;
  /** When the text was last edited. */
  edited_at?: number;
  /** The `seq` of the message this one replies to. */
  reply_to?: number;
  quote?: Quote;
  reactions?: Reaction[];
  /** The ids of the users its `@name`s mention. */
  mentions?: string[];
}

/** What every change to a message carries. */
interface ChangeBase {
  room: string;
  /** The change's own place in the room's sequence. */
  seq: number;
  /** The id of the request that made it. */
  id: string;
  /** The `seq` of the message it changes. */
  target: number;
  /** Who made the change. */
  from: User;
  ts: number;
}

export interface EditedFrame extends ChangeBase {
  type: 'edited';
  /** The message's new text. */
  text: string;
}

export interface DeletedFrame extends ChangeBase {
  type: 'deleted';
}

export interface ReactionFrame extends ChangeBase {
  type: 'reaction';
  emoji: string;
  remove?: true;
  /** The message's whole list of reactions after the change. */
  reactions: Reaction[];
}

export interface PinnedFrame extends ChangeBase {
  type: 'pinned';
  pinned: boolean;
  /** With `pinned: true`: the message as it is now. */
  message?: Message;
}

/** A change to a message: an entry of the room's sequence like a message. */
export type Change = EditedFrame | DeletedFrame | ReactionFrame | PinnedFrame;

export interface MessageFrame extends Message {
  type: 'message';
}

export interface WelcomeFrame {
  type: 'welcome';
  session: string;
  user: User;
  heartbeat_ms: number;
  text: string;
  /** A guest's credential: connect with `?guest=` to be this user again. */
  guest_token?: string;
}

export interface JoinedFrame {
  type: 'joined';
  ref?: Ref;
  room: string;
  /** The room's latest seq when joined (0: none yet). */
  seq: number;
  members: User[];
  /** Without `since`: the latest messages; with it: every message after it. Oldest first. */
  messages: Message[];
  /** With `since`: the changes after it, oldest first. */
  events?: Change[];
  pins?: Message[];
  /** More entries were missed than one reply holds: page the rest. */
  complete: boolean;
  last_read?: number;
  unread?: number;
  unread_mentions?: number;
}

export interface LeftFrame {
  type: 'left';
  ref?: Ref;
  room: string;
}

export interface AckFrame {
  type: 'ack';
  ref?: Ref;
  room: string;
  id: string;
  seq: number;
  ts: number;
  /** The `id` was stored before: this is the original's ack. */
  duplicate?: true;
}

export interface HistoryFrame {
  type: 'history';
  ref?: Ref;
  room: string;
  messages: Message[];
  /** With `after`: the changes in the page's range. */
  events?: Change[];
  /** More exist beyond this page, in the paging direction. */
  more: boolean;
}

export interface TypingFrame {
  type: 'typing';
  room: string;
  user: User;
}

export interface PongFrame {
  type: 'pong';
  ref?: Ref;
  ts: number;
}

export interface PresenceFrame {
  type: 'presence';
  room: string;
  event: 'join' | 'leave';
  user: User;
}

export interface SearchResultsFrame {
  type: 'search_results';
  ref?: Ref;
  query: string;
  room?: string;
  /** Newest first. */
  results: Message[];
  /** The cursor of the next page; absent on the last. */
  next?: number;
}

/** The error codes of `error` frames (docs/protocol.md §7). */
export type ErrorCode =
  | 'bad_request'
  | 'unknown_type'
  | 'invalid_room'
  | 'too_long'
  | 'not_joined'
  | 'forbidden'
  | 'not_found'
  | 'rate_limited'
  | 'overloaded'
  | 'internal';

export interface ErrorFrame {
  type: 'error';
  ref?: Ref;
  code: ErrorCode;
  message: string;
  /** Extension: on an unsolicited error (no `ref`), the room it is about: an operator banned you from it (`forbidden`), and you are no longer in it. */
  room?: string;
}

/** A read marker: the answer to `read`, or news from another connection of the same person. */
export interface ReadFrame {
  type: 'read';
  ref?: Ref;
  room: string;
  seq: number;
  unread: number;
  unread_mentions: number;
}

export interface RoomSummary {
  room: string;
  seq: number;
  last_read: number;
  unread: number;
  unread_mentions: number;
  last?: Message;
  /** The other user of a direct-message room. */
  with?: User;
}

export interface RoomsFrame {
  type: 'rooms';
  ref?: Ref;
  rooms: RoomSummary[];
}

export interface DirectoryEntry {
  room: string;
  members: number;
  seq: number;
  last_ts?: number;
}

export interface DirectoryFrame {
  type: 'directory';
  ref?: Ref;
  rooms: DirectoryEntry[];
}

export interface RoomAddedFrame {
  type: 'room_added';
  room: string;
  with: User;
}

/** Every frame the server sends. */
export type ServerFrame =
  | WelcomeFrame
  | JoinedFrame
  | LeftFrame
  | AckFrame
  | MessageFrame
  | HistoryFrame
  | TypingFrame
  | PongFrame
  | PresenceFrame
  | ErrorFrame
  | Change
  | SearchResultsFrame
  | ReadFrame
  | RoomsFrame
  | DirectoryFrame
  | RoomAddedFrame;

/** Every frame a client sends (`ref` on any of them). */
export type ClientFrame = { ref?: Ref } & (
  | { type: 'join'; room: string; since?: number }
  | { type: 'leave'; room: string }
  | { type: 'send'; room: string; text: string; id?: string; reply_to?: number }
  | { type: 'edit'; room: string; seq: number; text: string; id?: string }
  | { type: 'delete'; room: string; seq: number; id?: string }
  | { type: 'react'; room: string; seq: number; emoji: string; remove?: boolean; id?: string }
  | { type: 'pin'; room: string; seq: number; remove?: boolean; id?: string }
  | { type: 'history'; room: string; before?: number; after?: number; limit?: number }
  | { type: 'search'; query: string; room?: string; cursor?: number; limit?: number }
  | { type: 'typing'; room: string }
  | { type: 'read'; room: string; seq: number }
  | { type: 'rooms' }
  | { type: 'directory' }
  | { type: 'dm'; user: string }
  | { type: 'ping' }
);
