//! What the client reports: replies to requests, and the event stream.
//!
//! Replies ([`Joined`], [`Ack`], [`History`], [`SearchResults`], and the
//! protocol's [`ReadBody`], [`RoomSummary`](chat_protocol::RoomSummary) and
//! [`DirectoryEntry`](chat_protocol::DirectoryEntry)) are returned by the
//! request methods of [`Client`](crate::Client). Everything
//! the server pushes, plus the client's own connection changes, arrives on
//! [`Events`] in the order it happened.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use chat_protocol::{Change, Member, Message, PresenceEvent, ReadBody, RoomState, User};
use futures_util::Stream;
use tokio::sync::mpsc;

/// One connection's identity, from the server's `welcome` frame.
///
/// In anonymous mode every connection is a new user unless it presents a
/// guest credential: the client does so on every reconnect once a
/// `welcome` handed one out ([`Session::guest_token`]), so the user id
/// stays the same when the server issues them (servers that do not leave
/// the id to change on reconnect; the name stays the one asked for).
/// Compare a message's `from.id` with the current session's user to
/// recognise your own messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The server's session id (`s_…`).
    pub id: String,
    /// Who the server says we are.
    pub user: User,
    /// How often the server pings; the client declares the server dead when
    /// nothing arrives for two of these.
    pub heartbeat: Duration,
    /// For a guest (a client without a token): the credential that makes a
    /// later connection this same user, the latest the server handed out
    /// (or, when this connection's `welcome` had none, the one it came
    /// with). The client reconnects with it by itself (and, should the
    /// server refuse it, as a new guest: compare `user.id`); keep it (it is
    /// a secret) and pass it to
    /// [`ClientBuilder::guest_token`](crate::ClientBuilder::guest_token)
    /// to be this user again in a later run. `None` with a token, or from
    /// a server that issues none.
    pub guest_token: Option<String>,
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
    /// The room's pinned messages as of `seq`, in their current state, the
    /// earliest pinned first. Later pins and unpins arrive as
    /// [`Event::Change`]s.
    pub pins: Vec<Message>,
    /// Our read marker in the room: everything up to this `seq` was read
    /// (moved by [`Client::read`](crate::Client::read)). 0 from a server
    /// without read markers.
    pub last_read: u64,
    /// Messages after the marker, not deleted, from others.
    pub unread: u64,
    /// Those of them that mention us.
    pub unread_mentions: u64,
}

impl Joined {
    /// The room as this reply shows it: its pins and recent messages, to
    /// which the room's later [`Event::Message`]s and [`Event::Change`]s
    /// are then applied ([`Event::apply_to`]). After
    /// [`Client::join_since`](crate::Client::join_since), the messages and
    /// changes after `since` come as events, and applying them converges
    /// on the same state.
    pub fn room_state(&self) -> RoomState {
        let mut state = RoomState {
            pins: self.pins.clone(),
            ..RoomState::default()
        };
        for message in &self.recent {
            state.apply_message(message.clone());
        }
        state.last_seq = state.last_seq.max(self.seq);
        state
    }
}

/// The server's confirmation that a message, or a change to one (an edit,
/// a deletion, a reaction, a pin), is durably stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub room: String,
    /// The entry's idempotency id: the client's, or the one the server
    /// generated.
    pub id: String,
    /// The entry's own place in the room: for a change, its `seq`, not that
    /// of the message it changes.
    pub seq: u64,
    /// Server time of the commit, milliseconds since the Unix epoch (UTC).
    pub ts: i64,
    /// True when this `id` had been stored before: nothing new was stored or
    /// broadcast, and the fields are those of the original. Besides your own
    /// retries, this happens when the client re-sent a request after a
    /// reconnect because the first attempt's ack was lost. For a reaction
    /// the user already has, or a pin already in place, the ack is that of
    /// the entry that made it so, flagged the same way.
    pub duplicate: bool,
}

/// One page of a room's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub room: String,
    /// The page's messages, each in its current state (edits, deletions and
    /// reactions already applied).
    pub messages: Vec<Message>,
    /// For a page after a `seq` ([`HistoryQuery::after`](crate::HistoryQuery::after)):
    /// the changes in the page's range, oldest first, to apply after
    /// `messages` to the messages held from before the page. Empty for
    /// pages before a `seq`, whose messages show every change.
    pub events: Vec<Change>,
    /// More messages exist beyond this page in the direction paged
    /// (older for `before`/latest, newer for `after`).
    pub more: bool,
}

/// One page of a [`Client::search`](crate::Client::search), newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResults {
    /// The query, as the server echoed it.
    pub query: String,
    /// The room searched; `None` when every readable room was.
    pub room: Option<String>,
    /// The matching messages, newest first, each in its current state: an
    /// edited message is found by its new text (and shows it), a deleted
    /// one is never found.
    pub results: Vec<Message>,
    /// Where the next page starts: pass it as
    /// [`Search::cursor`](crate::Search::cursor). `None` on the last page.
    pub next: Option<u64>,
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
/// A room's sequence holds messages and changes to them, numbered by one
/// `seq`. Per room, [`Event::Message`]s and [`Event::Change`]s arrive in
/// `seq` order with no gaps and no repeats, across reconnects: the client
/// remembers the last `seq` it delivered for each joined room (a change's
/// as well as a message's) and resumes from there.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A message in a joined room (our own included). Messages replayed
    /// after a resume come in their current state: edits made since show
    /// in the message and again in the [`Event::Change`]s that follow it.
    Message(Message),
    /// A change to a message of a joined room (ours included): an edit, a
    /// deletion, a reaction added or taken back, a pin or unpin. Its own
    /// `seq` ([`Change::seq`]) places it among the room's messages; its
    /// `target` is the message it changes. Apply it to your view of the
    /// room with [`Event::apply_to`] (or [`RoomState::apply_change`]).
    Change(Change),
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
    /// [`Event::Message`]s and [`Event::Change`]s.
    Reconnected(Session),
    /// Our read marker moved in `room` on another connection of ours (the
    /// reply to our own [`Client::read`](crate::Client::read) is returned
    /// by it instead). Unread counts are the server's, exact as of the
    /// move. It may be about a room this client has not joined.
    Read(ReadBody),
    /// Someone opened a direct-message room with us (or we did, on another
    /// connection): `with` is the other person. The room is not joined by
    /// this: [`Client::join`](crate::Client::join) it (or
    /// [`Client::dm`](crate::Client::dm) `with.id`) to follow it.
    RoomAdded { room: String, with: User },
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
    /// The server took us out of a room we had joined: an operator banned
    /// us from it (`code` `forbidden`). The room is no longer joined, and
    /// joining it again is refused until the ban is lifted.
    RoomRemoved {
        room: String,
        code: chat_protocol::ErrorCode,
        message: String,
    },
    /// The client stopped for good; this is the last event.
    Closed(CloseReason),
}

impl Event {
    /// The room the event is about, for those about one.
    pub fn room(&self) -> Option<&str> {
        match self {
            Event::Message(message) => Some(&message.room),
            Event::Change(change) => Some(change.room()),
            Event::Read(read) => Some(&read.room),
            Event::Presence { room, .. }
            | Event::Typing { room, .. }
            | Event::RoomAdded { room, .. }
            | Event::Rejoined { room, .. }
            | Event::RejoinFailed { room, .. }
            | Event::RoomRemoved { room, .. } => Some(room),
            Event::Reconnecting { .. } | Event::Reconnected(_) | Event::Closed(_) => None,
        }
    }

    /// Applies a message or change to `state`, the caller's view of the
    /// event's room (see [`Joined::room_state`]); other events leave it as
    /// it is. Returns whether the event was applied. A client that applies
    /// every event of a room holds the same state, across reconnects, as
    /// one that never lost its connection.
    pub fn apply_to(&self, state: &mut RoomState) -> bool {
        match self {
            Event::Message(message) => state.apply_message(message.clone()),
            Event::Change(change) => state.apply_change(change),
            _ => return false,
        }
        true
    }
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
