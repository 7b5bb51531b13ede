//! The connections of a `fanout` or `ramp` run, and the measured steps they
//! go through.
//!
//! A fleet is `rooms × members` connections, each its own task on its own
//! socket ([`RawWs`]); the first `senders` members of each room also send.
//! Every member joins before anything is sent, so every member must receive
//! every message of its room.
//!
//! A *step* is one measurement at one rate: senders follow a fixed
//! [`Schedule`] through a warm-up and then the measured window; after the
//! window the controller waits (bounded) until every send is answered and
//! every acked message delivered, then collects what each connection saw.
//! `fanout` runs one step; `ramp` runs steps at rising rates on the same
//! connections.
//!
//! What a delivery costs the bench, since thousands of them a second go
//! through one core: one buffer per connection, frames parsed in place, the
//! JSON read through the borrowed [`Peek`], the latency stamp parsed without
//! allocating ([`Stamp`]), the `seq` set in a bitmap ([`SeqSet`]). Each
//! connection's counters sit behind its own mutex, locked once per socket
//! read (uncontended: the controller only takes it between steps), so the
//! controller can collect them without waking idle receivers. Latencies go
//! to a few shared histograms (one per connection would be 140 KiB each,
//! times 5,000), sharded by room and locked once per read. The progress line
//! reads relaxed atomic counters.
//!
//! The protocol is the native one or Socket.IO (`--protocol`, see
//! [`crate::sio`]): they differ only in the frames built in
//! [`SenderState::send_due`] and [`connect_and_join`], and in how
//! [`on_batch`] reads a frame ([`Hot`]); the accounting is the same. In
//! the seed dialect, which has no acks and no `seq`, a send counts as
//! acked once written and its stamp's counter stands for the `seq`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure};
use chat_protocol::{ErrorBody, JoinedBody, Ref, ServerFrame, WelcomeBody};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::conn::{self, JOIN_REF};
use crate::frame::{Peek, decode_full};
use crate::mix::{ChangeMix, Next};
use crate::pacer::{PacePlan, Pacer};
use crate::procstat::{self, ProcSample, Usage};
use crate::progress::{self, Rate, Reporter};
use crate::rawws::{Frame, RawWs};
use crate::reads::{self, Reader};
use crate::schedule::Schedule;
use crate::seqcheck;
use crate::seqset::{Seen, SeqSet};
use crate::sio::{self, Protocol};
use crate::stages::{self, StageReport};
use crate::stamp::Stamp;
use crate::stats::{self, LatencySummary};
use crate::{CommonArgs, Table};

/// Latency histograms shared by the receivers, each for a slice of rooms.
const LATENCY_SHARDS: usize = 16;

/// Sends a sender keeps track of for ack matching; a send still unanswered
/// when its slot is needed again is counted as unanswered.
const ACK_RING: u64 = 8192;

/// Delay between announcing a step and its first send, so every sender has
/// its schedule before the first message is due.
const STEP_LEAD: Duration = Duration::from_millis(100);

/// A sender sends on its own timer this long after a due time if the pacer's
/// wakeup has not come (it always should; this only bounds the damage).
const PACER_FALLBACK: Duration = Duration::from_millis(5);

/// Drain ends early when no delivery arrived for this long.
const DRAIN_IDLE: Duration = Duration::from_secs(2);

/// How often the controller checks whether the drain is over.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// File descriptors the bench keeps for itself besides its connections.
const FD_RESERVE: u64 = 64;

/// The shape of the load, shared by `fanout` and `ramp`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Rooms.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub rooms: u64,
    /// Connections per room, senders included; each is its own connection.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub members: u64,
    /// Members of each room that send (the room's rate is split between them).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub senders: u64,
    /// Bytes of text per message: the latency stamp, then filler.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4000))]
    pub text_bytes: u64,
    /// Seconds of load before each measured window (not measured).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Most seconds to wait after a window for the last acks and deliveries
    /// (and read answers, with `--read-every`); what has not arrived by then
    /// is lost.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// Connections being opened at the same time.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: u64,
    /// Seconds one connection may take to connect and join.
    #[arg(long, default_value_t = 30)]
    pub join_timeout: u64,
    /// Initial receive buffer per connection, bytes (it grows for a larger
    /// message). Pages never written to cost no memory.
    #[arg(long, default_value_t = 16 * 1024)]
    pub read_buffer: usize,
    /// Percent of the sends that are changes to the sender's latest message
    /// instead of new messages: edits and reactions, alternating (native
    /// protocol only; see `mix`).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub changes_percent: u64,
    /// Every member (senders too) sends a `read` for the latest `seq` it
    /// received in its room after every N messages it received there,
    /// without waiting for the answer; 0: no reads (native protocol only;
    /// see `reads`).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub read_every: u64,
}

impl LoadArgs {
    pub fn connections(&self) -> u64 {
        self.rooms * self.members
    }

    /// Deliveries a second that `rate` messages a second per room ask for.
    pub fn deliveries_per_sec(&self, rate_per_room: f64) -> f64 {
        rate_per_room * (self.rooms * self.members) as f64
    }

    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.common.protocol != Protocol::SocketioSeed || self.senders == 1,
            "--protocol socketio-seed takes one sender per room (--senders 1): \
             the stamp's counter stands for the room's seq"
        );
        ensure!(
            self.changes_percent == 0 || self.common.protocol == Protocol::Native,
            "--changes-percent needs --protocol native"
        );
        ensure!(
            self.read_every == 0 || self.common.protocol == Protocol::Native,
            "--read-every needs --protocol native"
        );
        ensure!(
            self.senders <= self.members,
            "--senders ({}) must not exceed --members ({})",
            self.senders,
            self.members
        );
        ensure!(
            self.warmup >= 0.0 && self.drain >= 0.0,
            "--warmup and --drain must not be negative"
        );
        if let Some(limit) = conn::open_files_limit() {
            let need = self.connections() + FD_RESERVE;
            ensure!(
                need <= limit,
                "{} connections need {need} file descriptors but `ulimit -n` is {limit}",
                self.connections()
            );
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicked connection task leaves its counters as they were; they are
    // still the best account there is.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// State every connection task and the controller share.
struct Shared {
    origin: Instant,
    /// The measured window of the current step, µs since `origin`.
    window_start: AtomicU64,
    window_end: AtomicU64,
    latency: Vec<Mutex<Histogram<u64>>>,
    ack_latency: Mutex<Histogram<u64>>,
    /// Read sent to its answer (`--read-every`), sharded like `latency`.
    read_latency: Vec<Mutex<Histogram<u64>>>,
    send_lag: Mutex<Histogram<u64>>,
    delivered: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    errors: AtomicU64,
    reads_sent: AtomicU64,
    read_answers: AtomicU64,
    read_errors: AtomicU64,
    dropped: AtomicU64,
    joined: AtomicU64,
    failed: AtomicU64,
    text_bytes: usize,
    protocol: Protocol,
    /// What the progress line says the run is doing.
    phase: Mutex<String>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }

    fn instant(&self, micros: u64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.origin + Duration::from_micros(micros))
    }

    fn window(&self) -> (u64, u64) {
        (
            self.window_start.load(Ordering::Relaxed),
            self.window_end.load(Ordering::Relaxed),
        )
    }

    fn set_phase(&self, phase: String) {
        *lock(&self.phase) = phase;
    }
}

/// One connection's account of a step. Owned by the connection's slot;
/// the controller swaps it for a fresh one between steps.
#[derive(Debug, Default)]
struct ConnStats {
    seen: SeqSet,
    delivered: u64,
    /// Deliveries read inside the measured window.
    in_window: u64,
    duplicates: u64,
    out_of_order: u64,
    stale: u64,
    too_far: u64,
    unstamped: u64,
    undecodable: u64,
    sent: u64,
    acked: u64,
    acked_seqs: Vec<u64>,
    errors: BTreeMap<String, u64>,
    unmatched: u64,
    reads_sent: u64,
    read_answers: u64,
    read_errors: BTreeMap<String, u64>,
    dropped: Option<String>,
}

impl ConnStats {
    /// This step's account, leaving a fresh one that expects `seq`s above
    /// those seen so far.
    fn take_step(&mut self) -> ConnStats {
        let next = ConnStats {
            seen: self.seen.successor(),
            ..ConnStats::default()
        };
        std::mem::replace(self, next)
    }
}

/// A connection as the controller sees it.
struct Slot {
    room: usize,
    sender: bool,
    stats: Mutex<ConnStats>,
    alive: AtomicBool,
    /// Number (1-based) of the last step whose sends this sender has all
    /// answered.
    settled: AtomicU64,
    /// Reads this member sent that are not answered yet.
    reads_pending: AtomicU64,
}

/// A step as the senders are told it.
#[derive(Debug, Clone)]
struct StepPlan {
    number: u64,
    rate_per_sender: f64,
    /// First due time and end of the schedule, µs since the origin.
    start_us: u64,
    end_us: u64,
}

impl StepPlan {
    /// Sender `index`'s schedule, the same for the sender and the pacer.
    fn schedule(&self, index: u64, senders: u64) -> Schedule {
        Schedule::new(
            self.start_us,
            self.end_us,
            self.rate_per_sender,
            index,
            senders,
        )
    }
}

/// How the connection phase went.
#[derive(Debug, Clone, Serialize)]
pub struct SetupReport {
    pub connections: u64,
    pub joined: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
    pub secs: f64,
    pub joins_per_sec: f64,
    pub connect_join_latency_us: LatencySummary,
}

/// One measured step.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepReport {
    pub step: u64,
    /// Messages a second per room.
    pub rate_per_room: f64,
    /// Deliveries a second the schedule asks for (rate × rooms × members).
    pub offered_deliveries_per_sec: f64,
    /// Deliveries read during the measured window, per second.
    pub deliveries_per_sec: f64,
    pub window_secs: f64,
    /// Scheduled send to receipt, for every delivery of a message scheduled
    /// inside the window.
    pub latency_us: LatencySummary,
    /// The server's stage histograms over the window (ours only: empty for
    /// a server without them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageReport>,
    /// Scheduled send to ack, for sends scheduled inside the window.
    pub ack_latency_us: LatencySummary,
    /// How late the bench's own sends left against their schedule (a
    /// bench-side figure: large values mean the bench fell behind).
    pub send_lag_us: LatencySummary,
    pub sent: u64,
    pub acked: u64,
    /// `error` frames by code.
    pub errors: BTreeMap<String, u64>,
    /// Sends neither acked nor refused when the step was collected.
    pub unanswered: u64,
    /// Acked messages × the members who should have received them.
    pub expected_deliveries: u64,
    pub delivered: u64,
    /// Acked messages a member never received (within the drain).
    pub lost: u64,
    /// Deliveries of a `seq` the member already had.
    pub duplicated: u64,
    /// Deliveries of a `seq` lower than one the member already had.
    pub out_of_order: u64,
    /// Deliveries of a `seq` no sender was acked (in this step).
    pub unexpected: u64,
    /// Late deliveries of an earlier step's messages.
    pub stale: u64,
    /// A room's acked `seq`s that repeat or leave a gap.
    pub seq_violations: u64,
    pub undecodable: u64,
    /// Broadcasts whose text carried no bench stamp.
    pub unstamped: u64,
    pub unmatched_acks: u64,
    /// `read`s the members sent (`--read-every`).
    pub reads_sent: u64,
    /// Reads answered with their `read` frame.
    pub read_answers: u64,
    /// `error` frames answering a read, by code.
    pub read_errors: BTreeMap<String, u64>,
    /// Reads neither answered nor refused when the step was collected.
    pub reads_unanswered: u64,
    /// Read sent to its answer, for reads sent inside the window.
    pub read_latency_us: LatencySummary,
    /// Connections that ended during the step, by reason.
    pub dropped_connections: BTreeMap<String, u64>,
    /// From the end of the window until the last ack and delivery (or the
    /// drain limit).
    pub drain_secs: f64,
    /// Server usage over the window.
    pub server: Option<Usage>,
    /// Server CPU seconds per second of window (1.0 = one core busy).
    pub server_cpu_fraction: Option<f64>,
    /// The bench's CPU seconds per second of window, all threads but a
    /// foreign one (`hostile`'s clients, see [`Fleet::set_foreign_thread`]).
    pub bench_cpu_fraction: Option<f64>,
    /// Deliveries a second the bench could handle with a whole core at this
    /// cost per delivery (`deliveries_per_sec / bench_cpu_fraction`): an
    /// extrapolation; a ramp against the fastest peer shows the real limit.
    pub bench_ceiling_deliveries_per_sec: Option<f64>,
}

impl StepReport {
    /// Nothing lost, repeated, reordered, refused or dropped.
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.out_of_order == 0
            && self.unexpected == 0
            && self.seq_violations == 0
            && self.errors.is_empty()
            && self.unanswered == 0
            && self.undecodable == 0
            && self.dropped_connections.is_empty()
            && self.read_errors.is_empty()
            && self.reads_unanswered == 0
    }

    /// Rows of the human table.
    pub fn rows(&self, t: &mut Table) {
        t.row(
            "rate",
            format!(
                "{:.2} msg/s per room = {:.0} deliveries/s offered",
                self.rate_per_room, self.offered_deliveries_per_sec
            ),
        );
        t.row(
            "delivered",
            format!(
                "{:.0}/s over the {:.1} s window; {} of {} expected in the step",
                self.deliveries_per_sec, self.window_secs, self.delivered, self.expected_deliveries
            ),
        );
        t.row("latency", self.latency_us.row());
        stages::rows(&self.stages, t);
        t.row("ack latency", self.ack_latency_us.row());
        t.row("send lag (bench)", self.send_lag_us.row());
        t.row(
            "sent / acked",
            format!(
                "{} / {} (unanswered {}, errors {})",
                self.sent,
                self.acked,
                self.unanswered,
                crate::error_counts(&self.errors)
            ),
        );
        t.row(
            "lost / dup / reordered",
            format!(
                "{} / {} / {} (unexpected {}, stale {}, seq violations {})",
                self.lost,
                self.duplicated,
                self.out_of_order,
                self.unexpected,
                self.stale,
                self.seq_violations
            ),
        );
        if self.reads_sent + self.read_answers > 0 || !self.read_errors.is_empty() {
            t.row(
                "reads sent / answered",
                format!(
                    "{} / {} (unanswered {}, errors {})",
                    self.reads_sent,
                    self.read_answers,
                    self.reads_unanswered,
                    crate::error_counts(&self.read_errors)
                ),
            );
            t.row("read latency", self.read_latency_us.row());
        }
        if self.undecodable + self.unstamped + self.unmatched_acks > 0 {
            t.row(
                "anomalies",
                format!(
                    "undecodable {}, unstamped {}, unmatched acks {}",
                    self.undecodable, self.unstamped, self.unmatched_acks
                ),
            );
        }
        for (reason, n) in &self.dropped_connections {
            t.row("dropped", format!("{n} x {reason}"));
        }
        t.row("drain", format!("{:.2} s", self.drain_secs));
        if let Some(s) = &self.server {
            t.row(
                "server",
                format!(
                    "CPU {:.2} s ({:.0}% of a core), RSS {} -> {} KiB",
                    s.cpu_seconds,
                    self.server_cpu_fraction.unwrap_or(0.0) * 100.0,
                    s.rss_before_kib,
                    s.rss_after_kib
                ),
            );
        }
        if let Some(f) = self.bench_cpu_fraction {
            t.row(
                "bench CPU",
                format!(
                    "{:.0}% of a core; ceiling at this cost ~{:.0} deliveries/s",
                    f * 100.0,
                    self.bench_ceiling_deliveries_per_sec.unwrap_or(0.0)
                ),
            );
        }
    }
}

/// The running connections and their controller.
pub struct Fleet {
    args: LoadArgs,
    shared: Arc<Shared>,
    slots: Vec<Arc<Slot>>,
    tasks: Vec<JoinHandle<()>>,
    steps: watch::Sender<Option<Arc<StepPlan>>>,
    pacer: Pacer,
    steps_run: u64,
    /// A thread of this process whose CPU time is not the fleet's (the
    /// hostile clients'), left out of `bench CPU`.
    foreign_thread: Option<u32>,
    pub setup: SetupReport,
    _reporter: Reporter,
}

impl Fleet {
    /// Opens and joins every connection (bounded concurrency), and starts
    /// the progress line labelled `scenario`.
    pub async fn open(args: &LoadArgs, scenario: &'static str) -> anyhow::Result<Fleet> {
        args.check()?;
        let total = args.connections();
        let latency = (0..LATENCY_SHARDS)
            .map(|_| Mutex::new(stats::latency_histogram()))
            .collect();
        let shared = Arc::new(Shared {
            origin: Instant::now(),
            window_start: AtomicU64::new(u64::MAX),
            window_end: AtomicU64::new(u64::MAX),
            latency,
            ack_latency: Mutex::new(stats::latency_histogram()),
            read_latency: (0..LATENCY_SHARDS)
                .map(|_| Mutex::new(stats::latency_histogram()))
                .collect(),
            send_lag: Mutex::new(stats::latency_histogram()),
            delivered: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            reads_sent: AtomicU64::new(0),
            read_answers: AtomicU64::new(0),
            read_errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            joined: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            text_bytes: args.text_bytes as usize,
            protocol: args.common.protocol,
            phase: Mutex::new("connecting".into()),
        });
        let reporter = spawn_progress(scenario, shared.clone(), total);
        let (steps, _) = watch::channel(None);
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(args.concurrency as usize));
        let total_senders = args.rooms * args.senders;
        let wake: Vec<Arc<Notify>> = (0..total_senders)
            .map(|_| Arc::new(Notify::new()))
            .collect();
        let pacer = Pacer::start(shared.origin, wake.clone())?;
        let mut slots = Vec::with_capacity(total as usize);
        let mut tasks = Vec::with_capacity(total as usize);
        let started = Instant::now();
        for room in 0..args.rooms as usize {
            let room_name = args.common.room(room);
            let room_json: Arc<str> = serde_json::to_string(&room_name)?.into();
            for member in 0..args.members {
                let sender = member < args.senders;
                let slot = Arc::new(Slot {
                    room,
                    sender,
                    stats: Mutex::new(ConnStats::default()),
                    alive: AtomicBool::new(false),
                    settled: AtomicU64::new(0),
                    reads_pending: AtomicU64::new(0),
                });
                let role = sender.then(|| {
                    let index = room as u64 * args.senders + member;
                    SenderState::new(
                        &room_json,
                        index,
                        total_senders,
                        wake[index as usize].clone(),
                        args.changes_percent,
                    )
                });
                // Acquired here, released once the connection has joined.
                let permit = permits.clone().acquire_owned().await?;
                let name = format!("r{room}m{member}");
                let url = match args.common.protocol {
                    Protocol::Native => {
                        conn::with_query(args.common.url_at(slots.len()), "name", &name)
                    }
                    // The name goes in the CONNECT's auth.
                    _ => sio::endpoint(args.common.url_at(slots.len())),
                };
                let task = Connection {
                    slot: slot.clone(),
                    shared: shared.clone(),
                    steps: steps.subscribe(),
                    role,
                    reader: (args.read_every > 0)
                        .then(|| Reader::new(args.read_every, room_json.clone())),
                };
                tasks.push(tokio::spawn(task.run(
                    url,
                    args.common.source_ip(),
                    name,
                    room_json.clone(),
                    args.read_buffer,
                    Duration::from_secs(args.join_timeout),
                    permit,
                    ready_tx.clone(),
                )));
                slots.push(slot);
            }
        }
        drop(ready_tx);
        let mut latency = stats::latency_histogram();
        let mut failures = BTreeMap::new();
        while let Some(ready) = ready_rx.recv().await {
            match ready {
                Ok(micros) => stats::record(&mut latency, micros),
                Err(reason) => *failures.entry(reason).or_insert(0u64) += 1,
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let joined = latency.len();
        let setup = SetupReport {
            connections: total,
            joined,
            failed: failures.values().sum(),
            failures,
            secs,
            joins_per_sec: joined as f64 / secs.max(1e-9),
            connect_join_latency_us: LatencySummary::of(&latency),
        };
        Ok(Fleet {
            args: args.clone(),
            shared,
            slots,
            tasks,
            steps,
            pacer,
            steps_run: 0,
            foreign_thread: None,
            setup,
            _reporter: reporter,
        })
    }

    /// Leaves the CPU time of thread `tid` of this process out of the
    /// steps' `bench CPU` from now on (`None`: count every thread again).
    pub fn set_foreign_thread(&mut self, tid: Option<u32>) {
        self.foreign_thread = tid;
    }

    /// The bench's RSS and CPU time, without the foreign thread's CPU.
    fn bench_sample(&self) -> Option<ProcSample> {
        let mut sample = ProcSample::own().ok()?;
        if let Some(tid) = self.foreign_thread {
            let foreign = procstat::thread_cpu_ticks(tid).ok()?;
            sample.cpu_ticks = sample.cpu_ticks.saturating_sub(foreign);
        }
        Some(sample)
    }

    /// Connections that joined and have not ended.
    pub fn alive(&self) -> u64 {
        self.slots
            .iter()
            .filter(|s| s.alive.load(Ordering::Relaxed))
            .count() as u64
    }

    /// Runs one step: `warmup`, then `window` measured, at `rate_per_room`
    /// messages a second per room, then the drain; and collects it.
    pub async fn run_step(&mut self, rate_per_room: f64, window: Duration) -> StepReport {
        self.steps_run += 1;
        let number = self.steps_run;
        let args = &self.args;
        let shared = &self.shared;
        let warmup = Duration::from_secs_f64(args.warmup);
        let start_us = shared.now_us() + STEP_LEAD.as_micros() as u64;
        let window_start = start_us + warmup.as_micros() as u64;
        let window_end = window_start + window.as_micros() as u64;
        for h in &shared.latency {
            lock(h).reset();
        }
        lock(&shared.ack_latency).reset();
        lock(&shared.send_lag).reset();
        for h in &shared.read_latency {
            lock(h).reset();
        }
        shared.window_start.store(window_start, Ordering::Relaxed);
        shared.window_end.store(window_end, Ordering::Relaxed);
        let alive_at_start: Vec<bool> = self
            .slots
            .iter()
            .map(|s| s.alive.load(Ordering::Relaxed))
            .collect();
        let acked_before = shared.acked.load(Ordering::Relaxed);
        let delivered_before = shared.delivered.load(Ordering::Acquire);
        let offered = args.deliveries_per_sec(rate_per_room);
        let label =
            format!("step {number}: {rate_per_room:.2} msg/s per room ({offered:.0} deliveries/s)");
        shared.set_phase(format!("{label}, warm-up"));
        let plan = StepPlan {
            number,
            rate_per_sender: rate_per_room / args.senders as f64,
            start_us,
            end_us: window_end,
        };
        let senders = args.rooms * args.senders;
        self.pacer.plan(PacePlan {
            schedules: (0..senders).map(|i| plan.schedule(i, senders)).collect(),
        });
        self.steps.send_replace(Some(Arc::new(plan)));

        tokio::time::sleep_until(shared.instant(window_start)).await;
        shared.set_phase(format!("{label}, measuring"));
        let server_before = procstat::sample(args.common.server_pid);
        let bench_before = self.bench_sample();
        let stages_before = stages::scrape(&args.common.url).await;
        tokio::time::sleep_until(shared.instant(window_end)).await;
        let server_after = procstat::sample(args.common.server_pid);
        let bench_after = self.bench_sample();
        let stages_after = stages::scrape(&args.common.url).await;
        shared.set_phase(format!("{label}, draining"));

        // Drain: first every send answered, then every acked message
        // delivered to every member; bounded by --drain either way.
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.drain);
        while tokio::time::Instant::now() < deadline
            && !self.slots.iter().all(|s| {
                !s.sender
                    || !s.alive.load(Ordering::Relaxed)
                    || s.settled.load(Ordering::Relaxed) >= number
            })
        {
            tokio::time::sleep(DRAIN_POLL).await;
        }
        let acked = shared.acked.load(Ordering::Relaxed) - acked_before;
        let expected = acked * args.members;
        let mut last = shared.delivered.load(Ordering::Acquire);
        let mut last_change = tokio::time::Instant::now();
        while tokio::time::Instant::now() < deadline
            && last - delivered_before < expected
            && last_change.elapsed() < DRAIN_IDLE
        {
            tokio::time::sleep(DRAIN_POLL).await;
            let now = shared.delivered.load(Ordering::Acquire);
            if now != last {
                last = now;
                last_change = tokio::time::Instant::now();
            }
        }
        // Then every read answered (`--read-every`; none pending without).
        // A member counts a read as pending before the delivery that made
        // it due (see `on_batch`), so a delivery seen here brings its read.
        while tokio::time::Instant::now() < deadline
            && self.slots.iter().any(|s| {
                s.alive.load(Ordering::Relaxed) && s.reads_pending.load(Ordering::Relaxed) > 0
            })
        {
            tokio::time::sleep(DRAIN_POLL).await;
        }
        let drain_secs = shared.now_us().saturating_sub(window_end) as f64 / 1e6;
        shared.set_phase(format!("{label}, collecting"));

        let window_secs = window.as_secs_f64();
        let mut report = self.collect(&alive_at_start);
        report.step = number;
        report.rate_per_room = rate_per_room;
        report.offered_deliveries_per_sec = offered;
        report.window_secs = window_secs;
        report.deliveries_per_sec /= window_secs.max(1e-9);
        report.drain_secs = drain_secs;
        if let (Some(before), Some(after)) = (&stages_before, &stages_after) {
            report.stages = stages::between(before, after);
        }
        report.server = procstat::usage(server_before, server_after);
        report.server_cpu_fraction = report.server.map(|u| u.cpu_seconds / window_secs);
        report.bench_cpu_fraction =
            procstat::usage(bench_before, bench_after).map(|u| u.cpu_seconds / window_secs);
        report.bench_ceiling_deliveries_per_sec = report
            .bench_cpu_fraction
            .filter(|&f| f > 0.0)
            .map(|f| report.deliveries_per_sec / f);
        shared.set_phase(format!("{label}: done"));
        report
    }

    /// Takes every connection's account of the step and checks it. Leaves
    /// `deliveries_per_sec` as a count (the caller divides by the window).
    fn collect(&self, alive_at_start: &[bool]) -> StepReport {
        struct Room {
            acked: Vec<u64>,
            receivers: Vec<SeqSet>,
        }
        let mut rooms: Vec<Room> = (0..self.args.rooms)
            .map(|_| Room {
                acked: Vec::new(),
                receivers: Vec::new(),
            })
            .collect();
        let mut r = StepReport::default();
        let mut in_window = 0;
        for (slot, &was_alive) in self.slots.iter().zip(alive_at_start) {
            let st = lock(&slot.stats).take_step();
            if let Some(reason) = st.dropped {
                *r.dropped_connections.entry(reason).or_insert(0) += 1;
            }
            r.sent += st.sent;
            r.acked += st.acked;
            for (code, n) in st.errors {
                *r.errors.entry(code).or_insert(0) += n;
            }
            r.delivered += st.delivered;
            in_window += st.in_window;
            r.duplicated += st.duplicates;
            r.out_of_order += st.out_of_order;
            r.stale += st.stale;
            r.unexpected += st.too_far;
            r.undecodable += st.undecodable;
            r.unstamped += st.unstamped;
            r.unmatched_acks += st.unmatched;
            r.reads_sent += st.reads_sent;
            r.read_answers += st.read_answers;
            for (code, n) in st.read_errors {
                *r.read_errors.entry(code).or_insert(0) += n;
            }
            let room = &mut rooms[slot.room];
            room.acked.extend_from_slice(&st.acked_seqs);
            if was_alive {
                room.receivers.push(st.seen);
            }
        }
        let errors: u64 = r.errors.values().sum();
        r.unanswered += r.sent.saturating_sub(r.acked + errors);
        let read_errors: u64 = r.read_errors.values().sum();
        r.reads_unanswered = r.reads_sent.saturating_sub(r.read_answers + read_errors);
        for room in &mut rooms {
            if let Some(&min) = room.acked.iter().min() {
                r.seq_violations += seqcheck::check(min - 1, &mut room.acked).violations();
            }
            for seen in &room.receivers {
                r.expected_deliveries += room.acked.len() as u64;
                let missing = seen.missing_from(&room.acked);
                r.lost += missing;
                let got = room.acked.len() as u64 - missing;
                r.unexpected += seen.len().saturating_sub(got);
            }
        }
        let mut latency = stats::latency_histogram();
        for h in &self.shared.latency {
            stats::merge(&mut latency, &lock(h));
        }
        r.latency_us = LatencySummary::of(&latency);
        r.ack_latency_us = LatencySummary::of(&lock(&self.shared.ack_latency));
        let mut read_latency = stats::latency_histogram();
        for h in &self.shared.read_latency {
            stats::merge(&mut read_latency, &lock(h));
        }
        r.read_latency_us = LatencySummary::of(&read_latency);
        r.send_lag_us = LatencySummary::of(&lock(&self.shared.send_lag));
        r.deliveries_per_sec = in_window as f64;
        r
    }

    /// Ends every connection task (their sockets close as they drop) and
    /// the pacer.
    pub fn close(self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The once-a-second progress line of a fleet.
fn spawn_progress(scenario: &'static str, shared: Arc<Shared>, total: u64) -> Reporter {
    let mut delivered = Rate::default();
    let mut sent = Rate::default();
    let mut reads = Rate::default();
    let mut cpu_before = ProcSample::own().ok();
    progress::spawn_line(move |elapsed, dt| {
        let d = shared.delivered.load(Ordering::Relaxed);
        let s = shared.sent.load(Ordering::Relaxed);
        let r = shared.reads_sent.load(Ordering::Relaxed);
        let reads = if r > 0 {
            format!(
                " | {:.0} reads/s, answered {}, read errors {}",
                reads.per_second(r, dt),
                shared.read_answers.load(Ordering::Relaxed),
                shared.read_errors.load(Ordering::Relaxed)
            )
        } else {
            String::new()
        };
        let cpu_now = ProcSample::own().ok();
        let cpu =
            procstat::usage(cpu_before, cpu_now).map_or(0.0, |u| u.cpu_seconds / dt.max(1e-9));
        cpu_before = cpu_now;
        let (w0, w1) = shared.window();
        let now = shared.now_us();
        let bar = if w1 != u64::MAX && now >= w0 && now < w1 {
            format!(
                " {}",
                progress::bar((now - w0) as f64 / (w1 - w0).max(1) as f64, 20)
            )
        } else {
            String::new()
        };
        format!(
            "[{:>4}s] {scenario}: {}{bar} | joined {}/{total} failed {} dropped {} | {:.0} deliveries/s, {:.0} sends/s, errors {}{reads} | bench CPU {:.0}%",
            elapsed.as_secs(),
            lock(&shared.phase),
            shared.joined.load(Ordering::Relaxed),
            shared.failed.load(Ordering::Relaxed),
            shared.dropped.load(Ordering::Relaxed),
            delivered.per_second(d, dt),
            sent.per_second(s, dt),
            shared.errors.load(Ordering::Relaxed),
            cpu * 100.0,
        )
    })
}

/// What a sending member needs beyond receiving.
struct SenderState {
    /// Index among all senders of the run (its stamp and schedule phase).
    index: u64,
    total: u64,
    /// Notified by the pacer when a send is due.
    wake: Arc<Notify>,
    /// `{"type":"send","room":<room>,"text":"`
    head: Vec<u8>,
    /// The room's name as a JSON string.
    room_json: Arc<str>,
    schedule: Option<Schedule>,
    /// Number of the step being sent.
    step: u64,
    /// Scheduled time + 1 of each outstanding send, at `ref % ACK_RING`
    /// (0 = free).
    ring: Vec<u64>,
    next_ref: u64,
    outstanding: u64,
    text: String,
    json: Vec<u8>,
    /// With `--changes-percent`: which sends are changes.
    mix: Option<ChangeMix>,
}

impl SenderState {
    fn new(
        room_json: &Arc<str>,
        index: u64,
        total: u64,
        wake: Arc<Notify>,
        changes_percent: u64,
    ) -> SenderState {
        SenderState {
            index,
            total,
            wake,
            head: format!(r#"{{"type":"send","room":{room_json},"text":""#).into_bytes(),
            room_json: room_json.clone(),
            schedule: None,
            step: 0,
            ring: vec![0; ACK_RING as usize],
            // 0 is the join's ref.
            next_ref: JOIN_REF + 1,
            outstanding: 0,
            text: String::new(),
            json: Vec::new(),
            mix: (changes_percent > 0).then(|| ChangeMix::new(changes_percent, ACK_RING as usize)),
        }
    }

    fn start(&mut self, plan: &StepPlan) {
        self.step = plan.number;
        self.schedule = Some(plan.schedule(self.index, self.total));
    }

    /// Queues every send due by `now`; returns how many.
    fn send_due(
        &mut self,
        ws: &mut RawWs,
        shared: &Shared,
        stats: &mut ConnStats,
        now: u64,
    ) -> u64 {
        let Some(schedule) = self.schedule.as_mut() else {
            return 0;
        };
        let mut n = 0;
        let mut lag = None;
        while let Some(due) = schedule.pop_due(now) {
            let reference = self.next_ref;
            self.next_ref += 1;
            self.text.clear();
            Stamp {
                sender: self.index as u32,
                counter: reference,
                micros: due,
            }
            .write_text(shared.text_bytes, &mut self.text);
            self.json.clear();
            let next = self
                .mix
                .as_mut()
                .map_or(Next::Message, |m| m.next(reference));
            match shared.protocol {
                Protocol::Native if next != Next::Message => {
                    ChangeMix::write(next, &self.room_json, &self.text, reference, &mut self.json);
                }
                Protocol::Native => {
                    self.json.extend_from_slice(&self.head);
                    self.json.extend_from_slice(self.text.as_bytes());
                    self.json.extend_from_slice(b"\",\"ref\":");
                    // Writing into a Vec cannot fail.
                    let _ = write!(self.json, "{reference}");
                    self.json.push(b'}');
                }
                Protocol::Socketio => {
                    sio::message_head(&self.room_json, Some(reference), &mut self.json);
                    self.json.extend_from_slice(self.text.as_bytes());
                    self.json.extend_from_slice(sio::MESSAGE_TAIL);
                }
                Protocol::SocketioSeed => {
                    sio::message_head(&self.room_json, None, &mut self.json);
                    self.json.extend_from_slice(self.text.as_bytes());
                    self.json.extend_from_slice(sio::MESSAGE_TAIL);
                }
            }
            ws.queue_text(&self.json);
            stats.sent += 1;
            n += 1;
            stats::record(
                lag.get_or_insert_with(|| lock(&shared.send_lag)),
                now.saturating_sub(due),
            );
            if shared.protocol == Protocol::SocketioSeed {
                // Nothing will answer: acked as sent, the counter as seq.
                stats.acked += 1;
                stats.acked_seqs.push(reference);
                shared.acked.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let slot = &mut self.ring[(reference % ACK_RING) as usize];
            if *slot != 0 {
                // Unanswered after ACK_RING later sends: given up on (it
                // stays in `sent` without an ack, so it shows as unanswered).
                self.outstanding -= 1;
            }
            *slot = due + 1;
            self.outstanding += 1;
        }
        n
    }

    /// The scheduled time of send `reference`, if it is outstanding; marks it
    /// answered.
    fn complete(&mut self, reference: u64) -> Option<u64> {
        if reference == JOIN_REF
            || reference >= self.next_ref
            || self.next_ref - reference > ACK_RING
        {
            return None;
        }
        let slot = &mut self.ring[(reference % ACK_RING) as usize];
        let due = slot.checked_sub(1)?;
        *slot = 0;
        self.outstanding -= 1;
        Some(due)
    }

    /// All of this step's sends are out and answered.
    fn settled(&self) -> bool {
        self.outstanding == 0
            && self
                .schedule
                .as_ref()
                .is_some_and(|s| s.next_due().is_none())
    }
}

/// One connection task.
struct Connection {
    slot: Arc<Slot>,
    shared: Arc<Shared>,
    steps: watch::Receiver<Option<Arc<StepPlan>>>,
    role: Option<SenderState>,
    /// With `--read-every`: the member's reads.
    reader: Option<Reader>,
}

impl Connection {
    #[allow(clippy::too_many_arguments)]
    async fn run(
        mut self,
        url: String,
        source: Option<IpAddr>,
        name: String,
        room_json: Arc<str>,
        read_buffer: usize,
        join_timeout: Duration,
        permit: OwnedSemaphorePermit,
        ready: mpsc::UnboundedSender<Result<u64, String>>,
    ) {
        let t0 = Instant::now();
        let seed = t0.duration_since(self.shared.origin).as_nanos() as u64
            ^ ((self.slot.room as u64) << 32);
        let protocol = self.shared.protocol;
        let opened = tokio::time::timeout(join_timeout, async {
            match protocol {
                Protocol::Native => {
                    connect_and_join(&url, source, &room_json, read_buffer, seed).await
                }
                _ => {
                    sio::connect_and_join(
                        &url,
                        source,
                        protocol,
                        &room_json,
                        &name,
                        read_buffer,
                        seed,
                    )
                    .await
                }
            }
        })
        .await
        .map_err(|_| anyhow!("not joined within {join_timeout:?}"))
        .and_then(|r| r);
        drop(permit);
        let (mut ws, base_seq) = match opened {
            Ok(x) => x,
            Err(e) => {
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
                let _ = ready.send(Err(format!("{e:#}")));
                return;
            }
        };
        lock(&self.slot.stats).seen = SeqSet::new(base_seq + 1);
        self.slot.alive.store(true, Ordering::Relaxed);
        self.shared.joined.fetch_add(1, Ordering::Relaxed);
        let _ = ready.send(Ok(t0.elapsed().as_micros() as u64));
        drop(ready);

        let ended = match self.role.take() {
            Some(role) => self.send_and_receive(&mut ws, role).await,
            None => self.receive(&mut ws).await,
        };
        if let Err(reason) = ended {
            self.slot.alive.store(false, Ordering::Relaxed);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            lock(&self.slot.stats).dropped = Some(reason);
        }
    }

    /// A member that only listens; returns why the connection ended.
    async fn receive(&mut self, ws: &mut RawWs) -> Result<(), String> {
        loop {
            match ws.fill().await {
                Ok(0) => return Err("connection ended".into()),
                Err(e) => return Err(format!("read: {e}")),
                Ok(_) => {}
            }
            on_batch(ws, &self.slot, &self.shared, None, self.reader.as_mut())?;
            // The reads the batch made due, if any, then the pongs.
            ws.flush().await.map_err(|e| format!("write: {e}"))?;
            ws.flush_control()
                .await
                .map_err(|e| format!("write: {e}"))?;
        }
    }

    /// A member that also sends, on the schedule of the current step.
    async fn send_and_receive(
        &mut self,
        ws: &mut RawWs,
        mut role: SenderState,
    ) -> Result<(), String> {
        let shared = self.shared.clone();
        let wake = role.wake.clone();
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut armed = false;
        let mut watching = true;
        loop {
            tokio::select! {
                biased;
                changed = self.steps.changed(), if watching => {
                    if changed.is_err() {
                        watching = false;
                        continue;
                    }
                    let plan = self.steps.borrow_and_update().clone();
                    if let Some(plan) = plan {
                        role.start(&plan);
                    }
                }
                () = wake.notified() => {
                    let now = shared.now_us();
                    let sent = role.send_due(ws, &shared, &mut lock(&self.slot.stats), now);
                    shared.sent.fetch_add(sent, Ordering::Relaxed);
                    ws.flush().await.map_err(|e| format!("write: {e}"))?;
                }
                () = &mut timer, if armed => {
                    let now = shared.now_us();
                    let sent = role.send_due(ws, &shared, &mut lock(&self.slot.stats), now);
                    shared.sent.fetch_add(sent, Ordering::Relaxed);
                    ws.flush().await.map_err(|e| format!("write: {e}"))?;
                }
                filled = ws.fill() => {
                    match filled {
                        Ok(0) => return Err("connection ended".into()),
                        Err(e) => return Err(format!("read: {e}")),
                        Ok(_) => {}
                    }
                    on_batch(ws, &self.slot, &shared, Some(&mut role), self.reader.as_mut())?;
                    ws.flush().await.map_err(|e| format!("write: {e}"))?;
                    ws.flush_control().await.map_err(|e| format!("write: {e}"))?;
                }
            }
            match role.schedule.as_ref().and_then(Schedule::next_due) {
                Some(due) => {
                    let fallback = due + PACER_FALLBACK.as_micros() as u64;
                    timer.as_mut().reset(shared.instant(fallback));
                    armed = true;
                }
                None => armed = false,
            }
            if role.settled() && self.slot.settled.load(Ordering::Relaxed) < role.step {
                self.slot.settled.store(role.step, Ordering::Relaxed);
            }
        }
    }
}

/// A connection past its welcome.
pub struct Welcomed {
    pub ws: RawWs,
    /// The credential that makes a later connection (`?guest=`) the same
    /// guest, when the server gave one.
    pub guest_token: Option<String>,
}

/// Upgrades (from `source`, see [`RawWs::connect`]) and reads the welcome.
pub async fn connect_welcomed(
    url: &str,
    source: Option<IpAddr>,
    read_buffer: usize,
    seed: u64,
) -> anyhow::Result<Welcomed> {
    let mut ws = RawWs::connect(url, read_buffer, seed, source).await?;
    let welcome = ws.next_text().await?;
    match decode_full(&welcome) {
        Ok(ServerFrame::Welcome(WelcomeBody { guest_token, .. })) => {
            Ok(Welcomed { ws, guest_token })
        }
        Ok(other) => bail!("expected welcome, got {}", other.type_name()),
        Err(e) => bail!("undecodable first frame: {e}"),
    }
}

/// Joins `room_json` and waits for the reply; the room's `seq` at join
/// time.
pub async fn join_room(ws: &mut RawWs, room_json: &str) -> anyhow::Result<u64> {
    let join = format!(r#"{{"type":"join","room":{room_json},"ref":{JOIN_REF}}}"#);
    ws.send_text(join.as_bytes()).await?;
    loop {
        let text = ws.next_text().await?;
        let peek = Peek::parse(&text).map_err(|e| anyhow!("undecodable frame: {e}"))?;
        if !matches!(&*peek.kind, "joined" | "error") {
            // Presence of members joining meanwhile.
            continue;
        }
        match decode_full(&text) {
            Ok(ServerFrame::Joined {
                body: JoinedBody { seq, .. },
                ..
            }) => return Ok(seq),
            Ok(ServerFrame::Error {
                body: ErrorBody { code, message, .. },
                ..
            }) => {
                bail!("join refused: {code}: {message}")
            }
            Ok(other) => bail!("expected joined, got {}", other.type_name()),
            Err(e) => bail!("undecodable {} frame: {e}", peek.kind),
        }
    }
}

/// Upgrades (from `source`, see [`RawWs::connect`]), reads the welcome,
/// joins `room_json` and waits for the reply; the room's `seq` at join time.
async fn connect_and_join(
    url: &str,
    source: Option<IpAddr>,
    room_json: &str,
    read_buffer: usize,
    seed: u64,
) -> anyhow::Result<(RawWs, u64)> {
    let mut welcomed = connect_welcomed(url, source, read_buffer, seed).await?;
    let seq = join_room(&mut welcomed.ws, room_json).await?;
    Ok((welcomed.ws, seq))
}

/// Accounts for every complete frame in the connection's buffer: one lock
/// of its counters and at most one of a latency shard per socket read.
/// With a `reader` (`--read-every`), queues the reads the new deliveries
/// made due (the caller flushes them) and matches the answers to earlier
/// ones.
fn on_batch(
    ws: &mut RawWs,
    slot: &Slot,
    shared: &Shared,
    mut role: Option<&mut SenderState>,
    mut reader: Option<&mut Reader>,
) -> Result<(), String> {
    let now = shared.now_us();
    let (w0, w1) = shared.window();
    let in_window = now >= w0 && now < w1;
    let mut stats = lock(&slot.stats);
    let mut latency = None;
    let mut read_latency = None;
    let mut delivered = 0;
    let mut acked = 0;
    let mut errors = 0;
    let mut read_answers = 0;
    let mut read_errors = 0;
    let mut pongs = 0;
    let result = loop {
        let bytes = match ws.next_frame() {
            Err(e) => break Err(format!("bad frame: {e}")),
            Ok(None) => break Ok(()),
            Ok(Some(Frame::Close(code))) => {
                break Err(match code {
                    Some(code) => format!("closed by server: {code}"),
                    None => "closed by server".into(),
                });
            }
            Ok(Some(Frame::Text(bytes))) => bytes,
        };
        let hot = match shared.protocol {
            Protocol::Native => Hot::native(bytes),
            protocol => Hot::socketio(bytes, protocol),
        };
        match hot {
            Hot::Change { seq } => {
                delivered += 1;
                if account_delivery(&mut stats, seq, in_window) {
                    read_on(reader.as_deref_mut(), &mut stats, seq, now);
                }
            }
            Hot::Message { seq, text } => {
                delivered += 1;
                if !account_delivery(&mut stats, seq, in_window) {
                    continue;
                }
                read_on(reader.as_deref_mut(), &mut stats, seq, now);
                match text.as_deref().and_then(|t| Stamp::parse(t.as_bytes())) {
                    Some(stamp) if stamp.micros >= w0 && stamp.micros < w1 => {
                        let h = latency.get_or_insert_with(|| {
                            lock(&shared.latency[slot.room % LATENCY_SHARDS])
                        });
                        stats::record(h, now.saturating_sub(stamp.micros));
                    }
                    Some(_) => {}
                    None => stats.unstamped += 1,
                }
            }
            Hot::Ack {
                reference,
                seq,
                duplicate,
            } => {
                let due = reference.and_then(|r| role.as_deref_mut().and_then(|s| s.complete(r)));
                let Some(due) = due else {
                    stats.unmatched += 1;
                    continue;
                };
                acked += 1;
                stats.acked += 1;
                if let (Some(r), Some(seq), Some(mix)) = (
                    reference,
                    seq,
                    role.as_deref_mut().and_then(|s| s.mix.as_mut()),
                ) {
                    mix.acked(r, seq);
                }
                match (duplicate, seq) {
                    (false, Some(seq)) => stats.acked_seqs.push(seq),
                    // No send carries an id, so no ack can be a duplicate.
                    (true, _) => stats.unmatched += 1,
                    (false, None) => stats.undecodable += 1,
                }
                if due >= w0 && due < w1 {
                    stats::record(&mut lock(&shared.ack_latency), now.saturating_sub(due));
                }
            }
            Hot::Read { reference: Some(r) } if reads::is_read_ref(r) => {
                let Some(sent) = reader.as_deref_mut().and_then(|rd| rd.answered(r)) else {
                    stats.unmatched += 1;
                    continue;
                };
                read_answers += 1;
                stats.read_answers += 1;
                if sent >= w0 && sent < w1 {
                    let h = read_latency.get_or_insert_with(|| {
                        lock(&shared.read_latency[slot.room % LATENCY_SHARDS])
                    });
                    stats::record(h, now.saturating_sub(sent));
                }
            }
            // The person's marker moved on another connection: news, not
            // an answer.
            Hot::Read { reference: None } => {}
            Hot::Read { reference: Some(_) } => stats.unmatched += 1,
            Hot::Error {
                reference: Some(r),
                code,
            } if reads::is_read_ref(r) => {
                // A refused read: a failure whether or not it was still
                // tracked.
                if let Some(rd) = reader.as_deref_mut() {
                    rd.answered(r);
                }
                read_errors += 1;
                *stats.read_errors.entry(code).or_insert(0) += 1;
            }
            Hot::Error { reference, code } => {
                errors += 1;
                *stats.errors.entry(code).or_insert(0) += 1;
                if reference
                    .and_then(|r| role.as_deref_mut().and_then(|s| s.complete(r)))
                    .is_none()
                {
                    stats.unmatched += 1;
                }
            }
            Hot::Ping => pongs += 1,
            Hot::Unstamped => stats.unstamped += 1,
            Hot::Undecodable => stats.undecodable += 1,
            // Presence, typing and anything else need nothing.
            _ => {}
        }
    };
    drop(latency);
    drop(read_latency);
    drop(stats);
    for _ in 0..pongs {
        // Engine.IO's heartbeat: the caller flushes it with the pongs.
        ws.queue_control_text(b"3");
    }
    if let Some(rd) = reader {
        let sent = rd.write_queued(|frame| ws.queue_text(frame));
        shared.reads_sent.fetch_add(sent, Ordering::Relaxed);
        shared
            .read_answers
            .fetch_add(read_answers, Ordering::Relaxed);
        shared.read_errors.fetch_add(read_errors, Ordering::Relaxed);
        // Before the deliveries are counted (Release below): the drain,
        // seeing them, sees the reads they made due pending.
        slot.reads_pending.store(rd.pending(), Ordering::Relaxed);
    }
    shared.delivered.fetch_add(delivered, Ordering::Release);
    shared.acked.fetch_add(acked, Ordering::Relaxed);
    shared.errors.fetch_add(errors, Ordering::Relaxed);
    result
}

/// A new `seq` was delivered: a read of it is due every `--read-every`.
fn read_on(reader: Option<&mut Reader>, stats: &mut ConnStats, seq: u64, now: u64) {
    if let Some(rd) = reader
        && rd.received(seq, now)
    {
        stats.reads_sent += 1;
    }
}

/// Counts a delivery of `seq` (a message or a change); whether it is new,
/// in or out of order, rather than a repeat or out of range.
fn account_delivery(stats: &mut ConnStats, seq: u64, in_window: bool) -> bool {
    stats.delivered += 1;
    stats.in_window += u64::from(in_window);
    match stats.seen.insert(seq) {
        Seen::InOrder => true,
        Seen::OutOfOrder => {
            stats.out_of_order += 1;
            true
        }
        Seen::Duplicate => {
            stats.duplicates += 1;
            false
        }
        Seen::Stale => {
            stats.stale += 1;
            false
        }
        Seen::TooFar => {
            stats.too_far += 1;
            false
        }
    }
}

/// One frame as the accounting sees it, whichever the protocol.
enum Hot<'a> {
    /// A broadcast: its `seq` (or, in the seed dialect, its stamp's
    /// counter) and the text carrying the stamp.
    Message {
        seq: u64,
        text: Option<Cow<'a, str>>,
    },
    Ack {
        reference: Option<u64>,
        seq: Option<u64>,
        duplicate: bool,
    },
    Error {
        reference: Option<u64>,
        code: String,
    },
    /// A `read` frame: the answer to one of ours (`ref`), or news of the
    /// person's marker from another connection (no `ref`). Its `seq` is a
    /// read marker, not a delivery.
    Read {
        reference: Option<u64>,
    },
    /// Engine.IO's ping, owed a pong.
    Ping,
    /// A seed-dialect message without the bench's stamp.
    Unstamped,
    Undecodable,
    /// A change without text (a reaction): a delivery in the room's
    /// sequence, with no latency stamp.
    Change {
        seq: u64,
    },
    /// Presence, typing and anything else: nothing to account.
    Other,
}

impl<'a> Hot<'a> {
    fn native(bytes: &'a [u8]) -> Hot<'a> {
        let Ok(peek) = Peek::parse_bytes(bytes) else {
            return Hot::Undecodable;
        };
        match &*peek.kind {
            // An edit carries its new text, and with it the stamp.
            "message" | "edited" => match peek.seq {
                Some(seq) => Hot::Message {
                    seq,
                    text: peek.text,
                },
                None => Hot::Undecodable,
            },
            "reaction" | "deleted" | "pinned" => match peek.seq {
                Some(seq) => Hot::Change { seq },
                None => Hot::Undecodable,
            },
            "ack" => Hot::Ack {
                reference: peek.ref_number(),
                seq: peek.seq,
                duplicate: peek.duplicate,
            },
            "read" => Hot::Read {
                reference: peek.ref_number(),
            },
            "error" => {
                let decoded = std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|t| decode_full(t).ok());
                let Some(ServerFrame::Error {
                    reference,
                    body: ErrorBody { code, .. },
                }) = decoded
                else {
                    return Hot::Undecodable;
                };
                Hot::Error {
                    reference: reference.and_then(|r| match r {
                        Ref::Number(n) => n.as_u64(),
                        Ref::Text(_) => None,
                    }),
                    code: code.as_str().to_string(),
                }
            }
            _ => Hot::Other,
        }
    }

    fn socketio(bytes: &'a [u8], protocol: Protocol) -> Hot<'a> {
        match sio::read(bytes) {
            sio::Incoming::Message { seq, text } => {
                if protocol != Protocol::SocketioSeed {
                    return match seq {
                        Some(seq) => Hot::Message { seq, text },
                        None => Hot::Undecodable,
                    };
                }
                if text
                    .as_deref()
                    .is_some_and(|t| t.starts_with(sio::PROBE_PREFIX))
                {
                    return Hot::Other;
                }
                match text.as_deref().and_then(|t| Stamp::parse(t.as_bytes())) {
                    Some(stamp) => Hot::Message {
                        seq: stamp.counter,
                        text,
                    },
                    None => Hot::Unstamped,
                }
            }
            sio::Incoming::Ack { id, seq, duplicate } => Hot::Ack {
                reference: Some(id),
                seq,
                duplicate,
            },
            sio::Incoming::Error { id, code } => Hot::Error {
                reference: id,
                code,
            },
            sio::Incoming::Ping => Hot::Ping,
            sio::Incoming::Other => Hot::Other,
            sio::Incoming::Undecodable => Hot::Undecodable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::{ErrorCode, ReadBody};

    fn read_frame(reference: Option<u64>) -> String {
        ServerFrame::Read {
            reference: reference.map(|r| Ref::Number(r.into())),
            body: ReadBody {
                room: "bench-0".into(),
                seq: 9,
                unread: 2,
                unread_mentions: 1,
            },
        }
        .to_json()
    }

    #[test]
    fn a_read_answer_is_not_a_delivery() {
        let answer = read_frame(Some(reads::READ_REF_BASE + 4));
        assert!(matches!(
            Hot::native(answer.as_bytes()),
            Hot::Read { reference: Some(r) } if r == reads::READ_REF_BASE + 4
        ));
        // News of the person's marker from another connection.
        let news = read_frame(None);
        assert!(matches!(
            Hot::native(news.as_bytes()),
            Hot::Read { reference: None }
        ));
    }

    #[test]
    fn an_error_answering_a_read_carries_its_ref() {
        let refused = ServerFrame::Error {
            reference: Some(Ref::Number(reads::READ_REF_BASE.into())),
            body: ErrorBody {
                code: ErrorCode::Overloaded,
                message: "later".into(),
                room: None,
            },
        }
        .to_json();
        match Hot::native(refused.as_bytes()) {
            Hot::Error {
                reference: Some(r),
                code,
            } => {
                assert!(reads::is_read_ref(r));
                assert_eq!(code, "overloaded");
            }
            _ => panic!("not an error"),
        }
    }

    #[test]
    fn read_counts_add_up_per_step() {
        let mut stats = ConnStats::default();
        let mut reader = Reader::new(2, r#""bench-0""#.into());
        for seq in 1..=5 {
            read_on(Some(&mut reader), &mut stats, seq, seq * 10);
        }
        read_on(None, &mut stats, 6, 60);
        assert_eq!(stats.reads_sent, 2);
        assert_eq!(reader.pending(), 2);
        let step = stats.take_step();
        assert_eq!(step.reads_sent, 2);
        assert_eq!(stats.reads_sent, 0);
    }
}
