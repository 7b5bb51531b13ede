//! Decoding server frames without allocating on the hot path.
//!
//! [`chat_protocol::ServerFrame`] is an internally tagged enum: serde buffers
//! every field of such a frame into an intermediate tree before it knows the
//! variant, then allocates every string. That is fine for a welcome or a
//! join reply but costs several allocations per ack and per broadcast, which
//! at tens of thousands of frames a second would make the generator, not the
//! server, the thing being measured. [`Peek`] reads only the top-level fields
//! the hot path needs, borrowing strings from the frame text; unknown fields
//! are skipped without being stored. Everything else is decoded with the
//! shared protocol type ([`decode_full`]), so the two cannot disagree on what
//! a frame means (a unit test ties their field names together).

use std::borrow::Cow;

use chat_protocol::ServerFrame;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// The `ref` of a frame as far as the bench cares: it only ever sends
/// numeric refs, so any other shape is "not one of ours".
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum PeekRef {
    Number(u64),
    Other(IgnoredAny),
}

impl PeekRef {
    /// The numeric value, when it is one.
    pub fn number(self) -> Option<u64> {
        match self {
            PeekRef::Number(n) => Some(n),
            PeekRef::Other(_) => None,
        }
    }
}

/// The top-level fields of any server frame that the hot path reads.
///
/// Field names are the wire names of [`ServerFrame`]'s variants (`type`,
/// `ref`, `room`, `seq`, `duplicate`, and a broadcast's `text`, which
/// carries the latency stamp of the load scenarios).
#[derive(Debug, Deserialize)]
pub struct Peek<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(rename = "ref", default)]
    pub reference: Option<PeekRef>,
    #[serde(default, borrow)]
    pub room: Option<Cow<'a, str>>,
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default)]
    pub duplicate: bool,
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
}

impl<'a> Peek<'a> {
    /// Reads the hot fields of one text frame.
    pub fn parse(text: &'a str) -> Result<Peek<'a>, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Reads the hot fields of one text frame given as bytes (the JSON
    /// parser validates the UTF-8 of what it reads).
    pub fn parse_bytes(text: &'a [u8]) -> Result<Peek<'a>, serde_json::Error> {
        serde_json::from_slice(text)
    }

    /// The frame's numeric `ref`, if it has one.
    pub fn ref_number(&self) -> Option<u64> {
        self.reference.and_then(PeekRef::number)
    }
}

/// Decodes a frame completely, with the protocol crate's type. Used for the
/// rare frames (welcome, joined, error) whose content the bench needs.
pub fn decode_full(text: &str) -> Result<ServerFrame, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::{AckBody, ErrorBody, ErrorCode, Message, Ref, User};

    #[test]
    fn peek_reads_an_ack_encoded_by_the_protocol_type() {
        let ack = ServerFrame::Ack {
            reference: Some(Ref::Number(17.into())),
            body: AckBody {
                room: "bench-3".into(),
                id: "c-1".into(),
                seq: 42,
                ts: 1,
                duplicate: true,
            },
        };
        let text = ack.to_json();
        let peek = Peek::parse(&text).unwrap();
        assert_eq!(peek.kind, "ack");
        assert_eq!(peek.ref_number(), Some(17));
        assert_eq!(peek.room.as_deref(), Some("bench-3"));
        assert_eq!(peek.seq, Some(42));
        assert!(peek.duplicate);
        // Borrowed: nothing was allocated for the strings.
        assert!(matches!(peek.kind, Cow::Borrowed(_)));
    }

    #[test]
    fn peek_skips_nested_fields_of_a_broadcast() {
        let msg = ServerFrame::Message(Message {
            room: "r".into(),
            seq: 9,
            id: "x".into(),
            from: User {
                id: "u_1".into(),
                name: "a \"quoted\" name".into(),
            },
            text: "{\"seq\": 1000}".into(),
            ts: 5,
            deleted: false,
            ..Default::default()
        });
        let text = msg.to_json();
        let peek = Peek::parse(&text).unwrap();
        assert_eq!(peek.kind, "message");
        assert_eq!(peek.seq, Some(9));
        assert_eq!(peek.text.as_deref(), Some("{\"seq\": 1000}"));
        let from_bytes = Peek::parse_bytes(text.as_bytes()).unwrap();
        assert_eq!(from_bytes.seq, Some(9));
        assert_eq!(peek.ref_number(), None);
        assert!(!peek.duplicate);
    }

    #[test]
    fn string_refs_are_not_ours() {
        let err = ServerFrame::Error {
            reference: Some(Ref::Text("abc".into())),
            body: ErrorBody {
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
                room: None,
            },
        };
        let text = err.to_json();
        let peek = Peek::parse(&text).unwrap();
        assert_eq!(peek.kind, "error");
        assert_eq!(peek.ref_number(), None);
        assert!(matches!(
            decode_full(&text).unwrap(),
            ServerFrame::Error {
                body: ErrorBody {
                    code: ErrorCode::RateLimited,
                    ..
                },
                ..
            }
        ));
    }
}
