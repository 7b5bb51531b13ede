//! "An ack means the message is stored: it survives a crash or `kill -9` of
//! the server right after the ack" (shared/protocol-v1.md "Guarantees"),
//! and client ids keep sends idempotent across the restart.

mod common;

use std::collections::HashMap;

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
