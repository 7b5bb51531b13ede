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
//! **Sequencing across nodes.** The room's counter row is the lock that
//! serializes appends to a room, wherever they come from. A batch runs in
//! one transaction:
//! 1. `INSERT … ON CONFLICT DO UPDATE … RETURNING` creates or row-locks the
//!    counter of every room in the batch, in sorted order so two nodes'
//!    batches cannot deadlock, and reads its current `seq`;
//! 2. with those locks held, looks up which `(room, id)` pairs already exist:
//!    any transaction that stored one held the same lock and has committed,
//!    so a duplicate sent to two nodes at once is found here and returned as
//!    the original message rather than failing or taking a second `seq`;
//! 3. numbers the new messages from the counter (duplicates take none, so no
//!    gap appears), inserts them, and moves each counter to its last `seq`;
//! 4. commits. A failed transaction rolls back counters and messages alike.
//!
//! Steps 1 and 2 go out with `BEGIN` in one write, and step 3 with `COMMIT`
//! in another (PostgreSQL runs a connection's statements in order), so a
//! batch costs two round trips plus the WAL flush.
//!
//! The UNIQUE `(room, id)` and `(room, seq)` keys are the backstop: if the
//! reasoning above were ever wrong, the batch would fail (the senders get
//! `internal` and retry) instead of storing a duplicate.
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

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chat_protocol::{Message, User};
use deadpool_postgres::{
    BuildError, HookError, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod,
    Runtime,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

use chat_core::store::{
    Appended, Cause, Draft, PURGE_CHUNK, Page, Receipt, Retention, Store, StoreError, Version,
};

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
];

/// Creates (or, when it exists, row-locks) each room's counter and returns
/// its current value. Sorted so concurrent batches lock rooms in one order.
const LOCK_ROOMS: &str = "
    INSERT INTO rooms (name, seq)
    SELECT name, 0 FROM unnest($1::text[]) AS r(name) ORDER BY name
    ON CONFLICT (name) DO UPDATE SET seq = rooms.seq
    RETURNING name, seq";

/// A write that changes nothing: the latest migration's row rewritten as
/// it is. It commits like an append (a new row version, the WAL flushed),
/// and fails where an append would: on a read-only database or a standby,
/// or when the WAL cannot be written.
const CHECK_COMMIT: &str = "
    UPDATE chat_migrations SET version = version
    WHERE version = (SELECT MAX(version) FROM chat_migrations)";

/// The stored messages among the batch's `(room, id)` pairs.
const FIND_EXISTING: &str = "
    SELECT m.room, m.seq, m.id, m.user_id, m.user_name, m.text, m.ts, m.deleted
    FROM messages m
    JOIN unnest($1::text[], $2::text[]) AS d(room, id) ON m.room = d.room AND m.id = d.id";

const INSERT_MESSAGES: &str = "
    INSERT INTO messages (room, seq, id, user_id, user_name, text, ts)
    SELECT room, seq, id, user_id, user_name, text, $7
    FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[])
        AS d(room, seq, id, user_id, user_name, text)";

const ADVANCE_ROOMS: &str = "
    UPDATE rooms SET seq = d.seq
    FROM unnest($1::text[], $2::bigint[]) AS d(name, seq)
    WHERE rooms.name = d.name";

/// A page and the room's latest `seq` in one statement, hence one snapshot:
/// the page never holds a message newer than the `latest_seq` beside it.
/// Always returns at least one row; its message columns are NULL when the
/// page is empty.
const PAGE_AFTER: &str = "
    SELECT l.latest, m.seq, m.id, m.user_id, m.user_name, m.text, m.ts, m.deleted
    FROM (SELECT COALESCE((SELECT seq FROM rooms WHERE name = $1), 0) AS latest) l
    LEFT JOIN LATERAL (
        SELECT seq, id, user_id, user_name, text, ts, deleted FROM messages
        WHERE room = $1 AND seq > $2 ORDER BY seq LIMIT $3
    ) m ON true
    ORDER BY m.seq";

const PAGE_BEFORE: &str = "
    SELECT l.latest, m.seq, m.id, m.user_id, m.user_name, m.text, m.ts, m.deleted
    FROM (SELECT COALESCE((SELECT seq FROM rooms WHERE name = $1), 0) AS latest) l
    LEFT JOIN LATERAL (
        SELECT seq, id, user_id, user_name, text, ts, deleted FROM messages
        WHERE room = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3
    ) m ON true
    ORDER BY m.seq";

/// Empties a message's text and marks it deleted; returns it.
const TOMBSTONE: &str = "
    UPDATE messages SET text = '', deleted = true WHERE room = $1 AND seq = $2
    RETURNING seq, id, user_id, user_name, text, ts, deleted";

const ROOM_LIST: &str = "SELECT name, seq FROM rooms ORDER BY name COLLATE \"C\"";

/// Deletes up to `$4` of room `$1`'s messages with `seq` at most the room's
/// latest minus `$2` (when `$2` is not NULL) or `ts` below `$3`.
const PURGE_CHUNK_SQL: &str = "
    DELETE FROM messages WHERE room = $1 AND seq IN (
        SELECT seq FROM messages
        WHERE room = $1
          AND (seq <= (SELECT seq FROM rooms WHERE name = $1) - $2 OR ts < $3)
        ORDER BY seq LIMIT $4)";

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

    /// Returns an operation's result, or an error if it ran past the
    /// deadline.
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

    /// Ends the transaction a failed append may have left open, so the
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

/// A message from the row's columns `first..first + 7`: seq, id, user_id,
/// user_name, text, ts, deleted.
fn message_from_row(room: &str, row: &Row, first: usize) -> Result<Message, StoreError> {
    let get_err = |e: tokio_postgres::Error| StoreError::Backend(e.into());
    Ok(Message {
        room: room.to_owned(),
        seq: from_sql_seq(row.try_get(first).map_err(get_err)?)?,
        id: row.try_get(first + 1).map_err(get_err)?,
        from: User {
            id: row.try_get(first + 2).map_err(get_err)?,
            name: row.try_get(first + 3).map_err(get_err)?,
        },
        text: row.try_get(first + 4).map_err(get_err)?,
        ts: row.try_get(first + 5).map_err(get_err)?,
        deleted: row.try_get(first + 6).map_err(get_err)?,
        ..Default::default()
    })
}

/// A statement parameter.
type Param<'a> = dyn tokio_postgres::types::ToSql + Sync + 'a;

/// What the batch does with one draft, decided while the rooms are locked.
enum Decision {
    /// Already stored by an earlier transaction (from any node).
    Stored(Message),
    /// Same `(room, id)` as the draft at this earlier index of the batch.
    SameAs(usize),
    /// New, with this `seq`.
    New(i64),
}

/// Stores a batch in two round trips: `BEGIN`, the room locks and the
/// duplicate lookup go out together (PostgreSQL runs them in order, so the
/// lookup sees the rooms locked), then the inserts, the counters and
/// `COMMIT`. On error a transaction may be left open: the caller rolls back.
async fn append_batch(
    client: &Object,
    drafts: Vec<Draft>,
    ts: i64,
) -> Result<Vec<Appended>, StoreError> {
    let mut rooms: Vec<&str> = drafts.iter().map(|d| d.room.as_str()).collect();
    rooms.sort_unstable();
    rooms.dedup();
    let draft_rooms: Vec<&str> = drafts.iter().map(|d| d.room.as_str()).collect();
    let draft_ids: Vec<&str> = drafts.iter().map(|d| d.id.as_str()).collect();

    let (lock, find, insert, advance) = tokio::try_join!(
        client.prepare_cached(LOCK_ROOMS),
        client.prepare_cached(FIND_EXISTING),
        client.prepare_cached(INSERT_MESSAGES),
        client.prepare_cached(ADVANCE_ROOMS),
    )
    .map_err(db_error)?;
    let lock_params: [&Param<'_>; 1] = [&rooms];
    let find_params: [&Param<'_>; 2] = [&draft_rooms, &draft_ids];
    let (began, locked, found) = tokio::join!(
        client.batch_execute("BEGIN"),
        client.query(&lock, &lock_params),
        client.query(&find, &find_params),
    );
    began.map_err(db_error)?;
    // Room → (seq when locked, seq after this batch).
    let mut counters: HashMap<String, (i64, i64)> = HashMap::with_capacity(rooms.len());
    for row in locked.map_err(db_error)? {
        let name: String = row.try_get(0).map_err(db_error)?;
        let seq: i64 = row.try_get(1).map_err(db_error)?;
        counters.insert(name, (seq, seq));
    }
    let mut stored: HashMap<(String, String), Message> = HashMap::new();
    for row in found.map_err(db_error)? {
        let room: String = row.try_get(0).map_err(db_error)?;
        let message = message_from_row(&room, &row, 1)?;
        stored.insert((room, message.id.clone()), message);
    }

    let mut decisions = Vec::with_capacity(drafts.len());
    let mut first_in_batch: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, draft) in drafts.iter().enumerate() {
        let key = (draft.room.as_str(), draft.id.as_str());
        if let Some(message) = stored.remove(&(draft.room.clone(), draft.id.clone())) {
            first_in_batch.insert(key, i);
            decisions.push(Decision::Stored(message));
        } else if let Some(&earlier) = first_in_batch.get(&key) {
            decisions.push(Decision::SameAs(earlier));
        } else {
            let (_, seq) = counters.get_mut(&draft.room).ok_or_else(|| {
                StoreError::Backend(Cause::from(format!("room {:?} was not locked", draft.room)))
            })?;
            *seq += 1;
            first_in_batch.insert(key, i);
            decisions.push(Decision::New(*seq));
        }
    }

    let new: Vec<(&Draft, i64)> = drafts
        .iter()
        .zip(&decisions)
        .filter_map(|(d, decision)| match decision {
            Decision::New(seq) => Some((d, *seq)),
            _ => None,
        })
        .collect();
    if new.is_empty() {
        // Only duplicates: nothing to store, and no commit to wait for.
        client.batch_execute("ROLLBACK").await.map_err(db_error)?;
    } else {
        let column = |f: fn(&Draft) -> &str| new.iter().map(|(d, _)| f(d)).collect::<Vec<_>>();
        let seqs: Vec<i64> = new.iter().map(|(_, seq)| *seq).collect();
        let (rooms, ids, user_ids, user_names, texts) = (
            column(|d| &d.room),
            column(|d| &d.id),
            column(|d| &d.from.id),
            column(|d| &d.from.name),
            column(|d| match &d.action {
                chat_core::store::Action::Send { text, .. } => text,
                _ => "",
            }),
        );
        let (names, latest): (Vec<&str>, Vec<i64>) = counters
            .iter()
            .filter(|(_, (locked, now))| now != locked)
            .map(|(name, (_, now))| (name.as_str(), *now))
            .unzip();
        // After a failed statement PostgreSQL answers this COMMIT by
        // rolling back, so success is all three succeeding.
        let insert_params: [&Param<'_>; 7] =
            [&rooms, &seqs, &ids, &user_ids, &user_names, &texts, &ts];
        let advance_params: [&Param<'_>; 2] = [&names, &latest];
        let syncing = Instant::now();
        let (inserted, advanced, committed) = tokio::join!(
            client.execute(&insert, &insert_params),
            client.execute(&advance, &advance_params),
            client.batch_execute("COMMIT"),
        );
        metrics::histogram!(chat_core::metrics::COMMIT_SYNC)
            .record(syncing.elapsed().as_secs_f64());
        inserted.map_err(db_error)?;
        advanced.map_err(db_error)?;
        committed.map_err(db_error)?;
    }

    let mut outcomes: Vec<Appended> = Vec::with_capacity(drafts.len());
    for (draft, decision) in drafts.into_iter().zip(decisions) {
        let outcome = match decision {
            Decision::Stored(message) => Appended::Duplicate(Receipt {
                id: message.id,
                seq: message.seq,
                ts: message.ts,
            }),
            Decision::SameAs(earlier) => {
                Appended::Duplicate(outcomes[earlier].receipt().expect("x"))
            }
            Decision::New(seq) => Appended::New(Message {
                seq: from_sql_seq(seq)?,
                room: draft.room,
                id: draft.id,
                from: draft.from,
                text: match draft.action {
                    chat_core::store::Action::Send { text, .. } => text,
                    _ => String::new(),
                },
                ts,
                deleted: false,
                ..Default::default()
            }),
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Which end of the read is cut when it holds more than `limit` messages.
#[derive(Clone, Copy)]
enum Direction {
    /// Reading newer messages: the surplus is the newest.
    After,
    /// Reading older messages: the surplus is the oldest.
    Before,
}

async fn read_page(
    client: &Object,
    room: &str,
    bound: i64,
    limit: usize,
    direction: Direction,
) -> Result<Page, StoreError> {
    let sql = match direction {
        Direction::After => PAGE_AFTER,
        Direction::Before => PAGE_BEFORE,
    };
    let statement = client.prepare_cached(sql).await.map_err(db_error)?;
    let rows = client
        .query(&statement, &[&room, &bound, &sql_limit(limit)])
        .await
        .map_err(db_error)?;
    let mut latest_seq = 0;
    let mut messages = Vec::with_capacity(rows.len());
    for row in &rows {
        latest_seq = from_sql_seq(row.try_get(0).map_err(db_error)?)?;
        if row
            .try_get::<_, Option<i64>>(1)
            .map_err(db_error)?
            .is_some()
        {
            messages.push(message_from_row(room, row, 1)?);
        }
    }
    let more = messages.len() > limit;
    if more {
        match direction {
            Direction::After => messages.truncate(limit),
            Direction::Before => {
                messages.drain(..messages.len() - limit);
            }
        }
    }
    Ok(Page {
        messages,
        more,
        latest_seq,
        ..Page::default()
    })
}

#[async_trait]
impl Store for PostgresStore {
    async fn append(&self, drafts: Vec<Draft>, ts: i64) -> Result<Vec<Appended>, StoreError> {
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let outcome = tokio::time::timeout(self.deadline, append_batch(&client, drafts, ts)).await;
        match outcome {
            Ok(Ok(outcomes)) => Ok(outcomes),
            Ok(Err(e)) => {
                self.roll_back(client).await;
                Err(e)
            }
            Err(_) => Err(self.abandon(client)),
        }
    }

    async fn after(&self, room: &str, after: u64, limit: usize) -> Result<Page, StoreError> {
        let client = self.client().await?;
        let outcome = tokio::time::timeout(
            self.deadline,
            read_page(&client, room, to_sql_seq(after), limit, Direction::After),
        )
        .await;
        self.settle(client, outcome)
    }

    async fn before(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let client = self.client().await?;
        let bound = before.map_or(i64::MAX, to_sql_seq);
        let outcome = tokio::time::timeout(
            self.deadline,
            read_page(&client, room, bound, limit, Direction::Before),
        )
        .await;
        self.settle(client, outcome)
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

    async fn search(
        &self,
        _search: &chat_core::store::Search,
    ) -> Result<chat_core::store::Found, StoreError> {
        Err(StoreError::Backend(Cause::from("not yet")))
    }

    async fn versions(&self, _room: &str, _seq: u64) -> Result<Vec<Version>, StoreError> {
        Err(StoreError::Backend(Cause::from("not yet")))
    }

    async fn purge(&self, retention: Retention) -> Result<u64, StoreError> {
        if !retention.is_active() {
            return Ok(0);
        }
        let keep = retention
            .keep_last
            .map(|k| i64::try_from(k).unwrap_or(i64::MAX));
        let mut total = 0;
        for (room, _) in self.rooms().await? {
            // One short statement per chunk (autocommit), so appends to the
            // room wait for at most one chunk's row locks.
            loop {
                let client = self.client().await?;
                let outcome = tokio::time::timeout(self.deadline, async {
                    let statement = client
                        .prepare_cached(PURGE_CHUNK_SQL)
                        .await
                        .map_err(db_error)?;
                    client
                        .execute(
                            &statement,
                            &[&room, &keep, &retention.ts_bound(), &PURGE_CHUNK],
                        )
                        .await
                        .map_err(db_error)
                })
                .await;
                let deleted = self.settle(client, outcome)?;
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
            let statement = client.prepare_cached(ROOM_LIST).await.map_err(db_error)?;
            let rows = client.query(&statement, &[]).await.map_err(db_error)?;
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
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::store::SqliteStore;
    use crate::store::test_support::{check_tombstones_and_purge, draft, seqs};

    #[tokio::test]
    #[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
    async fn tombstones_and_retention_keep_seq_gapless() {
        let db = TestDb::new().await;
        check_tombstones_and_purge(&db.store().await).await;
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

    fn message(outcome: &Appended) -> &Message {
        match outcome {
            Appended::New(m) => m,
            other => panic!("{other:?}"),
        }
    }

    fn page_seqs(page: &Page) -> Vec<u64> {
        page.messages.iter().map(|m| m.seq).collect()
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
        let mut changed = draft("a", "2");
        changed.action = chat_core::store::Action::Send {
            text: "a different text".into(),
            reply_to: None,
        };
        let out = store
            .append(vec![draft("a", "3"), changed], 8)
            .await
            .unwrap();
        assert_eq!(seqs(&out), [(true, 3), (false, 2)]);
        // A duplicate is the original, unchanged: its text and its ts.
        assert_eq!(message(&out[1]).text, "text of 2");
        assert_eq!(message(&out[1]).ts, 7);

        let page = store.after("a", 1, 10).await.unwrap();
        assert_eq!(page.latest_seq, 3);
        assert_eq!(page_seqs(&page), [2, 3]);
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

    /// The same appends and reads against SQLite (the reference) and
    /// PostgreSQL give identical results, down to every field and flag.
    #[tokio::test]
    #[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
    async fn answers_exactly_like_the_sqlite_store() {
        let db = TestDb::new().await;
        let pg = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let lite = SqliteStore::open(dir.path(), TIMEOUT).unwrap();
        let stores: [&dyn Store; 2] = [&lite, &pg];

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
        ];
        for (ts, batch) in batches.into_iter().enumerate() {
            let [a, b] = stores.map(|s| s.append(batch.clone(), ts as i64));
            assert_eq!(a.await.unwrap(), b.await.unwrap(), "batch {ts}");
        }

        for room in ["main", "聊天室", "other", "empty"] {
            for bound in [0, 1, 5, 13, 14, 15, u64::MAX] {
                for limit in [0, 1, 3, 14, 100] {
                    let [a, b] = stores.map(|s| s.after(room, bound, limit));
                    let (a, b) = (a.await.unwrap(), b.await.unwrap());
                    assert_eq!(a, b, "after {room} {bound} {limit}");
                    let [a, b] = stores.map(|s| s.before(room, Some(bound), limit));
                    let (a, b) = (a.await.unwrap(), b.await.unwrap());
                    assert_eq!(a, b, "before {room} {bound} {limit}");
                }
            }
            for limit in [0, 1, 3, 14, 100] {
                let [a, b] = stores.map(|s| s.before(room, None, limit));
                assert_eq!(a.await.unwrap(), b.await.unwrap(), "latest {room} {limit}");
            }
        }
        let page = pg.before("main", None, 3).await.unwrap();
        assert_eq!(
            (page_seqs(&page), page.more, page.latest_seq),
            (vec![12, 13, 14], true, 14)
        );
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
                        let mut shared = draft(room, &format!("shared-{b}-{r}"));
                        shared.action = chat_core::store::Action::Send {
                            text: format!("node {n} says {b}"),
                            reply_to: None,
                        };
                        batch.push(shared);
                        batch.push(draft(room, &format!("node{n}-{b}")));
                    }
                    // A room twice in one batch, and an id repeated in it.
                    batch.push(draft(ROOMS[b % 3], &format!("node{n}-{b}-extra")));
                    batch.push(draft(ROOMS[b % 3], &format!("node{n}-{b}-extra")));
                    let out = store.append(batch, b as i64).await.expect("append");
                    outcomes.extend(out);
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
        for outcome in &outcomes {
            let m = message(outcome);
            let key = (m.room.clone(), m.id.clone());
            assert_eq!(
                stored.get(&key),
                Some(m),
                "{key:?}: told a different message"
            );
            if matches!(outcome, Appended::New(_)) {
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
