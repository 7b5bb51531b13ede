//! Server frames of every kind, with every optional field set, for the
//! tests of each encoding: the native one here, Socket.IO's in the server.
//! One sample for all, so that a new kind of frame joins every such test at
//! once (and [`kind_index`] stops compiling until it is placed).

use crate::{
    AckBody, DeletedBody, ErrorBody, ErrorCode, HistoryBody, JoinedBody, LeftBody, Message,
    PongBody, PresenceBody, PresenceEvent, Ref, ServerFrame, TypingBody, User, WelcomeBody,
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
        deleted: false,
    }
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
        }),
        ServerFrame::Joined {
            reference: reference(),
            body: JoinedBody {
                room: "general".into(),
                seq: 9,
                members: vec![alice()].into(),
                messages: vec![message(8), tombstone(9)],
                complete: false,
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
            },
        },
        ServerFrame::Deleted(DeletedBody {
            room: "general".into(),
            seq: 4,
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
        ServerFrame::Deleted(_) => 10,
    }
}

pub const KINDS: usize = 11;
