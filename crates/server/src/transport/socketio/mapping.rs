//! The Socket.IO mapping of the chat protocol (docs/protocol.md §10,
//! "Socket.IO"): events in, native requests out; native frames in,
//! Socket.IO packets out. Pure functions, no I/O.
//!
//! In: an event's first argument is turned into the native JSON request it
//! stands for and parsed by [`parse_request`], so both protocols share one
//! parser, one set of checks and one set of error codes. The ack id, when
//! the client passed a callback, becomes the request's `ref`. The argument
//! is read as [`UniqueKeys`], as native frames are: a key twice in one
//! object is `bad_request` here too, where re-encoding it would otherwise
//! have kept one of the two without a word.
//!
//! Out: a reply whose `ref` is an ack id goes to that callback as the reply
//! without `type` (an error as `{error: {code, message}}`); a reply to a
//! request without callback is emitted as an event named after its native
//! type (`joined`, `ack`, `left`, `history`, `error`, and the news for a
//! person, `read` and `room_added`). Room events are
//! emitted as `message`, `presence`, `typing` and the changes (`edited`,
//! `deleted`, `reaction`, `pinned`) with the native frame;
//! every message object also carries `content` (= `text`), the field
//! clients written for `io.to(room).emit('message', data)` render.
//!
//! Nothing here declares a frame's fields: a reply is its frame's body
//! ([`ServerFrame::body`]), a room event its native frame, both written by
//! `chat_protocol`, and `content` is added by the protocol crate's
//! [`with_message_content`] around every payload this module encodes. A
//! field added to a frame reaches Socket.IO clients as it reaches native ones.

use chat_protocol::{
    ErrorBody, ErrorCode, PresenceEvent, Ref, RequestError, ServerFrame,
    frames::with_message_content,
    request::{Envelope, UniqueKeys, parse_request},
};
use engineioxide::Str;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use socketioxide_core::Value;
use socketioxide_core::packet::Packet;
use socketioxide_core::parser::{Parse, ParserError};
use socketioxide_parser_common::CommonParser;

use chat_core::{Encoder, EventKind, RoomEvent};

/// The only namespace served.
pub const NAMESPACE: &str = "/";

/// Events a client may emit, for error messages.
const EVENTS: &str = "join, message, leave, history, typing, edit, delete, react, pin, search, \
     read, rooms, directory, dm";

/// An event's engine.io message(s), encoded once and shared by every
/// Socket.IO receiver of the event.
#[derive(Debug, Clone)]
pub struct EventPackets {
    pub first: Str,
    /// The system message that follows a presence `leave`.
    pub system: Option<Str>,
}

/// Socket.IO's encoding of room events, cached in each event beside the
/// native one.
impl Encoder for EventPackets {
    type Output = EventPackets;

    fn encode(room_event: &RoomEvent) -> EventPackets {
        event(room_event)
    }
}

/// The native request a client event stands for. `data` is the event
/// packet's payload, `["event", arg, ...]`; `ack` its ack id, if any.
pub fn request(data: &Str, ack: Option<i64>) -> Result<Envelope, RequestError> {
    let reference = ack.map(|id| Ref::Number(id.into()));
    let bad = |code: ErrorCode, message: String| RequestError {
        reference: reference.clone(),
        code,
        message,
    };
    let mut value = Value::Str(data.clone(), None);
    let parser = CommonParser;
    let event = parser
        .read_event(&value)
        .map_err(|_| {
            bad(
                ErrorCode::BadRequest,
                "the event name must be a string".into(),
            )
        })?
        .to_owned();
    let arg: Json = match parser.decode_value(&mut value, true) {
        Ok(UniqueKeys(arg)) => arg,
        // Nothing to say with these: `emit('rooms', callback)`.
        Err(_) if matches!(event.as_str(), "rooms" | "directory") => Json::Object(Map::new()),
        Err(e) => {
            return Err(bad(
                ErrorCode::BadRequest,
                format!("`{event}`: missing or unreadable argument ({e})"),
            ));
        }
    };
    let (kind, fields) = match event.as_str() {
        "join" | "leave" | "typing" | "history" => (event.as_str(), room_fields(&event, arg)),
        "message" => ("send", message_fields(arg)),
        "edit" | "delete" | "react" | "pin" => (event.as_str(), object_fields(&event, arg)),
        "search" => ("search", search_fields(arg)),
        "read" => ("read", object_fields(&event, arg)),
        "rooms" | "directory" => (event.as_str(), Ok(Map::new())),
        "dm" => ("dm", dm_fields(arg)),
        _ => {
            return Err(bad(
                ErrorCode::UnknownType,
                format!(
                    "unknown event `{}`; the events are {EVENTS}",
                    event.chars().take(32).collect::<String>()
                ),
            ));
        }
    };
    let mut fields = fields.map_err(|message| bad(ErrorCode::BadRequest, message))?;
    // The client's own `type` or `ref` fields must not steer the request.
    fields.insert("type".into(), Json::from(kind));
    match ack {
        Some(id) => fields.insert("ref".into(), Json::from(id)),
        None => fields.remove("ref"),
    };
    parse_request(&Json::Object(fields).to_string())
}

/// `"general"` or `{room, ...}`.
fn room_fields(event: &str, arg: Json) -> Result<Map<String, Json>, String> {
    match arg {
        Json::String(room) => Ok(Map::from_iter([("room".to_owned(), Json::String(room))])),
        Json::Object(fields) => Ok(fields),
        _ => Err(format!(
            "`{event}` takes a room name or an object with `room`"
        )),
    }
}

/// `{room, seq, ...}`: the native request's fields.
fn object_fields(event: &str, arg: Json) -> Result<Map<String, Json>, String> {
    match arg {
        Json::Object(fields) => Ok(fields),
        _ => Err(format!("`{event}` takes an object: {{room, seq, ...}}")),
    }
}

/// `"words"` or `{query, room?, cursor?, limit?}`.
fn search_fields(arg: Json) -> Result<Map<String, Json>, String> {
    match arg {
        Json::String(query) => Ok(Map::from_iter([("query".to_owned(), Json::String(query))])),
        Json::Object(fields) => Ok(fields),
        _ => Err("`search` takes a query or an object with `query`".into()),
    }
}

/// `"<user id>"` or `{user}`.
fn dm_fields(arg: Json) -> Result<Map<String, Json>, String> {
    match arg {
        Json::String(user) => Ok(Map::from_iter([("user".to_owned(), Json::String(user))])),
        Json::Object(fields) => Ok(fields),
        _ => Err("`dm` takes a user id or an object with `user`".into()),
    }
}

/// `{room, content}` (or `text`), optional `id` and `reply_to`.
fn message_fields(arg: Json) -> Result<Map<String, Json>, String> {
    let Json::Object(mut fields) = arg else {
        return Err("`message` takes an object: {room, content}".into());
    };
    match fields.remove("content") {
        Some(content @ Json::String(_)) => {
            fields.insert("text".into(), content);
        }
        Some(_) => return Err("`content` must be a string".into()),
        None if fields.contains_key("text") => {}
        None => return Err("`content` is missing".into()),
    }
    Ok(fields)
}

/// The packets for a room event.
pub fn event(event: &RoomEvent) -> EventPackets {
    match &event.kind {
        EventKind::Message(message) => EventPackets {
            first: emit("message", &message.as_frame()),
            system: None,
        },
        EventKind::Presence {
            event: PresenceEvent::Leave,
            user,
        } => EventPackets {
            first: emit("presence", &event.to_frame()),
            system: Some(emit(
                "message",
                &SystemMessage {
                    kind: "system",
                    room: &event.room,
                    content: &format!("{} left the room", user.name),
                },
            )),
        },
        EventKind::Presence { .. } => EventPackets {
            first: emit("presence", &event.to_frame()),
            system: None,
        },
        EventKind::Typing { .. } => EventPackets {
            first: emit("typing", &event.to_frame()),
            system: None,
        },
        // Extensions: each change as its native frame, named by its type.
        EventKind::Change(change) => EventPackets {
            first: emit(change.type_name(), change),
            system: None,
        },
    }
}

/// The packet for a reply: an ack when its `ref` is an ack id, else an
/// event named after the reply's native type.
pub fn reply(frame: &ServerFrame) -> Str {
    let ack = match frame.reference() {
        Some(Ref::Number(n)) => n.as_i64(),
        _ => None,
    };
    match (frame, ack) {
        (ServerFrame::Error { body, .. }, Some(id)) => acknowledge(id, &AckError { error: body }),
        (frame, Some(id)) => acknowledge(id, &Payload(frame)),
        (frame, None) => emit(frame.type_name(), &Payload(frame)),
    }
}

/// The answer to a request the core answers with nothing (`typing`), for
/// a client that passed a callback.
pub fn acknowledge_room(id: i64, room: &str) -> Str {
    acknowledge(id, &RoomOnly { room })
}

/// The namespace `CONNECT` answer, with the client's socket id.
pub fn connected(sid: &str) -> Str {
    #[derive(Serialize)]
    struct Connected<'a> {
        sid: &'a str,
    }
    let parser = CommonParser;
    let payload = parser
        .encode_default(&Connected { sid })
        .unwrap_or_else(|_| Value::Str(Str::from("{}"), None));
    packet_text(parser.encode(Packet::connect(NAMESPACE, Some(payload))))
}

/// The namespace's `DISCONNECT`: the server ends the session, and the
/// client does not reconnect by itself (a ban).
pub fn disconnect() -> Str {
    packet_text(CommonParser.encode(Packet::disconnect(NAMESPACE)))
}

/// A refused namespace `CONNECT`; the client gets a `connect_error`.
pub fn connect_error(message: impl Into<String>) -> Str {
    connect_error_in(NAMESPACE, message)
}

/// A `CONNECT` to a namespace we do not serve.
pub fn connect_error_in(namespace: &str, message: impl Into<String>) -> Str {
    packet_text(CommonParser.encode(Packet::connect_error(
        Str::copy_from_slice(namespace),
        message,
    )))
}

/// An event packet.
pub fn emit<T: Serialize + ?Sized>(name: &str, payload: &T) -> Str {
    match encode(payload, Some(name)) {
        Ok(value) => packet_text(CommonParser.encode(Packet::event(NAMESPACE, value))),
        Err(error) => internal(&error),
    }
}

fn acknowledge<T: Serialize + ?Sized>(id: i64, payload: &T) -> Str {
    match encode(payload, None) {
        Ok(value) => packet_text(CommonParser.encode(Packet::ack(NAMESPACE, value, id))),
        Err(error) => internal(&error),
    }
}

/// A packet's arguments, `[event, payload]` or `[payload]`; every message
/// in the payload carries `content`.
fn encode<T: Serialize + ?Sized>(payload: &T, event: Option<&str>) -> Result<Value, ParserError> {
    with_message_content(|| CommonParser.encode_value(payload, event))
}

/// Serializing our own plain structs does not fail (string keys, no
/// floats); should it ever, the client hears `internal` rather than nothing.
fn internal(error: &dyn std::fmt::Display) -> Str {
    tracing::error!(%error, "could not encode a Socket.IO packet");
    Str::from(r#"2["error",{"code":"internal","message":"the server could not encode a reply"}]"#)
}

fn packet_text(value: Value) -> Str {
    match value {
        Value::Str(text, _) => text,
        // The common parser only produces text packets for text payloads.
        Value::Bytes(_) => Str::from(""),
    }
}

#[derive(Serialize)]
struct SystemMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    content: &'a str,
}

/// An error as an ack's callback gets it (§10.2).
#[derive(Serialize)]
struct AckError<'a> {
    error: &'a ErrorBody,
}

#[derive(Serialize)]
struct RoomOnly<'a> {
    room: &'a str,
}

/// What Socket.IO carries of a frame: a room event is the native frame,
/// `type` included (§10.3); a reply is its body, without `type` and `ref`.
struct Payload<'a>(&'a ServerFrame);

impl Serialize for Payload<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ServerFrame::Message(_)
            | ServerFrame::Typing(_)
            | ServerFrame::Presence(_)
            | ServerFrame::Edited(_)
            | ServerFrame::Deleted(_)
            | ServerFrame::Reaction(_)
            | ServerFrame::Pinned(_) => self.0.serialize(serializer),
            ServerFrame::Read { .. }
            | ServerFrame::Rooms { .. }
            | ServerFrame::Directory { .. }
            | ServerFrame::RoomAdded(_)
            | ServerFrame::Welcome(_)
            | ServerFrame::Joined { .. }
            | ServerFrame::Left { .. }
            | ServerFrame::Ack { .. }
            | ServerFrame::History { .. }
            | ServerFrame::SearchResults { .. }
            | ServerFrame::Pong { .. }
            | ServerFrame::Error { .. } => self.0.body().serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::samples::{KINDS, every_kind, kind_index};
    use chat_protocol::{
        AckBody, JoinedBody, LeftBody, Message, PresenceBody, Request, TypingBody, User,
    };
    use serde_json::json;
    use std::sync::Arc;

    fn request_of(packet_data: &str, ack: Option<i64>) -> Result<Envelope, RequestError> {
        request(&Str::from(packet_data.to_owned()), ack)
    }

    fn alice() -> User {
        User {
            id: "u_1".into(),
            name: "alice".into(),
        }
    }

    fn message(seq: u64) -> Message {
        Message {
            room: "general".into(),
            seq,
            id: format!("c-{seq}"),
            from: alice(),
            text: "hello 你好".into(),
            ts: 1_763_800_000_123,
            deleted: false,
            ..Default::default()
        }
    }

    /// Splits `2["name",{...}]` or `3<id>[{...}]` into its parts.
    fn parsed(packet: &Str) -> (String, Json) {
        let text = packet.as_str();
        let start = text.find('[').expect("a payload array");
        (
            text[..start].to_owned(),
            serde_json::from_str(&text[start..]).unwrap(),
        )
    }

    #[test]
    fn events_become_native_requests_with_the_ack_id_as_ref() {
        let join = request_of(r#"["join","general"]"#, Some(3)).unwrap();
        assert_eq!(join.reference, Some(Ref::Number(3.into())));
        assert_eq!(
            join.request,
            Request::Join {
                room: "general".into(),
                since: None
            }
        );
        let resume = request_of(r#"["join",{"room":"聊天室","since":130}]"#, None).unwrap();
        assert_eq!(resume.reference, None);
        assert_eq!(
            resume.request,
            Request::Join {
                room: "聊天室".into(),
                since: Some(130)
            }
        );
        let send = request_of(
            r#"["message",{"room":"r","content":"hi","id":"c-1"}]"#,
            None,
        );
        assert_eq!(
            send.unwrap().request,
            Request::Send {
                room: "r".into(),
                text: "hi".into(),
                id: Some("c-1".into()),
                reply_to: None,
            }
        );
        let edit = request_of(r#"["edit",{"room":"r","seq":4,"text":"fixed"}]"#, Some(3));
        assert_eq!(
            edit.unwrap().request,
            Request::Edit {
                room: "r".into(),
                seq: 4,
                text: "fixed".into(),
                id: None,
            }
        );
        let react = request_of(r#"["react",{"room":"r","seq":4,"emoji":"👍"}]"#, None);
        assert!(matches!(
            react.unwrap().request,
            Request::React {
                seq: 4,
                remove: false,
                ..
            }
        ));
        let not_an_object = request_of(r#"["delete","r"]"#, Some(1)).unwrap_err();
        assert_eq!(not_an_object.code, ErrorCode::BadRequest);
        let text = request_of(r#"["message",{"room":"r","text":"hi"}]"#, Some(1)).unwrap();
        assert!(matches!(text.request, Request::Send { text, .. } if text == "hi"));
        let history = request_of(r#"["history",{"room":"r","before":9,"limit":5}]"#, None);
        assert_eq!(
            history.unwrap().request,
            Request::History {
                room: "r".into(),
                before: Some(9),
                after: None,
                limit: Some(5)
            }
        );
        for (data, want) in [
            (r#"["leave","r"]"#, Request::Leave { room: "r".into() }),
            (
                r#"["typing",{"room":"r"}]"#,
                Request::Typing { room: "r".into() },
            ),
            // Extra arguments (a callback's place in other clients) are ignored.
            (r#"["typing","r",1]"#, Request::Typing { room: "r".into() }),
        ] {
            assert_eq!(request_of(data, None).unwrap().request, want, "{data}");
        }
    }

    #[test]
    fn a_client_cannot_smuggle_type_or_ref() {
        let e = request_of(r#"["join",{"room":"r","type":"send","ref":99}]"#, None).unwrap();
        assert_eq!(e.reference, None);
        assert!(matches!(e.request, Request::Join { .. }));
        let e = request_of(r#"["leave",{"room":"r","ref":"x"}]"#, Some(7)).unwrap();
        assert_eq!(e.reference, Some(Ref::Number(7.into())));
    }

    #[test]
    fn bad_events_get_the_contract_codes_under_their_ack_id() {
        let cases = [
            (r#"["dance","r"]"#, ErrorCode::UnknownType),
            (r#"["join"]"#, ErrorCode::BadRequest),
            (r#"["join",5]"#, ErrorCode::BadRequest),
            (r#"["join",{"room":"r","since":-1}]"#, ErrorCode::BadRequest),
            (r#"["message","hi"]"#, ErrorCode::BadRequest),
            (r#"["message",{"room":"r"}]"#, ErrorCode::BadRequest),
            (
                r#"["message",{"room":"r","content":7}]"#,
                ErrorCode::BadRequest,
            ),
            (
                r#"["history",{"room":"r","limit":"x"}]"#,
                ErrorCode::BadRequest,
            ),
        ];
        for (data, code) in cases {
            let e = request_of(data, Some(4)).unwrap_err();
            assert_eq!(e.code, code, "{data}: {}", e.message);
            assert_eq!(e.reference, Some(Ref::Number(4.into())), "{data}");
        }
        let e = request_of(r#"["message",{"room":"r"}]"#, None).unwrap_err();
        assert!(e.message.contains("content"), "{}", e.message);
        // A key twice in the argument, as in a native frame.
        for data in [
            r#"["join",{"room":"a","room":"b"}]"#,
            r#"["message",{"room":"r","content":"x","extra":{"k":1,"k":2}}]"#,
        ] {
            let e = request_of(data, None).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadRequest, "{data}");
            assert!(e.message.contains("appears twice"), "{}", e.message);
        }
    }

    #[test]
    fn broadcasts_carry_content_and_a_leave_adds_the_system_message() {
        let m = RoomEvent::new("general".into(), EventKind::Message(message(7)), None);
        let packets = event(&m);
        let (head, payload) = parsed(&packets.first);
        assert_eq!(head, "2");
        assert_eq!(
            payload,
            json!(["message", {"type": "message", "room": "general", "seq": 7, "id": "c-7",
                "from": {"id": "u_1", "name": "alice"}, "text": "hello 你好",
                "ts": 1_763_800_000_123_i64, "content": "hello 你好"}])
        );
        assert!(packets.system.is_none());

        let leave = RoomEvent::new(
            "general".into(),
            EventKind::Presence {
                event: PresenceEvent::Leave,
                user: alice(),
            },
            None,
        );
        let packets = event(&leave);
        let (_, presence) = parsed(&packets.first);
        assert_eq!(
            presence,
            json!(["presence", {"type": "presence", "room": "general", "event": "leave",
                "user": {"id": "u_1", "name": "alice"}}])
        );
        let (_, system) = parsed(&packets.system.expect("a system message"));
        assert_eq!(
            system,
            json!(["message", {"type": "system", "room": "general", "content": "alice left the room"}])
        );

        let typing = RoomEvent::new("general".into(), EventKind::Typing { user: alice() }, None);
        let (_, payload) = parsed(&event(&typing).first);
        assert_eq!(payload[0], "typing");
        assert_eq!(payload[1]["user"]["name"], "alice");

        let change = chat_protocol::samples::changes().remove(1);
        let deleted = RoomEvent::new("general".into(), EventKind::Change(change), None);
        let (_, payload) = parsed(&event(&deleted).first);
        assert_eq!(payload[0], "deleted");
        assert_eq!(payload[1]["type"], "deleted");
        assert_eq!(
            (&payload[1]["seq"], &payload[1]["target"]),
            (&json!(11), &json!(4))
        );
    }

    #[test]
    fn replies_go_to_callbacks_without_type_or_become_events() {
        let joined = ServerFrame::Joined {
            reference: Some(Ref::Number(12.into())),
            body: JoinedBody {
                room: "general".into(),
                seq: 7,
                members: vec![alice()].into(),
                messages: vec![message(7)],
                events: Vec::new(),
                pins: Vec::new(),
                complete: true,
                last_read: 0,
                unread: 0,
                unread_mentions: 0,
            },
        };
        let (head, payload) = parsed(&reply(&joined));
        assert_eq!(head, "312");
        assert_eq!(payload[0]["seq"], 7);
        assert_eq!(payload[0]["messages"][0]["content"], "hello 你好");
        assert!(payload[0]["messages"][0].get("type").is_none());
        assert!(payload[0].get("type").is_none() && payload[0].get("ref").is_none());

        let ack = ServerFrame::Ack {
            reference: Some(Ref::Number(3.into())),
            body: AckBody {
                room: "general".into(),
                id: "c-7".into(),
                seq: 7,
                ts: 5,
                duplicate: false,
            },
        };
        let (head, payload) = parsed(&reply(&ack));
        assert_eq!(head, "33");
        assert_eq!(
            payload,
            json!([{"room": "general", "id": "c-7", "seq": 7, "ts": 5}])
        );

        let left = ServerFrame::Left {
            reference: None,
            body: LeftBody {
                room: "general".into(),
            },
        };
        let (head, payload) = parsed(&reply(&left));
        assert_eq!(head, "2");
        assert_eq!(payload, json!(["left", {"room": "general"}]));

        let error = |reference| ServerFrame::Error {
            reference,
            body: ErrorBody {
                code: ErrorCode::NotJoined,
                message: "join first".into(),
                room: None,
            },
        };
        let (head, payload) = parsed(&reply(&error(Some(Ref::Number(5.into())))));
        assert_eq!(head, "35");
        assert_eq!(
            payload,
            json!([{"error": {"code": "not_joined", "message": "join first"}}])
        );
        let (head, payload) = parsed(&reply(&error(None)));
        assert_eq!(head, "2");
        assert_eq!(
            payload,
            json!(["error", {"code": "not_joined", "message": "join first"}])
        );

        let (head, payload) = parsed(&acknowledge_room(9, "general"));
        assert_eq!(head, "39");
        assert_eq!(payload, json!([{"room": "general"}]));
    }

    #[test]
    fn the_sample_has_every_kind() {
        let kinds: Vec<usize> = every_kind(None).iter().map(kind_index).collect();
        assert_eq!(kinds, (0..KINDS).collect::<Vec<_>>());
    }

    /// What docs/protocol.md §10 says a Socket.IO client gets for a frame,
    /// from its native JSON: `ref` travels as the ack id; room events keep
    /// `type`, replies lose it; every message gains `content` (= `text`);
    /// an error to a callback is `{error}`.
    fn socketio_of(native: &Json, to_callback: bool) -> Json {
        const ROOM_EVENTS: [&str; 7] = [
            "message", "presence", "typing", "edited", "deleted", "reaction", "pinned",
        ];
        fn add_content(message: &mut Json) {
            let text = message["text"].clone();
            message["content"] = text;
        }
        fn add_content_to_all(messages: Option<&mut Json>) {
            if let Some(Json::Array(messages)) = messages {
                messages.iter_mut().for_each(add_content);
            }
        }
        let mut payload = native.clone();
        let fields = payload.as_object_mut().expect("a frame is an object");
        fields.remove("ref");
        let kind = fields.get("type").and_then(Json::as_str).map(str::to_owned);
        let kind = kind.expect("a frame has a type");
        if !ROOM_EVENTS.contains(&kind.as_str()) {
            fields.remove("type");
        }
        add_content_to_all(fields.get_mut("messages"));
        add_content_to_all(fields.get_mut("pins"));
        add_content_to_all(fields.get_mut("results"));
        if let Some(Json::Array(events)) = fields.get_mut("events") {
            for event in events {
                if let Some(message) = event.get_mut("message") {
                    add_content(message);
                }
            }
        }
        if let Some(message) = fields.get_mut("message").filter(|m| m.is_object()) {
            add_content(message);
        }
        // The last message of each room a `rooms` reply lists.
        if let Some(Json::Array(rooms)) = fields.get_mut("rooms") {
            for room in rooms {
                if let Some(last) = room.get_mut("last") {
                    add_content(last);
                }
            }
        }
        if kind == "message" {
            add_content(&mut payload);
        }
        match kind.as_str() {
            "error" if to_callback => json!({ "error": payload }),
            _ => payload,
        }
    }

    #[test]
    fn every_frame_reaches_socketio_with_every_native_field() {
        let references = [
            Some(Ref::Number(12.into())),
            None,
            Some(Ref::Text("t-1".into())),
        ];
        for frame in references.into_iter().flat_map(every_kind) {
            let native: Json = serde_json::from_str(&frame.to_json()).unwrap();
            let to_callback = matches!(frame.reference(), Some(Ref::Number(_)));
            let (head, arguments) = parsed(&reply(&frame));
            let payload = if to_callback {
                assert_eq!(head, "312", "{native}");
                &arguments[0]
            } else {
                assert_eq!(
                    (head.as_str(), &arguments[0]),
                    ("2", &json!(frame.type_name()))
                );
                &arguments[1]
            };
            assert_eq!(payload, &socketio_of(&native, to_callback), "{native}");
        }
    }

    #[test]
    fn every_room_event_reaches_socketio_with_every_native_field() {
        let room_events = every_kind(None).into_iter().filter_map(|frame| {
            let kind = match frame {
                ServerFrame::Message(message) => EventKind::Message(message),
                ServerFrame::Typing(TypingBody { user, .. }) => EventKind::Typing { user },
                ServerFrame::Presence(PresenceBody { event, user, .. }) => {
                    EventKind::Presence { event, user }
                }
                frame => EventKind::Change(frame.into_change().ok()?),
            };
            Some(RoomEvent::new(Arc::from("general"), kind, None))
        });
        let mut seen = 0;
        for room_event in room_events {
            let frame = room_event.to_frame();
            let native: Json = serde_json::from_str(&frame.to_json()).unwrap();
            let (head, arguments) = parsed(&event(&room_event).first);
            assert_eq!(head, "2");
            assert_eq!(
                arguments,
                json!([frame.type_name(), socketio_of(&native, false)])
            );
            seen += 1;
        }
        assert_eq!(seen, 7, "message, typing, presence and the four changes");
    }

    #[test]
    fn connect_answers() {
        assert_eq!(connected("s_1").as_str(), r#"0{"sid":"s_1"}"#);
        assert_eq!(
            connect_error("bad name").as_str(),
            r#"4{"message":"bad name"}"#
        );
        assert_eq!(
            connect_error_in("/admin", "Invalid namespace").as_str(),
            r#"4/admin,{"message":"Invalid namespace"}"#
        );
    }
}
