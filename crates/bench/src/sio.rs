//! Socket.IO v4 for the load scenarios: Engine.IO v4 spoken directly over
//! WebSocket (`/socket.io/?EIO=4&transport=websocket`) on the same lean
//! client as the native protocol ([`RawWs`]), so both are measured at the
//! same cost per delivery.
//!
//! The wire, as far as the bench needs it: the server opens with
//! `0{"sid",…,"pingInterval",…}`; the client connects to the namespace with
//! `40{auth}` and gets `40{"sid"}` (or `44{…}`, refused); events are
//! `42["name",data]`, with an ack id `42<id>["name",data]`, answered by
//! `43<id>[reply]`; the server pings with `2` and the client answers `3`.
//!
//! Two dialects ([`Protocol`]):
//!
//! - `socketio`: this server's mapping (docs/protocol.md §10, "Socket.IO"):
//!   `join` and `message` with ack callbacks, whose replies carry the room's
//!   `seq`; broadcasts carry `seq` too. Loss, repeats and order are checked
//!   against the acked `seq`s exactly as over the native protocol.
//! - `socketio-seed`: what the seed article's server understands (the
//!   node-socketio and rust-socketioxide peers): `join` with a room name and
//!   no reply, `message` `{room, content}` re-emitted to the room as it
//!   came, nothing acknowledged, no `seq`. Each message's content is the
//!   bench's stamp (sender, counter, scheduled time), and with one sender
//!   per room the counter plays the `seq`: every sent message is expected
//!   at every member, in counter order. A join is confirmed by a probe: the
//!   member sends a `message` to its room and waits for it to come back.

use std::borrow::Cow;
use std::net::IpAddr;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::rawws::{Frame, RawWs};

/// The protocol a load scenario speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// JSON frames on `/ws` (this server, rust-minimal, node-ws).
    #[default]
    Native,
    /// Socket.IO with this server's events: acks and `seq`s.
    Socketio,
    /// Socket.IO with the seed article's events: no acks, no `seq`
    /// (node-socketio, rust-socketioxide, or this server).
    SocketioSeed,
}

impl Protocol {
    pub fn is_socketio(self) -> bool {
        self != Protocol::Native
    }
}

/// Marks the text of a join probe (seed dialect), so receivers skip it.
pub const PROBE_PREFIX: &str = "probe:";

/// The Engine.IO WebSocket URL for a server whose base URL (or Socket.IO
/// URL) is `url`: the path becomes `/socket.io/` unless it already names
/// Socket.IO's, and `EIO=4&transport=websocket` is added to the query.
pub fn endpoint(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("ws", url));
    let scheme = match scheme {
        "http" => "ws",
        "https" => "wss",
        other => other,
    };
    let (authority, path_query) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    let path = if path.contains("socket.io") {
        path
    } else {
        "/socket.io/"
    };
    let mut query: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("EIO=") && !p.starts_with("transport="))
        .collect();
    query.push("EIO=4");
    query.push("transport=websocket");
    format!("{scheme}://{authority}{path}?{}", query.join("&"))
}

/// A server reply or broadcast payload: the fields the hot path reads,
/// borrowed from the frame; everything else skipped.
#[derive(Debug, Deserialize)]
struct Data<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    duplicate: bool,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default)]
    error: Option<ErrorData>,
    /// An `error` event's code (a callback's error is under `error`).
    #[serde(default)]
    code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorData {
    #[serde(default)]
    code: Option<String>,
}

/// An event's payload: its name and its argument (the servers measured
/// emit exactly one).
#[derive(Debug, Deserialize)]
struct Event<'a>(#[serde(borrow)] Cow<'a, str>, #[serde(borrow)] Data<'a>);

/// An ack's payload, `[reply]` (a one-element tuple: a newtype struct
/// would read the reply without its array).
type Ack<'a> = (Data<'a>,);

/// What one Engine.IO text message means to a load scenario.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A chat message broadcast: its `seq` when the server gives one, and
    /// the text that carries the bench's stamp.
    Message {
        seq: Option<u64>,
        text: Option<Cow<'a, str>>,
    },
    /// The reply to an event sent with ack id `id`.
    Ack {
        id: u64,
        seq: Option<u64>,
        duplicate: bool,
    },
    /// An error reply (`{error: {code}}` to a callback, or an `error` event).
    Error { id: Option<u64>, code: String },
    /// The server's ping: answer `3`.
    Ping,
    /// Anything else (presence, typing, system messages, the welcome).
    Other,
    /// Not Engine.IO / Socket.IO as expected.
    Undecodable,
}

/// The ack id digits after a packet type, and what follows them.
fn split_ack_id(bytes: &[u8]) -> (Option<u64>, &[u8]) {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 18 {
        return (None, bytes);
    }
    let id = bytes[..digits]
        .iter()
        .fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
    (Some(id), &bytes[digits..])
}

/// Reads one Engine.IO text message from the server.
pub fn read(bytes: &[u8]) -> Incoming<'_> {
    match bytes {
        [b'2', ..] => Incoming::Ping,
        [b'4', b'2', rest @ ..] => {
            let (id, json) = split_ack_id(rest);
            let Ok(Event(name, data)) = serde_json::from_slice::<Event<'_>>(json) else {
                return Incoming::Undecodable;
            };
            match &*name {
                "message" if data.kind.as_deref() != Some("system") => Incoming::Message {
                    seq: data.seq,
                    text: data.text.or(data.content),
                },
                "error" => Incoming::Error {
                    id,
                    code: data
                        .code
                        .or_else(|| data.error.and_then(|e| e.code))
                        .unwrap_or_else(|| "error".into()),
                },
                _ => Incoming::Other,
            }
        }
        [b'4', b'3', rest @ ..] => {
            let (Some(id), json) = split_ack_id(rest) else {
                return Incoming::Undecodable;
            };
            let Ok((data,)) = serde_json::from_slice::<Ack<'_>>(json) else {
                return Incoming::Undecodable;
            };
            match data.error {
                Some(error) => Incoming::Error {
                    id: Some(id),
                    code: error.code.unwrap_or_else(|| "error".into()),
                },
                None => Incoming::Ack {
                    id,
                    seq: data.seq,
                    duplicate: data.duplicate,
                },
            }
        }
        _ => Incoming::Other,
    }
}

/// Appends `42<id>["message",{"room":<room>,"content":"<text>` to `out`;
/// the caller writes the text (plain ASCII, no escaping needed) and then
/// [`MESSAGE_TAIL`].
pub fn message_head(room_json: &str, ack: Option<u64>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"42");
    if let Some(id) = ack {
        out.extend_from_slice(id.to_string().as_bytes());
    }
    out.extend_from_slice(br#"["message",{"room":"#);
    out.extend_from_slice(room_json.as_bytes());
    out.extend_from_slice(br#","content":""#);
}

/// Closes what [`message_head`] opened.
pub const MESSAGE_TAIL: &[u8] = b"\"}]";

/// The ack id of the join (sends use ids from 1 up, like native refs).
const JOIN_ACK: u64 = 0;

/// Reads the next text message during set-up, answering pings.
async fn next_text(ws: &mut RawWs) -> anyhow::Result<String> {
    loop {
        let text = ws.next_text().await?;
        if let Some(probe) = text.strip_prefix('2') {
            let pong = format!("3{probe}");
            ws.send_text(pong.as_bytes()).await.context("send pong")?;
            continue;
        }
        return Ok(text);
    }
}

/// Opens Engine.IO on `ws` and connects to the namespace `/` as `name`
/// (in `auth`, which servers that do not read it ignore).
pub async fn connect(ws: &mut RawWs, name: &str) -> anyhow::Result<()> {
    let open = next_text(ws).await?;
    if !open.starts_with('0') {
        bail!("expected the Engine.IO open packet, got {:?}", clip(&open));
    }
    let auth = serde_json::json!({ "name": name });
    ws.send_text(format!("40{auth}").as_bytes())
        .await
        .context("send CONNECT")?;
    loop {
        let text = next_text(ws).await?;
        if text.starts_with("40") {
            return Ok(());
        }
        if let Some(refusal) = text.strip_prefix("44") {
            bail!("CONNECT refused: {}", clip(refusal));
        }
        // Nothing else is expected before the CONNECT answer; skip it.
    }
}

/// Joins `room_json` (a JSON string) and waits until the join took effect;
/// the room's `seq` at that point (0 in the seed dialect, whose counters
/// start at 1).
pub async fn join(
    ws: &mut RawWs,
    protocol: Protocol,
    room_json: &str,
    name: &str,
) -> anyhow::Result<u64> {
    match protocol {
        Protocol::Socketio => {
            ws.send_text(format!(r#"42{JOIN_ACK}["join",{room_json}]"#).as_bytes())
                .await
                .context("send join")?;
            loop {
                let text = next_text(ws).await?;
                match read(text.as_bytes()) {
                    Incoming::Ack {
                        id: JOIN_ACK, seq, ..
                    } => {
                        return seq.ok_or_else(|| anyhow!("join reply without seq"));
                    }
                    Incoming::Error {
                        id: Some(JOIN_ACK),
                        code,
                    } => bail!("join refused: {code}"),
                    Incoming::Undecodable => bail!("undecodable packet {:?}", clip(&text)),
                    _ => {}
                }
            }
        }
        Protocol::Native => bail!("not a Socket.IO protocol"),
        Protocol::SocketioSeed => {
            ws.send_text(format!(r#"42["join",{room_json}]"#).as_bytes())
                .await
                .context("send join")?;
            // No reply: a message to the room comes back once we are in it
            // (the server handles one socket's events in order).
            let probe = format!("{PROBE_PREFIX}{name}");
            let mut packet = Vec::new();
            message_head(room_json, None, &mut packet);
            packet.extend_from_slice(probe.as_bytes());
            packet.extend_from_slice(MESSAGE_TAIL);
            ws.send_text(&packet).await.context("send probe")?;
            loop {
                let text = next_text(ws).await?;
                if let Incoming::Message {
                    text: Some(content),
                    ..
                } = read(text.as_bytes())
                    && content == probe
                {
                    return Ok(0);
                }
            }
        }
    }
}

/// Connects to `url` (already the Engine.IO endpoint) from `source` (see
/// [`RawWs::connect`]), joins, and returns the socket and the room's `seq`
/// at join time.
pub async fn connect_and_join(
    url: &str,
    source: Option<IpAddr>,
    protocol: Protocol,
    room_json: &str,
    name: &str,
    read_buffer: usize,
    seed: u64,
) -> anyhow::Result<(RawWs, u64)> {
    let mut ws = RawWs::connect(url, read_buffer, seed, source).await?;
    connect(&mut ws, name).await?;
    let base = join(&mut ws, protocol, room_json, name).await?;
    Ok((ws, base))
}

/// An idle member: reads until `stop`, answering pings; the number of
/// text messages received, and whether the server ended the connection.
pub async fn idle(
    ws: &mut RawWs,
    stop: &tokio_util::sync::CancellationToken,
    mut on_message: impl FnMut(),
) -> (u64, bool) {
    let mut frames = 0;
    loop {
        loop {
            match ws.next_frame() {
                Ok(Some(Frame::Text(bytes))) => {
                    if bytes.first() == Some(&b'2') {
                        ws.queue_control_text(b"3");
                    } else {
                        frames += 1;
                        on_message();
                    }
                }
                Ok(None) => break,
                Ok(Some(Frame::Close(_))) | Err(_) => return (frames, true),
            }
        }
        if ws.flush_control().await.is_err() {
            return (frames, true);
        }
        tokio::select! {
            () = stop.cancelled() => return (frames, false),
            filled = ws.fill() => match filled {
                Ok(0) | Err(_) => return (frames, true),
                Ok(_) => {}
            },
        }
    }
}

/// At most 80 characters of `text`, for error messages.
fn clip(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_point_at_engine_io_over_websocket() {
        assert_eq!(
            endpoint("ws://127.0.0.1:3000"),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            endpoint("http://h:1/ws?name=a"),
            "ws://h:1/socket.io/?name=a&EIO=4&transport=websocket"
        );
        assert_eq!(
            endpoint("ws://h:1/socket.io/?EIO=3&transport=polling"),
            "ws://h:1/socket.io/?EIO=4&transport=websocket"
        );
    }

    #[test]
    fn packets_are_read_in_place() {
        let broadcast = br#"42["message",{"type":"message","room":"r","seq":7,"id":"x","from":{"id":"u","name":"n"},"text":"1:2:3 pad","ts":1,"content":"1:2:3 pad"}]"#;
        assert_eq!(
            read(broadcast),
            Incoming::Message {
                seq: Some(7),
                text: Some(Cow::Borrowed("1:2:3 pad"))
            }
        );
        // The seed's servers echo what was sent: content only.
        assert_eq!(
            read(br#"42["message",{"room":"r","content":"1:2:3"}]"#),
            Incoming::Message {
                seq: None,
                text: Some(Cow::Borrowed("1:2:3"))
            }
        );
        assert_eq!(
            read(br#"42["message",{"type":"system","content":"left"}]"#),
            Incoming::Other
        );
        assert_eq!(
            read(br#"4312[{"room":"r","id":"c","seq":9,"ts":1}]"#),
            Incoming::Ack {
                id: 12,
                seq: Some(9),
                duplicate: false
            }
        );
        assert_eq!(
            read(br#"435[{"error":{"code":"not_joined","message":"m"}}]"#),
            Incoming::Error {
                id: Some(5),
                code: "not_joined".into()
            }
        );
        assert_eq!(
            read(br#"42["error",{"code":"rate_limited","message":"m"}]"#),
            Incoming::Error {
                id: None,
                code: "rate_limited".into()
            }
        );
        assert_eq!(read(b"2"), Incoming::Ping);
        assert_eq!(read(br#"42["presence",{"room":"r"}]"#), Incoming::Other);
        assert_eq!(read(b"42[nonsense"), Incoming::Undecodable);
        assert_eq!(read(b"43[{}]"), Incoming::Undecodable);
    }

    #[test]
    fn sends_are_event_packets_with_an_optional_ack_id() {
        let mut out = Vec::new();
        message_head(r#""bench-1""#, Some(42), &mut out);
        out.extend_from_slice(b"0:42:7");
        out.extend_from_slice(MESSAGE_TAIL);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"4242["message",{"room":"bench-1","content":"0:42:7"}]"#
        );
        let mut out = Vec::new();
        message_head(r#""r""#, None, &mut out);
        assert!(out.starts_with(br#"42["message""#));
    }
}
