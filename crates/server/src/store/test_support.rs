//! Builders and views the stores' unit tests share, and the checks every
//! backend must pass alike: [`check_tombstones_and_purge`],
//! [`check_changes`], [`check_search`], [`check_people`] and
//! [`check_bans`].

use chat_core::store::{
    Action, Appended, Draft, Page, PersonChange, Retention, Search, SearchScope, Store,
};
use chat_core::{Role, RoomAccess};
use chat_protocol::{Change, ErrorCode, Message, RoomState, User};

fn user(id: &str) -> User {
    let name = match id {
        "u1" => "alice",
        "u2" => "bob",
        "u3" => "carol",
        other => other,
    };
    User {
        id: id.into(),
        name: name.into(),
    }
}

/// A message from `alice` (`u1`) whose text names its id.
pub fn draft(room: &str, id: &str) -> Draft {
    Draft {
        room: room.into(),
        id: id.into(),
        from: user("u1"),
        role: Role::Member,
        action: Action::Send {
            text: format!("text of {id}"),
            reply_to: None,
        },
    }
}

/// `action` in room `a` by member `from` (`u1` alice, `u2` bob, `u3`
/// carol; `mod` acts as a moderator).
pub fn by(from: &str, id: &str, action: Action) -> Draft {
    Draft {
        room: "a".into(),
        id: id.into(),
        from: user(from),
        role: if from == "mod" {
            Role::Moderator
        } else {
            Role::Member
        },
        action,
    }
}

/// The seqs of a page's messages.
pub fn page_seqs(page: &Page) -> Vec<u64> {
    page.messages.iter().map(|m| m.seq).collect()
}

/// Each outcome as (stored anew, seq); refusals as (false, 0).
pub fn seqs(outcomes: &[Appended]) -> Vec<(bool, u64)> {
    outcomes
        .iter()
        .map(|o| match o {
            Appended::New(m) => (true, m.seq),
            Appended::Changed(c) => (true, c.seq()),
            Appended::Duplicate(r) => (false, r.seq),
            Appended::Refused(_) => (false, 0),
        })
        .collect()
}

/// Appends one draft and returns its outcome.
async fn one(store: &dyn Store, draft: Draft, ts: i64) -> Appended {
    let mut out = store.append(vec![draft], ts).await.unwrap();
    assert_eq!(out.len(), 1);
    out.remove(0)
}

fn refused(outcome: &Appended) -> Option<ErrorCode> {
    match outcome {
        Appended::Refused(invalid) => Some(invalid.code),
        _ => None,
    }
}

fn change(outcome: Appended) -> Change {
    match outcome {
        Appended::Changed(change) => change,
        other => panic!("expected a change, got {other:?}"),
    }
}

/// Tombstones, retention and the room list, the same on every backend:
/// a deleted message keeps its place, a purge never renumbers, and the
/// next append continues the room's count.
pub async fn check_tombstones_and_purge(store: &dyn Store) {
    store.check_commit().await.unwrap();
    let drafts = (1..=10).map(|i| draft("a", &format!("m{i}"))).collect();
    store.append(drafts, 1_000).await.unwrap();
    store.append(vec![draft("b", "x")], 5_000).await.unwrap();

    let deleted = change(one(store, by("u1", "d3", Action::Delete { target: 3 }), 1_500).await);
    assert_eq!((deleted.seq(), deleted.target()), (11, 3));
    for (id, target) in [("d3-again", 3), ("d99", 99)] {
        let again = one(store, by("u1", id, Action::Delete { target }), 1_500).await;
        assert_eq!(refused(&again), Some(ErrorCode::NotFound), "{id}");
    }
    let elsewhere = Draft {
        room: "nowhere".into(),
        ..by("mod", "dn", Action::Delete { target: 1 })
    };
    assert_eq!(
        refused(&one(store, elsewhere, 1_500).await),
        Some(ErrorCode::NotFound)
    );
    let page = store.after("a", 0, 100).await.unwrap();
    assert_eq!(page_seqs(&page), (1..=10).collect::<Vec<_>>());
    assert_eq!(page.changes, [deleted]);
    let tomb = &page.messages[2];
    assert!(tomb.deleted && tomb.text.is_empty() && tomb.seq == 3 && tomb.id == "m3");
    assert!(!page.messages[3].deleted && page.messages[3].text == "text of m4");
    // A retry of the deleted message's id is still a duplicate.
    let out = store.append(vec![draft("a", "m3")], 2_000).await.unwrap();
    assert_eq!(seqs(&out), [(false, 3)]);

    assert_eq!(
        store.rooms().await.unwrap(),
        [("a".to_string(), 11), ("b".to_string(), 1)]
    );

    let keep_4 = Retention {
        keep_last: Some(4),
        older_than_ts: None,
    };
    assert_eq!(store.purge(keep_4).await.unwrap(), 7);
    assert_eq!(store.purge(keep_4).await.unwrap(), 0);
    let page = store.after("a", 0, 100).await.unwrap();
    assert_eq!((page_seqs(&page), page.latest_seq), (vec![8, 9, 10], 11));
    let page = store.before("a", Some(9), 100).await.unwrap();
    assert_eq!((page_seqs(&page), page.more), (vec![8], false));
    // Numbering goes on after the purge: nothing is reused.
    let out = store.append(vec![draft("a", "m12")], 6_000).await.unwrap();
    assert_eq!(seqs(&out), [(true, 12)]);

    let old = Retention {
        keep_last: None,
        older_than_ts: Some(4_000),
    };
    assert_eq!(store.purge(old).await.unwrap(), 4);
    assert_eq!(page_seqs(&store.after("a", 0, 100).await.unwrap()), [12]);
    assert_eq!(page_seqs(&store.after("b", 0, 100).await.unwrap()), [1]);
    assert_eq!(
        store.rooms().await.unwrap(),
        [("a".to_string(), 12), ("b".to_string(), 1)]
    );
}

pub fn edit(target: u64, text: &str) -> Action {
    Action::Edit {
        target,
        text: text.into(),
    }
}

pub fn react(target: u64, emoji: &str, remove: bool) -> Action {
    Action::React {
        target,
        emoji: emoji.into(),
        remove,
    }
}

pub fn pin(target: u64, remove: bool) -> Action {
    Action::Pin { target, remove }
}

pub fn reply(text: &str, to: u64) -> Action {
    Action::Send {
        text: text.into(),
        reply_to: Some(to),
    }
}

/// The room as a client that saw every entry of `page` (read from the
/// start) holds it.
fn replayed(page: &Page) -> RoomState {
    let mut state = RoomState::default();
    let mut entries: Vec<(u64, Result<&Message, &Change>)> = page
        .messages
        .iter()
        .map(|m| (m.seq, Ok(m)))
        .chain(page.changes.iter().map(|c| (c.seq(), Err(c))))
        .collect();
    entries.sort_by_key(|(seq, _)| *seq);
    for (_, entry) in entries {
        match entry {
            Ok(message) => state.apply_message(message.clone()),
            Err(change) => state.apply_change(change),
        }
    }
    state
}

/// The room as a client that joins now holds it.
fn fresh(page: &Page) -> RoomState {
    let mut state = RoomState {
        pins: page.pins.clone(),
        ..RoomState::default()
    };
    for message in &page.messages {
        state.apply_message(message.clone());
    }
    state.last_seq = page.latest_seq;
    state
}

/// Changes in the sequence, the same on every backend: each takes the
/// next `seq`, is held to the permissions on its target as the entries
/// before it left it, is idempotent by id, shows in every message's
/// current state, and replaying the room's entries in order gives the
/// state a fresh read gives.
pub async fn check_changes(store: &dyn Store) {
    let hello = Draft {
        room: "a".into(),
        ..draft("a", "m1")
    };
    assert_eq!(
        seqs(&store.append(vec![hello], 1_000).await.unwrap()),
        [(true, 1)]
    );
    let replied = one(store, by("u2", "m2", reply("re: hello", 1)), 1_001).await;
    let Appended::New(reply_message) = replied else {
        panic!("{replied:?}")
    };
    assert_eq!(reply_message.reply_to, Some(1));
    let quote = reply_message.quote.expect("a reply quotes");
    assert_eq!(
        (quote.from.id.as_str(), quote.text.as_str()),
        ("u1", "text of m1")
    );
    let to_nothing = one(store, by("u2", "m-x", reply("?", 40)), 1_002).await;
    assert_eq!(refused(&to_nothing), Some(ErrorCode::NotFound));

    // Edits: the author and a moderator, not someone else; in one batch,
    // the second sees the first's result.
    let batch = store
        .append(
            vec![
                by("u1", "e1", edit(1, "hello, edited")),
                by("u2", "e-bob", edit(1, "bob was here")),
                by("mod", "e-mod", edit(1, "hello (moderated)")),
                by("u1", "e1", edit(1, "a retry of e1")),
            ],
            2_000,
        )
        .await
        .unwrap();
    assert_eq!(seqs(&batch), [(true, 3), (false, 0), (true, 4), (false, 3)]);
    assert_eq!(refused(&batch[1]), Some(ErrorCode::Forbidden));
    // An id is unique across messages and changes.
    let reused = one(store, by("u1", "m1", edit(1, "reused id")), 2_001).await;
    assert_eq!(seqs(&[reused]), [(false, 1)]);
    let on_a_change = one(store, by("mod", "e-c", edit(3, "not a message")), 2_002).await;
    assert_eq!(refused(&on_a_change), Some(ErrorCode::NotFound));

    // Reactions: one per user and emoji, taken back once.
    let added = change(one(store, by("u2", "r1", react(1, "👍", false)), 3_000).await);
    assert_eq!(added.seq(), 5);
    let again = one(store, by("u2", "r1-again", react(1, "👍", false)), 3_001).await;
    assert_eq!(seqs(&[again]), [(false, 5)]);
    let Change::Reaction(carol) =
        change(one(store, by("u3", "r2", react(1, "👍", false)), 3_002).await)
    else {
        panic!("not a reaction")
    };
    assert_eq!(carol.reactions.len(), 1);
    assert_eq!(carol.reactions[0].count, 2);
    let users: Vec<&str> = carol.reactions[0]
        .users
        .iter()
        .map(|u| u.id.as_str())
        .collect();
    assert_eq!(users, ["u2", "u3"]);
    change(one(store, by("u3", "r3", react(1, "🎉", false)), 3_003).await);
    let Change::Reaction(taken) =
        change(one(store, by("u2", "r4", react(1, "👍", true)), 3_004).await)
    else {
        panic!("not a reaction")
    };
    assert!(taken.remove);
    assert_eq!(
        taken
            .reactions
            .iter()
            .map(|r| (&*r.emoji, r.count))
            .collect::<Vec<_>>(),
        [("👍", 1), ("🎉", 1)]
    );
    let nothing = one(store, by("u2", "r5", react(1, "👍", true)), 3_005).await;
    assert_eq!(refused(&nothing), Some(ErrorCode::NotFound));
    let many: Vec<Draft> = (0..25)
        .map(|i| {
            by(
                "u2",
                &format!("many-{i}"),
                react(2, &format!("e{i}"), false),
            )
        })
        .collect();
    let many = store.append(many, 3_006).await.unwrap();
    assert_eq!(many.iter().filter(|o| refused(o).is_none()).count(), 20);
    assert_eq!(refused(&many[20]), Some(ErrorCode::BadRequest));

    // Pins: moderators only, once.
    let by_member = one(store, by("u1", "p0", pin(1, false)), 4_000).await;
    assert_eq!(refused(&by_member), Some(ErrorCode::Forbidden));
    let Change::Pinned(pinned) = change(one(store, by("mod", "p1", pin(2, false)), 4_001).await)
    else {
        panic!("not a pin")
    };
    assert!(pinned.pinned);
    assert_eq!(pinned.message.as_ref().map(|m| m.seq), Some(2));
    let again = one(store, by("mod", "p1-again", pin(2, false)), 4_002).await;
    assert_eq!(seqs(&[again]), [(false, pinned.seq)]);
    change(one(store, by("mod", "p2", pin(1, false)), 4_003).await);
    let page = store.before("a", None, 50).await.unwrap();
    assert_eq!(page.pins.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 1]);
    let first = &page.messages[0];
    assert_eq!(first.text, "hello (moderated)");
    assert_eq!(first.edited_at, Some(2_000));
    assert_eq!(first.reactions.len(), 2);
    assert_eq!(
        page.messages[1].quote.as_ref().unwrap().text,
        "hello (moderated)"
    );
    let whole = store.after("a", 0, 1000).await.unwrap();
    assert_eq!(replayed(&whole), fresh(&page));

    // Deleting: the author's own or a moderator's; the tombstone loses its
    // reactions and pin, and replies show it deleted.
    let bobs = one(
        store,
        by("u1", "d-bob", Action::Delete { target: 2 }),
        5_000,
    )
    .await;
    assert_eq!(refused(&bobs), Some(ErrorCode::Forbidden));
    change(one(store, by("u1", "d1", Action::Delete { target: 1 }), 5_001).await);
    for (id, action) in [
        ("after-1", edit(1, "too late")),
        ("after-2", react(1, "👍", false)),
        ("after-3", reply("too late", 1)),
        ("after-4", Action::Delete { target: 1 }),
    ] {
        let late = one(store, by("mod", id, action), 5_002).await;
        assert_eq!(refused(&late), Some(ErrorCode::NotFound), "{id}");
    }
    let page = store.before("a", None, 50).await.unwrap();
    let tomb = &page.messages[0];
    assert!(tomb.deleted && tomb.text.is_empty() && tomb.reactions.is_empty());
    assert_eq!(tomb.edited_at, None);
    let quote = page.messages[1].quote.as_ref().unwrap();
    assert!(quote.deleted && quote.text.is_empty());
    assert_eq!(page.pins.iter().map(|m| m.seq).collect::<Vec<_>>(), [2]);
    change(one(store, by("mod", "p3", pin(2, true)), 5_003).await);
    let unpin_again = one(store, by("mod", "p4", pin(2, true)), 5_004).await;
    assert_eq!(refused(&unpin_again), Some(ErrorCode::NotFound));

    // Replaying every entry, or any stretch after a state one held, gives
    // what a fresh read gives.
    let page = store.before("a", None, 50).await.unwrap();
    assert!(page.pins.is_empty());
    let whole = store.after("a", 0, 1000).await.unwrap();
    assert_eq!(replayed(&whole), fresh(&page));
    let latest = whole.latest_seq;
    for since in 0..latest {
        let mut state = replayed(&Page {
            messages: whole
                .messages
                .iter()
                .filter(|m| m.seq <= since)
                .cloned()
                .collect(),
            changes: whole
                .changes
                .iter()
                .filter(|c| c.seq() <= since)
                .cloned()
                .collect(),
            ..Page::default()
        });
        // What an old client held is the state of its time, not the one
        // replayed from today's messages: keep only what it could know.
        let resumed = store.after("a", since, 1000).await.unwrap();
        state.pins = Vec::new();
        let mut applied = state.clone();
        applied.apply_joined(&chat_protocol::JoinedBody {
            room: "a".into(),
            seq: resumed.latest_seq,
            members: Vec::new().into(),
            messages: resumed.messages.clone(),
            events: resumed.changes.clone(),
            pins: resumed.pins.clone(),
            complete: !resumed.more,
            last_read: 0,
            unread: 0,
            unread_mentions: 0,
        });
        assert_eq!(applied, fresh(&page), "resumed after {since}");
    }

    // Versions: the original, each edit, the deletion.
    let versions = store.versions("a", 1).await.unwrap();
    let texts: Vec<(&str, &str, bool)> = versions
        .iter()
        .map(|v| (v.from.id.as_str(), v.text.as_str(), v.deleted))
        .collect();
    assert_eq!(
        texts,
        [
            ("u1", "text of m1", false),
            ("u1", "hello, edited", false),
            ("mod", "hello (moderated)", false),
            ("u1", "", true),
        ]
    );
    assert!(store.versions("a", 3).await.unwrap().is_empty());
    assert!(store.versions("a", 99).await.unwrap().is_empty());
}

fn message_in(room: &str, id: &str, text: &str) -> Draft {
    Draft {
        room: room.into(),
        action: Action::Send {
            text: text.into(),
            reply_to: None,
        },
        ..draft(room, id)
    }
}

async fn found(store: &dyn Store, words: &[&str], rooms: SearchScope) -> Vec<(String, u64)> {
    let search = Search {
        words: words.iter().map(|w| w.to_string()).collect(),
        rooms,
        cursor: None,
        limit: 50,
    };
    let found = store.search(&search).await.unwrap();
    assert_eq!(found.next, None);
    found
        .messages
        .into_iter()
        .map(|m| (m.room, m.seq))
        .collect()
}

fn pair(room: &str, seq: u64) -> (String, u64) {
    (room.to_owned(), seq)
}

/// Search, the same on every backend: every word anywhere in the text
/// (any script, ASCII case ignored, `LIKE`'s wildcards taken literally),
/// newest first, only in the rooms asked for or allowed, paged, and
/// reflecting edits and deletions at once.
pub async fn check_search(store: &dyn Store) {
    let drafts = vec![
        message_in("a", "a1", "Hello 你好吗 world"),
        message_in("a", "a2", "50% off today"),
        message_in("a", "a3", "500 off"),
        message_in("b", "b1", "hello from b"),
        message_in("team-x", "t1", "hello team"),
        message_in("a", "a4", "second hello"),
        message_in("TEAM-secret", "s1", "hello secret"),
    ];
    store.append(drafts, 1_000).await.unwrap();
    let any = || SearchScope::Readable(RoomAccess::Any);
    assert_eq!(
        found(store, &["hello"], any()).await,
        [
            pair("TEAM-secret", 1),
            pair("a", 4),
            pair("team-x", 1),
            pair("b", 1),
            pair("a", 1)
        ]
    );
    assert_eq!(found(store, &["你好"], any()).await, [pair("a", 1)]);
    assert_eq!(found(store, &["你好吗"], any()).await, [pair("a", 1)]);
    assert_eq!(
        found(store, &["HELLO", "world"], any()).await,
        [pair("a", 1)]
    );
    assert_eq!(found(store, &["50%"], any()).await, [pair("a", 2)]);
    assert_eq!(found(store, &["0_o"], any()).await, []);
    assert_eq!(
        found(store, &["hello"], SearchScope::Room("a".into())).await,
        [pair("a", 4), pair("a", 1)]
    );
    let allowed = RoomAccess::from_patterns(&["b", "team-*"]);
    assert_eq!(
        found(store, &["hello"], SearchScope::Readable(allowed)).await,
        [pair("team-x", 1), pair("b", 1)]
    );
    let none = RoomAccess::from_patterns::<&str>(&[]);
    assert_eq!(
        found(store, &["hello"], SearchScope::Readable(none)).await,
        []
    );
    // A prefix matches exactly: `team-*` is not `TEAM-*`; and `%` and `_`
    // in a prefix are themselves, not wildcards.
    let wild = RoomAccess::from_patterns(&["t_am-*"]);
    assert_eq!(
        found(store, &["hello"], SearchScope::Readable(wild)).await,
        []
    );

    // Pages of two, each starting where the last one ended.
    let mut cursor = None;
    let mut pages = Vec::new();
    loop {
        let search = Search {
            words: vec!["hello".into()],
            rooms: any(),
            cursor,
            limit: 2,
        };
        let page = store.search(&search).await.unwrap();
        pages.push(page.messages.iter().map(|m| m.seq).collect::<Vec<_>>());
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, [vec![1, 4], vec![1, 1], vec![1]]);

    // Edits and deletions show at once; changes themselves are not found.
    let edited = by("u1", "e-a4", edit(4, "second goodbye"));
    let deleted = by("u1", "d-a1", Action::Delete { target: 1 });
    store.append(vec![edited, deleted], 2_000).await.unwrap();
    assert_eq!(found(store, &["goodbye"], any()).await, [pair("a", 4)]);
    assert_eq!(
        found(store, &["hello"], any()).await,
        [pair("TEAM-secret", 1), pair("team-x", 1), pair("b", 1)]
    );
    assert_eq!(found(store, &["你好"], any()).await, []);
    let results = store
        .search(&Search {
            words: vec!["goodbye".into()],
            rooms: any(),
            cursor: None,
            limit: 5,
        })
        .await
        .unwrap();
    assert_eq!(results.messages[0].edited_at, Some(2_000));

    // Purged messages leave the index.
    let purge = Retention {
        keep_last: None,
        older_than_ts: Some(1_500),
    };
    store.purge(purge).await.unwrap();
    assert_eq!(found(store, &["hello"], any()).await, []);
    assert_eq!(found(store, &["goodbye"], any()).await, []);
}

/// A message `text` in room `room` by `from` (see [`by`]).
fn said(room: &str, from: &str, id: &str, text: &str) -> Draft {
    Draft {
        room: room.into(),
        ..by(
            from,
            id,
            Action::Send {
                text: text.into(),
                reply_to: None,
            },
        )
    }
}

/// `user_id`, called `name`, joined `room` (see `PersonChange::Joined`
/// for `read_to`).
pub fn joined(user_id: &str, name: &str, room: &str, read_to: u64) -> PersonChange {
    PersonChange::Joined {
        user: User {
            id: user_id.into(),
            name: name.into(),
        },
        room: room.into(),
        read_to,
    }
}

/// `user` read `room` up to `seq`.
pub fn read(user: &str, room: &str, seq: u64) -> PersonChange {
    PersonChange::Read {
        user: user.into(),
        room: room.into(),
        seq,
    }
}

/// (last_read, unread, unread_mentions, member name) of `user` in `room`.
async fn place(store: &dyn Store, room: &str, user: &str) -> (u64, u64, u64, Option<String>) {
    let (_, state) = store.join_page(room, user, None, 10).await.unwrap();
    (
        state.last_read,
        state.unread,
        state.unread_mentions,
        state.member_name,
    )
}

/// Memberships, read markers, unread and mention counts, the rooms list,
/// the directory, people and the shared secret: what every backend must
/// answer alike.
pub async fn check_people(store: &dyn Store) {
    // Alice and Bob are members of `p` before anything is said; Carol
    // joins after two messages, caught up.
    store
        .record(vec![
            joined("u1", "alice", "p", 0),
            joined("u2", "Bob Lee", "p", 0),
        ])
        .await
        .unwrap();
    assert_eq!(
        place(store, "p", "u2").await,
        (0, 0, 0, Some("Bob Lee".into()))
    );
    let first = vec![
        said("p", "u1", "m1", "hi @bob lee and @Carol"),
        said("p", "u1", "m2", "mail me@alice.example"),
    ];
    let stored = store.append(first, 1).await.unwrap();
    let Appended::New(m1) = &stored[0] else {
        panic!("{stored:?}")
    };
    // Carol is no member yet; Alice does not mention herself.
    assert_eq!(m1.mentions, ["u2"]);
    store
        .record(vec![joined("u3", "carol", "p", 9)])
        .await
        .unwrap();
    assert_eq!(place(store, "p", "u3").await.0, 2, "at most the latest seq");
    let later = vec![
        said("p", "u2", "m3", "@carol, @alice. @alice again"),
        said("p", "u1", "m4", "@Carol?"),
        said("p", "u3", "m5", "mine"),
    ];
    store.append(later, 2).await.unwrap();
    assert_eq!(
        place(store, "p", "u1").await,
        (0, 2, 1, Some("alice".into()))
    );
    assert_eq!(
        place(store, "p", "u2").await,
        (0, 4, 1, Some("Bob Lee".into()))
    );
    assert_eq!(
        place(store, "p", "u3").await,
        (2, 2, 2, Some("carol".into()))
    );
    // A deleted message is neither unread nor a mention, nor mentions anyone.
    let deleted = vec![Draft {
        room: "p".into(),
        ..by("u1", "d4", Action::Delete { target: 4 })
    }];
    store.append(deleted, 3).await.unwrap();
    assert_eq!(
        place(store, "p", "u3").await,
        (2, 1, 1, Some("carol".into()))
    );
    let page = store.after("p", 0, 10).await.unwrap();
    assert!(page.messages[3].mentions.is_empty() && page.messages[3].deleted);
    assert_eq!(page.messages[2].mentions, ["u1", "u3"]);
    // Markers move forward only, never past the room's end; each read
    // answers with the state after it, in order; non-members are not
    // moved (and count as having read everything).
    let states = store
        .record(vec![
            read("u2", "p", 3),
            read("u2", "p", 1),
            read("u1", "p", 99),
            read("u9", "p", 2),
        ])
        .await
        .unwrap();
    let marks: Vec<(u64, u64, u64)> = states
        .iter()
        .map(|s| (s.last_read, s.unread, s.unread_mentions))
        .collect();
    assert_eq!(marks, [(3, 1, 0), (3, 1, 0), (6, 0, 0), (6, 0, 0)]);
    assert_eq!(place(store, "p", "u9").await, (6, 0, 0, None));
    // Joining again keeps the marker and takes the new name.
    store
        .record(vec![joined("u2", "bobby", "p", 0)])
        .await
        .unwrap();
    assert_eq!(
        place(store, "p", "u2").await,
        (3, 1, 0, Some("bobby".into()))
    );
    assert_eq!(
        store.person("u2").await.unwrap().map(|u| u.name),
        Some("bobby".into())
    );
    assert_eq!(store.person("nobody").await.unwrap(), None);
    // A direct message: the peer invited has everything unread.
    let dm = chat_protocol::people::dm_room("u1", "u3").unwrap();
    store
        .record(vec![
            joined("u1", "alice", &dm, 0),
            joined("u3", "carol", &dm, 0),
        ])
        .await
        .unwrap();
    store
        .append(vec![said(&dm, "u1", "x1", "psst")], 10)
        .await
        .unwrap();
    assert_eq!(place(store, &dm, "u3").await.1, 1);
    let rooms = store.user_rooms("u3").await.unwrap();
    let listed: Vec<(&str, u64, u64, u64)> = rooms
        .iter()
        .map(|r| (r.room.as_str(), r.seq, r.unread, r.unread_mentions))
        .collect();
    assert_eq!(listed, [(dm.as_str(), 1, 1, 0), ("p", 6, 1, 1)]);
    assert_eq!(
        rooms[0].with.as_ref().map(|u| u.name.as_str()),
        Some("alice")
    );
    assert_eq!(
        rooms[0].last.as_ref().map(|m| m.text.as_str()),
        Some("psst")
    );
    assert_eq!(rooms[1].last.as_ref().map(|m| m.seq), Some(5));
    assert!(rooms[1].with.is_none());
    // Leaving takes the room off the list.
    store
        .record(vec![PersonChange::Left {
            user: "u3".into(),
            room: "p".into(),
        }])
        .await
        .unwrap();
    let rooms = store.user_rooms("u3").await.unwrap();
    assert_eq!(rooms.len(), 1);
    // The directory: no direct messages; members counted.
    store
        .append(vec![said("q", "u1", "q1", "hello")], 20)
        .await
        .unwrap();
    let directory = store.directory(10).await.unwrap();
    let entries: Vec<(&str, u64, u64, Option<i64>)> = directory
        .iter()
        .map(|d| (d.room.as_str(), d.members, d.seq, d.last_ts))
        .collect();
    assert_eq!(entries, [("q", 0, 1, Some(20)), ("p", 2, 6, Some(3))]);
    assert_eq!(store.directory(1).await.unwrap().len(), 1);
    // Purging messages takes their mentions with them.
    store
        .purge(Retention {
            keep_last: Some(1),
            older_than_ts: None,
        })
        .await
        .unwrap();
    assert_eq!(
        place(store, "p", "u2").await,
        (3, 0, 0, Some("bobby".into()))
    );
    // The shared secret: the first value stays.
    let kept = store.shared_secret("guest", "first".into()).await.unwrap();
    assert_eq!(kept, "first");
    let again = store.shared_secret("guest", "second".into()).await.unwrap();
    assert_eq!(again, "first");
}

/// Bans: stored, made again (the first time kept, the new reason taken),
/// listed newest first, a server ban apart from a room's, deleted once.
pub async fn check_bans(store: &dyn Store) {
    use chat_core::bans::Ban;
    let ban = |user: &str, room: Option<&str>, reason: Option<&str>, ts: i64| Ban {
        user: user.into(),
        room: room.map(str::to_owned),
        reason: reason.map(str::to_owned),
        ts,
    };
    assert_eq!(store.bans().await.unwrap(), vec![]);
    let first = ban("u1", Some("general"), Some("spam"), 10);
    assert_eq!(store.put_ban(&first).await.unwrap(), first);
    let server = ban("u1", None, None, 20);
    assert_eq!(store.put_ban(&server).await.unwrap(), server);
    let other = ban("u2", Some("聊天室"), None, 30);
    store.put_ban(&other).await.unwrap();
    let again = store
        .put_ban(&ban("u1", Some("general"), Some("more spam"), 40))
        .await
        .unwrap();
    assert_eq!(again, ban("u1", Some("general"), Some("more spam"), 10));
    assert_eq!(
        store.bans().await.unwrap(),
        vec![other.clone(), server, again]
    );
    assert!(store.delete_ban("u1", None).await.unwrap());
    assert!(!store.delete_ban("u1", None).await.unwrap());
    assert!(!store.delete_ban("u2", Some("general")).await.unwrap());
    assert!(store.delete_ban("u1", Some("general")).await.unwrap());
    assert_eq!(store.bans().await.unwrap(), vec![other]);
}
