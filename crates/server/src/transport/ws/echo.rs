//! `/ws-echo`: echoes every text and binary message back, for WebSocket
//! conformance testing (Autobahn|Testsuite's `wstest -m fuzzingclient`,
//! `scripts/autobahn.sh`). Off unless the server runs with `--ws-echo`.
//!
//! It is `/ws`'s WebSocket layer and nothing else: the same opening
//! handshake ([`super::handshake`]), the same reader and writer
//! ([`super::socket`]), the same settings and close codes, except that
//! messages may be as large as [`MAX_MESSAGE`] (the suite sends up to
//! 16 MiB). What the suite finds here holds for `/ws`.

use std::future::poll_fn;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tungstenite::Message;
use tungstenite::protocol::WebSocketConfig;

use super::socket::{SocketEvent, WsSocket};
use super::{Ending, Hangup, READ_BUFFER, end, handshake, hangup_for};
use crate::state::AppState;
use crate::transport::close::CloseReason;

/// The largest message (and frame) echoed: Autobahn's 9.x cases send up to
/// 16 MiB.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Echoes queued but unwritten past this stop reading until the client
/// takes them, so a client that only writes cannot grow our buffer.
const OUTPUT_HIGH_WATER: usize = MAX_MESSAGE;

/// `GET /ws-echo`: the handshake of `/ws`, then the echo loop.
pub async fn upgrade(State(app): State<Arc<AppState>>, mut request: Request) -> Response {
    let (response, on_upgrade) = match handshake::accept(&mut request) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let idle = app.heartbeat * 2;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket = WsSocket::new(TokioIo::new(upgraded), config);
                echo(socket, idle).await;
            }
            Err(error) => tracing::debug!(%error, "WebSocket upgrade did not complete"),
        }
    });
    response
}

async fn echo<S>(mut socket: WsSocket<S>, idle: std::time::Duration)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let hangup: Hangup = loop {
        if socket.pending() >= OUTPUT_HIGH_WATER {
            match tokio::time::timeout(idle, poll_fn(|cx| socket.poll_flush(cx))).await {
                Ok(Ok(())) => continue,
                _ => return,
            }
        }
        let deadline = Instant::now() + idle;
        let incoming = tokio::time::timeout_at(
            deadline,
            poll_fn(|cx| socket.poll_io(cx, OUTPUT_HIGH_WATER)),
        )
        .await;
        match incoming {
            Err(_) => break Some(CloseReason::HeartbeatTimeout),
            Ok(Ok(SocketEvent::Drained)) => {}
            Ok(Ok(SocketEvent::Message(Message::Text(text)))) => {
                socket.queue_text(text.as_bytes());
            }
            Ok(Ok(SocketEvent::Message(Message::Binary(data)))) => socket.queue_binary(&data),
            Ok(Ok(SocketEvent::Message(Message::Close(_)))) => break None,
            Ok(Ok(SocketEvent::Message(_))) => {}
            Ok(Err(e)) => break hangup_for(e),
        }
    };
    end(&mut socket, Ending::Close(hangup)).await;
}
