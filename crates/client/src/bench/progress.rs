//! Shared counters and the once-a-second progress line on stderr.
//!
//! Connection tasks bump relaxed atomics (no locks, no ordering cost beyond
//! the increment itself); only the reporter reads them. Exact totals come
//! from the per-task results, not from these counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// Live counts for the progress line.
#[derive(Debug, Default)]
pub struct Counters {
    pub joined: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub errors: AtomicU64,
    pub frames: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Prints `line(elapsed, counters, seconds since last line)` every second
/// until the returned task is aborted.
pub fn spawn_reporter<F>(counters: Arc<Counters>, mut line: F) -> Reporter
where
    F: FnMut(Duration, &Counters, f64) -> String + Send + 'static,
{
    let started = Instant::now();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last = Instant::now();
        loop {
            tick.tick().await;
            let now = Instant::now();
            let dt = now.duration_since(last).as_secs_f64();
            last = now;
            eprintln!("{}", line(started.elapsed(), &counters, dt));
        }
    });
    Reporter { task }
}

/// Stops the progress line when dropped.
pub struct Reporter {
    task: JoinHandle<()>,
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Per-second rate of a counter between two progress lines.
#[derive(Debug, Default)]
pub struct Rate {
    last: u64,
}

impl Rate {
    /// Rate since the previous call, given the counter's current value.
    pub fn per_second(&mut self, now: u64, dt: f64) -> f64 {
        let delta = now.saturating_sub(self.last);
        self.last = now;
        if dt > 0.0 { delta as f64 / dt } else { 0.0 }
    }
}
