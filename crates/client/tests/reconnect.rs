//! Reconnecting: after the server restarts, the event stream goes on with
//! no gaps and no doubles (direct-message rooms too), sends made during the
//! outage are acked once, a guest comes back as the same user, and after a
//! drain (close 1001) the first attempt comes within 250 ms.

mod common;

use std::time::Duration;

use chat_client::{Backoff, ClientBuilder, CloseReason, Error, Event};
use common::{
    NO_RATE_LIMIT, Proxy, TOKEN_ARGS, TestServer, WAIT, client, messages_until, next_matching,
    seqs, until_member, user,
};
use futures_util::SinkExt;
use futures_util::future::join_all;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// More than a `joined` reply returns (1000), so resuming must page.
const MISSED: u64 = 1200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_a_restart_without_gaps_or_doubles() {
    let mut args = NO_RATE_LIMIT.to_vec();
    args.extend(["--outbound-queue", "100000"]);
    let mut server = TestServer::start(&args).await;
    let (alice, mut alice_events) = client(&server.url(), "alice").await;
    let (bob, _bob_events) = client(&server.url(), "bob").await;
    alice.join("room").await.expect("alice joins");
    bob.join("room").await.expect("bob joins");
    for i in 1..=3 {
        bob.send("room", &format!("before {i}"))
            .await
            .expect("send");
    }
    let before = messages_until(&mut alice_events, "room", 3).await;
    assert_eq!(seqs(&before), [1, 2, 3]);

    server.stop().await;
    next_matching(&mut alice_events, "reconnecting", |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;

    // A send made while the server is down waits for the next connection.
    let outage_send = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.send("room", "sent during the outage").await })
    };

    // Meanwhile the room moves on where alice cannot see it.
    server
        .elsewhere(|url| async move {
            let (carol, _events) = client(&url, "carol").await;
            carol.join("room").await.expect("carol joins");
            for chunk in (4..4 + MISSED).collect::<Vec<_>>().chunks(200) {
                let texts: Vec<String> = chunk.iter().map(|i| format!("missed {i}")).collect();
                let sends = texts.iter().map(|text| carol.send("room", text));
                for ack in join_all(sends).await {
                    ack.expect("carol's send is acked");
                }
            }
            carol.close().await;
        })
        .await;

    server.restart().await;
    let reconnected = next_matching(&mut alice_events, "reconnected", |e| {
        matches!(e, Event::Reconnected(_))
    })
    .await;
    let Event::Reconnected(session) = reconnected else {
        unreachable!()
    };
    assert_eq!(session.user.name, "alice");
    assert_eq!(alice.session(), session);

    let ack = tokio::time::timeout(WAIT, outage_send)
        .await
        .expect("the outage send completes")
        .expect("task")
        .expect("the outage send is acked after reconnecting");
    let last = 3 + MISSED + 1;
    assert_eq!((ack.seq, ack.duplicate), (last, false));

    let after = messages_until(&mut alice_events, "room", last).await;
    assert_eq!(
        seqs(&after),
        (4..=last).collect::<Vec<_>>(),
        "every missed message exactly once, in order"
    );
    assert_eq!(after[0].text, "missed 4");
    assert_eq!(
        after.last().map(|m| m.text.as_str()),
        Some("sent during the outage")
    );

    // The live stream goes on after the resume.
    bob.join("room").await.expect("bob is back too");
    bob.send("room", "after").await.expect("send");
    let live = messages_until(&mut alice_events, "room", last + 1).await;
    assert_eq!(seqs(&live), [last + 1]);
}

#[tokio::test]
async fn after_a_drain_the_first_attempt_comes_within_the_first_backoff_ceiling() {
    // A drained server closes with 1001; clients come back at once, each
    // after a random 0..=250 ms (the default `Backoff::initial`), so that
    // thousands of them do not arrive in the same millisecond.
    let mut server = TestServer::start(&[]).await;
    let (_alice, mut events) = client(&server.url(), "alice").await;
    server.stop().await;
    let first = next_matching(&mut events, "reconnecting", |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    let Event::Reconnecting {
        attempt,
        delay,
        reason,
    } = first
    else {
        unreachable!()
    };
    assert_eq!(attempt, 1);
    assert!(reason.contains("1001"), "closed by the drain: {reason}");
    assert!(
        delay <= Backoff::default().initial,
        "the first delay is within 0..=250 ms: {delay:?}"
    );
}

#[tokio::test]
async fn a_silent_server_is_declared_dead_and_left() {
    // A fake server that says welcome and then nothing, not even pings.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/ws", listener.local_addr().expect("addr"));
    let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                continue;
            };
            let welcome = r#"{"type":"welcome","session":"s_1","user":{"id":"u_1","name":"x"},"heartbeat_ms":100,"text":"hi"}"#;
            if ws.send(WsMessage::text(welcome)).await.is_ok() {
                held.push(ws);
                let _ = accepted_tx.send(());
            }
        }
    });
    let (client, mut events) = ClientBuilder::new(&url)
        .backoff(common::fast_backoff())
        .connect()
        .await
        .expect("connect");
    assert_eq!(client.session().heartbeat, Duration::from_millis(100));
    accepted.recv().await.expect("first connection");
    let lost = next_matching(&mut events, "reconnecting", |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    assert!(
        matches!(&lost, Event::Reconnecting { reason, .. } if reason.contains("no frame")),
        "{lost:?}"
    );
    tokio::time::timeout(WAIT, accepted.recv())
        .await
        .expect("reconnects in time")
        .expect("second connection");
    next_matching(&mut events, "reconnected", |e| {
        matches!(e, Event::Reconnected(_))
    })
    .await;
}

#[tokio::test]
async fn gives_up_after_the_configured_attempts() {
    let mut server = TestServer::start(&[]).await;
    let (alice, mut events) = ClientBuilder::new(server.url())
        .backoff(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(20),
            max_attempts: Some(2),
        })
        .request_timeout(WAIT)
        .connect()
        .await
        .expect("connect");
    alice.join("r").await.expect("join");
    let waiting = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.history("r", Default::default()).await })
    };
    server.stop().await;
    let closed = next_matching(&mut events, "closed", |e| matches!(e, Event::Closed(_))).await;
    assert!(
        matches!(
            &closed,
            Event::Closed(CloseReason::GaveUp { attempts: 2, .. })
        ),
        "{closed:?}"
    );
    // A request either got its answer before the stop or fails as closed.
    let outcome = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("in time")
        .expect("task");
    assert!(matches!(outcome, Ok(_) | Err(Error::Closed)), "{outcome:?}");
    assert!(matches!(alice.ping().await, Err(Error::Closed)));
}

#[tokio::test]
async fn an_idle_client_answers_heartbeats_and_stays_connected() {
    // The server closes connections silent for two intervals; the client
    // declares a server dead after two intervals without a frame. Over three
    // intervals neither may happen: pongs go out, pings come in. (Intervals
    // of a second leave room for a loaded CI machine to be late.)
    let server = TestServer::start(&["--heartbeat-ms", "1000"]).await;
    let (alice, mut events) = client(&server.url(), "alice").await;
    assert_eq!(alice.session().heartbeat, Duration::from_millis(1000));
    alice.join("r").await.expect("join");
    let quiet = tokio::time::timeout(Duration::from_millis(3000), events.recv()).await;
    assert!(quiet.is_err(), "no event while idle, got {quiet:?}");
    let session = alice.session();
    alice.send("r", "still here").await.expect("send");
    assert_eq!(alice.session(), session, "the same connection");
}

#[tokio::test]
async fn a_send_whose_ack_was_lost_is_acked_once_after_reconnecting() {
    let server = TestServer::start(&[]).await;
    let proxy = Proxy::start(server.addr).await;
    let (alice, mut alice_events) = client(&proxy.url, "alice").await;
    let (bob, mut bob_events) = client(&server.url(), "bob").await;
    alice.join("r").await.expect("join");
    bob.join("r").await.expect("join");
    alice.send("r", "first").await.expect("send");
    assert_eq!(seqs(&messages_until(&mut alice_events, "r", 1).await), [1]);

    // The send reaches the server and is stored, but its ack (and the
    // broadcast) never reach alice.
    proxy.swallow_replies();
    let send = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.send("r", "ack lost").await })
    };
    let stored = messages_until(&mut bob_events, "r", 2).await;
    assert_eq!(stored.last().map(|m| m.text.as_str()), Some("ack lost"));

    proxy.cut();
    let ack = tokio::time::timeout(WAIT, send)
        .await
        .expect("the send completes")
        .expect("task")
        .expect("acked after reconnecting");
    assert_eq!(ack.seq, 2);
    assert!(ack.duplicate, "the retry found the stored message");

    bob.send("r", "third").await.expect("send");
    let got = messages_until(&mut alice_events, "r", 3).await;
    assert_eq!(seqs(&got), [2, 3], "the lost broadcast once, then live");
    let page = bob
        .history("r", chat_client::HistoryQuery::latest(10))
        .await
        .expect("history");
    assert_eq!(seqs(&page.messages), [1, 2, 3], "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_comes_back_as_the_same_user() {
    let mut server = TestServer::start(&[]).await;
    let (gus, mut events) = client(&server.url(), "gus").await;
    let first = gus.session();
    let credential = gus.guest_token().expect("a guest gets a credential");
    assert_eq!(first.guest_token.as_deref(), Some(credential.as_str()));

    server.stop().await;
    server.restart().await;
    let reconnected = next_matching(&mut events, "reconnected", |e| {
        matches!(e, Event::Reconnected(_))
    })
    .await;
    let Event::Reconnected(session) = reconnected else {
        unreachable!()
    };
    assert_eq!(session.user, first.user, "the same user");
    assert_ne!(session.id, first.id, "on a new session");
    assert!(gus.guest_token().is_some());

    // A later run given the credential is that user too.
    let (again, _events) = ClientBuilder::new(server.url())
        .guest_token(gus.guest_token().expect("the latest credential"))
        .request_timeout(WAIT)
        .connect()
        .await
        .expect("connect with the credential");
    assert_eq!(again.session().user.id, first.user.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_room_resumes_like_any_joined_room() {
    let mut server = TestServer::start(TOKEN_ARGS).await;
    let (alice, mut alice_events) = user(&server.url(), "alice", false).await;
    let (bob, _bob_events) = user(&server.url(), "bob", false).await;
    bob.join("lobby").await.expect("join");
    until_member(&bob, "lobby").await;
    let joined = alice.dm("bob").await.expect("alice opens a dm");
    let room = joined.room.clone();
    alice.send(&room, "1").await.expect("send");
    assert_eq!(
        seqs(&messages_until(&mut alice_events, &room, 1).await),
        [1]
    );

    server.stop().await;
    next_matching(&mut alice_events, "reconnecting", |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    let dm_room = room.clone();
    server
        .elsewhere(|url| async move {
            let (bob, _events) = user(&url, "bob", false).await;
            let joined = bob.dm("alice").await.expect("bob opens it too");
            assert_eq!(joined.room, dm_room);
            for text in ["2", "3"] {
                bob.send(&dm_room, text).await.expect("send");
            }
            bob.close().await;
        })
        .await;
    server.restart().await;

    let missed = messages_until(&mut alice_events, &room, 3).await;
    assert_eq!(seqs(&missed), [2, 3], "what was missed, once, in order");
    bob.dm("alice").await.expect("bob is back");
    bob.send(&room, "4").await.expect("send");
    assert_eq!(
        seqs(&messages_until(&mut alice_events, &room, 4).await),
        [4]
    );
}

/// `PUT` on the server's HTTP API (loopback needs no key); the status.
async fn api_put(server: &TestServer, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect to the API");
    let request = format!(
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_stops_the_room_or_the_client_for_good() {
    let server = TestServer::start(TOKEN_ARGS).await;
    let (mallory, mut events) = user(&server.url(), "mallory", false).await;
    mallory.join("general").await.expect("joins general");
    mallory.join("random").await.expect("joins random");

    // A room ban: the room is no longer followed, the others are.
    assert_eq!(
        api_put(&server, "/api/rooms/general/bans/mallory").await,
        200
    );
    let removed = next_matching(&mut events, "room removed", |e| {
        matches!(e, Event::RoomRemoved { .. })
    })
    .await;
    let Event::RoomRemoved { room, code, .. } = removed else {
        unreachable!()
    };
    assert_eq!(
        (room.as_str(), code),
        ("general", chat_protocol::ErrorCode::Forbidden)
    );
    let refused = mallory.send("general", "let me back").await;
    assert!(refused.is_err(), "a send to the removed room: {refused:?}");
    mallory
        .send("random", "still here")
        .await
        .expect("random still works");

    // A server ban: closed with 1008, and no reconnection.
    assert_eq!(api_put(&server, "/api/bans/mallory").await, 200);
    let closed = next_matching(&mut events, "closed", |e| matches!(e, Event::Closed(_))).await;
    assert!(
        matches!(
            closed,
            Event::Closed(CloseReason::ServerClosed { code: 1008, .. })
        ),
        "{closed:?}"
    );
    assert!(mallory.join("random").await.is_err(), "the client stopped");
}
