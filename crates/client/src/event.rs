//! What the client reports: replies to requests, and the event stream.
//!
//! Replies ([`Joined`], [`Ack`], [`History`]) are returned by the request
//! methods of [`Client`](crate::Client). Everything the server pushes, plus
//! the client's own connection changes, arrives on [`Events`] in the order
//! it happened.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use chat_protocol::{Member, Message, PresenceEvent, User};
use futures_util::Stream;
use tokio::sync::mpsc;

/// One connection's identity, from the server's `welcome` frame.
///
/// In anonymous mode every connection is a new user, so after a reconnect
/// the user id changes (the name stays the one asked for). Compare a
/// message's `from.id` with the current session's user to recognise your own
/// messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The server's session id (`s_…`).
    pub id: String,
    /// Who the server says we are.
    pub user: User,
    /// How often the server pings; the client declares the server dead when
    /// nothing arrives for two of these.
    pub heartbeat: Duration,
}

/// The reply to a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub room: String,
    /// The room's latest sequence number when the join happened (0 for an
    /// empty room).
    pub seq: u64,
    /// Everyone in the room, us included.
    pub members: Vec<Member>,
    /// For [`Client::join`](crate::Client::join): the latest messages (up to
    /// 50, oldest first) for context. They are *not* repeated as events: the
    /// event stream starts after `seq`. Empty for
    /// [`Client::join_since`](crate::Client::join_since), whose backlog comes
    /// as events instead.
    pub recent: Vec<Message>,
}

/// The server's confirmation that a message is durably stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub room: String,
    /// The message id: the client's, or the one the server generated.
    pub id: String,
    /// The message's place in the room.
    pub seq: u64,
    /// Server time of the commit, milliseconds since the Unix epoch (UTC).
    pub ts: i64,
    /// True when this `id` had been stored before: nothing new was stored or
    /// broadcast, and the fields are those of the original. Besides your own
    /// retries, this happens when the client re-sent a message after a
    /// reconnect because the first attempt's ack was lost.
    pub duplicate: bool,
}

/// One page of a room's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub room: String,
    pub messages: Vec<Message>,
    /// More messages exist beyond this page in the direction paged
    /// (older for `before`/latest, newer for `after`).
    pub more: bool,
}

/// Why the client stopped for good.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// [`Client::close`](crate::Client::close) was called, or every
    /// [`Client`](crate::Client) handle was dropped.
    ByClient,
    /// A reconnect was refused at the upgrade (HTTP 401: the token expired
    /// or was revoked; 400: the name is invalid). Retrying would not help.
    Rejected { status: u16 },
    /// The server closed the connection with a code that says not to
    /// reconnect (1000 normal closure, 1008 policy).
    ServerClosed { code: u16, reason: String },
    /// The connection was lost and reconnecting is turned off
    /// ([`ClientBuilder::reconnect`](crate::ClientBuilder::reconnect)).
    Disconnected { reason: String },
    /// Reconnecting failed [`Backoff::max_attempts`](crate::Backoff) times
    /// in a row.
    GaveUp { attempts: u32, last_error: String },
}

/// Something that happened, in the order it happened.
///
/// Per room, [`Event::Message`]s arrive in `seq` order with no gaps and no
/// repeats, across reconnects: the client remembers the last `seq` it
/// delivered for each joined room and resumes from there.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A message in a joined room (our own included).
    Message(Message),
    /// A user's first connection entered the room, or their last one left.
    Presence {
        room: String,
        event: PresenceEvent,
        user: User,
    },
    /// Someone else is typing in the room (ephemeral, not stored).
    Typing { room: String, user: User },
    /// The connection was lost (`reason`); the next attempt starts after
    /// `delay`. Requests made meanwhile wait for the new connection (up to
    /// their timeout). `attempt` counts from 1 for each outage.
    Reconnecting {
        attempt: u32,
        delay: Duration,
        reason: String,
    },
    /// A new connection is open. Every joined room is being re-joined from
    /// its last delivered `seq`; what was missed follows as
    /// [`Event::Message`]s.
    Reconnected(Session),
    /// A room was re-joined after a reconnect; `members` is the room as it
    /// is now (presence changes during the outage were not seen).
    Rejoined { room: String, members: Vec<Member> },
    /// Re-joining a room after a reconnect was refused (for example the
    /// token no longer allows it). The room is no longer joined.
    RejoinFailed {
        room: String,
        code: chat_protocol::ErrorCode,
        message: String,
    },
    /// The client stopped for good; this is the last event.
    Closed(CloseReason),
}

/// The event stream of one client.
///
/// Receive with [`Events::recv`] or use it as a [`Stream`]. Events are
/// buffered without bound until read, so that a caller awaiting a reply never
/// deadlocks against unread events; a long-running program should keep
/// reading, or drop the `Events` to have events discarded.
#[derive(Debug)]
pub struct Events {
    pub(crate) rx: mpsc::UnboundedReceiver<Event>,
}

impl Events {
    /// The next event; `None` after [`Event::Closed`].
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}
