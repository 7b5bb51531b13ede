//! Transports: how clients reach the core. Each maps its wire format onto
//! [`Session`](chat_core::Session) calls and encodes what comes out of the
//! connection's outbox.
//!
//! Two protocols run on WebSocket: the native one ([`native`], `/ws`) and
//! Socket.IO ([`socketio`], whose direct WebSocket path is one of its two).
//! Both run on one WebSocket layer, [`websocket`]: handshake, socket, pump
//! and goodbye are the same code for both.

pub mod native;
pub mod query;
pub mod socketio;
pub(crate) mod websocket;

use axum::response::{IntoResponse, Response};
use chat_protocol::ErrorCode;
use chat_protocol::validate::Invalid;

/// The answer to an upgrade of a user banned from the server: 403 with the
/// JSON error `forbidden`, as the API words its errors.
pub(crate) fn banned() -> Response {
    crate::api::ApiError::from(Invalid {
        code: ErrorCode::Forbidden,
        message: chat_core::bans::SERVER_BANNED.into(),
    })
    .into_response()
}

/// `SO_SNDBUF` of every accepted connection (set on the listening socket,
/// whose connections inherit it). Linux doubles the value for its own
/// bookkeeping: a connection's socket holds at most about 64 KiB.
///
/// Left alone, the kernel grows a socket's send buffer with its congestion
/// window, up to `net.ipv4.tcp_wmem`'s maximum (4 MiB by default), which on
/// loopback and fast links takes a few round trips. A client that stops
/// reading then holds megabytes of kernel memory before anything backs up
/// into the server, where its outbox limit would drop it as too slow: a
/// thousand such clients took a host's TCP memory to its pressure threshold
/// (1.5 GB) within seconds, and at a moderate rate the flood never reached
/// the outbox before the heartbeat closed them. Bounded, a slow connection
/// pins this much in the kernel, plus our own output (bounded in
/// `websocket::pump`) and its outbox.
///
/// The price is a ceiling on one connection's throughput of about this
/// buffer per round trip: 64 KiB per 100 ms is 640 KB/s, thousands of chat
/// frames a second, above any room's rate. On loopback it makes no
/// measurable difference.
pub const SOCKET_SEND_BUFFER: u32 = 32 * 1024;
