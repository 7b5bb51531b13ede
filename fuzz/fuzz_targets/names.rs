//! Room names, display names, message text and ids through the validators.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chat_protocol::fuzzing::names(data));
