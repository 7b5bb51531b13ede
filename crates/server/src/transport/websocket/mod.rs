//! The WebSocket layer (RFC 6455) under both protocols that run on it: the
//! native JSON protocol on `/ws` ([`native`](super::native)) and Socket.IO
//! opened directly on WebSocket ([`socketio`](super::socketio), its
//! `websocket` path). `/ws-echo`, the conformance route, runs on it too.
//!
//! Everything here is the same for both, and is kept in one place so that
//! what is measured, tested and fuzzed on one holds for the other:
//!
//! - [`handshake`]: the opening handshake on an axum request;
//! - [`socket`]: reading (tungstenite) and writing (our own buffer, freed
//!   once written), and the close handshake;
//! - [`pump`]: the wait at the heart of a connection's task, each source
//!   (socket, outbox, heartbeat, hang-up) with its own waker, and the bound
//!   on the connection's own output;
//! - how a connection ends ([`Ending`], [`end`]) and the close code of each
//!   reason ([`CloseReason`]).
//!
//! A protocol brings its framing (JSON requests, or Engine.IO packets
//! around Socket.IO ones) and its loop: what to do with a message, how to
//! format an outbox item, when to ping.
//!
//! Memory per idle connection is what limits how many a node holds, so
//! buffers are sized for many mostly-idle connections: a 512-byte read
//! buffer (grown on demand up to the message limit), and an output buffer
//! that exists only while there is something to write. Under load,
//! everything queued in the outbox is formatted into one buffer and
//! written with one syscall.

pub(crate) mod close;
mod ending;
pub(crate) mod handshake;
pub(crate) mod pump;
pub(crate) mod socket;

use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tungstenite::protocol::WebSocketConfig;

use crate::state::AppState;
pub(crate) use close::CloseReason;
pub(crate) use ending::{Ending, Hangup, end, hangup_for, queue_goodbye};
use socket::WsSocket;

/// Initial read buffer per connection: client frames are small requests.
const READ_BUFFER: usize = 512;

/// A WebSocket connection once upgraded.
pub(crate) type UpgradedSocket = WsSocket<TokioIo<Upgraded>>;

/// Starts the task of a connection whose handshake was answered, with the
/// server's frame limit (`--max-frame-bytes`). The connection is counted
/// until it ends, so shutdown can wait for it.
pub(crate) fn spawn_connection<Serve, Served>(app: &AppState, on_upgrade: OnUpgrade, serve: Serve)
where
    Serve: FnOnce(UpgradedSocket) -> Served + Send + 'static,
    Served: Future<Output = ()> + Send + 'static,
{
    let tracked = app.connections.token();
    let max_message = app.max_frame_bytes;
    // The connection's future is made inside the task's: made outside and
    // moved in, it would be stored twice in every connection's task
    // (rustc keeps a captured future's slot beside the one it awaits).
    tokio::spawn(async move {
        let _tracked = tracked;
        serve_upgraded(on_upgrade, max_message, serve).await;
    });
}

/// Once the upgrade completes, runs `serve` on the socket, whose messages
/// and frames may be as large as `max_message`.
pub(crate) async fn serve_upgraded<Serve, Served>(
    on_upgrade: OnUpgrade,
    max_message: usize,
    serve: Serve,
) where
    Serve: FnOnce(UpgradedSocket) -> Served,
    Served: Future<Output = ()>,
{
    match on_upgrade.await {
        Ok(upgraded) => serve(WsSocket::new(TokioIo::new(upgraded), config(max_message))).await,
        Err(error) => tracing::debug!(%error, "WebSocket upgrade did not complete"),
    }
}

/// The settings of every connection: a small read buffer, grown on demand,
/// and messages and frames up to `max_message`.
pub(crate) fn config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}
