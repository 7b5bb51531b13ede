//! Errors of the client library.
//!
//! A request can fail in three ways, and callers react differently to each,
//! so they are separate variants: the server answered with an `error` frame
//! ([`Error::Server`], carrying the contract's [`ErrorCode`] to branch on);
//! no answer came in time ([`Error::Timeout`]); or the client could not talk
//! to the server at all (the connection variants).

use std::time::Duration;

use chat_protocol::ErrorCode;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the request with an `error` frame. The connection
    /// stays usable; branch on `code`, never on `message` (which is for
    /// people and may change).
    #[error("{code}: {message}")]
    Server { code: ErrorCode, message: String },

    /// No reply within the configured timeout. For a send this does not mean
    /// the message was lost: it may have been stored. Retrying with the same
    /// `id` is always safe.
    #[error("no reply within {0:?}")]
    Timeout(Duration),

    /// The URL cannot be used for a WebSocket connection.
    #[error("invalid server URL `{url}`: {why}")]
    InvalidUrl { url: String, why: String },

    /// The token cannot be sent in an HTTP header (it holds control
    /// characters or non-ASCII text).
    #[error("the token is not valid in an HTTP header")]
    InvalidToken,

    /// The server answered the upgrade with an HTTP error instead of opening
    /// a WebSocket: 401 for a missing or bad token, 400 for a bad name.
    /// Retrying with the same credentials will not help.
    #[error("the server refused the connection: HTTP {status}{}", body_suffix(.body))]
    Rejected { status: u16, body: String },

    /// The connection could not be opened, or broke while opening.
    #[error("cannot connect to {url}")]
    Connect {
        url: String,
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },

    /// The TLS handshake of a `wss://` connection failed. Most often the
    /// server's certificate is not trusted
    /// (`rustls::Error::InvalidCertificate`): self-signed or from a private
    /// CA (add that CA with
    /// [`ClientBuilder::root_certificates_pem`](crate::ClientBuilder::root_certificates_pem)),
    /// expired, or issued for another name than the URL's host. Trying
    /// again with the same trust will not help.
    #[error("the TLS handshake failed")]
    Tls {
        url: String,
        #[source]
        source: rustls::Error,
    },

    /// Root certificates given to
    /// [`ClientBuilder::root_certificates_pem`](crate::ClientBuilder::root_certificates_pem)
    /// cannot be used: the bytes are not PEM, hold no certificate, or a
    /// certificate is not one a root can be made of.
    #[error("invalid root certificates: {why}")]
    InvalidRootCertificates { why: String },

    /// A `wss://` URL, and no certificate authority to trust: the
    /// platform's store is empty or unreadable (no CA bundle installed, or
    /// `SSL_CERT_FILE`/`SSL_CERT_DIR` point at nothing), and no root was
    /// given with
    /// [`ClientBuilder::root_certificates_pem`](crate::ClientBuilder::root_certificates_pem).
    #[error(
        "no trusted root certificates: the platform's store has none, and none were given \
         (install a CA bundle, or name the server's CA)"
    )]
    NoRootCertificates,

    /// The server broke the protocol while the connection was opening (for
    /// example, its first frame was not `welcome`).
    #[error("protocol error: {0}")]
    Protocol(String),

    /// The client is closed: [`Client::close`](crate::Client::close) was
    /// called, or the connection ended for good (see
    /// [`Event::Closed`](crate::Event::Closed)).
    #[error("the client is closed")]
    Closed,

    /// The request was abandoned because of a later call, e.g. a `join` still
    /// waiting for its reply when `leave` was called for the same room.
    #[error("cancelled: {0}")]
    Cancelled(&'static str),
}

fn body_suffix(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        String::new()
    } else {
        format!(" ({body})")
    }
}

impl Error {
    /// The contract's error code, when the server refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether sending the same request again later (with the same `id` for
    /// a send) may succeed: the server was busy or failed, or no reply came.
    /// Client bugs (`bad_request`, `invalid_room`, ...) and refusals are not
    /// retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Server { code, .. } => matches!(
                code,
                ErrorCode::RateLimited | ErrorCode::Overloaded | ErrorCode::Internal
            ),
            Error::Timeout(_) | Error::Connect { .. } => true,
            _ => false,
        }
    }
}

/// `error` and its sources on one line, skipping a source whose text an
/// outer error already includes (wrapped I/O errors often repeat it).
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_includes_causes_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::Connect {
            url: "ws://h/ws".into(),
            source: Box::new(io.into()),
        };
        assert_eq!(
            describe(&e),
            "cannot connect to ws://h/ws: IO error: refused"
        );
    }

    #[test]
    fn server_errors_expose_their_code() {
        let e = Error::Server {
            code: ErrorCode::InvalidRoom,
            message: "room name must not be empty".into(),
        };
        assert_eq!(e.code(), Some(ErrorCode::InvalidRoom));
        assert_eq!(e.to_string(), "invalid_room: room name must not be empty");
        assert!(!e.is_retryable());
    }

    #[test]
    fn refused_changes_are_not_retryable() {
        // Someone else's message, or none at all: asking again cannot help.
        for code in [ErrorCode::Forbidden, ErrorCode::NotFound] {
            let e = Error::Server {
                code,
                message: String::new(),
            };
            assert!(!e.is_retryable(), "{code}");
        }
    }

    #[test]
    fn busy_server_errors_are_retryable() {
        for code in [
            ErrorCode::RateLimited,
            ErrorCode::Overloaded,
            ErrorCode::Internal,
        ] {
            let e = Error::Server {
                code,
                message: String::new(),
            };
            assert!(e.is_retryable(), "{code}");
        }
        assert!(Error::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(!Error::Closed.is_retryable());
    }

    #[test]
    fn rejection_shows_the_body_when_there_is_one() {
        let e = Error::Rejected {
            status: 400,
            body: "invalid name\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "the server refused the connection: HTTP 400 (invalid name)"
        );
        let e = Error::Rejected {
            status: 401,
            body: String::new(),
        };
        assert_eq!(e.to_string(), "the server refused the connection: HTTP 401");
    }
}
