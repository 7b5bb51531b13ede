//! Harness for the end-to-end tests: spawns the real `chat-server` binary and
//! talks to it over the wire (WebSocket JSON frames, raw HTTP/1.1).
//!
//! Tests deliberately use `serde_json::Value` rather than the server's own
//! types, so they check what is on the wire, not what our structs serialise to.
//!
//! Every test starts its own server process on an ephemeral port with a fresh
//! temporary data directory, so tests can run in parallel (nextest).

// Each test binary uses a different subset of the harness.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub mod cluster;
pub mod nodes;
pub mod room;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long we wait for any single frame. Generous on purpose: the suite must
/// pass on a loaded 2-core machine, and a correct server answers in
/// milliseconds, so this only bounds how long a broken server hangs a test.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the binary may take from spawn to printing its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The line the server prints once bound (printed by main.rs), followed by
/// `http://ADDR`, or `https://ADDR` with TLS.
const LISTENING_PREFIX: &str = "chat-server listening on ";

/// Flags that lift the per-connection send rate limit, for tests that need
/// many messages in a room quickly and are not about rate limiting.
pub const NO_RATE_LIMIT: &[&str] = &["--send-rate", "100000", "--send-burst", "100000"];

// ---------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------

/// A running `chat-server` process and its data dir (a temp dir, removed
/// when the handle is dropped; the process is killed first).
pub struct Server {
    pub addr: SocketAddr,
    child: Child,
    args: Vec<String>,
    data_dir: TempDir,
    /// Everything the current process wrote to stderr, for failure messages.
    stderr: Arc<Mutex<String>>,
}

/// A server that exited before printing its listening line.
#[derive(Debug)]
pub struct StartFailure {
    pub status: ExitStatus,
    pub stderr: String,
}

/// A running child process plus the captured stderr, before we know its address.
struct Spawned {
    child: Child,
    stderr: Arc<Mutex<String>>,
    /// The thread copying the child's stderr into `stderr`; it ends at the
    /// pipe's end, which may come after the child's exit is seen.
    stderr_reader: std::thread::JoinHandle<()>,
    addr: Result<SocketAddr, String>,
}

impl Spawned {
    /// Waits for the child to exit (it did not start), then for all it
    /// wrote to stderr: reading the copy as soon as the exit is seen raced
    /// the reader thread and sometimes found it empty.
    fn failure(mut self, what: &str) -> StartFailure {
        let status = wait_with_timeout(&mut self.child, START_TIMEOUT)
            .unwrap_or_else(|| panic!("{what} neither started nor exited"));
        let _ = self.stderr_reader.join();
        let stderr = self.stderr.lock().unwrap().clone();
        StartFailure { status, stderr }
    }
}

impl Server {
    /// Starts the binary on `127.0.0.1:0` with a fresh data dir plus `args`.
    pub fn start(args: &[&str]) -> Server {
        let data_dir = tempfile::tempdir().expect("create temp data dir");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let spawned = spawn(data_dir.path(), &args);
        Server::from_spawned(spawned, args, data_dir)
    }

    /// [`Server::start`] with the process's file limit (`RLIMIT_NOFILE`)
    /// at `files`: running out of descriptors is an attacker's first aim.
    pub fn start_with_file_limit(files: u64, args: &[&str]) -> Server {
        use std::os::unix::process::CommandExt;
        let data_dir = tempfile::tempdir().expect("create temp data dir");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let spawned = spawn_with(data_dir.path(), &args, |command| {
            let limit = libc::rlimit {
                rlim_cur: files,
                rlim_max: files,
            };
            // SAFETY: setrlimit is async-signal-safe and touches only the
            // child, between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        });
        Server::from_spawned(spawned, args, data_dir)
    }

    fn from_spawned(mut spawned: Spawned, args: Vec<String>, data_dir: TempDir) -> Server {
        match spawned.addr {
            Ok(addr) => Server {
                addr,
                child: spawned.child,
                args,
                data_dir,
                stderr: spawned.stderr,
            },
            Err(why) => {
                let _ = spawned.child.kill();
                let status = spawned.child.wait().ok();
                panic!(
                    "chat-server did not start: {why}; exit status {status:?}; stderr:\n{}",
                    spawned.stderr.lock().unwrap()
                );
            }
        }
    }

    /// Starts the binary with `args`, which must make it refuse to start;
    /// returns how it failed.
    pub fn start_failure(args: &[&str]) -> StartFailure {
        let data_dir = tempfile::tempdir().expect("create temp data dir");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let mut spawned = spawn(data_dir.path(), &args);
        if let Ok(addr) = spawned.addr {
            let _ = spawned.child.kill();
            let _ = spawned.child.wait();
            panic!("chat-server started on {addr} with {args:?}; expected a refusal");
        }
        spawned.failure("chat-server")
    }

    /// Tries to start a second process on this server's data dir (used to
    /// check that two servers refuse to share one). Returns the failure, or
    /// the running server's address if it (wrongly) started.
    pub fn try_start_another_on_same_dir(&self) -> Result<SocketAddr, StartFailure> {
        let mut spawned = spawn(self.data_dir.path(), &self.args);
        match spawned.addr {
            Ok(addr) => {
                // Do not leave a stray process behind if the server misbehaves.
                let _ = spawned.child.kill();
                let _ = spawned.child.wait();
                Ok(addr)
            }
            Err(_) => Err(spawned.failure("second server")),
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The SQLite file (DATA_DIR/chat.db).
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.path().join("chat.db")
    }

    pub fn ws_url(&self, query: &str) -> String {
        if query.is_empty() {
            format!("ws://{}/ws", self.addr)
        } else {
            format!("ws://{}/ws?{query}", self.addr)
        }
    }

    /// kill -9: the process gets no chance to flush or clean up.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL chat-server");
        self.child.wait().expect("reap chat-server");
    }

    /// Asks for a graceful shutdown.
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Asks the server to read its TLS certificate and key again.
    pub fn sighup(&self) {
        self.signal(libc::SIGHUP);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: plain kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_with_timeout(&mut self.child, timeout)
    }

    /// Starts a new process on the same data dir with the same flags. The
    /// previous process must have exited (see `kill9`, `sigterm`). The new
    /// process gets a new ephemeral port: `addr` is updated.
    pub fn restart(&mut self) {
        assert!(
            matches!(self.child.try_wait(), Ok(Some(_))),
            "restart() needs the previous process to have exited"
        );
        let mut spawned = spawn(self.data_dir.path(), &self.args);
        match spawned.addr {
            Ok(addr) => {
                self.addr = addr;
                self.child = spawned.child;
                self.stderr = spawned.stderr;
            }
            Err(why) => {
                let _ = spawned.child.kill();
                let _ = spawned.child.wait();
                panic!(
                    "chat-server did not restart: {why}; stderr:\n{}",
                    spawned.stderr.lock().unwrap()
                );
            }
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Plain `GET path` over HTTP/1.1.
    pub async fn get(&self, path: &str) -> HttpResponse {
        http_get(self.addr, path).await
    }

    /// Connects a client with `?name=` and reads its welcome.
    pub async fn client(&self, name: &str) -> Client {
        Client::connect(self, name).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Never leave a server running after its test, pass or fail.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(data_dir: &Path, args: &[String]) -> Spawned {
    spawn_with(data_dir, args, |_| {})
}

/// [`spawn`], with `configure` applied to the command first (a resource
/// limit, say).
fn spawn_with(data_dir: &Path, args: &[String], configure: impl FnOnce(&mut Command)) -> Spawned {
    // A test may choose its own address (say, every interface).
    let listen = if args.iter().any(|a| a == "--listen") {
        Vec::new()
    } else {
        vec!["--listen", "127.0.0.1:0"]
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    command
        .args(listen)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    configure(&mut command);
    let mut child = command.spawn().expect("spawn chat-server binary");

    // Forward stderr to the test's output (shown when a test fails) and keep
    // a copy for assertions. Draining it also keeps the child from blocking
    // on a full pipe.
    let stderr = Arc::new(Mutex::new(String::new()));
    let stderr_reader;
    {
        let pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                eprintln!("[chat-server] {line}");
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
    }

    // Read stdout on a thread until the listening line, then keep draining it.
    let (tx, rx) = mpsc::channel::<Result<SocketAddr, String>>();
    {
        let pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(pipe).lines();
            let mut tx = Some(tx);
            while let Some(Ok(line)) = lines.next() {
                let url = line.strip_prefix(LISTENING_PREFIX);
                let addr = url.and_then(|u| {
                    u.strip_prefix("http://")
                        .or_else(|| u.strip_prefix("https://"))
                });
                match (tx.take(), addr) {
                    (Some(tx), Some(rest)) => {
                        let parsed = rest
                            .trim()
                            .trim_end_matches('/')
                            .parse::<SocketAddr>()
                            .map_err(|e| format!("bad listening line {line:?}: {e}"));
                        let _ = tx.send(parsed);
                    }
                    (keep, _) => {
                        eprintln!("[chat-server stdout] {line}");
                        tx = keep;
                    }
                }
            }
            if let Some(tx) = tx {
                let _ = tx.send(Err("stdout closed before the listening line".into()));
            }
        });
    }

    let addr = rx
        .recv_timeout(START_TIMEOUT)
        .unwrap_or_else(|_| Err(format!("no listening line within {START_TIMEOUT:?}")));
    Spawned {
        child,
        stderr,
        stderr_reader,
        addr,
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// A TCP connection to `addr` from the local IPv4 address `from` (all of
/// 127/8 is loopback on Linux, so each test client can be an address of
/// its own for the server's per-address limits).
pub async fn tcp_connect_from(
    addr: SocketAddr,
    from: std::net::IpAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// A tiny HTTP/1.1 GET over a raw TcpStream: enough for /healthz, /readyz and
/// /metrics without pulling an HTTP client into the dev-dependencies.
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_request(addr, "GET", path, &[], None).await
}

/// Any HTTP/1.1 request over a raw TcpStream: `method path`, extra header
/// lines, and a JSON body if given.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> HttpResponse {
    let fut = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect for HTTP");
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        } else {
            request.push_str("Content-Length: 0\r\n\r\n");
        }
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write HTTP request");
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .expect("read HTTP response");
        raw
    };
    let raw = tokio::time::timeout(RECV_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| {
            panic!("{method} {path}: no complete response within {RECV_TIMEOUT:?}")
        });
    parse_http_response(&raw)
}

fn parse_http_response(raw: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("malformed HTTP response: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in HTTP response: {head:?}"));
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    HttpResponse {
        status,
        head: head.to_string(),
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The value of a Prometheus sample line `name{...} value` or `name value`,
/// summed over label sets; `None` if no such sample.
pub fn metric_value(metrics: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue; // a longer name with the same prefix
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

// ---------------------------------------------------------------------------
// WebSocket client
// ---------------------------------------------------------------------------

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One native-protocol connection on /ws.
pub struct Client {
    ws: Ws,
    /// The first frame the server sent.
    pub welcome: Value,
    next_ref: u64,
}

/// What ended a connection, as seen by the client.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Close(Option<u16>),
    /// TCP closed or reset without a close frame.
    Eof(String),
}

impl Client {
    /// Connects with `?name=<name>` and reads the welcome.
    pub async fn connect(server: &Server, name: &str) -> Client {
        Client::connect_url(&server.ws_url(&format!("name={name}"))).await
    }

    /// Connects without a name: the server picks one.
    pub async fn connect_anonymous(server: &Server) -> Client {
        Client::connect_url(&server.ws_url("")).await
    }

    pub async fn connect_url(url: &str) -> Client {
        Client::connect_with(url, None).await
    }

    /// Connects to `url` from the local address `from` (any of 127/8 is
    /// this machine): the connection's welcome, or the HTTP status that
    /// refused the upgrade.
    pub async fn connect_from(url: &str, from: std::net::IpAddr) -> Result<Client, u16> {
        let request = url.into_client_request().expect("a valid request");
        let host = request
            .uri()
            .authority()
            .expect("a host")
            .as_str()
            .to_owned();
        let target: SocketAddr = host.parse().expect("an IP:port URL");
        let stream = tokio::time::timeout(RECV_TIMEOUT, tcp_connect_from(target, from))
            .await
            .expect("TCP connect timed out")
            .expect("TCP connect");
        let handshake = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream));
        let ws = match tokio::time::timeout(RECV_TIMEOUT, handshake)
            .await
            .expect("WebSocket handshake timed out")
        {
            Ok((ws, _)) => ws,
            Err(tungstenite::Error::Http(response)) => return Err(response.status().as_u16()),
            Err(e) => panic!("connect to {url} from {from}: {e}"),
        };
        let mut client = Client {
            ws,
            welcome: Value::Null,
            next_ref: 1000,
        };
        let welcome = client.recv_json().await;
        assert_eq!(welcome["type"], "welcome", "first frame: {welcome}");
        client.welcome = welcome;
        Ok(client)
    }

    /// Connects with a request of our own (headers, say) and, for `wss://`,
    /// a TLS client configuration (which certificates to trust).
    pub async fn connect_with(
        request: impl IntoClientRequest + Unpin,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Client {
        let request = request.into_client_request().expect("a valid request");
        let url = request.uri().to_string();
        let connector = tls.map(tokio_tungstenite::Connector::Rustls);
        let connect =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector);
        let (ws, _response) = tokio::time::timeout(RECV_TIMEOUT, connect)
            .await
            .unwrap_or_else(|_| panic!("WebSocket connect to {url} timed out"))
            .unwrap_or_else(|e| panic!("WebSocket connect to {url} failed: {e}"));
        let mut client = Client {
            ws,
            welcome: Value::Null,
            next_ref: 1000,
        };
        let welcome = client.recv_json().await;
        assert_eq!(
            welcome["type"], "welcome",
            "first frame must be welcome: {welcome}"
        );
        client.welcome = welcome;
        client
    }

    /// The `{id, name}` the server gave this connection.
    pub fn user(&self) -> &Value {
        &self.welcome["user"]
    }

    pub fn user_id(&self) -> &str {
        self.welcome["user"]["id"]
            .as_str()
            .expect("welcome.user.id")
    }

    /// A ref no other request on this connection uses.
    pub fn fresh_ref(&mut self) -> u64 {
        self.next_ref += 1;
        self.next_ref
    }

    // -- sending ------------------------------------------------------------

    pub async fn send_json(&mut self, frame: &Value) {
        self.send_raw(&frame.to_string()).await;
    }

    /// Sends an arbitrary text frame (not necessarily JSON).
    pub async fn send_raw(&mut self, text: &str) {
        self.send_message(Message::text(text.to_owned())).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.send_message(Message::binary(bytes)).await;
    }

    async fn send_message(&mut self, msg: Message) {
        tokio::time::timeout(RECV_TIMEOUT, self.ws.send(msg))
            .await
            .expect("sending a frame timed out")
            .expect("sending a frame failed");
    }

    /// Writes many frames with a single flush, so they reach the server back to back.
    async fn feed_all(&mut self, frames: &[Value]) {
        let fut = async {
            for f in frames {
                self.ws.feed(Message::text(f.to_string())).await?;
            }
            self.ws.flush().await
        };
        tokio::time::timeout(RECV_TIMEOUT * 3, fut)
            .await
            .expect("writing frames timed out")
            .expect("writing frames failed");
    }

    // -- receiving ----------------------------------------------------------

    /// The next JSON text frame; panics on timeout, close, binary or non-JSON.
    /// WebSocket pings are answered by tungstenite while we read.
    pub async fn recv_json(&mut self) -> Value {
        loop {
            let next = tokio::time::timeout(RECV_TIMEOUT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no frame from the server within {RECV_TIMEOUT:?}"));
            match next {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str())
                        .unwrap_or_else(|e| panic!("server sent non-JSON text {t:?}: {e}"));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("expected a JSON text frame, got {other:?}"),
                Some(Err(e)) => panic!("connection error while waiting for a frame: {e}"),
                None => panic!("connection ended while waiting for a frame"),
            }
        }
    }

    /// Reads until a frame matches `pred`, skipping others (presence, typing,
    /// broadcasts we are not looking at).
    pub async fn recv_until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let frame = self.recv_json().await;
            if pred(&frame) {
                return frame;
            }
        }
    }

    /// Like `recv_until` but returns every frame read, the matching one last,
    /// so a test can check what came before it (or did not).
    pub async fn recv_all_until(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let frame = self.recv_json().await;
            let done = pred(&frame);
            seen.push(frame);
            if done {
                return seen;
            }
        }
    }

    /// The reply to the request carrying `r`.
    pub async fn recv_reply(&mut self, r: u64) -> Value {
        self.recv_until(|f| f["ref"] == r).await
    }

    /// Message broadcasts in `room` until (and including) `seq`.
    pub async fn recv_messages_through(&mut self, room: &str, seq: u64) -> Vec<Value> {
        let mut out = Vec::new();
        while out
            .last()
            .is_none_or(|m: &Value| m["seq"].as_u64() < Some(seq))
        {
            out.push(
                self.recv_until(|f| f["type"] == "message" && f["room"] == room)
                    .await,
            );
        }
        out
    }

    /// Reads until the connection ends and tells how; also returns the JSON
    /// frames that were still queued before the end.
    pub async fn recv_until_end(&mut self, timeout: Duration) -> (Vec<Value>, Ended) {
        let mut frames = Vec::new();
        let fut = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Close(frame))) => {
                        // Reading on sends the reply and sees the server
                        // close the connection: the close handshake, which
                        // the server waits for.
                        while let Some(Ok(_)) = self.ws.next().await {}
                        return Ended::Close(frame.map(|f| u16::from(f.code)));
                    }
                    Some(Ok(Message::Text(t))) => {
                        frames.push(serde_json::from_str(t.as_str()).unwrap_or(Value::Null));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(tungstenite::Error::ConnectionClosed)) | None => {
                        return Ended::Eof("stream ended".into());
                    }
                    Some(Err(e)) => return Ended::Eof(e.to_string()),
                }
            }
        };
        let ended = tokio::time::timeout(timeout, fut)
            .await
            .unwrap_or_else(|_| panic!("connection still open after {timeout:?}"));
        (frames, ended)
    }

    /// Asserts the server closes the connection with `code` (frames queued
    /// before the close frame are skipped).
    pub async fn expect_close(&mut self, code: u16) {
        let (_, ended) = self.recv_until_end(RECV_TIMEOUT * 3).await;
        assert_eq!(
            ended,
            Ended::Close(Some(code)),
            "expected close code {code}"
        );
    }

    /// Keeps reading (and so answering WebSocket pings) for `dur`, asserting
    /// the connection stays open; returns the JSON frames that arrived. Used
    /// where the behaviour is about time.
    pub async fn stay_connected_for(&mut self, dur: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + dur;
        let mut frames = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return frames, // deadline reached, still open
                Ok(Some(Ok(Message::Text(t)))) => {
                    frames.push(serde_json::from_str(t.as_str()).unwrap_or(Value::Null));
                }
                Ok(Some(Ok(Message::Close(f)))) => panic!("server closed the connection: {f:?}"),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => panic!("connection error: {e}"),
                Ok(None) => panic!("connection ended"),
            }
        }
    }

    // -- requests -----------------------------------------------------------

    /// Sends `frame` with a fresh `ref` and returns the direct reply.
    pub async fn request(&mut self, mut frame: Value) -> Value {
        let r = self.fresh_ref();
        frame["ref"] = json!(r);
        self.send_json(&frame).await;
        self.recv_reply(r).await
    }

    /// Like `request`, but appends every frame read on the way (broadcasts,
    /// presence, …) and the reply to `log`, for tests that account for
    /// everything a connection received.
    pub async fn request_logged(&mut self, mut frame: Value, log: &mut Vec<Value>) -> Value {
        let r = self.fresh_ref();
        frame["ref"] = json!(r);
        self.send_json(&frame).await;
        log.extend(self.recv_all_until(|f| f["ref"] == r).await);
        log.last().unwrap().clone()
    }

    /// Sends all `frames` back to back (one flush), each with a fresh `ref`,
    /// then collects one reply per frame. Replies are returned in request order.
    pub async fn blast(&mut self, frames: Vec<Value>) -> Vec<Value> {
        let mut refs = Vec::with_capacity(frames.len());
        let frames: Vec<Value> = frames
            .into_iter()
            .map(|mut f| {
                let r = self.fresh_ref();
                f["ref"] = json!(r);
                refs.push(r);
                f
            })
            .collect();
        self.feed_all(&frames).await;
        let mut replies: HashMap<u64, Value> = HashMap::new();
        while replies.len() < refs.len() {
            let frame = self
                .recv_until(|f| f["ref"].as_u64().is_some_and(|r| refs.contains(&r)))
                .await;
            let r = frame["ref"].as_u64().unwrap();
            assert!(
                replies.insert(r, frame).is_none(),
                "two replies for ref {r}"
            );
        }
        refs.iter().map(|r| replies.remove(r).unwrap()).collect()
    }

    /// Like `blast` but in windows of 64, reading replies between windows so
    /// neither side's buffers (nor the server's outbound queue, which also
    /// holds our own broadcasts) grow without bound.
    pub async fn pipeline(&mut self, frames: Vec<Value>) -> Vec<Value> {
        let mut replies = Vec::with_capacity(frames.len());
        let mut frames = frames.into_iter().peekable();
        while frames.peek().is_some() {
            let window: Vec<Value> = frames.by_ref().take(64).collect();
            replies.extend(self.blast(window).await);
        }
        replies
    }

    pub async fn join(&mut self, room: &str) -> Value {
        let joined = self.request(json!({"type": "join", "room": room})).await;
        assert_eq!(joined["type"], "joined", "join {room:?}: {joined}");
        joined
    }

    pub async fn join_since(&mut self, room: &str, since: u64) -> Value {
        let joined = self
            .request(json!({"type": "join", "room": room, "since": since}))
            .await;
        assert_eq!(
            joined["type"], "joined",
            "join {room:?} since {since}: {joined}"
        );
        joined
    }

    pub async fn leave(&mut self, room: &str) -> Value {
        let left = self.request(json!({"type": "leave", "room": room})).await;
        assert_eq!(left["type"], "left", "leave {room:?}: {left}");
        left
    }

    /// Sends one message and returns its ack.
    pub async fn say(&mut self, room: &str, text: &str) -> Value {
        let ack = self
            .request(json!({"type": "send", "room": room, "text": text}))
            .await;
        assert_eq!(ack["type"], "ack", "send to {room:?}: {ack}");
        ack
    }

    /// Sends one message with a client id and returns the ack.
    pub async fn say_with_id(&mut self, room: &str, text: &str, id: &str) -> Value {
        let ack = self
            .request(json!({"type": "send", "room": room, "text": text, "id": id}))
            .await;
        assert_eq!(ack["type"], "ack", "send to {room:?}: {ack}");
        ack
    }

    /// Puts `n` messages ("msg 1".."msg n") into `room` (joined) and returns their acks.
    pub async fn fill_room(&mut self, room: &str, n: usize) -> Vec<Value> {
        let frames = (1..=n)
            .map(|i| json!({"type": "send", "room": room, "text": format!("msg {i}")}))
            .collect();
        let acks = self.pipeline(frames).await;
        for ack in &acks {
            assert_eq!(ack["type"], "ack", "filling {room:?}: {ack}");
        }
        acks
    }

    pub async fn history(&mut self, mut query: Value) -> Value {
        query["type"] = json!("history");
        let reply = self.request(query).await;
        assert_eq!(reply["type"], "history", "history: {reply}");
        reply
    }

    /// Asserts the connection is usable: a ping gets its pong.
    pub async fn assert_alive(&mut self) {
        let pong = self.request(json!({"type": "ping"})).await;
        assert_eq!(pong["type"], "pong", "ping after the previous step: {pong}");
    }

    /// Sends a ping and returns every frame that arrived before its pong.
    /// Whatever the server queued to this connection before handling the
    /// ping comes first, so this shows what was pending (for "nothing else
    /// arrived" checks).
    pub async fn frames_before_pong(&mut self) -> Vec<Value> {
        let r = self.fresh_ref();
        self.send_json(&json!({"type": "ping", "ref": r})).await;
        let mut frames = self.recv_all_until(|f| f["ref"] == r).await;
        let pong = frames.pop().unwrap();
        assert_eq!(pong["type"], "pong", "{pong}");
        frames
    }

    /// Closes politely (close frame 1000) and waits for the server's answer.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(RECV_TIMEOUT, self.ws.close(None)).await;
        let _ = tokio::time::timeout(RECV_TIMEOUT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// A hand-rolled WebSocket client that never answers anything, not even
/// the server's pings (tungstenite always queues pongs, and once the server
/// has gone a failed pong write hides the close frame behind it). For
/// testing what the server does with a client that has gone silent.
pub struct SilentClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Opcodes (RFC 6455).
const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;

impl SilentClient {
    /// Upgrades with `?name=<name>` and reads the welcome.
    pub async fn connect(server: &Server, name: &str) -> (SilentClient, Value) {
        let stream = TcpStream::connect(server.addr).await.expect("connect");
        SilentClient::connect_over(stream, server.addr, name).await
    }

    /// Upgrades `stream`, a TCP connection to `addr`, with `?name=<name>`
    /// and reads the welcome.
    pub async fn connect_over(
        stream: TcpStream,
        addr: SocketAddr,
        name: &str,
    ) -> (SilentClient, Value) {
        let mut client =
            SilentClient::upgrade_over(stream, addr, &format!("/ws?name={name}")).await;
        let welcome = client.recv_json().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        (client, welcome)
    }

    /// Opens a WebSocket at `target` (path and query) over `stream`, a TCP
    /// connection to `addr`; reads nothing past the upgrade.
    pub async fn upgrade_over(
        mut stream: TcpStream,
        addr: SocketAddr,
        target: &str,
    ) -> SilentClient {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write upgrade");
        let mut client = SilentClient {
            stream,
            buf: Vec::new(),
        };
        let head_end = loop {
            if let Some(i) = client.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(client.fill().await, "connection closed during the upgrade");
        };
        let head = String::from_utf8_lossy(&client.buf[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        client.buf.drain(..head_end);
        client
    }

    /// Reads more bytes into the buffer; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(RECV_TIMEOUT, self.stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no data from the server within {RECV_TIMEOUT:?}"))
            .unwrap_or(0); // a reset ends the stream as far as we are concerned
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// The next whole frame as (opcode, payload); `None` at the end of the stream.
    async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((op, payload, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Some((op, payload));
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Sends a masked text frame, as a client must.
    pub async fn send_json(&mut self, frame: &Value) {
        let payload = frame.to_string().into_bytes();
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![0x80 | OP_TEXT];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&out).await.expect("write frame");
    }

    /// The next JSON text frame; server pings are read and ignored.
    pub async fn recv_json(&mut self) -> Value {
        loop {
            match self.next_frame().await {
                Some((OP_TEXT, payload)) => {
                    return serde_json::from_slice(&payload).expect("JSON text frame");
                }
                Some((OP_CLOSE, payload)) => {
                    panic!("closed while waiting for a frame: {payload:?}")
                }
                Some(_) => continue,
                None => panic!("connection ended while waiting for a frame"),
            }
        }
    }

    /// Reads, answering nothing, until the close frame or the end of the stream.
    pub async fn recv_until_end(&mut self, timeout: Duration) -> Ended {
        let fut = async {
            loop {
                match self.next_frame().await {
                    Some((OP_CLOSE, payload)) => {
                        let code = (payload.len() >= 2)
                            .then(|| u16::from_be_bytes([payload[0], payload[1]]));
                        return Ended::Close(code);
                    }
                    Some(_) => continue,
                    None => return Ended::Eof("stream ended".into()),
                }
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .unwrap_or_else(|_| panic!("connection still open after {timeout:?}"))
    }
}

/// Parses one frame at the start of `buf`: (opcode, unmasked payload, bytes used).
fn parse_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().unwrap()) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().unwrap()) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let mask: Option<[u8; 4]> = if masked {
        let m = buf.get(at..at + 4)?.try_into().unwrap();
        at += 4;
        Some(m)
    } else {
        None
    };
    let mut payload = buf.get(at..at + len)?.to_vec();
    if let Some(m) = mask {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= m[i % 4]);
    }
    Some((b0 & 0x0f, payload, at + len))
}

/// Connecting must be refused at the upgrade: returns the HTTP status.
pub async fn upgrade_status(url: &str) -> u16 {
    upgrade_refusal(url, None).await.0
}

/// Like [`upgrade_status`] with a request of our own and, for `wss://`, a
/// TLS client configuration; returns the status and the response body
/// (101 and nothing if the upgrade went through).
pub async fn upgrade_refusal(
    request: impl IntoClientRequest + Unpin,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> (u16, String) {
    let request = request.into_client_request().expect("a valid request");
    let url = request.uri().to_string();
    let connector = tls.map(tokio_tungstenite::Connector::Rustls);
    let connect = tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector);
    match tokio::time::timeout(RECV_TIMEOUT, connect)
        .await
        .unwrap_or_else(|_| panic!("WebSocket connect to {url} timed out"))
    {
        Ok(_) => (101, String::new()),
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp.body().as_deref().unwrap_or_default();
            (
                resp.status().as_u16(),
                String::from_utf8_lossy(body).into_owned(),
            )
        }
        Err(e) => panic!("connect to {url}: unexpected error {e}"),
    }
}

// ---------------------------------------------------------------------------
// Assertions on frames
// ---------------------------------------------------------------------------

/// Asserts `frame` is an error with `code`, and carries `r` as its ref
/// (`None`: no ref field at all).
pub fn assert_error(frame: &Value, code: &str, r: Option<&Value>) {
    assert_eq!(frame["type"], "error", "expected error {code}, got {frame}");
    assert_eq!(frame["code"], code, "wrong error code in {frame}");
    assert!(
        frame["message"].is_string(),
        "error without message: {frame}"
    );
    match r {
        Some(r) => assert_eq!(&frame["ref"], r, "error must echo the ref: {frame}"),
        None => assert!(
            frame.get("ref").is_none(),
            "error must carry no ref: {frame}"
        ),
    }
}

/// The `seq` of every frame, in order.
pub fn seqs(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .map(|f| f["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {f}")))
        .collect()
}

/// The `seq`s of a `joined` or `history` reply's messages.
pub fn message_seqs(reply: &Value) -> Vec<u64> {
    seqs(
        reply["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("no messages in {reply}")),
    )
}

/// Milliseconds since the Unix epoch, for checking `ts` is the server's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Asserts `ts` is a plausible server timestamp (within a minute of ours).
pub fn assert_ts(ts: &Value) {
    let ts = ts
        .as_u64()
        .unwrap_or_else(|| panic!("ts must be an integer: {ts}"));
    let now = now_ms();
    assert!(
        ts.abs_diff(now) < 60_000,
        "ts {ts} is not close to now {now}"
    );
}

/// The fields that identify a stored message, for comparing a broadcast with
/// the same message inside a `joined` or `history` reply (whose entries may
/// or may not repeat `type` and `room`).
pub fn msg_core(m: &Value) -> Value {
    json!({"seq": m["seq"], "id": m["id"], "from": m["from"], "text": m["text"], "ts": m["ts"]})
}

pub fn msg_cores(messages: &[Value]) -> Vec<Value> {
    messages.iter().map(msg_core).collect()
}

impl Server {
    /// The server process's id.
    pub fn pid(&self) -> libc::pid_t {
        libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t")
    }

    /// Lines of the server's log at ERROR level so far.
    pub fn error_lines(&self) -> Vec<String> {
        self.stderr()
            .lines()
            .filter(|line| line.contains(" ERROR "))
            .map(str::to_owned)
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Socket.IO over a raw Engine.IO WebSocket
// ---------------------------------------------------------------------------

/// One Socket.IO connection spoken by hand: Engine.IO v4 opened directly on
/// WebSocket (`/socket.io/?EIO=4&transport=websocket`), namespace `/`,
/// every event emitted with an ack id so its reply comes back to it. For
/// Rust tests that need Socket.IO next to `/ws` without Node.
pub struct SocketIo {
    ws: Ws,
    /// The `welcome` event's payload.
    pub welcome: Value,
    next_ack: u64,
}

impl SocketIo {
    /// Opens the transport with `query` added to the URL, sends the
    /// namespace `CONNECT` with `auth`, and reads the welcome; `Err` with
    /// the `connect_error` message when the server refuses who connects.
    pub async fn connect(server: &Server, query: &str, auth: &Value) -> Result<SocketIo, String> {
        let mut url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.addr);
        if !query.is_empty() {
            url.push('&');
            url.push_str(query);
        }
        let (ws, _) = tokio::time::timeout(RECV_TIMEOUT, tokio_tungstenite::connect_async(&url))
            .await
            .unwrap_or_else(|_| panic!("Socket.IO connect to {url} timed out"))
            .unwrap_or_else(|e| panic!("Socket.IO connect to {url} failed: {e}"));
        let mut client = SocketIo {
            ws,
            welcome: Value::Null,
            next_ack: 0,
        };
        let open = client.recv_engine_packet().await;
        assert!(open.starts_with("0{"), "Engine.IO open packet: {open}");
        client.send_packet(&format!("0{auth}")).await;
        // Socket.IO packets: `0` CONNECT, `4` CONNECT_ERROR, `2` EVENT.
        let answer = client.recv_packet().await;
        if let Some(refusal) = answer.strip_prefix('4') {
            let refusal: Value = serde_json::from_str(refusal).expect("connect_error JSON");
            return Err(refusal["message"].as_str().unwrap_or_default().to_owned());
        }
        assert!(
            answer.starts_with("0{"),
            "namespace CONNECT answer: {answer}"
        );
        let welcome = client.recv_packet().await;
        let welcome: Value = welcome
            .strip_prefix('2')
            .and_then(|event| serde_json::from_str(event).ok())
            .unwrap_or_else(|| panic!("welcome event: {welcome}"));
        assert_eq!(welcome[0], "welcome", "first event: {welcome}");
        client.welcome = welcome[1].clone();
        Ok(client)
    }

    /// Emits `event` with `arg` and a callback; returns what the callback
    /// receives (`{error: {code, message}}` for a refusal).
    pub async fn call(&mut self, event: &str, arg: &Value) -> Value {
        self.call_raw(&json!([event, arg]).to_string()).await
    }

    /// Emits an event given as its packet's JSON text (`["event", arg]`,
    /// not necessarily what a library would write), with a callback;
    /// returns what the callback receives.
    pub async fn call_raw(&mut self, event_json: &str) -> Value {
        self.next_ack += 1;
        let ack = self.next_ack;
        self.send_packet(&format!("2{ack}{event_json}")).await;
        // `3<id>[args…]`: ACK.
        let prefix = format!("3{ack}[");
        loop {
            let packet = self.recv_packet().await;
            if let Some(rest) = packet.strip_prefix(&prefix) {
                let args: Value =
                    serde_json::from_str(&format!("[{rest}")).expect("ack arguments JSON");
                return args[0].clone();
            }
        }
    }

    /// The next event the server emits: its name and first argument
    /// (acks to earlier calls are skipped).
    pub async fn recv_event(&mut self) -> (String, Value) {
        loop {
            let packet = self.recv_packet().await;
            if let Some(event) = packet.strip_prefix('2') {
                let args: Value = serde_json::from_str(event).expect("event arguments JSON");
                let name = args[0].as_str().expect("an event name").to_owned();
                return (name, args[1].clone());
            }
        }
    }

    /// Sends a Socket.IO packet, as an Engine.IO message (`4…`).
    async fn send_packet(&mut self, packet: &str) {
        self.send_engine_packet(&format!("4{packet}")).await;
    }

    async fn send_engine_packet(&mut self, text: &str) {
        tokio::time::timeout(RECV_TIMEOUT, self.ws.send(Message::text(text.to_owned())))
            .await
            .expect("sending a packet timed out")
            .expect("sending a packet failed");
    }

    /// The next Socket.IO packet: the text of an Engine.IO message (`4…`).
    async fn recv_packet(&mut self) -> String {
        loop {
            let text = self.recv_engine_packet().await;
            if let Some(packet) = text.strip_prefix('4') {
                return packet.to_owned();
            }
        }
    }

    /// The next Engine.IO packet; pings (`2`) are answered (`3`) on the way.
    async fn recv_engine_packet(&mut self) -> String {
        loop {
            let next = tokio::time::timeout(RECV_TIMEOUT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no packet from the server within {RECV_TIMEOUT:?}"));
            let text = match next {
                Some(Ok(Message::Text(text))) => text.as_str().to_owned(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected an Engine.IO text packet, got {other:?}"),
            };
            if text == "2" {
                self.send_engine_packet("3").await;
            } else {
                return text;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Clients that fall behind (slow consumers, busy clients at shutdown)
// ---------------------------------------------------------------------------

/// A TCP connection to `addr` with a receive buffer of about `bytes` (set
/// before connecting, so the window the client advertises is small from the
/// start): once such a client stops reading, what the server sends it backs
/// up on the server's side after a few KiB, not after the megabytes an
/// auto-tuned buffer takes in.
pub async fn tcp_connect_with_receive_buffer(addr: SocketAddr, bytes: u32) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket
        .set_recv_buffer_size(bytes)
        .expect("set the receive buffer size");
    tokio::time::timeout(RECV_TIMEOUT, socket.connect(addr))
        .await
        .expect("TCP connect timed out")
        .expect("TCP connect")
}

/// Opcode of a WebSocket ping.
const OP_PING: u8 = 0x9;

impl SilentClient {
    /// Writes `count` pings of `payload` bytes (at most 125) in one go.
    pub async fn send_pings(&mut self, count: usize, payload: usize) {
        self.send_repeated(OP_PING, &vec![b'p'; payload], count)
            .await;
    }

    /// Writes `count` text frames of `text` in one go.
    pub async fn send_texts(&mut self, text: &str, count: usize) {
        self.send_repeated(OP_TEXT, text.as_bytes(), count).await;
    }

    /// Writes `count` frames of `op` and `payload`, masked as a client must.
    async fn send_repeated(&mut self, op: u8, payload: &[u8], count: usize) {
        let mask = [0x11, 0x22, 0x33, 0x44];
        let mut frame = vec![0x80 | op];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&u16::try_from(n).expect("under 64 KiB").to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        let frames = frame.repeat(count);
        tokio::time::timeout(RECV_TIMEOUT, self.stream.write_all(&frames))
            .await
            .expect("writing frames timed out")
            .expect("write frames");
    }

    /// Reads what the server sends, at most `chunk` bytes every `pause`,
    /// answering nothing, until the stream ends; panics if it has not ended
    /// within `timeout`. `Ended::Close` if the last thing on the stream was
    /// a whole close frame (with its code), else `Ended::Eof` saying what
    /// came last. A consumer slower than its rooms reads like this.
    pub async fn read_slowly_to_end(
        &mut self,
        chunk: usize,
        pause: Duration,
        timeout: Duration,
    ) -> Ended {
        let read = async {
            let mut last = None;
            let mut bytes = vec![0u8; chunk];
            let end = loop {
                while let Some((op, payload, used)) = parse_frame(&self.buf) {
                    self.buf.drain(..used);
                    last = Some((op, payload));
                }
                match self.stream.read(&mut bytes).await {
                    Ok(0) => break "end of stream".to_owned(),
                    Ok(n) => self.buf.extend_from_slice(&bytes[..n]),
                    Err(e) => break e.to_string(),
                }
                tokio::time::sleep(pause).await;
            };
            match last {
                Some((OP_CLOSE, payload)) if self.buf.is_empty() => Ended::Close(
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
                ),
                Some((op, _)) => Ended::Eof(format!(
                    "{end} after a frame of opcode {op:#x} and {} bytes of no whole frame",
                    self.buf.len()
                )),
                None => Ended::Eof(format!("{end} before any frame")),
            }
        };
        tokio::time::timeout(timeout, read)
            .await
            .unwrap_or_else(|_| panic!("connection still open after {timeout:?}"))
    }
}
