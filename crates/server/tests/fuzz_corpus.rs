//! The committed seed corpus of this crate's fuzz targets (`fuzz/seeds/`)
//! as an ordinary test: every file goes through what the fuzz target runs
//! on it (`chat_server::fuzzing`), so every test run covers the corpus
//! without cargo-fuzz.

use std::path::PathBuf;

use chat_protocol::fuzzing::committed_seeds;

/// The target's committed seeds; a corpus this small has lost its files.
fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let files = committed_seeds(target).unwrap_or_else(|e| panic!("seeds of {target}: {e}"));
    assert!(files.len() >= 10, "seed corpus of {target} is too small");
    files
}

/// Each seed: a script of what the client and the core do to one
/// connection (see `chat_server::fuzzing`'s websocket module).
#[test]
fn ws_connection_corpus() {
    for (path, bytes) in seeds("ws_connection") {
        eprintln!("{}", path.display());
        chat_server::fuzzing::websocket_connection(&bytes);
    }
}

/// Each seed: a Socket.IO packet as a client sends it.
#[test]
fn socketio_mapping_corpus() {
    for (path, bytes) in seeds("socketio_mapping") {
        eprintln!("{}", path.display());
        chat_server::fuzzing::socketio_packet(&bytes);
    }
}
