//! The node's recent history, for the admin dashboard (`/admin`).
//!
//! The `metrics` facade feeds Prometheus and cannot be read back, so the
//! same events also bump the [`Counters`] here: relaxed atomics on the hot
//! paths (a delivery, an ack), one lock per commit batch for the per-room
//! counts. A sampler task ([`sample`]) takes and resets the counters every
//! interval (5 s by default) and appends a [`Sample`] to the [`History`],
//! a ring of the last hour. Ack latency is a fixed-bucket histogram of
//! atomics, emptied per interval: its percentiles are a bucket's upper
//! bound, at most a quarter above the true value.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::committer::now_ms;
use crate::sync::lock;

/// How often the sampler records a sample by default.
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(5);
/// How far back the history goes.
pub const HISTORY_SPAN: Duration = Duration::from_secs(3600);
/// Rooms' message rates are over this much of the latest history.
pub const ROOM_RATE_WINDOW: Duration = Duration::from_secs(60);

/// Latency buckets: the first ends at 10 µs, each next one a quarter
/// further, the last (64th) at about 12.7 s; slower acks count in it.
const ACK_BUCKETS: usize = 64;

/// The buckets' upper bounds, in microseconds.
fn bucket_bounds() -> &'static [u64] {
    static BOUNDS: OnceLock<Vec<u64>> = OnceLock::new();
    BOUNDS.get_or_init(|| {
        (0..ACK_BUCKETS as i32)
            .map(|i| (10.0 * 1.25_f64.powi(i)).round() as u64)
            .collect()
    })
}

/// What happened on this node since the sampler's last look.
#[derive(Debug)]
pub struct Counters {
    /// Open connections now (never reset).
    connections: AtomicI64,
    stored: AtomicU64,
    delivered: AtomicU64,
    slow_drops: AtomicU64,
    batches: AtomicU64,
    batched: AtomicU64,
    largest_batch: AtomicU64,
    ack_buckets: Box<[AtomicU64]>,
    /// Messages stored per room, added once per commit batch.
    stored_per_room: Mutex<HashMap<Arc<str>, u64>>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            connections: AtomicI64::new(0),
            stored: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            slow_drops: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            batched: AtomicU64::new(0),
            largest_batch: AtomicU64::new(0),
            ack_buckets: (0..ACK_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            stored_per_room: Mutex::new(HashMap::new()),
        }
    }
}

impl Counters {
    pub(crate) fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn connections(&self) -> u64 {
        u64::try_from(self.connections.load(Ordering::Relaxed)).unwrap_or(0)
    }

    pub(crate) fn stored(&self) {
        self.stored.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stored_in_rooms(&self, rooms: HashMap<Arc<str>, u64>) {
        if rooms.is_empty() {
            return;
        }
        let mut counts = lock(&self.stored_per_room);
        for (room, count) in rooms {
            *counts.entry(room).or_default() += count;
        }
    }

    pub(crate) fn delivered(&self, count: u64) {
        self.delivered.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn slow_consumer_dropped(&self) {
        self.slow_drops.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn committed_batch(&self, size: usize) {
        let size = size as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batched.fetch_add(size, Ordering::Relaxed);
        self.largest_batch.fetch_max(size, Ordering::Relaxed);
    }

    pub(crate) fn acked_after(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = bucket_bounds()
            .partition_point(|&bound| bound < micros)
            .min(ACK_BUCKETS - 1);
        self.ack_buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Everything counted since the last call, which starts the next
    /// interval from zero.
    fn take(&self) -> Taken {
        let acks: Vec<u64> = self
            .ack_buckets
            .iter()
            .map(|bucket| bucket.swap(0, Ordering::Relaxed))
            .collect();
        Taken {
            stored: self.stored.swap(0, Ordering::Relaxed),
            delivered: self.delivered.swap(0, Ordering::Relaxed),
            slow_drops: self.slow_drops.swap(0, Ordering::Relaxed),
            batches: self.batches.swap(0, Ordering::Relaxed),
            batched: self.batched.swap(0, Ordering::Relaxed),
            largest_batch: self.largest_batch.swap(0, Ordering::Relaxed),
            acks,
            rooms: std::mem::take(&mut *lock(&self.stored_per_room)),
        }
    }
}

/// One interval's counts.
struct Taken {
    stored: u64,
    delivered: u64,
    slow_drops: u64,
    batches: u64,
    batched: u64,
    largest_batch: u64,
    acks: Vec<u64>,
    rooms: HashMap<Arc<str>, u64>,
}

/// Ack latency percentiles over one interval, in milliseconds; `None`
/// when nothing was acked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AckPercentiles {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
}

/// Commit batch sizes over one interval (0 without commits).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BatchSizes {
    pub mean: f64,
    pub max: u64,
}

/// One interval of this node, as `GET /api/admin/stats` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// The interval's end, Unix milliseconds.
    pub ts: i64,
    /// Connections open at the end.
    pub connections: u64,
    /// Messages (and changes) stored in the interval, and per second.
    pub messages: u64,
    pub messages_per_sec: f64,
    /// Message frames queued to connections in the interval, and per second.
    pub deliveries: u64,
    pub deliveries_per_sec: f64,
    pub ack_ms: AckPercentiles,
    pub commit_batch: BatchSizes,
    pub slow_consumer_drops: u64,
    /// The runtime's live tasks (one or two per connection, plus the
    /// server's own).
    pub tasks: u64,
}

/// The `q` quantile's bucket bound in milliseconds.
fn percentile(buckets: &[u64], total: u64, q: f64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    let bucket = buckets
        .iter()
        .position(|&count| {
            seen += count;
            seen >= rank
        })
        .unwrap_or(ACK_BUCKETS - 1);
    Some(bucket_bounds()[bucket] as f64 / 1000.0)
}

impl Taken {
    fn sample(&self, ts: i64, elapsed: Duration, connections: u64, tasks: u64) -> Sample {
        let seconds = elapsed.as_secs_f64().max(0.001);
        let acked = self.acks.iter().sum();
        Sample {
            ts,
            connections,
            messages: self.stored,
            deliveries: self.delivered,
            messages_per_sec: self.stored as f64 / seconds,
            deliveries_per_sec: self.delivered as f64 / seconds,
            ack_ms: AckPercentiles {
                p50: percentile(&self.acks, acked, 0.5),
                p99: percentile(&self.acks, acked, 0.99),
                p999: percentile(&self.acks, acked, 0.999),
            },
            commit_batch: BatchSizes {
                mean: if self.batches == 0 {
                    0.0
                } else {
                    self.batched as f64 / self.batches as f64
                },
                max: self.largest_batch,
            },
            slow_consumer_drops: self.slow_drops,
            tasks,
        }
    }
}

/// Messages stored per room in one interval, and how long it was.
type RoomCounts = (Duration, HashMap<Arc<str>, u64>);

/// The last hour of samples, and the last minute of per-room counts.
#[derive(Debug)]
pub struct History {
    interval: Duration,
    capacity: usize,
    samples: Mutex<VecDeque<Sample>>,
    /// The latest intervals' per-room counts.
    rooms: Mutex<VecDeque<RoomCounts>>,
    room_intervals: usize,
}

impl History {
    /// A history sampled every `interval` (at least a millisecond).
    pub fn new(interval: Duration) -> History {
        let interval = interval.max(Duration::from_millis(1));
        let per = |span: Duration| (span.as_millis() / interval.as_millis()).max(1) as usize;
        History {
            interval,
            capacity: per(HISTORY_SPAN),
            samples: Mutex::new(VecDeque::new()),
            rooms: Mutex::new(VecDeque::new()),
            room_intervals: per(ROOM_RATE_WINDOW),
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn record(&self, sample: Sample, elapsed: Duration, rooms: HashMap<Arc<str>, u64>) {
        let mut samples = lock(&self.samples);
        if samples.len() == self.capacity {
            samples.pop_front();
        }
        samples.push_back(sample);
        drop(samples);
        let mut recent = lock(&self.rooms);
        if recent.len() == self.room_intervals {
            recent.pop_front();
        }
        recent.push_back((elapsed, rooms));
    }

    /// The samples newer than `since` (all without it), oldest first.
    pub fn samples_since(&self, since: Option<i64>) -> Vec<Sample> {
        lock(&self.samples)
            .iter()
            .filter(|sample| since.is_none_or(|since| sample.ts > since))
            .cloned()
            .collect()
    }

    /// Messages stored per second in each room over the last minute (or
    /// as much of it as has been sampled), rooms without any left out.
    pub fn room_rates(&self) -> HashMap<Arc<str>, f64> {
        let recent = lock(&self.rooms);
        let seconds: f64 = recent.iter().map(|(took, _)| took.as_secs_f64()).sum();
        let mut counts: HashMap<Arc<str>, u64> = HashMap::new();
        for (_, rooms) in recent.iter() {
            for (room, count) in rooms {
                *counts.entry(room.clone()).or_default() += count;
            }
        }
        counts
            .into_iter()
            .map(|(room, count)| (room, count as f64 / seconds.max(0.001)))
            .collect()
    }
}

/// Records a sample of `counters` into `history` every interval, until the
/// task is dropped.
pub async fn sample(counters: Arc<Counters>, history: Arc<History>) {
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + history.interval,
        history.interval,
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Counts from before the first interval are not part of it.
    counters.take();
    let mut last = Instant::now();
    loop {
        ticks.tick().await;
        let taken = counters.take();
        let now = Instant::now();
        let elapsed = now - last;
        last = now;
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks() as u64;
        let sample = taken.sample(now_ms(), elapsed, counters.connections(), tasks);
        history.record(sample, elapsed, taken.rooms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_the_bound_of_the_bucket_holding_the_rank() {
        let counters = Counters::default();
        for _ in 0..990 {
            counters.acked_after(Duration::from_micros(900));
        }
        for _ in 0..10 {
            counters.acked_after(Duration::from_millis(40));
        }
        let taken = counters.take();
        let sample = taken.sample(0, Duration::from_secs(1), 0, 0);
        let p50 = sample.ack_ms.p50.unwrap();
        let p999 = sample.ack_ms.p999.unwrap();
        assert!((0.9..=0.9 * 1.25).contains(&p50), "{p50}");
        assert!((40.0..=40.0 * 1.25).contains(&p999), "{p999}");
        assert_eq!(sample.ack_ms.p99, sample.ack_ms.p50);
        // Taken: the next interval starts empty.
        let next = counters.take().sample(0, Duration::from_secs(1), 0, 0);
        assert_eq!(next.ack_ms.p50, None);
    }

    #[test]
    fn batches_rates_and_room_counts_cover_one_interval() {
        let counters = Counters::default();
        counters.committed_batch(2);
        counters.committed_batch(6);
        for _ in 0..8 {
            counters.stored();
        }
        counters.stored_in_rooms(HashMap::from([(Arc::from("a"), 8)]));
        let taken = counters.take();
        let sample = taken.sample(1, Duration::from_secs(2), 0, 0);
        assert_eq!(sample.commit_batch, BatchSizes { mean: 4.0, max: 6 });
        assert_eq!(sample.messages_per_sec, 4.0);
        let history = History::new(Duration::from_secs(2));
        history.record(sample, Duration::from_secs(2), taken.rooms);
        assert_eq!(history.room_rates()[&Arc::from("a")], 4.0);
        assert_eq!(history.samples_since(Some(0)).len(), 1);
        assert!(history.samples_since(Some(1)).is_empty());
    }

    #[test]
    fn the_history_keeps_the_last_hour() {
        let history = History::new(Duration::from_secs(5));
        assert_eq!(history.capacity, 720);
        let counters = Counters::default();
        for ts in 0..800 {
            let sample = counters.take().sample(ts, Duration::from_secs(5), 0, 0);
            history.record(sample, Duration::from_secs(5), HashMap::new());
        }
        let samples = history.samples_since(None);
        assert_eq!(samples.len(), 720);
        assert_eq!(samples[0].ts, 80);
    }
}
