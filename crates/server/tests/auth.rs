//! JWT authentication end to end, against the real binary: who a token makes
//! a connection, which tokens are refused at the upgrade (HTTP 401, no
//! WebSocket), the `rooms` claim on every request that names a room (on
//! `/ws` and Socket.IO), anonymous connections on and off, and that no
//! token or secret ever reaches the logs.

mod common;

use common::{Client, Server, SocketIo, assert_error, upgrade_refusal};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SECRET: &str = "an HS256 secret of at least thirty-two bytes";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn sign(algorithm: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), claims, key).expect("sign a token")
}

fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
    )
}

/// A server checking HS256 tokens with [`SECRET`], read from a file; logs
/// at debug level, so the no-secrets check covers what debug logging says.
fn start_hs256(extra: &[&str]) -> (Server, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir for the secret");
    let file = dir.path().join("jwt-secret");
    std::fs::write(&file, format!("{SECRET}\n")).expect("write the secret");
    let mut args = vec![
        "--jwt-secret-file",
        file.to_str().unwrap(),
        "--log-level",
        "debug",
    ];
    args.extend_from_slice(extra);
    (Server::start(&args), dir)
}

async fn connect_with_token(server: &Server, token: &str) -> Client {
    Client::connect_url(&server.ws_url(&format!("token={token}"))).await
}

/// Asserts connecting with `token` in the query is refused with 401.
async fn assert_refused(server: &Server, token: &str, why: &str) {
    let (status, body) = upgrade_refusal(server.ws_url(&format!("token={token}")), None).await;
    assert_eq!(status, 401, "{why}: {body}");
    assert!(
        !body.contains(token) || token.is_empty(),
        "the reply echoes the token"
    );
}

#[tokio::test]
async fn a_valid_token_names_the_user_by_query_or_header() {
    let (server, _dir) = start_hs256(&[]);
    let token = hs256(&json!({"sub": "user-42", "name": "Alice", "exp": now() + 300}));

    let by_query = connect_with_token(&server, &token).await;
    assert_eq!(by_query.user(), &json!({"id": "user-42", "name": "Alice"}));

    let mut request = server.ws_url("").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut by_header = Client::connect_with(request, None).await;
    assert_eq!(by_header.user(), &json!({"id": "user-42", "name": "Alice"}));
    by_header.join("general").await;
    by_header.say("general", "hi").await;

    // Without a `name` claim, the client's `?name=` is the display name.
    let nameless = hs256(&json!({"sub": "user-7", "exp": now() + 300}));
    let client = Client::connect_url(&server.ws_url(&format!("token={nameless}&name=seven"))).await;
    assert_eq!(client.user(), &json!({"id": "user-7", "name": "seven"}));
}

#[tokio::test]
async fn bad_tokens_are_refused_at_the_upgrade_and_never_logged() {
    let (server, _dir) = start_hs256(&[]);
    let claims = json!({"sub": "mallory", "exp": now() + 300});
    let valid = hs256(&claims);
    let payload = valid.split('.').nth(1).unwrap();
    let refused = [
        (
            hs256(&json!({"sub": "mallory", "exp": now() - 3600})),
            "expired",
        ),
        (
            sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(b"some other secret, thirty-two bytes"),
                &claims,
            ),
            "wrong key",
        ),
        (
            sign(
                Algorithm::HS512,
                &EncodingKey::from_secret(SECRET.as_bytes()),
                &claims,
            ),
            "wrong algorithm",
        ),
        // {"alg":"none","typ":"JWT"}: unsigned.
        (
            format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}."),
            "alg none",
        ),
        (
            format!("{}x", &valid[..valid.len() - 1]),
            "altered signature",
        ),
        ("not.a.jwt".to_owned(), "malformed"),
        (hs256(&json!({"exp": now() + 300})), "no sub"),
        (hs256(&json!({"sub": "mallory"})), "no exp"),
    ];
    for (token, why) in &refused {
        assert_refused(&server, token, why).await;
    }

    // A bad header is refused too, even with a good token in the query.
    let mut request = server
        .ws_url(&format!("token={valid}"))
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", refused[0].0).parse().unwrap(),
    );
    let (status, body) = upgrade_refusal(request, None).await;
    assert_eq!((status, body.as_str()), (401, "token expired"));

    // No token: anonymous connections are off once a key is configured.
    let (status, body) = upgrade_refusal(server.ws_url("name=anon"), None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("token is required"), "{body}");

    connect_with_token(&server, &valid)
        .await
        .assert_alive()
        .await;
    let logs = server.stderr();
    assert!(
        logs.contains("upgrade refused"),
        "debug logs say why: {logs}"
    );
    for (token, _) in &refused {
        assert!(!logs.contains(token.as_str()), "a token reached the logs");
    }
    assert!(!logs.contains(&valid), "a token reached the logs");
    assert!(!logs.contains(SECRET), "the secret reached the logs");
}

#[tokio::test]
async fn the_rooms_claim_limits_joins() {
    let (server, _dir) = start_hs256(&[]);
    let token = hs256(&json!({"sub": "u1", "name": "Dana", "exp": now() + 300,
                              "rooms": ["general", "team-*"]}));
    let mut client = connect_with_token(&server, &token).await;
    client.join("general").await;
    client.join("team-red").await;
    client.join("team-").await;

    for room in ["random", "team", "general-2", "my-team-red"] {
        let reply = client.request(json!({"type": "join", "room": room})).await;
        assert_error(&reply, "forbidden", Some(&reply["ref"]));
        assert!(reply["message"].as_str().unwrap().contains(room), "{reply}");
    }
    // Refused joins leave the connection usable and the user out of the room.
    client.say("team-red", "still here").await;
    let reply = client
        .request(json!({"type": "send", "room": "team-blue", "text": "x"}))
        .await;
    assert_error(&reply, "not_joined", Some(&reply["ref"]));

    // No rooms claim: any room.
    let free = hs256(&json!({"sub": "u2", "exp": now() + 300}));
    connect_with_token(&server, &free)
        .await
        .join("random")
        .await;
    // An empty list: none.
    let none = hs256(&json!({"sub": "u3", "exp": now() + 300, "rooms": []}));
    let mut locked = connect_with_token(&server, &none).await;
    let reply = locked
        .request(json!({"type": "join", "room": "general"}))
        .await;
    assert_error(&reply, "forbidden", Some(&reply["ref"]));
}

/// One request that names `room`: as a native frame, as a Socket.IO
/// event with its argument, and the reply (native `type`) it gets when the
/// room is allowed (`None`: `typing`, answered by nothing on `/ws`).
struct RoomRequest {
    what: &'static str,
    native: Value,
    event: &'static str,
    arg: Value,
    allowed: Option<&'static str>,
}

/// Every request type that names a room, in an order that works on an
/// allowed room (join first, leave last).
fn room_requests(room: &str) -> Vec<RoomRequest> {
    let row = |what, native: Value, event, arg: Value, allowed| RoomRequest {
        what,
        native,
        event,
        arg,
        allowed,
    };
    vec![
        row(
            "join",
            json!({"type": "join", "room": room}),
            "join",
            json!(room),
            Some("joined"),
        ),
        row(
            "join since",
            json!({"type": "join", "room": room, "since": 0}),
            "join",
            json!({"room": room, "since": 0}),
            Some("joined"),
        ),
        row(
            "send",
            json!({"type": "send", "room": room, "text": "hello"}),
            "message",
            json!({"room": room, "content": "hello"}),
            Some("ack"),
        ),
        row(
            "history",
            json!({"type": "history", "room": room}),
            "history",
            json!({"room": room}),
            Some("history"),
        ),
        row(
            "history before",
            json!({"type": "history", "room": room, "before": 1000}),
            "history",
            json!({"room": room, "before": 1000}),
            Some("history"),
        ),
        row(
            "history after",
            json!({"type": "history", "room": room, "after": 0, "limit": 10}),
            "history",
            json!({"room": room, "after": 0, "limit": 10}),
            Some("history"),
        ),
        row(
            "typing",
            json!({"type": "typing", "room": room}),
            "typing",
            json!(room),
            None,
        ),
        row(
            "leave",
            json!({"type": "leave", "room": room}),
            "leave",
            json!(room),
            Some("left"),
        ),
    ]
}

/// Runs every row of [`room_requests`] for `room` on `/ws` and on Socket.IO
/// with `token`; returns one line per wrong answer. `allowed`: whether the
/// token's `rooms` claim allows the room (each request answered as usual)
/// or not (each refused with `forbidden`, naming the room).
async fn room_table(server: &Server, token: &str, room: &str, allowed: bool) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut native = connect_with_token(server, token).await;
    let mut sio = SocketIo::connect(server, "", &json!({"token": token}))
        .await
        .expect("a valid token connects to Socket.IO");
    for request in room_requests(room) {
        let what = format!("{} `{room}`", request.what);
        let reply = if request.allowed.is_none() && allowed {
            // An accepted `typing` is answered by nothing: no error may
            // come before the pong of a ping sent after it.
            native.send_json(&request.native).await;
            native
                .frames_before_pong()
                .await
                .into_iter()
                .find(|f| f["type"] == "error")
                .unwrap_or(json!({"type": "nothing"}))
        } else {
            native.request(request.native.clone()).await
        };
        let native_right = if allowed {
            reply["type"] == request.allowed.unwrap_or("nothing")
        } else {
            reply["type"] == "error"
                && reply["code"] == "forbidden"
                && reply["message"].as_str().is_some_and(|m| m.contains(room))
        };
        if !native_right {
            wrong.push(format!("/ws {what}: {reply}"));
        }
        let ack = sio.call(request.event, &request.arg).await;
        let sio_right = if allowed {
            ack.get("error").is_none() && ack["room"] == room
        } else {
            ack["error"]["code"] == "forbidden"
        };
        if !sio_right {
            wrong.push(format!("Socket.IO {} {what}: {ack}", request.event));
        }
    }
    native.assert_alive().await;
    wrong
}

/// Attack (issue 17): a token whose `rooms` claim refuses `join secret`
/// read the room anyway with `history` (with `before` or `after` too, and
/// with `rooms: []`). Every request that names a room, on both protocols,
/// must be refused alike; the same requests on allowed rooms still work.
#[tokio::test]
async fn the_rooms_claim_applies_to_every_request_on_both_protocols() {
    let (server, _dir) = start_hs256(&[]);
    let owner = hs256(&json!({"sub": "owner", "exp": now() + 300}));
    let mut writer = connect_with_token(&server, &owner).await;
    writer.join("secret").await;
    writer.say("secret", "the launch code is 0000").await;

    let limited = hs256(&json!({"sub": "u1", "exp": now() + 300, "rooms": ["team-*", "lobby"]}));
    let locked = hs256(&json!({"sub": "u2", "exp": now() + 300, "rooms": []}));
    let mut wrong = Vec::new();
    wrong.extend(room_table(&server, &limited, "secret", false).await);
    wrong.extend(room_table(&server, &locked, "secret", false).await);
    wrong.extend(room_table(&server, &locked, "lobby", false).await);
    // The table can tell: allowed rooms are served.
    wrong.extend(room_table(&server, &limited, "team-red", true).await);
    wrong.extend(room_table(&server, &limited, "lobby", true).await);
    wrong.extend(room_table(&server, &owner, "secret", true).await);
    assert!(
        wrong.is_empty(),
        "{} wrong answer(s):\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Nothing the refused requests did reached the secret room.
    let history = writer.history(json!({"room": "secret"})).await;
    let senders: Vec<&Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["from"]["id"])
        .collect();
    assert!(senders.iter().all(|id| *id == "owner"), "{history}");
}

/// A token's `name` (or its `sub`, the name when `name` is absent) with a
/// bidi override or a zero-width character is refused like such a
/// `?name=`, on both protocols: the login service's word is not altered
/// into a name it did not give.
#[tokio::test]
async fn hidden_characters_in_a_tokens_name_are_refused() {
    let (server, _dir) = start_hs256(&[]);
    for claims in [
        json!({"sub": "u1", "name": "al\u{202e}ecila", "exp": now() + 300}),
        json!({"sub": "u1", "name": "\u{2067}admin", "exp": now() + 300}),
        json!({"sub": "ad\u{200b}min", "exp": now() + 300}),
    ] {
        let token = hs256(&claims);
        assert_refused(&server, &token, &claims.to_string()).await;
        let refused = SocketIo::connect(&server, "", &json!({"token": token})).await;
        assert!(refused.is_err(), "Socket.IO let {claims} in");
    }
    let fine = hs256(&json!({"sub": "u1", "name": "שלום", "exp": now() + 300}));
    assert_eq!(
        connect_with_token(&server, &fine).await.user()["name"],
        "שלום"
    );
}

#[tokio::test]
async fn one_user_on_two_connections_is_one_member() {
    let (server, _dir) = start_hs256(&[]);
    let alice = hs256(&json!({"sub": "alice", "name": "Alice", "exp": now() + 300}));
    let bob = hs256(&json!({"sub": "bob", "name": "Bob", "exp": now() + 300}));
    let mut watcher = connect_with_token(&server, &bob).await;
    watcher.join("general").await;

    let mut phone = connect_with_token(&server, &alice).await;
    let mut laptop = connect_with_token(&server, &alice).await;
    assert_ne!(phone.welcome["session"], laptop.welcome["session"]);
    phone.join("general").await;
    let joined = laptop.join("general").await;
    let members = joined["members"].as_array().unwrap();
    let alices = members.iter().filter(|m| m["id"] == "alice").count();
    assert_eq!((members.len(), alices), (2, 1), "{joined}");

    // Bob saw Alice arrive once, and sees her leave only with her last
    // connection. (A message brings the room's waiting presence along.)
    laptop.leave("general").await;
    phone.say("general", "still here").await;
    let frames = watcher.recv_all_until(|f| f["type"] == "message").await;
    let presence: Vec<&Value> = frames.iter().filter(|f| f["type"] == "presence").collect();
    assert_eq!(presence.len(), 1, "{frames:?}");
    assert_eq!(presence[0]["event"], "join");
    assert_eq!(presence[0]["user"], json!({"id": "alice", "name": "Alice"}));
    phone.close().await;
    let left = watcher.recv_until(|f| f["type"] == "presence").await;
    assert_eq!(left["event"], "leave");
    assert_eq!(left["user"]["id"], "alice");
}

#[tokio::test]
async fn es256_tokens_with_a_public_key_and_no_key_confusion() {
    let pair = rcgen::KeyPair::generate().expect("an ECDSA P-256 key pair");
    let public_pem = pair.public_key_pem();
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("jwt-public.pem");
    std::fs::write(&public, &public_pem).unwrap();
    let server = Server::start(&["--jwt-public-key", public.to_str().unwrap()]);

    let claims = json!({"sub": "ec-user", "name": "Eve", "exp": now() + 300});
    let private = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    let client = connect_with_token(&server, &sign(Algorithm::ES256, &private, &claims)).await;
    assert_eq!(client.user()["id"], "ec-user");

    // HS256 "signed" with the public key as the secret: the classic confusion.
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(public_pem.as_bytes()),
        &claims,
    );
    assert_refused(&server, &confused, "HS256 over the public key").await;
    let stranger = rcgen::KeyPair::generate().unwrap();
    let other = EncodingKey::from_ec_pem(stranger.serialize_pem().as_bytes()).unwrap();
    assert_refused(
        &server,
        &sign(Algorithm::ES256, &other, &claims),
        "another key",
    )
    .await;
}

#[tokio::test]
async fn anonymous_connections_can_stay_on_beside_tokens() {
    let (server, _dir) = start_hs256(&["--allow-anonymous", "true"]);
    let guest = Client::connect(&server, "guest").await;
    assert_eq!(guest.user()["name"], "guest");
    assert!(guest.user_id().starts_with("u_"));
    let token = hs256(&json!({"sub": "member", "exp": now() + 300}));
    assert_eq!(
        connect_with_token(&server, &token).await.user_id(),
        "member"
    );
    // A bad token is still refused rather than treated as anonymous.
    assert_refused(&server, "not.a.jwt", "bad token with anonymous on").await;
}

#[tokio::test]
async fn a_server_without_a_key_refuses_tokens() {
    let server = Server::start(&[]);
    let token = hs256(&json!({"sub": "u", "exp": now() + 300}));
    let (status, body) = upgrade_refusal(server.ws_url(&format!("token={token}")), None).await;
    assert_eq!(
        (status, body.as_str()),
        (401, "this server accepts no tokens")
    );
    Client::connect(&server, "anon").await.assert_alive().await;
}

#[test]
fn impossible_auth_settings_stop_the_start() {
    let failure = Server::start_failure(&["--allow-anonymous", "false"]);
    assert!(
        failure.stderr.contains("nobody could connect"),
        "{}",
        failure.stderr
    );
    let failure = Server::start_failure(&["--jwt-secret", "too short"]);
    assert!(
        failure.stderr.contains("at least 32 bytes"),
        "{}",
        failure.stderr
    );
    assert!(
        !failure.stderr.contains("too short"),
        "the secret reached the logs"
    );
}
