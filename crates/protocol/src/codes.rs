//! Error codes carried by `error` frames and WebSocket close codes.

use serde::{Deserialize, Serialize};

/// The `code` of an `error` frame. An error never closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not an object, or a missing or ill-typed field.
    BadRequest,
    /// A `type` this server does not know.
    UnknownType,
    /// A room name outside the limits.
    InvalidRoom,
    /// Message text longer than the limit.
    TooLong,
    /// The room must be joined first.
    NotJoined,
    /// Not allowed for this user or connection.
    Forbidden,
    /// Extension: the message a request names does not exist (never
    /// stored, purged, deleted, or not a message).
    NotFound,
    /// Too many requests of this kind; retry later.
    RateLimited,
    /// The server cannot take more work right now; retry later.
    Overloaded,
    /// The server failed (storage unavailable, for example); retry later.
    Internal,
}

impl ErrorCode {
    /// The wire spelling, as in the contract.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::TooLong => "too_long",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes the server uses, with the meaning the contract gives
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum CloseCode {
    /// Normal closure.
    Normal = 1000,
    /// The server is shutting down, or the connection stopped answering
    /// heartbeats: reconnect (elsewhere in a cluster) and resume.
    GoingAway = 1001,
    /// The peer broke the WebSocket protocol (RFC 6455).
    ProtocolError = 1002,
    /// A binary frame arrived; the protocol is text only.
    Unsupported = 1003,
    /// A text frame that is not valid UTF-8 (RFC 6455).
    InvalidPayload = 1007,
    /// Policy violation (origin refused).
    Policy = 1008,
    /// A frame or message larger than the configured limit.
    TooBig = 1009,
    /// The server failed.
    Internal = 1011,
    /// The connection could not keep up with its rooms and was dropped:
    /// resume with `join` + `since`.
    Overloaded = 1013,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        self as u16
    }
}
