//! A client's Socket.IO packet through the codec, our classification and
//! the mapping to a native request, and the replies back; see
//! `chat_server::fuzzing` (`crates/server/src/fuzzing/socketio.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chat_server::fuzzing::socketio_packet(data));
