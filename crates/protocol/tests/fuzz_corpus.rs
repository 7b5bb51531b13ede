//! The fuzz targets' committed seed corpus (`fuzz/seeds/`) as an ordinary
//! test: every file goes through what the fuzz target runs on it, so
//! `cargo test` covers the corpus without cargo-fuzz.

use std::path::PathBuf;

use chat_protocol::fuzzing::committed_seeds;

/// The target's committed seeds; a corpus this small has lost its files.
fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let files = committed_seeds(target).unwrap_or_else(|e| panic!("seeds of {target}: {e}"));
    assert!(files.len() >= 10, "seed corpus of {target} is too small");
    files
}

#[test]
fn parse_request_corpus() {
    for (path, bytes) in seeds("parse_request") {
        eprintln!("{}", path.display());
        chat_protocol::fuzzing::request_frame(&bytes);
    }
}

#[test]
fn names_corpus() {
    for (path, bytes) in seeds("names") {
        eprintln!("{}", path.display());
        chat_protocol::fuzzing::names(&bytes);
    }
}
