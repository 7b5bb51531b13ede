//! Connection and process lifecycle: heartbeats, graceful shutdown, slow
//! consumers, the HTTP probes, identity at the upgrade, and the data-dir lock
//! (docs/protocol.md).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Short enough to see a few intervals pass, long enough that a reading
/// client's pong is not late when parallel tests load the machine (at
/// 300 ms, one such stall of a reader once got it closed).
const FAST_HEARTBEAT: &[&str] = &["--heartbeat-ms", "1000"];

#[tokio::test]
async fn heartbeat_closes_a_client_that_never_answers() {
    let server = Server::start(FAST_HEARTBEAT);
    let mut observer = server.client("observer").await;
    observer.join("r").await;

    // This client never answers the server's WebSocket pings, nor sends
    // anything after joining.
    let (mut silent, welcome) = SilentClient::connect(&server, "silent").await;
    assert_eq!(welcome["heartbeat_ms"], 1000);
    silent
        .send_json(&json!({"type": "join", "room": "r", "ref": 1}))
        .await;
    assert_eq!(silent.recv_json().await["type"], "joined");
    let silent_user = welcome["user"].clone();

    // After two intervals (2 s) the server must close it; 5 s leaves
    // slack on a loaded machine. The observer keeps reading meanwhile
    // (which keeps it alive) and is told the silent user left.
    let frames = observer.stay_connected_for(Duration::from_secs(5)).await;
    let leave = json!({"type": "presence", "room": "r", "event": "leave", "user": silent_user});
    assert!(
        frames.contains(&leave),
        "no presence leave for the silent client: {frames:?}"
    );

    let ended = silent.recv_until_end(RECV_TIMEOUT).await;
    assert_eq!(
        ended,
        Ended::Close(Some(1001)),
        "heartbeat timeout closes with 1001"
    );
    observer.assert_alive().await;
}

#[tokio::test]
async fn heartbeat_keeps_a_reading_client_open() {
    let server = Server::start(FAST_HEARTBEAT);
    let mut c = server.client("reader").await;
    // Reading answers the server's pings: the connection outlives many intervals.
    c.stay_connected_for(Duration::from_millis(4500)).await;
    c.assert_alive().await;
}

#[tokio::test]
async fn sigterm_closes_every_connection_with_1001_and_exits_0() {
    let mut server = Server::start(&[]);
    let mut clients = Vec::new();
    for name in ["a", "b", "c"] {
        let mut c = server.client(name).await;
        c.join("r").await;
        clients.push(c);
    }
    // Sends the server has read when the signal arrives must be committed
    // and acked before the close. The pong proves all 30 were read (a
    // connection's frames are handled in order); their acks may come before
    // or after it.
    let mut sender = server.client("sender").await;
    sender.join("r").await;
    for i in 0..30 {
        let id = format!("m{i}");
        sender
            .send_json(&json!({"type": "send", "room": "r", "text": id, "id": id, "ref": i}))
            .await;
    }
    let mut frames = sender.frames_before_pong().await;
    let signalled = Instant::now();
    server.sigterm();

    for c in &mut clients {
        c.expect_close(1001).await;
    }
    let (rest, ended) = sender.recv_until_end(RECV_TIMEOUT).await;
    assert_eq!(ended, Ended::Close(Some(1001)));
    frames.extend(rest);
    let deadline = signalled + Duration::from_secs(5);
    let status = server
        .wait_exit(deadline.saturating_duration_since(Instant::now()))
        .expect("server still running 5 s after SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");

    let acks: Vec<_> = frames.iter().filter(|f| f["type"] == "ack").collect();
    let acked: BTreeSet<&str> = acks.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(
        acked.len(),
        30,
        "every send read before SIGTERM is acked: {frames:?}"
    );

    // And what was acked is there after a restart.
    server.restart();
    let mut reader = server.client("reader").await;
    let joined = reader.join_since("r", 0).await;
    assert_eq!(message_seqs(&joined), (1..=30).collect::<Vec<_>>());
    let stored = joined["messages"].as_array().unwrap();
    for ack in acks {
        let m = stored
            .iter()
            .find(|m| m["id"] == ack["id"])
            .unwrap_or_else(|| panic!("acked {ack} lost over a graceful shutdown"));
        assert_eq!(m["seq"], ack["seq"]);
    }
}

#[tokio::test]
async fn slow_consumer_is_dropped_with_1013_and_others_are_served() {
    // A long heartbeat, so that the non-reader is dropped for its queue and
    // not for failing to answer pings, however long the flood takes.
    let server = Server::start(&[
        "--heartbeat-ms",
        "300000",
        "--outbound-queue",
        "16",
        "--send-rate",
        "100000",
        "--send-burst",
        "100000",
    ]);
    let mut slow = server.client("slow").await;
    slow.join("flood").await;
    let mut flooder = server.client("flooder").await;
    flooder.join("flood").await;

    // The non-reader's queue fills once the kernel's socket buffers do, which
    // takes some megabytes; how many depends on the machine, so flood until
    // the server reports a dropped consumer (bounded: 100 MB). The flooder
    // sends small windows and reads its replies in between, so that it is
    // never the slow one itself.
    let text = "x".repeat(4000);
    let mut sent = 0;
    while sent < 25_000 {
        for _ in 0..25 {
            // 4 sends: their acks and broadcasts (8 frames) stay well
            // within the flooder's own 16-frame queue.
            let window = (0..4)
                .map(|_| json!({"type": "send", "room": "flood", "text": text}))
                .collect();
            for reply in flooder.blast(window).await {
                assert_eq!(reply["type"], "ack", "{reply}");
            }
            sent += 4;
        }
        let metrics = server.get("/metrics").await.body;
        if metric_value(&metrics, "chat_slow_consumers_dropped_total").unwrap_or(0.0) >= 1.0 {
            break;
        }
    }

    // Reading now, after the flood: whatever was buffered, then close 1013.
    slow.expect_close(1013).await;

    // The server keeps serving the others, and newcomers.
    flooder.assert_alive().await;
    let ack = flooder.say("flood", "still here").await;
    let mut late = server.client("late").await;
    let joined = late.join("flood").await;
    assert_eq!(joined["seq"], ack["seq"]);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = Server::start(&[]);

    let health = server.get("/healthz").await;
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.body.trim(), "ok");

    let ready = server.get("/readyz").await;
    assert_eq!(ready.status, 200, "{ready:?}");

    // Some traffic, so that every counter and the histogram have samples.
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.join("r").await;
    bob.join("r").await;
    alice.say("r", "hello").await;
    bob.recv_until(|f| f["type"] == "message").await;

    let metrics = server.get("/metrics").await;
    assert_eq!(metrics.status, 200, "{metrics:?}");
    let body = &metrics.body;
    for name in [
        "chat_connections",
        "chat_rooms",
        "chat_messages_in_total",
        "chat_messages_out_total",
        "chat_slow_consumers_dropped_total",
    ] {
        assert!(
            metric_value(body, name).is_some(),
            "/metrics lacks {name}:\n{body}"
        );
    }
    // The ack's latency, and each stage of a message's way through the
    // server, are histograms with samples from the send above.
    for stage in [
        "chat_ack_latency_seconds",
        "chat_send_queued_seconds",
        "chat_commit_seconds",
        "chat_commit_sync_seconds",
        "chat_publish_seconds",
        "chat_outbox_wait_seconds",
    ] {
        let count = metric_value(body, &format!("{stage}_count"));
        assert!(
            count.is_some_and(|n| n >= 1.0)
                && body.contains(&format!("{stage}_bucket{{le=\"0.0001\"}}")),
            "{stage} must be a histogram with samples:\n{body}"
        );
    }
    assert!(
        metric_value(body, "chat_connections").unwrap() >= 2.0,
        "{body}"
    );
    assert!(metric_value(body, "chat_rooms").unwrap() >= 1.0, "{body}");
    assert!(
        metric_value(body, "chat_messages_in_total").unwrap() >= 1.0,
        "{body}"
    );
    assert!(
        metric_value(body, "chat_messages_out_total").unwrap() >= 1.0,
        "{body}"
    );
}

#[tokio::test]
async fn name_is_checked_at_the_upgrade() {
    let server = Server::start(&[]);
    let long = "n".repeat(65);
    for bad in [
        "a%01b",
        "bell%07",
        "%20alice",
        "alice%20",
        "",
        long.as_str(),
    ] {
        let url = server.ws_url(&format!("name={bad}"));
        assert_eq!(
            upgrade_status(&url).await,
            400,
            "?name={bad} must be refused"
        );
    }

    // Valid names, any script, up to 64 characters, are taken as given.
    let c = server.client("%E7%88%B1%E4%B8%BD%E4%B8%9D").await; // 爱丽丝
    assert_eq!(c.user()["name"], "爱丽丝");
    let c = server.client(&"n".repeat(64)).await;
    assert_eq!(c.user()["name"], "n".repeat(64));
}

#[tokio::test]
async fn second_server_on_the_same_data_dir_refuses_to_start() {
    let server = Server::start(&[]);
    let failure = server
        .try_start_another_on_same_dir()
        .expect_err("a second server started on a data dir in use");
    assert!(!failure.status.success(), "{failure:?}");
    assert!(
        !failure.stderr.trim().is_empty(),
        "the refusal is explained on stderr"
    );

    // The first one is unaffected.
    let mut c = server.client("still-there").await;
    c.join("r").await;
    c.say("r", "hello").await;
}

#[tokio::test]
async fn a_burst_larger_than_the_output_buffer_is_all_answered() {
    // 25 pipelined sends of 12 KB: their broadcasts, formatted together,
    // pass the connection's 64 KiB output mark, which pauses taking more
    // from its queue until the socket drains. The drain itself must resume
    // it: with a long heartbeat nothing else would wake the connection.
    let mut args = vec!["--heartbeat-ms", "300000"];
    args.extend_from_slice(NO_RATE_LIMIT);
    let server = Server::start(&args);
    let mut client = server.client("bulk").await;
    client.join("bulk").await;
    let text = "你".repeat(4000);
    let sends = (0..25)
        .map(|i| json!({"type": "send", "room": "bulk", "text": text, "id": format!("b{i}")}))
        .collect();
    let replies = client.blast(sends).await;
    assert!(replies.iter().all(|r| r["type"] == "ack"), "{replies:?}");
    client.assert_alive().await;
}

/// Flags for the slow-consumer tests: no heartbeat within the test (so a
/// client is dropped for falling behind, never for not answering pings),
/// a small outbound queue, no send rate limit.
const SLOW_CONSUMER: &[&str] = &[
    "--heartbeat-ms",
    "300000",
    "--outbound-queue",
    "16",
    "--send-rate",
    "100000",
    "--send-burst",
    "100000",
];

/// Whether the server has dropped a connection as too slow yet.
async fn dropped_as_slow(server: &Server) -> bool {
    let metrics = server.get("/metrics").await.body;
    metric_value(&metrics, "chat_slow_consumers_dropped_total").unwrap_or(0.0) >= 1.0
}

#[tokio::test]
async fn a_slow_consumer_reads_its_1013_right_after_what_was_already_on_the_wire() {
    let server = Server::start(SLOW_CONSUMER);
    // A consumer that reads, but far slower than its room: 8 KiB every
    // 50 ms at most, through a small receive window.
    let stream = tcp_connect_with_receive_buffer(server.addr, 4096).await;
    let (mut slow, _) = SilentClient::connect_over(stream, server.addr, "slow").await;
    slow.send_json(&json!({"type": "join", "room": "flood", "ref": 1}))
        .await;
    assert_eq!(slow.recv_json().await["type"], "joined");
    let reading = tokio::spawn(async move {
        let started = Instant::now();
        let ended = slow
            .read_slowly_to_end(8 * 1024, Duration::from_millis(50), RECV_TIMEOUT * 3)
            .await;
        (ended, started.elapsed())
    });

    // Flood the room (4 KB messages, in windows small enough for the
    // flooder's own queue) until the server drops the slow one.
    let mut flooder = server.client("flooder").await;
    flooder.join("flood").await;
    let text = "x".repeat(4000);
    let mut windows = 0;
    while !dropped_as_slow(&server).await {
        assert!(windows < 25_000, "no consumer dropped after 100 MB");
        let window = (0..4)
            .map(|_| json!({"type": "send", "room": "flood", "text": text}))
            .collect();
        for reply in flooder.blast(window).await {
            assert_eq!(reply["type"], "ack", "{reply}");
        }
        windows += 1;
    }

    // What it had queued on the server is dropped: what the kernel already
    // held comes first (a few KiB), then the close frame, then the end of
    // the stream. Before, the close followed megabytes of stale messages
    // and never made it: the socket was closed first.
    let (ended, took) = reading.await.expect("the slow reader");
    assert_eq!(
        ended,
        Ended::Close(Some(1013)),
        "a slow consumer's stream must end with its close frame (after {took:?})"
    );
    flooder.assert_alive().await;
}

#[tokio::test]
async fn a_client_that_pings_without_reading_is_dropped_as_too_slow() {
    // Pongs do not go through the outbound queue: each ping the server
    // reads adds one to the connection's own output. A client that pings
    // and never reads must be dropped like one whose queue is full, not
    // grow that output for as long as it keeps sending.
    let server = Server::start(SLOW_CONSUMER);
    let stream = tcp_connect_with_receive_buffer(server.addr, 4096).await;
    let (mut pinger, _) = SilentClient::connect_over(stream, server.addr, "pinger").await;
    let mut batches = 0;
    while !dropped_as_slow(&server).await {
        // 20 MB of pongs at most, far beyond any bound on its output.
        assert!(
            batches < 160,
            "a client that never reads 20 MB of pongs is still served"
        );
        pinger.send_pings(1000, 125).await;
        batches += 1;
    }
    let ended = pinger
        .read_slowly_to_end(64 * 1024, Duration::ZERO, RECV_TIMEOUT)
        .await;
    assert_eq!(ended, Ended::Close(Some(1013)));
}

#[tokio::test]
async fn sigterm_under_load_closes_every_connection_with_1001() {
    // 60 clients in 12 rooms, each sending a message every 100 ms and
    // reading what comes. A quarter are busy: every 40 frames they stop
    // reading for 400 ms (they keep up on average: about 60 frames a second
    // come), through a small receive window, and they send all the while,
    // so that at the signal the server has output waiting for them, and
    // input from them it has not read.
    let mut server = Server::start(NO_RATE_LIMIT);
    let (joined_tx, mut joined_rx) = tokio::sync::mpsc::channel(60);
    let chatters: Vec<_> = (0..60)
        .map(|i| {
            let chatter = Chatter {
                name: format!("c{i}"),
                room: format!("r{}", i % 12),
                busy: i % 4 == 0,
            };
            tokio::spawn(chatter.run(server.addr, joined_tx.clone()))
        })
        .collect();
    for _ in 0..60 {
        tokio::time::timeout(RECV_TIMEOUT, joined_rx.recv())
            .await
            .expect("every client joins");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let signalled = Instant::now();
    server.sigterm();

    let mut endings = Vec::new();
    for (i, chatter) in chatters.into_iter().enumerate() {
        endings.push((i, chatter.await.expect("a client task")));
    }
    let wrong: Vec<_> = endings
        .iter()
        .filter(|(_, ended)| *ended != Ended::Close(Some(1001)))
        .collect();
    assert!(
        wrong.is_empty(),
        "every client must get the close frame 1001 (busy ones are c0, c4, …): {wrong:?}"
    );
    let deadline = signalled + Duration::from_secs(10);
    let status = server
        .wait_exit(deadline.saturating_duration_since(Instant::now()))
        .expect("server still running 10 s after SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// One client of the shutdown test: joins `room`, then sends and reads
/// until the connection ends.
struct Chatter {
    name: String,
    room: String,
    /// Stops reading now and then, through a small receive window.
    busy: bool,
}

impl Chatter {
    async fn run(self, addr: std::net::SocketAddr, joined: tokio::sync::mpsc::Sender<()>) -> Ended {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;

        let stream = if self.busy {
            tcp_connect_with_receive_buffer(addr, 4096).await
        } else {
            tokio::net::TcpStream::connect(addr).await.expect("connect")
        };
        let url = format!("ws://{addr}/ws?name={}", self.name);
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .expect("WebSocket handshake");
        let (mut sink, mut frames) = ws.split();
        let join = json!({"type": "join", "room": self.room, "ref": "join"});
        sink.send(Message::text(join.to_string()))
            .await
            .expect("send join");
        loop {
            match frames.next().await {
                Some(Ok(Message::Text(t))) if t.as_str().contains(r#""type":"joined""#) => break,
                Some(Ok(_)) => continue,
                other => panic!("{} ended before joining: {other:?}", self.name),
            }
        }
        let _ = joined.send(()).await;

        // Sends until a send fails (the server has closed, or we have its
        // close frame): a message every 100 ms, and a busy client sends an
        // unsolicited pong (which asks for nothing back) every 5 ms in
        // between, so the server has input from it at any moment.
        let room = self.room.clone();
        let busy = self.busy;
        let sending = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(5));
            for tick in 0u64.. {
                ticks.tick().await;
                let frame = if tick.is_multiple_of(20) {
                    let send = json!({"type": "send", "room": room, "text": "b".repeat(1000)});
                    Message::text(send.to_string())
                } else if busy {
                    Message::Pong(Default::default())
                } else {
                    continue;
                };
                if sink.send(frame).await.is_err() {
                    return;
                }
            }
        });
        let mut read = 0u64;
        let ended = loop {
            match frames.next().await {
                Some(Ok(Message::Close(frame))) => {
                    // Reading on sends the reply (the close handshake) and
                    // sees the server close the connection.
                    let _ = tokio::time::timeout(RECV_TIMEOUT, async {
                        while let Some(Ok(_)) = frames.next().await {}
                    })
                    .await;
                    break Ended::Close(frame.map(|f| u16::from(f.code)));
                }
                Some(Ok(_)) => {
                    read += 1;
                    if self.busy && read.is_multiple_of(40) {
                        tokio::time::sleep(Duration::from_millis(400)).await;
                    }
                }
                Some(Err(e)) => break Ended::Eof(e.to_string()),
                None => break Ended::Eof("stream ended".into()),
            }
        };
        sending.abort();
        ended
    }
}

/// A raw WebSocket on Socket.IO's direct path, through a small receive
/// window; nothing read yet (the Engine.IO open packet waits).
async fn socket_io_over_small_window(server: &Server, name: &str) -> SilentClient {
    let stream = tcp_connect_with_receive_buffer(server.addr, 4096).await;
    let target = format!("/socket.io/?EIO=4&transport=websocket&name={name}");
    SilentClient::upgrade_over(stream, server.addr, &target).await
}

#[tokio::test]
async fn a_socket_io_client_that_pings_without_reading_is_dropped_as_too_slow() {
    // Each Engine.IO ping ("2" and a payload) is answered with a pong
    // carrying the same payload, queued directly on the connection's
    // output: one 8 KB ping costs the server 8 KB for as long as the client
    // does not read.
    let server = Server::start(SLOW_CONSUMER);
    let mut client = socket_io_over_small_window(&server, "pinger").await;
    client.send_texts("40", 1).await; // the namespace CONNECT
    let ping = format!("2{}", "p".repeat(8000));
    let mut batches = 0;
    while !dropped_as_slow(&server).await {
        assert!(batches < 100, "80 MB of unread pongs and still served");
        client.send_texts(&ping, 100).await;
        batches += 1;
    }
    let ended = client
        .read_slowly_to_end(64 * 1024, Duration::ZERO, RECV_TIMEOUT)
        .await;
    assert_eq!(ended, Ended::Close(Some(1013)));
}

#[tokio::test]
async fn a_socket_io_client_that_pings_before_connecting_is_dropped_as_too_slow() {
    // The same before the namespace CONNECT, which a client may put off
    // for up to 45 s: no session yet, so no metric; the close tells.
    let server = Server::start(SLOW_CONSUMER);
    let mut client = socket_io_over_small_window(&server, "early").await;
    let ping = format!("2{}", "p".repeat(8000));
    client.send_texts(&ping, 100).await;
    let ended = client
        .read_slowly_to_end(64 * 1024, Duration::ZERO, RECV_TIMEOUT)
        .await;
    assert_eq!(ended, Ended::Close(Some(1013)));
}
