//! Every error code and the close codes for bad frames
//! (docs/protocol.md §3 "error", §6 "Limits", §7 "Error codes",
//! §8 "Close codes").
//!
//! An error frame never closes the connection: after each one we check a
//! ping still gets its pong.

mod common;

use common::*;
use serde_json::{Value, json};

/// A request and the error it must get: (raw text frame, code, ref the
/// error must carry; `None`: no ref field at all).
type Case = (String, &'static str, Option<Value>);

/// A JSON request whose error must echo the request's own ref.
fn case(frame: Value, code: &'static str) -> Case {
    let r = frame.get("ref").cloned();
    (frame.to_string(), code, r)
}

/// Sends the request and checks the reply; then that a ping still gets its
/// pong (an error never closes the connection). Nothing else happens on
/// these connections, so the next frame is the reply.
async fn check_error(c: &mut Client, (raw, code, r): &Case) -> Result<(), String> {
    c.send_raw(raw).await;
    let reply = c.recv_json().await;
    let right = reply["type"] == "error"
        && reply["code"] == *code
        && reply["message"].is_string()
        && reply.get("ref") == r.as_ref();
    c.assert_alive().await;
    if right {
        Ok(())
    } else {
        Err(format!(
            "{raw}\n    wanted error {code} with ref {r:?}\n    got {reply}"
        ))
    }
}

async fn expect_error(c: &mut Client, frame: Value, code: &'static str) {
    if let Err(e) = check_error(c, &case(frame, code)).await {
        panic!("{e}");
    }
}

/// Checks every case and reports all the wrong answers at once, so that one
/// does not hide the others.
async fn expect_errors(c: &mut Client, cases: impl IntoIterator<Item = Case>) {
    let mut wrong = Vec::new();
    for case in cases {
        if let Err(e) = check_error(c, &case).await {
            wrong.push(e);
        }
    }
    assert!(
        wrong.is_empty(),
        "{} request(s) answered wrongly:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// A connection joined to room "r", so that send checks are not masked by `not_joined`.
async fn joined_client(server: &Server) -> Client {
    let mut c = server.client("tester").await;
    c.join("r").await;
    c
}

#[tokio::test]
async fn bad_request_for_frames_that_are_not_requests() {
    let server = Server::start(&[]);
    let mut c = server.client("tester").await;

    let mut cases: Vec<Case> = ["hello", "{", "[1,2]", "42", "\"ping\"", "null"]
        .into_iter()
        // Not JSON, not an object: there is no ref to echo.
        .map(|raw| (raw.to_owned(), "bad_request", None))
        .collect();
    // Missing or non-string type, with a valid ref that the error carries.
    cases.push(case(json!({"ref": 1}), "bad_request"));
    cases.push(case(json!({"type": 5, "ref": 2}), "bad_request"));
    cases.push(case(json!({"type": null, "ref": "x"}), "bad_request"));
    expect_errors(&mut c, cases).await;
}

#[tokio::test]
async fn bad_request_for_an_invalid_ref_carries_no_ref() {
    let server = Server::start(&[]);
    let mut c = server.client("tester").await;
    let too_long = json!("r".repeat(65));
    let cases = [json!({}), json!([1]), json!(true), too_long]
        .into_iter()
        .map(|bad_ref| {
            (
                json!({"type": "ping", "ref": bad_ref}).to_string(),
                "bad_request",
                None,
            )
        });
    expect_errors(&mut c, cases).await;
    // `"ref": null` is what many encoders write for an absent option: it
    // counts as no ref, not as a bad one.
    c.send_json(&json!({"type": "ping", "ref": null})).await;
    let pong = c.recv_until(|f| f["type"] == "pong").await;
    assert!(pong.get("ref").is_none(), "{pong}");
}

#[tokio::test]
async fn bad_request_for_missing_or_ill_typed_fields() {
    let server = Server::start(&[]);
    let mut c = joined_client(&server).await;
    let cases = [
        json!({"type": "join", "ref": 1}),
        json!({"type": "join", "room": 5, "ref": 2}),
        json!({"type": "join", "room": "r", "since": -1, "ref": 3}),
        json!({"type": "join", "room": "r", "since": 1.5, "ref": 4}),
        json!({"type": "join", "room": "r", "since": "3", "ref": 5}),
        json!({"type": "leave", "room": 5, "ref": 6}),
        json!({"type": "send", "text": "hi", "ref": 7}),
        json!({"type": "send", "room": "r", "ref": 8}),
        json!({"type": "send", "room": "r", "text": 5, "ref": 9}),
        json!({"type": "send", "room": ["r"], "text": "hi", "ref": 10}),
        json!({"type": "history", "ref": 11}),
        json!({"type": "history", "room": "r", "limit": 0, "ref": 12}),
        json!({"type": "history", "room": "r", "limit": "x", "ref": 13}),
        json!({"type": "typing", "ref": 14}),
    ];
    expect_errors(&mut c, cases.map(|f| case(f, "bad_request"))).await;
}

#[tokio::test]
async fn bad_request_for_bad_text_or_id() {
    let server = Server::start(&[]);
    let mut c = joined_client(&server).await;
    let cases = [
        json!({"type": "send", "room": "r", "text": "", "ref": 1}),
        // Control characters other than \t \n \r are refused.
        json!({"type": "send", "room": "r", "text": "ding\u{7}", "ref": 2}),
        json!({"type": "send", "room": "r", "text": "nul\u{0}", "ref": 3}),
        json!({"type": "send", "room": "r", "text": "esc\u{1b}[0m", "ref": 4}),
        json!({"type": "send", "room": "r", "text": "hi", "id": "", "ref": 5}),
        json!({"type": "send", "room": "r", "text": "hi", "id": "i".repeat(65), "ref": 6}),
        json!({"type": "send", "room": "r", "text": "hi", "id": 5, "ref": 7}),
    ];
    expect_errors(&mut c, cases.map(|f| case(f, "bad_request"))).await;
    // Nothing was stored by the refused sends; an id of exactly 64 is fine.
    let ack = c.say_with_id("r", "hi", &"i".repeat(64)).await;
    assert_eq!(ack["seq"], 1);
}

#[tokio::test]
async fn unknown_type() {
    let server = Server::start(&[]);
    let mut c = server.client("tester").await;
    let cases = [
        json!({"type": "dance", "ref": 7}),
        json!({"type": "PING", "ref": "p"}),
        // Server-to-client types are not requests.
        json!({"type": "welcome", "ref": 8}),
    ];
    expect_errors(&mut c, cases.map(|f| case(f, "unknown_type"))).await;
}

#[tokio::test]
async fn invalid_room_names() {
    let server = Server::start(&[]);
    let mut c = joined_client(&server).await;
    let bad_names = [
        String::new(),
        "a".repeat(65),
        "聊".repeat(65),
        "a\u{1}b".to_owned(),
        "tab\there".to_owned(),
        "del\u{7f}".to_owned(),
        " general".to_owned(),
        "general ".to_owned(),
    ];
    let mut cases = Vec::new();
    for name in &bad_names {
        cases.push(case(
            json!({"type": "join", "room": name, "ref": "j"}),
            "invalid_room",
        ));
        cases.push(case(
            json!({"type": "leave", "room": name, "ref": "l"}),
            "invalid_room",
        ));
        let send = json!({"type": "send", "room": name, "text": "hi", "ref": "s"});
        cases.push(case(send, "invalid_room"));
    }
    expect_errors(&mut c, cases).await;

    // The limits themselves are accepted: 64 characters in any script.
    for good in [
        "a".repeat(64),
        "聊".repeat(64),
        "聊天室".to_owned(),
        "a b".to_owned(),
    ] {
        c.join(&good).await;
    }
}

#[tokio::test]
async fn too_long_counts_characters() {
    let server = Server::start(&[]);
    let mut c = joined_client(&server).await;
    let cases = ["a".repeat(4001), "你".repeat(4001), "👋".repeat(4001)].map(|text| {
        case(
            json!({"type": "send", "room": "r", "text": text, "ref": "long"}),
            "too_long",
        )
    });
    expect_errors(&mut c, cases).await;
    // 4000 four-byte characters is 16000 bytes but still within the limit.
    let ack = c.say("r", &"👋".repeat(4000)).await;
    assert_eq!(ack["seq"], 1);
}

#[tokio::test]
async fn not_joined_for_send_and_typing() {
    let server = Server::start(&[]);
    let mut c = server.client("tester").await;
    let send = json!({"type": "send", "room": "r", "text": "hi", "ref": 1});
    expect_error(&mut c, send, "not_joined").await;
    expect_error(
        &mut c,
        json!({"type": "typing", "room": "r", "ref": 2}),
        "not_joined",
    )
    .await;

    // Someone else being in the room does not make us a member.
    let mut other = server.client("other").await;
    other.join("r").await;
    let send = json!({"type": "send", "room": "r", "text": "hi", "ref": 3});
    expect_error(&mut c, send, "not_joined").await;
    let history = other.history(json!({"room": "r"})).await;
    assert_eq!(history["messages"], json!([]));
}

#[tokio::test]
async fn forbidden_beyond_max_rooms_per_connection() {
    let server = Server::start(&["--max-rooms-per-connection", "2"]);
    let mut c = server.client("tester").await;
    c.join("a").await;
    c.join("b").await;
    expect_error(
        &mut c,
        json!({"type": "join", "room": "c", "ref": 9}),
        "forbidden",
    )
    .await;

    // Re-joining a room already held does not count as a new one.
    c.join("a").await;
    // Leaving frees a place.
    c.leave("a").await;
    c.join("c").await;
    expect_error(
        &mut c,
        json!({"type": "join", "room": "a", "ref": 10}),
        "forbidden",
    )
    .await;

    // The limit is per connection.
    let mut other = server.client("other").await;
    other.join("a").await;
}

#[tokio::test]
async fn rate_limited_beyond_burst() {
    // Defaults: 20 sends a second, bursts of 40. 100 back-to-back sends
    // cannot all fit, however slowly the machine runs them.
    let server = Server::start(&[]);
    let mut c = joined_client(&server).await;
    let frames = (0..100)
        .map(|i| json!({"type": "send", "room": "r", "text": format!("m{i}")}))
        .collect();
    let replies = c.blast(frames).await;

    let acks: Vec<&Value> = replies.iter().filter(|f| f["type"] == "ack").collect();
    let limited: Vec<&Value> = replies
        .iter()
        .filter(|f| f["code"] == "rate_limited")
        .collect();
    assert_eq!(
        acks.len() + limited.len(),
        replies.len(),
        "only acks or rate_limited: {replies:?}"
    );
    assert!(
        acks.len() >= 40,
        "the burst of 40 is allowed, got {} acks",
        acks.len()
    );
    assert!(!limited.is_empty(), "100 sends at once must hit the limit");
    for e in &limited {
        assert_error(e, "rate_limited", Some(&e["ref"]));
        assert!(e["ref"].is_u64());
    }
    // Refused sends take no seq.
    let acked: Vec<u64> = acks.iter().map(|a| a["seq"].as_u64().unwrap()).collect();
    assert_eq!(acked, (1..=acks.len() as u64).collect::<Vec<_>>());

    c.assert_alive().await;
    // The bucket refills over time (this test is about time: a bounded wait).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    c.say("r", "later").await;
}

#[tokio::test]
async fn overloaded_and_internal_while_the_store_is_locked() {
    let server = Server::start(&[
        "--store-busy-timeout-ms",
        "200",
        "--max-pending-sends",
        "2",
        "--send-rate",
        "1000",
        "--send-burst",
        "1000",
    ]);
    let mut c = joined_client(&server).await;
    c.assert_alive().await;

    // Another process holds the write lock on the database.
    let db = rusqlite::Connection::open(server.db_path()).expect("open chat.db");
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE")
        .expect("take the write lock");

    let frames = (0..50)
        .map(|i| json!({"type": "send", "room": "r", "text": format!("m{i}")}))
        .collect();
    let replies = c.blast(frames).await;
    let count = |code: &str| replies.iter().filter(|f| f["code"] == code).count();
    assert_eq!(
        count("internal") + count("overloaded"),
        replies.len(),
        "nothing can be acked while the store is locked: {replies:?}"
    );
    assert!(
        count("internal") >= 1,
        "commits fail past the busy timeout: {replies:?}"
    );
    assert!(
        count("overloaded") >= 1,
        "at most 2 sends may wait for commit: {replies:?}"
    );
    for e in &replies {
        assert_error(e, e["code"].as_str().unwrap(), Some(&e["ref"]));
    }
    c.assert_alive().await;

    // Once the lock goes away the server recovers, without a gap in seq.
    db.execute_batch("ROLLBACK").unwrap();
    drop(db);
    assert_eq!(c.say("r", "after").await["seq"], 1);
    assert_eq!(c.say("r", "again").await["seq"], 2);
    let history = c.history(json!({"room": "r"})).await;
    assert_eq!(message_seqs(&history), vec![1, 2]);
}

#[tokio::test]
async fn binary_frame_closes_with_1003() {
    let server = Server::start(&[]);
    let mut c = server.client("tester").await;
    c.send_binary(b"{\"type\":\"ping\"}".to_vec()).await;
    c.expect_close(1003).await;

    // Only that connection is affected.
    server.client("other").await.assert_alive().await;
}

#[tokio::test]
async fn frame_over_64_kib_closes_with_1009() {
    let server = Server::start(&[]);
    let mut c = joined_client(&server).await;

    // Just under the frame limit: only the text is too long, an error not a close.
    let text = "你".repeat(20_000); // 60 000 bytes
    let frame = json!({"type": "send", "room": "r", "text": text, "ref": 1});
    assert!(frame.to_string().len() < 64 * 1024);
    expect_error(&mut c, frame, "too_long").await;

    let frame = json!({"type": "send", "room": "r", "text": "a".repeat(70_000), "ref": 2});
    c.send_json(&frame).await;
    c.expect_close(1009).await;

    server.client("other").await.assert_alive().await;
}
