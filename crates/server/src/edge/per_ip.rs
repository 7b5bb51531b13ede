//! `--max-connections-per-ip`: how many connections one client address
//! may hold open at once.
//!
//! One host opening thousands of connections would otherwise use up the
//! node's memory and file descriptors for everyone. Connections are counted
//! from accept, whatever they become (a WebSocket, a Socket.IO long-polling
//! request, a page load, or nothing at all: counting only finished upgrades
//! let a client hold any number of connections that never upgrade). A
//! connection takes a [`Slot`] at accept, kept by its stream for its whole
//! life, through the WebSocket upgrade, and given back when the stream is
//! dropped. An address with no slot left still gets an answer: its
//! connection is served a 429 for its first request, then closed.
//!
//! The address is the TCP peer's: clients behind one NAT or proxy share a
//! budget, so size the limit for that. IPv4-mapped IPv6 addresses count as
//! their IPv4 address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_core::sync::lock;

/// Open connections per address; `None` when there is no limit.
#[derive(Debug, Clone, Default)]
pub struct PerIp {
    max: Option<usize>,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's share of its address's budget, returned on drop.
#[derive(Debug)]
pub struct Slot {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// The answer to every request of a connection that got no slot: 429,
/// then the connection closes.
pub fn refused(max: usize) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONNECTION, HeaderValue::from_static("close"))],
        format!("at most {max} connections per address; close one first\n"),
    )
        .into_response()
}

impl PerIp {
    pub fn new(max: Option<usize>) -> PerIp {
        PerIp {
            max,
            counts: Arc::default(),
        }
    }

    /// Takes a slot for a connection from `ip`. `Ok(None)` when nothing is
    /// counted (no limit); `Err` with the limit when the address has no
    /// slot left.
    pub fn acquire(&self, ip: IpAddr) -> Result<Option<Slot>, usize> {
        let Some(max) = self.max else {
            return Ok(None);
        };
        let ip = ip.to_canonical();
        let mut counts = lock(&self.counts);
        let count = counts.entry(ip).or_insert(0);
        if *count >= max {
            return Err(max);
        }
        *count += 1;
        Ok(Some(Slot {
            ip,
            counts: self.counts.clone(),
        }))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_address_and_returned_on_drop() {
        let limiter = PerIp::new(Some(2));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = limiter.acquire(a).unwrap();
        let _second = limiter.acquire(a).unwrap();
        assert_eq!(limiter.acquire(a).unwrap_err(), 2);
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            limiter.acquire(mapped).unwrap_err(),
            2,
            "IPv4-mapped is IPv4"
        );
        assert!(limiter.acquire(b).unwrap().is_some());
        drop(first);
        assert!(limiter.acquire(a).unwrap().is_some());
        // No limit: nothing counted.
        assert!(PerIp::new(None).acquire(a).unwrap().is_none());
    }
}
