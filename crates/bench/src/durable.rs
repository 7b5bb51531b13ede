//! `durable`: pipelined sends, measuring acked throughput and ack latency,
//! and checking that every ack is a distinct, gap-free `seq`.
//!
//! Each sender connection joins its room, waits at a barrier until every
//! sender has joined (so the clock starts with the full load, and every
//! member of a room sees all of that room's messages), then sends `M`
//! messages with unique client ids, keeping up to `W` un-acked. Acks are
//! matched to sends by `ref` through a ring of `W` send timestamps, so the
//! hot path allocates nothing but the outgoing JSON.
//!
//! Besides acks, every sender receives the room's broadcasts; the bench
//! counts them and checks they arrive in `seq` order without gaps, which the
//! contract promises to every member.
//!
//! The server's per-connection send rate limit (20/s by default) would
//! otherwise be what this measures: start the server with
//! `--send-rate 1000000 --send-burst 1000000`. `rate_limited` errors in the
//! report mean it was not.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure};
use chat_protocol::{ErrorBody, ServerFrame};
use futures_util::{FutureExt, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Barrier;
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{self, Buffers, Ws};
use crate::frame::{Peek, decode_full};
use crate::procstat::{self, ProcSample, Usage};
use crate::progress::{Counters, Rate, spawn_reporter};
use crate::seqcheck::{self, Coverage};
use crate::stats::{self, LatencySummary};
use crate::{CommonArgs, Table, emit};

/// How long a sender keeps reading broadcasts after its own acks, when no
/// frame arrives, before deciding the rest are not coming.
const DRAIN_IDLE: Duration = Duration::from_secs(5);

/// How long a connection may take to close at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Filler for message text: plain ASCII, so its JSON is the text itself.
const LOREM: &str =
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. ";

#[derive(Debug, Clone, clap::Args)]
pub struct DurableArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Rooms to send to.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub rooms: u64,
    /// Sender connections per room.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub senders_per_room: u64,
    /// Messages each sender sends.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
    /// Most un-acked sends per connection.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub window: u64,
    /// Bytes of text per message (ASCII).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4000))]
    pub text_bytes: u64,
    /// Seconds one connection may take to connect and join.
    #[arg(long, default_value_t = 30)]
    pub join_timeout: u64,
    /// Seconds without any frame while sends are outstanding before a sender
    /// gives up on them (they are reported as stalled).
    #[arg(long, default_value_t = 30)]
    pub stall_timeout: u64,
}

/// The fixed part of every send frame of one connection.
///
/// Built once per connection so that a send costs one allocation (the frame
/// itself, which tungstenite then owns) and some integer formatting.
#[derive(Debug, Clone)]
pub struct SendFrames {
    /// `{"type":"send","room":…,"text":…,"id":"<prefix>-`
    head: String,
}

impl SendFrames {
    /// `id_prefix` must be plain ASCII without quotes or backslashes; ids are
    /// `<id_prefix>-<n>`.
    pub fn new(room: &str, text: &str, id_prefix: &str) -> serde_json::Result<SendFrames> {
        let room = serde_json::to_string(room)?;
        let text = serde_json::to_string(text)?;
        Ok(SendFrames {
            head: format!(r#"{{"type":"send","room":{room},"text":{text},"id":"{id_prefix}-"#),
        })
    }

    /// The frame for send number `n`, which is also its `ref`.
    pub fn build(&self, n: u64) -> String {
        // Two u64s at most 20 digits each, plus `","ref":` and `}`.
        let mut frame = String::with_capacity(self.head.len() + 50);
        frame.push_str(&self.head);
        // Writing into a String cannot fail.
        let _ = write!(frame, "{n}\",\"ref\":{n}}}");
        frame
    }
}

/// What one sender connection is asked to do.
#[derive(Debug, Clone)]
struct Plan {
    room: usize,
    url: String,
    /// `--source-ips`: the address to connect from.
    source: Option<IpAddr>,
    room_json: String,
    frames: SendFrames,
    messages: u64,
    window: u64,
    /// Broadcasts the connection should see: every sender's messages.
    room_messages: u64,
    join_timeout: Duration,
    stall_timeout: Duration,
}

/// What one sender connection measured. Owned by its task, returned at
/// the end: nothing here is shared while the load runs.
#[derive(Debug)]
struct Outcome {
    room: usize,
    setup_error: Option<String>,
    /// Why the connection ended early, if it did.
    dropped: Option<String>,
    base_seq: Option<u64>,
    sent: u64,
    acked: u64,
    /// Acks with `"duplicate":true` (none are expected: ids are unique).
    duplicates: u64,
    /// Acks or errors whose `ref` matched no outstanding send.
    unmatched: u64,
    /// Acks naming another room than the one sent to.
    wrong_room: u64,
    /// Frames that could not be decoded, or acks/broadcasts without `seq`.
    undecodable: u64,
    errors: BTreeMap<&'static str, u64>,
    /// Sends still un-answered when the connection gave up.
    stalled: u64,
    /// `seq` of every non-duplicate ack.
    seqs: Vec<u64>,
    latency: Histogram<u64>,
    first_send: Option<Instant>,
    last_ack: Option<Instant>,
    delivered: u64,
    /// Broadcasts whose `seq` was not the previous one + 1.
    delivery_gaps: u64,
    last_delivery: Option<Instant>,
}

impl Outcome {
    fn new(plan: &Plan) -> Outcome {
        Outcome {
            room: plan.room,
            setup_error: None,
            dropped: None,
            base_seq: None,
            sent: 0,
            acked: 0,
            duplicates: 0,
            unmatched: 0,
            wrong_room: 0,
            undecodable: 0,
            errors: BTreeMap::new(),
            stalled: 0,
            seqs: Vec::with_capacity(plan.messages as usize),
            latency: stats::latency_histogram(),
            first_send: None,
            last_ack: None,
            delivered: 0,
            delivery_gaps: 0,
            last_delivery: None,
        }
    }
}

/// One connection's send window and frame accounting.
struct Pipeline<'a> {
    plan: &'a Plan,
    room_name: &'a str,
    counters: &'a Counters,
    out: Outcome,
    /// Send time of each outstanding ref, at `ref % window`. Outstanding refs
    /// always lie in `lowest..next` and that span is at most `window` wide,
    /// so two never share a slot even when errors complete sends out of
    /// order.
    slots: Vec<Option<Instant>>,
    /// Ref of the next send (refs start at 1; the join used 0).
    next: u64,
    /// Lowest outstanding ref; `next` when none is.
    lowest: u64,
    /// `seq` the next broadcast should carry.
    next_delivery: u64,
}

impl<'a> Pipeline<'a> {
    fn slot(&self, reference: u64) -> usize {
        (reference % self.plan.window) as usize
    }

    /// Marks send `reference` answered; its send time if it was outstanding.
    fn complete(&mut self, reference: u64) -> Option<Instant> {
        if reference < self.lowest || reference >= self.next {
            return None;
        }
        let slot = self.slot(reference);
        let sent_at = self.slots[slot].take()?;
        while self.lowest < self.next && self.slots[self.slot(self.lowest)].is_none() {
            self.lowest += 1;
        }
        Some(sent_at)
    }

    fn outstanding(&self) -> u64 {
        self.slots.iter().filter(|s| s.is_some()).count() as u64
    }

    fn done_sending(&self) -> bool {
        self.lowest > self.plan.messages
    }

    /// Queues sends until the window is full, then writes them in one flush.
    async fn top_up(&mut self, ws: &mut Ws) -> anyhow::Result<()> {
        let window = self.plan.window;
        if self.next > self.plan.messages || self.next - self.lowest >= window {
            return Ok(());
        }
        let now = Instant::now();
        self.out.first_send.get_or_insert(now);
        while self.next <= self.plan.messages && self.next - self.lowest < window {
            let slot = self.slot(self.next);
            self.slots[slot] = Some(now);
            let frame = self.plan.frames.build(self.next);
            ws.feed(Message::Text(frame.into())).await?;
            self.next += 1;
            self.out.sent += 1;
            Counters::bump(&self.counters.sent);
        }
        ws.flush().await?;
        Ok(())
    }

    /// Accounts for one incoming WebSocket message; an error when the
    /// connection is closing.
    fn on_message(&mut self, message: Message) -> anyhow::Result<()> {
        match message {
            Message::Text(text) => {
                self.on_text(text.as_str());
                Ok(())
            }
            Message::Close(frame) => bail!("closed by server: {}", conn::describe_close(&frame)),
            Message::Binary(_) => bail!("unexpected binary frame"),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
        }
    }

    fn on_text(&mut self, text: &str) {
        let Ok(peek) = Peek::parse(text) else {
            self.out.undecodable += 1;
            return;
        };
        match &*peek.kind {
            "ack" => self.on_ack(&peek),
            "message" => {
                let Some(seq) = peek.seq else {
                    self.out.undecodable += 1;
                    return;
                };
                if seq != self.next_delivery {
                    self.out.delivery_gaps += 1;
                }
                self.next_delivery = seq + 1;
                self.out.delivered += 1;
                self.out.last_delivery = Some(Instant::now());
            }
            "error" => self.on_error(text),
            // Presence of other senders, and anything else, needs nothing.
            _ => {}
        }
    }

    fn on_ack(&mut self, peek: &Peek<'_>) {
        let now = Instant::now();
        let Some(sent_at) = peek.ref_number().and_then(|r| self.complete(r)) else {
            self.out.unmatched += 1;
            return;
        };
        self.out.acked += 1;
        self.out.last_ack = Some(now);
        Counters::bump(&self.counters.acked);
        stats::record(
            &mut self.out.latency,
            now.duration_since(sent_at).as_micros() as u64,
        );
        if peek.room.as_deref() != Some(self.room_name) {
            self.out.wrong_room += 1;
        }
        match (peek.duplicate, peek.seq) {
            (true, _) => self.out.duplicates += 1,
            (false, Some(seq)) => self.out.seqs.push(seq),
            (false, None) => self.out.undecodable += 1,
        }
    }

    fn on_error(&mut self, text: &str) {
        Counters::bump(&self.counters.errors);
        let Ok(ServerFrame::Error {
            reference,
            body: ErrorBody { code, .. },
        }) = decode_full(text)
        else {
            self.out.undecodable += 1;
            return;
        };
        *self.out.errors.entry(code.as_str()).or_insert(0) += 1;
        let reference = reference.and_then(|r| match r {
            chat_protocol::Ref::Number(n) => n.as_u64(),
            chat_protocol::Ref::Text(_) => None,
        });
        // The send failed: it no longer holds a window slot.
        if reference.and_then(|r| self.complete(r)).is_none() {
            self.out.unmatched += 1;
        }
    }

    /// Reads one message, waiting at most `timeout`; `Ok(false)` on timeout.
    async fn read_one(&mut self, ws: &mut Ws, timeout: Duration) -> anyhow::Result<bool> {
        match tokio::time::timeout(timeout, ws.next()).await {
            Err(_) => Ok(false),
            Ok(None) => bail!("connection ended"),
            Ok(Some(Err(e))) => bail!("read: {e}"),
            Ok(Some(Ok(message))) => {
                self.on_message(message)?;
                Ok(true)
            }
        }
    }

    /// Handles every message that is already readable without waiting, so
    /// the next `top_up` refills the window for all of them in one write.
    fn read_ready(&mut self, ws: &mut Ws) -> anyhow::Result<()> {
        while let Some(incoming) = ws.next().now_or_never() {
            match incoming {
                None => bail!("connection ended"),
                Some(Err(e)) => bail!("read: {e}"),
                Some(Ok(message)) => self.on_message(message)?,
            }
        }
        Ok(())
    }

    /// Sends everything, keeping the window full, until every send is
    /// answered or nothing arrives for `stall_timeout`.
    async fn send_all(&mut self, ws: &mut Ws) -> anyhow::Result<()> {
        loop {
            self.top_up(ws).await?;
            if self.done_sending() {
                return Ok(());
            }
            if !self.read_one(ws, self.plan.stall_timeout).await? {
                self.out.stalled = self.outstanding();
                return Ok(());
            }
            self.read_ready(ws)?;
        }
    }

    /// Reads broadcasts until this connection has seen every message of its
    /// room, or none has come for a while.
    async fn drain(&mut self, ws: &mut Ws) -> anyhow::Result<()> {
        while self.out.delivered < self.plan.room_messages {
            if !self.read_one(ws, DRAIN_IDLE).await? {
                break;
            }
        }
        Ok(())
    }
}

/// One sender connection, from connect to close.
async fn sender(plan: Plan, start: Arc<Barrier>, counters: Arc<Counters>) -> Outcome {
    let mut out = Outcome::new(&plan);
    let opened = conn::open(
        &plan.url,
        Buffers::busy(),
        plan.source,
        &plan.room_json,
        plan.join_timeout,
    )
    .await;
    match &opened {
        Ok(_) => Counters::bump(&counters.joined),
        Err(_) => Counters::bump(&counters.failed),
    }
    // Every task reaches the barrier, failed or not, or the others would
    // wait for it forever.
    start.wait().await;
    let (mut ws, joined) = match opened {
        Ok(x) => x,
        Err(e) => {
            out.setup_error = Some(format!("{e:#}"));
            return out;
        }
    };
    out.base_seq = Some(joined.base_seq);
    let room_name = plan.room_name();
    let mut pipeline = Pipeline {
        plan: &plan,
        room_name: &room_name,
        counters: &counters,
        out,
        slots: vec![None; plan.window as usize],
        next: 1,
        lowest: 1,
        next_delivery: joined.base_seq + 1,
    };
    let run = async {
        pipeline.send_all(&mut ws).await?;
        pipeline.drain(&mut ws).await
    };
    if let Err(e) = run.await {
        pipeline.out.dropped = Some(format!("{e:#}"));
        pipeline.out.stalled = pipeline.outstanding();
        Counters::bump(&counters.dropped);
    } else {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
    }
    pipeline.out
}

impl Plan {
    fn room_name(&self) -> String {
        // room_json is a JSON string made by serde_json; decoding it back
        // cannot fail, and an empty name would only make every ack count as
        // `wrong_room`, which the report shows.
        serde_json::from_str(&self.room_json).unwrap_or_default()
    }
}

/// The JSON summary of a durable run.
#[derive(Debug, Serialize)]
pub struct DurableReport {
    pub scenario: &'static str,
    pub url: String,
    pub rooms: u64,
    pub senders_per_room: u64,
    pub messages_per_sender: u64,
    pub window: u64,
    pub text_bytes: u64,
    pub connections: u64,
    pub setup_failures: BTreeMap<String, u64>,
    pub dropped_connections: BTreeMap<String, u64>,
    pub sent: u64,
    pub acked: u64,
    /// From the first send to the last ack, over all connections.
    pub wall_secs: f64,
    /// `acked / wall_secs`.
    pub acks_per_sec: f64,
    /// Send to ack, per message.
    pub ack_latency_us: LatencySummary,
    /// `error` frames by code.
    pub errors: BTreeMap<&'static str, u64>,
    pub duplicates: u64,
    pub unmatched: u64,
    pub wrong_room: u64,
    pub undecodable: u64,
    pub stalled_sends: u64,
    /// Acked-seq coverage summed over rooms; `violations` must be 0.
    pub seq_coverage: Coverage,
    /// Repeated + outside + missing, plus rooms whose senders disagreed on
    /// the starting `seq`.
    pub seq_violations: u64,
    /// Broadcasts received, over all connections.
    pub delivered: u64,
    /// Broadcasts each connection should have received but did not.
    pub delivery_missing: u64,
    pub delivery_gaps: u64,
    /// `delivered / (first send .. last broadcast)`.
    pub deliveries_per_sec: f64,
    pub server: Option<Usage>,
    /// Server CPU time per acked message.
    pub server_cpu_us_per_message: Option<f64>,
    /// The bench's own CPU time over the run, to show whether it, rather
    /// than the server, was the limit.
    pub bench_cpu_seconds: Option<f64>,
}

impl DurableReport {
    /// Everything sent was acked, and every check passed.
    pub fn clean(&self) -> bool {
        self.setup_failures.is_empty()
            && self.dropped_connections.is_empty()
            && self.errors.is_empty()
            && self.acked == self.sent
            && self.seq_violations == 0
            && self.delivery_missing == 0
            && self.delivery_gaps == 0
            && self.duplicates + self.unmatched + self.wrong_room + self.undecodable == 0
            && self.stalled_sends == 0
    }

    pub fn table(&self) -> String {
        let mut t = Table::new(24);
        t.row("scenario", "durable".into());
        t.row("url", self.url.clone());
        t.row(
            "load",
            format!(
                "{} rooms x {} senders x {} messages, window {}, {} B text",
                self.rooms,
                self.senders_per_room,
                self.messages_per_sender,
                self.window,
                self.text_bytes
            ),
        );
        t.row(
            "connections",
            format!(
                "{} (setup failed {}, dropped {})",
                self.connections,
                self.setup_failures.values().sum::<u64>(),
                self.dropped_connections.values().sum::<u64>()
            ),
        );
        for (reason, n) in self.setup_failures.iter().chain(&self.dropped_connections) {
            t.row("  connection problem", format!("{n} x {reason}"));
        }
        t.row(
            "acked",
            format!(
                "{} of {} sent in {:.3} s = {:.0} msg/s",
                self.acked, self.sent, self.wall_secs, self.acks_per_sec
            ),
        );
        t.row("ack latency", self.ack_latency_us.row());
        t.row("errors", crate::error_counts(&self.errors));
        t.row(
            "seq violations",
            format!(
                "{} (repeated {}, outside {}, missing {}) over {} acks",
                self.seq_violations,
                self.seq_coverage.repeated,
                self.seq_coverage.outside,
                self.seq_coverage.missing,
                self.seq_coverage.acks
            ),
        );
        t.row(
            "other anomalies",
            format!(
                "duplicate acks {}, unmatched {}, wrong room {}, undecodable {}, stalled {}",
                self.duplicates,
                self.unmatched,
                self.wrong_room,
                self.undecodable,
                self.stalled_sends
            ),
        );
        t.row(
            "broadcasts received",
            format!(
                "{} ({:.0}/s), missing {}, out of order {}",
                self.delivered, self.deliveries_per_sec, self.delivery_missing, self.delivery_gaps
            ),
        );
        if let Some(s) = &self.server {
            t.row(
                "server CPU",
                format!(
                    "{:.2} s ({:.1} µs per acked message)",
                    s.cpu_seconds,
                    self.server_cpu_us_per_message.unwrap_or(0.0)
                ),
            );
            t.row(
                "server RSS",
                format!(
                    "{} -> {} KiB (delta {} KiB)",
                    s.rss_before_kib, s.rss_after_kib, s.rss_delta_kib
                ),
            );
        }
        if let Some(c) = self.bench_cpu_seconds {
            t.row("bench CPU", format!("{c:.2} s"));
        }
        if self.errors.contains_key("rate_limited") {
            t.line(
                "  hint: rate_limited: start the server with --send-rate 1000000 --send-burst 1000000\n",
            );
        }
        t.finish()
    }
}

/// A per-run prefix for client ids, so a rerun against the same server and
/// rooms is not answered with `duplicate` acks of the previous run.
fn run_nonce() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{nanos:x}")
}

/// The message text: `bytes` of ASCII.
fn filler(bytes: usize) -> String {
    LOREM.chars().cycle().take(bytes).collect()
}

/// Runs the scenario; `Ok(false)` when it completed but a check failed.
pub async fn run(args: DurableArgs) -> anyhow::Result<bool> {
    let common = &args.common;
    ensure!(
        !common.protocol.is_socketio(),
        "durable speaks the native protocol only (--protocol native)"
    );
    let connections = args.rooms * args.senders_per_room;
    if let Some(limit) = conn::open_files_limit() {
        ensure!(
            connections + 64 <= limit,
            "{connections} connections do not fit under `ulimit -n` {limit}"
        );
    }
    common.note_shared_sources(connections);
    let nonce = run_nonce();
    let text = filler(args.text_bytes as usize);
    let mut plans = Vec::with_capacity(connections as usize);
    for room in 0..args.rooms as usize {
        let room_name = common.room(room);
        for k in 0..args.senders_per_room {
            plans.push(Plan {
                room,
                url: conn::with_query(&common.url, "name", &format!("r{room}s{k}")),
                source: common.source_ip(),
                room_json: serde_json::to_string(&room_name)?,
                frames: SendFrames::new(&room_name, &text, &format!("{nonce}-{room}-{k}"))?,
                messages: args.messages,
                window: args.window,
                room_messages: args.messages * args.senders_per_room,
                join_timeout: Duration::from_secs(args.join_timeout),
                stall_timeout: Duration::from_secs(args.stall_timeout),
            });
        }
    }

    let counters = Arc::new(Counters::default());
    let reporter = spawn_reporter(counters.clone(), {
        let mut rate = Rate::default();
        move |elapsed, c, dt| {
            let acked = Counters::get(&c.acked);
            format!(
                "[{:>4}s] durable: joined {}/{connections} failed {} | sent {} acked {acked} ({:.0}/s) errors {} dropped {}",
                elapsed.as_secs(),
                Counters::get(&c.joined),
                Counters::get(&c.failed),
                Counters::get(&c.sent),
                rate.per_second(acked, dt),
                Counters::get(&c.errors),
                Counters::get(&c.dropped),
            )
        }
    });

    let server_start = procstat::sample(common.server_pid);
    let bench_start = ProcSample::own().ok();
    let start = Arc::new(Barrier::new(plans.len()));
    let tasks: Vec<_> = plans
        .into_iter()
        .map(|plan| tokio::spawn(sender(plan, start.clone(), counters.clone())))
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    let mut panicked = 0u64;
    for task in tasks {
        match task.await {
            Ok(outcome) => outcomes.push(outcome),
            Err(_) => panicked += 1,
        }
    }
    let server_end = procstat::sample(common.server_pid);
    let bench_end = ProcSample::own().ok();
    drop(reporter);

    let mut report = summarize(&args, connections, outcomes);
    if panicked > 0 {
        report
            .dropped_connections
            .insert("bench task panicked".into(), panicked);
    }
    report.server = procstat::usage(server_start, server_end);
    report.bench_cpu_seconds = procstat::usage(bench_start, bench_end).map(|u| u.cpu_seconds);
    report.server_cpu_us_per_message = report
        .server
        .filter(|_| report.acked > 0)
        .map(|s| s.cpu_seconds * 1e6 / report.acked as f64);
    emit(common, &report.table(), &report)?;
    Ok(report.clean())
}

/// Merges per-connection outcomes into the report (server usage left empty).
fn summarize(args: &DurableArgs, connections: u64, outcomes: Vec<Outcome>) -> DurableReport {
    let mut latency = stats::latency_histogram();
    let mut report = DurableReport {
        scenario: "durable",
        url: args.common.url.clone(),
        rooms: args.rooms,
        senders_per_room: args.senders_per_room,
        messages_per_sender: args.messages,
        window: args.window,
        text_bytes: args.text_bytes,
        connections,
        setup_failures: BTreeMap::new(),
        dropped_connections: BTreeMap::new(),
        sent: 0,
        acked: 0,
        wall_secs: 0.0,
        acks_per_sec: 0.0,
        ack_latency_us: LatencySummary::of(&latency),
        errors: BTreeMap::new(),
        duplicates: 0,
        unmatched: 0,
        wrong_room: 0,
        undecodable: 0,
        stalled_sends: 0,
        seq_coverage: Coverage::default(),
        seq_violations: 0,
        delivered: 0,
        delivery_missing: 0,
        delivery_gaps: 0,
        deliveries_per_sec: 0.0,
        server: None,
        server_cpu_us_per_message: None,
        bench_cpu_seconds: None,
    };
    let mut first_send: Option<Instant> = None;
    let mut last_ack: Option<Instant> = None;
    let mut last_delivery: Option<Instant> = None;
    let mut rooms: Vec<RoomAcks> = (0..args.rooms).map(|_| RoomAcks::default()).collect();
    for o in &outcomes {
        if let Some(e) = &o.setup_error {
            *report.setup_failures.entry(e.clone()).or_insert(0) += 1;
        }
        if let Some(e) = &o.dropped {
            *report.dropped_connections.entry(e.clone()).or_insert(0) += 1;
        }
        report.sent += o.sent;
        report.acked += o.acked;
        report.duplicates += o.duplicates;
        report.unmatched += o.unmatched;
        report.wrong_room += o.wrong_room;
        report.undecodable += o.undecodable;
        report.stalled_sends += o.stalled;
        report.delivered += o.delivered;
        report.delivery_gaps += o.delivery_gaps;
        for (code, n) in &o.errors {
            *report.errors.entry(code).or_insert(0) += n;
        }
        stats::merge(&mut latency, &o.latency);
        first_send = min_opt(first_send, o.first_send);
        last_ack = max_opt(last_ack, o.last_ack);
        last_delivery = max_opt(last_delivery, o.last_delivery);
        let room = &mut rooms[o.room];
        room.seqs.extend_from_slice(&o.seqs);
        if let Some(base) = o.base_seq {
            room.members += 1;
            match room.base {
                None => room.base = Some(base),
                Some(b) if b != base => room.base_mismatch = true,
                Some(_) => {}
            }
        }
    }
    // Each member should have received every message acked in its room.
    for o in &outcomes {
        if o.base_seq.is_some() {
            let expected = rooms[o.room].seqs.len() as u64;
            report.delivery_missing += expected.saturating_sub(o.delivered);
        }
    }
    for room in &mut rooms {
        let coverage = seqcheck::check(room.base.unwrap_or(0), &mut room.seqs);
        report.seq_coverage.add(&coverage);
        report.seq_violations += coverage.violations() + u64::from(room.base_mismatch);
    }
    report.ack_latency_us = LatencySummary::of(&latency);
    if let (Some(first), Some(last)) = (first_send, last_ack) {
        report.wall_secs = last.duration_since(first).as_secs_f64();
        report.acks_per_sec = report.acked as f64 / report.wall_secs.max(1e-9);
    }
    if let (Some(first), Some(last)) = (first_send, last_delivery) {
        let secs = last.duration_since(first).as_secs_f64().max(1e-9);
        report.deliveries_per_sec = report.delivered as f64 / secs;
    }
    report
}

/// Acked seqs of one room, gathered from its senders.
#[derive(Debug, Default)]
struct RoomAcks {
    seqs: Vec<u64>,
    base: Option<u64>,
    base_mismatch: bool,
    members: u64,
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::request::Envelope;
    use chat_protocol::{Ref, Request, parse_request};

    #[test]
    fn send_frames_parse_as_the_server_parses_them() {
        let frames = SendFrames::new("bench-\"7\"", "hi \u{1F44B}\n", "abc-7-0").unwrap();
        let Envelope { reference, request } = parse_request(&frames.build(12345)).unwrap();
        assert_eq!(reference, Some(Ref::Number(12345.into())));
        assert_eq!(
            request,
            Request::Send {
                room: "bench-\"7\"".into(),
                text: "hi \u{1F44B}\n".into(),
                id: Some("abc-7-0-12345".into()),
                reply_to: None,
            }
        );
    }

    #[test]
    fn filler_has_the_requested_length() {
        assert_eq!(filler(5), "Lorem");
        assert_eq!(filler(300).len(), 300);
    }
}
