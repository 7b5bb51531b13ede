//! One Socket.IO connection's task: the namespace handshake, then the same
//! loop as the WebSocket transport's, over the engine's socket.
//!
//! It selects over the reasons to hang up (server shutdown, too slow), the
//! transport closing, the session's outbox, and requests from the inbox.
//! Requests are handled one at a time, in the order they arrived. Output
//! goes to the engine's send queue, whose writer batches whatever is
//! queued into one write; a full send queue means the client does not keep
//! up, and the connection is dropped as too slow.
//!
//! Closing is the engine's: it writes what it had queued, then (over
//! WebSocket) a close frame without a code, and waits for the socket as
//! long as that takes; only shutdown waits here, for [`CLOSE_TIMEOUT`],
//! and a ban, for the client to close after the namespace's `DISCONNECT`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, Uri};
use chat_protocol::{ErrorBody, ErrorCode, Ref, Request, RequestError, ServerFrame, validate};
use engineioxide::{DisconnectReason, Str};
use serde::Deserialize;
use socketioxide_core::Value;
use socketioxide_core::parser::Parse;
use socketioxide_parser_common::CommonParser;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;

use super::{EngineSocket, Incoming, mapping};
use crate::auth;
use crate::state::AppState;
use crate::transport::query::{self, BadQuery};
use chat_core::{Dropped, Identity, Outbound, OutboxQueue, OutboxReceiver, Session};

/// How long a client has to send its namespace `CONNECT` after the
/// transport opened (Socket.IO servers' `connectTimeout`).
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);
/// How long the final packets may take to go out at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Most outbox items moved per wake-up, so a busy room cannot keep the
/// task from taking requests for long.
pub(super) const MAX_BATCH: usize = 256;

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hangup {
    /// The transport closed: the client left, or went silent.
    Gone,
    /// The client disconnected from the namespace.
    Left,
    /// The client could not keep up with its rooms.
    TooSlow,
    /// The server is shutting down.
    Shutdown,
    /// The user is banned from the server: the error saying so, then the
    /// namespace's `DISCONNECT`, were sent.
    Banned,
}

/// The engine's send queue refused a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    Full,
    Closed,
}

/// Runs one connection from the transport's opening to its end.
pub async fn run(app: Arc<AppState>, socket: Arc<EngineSocket>) {
    let Some(identity) = handshake(&app, &socket).await else {
        socket.data.inbox.close();
        return;
    };
    let (mut session, mut outbox) = app.hub.connect(identity);
    let greeted = send(&socket, mapping::connected(session.id()))
        .and_then(|()| send(&socket, mapping::reply(&session.welcome(app.heartbeat))));
    let hangup = match greeted {
        Ok(()) => serve(&socket, &mut session, &mut outbox).await,
        Err(_) => Hangup::Gone,
    };
    tracing::debug!(
        session = session.id(),
        ?hangup,
        "Socket.IO connection ended"
    );
    // Leave rooms (and announce it) before closing, which may be slow.
    drop(session);
    socket.data.inbox.close();
    match hangup {
        Hangup::Gone => {}
        // Closing the transport, not the namespace: the client reconnects
        // by itself, and resumes with `join` + `since`.
        Hangup::Left | Hangup::TooSlow => socket.close(DisconnectReason::TransportClose),
        // The error and the namespace's DISCONNECT are queued: a client
        // that reads them closes the transport itself. Closing it here at
        // once would lose them on long-polling, whose next poll finds the
        // session gone.
        Hangup::Banned => {
            if tokio::time::timeout(CLOSE_TIMEOUT, socket.closed())
                .await
                .is_err()
            {
                socket.close(DisconnectReason::TransportClose);
            }
        }
        Hangup::Shutdown => {
            socket.close(DisconnectReason::ClosingServer);
            // The engine's writer lets go of the queue once it has written
            // what was in it, the acks of the last commits among them.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.closed()).await;
        }
    }
}

/// The handshake's `auth` payload. Not `Debug`: it may hold a token,
/// which must never reach a log.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Auth {
    name: Option<String>,
    token: Option<String>,
    /// A guest credential from an earlier `welcome`.
    guest: Option<String>,
}

/// What the handshake request says about who connects, kept (as a few
/// small strings, not the request head) until the namespace `CONNECT`.
/// Not `Debug`: it may hold a token.
pub(super) struct Credentials {
    /// `?name=` and `?token=`, the fallback for clients that cannot set
    /// `auth` (as `/ws` takes them), or why the query was refused.
    query: Result<query::Credentials, BadQuery>,
    bearer: Option<String>,
}

impl Credentials {
    /// `?name=`, `?token=` and `Authorization: Bearer` of a request.
    pub(super) fn of(uri: &Uri, headers: &HeaderMap) -> Credentials {
        Credentials {
            query: query::credentials(uri.query()),
            bearer: auth::bearer_token(headers).map(str::to_owned),
        }
    }
}

/// Waits for the namespace `CONNECT` and returns who connects; `None`
/// when the client never connects.
async fn handshake(app: &AppState, socket: &EngineSocket) -> Option<Identity> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let credentials = Credentials::of(&socket.req_parts.uri, &socket.req_parts.headers);
    loop {
        let incoming = tokio::select! {
            () = app.hub.disconnecting() => {
                socket.close(DisconnectReason::ClosingServer);
                return None;
            }
            () = tokio::time::sleep_until(deadline) => {
                tracing::debug!("no Socket.IO CONNECT in time; closing");
                socket.close(DisconnectReason::TransportClose);
                return None;
            }
            incoming = socket.data.inbox.next() => incoming?,
        };
        // Events before the CONNECT belong to no namespace: ignored, as
        // Socket.IO servers do.
        if let Incoming::Connect(auth) = incoming {
            match identify(app, &credentials, auth.as_ref()) {
                Ok(identity) => return Some(identity),
                Err(why) => {
                    tracing::debug!(%why, "Socket.IO CONNECT refused");
                    // The client hears `connect_error` and gives up by itself.
                    send(socket, mapping::connect_error(why)).ok()?;
                }
            }
        }
    }
}

/// Who connects: `auth: {token, guest, name}` in the `CONNECT`, else, as
/// on `/ws`, `Authorization: Bearer`, `?token=`, `?guest=` and `?name=` on
/// the handshake request. Refusals say why without quoting the token; a
/// user banned from the server is refused here, where Socket.IO learns who
/// connects.
pub(super) fn identify(
    app: &AppState,
    credentials: &Credentials,
    auth: Option<&Value>,
) -> Result<Identity, String> {
    let auth: Auth = CommonParser
        .decode_default(auth)
        .map_err(|_| "`auth` must be an object like {name, token, guest}".to_owned())?;
    // A query that cannot be read is refused even when `auth` says all.
    let query = credentials.query.as_ref().map_err(BadQuery::to_string)?;
    let name = auth.name.or_else(|| query.name.clone());
    if let Some(name) = &name {
        validate::display_name(name).map_err(|invalid| invalid.message)?;
    }
    let token = auth
        .token
        .as_deref()
        .or(credentials.bearer.as_deref())
        .or(query.token.as_deref());
    let guest = auth.guest.as_deref().or(query.guest.as_deref());
    let identity = app
        .auth
        .authenticate(token, guest, name)
        .map_err(|refused| match refused {
            auth::Refused::Missing => {
                "a token is required: connect with auth: {token: <jwt>}".into()
            }
            refused => refused.to_string(),
        })?;
    if app.hub.is_banned(&identity.user.id) {
        return Err(chat_core::bans::SERVER_BANNED.into());
    }
    Ok(identity)
}

async fn serve(
    socket: &EngineSocket,
    session: &mut Session,
    outbox: &mut OutboxReceiver,
) -> Hangup {
    let OutboxReceiver { rx, dropped } = outbox;
    let dropped = &*dropped;
    // Made once, not per wake-up: each registers a waiter, and registering
    // anew for every delivery would cost lock round trips each time.
    let hangup = dropped.wait();
    tokio::pin!(hangup);
    let closed = socket.closed();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            biased;
            reason = &mut hangup => match reason {
                Dropped::SlowConsumer => return Hangup::TooSlow,
                // Disconnected by the operator, or idle: the transport
                // closes as for a slow client ("transport close").
                Dropped::Kicked | Dropped::Idle => return Hangup::TooSlow,
                Dropped::Banned => {
                    // The error saying why is queued: it goes out first,
                    // then the namespace's DISCONNECT, so the client
                    // stays away.
                    while let Ok(item) = rx.try_recv() {
                        if forward(&mut { socket }, item).is_err() {
                            break;
                        }
                    }
                    let _ = send(socket, mapping::disconnect());
                    return Hangup::Banned;
                }
                Dropped::Shutdown => {
                    // Acks of sends committed during shutdown are queued:
                    // let them out before closing.
                    while let Ok(item) = rx.try_recv() {
                        if forward(&mut { socket }, item).is_err() {
                            break;
                        }
                    }
                    return Hangup::Shutdown;
                }
            },
            () = &mut closed => return Hangup::Gone,
            Some(first) = rx.recv() => {
                if let Err(refused) = forward_batch(socket, first, rx) {
                    match refused {
                        Refused::Full => dropped.mark_slow(),
                        Refused::Closed => return Hangup::Gone,
                    }
                }
            }
            incoming = socket.data.inbox.next() => match incoming {
                None => return Hangup::Gone,
                Some(Incoming::Event { data, ack }) => {
                    // Boxed: the handler's state would otherwise sit in
                    // every idle connection's task, used or not.
                    let typing_ack = Box::pin(handle(session, &data, ack)).await;
                    if let Some(typing_ack) = typing_ack
                        && let Err(Refused::Closed) = after_queued(socket, rx, typing_ack)
                    {
                        return Hangup::Gone;
                    }
                }
                Some(Incoming::Binary { ack }) => reject_binary(session, ack),
                Some(Incoming::Disconnect) => return Hangup::Left,
                // Already connected: a repeated CONNECT changes nothing.
                Some(Incoming::Connect(_)) => {}
            },
        }
    }
}

/// Where a connection's packets go: the engine's send queue, or our own
/// WebSocket writer ([`super::websocket`]).
pub(super) trait PacketSink {
    fn send_packet(&mut self, packet: Str) -> Result<(), Refused>;
}

impl PacketSink for &EngineSocket {
    fn send_packet(&mut self, packet: Str) -> Result<(), Refused> {
        send(self, packet)
    }
}

/// Handles one event. Every request has exactly one answer for a client
/// that passed a callback; the core answers all but an accepted `typing`,
/// whose acknowledgement this returns, for the transport to send after
/// whatever the outbox already holds.
pub(super) async fn handle(session: &mut Session, data: &Str, ack: Option<i64>) -> Option<Str> {
    let envelope = match mapping::request(data, ack) {
        Ok(envelope) => envelope,
        Err(error) => {
            session.reject(error);
            return None;
        }
    };
    let typing_room = match (&envelope.request, ack) {
        (Request::Typing { room }, Some(_)) => Some(room.clone()),
        _ => None,
    };
    let answered = session.handle_reporting(envelope).await;
    match (answered, typing_room, ack) {
        (false, Some(room), Some(id)) => Some(mapping::acknowledge_room(id, &room)),
        _ => None,
    }
}

/// Sends `packet` after everything the outbox holds now.
fn after_queued(
    mut socket: &EngineSocket,
    outbox: &mut OutboxQueue,
    packet: Str,
) -> Result<(), Refused> {
    while let Ok(item) = outbox.try_recv() {
        forward(&mut socket, item)?;
    }
    send(socket, packet)
}

/// Refuses an event with binary attachments.
pub(super) fn reject_binary(session: &mut Session, ack: Option<i64>) {
    session.reject(RequestError {
        reference: ack.map(|id| Ref::Number(id.into())),
        code: ErrorCode::BadRequest,
        message: "binary attachments are not accepted; send JSON".into(),
    });
}

/// Moves `first` and whatever else is queued, up to a batch, to the engine.
fn forward_batch(
    mut socket: &EngineSocket,
    first: Outbound,
    outbox: &mut OutboxQueue,
) -> Result<(), Refused> {
    forward(&mut socket, first)?;
    for _ in 1..MAX_BATCH {
        match outbox.try_recv() {
            Ok(item) => forward(&mut socket, item)?,
            Err(_) => break,
        }
    }
    Ok(())
}

/// One outbox item as Socket.IO packets: a room event as its shared
/// encoding, a reply as an ack or an event.
pub(super) fn forward<S: PacketSink>(sink: &mut S, item: Outbound) -> Result<(), Refused> {
    match item {
        Outbound::Event(event) => {
            let packets = event.encoded::<mapping::EventPackets>();
            sink.send_packet(packets.first)?;
            match packets.system {
                Some(system) => sink.send_packet(system),
                None => Ok(()),
            }
        }
        Outbound::Reply(frame) => sink.send_packet(mapping::reply(&frame)),
    }
}

fn send(socket: &EngineSocket, packet: Str) -> Result<(), Refused> {
    socket.emit(packet).map_err(|error| match error {
        TrySendError::Full(_) => Refused::Full,
        TrySendError::Closed(_) => Refused::Closed,
    })
}

/// The answer to an event that found the inbox full.
pub(super) fn overloaded(ack: Option<i64>) -> Str {
    mapping::reply(&ServerFrame::Error {
        reference: ack.map(|id| Ref::Number(id.into())),
        body: ErrorBody {
            code: ErrorCode::Overloaded,
            message: "too many requests waiting on this connection; retry shortly".into(),
            room: None,
        },
    })
}
