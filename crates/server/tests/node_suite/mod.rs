//! Running a Node.js test suite of the repository (`tests/<name>/`, or the
//! JavaScript client's `clients/js/`: Node's own test runner) against the
//! binary cargo just built, for the Rust test files that wrap them
//! (`browser.rs`, `socketio.rs`, `js_client.rs`).
//!
//! The wrapping tests are `#[ignore]`d: a bare `cargo nextest run` reports
//! them as skipped, by name, and `scripts/test`, which installs what they
//! need (node, npm, Chromium, each suite's `node_modules`), runs them. What
//! a suite needs is checked first, so that a missing piece fails the test
//! with its name rather than somewhere inside the suite.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Only stops a hung client or browser from hanging the test run. The
/// browser suite alone takes about five minutes while the rest of the
/// workspace's tests load the same two cores, so the bound is well above it.
const SUITE_TIMEOUT: Duration = Duration::from_secs(900);

/// One Node test suite: a directory of the repository with its own
/// `package.json`.
pub struct Suite {
    /// What the suite is, for messages ("the browser tests").
    pub what: &'static str,
    pub repo: PathBuf,
    pub dir: PathBuf,
    /// More environment for the suite's processes, beside `CHAT_SERVER_BIN`.
    pub env: Vec<(&'static str, PathBuf)>,
}

impl Suite {
    /// The suite in `dir`, relative to the repository root (`tests/browser`).
    pub fn new(what: &'static str, dir: &str) -> Suite {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = repo.join(dir);
        Suite {
            what,
            repo,
            dir,
            env: Vec::new(),
        }
    }

    /// Fails the test, naming what is missing, unless `available`.
    pub fn require(&self, available: bool, missing: &str) {
        assert!(
            available,
            "{missing}: {} cannot run (scripts/test installs what they need)",
            self.what
        );
    }

    /// Node and npm must run here.
    pub fn require_node(&self) {
        self.require(
            runs("node", &["--version"], &self.dir),
            "node is not installed",
        );
        self.require(
            runs("npm", &["--version"], &self.dir),
            "npm is not installed",
        );
    }

    /// Runs `npm ci` in `dir` unless `probe` (a package in its
    /// `node_modules`) is there.
    pub fn install(&self, dir: &Path, probe: &str) {
        if !dir.join("node_modules").join(probe).exists() {
            self.require(
                runs("npm", &["ci", "--no-audit", "--no-fund"], dir),
                &format!("`npm ci` in {} failed", dir.display()),
            );
        }
    }

    /// The browser the suites drive: `CHROMIUM_PATH`, else Debian's.
    pub fn chromium() -> PathBuf {
        std::env::var_os("CHROMIUM_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
    }

    /// Runs `node --test` on `files` (all the suite's when empty) and
    /// asserts that it passes; its output goes to ours.
    pub fn run(&self, files: &[String]) {
        let mut node = Command::new("node");
        node.args(["--test", "--test-concurrency=1"]).args(files);
        self.run_command(node, "node --test");
    }

    /// Runs `npm run <script>` in the suite's directory and asserts that it
    /// passes.
    #[allow(dead_code, reason = "used by js_client.rs only")]
    pub fn npm_run(&self, script: &str) {
        let mut npm = Command::new("npm");
        npm.args(["run", script]);
        self.run_command(npm, &format!("npm run {script}"));
    }

    /// Runs `command` in the suite's directory with the suite's environment,
    /// within [`SUITE_TIMEOUT`]; asserts that it passes.
    fn run_command(&self, mut command: Command, what: &str) {
        let mut child = command
            // Its own process group, so a timeout also ends the servers and
            // browsers it started.
            .process_group(0)
            .current_dir(&self.dir)
            .env("CHAT_SERVER_BIN", env!("CARGO_BIN_EXE_chat-server"))
            .env("CHROMIUM_PATH", Suite::chromium())
            .env("CHAT_ARTIFACTS_DIR", self.repo.join("ci-artifacts"))
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the suite") {
                break status;
            }
            if started.elapsed() > SUITE_TIMEOUT {
                if let Ok(group) = i32::try_from(child.id()) {
                    // SAFETY: kill(2) takes no pointers; a negative pid
                    // names the process group made above.
                    unsafe { libc::kill(-group, libc::SIGKILL) };
                }
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not finish within {SUITE_TIMEOUT:?} ({what})",
                    self.what
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            status.success(),
            "{} failed ({what}: {status}); their output is above",
            self.what
        );
    }
}

fn runs(program: &str, args: &[&str], dir: &Path) -> bool {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
