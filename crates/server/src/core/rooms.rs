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
//! - A room entry exists while it has members; the registry holds no history.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chat_protocol::{ServerFrame, User};

use super::event::{ConnId, Outbound, Outbox, RoomEvent};
use super::metrics::Metrics;

#[derive(Debug)]
struct Member {
    conn: ConnId,
    user: Arc<User>,
    outbox: Outbox,
    /// `Some` while a join's history read is in flight.
    pending: Option<Vec<Arc<RoomEvent>>>,
}

#[derive(Debug, Default)]
struct Room {
    members: Vec<Member>,
}

impl Room {
    fn has_user_other_than(&self, user_id: &str, conn: ConnId) -> bool {
        self.members
            .iter()
            .any(|m| m.user.id == user_id && m.conn != conn)
    }

    /// One entry per user, in order of joining.
    fn users(&self) -> Vec<User> {
        let mut users: Vec<User> = Vec::new();
        for m in &self.members {
            if !users.iter().any(|u| u.id == m.user.id) {
                users.push((*m.user).clone());
            }
        }
        users
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
    metrics: Metrics,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a registry lock leaves plain data behind, still
    // consistent enough to serve; keep going rather than poison every room.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Rooms {
    pub fn new(pending_limit: usize, metrics: Metrics) -> Self {
        Rooms {
            rooms: Mutex::new(HashMap::new()),
            pending_limit,
            metrics,
        }
    }

    fn room(&self, name: &str) -> Option<Arc<Mutex<Room>>> {
        lock(&self.rooms).get(name).cloned()
    }

    /// Adds the connection to the room as a pending member (or marks an
    /// existing member pending again, for a re-join).
    pub fn register(&self, name: &Arc<str>, user: &Arc<User>, outbox: &Outbox) -> Registered {
        let mut rooms = lock(&self.rooms);
        let room = rooms.entry(name.clone()).or_default().clone();
        self.metrics.set_rooms(rooms.len());
        let mut room = lock(&room);
        drop(rooms);
        let conn = outbox.conn();
        let first_of_user = !room.has_user_other_than(&user.id, conn);
        if let Some(member) = room.members.iter_mut().find(|m| m.conn == conn) {
            member.pending.get_or_insert_with(Vec::new);
            return Registered {
                rejoin: true,
                first_of_user,
            };
        }
        room.members.push(Member {
            conn,
            user: user.clone(),
            outbox: outbox.clone(),
            pending: Some(Vec::new()),
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
        reply: impl FnOnce(Vec<User>) -> ServerFrame,
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
    pub fn unregister(&self, name: &str, conn: ConnId) -> Option<Arc<User>> {
        let mut rooms = lock(&self.rooms);
        let room_arc = rooms.get(name)?.clone();
        let mut room = lock(&room_arc);
        let index = room.members.iter().position(|m| m.conn == conn)?;
        let member = room.members.swap_remove(index);
        let last_of_user = !room.has_user_other_than(&member.user.id, conn);
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

    /// Current members of a room, one entry per user.
    pub fn members(&self, name: &str) -> Vec<User> {
        self.room(name)
            .map(|room| lock(&room).users())
            .unwrap_or_default()
    }

    /// Pushes an event to every member of its room on this node.
    pub fn deliver(&self, event: &Arc<RoomEvent>) {
        let Some(room) = self.room(&event.room) else {
            return;
        };
        let is_message = event.seq().is_some();
        let mut delivered = 0u64;
        let mut room = lock(&room);
        for member in room.members.iter_mut() {
            if event.skip == Some(member.conn) {
                continue;
            }
            match &mut member.pending {
                Some(buffer) if buffer.len() < self.pending_limit => buffer.push(event.clone()),
                Some(_) => member.outbox.mark_slow(),
                None => {
                    if member.outbox.push(Outbound::Event(event.clone())) {
                        delivered += u64::from(is_message);
                    }
                }
            }
        }
        self.metrics.delivered(delivered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::{EventKind, outbox};
    use chat_protocol::{Message, PresenceEvent};
    use tokio_util::sync::CancellationToken;

    fn user(id: &str) -> Arc<User> {
        Arc::new(User {
            id: id.into(),
            name: id.into(),
        })
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
            }),
            None,
        )
    }

    fn drain(rx: &mut crate::core::event::OutboxReceiver) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(item) = rx.rx.try_recv() {
            seen.push(match item {
                Outbound::Reply(frame) => match *frame {
                    ServerFrame::Joined { seq, .. } => format!("joined@{seq}"),
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

    fn joined(room: &str, seq: u64) -> impl FnOnce(Vec<User>) -> ServerFrame {
        let room = room.to_string();
        move |members| ServerFrame::Joined {
            reference: None,
            room,
            seq,
            members,
            messages: vec![],
            complete: true,
        }
    }

    #[test]
    fn pending_join_buffers_and_drops_covered_messages() {
        let rooms = Rooms::new(16, Metrics::new());
        let name: Arc<str> = "r".into();
        let (tx, mut rx) = outbox(1, 16, Metrics::new(), CancellationToken::new());
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
    fn presence_follows_users_not_connections() {
        let rooms = Rooms::new(16, Metrics::new());
        let name: Arc<str> = "r".into();
        let alice = user("alice");
        let (tab1, _rx1) = outbox(1, 16, Metrics::new(), CancellationToken::new());
        let (tab2, _rx2) = outbox(2, 16, Metrics::new(), CancellationToken::new());
        assert!(rooms.register(&name, &alice, &tab1).first_of_user);
        assert!(!rooms.register(&name, &alice, &tab2).first_of_user);
        assert!(rooms.register(&name, &alice, &tab1).rejoin);
        assert_eq!(rooms.members("r").len(), 1);
        assert!(rooms.unregister("r", 1).is_none(), "tab 2 still there");
        assert!(rooms.unregister("r", 2).is_some(), "last tab left");
        assert!(rooms.members("r").is_empty());
        assert!(lock(&rooms.rooms).is_empty(), "empty rooms are removed");
    }

    #[test]
    fn a_full_queue_marks_the_member_slow_without_blocking() {
        let rooms = Rooms::new(16, Metrics::new());
        let name: Arc<str> = "r".into();
        let (slow, slow_rx) = outbox(1, 2, Metrics::new(), CancellationToken::new());
        let (fast, mut fast_rx) = outbox(2, 64, Metrics::new(), CancellationToken::new());
        rooms.register(&name, &user("s"), &slow);
        rooms.register(&name, &user("f"), &fast);
        rooms.finish_join("r", 1, 0, joined("r", 0));
        rooms.finish_join("r", 2, 0, joined("r", 0));
        for seq in 1..=10 {
            rooms.deliver(&message(&name, seq));
        }
        assert_eq!(drain(&mut fast_rx).len(), 11, "joined + 10 messages");
        let dropped = tokio_test_block_on(slow_rx.dropped.wait());
        assert_eq!(dropped, crate::core::event::Dropped::SlowConsumer);
    }

    #[test]
    fn skip_excludes_the_originating_connection() {
        let rooms = Rooms::new(16, Metrics::new());
        let name: Arc<str> = "r".into();
        let (a, mut a_rx) = outbox(1, 16, Metrics::new(), CancellationToken::new());
        let (b, mut b_rx) = outbox(2, 16, Metrics::new(), CancellationToken::new());
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

    fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }
}
