//! The JavaScript client library's tests (`clients/js/test/`: Node's test
//! runner), against the binary cargo just built: resume across `kill -9`,
//! idempotent retries, token refresh, slow-consumer drops, every error
//! code, the same room seen by this library, the Rust client's `chat` CLI
//! and Socket.IO, throughput, and the package as `npm pack` makes it. First
//! `npm run typecheck`, which also checks the frame samples generated from
//! the Rust types (`clients/js/test/frames.samples.ts`).
//!
//! Needs Node.js, npm and the `sqlite3` command (one test locks the
//! database with it); runs `npm ci` when `clients/js/node_modules` is
//! missing, and uses the `chat` binary (crate chat-client) of this test's
//! target directory, building it there when it is missing or stale.
//! Ignored, with its reason, by a bare `cargo nextest run`, which lists it
//! as skipped: `scripts/test` installs what it needs and runs it; see
//! `node_suite`.

mod node_suite;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use node_suite::Suite;

#[test]
#[ignore = "needs Node.js, npm and sqlite3: scripts/test installs them"]
fn javascript_client_library() {
    let mut suite = Suite::new("the JavaScript client's tests", "clients/js");
    suite.require_node();
    suite.require(
        Command::new("sqlite3")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success()),
        "the sqlite3 command is not installed",
    );
    suite.install(&suite.dir, "typescript");
    let chat = chat_binary(&suite);
    suite.env.push(("CHAT_CLI_BIN", chat));
    suite.npm_run("typecheck");
    let mut files: Vec<String> = std::fs::read_dir(suite.dir.join("test"))
        .expect("read clients/js/test")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".test.js"))
        .map(|name| format!("test/{name}"))
        .collect();
    files.sort();
    suite.require(!files.is_empty(), "no test files in clients/js/test");
    suite.run(&files);
}

/// The Rust client's `chat` binary, beside this test's `chat-server` (a
/// test of the server crate has no `CARGO_BIN_EXE_chat`). A workspace test
/// run (`scripts/test`) has just built it there, and it is used as is:
/// rebuilding it here would relink the binary that the chat-client crate's
/// own tests may be running at that moment. Only when it is missing or
/// older than the sources it is built from (a run of this crate's tests
/// alone) is it built, in the same target directory and profile.
fn chat_binary(suite: &Suite) -> PathBuf {
    let server = Path::new(env!("CARGO_BIN_EXE_chat-server"));
    let profile_dir = server.parent().expect("the server binary's directory");
    let chat = profile_dir.join("chat");
    let sources = [
        "crates/client/src",
        "crates/client/Cargo.toml",
        "crates/protocol/src",
        "crates/protocol/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
    ];
    let newest_source = sources
        .iter()
        .filter_map(|path| newest(&suite.repo.join(path)))
        .max();
    let built_at = std::fs::metadata(&chat).and_then(|m| m.modified()).ok();
    if built_at.is_some() && built_at >= newest_source {
        return chat;
    }
    let target_dir = profile_dir.parent().expect("the target directory");
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let built = Command::new(env!("CARGO"))
        .args(["build", "--locked", "-p", "chat-client", "--bin", "chat"])
        .args(["--profile", profile])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(&suite.repo)
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    suite.require(built, "`cargo build -p chat-client --bin chat` failed");
    suite.require(
        chat.exists(),
        &format!("no chat binary at {}", chat.display()),
    );
    chat
}

/// The latest modification time of `path` or of any file under it.
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|entry| newest(&entry.ok()?.path()))
        .max()
}
