//! Durable history behind the [`Store`] trait.
//!
//! The store is the sequencer of record: it assigns each room's `seq` inside
//! the same transaction that stores the message, so a failed commit leaves no
//! gap and a restart continues where the last commit ended. The core batches
//! sends and calls [`Store::append`] once per batch (group commit: one fsync
//! for many messages).
//!
//! Two backends: [`SqliteStore`], embedded, for a single node (the default),
//! and [`PostgresStore`], shared, for several nodes over one history
//! (`--database-url`).

pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use chat_protocol::{Message, User};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage is busy or locked: {0}")]
    Busy(String),
    #[error("storage failed: {0}")]
    Backend(String),
}

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
}

/// Builders and views the stores' unit tests share.
#[cfg(test)]
mod test_support {
    use chat_protocol::User;

    use super::{Appended, Draft};

    /// A draft from `alice` whose text names its id.
    pub fn draft(room: &str, id: &str) -> Draft {
        Draft {
            room: room.into(),
            id: id.into(),
            from: User {
                id: "u1".into(),
                name: "alice".into(),
            },
            text: format!("text of {id}"),
        }
    }

    /// Each outcome as (stored anew, seq).
    pub fn seqs(outcomes: &[Appended]) -> Vec<(bool, u64)> {
        outcomes
            .iter()
            .map(|o| match o {
                Appended::New(m) => (true, m.seq),
                Appended::Duplicate(m) => (false, m.seq),
            })
            .collect()
    }
}
