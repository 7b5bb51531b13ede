//! Wiring: opens the store, starts the hub, binds the listener, routes HTTP,
//! and runs the graceful shutdown sequence.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use crate::auth::{Authenticator, GuestKeys, Secret};
use crate::broker::RedisBroker;
use crate::config::Config;
use crate::dashboard::{ClusterDirectory, Dashboard, new_node_id};
use crate::edge::accept::{Acceptor, ConnectRate};
use crate::edge::guard::{self, Guard};
use crate::edge::{self, Edge};
use crate::state::AppState;
use crate::store::{PostgresStore, SqliteStore};
use crate::tls::Tls;
use crate::{http, transport};
use chat_core::broker::{Broker, LocalBroker};
use chat_core::stats::History;
use chat_core::store::Store;
use chat_core::{Hub, Metrics};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] crate::store::sqlite::OpenError),
    #[error(transparent)]
    Postgres(#[from] crate::store::postgres::ConnectError),
    #[error(transparent)]
    Redis(#[from] crate::broker::redis::ConnectError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Auth(#[from] crate::auth::SetupError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot read or keep the guest secret: {0}")]
    GuestSecret(#[source] chat_core::store::StoreError),
    #[error("cannot read the bans from storage: {0}")]
    Bans(#[source] chat_core::store::StoreError),
    #[error("the guest secret kept in storage is unusable: {0}")]
    ShortGuestSecret(#[from] crate::auth::ShortSecret),
}

/// The keys of guest credentials: `--guest-secret`, else the secret the
/// storage keeps (made by the first server to start on it), so that a
/// guest stays themselves across restarts and on every node of a cluster.
async fn guest_keys(config: &Config, store: &dyn Store) -> Result<GuestKeys, ServerError> {
    let secret = match &config.guest_secret {
        Some(secret) => secret.clone(),
        None => Secret::new(
            store
                .shared_secret("guest", crate::auth::new_secret())
                .await
                .map_err(ServerError::GuestSecret)?,
        ),
    };
    Ok(GuestKeys::new(&secret)?)
}

pub fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new();
    if state.ws_echo {
        router = router.route("/ws-echo", get(transport::native::echo::upgrade));
    }
    router
        .route("/ws", get(transport::native::upgrade))
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz))
        .route("/metrics", get(http::metrics))
        .merge(crate::api::router(&state))
        .merge(crate::web::router())
        .merge(
            crate::web::admin_router().route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::api::page_access,
            )),
        )
        .merge(transport::socketio::router(&state))
        .layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            guard::check,
        ))
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
    socket.set_send_buffer_size(transport::SOCKET_SEND_BUFFER)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A bound, ready-to-serve server.
pub struct Server {
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown_timeout: Duration,
    /// `None`: plain HTTP.
    tls: Option<Arc<Tls>>,
    /// `None`: no per-address limit on new connections.
    connect_rate: Option<Arc<ConnectRate>>,
    edge: Arc<Edge>,
}

impl Server {
    /// Opens storage, starts the core and binds the listener.
    pub async fn bind(
        config: &Config,
        prometheus: Option<PrometheusHandle>,
    ) -> Result<Server, ServerError> {
        // Keys and certificates first: a bad one stops the start at once.
        let mut auth = Authenticator::new(&config.auth)?;
        let tls = config.tls.clone().map(Tls::load).transpose()?;
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
        if auth.allows_guests() {
            auth.set_guest_keys(guest_keys(config, store.as_ref()).await?);
        }
        // Cluster mode with a Redis URL: fan-out and presence across nodes.
        let redis = match &config.redis {
            Some(redis) => Some(RedisBroker::connect(redis.clone()).await?),
            None => None,
        };
        let node = new_node_id();
        let cluster = redis.as_ref().map(|redis| ClusterDirectory {
            conn: redis.connection(),
            prefix: redis.config().prefix.clone(),
            node_ttl: redis.config().node_ttl,
        });
        let broker_store = store.clone();
        let metrics = Metrics::new();
        let counters = metrics.counters();
        let broker_node = node.clone();
        let hub = Hub::new(store, config.limits.clone(), metrics, |rooms| match redis {
            Some(redis) => Arc::new(RedisBroker::start(redis, broker_node, rooms, broker_store))
                as Arc<dyn Broker>,
            None => Arc::new(LocalBroker::new(rooms)) as Arc<dyn Broker>,
        });
        // Every ban in effect before the first connection is taken.
        hub.reload_bans().await.map_err(ServerError::Bans)?;
        let listener = listen(config.listen).map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let dashboard = Arc::new(Dashboard {
            node,
            address: listener
                .local_addr()
                .map_or_else(|_| config.listen.to_string(), |addr| addr.to_string()),
            started: chat_core::committer::now_ms(),
            counters,
            history: Arc::new(History::new(config.stats_interval)),
            cluster,
        });
        let state = Arc::new(AppState {
            hub,
            heartbeat: config.heartbeat,
            max_frame_bytes: config.max_frame_bytes,
            connections: TaskTracker::new(),
            allowed_origins: config.allowed_origins.clone(),
            prometheus,
            auth,
            ws_echo: config.ws_echo,
            api_key: config.api_key.clone(),
            guard: Arc::new(Guard {
                hosts: config.edge.allowed_hosts.clone(),
                origins: config.allowed_origins.clone(),
            }),
            draining: CancellationToken::new(),
            dashboard,
        });
        Ok(Server {
            state,
            listener,
            shutdown_timeout: config.shutdown_timeout,
            edge: Arc::new(Edge::new(
                &config.edge,
                config.max_connections_per_ip,
                tls.clone(),
            )),
            tls,
            connect_rate: config
                .max_connects_per_ip_per_sec
                .and_then(ConnectRate::new)
                .map(Arc::new),
        })
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The TLS state, for reloading the certificate (on SIGHUP in main.rs).
    pub fn tls(&self) -> Option<Arc<Tls>> {
        self.tls.clone()
    }

    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener.local_addr().map_err(ServerError::Serve)
    }

    /// Serves until `shutdown` resolves or a drain is asked for
    /// (`POST /api/admin/drain`), then drains: `/readyz` answers 503, the
    /// listening socket is closed (new connections are refused at once),
    /// every accepted send is committed and acked, every connection is
    /// closed with 1001, and this returns once they are gone (or the
    /// shutdown timeout passes). HTTP connections kept alive (a balancer's
    /// health checks) are served through the drain and closed last.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Server {
            state,
            listener,
            shutdown_timeout,
            tls,
            connect_rate,
            edge,
        } = self;
        let acceptor = Acceptor::new(listener, connect_rate, tls.is_some());
        let close_http = CancellationToken::new();
        let http_connections = TaskTracker::new();
        tokio::spawn(edge.serve(
            acceptor,
            router(state.clone()),
            edge::Stop {
                // The listening socket closes the moment a drain starts.
                accepting: state.draining.clone(),
                connections: close_http.clone(),
            },
            http_connections.clone(),
        ));
        let _watching_certificates =
            tls.map(|tls| AbortOnDropHandle::new(tokio::spawn(tls.watch())));
        let dashboard = &state.dashboard;
        let _sampling = AbortOnDropHandle::new(tokio::spawn(chat_core::stats::sample(
            dashboard.counters.clone(),
            dashboard.history.clone(),
        )));
        let _beating =
            AbortOnDropHandle::new(tokio::spawn(dashboard.clone().beat(state.hub.clone())));
        tokio::select! {
            () = shutdown => state.draining.cancel(),
            () = state.draining.cancelled() => {}
        }
        tracing::info!(
            connections = state.connections.len(),
            "draining: committing pending messages, closing connections"
        );
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
        // Requests in progress (a long poll, an API call) get a moment.
        close_http.cancel();
        http_connections.close();
        let _ = tokio::time::timeout(Duration::from_millis(500), http_connections.wait()).await;
        Ok(())
    }
}
