//! The architecture's first invariant, checked on the dependency graph: the
//! core links no HTTP, WebSocket, Socket.IO, TLS or database crate, directly
//! or through another crate (`docs/architecture.md`). A `use` of one in the
//! core cannot compile; this test keeps one from being added to its
//! `Cargo.toml`, or from arriving with a new dependency.

use std::collections::BTreeSet;
use std::process::Command;

/// Crates that belong to transports and backends, never to the core.
const FORBIDDEN: &[&str] = &[
    "axum",
    "hyper",
    "hyper-util",
    "http",
    "tower",
    "tungstenite",
    "tokio-tungstenite",
    "engineioxide",
    "socketioxide-core",
    "socketioxide-parser-common",
    "rustls",
    "tokio-rustls",
    "rusqlite",
    "tokio-postgres",
    "deadpool-postgres",
    "redis",
];

/// Every crate the core builds with (normal dependencies, transitively).
fn core_dependencies() -> BTreeSet<String> {
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "-p", "chat-core", "-e", "normal"])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_core_depends_on_no_transport_or_database_crate() {
    let dependencies = core_dependencies();
    assert!(
        dependencies.contains("chat-protocol") && dependencies.contains("tokio"),
        "cargo tree listed the core's dependencies: {dependencies:?}"
    );
    let found: Vec<&str> = FORBIDDEN
        .iter()
        .copied()
        .filter(|name| dependencies.contains(*name))
        .collect();
    assert!(found.is_empty(), "the core depends on {found:?}");
}
