//! A client's text frame through `parse_request` and the validators.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chat_protocol::fuzzing::request_frame(data));
