//! The room registry: who is in which room on this node, and fan-out of room
//! events to them.
//!
//! Invariants kept here:
//!
//! - Events of a room are pushed to members under that room's lock, so every
//!   member's queue receives them in the order they were delivered to the
//!   room (which, for messages, is `seq` order: see `committer`).
//! - A joining member is *pending* while its history is read from the store:
//!   events delivered meanwhile are buffered in its entry, not queued. When
//!   the read completes, its `joined` reply and then the buffered events are
//!   queued under the room lock, dropping messages the reply already holds.
//!   So a joiner sees `joined`, then every later message exactly once.
//! - Presence and typing events may wait in their room (when a batch delay
//!   is set) and are delivered together by [`Rooms::flush_waiting`]: a burst
//!   of joins then costs each member one wake-up and one write per batch
//!   instead of one per event. A member gets a waiting event only if it
//!   was in the room when the event happened (its join epoch), and a
//!   message never overtakes waiting events: they are delivered first.
//! - A room in a join storm (at least [`STORM_PRESENCE`] presence events
//!   at one flush) waits twice as many flush periods before its next one,
//!   up to [`MAX_STRETCH`]; a calmer flush brings it back to every period.
//!   When thousands of clients reconnect at once (after a restart), every
//!   member's presence write then carries up to four times the joins:
//!   presence arrives up to a second late in that storm only, and the
//!   server spends its time on the joins rather than on presence writes.
//! - A room entry exists while it has members; the registry holds no history.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chat_protocol::{EncodedUser, Members, ServerFrame, User};

use super::event::{ConnId, Dropped, EventKind, Outbound, Outbox, RoomEvent};
use super::metrics::Metrics;
use crate::bans::{self, BanChange, Bans};
use crate::sync::lock;

/// A user whose last connection in a room left it: the room, and who.
pub type Left = (Arc<str>, Arc<EncodedUser>);

#[derive(Debug)]
struct Member {
    conn: ConnId,
    user: Arc<EncodedUser>,
    /// The member that stands for its user in the room's listing: the first
    /// of the user's connections here (a user with two tabs is listed once).
    lists_user: bool,
    outbox: Outbox,
    /// `Some` while a join's history read is in flight.
    pending: Option<Vec<Arc<RoomEvent>>>,
    /// The room's epoch when this connection (re-)joined.
    joined_epoch: u64,
    /// Messages up to this `seq` were in the `joined` reply: a later copy
    /// (from a cluster broker catching up) is not pushed again.
    covered: u64,
}

#[derive(Debug, Default)]
struct Room {
    members: Vec<Member>,
    /// Counts (re-)joins, so waiting events can tell who was there.
    epoch: u64,
    /// Presence and typing events not yet delivered, with the epoch each
    /// happened in; oldest first.
    waiting: Vec<(u64, Arc<RoomEvent>)>,
    /// Flush periods between this room's flushes, 1 to [`MAX_STRETCH`].
    stretch: u8,
    /// Flush periods still to skip before the next flush.
    skip: u8,
    /// In [`Rooms`]' list of rooms to flush.
    listed: bool,
}

/// Presence events at one flush from which a room counts as in a join
/// storm.
pub const STORM_PRESENCE: usize = 8;
/// Most flush periods a storming room waits between flushes.
pub const MAX_STRETCH: u8 = 4;

impl Room {
    fn has_user_other_than(&self, user_id: &str, conn: ConnId) -> bool {
        self.members
            .iter()
            .any(|m| m.user.id == user_id && m.conn != conn)
    }

    /// Pushes `event` to every member but the one it skips, or into the
    /// buffer of a pending member. Returns how many messages were queued.
    fn push_to_members(&mut self, event: &Arc<RoomEvent>, pending_limit: usize) -> u64 {
        let is_message = event.seq().is_some();
        let mut delivered = 0;
        for member in self.members.iter_mut() {
            if event.skip != Some(member.conn) && member.push(event, pending_limit) == Push::Queued
            {
                delivered += u64::from(is_message);
            }
        }
        delivered
    }

    /// Delivers the waiting events, each to the members that were in the
    /// room when it happened.
    fn flush_waiting(&mut self, pending_limit: usize) {
        let waiting = std::mem::take(&mut self.waiting);
        for member in self.members.iter_mut() {
            let from = waiting.partition_point(|(epoch, _)| *epoch < member.joined_epoch);
            for (_, event) in &waiting[from..] {
                if event.skip != Some(member.conn)
                    && member.push(event, pending_limit) == Push::Refused
                {
                    break;
                }
            }
        }
    }

    /// A periodic flush: flushes now, or counts down the periods this
    /// room waits while in a join storm. Returns whether it still has
    /// waiting events (it skipped this one).
    fn flush_on_tick(&mut self, pending_limit: usize) -> bool {
        if self.skip > 0 && !self.waiting.is_empty() {
            self.skip -= 1;
            return true;
        }
        let presence = self
            .waiting
            .iter()
            .filter(|(_, event)| matches!(event.kind, EventKind::Presence { .. }))
            .count();
        self.stretch = if presence >= STORM_PRESENCE {
            (self.stretch.max(1) * 2).min(MAX_STRETCH)
        } else {
            1
        };
        self.skip = self.stretch - 1;
        self.flush_waiting(pending_limit);
        false
    }

    /// One entry per user.
    fn users(&self) -> Members {
        Members::Encoded(
            self.members
                .iter()
                .filter(|m| m.lists_user)
                .map(|m| m.user.clone())
                .collect(),
        )
    }
}

/// What became of an event pushed to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Push {
    Queued,
    /// Held until the member's pending join completes.
    Buffered,
    /// The connection is gone or too slow.
    Refused,
    /// A message the member's `joined` reply already held.
    Covered,
}

impl Member {
    /// Queues `event`, or buffers it while the join is pending.
    fn push(&mut self, event: &Arc<RoomEvent>, pending_limit: usize) -> Push {
        if event.seq().is_some_and(|seq| seq <= self.covered) {
            return Push::Covered;
        }
        match &mut self.pending {
            Some(buffer) if buffer.len() < pending_limit => {
                buffer.push(event.clone());
                Push::Buffered
            }
            Some(_) => {
                self.outbox.mark_slow();
                Push::Refused
            }
            None if self.outbox.push(Outbound::Event(event.clone())) => Push::Queued,
            None => Push::Refused,
        }
    }
}

/// What registering a connection in a room changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    /// The connection was already a member (a re-join).
    pub rejoin: bool,
    /// No other connection of the same user was in the room: announce them.
    pub first_of_user: bool,
}

#[derive(Debug)]
pub struct Rooms {
    rooms: Mutex<HashMap<Arc<str>, Arc<Mutex<Room>>>>,
    /// Bound on events buffered for a pending member, the same as its queue.
    pending_limit: usize,
    /// Whether presence and typing wait for [`Rooms::flush_waiting`].
    batch_waiting: bool,
    /// Rooms with waiting events. Lock order: a room, then this list.
    with_waiting: Mutex<Vec<Arc<Mutex<Room>>>>,
    /// Every connection of this node, by user: where news for a person
    /// (a read marker moved, a direct message opened) goes.
    people: Mutex<HashMap<String, Vec<Outbox>>>,
    /// The operators' bans in effect, which this registry carries out on
    /// the connections it holds.
    bans: Bans,
    metrics: Metrics,
}

impl Rooms {
    /// With `batch_waiting`, presence and typing events wait in their room
    /// until the next [`Rooms::flush_waiting`].
    pub fn new(pending_limit: usize, batch_waiting: bool, metrics: Metrics) -> Self {
        Rooms {
            rooms: Mutex::new(HashMap::new()),
            pending_limit,
            batch_waiting,
            with_waiting: Mutex::new(Vec::new()),
            people: Mutex::new(HashMap::new()),
            bans: Bans::default(),
            metrics,
        }
    }

    /// The bans in effect.
    pub fn bans(&self) -> &Bans {
        &self.bans
    }

    /// Applies a ban made or lifted (here or on another node) and, if it
    /// is new to this node, carries it out; returns who left rooms, for
    /// the caller to announce.
    pub fn enforce(&self, change: &BanChange) -> Vec<Left> {
        if self.bans.apply(change) {
            self.carry_out(change)
        } else {
            Vec::new()
        }
    }

    /// Carries out a change already applied to the set: a room ban takes
    /// the user's connections out of the room, each told with an
    /// unsolicited `forbidden`; a server ban tells every connection of the
    /// user and hangs it up (1008). Returns who left rooms.
    pub fn carry_out(&self, change: &BanChange) -> Vec<Left> {
        let BanChange::Banned(ban) = change else {
            return Vec::new();
        };
        match &ban.room {
            Some(room) => self.evict(room, &ban.user).into_iter().collect(),
            None => {
                let frame = bans::server_ban_frame();
                let outboxes = lock(&self.people).get(&ban.user).cloned();
                for outbox in outboxes.unwrap_or_default() {
                    outbox.reply(frame.clone());
                    outbox.hang_up(Dropped::Banned);
                }
                Vec::new()
            }
        }
    }

    /// Takes every connection of `user` out of `room` (pending joins too),
    /// telling each; returns the leave to announce if they were there.
    fn evict(&self, name: &str, user: &str) -> Option<Left> {
        let mut rooms = lock(&self.rooms);
        let room_arc = rooms.get(name)?.clone();
        let (name, mut room) = (rooms.get_key_value(name)?.0.clone(), lock(&room_arc));
        let (evicted, kept): (Vec<Member>, Vec<Member>) = std::mem::take(&mut room.members)
            .into_iter()
            .partition(|m| m.user.id == user);
        room.members = kept;
        if room.members.is_empty() {
            drop(room);
            rooms.remove(&name);
            self.metrics.set_rooms(rooms.len());
        }
        drop(rooms);
        let frame = bans::room_ban_frame(&name);
        let user = evicted.first()?.user.clone();
        for member in evicted {
            member.outbox.mark_evicted();
            member.outbox.reply(frame.clone());
        }
        Some((name, user))
    }

    /// A connection of `user` opened.
    pub fn add_connection(&self, user: &str, outbox: &Outbox) {
        lock(&self.people)
            .entry(user.to_owned())
            .or_default()
            .push(outbox.clone());
    }

    /// A connection of `user` closed.
    pub fn remove_connection(&self, user: &str, conn: ConnId) {
        let mut people = lock(&self.people);
        if let Some(outboxes) = people.get_mut(user) {
            outboxes.retain(|o| o.conn() != conn);
            if outboxes.is_empty() {
                people.remove(user);
            }
        }
    }

    /// Queues `frame` for every connection of `user` on this node but
    /// `skip`.
    pub fn deliver_to_user(&self, user: &str, frame: &ServerFrame, skip: Option<ConnId>) {
        let outboxes = lock(&self.people).get(user).cloned().unwrap_or_default();
        for outbox in outboxes {
            if Some(outbox.conn()) != skip {
                outbox.reply(frame.clone());
            }
        }
    }

    fn room(&self, name: &str) -> Option<Arc<Mutex<Room>>> {
        lock(&self.rooms).get(name).cloned()
    }

    /// Adds the connection to the room as a pending member (or marks an
    /// existing member pending again, for a re-join).
    pub fn register(
        &self,
        name: &Arc<str>,
        user: &Arc<EncodedUser>,
        outbox: &Outbox,
    ) -> Registered {
        let mut rooms = lock(&self.rooms);
        let room = rooms.entry(name.clone()).or_default().clone();
        self.metrics.set_rooms(rooms.len());
        let mut room = lock(&room);
        drop(rooms);
        let conn = outbox.conn();
        let first_of_user = !room.has_user_other_than(&user.id, conn);
        room.epoch += 1;
        let epoch = room.epoch;
        if let Some(member) = room.members.iter_mut().find(|m| m.conn == conn) {
            member.pending.get_or_insert_with(Vec::new);
            member.joined_epoch = epoch;
            return Registered {
                rejoin: true,
                first_of_user,
            };
        }
        room.members.push(Member {
            conn,
            user: user.clone(),
            lists_user: first_of_user,
            outbox: outbox.clone(),
            pending: Some(Vec::new()),
            joined_epoch: epoch,
            covered: 0,
        });
        Registered {
            rejoin: false,
            first_of_user,
        }
    }

    /// Completes a pending join: queues the reply built by `reply` (given the
    /// current members), then every buffered event except messages with
    /// `seq <= covered_seq`, which the reply already holds. Returns false if
    /// the member left in the meantime (nothing is queued then).
    pub fn finish_join(
        &self,
        name: &str,
        conn: ConnId,
        covered_seq: u64,
        reply: impl FnOnce(Members) -> ServerFrame,
    ) -> bool {
        let Some(room) = self.room(name) else {
            return false;
        };
        let mut room = lock(&room);
        let members = room.users();
        let Some(member) = room.members.iter_mut().find(|m| m.conn == conn) else {
            return false;
        };
        let buffered = member.pending.take().unwrap_or_default();
        member.covered = member.covered.max(covered_seq);
        member.outbox.reply(reply(members));
        let mut delivered = 0;
        for event in buffered {
            if event.seq().is_some_and(|seq| seq <= covered_seq) {
                continue;
            }
            let is_message = event.seq().is_some();
            if !member.outbox.push(Outbound::Event(event)) {
                break;
            }
            delivered += u64::from(is_message);
        }
        self.metrics.delivered(delivered);
        true
    }

    /// Removes the connection from the room. Returns whether it was a member
    /// and whether it was its user's last connection there (announce the
    /// leave).
    pub fn unregister(&self, name: &str, conn: ConnId) -> Option<Arc<EncodedUser>> {
        let mut rooms = lock(&self.rooms);
        let room_arc = rooms.get(name)?.clone();
        let mut room = lock(&room_arc);
        let index = room.members.iter().position(|m| m.conn == conn)?;
        let member = room.members.swap_remove(index);
        let other_of_user = room
            .members
            .iter_mut()
            .find(|m| m.user.id == member.user.id);
        let last_of_user = other_of_user.is_none();
        if let Some(other) = other_of_user {
            other.lists_user |= member.lists_user;
        }
        if room.members.is_empty() {
            drop(room);
            rooms.remove(name);
            self.metrics.set_rooms(rooms.len());
        }
        last_of_user.then_some(member.user)
    }

    /// Whether the connection is a member of the room (pending or not).
    pub fn is_member(&self, name: &str, conn: ConnId) -> bool {
        self.room(name)
            .is_some_and(|room| lock(&room).members.iter().any(|m| m.conn == conn))
    }

    /// The rooms with members on this node.
    pub fn names(&self) -> Vec<Arc<str>> {
        lock(&self.rooms).keys().cloned().collect()
    }

    /// Current members of a room, one entry per user.
    pub fn members(&self, name: &str) -> Vec<User> {
        self.room(name)
            .map(|room| lock(&room).users().into_users())
            .unwrap_or_default()
    }

    /// Pushes an event to every member of its room on this node, or, for
    /// presence and typing when batching, leaves it waiting in the room.
    pub fn deliver(&self, event: &Arc<RoomEvent>) {
        let Some(room_arc) = self.room(&event.room) else {
            return;
        };
        let mut room = lock(&room_arc);
        if self.batch_waiting && event.seq().is_none() {
            if !room.listed {
                room.listed = true;
                lock(&self.with_waiting).push(room_arc.clone());
            }
            let epoch = room.epoch;
            room.waiting.push((epoch, event.clone()));
            return;
        }
        if !room.waiting.is_empty() {
            room.flush_waiting(self.pending_limit);
        }
        let delivered = room.push_to_members(event, self.pending_limit);
        self.metrics.delivered(delivered);
    }

    /// The periodic flush: delivers the waiting presence and typing events
    /// of every room, but those of rooms in a join storm that wait more
    /// periods (see the module docs).
    pub fn flush_waiting(&self) {
        let rooms = std::mem::take(&mut *lock(&self.with_waiting));
        let mut still_waiting = Vec::new();
        for room_arc in rooms {
            let mut room = lock(&room_arc);
            if room.flush_on_tick(self.pending_limit) {
                drop(room);
                still_waiting.push(room_arc);
            } else {
                room.listed = false;
            }
        }
        if !still_waiting.is_empty() {
            lock(&self.with_waiting).extend(still_waiting);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::outbox;
    use chat_protocol::{JoinedBody, Message, PresenceEvent};

    fn user(id: &str) -> Arc<EncodedUser> {
        Arc::new(EncodedUser::new(User {
            id: id.into(),
            name: id.into(),
        }))
    }

    fn message(room: &Arc<str>, seq: u64) -> Arc<RoomEvent> {
        RoomEvent::new(
            room.clone(),
            EventKind::Message(Message {
                room: room.to_string(),
                seq,
                id: format!("m{seq}"),
                from: User {
                    id: "u".into(),
                    name: "u".into(),
                },
                text: "t".into(),
                ts: 0,
                deleted: false,
                ..Default::default()
            }),
            None,
        )
    }

    fn drain(rx: &mut crate::event::OutboxReceiver) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(item) = rx.rx.try_recv() {
            seen.push(match item {
                Outbound::Reply(frame) => match *frame {
                    ServerFrame::Joined { body, .. } => format!("joined@{}", body.seq),
                    other => format!("{other:?}"),
                },
                Outbound::Event(e) => match e.seq() {
                    Some(seq) => format!("m{seq}"),
                    None => "event".into(),
                },
            });
        }
        seen
    }

    fn joined(room: &str, seq: u64) -> impl FnOnce(Members) -> ServerFrame {
        let room = room.to_string();
        move |members| ServerFrame::Joined {
            reference: None,
            body: JoinedBody {
                room,
                seq,
                members,
                messages: vec![],
                events: vec![],
                pins: vec![],
                complete: true,
                last_read: 0,
                unread: 0,
                unread_mentions: 0,
            },
        }
    }

    fn banned(user: &str, room: Option<&str>) -> BanChange {
        BanChange::Banned(crate::bans::Ban {
            user: user.into(),
            room: room.map(str::to_owned),
            reason: None,
            ts: 0,
        })
    }

    #[test]
    fn a_room_ban_takes_every_connection_of_the_user_out_and_tells_each() {
        let rooms = Rooms::new(16, false, Metrics::new());
        let room: Arc<str> = Arc::from("general");
        let (m1, mut m1_rx) = outbox(1, 16, Metrics::new());
        let (m2, mut m2_rx) = outbox(2, 16, Metrics::new());
        let (a, mut a_rx) = outbox(3, 16, Metrics::new());
        for (conn, who) in [(&m1, "mallory"), (&m2, "mallory"), (&a, "alice")] {
            rooms.register(&room, &user(who), conn);
            rooms.finish_join(&room, conn.conn(), 0, joined("general", 0));
        }
        drain(&mut m1_rx);
        drain(&mut m2_rx);
        drain(&mut a_rx);

        let lefts = rooms.enforce(&banned("mallory", Some("general")));
        assert_eq!(lefts.len(), 1, "one leave for the user");
        assert_eq!(
            (&*lefts[0].0, lefts[0].1.id.as_str()),
            ("general", "mallory")
        );
        for (outbox, rx) in [(&m1, &mut m1_rx), (&m2, &mut m2_rx)] {
            assert!(!rooms.is_member("general", outbox.conn()));
            assert!(
                outbox.take_evicted(),
                "the session learns at its next request"
            );
            let told = drain(rx);
            assert_eq!(told.len(), 1, "{told:?}");
            assert!(
                told[0].contains("Forbidden") && told[0].contains("general"),
                "{told:?}"
            );
        }
        assert!(rooms.is_member("general", a.conn()));
        assert!(!a.take_evicted());
        assert_eq!(rooms.members("general").len(), 1);

        // Known already: nothing more to carry out; a message reaches
        // only the one left.
        assert!(
            rooms
                .enforce(&banned("mallory", Some("general")))
                .is_empty()
        );
        rooms.deliver(&message(&room, 1));
        assert_eq!(drain(&mut a_rx), vec!["m1"]);
        assert!(drain(&mut m1_rx).is_empty());
    }

    #[test]
    fn a_server_ban_tells_and_hangs_up_every_connection_of_the_user() {
        let rooms = Rooms::new(16, false, Metrics::new());
        let (m, mut m_rx) = outbox(1, 16, Metrics::new());
        let (a, mut a_rx) = outbox(2, 16, Metrics::new());
        rooms.add_connection("mallory", &m);
        rooms.add_connection("alice", &a);
        assert!(rooms.enforce(&banned("mallory", None)).is_empty());
        assert!(rooms.bans().is_banned("mallory"));
        let told = drain(&mut m_rx);
        assert!(
            told.len() == 1 && told[0].contains("banned from this server"),
            "{told:?}"
        );
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert_eq!(
            m_rx.dropped.poll(&mut cx),
            std::task::Poll::Ready(Dropped::Banned)
        );
        assert!(drain(&mut a_rx).is_empty());
        assert!(a_rx.dropped.poll(&mut cx).is_pending());
    }

    #[test]
    fn pending_join_buffers_and_drops_covered_messages() {
        let rooms = Rooms::new(16, false, Metrics::new());
        let name: Arc<str> = "r".into();
        let (tx, mut rx) = outbox(1, 16, Metrics::new());
        rooms.register(&name, &user("a"), &tx);
        // Published while the history read runs: 4 is in the history, 5 not.
        rooms.deliver(&message(&name, 4));
        rooms.deliver(&message(&name, 5));
        assert!(drain(&mut rx).is_empty(), "nothing before joined");
        assert!(rooms.finish_join("r", 1, 4, joined("r", 4)));
        rooms.deliver(&message(&name, 6));
        assert_eq!(drain(&mut rx), ["joined@4", "m5", "m6"]);
    }

    #[test]
    fn a_late_copy_of_a_message_the_joined_reply_held_is_skipped() {
        // A cluster broker may deliver messages the member's history read
        // already returned, after the join completed.
        let rooms = Rooms::new(16, false, Metrics::new());
        let name: Arc<str> = "r".into();
        let (tx, mut rx) = outbox(1, 16, Metrics::new());
        rooms.register(&name, &user("a"), &tx);
        assert!(rooms.finish_join("r", 1, 7, joined("r", 7)));
        rooms.deliver(&message(&name, 6));
        rooms.deliver(&message(&name, 7));
        rooms.deliver(&message(&name, 8));
        assert_eq!(drain(&mut rx), ["joined@7", "m8"]);
    }

    #[test]
    fn presence_follows_users_not_connections() {
        let rooms = Rooms::new(16, false, Metrics::new());
        let name: Arc<str> = "r".into();
        let alice = user("alice");
        let (tab1, _rx1) = outbox(1, 16, Metrics::new());
        let (tab2, _rx2) = outbox(2, 16, Metrics::new());
        assert!(rooms.register(&name, &alice, &tab1).first_of_user);
        assert!(!rooms.register(&name, &alice, &tab2).first_of_user);
        assert!(rooms.register(&name, &alice, &tab1).rejoin);
        let bob = user("bob");
        let (bobs, _rx3) = outbox(3, 16, Metrics::new());
        rooms.register(&name, &bob, &bobs);
        let ids = |rooms: &Rooms| -> Vec<String> {
            rooms.members("r").into_iter().map(|u| u.id).collect()
        };
        assert_eq!(ids(&rooms), ["alice", "bob"]);
        assert!(rooms.unregister("r", 1).is_none(), "tab 2 still there");
        assert_eq!(ids(&rooms), ["bob", "alice"], "tab 2 now lists alice");
        assert!(rooms.unregister("r", 3).is_some());
        assert!(rooms.unregister("r", 2).is_some(), "last tab left");
        assert!(rooms.members("r").is_empty());
        assert!(lock(&rooms.rooms).is_empty(), "empty rooms are removed");
    }

    #[test]
    fn a_full_queue_marks_the_member_slow_without_blocking() {
        let rooms = Rooms::new(16, false, Metrics::new());
        let name: Arc<str> = "r".into();
        let (slow, slow_rx) = outbox(1, 2, Metrics::new());
        let (fast, mut fast_rx) = outbox(2, 64, Metrics::new());
        rooms.register(&name, &user("s"), &slow);
        rooms.register(&name, &user("f"), &fast);
        rooms.finish_join("r", 1, 0, joined("r", 0));
        rooms.finish_join("r", 2, 0, joined("r", 0));
        for seq in 1..=10 {
            rooms.deliver(&message(&name, seq));
        }
        assert_eq!(drain(&mut fast_rx).len(), 11, "joined + 10 messages");
        let dropped = tokio_test_block_on(slow_rx.dropped.wait());
        assert_eq!(dropped, crate::event::Dropped::SlowConsumer);
    }

    #[test]
    fn skip_excludes_the_originating_connection() {
        let rooms = Rooms::new(16, false, Metrics::new());
        let name: Arc<str> = "r".into();
        let (a, mut a_rx) = outbox(1, 16, Metrics::new());
        let (b, mut b_rx) = outbox(2, 16, Metrics::new());
        rooms.register(&name, &user("a"), &a);
        rooms.register(&name, &user("b"), &b);
        rooms.finish_join("r", 1, 0, joined("r", 0));
        rooms.finish_join("r", 2, 0, joined("r", 0));
        let typing = RoomEvent::new(
            name.clone(),
            EventKind::Presence {
                event: PresenceEvent::Join,
                user: (*user("a")).clone(),
            },
            Some(1),
        );
        rooms.deliver(&typing);
        assert_eq!(drain(&mut a_rx), ["joined@0"]);
        assert_eq!(drain(&mut b_rx), ["joined@0", "event"]);
    }

    fn presence(room: &Arc<str>, who: &str, skip: Option<ConnId>) -> Arc<RoomEvent> {
        RoomEvent::new(
            room.clone(),
            EventKind::Presence {
                event: PresenceEvent::Join,
                user: (*user(who)).clone(),
            },
            skip,
        )
    }

    #[test]
    fn waiting_presence_goes_to_those_present_and_never_after_a_message() {
        let rooms = Rooms::new(16, true, Metrics::new());
        let name: Arc<str> = "r".into();
        let (a, mut a_rx) = outbox(1, 16, Metrics::new());
        let (b, mut b_rx) = outbox(2, 16, Metrics::new());
        rooms.register(&name, &user("a"), &a);
        rooms.finish_join("r", 1, 0, joined("r", 0));
        rooms.register(&name, &user("b"), &b);
        rooms.deliver(&presence(&name, "b", Some(2)));
        rooms.finish_join("r", 2, 0, joined("r", 0));
        assert_eq!(drain(&mut a_rx), ["joined@0"], "the presence waits");
        // c joins after b's presence: it must not get it.
        let (c, mut c_rx) = outbox(3, 16, Metrics::new());
        rooms.register(&name, &user("c"), &c);
        rooms.deliver(&presence(&name, "c", Some(3)));
        rooms.finish_join("r", 3, 0, joined("r", 0));
        // A message takes the waiting events along, in order, first.
        rooms.deliver(&message(&name, 1));
        assert_eq!(drain(&mut a_rx), ["event", "event", "m1"]);
        assert_eq!(drain(&mut b_rx), ["joined@0", "event", "m1"]);
        assert_eq!(drain(&mut c_rx), ["joined@0", "m1"]);
        rooms.deliver(&presence(&name, "a", None));
        rooms.flush_waiting();
        assert_eq!(drain(&mut c_rx), ["event"]);
    }

    #[test]
    fn a_join_storm_stretches_its_rooms_flushes_and_calm_restores_them() {
        let rooms = Rooms::new(1024, true, Metrics::new());
        let (storm, calm): (Arc<str>, Arc<str>) = ("storm".into(), "calm".into());
        let (a, mut a_rx) = outbox(1, 1024, Metrics::new());
        let (b, mut b_rx) = outbox(2, 1024, Metrics::new());
        rooms.register(&storm, &user("a"), &a);
        rooms.finish_join("storm", 1, 0, joined("storm", 0));
        rooms.register(&calm, &user("b"), &b);
        rooms.finish_join("calm", 2, 0, joined("calm", 0));
        drain(&mut a_rx);
        drain(&mut b_rx);
        // Each tick, STORM_PRESENCE joins in one room and one in the other;
        // what each member got at each tick.
        let mut got = Vec::new();
        for tick in 0..8 {
            for i in 0..STORM_PRESENCE {
                rooms.deliver(&presence(&storm, &format!("s{tick}-{i}"), None));
            }
            rooms.deliver(&presence(&calm, &format!("c{tick}"), None));
            rooms.flush_waiting();
            got.push((drain(&mut a_rx).len(), drain(&mut b_rx).len()));
        }
        let storming: Vec<usize> = got.iter().map(|(a, _)| *a / STORM_PRESENCE).collect();
        // Flushed at tick 0, then every 2nd period, then every 4th.
        assert_eq!(storming, [1, 0, 2, 0, 0, 0, 4, 0]);
        assert!(
            got.iter().all(|(_, b)| *b == 1),
            "the calm room every period"
        );
        // The rest of the storm comes within MAX_STRETCH periods.
        let mut rest = 0;
        for _ in 0..MAX_STRETCH {
            rooms.flush_waiting();
            rest += drain(&mut a_rx).len();
        }
        assert_eq!(rest, STORM_PRESENCE);
        // A calm flush (one join) brings the room back to every period.
        rooms.deliver(&presence(&storm, "late", None));
        let mut periods = 0;
        while drain(&mut a_rx).is_empty() {
            assert!(periods < MAX_STRETCH, "held too long");
            rooms.flush_waiting();
            periods += 1;
        }
        rooms.deliver(&presence(&storm, "later", None));
        rooms.flush_waiting();
        assert_eq!(drain(&mut a_rx), ["event"]);
        // No room is listed twice, and none is left listed once flushed.
        rooms.flush_waiting();
        assert!(lock(&rooms.with_waiting).is_empty());
    }

    fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }
}
