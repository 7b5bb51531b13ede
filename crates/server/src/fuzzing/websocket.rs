//! One WebSocket connection on our socket and pump
//! ([`crate::transport::websocket`]), driven by a script: what the client
//! sends and in which chunks (with `WouldBlock` between them), how much of
//! our output the client reads, what the outbox receives, when the core
//! hangs up, when the task is polled without a reason. The task reacts to
//! what the pump yields as `/ws`'s loop does, and ends as every connection
//! ends ([`queue_goodbye`], then the close handshake).
//!
//! Checked on every input, beyond "never panics":
//!
//! - output waiting in our buffer stays within the pump's bound
//!   (high-water mark, one outbox item, the slack) while the connection is
//!   served;
//! - the task never spins: it is woken only while there is work;
//! - what reaches the wire is whole, unmasked, unfragmented frames; every
//!   outbox item in the order it was pushed, none twice, none skipped;
//!   control frames within 125 bytes; at most one close frame, and nothing
//!   after it; the close code of the reason the server hung up for;
//! - once the client reads everything and goes away, the connection ends
//!   with all of its output written.
//!
//! # The script
//!
//! A sequence of operations, each an opcode byte (modulo 11) and its
//! operands; a missing operand reads as zero. Lengths are 16-bit big
//! endian. What the client sends, and the outbox items, are capped at
//! 1 MiB each per run.
//!
//! | op | operands | what happens |
//! | --- | --- | --- |
//! | 0 | `len`, bytes | the client sends raw bytes |
//! | 1 | first byte, `n`, `len`, payload, 4-byte mask | the client sends one frame `n + 1` times (up to 256 KiB in all): the first byte (FIN, RSV, opcode) as given, masked as a client must |
//! | 2 | `chunk` | reads return at most `chunk + 1` bytes (255: 64 KiB; 4 KiB until this operation); odd `chunk`: `WouldBlock` after each read |
//! | 3 | `len` | the client reads `len` more bytes of our output |
//! | 4 | | the client reads everything from now on |
//! | 5 | kind, `n`, `len` | `n + 1` outbox items of `len` bytes each: text, binary, or text in two parts |
//! | 6 | reason | the core hangs up: too slow, shutdown, kicked, idle |
//! | 7 | | the task is polled without being woken |
//! | 8 | | a heartbeat: the task queues a ping, as on a tick |
//! | 9 | | the client stops sending (end of stream) |
//! | 10 | | the connection is reset |
//!
//! The pump's own timer never fires here: it is a tokio timer, which only
//! a running runtime's clock fires, and that clock would make a run depend
//! on the time it takes. The tick's bookkeeping is the pump's unit tests';
//! what the task does on a tick is operation 8.
//!
//! After each operation the task runs for as long as it is woken.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use chat_protocol::{ErrorBody, ErrorCode, ServerFrame};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tungstenite::Message;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use super::Script;
use crate::config::DEFAULT_MAX_FRAME_BYTES;
use crate::transport::websocket::pump::{Next, OUTPUT_HIGH_WATER, OUTPUT_SLACK, Pump};
use crate::transport::websocket::socket::WsSocket;
use crate::transport::websocket::{CloseReason, Ending, config, hangup_for, queue_goodbye};
use chat_core::event::outbox;
use chat_core::{Dropped, Metrics, Outbound, Outbox};

/// The outbox's capacity: small, so that the fuzzer reaches "too slow",
/// but more than the pump takes in one batch (256), so that it reaches a
/// full batch too.
const OUTBOX_CAPACITY: usize = 300;
/// An outbox item's frame: its payload (a 16-bit length plus the index
/// prefix) and the longest header.
const MAX_ITEM_FRAME: usize = u16::MAX as usize + ITEM_PREFIX + 10;
/// `kind` then the item's index, 8 digits.
const ITEM_PREFIX: usize = 9;
/// A control frame: 125 bytes of payload and its header.
const MAX_CONTROL_FRAME: usize = 127;
/// Most bytes one repeated frame (operation 1) sends in all.
const MAX_REPEATED: usize = 256 * 1024;
/// Most bytes the client sends, and most bytes of outbox items, in one
/// run: enough for every bound (64 KiB high-water mark, 300 items) to be
/// crossed, little enough to keep a run short. Past it, operations that
/// would add more do nothing.
const MAX_VOLUME: usize = 1024 * 1024;
/// Most bytes a read returns until the script says otherwise.
const DEFAULT_CHUNK: usize = 4096;
/// A heartbeat that does not come round during a run.
const NO_TICK: Duration = Duration::from_secs(24 * 3600);

/// Runs one script (see the module documentation).
pub fn connection(data: &[u8]) {
    RUNTIME.with(|runtime| {
        // The pump's heartbeat is a tokio timer, which needs a runtime to
        // exist; nothing here runs on it.
        let _entered = runtime.enter();
        let mut connection = Connection::new();
        let mut script = Script::new(data);
        while let Some(op) = script.byte() {
            connection.apply(op, &mut script);
        }
        connection.finish();
    });
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime builds");
}

/// The client and the kernel between it and the server.
#[derive(Default)]
struct Peer {
    /// Sent by the client; the server has read up to `read`.
    input: Vec<u8>,
    read: usize,
    /// Most bytes one read returns.
    chunk: usize,
    /// `WouldBlock` after each read, the socket readable again at once.
    block_between: bool,
    blocked: bool,
    /// The client sends nothing more.
    eof: bool,
    reset: bool,
    read_waker: Option<Waker>,
    /// What the server wrote, in order.
    wire: Vec<u8>,
    /// Bytes the kernel takes before a write blocks.
    room: usize,
    write_waker: Option<Waker>,
    /// Everything sent to the server, for the bound on wake-ups.
    sent: usize,
}

struct ScriptedIo(Rc<RefCell<Peer>>);

impl AsyncRead for ScriptedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut peer = self.0.borrow_mut();
        if peer.reset {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        if peer.read == peer.input.len() {
            if peer.eof {
                return Poll::Ready(Ok(()));
            }
            peer.read_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if peer.block_between && peer.blocked {
            peer.blocked = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let start = peer.read;
        let end = peer
            .input
            .len()
            .min(start + peer.chunk.min(buf.remaining()));
        buf.put_slice(&peer.input[start..end]);
        peer.read = end;
        peer.blocked = true;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ScriptedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut peer = self.0.borrow_mut();
        if peer.reset {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if peer.room == 0 {
            peer.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(peer.room);
        peer.wire.extend_from_slice(&buf[..n]);
        peer.room -= n;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The connection's task, as its executor sees it: woken or not.
#[derive(Default)]
struct Task(AtomicBool);

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Where the connection's task is.
enum Phase {
    Serving,
    /// Our close frame (or the reply to the client's) is queued.
    Closing,
    Closed,
}

struct Connection {
    peer: Rc<RefCell<Peer>>,
    socket: WsSocket<ScriptedIo>,
    pump: Pump,
    outbox: Outbox,
    task: Arc<Task>,
    waker: Waker,
    phase: Phase,
    /// Outbox items accepted so far (the next one's index).
    pushed: u32,
    /// Bytes of the items pushed, accepted or not.
    item_bytes: usize,
    /// Why the server closed, when it did so first.
    server_close: Option<CloseReason>,
    /// The client's close frame was read before the server's went out.
    client_closed: bool,
}

impl Connection {
    fn new() -> Self {
        let peer = Rc::new(RefCell::new(Peer {
            chunk: DEFAULT_CHUNK,
            ..Peer::default()
        }));
        let socket = WsSocket::new(ScriptedIo(peer.clone()), config(DEFAULT_MAX_FRAME_BYTES));
        let (outbox, receiver) = outbox(0, OUTBOX_CAPACITY, Metrics::default());
        let task = Arc::new(Task(AtomicBool::new(true)));
        Connection {
            peer,
            socket,
            pump: Pump::new(receiver, NO_TICK),
            outbox,
            waker: Waker::from(task.clone()),
            task,
            phase: Phase::Serving,
            pushed: 0,
            item_bytes: 0,
            server_close: None,
            client_closed: false,
        }
    }

    fn apply(&mut self, op: u8, script: &mut Script<'_>) {
        match op % 11 {
            0 => {
                let len = script.len();
                let bytes = script.bytes(len);
                self.send(bytes);
            }
            1 => {
                let (frame, times) = client_frame(script);
                for _ in 0..times {
                    self.send(&frame);
                }
            }
            2 => {
                let chunk = script.byte().unwrap_or(0);
                let mut peer = self.peer.borrow_mut();
                peer.chunk = if chunk == u8::MAX {
                    DEFAULT_MAX_FRAME_BYTES
                } else {
                    usize::from(chunk) + 1
                };
                peer.block_between = chunk % 2 == 1;
            }
            3 => {
                let len = script.len();
                self.client_reads(len);
            }
            4 => self.client_reads(usize::MAX / 2),
            5 => {
                let kind = script.byte().unwrap_or(0);
                let count = script.byte().unwrap_or(0);
                let len = script.len();
                for _ in 0..=count {
                    self.push(kind, len);
                }
            }
            6 => self.hang_up(script.byte().unwrap_or(0)),
            7 => {
                let acted = self.poll();
                self.run(acted);
            }
            8 => {
                if let Phase::Serving = self.phase {
                    self.act(Next::Tick);
                    // The loop goes on polling after acting.
                    self.run(true);
                }
            }
            9 => {
                self.peer.borrow_mut().eof = true;
                self.wake_reader();
            }
            _ => {
                self.peer.borrow_mut().reset = true;
                self.wake_reader();
                self.wake_writer();
            }
        }
        self.run(false);
    }

    fn send(&mut self, bytes: &[u8]) {
        {
            let mut peer = self.peer.borrow_mut();
            if peer.eof || peer.sent + bytes.len() > MAX_VOLUME {
                return;
            }
            if peer.read == peer.input.len() {
                peer.input.clear();
                peer.read = 0;
            }
            peer.input.extend_from_slice(bytes);
            peer.sent += bytes.len();
        }
        self.wake_reader();
    }

    fn client_reads(&mut self, len: usize) {
        {
            let mut peer = self.peer.borrow_mut();
            peer.room = peer.room.saturating_add(len);
        }
        self.wake_writer();
    }

    fn wake_reader(&self) {
        let waker = self.peer.borrow_mut().read_waker.take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn wake_writer(&self) {
        let waker = self.peer.borrow_mut().write_waker.take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Queues an item as the core would: refused (and the connection
    /// marked too slow) when the outbox is full.
    fn push(&mut self, kind: u8, len: usize) {
        if self.item_bytes + len > MAX_VOLUME {
            return;
        }
        self.item_bytes += len;
        let kind = [b't', b'b', b'p'][usize::from(kind % 3)] as char;
        let mut message = format!("{kind}{:08}", self.pushed);
        message.push_str(&"x".repeat(len));
        let item = Outbound::Reply(Box::new(ServerFrame::Error {
            reference: None,
            body: ErrorBody {
                code: ErrorCode::Overloaded,
                message,
                room: None,
            },
        }));
        if self.outbox.push(item) {
            self.pushed += 1;
        }
    }

    fn hang_up(&mut self, reason: u8) {
        match reason % 4 {
            0 => self.outbox.mark_slow(),
            1 => self.outbox.shut_down(),
            2 => {
                self.outbox.hang_up(Dropped::Kicked);
            }
            _ => {
                self.outbox.hang_up(Dropped::Idle);
            }
        }
    }

    /// Runs the task for as long as it has something to do, as its
    /// executor and its loop would: polled again at once after acting on
    /// what the pump yielded, else only once woken.
    fn run(&mut self, mut acted: bool) {
        let (sent, pushed) = (self.peer.borrow().sent, self.pushed as usize);
        // Each poll takes at least a byte of input or an outbox item, or
        // waits for the next; more polls would be a task spinning.
        let mut budget = 64 + 4 * (sent + pushed);
        while self.task.0.swap(false, Ordering::SeqCst) || acted {
            assert!(
                budget > 0,
                "the connection's task keeps waking with nothing to do"
            );
            budget -= 1;
            acted = self.poll();
        }
    }

    /// Polls the task once; returns whether it acted, and so goes on
    /// without waiting.
    fn poll(&mut self) -> bool {
        let mut cx = Context::from_waker(&self.waker);
        match self.phase {
            Phase::Serving => match self.pump.poll_next(&mut cx, &mut self.socket, &mut format) {
                Poll::Ready(next) => {
                    self.act(next);
                    true
                }
                Poll::Pending => false,
            },
            Phase::Closing => {
                if self.socket.poll_close(&mut cx).is_ready() {
                    self.phase = Phase::Closed;
                }
                false
            }
            Phase::Closed => false,
        }
    }

    /// What `/ws`'s loop does with what the pump yields: a message is
    /// answered with an outbox item of its size, as an echo.
    fn act(&mut self, next: Next) {
        let ending = match next {
            Next::Message(Message::Text(text)) => {
                self.push(0, text.len());
                None
            }
            Next::Message(Message::Binary(data)) => {
                self.push(1, data.len());
                None
            }
            Next::Message(Message::Close(_)) => {
                self.client_closed = true;
                Some(Ending::Close(None))
            }
            Next::Message(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => None,
            Next::Failed(e) => Some(Ending::Close(hangup_for(e))),
            Next::Dropped(Dropped::SlowConsumer) => Some(Ending::TooSlow),
            Next::Dropped(Dropped::Shutdown) => {
                self.pump.queue_all_queued(&mut self.socket, &mut format);
                Some(Ending::Shutdown)
            }
            Next::Dropped(Dropped::Kicked) => Some(Ending::Close(Some(CloseReason::Kicked))),
            Next::Dropped(Dropped::Idle) => Some(Ending::Close(Some(CloseReason::Idle))),
            Next::Dropped(Dropped::Banned) => {
                self.pump.queue_all_queued(&mut self.socket, &mut format);
                Some(Ending::Close(Some(CloseReason::Banned)))
            }
            Next::Tick => self.socket.queue_ping().err().map(|_| Ending::Close(None)),
        };
        match ending {
            Some(ending) => self.end(ending),
            None => assert!(
                self.socket.pending()
                    <= OUTPUT_HIGH_WATER + OUTPUT_SLACK + MAX_ITEM_FRAME + 2 * MAX_CONTROL_FRAME,
                "output grew past the pump's bound: {} bytes",
                self.socket.pending()
            ),
        }
    }

    fn end(&mut self, ending: Ending) {
        self.server_close = match ending {
            Ending::Close(reason) => reason,
            Ending::TooSlow => Some(CloseReason::TooSlow),
            Ending::Shutdown => Some(CloseReason::ShuttingDown),
        };
        queue_goodbye(&mut self.socket, ending);
        self.phase = Phase::Closing;
        // `end` goes on to the close handshake at once.
        self.task.0.store(true, Ordering::SeqCst);
    }

    /// The client reads everything and goes away: the connection must end,
    /// with everything written, and the wire must hold up.
    fn finish(mut self) {
        self.client_reads(usize::MAX / 2);
        self.peer.borrow_mut().eof = true;
        self.wake_reader();
        self.task.0.store(true, Ordering::SeqCst);
        self.run(false);
        assert!(
            matches!(self.phase, Phase::Closed),
            "the connection did not end once its client was gone"
        );
        let peer = self.peer.borrow();
        if !peer.reset {
            assert_eq!(self.socket.pending(), 0, "output left unwritten");
        }
        check_wire(&peer.wire, !peer.reset, self.expected_close());
    }

    /// The close code the server's close frame must carry, when it closed
    /// first for a reason.
    fn expected_close(&self) -> Option<u16> {
        match self.server_close {
            Some(reason) if !self.client_closed => Some(reason.code().code()),
            _ => None,
        }
    }
}

/// Formats an outbox item as the fuzzer asked: the first character of the
/// message says how.
fn format(socket: &mut WsSocket<ScriptedIo>, item: Outbound) {
    let Outbound::Reply(frame) = item else {
        return;
    };
    let ServerFrame::Error { body, .. } = *frame else {
        return;
    };
    let payload = body.message.as_bytes();
    match payload.first() {
        Some(b'b') => socket.queue_binary(payload),
        Some(b'p') => socket.queue_text_parts(&[&payload[..ITEM_PREFIX], &payload[ITEM_PREFIX..]]),
        _ => socket.queue_text(payload),
    }
}

/// A client frame (the first byte as given, then the length, a mask and
/// the masked payload) and how many times to send it.
fn client_frame(script: &mut Script<'_>) -> (Vec<u8>, usize) {
    let first = script.byte().unwrap_or(0);
    let times = usize::from(script.byte().unwrap_or(0)) + 1;
    let len = script.len();
    let payload = script.bytes(len).to_vec();
    let mask = [0; 4].map(|_| script.byte().unwrap_or(0));
    let mut frame = vec![first];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    let times = times.min(MAX_REPEATED / frame.len()).max(1);
    (frame, times)
}

/// Reads what the server wrote back as frames and checks them (see the
/// module documentation). `complete`: everything was written, so the last
/// frame must be whole.
fn check_wire(wire: &[u8], complete: bool, close_code: Option<u16>) {
    let mut rest = wire;
    let mut next_item = 0u32;
    let mut closed = false;
    while !rest.is_empty() {
        assert!(!closed, "bytes after the close frame");
        let mut cursor = io::Cursor::new(rest);
        let parsed = FrameHeader::parse(&mut cursor).expect("the server's frame headers parse");
        let Some((header, len)) = parsed else {
            assert!(!complete, "a frame header cut short");
            return;
        };
        let start = cursor.position() as usize;
        let Some(payload) = usize::try_from(len)
            .ok()
            .and_then(|len| rest.get(start..start + len))
        else {
            assert!(!complete, "a frame cut short");
            return;
        };
        assert!(header.is_final, "a fragmented frame");
        assert!(header.mask.is_none(), "a masked server frame");
        assert!(
            !header.rsv1 && !header.rsv2 && !header.rsv3,
            "a reserved bit set"
        );
        match header.opcode {
            OpCode::Data(Data::Text) => {
                let text = std::str::from_utf8(payload).expect("a text frame is UTF-8");
                next_item = check_item(text.as_bytes(), next_item);
            }
            OpCode::Data(Data::Binary) => next_item = check_item(payload, next_item),
            OpCode::Control(Control::Close) => {
                check_close(payload, close_code);
                closed = true;
            }
            OpCode::Control(Control::Ping | Control::Pong) => {
                assert!(payload.len() <= 125, "a control frame over 125 bytes");
            }
            opcode => panic!("the server wrote a {opcode} frame"),
        }
        rest = &rest[start + payload.len()..];
    }
}

/// An outbox item's frame: the next one pushed.
fn check_item(payload: &[u8], expected: u32) -> u32 {
    let index = payload
        .get(1..ITEM_PREFIX)
        .and_then(|digits| std::str::from_utf8(digits).ok())
        .and_then(|digits| digits.parse::<u32>().ok())
        .expect("a data frame is an outbox item");
    assert_eq!(
        index, expected,
        "outbox items out of order, lost or repeated"
    );
    expected + 1
}

fn check_close(payload: &[u8], expected: Option<u16>) {
    assert!(
        payload.len() != 1 && payload.len() <= 125,
        "a malformed close frame"
    );
    if let [high, low, reason @ ..] = payload {
        assert!(
            std::str::from_utf8(reason).is_ok(),
            "a close reason is UTF-8"
        );
        let code = u16::from_be_bytes([*high, *low]);
        if let Some(expected) = expected {
            assert_eq!(code, expected, "the close code of the server's reason");
        }
    } else {
        assert_eq!(expected, None, "the server's reason went without a code");
    }
}
