//! Production limits (docs/protocol.md §6), each tripped over real sockets
//! while another client on the same server is served normally: connections
//! per address (on `/ws` and `/socket.io/`), new connections a second per
//! address (at accept), the idle timeout, rooms per
//! connection, typing rate, frame and text size, and retention.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOME: [u8; 4] = [127, 0, 0, 1];
/// Another address of this machine: all of 127/8 is loopback on Linux.
const NEIGHBOUR: [u8; 4] = [127, 0, 0, 2];

/// Opens a Socket.IO session by long-polling from `from`; the HTTP status.
async fn socketio_open_from(server: &Server, from: IpAddr) -> u16 {
    let mut stream = tcp_connect_from(server.addr, from).await.unwrap();
    let request = format!(
        "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 64];
    let n = tokio::time::timeout(RECV_TIMEOUT, stream.read(&mut head))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&head[..n]);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

#[tokio::test]
async fn connections_per_address_are_capped_on_both_transports() {
    let server = Server::start(&["--max-connections-per-ip", "2"]);
    let url = server.ws_url("name=a");
    let home = IpAddr::from(HOME);
    let mut first = Client::connect_from(&url, home).await.expect("first");
    let _second = Client::connect_from(&url, home).await.expect("second");
    assert_eq!(Client::connect_from(&url, home).await.err(), Some(429));
    assert_eq!(socketio_open_from(&server, home).await, 429);

    // Another address is served as usual, on both transports.
    let neighbour = IpAddr::from(NEIGHBOUR);
    let mut other = Client::connect_from(&url, neighbour).await.expect("other");
    other.join("r").await;
    other.say("r", "still served").await;
    assert_eq!(socketio_open_from(&server, neighbour).await, 200);

    // A closed connection gives its slot back.
    first.assert_alive().await;
    first.close().await;
    let deadline = Instant::now() + RECV_TIMEOUT;
    loop {
        match Client::connect_from(&url, home).await {
            Ok(mut again) => {
                again.assert_alive().await;
                break;
            }
            Err(429) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("no slot came back: {status}"),
        }
    }
}

/// What the server did with a raw TCP connection that sends nothing.
#[derive(Debug)]
enum Answer {
    /// Wrote this, then closed.
    Said(String),
    /// Reset it.
    Reset,
    /// Accepted it and waited for a request.
    Waited,
}

async fn answer_to(server: &Server, from: IpAddr) -> Answer {
    // The reset can come before the client's side of the handshake ends.
    let mut stream = match tcp_connect_from(server.addr, from).await {
        Ok(stream) => stream,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Answer::Reset,
        Err(e) => panic!("connect: {e}"),
    };
    let mut said = Vec::new();
    match tokio::time::timeout(Duration::from_millis(300), stream.read_to_end(&mut said)).await {
        Ok(Ok(_)) => Answer::Said(String::from_utf8_lossy(&said).into_owned()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Answer::Reset,
        Ok(Err(e)) => panic!("reading the refusal: {e}"),
        Err(_) => Answer::Waited,
    }
}

#[tokio::test]
async fn new_connections_per_address_are_refused_at_accept_past_the_rate() {
    // One a second in bursts of 10 (the smallest burst).
    let server = Server::start(&["--max-connects-per-ip-per-sec", "1"]);
    let url = server.ws_url("name=a");
    let busy = IpAddr::from([127, 0, 0, 3]);
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(
            Client::connect_from(&url, busy)
                .await
                .expect("within the burst"),
        );
    }
    // The burst is spent (at most a token or two refilled meanwhile): the
    // first refusal is explained, the ones right after it are resets.
    let mut answers = Vec::new();
    for _ in 0..6 {
        match answer_to(&server, busy).await {
            Answer::Waited => continue,
            refused => answers.push(refused),
        }
        if answers.len() == 3 {
            break;
        }
    }
    match &answers[..] {
        [Answer::Said(refusal), Answer::Reset, Answer::Reset] => {
            assert!(refusal.starts_with("HTTP/1.1 429 "), "{refusal:?}");
            assert!(refusal.ends_with("too many new connections from this address\n"));
        }
        other => panic!("expected a 429, then resets: {other:?}"),
    }

    // What the address already holds is untouched, and another address is
    // served as usual.
    for client in &mut held {
        client.assert_alive().await;
    }
    let mut other = Client::connect_from(&url, IpAddr::from(NEIGHBOUR))
        .await
        .expect("another address");
    other.join("r").await;
    other.say("r", "still served").await;

    // The address gets its rate back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut again = Client::connect_from(&url, busy).await.expect("refilled");
    again.assert_alive().await;

    let metrics = http_get(server.addr, "/metrics").await;
    let refused = metric_value(&metrics.body, "chat_connections_refused_at_accept_total");
    assert!(refused.is_some_and(|n| n >= 3.0), "{refused:?}");
}

#[tokio::test]
async fn an_idle_connection_is_closed_while_an_active_one_stays() {
    let server = Server::start(&["--idle-timeout-secs", "1"]);
    let mut idle = Client::connect(&server, "idle").await;
    let mut busy = Client::connect(&server, "busy").await;
    busy.join("r").await;
    idle.join("r").await;
    let joined = Instant::now();
    let idle_side = async {
        // Pings are not activity (nor is reading what the room says).
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            idle.assert_alive().await;
        }
        let (_, ended) = idle.recv_until_end(Duration::from_secs(5)).await;
        (ended, joined.elapsed())
    };
    let busy_side = async {
        for i in 0..8 {
            busy.say("r", &format!("m{i}")).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let ((ended, after), ()) = tokio::join!(idle_side, busy_side);
    assert_eq!(ended, Ended::Close(Some(1000)));
    assert!(
        after >= Duration::from_millis(950),
        "closed after {after:?}"
    );
    busy.assert_alive().await;
}

#[tokio::test]
async fn rooms_per_connection_typing_rate_and_text_size() {
    let server = Server::start(&[
        "--max-rooms-per-connection",
        "2",
        "--typing-rate",
        "2",
        "--max-text-chars",
        "5",
    ]);
    let mut alice = Client::connect(&server, "alice").await;
    let mut bob = Client::connect(&server, "bob").await;
    alice.join("a").await;
    alice.join("b").await;
    let refused = alice.request(json!({"type": "join", "room": "c"})).await;
    assert_error(&refused, "forbidden", refused.get("ref"));
    let long = alice
        .request(json!({"type": "send", "room": "a", "text": "toolong"}))
        .await;
    assert_error(&long, "too_long", long.get("ref"));
    alice.say("a", "short").await;

    bob.join("a").await;
    for _ in 0..10 {
        alice
            .send_json(&json!({"type": "typing", "room": "a"}))
            .await;
    }
    // Presence and typing reach bob within the batching delay.
    let frames = bob.stay_connected_for(Duration::from_millis(800)).await;
    let typing = frames.iter().filter(|f| f["type"] == "typing").count();
    assert!(
        (1..=3).contains(&typing),
        "{typing} typing frames got through"
    );
    alice.assert_alive().await;
    bob.say("a", "fine").await;
}

#[tokio::test]
async fn an_oversized_frame_closes_only_its_connection() {
    let server = Server::start(&["--max-frame-bytes", "1024"]);
    let mut big = Client::connect(&server, "big").await;
    let mut other = Client::connect(&server, "other").await;
    other.join("r").await;
    big.send_raw(&json!({"type": "send", "room": "r", "text": "x".repeat(2000)}).to_string())
        .await;
    big.expect_close(1009).await;
    other.say("r", "unaffected").await;
}

#[tokio::test]
async fn retention_purges_old_messages_but_never_reuses_a_seq() {
    let mut args = vec![
        "--retention-messages",
        "5",
        "--retention-interval-secs",
        "1",
    ];
    args.extend_from_slice(NO_RATE_LIMIT);
    let server = Server::start(&args);
    let mut alice = Client::connect(&server, "alice").await;
    alice.join("r").await;
    alice.fill_room("r", 20).await;
    let deadline = Instant::now() + RECV_TIMEOUT;
    loop {
        let page = alice.history(json!({"room": "r", "limit": 200})).await;
        if message_seqs(&page) == [16, 17, 18, 19, 20] {
            assert_eq!(page["more"], false);
            break;
        }
        assert!(Instant::now() < deadline, "not purged: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A reconnecting client that missed purged messages gets what exists.
    let mut late = Client::connect(&server, "late").await;
    let joined = late.join_since("r", 3).await;
    assert_eq!(message_seqs(&joined), [16, 17, 18, 19, 20]);
    assert_eq!(
        (&joined["seq"], &joined["complete"]),
        (&json!(20), &json!(true))
    );
    let page = late.history(json!({"room": "r", "after": 0})).await;
    assert_eq!(message_seqs(&page), [16, 17, 18, 19, 20]);
    // Numbering continues after the last seq ever given.
    assert_eq!(alice.say("r", "next").await["seq"], 21);
}
