//! `/ws`'s connection loop, with what it does with a message left to a
//! [`Handler`]: the chat session on `/ws` ([`super::Chat`]), the echo on
//! `/ws-echo` ([`super::echo`]). Both run this one loop, so every frame
//! the conformance suite sends through the echo takes the path a chat
//! frame takes: the reader, the pump, the outbox, the writer, the
//! heartbeat and the goodbye.
//!
//! The loop waits on the [`Pump`] and acts on what it yields: a text or
//! binary message goes to the handler, the client's close or a broken
//! connection ends it with the matching close code, the hang-up reasons
//! end it as [`Ending`]s, and every heartbeat interval sends a ping, or
//! ends a connection silent for two of them.

use std::future::{Future, poll_fn};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tungstenite::Message;
use tungstenite::protocol::frame::Utf8Bytes;

use crate::transport::websocket::pump::{Next, Outgoing, Pump};
use crate::transport::websocket::socket::WsSocket;
use crate::transport::websocket::{CloseReason, Ending, end, hangup_for};
use chat_core::Dropped;

/// What a connection on this loop does with the messages it reads, and how
/// its output becomes frames.
pub(crate) trait Handler {
    /// Where its output waits for the socket.
    type Outbox: Outgoing;

    /// A text message from the client.
    async fn text(&mut self, text: Utf8Bytes);

    /// A binary message from the client; `Err` closes the connection for
    /// that reason.
    fn binary(&mut self, data: Bytes) -> Result<(), CloseReason>;

    /// Formats one item of the outbox onto the socket.
    fn format<S>(socket: &mut WsSocket<S>, item: <Self::Outbox as Outgoing>::Item)
    where
        S: AsyncRead + AsyncWrite + Unpin;
}

/// Serves a connection until it ends, then drops `handler` and says
/// goodbye. A client silent for two `heartbeat`s is closed.
///
/// Not an `async fn`: the parts are moved into one `async move` block and
/// lent to [`serve_until_ending`], so every connection's task stores each
/// of them once. An `async fn` taking them by value keeps a second copy of
/// each argument it rebinds (rustc does not share their storage), which
/// cost every idle connection some 400 bytes.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would store its arguments twice, see above"
)]
pub(crate) fn run<S, H>(
    mut socket: WsSocket<S>,
    mut pump: Pump<H::Outbox>,
    mut handler: H,
    heartbeat: Duration,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    async move {
        let ending = serve_until_ending(&mut socket, &mut pump, &mut handler, heartbeat).await;
        // Leave rooms (and announce it) before the goodbye, which may be
        // slow.
        drop(handler);
        end(&mut socket, ending).await;
    }
}

/// The loop: waits on the pump and acts on what it yields, until the
/// connection must end, and says how.
async fn serve_until_ending<S, H>(
    socket: &mut WsSocket<S>,
    pump: &mut Pump<H::Outbox>,
    handler: &mut H,
    heartbeat: Duration,
) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut last_heard = Instant::now();
    loop {
        let next = poll_fn(|cx| pump.poll_next(cx, socket, &mut H::format)).await;
        if let Next::Message(_) = next {
            last_heard = Instant::now();
        }
        match next {
            Next::Message(Message::Text(text)) => handler.text(text).await,
            Next::Message(Message::Binary(data)) => {
                if let Err(reason) = handler.binary(data) {
                    return Ending::Close(Some(reason));
                }
            }
            Next::Message(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Next::Message(Message::Close(_)) => return Ending::Close(None),
            Next::Failed(e) => return Ending::Close(hangup_for(e)),
            Next::Dropped(Dropped::SlowConsumer) => return Ending::TooSlow,
            Next::Dropped(Dropped::Shutdown) => {
                // Acks of sends committed during shutdown are queued: let
                // them out before saying goodbye.
                pump.queue_all_queued(socket, &mut H::format);
                return Ending::Shutdown;
            }
            Next::Dropped(Dropped::Kicked) => {
                return Ending::Close(Some(CloseReason::Kicked));
            }
            Next::Dropped(Dropped::Idle) => return Ending::Close(Some(CloseReason::Idle)),
            Next::Dropped(Dropped::Banned) => {
                // The error saying why is queued: it goes out first.
                pump.queue_all_queued(socket, &mut H::format);
                return Ending::Close(Some(CloseReason::Banned));
            }
            Next::Tick => {
                if last_heard.elapsed() >= heartbeat * 2 {
                    return Ending::Close(Some(CloseReason::HeartbeatTimeout));
                }
                if socket.queue_ping().is_err() {
                    return Ending::Close(None);
                }
            }
        }
    }
}
