//! Durable history behind the [`Store`] trait.
//!
//! The store is the sequencer of record: it assigns each room's `seq` inside
//! the same transaction that stores the message, so a failed commit leaves no
//! gap and a restart continues where the last commit ended. The core batches
//! sends and calls [`Store::append`] once per batch (group commit: one fsync
//! for many messages).
//!
//! The backends live outside the core, in `chat-server`: SQLite, embedded,
//! for a single node (the default), and PostgreSQL, shared, for several
//! nodes over one history (`--database-url`).

use async_trait::async_trait;
use chat_protocol::validate::Invalid;
use chat_protocol::{Change, DirectoryEntry, Message, RoomSummary, User};

use crate::bans::Ban;
use crate::identity::RoomAccess;
use crate::permissions::Role;

/// An entry to add to a room's sequence: a message, or a change to one.
/// The store assigns its `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub room: String,
    /// Client-chosen or server-generated; unique per room, across messages
    /// and changes alike.
    pub id: String,
    pub from: User,
    /// What `from` may do beyond their own messages.
    pub role: Role,
    pub action: Action,
}

/// What a [`Draft`] does to its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A new message, perhaps a reply to message `reply_to`.
    Send {
        text: String,
        reply_to: Option<u64>,
    },
    Edit {
        target: u64,
        text: String,
    },
    Delete {
        target: u64,
    },
    /// Adds `emoji` on `target`, or takes it back.
    React {
        target: u64,
        emoji: String,
        remove: bool,
    },
    Pin {
        target: u64,
        remove: bool,
    },
}

impl Action {
    /// The message the action changes or replies to.
    pub fn target(&self) -> Option<u64> {
        match self {
            Action::Send { reply_to, .. } => *reply_to,
            Action::Edit { target, .. }
            | Action::Delete { target }
            | Action::React { target, .. }
            | Action::Pin { target, .. } => Some(*target),
        }
    }
}

/// The outcome of appending one draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// A message, newly stored with the next `seq` of its room.
    New(Message),
    /// A change, newly stored with the next `seq` of its room and applied
    /// to its target.
    Changed(Change),
    /// Nothing new was stored: the room already held an entry with this id,
    /// or the change is already in effect (a reaction the user already
    /// has, a pin already there). The receipt is that of the entry that
    /// made it so.
    Duplicate(Receipt),
    /// Not stored: the [`permissions`](crate::permissions) refuse it, or
    /// its target is not a message that can take it (`not_found`). It took
    /// no `seq`.
    Refused(Invalid),
}

/// What an ack says of a stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub id: String,
    pub seq: u64,
    pub ts: i64,
}

impl Appended {
    /// The receipt of the entry the draft led to, unless refused.
    pub fn receipt(&self) -> Option<Receipt> {
        match self {
            Appended::New(m) => Some(Receipt {
                id: m.id.clone(),
                seq: m.seq,
                ts: m.ts,
            }),
            Appended::Changed(c) => Some(Receipt {
                id: c.id().to_owned(),
                seq: c.seq(),
                ts: c.ts(),
            }),
            Appended::Duplicate(receipt) => Some(receipt.clone()),
            Appended::Refused(_) => None,
        }
    }
}

/// A slice of a room's sequence, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The messages in the slice, each in its current state.
    pub messages: Vec<Message>,
    /// The changes in the slice ([`Store::after`] only): applied to
    /// `messages` already, and to be applied by a client to the messages
    /// it holds from before the slice.
    pub changes: Vec<Change>,
    /// The room's pinned messages in their current state, the earliest
    /// pinned first, read with the page (so as of `latest_seq`).
    pub pins: Vec<Message>,
    /// More entries exist beyond the page in the direction of the read.
    pub more: bool,
    /// The room's latest `seq` when the page was read (0 for a new room).
    pub latest_seq: u64,
}

/// Why a store operation failed, and whether retrying soon may help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer holds a lock, or every connection is taken: a retry
    /// later can succeed.
    #[error("storage is busy or locked: {0}")]
    Busy(#[source] Cause),
    /// Anything else: the database failed or cannot be reached.
    #[error("storage failed: {0}")]
    Backend(#[source] Cause),
}

/// What a [`StoreError`] came from, kept as the error it was (the
/// database's, the broker's, a failed task's) so that logs and callers can
/// follow its chain of sources. Boxed, because the core names no database.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores the drafts in order, all in one durable transaction, stamping
    /// new entries with `ts`. Either every outcome is returned or nothing
    /// was stored.
    ///
    /// For each draft, in order: an id already stored in the room is a
    /// [`Appended::Duplicate`]; else its target (the message it changes or
    /// replies to) is read and [`permissions::check`](crate::permissions::check)
    /// decides, on that target's state as the drafts before it left it;
    /// else the entry takes the room's next `seq` and a change is applied
    /// to its target (and to the pins), and returned with the target's
    /// resulting state.
    async fn append(&self, drafts: Vec<Draft>, ts: i64) -> Result<Vec<Appended>, StoreError>;

    /// Up to `limit` entries with `seq > after`, oldest first: the messages
    /// in their current state, and the changes; `more` when newer entries
    /// exist beyond them.
    async fn after(&self, room: &str, after: u64, limit: usize) -> Result<Page, StoreError>;

    /// Up to `limit` messages with `seq < before` (the latest ones when
    /// `before` is `None`), in their current state, oldest first; `more`
    /// when older ones exist. Changes are not listed: the messages show
    /// them.
    async fn before(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page, StoreError>;

    /// Whether the store can serve requests now.
    async fn check(&self) -> Result<(), StoreError>;

    /// Whether a commit succeeds now: commits a write transaction that
    /// changes nothing a client can see, durably like an append. Reads (and
    /// [`Store::check`]) may succeed while commits fail, on a full disk or
    /// a database turned read-only.
    async fn check_commit(&self) -> Result<(), StoreError>;

    /// Every text message `seq` of `room` has had, oldest first, with who
    /// set it and when: the original, then each edit's; a deletion ends
    /// the list with its entry, with no text. Empty when the room has no
    /// such message.
    async fn versions(&self, room: &str, seq: u64) -> Result<Vec<Version>, StoreError>;

    /// The messages (current state, deleted ones left out) whose text holds
    /// every word of `search.words`, ignoring ASCII case, in the rooms of
    /// `search.rooms`, newest first: one page, and the cursor of the next.
    /// An edit or a deletion shows in the very next search.
    async fn search(&self, search: &Search) -> Result<Found, StoreError>;

    /// Deletes what `retention` no longer keeps, in every room, and returns
    /// how many messages went. Rooms' counters are never touched: `seq`
    /// keeps counting from where it was, so numbers are never reused.
    async fn purge(&self, retention: Retention) -> Result<u64, StoreError>;

    /// Every room that has stored a message, with its latest `seq`, by name.
    async fn rooms(&self) -> Result<Vec<(String, u64)>, StoreError>;

    /// What a `joined` reply of `room` to `user` holds: the page
    /// ([`Store::after`] `since`, else [`Store::before`] the end) and the
    /// user's place in the room, read together.
    async fn join_page(
        &self,
        room: &str,
        user: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Result<(Page, ReadState), StoreError>;

    /// Stores what people did, in one transaction, in order; returns the
    /// state after it of each [`PersonChange::Read`], in order.
    async fn record(&self, changes: Vec<PersonChange>) -> Result<Vec<ReadState>, StoreError>;

    /// The rooms `user` is a member of, the most recently active first.
    async fn user_rooms(&self, user: &str) -> Result<Vec<RoomSummary>, StoreError>;

    /// Rooms that are not direct-message rooms, the most recently active
    /// first, at most `limit`.
    async fn directory(&self, limit: usize) -> Result<Vec<DirectoryEntry>, StoreError>;

    /// The user with this id, as last seen joining a room; `None` if they
    /// never joined one.
    async fn person(&self, user: &str) -> Result<Option<User>, StoreError>;

    /// The value kept under `name`, which is `fresh` if there was none
    /// yet: the first server to start with this storage sets it, and every
    /// later one (every node of a cluster) reads the same.
    async fn shared_secret(&self, name: &str, fresh: String) -> Result<String, StoreError>;

    /// Stores a ban of `ban.user` from `ban.room` (the server when `None`),
    /// or, if there is one already, gives it `ban.reason` and keeps its
    /// `ts`; returns the ban as stored.
    async fn put_ban(&self, ban: &Ban) -> Result<Ban, StoreError>;

    /// Deletes the ban of `user` from `room` (the server when `None`);
    /// returns whether there was one.
    async fn delete_ban(&self, user: &str, room: Option<&str>) -> Result<bool, StoreError>;

    /// Every ban, newest first.
    async fn bans(&self) -> Result<Vec<Ban>, StoreError>;
}

/// A user's place in a room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadState {
    /// The read marker: the `seq` up to which they read. A user who never
    /// joined the room is counted as having read it all.
    pub last_read: u64,
    /// Messages after the marker, not deleted, from others.
    pub unread: u64,
    /// Those of them that mention the user.
    pub unread_mentions: u64,
    /// The name they are a member under; `None` if they are not one.
    pub member_name: Option<String>,
}

/// What a person did that the store keeps beside the rooms' sequences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonChange {
    /// `user` is a member of `room` (again), under their current name,
    /// which `@name` mentions in the room are resolved against. A new
    /// member's marker starts at `read_to` (at most the room's latest
    /// `seq`): what their `joined` reply showed, or 0 for the peer of a
    /// direct message (everything in it is for them); an existing
    /// member's stays where it is.
    Joined {
        user: User,
        room: String,
        read_to: u64,
    },
    /// `user` left `room`: it is no longer one of their rooms.
    Left { user: String, room: String },
    /// `user` read `room` up to `seq`: the marker moves there, never back,
    /// and never past the room's latest `seq`.
    Read {
        user: String,
        room: String,
        seq: u64,
    },
}

/// A full-text search ([`Store::search`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// Each must appear in the text, anywhere (a substring: `你好` finds
    /// `你好吗`), ignoring ASCII case.
    pub words: Vec<String>,
    pub rooms: SearchScope,
    /// A previous page's [`Found::next`]: only older results.
    pub cursor: Option<u64>,
    pub limit: usize,
}

/// Which rooms a search looks in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchScope {
    Room(String),
    /// Every room the access allows.
    Readable(RoomAccess),
}

/// One page of search results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub messages: Vec<Message>,
    /// Where the next page starts; `None` on the last one.
    pub next: Option<u64>,
}

/// One text a message had ([`Store::versions`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Version {
    /// The `seq` of the entry that set it: the message's own, or an edit's
    /// or deletion's.
    pub seq: u64,
    pub from: User,
    /// Empty for the deletion.
    pub text: String,
    pub ts: i64,
    pub deleted: bool,
}

/// Which messages history keeps; each bound is off when `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many of each room's latest `seq`s.
    pub keep_last: Option<u64>,
    /// Delete messages whose `ts` is below this (milliseconds since the
    /// epoch).
    pub older_than_ts: Option<i64>,
}

impl Retention {
    /// Whether any bound is set.
    pub fn is_active(&self) -> bool {
        self.keep_last.is_some() || self.older_than_ts.is_some()
    }

    /// The highest `seq` `keep_last` lets go in a room whose latest is
    /// `latest` (`-1` when none).
    pub fn seq_bound(&self, latest: i64) -> i64 {
        match self.keep_last {
            Some(keep) => latest.saturating_sub(i64::try_from(keep).unwrap_or(i64::MAX)),
            None => -1,
        }
    }

    /// The `ts` below which messages go (`i64::MIN` when none).
    pub fn ts_bound(&self) -> i64 {
        self.older_than_ts.unwrap_or(i64::MIN)
    }
}

/// Most rows one purge statement deletes, so a big first purge holds the
/// database (and the commits waiting on it) only briefly at a time.
pub const PURGE_CHUNK: i64 = 5000;
