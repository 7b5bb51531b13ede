//! Frames the server sends, as one tagged enum.
//!
//! The same type serves both directions of the wire: the server serializes it,
//! clients deserialize it. Fields the contract marks optional are skipped when
//! empty so the JSON matches the contract's examples exactly.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::codes::ErrorCode;
use crate::request::Ref;

/// A user as the wire shows it: stable id and display name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
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

/// Every frame a server sends on the native protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome {
        session: String,
        user: User,
        heartbeat_ms: u64,
        text: String,
    },
    Joined {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
        room: String,
        /// The room's latest sequence number (0 for an empty room).
        seq: u64,
        members: Members,
        messages: Vec<Message>,
        /// False when more messages were missed than returned.
        complete: bool,
    },
    Left {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
        room: String,
    },
    Ack {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
        room: String,
        id: String,
        seq: u64,
        ts: i64,
        /// Set when the `id` had already been stored: nothing new was stored
        /// or broadcast, and the fields are those of the original.
        #[serde(default, skip_serializing_if = "is_false")]
        duplicate: bool,
    },
    Message(Message),
    History {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
        room: String,
        messages: Vec<Message>,
        /// More messages exist beyond this page, in the paging direction.
        more: bool,
    },
    Typing {
        room: String,
        user: User,
    },
    Pong {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
        ts: i64,
    },
    Presence {
        room: String,
        event: PresenceEvent,
        user: User,
    },
    Error {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
        code: ErrorCode,
        message: String,
    },
    /// Extension: the message `seq` of `room` was deleted by a moderator;
    /// history now holds it as a tombstone (`deleted: true`, empty text).
    Deleted {
        room: String,
        seq: u64,
    },
}

impl ServerFrame {
    /// The frame's `type` on the wire (Socket.IO uses it as an event name).
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerFrame::Welcome { .. } => "welcome",
            ServerFrame::Joined { .. } => "joined",
            ServerFrame::Left { .. } => "left",
            ServerFrame::Ack { .. } => "ack",
            ServerFrame::Message(_) => "message",
            ServerFrame::History { .. } => "history",
            ServerFrame::Typing { .. } => "typing",
            ServerFrame::Pong { .. } => "pong",
            ServerFrame::Presence { .. } => "presence",
            ServerFrame::Error { .. } => "error",
            ServerFrame::Deleted { .. } => "deleted",
        }
    }

    /// Encodes the frame as the JSON text of one WebSocket message.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail: every map key is a
        // string and no value is a float.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alice() -> User {
        User {
            id: "u_1".into(),
            name: "alice".into(),
        }
    }

    #[test]
    fn type_name_is_the_serialized_type() {
        let frames = [
            ServerFrame::Left {
                reference: None,
                room: "r".into(),
            },
            ServerFrame::Pong {
                reference: None,
                ts: 1,
            },
            ServerFrame::Typing {
                room: "r".into(),
                user: alice(),
            },
            ServerFrame::Error {
                reference: None,
                code: ErrorCode::BadRequest,
                message: "m".into(),
            },
            ServerFrame::Deleted {
                room: "r".into(),
                seq: 3,
            },
        ];
        for frame in frames {
            let value: serde_json::Value = serde_json::from_str(&frame.to_json()).unwrap();
            assert_eq!(value["type"], frame.type_name());
        }
    }

    #[test]
    fn message_frame_matches_the_contract() {
        let frame = ServerFrame::Message(Message {
            room: "general".into(),
            seq: 132,
            id: "c-7f3a".into(),
            from: alice(),
            text: "hello 你好 👋".into(),
            ts: 1763800000123,
            deleted: false,
        });
        let value: serde_json::Value = serde_json::from_str(&frame.to_json()).unwrap();
        assert_eq!(
            value,
            json!({"type":"message","room":"general","seq":132,"id":"c-7f3a",
                   "from":{"id":"u_1","name":"alice"},"text":"hello 你好 👋","ts":1763800000123u64})
        );
    }

    #[test]
    fn tombstones_and_deleted_events_are_marked() {
        let tombstone = Message {
            room: "general".into(),
            seq: 4,
            id: "c-1".into(),
            from: alice(),
            text: String::new(),
            ts: 5,
            deleted: true,
        };
        let value = serde_json::to_value(&tombstone).unwrap();
        assert_eq!(value["deleted"], true);
        assert_eq!(value["text"], "");
        let back: Message = serde_json::from_value(value).unwrap();
        assert_eq!(back, tombstone);
        let frame = ServerFrame::Deleted {
            room: "general".into(),
            seq: 4,
        };
        assert_eq!(
            frame.to_json(),
            r#"{"type":"deleted","room":"general","seq":4}"#
        );
    }

    #[test]
    fn ack_omits_ref_and_duplicate_when_absent() {
        let frame = ServerFrame::Ack {
            reference: None,
            room: "r".into(),
            id: "x".into(),
            seq: 1,
            ts: 5,
            duplicate: false,
        };
        assert_eq!(
            frame.to_json(),
            r#"{"type":"ack","room":"r","id":"x","seq":1,"ts":5}"#
        );
    }

    #[test]
    fn frames_round_trip() {
        let frames = vec![
            ServerFrame::Error {
                reference: Some(Ref::Text("a".into())),
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
            },
            ServerFrame::Presence {
                room: "r".into(),
                event: PresenceEvent::Leave,
                user: alice(),
            },
            ServerFrame::Joined {
                reference: Some(Ref::Number(7.into())),
                room: "r".into(),
                seq: 0,
                members: vec![alice()].into(),
                messages: vec![],
                complete: true,
            },
        ];
        for frame in frames {
            let back: ServerFrame = serde_json::from_str(&frame.to_json()).unwrap();
            assert_eq!(back, frame);
        }
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
