//! The web page's browser tests (`tests/browser/`: Node's test runner
//! driving Debian's Chromium through playwright-core), run against the
//! binary cargo just built, so `cargo nextest run --workspace` covers the
//! page too. The suite starts its own servers; see tests/browser/harness.js.
//!
//! Needs Node.js and Chromium (`/usr/bin/chromium`, or `CHROMIUM_PATH`), and
//! runs `npm ci` when `tests/browser/node_modules` is missing. Without them
//! the test fails when `CI=true` (`.ci/run` installs them) and is skipped,
//! saying why, everywhere else.
//!
//! Screenshots land in `ci-artifacts/` at the repository root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole suite normally takes well under a minute; this only stops a
/// hung browser from hanging the test run.
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// Fails under CI, skips (returning false) elsewhere.
fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    assert!(
        !in_ci(),
        "{what}: the browser tests cannot run, and CI=true makes that a failure \
         (.ci/run installs what they need)"
    );
    eprintln!("SKIPPED the browser tests: {what}. `.ci/run` installs what they need.");
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

#[test]
fn web_page_in_chromium() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let suite = repo.join("tests/browser");
    let chromium = std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));

    if !require(
        runs("node", &["--version"], &suite),
        "node is not installed",
    ) || !require(
        chromium.exists(),
        &format!("no Chromium at {}", chromium.display()),
    ) {
        return;
    }
    if !suite.join("node_modules/playwright-core").exists()
        && !require(
            runs("npm", &["ci", "--no-audit", "--no-fund"], &suite),
            "`npm ci` in tests/browser failed",
        )
    {
        return;
    }

    let mut node = Command::new("node")
        .args(["--test", "--test-concurrency=1"])
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
            let _ = node.kill();
            let _ = node.wait();
            panic!("the browser tests did not finish within {SUITE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "the browser tests failed ({status}); their output is above"
    );
}
