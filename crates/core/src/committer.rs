//! Group commit: the single task that turns accepted sends (messages, and
//! changes to them) into stored, acked, broadcast entries of their rooms.
//!
//! Sends queue up while a commit is in flight; the next commit takes all of
//! them (up to a batch limit) in one transaction, so under load hundreds of
//! messages share one fsync and durability costs little throughput.
//!
//! Committing and publishing overlap: the committer hands one batch to the
//! store and then acks and publishes the batch before it, so the fan-out's
//! connection tasks run while the store waits on its fsync, and the write
//! does not wait for the fan-out's wake-ups to be queued.
//!
//! Invariants:
//! - An ack is queued only after [`Store::append`] returned, i.e. after the
//!   commit is durable.
//! - Outcomes are handled in batch order, and batches one after another (a
//!   batch is published only after the one before it, and its commit
//!   starts only after the one before it ended), so each room's messages
//!   are published in `seq` order.
//! - A failed commit stores nothing (the store's transaction rolls back), so
//!   it cannot leave a gap: every send in it gets an `internal` error and the
//!   client may retry with the same `id`.
//! - A change takes this path like a message (the store decides, inside
//!   the batch's transaction, whether it is allowed), so it is numbered,
//!   acked and published in its room's order: an edit or a deletion cannot
//!   overtake the message it changes.
//!
//! Every batch's outcome goes to [`commit_health`](super::commit_health):
//! the node is unready while commits fail, and the log tells a run of
//! failures in a few lines rather than one per batch. While commits fail
//! and no send comes, the committer probes the store with a commit of its
//! own, so readiness recovers without traffic.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chat_protocol::{AckBody, ErrorBody, ErrorCode, Ref, ServerFrame};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::commit_health::{CommitHealth, CommitOutcomes, PROBE_INTERVAL};
use super::event::{EventKind, Outbox, RoomEvent};
use super::metrics::Metrics;
use crate::broker::Broker;
use crate::store::{Appended, Draft, Store, StoreError};

/// A validated send waiting for its commit.
#[derive(Debug)]
pub struct PendingSend {
    pub draft: Draft,
    pub reference: Option<Ref>,
    pub reply_to: Outbox,
    pub received: Instant,
    pub room: Arc<str>,
}

/// Where the outcome of a send goes once its batch is committed.
struct Answer {
    reference: Option<Ref>,
    reply_to: Outbox,
    received: Instant,
    room: Arc<str>,
}

/// Why a send was not accepted for commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// Too many sends are waiting for commit.
    Full,
    /// The server is shutting down.
    Closed,
}

#[derive(Clone)]
pub struct CommitQueue {
    tx: mpsc::Sender<PendingSend>,
    health: Arc<CommitHealth>,
}

impl CommitQueue {
    pub fn submit(&self, send: PendingSend) -> Result<(), SubmitError> {
        self.tx.try_send(send).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Full,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
        })
    }

    /// The latest commit error while commits fail; `None` while they
    /// succeed.
    pub fn failing(&self) -> Option<String> {
        self.health.failing()
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Starts the committer. It runs until `closing` is cancelled and every
/// send accepted before that is committed and answered.
pub fn start(
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    metrics: Metrics,
    capacity: usize,
    batch_limit: usize,
    interval: Option<Duration>,
    closing: CancellationToken,
) -> (CommitQueue, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let health = Arc::new(CommitHealth::default());
    let queue = CommitQueue {
        tx,
        health: health.clone(),
    };
    let outcomes = CommitOutcomes::new(health, metrics.clone());
    let committer = Committer {
        store,
        broker,
        metrics,
        outcomes,
        batch: Vec::with_capacity(batch_limit),
        committed: None,
        interval,
        last_started: None,
    };
    let task = tokio::spawn(run(rx, committer, batch_limit.max(1), closing));
    (queue, task)
}

async fn run(
    mut rx: mpsc::Receiver<PendingSend>,
    mut committer: Committer,
    batch_limit: usize,
    closing: CancellationToken,
) {
    let mut sends = Vec::with_capacity(batch_limit);
    loop {
        if committer.committed.is_some() || !committer.batch.is_empty() {
            // A batch waits to be published, or to be committed: take what
            // is queued, without waiting.
            while sends.len() < batch_limit
                && let Ok(send) = rx.try_recv()
            {
                sends.push(send);
            }
        } else {
            tokio::select! {
                received = rx.recv_many(&mut sends, batch_limit) => {
                    if received == 0 {
                        return;
                    }
                }
                // Refuse new sends but keep draining those already
                // accepted: `recv_many` returns 0 once the queue is closed
                // and empty.
                _ = closing.cancelled(), if !rx.is_closed() => {
                    rx.close();
                    continue;
                }
                // A second without sends while commits fail.
                _ = tokio::time::sleep(PROBE_INTERVAL), if committer.outcomes.is_failing() => {
                    committer.probe().await;
                    continue;
                }
            }
        }
        committer.batch.append(&mut sends);
        if let Some(due) = committer.pacing() {
            // Publish what is committed meanwhile; sends that come during
            // the wait join this batch.
            if let Some(previous) = committer.committed.take() {
                committer.publish(previous);
            }
            tokio::time::sleep_until(due.into()).await;
            continue;
        }
        committer.step().await;
    }
}

/// A batch whose commit has ended, waiting to be answered and published.
struct Committed {
    answers: Vec<Answer>,
    stored: Result<Vec<Appended>, StoreError>,
    /// When the commit ended, for the publish stage's timing.
    ended: Instant,
}

struct Committer {
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    metrics: Metrics,
    outcomes: CommitOutcomes,
    /// Sends taken from the queue and not yet handed to the store.
    batch: Vec<PendingSend>,
    /// The batch committed last, not yet answered and published.
    committed: Option<Committed>,
    /// Least time from one commit's start to the next one's, if any
    /// (`--commit-interval-ms`).
    interval: Option<Duration>,
    /// When the last commit was handed to the store.
    last_started: Option<Instant>,
}

impl Committer {
    /// When the next commit may start, if there is a batch to commit and
    /// that is later than now: with an interval set, commits are at least
    /// that far apart, so under load each takes more sends and the node
    /// pays for fewer fsyncs, at the price of up to the interval's wait
    /// (plus the timer's millisecond) for the first send of each batch.
    /// Sends that come less often than the interval never wait.
    fn pacing(&self) -> Option<Instant> {
        let due = self.last_started? + self.interval?;
        (!self.batch.is_empty() && Instant::now() < due).then_some(due)
    }

    /// Commits `batch` while publishing the batch committed before it,
    /// which `committed` then holds in its place.
    async fn step(&mut self) {
        let previous = self.committed.take();
        if self.batch.is_empty() {
            if let Some(previous) = previous {
                self.publish(previous);
            }
            return;
        }
        self.metrics.committed_batch(self.batch.len());
        let handed_over = Instant::now();
        self.last_started = Some(handed_over);
        for send in &self.batch {
            self.metrics
                .send_queued_for(handed_over.saturating_duration_since(send.received));
        }
        let (drafts, answers): (Vec<Draft>, Vec<Answer>) = self
            .batch
            .drain(..)
            .map(|p| {
                let answer = Answer {
                    reference: p.reference,
                    reply_to: p.reply_to,
                    received: p.received,
                    room: p.room,
                };
                (p.draft, answer)
            })
            .unzip();
        // A message acked but never published would reach other nodes only
        // at their next catch-up: while the broker is down, refuse instead.
        let health = self.broker.health();
        let store = self.store.clone();
        let mut storing = pin!(async move {
            match health {
                Ok(()) => store.append(drafts, now_ms()).await,
                Err(e) => Err(StoreError::Backend(e.into())),
            }
        });
        // Poll once to hand the batch to the store before publishing.
        let started = poll_fn(|cx| Poll::Ready(storing.as_mut().poll(cx))).await;
        if let Some(previous) = previous {
            self.publish(previous);
        }
        let stored = match started {
            Poll::Ready(stored) => stored,
            Poll::Pending => storing.await,
        };
        let ended = Instant::now();
        self.metrics.committed_in(ended - handed_over);
        self.committed = Some(Committed {
            answers,
            stored,
            ended,
        });
    }

    /// Commits nothing but a probe, to learn whether commits succeed again.
    async fn probe(&mut self) {
        let probed = match self.broker.health() {
            Ok(()) => self.store.check_commit().await,
            Err(e) => Err(StoreError::Backend(e.into())),
        };
        match probed {
            Ok(()) => self.outcomes.succeeded(),
            Err(e) => self.outcomes.probe_failed(&e),
        }
    }

    /// Answers one committed draft: an ack (after which a new entry is
    /// published), or its refusal; returns whether a new entry was stored.
    fn answer(&self, pending: Answer, outcome: Appended) -> bool {
        let Some(receipt) = outcome.receipt() else {
            if let Appended::Refused(refusal) = outcome {
                pending.reply_to.reply(ServerFrame::Error {
                    reference: pending.reference,
                    body: ErrorBody {
                        code: refusal.code,
                        message: refusal.message,
                        room: None,
                    },
                });
            }
            return false;
        };
        let duplicate = matches!(outcome, Appended::Duplicate(_));
        pending.reply_to.reply(ServerFrame::Ack {
            reference: pending.reference,
            body: AckBody {
                room: pending.room.to_string(),
                id: receipt.id,
                seq: receipt.seq,
                ts: receipt.ts,
                duplicate,
            },
        });
        self.metrics.acked_after(pending.received.elapsed());
        let kind = match outcome {
            Appended::New(message) => EventKind::Message(message),
            Appended::Changed(change) => EventKind::Change(change),
            Appended::Duplicate(_) | Appended::Refused(_) => return false,
        };
        self.metrics.message_stored();
        self.broker
            .publish(RoomEvent::new(pending.room, kind, None));
        true
    }

    /// Acks a committed batch's drafts and publishes its new entries, or
    /// answers every draft with the commit's error.
    fn publish(&mut self, done: Committed) {
        let Committed {
            answers,
            stored,
            ended,
        } = done;
        match stored {
            Ok(appended) => {
                // Ready again before the first ack is out.
                self.outcomes.succeeded();
                let mut stored_per_room: HashMap<Arc<str>, u64> = HashMap::new();
                for (pending, outcome) in answers.into_iter().zip(appended) {
                    let room = pending.room.clone();
                    if self.answer(pending, outcome) {
                        *stored_per_room.entry(room).or_default() += 1;
                    }
                }
                self.metrics.stored_in_rooms(stored_per_room);
                self.metrics.published_after(ended.elapsed());
            }
            Err(e) => {
                self.outcomes.failed(&e, answers.len());
                for pending in answers {
                    pending.reply_to.reply(ServerFrame::Error {
                        reference: pending.reference,
                        body: ErrorBody {
                            code: ErrorCode::Internal,
                            message: format!("message not stored ({e}); retry with the same id"),
                            room: None,
                        },
                    });
                }
            }
        }
    }
}
