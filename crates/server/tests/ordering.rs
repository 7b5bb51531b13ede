//! Ordering guarantees (docs/protocol.md §4, "Guarantees"): per-room seq
//! 1, 2, 3, … without gaps or repeats, delivered in order, the same order to
//! every member; `join` + `since` resumes with nothing lost.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::*;
use serde_json::{Value, json};

const ROOM: &str = "arena";
const SENDERS: usize = 30;
const PER_SENDER: usize = 20;
const RECEIVERS: usize = 4;
const TOTAL: u64 = (SENDERS * PER_SENDER) as u64;

/// What one connection saw: the room's messages in arrival order, and the
/// acks for its own sends (by client id).
struct Seen {
    messages: Vec<Value>,
    acks: HashMap<String, Value>,
}

/// Sends `texts` with ids (if any), then reads until every ack and the
/// room's messages through `TOTAL` have arrived. Presence frames from
/// late joiners are skipped.
async fn send_and_collect(mut c: Client, sends: Vec<(String, String)>) -> Seen {
    for (id, text) in &sends {
        c.send_json(&json!({"type": "send", "room": ROOM, "text": text, "id": id, "ref": id}))
            .await;
    }
    let mut seen = Seen {
        messages: Vec::new(),
        acks: HashMap::new(),
    };
    while seen.acks.len() < sends.len() || (seen.messages.len() as u64) < TOTAL {
        let frame = c.recv_json().await;
        match frame["type"].as_str() {
            Some("message") => seen.messages.push(frame),
            Some("ack") => {
                let id = frame["id"].as_str().unwrap().to_owned();
                assert!(
                    seen.acks.insert(id, frame.clone()).is_none(),
                    "two acks: {frame}"
                );
            }
            Some("presence") => {}
            _ => panic!("unexpected frame while sending: {frame}"),
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_senders_every_member_sees_one_gapless_order() {
    // 20 sends per connection fit in the default burst of 40.
    let server = Server::start(&[]);

    // Everybody joins before anybody sends, so every member must see all 600.
    let mut members = Vec::new();
    for i in 0..SENDERS + RECEIVERS {
        let mut c = server.client(&format!("member-{i}")).await;
        let joined = c.join(ROOM).await;
        assert_eq!(joined["seq"], 0);
        members.push(c);
    }

    let mut tasks = Vec::new();
    for (i, c) in members.into_iter().enumerate() {
        let sends: Vec<(String, String)> = if i < SENDERS {
            (0..PER_SENDER)
                .map(|j| (format!("s{i}-{j}"), format!("message {j} from sender {i}")))
                .collect()
        } else {
            Vec::new() // a pure receiver
        };
        tasks.push(tokio::spawn(send_and_collect(c, sends)));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.expect("member task panicked"));
    }

    // Every member: seq 1..=600 exactly once, in order.
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(
            seqs(&s.messages),
            (1..=TOTAL).collect::<Vec<_>>(),
            "member {i}"
        );
    }
    // The same order, with the same content, for all.
    let reference = &seen[0].messages;
    for (i, s) in seen.iter().enumerate().skip(1) {
        assert_eq!(
            &s.messages, reference,
            "member {i} saw a different order or content"
        );
    }
    // All 600 sends are there once each, and each ack names its message's seq.
    let ids: BTreeSet<&str> = reference
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), TOTAL as usize, "ids repeated or missing");
    let by_id: HashMap<&str, &Value> = reference
        .iter()
        .map(|m| (m["id"].as_str().unwrap(), m))
        .collect();
    for s in &seen[..SENDERS] {
        assert_eq!(s.acks.len(), PER_SENDER);
        for (id, ack) in &s.acks {
            let msg = by_id
                .get(id.as_str())
                .unwrap_or_else(|| panic!("acked {id} never broadcast"));
            assert_eq!(ack["seq"], msg["seq"], "{id}");
            assert_eq!(ack["ts"], msg["ts"], "{id}");
        }
    }
    // The stored history agrees with what was delivered.
    let mut reader = server.client("late").await;
    let joined = reader.join_since(ROOM, 0).await;
    let stored = joined["messages"].as_array().unwrap();
    assert_eq!(msg_cores(stored), msg_cores(reference));
}

#[tokio::test]
async fn resume_with_since_gets_exactly_the_missed_messages() {
    let server = Server::start(NO_RATE_LIMIT);
    let mut writer = server.client("writer").await;
    writer.join(ROOM).await;

    let mut reader = server.client("reader").await;
    reader.join(ROOM).await;
    writer.fill_room(ROOM, 20).await;

    // The reader has processed up to seq 10 when its connection drops;
    // 11..=20 are still in flight to it and are lost with the connection.
    let got = reader.recv_messages_through(ROOM, 10).await;
    assert_eq!(seqs(&got), (1..=10).collect::<Vec<_>>());
    drop(reader);

    // More traffic while it is away.
    let frames = (21..=40)
        .map(|i| json!({"type": "send", "room": ROOM, "text": format!("msg {i}")}))
        .collect();
    writer.pipeline(frames).await;

    let mut reader = server.client("reader").await;
    let joined = reader.join_since(ROOM, 10).await;
    assert_eq!(joined["seq"], 40);
    assert_eq!(joined["complete"], true);
    assert_eq!(message_seqs(&joined), (11..=40).collect::<Vec<_>>());
    for m in joined["messages"].as_array().unwrap() {
        assert_eq!(m["text"], format!("msg {}", m["seq"]), "{m}");
    }

    // Live delivery continues right after the resumed range: nothing twice.
    writer.say(ROOM, "msg 41").await;
    let next = reader.recv_until(|f| f["type"] == "message").await;
    assert_eq!(next["seq"], 41);
}
