//! The native protocol on `/ws`: JSON text frames over WebSocket.
//!
//! One task per connection owns the socket and waits, through the shared
//! WebSocket layer's [`Pump`], on four things: the reason to hang up
//! (server shutdown, too slow), the socket (frames from the client, and
//! progress on queued output), items from the connection's outbox, and the
//! heartbeat timer; [`connection`] is that loop. Everything it does to the
//! chat is a call into its [`Session`]; this module only speaks the JSON
//! framing ([`Chat`]): a request per text frame in, a frame per outbox item
//! out, a binary frame refused with 1003. The handshake, the socket, the
//! pump and the goodbye are [`websocket`](super::websocket)'s, shared with
//! Socket.IO's WebSocket path. `/ws-echo` ([`echo`]) runs the same loop
//! with an echo for the chat.

mod connection;
pub mod echo;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chat_protocol::{parse_request, validate};
use tokio::io::{AsyncRead, AsyncWrite};
use tungstenite::protocol::frame::Utf8Bytes;

use crate::auth;
use crate::state::AppState;
use crate::transport::query;
use crate::transport::websocket::pump::Pump;
use crate::transport::websocket::socket::WsSocket;
use crate::transport::websocket::{CloseReason, handshake, spawn_connection};
use chat_core::{Encoder, Identity, Outbound, OutboxReceiver, RoomEvent, Session};
use connection::Handler;

/// `GET /ws`: checks the query and the credentials, and upgrades.
pub async fn upgrade(State(app): State<Arc<AppState>>, mut request: Request) -> Response {
    if app.is_draining() {
        return crate::http::refused_while_draining();
    }
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
    let identity = match app
        .auth
        .authenticate(token, params.guest.as_deref(), params.name)
    {
        Ok(identity) => identity,
        Err(refused) => {
            tracing::debug!(reason = %refused, "upgrade refused");
            return refused.into_response();
        }
    };
    if app.hub.is_banned(&identity.user.id) {
        tracing::debug!("upgrade refused: the user is banned");
        return crate::transport::banned();
    }
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

/// Opens the session and returns the connection's loop. Not an `async fn`:
/// one would keep its own copy of the socket beside the loop's in every
/// connection's task (rustc does not reuse the storage of an argument moved
/// into an awaited future), which cost 4 KiB per idle connection.
fn serve<S>(
    app: Arc<AppState>,
    mut socket: WsSocket<S>,
    identity: Identity,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let heartbeat = app.heartbeat;
    let (mut session, outbox) = app.hub.connect(identity);
    socket.queue_text(session.welcome(heartbeat).to_json().as_bytes());
    let pump = Pump::new(outbox, heartbeat);
    connection::run(socket, pump, Chat { session }, heartbeat)
}

/// The chat on `/ws`: a JSON request per text frame to the session, a JSON
/// frame per outbox item.
struct Chat {
    session: Session,
}

impl Handler for Chat {
    type Outbox = OutboxReceiver;

    async fn text(&mut self, text: Utf8Bytes) {
        match parse_request(text.as_str()) {
            Ok(envelope) => {
                // Boxed: the handler's state would otherwise sit in every
                // idle connection's task, used or not.
                Box::pin(self.session.handle(envelope)).await
            }
            Err(error) => self.session.reject(error),
        }
        // Past its error budget the client waits, unread: its flood backs
        // up in TCP instead of in our answers.
        if let Some(pause) = self.session.read_pause() {
            tokio::time::sleep(pause).await;
        }
    }

    fn binary(&mut self, _: Bytes) -> Result<(), CloseReason> {
        Err(CloseReason::BinaryFrame)
    }

    fn format<S>(socket: &mut WsSocket<S>, item: Outbound)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match item {
            Outbound::Event(event) => {
                let bytes = event.encoded::<NativeFrame>();
                socket.queue_text(&bytes);
            }
            Outbound::Reply(frame) => socket.queue_text(frame.to_json().as_bytes()),
        }
    }
}

/// A room event as the native protocol's JSON text frame, encoded once
/// per event for every `/ws` member.
struct NativeFrame;

impl Encoder for NativeFrame {
    type Output = Bytes;

    fn encode(event: &RoomEvent) -> Bytes {
        Bytes::from(event.to_frame().to_json())
    }
}
