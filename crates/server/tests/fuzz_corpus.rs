//! The committed seed corpus of this crate's fuzz targets (`fuzz/seeds/`)
//! as an ordinary test: every file goes through what the fuzz target runs
//! on it (`chat_server::fuzzing`), so every test run covers the corpus
//! without cargo-fuzz.

use std::fs;
use std::path::PathBuf;

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            (path, bytes)
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "seed corpus {} is too small",
        dir.display()
    );
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
