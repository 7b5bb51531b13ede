//! `soak`: hold many connections for a long time under steady traffic and
//! churn, and watch the server for drift: memory, file descriptors and
//! tasks that grow with the churn rather than with the load (a leak), and
//! latency that worsens over time.
//!
//! `--connections` members are spread over `--rooms` rooms; member `r` of
//! the first `--rooms` is room `r`'s sender (at `--rate` messages a second,
//! stamped like `fanout`'s, see [`Stamp`], and paced by the [`Pacer`]).
//! Senders stay put; every other member may be told, at random, to *move*
//! (`leave` its room, then `join` another, `--churn-per-sec` moves a
//! second in all) or to *reconnect* (drop its TCP connection, open a new
//! one and `join` its room again with `since` = the last `seq` it had,
//! `--reconnects-per-sec` a second).
//!
//! Every member checks its room's `seq`s as they come, live or in a resume
//! reply: each must be the one after the last (a higher one is a gap: lost
//! messages; a repeat or a lower one is duplicated or out of order, told
//! apart by a [`SeqSet`]). At the end, once the senders are answered and
//! the deliveries have drained, every member must hold its room's last
//! acked `seq`, and each room's acked `seq`s must be exactly the next ones
//! after the room's `seq` when its sender joined ([`seqcheck`]).
//!
//! Every `--sample-every` the controller records the server's RSS and open
//! file descriptors (`--server-pid`, from /proc), its live tasks
//! (`chat_runtime_alive_tasks` on `--metrics-url`), and the bench's own
//! account of the window: delivery latency percentiles, deliveries, moves,
//! reconnects, errors and violations. The report fits a least-squares line
//! through each resource's samples after `--warmup` and gives its slope
//! per hour as a share of the value at the end of the warm-up, and compares
//! p99 over the first tenth of the measured time with the last tenth. The
//! drift is reported, not judged: what is a leak depends on the run; a
//! violation or an error makes the exit status 1.
//!
//! A reconnecting member comes back as the same guest (`?guest=` with the
//! credential of its last welcome), as a real client does. Native protocol
//! only: the resume with `since` is what it exercises.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure};
use chat_protocol::{ErrorBody, JoinedBody, Ref, ServerFrame};
use hdrhistogram::Histogram;
use rand::Rng;
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::fleet::{Welcomed, connect_welcomed, join_room};
use crate::frame::{Peek, decode_full};
use crate::pacer::{PacePlan, Pacer};
use crate::plot::{self, Axis, Chart, Series};
use crate::procstat;
use crate::rawws::{Frame, RawWs};
use crate::schedule::Schedule;
use crate::seqcheck::{self, Coverage};
use crate::seqset::{Seen, SeqSet};
use crate::sio::Protocol;
use crate::stamp::Stamp;
use crate::stats::{self, LatencySummary, micros};
use crate::{CommonArgs, Table, conn, emit, progress, stages};

/// Latency histograms shared by the members, each for a slice of them.
const LATENCY_SHARDS: usize = 16;

/// A member's [`SeqSet`] starts afresh after this many `seq`s, so an hour's
/// run does not keep an hour of bits per member; a repeat of a `seq` from
/// before is then told by its being at or below the last one seen.
const SEQSET_SPAN: u64 = 4096;

/// How often the controller hands out moves and reconnects.
const CHURN_TICK: Duration = Duration::from_millis(100);

/// Delay between the last join and the first send.
const START_LEAD: Duration = Duration::from_millis(200);

/// The gauge of the server's live tasks.
pub const TASKS_GAUGE: &str = "chat_runtime_alive_tasks";

/// File descriptors the bench keeps for itself besides its connections.
const FD_RESERVE: u64 = 64;

#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Connections held, senders included.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(2..))]
    pub connections: u64,
    /// Rooms, each with one sender among the connections.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub rooms: u64,
    /// Messages a second per room.
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Moves a second in all: a member leaves its room and joins another.
    #[arg(long, default_value_t = 20.0)]
    pub churn_per_sec: f64,
    /// Reconnects a second in all: a member drops its connection, opens a
    /// new one and resumes its room with `since`.
    #[arg(long, default_value_t = 10.0)]
    pub reconnects_per_sec: f64,
    /// How long the traffic runs (`90s`, `10m`, `1h`).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Time between samples.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub sample_every: Duration,
    /// Samples before this are left out of the drift [default: a tenth of
    /// --duration].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
    /// The server's Prometheus endpoint, for its task count (plain HTTP)
    /// [default: `/metrics` on the host and port of --url].
    #[arg(long, value_name = "URL")]
    pub metrics_url: Option<String>,
    /// Bytes of text per message: the latency stamp, then filler.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4000))]
    pub text_bytes: u64,
    /// Connections being opened at the same time at the start.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: u64,
    /// Seconds one connection may take to connect and join.
    #[arg(long, default_value_t = 30)]
    pub join_timeout: u64,
    /// Most seconds to wait after the traffic for the last acks, and for
    /// every member to hold its room's last message.
    #[arg(long, default_value_t = 30.0)]
    pub drain: f64,
    /// Initial receive buffer per connection, bytes (it grows for a larger
    /// message, such as a resume's reply).
    #[arg(long, default_value_t = 16 * 1024)]
    pub read_buffer: usize,
}

impl SoakArgs {
    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.common.protocol == Protocol::Native,
            "soak speaks the native protocol only (--protocol native)"
        );
        ensure!(
            self.connections >= self.rooms,
            "--connections ({}) must be at least --rooms ({}): one sender per room",
            self.connections,
            self.rooms
        );
        ensure!(self.rate > 0.0, "--rate must be positive");
        ensure!(
            self.churn_per_sec >= 0.0 && self.reconnects_per_sec >= 0.0,
            "--churn-per-sec and --reconnects-per-sec must not be negative"
        );
        ensure!(
            !self.duration.is_zero() && !self.sample_every.is_zero(),
            "--duration and --sample-every must be positive"
        );
        ensure!(
            self.warmup() < self.duration,
            "--warmup must be shorter than --duration"
        );
        ensure!(self.drain >= 0.0, "--drain must not be negative");
        if let Some(limit) = conn::open_files_limit() {
            let need = self.connections + FD_RESERVE;
            ensure!(
                need <= limit,
                "{} connections need {need} file descriptors but `ulimit -n` is {limit}",
                self.connections
            );
        }
        Ok(())
    }

    fn warmup(&self) -> Duration {
        self.warmup.unwrap_or(self.duration / 10)
    }

    /// `host:port` of the metrics endpoint.
    fn metrics_authority(&self) -> anyhow::Result<String> {
        match &self.metrics_url {
            Some(url) => {
                let rest = url
                    .strip_prefix("http://")
                    .ok_or_else(|| anyhow!("--metrics-url must be http://HOST:PORT/metrics"))?;
                let (authority, path) = rest.split_once('/').unwrap_or((rest, "metrics"));
                ensure!(
                    path == "metrics",
                    "--metrics-url must end in /metrics, not /{path}"
                );
                Ok(authority.to_string())
            }
            None => {
                let url = self.common.url_at(0);
                let rest = url
                    .strip_prefix("ws://")
                    .ok_or_else(|| anyhow!("give --metrics-url: --url is not ws://"))?;
                Ok(rest.split('/').next().unwrap_or(rest).to_string())
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Running totals, bumped by the members and read by the sampler.
#[derive(Debug, Default)]
struct Totals {
    /// Members that joined at the start.
    joined: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    delivered: AtomicU64,
    /// Messages received in a resume's `joined` reply.
    resumed: AtomicU64,
    moves: AtomicU64,
    reconnects: AtomicU64,
    /// Moves and reconnects not started because the member was still busy
    /// with its previous one.
    churn_skipped: AtomicU64,
    lost: AtomicU64,
    duplicated: AtomicU64,
    out_of_order: AtomicU64,
    /// Messages of a room the member was not in.
    unexpected: AtomicU64,
    /// Resumes answered with `complete:false`.
    incomplete_resumes: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
    /// Members connected and joined (or between a leave and a join).
    open: AtomicU64,
}

impl Totals {
    fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn violations(&self) -> u64 {
        Self::get(&self.lost)
            + Self::get(&self.duplicated)
            + Self::get(&self.out_of_order)
            + Self::get(&self.unexpected)
    }
}

/// State the members and the controller share.
struct Shared {
    origin: Instant,
    totals: Totals,
    latency: Vec<Mutex<Histogram<u64>>>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// Each room's name as a JSON string.
    rooms: Vec<Arc<str>>,
    text_bytes: usize,
    /// The senders' schedule, set once every member has joined.
    traffic: Mutex<Option<Traffic>>,
    /// Each member's room and last `seq`, for the drain to wait on.
    progress: Vec<Progress>,
    /// Each room's highest acked `seq` (0: none yet).
    room_acked: Vec<AtomicU64>,
}

/// Where a member is: its room (`NO_ROOM` between rooms) and the last
/// `seq` it has there.
#[derive(Debug)]
struct Progress {
    room: AtomicU64,
    last: AtomicU64,
}

const NO_ROOM: u64 = u64::MAX;

impl Progress {
    fn set(&self, view: Option<&View>) {
        match view {
            Some(v) => {
                self.last.store(v.last, Ordering::Relaxed);
                self.room.store(v.room as u64, Ordering::Relaxed);
            }
            None => self.room.store(NO_ROOM, Ordering::Relaxed),
        }
    }
}

/// The traffic of a run: every sender at `rate` from `start_us` to
/// `end_us`, spread over one period.
#[derive(Debug, Clone, Copy)]
struct Traffic {
    start_us: u64,
    end_us: u64,
    rate: f64,
    senders: u64,
}

impl Traffic {
    fn schedule(&self, sender: u64) -> Schedule {
        Schedule::new(self.start_us, self.end_us, self.rate, sender, self.senders)
    }
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }

    fn error(&self, what: String) {
        Totals::bump(&self.totals.errors, 1);
        *lock(&self.errors).entry(what).or_insert(0) += 1;
    }
}

/// What the controller tells a member.
#[derive(Debug, Clone, Copy)]
enum Command {
    /// Leave the room and join this one.
    Move(usize),
    /// Drop the connection, open another, resume the room.
    Reconnect,
}

/// The request a member waits on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pending {
    None,
    /// `join` of a room, resuming after `since` or afresh.
    Join {
        room: usize,
        since: Option<u64>,
    },
    /// `leave`, then `join` of `to`.
    Leave {
        to: usize,
    },
}

/// A member's view of its room.
#[derive(Debug)]
struct View {
    room: usize,
    seen: SeqSet,
    /// The highest `seq` received: the next must be `last + 1`.
    last: u64,
}

impl View {
    fn new(room: usize, seq: u64) -> View {
        View {
            room,
            seen: SeqSet::new(seq + 1),
            last: seq,
        }
    }

    /// Checks the delivery of `seq`; whether it is new.
    fn deliver(&mut self, seq: u64, totals: &Totals) -> bool {
        if seq > self.last + 1 {
            Totals::bump(&totals.lost, seq - self.last - 1);
        }
        if self.seen.len() >= SEQSET_SPAN && seq > self.last {
            self.seen = self.seen.successor();
        }
        match self.seen.insert(seq) {
            Seen::InOrder => {
                self.last = seq;
                true
            }
            Seen::OutOfOrder => {
                Totals::bump(&totals.out_of_order, 1);
                true
            }
            Seen::Duplicate | Seen::Stale => {
                Totals::bump(&totals.duplicated, 1);
                false
            }
            Seen::TooFar => {
                Totals::bump(&totals.unexpected, 1);
                false
            }
        }
    }
}

/// What a sender adds to a member.
struct Sender {
    wake: Arc<Notify>,
    /// Taken from [`Shared::traffic`] at the first wakeup (the pacer wakes
    /// no one before the traffic is set).
    schedule: Option<Schedule>,
    /// `{"type":"send","room":<room>,"text":"`
    head: Vec<u8>,
    next_ref: u64,
    /// The room's `seq` when the sender joined, and the `seq`s acked since.
    base: u64,
    acked: Vec<u64>,
    text: String,
    frame: Vec<u8>,
}

/// How a member ended: its room and last `seq` if it was in one, and a
/// sender's acked `seq`s.
struct MemberEnd {
    view: Option<(usize, u64)>,
    sender: Option<(usize, u64, Vec<u64>)>,
}

/// One connection, and then the next ones after reconnects.
struct Member {
    index: usize,
    shared: Arc<Shared>,
    url: String,
    /// This guest's credential from the latest welcome: a reconnect comes
    /// back as the same person, as a real client does (`?guest=`).
    guest_token: Option<String>,
    source: Option<IpAddr>,
    read_buffer: usize,
    join_timeout: Duration,
    commands: mpsc::Receiver<Command>,
    view: Option<View>,
    pending: Pending,
    sender: Option<Sender>,
    next_ref: u64,
    frame: String,
}

/// The refs of a member's `join` and `leave` requests (a sender's sends
/// count up from 1, so these never meet them).
const REQUEST_REF_BASE: u64 = 1 << 40;

impl Member {
    /// The connection's life: churn and traffic until the controller drops
    /// the command channel; how it ended, or why it broke off.
    async fn run(mut self, mut ws: RawWs) -> Result<MemberEnd, String> {
        Totals::bump(&self.shared.totals.open, 1);
        let result = self.serve(&mut ws).await;
        self.shared.totals.open.fetch_sub(1, Ordering::Relaxed);
        if result.is_err() {
            Totals::bump(&self.shared.totals.dropped, 1);
        }
        result?;
        Ok(MemberEnd {
            view: self.view.as_ref().map(|v| (v.room, v.last)),
            sender: self.sender.take().map(|s| (self.index, s.base, s.acked)),
        })
    }

    async fn serve(&mut self, ws: &mut RawWs) -> Result<(), String> {
        let wake = self.sender.as_ref().map(|s| s.wake.clone());
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    None => return Ok(()),
                    Some(Command::Move(to)) => self.start_move(ws, to).await?,
                    Some(Command::Reconnect) => self.reconnect(ws).await?,
                },
                () = due(wake.as_deref()) => {
                    self.send_due(ws);
                    ws.flush().await.map_err(|e| format!("write: {e}"))?;
                }
                filled = ws.fill() => {
                    match filled {
                        Ok(0) => return Err("connection ended".into()),
                        Err(e) => return Err(format!("read: {e}")),
                        Ok(_) => {}
                    }
                    self.on_frames(ws)?;
                    ws.flush().await.map_err(|e| format!("write: {e}"))?;
                    ws.flush_control().await.map_err(|e| format!("write: {e}"))?;
                }
            }
        }
    }

    fn next_request_ref(&mut self) -> u64 {
        self.next_ref += 1;
        REQUEST_REF_BASE + self.next_ref
    }

    fn queue_join(&mut self, ws: &mut RawWs, room: usize, since: Option<u64>) {
        let reference = self.next_request_ref();
        let room_json = &self.shared.rooms[room];
        self.frame = match since {
            Some(s) => {
                format!(r#"{{"type":"join","room":{room_json},"since":{s},"ref":{reference}}}"#)
            }
            None => format!(r#"{{"type":"join","room":{room_json},"ref":{reference}}}"#),
        };
        ws.queue_text(self.frame.as_bytes());
        self.pending = Pending::Join { room, since };
    }

    async fn start_move(&mut self, ws: &mut RawWs, to: usize) -> Result<(), String> {
        let Some(view) = &self.view else {
            Totals::bump(&self.shared.totals.churn_skipped, 1);
            return Ok(());
        };
        if self.pending != Pending::None || view.room == to {
            Totals::bump(&self.shared.totals.churn_skipped, 1);
            return Ok(());
        }
        let from = view.room;
        let reference = self.next_request_ref();
        let room_json = &self.shared.rooms[from];
        self.frame = format!(r#"{{"type":"leave","room":{room_json},"ref":{reference}}}"#);
        ws.queue_text(self.frame.as_bytes());
        self.pending = Pending::Leave { to };
        Totals::bump(&self.shared.totals.moves, 1);
        ws.flush().await.map_err(|e| format!("write: {e}"))
    }

    /// Drops the connection without a close frame (as a network failure
    /// would), opens another and resumes the room after its last `seq`.
    async fn reconnect(&mut self, ws: &mut RawWs) -> Result<(), String> {
        let Some(view) = &self.view else {
            Totals::bump(&self.shared.totals.churn_skipped, 1);
            return Ok(());
        };
        if self.pending != Pending::None {
            Totals::bump(&self.shared.totals.churn_skipped, 1);
            return Ok(());
        }
        let (room, since) = (view.room, view.last);
        let seed = self.shared.now_us() ^ ((self.index as u64) << 32);
        let url = match &self.guest_token {
            Some(token) => conn::with_query(&self.url, "guest", token),
            None => self.url.clone(),
        };
        let opened = tokio::time::timeout(
            self.join_timeout,
            connect_welcomed(&url, self.source, self.read_buffer, seed),
        )
        .await
        .map_err(|_| anyhow!("not connected within {:?}", self.join_timeout))
        .and_then(|r| r);
        let fresh = opened.map_err(|e| format!("reconnect: {e:#}"))?;
        // The old socket closes as it drops.
        *ws = fresh.ws;
        self.guest_token = fresh.guest_token.or(self.guest_token.take());
        Totals::bump(&self.shared.totals.reconnects, 1);
        self.queue_join(ws, room, Some(since));
        ws.flush().await.map_err(|e| format!("write: {e}"))
    }

    fn send_due(&mut self, ws: &mut RawWs) {
        let Some(sender) = &mut self.sender else {
            return;
        };
        if sender.schedule.is_none() {
            sender.schedule = lock(&self.shared.traffic).map(|t| t.schedule(self.index as u64));
        }
        let Some(schedule) = &mut sender.schedule else {
            return;
        };
        let now = self.shared.now_us();
        let mut sent = 0;
        while let Some(due) = schedule.pop_due(now) {
            let reference = sender.next_ref;
            sender.next_ref += 1;
            sender.text.clear();
            Stamp {
                sender: self.index as u32,
                counter: reference,
                micros: due,
            }
            .write_text(self.shared.text_bytes, &mut sender.text);
            sender.frame.clear();
            sender.frame.extend_from_slice(&sender.head);
            sender.frame.extend_from_slice(sender.text.as_bytes());
            sender
                .frame
                .extend_from_slice(format!(r#"","ref":{reference}}}"#).as_bytes());
            ws.queue_text(&sender.frame);
            sent += 1;
        }
        Totals::bump(&self.shared.totals.sent, sent);
    }

    /// Accounts for every complete frame in the buffer.
    fn on_frames(&mut self, ws: &mut RawWs) -> Result<(), String> {
        let now = self.shared.now_us();
        let shared = self.shared.clone();
        let mut latency = None;
        let mut delivered = 0;
        loop {
            let bytes = match ws.next_frame() {
                Err(e) => return Err(format!("bad frame: {e}")),
                Ok(None) => break,
                Ok(Some(Frame::Close(code))) => {
                    return Err(match code {
                        Some(code) => format!("closed by server: {code}"),
                        None => "closed by server".into(),
                    });
                }
                Ok(Some(Frame::Text(bytes))) => bytes,
            };
            let Ok(peek) = Peek::parse_bytes(bytes) else {
                shared.error("undecodable frame".into());
                continue;
            };
            match &*peek.kind {
                "message" => {
                    let (Some(seq), Some(room)) = (peek.seq, peek.room.as_deref()) else {
                        shared.error("message without seq or room".into());
                        continue;
                    };
                    let Some(view) = self
                        .view
                        .as_mut()
                        .filter(|v| room_is(&shared.rooms[v.room], room))
                    else {
                        Totals::bump(&shared.totals.unexpected, 1);
                        continue;
                    };
                    delivered += 1;
                    if !view.deliver(seq, &shared.totals) {
                        continue;
                    }
                    match peek
                        .text
                        .as_deref()
                        .and_then(|t| Stamp::parse(t.as_bytes()))
                    {
                        Some(stamp) => stats::record(
                            latency.get_or_insert_with(|| {
                                lock(&shared.latency[self.index % LATENCY_SHARDS])
                            }),
                            now.saturating_sub(stamp.micros),
                        ),
                        None => shared.error("message without the bench's stamp".into()),
                    }
                }
                "ack" => match (&mut self.sender, peek.seq) {
                    (Some(sender), Some(seq)) if !peek.duplicate => {
                        sender.acked.push(seq);
                        Totals::bump(&shared.totals.acked, 1);
                        // A sender is its room's first member (index = room).
                        shared.room_acked[self.index].fetch_max(seq, Ordering::Relaxed);
                    }
                    _ => shared.error("unexpected ack".into()),
                },
                "joined" | "left" | "error" => {
                    let text = std::str::from_utf8(bytes).map_err(|e| format!("{e}"))?;
                    let frame = decode_full(text).map_err(|e| format!("undecodable: {e}"))?;
                    self.on_reply(ws, frame)?;
                }
                // Presence, typing, read news: nothing to account.
                _ => {}
            }
        }
        drop(latency);
        Totals::bump(&shared.totals.delivered, delivered);
        shared.progress[self.index].set(self.view.as_ref());
        Ok(())
    }

    /// A reply to a `join` or `leave`, or an error.
    fn on_reply(&mut self, ws: &mut RawWs, frame: ServerFrame) -> Result<(), String> {
        let totals = &self.shared.totals;
        match (frame, self.pending) {
            (
                ServerFrame::Joined {
                    body:
                        JoinedBody {
                            seq,
                            messages,
                            complete,
                            ..
                        },
                    ..
                },
                Pending::Join { room, since },
            ) => {
                self.pending = Pending::None;
                match (since, self.view.as_mut()) {
                    (Some(_), Some(view)) => {
                        for m in &messages {
                            view.deliver(m.seq, totals);
                        }
                        Totals::bump(&totals.resumed, messages.len() as u64);
                        if !complete {
                            Totals::bump(&totals.incomplete_resumes, 1);
                        }
                        if view.last < seq {
                            // Nothing lost can hide past the reply: what
                            // it left out is a gap here.
                            Totals::bump(&totals.lost, seq - view.last);
                            view.last = seq;
                            view.seen = SeqSet::new(seq + 1);
                        }
                    }
                    _ => self.view = Some(View::new(room, seq)),
                }
                Ok(())
            }
            (ServerFrame::Left { .. }, Pending::Leave { to }) => {
                self.view = None;
                self.queue_join(ws, to, None);
                Ok(())
            }
            (
                ServerFrame::Error {
                    reference,
                    body: ErrorBody { code, message, .. },
                },
                _,
            ) => {
                let is_request = matches!(reference, Some(Ref::Number(n)) if n.as_u64().is_some_and(|n| n >= REQUEST_REF_BASE));
                self.shared.error(code.as_str().to_string());
                if is_request {
                    // A refused join or leave leaves the member nowhere to go.
                    return Err(format!("request refused: {code}: {message}"));
                }
                Ok(())
            }
            (frame, pending) => {
                self.shared.error(format!(
                    "{} while waiting on {pending:?}",
                    frame.type_name()
                ));
                Ok(())
            }
        }
    }
}

/// Resolves when the pacer says a send is due; never for a member that
/// does not send.
async fn due(wake: Option<&Notify>) {
    match wake {
        Some(wake) => wake.notified().await,
        None => std::future::pending().await,
    }
}

/// Whether a frame's `room` is the room whose JSON string is `json`.
fn room_is(json: &str, room: &str) -> bool {
    json.len() == room.len() + 2 && json[1..json.len() - 1] == *room
}

/// One sample.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the traffic started.
    pub t_secs: f64,
    pub rss_kib: Option<u64>,
    pub open_fds: Option<u64>,
    /// `chat_runtime_alive_tasks` (refreshed by the server every 5 s).
    pub tasks: Option<f64>,
    /// Members connected.
    pub connections: u64,
    /// Delivery latency over the window since the previous sample.
    pub latency_us: LatencySummary,
    pub deliveries: u64,
    pub resumed: u64,
    pub sent: u64,
    pub acked: u64,
    pub moves: u64,
    pub reconnects: u64,
    /// Totals so far.
    pub errors_total: u64,
    pub violations_total: u64,
}

/// A resource's drift after the warm-up.
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    /// At the first sample after the warm-up.
    pub at_warmup_end: f64,
    pub at_end: f64,
    /// The least-squares slope, units per hour.
    pub slope_per_hour: f64,
    /// The slope as a percentage of `at_warmup_end`, per hour.
    pub percent_per_hour: Option<f64>,
}

/// The least-squares slope of `y` on `x`; `None` with fewer than two
/// distinct `x`.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// The drift of `points` (seconds, value) from `warmup_secs` on.
pub fn drift(points: &[(f64, f64)], warmup_secs: f64) -> Option<Drift> {
    let after: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0 >= warmup_secs)
        .collect();
    let per_sec = slope(&after)?;
    let start = after.first()?.1;
    let per_hour = per_sec * 3600.0;
    Some(Drift {
        at_warmup_end: start,
        at_end: after.last()?.1,
        slope_per_hour: per_hour,
        percent_per_hour: (start > 0.0).then(|| per_hour / start * 100.0),
    })
}

/// The JSON report of a soak.
#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub scenario: &'static str,
    pub url: String,
    pub connections: u64,
    pub rooms: u64,
    pub rate_per_room: f64,
    pub churn_per_sec: f64,
    pub reconnects_per_sec: f64,
    pub duration_secs: f64,
    pub warmup_secs: f64,
    pub sample_every_secs: f64,
    pub joined: u64,
    pub join_failures: BTreeMap<String, u64>,
    pub rss: Option<Drift>,
    pub open_fds: Option<Drift>,
    pub tasks: Option<Drift>,
    /// Latency over the first and the last tenth of the time after the
    /// warm-up.
    pub latency_first_tenth_us: LatencySummary,
    pub latency_last_tenth_us: LatencySummary,
    pub latency_us: LatencySummary,
    pub sent: u64,
    pub acked: u64,
    pub unanswered: u64,
    pub delivered: u64,
    pub resumed: u64,
    pub moves: u64,
    pub reconnects: u64,
    pub churn_skipped: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub unexpected: u64,
    pub incomplete_resumes: u64,
    /// Members whose last `seq` was short of their room's last acked one
    /// after the drain: the messages they never got.
    pub lost_at_end: u64,
    /// The members short at the end.
    pub members_short_at_end: u64,
    /// The rooms' acked `seq`s against the exact next ones.
    pub acked_coverage: Coverage,
    pub seq_violations: u64,
    pub errors: BTreeMap<String, u64>,
    pub dropped_connections: BTreeMap<String, u64>,
    pub samples: Vec<Sample>,
}

impl SoakReport {
    fn clean(&self) -> bool {
        self.seq_violations == 0
            && self.errors.is_empty()
            && self.dropped_connections.is_empty()
            && self.join_failures.is_empty()
            && self.incomplete_resumes == 0
            && self.unanswered == 0
    }

    pub fn table(&self) -> String {
        let mut t = Table::new(24);
        t.row("scenario", "soak".into());
        t.row("url", self.url.clone());
        t.row(
            "load",
            format!(
                "{} connections in {} rooms, {} msg/s per room, {} moves/s, {} reconnects/s, \
                 {:.0} s (warm-up {:.0} s), a sample every {:.1} s",
                self.connections,
                self.rooms,
                self.rate_per_room,
                self.churn_per_sec,
                self.reconnects_per_sec,
                self.duration_secs,
                self.warmup_secs,
                self.sample_every_secs
            ),
        );
        t.row(
            "joined",
            format!(
                "{} (failed: {})",
                self.joined,
                crate::error_counts(&self.join_failures)
            ),
        );
        for (name, drift, unit) in [
            ("server RSS", &self.rss, "KiB"),
            ("server open files", &self.open_fds, ""),
            ("server tasks", &self.tasks, ""),
        ] {
            t.row(
                name,
                drift.as_ref().map_or("not sampled".into(), |d| {
                    format!(
                        "{:.0} -> {:.0} {unit}; slope {:+.1} {unit}/h = {}",
                        d.at_warmup_end,
                        d.at_end,
                        d.slope_per_hour,
                        d.percent_per_hour
                            .map_or("-".into(), |p| format!("{p:+.2}%/h"))
                    )
                }),
            );
        }
        t.row("latency (all)", self.latency_us.row());
        t.row("latency first tenth", self.latency_first_tenth_us.row());
        t.row("latency last tenth", self.latency_last_tenth_us.row());
        t.row(
            "p99 first -> last",
            format!(
                "{} -> {}",
                micros(self.latency_first_tenth_us.p99),
                micros(self.latency_last_tenth_us.p99)
            ),
        );
        t.row(
            "sent / acked",
            format!(
                "{} / {} (unanswered {})",
                self.sent, self.acked, self.unanswered
            ),
        );
        t.row(
            "delivered",
            format!("{} live, {} in resumes", self.delivered, self.resumed),
        );
        t.row(
            "churn",
            format!(
                "{} moves, {} reconnects ({} skipped: member busy)",
                self.moves, self.reconnects, self.churn_skipped
            ),
        );
        t.row(
            "lost / dup / reordered",
            format!(
                "{} / {} / {} (unexpected {}, short at the end {} in {} members, incomplete resumes {})",
                self.lost,
                self.duplicated,
                self.out_of_order,
                self.unexpected,
                self.lost_at_end,
                self.members_short_at_end,
                self.incomplete_resumes
            ),
        );
        t.row(
            "acked seqs",
            format!(
                "{} checked, {} repeated, {} outside, {} missing",
                self.acked_coverage.acks,
                self.acked_coverage.repeated,
                self.acked_coverage.outside,
                self.acked_coverage.missing
            ),
        );
        t.row("seq violations", self.seq_violations.to_string());
        t.row("errors", crate::error_counts(&self.errors));
        for (reason, n) in &self.dropped_connections {
            t.row("dropped", format!("{n} x {reason}"));
        }
        t.finish()
    }

    /// RSS (MiB, left) and p99 (ms, right) over time, with the end of the
    /// warm-up marked.
    pub fn chart(&self) -> (Vec<Series>, Vec<(f64, String)>) {
        let rss = Series {
            name: "server RSS, MiB".into(),
            points: self
                .samples
                .iter()
                .filter_map(|s| Some((s.t_secs, s.rss_kib? as f64 / 1024.0)))
                .collect(),
            axis: Axis::Left,
        };
        let p99 = Series {
            name: "delivery p99, ms".into(),
            points: self
                .samples
                .iter()
                .filter(|s| s.latency_us.count > 0)
                .map(|s| (s.t_secs, s.latency_us.p99 as f64 / 1000.0))
                .collect(),
            axis: Axis::Right,
        };
        (
            vec![rss, p99],
            vec![(self.warmup_secs, "end of warm-up".into())],
        )
    }
}

/// Members and what the controller holds of them.
struct Fleet {
    commands: Vec<Option<mpsc::Sender<Command>>>,
    tasks: Vec<tokio::task::JoinHandle<Result<MemberEnd, String>>>,
    joined: u64,
    join_failures: BTreeMap<String, u64>,
}

/// Opens every member (bounded concurrency) and joins its home room.
async fn open_members(
    args: &SoakArgs,
    shared: &Arc<Shared>,
    wake: &[Arc<Notify>],
) -> anyhow::Result<Fleet> {
    let permits = Arc::new(Semaphore::new(args.concurrency as usize));
    let mut opening = Vec::with_capacity(args.connections as usize);
    for index in 0..args.connections as usize {
        let permit = permits.clone().acquire_owned().await?;
        let room = index % args.rooms as usize;
        let url = conn::with_query(args.common.url_at(index), "name", &format!("s{index}"));
        let source = args.common.source_ip();
        let room_json = shared.rooms[room].clone();
        let read_buffer = args.read_buffer;
        let timeout = Duration::from_secs(args.join_timeout);
        let seed = shared.now_us() ^ ((index as u64) << 32);
        let counted = shared.clone();
        opening.push(tokio::spawn(async move {
            let opened = tokio::time::timeout(timeout, async {
                let mut welcomed = connect_welcomed(&url, source, read_buffer, seed).await?;
                let seq = join_room(&mut welcomed.ws, &room_json).await?;
                anyhow::Ok((welcomed, seq))
            })
            .await
            .map_err(|_| anyhow!("not joined within {timeout:?}"))
            .and_then(|r| r);
            drop(permit);
            if opened.is_ok() {
                Totals::bump(&counted.totals.joined, 1);
            }
            (url, source, opened)
        }));
    }
    let mut fleet = Fleet {
        commands: Vec::new(),
        tasks: Vec::new(),
        joined: 0,
        join_failures: BTreeMap::new(),
    };
    for (index, opening) in opening.into_iter().enumerate() {
        let (url, source, opened) = opening.await?;
        let (Welcomed { ws, guest_token }, seq) = match opened {
            Ok(x) => x,
            Err(e) => {
                *fleet.join_failures.entry(format!("{e:#}")).or_insert(0) += 1;
                fleet.commands.push(None);
                continue;
            }
        };
        fleet.joined += 1;
        let room = index % args.rooms as usize;
        let sender = (index < args.rooms as usize).then(|| Sender {
            wake: wake[index].clone(),
            schedule: None,
            head: format!(r#"{{"type":"send","room":{},"text":""#, shared.rooms[room]).into_bytes(),
            next_ref: 1,
            base: seq,
            acked: Vec::new(),
            text: String::new(),
            frame: Vec::new(),
        });
        let (tx, rx) = mpsc::channel(1);
        let member = Member {
            index,
            shared: shared.clone(),
            url,
            guest_token,
            source,
            read_buffer: args.read_buffer,
            join_timeout: Duration::from_secs(args.join_timeout),
            commands: rx,
            view: Some(View::new(room, seq)),
            pending: Pending::None,
            sender,
            next_ref: 0,
            frame: String::new(),
        };
        shared.progress[index].set(member.view.as_ref());
        fleet.commands.push(Some(tx));
        fleet.tasks.push(tokio::spawn(member.run(ws)));
    }
    Ok(fleet)
}

/// Hands out moves and reconnects at their rates until `end`.
async fn churn(args: &SoakArgs, fleet: &Fleet, shared: &Shared, end: tokio::time::Instant) {
    // Senders (the first member of each room) are never told to move or
    // reconnect.
    let movable: Vec<&mpsc::Sender<Command>> = fleet.commands[args.rooms as usize..]
        .iter()
        .flatten()
        .collect();
    if movable.is_empty() {
        tokio::time::sleep_until(end).await;
        return;
    }
    let started = tokio::time::Instant::now();
    let (mut moves, mut reconnects) = (0u64, 0u64);
    let mut tick = tokio::time::interval(CHURN_TICK);
    while tick.tick().await < end {
        let elapsed = started.elapsed().as_secs_f64();
        let mut rng = rand::rng();
        let moves_due = (elapsed * args.churn_per_sec) as u64;
        let reconnects_due = (elapsed * args.reconnects_per_sec) as u64;
        let mut give = |command: Command| {
            let member = movable[rng.random_range(0..movable.len())];
            if member.try_send(command).is_err() {
                Totals::bump(&shared.totals.churn_skipped, 1);
            }
        };
        for _ in moves..moves_due {
            let to = rand::rng().random_range(0..args.rooms as usize);
            give(Command::Move(to));
        }
        for _ in reconnects..reconnects_due {
            give(Command::Reconnect);
        }
        (moves, reconnects) = (moves_due, reconnects_due);
    }
}

/// The sampler's running state.
struct Sampler {
    pid: Option<u32>,
    metrics: String,
    start: Instant,
    samples: Vec<Sample>,
    last: [u64; 6],
    all: Histogram<u64>,
    first_tenth: Histogram<u64>,
    last_tenth: Histogram<u64>,
    first_tenth_until: f64,
    last_tenth_from: f64,
}

impl Sampler {
    fn counters(t: &Totals) -> [u64; 6] {
        [
            Totals::get(&t.delivered),
            Totals::get(&t.resumed),
            Totals::get(&t.sent),
            Totals::get(&t.acked),
            Totals::get(&t.moves),
            Totals::get(&t.reconnects),
        ]
    }

    async fn sample(&mut self, shared: &Shared) {
        let t_secs = self.start.elapsed().as_secs_f64();
        let mut window = stats::latency_histogram();
        for h in &shared.latency {
            let mut h = lock(h);
            stats::merge(&mut window, &h);
            h.reset();
        }
        stats::merge(&mut self.all, &window);
        // A window counts for a tenth when it ends inside it.
        if t_secs <= self.first_tenth_until {
            stats::merge(&mut self.first_tenth, &window);
        }
        if t_secs > self.last_tenth_from {
            stats::merge(&mut self.last_tenth, &window);
        }
        let now = Self::counters(&shared.totals);
        let d: Vec<u64> = now
            .iter()
            .zip(self.last)
            .map(|(n, l)| n.saturating_sub(l))
            .collect();
        self.last = now;
        let tasks = stages::fetch_metrics(&self.metrics)
            .await
            .and_then(|text| stages::gauge(&text, TASKS_GAUGE));
        self.samples.push(Sample {
            t_secs,
            rss_kib: procstat::sample(self.pid).map(|s| s.rss_kib),
            open_fds: self.pid.and_then(|pid| procstat::open_fds(pid).ok()),
            tasks,
            connections: Totals::get(&shared.totals.open),
            latency_us: LatencySummary::of(&window),
            deliveries: d[0],
            resumed: d[1],
            sent: d[2],
            acked: d[3],
            moves: d[4],
            reconnects: d[5],
            errors_total: Totals::get(&shared.totals.errors),
            violations_total: shared.totals.violations(),
        });
    }

    fn series(&self, value: impl Fn(&Sample) -> Option<f64>) -> Vec<(f64, f64)> {
        self.samples
            .iter()
            .filter_map(|s| Some((s.t_secs, value(s)?)))
            .collect()
    }
}

/// Waits until the senders are answered and every member in a room holds
/// its room's last acked `seq`, within `--drain`.
async fn drain(args: &SoakArgs, shared: &Shared) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.drain);
    let t = &shared.totals;
    let answered = || Totals::get(&t.acked) + Totals::get(&t.errors) >= Totals::get(&t.sent);
    let caught_up = || {
        shared.progress.iter().all(|p| {
            let room = p.room.load(Ordering::Relaxed);
            room == NO_ROOM
                || shared.room_acked[room as usize].load(Ordering::Relaxed)
                    <= p.last.load(Ordering::Relaxed)
        })
    };
    while tokio::time::Instant::now() < deadline && !(answered() && caught_up()) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the soak; `Ok(false)` on a violation or an error.
pub async fn run(args: SoakArgs) -> anyhow::Result<bool> {
    args.check()?;
    args.common.note_shared_sources(args.connections);
    let metrics = args.metrics_authority()?;
    let rooms: Vec<Arc<str>> = (0..args.rooms as usize)
        .map(|r| serde_json::to_string(&args.common.room(r)).map(Arc::from))
        .collect::<Result<_, _>>()?;
    let shared = Arc::new(Shared {
        origin: Instant::now(),
        totals: Totals::default(),
        latency: (0..LATENCY_SHARDS)
            .map(|_| Mutex::new(stats::latency_histogram()))
            .collect(),
        errors: Mutex::new(BTreeMap::new()),
        rooms,
        text_bytes: args.text_bytes as usize,
        traffic: Mutex::new(None),
        progress: (0..args.connections)
            .map(|_| Progress {
                room: AtomicU64::new(NO_ROOM),
                last: AtomicU64::new(0),
            })
            .collect(),
        room_acked: (0..args.rooms).map(|_| AtomicU64::new(0)).collect(),
    });
    let senders = args.rooms;
    let wake: Vec<Arc<Notify>> = (0..senders).map(|_| Arc::new(Notify::new())).collect();
    let pacer = Pacer::start(shared.origin, wake.clone())?;
    let _progress = spawn_progress(shared.clone(), args.connections);
    let fleet = open_members(&args, &shared, &wake).await?;

    // The traffic: every sender's schedule from one start, the same
    // arithmetic in the sender (`Sender::schedule`) and in the pacer.
    let start_us = shared.now_us() + START_LEAD.as_micros() as u64;
    let end_us = start_us + args.duration.as_micros() as u64;
    let traffic = Traffic {
        start_us,
        end_us,
        rate: args.rate,
        senders,
    };
    *lock(&shared.traffic) = Some(traffic);
    pacer.plan(PacePlan {
        schedules: (0..senders).map(|i| traffic.schedule(i)).collect(),
    });

    let start = tokio::time::Instant::from_std(shared.origin + Duration::from_micros(start_us));
    let end = tokio::time::Instant::from_std(shared.origin + Duration::from_micros(end_us));
    tokio::time::sleep_until(start).await;
    let duration = args.duration.as_secs_f64();
    let warmup = args.warmup().as_secs_f64();
    let tenth = (duration - warmup) / 10.0;
    let mut sampler = Sampler {
        pid: args.common.server_pid,
        metrics,
        start: Instant::now(),
        samples: Vec::new(),
        last: [0; 6],
        all: stats::latency_histogram(),
        first_tenth: stats::latency_histogram(),
        last_tenth: stats::latency_histogram(),
        first_tenth_until: warmup + tenth,
        last_tenth_from: duration - tenth,
    };
    sampler.sample(&shared).await;
    let sampling = async {
        let mut tick = tokio::time::interval_at(start + args.sample_every, args.sample_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while tick.tick().await <= end {
            sampler.sample(&shared).await;
        }
    };
    tokio::join!(sampling, churn(&args, &fleet, &shared, end));
    tokio::time::sleep_until(end).await;

    drain(&args, &shared).await;
    let report = finish(&args, &shared, fleet, sampler).await;
    drop(pacer);
    emit(&args.common, &report.table(), &report)?;
    if let Some(path) = args.common.json_path() {
        let (series, markers) = report.chart();
        let chart = plot::svg_beside(path);
        plot::line_chart(
            &chart,
            &Chart {
                title: "soak: server RSS and delivery p99 over time",
                x_label: "seconds",
                y_left_label: "RSS, MiB",
                y_right_label: Some("p99, ms"),
                series: &series,
                markers: &markers,
            },
        )?;
        eprintln!("chart: {}", chart.display());
    }
    Ok(report.clean())
}

/// Ends the members, checks what they hold against what was acked, and
/// builds the report.
async fn finish(args: &SoakArgs, shared: &Shared, fleet: Fleet, sampler: Sampler) -> SoakReport {
    let Fleet {
        commands,
        tasks,
        joined,
        join_failures,
    } = fleet;
    // Closing the command channels ends the members.
    drop(commands);
    let mut dropped = BTreeMap::new();
    let mut views = Vec::new();
    let mut acked_by_room: BTreeMap<usize, (u64, Vec<u64>)> = BTreeMap::new();
    for task in tasks {
        match task.await {
            Ok(Ok(end)) => {
                views.extend(end.view);
                if let Some((room, base, acked)) = end.sender {
                    acked_by_room.insert(room, (base, acked));
                }
            }
            Ok(Err(reason)) => *dropped.entry(reason).or_insert(0u64) += 1,
            Err(e) => *dropped.entry(format!("task failed: {e}")).or_insert(0) += 1,
        }
    }
    let mut coverage = Coverage::default();
    let mut last_acked = BTreeMap::new();
    for (room, (base, acked)) in &mut acked_by_room {
        coverage.add(&seqcheck::check(*base, acked));
        last_acked.insert(*room, acked.iter().copied().max().unwrap_or(*base));
    }
    let shortfalls: Vec<u64> = views
        .iter()
        .map(|(room, last)| {
            last_acked
                .get(room)
                .map_or(0, |&acked| acked.saturating_sub(*last))
        })
        .filter(|&short| short > 0)
        .collect();
    let lost_at_end: u64 = shortfalls.iter().sum();
    let t = &shared.totals;
    let warmup = args.warmup().as_secs_f64();
    let drift_of = |value: &dyn Fn(&Sample) -> Option<f64>| drift(&sampler.series(value), warmup);
    let sent = Totals::get(&t.sent);
    let acked = Totals::get(&t.acked);
    let errors = lock(&shared.errors).clone();
    let error_count: u64 = errors.values().sum();
    let lost = Totals::get(&t.lost);
    let duplicated = Totals::get(&t.duplicated);
    let out_of_order = Totals::get(&t.out_of_order);
    let unexpected = Totals::get(&t.unexpected);
    SoakReport {
        scenario: "soak",
        url: args.common.url.clone(),
        connections: args.connections,
        rooms: args.rooms,
        rate_per_room: args.rate,
        churn_per_sec: args.churn_per_sec,
        reconnects_per_sec: args.reconnects_per_sec,
        duration_secs: args.duration.as_secs_f64(),
        warmup_secs: warmup,
        sample_every_secs: args.sample_every.as_secs_f64(),
        joined,
        join_failures,
        rss: drift_of(&|s| s.rss_kib.map(|k| k as f64)),
        open_fds: drift_of(&|s| s.open_fds.map(|n| n as f64)),
        tasks: drift_of(&|s| s.tasks),
        latency_first_tenth_us: LatencySummary::of(&sampler.first_tenth),
        latency_last_tenth_us: LatencySummary::of(&sampler.last_tenth),
        latency_us: LatencySummary::of(&sampler.all),
        sent,
        acked,
        unanswered: sent.saturating_sub(acked + error_count),
        delivered: Totals::get(&t.delivered),
        resumed: Totals::get(&t.resumed),
        moves: Totals::get(&t.moves),
        reconnects: Totals::get(&t.reconnects),
        churn_skipped: Totals::get(&t.churn_skipped),
        lost,
        duplicated,
        out_of_order,
        unexpected,
        incomplete_resumes: Totals::get(&t.incomplete_resumes),
        lost_at_end,
        members_short_at_end: shortfalls.len() as u64,
        seq_violations: lost
            + duplicated
            + out_of_order
            + unexpected
            + lost_at_end
            + coverage.violations(),
        acked_coverage: coverage,
        errors,
        dropped_connections: dropped,
        samples: sampler.samples,
    }
}

/// The once-a-second progress line.
fn spawn_progress(shared: Arc<Shared>, total: u64) -> progress::Reporter {
    let mut delivered = progress::Rate::default();
    progress::spawn_line(move |elapsed, dt| {
        let t = &shared.totals;
        format!(
            "[{:>5}s] soak: joined {}/{total}, open {}, dropped {} | {:.0} deliveries/s | sent {} acked {} | moves {} reconnects {} | errors {} violations {}",
            elapsed.as_secs(),
            Totals::get(&t.joined),
            Totals::get(&t.open),
            Totals::get(&t.dropped),
            delivered.per_second(Totals::get(&t.delivered), dt),
            Totals::get(&t.sent),
            Totals::get(&t.acked),
            Totals::get(&t.moves),
            Totals::get(&t.reconnects),
            Totals::get(&t.errors),
            t.violations(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slope_is_the_least_squares_line() {
        let line: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i), 3.0 * f64::from(i) + 7.0))
            .collect();
        assert!((slope(&line).unwrap() - 3.0).abs() < 1e-9);
        let noisy = [(0.0, 1.0), (1.0, 3.0), (2.0, 2.0), (3.0, 4.0)];
        assert!((slope(&noisy).unwrap() - 0.8).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 1.0)]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    #[test]
    fn drift_is_per_hour_after_the_warmup_against_its_end() {
        // 100 KiB at the end of a 60 s warm-up, +1 KiB a minute after it;
        // the warm-up's own climb is left out.
        let mut points = vec![(0.0, 10.0), (30.0, 50.0)];
        points.extend((0..=10).map(|m| (60.0 + 60.0 * f64::from(m), 100.0 + f64::from(m))));
        let d = drift(&points, 60.0).unwrap();
        assert_eq!(d.at_warmup_end, 100.0);
        assert_eq!(d.at_end, 110.0);
        assert!((d.slope_per_hour - 60.0).abs() < 1e-9);
        assert!((d.percent_per_hour.unwrap() - 60.0).abs() < 1e-9);
        assert!(drift(&points, 1e9).is_none());
    }

    fn view_after(seqs: &[u64]) -> (View, Totals) {
        let totals = Totals::default();
        let mut view = View::new(0, 10);
        for &s in seqs {
            view.deliver(s, &totals);
        }
        (view, totals)
    }

    #[test]
    fn a_member_tells_gaps_repeats_and_reorders() {
        let (view, t) = view_after(&[11, 12, 13]);
        assert_eq!((view.last, t.violations()), (13, 0));
        let (view, t) = view_after(&[11, 14]);
        assert_eq!((view.last, Totals::get(&t.lost)), (14, 2));
        let (_, t) = view_after(&[11, 12, 12, 10]);
        assert_eq!(
            Totals::get(&t.duplicated),
            2,
            "a repeat and one from before the join"
        );
        let (_, t) = view_after(&[11, 13, 12]);
        assert_eq!((Totals::get(&t.lost), Totals::get(&t.out_of_order)), (1, 1));
    }

    #[test]
    fn a_long_run_keeps_a_bounded_seqset_and_still_sees_repeats() {
        let seqs: Vec<u64> = (11..11 + 3 * SEQSET_SPAN).collect();
        let (mut view, t) = view_after(&seqs);
        assert_eq!(t.violations(), 0);
        assert!(view.seen.len() <= SEQSET_SPAN);
        view.deliver(20, &t);
        assert_eq!(Totals::get(&t.duplicated), 1);
    }

    #[test]
    fn rooms_are_matched_by_their_json_name() {
        assert!(room_is(r#""soak-1""#, "soak-1"));
        assert!(!room_is(r#""soak-1""#, "soak-10"));
        assert!(!room_is(r#""soak-10""#, "soak-1"));
    }
}
