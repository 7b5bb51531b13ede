//! Hostile input, table-driven, against the real binary over real sockets.
//!
//! Each case opens a fresh hostile connection and sends something a broken
//! or malicious client would: malformed JSON, wrong types, huge numbers,
//! deep nesting, invalid UTF-8, unpaired surrogate escapes, NUL bytes,
//! keys given twice, bidi overrides and zero-width characters in names and
//! rooms (on `/ws` and Socket.IO), oversized and fragmented frames, protocol violations, and floods of
//! joins, sends, typing and pings. For each we assert the exact error code
//! (docs/protocol.md §7) or close code (§8, RFC 6455 §7.4.1) the server
//! must answer with. Meanwhile an honest client on the same server keeps
//! sending to a room and must get every ack; after each case a fresh
//! honest client must be able to connect, join, send and get its ack.
//!
//! Raw frames are written by hand ([`frame`]) so that we can send what no
//! WebSocket library would.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::JoinHandle;

/// Requests in flight at once in a flood: well under the outbound queue
/// (1024 frames).
const WINDOW: usize = 256;

/// The room the honest clients use.
const LOBBY: &str = "lobby";

// ---------------------------------------------------------------------------
// Raw frames
// ---------------------------------------------------------------------------

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;

/// A client frame: `fin`, reserved bits `rsv` (0–7), `opcode`, masked
/// unless `masked` is false, with the length the payload has.
fn raw_frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = frame_head(fin, rsv, opcode, payload.len() as u64, masked);
    let mask = [0x5a, 0x13, 0xc7, 0x81];
    if masked {
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A frame header declaring `len` payload bytes (no mask key).
fn frame_head(fin: bool, rsv: u8, opcode: u8, len: u64, masked: bool) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0x0f)];
    let mask_bit = if masked { 0x80 } else { 0 };
    match len {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    out
}

/// A whole masked frame.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(true, 0, opcode, payload, true)
}

fn text(payload: impl AsRef<[u8]>) -> Vec<u8> {
    frame(OP_TEXT, payload.as_ref())
}

/// A close frame with `code` and `reason` (raw bytes, maybe not UTF-8).
fn close(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    frame(OP_CLOSE, &payload)
}

/// `payload` split into text fragments of `size` bytes.
fn fragmented(opcode: u8, payload: &[u8], size: usize) -> Vec<u8> {
    let chunks: Vec<&[u8]> = payload.chunks(size).collect();
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let op = if i == 0 { opcode } else { OP_CONT };
        out.extend(raw_frame(i + 1 == chunks.len(), 0, op, chunk, true));
    }
    out
}

// ---------------------------------------------------------------------------
// A raw client
// ---------------------------------------------------------------------------

/// How a hostile connection ended.
#[derive(Debug, PartialEq)]
enum End {
    Close(Option<u16>),
    Eof,
}

/// A WebSocket connection we write bytes to by hand.
struct Raw {
    read: OwnedReadHalf,
    write: Option<OwnedWriteHalf>,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(server: &Server, name: &str) -> Raw {
        let addr = server.addr;
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (read, write) = stream.into_split();
        let mut raw = Raw {
            read,
            write: Some(write),
            buf: Vec::new(),
        };
        let request = format!(
            "GET /ws?name={name} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        raw.send(request.as_bytes()).await;
        let head_end = loop {
            if let Some(i) = raw.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(raw.fill().await, "connection closed during the upgrade");
        };
        let head = String::from_utf8_lossy(&raw.buf[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        raw.buf.drain(..head_end);
        let welcome = raw.recv_json().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        raw
    }

    /// Writes `bytes`. A failed write is not an error here: the server may
    /// rightly have hung up halfway through something hostile; what it said
    /// before hanging up is checked by reading.
    async fn send(&mut self, bytes: &[u8]) {
        if let Some(write) = self.write.as_mut() {
            let _ = tokio::time::timeout(RECV_TIMEOUT, write.write_all(bytes)).await;
        }
    }

    /// Sends one JSON request as a text frame.
    async fn send_json(&mut self, frame: &Value) {
        self.send(&text(frame.to_string())).await;
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout(RECV_TIMEOUT, self.read.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no data from the server within {RECV_TIMEOUT:?}"))
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// The next whole server frame (opcode, payload); `None` at the end.
    async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((op, payload, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                return Some((op, payload));
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next reply: JSON text frames other than room events
    /// (broadcasts of the honest clients' messages, presence, typing).
    async fn recv_reply(&mut self) -> Value {
        loop {
            let frame = self.recv_json().await;
            if !matches!(
                frame["type"].as_str(),
                Some("message" | "presence" | "typing")
            ) {
                return frame;
            }
        }
    }

    /// The next JSON text frame; pings and pongs are skipped.
    async fn recv_json(&mut self) -> Value {
        loop {
            match self.next_frame().await {
                Some((OP_TEXT, payload)) => {
                    return serde_json::from_slice(&payload).expect("JSON text frame");
                }
                Some((OP_CLOSE, payload)) => {
                    panic!(
                        "closed while waiting for a frame: {:?}",
                        close_code(&payload)
                    )
                }
                Some(_) => continue,
                None => panic!("connection ended while waiting for a frame"),
            }
        }
    }

    /// Reads until the close frame or the end of the stream; the JSON
    /// frames seen on the way are dropped.
    async fn end(&mut self) -> End {
        loop {
            match self.next_frame().await {
                Some((OP_CLOSE, payload)) => return End::Close(close_code(&payload)),
                Some(_) => continue,
                None => return End::Eof,
            }
        }
    }

    /// Sends `frames`, each answered by one reply, in windows of
    /// [`WINDOW`]: a window is written at once, then its replies are read.
    /// A client that writes without ever reading is rightly dropped as a
    /// slow consumer (1013, once its replies fill the outbound queue); this
    /// one reads, so every request must get its answer.
    async fn flood(&mut self, frames: Vec<Vec<u8>>) -> Vec<Value> {
        let mut out = Vec::with_capacity(frames.len());
        for window in frames.chunks(WINDOW) {
            self.send(&window.concat()).await;
            for _ in window {
                out.push(self.recv_reply().await);
            }
        }
        out
    }

    /// A JSON ping gets its pong; returns the frames that came before it.
    async fn assert_alive(&mut self) -> Vec<Value> {
        self.send_json(&json!({"type": "ping", "ref": "alive?"}))
            .await;
        let mut before = Vec::new();
        loop {
            let frame = self.recv_json().await;
            if frame["ref"] == "alive?" {
                assert_eq!(frame["type"], "pong", "{frame}");
                return before;
            }
            before.push(frame);
        }
    }
}

fn close_code(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

/// Parses one unmasked server frame at the start of `buf`.
fn parse_server_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let (len, at): (usize, usize) = match b1 & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let payload = buf.get(at..at.checked_add(len)?)?.to_vec();
    Some((b0 & 0x0f, payload, at + len))
}

// ---------------------------------------------------------------------------
// Honest clients
// ---------------------------------------------------------------------------

/// An honest client sending to the lobby every 50 ms for as long as the
/// test runs; every send must be acked.
struct Honest {
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
    task: JoinHandle<Vec<Duration>>,
}

impl Honest {
    async fn start(server: &Server) -> Honest {
        let mut client = server.client("honest").await;
        client.join(LOBBY).await;
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicU64::new(0));
        let (stop2, acks2) = (stop.clone(), acks.clone());
        let task = tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                n += 1;
                let started = Instant::now();
                let ack = client.say(LOBBY, &format!("honest {n}")).await;
                assert_eq!(ack["type"], "ack", "honest send {n}: {ack}");
                latencies.push(started.elapsed());
                acks2.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            client.assert_alive().await;
            latencies
        });
        Honest { stop, acks, task }
    }

    fn acks(&self) -> u64 {
        self.acks.load(Ordering::Relaxed)
    }

    /// Stops the sender; it must not have failed. Returns its latencies.
    async fn finish(self) -> Vec<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        self.task
            .await
            .expect("the honest client kept getting acks")
    }
}

/// A fresh honest connection joins, sends, and gets its ack.
async fn served(server: &Server, case: &str) {
    let mut client = server.client("prober").await;
    client.join(LOBBY).await;
    let ack = client.say(LOBBY, &format!("after {case}")).await;
    assert_eq!(ack["type"], "ack", "after {case}: {ack}");
    client.close().await;
}

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

/// What the server must answer a case with.
#[derive(Debug, Clone)]
enum Expect {
    /// An error frame with this code, carrying this `ref` (`None`: none);
    /// the connection stays open.
    Error(&'static str, Option<Value>),
    /// A reply of this type (the input was odd but valid); stays open.
    Reply(&'static str),
    /// A close frame with this code.
    Close(u16),
    /// The connection ends, with or without a close frame.
    Ends,
}

use Expect::*;

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    expect: Expect,
}

fn case(name: &'static str, bytes: Vec<u8>, expect: Expect) -> Case {
    Case {
        name,
        bytes,
        expect,
    }
}

/// A JSON text frame given as a string (not necessarily valid JSON).
fn raw_json(name: &'static str, frame: &str, expect: Expect) -> Case {
    case(name, text(frame), expect)
}

/// Runs every case on its own connection, checking the honest clients
/// after each; reports every wrong answer at once.
async fn run_table(server: &Server, honest: &Honest, cases: Vec<Case>) {
    let mut wrong = Vec::new();
    for Case {
        name,
        bytes,
        expect,
    } in cases
    {
        let mut hostile = Raw::connect(server, "hostile").await;
        // Sends go to a room the hostile connection has joined.
        hostile
            .send_json(&json!({"type": "join", "room": LOBBY, "ref": "j"}))
            .await;
        let joined = hostile.recv_reply().await;
        assert_eq!(joined["type"], "joined", "{name}: {joined}");
        hostile.send(&bytes).await;
        let outcome = match &expect {
            Error(code, r) => {
                let reply = hostile.recv_reply().await;
                let right = reply["type"] == "error"
                    && reply["code"] == *code
                    && reply["message"].is_string()
                    && reply.get("ref") == r.as_ref();
                hostile.assert_alive().await;
                right.then_some(()).ok_or(format!("got {reply}"))
            }
            Reply(kind) => {
                let reply = hostile.recv_reply().await;
                hostile.assert_alive().await;
                (reply["type"] == *kind)
                    .then_some(())
                    .ok_or(format!("got {reply}"))
            }
            Close(code) => {
                let end = hostile.end().await;
                (end == End::Close(Some(*code)))
                    .then_some(())
                    .ok_or(format!("got {end:?}"))
            }
            Ends => {
                // The client hangs up (half-closes) after what it sent.
                if let Some(mut write) = hostile.write.take() {
                    let _ = write.shutdown().await;
                }
                hostile.end().await;
                Ok(())
            }
        };
        if let Err(got) = outcome {
            wrong.push(format!("{name}: wanted {expect:?}, {got}"));
        }
        served(server, name).await;
        // The honest sender stops only by failing (an error or no ack).
        assert!(
            !honest.task.is_finished(),
            "the honest client failed during {name}"
        );
    }
    assert!(
        wrong.is_empty(),
        "{} case(s) answered wrongly:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Starts a server and the honest sender, runs `cases`, then checks the
/// honest sender was served throughout.
async fn check(cases: Vec<Case>) {
    let server = Server::start(&[]);
    let honest = Honest::start(&server).await;
    run_table(&server, &honest, cases).await;
    let latencies = honest.finish().await;
    assert!(!latencies.is_empty());
    served(&server, "the end").await;
}

fn deep(open: &str, close: &str, depth: usize) -> String {
    format!("{}{}", open.repeat(depth), close.repeat(depth))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_and_wrong_types() {
    check(vec![
        raw_json(
            "truncated JSON",
            r#"{"type":"send","room":"lobby""#,
            Error("bad_request", None),
        ),
        raw_json(
            "trailing garbage",
            r#"{"type":"ping","ref":1}}"#,
            Error("bad_request", None),
        ),
        raw_json(
            "single quotes",
            "{'type':'ping'}",
            Error("bad_request", None),
        ),
        raw_json("empty frame", "", Error("bad_request", None)),
        raw_json("whitespace only", " \n\t ", Error("bad_request", None)),
        raw_json(
            "NaN",
            r#"{"type":"ping","ref":NaN}"#,
            Error("bad_request", None),
        ),
        raw_json(
            "comment",
            r#"{"type":"ping"/* hi */}"#,
            Error("bad_request", None),
        ),
        raw_json(
            "room is a number",
            r#"{"type":"join","room":123,"ref":1}"#,
            Error("bad_request", Some(json!(1))),
        ),
        raw_json(
            "type is an object",
            r#"{"type":{"a":1},"ref":2}"#,
            Error("bad_request", Some(json!(2))),
        ),
        raw_json(
            "text is an array",
            r#"{"type":"send","room":"lobby","text":["hi"],"ref":3}"#,
            Error("bad_request", Some(json!(3))),
        ),
        raw_json(
            "limit is a boolean",
            r#"{"type":"history","room":"lobby","limit":true,"ref":4}"#,
            Error("bad_request", Some(json!(4))),
        ),
        raw_json(
            "id is a number",
            r#"{"type":"send","room":"lobby","text":"x","id":7,"ref":5}"#,
            Error("bad_request", Some(json!(5))),
        ),
        raw_json(
            "ref is an object",
            r#"{"type":"ping","ref":{"a":1}}"#,
            Error("bad_request", None),
        ),
        raw_json(
            "type unknown",
            r#"{"type":"sned","ref":6}"#,
            Error("unknown_type", Some(json!(6))),
        ),
        raw_json(
            "type is 60 KB",
            &format!(r#"{{"type":"{}","ref":7}}"#, "x".repeat(60_000)),
            Error("unknown_type", Some(json!(7))),
        ),
        raw_json(
            "5,000 keys",
            &format!(
                r#"{{{}"type":"ping","ref":8}}"#,
                (0..5_000)
                    .map(|i| format!(r#""k{i}":0,"#))
                    .collect::<String>()
            ),
            Reply("pong"),
        ),
        // A key twice: parsers disagree on which counts (here the last
        // did, so a `ping` to whatever reads the first was a `join`).
        raw_json(
            "type twice",
            r#"{"type":"ping","type":"join","room":"lobby","ref":9}"#,
            Error("bad_request", Some(json!(9))),
        ),
        raw_json(
            "text twice",
            r#"{"type":"send","room":"lobby","text":"a","text":"b","ref":10}"#,
            Error("bad_request", Some(json!(10))),
        ),
        raw_json(
            "room twice, one escaped",
            r#"{"type":"send","room":"lobby","r\u006fom":"other","text":"a","ref":11}"#,
            Error("bad_request", Some(json!(11))),
        ),
        raw_json(
            "a key twice deep inside",
            r#"{"type":"ping","ref":12,"x":[{"a":{"b":1,"b":2}}]}"#,
            Error("bad_request", Some(json!(12))),
        ),
        raw_json(
            "ref twice",
            r#"{"type":"ping","ref":13,"ref":14}"#,
            Error("bad_request", None),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_numbers_and_deep_nesting() {
    check(vec![
        raw_json(
            "since 1e400 (out of range)",
            r#"{"type":"join","room":"lobby","since":1e400,"ref":1}"#,
            Error("bad_request", Some(json!(1))),
        ),
        raw_json(
            "since 2^64",
            r#"{"type":"join","room":"lobby","since":18446744073709551616,"ref":2}"#,
            Error("bad_request", Some(json!(2))),
        ),
        raw_json(
            "since negative",
            r#"{"type":"join","room":"lobby","since":-9223372036854775809,"ref":3}"#,
            Error("bad_request", Some(json!(3))),
        ),
        raw_json(
            "since u64::MAX",
            r#"{"type":"join","room":"lobby","since":18446744073709551615,"ref":4}"#,
            Reply("joined"),
        ),
        raw_json(
            "before u64::MAX",
            r#"{"type":"history","room":"lobby","before":18446744073709551615,"ref":5}"#,
            Reply("history"),
        ),
        raw_json(
            "limit 10^14 (clamped)",
            r#"{"type":"history","room":"lobby","limit":99999999999999,"ref":6}"#,
            Reply("history"),
        ),
        raw_json("ref 1e308", r#"{"type":"ping","ref":1e308}"#, Reply("pong")),
        raw_json(
            "ref 30 digits",
            r#"{"type":"ping","ref":123456789012345678901234567890}"#,
            Reply("pong"),
        ),
        raw_json(
            "number of 30,000 digits",
            &format!(r#"{{"type":"ping","ref":1,"x":{}}}"#, "9".repeat(30_000)),
            Error("bad_request", Some(json!(1))),
        ),
        raw_json(
            "array nested 20,000 deep",
            &deep("[", "]", 20_000),
            Error("bad_request", None),
        ),
        raw_json(
            "object nested 5,000 deep",
            &(r#"{"a":"#.repeat(5_000) + "1" + &"}".repeat(5_000)),
            Error("bad_request", None),
        ),
        raw_json(
            "field nested 30,000 deep",
            &format!(
                r#"{{"type":"ping","ref":9,"x":{}}}"#,
                deep("[", "]", 30_000)
            ),
            Error("bad_request", Some(json!(9))),
        ),
        raw_json(
            "nested 100 deep (allowed)",
            &format!(r#"{{"type":"ping","ref":10,"x":{}}}"#, deep("[", "]", 100)),
            Reply("pong"),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_unicode_and_nul_bytes() {
    check(vec![
        // Invalid UTF-8 in a text frame is a WebSocket error (RFC 6455 §8.1).
        case(
            "invalid UTF-8 (0xff)",
            text(b"{\"type\":\"ping\",\"x\":\"\xff\xfe\"}"),
            Close(1007),
        ),
        case(
            "overlong encoding",
            text(b"{\"type\":\"ping\",\"x\":\"\xc0\xaf\"}"),
            Close(1007),
        ),
        case(
            "UTF-8 encoded surrogate",
            text(b"{\"type\":\"ping\",\"x\":\"\xed\xa0\x80\"}"),
            Close(1007),
        ),
        case(
            "truncated UTF-8 at the end",
            text(b"{\"type\":\"ping\"}\xe4\xbd"),
            Close(1007),
        ),
        // Escapes for unpaired surrogates cannot become a Rust string; the
        // frame is still well-formed JSON, so the error carries its ref.
        raw_json(
            "text \\ud800",
            r#"{"type":"send","room":"lobby","text":"\ud800","ref":1}"#,
            Error("bad_request", Some(json!(1))),
        ),
        raw_json(
            "text \\udc00 then x",
            r#"{"type":"send","room":"lobby","text":"\udc00x","ref":2}"#,
            Error("bad_request", Some(json!(2))),
        ),
        raw_json(
            "room \\ud83d",
            r#"{"type":"join","room":"\ud83d","ref":3}"#,
            Error("bad_request", Some(json!(3))),
        ),
        raw_json(
            "surrogate pair (valid)",
            r#"{"type":"send","room":"lobby","text":"\ud83d\udc4b","ref":4}"#,
            Reply("ack"),
        ),
        raw_json(
            "NUL in text",
            r#"{"type":"send","room":"lobby","text":"a\u0000b","ref":5}"#,
            Error("bad_request", Some(json!(5))),
        ),
        raw_json(
            "NUL in room",
            r#"{"type":"join","room":"lob\u0000by","ref":6}"#,
            Error("invalid_room", Some(json!(6))),
        ),
        raw_json(
            "NUL in id",
            r#"{"type":"send","room":"lobby","text":"x","id":"c\u0000","ref":7}"#,
            Error("bad_request", Some(json!(7))),
        ),
        raw_json(
            "NUL in type",
            r#"{"type":"ping\u0000","ref":8}"#,
            Error("unknown_type", Some(json!(8))),
        ),
        case(
            "raw NUL between tokens",
            text(b"{\"type\":\"ping\",\0\"ref\":9}"),
            Error("bad_request", None),
        ),
        case(
            "raw NUL inside a string",
            text(b"{\"type\":\"send\",\"room\":\"lobby\",\"text\":\"a\0b\",\"ref\":10}"),
            Error("bad_request", None),
        ),
        // Format characters (Unicode Cf) in room names: invisible, or
        // reordering what is shown (`al\u202eecila` reads `alicela`).
        raw_json(
            "bidi override in room",
            r#"{"type":"join","room":"al\u202eecila","ref":11}"#,
            Error("invalid_room", Some(json!(11))),
        ),
        raw_json(
            "zero-width space in room",
            r#"{"type":"join","room":"lob\u200bby","ref":12}"#,
            Error("invalid_room", Some(json!(12))),
        ),
        raw_json(
            "right-to-left isolate in room, on history",
            r#"{"type":"history","room":"\u2067lobby","ref":13}"#,
            Error("invalid_room", Some(json!(13))),
        ),
        raw_json(
            "byte order mark in room, on send",
            r#"{"type":"send","room":"\ufefflobby","text":"x","ref":14}"#,
            Error("invalid_room", Some(json!(14))),
        ),
        raw_json(
            "bidi override in text (kept: text is what people type)",
            r#"{"type":"send","room":"lobby","text":"\u202ereversed","ref":15}"#,
            Reply("ack"),
        ),
    ])
    .await;
}

/// Names in the upgrade URL: percent-escapes that are not UTF-8 (once
/// decoded lossily into `"\u{FFFD}\u{FFFD}"`) and invisible or reordering
/// characters are refused with 400 before any WebSocket exists; names of
/// any script, `+` and escapes that are UTF-8 still get in.
#[tokio::test]
async fn hostile_names_and_queries_are_refused_at_the_upgrade() {
    let server = Server::start(&[]);
    let mut wrong = Vec::new();
    // The query, and what the 400's body must say.
    for (query, why) in [
        ("name=%FF%FE", "UTF-8"),
        ("name=al%C0%AFice", "UTF-8"),
        ("name=ok&token=%E2%82", "UTF-8"),
        ("%FF=1&name=ok", "UTF-8"),
        ("name=al%E2%80%AEecila", "U+202E"),
        ("name=%E2%80%8Balice", "U+200B"),
        ("name=alice%E2%81%A6", "U+2066"),
        ("name=%EF%BB%BFalice", "U+FEFF"),
        ("name=ali%C2%ADce", "U+00AD"),
        ("name=a%1Bb", "U+001B"),
        ("name=alice&name=bob", "twice"),
    ] {
        let (status, body) = upgrade_refusal(server.ws_url(query), None).await;
        if status != 400 || !body.contains(why) {
            wrong.push(format!("?{query}: {status} {body:?}"));
        }
    }
    assert!(wrong.is_empty(), "wrongly answered:\n{}", wrong.join("\n"));
    for (query, name) in [
        ("name=%D7%A9%D7%9C%D7%95%D7%9D", "שלום"),
        ("name=a+b%2Bc", "a b+c"),
        ("name=%F0%9F%91%8B%F0%9F%8F%BD", "👋🏽"),
    ] {
        let client = Client::connect_url(&server.ws_url(query)).await;
        assert_eq!(client.user()["name"], name, "?{query}");
    }
}

/// The same attacks on Socket.IO: a name in the handshake's query or in
/// `auth`, a room with a format character, a key twice in an event's
/// argument; the connection is refused (`connect_error`) or the event
/// answered with the native error code.
#[tokio::test]
async fn hostile_names_rooms_and_keys_on_socket_io() {
    let server = Server::start(&[]);
    for (query, auth, why) in [
        ("name=%FF%FE", json!({}), "UTF-8"),
        ("name=ok", json!({"name": "al\u{202e}ecila"}), "U+202E"),
        ("", json!({"name": "\u{200b}alice"}), "U+200B"),
        ("name=al%E2%80%AEecila", json!({}), "U+202E"),
    ] {
        match SocketIo::connect(&server, query, &auth).await {
            Err(message) => assert!(message.contains(why), "?{query} {auth}: {message}"),
            Ok(client) => panic!("?{query} {auth} connected as {}", client.welcome["user"]),
        }
    }
    let mut client = SocketIo::connect(&server, "name=%D7%A9%D7%9C%D7%95%D7%9D", &json!({}))
        .await
        .expect("a Hebrew name connects");
    assert_eq!(client.welcome["user"]["name"], "שלום");
    for (event, code) in [
        (r#"["join","al\u202eecila"]"#, "invalid_room"),
        (
            r#"["join",{"room":"lobby","room":"secret"}]"#,
            "bad_request",
        ),
        (
            r#"["message",{"room":"lobby","content":"a","content":"b"}]"#,
            "bad_request",
        ),
        (
            r#"["history",{"room":"lobby","x":{"k":1,"k":2}}]"#,
            "bad_request",
        ),
    ] {
        let ack = client.call_raw(event).await;
        assert_eq!(ack["error"]["code"], code, "{event}: {ack}");
    }
    let joined = client.call("join", &json!("lobby")).await;
    assert_eq!(joined["room"], "lobby", "{joined}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_level_attacks() {
    let ping = br#"{"type":"ping","ref":"frag"}"#;
    // A first fragment, a ping control frame, then the rest.
    let mut with_control = Vec::new();
    with_control.extend(raw_frame(false, 0, OP_TEXT, &ping[..10], true));
    with_control.extend(frame(OP_PING, b"hi"));
    with_control.extend(raw_frame(true, 0, OP_CONT, &ping[10..], true));
    let mut utf8_split = Vec::new();
    let wave = r#"{"type":"ping","ref":"👋"}"#.as_bytes();
    let cut = wave.iter().position(|&b| b == 0xf0).expect("emoji") + 2;
    utf8_split.extend(raw_frame(false, 0, OP_TEXT, &wave[..cut], true));
    utf8_split.extend(raw_frame(true, 0, OP_CONT, &wave[cut..], true));
    let mut new_text_inside_fragments = raw_frame(false, 0, OP_TEXT, b"{\"ty", true);
    new_text_inside_fragments.extend(text(br#"{"type":"ping"}"#));
    let mut bad_utf8_fragments = raw_frame(false, 0, OP_TEXT, b"{\"type\":\"", true);
    bad_utf8_fragments.extend(raw_frame(false, 0, OP_CONT, b"\xce\xba\xe1", true));
    bad_utf8_fragments.extend(raw_frame(true, 0, OP_CONT, b"\xff\"}", true));
    check(vec![
        case(
            "binary frame",
            frame(OP_BINARY, br#"{"type":"ping"}"#),
            Close(1003),
        ),
        case(
            "fragmented binary",
            fragmented(OP_BINARY, &[7u8; 300], 100),
            Close(1003),
        ),
        case(
            "frame of 70,000 bytes",
            text(format!(r#"{{"type":"ping","x":"{}"}}"#, "a".repeat(70_000))),
            Close(1009),
        ),
        case(
            "header claiming 2^62 bytes",
            [
                frame_head(true, 0, OP_TEXT, 1 << 62, true),
                vec![1, 2, 3, 4],
            ]
            .concat(),
            Close(1009),
        ),
        case(
            "80 KiB in 4 KiB fragments",
            fragmented(
                OP_TEXT,
                format!(r#"{{"type":"ping","x":"{}"}}"#, "a".repeat(80 * 1024)).as_bytes(),
                4096,
            ),
            Close(1009),
        ),
        case(
            "valid JSON in 5-byte fragments",
            fragmented(OP_TEXT, ping, 5),
            Reply("pong"),
        ),
        case(
            "ping control frame between fragments",
            with_control,
            Reply("pong"),
        ),
        case(
            "UTF-8 character split across fragments",
            utf8_split,
            Reply("pong"),
        ),
        case(
            "garbage JSON in fragments",
            fragmented(OP_TEXT, b"{{{{ not json at all", 3),
            Error("bad_request", None),
        ),
        case(
            "invalid UTF-8 across fragments",
            bad_utf8_fragments,
            Close(1007),
        ),
        case(
            "continuation without a start",
            raw_frame(true, 0, OP_CONT, b"abc", true),
            Close(1002),
        ),
        case(
            "new text frame inside a fragmented one",
            new_text_inside_fragments,
            Close(1002),
        ),
        case(
            "fragmented ping",
            raw_frame(false, 0, OP_PING, b"x", true),
            Close(1002),
        ),
        case(
            "ping with 126 bytes",
            frame(OP_PING, &[b'p'; 126]),
            Close(1002),
        ),
        case(
            "reserved bit RSV1",
            raw_frame(true, 4, OP_TEXT, br#"{"type":"ping"}"#, true),
            Close(1002),
        ),
        case("reserved opcode 0x3", frame(0x3, b"x"), Close(1002)),
        case("reserved control opcode 0xb", frame(0xb, b"x"), Close(1002)),
        case(
            "unmasked client frame",
            raw_frame(true, 0, OP_TEXT, br#"{"type":"ping"}"#, false),
            Close(1002),
        ),
        case(
            "HTTP request after the upgrade",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Close(1002),
        ),
        case(
            "close with a 1-byte payload",
            frame(OP_CLOSE, &[3]),
            Close(1002),
        ),
        case("close with code 999", close(999, b""), Close(1002)),
        case(
            "close with code 1005 (reserved)",
            close(1005, b""),
            Close(1002),
        ),
        case("close with code 5000", close(5000, b""), Close(1002)),
        case(
            "close with an invalid UTF-8 reason",
            close(1000, b"\xff\xfe"),
            Close(1007),
        ),
        case(
            "close 1000 (answered in kind)",
            close(1000, b"bye"),
            Close(1000),
        ),
        case(
            "close 4000 (application code)",
            close(4000, b""),
            Close(4000),
        ),
        case(
            "half a frame, then the client hangs up",
            frame_head(true, 0, OP_TEXT, 100, true),
            Ends,
        ),
    ])
    .await;
}

/// The floods: many requests on one connection, read while written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods() {
    // Each flood here expects an answer to every frame; the error budget
    // (which slows floods of refused requests down) has its own test.
    let server = Server::start(&["--max-errors-per-sec", "1000000"]);
    let honest = Honest::start(&server).await;

    // 10,000 joins: the first 100 rooms, then `forbidden` (rooms per connection).
    let mut c = Raw::connect(&server, "joiner").await;
    let joins: Vec<Vec<u8>> = (0..10_000)
        .map(|i| text(json!({"type": "join", "room": format!("j{i}"), "ref": i}).to_string()))
        .collect();
    let replies = c.flood(joins).await;
    let joined = replies.iter().filter(|f| f["type"] == "joined").count();
    let forbidden = replies.iter().filter(|f| f["code"] == "forbidden").count();
    assert_eq!((joined, forbidden), (100, 9_900), "10,000 joins");
    c.assert_alive().await;
    drop(c);
    served(&server, "10,000 joins").await;

    // 2,000 sends at once: acks within the burst and the refill, the rest
    // `rate_limited`; nothing else.
    let mut c = Raw::connect(&server, "sender").await;
    c.send_json(&json!({"type": "join", "room": "flood", "ref": "j"}))
        .await;
    assert_eq!(c.recv_reply().await["type"], "joined");
    let started = Instant::now();
    let sends: Vec<Vec<u8>> = (0..2_000)
        .map(|i| text(json!({"type": "send", "room": "flood", "text": "x", "ref": i}).to_string()))
        .collect();
    // Acks and errors (our own broadcasts are skipped).
    let replies = c.flood(sends).await;
    let elapsed = started.elapsed().as_secs_f64();
    let acks = replies.iter().filter(|f| f["type"] == "ack").count();
    let limited = replies
        .iter()
        .filter(|f| f["code"] == "rate_limited")
        .count();
    assert_eq!(acks + limited, 2_000, "only acks and rate_limited");
    assert!(acks >= 40, "the burst is allowed: {acks}");
    let allowed = 40.0 + 20.0 * elapsed + 20.0;
    assert!(
        (acks as f64) <= allowed,
        "{acks} acks in {elapsed:.1} s is more than the rate allows"
    );
    c.assert_alive().await;
    drop(c);
    served(&server, "send flood").await;

    // 5,000 typing frames into the honest client's room: no answer at all
    // (the excess is dropped silently).
    let mut c = Raw::connect(&server, "typist").await;
    c.send_json(&json!({"type": "join", "room": LOBBY, "ref": "j"}))
        .await;
    assert_eq!(c.recv_reply().await["type"], "joined");
    let typing: Vec<u8> = (0..5_000)
        .flat_map(|_| text(json!({"type": "typing", "room": LOBBY}).to_string()))
        .collect();
    c.send(&typing).await;
    let before = c.assert_alive().await;
    assert!(
        before.iter().all(|f| f["type"] != "error"),
        "typing floods get no errors: {before:?}"
    );
    drop(c);
    served(&server, "typing flood").await;

    // 10,000 JSON pings: 10,000 pongs.
    let mut c = Raw::connect(&server, "pinger").await;
    let pings: Vec<Vec<u8>> = (0..10_000)
        .map(|i| text(json!({"type": "ping", "ref": i}).to_string()))
        .collect();
    let pongs = c.flood(pings).await;
    assert!(pongs.iter().all(|f| f["type"] == "pong"));
    let refs: Vec<u64> = pongs.iter().filter_map(|f| f["ref"].as_u64()).collect();
    assert_eq!(refs, (0..10_000).collect::<Vec<u64>>(), "in order");
    drop(c);
    served(&server, "ping flood").await;

    // 10,000 WebSocket ping frames: answered (pongs), connection usable.
    let mut c = Raw::connect(&server, "control-pinger").await;
    let pings: Vec<u8> = (0..10_000).flat_map(|_| frame(OP_PING, b"p")).collect();
    c.send(&pings).await;
    c.assert_alive().await;
    drop(c);
    served(&server, "WebSocket ping flood").await;

    // 10,000 malformed frames: 10,000 bad_request errors.
    let mut c = Raw::connect(&server, "garbler").await;
    let garbage: Vec<Vec<u8>> = (0..10_000).map(|_| text("{not json")).collect();
    let errors = c.flood(garbage).await;
    assert!(errors.iter().all(|f| f["code"] == "bad_request"));
    c.assert_alive().await;
    drop(c);
    served(&server, "garbage flood").await;

    // A reconnect storm: 200 connections opened and dropped at once.
    let storm = (0..200).map(|_| {
        let addr = server.addr;
        tokio::spawn(async move {
            if let Ok(mut s) = TcpStream::connect(addr).await {
                let request = format!(
                    "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                     Sec-WebSocket-Version: 13\r\n\r\n"
                );
                let _ = s.write_all(request.as_bytes()).await;
            }
        })
    });
    for task in storm.collect::<Vec<_>>() {
        let _ = task.await;
    }
    served(&server, "reconnect storm").await;

    let acks = honest.acks();
    let latencies = honest.finish().await;
    assert!(acks > 0 && !latencies.is_empty());
    served(&server, "the end").await;
}

/// With the default error budget (10 refused requests a second, bursts of
/// 100), a connection pipelining garbage gets the burst answered, then is
/// read no faster than the budget allows: the flood waits in TCP, not in
/// the server's CPU, and others are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_flood_is_read_at_the_error_budget() {
    let server = Server::start(&[]);
    let honest = Honest::start(&server).await;
    let mut c = Raw::connect(&server, "garbler").await;
    let garbage: Vec<u8> = (0..400).flat_map(|_| text("{not json")).collect();
    let started = Instant::now();
    c.send(&garbage).await;
    let window = std::time::Duration::from_secs(2);
    let mut answered = 0;
    while let Ok(reply) = tokio::time::timeout_at(
        tokio::time::Instant::from_std(started + window),
        c.recv_reply(),
    )
    .await
    {
        assert_eq!(reply["code"], "bad_request", "{reply}");
        answered += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert!(answered >= 100, "the burst is answered at once: {answered}");
    let allowed = 100.0 + 10.0 * elapsed + 10.0;
    assert!(
        (answered as f64) <= allowed,
        "{answered} errors in {elapsed:.1} s is more than the budget allows"
    );
    served(&server, "error flood").await;
    let latencies = honest.finish().await;
    assert!(!latencies.is_empty());
}

/// `/ws-echo` (for Autobahn|Testsuite, docs/conformance.md) exists only
/// with `--ws-echo`, and echoes text and binary messages.
#[tokio::test]
async fn ws_echo_only_when_asked_for() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let server = Server::start(&[]);
    let url = format!("ws://{}/ws-echo", server.addr);
    assert_eq!(upgrade_status(&url).await, 404);

    let server = Server::start(&["--ws-echo"]);
    let url = format!("ws://{}/ws-echo", server.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("upgrade /ws-echo");
    let big = "é".repeat(100_000); // over /ws's 64 KiB limit
    for message in [
        Message::text("not a chat request"),
        Message::binary(vec![0u8, 159, 146, 150]),
        Message::text(big),
    ] {
        ws.send(message.clone()).await.expect("send");
        let echo = tokio::time::timeout(RECV_TIMEOUT, ws.next())
            .await
            .expect("an echo in time")
            .expect("an echo")
            .expect("a message");
        assert_eq!(echo, message);
    }
    ws.close(None).await.expect("close");
}
