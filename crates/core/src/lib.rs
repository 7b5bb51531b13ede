//! The chat core: rooms, membership, sequencing, presence, fan-out and
//! permissions.
//!
//! It knows nothing of HTTP, WebSocket, Socket.IO or SQL, and this crate's
//! dependencies keep it so: no transport or database crate is among them
//! (`docs/architecture.md`). A transport turns each connection into a
//! [`Session`] (requests in, via [`Session::handle`]) and an
//! [`OutboxReceiver`] (frames and shared events out, each event encoded by
//! the transport's own [`Encoder`], once). Storage is a [`store::Store`]
//! and cross-node fan-out a [`broker::Broker`], both implemented outside.
//!
//! The path of a message: `Session::handle(send)` validates it and queues it
//! for the committer ([`committer`]), which stores batches durably, acks
//! each sender and publishes the message through the broker; the broker hands
//! it to the room registry ([`rooms`]), which pushes it to every member's
//! outbox in `seq` order.

pub mod admin;
pub mod bans;
pub mod broker;
pub mod commit_health;
pub mod committer;
pub mod event;
pub mod identity;
pub mod metrics;
pub mod people;
pub mod permissions;
pub mod rate;
pub mod rooms;
pub mod stats;
pub mod store;
pub mod sync;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_protocol::request::Envelope;
use chat_protocol::validate::{self, Invalid};
use chat_protocol::{
    DirectoryBody, EncodedUser, ErrorBody, ErrorCode, HistoryBody, JoinedBody, LeftBody, Members,
    PongBody, PresenceEvent, Ref, Request, RequestError, RoomsBody, SearchResultsBody, ServerFrame,
    User, WelcomeBody,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::people::{Asker, PeopleQueue};
use crate::store::{
    Action, Draft, Page, PersonChange, ReadState, Search, SearchScope, Store, StoreError,
};
use crate::sync::lock;
pub use admin::RetentionPolicy;
use committer::{CommitQueue, PendingSend, SubmitError};
pub use event::{
    ConnId, Dropped, Encoder, EventKind, Outbound, Outbox, OutboxQueue, OutboxReceiver, RoomEvent,
};
pub use identity::{Identity, RoomAccess, RoomPattern};
pub use metrics::Metrics;
pub use permissions::Role;
use rate::TokenBucket;
use rooms::Rooms;

/// Messages in a `joined` reply without `since`.
pub const JOIN_HISTORY: usize = 50;
/// Most messages in a `joined` reply with `since`.
pub const RESUME_LIMIT: usize = 1000;
/// `history` page size when the client gives no `limit`.
pub const HISTORY_DEFAULT: usize = 50;
/// Largest `history` page.
pub const HISTORY_MAX: usize = 200;
/// `search` page size when the client gives no `limit`.
pub const SEARCH_DEFAULT: usize = 20;
/// Largest `search` page.
pub const SEARCH_MAX: usize = 50;
/// Most rooms a `directory` reply lists.
pub const DIRECTORY_MAX: usize = 200;
/// `rooms` and `directory` requests a second per connection, together, in
/// bursts of four times as many: a page asks once per connection and per
/// look at the directory; a flood of them would cost the store a query
/// per room each.
pub const LIST_RATE: f64 = 5.0;

/// `--max-text-chars` by default (the protocol's contract).
pub const DEFAULT_MAX_TEXT_CHARS: usize = validate::DEFAULT_MAX_TEXT_CHARS;
/// `--max-room-chars` by default (the protocol's contract).
pub const DEFAULT_MAX_ROOM_CHARS: usize = validate::DEFAULT_MAX_ROOM_CHARS;
/// `--send-rate` by default: sends a second per connection.
pub const DEFAULT_SEND_RATE: f64 = 20.0;
/// `--send-burst` by default.
pub const DEFAULT_SEND_BURST: f64 = 40.0;
/// `--typing-rate` by default: typing notices a second per connection.
pub const DEFAULT_TYPING_RATE: f64 = 5.0;
/// `--search-rate` by default: searches a second per connection. A search
/// may read every message of the rooms searched (a query of short words
/// has no index to use), so a connection gets few.
pub const DEFAULT_SEARCH_RATE: f64 = 2.0;
/// `--max-errors-per-sec` by default.
pub const DEFAULT_ERROR_RATE: f64 = 10.0;
/// `--max-rooms-per-connection` by default.
pub const DEFAULT_MAX_ROOMS_PER_CONNECTION: usize = 100;
/// `--outbound-queue` by default.
pub const DEFAULT_OUTBOUND_QUEUE: usize = 1024;
/// `--max-pending-sends` by default.
pub const DEFAULT_MAX_PENDING_SENDS: usize = 10_000;
/// `--commit-batch` by default.
pub const DEFAULT_COMMIT_BATCH: usize = 1024;
/// `--presence-delay-ms` by default.
pub const DEFAULT_PRESENCE_DELAY: Duration = Duration::from_millis(250);

/// Limits the core enforces; each default is one of the `DEFAULT_*`
/// constants above, which the help text is tested against.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_text_chars: usize,
    pub max_room_chars: usize,
    /// Sends per second per connection, on average.
    pub send_rate: f64,
    pub send_burst: f64,
    /// Typing notices per second per connection; excess ones are dropped.
    pub typing_rate: f64,
    /// Searches per second per connection (bursts of five times as many).
    pub search_rate: f64,
    /// Refused requests per second a connection may cause (bursts of ten
    /// times as many) before its transport stops reading from it for a
    /// while: a client that floods bad requests is slowed down by TCP
    /// backpressure instead of costing the server an answer each.
    pub error_rate: f64,
    pub max_rooms_per_connection: usize,
    /// Items queued per connection before it counts as too slow.
    pub outbound_queue: usize,
    /// Sends accepted but not yet committed, node-wide.
    pub max_pending_sends: usize,
    /// Most sends per durable commit.
    pub commit_batch: usize,
    /// Least time between the starts of two commits; `None` commits as
    /// soon as the commit before ends.
    pub commit_interval: Option<Duration>,
    /// How long presence and typing events may wait in their room to be
    /// delivered together; zero delivers each at once.
    pub presence_delay: Duration,
    /// Close connections that sent no request but `ping` for this long.
    pub idle_timeout: Option<Duration>,
    /// What history keeps; a background task purges the rest.
    pub retention: RetentionPolicy,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_text_chars: DEFAULT_MAX_TEXT_CHARS,
            max_room_chars: DEFAULT_MAX_ROOM_CHARS,
            send_rate: DEFAULT_SEND_RATE,
            send_burst: DEFAULT_SEND_BURST,
            typing_rate: DEFAULT_TYPING_RATE,
            search_rate: DEFAULT_SEARCH_RATE,
            error_rate: DEFAULT_ERROR_RATE,
            max_rooms_per_connection: DEFAULT_MAX_ROOMS_PER_CONNECTION,
            outbound_queue: DEFAULT_OUTBOUND_QUEUE,
            max_pending_sends: DEFAULT_MAX_PENDING_SENDS,
            commit_batch: DEFAULT_COMMIT_BATCH,
            commit_interval: None,
            presence_delay: DEFAULT_PRESENCE_DELAY,
            idle_timeout: None,
            retention: RetentionPolicy::default(),
        }
    }
}

/// The core's shared state; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    rooms: Arc<Rooms>,
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    commits: CommitQueue,
    committer: Mutex<Option<JoinHandle<()>>>,
    /// Memberships and read markers, written in batches.
    people: PeopleQueue,
    limits: Limits,
    metrics: Metrics,
    next_conn: AtomicU64,
    /// Cancelled first at shutdown: no new sends.
    closing: CancellationToken,
    /// Cancelled once pending sends are committed: transports close now.
    disconnect: CancellationToken,
    /// Every open session's outbox, to tell each when the server shuts down.
    sessions: Mutex<Sessions>,
}

/// The open sessions, and whether they must close already.
#[derive(Debug, Default)]
struct Sessions {
    open: HashMap<ConnId, OpenSession>,
    shut_down: bool,
}

/// What the hub keeps of an open session: how to reach its connection, and
/// its user and last request (for the API's disconnect and the idle
/// timeout).
#[derive(Debug)]
struct OpenSession {
    outbox: Outbox,
    activity: admin::Activity,
}

impl Hub {
    /// Starts a hub over `store`, fanning out through the broker that
    /// `make_broker` builds around the local room registry.
    pub fn new(
        store: Arc<dyn Store>,
        limits: Limits,
        metrics: Metrics,
        make_broker: impl FnOnce(Arc<Rooms>) -> Arc<dyn Broker>,
    ) -> Hub {
        let batch_presence = !limits.presence_delay.is_zero();
        let rooms = Arc::new(Rooms::new(
            limits.outbound_queue,
            batch_presence,
            metrics.clone(),
        ));
        if batch_presence {
            tokio::spawn(flush_presence(
                Arc::downgrade(&rooms),
                limits.presence_delay,
            ));
        }
        let broker = make_broker(rooms.clone());
        let closing = CancellationToken::new();
        let (commits, committer) = committer::start(
            store.clone(),
            broker.clone(),
            metrics.clone(),
            limits.max_pending_sends,
            limits.commit_batch,
            limits.commit_interval,
            closing.clone(),
        );
        let people = people::start(store.clone(), broker.clone());
        let hub = Hub {
            inner: Arc::new(HubInner {
                rooms,
                store,
                broker,
                commits,
                committer: Mutex::new(Some(committer)),
                people,
                limits,
                metrics,
                next_conn: AtomicU64::new(1),
                closing,
                disconnect: CancellationToken::new(),
                sessions: Mutex::new(Sessions::default()),
            }),
        };
        admin::start_background(&hub);
        hub
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Opens a session for a new connection of the user `identity` names
    /// (see [`Identity::anonymous`] for a connection nobody vouches for).
    pub fn connect(&self, identity: Identity) -> (Session, OutboxReceiver) {
        let conn = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let limits = &self.inner.limits;
        let (outbox, receiver) =
            event::outbox(conn, limits.outbound_queue, self.inner.metrics.clone());
        let activity = admin::Activity::new(&identity.user.id);
        self.inner.rooms.add_connection(&identity.user.id, &outbox);
        {
            let mut sessions = lock(&self.inner.sessions);
            if sessions.shut_down {
                outbox.shut_down();
            }
            sessions.open.insert(
                conn,
                OpenSession {
                    outbox: outbox.clone(),
                    activity: activity.clone(),
                },
            );
        }
        self.inner.metrics.connection_opened();
        // Checked after the connection is registered, so a ban made
        // meanwhile finds it there or is seen here.
        if self.is_banned(&identity.user.id) {
            outbox.reply(bans::server_ban_frame());
            outbox.hang_up(Dropped::Banned);
        }
        let session = Session {
            hub: self.inner.clone(),
            id: format!("s_{}", ulid::Ulid::new()),
            user: Arc::new(EncodedUser::new(identity.user)),
            rooms: identity.rooms,
            role: identity.role,
            guest_token: identity.guest_token,
            outbox,
            joined: HashSet::new(),
            sends: TokenBucket::new(limits.send_rate, limits.send_burst),
            typing: TokenBucket::new(limits.typing_rate, limits.typing_rate.max(1.0)),
            searches: TokenBucket::new(limits.search_rate, (limits.search_rate * 5.0).max(1.0)),
            lists: TokenBucket::new(LIST_RATE, LIST_RATE * 4.0),
            refusals: TokenBucket::new(limits.error_rate, (limits.error_rate * 10.0).max(1.0)),
            over_error_budget: false,
            activity,
        };
        (session, receiver)
    }

    /// Resolves when connections must close because the server is shutting
    /// down. Sessions learn it from their outbox; this is for a transport's
    /// connections that have no session yet.
    pub async fn disconnecting(&self) {
        self.inner.disconnect.cancelled().await;
    }

    /// Whether the node can serve: not shutting down, (in a cluster) the
    /// broker reaching the other nodes, commits succeeding and storage
    /// answering. A store that answers reads while its commits fail is not
    /// ready: only a commit that succeeds (a send's, or the committer's
    /// probe) makes the node ready again.
    pub async fn ready(&self) -> Result<(), String> {
        if self.inner.closing.is_cancelled() {
            return Err("shutting down".into());
        }
        self.inner.broker.health().map_err(|e| e.to_string())?;
        if let Some(error) = self.inner.commits.failing() {
            return Err(format!("commits are failing ({error})"));
        }
        self.inner.store.check().await.map_err(|e| e.to_string())
    }

    /// Stops taking sends, waits until every accepted send is committed and
    /// answered, then tells transports to disconnect.
    pub async fn shutdown(&self) {
        self.inner.closing.cancel();
        let committer = lock(&self.inner.committer).take();
        if let Some(task) = committer
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "committer task failed");
        }
        self.inner.people.flush().await;
        let mut sessions = lock(&self.inner.sessions);
        sessions.shut_down = true;
        for open in sessions.open.values() {
            open.outbox.shut_down();
        }
        drop(sessions);
        self.inner.disconnect.cancel();
    }
}

/// Delivers waiting presence and typing events every `period`, until the
/// registry is gone.
async fn flush_presence(rooms: std::sync::Weak<Rooms>, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(rooms) = rooms.upgrade() else {
            return;
        };
        rooms.flush_waiting();
    }
}

/// One connection's view of the core: its user, its rooms, its limits.
///
/// Requests are handled one at a time in arrival order, so replies to one
/// connection come in the order of its requests (acks excepted: they follow
/// the commit, but still in the order of that connection's sends).
pub struct Session {
    hub: Arc<HubInner>,
    id: String,
    /// Encoded once: every `joined` reply of its rooms lists it.
    user: Arc<EncodedUser>,
    /// The rooms this user may use at all (join, send, read, …).
    rooms: RoomAccess,
    /// What they may do to others' messages.
    role: Role,
    /// For a guest: the credential `welcome` hands them (then `None`).
    guest_token: Option<String>,
    outbox: Outbox,
    joined: HashSet<Arc<str>>,
    sends: TokenBucket,
    typing: TokenBucket,
    searches: TokenBucket,
    /// `rooms` and `directory` requests this connection may still make.
    lists: TokenBucket,
    /// Error replies this connection may still cause (`--max-errors-per-sec`).
    refusals: TokenBucket,
    /// It caused more: its transport pauses reading ([`Session::read_pause`]).
    over_error_budget: bool,
    /// When this connection last asked for something other than `ping`.
    activity: admin::Activity,
}

/// The people writer's queue is full.
pub(crate) fn people_full() -> Invalid {
    Invalid {
        code: ErrorCode::Overloaded,
        message: "too many read markers waiting to be stored; retry shortly".into(),
    }
}

fn rejected(reference: Option<Ref>, code: ErrorCode, message: impl Into<String>) -> ServerFrame {
    ServerFrame::Error {
        reference,
        body: ErrorBody {
            code,
            message: message.into(),
            room: None,
        },
    }
}

pub(crate) fn store_failed(reference: Option<Ref>, e: &StoreError) -> ServerFrame {
    tracing::warn!(error = %e, "history read failed");
    rejected(
        reference,
        ErrorCode::Internal,
        format!("history unavailable ({e})"),
    )
}

impl Session {
    pub fn user(&self) -> &User {
        &self.user
    }

    /// The session id, `s_…`, as in `welcome`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The first frame of every connection. It hands over a guest's
    /// credential, which the session does not keep after (a few hundred
    /// bytes less for every open connection).
    pub fn welcome(&mut self, heartbeat: Duration) -> ServerFrame {
        ServerFrame::Welcome(WelcomeBody {
            session: self.id.clone(),
            user: self.user.user().clone(),
            heartbeat_ms: heartbeat.as_millis() as u64,
            text: "Welcome to the chat server!".into(),
            guest_token: self.guest_token.take(),
        })
    }

    /// Answers a frame that could not be parsed.
    pub fn reject(&mut self, error: RequestError) {
        self.count_refusal();
        self.outbox
            .reply(rejected(error.reference, error.code, error.message));
    }

    fn count_refusal(&mut self) {
        if !self.refusals.take_or_borrow() {
            self.over_error_budget = true;
        }
    }

    /// How long the transport should stop reading from this connection
    /// because it caused more error replies than its budget allows; `None`
    /// while it is within the budget. The pause lasts until the refusal
    /// that overdrew the budget is paid for, so a client that erred in a
    /// burst hardly notices, and a flood is slowed to the budget's rate by
    /// TCP backpressure.
    pub fn read_pause(&mut self) -> Option<Duration> {
        std::mem::take(&mut self.over_error_budget).then(|| self.refusals.until_repaid())
    }

    /// Handles one request; every outcome reaches the client through the
    /// outbox.
    pub async fn handle(&mut self, envelope: Envelope) {
        self.handle_reporting(envelope).await;
    }

    /// [`Session::handle`], also telling whether a reply to the request was
    /// or will be queued: every request gets one except an accepted
    /// `typing` notice. A transport whose clients expect an answer to each
    /// request (Socket.IO ack callbacks) answers that one itself.
    pub async fn handle_reporting(&mut self, envelope: Envelope) -> bool {
        let reference = envelope.reference;
        if !matches!(envelope.request, Request::Ping) {
            self.activity.touch();
        }
        if self.outbox.take_evicted() {
            self.forget_evicted_rooms();
        }
        let silent_on_success = matches!(envelope.request, Request::Typing { .. });
        match self.dispatch(reference.clone(), envelope.request).await {
            Ok(()) => !silent_on_success,
            Err(invalid) => {
                self.count_refusal();
                self.outbox
                    .reply(rejected(reference, invalid.code, invalid.message));
                true
            }
        }
    }

    /// Runs one request. Every request that names a room has it through
    /// [`Session::room`] before its handler sees it, so each is held to
    /// the same rules and the same `rooms` claim.
    async fn dispatch(&mut self, reference: Option<Ref>, request: Request) -> Result<(), Invalid> {
        match request {
            Request::Join { room, since } => {
                let room = self.room(room)?;
                self.join(reference, room, since).await
            }
            Request::Leave { room } => {
                let room = self.room(room)?;
                self.leave(reference, room)
            }
            Request::Send {
                room,
                text,
                id,
                reply_to,
            } => {
                let room = self.room(room)?;
                validate::text(&text, self.hub.limits.max_text_chars)?;
                self.submit(reference, room, id, Action::Send { text, reply_to })
            }
            Request::Edit {
                room,
                seq,
                text,
                id,
            } => {
                let room = self.room(room)?;
                validate::text(&text, self.hub.limits.max_text_chars)?;
                self.submit(reference, room, id, Action::Edit { target: seq, text })
            }
            Request::Delete { room, seq, id } => {
                let room = self.room(room)?;
                self.submit(reference, room, id, Action::Delete { target: seq })
            }
            Request::React {
                room,
                seq,
                emoji,
                remove,
                id,
            } => {
                let room = self.room(room)?;
                validate::emoji(&emoji)?;
                let action = Action::React {
                    target: seq,
                    emoji,
                    remove,
                };
                self.submit(reference, room, id, action)
            }
            Request::Pin {
                room,
                seq,
                remove,
                id,
            } => {
                let room = self.room(room)?;
                let action = Action::Pin {
                    target: seq,
                    remove,
                };
                self.submit(reference, room, id, action)
            }
            Request::History {
                room,
                before,
                after,
                limit,
            } => {
                let room = self.room(room)?;
                self.history(reference, room, before, after, limit).await
            }
            Request::Typing { room } => {
                let room = self.room(room)?;
                self.typing(room)
            }
            Request::Search {
                query,
                room,
                cursor,
                limit,
            } => {
                let room = room.map(|room| self.room(room)).transpose()?;
                self.search(reference, query, room, cursor, limit).await
            }
            Request::Read { room, seq } => {
                let room = self.room(room)?;
                self.read(reference, room, seq)
            }
            Request::Rooms => self.user_rooms(reference).await,
            Request::Directory => self.directory(reference).await,
            Request::Dm { user } => self.dm(reference, user).await,
            Request::Ping => {
                self.outbox.reply(ServerFrame::Pong {
                    reference,
                    body: PongBody {
                        ts: committer::now_ms(),
                    },
                });
                Ok(())
            }
        }
    }

    /// The room a request names, if this session may use it: a valid room
    /// name (`invalid_room`) that no ban keeps the user out of and the
    /// user's `rooms` claim allows (`forbidden`). The one check for every
    /// request, so that reading, writing, typing in and leaving a room are
    /// refused exactly where joining it is.
    fn room(&self, name: String) -> Result<Arc<str>, Invalid> {
        validate::room(&name, self.hub.limits.max_room_chars)?;
        self.may_enter(&name)?;
        if !self.rooms.allows(&name) {
            return Err(Invalid {
                code: ErrorCode::Forbidden,
                message: format!("your token does not allow room `{name}`"),
            });
        }
        if !self.may_use_dm(&name) {
            return Err(Invalid {
                code: ErrorCode::Forbidden,
                message: "a direct-message room is for its two users only".into(),
            });
        }
        Ok(Arc::from(name))
    }

    /// Forgets the rooms a ban took this connection out of (the registry
    /// no longer has it there), giving back their subscriptions: it is no
    /// longer joined, so a write there is `not_joined` and a `join`
    /// after the ban is lifted is a new one.
    fn forget_evicted_rooms(&mut self) {
        let conn = self.outbox.conn();
        let rooms = &self.hub.rooms;
        let gone: Vec<Arc<str>> = self
            .joined
            .iter()
            .filter(|room| !rooms.is_member(room, conn))
            .cloned()
            .collect();
        for room in gone {
            self.joined.remove(&room);
            self.hub.broker.unsubscribe(&room);
        }
    }

    /// Gives up a join that did not complete: out of the room again (its
    /// leave announced if it was announced), its subscription given back.
    fn abandon_join(&mut self, room: &Arc<str>) {
        self.joined.remove(room);
        if let Some(user) = self.hub.rooms.unregister(room, self.outbox.conn()) {
            self.announce(room, PresenceEvent::Leave, &user);
        }
        self.hub.broker.unsubscribe(room);
    }

    /// Refuses a room an operator banned the user from (or the server).
    fn may_enter(&self, room: &str) -> Result<(), Invalid> {
        match self.hub.rooms.bans().refusal(&self.user.user().id, room) {
            Some(refused) => Err(refused),
            None => Ok(()),
        }
    }

    /// Whether `room`, if it is a direct-message room, is this user's
    /// (`validate::room` let only exact direct-message names through).
    fn may_use_dm(&self, room: &str) -> bool {
        !room.starts_with(chat_protocol::people::DM_PREFIX)
            || chat_protocol::people::dm_peer(room, &self.user.user().id).is_some()
    }

    fn publish(&self, room: &Arc<str>, kind: EventKind, skip: Option<ConnId>) {
        self.hub
            .broker
            .publish(RoomEvent::new(room.clone(), kind, skip));
    }

    fn announce(&self, room: &Arc<str>, event: PresenceEvent, user: &User) {
        let skip = (event == PresenceEvent::Join).then_some(self.outbox.conn());
        self.publish(
            room,
            EventKind::Presence {
                event,
                user: user.clone(),
            },
            skip,
        );
    }

    async fn join(
        &mut self,
        reference: Option<Ref>,
        room: Arc<str>,
        since: Option<u64>,
    ) -> Result<(), Invalid> {
        let limit = self.hub.limits.max_rooms_per_connection;
        if !self.joined.contains(&room) && self.joined.len() >= limit {
            return Err(Invalid {
                code: ErrorCode::Forbidden,
                message: format!("at most {limit} rooms per connection; leave one first"),
            });
        }
        let rooms = &self.hub.rooms;
        let conn = self.outbox.conn();
        let registered = rooms.register(&room, &self.user, &self.outbox);
        self.joined.insert(room.clone());
        if !registered.rejoin {
            // Listen to the room cluster-wide before reading its history,
            // so the history and the live events overlap rather than miss.
            if let Err(e) = self.hub.broker.subscribe(&room).await {
                tracing::warn!(error = %e, room = %room, "join refused");
                self.joined.remove(&room);
                rooms.unregister(&room, conn);
                self.hub.broker.unsubscribe(&room);
                self.outbox
                    .reply(rejected(reference, ErrorCode::Internal, e.to_string()));
                return Ok(());
            }
            if registered.first_of_user {
                self.announce(&room, PresenceEvent::Join, &self.user);
            }
        }
        let limit = match since {
            Some(_) => RESUME_LIMIT,
            None => JOIN_HISTORY,
        };
        let user_id = &self.user.user().id;
        match self.hub.store.join_page(&room, user_id, since, limit).await {
            Ok((
                Page {
                    messages,
                    changes,
                    pins,
                    more,
                    latest_seq,
                },
                read,
            )) => {
                let complete = since.is_none() || !more;
                let remote = self.hub.broker.remote_members(&room);
                // A ban made while the history was read is seen here, or
                // took the connection out of the room already
                // (`finish_join` finds it gone).
                let joined = self.may_enter(&room).is_ok()
                    && rooms.finish_join(&room, conn, latest_seq, |mut members| {
                        if !remote.is_empty() {
                            let mut users = members.into_users();
                            for user in remote {
                                if !users.iter().any(|m| m.id == user.id) {
                                    users.push(user);
                                }
                            }
                            members = Members::Users(users);
                        }
                        ServerFrame::Joined {
                            reference,
                            body: JoinedBody {
                                room: room.to_string(),
                                seq: latest_seq,
                                members,
                                messages,
                                events: changes,
                                pins,
                                complete,
                                last_read: read.last_read,
                                unread: read.unread,
                                unread_mentions: read.unread_mentions,
                            },
                        }
                    });
                if !joined {
                    self.abandon_join(&room);
                    return Err(Invalid {
                        code: ErrorCode::Forbidden,
                        message: bans::ROOM_BANNED.into(),
                    });
                }
                self.become_member(&room, &read, latest_seq);
            }
            Err(e) if registered.rejoin => {
                // Still a member: resume live delivery after the error.
                rooms.finish_join(&room, conn, 0, |_| store_failed(reference, &e));
            }
            Err(e) => {
                self.abandon_join(&room);
                self.outbox.reply(store_failed(reference, &e));
            }
        }
        Ok(())
    }

    fn leave(&mut self, reference: Option<Ref>, room: Arc<str>) -> Result<(), Invalid> {
        // Leaving is the person's choice, on every device: the room is no
        // longer theirs (a connection that closes leaves nothing).
        let left = PersonChange::Left {
            user: self.user.user().id.clone(),
            room: room.to_string(),
        };
        self.hub
            .people
            .record(left, None)
            .map_err(|_| people_full())?;
        if self.joined.remove(&room) {
            if let Some(user) = self.hub.rooms.unregister(&room, self.outbox.conn()) {
                self.announce(&room, PresenceEvent::Leave, &user);
            }
            self.hub.broker.unsubscribe(&room);
        }
        self.outbox.reply(ServerFrame::Left {
            reference,
            body: LeftBody {
                room: room.to_string(),
            },
        });
        Ok(())
    }

    /// Queues a new entry of `room` for the committer: a message, or a
    /// change to one. Its ack (or refusal) comes once the commit is over.
    fn submit(
        &mut self,
        reference: Option<Ref>,
        room: Arc<str>,
        id: Option<String>,
        action: Action,
    ) -> Result<(), Invalid> {
        let received = Instant::now();
        if let Some(id) = &id {
            validate::client_id(id)?;
        }
        if !self.joined.contains(&room) {
            return Err(Invalid {
                code: ErrorCode::NotJoined,
                message: format!("join room `{room}` before writing to it"),
            });
        }
        if !self.sends.try_take() {
            return Err(Invalid {
                code: ErrorCode::RateLimited,
                message: format!(
                    "at most {} messages and changes per second (bursts of {})",
                    self.hub.limits.send_rate, self.hub.limits.send_burst
                ),
            });
        }
        let pending = PendingSend {
            draft: Draft {
                room: room.to_string(),
                id: id.unwrap_or_else(|| format!("m_{}", ulid::Ulid::new())),
                from: self.user.user().clone(),
                role: self.role,
                action,
            },
            reference,
            reply_to: self.outbox.clone(),
            received,
            room,
        };
        self.hub.commits.submit(pending).map_err(|e| Invalid {
            code: ErrorCode::Overloaded,
            message: match e {
                SubmitError::Full => "too many messages waiting to be stored; retry shortly".into(),
                SubmitError::Closed => {
                    "the server is shutting down; retry after reconnecting".into()
                }
            },
        })
    }

    async fn history(
        &mut self,
        reference: Option<Ref>,
        room: Arc<str>,
        before: Option<u64>,
        after: Option<u64>,
        limit: Option<u64>,
    ) -> Result<(), Invalid> {
        let limit = match limit {
            None => HISTORY_DEFAULT,
            Some(0) => {
                return Err(Invalid {
                    code: ErrorCode::BadRequest,
                    message: "`limit` must be at least 1".into(),
                });
            }
            Some(n) => n.min(HISTORY_MAX as u64) as usize,
        };
        let page = match after {
            Some(after) => self.hub.store.after(&room, after, limit).await,
            None => self.hub.store.before(&room, before, limit).await,
        };
        self.outbox.reply(match page {
            Ok(page) => ServerFrame::History {
                reference,
                body: HistoryBody {
                    room: room.to_string(),
                    messages: page.messages,
                    events: page.changes,
                    more: page.more,
                },
            },
            Err(e) => store_failed(reference, &e),
        });
        Ok(())
    }

    /// Searches `room`, or every room this user may read (their `rooms`
    /// claim; history needs no join, so neither does search).
    async fn search(
        &mut self,
        reference: Option<Ref>,
        query: String,
        room: Option<Arc<str>>,
        cursor: Option<u64>,
        limit: Option<u64>,
    ) -> Result<(), Invalid> {
        let words = validate::search_words(&query)?;
        if !self.searches.try_take() {
            return Err(Invalid {
                code: ErrorCode::RateLimited,
                message: format!(
                    "at most {} searches per second",
                    self.hub.limits.search_rate
                ),
            });
        }
        let limit = match limit {
            None => SEARCH_DEFAULT,
            Some(0) => {
                return Err(Invalid {
                    code: ErrorCode::BadRequest,
                    message: "`limit` must be at least 1".into(),
                });
            }
            Some(n) => n.min(SEARCH_MAX as u64) as usize,
        };
        let rooms = match &room {
            Some(room) => SearchScope::Room(room.to_string()),
            None => SearchScope::Readable(self.rooms.clone()),
        };
        let search = Search {
            words,
            rooms,
            cursor,
            limit,
        };
        self.outbox
            .reply(match self.hub.store.search(&search).await {
                Ok(mut found) => ServerFrame::SearchResults {
                    reference,
                    body: SearchResultsBody {
                        query,
                        room: room.map(|r| r.to_string()),
                        results: {
                            // Other people's direct messages are no one
                            // else's to read: a page may come shorter.
                            // Nor are rooms the user is banned from.
                            found.messages.retain(|m| {
                                self.may_use_dm(&m.room) && self.may_enter(&m.room).is_ok()
                            });
                            found.messages
                        },
                        next: found.next,
                    },
                },
                Err(e) => store_failed(reference, &e),
            });
        Ok(())
    }

    /// Makes this user a member of `room` under their current name, unless
    /// `read` says they are one already: joining again costs no write. A
    /// new member has read up to `seq`, what their `joined` reply showed.
    fn become_member(&self, room: &str, read: &ReadState, seq: u64) {
        let user = self.user.user();
        if read.member_name.as_deref() == Some(user.name.as_str()) {
            return;
        }
        let joined = PersonChange::Joined {
            user: user.clone(),
            room: room.to_owned(),
            read_to: seq,
        };
        if self.hub.people.record(joined, None).is_err() {
            // The membership is written at the next join; the join itself
            // stands.
            tracing::warn!(room, "membership not recorded: the queue is full");
        }
    }

    /// Moves the read marker; answered once stored.
    fn read(&mut self, reference: Option<Ref>, room: Arc<str>, seq: u64) -> Result<(), Invalid> {
        let change = PersonChange::Read {
            user: self.user.user().id.clone(),
            room: room.to_string(),
            seq,
        };
        let asker = Asker {
            outbox: self.outbox.clone(),
            reference,
        };
        self.hub
            .people
            .record(change, Some(asker))
            .map_err(|_| people_full())
    }

    /// Takes one of the connection's lists of rooms (`rooms`,
    /// `directory`): each may cost the store a query per room, so a
    /// connection gets [`LIST_RATE`] a second.
    fn take_list(&mut self) -> Result<(), Invalid> {
        if self.lists.try_take() {
            return Ok(());
        }
        Err(Invalid {
            code: ErrorCode::RateLimited,
            message: format!("at most {LIST_RATE} room lists and directories per second"),
        })
    }

    /// The user's rooms that their `rooms` claim still allows.
    async fn user_rooms(&mut self, reference: Option<Ref>) -> Result<(), Invalid> {
        self.take_list()?;
        let rooms = self.hub.store.user_rooms(&self.user.user().id).await;
        self.outbox.reply(match rooms {
            Ok(mut rooms) => {
                rooms.retain(|r| self.rooms.allows(&r.room) && self.may_enter(&r.room).is_ok());
                ServerFrame::Rooms {
                    reference,
                    body: RoomsBody { rooms },
                }
            }
            Err(e) => store_failed(reference, &e),
        });
        Ok(())
    }

    /// Public rooms the user may join (neither their `rooms` claim nor a
    /// ban keeps them out of).
    async fn directory(&mut self, reference: Option<Ref>) -> Result<(), Invalid> {
        self.take_list()?;
        let rooms = self.hub.store.directory(DIRECTORY_MAX).await;
        self.outbox.reply(match rooms {
            Ok(mut rooms) => {
                rooms.retain(|r| self.rooms.allows(&r.room) && self.may_enter(&r.room).is_ok());
                ServerFrame::Directory {
                    reference,
                    body: DirectoryBody { rooms },
                }
            }
            Err(e) => store_failed(reference, &e),
        });
        Ok(())
    }

    /// Opens the direct-message room with `peer` and joins it: both are
    /// members from now on (the peer with everything in it unread), and
    /// each of their connections hears of it (`room_added`).
    async fn dm(&mut self, reference: Option<Ref>, peer: String) -> Result<(), Invalid> {
        let me = self.user.user().clone();
        let room = self.room(people::dm_room_name(&me.id, &peer)?)?;
        // The opener is a member, stored with the peer before the answer,
        // so the peer can open the room from their side at once.
        let opener = PersonChange::Joined {
            user: me.clone(),
            room: room.to_string(),
            read_to: 0,
        };
        self.hub
            .people
            .record(opener, None)
            .map_err(|_| people_full())?;
        let other = match self.hub.invite(&room, &me, &peer).await {
            Ok(other) => other,
            Err(people::Refused::Invalid(invalid)) => return Err(invalid),
            Err(people::Refused::Store(e)) => {
                self.outbox.reply(store_failed(reference, &e));
                return Ok(());
            }
        };
        self.join(reference, room.clone(), None).await?;
        self.hub
            .announce_dm(&room, &me, &other, Some(self.outbox.conn()));
        Ok(())
    }

    fn typing(&mut self, room: Arc<str>) -> Result<(), Invalid> {
        if !self.joined.contains(&room) {
            return Err(Invalid {
                code: ErrorCode::NotJoined,
                message: format!("join room `{room}` before typing in it"),
            });
        }
        // Typing notices are hints: excess ones are dropped, not refused.
        if self.typing.try_take() {
            self.publish(
                &room,
                EventKind::Typing {
                    user: self.user.user().clone(),
                },
                Some(self.outbox.conn()),
            );
        }
        Ok(())
    }
}

impl Drop for Session {
    /// Leaving every room on drop, rather than in an explicit close, means a
    /// transport that fails in any way still announces the user's departure.
    fn drop(&mut self) {
        let conn = self.outbox.conn();
        for room in std::mem::take(&mut self.joined) {
            if let Some(user) = self.hub.rooms.unregister(&room, conn) {
                self.announce(&room, PresenceEvent::Leave, &user);
            }
            self.hub.broker.unsubscribe(&room);
        }
        self.hub.rooms.remove_connection(&self.user.user().id, conn);
        lock(&self.hub.sessions).open.remove(&conn);
        self.hub.metrics.connection_closed();
    }
}
