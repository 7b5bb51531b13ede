//! Operators' bans (docs/protocol.md §11, "Bans") against the real binary
//! on SQLite: a room ban takes a live member out of the room and keeps
//! every connection of theirs out of it until lifted; a server ban closes
//! every connection with 1008 and refuses the upgrade with 403, across a
//! restart; the API's answers, list and refusals. Each test is the banned
//! user trying to get back in.

mod common;

use common::*;
use serde_json::{Value, json};

/// An API call: the status and the JSON body (`Null` when there is none,
/// as for 204).
async fn api(server: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let text = body.map(|b| b.to_string());
    let response = http_request(server.addr, method, path, &[], text.as_deref()).await;
    let body = if response.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&response.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {response:?}"))
    };
    (response.status, body)
}

fn assert_error(answer: &Value, code: &str) {
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["code"], code, "{answer}");
}

/// A guest connection and the query that makes another connection the
/// same user.
async fn guest(server: &Server, name: &str) -> (Client, String) {
    let client = Client::connect(server, name).await;
    let token = client.welcome["guest_token"]
        .as_str()
        .expect("a guest credential")
        .to_owned();
    (client, format!("name={name}&guest={token}"))
}

#[tokio::test]
async fn a_room_ban_takes_a_live_member_out_and_keeps_them_out_until_lifted() {
    let server = Server::start(&[]);
    let (mut mallory, again) = guest(&server, "mallory").await;
    let id = mallory.user_id().to_owned();
    let mut alice = Client::connect(&server, "alice").await;
    alice.join("general").await;
    mallory.join("general").await;
    mallory.join("random").await;
    alice
        .recv_until(|f| f["type"] == "presence" && f["event"] == "join")
        .await;
    mallory.say("general", "buy my stuff").await;

    let (status, ban) = api(
        &server,
        "PUT",
        &format!("/api/rooms/general/bans/{id}"),
        Some(json!({"reason": "spam"})),
    )
    .await;
    assert_eq!(status, 200, "{ban}");
    assert_eq!(
        (&ban["user"], &ban["room"], &ban["reason"]),
        (&json!(id), &json!("general"), &json!("spam"))
    );
    let ts = ban["ts"].as_i64().expect("a ts");

    // The member hears why, unasked, and is out of the room.
    let notice = mallory.recv_until(|f| f["type"] == "error").await;
    assert_eq!(
        notice,
        json!({"type": "error", "code": "forbidden", "room": "general",
               "message": "you are banned from this room"})
    );
    let left = alice
        .recv_until(|f| f["type"] == "presence" && f["event"] == "leave")
        .await;
    assert_eq!(
        (&left["room"], &left["user"]["id"]),
        (&json!("general"), &json!(id))
    );

    // Every way back in, on this connection and on a new one, is refused.
    for frame in [
        json!({"type": "join", "room": "general"}),
        json!({"type": "send", "room": "general", "text": "let me back"}),
        json!({"type": "history", "room": "general"}),
        json!({"type": "typing", "room": "general"}),
        json!({"type": "read", "room": "general", "seq": 1}),
        json!({"type": "search", "query": "stuff", "room": "general"}),
        json!({"type": "react", "room": "general", "seq": 1, "emoji": "👍"}),
        json!({"type": "leave", "room": "general"}),
    ] {
        assert_error(&mallory.request(frame.clone()).await, "forbidden");
    }
    let mut second = Client::connect_url(&server.ws_url(&again)).await;
    assert_eq!(second.user_id(), id);
    assert_error(
        &second
            .request(json!({"type": "join", "room": "general"}))
            .await,
        "forbidden",
    );
    let everywhere = second
        .request(json!({"type": "search", "query": "stuff"}))
        .await;
    assert_eq!(everywhere["results"], json!([]), "{everywhere}");
    let rooms = second.request(json!({"type": "rooms"})).await;
    let names: Vec<&Value> = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["room"])
        .collect();
    assert_eq!(names, vec![&json!("random")], "{rooms}");
    let lists_general = |directory: &Value| {
        directory["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["room"] == "general")
    };
    let theirs = second.request(json!({"type": "directory"})).await;
    assert!(!lists_general(&theirs), "{theirs}");
    let others = alice.request(json!({"type": "directory"})).await;
    assert!(lists_general(&others), "{others}");
    // Nor may the API post as them there.
    let (status, refused) = api(
        &server,
        "POST",
        "/api/rooms/general/messages",
        Some(json!({"text": "sneaky", "from": {"id": id, "name": "mallory"}})),
    )
    .await;
    assert_eq!(
        (status, &refused["code"]),
        (403, &json!("forbidden")),
        "{refused}"
    );

    // Other rooms are theirs as before, and others in the room go on.
    assert_eq!(mallory.say("random", "still here").await["type"], "ack");
    assert_eq!(alice.say("general", "peace").await["type"], "ack");

    // Banning again keeps the first time and takes the new reason.
    let (status, again_ban) = api(
        &server,
        "PUT",
        &format!("/api/rooms/general/bans/{id}"),
        Some(json!({"reason": "more spam"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (&again_ban["reason"], &again_ban["ts"]),
        (&json!("more spam"), &json!(ts))
    );

    // Lifted: back in.
    let path = format!("/api/rooms/general/bans/{id}");
    assert_eq!(
        api(&server, "DELETE", &path, None).await,
        (204, Value::Null)
    );
    let (status, missing) = api(&server, "DELETE", &path, None).await;
    assert_eq!((status, &missing["code"]), (404, &json!("not_found")));
    assert_eq!(mallory.join("general").await["type"], "joined");
    assert_eq!(mallory.say("general", "sorry").await["type"], "ack");
    assert_eq!(second.join("general").await["type"], "joined");
}

#[tokio::test]
async fn a_write_after_the_ban_is_lifted_needs_a_new_join() {
    let server = Server::start(&[]);
    let mut mallory = Client::connect(&server, "mallory").await;
    let id = mallory.user_id().to_owned();
    mallory.join("general").await;
    let path = format!("/api/rooms/general/bans/{id}");
    assert_eq!(api(&server, "PUT", &path, None).await.0, 200);
    mallory.recv_until(|f| f["type"] == "error").await;
    assert_eq!(api(&server, "DELETE", &path, None).await.0, 204);
    // The ban took the room from the connection: it is not joined.
    let refused = mallory
        .request(json!({"type": "send", "room": "general", "text": "x"}))
        .await;
    assert_error(&refused, "not_joined");
    assert_eq!(mallory.join("general").await["type"], "joined");
    assert_eq!(mallory.say("general", "x").await["type"], "ack");
}

#[tokio::test]
async fn a_server_ban_closes_every_connection_and_refuses_new_ones_across_a_restart() {
    let mut server = Server::start(&[]);
    let (mut mallory, again) = guest(&server, "mallory").await;
    let id = mallory.user_id().to_owned();
    let mut tab = Client::connect_url(&server.ws_url(&again)).await;
    let mut alice = Client::connect(&server, "alice").await;
    mallory.join("general").await;
    alice.join("general").await;

    let (status, ban) = api(&server, "PUT", &format!("/api/bans/{id}"), None).await;
    assert_eq!(status, 200, "{ban}");
    assert_eq!(
        (&ban["user"], &ban["room"], &ban["reason"]),
        (&json!(id), &Value::Null, &Value::Null)
    );
    for connection in [&mut mallory, &mut tab] {
        let (frames, ended) = connection.recv_until_end(RECV_TIMEOUT).await;
        let last = frames.last().expect("the error before the close");
        assert_eq!(
            last,
            &json!({"type": "error", "code": "forbidden",
                    "message": "you are banned from this server"})
        );
        assert_eq!(ended, Ended::Close(Some(1008)));
    }
    alice
        .recv_until(|f| f["type"] == "presence" && f["event"] == "leave")
        .await;
    alice.assert_alive().await;

    let refused = server.get(&format!("/ws?{again}")).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    let body: Value = serde_json::from_str(&refused.body).expect("a JSON body");
    assert_eq!(body["code"], "forbidden", "{body}");
    assert_eq!(
        Client::connect_from(&server.ws_url(&again), "127.0.0.1".parse().unwrap())
            .await
            .err(),
        Some(403)
    );

    // Durable: the next process on the same data refuses them too.
    server.sigterm();
    server.wait_exit(RECV_TIMEOUT).expect("the server exits");
    server.restart();
    assert_eq!(server.get(&format!("/ws?{again}")).await.status, 403);
    let (_, list) = api(&server, "GET", "/api/bans", None).await;
    assert_eq!(list["bans"][0]["user"], json!(id), "{list}");

    assert_eq!(
        api(&server, "DELETE", &format!("/api/bans/{id}"), None)
            .await
            .0,
        204
    );
    let mut back = Client::connect_url(&server.ws_url(&again)).await;
    assert_eq!(back.user_id(), id);
    assert_eq!(back.join("general").await["type"], "joined");
}

#[tokio::test]
async fn the_ban_api_lists_newest_first_and_refuses_bad_input() {
    let server = Server::start(&[]);
    for (path, reason) in [
        ("/api/rooms/general/bans/u1", None),
        ("/api/bans/u2", Some("flooding")),
        ("/api/rooms/random/bans/u1", None),
        ("/api/rooms/%E8%81%8A%E5%A4%A9%E5%AE%A4/bans/u3", Some("")),
    ] {
        let body = reason.map(|r| json!({"reason": r}));
        let (status, ban) = api(&server, "PUT", path, body).await;
        assert_eq!(status, 200, "{path}: {ban}");
        // Distinct times, so the order is the one made.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let (status, all) = api(&server, "GET", "/api/bans", None).await;
    assert_eq!(status, 200);
    let pairs: Vec<(Value, Value, Value)> = all["bans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["user"].clone(), b["room"].clone(), b["reason"].clone()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            (json!("u3"), json!("聊天室"), Value::Null),
            (json!("u1"), json!("random"), Value::Null),
            (json!("u2"), Value::Null, json!("flooding")),
            (json!("u1"), json!("general"), Value::Null),
        ]
    );
    let (_, general) = api(&server, "GET", "/api/bans?room=general", None).await;
    assert_eq!(general["bans"].as_array().unwrap().len(), 1, "{general}");
    let (_, u1) = api(&server, "GET", "/api/bans?user=u1", None).await;
    assert_eq!(u1["bans"].as_array().unwrap().len(), 2, "{u1}");

    for (method, path, body, status, code) in [
        (
            "PUT",
            "/api/rooms/%20bad/bans/u1",
            None,
            400,
            "invalid_room",
        ),
        (
            "DELETE",
            "/api/rooms/%20bad/bans/u1",
            None,
            400,
            "invalid_room",
        ),
        ("PUT", "/api/bans/a%01b", None, 400, "bad_request"),
        ("DELETE", "/api/bans/a%01b", None, 400, "bad_request"),
        ("GET", "/api/bans?room=%20bad", None, 400, "invalid_room"),
        (
            "PUT",
            "/api/bans/u9",
            Some(json!({"reason": 5})),
            400,
            "bad_request",
        ),
        (
            "PUT",
            "/api/bans/u9",
            Some(json!({"why": "x"})),
            400,
            "bad_request",
        ),
        (
            "PUT",
            "/api/bans/u9",
            Some(json!({"reason": "x".repeat(501)})),
            400,
            "too_long",
        ),
        ("DELETE", "/api/bans/u9", None, 404, "not_found"),
        (
            "DELETE",
            "/api/rooms/general/bans/u2",
            None,
            404,
            "not_found",
        ),
    ] {
        let (got, answer) = api(&server, method, path, body).await;
        assert_eq!(
            (got, &answer["code"]),
            (status, &json!(code)),
            "{method} {path}: {answer}"
        );
    }
    // Nothing refused was stored.
    let (_, after) = api(&server, "GET", "/api/bans", None).await;
    assert_eq!(after["bans"].as_array().unwrap().len(), 4, "{after}");
}

#[tokio::test]
async fn the_ban_api_is_behind_the_api_key() {
    let server = Server::start(&["--api-key", "0123456789abcdef0123"]);
    let (status, answer) = api(&server, "PUT", "/api/bans/u1", None).await;
    assert_eq!((status, &answer["code"]), (401, &json!("unauthorized")));
    let (status, answer) = api(&server, "GET", "/api/bans", None).await;
    assert_eq!((status, &answer["code"]), (401, &json!("unauthorized")));
    let key = [("Authorization", "Bearer 0123456789abcdef0123")];
    let response = http_request(server.addr, "PUT", "/api/bans/u1", &key, None).await;
    assert_eq!(response.status, 200, "{response:?}");
}
