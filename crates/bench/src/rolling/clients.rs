//! The clients of `chat-bench rolling`: each is a [`chat_client::Client`],
//! the library an application uses, so what is checked is what an
//! application sees after the library's reconnects, resumes (`join` with
//! `since`) and resends by `id`.
//!
//! Each client joins one room, sends to it at a steady rate (a [`Stamp`] in
//! each text: who, which, and when it was scheduled), and records every
//! message the library delivers, with its latency, and every outage.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chat_client::{Backoff, Client, ClientBuilder, Event, Events};
use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use crate::stamp::Stamp;
use crate::stats;

/// Bytes of each message text (the stamp and filler).
const TEXT_BYTES: usize = 64;

/// What every client records into, shared.
pub struct Shared {
    /// The run's time origin: stamps and the timeline count from it.
    pub origin: Instant,
    /// Clients with an open connection now.
    pub connected: AtomicI64,
    /// `connected` sampled once a second (index: second since `origin`).
    pub connected_samples: Mutex<Vec<Option<i64>>>,
    /// Per second since `origin`: delivery latencies.
    pub timeline: Mutex<Vec<Histogram<u64>>>,
    /// Latencies by phase ([`Phase`] as index).
    pub phases: Mutex<[Histogram<u64>; 2]>,
    /// The current [`Phase`].
    pub phase: AtomicU64,
    /// Per room: the `seq`s of acked sends.
    pub acked: Mutex<Vec<Vec<u64>>>,
    pub sent: AtomicU64,
    pub send_failures: AtomicU64,
    /// Cleared to stop every sender.
    pub sending: AtomicBool,
}

/// Parts of the run, for comparing latencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Phase {
    Before = 0,
    /// From the first drain to the end, the catching up included.
    During = 1,
}

impl Shared {
    pub fn new(rooms: usize) -> Shared {
        Shared {
            origin: Instant::now(),
            connected: AtomicI64::new(0),
            connected_samples: Mutex::new(Vec::new()),
            timeline: Mutex::new(Vec::new()),
            phases: Mutex::new(std::array::from_fn(|_| stats::latency_histogram())),
            phase: AtomicU64::new(Phase::Before as u64),
            acked: Mutex::new(vec![Vec::new(); rooms]),
            sent: AtomicU64::new(0),
            send_failures: AtomicU64::new(0),
            sending: AtomicBool::new(true),
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u64, Ordering::Relaxed);
    }

    fn micros_now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn record_latency(&self, micros: u64) {
        let second = usize::try_from(self.origin.elapsed().as_secs()).unwrap_or(usize::MAX);
        {
            let mut timeline = lock(&self.timeline);
            while timeline.len() <= second {
                timeline.push(stats::latency_histogram());
            }
            stats::record(&mut timeline[second], micros);
        }
        let phase = usize::try_from(self.phase.load(Ordering::Relaxed)).unwrap_or(0);
        stats::record(&mut lock(&self.phases)[phase.min(1)], micros);
    }
}

/// A poisoned lock means a recording task panicked; the data is still
/// what it recorded.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What one client saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub room: usize,
    /// The room's `seq` when the client joined: it must get every acked
    /// message after it.
    pub base: u64,
    /// The `seq`s delivered, in delivery order.
    pub seqs: Vec<u64>,
    /// When the current outage began.
    pub down_since: Option<Instant>,
    pub longest_outage: Duration,
    pub outages: u64,
    /// The library gave up (it never does with the default backoff).
    pub closed: bool,
}

/// One client: its handle and what it saw.
pub struct Member {
    pub client: Client,
    pub seen: Arc<Mutex<Seen>>,
}

/// The source address of client `index`: 127.1.X.Y with X running over
/// 250 values first, because nginx's `ip_hash` hashes the first three
/// octets of an IPv4 address; so the clients spread over the nodes.
fn source_address(index: usize) -> IpAddr {
    let x = u8::try_from(index % 250).unwrap_or(0);
    let y = u8::try_from(1 + (index / 250) % 250).unwrap_or(1);
    IpAddr::V4(Ipv4Addr::new(127, 1, x, y))
}

/// Connects client `index` through `url`, joins its room, and starts the
/// task that records what it receives.
pub async fn connect(
    url: &str,
    index: usize,
    room: usize,
    room_name: String,
    shared: &Arc<Shared>,
) -> anyhow::Result<Member> {
    let builder = ClientBuilder::new(url)
        .name(format!("c{index}"))
        .local_address(source_address(index))
        // The library's defaults: what an application gets.
        .backoff(Backoff::default());
    let (client, events) = builder
        .connect()
        .await
        .with_context(|| format!("client {index} could not connect"))?;
    let joined = client
        .join(&room_name)
        .await
        .with_context(|| format!("client {index} could not join {room_name}"))?;
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let seen = Arc::new(Mutex::new(Seen {
        room,
        base: joined.seq,
        ..Seen::default()
    }));
    tokio::spawn(receive(events, seen.clone(), shared.clone()));
    Ok(Member { client, seen })
}

/// Records every event of one client until the library stops.
async fn receive(mut events: Events, seen: Arc<Mutex<Seen>>, shared: Arc<Shared>) {
    while let Some(event) = events.recv().await {
        match event {
            Event::Message(message) => {
                let now = shared.micros_now();
                if let Some(stamp) = Stamp::parse(message.text.as_bytes()) {
                    shared.record_latency(now.saturating_sub(stamp.micros));
                }
                lock(&seen).seqs.push(message.seq);
            }
            Event::Reconnecting { attempt: 1, .. } => {
                shared.connected.fetch_sub(1, Ordering::Relaxed);
                let mut seen = lock(&seen);
                seen.down_since = Some(Instant::now());
                seen.outages += 1;
            }
            Event::Reconnected(_) => {
                shared.connected.fetch_add(1, Ordering::Relaxed);
                let mut seen = lock(&seen);
                if let Some(since) = seen.down_since.take() {
                    seen.longest_outage = seen.longest_outage.max(since.elapsed());
                }
            }
            Event::Closed(_) => lock(&seen).closed = true,
            _ => {}
        }
    }
}

/// Sends from `member` to its room every `period`, from a random offset,
/// until [`Shared::sending`] is cleared. Each send is its own task, so an
/// outage delays the sends waiting on it but not the schedule; the library
/// sends them, in order, once connected again. Returns when every send has
/// its answer.
pub async fn send(
    index: usize,
    member: Arc<Member>,
    room_name: String,
    period: Duration,
    shared: Arc<Shared>,
) {
    let offset = period.mul_f64(rand_fraction(index));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sends = JoinSet::new();
    let room = lock(&member.seen).room;
    let sender = u32::try_from(index).unwrap_or(u32::MAX);
    for counter in 0.. {
        ticks.tick().await;
        if !shared.sending.load(Ordering::Relaxed) {
            break;
        }
        let mut text = String::with_capacity(TEXT_BYTES);
        Stamp {
            sender,
            counter,
            micros: shared.micros_now(),
        }
        .write_text(TEXT_BYTES, &mut text);
        let (client, room_name, shared) =
            (member.client.clone(), room_name.clone(), shared.clone());
        shared.sent.fetch_add(1, Ordering::Relaxed);
        sends.spawn(async move {
            match client.send(&room_name, &text).await {
                Ok(ack) => lock(&shared.acked)[room].push(ack.seq),
                Err(error) => {
                    note_failure(&error);
                    shared.send_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while sends.join_next().await.is_some() {}
}

/// A failed send is counted; the first few are described on stderr.
fn note_failure(error: &chat_client::Error) {
    static NOTED: AtomicU64 = AtomicU64::new(0);
    if NOTED.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!("send failed: {error}");
    }
}

/// A fraction in 0..1 spread evenly over clients (golden-ratio sequence),
/// so their sends do not all fall on the same instant.
fn rand_fraction(index: usize) -> f64 {
    const GOLDEN: f64 = 0.618_033_988_749_895;
    (index as f64 * GOLDEN).fract()
}
