//! Limits on names, text and ids.
//!
//! Lengths are counted in Unicode scalar values (`char`s), not bytes, so
//! `聊天室` is three characters, the way a person counts them. Maxima come from
//! configuration; the defaults are the contract's.
//!
//! Names people read (room names, display names) carry no control (`Cc`)
//! or format (`Cf`) characters: those are invisible, and some change how
//! the text around them is shown. A right-to-left override (U+202E) makes
//! `al\u{202e}ecila` read as `alicela`; a zero-width space makes two names
//! that look the same differ. Message text keeps what people type.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::codes::ErrorCode;

/// Default maximum room name length, in characters.
pub const DEFAULT_MAX_ROOM_CHARS: usize = 64;
/// Default maximum message text length, in characters.
pub const DEFAULT_MAX_TEXT_CHARS: usize = 4000;
/// Maximum length of a client-chosen message id, in characters.
pub const MAX_ID_CHARS: usize = 64;
/// Maximum length of a display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A rejected value: the error code to answer with and why, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Invalid {
    pub code: ErrorCode,
    pub message: String,
}

fn invalid(code: ErrorCode, message: impl Into<String>) -> Invalid {
    Invalid {
        code,
        message: message.into(),
    }
}

/// The first character of `name` that is invisible or steers how text is
/// shown (general category `Cc` or `Cf`: NUL, escape, zero-width spaces
/// and joiners, bidi embeddings, overrides and isolates, the soft hyphen,
/// the byte order mark…), with what kind of character it is.
pub fn hidden_character(name: &str) -> Option<(char, &'static str)> {
    name.chars().find_map(|c| match c.general_category() {
        GeneralCategory::Control => Some((c, "a control character")),
        GeneralCategory::Format => Some((c, "a format character")),
        _ => None,
    })
}

/// A name shown to people: `1..=max_chars` characters, no control or
/// format characters ([`hidden_character`]), and no space at either end
/// (which would make two names that look the same differ).
fn check_name(name: &str, max_chars: usize, what: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 {
        return Err(format!("{what} must not be empty"));
    }
    if chars > max_chars {
        return Err(format!("{what} must be at most {max_chars} characters"));
    }
    if let Some((c, kind)) = hidden_character(name) {
        return Err(format!("{what} contains U+{:04X} ({kind})", u32::from(c)));
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(format!("{what} must not start or end with a space"));
    }
    Ok(())
}

/// Checks a room name (error code `invalid_room`). Names starting with
/// [`DM_PREFIX`](crate::people::DM_PREFIX) are direct-message rooms: they
/// must be exactly such a room's name, and their length follows from
/// their users' ids rather than `max_chars`.
pub fn room(name: &str, max_chars: usize) -> Result<(), Invalid> {
    let room_error = |m| invalid(ErrorCode::InvalidRoom, m);
    if name.starts_with(crate::people::DM_PREFIX) {
        if crate::people::dm_users(name).is_none() {
            return Err(room_error(format!(
                "room names starting with `{}` are direct-message rooms; open one with `dm`",
                crate::people::DM_PREFIX
            )));
        }
        return check_name(name, name.chars().count(), "room name").map_err(room_error);
    }
    check_name(name, max_chars, "room name").map_err(room_error)
}

/// Checks a display name (refused at the upgrade, so no error code applies;
/// `bad_request` is used where one is needed).
pub fn display_name(name: &str) -> Result<(), Invalid> {
    check_name(name, MAX_NAME_CHARS, "name").map_err(|m| invalid(ErrorCode::BadRequest, m))
}

/// Checks message text: `1..=max_chars` characters; tab, newline and carriage
/// return are the only control characters allowed, since others (NUL, escape
/// sequences) corrupt terminals and logs of whoever displays the text.
pub fn text(text: &str, max_chars: usize) -> Result<(), Invalid> {
    if text.is_empty() {
        return Err(invalid(ErrorCode::BadRequest, "text must not be empty"));
    }
    let mut chars = 0usize;
    for c in text.chars() {
        chars += 1;
        if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
            return Err(invalid(
                ErrorCode::BadRequest,
                "text must not contain control characters other than tab and newline",
            ));
        }
    }
    if chars > max_chars {
        return Err(invalid(
            ErrorCode::TooLong,
            format!("text is {chars} characters; at most {max_chars} are allowed"),
        ));
    }
    Ok(())
}

/// Most characters in a reaction's emoji: room for the longest emoji
/// sequences (a family, a flag with its tags) and short `:names:`.
pub const MAX_EMOJI_CHARS: usize = 32;

/// Checks a reaction's emoji: `1..=MAX_EMOJI_CHARS` characters, no spaces
/// or control characters. Format characters stay allowed: emoji sequences
/// are joined by U+200D.
pub fn emoji(emoji: &str) -> Result<(), Invalid> {
    let chars = emoji.chars().count();
    if chars == 0 || chars > MAX_EMOJI_CHARS {
        return Err(invalid(
            ErrorCode::BadRequest,
            format!("emoji must be 1 to {MAX_EMOJI_CHARS} characters"),
        ));
    }
    if emoji.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(
            ErrorCode::BadRequest,
            "emoji must not contain spaces or control characters",
        ));
    }
    Ok(())
}

/// Most characters in a search query.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most words in a search query.
pub const MAX_QUERY_WORDS: usize = 8;

/// The words of a search query: split at whitespace, 1 to
/// [`MAX_QUERY_WORDS`] of them in at most [`MAX_QUERY_CHARS`] characters,
/// no control characters.
pub fn search_words(query: &str) -> Result<Vec<String>, Invalid> {
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(invalid(
            ErrorCode::TooLong,
            format!("a search query has at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    if query.chars().any(char::is_control) {
        return Err(invalid(
            ErrorCode::BadRequest,
            "a search query must not contain control characters",
        ));
    }
    let words: Vec<String> = query.split_whitespace().map(str::to_owned).collect();
    if words.is_empty() || words.len() > MAX_QUERY_WORDS {
        return Err(invalid(
            ErrorCode::BadRequest,
            format!("a search query has 1 to {MAX_QUERY_WORDS} words"),
        ));
    }
    Ok(words)
}

/// Checks a client-chosen message id.
pub fn client_id(id: &str) -> Result<(), Invalid> {
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_ID_CHARS {
        return Err(invalid(
            ErrorCode::BadRequest,
            format!("id must be 1 to {MAX_ID_CHARS} characters"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(invalid(
            ErrorCode::BadRequest,
            "id must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_follow_the_contract() {
        for ok in [
            "general",
            "聊天室",
            "a",
            "with space inside",
            &"x".repeat(64),
        ] {
            assert!(room(ok, 64).is_ok(), "{ok}");
        }
        for bad in ["", " lead", "trail ", "tab\there", "nul\0", &"x".repeat(65)] {
            assert_eq!(
                room(bad, 64).unwrap_err().code,
                ErrorCode::InvalidRoom,
                "{bad:?}"
            );
        }
        // Counted in characters: 64 CJK characters are 192 bytes and allowed.
        assert!(room(&"聊".repeat(64), 64).is_ok());
    }

    #[test]
    fn names_refuse_control_and_format_characters_naming_the_code_point() {
        let hidden = [
            ('\u{202e}', "a format character"),  // right-to-left override
            ('\u{202a}', "a format character"),  // left-to-right embedding
            ('\u{2066}', "a format character"),  // left-to-right isolate
            ('\u{2069}', "a format character"),  // pop directional isolate
            ('\u{200b}', "a format character"),  // zero-width space
            ('\u{200d}', "a format character"),  // zero-width joiner
            ('\u{200f}', "a format character"),  // right-to-left mark
            ('\u{feff}', "a format character"),  // byte order mark
            ('\u{ad}', "a format character"),    // soft hyphen
            ('\u{e0041}', "a format character"), // tag latin capital A
            ('\u{1b}', "a control character"),   // escape
            ('\u{85}', "a control character"),   // next line (C1)
        ];
        for (c, kind) in hidden {
            let name = format!("al{c}ecila");
            let want = format!("U+{:04X} ({kind})", u32::from(c));
            let refused = room(&name, 64).unwrap_err();
            assert_eq!(refused.code, ErrorCode::InvalidRoom, "{name:?}");
            assert_eq!(refused.message, format!("room name contains {want}"));
            let refused = display_name(&name).unwrap_err();
            assert_eq!(refused.code, ErrorCode::BadRequest, "{name:?}");
            assert_eq!(refused.message, format!("name contains {want}"));
        }
        // Visible characters of every script, combining marks and emoji
        // (variation selectors are marks, not format characters) stay.
        for ok in [
            "שלום",
            "مرحبا",
            "Zoë",
            "e\u{301}",
            "❤\u{fe0f}",
            "👋🏽",
            "a\u{a0}b",
        ] {
            assert!(room(ok, 64).is_ok(), "{ok:?}");
            assert!(display_name(ok).is_ok(), "{ok:?}");
        }
        // Message text keeps format characters: people type them.
        assert!(text("\u{202e}reversed, \u{200d}joined", 4000).is_ok());
    }

    #[test]
    fn text_limits() {
        assert!(text("hello 你好 👋\nline two", 4000).is_ok());
        assert!(text(&"é".repeat(4000), 4000).is_ok());
        assert_eq!(
            text(&"é".repeat(4001), 4000).unwrap_err().code,
            ErrorCode::TooLong
        );
        assert_eq!(text("", 4000).unwrap_err().code, ErrorCode::BadRequest);
        assert_eq!(text("a\0b", 4000).unwrap_err().code, ErrorCode::BadRequest);
        assert_eq!(
            text("\u{1b}[2J", 4000).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn emoji_are_short_and_without_spaces() {
        for ok in [
            "👍",
            "👨\u{200d}👩\u{200d}👧",
            "🏳️\u{200d}🌈",
            ":party:",
            "+1",
        ] {
            assert_eq!(emoji(ok), Ok(()), "{ok}");
        }
        for bad in ["", " 👍", "a b", "\u{7}", &"x".repeat(MAX_EMOJI_CHARS + 1)] {
            assert_eq!(
                emoji(bad).unwrap_err().code,
                ErrorCode::BadRequest,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn search_queries_are_a_few_words() {
        assert_eq!(
            search_words("  你好  world "),
            Ok(vec!["你好".into(), "world".into()])
        );
        for bad in ["", "   ", "a b c d e f g h i", "tab\u{7}"] {
            assert_eq!(
                search_words(bad).unwrap_err().code,
                ErrorCode::BadRequest,
                "{bad:?}"
            );
        }
        let long = "x".repeat(MAX_QUERY_CHARS + 1);
        assert_eq!(search_words(&long).unwrap_err().code, ErrorCode::TooLong);
    }

    #[test]
    fn ids() {
        assert!(client_id("c-7f3a").is_ok());
        assert!(client_id("").is_err());
        assert!(client_id(&"i".repeat(65)).is_err());
    }
}
