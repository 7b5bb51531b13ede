//! `chat-bench`: load generator for `chat-server`.
//!
//! ```text
//! chat-bench idle    --url ws://127.0.0.1:3000/ws --connections 10000 --rooms 100 --hold 10
//! chat-bench durable --url ws://127.0.0.1:3000/ws --rooms 100 --senders-per-room 1 --messages 2000
//! chat-bench fanout  --url ws://127.0.0.1:3000/ws --rooms 100 --members 50 --rate 10 --duration 10
//! chat-bench hostile --url ws://127.0.0.1:3000/ws --idle 10000 --rooms 20 --members 10 --rate 10 --hostile 4 \
//!                    --source-ips 127.1.0.0/16 --hostile-source-ips 127.2.0.0/24
//! chat-bench ramp    --url ws://127.0.0.1:3000/ws --rooms 100 --members 50 --start-rate 2 --p99-bound-ms 100
//! chat-bench idle    --url ws://127.0.0.1:3000 --protocol socketio --connections 10000 --rooms 100
//! chat-bench fanout  --url ws://127.0.0.1:3101 --protocol socketio-seed --rooms 100 --members 50
//! chat-bench ramp    --url ws://127.0.0.1:3000/ws --json ours.json   # also writes ours.svg
//! chat-bench rolling --database-url postgres://127.0.0.1/chat --clients 1000 --rooms 100 --json rolling.json
//! chat-bench plot ramp ours=ours.json peer=peer.json -o ramp.svg
//! chat-bench soak    --url ws://127.0.0.1:3000/ws --server-pid PID --connections 10000 --rooms 100 \
//!                    --rate 2 --churn-per-sec 20 --reconnects-per-sec 10 --duration 1h --json soak.json
//! ```
//!
//! `--json PATH` writes the JSON summary to PATH (the table stays on
//! stdout); `ramp`, `soak` and `rolling` also draw their chart beside it
//! (`PATH` with the extension `.svg`): a ramp's p99 against the offered
//! rate, a soak's server RSS and p99 over time, a rolling restart's latency
//! and connected clients over time.
//!
//! `--protocol socketio` speaks Socket.IO with this server's events (acks,
//! `seq`); `socketio-seed` the seed article's (the node-socketio and
//! rust-socketioxide peers: no acks, no `seq`); both for `idle`, `fanout`
//! and `ramp`, with `--url` the server's base URL.
//!
//! For `durable`, `fanout`, `ramp` and `soak`, start the server with `--send-rate 1000000 --send-burst 1000000`
//! so its per-connection rate limit does not cap the measurement. Pass
//! `--server-pid` to get the server's RSS and CPU time in the report. Run the
//! bench as its own process (and ideally on its own CPU, e.g. `taskset -c 1`)
//! so its file descriptors and CPU are not shared with the server's.
//!
//! `--source-ips 127.1.0.0/16` (any scenario) binds each connection to the
//! next address of the range, so a server's per-address limits see each as
//! its own client; `hostile --hostile-source-ips 127.2.0.0/24` gives each
//! hostile client an address of its own. Linux routes all of 127.0.0.0/8 to
//! `lo`, so these need no setup.
//!
//! The scenarios live in the `chat_bench` library (`src/lib.rs`); this crate
//! stands apart from `chat-client` so that the client library's users do not
//! build the bench's dependencies.
//!
//! Exit status: 0 when every check passed, 1 when the run completed with
//! failures (errors, dropped connections, seq violations), 2 on a usage or
//! setup error.

use std::process::ExitCode;

use chat_bench::{durable, fanout, hostile, idle, ramp, soak, summary};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "chat-bench", version, about = "Load generator for chat-server")]
struct Cli {
    /// Worker threads of the bench's runtime [default: the CPUs this process
    /// may run on]. With one (e.g. under `taskset -c 1`) the bench runs on a
    /// single-threaded runtime, which spends nothing on cross-thread wakeups.
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Open many connections, join rooms, hold them; connect+join rate and
    /// server memory per connection.
    Idle(idle::IdleArgs),
    /// Pipelined durable sends; acked msg/s, ack latency, seq checks.
    Durable(durable::DurableArgs),
    /// Rooms x members at a fixed send rate; deliveries/s, end-to-end
    /// latency, lost / duplicated / out-of-order deliveries.
    Fanout(fanout::FanoutArgs),
    /// The fanout load at rising rates until p99 exceeds a bound or anything
    /// is lost; the highest good rate.
    Ramp(ramp::RampArgs),
    /// The fanout load without, then with, hostile clients flooding the
    /// server (malformed frames, send floods, oversized frames, protocol
    /// violations, reconnect storms) while idle connections are held. The
    /// hostile clients run on their own thread at SCHED_IDLE, on the CPU
    /// the honest ones leave.
    Hostile(hostile::HostileArgs),
    /// Runs a 3-node cluster (PostgreSQL, Redis, nginx) under load and
    /// restarts each node in turn, twice; lost / duplicated / reordered
    /// deliveries, time without connection, latency before vs during.
    #[cfg(target_os = "linux")]
    Rolling(chat_bench::rolling::RollingArgs),
    /// Many connections for a long time under steady traffic and churn
    /// (moves between rooms, reconnects resuming with `since`): the
    /// server's RSS, open files and tasks over time and their drift,
    /// latency early and late, and nothing lost, repeated or reordered.
    Soak(soak::SoakArgs),
    /// Markdown tables from the results file of crates/bench/scripts/bench-all.sh.
    Summarize(summary::SummarizeArgs),
    /// SVG charts from results files.
    #[command(subcommand)]
    Plot(PlotKind),
}

#[derive(Debug, Subcommand)]
enum PlotKind {
    /// The p99 of one or more ramps against their offered rate, one series
    /// each (ours and the peers' on one chart).
    Ramp(ramp::PlotArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = cli.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.enable_all();
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chat-bench: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.scenario {
            Scenario::Idle(args) => idle::run(args).await,
            Scenario::Durable(args) => durable::run(args).await,
            Scenario::Fanout(args) => fanout::run(args).await,
            Scenario::Ramp(args) => ramp::run(args).await,
            Scenario::Hostile(args) => hostile::run(args).await,
            #[cfg(target_os = "linux")]
            Scenario::Rolling(args) => chat_bench::rolling::run(args).await,
            Scenario::Soak(args) => soak::run(args).await,
            Scenario::Summarize(args) => summary::run(args),
            Scenario::Plot(PlotKind::Ramp(args)) => ramp::plot(args),
        }
    });
    // Don't wait for connection tasks still closing: the report is out.
    runtime.shutdown_background();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("chat-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}
