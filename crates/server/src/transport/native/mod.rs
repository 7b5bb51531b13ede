//! The native protocol on `/ws`: JSON text frames over WebSocket.
//!
//! One task per connection owns the socket and waits, through the shared
//! WebSocket layer's [`Pump`], on four things: the reason to hang up
//! (server shutdown, too slow), the socket (frames from the client, and
//! progress on queued output), items from the connection's outbox, and the
//! heartbeat timer. Everything it does to the chat is a call into its
//! [`Session`](crate::core::Session); this module only speaks the JSON
//! framing: a request per text frame in, a frame per outbox item out, a
//! binary frame refused with 1003. The handshake, the socket, the pump and
//! the goodbye are [`websocket`](super::websocket)'s, shared with
//! Socket.IO's WebSocket path.

pub mod echo;

use std::future::poll_fn;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chat_protocol::{parse_request, validate};
use tokio::time::Instant;
use tungstenite::Message;

use crate::auth;
use crate::core::{Dropped, Encoding, Identity, Outbound};
use crate::server::AppState;
use crate::transport::query;
use crate::transport::websocket::pump::{Next, Pump};
use crate::transport::websocket::socket::WsSocket;
use crate::transport::websocket::{
    CloseReason, Ending, end, handshake, hangup_for, spawn_connection,
};

/// `GET /ws`: checks the query and the credentials, and upgrades.
pub async fn upgrade(State(app): State<Arc<AppState>>, mut request: Request) -> Response {
    let params = match query::credentials(request.uri().query()) {
        Ok(params) => params,
        Err(bad) => return (StatusCode::BAD_REQUEST, bad.to_string()).into_response(),
    };
    if let Some(name) = &params.name
        && let Err(invalid) = validate::display_name(name)
    {
        return (StatusCode::BAD_REQUEST, invalid.message).into_response();
    }
    // The header wins over the query: it stays out of URLs and their logs.
    let token = auth::bearer_token(request.headers()).or(params.token.as_deref());
    let identity = match app.auth.authenticate(token, params.name) {
        Ok(identity) => identity,
        Err(refused) => {
            tracing::debug!(reason = %refused, "upgrade refused");
            return refused.into_response();
        }
    };
    let (response, on_upgrade) = match handshake::accept(&mut request) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    let serving = app.clone();
    spawn_connection(&app, on_upgrade, move |socket| {
        serve(serving, socket, identity)
    });
    response
}

async fn serve<S>(app: Arc<AppState>, mut socket: WsSocket<S>, identity: Identity)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let heartbeat = app.heartbeat;
    let (mut session, outbox) = app.hub.connect(identity);
    let mut pump = Pump::new(outbox, heartbeat);
    socket.queue_text(session.welcome(heartbeat).to_json().as_bytes());
    let mut last_heard = Instant::now();

    let ending = loop {
        let next = poll_fn(|cx| pump.poll_next(cx, &mut socket, &mut queue)).await;
        if let Next::Message(_) = next {
            last_heard = Instant::now();
        }
        match next {
            Next::Message(Message::Text(text)) => {
                match parse_request(text.as_str()) {
                    Ok(envelope) => {
                        // Boxed: the handler's state would otherwise sit in
                        // every idle connection's task, used or not.
                        Box::pin(session.handle(envelope)).await
                    }
                    Err(error) => session.reject(error),
                }
                // Past its error budget the client waits, unread: its
                // flood backs up in TCP instead of in our answers.
                if let Some(pause) = session.read_pause() {
                    tokio::time::sleep(pause).await;
                }
            }
            Next::Message(Message::Binary(_)) => {
                break Ending::Close(Some(CloseReason::BinaryFrame));
            }
            Next::Message(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Next::Message(Message::Close(_)) => break Ending::Close(None),
            Next::Failed(e) => break Ending::Close(hangup_for(e)),
            Next::Dropped(Dropped::SlowConsumer) => break Ending::TooSlow,
            Next::Dropped(Dropped::Shutdown) => {
                // Acks of sends committed during shutdown are queued: let
                // them out before saying goodbye.
                pump.queue_all_queued(&mut socket, &mut queue);
                break Ending::Shutdown;
            }
            Next::Dropped(Dropped::Kicked) => {
                break Ending::Close(Some(CloseReason::Kicked));
            }
            Next::Dropped(Dropped::Idle) => break Ending::Close(Some(CloseReason::Idle)),
            Next::Tick => {
                if last_heard.elapsed() >= heartbeat * 2 {
                    break Ending::Close(Some(CloseReason::HeartbeatTimeout));
                }
                if socket.queue_ping().is_err() {
                    break Ending::Close(None);
                }
            }
        }
    };
    // Leave rooms (and announce it) before the goodbye, which may be slow.
    drop(session);
    end(&mut socket, ending).await;
}

fn queue<S>(socket: &mut WsSocket<S>, item: Outbound)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match item {
        Outbound::Event(event) => {
            let bytes = event.encoded(Encoding::Native, |e| Bytes::from(e.to_frame().to_json()));
            socket.queue_text(&bytes);
        }
        Outbound::Reply(frame) => socket.queue_text(frame.to_json().as_bytes()),
    }
}
