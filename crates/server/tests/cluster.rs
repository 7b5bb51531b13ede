//! Cluster mode: three real `chat-server` processes on loopback ports
//! sharing one PostgreSQL schema and one Redis key prefix.
//!
//! - concurrent senders on every node into the same rooms, and every
//!   receiver on every node sees each room in the same gapless order;
//! - presence is cluster-wide, and a node killed with -9 has its users'
//!   `leave` reach the other nodes within two heartbeat intervals;
//! - a node killed mid-traffic: its clients resume on another node with
//!   `since`, and nothing acked is missing;
//! - a message committed but never published (its node died in between)
//!   is filled from the store on every node, in order;
//! - Redis (a private `redis-server` of the test's own) killed and
//!   restarted mid-traffic: sends are refused meanwhile, `/readyz` says 503,
//!   and the cluster recovers with every room still gapless; a node takes
//!   sends again, announced anew, within a second of Redis answering, not
//!   at its next heartbeat;
//! - a client through nginx (the config of docs/deploy.md, run as a
//!   foreground process of the test's own);
//! - bans made through one node's API are carried out on every node: a
//!   member on another node is taken out of the room (and refused when it
//!   tries again), a server-banned user's connection elsewhere is closed
//!   with 1008 and refused again at the upgrade, and a node started after
//!   the ban enforces it;
//! - changes (edits, reactions, replies, deletions, pins) made on every
//!   node at once: one gapless order of entries everywhere, races decided
//!   once, and a client resuming on another node converges to the state of
//!   members who stayed;
//! - the admin dashboard's nodes (`/api/admin/nodes`): every node's
//!   summary through Redis, and a node killed with -9 shown stale, then
//!   gone once its summary expires.
//!
//! PostgreSQL comes from `CHAT_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), Redis from
//! `CHAT_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/`); each test
//! uses a schema and a key prefix of its own, removed at the end. The tests
//! that need these services are `#[ignore]`d, so a bare `cargo nextest run`
//! reports them as skipped, by name; `scripts/test` provides the services
//! and runs them, and there a missing service fails them.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::room::entries_through;
use common::*;
use serde_json::{Value, json};
use tokio_postgres::NoTls;

/// Polls `/readyz` until it answers `status`, failing after `within`.
async fn wait_ready(server: &Server, status: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = server.get("/readyz").await;
        if got.status == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz of {} still answers {} ({}), not {status}",
            server.addr,
            got.status,
            got.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn send(room: &str, id: &str) -> Value {
    json!({"type": "send", "room": room, "text": format!("text of {id}"), "id": id})
}

/// Reads a receiver's frames until every room in `rooms` has its
/// messages through `through`; returns each room's messages as received.
async fn messages_through(
    client: &mut Client,
    rooms: &[&str],
    through: u64,
) -> HashMap<String, Vec<Value>> {
    let mut got: HashMap<String, Vec<Value>> =
        rooms.iter().map(|r| (r.to_string(), Vec::new())).collect();
    let done = |got: &HashMap<String, Vec<Value>>| {
        got.values()
            .all(|m| m.last().is_some_and(|m| m["seq"].as_u64() >= Some(through)))
    };
    if through == 0 {
        return got;
    }
    while !done(&got) {
        let frame = client.recv_json().await;
        if frame["type"] == "message"
            && let Some(list) = got.get_mut(frame["room"].as_str().unwrap_or(""))
        {
            list.push(frame);
        }
    }
    got
}

/// Asserts `messages` are exactly seq 1..=n, in order.
fn assert_gapless(who: &str, room: &str, messages: &[Value], n: u64) {
    let seqs: Vec<u64> = messages.iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "{who} in {room}: not 1..={n} in order"
    );
}

fn ids(messages: &[Value]) -> Vec<&str> {
    messages.iter().filter_map(|m| m["id"].as_str()).collect()
}

#[tokio::test]
#[ignore = "needs PostgreSQL, Redis, redis-server and nginx: scripts/test provides them"]
async fn three_nodes_deliver_every_room_in_one_gapless_order() {
    const ROOMS: [&str; 2] = ["lobby", "聊天室"];
    const PER_SENDER: usize = 240;
    let cluster = Cluster::new().await;
    let nodes: Vec<Server> = (0..3).map(|_| cluster.node(&[])).collect();
    let mut receivers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for r in 0..2 {
            let mut c = node.client(&format!("reader{n}{r}")).await;
            for room in ROOMS {
                c.join(room).await;
            }
            receivers.push((format!("reader {r} on node {n}"), c));
        }
    }
    let mut senders = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let mut c = node.client(&format!("writer{n}")).await;
        for room in ROOMS {
            c.join(room).await;
        }
        senders.push((n, c));
    }
    // Every sender at once, alternating rooms.
    let sends = senders.iter_mut().map(|(n, c)| {
        let frames: Vec<Value> = (0..PER_SENDER)
            .map(|i| send(ROOMS[i % 2], &format!("n{n}-{i}")))
            .collect();
        c.pipeline(frames)
    });
    let acks = futures_util::future::join_all(sends).await;
    let mut acked: HashMap<(String, u64), String> = HashMap::new();
    for ack in acks.iter().flatten() {
        assert_eq!(ack["type"], "ack", "{ack}");
        let key = (
            ack["room"].as_str().unwrap().to_owned(),
            ack["seq"].as_u64().unwrap(),
        );
        let previous = acked.insert(key, ack["id"].as_str().unwrap().to_owned());
        assert!(previous.is_none(), "two acks with one seq: {ack}");
    }
    let per_room = (3 * PER_SENDER / 2) as u64;

    let mut reference: Option<HashMap<String, Vec<Value>>> = None;
    for (who, c) in receivers.iter_mut() {
        let got = messages_through(c, &ROOMS, per_room).await;
        for room in ROOMS {
            assert_gapless(who, room, &got[room], per_room);
            for m in &got[room] {
                let key = (room.to_owned(), m["seq"].as_u64().unwrap());
                assert_eq!(
                    acked.get(&key).map(String::as_str),
                    m["id"].as_str(),
                    "{who}: {m}"
                );
            }
        }
        match &reference {
            None => reference = Some(got),
            Some(first) => {
                for room in ROOMS {
                    assert_eq!(ids(&first[room]), ids(&got[room]), "{who} in {room}");
                }
            }
        }
    }
    // Nothing more, in particular no repeats, after the last one.
    for (who, c) in receivers.iter_mut() {
        let extra = c.stay_connected_for(Duration::from_millis(300)).await;
        assert!(
            extra.iter().all(|f| f["type"] != "message"),
            "{who} got more: {extra:?}"
        );
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL, Redis, redis-server and nginx: scripts/test provides them"]
async fn changes_on_every_node_keep_one_order_and_a_resumed_client_converges() {
    const ROOM: &str = "changes";
    let cluster = Cluster::new().await;
    let nodes: Vec<Server> = (0..3).map(|_| cluster.node(&[])).collect();
    let mut observers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let mut c = node.client(&format!("observer{n}")).await;
        let joined = c.join(ROOM).await;
        observers.push((n, vec![joined], c));
    }
    let mut writers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let mut c = node.client(&format!("writer{n}")).await;
        c.join(ROOM).await;
        writers.push(c);
    }
    let mut leaver = nodes[0].client("leaver").await;
    let mut away = vec![leaver.join(ROOM).await];

    // Every writer posts, then all at once react to, reply to and edit
    // each other's messages.
    let mut targets = Vec::new();
    for (n, writer) in writers.iter_mut().enumerate() {
        let ack = writer.request(send(ROOM, &format!("m{n}"))).await;
        targets.push(ack["seq"].as_u64().unwrap());
    }
    let before_leaving = *targets.iter().max().unwrap();
    away.extend(entries_through(ROOM, &mut leaver, before_leaving).await);
    drop(leaver);
    let bursts = writers.iter_mut().enumerate().map(|(n, writer)| {
        let mut frames = Vec::new();
        for (t, &target) in targets.iter().enumerate() {
            frames.push(json!({"type": "react", "room": ROOM, "seq": target, "emoji": format!("e{n}")}));
            frames.push(json!({"type": "send", "room": ROOM, "text": format!("re {t} from {n}"), "reply_to": target}));
        }
        frames.push(json!({"type": "edit", "room": ROOM, "seq": targets[n], "text": format!("m{n}, edited")}));
        writer.pipeline(frames)
    });
    for ack in futures_util::future::join_all(bursts)
        .await
        .iter()
        .flatten()
    {
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    // Two nodes delete the same message at once (as the API's moderator):
    // one deletion is stored, the other finds nothing left to delete.
    let path = format!("/api/rooms/{ROOM}/messages/{}", targets[0]);
    let (one, other) = tokio::join!(
        http_request(nodes[1].addr, "DELETE", &path, &[], None),
        http_request(nodes[2].addr, "DELETE", &path, &[], None),
    );
    let mut statuses = [one.status, other.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 404], "{one:?} {other:?}");
    let pin = http_request(
        nodes[1].addr,
        "PUT",
        &format!("/api/rooms/{ROOM}/pins/{}", targets[1]),
        &[],
        None,
    )
    .await;
    assert_eq!(pin.status, 200, "{pin:?}");
    let last = writers[2].request(send(ROOM, "the end")).await["seq"]
        .as_u64()
        .unwrap();

    for (n, frames, c) in observers.iter_mut() {
        frames.extend(entries_through(ROOM, c, last).await);
        let seqs: Vec<u64> = frames[1..]
            .iter()
            .map(|f| f["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(
            seqs,
            (1..=last).collect::<Vec<_>>(),
            "observer on node {n}: one gapless order"
        );
    }
    let order = |frames: &[Value]| -> Vec<String> {
        frames[1..]
            .iter()
            .map(|f| format!("{} {}", f["type"], f["id"]))
            .collect()
    };
    assert_eq!(order(&observers[0].1), order(&observers[1].1));
    assert_eq!(order(&observers[0].1), order(&observers[2].1));

    let mut fresh_client = nodes[1].client("fresh").await;
    let fresh = room::state_of(ROOM, &[fresh_client.join_since(ROOM, 0).await]);
    for (n, frames, _) in &observers {
        let live = room::state_of(ROOM, frames);
        assert_eq!(live.messages, fresh.messages, "observer on node {n}");
        assert_eq!(live.pins, fresh.pins, "observer on node {n}");
    }
    // The leaver comes back on another node.
    let mut back = nodes[2].client("leaver").await;
    away.push(back.join_since(ROOM, before_leaving).await);
    let resumed = room::state_of(ROOM, &away);
    assert_eq!(resumed.messages, fresh.messages, "the resumed client");
    assert_eq!(resumed.pins, fresh.pins, "the resumed client");
    assert!(fresh.messages[&targets[0]].deleted);
    assert_eq!(fresh.messages[&targets[1]].reactions.len(), 3);
    assert_eq!(fresh.pins.len(), 1);
}

#[tokio::test]
#[ignore = "needs PostgreSQL, Redis, redis-server and nginx: scripts/test provides them"]
async fn presence_is_cluster_wide_and_a_killed_node_s_users_leave_everywhere() {
    let cluster = Cluster::new().await;
    // Heartbeat 5 s: the contract's bound for a dead node's leaves is two
    // heartbeats; the node TTL (2 s) makes it about 2.7 s.
    const HEARTBEAT_MS: u64 = 5000;
    let flags = ["--presence-delay-ms", "0", "--heartbeat-ms", "5000"];
    let node_a = cluster.node(&flags);
    let mut node_b = cluster.node(&flags);
    let node_c = cluster.node(&flags);
    let names = |joined: &Value| {
        let mut names: Vec<String> = joined["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    let mut alice = node_a.client("alice").await;
    alice.join("lobby").await;
    let mut bob = node_b.client("bob").await;
    assert_eq!(names(&bob.join("lobby").await), ["alice", "bob"]);
    let seen = alice
        .recv_until(|f| f["type"] == "presence" && f["event"] == "join")
        .await;
    assert_eq!(seen["user"]["name"], "bob");
    let mut carol = node_c.client("carol").await;
    assert_eq!(names(&carol.join("lobby").await), ["alice", "bob", "carol"]);
    for c in [&mut alice, &mut bob] {
        let seen = c
            .recv_until(|f| f["type"] == "presence" && f["user"]["name"] == "carol")
            .await;
        assert_eq!(seen["event"], "join");
    }

    // A graceful leave travels as an event.
    let mut dave = node_b.client("dave").await;
    dave.join("lobby").await;
    dave.leave("lobby").await;
    let seen = carol
        .recv_until(|f| f["type"] == "presence" && f["event"] == "leave")
        .await;
    assert_eq!(seen["user"]["name"], "dave");

    // kill -9: no leave is ever published; the heartbeat finds it.
    let killed = Instant::now();
    node_b.kill9();
    for c in [&mut alice, &mut carol] {
        c.recv_until(|f| {
            f["type"] == "presence" && f["event"] == "leave" && f["user"]["name"] == "bob"
        })
        .await;
    }
    let took = killed.elapsed();
    eprintln!("leave of a killed node's user arrived after {took:?}");
    assert!(
        took < Duration::from_millis(2 * HEARTBEAT_MS),
        "took {took:?}, more than two heartbeat intervals"
    );
    let mut erin = node_a.client("erin").await;
    assert_eq!(names(&erin.join("lobby").await), ["alice", "carol", "erin"]);
    drop(bob);
}

/// Sends `frames` in windows of 16, recording acks as they come, until
/// done or the connection dies (its node was killed).
async fn send_until_dead(c: &mut Client, frames: Vec<Value>, acks: &std::sync::Mutex<Vec<Value>>) {
    for window in frames.chunks(16) {
        let replies = c.blast(window.to_vec()).await;
        acks.lock().unwrap().extend(replies);
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL, Redis, redis-server and nginx: scripts/test provides them"]
async fn a_node_killed_mid_traffic_its_clients_resume_elsewhere_and_nothing_acked_is_missing() {
    const ROOM: &str = "busy";
    let cluster = Cluster::new().await;
    let node_a = cluster.node(&[]);
    let node_b = cluster.node(&[]);
    let mut node_c = cluster.node(&[]);
    let mut readers = Vec::new();
    for (n, node) in [&node_a, &node_b, &node_c].into_iter().enumerate() {
        let mut c = node.client(&format!("reader{n}")).await;
        c.join(ROOM).await;
        readers.push(c);
    }
    let mut reader_c = readers.pop().unwrap();
    let mut writers = Vec::new();
    for (n, node) in [&node_a, &node_b, &node_c].into_iter().enumerate() {
        let mut c = node.client(&format!("writer{n}")).await;
        c.join(ROOM).await;
        writers.push(c);
    }
    let mut writer_c = writers.pop().unwrap();
    let acks = std::sync::Mutex::new(Vec::new());
    let c_acks = std::sync::Mutex::new(Vec::new());

    // Node C's writer runs on a task of its own: it dies with its node.
    let c_frames: Vec<Value> = (0..2000).map(|i| send(ROOM, &format!("c-{i}"))).collect();
    let c_acks = std::sync::Arc::new(c_acks);
    let c_task = {
        let c_acks = c_acks.clone();
        tokio::spawn(async move { send_until_dead(&mut writer_c, c_frames, &c_acks).await })
    };
    let others = writers.iter_mut().enumerate().map(|(n, c)| {
        let frames: Vec<Value> = (0..300).map(|i| send(ROOM, &format!("w{n}-{i}"))).collect();
        let acks = &acks;
        async move { send_until_dead(c, frames, acks).await }
    });
    let kill = async {
        // Let traffic flow, then kill node C in the middle of it.
        while c_acks.lock().unwrap().len() < 200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        node_c.kill9();
    };
    futures_util::future::join(futures_util::future::join_all(others), kill).await;
    assert!(c_task.await.is_err(), "node C's writer outlived its node");
    let mut acked: Vec<Value> = acks.into_inner().unwrap();
    acked.extend(c_acks.lock().unwrap().iter().cloned());
    assert!(
        acked.iter().all(|a| a["type"] == "ack"),
        "every reply an ack"
    );
    assert!(acked.len() >= 600 + 200, "{} acks", acked.len());

    // The latest seq, as a fresh client on a surviving node sees it.
    let mut probe = node_a.client("probe").await;
    let latest = probe.join(ROOM).await["seq"].as_u64().unwrap();

    // Node C's reader: what it had, then resumes on node A with `since`.
    let (frames, _) = reader_c.recv_until_end(RECV_TIMEOUT).await;
    let mut seen: Vec<Value> = frames
        .into_iter()
        .filter(|f| f["type"] == "message")
        .collect();
    let since = seen.last().map_or(0, |m| m["seq"].as_u64().unwrap());
    assert_gapless("reader on node C before the kill", ROOM, &seen, since);
    let mut resumed = node_a.client("reader2-again").await;
    let joined = resumed.join_since(ROOM, since).await;
    assert_eq!(joined["complete"], true);
    seen.extend(joined["messages"].as_array().unwrap().iter().cloned());
    assert_gapless("reader resumed on node A", ROOM, &seen, latest);

    // The surviving readers got everything, in order, no gaps.
    for (n, c) in readers.iter_mut().enumerate() {
        let got = messages_through(c, &[ROOM], latest).await;
        assert_gapless(&format!("reader on node {n}"), ROOM, &got[ROOM], latest);
    }
    // Every ack is in the history with its seq.
    let stored: HashMap<u64, String> = seen
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for ack in &acked {
        let seq = ack["seq"].as_u64().unwrap();
        assert_eq!(
            stored.get(&seq).map(String::as_str),
            ack["id"].as_str(),
            "{ack}"
        );
    }
}

/// A `redis-server` of the test's own, on an ephemeral port, keeping
/// nothing on disk, that the test can kill and restart.
struct PrivateRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut redis = PrivateRedis {
            port,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        if let Err(why) = redis.spawn() {
            missing("redis-server", &why);
        }
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err("redis-server did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL, Redis, redis-server and nginx: scripts/test provides them"]
async fn redis_restarted_mid_traffic_sends_are_refused_meanwhile_and_the_cluster_recovers() {
    const ROOM: &str = "steady";
    let mut redis = PrivateRedis::start();
    let cluster = Cluster::with_redis(redis.url()).await;
    let node_a = cluster.node(&[]);
    let node_b = cluster.node(&[]);
    let mut reader_a = node_a.client("reader-a").await;
    reader_a.join(ROOM).await;
    let mut reader_b = node_b.client("reader-b").await;
    reader_b.join(ROOM).await;
    let mut writer_a = node_a.client("writer-a").await;
    writer_a.join(ROOM).await;
    let mut writer_b = node_b.client("writer-b").await;
    writer_b.join(ROOM).await;
    let mut acked = Vec::new();
    let frames: Vec<Value> = (0..50)
        .map(|i| send(ROOM, &format!("before-{i}")))
        .collect();
    acked.extend(writer_a.pipeline(frames).await);
    wait_ready(&node_a, 200, Duration::from_secs(10)).await;

    redis.kill();
    // Sends go on; once the nodes notice, they are refused, never lost.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut refused = Vec::new();
    let mut i = 0;
    while refused.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "sends still accepted 15 s into the outage"
        );
        let writer = if i % 2 == 0 {
            &mut writer_a
        } else {
            &mut writer_b
        };
        let reply = writer.request(send(ROOM, &format!("during-{i}"))).await;
        match reply["type"].as_str() {
            Some("ack") => acked.push(reply),
            _ => {
                assert_eq!(reply["code"], "internal", "{reply}");
                refused.push(send(ROOM, &format!("during-{i}")));
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_ready(&node_a, 503, Duration::from_secs(10)).await;
    wait_ready(&node_b, 503, Duration::from_secs(10)).await;
    // Both readers are still connected and served (what they received on
    // the way is kept).
    let mut early: HashMap<&str, Vec<Value>> = HashMap::new();
    for (who, c) in [
        ("reader on node A", &mut reader_a),
        ("reader on node B", &mut reader_b),
    ] {
        let mut log = Vec::new();
        let pong = c.request_logged(json!({"type": "ping"}), &mut log).await;
        assert_eq!(pong["type"], "pong");
        early.insert(
            who,
            log.into_iter().filter(|f| f["type"] == "message").collect(),
        );
    }

    // Stay down a while: more than a node TTL, heartbeats failing.
    tokio::time::sleep(Duration::from_millis(NODE_TTL_MS)).await;
    wait_ready(&node_b, 503, Duration::from_secs(1)).await;

    redis.spawn().expect("restart redis-server");
    wait_ready(&node_a, 200, Duration::from_secs(20)).await;
    wait_ready(&node_b, 200, Duration::from_secs(20)).await;
    let frames: Vec<Value> = (0..50).map(|i| send(ROOM, &format!("after-{i}"))).collect();
    acked.extend(writer_b.pipeline(frames.clone()).await);
    acked.extend(
        writer_a
            .pipeline(
                frames
                    .iter()
                    .map(|f| {
                        let mut f = f.clone();
                        f["id"] = json!(format!("{}-a", f["id"].as_str().unwrap()));
                        f
                    })
                    .collect(),
            )
            .await,
    );
    // What was refused was not stored: a retry is stored anew.
    for retry in writer_a.pipeline(refused).await {
        assert_eq!(retry["type"], "ack", "{retry}");
        assert_ne!(
            retry["duplicate"], true,
            "a refused send was stored: {retry}"
        );
        acked.push(retry);
    }
    assert!(
        acked.iter().all(|a| a["type"] == "ack"),
        "after recovery every send is acked"
    );
    let latest = acked
        .iter()
        .filter_map(|a| a["seq"].as_u64())
        .max()
        .unwrap();

    for (who, c) in [
        ("reader on node A", &mut reader_a),
        ("reader on node B", &mut reader_b),
    ] {
        let mut got = early.remove(who).unwrap_or_default();
        let already = got.last().map_or(0, |m| m["seq"].as_u64().unwrap());
        if already < latest {
            got.extend(
                messages_through(c, &[ROOM], latest)
                    .await
                    .remove(ROOM)
                    .unwrap_or_default(),
            );
        }
        assert_gapless(who, ROOM, &got, latest);
        let by_seq: HashMap<u64, &str> = got
            .iter()
            .map(|m| (m["seq"].as_u64().unwrap(), m["id"].as_str().unwrap()))
            .collect();
        for ack in &acked {
            assert_eq!(
                by_seq.get(&ack["seq"].as_u64().unwrap()).copied(),
                ack["id"].as_str(),
                "{who}: {ack}"
            );
        }
    }
    let metrics = node_a.get("/metrics").await.body;
    assert!(
        metric_value(&metrics, "chat_cluster_subscription_lost_total").is_some_and(|v| v >= 1.0),
        "{metrics}"
    );
    // The heartbeat sees both nodes again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = node_a.get("/metrics").await.body;
        if metric_value(&metrics, "chat_cluster_nodes") == Some(2.0) {
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Presence recovered as well: a newcomer sees both readers.
    let mut newcomer = node_a.client("newcomer").await;
    let joined = newcomer.join(ROOM).await;
    let members: Vec<&str> = joined["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    for name in ["reader-a", "reader-b", "writer-a", "writer-b"] {
        assert!(members.contains(&name), "{name} missing from {members:?}");
    }
}

/// Keys of the cluster's prefix matching `pattern` (after the prefix).
async fn redis_keys(cluster: &Cluster, pattern: &str) -> Vec<String> {
    let client = redis::Client::open(cluster.redis_url.as_str()).expect("Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    redis::cmd("KEYS")
        .arg(format!("{}{pattern}", cluster.prefix))
        .query_async(&mut conn)
        .await
        .expect("KEYS")
}

/// Hole 9 of issue 17: after Redis came back, a node kept refusing sends
/// until its next heartbeat (a third of `--node-ttl-ms`: 6.2 s in the
/// report). With heartbeats 20 s apart, Redis is restarted about 3 s after
/// the node's first one: the node must take sends again within a second or
/// so of Redis answering, announced anew, not 17 s later.
#[tokio::test]
#[ignore = "needs PostgreSQL, Redis, redis-server and nginx: scripts/test provides them"]
async fn after_a_redis_outage_a_node_takes_sends_at_once_not_at_its_next_heartbeat() {
    const ROOM: &str = "back";
    const LONG_TTL_MS: u64 = 60_000;
    /// Well above the ~0.5 s recovery, well below the 17 s the heartbeat
    /// would take.
    const BOUND: Duration = Duration::from_millis(2500);
    let mut redis = PrivateRedis::start();
    let cluster = Cluster::with_redis(redis.url()).await;
    let node = cluster.node_with_ttl(LONG_TTL_MS, &[]);
    let started = Instant::now();
    let mut writer = node.client("writer").await;
    writer.join(ROOM).await;
    writer.say(ROOM, "before the outage").await;
    wait_ready(&node, 200, Duration::from_secs(10)).await;

    redis.kill();
    // People go on typing and sending: the typing notices fail to reach
    // Redis, and the sends are refused once the node notices.
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0.. {
        writer
            .send_json(&json!({"type": "typing", "room": ROOM}))
            .await;
        let reply = writer.request(send(ROOM, &format!("during-{i}"))).await;
        if reply["type"] == "error" {
            assert_eq!(reply["code"], "internal", "{reply}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sends still acked 10 s into the outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_ready(&node, 503, Duration::from_secs(10)).await;

    tokio::time::sleep_until((started + Duration::from_secs(3)).into()).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the outage began too late for the test to tell recovery from the next heartbeat"
    );
    redis.spawn().expect("restart redis-server");
    let answering = Instant::now();
    for attempt in 0.. {
        let reply = writer
            .request(send(ROOM, &format!("after-{attempt}")))
            .await;
        if reply["type"] == "ack" {
            break;
        }
        assert_eq!(reply["code"], "internal", "{reply}");
        assert!(
            answering.elapsed() < BOUND,
            "sends still refused {:?} after Redis answered again: {reply}",
            answering.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The restarted Redis kept nothing: the node wrote its heartbeat key
    // and its user's presence back before taking sends.
    assert_eq!(redis_keys(&cluster, "node:*").await.len(), 1);
    let members = redis_keys(&cluster, &format!("members:*:{ROOM}")).await;
    assert_eq!(members.len(), 1, "{members:?}");
}

/// nginx in front of the nodes, with the configuration of docs/deploy.md
/// (`docs/nginx-cluster.conf`), run in the foreground from a temp prefix.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(nodes: &[&Server]) -> Nginx {
        let nginx = std::env::var("CHAT_TEST_NGINX").unwrap_or_else(|_| "nginx".into());
        if Command::new(&nginx).arg("-v").output().is_err() {
            missing("nginx", "not installed (apt-get install nginx)");
        }
        let template = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/nginx-cluster.conf"),
        )
        .expect("docs/nginx-cluster.conf");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        // The documented file with this test's ports; temp files and logs
        // in the temp prefix, so nginx needs no system directories.
        let mut conf = template.replace("listen 8080;", &format!("listen 127.0.0.1:{port};"));
        for (i, node) in nodes.iter().enumerate() {
            conf = conf.replace(&format!("127.0.0.1:300{}", i + 1), &node.addr.to_string());
        }
        conf = conf.replace(
            "http {",
            "http {\n    client_body_temp_path tmp/body;\n    proxy_temp_path tmp/proxy;\n    \
             fastcgi_temp_path tmp/fastcgi;\n    uwsgi_temp_path tmp/uwsgi;\n    \
             scgi_temp_path tmp/scgi;\n    access_log off;\n",
        );
        std::fs::create_dir_all(dir.path().join("tmp")).expect("temp paths");
        std::fs::create_dir_all(dir.path().join("logs")).expect("log dir");
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(&nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off; pid nginx.pid; error_log stderr notice;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn nginx");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master then stops its workers too.
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid; no memory involved.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL, Redis, redis-server and nginx: scripts/test provides them"]
async fn a_client_through_nginx_talks_with_clients_on_every_node() {
    let cluster = Cluster::new().await;
    let nodes: Vec<Server> = (0..3).map(|_| cluster.node(&[])).collect();
    let nginx = Nginx::start(&nodes.iter().collect::<Vec<_>>());
    let ready = http_get(nginx.addr, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);

    let mut direct = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let mut c = node.client(&format!("direct{n}")).await;
        c.join("via-nginx").await;
        direct.push(c);
    }
    let mut proxied = Client::connect_url(&format!("ws://{}/ws?name=proxied", nginx.addr)).await;
    let joined = proxied.join("via-nginx").await;
    assert_eq!(joined["members"].as_array().unwrap().len(), 4, "{joined}");
    let ack = proxied.say("via-nginx", "through nginx").await;
    assert_eq!(ack["seq"], 1, "{ack}");
    for c in direct.iter_mut() {
        let m = c.recv_until(|f| f["type"] == "message").await;
        assert_eq!(m["text"], "through nginx");
    }
    let ack = direct[2].say("via-nginx", "to the proxied client").await;
    let m = proxied
        .recv_until(|f| f["type"] == "message" && f["seq"] == ack["seq"])
        .await;
    assert_eq!(m["text"], "to the proxied client");

    // Socket.IO long-polling goes through too (the handshake).
    let polling = http_get(nginx.addr, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(polling.status, 200, "{}", polling.body);
    assert!(polling.body.starts_with("0{"), "{}", polling.body);
}

/// An API call to one node: the status and the JSON body (`Null` for none).
async fn node_api(node: &Server, method: &str, path: &str) -> (u16, Value) {
    let response = http_request(node.addr, method, path, &[], None).await;
    let body = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    (response.status, body)
}

#[tokio::test]
#[ignore = "needs PostgreSQL, Redis, redis-server and nginx: scripts/test provides them"]
async fn a_ban_made_on_one_node_is_enforced_on_every_node_even_one_started_after_it() {
    let cluster = Cluster::new().await;
    let flags = ["--presence-delay-ms", "0"];
    let node_a = cluster.node(&flags);
    let node_b = cluster.node(&flags);
    // Mallory and alice on node B, the operator on node A.
    let mut mallory = node_b.client("mallory").await;
    let id = mallory.user_id().to_owned();
    let guest = format!(
        "name=mallory&guest={}",
        mallory.welcome["guest_token"]
            .as_str()
            .expect("a guest credential")
    );
    let mut alice = node_b.client("alice").await;
    let mut carol = node_a.client("carol").await;
    for c in [&mut carol, &mut alice, &mut mallory] {
        c.join("general").await;
    }
    mallory.join("random").await;

    // A room ban through node A takes mallory out on node B.
    let (status, ban) = node_api(&node_a, "PUT", &format!("/api/rooms/general/bans/{id}")).await;
    assert_eq!(status, 200, "{ban}");
    let notice = mallory.recv_until(|f| f["type"] == "error").await;
    assert_eq!(
        (&notice["code"], &notice["room"]),
        (&json!("forbidden"), &json!("general")),
        "{notice}"
    );
    for c in [&mut alice, &mut carol] {
        let left = c
            .recv_until(|f| f["type"] == "presence" && f["event"] == "leave")
            .await;
        assert_eq!(left["user"]["id"], json!(id), "{left}");
    }
    // Node B refuses the way back in, on this connection and a new one.
    let again = mallory
        .request(json!({"type": "join", "room": "general"}))
        .await;
    assert_eq!(
        (&again["type"], &again["code"]),
        (&json!("error"), &json!("forbidden"))
    );
    let mut second = Client::connect_url(&node_b.ws_url(&guest)).await;
    let refused = second
        .request(json!({"type": "join", "room": "general"}))
        .await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    assert_eq!(mallory.say("random", "still here").await["type"], "ack");

    // A node started after the ban enforces it from the store.
    let node_c = cluster.node(&flags);
    let mut third = Client::connect_url(&node_c.ws_url(&guest)).await;
    let refused = third
        .request(json!({"type": "join", "room": "general"}))
        .await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    drop(third);

    // Lifted through node C: node B lets mallory back in.
    let path = format!("/api/rooms/general/bans/{id}");
    assert_eq!(node_api(&node_c, "DELETE", &path).await.0, 204);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = second
            .request(json!({"type": "join", "room": "general"}))
            .await;
        if answer["type"] == "joined" {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A server ban through node A closes mallory's connections on node B,
    // and node B refuses the upgrade.
    let (status, _) = node_api(&node_a, "PUT", &format!("/api/bans/{id}")).await;
    assert_eq!(status, 200);
    for c in [&mut mallory, &mut second] {
        let (frames, ended) = c.recv_until_end(RECV_TIMEOUT).await;
        assert_eq!(
            frames.last().map(|f| &f["message"]),
            Some(&json!("you are banned from this server")),
            "{frames:?}"
        );
        assert_eq!(ended, Ended::Close(Some(1008)));
    }
    for node in [&node_a, &node_b, &node_c] {
        let refused = node.get(&format!("/ws?{guest}")).await;
        assert_eq!(refused.status, 403, "{}: {refused:?}", node.addr);
    }
    let node_d = cluster.node(&flags);
    assert_eq!(node_d.get(&format!("/ws?{guest}")).await.status, 403);
    alice.assert_alive().await;
}

#[test]
fn redis_url_with_sqlite_is_refused_at_start_up() {
    let failure = Server::start_failure(&["--redis-url", "redis://127.0.0.1:6379/"]);
    assert!(!failure.status.success());
    assert!(
        failure.stderr.contains("cluster mode needs database_url"),
        "{}",
        failure.stderr
    );
    let failure = Server::start_failure(&["--redis-prefix", "x:"]);
    assert!(
        failure.stderr.contains("need redis_url"),
        "{}",
        failure.stderr
    );
}

/// A node that dies between its commit and its publish leaves a message
/// no node was told about: the next message of the room reveals the hole,
/// and every node fills it from the store, in order.
#[tokio::test]
#[ignore = "needs PostgreSQL, Redis, redis-server and nginx: scripts/test provides them"]
async fn a_message_committed_but_never_published_is_filled_from_the_store() {
    const ROOM: &str = "hole";
    let cluster = Cluster::new().await;
    let node_a = cluster.node(&[]);
    let node_b = cluster.node(&[]);
    let mut reader_a = node_a.client("reader-a").await;
    reader_a.join(ROOM).await;
    let mut reader_b = node_b.client("reader-b").await;
    reader_b.join(ROOM).await;
    let mut writer = node_a.client("writer").await;
    writer.join(ROOM).await;
    assert_eq!(writer.say(ROOM, "one").await["seq"], 1);

    // What a node killed right after its commit leaves behind.
    let (client, connection) = tokio_postgres::connect(&cluster.db_url, NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "SET search_path TO \"{schema}\";
             BEGIN;
             UPDATE rooms SET seq = 2 WHERE name = '{ROOM}';
             INSERT INTO messages (room, seq, id, user_id, user_name, text, ts)
                 VALUES ('{ROOM}', 2, 'ghost', 'u_ghost', 'ghost', 'committed, never published', {ts});
             COMMIT;",
            schema = cluster.schema,
            ts = now_ms(),
        ))
        .await
        .expect("insert the unpublished message");

    assert_eq!(writer.say(ROOM, "three").await["seq"], 3);
    for (who, c) in [
        ("reader on node A", &mut reader_a),
        ("reader on node B", &mut reader_b),
    ] {
        let got = messages_through(c, &[ROOM], 3).await;
        assert_gapless(who, ROOM, &got[ROOM], 3);
        assert_eq!(got[ROOM][1]["text"], "committed, never published", "{who}");
    }
    let metrics = node_b.get("/metrics").await.body;
    assert!(
        metric_value(&metrics, "chat_cluster_caught_up_messages_total").is_some_and(|v| v >= 1.0),
        "{metrics}"
    );
}

/// `GET /api/admin/nodes` of `node`, polled until `done` holds (10 s).
async fn nodes_until(node: &Server, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = node.get("/api/admin/nodes").await;
        assert_eq!(response.status, 200, "{response:?}");
        let answer: Value = serde_json::from_str(&response.body).expect("JSON");
        let nodes = answer["nodes"].as_array().expect("nodes").clone();
        if done(&nodes) {
            return nodes;
        }
        assert!(
            Instant::now() < deadline,
            "nodes never got there: {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node's id in the cluster, as its dashboard says.
async fn node_id(node: &Server) -> String {
    let stats: Value = serde_json::from_str(&node.get("/api/admin/stats").await.body).unwrap();
    stats["node"].as_str().unwrap().to_owned()
}

#[tokio::test]
#[ignore = "needs PostgreSQL, Redis, redis-server and nginx: scripts/test provides them"]
async fn the_dashboard_lists_every_node_and_a_stopped_one_goes_away() {
    let cluster = Cluster::new().await;
    let node_a = cluster.node(&[]);
    let mut node_b = cluster.node(&[]);
    let _carol = node_b.client("carol").await;
    let (a, b) = (node_id(&node_a).await, node_id(&node_b).await);
    let both = nodes_until(&node_a, |nodes| {
        nodes.len() == 2
            && nodes
                .iter()
                .any(|n| n["id"] == b.as_str() && n["connections"] == 1)
    })
    .await;
    for node in &both {
        assert_eq!(
            (&node["ready"], &node["stale"]),
            (&json!(true), &json!(false)),
            "{node}"
        );
        assert_eq!(node["health"], "ready");
    }
    let address_of_b = both.iter().find(|n| n["id"] == b.as_str()).unwrap()["address"].clone();
    assert_eq!(address_of_b, node_b.addr.to_string());
    // B's view is the same cluster.
    nodes_until(&node_b, |nodes| nodes.iter().any(|n| n["id"] == a.as_str())).await;

    node_b.kill9();
    let stopped = Instant::now();
    // Not heard from for a node TTL: stale, then gone once its key expires.
    nodes_until(&node_a, |nodes| {
        nodes
            .iter()
            .any(|n| n["id"] == b.as_str() && n["stale"] == true)
    })
    .await;
    let alone = nodes_until(&node_a, |nodes| nodes.len() == 1).await;
    assert_eq!(alone[0]["id"], a.as_str());
    eprintln!("a stopped node left the list after {:?}", stopped.elapsed());
    let left = redis_keys(&cluster, &format!("dashboard:node:{b}")).await;
    assert!(left.is_empty(), "{left:?}");
}
