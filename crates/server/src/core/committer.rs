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

#[derive(Debug, Clone)]
pub struct CommitQueue {
    tx: mpsc::Sender<PendingSend>,
}

impl CommitQueue {
    pub fn submit(&self, send: PendingSend) -> Result<(), SubmitError> {
        self.tx.try_send(send).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Full,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
        })
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
    let task = tokio::spawn(run(rx, store, broker, metrics, batch_limit.max(1), closing));
    (CommitQueue { tx }, task)
}

async fn run(
    mut rx: mpsc::Receiver<PendingSend>,
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    metrics: Metrics,
    batch_limit: usize,
    closing: CancellationToken,
) {
    let mut batch = Vec::with_capacity(batch_limit);
    loop {
        tokio::select! {
            received = rx.recv_many(&mut batch, batch_limit) => {
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
        commit(&mut batch, &*store, &*broker, &metrics).await;
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
