//! Server frames of every kind, with every optional field set, for the
//! tests of each encoding: the native one here, Socket.IO's in the server.
//! One sample for all, so that a new kind of frame joins every such test at
//! once (and [`kind_index`] stops compiling until it is placed).

use crate::{
    AckBody, Change, DeletedBody, DirectoryBody, DirectoryEntry, EditedBody, ErrorBody, ErrorCode,
    HistoryBody, JoinedBody, LeftBody, Message, PinnedBody, PongBody, PresenceBody, PresenceEvent,
    Quote, Reaction, ReactionBody, ReadBody, Ref, RoomAddedBody, RoomSummary, RoomsBody,
    SearchResultsBody, ServerFrame, TypingBody, User, WelcomeBody,
};

pub fn alice() -> User {
    User {
        id: "u_1".into(),
        name: "alice".into(),
    }
}

pub fn message(seq: u64) -> Message {
    Message {
        room: "general".into(),
        seq,
        id: format!("c-{seq}"),
        from: alice(),
        text: "hello 你好 👋".into(),
        ts: 1763800000123,
        ..Message::default()
    }
}

/// A message with every extension set: edited, a reply, with reactions.
pub fn rich_message(seq: u64) -> Message {
    Message {
        edited_at: Some(1763800000300),
        reply_to: Some(1),
        quote: Some(Quote::new(alice(), "hello 你好 👋")),
        reactions: vec![Reaction {
            emoji: "👍".into(),
            count: 2,
            users: vec![alice(), bob()],
        }],
        mentions: vec![bob().id],
        ..message(seq)
    }
}

pub fn bob() -> User {
    User {
        id: "u_2".into(),
        name: "bob".into(),
    }
}

/// One change of each kind, to messages 3 and 4, numbered from 10.
pub fn changes() -> Vec<Change> {
    let room = || String::from("general");
    vec![
        Change::Edited(EditedBody {
            room: room(),
            seq: 10,
            id: "e-1".into(),
            target: 3,
            from: alice(),
            text: "hello, edited".into(),
            ts: 1763800000100,
        }),
        Change::Deleted(DeletedBody {
            room: room(),
            seq: 11,
            id: "d-1".into(),
            target: 4,
            from: alice(),
            ts: 1763800000200,
        }),
        Change::Reaction(ReactionBody {
            room: room(),
            seq: 12,
            id: "r-1".into(),
            target: 3,
            from: bob(),
            emoji: "👍".into(),
            remove: true,
            reactions: vec![Reaction {
                emoji: "👍".into(),
                count: 1,
                users: vec![alice()],
            }],
            ts: 1763800000300,
        }),
        Change::Pinned(PinnedBody {
            room: room(),
            seq: 13,
            id: "p-1".into(),
            target: 3,
            from: alice(),
            pinned: true,
            ts: 1763800000400,
            message: Some(Box::new(rich_message(3))),
        }),
    ]
}

pub fn tombstone(seq: u64) -> Message {
    Message {
        text: String::new(),
        deleted: true,
        ..message(seq)
    }
}

/// One frame of every kind, optional fields set, replies with `reference`.
pub fn every_kind(reference: Option<Ref>) -> Vec<ServerFrame> {
    let reference = || reference.clone();
    vec![
        ServerFrame::Welcome(WelcomeBody {
            session: "s_1".into(),
            user: alice(),
            heartbeat_ms: 25000,
            text: "hi".into(),
            guest_token: Some("g.t.s".into()),
        }),
        ServerFrame::Joined {
            reference: reference(),
            body: JoinedBody {
                room: "general".into(),
                seq: 9,
                members: vec![alice()].into(),
                messages: vec![message(8), tombstone(9), rich_message(10)],
                events: changes(),
                pins: vec![rich_message(10)],
                complete: false,
                last_read: 8,
                unread: 1,
                unread_mentions: 1,
            },
        },
        ServerFrame::Left {
            reference: reference(),
            body: LeftBody {
                room: "general".into(),
            },
        },
        ServerFrame::Ack {
            reference: reference(),
            body: AckBody {
                room: "general".into(),
                id: "c-1".into(),
                seq: 1,
                ts: 5,
                duplicate: true,
            },
        },
        ServerFrame::Message(message(3)),
        ServerFrame::History {
            reference: reference(),
            body: HistoryBody {
                room: "general".into(),
                messages: vec![tombstone(1), message(2)],
                events: changes(),
                more: true,
            },
        },
        ServerFrame::Typing(TypingBody {
            room: "general".into(),
            user: alice(),
        }),
        ServerFrame::Pong {
            reference: reference(),
            body: PongBody { ts: 77 },
        },
        ServerFrame::Presence(PresenceBody {
            room: "general".into(),
            event: PresenceEvent::Leave,
            user: alice(),
        }),
        ServerFrame::Error {
            reference: reference(),
            body: ErrorBody {
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
                room: None,
            },
        },
    ]
    .into_iter()
    .chain(changes().into_iter().map(ServerFrame::from))
    .chain([ServerFrame::SearchResults {
        reference: reference(),
        body: SearchResultsBody {
            query: "hello".into(),
            room: Some("general".into()),
            results: vec![rich_message(10), message(3)],
            next: Some(41),
        },
    }])
    .chain(people(reference()))
    .collect()
}

/// The frames about a person, every optional field set.
fn people(reference: Option<Ref>) -> [ServerFrame; 4] {
    let dm = "dm:u_1,u_2";
    [
        ServerFrame::Read {
            reference: reference.clone(),
            body: ReadBody {
                room: "general".into(),
                seq: 9,
                unread: 2,
                unread_mentions: 1,
            },
        },
        ServerFrame::Rooms {
            reference: reference.clone(),
            body: RoomsBody {
                rooms: vec![RoomSummary {
                    room: dm.into(),
                    seq: 10,
                    last_read: 8,
                    unread: 2,
                    unread_mentions: 1,
                    last: Some(rich_message(10)),
                    with: Some(bob()),
                }],
            },
        },
        ServerFrame::Directory {
            reference,
            body: DirectoryBody {
                rooms: vec![DirectoryEntry {
                    room: "general".into(),
                    members: 3,
                    seq: 10,
                    last_ts: Some(1763800000123),
                }],
            },
        },
        ServerFrame::RoomAdded(RoomAddedBody {
            room: dm.into(),
            with: bob(),
        }),
    ]
}

/// The sample's place of each kind: a new kind fails to compile here,
/// and then fails each crate's `the_sample_has_every_kind` test until it
/// is sampled.
pub fn kind_index(frame: &ServerFrame) -> usize {
    match frame {
        ServerFrame::Welcome(_) => 0,
        ServerFrame::Joined { .. } => 1,
        ServerFrame::Left { .. } => 2,
        ServerFrame::Ack { .. } => 3,
        ServerFrame::Message(_) => 4,
        ServerFrame::History { .. } => 5,
        ServerFrame::Typing(_) => 6,
        ServerFrame::Pong { .. } => 7,
        ServerFrame::Presence(_) => 8,
        ServerFrame::Error { .. } => 9,
        ServerFrame::Edited(_) => 10,
        ServerFrame::Deleted(_) => 11,
        ServerFrame::Reaction(_) => 12,
        ServerFrame::Pinned(_) => 13,
        ServerFrame::SearchResults { .. } => 14,
        ServerFrame::Read { .. } => 15,
        ServerFrame::Rooms { .. } => 16,
        ServerFrame::Directory { .. } => 17,
        ServerFrame::RoomAdded(_) => 18,
    }
}

pub const KINDS: usize = 19;
