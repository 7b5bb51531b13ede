//! A Socket.IO packet as a client sends it (the text of an Engine.IO
//! message after its `4`), read as the server reads it: the codec with the
//! server's settings ([`parse_config`]), our classification
//! ([`classify`]), and for an event the mapping to a native request
//! ([`mapping::request`]). Then the replies that request gets, through
//! [`mapping::reply`] and back through the codec.
//!
//! Checked on every input, beyond "never panics":
//!
//! - the mapping is a function of the packet: the same data and ack id
//!   give the same answer;
//! - only the codes a parser gives come out (`bad_request`,
//!   `unknown_type`), with a message;
//! - the ack id, and nothing the client wrote, is the request's `ref`,
//!   whether the request maps or not: every callback gets its answer, and
//!   a `ref` in the argument cannot steer it elsewhere;
//! - round trip: a mapped request, written back as the event a client
//!   would emit for it, maps to the same request; and a reply to it reads
//!   back as the ack of that id (or the event named after the reply when
//!   there is no id), with the room, error code and message intact and no
//!   `type` or `ref` in an ack.

use chat_protocol::{
    AckBody, DirectoryBody, ErrorBody, ErrorCode, HistoryBody, JoinedBody, LeftBody, PongBody,
    ReadBody, Ref, Request, RoomsBody, SearchResultsBody, ServerFrame, request::Envelope,
};
use engineioxide::Str;
use serde_json::{Map, Value as Json, json};
use socketioxide_core::Value;
use socketioxide_core::packet::PacketData;
use socketioxide_core::parser::{Parse, ParserState};
use socketioxide_parser_common::CommonParser;

use crate::config::DEFAULT_MAX_FRAME_BYTES;
use crate::transport::socketio::mapping::{self, NAMESPACE};
use crate::transport::socketio::{Classified, Incoming, classify, parse_config};

/// Runs one packet.
pub fn packet(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        // Not a text frame: the WebSocket layer refuses it (1007).
        return;
    };
    let decoded = CommonParser.decode_str(
        &parse_config(DEFAULT_MAX_FRAME_BYTES),
        &ParserState::default(),
        Str::copy_from_slice(text),
    );
    if let Classified::Incoming(Incoming::Event { data, ack }) = classify(decoded) {
        event(&data, ack);
    }
}

/// An event's `["name", args…]` and its ack id.
fn event(data: &Str, ack: Option<i64>) {
    let mapped = mapping::request(data, ack);
    assert_eq!(
        mapped,
        mapping::request(data, ack),
        "the mapping is deterministic"
    );
    let reference = ack.map(|id| Ref::Number(id.into()));
    match mapped {
        Ok(envelope) => {
            assert_eq!(
                envelope.reference, reference,
                "the ack id is the request's ref"
            );
            if let Some(emitted) = as_event(&envelope.request) {
                let again = mapping::request(&Str::from(emitted.to_string()), ack);
                assert_eq!(again, Ok(envelope.clone()), "{emitted} maps back");
            }
            replies(&envelope, ack);
        }
        Err(error) => {
            assert!(
                matches!(error.code, ErrorCode::BadRequest | ErrorCode::UnknownType),
                "the mapping gave {:?}",
                error.code
            );
            assert!(!error.message.is_empty());
            assert_eq!(error.reference, reference, "the error goes to the callback");
            reply_reads_back(
                &ServerFrame::Error {
                    reference: error.reference,
                    body: ErrorBody {
                        code: error.code,
                        message: error.message,
                        room: None,
                    },
                },
                ack,
            );
        }
    }
}

/// The event a client emits for `request`, with its argument as an object
/// (`None` for `ping`, which has no event).
fn as_event(request: &Request) -> Option<Json> {
    let (name, fields) = match request {
        Request::Join { room, since } => ("join", fields(room, [("since", since.map(Json::from))])),
        Request::Leave { room } => ("leave", fields(room, [])),
        Request::Send {
            room,
            text,
            id,
            reply_to,
        } => (
            "message",
            fields(
                room,
                [
                    ("content", Some(Json::from(text.as_str()))),
                    ("id", id.as_deref().map(Json::from)),
                    ("reply_to", reply_to.map(Json::from)),
                ],
            ),
        ),
        Request::Edit {
            room,
            seq,
            text,
            id,
        } => (
            "edit",
            fields(
                room,
                [
                    ("seq", Some(Json::from(*seq))),
                    ("text", Some(Json::from(text.as_str()))),
                    ("id", id.as_deref().map(Json::from)),
                ],
            ),
        ),
        Request::Delete { room, seq, id } => (
            "delete",
            fields(
                room,
                [
                    ("seq", Some(Json::from(*seq))),
                    ("id", id.as_deref().map(Json::from)),
                ],
            ),
        ),
        Request::React {
            room,
            seq,
            emoji,
            remove,
            id,
        } => (
            "react",
            fields(
                room,
                [
                    ("seq", Some(Json::from(*seq))),
                    ("emoji", Some(Json::from(emoji.as_str()))),
                    ("remove", Some(Json::from(*remove))),
                    ("id", id.as_deref().map(Json::from)),
                ],
            ),
        ),
        Request::Pin {
            room,
            seq,
            remove,
            id,
        } => (
            "pin",
            fields(
                room,
                [
                    ("seq", Some(Json::from(*seq))),
                    ("remove", Some(Json::from(*remove))),
                    ("id", id.as_deref().map(Json::from)),
                ],
            ),
        ),
        Request::History {
            room,
            before,
            after,
            limit,
        } => (
            "history",
            fields(
                room,
                [
                    ("before", before.map(Json::from)),
                    ("after", after.map(Json::from)),
                    ("limit", limit.map(Json::from)),
                ],
            ),
        ),
        Request::Typing { room } => ("typing", fields(room, [])),
        Request::Read { room, seq } => ("read", fields(room, [("seq", Some(Json::from(*seq)))])),
        Request::Rooms => ("rooms", Map::new()),
        Request::Directory => ("directory", Map::new()),
        Request::Dm { user } => (
            "dm",
            Map::from_iter([("user".to_owned(), Json::from(user.as_str()))]),
        ),
        Request::Search {
            query,
            room,
            cursor,
            limit,
        } => {
            let mut fields = Map::from_iter([("query".to_owned(), Json::from(query.as_str()))]);
            for (key, value) in [
                ("room", room.as_deref().map(Json::from)),
                ("cursor", cursor.map(Json::from)),
                ("limit", limit.map(Json::from)),
            ] {
                if let Some(value) = value {
                    fields.insert(key.to_owned(), value);
                }
            }
            ("search", fields)
        }
        Request::Ping => return None,
    };
    Some(json!([name, fields]))
}

fn fields<const N: usize>(room: &str, optional: [(&str, Option<Json>); N]) -> Map<String, Json> {
    let mut fields = Map::from_iter([("room".to_owned(), Json::from(room))]);
    for (key, value) in optional {
        if let Some(value) = value {
            fields.insert(key.to_owned(), value);
        }
    }
    fields
}

/// What the server answers `envelope` with, read back.
fn replies(envelope: &Envelope, ack: Option<i64>) {
    let reference = envelope.reference.clone();
    let frame = match &envelope.request {
        Request::Join { room, .. } => ServerFrame::Joined {
            reference,
            body: empty_joined(room.clone(), 1),
        },
        Request::Leave { room } => ServerFrame::Left {
            reference,
            body: LeftBody { room: room.clone() },
        },
        Request::Send { room, id, .. }
        | Request::Edit { room, id, .. }
        | Request::Delete { room, id, .. }
        | Request::React { room, id, .. }
        | Request::Pin { room, id, .. } => ServerFrame::Ack {
            reference,
            body: AckBody {
                room: room.clone(),
                id: id.clone().unwrap_or_default(),
                seq: 1,
                ts: 0,
                duplicate: false,
            },
        },
        Request::History { room, .. } => ServerFrame::History {
            reference,
            body: HistoryBody {
                room: room.clone(),
                messages: Vec::new(),
                events: Vec::new(),
                more: false,
            },
        },
        Request::Ping => ServerFrame::Pong {
            reference,
            body: PongBody { ts: 0 },
        },
        Request::Search { query, room, .. } => ServerFrame::SearchResults {
            reference,
            body: SearchResultsBody {
                query: query.clone(),
                room: room.clone(),
                results: Vec::new(),
                next: None,
            },
        },
        Request::Read { room, seq } => ServerFrame::Read {
            reference,
            body: ReadBody {
                room: room.clone(),
                seq: *seq,
                ..ReadBody::default()
            },
        },
        Request::Rooms => ServerFrame::Rooms {
            reference,
            body: RoomsBody { rooms: Vec::new() },
        },
        Request::Directory => ServerFrame::Directory {
            reference,
            body: DirectoryBody { rooms: Vec::new() },
        },
        Request::Dm { user } => ServerFrame::Joined {
            reference,
            body: empty_joined(
                chat_protocol::people::dm_room(user, user).unwrap_or_default(),
                0,
            ),
        },
        // The core answers `typing` with nothing; a callback gets its room.
        Request::Typing { room } => {
            if let Some(id) = ack {
                let args = ack_args(&mapping::acknowledge_room(id, room), id);
                assert_eq!(args, json!([{"room": room}]));
            }
            return;
        }
    };
    reply_reads_back(&frame, ack);
}

/// The `joined` of a room with nothing in it yet but its latest `seq`.
fn empty_joined(room: String, seq: u64) -> JoinedBody {
    JoinedBody {
        room,
        seq,
        members: Vec::new().into(),
        messages: Vec::new(),
        events: Vec::new(),
        pins: Vec::new(),
        complete: true,
        last_read: 0,
        unread: 0,
        unread_mentions: 0,
    }
}

/// `frame` through [`mapping::reply`] and back through the codec.
fn reply_reads_back(frame: &ServerFrame, ack: Option<i64>) {
    let packet = mapping::reply(frame);
    let answer = match ack {
        Some(id) => {
            let args = ack_args(&packet, id);
            let [answer] = args.as_array().map(Vec::as_slice).unwrap_or_default() else {
                panic!("an ack carries one argument: {args}");
            };
            assert!(answer.get("type").is_none() && answer.get("ref").is_none());
            answer.clone()
        }
        None => {
            let args = event_args(&packet);
            let [name, answer] = args.as_array().map(Vec::as_slice).unwrap_or_default() else {
                panic!("an event carries a name and one argument: {args}");
            };
            let expected = match frame {
                ServerFrame::Error { .. } => "error",
                frame => frame.type_name(),
            };
            assert_eq!(name, expected);
            answer.clone()
        }
    };
    let room = match frame {
        ServerFrame::Error { body, .. } => {
            let error = if ack.is_some() {
                &answer["error"]
            } else {
                &answer
            };
            assert_eq!(error["code"], json!(body.code), "{answer}");
            assert_eq!(error["message"], json!(body.message), "{answer}");
            return;
        }
        ServerFrame::Joined { body, .. } => &body.room,
        ServerFrame::Left { body, .. } => &body.room,
        ServerFrame::Ack { body, .. } => &body.room,
        ServerFrame::History { body, .. } => &body.room,
        _ => return,
    };
    assert_eq!(answer["room"], json!(room), "{answer}");
}

/// The arguments of an ack packet for `id`.
fn ack_args(packet: &Str, id: i64) -> Json {
    match decode(packet) {
        PacketData::EventAck(Value::Str(args, None), acked) => {
            assert_eq!(acked, id, "the ack answers its id");
            serde_json::from_str(&args).expect("ack arguments are JSON")
        }
        other => panic!("an ack was expected: {other:?}"),
    }
}

/// The `["name", args…]` of an event packet.
fn event_args(packet: &Str) -> Json {
    match decode(packet) {
        PacketData::Event(Value::Str(args, None), None) => {
            serde_json::from_str(&args).expect("event arguments are JSON")
        }
        other => panic!("an event was expected: {other:?}"),
    }
}

fn decode(packet: &Str) -> PacketData {
    let decoded = CommonParser.decode_str(
        &parse_config(DEFAULT_MAX_FRAME_BYTES),
        &ParserState::default(),
        packet.clone(),
    );
    let packet = decoded.expect("the server's packets decode");
    assert_eq!(packet.ns.as_str(), NAMESPACE);
    packet.inner
}
