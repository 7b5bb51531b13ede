//! Shared counters and the once-a-second progress line on stderr.
//!
//! Connection tasks bump relaxed atomics (no locks, no ordering cost beyond
//! the increment itself); only the reporter reads them. Exact totals come
//! from the per-task results, not from these counters.
//!
//! On a terminal the line is rewritten in place; otherwise (a log file, a
//! script capturing stderr) each update is its own line, so the log keeps
//! the history.

use std::io::IsTerminal;
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
/// until the returned reporter is dropped.
pub fn spawn_reporter<F>(counters: Arc<Counters>, mut line: F) -> Reporter
where
    F: FnMut(Duration, &Counters, f64) -> String + Send + 'static,
{
    spawn_line(move |elapsed, dt| line(elapsed, &counters, dt))
}

/// Prints `line(elapsed, seconds since last line)` every second until the
/// returned reporter is dropped.
pub fn spawn_line<F>(mut line: F) -> Reporter
where
    F: FnMut(Duration, f64) -> String + Send + 'static,
{
    let in_place = std::io::stderr().is_terminal();
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
            let text = line(started.elapsed(), dt);
            if in_place {
                // Return to the line start and clear it, then rewrite.
                eprint!("\r\x1b[2K{text}");
            } else {
                eprintln!("{text}");
            }
        }
    });
    Reporter { task, in_place }
}

/// Stops the progress line when dropped.
pub struct Reporter {
    task: JoinHandle<()>,
    in_place: bool,
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.task.abort();
        if self.in_place {
            // Leave the last progress line and start the report below it.
            eprintln!();
        }
    }
}

/// A text progress bar of `width` cells for `fraction` (clamped to 0..=1).
pub fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_with_the_fraction() {
        assert_eq!(bar(0.0, 4), "[----]");
        assert_eq!(bar(0.5, 4), "[##--]");
        assert_eq!(bar(7.0, 4), "[####]");
        assert_eq!(bar(-1.0, 2), "[--]");
    }

    #[test]
    fn rates_are_per_second_deltas() {
        let mut r = Rate::default();
        assert_eq!(r.per_second(100, 2.0), 50.0);
        assert_eq!(r.per_second(100, 1.0), 0.0);
        assert_eq!(r.per_second(150, 0.0), 0.0);
    }
}
