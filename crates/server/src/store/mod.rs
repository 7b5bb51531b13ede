//! The [`Store`](chat_core::store::Store) backends: [`SqliteStore`],
//! embedded, for a single node (the default), and [`PostgresStore`], shared,
//! for several nodes over one history (`--database-url`). The trait, and
//! what it promises, is the core's (`chat_core::store`).

mod entries;
pub mod postgres;
pub mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[cfg(test)]
mod committer_over_sqlite;

/// Builders and views the stores' unit tests share, and the checks that
/// every backend must pass alike.
#[cfg(test)]
pub(crate) mod test_support;
