//! `--max-connections-per-ip`: how many WebSocket and Socket.IO
//! connections one client address may hold open at once.
//!
//! One host opening thousands of connections would otherwise use up the
//! node's memory and file descriptors for everyone. A connection takes a
//! [`Slot`] for its whole life (the slot gives itself back when dropped, on
//! every way a connection ends); with none left, the upgrade is refused
//! with 429 before a WebSocket or an Engine.IO session exists.
//!
//! The address is the TCP peer's: clients behind one NAT or proxy share a
//! budget, so size the limit for that. IPv4-mapped IPv6 addresses count as
//! their IPv4 address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, StatusCode};
use axum::response::{IntoResponse, Response};

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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The connection's peer address, as the server's listener recorded it.
pub fn peer_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}

/// The refusal: 429, before any upgrade.
pub fn refused(max: usize) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        format!("at most {max} connections per address; close one first"),
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

    pub fn max(&self) -> Option<usize> {
        self.max
    }

    /// Takes a slot for a connection from `ip`. `Ok(None)` when nothing is
    /// counted (no limit, or no known address); `Err` with the limit when
    /// the address has no slot left.
    pub fn acquire(&self, ip: Option<IpAddr>) -> Result<Option<Slot>, usize> {
        let (Some(max), Some(ip)) = (self.max, ip) else {
            return Ok(None);
        };
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

    /// Whether `ip` has no slot left (for a request that will open a
    /// connection later, without holding a slot in between).
    pub fn is_full(&self, ip: Option<IpAddr>) -> bool {
        match (self.max, ip) {
            (Some(max), Some(ip)) => lock(&self.counts).get(&ip).is_some_and(|&n| n >= max),
            _ => false,
        }
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
        let first = limiter.acquire(Some(a)).unwrap();
        let _second = limiter.acquire(Some(a)).unwrap();
        assert_eq!(limiter.acquire(Some(a)).unwrap_err(), 2);
        assert!(limiter.is_full(Some(a)));
        assert!(limiter.acquire(Some(b)).unwrap().is_some());
        drop(first);
        assert!(!limiter.is_full(Some(a)));
        assert!(limiter.acquire(Some(a)).unwrap().is_some());
        // No address or no limit: nothing counted.
        assert!(limiter.acquire(None).unwrap().is_none());
        assert!(PerIp::new(None).acquire(Some(a)).unwrap().is_none());
    }
}
