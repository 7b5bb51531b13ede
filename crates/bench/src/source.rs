//! Source addresses for bench connections (`--source-ips`,
//! `--hostile-source-ips`).
//!
//! A server may budget per client address (`--max-connections-per-ip`,
//! `--max-connects-per-ip-per-sec`). On loopback every bench connection
//! comes from 127.0.0.1, so all of them (honest and hostile alike) would
//! share one budget, which no real deployment looks like. Bound to the
//! addresses of a range, in turn, each connection is its own client
//! address. Linux routes all of 127.0.0.0/8 to `lo`, so any 127.x.y.z can be
//! bound without setup; addresses of another range must be configured on an
//! interface first.
//!
//! Without a range the kernel chooses the source, as it always did.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::IpNet;
use tokio::net::{TcpSocket, TcpStream};

/// A range of addresses in CIDR notation (`127.1.0.0/16`, `fd00::/112`), or
/// one address (`127.2.0.1`, a `/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(IpNet);

/// The address as a number, for either family.
fn bits_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl Cidr {
    /// How many addresses the range holds (`u128::MAX` for all of IPv6).
    pub fn size(&self) -> u128 {
        1u128
            .checked_shl(u32::from(self.0.max_prefix_len() - self.0.prefix_len()))
            .unwrap_or(u128::MAX)
    }

    /// The `n`-th address of the range, counted from its first (0); `None`
    /// past its end.
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        if n >= self.size() {
            return None;
        }
        let bits = bits_of(self.0.network()) + n;
        Some(match self.0 {
            // In range: the sum stays within the family's width.
            IpNet::V4(_) => IpAddr::V4(Ipv4Addr::from(bits as u32)),
            IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(bits)),
        })
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.0.contains(&other.0.network()) || other.0.contains(&self.0.network())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let bad =
            |why: String| format!("`{text}` is not an address range like 127.1.0.0/16: {why}");
        let net = match text.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => match text.parse::<IpAddr>() {
                Ok(one) => IpNet::from(one),
                Err(_) => return Err(bad("not an IP address with a valid prefix length".into())),
            },
        };
        if net != net.trunc() {
            return Err(bad(format!(
                "the address has bits set past the prefix (the range is {})",
                net.trunc()
            )));
        }
        Ok(Cidr(net))
    }
}

/// `--source-ips`: the addresses of a range dealt to connections in turn
/// (the first, the second, ..., and again from the first after the last).
///
/// Clones share the turn, so every connection of a run, whichever part of
/// the scenario opens it, gets the next address.
#[derive(Debug, Clone)]
pub struct SourceIps {
    range: Cidr,
    dealt: Arc<AtomicU64>,
}

impl SourceIps {
    pub fn new(range: Cidr) -> SourceIps {
        SourceIps {
            range,
            dealt: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn range(&self) -> Cidr {
        self.range
    }

    /// The address for the next connection.
    pub fn next_ip(&self) -> IpAddr {
        let n = u128::from(self.dealt.fetch_add(1, Ordering::Relaxed)) % self.range.size();
        self.range
            .nth(n)
            .expect("an index below the range's length is in the range")
    }
}

impl FromStr for SourceIps {
    type Err = String;

    fn from_str(text: &str) -> Result<SourceIps, String> {
        text.parse().map(SourceIps::new)
    }
}

/// Opens a TCP connection to `host:port`: from `source` (the kernel picks
/// the port) when given, else from the address and port the kernel picks.
///
/// `host` may be a name, an address, or an IPv6 address in brackets as in a
/// URL. With a source, only the host's addresses of the source's family are
/// tried.
pub async fn dial(host: &str, port: u16, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let Some(source) = source else {
        return TcpStream::connect((host, port)).await;
    };
    let mut last_error = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        if addr.is_ipv4() != source.is_ipv4() {
            continue;
        }
        let socket = if source.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|e| io::Error::new(e.kind(), format!("bind to {source}: {e}")))?;
        match socket.connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!(
                "{host} has no IPv{} address to reach from {source}",
                if source.is_ipv4() { 4 } else { 6 }
            ),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn nth_address_of_a_range() {
        let r = cidr("127.1.0.0/16");
        assert_eq!(r.size(), 65_536);
        assert_eq!(r.nth(0), Some(ip("127.1.0.0")));
        assert_eq!(r.nth(1), Some(ip("127.1.0.1")));
        assert_eq!(r.nth(256), Some(ip("127.1.1.0")));
        assert_eq!(r.nth(9_999), Some(ip("127.1.39.15")));
        assert_eq!(r.nth(65_535), Some(ip("127.1.255.255")));
        assert_eq!(r.nth(65_536), None);

        let one = cidr("127.2.0.7");
        assert_eq!(
            (one.size(), one.nth(0), one.nth(1)),
            (1, Some(ip("127.2.0.7")), None)
        );

        let v6 = cidr("fd00::/120");
        assert_eq!(v6.size(), 256);
        assert_eq!(v6.nth(255), Some(ip("fd00::ff")));
        assert_eq!(v6.nth(256), None);
        assert_eq!(cidr("::/0").nth(1), Some(ip("::1")));
        assert_eq!(cidr("0.0.0.0/0").size(), 1 << 32);
        assert_eq!(
            cidr("0.0.0.0/0").nth(u128::from(u32::MAX)),
            Some(ip("255.255.255.255"))
        );
    }

    #[test]
    fn dealing_goes_round_and_clones_share_the_turn() {
        let deal = SourceIps::new(cidr("127.2.0.0/30"));
        let other = deal.clone();
        let got: Vec<IpAddr> = (0..6)
            .map(|i| {
                if i % 2 == 0 {
                    deal.next_ip()
                } else {
                    other.next_ip()
                }
            })
            .collect();
        let want: Vec<IpAddr> = ["0", "1", "2", "3", "0", "1"]
            .iter()
            .map(|last| ip(&format!("127.2.0.{last}")))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn bad_ranges_are_refused_with_the_reason() {
        for (text, why) in [
            ("127.1.0.0/33", "valid prefix length"),
            ("fd00::/129", "valid prefix length"),
            ("127.1.0.0/", "valid prefix length"),
            ("127.1.0.0/x", "valid prefix length"),
            ("127.1.0/16", "not an IP address"),
            ("localhost/8", "not an IP address"),
            ("", "not an IP address"),
            ("127.1.2.3/16", "the range is 127.1.0.0/16"),
            ("fd00::1/112", "the range is fd00::/112"),
        ] {
            let err = text.parse::<Cidr>().unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn overlap() {
        assert!(cidr("127.0.0.0/8").overlaps(&cidr("127.2.0.0/24")));
        assert!(cidr("127.2.0.0/24").overlaps(&cidr("127.2.0.255")));
        assert!(!cidr("127.1.0.0/16").overlaps(&cidr("127.2.0.0/24")));
        assert!(!cidr("127.1.0.0/16").overlaps(&cidr("::/0")));
    }

    #[tokio::test]
    async fn dial_binds_the_source() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = dial("127.0.0.1", port, Some(ip("127.3.4.5")))
            .await
            .unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), ip("127.3.4.5"));
        assert_eq!(stream.local_addr().unwrap().ip(), ip("127.3.4.5"));

        let _plain = dial("127.0.0.1", port, None).await.unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), ip("127.0.0.1"));

        let err = dial("127.0.0.1", port, Some(ip("::1"))).await.unwrap_err();
        assert!(err.to_string().contains("no IPv6 address"), "{err}");
    }
}
