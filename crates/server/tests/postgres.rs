//! The real binary on PostgreSQL (`--database-url`): acks, history and
//! idempotency survive `kill -9`, two nodes on one database share every
//! room's numbering, and while PostgreSQL is unreachable sends are refused
//! (never acked), `/readyz` says 503, connections stay up, and the node
//! recovers by itself.
//!
//! PostgreSQL comes from `CHAT_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each test works in a schema
//! of its own, dropped at the end. The tests are `#[ignore]`d, so a bare
//! `cargo nextest run` reports them as skipped, by name; `scripts/test`
//! provides PostgreSQL and runs them, and there an unreachable one fails
//! them.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema of this test's own on the test database; dropped on drop.
struct TestDb {
    config: tokio_postgres::Config,
    schema: String,
    /// The `application_name` the test's servers connect with, so cleanup
    /// can end their connections first.
    app: String,
}

impl TestDb {
    /// Fails the test when PostgreSQL is unreachable.
    async fn new() -> TestDb {
        let url =
            std::env::var("CHAT_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_URL.into());
        let config: tokio_postgres::Config = url.parse().expect("CHAT_TEST_DATABASE_URL parses");
        let why = match tokio::time::timeout(Duration::from_secs(5), config.connect(NoTls)).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("timed out".to_owned()),
        };
        if let Some(why) = why {
            panic!(
                "PostgreSQL at {url} is unreachable ({why}); scripts/test sets up what these tests need"
            );
        }
        let schema = format!("t_{}", ulid::Ulid::new().to_string().to_lowercase());
        let app = format!("chat-test-{schema}");
        TestDb {
            config,
            schema,
            app,
        }
    }

    /// Where the test database listens.
    fn upstream(&self) -> SocketAddr {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            other => panic!("the test database must be reached over TCP, not {other:?}"),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let host = if host == "localhost" {
            "127.0.0.1".into()
        } else {
            host
        };
        format!("{host}:{port}")
            .parse()
            .expect("test database address")
    }

    /// A key=value connection string for the database at `addr` (the
    /// database itself, or a proxy in front of it).
    fn conninfo(&self, addr: SocketAddr) -> String {
        let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        let mut s = format!(
            "host={} port={} dbname={} application_name={}",
            addr.ip(),
            addr.port(),
            quote(self.config.get_dbname().unwrap_or("postgres")),
            quote(&self.app)
        );
        if let Some(user) = self.config.get_user() {
            s.push_str(&format!(" user={}", quote(user)));
        }
        if let Some(password) = self.config.get_password() {
            s.push_str(&format!(
                " password={}",
                quote(&String::from_utf8_lossy(password))
            ));
        }
        s
    }

    /// Flags for a server on this schema, reaching the database at `addr`.
    fn server_args(&self, addr: SocketAddr, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "--database-url".to_owned(),
            self.conninfo(addr),
            "--database-schema".to_owned(),
            self.schema.clone(),
        ];
        args.extend(NO_RATE_LIMIT.iter().chain(extra).map(|a| a.to_string()));
        args
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let conninfo = self.conninfo(self.upstream());
        let sql = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{}' AND pid <> pg_backend_pid(); \
             SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.app, self.schema
        );
        // Dropped inside the test's runtime, which cannot run this: use a
        // thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&conninfo, NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                client.batch_execute(&sql).await.map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test schema {}: {e}", self.schema);
        }
    }
}

fn args(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Polls `/readyz` until it answers `status`, failing after 20 s.
async fn wait_ready(server: &Server, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = server.get("/readyz").await;
        if got.status == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still answers {} ({}), not {status}",
            got.status,
            got.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn send(room: &str, i: usize) -> serde_json::Value {
    json!({"type": "send", "room": room, "text": format!("pg {i} ✓"), "id": format!("pg-{i}")})
}

#[tokio::test]
#[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
async fn history_on_postgres_survives_kill_9_and_two_nodes_share_the_numbering() {
    const ROOMS: [&str; 3] = ["alpha", "beta", "聊天室"];
    const SENT: usize = 120;
    let db = TestDb::new().await;
    let flags = db.server_args(db.upstream(), &[]);
    let mut node_a = Server::start(&args(&flags));
    assert_eq!(node_a.get("/readyz").await.status, 200);

    let mut c = node_a.client("writer").await;
    for room in ROOMS {
        c.join(room).await;
    }
    let frames: Vec<_> = (0..SENT).map(|i| send(ROOMS[i % 3], i)).collect();
    let acks = c.pipeline(frames.clone()).await;
    for (i, ack) in acks.iter().enumerate() {
        assert_eq!(ack["type"], "ack", "{ack}");
        assert_ne!(ack["duplicate"], true, "{ack}");
        assert_eq!(ack["seq"], (i / 3 + 1) as u64, "{ack}");
    }
    node_a.kill9();
    drop(c);

    node_a.restart();
    let mut reader = node_a.client("reader").await;
    for room in ROOMS {
        let joined = reader.join_since(room, 0).await;
        let n = (SENT / 3) as u64;
        assert_eq!(message_seqs(&joined), (1..=n).collect::<Vec<_>>(), "{room}");
        assert_eq!(joined["seq"], n, "{room}");
        assert_eq!(joined["complete"], true, "{room}");
    }
    let history = reader
        .history(json!({"room": ROOMS[0], "before": 3, "limit": 10}))
        .await;
    assert_eq!(message_seqs(&history), [1, 2]);
    assert_eq!(history["messages"][1]["text"], "pg 3 ✓");

    // Retries after the restart are the original acks, marked duplicate.
    let retries = reader.pipeline(frames).await;
    for (ack, retry) in acks.iter().zip(&retries) {
        assert_eq!(retry["type"], "ack", "{retry}");
        assert_eq!(retry["duplicate"], true, "{retry}");
        assert_eq!((&retry["seq"], &retry["ts"]), (&ack["seq"], &ack["ts"]));
    }

    // A second node on the same database continues the same numbering,
    // and a duplicate sent to it is found too.
    let node_b = Server::start(&args(&flags));
    let mut other = node_b.client("other").await;
    other.join(ROOMS[0]).await;
    let ack = other.say(ROOMS[0], "from node b").await;
    assert_eq!(ack["seq"], (SENT / 3 + 1) as u64, "{ack}");
    let dup = other.request(send(ROOMS[0], 0)).await;
    assert_eq!((&dup["duplicate"], &dup["seq"]), (&json!(true), &json!(1)));
    let ack = reader.say(ROOMS[0], "from node a").await;
    assert_eq!(ack["seq"], (SENT / 3 + 2) as u64, "{ack}");
    let after = other
        .history(json!({"room": ROOMS[0], "after": SENT / 3}))
        .await;
    assert_eq!(
        after["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["from node b", "from node a"]
    );
}

/// A TCP proxy in front of PostgreSQL that the test can cut: cutting
/// closes every proxied connection and refuses new ones, as an outage
/// would; restoring lets connections through again. It runs on a runtime
/// of its own, since starting a server blocks the test's thread.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("non-blocking proxy");
        let addr = listener.local_addr().expect("proxy address");
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (accept_up, accept_connections) = (up.clone(), connections.clone());
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("proxy listener");
            while let Ok((mut inbound, _)) = listener.accept().await {
                // Checked and registered under the lock `cut` takes, so no
                // connection slips through a cut.
                let mut relays = accept_connections.lock().unwrap();
                if !accept_up.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                relays.push(relay.abort_handle());
            }
        });
        Proxy {
            addr,
            up,
            connections,
            runtime: Some(runtime),
        }
    }

    fn cut(&self) {
        let mut relays = self.connections.lock().unwrap();
        self.up.store(false, Ordering::SeqCst);
        for relay in relays.drain(..) {
            relay.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// An `internal` error, the contract's answer when storage fails: not
/// stored, retry with the same id.
fn assert_refused(reply: &serde_json::Value) {
    assert_eq!(reply["type"], "error", "a send during the outage: {reply}");
    assert_eq!(reply["code"], "internal", "{reply}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
async fn while_postgres_is_unreachable_sends_are_refused_and_the_node_recovers() {
    let db = TestDb::new().await;
    let proxy = Proxy::start(db.upstream());
    let flags = db.server_args(proxy.addr, &["--store-busy-timeout-ms", "1000"]);
    let server = Server::start(&args(&flags));
    let mut c = server.client("alice").await;
    c.join("room").await;
    assert_eq!(c.say_with_id("room", "before", "m-1").await["seq"], 1);
    wait_ready(&server, 200).await;

    proxy.cut();
    let refused = c.request(send("room", 2)).await;
    assert_refused(&refused);
    wait_ready(&server, 503).await;
    // The connection is still up and serving; sends keep being refused.
    c.assert_alive().await;
    let refused = c.request(send("room", 3)).await;
    assert_refused(&refused);

    proxy.restore();
    wait_ready(&server, 200).await;
    // Nothing refused was stored: the retries are new and gapless.
    for (i, seq) in [(2, 2), (3, 3)] {
        let ack = c.request(send("room", i)).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        assert_eq!(ack["seq"], seq, "{ack}");
        assert_ne!(ack["duplicate"], true, "{ack}");
    }
    let mut reader = server.client("bob").await;
    let joined = reader.join_since("room", 0).await;
    assert_eq!(message_seqs(&joined), [1, 2, 3]);
}

/// Start-up problems with PostgreSQL end the process with a message that
/// says what is wrong, quickly and without the password.
#[test]
fn start_up_refuses_an_unreachable_database_and_a_schema_without_a_url() {
    let run = |flags: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(flags)
            .stdin(Stdio::null())
            .output()
            .expect("run chat-server");
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(!out.status.success(), "started with {flags:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = run(&[
        "--database-url",
        "postgres://chat:secret@127.0.0.1:1/chat",
        "--store-busy-timeout-ms",
        "500",
    ]);
    assert!(
        stderr.contains("cannot connect to PostgreSQL at 127.0.0.1:1/chat"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "{stderr}");
    let stderr = run(&["--database-schema", "chat"]);
    assert!(stderr.contains("database_url"), "{stderr}");
}

/// The HTTP API on PostgreSQL: a post is sequenced with the sockets'
/// sends, a deletion leaves a tombstone, retention purges without reusing
/// a seq, and while PostgreSQL is unreachable the API answers 503.
#[tokio::test]
#[ignore = "needs PostgreSQL (CHAT_TEST_DATABASE_URL): scripts/test provides it"]
async fn the_api_on_postgres_publishes_deletes_purges_and_answers_503_in_an_outage() {
    let db = TestDb::new().await;
    let proxy = Proxy::start(db.upstream());
    let flags = db.server_args(
        proxy.addr,
        &[
            "--store-busy-timeout-ms",
            "1000",
            "--retention-messages",
            "3",
            "--retention-interval-secs",
            "1",
        ],
    );
    let server = Server::start(&args(&flags));
    let mut c = server.client("alice").await;
    c.join("room").await;
    for i in 1..=4 {
        c.request(send("room", i)).await;
    }
    let post = |text: &'static str| {
        let body = json!({"text": text, "id": text}).to_string();
        let addr = server.addr;
        async move { http_request(addr, "POST", "/api/rooms/room/messages", &[], Some(&body)).await }
    };
    let posted = post("five").await;
    assert_eq!(posted.status, 201, "{posted:?}");
    assert!(posted.body.contains("\"seq\":5"), "{posted:?}");
    c.recv_until(|f| f["seq"] == 5).await;
    let deleted = http_request(
        server.addr,
        "DELETE",
        "/api/rooms/room/messages/5",
        &[],
        None,
    )
    .await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    let frame = c.recv_until(|f| f["type"] == "deleted").await;
    assert_eq!((&frame["seq"], &frame["target"]), (&json!(6), &json!(5)));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The deletion is the room's latest entry: three entries are the
        // messages 4 and 5 and the deletion.
        let page = c.history(json!({"room": "room"})).await;
        if message_seqs(&page) == [4, 5] {
            assert_eq!(page["messages"][1]["deleted"], true);
            break;
        }
        assert!(Instant::now() < deadline, "not purged: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    proxy.cut();
    let refused = post("six").await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(
        refused.body.contains("\"code\":\"internal\""),
        "{refused:?}"
    );
    let read = http_request(server.addr, "GET", "/api/rooms/room/messages", &[], None).await;
    assert_eq!(read.status, 503, "{read:?}");
    proxy.restore();
    wait_ready(&server, 200).await;
    let posted = post("six").await;
    assert_eq!(posted.status, 201, "{posted:?}");
    assert!(posted.body.contains("\"seq\":7"), "{posted:?}");
}
