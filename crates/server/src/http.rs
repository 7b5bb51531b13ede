//! Plain HTTP routes: health, readiness and metrics for operators.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// `GET /healthz`: the process is up and serving HTTP.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the node can take traffic (not draining, storage
/// answers, commits succeed; see [`Hub::ready`](chat_core::Hub::ready)).
/// Load balancers route new connections only to ready nodes. Draining is
/// checked first and alone, so the answer flips to 503 at the first moment
/// of a drain, whatever storage is doing.
pub async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    let readiness = if app.is_draining() {
        Err("draining".to_owned())
    } else {
        app.hub.ready().await
    };
    match readiness {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// What a new connection (a `/ws` upgrade, a Socket.IO handshake) gets
/// while the node drains: 503, which clients retry (behind a balancer, on
/// another node). Requests of connections already open are still served.
pub fn refused_while_draining() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        "draining: connect again (to another node)\n",
    )
        .into_response()
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    match &app.prometheus {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "metrics are not enabled in this process\n",
        )
            .into_response(),
    }
}
