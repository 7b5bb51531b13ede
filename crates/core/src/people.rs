//! People beside the rooms' sequences: memberships and read markers,
//! written by one task in batches.
//!
//! A person reading fast sends a `read` per message they see; a reconnect
//! storm re-joins thousands of rooms at once. Neither may cost a commit
//! each. So every change goes through one queue to [`PeopleWriter`], which
//! takes whatever waits, keeps only the furthest `read` of each person in
//! each room, and stores it all in one transaction
//! ([`Store::record`]); the changes that came in meanwhile make the next
//! batch, at least [`SPACING`] later. A `read` is answered once its
//! batch is durable (an answer means stored, as an ack does), and each of
//! the person's other connections, on every node, hears where the marker
//! now is, so reading on one device clears the badge on another.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::validate::Invalid;
use chat_protocol::{ErrorCode, ReadBody, Ref, RoomAddedBody, ServerFrame, User};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::HubInner;
use crate::broker::Broker;
use crate::event::{ConnId, Outbox};
use crate::store::{PersonChange, ReadState, Store, StoreError};

/// Least time between the starts of two batches: under a steady stream
/// of `read`s, one commit per this period at most, and one row per person
/// and room whatever their number of reads in it. A `read` is a marker
/// for other devices, not a message: it may wait this long to be stored,
/// and its row stays off the commits of messages that much more
/// (`BENCHMARKS.md`, "People").
pub const SPACING: Duration = Duration::from_millis(200);

/// Most rows one commit of a batch writes. A commit holds the store's one
/// writer (which every message's commit waits for) while it writes, and
/// its answers take the server's CPU together: a batch of many rows is
/// written in commits of this many, so both stalls stay short while
/// reads still coalesce over the whole [`SPACING`]. Measured in
/// `BENCHMARKS.md`, "People".
pub const CHUNK: usize = 1024;

/// Changes waiting for the writer, node-wide, before more are refused.
pub const QUEUE: usize = 65_536;

/// Who asked for a `read`, to answer them.
#[derive(Debug)]
pub struct Asker {
    pub outbox: Outbox,
    pub reference: Option<Ref>,
}

enum Queued {
    Change(PersonChange, Option<Asker>),
    /// Answered once everything queued before it is stored.
    Flush(oneshot::Sender<()>),
}

/// The sending side of the writer's queue.
#[derive(Clone)]
pub struct PeopleQueue {
    tx: mpsc::Sender<Queued>,
}

/// The queue is full: the store is far behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl PeopleQueue {
    /// Queues a change; `asker` is answered with the new read state (for
    /// a `read`) or, if it fails, an error.
    pub fn record(&self, change: PersonChange, asker: Option<Asker>) -> Result<(), Full> {
        self.tx
            .try_send(Queued::Change(change, asker))
            .map_err(|_| Full)
    }

    /// Resolves once every change queued before the call is stored (or
    /// failed).
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.tx.send(Queued::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }
}

/// Starts the writer task.
pub fn start(store: Arc<dyn Store>, broker: Arc<dyn Broker>) -> PeopleQueue {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(PeopleWriter { store, broker }.run(rx));
    PeopleQueue { tx }
}

struct PeopleWriter {
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
}

/// One batch: the changes to store, the `read` requests to answer, and
/// the flushes waiting on it.
#[derive(Default)]
struct Batch {
    changes: Vec<PersonChange>,
    /// Index in `changes` of each person's `read` of each room.
    reads: HashMap<(String, String), usize>,
    askers: Vec<((String, String), Asker)>,
    flushes: Vec<oneshot::Sender<()>>,
}

impl Batch {
    fn add(&mut self, queued: Queued) {
        match queued {
            Queued::Flush(done) => self.flushes.push(done),
            Queued::Change(PersonChange::Read { user, room, seq }, asker) => {
                let key = (user, room);
                match self.reads.get(&key) {
                    Some(&at) => {
                        if let PersonChange::Read { seq: furthest, .. } = &mut self.changes[at] {
                            *furthest = (*furthest).max(seq);
                        }
                    }
                    None => {
                        self.reads.insert(key.clone(), self.changes.len());
                        self.changes.push(PersonChange::Read {
                            user: key.0.clone(),
                            room: key.1.clone(),
                            seq,
                        });
                    }
                }
                if let Some(asker) = asker {
                    self.askers.push((key, asker));
                }
            }
            Queued::Change(change, _) => self.changes.push(change),
        }
    }
}

impl PeopleWriter {
    async fn run(self, mut rx: mpsc::Receiver<Queued>) {
        let mut next_start = Instant::now();
        while let Some(first) = rx.recv().await {
            let mut batch = Batch::default();
            batch.add(first);
            // Whatever else arrives before the spacing is up joins it.
            while let Ok(Some(queued)) = tokio::time::timeout_at(next_start, rx.recv()).await {
                batch.add(queued);
            }
            while let Ok(queued) = rx.try_recv() {
                batch.add(queued);
            }
            next_start = Instant::now() + SPACING;
            self.write(batch).await;
        }
    }

    /// Stores the batch in chunks of at most [`CHUNK`] rows, answering the
    /// reads of each chunk once it is stored.
    async fn write(&self, batch: Batch) {
        let Batch {
            changes,
            reads,
            askers,
            flushes,
        } = batch;
        let mut key_at: HashMap<usize, (String, String)> =
            reads.into_iter().map(|(key, at)| (at, key)).collect();
        let mut askers_of: HashMap<(String, String), Vec<Asker>> = HashMap::new();
        for (key, asker) in askers {
            askers_of.entry(key).or_default().push(asker);
        }
        for (n, chunk) in changes.chunks(CHUNK).enumerate() {
            let first = n * CHUNK;
            let read_keys: Vec<(String, String)> = chunk
                .iter()
                .enumerate()
                .filter(|(_, change)| matches!(change, PersonChange::Read { .. }))
                .filter_map(|(i, _)| key_at.remove(&(first + i)))
                .collect();
            match self.store.record(chunk.to_vec()).await {
                Ok(states) => {
                    for (key, state) in read_keys.into_iter().zip(states) {
                        let askers = askers_of.remove(&key).unwrap_or_default();
                        self.announce(key, &state, askers);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "storing read markers and memberships failed");
                    for key in read_keys {
                        for asker in askers_of.remove(&key).unwrap_or_default() {
                            asker.outbox.reply(crate::store_failed(asker.reference, &e));
                        }
                    }
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }

    /// Answers the `read`s of `key` (a person, a room) with `state`, and
    /// tells the person's other connections.
    fn announce(&self, key: (String, String), state: &ReadState, askers: Vec<Asker>) {
        let (user, room) = key;
        let frame = |reference| ServerFrame::Read {
            reference,
            body: ReadBody {
                room: room.clone(),
                seq: state.last_read,
                unread: state.unread,
                unread_mentions: state.unread_mentions,
            },
        };
        let mut told = None;
        for asker in askers {
            asker.outbox.reply(frame(asker.reference));
            told = Some(asker.outbox.conn());
        }
        self.broker.publish_to_user(&user, frame(None), told);
    }
}

/// Why a direct-message room could not be opened.
#[derive(Debug)]
pub enum Refused {
    Invalid(Invalid),
    Store(StoreError),
}

/// The name of the direct-message room of users `me` and `peer`.
pub fn dm_room_name(me: &str, peer: &str) -> Result<String, Invalid> {
    chat_protocol::people::dm_room(me, peer).ok_or_else(|| Invalid {
        code: ErrorCode::BadRequest,
        message: format!(
            "`user` must be a user id of 1 to {} characters",
            chat_protocol::people::MAX_DM_USER_CHARS
        ),
    })
}

impl HubInner {
    /// Makes `peer` a member of the direct-message room `room` that `me`
    /// opens, with everything in it unread, stored before this returns (so
    /// the first message is unread for them); returns the peer. A peer who
    /// never joined a room is unknown (`not_found`).
    pub(crate) async fn invite(&self, room: &str, me: &User, peer: &str) -> Result<User, Refused> {
        let other = if peer == me.id {
            me.clone()
        } else {
            match self.store.person(peer).await {
                Ok(Some(other)) => other,
                Ok(None) => {
                    return Err(Refused::Invalid(Invalid {
                        code: ErrorCode::NotFound,
                        message: "no such user: they must have joined a room once".into(),
                    }));
                }
                Err(e) => return Err(Refused::Store(e)),
            }
        };
        let invited = PersonChange::Joined {
            user: other.clone(),
            room: room.to_owned(),
            read_to: 0,
        };
        self.people
            .record(invited, None)
            .map_err(|_| Refused::Invalid(crate::people_full()))?;
        self.people.flush().await;
        Ok(other)
    }

    /// Tells every connection of both users that the room is open (but
    /// `skip`, which joined it already).
    pub(crate) fn announce_dm(&self, room: &str, me: &User, other: &User, skip: Option<ConnId>) {
        for (user, with) in [(&other.id, me), (&me.id, other)] {
            let added = ServerFrame::RoomAdded(RoomAddedBody {
                room: room.to_owned(),
                with: with.clone(),
            });
            self.broker.publish_to_user(user, added, skip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(user: &str, seq: u64) -> Queued {
        Queued::Change(
            PersonChange::Read {
                user: user.into(),
                room: "r".into(),
                seq,
            },
            None,
        )
    }

    #[test]
    fn a_batch_keeps_each_persons_furthest_read_in_its_first_place() {
        let mut batch = Batch::default();
        let joined = PersonChange::Joined {
            user: User {
                id: "u2".into(),
                name: "bob".into(),
            },
            room: "r".into(),
            read_to: 0,
        };
        batch.add(read("u1", 3));
        batch.add(Queued::Change(joined.clone(), None));
        batch.add(read("u1", 5));
        batch.add(read("u1", 2));
        batch.add(read("u2", 1));
        assert_eq!(
            batch.changes,
            [
                PersonChange::Read {
                    user: "u1".into(),
                    room: "r".into(),
                    seq: 5
                },
                joined,
                PersonChange::Read {
                    user: "u2".into(),
                    room: "r".into(),
                    seq: 1
                },
            ]
        );
        assert_eq!(batch.reads.len(), 2);
    }
}
