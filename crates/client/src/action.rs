//! What a write request adds to a room's sequence: [`Action`].

use crate::wire::Request;

/// A request that adds an entry to a room's sequence: a message, or a
/// change to one. The server answers each with an [`Ack`](crate::Ack)
/// carrying the new entry's own `seq`, and stores it at most once per `id`,
/// which is what lets the client retry any of them like a send
/// ([`Client::write`](crate::Client::write)).
///
/// `seq` is the number of the message the change applies to. Who may do
/// what: anyone in the room may send, reply and react; a message's author
/// (or a moderator) may edit and delete it; only a moderator may pin. A
/// refusal is [`Error::Server`](crate::Error::Server) with
/// [`ErrorCode::Forbidden`](crate::ErrorCode::Forbidden), and a `seq` that
/// names no message (never stored, purged, deleted, or a change) is
/// [`ErrorCode::NotFound`](crate::ErrorCode::NotFound).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// A new message, optionally replying to message `reply_to`.
    Send { text: String, reply_to: Option<u64> },
    /// Replaces the text of message `seq`.
    Edit { seq: u64, text: String },
    /// Deletes message `seq`; it stays in history as a tombstone.
    Delete { seq: u64 },
    /// Adds `emoji` to message `seq`, or with `remove` takes it back.
    React {
        seq: u64,
        emoji: String,
        remove: bool,
    },
    /// Pins message `seq`, or with `remove` unpins it.
    Pin { seq: u64, remove: bool },
}

impl Action {
    /// The request frame for this write in `room`, under `id`.
    pub(crate) fn request<'a>(&'a self, room: &'a str, id: &'a str, reference: u64) -> Request<'a> {
        match self {
            Action::Send { text, reply_to } => Request::Send {
                room,
                text,
                id,
                reply_to: *reply_to,
                reference,
            },
            Action::Edit { seq, text } => Request::Edit {
                room,
                seq: *seq,
                text,
                id,
                reference,
            },
            Action::Delete { seq } => Request::Delete {
                room,
                seq: *seq,
                id,
                reference,
            },
            Action::React { seq, emoji, remove } => Request::React {
                room,
                seq: *seq,
                emoji,
                remove: *remove,
                id,
                reference,
            },
            Action::Pin { seq, remove } => Request::Pin {
                room,
                seq: *seq,
                remove: *remove,
                id,
                reference,
            },
        }
    }
}
