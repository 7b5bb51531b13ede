//! Frames the server sends, as one tagged enum of frame bodies.
//!
//! The same type serves both directions of the wire: the server serializes it,
//! clients deserialize it. Each frame's fields are declared once, in its body
//! struct, and every encoding writes that body: the native protocol with `type`
//! and `ref` around it, Socket.IO alone (with `content` in messages, see
//! [`with_message_content`]). Fields the contract marks optional are skipped
//! when empty so the JSON matches the contract's examples exactly.

mod changes;
mod header;
mod people;

use std::cell::Cell;
use std::sync::Arc;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::codes::ErrorCode;
use crate::request::Ref;
pub use changes::{
    Change, DeletedBody, EditedBody, PinnedBody, QUOTE_CHARS, Quote, REACTION_USERS_SHOWN,
    Reaction, ReactionBody, RoomState, quoted_text,
};
use header::Headed;
pub use people::{DirectoryBody, DirectoryEntry, ReadBody, RoomAddedBody, RoomSummary, RoomsBody};

/// A user as the wire shows it: stable id and display name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
}

/// Members of a room are listed as users.
pub type Member = User;

/// A user together with its JSON encoding, made once.
///
/// A server lists every member of a room in each `joined` reply. In a join
/// storm (a room filling up, every client reconnecting after a restart)
/// encoding those users one by one, for every joiner, was most of a join's
/// work; with each user's encoding kept beside it, a listing copies bytes.
#[derive(Debug)]
pub struct EncodedUser {
    user: User,
    json: Box<RawValue>,
}

impl EncodedUser {
    pub fn new(user: User) -> Self {
        let json = serde_json::value::to_raw_value(&user)
            .expect("a user (two strings) always encodes as JSON");
        EncodedUser { user, json }
    }

    pub fn user(&self) -> &User {
        &self.user
    }
}

impl std::ops::Deref for EncodedUser {
    type Target = User;

    fn deref(&self) -> &User {
        &self.user
    }
}

/// The users a `joined` reply lists: as decoded from the wire, or as a
/// server holds them, encoded ahead ([`EncodedUser`]). Both are the same
/// JSON array of users on the wire, and compare equal when they list the
/// same users in the same order.
#[derive(Debug, Clone)]
pub enum Members {
    Users(Vec<Member>),
    Encoded(Vec<Arc<EncodedUser>>),
}

impl Members {
    /// The users, in the order listed.
    pub fn iter(&self) -> impl Iterator<Item = &User> {
        let (users, encoded) = match self {
            Members::Users(users) => (users.as_slice(), &[][..]),
            Members::Encoded(encoded) => (&[][..], encoded.as_slice()),
        };
        users.iter().chain(encoded.iter().map(|e| e.user()))
    }

    pub fn len(&self) -> usize {
        match self {
            Members::Users(users) => users.len(),
            Members::Encoded(encoded) => encoded.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn into_users(self) -> Vec<Member> {
        match self {
            Members::Users(users) => users,
            Members::Encoded(encoded) => encoded.iter().map(|e| e.user().clone()).collect(),
        }
    }
}

impl From<Vec<Member>> for Members {
    fn from(users: Vec<Member>) -> Self {
        Members::Users(users)
    }
}

impl PartialEq for Members {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Members {}

impl Serialize for Members {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Members::Users(users) => users.serialize(serializer),
            Members::Encoded(encoded) => serializer.collect_seq(encoded.iter().map(|e| &*e.json)),
        }
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Member>::deserialize(deserializer).map(Members::Users)
    }
}

/// A stored chat message, as broadcast, acked, and returned by history.
///
/// Its `Serialize` writes the fields below in order (the extensions only
/// when set), and Socket.IO's `content` after `ts` inside
/// [`with_message_content`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Message {
    pub room: String,
    pub seq: u64,
    pub id: String,
    pub from: User,
    pub text: String,
    /// Server clock at commit, milliseconds since the Unix epoch (UTC).
    pub ts: i64,
    /// Extension: removed by a moderator. The message keeps its `seq` (so
    /// history has no gap) but its text is empty. Absent on the wire unless
    /// set, so v1 clients see exactly the contract's fields.
    #[serde(default)]
    pub deleted: bool,
    /// Extension: when the text was last edited, if it was.
    #[serde(default)]
    pub edited_at: Option<i64>,
    /// Extension: the `seq` of the message this one replies to.
    #[serde(default)]
    pub reply_to: Option<u64>,
    /// Extension: the start of that message as it is now (absent when it
    /// is no longer stored).
    #[serde(default)]
    pub quote: Option<Quote>,
    /// Extension: emoji reactions, in the order each was first added.
    #[serde(default)]
    pub reactions: Vec<Reaction>,
    /// Extension: the ids of the room's members its `@name`s mention, as
    /// the server resolved them when it was sent.
    #[serde(default)]
    pub mentions: Vec<String>,
}

impl Message {
    /// The `message` frame of this message, encoded as
    /// [`ServerFrame::Message`] is, without cloning the message.
    pub fn as_frame(&self) -> impl Serialize + '_ {
        MessageFrame(self)
    }
}

struct MessageFrame<'a>(&'a Message);

impl Serialize for MessageFrame<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Headed {
            serializer,
            type_name: MESSAGE,
            reference: None,
        })
    }
}

thread_local! {
    /// Set while [`with_message_content`] runs on this thread.
    static MESSAGE_CONTENT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `encode` with every [`Message`] it serializes carrying `content`,
/// a copy of `text`, after `ts`: messages as Socket.IO clients get them
/// (docs/protocol.md §10.3), in whatever frame holds them.
///
/// A setting of the thread rather than a type, because a message sits at
/// different depths of different frames (a `message` frame, the `messages`
/// of `joined` and `history`) and serde gives a value's `Serialize` no other
/// way to learn which encoding it is written for; a serializer wrapping
/// every level to add the field would have to copy each text to write it
/// after `ts`.
pub fn with_message_content<R>(encode: impl FnOnce() -> R) -> R {
    /// Restores the setting even if `encode` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            MESSAGE_CONTENT.set(self.0);
        }
    }
    let _restore = Restore(MESSAGE_CONTENT.replace(true));
    encode()
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Destructured so that a new field cannot be left out.
        let Message {
            room,
            seq,
            id,
            from,
            text,
            ts,
            deleted,
            edited_at,
            reply_to,
            quote,
            reactions,
            mentions,
        } = self;
        let content = MESSAGE_CONTENT.get();
        let len = 6
            + usize::from(content)
            + usize::from(*deleted)
            + usize::from(edited_at.is_some())
            + usize::from(reply_to.is_some())
            + usize::from(quote.is_some())
            + usize::from(!reactions.is_empty())
            + usize::from(!mentions.is_empty());
        let mut fields = serializer.serialize_struct("Message", len)?;
        fields.serialize_field("room", room)?;
        fields.serialize_field("seq", seq)?;
        fields.serialize_field("id", id)?;
        fields.serialize_field("from", from)?;
        fields.serialize_field("text", text)?;
        fields.serialize_field("ts", ts)?;
        if content {
            fields.serialize_field("content", text)?;
        }
        if *deleted {
            fields.serialize_field("deleted", deleted)?;
        }
        if let Some(edited_at) = edited_at {
            fields.serialize_field("edited_at", edited_at)?;
        }
        if let Some(reply_to) = reply_to {
            fields.serialize_field("reply_to", reply_to)?;
        }
        if let Some(quote) = quote {
            fields.serialize_field("quote", quote)?;
        }
        if !reactions.is_empty() {
            fields.serialize_field("reactions", reactions)?;
        }
        if !mentions.is_empty() {
            fields.serialize_field("mentions", mentions)?;
        }
        fields.end()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceEvent {
    Join,
    Leave,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The `type` of a `message` frame.
const MESSAGE: &str = "message";

/// Every frame a server sends on the native protocol.
///
/// Each frame's fields are one body struct (a [`Message`] for `message`),
/// and every encoding writes that struct: the native one as its JSON object
/// with `type` and, on replies, `ref` first; Socket.IO the same for room
/// events and the body alone ([`ServerFrame::body`]) for replies. A field
/// added to a body reaches both.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome(WelcomeBody),
    Joined {
        #[serde(rename = "ref", default)]
        reference: Option<Ref>,
        #[serde(flatten)]
        body: JoinedBody,
    },
    Left {
        #[serde(rename = "ref", default)]
        reference: Option<Ref>,
        #[serde(flatten)]
        body: LeftBody,
    },
    Ack {
        #[serde(rename = "ref", default)]
        reference: Option<Ref>,
        #[serde(flatten)]
        body: AckBody,
    },
    Message(Message),
    History {
        #[serde(rename = "ref", default)]
        reference: Option<Ref>,
        #[serde(flatten)]
        body: HistoryBody,
    },
    Typing(TypingBody),
    Pong {
        #[serde(rename = "ref", default)]
        reference: Option<Ref>,
        #[serde(flatten)]
        body: PongBody,
    },
    Presence(PresenceBody),
    Error {
        #[serde(rename = "ref", default)]
        reference: Option<Ref>,
        #[serde(flatten)]
        body: ErrorBody,
    },
    /// Extension: message `target` was edited.
    Edited(EditedBody),
    /// Extension: message `target` was deleted; history now holds it as a
    /// tombstone (`deleted: true`, empty text).
    Deleted(DeletedBody),
    /// Extension: a reaction on message `target` was added or taken back.
    Reaction(ReactionBody),
    /// Extension: message `target` was pinned or unpinned.
    Pinned(PinnedBody),
    /// Extension: the reply to `search`.
    SearchResults {
        #[serde(rename = "ref", default)]
        reference: Option<Ref>,
        #[serde(flatten)]
        body: SearchResultsBody,
    },
    /// Extension: the person's read marker in a room moved (the reply to
    /// `read`, and news for their other connections).
    Read {
        #[serde(rename = "ref", default)]
        reference: Option<Ref>,
        #[serde(flatten)]
        body: ReadBody,
    },
    /// Extension: the reply to `rooms`.
    Rooms {
        #[serde(rename = "ref", default)]
        reference: Option<Ref>,
        #[serde(flatten)]
        body: RoomsBody,
    },
    /// Extension: the reply to `directory`.
    Directory {
        #[serde(rename = "ref", default)]
        reference: Option<Ref>,
        #[serde(flatten)]
        body: DirectoryBody,
    },
    /// Extension: a direct-message room was opened with this person.
    RoomAdded(RoomAddedBody),
}

/// The first frame of every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WelcomeBody {
    pub session: String,
    pub user: User,
    pub heartbeat_ms: u64,
    pub text: String,
    /// Extension, for a connection without a token: the credential that
    /// makes a later connection (`?guest=`) this same user. Signed by the
    /// server; a fresh one each time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_token: Option<String>,
}

/// The reply to `join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinedBody {
    pub room: String,
    /// The room's latest sequence number (0 for an empty room).
    pub seq: u64,
    pub members: Members,
    pub messages: Vec<Message>,
    /// Extension, with `since`: the changes with `seq > since`, to apply
    /// after `messages` (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Change>,
    /// Extension: the room's pinned messages, the earliest pinned first
    /// (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<Message>,
    /// False when more messages were missed than returned.
    pub complete: bool,
    /// Extension: the user's read marker in the room.
    #[serde(default)]
    pub last_read: u64,
    /// Extension: messages after it, not deleted, from others.
    #[serde(default)]
    pub unread: u64,
    /// Extension: those of them that mention the user.
    #[serde(default)]
    pub unread_mentions: u64,
}

/// The reply to `leave`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftBody {
    pub room: String,
}

/// The reply to `send`, once the message is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckBody {
    pub room: String,
    pub id: String,
    pub seq: u64,
    pub ts: i64,
    /// Set when the `id` had already been stored: nothing new was stored
    /// or broadcast, and the fields are those of the original.
    #[serde(default, skip_serializing_if = "is_false")]
    pub duplicate: bool,
}

/// The reply to `history`: one page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryBody {
    pub room: String,
    pub messages: Vec<Message>,
    /// Extension, with `after`: the changes in the page's range, to apply
    /// after `messages` (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Change>,
    /// More messages exist beyond this page, in the paging direction.
    pub more: bool,
}

/// Someone in `room` is typing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingBody {
    pub room: String,
    pub user: User,
}

/// The reply to `ping`: the server's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PongBody {
    pub ts: i64,
}

/// A user joined or left `room`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceBody {
    pub room: String,
    pub event: PresenceEvent,
    pub user: User,
}

/// The reply to `search`: one page of results, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResultsBody {
    pub query: String,
    /// The room searched; absent when every readable room was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Matching messages in their current state, newest first.
    pub results: Vec<Message>,
    /// The `cursor` of the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// A refused request, or (with `room`) news that a room was taken away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// Extension: the room an unsolicited error (no `ref`) is about: an
    /// operator banned the user from it (`forbidden`), so the connection
    /// is no longer in it and every request naming it is refused. Absent
    /// on replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

impl ErrorBody {
    /// The error of a refused request.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code,
            message: message.into(),
            room: None,
        }
    }
}

impl From<Change> for ServerFrame {
    fn from(change: Change) -> Self {
        match change {
            Change::Edited(body) => ServerFrame::Edited(body),
            Change::Deleted(body) => ServerFrame::Deleted(body),
            Change::Reaction(body) => ServerFrame::Reaction(body),
            Change::Pinned(body) => ServerFrame::Pinned(body),
        }
    }
}

impl ServerFrame {
    /// The change this frame announces, for the frames that are changes;
    /// any other frame back as it was.
    // The frame comes back whole rather than boxed: boxing it would cost an
    // allocation for every frame a client reads that is not a change.
    #[allow(clippy::result_large_err)]
    pub fn into_change(self) -> Result<Change, ServerFrame> {
        match self {
            ServerFrame::Edited(body) => Ok(Change::Edited(body)),
            ServerFrame::Deleted(body) => Ok(Change::Deleted(body)),
            ServerFrame::Reaction(body) => Ok(Change::Reaction(body)),
            ServerFrame::Pinned(body) => Ok(Change::Pinned(body)),
            other => Err(other),
        }
    }

    /// The frame's `type` on the wire (Socket.IO uses it as an event name).
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerFrame::Welcome(_) => "welcome",
            ServerFrame::Joined { .. } => "joined",
            ServerFrame::Left { .. } => "left",
            ServerFrame::Ack { .. } => "ack",
            ServerFrame::Message(_) => MESSAGE,
            ServerFrame::History { .. } => "history",
            ServerFrame::Typing(_) => "typing",
            ServerFrame::Pong { .. } => "pong",
            ServerFrame::Presence(_) => "presence",
            ServerFrame::Error { .. } => "error",
            ServerFrame::Edited(_) => "edited",
            ServerFrame::Deleted(_) => "deleted",
            ServerFrame::Reaction(_) => "reaction",
            ServerFrame::Pinned(_) => "pinned",
            ServerFrame::SearchResults { .. } => "search_results",
            ServerFrame::Read { .. } => "read",
            ServerFrame::Rooms { .. } => "rooms",
            ServerFrame::Directory { .. } => "directory",
            ServerFrame::RoomAdded(_) => "room_added",
        }
    }

    /// The `ref` of the request a reply answers, if it had one.
    pub fn reference(&self) -> Option<&Ref> {
        match self {
            ServerFrame::Joined { reference, .. }
            | ServerFrame::Left { reference, .. }
            | ServerFrame::Ack { reference, .. }
            | ServerFrame::History { reference, .. }
            | ServerFrame::Pong { reference, .. }
            | ServerFrame::Error { reference, .. }
            | ServerFrame::SearchResults { reference, .. }
            | ServerFrame::Read { reference, .. }
            | ServerFrame::Rooms { reference, .. }
            | ServerFrame::Directory { reference, .. } => reference.as_ref(),
            ServerFrame::RoomAdded(_)
            | ServerFrame::Welcome(_)
            | ServerFrame::Message(_)
            | ServerFrame::Typing(_)
            | ServerFrame::Presence(_)
            | ServerFrame::Edited(_)
            | ServerFrame::Deleted(_)
            | ServerFrame::Reaction(_)
            | ServerFrame::Pinned(_) => None,
        }
    }

    /// The frame's fields without `type` and `ref`: its body, as Socket.IO
    /// carries it.
    pub fn body(&self) -> impl Serialize + '_ {
        FrameBody(self)
    }

    /// Encodes the frame as the JSON text of one WebSocket message.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail: every map key is a
        // string and no value is a float.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    fn serialize_body<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ServerFrame::Welcome(body) => serialize_out_of_line(body, serializer),
            ServerFrame::Joined { body, .. } => serialize_out_of_line(body, serializer),
            ServerFrame::Left { body, .. } => serialize_out_of_line(body, serializer),
            ServerFrame::Ack { body, .. } => serialize_out_of_line(body, serializer),
            ServerFrame::Message(message) => serialize_out_of_line(message, serializer),
            ServerFrame::History { body, .. } => serialize_out_of_line(body, serializer),
            ServerFrame::Typing(body) => serialize_out_of_line(body, serializer),
            ServerFrame::Pong { body, .. } => serialize_out_of_line(body, serializer),
            ServerFrame::Presence(body) => serialize_out_of_line(body, serializer),
            ServerFrame::Error { body, .. } => serialize_out_of_line(body, serializer),
            ServerFrame::Edited(body) => serialize_out_of_line(body, serializer),
            ServerFrame::Deleted(body) => serialize_out_of_line(body, serializer),
            ServerFrame::Reaction(body) => serialize_out_of_line(body, serializer),
            ServerFrame::Pinned(body) => serialize_out_of_line(body, serializer),
            ServerFrame::SearchResults { body, .. } => serialize_out_of_line(body, serializer),
            ServerFrame::Read { body, .. } => serialize_out_of_line(body, serializer),
            ServerFrame::Rooms { body, .. } => serialize_out_of_line(body, serializer),
            ServerFrame::Directory { body, .. } => serialize_out_of_line(body, serializer),
            ServerFrame::RoomAdded(body) => serialize_out_of_line(body, serializer),
        }
    }
}

/// Serializes one body in a function of its own. Inlined into the match
/// over every kind, the bodies made one large function in which serde_json's
/// small writes became calls: Socket.IO's `presence` and `typing` encodes ran
/// 4% more instructions than before bodies existed, level with it apart.
#[inline(never)]
fn serialize_out_of_line<B: Serialize, S: Serializer>(
    body: &B,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    body.serialize(serializer)
}

/// The native encoding: the body with `type` and `ref` first.
impl Serialize for ServerFrame {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize_body(Headed {
            serializer,
            type_name: self.type_name(),
            reference: self.reference(),
        })
    }
}

struct FrameBody<'a>(&'a ServerFrame);

impl Serialize for FrameBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_body(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::{
        KINDS, alice, changes, every_kind, kind_index, message, rich_message, tombstone,
    };
    use serde_json::{Value, json};

    fn samples() -> impl Iterator<Item = ServerFrame> {
        [
            None,
            Some(Ref::Number(12.into())),
            Some(Ref::Text("t-1".into())),
        ]
        .into_iter()
        .flat_map(every_kind)
    }

    fn native(frame: &ServerFrame) -> Value {
        serde_json::from_str(&frame.to_json()).unwrap()
    }

    #[test]
    fn the_sample_has_every_kind() {
        let kinds: Vec<usize> = every_kind(None).iter().map(kind_index).collect();
        assert_eq!(kinds, (0..KINDS).collect::<Vec<_>>());
    }

    #[test]
    fn every_frame_round_trips_with_its_type_and_ref() {
        for frame in samples() {
            let value = native(&frame);
            assert_eq!(value["type"], frame.type_name(), "{value}");
            let reference = frame.reference().map(|r| serde_json::to_value(r).unwrap());
            assert_eq!(value.get("ref"), reference.as_ref(), "{value}");
            let back: ServerFrame = serde_json::from_str(&frame.to_json()).unwrap();
            assert_eq!(back, frame);
        }
    }

    #[test]
    fn the_body_is_the_native_frame_without_type_and_ref() {
        for frame in samples() {
            let mut expected = native(&frame);
            let fields = expected.as_object_mut().unwrap();
            fields.remove("type");
            fields.remove("ref");
            assert_eq!(serde_json::to_value(frame.body()).unwrap(), expected);
        }
    }

    #[test]
    fn the_header_comes_first() {
        let pong = ServerFrame::Pong {
            reference: Some(Ref::Text("p".into())),
            body: PongBody { ts: 1 },
        };
        assert_eq!(pong.to_json(), r#"{"type":"pong","ref":"p","ts":1}"#);
    }

    #[test]
    fn message_frame_matches_the_contract() {
        let frame = ServerFrame::Message(message(132));
        assert_eq!(
            native(&frame),
            json!({"type":"message","room":"general","seq":132,"id":"c-132",
                   "from":{"id":"u_1","name":"alice"},"text":"hello 你好 👋","ts":1763800000123u64})
        );
        let ServerFrame::Message(message) = &frame else {
            unreachable!()
        };
        assert_eq!(
            serde_json::to_string(&message.as_frame()).unwrap(),
            frame.to_json()
        );
    }

    #[test]
    fn tombstones_and_change_events_are_marked() {
        let tombstone = tombstone(4);
        let value = serde_json::to_value(&tombstone).unwrap();
        assert_eq!(value["deleted"], true);
        assert_eq!(value["text"], "");
        let back: Message = serde_json::from_value(value).unwrap();
        assert_eq!(back, tombstone);
        for change in changes() {
            let frame = ServerFrame::from(change.clone());
            let json = frame.to_json();
            // Listed in `events` exactly as sent live.
            assert_eq!(json, serde_json::to_string(&change).unwrap());
            assert_eq!(frame.type_name(), change.type_name());
            assert_eq!(frame.into_change(), Ok(change));
        }
        assert_eq!(
            ServerFrame::from(changes()[1].clone()).to_json(),
            r#"{"type":"deleted","room":"general","seq":11,"id":"d-1","target":4,"from":{"id":"u_1","name":"alice"},"ts":1763800000200}"#
        );
    }

    #[test]
    fn a_deletion_leaves_the_tombstone_the_stores_list() {
        // Message 4 with every extension, its mention of bob included;
        // the sample deletion (seq 11) of it leaves exactly the stores'
        // tombstone: no text, edit mark, quote, reactions or mentions, its
        // `reply_to` kept.
        let mut state = RoomState::default();
        state.apply_message(rich_message(4));
        state.apply_change(&changes()[1]);
        let expected = Message {
            reply_to: Some(1),
            ..tombstone(4)
        };
        assert_eq!(state.messages[&4], expected);
        assert_eq!(state.last_seq, 11);
    }

    #[test]
    fn messages_show_their_extensions_only_when_set() {
        let plain = serde_json::to_value(message(1)).unwrap();
        for key in [
            "deleted",
            "edited_at",
            "reply_to",
            "quote",
            "reactions",
            "mentions",
        ] {
            assert!(plain.get(key).is_none(), "{key} in {plain}");
        }
        let rich = rich_message(6);
        let value = serde_json::to_value(&rich).unwrap();
        assert_eq!(value["edited_at"], 1763800000300u64);
        assert_eq!(value["reply_to"], 1);
        assert_eq!(value["quote"]["text"], "hello 你好 👋");
        assert!(value["quote"].get("deleted").is_none());
        assert_eq!(value["reactions"][0]["count"], 2);
        assert_eq!(serde_json::from_value::<Message>(value).unwrap(), rich);
    }

    #[test]
    fn ack_omits_ref_and_duplicate_when_absent() {
        let frame = ServerFrame::Ack {
            reference: None,
            body: AckBody {
                room: "r".into(),
                id: "x".into(),
                seq: 1,
                ts: 5,
                duplicate: false,
            },
        };
        assert_eq!(
            frame.to_json(),
            r#"{"type":"ack","room":"r","id":"x","seq":1,"ts":5}"#
        );
    }

    #[test]
    fn messages_carry_content_after_ts_only_when_asked() {
        let native = r#"{"room":"general","seq":4,"id":"c-4","from":{"id":"u_1","name":"alice"},"text":"","ts":1763800000123,"deleted":true}"#;
        let socketio = r#"{"room":"general","seq":4,"id":"c-4","from":{"id":"u_1","name":"alice"},"text":"","ts":1763800000123,"content":"","deleted":true}"#;
        let encode = || serde_json::to_string(&tombstone(4)).unwrap();
        assert_eq!(encode(), native);
        assert_eq!(with_message_content(encode), socketio);
        // Nested, and restored afterwards, even after a panic.
        assert_eq!(
            with_message_content(|| with_message_content(encode)),
            socketio
        );
        assert!(std::panic::catch_unwind(|| with_message_content(|| panic!("boom"))).is_err());
        assert_eq!(encode(), native);
        let history = ServerFrame::History {
            reference: None,
            body: HistoryBody {
                room: "general".into(),
                messages: vec![message(1)],
                events: Vec::new(),
                more: false,
            },
        };
        let value: Value =
            serde_json::from_str(&with_message_content(|| history.to_json())).unwrap();
        assert_eq!(value["messages"][0]["content"], "hello 你好 👋");
    }

    #[test]
    fn members_encoded_ahead_are_the_same_json_as_a_list() {
        let bob = User {
            id: "u_2".into(),
            name: "bob \"the\" 👋".into(),
        };
        let listed = Members::Users(vec![alice(), bob.clone()]);
        let encoded = Members::Encoded(vec![
            Arc::new(EncodedUser::new(alice())),
            Arc::new(EncodedUser::new(bob)),
        ]);
        let wire = serde_json::to_string(&encoded).unwrap();
        assert_eq!(wire, serde_json::to_string(&listed).unwrap());
        assert_eq!(encoded, listed);
        let back: Members = serde_json::from_str(&wire).unwrap();
        assert_eq!(back, encoded);
        assert_eq!(encoded.len(), 2);
        assert_eq!(encoded.clone().into_users(), listed.clone().into_users());
        assert_ne!(Members::Users(vec![alice()]), listed);
    }
}
