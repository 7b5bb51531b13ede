// Shared by the `ws_frames` fuzz target and the protocol crate's corpus test
// (both `include!` it), so the corpus is exercised the same way by both.
//
// Bytes from a client after the WebSocket upgrade go through the reader
// `/ws` uses: tungstenite's server-side protocol state with the settings of
// `transport/websocket/mod.rs` (512-byte read buffer, 64 KiB frames and messages),
// fed in chunks of the size the first input byte picks, with `WouldBlock`
// between chunks as from a socket. Every text message that comes out goes
// on to `parse_request` and the validators, as in the server.

/// Reads come from the input a chunk at a time; writes (pongs, close
/// replies) are dropped.
struct ChunkedStream {
    input: std::io::Cursor<Vec<u8>>,
    chunk: usize,
    blocked: bool,
}

impl std::io::Read for ChunkedStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.blocked {
            self.blocked = false;
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        self.blocked = true;
        let n = buf.len().min(self.chunk);
        self.input.read(&mut buf[..n])
    }
}

impl std::io::Write for ChunkedStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn ws_frames(data: &[u8]) {
    use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
    use tungstenite::{Error, Message};

    let Some((&chunk, bytes)) = data.split_first() else {
        return;
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(512)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024))
        .write_buffer_size(0);
    let mut ws = WebSocketContext::new(Role::Server, Some(config));
    let mut stream = ChunkedStream {
        input: std::io::Cursor::new(bytes.to_vec()),
        chunk: usize::from(chunk).max(1),
        blocked: false,
    };
    // Each read takes a chunk or blocks once, so this bounds the loop; the
    // end of the input ends it sooner (an error: the peer went away).
    for _ in 0..4 * bytes.len() + 16 {
        match ws.read(&mut stream) {
            Ok(Message::Text(text)) => chat_protocol::fuzzing::request_frame(text.as_bytes()),
            Ok(_) => {}
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            // A protocol error, a size limit, a close, the end: it is over.
            Err(_) => break,
        }
    }
}
