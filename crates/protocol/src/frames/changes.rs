//! Changes to messages (extension): the entries of a room's sequence that
//! are not messages. Each has its own `seq`, the `target` seq of the message
//! it changes, and carries the target's resulting state rather than a
//! difference, so that applying a room's entries in `seq` order gives the
//! same state whatever state one starts from, as long as it is no newer than
//! the first entry applied ([`RoomState`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{JoinedBody, Message, User, is_false};

/// Characters of the quoted message a reply's [`Quote`] shows.
pub const QUOTE_CHARS: usize = 100;
/// Users a [`Reaction`] lists, the first to react first; `count` has them all.
pub const REACTION_USERS_SHOWN: usize = 10;

/// The start of the message a reply quotes, as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The quoted message's author.
    pub from: User,
    /// Its first [`QUOTE_CHARS`] characters; empty once deleted.
    pub text: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
}

impl Quote {
    /// The quote of a message with this author and text.
    pub fn new(from: User, text: &str) -> Quote {
        Quote {
            from,
            text: quoted_text(text),
            deleted: false,
        }
    }
}

/// The start of `text` that a quote shows.
pub fn quoted_text(text: &str) -> String {
    text.chars().take(QUOTE_CHARS).collect()
}

/// One emoji on a message: how many reacted with it, and the first
/// [`REACTION_USERS_SHOWN`] of them, in the order they reacted. A message
/// lists its emoji by their earliest reaction still in effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub emoji: String,
    pub count: u64,
    pub users: Vec<User>,
}

/// Message `target` now reads `text` (edited at `ts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditedBody {
    pub room: String,
    pub seq: u64,
    pub id: String,
    pub target: u64,
    /// Who edited it: its author, or a moderator.
    pub from: User,
    pub text: String,
    pub ts: i64,
}

/// Message `target` was deleted; it stays in history as a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedBody {
    pub room: String,
    pub seq: u64,
    pub id: String,
    pub target: u64,
    /// Who deleted it: its author, or a moderator.
    pub from: User,
    pub ts: i64,
}

/// `from` added (or, with `remove`, took back) `emoji` on message `target`;
/// `reactions` are the target's reactions after the change, all of them,
/// so that applying the event replaces the target's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionBody {
    pub room: String,
    pub seq: u64,
    pub id: String,
    pub target: u64,
    pub from: User,
    pub emoji: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub remove: bool,
    pub reactions: Vec<Reaction>,
    pub ts: i64,
}

/// A moderator pinned (`pinned: true`) or unpinned message `target`. A pin
/// carries the message as it is now, since it may be older than any a
/// client holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedBody {
    pub room: String,
    pub seq: u64,
    pub id: String,
    pub target: u64,
    pub from: User,
    pub pinned: bool,
    pub ts: i64,
    /// Boxed: a message is many times the size of the other fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Box<Message>>,
}

/// An entry of a room's sequence that changes a message, as the `events` of
/// `joined` and `history` list it: the live frame of the same `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    Edited(EditedBody),
    Deleted(DeletedBody),
    Reaction(ReactionBody),
    Pinned(PinnedBody),
}

impl Change {
    /// The change's own `seq` in its room.
    pub fn seq(&self) -> u64 {
        self.header().1
    }

    /// The `seq` of the message it changes.
    pub fn target(&self) -> u64 {
        self.header().2
    }

    pub fn room(&self) -> &str {
        self.header().0
    }

    /// The idempotency id of the request that made it.
    pub fn id(&self) -> &str {
        match self {
            Change::Edited(b) => &b.id,
            Change::Deleted(b) => &b.id,
            Change::Reaction(b) => &b.id,
            Change::Pinned(b) => &b.id,
        }
    }

    pub fn ts(&self) -> i64 {
        match self {
            Change::Edited(b) => b.ts,
            Change::Deleted(b) => b.ts,
            Change::Reaction(b) => b.ts,
            Change::Pinned(b) => b.ts,
        }
    }

    /// The frame's `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Change::Edited(_) => "edited",
            Change::Deleted(_) => "deleted",
            Change::Reaction(_) => "reaction",
            Change::Pinned(_) => "pinned",
        }
    }

    fn header(&self) -> (&str, u64, u64) {
        match self {
            Change::Edited(b) => (&b.room, b.seq, b.target),
            Change::Deleted(b) => (&b.room, b.seq, b.target),
            Change::Reaction(b) => (&b.room, b.seq, b.target),
            Change::Pinned(b) => (&b.room, b.seq, b.target),
        }
    }
}

impl Message {
    /// Turns the message into its tombstone: its place, `id`, author, `ts`
    /// and `reply_to` kept; its text, edit mark, quote, reactions and
    /// mentions gone. A deleted message mentions no one: the stores list
    /// none for a tombstone, so a client that kept them would hold a
    /// message unlike the one a fresh join shows, still "mentioning" its
    /// people.
    pub fn make_tombstone(&mut self) {
        self.text.clear();
        self.deleted = true;
        self.edited_at = None;
        self.quote = None;
        self.reactions.clear();
        self.mentions.clear();
    }

    /// Applies a change whose `target` is this message.
    fn apply(&mut self, change: &Change) {
        match change {
            Change::Edited(edit) => {
                self.text.clone_from(&edit.text);
                self.edited_at = Some(edit.ts);
            }
            Change::Deleted(_) => self.make_tombstone(),
            Change::Reaction(r) => self.reactions.clone_from(&r.reactions),
            Change::Pinned(_) => {}
        }
    }

    /// Updates this reply's quote after a change to the message it quotes.
    fn requote(&mut self, change: &Change) {
        let Some(quote) = &mut self.quote else {
            return;
        };
        match change {
            Change::Edited(edit) => quote.text = quoted_text(&edit.text),
            Change::Deleted(_) => {
                quote.text.clear();
                quote.deleted = true;
            }
            Change::Reaction(_) | Change::Pinned(_) => {}
        }
    }
}

/// A room as a client holds it: the messages it has, each in its current
/// state, and the pinned messages. The reference for what applying a
/// room's entries means (`docs/protocol.md` §5.5): a client that applies
/// every entry it receives, live or on resume, holds the same state as
/// one that joins afresh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomState {
    /// Messages by `seq`.
    pub messages: BTreeMap<u64, Message>,
    /// Pinned messages, the earliest pinned first.
    pub pins: Vec<Message>,
    /// The highest `seq` applied, message or change.
    pub last_seq: u64,
}

impl RoomState {
    /// Takes in a `joined` reply: its messages, changes and pins.
    pub fn apply_joined(&mut self, joined: &JoinedBody) {
        self.pins.clone_from(&joined.pins);
        for message in &joined.messages {
            self.apply_message(message.clone());
        }
        for change in &joined.events {
            self.apply_change(change);
        }
        self.last_seq = self.last_seq.max(joined.seq);
    }

    /// A new message, or a newer state of one already held.
    pub fn apply_message(&mut self, message: Message) {
        self.last_seq = self.last_seq.max(message.seq);
        if let Some(pinned) = self.pins.iter_mut().find(|p| p.seq == message.seq) {
            *pinned = message.clone();
        }
        self.messages.insert(message.seq, message);
    }

    /// Applies a change to every copy of its target (and to the quotes of
    /// replies to it).
    pub fn apply_change(&mut self, change: &Change) {
        self.last_seq = self.last_seq.max(change.seq());
        let target = change.target();
        if let Some(message) = self.messages.get_mut(&target) {
            message.apply(change);
        }
        for message in self.messages.values_mut() {
            if message.reply_to == Some(target) {
                message.requote(change);
            }
        }
        for pinned in &mut self.pins {
            if pinned.seq == target {
                pinned.apply(change);
            }
            if pinned.reply_to == Some(target) {
                pinned.requote(change);
            }
        }
        match change {
            Change::Pinned(pin) => {
                self.pins.retain(|p| p.seq != target);
                if pin.pinned
                    && let Some(message) = self
                        .messages
                        .get(&target)
                        .cloned()
                        .or_else(|| pin.message.as_deref().cloned())
                {
                    self.pins.push(message);
                }
            }
            Change::Deleted(_) => self.pins.retain(|p| p.seq != target),
            Change::Edited(_) | Change::Reaction(_) => {}
        }
    }
}
