//! Every frame type of the native protocol on /ws, happy paths
//! (docs/protocol.md §3, "Frames").

mod common;

use common::*;
use serde_json::{Value, json};

/// Asserts a message object (a broadcast, or an entry of `joined`/`history`,
/// which may leave out `type` and `room`) carries what the contract lists.
fn assert_message(msg: &Value, room: &str, seq: u64, from: &Value, text: &str) {
    if let Some(t) = msg.get("type") {
        assert_eq!(t, "message", "{msg}");
    }
    if let Some(r) = msg.get("room") {
        assert_eq!(r, room, "{msg}");
    }
    assert_eq!(msg["seq"], seq, "{msg}");
    assert!(
        msg["id"].as_str().is_some_and(|s| !s.is_empty()),
        "message id: {msg}"
    );
    assert_eq!(&msg["from"], from, "{msg}");
    assert_eq!(msg["text"], text, "{msg}");
    assert_ts(&msg["ts"]);
}

fn is_message(f: &Value) -> bool {
    f["type"] == "message"
}

#[tokio::test]
async fn welcome_names_session_and_user() {
    let server = Server::start(&[]);

    let alice = server.client("alice").await;
    let w = &alice.welcome;
    assert!(w["session"].as_str().unwrap().starts_with("s_"), "{w}");
    assert!(w["user"]["id"].as_str().unwrap().starts_with("u_"), "{w}");
    assert_eq!(w["user"]["name"], "alice");
    assert_eq!(w["heartbeat_ms"], 25000, "default heartbeat: {w}");
    assert!(w["text"].is_string(), "{w}");

    // Without ?name= the server picks `guest-NNNN`; each connection is its own user.
    let guest = Client::connect_anonymous(&server).await;
    let name = guest.user()["name"].as_str().unwrap();
    let digits = name
        .strip_prefix("guest-")
        .unwrap_or_else(|| panic!("{name}"));
    assert!(
        !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()),
        "{name}"
    );
    assert_ne!(guest.user_id(), alice.user_id());
    assert_ne!(guest.welcome["session"], alice.welcome["session"]);

    // Two connections with the same name are still two users in anonymous mode.
    let alice2 = server.client("alice").await;
    assert_ne!(alice2.user_id(), alice.user_id());
}

#[tokio::test]
async fn join_replies_joined_with_members_and_seq() {
    let server = Server::start(&[]);
    let mut alice = server.client("alice").await;

    alice
        .send_json(&json!({"type": "join", "room": "general", "ref": 1}))
        .await;
    let joined = alice.recv_json().await;
    assert_eq!(joined["type"], "joined");
    assert_eq!(joined["ref"], 1);
    assert_eq!(joined["room"], "general");
    assert_eq!(joined["seq"], 0, "empty room: {joined}");
    assert_eq!(joined["members"], json!([alice.user().clone()]));
    assert_eq!(joined["messages"], json!([]));
    assert_eq!(joined["complete"], true);

    // A second member sees both; the first is told with a presence frame,
    // the joiner itself gets no presence about itself.
    let mut bob = server.client("bob").await;
    let joined = bob.join("general").await;
    let members = joined["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{joined}");
    assert!(members.contains(alice.user()) && members.contains(bob.user()));

    let presence = alice.recv_json().await;
    assert_eq!(
        presence,
        json!({"type": "presence", "room": "general", "event": "join", "user": bob.user().clone()})
    );

    // Non-ASCII room names are fine.
    let joined = bob.join("聊天室").await;
    assert_eq!(joined["room"], "聊天室");
    // Nobody else is in 聊天室 and bob is told nothing about himself.
    let frames = bob.frames_before_pong().await;
    assert!(
        !frames.iter().any(|f| f["type"] == "presence"),
        "{frames:?}"
    );
}

#[tokio::test]
async fn rejoin_has_same_shape_and_no_second_presence() {
    let server = Server::start(&[]);
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.join("r").await;
    bob.join("r").await;
    let first = alice.recv_until(|f| f["type"] == "presence").await;
    assert_eq!(first["event"], "join");
    alice.say("r", "one").await;

    let again = bob.join("r").await;
    for key in ["ref", "room", "seq", "members", "messages", "complete"] {
        assert!(
            again.get(key).is_some(),
            "re-join reply lacks {key}: {again}"
        );
    }
    assert_eq!(again["seq"], 1);
    assert_eq!(again["members"].as_array().unwrap().len(), 2);
    assert_eq!(message_seqs(&again), vec![1]);

    // Anything the re-join made the server tell alice is queued before a
    // message bob sends afterwards: there must be no second presence.
    bob.say("r", "after rejoin").await;
    let frames = alice
        .recv_all_until(|f| is_message(f) && f["text"] == "after rejoin")
        .await;
    assert!(
        !frames.iter().any(|f| f["type"] == "presence"),
        "no second presence join for bob: {frames:?}"
    );
}

#[tokio::test]
async fn join_without_since_returns_latest_50() {
    let server = Server::start(NO_RATE_LIMIT);
    let mut writer = server.client("writer").await;
    writer.join("busy").await;
    writer.fill_room("busy", 60).await;

    let mut reader = server.client("reader").await;
    let joined = reader.join("busy").await;
    assert_eq!(joined["seq"], 60);
    assert_eq!(message_seqs(&joined), (11..=60).collect::<Vec<_>>());
    assert_eq!(joined["complete"], true);
    let first = &joined["messages"][0];
    assert_message(first, "busy", 11, writer.user(), "msg 11");
}

#[tokio::test]
async fn join_since_returns_exactly_the_missed_messages() {
    let server = Server::start(NO_RATE_LIMIT);
    let mut writer = server.client("writer").await;
    writer.join("r").await;
    writer.fill_room("r", 60).await;

    let mut reader = server.client("reader").await;
    let joined = reader.join_since("r", 5).await;
    assert_eq!(joined["seq"], 60);
    assert_eq!(message_seqs(&joined), (6..=60).collect::<Vec<_>>());
    assert_eq!(joined["complete"], true);

    let joined = reader.join_since("r", 60).await;
    assert_eq!(joined["messages"], json!([]), "nothing missed");
    assert_eq!(joined["complete"], true);

    // since=0 on an empty room.
    let joined = reader.join_since("empty", 0).await;
    assert_eq!(joined["seq"], 0);
    assert_eq!(joined["messages"], json!([]));
}

#[tokio::test]
async fn join_since_caps_at_1000_and_says_incomplete() {
    let server = Server::start(NO_RATE_LIMIT);
    let mut writer = server.client("writer").await;
    writer.join("big").await;
    writer.fill_room("big", 1010).await;

    let mut reader = server.client("reader").await;
    let joined = reader.join_since("big", 0).await;
    assert_eq!(joined["seq"], 1010);
    assert_eq!(
        joined["complete"], false,
        "1010 missed, at most 1000 returned"
    );
    assert_eq!(message_seqs(&joined), (1..=1000).collect::<Vec<_>>());

    // The client pages the rest with history.
    let rest = reader
        .history(json!({"room": "big", "after": 1000, "limit": 200}))
        .await;
    assert_eq!(message_seqs(&rest), (1001..=1010).collect::<Vec<_>>());
    assert_eq!(rest["more"], false);
}

#[tokio::test]
async fn leave_replies_left_and_stops_delivery() {
    let server = Server::start(&[]);
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.join("r").await;
    bob.join("r").await;

    bob.send_json(&json!({"type": "leave", "room": "r", "ref": "L1"}))
        .await;
    let left = bob.recv_until(|f| f["ref"] == "L1").await;
    assert_eq!(left, json!({"type": "left", "ref": "L1", "room": "r"}));

    let presence = alice
        .recv_until(|f| f["type"] == "presence" && f["event"] == "leave")
        .await;
    assert_eq!(
        presence,
        json!({"type": "presence", "room": "r", "event": "leave", "user": bob.user().clone()})
    );

    // Leaving is idempotent.
    let again = bob.leave("r").await;
    assert_eq!(again["room"], "r");
    let never = bob.leave("never-joined").await;
    assert_eq!(never["room"], "never-joined");

    // Bob no longer gets the room's messages, nor may he send to it.
    alice.say("r", "bob is gone").await;
    alice.recv_until(is_message).await;
    let frames = bob.frames_before_pong().await;
    assert!(!frames.iter().any(is_message), "{frames:?}");
    let reply = bob
        .request(json!({"type": "send", "room": "r", "text": "hi"}))
        .await;
    assert_eq!(reply["code"], "not_joined", "{reply}");
}

#[tokio::test]
async fn send_is_acked_then_broadcast_to_every_member() {
    let server = Server::start(&[]);
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.join("general").await;
    bob.join("general").await;

    let text = "hello 你好 👋";
    alice
        .send_json(
            &json!({"type": "send", "room": "general", "text": text, "id": "c-7f3a", "ref": 3}),
        )
        .await;
    // The ack comes before the sender's own copy of the broadcast.
    let frames = alice.recv_all_until(is_message).await;
    let ack = frames
        .iter()
        .find(|f| f["type"] == "ack")
        .unwrap_or_else(|| panic!("no ack before own broadcast: {frames:?}"));
    assert_eq!(ack["ref"], 3);
    assert_eq!(ack["room"], "general");
    assert_eq!(ack["id"], "c-7f3a");
    assert_eq!(ack["seq"], 1);
    assert_ts(&ack["ts"]);
    assert!(ack.get("duplicate").is_none_or(|d| d == false), "{ack}");

    let own = frames.last().unwrap();
    assert_message(own, "general", 1, alice.user(), text);
    assert_eq!(own["id"], "c-7f3a");
    assert_eq!(own["ts"], ack["ts"], "broadcast ts is the ack's ts");

    let theirs = bob.recv_until(is_message).await;
    assert_eq!(&theirs, own, "every member gets the same message object");

    // Without an id the server makes one, and reports it in ack and broadcast.
    let ack = alice.say("general", "no id").await;
    let id = ack["id"].as_str().expect("server-made id");
    assert!(!id.is_empty());
    assert_eq!(ack["seq"], 2);
    let msg = bob.recv_until(is_message).await;
    assert_eq!(msg["id"], id);
    assert_eq!(msg["seq"], 2);

    // Tabs, newlines and carriage returns are allowed control characters.
    let ack = alice.say("general", "a\tb\nc\r\nd").await;
    assert_eq!(ack["seq"], 3);
    let msg = bob.recv_until(is_message).await;
    assert_eq!(msg["text"], "a\tb\nc\r\nd");

    // A text of exactly the maximum length, counted in characters not bytes.
    let long = "你".repeat(4000);
    alice.say("general", &long).await;
    let msg = bob.recv_until(is_message).await;
    assert_eq!(msg["text"], long);
}

#[tokio::test]
async fn duplicate_id_acks_original_and_broadcasts_nothing() {
    let server = Server::start(&[]);
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.join("r").await;
    alice.join("other").await;
    bob.join("r").await;

    // Everything alice reads is logged, to count her own copies at the end.
    let mut alice_log = Vec::new();
    let send = |room: &str, text: &str, id: Option<&str>| {
        let mut f = json!({"type": "send", "room": room, "text": text});
        if let Some(id) = id {
            f["id"] = json!(id);
        }
        f
    };

    alice
        .request_logged(send("r", "before", None), &mut alice_log)
        .await;
    let first = alice
        .request_logged(send("r", "hello", Some("dup-1")), &mut alice_log)
        .await;
    assert_eq!(first["type"], "ack", "{first}");
    assert_eq!(first["seq"], 2);

    // The retry, even with a different text, stores and broadcasts nothing.
    let retry = alice
        .request_logged(send("r", "hello again", Some("dup-1")), &mut alice_log)
        .await;
    assert_eq!(retry["type"], "ack", "{retry}");
    assert_eq!(retry["duplicate"], true, "{retry}");
    assert_eq!(retry["seq"], first["seq"]);
    assert_eq!(retry["ts"], first["ts"]);
    assert_eq!(retry["id"], "dup-1");
    assert_eq!(retry["room"], "r");

    // The same id in another room is a different message.
    let elsewhere = alice
        .request_logged(send("other", "hello", Some("dup-1")), &mut alice_log)
        .await;
    assert!(
        elsewhere.get("duplicate").is_none_or(|d| d == false),
        "{elsewhere}"
    );
    assert_eq!(elsewhere["seq"], 1);

    // Seq continues without a gap: the duplicate used none.
    let next = alice
        .request_logged(send("r", "after", None), &mut alice_log)
        .await;
    assert_eq!(next["seq"], 3);
    alice_log.extend(
        alice
            .recv_all_until(|f| is_message(f) && f["text"] == "after")
            .await,
    );
    let bob_log = bob
        .recv_all_until(|f| is_message(f) && f["text"] == "after")
        .await;

    // Neither member saw a broadcast for the duplicate.
    let expected = vec![(1, "before"), (2, "hello"), (3, "after")];
    for log in [&alice_log, &bob_log] {
        let in_r: Vec<_> = log
            .iter()
            .filter(|f| is_message(f) && f["room"] == "r")
            .map(|f| (f["seq"].as_u64().unwrap(), f["text"].as_str().unwrap()))
            .collect();
        assert_eq!(in_r, expected);
    }

    let history = bob.history(json!({"room": "r"})).await;
    assert_eq!(message_seqs(&history), vec![1, 2, 3]);
}

#[tokio::test]
async fn history_pages_backwards_with_before_and_limit() {
    let server = Server::start(&[]);
    let mut writer = server.client("writer").await;
    writer.join("r").await;
    writer.fill_room("r", 30).await;

    // History does not require joining.
    let mut reader = server.client("reader").await;
    reader
        .send_json(&json!({"type": "history", "room": "r", "limit": 10, "ref": 4}))
        .await;
    let page = reader.recv_json().await;
    assert_eq!(page["type"], "history");
    assert_eq!(page["ref"], 4);
    assert_eq!(page["room"], "r");
    assert_eq!(message_seqs(&page), (21..=30).collect::<Vec<_>>());
    assert_eq!(page["more"], true);
    assert_message(&page["messages"][0], "r", 21, writer.user(), "msg 21");

    let page = reader
        .history(json!({"room": "r", "before": 21, "limit": 10}))
        .await;
    assert_eq!(message_seqs(&page), (11..=20).collect::<Vec<_>>());
    assert_eq!(page["more"], true);

    let page = reader
        .history(json!({"room": "r", "before": 11, "limit": 10}))
        .await;
    assert_eq!(message_seqs(&page), (1..=10).collect::<Vec<_>>());
    assert_eq!(page["more"], false);

    // Without limit: the default page holds everything here.
    let page = reader.history(json!({"room": "r"})).await;
    assert_eq!(message_seqs(&page), (1..=30).collect::<Vec<_>>());
    assert_eq!(page["more"], false);

    let page = reader.history(json!({"room": "empty"})).await;
    assert_eq!(page["messages"], json!([]));
    assert_eq!(page["more"], false);
}

#[tokio::test]
async fn history_limit_is_clamped_to_200() {
    let server = Server::start(NO_RATE_LIMIT);
    let mut writer = server.client("writer").await;
    writer.join("r").await;
    writer.fill_room("r", 250).await;

    let page = writer.history(json!({"room": "r", "limit": 500})).await;
    assert_eq!(message_seqs(&page), (51..=250).collect::<Vec<_>>());
    assert_eq!(page["more"], true);
}

#[tokio::test]
async fn history_after_pages_forwards() {
    let server = Server::start(&[]);
    let mut writer = server.client("writer").await;
    writer.join("r").await;
    writer.fill_room("r", 30).await;

    let page = writer
        .history(json!({"room": "r", "after": 0, "limit": 10}))
        .await;
    assert_eq!(message_seqs(&page), (1..=10).collect::<Vec<_>>());
    assert_eq!(page["more"], true, "newer ones exist");

    let page = writer
        .history(json!({"room": "r", "after": 25, "limit": 10}))
        .await;
    assert_eq!(message_seqs(&page), (26..=30).collect::<Vec<_>>());
    assert_eq!(page["more"], false);

    let page = writer
        .history(json!({"room": "r", "after": 30, "limit": 10}))
        .await;
    assert_eq!(page["messages"], json!([]));
    assert_eq!(page["more"], false);
}

#[tokio::test]
async fn typing_goes_to_every_other_member_only() {
    let server = Server::start(&[]);
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let mut carol = server.client("carol").await;
    let mut outsider = server.client("outsider").await;
    for c in [&mut alice, &mut bob, &mut carol] {
        c.join("r").await;
    }
    outsider.join("elsewhere").await;

    alice
        .send_json(&json!({"type": "typing", "room": "r"}))
        .await;
    let expected = json!({"type": "typing", "room": "r", "user": alice.user().clone()});
    for c in [&mut bob, &mut carol] {
        let typing = c.recv_until(|f| f["type"] == "typing").await;
        assert_eq!(typing, expected);
    }

    // Alice's typing would have been queued to her before her own later
    // message; it must not be there. Nor does anyone outside the room get it.
    alice.say("r", "done typing").await;
    let frames = alice.recv_all_until(is_message).await;
    assert!(!frames.iter().any(|f| f["type"] == "typing"), "{frames:?}");
    let frames = outsider.frames_before_pong().await;
    assert!(!frames.iter().any(|f| f["type"] == "typing"), "{frames:?}");
}

#[tokio::test]
async fn ping_gets_pong_with_ref_and_ts() {
    let server = Server::start(&[]);
    let mut c = server.client("pinger").await;

    c.send_json(&json!({"type": "ping", "ref": 5})).await;
    let pong = c.recv_json().await;
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["ref"], 5);
    assert_ts(&pong["ts"]);

    // String refs up to 64 characters are echoed verbatim.
    let r = "r".repeat(64);
    c.send_json(&json!({"type": "ping", "ref": r})).await;
    let pong = c.recv_json().await;
    assert_eq!(pong["ref"], r);

    // A ping without ref still gets a pong.
    c.send_json(&json!({"type": "ping"})).await;
    let pong = c.recv_json().await;
    assert_eq!(pong["type"], "pong");
}

#[tokio::test]
async fn presence_leave_when_a_member_drops() {
    let server = Server::start(&[]);
    let mut alice = server.client("alice").await;
    alice.join("r").await;

    let mut bob = server.client("bob").await;
    bob.join("r").await;
    let bob_user = bob.user().clone();
    let join = alice.recv_until(|f| f["type"] == "presence").await;
    assert_eq!(join["event"], "join");
    assert_eq!(join["user"], bob_user);

    // Dropping the connection without a leave or close handshake.
    drop(bob);
    let leave = alice.recv_until(|f| f["type"] == "presence").await;
    assert_eq!(
        leave,
        json!({"type": "presence", "room": "r", "event": "leave", "user": bob_user})
    );

    // A polite close also counts as leaving.
    let mut carol = server.client("carol").await;
    carol.join("r").await;
    let carol_user = carol.user().clone();
    alice
        .recv_until(|f| f["type"] == "presence" && f["event"] == "join")
        .await;
    carol.close().await;
    let leave = alice.recv_until(|f| f["type"] == "presence").await;
    assert_eq!(leave["event"], "leave");
    assert_eq!(leave["user"], carol_user);
}
