//! The edge under attack: what an outside attacker tried against the
//! release build, each performed here against the real binary while an
//! honest client must still be served (docs/security.md).
//!
//! - slow requests (slowloris) with a low file limit;
//! - a request head, a kept-alive connection or a body that never arrives;
//! - `--max-connections-per-ip` counted from accept, not from the upgrade;
//! - pages from other sites, on every route (`/ws` included);
//! - cross-site form posts to the keyless API;
//! - DNS rebinding (a `Host` that is not ours, with its own `Origin`).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The honest clients' address (the harness's default).
const HONEST: [u8; 4] = [127, 0, 0, 1];
/// The attacker's: another address of this machine.
const ATTACKER: [u8; 4] = [127, 0, 0, 66];

/// Half an upgrade request, as the attacker sent it.
const HALF_HEAD: &[u8] = b"GET /ws HTTP/1.1\r\nHost: x\r\n";

/// `n` connections from `from`, each having sent `prefix` and nothing more.
async fn stalled_connections(
    addr: SocketAddr,
    from: IpAddr,
    n: usize,
    prefix: &[u8],
) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = tcp_connect_from(addr, from).await.expect("connect");
        if !prefix.is_empty() {
            // A reset here means the server already dropped an older one
            // of ours, which is fine: keep going.
            let _ = stream.write_all(prefix).await;
        }
        held.push(stream);
    }
    held
}

/// Whether the server closes `stream` (EOF or reset) within `within`,
/// reading and discarding anything it says first.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read_to_end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_to_end).await.is_ok()
}

/// A raw HTTP/1.1 request (its whole text) from `from`; the answer's status.
async fn status_of(addr: SocketAddr, from: IpAddr, request: &str) -> u16 {
    let mut stream = tcp_connect_from(addr, from).await.expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(RECV_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| panic!("no answer to {request:?}"));
    let text = String::from_utf8_lossy(&head);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?} (request {request:?})"))
}

/// A request for `route` (`METHOD path`) with these extra header lines;
/// a POST carries a small JSON body, a `/ws` GET asks for an upgrade.
fn request(route: &str, host: &str, headers: &str) -> String {
    let (method, path) = route.split_once(' ').expect("METHOD path");
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if path == "/ws" {
        text.push_str(
            "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        );
    }
    text.push_str(headers);
    if method == "POST" && !headers.contains("Content-Type") {
        text.push_str("Content-Type: application/json\r\n");
    }
    let body = if method == "POST" {
        r#"{"text":"x"}"#
    } else {
        ""
    };
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    text
}

/// Every kind of route a browser can reach.
const ROUTES: [&str; 8] = [
    "GET /ws",
    "GET /socket.io/?EIO=4&transport=polling",
    "POST /api/rooms/general/messages",
    "GET /api/rooms",
    "GET /",
    "GET /assets/js/main.js",
    "GET /healthz",
    "GET /metrics",
];

#[tokio::test]
async fn slow_requests_cannot_lock_out_honest_clients() {
    // 256 descriptors, and more stalled connections than that: unchecked,
    // they take every descriptor and nobody else gets in.
    let server = Server::start_with_file_limit(256, &[]);
    let attacker = IpAddr::from(ATTACKER);
    let honest = IpAddr::from(HONEST);
    let mut held = stalled_connections(server.addr, attacker, 150, HALF_HEAD).await;
    held.extend(stalled_connections(server.addr, attacker, 150, b"").await);
    // Some from the honest clients' own address too (a shared NAT).
    held.extend(stalled_connections(server.addr, honest, 60, HALF_HEAD).await);

    let health = server.get("/healthz").await;
    assert_eq!(health.status, 200, "{health:?}");
    let mut client = Client::connect_from(&server.ws_url("name=honest"), honest)
        .await
        .expect("an honest client is served during the attack");
    client.join("general").await;
    client.say("general", "still here").await;

    let metrics = server.get("/metrics").await.body;
    let evicted = metric_value(&metrics, "chat_pending_connections_evicted_total").unwrap_or(0.0);
    assert!(evicted >= 300.0 - 64.0, "evicted {evicted}\n{metrics}");
    let pending = metric_value(&metrics, "chat_pending_connections").expect("gauge");
    assert!(pending <= 64.0, "pending {pending}");
    drop(held);
}

#[tokio::test]
async fn a_request_must_arrive_in_time() {
    let server = Server::start(&["--header-timeout-ms", "1000", "--body-timeout-ms", "1000"]);
    let from = IpAddr::from([127, 0, 0, 67]);
    let opened = Instant::now();
    let mut silent = stalled_connections(server.addr, from, 1, b"").await;
    let mut half = stalled_connections(server.addr, from, 1, HALF_HEAD).await;
    // A kept-alive connection that got its answer and then says nothing.
    let mut kept = stalled_connections(
        server.addr,
        from,
        1,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    // A body that trickles: 10 of the 100 bytes promised.
    let mut trickle = stalled_connections(
        server.addr,
        from,
        1,
        b"POST /api/rooms/general/messages HTTP/1.1\r\nHost: localhost\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"text\":\"",
    )
    .await;
    for (what, stream) in [
        ("silent", &mut silent[0]),
        ("half a head", &mut half[0]),
        ("kept alive", &mut kept[0]),
        ("trickling body", &mut trickle[0]),
    ] {
        assert!(
            closed_within(stream, RECV_TIMEOUT).await,
            "{what}: still open after {RECV_TIMEOUT:?}"
        );
        // Closed by the deadline, not at once for some other reason.
        let after = opened.elapsed();
        assert!(
            after >= Duration::from_millis(900),
            "{what}: closed after {after:?}"
        );
    }
    let mut client = server.client("honest").await;
    client.assert_alive().await;
}

#[tokio::test]
async fn connections_are_counted_from_accept() {
    let server = Server::start(&["--max-connections-per-ip", "3"]);
    let from = IpAddr::from([127, 0, 0, 68]);
    let health = request("GET /healthz", "localhost", "");
    // Three connections that never upgrade, or even ask, use the budget.
    let mut held = stalled_connections(server.addr, from, 3, b"").await;
    assert_eq!(status_of(server.addr, from, &health).await, 429);
    assert_eq!(
        Client::connect_from(&server.ws_url("name=x"), from)
            .await
            .err(),
        Some(429)
    );
    // Others are served; a closed connection gives its slot back.
    assert_eq!(
        status_of(server.addr, IpAddr::from(HONEST), &health).await,
        200
    );
    held.pop();
    let deadline = Instant::now() + RECV_TIMEOUT;
    while status_of(server.addr, from, &health).await == 429 {
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn pages_from_other_sites_are_refused_on_every_route() {
    for args in [&[][..], &["--allowed-origins", "https://app.example"]] {
        let server = Server::start(args);
        let honest = IpAddr::from(HONEST);
        let host = server.addr.to_string();
        for route in ROUTES {
            for origin in [
                "https://evil.example",
                "null",
                "http://localhost.evil.example",
            ] {
                let attack = request(route, &host, &format!("Origin: {origin}\r\n"));
                let status = status_of(server.addr, honest, &attack).await;
                assert_eq!(status, 403, "{route} from {origin} with {args:?}");
            }
        }
        // The server's own pages, and the listed site, get through.
        let own = format!("Origin: http://{host}\r\n");
        assert_eq!(
            status_of(server.addr, honest, &request("GET /ws", &host, &own)).await,
            101
        );
        if !args.is_empty() {
            let listed = "Origin: https://app.example\r\n";
            let upgrade = request("GET /ws", &host, listed);
            assert_eq!(status_of(server.addr, honest, &upgrade).await, 101);
            let mut request = server.ws_url("name=app").into_client_request().unwrap();
            request
                .headers_mut()
                .insert("Origin", "https://app.example".parse().unwrap());
            let mut client = Client::connect_with(request, None).await;
            client.join("general").await;
            client.say("general", "from the listed site").await;
        }
    }
}

#[tokio::test]
async fn cross_site_form_posts_to_the_api_are_refused() {
    let server = Server::start(&[]);
    let mut carol = server.client("carol").await;
    carol.join("general").await;
    let honest = IpAddr::from(HONEST);
    let host = server.addr.to_string();
    let kick = format!("POST /api/users/{}/disconnect", carol.user_id());
    // What an HTML form (or a no-preflight fetch) on any site can send.
    for content_type in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
        "text/plain; charset=utf-8",
    ] {
        let header = format!("Content-Type: {content_type}\r\n");
        for route in [kick.as_str(), "POST /api/rooms/general/messages"] {
            let status = status_of(server.addr, honest, &request(route, &host, &header)).await;
            assert_eq!(status, 415, "{route} as {content_type}");
        }
        // A browser sends the page's origin too: refused whatever the type.
        let from_page = format!("{header}Origin: https://evil.example\r\n");
        let status = status_of(server.addr, honest, &request(&kick, &host, &from_page)).await;
        assert_eq!(status, 403);
    }
    carol.assert_alive().await;
    let history = http_get(server.addr, "/api/rooms/general/messages").await;
    let messages: Value = serde_json::from_str(&history.body).expect("JSON");
    assert_eq!(messages["messages"], json!([]), "nothing was posted");
    // A JSON post from a backend (no page, no origin) still works.
    let status = status_of(server.addr, honest, &request(&kick, &host, "")).await;
    assert_eq!(status, 200);
    carol.expect_close(1008).await;
}

#[tokio::test]
async fn rebound_host_names_are_refused() {
    let server = Server::start(&[]);
    let honest = IpAddr::from(HONEST);
    let port = server.addr.port();
    let evil = format!("evil.example:{port}");
    let same_origin = format!("Origin: http://{evil}\r\n");
    for route in ROUTES {
        for headers in [same_origin.as_str(), ""] {
            let status = status_of(server.addr, honest, &request(route, &evil, headers)).await;
            assert_eq!(status, 421, "{route} for {evil} {headers:?}");
        }
    }
    // The names this machine is reached by are served.
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let status = status_of(server.addr, honest, &request("GET /healthz", &host, "")).await;
        assert_eq!(status, 200, "{host}");
    }

    // Answering every name (a public server's default), the keyless API
    // still serves only requests that name this machine.
    let server = Server::start(&["--allowed-hosts", "*"]);
    let evil = format!("evil.example:{}", server.addr.port());
    let same_origin = format!("Origin: http://{evil}\r\n");
    let post = request("POST /api/rooms/general/messages", &evil, &same_origin);
    assert_eq!(status_of(server.addr, honest, &post).await, 404);
    let local = format!("localhost:{}", server.addr.port());
    let post = request("POST /api/rooms/general/messages", &local, "");
    assert_eq!(status_of(server.addr, honest, &post).await, 201);
}
