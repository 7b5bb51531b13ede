//! The `chat` binary against the real server: send, history, tail, the
//! interactive mode with piped input, rooms, direct messages, a guest
//! kept across runs, and `wss://` with `--ca-file`.

mod common;

use std::process::{Output, Stdio};

use chat_client::Event;
use common::{
    Follower, TOKEN_ARGS, TestCert, TestServer, WAIT, next_matching, tls_client, token,
    until_member,
};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs `chat --url URL ARGS…` with `stdin` as its input; waits at most
/// [`WAIT`].
async fn chat(server: &TestServer, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat"))
        .arg("--url")
        .arg(server.url())
        .args(args)
        .env_remove("CHAT_NAME")
        .env_remove("CHAT_TOKEN")
        .env_remove("CHAT_CA_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn chat");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("chat {args:?} did not finish within {WAIT:?}"))
        .expect("run chat")
}

/// Starts `chat --url <server> ARGS` in the background (a `tail` that
/// runs until it has printed what it was asked for), with stdin closed.
fn spawn_chat(server: &TestServer, args: &[&str]) -> tokio::task::JoinHandle<Output> {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let url = server.url();
    tokio::spawn(async move {
        Command::new(env!("CARGO_BIN_EXE_chat"))
            .arg("--url")
            .arg(url)
            .args(args)
            .env_remove("CHAT_CA_FILE")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .expect("run chat")
    })
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn succeeded(args: &[&str], output: &Output) {
    assert!(
        output.status.success(),
        "chat {args:?} failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

/// Each stdout line parsed as JSON.
fn json_lines(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_then_history_then_tail() {
    let server = TestServer::start(&[]).await;

    let args = ["--name", "alice", "send", "general", "hello", "world"];
    let sent = chat(&server, &args, "").await;
    succeeded(&args, &sent);
    assert!(
        stdout(&sent).starts_with("sent #general seq 1 id "),
        "{}",
        stdout(&sent)
    );

    let args = ["--json", "send", "general", "second 你好", "--id", "x-2"];
    let sent = chat(&server, &args, "").await;
    succeeded(&args, &sent);
    let ack = &json_lines(&sent)[0];
    assert_eq!(
        (&ack["type"], &ack["seq"], &ack["id"]),
        (&"ack".into(), &2.into(), &"x-2".into())
    );
    // The same id again is not stored twice.
    let again = chat(&server, &args, "").await;
    succeeded(&args, &again);
    let ack = &json_lines(&again)[0];
    assert_eq!((&ack["seq"], &ack["duplicate"]), (&2.into(), &true.into()));

    let args = ["history", "general", "--json"];
    let history = chat(&server, &args, "").await;
    succeeded(&args, &history);
    let frames = json_lines(&history);
    let texts: Vec<&str> = frames.iter().filter_map(|f| f["text"].as_str()).collect();
    assert_eq!(texts, ["hello world", "second 你好"]);
    assert!(frames.iter().all(|f| f["type"] == "message"));
    assert_eq!(frames[0]["from"]["name"], "alice");

    let args = ["history", "general"];
    let history = chat(&server, &args, "").await;
    succeeded(&args, &history);
    let first = stdout(&history)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let (clock, rest) = first.split_at(10);
    assert!(
        clock.starts_with('[')
            && clock.ends_with(']')
            && clock.chars().filter(|c| *c == ':').count() == 2,
        "{first}"
    );
    assert_eq!(rest, " #general 1 alice: hello world");

    let args = ["tail", "general", "--since", "1", "--count", "1", "--json"];
    let tail = chat(&server, &args, "").await;
    succeeded(&args, &tail);
    let frames = json_lines(&tail);
    assert_eq!(frames.len(), 1);
    assert_eq!(
        (&frames[0]["seq"], &frames[0]["text"]),
        (&2.into(), &"second 你好".into())
    );

    let args = ["tail", "general", "-n", "1", "--count", "1"];
    let tail = chat(&server, &args, "").await;
    succeeded(&args, &tail);
    let out = stdout(&tail);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains(" #general 2 guest-"), "{out}");
    assert!(lines[0].ends_with(": second 你好"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follows_live_messages() {
    let server = TestServer::start(&[]).await;
    let tail = spawn_chat(
        &server,
        &["tail", "live", "--since", "0", "--count", "3", "--json"],
    );
    let (sender, _events) = common::client(&server.url(), "bob").await;
    sender.join("live").await.expect("join");
    for text in ["a", "b", "c"] {
        sender.send("live", text).await.expect("send");
    }
    let output = tokio::time::timeout(WAIT, tail)
        .await
        .expect("tail exits after three messages")
        .expect("task");
    succeeded(&["tail"], &output);
    let texts: Vec<String> = json_lines(&output)
        .iter()
        .map(|f| f["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(texts, ["a", "b", "c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_mode_sends_piped_lines() {
    let server = TestServer::start(&[]).await;
    let args = ["--json", "--name", "carol", "room1"];
    let output = chat(
        &server,
        &args,
        "first line\n\nsecond line\n/quit\nnot sent\n",
    )
    .await;
    succeeded(&args, &output);
    let frames = json_lines(&output);
    let echoed: Vec<(u64, &str)> = frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| {
            (
                f["seq"].as_u64().unwrap_or(0),
                f["text"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(echoed, [(1, "first line"), (2, "second line")]);

    // `chat chat ROOM` is the same mode; the earlier lines show as context.
    let args = ["chat", "room1"];
    let output = chat(&server, &args, "third\n").await;
    succeeded(&args, &output);
    let out = stdout(&output);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].ends_with("#room1 1 carol: first line"), "{out}");
    assert!(lines[2].contains("#room1 3 guest-"), "{out}");
    assert!(lines[2].ends_with(": third"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_exit_non_zero_with_the_reason() {
    let server = TestServer::start(&["--max-text-chars", "5"]).await;

    let args = ["send", " bad room", "hi"];
    let output = chat(&server, &args, "").await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("invalid_room"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty());

    let args = ["send", "r", "too long for five"];
    let output = chat(&server, &args, "").await;
    assert!(!output.status.success());
    assert!(stderr(&output).contains("too_long"), "{}", stderr(&output));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("ws://{}/ws", listener.local_addr().expect("addr"));
    drop(listener);
    let output = Command::new(env!("CARGO_BIN_EXE_chat"))
        .args(["--url", &dead, "history", "r"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run chat");
    assert!(!output.status.success());
    assert!(
        stderr(&output).starts_with(&format!("chat: cannot connect to {dead}")),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_from_the_command_line_and_in_the_tail() {
    let server = TestServer::start(TOKEN_ARGS).await;
    let (alice_token, bob_token, mod_token) = (
        token("alice", false),
        token("bob", false),
        token("mod", true),
    );
    let (alice, alice_events) = common::user(&server.url(), "alice", false).await;
    let joined = alice.join("general").await.expect("join");
    let mut alice_view = common::Follower::new(alice_events, &joined);
    alice.send("general", "hello").await.expect("send");

    // A tail that has joined (its presence seen) before the changes come,
    // so it shows them live: the recent message, then one line each.
    let tail = spawn_chat(
        &server,
        &["--name", "watcher", "tail", "general", "--count", "8"],
    );
    alice_view
        .until(
            "the tail's presence",
            |e| matches!(e, Event::Presence { user, .. } if user.name == "watcher"),
        )
        .await;

    let runs: [(&str, &[&str], &str); 7] = [
        (
            &bob_token,
            &["send", "general", "--reply-to", "1", "hi", "alice"],
            "sent #general seq 2 id ",
        ),
        (
            &alice_token,
            &["edit", "general", "1", "hello,", "edited"],
            "edited #general 1: seq 3 id ",
        ),
        (
            &bob_token,
            &["react", "general", "1", "👍"],
            "reacted 👍 to #general 1: seq 4 id ",
        ),
        (
            &mod_token,
            &["pin", "general", "1"],
            "pinned #general 1: seq 5 id ",
        ),
        (
            &bob_token,
            &["react", "general", "1", "👍", "--remove"],
            "took back 👍 on #general 1: seq 6 id ",
        ),
        (
            &mod_token,
            &["pin", "general", "1", "--remove"],
            "unpinned #general 1: seq 7 id ",
        ),
        (
            &alice_token,
            &["delete", "general", "1", "--id", "d-1"],
            "deleted #general 1: seq 8 id d-1",
        ),
    ];
    for (token, args, ack) in runs {
        let args = [&["--token", token][..], args].concat();
        let output = chat(&server, &args, "").await;
        succeeded(&args, &output);
        assert!(
            stdout(&output).starts_with(ack),
            "{args:?}: {}",
            stdout(&output)
        );
    }

    // Refusals exit non-zero with their code.
    for (token, args, code) in [
        (
            &alice_token,
            &["edit", "general", "2", "not mine"][..],
            "forbidden",
        ),
        (&bob_token, &["pin", "general", "2"], "forbidden"),
        (&alice_token, &["edit", "general", "99", "x"], "not_found"),
        (&bob_token, &["react", "general", "8", "👍"], "not_found"),
        (
            &bob_token,
            &["send", "general", "x", "--reply-to", "1"],
            "not_found",
        ),
    ] {
        let args = [&["--token", token][..], args].concat();
        let output = chat(&server, &args, "").await;
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stdout(&output).is_empty(), "{args:?}: {}", stdout(&output));
        assert!(
            stderr(&output).contains(code),
            "{args:?}: {}",
            stderr(&output)
        );
    }

    let output = tokio::time::timeout(WAIT, tail)
        .await
        .expect("the tail exits after eight lines")
        .expect("task");
    succeeded(&["tail"], &output);
    let out = stdout(&output);
    let lines: Vec<&str> = out
        .lines()
        .map(|l| l.split_once("] ").map_or(l, |(_, rest)| rest))
        .collect();
    assert_eq!(
        lines,
        [
            "#general 1 alice: hello",
            "#general 2 bob: (re 1 alice: \"hello\") hi alice",
            "#general 1 alice: hello, edited (edited)",
            "#general 1 alice: hello, edited (edited)  [👍 1]",
            "#general * mod pinned 1: alice: hello, edited (edited)  [👍 1]",
            "#general 1 alice: hello, edited (edited)",
            "#general * mod unpinned 1: alice: hello, edited (edited)",
            "#general 1 alice: (message deleted)",
        ],
        "{out}"
    );

    // History shows each message as it now is; with --json and --after,
    // every entry in seq order.
    let args = ["history", "general"];
    let history = chat(&server, &args, "").await;
    succeeded(&args, &history);
    let out = stdout(&history);
    let lines: Vec<&str> = out
        .lines()
        .map(|l| l.split_once("] ").map_or(l, |(_, rest)| rest))
        .collect();
    assert_eq!(
        lines,
        [
            "#general 1 alice: (message deleted)",
            "#general 2 bob: (re 1: message deleted) hi alice",
        ]
    );
    let args = ["--json", "history", "general", "--after", "0"];
    let history = chat(&server, &args, "").await;
    succeeded(&args, &history);
    let types: Vec<(u64, String)> = json_lines(&history)
        .iter()
        .map(|f| {
            (
                f["seq"].as_u64().unwrap_or(0),
                f["type"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected = [
        "message", "message", "edited", "reaction", "pinned", "reaction", "pinned", "deleted",
    ];
    let expected: Vec<(u64, String)> = (1..).zip(expected.map(String::from)).collect();
    assert_eq!(types, expected);
}

/// Lines of stdout without their `[HH:MM:SS] ` clock.
fn unclocked(output: &Output) -> Vec<String> {
    stdout(output)
        .lines()
        .map(|l| l.split_once("] ").map_or(l, |(_, rest)| rest).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_prints_one_page_or_all_of_them() {
    let server = TestServer::start(&[]).await;
    let (alice, _events) = common::client(&server.url(), "alice").await;
    for room in ["cli", "other"] {
        alice.join(room).await.expect("join");
    }
    for (room, text) in [
        ("cli", "今天天气很好"),
        ("cli", "weather is nice today"),
        ("other", "天气 elsewhere"),
        ("cli", "天气预报: rain TODAY"),
        ("cli", "天气 will be deleted"),
    ] {
        alice.send(room, text).await.expect("send");
    }
    alice
        .edit("cli", 1, "今天天气很好, sunny")
        .await
        .expect("edit");
    alice.react("cli", 1, "👍").await.expect("react");
    alice.delete("cli", 4).await.expect("delete");

    // Every room, newest first, each message as it now is.
    let args = ["search", "天气"];
    let output = chat(&server, &args, "").await;
    succeeded(&args, &output);
    assert_eq!(
        unclocked(&output),
        [
            "#cli 3 alice: 天气预报: rain TODAY",
            "#other 1 alice: 天气 elsewhere",
            "#cli 1 alice: 今天天气很好, sunny (edited)  [👍 1]",
        ],
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));

    // Several words, one room; ASCII case ignored.
    let args = ["search", "today", "天气", "--room", "cli"];
    let output = chat(&server, &args, "").await;
    succeeded(&args, &output);
    assert_eq!(unclocked(&output), ["#cli 3 alice: 天气预报: rain TODAY"]);

    // One page, and a hint on stderr of where the next starts.
    let args = ["search", "天气", "--limit", "2"];
    let output = chat(&server, &args, "").await;
    succeeded(&args, &output);
    assert_eq!(unclocked(&output).len(), 2);
    let hint = stderr(&output);
    assert!(
        hint.starts_with("chat: more results exist (--cursor ") && hint.contains("--all"),
        "{hint}"
    );
    let cursor = hint
        .split("--cursor ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .expect("a cursor in the hint")
        .to_owned();
    let args = ["search", "天气", "--limit", "2", "--cursor", &cursor];
    let output = chat(&server, &args, "").await;
    succeeded(&args, &output);
    assert_eq!(
        unclocked(&output),
        ["#cli 1 alice: 今天天气很好, sunny (edited)  [👍 1]"]
    );
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));

    // --all follows every page; --json prints the server's result objects.
    let args = ["--json", "search", "天气", "--limit", "1", "--all"];
    let output = chat(&server, &args, "").await;
    succeeded(&args, &output);
    let results = json_lines(&output);
    let found: Vec<(&str, u64, &str)> = results
        .iter()
        .map(|m| {
            (
                m["room"].as_str().unwrap_or(""),
                m["seq"].as_u64().unwrap_or(0),
                m["text"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("cli", 3, "天气预报: rain TODAY"),
            ("other", 1, "天气 elsewhere"),
            ("cli", 1, "今天天气很好, sunny"),
        ]
    );
    assert!(results[2]["edited_at"].is_i64(), "{}", results[2]);
    assert_eq!(results[2]["from"]["name"], "alice");
    assert!(results.iter().all(|m| m.get("type").is_none()));
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));

    // Nothing found is no failure.
    let args = ["search", "deleted"];
    let output = chat(&server, &args, "").await;
    succeeded(&args, &output);
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("no message matches \"deleted\""),
        "{}",
        stderr(&output)
    );

    // Refusals exit non-zero with the server's code.
    for (args, code) in [
        (&["search", ""][..], "bad_request"),
        (&["search", "x", "--room", " bad"], "invalid_room"),
        (&["search", "x", "--limit", "0"], "bad_request"),
    ] {
        let output = chat(&server, args, "").await;
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stdout(&output).is_empty(), "{args:?}: {}", stdout(&output));
        let err = stderr(&output);
        assert!(
            err.starts_with("chat: cannot search for ") && err.contains(code),
            "{args:?}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_all_keeps_to_the_search_rate() {
    // Twelve pages of one: more than the 10 searches a connection may
    // burst, so the last pages wait for the server's rate (2 a second).
    let server = TestServer::start(common::NO_RATE_LIMIT).await;
    let (alice, _events) = common::client(&server.url(), "alice").await;
    alice.join("many").await.expect("join");
    for n in 1..=12 {
        alice
            .send("many", &format!("needle {n}"))
            .await
            .expect("send");
    }
    let args = ["search", "needle", "--limit", "1", "--all"];
    let output = chat(&server, &args, "").await;
    succeeded(&args, &output);
    let lines = unclocked(&output);
    let expected: Vec<String> = (1..=12)
        .rev()
        .map(|n| format!("#many {n} alice: needle {n}"))
        .collect();
    assert_eq!(lines, expected);
}

/// The line with its `[HH:MM:SS] ` clock taken out, wherever it is.
fn without_clock(line: &str) -> String {
    match line.find('[') {
        Some(open) if line.get(open + 9..open + 11) == Some("] ") => {
            format!("{}{}", &line[..open], &line[open + 11..])
        }
        _ => line.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_show_unread_messages_mentions_and_direct_messages() {
    let server = TestServer::start(TOKEN_ARGS).await;
    let alice_token = token("alice", false);
    let (alice, mut alice_events) = common::user(&server.url(), "alice", false).await;
    let (bob, _bob_events) = common::user(&server.url(), "bob", false).await;
    alice.join("general").await.expect("alice joins");
    bob.join("general").await.expect("bob joins");
    // Mentions are resolved among the members stored when a message is.
    until_member(&alice, "general").await;
    until_member(&bob, "general").await;
    bob.send("general", "hello @alice").await.expect("send");
    bob.send("general", "and everyone").await.expect("send");
    let dm = bob.dm("alice").await.expect("bob opens a dm");
    assert_eq!(Some(dm.room.clone()), chat_client::dm_room("alice", "bob"));
    bob.send(&dm.room, "psst").await.expect("send to the dm");
    let added = next_matching(&mut alice_events, "room_added", |e| {
        matches!(e, Event::RoomAdded { .. })
    })
    .await;
    assert!(
        matches!(&added, Event::RoomAdded { room, with } if *room == dm.room && with.id == "bob"),
        "{added:?}"
    );

    // The most recently active first; a dm shows its person.
    let args = ["--token", &alice_token, "rooms"];
    let output = chat(&server, &args, "").await;
    succeeded(&args, &output);
    let lines: Vec<String> = stdout(&output).lines().map(without_clock).collect();
    assert_eq!(
        lines,
        [
            "@bob 1 unread: bob: psst",
            "#general 2 unread, 1 mention: bob: and everyone",
        ],
        "{}",
        stdout(&output)
    );

    // Reading moves the marker for every device of alice's.
    let args = ["--token", &alice_token, "read", "general", "1"];
    let output = chat(&server, &args, "").await;
    succeeded(&args, &output);
    assert_eq!(stdout(&output), "read #general up to 1: 1 unread\n");
    let moved = next_matching(&mut alice_events, "read", |e| matches!(e, Event::Read(_))).await;
    let Event::Read(moved) = moved else {
        unreachable!()
    };
    assert_eq!(
        (moved.room.as_str(), moved.seq, moved.unread),
        ("general", 1, 1)
    );

    let args = ["--json", "--token", &alice_token, "rooms"];
    let output = chat(&server, &args, "").await;
    succeeded(&args, &output);
    let rooms = json_lines(&output);
    let counts: Vec<(&str, u64, u64, u64)> = rooms
        .iter()
        .map(|r| {
            (
                r["room"].as_str().unwrap_or(""),
                r["last_read"].as_u64().unwrap_or(99),
                r["unread"].as_u64().unwrap_or(99),
                r["unread_mentions"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(counts, [(dm.room.as_str(), 0, 1, 0), ("general", 1, 1, 0)]);
    assert_eq!(rooms[0]["with"]["id"], "bob");
    assert_eq!(rooms[1]["last"]["text"], "and everyone");

    // The directory lists public rooms only.
    let args = ["--token", &alice_token, "directory"];
    let output = chat(&server, &args, "").await;
    succeeded(&args, &output);
    let out = stdout(&output);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("#general 2 members, seq 2, active ["),
        "{out}"
    );

    // A room the user is not in has no marker to move.
    let args = ["--token", &alice_token, "read", " bad", "1"];
    let output = chat(&server, &args, "").await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("invalid_room"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_sends_or_chats_in_the_direct_message_room() {
    let server = TestServer::start(TOKEN_ARGS).await;
    let alice_token = token("alice", false);
    let (bob, mut bob_events) = common::user(&server.url(), "bob", false).await;
    // A dm names a user the server has stored: one who joined a room.
    bob.join("lobby").await.expect("join");
    until_member(&bob, "lobby").await;
    let room = chat_client::dm_room("alice", "bob").expect("a dm room");

    let args = ["--token", &alice_token, "dm", "bob", "hello", "bob"];
    let output = chat(&server, &args, "").await;
    succeeded(&args, &output);
    assert!(
        stdout(&output).starts_with(&format!("sent #{room} seq 1 id ")),
        "{}",
        stdout(&output)
    );
    next_matching(
        &mut bob_events,
        "room_added",
        |e| matches!(e, Event::RoomAdded { room: r, with } if *r == room && with.id == "alice"),
    )
    .await;
    // Joined by its name, as `room_added` suggests (a `dm` back could find
    // alice not yet stored as a member: memberships are written in batches).
    let joined = bob.join(&room).await.expect("bob joins it");
    let recent: Vec<&str> = joined.recent.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(recent, ["hello bob"]);
    assert_eq!((joined.last_read, joined.unread), (0, 1));

    // Without text: the room interactively, its recent messages first.
    let args = ["--token", &alice_token, "dm", "bob"];
    let output = chat(&server, &args, "second\n").await;
    succeeded(&args, &output);
    assert_eq!(
        unclocked(&output),
        [
            format!("#{room} 1 alice: hello bob"),
            format!("#{room} 2 alice: second"),
        ]
    );
    // Bob follows it like any joined room: what is new, once.
    let got = common::messages_until(&mut bob_events, &room, 2).await;
    assert_eq!(common::seqs(&got), [2]);

    // Nobody by that id: refused with the server's code.
    let args = ["--token", &alice_token, "dm", "nobody", "hi"];
    let output = chat(&server, &args, "").await;
    assert!(!output.status.success());
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    assert!(stderr(&output).contains("not_found"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_token_file_keeps_the_guest_across_runs() {
    let server = TestServer::start(&[]).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("guest");
    let file = file.to_str().expect("a UTF-8 path");

    for text in ["one", "two"] {
        let args = [
            "--guest-token-file",
            file,
            "--name",
            "gus",
            "send",
            "r",
            text,
        ];
        let output = chat(&server, &args, "").await;
        succeeded(&args, &output);
        let saved = std::fs::read_to_string(file).expect("the token is saved");
        assert!(!saved.trim().is_empty());
    }
    // Without the file: a new guest.
    let args = ["--name", "gus", "send", "r", "three"];
    let output = chat(&server, &args, "").await;
    succeeded(&args, &output);

    let args = ["--json", "history", "r"];
    let output = chat(&server, &args, "").await;
    succeeded(&args, &output);
    let ids: Vec<String> = json_lines(&output)
        .iter()
        .map(|m| m["from"]["id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(ids[0], ids[1], "the same guest both runs");
    assert_ne!(ids[1], ids[2], "a run without the file is someone else");

    // A credential the server does not accept stops the run, saying what
    // would get past it.
    let forged = dir.path().join("forged");
    std::fs::write(&forged, "not-a-credential\n").expect("write");
    let forged = forged.to_str().expect("a UTF-8 path");
    let args = ["--guest-token-file", forged, "history", "r"];
    let output = chat(&server, &args, "").await;
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.starts_with(&format!("chat: the guest token in {forged} was refused")),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(forged).expect("read"),
        "not-a-credential\n"
    );

    // A token user is no guest: the file is neither used nor touched.
    let before = std::fs::read_to_string(file).expect("read");
    let args = [
        "--guest-token-file",
        file,
        "--token",
        "not.a.jwt",
        "history",
        "r",
    ];
    let output = chat(&server, &args, "").await;
    assert!(
        !output.status.success(),
        "an anonymous server refuses tokens"
    );
    assert!(
        !stderr(&output).contains("guest token"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_to_string(file).expect("read"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_ca_file_sends_and_tails_and_refuses_without_one() {
    let cert = TestCert::loopback();
    let server = TestServer::start_tls(&cert, &[]).await;
    assert!(server.url().starts_with("wss://"), "{}", server.url());
    let (_files, ca_file, key_file) = cert.write();
    let (ca, key) = (path_arg(&ca_file), path_arg(&key_file));

    let args = [
        "--ca-file",
        ca,
        "--name",
        "alice",
        "send",
        "general",
        "over",
        "TLS",
    ];
    let sent = chat(&server, &args, "").await;
    succeeded(&args, &sent);
    assert!(
        stdout(&sent).starts_with("sent #general seq 1 id "),
        "{}",
        stdout(&sent)
    );

    // A tail over wss shows the room, then a live message and its deletion.
    let (bob, bob_events) = tls_client(&server.url(), "bob", &cert).await;
    let joined = bob.join("general").await.expect("bob joins");
    let mut bob_view = Follower::new(bob_events, &joined);
    let tail = spawn_chat(
        &server,
        &[
            "--ca-file",
            ca,
            "--name",
            "watcher",
            "tail",
            "general",
            "--count",
            "3",
        ],
    );
    bob_view
        .until(
            "the tail's presence",
            |e| matches!(e, Event::Presence { user, .. } if user.name == "watcher"),
        )
        .await;
    assert_eq!(bob.send("general", "soon gone").await.expect("send").seq, 2);
    assert_eq!(bob.delete("general", 2).await.expect("delete").seq, 3);
    let output = tokio::time::timeout(WAIT, tail)
        .await
        .expect("the tail exits after three lines")
        .expect("task");
    succeeded(&["tail"], &output);
    assert_eq!(
        unclocked(&output),
        [
            "#general 1 alice: over TLS",
            "#general 2 bob: soon gone",
            "#general 2 bob: (message deleted)",
        ]
    );

    // Without --ca-file the self-signed certificate is refused, and the
    // message says what to do.
    let args = ["send", "general", "refused"];
    let refused = chat(&server, &args, "").await;
    assert!(
        !refused.status.success(),
        "sent without trusting the server"
    );
    assert!(stdout(&refused).is_empty(), "{}", stdout(&refused));
    let why = stderr(&refused);
    assert!(
        why.contains("the server's certificate is not trusted")
            && why.contains("--ca-file")
            && why.contains("UnknownIssuer"),
        "{why}"
    );

    // A file that holds no certificate, or none at all: refused up front.
    for (file, want) in [
        (
            key,
            "invalid root certificates: no `BEGIN CERTIFICATE` section",
        ),
        (
            "/nonexistent/ca.pem",
            "cannot read the --ca-file /nonexistent/ca.pem",
        ),
    ] {
        let args = ["--ca-file", file, "send", "general", "x"];
        let output = chat(&server, &args, "").await;
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(
            stderr(&output).contains(want),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

fn path_arg(path: &std::path::Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}
