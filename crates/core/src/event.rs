//! What flows from the core to a connection: shared room events and direct
//! replies, through a bounded per-connection [`Outbox`].

use std::any::{Any, TypeId};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use chat_protocol::{Change, Message, PresenceBody, PresenceEvent, ServerFrame, TypingBody, User};
use futures_util::task::AtomicWaker;
use tokio::sync::mpsc;

use super::metrics::Metrics;

/// Identifies one connection within this node.
pub type ConnId = u64;

/// Something that happened in a room. One value is shared (behind an `Arc`)
/// by every receiver, and so is each encoding of it.
#[derive(Debug)]
pub struct RoomEvent {
    pub room: Arc<str>,
    pub kind: EventKind,
    /// A connection that must not receive the event: the one typing, or the
    /// one whose join is announced (it learns from its `joined` reply).
    pub skip: Option<ConnId>,
    /// When this node made the event (published it, or received it from
    /// another node): the start of its wait in members' outboxes.
    pub created: Instant,
    /// The event in each wire format a receiver asked for, keyed by its
    /// [`Encoder`]: each transport caches the value it hands to its sockets,
    /// so a receiver only clones a shared buffer.
    encodings: [OnceLock<Encoded>; MAX_ENCODERS],
}

/// One cached encoding: the encoder's type, and its output.
type Encoded = (TypeId, Box<dyn Any + Send + Sync>);

/// How many encoders an event caches for; a further one still works,
/// uncached. Two serve today (the native protocol and Socket.IO).
const MAX_ENCODERS: usize = 4;

#[derive(Debug)]
pub enum EventKind {
    Message(Message),
    Presence {
        event: PresenceEvent,
        user: User,
    },
    Typing {
        user: User,
    },
    /// A change to a message (extension): an entry of the room's sequence
    /// like a message, delivered in `seq` order with them.
    Change(Change),
}

/// A wire format that a transport encodes room events into. The core
/// names none: each transport defines its own, and every event encodes
/// into each at most once, by the first receiver that needs it.
pub trait Encoder: 'static {
    /// What the transport hands its sockets, cheap to clone (a
    /// reference-counted buffer).
    type Output: Clone + Send + Sync + 'static;

    fn encode(event: &RoomEvent) -> Self::Output;
}

impl RoomEvent {
    pub fn new(room: Arc<str>, kind: EventKind, skip: Option<ConnId>) -> Arc<Self> {
        Arc::new(RoomEvent {
            room,
            kind,
            skip,
            created: Instant::now(),
            encodings: Default::default(),
        })
    }

    /// The entry's sequence number, for the entries of the room's
    /// sequence (messages and changes).
    pub fn seq(&self) -> Option<u64> {
        match &self.kind {
            EventKind::Message(m) => Some(m.seq),
            EventKind::Change(c) => Some(c.seq()),
            EventKind::Presence { .. } | EventKind::Typing { .. } => None,
        }
    }

    /// The event as `E` encodes it, encoded on first use and shared
    /// afterwards.
    pub fn encoded<E: Encoder>(&self) -> E::Output {
        let key = TypeId::of::<E>();
        for slot in &self.encodings {
            // Takes the first free slot, or finds the one `E` took: a slot
            // another encoder holds is passed over.
            let (owner, cached) = slot.get_or_init(|| (key, Box::new(E::encode(self))));
            if *owner == key
                && let Some(value) = cached.downcast_ref::<E::Output>()
            {
                return value.clone();
            }
        }
        E::encode(self)
    }

    /// The protocol frame for this event.
    pub fn to_frame(&self) -> ServerFrame {
        match &self.kind {
            EventKind::Message(m) => ServerFrame::Message(m.clone()),
            EventKind::Presence { event, user } => ServerFrame::Presence(PresenceBody {
                room: self.room.to_string(),
                event: *event,
                user: user.clone(),
            }),
            EventKind::Typing { user } => ServerFrame::Typing(TypingBody {
                room: self.room.to_string(),
                user: user.clone(),
            }),
            EventKind::Change(change) => ServerFrame::from(change.clone()),
        }
    }
}

/// One item in a connection's outbound queue.
#[derive(Debug)]
pub enum Outbound {
    /// A room event shared with other receivers.
    Event(Arc<RoomEvent>),
    /// A reply to this connection only (boxed to keep queue slots small).
    Reply(Box<ServerFrame>),
}

/// Why a connection must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Dropped {
    /// The queue was full: the connection is too slow for its rooms.
    SlowConsumer = 0,
    /// The server is shutting down; every accepted send has been answered.
    Shutdown = 1,
    /// An operator disconnected the user (`POST /api/users/{id}/disconnect`).
    Kicked = 2,
    /// The client sent no request but pings for `--idle-timeout-secs`.
    Idle = 3,
    /// An operator banned the user from the server; the error saying so
    /// is queued, and goes out before the close.
    Banned = 4,
}

/// Sending side of a connection's bounded queue. Cloned into every room the
/// connection joins and into pending sends awaiting their ack.
///
/// A push never waits: a full queue means the receiver cannot keep up, and
/// waiting would slow the whole room down to its pace. Instead the
/// connection is marked dropped; its transport closes it with 1013 and the
/// client resumes with `join` + `since`.
///
/// The bound is an atomic count beside an unbounded channel rather than
/// tokio's bounded channel: the bounded one takes its semaphore's mutex on
/// every receive to hand the slot back, once per delivery per member.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Outbound>,
    shared: Arc<OutboxShared>,
}

#[derive(Debug)]
struct OutboxShared {
    conn: ConnId,
    hangup: Hangup,
    metrics: Metrics,
    /// Items pushed and not yet received; at most `capacity`.
    queued: AtomicUsize,
    capacity: usize,
    /// A ban took the connection out of a room: its session has rooms to
    /// forget.
    evicted: AtomicBool,
}

/// A connection's reason to end, set once, and its task's waker.
///
/// The transport's task polls this on every wake-up, so it is lock-free:
/// an atomic and an `AtomicWaker` (a `CancellationToken` takes a mutex on
/// every poll, which showed up at a few percent of the server's CPU under
/// fan-out load).
#[derive(Debug, Default)]
struct Hangup {
    /// 0 while the connection may stay, else `Dropped as u8 + 1`.
    reason: AtomicU8,
    waker: AtomicWaker,
}

impl Hangup {
    /// Sets the reason unless one is set; returns whether this call set it.
    fn set(&self, reason: Dropped) -> bool {
        let set = self
            .reason
            .compare_exchange(0, reason as u8 + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if set {
            self.waker.wake();
        }
        set
    }

    fn get(&self) -> Option<Dropped> {
        match self.reason.load(Ordering::Acquire) {
            0 => None,
            1 => Some(Dropped::SlowConsumer),
            2 => Some(Dropped::Shutdown),
            3 => Some(Dropped::Kicked),
            4 => Some(Dropped::Idle),
            _ => Some(Dropped::Banned),
        }
    }
}

/// Receiving side, owned by the connection's transport task. The two
/// halves are separate fields so a task can wait on both at once.
#[derive(Debug)]
pub struct OutboxReceiver {
    pub rx: OutboxQueue,
    pub dropped: DroppedSignal,
}

/// The items queued for a connection, oldest first.
#[derive(Debug)]
pub struct OutboxQueue {
    rx: mpsc::UnboundedReceiver<Outbound>,
    shared: Arc<OutboxShared>,
    /// Whether the queue has been found empty since the last item taken:
    /// the next event taken is then the oldest of a new run, and its wait
    /// may be recorded (one sample per run, the run's longest wait, rather
    /// than a clock read per delivery).
    idle: bool,
    /// Runs since the last one whose wait was recorded: the first run is,
    /// then one in [`OUTBOX_WAIT_SAMPLING`].
    unsampled_runs: u8,
}

/// One run of events in [`OUTBOX_WAIT_SAMPLING`] has its outbox wait
/// recorded. Under fan-out nearly every delivery starts a run, and a sample
/// each cost a clock read and a histogram push per delivery (some 3 % of
/// the server's CPU), and the exporter's upkeep, which folds the samples
/// into buckets every few seconds on a runtime thread, held that thread for
/// 2 to 3 ms at 50,000 deliveries a second. A sample of one in eight still
/// gives thousands of samples a second under such a load.
const OUTBOX_WAIT_SAMPLING: u8 = 8;

/// Why [`OutboxQueue::try_recv`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Empty {
    /// Nothing is queued now.
    Empty,
    /// Nothing is queued and nothing can be: every sender is gone.
    Disconnected,
}

/// Fires when the connection must be dropped.
#[derive(Debug)]
pub struct DroppedSignal {
    shared: Arc<OutboxShared>,
}

/// Creates a connection's queue holding at most `capacity` items.
pub fn outbox(conn: ConnId, capacity: usize, metrics: Metrics) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(OutboxShared {
        conn,
        hangup: Hangup::default(),
        metrics,
        queued: AtomicUsize::new(0),
        capacity: capacity.max(1),
        evicted: AtomicBool::new(false),
    });
    (
        Outbox {
            tx,
            shared: shared.clone(),
        },
        OutboxReceiver {
            rx: OutboxQueue {
                rx,
                shared: shared.clone(),
                idle: true,
                // The first run is sampled: a connection that sees few
                // events still contributes.
                unsampled_runs: OUTBOX_WAIT_SAMPLING - 1,
            },
            dropped: DroppedSignal { shared },
        },
    )
}

impl Outbox {
    pub fn conn(&self) -> ConnId {
        self.shared.conn
    }

    /// Queues an item; returns false if the connection is gone or too slow.
    pub fn push(&self, item: Outbound) -> bool {
        let shared = &*self.shared;
        if shared.queued.fetch_add(1, Ordering::Relaxed) >= shared.capacity {
            shared.queued.fetch_sub(1, Ordering::Relaxed);
            self.mark_slow();
            return false;
        }
        if self.tx.send(item).is_err() {
            shared.queued.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    pub fn reply(&self, frame: ServerFrame) -> bool {
        self.push(Outbound::Reply(Box::new(frame)))
    }

    /// Marks the connection as too slow, once.
    pub fn mark_slow(&self) {
        self.shared.mark_slow();
    }

    /// Tells the connection's transport to close it: the server is shutting
    /// down.
    pub fn shut_down(&self) {
        self.shared.hangup.set(Dropped::Shutdown);
    }

    /// Notes that a ban took the connection out of a room, for its session
    /// to learn at its next request ([`Outbox::take_evicted`]).
    pub fn mark_evicted(&self) {
        self.shared.evicted.store(true, Ordering::Release);
    }

    /// Whether a ban took the connection out of a room since the last
    /// call: one atomic read on every request.
    pub fn take_evicted(&self) -> bool {
        self.shared.evicted.load(Ordering::Acquire)
            && self.shared.evicted.swap(false, Ordering::AcqRel)
    }

    /// Tells the connection's transport to close it for `reason`, unless
    /// it already has one; returns whether this call set it.
    pub fn hang_up(&self, reason: Dropped) -> bool {
        self.shared.hangup.set(reason)
    }
}

impl OutboxShared {
    fn mark_slow(&self) {
        if self.hangup.set(Dropped::SlowConsumer) {
            self.metrics.slow_consumer_dropped();
        }
    }
}

impl OutboxQueue {
    /// The next item, waiting for one.
    pub async fn recv(&mut self) -> Option<Outbound> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next item, or `Pending` with the task registered for the next
    /// push.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        let polled = self.rx.poll_recv(cx);
        match &polled {
            Poll::Ready(Some(item)) => self.taken(item),
            _ => self.idle = true,
        }
        polled
    }

    /// The next item if one is queued now.
    pub fn try_recv(&mut self) -> Result<Outbound, Empty> {
        match self.rx.try_recv() {
            Ok(item) => {
                self.taken(&item);
                Ok(item)
            }
            Err(mpsc::error::TryRecvError::Empty) => {
                self.idle = true;
                Err(Empty::Empty)
            }
            Err(mpsc::error::TryRecvError::Disconnected) => Err(Empty::Disconnected),
        }
    }

    /// Accounts for an item the transport took to write.
    fn taken(&mut self, item: &Outbound) {
        self.shared.queued.fetch_sub(1, Ordering::Relaxed);
        if self.idle
            && let Outbound::Event(event) = item
        {
            self.idle = false;
            self.unsampled_runs += 1;
            if self.unsampled_runs == OUTBOX_WAIT_SAMPLING {
                self.unsampled_runs = 0;
                self.shared.metrics.outbox_waited(event.created.elapsed());
            }
        }
    }
}

impl DroppedSignal {
    /// Marks the connection as too slow, as a full queue does: for a
    /// transport whose own write queue, downstream of the outbox, is full.
    pub fn mark_slow(&self) {
        self.shared.mark_slow();
    }

    /// Resolves when the connection must end, and says why.
    pub async fn wait(&self) -> Dropped {
        std::future::poll_fn(|cx| self.poll(cx)).await
    }

    /// Why the connection must end, or `Pending` with the task registered
    /// to learn it.
    pub fn poll(&self, cx: &mut Context<'_>) -> Poll<Dropped> {
        let hangup = &self.shared.hangup;
        // Registered before looking, so a reason set in between still wakes
        // us.
        hangup.waker.register(cx.waker());
        match hangup.get() {
            Some(reason) => Poll::Ready(reason),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    static NATIVE_CALLS: AtomicUsize = AtomicUsize::new(0);
    static OTHER_CALLS: AtomicUsize = AtomicUsize::new(0);

    /// Two transports' encodings of the same event, each counting its
    /// calls.
    struct Native;
    struct Other;

    impl Encoder for Native {
        type Output = Arc<str>;
        fn encode(event: &RoomEvent) -> Arc<str> {
            NATIVE_CALLS.fetch_add(1, Ordering::Relaxed);
            Arc::from(event.to_frame().to_json())
        }
    }

    impl Encoder for Other {
        type Output = usize;
        fn encode(event: &RoomEvent) -> usize {
            OTHER_CALLS.fetch_add(1, Ordering::Relaxed);
            event.room.len()
        }
    }

    #[test]
    fn each_encoder_encodes_an_event_once_and_keeps_its_own_value() {
        let change = chat_protocol::samples::changes().remove(1);
        let event = RoomEvent::new(Arc::from("general"), EventKind::Change(change), None);
        let first = event.encoded::<Native>();
        assert_eq!(event.encoded::<Other>(), 7);
        for _ in 0..3 {
            assert!(Arc::ptr_eq(&event.encoded::<Native>(), &first));
            assert_eq!(event.encoded::<Other>(), 7);
        }
        assert!(first.contains(r#""type":"deleted""#), "{first}");
        assert_eq!(NATIVE_CALLS.load(Ordering::Relaxed), 1);
        assert_eq!(OTHER_CALLS.load(Ordering::Relaxed), 1);
    }
}
