//! Group commit: the single task that turns accepted sends into stored,
//! acked, broadcast messages.
//!
//! Sends queue up while a commit is in flight; the next commit takes all of
//! them (up to a batch limit) in one transaction, so under load hundreds of
//! messages share one fsync and durability costs little throughput.
//!
//! Invariants:
//! - An ack is queued only after [`Store::append`] returned, i.e. after the
//!   commit is durable.
//! - Outcomes are handled in batch order, and batches one after another, so
//!   each room's messages are published in `seq` order.
//! - A failed commit stores nothing (the store's transaction rolls back), so
//!   it cannot leave a gap: every send in it gets an `internal` error and the
//!   client may retry with the same `id`.
//! - An event handed over with [`CommitQueue::publish_after_commits`] is
//!   published after every batch committed before it was handed over: a
//!   `deleted` event cannot overtake the message it deletes, which may be
//!   committed and not yet published when the deletion finds it.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chat_protocol::{ErrorCode, Ref, ServerFrame};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::event::{EventKind, Outbox, RoomEvent};
use super::metrics::Metrics;
use crate::broker::Broker;
use crate::store::{Appended, Draft, Store};

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

/// What the committer takes, in order.
#[derive(Debug)]
enum Job {
    Send(PendingSend),
    /// An event to publish once the sends before it are committed and
    /// published.
    Publish(Arc<RoomEvent>),
}

#[derive(Clone)]
pub struct CommitQueue {
    tx: mpsc::Sender<Job>,
    /// Takes events when the queue is closed (shutdown): they are published
    /// directly, as nothing is being committed any more.
    broker: Arc<dyn Broker>,
}

impl CommitQueue {
    pub fn submit(&self, send: PendingSend) -> Result<(), SubmitError> {
        self.tx.try_send(Job::Send(send)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Full,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
        })
    }

    /// Publishes `event` after every send queued before it, committed or
    /// not, has been published.
    pub async fn publish_after_commits(&self, event: Arc<RoomEvent>) {
        if let Err(refused) = self.tx.send(Job::Publish(event)).await
            && let Job::Publish(event) = refused.0
        {
            self.broker.publish(event);
        }
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
    closing: CancellationToken,
) -> (CommitQueue, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let queue = CommitQueue {
        tx,
        broker: broker.clone(),
    };
    let task = tokio::spawn(run(rx, store, broker, metrics, batch_limit.max(1), closing));
    (queue, task)
}

async fn run(
    mut rx: mpsc::Receiver<Job>,
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    metrics: Metrics,
    batch_limit: usize,
    closing: CancellationToken,
) {
    let mut jobs = Vec::with_capacity(batch_limit);
    let mut batch = Vec::with_capacity(batch_limit);
    loop {
        tokio::select! {
            received = rx.recv_many(&mut jobs, batch_limit) => {
                if received == 0 {
                    return;
                }
            }
            // Refuse new sends but keep draining those already accepted:
            // `recv_many` returns 0 once the queue is closed and empty.
            _ = closing.cancelled(), if !rx.is_closed() => {
                rx.close();
                continue;
            }
        }
        for job in jobs.drain(..) {
            match job {
                Job::Send(send) => batch.push(send),
                Job::Publish(event) => {
                    if !batch.is_empty() {
                        commit(&mut batch, &*store, &*broker, &metrics).await;
                    }
                    broker.publish(event);
                }
            }
        }
        if !batch.is_empty() {
            commit(&mut batch, &*store, &*broker, &metrics).await;
        }
    }
}

async fn commit(
    batch: &mut Vec<PendingSend>,
    store: &dyn Store,
    broker: &dyn Broker,
    metrics: &Metrics,
) {
    metrics.committed_batch(batch.len());
    let (drafts, answers): (Vec<Draft>, Vec<Answer>) = batch
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
    let stored = match broker.health() {
        Ok(()) => store.append(drafts, now_ms()).await,
        Err(e) => Err(crate::store::StoreError::Backend(e.to_string())),
    };
    match stored {
        Ok(outcomes) => {
            for (pending, outcome) in answers.into_iter().zip(outcomes) {
                let (message, duplicate) = match outcome {
                    Appended::New(m) => (m, false),
                    Appended::Duplicate(m) => (m, true),
                };
                pending.reply_to.reply(ServerFrame::Ack {
                    reference: pending.reference,
                    room: message.room.clone(),
                    id: message.id.clone(),
                    seq: message.seq,
                    ts: message.ts,
                    duplicate,
                });
                metrics.acked_after(pending.received.elapsed());
                if !duplicate {
                    metrics.message_stored();
                    broker.publish(RoomEvent::new(
                        pending.room,
                        EventKind::Message(message),
                        None,
                    ));
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, sends = answers.len(), "commit failed; sends refused");
            for pending in answers {
                pending.reply_to.reply(ServerFrame::Error {
                    reference: pending.reference,
                    code: ErrorCode::Internal,
                    message: format!("message not stored ({e}); retry with the same id"),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::core::event::outbox;
    use crate::store::SqliteStore;

    /// Remembers what was published, in order.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Broker for Recorder {
        fn publish(&self, event: Arc<RoomEvent>) {
            let seen = match &event.kind {
                EventKind::Message(m) => format!("message {}", m.seq),
                EventKind::Deleted { seq } => format!("deleted {seq}"),
                _ => "other".to_owned(),
            };
            if let Ok(mut published) = self.0.lock() {
                published.push(seen);
            }
        }
    }

    #[tokio::test]
    async fn an_event_after_commits_follows_the_sends_queued_before_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(dir.path(), Duration::from_secs(1)).expect("store");
        let recorder = Arc::new(Recorder::default());
        let (queue, task) = start(
            Arc::new(store),
            recorder.clone(),
            Metrics::new(),
            16,
            16,
            CancellationToken::new(),
        );
        let (reply_to, _replies) = outbox(1, 16, Metrics::new());
        let room: Arc<str> = Arc::from("general");
        queue
            .submit(PendingSend {
                draft: crate::store::test_support::draft("general", "m1"),
                reference: None,
                reply_to,
                received: Instant::now(),
                room: room.clone(),
            })
            .expect("queued");
        // Handed over before the send is committed: it must still come
        // second.
        let deleted = RoomEvent::new(room, EventKind::Deleted { seq: 1 }, None);
        queue.publish_after_commits(deleted).await;
        drop(queue);
        task.await
            .expect("committer ends once its queue is dropped");
        let published = recorder.0.lock().expect("not poisoned").clone();
        assert_eq!(published, ["message 1", "deleted 1"]);
    }
}
