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

use std::collections::BTreeMap;
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

use super::conn::{self, Buffers};
use super::fanout::setup_rows;
use super::fleet::{Fleet, LoadArgs, SetupReport, StepReport};
use super::procstat::ProcSample;
use super::rawws;
use super::{Table, emit};

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
}

/// What the hostile clients did and got back.
#[derive(Debug, Default)]
struct Counters {
    connects: AtomicU64,
    connect_failures: AtomicU64,
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
    pub connects: u64,
    pub connect_failures: u64,
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

/// `ws://host:port/path` → (`host:port`, `/path`); of a comma-separated
/// list, the first.
fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let url = url.split(',').next().unwrap_or(url).trim();
    let (host, port, path) = rawws::split_url(url)?;
    Ok((format!("{host}:{port}"), path))
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

/// What [`Raw::next`] read.
enum Read {
    Text(Vec<u8>),
    Close(Option<u16>),
    Other,
    End,
}

impl Raw {
    async fn connect(host: &str, path: &str) -> anyhow::Result<Raw> {
        let mut stream = TcpStream::connect(host).await.context("connect")?;
        let _ = stream.set_nodelay(true);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Raw {
            stream,
            buf: Vec::with_capacity(4096),
        };
        let end = loop {
            if let Some(i) = raw.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if raw.fill().await? == 0 {
                bail!("closed during the upgrade");
            }
        };
        ensure!(raw.buf.starts_with(b"HTTP/1.1 101"), "upgrade refused");
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

/// Runs one hostile client of `kind` until `stop`.
async fn hostile(
    kind: Kind,
    index: u64,
    host: String,
    path: String,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
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
            let mut raw = match Raw::connect(&host, &path).await {
                Ok(raw) => raw,
                Err(_) => {
                    bump(&counters.connect_failures, 1);
                    tokio::time::sleep(Duration::from_millis(100)).await;
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
                "{} frames, {:.1} MB, {} connections ({} refused)",
                h.frames_sent,
                h.bytes_sent as f64 / 1e6,
                h.connects,
                h.connect_failures
            ),
        );
        t.row(
            "hostile got",
            format!(
                "{} acks; errors {}; closes {}",
                h.acks,
                super::error_counts(&h.errors),
                super::error_counts(&h.closes)
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
        let room = format!("\"{}-idle-{}\"", common.room_prefix, i % args.idle_rooms);
        let (permits, stop) = (permits.clone(), stop.clone());
        let (joined, failed, dropped) = (joined.clone(), failed.clone(), dropped.clone());
        let done = all_done_tx.clone();
        tasks.spawn(async move {
            let opened = {
                let Ok(_permit) = permits.acquire().await else {
                    return;
                };
                conn::open(&url, Buffers::small(), &room, timeout).await
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

/// Runs the scenario; `Ok(false)` when it completed but a check failed.
pub async fn run(args: HostileArgs) -> anyhow::Result<bool> {
    ensure!(args.rate > 0.0, "--rate must be positive");
    ensure!(args.duration > 0.0, "--duration must be positive");
    let load = &args.load;
    let (host, path) = split_url(&load.common.url)?;
    if let Some(limit) = conn::open_files_limit() {
        let need = args.idle + load.connections() + 5 * args.hostile + 64;
        ensure!(
            need <= limit,
            "{need} file descriptors needed but `ulimit -n` is {limit}"
        );
    }
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
    let mut hostiles = JoinSet::new();
    for kind in KINDS {
        for i in 0..args.hostile {
            hostiles.spawn(hostile(
                kind,
                i,
                host.clone(),
                path.clone(),
                counters.clone(),
                stop_hostile.clone(),
            ));
        }
    }
    let with_flood = fleet.run_step(args.rate, window).await;
    stop_hostile.cancel();
    while hostiles.join_next().await.is_some() {}

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
