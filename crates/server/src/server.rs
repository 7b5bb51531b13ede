//! Wiring: opens the store, starts the hub, binds the listener, routes HTTP,
//! and runs the graceful shutdown sequence.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::{Broker, LocalBroker};
use crate::config::Config;
use crate::core::{Hub, Metrics};
use crate::store::{PostgresStore, SqliteStore, Store};
use crate::{http, transport};

/// What every request handler can reach.
pub struct AppState {
    pub hub: Hub,
    pub heartbeat: Duration,
    pub max_frame_bytes: usize,
    /// Open WebSocket connections, so shutdown can wait for them.
    pub connections: TaskTracker,
    pub prometheus: Option<PrometheusHandle>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] crate::store::sqlite::OpenError),
    #[error(transparent)]
    Postgres(#[from] crate::store::postgres::ConnectError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/ws", get(transport::ws::upgrade))
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz))
        .route("/metrics", get(http::metrics))
        .merge(crate::web::router())
        .with_state(state)
}

/// Pending connections the kernel queues before `accept`.
/// `TcpListener::bind` uses std's 128: a burst of thousands of clients
/// connecting at once then overflows it and sees SYN retries with one-second
/// stalls. The kernel caps this at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Lets a restarted server bind while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Chat frames are small and latency-bound, and the transport already
/// batches queued frames into one write, so Nagle's delay only adds latency.
fn no_delay(stream: &mut TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
}

/// A bound, ready-to-serve server.
pub struct Server {
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown_timeout: Duration,
}

impl Server {
    /// Opens storage, starts the core and binds the listener.
    pub async fn bind(
        config: &Config,
        prometheus: Option<PrometheusHandle>,
    ) -> Result<Server, ServerError> {
        // SQLite in the data directory unless a PostgreSQL URL is given.
        let store: Arc<dyn Store> = match &config.database_url {
            Some(url) => Arc::new(
                PostgresStore::connect(
                    url,
                    config.database_schema.clone(),
                    config.store_busy_timeout,
                )
                .await?,
            ),
            None => Arc::new(SqliteStore::open(
                &config.data_dir,
                config.store_busy_timeout,
            )?),
        };
        let hub = Hub::new(store, config.limits.clone(), Metrics::new(), |rooms| {
            Arc::new(LocalBroker::new(rooms)) as Arc<dyn Broker>
        });
        let listener = listen(config.listen).map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let state = Arc::new(AppState {
            hub,
            heartbeat: config.heartbeat,
            max_frame_bytes: config.max_frame_bytes,
            connections: TaskTracker::new(),
            prometheus,
        });
        Ok(Server {
            state,
            listener,
            shutdown_timeout: config.shutdown_timeout,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener.local_addr().map_err(ServerError::Serve)
    }

    /// Serves until `shutdown` resolves, then: stops accepting, commits and
    /// acks every accepted send, closes every connection with 1001, and
    /// returns once they are gone (or the shutdown timeout passes).
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Server {
            state,
            listener,
            shutdown_timeout,
        } = self;
        let stop_accepting = CancellationToken::new();
        let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let http = tokio::spawn(
            axum::serve(listener.tap_io(no_delay), app)
                .with_graceful_shutdown(stop_accepting.clone().cancelled_owned())
                .into_future(),
        );
        shutdown.await;
        tracing::info!("shutting down: committing pending messages, closing connections");
        stop_accepting.cancel();
        state.hub.shutdown().await;
        state.connections.close();
        if tokio::time::timeout(shutdown_timeout, state.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = state.connections.len(),
                "connections still open at the shutdown timeout; exiting anyway"
            );
        }
        match tokio::time::timeout(Duration::from_millis(500), http).await {
            Ok(Ok(Err(e))) => Err(ServerError::Serve(e)),
            _ => Ok(()),
        }
    }
}
