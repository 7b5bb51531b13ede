//! The client library against the real server, over real sockets: replies,
//! event order, idempotent sends, typed errors.

mod common;

use chat_client::{Error, ErrorCode, Event, HistoryQuery, PresenceEvent};
use common::{TestServer, client, messages_until, next_matching, seqs};

#[tokio::test]
async fn send_returns_the_ack_and_events_arrive_in_order() {
    let server = TestServer::start(&[]).await;
    let (alice, mut alice_events) = client(&server.url(), "alice").await;
    let (bob, mut bob_events) = client(&server.url(), "bob").await;
    assert_eq!(alice.session().user.name, "alice");

    let joined = alice.join("general").await.expect("alice joins");
    assert_eq!((joined.room.as_str(), joined.seq), ("general", 0));
    assert!(joined.recent.is_empty());
    let joined = bob.join("general").await.expect("bob joins");
    assert_eq!(joined.members.len(), 2, "{joined:?}");
    let presence = next_matching(&mut alice_events, "bob's presence", |e| {
        matches!(e, Event::Presence { .. })
    })
    .await;
    assert!(
        matches!(&presence, Event::Presence { event: PresenceEvent::Join, user, .. } if user.name == "bob"),
        "{presence:?}"
    );

    let mut ids = Vec::new();
    for i in 1..=10u64 {
        let ack = alice
            .send("general", &format!("hello {i}"))
            .await
            .expect("send is acked");
        assert_eq!((ack.room.as_str(), ack.seq), ("general", i));
        assert!(!ack.duplicate);
        ids.push(ack.id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10, "every send gets its own id");

    for events in [&mut bob_events, &mut alice_events] {
        let got = messages_until(events, "general", 10).await;
        assert_eq!(seqs(&got), (1..=10).collect::<Vec<_>>());
        assert_eq!(got[0].text, "hello 1");
        assert_eq!(got[9].from.name, "alice");
    }

    // A later joiner gets the recent messages as context, and events only
    // for what comes after.
    let (carol, mut carol_events) = client(&server.url(), "carol").await;
    let joined = carol.join("general").await.expect("carol joins");
    assert_eq!(joined.seq, 10);
    assert_eq!(
        seqs(&joined.recent),
        (1..=10).collect::<Vec<_>>(),
        "recent context"
    );
    alice.send("general", "eleven").await.expect("send");
    let got = messages_until(&mut carol_events, "general", 11).await;
    assert_eq!(seqs(&got), [11]);

    // After leaving, bob hears nothing more from the room.
    bob.leave("general").await.expect("leave");
    alice.send("general", "twelve").await.expect("send");
    bob.join("other").await.expect("join another room");
    bob.send("other", "marker").await.expect("send");
    let next = next_matching(&mut bob_events, "a message", |e| {
        matches!(e, Event::Message(_))
    })
    .await;
    assert!(
        matches!(&next, Event::Message(m) if m.seq == 11 && m.room == "general"),
        "11 was still on its way before the leave: {next:?}"
    );
    let next = next_matching(&mut bob_events, "a message", |e| {
        matches!(e, Event::Message(_))
    })
    .await;
    assert!(
        matches!(&next, Event::Message(m) if m.room == "other"),
        "nothing from general after leaving: {next:?}"
    );
}

#[tokio::test]
async fn join_since_replays_then_follows() {
    let server = TestServer::start(&[]).await;
    let (alice, _alice_events) = client(&server.url(), "alice").await;
    alice.join("r").await.expect("join");
    for i in 1..=5 {
        alice.send("r", &format!("m{i}")).await.expect("send");
    }
    let (bob, mut bob_events) = client(&server.url(), "bob").await;
    let joined = bob.join_since("r", 2).await.expect("join since");
    assert_eq!(joined.seq, 5);
    assert!(
        joined.recent.is_empty(),
        "the backlog comes as events instead"
    );
    alice.send("r", "m6").await.expect("send");
    let got = messages_until(&mut bob_events, "r", 6).await;
    assert_eq!(seqs(&got), [3, 4, 5, 6]);
    assert_eq!(got[0].text, "m3");

    // Joining again does not replay anything.
    bob.join_since("r", 0).await.expect("join again");
    alice.send("r", "m7").await.expect("send");
    let got = messages_until(&mut bob_events, "r", 7).await;
    assert_eq!(seqs(&got), [7]);
}

#[tokio::test]
async fn a_retried_id_is_stored_and_delivered_once() {
    let server = TestServer::start(&[]).await;
    let (alice, _alice_events) = client(&server.url(), "alice").await;
    let (bob, mut bob_events) = client(&server.url(), "bob").await;
    alice.join("r").await.expect("join");
    bob.join("r").await.expect("join");

    let first = alice.send_with_id("r", "once", "x-1").await.expect("send");
    let again = alice.send_with_id("r", "once", "x-1").await.expect("retry");
    assert_eq!((first.seq, first.duplicate), (1, false));
    assert_eq!(
        (again.seq, again.id.as_str(), again.duplicate),
        (1, "x-1", true)
    );
    assert_eq!(again.ts, first.ts, "the original ack");
    let next = alice.send("r", "next").await.expect("send");
    assert_eq!(next.seq, 2);

    let got = messages_until(&mut bob_events, "r", 2).await;
    assert_eq!(seqs(&got), [1, 2], "the retry was not broadcast");
    let page = bob
        .history("r", HistoryQuery::latest(50))
        .await
        .expect("history");
    assert_eq!(seqs(&page.messages), [1, 2]);
    assert!(!page.more);
}

#[tokio::test]
async fn server_errors_are_typed() {
    let server = TestServer::start(&["--max-text-chars", "10"]).await;
    let (alice, _events) = client(&server.url(), "alice").await;

    let code = |e: Error| e.code();
    assert_eq!(
        alice.join("").await.map_err(code).unwrap_err(),
        Some(ErrorCode::InvalidRoom)
    );
    assert_eq!(
        alice.join(" padded").await.map_err(code).unwrap_err(),
        Some(ErrorCode::InvalidRoom)
    );
    assert_eq!(
        alice
            .send("never-joined", "hi")
            .await
            .map_err(code)
            .unwrap_err(),
        Some(ErrorCode::NotJoined)
    );
    alice.join("r").await.expect("join");
    let too_long = alice.send("r", "eleven chars").await.unwrap_err();
    assert_eq!(too_long.code(), Some(ErrorCode::TooLong));
    assert!(!too_long.is_retryable());
    assert!(too_long.to_string().starts_with("too_long: "), "{too_long}");
    assert_eq!(
        alice
            .history("r", HistoryQuery::latest(0))
            .await
            .map_err(code)
            .unwrap_err(),
        Some(ErrorCode::BadRequest)
    );

    // Errors never break the connection.
    alice.ping().await.expect("still connected");
    assert_eq!(alice.send("r", "fine").await.expect("send").seq, 1);
}

#[tokio::test]
async fn rate_limited_sends_are_retried_until_acked() {
    // One send a second after a burst of one: the second and third sends
    // are refused with rate_limited at first, and retried by the client.
    let server = TestServer::start(&["--send-rate", "4", "--send-burst", "1"]).await;
    let (alice, _events) = client(&server.url(), "alice").await;
    alice.join("r").await.expect("join");
    let mut acked = Vec::new();
    for text in ["a", "b", "c"] {
        acked.push(
            alice
                .send("r", text)
                .await
                .expect("acked after retries")
                .seq,
        );
    }
    assert_eq!(acked, [1, 2, 3]);
}

#[tokio::test]
async fn typing_reaches_the_others() {
    let server = TestServer::start(&[]).await;
    let (alice, _alice_events) = client(&server.url(), "alice").await;
    let (bob, mut bob_events) = client(&server.url(), "bob").await;
    alice.join("r").await.expect("join");
    bob.join("r").await.expect("join");
    alice.typing("r").expect("typing");
    let typing = next_matching(&mut bob_events, "typing", |e| {
        matches!(e, Event::Typing { .. })
    })
    .await;
    assert!(
        matches!(&typing, Event::Typing { room, user } if room == "r" && user.name == "alice"),
        "{typing:?}"
    );
}

#[tokio::test]
async fn close_ends_the_stream_and_later_calls_fail() {
    let server = TestServer::start(&[]).await;
    let (alice, mut events) = client(&server.url(), "alice").await;
    alice.join("r").await.expect("join");
    let other_handle = alice.clone();
    alice.close().await;
    let last = next_matching(&mut events, "the closed event", |e| {
        matches!(e, Event::Closed(_))
    })
    .await;
    assert_eq!(last, Event::Closed(chat_client::CloseReason::ByClient));
    assert!(events.recv().await.is_none(), "Closed is the last event");
    assert!(matches!(
        other_handle.send("r", "late").await,
        Err(Error::Closed)
    ));
}

#[tokio::test]
async fn connecting_to_nothing_fails_at_once() {
    // Bind a port, then free it: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let result = chat_client::Client::connect(format!("ws://{addr}/ws")).await;
    assert!(matches!(result, Err(Error::Connect { .. })), "{result:?}");
    let result = chat_client::Client::connect("http://example.invalid/ws").await;
    assert!(
        matches!(result, Err(Error::InvalidUrl { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_refused_upgrade_is_reported_with_its_status() {
    let server = TestServer::start(&[]).await;
    // Names may not start with a space: refused with HTTP 400, no WebSocket.
    let result = chat_client::ClientBuilder::new(server.url())
        .name(" padded")
        .connect()
        .await;
    assert!(
        matches!(result, Err(Error::Rejected { status: 400, .. })),
        "{result:?}"
    );
    // Any script is fine, percent-encoded on the way.
    let (client, _events) = common::client(&server.url(), "Zoë 你好").await;
    assert_eq!(client.session().user.name, "Zoë 你好");
}
