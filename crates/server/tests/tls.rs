//! TLS end to end: the real binary with `--tls-cert`/`--tls-key` serves
//! `wss://` and `https://` on the usual routes, never lets a stalled
//! handshake hold up others, and swaps its certificate on SIGHUP.
//!
//! Each test makes its own self-signed certificate for 127.0.0.1 (rcgen)
//! and a client that trusts exactly that certificate.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{Client, RECV_TIMEOUT, Server, tcp_connect_from};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::json;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A certificate and key in PEM files, and the certificate itself.
struct TestCert {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

impl TestCert {
    fn new() -> TestCert {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .expect("generate a certificate");
        TestCert {
            der: certified.cert.der().clone(),
            cert_pem: certified.cert.pem(),
            key_pem: certified.signing_key.serialize_pem(),
        }
    }

    /// Writes the PEM files as `cert.pem` and `key.pem` in `dir`.
    fn write_to(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert.pem");
        std::fs::write(&key, &self.key_pem).expect("write key.pem");
        (cert, key)
    }

    /// A client configuration that trusts this certificate and nothing else.
    fn client(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).expect("add the test root");
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        Arc::new(config)
    }
}

/// A server on TLS with `cert`; the files stay in the returned directory.
fn start_tls(cert: &TestCert, extra: &[&str]) -> (Server, TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir for the certificate");
    let (cert_path, key_path) = cert.write_to(dir.path());
    let mut args = vec![
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    (server, dir, cert_path, key_path)
}

fn wss_url(server: &Server, query: &str) -> String {
    format!("wss://{}/ws?{query}", server.addr)
}

/// `GET path` over TLS, trusting `tls`; the raw response.
async fn https_get(server: &Server, tls: Arc<ClientConfig>, path: &str) -> String {
    let fut = async {
        let tcp = TcpStream::connect(server.addr).await?;
        let name = ServerName::IpAddress(server.addr.ip().into());
        let mut stream = TlsConnector::from(tls).connect(name, tcp).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            server.addr
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        // Servers may close without close_notify: what arrived is enough.
        let _ = stream.read_to_end(&mut raw).await;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&raw).into_owned())
    };
    tokio::time::timeout(RECV_TIMEOUT, fut)
        .await
        .expect("HTTPS GET timed out")
        .expect("HTTPS GET failed")
}

/// Whether a wss:// connection trusting `tls` gets through the handshake.
async fn tls_handshake_succeeds(server: &Server, tls: Arc<ClientConfig>) -> bool {
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let name = ServerName::IpAddress(server.addr.ip().into());
    tokio::time::timeout(RECV_TIMEOUT, TlsConnector::from(tls).connect(name, tcp))
        .await
        .expect("TLS handshake timed out")
        .is_ok()
}

#[tokio::test]
async fn wss_carries_the_native_protocol_end_to_end() {
    let cert = TestCert::new();
    let (server, _dir, _, _) = start_tls(&cert, &[]);

    let mut alice = Client::connect_with(wss_url(&server, "name=alice"), Some(cert.client())).await;
    let mut bob = Client::connect_with(wss_url(&server, "name=bob"), Some(cert.client())).await;
    assert_eq!(alice.welcome["user"]["name"], "alice");
    alice.join("general").await;
    bob.join("general").await;

    let ack = alice.say_with_id("general", "over TLS 🔒", "c-1").await;
    assert_eq!(ack["seq"], 1);
    assert_eq!(ack["id"], "c-1");
    let got = bob
        .recv_until(|f| f["type"] == "message" && f["room"] == "general")
        .await;
    assert_eq!(got["text"], "over TLS 🔒");
    assert_eq!(got["from"]["name"], "alice");
    let history = bob.history(json!({"room": "general"})).await;
    assert_eq!(history["messages"][0]["id"], "c-1");
    alice.close().await;
    bob.close().await;

    // Plain HTTP routes are there too, over https://.
    let health = https_get(&server, cert.client(), "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let page = https_get(&server, cert.client(), "/").await;
    assert!(
        page.starts_with("HTTP/1.1 200"),
        "{}",
        &page[..80.min(page.len())]
    );
    // The API sees the TCP peer through TLS: loopback, so no key is needed.
    let rooms = https_get(&server, cert.client(), "/api/rooms").await;
    assert!(rooms.starts_with("HTTP/1.1 200"), "{rooms}");
    assert!(
        rooms.contains(r#"[{"room":"general","members":0,"seq":1}]"#),
        "{rooms}"
    );
}

#[tokio::test]
async fn plain_clients_and_untrusting_clients_are_turned_away() {
    let cert = TestCert::new();
    let (server, _dir, _, _) = start_tls(&cert, &[]);

    // ws:// to a wss:// port: the server expects a TLS hello and hangs up.
    let plain = tokio::time::timeout(
        RECV_TIMEOUT,
        tokio_tungstenite::connect_async(server.ws_url("")),
    )
    .await
    .expect("a plain upgrade to a TLS port is answered promptly");
    assert!(plain.is_err(), "a plain WebSocket must not get through");

    // A client that trusts another certificate refuses this server.
    assert!(!tls_handshake_succeeds(&server, TestCert::new().client()).await);
    assert!(tls_handshake_succeeds(&server, cert.client()).await);
}

#[tokio::test]
async fn past_the_connect_rate_a_tls_client_is_closed_before_any_handshake() {
    let cert = TestCert::new();
    let (server, _dir, _, _) = start_tls(&cert, &["--max-connects-per-ip-per-sec", "1"]);
    let from = |ip: [u8; 4]| tcp_connect_from(server.addr, ip.into());
    // The burst of 10 is spent on connections that never say hello.
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(from([127, 0, 0, 3]).await.expect("connect"));
    }
    // Past it, the server closes without writing anything: a TLS client
    // could not read a plain 429. (A token may refill meanwhile.)
    let mut closed = false;
    for _ in 0..3 {
        // The reset can come before this side of the handshake ends.
        let mut tcp = match from([127, 0, 0, 3]).await {
            Ok(tcp) => tcp,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            Err(e) => panic!("connect: {e}"),
        };
        let mut said = Vec::new();
        let read = tokio::time::timeout(Duration::from_millis(300), tcp.read_to_end(&mut said));
        if let Ok(result) = read.await {
            assert!(result.is_err() || said.is_empty(), "wrote {said:?}");
            closed = true;
            break;
        }
    }
    assert!(closed, "no connection was refused past the burst");
    // Another address still gets through the handshake.
    let tcp = from([127, 0, 0, 4]).await.expect("connect");
    let name = ServerName::IpAddress(server.addr.ip().into());
    tokio::time::timeout(
        RECV_TIMEOUT,
        TlsConnector::from(cert.client()).connect(name, tcp),
    )
    .await
    .expect("TLS handshake timed out")
    .expect("another address is served");
    drop(held);
}

#[tokio::test]
async fn a_stalled_handshake_does_not_hold_up_other_clients() {
    let cert = TestCert::new();
    let (server, _dir, _, _) = start_tls(&cert, &[]);

    // Connections that never send a ClientHello (or send half of one).
    let mut stalled = Vec::new();
    for i in 0..8 {
        let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
        if i % 2 == 1 {
            tcp.write_all(&[0x16, 0x03, 0x01]).await.expect("write");
        }
        stalled.push(tcp);
    }
    let started = tokio::time::Instant::now();
    let mut client =
        Client::connect_with(wss_url(&server, "name=carol"), Some(cert.client())).await;
    client.assert_alive().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a good client waited {:?} behind stalled handshakes",
        started.elapsed()
    );
    drop(stalled);
}

#[tokio::test]
async fn a_slow_tls_client_is_closed_at_the_header_timeout() {
    let cert = TestCert::new();
    let (server, _dir, _, _) = start_tls(&cert, &["--header-timeout-ms", "1000"]);
    let opened = tokio::time::Instant::now();
    // One never starts its handshake; one finishes it, then sends half a
    // request head and nothing more.
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let name = ServerName::IpAddress(server.addr.ip().into());
    let mut slow = TlsConnector::from(cert.client())
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    slow.write_all(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("write half a head");
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(RECV_TIMEOUT, silent.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "a silent TCP client kept its connection");
    let closed = tokio::time::timeout(RECV_TIMEOUT, slow.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "a slow TLS client kept its connection");
    assert!(
        opened.elapsed() >= Duration::from_millis(900),
        "closed by the deadline"
    );
}

#[tokio::test]
async fn sighup_swaps_the_certificate_and_keeps_open_connections() {
    let first = TestCert::new();
    let (server, dir, _, _) = start_tls(&first, &[]);
    let mut early =
        Client::connect_with(wss_url(&server, "name=early"), Some(first.client())).await;

    let second = TestCert::new();
    second.write_to(dir.path());
    server.sighup();
    // The reload is asynchronous: wait until new handshakes show it.
    let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
    while !tls_handshake_succeeds(&server, second.client()).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was not served after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!tls_handshake_succeeds(&server, first.client()).await);
    early.assert_alive().await;

    // A broken file is refused and the certificate in use stays.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    server.sighup();
    let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
    while !server
        .stderr()
        .contains("cannot reload the TLS certificate")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no warning about the broken file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut late = Client::connect_with(wss_url(&server, "name=late"), Some(second.client())).await;
    late.assert_alive().await;
}

#[test]
fn bad_tls_settings_stop_the_start_with_a_reason() {
    let failure = Server::start_failure(&["--tls-cert", "cert.pem"]);
    assert!(!failure.status.success());
    assert!(
        failure.stderr.contains("both or neither"),
        "{}",
        failure.stderr
    );

    let failure = Server::start_failure(&[
        "--tls-cert",
        "/nonexistent/cert.pem",
        "--tls-key",
        "/nonexistent/key.pem",
    ]);
    assert!(
        failure.stderr.contains("/nonexistent/cert.pem"),
        "{}",
        failure.stderr
    );

    // A key that is not the certificate's.
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = TestCert::new().write_to(dir.path());
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let (_, key) = TestCert::new().write_to(&other);
    let failure = Server::start_failure(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(failure.stderr.contains("TLS key"), "{}", failure.stderr);
}
