//! `idle`: many connections that join a room and then only listen.
//!
//! This measures what a mostly-idle chat costs the server: how fast it
//! accepts connect+join, and how much resident memory each open connection
//! holds. Connections are opened with bounded concurrency (a real crowd does
//! not arrive all in the same microsecond, and an unbounded burst would
//! measure the kernel's SYN backlog rather than the server). Every
//! connection keeps reading while it is held, so heartbeat pings get their
//! pongs and presence frames never back up into the server's outboxes: an
//! unread connection would be measured as a slow consumer, not an idle one.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::conn::{self, Buffers};
use crate::procstat::{self, ProcSample, Usage};
use crate::progress::{Counters, Rate, spawn_reporter};
use crate::sio::{self, Protocol};
use crate::stats::{self, LatencySummary};
use crate::{CommonArgs, Table, emit};

/// File descriptors the bench keeps for itself besides its connections
/// (stdio, the runtime's epoll and eventfds, /proc reads).
const FD_RESERVE: u64 = 64;

/// How long a connection may take to close at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Connections to open. Each uses one file descriptor here (and one in
    /// the server), so it must fit under `ulimit -n`.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub connections: u64,
    /// Rooms to spread them over: connection i joins room i % rooms.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub rooms: u64,
    /// Seconds to hold the connections open once all have joined.
    #[arg(long, default_value_t = 10)]
    pub hold: u64,
    /// Connections being opened at the same time.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: u64,
    /// Seconds one connection may take to connect and join.
    #[arg(long, default_value_t = 30)]
    pub join_timeout: u64,
}

/// The JSON summary of an idle run.
#[derive(Debug, Serialize)]
pub struct IdleReport {
    pub scenario: &'static str,
    pub url: String,
    pub protocol: Protocol,
    pub connections: u64,
    pub rooms: u64,
    pub concurrency: u64,
    pub hold_secs: u64,
    /// Connections that connected and joined.
    pub joined: u64,
    pub failed: u64,
    /// Failure reasons with their counts.
    pub failures: BTreeMap<String, u64>,
    /// From the first connect to the last join reply.
    pub ramp_secs: f64,
    /// `joined / ramp_secs`.
    pub joins_per_sec: f64,
    /// Connect + upgrade + welcome + join reply, per connection.
    pub connect_join_latency_us: LatencySummary,
    /// Connections the server closed (or lost) while they were held.
    pub dropped: u64,
    /// Text frames received after joining (presence of later joiners).
    pub frames_received: u64,
    /// Server usage from before the first connect to the end of the hold.
    pub server: Option<Usage>,
    pub server_cpu_ramp_secs: Option<f64>,
    pub server_cpu_hold_secs: Option<f64>,
    /// Server RSS growth divided by the connections held.
    pub server_kib_per_connection: Option<f64>,
    /// The bench's own RSS at the end of the hold.
    pub bench_rss_kib: Option<u64>,
    /// The bench's own CPU time during the ramp: close to the ramp's
    /// duration means the bench, not the server, limited the join rate.
    pub bench_cpu_ramp_secs: Option<f64>,
}

impl IdleReport {
    /// No failed or dropped connection.
    pub fn clean(&self) -> bool {
        self.failed == 0 && self.dropped == 0
    }

    pub fn table(&self) -> String {
        let mut t = Table::new(28);
        t.row("scenario", "idle".into());
        t.row("url", self.url.clone());
        if self.protocol != Protocol::Native {
            t.row("protocol", format!("{:?}", self.protocol));
        }
        t.row(
            "connections",
            format!(
                "{} requested over {} rooms, {} at a time",
                self.connections, self.rooms, self.concurrency
            ),
        );
        t.row(
            "joined",
            format!("{} (failed {})", self.joined, self.failed),
        );
        for (reason, n) in &self.failures {
            t.row("  failure", format!("{n} x {reason}"));
        }
        t.row(
            "ramp",
            format!(
                "{:.2} s, {:.0} connect+join/s",
                self.ramp_secs, self.joins_per_sec
            ),
        );
        t.row("connect+join latency", self.connect_join_latency_us.row());
        t.row(
            "held",
            format!(
                "{} s, dropped {}, frames received {}",
                self.hold_secs, self.dropped, self.frames_received
            ),
        );
        if let Some(s) = &self.server {
            t.row(
                "server RSS",
                format!(
                    "{} -> {} KiB (delta {} KiB)",
                    s.rss_before_kib, s.rss_after_kib, s.rss_delta_kib
                ),
            );
            if let Some(k) = self.server_kib_per_connection {
                t.row("server RSS per connection", format!("{k:.2} KiB"));
            }
            t.row(
                "server CPU",
                format!(
                    "{:.2} s total ({:.2} s ramp, {:.2} s hold)",
                    s.cpu_seconds,
                    self.server_cpu_ramp_secs.unwrap_or(0.0),
                    self.server_cpu_hold_secs.unwrap_or(0.0)
                ),
            );
        }
        if let Some(k) = self.bench_rss_kib {
            t.row("bench RSS", format!("{k} KiB"));
        }
        if let Some(c) = self.bench_cpu_ramp_secs {
            t.row("bench CPU in ramp", format!("{c:.2} s"));
        }
        t.finish()
    }
}

/// What one held connection saw.
#[derive(Debug, Default)]
struct Held {
    frames: u64,
    dropped: bool,
}

/// Runs the scenario; `Ok(false)` when it completed with failures.
pub async fn run(args: IdleArgs) -> anyhow::Result<bool> {
    let common = &args.common;
    if let Some(limit) = conn::open_files_limit()
        && args.connections + FD_RESERVE > limit
    {
        bail!(
            "{} connections need {} file descriptors here but `ulimit -n` is {limit}; \
             use at most {} connections or raise the limit",
            args.connections,
            args.connections + FD_RESERVE,
            limit.saturating_sub(FD_RESERVE)
        );
    }
    common.note_shared_sources(args.connections);
    let join_timeout = Duration::from_secs(args.join_timeout);
    let room_jsons: Vec<Arc<str>> = (0..args.rooms as usize)
        .map(|r| serde_json::to_string(&common.room(r)).map(Arc::from))
        .collect::<Result<_, _>>()?;

    let counters = Arc::new(Counters::default());
    let total = args.connections;
    let reporter = spawn_reporter(counters.clone(), {
        let mut rate = Rate::default();
        move |elapsed, c, dt| {
            let joined = Counters::get(&c.joined);
            format!(
                "[{:>4}s] idle: joined {joined}/{total} ({:.0}/s) failed {} dropped {} frames {}",
                elapsed.as_secs(),
                rate.per_second(joined, dt),
                Counters::get(&c.failed),
                Counters::get(&c.dropped),
                Counters::get(&c.frames),
            )
        }
    });

    let server_start = procstat::sample(common.server_pid);
    let bench_start = ProcSample::own().ok();
    let stop = CancellationToken::new();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let slots = Arc::new(Semaphore::new(args.concurrency as usize));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    let sio_url = sio::endpoint(&common.url);
    for i in 0..total {
        // Acquired here, released by the task once it has joined: at most
        // `concurrency` connections are being set up at any moment.
        let permit = slots.clone().acquire_owned().await?;
        let name = format!("idle-{i}");
        let holding = Holding {
            room_json: room_jsons[(i % args.rooms) as usize].clone(),
            join_timeout,
            setup: SetUp {
                permit,
                ready: ready_tx.clone(),
            },
            stop: stop.clone(),
            counters: counters.clone(),
        };
        let source = common.source_ip();
        let task = match common.protocol {
            Protocol::Native => tokio::spawn(hold_one(
                conn::with_query(&common.url, "name", &name),
                source,
                holding,
            )),
            protocol => tokio::spawn(hold_one_sio(
                SioTarget {
                    url: sio_url.clone(),
                    source,
                    protocol,
                    name,
                    seed: i,
                },
                holding,
            )),
        };
        tasks.push(task);
    }
    drop(ready_tx);

    let mut latency = stats::latency_histogram();
    let mut failures = BTreeMap::new();
    while let Some(ready) = ready_rx.recv().await {
        match ready {
            Ok(micros) => stats::record(&mut latency, micros),
            Err(reason) => *failures.entry(reason).or_insert(0u64) += 1,
        }
    }
    let ramp = started.elapsed();
    let server_ramped = procstat::sample(common.server_pid);
    let bench_ramped = ProcSample::own().ok();

    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    let server_end = procstat::sample(common.server_pid);
    let bench_rss_kib = ProcSample::own().ok().map(|s| s.rss_kib);
    stop.cancel();

    let mut dropped = 0;
    let mut frames_received = 0;
    for task in tasks {
        // A panicked task counts as dropped rather than aborting the report.
        let held = task.await.unwrap_or(Held {
            frames: 0,
            dropped: true,
        });
        dropped += u64::from(held.dropped);
        frames_received += held.frames;
    }
    drop(reporter);

    let joined = latency.len();
    let server = procstat::usage(server_start, server_end);
    let cpu = |a, b| procstat::usage(a, b).map(|u| u.cpu_seconds);
    let report = IdleReport {
        scenario: "idle",
        url: common.url.clone(),
        protocol: common.protocol,
        connections: total,
        rooms: args.rooms,
        concurrency: args.concurrency,
        hold_secs: args.hold,
        joined,
        failed: failures.values().sum(),
        failures,
        ramp_secs: ramp.as_secs_f64(),
        joins_per_sec: joined as f64 / ramp.as_secs_f64().max(1e-9),
        connect_join_latency_us: LatencySummary::of(&latency),
        dropped,
        frames_received,
        server_kib_per_connection: server
            .filter(|_| joined > 0)
            .map(|s| s.rss_delta_kib as f64 / joined as f64),
        server,
        server_cpu_ramp_secs: cpu(server_start, server_ramped),
        server_cpu_hold_secs: cpu(server_ramped, server_end),
        bench_rss_kib,
        bench_cpu_ramp_secs: cpu(bench_start, bench_ramped),
    };
    emit(common, &report.table(), &report)?;
    Ok(report.clean())
}

/// What every held connection gets, whatever its protocol: its room, its
/// set-up, when to stop, and the counters.
struct Holding {
    room_json: Arc<str>,
    join_timeout: Duration,
    setup: SetUp,
    stop: CancellationToken,
    counters: Arc<Counters>,
}

/// A connection's share of the set-up concurrency, and where it reports
/// its connect+join time (or why it failed); both given up once it has
/// joined.
struct SetUp {
    permit: OwnedSemaphorePermit,
    ready: mpsc::UnboundedSender<Result<u64, String>>,
}

impl SetUp {
    /// Counts the attempt begun at `t0` as joined or failed and reports it.
    fn finish<T>(self, opened: anyhow::Result<T>, t0: Instant, counters: &Counters) -> Option<T> {
        drop(self.permit);
        match opened {
            Ok(opened) => {
                Counters::bump(&counters.joined);
                let _ = self.ready.send(Ok(t0.elapsed().as_micros() as u64));
                Some(opened)
            }
            Err(e) => {
                Counters::bump(&counters.failed);
                let _ = self.ready.send(Err(format!("{e:#}")));
                None
            }
        }
    }
}

/// One connection: open and join, report how long that took, then read
/// until told to stop.
async fn hold_one(url: String, source: Option<IpAddr>, holding: Holding) -> Held {
    let Holding {
        room_json,
        join_timeout,
        setup,
        stop,
        counters,
    } = holding;
    let t0 = Instant::now();
    let opened = conn::open(&url, Buffers::small(), source, &room_json, join_timeout).await;
    let Some((mut ws, joined)) = setup.finish(opened, t0, &counters) else {
        return Held::default();
    };

    let mut held = Held {
        frames: joined.early_frames,
        dropped: false,
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(_))) => {
                    held.frames += 1;
                    Counters::bump(&counters.frames);
                }
                // Pings are answered by tungstenite while reading.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_) | Message::Binary(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    held.dropped = true;
                    Counters::bump(&counters.dropped);
                    return held;
                }
            }
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
    held
}

/// Where a Socket.IO idle connection goes, and as whom.
struct SioTarget {
    /// The Engine.IO WebSocket URL.
    url: String,
    /// `--source-ips`: the address to connect from.
    source: Option<IpAddr>,
    protocol: Protocol,
    name: String,
    /// Seeds the connection's mask keys.
    seed: u64,
}

/// [`hold_one`] over Socket.IO, on the lean client of the load scenarios.
async fn hold_one_sio(target: SioTarget, holding: Holding) -> Held {
    let Holding {
        room_json,
        join_timeout,
        setup,
        stop,
        counters,
    } = holding;
    let t0 = Instant::now();
    let opened = tokio::time::timeout(
        join_timeout,
        sio::connect_and_join(
            &target.url,
            target.source,
            target.protocol,
            &room_json,
            &target.name,
            SIO_READ_BUFFER,
            target.seed,
        ),
    )
    .await
    .unwrap_or_else(|_| Err(anyhow::anyhow!("not joined within {join_timeout:?}")));
    let Some((mut ws, _base_seq)) = setup.finish(opened, t0, &counters) else {
        return Held::default();
    };
    let (frames, dropped) = sio::idle(&mut ws, &stop, || Counters::bump(&counters.frames)).await;
    if dropped {
        Counters::bump(&counters.dropped);
    }
    Held { frames, dropped }
}

/// Receive buffer of an idle Socket.IO connection (it grows for a larger
/// message, such as a `joined` reply).
const SIO_READ_BUFFER: usize = 4 * 1024;
