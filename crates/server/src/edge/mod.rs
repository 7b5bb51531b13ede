//! The edge: everything a connection goes through between the listening
//! socket and a route, and every check made there.
//!
//! In order:
//!
//! 1. **Accept** ([`accept`]): `--max-connects-per-ip-per-sec` refuses an
//!    address that opens connections too fast, before TLS, HTTP or a task;
//!    out of file descriptors, the longest-waiting connection is closed to
//!    make room.
//! 2. **Count** ([`per_ip`]): `--max-connections-per-ip` counts the
//!    connection from here on, whatever it becomes; one over the limit is
//!    answered 429 and closed.
//! 3. **Wait** ([`pending`]): until its TLS handshake and request head are
//!    in, the connection is *pending*: each wait is bounded in time
//!    (`--header-timeout-ms`: the TLS handshake, and the head, each get
//!    that long; hyper applies it to every head on a kept-alive connection,
//!    from its first byte or from the end of the previous answer), and the
//!    number of waiting connections is bounded, per address and in all, by
//!    closing the oldest. A request body must be in within
//!    `--body-timeout-ms`.
//! 4. **Guard** ([`guard`]): every request, on every route, is checked for
//!    the `Host` it names ([`hosts`], against DNS rebinding) and the page
//!    it comes from ([`origin`], against cross-site use).
//!
//! Then the router: a WebSocket upgrade leaves this module's care (its
//! transport bounds it with heartbeats), anything else is answered and
//! the connection waits again.
//!
//! We drive hyper's HTTP/1 connections ourselves instead of `axum::serve`,
//! which has no header timeout and no way to tell a connection waiting for
//! a request from one serving it.

pub mod accept;
pub mod guard;
pub mod hosts;
pub mod origin;
pub mod pending;
pub mod per_ip;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::timeout::DeadlineBody;
use tower_service::Service;

use crate::tls::Tls;
use accept::Acceptor;
use hosts::AllowedHosts;
use pending::{Entry, Pending};
use per_ip::{PerIp, Slot};

/// `--header-timeout-ms` by default.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `--body-timeout-ms` by default.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// `--max-pending-connections-per-ip` by default: more than the
/// connections one address opens at the same moment in honest use (a
/// browser opens six, an office behind one NAT reconnecting after an outage
/// a few hundred over some seconds, the load generator 200 at once), fewer
/// than the pool, so one address cannot fill it.
pub const DEFAULT_MAX_PENDING_PER_IP: usize = 256;
/// `--max-pending-connections` by default is a quarter of the process's
/// file limit, so waiting connections can never take every descriptor,
/// within these bounds.
pub const DEFAULT_MAX_PENDING_RANGE: (usize, usize) = (64, 16_384);
/// Largest request head hyper reads (its read buffer): room for long
/// cookies, not for a client feeding headers forever.
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// The edge's settings.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Names the server answers to.
    pub allowed_hosts: AllowedHosts,
    /// How long a TLS handshake, and then each request head, may take.
    pub header_timeout: Duration,
    /// How long a request body may take, from its head.
    pub body_timeout: Duration,
    /// Connections waiting for a request head, in all.
    pub max_pending: usize,
    /// Connections waiting for a request head, per address.
    pub max_pending_per_ip: usize,
}

/// The default `--max-pending-connections`: a quarter of the soft file
/// limit, within [`DEFAULT_MAX_PENDING_RANGE`].
pub fn default_max_pending() -> usize {
    let (min, max) = DEFAULT_MAX_PENDING_RANGE;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let files = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        0
    };
    (files / 4).clamp(min, max)
}

/// When a draining server stops accepting, and later closes the HTTP
/// connections still open (kept alive between requests, or serving one):
/// in between, a balancer's health check on a kept-alive connection is
/// still answered (503).
#[derive(Debug, Clone)]
pub struct Stop {
    pub accepting: CancellationToken,
    pub connections: CancellationToken,
}

/// The connections of one listening socket, from accept to a route.
pub struct Edge {
    pending: Pending,
    per_ip: PerIp,
    /// `None`: plain HTTP.
    tls: Option<Arc<Tls>>,
    header_timeout: Duration,
    body_timeout: Duration,
}

/// What a connection's requests are answered with.
#[derive(Clone)]
enum Answer {
    Routes(Router),
    /// The address had no `--max-connections-per-ip` slot left.
    TooMany {
        max: usize,
    },
}

impl Edge {
    pub fn new(
        config: &EdgeConfig,
        max_connections_per_ip: Option<usize>,
        tls: Option<Arc<Tls>>,
    ) -> Edge {
        Edge {
            pending: Pending::new(config.max_pending, config.max_pending_per_ip),
            per_ip: PerIp::new(max_connections_per_ip),
            tls,
            header_timeout: config.header_timeout,
            body_timeout: config.body_timeout,
        }
    }

    /// Accepts connections until `stop.accepting`, then closes the
    /// listening socket (dropping the acceptor), so that new connections
    /// are refused rather than left in the kernel's backlog. Each
    /// connection's task is tracked by `connections` and, on
    /// `stop.connections`, finishes the request it is serving and closes.
    pub async fn serve(
        self: Arc<Self>,
        mut acceptor: Acceptor,
        routes: Router,
        stop: Stop,
        connections: TaskTracker,
    ) {
        loop {
            let (stream, addr) = tokio::select! {
                biased;
                () = stop.accepting.cancelled() => return,
                accepted = acceptor.accept(&self.pending) => accepted,
            };
            no_delay(&stream);
            let answer = match self.per_ip.acquire(addr.ip()) {
                Ok(slot) => (slot, Answer::Routes(routes.clone())),
                Err(max) => (None, Answer::TooMany { max }),
            };
            let entry = Arc::new(self.pending.enter(addr.ip()));
            let stream = Admitted {
                stream,
                _slot: answer.0,
            };
            connections.spawn(self.clone().connection(
                stream,
                addr,
                entry,
                answer.1,
                stop.connections.clone(),
            ));
        }
    }

    /// One connection: its TLS handshake if any, then HTTP until it ends,
    /// upgrades, is evicted from the pending pool, or the server stops.
    async fn connection(
        self: Arc<Self>,
        stream: Admitted,
        addr: SocketAddr,
        entry: Arc<Entry>,
        answer: Answer,
        stop: CancellationToken,
    ) {
        let Some(tls) = &self.tls else {
            return self.http(stream, addr, entry, answer, stop).await;
        };
        let handshake = tokio::time::timeout(self.header_timeout, tls.accept(stream));
        let stream = tokio::select! {
            done = handshake => match done {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => return tracing::debug!(%addr, %error, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%addr, "TLS handshake timed out"),
            },
            () = entry.evicted() => return,
            () = stop.cancelled() => return,
        };
        self.http(stream, addr, entry, answer, stop).await
    }

    async fn http<S>(
        &self,
        stream: S,
        addr: SocketAddr,
        entry: Arc<Entry>,
        answer: Answer,
        stop: CancellationToken,
    ) where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let body_timeout = self.body_timeout;
        let serving = entry.clone();
        let service = service_fn(move |request| {
            respond(request, addr, answer.clone(), serving.clone(), body_timeout)
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(connection);
        tokio::select! {
            done = connection.as_mut() => {
                if let Err(error) = done {
                    tracing::debug!(%addr, %error, "HTTP connection ended");
                }
            }
            // Dropping the connection closes it.
            () = entry.evicted() => tracing::debug!(%addr, "waiting connection closed to make room"),
            () = stop.cancelled() => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    }
}

/// Answers one request. The connection is busy from its head until the
/// answer, then waits again unless it upgraded.
async fn respond(
    request: Request<Incoming>,
    addr: SocketAddr,
    answer: Answer,
    entry: Arc<Entry>,
    body_timeout: Duration,
) -> Result<Response, Infallible> {
    entry.busy();
    let mut request = request.map(|body| {
        if body.is_end_stream() {
            Body::new(body)
        } else {
            Body::new(DeadlineBody::new(body_timeout, body))
        }
    });
    request.extensions_mut().insert(ConnectInfo(addr));
    let response = match answer {
        Answer::Routes(mut routes) => routes.call(request).await?,
        Answer::TooMany { max } => per_ip::refused(max),
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        entry.idle();
    }
    Ok(response)
}

/// Chat frames are small and latency-bound, and the transport already
/// batches queued frames into one write, so Nagle's delay only adds latency.
fn no_delay(stream: &TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
}

/// An accepted stream with its `--max-connections-per-ip` slot, which it
/// keeps through a WebSocket upgrade (hyper hands the stream itself to the
/// upgraded connection) and gives back when dropped.
struct Admitted {
    stream: TcpStream,
    _slot: Option<Slot>,
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
