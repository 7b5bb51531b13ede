//! Engine.IO over WebSocket from the first request, on our own socket.
//!
//! A client that opens `/socket.io/?EIO=4&transport=websocket` without a
//! `sid` (socket.io-client with `transports: ['websocket']`, most native
//! and server-side clients, load generators) never uses long-polling, so
//! it needs none of the engine's machinery: no session table, no send
//! queue between tasks, no separate reader, writer and heartbeat tasks.
//! Such a connection is served here like a `/ws` connection is, on the
//! WebSocket layer both share ([`websocket`]):
//! the same RFC 6455 handshake, the same socket whose output buffer is
//! freed once written, the same pump, one task that owns it.
//! Only the framing differs: Engine.IO packets (`0` open, `2`/`3` ping and
//! pong, `4` message) around the Socket.IO packets that the rest of this
//! module encodes and decodes, with the same [`super::classify`],
//! [`handle`](connection::handle) and [`forward`](connection::forward) as
//! the engine's connections.
//!
//! Heartbeats follow Engine.IO v4: the server sends `2` every
//! `pingInterval` (the server's `--heartbeat-ms`) and expects `3` back
//! before the next one; a client that misses one is dropped, within two
//! intervals of going silent, as on `/ws`. The client, in turn, gives up on
//! a server whose ping does not come within `pingInterval + pingTimeout`.
//!
//! A connection ends as a `/ws` one does ([`websocket::end`]): 1013 ahead of its
//! discarded backlog when too slow, 1001 after its queue and with the close
//! handshake at shutdown. Before the namespace `CONNECT` there is no outbox
//! yet, but its output is bounded the same way.
//!
//! Polling, and polling upgraded to WebSocket, stay with the engine.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use engineioxide::Str;
use socketioxide_core::parser::{Parse, ParseConfig, ParserState};
use socketioxide_parser_common::CommonParser;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Interval;
use tungstenite::Message;

use super::connection::{self, Credentials, PacketSink, Refused};
use super::{Classified, Incoming, classify, mapping, parse_config};
use crate::state::AppState;
use crate::transport::websocket::pump::{
    Next, OUTPUT_HIGH_WATER, OUTPUT_SLACK, Pump, heartbeat_ticks,
};
use crate::transport::websocket::socket::{SocketEvent, WsSocket};
use crate::transport::websocket::{
    self, CloseReason, Ending, Hangup, handshake, hangup_for, spawn_connection,
};
use chat_core::{Dropped, Identity, Outbound, Session};

/// Whether `request` opens Engine.IO v4 directly on WebSocket: `GET`,
/// `EIO=4`, `transport=websocket`, no `sid` (with a `sid` it upgrades a
/// polling session, which is the engine's).
pub(super) fn is_direct(request: &Request) -> bool {
    if request.method() != Method::GET {
        return false;
    }
    let Some(query) = request.uri().query() else {
        return false;
    };
    let (mut eio4, mut websocket) = (false, false);
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "EIO" => eio4 = value == "4",
            "transport" => websocket = value == "websocket",
            "sid" => return false,
            _ => {}
        }
    }
    eio4 && websocket
}

/// Answers the WebSocket handshake and starts the connection's task. The
/// request head is dropped once its credentials are copied out.
pub(super) fn upgrade(app: &Arc<AppState>, mut request: Request) -> Response {
    let credentials = Credentials::of(request.uri(), request.headers());
    let (response, on_upgrade) = match handshake::accept(&mut request) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    drop(request);
    let serving = app.clone();
    spawn_connection(app, on_upgrade, move |socket| {
        run(serving, socket, credentials)
    });
    response
}

/// One connection, from the Engine.IO open packet to the close frame.
async fn run<S>(app: Arc<AppState>, socket: WsSocket<S>, credentials: Credentials)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Conn {
        socket,
        parse: parse_config(app.max_frame_bytes),
        parser: ParserState::default(),
        awaiting_pong: false,
    };
    conn.socket
        .queue_text(open_packet(app.heartbeat, app.max_frame_bytes).as_bytes());
    let mut ticks = heartbeat_ticks(app.heartbeat);
    let ending = match conn.handshake(&app, &credentials, &mut ticks).await {
        Ok(identity) => {
            drop(credentials);
            let (mut session, outbox) = app.hub.connect(identity);
            let mut pump = Pump::with_ticks(outbox, ticks);
            let sid = session.id().to_owned();
            conn.send(mapping::connected(&sid));
            conn.send(mapping::reply(&session.welcome(app.heartbeat)));
            let ending = conn.serve(&mut session, &mut pump).await;
            tracing::debug!(session = sid, ?ending, "Socket.IO connection ended");
            // Leave rooms (and announce it) before the goodbye, which may
            // be slow.
            drop(session);
            ending
        }
        Err(ending) => ending,
    };
    // Closing the transport, not the namespace: the client reconnects by
    // itself (after a shutdown, elsewhere), and resumes with `join` +
    // `since`. The same goodbye as on `/ws`.
    websocket::end(&mut conn.socket, ending).await;
}

/// Engine.IO's open packet. The `sid` names the transport session (the
/// namespace gets the chat session's id in its `CONNECT` answer); with no
/// polling behind it, it only needs to be unique.
fn open_packet(heartbeat: Duration, max_payload: usize) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let salt: u32 = rand::random();
    let interval = heartbeat.as_millis();
    format!(
        r#"0{{"sid":"w{salt:08x}{n:x}","upgrades":[],"pingInterval":{interval},"pingTimeout":{interval},"maxPayload":{max_payload}}}"#
    )
}

/// What one WebSocket message was, once read.
enum Read {
    /// A Socket.IO packet for the connection.
    Incoming(Incoming),
    /// Handled on the spot (a pong, a partial binary packet).
    Nothing,
    /// The connection ends.
    End(Hangup),
}

struct Conn<S> {
    socket: WsSocket<S>,
    parse: ParseConfig,
    /// Partial binary packets being read (to be refused whole).
    parser: ParserState,
    /// A ping went out and its pong has not come back.
    awaiting_pong: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Queues a Socket.IO packet as an Engine.IO message (`4`).
    fn send(&mut self, packet: Str) {
        let _ = self.socket.send_packet(packet);
    }

    /// A heartbeat tick: the connection ends if the last ping is still
    /// unanswered, else pings again.
    fn heartbeat(&mut self) -> Result<(), Hangup> {
        if self.awaiting_pong {
            return Err(Some(CloseReason::HeartbeatTimeout));
        }
        self.awaiting_pong = true;
        self.socket.queue_text(b"2");
        Ok(())
    }

    /// Reads one WebSocket message as Engine.IO.
    fn read(&mut self, message: Result<Message, tungstenite::Error>) -> Read {
        let decoded = match message {
            Ok(Message::Text(text)) => {
                let text = text.as_str();
                match text.as_bytes().first() {
                    Some(b'4') => CommonParser.decode_str(
                        &self.parse,
                        &self.parser,
                        Str::copy_from_slice(&text[1..]),
                    ),
                    Some(b'3') => {
                        self.awaiting_pong = false;
                        return Read::Nothing;
                    }
                    // A client ping (Engine.IO v3 habits): answered.
                    Some(b'2') => {
                        self.socket.queue_text_parts(&[b"3", &text.as_bytes()[1..]]);
                        return Read::Nothing;
                    }
                    Some(b'6') => return Read::Nothing,
                    Some(b'1') => return Read::End(None),
                    _ => {
                        tracing::debug!("malformed Engine.IO packet; closing");
                        return Read::End(Some(CloseReason::MalformedEngineIo));
                    }
                }
            }
            // Engine.IO v4 sends binary packets as plain binary messages.
            Ok(Message::Binary(data)) => CommonParser.decode_bin(&self.parse, &self.parser, data),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => return Read::Nothing,
            Ok(Message::Close(_)) => return Read::End(None),
            Err(error) => return Read::End(hangup_for(error)),
        };
        match classify(decoded) {
            Classified::Incoming(incoming) => Read::Incoming(incoming),
            Classified::Ignored => Read::Nothing,
            Classified::Answer(packet) => {
                self.send(packet);
                Read::Nothing
            }
            Classified::Malformed => Read::End(Some(CloseReason::MalformedSocketIo)),
        }
    }

    /// Waits for the namespace `CONNECT` and returns who connects.
    async fn handshake(
        &mut self,
        app: &AppState,
        credentials: &Credentials,
        ticks: &mut Interval,
    ) -> Result<Identity, Ending> {
        let deadline = tokio::time::sleep(connection::CONNECT_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            // No outbox yet, but answers to what the client sends (pongs)
            // pile up all the same if it does not read: the same bound as
            // once connected.
            if self.socket.pending() > OUTPUT_HIGH_WATER + OUTPUT_SLACK {
                return Err(Ending::TooSlow);
            }
            let incoming = tokio::select! {
                biased;
                () = app.hub.disconnecting() => return Err(Ending::Shutdown),
                () = &mut deadline => {
                    tracing::debug!("no Socket.IO CONNECT in time; closing");
                    return Err(Ending::Close(Some(CloseReason::NoSocketIoConnect)));
                }
                message = poll_fn(|cx| self.socket.poll_io(cx, OUTPUT_HIGH_WATER)) => {
                    match message {
                        Ok(SocketEvent::Drained) => continue,
                        Ok(SocketEvent::Message(message)) => self.read(Ok(message)),
                        Err(error) => self.read(Err(error)),
                    }
                }
                _ = ticks.tick() => {
                    self.heartbeat().map_err(Ending::Close)?;
                    continue;
                }
            };
            match incoming {
                Read::End(hangup) => return Err(Ending::Close(hangup)),
                Read::Incoming(Incoming::Connect(auth)) => {
                    match connection::identify(app, credentials, auth.as_ref()) {
                        Ok(identity) => return Ok(identity),
                        Err(why) => {
                            tracing::debug!(%why, "Socket.IO CONNECT refused");
                            // The client hears `connect_error` and gives up.
                            self.send(mapping::connect_error(why));
                        }
                    }
                }
                // Events before the CONNECT belong to no namespace: ignored,
                // as Socket.IO servers do.
                Read::Nothing | Read::Incoming(_) => {}
            }
        }
    }

    /// The connected loop, as `/ws`'s ([`Pump`]): hang-up reasons, the
    /// socket, the outbox (while the output buffer is below its mark), the
    /// heartbeat.
    async fn serve(&mut self, session: &mut Session, pump: &mut Pump) -> Ending {
        loop {
            let next = poll_fn(|cx| pump.poll_next(cx, &mut self.socket, &mut forward)).await;
            let read = match next {
                Next::Message(message) => self.read(Ok(message)),
                Next::Failed(error) => self.read(Err(error)),
                Next::Dropped(Dropped::SlowConsumer) => return Ending::TooSlow,
                Next::Dropped(Dropped::Kicked) => {
                    return Ending::Close(Some(CloseReason::Kicked));
                }
                Next::Dropped(Dropped::Idle) => {
                    return Ending::Close(Some(CloseReason::Idle));
                }
                Next::Dropped(Dropped::Banned) => {
                    // The error saying why, then the namespace's
                    // DISCONNECT: the client stays away.
                    pump.queue_all_queued(&mut self.socket, &mut forward);
                    self.send(mapping::disconnect());
                    return Ending::Close(Some(CloseReason::Banned));
                }
                Next::Dropped(Dropped::Shutdown) => {
                    // Acks of sends committed during shutdown are queued:
                    // let them out before saying goodbye.
                    pump.queue_all_queued(&mut self.socket, &mut forward);
                    return Ending::Shutdown;
                }
                Next::Tick => match self.heartbeat() {
                    Ok(()) => continue,
                    Err(hangup) => return Ending::Close(hangup),
                },
            };
            match read {
                Read::Nothing => {}
                Read::End(hangup) => return Ending::Close(hangup),
                Read::Incoming(Incoming::Event { data, ack }) => {
                    // Boxed: the handler's state would otherwise sit in
                    // every idle connection's task, used or not.
                    let typing_ack = Box::pin(connection::handle(session, &data, ack)).await;
                    if let Some(typing_ack) = typing_ack {
                        pump.queue_all_queued(&mut self.socket, &mut forward);
                        self.send(typing_ack);
                    }
                }
                Read::Incoming(Incoming::Binary { ack }) => connection::reject_binary(session, ack),
                // The client leaves the namespace: close the transport too
                // (it has no other namespace here).
                Read::Incoming(Incoming::Disconnect) => {
                    return Ending::Close(Some(CloseReason::Disconnected));
                }
                // Already connected: a repeated CONNECT changes nothing.
                Read::Incoming(Incoming::Connect(_)) => {}
            }
            // Past its error budget the client waits, unread (as on `/ws`).
            if let Some(pause) = session.read_pause() {
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Formats one outbox item as Engine.IO messages.
fn forward<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut WsSocket<S>, item: Outbound) {
    // Queuing on our own socket is never refused.
    let _ = connection::forward(socket, item);
}

/// Socket.IO packets go out as Engine.IO messages (`4`).
impl<S: AsyncRead + AsyncWrite + Unpin> PacketSink for WsSocket<S> {
    fn send_packet(&mut self, packet: Str) -> Result<(), Refused> {
        self.queue_text_parts(&[b"4", packet.as_bytes()]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(uri: &str) -> Request {
        Request::builder()
            .method(Method::GET)
            .uri(uri)
            .body(axum::body::Body::empty())
            .expect("valid request")
    }

    #[test]
    fn only_fresh_v4_websocket_requests_are_direct() {
        assert!(is_direct(&get("/socket.io/?EIO=4&transport=websocket")));
        assert!(is_direct(&get(
            "/socket.io/?name=a&transport=websocket&EIO=4&t=x"
        )));
        assert!(!is_direct(&get("/socket.io/?EIO=4&transport=polling")));
        assert!(!is_direct(&get(
            "/socket.io/?EIO=4&transport=websocket&sid=abc"
        )));
        assert!(!is_direct(&get("/socket.io/?EIO=3&transport=websocket")));
        assert!(!is_direct(&get("/socket.io/")));
    }

    #[test]
    fn the_open_packet_says_how_to_keep_alive() {
        let packet = open_packet(Duration::from_secs(25), 65536);
        let json: serde_json::Value =
            serde_json::from_str(packet.strip_prefix('0').expect("an open packet")).unwrap();
        assert_eq!(json["pingInterval"], 25000);
        assert_eq!(json["pingTimeout"], 25000);
        assert_eq!(json["maxPayload"], 65536);
        assert_eq!(json["upgrades"], serde_json::json!([]));
        assert_ne!(
            json["sid"],
            serde_json::from_str::<serde_json::Value>(&open_packet(Duration::from_secs(1), 1)[1..])
                .unwrap()["sid"]
        );
    }
}
