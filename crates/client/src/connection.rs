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
//! queued (each is idempotent: joins, leaves, read markers and
//! direct-message rooms by nature, sends and changes by their `id`, history,
//! search, rooms, directory and ping trivially); after backoff a new
//! connection opens; every joined room is re-joined with `since` = the last
//! `seq` delivered, message or change (history pages fill a
//! `complete: false` reply); then the queued requests are sent again in
//! their original order. The server handles one connection's requests in
//! order, so the re-sent writes find their rooms joined.
//!
//! A direct-message room opened with `dm` is answered by a `joined`, and
//! from then on is a joined room like any other: it has a [`Feed`] and is
//! re-joined with `since` on reconnect.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::time::Duration;

use chat_protocol::{
    AckBody, Change, DirectoryBody, DirectoryEntry, ErrorBody, ErrorCode, HistoryBody, JoinedBody,
    PongBody, PresenceBody, ReadBody, Ref, RoomAddedBody, RoomSummary, RoomsBody,
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
    Read {
        room: String,
        seq: u64,
        reply: Reply<ReadBody>,
    },
    Rooms {
        reply: Reply<Vec<RoomSummary>>,
    },
    Directory {
        reply: Reply<Vec<DirectoryEntry>>,
    },
    Dm {
        user: String,
        reply: Reply<Joined>,
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
    /// Moving a marker forward to the same `seq` twice moves it once, so
    /// this is sent again as it is after a reconnect.
    Read {
        room: String,
        seq: u64,
        reply: Reply<ReadBody>,
    },
    Rooms {
        reply: Reply<Vec<RoomSummary>>,
    },
    Directory {
        reply: Reply<Vec<DirectoryEntry>>,
    },
    /// Opening a direct-message room that exists joins it: sent again as
    /// it is after a reconnect. Answered by the room's `joined`.
    Dm {
        user: String,
        reply: Reply<Joined>,
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
            Pending::Read { room, seq, .. } => Request::Read {
                room,
                seq: *seq,
                reference,
            },
            Pending::Rooms { .. } => Request::Rooms { reference },
            Pending::Directory { .. } => Request::Directory { reference },
            Pending::Dm { user, .. } => Request::Dm { user, reference },
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
            Pending::Read { reply, .. } => !reply.is_closed(),
            Pending::Rooms { reply } => !reply.is_closed(),
            Pending::Directory { reply } => !reply.is_closed(),
            Pending::Dm { reply, .. } => !reply.is_closed(),
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
            Command::Read { room, seq, reply } => {
                self.request(Pending::Read { room, seq, reply });
            }
            Command::Rooms { reply } => self.request(Pending::Rooms { reply }),
            Command::Directory { reply } => self.request(Pending::Directory { reply }),
            Command::Dm { user, reply } => self.request(Pending::Dm { user, reply }),
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
        match frame {
            ServerFrame::Message(message) => self.on_entry(Entry::Message(message)),
            // Changes to messages (`deleted` among them) take their place in
            // the room's sequence like messages do, and reach the caller as
            // `Event::Change`s to apply to a `RoomState`.
            ServerFrame::Edited(body) => self.on_entry(Entry::Change(Change::Edited(body))),
            ServerFrame::Deleted(body) => self.on_entry(Entry::Change(Change::Deleted(body))),
            ServerFrame::Reaction(body) => self.on_entry(Entry::Change(Change::Reaction(body))),
            ServerFrame::Pinned(body) => self.on_entry(Entry::Change(Change::Pinned(body))),
            ServerFrame::Joined { reference, body } => match self.take_pending(reference) {
                Some(Pending::Join(sent)) => self.on_joined(sent, body),
                Some(Pending::Dm { reply, .. }) => self.on_dm_joined(body, reply),
                _ => {}
            },
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
            ServerFrame::Read { reference, body } => self.on_read(reference, body),
            ServerFrame::Rooms {
                reference,
                body: RoomsBody { rooms },
            } => {
                if let Some(Pending::Rooms { reply }) = self.take_pending(reference) {
                    let _ = reply.send(Ok(rooms));
                }
            }
            ServerFrame::Directory {
                reference,
                body: DirectoryBody { rooms },
            } => {
                if let Some(Pending::Directory { reply }) = self.take_pending(reference) {
                    let _ = reply.send(Ok(rooms));
                }
            }
            ServerFrame::RoomAdded(RoomAddedBody { room, with }) => {
                self.emit(Event::RoomAdded { room, with });
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
            // Unasked, about a room: the server took us out of it.
            ServerFrame::Error {
                reference: None,
                body:
                    ErrorBody {
                        code,
                        message,
                        room: Some(room),
                    },
            } => self.on_room_removed(room, code, message),
            ServerFrame::Error {
                reference,
                body: ErrorBody { code, message, .. },
            } => return self.on_error(reference, code, message),
            // The welcome comes once, read by `Target::open`.
            ServerFrame::Welcome(_) => {}
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
            last_read,
            unread,
            unread_mentions,
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
            None if entry.feed.is_none() => {
                entry.feed = Some(Feed::after(seq));
                messages
            }
            // A `dm` (or a join it crossed) for a room already followed:
            // the stream goes on where it was, and what it has not
            // delivered up to `seq` is paged in by `catch_up`, so nothing
            // is skipped or repeated.
            None => {
                if let Some(feed) = &mut entry.feed {
                    feed.learn_latest(seq);
                }
                Vec::new()
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
            last_read,
            unread,
            unread_mentions,
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

    /// The `joined` that answers a `dm`: the direct-message room becomes a
    /// room the user is in, followed and re-joined like one they joined.
    fn on_dm_joined(&mut self, body: JoinedBody, reply: Reply<Joined>) {
        let generation = self.take_ref();
        let entry = self.rooms.entry(body.room.clone()).or_insert_with(|| Room {
            generation,
            feed: None,
            first_since: None,
            waiters: Vec::new(),
            join_sent: false,
        });
        entry.waiters.push(reply);
        // A `join_since` of the room still unanswered promised its backlog
        // as events: the feed starts at its `since` then, not at this reply.
        let since = match entry.feed {
            None => entry.first_since,
            Some(_) => None,
        };
        let sent = JoinSent {
            room: body.room.clone(),
            generation: entry.generation,
            since,
            rejoin: false,
        };
        self.on_joined(sent, body);
    }

    /// A `read` frame: the reply to ours, or, without a `ref`, news that
    /// the marker moved on another connection of the user's.
    fn on_read(&mut self, reference: Option<Ref>, body: ReadBody) {
        if reference.is_none() {
            self.emit(Event::Read(body));
        } else if let Some(Pending::Read { reply, .. }) = self.take_pending(reference) {
            let _ = reply.send(Ok(body));
        }
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
            Some(Pending::Read { reply, .. }) => {
                let _ = reply.send(Err(error()));
            }
            Some(Pending::Rooms { reply }) => {
                let _ = reply.send(Err(error()));
            }
            Some(Pending::Directory { reply }) => {
                let _ = reply.send(Err(error()));
            }
            Some(Pending::Dm { reply, .. }) => {
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

    /// The server took us out of `room` (a ban): it is no longer followed,
    /// so no reconnect re-joins it; a join waiting for it fails.
    fn on_room_removed(&mut self, room: String, code: ErrorCode, message: String) {
        let Some(entry) = self.rooms.remove(&room) else {
            return;
        };
        for waiter in entry.waiters {
            let _ = waiter.send(Err(Error::Server {
                code,
                message: message.clone(),
            }));
        }
        self.emit(Event::RoomRemoved {
            room,
            code,
            message,
        });
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
                // Writes (by their `id`), history pages, searches, read
                // markers, room lists, DMs and pings are sent again by
                // `resume`, unless their caller gave up.
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
                    self.settings.target.keep_guest(&session);
                    self.session.send_replace(session.clone());
                    self.emit(Event::Reconnected(session));
                    return Ok(ws);
                }
                Err(Error::Rejected { status, .. }) if refusal_is_final(status) => {
                    // A guest credential can stop being accepted (the
                    // server's key changed): without it we are a new guest,
                    // as before guest credentials existed, rather than no
                    // one. Refused again without it, the refusal is final.
                    if !self.settings.target.forget_guest() {
                        return Err(CloseReason::Rejected { status });
                    }
                    why = format!(
                        "the guest credential was refused (HTTP {status}); reconnecting as a new guest"
                    );
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

#[cfg(test)]
mod tests {
    use chat_protocol::User;
    use serde_json::json;

    use super::*;

    /// A connection task driven by hand: commands in, frames in, and what
    /// it would write and emit out, with no socket.
    struct Driven {
        connection: Connection,
        events: mpsc::UnboundedReceiver<Event>,
        _commands: mpsc::UnboundedSender<Command>,
    }

    fn driven() -> Driven {
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let session = Session {
            id: "s_1".into(),
            user: user("u_a", "alice"),
            heartbeat: Duration::from_secs(25),
            guest_token: None,
        };
        let settings = Settings {
            target: Target::new("ws://h/ws", None, None, None).expect("a target"),
            connect_timeout: Duration::from_secs(1),
            backoff: Backoff::default(),
            reconnect: true,
            dead_after: None,
        };
        let (session, _) = watch::channel(session);
        let mut connection = Connection::new(settings, commands, events_tx, session);
        connection.online = true;
        Driven {
            connection,
            events,
            _commands: commands_tx,
        }
    }

    impl Driven {
        fn command(&mut self, command: Command) {
            assert!(self.connection.command(Some(command)).is_continue());
        }

        /// The frames written since the last call, parsed.
        fn sent(&mut self) -> Vec<serde_json::Value> {
            self.connection
                .outbox
                .drain(..)
                .map(|text| serde_json::from_str(&text).expect("json"))
                .collect()
        }

        fn frame(&mut self, frame: serde_json::Value) {
            let flow = self.connection.on_frame(&frame.to_string());
            assert!(flow.is_continue(), "{frame}");
        }

        fn emitted(&mut self) -> Vec<Event> {
            std::iter::from_fn(|| self.events.try_recv().ok()).collect()
        }
    }

    fn user(id: &str, name: &str) -> User {
        User {
            id: id.into(),
            name: name.into(),
        }
    }

    fn message(room: &str, seq: u64) -> serde_json::Value {
        json!({"type": "message", "room": room, "seq": seq, "id": format!("m{seq}"),
               "from": {"id": "u_b", "name": "bob"}, "text": format!("text {seq}"), "ts": 1})
    }

    fn joined(reference: u64, room: &str, seq: u64, messages: &[u64]) -> serde_json::Value {
        let messages: Vec<serde_json::Value> = messages
            .iter()
            .map(|s| {
                let mut m = message(room, *s);
                if let Some(m) = m.as_object_mut() {
                    m.remove("type");
                }
                m
            })
            .collect();
        json!({"type": "joined", "ref": reference, "room": room, "seq": seq,
               "members": [{"id": "u_a", "name": "alice"}, {"id": "u_b", "name": "bob"}],
               "messages": messages, "complete": true,
               "last_read": 1, "unread": 2, "unread_mentions": 1})
    }

    fn message_seqs(events: &[Event]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_dm_room_is_joined_followed_and_rejoined_with_since() {
        let mut d = driven();
        let room = "dm:u_a,u_b";
        let (reply, mut answer) = oneshot::channel();
        d.command(Command::Dm {
            user: "u_b".into(),
            reply,
        });
        let sent = d.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (&sent[0]["type"], &sent[0]["user"]),
            (&json!("dm"), &json!("u_b"))
        );
        let reference = sent[0]["ref"].as_u64().expect("a ref");

        // Live entries before the reply are not yet ours to deliver.
        d.frame(message(room, 3));
        d.frame(joined(reference, room, 3, &[1, 2, 3]));
        let got = answer.try_recv().expect("answered").expect("joined");
        assert_eq!(got.room, room);
        assert_eq!((got.seq, got.recent.len()), (3, 3));
        assert_eq!((got.last_read, got.unread, got.unread_mentions), (1, 2, 1));
        assert!(
            d.emitted().is_empty(),
            "the recent messages are context only"
        );

        // Then it is a joined room: in order, once.
        for seq in [4, 4, 5, 3] {
            d.frame(message(room, seq));
        }
        assert_eq!(message_seqs(&d.emitted()), [4, 5]);

        // A reconnect re-joins it from the last delivered seq.
        d.connection.connection_lost();
        d.connection.resume();
        let sent = d.sent();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(
            (&sent[0]["type"], &sent[0]["room"], &sent[0]["since"]),
            (&json!("join"), &json!(room), &json!(5))
        );
    }

    #[test]
    fn opening_a_dm_again_goes_on_where_the_room_was() {
        let mut d = driven();
        let room = "dm:u_a,u_b";
        let (reply, _first) = oneshot::channel();
        d.command(Command::Dm {
            user: "u_b".into(),
            reply,
        });
        let reference = d.sent()[0]["ref"].as_u64().expect("a ref");
        d.frame(joined(reference, room, 2, &[1, 2]));

        let (reply, mut answer) = oneshot::channel();
        d.command(Command::Dm {
            user: "u_b".into(),
            reply,
        });
        let reference = d.sent()[0]["ref"].as_u64().expect("a ref");
        // Two entries came meanwhile, unseen: the reply lists the latest
        // messages, which are not repeated as context; what was missed is
        // paged in after the last delivered seq instead.
        d.frame(joined(reference, room, 4, &[1, 2, 3, 4]));
        let again = answer.try_recv().expect("answered").expect("joined");
        assert!(again.recent.is_empty());
        let sent = d.sent();
        assert_eq!(
            (&sent[0]["type"], &sent[0]["after"]),
            (&json!("history"), &json!(2))
        );
        let page_ref = sent[0]["ref"].as_u64().expect("a ref");
        let page: Vec<serde_json::Value> = [3, 4]
            .iter()
            .map(|s| {
                let mut m = message(room, *s);
                if let Some(m) = m.as_object_mut() {
                    m.remove("type");
                }
                m
            })
            .collect();
        d.frame(json!({"type": "history", "ref": page_ref, "room": room,
                       "messages": page, "more": false}));
        assert_eq!(message_seqs(&d.emitted()), [3, 4]);
    }

    /// Joins `room` by hand: the `joined` reply lists `messages`.
    fn join(d: &mut Driven, room: &str, seq: u64, messages: &[u64]) -> Joined {
        let (reply, mut answer) = oneshot::channel();
        d.command(Command::Join {
            room: room.into(),
            since: None,
            reply,
        });
        let reference = d.sent()[0]["ref"].as_u64().expect("a ref");
        d.frame(joined(reference, room, seq, messages));
        answer.try_recv().expect("answered").expect("joined")
    }

    #[test]
    fn a_live_deletion_is_delivered_and_tombstones_the_message() {
        let mut d = driven();
        let mut state = join(&mut d, "general", 2, &[1, 2]).room_state();
        let mut reply = message("general", 3);
        reply["reply_to"] = json!(1);
        reply["quote"] = json!({"from": {"id": "u_b", "name": "bob"}, "text": "text 1"});
        d.frame(reply);
        d.frame(
            json!({"type": "deleted", "room": "general", "seq": 4, "id": "d-1",
                       "target": 1, "from": {"id": "u_m", "name": "mod"}, "ts": 2}),
        );
        // One of another room, not joined, is not ours.
        d.frame(
            json!({"type": "deleted", "room": "elsewhere", "seq": 5, "id": "d-2",
                       "target": 1, "from": {"id": "u_m", "name": "mod"}, "ts": 2}),
        );
        let events = d.emitted();
        let [Event::Message(_), Event::Change(Change::Deleted(deleted))] = &events[..] else {
            panic!("the reply, then the deletion: {events:?}");
        };
        assert_eq!((deleted.seq, deleted.target), (4, 1));
        for event in &events {
            assert!(event.apply_to(&mut state));
        }
        let tombstone = &state.messages[&1];
        assert!(
            tombstone.deleted && tombstone.text.is_empty(),
            "{tombstone:?}"
        );
        let quote = state.messages[&3].quote.as_ref().expect("a quote");
        assert!(quote.deleted && quote.text.is_empty(), "{quote:?}");
        assert_eq!(state.last_seq, 4);
        // The resume cursor counts the deletion.
        d.connection.connection_lost();
        d.connection.resume();
        assert_eq!(d.sent()[0]["since"], json!(4));
    }

    #[test]
    fn a_refused_dm_fails_its_call() {
        let mut d = driven();
        let (reply, mut answer) = oneshot::channel();
        d.command(Command::Dm {
            user: "nobody".into(),
            reply,
        });
        let reference = d.sent()[0]["ref"].as_u64().expect("a ref");
        d.frame(
            json!({"type": "error", "ref": reference, "code": "not_found",
                       "message": "no such user"}),
        );
        let error = answer.try_recv().expect("answered").expect_err("refused");
        assert_eq!(error.code(), Some(ErrorCode::NotFound));
        assert!(d.connection.rooms.is_empty());
    }

    #[test]
    fn a_read_is_answered_and_one_from_elsewhere_is_an_event() {
        let mut d = driven();
        let (reply, mut answer) = oneshot::channel();
        d.command(Command::Read {
            room: "general".into(),
            seq: 9,
            reply,
        });
        let sent = d.sent();
        assert_eq!(
            (&sent[0]["type"], &sent[0]["room"], &sent[0]["seq"]),
            (&json!("read"), &json!("general"), &json!(9))
        );
        let reference = sent[0]["ref"].as_u64().expect("a ref");
        d.frame(
            json!({"type": "read", "ref": reference, "room": "general", "seq": 9,
                       "unread": 2, "unread_mentions": 1}),
        );
        let read = answer.try_recv().expect("answered").expect("read");
        assert_eq!(
            read,
            ReadBody {
                room: "general".into(),
                seq: 9,
                unread: 2,
                unread_mentions: 1,
            }
        );
        assert!(d.emitted().is_empty(), "our own reply is no news");

        d.frame(json!({"type": "read", "room": "ops", "seq": 4, "unread": 0,
                       "unread_mentions": 0}));
        let events = d.emitted();
        assert!(
            matches!(&events[..], [Event::Read(r)] if r.room == "ops" && r.seq == 4),
            "{events:?}"
        );
        assert_eq!(events[0].room(), Some("ops"));
    }

    #[test]
    fn rooms_and_directory_are_answered() {
        let mut d = driven();
        let (rooms_reply, mut rooms) = oneshot::channel();
        let (directory_reply, mut directory) = oneshot::channel();
        d.command(Command::Rooms { reply: rooms_reply });
        d.command(Command::Directory {
            reply: directory_reply,
        });
        let sent = d.sent();
        let types: Vec<&serde_json::Value> = sent.iter().map(|f| &f["type"]).collect();
        assert_eq!(types, [&json!("rooms"), &json!("directory")]);
        let (r1, r2) = (sent[0]["ref"].clone(), sent[1]["ref"].clone());
        // Replies may come in any order; each finds its call by `ref`.
        d.frame(json!({"type": "directory", "ref": r2, "rooms": [
            {"room": "general", "members": 3, "seq": 10, "last_ts": 1763800000123u64},
            {"room": "empty", "members": 1, "seq": 0}]}));
        d.frame(json!({"type": "rooms", "ref": r1, "rooms": [
            {"room": "dm:u_a,u_b", "seq": 10, "last_read": 8, "unread": 2,
             "unread_mentions": 1, "last": message("dm:u_a,u_b", 10),
             "with": {"id": "u_b", "name": "bob"}},
            {"room": "general", "seq": 0, "last_read": 0, "unread": 0,
             "unread_mentions": 0}]}));
        let rooms = rooms.try_recv().expect("answered").expect("rooms");
        assert_eq!(rooms.len(), 2);
        assert_eq!(rooms[0].with, Some(user("u_b", "bob")));
        assert_eq!(rooms[0].last.as_ref().map(|m| m.seq), Some(10));
        assert_eq!(
            (rooms[1].last.as_ref(), rooms[1].with.as_ref()),
            (None, None)
        );
        let directory = directory.try_recv().expect("answered").expect("directory");
        assert_eq!(directory[0].last_ts, Some(1763800000123));
        assert_eq!(
            (directory[1].room.as_str(), directory[1].last_ts),
            ("empty", None)
        );
    }

    #[test]
    fn a_room_added_is_an_event_and_joins_nothing() {
        let mut d = driven();
        d.frame(json!({"type": "room_added", "room": "dm:u_a,u_b",
                       "with": {"id": "u_b", "name": "bob"}}));
        let events = d.emitted();
        assert_eq!(
            events,
            [Event::RoomAdded {
                room: "dm:u_a,u_b".into(),
                with: user("u_b", "bob"),
            }]
        );
        assert!(d.connection.rooms.is_empty());
        assert!(d.sent().is_empty());
    }

    #[test]
    fn people_requests_cut_off_are_sent_again() {
        let mut d = driven();
        let (read_reply, _read) = oneshot::channel();
        let (dm_reply, _dm) = oneshot::channel();
        let (rooms_reply, rooms) = oneshot::channel();
        d.command(Command::Read {
            room: "general".into(),
            seq: 3,
            reply: read_reply,
        });
        d.command(Command::Dm {
            user: "u_b".into(),
            reply: dm_reply,
        });
        d.command(Command::Rooms { reply: rooms_reply });
        let before = d.sent();
        // The caller of `rooms` gave up: that one is not asked again.
        drop(rooms);
        d.connection.connection_lost();
        d.connection.resume();
        let after = d.sent();
        assert_eq!(after, before[..2]);
    }
}
