//! Changes to messages in the room's sequence (docs/protocol.md §3,
//! "Changes"), end to end on `/ws` against the real binary: each edit,
//! deletion, reaction, reply and pin takes the room's next `seq`, is acked
//! after commit, is idempotent by `id`, reaches every member in order, is
//! held to the permissions (`forbidden`, `not_found`), and a client that
//! was away while they happened resumes to the state of one that stayed.
//!
//! Each scenario runs twice: on one node (SQLite), and on a cluster of
//! three nodes on PostgreSQL and Redis, its clients spread over the nodes
//! (ignored unless asked for: `scripts/test` provides the services).

mod common;

use common::cluster::Cluster;
use common::nodes::{Nodes, on_one_node_and_a_cluster};
use common::room::{entries_through, state_of};
use common::{Client, HttpResponse, Server, SocketIo, http_request};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

const SECRET: &str = "an HS256 secret of at least thirty-two bytes";

on_one_node_and_a_cluster!(
    each_change_takes_the_next_seq_and_reaches_every_member_in_order,
    a_retried_change_is_acked_again_as_a_duplicate_and_stored_once,
    members_change_their_own_messages_and_nothing_that_is_gone,
    a_member_away_during_changes_resumes_to_the_state_of_one_that_stayed,
    socket_io_members_change_messages_and_resume_like_native_ones,
);

async fn api(server: &Server, method: &str, path: &str, body: Option<Value>) -> HttpResponse {
    let text = body.map(|b| b.to_string());
    http_request(server.addr, method, path, &[], text.as_deref()).await
}

fn ack_seq(ack: &Value) -> u64 {
    assert_eq!(ack["type"], "ack", "{ack}");
    ack["seq"].as_u64().expect("an ack's seq")
}

fn error_code(reply: &Value) -> &str {
    assert_eq!(reply["type"], "error", "{reply}");
    reply["code"].as_str().expect("an error's code")
}

fn edit(seq: u64, text: &str) -> Value {
    json!({"type": "edit", "room": "r", "seq": seq, "text": text})
}

fn react(seq: u64, emoji: &str) -> Value {
    json!({"type": "react", "room": "r", "seq": seq, "emoji": emoji})
}

fn delete(seq: u64) -> Value {
    json!({"type": "delete", "room": "r", "seq": seq})
}

fn reply(to: u64, text: &str) -> Value {
    json!({"type": "send", "room": "r", "text": text, "reply_to": to})
}

async fn each_change_takes_the_next_seq_and_reaches_every_member_in_order(nodes: &Nodes) {
    let mut alice = Client::connect(nodes.at(1), "alice").await;
    let mut bob = Client::connect(nodes.at(2), "bob").await;
    // Only reads: a member's own requests skip the broadcasts they pass.
    let mut observer = Client::connect(nodes.at(3), "observer").await;
    alice.join("r").await;
    bob.join("r").await;
    observer.join("r").await;
    let first = ack_seq(&alice.say("r", "hello").await);
    assert_eq!(first, 1);
    assert_eq!(ack_seq(&alice.request(edit(1, "hello, world")).await), 2);
    assert_eq!(ack_seq(&bob.request(react(1, "👍")).await), 3);
    assert_eq!(ack_seq(&bob.request(reply(1, "hi alice")).await), 4);
    assert_eq!(ack_seq(&alice.request(react(4, "🎉")).await), 5);
    assert_eq!(
        ack_seq(
            &bob.request(
                json!({"type": "react", "room": "r", "seq": 1, "emoji": "👍", "remove": true})
            )
            .await
        ),
        6
    );

    let seen = entries_through("r", &mut observer, 6).await;
    let kinds: Vec<(&str, u64)> = seen
        .iter()
        .map(|f| (f["type"].as_str().unwrap(), f["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("message", 1),
            ("edited", 2),
            ("reaction", 3),
            ("message", 4),
            ("reaction", 5),
            ("reaction", 6)
        ]
    );
    assert_eq!(seen[1]["target"], 1);
    assert_eq!(seen[1]["text"], "hello, world");
    assert_eq!(
        seen[2]["reactions"],
        json!([{"emoji": "👍", "count": 1, "users": [bob.user()]}])
    );
    assert_eq!(seen[3]["reply_to"], 1);
    assert_eq!(seen[3]["quote"]["text"], "hello, world");
    assert_eq!(seen[3]["quote"]["from"], *alice.user());
    assert_eq!(seen[5]["remove"], true);
    assert_eq!(seen[5]["reactions"], json!([]));

    // A fresh join shows the messages in their current state.
    let mut carol = Client::connect(nodes.at(4), "carol").await;
    let joined = carol.join("r").await;
    assert_eq!(joined["seq"], 6);
    let messages = joined["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "the changes are not messages: {joined}");
    assert_eq!(messages[0]["text"], "hello, world");
    assert!(messages[0]["edited_at"].is_i64());
    assert!(messages[0].get("reactions").is_none(), "{joined}");
    assert_eq!(messages[1]["reactions"][0]["emoji"], "🎉");
    assert!(
        joined.get("events").is_none(),
        "no events without since: {joined}"
    );
    // History pages messages only, each as it is now.
    let page = carol.history(json!({"room": "r", "before": 5})).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
}

async fn a_retried_change_is_acked_again_as_a_duplicate_and_stored_once(nodes: &Nodes) {
    let mut alice = Client::connect(nodes.at(5), "alice").await;
    let mut bob = Client::connect(nodes.at(6), "bob").await;
    let mut carol = Client::connect(nodes.at(7), "carol").await;
    alice.join("r").await;
    bob.join("r").await;
    carol.join("r").await;
    alice.say("r", "typo").await;
    let mut with_id = edit(1, "fixed");
    with_id["id"] = json!("e-1");
    let first = alice.request(with_id.clone()).await;
    let again = alice.request(with_id).await;
    assert_eq!(ack_seq(&first), 2);
    assert_eq!((ack_seq(&again), &again["duplicate"]), (2, &json!(true)));
    // Adding a reaction one has is no new entry either.
    let added = ack_seq(&bob.request(react(1, "👍")).await);
    let twice = bob.request(react(1, "👍")).await;
    assert_eq!(
        (ack_seq(&twice), &twice["duplicate"]),
        (added, &json!(true))
    );
    alice.say("r", "after").await;
    let seen = entries_through("r", &mut carol, 4).await;
    let seqs: Vec<u64> = seen.iter().map(|f| f["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "each entry once, no gap");
}

async fn members_change_their_own_messages_and_nothing_that_is_gone(nodes: &Nodes) {
    let mut alice = Client::connect(nodes.at(8), "alice").await;
    let mut bob = Client::connect(nodes.at(9), "bob").await;
    alice.join("r").await;
    bob.join("r").await;
    alice.say("r", "mine").await;
    assert_eq!(
        error_code(&bob.request(edit(1, "yours now")).await),
        "forbidden"
    );
    assert_eq!(error_code(&bob.request(delete(1)).await), "forbidden");
    let pin = json!({"type": "pin", "room": "r", "seq": 1});
    assert_eq!(error_code(&alice.request(pin).await), "forbidden");
    assert_eq!(
        error_code(&bob.request(edit(9, "nothing")).await),
        "not_found"
    );
    assert_eq!(ack_seq(&alice.request(delete(1)).await), 2);
    for late in [
        edit(1, "too late"),
        react(1, "👍"),
        reply(1, "to nothing"),
        delete(1),
        react(2, "👍"),
    ] {
        assert_eq!(
            error_code(&bob.request(late.clone()).await),
            "not_found",
            "{late}"
        );
    }
    // Bad requests are refused before anything is stored.
    let no_seq = json!({"type": "edit", "room": "r", "text": "x"});
    assert_eq!(error_code(&bob.request(no_seq).await), "bad_request");
    assert_eq!(
        error_code(&bob.request(react(1, "two words")).await),
        "bad_request"
    );
    let mut stranger = Client::connect(nodes.at(10), "stranger").await;
    assert_eq!(
        error_code(&stranger.request(react(1, "👍")).await),
        "not_joined"
    );
    // Refusals took no seq: the next entry is 3.
    assert_eq!(ack_seq(&alice.say("r", "next").await), 3);
}

fn token(sub: &str, claims: Value) -> String {
    let mut all = json!({"sub": sub, "exp": jsonwebtoken::get_current_timestamp() + 300});
    all.as_object_mut()
        .unwrap()
        .extend(claims.as_object().unwrap().clone());
    jsonwebtoken::encode(
        &Header::default(),
        &all,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign a token")
}

/// The arguments of a node that checks tokens with [`SECRET`], kept in a
/// file of `dir`.
fn token_args(dir: &tempfile::TempDir) -> [String; 2] {
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    ["--jwt-secret-file".into(), secret.to_str().unwrap().into()]
}

#[tokio::test]
async fn a_moderator_token_changes_anyone_s_messages_within_its_rooms_on_one_node() {
    let dir = tempfile::tempdir().unwrap();
    let args = token_args(&dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    a_moderator_token_changes_anyone_s_messages(&Nodes::one(&args)).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis: scripts/test provides them"]
async fn a_moderator_token_changes_anyone_s_messages_within_its_rooms_on_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let args = token_args(&dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cluster = Cluster::new().await;
    a_moderator_token_changes_anyone_s_messages(&Nodes::cluster(&cluster, &args)).await;
}

async fn a_moderator_token_changes_anyone_s_messages(nodes: &Nodes) {
    let mut next_node = 0;
    let mut connect = |sub: &str, claims: Value| {
        next_node += 1;
        let url = nodes
            .at(next_node)
            .ws_url(&format!("token={}", token(sub, claims)));
        async move { Client::connect_url(&url).await }
    };
    let mut alice = connect("alice", json!({})).await;
    let mut moderator = connect("mod", json!({"role": "moderator", "rooms": ["r"]})).await;
    let mut bob = connect("bob", json!({})).await;
    alice.join("r").await;
    alice.join("elsewhere").await;
    moderator.join("r").await;
    bob.join("r").await;
    alice.say("r", "spam").await;
    alice.say("elsewhere", "out of reach").await;
    assert_eq!(ack_seq(&moderator.request(edit(1, "[removed]")).await), 2);
    let pin = json!({"type": "pin", "room": "r", "seq": 1});
    assert_eq!(ack_seq(&moderator.request(pin).await), 3);
    assert_eq!(ack_seq(&moderator.request(delete(1)).await), 4);
    let elsewhere = json!({"type": "delete", "room": "elsewhere", "seq": 1});
    assert_eq!(error_code(&moderator.request(elsewhere).await), "forbidden");
    let seen = entries_through("r", &mut bob, 4).await;
    assert_eq!(seen[3]["type"], "deleted");
    assert_eq!(seen[3]["from"]["id"], "mod");
    let joined = alice.join("r").await;
    assert!(
        joined.get("pins").is_none(),
        "a deleted message is unpinned: {joined}"
    );
    // An unknown role is refused at the upgrade.
    let url = nodes
        .at(0)
        .ws_url(&format!("token={}", token("x", json!({"role": "admin"}))));
    let (status, _) = common::upgrade_refusal(url, None).await;
    assert_eq!(status, 401);
}

/// Everything that can change a room, from two people and the API;
/// returns the seqs of its four messages.
async fn churn(alice: &mut Client, bob: &mut Client, server: &Server) -> [u64; 4] {
    let mut said = [0; 4];
    for (seq, text) in said.iter_mut().zip(["one", "two", "three", "four"]) {
        *seq = ack_seq(&alice.say("r", text).await);
    }
    let [one, two, three, four] = said;
    ack_seq(&alice.request(edit(one, "one, edited")).await);
    ack_seq(&bob.request(react(one, "👍")).await);
    ack_seq(&alice.request(react(one, "👍")).await);
    ack_seq(&bob.request(reply(two, "re: two")).await);
    ack_seq(
        &alice
            .request(edit(two, "two, edited after the reply"))
            .await,
    );
    ack_seq(&alice.request(delete(three)).await);
    ack_seq(&bob.request(react(two, "😂")).await);
    for (method, seq) in [("PUT", two), ("PUT", four), ("DELETE", four)] {
        let pin = api(server, method, &format!("/api/rooms/r/pins/{seq}"), None).await;
        assert_eq!(pin.status, 200, "{pin:?}");
    }
    let unreact = json!({"type": "react", "room": "r", "seq": one, "emoji": "👍", "remove": true});
    ack_seq(&bob.request(unreact).await);
    ack_seq(&alice.request(edit(four, "four, edited")).await);
    let moderated = api(
        server,
        "PATCH",
        &format!("/api/rooms/r/messages/{one}"),
        Some(json!({"text": "one, moderated"})),
    )
    .await;
    assert_eq!(moderated.status, 200, "{moderated:?}");
    ack_seq(&bob.request(reply(one, "re: one")).await);
    said
}

async fn a_member_away_during_changes_resumes_to_the_state_of_one_that_stayed(nodes: &Nodes) {
    let mut alice = Client::connect(nodes.at(11), "alice").await;
    let mut bob = Client::connect(nodes.at(12), "bob").await;
    let mut carol = Client::connect(nodes.at(13), "carol").await;
    let mut observer = Client::connect(nodes.at(14), "observer").await;
    let mut stayed = vec![observer.join("r").await];
    bob.join("r").await;
    alice.join("r").await;
    let mut away = vec![carol.join("r").await];
    alice.say("r", "before carol left").await;
    away.extend(entries_through("r", &mut carol, 1).await);
    drop(carol);

    let [_, two, three, _] = churn(&mut alice, &mut bob, nodes.at(2)).await;
    let latest = ack_seq(&alice.say("r", "the last word").await);
    stayed.extend(entries_through("r", &mut observer, latest).await);

    let mut carol = Client::connect(nodes.at(15), "carol").await;
    away.push(carol.join_since("r", 1).await);
    let resumed = away.last().unwrap();
    assert_eq!(resumed["complete"], true);
    assert!(
        !resumed["events"].as_array().unwrap().is_empty(),
        "{resumed}"
    );

    let mut dave = Client::connect(nodes.at(16), "dave").await;
    let fresh = state_of("r", &[dave.join("r").await]);
    let live = state_of("r", &stayed);
    let back = state_of("r", &away);
    assert_eq!(live.messages, fresh.messages, "the member who stayed");
    assert_eq!(live.pins, fresh.pins, "the member who stayed");
    assert_eq!(back.messages, fresh.messages, "the member who resumed");
    assert_eq!(back.pins, fresh.pins, "the member who resumed");
    assert_eq!(back.pins.len(), 1);
    assert!(back.messages[&three].deleted);
    let re_two = back.messages.values().find(|m| m.reply_to == Some(two));
    let quote = re_two
        .and_then(|m| m.quote.as_ref())
        .expect("the reply to two");
    assert_eq!(quote.text, "two, edited after the reply");

    // Resuming from every point in between converges too.
    for since in 1..latest {
        let mut client = Client::connect(nodes.at(17), "erin").await;
        let frames: Vec<Value> = stayed
            .iter()
            .filter(|f| f["type"] == "joined" || f["seq"].as_u64() <= Some(since))
            .cloned()
            .collect();
        let mut state = state_of("r", &frames);
        common::room::apply(&mut state, "r", &[client.join_since("r", since).await]);
        assert_eq!(state.messages, fresh.messages, "resumed after {since}");
        assert_eq!(state.pins, fresh.pins, "resumed after {since}");
    }
}

/// The room's entries a Socket.IO client receives up to and including
/// `seq`, as native frames (a Socket.IO room event is its native frame,
/// with `content` in messages).
async fn socket_io_entries_through(client: &mut SocketIo, room: &str, seq: u64) -> Vec<Value> {
    let mut seen: Vec<Value> = Vec::new();
    while seen.last().is_none_or(|f| f["seq"].as_u64() < Some(seq)) {
        let (name, payload) = client.recv_event().await;
        let entry = ["message", "edited", "deleted", "reaction", "pinned"].contains(&name.as_str());
        if entry && payload["room"] == room && payload["type"] == name {
            seen.push(payload);
        }
    }
    seen
}

async fn socket_io(server: &Server, name: &str) -> SocketIo {
    SocketIo::connect(server, "", &json!({"name": name}))
        .await
        .expect("a Socket.IO connection")
}

async fn socket_io_members_change_messages_and_resume_like_native_ones(nodes: &Nodes) {
    let mut alice = Client::connect(nodes.at(0), "alice").await;
    let mut bob = socket_io(nodes.at(1), "bob").await;
    let mut watcher = socket_io(nodes.at(2), "watcher").await;
    let mut leaver = socket_io(nodes.at(0), "leaver").await;
    alice.join("r").await;
    let mut stayed = vec![watcher.call("join", &json!("r")).await];
    stayed[0]["type"] = json!("joined");
    stayed[0]["room"] = json!("r");
    assert_eq!(bob.call("join", &json!("r")).await["room"], "r");
    let mut away = vec![leaver.call("join", &json!("r")).await];
    away[0]["type"] = json!("joined");

    let first = ack_seq(&alice.say("r", "from the native side").await);
    let said = bob
        .call(
            "message",
            &json!({"room": "r", "content": "from socket.io"}),
        )
        .await;
    let second = said["seq"].as_u64().unwrap();
    away.extend(socket_io_entries_through(&mut leaver, "r", second).await);
    drop(leaver);

    let edited = bob
        .call(
            "edit",
            &json!({"room": "r", "seq": second, "text": "edited", "id": "e-1"}),
        )
        .await;
    let again = bob
        .call(
            "edit",
            &json!({"room": "r", "seq": second, "text": "edited", "id": "e-1"}),
        )
        .await;
    assert_eq!(
        (&again["seq"], &again["duplicate"]),
        (&edited["seq"], &json!(true))
    );
    let refused = bob
        .call(
            "edit",
            &json!({"room": "r", "seq": first, "text": "not mine"}),
        )
        .await;
    assert_eq!(refused["error"]["code"], "forbidden", "{refused}");
    let missing = bob
        .call("react", &json!({"room": "r", "seq": 99, "emoji": "👍"}))
        .await;
    assert_eq!(missing["error"]["code"], "not_found", "{missing}");
    let reacted = bob
        .call("react", &json!({"room": "r", "seq": first, "emoji": "👍"}))
        .await;
    let replied = bob
        .call(
            "message",
            &json!({"room": "r", "content": "a reply", "reply_to": first}),
        )
        .await;
    ack_seq(
        &alice
            .request(edit(first, "from the native side, edited"))
            .await,
    );
    let deleted = bob
        .call("delete", &json!({"room": "r", "seq": second}))
        .await;
    let seqs: Vec<u64> = [&edited, &reacted, &replied, &deleted]
        .iter()
        .map(|a| a["seq"].as_u64().expect("an ack with a seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let last = ack_seq(&alice.say("r", "the end").await);

    stayed.extend(socket_io_entries_through(&mut watcher, "r", last).await);
    let kinds: Vec<&str> = stayed[1..]
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "message", "message", "edited", "reaction", "message", "edited", "deleted", "message"
        ]
    );
    let mut back = socket_io(nodes.at(1), "leaver").await;
    let mut resumed = back
        .call("join", &json!({"room": "r", "since": second}))
        .await;
    resumed["type"] = json!("joined");
    assert_eq!(
        resumed["events"].as_array().map(Vec::len),
        Some(4),
        "{resumed}"
    );
    away.push(resumed);

    let mut fresh = Client::connect(nodes.at(2), "fresh").await;
    let fresh = state_of("r", &[fresh.join("r").await]);
    for (who, frames) in [("the watcher", &stayed), ("the one who resumed", &away)] {
        let state = state_of("r", frames);
        assert_eq!(state.messages, fresh.messages, "{who}");
    }
}
