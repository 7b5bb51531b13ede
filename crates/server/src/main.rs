//! `chat-server`: parses configuration, sets up logging and metrics, and
//! runs the server until SIGINT or SIGTERM; SIGHUP reloads the TLS
//! certificate.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Context;
use chat_server::config::{Config, LogFormat};
use chat_server::server::Server;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    init_logging(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let prometheus = install_metrics()?;
    let server = Server::bind(&config, Some(prometheus)).await?;
    let addr = server.local_addr()?;
    let scheme = server.scheme();
    // The database URL is not logged: it may carry a password.
    match &config.database_url {
        Some(_) => tracing::info!(%addr, scheme, storage = "postgresql", "chat-server listening"),
        None => tracing::info!(
            %addr,
            scheme,
            storage = "sqlite",
            data_dir = %config.data_dir.display(),
            "chat-server listening"
        ),
    }
    if let Some(tls) = server.tls() {
        tokio::spawn(reload_on_sighup(tls));
    }
    // The one line on stdout: people and test harnesses read the URL here.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "chat-server listening on {scheme}://{addr}")?;
    stdout.flush()?;
    server.serve(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("invalid log level `{}`", config.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// Tasks alive in the runtime, refreshed with the metrics' upkeep (every
/// 5 s): `chat-bench soak` watches it for tasks that outlive their work.
const ALIVE_TASKS: &str = "chat_runtime_alive_tasks";

fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        // Every latency (`*_seconds`): the ack's, and each stage's.
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            chat_core::metrics::LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(chat_core::metrics::COMMIT_BATCH.into()),
            &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0],
        )?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    metrics::describe_gauge!(
        ALIVE_TASKS,
        "Tasks alive in the async runtime (a figure that grows under steady load is a leak)"
    );
    let upkeep = handle.clone();
    let runtime = tokio::runtime::Handle::current().metrics();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
            metrics::gauge!(ALIVE_TASKS).set(runtime.num_alive_tasks() as f64);
        }
    });
    Ok(handle)
}

/// Reloads the TLS certificate and key on each SIGHUP, the usual signal
/// for "read your files again" (certbot and logrotate hooks send it).
#[cfg(unix)]
async fn reload_on_sighup(tls: std::sync::Arc<chat_server::tls::Tls>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(signal) => signal,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; certificates reload only when their files change");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
            Err(error) => {
                tracing::warn!(%error, "SIGHUP: cannot reload the TLS certificate; keeping the current one")
            }
        }
    }
}

#[cfg(not(unix))]
async fn reload_on_sighup(_tls: std::sync::Arc<chat_server::tls::Tls>) {}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT received"),
        _ = terminate => tracing::info!("SIGTERM received"),
    }
}
