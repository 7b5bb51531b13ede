//! Why the server closes a WebSocket connection: every reason, with its
//! close code and the text the client reads, defined once for both
//! transports (`/ws` and Socket.IO's direct WebSocket path), so that the
//! same cause never reaches clients as two codes or two wordings.
//! docs/protocol.md §8 lists them.

use chat_protocol::CloseCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The connection's queue filled: it must resume with `join` + `since`.
    TooSlow,
    /// The server is shutting down (also: reconnect elsewhere).
    ShuttingDown,
    /// Nothing heard for two heartbeat intervals.
    HeartbeatTimeout,
    /// The operator disconnected the user (`POST /api/users/{id}/disconnect`).
    Kicked,
    /// No request but `ping` for `--idle-timeout-secs`.
    Idle,
    /// The operator banned the user from the server (`PUT /api/bans/{user}`).
    Banned,
    /// A binary frame on `/ws`, which speaks JSON text only.
    BinaryFrame,
    /// A frame or message over `--max-frame-bytes`.
    FrameTooBig,
    /// A text frame that is not UTF-8.
    InvalidUtf8,
    /// A violation of RFC 6455.
    ProtocolError,
    /// Socket.IO: a packet Engine.IO cannot read.
    MalformedEngineIo,
    /// Socket.IO: a packet the Socket.IO codec cannot read.
    MalformedSocketIo,
    /// Socket.IO: no namespace `CONNECT` within its time limit.
    NoSocketIoConnect,
    /// Socket.IO: the client disconnected its namespace.
    Disconnected,
}

impl CloseReason {
    pub(crate) fn code(self) -> CloseCode {
        match self {
            CloseReason::TooSlow => CloseCode::Overloaded,
            CloseReason::ShuttingDown | CloseReason::HeartbeatTimeout => CloseCode::GoingAway,
            CloseReason::Kicked | CloseReason::Banned | CloseReason::NoSocketIoConnect => {
                CloseCode::Policy
            }
            CloseReason::Idle | CloseReason::Disconnected => CloseCode::Normal,
            CloseReason::BinaryFrame => CloseCode::Unsupported,
            CloseReason::FrameTooBig => CloseCode::TooBig,
            CloseReason::InvalidUtf8 => CloseCode::InvalidPayload,
            CloseReason::ProtocolError
            | CloseReason::MalformedEngineIo
            | CloseReason::MalformedSocketIo => CloseCode::ProtocolError,
        }
    }

    pub(crate) fn text(self) -> &'static str {
        match self {
            CloseReason::TooSlow => "too slow for this room's traffic; resume with join and since",
            CloseReason::ShuttingDown => "server shutting down",
            CloseReason::HeartbeatTimeout => "heartbeat timeout",
            CloseReason::Kicked => "disconnected by the server's operator",
            CloseReason::Idle => "idle timeout",
            CloseReason::Banned => "banned from this server",
            CloseReason::BinaryFrame => "binary frames are not accepted; send JSON text",
            CloseReason::FrameTooBig => "frame too big",
            CloseReason::InvalidUtf8 => "text frame is not valid UTF-8",
            CloseReason::ProtocolError => "WebSocket protocol error",
            CloseReason::MalformedEngineIo => "malformed Engine.IO packet",
            CloseReason::MalformedSocketIo => "malformed Socket.IO packet",
            CloseReason::NoSocketIoConnect => "no Socket.IO CONNECT in time",
            CloseReason::Disconnected => "disconnected",
        }
    }

    /// The close frame's code and text.
    pub(crate) fn frame(self) -> (u16, &'static str) {
        (self.code().code(), self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_reason_fits_its_frame() {
        // RFC 6455: a close frame's payload (code and reason) is at most
        // 125 bytes.
        for reason in [
            CloseReason::TooSlow,
            CloseReason::ShuttingDown,
            CloseReason::HeartbeatTimeout,
            CloseReason::Kicked,
            CloseReason::Idle,
            CloseReason::Banned,
            CloseReason::BinaryFrame,
            CloseReason::FrameTooBig,
            CloseReason::InvalidUtf8,
            CloseReason::ProtocolError,
            CloseReason::MalformedEngineIo,
            CloseReason::MalformedSocketIo,
            CloseReason::NoSocketIoConnect,
            CloseReason::Disconnected,
        ] {
            assert!(2 + reason.text().len() <= 125, "{reason:?}");
        }
    }
}
