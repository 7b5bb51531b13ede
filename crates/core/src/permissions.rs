//! Who may do what to a message: the one place that decides.
//!
//! Access to a room as a whole is the identity's `rooms` claim, checked by
//! `Session::room` for every request that names a room. Within a room, what
//! someone may do to a message depends on the message (its author, whether
//! it is still there), which only the store can read consistently with the
//! write: so the store reads the target inside the transaction that would
//! append the change and asks [`check`]; the rule itself stays here, for
//! every backend and every surface (`/ws`, Socket.IO, the HTTP API).
//!
//! The rules:
//! - anyone in the room may send, reply to a message, and react to one;
//! - a message's author may edit and delete it, and so may a moderator;
//! - only a moderator may pin and unpin;
//! - nothing may be done to a deleted message, or to an entry that is not
//!   a message (`not_found`), and a request naming a message that was never
//!   stored, or was purged, is `not_found` too.
//!
//! A moderator is a connection whose token says `role: "moderator"`, or the
//! operator, through the HTTP API.

use chat_protocol::validate::Invalid;
use chat_protocol::{ErrorCode, User};

use crate::store::{Action, Draft};

/// What a user may do beyond their own messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    /// Their own messages only.
    #[default]
    Member,
    /// Every message of the rooms they may use.
    Moderator,
}

/// What the store knows of a draft's target, read in the transaction that
/// would store the draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// The author's user id.
    pub author: &'a str,
    pub deleted: bool,
}

/// Whether `draft` may be stored, given its target: `None` when the room
/// holds no message at the target's `seq` (never stored, purged, or a
/// change rather than a message). Drafts without a target always may.
pub fn check(draft: &Draft, target: Option<Target<'_>>) -> Result<(), Invalid> {
    let Some(seq) = draft.action.target() else {
        return Ok(());
    };
    if matches!(draft.action, Action::Pin { .. }) && draft.role != Role::Moderator {
        return Err(forbidden("only a moderator may pin or unpin messages"));
    }
    let target = match target {
        Some(target) if !target.deleted => target,
        Some(_) => return Err(not_found(format!("message {seq} was deleted"))),
        None => return Err(not_found(format!("room has no message {seq}"))),
    };
    match &draft.action {
        Action::Edit { .. } | Action::Delete { .. } => {
            may_change(&draft.from, draft.role, target.author, seq)
        }
        Action::Send { .. } | Action::React { .. } | Action::Pin { .. } => Ok(()),
    }
}

/// Authors change their own messages; moderators any.
fn may_change(actor: &User, role: Role, author: &str, seq: u64) -> Result<(), Invalid> {
    if role == Role::Moderator || actor.id == author {
        Ok(())
    } else {
        Err(forbidden(format!(
            "message {seq} is someone else's: only its author or a moderator may change it"
        )))
    }
}

fn forbidden(message: impl Into<String>) -> Invalid {
    Invalid {
        code: ErrorCode::Forbidden,
        message: message.into(),
    }
}

/// The refusal for a change that has nothing to apply to, such as taking
/// back a reaction the user does not have.
pub fn not_found(message: impl Into<String>) -> Invalid {
    Invalid {
        code: ErrorCode::NotFound,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(user: &str, role: Role, action: Action) -> Draft {
        Draft {
            room: "general".into(),
            id: "x".into(),
            from: User {
                id: user.into(),
                name: user.into(),
            },
            role,
            action,
        }
    }

    fn by_alice(deleted: bool) -> Option<Target<'static>> {
        Some(Target {
            author: "alice",
            deleted,
        })
    }

    fn code(result: Result<(), Invalid>) -> Option<ErrorCode> {
        result.err().map(|e| e.code)
    }

    #[test]
    fn authors_and_moderators_change_a_message_others_do_not() {
        use Role::*;
        let edit = Action::Edit {
            target: 3,
            text: "new".into(),
        };
        let delete = Action::Delete { target: 3 };
        for action in [edit, delete] {
            assert_eq!(
                code(check(
                    &draft("alice", Member, action.clone()),
                    by_alice(false)
                )),
                None
            );
            assert_eq!(
                code(check(
                    &draft("mod", Moderator, action.clone()),
                    by_alice(false)
                )),
                None
            );
            assert_eq!(
                code(check(
                    &draft("bob", Member, action.clone()),
                    by_alice(false)
                )),
                Some(ErrorCode::Forbidden)
            );
            assert_eq!(
                code(check(
                    &draft("alice", Member, action.clone()),
                    by_alice(true)
                )),
                Some(ErrorCode::NotFound)
            );
            assert_eq!(
                code(check(&draft("mod", Moderator, action), None)),
                Some(ErrorCode::NotFound)
            );
        }
    }

    #[test]
    fn anyone_reacts_and_replies_only_moderators_pin() {
        use Role::*;
        let react = Action::React {
            target: 3,
            emoji: "👍".into(),
            remove: false,
        };
        let reply = Action::Send {
            text: "re".into(),
            reply_to: Some(3),
        };
        for action in [react, reply] {
            assert_eq!(
                code(check(
                    &draft("bob", Member, action.clone()),
                    by_alice(false)
                )),
                None
            );
            assert_eq!(
                code(check(&draft("bob", Member, action.clone()), by_alice(true))),
                Some(ErrorCode::NotFound)
            );
            assert_eq!(
                code(check(&draft("bob", Member, action), None)),
                Some(ErrorCode::NotFound)
            );
        }
        let pin = Action::Pin {
            target: 3,
            remove: false,
        };
        assert_eq!(
            code(check(
                &draft("mod", Moderator, pin.clone()),
                by_alice(false)
            )),
            None
        );
        // Refused before the target is looked at: a member learns nothing.
        assert_eq!(
            code(check(&draft("alice", Member, pin.clone()), by_alice(false))),
            Some(ErrorCode::Forbidden)
        );
        assert_eq!(
            code(check(&draft("alice", Member, pin), None)),
            Some(ErrorCode::Forbidden)
        );
        let send = Action::Send {
            text: "hi".into(),
            reply_to: None,
        };
        assert_eq!(code(check(&draft("bob", Member, send), None)), None);
    }
}
