//! `--allowed-hosts`: which names the server answers to, against DNS
//! rebinding.
//!
//! A page on `http://evil.example:3000` whose name the attacker points at
//! 127.0.0.1 after it has loaded is, to the browser, still same-origin with
//! evil.example: it may read our answers, and its `Origin` equals the
//! `Host` it sends, so the origin check alone takes it for our own page.
//! What gives it away is that `Host`: a server on loopback is reached as
//! `localhost` or by its address, never as evil.example. So, listening on
//! a loopback address, the server answers only those names (421
//! otherwise); listening on any other address it answers every name unless
//! a list is given (a public server is reached by names the operator knows
//! and may list). Ports are not compared: the port of a rebound name is the
//! attacker's choice anyway. Requests without `Host` (HTTP/1.0, not
//! browsers) pass.

use std::net::SocketAddr;

use axum::http::HeaderValue;
use axum::http::uri::Authority;

/// The names served, parsed once at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    /// Every name (a public listen address without a list, or `*`).
    any: bool,
    /// Lowercase, without a trailing dot; `*.example.com` also allows any
    /// name ending in `.example.com`.
    names: Vec<String>,
}

/// A list entry that is not a host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{entry}` is not a host name: use a name (`chat.example.com`, `*.example.com`), an IP address, or `*`"
)]
pub struct BadHost {
    entry: String,
}

/// Loopback names served by default on a loopback listen address.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl AllowedHosts {
    /// The configured list, or without one the default for `listen`.
    pub fn new<S: AsRef<str>>(
        entries: Option<&[S]>,
        listen: SocketAddr,
    ) -> Result<AllowedHosts, BadHost> {
        match entries {
            Some(entries) => Self::parse(entries),
            None => Ok(Self::default_for(listen)),
        }
    }

    fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowedHosts, BadHost> {
        let mut allowed = AllowedHosts {
            any: false,
            names: Vec::new(),
        };
        for entry in entries.iter().map(|e| e.as_ref().trim()) {
            match entry {
                "" => {}
                "*" => allowed.any = true,
                _ => allowed.names.push(normalize(entry).ok_or_else(|| BadHost {
                    entry: entry.to_owned(),
                })?),
            }
        }
        Ok(allowed)
    }

    /// On loopback, the loopback names and the listen address; elsewhere, any.
    fn default_for(listen: SocketAddr) -> AllowedHosts {
        if !listen.ip().is_loopback() {
            return AllowedHosts {
                any: true,
                names: Vec::new(),
            };
        }
        let mut names: Vec<String> = LOOPBACK_NAMES.iter().map(|&n| n.to_owned()).collect();
        let own = match listen {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        };
        if !names.contains(&own) {
            names.push(own);
        }
        AllowedHosts { any: false, names }
    }

    /// Whether a request carrying this `Host` is for us.
    pub fn allows(&self, host: Option<&HeaderValue>) -> bool {
        if self.any {
            return true;
        }
        let Some(host) = host else {
            return true;
        };
        let Some(name) = host.to_str().ok().and_then(|h| normalize(h.trim())) else {
            return false;
        };
        self.names
            .iter()
            .any(|allowed| match allowed.strip_prefix('*') {
                Some(suffix) => name.ends_with(suffix) && name.len() > suffix.len(),
                None => *allowed == name,
            })
    }
}

/// Whether a request's `Host` (if any) names this machine: `localhost` or
/// a loopback address, whatever `--allowed-hosts` says. The keyless API
/// asks this of every caller (a rebound name is loopback to us too).
pub fn names_loopback(host: Option<&HeaderValue>) -> bool {
    let Some(host) = host else {
        return true;
    };
    let Some(name) = host.to_str().ok().and_then(|h| normalize(h.trim())) else {
        return false;
    };
    name == "localhost"
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// `Host`'s name without the port, lowercase, without a trailing dot
/// (`localhost.` is `localhost`); `None` if it is not an authority. A list
/// entry may start with `*.`.
fn normalize(host: &str) -> Option<String> {
    let (wildcard, rest) = match host.strip_prefix("*.") {
        Some(rest) => ("*.", rest),
        None => ("", host),
    };
    let authority: Authority = rest.parse().ok()?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    let name = authority.host().trim_end_matches('.').to_ascii_lowercase();
    Some(format!("{wildcard}{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(hosts: &AllowedHosts, host: &str) -> bool {
        hosts.allows(Some(&HeaderValue::from_str(host).unwrap()))
    }

    #[test]
    fn on_loopback_only_loopback_names_by_default() {
        let hosts = AllowedHosts::new::<&str>(None, "127.0.0.1:3000".parse().unwrap()).unwrap();
        for good in [
            "localhost:3000",
            "LOCALHOST",
            "localhost.:3000",
            "127.0.0.1:3000",
            "127.0.0.1:9",
            "[::1]:3000",
        ] {
            assert!(allows(&hosts, good), "{good}");
        }
        for bad in [
            "evil.example:3000",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "user@localhost",
            "",
        ] {
            assert!(!allows(&hosts, bad), "{bad}");
        }
        assert!(hosts.allows(None), "no Host: not a browser");
        // Another loopback address is its own name.
        let other = AllowedHosts::new::<&str>(None, "127.0.0.7:80".parse().unwrap()).unwrap();
        assert!(allows(&other, "127.0.0.7") && allows(&other, "localhost"));
        let v6 = AllowedHosts::new::<&str>(None, "[::1]:3000".parse().unwrap()).unwrap();
        assert!(allows(&v6, "[::1]:3000") && !allows(&v6, "evil.example"));
    }

    #[test]
    fn elsewhere_any_name_unless_listed() {
        let public = AllowedHosts::new::<&str>(None, "0.0.0.0:3000".parse().unwrap()).unwrap();
        assert!(allows(&public, "evil.example:3000"));
        let listed = AllowedHosts::new(
            Some(&["chat.example.com", "*.chat.example.org"]),
            "0.0.0.0:443".parse().unwrap(),
        )
        .unwrap();
        assert!(allows(&listed, "chat.example.com"));
        assert!(allows(&listed, "Chat.Example.Com:443"));
        assert!(allows(&listed, "eu.chat.example.org"));
        assert!(
            !allows(&listed, "chat.example.org"),
            "the wildcard needs a label"
        );
        assert!(!allows(&listed, "localhost"), "a list replaces the default");
        let any = AllowedHosts::new(Some(&["*"]), "127.0.0.1:1".parse().unwrap()).unwrap();
        assert!(allows(&any, "evil.example"));
    }

    #[test]
    fn loopback_names_are_this_machine() {
        let named = |host: &str| names_loopback(Some(&HeaderValue::from_str(host).unwrap()));
        for local in [
            "localhost:3000",
            "LocalHost.",
            "127.0.0.1",
            "127.9.9.9:1",
            "[::1]:80",
        ] {
            assert!(named(local), "{local}");
        }
        for other in [
            "evil.example:3000",
            "localhost.evil.example",
            "192.0.2.1",
            "[::2]",
        ] {
            assert!(!named(other), "{other}");
        }
        assert!(names_loopback(None));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in ["http://x/", "a b", "x@y"] {
            let e = AllowedHosts::new(Some(&[bad]), "0.0.0.0:1".parse().unwrap()).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
