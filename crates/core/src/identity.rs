//! Who a connection speaks for, as its transport established it.
//!
//! The core does not know how a user proved who they are (a JWT, nothing at
//! all): a transport asks the server's `auth` module for an [`Identity`] before
//! it opens a session, and the core only applies what the identity says —
//! the user id that ties several connections into one presence entry, and
//! which rooms the user may use: `Session::room` checks every request that
//! names a room against [`RoomAccess`] (`forbidden`), not joins alone, so
//! a room the user may not join cannot be read, written or typed in
//! either.

use chat_protocol::User;
use rand::Rng;

use crate::permissions::Role;

/// The user behind a connection and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: User,
    pub rooms: RoomAccess,
    /// Whether they may change others' messages and pin
    /// ([`permissions`](crate::permissions)).
    pub role: Role,
    /// For a guest (no token): the credential that makes a later
    /// connection this same user, handed to them in `welcome`.
    pub guest_token: Option<String>,
}

impl Identity {
    /// An anonymous user: a new user (`u_<ulid>`) unless `id` says which
    /// guest they are (the server checked their credential), called `name`
    /// (validated by the transport) or `guest-NNNN`.
    pub fn anonymous(id: Option<String>, name: Option<String>) -> Identity {
        let name =
            name.unwrap_or_else(|| format!("guest-{}", rand::rng().random_range(1000..10000)));
        Identity {
            user: User {
                id: id.unwrap_or_else(|| format!("u_{}", ulid::Ulid::new())),
                name,
            },
            rooms: RoomAccess::Any,
            role: Role::Member,
            guest_token: None,
        }
    }
}

/// Which rooms a user may join, send to, read the history of, type in
/// and leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomAccess {
    Any,
    /// Only rooms matching one of these (an empty list allows none).
    Only(Vec<RoomPattern>),
}

impl RoomAccess {
    /// Reads a token's `rooms` claim: each entry is a room name, or a
    /// prefix followed by `*` (`team-*`; a lone `*` is every room). A `*`
    /// anywhere else is part of the name.
    pub fn from_patterns<S: AsRef<str>>(patterns: &[S]) -> RoomAccess {
        RoomAccess::Only(
            patterns
                .iter()
                .map(|p| match p.as_ref().strip_suffix('*') {
                    Some(prefix) => RoomPattern::Prefix(prefix.to_owned()),
                    None => RoomPattern::Exact(p.as_ref().to_owned()),
                })
                .collect(),
        )
    }

    pub fn allows(&self, room: &str) -> bool {
        match self {
            RoomAccess::Any => true,
            RoomAccess::Only(patterns) => patterns.iter().any(|p| p.matches(room)),
        }
    }
}

/// One entry of a `rooms` claim. Matching is on the exact characters of
/// the room name: no case folding or normalization, as room names are
/// compared everywhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomPattern {
    Exact(String),
    Prefix(String),
}

impl RoomPattern {
    pub fn matches(&self, room: &str) -> bool {
        match self {
            RoomPattern::Exact(name) => room == name,
            RoomPattern::Prefix(prefix) => room.starts_with(prefix.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_exactly_and_star_patterns_by_prefix() {
        let access = RoomAccess::from_patterns(&["general", "team-*", "聊天*"]);
        assert!(access.allows("general"));
        assert!(!access.allows("general2"));
        assert!(!access.allows("General"));
        assert!(access.allows("team-"));
        assert!(access.allows("team-red"));
        assert!(!access.allows("team"));
        assert!(!access.allows("my-team-red"));
        assert!(access.allows("聊天室"));
        assert!(!access.allows("random"));
    }

    #[test]
    fn a_lone_star_allows_all_and_an_empty_list_none() {
        assert!(RoomAccess::from_patterns(&["*"]).allows("anything at all"));
        assert!(!RoomAccess::from_patterns::<&str>(&[]).allows("general"));
        assert!(RoomAccess::Any.allows("general"));
    }

    #[test]
    fn only_a_trailing_star_is_a_wildcard() {
        let access = RoomAccess::from_patterns(&["a*b"]);
        assert!(access.allows("a*b"));
        assert!(!access.allows("axb"));
        assert!(RoomAccess::from_patterns(&["a**"]).allows("a*c"));
        assert!(!RoomAccess::from_patterns(&["a**"]).allows("ac"));
    }

    #[test]
    fn anonymous_users_are_new_users_with_a_guest_name() {
        let a = Identity::anonymous(None, None);
        let b = Identity::anonymous(None, Some("alice".into()));
        assert!(a.user.id.starts_with("u_") && a.user.id != b.user.id);
        assert!(a.user.name.starts_with("guest-"));
        assert_eq!(b.user.name, "alice");
        assert_eq!(b.rooms, RoomAccess::Any);
        let again = Identity::anonymous(Some(a.user.id.clone()), Some("a2".into()));
        assert_eq!(again.user.id, a.user.id);
    }
}
