//! The shared store: PostgreSQL, for several `chat-server` nodes behind a
//! load balancer that must agree on every room's history.
//!
//! **Client and pool.** `tokio-postgres` with `deadpool-postgres`: the
//! maintained async driver of the rust-postgres project and the pool built
//! for it, plain SQL with binds and nothing checked against a live database
//! at build time. sqlx was the other candidate; it was set aside because its
//! optional SQLite driver takes part in Cargo's resolution even when unused
//! and its `links = "sqlite3"` collides with rusqlite's, which the embedded
//! store needs. No TLS yet (`NoTls`): a URL asking for `sslmode=require` is
//! refused when connecting.
//!
//! **Schema.** Versioned migrations, embedded below and recorded in
//! `chat_migrations`, are applied by [`PostgresStore::connect`] inside one
//! transaction holding an advisory lock, so several nodes starting at once
//! apply each migration exactly once and none of them reads a half-built
//! schema. An optional PostgreSQL schema (`--database-schema`) is created if
//! missing and put on every pooled connection's `search_path`, so tests (or
//! tenants) sharing one database never see each other's rows.
//!
//! **Tables.** The same as SQLite's schema 3 (see `entries`): one
//! `messages` table holds every entry of a room's sequence, messages in
//! their current state (`kind` 0, `original` keeping the first text once
//! edited or deleted) and changes (`target`, `emoji`, `text`); `reactions`
//! and `pins` hold those in effect, so a message's state is read without
//! replaying its changes.
//!
//! **Sequencing across nodes.** The room's counter row is the lock that
//! serializes appends to a room, wherever they come from. A batch runs in
//! one transaction, which first creates or row-locks (`INSERT … ON CONFLICT
//! DO UPDATE … RETURNING`) the counter of every room in the batch, in
//! sorted order so two nodes' batches cannot deadlock, and reads its
//! current `seq`. From there, nothing else writes to those rooms until the
//! commit: every read the batch makes of them (an id already taken, a
//! change's target, a reaction in effect) is of what committed batches and
//! its own earlier drafts left, just as SQLite's single writer sees it. The
//! batch numbers its new entries from the counters it holds (duplicates and
//! refusals take none, so no gap appears), moves each counter to its last
//! `seq`, and commits. A failed transaction rolls back counters and entries
//! alike. Two paths lead there:
//!
//! - *Sends only* (messages that reply to nothing: almost every batch under
//!   load). After the locks, one statement finds which `(room, id)` pairs
//!   exist already: any transaction that stored one held the same lock and
//!   has committed, so a duplicate sent to two nodes at once is found here
//!   and answered with the original's receipt rather than failing or
//!   taking a second `seq`. One statement then inserts all the new ones.
//!   `BEGIN`, the locks and the lookup go out in one write, and the insert,
//!   the counters and `COMMIT` in another (PostgreSQL runs a connection's
//!   statements in order), so such a batch costs two round trips plus the
//!   WAL flush.
//! - *With changes or replies.* After the locks, the drafts are taken in
//!   order: each run of sends between changes as above (a lookup and an
//!   insert), and each change or reply alone, as SQLite does: its id looked
//!   up, then its target read, `permissions::check` on it, the entry stored
//!   and applied (to the target, its reactions, the pins), and what the
//!   outcome shows (reactions, the pinned message) read back. A change
//!   costs a few round trips of its own; changes are rare next to sends,
//!   and each must see what the drafts before it did, so they are not
//!   batched. The whole batch is still bounded by the store's deadline.
//!   Counters that the locks created for rooms where every draft was
//!   refused are removed before the commit, so only rooms with entries
//!   are listed.
//!
//! The UNIQUE `(room, id)` and `(room, seq)` keys are the backstop: if the
//! reasoning above were ever wrong, the batch would fail (the senders get
//! `internal` and retry) instead of storing a duplicate.
//!
//! **Reads.** A page is several statements (the latest `seq`, the entries,
//! the pins, their reactions and quotes) that must agree with each other,
//! so they run in one `REPEATABLE READ` read-only transaction, sent in one
//! write: one snapshot, one round trip (see `read`). A purge deletes a
//! chunk of a room's entries, with the reactions and pins of its messages,
//! in a short transaction that takes the room's counter lock like an
//! append, so no append can react to or pin a message the purge is taking.
//!
//! **Durability.** An ack follows `COMMIT`, which with PostgreSQL's default
//! `synchronous_commit = on` returns once the WAL is flushed. Start-up refuses
//! a database where `synchronous_commit` or `fsync` is off, since an ack
//! could then be lost.
//!
//! **Outages.** Every operation has a deadline: waiting for a pooled
//! connection, connecting, row locks held by another node (`lock_timeout`)
//! and the whole operation are bounded by the store timeout, so with
//! PostgreSQL down `append` fails (the committer refuses the batch's sends,
//! never acks them) and `check` fails (`/readyz` says 503) instead of
//! hanging. Broken connections are dropped and the pool opens new ones on
//! demand, so the store recovers by itself when PostgreSQL is back.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    BuildError, HookError, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod,
    Runtime,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row, Statement};

use chat_core::store::{
    Appended, Cause, Draft, PURGE_CHUNK, Page, Retention, Store, StoreError, Version,
};

mod append;
mod read;

use append::append_batch;
use read::{page_after, page_before, versions};

/// Most connections one node opens. Appends use one at a time (the
/// committer is a single task); the rest serve concurrent history reads.
const POOL_SIZE: usize = 8;

/// One step of the schema's history. Append new versions; never edit one
/// that has shipped, since databases that already applied it keep its form.
struct Migration {
    version: i32,
    description: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "rooms and messages",
        sql: "
        CREATE TABLE rooms (
            name TEXT   PRIMARY KEY,
            seq  BIGINT NOT NULL CHECK (seq >= 0)
        );
        CREATE TABLE messages (
            room      TEXT   NOT NULL,
            seq       BIGINT NOT NULL CHECK (seq > 0),
            id        TEXT   NOT NULL,
            user_id   TEXT   NOT NULL,
            user_name TEXT   NOT NULL,
            text      TEXT   NOT NULL,
            ts        BIGINT NOT NULL,
            PRIMARY KEY (room, seq),
            UNIQUE (room, id)
        );
    ",
    },
    Migration {
        version: 2,
        description: "tombstones: messages.deleted",
        sql: "ALTER TABLE messages ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT false;",
    },
    Migration {
        version: 3,
        description: "changes in the sequence: messages.kind, target, emoji, edited_at, \
                      original; reactions and pins",
        // The tables of SQLite's schema 3 (see `entries` and `sqlite`).
        // Existing rows are all messages (`kind` 0); adding columns with a
        // constant default rewrites no row. Building the index reads the
        // table once, but indexes none of its rows: no message so far
        // replies to another.
        sql: "
        ALTER TABLE messages
            ADD COLUMN kind      SMALLINT NOT NULL DEFAULT 0,
            ADD COLUMN target    BIGINT,
            ADD COLUMN emoji     TEXT,
            ADD COLUMN edited_at BIGINT,
            ADD COLUMN original  TEXT;
        -- A message's changes and replies; plain messages have no target
        -- and no entry here, so sending costs no more.
        CREATE INDEX messages_room_target ON messages (room, target)
            WHERE target IS NOT NULL;
        -- Reactions in effect: one per user, emoji and message.
        CREATE TABLE reactions (
            room      TEXT   NOT NULL,
            target    BIGINT NOT NULL,
            emoji     TEXT   NOT NULL,
            user_id   TEXT   NOT NULL,
            user_name TEXT   NOT NULL,
            seq       BIGINT NOT NULL,
            PRIMARY KEY (room, target, emoji, user_id)
        );
        -- Pins in effect, with the `seq` of the pin.
        CREATE TABLE pins (
            room   TEXT   NOT NULL,
            target BIGINT NOT NULL,
            seq    BIGINT NOT NULL,
            PRIMARY KEY (room, target)
        );
    ",
    },
];

/// A write that changes nothing: the latest migration's row rewritten as
/// it is. It commits like an append (a new row version, the WAL flushed),
/// and fails where an append would: on a read-only database or a standby,
/// or when the WAL cannot be written.
const CHECK_COMMIT: &str = "
    UPDATE chat_migrations SET version = version
    WHERE version = (SELECT MAX(version) FROM chat_migrations)";

const ROOM_LIST: &str = "SELECT name, seq FROM rooms ORDER BY name COLLATE \"C\"";

/// Row-locks a room's counter, as an append does, so that no append to the
/// room reads a message (to react to it, say) that a purge is deleting.
const LOCK_ROOM: &str = "SELECT seq FROM rooms WHERE name = $1 FOR UPDATE";

/// Deletes up to `$4` of room `$1`'s entries with `seq` at most the room's
/// latest minus `$2` (when `$2` is not NULL) or `ts` below `$3`, with the
/// reactions and pins of those that were messages; returns how many went.
/// Under the room's lock, reactions and pins are only ever added to
/// messages still stored, so those are all that lose their message.
const PURGE_CHUNK_SQL: &str = "
    WITH gone AS (
        DELETE FROM messages WHERE room = $1 AND seq IN (
            SELECT seq FROM messages
            WHERE room = $1
              AND (seq <= (SELECT seq FROM rooms WHERE name = $1) - $2 OR ts < $3)
            ORDER BY seq LIMIT $4)
        RETURNING seq
    ), reactions_gone AS (
        DELETE FROM reactions WHERE room = $1 AND target IN (SELECT seq FROM gone)
    ), pins_gone AS (
        DELETE FROM pins WHERE room = $1 AND target IN (SELECT seq FROM gone)
    )
    SELECT count(*) FROM gone";

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid database URL: {0}")]
    Url(tokio_postgres::Error),
    #[error(
        "invalid database schema name {0:?}: use 1 to 63 lowercase ASCII letters, digits and \
         underscores, starting with a letter or underscore (and not with pg_)"
    )]
    Schema(String),
    #[error("cannot set up the PostgreSQL connection pool: {0}")]
    Pool(#[from] BuildError),
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    Unreachable { target: String, source: StoreError },
    #[error("cannot migrate the PostgreSQL schema at {target}: {source}")]
    Migrate {
        target: String,
        source: tokio_postgres::Error,
    },
    #[error("PostgreSQL at {target} has schema version {found}; this server knows up to {known}")]
    NewerSchema {
        target: String,
        found: i32,
        known: i32,
    },
    #[error(
        "PostgreSQL at {target} has {setting} = {value}: commits would not be durable, so acks \
         could be lost; set it to on"
    )]
    NotDurable {
        target: String,
        setting: &'static str,
        value: String,
    },
    #[error("PostgreSQL at {target} uses encoding {encoding}; the chat needs UTF8")]
    Encoding { target: String, encoding: String },
}

pub struct PostgresStore {
    pool: Pool,
    /// Bounds one whole operation, from waiting for a connection to its last
    /// answer; past it the connection is discarded, in case it hangs.
    deadline: Duration,
    /// Where the data lives, for logs and errors (never the password).
    target: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .finish()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/database?…`), creates
    /// `schema` if given and missing, applies pending migrations, and checks
    /// that commits are durable.
    ///
    /// `timeout` bounds waiting for a pooled connection, opening one, and
    /// waiting for a room locked by another node; a whole operation gets
    /// three times that before its connection is abandoned.
    pub async fn connect(
        url: &str,
        schema: Option<String>,
        timeout: Duration,
    ) -> Result<PostgresStore, ConnectError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(ConnectError::Url)?;
        if let Some(name) = &schema {
            check_schema_name(name)?;
        }
        if config.get_application_name().is_none() {
            config.application_name("chat-server");
        }
        config.connect_timeout(timeout);
        let target = describe(&config, schema.as_deref());

        let session = session_settings(schema.as_deref(), timeout);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A closed connection is never handed out; one that dies
                // while idle fails its next query, whose caller sees an
                // error (never a false ack), and is then replaced.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .post_create(deadpool_postgres::Hook::async_fn(move |client, _| {
                let session = session.clone();
                Box::pin(async move {
                    client
                        .batch_execute(&session)
                        .await
                        .map_err(HookError::Backend)
                })
            }))
            .build()?;

        let mut client = pool.get().await.map_err(|e| ConnectError::Unreachable {
            target: target.clone(),
            source: pool_error(e),
        })?;
        migrate(&mut client, schema.as_deref(), &target).await?;
        check_settings(&client, &target).await?;
        tracing::info!(%target, "PostgreSQL store ready");
        Ok(PostgresStore {
            pool,
            deadline: timeout * 3,
            target,
        })
    }

    /// Takes a pooled connection, or fails within the pool's timeouts.
    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Returns the result of an operation that opens no transaction, or an
    /// error if it ran past the deadline.
    fn settle<T>(
        &self,
        client: Object,
        outcome: Result<Result<T, StoreError>, tokio::time::error::Elapsed>,
    ) -> Result<T, StoreError> {
        outcome.unwrap_or_else(|_| Err(self.abandon(client)))
    }

    /// Takes a connection that ran past the deadline out of the pool (it
    /// may be stuck on a network that stopped answering, or inside a
    /// transaction) and says so.
    fn abandon(&self, client: Object) -> StoreError {
        drop(Object::take(client));
        StoreError::Backend(Cause::from(format!(
            "PostgreSQL at {} did not answer within {:?}",
            self.target, self.deadline
        )))
    }

    /// Returns the result of an operation that runs a transaction: when it
    /// failed, the transaction it may have left open is rolled back first;
    /// when it ran past the deadline, its connection is abandoned.
    async fn conclude<T>(
        &self,
        client: Object,
        outcome: Result<Result<T, StoreError>, tokio::time::error::Elapsed>,
    ) -> Result<T, StoreError> {
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                self.roll_back(client).await;
                Err(e)
            }
            Err(_) => Err(self.abandon(client)),
        }
    }

    /// Ends the transaction a failed operation may have left open, so the
    /// connection goes back to the pool clean, or else takes it out.
    async fn roll_back(&self, client: Object) {
        match tokio::time::timeout(self.deadline, client.batch_execute("ROLLBACK")).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "dropping a connection that cannot roll back");
                drop(Object::take(client));
            }
            Err(_) => {
                self.abandon(client);
            }
        }
    }
}

/// The statements every new pooled connection runs first.
fn session_settings(schema: Option<&str>, timeout: Duration) -> String {
    // A node that hangs mid-transaction must not hold room locks for long:
    // the other nodes' appends to those rooms wait for it meanwhile.
    let idle = (timeout * 4).max(Duration::from_secs(10));
    let mut sql = format!(
        "SET lock_timeout = {}; SET idle_in_transaction_session_timeout = {};",
        timeout.as_millis().max(1),
        idle.as_millis()
    );
    if let Some(schema) = schema {
        sql.push_str(&format!(" SET search_path TO {};", quote_ident(schema)));
    }
    sql
}

/// Schema names are spliced into SQL (identifiers cannot be bound), so only
/// a plain, unambiguous form is accepted; it is also the form PostgreSQL
/// folds unquoted names to, so the name means the same quoted or not.
fn check_schema_name(name: &str) -> Result<(), ConnectError> {
    let valid = (1..=63).contains(&name.len())
        && !name.starts_with("pg_")
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ConnectError::Schema(name.to_owned()))
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `host:port/database (schema s)`, from the parsed URL, without credentials.
fn describe(config: &tokio_postgres::Config, schema: Option<&str>) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => format!("{host}:5432"),
            }
        })
        .collect();
    let mut target = format!(
        "{}/{}",
        hosts.join(","),
        config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres")
    );
    if let Some(schema) = schema {
        target.push_str(&format!(" (schema {schema})"));
    }
    target
}

/// Applies pending migrations in one transaction under an advisory lock, so
/// nodes starting together take turns and later ones find nothing to do.
async fn migrate(
    client: &mut Object,
    schema: Option<&str>,
    target: &str,
) -> Result<(), ConnectError> {
    let failed = |source| ConnectError::Migrate {
        target: target.to_owned(),
        source,
    };
    let tx = client.transaction().await.map_err(failed)?;
    let lock_name = format!("chat-server migrations {}", schema.unwrap_or(""));
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock_name])
        .await
        .map_err(failed)?;
    // A migration may take long on a big table; the session's lock timeout
    // is for appends, not for this.
    tx.batch_execute("SET LOCAL lock_timeout = 0")
        .await
        .map_err(failed)?;
    if let Some(schema) = schema {
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(schema)
        ))
        .await
        .map_err(failed)?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS chat_migrations (
            version     INTEGER     PRIMARY KEY,
            description TEXT        NOT NULL,
            applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(failed)?;
    let found: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM chat_migrations", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(failed)?;
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if found > known {
        tx.rollback().await.map_err(failed)?;
        return Err(ConnectError::NewerSchema {
            target: target.to_owned(),
            found,
            known,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        tx.batch_execute(migration.sql).await.map_err(failed)?;
        tx.execute(
            "INSERT INTO chat_migrations (version, description) VALUES ($1, $2)",
            &[&migration.version, &migration.description],
        )
        .await
        .map_err(failed)?;
        tracing::info!(
            version = migration.version,
            description = migration.description,
            %target,
            "applied PostgreSQL migration"
        );
    }
    tx.commit().await.map_err(failed)
}

/// Refuses settings under which an ack would not be a promise, or under
/// which non-ASCII text would not be stored as sent.
async fn check_settings(client: &Object, target: &str) -> Result<(), ConnectError> {
    let failed = |source| ConnectError::Migrate {
        target: target.to_owned(),
        source,
    };
    let row = client
        .query_one(
            "SELECT current_setting('synchronous_commit'), current_setting('fsync'), \
             current_setting('server_encoding')",
            &[],
        )
        .await
        .map_err(failed)?;
    let setting = |i: usize| row.try_get::<_, String>(i).map_err(failed);
    for (i, name) in [(0, "synchronous_commit"), (1, "fsync")] {
        let value = setting(i)?;
        if value == "off" {
            return Err(ConnectError::NotDurable {
                target: target.to_owned(),
                setting: name,
                value,
            });
        }
    }
    let encoding = setting(2)?;
    if encoding != "UTF8" {
        return Err(ConnectError::Encoding {
            target: target.to_owned(),
            encoding,
        });
    }
    Ok(())
}

/// Waiting on a lock held by another node, or a conflict between
/// transactions, is "busy": retrying later can succeed. Anything else,
/// including an unreachable server, is a backend failure.
fn db_error(e: tokio_postgres::Error) -> StoreError {
    let busy = [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::QUERY_CANCELED,
    ];
    match e.code() {
        Some(code) if busy.contains(code) => StoreError::Busy(e.into()),
        _ => StoreError::Backend(e.into()),
    }
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => db_error(e),
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => StoreError::Busy(Cause::from(
            "timed out waiting for a free PostgreSQL connection",
        )),
        PoolError::Timeout(deadpool_postgres::TimeoutType::Create) => {
            StoreError::Backend(Cause::from("timed out connecting to PostgreSQL"))
        }
        other => StoreError::Backend(other.into()),
    }
}

/// Seq values are BIGINT; clamp client bounds so a huge `before`/`since`
/// reads as "everything" rather than overflowing.
fn to_sql_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn from_sql_seq(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq)
        .map_err(|_| StoreError::Backend(Cause::from(format!("stored seq {seq} is negative"))))
}

/// `limit + 1` rows are read to learn whether more exist.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).map_or(i64::MAX, |l| l.saturating_add(1))
}

/// A statement parameter.
type Param<'a> = dyn tokio_postgres::types::ToSql + Sync + 'a;

/// Prepares statements that are then sent together, in one write: a
/// statement still being prepared when the others are sent would be sent
/// after them, out of order. Each is prepared once per connection (the
/// pool keeps them), so this costs a round trip only on first use.
async fn prepare<const N: usize>(
    client: &Object,
    sql: [&str; N],
) -> Result<[Statement; N], StoreError> {
    let statements =
        futures_util::future::try_join_all(sql.iter().map(|sql| client.prepare_cached(sql)))
            .await
            .map_err(db_error)?;
    statements
        .try_into()
        .map_err(|_| StoreError::Backend(Cause::from("a statement was not prepared")))
}

/// Runs one statement and returns its rows.
async fn query(client: &Object, sql: &str, params: &[&Param<'_>]) -> Result<Vec<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(db_error)?;
    client.query(&statement, params).await.map_err(db_error)
}

/// Runs one statement that returns a row or none.
async fn query_opt(
    client: &Object,
    sql: &str,
    params: &[&Param<'_>],
) -> Result<Option<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(db_error)?;
    client.query_opt(&statement, params).await.map_err(db_error)
}

/// Runs one statement and returns how many rows it changed.
async fn execute(client: &Object, sql: &str, params: &[&Param<'_>]) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(db_error)?;
    client.execute(&statement, params).await.map_err(db_error)
}

/// Deletes one chunk of `room`'s entries that `retention` lets go (see
/// [`PURGE_CHUNK_SQL`]), in a transaction of its own that holds the room's
/// lock, in one round trip; returns how many went. On error the transaction
/// may be left open: the caller rolls back.
async fn purge_chunk(client: &Object, room: &str, retention: Retention) -> Result<u64, StoreError> {
    let keep = retention
        .keep_last
        .map(|k| i64::try_from(k).unwrap_or(i64::MAX));
    let [lock, purge] = prepare(client, [LOCK_ROOM, PURGE_CHUNK_SQL]).await?;
    let ts_bound = retention.ts_bound();
    let lock_params: [&Param<'_>; 1] = [&room];
    let purge_params: [&Param<'_>; 4] = [&room, &keep, &ts_bound, &PURGE_CHUNK];
    let (began, locked, purged, committed) = tokio::join!(
        client.batch_execute("BEGIN"),
        client.query_opt(&lock, &lock_params),
        client.query_one(&purge, &purge_params),
        client.batch_execute("COMMIT"),
    );
    began.map_err(db_error)?;
    locked.map_err(db_error)?;
    let deleted: i64 = purged.and_then(|row| row.try_get(0)).map_err(db_error)?;
    committed.map_err(db_error)?;
    u64::try_from(deleted).map_err(|_| StoreError::Backend(Cause::from("a negative count")))
}

#[async_trait]
impl Store for PostgresStore {
    async fn append(&self, drafts: Vec<Draft>, ts: i64) -> Result<Vec<Appended>, StoreError> {
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let outcome = tokio::time::timeout(self.deadline, append_batch(&client, drafts, ts)).await;
        self.conclude(client, outcome).await
    }

    async fn after(&self, room: &str, after: u64, limit: usize) -> Result<Page, StoreError> {
        let client = self.client().await?;
        let outcome =
            tokio::time::timeout(self.deadline, page_after(&client, room, after, limit)).await;
        self.conclude(client, outcome).await
    }

    async fn before(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let client = self.client().await?;
        let outcome =
            tokio::time::timeout(self.deadline, page_before(&client, room, before, limit)).await;
        self.conclude(client, outcome).await
    }

    async fn check(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let outcome = tokio::time::timeout(self.deadline, async {
            client
                .simple_query("SELECT 1")
                .await
                .map(drop)
                .map_err(db_error)
        })
        .await;
        self.settle(client, outcome)
    }

    async fn check_commit(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let outcome = tokio::time::timeout(self.deadline, async {
            client
                .simple_query(CHECK_COMMIT)
                .await
                .map(drop)
                .map_err(db_error)
        })
        .await;
        self.settle(client, outcome)
    }

    async fn versions(&self, room: &str, seq: u64) -> Result<Vec<Version>, StoreError> {
        let client = self.client().await?;
        let outcome = tokio::time::timeout(self.deadline, versions(&client, room, seq)).await;
        self.settle(client, outcome)
    }

    async fn purge(&self, retention: Retention) -> Result<u64, StoreError> {
        if !retention.is_active() {
            return Ok(0);
        }
        let mut total = 0;
        for (room, _) in self.rooms().await? {
            // One short transaction per chunk, so appends to the room wait
            // for at most one chunk's deletions.
            loop {
                let client = self.client().await?;
                let outcome =
                    tokio::time::timeout(self.deadline, purge_chunk(&client, &room, retention))
                        .await;
                let deleted = self.conclude(client, outcome).await?;
                total += deleted;
                if deleted < PURGE_CHUNK as u64 {
                    break;
                }
            }
        }
        Ok(total)
    }

    async fn rooms(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let client = self.client().await?;
        let outcome = tokio::time::timeout(self.deadline, async {
            let rows = query(&client, ROOM_LIST, &[]).await?;
            rows.iter()
                .map(|row| {
                    let name: String = row.try_get(0).map_err(db_error)?;
                    let seq = from_sql_seq(row.try_get(1).map_err(db_error)?)?;
                    Ok((name, seq))
                })
                .collect()
        })
        .await;
        self.settle(client, outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::sync::Arc;
    use std::time::Instant;

    use chat_core::store::{Action, Receipt};
    use chat_protocol::{Message, Reaction};

    use super::*;
    use crate::store::SqliteStore;
    use crate::store::test_support::{
        by, check_changes, check_tombstones_and_purge, draft, edit, page_seqs, pin, react, reply,
        seqs,
    };

    #[tokio::test]
    #[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
    async fn tombstones_and_retention_keep_seq_gapless() {
        let db = TestDb::new().await;
        check_tombstones_and_purge(&db.store().await).await;
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
    async fn changes_take_their_place_in_the_sequence() {
        let db = TestDb::new().await;
        check_changes(&db.store().await).await;
    }

    /// Where the tests find PostgreSQL; `CHAT_TEST_DATABASE_URL` overrides.
    const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
    const TIMEOUT: Duration = Duration::from_secs(2);

    fn test_url() -> String {
        std::env::var("CHAT_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_URL.into())
    }

    async fn admin(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// A schema of its own for one test, dropped when the test ends, pass
    /// or fail. The tests that use one are `#[ignore]`d (a bare `cargo
    /// nextest run` reports them as skipped, by name); `scripts/test`
    /// provides PostgreSQL and runs them, and there an unreachable one
    /// fails them.
    struct TestDb {
        /// The server's URL; stores use [`TestDb::url`].
        server: String,
        schema: String,
        /// The `application_name` of the test's stores, so cleanup can end
        /// their connections (and whatever locks those hold) first.
        app: String,
        admin: tokio_postgres::Client,
    }

    impl TestDb {
        async fn new() -> TestDb {
            let url = test_url();
            let reached = tokio::time::timeout(Duration::from_secs(5), admin(&url)).await;
            let admin = match reached {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => unreachable(&url, &e.to_string()),
                Err(_) => unreachable(&url, "timed out"),
            };
            let schema = format!("t_{}", ulid::Ulid::new().to_string().to_lowercase());
            let app = format!("chat-test-{schema}");
            TestDb {
                server: url,
                schema,
                app,
                admin,
            }
        }

        fn url(&self) -> String {
            let separator = if self.server.contains('?') { '&' } else { '?' };
            format!("{}{separator}application_name={}", self.server, self.app)
        }

        async fn store(&self) -> PostgresStore {
            PostgresStore::connect(&self.url(), Some(self.schema.clone()), TIMEOUT)
                .await
                .expect("connect to the test database")
        }
    }

    fn unreachable(url: &str, why: &str) -> ! {
        panic!(
            "PostgreSQL at {url} is unreachable ({why}); scripts/test sets up what these tests need"
        )
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            let url = self.server.clone();
            let sql = format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = '{}'; \
                 SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS {} CASCADE",
                self.app,
                quote_ident(&self.schema)
            );
            // The test's runtime may be the one we are dropped in, blocked
            // here, so its stores' connections cannot finish anything: end
            // them, then clean up on a thread with a runtime of its own.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime.block_on(async {
                    let client = admin(&url).await.map_err(|e| e.to_string())?;
                    client.batch_execute(&sql).await.map_err(|e| e.to_string())
                })
            })
            .join();
            if let Ok(Err(e)) = dropped {
                eprintln!("could not drop test schema {}: {e}", self.schema);
            }
        }
    }

    /// A send of `text` as `id` in `room`.
    fn send(room: &str, id: &str, text: &str) -> Draft {
        Draft {
            action: Action::Send {
                text: text.into(),
                reply_to: None,
            },
            ..draft(room, id)
        }
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
    async fn sequences_per_room_and_deduplicates_by_id() {
        let db = TestDb::new().await;
        let store = db.store().await;
        let out = store
            .append(
                vec![
                    draft("a", "1"),
                    draft("b", "1"),
                    draft("a", "2"),
                    draft("a", "1"),
                ],
                7,
            )
            .await
            .unwrap();
        assert_eq!(seqs(&out), [(true, 1), (true, 1), (true, 2), (false, 1)]);
        let changed = send("a", "2", "a different text");
        let out = store
            .append(vec![draft("a", "3"), changed], 8)
            .await
            .unwrap();
        assert_eq!(seqs(&out), [(true, 3), (false, 2)]);
        // A duplicate gets the original's receipt, its ts included, and
        // leaves the original as it was.
        let original = Receipt {
            id: "2".into(),
            seq: 2,
            ts: 7,
        };
        assert_eq!(out[1], Appended::Duplicate(original));

        let page = store.after("a", 1, 10).await.unwrap();
        assert_eq!(page.latest_seq, 3);
        assert_eq!(page_seqs(&page), [2, 3]);
        assert_eq!(page.messages[0].text, "text of 2");
        assert!(!page.more);
        let page = store.before("a", None, 2).await.unwrap();
        assert_eq!(page_seqs(&page), [2, 3]);
        assert!(page.more);
        let page = store.before("a", Some(2), 5).await.unwrap();
        assert_eq!(page_seqs(&page), [1]);
        assert!(!page.more);
        assert_eq!(store.after("nobody", 0, 5).await.unwrap(), Page::default());
        assert_eq!(store.append(Vec::new(), 9).await.unwrap(), []);
        store.check().await.unwrap();
    }

    /// `action` in `room` by `from` (see `test_support::by`).
    fn on(room: &str, from: &str, id: &str, action: Action) -> Draft {
        Draft {
            room: room.into(),
            ..by(from, id, action)
        }
    }

    /// Every read of `rooms` gives the same answer from both stores: pages
    /// after and before each `seq` up to `last` (and past it), versions,
    /// and the room list.
    async fn same_reads(stores: [&dyn Store; 2], rooms: &[&str], last: u64, when: &str) {
        for &room in rooms {
            for bound in (0..=last + 1).chain([u64::MAX]) {
                for limit in [0, 1, 3, 14, 100] {
                    let [a, b] = stores.map(|s| s.after(room, bound, limit));
                    let (a, b) = (a.await.unwrap(), b.await.unwrap());
                    assert_eq!(a, b, "{when}: after {room} {bound} {limit}");
                    let [a, b] = stores.map(|s| s.before(room, Some(bound), limit));
                    let (a, b) = (a.await.unwrap(), b.await.unwrap());
                    assert_eq!(a, b, "{when}: before {room} {bound} {limit}");
                }
                let [a, b] = stores.map(|s| s.versions(room, bound));
                let (a, b) = (a.await.unwrap(), b.await.unwrap());
                assert_eq!(a, b, "{when}: versions {room} {bound}");
            }
            for limit in [0, 1, 3, 14, 100] {
                let [a, b] = stores.map(|s| s.before(room, None, limit));
                let (a, b) = (a.await.unwrap(), b.await.unwrap());
                assert_eq!(a, b, "{when}: latest {room} {limit}");
            }
        }
        let [a, b] = stores.map(|s| s.rooms());
        assert_eq!(a.await.unwrap(), b.await.unwrap(), "{when}: rooms");
    }

    /// The same appends, reads and purges against SQLite (the reference)
    /// and PostgreSQL give identical results, down to every field and flag:
    /// sends alone (PostgreSQL's fast path), then changes and replies mixed
    /// with sends, each refused, duplicated or applied on the state the
    /// drafts before it left.
    #[tokio::test]
    #[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
    async fn answers_exactly_like_the_sqlite_store() {
        let db = TestDb::new().await;
        let pg = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let lite = SqliteStore::open(dir.path(), TIMEOUT).unwrap();
        let stores: [&dyn Store; 2] = [&lite, &pg];
        let delete = |target| Action::Delete { target };

        let batches: Vec<Vec<Draft>> = vec![
            (0..12).map(|i| draft("main", &format!("m{i}"))).collect(),
            vec![
                draft("main", "m3"),
                draft("聊天室", "x"),
                draft("main", "m12"),
                draft("聊天室", "x"),
                draft("other", "m3"),
            ],
            vec![draft("main", "m12"), draft("main", "m13")],
            vec![
                draft("main", "m14"),
                on("main", "u2", "re1", reply("re: m0", 1)),
                on("main", "u1", "e1", edit(1, "m0, edited")),
                on("main", "u2", "e-bob", edit(1, "not bob's")),
                on("main", "u2", "r1", react(1, "👍", false)),
                on("main", "u3", "r2", react(1, "👍", false)),
                on("main", "u2", "r1-again", react(1, "👍", false)),
                draft("main", "m15"),
                on("main", "u2", "re1", reply("a retry", 1)),
                on("main", "mod", "p1", pin(2, false)),
                on("main", "u1", "p-member", pin(3, false)),
                on("main", "mod", "p1-again", pin(2, false)),
                on("other", "u1", "r-other", react(1, "🎉", false)),
                draft("main", "m16"),
                draft("main", "m16"),
                on("main", "u1", "m15", edit(2, "an id taken by a send")),
                on(
                    "main",
                    "mod",
                    "e-change",
                    edit(17, "a change is no message"),
                ),
                on("nowhere", "mod", "d-nowhere", delete(1)),
            ],
            vec![
                on("main", "u1", "d1", delete(1)),
                on("main", "u2", "r-late", react(1, "🎉", false)),
                on("main", "mod", "p-late", pin(1, false)),
                on("main", "u2", "re-late", reply("re: deleted", 1)),
                on("main", "mod", "unpin", pin(2, true)),
                on("main", "mod", "unpin-again", pin(2, true)),
                on("main", "u3", "r3", react(3, "😂", false)),
                on("main", "u3", "r3-off", react(3, "😂", true)),
                on("main", "u3", "r3-off-again", react(3, "😂", true)),
                on("main", "mod", "p3", pin(16, false)),
                on("main", "mod", "e2", edit(16, "re: m0, moderated")),
                on("main", "u2", "r4", react(16, "👍", false)),
                draft("main", "m17"),
            ],
            vec![
                draft("main", "m18"),
                draft("main", "e1"),
                draft("other", "m19"),
            ],
        ];
        for (ts, batch) in batches.into_iter().enumerate() {
            let [a, b] = stores.map(|s| s.append(batch.clone(), ts as i64));
            assert_eq!(a.await.unwrap(), b.await.unwrap(), "batch {ts}");
        }
        let page = pg.after("main", 0, 100).await.unwrap();
        let mut entries: Vec<u64> = page_seqs(&page);
        entries.extend(page.changes.iter().map(|c| c.seq()));
        entries.sort_unstable();
        assert_eq!(entries, (1..=31).collect::<Vec<_>>(), "gapless");
        assert_eq!(page.latest_seq, 31);
        let rooms = ["main", "聊天室", "other", "empty", "nowhere"];
        same_reads(stores, &rooms, 31, "stored").await;

        let retention = [
            Retention {
                keep_last: Some(20),
                older_than_ts: None,
            },
            Retention {
                keep_last: None,
                older_than_ts: Some(4),
            },
        ];
        for (i, retention) in retention.into_iter().enumerate() {
            let [a, b] = stores.map(|s| s.purge(retention));
            assert_eq!(a.await.unwrap(), b.await.unwrap(), "purge {i}");
            same_reads(stores, &rooms, 31, &format!("purge {i}")).await;
        }
    }

    /// A database of schema version 2 (messages with tombstones) takes
    /// changes once migrated, its messages as they were.
    #[tokio::test]
    #[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
    async fn a_version_2_schema_is_migrated_in_place() {
        let db = TestDb::new().await;
        let schema = quote_ident(&db.schema);
        db.admin
            .batch_execute(&format!(
                "CREATE SCHEMA {schema}; SET search_path TO {schema};
                 CREATE TABLE chat_migrations (version INTEGER PRIMARY KEY,
                     description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());"
            ))
            .await
            .unwrap();
        for migration in &MIGRATIONS[..2] {
            db.admin.batch_execute(migration.sql).await.unwrap();
            db.admin
                .execute(
                    "INSERT INTO chat_migrations (version, description) VALUES ($1, $2)",
                    &[&migration.version, &migration.description],
                )
                .await
                .unwrap();
        }
        db.admin
            .batch_execute(
                "INSERT INTO rooms VALUES ('a', 2);
                 INSERT INTO messages (room, seq, id, user_id, user_name, text, ts, deleted)
                 VALUES ('a', 1, 'old', 'u1', 'alice', 'hi', 5, false),
                        ('a', 2, 'gone', 'u1', 'alice', '', 6, true);
                 RESET search_path;",
            )
            .await
            .unwrap();

        let store = db.store().await;
        let page = store.after("a", 0, 10).await.unwrap();
        assert_eq!(page_seqs(&page), [1, 2]);
        assert!(!page.messages[0].deleted && page.messages[0].text == "hi");
        assert!(page.messages[1].deleted);
        let drafts = vec![
            by("u2", "r", react(1, "👍", false)),
            by("u1", "e", edit(1, "hi!")),
            by("u1", "d", Action::Delete { target: 2 }),
            draft("a", "new"),
        ];
        let out = store.append(drafts, 7).await.unwrap();
        assert_eq!(seqs(&out), [(true, 3), (true, 4), (false, 0), (true, 5)]);
        let texts: Vec<String> = store
            .versions("a", 1)
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.text)
            .collect();
        assert_eq!(texts, ["hi", "hi!"]);
        let first = &store.before("a", None, 10).await.unwrap().messages[0];
        assert_eq!((first.text.as_str(), first.edited_at), ("hi!", Some(7)));
        assert_eq!(first.reactions.len(), 1);
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
    async fn survives_reconnect_and_migrates_once() {
        let db = TestDb::new().await;
        {
            let store = db.store().await;
            store.append(vec![draft("a", "x")], 1).await.unwrap();
        }
        let store = db.store().await;
        let out = store
            .append(vec![draft("a", "x"), draft("a", "y")], 2)
            .await
            .unwrap();
        assert_eq!(seqs(&out), [(false, 1), (true, 2)]);
        let versions: Vec<i32> = db
            .admin
            .query(
                &format!(
                    "SELECT version FROM {}.chat_migrations ORDER BY version",
                    quote_ident(&db.schema)
                ),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let known: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(versions, known);
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
    async fn refuses_a_schema_from_a_newer_server() {
        let db = TestDb::new().await;
        drop(db.store().await);
        db.admin
            .execute(
                &format!(
                    "INSERT INTO {}.chat_migrations (version, description) VALUES (999, 'future')",
                    quote_ident(&db.schema)
                ),
                &[],
            )
            .await
            .unwrap();
        let e = PostgresStore::connect(&db.url(), Some(db.schema.clone()), TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            matches!(e, ConnectError::NewerSchema { found: 999, .. }),
            "{e}"
        );
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["chat", "t_01jabc", "_x", &"a".repeat(63)] {
            assert!(check_schema_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Chat",
            "1x",
            "a-b",
            "a\"b",
            "pg_chat",
            "x y",
            &"a".repeat(64),
        ] {
            assert!(check_schema_name(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_fails_start_up_quickly_without_the_password() {
        let started = Instant::now();
        let e = PostgresStore::connect(
            "postgres://chat:secret@127.0.0.1:1/chat",
            None,
            Duration::from_millis(500),
        )
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        let text = e.to_string();
        assert!(matches!(e, ConnectError::Unreachable { .. }), "{text}");
        assert!(text.contains("127.0.0.1:1/chat"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    /// Several nodes (separate pools) append to the same rooms at once,
    /// with ids that collide across nodes: every room stays gapless and
    /// every `(room, id)` is stored once, and every node was told the same
    /// message for it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
    async fn nodes_appending_concurrently_keep_seq_gapless_and_ids_unique() {
        const NODES: usize = 4;
        const BATCHES: usize = 25;
        const ROOMS: [&str; 3] = ["r0", "r1", "r2"];
        let db = TestDb::new().await;
        // Starting together also exercises the migration lock.
        let mut connecting = Vec::new();
        for _ in 0..NODES {
            let (url, schema) = (db.url(), db.schema.clone());
            connecting.push(tokio::spawn(async move {
                PostgresStore::connect(&url, Some(schema), Duration::from_secs(10)).await
            }));
        }
        let mut nodes = Vec::new();
        for c in connecting {
            nodes.push(Arc::new(c.await.unwrap().expect("node connects")));
        }

        let mut running = Vec::new();
        for (n, store) in nodes.iter().enumerate() {
            let store = store.clone();
            running.push(tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for b in 0..BATCHES {
                    let mut batch = Vec::new();
                    for (r, room) in ROOMS.iter().enumerate() {
                        // The same ids from every node: only one may win.
                        let shared = format!("shared-{b}-{r}");
                        batch.push(send(room, &shared, &format!("node {n} says {b}")));
                        batch.push(draft(room, &format!("node{n}-{b}")));
                    }
                    // A room twice in one batch, and an id repeated in it.
                    batch.push(draft(ROOMS[b % 3], &format!("node{n}-{b}-extra")));
                    batch.push(draft(ROOMS[b % 3], &format!("node{n}-{b}-extra")));
                    let out = store.append(batch.clone(), b as i64).await;
                    outcomes.extend(batch.into_iter().zip(out.expect("append")));
                }
                outcomes
            }));
        }
        let mut outcomes = Vec::new();
        for r in running {
            outcomes.extend(r.await.unwrap());
        }

        let mut stored: BTreeMap<(String, String), Message> = BTreeMap::new();
        for room in ROOMS {
            let page = nodes[0].after(room, 0, 100_000).await.unwrap();
            let n = page.messages.len() as u64;
            assert_eq!(page_seqs(&page), (1..=n).collect::<Vec<_>>(), "{room}");
            assert_eq!(page.latest_seq, n, "{room}");
            let ids: HashSet<&str> = page.messages.iter().map(|m| m.id.as_str()).collect();
            assert_eq!(ids.len() as u64, n, "{room}: an id stored twice");
            for m in page.messages {
                stored.insert((room.to_owned(), m.id.clone()), m);
            }
        }
        // Per room: BATCHES shared ids, NODES × BATCHES own ids, and the
        // extras of the batches that chose this room.
        let extras = NODES * BATCHES;
        assert_eq!(stored.len(), ROOMS.len() * BATCHES * (1 + NODES) + extras);

        let mut new_count: HashMap<(String, String), usize> = HashMap::new();
        for (draft, outcome) in &outcomes {
            let key = (draft.room.clone(), draft.id.clone());
            let m = &stored[&key];
            let receipt = Receipt {
                id: m.id.clone(),
                seq: m.seq,
                ts: m.ts,
            };
            assert_eq!(outcome.receipt(), Some(receipt), "{key:?}: told another");
            if let Appended::New(new) = outcome {
                assert_eq!(new, m, "{key:?}: told a different message");
                *new_count.entry(key).or_default() += 1;
            }
        }
        assert_eq!(
            new_count.len(),
            stored.len(),
            "every stored id was new once"
        );
        assert!(new_count.values().all(|&c| c == 1));
    }

    /// Several nodes react to one message as one user at once, each emoji
    /// from every node, in batches that also hold sends (the draft-by-draft
    /// path): each reaction is stored once, every node is told the receipt
    /// of the one stored, and the room stays gapless.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
    async fn nodes_changing_concurrently_store_each_change_once() {
        const NODES: usize = 3;
        const BATCHES: usize = 15;
        let db = TestDb::new().await;
        let mut nodes = Vec::new();
        for _ in 0..NODES {
            nodes.push(Arc::new(db.store().await));
        }
        nodes[0].append(vec![draft("a", "m")], 0).await.unwrap();

        let mut running = Vec::new();
        for (n, store) in nodes.iter().enumerate() {
            let store = store.clone();
            running.push(tokio::spawn(async move {
                let mut reactions = Vec::new();
                for b in 0..BATCHES {
                    let batch = vec![
                        draft("a", &format!("node{n}-{b}")),
                        by(
                            "u2",
                            &format!("react{n}-{b}"),
                            react(1, &format!("e{b}"), false),
                        ),
                        draft("a", &format!("node{n}-{b}-after")),
                    ];
                    let mut out = store.append(batch, 1).await.expect("append");
                    reactions.push(out.remove(1));
                }
                reactions
            }));
        }
        let mut by_emoji: Vec<Vec<Appended>> = vec![Vec::new(); BATCHES];
        for r in running {
            for (b, outcome) in r.await.unwrap().into_iter().enumerate() {
                by_emoji[b].push(outcome);
            }
        }
        for (b, outcomes) in by_emoji.iter().enumerate() {
            let stored: Vec<&Appended> = outcomes
                .iter()
                .filter(|o| matches!(o, Appended::Changed(_)))
                .collect();
            assert_eq!(stored.len(), 1, "e{b}: {outcomes:?}");
            let receipt = stored[0].receipt();
            assert!(outcomes.iter().all(|o| o.receipt() == receipt), "e{b}");
        }

        let page = nodes[1].after("a", 0, 1000).await.unwrap();
        let mut entries = page_seqs(&page);
        entries.extend(page.changes.iter().map(|c| c.seq()));
        entries.sort_unstable();
        let latest = 1 + (NODES * BATCHES * 2 + BATCHES) as u64;
        assert_eq!(entries, (1..=latest).collect::<Vec<_>>());
        assert_eq!(page.latest_seq, latest);
        let reactions: Vec<Reaction> = (0..BATCHES)
            .map(|b| Reaction {
                emoji: format!("e{b}"),
                count: 1,
                users: vec![page.messages[0].reactions[0].users[0].clone()],
            })
            .collect();
        let mut shown = page.messages[0].reactions.clone();
        shown.sort_by_key(|r| r.emoji[1..].parse::<usize>().unwrap_or(usize::MAX));
        assert_eq!(shown, reactions);
    }

    /// Another node stuck mid-transaction on a room: appends to that room
    /// fail as busy after the lock timeout instead of hanging, the
    /// connection is rolled back and reused, and once the lock is gone the
    /// room continues without a gap.
    #[tokio::test]
    #[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
    async fn a_room_locked_elsewhere_makes_appends_busy_not_stuck() {
        let db = TestDb::new().await;
        let store = db.store().await;
        store.append(vec![draft("a", "1")], 1).await.unwrap();
        db.admin
            .batch_execute(&format!(
                "BEGIN; SELECT 1 FROM {}.rooms WHERE name = 'a' FOR UPDATE",
                quote_ident(&db.schema)
            ))
            .await
            .unwrap();
        let started = Instant::now();
        let e = store.append(vec![draft("a", "2")], 2).await.unwrap_err();
        assert!(matches!(e, StoreError::Busy(_)), "{e}");
        assert!(started.elapsed() < TIMEOUT * 3, "{:?}", started.elapsed());
        // Other rooms are not held up meanwhile.
        let out = store.append(vec![draft("b", "1")], 3).await.unwrap();
        assert_eq!(seqs(&out), [(true, 1)]);

        db.admin.batch_execute("ROLLBACK").await.unwrap();
        let out = store
            .append(vec![draft("a", "2"), draft("a", "1")], 4)
            .await
            .unwrap();
        assert_eq!(seqs(&out), [(true, 2), (false, 1)]);
        assert_eq!(store.pool.status().size, 1, "the connection was reused");
    }

    /// Killing the store's connections on the server side: operations in
    /// the way fail (an error, never a false success), and the pool opens
    /// new connections so the store recovers without help.
    #[tokio::test]
    #[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
    async fn recovers_after_its_connections_are_killed() {
        let db = TestDb::new().await;
        let store = db.store().await;
        store.append(vec![draft("a", "before")], 1).await.unwrap();
        store.after("a", 0, 10).await.unwrap();

        let killed = db
            .admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[&db.app],
            )
            .await
            .unwrap();
        assert!(!killed.is_empty(), "the store had no connection to kill");

        let deadline = Instant::now() + Duration::from_secs(20);
        let mut acked = vec!["before".to_owned()];
        let mut attempt = 0;
        loop {
            let id = format!("after-{attempt}");
            attempt += 1;
            match store.append(vec![draft("a", &id)], 2).await {
                Ok(out) => {
                    assert!(matches!(out[0], Appended::New(_)), "{out:?}");
                    acked.push(id);
                    break;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "store did not recover: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        store.check().await.unwrap();
        // Everything acknowledged is there, numbered without a gap; failed
        // attempts stored nothing.
        let page = store.after("a", 0, 100).await.unwrap();
        let ids: Vec<&str> = page.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, acked);
        assert_eq!(page_seqs(&page), [1, 2]);
    }
}
