//! `/ws-echo`: echoes every text and binary message back, for WebSocket
//! conformance testing (Autobahn|Testsuite's `wstest -m fuzzingclient`,
//! `scripts/autobahn.sh`). Off unless the server runs with `--ws-echo`.
//!
//! It is `/ws` with an echo in place of the chat: the same opening
//! handshake, reader and writer
//! ([`websocket`](crate::transport::websocket)), the same connection loop
//! ([`connection::run`]) on the same pump, heartbeat and goodbye, and the
//! same close codes. An echo is queued in an outbox of its own
//! ([`Echoes`]) and goes out as a chat reply does: taken from the outbox
//! while output is below the pump's high-water mark, formatted into the
//! socket's buffer, written. What the suite finds here holds for `/ws`.
//!
//! The differences: messages may be as large as [`MAX_MESSAGE`] (the
//! suite sends up to 16 MiB); binary messages are echoed, not refused; no
//! chat state at all (no session, rooms or store), and so nothing that
//! hangs up but the connection's own slowness.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tungstenite::protocol::frame::Utf8Bytes;

use super::connection::{self, Handler};
use crate::state::AppState;
use crate::transport::websocket::pump::{Outgoing, Pump};
use crate::transport::websocket::socket::WsSocket;
use crate::transport::websocket::{CloseReason, handshake, serve_upgraded};
use chat_core::Dropped;

/// The largest message (and frame) echoed: Autobahn's 9.x cases send up to
/// 16 MiB.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Echoes waiting in the outbox, in bytes, past which the connection is
/// too slow (1013), as a chat connection is past its outbox capacity: a
/// client that writes and never reads cannot grow it further. One message
/// of the largest size fits.
const MAX_QUEUED: usize = MAX_MESSAGE;

/// `GET /ws-echo`: the handshake of `/ws`, then `/ws`'s loop with an echo.
pub async fn upgrade(State(app): State<Arc<AppState>>, mut request: Request) -> Response {
    let (response, on_upgrade) = match handshake::accept(&mut request) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    let heartbeat = app.heartbeat;
    // Not counted among the connections shutdown waits for: there is no
    // chat state to finish, and nothing to tell it the server is going.
    tokio::spawn(serve_upgraded(on_upgrade, MAX_MESSAGE, move |socket| {
        let (echo, echoes) = Echo::new();
        connection::run(socket, Pump::new(echoes, heartbeat), echo, heartbeat)
    }));
    response
}

/// A message to echo.
pub(crate) enum Echoed {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Echoed {
    fn len(&self) -> usize {
        match self {
            Echoed::Text(text) => text.len(),
            Echoed::Binary(data) => data.len(),
        }
    }
}

/// The handler: queues every message it reads to be echoed.
pub(crate) struct Echo {
    tx: mpsc::UnboundedSender<Echoed>,
    shared: Arc<Shared>,
}

/// The echo's outbox, which the pump takes from.
pub(crate) struct Echoes {
    rx: mpsc::UnboundedReceiver<Echoed>,
    shared: Arc<Shared>,
}

/// What the handler and the outbox both see.
#[derive(Default)]
struct Shared {
    /// Bytes queued and not yet taken by the pump.
    queued: AtomicUsize,
    /// Too slow: past [`MAX_QUEUED`], or past the pump's output limit.
    slow: AtomicBool,
}

impl Echo {
    pub(crate) fn new() -> (Echo, Echoes) {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        (
            Echo {
                tx,
                shared: shared.clone(),
            },
            Echoes { rx, shared },
        )
    }

    fn queue(&self, echoed: Echoed) {
        let len = echoed.len();
        if self.shared.queued.load(Ordering::Relaxed) + len > MAX_QUEUED {
            self.shared.slow.store(true, Ordering::Relaxed);
            return;
        }
        self.shared.queued.fetch_add(len, Ordering::Relaxed);
        // The receiver is the pump's, which lives as long as the
        // connection's task, the one calling: sending cannot fail.
        let _ = self.tx.send(echoed);
    }
}

impl Handler for Echo {
    type Outbox = Echoes;

    async fn text(&mut self, text: Utf8Bytes) {
        self.queue(Echoed::Text(text));
    }

    fn binary(&mut self, data: Bytes) -> Result<(), CloseReason> {
        self.queue(Echoed::Binary(data));
        Ok(())
    }

    fn format<S>(socket: &mut WsSocket<S>, item: Echoed)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match item {
            Echoed::Text(text) => socket.queue_text(text.as_bytes()),
            Echoed::Binary(data) => socket.queue_binary(&data),
        }
    }
}

impl Echoes {
    fn taken(&self, item: Option<Echoed>) -> Option<Echoed> {
        if let Some(echoed) = &item {
            self.shared
                .queued
                .fetch_sub(echoed.len(), Ordering::Relaxed);
        }
        item
    }
}

impl Outgoing for Echoes {
    type Item = Echoed;

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Echoed>> {
        let polled = self.rx.poll_recv(cx);
        polled.map(|item| self.taken(item))
    }

    fn try_item(&mut self) -> Option<Echoed> {
        let item = self.rx.try_recv().ok();
        self.taken(item)
    }

    fn poll_dropped(&self, _: &mut Context<'_>) -> Poll<Dropped> {
        // Only the connection's own task marks it slow, and it looks here
        // before waiting again: no waker to register.
        if self.shared.slow.load(Ordering::Relaxed) {
            Poll::Ready(Dropped::SlowConsumer)
        } else {
            Poll::Pending
        }
    }

    fn mark_slow(&self) {
        self.shared.slow.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn binary(len: usize) -> Echoed {
        Echoed::Binary(Bytes::from(vec![0; len]))
    }

    #[test]
    fn echoes_waiting_past_the_bound_make_the_connection_too_slow() {
        let mut cx = Context::from_waker(Waker::noop());
        let (echo, mut echoes) = Echo::new();
        echo.queue(binary(MAX_QUEUED - 1));
        echo.queue(Echoed::Text(Utf8Bytes::from_static("a")));
        assert!(echoes.poll_dropped(&mut cx).is_pending());
        // What the pump takes leaves room: the bound is on what waits.
        assert!(
            matches!(echoes.try_item(), Some(Echoed::Binary(data)) if data.len() == MAX_QUEUED - 1)
        );
        echo.queue(binary(MAX_QUEUED - 1));
        assert!(echoes.poll_dropped(&mut cx).is_pending());
        echo.queue(Echoed::Text(Utf8Bytes::from_static("b")));
        assert_eq!(
            echoes.poll_dropped(&mut cx),
            Poll::Ready(Dropped::SlowConsumer)
        );
        // The echo that did not fit is not queued: what waits is in order.
        assert!(matches!(echoes.try_item(), Some(Echoed::Text(text)) if text == "a"));
        assert!(matches!(echoes.try_item(), Some(Echoed::Binary(_))));
        assert!(echoes.try_item().is_none());
    }
}
