//! Harness for the client's end-to-end tests: the real `chat-server`, run
//! in-process on a real socket, which a test can stop and start again on
//! the same port and data directory to cut every client off.
//!
//! Every wait is bounded by [`WAIT`] and waits for a condition, never for a
//! fixed time, so the tests are deterministic and cannot hang.
//!
//! A server can serve TLS ([`TestServer::start_tls`]) with a self-signed
//! certificate made for the test ([`TestCert`]), which its clients trust by
//! name ([`ClientBuilder::root_certificates_pem`]), as a deployment with a
//! private CA would.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chat_client::{Backoff, Client, ClientBuilder, Event, Events, Joined, Message, RoomState};
use chat_server::config::{Config, Settings};
use chat_server::server::{Server, ServerError};
use chat_server::store::sqlite::OpenError;
use clap::Parser;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// The longest any single wait may take. Generous, because the suite must
/// pass on a loaded 2-core machine; a working client needs milliseconds.
pub const WAIT: Duration = Duration::from_secs(20);

/// Server flags lifting the per-connection send rate limit, for tests that
/// need many messages quickly and are not about rate limiting.
pub const NO_RATE_LIMIT: &[&str] = &["--send-rate", "100000", "--send-burst", "100000"];

/// A running in-process server.
pub struct TestServer {
    pub addr: SocketAddr,
    data_dir: TempDir,
    args: Vec<String>,
    running: Option<Running>,
    /// `ws`, or `wss` for a server on TLS.
    scheme: &'static str,
    /// The certificate files of a server on TLS, kept while it runs.
    _tls_files: Option<TempDir>,
}

/// A self-signed certificate (rcgen) and its key, in PEM.
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCert {
    /// A certificate for 127.0.0.1, where the test servers listen.
    pub fn loopback() -> TestCert {
        TestCert::for_names(&["127.0.0.1"])
    }

    /// A certificate for `names` (host names or IP addresses).
    pub fn for_names(names: &[&str]) -> TestCert {
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let certified = rcgen::generate_simple_self_signed(names).expect("generate a certificate");
        TestCert {
            cert_pem: certified.cert.pem(),
            key_pem: certified.signing_key.serialize_pem(),
        }
    }

    /// Writes `cert.pem` and `key.pem` into a new temporary directory.
    pub fn write(&self) -> (TempDir, std::path::PathBuf, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("a temp dir for the certificate");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert.pem");
        std::fs::write(&key, &self.key_pem).expect("write key.pem");
        (dir, cert, key)
    }
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl TestServer {
    /// Starts a server on an ephemeral loopback port with a fresh data dir.
    pub async fn start(args: &[&str]) -> TestServer {
        let data_dir = tempfile::tempdir().expect("create a temp data dir");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (addr, running) = launch("127.0.0.1:0".parse().unwrap(), data_dir.path(), &args).await;
        TestServer {
            addr,
            data_dir,
            args,
            running: Some(running),
            scheme: "ws",
            _tls_files: None,
        }
    }

    /// Starts a server that serves `wss://` only, with `cert`
    /// (`--tls-cert`, `--tls-key`); restarts keep it on TLS.
    pub async fn start_tls(cert: &TestCert, args: &[&str]) -> TestServer {
        let (dir, cert_path, key_path) = cert.write();
        let (cert_path, key_path) = (
            cert_path.display().to_string(),
            key_path.display().to_string(),
        );
        let mut all = vec![
            "--tls-cert",
            cert_path.as_str(),
            "--tls-key",
            key_path.as_str(),
        ];
        all.extend_from_slice(args);
        let mut server = TestServer::start(&all).await;
        server.scheme = "wss";
        server._tls_files = Some(dir);
        server
    }

    pub fn url(&self) -> String {
        format!("{}://{}/ws", self.scheme, self.addr)
    }

    /// Shuts the server down gracefully (pending sends acked, every
    /// connection closed with 1001) and waits until it has stopped.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop_and_wait().await;
        }
    }

    /// Starts the stopped server again on the same port and data dir.
    pub async fn restart(&mut self) {
        assert!(self.running.is_none(), "stop() the server first");
        let (_, running) = launch(self.addr, self.data_dir.path(), &self.args).await;
        self.running = Some(running);
    }

    /// While this server is stopped, runs `f` against a server on the same
    /// data dir but another port (which clients of this one do not know), so
    /// a test can change a room while those clients are certainly cut off.
    pub async fn elsewhere<F, Fut>(&self, f: F)
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        assert!(self.running.is_none(), "stop() the server first");
        let (addr, running) = launch(
            "127.0.0.1:0".parse().unwrap(),
            self.data_dir.path(),
            &self.args,
        )
        .await;
        f(format!("{}://{addr}/ws", self.scheme)).await;
        running.stop_and_wait().await;
    }
}

impl Running {
    async fn stop_and_wait(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("server stops in time")
            .expect("server task did not panic")
            .expect("server stopped cleanly");
    }
}

/// Binds and starts serving. The previous server on this port or data dir
/// may still be letting go of them (sockets closing, the data dir's lock),
/// so binding is retried until [`WAIT`] passes.
async fn launch(addr: SocketAddr, data_dir: &Path, args: &[String]) -> (SocketAddr, Running) {
    let mut argv = vec![
        "chat-server".to_owned(),
        "--listen".into(),
        addr.to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--shutdown-timeout-ms".into(),
        "3000".into(),
    ];
    argv.extend(args.iter().cloned());
    let config = Config::resolve(Settings::parse_from(argv)).expect("valid test config");
    let deadline = tokio::time::Instant::now() + WAIT;
    let server = loop {
        match Server::bind(&config, None).await {
            Ok(server) => break server,
            Err(ServerError::Bind { .. } | ServerError::Store(OpenError::InUse { .. }))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot start the server: {e}"),
        }
    };
    let addr = server.local_addr().expect("bound address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    (addr, Running { stop, task })
}

/// Reconnect quickly: tests cut connections on purpose.
pub fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        max_attempts: None,
    }
}

/// A client named `name` with fast reconnects.
pub async fn client(url: &str, name: &str) -> (Client, Events) {
    ClientBuilder::new(url)
        .name(name)
        .backoff(fast_backoff())
        .request_timeout(WAIT)
        .connect()
        .await
        .expect("connect")
}

/// A client named `name` with fast reconnects that trusts `cert` (for a
/// server on TLS; the platform's roots are trusted too).
pub async fn tls_client(url: &str, name: &str, cert: &TestCert) -> (Client, Events) {
    ClientBuilder::new(url)
        .name(name)
        .root_certificates_pem(cert.cert_pem.clone())
        .backoff(fast_backoff())
        .request_timeout(WAIT)
        .connect()
        .await
        .expect("connect over TLS")
}

/// The next event matching `want`, skipping others; panics after [`WAIT`].
pub async fn next_matching(
    events: &mut Events,
    what: &str,
    want: impl Fn(&Event) -> bool,
) -> Event {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Some(event) if want(&event) => return event,
                Some(_) => {}
                None => panic!("event stream ended while waiting for {what}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
}

/// Collects the messages of `room` from the event stream until one has
/// `seq >= last`, returning all of them (other events are skipped).
pub async fn messages_until(events: &mut Events, room: &str, last: u64) -> Vec<Message> {
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Some(Event::Message(m)) if m.room == room => {
                    let seq = m.seq;
                    got.push(m);
                    if seq >= last {
                        return;
                    }
                }
                Some(_) => {}
                None => panic!("event stream ended before seq {last} of {room}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "seq {last} of {room} did not arrive within {WAIT:?}; got {:?}",
            seqs(&got)
        )
    });
    got
}

pub fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

/// A TCP proxy in front of the server that can swallow what the server
/// says (so an ack is lost), cut every connection on demand, and hold
/// clients off (so a test can change a room while they are certainly cut
/// off, and other clients stay connected).
pub struct Proxy {
    /// `ws://` through the proxy; for a server on TLS, `wss://` + [`Proxy::addr`].
    pub url: String,
    pub addr: SocketAddr,
    swallow: watch::Sender<bool>,
    cut: watch::Sender<u64>,
    refuse: watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let url = format!("ws://{addr}/ws");
        let (swallow, _) = watch::channel(false);
        let (cut, _) = watch::channel(0u64);
        let (refuse, _) = watch::channel(false);
        let (swallow_rx, cut_rx, refuse_rx) =
            (swallow.subscribe(), cut.subscribe(), refuse.subscribe());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *refuse_rx.borrow() {
                    // Dropped: the client's attempt fails before its welcome.
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(pipe(client, server, swallow_rx.clone(), cut_rx.clone()));
            }
        });
        Proxy {
            url,
            addr,
            swallow,
            cut,
            refuse,
        }
    }

    /// Drops everything the server sends from now on, until the next cut.
    pub fn swallow_replies(&self) {
        self.swallow.send_replace(true);
    }

    /// Closes every connection through the proxy; new ones work normally.
    pub fn cut(&self) {
        self.swallow.send_replace(false);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Closes every connection through the proxy and refuses new ones
    /// until [`Proxy::release`].
    pub fn hold(&self) {
        self.refuse.send_replace(true);
        self.cut();
    }

    /// Lets connections through again.
    pub fn release(&self) {
        self.refuse.send_replace(false);
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    swallow: watch::Receiver<bool>,
    mut cut: watch::Receiver<u64>,
) {
    cut.mark_unchanged();
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = client_read.read(&mut buf).await {
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = server_read.read(&mut buf).await {
            if !*swallow.borrow() && client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
        _ = cut.changed() => {}
    }
}

/// The HMAC secret of servers started with [`TOKEN_ARGS`].
pub const JWT_SECRET: &str = "a test secret of at least 32 bytes!";

/// Server flags for token mode (anonymous connections still allowed), so
/// that users keep their id across reconnects and moderators exist.
pub const TOKEN_ARGS: &[&str] = &["--jwt-secret", JWT_SECRET, "--allow-anonymous", "true"];

/// A token for user `sub`, a moderator when `moderator` is set.
pub fn token(sub: &str, moderator: bool) -> String {
    let mut claims = serde_json::json!({
        "sub": sub,
        "name": sub,
        "exp": 4_000_000_000u64,
    });
    if moderator {
        claims["role"] = "moderator".into();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign a token")
}

/// A client holding [`token`]`(sub, moderator)`, with fast reconnects.
pub async fn user(url: &str, sub: &str, moderator: bool) -> (Client, Events) {
    ClientBuilder::new(url)
        .token(token(sub, moderator))
        .backoff(fast_backoff())
        .request_timeout(WAIT)
        .connect()
        .await
        .expect("connect with a token")
}

/// Waits until `client`'s user is a member of `room` as `rooms` lists
/// them. Memberships are stored in batches after the join is answered,
/// and a user must be stored as one before a `dm` can name them or a
/// mention can find them; panics after [`WAIT`].
pub async fn until_member(client: &Client, room: &str) {
    tokio::time::timeout(WAIT, async {
        loop {
            let rooms = client.rooms().await.expect("rooms");
            if rooms.iter().any(|r| r.room == room) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not a member of {room} within {WAIT:?}"));
}

/// One room as a client sees it: the state built from its `joined` reply
/// and every message and change event since, and the `seq`s of those
/// events in the order they came.
pub struct Follower {
    pub room: String,
    pub events: Events,
    pub state: RoomState,
    pub seqs: Vec<u64>,
    /// Every entry event, in order.
    pub entries: Vec<Event>,
}

impl Follower {
    pub fn new(events: Events, joined: &Joined) -> Follower {
        Follower {
            room: joined.room.clone(),
            events,
            state: joined.room_state(),
            seqs: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// Applies events until one matches `want`, which is returned;
    /// panics after [`WAIT`].
    pub async fn until(&mut self, what: &str, want: impl Fn(&Event) -> bool) -> Event {
        tokio::time::timeout(WAIT, async {
            loop {
                let Some(event) = self.events.recv().await else {
                    panic!("event stream ended while waiting for {what}");
                };
                self.take(&event);
                if want(&event) {
                    return event;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}; got {:?}", self.seqs))
    }

    /// Applies events until the room's entry `last` has been applied.
    pub async fn until_seq(&mut self, last: u64) {
        if self.seqs.last().is_some_and(|s| *s >= last) {
            return;
        }
        let room = self.room.clone();
        self.until(&format!("seq {last} of {room}"), |e| {
            e.room() == Some(room.as_str()) && entry_seq(e).is_some_and(|s| s >= last)
        })
        .await;
    }

    fn take(&mut self, event: &Event) {
        if event.room() != Some(self.room.as_str()) {
            return;
        }
        if let Some(seq) = entry_seq(event) {
            assert!(event.apply_to(&mut self.state));
            self.seqs.push(seq);
            self.entries.push(event.clone());
        }
    }
}

/// The `seq` of a message or change event.
pub fn entry_seq(event: &Event) -> Option<u64> {
    match event {
        Event::Message(message) => Some(message.seq),
        Event::Change(change) => Some(change.seq()),
        _ => None,
    }
}
