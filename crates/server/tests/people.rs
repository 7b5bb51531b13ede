//! People end to end against the real binary (docs/protocol.md §3,
//! "People"): a guest is one user across reconnects and tabs, on `/ws`
//! and Socket.IO; a forged credential is refused; read markers are
//! durable, move forward only, and reach the person's other connections;
//! unread and mention counts are exact under concurrent senders; and a
//! direct message is its two users' only, whatever the request.
//!
//! Each scenario runs on one node (SQLite) and on a cluster of three
//! nodes on PostgreSQL and Redis, its clients spread over the nodes
//! (ignored unless asked for: `scripts/test` provides the services).

mod common;

use common::nodes::{Nodes, on_one_node_and_a_cluster};
use common::{Client, Server, SocketIo, upgrade_status};
use serde_json::{Value, json};

on_one_node_and_a_cluster!(
    a_guest_keeps_their_identity_across_reconnects_and_tabs,
    a_forged_or_tampered_guest_credential_is_refused,
    read_markers_move_forward_and_reach_the_persons_other_connections,
    unread_and_mention_counts_are_exact_under_concurrent_senders,
    a_direct_message_cannot_be_read_by_a_third_user,
    socket_io_guests_read_and_open_direct_messages_like_native_ones,
);

/// An acked read marker is stored: a `kill -9` right after the answer
/// loses nothing (one node: the cluster's store is PostgreSQL's).
#[tokio::test]
async fn an_acked_read_marker_survives_kill_9() {
    let mut server = Server::start(&[]);
    let mut ana = Client::connect(&server, "ana").await;
    let token = guest_token(&ana);
    let mut bob = Client::connect(&server, "bob").await;
    ana.join("r").await;
    bob.join("r").await;
    for i in 1..=4 {
        bob.say("r", &format!("m{i}")).await;
    }
    assert_eq!(ana.request(read("r", 3)).await["seq"], 3);
    server.kill9();
    server.restart();
    let mut back = as_guest(&server, "ana", &token).await;
    let joined = back.join("r").await;
    assert_eq!(
        (&joined["last_read"], &joined["unread"]),
        (&json!(3), &json!(1)),
        "{joined}"
    );
}

fn guest_token(client: &Client) -> String {
    client.welcome["guest_token"]
        .as_str()
        .unwrap_or_else(|| panic!("welcome without a guest token: {}", client.welcome))
        .to_owned()
}

/// A connection of the guest `token` names.
async fn as_guest(server: &Server, name: &str, token: &str) -> Client {
    Client::connect_url(&server.ws_url(&format!("name={name}&guest={token}"))).await
}

fn read(room: &str, seq: u64) -> Value {
    json!({"type": "read", "room": room, "seq": seq})
}

fn error_code(reply: &Value) -> &str {
    assert_eq!(reply["type"], "error", "{reply}");
    reply["code"].as_str().expect("an error's code")
}

/// The user's rooms, by name: (unread, unread mentions).
async fn counts(client: &mut Client) -> Vec<(String, u64, u64)> {
    let reply = client.request(json!({"type": "rooms"})).await;
    assert_eq!(reply["type"], "rooms", "{reply}");
    let mut rooms: Vec<(String, u64, u64)> = reply["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .map(|r| {
            (
                r["room"].as_str().unwrap_or_default().to_owned(),
                r["unread"].as_u64().unwrap_or(u64::MAX),
                r["unread_mentions"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect();
    rooms.sort();
    rooms
}

async fn a_guest_keeps_their_identity_across_reconnects_and_tabs(nodes: &Nodes) {
    let first = Client::connect(nodes.at(0), "ana").await;
    let id = first.user_id().to_owned();
    let token = guest_token(&first);
    first.close().await;
    // A reconnect, then a second tab, each on another node.
    let mut tab1 = as_guest(nodes.at(1), "ana", &token).await;
    let mut tab2 = as_guest(nodes.at(2), "ana", &guest_token(&tab1)).await;
    assert_eq!(tab1.user_id(), id);
    assert_eq!(tab2.user_id(), id);
    let mut bob = Client::connect(nodes.at(0), "bob").await;
    bob.join("lobby").await;
    tab1.join("lobby").await;
    let joined = tab2.join("lobby").await;
    // Presence lists the person once.
    let ids: Vec<&str> = joined["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids.iter().filter(|m| **m == id).count(), 1, "{joined}");
    // A message from one tab is the person's in the other.
    tab1.say("lobby", "from tab one").await;
    let seen = tab2
        .recv_until(|f| f["type"] == "message" && f["text"] == "from tab one")
        .await;
    assert_eq!(seen["from"]["id"], id);
    // Bob heard the person arrive once, not once per tab.
    bob.say("lobby", "marker").await;
    let frames = bob
        .recv_all_until(|f| f["type"] == "message" && f["text"] == "marker")
        .await;
    let arrivals = frames
        .iter()
        .filter(|f| f["type"] == "presence" && f["event"] == "join" && f["user"]["id"] == id)
        .count();
    assert!(arrivals <= 1, "{frames:?}");
    // Without the credential, a new person.
    let stranger = Client::connect(nodes.at(1), "ana").await;
    assert_ne!(stranger.user_id(), id);
}

async fn a_forged_or_tampered_guest_credential_is_refused(nodes: &Nodes) {
    let guest = Client::connect(nodes.at(0), "ana").await;
    let token = guest_token(&guest);
    let url = |token: &str| nodes.at(1).ws_url(&format!("name=ana&guest={token}"));
    assert_eq!(upgrade_status(&url("not-a-credential")).await, 401);
    // One character of the signature changed.
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(upgrade_status(&url(&tampered)).await, 401);
    // Claims of another guest with the first one's signature.
    let signature = token.rsplit('.').next().unwrap();
    let theirs = forged_claims();
    let (signed, _) = theirs.rsplit_once('.').unwrap();
    let forged = format!("{signed}.{signature}");
    assert_eq!(upgrade_status(&url(&forged)).await, 401);
    // A credential from a server with another secret.
    let other = Server::start(&["--guest-secret", "another secret of at least 32 bytes!!"]);
    let theirs = guest_token(&Client::connect(&other, "eve").await);
    assert_eq!(upgrade_status(&url(&theirs)).await, 401);
    // Socket.IO refuses it too.
    let refused = SocketIo::connect(nodes.at(2), "", &json!({"guest": tampered})).await;
    assert!(refused.is_err(), "a tampered credential was accepted");
    // The real one still works.
    assert_eq!(upgrade_status(&url(&token)).await, 101);
}

/// A credential for guest `u_victim`, signed with a key of the forger's.
fn forged_claims() -> String {
    let claims = json!({"sub": "u_victim", "aud": "chat-guest", "iat": 1, "exp": 4102444800u64});
    let key = jsonwebtoken::EncodingKey::from_secret(b"the forger's own secret, 32 bytes");
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

async fn read_markers_move_forward_and_reach_the_persons_other_connections(nodes: &Nodes) {
    let mut phone = Client::connect(nodes.at(0), "ana").await;
    let token = guest_token(&phone);
    let mut laptop = as_guest(nodes.at(1), "ana", &token).await;
    let mut bob = Client::connect(nodes.at(2), "bob").await;
    phone.join("r").await;
    laptop.join("r").await;
    bob.join("r").await;
    for i in 1..=5 {
        bob.say("r", &format!("m{i}")).await;
    }
    laptop.recv_messages_through("r", 5).await;
    let reply = phone.request(read("r", 3)).await;
    assert_eq!(
        (&reply["type"], &reply["seq"], &reply["unread"]),
        (&json!("read"), &json!(3), &json!(2)),
        "{reply}"
    );
    // The laptop hears of it without asking.
    let news = laptop.recv_until(|f| f["type"] == "read").await;
    assert_eq!((&news["room"], &news["seq"]), (&json!("r"), &json!(3)));
    assert!(news.get("ref").is_none());
    // Never back; never past the end.
    assert_eq!(phone.request(read("r", 1)).await["seq"], 3);
    assert_eq!(phone.request(read("r", 99)).await["seq"], 5);
    assert_eq!(phone.request(read("r", 4)).await["unread"], 0);
    // A joined reply says where the person is.
    let again = as_guest(nodes.at(2), "ana", &token).await;
    let mut again = again;
    let joined = again.join("r").await;
    assert_eq!(
        (&joined["last_read"], &joined["unread"]),
        (&json!(5), &json!(0))
    );
    bob.say("r", "m6").await;
    let joined = again.join_since("r", 5).await;
    assert_eq!(
        (&joined["last_read"], &joined["unread"]),
        (&json!(5), &json!(1))
    );
}

async fn unread_and_mention_counts_are_exact_under_concurrent_senders(nodes: &Nodes) {
    let mut ana = Client::connect(nodes.at(0), "Ana%20Lima").await;
    ana.join("busy").await;
    // The answer to a read comes once the membership before it is stored.
    ana.request(read("busy", 0)).await;
    let mut senders = Vec::new();
    for s in 0..3 {
        let server = nodes.at(s + 1);
        let mut sender = Client::connect(server, &format!("sender{s}")).await;
        sender.join("busy").await;
        senders.push(tokio::spawn(async move {
            for i in 0..40 {
                let text = if i % 4 == 0 {
                    format!("@ana lima look {s}-{i}")
                } else {
                    format!("plain {s}-{i} @ana")
                };
                let ack = sender.say("busy", &text).await;
                assert_eq!(ack["type"], "ack", "{ack}");
            }
        }));
    }
    for sender in senders {
        sender.await.expect("a sender");
    }
    ana.say("busy", "my own is never unread").await;
    assert_eq!(counts(&mut ana).await, [("busy".to_owned(), 120, 30)]);
    let joined = ana.join_since("busy", 0).await;
    assert_eq!(
        (&joined["unread"], &joined["unread_mentions"]),
        (&json!(120), &json!(30))
    );
    // Reading part of it counts what is left exactly: seqs 62 to 120
    // (121 is her own).
    let reply = ana.request(read("busy", 61)).await;
    assert_eq!(reply["unread"], 59, "{reply}");
}

async fn a_direct_message_cannot_be_read_by_a_third_user(nodes: &Nodes) {
    let mut ana = Client::connect(nodes.at(0), "ana").await;
    let mut bob = Client::connect(nodes.at(1), "bob").await;
    let mut eve = Client::connect(nodes.at(2), "eve").await;
    for client in [&mut ana, &mut bob, &mut eve] {
        client.join("lobby").await;
        client.request(read("lobby", 0)).await;
    }
    let bob_id = bob.user_id().to_owned();
    let joined = ana.request(json!({"type": "dm", "user": bob_id})).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let room = joined["room"].as_str().unwrap().to_owned();
    assert!(room.starts_with("dm:"), "{room}");
    let added = bob.recv_until(|f| f["type"] == "room_added").await;
    assert_eq!(
        (&added["room"], &added["with"]["name"]),
        (&json!(room), &json!("ana"))
    );
    ana.say(&room, "a secret").await;
    let listed = counts(&mut bob).await;
    assert!(listed.contains(&(room.clone(), 1, 0)), "{listed:?}");
    // Bob opens the same room from his side.
    let ana_id = ana.user_id().to_owned();
    let his = bob.request(json!({"type": "dm", "user": ana_id})).await;
    assert_eq!(his["room"], room.as_str());
    assert_eq!(his["messages"][0]["text"], "a secret");
    // Eve, by every request that names a room.
    for request in [
        json!({"type": "join", "room": room}),
        json!({"type": "history", "room": room}),
        json!({"type": "send", "room": room, "text": "hi"}),
        json!({"type": "read", "room": room, "seq": 1}),
        json!({"type": "typing", "room": room}),
        json!({"type": "leave", "room": room}),
        json!({"type": "edit", "room": room, "seq": 1, "text": "x"}),
        json!({"type": "react", "room": room, "seq": 1, "emoji": "👍"}),
        json!({"type": "search", "room": room, "query": "secret"}),
    ] {
        let reply = eve.request(request.clone()).await;
        assert_eq!(error_code(&reply), "forbidden", "{request}: {reply}");
    }
    let found = eve
        .request(json!({"type": "search", "query": "secret"}))
        .await;
    assert_eq!(found["results"], json!([]), "{found}");
    assert!(!counts(&mut eve).await.iter().any(|(r, ..)| r == &room));
    let directory = eve.request(json!({"type": "directory"})).await;
    assert!(!directory.to_string().contains("dm:"), "{directory}");
    // A name that only looks like a direct message is not one.
    let fake = eve
        .request(json!({"type": "join", "room": "dm:anything"}))
        .await;
    assert_eq!(error_code(&fake), "invalid_room");
    // Nobody can be written to before they exist.
    let nobody = eve.request(json!({"type": "dm", "user": "u_nobody"})).await;
    assert_eq!(error_code(&nobody), "not_found");
}

async fn socket_io_guests_read_and_open_direct_messages_like_native_ones(nodes: &Nodes) {
    let mut ana = SocketIo::connect(nodes.at(0), "", &json!({"name": "ana"}))
        .await
        .expect("connect");
    let token = ana.welcome["guest_token"]
        .as_str()
        .expect("guest_token")
        .to_owned();
    let id = ana.welcome["user"]["id"].clone();
    let again = SocketIo::connect(nodes.at(1), "", &json!({"name": "ana", "guest": token}))
        .await
        .expect("reconnect");
    assert_eq!(again.welcome["user"]["id"], id);
    let mut bob = Client::connect(nodes.at(2), "bob").await;
    bob.join("r").await;
    bob.request(read("r", 0)).await;
    let joined = ana.call("join", &json!("r")).await;
    assert_eq!(joined["unread"], 0, "{joined}");
    bob.say("r", "one").await;
    bob.say("r", "two").await;
    let marked = ana.call("read", &json!({"room": "r", "seq": 1})).await;
    assert_eq!(
        (&marked["seq"], &marked["unread"]),
        (&json!(1), &json!(1)),
        "{marked}"
    );
    let rooms = ana.call("rooms", &json!({})).await;
    assert_eq!(rooms["rooms"][0]["room"], "r", "{rooms}");
    let dm = ana.call("dm", &json!(bob.user_id())).await;
    let room = dm["room"].as_str().expect("a dm room").to_owned();
    let added = bob.recv_until(|f| f["type"] == "room_added").await;
    assert_eq!(added["room"], room.as_str());
    bob.join(&room).await;
    bob.say(&room, "hello ana").await;
    loop {
        let (event, body) = ana.recv_event().await;
        if event == "message" && body["room"] == room.as_str() {
            assert_eq!(body["content"], "hello ana");
            break;
        }
    }
    let directory = ana.call("directory", &json!({})).await;
    assert_eq!(directory["rooms"][0]["room"], "r", "{directory}");
}

async fn api(server: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let text = body.map(|b| b.to_string());
    let response = common::http_request(server.addr, method, path, &[], text.as_deref()).await;
    let value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    (response.status, value)
}

/// The operator's side: a user's rooms with counts, the directory, and a
/// direct-message room opened and written to over HTTP.
#[tokio::test]
async fn the_api_lists_rooms_and_opens_direct_messages() {
    let server = Server::start(&[]);
    let mut ana = Client::connect(&server, "ana").await;
    let mut bob = Client::connect(&server, "bob").await;
    ana.join("lobby").await;
    bob.join("lobby").await;
    ana.request(read("lobby", 0)).await;
    bob.say("lobby", "hello @ana").await;
    let (ana_id, bob_id) = (ana.user_id().to_owned(), bob.user_id().to_owned());
    let (status, rooms) = api(&server, "GET", &format!("/api/users/{ana_id}/rooms"), None).await;
    assert_eq!(status, 200, "{rooms}");
    assert_eq!(
        (
            &rooms[0]["room"],
            &rooms[0]["unread"],
            &rooms[0]["unread_mentions"]
        ),
        (&json!("lobby"), &json!(1), &json!(1)),
        "{rooms}"
    );
    assert_eq!(rooms[0]["last"]["text"], "hello @ana");
    let path = format!("/api/users/{ana_id}/dms/{bob_id}");
    let (status, opened) = api(&server, "PUT", &path, None).await;
    assert_eq!(status, 200, "{opened}");
    assert_eq!(opened["with"]["name"], "bob");
    let room = opened["room"].as_str().unwrap().to_owned();
    for client in [&mut ana, &mut bob] {
        let added = client.recv_until(|f| f["type"] == "room_added").await;
        assert_eq!(added["room"], room.as_str());
    }
    let encoded = room
        .replace('%', "%25")
        .replace(':', "%3A")
        .replace(',', "%2C");
    let (status, _) = api(
        &server,
        "POST",
        &format!("/api/rooms/{encoded}/messages"),
        Some(json!({"text": "from the operator"})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, bobs) = api(&server, "GET", &format!("/api/users/{bob_id}/rooms"), None).await;
    assert!(
        bobs.as_array()
            .unwrap()
            .iter()
            .any(|r| r["room"] == room.as_str() && r["unread"] == 1),
        "{bobs}"
    );
    let (status, directory) = api(&server, "GET", "/api/directory", None).await;
    assert_eq!(status, 200);
    assert_eq!(directory.as_array().unwrap().len(), 1, "{directory}");
    assert_eq!(
        (&directory[0]["room"], &directory[0]["members"]),
        (&json!("lobby"), &json!(2))
    );
    let (status, _) = api(
        &server,
        "PUT",
        &format!("/api/users/{ana_id}/dms/u_nobody"),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// `rooms` and `directory` may read a query per room each: a connection
/// that floods them is refused with `rate_limited` beyond its budget (5 a
/// second, bursts of 20), and stays connected and served.
#[tokio::test]
async fn a_flood_of_room_lists_is_rate_limited() {
    let server = Server::start(&[]);
    let mut eve = Client::connect(&server, "eve").await;
    eve.join("lobby").await;
    let mut refused = 0;
    for i in 0..40 {
        let kind = if i % 2 == 0 { "rooms" } else { "directory" };
        let reply = eve.request(json!({"type": kind})).await;
        if reply["type"] == "error" {
            assert_eq!(error_code(&reply), "rate_limited", "{reply}");
            refused += 1;
        }
    }
    assert!(refused >= 15, "{refused} of 40 refused");
    eve.assert_alive().await;
}
