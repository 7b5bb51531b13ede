//! How a WebSocket connection ends, whichever protocol it spoke.
//!
//! Every close is a handshake: our close frame, then reading (and
//! ignoring) what the client still sends until its close frame, then the
//! socket is closed. Closing with unread input would reset the connection
//! and drop whatever the kernel had not sent yet, the close frame among it:
//! busy clients saw 1006 instead of 1001 at shutdown. A connection dropped
//! as too slow has its queued output discarded first, so that its 1013 is
//! not stuck behind the backlog that got it dropped.

use std::future::poll_fn;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tungstenite::Error;

use super::close::CloseReason;
use super::socket::WsSocket;

/// How long the last frames and the close handshake may take when the
/// connection ends for any reason but shutdown or slowness.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a connection dropped as too slow is kept for its close frame
/// to go out and be answered: the frame goes out once the client reads
/// what the kernel already holds for it.
const TOO_SLOW_GRACE: Duration = Duration::from_secs(2);

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
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limit = queue_goodbye(socket, ending);
    let handshake = poll_fn(|cx| socket.poll_close(cx));
    match limit {
        Some(limit) => {
            let _ = tokio::time::timeout(limit, handshake).await;
        }
        None => handshake.await,
    }
}

/// Queues the close frame `ending` calls for, after discarding what has
/// not started to go out when the connection is too slow; returns how
/// long the close handshake may take (`None`: no limit of its own).
pub(crate) fn queue_goodbye<S>(socket: &mut WsSocket<S>, ending: Ending) -> Option<Duration>
where
    S: AsyncRead + AsyncWrite + Unpin,
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
    limit
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
