//! What operators and backends do to the core from outside a connection
//! (the server's HTTP API), and the hub's housekeeping tasks: the
//! idle timeout and the retention purge.
//!
//! A message or a change posted here takes the same path as one sent on a
//! socket: it is queued for the committer, so it gets the room's next `seq`
//! in the same transaction that stores it, is held to the same
//! [`permissions`](crate::permissions), is idempotent by `id`, is broadcast
//! through the broker, and is answered only once durable. The API waits on
//! a one-item outbox of its own for that answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use chat_protocol::validate::Invalid;
use chat_protocol::{AckBody, ErrorBody, ErrorCode, ServerFrame, User};

use super::committer::{self, PendingSend, SubmitError};
use super::event::{self, Dropped, Outbound};
use super::{Hub, HubInner, lock};
use crate::people::Refused;
use crate::store::{Draft, Found, Page, Retention, Search, StoreError, Version};

/// How often the retention purge runs by default.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// What history keeps: each bound is off when `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Latest messages kept per room.
    pub keep_last: Option<u64>,
    /// Messages older than this are purged.
    pub max_age: Option<Duration>,
    /// How often the purge runs (first right after start).
    pub interval: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_last: None,
            max_age: None,
            interval: PURGE_INTERVAL,
        }
    }
}

impl RetentionPolicy {
    pub fn is_active(&self) -> bool {
        self.keep_last.is_some() || self.max_age.is_some()
    }

    /// The store's bounds at the time `now_ms`.
    pub fn at(&self, now_ms: i64) -> Retention {
        Retention {
            keep_last: self.keep_last,
            older_than_ts: self.max_age.map(|age| {
                now_ms.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
            }),
        }
    }
}

/// The process's clock origin for [`Activity`] (an `Instant` does not fit
/// in an atomic; milliseconds since this one do).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_tick() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A session's user and when it last asked for something, shared by the
/// session (which touches it) and the hub's registry (which reads it).
#[derive(Debug, Clone)]
pub struct Activity(Arc<ActivityInner>);

#[derive(Debug)]
struct ActivityInner {
    user_id: Box<str>,
    /// Milliseconds since [`epoch`].
    last: AtomicU64,
}

impl Activity {
    pub fn new(user_id: &str) -> Activity {
        Activity(Arc::new(ActivityInner {
            user_id: user_id.into(),
            last: AtomicU64::new(now_tick()),
        }))
    }

    /// Records a request now.
    pub fn touch(&self) {
        self.0.last.store(now_tick(), Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        Duration::from_millis(now_tick().saturating_sub(self.0.last.load(Ordering::Relaxed)))
    }
}

/// An entry stored through [`Hub::post`]: the fields of an ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub room: String,
    pub id: String,
    pub seq: u64,
    pub ts: i64,
    /// The `id` was already stored: these are the original's fields.
    pub duplicate: bool,
}

/// A room as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoomSummary {
    pub room: String,
    /// Users in the room now (cluster-wide when a broker knows them).
    pub members: usize,
    /// The room's latest `seq`.
    pub seq: u64,
}

fn invalid(code: ErrorCode, message: impl Into<String>) -> Invalid {
    Invalid {
        code,
        message: message.into(),
    }
}

impl Hub {
    /// Stores a message or a change from `draft.from` in `draft.room`
    /// (validated by the caller), broadcasts it, and returns its ack once
    /// it is durable. Errors carry the contract's codes: `forbidden` and
    /// `not_found` from the permissions, `overloaded` when the commit queue
    /// is full or the server is stopping, `internal` when storage failed
    /// (nothing was stored).
    pub async fn post(&self, draft: Draft) -> Result<Posted, Invalid> {
        let inner = &self.inner;
        // Posting as a banned user is refused as their own send would be.
        if let Some(refused) = inner.rooms.bans().refusal(&draft.from.id, &draft.room) {
            return Err(refused);
        }
        let conn = inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let (reply_to, mut answer) = event::outbox(conn, 2, inner.metrics.clone());
        let room: Arc<str> = Arc::from(draft.room.as_str());
        let pending = PendingSend {
            draft,
            reference: None,
            reply_to,
            received: Instant::now(),
            room,
        };
        inner.commits.submit(pending).map_err(|e| match e {
            SubmitError::Full => invalid(
                ErrorCode::Overloaded,
                "too many messages waiting to be stored; retry shortly with the same id",
            ),
            SubmitError::Closed => invalid(
                ErrorCode::Overloaded,
                "the server is shutting down; retry with the same id",
            ),
        })?;
        // The committer holds the only sender now: its reply, or the
        // channel closing (never stored), is the answer.
        match answer.rx.recv().await {
            Some(Outbound::Reply(frame)) => match *frame {
                ServerFrame::Ack {
                    body:
                        AckBody {
                            room,
                            id,
                            seq,
                            ts,
                            duplicate,
                        },
                    ..
                } => Ok(Posted {
                    room,
                    id,
                    seq,
                    ts,
                    duplicate,
                }),
                ServerFrame::Error {
                    body: ErrorBody { code, message, .. },
                    ..
                } => Err(invalid(code, message)),
                other => Err(invalid(
                    ErrorCode::Internal,
                    format!(
                        "unexpected answer `{}` from the committer",
                        other.type_name()
                    ),
                )),
            },
            Some(Outbound::Event(_)) | None => Err(invalid(
                ErrorCode::Internal,
                "the message was not stored; retry with the same id",
            )),
        }
    }

    /// A page of `room`'s history: after `after` when given, else before
    /// `before` (the latest without either).
    pub async fn history(
        &self,
        room: &str,
        before: Option<u64>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let store = &self.inner.store;
        match after {
            Some(after) => store.after(room, after, limit).await,
            None => store.before(room, before, limit).await,
        }
    }

    /// A search as the operator, who may read every room.
    pub async fn search(&self, search: &Search) -> Result<Found, StoreError> {
        self.inner.store.search(search).await
    }

    /// The room's pinned messages, earliest pin first (read with the
    /// smallest page, as every page carries them).
    pub async fn pins(&self, room: &str) -> Result<Vec<chat_protocol::Message>, StoreError> {
        Ok(self.inner.store.before(room, None, 1).await?.pins)
    }

    /// Every text message `seq` of `room` has had, for moderators: the
    /// original, each edit, and the deletion if any.
    pub async fn versions(&self, room: &str, seq: u64) -> Result<Vec<Version>, StoreError> {
        self.inner.store.versions(room, seq).await
    }

    /// Closes every connection of `user_id` on this node (1008 on `/ws`,
    /// the transport on Socket.IO); returns how many.
    pub fn disconnect_user(&self, user_id: &str) -> usize {
        let sessions = lock(&self.inner.sessions);
        let mut closed = 0;
        for open in sessions.open.values() {
            if &*open.activity.0.user_id == user_id {
                open.outbox.hang_up(Dropped::Kicked);
                closed += 1;
            }
        }
        drop(sessions);
        if closed > 0 {
            tracing::info!(
                user = user_id,
                connections = closed,
                "user disconnected through the API"
            );
        }
        closed
    }

    /// The users in `room` now: on this node, plus those a cluster broker
    /// knows on other nodes; one entry per user.
    pub fn members(&self, room: &str) -> Vec<User> {
        let mut members = self.inner.rooms.members(room);
        for user in self.inner.broker.remote_members(room) {
            if !members.iter().any(|m| m.id == user.id) {
                members.push(user);
            }
        }
        members
    }

    /// The rooms `user` is a member of, with unread counts, the most
    /// recently active first.
    pub async fn user_rooms(
        &self,
        user: &str,
    ) -> Result<Vec<chat_protocol::RoomSummary>, StoreError> {
        self.inner.store.user_rooms(user).await
    }

    /// Public rooms: every room but direct messages, the most recently
    /// active first.
    pub async fn directory(&self) -> Result<Vec<chat_protocol::DirectoryEntry>, StoreError> {
        self.inner.store.directory(super::DIRECTORY_MAX).await
    }

    /// Opens the direct-message room of users `user` and `peer` (both
    /// must have joined a room once), as `dm` does for a connection;
    /// returns its name and the peer.
    pub async fn open_dm(&self, user: &str, peer: &str) -> Result<(String, User), Refused> {
        let room = crate::people::dm_room_name(user, peer).map_err(Refused::Invalid)?;
        let me = match self.inner.store.person(user).await {
            Ok(Some(me)) => me,
            Ok(None) => {
                return Err(Refused::Invalid(Invalid {
                    code: chat_protocol::ErrorCode::NotFound,
                    message: "no such user: they must have joined a room once".into(),
                }));
            }
            Err(e) => return Err(Refused::Store(e)),
        };
        let other = self.inner.invite(&room, &me, peer).await?;
        let joined = crate::store::PersonChange::Joined {
            user: me.clone(),
            room: room.clone(),
            read_to: 0,
        };
        self.inner
            .people
            .record(joined, None)
            .map_err(|_| Refused::Invalid(crate::people_full()))?;
        self.inner.people.flush().await;
        self.inner.announce_dm(&room, &me, &other, None);
        Ok((room, other))
    }

    /// Every room with stored messages or members, by name.
    pub async fn room_summaries(&self) -> Result<Vec<RoomSummary>, StoreError> {
        let mut stored = self.inner.store.rooms().await?;
        for live in self.inner.rooms.names() {
            if !stored.iter().any(|(name, _)| **name == *live) {
                stored.push((live.to_string(), 0));
            }
        }
        stored.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(stored
            .into_iter()
            .map(|(room, seq)| RoomSummary {
                members: self.members(&room).len(),
                room,
                seq,
            })
            .collect())
    }
}

/// Starts the bans' periodic reload, and the idle sweep and the retention
/// purge if configured. Each holds the hub weakly and ends with it, or at
/// shutdown.
pub(super) fn start_background(hub: &Hub) {
    let limits = &hub.inner.limits;
    if let Some(timeout) = limits.idle_timeout {
        tokio::spawn(sweep_idle(Arc::downgrade(&hub.inner), timeout));
    }
    tokio::spawn(crate::bans::reload_periodically(Arc::downgrade(&hub.inner)));
    if limits.retention.is_active() {
        tokio::spawn(purge_periodically(
            Arc::downgrade(&hub.inner),
            limits.retention,
        ));
    }
}

/// Hangs up connections idle for `timeout`, checking a few times per
/// timeout so none lives much past it.
async fn sweep_idle(hub: Weak<HubInner>, timeout: Duration) {
    let period = (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    let mut ticks = delayed_ticks(period);
    while let Some(hub) = next_run(&hub, &mut ticks).await {
        let sessions = lock(&hub.sessions);
        for open in sessions.open.values() {
            if open.activity.idle_for() >= timeout {
                open.outbox.hang_up(Dropped::Idle);
            }
        }
    }
}

/// Runs the retention purge now and every `policy.interval`. A failed run
/// is logged and retried at the next one; it never touches `seq`.
async fn purge_periodically(hub: Weak<HubInner>, policy: RetentionPolicy) {
    let mut ticks = delayed_ticks(policy.interval.max(Duration::from_millis(10)));
    while let Some(hub) = next_run(&hub, &mut ticks).await {
        match hub.store.purge(policy.at(committer::now_ms())).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "retention: old messages purged"),
            Err(error) => tracing::warn!(%error, "retention purge failed; retrying later"),
        }
    }
}

/// Ticks every `period`, the first at once; a late tick is not made up for.
fn delayed_ticks(period: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks
}

/// Waits for the next tick of a background task; `None` once the hub is
/// gone or shutting down, which ends the task.
async fn next_run(
    hub: &Weak<HubInner>,
    ticks: &mut tokio::time::Interval,
) -> Option<Arc<HubInner>> {
    ticks.tick().await;
    hub.upgrade().filter(|hub| !hub.closing.is_cancelled())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_policy_becomes_store_bounds() {
        let policy = RetentionPolicy {
            keep_last: Some(10),
            max_age: Some(Duration::from_secs(2)),
            ..RetentionPolicy::default()
        };
        assert_eq!(
            policy.at(10_000),
            Retention {
                keep_last: Some(10),
                older_than_ts: Some(8_000)
            }
        );
        assert!(!RetentionPolicy::default().is_active());
        assert!(!RetentionPolicy::default().at(5).is_active());
    }

    #[test]
    fn activity_measures_idleness_from_the_last_touch() {
        let activity = Activity::new("u");
        std::thread::sleep(Duration::from_millis(20));
        assert!(activity.idle_for() >= Duration::from_millis(20));
        activity.touch();
        assert!(activity.idle_for() < Duration::from_millis(20));
    }
}
