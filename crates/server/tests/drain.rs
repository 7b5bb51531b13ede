//! Draining a node, as a rolling restart does, through `POST
//! /api/admin/drain` and through `SIGTERM`: `/readyz` answers 503 at once,
//! even on a health checker's kept-alive connection; new connections are
//! refused; clients get 1001; every send is acked and stored, or
//! refused or left unanswered so the client sends it again; the process
//! exits 0 once its connections are gone, or at `--shutdown-timeout-ms`
//! when a client never closes.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP/1.1 connection kept alive across requests, as a balancer's
/// health checker keeps one.
struct KeepAlive {
    stream: TcpStream,
    addr: SocketAddr,
}

impl KeepAlive {
    async fn open(addr: SocketAddr) -> KeepAlive {
        let stream = TcpStream::connect(addr).await.expect("connect for HTTP");
        KeepAlive { stream, addr }
    }

    /// One request (a POST with an empty JSON body) and its answer; the
    /// connection stays open.
    async fn request(&mut self, method: &str, path: &str) -> (u16, String) {
        let addr = self.addr;
        let body = if method == "POST" {
            "Content-Type: application/json\r\nContent-Length: 0\r\n"
        } else {
            ""
        };
        let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{body}\r\n");
        let answer = async {
            self.stream
                .write_all(request.as_bytes())
                .await
                .expect("write request");
            let mut raw = Vec::new();
            let head_end = loop {
                if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let mut chunk = [0u8; 1024];
                let n = self.stream.read(&mut chunk).await.expect("read answer");
                assert!(n > 0, "the kept-alive connection was closed");
                raw.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("a Content-Length");
            while raw.len() < head_end + length {
                let mut chunk = [0u8; 1024];
                let n = self.stream.read(&mut chunk).await.expect("read body");
                assert!(n > 0, "the connection closed inside a body");
                raw.extend_from_slice(&chunk[..n]);
            }
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("a status");
            let body = String::from_utf8_lossy(&raw[head_end..head_end + length]).into_owned();
            (status, body)
        };
        tokio::time::timeout(RECV_TIMEOUT, answer)
            .await
            .expect("an answer on the kept-alive connection")
    }
}

/// Connecting is refused (the listening socket is closed), within a moment
/// of the drain's start: the accept loop drops the socket as soon as it
/// runs.
async fn assert_connect_refused(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            Err(e) => panic!("connect failed otherwise than refused: {e}"),
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "a draining server still accepts connections"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Trigger {
    Api,
    Sigterm,
}

/// The whole drain, started by `trigger`, with a health checker, three
/// readers, and a sender whose sends are in flight when it starts.
async fn drain_under_load(trigger: Trigger) {
    let mut server = Server::start(NO_RATE_LIMIT);
    let mut checker = KeepAlive::open(server.addr).await;
    assert_eq!(checker.request("GET", "/readyz").await.0, 200);

    let mut readers = Vec::new();
    for name in ["a", "b", "c"] {
        let mut c = server.client(name).await;
        c.join("r").await;
        readers.push(c);
    }
    let mut sender = server.client("sender").await;
    sender.join("r").await;
    // Read by the server before the drain: the pong proves it.
    for i in 0..30 {
        let id = format!("m{i}");
        sender
            .send_json(&json!({"type": "send", "room": "r", "text": id, "id": id, "ref": i}))
            .await;
    }
    let mut frames = sender.frames_before_pong().await;
    // In flight when the drain starts: each is acked, refused with a
    // retryable error, or left unanswered before the 1001 (the protocol's
    // "resend unacked sends by id").
    for i in 30..230 {
        let id = format!("m{i}");
        sender
            .send_json(&json!({"type": "send", "room": "r", "text": id, "id": id, "ref": i}))
            .await;
    }

    let started = Instant::now();
    match trigger {
        Trigger::Api => {
            let (status, body) = checker.request("POST", "/api/admin/drain").await;
            assert_eq!(status, 202, "{body}");
            let answer: Value = serde_json::from_str(&body).expect("a JSON answer");
            assert_eq!(answer["draining"], true, "{answer}");
            assert_eq!(answer["connections"], 4, "{answer}");
        }
        Trigger::Sigterm => {
            // The signal arrives when it arrives: until then the node is
            // still ready. The API's drain, by contrast, has begun once
            // it answered.
            server.sigterm();
            let deadline = Instant::now() + RECV_TIMEOUT;
            while checker.request("GET", "/readyz").await.0 == 200 {
                assert!(Instant::now() < deadline, "still ready after SIGTERM");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    let (status, body) = checker.request("GET", "/readyz").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: draining\n"),
        "readyz on the kept-alive connection"
    );
    assert_connect_refused(server.addr).await;
    // A second drain, and a SIGTERM during the drain, change nothing.
    let (status, _) = checker.request("POST", "/api/admin/drain").await;
    assert_eq!(status, 202, "a second drain call");
    if let Trigger::Api = trigger {
        server.sigterm();
    }

    for c in &mut readers {
        c.expect_close(1001).await;
    }
    let (rest, ended) = sender.recv_until_end(RECV_TIMEOUT).await;
    assert_eq!(ended, Ended::Close(Some(1001)));
    frames.extend(rest);
    let status = server
        .wait_exit(Duration::from_secs(10).saturating_sub(started.elapsed()))
        .expect("server still running 10 s after the drain started");
    assert!(status.success(), "exit status after the drain: {status}");

    let mut acked = BTreeSet::new();
    for frame in &frames {
        match frame["type"].as_str() {
            Some("ack") => {
                acked.insert(frame["id"].as_str().expect("ack id").to_owned());
            }
            Some("error") => {
                assert_eq!(frame["code"], "overloaded", "a retryable refusal: {frame}")
            }
            _ => {}
        }
    }
    for i in 0..30 {
        assert!(
            acked.contains(&format!("m{i}")),
            "m{i} was read before the drain and must be acked: {frames:?}"
        );
    }

    // What was acked is stored; the client sends the rest again (same
    // ids) and ends with every message exactly once.
    server.restart();
    let mut resender = server.client("sender").await;
    resender.join("r").await;
    for i in 0..230 {
        let id = format!("m{i}");
        if !acked.contains(&id) {
            resender.say_with_id("r", &id, &id).await;
        }
    }
    let mut stored: Vec<String> = Vec::new();
    let mut after = 0;
    loop {
        let page = server
            .get(&format!("/api/rooms/r/messages?after={after}&limit=200"))
            .await;
        assert_eq!(page.status, 200, "{page:?}");
        let page: Value = serde_json::from_str(&page.body).expect("a JSON page");
        let messages = page["messages"].as_array().expect("messages");
        let Some(last) = messages.last() else { break };
        after = last["seq"].as_u64().expect("seq");
        stored.extend(
            messages
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned()),
        );
    }
    let unique: BTreeSet<&String> = stored.iter().collect();
    assert_eq!(stored.len(), 230, "every send stored once: {stored:?}");
    assert_eq!(unique.len(), 230, "no send stored twice");
    for id in &acked {
        assert!(unique.contains(id), "acked {id} lost over the drain");
    }
}

#[tokio::test]
async fn drain_through_the_api() {
    drain_under_load(Trigger::Api).await;
}

#[tokio::test]
async fn drain_on_sigterm() {
    drain_under_load(Trigger::Sigterm).await;
}

#[tokio::test]
async fn a_client_that_never_closes_holds_the_drain_until_the_shutdown_timeout() {
    let mut server = Server::start(&["--shutdown-timeout-ms", "2000"]);
    // Never answers the close frame: the server waits for it.
    let (_silent, _welcome) = SilentClient::connect(&server, "silent").await;
    let answer = http_request(server.addr, "POST", "/api/admin/drain", &[], Some("")).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert!(
        server.wait_exit(Duration::from_millis(1000)).is_none(),
        "the server must wait for its connection, up to the shutdown timeout"
    );
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("server still running long after the shutdown timeout");
    assert!(status.success(), "exit status at the timeout: {status}");
    assert!(
        server
            .stderr()
            .contains("connections still open at the shutdown timeout"),
        "{}",
        server.stderr()
    );
}

#[tokio::test]
async fn a_new_websocket_during_the_drain_is_refused() {
    // A kept-alive connection can still ask for an upgrade once the
    // listening socket is closed: it gets 503, and connects elsewhere.
    let mut server = Server::start(&["--shutdown-timeout-ms", "3000"]);
    let (_silent, _) = SilentClient::connect(&server, "holder").await;
    let mut checker = KeepAlive::open(server.addr).await;
    assert_eq!(checker.request("POST", "/api/admin/drain").await.0, 202);
    let (status, body) = checker.request("GET", "/ws?name=late").await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = checker
        .request("GET", "/socket.io/?EIO=4&transport=polling")
        .await;
    assert_eq!(status, 503, "{body}");
    let _ = server.wait_exit(Duration::from_secs(10));
}
