//! The PostgreSQL store's tests: most need PostgreSQL (`TestDb`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chat_core::store::{Action, Receipt, SearchScope};
use chat_core::{RoomAccess, RoomPattern};
use chat_protocol::{Message, Reaction};

use super::*;
use crate::store::SqliteStore;
use crate::store::test_support::{
    by, check_bans, check_changes, check_people, check_search, check_tombstones_and_purge, draft,
    edit, joined, page_seqs, pin, react, read, reply, seqs,
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

#[tokio::test]
#[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
async fn search_finds_words_of_any_script_in_readable_rooms() {
    let db = TestDb::new().await;
    check_search(&db.store().await).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
async fn people_read_markers_and_mentions_are_exact() {
    let db = TestDb::new().await;
    check_people(&db.store().await).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
async fn bans_are_kept_listed_and_lifted() {
    let db = TestDb::new().await;
    check_bans(&db.store().await).await;
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
/// or fail. The tests that use one are ignored unless asked for (a bare `cargo
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
        self.url_of(&self.server)
    }

    /// `server` with the test's `application_name`.
    fn url_of(&self, server: &str) -> String {
        let separator = if server.contains('?') { '&' } else { '?' };
        format!("{server}{separator}application_name={}", self.app)
    }

    /// Whether the test's schema has an index or table named `name`.
    async fn has(&self, name: &str) -> bool {
        let qualified = format!("{}.{name}", quote_ident(&self.schema));
        self.admin
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&qualified])
            .await
            .unwrap()
            .get(0)
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url(), Some(self.schema.clone()), TIMEOUT)
            .await
            .expect("connect to the test database")
    }
}

fn unreachable(url: &str, why: &str) -> ! {
    panic!("PostgreSQL at {url} is unreachable ({why}); scripts/test sets up what these tests need")
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

/// Every page of a search, walking the cursors, as `(room, seq)` pairs
/// (the messages are compared whole by [`same_searches`]); the cursors'
/// values are the backend's own.
async fn search_pages(store: &dyn Store, search: &Search) -> Vec<Vec<Message>> {
    let mut search = search.clone();
    let mut pages = Vec::new();
    loop {
        let found = store.search(&search).await.unwrap();
        pages.push(found.messages);
        match found.next {
            Some(next) => search.cursor = Some(next),
            None => return pages,
        }
    }
}

/// Both stores find the same messages, in the same state and order, on
/// the same pages, for words long and short, with wildcards, in every
/// kind of scope.
async fn same_searches(stores: [&dyn Store; 2], when: &str) {
    let scopes = [
        SearchScope::Readable(RoomAccess::Any),
        SearchScope::Room("main".into()),
        SearchScope::Room("聊天室".into()),
        SearchScope::Readable(RoomAccess::Only(vec![
            RoomPattern::Exact("other".into()),
            RoomPattern::Prefix("ma".into()),
        ])),
        SearchScope::Readable(RoomAccess::Only(vec![RoomPattern::Prefix("聊".into())])),
        SearchScope::Readable(RoomAccess::Only(Vec::new())),
    ];
    let queries: [&[&str]; 8] = [
        &["text"],
        &["TEXT", "of"],
        &["m1"],
        &["re:"],
        &["edited"],
        &["of", "x"],
        &["m%"],
        &["nothing-like-it"],
    ];
    let mut found = 0;
    for rooms in &scopes {
        for words in queries {
            for limit in [1, 3, 50] {
                let search = Search {
                    words: words.iter().map(|w| w.to_string()).collect(),
                    rooms: rooms.clone(),
                    cursor: None,
                    limit,
                };
                let [a, b] = stores.map(|s| search_pages(s, &search));
                let (a, b) = (a.await, b.await);
                assert_eq!(a, b, "{when}: {search:?}");
                found += a.iter().map(Vec::len).sum::<usize>();
            }
        }
    }
    assert!(found > 0, "{when}: the searches found nothing to compare");
}

/// Both stores list the same rooms for each of `users`, with the same
/// counts and last messages; give each the same place (and page) in each
/// of `rooms`; and list the same directory and people.
async fn same_people(stores: [&dyn Store; 2], rooms: &[&str], users: &[&str], when: &str) {
    for &user in users {
        let [a, b] = stores.map(|s| s.user_rooms(user));
        assert_eq!(
            a.await.unwrap(),
            b.await.unwrap(),
            "{when}: rooms of {user}"
        );
        let [a, b] = stores.map(|s| s.person(user));
        assert_eq!(a.await.unwrap(), b.await.unwrap(), "{when}: person {user}");
        for &room in rooms {
            for since in [None, Some(3), Some(u64::MAX)] {
                for limit in [0, 100] {
                    let [a, b] = stores.map(|s| s.join_page(room, user, since, limit));
                    let (a, b) = (a.await.unwrap(), b.await.unwrap());
                    assert_eq!(a, b, "{when}: {user} joins {room} since {since:?} {limit}");
                }
            }
        }
    }
    for limit in [0, 1, 2, 100] {
        let [a, b] = stores.map(|s| s.directory(limit));
        assert_eq!(
            a.await.unwrap(),
            b.await.unwrap(),
            "{when}: directory {limit}"
        );
    }
}

/// Both stores record `changes` alike, and answer the same read states.
async fn same_record(stores: [&dyn Store; 2], changes: Vec<PersonChange>, when: &str) {
    let [a, b] = stores.map(|s| s.record(changes.clone()));
    assert_eq!(a.await.unwrap(), b.await.unwrap(), "{when}");
}

/// The same appends, reads and purges against SQLite (the reference)
/// and PostgreSQL give identical results, down to every field and flag:
/// sends alone (PostgreSQL's fast path), then changes and replies mixed
/// with sends, each refused, duplicated or applied on the state the
/// drafts before it left; and, for the people in the rooms, the same
/// mentions, read markers, counts, rooms lists and directory.
#[tokio::test]
#[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
async fn answers_exactly_like_the_sqlite_store() {
    let db = TestDb::new().await;
    let pg = db.store().await;
    let dir = tempfile::tempdir().unwrap();
    let lite = SqliteStore::open(dir.path(), TIMEOUT).unwrap();
    let stores: [&dyn Store; 2] = [&lite, &pg];
    let delete = |target| Action::Delete { target };

    // Members before anything is said (a marker past the end starts at
    // it): a name with a space, and one user in several rooms.
    let dm = chat_protocol::people::dm_room("u1", "u2").unwrap();
    let members = vec![
        joined("u1", "alice", "main", 0),
        joined("u2", "bob", "main", 0),
        joined("u3", "carol", "main", 0),
        joined("u9", "Ann Lee", "main", 0),
        joined("mod", "mod", "main", 0),
        joined("u2", "bob", "聊天室", 7),
        joined("u3", "carol", "other", 0),
        joined("u1", "alice", &dm, 0),
        joined("u2", "bob", &dm, 0),
    ];
    same_record(stores, members, "members").await;

    // Mentions in every path: sends alone (m0, m1, m5, m7, x), runs of
    // sends between changes (m15), and replies (re1); of oneself, of
    // nobody, inside a word, in any case, and of a name with a space.
    let batches: Vec<Vec<Draft>> = vec![
        (0..12)
            .map(|i| match i {
                0 => send("main", "m0", "text of m0 for @carol"),
                1 => send("main", "m1", "text of m1 for @Bob and @ann lee."),
                5 => send("main", "m5", "@alice talks to herself; @carol-x is nobody"),
                7 => send("main", "m7", "mail bob@example.com, @bo, @MOD!"),
                _ => draft("main", &format!("m{i}")),
            })
            .collect(),
        vec![
            draft("main", "m3"),
            send("聊天室", "x", "@bob 你好"),
            draft("main", "m12"),
            send("聊天室", "x", "@bob 你好"),
            draft("other", "m3"),
        ],
        vec![draft("main", "m12"), draft("main", "m13")],
        vec![
            draft("main", "m14"),
            on("main", "u2", "re1", reply("re: m0 @alice @bob", 1)),
            on("main", "u1", "e1", edit(1, "m0, edited")),
            on("main", "u2", "e-bob", edit(1, "not bob's")),
            on("main", "u2", "r1", react(1, "👍", false)),
            on("main", "u3", "r2", react(1, "👍", false)),
            on("main", "u2", "r1-again", react(1, "👍", false)),
            send("main", "m15", "@carol @CAROL @Ann Lee, ping"),
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
            send(&dm, "dm1", "@bob psst"),
        ],
    ];
    for (ts, batch) in batches.into_iter().enumerate() {
        let [a, b] = stores.map(|s| s.append(batch.clone(), ts as i64));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert_eq!(a, b, "batch {ts}");
        if ts == 0 {
            let Appended::New(m1) = &a[1] else {
                panic!("{a:?}")
            };
            assert_eq!(m1.mentions, ["u2", "u9"], "the mentions are compared");
        }
    }
    let page = pg.after("main", 0, 100).await.unwrap();
    let mut entries: Vec<u64> = page_seqs(&page);
    entries.extend(page.changes.iter().map(|c| c.seq()));
    entries.sort_unstable();
    assert_eq!(entries, (1..=31).collect::<Vec<_>>(), "gapless");
    assert_eq!(page.latest_seq, 31);
    let rooms = ["main", "聊天室", "other", "empty", "nowhere", dm.as_str()];
    same_reads(stores, &rooms, 31, "stored").await;
    same_searches(stores, "stored").await;
    let users = ["u1", "u2", "u3", "u9", "mod", "u4", "u5", "nobody"];
    same_people(stores, &rooms, &users, "stored").await;
    let carol = pg.user_rooms("u3").await.unwrap();
    assert!(
        carol.iter().any(|r| r.unread_mentions > 0),
        "the counts are compared: {carol:?}"
    );

    // Markers moved forward, back (not), past the end (to it), by
    // non-members (not at all), by joining again (not); late joiners
    // where they read to, or the end; rooms left.
    let reads = vec![
        read("u2", "main", 10),
        joined("u4", "dave", "main", 20),
        joined("u5", "eve", "other", u64::MAX),
        joined("u2", "bob", "main", 0),
        read("u3", "main", 99),
        read("u2", "main", 5),
        read("u9", "other", 1),
        read("u2", "聊天室", 1),
        PersonChange::Left {
            user: "u9".into(),
            room: "main".into(),
        },
        read("u1", &dm, 1),
        read("u9", "main", 3),
    ];
    same_record(stores, reads, "reads").await;
    same_people(stores, &rooms, &users, "read").await;

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
        same_searches(stores, &format!("purge {i}")).await;
        same_people(stores, &rooms, &users, &format!("purge {i}")).await;
    }
}

/// A database of schema version 2 (messages with tombstones) takes
/// changes once migrated, its messages as they were.
#[tokio::test]
#[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
async fn a_version_2_schema_is_migrated_in_place() {
    let db = TestDb::new().await;
    schema_at(
        &db,
        &MIGRATIONS[..2],
        "INSERT INTO rooms VALUES ('a', 2);
         INSERT INTO messages (room, seq, id, user_id, user_name, text, ts, deleted)
         VALUES ('a', 1, 'old', 'u1', 'alice', 'hi', 5, false),
                ('a', 2, 'gone', 'u1', 'alice', '', 6, true)",
    )
    .await;

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

/// Builds the test's schema as `migrations` leave it, then runs `sql` in
/// it (as the admin, not through a store).
async fn schema_at(db: &TestDb, migrations: &[Migration], sql: &str) {
    let schema = quote_ident(&db.schema);
    db.admin
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path TO {schema};
             CREATE TABLE chat_migrations (version INTEGER PRIMARY KEY,
                 description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());"
        ))
        .await
        .unwrap();
    for migration in migrations {
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
        .batch_execute(&format!("{sql}; RESET search_path;"))
        .await
        .unwrap();
}

/// The `(room, seq)` of every result of `words` anywhere, page by page.
async fn search_pairs(store: &dyn Store, words: &[&str], limit: usize) -> Vec<Vec<(String, u64)>> {
    let search = Search {
        words: words.iter().map(|w| w.to_string()).collect(),
        rooms: SearchScope::Readable(RoomAccess::Any),
        cursor: None,
        limit,
    };
    search_pages(store, &search)
        .await
        .into_iter()
        .map(|page| page.into_iter().map(|m| (m.room, m.seq)).collect())
        .collect()
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter()
        .map(|&(room, seq)| (room.to_owned(), seq))
        .collect()
}

/// A database of schema version 3 gets the search index: the messages
/// stored so far are found, ordered by when they were stored (`ts`, then
/// room and `seq`, as SQLite's migration orders them), and new ones come
/// after them whatever their `ts`.
#[tokio::test]
#[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
async fn a_version_3_schema_gets_search_in_place() {
    let db = TestDb::new().await;
    // Inserted out of `ts` order, so numbering them as stored would fail.
    schema_at(
        &db,
        &MIGRATIONS[..3],
        "INSERT INTO rooms VALUES ('a', 3), ('b', 1), ('c', 1);
         INSERT INTO messages (room, seq, id, user_id, user_name, text, ts, deleted, kind,
                               target, original)
         VALUES ('a', 1, 'a1', 'u1', 'alice', 'hello one', 10, false, 0, NULL, NULL),
                ('b', 1, 'b1', 'u1', 'alice', 'Hello two', 5, false, 0, NULL, NULL),
                ('a', 2, 'a2', 'u1', 'alice', '', 11, true, 0, NULL, 'hello gone'),
                ('a', 3, 'd2', 'u1', 'alice', '', 12, false, 2, 2, NULL),
                ('c', 1, 'c1', 'u1', 'alice', 'hello three', 10, false, 0, NULL, NULL)",
    )
    .await;

    let store = db.store().await;
    assert!(db.has("messages_search_order").await);
    assert!(db.has(TRIGRAM_INDEX).await);
    assert_eq!(
        search_pairs(&store, &["hello"], 10).await,
        [pairs(&[("c", 1), ("a", 1), ("b", 1)])]
    );
    let out = store
        .append(vec![send("b", "b2", "hello four")], 1)
        .await
        .unwrap();
    assert_eq!(seqs(&out), [(true, 2)]);
    let out = store
        .append(vec![by("u1", "e1", edit(1, "goodbye"))], 2)
        .await
        .unwrap();
    assert_eq!(seqs(&out), [(true, 4)]);
    assert_eq!(
        search_pairs(&store, &["hello"], 2).await,
        [pairs(&[("b", 2), ("c", 1)]), pairs(&[("b", 1)])]
    );
    assert_eq!(
        search_pairs(&store, &["goodbye"], 2).await,
        [pairs(&[("a", 1)])]
    );
}

/// A database of schema version 4 gets people in place: the messages
/// stored before mention nobody, new ones mention the members.
#[tokio::test]
#[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
async fn a_version_4_schema_gets_people_in_place() {
    let db = TestDb::new().await;
    schema_at(
        &db,
        &MIGRATIONS[..4],
        "INSERT INTO rooms VALUES ('a', 1);
         INSERT INTO messages (room, seq, id, user_id, user_name, text, ts)
         VALUES ('a', 1, 'old', 'u1', 'alice', 'hi @bob', 5)",
    )
    .await;

    let store = db.store().await;
    assert!(db.has("members_room_name").await);
    store
        .record(vec![joined("u2", "bob", "a", 0)])
        .await
        .unwrap();
    let out = store
        .append(vec![send("a", "new", "hi again @bob")], 6)
        .await
        .unwrap();
    let Appended::New(new) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(new.mentions, ["u2"]);
    let (page, state) = store.join_page("a", "u2", None, 10).await.unwrap();
    let mentions: Vec<Vec<String>> = page.messages.into_iter().map(|m| m.mentions).collect();
    assert_eq!(mentions, [vec![], vec!["u2".to_owned()]]);
    let counts = (state.last_read, state.unread, state.unread_mentions);
    assert_eq!(counts, (0, 2, 1));
}

/// Nodes starting together, each with a secret of its own: every one
/// keeps the same, the first stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
async fn nodes_agree_on_the_first_shared_secret() {
    const NODES: usize = 4;
    let db = TestDb::new().await;
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(Arc::new(db.store().await));
    }
    let start = Arc::new(tokio::sync::Barrier::new(NODES));
    let mut asking = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let (node, start) = (node.clone(), start.clone());
        asking.push(tokio::spawn(async move {
            start.wait().await;
            node.shared_secret("guest", format!("node {n}")).await
        }));
    }
    let mut kept = HashSet::new();
    for asked in asking {
        kept.insert(asked.await.unwrap().unwrap());
    }
    assert_eq!(kept.len(), 1, "{kept:?}");
    let later = nodes[0].shared_secret("guest", "later".into()).await;
    assert!(kept.contains(&later.unwrap()));
}

/// Several nodes record changes of the same people in the same rooms at
/// once, each node in another order: none fails (two transactions
/// locking shared member rows in opposite orders would deadlock), and
/// the markers end where the furthest read put them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
async fn nodes_recording_concurrently_do_not_deadlock() {
    const NODES: usize = 3;
    const BATCHES: u64 = 20;
    let db = TestDb::new().await;
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(Arc::new(db.store().await));
    }
    let rooms = ["r0", "r1", "r2", "r3"];
    let drafts = rooms.iter().map(|room| draft(room, "m")).collect();
    nodes[0].append(drafts, 1).await.unwrap();
    let mut running = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let node = node.clone();
        running.push(tokio::spawn(async move {
            for b in 0..BATCHES {
                let mut changes = Vec::new();
                for user in ["u1", "u2", "u3"] {
                    for room in rooms {
                        changes.push(joined(user, user, room, 0));
                        changes.push(read(user, room, b % 2));
                    }
                }
                if n % 2 == 1 {
                    changes.reverse();
                }
                changes.rotate_left(n);
                node.record(changes).await.expect("record");
            }
        }));
    }
    for r in running {
        r.await.unwrap();
    }
    for room in rooms {
        let (_, state) = nodes[0].join_page(room, "u2", None, 1).await.unwrap();
        assert_eq!((state.last_read, state.unread), (1, 0), "{room}");
    }
}

/// A login role of its own for one test, which may create schemas in the
/// test database but has no other privilege; dropped, with whatever it
/// owns (the test's schema, once it has made it), when the test ends.
struct TestRole {
    name: String,
    server: String,
}

impl TestRole {
    async fn new(db: &TestDb) -> TestRole {
        let name = format!("r_{}", ulid::Ulid::new().to_string().to_lowercase());
        db.admin
            .batch_execute(&format!(
                "CREATE ROLE {name} LOGIN;
                 DO $$ BEGIN
                     EXECUTE format('GRANT CREATE ON DATABASE %I TO {name}', current_database());
                 END $$;"
            ))
            .await
            .unwrap();
        TestRole {
            name,
            server: db.server.clone(),
        }
    }

    /// The test server's URL, logging in as this role.
    fn url(&self) -> String {
        let (scheme, rest) = self.server.split_once("://").expect("a URL");
        let host = match rest.split_once('@') {
            Some((user, host)) if !user.contains('/') => host,
            _ => rest,
        };
        format!("{scheme}://{}@{host}", self.name)
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        let url = self.server.clone();
        let name = self.name.clone();
        let sql = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}';
             DROP OWNED BY {name}; DROP ROLE {name};"
        );
        // As for `TestDb`: on a thread with a runtime of its own.
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
            eprintln!("could not drop test role {name}: {e}");
        }
    }
}

/// A database user that may not use `pg_trgm` (here: no `USAGE` on the
/// schema it is installed in) still migrates and starts, without the
/// trigram index, and search finds the same as with it.
#[tokio::test]
#[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
async fn without_pg_trgm_search_scans_and_still_finds() {
    // A store of another test schema installs `pg_trgm` if the database
    // lacks it.
    drop(TestDb::new().await.store().await);
    let db = TestDb::new().await;
    let role = TestRole::new(&db).await;
    let installed_in: String = db
        .admin
        .query_one(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    let store = PostgresStore::connect(&db.url_of(&role.url()), Some(db.schema.clone()), TIMEOUT)
        .await
        .expect("a user without pg_trgm starts");
    assert!(db.has("messages_search_order").await);
    // Every role may use `public`; anywhere else this one may not.
    if installed_in != "public" {
        assert!(!db.has(TRIGRAM_INDEX).await, "pg_trgm is in {installed_in}");
    }
    check_search(&store).await;
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
