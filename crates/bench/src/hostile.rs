//! `hostile`: what a flood of hostile clients costs honest ones.
//!
//! Three loads at once: `--idle` connections that join a room and only
//! listen (held throughout); the honest fan-out of [`Fleet`] (rooms ×
//! members, senders at `--rate`); and, in the second window only, hostile
//! clients of five kinds (`--hostile` of each), each looping as fast as the
//! server lets it:
//!
//! - **malformed**: pipelined frames that are not requests (broken JSON,
//!   wrong types, deep nesting, unpaired surrogate escapes, NUL bytes), each
//!   answered `bad_request`;
//! - **flood**: pipelined sends to a room of its own, far past the
//!   per-connection rate limit (`rate_limited`);
//! - **oversized**: a 70 KB frame (close 1009), then again;
//! - **violations**: binary frames (1003), invalid UTF-8 (1007), reserved
//!   opcodes (1002), one per connection;
//! - **storm**: connect, upgrade, read the welcome, hang up, again.
//!
//! The honest fan-out is measured twice with the same schedule: without the
//! flood, then with it. The report puts the two latency distributions side
//! by side, with what the hostile clients got back.
//!
//! ## The attackers' own CPU
//!
//! On a real deployment attackers use their own machines; here they share
//! the bench process with the honest clients whose latency is measured. On
//! the honest clients' runtime the flood took 93% of the bench's core and
//! pushed the bench's own send lag p99 from 0.17 ms to 6.6 ms, so part of
//! the honest p99 rise was the bench measuring itself. So the hostile
//! clients run on a thread of their own, with its own single-threaded
//! runtime, lowered to `SCHED_IDLE` (Linux applies a scheduling policy per
//! thread): it runs only on CPU time nothing else wants, so the honest
//! clients (and the idle ones, which stay on the main runtime) are served
//! first, and the flood is as hard as the leftover CPU allows. When the
//! server shares the machine it comes first too, so a busy server is
//! flooded less hard: the `hostile sent` row says how hard it was. Where
//! `SCHED_IDLE` is refused (or off Linux) the thread runs at normal
//! priority, with a warning, and the report says so (`hostile_sched_idle`).
//!
//! ## Source addresses
//!
//! A server's per-address limits (`--max-connections-per-ip`,
//! `--max-connects-per-ip-per-sec`) cannot tell clients apart on loopback,
//! where every connection comes from 127.0.0.1: honest and hostile clients
//! would share one budget. `--source-ips` (every scenario) binds each
//! honest and idle connection to the next address of a range,
//! `--hostile-source-ips` gives each hostile client an address of its own
//! for all its connections (client k, counted in the order above, gets the
//! k-th), so the limits see attackers apart from the honest clients, as
//! they would in production. See [`crate::source`].
//!
//! A refused connection is counted in `connect_failures`, and an upgrade
//! answered `429 Too Many Requests` (a per-address connect rate limit) in
//! `refused_429` too, a connection reset before any answer (what that
//! limit does to all but one refusal a second) in `refused_reset`. After a
//! 429, a reset or any other answer, a hostile client tries again at once,
//! as an attacker would; only after a failed TCP connect (nothing
//! listening, no port left) does it wait a little, so a dead server does
//! not make it spin.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::conn::{self, Buffers};
use crate::fanout::setup_rows;
use crate::fleet::{Fleet, LoadArgs, SetupReport, StepReport};
use crate::procstat::{self, ProcSample};
use crate::rawws;
use crate::source::{self, Cidr};
use crate::{Table, emit};

#[derive(Debug, Clone, clap::Args)]
pub struct HostileArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Honest messages a second per room (keep it under the server's
    /// per-connection send rate: the honest senders must not be limited).
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Seconds measured in each of the two windows (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Idle connections held throughout.
    #[arg(long, default_value_t = 10_000)]
    pub idle: u64,
    /// Rooms the idle connections are spread over.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_rooms: u64,
    /// Hostile clients of each of the five kinds.
    #[arg(long, default_value_t = 4)]
    pub hostile: u64,
    /// Give hostile client k the k-th address of this range (e.g.
    /// `127.2.0.0/24`; it must hold one for each of the 5 x `--hostile`
    /// clients), every connection it opens bound to it, so that a server's
    /// per-address limits can tell the attackers from the honest clients
    /// (`--source-ips`) [default: the kernel chooses, 127.0.0.1 on
    /// loopback].
    #[arg(long, value_name = "CIDR")]
    pub hostile_source_ips: Option<Cidr>,
    /// Send the hostile clients to this server instead of `--url`'s: a
    /// control run, in which the honest clients' server sees none of the
    /// flood, shows what the flood costs them through the machine alone
    /// (shared cores, the kernel's network stack) [default: `--url`].
    #[arg(long, value_name = "URL")]
    pub hostile_url: Option<String>,
}

/// What the hostile clients did and got back.
#[derive(Debug, Default)]
struct Counters {
    connects: AtomicU64,
    connect_failures: AtomicU64,
    refused_429: AtomicU64,
    refused_reset: AtomicU64,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    acks: AtomicU64,
    bad_request: AtomicU64,
    rate_limited: AtomicU64,
    other_errors: AtomicU64,
    close_1002: AtomicU64,
    close_1003: AtomicU64,
    close_1007: AtomicU64,
    close_1009: AtomicU64,
    close_1013: AtomicU64,
    close_other: AtomicU64,
    ended_without_close: AtomicU64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

#[derive(Debug, Serialize)]
pub struct HostileTotals {
    /// Connections attempted.
    pub connects: u64,
    /// Attempts that did not reach an open WebSocket, for whatever reason
    /// (`refused_429` included).
    pub connect_failures: u64,
    /// Of `connect_failures`: upgrades answered `429 Too Many Requests`
    /// (a per-address limit such as `--max-connects-per-ip-per-sec`).
    pub refused_429: u64,
    /// Of `connect_failures`: connections reset before any answer.
    pub refused_reset: u64,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub acks: u64,
    pub errors: BTreeMap<String, u64>,
    pub closes: BTreeMap<String, u64>,
}

impl Counters {
    fn totals(&self) -> HostileTotals {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let nonzero = |pairs: Vec<(&str, u64)>| {
            pairs
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| (k.to_owned(), n))
                .collect::<BTreeMap<_, _>>()
        };
        HostileTotals {
            connects: get(&self.connects),
            connect_failures: get(&self.connect_failures),
            refused_429: get(&self.refused_429),
            refused_reset: get(&self.refused_reset),
            frames_sent: get(&self.frames_sent),
            bytes_sent: get(&self.bytes_sent),
            acks: get(&self.acks),
            errors: nonzero(vec![
                ("bad_request", get(&self.bad_request)),
                ("rate_limited", get(&self.rate_limited)),
                ("other", get(&self.other_errors)),
            ]),
            closes: nonzero(vec![
                ("1002", get(&self.close_1002)),
                ("1003", get(&self.close_1003)),
                ("1007", get(&self.close_1007)),
                ("1009", get(&self.close_1009)),
                ("1013", get(&self.close_1013)),
                ("other", get(&self.close_other)),
                ("no close frame", get(&self.ended_without_close)),
            ]),
        }
    }

    fn close(&self, code: Option<u16>) {
        let counter = match code {
            Some(1002) => &self.close_1002,
            Some(1003) => &self.close_1003,
            Some(1007) => &self.close_1007,
            Some(1009) => &self.close_1009,
            Some(1013) => &self.close_1013,
            Some(_) => &self.close_other,
            None => &self.ended_without_close,
        };
        bump(counter, 1);
    }

    /// Counts a text frame from the server by what it is.
    fn reply(&self, text: &[u8]) {
        let find = |needle: &[u8]| text.windows(needle.len()).any(|w| w == needle);
        if find(br#""type":"ack""#) {
            bump(&self.acks, 1);
        } else if find(br#""type":"error""#) {
            if find(br#""code":"bad_request""#) {
                bump(&self.bad_request, 1);
            } else if find(br#""code":"rate_limited""#) {
                bump(&self.rate_limited, 1);
            } else {
                bump(&self.other_errors, 1);
            }
        }
    }
}

// --- raw WebSocket, enough to misbehave --------------------------------------

/// Where the hostile clients connect: `--hostile-url`, else the first of
/// `--url`'s list.
#[derive(Debug, Clone)]
struct Target {
    host: String,
    port: u16,
    path: String,
}

impl Target {
    fn of(url: &str) -> anyhow::Result<Target> {
        let url = url.split(',').next().unwrap_or(url).trim();
        let (host, port, path) = rawws::split_url(url)?;
        Ok(Target { host, port, path })
    }
}

/// A masked client frame.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    rawws::encode_frame(&mut out, opcode, payload, [0x1b, 0xe5, 0x72, 0x9c]);
    out
}

struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Why [`Raw::connect`] did not get a WebSocket.
#[derive(Debug)]
enum Refused {
    /// The TCP connect failed: no server, or no address or port left here.
    Connect,
    /// The upgrade was answered `429 Too Many Requests`.
    TooMany,
    /// The server reset the connection before answering.
    Reset,
    /// The upgrade was answered otherwise, or the connection ended first.
    Upgrade,
}

/// The status code of the HTTP response at the start of `head`.
fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\r').next()?;
    let mut words = line.split(|&b| b == b' ');
    if !words.next()?.starts_with(b"HTTP/") {
        return None;
    }
    std::str::from_utf8(words.next()?).ok()?.parse().ok()
}

/// What [`Raw::next`] read.
enum Read {
    Text(Vec<u8>),
    Close(Option<u16>),
    Other,
    End,
}

impl Raw {
    /// Connects from `source` (the kernel chooses when `None`) and upgrades.
    async fn connect(target: &Target, source: Option<IpAddr>) -> Result<Raw, Refused> {
        let Target { host, port, path } = target;
        let is_reset = |e: &std::io::Error| e.kind() == std::io::ErrorKind::ConnectionReset;
        // The reset can come before this side of the handshake ends.
        let mut stream = source::dial(host, *port, source).await.map_err(|e| {
            if is_reset(&e) {
                Refused::Reset
            } else {
                Refused::Connect
            }
        })?;
        let _ = stream.set_nodelay(true);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        // A server refusing at accept may close before reading the request,
        // so a failed write can still have a 429 to read behind it.
        let _ = stream.write_all(request.as_bytes()).await;
        let mut raw = Raw {
            stream,
            buf: Vec::with_capacity(4096),
        };
        let refused = |buf: &[u8]| match status_code(buf) {
            Some(429) => Refused::TooMany,
            _ => Refused::Upgrade,
        };
        let end = loop {
            if let Some(i) = raw.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match raw.fill().await {
                Ok(n) if n > 0 => {}
                Err(e) if is_reset(&e) && raw.buf.is_empty() => return Err(Refused::Reset),
                _ => return Err(refused(&raw.buf)),
            }
        };
        if status_code(&raw.buf) != Some(101) {
            return Err(refused(&raw.buf));
        }
        raw.buf.drain(..end);
        Ok(raw)
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// The next server frame.
    async fn next(&mut self) -> Read {
        loop {
            if let Some((opcode, payload, used)) = parse(&self.buf) {
                let read = match opcode {
                    0x1 => Read::Text(payload.to_vec()),
                    0x8 => Read::Close(
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
                    ),
                    _ => Read::Other,
                };
                self.buf.drain(..used);
                return read;
            }
            match self.fill().await {
                Ok(n) if n > 0 => {}
                _ => return Read::End,
            }
        }
    }
}

/// One unmasked server frame at the start of `buf`: (opcode, payload, size).
fn parse(buf: &[u8]) -> Option<(u8, &[u8], usize)> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let (len, at): (usize, usize) = match b1 & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (usize::try_from(u64::from_be_bytes(bytes)).ok()?, 10)
        }
        n => (usize::from(n), 2),
    };
    let end = at.checked_add(len)?;
    Some((b0 & 0x0f, buf.get(at..end)?, end))
}

// --- the hostile kinds --------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Kind {
    Malformed,
    Flood,
    Oversized,
    Violations,
    Storm,
}

const KINDS: [Kind; 5] = [
    Kind::Malformed,
    Kind::Flood,
    Kind::Oversized,
    Kind::Violations,
    Kind::Storm,
];

/// Frames pipelined before the replies are read: under the server's
/// outbound queue, so the hostile client is answered, not dropped as slow.
const WINDOW: usize = 200;

/// Frames that are not requests; each is answered `bad_request`.
fn malformed_frames() -> Vec<Vec<u8>> {
    let nested = format!(
        r#"{{"type":"ping","x":{}{}}}"#,
        "[".repeat(500),
        "]".repeat(500)
    );
    [
        r#"{"type":"send","room":"#.to_owned(),
        r#"{"type":{"a":1},"ref":1}"#.to_owned(),
        r#"{"type":"join","room":5,"ref":2}"#.to_owned(),
        r#"{"type":"send","room":"x","text":"\ud800","ref":3}"#.to_owned(),
        r#"{"type":"send","room":"x","text":"a\u0000b","ref":4}"#.to_owned(),
        r#"{"type":"join","room":"x","since":1e400}"#.to_owned(),
        "not json at all".to_owned(),
        nested,
    ]
    .iter()
    .map(|s| frame(0x1, s.as_bytes()))
    .collect()
}

/// How long a hostile client waits after its TCP connect failed (no server
/// listening, or no address or port left): a dead server must not make it
/// spin. After any answer, a 429 included, it tries again at once: an
/// attacker does not back off, and the server must cope.
const CONNECT_RETRY: Duration = Duration::from_millis(100);

/// One hostile client: what it does, and from where.
#[derive(Debug, Clone, Copy)]
struct Client {
    kind: Kind,
    /// Its number among the clients of its kind.
    index: u64,
    /// `--hostile-source-ips`: its address, for every connection it opens.
    source: Option<IpAddr>,
}

/// Runs one hostile client until `stop`.
async fn hostile(client: Client, target: Target, counters: Arc<Counters>, stop: CancellationToken) {
    let Client {
        kind,
        index,
        source,
    } = client;
    let malformed = malformed_frames();
    let room = format!("hostile-flood-{index}");
    let send = |i: usize| {
        frame(
            0x1,
            format!(r#"{{"type":"send","room":"{room}","text":"flood {i}","ref":{i}}}"#).as_bytes(),
        )
    };
    let oversized = frame(0x1, &vec![b'a'; 70_000]);
    let violations = [
        frame(0x2, b"binary"),
        frame(0x1, b"\xff\xfe invalid UTF-8"),
        frame(0x3, b"reserved opcode"),
    ];
    let mut round = 0usize;
    while !stop.is_cancelled() {
        round += 1;
        let attempt = async {
            bump(&counters.connects, 1);
            let mut raw = match Raw::connect(&target, source).await {
                Ok(raw) => raw,
                Err(refused) => {
                    bump(&counters.connect_failures, 1);
                    match refused {
                        Refused::Connect => tokio::time::sleep(CONNECT_RETRY).await,
                        Refused::TooMany => bump(&counters.refused_429, 1),
                        Refused::Reset => bump(&counters.refused_reset, 1),
                        Refused::Upgrade => {}
                    }
                    return;
                }
            };
            // The welcome.
            if !matches!(raw.next().await, Read::Text(_)) {
                return;
            }
            let (batch, replies): (Vec<u8>, usize) = match kind {
                Kind::Storm => return, // hang up at once
                Kind::Oversized => (oversized.clone(), 0),
                Kind::Violations => (violations[round % violations.len()].clone(), 0),
                Kind::Malformed => (
                    (0..WINDOW)
                        .flat_map(|i| malformed[i % malformed.len()].clone())
                        .collect(),
                    WINDOW,
                ),
                Kind::Flood => {
                    let join = frame(
                        0x1,
                        format!(r#"{{"type":"join","room":"{room}","ref":"j"}}"#).as_bytes(),
                    );
                    if raw.stream.write_all(&join).await.is_err() {
                        return;
                    }
                    loop {
                        match raw.next().await {
                            Read::Text(text)
                                if text.windows(15).any(|w| w == br#""type":"joined""#) =>
                            {
                                break;
                            }
                            Read::Text(_) | Read::Other => {}
                            Read::Close(_) | Read::End => return,
                        }
                    }
                    ((0..WINDOW).flat_map(send).collect(), WINDOW)
                }
            };
            // Pipelined windows until told to stop (malformed, flood), or
            // one frame and the close it earns (oversized, violations).
            loop {
                bump(&counters.frames_sent, (replies.max(1)) as u64);
                bump(&counters.bytes_sent, batch.len() as u64);
                if raw.stream.write_all(&batch).await.is_err() {
                    bump(&counters.ended_without_close, 1);
                    return;
                }
                let mut answered = 0;
                loop {
                    if replies > 0 && answered >= replies {
                        break;
                    }
                    match raw.next().await {
                        Read::Text(text) => {
                            counters.reply(&text);
                            if !text.windows(17).any(|w| w == br#""type":"message""#) {
                                answered += 1;
                            }
                        }
                        Read::Close(code) => {
                            counters.close(code);
                            return;
                        }
                        Read::Other => {}
                        Read::End => {
                            counters.close(None);
                            return;
                        }
                    }
                }
                if stop.is_cancelled() {
                    return;
                }
            }
        };
        tokio::select! {
            () = attempt => {}
            () = stop.cancelled() => {}
        }
    }
}

// --- the scenario ---------------------------------------------------------------

/// The JSON summary of a hostile run.
#[derive(Debug, Serialize)]
pub struct HostileReport {
    pub scenario: &'static str,
    pub url: String,
    pub rooms: u64,
    pub members: u64,
    pub senders_per_room: u64,
    pub honest_connections: u64,
    pub idle_connections: u64,
    pub idle_joined: u64,
    pub idle_failed: u64,
    /// Idle connections the server closed or lost while held.
    pub idle_dropped: u64,
    pub hostile_per_kind: u64,
    /// Whether the hostile clients' thread ran at `SCHED_IDLE` (else at
    /// normal priority, competing with the honest clients for the CPU).
    pub hostile_sched_idle: bool,
    /// The hostile clients' CPU seconds a second over the flood (warm-up,
    /// window and drain); not in `with_flood`'s bench CPU.
    pub hostile_cpu_fraction: Option<f64>,
    /// `--source-ips`: the honest and idle connections' source range.
    pub source_ips: Option<String>,
    /// `--hostile-source-ips`: the hostile clients' source range.
    pub hostile_source_ips: Option<String>,
    /// `--hostile-url`: where the hostile clients went, when not `url`.
    pub hostile_url: Option<String>,
    pub setup: SetupReport,
    pub without_flood: StepReport,
    pub with_flood: StepReport,
    pub hostile: HostileTotals,
    /// The honest p99 latency with the flood over the one without.
    pub p99_ratio: f64,
    pub bench_rss_kib: Option<u64>,
}

impl HostileReport {
    /// The honest load was served cleanly in both windows and no idle
    /// connection was dropped.
    pub fn clean(&self) -> bool {
        self.setup.failed == 0
            && self.idle_failed == 0
            && self.idle_dropped == 0
            && self.without_flood.clean()
            && self.with_flood.clean()
    }

    pub fn table(&self) -> String {
        let mut t = Table::new(24);
        t.row("scenario", "hostile".into());
        t.row("url", self.url.clone());
        if let Some(url) = &self.hostile_url {
            t.row(
                "hostile url",
                format!("{url} (a control run: not the honest server)"),
            );
        }
        t.row(
            "idle",
            format!(
                "{} connections held ({} joined, {} failed, {} dropped)",
                self.idle_connections, self.idle_joined, self.idle_failed, self.idle_dropped
            ),
        );
        t.row(
            "honest",
            format!(
                "{} rooms x {} members ({} sending)",
                self.rooms, self.members, self.senders_per_room
            ),
        );
        let kernel = || "chosen by the kernel".to_owned();
        t.row(
            "source addresses",
            format!(
                "honest and idle {}; hostile {}",
                self.source_ips.clone().unwrap_or_else(kernel),
                self.hostile_source_ips.clone().unwrap_or_else(kernel)
            ),
        );
        setup_rows(&self.setup, &mut t);
        t.line("  -- honest fan-out, no hostile clients --\n");
        self.without_flood.rows(&mut t);
        t.line(&format!(
            "  -- honest fan-out, {} hostile clients of each of 5 kinds --\n",
            self.hostile_per_kind
        ));
        self.with_flood.rows(&mut t);
        let h = &self.hostile;
        t.row(
            "hostile sent",
            format!(
                "{} frames, {:.1} MB, {} connections ({} refused with 429, {} reset, {} failed)",
                h.frames_sent,
                h.bytes_sent as f64 / 1e6,
                h.connects,
                h.refused_429,
                h.refused_reset,
                h.connect_failures - h.refused_429 - h.refused_reset
            ),
        );
        t.row(
            "hostile got",
            format!(
                "{} acks; errors {}; closes {}",
                h.acks,
                crate::error_counts(&h.errors),
                crate::error_counts(&h.closes)
            ),
        );
        t.row(
            "hostile thread",
            format!(
                "own runtime, {}{}",
                if self.hostile_sched_idle {
                    "SCHED_IDLE (CPU the honest clients leave)"
                } else {
                    "normal priority (SCHED_IDLE refused)"
                },
                self.hostile_cpu_fraction.map_or(String::new(), |f| format!(
                    "; {:.0}% of a core during the flood (not in the bench CPU above)",
                    f * 100.0
                ))
            ),
        );
        t.row(
            "honest p99",
            format!(
                "{:.2} ms without, {:.2} ms with the flood (x{:.2})",
                self.without_flood.latency_us.p99 as f64 / 1000.0,
                self.with_flood.latency_us.p99 as f64 / 1000.0,
                self.p99_ratio
            ),
        );
        if let Some(k) = self.bench_rss_kib {
            t.row("bench RSS", format!("{k} KiB"));
        }
        t.finish()
    }
}

/// Idle connections: join, then read (answering pings) until `stop`.
struct Idle {
    joined: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    tasks: JoinSet<()>,
}

async fn open_idle(args: &HostileArgs, stop: &CancellationToken) -> Idle {
    let common = &args.load.common;
    let permits = Arc::new(Semaphore::new(args.load.concurrency as usize));
    let timeout = Duration::from_secs(args.load.join_timeout);
    let joined = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    let (all_done_tx, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let mut tasks = JoinSet::new();
    for i in 0..args.idle {
        let url = conn::with_query(common.url_at(i as usize), "name", &format!("idle-{i}"));
        let source = common.source_ip();
        let room = format!("\"{}-idle-{}\"", common.room_prefix, i % args.idle_rooms);
        let (permits, stop) = (permits.clone(), stop.clone());
        let (joined, failed, dropped) = (joined.clone(), failed.clone(), dropped.clone());
        let done = all_done_tx.clone();
        tasks.spawn(async move {
            let opened = {
                let Ok(_permit) = permits.acquire().await else {
                    return;
                };
                conn::open(&url, Buffers::small(), source, &room, timeout).await
            };
            drop(done);
            let mut ws = match opened {
                Ok((ws, _)) => {
                    bump(&joined, 1);
                    ws
                }
                Err(_) => {
                    bump(&failed, 1);
                    return;
                }
            };
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    next = ws.next() => match next {
                        Some(Ok(_)) => {}
                        _ => {
                            if !stop.is_cancelled() {
                                bump(&dropped, 1);
                            }
                            return;
                        }
                    },
                }
            }
        });
    }
    drop(all_done_tx);
    // Every task has connected (or failed) once all senders are gone.
    let _ = all_done.recv().await;
    Idle {
        joined,
        failed,
        dropped,
        tasks,
    }
}

/// The hostile clients, in [`KINDS`] order and then by index; client k gets
/// the k-th address of `--hostile-source-ips`, which must hold one for each
/// and share none with `--source-ips`.
fn hostile_clients(args: &HostileArgs) -> anyhow::Result<Vec<Client>> {
    let total = KINDS.len() as u64 * args.hostile;
    if let Some(range) = args.hostile_source_ips {
        ensure!(
            range.size() >= u128::from(total),
            "--hostile-source-ips {range} holds {} addresses, but the {total} hostile clients \
             ({} kinds x --hostile {}) need one each",
            range.size(),
            KINDS.len(),
            args.hostile
        );
        if let Some(honest) = &args.load.common.source_ips {
            ensure!(
                !honest.range().overlaps(&range),
                "--source-ips {} and --hostile-source-ips {range} overlap: honest and hostile \
                 clients must come from different addresses",
                honest.range()
            );
        }
    }
    let mut clients = Vec::with_capacity(total as usize);
    for kind in KINDS {
        for index in 0..args.hostile {
            let k = u128::from(clients.len() as u64);
            clients.push(Client {
                kind,
                index,
                source: args.hostile_source_ips.and_then(|range| range.nth(k)),
            });
        }
    }
    Ok(clients)
}

/// Lowers the calling thread to `SCHED_IDLE`: it then runs only when a CPU
/// has nothing else to run.
#[cfg(target_os = "linux")]
fn lower_to_sched_idle() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `sched_setscheduler` only reads `param`, a valid and
    // initialised `sched_param` that outlives the call. Pid 0 is the calling
    // thread: on Linux the policy is per thread, so this lowers the hostile
    // clients' thread and not the rest of the bench.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_to_sched_idle() -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "SCHED_IDLE is Linux-only",
    ))
}

/// The hostile clients, running on a thread of their own.
struct HostileThread {
    handle: std::thread::JoinHandle<()>,
    /// Whether the thread runs at `SCHED_IDLE`.
    sched_idle: bool,
    /// Its id, for its CPU time (`None` if /proc did not say).
    tid: Option<u32>,
}

impl HostileThread {
    /// Starts every client on a new thread with its own single-threaded
    /// runtime, lowered to `SCHED_IDLE` (with a warning when refused);
    /// they run until `stop`.
    async fn start(
        clients: Vec<Client>,
        target: Target,
        counters: Arc<Counters>,
        stop: CancellationToken,
    ) -> anyhow::Result<HostileThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("the hostile clients' runtime")?;
        let (lowered_tx, lowered) = tokio::sync::oneshot::channel();
        let handle = std::thread::Builder::new()
            .name("hostile".into())
            .spawn(move || {
                // First, so that every thread the runtime starts from here
                // (its blocking pool) inherits the policy.
                let _ = lowered_tx.send((lower_to_sched_idle(), procstat::current_thread_id()));
                runtime.block_on(async move {
                    let mut tasks = JoinSet::new();
                    for client in clients {
                        tasks.spawn(hostile(
                            client,
                            target.clone(),
                            counters.clone(),
                            stop.clone(),
                        ));
                    }
                    while tasks.join_next().await.is_some() {}
                });
            })
            .context("the hostile clients' thread")?;
        let Ok((lowered, tid)) = lowered.await else {
            bail!("the hostile clients' thread ended at its start");
        };
        let sched_idle = match lowered {
            Ok(()) => true,
            Err(e) => {
                eprintln!(
                    "hostile: warning: SCHED_IDLE refused ({e}); the hostile clients run at \
                     normal priority and compete with the honest ones for the bench's CPU"
                );
                false
            }
        };
        Ok(HostileThread {
            handle,
            sched_idle,
            tid,
        })
    }

    /// The thread's CPU time so far, in clock ticks.
    fn cpu_ticks(&self) -> Option<u64> {
        procstat::thread_cpu_ticks(self.tid?).ok()
    }

    /// Waits for the thread to end (after `stop`).
    async fn join(self) -> anyhow::Result<()> {
        let handle = self.handle;
        match tokio::task::spawn_blocking(move || handle.join()).await {
            Ok(Ok(())) => Ok(()),
            _ => bail!("the hostile clients' thread panicked"),
        }
    }
}

/// Runs the scenario; `Ok(false)` when it completed but a check failed.
pub async fn run(args: HostileArgs) -> anyhow::Result<bool> {
    ensure!(args.rate > 0.0, "--rate must be positive");
    ensure!(args.duration > 0.0, "--duration must be positive");
    let load = &args.load;
    let target = Target::of(args.hostile_url.as_deref().unwrap_or(&load.common.url))?;
    let clients = hostile_clients(&args)?;
    if let Some(limit) = conn::open_files_limit() {
        let need = args.idle + load.connections() + clients.len() as u64 + 64;
        ensure!(
            need <= limit,
            "{need} file descriptors needed but `ulimit -n` is {limit}"
        );
    }
    load.common
        .note_shared_sources(args.idle + load.connections());
    let stop_idle = CancellationToken::new();
    let started = Instant::now();
    eprintln!("hostile: opening {} idle connections", args.idle);
    let mut idle = open_idle(&args, &stop_idle).await;
    eprintln!(
        "hostile: {} idle joined, {} failed in {:.1} s",
        idle.joined.load(Ordering::Relaxed),
        idle.failed.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    let mut fleet = Fleet::open(load, "hostile").await?;
    let window = Duration::from_secs_f64(args.duration);
    let without_flood = fleet.run_step(args.rate, window).await;

    let counters = Arc::new(Counters::default());
    let stop_hostile = CancellationToken::new();
    let hostiles =
        HostileThread::start(clients, target, counters.clone(), stop_hostile.clone()).await?;
    let hostile_sched_idle = hostiles.sched_idle;
    // The fleet's `bench CPU` stays the honest clients' cost.
    fleet.set_foreign_thread(hostiles.tid);
    let (flood_started, cpu_before) = (Instant::now(), hostiles.cpu_ticks());
    let with_flood = fleet.run_step(args.rate, window).await;
    let hostile_cpu_fraction = hostiles.cpu_ticks().zip(cpu_before).map(|(after, before)| {
        procstat::ticks_to_secs(after.saturating_sub(before))
            / flood_started.elapsed().as_secs_f64().max(1e-9)
    });
    stop_hostile.cancel();
    hostiles.join().await?;
    fleet.set_foreign_thread(None);

    let setup = fleet.setup.clone();
    let bench_rss_kib = ProcSample::own().ok().map(|s| s.rss_kib);
    fleet.close();
    let idle_dropped = idle.dropped.load(Ordering::Relaxed);
    stop_idle.cancel();
    while idle.tasks.join_next().await.is_some() {}
    let p99_ratio = with_flood.latency_us.p99 as f64 / (without_flood.latency_us.p99.max(1)) as f64;
    let report = HostileReport {
        scenario: "hostile",
        url: load.common.url.clone(),
        rooms: load.rooms,
        members: load.members,
        senders_per_room: load.senders,
        honest_connections: load.connections(),
        idle_connections: args.idle,
        idle_joined: idle.joined.load(Ordering::Relaxed),
        idle_failed: idle.failed.load(Ordering::Relaxed),
        idle_dropped,
        hostile_per_kind: args.hostile,
        hostile_sched_idle,
        hostile_cpu_fraction,
        source_ips: load
            .common
            .source_ips
            .as_ref()
            .map(|s| s.range().to_string()),
        hostile_source_ips: args.hostile_source_ips.map(|r| r.to_string()),
        hostile_url: args.hostile_url.clone(),
        setup,
        without_flood,
        with_flood,
        hostile: counters.totals(),
        p99_ratio,
        bench_rss_kib,
    };
    emit(&load.common, &report.table(), &report)?;
    Ok(report.clean())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: HostileArgs,
    }

    fn args(flags: &[&str]) -> Result<HostileArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("hostile").chain(flags.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn each_hostile_client_gets_its_own_address() {
        let a = args(&["--hostile", "2", "--hostile-source-ips", "127.2.0.0/28"]).unwrap();
        let clients = hostile_clients(&a).unwrap();
        assert_eq!(clients.len(), 10);
        for (k, client) in clients.iter().enumerate() {
            assert_eq!(client.source, Some(format!("127.2.0.{k}").parse().unwrap()));
            assert_eq!(client.index, k as u64 % 2);
        }
        assert!(matches!(clients[9].kind, Kind::Storm));

        let kernel = hostile_clients(&args(&["--hostile", "2"]).unwrap()).unwrap();
        assert!(kernel.iter().all(|c| c.source.is_none()));
    }

    #[test]
    fn hostile_ranges_too_small_or_shared_are_refused() {
        let small = args(&["--hostile", "4", "--hostile-source-ips", "127.2.0.0/28"]).unwrap();
        let err = hostile_clients(&small).unwrap_err().to_string();
        assert!(
            err.contains("holds 16 addresses, but the 20 hostile clients"),
            "{err}"
        );

        let shared = args(&[
            "--source-ips",
            "127.0.0.0/8",
            "--hostile-source-ips",
            "127.2.0.0/24",
        ])
        .unwrap();
        let err = hostile_clients(&shared).unwrap_err().to_string();
        assert!(err.contains("overlap"), "{err}");

        let err = args(&["--hostile-source-ips", "127.2.0.0/33"]).unwrap_err();
        assert!(err.to_string().contains("prefix length"), "{err}");
        let err = args(&["--source-ips", "nonsense"]).unwrap_err();
        assert!(err.to_string().contains("not an IP address"), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_can_lower_itself_to_sched_idle() {
        let policy = std::thread::spawn(|| {
            lower_to_sched_idle()?;
            // Field 41 of /proc/thread-self/stat, counted after the `)`
            // that ends field 2.
            let stat = std::fs::read_to_string("/proc/thread-self/stat")?;
            let after_comm = &stat[stat.rfind(')').unwrap() + 1..];
            Ok::<_, std::io::Error>(after_comm.split_whitespace().nth(41 - 3).map(str::to_owned))
        })
        .join()
        .unwrap();
        match policy {
            Ok(policy) => assert_eq!(policy.as_deref(), Some("5"), "SCHED_IDLE is 5"),
            // Some sandboxes refuse it; the bench then warns and goes on.
            Err(e) => eprintln!("SCHED_IDLE refused here: {e}"),
        }
        // Only that thread was lowered.
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 1..];
        assert_eq!(after_comm.split_whitespace().nth(41 - 3), Some("0"));
    }

    #[test]
    fn status_codes_are_read() {
        assert_eq!(
            status_code(b"HTTP/1.1 101 Switching Protocols\r\n"),
            Some(101)
        );
        assert_eq!(
            status_code(b"HTTP/1.1 429 Too Many Requests\r\nX: y\r\n\r\n"),
            Some(429)
        );
        assert_eq!(status_code(b"HTTP/1.1 429"), Some(429));
        assert_eq!(status_code(b"HTTP/1.1 42"), Some(42));
        assert_eq!(status_code(b""), None);
        assert_eq!(status_code(b"garbage here"), None);
    }

    /// A server that answers every connection with `answer` and hangs up.
    /// A server that reads a request, writes `answer` and closes; with
    /// `reset`, one that resets every connection at once instead.
    async fn serving(answer: &'static [u8], reset: bool) -> Target {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                if reset {
                    socket.set_zero_linger().unwrap();
                    continue;
                }
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(answer).await;
            }
        });
        Target {
            host: "127.0.0.1".into(),
            port,
            path: "/ws".into(),
        }
    }

    async fn answering(answer: &'static [u8]) -> Target {
        serving(answer, false).await
    }

    #[tokio::test]
    async fn refusals_are_told_apart() {
        let source = Some("127.2.0.9".parse().unwrap());
        let too_many = answering(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n\r\n").await;
        assert!(matches!(
            Raw::connect(&too_many, source).await,
            Err(Refused::TooMany)
        ));
        let other = answering(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        assert!(matches!(
            Raw::connect(&other, None).await,
            Err(Refused::Upgrade)
        ));
        let silent = answering(b"").await;
        assert!(matches!(
            Raw::connect(&silent, None).await,
            Err(Refused::Upgrade)
        ));
        let resetting = serving(b"", true).await;
        assert!(matches!(
            Raw::connect(&resetting, source).await,
            Err(Refused::Reset)
        ));

        // Nothing listens on a port just freed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dead = Target {
            host: "127.0.0.1".into(),
            port,
            path: "/ws".into(),
        };
        assert!(matches!(
            Raw::connect(&dead, source).await,
            Err(Refused::Connect)
        ));
    }
}
