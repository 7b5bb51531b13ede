//! `fanout`: R rooms × M members, S senders per room at a fixed rate; every
//! member receives every message of its room.
//!
//! One [`Fleet`] step: all connections join, the senders warm up, then
//! `--duration` seconds are measured: deliveries per second, end-to-end
//! latency (scheduled send to receipt, so a stalled sender cannot hide its
//! stall), acks, and lost / duplicated / out-of-order deliveries checked per
//! member against the `seq`s the room's senders were acked. With
//! `--server-pid`, the server's RSS and CPU time over the window. With
//! `--read-every N`, every member also sends a `read` after every N
//! messages it received, pipelined: reads sent and answered, read latency
//! (send to answer) and read errors (see [`crate::reads`]).

use std::time::Duration;

use anyhow::ensure;
use serde::Serialize;

use crate::fleet::{Fleet, LoadArgs, SetupReport, StepReport};
use crate::procstat::ProcSample;
use crate::{Table, emit};

#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Messages a second per room (split evenly between its senders).
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
}

/// The JSON summary of a fanout run.
#[derive(Debug, Serialize)]
pub struct FanoutReport {
    pub scenario: &'static str,
    pub url: String,
    pub rooms: u64,
    pub members: u64,
    pub senders_per_room: u64,
    pub connections: u64,
    pub text_bytes: u64,
    /// Percent of the sends that were changes (`--changes-percent`).
    pub changes_percent: u64,
    /// A read after every this many messages received, per member
    /// (`--read-every`; 0: none).
    pub read_every: u64,
    pub warmup_secs: f64,
    pub setup: SetupReport,
    #[serde(flatten)]
    pub result: StepReport,
    /// The bench's own RSS at the end.
    pub bench_rss_kib: Option<u64>,
}

impl FanoutReport {
    /// Every connection joined and every check passed.
    pub fn clean(&self) -> bool {
        self.setup.failed == 0 && self.result.clean()
    }

    pub fn table(&self) -> String {
        let mut t = Table::new(24);
        t.row("scenario", "fanout".into());
        t.row("url", self.url.clone());
        t.row(
            "load",
            format!(
                "{} rooms x {} members ({} sending), {} B text, {} % changes, {}, {:.1} s warm-up",
                self.rooms,
                self.members,
                self.senders_per_room,
                self.text_bytes,
                self.changes_percent,
                read_every(self.read_every),
                self.warmup_secs
            ),
        );
        setup_rows(&self.setup, &mut t);
        self.result.rows(&mut t);
        if let Some(k) = self.bench_rss_kib {
            t.row("bench RSS", format!("{k} KiB"));
        }
        t.finish()
    }
}

/// How often members read, for the `load` row (`--read-every`).
pub fn read_every(n: u64) -> String {
    match n {
        0 => "no reads".into(),
        1 => "a read every message".into(),
        n => format!("a read every {n} messages"),
    }
}

/// Table rows for the connection phase, shared with `ramp`.
pub fn setup_rows(setup: &SetupReport, t: &mut Table) {
    t.row(
        "connections",
        format!(
            "{} joined of {} in {:.2} s ({:.0}/s), failed {}",
            setup.joined, setup.connections, setup.secs, setup.joins_per_sec, setup.failed
        ),
    );
    for (reason, n) in &setup.failures {
        t.row("  failure", format!("{n} x {reason}"));
    }
}

/// Runs the scenario; `Ok(false)` when it completed but a check failed.
pub async fn run(args: FanoutArgs) -> anyhow::Result<bool> {
    ensure!(args.rate > 0.0, "--rate must be positive");
    ensure!(args.duration > 0.0, "--duration must be positive");
    let load = &args.load;
    load.common.note_shared_sources(load.connections());
    let mut fleet = Fleet::open(load, "fanout").await?;
    let result = fleet
        .run_step(args.rate, Duration::from_secs_f64(args.duration))
        .await;
    let setup = fleet.setup.clone();
    let bench_rss_kib = ProcSample::own().ok().map(|s| s.rss_kib);
    // Ends the connections and the progress line before the report.
    fleet.close();
    let report = FanoutReport {
        scenario: "fanout",
        url: load.common.url.clone(),
        rooms: load.rooms,
        members: load.members,
        senders_per_room: load.senders,
        connections: load.connections(),
        text_bytes: load.text_bytes,
        changes_percent: load.changes_percent,
        read_every: load.read_every,
        warmup_secs: load.warmup,
        setup,
        result,
        bench_rss_kib,
    };
    emit(&load.common, &report.table(), &report)?;
    Ok(report.clean())
}
