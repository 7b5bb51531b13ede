//! `chat-bench`: load scenarios against a running `chat-server`, the engine
//! of the `chat-bench` binary (`src/main.rs`) and of the scripts in
//! `crates/bench/scripts`.
//!
//! It is a crate of its own, apart from `chat-client`, because it is a tool
//! for measuring the server, not something an application links: its
//! dependencies (clap, hdrhistogram, ipnet, libc) stay out of every client
//! library user's build, and the client library's API does not carry it.
//! It needs only the wire types of [`chat_protocol`]: it keeps its own lean
//! connection handling because a load generator must not pay for the
//! conveniences (per-request futures, channels, owned frames) the client
//! library provides.
//!
//! Each scenario opens real WebSocket connections, one tokio task per
//! connection, and measures what the server does under that load:
//!
//! - [`idle`]: many mostly-silent connections; connect+join rate and the
//!   server's memory per connection.
//! - [`durable`]: pipelined sends with unique client ids; acked messages per
//!   second, ack latency percentiles, and a check that each room's acked
//!   `seq`s are exactly `1..=total`.
//! - [`fanout`]: rooms × members at a fixed send rate; deliveries per second,
//!   end-to-end latency, lost / duplicated / out-of-order deliveries.
//! - [`hostile`]: the fanout load with and without a flood of hostile
//!   clients, while idle connections are held; honest p99 both ways.
//! - [`ramp`]: the fanout load at rising rates until p99 exceeds a bound or
//!   anything is lost; the highest good rate.
//! - [`rolling`]: a cluster of its own (three nodes on PostgreSQL and
//!   Redis behind nginx, [`cluster`]) restarted one node at a time under
//!   load from `chat-client` clients; lost / duplicated / reordered
//!   deliveries, time without connection, latency before vs during.
//! - [`soak`]: many connections for a long time under steady traffic and
//!   churn (moves, reconnects resuming with `since`); the drift of the
//!   server's memory, open files and tasks, and nothing lost.
//!
//! [`plot`] draws the charts (`ramp`'s p99 against the offered rate,
//! `soak`'s RSS and p99 over time, `rolling`'s latency and connected
//! clients over time) as SVG.
//!
//! `fanout` and `ramp` can mix edits and reactions into the sends
//! (`--changes-percent`, see [`mix`]) and have every member send read
//! markers as it receives (`--read-every`, see [`reads`]).
//!
//! The generator is built not to be the bottleneck: tasks share nothing on
//! the hot path but relaxed atomic counters (for the once-a-second progress
//! line); each task owns its histogram and result, and the results are merged
//! once the task ends. Hot frames (acks, broadcasts, presence) are decoded
//! through a borrowed view ([`frame::Peek`]) that allocates nothing; rare
//! frames are decoded with the shared [`chat_protocol::ServerFrame`].
//! `fanout` and `ramp`, which hold thousands of busy connections, go one
//! step further and read their sockets with the minimal client in
//! [`rawws`] (see [`fleet`] for how a delivery is accounted for).
//!
//! `idle`, `fanout` and `ramp` also speak Socket.IO (`--protocol`, see
//! [`sio`]): Engine.IO v4 directly over WebSocket on the same minimal
//! client, with this server's events or the seed article's.
//!
//! Every scenario can bind its connections to the addresses of a range in
//! turn (`--source-ips`, see [`source`]), so that a server's per-address
//! limits see many clients rather than one 127.0.0.1.

#[cfg(target_os = "linux")]
pub mod cluster;
pub mod conn;
pub mod durable;
pub mod fanout;
pub mod fleet;
pub mod frame;
pub mod hostile;
pub mod idle;
pub mod mix;
pub mod pacer;
pub mod plot;
pub mod procstat;
pub mod progress;
pub mod ramp;
pub mod rawws;
pub mod reads;
#[cfg(target_os = "linux")]
pub mod rolling;
pub mod schedule;
pub mod seqcheck;
pub mod seqset;
pub mod sio;
pub mod soak;
pub mod source;
pub mod stages;
pub mod stamp;
pub mod stats;
pub mod summary;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

/// Options every scenario takes.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// WebSocket URL of the server's native endpoint. Several,
    /// comma-separated (the nodes of a cluster): connections are dealt over
    /// them in turn, so every room has members on every node.
    #[arg(long, default_value = "ws://127.0.0.1:3000/ws")]
    pub url: String,
    /// PID of the server process, to report its RSS and CPU time
    /// (read from /proc/PID/status and /proc/PID/stat; same host only).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Also give the JSON summary: alone, as one line on stdout (the table
    /// then goes to stderr, so stdout stays machine-readable); with a PATH,
    /// written to that file (the table stays on stdout), and for `ramp`
    /// and `soak` their chart beside it (`PATH` with the extension `.svg`).
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    pub json: Option<Option<PathBuf>>,
    /// Prefix of the room names the scenario uses (`PREFIX-0`, `PREFIX-1`, ...).
    #[arg(long, default_value = "bench")]
    pub room_prefix: String,
    /// Wire protocol (`idle`, `fanout`, `ramp`). With the Socket.IO ones,
    /// `--url` is the server's base URL (`ws://127.0.0.1:3000`; a `/ws`
    /// path is replaced by `/socket.io/`), spoken to as Engine.IO v4 over
    /// WebSocket; see `chat_bench::sio`.
    #[arg(long, value_enum, default_value_t = sio::Protocol::Native)]
    pub protocol: sio::Protocol,
    /// Bind every connection the scenario opens to the next address of this
    /// range (e.g. `127.1.0.0/16`), in turn, so that a server's per-address
    /// limits see many clients instead of one. Any 127.x.y.z works on Linux
    /// without setup [default: the kernel chooses the source address].
    #[arg(long, value_name = "CIDR")]
    pub source_ips: Option<source::SourceIps>,
}

impl CommonArgs {
    /// The URL for the `index`-th connection (see `--url`).
    pub fn url_at(&self, index: usize) -> &str {
        let urls: Vec<&str> = self.url.split(',').map(str::trim).collect();
        urls[index % urls.len()]
    }

    /// The source address for the next connection (`--source-ips`), or
    /// `None` to let the kernel choose.
    pub fn source_ip(&self) -> Option<std::net::IpAddr> {
        self.source_ips.as_ref().map(source::SourceIps::next_ip)
    }

    /// Says on stderr when `connections` are more than the addresses of
    /// `--source-ips`, which then each serve several connections.
    pub fn note_shared_sources(&self, connections: u64) {
        if let Some(sources) = &self.source_ips
            && sources.range().size() < u128::from(connections)
        {
            let range = sources.range();
            eprintln!(
                "note: {connections} connections share the {} addresses of --source-ips {range} \
                 (dealt in turn, up to {} each)",
                range.size(),
                u128::from(connections).div_ceil(range.size())
            );
        }
    }

    /// The name of room `index`.
    pub fn room(&self, index: usize) -> String {
        format!("{}-{index}", self.room_prefix)
    }
}

/// A scenario's human report: `key  value` rows under one another, and
/// free lines between them (the ramp's step table).
pub struct Table {
    out: String,
    key_width: usize,
}

impl Table {
    /// Keys are padded to `key_width` characters so values line up.
    pub fn new(key_width: usize) -> Table {
        Table {
            out: String::new(),
            key_width,
        }
    }

    pub fn row(&mut self, key: &str, value: String) {
        let width = self.key_width;
        self.out.push_str(&format!("  {key:<width$} {value}\n"));
    }

    pub fn line(&mut self, text: &str) {
        self.out.push_str(text);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Error codes and how often each came back, as `code n, code n`, or `0`.
pub fn error_counts<K: std::fmt::Display>(errors: &std::collections::BTreeMap<K, u64>) -> String {
    if errors.is_empty() {
        return "0".into();
    }
    errors
        .iter()
        .map(|(code, n)| format!("{code} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints the human table, and the JSON summary when asked (`--json`).
///
/// With `--json` alone the table goes to stderr so a script can take stdout
/// as exactly one JSON document; with `--json PATH` the summary goes to that
/// file, pretty-printed, and the table to stdout.
pub fn emit<R: Serialize>(common: &CommonArgs, table: &str, report: &R) -> anyhow::Result<()> {
    match &common.json {
        None => print!("{table}"),
        Some(None) => {
            eprint!("{table}");
            let line = serde_json::to_string(report)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}")?;
            out.flush()?;
        }
        Some(Some(path)) => {
            print!("{table}");
            let text = serde_json::to_string_pretty(report)?;
            std::fs::write(path, text + "\n")
                .with_context(|| format!("write {}", path.display()))?;
        }
    }
    Ok(())
}

impl CommonArgs {
    /// The file of `--json PATH`, if one was given.
    pub fn json_path(&self) -> Option<&Path> {
        self.json.as_ref()?.as_deref()
    }
}
