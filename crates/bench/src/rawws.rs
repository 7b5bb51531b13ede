//! A minimal WebSocket client for the hot path of the load scenarios.
//!
//! `fanout` and `ramp` hold thousands of connections that each receive a few
//! small frames a second, so what a delivery costs the bench is mostly what
//! one read costs: a wakeup, a `read` syscall, and whatever the client
//! library does around it. tungstenite (used for the setup-heavy `idle` and
//! `durable` scenarios) allocates a message per frame and goes through a
//! waker-proxying `AsyncRead` adapter; at 100,000 deliveries a second on one
//! core that overhead is a visible part of the budget, and the bench must not
//! be the bottleneck. This client instead:
//!
//! - reads straight from the `TcpStream` into one buffer per connection, and
//!   hands out frames as slices of it (server frames are unmasked, so a text
//!   payload is usable in place, without a copy or an allocation);
//! - reads again only when no complete frame is left, so a backlog of frames
//!   is handled from one syscall;
//! - writes client frames (which must be masked) from a reusable buffer.
//!
//! It speaks exactly what the bench needs: `ws://` only, no extensions, text
//! frames (fragmented ones are reassembled), pings answered, a close frame
//! or the end of the stream reported as the end of the connection.

use std::io;
use std::net::IpAddr;

use anyhow::{Context, anyhow, bail, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::http::Uri;

/// Largest HTTP response head accepted during the upgrade.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Largest message accepted (the server's own default frame limit is 64 KiB,
/// but a `joined` reply with history may be larger).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// A frame (or reassembled message) read from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete text message. Its UTF-8 is not validated here: the JSON
    /// parser that reads it validates what it borrows.
    Text(&'a [u8]),
    /// The server closed the connection, with its close code if it gave one.
    Close(Option<u16>),
}

/// A protocol violation by the server.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    Reserved,
    Opcode(u8),
    Binary,
    TooLarge(u64),
    StrayContinuation,
    BadControl,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Reserved => f.write_str("reserved bits set (no extension was negotiated)"),
            FrameError::Opcode(op) => write!(f, "unknown opcode {op:#x}"),
            FrameError::Binary => f.write_str("binary message"),
            FrameError::TooLarge(n) => write!(f, "message of {n} bytes is over the limit"),
            FrameError::StrayContinuation => {
                f.write_str("continuation frame without a message to continue")
            }
            FrameError::BadControl => f.write_str("control frame fragmented or over 125 bytes"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Where the next frame of `buf` starts and ends, if it is complete.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    /// Header length in bytes.
    head: usize,
    /// Payload length in bytes.
    len: usize,
}

/// Parses a frame header at the start of `buf`; `Ok(None)` when more bytes
/// are needed for the header itself.
fn parse_header(buf: &[u8]) -> Result<Option<Header>, FrameError> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(FrameError::Reserved);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    let masked = b1 & 0x80 != 0;
    let (len, mut head) = match b1 & 0x7F {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 4),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(bytes) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(bytes);
                (u64::from_be_bytes(be), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if len > MAX_MESSAGE as u64 {
        return Err(FrameError::TooLarge(len));
    }
    if opcode >= OP_CLOSE && (!fin || len > 125) {
        return Err(FrameError::BadControl);
    }
    let mask = if masked {
        let Some(key) = buf.get(head..head + 4) else {
            return Ok(None);
        };
        head += 4;
        Some([key[0], key[1], key[2], key[3]])
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        head,
        len: len as usize,
    }))
}

/// XORs `data` with the 4-byte `key`, as WebSocket masking does (the same
/// operation masks and unmasks).
fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Appends a masked client frame with `opcode` and `payload` to `out`.
pub(crate) fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], key: [u8; 4]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key);
}

/// Host, port and request target of a `ws://` URL.
pub(crate) fn split_url(url: &str) -> anyhow::Result<(String, u16, String)> {
    let uri: Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
    ensure!(
        uri.scheme_str() == Some("ws"),
        "the load scenarios speak plain ws:// only, not {url}"
    );
    let host = uri.host().ok_or_else(|| anyhow!("no host in {url}"))?;
    let port = uri.port_u16().unwrap_or(80);
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    Ok((host.to_string(), port, target.to_string()))
}

/// Finds the end of an HTTP head (`\r\n\r\n`) in `buf`.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Checks an upgrade response head: status 101 and the accept key that
/// proves the server read our key.
fn check_upgrade_response(head: &str, key: &str) -> anyhow::Result<()> {
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        bail!("upgrade refused: {status}");
    }
    let expected = derive_accept_key(key.as_bytes());
    let accepted = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == expected
        })
    });
    ensure!(
        accepted,
        "upgrade response without the right Sec-WebSocket-Accept"
    );
    Ok(())
}

/// One client connection.
pub struct RawWs {
    stream: TcpStream,
    /// Received bytes; `start..end` is not yet parsed.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes the frame at `start` needs in total, when it is incomplete.
    need: usize,
    /// A fragmented message being reassembled.
    fragments: Option<Vec<u8>>,
    /// The last reassembled message, which [`Frame::Text`] borrows.
    assembled: Vec<u8>,
    /// Pong payloads owed to the server, already encoded.
    control: Vec<u8>,
    /// Encoded outgoing frames, reused between writes.
    out: Vec<u8>,
    /// State of the mask-key generator (xorshift64).
    rng: u64,
}

impl RawWs {
    /// Connects to `url` (`ws://host:port/path?query`) from `source` (when
    /// given, `--source-ips`; else the kernel chooses) and upgrades, with
    /// Nagle disabled (the bench sends small frames and measures latency).
    /// `read_buffer` is the initial size of the receive buffer; it grows for
    /// a larger message.
    pub async fn connect(
        url: &str,
        read_buffer: usize,
        seed: u64,
        source: Option<IpAddr>,
    ) -> anyhow::Result<RawWs> {
        let (host, port, target) = split_url(url)?;
        let stream = crate::source::dial(&host, port, source)
            .await
            .context("connect")?;
        stream.set_nodelay(true).context("set TCP_NODELAY")?;
        let key = generate_key();
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        let mut ws = RawWs {
            stream,
            buf: vec![0; read_buffer.max(MAX_RESPONSE_HEAD)],
            start: 0,
            end: 0,
            need: 0,
            fragments: None,
            assembled: Vec::new(),
            control: Vec::new(),
            out: Vec::with_capacity(1024),
            // xorshift must not start at 0.
            rng: seed | 1,
        };
        ws.stream
            .write_all(request.as_bytes())
            .await
            .context("send upgrade request")?;
        let head = loop {
            if let Some(end) = head_end(&ws.buf[..ws.end]) {
                break end;
            }
            ensure!(ws.end < MAX_RESPONSE_HEAD, "upgrade response head too long");
            let n = ws
                .stream
                .read(&mut ws.buf[ws.end..MAX_RESPONSE_HEAD])
                .await
                .context("read upgrade response")?;
            ensure!(n > 0, "connection closed during the upgrade");
            ws.end += n;
        };
        let text = String::from_utf8_lossy(&ws.buf[..head]);
        check_upgrade_response(&text, &key)?;
        // Frames that came with the response stay in the buffer.
        ws.start = head;
        Ok(ws)
    }

    fn mask_key(&mut self) -> [u8; 4] {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng as u32).to_le_bytes()
    }

    /// Reads more bytes from the socket; `Ok(0)` at the end of the stream.
    ///
    /// Cancel-safe (it is one `read`), so it can be a `select!` branch.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let want = self.need.max(1);
        if want > self.buf.len() {
            // The pending frame is larger than the buffer: grow it.
            self.buf.resize(want.next_power_of_two(), 0);
        }
        if self.end == self.buf.len() || self.buf.len() - self.start < want {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// The next complete message in the buffer, if any; pings are answered
    /// (queued, see [`RawWs::flush_control`]) and pongs skipped on the way.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        loop {
            let avail = &self.buf[self.start..self.end];
            let Some(h) = parse_header(avail)? else {
                self.need = 14;
                return Ok(None);
            };
            let total = h.head + h.len;
            if avail.len() < total {
                self.need = total;
                return Ok(None);
            }
            self.need = 0;
            let payload = self.start + h.head..self.start + total;
            self.start += total;
            if let Some(key) = h.mask {
                apply_mask(&mut self.buf[payload.clone()], key);
            }
            match h.opcode {
                OP_TEXT if h.fin && self.fragments.is_none() => {
                    return Ok(Some(Frame::Text(&self.buf[payload])));
                }
                OP_TEXT => {
                    if self.fragments.is_some() {
                        return Err(FrameError::StrayContinuation);
                    }
                    self.fragments = Some(self.buf[payload].to_vec());
                }
                OP_CONTINUATION => {
                    let Some(message) = self.fragments.as_mut() else {
                        return Err(FrameError::StrayContinuation);
                    };
                    message.extend_from_slice(&self.buf[payload]);
                    if message.len() > MAX_MESSAGE {
                        return Err(FrameError::TooLarge(message.len() as u64));
                    }
                    if h.fin {
                        self.assembled = self.fragments.take().unwrap_or_default();
                        return Ok(Some(Frame::Text(&self.assembled)));
                    }
                }
                OP_BINARY => return Err(FrameError::Binary),
                OP_CLOSE => {
                    let code = match &self.buf[payload] {
                        [a, b, ..] => Some(u16::from_be_bytes([*a, *b])),
                        _ => None,
                    };
                    return Ok(Some(Frame::Close(code)));
                }
                OP_PING => {
                    let key = self.mask_key();
                    encode_frame(&mut self.control, OP_PONG, &self.buf[payload], key);
                }
                OP_PONG => {}
                other => return Err(FrameError::Opcode(other)),
            }
        }
    }

    /// Writes the pongs owed to the server, if any.
    pub async fn flush_control(&mut self) -> io::Result<()> {
        if self.control.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.control).await;
        self.control.clear();
        result
    }

    /// Queues a text frame with the control replies (written by
    /// [`RawWs::flush_control`]): a protocol-level pong, such as
    /// Engine.IO's `3`.
    pub fn queue_control_text(&mut self, payload: &[u8]) {
        let key = self.mask_key();
        encode_frame(&mut self.control, OP_TEXT, payload, key);
    }

    /// Queues a text frame; [`RawWs::flush`] writes every queued frame with
    /// one syscall.
    pub fn queue_text(&mut self, payload: &[u8]) {
        let key = self.mask_key();
        encode_frame(&mut self.out, OP_TEXT, payload, key);
    }

    /// Writes the queued frames.
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.out).await;
        self.out.clear();
        result
    }

    /// Sends one text frame now.
    pub async fn send_text(&mut self, payload: &[u8]) -> io::Result<()> {
        self.queue_text(payload);
        self.flush().await
    }

    /// The next text message, owned; for the setup steps, not the hot path.
    /// A close or the end of the stream is an error that says why.
    pub async fn next_text(&mut self) -> anyhow::Result<String> {
        loop {
            match self.next_frame() {
                Err(e) => bail!("bad frame: {e}"),
                Ok(Some(Frame::Text(bytes))) => {
                    return String::from_utf8(bytes.to_vec())
                        .map_err(|_| anyhow!("text frame is not UTF-8"));
                }
                Ok(Some(Frame::Close(code))) => bail!("closed by server: {code:?}"),
                Ok(None) => {}
            }
            self.flush_control().await.context("send pong")?;
            if self.fill().await.context("read")? == 0 {
                bail!("connection ended");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame (unmasked) with `opcode` and `payload`.
    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.push(if fin { 0x80 } else { 0 } | opcode);
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n <= 65535 => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn headers_of_each_length_form() {
        let short = server_frame(true, OP_TEXT, b"hi");
        let h = parse_header(&short).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode, h.head, h.len), (true, OP_TEXT, 2, 2));
        let medium = server_frame(true, OP_TEXT, &[b'a'; 300]);
        assert_eq!(parse_header(&medium).unwrap().unwrap().len, 300);
        assert_eq!(parse_header(&medium[..3]).unwrap(), None);
        let long = server_frame(true, OP_TEXT, &[b'a'; 70_000]);
        let h = parse_header(&long).unwrap().unwrap();
        assert_eq!((h.head, h.len), (10, 70_000));
        assert_eq!(parse_header(&long[..9]).unwrap(), None);
        assert_eq!(parse_header(&[0x81]).unwrap(), None);
    }

    #[test]
    fn protocol_violations_are_errors() {
        assert_eq!(parse_header(&[0xC1, 0]), Err(FrameError::Reserved));
        assert_eq!(
            parse_header(&[0x09, 0]),
            Err(FrameError::BadControl),
            "fragmented ping"
        );
        let mut huge = vec![0x81, 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(parse_header(&huge), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn client_frames_are_masked_and_round_trip() {
        let key = [1, 2, 3, 4];
        for len in [5usize, 200, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = Vec::new();
            encode_frame(&mut out, OP_TEXT, &payload, key);
            let h = parse_header(&out).unwrap().unwrap();
            assert_eq!(h.mask, Some(key));
            assert_eq!(h.len, len);
            let mut body = out[h.head..].to_vec();
            apply_mask(&mut body, key);
            assert_eq!(body, payload);
        }
    }

    #[test]
    fn ws_urls_are_split() {
        assert_eq!(
            split_url("ws://127.0.0.1:3000/ws?name=a").unwrap(),
            ("127.0.0.1".into(), 3000, "/ws?name=a".into())
        );
        assert_eq!(split_url("ws://h").unwrap(), ("h".into(), 80, "/".into()));
        assert!(split_url("wss://h/ws").is_err());
    }

    #[test]
    fn upgrade_response_is_checked() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let good = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                    sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        check_upgrade_response(good, key).unwrap();
        let wrong_key = good.replace("s3p", "x3p");
        assert!(check_upgrade_response(&wrong_key, key).is_err());
        assert!(check_upgrade_response("HTTP/1.1 404 Not Found\r\n\r\n", key).is_err());
        assert_eq!(head_end(b"a\r\n\r\nrest"), Some(5));
        assert_eq!(head_end(b"a\r\n"), None);
    }

    /// Frames parsed from a real socket pair: split across reads, a ping
    /// in between (answered), a fragmented message, then a close.
    #[tokio::test]
    async fn frames_are_read_from_a_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            let head = String::from_utf8(head).unwrap();
            let key = head
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap();
            let accept = derive_accept_key(key.trim().as_bytes());
            let mut out = format!(
                "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .into_bytes();
            out.extend(server_frame(true, OP_TEXT, b"first"));
            s.write_all(&out).await.unwrap();
            let big = vec![b'x'; 100_000];
            let mut rest = server_frame(true, OP_PING, b"p");
            rest.extend(server_frame(true, OP_TEXT, &big));
            rest.extend(server_frame(false, OP_TEXT, b"frag"));
            rest.extend(server_frame(true, OP_CONTINUATION, b"mented"));
            rest.extend(server_frame(true, OP_CLOSE, &1001u16.to_be_bytes()));
            for chunk in rest.chunks(7_000) {
                s.write_all(chunk).await.unwrap();
            }
            // The client's pong: masked, opcode 0xA, payload "p".
            let mut pong = [0u8; 7];
            s.read_exact(&mut pong).await.unwrap();
            let h = parse_header(&pong).unwrap().unwrap();
            let mut body = pong[h.head..].to_vec();
            apply_mask(&mut body, h.mask.unwrap());
            (h.opcode, body)
        });
        let mut ws = RawWs::connect(&format!("ws://{addr}/ws"), 4096, 7, None)
            .await
            .unwrap();
        assert_eq!(ws.next_text().await.unwrap(), "first");
        assert_eq!(ws.next_text().await.unwrap().len(), 100_000);
        assert_eq!(ws.next_text().await.unwrap(), "fragmented");
        let closed = ws.next_text().await.unwrap_err().to_string();
        assert!(closed.contains("1001"), "{closed}");
        assert_eq!(server.await.unwrap(), (OP_PONG, b"p".to_vec()));
    }
}
