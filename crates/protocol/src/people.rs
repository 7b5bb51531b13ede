//! People in rooms: the names of direct-message rooms, and `@name`
//! mentions in message text.
//!
//! A direct-message room's name is derived from its two users' ids, so
//! that any node, and either user, finds the same room without a lookup,
//! and the rule "only those two" is checked from the name alone, in the
//! one place every request's room is checked (`Session::room` in the
//! core). The ids are escaped so that no pair of ids can spell another
//! pair's room: `%` and `,` are the only characters escaped, and the name
//! must be exactly the escaping of an ordered pair to count as one.

/// Every direct-message room's name starts with this; no other room's may.
pub const DM_PREFIX: &str = "dm:";

/// Longest user id a direct-message room can be made for, in characters.
pub const MAX_DM_USER_CHARS: usize = 128;

/// The name of the direct-message room of users `a` and `b` (in either
/// order); `None` when an id is empty or too long.
pub fn dm_room(a: &str, b: &str) -> Option<String> {
    for id in [a, b] {
        if id.is_empty() || id.chars().count() > MAX_DM_USER_CHARS {
            return None;
        }
    }
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    Some(format!("{DM_PREFIX}{},{}", escape(first), escape(second)))
}

/// The two users of a direct-message room, from its name; `None` unless
/// the name is exactly what [`dm_room`] makes for some pair.
pub fn dm_users(room: &str) -> Option<(String, String)> {
    let rest = room.strip_prefix(DM_PREFIX)?;
    let (a, b) = rest.split_once(',')?;
    let (a, b) = (unescape(a)?, unescape(b)?);
    (dm_room(&a, &b).as_deref() == Some(room)).then_some((a, b))
}

/// The other user of a direct-message room `me` is in.
pub fn dm_peer(room: &str, me: &str) -> Option<String> {
    let (a, b) = dm_users(room)?;
    if a == me {
        Some(b)
    } else if b == me {
        Some(a)
    } else {
        None
    }
}

fn escape(id: &str) -> String {
    id.replace('%', "%25").replace(',', "%2C")
}

fn unescape(part: &str) -> Option<String> {
    let mut out = String::with_capacity(part.len());
    let mut rest = part;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3)?;
        out.push(match code {
            "25" => '%',
            "2C" => ',',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The form names are compared in for mentions: lower case.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// The first word (letters, digits, `_`) after each `@` of `text`, as
/// [`name_key`]s: a store looks up the members whose names start with one
/// of them, then [`mentioned`] decides on whole names.
/// An `@` inside a word (`me@example.com`) starts no mention.
pub fn mention_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = mention_starts(text)
        .filter_map(|after| {
            let word: String = after.chars().take_while(|c| is_word_char(*c)).collect();
            (!word.is_empty()).then(|| name_key(&word))
        })
        .collect();
    words.sort();
    words.dedup();
    words
}

/// Whether `text` mentions someone called `name`: an `@` (not inside a
/// word) followed by the whole name, in any case, and then no more of a
/// name, so `@al` mentions neither `alice` nor `al_x`, `@alice.` at the
/// end of a sentence mentions `alice`, and a name with spaces
/// (`@Ann Lee`) is mentioned whole.
pub fn mentioned(text: &str, name: &str) -> bool {
    let key = name_key(name);
    !key.is_empty()
        && mention_starts(text).any(|after| {
            let folded = name_key(after);
            folded
                .strip_prefix(key.as_str())
                .is_some_and(|rest| !continues_a_name(rest))
        })
}

/// What follows each `@` that starts a mention.
fn mention_starts(text: &str) -> impl Iterator<Item = &str> {
    text.char_indices().filter_map(move |(at, c)| {
        let starts = c == '@' && !text[..at].chars().next_back().is_some_and(is_word_char);
        starts.then(|| &text[at + 1..])
    })
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether text right after a name goes on with more of a name: a word
/// character, or `.` or `-` followed by one (`@bob.smith` is not `@bob`).
fn continues_a_name(rest: &str) -> bool {
    let mut chars = rest.chars();
    match chars.next() {
        Some(c) if is_word_char(c) => true,
        Some('.' | '-') => chars.next().is_some_and(is_word_char),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dm_room_is_the_same_for_both_users_and_only_theirs() {
        let room = dm_room("u_b", "u_a").unwrap();
        assert_eq!(room, "dm:u_a,u_b");
        assert_eq!(dm_room("u_a", "u_b").unwrap(), room);
        assert_eq!(dm_users(&room), Some(("u_a".into(), "u_b".into())));
        assert_eq!(dm_peer(&room, "u_a").as_deref(), Some("u_b"));
        assert_eq!(dm_peer(&room, "u_c"), None);
        // Notes to oneself.
        assert_eq!(dm_users("dm:u_a,u_a"), Some(("u_a".into(), "u_a".into())));
    }

    #[test]
    fn no_pair_of_ids_spells_another_pairs_room() {
        let tricky = dm_room("a,b", "c").unwrap();
        assert_eq!(tricky, "dm:a%2Cb,c");
        assert_eq!(dm_users(&tricky), Some(("a,b".into(), "c".into())));
        assert_ne!(dm_room("a", "b,c").unwrap(), tricky);
        assert_eq!(dm_users(&dm_room("100%", "x").unwrap()).unwrap().0, "100%");
        // Names that are not exactly an escaped, ordered pair are not DMs.
        for name in [
            "dm:b,a",
            "dm:a",
            "dm:a,b,c",
            "dm:a%2cb,c",
            "dm:a%zz,c",
            "dm:a%,c",
            "dm:,a",
            "DM:a,b",
            "general",
        ] {
            assert_eq!(dm_users(name), None, "{name}");
        }
        assert_eq!(dm_room("", "a"), None);
        assert_eq!(dm_room(&"x".repeat(MAX_DM_USER_CHARS + 1), "a"), None);
    }

    #[test]
    fn mentions_are_whole_names_after_an_at() {
        let text = "hi @Alice and @bob.smith, not me@example.com; @Ann Lee?";
        assert_eq!(
            mention_words(text),
            ["alice", "ann", "bob"].map(String::from)
        );
        assert!(mentioned(text, "alice"));
        assert!(mentioned(text, "ALICE"));
        assert!(mentioned(text, "bob.smith"));
        assert!(mentioned(text, "Ann Lee"));
        assert!(!mentioned(text, "bob"));
        assert!(!mentioned(text, "example.com"));
        assert!(!mentioned(text, "al"));
        assert!(!mentioned("@alicex", "alice"));
        assert!(mentioned("@张伟 你好", "张伟"));
        assert!(mentioned("(@alice)", "alice"));
        assert!(mentioned("thanks @alice.", "alice"));
        assert!(mentioned("@bob-", "bob"));
        assert!(!mentioned("hello", ""));
    }
}
