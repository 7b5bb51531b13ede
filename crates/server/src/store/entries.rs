//! What both backends store the same way: the kinds of entry in a room's
//! sequence, and how stored rows become the protocol's changes and
//! reaction lists.
//!
//! Every entry of a room (a message, or a change to one) is a row of one
//! table, keyed by `(room, seq)` and unique by `(room, id)`, so the `seq`
//! counter, idempotency and retention work for all alike. A message row
//! holds the message's current state (text, edit mark, tombstone); a change
//! row what the change was (an edit's text, a reaction's emoji). Reactions
//! and pins in effect have tables of their own, so a message's current
//! state is read without replaying its changes.

use std::collections::BTreeMap;

use chat_core::permissions::{self, Target};
use chat_core::store::{Action, Appended, Draft};
use chat_protocol::validate::Invalid;
use chat_protocol::{
    Change, DeletedBody, EditedBody, ErrorCode, Message, PinnedBody, Reaction, ReactionBody,
    RoomSummary, User,
};

/// Users listed per emoji in a message's reactions; `count` has them all.
pub const REACTION_USERS_SHOWN: usize = chat_protocol::frames::REACTION_USERS_SHOWN;

/// Most different emoji on one message, so that a message's reactions (and
/// each `reaction` event, which lists them all) stay small.
pub const MAX_EMOJI_PER_MESSAGE: usize = 20;

/// The refusal of `emoji` on message `target`, which has `reactions`, when
/// it would be one different emoji too many.
pub fn emoji_limit(reactions: &[Reaction], target: u64, emoji: &str) -> Option<Invalid> {
    let full =
        reactions.len() >= MAX_EMOJI_PER_MESSAGE && !reactions.iter().any(|r| r.emoji == emoji);
    full.then(|| Invalid {
        code: ErrorCode::BadRequest,
        message: format!(
            "message {target} has {MAX_EMOJI_PER_MESSAGE} different reactions already; add one of those"
        ),
    })
}

/// The permissions' verdict on `draft`, given its target as the store read
/// it in the transaction that would store the draft (`None`: no message
/// there).
pub fn allowed(draft: &Draft, target: Option<&Message>) -> Result<(), Invalid> {
    permissions::check(
        draft,
        target.map(|t| Target {
            author: &t.from.id,
            deleted: t.deleted,
        }),
    )
}

/// Escapes `%`, `_` and `\` for a SQL `LIKE … ESCAPE '\'` pattern, so a
/// search word or a room prefix matches itself.
pub fn like_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The least string greater than every string starting with `prefix` (in
/// byte order, which both backends compare these columns in): a range
/// `>= prefix AND < this` finds them on an index.
pub fn upper_bound_of_prefix(prefix: &str) -> String {
    format!("{prefix}{}", char::MAX)
}

/// A message's `mentions` column: the ids it mentions as a JSON array,
/// or `None` (NULL) when it mentions nobody.
pub fn mentions_column(ids: &[String]) -> Option<String> {
    if ids.is_empty() {
        return None;
    }
    serde_json::to_string(ids).ok()
}

/// The ids a `mentions` column lists. Only the stores write it, so one
/// that does not parse is a bug: logged, and shown as mentioning nobody
/// rather than failing every read of its page.
pub fn mentions_listed(listed: &str) -> Vec<String> {
    serde_json::from_str(listed).unwrap_or_else(|error| {
        tracing::warn!(%error, "unreadable mentions column; showing none");
        Vec::new()
    })
}

/// A person's rooms in the order `Store::user_rooms` lists them: the
/// newest first by their last message; rooms without one last, by name.
pub fn sort_by_activity(rooms: &mut [RoomSummary]) {
    rooms.sort_by(|a, b| {
        let ts = |r: &RoomSummary| r.last.as_ref().map(|m| m.ts);
        ts(b).cmp(&ts(a)).then_with(|| a.room.cmp(&b.room))
    });
}

/// The kind of an entry, as stored in its row's `kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Message = 0,
    Edit = 1,
    Delete = 2,
    React = 3,
    Unreact = 4,
    Pin = 5,
    Unpin = 6,
}

impl Kind {
    pub fn of(action: &Action) -> Kind {
        match action {
            Action::Send { .. } => Kind::Message,
            Action::Edit { .. } => Kind::Edit,
            Action::Delete { .. } => Kind::Delete,
            Action::React { remove: false, .. } => Kind::React,
            Action::React { remove: true, .. } => Kind::Unreact,
            Action::Pin { remove: false, .. } => Kind::Pin,
            Action::Pin { remove: true, .. } => Kind::Unpin,
        }
    }

    pub fn from_stored(value: i64) -> Option<Kind> {
        Some(match value {
            0 => Kind::Message,
            1 => Kind::Edit,
            2 => Kind::Delete,
            3 => Kind::React,
            4 => Kind::Unreact,
            5 => Kind::Pin,
            6 => Kind::Unpin,
            _ => return None,
        })
    }

    pub fn stored(self) -> i64 {
        self as i64
    }
}

/// A change row as read back.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub seq: u64,
    pub id: String,
    pub kind: Kind,
    pub target: u64,
    pub from: User,
    /// An edit's new text; empty for other kinds.
    pub text: String,
    /// A reaction's emoji; empty for other kinds.
    pub emoji: String,
    pub ts: i64,
}

impl ChangeRow {
    /// The row of the change `draft` made, stored as `seq` at `ts`, and
    /// its room: what a read of it would find.
    pub fn stored(draft: Draft, seq: u64, ts: i64) -> (String, ChangeRow) {
        let kind = Kind::of(&draft.action);
        let (target, text, emoji) = match draft.action {
            Action::Edit { target, text } => (target, text, String::new()),
            Action::React { target, emoji, .. } => (target, String::new(), emoji),
            Action::Delete { target } | Action::Pin { target, .. } => {
                (target, String::new(), String::new())
            }
            Action::Send { reply_to, .. } => (reply_to.unwrap_or(0), String::new(), String::new()),
        };
        let row = ChangeRow {
            seq,
            id: draft.id,
            kind,
            target,
            from: draft.from,
            text,
            emoji,
            ts,
        };
        (draft.room, row)
    }

    /// The change as the protocol shows it. A reaction lists its target's
    /// reactions and a pin the pinned message as they are when read (the
    /// current state, which a client reaches by applying every change in
    /// order whatever the intermediate states were).
    pub fn into_change(
        self,
        room: &str,
        reactions: impl FnOnce() -> Vec<Reaction>,
        pinned: impl FnOnce() -> Option<Message>,
    ) -> Change {
        let ChangeRow {
            seq,
            id,
            kind,
            target,
            from,
            text,
            emoji,
            ts,
        } = self;
        let room = room.to_owned();
        match kind {
            Kind::Edit => Change::Edited(EditedBody {
                room,
                seq,
                id,
                target,
                from,
                text,
                ts,
            }),
            Kind::Delete => Change::Deleted(DeletedBody {
                room,
                seq,
                id,
                target,
                from,
                ts,
            }),
            Kind::React | Kind::Unreact => Change::Reaction(ReactionBody {
                room,
                seq,
                id,
                target,
                from,
                emoji,
                remove: kind == Kind::Unreact,
                reactions: reactions(),
                ts,
            }),
            Kind::Pin | Kind::Unpin => Change::Pinned(PinnedBody {
                room,
                seq,
                id,
                target,
                from,
                pinned: kind == Kind::Pin,
                ts,
                message: if kind == Kind::Pin {
                    pinned().map(Box::new)
                } else {
                    None
                },
            }),
            // Message rows are read as messages, never as changes.
            Kind::Message => unreachable!("a message row read as a change"),
        }
    }
}

/// The outcome of a change `draft` stored as `seq` at `ts`, with its
/// target's `reactions` and (for a pin) `pinned` message as the change left
/// them: the same frame a read of the change builds.
pub fn changed(
    draft: Draft,
    seq: u64,
    ts: i64,
    reactions: Vec<Reaction>,
    pinned: Option<Message>,
) -> Appended {
    let (room, row) = ChangeRow::stored(draft, seq, ts);
    Appended::Changed(row.into_change(&room, || reactions, || pinned))
}

/// One reaction in effect, as stored.
#[derive(Debug, Clone)]
pub struct ReactionRow {
    pub target: u64,
    pub emoji: String,
    pub user: User,
    /// The `seq` of the change that added it.
    pub seq: u64,
}

/// Each target's reactions from its rows: each emoji with its count and
/// first [`REACTION_USERS_SHOWN`] users by when they reacted, the emoji
/// ordered by their earliest reaction still in effect.
pub fn summarize(mut rows: Vec<ReactionRow>) -> BTreeMap<u64, Vec<Reaction>> {
    rows.sort_by_key(|r| (r.target, r.seq));
    let mut summaries: BTreeMap<u64, Vec<Reaction>> = BTreeMap::new();
    for row in rows {
        let reactions = summaries.entry(row.target).or_default();
        let reaction = match reactions.iter_mut().position(|r| r.emoji == row.emoji) {
            Some(at) => &mut reactions[at],
            None => {
                reactions.push(Reaction {
                    emoji: row.emoji,
                    count: 0,
                    users: Vec::new(),
                });
                reactions.last_mut().expect("just pushed")
            }
        };
        reaction.count += 1;
        if reaction.users.len() < REACTION_USERS_SHOWN {
            reaction.users.push(row.user);
        }
    }
    summaries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(target: u64, emoji: &str, user: &str, seq: u64) -> ReactionRow {
        ReactionRow {
            target,
            emoji: emoji.into(),
            user: User {
                id: user.into(),
                name: user.into(),
            },
            seq,
        }
    }

    #[test]
    fn reactions_are_ordered_by_their_earliest_and_capped() {
        let mut rows = vec![
            row(1, "😂", "bob", 5),
            row(1, "👍", "carol", 7),
            row(2, "👍", "alice", 3),
            row(1, "👍", "alice", 6),
        ];
        for i in 0..30 {
            rows.push(row(3, "🎉", &format!("u{i}"), 100 + i));
        }
        let summary = summarize(rows);
        let one = &summary[&1];
        assert_eq!(
            one.iter().map(|r| (&*r.emoji, r.count)).collect::<Vec<_>>(),
            [("😂", 1), ("👍", 2)]
        );
        assert_eq!(one[1].users[0].id, "alice");
        assert_eq!(summary[&2][0].count, 1);
        assert_eq!(summary[&3][0].count, 30);
        assert_eq!(summary[&3][0].users.len(), REACTION_USERS_SHOWN);
        assert_eq!(summary[&3][0].users[0].id, "u0");
    }

    #[test]
    fn like_patterns_match_only_themselves() {
        assert_eq!(like_escaped(r"50%_off\now"), r"50\%\_off\\now");
        assert_eq!(like_escaped("你好"), "你好");
    }

    #[test]
    fn every_kind_is_stored_as_itself() {
        for value in 0..7 {
            assert_eq!(Kind::from_stored(value).map(Kind::stored), Some(value));
        }
        assert_eq!(Kind::from_stored(7), None);
    }
}
