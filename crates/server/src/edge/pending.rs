//! Connections the server is waiting on: the pool slow clients cannot fill.
//!
//! A connection is *pending* from accept until its first request head has
//! been read (its TLS handshake included), and again between requests on a
//! kept-alive connection. While pending it costs a file descriptor and a
//! task and gives nothing back, which is what a slowloris attack exploits:
//! thousands of connections that send half a request head, or nothing, hold
//! every descriptor the process has. hyper bounds how long each wait may
//! last (`--header-timeout-ms`); this pool bounds how many there are.
//!
//! Past `--max-pending-connections-per-ip` for one address, or
//! `--max-pending-connections` in all, the connection that has been waiting
//! longest is closed to make room: that address's oldest, or the oldest of
//! all. Closing the oldest, not refusing the newest, is what leaves room
//! for honest clients, even ones behind the attacker's address: an honest
//! client sends its request head within a round trip and leaves the pool,
//! so it is never the oldest for long, while a client that dawdles is the
//! first to go. The accept loop also closes the oldest when the process is
//! out of descriptors. A connection that upgrades to WebSocket, or is busy
//! with a request, is not pending and is never closed here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chat_core::sync::lock;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Prometheus gauge of pending connections.
pub const PENDING: &str = "chat_pending_connections";
/// Prometheus counter of pending connections closed to make room.
pub const EVICTED: &str = "chat_pending_connections_evicted_total";

/// The pool: how many connections may wait, and who is waiting.
#[derive(Debug, Clone)]
pub struct Pending {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    max_total: usize,
    max_per_ip: usize,
    pool: Mutex<Pool>,
}

/// Waiting connections, oldest first, overall and per address. A ticket is
/// taken each time a connection starts waiting, so tickets order waits by age.
#[derive(Debug, Default)]
struct Pool {
    next_ticket: u64,
    by_age: BTreeMap<u64, Waiting>,
    by_ip: HashMap<IpAddr, BTreeSet<u64>>,
}

#[derive(Debug)]
struct Waiting {
    ip: IpAddr,
    evict: CancellationToken,
}

/// One connection's place in the pool, for its whole life. Dropping it
/// leaves the pool.
#[derive(Debug)]
pub struct Entry {
    shared: Arc<Shared>,
    ip: IpAddr,
    /// The ticket of the current wait; `None` while busy. Changed only
    /// under the pool's lock.
    ticket: Mutex<Option<u64>>,
    evict: CancellationToken,
}

impl Pending {
    /// At most `max_total` waiting connections, `max_per_ip` from one
    /// address (each at least 1).
    pub fn new(max_total: usize, max_per_ip: usize) -> Pending {
        metrics::describe_gauge!(
            PENDING,
            "Connections waiting for a request head (or a TLS handshake)"
        );
        metrics::describe_counter!(
            EVICTED,
            "Waiting connections closed to make room: over --max-pending-connections(-per-ip), \
             or out of file descriptors"
        );
        Pending {
            shared: Arc::new(Shared {
                max_total: max_total.max(1),
                max_per_ip: max_per_ip.max(1),
                pool: Mutex::new(Pool::default()),
            }),
        }
    }

    /// A new connection from `ip`, waiting from now on; older waiting
    /// connections are closed if the pool is over either limit.
    pub fn enter(&self, ip: IpAddr) -> Entry {
        let entry = Entry {
            shared: self.shared.clone(),
            ip: ip.to_canonical(),
            ticket: Mutex::new(None),
            evict: CancellationToken::new(),
        };
        entry.idle();
        entry
    }

    /// Closes the connection that has waited longest, if any (the process
    /// is out of file descriptors). Whether there was one.
    pub fn evict_oldest(&self) -> bool {
        let mut pool = lock(&self.shared.pool);
        let oldest = pool.by_age.keys().next().copied();
        oldest.is_some_and(|ticket| pool.evict(ticket))
    }

    /// Connections waiting now.
    pub fn len(&self) -> usize {
        lock(&self.shared.pool).by_age.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Pool {
    fn insert(&mut self, ip: IpAddr, evict: CancellationToken) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.by_age.insert(ticket, Waiting { ip, evict });
        self.by_ip.entry(ip).or_default().insert(ticket);
        ticket
    }

    fn remove(&mut self, ticket: u64) -> Option<Waiting> {
        let waiting = self.by_age.remove(&ticket)?;
        if let Some(tickets) = self.by_ip.get_mut(&waiting.ip) {
            tickets.remove(&ticket);
            if tickets.is_empty() {
                self.by_ip.remove(&waiting.ip);
            }
        }
        Some(waiting)
    }

    fn evict(&mut self, ticket: u64) -> bool {
        let Some(waiting) = self.remove(ticket) else {
            return false;
        };
        waiting.evict.cancel();
        metrics::counter!(EVICTED).increment(1);
        true
    }

    /// Closes the oldest waits until `ip` and the whole pool are within
    /// their limits.
    fn make_room(&mut self, ip: IpAddr, max_total: usize, max_per_ip: usize) {
        while let Some(tickets) = self.by_ip.get(&ip)
            && tickets.len() > max_per_ip
            && let Some(&oldest) = tickets.first()
        {
            self.evict(oldest);
        }
        while self.by_age.len() > max_total
            && let Some(&oldest) = self.by_age.keys().next()
        {
            self.evict(oldest);
        }
    }
}

impl Entry {
    /// A request head arrived: not waiting any more.
    pub fn busy(&self) {
        let mut pool = lock(&self.shared.pool);
        if let Some(ticket) = lock(&self.ticket).take() {
            pool.remove(ticket);
        }
        metrics::gauge!(PENDING).set(pool.by_age.len() as f64);
    }

    /// Waiting (again) for a request head: joins the pool as its newest.
    pub fn idle(&self) {
        let mut pool = lock(&self.shared.pool);
        if self.evict.is_cancelled() {
            return;
        }
        let mut ticket = lock(&self.ticket);
        if let Some(old) = ticket.take() {
            pool.remove(old);
        }
        *ticket = Some(pool.insert(self.ip, self.evict.clone()));
        pool.make_room(self.ip, self.shared.max_total, self.shared.max_per_ip);
        metrics::gauge!(PENDING).set(pool.by_age.len() as f64);
    }

    /// Resolves once the pool closed this connection to make room.
    pub fn evicted(&self) -> WaitForCancellationFuture<'_> {
        self.evict.cancelled()
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.busy();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];

    fn evicted(entry: &Entry) -> bool {
        entry.evict.is_cancelled()
    }

    #[test]
    fn an_address_over_its_limit_loses_its_oldest_wait() {
        let pending = Pending::new(100, 2);
        let first = pending.enter(A.into());
        let second = pending.enter(A.into());
        let other = pending.enter(B.into());
        let third = pending.enter(A.into());
        assert!(evicted(&first));
        assert!(!evicted(&second) && !evicted(&third) && !evicted(&other));
        assert_eq!(pending.len(), 3);
    }

    #[test]
    fn the_pool_over_its_limit_loses_the_oldest_of_all() {
        let pending = Pending::new(2, 10);
        let first = pending.enter(A.into());
        let second = pending.enter(B.into());
        let third = pending.enter(B.into());
        assert!(evicted(&first));
        assert!(!evicted(&second) && !evicted(&third));
    }

    #[test]
    fn a_busy_connection_is_never_evicted_and_waits_again_as_the_newest() {
        let pending = Pending::new(2, 10);
        let first = pending.enter(A.into());
        first.busy();
        let second = pending.enter(A.into());
        let third = pending.enter(A.into());
        let fourth = pending.enter(A.into());
        assert!(!evicted(&first), "busy: not in the pool");
        assert!(evicted(&second));
        first.idle();
        assert!(
            evicted(&third),
            "the oldest wait goes, not the one that came back"
        );
        assert!(!evicted(&first) && !evicted(&fourth));
        drop(first);
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn out_of_descriptors_the_oldest_goes_first() {
        let pending = Pending::new(10, 10);
        assert!(!pending.evict_oldest());
        let first = pending.enter(A.into());
        let second = pending.enter(B.into());
        assert!(pending.evict_oldest());
        assert!(evicted(&first) && !evicted(&second));
        // An evicted connection does not come back into the pool.
        first.idle();
        assert_eq!(pending.len(), 1);
    }
}
