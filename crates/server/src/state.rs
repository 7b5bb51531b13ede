//! What every request handler can reach: the hub and the settings the
//! routes share. Its own module, below the routes and the wiring that
//! builds it, so that neither depends on the other through it.

use std::sync::Arc;
use std::time::Duration;

use chat_core::Hub;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{ApiKey, Authenticator};
use crate::dashboard::Dashboard;
use crate::edge::guard::Guard;
use crate::edge::origin::AllowedOrigins;

/// What every request handler can reach.
pub struct AppState {
    pub hub: Hub,
    pub heartbeat: Duration,
    pub max_frame_bytes: usize,
    /// Open WebSocket and Socket.IO connections, so shutdown can wait for them.
    pub connections: TaskTracker,
    /// Web pages from other sites allowed to connect.
    pub allowed_origins: AllowedOrigins,
    pub prometheus: Option<PrometheusHandle>,
    /// Turns a connection's credentials into who it is.
    pub auth: Authenticator,
    /// Serve `/ws-echo` (conformance testing).
    pub ws_echo: bool,
    /// The HTTP API's key; `None`: loopback callers only.
    pub api_key: Option<ApiKey>,
    /// The `Host` and `Origin` checks every request passes.
    pub guard: Arc<Guard>,
    /// Cancelled at the first moment of a drain (SIGTERM, SIGINT or
    /// `POST /api/admin/drain`): `/readyz` answers 503 from then on, new
    /// connections are refused, and [`Server::serve`] runs the shutdown.
    ///
    /// [`Server::serve`]: crate::server::Server::serve
    pub draining: CancellationToken,
    /// This node's history and the cluster's nodes, for `/admin`.
    pub dashboard: Arc<Dashboard>,
}

impl AppState {
    /// Whether the node is draining: it takes no new connections.
    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }
}
