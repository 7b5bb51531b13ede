//! The admin dashboard against the real binary: `/api/admin/stats` (the
//! sampler's history, counting what a socket sent), `/api/admin/rooms`,
//! `/api/admin/nodes` on one node, and access to them and to the page
//! `/admin` (the API's rule: the key, or without one a loopback caller
//! naming a loopback host). The cluster's nodes are in `cluster.rs`.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A short sample interval, so a test sees samples within a second.
const FAST_STATS: &[&str] = &["--stats-interval-ms", "100"];

fn json(response: &HttpResponse) -> Value {
    serde_json::from_str(&response.body).unwrap_or_else(|e| panic!("not JSON ({e}): {response:?}"))
}

async fn get_json(server: &Server, path: &str) -> Value {
    let response = server.get(path).await;
    assert_eq!(response.status, 200, "{path}: {response:?}");
    json(&response)
}

/// Polls `path` until `done` holds for its answer, failing after 10 s.
async fn poll_until(server: &Server, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = get_json(server, path).await;
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never got there: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn total(samples: &Value, field: &str) -> u64 {
    samples["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[field].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn the_history_grows_and_counts_what_a_socket_sent() {
    let server = Server::start(FAST_STATS);
    let first = poll_until(&server, "/api/admin/stats", |a| {
        a["samples"].as_array().unwrap().len() >= 2
    })
    .await;
    assert_eq!(first["interval_ms"], 100);
    assert!(first["node"].as_str().unwrap().starts_with("n_"), "{first}");
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.join("general").await;
    bob.join("general").await;
    for i in 0..5 {
        alice.say("general", &format!("hello {i}")).await;
    }
    // Five messages stored, each delivered to both members.
    let stats = poll_until(&server, "/api/admin/stats", |a| {
        total(a, "messages") == 5 && total(a, "deliveries") == 10
    })
    .await;
    let samples = stats["samples"].as_array().unwrap();
    let busy: Vec<&Value> = samples.iter().filter(|s| s["messages"] != 0).collect();
    for sample in &busy {
        assert!(
            sample["messages_per_sec"].as_f64().unwrap() > 0.0,
            "{sample}"
        );
        assert!(sample["ack_ms"]["p50"].as_f64().unwrap() > 0.0, "{sample}");
        let p50 = sample["ack_ms"]["p50"].as_f64().unwrap();
        let p999 = sample["ack_ms"]["p999"].as_f64().unwrap();
        assert!(p50 <= p999, "{sample}");
        assert!(
            sample["commit_batch"]["max"].as_u64().unwrap() >= 1,
            "{sample}"
        );
    }
    let latest = samples.last().unwrap();
    assert_eq!(latest["connections"], 2, "{latest}");
    assert!(latest["tasks"].as_u64().unwrap() > 0, "{latest}");
    assert_eq!(latest["slow_consumer_drops"], 0);
    // Oldest first, and `since` gives only newer samples.
    let ts: Vec<i64> = samples.iter().map(|s| s["ts"].as_i64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "{ts:?}");
    let newer = get_json(
        &server,
        &format!("/api/admin/stats?since={}", ts[ts.len() - 2]),
    )
    .await;
    let newer_ts: Vec<i64> = newer["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ts"].as_i64().unwrap())
        .collect();
    assert!(newer_ts[0] == ts[ts.len() - 1], "{newer_ts:?} after {ts:?}");
    // Bad input is a 400, as everywhere in the API.
    let bad = server.get("/api/admin/stats?since=yesterday").await;
    assert_eq!(
        (bad.status, &json(&bad)["code"]),
        (400, &Value::from("bad_request"))
    );
}

#[tokio::test]
async fn rooms_come_busiest_first_with_members_and_rates() {
    let server = Server::start(FAST_STATS);
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.join("busy").await;
    bob.join("busy").await;
    alice.join("quiet").await;
    for i in 0..6 {
        alice.say("busy", &format!("m{i}")).await;
    }
    alice.say("quiet", "once").await;
    let rooms = poll_until(&server, "/api/admin/rooms", |a| {
        let rooms = a["rooms"].as_array().unwrap();
        rooms.len() == 2
            && rooms
                .iter()
                .all(|r| r["messages_per_sec"].as_f64().unwrap() > 0.0)
    })
    .await;
    let rooms = rooms["rooms"].as_array().unwrap();
    assert_eq!(rooms[0]["room"], "busy", "{rooms:?}");
    assert_eq!(rooms[0]["members"], 2);
    let mut names: Vec<&str> = rooms[0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(rooms[0]["seq"], 6);
    assert!(
        rooms[0]["messages_per_sec"].as_f64().unwrap()
            > rooms[1]["messages_per_sec"].as_f64().unwrap()
    );
    assert_eq!(
        (rooms[1]["room"].as_str(), rooms[1]["seq"].as_u64()),
        (Some("quiet"), Some(1))
    );
    let one = get_json(&server, "/api/admin/rooms?limit=1").await;
    assert_eq!(one["rooms"].as_array().unwrap().len(), 1);
    assert_eq!(server.get("/api/admin/rooms?limit=0").await.status, 400);
}

#[tokio::test]
async fn one_node_lists_itself_with_its_health() {
    let server = Server::start(FAST_STATS);
    let _alice = server.client("alice").await;
    let answer = poll_until(&server, "/api/admin/nodes", |a| {
        a["nodes"][0]["connections"] == 1
    })
    .await;
    let nodes = answer["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{answer}");
    let node = &nodes[0];
    let stats = get_json(&server, "/api/admin/stats").await;
    assert_eq!(node["id"], stats["node"]);
    assert_eq!(node["address"], server.addr.to_string());
    assert_eq!(
        (&node["ready"], &node["health"]),
        (&Value::from(true), &Value::from("ready"))
    );
    assert_eq!(node["stale"], false);
    assert_eq!(node["version"], env!("CARGO_PKG_VERSION"));
    assert!(node["started"].as_i64().unwrap() <= node["heard"].as_i64().unwrap());
}

const KEY: &str = "test-api-key-0123456789";
const ADMIN_CALLS: [&str; 3] = ["/api/admin/stats", "/api/admin/rooms", "/api/admin/nodes"];

#[tokio::test]
async fn with_a_key_the_page_is_served_and_every_admin_call_needs_the_key() {
    let server = Server::start(&["--api-key", KEY]);
    let page = server.get("/admin").await;
    assert_eq!(page.status, 200);
    let head = page.head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(page.body.contains("/assets/admin/main.js"));
    assert_eq!(server.get("/assets/admin/charts.js").await.status, 200);
    let right = format!("Bearer {KEY}");
    for call in ADMIN_CALLS {
        let none = server.get(call).await;
        assert_eq!(
            (none.status, &json(&none)["code"]),
            (401, &Value::from("unauthorized")),
            "{call}"
        );
        let wrong = [("Authorization", "Bearer test-api-key-0123456788")];
        let r = http_request(server.addr, "GET", call, &wrong, None).await;
        assert_eq!(r.status, 401, "{call}");
        let r = http_request(server.addr, "GET", call, &[("Authorization", &right)], None).await;
        assert_eq!(r.status, 200, "{call}: {r:?}");
    }
}

/// A request with a `Host` of our choosing, from loopback; its status.
async fn status_for_host(addr: SocketAddr, path: &str, host: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const DASHBOARD: [&str; 5] = [
    "/admin",
    "/assets/admin/main.js",
    "/api/admin/stats",
    "/api/admin/rooms",
    "/api/admin/nodes",
];

#[tokio::test]
async fn without_a_key_a_rebound_host_name_gets_no_dashboard() {
    // Answering every name, a loopback caller that names another host (a
    // page whose name was rebound to 127.0.0.1) is told there is nothing.
    let server = Server::start(&["--allowed-hosts", "*"]);
    let port = server.addr.port();
    for path in DASHBOARD {
        let evil = status_for_host(server.addr, path, &format!("evil.example:{port}")).await;
        assert_eq!(evil, 404, "{path}");
        let local = status_for_host(server.addr, path, &format!("localhost:{port}")).await;
        assert_eq!(local, 200, "{path}");
    }
}

/// This machine's address on a non-loopback interface, if it has one.
fn outside_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
#[ignore = "needs a non-loopback network interface to call from: scripts/test checks for one"]
async fn without_a_key_the_dashboard_answers_loopback_peers_only() {
    let outside = outside_address()
        .expect("a non-loopback interface to call from (scripts/test checks for one)");
    let server = Server::start(&["--listen", "0.0.0.0:0"]);
    let port = server.addr.port();
    for path in DASHBOARD {
        let local = http_get(([127, 0, 0, 1], port).into(), path).await;
        assert_eq!(local.status, 200, "{path}");
        let from_outside = http_get(SocketAddr::new(outside, port), path).await;
        assert_eq!(from_outside.status, 404, "{path}");
    }
    // The chat page is there for everyone.
    assert_eq!(
        http_get(SocketAddr::new(outside, port), "/").await.status,
        200
    );
}
