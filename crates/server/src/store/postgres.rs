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
//! **Tables.** The same as SQLite's schema 5 (see `entries`): one
//! `messages` table holds every entry of a room's sequence, messages in
//! their current state (`kind` 0, `original` keeping the first text once
//! edited or deleted, `mentions` whom they mention) and changes (`target`,
//! `emoji`, `text`); `reactions` and `pins` hold those in effect, so a
//! message's state is read without replaying its changes. `members`,
//! `mentions` and `secrets` hold what people did beside the sequences
//! (see **People**); `bans` the operators' bans (see `bans`). Search adds a column and two indexes (see
//! **Search**) where SQLite has an FTS5 table.
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
//!   WAL flush. Sends with an `@` add a statement to each write: the
//!   members their mention words may name, then their mentions (see
//!   **People**).
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
//! chunk of a room's entries, with the reactions, pins and mentions of its
//! messages, in a short transaction that takes the room's counter lock
//! like an append, so no append can react to or pin a message the purge is
//! taking.
//!
//! **People.** As in SQLite (migration 5 has its tables; see `people`):
//! `members` holds each person's rooms with their read marker and the name
//! `@name` mentions are resolved against, `mentions` who each message
//! mentions, and unread and mention counts are read from ranges of keys,
//! never kept. A send with an `@` is resolved inside its append's
//! transaction, against the members its room has then: those whose
//! `name_key` starts with one of its mention words (a range of
//! `members_room_name`, compared bytewise like SQLite's whatever the
//! database's collation), then `mentioned` on whole names; the ids go to
//! `mentions` and, as JSON, to the message's `mentions` column, which every
//! read of the message returns (empty once deleted) and a purge uses to
//! find its rows of `mentions`. Memberships take no room lock: a person
//! joining while a message is sent is mentioned by it or not, as the
//! commits fall. `record` stores a batch of changes in one transaction
//! sent in one write, taken in the order of their `(user, room)` (changes
//! to different pairs commute), so two nodes' batches lock the member rows
//! they share in the same order and cannot deadlock. `join_page` reads the
//! person's place with the page, in its snapshot; a person's rooms, with
//! each room's last message and counts, are one statement in one snapshot.
//! `shared_secret` inserts unless present, then reads, as two statements:
//! a node whose insert meets another's waits for that one's commit, so
//! every node reads the value the first one stored.
//!
//! **Search.** Every entry takes a number when stored, `search_id`, from
//! an identity column: the order results come in, newest first, and the
//! cursor (`Found::next` is the last result's number). Migration 4 numbers
//! the rows stored before it by `ts`, room and `seq`, as SQLite's backfill
//! does; it rewrites every row and runs, like every migration, while the
//! nodes wait. A message's row holds its current text, so an edit or a
//! deletion shows in the very next search and a purge takes the message
//! out, with no index of our own to keep up. Within a room the numbers
//! follow `seq` (the room's lock orders the inserts); across rooms two
//! nodes may commit in the other order than they took their numbers, so a
//! message can land behind one a client has already paged past.
//!
//! A partial GIN index of `pg_trgm`'s `gin_trgm_ops` on the text of the
//! messages not deleted serves `text ILIKE '%word%'` (`%`, `_` and `\`
//! escaped) for each word of three characters or more; shorter words give
//! it no trigram, so they only filter what the other words left, or, alone,
//! a scan of the messages newest first (`messages_search_order`) that stops
//! at a page: quick for a common word, the whole table for a rare one
//! (about 100 ms for 200,000 messages, against about 1 ms with a long
//! word). Each search is planned for its own words, since a plan made once
//! for any words never uses the trigram index. One statement finds a page
//! with each message's quote and reactions: one snapshot, one round trip.
//! Sends pay for the index: on 200,000 messages, appends took 2 to 3 % longer
//! in all, and the slowest of 800 batches 35 ms instead of 10, when GIN's
//! list of pending entries was merged into the index.
//!
//! `pg_trgm` is installed once per database, so not in the store's schema
//! (dropping a test's or a tenant's schema would drop it for all) but in
//! `chat_extensions`, unless the database has it elsewhere already; the
//! index names the operator class with its schema, so no `search_path`
//! needs it. Installing it takes `CREATE` on the database (it is a trusted
//! extension from PostgreSQL 13). Where that fails (no privilege, no
//! `USAGE` on the schema it is in, a server without it) the start goes on
//! without the index, with a warning in the log, and search scans the
//! messages; every start tries again while the index is missing.
//!
//! Case: `ILIKE` folds case as the database's `LC_CTYPE` does, where
//! SQLite folds only ASCII. The same words find the same messages in ASCII
//! text, but with a UTF-8 locale `é` finds `É` here and not in SQLite. On a
//! database whose `LC_CTYPE` is `C`, `pg_trgm` may take no trigrams from
//! non-ASCII letters: words in other scripts are still found, by a scan.
//! Room prefixes match exact characters, as `RoomPattern` does.
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

use chat_core::bans::Ban;
use chat_core::store::{
    Appended, Cause, Draft, Found, PURGE_CHUNK, Page, PersonChange, ReadState, Retention, Search,
    Store, StoreError, Version,
};
use chat_protocol::{DirectoryEntry, RoomSummary, User};

mod append;
mod bans;
mod people;
mod read;

use append::append_batch;
use read::{page_after, page_before, search, versions};

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
    Migration {
        version: 4,
        description: "search: messages.search_id and its index",
        // The order search lists messages in, newest first, and its
        // cursor: a number each row takes when stored, like the rowid of
        // SQLite's search index. Rows stored before are numbered in the
        // order of their `ts`, room (bytewise, as SQLite compares) and
        // `seq`, as SQLite's migration numbers them. Every entry takes a
        // number (an identity column cannot hold NULL); search reads only
        // messages'. The trigram index on the text is not made here but by
        // `ensure_trigram_index`, since it needs an extension that may not
        // be available.
        sql: "
        ALTER TABLE messages ADD COLUMN search_id BIGINT;
        UPDATE messages SET search_id = numbered.n
        FROM (
            SELECT room, seq, row_number() OVER (ORDER BY ts, room COLLATE \"C\", seq) AS n
            FROM messages
        ) numbered
        WHERE messages.room = numbered.room AND messages.seq = numbered.seq;
        ALTER TABLE messages ALTER COLUMN search_id SET NOT NULL;
        ALTER TABLE messages ALTER COLUMN search_id ADD GENERATED BY DEFAULT AS IDENTITY;
        SELECT setval(pg_get_serial_sequence('messages', 'search_id'),
                      COALESCE(MAX(search_id), 0) + 1, false)
        FROM messages;
        -- Newest first, for searches whose words the trigram index cannot
        -- narrow (short ones, or common ones: the scan stops at a page).
        CREATE INDEX messages_search_order ON messages (search_id)
            WHERE kind = 0 AND NOT deleted;
    ",
    },
    Migration {
        version: 5,
        description: "people: members, mentions, secrets; messages.mentions",
        // The tables of SQLite's schema 4 (see `people`). The new column
        // has no default, so adding it rewrites no row: the messages stored
        // before mention nobody.
        sql: "
        -- Who a message mentions, as a JSON array of user ids (NULL for
        -- nobody), read back with the message; `mentions` lists the same
        -- for counting.
        ALTER TABLE messages ADD COLUMN mentions TEXT;
        -- A person's rooms (joined and not left), their read marker in
        -- each, and the name `@name` mentions in the room are resolved
        -- against (`name_key` is it in lower case). `name_key` compares
        -- bytewise, as SQLite's does, whatever the database's collation:
        -- a mention word's prefix range is then the same, and its index
        -- serves it.
        CREATE TABLE members (
            user_id   TEXT   NOT NULL,
            room      TEXT   NOT NULL,
            user_name TEXT   NOT NULL,
            name_key  TEXT   COLLATE \"C\" NOT NULL,
            last_read BIGINT NOT NULL CHECK (last_read >= 0),
            joined_ts BIGINT NOT NULL,
            PRIMARY KEY (user_id, room)
        );
        CREATE INDEX members_room_name ON members (room, name_key);
        -- Who each message mentions, keyed for counting a person's
        -- mentions in a room after their marker.
        CREATE TABLE mentions (
            user_id TEXT   NOT NULL,
            room    TEXT   NOT NULL,
            seq     BIGINT NOT NULL,
            PRIMARY KEY (user_id, room, seq)
        );
        -- Values the servers keep for themselves (the guest credentials'
        -- secret), the same for every node.
        CREATE TABLE secrets (
            name  TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
    ",
    },
    Migration {
        version: 6,
        description: "bans",
        // The table of SQLite's schema 5 (see `bans`).
        sql: "
        -- Operators' bans: of `user_id` from `room`, or from the whole
        -- server when `room` is '' (no room has that name); `ts` when
        -- first made.
        CREATE TABLE bans (
            user_id TEXT   NOT NULL,
            room    TEXT   NOT NULL,
            reason  TEXT,
            ts      BIGINT NOT NULL,
            PRIMARY KEY (user_id, room)
        );
    ",
    },
];

/// The trigram index of the messages' text, which serves `ILIKE '%word%'`
/// for words of three characters or more (see [`ensure_trigram_index`]).
const TRIGRAM_INDEX: &str = "messages_search_text";

/// Where `pg_trgm` goes when this server installs it: a schema of its own,
/// shared by every schema of the database (an extension is installed once
/// per database), so dropping a tenant's or a test's schema never drops it.
const EXTENSION_SCHEMA: &str = "chat_extensions";

/// Serializes installing `pg_trgm` among nodes migrating different schemas
/// at once: `CREATE EXTENSION IF NOT EXISTS` racing another fails.
const EXTENSION_LOCK: &str = "chat-server pg_trgm";

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
/// reactions, pins and mentions of those that were messages; returns how
/// many went. Under the room's lock, reactions and pins are only ever
/// added to messages still stored, so those are all that lose their
/// message. A message's mentions are the rows its `mentions` column lists
/// (both are written by the append that stores it), so they are deleted by
/// their key rather than by a scan of every mention of the room.
const PURGE_CHUNK_SQL: &str = "
    WITH gone AS (
        DELETE FROM messages WHERE room = $1 AND seq IN (
            SELECT seq FROM messages
            WHERE room = $1
              AND (seq <= (SELECT seq FROM rooms WHERE name = $1) - $2 OR ts < $3)
            ORDER BY seq LIMIT $4)
        RETURNING seq, mentions
    ), reactions_gone AS (
        DELETE FROM reactions WHERE room = $1 AND target IN (SELECT seq FROM gone)
    ), pins_gone AS (
        DELETE FROM pins WHERE room = $1 AND target IN (SELECT seq FROM gone)
    ), mentions_gone AS (
        DELETE FROM mentions WHERE room = $1 AND (user_id, seq) IN (
            SELECT json_array_elements_text(mentions::json), seq FROM gone
            WHERE mentions IS NOT NULL)
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
    let mut tx = client.transaction().await.map_err(failed)?;
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
    ensure_trigram_index(&mut tx, target)
        .await
        .map_err(failed)?;
    tx.commit().await.map_err(failed)
}

/// Creates the trigram index of the messages' text if it is missing,
/// installing `pg_trgm` first if the database has it nowhere. Without
/// them search still answers, scanning the messages, so a database user
/// that may not do this (no `CREATE` on the database, or no `USAGE` on the
/// schema an administrator put `pg_trgm` in, or a server without the
/// extension) gets a warning, not a failed start. Tried at every start
/// while the index is missing, so installing `pg_trgm` later (or granting
/// what is needed) and restarting a node builds it.
async fn ensure_trigram_index(
    tx: &mut tokio_postgres::Transaction<'_>,
    target: &str,
) -> Result<(), tokio_postgres::Error> {
    let exists: bool = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&TRIGRAM_INDEX])
        .await?
        .try_get(0)?;
    if exists {
        return Ok(());
    }
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&EXTENSION_LOCK],
    )
    .await?;
    // A failed statement aborts the whole transaction, migrations and all;
    // the savepoint lets this one step fail alone.
    let attempt = tx.savepoint("trigram_index").await?;
    match create_trigram_index(&attempt).await {
        Ok(schema) => {
            attempt.commit().await?;
            tracing::info!(
                %target,
                extension_schema = %schema,
                "created the trigram index for search"
            );
        }
        // An error PostgreSQL answered (a permission, a missing
        // extension); anything else, such as a lost connection, fails the
        // migration.
        Err(e) if e.code().is_some() => {
            attempt.rollback().await?;
            tracing::warn!(
                %target,
                error = %e,
                "cannot use pg_trgm, so search will scan messages instead of using a trigram \
                 index; install it where this user may use it (USAGE on its schema), or let \
                 this user install it (CREATE on the database), then restart"
            );
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Installs `pg_trgm` in [`EXTENSION_SCHEMA`] unless the database has it
/// already, wherever that is, then builds [`TRIGRAM_INDEX`] with its
/// operator class named by schema, so no `search_path` needs to hold it.
/// Returns the extension's schema.
async fn create_trigram_index(
    tx: &tokio_postgres::Transaction<'_>,
) -> Result<String, tokio_postgres::Error> {
    const FIND: &str = "SELECT extnamespace::regnamespace::text FROM pg_extension \
                        WHERE extname = 'pg_trgm'";
    let schema: String = match tx.query_opt(FIND, &[]).await? {
        Some(row) => row.try_get(0)?,
        None => {
            tx.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {EXTENSION_SCHEMA};
                 CREATE EXTENSION pg_trgm SCHEMA {EXTENSION_SCHEMA};"
            ))
            .await?;
            EXTENSION_SCHEMA.to_owned()
        }
    };
    // `regnamespace` quotes the name where it needs quotes.
    tx.batch_execute(&format!(
        "CREATE INDEX {TRIGRAM_INDEX} ON messages USING gin (text {schema}.gin_trgm_ops)
             WHERE kind = 0 AND NOT deleted"
    ))
    .await?;
    Ok(schema)
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

    async fn search(&self, query: &Search) -> Result<Found, StoreError> {
        let client = self.client().await?;
        let outcome = tokio::time::timeout(self.deadline, search(&client, query)).await;
        self.conclude(client, outcome).await
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

    async fn join_page(
        &self,
        room: &str,
        user: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Result<(Page, ReadState), StoreError> {
        let client = self.client().await?;
        let outcome = tokio::time::timeout(
            self.deadline,
            read::join_page(&client, room, user, since, limit),
        )
        .await;
        self.conclude(client, outcome).await
    }

    async fn record(&self, changes: Vec<PersonChange>) -> Result<Vec<ReadState>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let outcome = tokio::time::timeout(self.deadline, people::record(&client, &changes)).await;
        self.conclude(client, outcome).await
    }

    async fn user_rooms(&self, user: &str) -> Result<Vec<RoomSummary>, StoreError> {
        let client = self.client().await?;
        let outcome = tokio::time::timeout(self.deadline, people::user_rooms(&client, user)).await;
        self.conclude(client, outcome).await
    }

    async fn directory(&self, limit: usize) -> Result<Vec<DirectoryEntry>, StoreError> {
        let client = self.client().await?;
        let outcome = tokio::time::timeout(self.deadline, people::directory(&client, limit)).await;
        self.settle(client, outcome)
    }

    async fn person(&self, user: &str) -> Result<Option<User>, StoreError> {
        let client = self.client().await?;
        let outcome = tokio::time::timeout(self.deadline, people::person(&client, user)).await;
        self.settle(client, outcome)
    }

    async fn shared_secret(&self, name: &str, fresh: String) -> Result<String, StoreError> {
        let client = self.client().await?;
        let outcome =
            tokio::time::timeout(self.deadline, people::shared_secret(&client, name, &fresh)).await;
        self.settle(client, outcome)
    }

    async fn put_ban(&self, ban: &Ban) -> Result<Ban, StoreError> {
        let client = self.client().await?;
        let outcome = tokio::time::timeout(self.deadline, bans::put(&client, ban)).await;
        self.settle(client, outcome)
    }

    async fn delete_ban(&self, user: &str, room: Option<&str>) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let outcome = tokio::time::timeout(self.deadline, bans::delete(&client, user, room)).await;
        self.settle(client, outcome)
    }

    async fn bans(&self) -> Result<Vec<Ban>, StoreError> {
        let client = self.client().await?;
        let outcome = tokio::time::timeout(self.deadline, bans::list(&client)).await;
        self.settle(client, outcome)
    }
}

#[cfg(test)]
mod tests;
