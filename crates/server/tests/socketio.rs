//! Socket.IO clients against the binary cargo just built (`tests/socketio/`:
//! Node's test runner): the official `socket.io-client` over WebSocket and
//! long-polling, next to native clients on `/ws`; and the seed article's
//! React client, built with Vite and driven in Chromium through
//! playwright-core. Each test file starts its own servers.
//!
//! Needs Node.js and npm, and for the seed client Chromium
//! (`/usr/bin/chromium`, or `CHROMIUM_PATH`); runs `npm ci` where
//! `node_modules` is missing. Without them the test fails when `CI=true`
//! (`.ci/run` installs them) and skips, saying why, everywhere else.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The suite normally takes well under a minute; this only stops a hung
/// client or browser from hanging the test run.
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);

/// The test file that needs Chromium.
const BROWSER_SUITE: &str = "seed-client.test.js";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// Fails under CI, says why it skips (returning false) elsewhere.
fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    assert!(
        !in_ci(),
        "{what}: the Socket.IO tests cannot run, and CI=true makes that a failure \
         (.ci/run installs what they need)"
    );
    eprintln!("SKIPPED {what}. `.ci/run` installs what the Socket.IO tests need.");
    false
}

fn runs(program: &str, args: &[&str], dir: &Path) -> bool {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// `npm ci` in `dir` unless `probe` (a package in its `node_modules`) is there.
fn installed(dir: &Path, probe: &str) -> bool {
    dir.join("node_modules").join(probe).exists()
        || require(
            runs("npm", &["ci", "--no-audit", "--no-fund"], dir),
            &format!("`npm ci` in {} failed", dir.display()),
        )
}

#[test]
fn socket_io_clients_and_the_seed_react_client() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let suite = repo.join("tests/socketio");
    if !require(
        runs("node", &["--version"], &suite),
        "the Socket.IO tests: node is not installed",
    ) || !require(
        runs("npm", &["--version"], &suite),
        "the Socket.IO tests: npm is not installed",
    ) || !installed(&suite, "socket.io-client")
    {
        return;
    }

    let mut files: Vec<String> = std::fs::read_dir(&suite)
        .expect("read tests/socketio")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".test.js") && name != BROWSER_SUITE)
        .collect();
    files.sort();
    let chromium = std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if require(
        chromium.exists(),
        &format!(
            "the seed client's browser test: no Chromium at {}",
            chromium.display()
        ),
    ) && installed(&suite.join("seed-client"), "vite")
    {
        files.push(BROWSER_SUITE.to_owned());
    }

    let mut node = Command::new("node")
        // Its own process group, so a timeout also ends the servers and
        // browsers it started.
        .process_group(0)
        .args(["--test", "--test-concurrency=1"])
        .args(&files)
        .current_dir(&suite)
        .env("CHAT_SERVER_BIN", env!("CARGO_BIN_EXE_chat-server"))
        .env("CHROMIUM_PATH", &chromium)
        .env("CHAT_ARTIFACTS_DIR", repo.join("ci-artifacts"))
        .stdin(Stdio::null())
        .spawn()
        .expect("start node");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = node.try_wait().expect("wait for node") {
            break status;
        }
        if started.elapsed() > SUITE_TIMEOUT {
            if let Ok(group) = i32::try_from(node.id()) {
                // SAFETY: kill(2) takes no pointers; a negative pid names
                // the process group made for node above.
                unsafe { libc::kill(-group, libc::SIGKILL) };
            }
            let _ = node.kill();
            let _ = node.wait();
            panic!("the Socket.IO tests did not finish within {SUITE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "the Socket.IO tests failed ({status}); their output is above"
    );
}
