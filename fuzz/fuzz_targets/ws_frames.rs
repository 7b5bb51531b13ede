//! Bytes from a client after the upgrade, through `/ws`'s frame reader
//! (tungstenite, server role, our settings), then `parse_request`; see
//! `fuzz/ws_reader.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../ws_reader.rs");

fuzz_target!(|data: &[u8]| ws_frames(data));
