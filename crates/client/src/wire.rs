//! The client's side of the wire: the frames it sends, and opening a
//! connection (WebSocket upgrade with identity, then the `welcome` frame).
//!
//! Frames the server sends are decoded with [`chat_protocol::ServerFrame`],
//! shared with the server. Requests are encoded here from borrowed fields:
//! the protocol crate's `Request` is the server's parsed form and is not
//! meant to be serialized.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::{ServerFrame, WelcomeBody};
use futures_util::StreamExt;
use rustls::ClientConfig;
use serde::Serialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::TlsError;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::error::{Error, Result};
use crate::event::Session;
use crate::tls;

/// A TCP connection to `uri`'s host and port from the local address
/// `from` (the first of the host's addresses in `from`'s family), without
/// Nagle's delay, as tokio-tungstenite's own connect does.
async fn tcp_from(from: IpAddr, uri: &tungstenite::http::Uri) -> std::io::Result<TcpStream> {
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("wss") {
            443
        } else {
            80
        });
    let to = tokio::net::lookup_host((host, port))
        .await?
        .find(|to| to.is_ipv4() == from.is_ipv4())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("{host} has no address in the family of {from}"),
            )
        })?;
    let socket = if from.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(from, 0))?;
    let stream = socket.connect(to).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// An open client WebSocket.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One request frame. Every request but `typing` carries a numeric `ref`,
/// which the server echoes on its reply (or error).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Request<'a> {
    Join {
        room: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
        #[serde(rename = "ref")]
        reference: u64,
    },
    Leave {
        room: &'a str,
        #[serde(rename = "ref")]
        reference: u64,
    },
    Send {
        room: &'a str,
        text: &'a str,
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        reply_to: Option<u64>,
        #[serde(rename = "ref")]
        reference: u64,
    },
    Edit {
        room: &'a str,
        seq: u64,
        text: &'a str,
        id: &'a str,
        #[serde(rename = "ref")]
        reference: u64,
    },
    Delete {
        room: &'a str,
        seq: u64,
        id: &'a str,
        #[serde(rename = "ref")]
        reference: u64,
    },
    React {
        room: &'a str,
        seq: u64,
        emoji: &'a str,
        #[serde(skip_serializing_if = "is_false")]
        remove: bool,
        id: &'a str,
        #[serde(rename = "ref")]
        reference: u64,
    },
    Pin {
        room: &'a str,
        seq: u64,
        #[serde(skip_serializing_if = "is_false")]
        remove: bool,
        id: &'a str,
        #[serde(rename = "ref")]
        reference: u64,
    },
    History {
        room: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        after: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
        #[serde(rename = "ref")]
        reference: u64,
    },
    /// An extension of our server: messages holding every word of `query`.
    Search {
        query: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cursor: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
        #[serde(rename = "ref")]
        reference: u64,
    },
    Typing {
        room: &'a str,
    },
    /// Extension: move the user's read marker in `room` forward to `seq`.
    Read {
        room: &'a str,
        seq: u64,
        #[serde(rename = "ref")]
        reference: u64,
    },
    /// Extension: the user's rooms, with unread counts.
    Rooms {
        #[serde(rename = "ref")]
        reference: u64,
    },
    /// Extension: public rooms to discover.
    Directory {
        #[serde(rename = "ref")]
        reference: u64,
    },
    /// Extension: open (and join) the direct-message room with `user`.
    Dm {
        user: &'a str,
        #[serde(rename = "ref")]
        reference: u64,
    },
    Ping {
        #[serde(rename = "ref")]
        reference: u64,
    },
}

/// Flags are left out when false, as the server reads an absent one.
fn is_false(flag: &bool) -> bool {
    !*flag
}

impl Request<'_> {
    /// The JSON text of the frame.
    pub(crate) fn encode(&self) -> String {
        // Plain strings and integers: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Where and as whom to connect. The URL and token are fixed for the life
/// of a client, so every reconnect presents the same identity; a guest's
/// credential is replaced by each newer one a `welcome` hands out.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The WebSocket URL, with `?name=` added when a name was given. It
    /// never holds the guest credential, so it can be shown in errors.
    pub(crate) url: String,
    /// `Authorization: Bearer …`, when a token was given.
    pub(crate) authorization: Option<HeaderValue>,
    /// The guest credential presented as `?guest=` (without a token only):
    /// the latest a `welcome` handed out, or the one the client was built
    /// with.
    pub(crate) guest: Option<String>,
    /// For a `wss://` URL: the TLS configuration (whom to trust) of every
    /// connection, the first and each reconnect alike. `None` for `ws://`.
    pub(crate) tls: Option<Arc<ClientConfig>>,
    /// The local address every connection is opened from (`None`: the
    /// system's choice).
    pub(crate) local_address: Option<IpAddr>,
}

impl Target {
    pub(crate) fn new(
        url: &str,
        name: Option<&str>,
        token: Option<&str>,
        guest: Option<&str>,
    ) -> Result<Target> {
        let url = match name {
            Some(name) => with_query(url, "name", name),
            None => url.to_owned(),
        };
        // Checked now so a bad URL fails before any connection attempt.
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(Error::InvalidUrl {
                url,
                why: "the scheme must be ws:// or wss://".into(),
            });
        }
        url.as_str()
            .into_client_request()
            .map_err(|e| Error::InvalidUrl {
                url: url.clone(),
                why: e.to_string(),
            })?;
        let authorization = token
            .map(|token| {
                let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| Error::InvalidToken)?;
                value.set_sensitive(true);
                Ok::<_, Error>(value)
            })
            .transpose()?;
        Ok(Target {
            url,
            authorization,
            guest: guest.map(str::to_owned),
            tls: None,
            local_address: None,
        })
    }

    /// Sets up TLS for a `wss://` URL: the platform's roots and the PEM
    /// `roots` are trusted. The PEM is checked for a `ws://` URL too, so a
    /// bad file shows whatever the URL.
    pub(crate) fn trust(&mut self, roots: &[Vec<u8>]) -> Result<()> {
        let extra = tls::parse_roots(roots)?;
        if tls::is_tls(&self.url) {
            self.tls = Some(tls::client_config(&self.url, extra)?);
        }
        Ok(())
    }

    /// The URL the next upgrade asks for: with `?guest=` for a guest. A
    /// token says who we are by itself, so a guest credential is never
    /// sent beside one.
    pub(crate) fn request_url(&self) -> String {
        match (&self.guest, &self.authorization) {
            (Some(guest), None) => with_query(&self.url, "guest", guest),
            _ => self.url.clone(),
        }
    }

    /// Stops presenting a guest credential; whether one was presented.
    pub(crate) fn forget_guest(&mut self) -> bool {
        self.authorization.is_none() && self.guest.take().is_some()
    }

    /// Keeps the guest credential of a new connection's `welcome`, so the
    /// next connection is the same user.
    pub(crate) fn keep_guest(&mut self, session: &Session) {
        if let Some(token) = &session.guest_token {
            self.guest = Some(token.clone());
        }
    }

    /// Opens a connection and reads its `welcome`, all within `timeout`.
    pub(crate) async fn open(&self, timeout: Duration) -> Result<(Ws, Session)> {
        tokio::time::timeout(timeout, self.open_now())
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    async fn open_now(&self) -> Result<(Ws, Session)> {
        let mut request =
            self.request_url()
                .into_client_request()
                .map_err(|e| Error::InvalidUrl {
                    url: self.url.clone(),
                    why: e.to_string(),
                })?;
        if let Some(value) = &self.authorization {
            request.headers_mut().insert(AUTHORIZATION, value.clone());
        }
        // `None` for ws://; for wss:// always ours, never tokio-tungstenite's
        // fallback (a process-wide rustls default with no roots).
        let connector = self.tls.clone().map(Connector::Rustls);
        let connected = match self.local_address {
            None => {
                tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector)
                    .await
            }
            Some(from) => match tcp_from(from, request.uri()).await {
                Ok(stream) => {
                    tokio_tungstenite::client_async_tls_with_config(
                        request, stream, None, connector,
                    )
                    .await
                }
                Err(error) => Err(tungstenite::Error::Io(error)),
            },
        };
        let (mut ws, _) = connected.map_err(|e| self.connect_error(e))?;
        let mut session = read_welcome(&mut ws).await?;
        if self.authorization.is_none() && session.guest_token.is_none() {
            // A welcome without a new credential leaves the one we came
            // with good for coming back as this user.
            session.guest_token = self.guest.clone();
        }
        Ok((ws, session))
    }

    fn connect_error(&self, error: tungstenite::Error) -> Error {
        if let Some(source) = tls::handshake_error(&error) {
            return Error::Tls {
                url: self.url.clone(),
                source,
            };
        }
        match error {
            tungstenite::Error::Http(response) => Error::Rejected {
                status: response.status().as_u16(),
                body: response
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            },
            tungstenite::Error::Url(e) => Error::InvalidUrl {
                url: self.url.clone(),
                why: e.to_string(),
            },
            tungstenite::Error::Tls(TlsError::InvalidDnsName) => Error::InvalidUrl {
                url: self.url.clone(),
                why: "the host is not a name a certificate can be checked against".into(),
            },
            other => Error::Connect {
                url: self.url.clone(),
                source: Box::new(other),
            },
        }
    }
}

/// Reads frames until the `welcome`, which the contract makes the first.
async fn read_welcome(ws: &mut Ws) -> Result<Session> {
    while let Some(item) = ws.next().await {
        let text = match item {
            Ok(WsMessage::Text(text)) => text,
            Ok(WsMessage::Close(frame)) => {
                return Err(Error::Protocol(format!(
                    "the server closed the connection before its welcome: {}",
                    frame.map(|f| f.to_string()).unwrap_or_default()
                )));
            }
            Ok(_) => continue,
            Err(e) => {
                return Err(Error::Protocol(format!(
                    "connection broke before the welcome: {e}"
                )));
            }
        };
        return match serde_json::from_str::<ServerFrame>(&text) {
            Ok(ServerFrame::Welcome(welcome)) => Ok(session(welcome)),
            _ => Err(Error::Protocol(format!(
                "expected a welcome frame first, got {}",
                truncate(&text, 200)
            ))),
        };
    }
    Err(Error::Protocol(
        "the connection ended before the welcome".into(),
    ))
}

/// The session a `welcome` opens.
fn session(welcome: WelcomeBody) -> Session {
    let WelcomeBody {
        session,
        user,
        heartbeat_ms,
        guest_token,
        ..
    } = welcome;
    Session {
        id: session,
        user,
        heartbeat: Duration::from_millis(heartbeat_ms),
        guest_token,
    }
}

fn truncate(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `url` with `key=value` added to its query, `value` percent-encoded
/// (names may hold spaces and any script).
fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut out = format!("{url}{sep}{key}=");
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_encode_as_the_contract_shows() {
        let join = Request::Join {
            room: "general",
            since: Some(130),
            reference: 1,
        };
        assert_eq!(
            join.encode(),
            r#"{"type":"join","room":"general","since":130,"ref":1}"#
        );
        let join = Request::Join {
            room: "general",
            since: None,
            reference: 1,
        };
        assert_eq!(join.encode(), r#"{"type":"join","room":"general","ref":1}"#);
        let send = Request::Send {
            room: "r",
            text: "hello 你好",
            id: "c-1",
            reply_to: None,
            reference: 3,
        };
        assert_eq!(
            send.encode(),
            r#"{"type":"send","room":"r","text":"hello 你好","id":"c-1","ref":3}"#
        );
        let reply = Request::Send {
            room: "r",
            text: "yes",
            id: "c-2",
            reply_to: Some(1),
            reference: 5,
        };
        assert_eq!(
            reply.encode(),
            r#"{"type":"send","room":"r","text":"yes","id":"c-2","reply_to":1,"ref":5}"#
        );
        let history = Request::History {
            room: "r",
            before: None,
            after: Some(9),
            limit: Some(200),
            reference: 4,
        };
        assert_eq!(
            history.encode(),
            r#"{"type":"history","room":"r","after":9,"limit":200,"ref":4}"#
        );
        assert_eq!(
            Request::Typing { room: "r" }.encode(),
            r#"{"type":"typing","room":"r"}"#
        );
    }

    #[test]
    fn changes_encode_as_the_server_parses_them() {
        use crate::action::Action;
        let cases = [
            (
                Action::Edit {
                    seq: 4,
                    text: "fixed".into(),
                },
                r#"{"type":"edit","room":"r","seq":4,"text":"fixed","id":"x","ref":7}"#,
            ),
            (
                Action::Delete { seq: 4 },
                r#"{"type":"delete","room":"r","seq":4,"id":"x","ref":7}"#,
            ),
            (
                Action::React {
                    seq: 4,
                    emoji: "👍".into(),
                    remove: false,
                },
                r#"{"type":"react","room":"r","seq":4,"emoji":"👍","id":"x","ref":7}"#,
            ),
            (
                Action::React {
                    seq: 4,
                    emoji: "👍".into(),
                    remove: true,
                },
                r#"{"type":"react","room":"r","seq":4,"emoji":"👍","remove":true,"id":"x","ref":7}"#,
            ),
            (
                Action::Pin {
                    seq: 4,
                    remove: true,
                },
                r#"{"type":"pin","room":"r","seq":4,"remove":true,"id":"x","ref":7}"#,
            ),
        ];
        for (write, json) in cases {
            let text = write.request("r", "x", 7).encode();
            assert_eq!(text, json);
            // The server's own parser reads what we meant.
            let parsed = chat_protocol::parse_request(&text).expect("parses");
            let expected = match write {
                Action::Edit { seq, text } => chat_protocol::Request::Edit {
                    room: "r".into(),
                    seq,
                    text,
                    id: Some("x".into()),
                },
                Action::Delete { seq } => chat_protocol::Request::Delete {
                    room: "r".into(),
                    seq,
                    id: Some("x".into()),
                },
                Action::React { seq, emoji, remove } => chat_protocol::Request::React {
                    room: "r".into(),
                    seq,
                    emoji,
                    remove,
                    id: Some("x".into()),
                },
                Action::Pin { seq, remove } => chat_protocol::Request::Pin {
                    room: "r".into(),
                    seq,
                    remove,
                    id: Some("x".into()),
                },
                Action::Send { .. } => unreachable!("not among the cases"),
            };
            assert_eq!(parsed.request, expected);
        }
    }

    #[test]
    fn searches_encode_as_the_server_parses_them() {
        let cases = [
            (
                Request::Search {
                    query: "天气 today",
                    room: None,
                    cursor: None,
                    limit: None,
                    reference: 14,
                },
                r#"{"type":"search","query":"天气 today","ref":14}"#,
            ),
            (
                Request::Search {
                    query: "deploy",
                    room: Some("ops"),
                    cursor: Some(1830),
                    limit: Some(20),
                    reference: 15,
                },
                r#"{"type":"search","query":"deploy","room":"ops","cursor":1830,"limit":20,"ref":15}"#,
            ),
        ];
        for (request, json) in cases {
            let text = request.encode();
            assert_eq!(text, json);
            let Request::Search {
                query,
                room,
                cursor,
                limit,
                ..
            } = request
            else {
                unreachable!("only searches here");
            };
            let parsed = chat_protocol::parse_request(&text).expect("parses");
            assert_eq!(
                parsed.request,
                chat_protocol::Request::Search {
                    query: query.into(),
                    room: room.map(String::from),
                    cursor,
                    limit,
                }
            );
        }
    }

    #[test]
    fn names_are_percent_encoded() {
        assert_eq!(
            with_query("ws://h/ws", "name", "bob smith+1"),
            "ws://h/ws?name=bob%20smith%2B1"
        );
        assert_eq!(
            with_query("ws://h/ws?x=1", "name", "é"),
            "ws://h/ws?x=1&name=%C3%A9"
        );
    }

    #[test]
    fn bad_targets_fail_early() {
        assert!(matches!(
            Target::new("not a url", None, None, None),
            Err(Error::InvalidUrl { .. })
        ));
        assert!(matches!(
            Target::new("http://h/ws", None, None, None),
            Err(Error::InvalidUrl { .. })
        ));
        assert!(matches!(
            Target::new("ws://h/ws", None, Some("bad\ntoken"), None),
            Err(Error::InvalidToken)
        ));
        let t = Target::new("ws://h/ws", Some("alice"), Some("t0k"), None).unwrap();
        assert_eq!(t.url, "ws://h/ws?name=alice");
        assert!(t.authorization.unwrap().is_sensitive());
    }

    #[test]
    fn people_requests_encode_as_the_server_parses_them() {
        use chat_protocol::Request as Parsed;
        let cases = [
            (
                Request::Read {
                    room: "general",
                    seq: 12,
                    reference: 1,
                },
                r#"{"type":"read","room":"general","seq":12,"ref":1}"#,
                Parsed::Read {
                    room: "general".into(),
                    seq: 12,
                },
            ),
            (
                Request::Rooms { reference: 2 },
                r#"{"type":"rooms","ref":2}"#,
                Parsed::Rooms,
            ),
            (
                Request::Directory { reference: 3 },
                r#"{"type":"directory","ref":3}"#,
                Parsed::Directory,
            ),
            (
                Request::Dm {
                    user: "u_2",
                    reference: 4,
                },
                r#"{"type":"dm","user":"u_2","ref":4}"#,
                Parsed::Dm { user: "u_2".into() },
            ),
        ];
        for (request, json, expected) in cases {
            let text = request.encode();
            assert_eq!(text, json);
            let parsed = chat_protocol::parse_request(&text).expect("parses");
            assert_eq!(parsed.request, expected);
        }
    }

    #[test]
    fn a_guest_comes_back_with_the_latest_credential() {
        let mut t = Target::new("ws://h/ws", Some("ann lee"), None, None).unwrap();
        assert_eq!(t.request_url(), "ws://h/ws?name=ann%20lee");
        let mut welcome = session(WelcomeBody {
            session: "s_1".into(),
            user: chat_protocol::User {
                id: "u_1".into(),
                name: "ann lee".into(),
            },
            heartbeat_ms: 25000,
            text: String::new(),
            guest_token: Some("g.1/+=".into()),
        });
        t.keep_guest(&welcome);
        assert_eq!(
            t.request_url(),
            "ws://h/ws?name=ann%20lee&guest=g.1%2F%2B%3D"
        );
        // The shown URL never holds the credential.
        assert_eq!(t.url, "ws://h/ws?name=ann%20lee");
        welcome.guest_token = Some("g.2".into());
        t.keep_guest(&welcome);
        assert_eq!(t.request_url(), "ws://h/ws?name=ann%20lee&guest=g.2");
        // A welcome without one keeps the one we have.
        welcome.guest_token = None;
        t.keep_guest(&welcome);
        assert_eq!(t.guest.as_deref(), Some("g.2"));

        let given = Target::new("ws://h/ws", None, None, Some("g.0")).unwrap();
        assert_eq!(given.request_url(), "ws://h/ws?guest=g.0");
        // A token says who we are: no guest credential beside it.
        let mut with_token = Target::new("ws://h/ws", None, Some("jwt"), Some("g.0")).unwrap();
        welcome.guest_token = Some("g.3".into());
        with_token.keep_guest(&welcome);
        assert_eq!(with_token.request_url(), "ws://h/ws");
    }

    #[test]
    fn a_welcome_decodes_with_or_without_a_guest_credential() {
        let text = r#"{"type":"welcome","session":"s_1","user":{"id":"u_1","name":"x"},"heartbeat_ms":100,"text":"hi","guest_token":"g.t.s"}"#;
        let Ok(ServerFrame::Welcome(welcome)) = serde_json::from_str(text) else {
            panic!("a welcome");
        };
        let s = session(welcome);
        assert_eq!(
            (s.id.as_str(), s.user.id.as_str(), s.heartbeat),
            ("s_1", "u_1", Duration::from_millis(100))
        );
        assert_eq!(s.guest_token.as_deref(), Some("g.t.s"));
        let old = r#"{"type":"welcome","session":"s_1","user":{"id":"u_1","name":"x"},"heartbeat_ms":100,"text":"hi"}"#;
        let Ok(ServerFrame::Welcome(welcome)) = serde_json::from_str(old) else {
            panic!("a welcome");
        };
        assert_eq!(session(welcome).guest_token, None);
    }
}
