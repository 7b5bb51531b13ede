//! Cluster mode: the [`RedisBroker`], fan-out between nodes over Redis.
//!
//! **Events.** Each room has a pub/sub channel, `{prefix}room:{name}`. A
//! node subscribes to it while it has members in the room (the first
//! local join subscribes, the last leave unsubscribes) and publishes every
//! event of the room there: messages after their commit, presence and
//! typing at once. Its own events it also delivers locally without the
//! round trip. Events are JSON: `{"node", "room", "kind", …}`.
//!
//! **Order.** Messages reach a node from several publishers, so each room
//! has a [`Sequencer`]: delivery starts after the room's latest `seq` read
//! from the store once the subscription is confirmed (the joiner's history
//! read comes after that, so it and the live stream overlap rather than
//! miss), then releases messages strictly in `seq` order, drops repeats, and
//! holds any message above a hole. A hole still open after [`GAP_WAIT`] is
//! filled from the store (`Store::after`): that covers pub/sub loss and a
//! node that died between its commit and its publish. After a lost Redis
//! connection every room is caught up from the store the same way.
//!
//! **People.** News for a person rather than a room (a read marker that
//! moved, a direct-message room opened) goes on one channel,
//! `{prefix}people`, that every node listens to; each delivers it to the
//! person's connections it holds. It carries no order or recovery: it is
//! a hint that the next `rooms` or `join` confirms from the store.
//!
//! **Bans.** A ban made or lifted on a node goes on one channel,
//! `{prefix}bans`, that every node listens to; each carries it out on the
//! connections it holds (`Rooms::enforce`) and announces who left rooms.
//! Pub/sub may lose it (a node subscribing after it was published, or
//! whose subscription was down): every node also reads the bans from the
//! store periodically (`chat_core::bans`), which catches it up.
//!
//! **Presence.** Each node keeps its users of each room in the hash
//! `{prefix}members:{node}:{room}` (user id → user JSON), the rooms it has
//! users in in `{prefix}rooms:{node}`, and proves it is alive with the key
//! `{prefix}node:{node}`, refreshed three times per node TTL, listed in the
//! set `{prefix}nodes`. A node subscribing to a room loads the other live
//! nodes' hashes for it and then follows their presence events, so the
//! `joined` members list is cluster-wide without a Redis round trip. A node
//! whose key expired (killed with -9) is found by the others' next
//! heartbeat; each announces `leave` for its users to its own members, and
//! the first to take it off the set deletes its hashes.
//!
//! **Outages.** While Redis is unreachable [`Broker::health`] fails: sends
//! are refused (the committer checks it before storing) and `/readyz` says
//! 503. The command connection reconnects by itself; the subscription task
//! reconnects, subscribes again, and catches every room up from the store.
//! A failed command or a lost subscription wakes the heartbeat task, which
//! then beats every [`RECOVERY_PROBE`] instead of every third of the node
//! TTL until Redis answers: the first beat that succeeds rewrites this
//! node's key and presence if Redis lost them, announces its users again,
//! and makes the node healthy. Waiting for the regular heartbeat instead
//! kept sends refused for seconds after Redis was back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chat_protocol::{PresenceBody, PresenceEvent, ServerFrame, TypingBody, User};
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, watch};

use super::sequencer::{MAX_HELD, Sequencer};
use chat_core::bans::BanChange;
use chat_core::broker::{Broker, BrokerError};
use chat_core::rooms::Rooms;
use chat_core::store::{Store, StoreError};
use chat_core::sync::lock;
use chat_core::{EventKind, RoomEvent};

/// How long a hole in a room's sequence may stay open before it is filled
/// from the store.
pub const GAP_WAIT: Duration = Duration::from_millis(250);
/// Bound on one Redis operation (connecting, a command, a subscription).
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a join waits for its room's subscription.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before retrying after a failure.
const RETRY: Duration = Duration::from_millis(250);
/// How often the heartbeat task tries Redis while it does not answer.
const RECOVERY_PROBE: Duration = Duration::from_millis(200);
/// Messages read from the store per catch-up page.
const CATCH_UP_PAGE: usize = 1000;
/// Redis commands sent per pipeline.
const WRITE_BATCH: usize = 512;

/// Messages delivered from the store rather than Redis (holes filled,
/// catch-ups after a lost subscription or a node's death).
pub const CAUGHT_UP: &str = "chat_cluster_caught_up_messages_total";
/// Times the Redis subscription was lost and re-established.
pub const SUBSCRIPTION_LOST: &str = "chat_cluster_subscription_lost_total";
/// Live nodes of the cluster, this one included, at the last heartbeat.
pub const NODES: &str = "chat_cluster_nodes";

/// Cluster settings (`--redis-url`, `--redis-prefix`, `--node-ttl-ms`).
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    /// Prepended to every key and channel.
    pub prefix: String,
    /// How long a node that stopped refreshing its heartbeat counts as alive.
    pub node_ttl: Duration,
}

/// Why the broker could not start; `url` is always without its password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid Redis URL {url}: {source}")]
    Url {
        url: String,
        source: redis::RedisError,
    },
    #[error("cannot connect to Redis at {url}: {source}")]
    Connect {
        url: String,
        source: redis::RedisError,
    },
    #[error("cannot connect to Redis at {url}: timed out")]
    TimedOut { url: String },
}

/// Why a room's subscription could not be prepared (it is retried).
#[derive(Debug, thiserror::Error)]
enum PrepareError {
    #[error("cannot read the room's history: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read the room's presence from Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// An event on the wire between nodes: the native frame of the event,
/// so every kind of room event travels without a mapping of its own.
#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    node: String,
    /// The room; for news for a person, their user id.
    room: String,
    frame: ServerFrame,
}

/// A ban made or lifted, on the wire between nodes.
#[derive(Debug, Serialize, Deserialize)]
struct BanWire {
    node: String,
    change: BanChange,
}

/// A Redis command for the writer task, sent in order.
#[derive(Debug)]
enum Write {
    Publish {
        room: Arc<str>,
        payload: Vec<u8>,
    },
    /// News for a person, on the channel every node listens to.
    PublishPeople {
        payload: Vec<u8>,
    },
    /// A ban, on the channel every node listens to.
    PublishBan {
        payload: Vec<u8>,
    },
    Present {
        room: Arc<str>,
        user: User,
    },
    Absent {
        room: Arc<str>,
        user_id: String,
    },
}

#[derive(Debug)]
enum Control {
    Subscribe(Arc<str>),
    Unsubscribe(Arc<str>),
}

/// A room this node listens to, while it has members there.
struct RoomSub {
    name: Arc<str>,
    /// True once the subscription is confirmed and the start point known.
    ready: watch::Sender<bool>,
    /// Set when the last local member left: background work stops.
    closed: AtomicBool,
    state: Mutex<RoomState>,
}

#[derive(Default)]
struct RoomState {
    seq: Sequencer,
    /// Users on other nodes: node → user id → user.
    remote: HashMap<String, HashMap<String, User>>,
    /// A catch-up from the store is under way or scheduled.
    filling: bool,
    /// Presence events received from other nodes, counted.
    presence_seen: u64,
}

struct Sub {
    refs: usize,
    room: Arc<RoomSub>,
}

struct Shared {
    node: String,
    prefix: String,
    node_ttl: Duration,
    client: redis::Client,
    conn: ConnectionManager,
    rooms: Arc<Rooms>,
    store: Arc<dyn Store>,
    writes: mpsc::UnboundedSender<Write>,
    control: mpsc::UnboundedSender<Control>,
    subs: Mutex<HashMap<Arc<str>, Sub>>,
    /// This node's users per room, as announced: what it keeps in Redis.
    local: Mutex<HashMap<Arc<str>, HashMap<String, User>>>,
    /// The last Redis command (write or heartbeat) succeeded.
    writer_ok: AtomicBool,
    /// The subscription connection is up.
    listener_ok: AtomicBool,
    /// Presence writes were lost: rewrite this node's presence.
    resync: AtomicBool,
    /// A command failed or the subscription was lost: the heartbeat task
    /// beats now, then often until Redis answers.
    redis_failed: Notify,
    /// The other nodes alive at the last heartbeat.
    known_nodes: Mutex<HashSet<String>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A Redis connection made at start-up, before the hub exists.
pub struct Connected {
    config: RedisConfig,
    client: redis::Client,
    conn: ConnectionManager,
}

impl Connected {
    /// The command connection, shared (for the dashboard's node summaries).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub fn config(&self) -> &RedisConfig {
        &self.config
    }
}

/// The cluster broker. See the module documentation.
pub struct RedisBroker {
    shared: Arc<Shared>,
}

impl RedisBroker {
    /// Connects to Redis; fails at once, with the URL minus its password,
    /// if it cannot be reached.
    pub async fn connect(config: RedisConfig) -> Result<Connected, ConnectError> {
        let url = redact(&config.url);
        let client =
            redis::Client::open(config.url.as_str()).map_err(|source| ConnectError::Url {
                url: url.clone(),
                source,
            })?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let failed = |source| ConnectError::Connect {
            url: url.clone(),
            source,
        };
        let mut conn = tokio::time::timeout(
            OP_TIMEOUT * 2,
            ConnectionManager::new_with_config(client.clone(), manager),
        )
        .await
        .map_err(|_| ConnectError::TimedOut { url: url.clone() })?
        .map_err(failed)?;
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(failed)?;
        Ok(Connected {
            config,
            client,
            conn,
        })
    }

    /// Starts the broker's tasks (writer, subscriber, heartbeat) over a
    /// connection from [`RedisBroker::connect`]; `node` is this node's id
    /// in the cluster.
    pub fn start(
        connected: Connected,
        node: String,
        rooms: Arc<Rooms>,
        store: Arc<dyn Store>,
    ) -> RedisBroker {
        metrics::describe_counter!(
            CAUGHT_UP,
            "Messages delivered from the store instead of Redis (gaps, catch-ups)"
        );
        metrics::describe_counter!(SUBSCRIPTION_LOST, "Redis subscriptions lost and re-made");
        metrics::describe_gauge!(NODES, "Live cluster nodes at the last heartbeat");
        let (writes, write_rx) = mpsc::unbounded_channel();
        let (control, control_rx) = mpsc::unbounded_channel();
        tracing::info!(node = %node, prefix = %connected.config.prefix, "cluster mode: Redis broker");
        let shared = Arc::new(Shared {
            node,
            prefix: connected.config.prefix,
            node_ttl: connected.config.node_ttl,
            client: connected.client,
            conn: connected.conn,
            rooms,
            store,
            writes,
            control,
            subs: Mutex::new(HashMap::new()),
            local: Mutex::new(HashMap::new()),
            writer_ok: AtomicBool::new(true),
            listener_ok: AtomicBool::new(false),
            resync: AtomicBool::new(true),
            redis_failed: Notify::new(),
            known_nodes: Mutex::new(HashSet::new()),
        });
        tokio::spawn(write(shared.clone(), write_rx));
        tokio::spawn(listen(shared.clone(), control_rx));
        tokio::spawn(heartbeat(shared.clone()));
        RedisBroker { shared }
    }

    /// This node's id in the cluster.
    pub fn node(&self) -> &str {
        &self.shared.node
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn publish(&self, event: Arc<RoomEvent>) {
        self.shared.publish(event);
    }

    fn publish_ban(&self, change: &BanChange) {
        let shared = &self.shared;
        let wire = BanWire {
            node: shared.node.clone(),
            change: change.clone(),
        };
        match serde_json::to_vec(&wire) {
            Ok(payload) => {
                let _ = shared.writes.send(Write::PublishBan { payload });
            }
            Err(error) => tracing::error!(%error, "cannot encode a ban for the cluster"),
        }
    }

    fn publish_to_user(&self, user: &str, frame: ServerFrame, skip: Option<chat_core::ConnId>) {
        let shared = &self.shared;
        shared.rooms.deliver_to_user(user, &frame, skip);
        shared.send_wire(user, frame, |payload| Write::PublishPeople { payload });
    }

    async fn subscribe(&self, room: &Arc<str>) -> Result<(), BrokerError> {
        let shared = &self.shared;
        let (sub, first) = {
            let mut subs = lock(&shared.subs);
            let entry = subs.entry(room.clone()).or_insert_with(|| Sub {
                refs: 0,
                room: Arc::new(RoomSub {
                    name: room.clone(),
                    ready: watch::Sender::new(false),
                    closed: AtomicBool::new(false),
                    state: Mutex::default(),
                }),
            });
            entry.refs += 1;
            (entry.room.clone(), entry.refs == 1)
        };
        if first {
            let _ = shared.control.send(Control::Subscribe(room.clone()));
        }
        let mut ready = sub.ready.subscribe();
        match tokio::time::timeout(SUBSCRIBE_TIMEOUT, ready.wait_for(|r| *r)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(BrokerError::Unavailable(
                "could not subscribe to the room's events in Redis".into(),
            )),
        }
    }

    fn unsubscribe(&self, room: &Arc<str>) {
        let shared = &self.shared;
        let mut subs = lock(&shared.subs);
        let Some(entry) = subs.get_mut(room) else {
            return;
        };
        entry.refs = entry.refs.saturating_sub(1);
        if entry.refs == 0 {
            if let Some(entry) = subs.remove(room) {
                entry.room.closed.store(true, Ordering::SeqCst);
            }
            let _ = shared.control.send(Control::Unsubscribe(room.clone()));
        }
    }

    fn remote_members(&self, room: &str) -> Vec<User> {
        let Some(sub) = self.shared.current(room) else {
            return Vec::new();
        };
        let state = lock(&sub.state);
        let mut seen = HashSet::new();
        state
            .remote
            .values()
            .flat_map(|users| users.values())
            .filter(|u| seen.insert(u.id.clone()))
            .cloned()
            .collect()
    }

    fn health(&self) -> Result<(), BrokerError> {
        let shared = &self.shared;
        if !shared.writer_ok.load(Ordering::SeqCst) {
            return Err(BrokerError::Unavailable("Redis does not answer".into()));
        }
        if !shared.listener_ok.load(Ordering::SeqCst) {
            return Err(BrokerError::Unavailable(
                "not subscribed to Redis (reconnecting)".into(),
            ));
        }
        Ok(())
    }
}

impl Shared {
    fn channel(&self, room: &str) -> String {
        format!("{}room:{room}", self.prefix)
    }

    /// Where bans go: every node listens, and carries them out.
    fn bans_channel(&self) -> String {
        format!("{}bans", self.prefix)
    }

    /// Delivers an event of this node to its members here and publishes it
    /// to the other nodes.
    fn publish(self: &Arc<Self>, event: Arc<RoomEvent>) {
        let room = event.room.clone();
        if let EventKind::Presence { event: e, user } = &event.kind {
            self.track_local(&room, *e, user);
        }
        let frame = event.to_frame();
        match (event.seq(), self.current(&room)) {
            (Some(seq), Some(sub)) => self.offer(&sub, seq, event),
            (Some(_), None) => {} // no member here
            (None, sub) => {
                // A user also connected to another node was announced
                // there, and stays present while there.
                let elsewhere = match (&event.kind, sub) {
                    (EventKind::Presence { user, .. }, Some(sub)) => lock(&sub.state)
                        .remote
                        .values()
                        .any(|users| users.contains_key(&user.id)),
                    _ => false,
                };
                if !elsewhere {
                    self.rooms.deliver(&event);
                }
            }
        }
        self.publish_wire(&room, frame);
    }

    /// A ban made or lifted on another node: carried out here, and whoever
    /// it took out of a room announced as leaving, as a leave of this
    /// node's.
    fn receive_ban(self: &Arc<Self>, payload: &[u8]) {
        let wire: BanWire = match serde_json::from_slice(payload) {
            Ok(wire) => wire,
            Err(error) => {
                tracing::warn!(%error, "ignoring an undecodable cluster ban");
                return;
            }
        };
        if wire.node == self.node {
            return; // carried out when made
        }
        for (room, user) in self.rooms.enforce(&wire.change) {
            let leave = EventKind::Presence {
                event: PresenceEvent::Leave,
                user: user.user().clone(),
            };
            self.publish(RoomEvent::new(room, leave, None));
        }
    }

    /// Where news for a person goes: every node listens, and delivers it
    /// to that person's connections there.
    fn people_channel(&self) -> String {
        format!("{}people", self.prefix)
    }

    fn node_key(&self, node: &str) -> String {
        format!("{}node:{node}", self.prefix)
    }

    fn nodes_key(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    fn members_key(&self, node: &str, room: &str) -> String {
        format!("{}members:{node}:{room}", self.prefix)
    }

    fn rooms_key(&self, node: &str) -> String {
        format!("{}rooms:{node}", self.prefix)
    }

    fn current(&self, room: &str) -> Option<Arc<RoomSub>> {
        lock(&self.subs).get(room).map(|s| s.room.clone())
    }

    fn publish_wire(&self, room: &Arc<str>, frame: ServerFrame) {
        self.send_wire(room, frame, |payload| Write::Publish {
            room: room.clone(),
            payload,
        });
    }

    /// Encodes `frame` for the other nodes (`to`: its room, or the user
    /// news for a person is for) and queues the write `publish` makes of it.
    fn send_wire(&self, to: &str, frame: ServerFrame, publish: impl FnOnce(Vec<u8>) -> Write) {
        let wire = Wire {
            node: self.node.clone(),
            room: to.to_owned(),
            frame,
        };
        match serde_json::to_vec(&wire) {
            Ok(payload) => {
                let _ = self.writes.send(publish(payload));
            }
            Err(error) => tracing::error!(%error, "cannot encode a cluster event"),
        }
    }

    /// Records a presence change of this node's users, in memory and Redis.
    fn track_local(&self, room: &Arc<str>, event: PresenceEvent, user: &User) {
        let mut local = lock(&self.local);
        match event {
            PresenceEvent::Join => {
                local
                    .entry(room.clone())
                    .or_default()
                    .insert(user.id.clone(), user.clone());
                let _ = self.writes.send(Write::Present {
                    room: room.clone(),
                    user: user.clone(),
                });
            }
            PresenceEvent::Leave => {
                if let Some(users) = local.get_mut(room) {
                    users.remove(&user.id);
                    if users.is_empty() {
                        local.remove(room);
                    }
                }
                let _ = self.writes.send(Write::Absent {
                    room: room.clone(),
                    user_id: user.id.clone(),
                });
            }
        }
    }

    /// Passes a message through its room's sequencer to the members, and
    /// schedules a catch-up if a hole opened.
    fn offer(self: &Arc<Self>, sub: &Arc<RoomSub>, seq: u64, event: Arc<RoomEvent>) {
        let mut state = lock(&sub.state);
        for event in state.seq.offer(seq, event) {
            self.rooms.deliver(&event);
        }
        self.schedule_fill(sub, &mut state);
    }

    fn schedule_fill(self: &Arc<Self>, sub: &Arc<RoomSub>, state: &mut RoomState) {
        if !state.seq.has_gap() || state.filling {
            return;
        }
        state.filling = true;
        let wait = if state.seq.held() > MAX_HELD {
            Duration::ZERO
        } else {
            GAP_WAIT
        };
        let (shared, sub) = (self.clone(), sub.clone());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            loop {
                if sub.closed.load(Ordering::SeqCst) {
                    return;
                }
                match shared.catch_up(&sub, true).await {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(room = %sub.name, %error, "filling a gap from the store failed; retrying");
                        tokio::time::sleep(RETRY).await;
                    }
                }
            }
        });
    }

    /// Delivers every stored message after the last one delivered. With
    /// `gap_only`, stops as soon as no hole is open.
    async fn catch_up(
        self: &Arc<Self>,
        sub: &Arc<RoomSub>,
        gap_only: bool,
    ) -> Result<(), StoreError> {
        loop {
            let last = {
                let mut state = lock(&sub.state);
                match state.seq.last() {
                    Some(last) if !gap_only || state.seq.has_gap() => last,
                    _ => {
                        state.filling = false;
                        return Ok(());
                    }
                }
            };
            let page = match self.store.after(&sub.name, last, CATCH_UP_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    lock(&sub.state).filling = false;
                    return Err(e);
                }
            };
            if gap_only {
                tracing::info!(room = %sub.name, after = last, found = page.messages.len() + page.changes.len(), "filled a gap from the store");
            }
            let mut state = lock(&sub.state);
            let mut released = 0u64;
            // Messages, then changes: the sequencer releases them in `seq`
            // order whatever order they are offered in.
            let messages = page
                .messages
                .into_iter()
                .map(|m| (m.seq, EventKind::Message(m)));
            let changes = page
                .changes
                .into_iter()
                .map(|c| (c.seq(), EventKind::Change(c)));
            for (seq, kind) in messages.chain(changes) {
                let event = RoomEvent::new(sub.name.clone(), kind, None);
                for event in state.seq.offer(seq, event) {
                    self.rooms.deliver(&event);
                    released += 1;
                }
            }
            metrics::counter!(CAUGHT_UP).increment(released);
            if !page.more {
                state.filling = false;
                // Something held above a hole the store does not have yet
                // (not committed when read): try again later.
                drop(state);
                let mut state = lock(&sub.state);
                self.schedule_fill(sub, &mut state);
                return Ok(());
            }
        }
    }

    /// Once subscribed to a room's channel: loads who is in it on other
    /// nodes, sets or catches up its sequence from the store, and lets
    /// joins proceed.
    async fn prepare(self: &Arc<Self>, sub: Arc<RoomSub>) {
        loop {
            if sub.closed.load(Ordering::SeqCst) {
                return;
            }
            match self.prepare_once(&sub).await {
                Ok(()) => {
                    sub.ready.send_replace(true);
                    return;
                }
                Err(error) => {
                    tracing::warn!(room = %sub.name, %error, "cannot prepare the room's subscription; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    async fn prepare_once(self: &Arc<Self>, sub: &Arc<RoomSub>) -> Result<(), PrepareError> {
        let started = lock(&sub.state).seq.last().is_some();
        if started {
            self.catch_up(sub, false).await?;
        } else {
            let page = self.store.before(&sub.name, None, 1).await?;
            let mut state = lock(&sub.state);
            for event in state.seq.start_at(page.latest_seq) {
                self.rooms.deliver(&event);
            }
            self.schedule_fill(sub, &mut state);
        }
        let announce = *sub.ready.borrow();
        // A presence event handled while the view was read may be older or
        // newer than the read: read again until none raced it.
        let mut attempts = 0;
        let (mut state, view) = loop {
            let seen = lock(&sub.state).presence_seen;
            let view = self.load_view(&sub.name).await?;
            let state = lock(&sub.state);
            attempts += 1;
            if state.presence_seen == seen || attempts >= 5 {
                break (state, view);
            }
        };
        let before = users_of(&state.remote);
        state.remote = view;
        if announce {
            // A reload after a lost connection: tell members what changed.
            let after = users_of(&state.remote);
            let local: HashSet<String> = self
                .rooms
                .members(&sub.name)
                .into_iter()
                .map(|u| u.id)
                .collect();
            for (id, user) in &after {
                if !before.contains_key(id) && !local.contains(id) {
                    self.deliver_presence(&sub.name, PresenceEvent::Join, user.clone());
                }
            }
            for (id, user) in before {
                if !after.contains_key(&id) && !local.contains(&id) {
                    self.deliver_presence(&sub.name, PresenceEvent::Leave, user);
                }
            }
        }
        Ok(())
    }

    fn deliver_presence(&self, room: &Arc<str>, event: PresenceEvent, user: User) {
        self.rooms.deliver(&RoomEvent::new(
            room.clone(),
            EventKind::Presence { event, user },
            None,
        ));
    }

    /// The live nodes other than this one.
    async fn live_nodes(&self) -> redis::RedisResult<(Vec<String>, Vec<String>)> {
        let mut conn = self.conn.clone();
        let nodes: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.nodes_key())
            .query_async(&mut conn)
            .await?;
        let others: Vec<String> = nodes.into_iter().filter(|n| *n != self.node).collect();
        if others.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut pipe = redis::pipe();
        for node in &others {
            pipe.cmd("EXISTS").arg(self.node_key(node));
        }
        let alive: Vec<bool> = pipe.query_async(&mut conn).await?;
        let (live, dead) = others
            .into_iter()
            .zip(alive)
            .partition::<Vec<_>, _>(|(_, alive)| *alive);
        Ok((
            live.into_iter().map(|(n, _)| n).collect(),
            dead.into_iter().map(|(n, _)| n).collect(),
        ))
    }

    /// Users of `room` on the other live nodes, from Redis.
    async fn load_view(
        &self,
        room: &str,
    ) -> redis::RedisResult<HashMap<String, HashMap<String, User>>> {
        let (live, _) = self.live_nodes().await?;
        if live.is_empty() {
            return Ok(HashMap::new());
        }
        let mut pipe = redis::pipe();
        for node in &live {
            pipe.cmd("HGETALL").arg(self.members_key(node, room));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(live
            .into_iter()
            .zip(hashes)
            .map(|(node, hash)| {
                let users = hash
                    .into_iter()
                    .filter_map(|(id, json)| Some((id, serde_json::from_str(&json).ok()?)))
                    .collect();
                (node, users)
            })
            .collect())
    }

    /// An event from another node.
    fn receive(self: &Arc<Self>, payload: &[u8]) {
        let wire: Wire = match serde_json::from_slice(payload) {
            Ok(wire) => wire,
            Err(error) => {
                tracing::warn!(%error, "ignoring an undecodable cluster event");
                return;
            }
        };
        if wire.node == self.node {
            return; // delivered locally when published
        }
        if matches!(
            wire.frame,
            ServerFrame::Read { .. } | ServerFrame::RoomAdded(_)
        ) {
            // News for a person: `room` names the user.
            self.rooms.deliver_to_user(&wire.room, &wire.frame, None);
            return;
        }
        let Some(sub) = self.current(&wire.room) else {
            return;
        };
        let room = sub.name.clone();
        match wire.frame {
            ServerFrame::Message(message) => {
                let seq = message.seq;
                self.offer(
                    &sub,
                    seq,
                    RoomEvent::new(room, EventKind::Message(message), None),
                );
            }
            ServerFrame::Typing(TypingBody { user, .. }) => {
                self.rooms
                    .deliver(&RoomEvent::new(room, EventKind::Typing { user }, None));
            }
            ServerFrame::Presence(PresenceBody { event, user, .. }) => {
                let mut state = lock(&sub.state);
                state.presence_seen += 1;
                let changed = match event {
                    PresenceEvent::Join => state
                        .remote
                        .entry(wire.node.clone())
                        .or_default()
                        .insert(user.id.clone(), user.clone())
                        .is_none(),
                    PresenceEvent::Leave => state
                        .remote
                        .get_mut(&wire.node)
                        .and_then(|users| users.remove(&user.id))
                        .is_some(),
                };
                if changed && !self.present_elsewhere(&state, &room, &user.id, &wire.node) {
                    self.deliver_presence(&room, event, user);
                }
            }
            frame @ (ServerFrame::Edited(_)
            | ServerFrame::Deleted(_)
            | ServerFrame::Reaction(_)
            | ServerFrame::Pinned(_)) => {
                if let Ok(change) = frame.into_change() {
                    let seq = change.seq();
                    self.offer(
                        &sub,
                        seq,
                        RoomEvent::new(room, EventKind::Change(change), None),
                    );
                }
            }
            other => {
                tracing::debug!(
                    kind = other.type_name(),
                    "ignoring a cluster event of a kind this node does not relay"
                );
            }
        }
    }

    /// Whether the user is in the room here or on a node other than `except`.
    fn present_elsewhere(
        &self,
        state: &RoomState,
        room: &str,
        user_id: &str,
        except: &str,
    ) -> bool {
        state
            .remote
            .iter()
            .any(|(node, users)| node != except && users.contains_key(user_id))
            || self.rooms.members(room).iter().any(|u| u.id == user_id)
    }

    /// Rewrites this node's liveness and presence in Redis, and announces
    /// its users again so other nodes that lost track learn them back.
    async fn resync(&self) -> redis::RedisResult<()> {
        let local: Vec<(Arc<str>, Vec<User>)> = lock(&self.local)
            .iter()
            .map(|(room, users)| (room.clone(), users.values().cloned().collect()))
            .collect();
        let mut conn = self.conn.clone();
        let old_rooms: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.rooms_key(&self.node))
            .query_async(&mut conn)
            .await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for room in &old_rooms {
            pipe.cmd("DEL")
                .arg(self.members_key(&self.node, room))
                .ignore();
        }
        pipe.cmd("DEL").arg(self.rooms_key(&self.node)).ignore();
        for (room, users) in &local {
            let key = self.members_key(&self.node, room);
            for user in users {
                if let Ok(json) = serde_json::to_string(user) {
                    pipe.cmd("HSET").arg(&key).arg(&user.id).arg(json).ignore();
                }
            }
            pipe.cmd("SADD")
                .arg(self.rooms_key(&self.node))
                .arg(&**room)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        for (room, users) in local {
            for user in users {
                self.publish_wire(
                    &room,
                    ServerFrame::Presence(PresenceBody {
                        room: room.to_string(),
                        event: PresenceEvent::Join,
                        user,
                    }),
                );
            }
        }
        Ok(())
    }

    /// Refreshes this node's key; finds nodes whose key expired, announces
    /// their users' departure to local members, and removes their state.
    async fn beat(self: &Arc<Self>) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let ttl_ms = self.node_ttl.as_millis().max(1) as u64;
        let previous: Option<String> = redis::cmd("SET")
            .arg(self.node_key(&self.node))
            .arg(now_ms())
            .arg("PX")
            .arg(ttl_ms)
            .arg("GET")
            .query_async(&mut conn)
            .await?;
        redis::cmd("SADD")
            .arg(self.nodes_key())
            .arg(&self.node)
            .query_async::<()>(&mut conn)
            .await?;
        if previous.is_none() || self.resync.swap(false, Ordering::SeqCst) {
            if let Err(e) = self.resync().await {
                self.resync.store(true, Ordering::SeqCst);
                return Err(e);
            }
            if previous.is_none() {
                // Redis lost our key (restarted, or we were away past the
                // TTL): give the other nodes a round to write theirs back
                // before judging anyone dead.
                return Ok(());
            }
        }
        let (live, dead) = self.live_nodes().await?;
        for node in &dead {
            let removed: i64 = redis::cmd("SREM")
                .arg(self.nodes_key())
                .arg(node)
                .query_async(&mut conn)
                .await?;
            if removed == 1 {
                tracing::info!(node = %node, "cluster node stopped refreshing its heartbeat; removing its presence");
                let rooms: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(self.rooms_key(node))
                    .query_async(&mut conn)
                    .await?;
                let mut pipe = redis::pipe();
                for room in &rooms {
                    pipe.cmd("DEL").arg(self.members_key(node, room)).ignore();
                }
                pipe.cmd("DEL").arg(self.rooms_key(node)).ignore();
                pipe.query_async::<()>(&mut conn).await?;
            }
        }
        let live: HashSet<String> = live.into_iter().collect();
        metrics::gauge!(NODES).set((live.len() + 1) as f64);
        let subs: Vec<Arc<RoomSub>> = lock(&self.subs).values().map(|s| s.room.clone()).collect();
        let vanished = {
            let mut known = lock(&self.known_nodes);
            let vanished = known.iter().any(|n| !live.contains(n));
            *known = live.clone();
            vanished
        };
        if vanished {
            // A node that died between a commit and its publish left a
            // hole no later message may reveal: catch every room up.
            for sub in &subs {
                let (shared, sub) = (self.clone(), sub.clone());
                tokio::spawn(async move {
                    if let Err(error) = shared.catch_up(&sub, false).await {
                        tracing::warn!(room = %sub.name, %error, "catch-up after a node left failed");
                    }
                });
            }
        }
        for sub in subs {
            let mut state = lock(&sub.state);
            let gone: Vec<String> = state
                .remote
                .keys()
                .filter(|n| !live.contains(*n))
                .cloned()
                .collect();
            for node in gone {
                let Some(users) = state.remote.remove(&node) else {
                    continue;
                };
                for user in users.into_values() {
                    if !self.present_elsewhere(&state, &sub.name, &user.id, &node) {
                        self.deliver_presence(&sub.name, PresenceEvent::Leave, user);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Every user in a remote view, by id.
fn users_of(view: &HashMap<String, HashMap<String, User>>) -> HashMap<String, User> {
    view.values()
        .flat_map(|users| users.iter())
        .map(|(id, user)| (id.clone(), user.clone()))
        .collect()
}

/// The writer task: Redis commands in order, pipelined.
async fn write(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Write>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut conn = shared.conn.clone();
    loop {
        if rx.recv_many(&mut batch, WRITE_BATCH).await == 0 {
            return;
        }
        let mut pipe = redis::pipe();
        let mut presence = false;
        for write in batch.drain(..) {
            match write {
                Write::Publish { room, payload } => {
                    pipe.cmd("PUBLISH")
                        .arg(shared.channel(&room))
                        .arg(payload)
                        .ignore();
                }
                Write::PublishPeople { payload } => {
                    pipe.cmd("PUBLISH")
                        .arg(shared.people_channel())
                        .arg(payload)
                        .ignore();
                }
                Write::PublishBan { payload } => {
                    pipe.cmd("PUBLISH")
                        .arg(shared.bans_channel())
                        .arg(payload)
                        .ignore();
                }
                Write::Present { room, user } => {
                    presence = true;
                    if let Ok(json) = serde_json::to_string(&user) {
                        pipe.cmd("HSET")
                            .arg(shared.members_key(&shared.node, &room))
                            .arg(&user.id)
                            .arg(json)
                            .ignore();
                    }
                    pipe.cmd("SADD")
                        .arg(shared.rooms_key(&shared.node))
                        .arg(&*room)
                        .ignore();
                }
                Write::Absent { room, user_id } => {
                    presence = true;
                    pipe.cmd("HDEL")
                        .arg(shared.members_key(&shared.node, &room))
                        .arg(user_id)
                        .ignore();
                }
            }
        }
        match tokio::time::timeout(OP_TIMEOUT, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {
                if !shared.writer_ok.swap(true, Ordering::SeqCst) {
                    tracing::info!("Redis answers again");
                }
            }
            outcome => {
                let error = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                if shared.writer_ok.swap(false, Ordering::SeqCst) {
                    tracing::warn!(%error, "Redis write failed; sends are refused until it answers");
                }
                if presence {
                    shared.resync.store(true, Ordering::SeqCst);
                }
                shared.redis_failed.notify_one();
            }
        }
    }
}

/// The subscriber task: one pub/sub connection, reconnected whenever lost.
async fn listen(shared: Arc<Shared>, mut control: mpsc::UnboundedReceiver<Control>) {
    let mut warned = false;
    loop {
        let pubsub = match tokio::time::timeout(OP_TIMEOUT, shared.client.get_async_pubsub()).await
        {
            Ok(Ok(pubsub)) => pubsub,
            outcome => {
                let error = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                if !warned {
                    tracing::warn!(%error, "cannot open the Redis subscription; retrying");
                    warned = true;
                }
                shared.listener_ok.store(false, Ordering::SeqCst);
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let subs: Vec<Arc<RoomSub>> = lock(&shared.subs)
            .values()
            .map(|s| s.room.clone())
            .collect();
        {
            let mut channels: Vec<String> = subs.iter().map(|s| shared.channel(&s.name)).collect();
            channels.push(shared.people_channel());
            channels.push(shared.bans_channel());
            if !matches!(
                tokio::time::timeout(OP_TIMEOUT, sink.subscribe(channels)).await,
                Ok(Ok(()))
            ) {
                tokio::time::sleep(RETRY).await;
                continue;
            }
        }
        warned = false;
        shared.listener_ok.store(true, Ordering::SeqCst);
        tracing::info!(rooms = subs.len(), "subscribed to Redis");
        for sub in subs {
            let shared = shared.clone();
            tokio::spawn(async move { shared.prepare(sub).await });
        }
        let bans_channel = shared.bans_channel();
        let mut ping = tokio::time::interval(OP_TIMEOUT);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = control.recv() => {
                    let Some(command) = command else { return };
                    let ok = match command {
                        Control::Subscribe(room) => match shared.current(&room) {
                            Some(sub) => {
                                let done = tokio::time::timeout(
                                    OP_TIMEOUT,
                                    sink.subscribe(shared.channel(&room)),
                                ).await;
                                let ok = matches!(done, Ok(Ok(())));
                                if ok {
                                    let shared = shared.clone();
                                    tokio::spawn(async move { shared.prepare(sub).await });
                                }
                                ok
                            }
                            None => true,
                        },
                        Control::Unsubscribe(room) => {
                            if shared.current(&room).is_some() {
                                true
                            } else {
                                let done = tokio::time::timeout(
                                    OP_TIMEOUT,
                                    sink.unsubscribe(shared.channel(&room)),
                                ).await;
                                matches!(done, Ok(Ok(())))
                            }
                        }
                    };
                    if !ok {
                        break;
                    }
                }
                message = stream.next() => {
                    match message {
                        Some(message) if message.get_channel_name() == bans_channel => {
                            shared.receive_ban(message.get_payload_bytes());
                        }
                        Some(message) => shared.receive(message.get_payload_bytes()),
                        None => break,
                    }
                }
                _ = ping.tick() => {
                    let pong = tokio::time::timeout(OP_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        shared.listener_ok.store(false, Ordering::SeqCst);
        shared.redis_failed.notify_one();
        metrics::counter!(SUBSCRIPTION_LOST).increment(1);
        tracing::warn!("lost the Redis subscription; reconnecting (rooms catch up from the store)");
        tokio::time::sleep(RETRY).await;
    }
}

/// The heartbeat task: every third of the node TTL and whenever a Redis
/// command or the subscription failed; while Redis does not answer, every
/// [`RECOVERY_PROBE`], so the node is back (announced again, healthy) as
/// soon as Redis is.
async fn heartbeat(shared: Arc<Shared>) {
    let period = shared.node_ttl / 3;
    let mut next = tokio::time::Instant::now();
    let mut failing = false;
    loop {
        if failing {
            tokio::time::sleep(RECOVERY_PROBE).await;
        } else {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = shared.redis_failed.notified() => {}
            }
        }
        match tokio::time::timeout(OP_TIMEOUT * 2, shared.beat()).await {
            Ok(Ok(())) => {
                failing = false;
                next = tokio::time::Instant::now() + period;
                if !shared.writer_ok.swap(true, Ordering::SeqCst) {
                    tracing::info!("Redis answers again; this node announced itself again");
                }
            }
            outcome => {
                let error = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                shared.writer_ok.store(false, Ordering::SeqCst);
                if !failing {
                    tracing::warn!(%error, "Redis heartbeat failed; sends are refused until it answers");
                    failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_the_password() {
        assert_eq!(
            redact("redis://user:secret@127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1/"), "redis://127.0.0.1/");
    }

    #[test]
    fn wire_events_round_trip() {
        let user = User {
            id: "u1".into(),
            name: "alice".into(),
        };
        let wire = Wire {
            node: "n".into(),
            room: "r".into(),
            frame: ServerFrame::Presence(PresenceBody {
                room: "r".into(),
                event: PresenceEvent::Leave,
                user,
            }),
        };
        let json = serde_json::to_string(&wire).expect("encodes");
        let back: Wire = serde_json::from_str(&json).expect("decodes");
        assert!(matches!(
            back.frame,
            ServerFrame::Presence(PresenceBody {
                event: PresenceEvent::Leave,
                ..
            })
        ));
    }
}
