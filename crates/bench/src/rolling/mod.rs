//! `chat-bench rolling`: a rolling restart under load, measured.
//!
//! The bench runs the cluster itself ([`crate::cluster`]): three
//! `chat-server` nodes on PostgreSQL and Redis (a fresh schema and Redis
//! prefix per run, so runs do not see each other's data) behind nginx with
//! the configuration of docs/deploy.md. Clients ([`clients`]) connect
//! through nginx, each in one room, each sending at a steady rate and
//! receiving its room. After a baseline, each node in turn, `--rounds`
//! times, is drained (SIGTERM, or `POST /api/admin/drain`), waited for,
//! started again from `--new-binary`, waited for until `/readyz` answers
//! 200, and left alone for `--pause-secs` before the next node. Then
//! sending stops, and what every client saw is checked ([`report`]): every
//! acked message delivered to every member that was in the room, none
//! twice, none out of order, every client connected again.

mod clients;
mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::cluster::{self, Nginx, Node};
use clients::{Member, Phase, Shared, lock};
use report::{Restart, Sample};

/// The nodes: as many as docs/nginx-cluster.conf lists.
const NODES: usize = 3;
/// How long a restarted node may take to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long, after sending stops, deliveries may take to catch up.
const CATCH_UP: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Drain {
    /// `kill -TERM`, as systemd's `stop` does.
    Signal,
    /// `POST /api/admin/drain` on the node.
    Api,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RollingArgs {
    /// The `chat-server` binary the nodes start from [default: the one
    /// beside this `chat-bench`].
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,
    /// The binary each node is restarted from: the new build of an upgrade
    /// [default: --server-bin].
    #[arg(long, value_name = "PATH")]
    pub new_binary: Option<PathBuf>,
    /// PostgreSQL the nodes share.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub database_url: String,
    /// The schema of this run (by default a fresh one, `rolling_<time>_<pid>`,
    /// left in place afterwards for inspection).
    #[arg(long)]
    pub database_schema: Option<String>,
    /// Redis the nodes share.
    #[arg(long, default_value = "redis://127.0.0.1:6379/")]
    pub redis_url: String,
    /// The Redis key prefix of this run (by default `rolling:<time>:<pid>:`).
    #[arg(long)]
    pub redis_prefix: Option<String>,
    /// The nginx executable.
    #[arg(long, default_value = "nginx")]
    pub nginx: String,
    /// Clients, each in one room, dealt over the rooms in turn.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    /// Messages a second each client sends.
    #[arg(long, default_value_t = 0.5)]
    pub rate: f64,
    /// How many times each node is restarted.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Load before the first restart (the "before" latencies).
    #[arg(long, default_value_t = 20)]
    pub baseline_secs: u64,
    /// Pause after a restarted node is ready, before the next one (and
    /// after the last).
    #[arg(long, default_value_t = 10)]
    pub pause_secs: u64,
    /// How nodes are drained.
    #[arg(long, value_enum, default_value_t = Drain::Signal)]
    pub drain: Drain,
    /// The nodes' `--shutdown-timeout-ms`.
    #[arg(long, default_value_t = 10_000)]
    pub shutdown_timeout_ms: u64,
    /// Write the report as JSON to PATH, and its chart as an SVG beside it
    /// (PATH with the extension `.svg`).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Keep the run's directory (node logs, nginx.log) instead of
    /// removing it.
    #[arg(long)]
    pub keep_logs: bool,
}

impl RollingArgs {
    fn check(&self) -> anyhow::Result<()> {
        if self.clients == 0 || self.rooms == 0 || self.rooms > self.clients {
            bail!("--clients must be at least --rooms, and both above 0");
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            bail!("--rate must be a positive number of messages a second");
        }
        Ok(())
    }

    fn server_bin(&self) -> anyhow::Result<PathBuf> {
        if let Some(path) = &self.server_bin {
            return Ok(path.clone());
        }
        let me = std::env::current_exe().context("where is chat-bench")?;
        Ok(me.with_file_name("chat-server"))
    }
}

/// A name part unique to this run: seconds since the epoch and the pid.
fn run_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{secs}_{}", std::process::id())
}

pub async fn run(args: RollingArgs) -> anyhow::Result<bool> {
    args.check()?;
    let binary = args.server_bin()?;
    let new_binary = args.new_binary.clone().unwrap_or_else(|| binary.clone());
    let dir = tempfile::Builder::new()
        .prefix("chat-rolling-")
        .tempdir()
        .context("a temp directory")?;
    let id = run_id();
    let shared_config = cluster::Shared {
        database_url: args.database_url.clone(),
        database_schema: args
            .database_schema
            .clone()
            .unwrap_or_else(|| format!("rolling_{id}")),
        redis_url: args.redis_url.clone(),
        redis_prefix: args
            .redis_prefix
            .clone()
            .unwrap_or_else(|| format!("rolling:{id}:")),
        shutdown_timeout: Duration::from_millis(args.shutdown_timeout_ms),
        dir: dir.path().to_path_buf(),
    };
    eprintln!(
        "rolling: {NODES} nodes from {} (schema {}, logs in {})",
        binary.display(),
        shared_config.database_schema,
        dir.path().display()
    );
    let mut nodes = Vec::new();
    for index in 0..NODES {
        nodes.push(Node::start(index, &binary, &shared_config).await?);
    }
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();
    let nginx = Nginx::start(&args.nginx, &addrs, dir.path()).await?;
    let outcome = load_and_restart(&args, &mut nodes, &nginx, &new_binary, &shared_config).await;
    nginx.stop().await;
    for node in &nodes {
        let _ = node.sigterm();
    }
    for node in &mut nodes {
        let _ = tokio::time::timeout(Duration::from_secs(15), node.exited()).await;
    }
    if args.keep_logs {
        let kept = dir.keep();
        eprintln!("rolling: logs kept in {}", kept.display());
    }
    let report = outcome?;
    report.emit(args.json.as_deref())?;
    Ok(report.passed())
}

/// Connects the clients, runs the baseline and the restarts, stops the
/// load and checks what the clients saw.
async fn load_and_restart(
    args: &RollingArgs,
    nodes: &mut [Node],
    nginx: &Nginx,
    new_binary: &std::path::Path,
    config: &cluster::Shared,
) -> anyhow::Result<report::Report> {
    let shared = Arc::new(Shared::new(args.rooms));
    let url = format!("ws://{}/ws", nginx.addr);
    let members = connect_all(args, &url, &shared).await?;
    eprintln!("rolling: {} clients connected", members.len());
    let sampler = tokio::spawn(sample_connected(shared.clone()));
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let mut senders = tokio::task::JoinSet::new();
    for (index, member) in members.iter().enumerate() {
        let room = room_name(index % args.rooms);
        senders.spawn(clients::send(
            index,
            member.clone(),
            room,
            period,
            shared.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_secs(args.baseline_secs)).await;
    shared.set_phase(Phase::During);
    let mut restarts = Vec::new();
    for round in 0..args.rounds {
        for node in nodes.iter_mut() {
            let restart = restart(args, node, round, new_binary, config, &shared).await?;
            eprintln!(
                "rolling: node {} round {}: drained in {} ms (exit {:?}), ready {} ms after start",
                restart.node, restart.round, restart.drain_ms, restart.exit_code, restart.ready_ms
            );
            restarts.push(restart);
            tokio::time::sleep(Duration::from_secs(args.pause_secs)).await;
        }
    }
    shared.sending.store(false, Ordering::Relaxed);
    while senders.join_next().await.is_some() {}
    let caught_up = catch_up(&members, &shared).await;
    sampler.abort();
    let timeline = timeline(&shared);
    Ok(report::Report::new(
        args, &members, &shared, restarts, timeline, caught_up,
    ))
}

/// The room every client of index `i % rooms` is in.
fn room_name(room: usize) -> String {
    format!("rolling-{room}")
}

/// Opens every client, a few at a time.
async fn connect_all(
    args: &RollingArgs,
    url: &str,
    shared: &Arc<Shared>,
) -> anyhow::Result<Vec<Arc<Member>>> {
    /// Connections opened at once: the server's accept burst, not the test.
    const AT_ONCE: usize = 50;
    let mut members = Vec::with_capacity(args.clients);
    for start in (0..args.clients).step_by(AT_ONCE) {
        let batch = (start..(start + AT_ONCE).min(args.clients)).map(|index| {
            let room = index % args.rooms;
            clients::connect(url, index, room, room_name(room), shared)
        });
        for member in futures_util::future::join_all(batch).await {
            members.push(Arc::new(member?));
        }
    }
    Ok(members)
}

/// One node's drain, exit, start from `binary` and readiness, timed.
async fn restart(
    args: &RollingArgs,
    node: &mut Node,
    round: usize,
    binary: &std::path::Path,
    config: &cluster::Shared,
    shared: &Shared,
) -> anyhow::Result<Restart> {
    let at = shared.origin.elapsed();
    let started = Instant::now();
    match args.drain {
        Drain::Signal => node.sigterm()?,
        Drain::Api => {
            let (status, body) = cluster::http(node.addr, "POST", "/api/admin/drain").await?;
            if status != 202 {
                bail!("drain of node {} answered {status}: {body}", node.index);
            }
        }
    }
    let limit = config.shutdown_timeout + Duration::from_secs(10);
    let exit_code = tokio::time::timeout(limit, node.exited())
        .await
        .with_context(|| {
            format!(
                "node {} still running {limit:?} after the drain",
                node.index
            )
        })??;
    let drain_ms = started.elapsed().as_millis();
    let spawned = Instant::now();
    node.spawn(binary, config).await?;
    node.wait_ready(READY_TIMEOUT).await?;
    Ok(Restart {
        node: node.index,
        round,
        binary: binary.to_path_buf(),
        at_s: at.as_secs_f64(),
        drain_ms,
        exit_code,
        ready_ms: spawned.elapsed().as_millis(),
    })
}

/// Waits until every client has every acked message of its room, or
/// [`CATCH_UP`] passes; whether they all did.
async fn catch_up(members: &[Arc<Member>], shared: &Shared) -> bool {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let acked = lock(&shared.acked).clone();
        let missing = members.iter().any(|m| {
            let seen = lock(&m.seen);
            let have: std::collections::HashSet<u64> = seen.seqs.iter().copied().collect();
            acked[seen.room]
                .iter()
                .any(|seq| *seq > seen.base && !have.contains(seq))
        });
        if !missing {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The connected clients once a second, kept in [`Shared`]'s timeline
/// order (index = second).
async fn sample_connected(shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticks.tick().await;
        let second = usize::try_from(shared.origin.elapsed().as_secs()).unwrap_or(usize::MAX);
        let connected = shared.connected.load(Ordering::Relaxed);
        let mut samples = lock(&shared.connected_samples);
        samples.resize(second + 1, None);
        samples[second] = Some(connected);
    }
}

/// The per-second timeline: connected clients, deliveries, latency.
fn timeline(shared: &Shared) -> Vec<Sample> {
    let latencies = lock(&shared.timeline);
    let connected = lock(&shared.connected_samples);
    let seconds = latencies.len().max(connected.len());
    (0..seconds)
        .map(|second| {
            let summary = latencies
                .get(second)
                .map(crate::stats::LatencySummary::of)
                .unwrap_or_default();
            Sample {
                second,
                connected: connected.get(second).copied().flatten(),
                deliveries: summary.count,
                p50_ms: summary.p50 as f64 / 1e3,
                p99_ms: summary.p99 as f64 / 1e3,
            }
        })
        .collect()
}
