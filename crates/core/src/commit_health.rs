//! Whether commits succeed: for `/readyz`, the metrics and the log.
//!
//! A store can answer reads, and so its `check`, while every commit fails
//! (a full disk, a database switched to read-only). Readiness must follow
//! the commits themselves: the committer reports every batch's outcome
//! here, and the node is unready from the first failed commit until one
//! succeeds again.
//!
//! While commits fail, each one would otherwise log its own error line,
//! hundreds a second under load. The first failure is logged at once, the
//! ones after it as a count at most once per [`REPORT_INTERVAL`], and the
//! recovery in one line.
//!
//! Without sends nothing would ever commit again, and a node that load
//! balancers no longer route to may get none: so while commits fail and
//! none is asked for, the committer probes with a commit of its own every
//! [`PROBE_INTERVAL`] (`Store::check_commit`), which counts as a commit
//! here.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::metrics::Metrics;
use crate::sync::lock;

/// At most one log line per this long about commits still failing.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// How long the committer waits without sends before probing a failing
/// store with a commit of its own.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The committer's verdict, read by readiness.
#[derive(Debug, Default)]
pub struct CommitHealth {
    /// The latest error, while commits fail.
    failing: Mutex<Option<String>>,
}

impl CommitHealth {
    /// The latest commit error while commits fail; `None` while they
    /// succeed.
    pub fn failing(&self) -> Option<String> {
        lock(&self.failing).clone()
    }

    fn set(&self, failing: Option<String>) {
        *lock(&self.failing) = failing;
    }
}

/// A run of failed commits, as the log has told it so far.
#[derive(Debug)]
struct Failures {
    since: Instant,
    commits: u64,
    refused_sends: u64,
    /// Failed commits since the last log line.
    unreported: u64,
    last_report: Instant,
}

/// Turns commit outcomes into the shared [`CommitHealth`], the metrics and
/// rate-limited log lines. Owned by the committer.
#[derive(Debug)]
pub struct CommitOutcomes {
    health: Arc<CommitHealth>,
    metrics: Metrics,
    failures: Option<Failures>,
}

impl CommitOutcomes {
    pub fn new(health: Arc<CommitHealth>, metrics: Metrics) -> Self {
        metrics.set_commits_failing(false);
        CommitOutcomes {
            health,
            metrics,
            failures: None,
        }
    }

    pub fn is_failing(&self) -> bool {
        self.failures.is_some()
    }

    /// A commit of `sends` sends failed with `error`; they were refused.
    pub fn failed(&mut self, error: &dyn std::fmt::Display, sends: usize) {
        self.metrics.commit_failed();
        let now = Instant::now();
        let error = error.to_string();
        match &mut self.failures {
            None => {
                tracing::error!(
                    %error,
                    sends,
                    "commit failed; sends are refused and /readyz answers 503 until a commit succeeds"
                );
                self.metrics.set_commits_failing(true);
                self.failures = Some(Failures {
                    since: now,
                    commits: 1,
                    refused_sends: sends as u64,
                    unreported: 0,
                    last_report: now,
                });
            }
            Some(failures) => {
                failures.commits += 1;
                failures.refused_sends += sends as u64;
                failures.unreported += 1;
                if now.duration_since(failures.last_report) >= REPORT_INTERVAL {
                    tracing::error!(
                        last_error = %error,
                        failing_for = ?failures.since.elapsed(),
                        "{} more commits failed since the last report",
                        failures.unreported
                    );
                    failures.unreported = 0;
                    failures.last_report = now;
                }
            }
        }
        self.health.set(Some(error));
    }

    /// A probe commit failed: commits still fail, but no send was refused.
    pub fn probe_failed(&mut self, error: &dyn std::fmt::Display) {
        if self.is_failing() {
            self.health.set(Some(error.to_string()));
        }
    }

    /// A commit succeeded (a batch, or a probe).
    pub fn succeeded(&mut self) {
        let Some(failures) = self.failures.take() else {
            return;
        };
        tracing::info!(
            failed_commits = failures.commits,
            refused_sends = failures.refused_sends,
            failing_for = ?failures.since.elapsed(),
            "commits succeed again"
        );
        self.metrics.set_commits_failing(false);
        self.health.set(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_the_latest_outcome() {
        let health = Arc::new(CommitHealth::default());
        let mut outcomes = CommitOutcomes::new(health.clone(), Metrics::new());
        outcomes.probe_failed(&"not failing yet");
        assert_eq!(health.failing(), None);
        outcomes.failed(&"disk full", 3);
        outcomes.failed(&"disk still full", 2);
        assert!(outcomes.is_failing());
        assert_eq!(health.failing().as_deref(), Some("disk still full"));
        outcomes.probe_failed(&"probe: disk full");
        assert_eq!(health.failing().as_deref(), Some("probe: disk full"));
        outcomes.succeeded();
        assert!(!outcomes.is_failing());
        assert_eq!(health.failing(), None);
    }
}
