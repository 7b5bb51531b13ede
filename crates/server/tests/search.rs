//! Search end to end (docs/protocol.md §3, "search"): the `search` request
//! on `/ws` and `GET /api/search`, over a room or every room the user may
//! read, paged newest first, in Chinese and English, and showing edits and
//! deletions at once.

mod common;

use common::{Client, Server, http_request};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

const SECRET: &str = "an HS256 secret of at least thirty-two bytes";

fn results(reply: &Value) -> Vec<(String, String)> {
    assert_eq!(reply["type"], "search_results", "{reply}");
    reply["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["room"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn hit(room: &str, text: &str) -> (String, String) {
    (room.to_owned(), text.to_owned())
}

async fn search(client: &mut Client, query: Value) -> Value {
    let mut frame = query;
    frame["type"] = json!("search");
    client.request(frame).await
}

#[tokio::test]
async fn search_finds_words_in_any_script_and_follows_edits_and_deletions() {
    let server = Server::start(&[]);
    let mut alice = Client::connect(&server, "alice").await;
    alice.join("general").await;
    alice.join("random").await;
    let greeting = alice.say("general", "你好吗, world").await["seq"].clone();
    alice.say("random", "Hello world").await;
    let typo = alice.say("general", "wrold peace").await["seq"].clone();

    let reply = search(&mut alice, json!({"query": "WORLD"})).await;
    assert_eq!(
        results(&reply),
        [
            hit("random", "Hello world"),
            hit("general", "你好吗, world")
        ]
    );
    assert!(
        reply.get("next").is_none() && reply.get("room").is_none(),
        "{reply}"
    );
    let reply = search(&mut alice, json!({"query": "你好", "room": "general"})).await;
    assert_eq!(results(&reply), [hit("general", "你好吗, world")]);
    assert_eq!(reply["room"], "general");

    // Not joined: search, like history, needs no join.
    let mut bob = Client::connect(&server, "bob").await;
    let reply = search(&mut bob, json!({"query": "world", "room": "random"})).await;
    assert_eq!(results(&reply), [hit("random", "Hello world")]);

    let fix = json!({"type": "edit", "room": "general", "seq": typo, "text": "world peace"});
    assert_eq!(alice.request(fix).await["type"], "ack");
    let delete = json!({"type": "delete", "room": "general", "seq": greeting});
    assert_eq!(alice.request(delete).await["type"], "ack");
    let reply = search(&mut bob, json!({"query": "world"})).await;
    assert_eq!(
        results(&reply),
        [hit("general", "world peace"), hit("random", "Hello world")]
    );
    assert!(reply["results"][0]["edited_at"].is_i64());
    assert_eq!(
        results(&search(&mut bob, json!({"query": "你好"})).await),
        []
    );

    for (query, code) in [
        (json!({"query": ""}), "bad_request"),
        (json!({"query": "a b c d e f g h i"}), "bad_request"),
        (json!({"query": "x", "limit": 0}), "bad_request"),
        (json!({"query": "x", "room": " bad"}), "invalid_room"),
        (json!({"query": "x".repeat(201)}), "too_long"),
    ] {
        let reply = search(&mut bob, query.clone()).await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("error"), Some(code)),
            "{query}"
        );
    }
}

#[tokio::test]
async fn results_come_in_pages_newest_first() {
    let server = Server::start(&[]);
    let mut alice = Client::connect(&server, "alice").await;
    alice.join("r").await;
    for i in 1..=7 {
        alice.say("r", &format!("needle {i}")).await;
    }
    alice.say("r", "hay").await;
    let mut cursor = Value::Null;
    let mut pages = Vec::new();
    loop {
        let reply = search(
            &mut alice,
            json!({"query": "needle", "limit": 3, "cursor": cursor}),
        )
        .await;
        pages.push(
            results(&reply)
                .into_iter()
                .map(|(_, t)| t)
                .collect::<Vec<_>>(),
        );
        match reply.get("next") {
            Some(next) => cursor = next.clone(),
            None => break,
        }
    }
    assert_eq!(
        pages,
        [
            vec!["needle 7", "needle 6", "needle 5"],
            vec!["needle 4", "needle 3", "needle 2"],
            vec!["needle 1"]
        ]
    );

    let response = http_request(
        server.addr,
        "GET",
        "/api/search?q=needle&room=r&limit=2",
        &[],
        None,
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    let body: Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(body["results"][0]["text"], "needle 7");
    let next = body["next"].as_u64().expect("a next page");
    let path = format!("/api/search?q=needle&room=r&limit=2&cursor={next}");
    let body: Value = serde_json::from_str(
        &http_request(server.addr, "GET", &path, &[], None)
            .await
            .body,
    )
    .unwrap();
    assert_eq!(body["results"][0]["text"], "needle 5");
    let bad = http_request(server.addr, "GET", "/api/search?q=", &[], None).await;
    assert_eq!(bad.status, 400, "{bad:?}");
}

#[tokio::test]
async fn a_token_s_rooms_bound_what_search_can_see() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let server = Server::start(&["--jwt-secret-file", secret.to_str().unwrap()]);
    let token = |sub: &str, rooms: Value| {
        let claims =
            json!({"sub": sub, "rooms": rooms, "exp": jsonwebtoken::get_current_timestamp() + 300});
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let mut admin =
        Client::connect_url(&server.ws_url(&format!("token={}", token("admin", json!(["*"])))))
            .await;
    for room in ["team-red", "team-blue", "secret", "team_x"] {
        admin.join(room).await;
        admin.say(room, &format!("plans of {room}")).await;
    }
    let url = server.ws_url(&format!(
        "token={}",
        token("red", json!(["team-red", "team_*"]))
    ));
    let mut red = Client::connect_url(&url).await;
    let reply = search(&mut red, json!({"query": "plans"})).await;
    assert_eq!(
        results(&reply),
        [
            hit("team_x", "plans of team_x"),
            hit("team-red", "plans of team-red")
        ]
    );
    let reply = search(&mut red, json!({"query": "plans", "room": "secret"})).await;
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );
}

#[tokio::test]
async fn searches_beyond_the_rate_are_refused() {
    let server = Server::start(&["--search-rate", "1"]);
    let mut client = Client::connect(&server, "searcher").await;
    let frames = (0..6)
        .map(|_| json!({"type": "search", "query": "anything"}))
        .collect();
    let replies = client.blast(frames).await;
    let kinds: Vec<&str> = replies
        .iter()
        .map(|r| r["code"].as_str().unwrap_or(r["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        ["search_results"; 5]
            .iter()
            .copied()
            .chain(["rate_limited"])
            .collect::<Vec<_>>()
    );
}
