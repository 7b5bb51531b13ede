//! The HTTP API (docs/protocol.md §11, "HTTP API")
//! against the real binary: publish, history, rooms, members, moderation
//! (tombstones, disconnect), access (key, loopback) and error bodies.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::*;
use serde_json::{Value, json};

fn body(response: &HttpResponse) -> Value {
    serde_json::from_str(&response.body).unwrap_or_else(|e| panic!("not JSON ({e}): {response:?}"))
}

async fn api(server: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let text = body.map(|b| b.to_string());
    // A bodiless POST still says JSON (`http_request` says so with a body).
    let json: &[(&str, &str)] = match (method, &text) {
        ("POST", None) => &[("Content-Type", "application/json")],
        _ => &[],
    };
    let response = http_request(server.addr, method, path, json, text.as_deref()).await;
    (response.status, self::body(&response))
}

/// Asserts an error answer: the status, and `{code, message}`.
fn assert_api_error((status, body): &(u16, Value), want_status: u16, code: &str) {
    assert_eq!(*status, want_status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].is_string(), "{body}");
}

#[tokio::test]
async fn a_posted_message_is_sequenced_acked_and_delivered_like_any_other() {
    let server = Server::start(&[]);
    let mut alice = Client::connect(&server, "alice").await;
    alice.join("general").await;
    alice.say("general", "one").await;

    let (status, ack) = api(
        &server,
        "POST",
        "/api/rooms/general/messages",
        Some(json!({"text": "from the backend 👋", "id": "api-1", "from": {"id": "bot", "name": "Bot"}})),
    )
    .await;
    assert_eq!(status, 201, "{ack}");
    assert_eq!(
        (&ack["room"], &ack["seq"], &ack["id"]),
        (&json!("general"), &json!(2), &json!("api-1"))
    );
    assert_ts(&ack["ts"]);
    assert!(ack.get("duplicate").is_none(), "{ack}");
    let message = alice.recv_until(|f| f["seq"] == 2).await;
    assert_eq!(
        msg_core(&message),
        json!({"seq": 2, "id": "api-1", "from": {"id": "bot", "name": "Bot"},
               "text": "from the backend 👋", "ts": ack["ts"]})
    );
    assert_eq!(
        (&message["type"], &message["room"]),
        (&json!("message"), &json!("general"))
    );
    assert_eq!(message["ts"], ack["ts"]);

    // A retry with the same id: the original, flagged, and no broadcast.
    let (status, again) = api(
        &server,
        "POST",
        "/api/rooms/general/messages",
        Some(json!({"text": "from the backend 👋", "id": "api-1"})),
    )
    .await;
    assert_eq!(
        (status, &again["seq"], &again["duplicate"]),
        (201, &json!(2), &json!(true))
    );
    assert_eq!(alice.frames_before_pong().await, Vec::<Value>::new());

    // Without `from` or `id`: the server names both; a plain `from` name.
    let (_, third) = api(
        &server,
        "POST",
        "/api/rooms/general/messages",
        Some(json!({"text": "three", "from": "Deploy bot"})),
    )
    .await;
    assert_eq!(third["seq"], 3);
    assert!(third["id"].as_str().is_some_and(|id| !id.is_empty()));
    let m = alice.recv_until(|f| f["seq"] == 3).await;
    assert_eq!(m["from"]["name"], "Deploy bot");

    // History, both directions, with paging flags.
    let (status, page) = api(&server, "GET", "/api/rooms/general/messages", None).await;
    assert_eq!(status, 200);
    assert_eq!(message_seqs(&page), [1, 2, 3]);
    assert_eq!(page["more"], false);
    let (_, page) = api(&server, "GET", "/api/rooms/general/messages?limit=1", None).await;
    assert_eq!(
        (message_seqs(&page), &page["more"]),
        (vec![3], &json!(true))
    );
    let (_, page) = api(
        &server,
        "GET",
        "/api/rooms/general/messages?before=3&limit=1",
        None,
    )
    .await;
    assert_eq!(
        (message_seqs(&page), &page["more"]),
        (vec![2], &json!(true))
    );
    let (_, page) = api(&server, "GET", "/api/rooms/general/messages?after=1", None).await;
    assert_eq!(
        (message_seqs(&page), &page["more"]),
        (vec![2, 3], &json!(false))
    );

    // Any script in a room name, percent-encoded in the path.
    let (status, ack) = api(
        &server,
        "POST",
        "/api/rooms/%E8%81%8A%E5%A4%A9%E5%AE%A4/messages",
        Some(json!({"text": "你好"})),
    )
    .await;
    assert_eq!(
        (status, &ack["room"], &ack["seq"]),
        (201, &json!("聊天室"), &json!(1))
    );

    // Rooms and members.
    let (status, rooms) = api(&server, "GET", "/api/rooms", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        rooms,
        json!([{"room": "general", "members": 1, "seq": 3}, {"room": "聊天室", "members": 0, "seq": 1}])
    );
    let (status, members) = api(&server, "GET", "/api/rooms/general/members", None).await;
    assert_eq!(status, 200);
    assert_eq!(members, json!([{"id": alice.user_id(), "name": "alice"}]));
    let (_, nobody) = api(&server, "GET", "/api/rooms/empty/members", None).await;
    assert_eq!(nobody, json!([]));
    alice.assert_alive().await;
}

#[tokio::test]
async fn bad_input_gets_the_contract_codes_and_fitting_statuses() {
    let server = Server::start(&["--max-text-chars", "10"]);
    let post = |path: &'static str, body: &'static str| {
        let server = &server;
        async move {
            let r = http_request(server.addr, "POST", path, &[], Some(body)).await;
            assert!(
                r.head
                    .to_ascii_lowercase()
                    .contains("content-type: application/json"),
                "{r:?}"
            );
            (r.status, self::body(&r))
        }
    };
    let ok = "/api/rooms/general/messages";
    assert_api_error(
        &post("/api/rooms/%20lead/messages", r#"{"text":"x"}"#).await,
        400,
        "invalid_room",
    );
    assert_api_error(&post(ok, r#"{"text":""}"#).await, 400, "bad_request");
    assert_api_error(
        &post(ok, r#"{"text":"nul \u0000"}"#).await,
        400,
        "bad_request",
    );
    assert_api_error(
        &post(ok, r#"{"text":"eleven char"}"#).await,
        400,
        "too_long",
    );
    assert_api_error(
        &post(ok, r#"{"text":"x","id":""}"#).await,
        400,
        "bad_request",
    );
    assert_api_error(
        &post(ok, r#"{"text":"x","from":" spaced "}"#).await,
        400,
        "bad_request",
    );
    assert_api_error(&post(ok, r#"{"txt":"x"}"#).await, 400, "bad_request");
    assert_api_error(&post(ok, "not json").await, 400, "bad_request");
    let get = |path: &'static str| api(&server, "GET", path, None);
    assert_api_error(
        &get("/api/rooms/general/messages?limit=0").await,
        400,
        "bad_request",
    );
    assert_api_error(
        &get("/api/rooms/general/messages?before=x").await,
        400,
        "bad_request",
    );
    assert_api_error(
        &get("/api/rooms/general/messages?before=2&after=1").await,
        400,
        "bad_request",
    );
    assert_api_error(&get("/api/nothing/here").await, 404, "not_found");
    assert_api_error(
        &api(&server, "DELETE", "/api/rooms/general/messages/x", None).await,
        400,
        "bad_request",
    );
    assert_api_error(
        &api(&server, "DELETE", "/api/rooms/general/messages/9", None).await,
        404,
        "not_found",
    );
    // Nothing was stored by any of it.
    let (_, page) = get("/api/rooms/general/messages").await;
    assert_eq!(page["messages"], json!([]));
    assert_eq!(server.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn a_configured_key_is_required_from_everyone() {
    const KEY: &str = "test-api-key-0123456789";
    let server = Server::start(&["--api-key", KEY]);
    let path = "/api/rooms/general/messages";
    let text = Some(r#"{"text":"hi"}"#);
    let r = http_request(server.addr, "POST", path, &[], text).await;
    assert_api_error(&(r.status, body(&r)), 401, "unauthorized");
    assert!(
        r.head.contains("WWW-Authenticate: Bearer") || r.head.contains("www-authenticate: Bearer")
    );
    let wrong = [("Authorization", "Bearer test-api-key-0123456788")];
    let r = http_request(server.addr, "POST", path, &wrong, text).await;
    assert_api_error(&(r.status, body(&r)), 401, "unauthorized");
    let auth = format!("Bearer {KEY}");
    let right = [("Authorization", auth.as_str())];
    let r = http_request(server.addr, "POST", path, &right, text).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = http_request(server.addr, "GET", "/api/rooms", &right, None).await;
    assert_eq!(
        body(&r),
        json!([{"room": "general", "members": 0, "seq": 1}])
    );
    assert!(
        !server.stderr().contains(KEY),
        "the key never reaches the log"
    );
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
async fn without_a_key_the_api_answers_loopback_peers_only() {
    let outside = outside_address()
        .expect("a non-loopback interface to call from (scripts/test checks for one)");
    let server = Server::start(&["--listen", "0.0.0.0:0"]);
    let port = server.addr.port();
    let local = http_request(
        ([127, 0, 0, 1], port).into(),
        "GET",
        "/api/rooms",
        &[],
        None,
    )
    .await;
    assert_eq!((local.status, body(&local)), (200, json!([])));
    let from_outside = SocketAddr::new(outside, port);
    for (method, path) in [
        ("GET", "/api/rooms"),
        ("POST", "/api/rooms/general/messages"),
        ("GET", "/api/anything"),
    ] {
        let r = http_request(from_outside, method, path, &[], Some(r#"{"text":"x"}"#)).await;
        assert_api_error(&(r.status, body(&r)), 404, "not_found");
    }
    // The rest of the server is there for everyone.
    assert_eq!(http_get(from_outside, "/healthz").await.status, 200);
}

#[tokio::test]
async fn a_deleted_message_becomes_a_tombstone_members_are_told_of() {
    let server = Server::start(&[]);
    let mut alice = Client::connect(&server, "alice").await;
    let mut bob = Client::connect(&server, "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    for text in ["one", "two", "three"] {
        alice.say("general", text).await;
    }
    bob.recv_messages_through("general", 3).await;

    let path = "/api/rooms/general/messages/2?id=del-2";
    let (status, ack) = api(&server, "DELETE", path, None).await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!((&ack["seq"], &ack["id"]), (&json!(4), &json!("del-2")));
    for member in [&mut alice, &mut bob] {
        let deleted = member.recv_until(|f| f["type"] == "deleted").await;
        assert_eq!(
            (&deleted["seq"], &deleted["target"], &deleted["from"]["id"]),
            (&json!(4), &json!(2), &json!("api"))
        );
    }
    // History keeps every seq; only the deleted one is marked and empty.
    let history = bob.history(json!({"room": "general"})).await;
    assert_eq!(message_seqs(&history), [1, 2, 3]);
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(
        (&messages[1]["deleted"], &messages[1]["text"]),
        (&json!(true), &json!(""))
    );
    assert!(messages[0].get("deleted").is_none() && messages[2]["text"] == "three");
    let mut carol = Client::connect(&server, "carol").await;
    let joined = carol.join_since("general", 0).await;
    assert_eq!(joined["messages"][1]["deleted"], true);
    assert_eq!(joined["events"][0]["type"], "deleted");
    let (_, page) = api(&server, "GET", "/api/rooms/general/messages", None).await;
    assert_eq!(page["messages"][1]["deleted"], true);

    // A retry of the same deletion is its duplicate; another is not_found.
    let (status, again) = api(&server, "DELETE", path, None).await;
    assert_eq!(
        (status, &again["duplicate"], &again["seq"]),
        (200, &json!(true), &json!(4))
    );
    let other = api(&server, "DELETE", "/api/rooms/general/messages/2", None).await;
    assert_api_error(&other, 404, "not_found");
    assert_eq!(alice.say("general", "four").await["seq"], 5);
}

#[tokio::test]
async fn the_api_edits_reacts_pins_and_shows_a_message_s_versions() {
    let server = Server::start(&[]);
    let mut alice = Client::connect(&server, "alice").await;
    alice.join("general").await;
    alice.say("general", "first draft").await;
    let mut observer = Client::connect(&server, "observer").await;
    observer.join("general").await;

    let edit = json!({"text": "second draft", "from": {"id": "mod-1", "name": "Moderator"}});
    let (status, ack) = api(
        &server,
        "PATCH",
        "/api/rooms/general/messages/1",
        Some(edit),
    )
    .await;
    assert_eq!((status, &ack["seq"]), (200, &json!(2)), "{ack}");
    let bot = json!({"emoji": "🤖", "from": {"id": "bot", "name": "bot"}});
    let path = "/api/rooms/general/messages/1/reactions";
    let (status, ack) = api(&server, "POST", path, Some(bot)).await;
    assert_eq!((status, &ack["seq"]), (200, &json!(3)), "{ack}");
    let (status, ack) = api(&server, "PUT", "/api/rooms/general/pins/1", None).await;
    assert_eq!((status, &ack["seq"]), (200, &json!(4)), "{ack}");
    let seen = observer.recv_until(|f| f["type"] == "pinned").await;
    assert_eq!(seen["message"]["text"], "second draft");
    assert_eq!(seen["message"]["reactions"][0]["emoji"], "🤖");

    let (_, pins) = api(&server, "GET", "/api/rooms/general/pins", None).await;
    assert_eq!(pins[0]["seq"], 1);
    let (status, _) = api(&server, "DELETE", "/api/rooms/general/pins/1", None).await;
    assert_eq!(status, 200);
    let (_, pins) = api(&server, "GET", "/api/rooms/general/pins", None).await;
    assert_eq!(pins, json!([]));

    let (status, versions) = api(
        &server,
        "GET",
        "/api/rooms/general/messages/1/versions",
        None,
    )
    .await;
    assert_eq!(status, 200, "{versions}");
    let texts: Vec<(&Value, &Value)> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (&v["text"], &v["from"]["id"]))
        .collect();
    assert_eq!(
        texts,
        [
            (&json!("first draft"), &json!(alice.user_id())),
            (&json!("second draft"), &json!("mod-1"))
        ]
    );
    let missing = api(
        &server,
        "GET",
        "/api/rooms/general/messages/9/versions",
        None,
    )
    .await;
    assert_api_error(&missing, 404, "not_found");
    let bad = api(&server, "POST", path, Some(json!({"emoji": ""}))).await;
    assert_api_error(&bad, 400, "bad_request");
    let not_a_message = api(
        &server,
        "PATCH",
        "/api/rooms/general/messages/3",
        Some(json!({"text": "x"})),
    )
    .await;
    assert_api_error(&not_a_message, 404, "not_found");
}

#[tokio::test]
async fn disconnecting_a_user_closes_their_connections_only() {
    let server = Server::start(&[]);
    let mut alice = Client::connect(&server, "alice").await;
    let mut bob = Client::connect(&server, "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    let path = format!("/api/users/{}/disconnect", alice.user_id());
    let json = [("Content-Type", "application/json")];
    let r = http_request(server.addr, "POST", &path, &json, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(body(&r), json!({"user": alice.user_id(), "connections": 1}));
    alice.expect_close(1008).await;
    let left = bob.recv_until(|f| f["type"] == "presence").await;
    assert_eq!(
        (&left["event"], &left["user"]["name"]),
        (&json!("leave"), &json!("alice"))
    );
    bob.say("general", "still here").await;
    let (_, none) = api(&server, "POST", "/api/users/u_nobody/disconnect", None).await;
    assert_eq!(none["connections"], 0);
}

#[tokio::test]
async fn disconnecting_a_token_user_closes_every_connection_they_hold() {
    use jsonwebtoken::{EncodingKey, Header};
    const SECRET: &str = "an HS256 secret of at least thirty-two bytes";
    let token = |sub: &str| {
        let claims =
            json!({"sub": sub, "name": sub, "exp": jsonwebtoken::get_current_timestamp() + 600});
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("sign a token")
    };
    let server = Server::start(&["--jwt-secret", SECRET]);
    let alice_url = server.ws_url(&format!("token={}", token("alice")));
    let mut phone = Client::connect_url(&alice_url).await;
    let mut laptop = Client::connect_url(&alice_url).await;
    let mut bob = Client::connect_url(&server.ws_url(&format!("token={}", token("bob")))).await;
    phone.join("general").await;
    bob.join("general").await;
    let r = http_request(
        server.addr,
        "POST",
        "/api/users/alice/disconnect",
        &[("Content-Type", "application/json")],
        None,
    )
    .await;
    assert_eq!(body(&r), json!({"user": "alice", "connections": 2}));
    phone.expect_close(1008).await;
    laptop.expect_close(1008).await;
    bob.say("general", "still here").await;
    let (_, members) = api(&server, "GET", "/api/rooms/general/members", None).await;
    assert_eq!(members, json!([{"id": "bob", "name": "bob"}]));
}
