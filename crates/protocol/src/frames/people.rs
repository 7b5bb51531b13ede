//! Frames about a person rather than a room's sequence: where they have
//! read to, the rooms they are in, the rooms they may discover, and the
//! direct-message rooms others open with them.
//!
//! Unread counts are exact: a room's messages after the person's read
//! marker (`last_read`), not deleted and not their own; mentions likewise,
//! among those that mention them.

use serde::{Deserialize, Serialize};

use super::{Message, User};

/// A person's place in one room: the reply to `read`, and what each of
/// their other connections hears when it moves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadBody {
    pub room: String,
    /// The read marker: every entry up to this `seq` was read.
    pub seq: u64,
    /// Messages after the marker, not deleted, from others.
    pub unread: u64,
    /// Those of them that mention the person.
    pub unread_mentions: u64,
}

/// The reply to `rooms`: the rooms the person is in, the most recently
/// active first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomsBody {
    pub rooms: Vec<RoomSummary>,
}

/// One of a person's rooms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub room: String,
    /// The room's latest sequence number.
    pub seq: u64,
    pub last_read: u64,
    pub unread: u64,
    pub unread_mentions: u64,
    /// The room's latest message, in its current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Message>,
    /// In a direct-message room: the other person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<User>,
}

/// The reply to `directory`: public rooms (no direct messages) the
/// person may join, the most recently active first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryBody {
    pub rooms: Vec<DirectoryEntry>,
}

/// A room of the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    pub room: String,
    /// People who joined it and did not leave.
    pub members: u64,
    pub seq: u64,
    /// When its latest entry was stored (absent for an empty room).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ts: Option<i64>,
}

/// Someone opened a direct-message room with this person (or this
/// person did, on another connection): join it to follow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomAddedBody {
    pub room: String,
    /// The other person of the direct-message room.
    pub with: User,
}
