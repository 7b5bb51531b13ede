//! One WebSocket connection on our socket and pump, driven by a script of
//! client bytes, reads, outbox items and hang-ups; see
//! `chat_server::fuzzing` (`crates/server/src/fuzzing/websocket.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chat_server::fuzzing::websocket_connection(data));
