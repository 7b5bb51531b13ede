//! The native protocol on `/ws`: JSON text frames over WebSocket.
//!
//! One task per connection owns the socket and waits on four things: the
//! reason to hang up (server shutdown, too slow), the socket (frames from
//! the client, and progress on queued output), items from the connection's
//! outbox, and the heartbeat timer. Each has a waker of its own, so a
//! wake-up polls only what fired ([`Connection`]): a delivery costs an
//! outbox read and a write, not a poll of every source. Everything it does
//! to the chat is a call into its [`Session`](crate::core::Session); this
//! module only speaks WebSocket.
//!
//! Memory per idle connection is what limits how many a node holds, so
//! buffers are sized for many mostly-idle connections: a 512-byte read
//! buffer (grown on demand up to the frame limit), and an output buffer
//! that exists only while there is something to write ([`socket`]). Under
//! load, everything queued in the outbox is formatted into one buffer and
//! written with one syscall.

pub mod echo;
pub(crate) mod handshake;
pub(crate) mod socket;

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chat_protocol::{CloseCode, parse_request, validate};
use futures_util::task::AtomicWaker;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error, Message};

use crate::auth;
use crate::core::{Dropped, Encoding, Identity, Outbound, OutboxReceiver};
use crate::server::AppState;
use crate::transport::per_ip;
use socket::{SocketEvent, WsSocket};

/// Initial read buffer per connection: client frames are small requests.
const READ_BUFFER: usize = 512;
/// Output queued before the connection stops taking items from its outbox
/// until the socket drains: a client that does not read fills its outbox and
/// is dropped as too slow, instead of growing this buffer.
const OUTPUT_HIGH_WATER: usize = 64 * 1024;
/// Most outbox items formatted per wake-up, so one busy connection cannot
/// keep its task from reading for long.
const MAX_BATCH: usize = 256;
/// How long the final frames may take to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The upgrade URL's query. Not `Debug`: it may hold a token, which must
/// never reach a log.
#[derive(Deserialize)]
pub struct ConnectParams {
    name: Option<String>,
    token: Option<String>,
}

/// `GET /ws`: checks the query and the credentials, and upgrades.
pub async fn upgrade(
    State(app): State<Arc<AppState>>,
    Query(params): Query<ConnectParams>,
    mut request: Request,
) -> Response {
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
    // Held for the connection's life: `--max-connections-per-ip`.
    let slot = match app.per_ip.acquire(per_ip::peer_ip(request.extensions())) {
        Ok(slot) => slot,
        Err(max) => return per_ip::refused(max),
    };
    let (response, on_upgrade) = match handshake::accept(&mut request) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(app.max_frame_bytes))
        .max_frame_size(Some(app.max_frame_bytes));
    let tracked = app.connections.token();
    tokio::spawn(async move {
        // Counted until the connection ends, so shutdown can wait for it.
        let _tracked = tracked;
        let _slot = slot;
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket = WsSocket::new(TokioIo::new(upgraded), config);
                serve(app, socket, identity).await;
            }
            Err(error) => tracing::debug!(%error, "WebSocket upgrade did not complete"),
        }
    });
    response
}

/// Why the server ends a connection, when it is the one ending it.
pub(crate) type Hangup = Option<(u16, &'static str)>;

fn hangup(code: CloseCode, reason: &'static str) -> Hangup {
    Some((code.code(), reason))
}

const TOO_SLOW: &str = "too slow for this room's traffic; resume with join and since";
/// Close reasons for `Dropped::Kicked` (1008) and `Dropped::Idle` (1000).
pub(crate) const KICKED: &str = "disconnected by the server's operator";
pub(crate) const IDLE: &str = "idle timeout";

async fn serve<S>(app: Arc<AppState>, socket: WsSocket<S>, identity: Identity)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let heartbeat = app.heartbeat;
    let (mut session, outbox) = app.hub.connect(identity);
    let mut connection = Connection::new(socket, outbox, heartbeat);
    connection
        .socket
        .queue_text(session.welcome(heartbeat).to_json().as_bytes());

    let hangup = loop {
        match poll_fn(|cx| connection.poll_next(cx)).await {
            Next::Message(Message::Text(text)) => match parse_request(text.as_str()) {
                Ok(envelope) => {
                    // Boxed: the handler's state would otherwise sit in
                    // every idle connection's task, used or not.
                    Box::pin(session.handle(envelope)).await
                }
                Err(error) => session.reject(error),
            },
            Next::Message(Message::Binary(_)) => {
                break hangup(
                    CloseCode::Unsupported,
                    "binary frames are not accepted; send JSON text",
                );
            }
            Next::Message(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Next::Message(Message::Close(_)) => break None,
            Next::Failed(e) => break hangup_for(e),
            Next::Dropped(Dropped::SlowConsumer) => {
                break hangup(CloseCode::Overloaded, TOO_SLOW);
            }
            Next::Dropped(Dropped::Shutdown) => {
                // Acks of sends committed during shutdown are queued: let
                // them out before saying goodbye.
                connection.queue_all_queued();
                break hangup(CloseCode::GoingAway, "server shutting down");
            }
            Next::Dropped(Dropped::Kicked) => break hangup(CloseCode::Policy, KICKED),
            Next::Dropped(Dropped::Idle) => break hangup(CloseCode::Normal, IDLE),
            Next::HeartbeatTimeout => break hangup(CloseCode::GoingAway, "heartbeat timeout"),
        }
    };
    // Leave rooms (and announce it) before the goodbye, which may be slow.
    drop(session);
    let mut socket = connection.socket;
    // Our close frame, or the reply to the client's.
    socket.queue_close(hangup);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, poll_fn(|cx| socket.poll_flush(cx))).await;
}

/// What a connection's task must act on.
enum Next {
    Message(Message),
    Failed(Error),
    Dropped(Dropped),
    HeartbeatTimeout,
}

/// One connection's socket, outbox and heartbeat, and which of them woke
/// its task.
///
/// Under fan-out a connection wakes once per delivery, and polling every
/// source on every wake-up (the socket's read side through tungstenite and
/// hyper's upgrade wrappers, the outbox, the heartbeat timer, each
/// re-registering its waker) cost more than the delivery itself. So each
/// source gets its own waker, which records that it fired before waking the
/// task, and a wake-up polls only the sources that fired, plus the write
/// side when there is output.
struct Connection<S> {
    socket: WsSocket<S>,
    outbox: OutboxReceiver,
    ticks: Interval,
    heartbeat: Duration,
    last_heard: Instant,
    wakeups: Arc<Wakeups>,
    socket_waker: Waker,
    outbox_waker: Waker,
    timer_waker: Waker,
    /// The outbox was left unread because output reached the high-water
    /// mark; it is read again once the socket drains.
    outbox_paused: bool,
}

impl<S> Connection<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    fn new(socket: WsSocket<S>, outbox: OutboxReceiver, heartbeat: Duration) -> Self {
        let mut ticks = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Every source is polled once first, which registers its waker.
        let wakeups = Arc::new(Wakeups {
            fired: AtomicU8::new(SOCKET | OUTBOX | TIMER),
            task: AtomicWaker::new(),
        });
        Connection {
            socket,
            outbox,
            ticks,
            heartbeat,
            last_heard: Instant::now(),
            socket_waker: source_waker::<SOCKET>(&wakeups),
            outbox_waker: source_waker::<OUTBOX>(&wakeups),
            timer_waker: source_waker::<TIMER>(&wakeups),
            wakeups,
            outbox_paused: false,
        }
    }

    /// Moves output from the outbox to the socket and reads from it until
    /// there is something for the task to act on.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Next> {
        // Registered before the sources are looked at, so one that fires in
        // between still wakes the task.
        self.wakeups.task.register(cx.waker());
        if let Poll::Ready(reason) = self.outbox.dropped.poll(cx) {
            return Poll::Ready(Next::Dropped(reason));
        }
        let fired = self.wakeups.fired.swap(0, Ordering::AcqRel);
        if fired & TIMER != 0
            && let Some(next) = self.poll_heartbeat()
        {
            return Poll::Ready(next);
        }
        if fired & OUTBOX != 0 || self.outbox_paused {
            self.take_outbox();
        }
        loop {
            let was_paused = self.outbox_paused;
            if fired & SOCKET != 0 {
                let mut socket_cx = Context::from_waker(&self.socket_waker);
                match self.socket.poll_io(&mut socket_cx, OUTPUT_HIGH_WATER) {
                    Poll::Ready(Ok(SocketEvent::Message(message))) => {
                        self.last_heard = Instant::now();
                        // More may wait in the read buffer: look again
                        // next time without waiting for the socket.
                        self.wakeups.fired.fetch_or(SOCKET, Ordering::AcqRel);
                        return Poll::Ready(Next::Message(message));
                    }
                    Poll::Ready(Ok(SocketEvent::Drained)) | Poll::Pending => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Next::Failed(e)),
                }
            } else if self.socket.pending() > 0 {
                let mut socket_cx = Context::from_waker(&self.socket_waker);
                if let Poll::Ready(Err(e)) = self.socket.poll_flush(&mut socket_cx) {
                    return Poll::Ready(Next::Failed(Error::Io(e)));
                }
            }
            // Output that drained below the high-water mark lets the
            // outbox be read again, and what it yields must be written.
            if !(was_paused && self.socket.pending() < OUTPUT_HIGH_WATER) {
                return Poll::Pending;
            }
            self.take_outbox();
        }
    }

    /// Formats what the outbox holds into the socket's output, up to the
    /// high-water mark and a batch per wake-up.
    fn take_outbox(&mut self) {
        let mut outbox_cx = Context::from_waker(&self.outbox_waker);
        for _ in 0..MAX_BATCH {
            if self.socket.pending() >= OUTPUT_HIGH_WATER {
                self.outbox_paused = true;
                return;
            }
            match self.outbox.rx.poll_recv(&mut outbox_cx) {
                Poll::Ready(Some(item)) => queue(&mut self.socket, item),
                Poll::Ready(None) | Poll::Pending => {
                    self.outbox_paused = false;
                    return;
                }
            }
        }
        // A full batch: come back for the rest after writing it.
        self.outbox_paused = false;
        self.wakeups.fire(OUTBOX);
    }

    /// Everything queued now, regardless of limits: the last output before
    /// a shutdown.
    fn queue_all_queued(&mut self) {
        while let Ok(item) = self.outbox.rx.try_recv() {
            queue(&mut self.socket, item);
        }
    }

    /// Sends the heartbeat ping when it is due; ends a connection that has
    /// been silent for two intervals.
    fn poll_heartbeat(&mut self) -> Option<Next> {
        let mut timer_cx = Context::from_waker(&self.timer_waker);
        while self.ticks.poll_tick(&mut timer_cx).is_ready() {
            if self.last_heard.elapsed() >= self.heartbeat * 2 {
                return Some(Next::HeartbeatTimeout);
            }
            if let Err(e) = self.socket.queue_ping() {
                return Some(Next::Failed(e));
            }
        }
        None
    }
}

/// Sources of a connection's wake-ups, as bits of [`Wakeups::fired`].
const SOCKET: u8 = 1;
const OUTBOX: u8 = 2;
const TIMER: u8 = 4;

/// The sources that fired since the connection's task last looked, and the
/// task to wake.
struct Wakeups {
    fired: AtomicU8,
    task: AtomicWaker,
}

impl Wakeups {
    fn fire(&self, source: u8) {
        self.fired.fetch_or(source, Ordering::AcqRel);
        self.task.wake();
    }
}

/// The waker a source is given: it records the source, then wakes the task.
///
/// All three of a connection's source wakers share its one [`Wakeups`]
/// allocation and differ only in their vtable, which names the source:
/// separate `Arc`s per source (`std::task::Wake`) cost about 300 bytes per
/// connection, 5% of an idle connection's memory.
fn source_waker<const SOURCE: u8>(wakeups: &Arc<Wakeups>) -> Waker {
    let data = Arc::into_raw(wakeups.clone()).cast::<()>();
    // SAFETY: `data` is an `Arc<Wakeups>` reference turned into a raw
    // pointer, which is what every function of the vtable expects.
    unsafe { Waker::from_raw(RawWaker::new(data, vtable::<SOURCE>())) }
}

fn vtable<const SOURCE: u8>() -> &'static RawWakerVTable {
    match SOURCE {
        SOCKET => &SOCKET_WAKER,
        OUTBOX => &OUTBOX_WAKER,
        _ => &TIMER_WAKER,
    }
}

static SOCKET_WAKER: RawWakerVTable = RawWakerVTable::new(
    clone_waker::<SOCKET>,
    wake_waker::<SOCKET>,
    wake_waker_by_ref::<SOCKET>,
    drop_waker,
);
static OUTBOX_WAKER: RawWakerVTable = RawWakerVTable::new(
    clone_waker::<OUTBOX>,
    wake_waker::<OUTBOX>,
    wake_waker_by_ref::<OUTBOX>,
    drop_waker,
);
static TIMER_WAKER: RawWakerVTable = RawWakerVTable::new(
    clone_waker::<TIMER>,
    wake_waker::<TIMER>,
    wake_waker_by_ref::<TIMER>,
    drop_waker,
);

// SAFETY (all four): `data` comes from `Arc::into_raw` of an `Arc<Wakeups>`
// in `source_waker` or `clone_waker`, and each waker owns one reference.
unsafe fn clone_waker<const SOURCE: u8>(data: *const ()) -> RawWaker {
    unsafe { Arc::increment_strong_count(data.cast::<Wakeups>()) };
    RawWaker::new(data, vtable::<SOURCE>())
}

unsafe fn wake_waker<const SOURCE: u8>(data: *const ()) {
    let wakeups = unsafe { Arc::from_raw(data.cast::<Wakeups>()) };
    wakeups.fire(SOURCE);
}

unsafe fn wake_waker_by_ref<const SOURCE: u8>(data: *const ()) {
    let wakeups = unsafe { &*data.cast::<Wakeups>() };
    wakeups.fire(SOURCE);
}

unsafe fn drop_waker(data: *const ()) {
    drop(unsafe { Arc::from_raw(data.cast::<Wakeups>()) });
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

/// Maps a read error to the close code RFC 6455 and the contract give it;
/// `None` when the connection is simply gone.
pub(crate) fn hangup_for(error: Error) -> Hangup {
    use tungstenite::error::CapacityError;
    match error {
        Error::Capacity(CapacityError::MessageTooLong { .. }) => {
            hangup(CloseCode::TooBig, "frame too big")
        }
        Error::Utf8(_) => hangup(CloseCode::InvalidPayload, "text frame is not valid UTF-8"),
        Error::Protocol(_) => hangup(CloseCode::ProtocolError, "WebSocket protocol error"),
        _ => None,
    }
}
