//! The checks every HTTP request passes before any route sees it: the
//! `Host` it was sent to ([`hosts`](super::hosts)), then the page it comes
//! from ([`origin`](super::origin)).
//!
//! They are one layer around the whole router, not a check in each
//! handler, so no route can be added without them: the WebSocket upgrade
//! on `/ws` (a WebSocket is not subject to CORS, so a page on any site
//! could otherwise open one with the visitor's network position), the
//! HTTP API (a cross-site form post needs no CORS preflight), Socket.IO,
//! and the operator endpoints alike.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::hosts::AllowedHosts;
use super::origin::AllowedOrigins;

/// What the layer lets through.
#[derive(Debug, Clone)]
pub struct Guard {
    pub hosts: AllowedHosts,
    pub origins: AllowedOrigins,
}

/// The layer's function: 421 for a name we do not serve, 403 for a page we
/// do not trust, else the route.
pub async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if !guard.hosts.allows(headers.get(header::HOST)) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "this server does not answer to that host name (see --allowed-hosts)\n",
        )
            .into_response();
    }
    if !guard.origins.allows_request(headers) {
        return (
            StatusCode::FORBIDDEN,
            "pages from this origin may not use this server (see --allowed-origins)\n",
        )
            .into_response();
    }
    next.run(request).await
}
