//! Operators' bans: a user kept out of one room, or off the whole server.
//!
//! The store keeps them ([`Store::put_ban`](crate::store::Store::put_ban)),
//! so they survive restarts; every node holds all of them in memory
//! ([`Bans`], in the room registry), so the checks on the hot path cost no
//! query: `Session::room` for every request that names a room (the one
//! access check, `docs/architecture.md`), `Hub::connect` for every new
//! connection, and `Hub::post` for the API's posts as a user.
//!
//! A ban made on one node is carried out there ([`Rooms::enforce`](crate::rooms::Rooms::enforce): the
//! user's connections leave the room with an unsolicited `forbidden`, or
//! are closed with 1008 for a server ban) and announced to the others
//! through [`Broker::publish_ban`](crate::broker::Broker::publish_ban),
//! which carry it out on their own connections. A notice can be missed (a
//! node starting while the ban is made loads the list before the ban is
//! stored and subscribes after it was published; Redis pub/sub drops what
//! is published while a node's subscription is down), so every node also
//! reads the whole list again from the store every [`RELOAD_INTERVAL`] and
//! carries out what it did not know: the periodic read needs nothing from
//! the broker, covers every way a notice can be lost, and costs one small
//! query per node and period.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, Weak};
use std::time::Duration;

use chat_protocol::validate::Invalid;
use chat_protocol::{ErrorBody, ErrorCode, PresenceEvent, ServerFrame};
use serde::{Deserialize, Serialize};

use crate::event::EventKind;
use crate::rooms::Left;
use crate::store::{PersonChange, StoreError};
use crate::sync::{read, write};
use crate::{Hub, HubInner, RoomEvent};

/// How often each node reads every ban from the store again, to carry out
/// any whose notice it missed (see the module docs).
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(30);

/// What a user banned from a room reads, in its unsolicited error and in
/// every refusal of a request naming the room.
pub const ROOM_BANNED: &str = "you are banned from this room";
/// What a user banned from the server reads before their connections
/// close.
pub const SERVER_BANNED: &str = "you are banned from this server";

/// One ban, as stored and as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// The user id (a token's `sub`, a guest's id).
    pub user: String,
    /// The room; `None` bans the user from the whole server.
    pub room: Option<String>,
    pub reason: Option<String>,
    /// When the ban was first made, milliseconds since the Unix epoch.
    pub ts: i64,
}

/// A ban made or lifted: what nodes tell each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum BanChange {
    Banned(Ban),
    Lifted { user: String, room: Option<String> },
}

impl BanChange {
    fn target(&self) -> (&str, Option<&str>) {
        match self {
            BanChange::Banned(ban) => (&ban.user, ban.room.as_deref()),
            BanChange::Lifted { user, room } => (user, room.as_deref()),
        }
    }
}

/// The bans in effect, in memory: who is banned from the server, and who
/// from which rooms.
#[derive(Debug, Default)]
pub struct Bans {
    /// Whether any ban is in effect: without one (the usual case) a check
    /// reads this flag alone, not the lock every sending task would share.
    any: AtomicBool,
    set: RwLock<BanSet>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct BanSet {
    server: HashSet<String>,
    /// User id → rooms.
    rooms: HashMap<String, HashSet<String>>,
}

impl BanSet {
    fn from_list(bans: &[Ban]) -> BanSet {
        let mut set = BanSet::default();
        for ban in bans {
            set.insert(&ban.user, ban.room.as_deref());
        }
        set
    }

    fn contains(&self, user: &str, room: Option<&str>) -> bool {
        match room {
            None => self.server.contains(user),
            Some(room) => self.rooms.get(user).is_some_and(|r| r.contains(room)),
        }
    }

    fn is_empty(&self) -> bool {
        self.server.is_empty() && self.rooms.is_empty()
    }

    fn insert(&mut self, user: &str, room: Option<&str>) -> bool {
        match room {
            None => self.server.insert(user.to_owned()),
            Some(room) => self
                .rooms
                .entry(user.to_owned())
                .or_default()
                .insert(room.to_owned()),
        }
    }

    fn remove(&mut self, user: &str, room: Option<&str>) -> bool {
        match room {
            None => self.server.remove(user),
            Some(room) => {
                let Some(rooms) = self.rooms.get_mut(user) else {
                    return false;
                };
                let removed = rooms.remove(room);
                if rooms.is_empty() {
                    self.rooms.remove(user);
                }
                removed
            }
        }
    }

    /// Every ban as a (user, room) pair.
    fn pairs(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        let server = self.server.iter().map(|u| (u.as_str(), None));
        let rooms = self
            .rooms
            .iter()
            .flat_map(|(u, rooms)| rooms.iter().map(move |r| (u.as_str(), Some(r.as_str()))));
        server.chain(rooms)
    }
}

impl Bans {
    /// Whether `user` is banned from the whole server.
    pub fn is_banned(&self, user: &str) -> bool {
        self.any.load(Ordering::Acquire) && read(&self.set).contains(user, None)
    }

    /// Why `user` may not use `room`, if a ban says so: a ban from the
    /// server or from that room.
    pub fn refusal(&self, user: &str, room: &str) -> Option<Invalid> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let set = read(&self.set);
        let message = if set.contains(user, None) {
            SERVER_BANNED
        } else if set.contains(user, Some(room)) {
            ROOM_BANNED
        } else {
            return None;
        };
        Some(Invalid {
            code: ErrorCode::Forbidden,
            message: message.into(),
        })
    }

    /// Applies a change; returns whether it changed anything (a ban made
    /// again, or lifted twice, does not).
    pub fn apply(&self, change: &BanChange) -> bool {
        let (user, room) = change.target();
        let mut set = write(&self.set);
        let changed = match change {
            BanChange::Banned(_) => set.insert(user, room),
            BanChange::Lifted { .. } => set.remove(user, room),
        };
        self.any.store(!set.is_empty(), Ordering::Release);
        changed
    }

    /// Makes the set the store's list; returns what changed, as changes:
    /// the bans it did not hold, and those lifted since.
    pub fn replace(&self, bans: &[Ban]) -> Vec<BanChange> {
        let new = BanSet::from_list(bans);
        let mut set = write(&self.set);
        let lifted = set
            .pairs()
            .filter(|(user, room)| !new.contains(user, *room))
            .map(|(user, room)| BanChange::Lifted {
                user: user.to_owned(),
                room: room.map(str::to_owned),
            });
        let made = bans
            .iter()
            .filter(|ban| !set.contains(&ban.user, ban.room.as_deref()))
            .cloned()
            .map(BanChange::Banned);
        let changes = made.chain(lifted).collect();
        *set = new;
        self.any.store(!set.is_empty(), Ordering::Release);
        changes
    }
}

/// The unsolicited error a connection gets when a ban takes `room` from
/// it.
pub fn room_ban_frame(room: &str) -> ServerFrame {
    ServerFrame::Error {
        reference: None,
        body: ErrorBody {
            code: ErrorCode::Forbidden,
            message: ROOM_BANNED.into(),
            room: Some(room.to_owned()),
        },
    }
}

/// The error a connection gets before it is closed for a server ban.
pub fn server_ban_frame() -> ServerFrame {
    ServerFrame::Error {
        reference: None,
        body: ErrorBody::new(ErrorCode::Forbidden, SERVER_BANNED),
    }
}

impl HubInner {
    /// Carries out a change, applied to the set already, on this node's
    /// connections, and announces who left rooms.
    fn carry_out(&self, change: &BanChange) {
        let lefts = self.rooms.carry_out(change);
        self.announce_lefts(lefts);
    }

    /// Announces, cluster-wide, the users a ban took out of rooms.
    pub(crate) fn announce_lefts(&self, lefts: Vec<Left>) {
        for (room, user) in lefts {
            let leave = EventKind::Presence {
                event: PresenceEvent::Leave,
                user: user.user().clone(),
            };
            self.broker.publish(RoomEvent::new(room, leave, None));
        }
    }
}

impl Hub {
    /// Whether `user` is banned from the server: their new connections are
    /// refused.
    pub fn is_banned(&self, user: &str) -> bool {
        self.inner.rooms.bans().is_banned(user)
    }

    /// Bans `ban.user` from `ban.room` (from the server when `None`):
    /// stored first, then carried out here and announced to the other
    /// nodes. Banning again keeps the first ban's time and takes the new
    /// reason. Returns the ban as stored.
    pub async fn ban(&self, ban: Ban) -> Result<Ban, StoreError> {
        let inner = &self.inner;
        let stored = inner.store.put_ban(&ban).await?;
        let change = BanChange::Banned(stored.clone());
        if inner.rooms.bans().apply(&change) {
            inner.carry_out(&change);
        }
        inner.broker.publish_ban(&change);
        if let Some(room) = &stored.room {
            // No longer one of their rooms, on any device.
            let left = PersonChange::Left {
                user: stored.user.clone(),
                room: room.clone(),
            };
            if inner.people.record(left, None).is_err() {
                tracing::warn!(
                    room,
                    "banned user's membership not removed: the queue is full"
                );
            }
        }
        tracing::info!(user = %stored.user, room = ?stored.room, "user banned");
        Ok(stored)
    }

    /// Lifts the ban of `user` from `room` (from the server when `None`);
    /// returns whether there was one.
    pub async fn unban(&self, user: &str, room: Option<&str>) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let removed = inner.store.delete_ban(user, room).await?;
        let change = BanChange::Lifted {
            user: user.to_owned(),
            room: room.map(str::to_owned),
        };
        inner.rooms.bans().apply(&change);
        if removed {
            inner.broker.publish_ban(&change);
            tracing::info!(user, room, "ban lifted");
        }
        Ok(removed)
    }

    /// The bans in effect, newest first: those of `room` only (server bans
    /// left out) and of `user` only, when given.
    pub async fn bans(
        &self,
        room: Option<&str>,
        user: Option<&str>,
    ) -> Result<Vec<Ban>, StoreError> {
        let mut bans = self.inner.store.bans().await?;
        bans.retain(|ban| {
            room.is_none_or(|room| ban.room.as_deref() == Some(room))
                && user.is_none_or(|user| ban.user == user)
        });
        Ok(bans)
    }

    /// Reads every ban from the store, and carries out those this node did
    /// not know (lifting those lifted). At start-up, before the node
    /// serves, and then every [`RELOAD_INTERVAL`].
    pub async fn reload_bans(&self) -> Result<(), StoreError> {
        reload(&self.inner).await
    }
}

async fn reload(inner: &HubInner) -> Result<(), StoreError> {
    let bans = inner.store.bans().await?;
    for change in inner.rooms.bans().replace(&bans) {
        if let BanChange::Banned(ban) = &change {
            tracing::info!(user = %ban.user, room = ?ban.room, "ban learnt from the store");
        }
        inner.carry_out(&change);
    }
    Ok(())
}

/// Reads the bans again every [`RELOAD_INTERVAL`] (the first time one
/// period after start: start-up read them), until the hub is gone.
pub(crate) async fn reload_periodically(hub: Weak<HubInner>) {
    let start = tokio::time::Instant::now() + RELOAD_INTERVAL;
    let mut ticks = tokio::time::interval_at(start, RELOAD_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(hub) = hub.upgrade().filter(|hub| !hub.closing.is_cancelled()) else {
            return;
        };
        if let Err(error) = reload(&hub).await {
            tracing::warn!(%error, "reading the bans from the store failed; retrying later");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(user: &str, room: Option<&str>) -> Ban {
        Ban {
            user: user.into(),
            room: room.map(str::to_owned),
            reason: None,
            ts: 1,
        }
    }

    #[test]
    fn a_room_ban_refuses_that_room_only_and_a_server_ban_every_room() {
        let bans = Bans::default();
        assert!(bans.apply(&BanChange::Banned(ban("u1", Some("general")))));
        let refused = bans.refusal("u1", "general").expect("banned from general");
        assert_eq!(refused.code, ErrorCode::Forbidden);
        assert_eq!(refused.message, ROOM_BANNED);
        assert!(bans.refusal("u1", "random").is_none());
        assert!(bans.refusal("u2", "general").is_none());
        assert!(!bans.is_banned("u1"));

        assert!(bans.apply(&BanChange::Banned(ban("u2", None))));
        assert!(bans.is_banned("u2"));
        assert_eq!(
            bans.refusal("u2", "anything").map(|i| i.message),
            Some(SERVER_BANNED.to_owned())
        );
    }

    #[test]
    fn banning_twice_changes_nothing_and_lifting_lets_back_in() {
        let bans = Bans::default();
        let general = BanChange::Banned(ban("u1", Some("general")));
        assert!(bans.apply(&general));
        assert!(!bans.apply(&general), "already banned");
        let lift = BanChange::Lifted {
            user: "u1".into(),
            room: Some("general".into()),
        };
        assert!(bans.apply(&lift));
        assert!(!bans.apply(&lift), "already lifted");
        assert!(bans.refusal("u1", "general").is_none());
    }

    #[test]
    fn a_reload_reports_what_the_node_missed() {
        let bans = Bans::default();
        bans.apply(&BanChange::Banned(ban("old", Some("r"))));
        bans.apply(&BanChange::Banned(ban("kept", None)));
        let changes = bans.replace(&[ban("kept", None), ban("new", Some("r"))]);
        assert_eq!(
            changes,
            vec![
                BanChange::Banned(ban("new", Some("r"))),
                BanChange::Lifted {
                    user: "old".into(),
                    room: Some("r".into())
                },
            ]
        );
        assert!(bans.refusal("new", "r").is_some());
        assert!(bans.refusal("old", "r").is_none());
        assert!(bans.is_banned("kept"));
        assert!(
            bans.replace(&[ban("kept", None), ban("new", Some("r"))])
                .is_empty()
        );
    }
}
