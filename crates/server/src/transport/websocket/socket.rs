//! A server-side WebSocket whose output buffer we own.
//!
//! tungstenite does everything about *reading*: framing, unmasking,
//! fragments, UTF-8 checks, size limits, control frames and the close
//! handshake. Its write path, though, keeps its output buffer at the largest
//! size it ever held: one `joined` reply carrying history would pin tens of
//! KiB to every idle connection for its lifetime. So data frames are
//! formatted here (header by tungstenite's `FrameHeader`, payload copied)
//! into a buffer that is released once written, and tungstenite's own
//! output (pongs, close frames) is routed into that same buffer, which keeps
//! every frame in order on the wire.
//!
//! Owning the buffer also lets a connection that is dropped as too slow
//! discard what has not started to go out, keeping whole the one frame the
//! kernel has part of ([`WsSocket::discard_unsent`]), so its close frame is
//! next on the wire; [`WsSocket::poll_close`] then runs the close handshake.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::{FrameHeader, Utf8Bytes};
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Error, Message};

/// Output capacity kept after a flush; a larger buffer is freed so an idle
/// connection holds no write memory.
const KEEP_CAPACITY: usize = 512;

/// What the socket has for the connection's loop.
pub enum SocketEvent {
    /// A message from the client.
    Message(Message),
    /// Queued output fell below the high-water mark: take more.
    Drained,
}

/// Longest frame header a server writes (no mask): 2 bytes plus an 8-byte
/// length.
const MAX_HEADER: usize = 10;

pub struct WsSocket<S> {
    io: S,
    protocol: WebSocketContext,
    out: Vec<u8>,
    /// How much of `out` has reached the socket.
    written: usize,
    /// Reading failed: tungstenite must not read again (its input buffer
    /// may be full of a frame it refused).
    read_failed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsSocket<S> {
    /// Wraps a stream on which the opening handshake is complete.
    pub fn new(io: S, config: WebSocketConfig) -> Self {
        // Control frames must pass straight through to `out`, not wait in
        // tungstenite's buffer.
        let config = config.write_buffer_size(0);
        WsSocket {
            io,
            protocol: WebSocketContext::new(Role::Server, Some(config)),
            out: Vec::new(),
            written: 0,
            read_failed: false,
        }
    }

    /// Bytes queued but not yet written to the socket.
    pub fn pending(&self) -> usize {
        self.out.len() - self.written
    }

    /// Queues a text frame; `payload` must be UTF-8 (all our frames are JSON
    /// serialized from Rust strings).
    pub fn queue_text(&mut self, payload: &[u8]) {
        let header = FrameHeader {
            opcode: OpCode::Data(Data::Text),
            ..FrameHeader::default()
        };
        self.out.reserve(payload.len() + MAX_HEADER);
        // Formatting into a Vec cannot fail.
        let _ = header.format(payload.len() as u64, &mut self.out);
        self.out.extend_from_slice(payload);
    }

    /// Queues one text frame whose payload is `parts` one after another
    /// (an Engine.IO packet type before a shared Socket.IO packet, say),
    /// without joining them first.
    pub fn queue_text_parts(&mut self, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|part| part.len()).sum();
        let header = FrameHeader {
            opcode: OpCode::Data(Data::Text),
            ..FrameHeader::default()
        };
        self.out.reserve(len + MAX_HEADER);
        // Formatting into a Vec cannot fail.
        let _ = header.format(len as u64, &mut self.out);
        for part in parts {
            self.out.extend_from_slice(part);
        }
    }

    /// Queues a binary frame (only `/ws-echo` sends them).
    pub fn queue_binary(&mut self, payload: &[u8]) {
        let header = FrameHeader {
            opcode: OpCode::Data(Data::Binary),
            ..FrameHeader::default()
        };
        self.out.reserve(payload.len() + MAX_HEADER);
        // Formatting into a Vec cannot fail.
        let _ = header.format(payload.len() as u64, &mut self.out);
        self.out.extend_from_slice(payload);
    }

    /// Queues a ping (the server's heartbeat).
    pub fn queue_ping(&mut self) -> Result<(), Error> {
        let mut sink = self.sink(None);
        sink.protocol
            .write(&mut sink.bridge, Message::Ping(Bytes::new()))?;
        sink.protocol.flush(&mut sink.bridge)
    }

    /// Queues our close frame, or the reply to the client's close.
    pub fn queue_close(&mut self, close: Option<(u16, &'static str)>) {
        // A pong tungstenite holds back would otherwise follow the close.
        self.take_protocol_output();
        let mut sink = self.sink(None);
        // Errors mean the handshake already went past the point where we
        // may send a close; there is nothing left to queue then.
        let _ = match close {
            Some((code, reason)) => sink.protocol.close(
                &mut sink.bridge,
                Some(CloseFrame {
                    code: code.into(),
                    reason: Utf8Bytes::from_static(reason),
                }),
            ),
            None => sink.protocol.flush(&mut sink.bridge),
        };
    }

    /// Moves what tungstenite holds back into our output: the pong to a
    /// ping it has just read waits there for its next read or write.
    fn take_protocol_output(&mut self) {
        let mut sink = self.sink(None);
        // An error means the connection is closed: nothing is held back.
        let _ = sink.protocol.flush(&mut sink.bridge);
    }

    /// The next message from the client. Reading may queue a pong or a
    /// close reply; the caller flushes.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, Error>> {
        if self.read_failed {
            return Poll::Ready(Err(Error::AlreadyClosed));
        }
        let mut sink = self.sink(Some(cx));
        match sink.protocol.read(&mut sink.bridge) {
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
            Err(e) => {
                self.read_failed = true;
                Poll::Ready(Err(e))
            }
            Ok(message) => Poll::Ready(Ok(message)),
        }
    }

    /// Writes queued output and reads the next message from the client: the
    /// one future a connection waits on for its socket. Also ends the wait
    /// with [`SocketEvent::Drained`] when output that was at or above
    /// `high_water` has drained below it.
    pub fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
        high_water: usize,
    ) -> Poll<Result<SocketEvent, Error>> {
        let was_full = self.pending() >= high_water;
        if self.pending() > 0
            && let Poll::Ready(Err(e)) = self.poll_flush(cx)
        {
            return Poll::Ready(Err(Error::Io(e)));
        }
        let read = self.poll_next(cx);
        // Reading may have queued a pong or a close reply.
        if self.pending() > 0
            && let Poll::Ready(Err(e)) = self.poll_flush(cx)
        {
            return Poll::Ready(Err(Error::Io(e)));
        }
        match read {
            Poll::Ready(message) => Poll::Ready(message.map(SocketEvent::Message)),
            Poll::Pending if was_full && self.pending() < high_water => {
                Poll::Ready(Ok(SocketEvent::Drained))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Drops the queued output that has not started to go out, so that what
    /// is queued next (a close frame) goes out first. A frame already partly
    /// written is kept whole: cut, the rest of the stream would not parse.
    pub fn discard_unsent(&mut self) {
        self.take_protocol_output();
        let in_flight_end = self.end_of_frame_in_flight();
        self.out.truncate(in_flight_end);
        if self.written == self.out.len() {
            self.written = 0;
            self.out = Vec::new();
        }
    }

    /// Where the frame that `written` falls in ends: `out` holds whole
    /// frames only, back to back from its start.
    fn end_of_frame_in_flight(&self) -> usize {
        let mut end = 0;
        while end < self.written {
            let mut header = io::Cursor::new(&self.out[end..]);
            match FrameHeader::parse(&mut header) {
                Ok(Some((_, payload))) => end += header.position() as usize + payload as usize,
                // Not one of our frames: keep everything rather than cut one.
                _ => return self.out.len(),
            }
        }
        end
    }

    /// The close handshake, once our close frame (or the reply to the
    /// client's) is queued: writes what is queued and reads, discarding
    /// whatever the client still sends, until the client's close has been
    /// read and everything is written, or the connection fails.
    ///
    /// Reading matters as much as writing: a socket closed with unread
    /// input is reset (RST), and a reset throws away what the kernel had
    /// not sent yet, the close frame among it.
    pub fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            // Reading the client's close may queue the reply to it.
            let read = self.poll_next(cx);
            let flushed = if self.pending() > 0 {
                self.poll_flush(cx)
            } else {
                Poll::Ready(Ok(()))
            };
            match (read, flushed) {
                (_, Poll::Ready(Err(_))) => return Poll::Ready(()),
                // Sent before the client saw our close: nobody will act on it.
                (Poll::Ready(Ok(_)), _) => continue,
                // The handshake is over (tungstenite reports the end of a
                // closed connection as an error), or the connection broke.
                (Poll::Ready(Err(_)), Poll::Ready(Ok(()))) => return Poll::Ready(()),
                _ => return Poll::Pending,
            }
        }
    }

    /// Writes everything queued, then releases the buffer.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.written = 0;
        if self.out.capacity() > KEEP_CAPACITY {
            self.out = Vec::new();
        } else {
            self.out.clear();
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn sink<'a, 'b>(&'a mut self, cx: Option<&'a mut Context<'b>>) -> Sink<'a, 'b, S> {
        Sink {
            protocol: &mut self.protocol,
            bridge: Bridge {
                io: &mut self.io,
                out: &mut self.out,
                cx,
            },
        }
    }
}

/// The protocol state and the synchronous view of the socket it works on,
/// borrowed separately so both can be passed to one call.
struct Sink<'a, 'b, S> {
    protocol: &'a mut WebSocketContext,
    bridge: Bridge<'a, 'b, S>,
}

/// What tungstenite reads from and writes to: reads come from the socket
/// (`WouldBlock` when nothing is there, with the task registered for
/// wake-up), writes go to our output buffer.
struct Bridge<'a, 'b, S> {
    io: &'a mut S,
    out: &'a mut Vec<u8>,
    /// Absent when we only queue output: reads then report `WouldBlock`.
    cx: Option<&'a mut Context<'b>>,
}

impl<S: AsyncRead + Unpin> Read for Bridge<'_, '_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(cx) = self.cx.as_deref_mut() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let mut read = ReadBuf::new(buf);
        match Pin::new(&mut *self.io).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => Ok(read.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<S> Write for Bridge<'_, '_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
