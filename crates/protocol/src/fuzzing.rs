//! What the fuzz targets in `fuzz/` run on each input, kept here so that
//! the committed seed corpus also runs as an ordinary test of this crate
//! (`tests/fuzz_corpus.rs`) and every `cargo test` covers it.
//!
//! Beyond "never panics", each function asserts the properties the server
//! relies on, so a violation is a crash the fuzzer reports.

use std::path::{Path, PathBuf};

use crate::codes::ErrorCode;
use crate::request::{Envelope, MAX_REF_CHARS, Ref, Request, parse_request};
use crate::validate;

/// A client text frame, as `/ws` hands it over: parsed, and every string a
/// request carries run through the validators with the default limits and
/// with tiny ones.
pub fn request_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        // Not a text frame: the WebSocket layer refuses it (1007).
        return;
    };
    let parsed = parse_request(text);
    // Parsing is a pure function of the text.
    assert_eq!(parsed, parse_request(text), "parse is deterministic");
    match parsed {
        Ok(Envelope { reference, request }) => {
            check_ref(reference.as_ref());
            for max in [1, 64, 4000] {
                strings(&request, max);
            }
        }
        Err(error) => {
            check_ref(error.reference.as_ref());
            // Only codes a parser can give: the rest need server state.
            assert!(
                matches!(error.code, ErrorCode::BadRequest | ErrorCode::UnknownType),
                "parse_request gave {:?}",
                error.code
            );
            assert!(!error.message.is_empty());
        }
    }
}

/// A display name or room name straight from a URL or a frame.
pub fn names(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for max in [1, 64, 4000] {
        let room = validate::room(&text, max);
        if room.is_ok() {
            let chars = text.chars().count();
            assert!((1..=max).contains(&chars));
            assert!(!text.chars().any(char::is_control));
            assert_eq!(validate::hidden_character(&text), None);
        }
        let _ = validate::text(&text, max);
    }
    if validate::display_name(&text).is_ok() {
        assert_eq!(validate::hidden_character(&text), None);
    }
    let _ = validate::client_id(&text);
}

fn check_ref(reference: Option<&Ref>) {
    if let Some(Ref::Text(text)) = reference {
        assert!(
            text.chars().count() <= MAX_REF_CHARS,
            "ref kept over the limit"
        );
    }
}

fn strings(request: &Request, max: usize) {
    match request {
        Request::Join { room, .. }
        | Request::Leave { room }
        | Request::History { room, .. }
        | Request::Read { room, .. }
        | Request::Typing { room } => {
            let _ = validate::room(room, max);
        }
        Request::Send { room, text, id, .. } | Request::Edit { room, text, id, .. } => {
            let _ = validate::room(room, max);
            if validate::text(text, max).is_ok() {
                assert!(text.chars().count() <= max);
            }
            if let Some(id) = id {
                let _ = validate::client_id(id);
            }
        }
        Request::React {
            room, emoji, id, ..
        } => {
            let _ = validate::room(room, max);
            if validate::emoji(emoji).is_ok() {
                assert!(emoji.chars().count() <= validate::MAX_EMOJI_CHARS);
            }
            if let Some(id) = id {
                let _ = validate::client_id(id);
            }
        }
        Request::Search { query, room, .. } => {
            if let Some(room) = room {
                let _ = validate::room(room, max);
            }
            if let Ok(words) = validate::search_words(query) {
                assert!(!words.is_empty() && words.len() <= validate::MAX_QUERY_WORDS);
            }
        }
        Request::Delete { room, id, .. } | Request::Pin { room, id, .. } => {
            let _ = validate::room(room, max);
            if let Some(id) = id {
                let _ = validate::client_id(id);
            }
        }
        Request::Dm { user } => {
            if let Some(room) = crate::people::dm_room(user, user) {
                assert_eq!(
                    crate::people::dm_peer(&room, user).as_deref(),
                    Some(&**user)
                );
            }
        }
        Request::Rooms | Request::Directory | Request::Ping => {}
    }
}

/// The committed seeds of fuzz target `target` (`fuzz/seeds/<target>/`),
/// sorted by path, each with its bytes: what the corpus tests of this crate
/// and of chat-server run through the targets' code.
pub fn committed_seeds(target: &str) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut seeds = std::fs::read_dir(&dir)?
        .map(|entry| {
            let path = entry?.path();
            let bytes = std::fs::read(&path)?;
            Ok((path, bytes))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    seeds.sort();
    Ok(seeds)
}
