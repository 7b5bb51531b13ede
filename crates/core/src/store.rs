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
use chat_protocol::{Message, User};

/// A message to store; the store assigns its `seq`.
#[derive(Debug, Clone)]
pub struct Draft {
    pub room: String,
    /// Client-chosen or server-generated; unique per room.
    pub id: String,
    pub from: User,
    pub text: String,
}

/// The outcome of appending one draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Newly stored with the next `seq` of its room.
    New(Message),
    /// The room already held a message with this id: here it is, unchanged.
    Duplicate(Message),
}

/// A slice of a room's history, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub messages: Vec<Message>,
    /// More messages exist beyond the page in the direction of the read.
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
    /// new messages with `ts`. Either every outcome is returned or nothing
    /// was stored.
    async fn append(&self, drafts: Vec<Draft>, ts: i64) -> Result<Vec<Appended>, StoreError>;

    /// Up to `limit` messages with `seq > after`, oldest first; `more` when
    /// newer ones exist beyond them.
    async fn after(&self, room: &str, after: u64, limit: usize) -> Result<Page, StoreError>;

    /// Up to `limit` messages with `seq < before` (the latest ones when
    /// `before` is `None`), oldest first; `more` when older ones exist.
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

    /// Turns message `seq` of `room` into a tombstone: its text emptied and
    /// `deleted` set, its `seq`, `id`, sender and `ts` kept, so history has
    /// no gap and a retry of its `id` is still recognised. Returns the
    /// tombstone (also when it already was one), or `None` when the room has
    /// no such message (never stored, or purged by retention).
    async fn delete(&self, room: &str, seq: u64) -> Result<Option<Message>, StoreError>;

    /// Deletes what `retention` no longer keeps, in every room, and returns
    /// how many messages went. Rooms' counters are never touched: `seq`
    /// keeps counting from where it was, so numbers are never reused.
    async fn purge(&self, retention: Retention) -> Result<u64, StoreError>;

    /// Every room that has stored a message, with its latest `seq`, by name.
    async fn rooms(&self) -> Result<Vec<(String, u64)>, StoreError>;
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
