//! Opening a bench connection: WebSocket upgrade, welcome, join.
//!
//! These steps run once per connection, so they favour clear errors over
//! speed; the per-message paths live in the scenarios.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use chat_protocol::{ErrorBody, JoinedBody, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::frame::{Peek, decode_full};
use crate::{rawws, source};

/// A client WebSocket as the bench uses it.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The `ref` of the join request; sends use refs from 1 up.
pub const JOIN_REF: u64 = 0;

/// Socket buffer sizes for one bench connection.
///
/// tungstenite eagerly allocates its read buffer (128 KiB by default), which
/// for 10,000 idle connections would be over a gigabyte in the bench process.
/// Frames here are small, and the buffer grows for a larger one, so `small`
/// suits idle connections. Writes are batched by explicit flushes, so the
/// write buffer only needs to hold one window of sends before it is written.
#[derive(Debug, Clone, Copy)]
pub struct Buffers {
    pub read: usize,
    pub write: usize,
}

impl Buffers {
    /// For many connections that mostly wait.
    pub fn small() -> Buffers {
        Buffers {
            read: 4 * 1024,
            write: 4 * 1024,
        }
    }

    /// For connections that send and receive continuously.
    pub fn busy() -> Buffers {
        Buffers {
            read: 64 * 1024,
            write: 64 * 1024,
        }
    }

    fn config(self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read)
            .write_buffer_size(self.write)
    }
}

/// What the server said when the connection joined its room.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The room's latest `seq` at join time; this connection's view of the
    /// room starts after it.
    pub base_seq: u64,
    /// Broadcast, presence or typing frames that arrived before the join
    /// reply (other connections joining the same room meanwhile).
    pub early_frames: u64,
}

/// `url` with `key=value` appended to its query string.
///
/// Values the bench generates are plain ASCII (letters, digits, `-`), so no
/// percent-encoding is needed.
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// Upgrades a TCP connection to `url` (`ws://` only) with Nagle disabled:
/// the bench sends small frames and measures their latency, so it must not
/// wait for ACKs before writing. The connection comes from `source` when
/// given (`--source-ips`), else from where the kernel chooses.
pub async fn connect(url: &str, buffers: Buffers, source: Option<IpAddr>) -> anyhow::Result<Ws> {
    let (host, port, _) = rawws::split_url(url)?;
    let stream = source::dial(&host, port, source)
        .await
        .map_err(|e| anyhow!("connect: {e}"))?;
    stream.set_nodelay(true).context("set TCP_NODELAY")?;
    let (ws, _response) = tokio_tungstenite::client_async_with_config(
        url,
        MaybeTlsStream::Plain(stream),
        Some(buffers.config()),
    )
    .await
    .map_err(|e| anyhow!("upgrade: {e}"))?;
    Ok(ws)
}

/// The next text frame, skipping control frames (tungstenite answers pings
/// by itself while reading). A close or an end of stream is an error that
/// says why.
pub async fn next_text(ws: &mut Ws) -> anyhow::Result<tokio_tungstenite::tungstenite::Utf8Bytes> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text),
            Some(Ok(Message::Close(frame))) => {
                bail!("closed by server: {}", describe_close(&frame))
            }
            Some(Ok(Message::Binary(_))) => bail!("unexpected binary frame"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("read: {e}"),
            None => bail!("connection ended"),
        }
    }
}

/// Human form of a close frame, for error reports.
pub fn describe_close(
    frame: &Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>,
) -> String {
    match frame {
        Some(f) => format!("close {} {}", u16::from(f.code), f.reason),
        None => "close without code".into(),
    }
}

/// Connects to `url` (from `source`, see [`connect`]), reads the welcome
/// frame, joins a room and waits for the `joined` reply, all within
/// `timeout` (a server that accepts TCP but never answers must not hang the
/// bench).
pub async fn open(
    url: &str,
    buffers: Buffers,
    source: Option<IpAddr>,
    room_json: &str,
    timeout: Duration,
) -> anyhow::Result<(Ws, Joined)> {
    tokio::time::timeout(timeout, async {
        let mut ws = connect(url, buffers, source).await?;
        let joined = welcome_and_join(&mut ws, room_json).await?;
        Ok((ws, joined))
    })
    .await
    .map_err(|_| anyhow!("not joined within {timeout:?}"))?
}

/// Reads the welcome frame, joins `room`, and waits for the `joined` reply.
///
/// `room_json` is the room name already encoded as a JSON string (quotes
/// included), so callers encode it once per connection.
pub async fn welcome_and_join(ws: &mut Ws, room_json: &str) -> anyhow::Result<Joined> {
    let first = next_text(ws).await?;
    match decode_full(first.as_str()) {
        Ok(ServerFrame::Welcome { .. }) => {}
        Ok(other) => bail!("expected welcome, got {:?}", other.type_name()),
        Err(e) => bail!("undecodable first frame: {e}"),
    }
    let join = format!(r#"{{"type":"join","room":{room_json},"ref":{JOIN_REF}}}"#);
    ws.send(Message::Text(join.into()))
        .await
        .context("send join")?;
    let mut early_frames = 0;
    loop {
        let text = next_text(ws).await?;
        let peek = Peek::parse(text.as_str()).map_err(|e| anyhow!("undecodable frame: {e}"))?;
        match &*peek.kind {
            "joined" | "error" => match decode_full(text.as_str()) {
                Ok(ServerFrame::Joined {
                    body: JoinedBody { seq, .. },
                    ..
                }) => {
                    return Ok(Joined {
                        base_seq: seq,
                        early_frames,
                    });
                }
                Ok(ServerFrame::Error {
                    body: ErrorBody { code, message, .. },
                    ..
                }) => {
                    bail!("join refused: {code}: {message}")
                }
                Ok(other) => bail!(
                    "frame with type `{}` decoded as `{}`",
                    peek.kind,
                    other.type_name()
                ),
                Err(e) => bail!("undecodable {} frame: {e}", peek.kind),
            },
            _ => early_frames += 1,
        }
    }
}

/// The soft limit on open files of this process, from /proc/self/limits.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files_limit(&text)
}

/// Parses the soft "Max open files" value of a /proc/PID/limits text.
pub fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    // "unlimited" parses as None, which callers treat as "no limit known".
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_appended() {
        assert_eq!(with_query("ws://h/ws", "name", "a"), "ws://h/ws?name=a");
        assert_eq!(
            with_query("ws://h/ws?x=1", "name", "a"),
            "ws://h/ws?x=1&name=a"
        );
    }

    #[test]
    fn open_files_soft_limit_is_read() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            20000                40000                files     \n";
        assert_eq!(parse_open_files_limit(limits), Some(20000));
        assert_eq!(parse_open_files_limit("Max processes 1 1"), None);
    }
}
