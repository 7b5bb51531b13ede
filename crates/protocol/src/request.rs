//! Parsing client frames.
//!
//! Parsing happens in two steps so every kind of bad input gets the code the
//! contract gives it, and the error still carries the request's `ref` when
//! one could be read: first the envelope (a JSON object with a string `type`
//! and an optional `ref`), then the fields of that type. Unknown fields are
//! ignored so clients may send extensions to older servers.
//!
//! A key that appears twice in one object, at any depth, makes the frame
//! `bad_request`: JSON parsers disagree on which one counts (the first, the
//! last, an error), so a proxy or logger in front of us could read a
//! different request than we run. The check is part of the one parse
//! ([`UniqueKeys`]), not a second pass over the text.
//!
//! Semantic limits (room name length, text length) depend on configuration
//! and are checked by [`crate::validate`], not here.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

use crate::codes::ErrorCode;

/// Longest string `ref` a client may send, in characters.
pub const MAX_REF_CHARS: usize = 64;

/// A client's correlation value, echoed on every direct reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ref {
    Number(serde_json::Number),
    Text(String),
}

/// A well-formed client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Join {
        room: String,
        since: Option<u64>,
    },
    Leave {
        room: String,
    },
    Send {
        room: String,
        text: String,
        id: Option<String>,
        /// Extension: the `seq` of the message this one replies to.
        reply_to: Option<u64>,
    },
    /// Extension: replace the text of message `seq`.
    Edit {
        room: String,
        seq: u64,
        text: String,
        id: Option<String>,
    },
    /// Extension: delete message `seq` (it stays as a tombstone).
    Delete {
        room: String,
        seq: u64,
        id: Option<String>,
    },
    /// Extension: add `emoji` to message `seq`, or take it back (`remove`).
    React {
        room: String,
        seq: u64,
        emoji: String,
        remove: bool,
        id: Option<String>,
    },
    /// Extension: pin message `seq`, or unpin it (`remove`).
    Pin {
        room: String,
        seq: u64,
        remove: bool,
        id: Option<String>,
    },
    /// Extension: the messages whose text holds every word of `query`, in
    /// `room` or in every room the user may read, newest first; `cursor`
    /// is a previous page's `next`.
    Search {
        query: String,
        room: Option<String>,
        cursor: Option<u64>,
        limit: Option<u64>,
    },
    /// `before` and `after` are exclusive bounds; at most one is honoured,
    /// `after` winning (an extension of the contract, which has `before` only).
    History {
        room: String,
        before: Option<u64>,
        after: Option<u64>,
        limit: Option<u64>,
    },
    Typing {
        room: String,
    },
    /// Extension: move the user's read marker in `room` forward to `seq`.
    Read {
        room: String,
        seq: u64,
    },
    /// Extension: the user's rooms, with unread counts.
    Rooms,
    /// Extension: public rooms to discover.
    Directory,
    /// Extension: open (and join) the direct-message room with `user`.
    Dm {
        user: String,
    },
    Ping,
}

/// Why a frame could not be parsed, with the `ref` to answer it under.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RequestError {
    pub reference: Option<Ref>,
    pub code: ErrorCode,
    pub message: String,
}

/// A parsed frame: its `ref` and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub reference: Option<Ref>,
    pub request: Request,
}

/// Parses one text frame.
pub fn parse_request(text: &str) -> Result<Envelope, RequestError> {
    let bad = |message: String| RequestError {
        reference: None,
        code: ErrorCode::BadRequest,
        message,
    };
    let UniqueKeys(value) = serde_json::from_str(text).map_err(|e| RequestError {
        // A frame that is well-formed JSON may still fail to become a
        // `Value` (a `\ud800` escape with no pair, a number out of range
        // somewhere, a repeated key): its `ref` is still answered, unless
        // the repeated key is `ref`.
        reference: salvage_ref(text),
        ..bad(match e.classify() {
            serde_json::error::Category::Data => format!("frame is refused: {e}"),
            _ => format!("frame is not valid JSON: {e}"),
        })
    })?;
    let Value::Object(mut map) = value else {
        return Err(bad("frame must be a JSON object".into()));
    };
    let reference = match map.remove("ref") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(Ref::Number(n)),
        Some(Value::String(s)) if s.chars().count() <= MAX_REF_CHARS => Some(Ref::Text(s)),
        Some(Value::String(_)) => {
            return Err(bad(format!(
                "`ref` must be at most {MAX_REF_CHARS} characters"
            )));
        }
        Some(_) => return Err(bad("`ref` must be a number or a string".into())),
    };
    let kind = match map.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(_) => return Err(with_ref(&reference, bad("`type` must be a string".into()))),
        None => return Err(with_ref(&reference, bad("`type` is missing".into()))),
    };
    let mut fields = Fields {
        map,
        first_problem: None,
    };
    let request = match kind.as_str() {
        "join" => Ok(Request::Join {
            room: fields.string("room"),
            since: fields.opt_u64("since"),
        }),
        "leave" => Ok(Request::Leave {
            room: fields.string("room"),
        }),
        "send" => Ok(Request::Send {
            room: fields.string("room"),
            text: fields.string("text"),
            id: fields.opt_string("id"),
            reply_to: fields.opt_u64("reply_to"),
        }),
        "edit" => Ok(Request::Edit {
            room: fields.string("room"),
            seq: fields.u64("seq"),
            text: fields.string("text"),
            id: fields.opt_string("id"),
        }),
        "delete" => Ok(Request::Delete {
            room: fields.string("room"),
            seq: fields.u64("seq"),
            id: fields.opt_string("id"),
        }),
        "react" => Ok(Request::React {
            room: fields.string("room"),
            seq: fields.u64("seq"),
            emoji: fields.string("emoji"),
            remove: fields.opt_bool("remove"),
            id: fields.opt_string("id"),
        }),
        "search" => Ok(Request::Search {
            query: fields.string("query"),
            room: fields.opt_string("room"),
            cursor: fields.opt_u64("cursor"),
            limit: fields.opt_u64("limit"),
        }),
        "pin" => Ok(Request::Pin {
            room: fields.string("room"),
            seq: fields.u64("seq"),
            remove: fields.opt_bool("remove"),
            id: fields.opt_string("id"),
        }),
        "history" => Ok(Request::History {
            room: fields.string("room"),
            before: fields.opt_u64("before"),
            after: fields.opt_u64("after"),
            limit: fields.opt_u64("limit"),
        }),
        "typing" => Ok(Request::Typing {
            room: fields.string("room"),
        }),
        "read" => Ok(Request::Read {
            room: fields.string("room"),
            seq: fields.u64("seq"),
        }),
        "rooms" => Ok(Request::Rooms),
        "directory" => Ok(Request::Directory),
        "dm" => Ok(Request::Dm {
            user: fields.string("user"),
        }),
        "ping" => Ok(Request::Ping),
        other => Err(RequestError {
            reference: None,
            code: ErrorCode::UnknownType,
            message: format!("unknown frame type `{}`", truncate(other, 32)),
        }),
    };
    match (request, fields.finish()) {
        (Err(e), _) => Err(with_ref(&reference, e)),
        (Ok(_), Some(message)) => Err(with_ref(&reference, bad(message))),
        (Ok(request), None) => Ok(Envelope { reference, request }),
    }
}

fn with_ref(reference: &Option<Ref>, mut error: RequestError) -> RequestError {
    error.reference = reference.clone();
    error
}

fn truncate(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Field extraction that records the first problem instead of failing at
/// once, so the request builders above read as plain struct literals.
struct Fields {
    map: Map<String, Value>,
    first_problem: Option<String>,
}

impl Fields {
    fn problem(&mut self, message: String) {
        self.first_problem.get_or_insert(message);
    }

    fn string(&mut self, name: &str) -> String {
        match self.map.remove(name) {
            Some(Value::String(s)) => s,
            Some(_) => {
                self.problem(format!("`{name}` must be a string"));
                String::new()
            }
            None => {
                self.problem(format!("`{name}` is missing"));
                String::new()
            }
        }
    }

    fn opt_string(&mut self, name: &str) -> Option<String> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.problem(format!("`{name}` must be a string"));
                None
            }
        }
    }

    fn opt_u64(&mut self, name: &str) -> Option<u64> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
            Some(_) => {
                self.problem(format!("`{name}` must be a non-negative integer"));
                None
            }
        }
    }

    fn u64(&mut self, name: &str) -> u64 {
        if !self.map.contains_key(name) {
            self.problem(format!("`{name}` is missing"));
        }
        self.opt_u64(name).unwrap_or(0)
    }

    /// An optional flag: absent, `null` and `false` are all false.
    fn opt_bool(&mut self, name: &str) -> bool {
        match self.map.remove(name) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(_) => {
                self.problem(format!("`{name}` must be true or false"));
                false
            }
        }
    }

    /// The first problem met while extracting, if any.
    fn finish(self) -> Option<String> {
        self.first_problem
    }
}

/// A JSON value in which no object names a key twice, at any depth; a
/// repeated key fails the parse with "key `…` appears twice in one
/// object". Built in the same pass as a plain [`Value`], by the same
/// steps, plus one map lookup per key that the insertion does anyway.
#[derive(Debug, Clone, PartialEq)]
pub struct UniqueKeys(pub Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueKeysVisitor)
            .map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        // As `Value` does: JSON text has no NaN or infinity to give.
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut array = Vec::with_capacity(items.size_hint().unwrap_or(0));
        while let Some(UniqueKeys(item)) = items.next_element()? {
            array.push(item);
        }
        Ok(Value::Array(array))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            match object.entry(key) {
                Entry::Occupied(seen) => {
                    return Err(de::Error::custom(format_args!(
                        "key `{}` appears twice in one object",
                        truncate(seen.key(), 32)
                    )));
                }
                Entry::Vacant(slot) => {
                    slot.insert(entries.next_value::<UniqueKeys>()?.0);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// The `ref` of a frame whose JSON is well-formed but could not be read as
/// a whole. Only the `ref` member is decoded: skipping the others checks
/// their syntax but neither pairs `\u` escapes nor converts numbers (and
/// takes no recursion, however deep they nest). `None` for anything that is
/// not a JSON object with a valid `ref`.
fn salvage_ref(text: &str) -> Option<Ref> {
    #[derive(Deserialize)]
    struct OnlyRef<'a> {
        #[serde(rename = "ref", borrow)]
        reference: Option<&'a serde_json::value::RawValue>,
    }
    let raw = serde_json::from_str::<OnlyRef>(text).ok()?.reference?;
    match serde_json::from_str(raw.get()).ok()? {
        Value::Number(n) => Some(Ref::Number(n)),
        Value::String(s) if s.chars().count() <= MAX_REF_CHARS => Some(Ref::Text(s)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(text: &str) -> (ErrorCode, Option<Ref>) {
        let e = parse_request(text).unwrap_err();
        (e.code, e.reference)
    }

    #[test]
    fn keeps_the_ref_of_well_formed_json_it_cannot_read() {
        let n = |v: u64| Some(Ref::Number(v.into()));
        for (text, reference) in [
            (
                r#"{"type":"send","room":"r","text":"\ud800","ref":1}"#,
                n(1),
            ),
            (
                r#"{"type":"send","text":"\udc00x","ref":"a"}"#,
                Some(Ref::Text("a".into())),
            ),
            (r#"{"type":"join","room":"r","since":1e400,"ref":2}"#, n(2)),
            (r#"{"ref":3,"x":"\ud800"}"#, n(3)),
            // Not well-formed, or no valid ref: nothing to answer under.
            (r#"{"type":"send","ref":4,"text":"\ud800""#, None),
            (r#"{"type":"send","ref":"\ud800"}"#, None),
            (r#"{"type":"send","ref":[1],"x":1e400}"#, None),
            (r#"[1e400]"#, None),
        ] {
            assert_eq!(code_of(text), (ErrorCode::BadRequest, reference), "{text}");
        }
        let deep = format!(
            r#"{{"ref":5,"x":{}{}}}"#,
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        assert_eq!(code_of(&deep), (ErrorCode::BadRequest, n(5)));
    }

    #[test]
    fn parses_every_request_type() {
        let cases = [
            (
                r#"{"type":"join","room":"general","since":130,"ref":1}"#,
                Request::Join {
                    room: "general".into(),
                    since: Some(130),
                },
            ),
            (
                r#"{"type":"leave","room":"general"}"#,
                Request::Leave {
                    room: "general".into(),
                },
            ),
            (
                r#"{"type":"send","room":"r","text":"hi","id":"c-1"}"#,
                Request::Send {
                    room: "r".into(),
                    text: "hi".into(),
                    id: Some("c-1".into()),
                    reply_to: None,
                },
            ),
            (
                r#"{"type":"send","room":"r","text":"re","reply_to":7}"#,
                Request::Send {
                    room: "r".into(),
                    text: "re".into(),
                    id: None,
                    reply_to: Some(7),
                },
            ),
            (
                r#"{"type":"edit","room":"r","seq":7,"text":"fixed","id":"e-1"}"#,
                Request::Edit {
                    room: "r".into(),
                    seq: 7,
                    text: "fixed".into(),
                    id: Some("e-1".into()),
                },
            ),
            (
                r#"{"type":"delete","room":"r","seq":7}"#,
                Request::Delete {
                    room: "r".into(),
                    seq: 7,
                    id: None,
                },
            ),
            (
                r#"{"type":"react","room":"r","seq":7,"emoji":"👍","remove":true}"#,
                Request::React {
                    room: "r".into(),
                    seq: 7,
                    emoji: "👍".into(),
                    remove: true,
                    id: None,
                },
            ),
            (
                r#"{"type":"search","query":"你好 world","cursor":90}"#,
                Request::Search {
                    query: "你好 world".into(),
                    room: None,
                    cursor: Some(90),
                    limit: None,
                },
            ),
            (
                r#"{"type":"pin","room":"r","seq":7,"remove":null}"#,
                Request::Pin {
                    room: "r".into(),
                    seq: 7,
                    remove: false,
                    id: None,
                },
            ),
            (
                r#"{"type":"history","room":"r","before":132,"limit":50}"#,
                Request::History {
                    room: "r".into(),
                    before: Some(132),
                    after: None,
                    limit: Some(50),
                },
            ),
            (
                r#"{"type":"typing","room":"r"}"#,
                Request::Typing { room: "r".into() },
            ),
            (
                r#"{"type":"read","room":"r","seq":12}"#,
                Request::Read {
                    room: "r".into(),
                    seq: 12,
                },
            ),
            (r#"{"type":"rooms"}"#, Request::Rooms),
            (r#"{"type":"directory"}"#, Request::Directory),
            (
                r#"{"type":"dm","user":"u_2"}"#,
                Request::Dm { user: "u_2".into() },
            ),
            (r#"{"type":"ping","ref":"p"}"#, Request::Ping),
        ];
        for (text, want) in cases {
            assert_eq!(parse_request(text).unwrap().request, want, "{text}");
        }
    }

    #[test]
    fn keeps_the_ref_on_errors_after_the_envelope() {
        assert_eq!(
            code_of(r#"{"type":"nope","ref":5}"#),
            (ErrorCode::UnknownType, Some(Ref::Number(5.into())))
        );
        assert_eq!(
            code_of(r#"{"type":"send","room":"r","ref":"x"}"#),
            (ErrorCode::BadRequest, Some(Ref::Text("x".into())))
        );
        assert_eq!(
            code_of(r#"{"type":"join","room":"r","since":-1,"ref":2}"#),
            (ErrorCode::BadRequest, Some(Ref::Number(2.into())))
        );
    }

    #[test]
    fn rejects_malformed_envelopes_without_ref() {
        for text in [
            "not json",
            "[1,2]",
            "\"join\"",
            r#"{"room":"r"}"#,
            r#"{"type":7}"#,
            r#"{"type":"ping","ref":{"a":1}}"#,
            r#"{"type":"ping","ref":true}"#,
            r#"{"type":"send","room":"r","text":"\ud800"}"#,
            r#"{"type":"join","room":"r","since":1e400}"#,
        ] {
            let e = parse_request(text).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadRequest, "{text}");
        }
        let long_ref = format!(r#"{{"type":"ping","ref":"{}"}}"#, "x".repeat(65));
        assert_eq!(code_of(&long_ref), (ErrorCode::BadRequest, None));
    }

    #[test]
    fn a_key_twice_in_one_object_at_any_depth_is_refused() {
        let n = |v: u64| Some(Ref::Number(v.into()));
        for (text, reference) in [
            // The last `type` would have run: a join hidden behind a ping.
            (r#"{"type":"ping","type":"join","room":"r","ref":1}"#, n(1)),
            (
                r#"{"type":"send","room":"a","room":"b","text":"x","ref":2}"#,
                n(2),
            ),
            (
                r#"{"type":"ping","ref":3,"x":{"a":1,"b":{"c":1,"c":1}}}"#,
                n(3),
            ),
            (
                r#"{"type":"ping","ref":4,"x":[{"a":1},{"a":1,"a":1}]}"#,
                n(4),
            ),
            // Escapes do not hide a repeat: both keys are `type`.
            (
                r#"{"type":"ping","t\u0079pe":"join","ref":"e"}"#,
                Some(Ref::Text("e".into())),
            ),
            // Which `ref` to answer under? Neither.
            (r#"{"type":"ping","ref":5,"ref":6}"#, None),
        ] {
            let e = parse_request(text).unwrap_err();
            assert_eq!(
                (e.code, e.reference),
                (ErrorCode::BadRequest, reference),
                "{text}"
            );
            assert!(e.message.contains("appears twice"), "{text}: {}", e.message);
        }
        // The same key in different objects, or as a value, is fine.
        let text = r#"{"type":"ping","x":{"type":1},"y":[{"a":1},{"a":2}],"z":"type"}"#;
        assert_eq!(parse_request(text).unwrap().request, Request::Ping);
    }

    #[test]
    fn unique_keys_reads_what_a_plain_value_reads() {
        for text in [
            r#"{"a":[1,-2,3.5,1e300,18446744073709551615,-9223372036854775808],"b":null}"#,
            r#"{"s":"\u00e9\ud83d\udc4b\n","t":true,"f":false,"o":{},"e":[]}"#,
            r#"[{"x":{"y":[[],{}]}}]"#,
            r#""just a string""#,
        ] {
            let plain: Value = serde_json::from_str(text).unwrap();
            let UniqueKeys(unique) = serde_json::from_str(text).unwrap();
            assert_eq!(unique, plain, "{text}");
        }
    }

    #[test]
    fn null_optional_fields_count_as_absent() {
        let env = parse_request(r#"{"type":"join","room":"r","since":null,"ref":null}"#).unwrap();
        assert_eq!(env.reference, None);
        assert_eq!(
            env.request,
            Request::Join {
                room: "r".into(),
                since: None
            }
        );
    }
}
