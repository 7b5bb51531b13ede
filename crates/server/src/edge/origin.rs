//! Which web pages may talk to the chat endpoints: the `Origin` check.
//!
//! A browser tags every cross-site request with the page's origin, and
//! lets the page read the answer only if the server names that origin in
//! its CORS headers. Refusing a request outright, not just leaving the
//! headers out, matters too: a WebSocket is not subject to CORS at all,
//! and a refused long-polling handshake must not leave a session behind.
//!
//! Allowed: requests without `Origin` (not from a browser page: Node,
//! the CLI, curl), the server's own origin (the `Origin` names the host the
//! request was sent to), and origins matching the configured list. The
//! default list is the local machine on any port, so that a front end on a
//! development server (`http://localhost:5173`) reaches the chat server on
//! `http://localhost:3000` without any setting.

use axum::http::uri::{Authority, Scheme};
use axum::http::{HeaderMap, HeaderValue, Uri, header};

/// Origins allowed by default: this machine, any port.
pub const DEFAULT_ALLOWED_ORIGINS: [&str; 6] = [
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://[::1]:*",
    "https://[::1]:*",
];

/// The configured origins (`--allowed-origins`), parsed once at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigins {
    /// `*` was given: any origin.
    any: bool,
    patterns: Vec<Pattern>,
}

/// One allowed origin: `scheme://host[:port]`, the port possibly `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    scheme: String,
    host: String,
    /// `None` matches any port.
    port: Option<u16>,
}

/// A list entry that is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{entry}` is not an origin: use scheme://host[:port] (port `*` for any), or `*` for every site"
)]
pub struct BadOrigin {
    entry: String,
}

impl AllowedOrigins {
    /// Parses entries such as `https://chat.example.com`,
    /// `http://localhost:*` or `*`. Empty entries are skipped, so an empty
    /// list allows only the server's own origin.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowedOrigins, BadOrigin> {
        let mut allowed = AllowedOrigins {
            any: false,
            patterns: Vec::new(),
        };
        for entry in entries.iter().map(|e| e.as_ref().trim()) {
            match entry {
                "" => {}
                "*" => allowed.any = true,
                _ => allowed
                    .patterns
                    .push(Pattern::parse(entry).ok_or_else(|| BadOrigin {
                        entry: entry.to_owned(),
                    })?),
            }
        }
        Ok(allowed)
    }

    /// Whether a request with these headers may proceed.
    pub fn allows_request(&self, headers: &HeaderMap) -> bool {
        match headers.get(header::ORIGIN) {
            None => true,
            Some(origin) => self.allows(origin, headers.get(header::HOST)),
        }
    }

    /// Whether a page from `origin` may talk to us, given the `Host` the
    /// request was sent to.
    pub fn allows(&self, origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
        if self.any {
            return true;
        }
        let Some(origin) = Origin::parse(origin) else {
            return false;
        };
        host.and_then(|host| host.to_str().ok()?.parse::<Authority>().ok())
            .is_some_and(|host| origin.is_at(&host))
            || self.patterns.iter().any(|p| p.matches(&origin))
    }
}

impl Default for AllowedOrigins {
    fn default() -> Self {
        match AllowedOrigins::parse(&DEFAULT_ALLOWED_ORIGINS) {
            Ok(allowed) => allowed,
            Err(_) => unreachable!("the default origins parse"),
        }
    }
}

/// An `Origin` header's value, normalised for comparison.
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    fn parse(value: &HeaderValue) -> Option<Origin> {
        let uri: Uri = value.to_str().ok()?.parse().ok()?;
        let scheme = uri.scheme()?;
        let authority = uri.authority()?;
        // An origin is exactly scheme://host[:port]: no path, no user info.
        if uri
            .path_and_query()
            .is_some_and(|p| !matches!(p.as_str(), "" | "/"))
            || authority.as_str().contains('@')
        {
            return None;
        }
        Some(Origin {
            scheme: scheme.as_str().to_ascii_lowercase(),
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16().or_else(|| default_port(scheme))?,
        })
    }

    /// Whether this origin is the host the request was sent to.
    fn is_at(&self, host: &Authority) -> bool {
        let port = host.port_u16().or(match self.scheme.as_str() {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        });
        host.host().eq_ignore_ascii_case(&self.host) && port == Some(self.port)
    }
}

fn default_port(scheme: &Scheme) -> Option<u16> {
    if *scheme == Scheme::HTTPS {
        Some(443)
    } else if *scheme == Scheme::HTTP {
        Some(80)
    } else {
        None
    }
}

impl Pattern {
    fn parse(entry: &str) -> Option<Pattern> {
        let (origin, any_port) = match entry.strip_suffix(":*") {
            Some(origin) => (origin, true),
            None => (entry, false),
        };
        let origin = Origin::parse(&HeaderValue::from_str(origin).ok()?)?;
        Some(Pattern {
            scheme: origin.scheme,
            host: origin.host,
            port: (!any_port).then_some(origin.port),
        })
    }

    fn matches(&self, origin: &Origin) -> bool {
        self.scheme == origin.scheme
            && self.host == origin.host
            && self.port.is_none_or(|port| port == origin.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(list: &AllowedOrigins, origin: &str, host: &str) -> bool {
        list.allows(
            &HeaderValue::from_str(origin).unwrap(),
            Some(&HeaderValue::from_str(host).unwrap()),
        )
    }

    #[test]
    fn by_default_this_machine_and_the_server_itself() {
        let list = AllowedOrigins::default();
        assert!(allowed(&list, "http://localhost:5173", "localhost:3000"));
        assert!(allowed(&list, "http://127.0.0.1:8080", "127.0.0.1:3000"));
        assert!(allowed(&list, "http://[::1]:5173", "[::1]:3000"));
        assert!(allowed(&list, "https://LOCALHOST", "localhost:3000"));
        // Same origin, whatever the name.
        assert!(allowed(
            &list,
            "https://chat.example.com",
            "chat.example.com"
        ));
        assert!(allowed(
            &list,
            "http://chat.example.com:8080",
            "chat.example.com:8080"
        ));
        // Other sites, and lookalikes.
        assert!(!allowed(&list, "https://evil.example", "chat.example.com"));
        assert!(!allowed(
            &list,
            "http://chat.example.com:8081",
            "chat.example.com:8080"
        ));
        assert!(!allowed(
            &list,
            "http://localhost.evil.example",
            "chat.example.com"
        ));
        assert!(!allowed(&list, "null", "chat.example.com"));
        assert!(!allowed(
            &list,
            "http://user@localhost:1",
            "chat.example.com"
        ));
    }

    #[test]
    fn a_configured_list_replaces_the_default() {
        let list =
            AllowedOrigins::parse(&["https://app.example.com", "http://10.0.0.5:*"]).unwrap();
        assert!(allowed(
            &list,
            "https://app.example.com",
            "chat.example.com"
        ));
        assert!(allowed(
            &list,
            "https://app.example.com:443",
            "chat.example.com"
        ));
        assert!(!allowed(
            &list,
            "http://app.example.com",
            "chat.example.com"
        ));
        assert!(allowed(&list, "http://10.0.0.5:9000", "chat.example.com"));
        assert!(!allowed(&list, "http://localhost:5173", "chat.example.com"));
        assert!(allowed(
            &list,
            "https://chat.example.com",
            "chat.example.com"
        ));

        let any = AllowedOrigins::parse(&["*"]).unwrap();
        assert!(allowed(
            &any,
            "https://anywhere.example",
            "chat.example.com"
        ));
        let only_self = AllowedOrigins::parse(&[""]).unwrap();
        assert!(!allowed(
            &only_self,
            "http://localhost:5173",
            "localhost:3000"
        ));
    }

    #[test]
    fn requests_without_origin_are_not_from_pages() {
        let list = AllowedOrigins::parse::<&str>(&[]).unwrap();
        assert!(list.allows_request(&HeaderMap::new()));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in [
            "localhost:3000",
            "https://example.com/path",
            "ftp//x",
            "http://",
        ] {
            let e = AllowedOrigins::parse(&[bad]).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
