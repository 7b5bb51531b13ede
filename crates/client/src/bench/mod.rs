//! `chat-bench`: load scenarios against a running `chat-server`.
//!
//! Each scenario opens real WebSocket connections, one tokio task per
//! connection, and measures what the server does under that load:
//!
//! - [`idle`]: many mostly-silent connections; connect+join rate and the
//!   server's memory per connection.
//! - [`durable`]: pipelined sends with unique client ids; acked messages per
//!   second, ack latency percentiles, and a check that each room's acked
//!   `seq`s are exactly `1..=total`.
//!
//! The generator is built not to be the bottleneck: tasks share nothing on
//! the hot path but relaxed atomic counters (for the once-a-second progress
//! line); each task owns its histogram and result, and the results are merged
//! once the task ends. Hot frames (acks, broadcasts, presence) are decoded
//! through a borrowed view ([`frame::Peek`]) that allocates nothing; rare
//! frames are decoded with the shared [`chat_protocol::ServerFrame`].

pub mod conn;
pub mod durable;
pub mod frame;
pub mod idle;
pub mod procstat;
pub mod progress;
pub mod seqcheck;
pub mod stats;

use std::io::Write;

use serde::Serialize;

/// Options every scenario takes.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// WebSocket URL of the server's native endpoint.
    #[arg(long, default_value = "ws://127.0.0.1:3000/ws")]
    pub url: String,
    /// PID of the server process, to report its RSS and CPU time
    /// (read from /proc/PID/status and /proc/PID/stat; same host only).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Also print a one-line JSON summary on stdout (the table then goes to
    /// stderr, so stdout stays machine-readable).
    #[arg(long)]
    pub json: bool,
    /// Prefix of the room names the scenario uses (`PREFIX-0`, `PREFIX-1`, ...).
    #[arg(long, default_value = "bench")]
    pub room_prefix: String,
}

impl CommonArgs {
    /// The name of room `index`.
    pub fn room(&self, index: usize) -> String {
        format!("{}-{index}", self.room_prefix)
    }
}

/// Prints the human table, and the JSON line when asked.
///
/// With `--json` the table goes to stderr so a script can take stdout as
/// exactly one JSON document.
pub fn emit<R: Serialize>(common: &CommonArgs, table: &str, report: &R) -> anyhow::Result<()> {
    if common.json {
        eprint!("{table}");
        let line = serde_json::to_string(report)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    } else {
        print!("{table}");
    }
    Ok(())
}
