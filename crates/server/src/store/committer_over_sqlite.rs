//! The core's committer over the real SQLite store: the order in which it
//! publishes commits and other events, and acks sends. (The committer is
//! the core's; its tests need a store, and the core crate has none.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::SqliteStore;
use super::test_support::{by, draft};
use chat_core::Metrics;
use chat_core::broker::Broker;
use chat_core::committer::{CommitQueue, PendingSend, start};
use chat_core::event::{EventKind, Outbound, Outbox, OutboxReceiver, RoomEvent, outbox};
use chat_core::store::{Action, Draft};
use chat_protocol::{AckBody, ErrorCode, ServerFrame};
use tokio_util::sync::CancellationToken;

/// Remembers what was published, in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    fn published(&self) -> Vec<String> {
        self.0.lock().expect("not poisoned").clone()
    }
}

impl Broker for Recorder {
    fn publish_to_user(
        &self,
        _: &str,
        _: chat_protocol::ServerFrame,
        _: Option<chat_core::ConnId>,
    ) {
    }

    fn publish(&self, event: Arc<RoomEvent>) {
        let seen = match &event.kind {
            EventKind::Message(m) => format!("message {}", m.seq),
            EventKind::Change(c) => format!("{} {} of {}", c.type_name(), c.seq(), c.target()),
            _ => "other".to_owned(),
        };
        if let Ok(mut published) = self.0.lock() {
            published.push(seen);
        }
    }
}

fn started(
    recorder: &Arc<Recorder>,
    batch_limit: usize,
) -> (tempfile::TempDir, CommitQueue, tokio::task::JoinHandle<()>) {
    started_paced(recorder, batch_limit, None)
}

fn started_paced(
    recorder: &Arc<Recorder>,
    batch_limit: usize,
    interval: Option<Duration>,
) -> (tempfile::TempDir, CommitQueue, tokio::task::JoinHandle<()>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path(), Duration::from_secs(1)).expect("store");
    let (queue, task) = start(
        Arc::new(store),
        recorder.clone(),
        Metrics::new(),
        64,
        batch_limit,
        interval,
        CancellationToken::new(),
    );
    (dir, queue, task)
}

fn submit(queue: &CommitQueue, reply_to: &Outbox, id: &str) {
    submit_draft(queue, reply_to, draft("general", id));
}

fn submit_draft(queue: &CommitQueue, reply_to: &Outbox, draft: Draft) {
    queue
        .submit(PendingSend {
            draft,
            reference: None,
            reply_to: reply_to.clone(),
            received: Instant::now(),
            room: Arc::from("general"),
        })
        .expect("queued");
}

/// The seq an ack carries; `None` for any other item.
fn acked_seq(item: Outbound) -> Option<u64> {
    match item {
        Outbound::Reply(frame) => match *frame {
            ServerFrame::Ack {
                body: AckBody { seq, .. },
                ..
            } => Some(seq),
            _ => None,
        },
        Outbound::Event(_) => None,
    }
}

/// The seqs of the acks queued now.
fn acked_seqs(replies: &mut OutboxReceiver) -> Vec<u64> {
    std::iter::from_fn(|| replies.rx.try_recv().ok())
        .filter_map(acked_seq)
        .collect()
}

#[tokio::test]
async fn changes_are_acked_and_published_in_order_and_refusals_answered() {
    let recorder = Arc::new(Recorder::default());
    let (_dir, queue, task) = started(&recorder, 16);
    let (reply_to, mut replies) = outbox(1, 16, Metrics::new());
    let in_general = |draft: Draft| Draft {
        room: "general".into(),
        ..draft
    };
    submit(&queue, &reply_to, "m1");
    let bobs_edit = Action::Edit {
        target: 1,
        text: "not yours".into(),
    };
    submit_draft(&queue, &reply_to, in_general(by("u2", "e1", bobs_edit)));
    let delete = Action::Delete { target: 1 };
    submit_draft(&queue, &reply_to, in_general(by("u1", "d1", delete)));
    drop(queue);
    task.await
        .expect("committer ends once its queue is dropped");
    assert_eq!(recorder.published(), ["message 1", "deleted 2 of 1"]);
    let answers: Vec<String> = std::iter::from_fn(|| replies.rx.try_recv().ok())
        .map(|item| match item {
            Outbound::Reply(frame) => match *frame {
                ServerFrame::Ack { body, .. } => format!("ack {}", body.seq),
                ServerFrame::Error { body, .. } => format!("error {}", body.code),
                other => other.type_name().to_owned(),
            },
            Outbound::Event(_) => "event".to_owned(),
        })
        .collect();
    assert_eq!(
        answers,
        [
            "ack 1",
            format!("error {}", ErrorCode::Forbidden).as_str(),
            "ack 2"
        ]
    );
}

#[tokio::test]
async fn sends_committed_while_earlier_ones_publish_keep_their_order() {
    let recorder = Arc::new(Recorder::default());
    // Batches of 3: the second is committed while the first is
    // published, and so on.
    let (_dir, queue, task) = started(&recorder, 3);
    let (reply_to, mut replies) = outbox(1, 64, Metrics::new());
    for n in 1..=10 {
        submit(&queue, &reply_to, &format!("m{n}"));
    }
    drop(queue);
    task.await
        .expect("committer ends once its queue is dropped");
    let expected: Vec<String> = (1..=10).map(|seq| format!("message {seq}")).collect();
    assert_eq!(recorder.published(), expected);
    assert_eq!(acked_seqs(&mut replies), (1..=10).collect::<Vec<u64>>());
}

/// Waits until `replies` holds `count` acks, and returns their seqs.
async fn acks(replies: &mut OutboxReceiver, count: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < count
        && let Some(item) = replies.rx.recv().await
    {
        seqs.extend(acked_seq(item));
    }
    seqs
}

#[tokio::test]
async fn with_an_interval_a_send_soon_after_a_commit_waits_for_the_next_one() {
    let interval = Duration::from_secs(1);
    let recorder = Arc::new(Recorder::default());
    let (_dir, queue, task) = started_paced(&recorder, 16, Some(interval));
    let (reply_to, mut replies) = outbox(1, 64, Metrics::new());
    // The first send has no commit before it: it is stored at once.
    submit(&queue, &reply_to, "m1");
    assert_eq!(acks(&mut replies, 1).await, [1]);
    // The next comes well within the interval of that commit's start: it
    // waits, and one sent while it waits goes with it.
    submit(&queue, &reply_to, "m2");
    tokio::time::sleep(interval / 10).await;
    assert_eq!(acked_seqs(&mut replies), Vec::<u64>::new());
    submit(&queue, &reply_to, "m3");
    assert_eq!(acks(&mut replies, 2).await, [2, 3]);
    // After a quiet interval a send is stored at once again.
    tokio::time::sleep(interval).await;
    let sent = Instant::now();
    submit(&queue, &reply_to, "m4");
    assert_eq!(acks(&mut replies, 1).await, [4]);
    assert!(sent.elapsed() < interval / 2, "{:?}", sent.elapsed());
    drop(queue);
    task.await
        .expect("committer ends once its queue is dropped");
    let expected: Vec<String> = (1..=4).map(|seq| format!("message {seq}")).collect();
    assert_eq!(recorder.published(), expected);
}
