//! The fuzz targets' committed seed corpus (`fuzz/seeds/`) as an ordinary
//! test: every file goes through what the fuzz target runs on it, so
//! `cargo test` covers the corpus without cargo-fuzz.

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
