//! Socket.IO v4 on `/socket.io/` (Engine.IO v4, WebSocket and HTTP
//! long-polling), onto the same core as `/ws`: the same rooms, sequence,
//! history, presence, limits and error codes. The event mapping is the
//! contract's (see [`mapping`]).
//!
//! # Layers
//!
//! Engine.IO has two paths here:
//!
//! - A client that opens it directly on WebSocket (`EIO=4`,
//!   `transport=websocket`, no `sid`: `socket.io-client` with
//!   `transports: ['websocket']`, server-side clients, load generators) is
//!   served by [`websocket`], on the WebSocket layer `/ws` runs on
//!   ([`crate::transport::websocket`]), one task per connection: the open
//!   packet, pings and pongs, and messages around the Socket.IO packets
//!   are ours.
//! - Everything else (long-polling, and polling upgraded to WebSocket, the
//!   browser client's default) is `engineioxide`.
//!
//! The Socket.IO packet codec is `socketioxide-parser-common`; it and
//! `engineioxide` are from the socketioxide project. Both paths share what
//! a packet means ([`classify`]), who connects
//! ([`connection::identify`]), how a request is handled and how replies
//! and room events become packets ([`connection::handle`],
//! [`connection::forward`], [`mapping`]). We do
//! not use `socketioxide` itself, whose model is a handler per event and
//! rooms of its own, because our core already owns rooms and needs three
//! things it does not give:
//!
//! - one connection's requests handled one at a time, in order (it spawns a
//!   task per incoming event, so a `message` may overtake the `join` before
//!   it);
//! - each broadcast encoded once and the same bytes handed to every
//!   receiver (it serializes per `emit`);
//! - hanging up a slow consumer by closing its transport, so its client
//!   reconnects and resumes, rather than with a namespace `DISCONNECT`,
//!   after which a client does not reconnect.
//!
//! What remains ours is small: a `CONNECT` with its `auth`, events with
//! their ack ids, `DISCONNECT`.
//!
//! # One connection
//!
//! On the direct WebSocket path, see [`websocket`]. Through the engine:
//! the engine calls [`Handler`] from its reading task for every message;
//! we decode it there and queue it in the socket's [`Inbox`]. One task per
//! connection ([`connection::run`]) then does what the WebSocket
//! transport's task does: takes requests one at a time to its
//! [`Session`](chat_core::Session), and moves what the session's outbox
//! yields into the engine's send queue. That queue holds at most
//! `--outbound-queue` packets; a client that cannot keep up fills it and
//! is dropped (its transport closed), as `/ws` closes with 1013.
//!
//! # Memory
//!
//! A direct WebSocket connection costs what a `/ws` one does: one task, a
//! 512-byte read buffer grown on demand, no write buffer between writes,
//! the outbox and the `Session` (5.6 KiB of server RSS per idle connection
//! in 100 rooms of 100, measured with `chat-bench idle --protocol socketio
//! --connections 10000 --rooms 100`, release build).
//!
//! Through the engine, per idle connection the engine keeps its socket
//! (with a copy of the handshake's request head), a send queue, a
//! heartbeat task and, on WebSocket, a reader and a writer task whose
//! tungstenite writer keeps the size of its largest output. We set its
//! WebSocket read buffer to 512 bytes (requests are small; it grows on
//! demand to the frame limit); the send queue's first block of slots is
//! allocated up front. Our inbox is a deque that is empty (no allocation)
//! while nothing waits in it. That is about 28 KiB per connection, which
//! is why the direct path exists.
//!
//! # Origins
//!
//! A page on another site may connect only from an allowed origin
//! ([`AllowedOrigins`]): the edge's guard ([`crate::edge::guard`]) refuses
//! others with 403 before any route, so the engine never sees them (no
//! session is made). Here allowed ones get CORS headers, so a front end
//! served from its own origin (a Vite dev server on `localhost:5173`, say)
//! can use long-polling.

mod connection;
pub(crate) mod mapping;
mod websocket;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::Response;
use axum::routing::any;
use bytes::Bytes;
use engineioxide::config::EngineIoConfig;
use engineioxide::handler::EngineIoHandler;
use engineioxide::service::EngineIoService;
use engineioxide::{DisconnectReason, Socket, Str};
use socketioxide_core::Value;
use socketioxide_core::packet::{Packet, PacketData};
use socketioxide_core::parser::{Parse, ParseConfig, ParseError, ParserState};
use socketioxide_parser_common::CommonParser;
use tokio::sync::Notify;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::edge::origin::AllowedOrigins;
use crate::state::AppState;
use chat_core::sync::lock;

/// Where Socket.IO clients connect (their default `path`).
pub const PATH: &str = "/socket.io/";
/// Initial WebSocket read buffer per connection: requests are small.
const READ_BUFFER: usize = 512;
/// Requests a connection may have waiting for its task; more are refused
/// with `overloaded`. A long-polling client posts many at once.
const INBOX_LIMIT: usize = 256;
/// Binary attachments are refused, but read first (within limits) so the
/// refusal can name the event's ack id and the connection stays usable.
const MAX_ATTACHMENTS: usize = 8;
/// How long a browser may cache a CORS preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(3600);

/// The `/socket.io/` route, with its origin check and CORS headers.
pub fn router<S>(app: &Arc<AppState>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let config = EngineIoConfig::builder()
        .req_path(PATH)
        // A silent client is dropped within two heartbeats, as on `/ws`.
        .ping_interval(app.heartbeat)
        .ping_timeout(app.heartbeat)
        .max_buffer_size(app.hub.limits().outbound_queue)
        .max_payload(app.max_frame_bytes as u64)
        .ws_read_buffer_size(READ_BUFFER)
        .ws_max_message_size(app.max_frame_bytes)
        .ws_max_frame_size(app.max_frame_bytes)
        .build();
    let handler = Handler {
        app: app.clone(),
        parse: parse_config(app.max_frame_bytes),
    };
    let endpoint = Arc::new(Endpoint {
        engine: EngineIoService::with_config(Arc::new(handler), config),
        app: app.clone(),
    });
    let cors = cors(app.allowed_origins.clone());
    Router::new().route(
        PATH,
        any(move |request: Request| endpoint.clone().serve(request)).layer(cors),
    )
}

fn cors(origins: AllowedOrigins) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, request| {
            origins.allows(origin, request.headers.get(header::HOST))
        }))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(AllowHeaders::mirror_request())
        // socket.io-client's `withCredentials` (cookies, e.g. for sticky
        // sessions behind a load balancer).
        .allow_credentials(true)
        .max_age(PREFLIGHT_MAX_AGE)
}

struct Endpoint {
    engine: EngineIoService<Handler>,
    app: Arc<AppState>,
}

impl Endpoint {
    async fn serve(self: Arc<Self>, request: Request) -> Response {
        // A new session is refused while draining; an open one (a poll, a
        // post, its upgrade) is served until the drain closes it.
        if self.app.is_draining() && !has_session_id(request.uri()) {
            return crate::http::refused_while_draining();
        }
        if websocket::is_direct(&request) {
            return websocket::upgrade(&self.app, request);
        }
        match hyper::service::Service::call(&self.engine, detach_head(request)).await {
            Ok(response) => response.map(Body::new),
            Err(never) => match never {},
        }
    }
}

/// Whether the request names an Engine.IO session (`sid=`).
fn has_session_id(uri: &Uri) -> bool {
    uri.query()
        .is_some_and(|query| query.split('&').any(|pair| pair.starts_with("sid=")))
}

/// Headers the engine or we read after the request itself is done: the
/// WebSocket handshake's, the polling body's type, and a bearer token.
const KEPT_HEADERS: [header::HeaderName; 6] = [
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::CONTENT_TYPE,
    header::AUTHORIZATION,
];

/// The engine keeps a socket's handshake request head for the socket's
/// whole life. hyper parses a head without copying: its URI and header
/// values are slices of the connection's read buffer, and keeping any of
/// them keeps all of it (8–16 KiB) alive. So the engine gets copies, and
/// only of the headers anyone reads.
fn detach_head(request: Request) -> Request {
    let (mut parts, body) = request.into_parts();
    let mut headers = HeaderMap::with_capacity(KEPT_HEADERS.len());
    for name in KEPT_HEADERS {
        for value in parts.headers.get_all(&name) {
            if let Ok(mut copy) = HeaderValue::from_bytes(value.as_bytes()) {
                copy.set_sensitive(value.is_sensitive());
                headers.append(name.clone(), copy);
            }
        }
    }
    parts.headers = headers;
    if let Ok(uri) = parts.uri.to_string().parse::<Uri>() {
        parts.uri = uri;
    }
    Request::from_parts(parts, body)
}

/// Receives what the engine reads, on the engine's reading task.
struct Handler {
    app: Arc<AppState>,
    parse: ParseConfig,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("socketio::Handler").finish_non_exhaustive()
    }
}

type EngineSocket = Socket<SocketData>;

impl EngineIoHandler for Handler {
    type Data = SocketData;

    fn on_connect(self: Arc<Self>, socket: Arc<EngineSocket>) {
        // Counted until the connection ends, so shutdown can wait for it.
        let tracked = self.app.connections.token();
        let app = self.app.clone();
        tokio::spawn(async move {
            let _tracked = tracked;
            connection::run(app, socket).await;
        });
    }

    fn on_disconnect(&self, socket: Arc<EngineSocket>, reason: DisconnectReason) {
        tracing::debug!(?reason, "Socket.IO transport closed");
        socket.data.inbox.close();
    }

    fn on_message(self: &Arc<Self>, message: Str, socket: Arc<EngineSocket>) {
        let decoded = CommonParser.decode_str(&self.parse, &socket.data.parser, message);
        self.receive(&socket, decoded);
    }

    fn on_binary(self: &Arc<Self>, data: Bytes, socket: Arc<EngineSocket>) {
        let decoded = CommonParser.decode_bin(&self.parse, &socket.data.parser, data);
        self.receive(&socket, decoded);
    }
}

impl Handler {
    fn receive(&self, socket: &EngineSocket, decoded: Result<Packet, ParseError>) {
        let incoming = match classify(decoded) {
            Classified::Incoming(incoming) => incoming,
            Classified::Ignored => return,
            Classified::Answer(packet) => {
                let _ = socket.emit(packet);
                return;
            }
            Classified::Malformed => {
                socket.close(DisconnectReason::PacketParsingError);
                return;
            }
        };
        if let Err(refused) = socket.data.inbox.push(incoming) {
            match refused {
                Incoming::Event { ack, .. } | Incoming::Binary { ack } => {
                    let _ = socket.emit(connection::overloaded(ack));
                }
                Incoming::Connect(_) | Incoming::Disconnect => {
                    socket.close(DisconnectReason::TransportClose);
                }
            }
        }
    }
}

/// What a decoded Socket.IO packet means to a connection, whichever
/// Engine.IO path read it.
pub(crate) enum Classified {
    /// For the connection's task.
    Incoming(Incoming),
    /// Nothing to do: a partial binary packet, a packet we never act on.
    Ignored,
    /// Answered at once, without the connection's task: a `CONNECT` to a
    /// namespace we do not serve.
    Answer(Str),
    /// Not Socket.IO framing: a protocol error, like a malformed WebSocket
    /// frame on `/ws`; the transport is closed.
    Malformed,
}

/// How the Socket.IO codec reads a client's packets on both paths: binary
/// attachments within the frame limit and [`MAX_ATTACHMENTS`].
pub(crate) fn parse_config(max_frame_bytes: usize) -> ParseConfig {
    ParseConfig {
        max_incoming_binary_buf_size: max_frame_bytes,
        max_incoming_binaries: MAX_ATTACHMENTS,
        ..ParseConfig::default()
    }
}

pub(crate) fn classify(decoded: Result<Packet, ParseError>) -> Classified {
    let packet = match decoded {
        Ok(packet) => packet,
        Err(ParseError::NeedsMoreBinaryData) => return Classified::Ignored,
        Err(error) => {
            tracing::debug!(%error, "malformed Socket.IO packet; closing");
            return Classified::Malformed;
        }
    };
    if packet.ns.as_str() != mapping::NAMESPACE {
        return match packet.inner {
            PacketData::Connect(_) => {
                Classified::Answer(mapping::connect_error_in(&packet.ns, "Invalid namespace"))
            }
            _ => Classified::Ignored,
        };
    }
    Classified::Incoming(match packet.inner {
        PacketData::Connect(auth) => Incoming::Connect(auth),
        PacketData::Event(Value::Str(data, None), ack) => Incoming::Event { data, ack },
        PacketData::Event(_, ack) | PacketData::BinaryEvent(_, ack) => Incoming::Binary { ack },
        PacketData::Disconnect => Incoming::Disconnect,
        // We never ask clients for acks; clients send no errors.
        PacketData::EventAck(..) | PacketData::BinaryAck(..) | PacketData::ConnectError(_) => {
            return Classified::Ignored;
        }
    })
}

/// What the engine keeps for each socket on our behalf.
#[derive(Debug, Default)]
pub struct SocketData {
    /// Partial binary packets being read (to be refused whole).
    parser: ParserState,
    inbox: Inbox,
}

/// A Socket.IO packet for the connection's task.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// Namespace `CONNECT`, with the client's `auth` payload.
    Connect(Option<Value>),
    /// An event: its `["name", args…]` array and its ack id, if any.
    Event { data: Str, ack: Option<i64> },
    /// An event with binary attachments, which the chat does not take.
    Binary { ack: Option<i64> },
    /// Namespace `DISCONNECT`: the client is leaving.
    Disconnect,
}

/// Packets read but not yet handled: a bounded queue from the engine's
/// reading task (which must not wait) to the connection's task. A deque
/// behind a lock rather than a channel, because a channel allocates its
/// first block of slots up front and most connections are idle.
#[derive(Debug, Default)]
struct Inbox {
    queue: Mutex<Queue>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct Queue {
    packets: VecDeque<Incoming>,
    closed: bool,
}

impl Inbox {
    /// Queues a packet; gives it back when the inbox is full or closed.
    fn push(&self, incoming: Incoming) -> Result<(), Incoming> {
        let mut queue = lock(&self.queue);
        if queue.closed || queue.packets.len() >= INBOX_LIMIT {
            return Err(incoming);
        }
        queue.packets.push_back(incoming);
        drop(queue);
        self.ready.notify_one();
        Ok(())
    }

    /// The next packet; `None` once the inbox is closed and empty.
    async fn next(&self) -> Option<Incoming> {
        loop {
            {
                let mut queue = lock(&self.queue);
                if let Some(incoming) = queue.packets.pop_front() {
                    if queue.packets.is_empty() {
                        // Give back what a burst grew.
                        queue.packets = VecDeque::new();
                    }
                    return Some(incoming);
                }
                if queue.closed {
                    return None;
                }
            }
            // A push between the check and here leaves a permit behind, so
            // this returns at once: no wake-up is lost.
            self.ready.notified().await;
        }
    }

    /// Refuses further packets and drops waiting ones.
    fn close(&self) {
        let mut queue = lock(&self.queue);
        queue.closed = true;
        queue.packets = VecDeque::new();
        drop(queue);
        self.ready.notify_one();
    }
}
