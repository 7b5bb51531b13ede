//! `Client::search` against the real server: words in any script, the
//! room scope, paging with `next`, messages in their current state,
//! refusals, and a search cut off by a disconnect.

mod common;

use chat_client::{ClientBuilder, ErrorCode, Event, Message, Search, SearchResults};
use common::{JWT_SECRET, Proxy, TOKEN_ARGS, TestServer, WAIT, client, next_matching, user};

/// Token mode, and searches as fast as a test makes them (a connection
/// may otherwise make 10 at once, then 2 a second).
fn args() -> Vec<&'static str> {
    [TOKEN_ARGS, &["--search-rate", "1000"]].concat()
}

/// `(room, seq, text)` of each result, in the order given.
fn found(page: &SearchResults) -> Vec<(String, u64, String)> {
    page.results
        .iter()
        .map(|m: &Message| (m.room.clone(), m.seq, m.text.clone()))
        .collect()
}

fn hit(room: &str, seq: u64, text: &str) -> (String, u64, String) {
    (room.to_owned(), seq, text.to_owned())
}

#[tokio::test]
async fn words_are_found_in_any_script_and_in_their_current_state() {
    let server = TestServer::start(&args()).await;
    let (alice, _events) = user(&server.url(), "alice", false).await;
    alice.join("weather").await.expect("join");
    alice.join("ops").await.expect("join");
    for (room, text) in [
        ("weather", "今天天气很好"),
        ("ops", "weather station deployed"),
        ("weather", "The WEATHER is nice today"),
        ("weather", "明天天气不好, but Today is fine"),
        ("ops", "天气 sensor offline"),
        ("weather", "lunch?"),
    ] {
        alice.send(room, text).await.expect("send");
    }

    // A word inside a longer run of Chinese, newest first, every room.
    let page = alice.search("天气").await.expect("search");
    assert_eq!(
        found(&page),
        [
            hit("ops", 2, "天气 sensor offline"),
            hit("weather", 3, "明天天气不好, but Today is fine"),
            hit("weather", 1, "今天天气很好"),
        ]
    );
    assert_eq!((page.query.as_str(), page.room.as_deref()), ("天气", None));
    assert_eq!(page.next, None, "one page holds them all");

    // ASCII case is ignored; every word must be there, in any order.
    let page = alice.search("weather").await.expect("search");
    assert_eq!(
        found(&page),
        [
            hit("weather", 2, "The WEATHER is nice today"),
            hit("ops", 1, "weather station deployed"),
        ]
    );
    let page = alice.search("TODAY 天气").await.expect("search");
    assert_eq!(
        found(&page),
        [hit("weather", 3, "明天天气不好, but Today is fine")]
    );
    // A single character, shorter than the index's trigrams.
    let page = alice.search("好").await.expect("search");
    assert_eq!(
        found(&page),
        [
            hit("weather", 3, "明天天气不好, but Today is fine"),
            hit("weather", 1, "今天天气很好"),
        ]
    );

    // One room only.
    let page = alice
        .search(Search::new("天气").room("weather"))
        .await
        .expect("search");
    assert_eq!(page.room.as_deref(), Some("weather"));
    assert_eq!(
        found(&page),
        [
            hit("weather", 3, "明天天气不好, but Today is fine"),
            hit("weather", 1, "今天天气很好"),
        ]
    );
    let page = alice
        .search(Search::new("天气").room("nowhere"))
        .await
        .expect("search");
    assert!(page.results.is_empty(), "{:?}", found(&page));

    // An edit is found by its new text only, and shows it.
    alice
        .edit("weather", 4, "dinner under a 彩虹")
        .await
        .expect("edit");
    assert!(
        alice
            .search("lunch")
            .await
            .expect("search")
            .results
            .is_empty()
    );
    let page = alice.search("彩虹").await.expect("search");
    assert_eq!(found(&page), [hit("weather", 4, "dinner under a 彩虹")]);
    assert!(page.results[0].edited_at.is_some(), "{:?}", page.results[0]);

    // A deleted message is never found.
    alice.delete("ops", 2).await.expect("delete");
    assert!(
        alice
            .search("sensor")
            .await
            .expect("search")
            .results
            .is_empty()
    );
    let page = alice.search("天气").await.expect("search");
    assert_eq!(
        found(&page),
        [
            hit("weather", 3, "明天天气不好, but Today is fine"),
            hit("weather", 1, "今天天气很好"),
        ]
    );

    // No join is needed: a user in no room finds the same.
    let (bob, _bob_events) = client(&server.url(), "bob").await;
    let page = bob.search("彩虹").await.expect("search");
    assert_eq!(found(&page), [hit("weather", 4, "dinner under a 彩虹")]);
}

#[tokio::test]
async fn pages_follow_next_to_the_last() {
    let server = TestServer::start(&args()).await;
    let (alice, _events) = client(&server.url(), "alice").await;
    alice.join("paging").await.expect("join");
    alice.join("other").await.expect("join");
    let mut matching = Vec::new();
    for n in 1..=9 {
        let text = if n % 4 == 0 {
            format!("filler {n}")
        } else {
            format!("item {n} 项目")
        };
        let ack = alice.send("paging", &text).await.expect("send");
        if n % 4 != 0 {
            matching.push(ack.seq);
        }
    }
    alice.send("other", "item elsewhere").await.expect("send");
    matching.reverse();
    assert_eq!(matching, [9, 7, 6, 5, 3, 2, 1], "newest first");

    let mut search = Search::new("项目 ITEM").room("paging").limit(3);
    let mut pages = Vec::new();
    loop {
        let page = alice.search(search.clone()).await.expect("search");
        assert!(
            page.results.iter().all(|m| m.room == "paging"),
            "{:?}",
            found(&page)
        );
        pages.push(page.results.iter().map(|m| m.seq).collect::<Vec<_>>());
        match page.next {
            Some(next) => search = search.cursor(next),
            None => break,
        }
    }
    assert_eq!(pages, [vec![9, 7, 6], vec![5, 3, 2], vec![1]]);

    // A page that ends exactly at the last match says there is no next.
    let page = alice
        .search(Search::new("项目").room("paging").limit(7))
        .await
        .expect("search");
    assert_eq!(page.results.len(), 7);
    assert_eq!(page.next, None);

    // Every room: the other room's match is the newest.
    let first = alice
        .search(Search::new("item").limit(2))
        .await
        .expect("search");
    assert_eq!(
        found(&first)
            .iter()
            .map(|(room, seq, _)| (room.as_str(), *seq))
            .collect::<Vec<_>>(),
        [("other", 1), ("paging", 9)]
    );
    let cursor = first.next.expect("more pages");
    let second = alice
        .search(Search::new("item").limit(50).cursor(cursor))
        .await
        .expect("search");
    assert_eq!(
        second.results.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [7, 6, 5, 3, 2, 1]
    );
    assert_eq!(second.next, None);
}

/// A token for `sub` whose `rooms` claim allows only `rooms`.
fn token_for_rooms(sub: &str, rooms: &[&str]) -> String {
    let claims = serde_json::json!({
        "sub": sub,
        "name": sub,
        "exp": 4_000_000_000u64,
        "rooms": rooms,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign a token")
}

#[tokio::test]
async fn refusals_come_with_their_code_and_the_claim_bounds_the_rooms() {
    let server = TestServer::start(&args()).await;
    let (alice, _events) = user(&server.url(), "alice", false).await;
    for room in ["team-a", "secret"] {
        alice.join(room).await.expect("join");
        alice
            .send(room, &format!("plan for {room}"))
            .await
            .expect("send");
    }

    let code = |search: Search| {
        let alice = alice.clone();
        async move {
            let error = alice.search(search).await.expect_err("refused");
            assert!(!error.is_retryable(), "{error}");
            error.code()
        }
    };
    assert_eq!(code(Search::new("")).await, Some(ErrorCode::BadRequest));
    assert_eq!(code(Search::new("   ")).await, Some(ErrorCode::BadRequest));
    assert_eq!(
        code(Search::new("a b c d e f g h i")).await,
        Some(ErrorCode::BadRequest),
        "nine words"
    );
    assert_eq!(
        code(Search::new("x".repeat(201))).await,
        Some(ErrorCode::TooLong)
    );
    assert_eq!(
        code(Search::new("plan").room(" padded")).await,
        Some(ErrorCode::InvalidRoom)
    );
    assert_eq!(
        code(Search::new("plan").limit(0)).await,
        Some(ErrorCode::BadRequest)
    );
    let error = alice.search("").await.expect_err("refused");
    assert!(error.to_string().starts_with("bad_request: "), "{error}");

    // A token allowed `team-*` only: without a room it searches those;
    // another room is forbidden.
    let (carol, _carol_events) = ClientBuilder::new(server.url())
        .token(token_for_rooms("carol", &["team-*"]))
        .request_timeout(WAIT)
        .connect()
        .await
        .expect("connect");
    let page = carol.search("plan").await.expect("search");
    assert_eq!(found(&page), [hit("team-a", 1, "plan for team-a")]);
    let error = carol
        .search(Search::new("plan").room("secret"))
        .await
        .expect_err("refused");
    assert_eq!(error.code(), Some(ErrorCode::Forbidden));
    // Alice's token has no claim: every room.
    assert_eq!(alice.search("plan").await.expect("search").results.len(), 2);

    // Refusals never break the connection.
    alice.ping().await.expect("still connected");
}

#[tokio::test]
async fn searches_past_the_rate_are_refused_as_retryable() {
    // 0.2 searches a second: a burst of one, then none for five seconds.
    let server = TestServer::start(&["--search-rate", "0.2"]).await;
    let (alice, _events) = client(&server.url(), "alice").await;
    alice
        .search("anything")
        .await
        .expect("the burst's one search");
    let error = alice.search("anything").await.expect_err("refused");
    assert_eq!(error.code(), Some(ErrorCode::RateLimited));
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_search_cut_off_by_a_disconnect_is_answered_after_reconnecting() {
    let server = TestServer::start(&[]).await;
    let proxy = Proxy::start(server.addr).await;
    let (alice, mut alice_events) = client(&proxy.url, "alice").await;
    let (bob, _bob_events) = client(&server.url(), "bob").await;
    bob.join("r").await.expect("join");
    bob.send("r", "a needle in the 干草堆").await.expect("send");

    // Sent, and its reply lost: the search is pending when the connection
    // is cut. (Should the cut come first, the search waits for the next
    // connection instead; either way it must be answered.)
    proxy.swallow_replies();
    let search = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.search("needle").await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    proxy.cut();
    let page = tokio::time::timeout(WAIT, search)
        .await
        .expect("the search completes")
        .expect("task")
        .expect("answered after reconnecting");
    assert_eq!(found(&page), [hit("r", 1, "a needle in the 干草堆")]);

    // Made while there is no connection: sent on the next one.
    next_matching(&mut alice_events, "reconnected", |e| {
        matches!(e, Event::Reconnected(_))
    })
    .await;
    proxy.hold();
    next_matching(&mut alice_events, "reconnecting", |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    let search = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.search(Search::new("干草堆").room("r")).await })
    };
    proxy.release();
    let page = tokio::time::timeout(WAIT, search)
        .await
        .expect("the search completes")
        .expect("task")
        .expect("answered after reconnecting");
    assert_eq!(found(&page), [hit("r", 1, "a needle in the 干草堆")]);
}
