//! What the fuzz targets in `fuzz/` run on each input, kept in this crate
//! because they drive its private parts (the WebSocket socket and pump,
//! the Socket.IO mapping), and so that the committed seed corpus also runs
//! as an ordinary test (`tests/fuzz_corpus.rs`) in every test run.
//!
//! Hidden from the docs, and not behind a cargo feature: a feature would
//! have to be switched on for the corpus test, which an ordinary
//! `cargo test` would then skip; the binary links none of this.
//!
//! Beyond "never panics", each function asserts properties the server
//! relies on, so a violation is a crash the fuzzer reports.

mod socketio;
mod websocket;

pub use socketio::packet as socketio_packet;
pub use websocket::connection as websocket_connection;

/// An input read front to back; what is missing reads as zero or empty.
struct Script<'a> {
    data: &'a [u8],
}

impl<'a> Script<'a> {
    fn new(data: &'a [u8]) -> Self {
        Script { data }
    }

    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.data.split_first()?;
        self.data = rest;
        Some(first)
    }

    /// A 16-bit big-endian length.
    fn len(&mut self) -> usize {
        let high = self.byte().unwrap_or(0);
        let low = self.byte().unwrap_or(0);
        usize::from(u16::from_be_bytes([high, low]))
    }

    /// Up to `n` bytes.
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        taken
    }
}
