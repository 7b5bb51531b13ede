//! The server side of the WebSocket opening handshake (RFC 6455 §4.2) on
//! an axum request: validates the upgrade, answers `101 Switching
//! Protocols`, and hands back hyper's pending upgrade.
//!
//! We do this instead of using axum's `WebSocketUpgrade` because that
//! extractor only yields its own socket type, and we need the raw stream to
//! own the write path (see [`super::socket`]).

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use tungstenite::handshake::derive_accept_key;

/// Checks that `request` asks for a WebSocket and answers it. On success the
/// response must be returned to the client before the upgrade completes.
pub fn accept(request: &mut Request) -> Result<(Response, OnUpgrade), Refusal> {
    if request.method() != Method::GET {
        return Err(refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "WebSocket upgrades use GET",
        ));
    }
    let headers = request.headers();
    if !has_token(headers, header::CONNECTION, "upgrade")
        || !has_token(headers, header::UPGRADE, "websocket")
    {
        return Err(refuse(
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint speaks WebSocket: send Connection: Upgrade and Upgrade: websocket",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(Refusal {
            status: StatusCode::UPGRADE_REQUIRED,
            why: "unsupported WebSocket version; use 13",
            offer_version: true,
        });
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key is missing",
        ));
    };
    let accept = derive_accept_key(key.as_bytes());
    let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        return Err(refuse(
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded",
        ));
    };
    let response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(axum::body::Body::empty())
        .map_err(|_| refuse(StatusCode::INTERNAL_SERVER_ERROR, "handshake failed"))?;
    Ok((response, on_upgrade))
}

/// Why an upgrade was refused; becomes a plain-text HTTP error.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    why: &'static str,
    /// Tells the client which version we speak (RFC 6455 §4.4).
    offer_version: bool,
}

fn refuse(status: StatusCode, why: &'static str) -> Refusal {
    Refusal {
        status,
        why,
        offer_version: false,
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.why).into_response();
        if self.offer_version {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

/// Whether the comma-separated header `name` lists `token`
/// (case-insensitively), as `Connection: keep-alive, Upgrade` does.
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|part| part.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder().method(Method::GET).uri("/ws");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder
            .body(axum::body::Body::empty())
            .expect("valid request")
    }

    #[test]
    fn finds_tokens_in_lists_whatever_the_case() {
        let r = request(&[("connection", "keep-alive, Upgrade")]);
        assert!(has_token(r.headers(), header::CONNECTION, "upgrade"));
        let r = request(&[("connection", "keep-alive")]);
        assert!(!has_token(r.headers(), header::CONNECTION, "upgrade"));
    }

    #[test]
    fn refuses_what_is_not_a_websocket_upgrade() {
        let mut plain = request(&[]);
        let status = accept(&mut plain).map(|_| ()).unwrap_err().status;
        assert_eq!(status, StatusCode::UPGRADE_REQUIRED);

        let mut old = request(&[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "8"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        let refused = accept(&mut old).map(|_| ()).unwrap_err().into_response();
        assert_eq!(refused.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(refused.headers()[header::SEC_WEBSOCKET_VERSION], "13");

        let mut keyless = request(&[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
        ]);
        let status = accept(&mut keyless).map(|_| ()).unwrap_err().status;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
