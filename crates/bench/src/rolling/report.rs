//! What `chat-bench rolling` found: the checks on what every client saw,
//! latencies before and during the restarts, each restart's timings, and a
//! per-second timeline; as a table on stdout, and with `--json PATH` as a
//! JSON file and an SVG chart beside it.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::RollingArgs;
use super::clients::{Member, Phase, Shared, lock};
use crate::Table;
use crate::plot::{self, Axis, Chart, Series};
use crate::stats::LatencySummary;

/// One node's restart.
#[derive(Debug, Clone, Serialize)]
pub struct Restart {
    pub node: usize,
    pub round: usize,
    /// The binary the node was started again from.
    pub binary: std::path::PathBuf,
    /// When the drain began, seconds since the run's start.
    pub at_s: f64,
    /// From the drain's start to the process's exit.
    pub drain_ms: u128,
    /// The drained process's exit status (`None`: killed by a signal).
    pub exit_code: Option<i32>,
    /// From starting the new process to `/readyz` 200.
    pub ready_ms: u128,
}

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub second: usize,
    /// Clients with a connection (`None`: not sampled that second).
    pub connected: Option<i64>,
    pub deliveries: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The checks, over every client.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Checks {
    /// (member, acked message) pairs where the member, in the room from
    /// before the message, never got it.
    pub lost: u64,
    /// Deliveries of a `seq` the client already had.
    pub duplicates: u64,
    /// Deliveries of a `seq` lower than one delivered before it.
    pub out_of_order: u64,
    /// Clients without a connection at the end.
    pub not_back: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub clients: usize,
    pub rooms: usize,
    pub rate_per_client: f64,
    pub nodes: usize,
    pub rounds: usize,
    pub drain: String,
    pub sent: u64,
    pub acked: u64,
    /// Sends that got an error instead of an ack (the library retries
    /// retryable ones; these gave up).
    pub send_failures: u64,
    pub deliveries: u64,
    #[serde(flatten)]
    pub checks: Checks,
    /// Deliveries caught up with every ack before the end.
    pub caught_up: bool,
    /// Connection losses, over all clients.
    pub outages: u64,
    pub longest_outage_ms: u128,
    pub latency_before_us: LatencySummary,
    pub latency_during_us: LatencySummary,
    pub restarts: Vec<Restart>,
    pub timeline: Vec<Sample>,
}

/// Checks one client's deliveries against the acked `seq`s of its room.
fn check(seen: &super::clients::Seen, acked: &[u64]) -> Checks {
    let mut checks = Checks::default();
    let mut have = HashSet::with_capacity(seen.seqs.len());
    let mut highest = 0;
    for &seq in &seen.seqs {
        if !have.insert(seq) {
            checks.duplicates += 1;
        } else if seq < highest {
            checks.out_of_order += 1;
        }
        highest = highest.max(seq);
    }
    checks.lost = acked
        .iter()
        .filter(|seq| **seq > seen.base && !have.contains(seq))
        .count() as u64;
    checks
}

impl Report {
    pub fn new(
        args: &RollingArgs,
        members: &[Arc<Member>],
        shared: &Shared,
        restarts: Vec<Restart>,
        timeline: Vec<Sample>,
        caught_up: bool,
    ) -> Report {
        let acked = lock(&shared.acked).clone();
        let mut checks = Checks::default();
        let (mut outages, mut longest, mut deliveries) = (0, std::time::Duration::ZERO, 0);
        for member in members {
            let seen = lock(&member.seen);
            let one = check(&seen, &acked[seen.room]);
            checks.lost += one.lost;
            checks.duplicates += one.duplicates;
            checks.out_of_order += one.out_of_order;
            if seen.closed || seen.down_since.is_some() {
                checks.not_back += 1;
            }
            let ongoing = seen
                .down_since
                .map(|since| since.elapsed())
                .unwrap_or_default();
            longest = longest.max(seen.longest_outage).max(ongoing);
            outages += seen.outages;
            deliveries += seen.seqs.len() as u64;
        }
        let phases = lock(&shared.phases);
        Report {
            clients: args.clients,
            rooms: args.rooms,
            rate_per_client: args.rate,
            nodes: super::NODES,
            rounds: args.rounds,
            drain: format!("{:?}", args.drain).to_lowercase(),
            sent: shared.sent.load(Ordering::Relaxed),
            acked: acked.iter().map(|room| room.len() as u64).sum(),
            send_failures: shared.send_failures.load(Ordering::Relaxed),
            deliveries,
            checks,
            caught_up,
            outages,
            longest_outage_ms: longest.as_millis(),
            latency_before_us: LatencySummary::of(&phases[Phase::Before as usize]),
            latency_during_us: LatencySummary::of(&phases[Phase::During as usize]),
            restarts,
            timeline,
        }
    }

    /// Nothing lost, doubled or reordered, every client back, every
    /// drained node exited 0.
    pub fn passed(&self) -> bool {
        let c = &self.checks;
        c.lost == 0
            && c.duplicates == 0
            && c.out_of_order == 0
            && c.not_back == 0
            && self.restarts.iter().all(|r| r.exit_code == Some(0))
    }

    fn table(&self) -> String {
        let mut t = Table::new(24);
        t.line(&format!(
            "rolling restart: {} nodes x {} rounds ({} drain), {} clients in {} rooms, {}/s each\n",
            self.nodes, self.rounds, self.drain, self.clients, self.rooms, self.rate_per_client
        ));
        t.row(
            "sent / acked / failed",
            format!("{} / {} / {}", self.sent, self.acked, self.send_failures),
        );
        t.row("deliveries", self.deliveries.to_string());
        t.row("lost (acked, not delivered)", self.checks.lost.to_string());
        t.row("duplicates", self.checks.duplicates.to_string());
        t.row("out of order", self.checks.out_of_order.to_string());
        t.row("clients not back", self.checks.not_back.to_string());
        t.row("outages", self.outages.to_string());
        t.row(
            "longest without connection",
            format!("{} ms", self.longest_outage_ms),
        );
        t.row("latency before", self.latency_before_us.row());
        t.row("latency during", self.latency_during_us.row());
        for r in &self.restarts {
            t.row(
                &format!("restart node {} round {}", r.node, r.round),
                format!(
                    "at {:.1} s: drained in {} ms (exit {}), ready {} ms after start",
                    r.at_s,
                    r.drain_ms,
                    r.exit_code.map_or("signal".into(), |c| c.to_string()),
                    r.ready_ms
                ),
            );
        }
        t.row(
            "result",
            if self.passed() {
                "PASS".into()
            } else {
                "FAIL".into()
            },
        );
        t.finish()
    }

    /// The table on stdout; with `path`, the JSON there and the chart beside it.
    pub fn emit(&self, path: Option<&Path>) -> anyhow::Result<()> {
        print!("{}", self.table());
        if let Some(path) = path {
            std::fs::write(path, serde_json::to_string_pretty(self)?)?;
            let svg = plot::svg_beside(path);
            self.chart(&svg)?;
            eprintln!("rolling: wrote {} and {}", path.display(), svg.display());
        }
        Ok(())
    }

    /// Latency p50 and p99 (left axis) and connected clients (right) over
    /// time, with each drain marked.
    fn chart(&self, path: &Path) -> anyhow::Result<()> {
        let points = |value: fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
            self.timeline
                .iter()
                .filter_map(|s| Some((s.second as f64, value(s)?)))
                .collect()
        };
        let series = [
            Series {
                name: "delivery p99 (ms)".into(),
                points: points(|s| (s.deliveries > 0).then_some(s.p99_ms)),
                axis: Axis::Left,
            },
            Series {
                name: "delivery p50 (ms)".into(),
                points: points(|s| (s.deliveries > 0).then_some(s.p50_ms)),
                axis: Axis::Left,
            },
            Series {
                name: "connected clients".into(),
                points: points(|s| s.connected.map(|c| c as f64)),
                axis: Axis::Right,
            },
        ];
        let markers: Vec<(f64, String)> = self
            .restarts
            .iter()
            .map(|r| (r.at_s, format!("node {}", r.node)))
            .collect();
        plot::line_chart(
            path,
            &Chart {
                title: "Rolling restart: delivery latency and connected clients",
                x_label: "seconds",
                y_left_label: "latency (ms)",
                y_right_label: Some("clients"),
                series: &series,
                markers: &markers,
            },
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::clients::Seen;
    use super::*;

    fn seen(base: u64, seqs: &[u64]) -> Seen {
        Seen {
            base,
            seqs: seqs.to_vec(),
            ..Seen::default()
        }
    }

    #[test]
    fn every_acked_message_after_the_join_must_be_delivered() {
        let c = check(&seen(2, &[3, 5]), &[1, 2, 3, 4, 5]);
        assert_eq!(c.lost, 1, "4 is missing; 1 and 2 came before the join");
    }

    #[test]
    fn duplicates_and_reordering_are_counted_apart() {
        let c = check(&seen(0, &[1, 3, 2, 3, 4]), &[1, 2, 3, 4]);
        assert_eq!((c.lost, c.duplicates, c.out_of_order), (0, 1, 1));
    }
}
