//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`,
//! so a commit is fsynced before it returns and an acked message survives
//! `kill -9` and power loss.
//!
//! One writer connection (SQLite allows one writer at a time anyway) and a
//! small pool of reader connections, which WAL lets read while the writer
//! commits. No SQLite call runs on the threads that serve sockets: reads run
//! on tokio's blocking pool, and writes on the writer's own thread, which
//! takes them one after another from a queue. A commit per message under
//! load made the blocking pool's hand-over (a task to spawn and a thread to
//! wake, for each) a visible share of the server's CPU.
//!
//! WAL checkpoints (copying committed pages back into the database file,
//! with an fsync of it) run on a thread of their own every
//! [`CHECKPOINT_INTERVAL`], not inside a commit: SQLite's automatic
//! checkpoint would make every thousandth commit, and every ack waiting on
//! it, tens of milliseconds late.
//!
//! That thread alone never empties the WAL under a steady write load: the
//! commits made while it copies leave it behind, and SQLite starts the WAL
//! over only once a checkpoint has caught up with the last commit, so the
//! file grew by about 16 MB a second at 60,000 deliveries a second, for as
//! long as the load lasted. So after each of the thread's passes, the writer
//! itself checkpoints once between two commits: it copies only what the pass
//! missed, no commit can come in meanwhile, and its next commit writes the
//! WAL from its beginning again.
//!
//! A lock file in the data directory keeps a second server from using the
//! same directory: two writers would each be consistent alone but interleave
//! sequence numbers unpredictably from the clients' point of view.

use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

mod append;
mod bans;
mod people;
mod read;
mod search;

use append::append_batch;
use read::{page_after, page_before, versions};
use search::{INDEX_INTERVAL, index_pending, search};

use chat_core::bans::Ban;
use chat_core::store::{
    Appended, Cause, Draft, Found, PURGE_CHUNK, Page, PersonChange, ReadState, Retention, Search,
    Store, StoreError, Version,
};
use chat_core::sync::lock;
use chat_protocol::{DirectoryEntry, RoomSummary, User};

/// Reader connections: at most this many reads run at once, each on a
/// pooled connection, so a burst of joins queues briefly instead of opening
/// (and closing) a connection per read.
const READER_POOL: usize = 4;

/// How often the checkpoint thread moves the WAL into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// The WAL file is cut back to this size when it starts over, so one burst
/// does not keep its disk space for good.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// 1: rooms and messages; 2: `messages.deleted` (tombstones); 3: changes
/// in the sequence (`kind`, `target`, `emoji`, `edited_at`, `original`),
/// reactions, pins, and the search index (`search`, `search_id`); 4:
/// people: `members` (memberships, read markers), `mentions`, and
/// `messages.mentions`, and `secrets`; 5: `bans`.
const SCHEMA_VERSION: i64 = 5;

/// From version 1: tombstones. New databases get the column from [`SCHEMA`].
const MIGRATE_1_TO_2: &str = "ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;";

/// From version 2: changes. Every existing row is a message (`kind` 0).
/// The new tables and indexes come from [`SCHEMA`].
const MIGRATE_2_TO_3: &str = "
ALTER TABLE messages ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN target INTEGER;
ALTER TABLE messages ADD COLUMN emoji TEXT;
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
ALTER TABLE messages ADD COLUMN original TEXT;
ALTER TABLE messages ADD COLUMN search_id INTEGER;
";

/// From version 3: who messages mention. The new tables come from
/// [`SCHEMA`].
const MIGRATE_3_TO_4: &str = "ALTER TABLE messages ADD COLUMN mentions TEXT;";

/// After [`SCHEMA`], from version 2 or older: the messages stored so far
/// go into the search index, numbered in the order they were stored.
const INDEX_EXISTING: &str = "
CREATE TEMP TABLE search_backfill AS
    SELECT room, seq, row_number() OVER (ORDER BY ts, room, seq) AS n
    FROM messages WHERE kind = 0 AND deleted = 0;
INSERT INTO search (rowid, text, room, seq)
    SELECT b.n, m.text, m.room, m.seq FROM search_backfill b
    JOIN messages m ON m.room = b.room AND m.seq = b.seq;
UPDATE messages SET search_id = b.n FROM search_backfill b
    WHERE messages.room = b.room AND messages.seq = b.seq;
DROP TABLE search_backfill;
UPDATE search_state SET indexed = (SELECT COALESCE(max(search_id), 0) FROM messages);
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rooms (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
) WITHOUT ROWID;
-- Every entry of a room's sequence (see `entries`): `kind` 0 is a message,
-- in its current state (`original` keeps its first text once it changed);
-- the others are changes to message `target` (for a message: the one it
-- replies to), by `user_*`.
CREATE TABLE IF NOT EXISTS messages (
    room      TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    id        TEXT    NOT NULL,
    user_id   TEXT    NOT NULL,
    user_name TEXT    NOT NULL,
    text      TEXT    NOT NULL,
    ts        INTEGER NOT NULL,
    deleted   INTEGER NOT NULL DEFAULT 0,
    kind      INTEGER NOT NULL DEFAULT 0,
    target    INTEGER,
    emoji     TEXT,
    edited_at INTEGER,
    original  TEXT,
    search_id INTEGER,
    mentions  TEXT,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_room_id ON messages (room, id);
-- A message's changes and replies; plain messages have no target and no
-- entry here, so sending costs no more.
CREATE INDEX IF NOT EXISTS messages_room_target ON messages (room, target)
    WHERE target IS NOT NULL;
-- Reactions in effect: one per user, emoji and message.
CREATE TABLE IF NOT EXISTS reactions (
    room      TEXT    NOT NULL,
    target    INTEGER NOT NULL,
    emoji     TEXT    NOT NULL,
    user_id   TEXT    NOT NULL,
    user_name TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (room, target, emoji, user_id)
) WITHOUT ROWID;
-- The text of every message not deleted, for search: trigrams, so a word
-- of any script is found inside longer text (`你好` in `你好吗`). A
-- message's row there is `messages.search_id`, numbered in the order the
-- messages are stored; new messages go in by batches (see `search`), and
-- `search_state.indexed` is the last number they reached.
CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5(
    text, room UNINDEXED, seq UNINDEXED, tokenize = 'trigram'
);
CREATE INDEX IF NOT EXISTS messages_search_id ON messages (search_id)
    WHERE search_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS search_state (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    indexed INTEGER NOT NULL
);
INSERT OR IGNORE INTO search_state (id, indexed) VALUES (0, 0);
-- Pins in effect, with the `seq` of the pin.
CREATE TABLE IF NOT EXISTS pins (
    room   TEXT    NOT NULL,
    target INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (room, target)
) WITHOUT ROWID;
-- A person's rooms (joined and not left), their read marker in each, and
-- the name `@name` mentions in the room are resolved against (`name_key`
-- is it in lower case).
CREATE TABLE IF NOT EXISTS members (
    user_id   TEXT    NOT NULL,
    room      TEXT    NOT NULL,
    user_name TEXT    NOT NULL,
    name_key  TEXT    NOT NULL,
    last_read INTEGER NOT NULL,
    joined_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, room)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_room_name ON members (room, name_key);
-- Values the server keeps for itself (the guest credentials' secret).
CREATE TABLE IF NOT EXISTS secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
-- Who each message mentions (also listed in `messages.mentions`).
CREATE TABLE IF NOT EXISTS mentions (
    user_id TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (user_id, room, seq)
) WITHOUT ROWID;
-- Operators' bans: of `user_id` from `room`, or from the whole server when
-- `room` is '' (no room has that name); `ts` when first made.
CREATE TABLE IF NOT EXISTS bans (
    user_id TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    reason  TEXT,
    ts      INTEGER NOT NULL,
    PRIMARY KEY (user_id, room)
) WITHOUT ROWID;
";

pub struct SqliteStore {
    path: PathBuf,
    busy_timeout: Duration,
    writer: Writer,
    readers: Arc<Mutex<Vec<Connection>>>,
    read_permits: tokio::sync::Semaphore,
    /// Dropping it stops the checkpoint thread (after a last checkpoint).
    _checkpoints: std::sync::mpsc::Sender<()>,
    /// Held for the life of the store: the data directory's lock.
    _lock: File,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create data directory {dir}: {source}")]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot lock {path}: {source}")]
    LockFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data directory {dir} is in use by another chat-server process")]
    InUse { dir: PathBuf },
    #[error("cannot open database {path}: {source}")]
    Database {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database {path} has schema version {found}; this server knows up to {SCHEMA_VERSION}")]
    NewerSchema { path: PathBuf, found: i64 },
    #[error("cannot start the store's threads: {0}")]
    Thread(std::io::Error),
}

fn store_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Busy(e.into())
        }
        _ => StoreError::Backend(e.into()),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `DIR/chat.db`, applying the schema.
    pub fn open(dir: &Path, busy_timeout: Duration) -> Result<Self, OpenError> {
        SqliteStore::open_indexing_every(dir, busy_timeout, INDEX_INTERVAL)
    }

    /// [`SqliteStore::open`], indexing for search every `index_interval`
    /// (tests choose when messages are indexed).
    fn open_indexing_every(
        dir: &Path,
        busy_timeout: Duration,
        index_interval: Duration,
    ) -> Result<Self, OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
            dir: dir.to_owned(),
            source,
        })?;
        let lock_path = dir.join("chat.lock");
        let lock_file = File::create(&lock_path).map_err(|source| OpenError::LockFile {
            path: lock_path.clone(),
            source,
        })?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OpenError::InUse {
                    dir: dir.to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(OpenError::LockFile {
                    path: lock_path,
                    source,
                });
            }
        }
        let path = dir.join("chat.db");
        let db_error = |source| OpenError::Database {
            path: path.clone(),
            source,
        };
        let writer = open_connection(&path, busy_timeout).map_err(db_error)?;
        let version: i64 = writer
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db_error)?;
        if version > SCHEMA_VERSION {
            return Err(OpenError::NewerSchema {
                path,
                found: version,
            });
        }
        let (migrate, backfill) = match version {
            1 => (
                format!("{MIGRATE_1_TO_2} {MIGRATE_2_TO_3} {MIGRATE_3_TO_4}"),
                INDEX_EXISTING,
            ),
            2 => (format!("{MIGRATE_2_TO_3} {MIGRATE_3_TO_4}"), INDEX_EXISTING),
            3 => (MIGRATE_3_TO_4.to_owned(), ""),
            // From version 4: the `bans` table comes from [`SCHEMA`].
            _ => (String::new(), ""),
        };
        writer
            .execute_batch(&format!(
                "BEGIN; {migrate} {SCHEMA} {backfill} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(db_error)?;
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(db_error)?;
        let checkpointer = open_connection(&path, busy_timeout).map_err(db_error)?;
        let (stop, stopped) = std::sync::mpsc::channel();
        let pass_done = Arc::new(AtomicBool::new(false));
        std::thread::Builder::new()
            .name("chat-sqlite-checkpoint".into())
            .spawn({
                let pass_done = pass_done.clone();
                move || checkpoint_until_dropped(&checkpointer, &stopped, &pass_done)
            })
            .map_err(OpenError::Thread)?;
        let writer = Writer::start(writer, pass_done, index_interval).map_err(OpenError::Thread)?;
        Ok(SqliteStore {
            path,
            busy_timeout,
            writer,
            readers: Arc::new(Mutex::new(Vec::new())),
            read_permits: tokio::sync::Semaphore::new(READER_POOL),
            _checkpoints: stop,
            _lock: lock_file,
        })
    }

    /// Runs `f` with a reader connection on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _permit = self
            .read_permits
            .acquire()
            .await
            .map_err(|_| StoreError::Backend(Cause::from("store is closed")))?;
        let readers = self.readers.clone();
        let path = self.path.clone();
        let busy_timeout = self.busy_timeout;
        tokio::task::spawn_blocking(move || {
            let pooled = lock(&readers).pop();
            let mut conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&path, busy_timeout).map_err(store_error)?,
            };
            let result = f(&mut conn).map_err(store_error);
            lock(&readers).push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(e.into()))?
    }
}

/// Checkpoints the WAL every [`CHECKPOINT_INTERVAL`] until the store (the
/// sender of `stopped`) is dropped. PASSIVE never waits for readers or the
/// writer: it copies what it can, and the writer restarts the WAL from its
/// beginning once everything is copied, so the file does not grow.
fn checkpoint_until_dropped(
    conn: &Connection,
    stopped: &std::sync::mpsc::Receiver<()>,
    pass_done: &AtomicBool,
) {
    loop {
        let last = matches!(
            stopped.recv_timeout(CHECKPOINT_INTERVAL),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "WAL checkpoint failed; retrying in a second");
        }
        pass_done.store(true, Ordering::Release);
        if last {
            return;
        }
    }
}

fn open_connection(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    // WAL: readers never block the writer; FULL: fsync the WAL on every
    // commit, which is what makes an ack a promise.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    // Every query here walks a primary key, whatever its parameters. Without
    // the query planner stability guarantee, a statement whose LIMIT or range
    // is a parameter is compiled again each time it is bound to new values:
    // that was a quarter of the server's instructions per join.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(conn)
}

fn latest_seq(conn: &Connection, room: &str) -> rusqlite::Result<u64> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM rooms WHERE name = ?1")?
        .query_row([room], |r| r.get(0))
        .optional()?;
    Ok(seq.unwrap_or(0) as u64)
}

/// Seq values are stored as SQLite integers (i64); clamp client bounds so a
/// huge `before`/`since` reads as "everything" rather than overflowing.
fn to_sql_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn room_list(conn: &mut Connection) -> rusqlite::Result<Vec<(String, u64)>> {
    conn.prepare_cached("SELECT name, seq FROM rooms ORDER BY name")?
        .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?
        .collect()
}

/// Deletes up to [`PURGE_CHUNK`] of `room`'s messages that `retention`
/// lets go, in one short transaction; returns how many.
fn purge_chunk(conn: &mut Connection, room: &str, retention: Retention) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let latest = to_sql_seq(latest_seq(&tx, room)?);
    let bounds = params![
        room,
        retention.seq_bound(latest),
        retention.ts_bound(),
        PURGE_CHUNK
    ];
    // The chunk's messages leave the search index first, while their rows
    // still say where they are in it.
    tx.prepare_cached(
        "DELETE FROM search WHERE rowid IN (
             SELECT search_id FROM messages WHERE room = ?1 AND (seq <= ?2 OR ts < ?3)
             ORDER BY seq LIMIT ?4)",
    )?
    .execute(bounds)?;
    let deleted = tx
        .prepare_cached(
            "DELETE FROM messages WHERE room = ?1 AND seq IN (
                 SELECT seq FROM messages WHERE room = ?1 AND (seq <= ?2 OR ts < ?3)
                 ORDER BY seq LIMIT ?4)",
        )?
        .execute(bounds)?;
    if deleted > 0 {
        // Reactions, pins and mentions of messages that went, with them.
        for (table, column) in [
            ("reactions", "target"),
            ("pins", "target"),
            ("mentions", "seq"),
        ] {
            tx.prepare_cached(&format!(
                "DELETE FROM {table} WHERE room = ?1 AND NOT EXISTS (
                     SELECT 1 FROM messages m WHERE m.room = ?1 AND m.seq = {table}.{column})"
            ))?
            .execute([room])?;
        }
    }
    tx.commit()?;
    Ok(deleted as u64)
}

impl SqliteStore {
    /// Runs `f` on the writer connection, on the writer's thread.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.writer.run(Box::new(move |conn| {
            // The caller may have stopped waiting; the write stands.
            let _ = answer.send(f(conn));
        }))?;
        answered
            .await
            .map_err(|_| StoreError::Backend(Cause::from("the write failed in the store")))?
            .map_err(store_error)
    }
}

/// A write for the writer's thread to run on its connection.
type WriteJob = Box<dyn FnOnce(&mut Connection) + Send>;

/// The writer connection, on a thread of its own that runs writes in the
/// order they were handed over. Dropping it lets the writes already handed
/// over finish, then closes the connection.
struct Writer {
    jobs: Option<std::sync::mpsc::Sender<WriteJob>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread. After a write, if the checkpoint thread has
    /// finished a pass since the last such time (`pass_done`), the writer
    /// checkpoints once: see the module's documentation. It does so after
    /// the write has been answered, so that write's ack does not wait on it.
    /// Every `index_interval`, busy or idle, it indexes for search what
    /// was stored meanwhile (`search`).
    fn start(
        mut conn: Connection,
        pass_done: Arc<AtomicBool>,
        index_interval: Duration,
    ) -> std::io::Result<Writer> {
        let (jobs, received) = std::sync::mpsc::channel::<WriteJob>();
        let thread = std::thread::Builder::new()
            .name("chat-sqlite-writer".into())
            .spawn(move || {
                let mut indexing = Indexing::new(index_interval);
                loop {
                    match received.recv_timeout(indexing.due_in()) {
                        Ok(job) => {
                            // A panicking write answers nothing (its caller
                            // gets an error) and must not end the writes
                            // after it.
                            let ran = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
                            if ran.is_err() {
                                tracing::error!("a write to the store panicked");
                            }
                            indexing.wrote();
                            if pass_done.swap(false, Ordering::AcqRel)
                                && let Err(error) =
                                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                            {
                                tracing::warn!(%error, "WAL checkpoint by the writer failed");
                            }
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                            indexing.run(&mut conn);
                            return;
                        }
                    }
                    if indexing.is_due() {
                        indexing.run(&mut conn);
                    }
                }
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    fn run(&self, job: WriteJob) -> Result<(), StoreError> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| StoreError::Backend(Cause::from("the store's writer has stopped")))
    }
}

/// When the writer indexes next: after writes, every `interval`.
struct Indexing {
    interval: Duration,
    last: Instant,
    /// Something may wait to be indexed: a write came, or the last pass
    /// did not take everything.
    pending: bool,
}

impl Indexing {
    fn new(interval: Duration) -> Indexing {
        Indexing {
            interval,
            last: Instant::now(),
            // Messages a crash left unindexed.
            pending: true,
        }
    }

    fn wrote(&mut self) {
        self.pending = true;
    }

    /// How long the writer may wait for a write before indexing.
    fn due_in(&self) -> Duration {
        if self.pending {
            self.interval.saturating_sub(self.last.elapsed())
        } else {
            // Nothing to index: wait for writes alone (long, not forever,
            // so the loop stays one shape).
            Duration::from_secs(3600)
        }
    }

    fn is_due(&self) -> bool {
        self.pending && self.last.elapsed() >= self.interval
    }

    fn run(&mut self, conn: &mut Connection) {
        self.last = Instant::now();
        match index_pending(conn) {
            Ok(more) => self.pending = more,
            Err(error) => tracing::warn!(%error, "indexing messages for search failed; retrying"),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop once it is empty.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn append(&self, drafts: Vec<Draft>, ts: i64) -> Result<Vec<Appended>, StoreError> {
        self.write(move |conn| append_batch(conn, drafts, ts)).await
    }

    async fn after(&self, room: &str, after: u64, limit: usize) -> Result<Page, StoreError> {
        let room = room.to_owned();
        self.read(move |conn| page_after(conn, &room, after, limit))
            .await
    }

    async fn before(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let room = room.to_owned();
        self.read(move |conn| page_before(conn, &room, before, limit))
            .await
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }

    async fn check_commit(&self) -> Result<(), StoreError> {
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Setting the schema version it already has changes nothing,
            // yet writes the database header page: the commit appends to
            // the WAL and syncs it, as a batch's does.
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()
        })
        .await
    }

    async fn search(&self, query: &Search) -> Result<Found, StoreError> {
        let query = query.clone();
        self.read(move |conn| search(conn, &query)).await
    }

    async fn versions(&self, room: &str, seq: u64) -> Result<Vec<Version>, StoreError> {
        let room = room.to_owned();
        self.read(move |conn| versions(conn, &room, seq)).await
    }

    async fn purge(&self, retention: Retention) -> Result<u64, StoreError> {
        if !retention.is_active() {
            return Ok(0);
        }
        let mut total = 0;
        for (room, _) in self.rooms().await? {
            // Chunk by chunk, taking the writer each time, so commits of
            // new messages go between them instead of waiting for it all.
            loop {
                let name = room.clone();
                let deleted = self
                    .write(move |conn| purge_chunk(conn, &name, retention))
                    .await?;
                total += deleted;
                if deleted < PURGE_CHUNK as u64 {
                    break;
                }
            }
        }
        Ok(total)
    }

    async fn rooms(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(room_list).await
    }

    async fn join_page(
        &self,
        room: &str,
        user: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Result<(Page, ReadState), StoreError> {
        let (room, user) = (room.to_owned(), user.to_owned());
        self.read(move |conn| {
            let page = match since {
                Some(since) => page_after(conn, &room, since, limit)?,
                None => page_before(conn, &room, None, limit)?,
            };
            Ok((page, people::read_state(conn, &room, &user)?))
        })
        .await
    }

    async fn record(&self, changes: Vec<PersonChange>) -> Result<Vec<ReadState>, StoreError> {
        let places: Vec<(String, String)> = changes
            .iter()
            .filter_map(|change| match change {
                PersonChange::Read { user, room, .. } => Some((user.clone(), room.clone())),
                _ => None,
            })
            .collect();
        self.write(move |conn| people::record(conn, &changes))
            .await?;
        if places.is_empty() {
            return Ok(Vec::new());
        }
        self.read(move |conn| people::read_states(conn, &places))
            .await
    }

    async fn user_rooms(&self, user: &str) -> Result<Vec<RoomSummary>, StoreError> {
        let user = user.to_owned();
        self.read(move |conn| people::user_rooms(conn, &user)).await
    }

    async fn directory(&self, limit: usize) -> Result<Vec<DirectoryEntry>, StoreError> {
        self.read(move |conn| people::directory(conn, limit)).await
    }

    async fn person(&self, user: &str) -> Result<Option<User>, StoreError> {
        let user = user.to_owned();
        self.read(move |conn| people::person(conn, &user)).await
    }

    async fn shared_secret(&self, name: &str, fresh: String) -> Result<String, StoreError> {
        let name = name.to_owned();
        self.write(move |conn| {
            conn.prepare_cached("INSERT OR IGNORE INTO secrets (name, value) VALUES (?1, ?2)")?
                .execute(params![name, fresh])?;
            conn.prepare_cached("SELECT value FROM secrets WHERE name = ?1")?
                .query_row([name], |row| row.get(0))
        })
        .await
    }

    async fn put_ban(&self, ban: &Ban) -> Result<Ban, StoreError> {
        let ban = ban.clone();
        self.write(move |conn| bans::put(conn, &ban)).await
    }

    async fn delete_ban(&self, user: &str, room: Option<&str>) -> Result<bool, StoreError> {
        let (user, room) = (user.to_owned(), room.map(str::to_owned));
        self.write(move |conn| bans::delete(conn, &user, room.as_deref()))
            .await
    }

    async fn bans(&self) -> Result<Vec<Ban>, StoreError> {
        self.read(bans::list).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::store::Action;

    use crate::store::test_support::{
        by, check_bans, check_changes, check_people, check_search, check_tombstones_and_purge,
        draft, seqs,
    };

    #[tokio::test]
    async fn bans_are_kept_listed_and_lifted() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Duration::from_secs(1)).unwrap();
        check_bans(&store).await;
    }

    #[tokio::test]
    async fn people_read_markers_and_mentions_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Duration::from_secs(1)).unwrap();
        check_people(&store).await;
    }

    #[tokio::test]
    async fn tombstones_and_retention_keep_seq_gapless() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Duration::from_secs(1)).unwrap();
        check_tombstones_and_purge(&store).await;
    }

    #[tokio::test]
    async fn search_finds_words_of_any_script_in_readable_rooms() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Duration::from_secs(1)).unwrap();
        check_search(&store).await;
    }

    #[tokio::test]
    async fn search_finds_messages_before_and_after_they_are_indexed() {
        use chat_core::store::{Search, SearchScope};
        let dir = tempfile::tempdir().unwrap();
        // No pass but the test's own: which messages wait is certain.
        let hour = Duration::from_secs(3600);
        let store =
            SqliteStore::open_indexing_every(dir.path(), Duration::from_secs(1), hour).unwrap();
        let texts = |found: chat_core::store::Found| -> Vec<String> {
            found.messages.into_iter().map(|m| m.text).collect()
        };
        let search = |words: &[&str], cursor: Option<u64>| Search {
            words: words.iter().map(|w| w.to_string()).collect(),
            rooms: SearchScope::Room("a".into()),
            cursor,
            limit: 2,
        };
        let said = |i: usize, text: &str| {
            let mut d = draft("a", &format!("m{i}"));
            d.action = Action::Send {
                text: text.into(),
                reply_to: None,
            };
            d
        };
        // Indexed: messages 1 and 2. Waiting: 3 and 4.
        let first = vec![said(1, "needle one"), said(2, "needle two 你好")];
        store.append(first, 1).await.unwrap();
        assert!(!store.write(index_pending).await.unwrap());
        let second = vec![said(3, "needle three"), said(4, "needle four 你好")];
        store.append(second, 2).await.unwrap();
        for words in [&["needle"][..], &["ne"][..]] {
            let page = store.search(&search(words, None)).await.unwrap();
            let next = page.next;
            assert_eq!(
                texts(page),
                ["needle four 你好", "needle three"],
                "{words:?}"
            );
            let page = store.search(&search(words, next)).await.unwrap();
            assert_eq!(page.next, None);
            assert_eq!(texts(page), ["needle two 你好", "needle one"], "{words:?}");
        }
        // Changes to both kinds show at once.
        let edits = vec![
            by(
                "u1",
                "e1",
                Action::Edit {
                    target: 1,
                    text: "moved".into(),
                },
            ),
            by(
                "u1",
                "e3",
                Action::Edit {
                    target: 3,
                    text: "moved too".into(),
                },
            ),
            by("u1", "d4", Action::Delete { target: 4 }),
        ];
        store.append(edits, 3).await.unwrap();
        let all = |words| Search {
            limit: 10,
            ..search(words, None)
        };
        assert_eq!(
            texts(store.search(&all(&["needle"])).await.unwrap()),
            ["needle two 你好"]
        );
        assert_eq!(
            texts(store.search(&all(&["你好"])).await.unwrap()),
            ["needle two 你好"]
        );
        assert_eq!(
            texts(store.search(&all(&["moved"])).await.unwrap()),
            ["moved too", "moved"]
        );
        // Once indexed, the same answers.
        assert!(!store.write(index_pending).await.unwrap());
        assert_eq!(
            texts(store.search(&all(&["needle"])).await.unwrap()),
            ["needle two 你好"]
        );
        assert_eq!(
            texts(store.search(&all(&["moved"])).await.unwrap()),
            ["moved too", "moved"]
        );
        assert_eq!(
            texts(store.search(&all(&["four"])).await.unwrap()),
            Vec::<String>::new()
        );
    }

    #[tokio::test]
    async fn changes_take_their_place_in_the_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Duration::from_secs(1)).unwrap();
        check_changes(&store).await;
    }

    #[tokio::test]
    async fn a_version_1_database_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join("chat.db")).unwrap();
            conn.execute_batch(
                "CREATE TABLE rooms (name TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
                 CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL,
                     id TEXT NOT NULL, user_id TEXT NOT NULL, user_name TEXT NOT NULL,
                     text TEXT NOT NULL, ts INTEGER NOT NULL, PRIMARY KEY (room, seq))
                     WITHOUT ROWID;
                 CREATE UNIQUE INDEX messages_room_id ON messages (room, id);
                 INSERT INTO rooms VALUES ('a', 1);
                 INSERT INTO messages VALUES ('a', 1, 'old', 'u1', 'alice', 'hi', 5);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let store = SqliteStore::open(dir.path(), Duration::from_secs(1)).unwrap();
        let page = store.after("a", 0, 10).await.unwrap();
        assert_eq!(page.messages.len(), 1);
        assert!(!page.messages[0].deleted && page.messages[0].text == "hi");
        // Messages stored before the search index existed are in it.
        let search = chat_core::store::Search {
            words: vec!["hi".into()],
            rooms: chat_core::store::SearchScope::Room("a".into()),
            cursor: None,
            limit: 5,
        };
        let found = store.search(&search).await.unwrap();
        assert_eq!(
            found.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [1]
        );
        let delete = by("u1", "d", Action::Delete { target: 1 });
        let out = store
            .append(vec![delete, draft("a", "new")], 6)
            .await
            .unwrap();
        assert_eq!(seqs(&out), [(true, 2), (true, 3)]);
        assert!(store.before("a", None, 10).await.unwrap().messages[0].deleted);
    }

    #[tokio::test]
    async fn a_write_that_panics_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Duration::from_secs(1)).unwrap();
        let failed = store
            .write(|_| -> rusqlite::Result<()> { panic!("a bug in a write") })
            .await;
        assert!(failed.is_err());
        let out = store.append(vec![draft("a", "after")], 1).await.unwrap();
        assert_eq!(seqs(&out), [(true, 1)]);
    }

    #[tokio::test]
    async fn under_a_steady_write_load_the_wal_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Duration::from_secs(1)).unwrap();
        // Commits one after another, never leaving the checkpoint thread a
        // quiet moment to catch up on its own.
        let until = std::time::Instant::now() + CHECKPOINT_INTERVAL * 3;
        let mut sent = 0;
        while std::time::Instant::now() < until {
            let drafts = (0..20)
                .map(|i| draft("a", &format!("{sent}-{i}")))
                .collect();
            store.append(drafts, 1).await.unwrap();
            sent += 1;
        }
        // The WAL header's checkpoint sequence number (bytes 12..16) counts
        // the times the WAL started over from its beginning.
        let wal = std::fs::read(dir.path().join("chat.db-wal")).unwrap();
        let restarts = u32::from_be_bytes(wal[12..16].try_into().unwrap());
        assert!(
            restarts >= 1,
            "the WAL never started over in {sent} commits"
        );
    }

    #[tokio::test]
    async fn committed_pages_reach_the_database_file_without_a_commit_doing_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Duration::from_secs(1)).unwrap();
        let db_size = || std::fs::metadata(dir.path().join("chat.db")).unwrap().len();
        let before = db_size();
        let drafts = (0..2000).map(|i| draft("a", &i.to_string())).collect();
        store.append(drafts, 1).await.unwrap();
        // Commits leave pages in the WAL; only the checkpoint thread moves
        // them into the database file.
        let deadline = std::time::Instant::now() + CHECKPOINT_INTERVAL * 5;
        while db_size() == before {
            assert!(std::time::Instant::now() < deadline, "no checkpoint ran");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn sequences_per_room_and_deduplicates_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Duration::from_secs(1)).unwrap();
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
        let out = store.append(vec![draft("a", "3")], 8).await.unwrap();
        assert_eq!(seqs(&out), [(true, 3)]);

        let page = store.after("a", 1, 10).await.unwrap();
        assert_eq!(page.latest_seq, 3);
        assert_eq!(
            page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [2, 3]
        );
        assert!(!page.more);
        let page = store.before("a", None, 2).await.unwrap();
        assert_eq!(
            page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [2, 3]
        );
        assert!(page.more);
        let page = store.before("a", Some(2), 5).await.unwrap();
        assert_eq!(page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [1]);
        assert!(!page.more);
        assert_eq!(store.after("nobody", 0, 5).await.unwrap(), Page::default());
    }

    #[tokio::test]
    async fn survives_reopen_and_refuses_a_second_opener() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SqliteStore::open(dir.path(), Duration::from_secs(1)).unwrap();
            assert!(matches!(
                SqliteStore::open(dir.path(), Duration::from_secs(1)),
                Err(OpenError::InUse { .. })
            ));
            store.append(vec![draft("a", "x")], 1).await.unwrap();
        }
        let store = SqliteStore::open(dir.path(), Duration::from_secs(1)).unwrap();
        let out = store
            .append(vec![draft("a", "x"), draft("a", "y")], 2)
            .await
            .unwrap();
        assert_eq!(seqs(&out), [(false, 1), (true, 2)]);
    }
}
