//! `chat-bench soak` at a tiny size against the real `chat-server` binary:
//! the run holds its connections through moves and reconnects, loses,
//! repeats and reorders nothing, samples the server (RSS, open files, the
//! `chat_runtime_alive_tasks` gauge) and draws its chart.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::SystemTime;

use serde_json::Value;

const LISTENING_PREFIX: &str = "chat-server listening on http://";

/// The server process, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The workspace's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root")
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

/// The `chat-server` binary beside this test's `chat-bench` (a test of the
/// bench crate has no `CARGO_BIN_EXE_chat-server`). A workspace test run
/// has just built it there and it is used as is; only when it is missing
/// or older than its sources (a run of this crate's tests alone) is it
/// built, in the same target directory and profile.
fn server_binary() -> PathBuf {
    let bench = Path::new(env!("CARGO_BIN_EXE_chat-bench"));
    let profile_dir = bench.parent().expect("the bench binary's directory");
    let server = profile_dir.join("chat-server");
    let repo = repo();
    let newest_source = [
        "crates/server/src",
        "crates/server/Cargo.toml",
        "crates/core/src",
        "crates/protocol/src",
        "web",
        "clients/js/src",
        "Cargo.toml",
        "Cargo.lock",
    ]
    .iter()
    .filter_map(|path| newest(&repo.join(path)))
    .max();
    let built_at = std::fs::metadata(&server).and_then(|m| m.modified()).ok();
    if built_at.is_some() && built_at >= newest_source {
        return server;
    }
    let target_dir = profile_dir.parent().expect("the target directory");
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let built = Command::new(env!("CARGO"))
        .args([
            "build",
            "--locked",
            "-p",
            "chat-server",
            "--bin",
            "chat-server",
        ])
        .args(["--profile", profile])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(&repo)
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(built, "`cargo build -p chat-server` failed");
    assert!(server.exists(), "no chat-server at {}", server.display());
    server
}

/// Starts the server on a free port, without the per-connection send rate
/// limit (as main.rs's docs say for benches); its address.
fn start_server(data_dir: &Path) -> (Server, String) {
    let mut child = Command::new(server_binary())
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(["--send-rate", "1000000", "--send-burst", "1000000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chat-server");
    let stdout = child.stdout.take().expect("the server's stdout");
    let server = Server(child);
    // The line comes once the server listens; a server that exits first
    // ends the stream, and the test fails here.
    let addr = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix(LISTENING_PREFIX).map(str::to_string))
        .expect("the server's listening line");
    (server, addr)
}

#[test]
fn a_small_soak_with_churn_loses_nothing_and_samples_the_server() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (server, addr) = start_server(&dir.path().join("data"));
    let json = dir.path().join("soak.json");
    let output = Command::new(env!("CARGO_BIN_EXE_chat-bench"))
        .args(["soak", "--url", &format!("ws://{addr}/ws")])
        .args(["--server-pid", &server.0.id().to_string()])
        .args(["--connections", "200", "--rooms", "10", "--rate", "5"])
        .args(["--churn-per-sec", "20", "--reconnects-per-sec", "10"])
        .args(["--duration", "20s", "--sample-every", "1s"])
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .output()
        .expect("run chat-bench soak");
    drop(server);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "soak failed ({}):\n{table}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report"))
            .expect("JSON");
    let count = |key: &str| {
        report[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {report}"))
    };
    assert_eq!(count("joined"), 200, "{table}");
    assert_eq!(count("seq_violations"), 0, "{table}");
    assert_eq!(report["errors"], serde_json::json!({}), "{table}");
    assert!(count("moves") > 0 && count("reconnects") > 0, "{table}");
    assert!(count("resumed") + count("delivered") > 0, "{table}");
    assert!(
        count("acked") > 0 && count("acked") == count("sent"),
        "{table}"
    );

    let samples = report["samples"].as_array().expect("samples");
    assert!(samples.len() >= 10, "{} samples:\n{table}", samples.len());
    for sample in samples {
        assert!(
            sample["rss_kib"].as_u64().is_some_and(|k| k > 0),
            "{sample}"
        );
        assert!(
            sample["open_fds"].as_u64().is_some_and(|n| n > 0),
            "{sample}"
        );
    }
    // The server's task gauge, read from its /metrics.
    assert!(
        samples
            .iter()
            .any(|s| s["tasks"].as_f64().is_some_and(|t| t > 0.0)),
        "no task count in the samples:\n{table}"
    );
    assert!(report["rss"]["percent_per_hour"].is_number(), "{table}");

    let svg = std::fs::read_to_string(dir.path().join("soak.svg")).expect("the chart");
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.contains("server RSS, MiB") && svg.contains("delivery p99, ms"));
}
