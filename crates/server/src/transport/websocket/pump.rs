//! The wait at the heart of every WebSocket connection's task, shared by
//! `/ws` (and `/ws-echo`, on `/ws`'s loop) and Socket.IO's WebSocket path:
//! move what the outbox holds onto the socket, write, and read, until there
//! is something for the task to act on. The outbox is whatever implements
//! [`Outgoing`]: the chat's [`OutboxReceiver`] for both protocols, the
//! echo's own queue on `/ws-echo`.
//!
//! Under fan-out a connection wakes once per delivery, and polling every
//! source on every wake-up (the socket's read side through tungstenite and
//! hyper's upgrade wrappers, the outbox, the heartbeat timer, each
//! re-registering its waker) cost more than the delivery itself: with a
//! `select!` over the four, a delivery took about 2,900 instructions in the
//! connection's task, now about 1,250 (callgrind). So each source gets its
//! own waker, which records that it fired before waking the task, and a
//! wake-up polls only the sources that fired, plus the write side when
//! there is output.
//!
//! It also bounds the connection's own output. Outbox items stop being
//! taken at [`OUTPUT_HIGH_WATER`], so a client that does not read fills its
//! outbox and is dropped as too slow; but reading goes on, and what a read
//! adds directly (a pong for each ping) is capped by [`OUTPUT_SLACK`], past
//! which the connection is marked too slow as well.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tungstenite::{Error, Message};

use super::socket::{SocketEvent, WsSocket};
use chat_core::{Dropped, Outbound, OutboxReceiver};

/// What a pump moves onto the socket, and the signal that the connection
/// must end: a chat connection's outbox ([`OutboxReceiver`]), or what
/// `/ws-echo` has to echo.
pub(crate) trait Outgoing {
    /// One item, which the protocol formats into frames.
    type Item;
    /// The next item, or `Pending` with the task registered for the next
    /// one.
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::Item>>;
    /// The next item if one is queued now.
    fn try_item(&mut self) -> Option<Self::Item>;
    /// Why the connection must end, or `Pending` with the task registered
    /// to learn it.
    fn poll_dropped(&self, cx: &mut Context<'_>) -> Poll<Dropped>;
    /// Marks the connection as too slow: its output grew past the limit.
    fn mark_slow(&self);
}

impl Outgoing for OutboxReceiver {
    type Item = Outbound;

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        self.rx.poll_recv(cx)
    }

    fn try_item(&mut self) -> Option<Outbound> {
        self.rx.try_recv().ok()
    }

    fn poll_dropped(&self, cx: &mut Context<'_>) -> Poll<Dropped> {
        self.dropped.poll(cx)
    }

    fn mark_slow(&self) {
        self.dropped.mark_slow();
    }
}

/// Output queued before the connection stops taking items from its outbox
/// until the socket drains: a client that does not read fills its outbox and
/// is dropped as too slow, instead of growing the output buffer.
pub(crate) const OUTPUT_HIGH_WATER: usize = 64 * 1024;
/// How far output may grow past the high-water mark (and past the outbox
/// item that crossed it) by what does not come from the outbox: pongs, and
/// Socket.IO's answers to Engine.IO pings, one for each such frame the
/// client sends. Reading goes on while output waits, so a client that keeps
/// sending those and never reads would grow the buffer without bound;
/// beyond this it is dropped as too slow, like one whose outbox is full.
pub(crate) const OUTPUT_SLACK: usize = 16 * 1024;
/// Most outbox items formatted per wake-up, so one busy connection cannot
/// keep its task from reading for long.
const MAX_BATCH: usize = 256;

/// What a connection's task must act on.
pub(crate) enum Next {
    /// A message from the client.
    Message(Message),
    /// The socket failed, or the client broke the WebSocket protocol.
    Failed(Error),
    /// The core wants the connection gone.
    Dropped(Dropped),
    /// The heartbeat interval came round.
    Tick,
}

/// A connection's outbox and heartbeat timer, and which of its sources
/// woke its task. The socket stays with the transport, which lends it to
/// each [`Pump::poll_next`].
pub(crate) struct Pump<O = OutboxReceiver> {
    outbox: O,
    ticks: Interval,
    wakeups: Arc<Wakeups>,
    socket_waker: Waker,
    outbox_waker: Waker,
    timer_waker: Waker,
    /// The outbox was left unread because output reached the high-water
    /// mark; it is read again once the socket drains.
    outbox_paused: bool,
    /// Output beyond this is too much: the high-water mark plus the slack,
    /// raised to allow for an outbox item that crossed the mark.
    output_limit: usize,
}

impl<O: Outgoing> Pump<O> {
    /// A pump whose first tick comes one `heartbeat` from now.
    pub(crate) fn new(outbox: O, heartbeat: Duration) -> Self {
        Pump::with_ticks(outbox, heartbeat_ticks(heartbeat))
    }

    /// A pump that goes on with `ticks` (made by [`heartbeat_ticks`]).
    pub(crate) fn with_ticks(outbox: O, ticks: Interval) -> Self {
        // Every source is polled once first, which registers its waker.
        let wakeups = Arc::new(Wakeups {
            fired: AtomicU8::new(SOCKET | OUTBOX | TIMER),
            task: AtomicWaker::new(),
        });
        Pump {
            outbox,
            ticks,
            socket_waker: source_waker::<SOCKET>(&wakeups),
            outbox_waker: source_waker::<OUTBOX>(&wakeups),
            timer_waker: source_waker::<TIMER>(&wakeups),
            wakeups,
            outbox_paused: false,
            output_limit: OUTPUT_HIGH_WATER + OUTPUT_SLACK,
        }
    }

    /// Moves output from the outbox to `socket` (each item formatted by
    /// `format`), writes, and reads, until there is something for the task
    /// to act on.
    pub(crate) fn poll_next<S, F>(
        &mut self,
        cx: &mut Context<'_>,
        socket: &mut WsSocket<S>,
        format: &mut F,
    ) -> Poll<Next>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        F: FnMut(&mut WsSocket<S>, O::Item),
    {
        // Registered before the sources are looked at, so one that fires in
        // between still wakes the task.
        self.wakeups.task.register(cx.waker());
        // What the task queued since the last call (answers to what it
        // read, a heartbeat ping) is not from the outbox.
        if self.output_over_limit(socket.pending()) {
            self.outbox.mark_slow();
        }
        if let Poll::Ready(reason) = self.outbox.poll_dropped(cx) {
            return Poll::Ready(Next::Dropped(reason));
        }
        let fired = self.wakeups.fired.swap(0, Ordering::AcqRel);
        if fired & TIMER != 0 {
            let mut timer_cx = Context::from_waker(&self.timer_waker);
            if self.ticks.poll_tick(&mut timer_cx).is_ready() {
                // Whatever else fired is looked at on the next call, which
                // also registers the timer for the following tick.
                self.wakeups.fired.fetch_or(fired, Ordering::AcqRel);
                return Poll::Ready(Next::Tick);
            }
        }
        if fired & OUTBOX != 0 || self.outbox_paused {
            self.take_outbox(socket, format);
        }
        loop {
            let was_paused = self.outbox_paused;
            if fired & SOCKET != 0 {
                let mut socket_cx = Context::from_waker(&self.socket_waker);
                match socket.poll_io(&mut socket_cx, OUTPUT_HIGH_WATER) {
                    Poll::Ready(Ok(SocketEvent::Message(message))) => {
                        // More may wait in the read buffer: look again
                        // next time without waiting for the socket.
                        self.wakeups.fired.fetch_or(SOCKET, Ordering::AcqRel);
                        return Poll::Ready(Next::Message(message));
                    }
                    Poll::Ready(Ok(SocketEvent::Drained)) | Poll::Pending => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Next::Failed(e)),
                }
            } else if socket.pending() > 0 {
                let mut socket_cx = Context::from_waker(&self.socket_waker);
                if let Poll::Ready(Err(e)) = socket.poll_flush(&mut socket_cx) {
                    return Poll::Ready(Next::Failed(Error::Io(e)));
                }
            }
            // Output that drained below the high-water mark lets the
            // outbox be read again, and what it yields must be written.
            if !(was_paused && socket.pending() < OUTPUT_HIGH_WATER) {
                return Poll::Pending;
            }
            self.take_outbox(socket, format);
        }
    }

    /// Formats what the outbox holds into the socket's output, up to the
    /// high-water mark and a batch per wake-up.
    fn take_outbox<S, F>(&mut self, socket: &mut WsSocket<S>, format: &mut F)
    where
        S: AsyncRead + AsyncWrite + Unpin,
        F: FnMut(&mut WsSocket<S>, O::Item),
    {
        let mut outbox_cx = Context::from_waker(&self.outbox_waker);
        for _ in 0..MAX_BATCH {
            if socket.pending() >= OUTPUT_HIGH_WATER {
                self.outbox_paused = true;
                return;
            }
            match self.outbox.poll_item(&mut outbox_cx) {
                Poll::Ready(Some(item)) => {
                    format_item(&mut self.output_limit, socket, format, item);
                }
                Poll::Ready(None) | Poll::Pending => {
                    self.outbox_paused = false;
                    return;
                }
            }
        }
        // A full batch: come back for the rest after writing it.
        self.outbox_paused = false;
        self.wakeups.fire(OUTBOX);
    }

    /// Everything queued now, regardless of the high-water mark: the last
    /// output before a shutdown, or what must precede a reply the transport
    /// sends itself.
    pub(crate) fn queue_all_queued<S, F>(&mut self, socket: &mut WsSocket<S>, format: &mut F)
    where
        S: AsyncRead + AsyncWrite + Unpin,
        F: FnMut(&mut WsSocket<S>, O::Item),
    {
        while let Some(item) = self.outbox.try_item() {
            format_item(&mut self.output_limit, socket, format, item);
        }
    }

    /// Whether output is past its limit (see [`OUTPUT_SLACK`]).
    fn output_over_limit(&mut self, pending: usize) -> bool {
        reset_drained_limit(&mut self.output_limit, pending);
        pending > self.output_limit
    }
}

/// Formats one outbox item and allows for it in `output_limit`: what the
/// outbox holds is bounded by its own capacity, whatever its items weigh.
fn format_item<S, F, Item>(
    output_limit: &mut usize,
    socket: &mut WsSocket<S>,
    format: &mut F,
    item: Item,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(&mut WsSocket<S>, Item),
{
    reset_drained_limit(output_limit, socket.pending());
    format(socket, item);
    *output_limit = (*output_limit).max(socket.pending() + OUTPUT_SLACK);
}

/// Output below the high-water mark has drained: the limit starts over.
fn reset_drained_limit(output_limit: &mut usize, pending: usize) {
    if pending < OUTPUT_HIGH_WATER {
        *output_limit = OUTPUT_HIGH_WATER + OUTPUT_SLACK;
    }
}

/// Ticks every `heartbeat`, the first one `heartbeat` from now; a late tick
/// is not made up for.
pub(crate) fn heartbeat_ticks(heartbeat: Duration) -> Interval {
    let mut ticks = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
}

/// Sources of a connection's wake-ups, as bits of [`Wakeups::fired`].
const SOCKET: u8 = 1;
const OUTBOX: u8 = 2;
const TIMER: u8 = 4;

/// The sources that fired since the connection's task last looked, and the
/// task to wake.
struct Wakeups {
    fired: AtomicU8,
    task: AtomicWaker,
}

impl Wakeups {
    fn fire(&self, source: u8) {
        self.fired.fetch_or(source, Ordering::AcqRel);
        self.task.wake();
    }
}

/// The waker a source is given: it records the source, then wakes the task.
///
/// All three of a connection's source wakers share its one [`Wakeups`]
/// allocation and differ only in their vtable, which names the source:
/// separate `Arc`s per source (`std::task::Wake`) cost about 300 bytes per
/// connection, 5% of an idle connection's memory. The unit tests below
/// exercise every function of the vtable, and CI runs them under Miri.
fn source_waker<const SOURCE: u8>(wakeups: &Arc<Wakeups>) -> Waker {
    let data = Arc::into_raw(wakeups.clone()).cast::<()>();
    // SAFETY: `data` is an `Arc<Wakeups>` reference turned into a raw
    // pointer, which is what every function of the vtable expects.
    unsafe { Waker::from_raw(RawWaker::new(data, vtable::<SOURCE>())) }
}

fn vtable<const SOURCE: u8>() -> &'static RawWakerVTable {
    match SOURCE {
        SOCKET => &SOCKET_WAKER,
        OUTBOX => &OUTBOX_WAKER,
        _ => &TIMER_WAKER,
    }
}

static SOCKET_WAKER: RawWakerVTable = RawWakerVTable::new(
    clone_waker::<SOCKET>,
    wake_waker::<SOCKET>,
    wake_waker_by_ref::<SOCKET>,
    drop_waker,
);
static OUTBOX_WAKER: RawWakerVTable = RawWakerVTable::new(
    clone_waker::<OUTBOX>,
    wake_waker::<OUTBOX>,
    wake_waker_by_ref::<OUTBOX>,
    drop_waker,
);
static TIMER_WAKER: RawWakerVTable = RawWakerVTable::new(
    clone_waker::<TIMER>,
    wake_waker::<TIMER>,
    wake_waker_by_ref::<TIMER>,
    drop_waker,
);

// SAFETY (all four): `data` comes from `Arc::into_raw` of an `Arc<Wakeups>`
// in `source_waker` or `clone_waker`, and each waker owns one reference.
unsafe fn clone_waker<const SOURCE: u8>(data: *const ()) -> RawWaker {
    unsafe { Arc::increment_strong_count(data.cast::<Wakeups>()) };
    RawWaker::new(data, vtable::<SOURCE>())
}

unsafe fn wake_waker<const SOURCE: u8>(data: *const ()) {
    let wakeups = unsafe { Arc::from_raw(data.cast::<Wakeups>()) };
    wakeups.fire(SOURCE);
}

unsafe fn wake_waker_by_ref<const SOURCE: u8>(data: *const ()) {
    let wakeups = unsafe { &*data.cast::<Wakeups>() };
    wakeups.fire(SOURCE);
}

unsafe fn drop_waker(data: *const ()) {
    drop(unsafe { Arc::from_raw(data.cast::<Wakeups>()) });
}

#[cfg(test)]
mod tests {
    //! The hand-written waker vtable: each source's waker records its own
    //! source and wakes the task, and every clone, wake and drop keeps the
    //! shared `Arc`'s count exact (no leak, no use after free). CI also
    //! runs these under Miri (`.ci/run`), which checks the raw-pointer
    //! handling itself.

    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    use super::*;

    /// A task waker that counts its wake-ups.
    struct CountingTask(AtomicUsize);

    impl Wake for CountingTask {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn wakeups() -> (Arc<Wakeups>, Arc<CountingTask>) {
        let task = Arc::new(CountingTask(AtomicUsize::new(0)));
        let wakeups = Arc::new(Wakeups {
            fired: AtomicU8::new(0),
            task: AtomicWaker::new(),
        });
        wakeups.task.register(&Waker::from(task.clone()));
        (wakeups, task)
    }

    #[test]
    fn each_source_records_itself_and_wakes_the_task() {
        let (wakeups, task) = wakeups();
        let socket = source_waker::<SOCKET>(&wakeups);
        let outbox = source_waker::<OUTBOX>(&wakeups);
        let timer = source_waker::<TIMER>(&wakeups);
        outbox.wake_by_ref();
        assert_eq!(wakeups.fired.swap(0, Ordering::AcqRel), OUTBOX);
        // AtomicWaker hands the registered waker out on wake: register again.
        wakeups.task.register(&Waker::from(task.clone()));
        socket.wake_by_ref();
        timer.wake();
        assert_eq!(wakeups.fired.load(Ordering::Acquire), SOCKET | TIMER);
        assert!(task.0.load(Ordering::SeqCst) >= 2);
    }

    #[test]
    fn clones_wakes_and_drops_keep_the_count_exact() {
        let (wakeups, _task) = wakeups();
        let wakers: Vec<Waker> = vec![
            source_waker::<SOCKET>(&wakeups),
            source_waker::<OUTBOX>(&wakeups),
            source_waker::<TIMER>(&wakeups),
        ];
        assert_eq!(Arc::strong_count(&wakeups), 4);
        let clones: Vec<Waker> = wakers.iter().map(Waker::clone).collect();
        assert_eq!(Arc::strong_count(&wakeups), 7);
        // A clone wakes as its source, and waking by value consumes it.
        for clone in clones {
            clone.wake();
        }
        assert_eq!(Arc::strong_count(&wakeups), 4);
        assert_eq!(
            wakeups.fired.load(Ordering::Acquire),
            SOCKET | OUTBOX | TIMER
        );
        drop(wakers);
        assert_eq!(Arc::strong_count(&wakeups), 1);
    }

    #[test]
    fn a_waker_outlives_the_connection_that_made_it() {
        let (wakeups, _task) = wakeups();
        let waker = source_waker::<SOCKET>(&wakeups);
        // The connection's own reference goes first, as when its task ends
        // while the socket's reactor still holds the waker.
        drop(wakeups);
        waker.wake_by_ref();
        waker.wake();
    }
}
