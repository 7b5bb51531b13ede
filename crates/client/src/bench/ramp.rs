//! `ramp`: raise the rate step by step until the server is no longer good,
//! and report the highest good rate.
//!
//! Each step is a fresh [`Fleet`] measurement on the same connections: a
//! warm-up, a measured window, a drain. A step is *good* when its p99
//! end-to-end latency is within the bound and nothing was lost, repeated,
//! reordered, refused or dropped. The rate per room starts at
//! `--start-rate` and is multiplied by `--factor` after every good step. A
//! bad step is measured again, up to `--retries` times, before it ends the
//! ramp (its table row says why): on a machine shared with other work a
//! single scheduling stall of the server or the bench can push one window's
//! p99 over the bound, while a server past its limit fails every attempt. The answer is the
//! deliveries per second of the best good step, so the true limit lies
//! between it and the next step's rate.
//!
//! Each step also reports the bench's own CPU use: a step where the bench
//! used most of its core measured the bench as much as the server, which is
//! how a ramp against the fastest peer shows the bench's own ceiling.

use std::time::Duration;

use anyhow::ensure;
use serde::Serialize;

use super::fanout::setup_rows;
use super::fleet::{Fleet, LoadArgs, SetupReport, StepReport};
use super::stats::micros;
use super::{Table, emit};

/// Bench CPU (fraction of one core) above which a step's figures say as
/// much about the bench as about the server.
pub const BENCH_SATURATED: f64 = 0.9;

/// CPU (fraction of one core) of the server or the bench at or above which
/// a failing step is explained by load. Below it on both sides, the step
/// failed on latency stalls that neither process caused: on a shared
/// machine, other work; the ramp's answer is then a lower bound.
pub const LOADED: f64 = 0.85;

/// Whether a step ran with the server or the bench near a full core.
pub fn loaded(step: &StepReport) -> bool {
    step.server_cpu_fraction.is_some_and(|f| f >= LOADED)
        || step.bench_cpu_fraction.is_some_and(|f| f >= LOADED)
}

#[derive(Debug, Clone, clap::Args)]
pub struct RampArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Messages a second per room in the first step.
    #[arg(long, default_value_t = 2.0)]
    pub start_rate: f64,
    /// Rate multiplier from one step to the next.
    #[arg(long, default_value_t = 1.5)]
    pub factor: f64,
    /// Seconds measured per step, after its warm-up.
    #[arg(long, default_value_t = 5.0)]
    pub step_secs: f64,
    /// Most steps, good or not.
    #[arg(long, default_value_t = 15)]
    pub max_steps: u32,
    /// Highest rate per room to try.
    #[arg(long)]
    pub max_rate: Option<f64>,
    /// A step is good only while its p99 latency is at most this, ms.
    #[arg(long, default_value_t = 100.0)]
    pub p99_bound_ms: f64,
    /// Times a bad step is measured again at the same rate before the ramp
    /// stops.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
}

/// Why a step is not good; `None` when it is.
pub fn fault(step: &StepReport, p99_bound_us: u64) -> Option<String> {
    let mut faults = Vec::new();
    if step.latency_us.count == 0 {
        faults.push("nothing delivered".to_string());
    } else if step.latency_us.p99 > p99_bound_us {
        faults.push(format!(
            "p99 {} > {}",
            micros(step.latency_us.p99),
            micros(p99_bound_us)
        ));
    }
    for (what, n) in [
        ("lost", step.lost),
        ("duplicated", step.duplicated),
        ("out of order", step.out_of_order),
        ("unexpected", step.unexpected),
        ("seq violations", step.seq_violations),
        ("unanswered", step.unanswered),
        ("undecodable", step.undecodable),
        ("errors", step.errors.values().sum()),
        ("dropped", step.dropped_connections.values().sum()),
    ] {
        if n > 0 {
            faults.push(format!("{what} {n}"));
        }
    }
    (!faults.is_empty()).then(|| faults.join(", "))
}

/// The rates of the steps: `start`, `start × factor`, … up to `max_steps`
/// of them and not above `max_rate`.
pub fn rates(start: f64, factor: f64, max_steps: u32, max_rate: Option<f64>) -> Vec<f64> {
    let mut out = Vec::new();
    let mut rate = start;
    while out.len() < max_steps as usize && max_rate.is_none_or(|m| rate <= m * (1.0 + 1e-9)) {
        out.push(rate);
        rate *= factor;
    }
    out
}

/// One row of the ramp.
#[derive(Debug, Serialize)]
pub struct RampStep {
    #[serde(flatten)]
    pub report: StepReport,
    pub good: bool,
    /// Why the step is not good.
    pub fault: Option<String>,
    /// 1 for the first measurement at this rate, 2 for the first retry, …
    pub attempt: u32,
    /// The bench used at least [`BENCH_SATURATED`] of a core.
    pub bench_saturated: bool,
}

/// The JSON summary of a ramp.
#[derive(Debug, Serialize)]
pub struct RampReport {
    pub scenario: &'static str,
    pub url: String,
    pub rooms: u64,
    pub members: u64,
    pub senders_per_room: u64,
    pub connections: u64,
    pub text_bytes: u64,
    pub warmup_secs: f64,
    pub step_secs: f64,
    pub factor: f64,
    pub p99_bound_ms: f64,
    pub retries: u32,
    pub setup: SetupReport,
    pub steps: Vec<RampStep>,
    /// Step number of the best good step.
    pub best_step: Option<u64>,
    pub best_rate_per_room: Option<f64>,
    /// Deliveries a second of the best good step: the answer.
    pub best_deliveries_per_sec: Option<f64>,
    pub best_p99_us: Option<u64>,
    /// Whether the bench was near its own limit in the best good step or
    /// the step after it.
    pub bench_limited: bool,
    /// The highest extrapolated bench ceiling over the steps.
    pub bench_ceiling_deliveries_per_sec: Option<f64>,
    pub stop_reason: String,
    /// When a bad step ended the ramp: whether the server or the bench was
    /// near a full core in it ([`LOADED`]). `false` means the ramp stopped
    /// on stalls from elsewhere and its answer is only a lower bound.
    pub stopped_loaded: Option<bool>,
}

impl RampReport {
    pub fn table(&self) -> String {
        let mut t = Table::new(24);
        t.row("scenario", "ramp".into());
        t.row("url", self.url.clone());
        t.row(
            "load",
            format!(
                "{} rooms x {} members ({} sending), {} B text; steps x{} of {:.1} s + {:.1} s warm-up",
                self.rooms,
                self.members,
                self.senders_per_room,
                self.text_bytes,
                self.factor,
                self.step_secs,
                self.warmup_secs
            ),
        );
        setup_rows(&self.setup, &mut t);
        t.line(&format!(
            "\n  {:>4} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>6} {:>6} {:>7} {:>7}  verdict\n",
            "step",
            "msg/s/rm",
            "offered/s",
            "deliv/s",
            "p50",
            "p99",
            "max",
            "lost",
            "dup+oo",
            "srv cpu",
            "bench"
        ));
        for s in &self.steps {
            let r = &s.report;
            t.line(&format!(
                "  {:>4} {:>9.2} {:>10.0} {:>10.0} {:>9} {:>9} {:>9} {:>6} {:>6} {:>7} {:>7}  {}\n",
                r.step,
                r.rate_per_room,
                r.offered_deliveries_per_sec,
                r.deliveries_per_sec,
                micros(r.latency_us.p50),
                micros(r.latency_us.p99),
                micros(r.latency_us.max),
                r.lost,
                r.duplicated + r.out_of_order,
                percent(r.server_cpu_fraction),
                percent(r.bench_cpu_fraction),
                match (&s.fault, s.attempt) {
                    (None, 1) => "good".to_string(),
                    (None, n) => format!("good (attempt {n})"),
                    (Some(f), 1) => f.clone(),
                    (Some(f), n) => format!("{f} (attempt {n})"),
                },
            ));
        }
        t.line("\n");
        match (self.best_deliveries_per_sec, self.best_rate_per_room) {
            (Some(d), Some(r)) => t.row(
                "highest good rate",
                format!(
                    "{d:.0} deliveries/s ({r:.2} msg/s per room, p99 {}){}",
                    micros(self.best_p99_us.unwrap_or(0)),
                    if self.bench_limited {
                        "; the bench was near its own CPU limit"
                    } else {
                        ""
                    }
                ),
            ),
            _ => t.row(
                "highest good rate",
                "none: the first step was not good".into(),
            ),
        }
        if let Some(c) = self.bench_ceiling_deliveries_per_sec {
            t.row("bench ceiling (extrap.)", format!("~{c:.0} deliveries/s"));
        }
        t.row("stopped", self.stop_reason.clone());
        if self.stopped_loaded == Some(false) {
            t.row(
                "warning",
                "neither the server nor the bench was near a full core in the last step: \
                 it failed on stalls from elsewhere, so the answer is a lower bound"
                    .into(),
            );
        }
        t.finish()
    }
}

fn percent(f: Option<f64>) -> String {
    f.map_or_else(|| "-".into(), |f| format!("{:.0}%", f * 100.0))
}

/// Runs the ramp; `Ok(false)` when not even the first step was good or a
/// connection failed to join.
pub async fn run(args: RampArgs) -> anyhow::Result<bool> {
    ensure!(args.start_rate > 0.0, "--start-rate must be positive");
    ensure!(args.factor > 1.0, "--factor must be above 1");
    ensure!(args.step_secs > 0.0, "--step-secs must be positive");
    let load = &args.load;
    let bound_us = (args.p99_bound_ms * 1000.0) as u64;
    load.common.note_shared_sources(load.connections());
    let mut fleet = Fleet::open(load, "ramp").await?;
    let window = Duration::from_secs_f64(args.step_secs);
    let mut steps: Vec<RampStep> = Vec::new();
    let mut stop_reason = "reached --max-steps or --max-rate".to_string();
    let mut stopped_loaded = None;
    'rates: for rate in rates(args.start_rate, args.factor, args.max_steps, args.max_rate) {
        for attempt in 1..=args.retries + 1 {
            if fleet.alive() == 0 {
                stop_reason = "no connection left".into();
                break 'rates;
            }
            let report = fleet.run_step(rate, window).await;
            let fault = fault(&report, bound_us);
            let bench_saturated = report
                .bench_cpu_fraction
                .is_some_and(|f| f >= BENCH_SATURATED);
            let why = fault.clone();
            steps.push(RampStep {
                good: fault.is_none(),
                fault,
                attempt,
                bench_saturated,
                report,
            });
            match why {
                None => continue 'rates,
                Some(why) if attempt > args.retries => {
                    stopped_loaded = steps.last().map(|s| loaded(&s.report));
                    stop_reason = format!(
                        "{rate:.2} msg/s per room not good in {attempt} attempts; last: {why}"
                    );
                    break 'rates;
                }
                Some(_) => {}
            }
        }
    }
    let setup = fleet.setup.clone();
    fleet.close();

    let best = steps.iter().filter(|s| s.good).max_by(|a, b| {
        a.report
            .deliveries_per_sec
            .total_cmp(&b.report.deliveries_per_sec)
    });
    let best_index = best.map(|b| b.report.step);
    let bench_limited = steps.iter().any(|s| {
        s.bench_saturated
            && best_index.is_some_and(|b| s.report.step == b || s.report.step == b + 1)
    });
    let report = RampReport {
        scenario: "ramp",
        url: load.common.url.clone(),
        rooms: load.rooms,
        members: load.members,
        senders_per_room: load.senders,
        connections: load.connections(),
        text_bytes: load.text_bytes,
        warmup_secs: load.warmup,
        step_secs: args.step_secs,
        factor: args.factor,
        p99_bound_ms: args.p99_bound_ms,
        retries: args.retries,
        best_step: best_index,
        best_rate_per_room: best.map(|b| b.report.rate_per_room),
        best_deliveries_per_sec: best.map(|b| b.report.deliveries_per_sec),
        best_p99_us: best.map(|b| b.report.latency_us.p99),
        bench_limited,
        bench_ceiling_deliveries_per_sec: steps
            .iter()
            .filter_map(|s| s.report.bench_ceiling_deliveries_per_sec)
            .max_by(f64::total_cmp),
        setup,
        steps,
        stop_reason,
        stopped_loaded,
    };
    emit(&load.common, &report.table(), &report)?;
    Ok(report.setup.failed == 0 && report.best_step.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::LatencySummary;

    fn step(p99: u64) -> StepReport {
        StepReport {
            latency_us: LatencySummary {
                count: 100,
                p99,
                ..LatencySummary::default()
            },
            ..StepReport::default()
        }
    }

    #[test]
    fn rates_grow_by_the_factor_within_the_limits() {
        assert_eq!(rates(2.0, 1.5, 4, None), vec![2.0, 3.0, 4.5, 6.75]);
        assert_eq!(rates(2.0, 2.0, 10, Some(8.0)), vec![2.0, 4.0, 8.0]);
        assert!(rates(2.0, 2.0, 0, None).is_empty());
    }

    #[test]
    fn a_step_is_good_within_the_bound_and_without_loss() {
        assert_eq!(fault(&step(100_000), 100_000), None);
        let slow = fault(&step(100_001), 100_000).unwrap();
        assert!(slow.starts_with("p99 100.00 ms"), "{slow}");
        let mut lossy = step(1_000);
        lossy.lost = 3;
        lossy.out_of_order = 1;
        assert_eq!(
            fault(&lossy, 100_000).as_deref(),
            Some("lost 3, out of order 1")
        );
        let mut refused = step(1_000);
        refused.errors.insert("rate_limited".into(), 2);
        assert_eq!(fault(&refused, 100_000).as_deref(), Some("errors 2"));
    }

    #[test]
    fn a_step_is_loaded_when_either_side_nears_a_core() {
        let mut s = step(1_000);
        assert!(!loaded(&s), "no CPU figures");
        s.server_cpu_fraction = Some(0.7);
        s.bench_cpu_fraction = Some(0.7);
        assert!(!loaded(&s));
        s.bench_cpu_fraction = Some(0.9);
        assert!(loaded(&s));
    }

    #[test]
    fn an_empty_step_is_not_good() {
        assert_eq!(
            fault(&StepReport::default(), 100_000).as_deref(),
            Some("nothing delivered")
        );
    }
}
