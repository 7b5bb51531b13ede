//! The native protocol on `/ws`: JSON text frames over WebSocket.
//!
//! One task per connection owns the socket and selects over four things:
//! frames from the client, items from the connection's outbox, the
//! heartbeat tick, and the two reasons to hang up (server shutdown, too
//! slow). Everything it does to the chat is a call into its
//! [`Session`](crate::core::Session); this module only speaks WebSocket.
//!
//! Buffer sizes are chosen for many mostly-idle connections: tungstenite's
//! defaults reserve 128 KiB to read and buffer up to 128 KiB to write per
//! connection. Client frames are small requests, so a 1 KiB read buffer
//! (grown on demand up to the frame limit for a large one) is plenty; writes
//! are batched up to 16 KiB per syscall, then flushed when the outbox runs
//! dry, so a busy connection sends many frames per write and an idle one
//! holds no pending bytes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chat_protocol::{CloseCode, parse_request, validate};
use futures_util::SinkExt;
use serde::Deserialize;
use tokio::time::{Instant, MissedTickBehavior};

use tokio::sync::mpsc;

use crate::core::{Encoding, Outbound};
use crate::server::AppState;

/// Initial read buffer per connection.
const READ_BUFFER: usize = 1024;
/// Bytes buffered before a write is issued mid-batch.
const WRITE_BUFFER: usize = 16 * 1024;
/// Most outbox items written per flush, so one busy connection cannot keep
/// its task from reading for long.
const MAX_BATCH: usize = 256;
/// How long the final close frame may take to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize)]
pub struct ConnectParams {
    name: Option<String>,
}

/// `GET /ws`: checks the query and upgrades.
pub async fn upgrade(
    State(app): State<Arc<AppState>>,
    Query(params): Query<ConnectParams>,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(name) = &params.name
        && let Err(invalid) = validate::display_name(name)
    {
        return (StatusCode::BAD_REQUEST, invalid.message).into_response();
    }
    let max = app.max_frame_bytes;
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve(app, socket, params.name))
}

/// Why the server ends a connection, when it is the one ending it.
struct Hangup {
    code: CloseCode,
    reason: &'static str,
}

impl Hangup {
    fn new(code: CloseCode, reason: &'static str) -> Option<Hangup> {
        Some(Hangup { code, reason })
    }
}

async fn serve(app: Arc<AppState>, mut socket: WebSocket, name: Option<String>) {
    // Counted until this function returns, so shutdown can wait for us.
    let _tracked = app.connections.token();
    let heartbeat = app.heartbeat;
    let (mut session, mut outbox) = app.hub.connect(name);
    let welcome = session.welcome(heartbeat).to_json();
    if socket.send(Message::Text(welcome.into())).await.is_err() {
        return;
    }
    let mut ticks = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();

    let hangup = loop {
        tokio::select! {
            biased;
            _ = app.hub.disconnecting() => {
                // Acks of sends committed during shutdown are queued: let
                // them out before saying goodbye.
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, drain(&mut socket, &mut outbox.rx)).await;
                break Hangup::new(CloseCode::GoingAway, "server shutting down");
            }
            _ = outbox.dropped.wait() => {
                break Hangup::new(CloseCode::Overloaded, "too slow for this room's traffic; resume with join and since");
            }
            Some(first) = outbox.rx.recv() => {
                tokio::select! {
                    written = write_batch(&mut socket, first, &mut outbox.rx) => {
                        if written.is_err() {
                            break None;
                        }
                    }
                    _ = outbox.dropped.wait() => {
                        break Hangup::new(CloseCode::Overloaded, "too slow for this room's traffic; resume with join and since");
                    }
                }
            }
            incoming = socket.recv() => {
                last_heard = Instant::now();
                match incoming {
                    Some(Ok(Message::Text(text))) => match parse_request(text.as_str()) {
                        Ok(envelope) => session.handle(envelope).await,
                        Err(error) => session.reject(error),
                    },
                    Some(Ok(Message::Binary(_))) => {
                        break Hangup::new(CloseCode::Unsupported, "binary frames are not accepted; send JSON text");
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Err(e)) => break hangup_for(e),
                }
            }
            _ = ticks.tick() => {
                if last_heard.elapsed() >= heartbeat * 2 {
                    break Hangup::new(CloseCode::GoingAway, "heartbeat timeout");
                }
                if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    break None;
                }
            }
        }
    };
    // Leave rooms (and announce it) before the goodbye, which may be slow.
    drop(session);
    let goodbye = async {
        if let Some(Hangup { code, reason }) = hangup {
            let frame = CloseFrame {
                code: code.code(),
                reason: reason.into(),
            };
            let _ = socket.send(Message::Close(Some(frame))).await;
        }
        // Also sends a close reply tungstenite queued for the client's close.
        let _ = socket.flush().await;
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, goodbye).await;
}

/// Maps a read error to the close code RFC 6455 and the contract give it;
/// `None` when the connection is simply gone.
fn hangup_for(error: axum::Error) -> Option<Hangup> {
    use tungstenite::error::{CapacityError, Error};
    match error.into_inner().downcast::<Error>().map(|e| *e) {
        Ok(Error::Capacity(CapacityError::MessageTooLong { .. })) => {
            Hangup::new(CloseCode::TooBig, "frame too big")
        }
        Ok(Error::Utf8(_)) => Some(Hangup {
            code: CloseCode::InvalidPayload,
            reason: "text frame is not valid UTF-8",
        }),
        Ok(Error::Protocol(_)) => Some(Hangup {
            code: CloseCode::ProtocolError,
            reason: "WebSocket protocol error",
        }),
        _ => None,
    }
}

fn encode(item: Outbound) -> Message {
    let text = match item {
        Outbound::Event(event) => {
            let bytes = event.encoded(Encoding::Native, |e| Bytes::from(e.to_frame().to_json()));
            // Encoded from a `String` above, so always valid UTF-8.
            Utf8Bytes::try_from(bytes).unwrap_or_else(|_| Utf8Bytes::from_static("{}"))
        }
        Outbound::Reply(frame) => Utf8Bytes::from(frame.to_json()),
    };
    Message::Text(text)
}

/// Writes `first` and whatever else is queued (up to a batch), then flushes
/// once: many frames per syscall under load, one write when idle.
async fn write_batch(
    socket: &mut WebSocket,
    first: Outbound,
    queue: &mut mpsc::Receiver<Outbound>,
) -> Result<(), axum::Error> {
    socket.feed(encode(first)).await?;
    for _ in 1..MAX_BATCH {
        match queue.try_recv() {
            Ok(item) => socket.feed(encode(item)).await?,
            Err(_) => break,
        }
    }
    socket.flush().await
}

/// Writes everything queued.
async fn drain(
    socket: &mut WebSocket,
    queue: &mut mpsc::Receiver<Outbound>,
) -> Result<(), axum::Error> {
    while let Ok(item) = queue.try_recv() {
        socket.feed(encode(item)).await?;
    }
    socket.flush().await
}
