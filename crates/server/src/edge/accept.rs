//! `--max-connects-per-ip-per-sec`: how fast one client address may open
//! new TCP connections, checked in the accept loop.
//!
//! `--max-connections-per-ip` caps what an address holds at once; it does
//! not stop an address that connects, breaks the protocol and reconnects as
//! fast as it can. Each such round costs the server a handshake (TLS
//! included), an upgrade, a task and a close; `chat-bench hostile` saw
//! 10,000 of them a second from twenty clients. Checking here, before TLS,
//! HTTP or any task, makes a refused connection cost an `accept` and a
//! reset. The first refusal of an address in each second is explained
//! instead: a 429 written without waiting, then an orderly close (plain
//! HTTP only: a TLS client could not read it). Explaining every refusal
//! would make the write the largest cost of a flood (a quarter of the
//! server's time, measured), and the orderly close leaves a `TIME_WAIT`
//! entry behind, which a reset does not.
//!
//! Each address has a token bucket: `rate` new connections a second on
//! average, bursts of `2 × rate` (at least [`MIN_BURST`]), so a page load
//! that opens a few connections at once is never refused. Buckets that have
//! refilled are forgotten, which keeps the map as small as the set of
//! addresses seen in the last few seconds. Addresses are the TCP peer's, as
//! for `--max-connections-per-ip`: clients behind one NAT or proxy share a
//! budget.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

use super::pending::Pending;
use chat_core::rate::TokenBucket;
use chat_core::sync::lock;

/// Smallest burst, whatever the rate: what one browser opens at once (the
/// page, its assets, a WebSocket, Socket.IO's polling requests).
pub const MIN_BURST: f64 = 10.0;

/// The map is swept of refilled buckets at most this often, and only once
/// it holds more than [`SWEEP_ABOVE`] addresses.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const SWEEP_ABOVE: usize = 1024;

/// Refusals a second, node-wide, before the accept loop pauses (in bursts
/// of [`REFUSAL_BURST`]). A refusal costs about 20 µs of the server's time;
/// unchecked, a flood of them from many addresses would take a core, and
/// every task on it would wait behind the accept loop. Past this rate the
/// loop waits instead, so the kernel's backlog fills and the flood is held
/// up in TCP: new connections are slower to get in during such a flood,
/// while open ones are not disturbed.
const MAX_REFUSALS_PER_SEC: f64 = 5_000.0;
const REFUSAL_BURST: f64 = 500.0;

/// What a refused plain-HTTP client reads before the close.
const REFUSAL: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\n\
    Content-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\n\
    Connection: close\r\nContent-Length: 43\r\n\r\n\
    too many new connections from this address\n";

/// New-connection budgets per client address.
#[derive(Debug)]
pub struct ConnectRate {
    rate: f64,
    burst: f64,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    by_ip: HashMap<IpAddr, Budget>,
    swept: Instant,
}

#[derive(Debug)]
struct Budget {
    bucket: TokenBucket,
    /// When a refusal of this address was last explained.
    explained: Option<Instant>,
}

/// An address's refusals are explained at most this often.
const EXPLAIN_EVERY: Duration = Duration::from_secs(1);

/// What becomes of a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Over the rate; `explain`: the first refusal of the address in
    /// [`EXPLAIN_EVERY`], worth a 429.
    Refused {
        explain: bool,
    },
}

impl ConnectRate {
    /// `per_sec` new connections a second per address; `None` when not
    /// positive and finite (no limit).
    pub fn new(per_sec: f64) -> Option<ConnectRate> {
        (per_sec.is_finite() && per_sec > 0.0).then(|| ConnectRate {
            rate: per_sec,
            burst: (2.0 * per_sec).max(MIN_BURST),
            buckets: Mutex::new(Buckets {
                by_ip: HashMap::new(),
                swept: Instant::now(),
            }),
        })
    }

    /// Whether `ip` may open a connection now; takes a token if so.
    pub fn admit(&self, ip: IpAddr) -> Admission {
        self.admit_at(ip.to_canonical(), Instant::now())
    }

    fn admit_at(&self, ip: IpAddr, now: Instant) -> Admission {
        let mut buckets = lock(&self.buckets);
        if buckets.by_ip.len() > SWEEP_ABOVE && now.duration_since(buckets.swept) >= SWEEP_EVERY {
            buckets.swept = now;
            buckets
                .by_ip
                .retain(|_, budget| !budget.bucket.is_full_at(now));
        }
        let (rate, burst) = (self.rate, self.burst);
        let budget = buckets.by_ip.entry(ip).or_insert_with(|| Budget {
            bucket: TokenBucket::starting_at(rate, burst, now),
            explained: None,
        });
        if budget.bucket.try_take_at(now) {
            return Admission::Admitted;
        }
        let explain = budget
            .explained
            .is_none_or(|at| now.duration_since(at) >= EXPLAIN_EVERY);
        if explain {
            budget.explained = Some(now);
        }
        Admission::Refused { explain }
    }
}

/// The listening socket with its admission checks: refuses, at accept,
/// addresses over their [`ConnectRate`], and makes room when the process
/// runs out of file descriptors.
pub struct Acceptor {
    tcp: TcpListener,
    rate: Option<Arc<ConnectRate>>,
    /// Explained refusals get a 429 (plain HTTP); TLS clients are only
    /// ever reset.
    answer_refused: bool,
    /// Node-wide: [`MAX_REFUSALS_PER_SEC`].
    refusals: TokenBucket,
    /// When running out of descriptors was last logged.
    out_of_files_logged: Option<Instant>,
}

/// How long accepting pauses after an error other than running out of
/// descriptors (which pauses [`OUT_OF_FILES_PAUSE`]): as axum's loop did.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Out of descriptors, accepting retries this soon: the pending
/// connection closed to make room frees one at once.
const OUT_OF_FILES_PAUSE: Duration = Duration::from_millis(5);
/// Running out of descriptors is logged at most this often.
const OUT_OF_FILES_LOG_EVERY: Duration = Duration::from_secs(10);

impl Acceptor {
    pub fn new(tcp: TcpListener, rate: Option<Arc<ConnectRate>>, tls: bool) -> Acceptor {
        if rate.is_some() {
            metrics::describe_counter!(
                REFUSED,
                "New TCP connections refused at accept: the address was over \
                 --max-connects-per-ip-per-sec"
            );
        }
        Acceptor {
            tcp,
            rate,
            answer_refused: !tls,
            refusals: TokenBucket::new(MAX_REFUSALS_PER_SEC, REFUSAL_BURST),
            out_of_files_logged: None,
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Answers and closes, or resets, `stream` (dropped on return).
    fn refuse(&self, stream: TcpStream, addr: SocketAddr, explain: bool) {
        metrics::counter!(REFUSED).increment(1);
        tracing::debug!(%addr, "new connection over the per-address rate: refused");
        if explain && self.answer_refused {
            // Non-blocking: a fresh socket's send buffer always has room for
            // this; if not, the client just sees the close.
            let _ = stream.try_write(REFUSAL);
        } else {
            // Dropped with no linger: a reset, and nothing kept for
            // `TIME_WAIT`. (Setting it cannot block; only a lingering
            // close would.)
            let _ = stream.set_zero_linger();
        }
    }

    /// The next admitted connection. Out of descriptors, the connection in
    /// `pending` that has waited longest is closed to make room.
    pub async fn accept(&mut self, pending: &Pending) -> (TcpStream, SocketAddr) {
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    self.pause_after(error, pending).await;
                    continue;
                }
            };
            let admission = match &self.rate {
                Some(rate) => rate.admit(addr.ip()),
                None => Admission::Admitted,
            };
            match admission {
                Admission::Refused { explain } => {
                    self.refuse(stream, addr, explain);
                    if self.refusals.take_or_borrow() {
                        // While a flood keeps the backlog full, accepting
                        // never waits, and tokio's cooperative budget would
                        // let this loop refuse ~128 connections
                        // (milliseconds) before anything else ran: one
                        // refusal per turn.
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(self.refusals.until_repaid()).await;
                    }
                }
                Admission::Admitted => return (stream, addr),
            }
        }
    }

    async fn pause_after(&mut self, error: io::Error, pending: &Pending) {
        use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
        if matches!(
            error.kind(),
            ConnectionAborted | ConnectionRefused | ConnectionReset
        ) {
            // That client gave up before we took it: nothing wrong here.
            return;
        }
        if matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
            let made_room = pending.evict_oldest();
            let now = Instant::now();
            if self
                .out_of_files_logged
                .is_none_or(|at| now.duration_since(at) >= OUT_OF_FILES_LOG_EVERY)
            {
                self.out_of_files_logged = Some(now);
                tracing::warn!(
                    %error,
                    made_room,
                    "out of file descriptors: closing the connection that has waited longest \
                     for a request (raise the file limit, or lower the connection limits)"
                );
            }
            tokio::time::sleep(OUT_OF_FILES_PAUSE).await;
            return;
        }
        tracing::error!(%error, "accepting a connection failed");
        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
    }
}

/// Prometheus counter of connections refused at accept.
pub const REFUSED: &str = "chat_connections_refused_at_accept_total";

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(limit: &ConnectRate) -> usize {
        limit.buckets.lock().unwrap().by_ip.len()
    }

    /// Of `tries` connections from `ip` at `at`, how many were admitted.
    fn admitted(limit: &ConnectRate, ip: IpAddr, at: Instant, tries: usize) -> usize {
        (0..tries)
            .filter(|_| limit.admit_at(ip, at) == Admission::Admitted)
            .count()
    }

    #[test]
    fn each_address_gets_its_burst_then_its_rate() {
        let limit = ConnectRate::new(5.0).unwrap();
        let start = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert_eq!(
            admitted(&limit, a, start, 50),
            10,
            "burst of max(2 × 5, 10)"
        );
        assert_eq!(
            admitted(&limit, b, start, 1),
            1,
            "another address's own budget"
        );
        let later = start + Duration::from_millis(400);
        assert_eq!(admitted(&limit, a, later, 50), 2, "5 a second");
    }

    #[test]
    fn one_refusal_a_second_per_address_is_explained() {
        let limit = ConnectRate::new(1.0).unwrap();
        let start = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        assert_eq!(admitted(&limit, a, start, 10), 10);
        let refusals = |at| {
            (0..5)
                .map(|_| match limit.admit_at(a, at) {
                    Admission::Refused { explain } => explain,
                    Admission::Admitted => panic!("admitted past the burst"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(refusals(start), [true, false, false, false, false]);
        let half = start + Duration::from_millis(500);
        assert_eq!(refusals(half), [false; 5]);
        // A second on, one token has refilled; past it, one more explanation.
        let second = start + Duration::from_millis(1000);
        assert_eq!(admitted(&limit, a, second, 1), 1);
        assert_eq!(refusals(second), [true, false, false, false, false]);
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let limit = ConnectRate::new(1.0).unwrap();
        let v4: IpAddr = [10, 0, 0, 1].into();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let admitted = (0..20)
            .filter(|i| limit.admit(if i % 2 == 0 { v4 } else { mapped }) == Admission::Admitted)
            .count();
        assert_eq!(admitted, 10);
    }

    #[test]
    fn refilled_buckets_are_forgotten() {
        let limit = ConnectRate::new(10.0).unwrap();
        let start = Instant::now();
        for i in 0..2000u32 {
            assert_eq!(admitted(&limit, IpAddr::from(i.to_be_bytes()), start, 1), 1);
        }
        assert_eq!(addresses(&limit), 2000);
        // Two seconds on, every bucket has refilled (burst 20 at 10 a second).
        let later = start + Duration::from_secs(2);
        assert_eq!(admitted(&limit, [10, 9, 9, 9].into(), later, 1), 1);
        assert_eq!(addresses(&limit), 1);
    }

    #[test]
    fn the_refusal_is_a_whole_http_response() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 429 "));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }

    #[test]
    fn no_limit_unless_positive() {
        assert!(ConnectRate::new(0.0).is_none());
        assert!(ConnectRate::new(-1.0).is_none());
        assert!(ConnectRate::new(f64::NAN).is_none());
    }
}
