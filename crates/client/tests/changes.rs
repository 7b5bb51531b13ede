//! Changes to messages (edits, deletions, reactions, pins, replies) against
//! the real server: acks with the change's own `seq`, idempotent ids, live
//! delivery in `seq` order, typed refusals, and a resume that ends in the
//! same room state as a client that never left.

mod common;

use chat_client::{Action, Change, Client, Error, ErrorCode, Event, HistoryQuery, RoomState};
use common::{Follower, NO_RATE_LIMIT, Proxy, TOKEN_ARGS, TestServer, WAIT, until_member, user};
use futures_util::future::join_all;

/// Alice and Bob (members) and a moderator, each in `room`.
async fn cast(url: &str, room: &str) -> (Client, Client, Client) {
    let (alice, _) = user(url, "alice", false).await;
    let (bob, _) = user(url, "bob", false).await;
    let (moderator, _) = user(url, "mod", true).await;
    for client in [&alice, &bob, &moderator] {
        client.join(room).await.expect("join");
    }
    (alice, bob, moderator)
}

/// One of each request, with retries of some; returns the acks in order.
/// Seqs: 1 hello, 2 reply, 3 edit, 4 react, 5 pin, 6 unreact, 7 unpin,
/// 8 delete, 9 a last message.
async fn one_of_each(alice: &Client, bob: &Client, moderator: &Client) -> Vec<chat_client::Ack> {
    let edit = Action::Edit {
        seq: 1,
        text: "hello, edited".into(),
    };
    let delete = Action::Delete { seq: 1 };
    let mut acks = Vec::new();
    acks.push(alice.send("r", "hello").await.expect("send"));
    acks.push(bob.reply("r", 1, "hi alice").await.expect("reply"));
    acks.push(
        alice
            .write_with_id("r", edit.clone(), "edit-1")
            .await
            .expect("edit"),
    );
    acks.push(
        alice
            .write_with_id("r", edit, "edit-1")
            .await
            .expect("edit again"),
    );
    acks.push(bob.react("r", 1, "👍").await.expect("react"));
    acks.push(bob.react("r", 1, "👍").await.expect("react again"));
    acks.push(moderator.pin("r", 1).await.expect("pin"));
    acks.push(moderator.pin("r", 1).await.expect("pin again"));
    acks.push(bob.unreact("r", 1, "👍").await.expect("unreact"));
    acks.push(moderator.unpin("r", 1).await.expect("unpin"));
    acks.push(
        alice
            .write_with_id("r", delete.clone(), "del-1")
            .await
            .expect("delete"),
    );
    acks.push(
        alice
            .write_with_id("r", delete, "del-1")
            .await
            .expect("delete again"),
    );
    acks.push(alice.send("r", "after").await.expect("send after"));
    acks
}

#[tokio::test]
async fn changes_are_acked_with_their_own_seq_and_repeats_are_flagged() {
    let server = TestServer::start(TOKEN_ARGS).await;
    let (alice, bob, moderator) = cast(&server.url(), "r").await;
    let acks = one_of_each(&alice, &bob, &moderator).await;

    let got: Vec<(u64, bool)> = acks.iter().map(|a| (a.seq, a.duplicate)).collect();
    assert_eq!(
        got,
        [
            (1, false),
            (2, false),
            (3, false),
            (3, true), // the same id again
            (4, false),
            (4, true), // a reaction bob already has
            (5, false),
            (5, true), // a pin already there
            (6, false),
            (7, false),
            (8, false),
            (8, true), // the same id again
            (9, false),
        ]
    );
    assert_eq!(acks[2].id, "edit-1");
    assert_eq!((acks[3].id.as_str(), acks[3].ts), ("edit-1", acks[2].ts));
    assert_eq!(acks[5].id, acks[4].id, "the ack of the reaction in effect");
    assert!(acks.iter().all(|a| a.room == "r"));

    // History after a seq lists the messages in their current state and
    // the changes in its range.
    let page = bob
        .history("r", HistoryQuery::after(0, 50))
        .await
        .expect("history");
    let messages: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
    let changes: Vec<(u64, &str)> = page
        .events
        .iter()
        .map(|c| (c.seq(), c.type_name()))
        .collect();
    assert_eq!(messages, [1, 2, 9]);
    assert_eq!(
        changes,
        [
            (3, "edited"),
            (4, "reaction"),
            (5, "pinned"),
            (6, "reaction"),
            (7, "pinned"),
            (8, "deleted")
        ]
    );
    assert!(page.messages[0].deleted && page.messages[0].text.is_empty());
    let reply = &page.messages[1];
    assert_eq!(reply.reply_to, Some(1));
    assert!(reply.quote.as_ref().is_some_and(|q| q.deleted));
    assert!(page.events.iter().all(|c| c.target() == 1));
    // A page before a seq shows the same messages, and no changes.
    let latest = bob
        .history("r", HistoryQuery::latest(50))
        .await
        .expect("history");
    assert_eq!(latest.messages, page.messages);
    assert!(latest.events.is_empty());
}

#[tokio::test]
async fn another_client_gets_every_change_live_in_seq_order() {
    let server = TestServer::start(TOKEN_ARGS).await;
    let (alice, bob, moderator) = cast(&server.url(), "r").await;
    let (carol, carol_events) = user(&server.url(), "carol", false).await;
    let joined = carol.join("r").await.expect("carol joins");
    let mut carol = Follower::new(carol_events, &joined);

    let acks = one_of_each(&alice, &bob, &moderator).await;
    carol.until_seq(9).await;
    assert_eq!(
        carol.seqs,
        (1..=9).collect::<Vec<_>>(),
        "each once, in order"
    );
    let kinds: Vec<&str> = carol
        .entries
        .iter()
        .map(|e| match e {
            Event::Message(_) => "message",
            Event::Change(change) => change.type_name(),
            other => panic!("not an entry: {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "message", "message", "edited", "reaction", "pinned", "reaction", "pinned", "deleted",
            "message"
        ]
    );
    // Each change is the one acked: its seq, its id, its target.
    let fresh: Vec<&chat_client::Ack> = acks.iter().filter(|a| !a.duplicate).collect();
    for (event, ack) in carol.entries.iter().zip(&fresh) {
        if let Event::Change(change) = event {
            assert_eq!((change.seq(), change.id()), (ack.seq, ack.id.as_str()));
            assert_eq!(change.target(), 1);
        }
    }
    let Event::Change(Change::Reaction(reaction)) = &carol.entries[3] else {
        panic!("a reaction: {:?}", carol.entries[3]);
    };
    assert_eq!(
        (reaction.emoji.as_str(), reaction.from.name.as_str()),
        ("👍", "bob")
    );
    assert_eq!(reaction.reactions.len(), 1);
    let Event::Change(Change::Pinned(pin)) = &carol.entries[4] else {
        panic!("a pin: {:?}", carol.entries[4]);
    };
    assert!(pin.pinned);
    assert_eq!(carol.state.pins.len(), 0, "unpinned since");

    // Applied in order, the changes leave the state of a fresh reader.
    let hello = &carol.state.messages[&1];
    assert!(hello.deleted && hello.text.is_empty() && hello.reactions.is_empty());
    let quote = carol.state.messages[&2].quote.clone().expect("a quote");
    assert!(quote.deleted);
    let (dave, dave_events) = user(&server.url(), "dave", false).await;
    let replayed = dave.join_since("r", 0).await.expect("join since 0");
    let mut dave = Follower::new(dave_events, &replayed);
    dave.until_seq(9).await;
    assert_same_state(&dave.state, &carol.state);
    let (erin, _) = user(&server.url(), "erin", false).await;
    let joined = erin.join("r").await.expect("erin joins");
    assert_same_state(&joined.room_state(), &carol.state);
}

/// A deletion reaching a follower live, of a message it holds from its
/// `joined` reply (not from a live event): the message becomes a
/// tombstone, is unpinned, and the reply quoting it shows the quote as
/// deleted, as a fresh join then shows the room.
#[tokio::test]
async fn a_live_deletion_tombstones_what_a_follower_holds_from_its_join() {
    let server = TestServer::start(TOKEN_ARGS).await;
    let (alice, bob, moderator) = cast(&server.url(), "r").await;
    // Bob must be stored as a member for `@bob` to mention him.
    until_member(&bob, "r").await;
    let sent = alice.send("r", "to be deleted, @bob").await.expect("send");
    bob.reply("r", 1, "a reply").await.expect("reply");
    moderator.pin("r", 1).await.expect("pin");

    let (carol, carol_events) = user(&server.url(), "carol", false).await;
    let joined = carol.join("r").await.expect("carol joins");
    assert_eq!(joined.pins.len(), 1);
    let mut carol = Follower::new(carol_events, &joined);
    assert_eq!(sent.seq, 1);
    assert!(!carol.state.messages[&1].deleted);
    assert_eq!(carol.state.messages[&1].mentions, ["bob"]);

    // By a moderator, not the author.
    let ack = moderator.delete("r", 1).await.expect("delete");
    let event = carol
        .until("the deletion", |e| {
            matches!(e, Event::Change(Change::Deleted(_)))
        })
        .await;
    let Event::Change(Change::Deleted(deleted)) = event else {
        unreachable!()
    };
    assert_eq!(
        (deleted.seq, deleted.target, deleted.from.name.as_str()),
        (ack.seq, 1, "mod")
    );
    assert_eq!(carol.seqs, [ack.seq], "the deletion, once");
    let tombstone = &carol.state.messages[&1];
    assert!(
        tombstone.deleted && tombstone.text.is_empty() && tombstone.reactions.is_empty(),
        "{tombstone:?}"
    );
    // A deleted message mentions no one (docs/protocol.md), as the server's
    // own tombstone shows.
    assert!(tombstone.mentions.is_empty(), "{tombstone:?}");
    assert!(carol.state.pins.is_empty(), "unpinned with it");
    let quote = carol.state.messages[&2].quote.clone().expect("a quote");
    assert!(quote.deleted && quote.text.is_empty(), "{quote:?}");
    assert_eq!(carol.state.last_seq, ack.seq);

    let (erin, _) = user(&server.url(), "erin", false).await;
    let fresh = erin.join("r").await.expect("erin joins");
    assert_same_state(&fresh.room_state(), &carol.state);
}

#[tokio::test]
async fn refusals_are_typed_and_take_no_seq() {
    let server = TestServer::start(TOKEN_ARGS).await;
    let (alice, bob, moderator) = cast(&server.url(), "r").await;
    alice.send("r", "mine").await.expect("send");
    let code = |result: Result<chat_client::Ack, Error>| {
        let error = result.expect_err("refused");
        assert!(!error.is_retryable(), "{error}");
        error.code()
    };
    let forbidden = Some(ErrorCode::Forbidden);
    let not_found = Some(ErrorCode::NotFound);

    // Someone else's message.
    assert_eq!(code(bob.edit("r", 1, "not yours").await), forbidden);
    assert_eq!(code(bob.delete("r", 1).await), forbidden);
    // Pins are for moderators.
    assert_eq!(code(alice.pin("r", 1).await), forbidden);
    // Nothing there.
    assert_eq!(code(alice.edit("r", 99, "x").await), not_found);
    assert_eq!(code(bob.react("r", 99, "👍").await), not_found);
    assert_eq!(code(bob.reply("r", 99, "to nothing").await), not_found);
    assert_eq!(code(bob.unreact("r", 1, "👍").await), not_found);
    // A moderator may edit anyone's message; a change is not a message.
    let edit = moderator.edit("r", 1, "moderated").await.expect("edit");
    assert_eq!(edit.seq, 2);
    assert_eq!(code(bob.react("r", edit.seq, "👍").await), not_found);
    // A deleted message takes nothing more.
    assert_eq!(alice.delete("r", 1).await.expect("delete").seq, 3);
    assert_eq!(code(alice.edit("r", 1, "again").await), not_found);
    assert_eq!(code(bob.reply("r", 1, "to a tombstone").await), not_found);
    // Refused writes took no seq and left the connection usable.
    assert_eq!(bob.send("r", "next").await.expect("send").seq, 4);
    let error = alice.edit("r", 4, "bob's").await.expect_err("refused");
    assert!(error.to_string().starts_with("forbidden: "), "{error}");
}

#[tokio::test]
async fn an_edit_whose_ack_was_lost_is_acked_once_after_reconnecting() {
    let server = TestServer::start(TOKEN_ARGS).await;
    let proxy = Proxy::start(server.addr).await;
    let (alice, _) = user(&proxy.url, "alice", false).await;
    let (bob, bob_events) = user(&server.url(), "bob", false).await;
    alice.join("r").await.expect("join");
    let joined = bob.join("r").await.expect("join");
    let mut bob = Follower::new(bob_events, &joined);
    alice.send("r", "first").await.expect("send");

    proxy.swallow_replies();
    let edit = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.edit("r", 1, "first, edited").await })
    };
    bob.until_seq(2).await;
    proxy.cut();
    let ack = tokio::time::timeout(WAIT, edit)
        .await
        .expect("the edit completes")
        .expect("task")
        .expect("acked after reconnecting");
    assert_eq!((ack.seq, ack.duplicate), (2, true), "stored once");
    assert_eq!(bob.state.messages[&1].text, "first, edited");
    assert_eq!(alice.send("r", "third").await.expect("send").seq, 3);
}

/// Rounds of writes made while one client is cut off: more entries than a
/// `joined` reply holds (1000), so its resume pages through history.
const ROUNDS: u64 = 320;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_client_converges_on_the_state_of_one_that_stayed() {
    let mut args = NO_RATE_LIMIT.to_vec();
    args.extend(TOKEN_ARGS);
    args.extend(["--outbound-queue", "100000"]);
    let server = TestServer::start(&args).await;
    let proxy = Proxy::start(server.addr).await;
    let (alice, bob, moderator) = cast(&server.url(), "r").await;

    // Some history before the followers join: their `joined` replies hold
    // messages, a reaction and a pin.
    for i in 1..=5 {
        alice.send("r", &format!("m{i}")).await.expect("send");
    }
    moderator.pin("r", 2).await.expect("pin");
    bob.react("r", 3, "👍").await.expect("react");

    let (carol, carol_events) = user(&server.url(), "carol", false).await;
    let joined = carol.join("r").await.expect("carol joins");
    assert_eq!(joined.pins.len(), 1);
    let mut stayer = Follower::new(carol_events, &joined);
    let (dave, dave_events) = user(&proxy.url, "dave", false).await;
    let joined = dave.join("r").await.expect("dave joins");
    let mut leaver = Follower::new(dave_events, &joined);
    let start = joined.seq;

    // Live, both see these.
    alice.edit("r", 1, "m1, edited").await.expect("edit");
    let live = bob.reply("r", 1, "re m1").await.expect("reply");
    leaver.until_seq(live.seq).await;

    proxy.hold();
    leaver
        .until("reconnecting", |e| matches!(e, Event::Reconnecting { .. }))
        .await;
    // Dave reacts while cut off: sent once the connection is back.
    let dave_react = {
        let dave = dave.clone();
        tokio::spawn(async move { dave.react("r", 1, "🎉").await })
    };
    // Changes to messages dave holds, …
    alice.edit("r", 2, "m2, edited").await.expect("edit");
    alice.delete("r", 4).await.expect("delete");
    moderator.unpin("r", 2).await.expect("unpin");
    moderator.pin("r", 5).await.expect("pin");
    bob.unreact("r", 3, "👍").await.expect("unreact");
    // … and many new entries, messages and changes mixed.
    let mut last = 0;
    for chunk in (0..ROUNDS).collect::<Vec<_>>().chunks(40) {
        last = last.max(busy_rounds(&alice, &bob, &moderator, chunk).await);
    }

    proxy.release();
    let react = tokio::time::timeout(WAIT, dave_react)
        .await
        .expect("dave's reaction completes")
        .expect("task")
        .expect("acked after reconnecting");
    let last = last.max(react.seq);
    assert!(last - live.seq > 1000, "more than one `joined` reply holds");
    leaver
        .until("the re-join", |e| matches!(e, Event::Rejoined { .. }))
        .await;
    leaver.until_seq(last).await;
    stayer.until_seq(last).await;

    // No gaps, no doubles, across the resume too.
    assert_consecutive(&leaver.seqs, start + 1, last);
    assert_consecutive(&stayer.seqs, start + 1, last);
    assert_same_state(&leaver.state, &stayer.state);
    assert!(
        leaver.state.messages[&1]
            .reactions
            .iter()
            .any(|r| r.emoji == "🎉")
    );
    assert!(leaver.state.messages[&4].deleted);
    let pinned: Vec<u64> = leaver.state.pins.iter().map(|m| m.seq).collect();
    assert_eq!(pinned[0], 5, "{pinned:?}");

    // And a newcomer reading the whole room from the start agrees.
    let (erin, erin_events) = user(&server.url(), "erin", false).await;
    let joined = erin.join_since("r", 0).await.expect("join since 0");
    let mut fresh = Follower::new(erin_events, &joined);
    fresh.until_seq(last).await;
    assert_consecutive(&fresh.seqs, 1, last);
    assert_same_state(&fresh.state, &stayer.state);
}

/// For each round: a message, its edit, a reaction to it, and every tenth
/// round a reply to an earlier one, a deletion and a pin or unpin. Returns
/// the highest seq acked.
async fn busy_rounds(alice: &Client, bob: &Client, moderator: &Client, rounds: &[u64]) -> u64 {
    let texts: Vec<String> = rounds.iter().map(|i| format!("busy {i}")).collect();
    let sends = texts.iter().map(|text| alice.send("r", text));
    let sent: Vec<u64> = join_all(sends)
        .await
        .into_iter()
        .map(|ack| ack.expect("send").seq)
        .collect();
    let texts: Vec<(u64, String)> = sent
        .iter()
        .map(|s| (*s, format!("busy {s}, edited")))
        .collect();
    let edits = texts.iter().map(|(seq, text)| alice.edit("r", *seq, text));
    let reacts = sent.iter().map(|seq| bob.react("r", *seq, "👀"));
    let mut acks = join_all(edits).await;
    acks.extend(join_all(reacts).await);
    for pair in sent.chunks(10).map(|c| (c[0], c[c.len() - 1])) {
        acks.push(bob.reply("r", pair.0, "a reply").await);
        acks.push(alice.delete("r", pair.1).await);
        acks.push(moderator.pin("r", pair.0).await);
        if pair.0 % 2 == 0 {
            acks.push(moderator.unpin("r", pair.0).await);
        }
    }
    let highest = acks.into_iter().map(|ack| ack.expect("write").seq).max();
    highest.into_iter().chain(sent).max().unwrap_or(0)
}

/// `seqs` is `first..=last`, each once, in order; else the first place
/// where it is not.
fn assert_consecutive(seqs: &[u64], first: u64, last: u64) {
    let expected = first..=last;
    for (i, (got, want)) in seqs.iter().zip(expected.clone()).enumerate() {
        let around = &seqs[i.saturating_sub(3)..(i + 3).min(seqs.len())];
        assert_eq!(got, &want, "entry {i}, among {around:?}");
    }
    assert_eq!(seqs.len() as u64, last + 1 - first, "every entry");
}

/// Equal states, with a readable report of the first difference.
fn assert_same_state(got: &RoomState, want: &RoomState) {
    assert_eq!(got.last_seq, want.last_seq, "last_seq");
    let seqs = |s: &RoomState| s.messages.keys().copied().collect::<Vec<_>>();
    assert_eq!(seqs(got), seqs(want), "the messages held");
    for (seq, message) in &want.messages {
        assert_eq!(got.messages.get(seq), Some(message), "message {seq}");
    }
    assert_eq!(got.pins, want.pins, "pins");
}
