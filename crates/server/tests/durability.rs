//! An ack means the message is durable: it survives a crash or `kill -9` of
//! the server right after the ack (docs/protocol.md §4, "Guarantees", 3),
//! and client ids keep sends idempotent across the restart (§5.4).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const ROOMS: [&str; 4] = ["alpha", "beta", "gamma", "聊天室"];
const ACKED: usize = 200;
/// Sends still in flight when the server is killed: they may or may not be
/// stored, but must not break the gapless numbering.
const IN_FLIGHT: usize = 20;

fn send_frame(i: usize) -> Value {
    json!({
        "type": "send",
        "room": ROOMS[i % ROOMS.len()],
        "text": format!("durable {i} ✓"),
        "id": format!("d-{i}"),
    })
}

#[tokio::test]
async fn acked_messages_survive_kill_9_and_ids_stay_idempotent() {
    let mut server = Server::start(NO_RATE_LIMIT);
    let mut c = server.client("writer").await;
    for room in ROOMS {
        c.join(room).await;
    }

    let acks = c.pipeline((0..ACKED).map(send_frame).collect()).await;
    for ack in &acks {
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    // Keep the server busy with unacked sends, then crash it right away.
    for i in ACKED..ACKED + IN_FLIGHT {
        let mut frame = send_frame(i);
        frame["ref"] = json!(i);
        c.send_json(&frame).await;
    }
    server.kill9();
    drop(c);

    server.restart();
    let mut c = server.client("reader").await;
    let mut stored: HashMap<String, Value> = HashMap::new();
    for room in ROOMS {
        let joined = c.join_since(room, 0).await;
        assert_eq!(joined["complete"], true);
        let messages = joined["messages"].as_array().unwrap();
        let n = messages.len() as u64;
        assert_eq!(
            message_seqs(&joined),
            (1..=n).collect::<Vec<_>>(),
            "{room}: gapless"
        );
        assert_eq!(joined["seq"], n, "{room}: latest seq");
        for m in messages {
            stored.insert(m["id"].as_str().unwrap().to_owned(), m.clone());
        }
    }

    for (i, ack) in acks.iter().enumerate() {
        let id = format!("d-{i}");
        let m = stored
            .get(&id)
            .unwrap_or_else(|| panic!("acked message {id} (seq {}) lost", ack["seq"]));
        assert_eq!(m["seq"], ack["seq"], "{id}");
        assert_eq!(m["ts"], ack["ts"], "{id}");
        assert_eq!(m["text"], format!("durable {i} ✓"), "{id}");
        assert_eq!(ack["room"], ROOMS[i % ROOMS.len()], "{id}");
    }

    // Retrying every acked id after the restart (the reader has joined
    // every room) stores nothing new: the original ack comes back with
    // duplicate:true.
    let retries = c.pipeline((0..ACKED).map(send_frame).collect()).await;
    for (ack, retry) in acks.iter().zip(&retries) {
        assert_eq!(retry["type"], "ack", "{retry}");
        assert_eq!(retry["duplicate"], true, "{retry}");
        assert_eq!(retry["id"], ack["id"]);
        assert_eq!(retry["seq"], ack["seq"], "{retry}");
        assert_eq!(retry["ts"], ack["ts"], "{retry}");
    }

    // New messages continue after the last stored seq.
    let latest = c.join(ROOMS[0]).await["seq"].as_u64().unwrap();
    let ack = c.say(ROOMS[0], "after restart").await;
    assert_eq!(ack["seq"], latest + 1);
}

/// Sets the server process's soft limit on the size of the files it writes
/// (`RLIMIT_FSIZE`, with prlimit(2) from outside; the hard limit stays
/// unlimited, so it can be raised again). A write past it fails with EFBIG,
/// as one fails with ENOSPC on a full disk.
#[cfg(target_os = "linux")]
fn limit_file_size(server: &Server, bytes: libc::rlim_t) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit(2) on our own child's pid, reading only `limit`.
    let rc = unsafe {
        libc::prlimit(
            server.pid(),
            libc::RLIMIT_FSIZE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn send_with_id(room: &str, id: &str) -> Value {
    json!({"type": "send", "room": room, "text": format!("text of {id}"), "id": id})
}

/// Sends `n` messages one at a time while the disk is "full": each is
/// refused with `internal`, never acked. Returns their ids.
async fn sends_refused(c: &mut Client, room: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let reply = c.request(send_with_id(room, &id)).await;
        assert_eq!(
            reply["type"], "error",
            "a send was acked on a full disk: {reply}"
        );
        assert_eq!(reply["code"], "internal", "{reply}");
        ids.push(id);
    }
    ids
}

/// Hole 8 of issue 17: on a full disk every commit failed, yet `/readyz`
/// stayed 200 (its store check only reads) and the log got one ERROR line
/// per failed commit. The server's file size limit is lowered to zero from
/// outside, so every write of SQLite fails while reads still work.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn while_commits_fail_on_a_full_disk_the_node_is_unready_and_the_log_stays_short() {
    const ROOM: &str = "full";
    const FAILED: usize = 300;
    // The server inherits the ignored disposition: past its file size
    // limit a write fails with EFBIG instead of SIGXFSZ killing it.
    // SAFETY: signal(2) with SIG_IGN installs no handler.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let server = Server::start(NO_RATE_LIMIT);
    let mut c = server.client("writer").await;
    c.join(ROOM).await;
    c.say(ROOM, "stored before the disk filled up").await;
    assert_eq!(server.get("/readyz").await.status, 200);

    limit_file_size(&server, 0);
    let refused = sends_refused(&mut c, ROOM, "refused", FAILED).await;
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("commits are failing"), "{}", ready.body);
    // Without sends the committer probes with a commit of its own every
    // second; those fail too, and the store's read check passes: still 503.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    let metrics = server.get("/metrics").await.body;
    assert_eq!(
        metric_value(&metrics, "chat_store_commits_failing"),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metric_value(&metrics, "chat_store_commits_failed_total")
            .is_some_and(|n| n >= FAILED as f64),
        "{metrics}"
    );
    let errors = server.error_lines();
    assert!(
        !errors.is_empty() && errors.len() <= 3,
        "{FAILED} failed commits logged as {} ERROR lines:\n{}",
        errors.len(),
        errors.join("\n")
    );

    // Space again: the first commit makes the node ready, before its ack
    // is out. What was refused was not stored: its retry is new.
    limit_file_size(&server, libc::RLIM_INFINITY);
    let retry = c.request(send_with_id(ROOM, &refused[0])).await;
    assert_eq!(retry["type"], "ack", "{retry}");
    assert_ne!(
        retry["duplicate"], true,
        "a refused send was stored: {retry}"
    );
    assert_eq!(retry["seq"], 2, "{retry}");
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let metrics = server.get("/metrics").await.body;
    assert_eq!(
        metric_value(&metrics, "chat_store_commits_failing"),
        Some(0.0),
        "{metrics}"
    );
    assert!(
        server.stderr().contains("commits succeed again"),
        "no line tells the recovery"
    );

    // Full again, and freed with nobody sending: the committer's probe
    // commit makes the node ready within a few seconds.
    limit_file_size(&server, 0);
    sends_refused(&mut c, ROOM, "refused-again", 3).await;
    assert_eq!(server.get("/readyz").await.status, 503);
    limit_file_size(&server, libc::RLIM_INFINITY);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ready = server.get("/readyz").await;
        if ready.status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still not ready 10 s after the disk was freed: {}",
            ready.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        c.say(ROOM, "stored after the disk was freed").await["seq"],
        3
    );
}
