//! `chat-bench rolling` at a small size: three real `chat-server` nodes on
//! PostgreSQL and Redis behind nginx, 60 clients in 6 rooms, each node
//! drained and restarted twice, the restarts switching to a copy of the
//! binary (as an upgrade does). Nothing may be lost, doubled or reordered,
//! and every client must come back.
//!
//! Needs PostgreSQL (`CHAT_TEST_DATABASE_URL`), Redis
//! (`CHAT_TEST_REDIS_URL`) and nginx (`CHAT_TEST_NGINX`). `scripts/test`
//! provides them and runs it (`--run-ignored all`); it fails, never passes,
//! when one is missing, and a bare `cargo nextest run` lists it as
//! ignored, by name, with the reason. It
//! builds `chat-server` first (`cargo build -p chat-server`, same profile),
//! since cargo builds only this package's binaries for its tests.

#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const DEFAULT_DB_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// A service the test needs is missing: it runs only when asked, so fail.
fn missing(what: &str, why: &str) -> ! {
    panic!("{what} is unavailable ({why}); scripts/test sets up what this test needs")
}

/// Redis answers `PING` at `url` (`redis://host:port/`).
fn require_redis(url: &str) {
    match redis_command(url, &["PING"]) {
        Ok(pong) if pong.starts_with("+PONG") => {}
        Ok(other) => missing(&format!("Redis at {url}"), &format!("answered {other:?}")),
        Err(e) => missing(&format!("Redis at {url}"), &e.to_string()),
    }
}

/// Sends one command to Redis at `url` as a RESP array; its first reply
/// line.
fn redis_command(url: &str, args: &[&str]) -> std::io::Result<String> {
    let addr = url.trim_start_matches("redis://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut command = format!("*{}\r\n", args.len());
    for arg in args {
        command.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(command.as_bytes())?;
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Removes every key under `prefix` (the nodes' presence and rooms).
fn redis_forget(url: &str, prefix: &str) {
    let script =
        "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 1";
    let pattern = format!("{prefix}*");
    let _ = redis_command(url, &["EVAL", script, "0", &pattern]);
}

fn require_nginx(nginx: &str) {
    if Command::new(nginx).arg("-v").output().is_err() {
        missing("nginx", "not installed (apt-get install nginx)");
    }
}

/// A PostgreSQL schema of the test's own, dropped at the end.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    async fn new(url: &str) -> Schema {
        if let Err(e) = connect(url).await {
            missing(&format!("PostgreSQL at {url}"), &e);
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Schema {
            url: url.to_owned(),
            name: format!("rolling_test_{}_{nanos}", std::process::id()),
        }
    }

    async fn drop_it(&self) {
        if let Ok(client) = connect(&self.url).await {
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
                .await;
        }
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let connecting = tokio_postgres::connect(url, tokio_postgres::NoTls);
    let (client, connection) = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(client)
}

/// Builds `chat-server` (a no-op when it is fresh) and returns its path,
/// beside this package's `chat-bench`.
fn chat_server() -> PathBuf {
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "-p", "chat-server", "--bin", "chat-server"]);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "cargo build -p chat-server: {status}");
    Path::new(env!("CARGO_BIN_EXE_chat-bench")).with_file_name("chat-server")
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL, Redis and nginx: scripts/test provides them"]
async fn a_rolling_restart_to_a_new_binary_loses_nothing() {
    let db_url = std::env::var("CHAT_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DB_URL.into());
    let redis_url =
        std::env::var("CHAT_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.into());
    let nginx = std::env::var("CHAT_TEST_NGINX").unwrap_or_else(|_| "nginx".into());
    require_redis(&redis_url);
    require_nginx(&nginx);
    let schema = Schema::new(&db_url).await;
    let server = chat_server();
    let dir = tempfile::tempdir().expect("temp dir");
    // The "new build": another file, so each restart switches binaries.
    let new_binary = dir.path().join("chat-server-new");
    std::fs::copy(&server, &new_binary).expect("copy chat-server");
    let json = dir.path().join("rolling.json");
    let redis_prefix = format!("{}:", schema.name);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-bench"))
        .arg("rolling")
        .arg("--server-bin")
        .arg(&server)
        .arg("--new-binary")
        .arg(&new_binary)
        .args(["--database-url", &db_url, "--database-schema", &schema.name])
        .args(["--redis-url", &redis_url])
        .args(["--redis-prefix", &redis_prefix])
        .args(["--nginx", &nginx])
        .args(["--clients", "60", "--rooms", "6", "--rate", "2"])
        .args(["--rounds", "2", "--baseline-secs", "5", "--pause-secs", "3"])
        .arg("--json")
        .arg(&json)
        .output()
        .await
        .expect("run chat-bench");
    schema.drop_it().await;
    redis_forget(&redis_url, &redis_prefix);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "chat-bench rolling failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report"))
            .expect("a JSON report");
    for check in ["lost", "duplicates", "out_of_order", "not_back"] {
        assert_eq!(report[check], 0, "{check}:\n{stdout}");
    }
    assert_eq!(report["caught_up"], true, "{stdout}");
    assert!(report["acked"].as_u64().unwrap_or(0) > 0, "{stdout}");
    let restarts = report["restarts"].as_array().expect("restarts");
    assert_eq!(restarts.len(), 6, "each of 3 nodes twice: {stdout}");
    for restart in restarts {
        assert_eq!(restart["exit_code"], 0, "a drained node exits 0: {restart}");
        assert_eq!(
            restart["binary"].as_str().map(PathBuf::from),
            Some(new_binary.clone()),
            "restarted from the new binary: {restart}"
        );
    }
    assert!(
        report["timeline"].as_array().is_some_and(|t| !t.is_empty()),
        "a timeline"
    );
    assert!(
        plot_beside(&json).exists(),
        "the chart beside the JSON report"
    );
}

fn plot_beside(json: &Path) -> PathBuf {
    json.with_extension("svg")
}
