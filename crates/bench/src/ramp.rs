//! `ramp`: raise the rate step by step until the server is no longer good,
//! then narrow down where between the last good and the first bad rate its
//! limit lies, and report the highest good rate.
//!
//! Each step is a fresh [`Fleet`] measurement on the same connections: a
//! warm-up, a measured window, a drain. A step is *good* when its p99
//! end-to-end latency is within the bound and nothing was lost, repeated,
//! reordered, refused or dropped. A bad step is measured again, up to
//! `--retries` times, before its rate counts as bad (its table row says
//! why): on a machine shared with other work a single scheduling stall of
//! the server or the bench can push one window's p99 over the bound, while
//! a server past its limit fails every attempt.
//!
//! The ramp has two phases:
//!
//! - *ramp* (geometric): the rate per room starts at `--start-rate` and is
//!   multiplied by `--factor` after every good rate, for at most
//!   `--max-steps` rates and not above `--max-rate`. It stops at the first
//!   bad rate B, whose good predecessor is G = B / factor.
//! - *refine* (bisection): the geometric phase alone quantizes the answer to
//!   powers of the factor. With the default 1.5, two servers whose real
//!   limits differ by 5% can come out as G = 51k and 76k deliveries/s
//!   (a ratio of 0.67 or 1.5) depending on which side of a step each falls,
//!   and since servers are compared by the ratio of their ramps, that
//!   quantization would be the largest error of the comparison. So the ramp
//!   then tries M = √(G × B) and keeps the half that still brackets the
//!   limit (G = M if M is good, else B = M), `--refine` times (default 3),
//!   which narrows the bracket from ×factor to ×factor^(1/2^refine):
//!   ×1.5^(1/8) ≈ ×1.052 by default. Refinement steps are extra to
//!   `--max-steps`; there is nothing to refine when the geometric phase
//!   stopped for any reason other than a bad rate after a good one (every
//!   step good up to `--max-steps` or `--max-rate`, no good step at all, no
//!   connection left).
//!
//! The answer is the deliveries per second of the best good step (the one
//! at the highest good rate), and the report gives the bracket: the true
//! limit lies between the highest good rate and the lowest bad rate tried
//! above it.
//!
//! Each step also reports the bench's own CPU use: a step where the bench
//! used most of its core measured the bench as much as the server, which is
//! how a ramp against the fastest peer shows the bench's own ceiling.
//!
//! With `--read-every N` every member also sends read markers as it
//! receives (see [`crate::reads`]); a step with a refused or unanswered
//! read is not good, and the report has each step's reads and read
//! latency.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, ensure};
use serde::Serialize;
use serde_json::Value;

use crate::fanout::{read_every, setup_rows};
use crate::fleet::{Fleet, LoadArgs, SetupReport, StepReport};
use crate::plot::{self, Axis, Chart, Series};
use crate::stats::micros;
use crate::{Table, emit};

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
    /// Most rates of the geometric phase, good or not (refinement steps are
    /// extra).
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
    /// Bisection steps between the last good and the first bad rate of the
    /// geometric phase, each halving the bracket's log width (0: none).
    #[arg(long, default_value_t = 3)]
    pub refine: u32,
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
        ("read errors", step.read_errors.values().sum()),
        ("reads unanswered", step.reads_unanswered),
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

/// The geometric bisection of the refine phase: `good` is a good rate and
/// `bad` a bad one above it, so the limit lies between them; each step tries
/// their geometric mean and keeps the half that still holds the limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refinement {
    pub good: f64,
    pub bad: f64,
    /// Steps still to try.
    pub left: u32,
}

impl Refinement {
    pub fn new(good: f64, bad: f64, steps: u32) -> Refinement {
        Refinement {
            good,
            bad,
            left: steps,
        }
    }

    /// The next rate to try, `None` once every step was tried.
    pub fn next_rate(&self) -> Option<f64> {
        (self.left > 0).then(|| (self.good * self.bad).sqrt())
    }

    /// Narrows the bracket with the verdict on `rate` (from [`next_rate`]).
    ///
    /// [`next_rate`]: Refinement::next_rate
    pub fn record(&mut self, rate: f64, good: bool) {
        if good {
            self.good = rate;
        } else {
            self.bad = rate;
        }
        self.left = self.left.saturating_sub(1);
    }

    /// `bad / good`: how far apart the bracket's ends are.
    pub fn ratio(&self) -> f64 {
        self.bad / self.good
    }
}

/// Where the limit lies after the rates `tried` (each with its verdict over
/// all its attempts: good when one attempt was): the highest good rate, and
/// the lowest bad rate above it (with no good rate, the lowest bad rate).
pub fn bracket(tried: &[(f64, bool)]) -> (Option<f64>, Option<f64>) {
    let good = tried
        .iter()
        .filter(|t| t.1)
        .map(|t| t.0)
        .max_by(f64::total_cmp);
    let bad = tried
        .iter()
        .filter(|t| !t.1 && good.is_none_or(|g| t.0 > g))
        .map(|t| t.0)
        .min_by(f64::total_cmp);
    (good, bad)
}

/// Which phase of the ramp a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The geometric phase: the rate × `--factor` after every good rate.
    Ramp,
    /// The bisection between the geometric phase's last good and first bad
    /// rate.
    Refine,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Ramp => "ramp",
            Phase::Refine => "refine",
        }
    }
}

/// Where the limit lies: between a good rate and a bad one above it.
#[derive(Debug, Clone, Serialize)]
pub struct Bracket {
    /// The highest good rate, messages a second per room.
    pub good_rate_per_room: f64,
    /// The lowest bad rate above it.
    pub bad_rate_per_room: f64,
    /// The deliveries a second the good rate asks for.
    pub good_offered_deliveries_per_sec: f64,
    /// The deliveries a second the bad rate asks for.
    pub bad_offered_deliveries_per_sec: f64,
    /// `bad / good`: the answer's precision.
    pub ratio: f64,
}

/// One row of the ramp.
#[derive(Debug, Serialize)]
pub struct RampStep {
    #[serde(flatten)]
    pub report: StepReport,
    pub phase: Phase,
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
    /// A read after every this many messages received, per member
    /// (`--read-every`; 0: none).
    pub read_every: u64,
    pub warmup_secs: f64,
    pub step_secs: f64,
    pub factor: f64,
    pub p99_bound_ms: f64,
    pub retries: u32,
    /// Refinement steps asked for (`--refine`).
    pub refine: u32,
    pub setup: SetupReport,
    pub steps: Vec<RampStep>,
    /// Step number of the best good step: the one at the highest good rate.
    pub best_step: Option<u64>,
    pub best_rate_per_room: Option<f64>,
    /// Deliveries a second of the best good step: the answer.
    pub best_deliveries_per_sec: Option<f64>,
    pub best_p99_us: Option<u64>,
    /// Whether the bench was near its own limit in the best good step or a
    /// step at the lowest bad rate above it.
    pub bench_limited: bool,
    /// The highest extrapolated bench ceiling over the steps.
    pub bench_ceiling_deliveries_per_sec: Option<f64>,
    /// Why the geometric phase stopped.
    pub stop_reason: String,
    /// What the refine phase did, or why there was nothing to refine.
    pub refinement: String,
    /// Where the limit lies: the highest good rate and the lowest bad rate
    /// tried above it; `None` without a good rate or without a bad rate
    /// above it.
    pub bracket: Option<Bracket>,
    /// When a bad rate bounds the answer (the lowest bad rate above the
    /// highest good one): whether the server or the bench was near a full
    /// core ([`LOADED`]) in its last attempt. `false` means that rate failed
    /// on stalls from elsewhere and the answer is only a lower bound.
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
                "{} rooms x {} members ({} sending), {} B text, {}; steps x{} then {} refining, \
                 of {:.1} s + {:.1} s warm-up",
                self.rooms,
                self.members,
                self.senders_per_room,
                self.text_bytes,
                read_every(self.read_every),
                self.factor,
                self.refine,
                self.step_secs,
                self.warmup_secs
            ),
        );
        setup_rows(&self.setup, &mut t);
        t.line(&format!(
            "\n  {:>4} {:<6} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>6} {:>6} {:>7} {:>7}  verdict\n",
            "step",
            "phase",
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
                "  {:>4} {:<6} {:>9.2} {:>10.0} {:>10.0} {:>9} {:>9} {:>9} {:>6} {:>6} {:>7} {:>7}  {}\n",
                r.step,
                s.phase.name(),
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
        if self.read_every > 0 {
            t.line(&format!(
                "  {:>4} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9}  read errors\n",
                "step", "reads", "answered", "unanswered", "read p50", "read p99", "p99.9"
            ));
            for s in &self.steps {
                let r = &s.report;
                t.line(&format!(
                    "  {:>4} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9}  {}\n",
                    r.step,
                    r.reads_sent,
                    r.read_answers,
                    r.reads_unanswered,
                    micros(r.read_latency_us.p50),
                    micros(r.read_latency_us.p99),
                    micros(r.read_latency_us.p999),
                    crate::error_counts(&r.read_errors),
                ));
            }
            t.line("\n");
        }
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
        match &self.bracket {
            Some(b) => t.row(
                "limit",
                format!(
                    "between {:.0} and {:.0} deliveries/s offered (x{:.3}; {:.2} to {:.2} msg/s per room)",
                    b.good_offered_deliveries_per_sec,
                    b.bad_offered_deliveries_per_sec,
                    b.ratio,
                    b.good_rate_per_room,
                    b.bad_rate_per_room
                ),
            ),
            None if self.best_step.is_none() => {
                t.row("limit", "not bracketed: no good rate".into())
            }
            None => t.row(
                "limit",
                "not bracketed: no bad rate above the highest good one (the limit is higher)"
                    .into(),
            ),
        }
        t.row("refinement", self.refinement.clone());
        if let Some(c) = self.bench_ceiling_deliveries_per_sec {
            t.row("bench ceiling (extrap.)", format!("~{c:.0} deliveries/s"));
        }
        t.row("stopped", self.stop_reason.clone());
        if self.stopped_loaded == Some(false) {
            t.row(
                "warning",
                "neither the server nor the bench was near a full core in the last attempt at \
                 the lowest bad rate: it failed on stalls from elsewhere, so the answer is a \
                 lower bound"
                    .into(),
            );
        }
        t.finish()
    }
}

fn percent(f: Option<f64>) -> String {
    f.map_or_else(|| "-".into(), |f| format!("{:.0}%", f * 100.0))
}

/// How a rate came out over its attempts.
enum Verdict {
    Good,
    /// Not good in any attempt; the last attempt's fault.
    Bad(String),
    NoConnection,
}

/// Runs the steps of a ramp and keeps their rows.
struct Stepper<'a> {
    fleet: &'a mut Fleet,
    window: Duration,
    retries: u32,
    bound_us: u64,
    steps: Vec<RampStep>,
    /// Every rate measured, with its verdict over all its attempts.
    tried: Vec<(f64, bool)>,
}

impl Stepper<'_> {
    /// Measures `rate` until an attempt is good or `retries + 1` were not.
    async fn measure(&mut self, rate: f64, phase: Phase) -> Verdict {
        let mut attempt = 1;
        loop {
            if self.fleet.alive() == 0 {
                return Verdict::NoConnection;
            }
            let report = self.fleet.run_step(rate, self.window).await;
            let fault = fault(&report, self.bound_us);
            let bench_saturated = report
                .bench_cpu_fraction
                .is_some_and(|f| f >= BENCH_SATURATED);
            let why = fault.clone();
            self.steps.push(RampStep {
                phase,
                good: fault.is_none(),
                fault,
                attempt,
                bench_saturated,
                report,
            });
            match why {
                None => {
                    self.tried.push((rate, true));
                    return Verdict::Good;
                }
                Some(why) if attempt > self.retries => {
                    self.tried.push((rate, false));
                    return Verdict::Bad(why);
                }
                Some(_) => attempt += 1,
            }
        }
    }
}

/// Runs the ramp; `Ok(false)` when not even the first step was good or a
/// connection failed to join.
pub async fn run(args: RampArgs) -> anyhow::Result<bool> {
    ensure!(args.start_rate > 0.0, "--start-rate must be positive");
    ensure!(args.factor > 1.0, "--factor must be above 1");
    ensure!(args.step_secs > 0.0, "--step-secs must be positive");
    let load = &args.load;
    load.common.note_shared_sources(load.connections());
    let mut fleet = Fleet::open(load, "ramp").await?;
    let mut stepper = Stepper {
        fleet: &mut fleet,
        window: Duration::from_secs_f64(args.step_secs),
        retries: args.retries,
        bound_us: (args.p99_bound_ms * 1000.0) as u64,
        steps: Vec::new(),
        tried: Vec::new(),
    };

    // The geometric phase.
    let mut stop_reason = "reached --max-steps or --max-rate".to_string();
    let mut last_good = None;
    let mut first_bad = None;
    let mut no_connection = false;
    for rate in rates(args.start_rate, args.factor, args.max_steps, args.max_rate) {
        match stepper.measure(rate, Phase::Ramp).await {
            Verdict::Good => last_good = Some(rate),
            Verdict::Bad(why) => {
                stop_reason = format!(
                    "{rate:.2} msg/s per room not good in {} attempts; last: {why}",
                    args.retries + 1
                );
                first_bad = Some(rate);
                break;
            }
            Verdict::NoConnection => {
                stop_reason = "no connection left".into();
                no_connection = true;
                break;
            }
        }
    }

    // The refine phase.
    let refinement = match (last_good, first_bad) {
        (Some(_), Some(_)) if args.refine == 0 => "none (--refine 0)".to_string(),
        (Some(good), Some(bad)) => {
            let mut r = Refinement::new(good, bad, args.refine);
            let mut done = 0;
            let mut cut = None;
            while let Some(rate) = r.next_rate() {
                match stepper.measure(rate, Phase::Refine).await {
                    Verdict::Good => r.record(rate, true),
                    Verdict::Bad(_) => r.record(rate, false),
                    Verdict::NoConnection => {
                        cut = Some("no connection left");
                        break;
                    }
                }
                done += 1;
            }
            format!(
                "{done} of {} steps{}: bracket x{:.3} -> x{:.3}",
                args.refine,
                cut.map_or(String::new(), |c| format!(", then {c}")),
                bad / good,
                r.ratio()
            )
        }
        (None, _) if first_bad.is_some() => {
            "none: the first step was not good, so there is no good rate to refine from".into()
        }
        (None, _) if no_connection => "none: no connection left".into(),
        (None, _) => "none: no good step".into(),
        (Some(_), None) if no_connection => "none: no connection left".into(),
        (Some(_), None) => "none: every rate was good up to --max-steps or --max-rate, so \
                            there is no bad rate to refine against (the limit is higher)"
            .into(),
    };
    let Stepper { steps, tried, .. } = stepper;
    let setup = fleet.setup.clone();
    fleet.close();

    let (good, bad) = bracket(&tried);
    // The good step at the highest good rate (each rate has at most one).
    let best = good.and_then(|g| steps.iter().find(|s| s.good && s.report.rate_per_room == g));
    let best_index = best.map(|b| b.report.step);
    let at_bad = |s: &&RampStep| bad.is_some_and(|b| s.report.rate_per_room == b);
    let bench_limited = steps.iter().any(|s| {
        s.bench_saturated && (best_index == Some(s.report.step) || (best.is_some() && at_bad(&s)))
    });
    let stopped_loaded = steps.iter().rfind(at_bad).map(|s| loaded(&s.report));
    let bracket = good.zip(bad).map(|(g, b)| Bracket {
        good_rate_per_room: g,
        bad_rate_per_room: b,
        good_offered_deliveries_per_sec: load.deliveries_per_sec(g),
        bad_offered_deliveries_per_sec: load.deliveries_per_sec(b),
        ratio: b / g,
    });
    let report = RampReport {
        scenario: "ramp",
        url: load.common.url.clone(),
        rooms: load.rooms,
        members: load.members,
        senders_per_room: load.senders,
        connections: load.connections(),
        text_bytes: load.text_bytes,
        read_every: load.read_every,
        warmup_secs: load.warmup,
        step_secs: args.step_secs,
        factor: args.factor,
        p99_bound_ms: args.p99_bound_ms,
        retries: args.retries,
        refine: args.refine,
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
        refinement,
        bracket,
        stopped_loaded,
    };
    emit(&load.common, &report.table(), &report)?;
    if let Some(path) = load.common.json_path() {
        let label = path
            .file_stem()
            .map_or("ramp".into(), |s| s.to_string_lossy().into_owned());
        let series = [p99_series(label, &serde_json::to_value(&report)?)];
        let chart = plot::svg_beside(path);
        write_chart(&chart, &series)?;
        eprintln!("chart: {}", chart.display());
    }
    Ok(report.setup.failed == 0 && report.best_step.is_some())
}

/// `chat-bench plot ramp`: the p99 of ramps against their offered rate, on
/// one chart.
#[derive(Debug, Clone, clap::Args)]
pub struct PlotArgs {
    /// Ramp results, each `[LABEL=]PATH`: a report written by `ramp --json
    /// PATH` (or its stdout with `--json`), one series labelled LABEL or
    /// the file's name; or a results file of bench-all.sh or
    /// bench-alternate.sh (JSON lines), one series per ramp in it, labelled
    /// by its server (or build and round), after LABEL when given.
    #[arg(required = true, value_name = "[LABEL=]PATH")]
    pub inputs: Vec<String>,
    /// The SVG file to write.
    #[arg(short, long, value_name = "PATH")]
    pub out: PathBuf,
}

/// Draws the chart of [`PlotArgs`].
pub fn plot(args: PlotArgs) -> anyhow::Result<bool> {
    let mut series = Vec::new();
    for input in &args.inputs {
        let (label, path) = match input.split_once('=') {
            Some((label, path)) if !label.is_empty() => (Some(label), Path::new(path)),
            _ => (None, Path::new(input.as_str())),
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let found = ramps_in(&text, label, path);
        ensure!(
            !found.is_empty(),
            "{}: no ramp report in it",
            path.display()
        );
        series.extend(found);
    }
    write_chart(&args.out, &series)?;
    println!("{}", args.out.display());
    Ok(true)
}

/// The ramp series in a file's `text`: the file is one ramp report, or JSON
/// lines of runs (`{"server" or "build", "round"?, "scenario", "report"}`).
fn ramps_in(text: &str, label: Option<&str>, path: &Path) -> Vec<Series> {
    let is_ramp = |v: &Value| v["scenario"] == "ramp" && v["steps"].is_array();
    if let Ok(report) = serde_json::from_str::<Value>(text)
        && is_ramp(&report)
    {
        let name = label.map_or_else(
            || {
                path.file_stem()
                    .map_or("ramp".into(), |s| s.to_string_lossy().into_owned())
            },
            str::to_string,
        );
        return vec![p99_series(name, &report)];
    }
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|run| is_ramp(&run["report"]))
        .map(|run| {
            let who = match (run["server"].as_str(), run["build"].as_str()) {
                (Some(server), _) => server.to_string(),
                (None, Some(build)) => match run["round"].as_u64() {
                    Some(round) => format!("{build} #{round}"),
                    None => build.to_string(),
                },
                (None, None) => "ramp".to_string(),
            };
            let name = label.map_or(who.clone(), |l| format!("{l} {who}"));
            p99_series(name, &run["report"])
        })
        .collect()
}

/// A ramp's p99 (ms) against its offered deliveries a second, from its JSON
/// report: one point per rate, the lowest p99 of its attempts (a rate is
/// good when one attempt was), in order of rate.
pub fn p99_series(name: String, report: &Value) -> Series {
    let mut best: Vec<(f64, f64)> = Vec::new();
    for step in report["steps"].as_array().into_iter().flatten() {
        let (Some(x), Some(p99)) = (
            step["offered_deliveries_per_sec"].as_f64(),
            step["latency_us"]["p99"].as_f64(),
        ) else {
            continue;
        };
        let y = p99 / 1000.0;
        match best.iter_mut().find(|p| p.0 == x) {
            Some(p) => p.1 = p.1.min(y),
            None => best.push((x, y)),
        }
    }
    best.sort_by(|a, b| a.0.total_cmp(&b.0));
    Series {
        name,
        points: best,
        axis: Axis::Left,
    }
}

fn write_chart(path: &Path, series: &[Series]) -> anyhow::Result<()> {
    plot::line_chart(
        path,
        &Chart {
            title: "ramp: p99 end-to-end latency against offered load",
            x_label: "offered deliveries/s",
            y_left_label: "p99 latency, ms",
            y_right_label: None,
            series,
            markers: &[],
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::LatencySummary;

    /// The rates a refinement of `steps` steps from `good`..`bad` tries when
    /// they come out as `outcomes` (`true`: good), and the bracket it ends with.
    /// Stops early when the outcomes run out.
    fn refine(good: f64, bad: f64, steps: u32, outcomes: &[bool]) -> (Vec<f64>, Refinement) {
        let mut r = Refinement::new(good, bad, steps);
        let mut tried = Vec::new();
        let mut outcomes = outcomes.iter();
        while let Some(rate) = r.next_rate() {
            let Some(&good) = outcomes.next() else { break };
            tried.push(rate);
            r.record(rate, good);
        }
        (tried, r)
    }

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
    fn a_refused_or_unanswered_read_makes_a_step_bad() {
        let mut read = step(1_000);
        read.reads_sent = 10;
        read.read_answers = 10;
        assert_eq!(fault(&read, 100_000), None);
        assert!(read.clean());
        read.read_errors.insert("overloaded".into(), 1);
        read.reads_unanswered = 2;
        assert_eq!(
            fault(&read, 100_000).as_deref(),
            Some("read errors 1, reads unanswered 2")
        );
        assert!(!read.clean());
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

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * a.abs().max(b.abs())
    }

    #[test]
    fn refinement_bisects_the_bracket_geometrically() {
        // G = 2, B = 3 (factor 1.5): in units of log_1.5(rate / 2) the
        // bracket is 0..1, and the steps try 1/2 (good), 3/4 (bad), 5/8
        // (good).
        let (tried, r) = refine(2.0, 3.0, 3, &[true, false, true]);
        let at = |x: f64| 2.0 * 1.5f64.powf(x);
        assert_eq!(tried.len(), 3);
        for (got, want) in tried.iter().zip([at(0.5), at(0.75), at(0.625)]) {
            assert!(close(*got, want), "{got} vs {want}");
        }
        assert!(close(r.good, at(0.625)), "{r:?}");
        assert!(close(r.bad, at(0.75)), "{r:?}");
        assert_eq!(r.left, 0);
        assert_eq!(r.next_rate(), None);
        // Factor 1.5 and three refinements: ×1.5^(1/8) ≈ ×1.052.
        assert!(close(r.ratio(), 1.5f64.powf(0.125)), "{}", r.ratio());
        assert!((r.ratio() - 1.052).abs() < 0.001);
    }

    #[test]
    fn every_outcome_sequence_narrows_to_the_same_ratio_inside_the_bracket() {
        for n in 0..=4u32 {
            for bits in 0..(1u32 << n) {
                let outcomes: Vec<bool> = (0..n).map(|i| bits & (1 << i) != 0).collect();
                let (tried, r) = refine(10.0, 15.0, n, &outcomes);
                assert_eq!(tried.len(), n as usize);
                assert!(close(r.ratio(), 1.5f64.powf(1.0 / f64::from(1u32 << n))));
                assert!(10.0 <= r.good && r.good < r.bad && r.bad <= 15.0, "{r:?}");
                // Every rate tried lies strictly inside the bracket of its time
                // and outside the final one.
                for t in &tried {
                    assert!(10.0 < *t && *t < 15.0);
                    assert!(*t <= r.good || *t >= r.bad);
                }
            }
        }
    }

    #[test]
    fn all_good_or_all_bad_refinements_move_one_end() {
        let (tried, r) = refine(1.0, 4.0, 2, &[true, true]);
        assert!(close(tried[0], 2.0) && close(tried[1], 8f64.sqrt()));
        assert!(close(r.good, 8f64.sqrt()) && r.bad == 4.0);
        let (tried, r) = refine(1.0, 4.0, 2, &[false, false]);
        assert!(close(tried[0], 2.0) && close(tried[1], 2f64.sqrt()));
        assert!(r.good == 1.0 && close(r.bad, 2f64.sqrt()));
    }

    #[test]
    fn no_refinement_keeps_the_bracket() {
        let (tried, r) = refine(2.0, 3.0, 0, &[true]);
        assert!(tried.is_empty());
        assert_eq!((r.good, r.bad), (2.0, 3.0));
        // Outcomes that run out (a ramp cut short) stop the refinement.
        let (tried, r) = refine(2.0, 3.0, 3, &[false]);
        assert_eq!(tried.len(), 1);
        assert_eq!(r.left, 2);
        assert!(close(r.bad, 6f64.sqrt()));
    }

    #[test]
    fn the_bracket_is_the_highest_good_and_the_lowest_bad_above_it() {
        // The geometric phase 2, 3, 4.5 good and 6.75 bad, then the
        // refinement: √(4.5 × 6.75) ≈ 5.51 bad, √(4.5 × 5.51) ≈ 4.98 good.
        let (tried_refine, r) = refine(4.5, 6.75, 2, &[false, true]);
        let mut tried = vec![(2.0, true), (3.0, true), (4.5, true), (6.75, false)];
        tried.extend(tried_refine.into_iter().zip([false, true]));
        let (good, bad) = bracket(&tried);
        assert_eq!(good, Some(r.good));
        assert_eq!(bad, Some(r.bad));
        assert_eq!(bracket(&[(2.0, false)]), (None, Some(2.0)));
        assert_eq!(bracket(&[(2.0, true), (3.0, true)]), (Some(3.0), None));
        assert_eq!(bracket(&[]), (None, None));
    }

    #[test]
    fn a_ramp_plots_the_best_p99_of_each_rate_in_order() {
        let report = serde_json::json!({"scenario": "ramp", "steps": [
            {"offered_deliveries_per_sec": 2000.0, "latency_us": {"p99": 3000}},
            {"offered_deliveries_per_sec": 1000.0, "latency_us": {"p99": 1000}},
            {"offered_deliveries_per_sec": 2000.0, "latency_us": {"p99": 2500}},
            {"offered_deliveries_per_sec": 3000.0}
        ]});
        let s = p99_series("ours".into(), &report);
        assert_eq!(s.points, vec![(1000.0, 1.0), (2000.0, 2.5)]);
    }

    #[test]
    fn ramps_are_found_in_reports_and_in_results_files() {
        let report = r#"{"scenario":"ramp","steps":[]}"#;
        let one = ramps_in(report, None, Path::new("x/ours.json"));
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].name, "ours");
        assert_eq!(
            ramps_in(report, Some("after"), Path::new("a.json"))[0].name,
            "after"
        );
        let results = format!(
            "{{\"server\":\"ours\",\"scenario\":\"ramp\",\"report\":{report}}}\n\
             {{\"server\":\"ours\",\"scenario\":\"idle\",\"report\":{{}}}}\n\
             {{\"server\":\"node-ws\",\"scenario\":\"ramp\",\"report\":null}}\n\
             {{\"build\":\"before\",\"round\":2,\"scenario\":\"ramp\",\"report\":{report}}}\n"
        );
        let names: Vec<String> = ramps_in(&results, Some("run"), Path::new("r.jsonl"))
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["run ours", "run before #2"]);
        assert!(ramps_in("not json", None, Path::new("r")).is_empty());
    }

    #[test]
    fn steps_name_their_phase_in_the_json() {
        assert_eq!(serde_json::to_value(Phase::Ramp).unwrap(), "ramp");
        assert_eq!(serde_json::to_value(Phase::Refine).unwrap(), "refine");
    }
}
