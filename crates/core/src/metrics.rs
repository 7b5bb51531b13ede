//! The core's counters, through the `metrics` facade.
//!
//! Handles are resolved once at start-up so the hot paths (one increment per
//! delivery) do not look metrics up by name. Without an installed recorder
//! (unit tests) every handle is a no-op. The counts the admin dashboard
//! reads back also go to [`Counters`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::stats::Counters;

use metrics::{Counter, Gauge, Histogram};

pub const CONNECTIONS: &str = "chat_connections";
pub const ROOMS: &str = "chat_rooms";
pub const MESSAGES_IN: &str = "chat_messages_in_total";
pub const MESSAGES_OUT: &str = "chat_messages_out_total";
pub const ACK_LATENCY: &str = "chat_ack_latency_seconds";
pub const SLOW_CONSUMERS: &str = "chat_slow_consumers_dropped_total";
pub const COMMIT_BATCH: &str = "chat_commit_batch_size";
pub const COMMITS_FAILING: &str = "chat_store_commits_failing";
pub const COMMITS_FAILED: &str = "chat_store_commits_failed_total";

// A message's way through the server, stage by stage, so that a tail in
// the end-to-end latency can be attributed to the stage that causes it.
/// Received to handed to the store (waiting for the commit before it).
pub const SEND_QUEUED: &str = "chat_send_queued_seconds";
/// One batch's `Store::append`, whole.
pub const COMMIT: &str = "chat_commit_seconds";
/// The durable step of a commit, recorded by the store: SQLite's `COMMIT`
/// (the WAL's fsync); PostgreSQL's last round trip (inserts and `COMMIT`,
/// the server's WAL flush among them).
pub const COMMIT_SYNC: &str = "chat_commit_sync_seconds";
/// A batch's commit ended to its messages queued to every local member.
pub const PUBLISH: &str = "chat_publish_seconds";
/// A room event published to taken by a member's transport to write: the
/// first (oldest) event of each run the transport takes, one sample per
/// wake-up rather than per delivery.
pub const OUTBOX_WAIT: &str = "chat_outbox_wait_seconds";

/// Bucket bounds (seconds) of every latency histogram: fine below a
/// millisecond, where the goals are, and up to seconds for stalls.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Clone)]
pub struct Metrics {
    connections: Gauge,
    rooms: Gauge,
    messages_in: Counter,
    messages_out: Counter,
    ack_latency: Histogram,
    slow_consumers: Counter,
    commit_batch: Histogram,
    commits_failing: Gauge,
    commits_failed: Counter,
    send_queued: Histogram,
    commit: Histogram,
    publish: Histogram,
    outbox_wait: Histogram,
    /// The same counts, for the dashboard's history.
    counters: Arc<Counters>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        metrics::describe_gauge!(CONNECTIONS, "Open client connections");
        metrics::describe_gauge!(ROOMS, "Rooms with at least one member on this node");
        metrics::describe_counter!(MESSAGES_IN, "Messages stored (acked sends)");
        metrics::describe_counter!(MESSAGES_OUT, "Message deliveries queued to connections");
        metrics::describe_histogram!(
            ACK_LATENCY,
            metrics::Unit::Seconds,
            "Time from receiving a send to queuing its ack (includes the durable commit)"
        );
        metrics::describe_counter!(
            SLOW_CONSUMERS,
            "Connections dropped because they could not keep up (closed with 1013)"
        );
        metrics::describe_histogram!(COMMIT_BATCH, "Messages per durable commit");
        metrics::describe_gauge!(
            COMMITS_FAILING,
            "1 while commits fail (sends refused, /readyz 503), else 0"
        );
        metrics::describe_counter!(
            COMMITS_FAILED,
            "Commits that failed or were refused; each refused every send in it"
        );
        metrics::describe_histogram!(
            SEND_QUEUED,
            metrics::Unit::Seconds,
            "Time from receiving a send to handing it to the store"
        );
        metrics::describe_histogram!(
            COMMIT,
            metrics::Unit::Seconds,
            "Time one batch's commit took, whole"
        );
        metrics::describe_histogram!(
            COMMIT_SYNC,
            metrics::Unit::Seconds,
            "Time the durable step of a commit took (SQLite: COMMIT and its fsync; PostgreSQL: the round trip with COMMIT)"
        );
        metrics::describe_histogram!(
            PUBLISH,
            metrics::Unit::Seconds,
            "Time from a commit's end to its messages queued to every local member"
        );
        metrics::describe_histogram!(
            OUTBOX_WAIT,
            metrics::Unit::Seconds,
            "Time from publishing a room event to its member's transport taking it to write (the oldest event of a connection's first wake-up and of one in eight after)"
        );
        Metrics {
            connections: metrics::gauge!(CONNECTIONS),
            rooms: metrics::gauge!(ROOMS),
            messages_in: metrics::counter!(MESSAGES_IN),
            messages_out: metrics::counter!(MESSAGES_OUT),
            ack_latency: metrics::histogram!(ACK_LATENCY),
            slow_consumers: metrics::counter!(SLOW_CONSUMERS),
            commit_batch: metrics::histogram!(COMMIT_BATCH),
            commits_failing: metrics::gauge!(COMMITS_FAILING),
            commits_failed: metrics::counter!(COMMITS_FAILED),
            send_queued: metrics::histogram!(SEND_QUEUED),
            commit: metrics::histogram!(COMMIT),
            publish: metrics::histogram!(PUBLISH),
            outbox_wait: metrics::histogram!(OUTBOX_WAIT),
            counters: Arc::default(),
        }
    }

    /// The counters the dashboard's sampler reads.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    pub fn connection_opened(&self) {
        self.connections.increment(1.0);
        self.counters.connection_opened();
    }

    pub fn connection_closed(&self) {
        self.connections.decrement(1.0);
        self.counters.connection_closed();
    }

    pub fn set_rooms(&self, rooms: usize) {
        self.rooms.set(rooms as f64);
    }

    pub fn message_stored(&self) {
        self.messages_in.increment(1);
        self.counters.stored();
    }

    /// Messages stored per room by one commit batch (the dashboard's room
    /// rates; counted once per batch, not per message).
    pub fn stored_in_rooms(&self, rooms: HashMap<Arc<str>, u64>) {
        self.counters.stored_in_rooms(rooms);
    }

    pub fn delivered(&self, count: u64) {
        self.messages_out.increment(count);
        self.counters.delivered(count);
    }

    pub fn acked_after(&self, latency: Duration) {
        self.ack_latency.record(latency.as_secs_f64());
        self.counters.acked_after(latency);
    }

    pub fn slow_consumer_dropped(&self) {
        self.slow_consumers.increment(1);
        self.counters.slow_consumer_dropped();
    }

    pub fn committed_batch(&self, size: usize) {
        self.commit_batch.record(size as f64);
        self.counters.committed_batch(size);
    }

    pub fn commit_failed(&self) {
        self.commits_failed.increment(1);
    }

    pub fn set_commits_failing(&self, failing: bool) {
        self.commits_failing.set(if failing { 1.0 } else { 0.0 });
    }

    pub fn send_queued_for(&self, wait: Duration) {
        self.send_queued.record(wait.as_secs_f64());
    }

    pub fn committed_in(&self, took: Duration) {
        self.commit.record(took.as_secs_f64());
    }

    pub fn published_after(&self, wait: Duration) {
        self.publish.record(wait.as_secs_f64());
    }

    pub fn outbox_waited(&self, wait: Duration) {
        self.outbox_wait.record(wait.as_secs_f64());
    }
}
