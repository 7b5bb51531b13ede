//! The background task behind a [`Client`](crate::Client): it owns the
//! WebSocket, matches replies to requests by `ref`, keeps each joined room's
//! [`Feed`], and reconnects.
//!
//! Everything that touches the connection happens in this one task, so
//! there are no locks: `Client` handles send [`Command`]s over a channel and
//! get their replies over oneshot channels; events go out over another
//! channel.
//!
//! Reconnecting, in order: every request still waiting for a reply stays
//! queued (each is idempotent: joins and leaves by nature, sends and changes
//! by their `id`, history, search and ping trivially); after backoff a new
//! connection opens; every joined room is re-joined with `since` = the last
//! `seq` delivered, message or change (history pages fill a
//! `complete: false` reply); then the queued requests are sent again in
//! their original order. The server handles one connection's requests in
//! order, so the re-sent writes find their rooms joined.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::time::Duration;

use chat_protocol::{
    AckBody, ErrorBody, ErrorCode, HistoryBody, JoinedBody, PongBody, PresenceBody, Ref,
    SearchResultsBody, ServerFrame, TypingBody,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::action::Action;
use crate::backoff::Backoff;
use crate::error::{Error, Result, describe};
use crate::event::{Ack, CloseReason, Event, History, Joined, SearchResults, Session};
use crate::feed::{Entry, Feed};
use crate::history::HistoryQuery;
use crate::search::Search;
use crate::wire::{Request, Target, Ws};

/// Most entries a catch-up history page asks for (the server's maximum).
const CATCH_UP_PAGE: u64 = 200;

/// How long closing waits for the server's side of the close handshake.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a request's outcome goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// What a [`Client`](crate::Client) asks of the connection task.
pub(crate) enum Command {
    Join {
        room: String,
        since: Option<u64>,
        reply: Reply<Joined>,
    },
    Leave {
        room: String,
        reply: Reply<()>,
    },
    /// A message or a change, under its idempotency `id`.
    Write {
        room: String,
        id: String,
        action: Action,
        reply: Reply<Ack>,
    },
    History {
        room: String,
        query: HistoryQuery,
        reply: Reply<History>,
    },
    Search {
        search: Search,
        reply: Reply<SearchResults>,
    },
    Typing {
        room: String,
    },
    Ping {
        reply: Reply<i64>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// Settings the task needs, fixed for its life.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) target: Target,
    pub(crate) connect_timeout: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) reconnect: bool,
    /// Declare the server dead after this long without a frame; `None`:
    /// two heartbeat intervals of the current session.
    pub(crate) dead_after: Option<Duration>,
}

/// A join sent, the user's or a re-join after reconnecting; the user's
/// waiters are kept on the [`Room`].
struct JoinSent {
    room: String,
    generation: u64,
    since: Option<u64>,
    rejoin: bool,
}

/// A request sent (or to be sent) and not yet answered, by `ref`.
enum Pending {
    Join(JoinSent),
    /// A history page that fills a hole in a room's feed.
    CatchUp {
        room: String,
        generation: u64,
        after: u64,
    },
    Leave {
        room: String,
        reply: Reply<()>,
    },
    Write {
        room: String,
        id: String,
        action: Action,
        reply: Reply<Ack>,
    },
    History {
        room: String,
        query: HistoryQuery,
        reply: Reply<History>,
    },
    /// A read like `History`: sent again as it is after a reconnect.
    Search {
        search: Search,
        reply: Reply<SearchResults>,
    },
    Ping {
        reply: Reply<i64>,
    },
}

impl Pending {
    fn frame(&self, reference: u64) -> String {
        match self {
            Pending::Join(JoinSent { room, since, .. }) => Request::Join {
                room,
                since: *since,
                reference,
            },
            Pending::CatchUp { room, after, .. } => Request::History {
                room,
                before: None,
                after: Some(*after),
                limit: Some(CATCH_UP_PAGE),
                reference,
            },
            Pending::Leave { room, .. } => Request::Leave { room, reference },
            Pending::Write {
                room, id, action, ..
            } => action.request(room, id, reference),
            Pending::History { room, query, .. } => Request::History {
                room,
                before: query.before,
                after: query.after,
                limit: query.limit,
                reference,
            },
            Pending::Search { search, .. } => Request::Search {
                query: &search.query,
                room: search.room.as_deref(),
                cursor: search.cursor,
                limit: search.limit,
                reference,
            },
            Pending::Ping { .. } => Request::Ping { reference },
        }
        .encode()
    }

    /// Whether the caller still waits for this request's outcome.
    fn wanted(&self) -> bool {
        match self {
            Pending::Join(_) | Pending::CatchUp { .. } => true,
            Pending::Leave { reply, .. } => !reply.is_closed(),
            Pending::Write { reply, .. } => !reply.is_closed(),
            Pending::History { reply, .. } => !reply.is_closed(),
            Pending::Search { reply, .. } => !reply.is_closed(),
            Pending::Ping { reply } => !reply.is_closed(),
        }
    }
}

/// A room the user wants to be in.
struct Room {
    /// Distinguishes this membership from an earlier one of the same name
    /// (join, leave, join again), so a late reply to the earlier one is not
    /// taken for this one.
    generation: u64,
    /// Delivery state; `None` until the first `joined` reply.
    feed: Option<Feed>,
    /// The `since` of the first join (`join_since`).
    first_since: Option<u64>,
    /// `join` calls waiting for the reply.
    waiters: Vec<Reply<Joined>>,
    /// A join for this room has been sent on the current connection.
    join_sent: bool,
}

/// Why a connection ended.
enum Stop {
    /// Reconnect (if enabled), with this reason for the event.
    Lost(String),
    /// Stop for good.
    Closed(CloseReason),
}

/// The connection task's state.
pub(crate) struct Connection {
    settings: Settings,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    session: watch::Sender<Session>,
    rooms: HashMap<String, Room>,
    /// Requests awaiting replies, by `ref`; ordered, so re-sending after a
    /// reconnect keeps the order they were made in.
    pending: BTreeMap<u64, Pending>,
    next_ref: u64,
    /// Frames to write on the current connection; empty while offline.
    outbox: Vec<String>,
    online: bool,
    /// `close` calls to answer once everything has stopped.
    closing: Vec<oneshot::Sender<()>>,
}

impl Connection {
    pub(crate) fn new(
        settings: Settings,
        commands: mpsc::UnboundedReceiver<Command>,
        events: mpsc::UnboundedSender<Event>,
        session: watch::Sender<Session>,
    ) -> Connection {
        Connection {
            settings,
            commands,
            events,
            session,
            rooms: HashMap::new(),
            pending: BTreeMap::new(),
            next_ref: 1,
            outbox: Vec::new(),
            online: false,
            closing: Vec::new(),
        }
    }

    /// Runs until the client is closed or the connection is lost for good.
    pub(crate) async fn run(mut self, mut ws: Ws) {
        let reason = loop {
            let why = match self.serve(&mut ws).await {
                Stop::Closed(reason) => break reason,
                Stop::Lost(why) => why,
            };
            self.connection_lost();
            if !self.settings.reconnect {
                break CloseReason::Disconnected { reason: why };
            }
            match self.reconnect(why).await {
                Ok(new) => ws = new,
                Err(reason) => break reason,
            }
            self.resume();
        };
        // Dropping the pending replies and waiters fails their calls with
        // `Error::Closed`.
        self.pending.clear();
        self.rooms.clear();
        self.emit(Event::Closed(reason));
        for done in self.closing.drain(..) {
            let _ = done.send(());
        }
    }

    fn emit(&self, event: Event) {
        // Nobody listening is fine: events are then discarded.
        let _ = self.events.send(event);
    }

    fn take_ref(&mut self) -> u64 {
        let reference = self.next_ref;
        self.next_ref += 1;
        reference
    }

    /// Records a request and, when online, queues its frame.
    fn request(&mut self, pending: Pending) {
        let reference = self.take_ref();
        if self.online {
            self.outbox.push(pending.frame(reference));
        }
        self.pending.insert(reference, pending);
    }

    /// Serves one connection until it ends.
    async fn serve(&mut self, ws: &mut Ws) -> Stop {
        self.online = true;
        let dead_after = self
            .settings
            .dead_after
            .unwrap_or_else(|| self.session.borrow().heartbeat * 2);
        let mut last_heard = Instant::now();
        let mut close_frame: Option<(u16, String)> = None;
        loop {
            // A server that stopped reading would block the write forever;
            // it is as dead as one that stopped talking.
            match tokio::time::timeout(dead_after, self.flush(ws)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Stop::Lost(format!("write failed: {error}")),
                Err(_) => {
                    return Stop::Lost(format!("the server took no data for {dead_after:?}"));
                }
            }
            tokio::select! {
                item = ws.next() => {
                    last_heard = Instant::now();
                    match item {
                        Some(Ok(WsMessage::Text(text))) => {
                            if let ControlFlow::Break(stop) = self.on_frame(&text) {
                                return stop;
                            }
                        }
                        Some(Ok(WsMessage::Close(frame))) => {
                            // Keep reading: tungstenite sends the close reply
                            // and then ends the stream.
                            close_frame = Some(frame.map_or((1005, String::new()), |f| {
                                (u16::from(f.code), f.reason.to_string())
                            }));
                        }
                        Some(Ok(_)) => {}
                        Some(Err(error)) => return lost_or_closed(close_frame, error.to_string()),
                        None => return lost_or_closed(close_frame, "connection closed".into()),
                    }
                }
                command = self.commands.recv() => {
                    if self.command(command).is_break() {
                        close(ws).await;
                        return Stop::Closed(CloseReason::ByClient);
                    }
                }
                () = tokio::time::sleep_until(last_heard + dead_after) => {
                    return Stop::Lost(format!("no frame from the server for {dead_after:?}"));
                }
            }
        }
    }

    async fn flush(&mut self, ws: &mut Ws) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        if self.outbox.is_empty() {
            return Ok(());
        }
        for frame in self.outbox.drain(..) {
            ws.feed(WsMessage::text(frame)).await?;
        }
        ws.flush().await
    }

    /// Handles a command; `Break` when the client is to be closed.
    fn command(&mut self, command: Option<Command>) -> ControlFlow<()> {
        let Some(command) = command else {
            // Every `Client` handle is gone.
            return ControlFlow::Break(());
        };
        match command {
            Command::Join { room, since, reply } => {
                let generation = self.take_ref();
                let entry = self.rooms.entry(room.clone()).or_insert_with(|| Room {
                    generation,
                    feed: None,
                    first_since: since,
                    waiters: Vec::new(),
                    join_sent: false,
                });
                entry.waiters.push(reply);
                self.send_join(&room, false);
            }
            Command::Leave { room, reply } => {
                if let Some(left) = self.rooms.remove(&room) {
                    for waiter in left.waiters {
                        let _ = waiter.send(Err(Error::Cancelled(
                            "the room was left before the join completed",
                        )));
                    }
                }
                if self.online {
                    self.request(Pending::Leave { room, reply });
                } else {
                    // The next connection will not be in the room anyway.
                    let _ = reply.send(Ok(()));
                }
            }
            Command::Write {
                room,
                id,
                action,
                reply,
            } => self.request(Pending::Write {
                room,
                id,
                action,
                reply,
            }),
            Command::History { room, query, reply } => {
                self.request(Pending::History { room, query, reply });
            }
            Command::Search { search, reply } => self.request(Pending::Search { search, reply }),
            Command::Typing { room } => {
                // Ephemeral: while offline there is nobody to tell.
                if self.online {
                    self.outbox.push(Request::Typing { room: &room }.encode());
                }
            }
            Command::Ping { reply } => self.request(Pending::Ping { reply }),
            Command::Close { done } => {
                self.closing.push(done);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    /// Sends a join for `room` unless one is already out on this connection.
    fn send_join(&mut self, room: &str, rejoin: bool) {
        if !self.online {
            return;
        }
        let Some(entry) = self.rooms.get_mut(room) else {
            return;
        };
        if entry.join_sent {
            return;
        }
        entry.join_sent = true;
        let since = match &entry.feed {
            Some(feed) => Some(feed.last()),
            None => entry.first_since,
        };
        let pending = Pending::Join(JoinSent {
            room: room.to_owned(),
            generation: entry.generation,
            since,
            rejoin,
        });
        self.request(pending);
    }

    fn take_pending(&mut self, reference: Option<Ref>) -> Option<Pending> {
        match reference? {
            Ref::Number(n) => self.pending.remove(&n.as_u64()?),
            Ref::Text(_) => None,
        }
    }

    fn room_of(&mut self, room: &str, generation: u64) -> Option<&mut Room> {
        self.rooms
            .get_mut(room)
            .filter(|r| r.generation == generation)
    }

    /// Handles one text frame from the server.
    fn on_frame(&mut self, text: &str) -> ControlFlow<Stop> {
        // Frames this version does not know are ignored, so a newer server
        // can add some.
        let Ok(frame) = serde_json::from_str::<ServerFrame>(text) else {
            return ControlFlow::Continue(());
        };
        // Changes to messages take their place in the room's sequence
        // like messages do.
        let frame = match frame.into_change() {
            Ok(change) => {
                self.on_entry(Entry::Change(change));
                return ControlFlow::Continue(());
            }
            Err(frame) => frame,
        };
        match frame {
            ServerFrame::Message(message) => self.on_entry(Entry::Message(message)),
            ServerFrame::Joined { reference, body } => {
                if let Some(Pending::Join(sent)) = self.take_pending(reference) {
                    self.on_joined(sent, body);
                }
            }
            ServerFrame::Left { reference, .. } => {
                if let Some(Pending::Leave { reply, .. }) = self.take_pending(reference) {
                    let _ = reply.send(Ok(()));
                }
            }
            ServerFrame::Ack { reference, body } => {
                if let Some(Pending::Write { reply, .. }) = self.take_pending(reference) {
                    let _ = reply.send(Ok(ack(body)));
                }
            }
            ServerFrame::History { reference, body } => self.on_history(reference, body),
            ServerFrame::SearchResults { reference, body } => {
                if let Some(Pending::Search { reply, .. }) = self.take_pending(reference) {
                    let _ = reply.send(Ok(search_results(body)));
                }
            }
            ServerFrame::Pong {
                reference,
                body: PongBody { ts },
            } => {
                if let Some(Pending::Ping { reply }) = self.take_pending(reference) {
                    let _ = reply.send(Ok(ts));
                }
            }
            ServerFrame::Typing(TypingBody { room, user }) => {
                if self.rooms.contains_key(&room) {
                    self.emit(Event::Typing { room, user });
                }
            }
            ServerFrame::Presence(PresenceBody { room, event, user }) => {
                if self.rooms.contains_key(&room) {
                    self.emit(Event::Presence { room, event, user });
                }
            }
            ServerFrame::Error {
                reference,
                body: ErrorBody { code, message },
            } => return self.on_error(reference, code, message),
            // The welcome comes once, read by `Target::open`; the changes
            // were taken above.
            ServerFrame::Welcome(_)
            | ServerFrame::Edited(_)
            | ServerFrame::Deleted(_)
            | ServerFrame::Reaction(_)
            | ServerFrame::Pinned(_) => {}
        }
        ControlFlow::Continue(())
    }

    fn deliver(&self, entries: Vec<Entry>) {
        for entry in entries {
            self.emit(entry.into());
        }
    }

    /// A live message or change.
    fn on_entry(&mut self, entry: Entry) {
        let room = match &entry {
            Entry::Message(message) => message.room.clone(),
            Entry::Change(change) => change.room().to_owned(),
        };
        let Some(feed) = self.rooms.get_mut(&room).and_then(|r| r.feed.as_mut()) else {
            return;
        };
        let mut out = Vec::new();
        feed.offer(entry, &mut out);
        self.deliver(out);
        self.catch_up(&room);
    }

    fn on_joined(&mut self, sent: JoinSent, body: JoinedBody) {
        let JoinSent {
            room,
            generation,
            since,
            rejoin,
        } = sent;
        let JoinedBody {
            seq,
            members,
            messages,
            events,
            pins,
            ..
        } = body;
        let Some(entry) = self.room_of(&room, generation) else {
            return;
        };
        entry.join_sent = false;
        let mut out = Vec::new();
        let recent = match since {
            // A plain join lists the latest messages for context, in their
            // current state, and no changes: the feed starts after them.
            None => {
                entry.feed = Some(Feed::after(seq));
                messages
            }
            Some(since) => {
                let feed = entry.feed.get_or_insert_with(|| Feed::after(since));
                feed.learn_latest(seq);
                for item in Entry::all(messages, events) {
                    feed.offer(item, &mut out);
                }
                Vec::new()
            }
        };
        let waiters = std::mem::take(&mut entry.waiters);
        let joined = Joined {
            room: room.clone(),
            seq,
            members: members.into_users(),
            recent,
            pins,
        };
        if rejoin {
            self.emit(Event::Rejoined {
                room: room.clone(),
                members: joined.members.clone(),
            });
        }
        self.deliver(out);
        for waiter in waiters {
            let _ = waiter.send(Ok(joined.clone()));
        }
        self.catch_up(&room);
    }

    /// A `history` reply: the user's page, or one filling a feed's hole.
    fn on_history(&mut self, reference: Option<Ref>, body: HistoryBody) {
        let HistoryBody {
            room,
            messages,
            events,
            more,
        } = body;
        match self.take_pending(reference) {
            Some(Pending::History { reply, .. }) => {
                let _ = reply.send(Ok(History {
                    room,
                    messages,
                    events,
                    more,
                }));
            }
            Some(Pending::CatchUp {
                room,
                generation,
                after,
            }) => self.on_catch_up(&room, generation, after, Entry::all(messages, events), more),
            _ => {}
        }
    }

    /// Asks for the next history page if the room's feed has a hole.
    fn catch_up(&mut self, room: &str) {
        let Some(entry) = self.rooms.get_mut(room) else {
            return;
        };
        let generation = entry.generation;
        if !self.online {
            return;
        }
        if let Some(after) = entry.feed.as_mut().and_then(Feed::next_fetch) {
            self.request(Pending::CatchUp {
                room: room.to_owned(),
                generation,
                after,
            });
        }
    }

    fn on_catch_up(
        &mut self,
        room: &str,
        generation: u64,
        after: u64,
        entries: Vec<Entry>,
        more: bool,
    ) {
        let Some(feed) = self.room_of(room, generation).and_then(|r| r.feed.as_mut()) else {
            return;
        };
        let mut out = Vec::new();
        feed.page(after, entries, more, &mut out);
        self.deliver(out);
        self.catch_up(room);
    }

    fn on_error(
        &mut self,
        reference: Option<Ref>,
        code: ErrorCode,
        message: String,
    ) -> ControlFlow<Stop> {
        let error = || Error::Server {
            code,
            message: message.clone(),
        };
        match self.take_pending(reference) {
            Some(Pending::Join(JoinSent {
                room,
                generation,
                rejoin,
                ..
            })) => {
                let retryable = error().is_retryable();
                let Some(entry) = self.room_of(&room, generation) else {
                    return ControlFlow::Continue(());
                };
                entry.join_sent = false;
                let was_joined = entry.feed.is_some();
                if rejoin && retryable {
                    // Still a member as far as the user knows: reconnect
                    // (with backoff) and try again.
                    return ControlFlow::Break(Stop::Lost(format!(
                        "re-joining {room} failed: {code}: {message}"
                    )));
                }
                if was_joined && retryable {
                    // A repeated join of a room we are in: the server keeps
                    // us in it, so only this call failed.
                    for waiter in std::mem::take(&mut entry.waiters) {
                        let _ = waiter.send(Err(error()));
                    }
                    return ControlFlow::Continue(());
                }
                if let Some(entry) = self.rooms.remove(&room) {
                    for waiter in entry.waiters {
                        let _ = waiter.send(Err(error()));
                    }
                }
                if was_joined {
                    self.emit(Event::RejoinFailed {
                        room,
                        code,
                        message,
                    });
                }
            }
            Some(Pending::CatchUp { room, .. }) => {
                // Resuming from a fresh connection retries with backoff.
                return ControlFlow::Break(Stop::Lost(format!(
                    "catching up {room} failed: {code}: {message}"
                )));
            }
            Some(Pending::Leave { reply, .. }) => {
                let _ = reply.send(Err(error()));
            }
            Some(Pending::Write { reply, .. }) => {
                let _ = reply.send(Err(error()));
            }
            Some(Pending::History { reply, .. }) => {
                let _ = reply.send(Err(error()));
            }
            Some(Pending::Search { reply, .. }) => {
                let _ = reply.send(Err(error()));
            }
            Some(Pending::Ping { reply }) => {
                let _ = reply.send(Err(error()));
            }
            // Errors to frames without a `ref` (typing) need no answer.
            None => {}
        }
        ControlFlow::Continue(())
    }

    /// Forgets what only made sense on the lost connection.
    fn connection_lost(&mut self) {
        self.online = false;
        self.outbox.clear();
        let pending = std::mem::take(&mut self.pending);
        for (reference, request) in pending {
            match request {
                // Re-joins and catch-ups are recomputed by `resume`.
                Pending::Join(_) | Pending::CatchUp { .. } => {}
                // A new connection is in no room: the leave has happened.
                Pending::Leave { reply, .. } => {
                    let _ = reply.send(Ok(()));
                }
                // Writes (by their `id`), history pages, searches and pings
                // are sent again by `resume`, unless their caller gave up.
                other if other.wanted() => {
                    self.pending.insert(reference, other);
                }
                _ => {}
            }
        }
        for room in self.rooms.values_mut() {
            room.join_sent = false;
            if let Some(feed) = &mut room.feed {
                feed.connection_lost();
            }
        }
    }

    /// On a new connection: re-join every room from where its feed stands,
    /// then re-send every request still waiting, in order.
    fn resume(&mut self) {
        self.online = true;
        let rooms: Vec<(String, bool)> = self
            .rooms
            .iter()
            .map(|(name, room)| (name.clone(), room.feed.is_some()))
            .collect();
        for (room, joined_before) in rooms {
            self.send_join(&room, joined_before);
        }
        // The re-joins are now first in the outbox; the waiting requests
        // follow, so re-sent sends find their rooms joined.
        let queued: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| !matches!(p, Pending::Join(_)))
            .map(|(reference, p)| p.frame(*reference))
            .collect();
        self.outbox.extend(queued);
    }

    /// Waits out the backoff and opens a new connection, serving commands
    /// meanwhile. `Err` when the client is to stop.
    async fn reconnect(&mut self, mut why: String) -> Result<Ws, CloseReason> {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            if let Some(max) = self.settings.backoff.max_attempts
                && attempt > max
            {
                return Err(CloseReason::GaveUp {
                    attempts: attempt - 1,
                    last_error: why,
                });
            }
            let delay = self.settings.backoff.delay(attempt);
            self.emit(Event::Reconnecting {
                attempt,
                delay,
                reason: why,
            });
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    command = self.commands.recv() => {
                        if self.command(command).is_break() {
                            return Err(CloseReason::ByClient);
                        }
                    }
                }
            }
            let target = self.settings.target.clone();
            let open = target.open(self.settings.connect_timeout);
            tokio::pin!(open);
            let opened = loop {
                tokio::select! {
                    opened = &mut open => break opened,
                    command = self.commands.recv() => {
                        if self.command(command).is_break() {
                            return Err(CloseReason::ByClient);
                        }
                    }
                }
            };
            match opened {
                Ok((ws, session)) => {
                    self.session.send_replace(session.clone());
                    self.emit(Event::Reconnected(session));
                    return Ok(ws);
                }
                Err(Error::Rejected { status, .. }) if refusal_is_final(status) => {
                    return Err(CloseReason::Rejected { status });
                }
                Err(error) => why = describe(&error),
            }
        }
    }
}

fn ack(body: AckBody) -> Ack {
    let AckBody {
        room,
        id,
        seq,
        ts,
        duplicate,
    } = body;
    Ack {
        room,
        id,
        seq,
        ts,
        duplicate,
    }
}

fn search_results(body: SearchResultsBody) -> SearchResults {
    let SearchResultsBody {
        query,
        room,
        results,
        next,
    } = body;
    SearchResults {
        query,
        room,
        results,
        next,
    }
}

/// HTTP statuses at the upgrade that another attempt would get again
/// (bad token, bad name, forbidden), as opposed to a proxy's 502 while the
/// server restarts.
fn refusal_is_final(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 408 | 429)
}

/// How a connection that ended after `close_frame` (if any) is treated:
/// 1000 (normal) and 1008 (policy) mean "do not come back"; anything else
/// (1001 shutdown, 1011, 1013 slow consumer, a bare drop) means resume.
fn lost_or_closed(close_frame: Option<(u16, String)>, why: String) -> Stop {
    match close_frame {
        Some((code @ (1000 | 1008), reason)) => {
            Stop::Closed(CloseReason::ServerClosed { code, reason })
        }
        Some((code, reason)) if reason.is_empty() => {
            Stop::Lost(format!("the server closed the connection ({code})"))
        }
        Some((code, reason)) => Stop::Lost(format!(
            "the server closed the connection ({code}: {reason})"
        )),
        None => Stop::Lost(why),
    }
}

/// Closes politely: a close frame, then wait briefly for the server's.
async fn close(ws: &mut Ws) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        if ws.close(None).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}
