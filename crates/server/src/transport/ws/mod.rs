//! The native protocol on `/ws`: JSON text frames over WebSocket.
//!
//! One task per connection owns the socket and waits on four things: the
//! reason to hang up (server shutdown, too slow), the socket (frames from
//! the client, and progress on queued output), items from the connection's
//! outbox, and the heartbeat timer. Each has a waker of its own, so a
//! wake-up polls only what fired ([`pump`]): a delivery costs an outbox
//! read and a write, not a poll of every source. Everything it does
//! to the chat is a call into its [`Session`](chat_core::Session); this
//! module only speaks WebSocket.
//!
//! Memory per idle connection is what limits how many a node holds, so
//! buffers are sized for many mostly-idle connections: a 512-byte read
//! buffer (grown on demand up to the frame limit), and an output buffer
//! that exists only while there is something to write ([`socket`]). Under
//! load, everything queued in the outbox is formatted into one buffer and
//! written with one syscall.
//!
//! How a connection ends (`Ending`, `end`) is shared with Socket.IO's
//! WebSocket path. Every close is a handshake: our close frame, then
//! reading (and ignoring) what the client still sends until its close
//! frame, then the socket is closed. Closing with unread input would reset
//! the connection and drop whatever the kernel had not sent yet, the close
//! frame among it: busy clients saw 1006 instead of 1001 at shutdown. A
//! connection dropped as too slow has its queued output discarded first,
//! so that its 1013 is not stuck behind the backlog that got it dropped.

pub mod echo;
pub(crate) mod handshake;
pub(crate) mod pump;
pub(crate) mod socket;

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chat_protocol::{parse_request, validate};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error, Message};

use crate::auth;
use crate::state::AppState;
use crate::transport::close::CloseReason;
use crate::transport::query;
use chat_core::{Dropped, Encoder, Identity, Outbound, RoomEvent};
use pump::{Next, Pump};
use socket::WsSocket;

/// Initial read buffer per connection: client frames are small requests.
const READ_BUFFER: usize = 512;
/// How long the last frames and the close handshake may take when the
/// connection ends for any reason but shutdown or slowness.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a connection dropped as too slow is kept for its close frame
/// to go out and be answered: the frame goes out once the client reads
/// what the kernel already holds for it.
const TOO_SLOW_GRACE: Duration = Duration::from_secs(2);

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

/// A WebSocket connection once upgraded, as both transports serve it.
pub(crate) type UpgradedSocket = WsSocket<TokioIo<Upgraded>>;

/// Starts the task of a connection whose handshake was answered: once the
/// upgrade completes, `serve` runs on the socket, with `/ws`'s WebSocket
/// settings. The connection is counted until it ends, so shutdown can wait
/// for it.
pub(crate) fn spawn_connection<Serve, Served>(app: &AppState, on_upgrade: OnUpgrade, serve: Serve)
where
    Serve: FnOnce(UpgradedSocket) -> Served + Send + 'static,
    Served: Future<Output = ()> + Send,
{
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(app.max_frame_bytes))
        .max_frame_size(Some(app.max_frame_bytes));
    let tracked = app.connections.token();
    tokio::spawn(async move {
        let _tracked = tracked;
        match on_upgrade.await {
            Ok(upgraded) => serve(WsSocket::new(TokioIo::new(upgraded), config)).await,
            Err(error) => tracing::debug!(%error, "WebSocket upgrade did not complete"),
        }
    });
}

/// Why the server ends a connection, when it is the one ending it
/// (`None`: the connection is gone, or the client closed it).
pub(crate) type Hangup = Option<CloseReason>;

/// How a connection ends, once its task stops serving it.
#[derive(Debug)]
pub(crate) enum Ending {
    /// Whatever is queued, then our close frame (`Some`) or the reply to
    /// the client's (`None`); the close handshake gets [`CLOSE_TIMEOUT`].
    Close(Hangup),
    /// Dropped as too slow (1013). What is queued is stale by now and
    /// would only delay the close frame behind it: it is discarded, so the
    /// close frame is the first thing written once the kernel takes bytes
    /// again, and the client reads it right after what the kernel already
    /// held. The handshake gets [`TOO_SLOW_GRACE`].
    TooSlow,
    /// The server is shutting down (1001): after everything queued (acks of
    /// the last commits among it), a close handshake with no limit of its
    /// own. `Server::serve` waits for the connections up to
    /// `--shutdown-timeout-ms`, and the process exits then.
    Shutdown,
}

/// Says goodbye: queues the close frame `ending` calls for and runs the
/// close handshake ([`WsSocket::poll_close`]) within its time limit. The
/// socket is closed when the caller drops it, after this.
pub(crate) async fn end<S>(socket: &mut WsSocket<S>, ending: Ending)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (close, limit) = match ending {
        Ending::Close(hangup) => (hangup, Some(CLOSE_TIMEOUT)),
        Ending::TooSlow => {
            socket.discard_unsent();
            (Some(CloseReason::TooSlow), Some(TOO_SLOW_GRACE))
        }
        Ending::Shutdown => (Some(CloseReason::ShuttingDown), None),
    };
    socket.queue_close(close.map(CloseReason::frame));
    let handshake = poll_fn(|cx| socket.poll_close(cx));
    match limit {
        Some(limit) => {
            let _ = tokio::time::timeout(limit, handshake).await;
        }
        None => handshake.await,
    }
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

/// A room event as the native protocol's JSON text frame, encoded once
/// per event for every `/ws` member.
struct NativeFrame;

impl Encoder for NativeFrame {
    type Output = Bytes;

    fn encode(event: &RoomEvent) -> Bytes {
        Bytes::from(event.to_frame().to_json())
    }
}

fn queue<S>(socket: &mut WsSocket<S>, item: Outbound)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match item {
        Outbound::Event(event) => {
            let bytes = event.encoded::<NativeFrame>();
            socket.queue_text(&bytes);
        }
        Outbound::Reply(frame) => socket.queue_text(frame.to_json().as_bytes()),
    }
}

/// Maps a read error to the close code RFC 6455 and the contract give it;
/// `None` when the connection is simply gone.
pub(crate) fn hangup_for(error: Error) -> Hangup {
    use tungstenite::error::CapacityError;
    match error {
        Error::Capacity(CapacityError::MessageTooLong { .. }) => Some(CloseReason::FrameTooBig),
        Error::Utf8(_) => Some(CloseReason::InvalidUtf8),
        Error::Protocol(_) => Some(CloseReason::ProtocolError),
        _ => None,
    }
}
