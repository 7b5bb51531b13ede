//! `wss://` against the real server started with `--tls-cert`/`--tls-key`:
//! joining, sending, receiving and deleting over TLS; resuming over TLS
//! after the connection is cut and after the server restarts; and the
//! typed refusals of a certificate the client does not trust, or of
//! certificates to trust that are not usable.
//!
//! Each test makes its own self-signed certificate for 127.0.0.1 (rcgen),
//! which the clients trust by naming it, as they would a private CA. The
//! server speaks TLS only, so every connection that gets a `welcome`, each
//! reconnect included, went through a verified TLS handshake.

mod common;

use chat_client::rustls::{self, CertificateError};
use chat_client::{ClientBuilder, Error, Event};
use common::{
    Follower, NO_RATE_LIMIT, Proxy, TOKEN_ARGS, TestCert, TestServer, WAIT, messages_until,
    next_matching, seqs, tls_client, token,
};

#[tokio::test]
async fn wss_joins_sends_receives_and_deletes() {
    let cert = TestCert::loopback();
    let server = TestServer::start_tls(&cert, TOKEN_ARGS).await;
    assert!(server.url().starts_with("wss://"), "{}", server.url());
    let connect = |sub: &str| {
        ClientBuilder::new(server.url())
            .token(token(sub, false))
            .root_certificates_pem(cert.cert_pem.as_bytes())
            .request_timeout(WAIT)
            .connect()
    };
    let (alice, _alice_events) = connect("alice").await.expect("alice connects over TLS");
    let (bob, bob_events) = connect("bob").await.expect("bob connects over TLS");
    assert_eq!(alice.session().user.id, "alice");
    alice.join("r").await.expect("alice joins");
    let joined = bob.join("r").await.expect("bob joins");
    let mut bob = Follower::new(bob_events, &joined);

    let ack = alice.send("r", "hello over TLS 🔒").await.expect("send");
    assert_eq!((ack.seq, ack.duplicate), (1, false));
    bob.until_seq(1).await;
    assert_eq!(bob.state.messages[&1].text, "hello over TLS 🔒");
    assert_eq!(bob.state.messages[&1].from.name, "alice");

    let deleted = alice.delete("r", 1).await.expect("delete");
    assert_eq!(deleted.seq, 2);
    bob.until_seq(2).await;
    assert!(
        bob.state.messages[&1].deleted,
        "{:?}",
        bob.state.messages[&1]
    );
    assert_eq!(bob.seqs, [1, 2]);
    assert!(alice.ping().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_client_resumes_over_tls_after_a_cut_and_a_restart() {
    let cert = TestCert::loopback();
    let mut server = TestServer::start_tls(&cert, NO_RATE_LIMIT).await;
    // Alice goes through a TCP proxy that can cut her connection; TLS runs
    // end to end through it, checked against the same 127.0.0.1.
    let proxy = Proxy::start(server.addr).await;
    let through_proxy = format!("wss://{}/ws", proxy.addr);
    let (alice, mut alice_events) = tls_client(&through_proxy, "alice", &cert).await;
    let (bob, mut bob_events) = tls_client(&server.url(), "bob", &cert).await;
    alice.join("room").await.expect("alice joins");
    bob.join("room").await.expect("bob joins");
    bob.send("room", "before").await.expect("send");
    assert_eq!(
        seqs(&messages_until(&mut alice_events, "room", 1).await),
        [1]
    );

    // The connection is killed: alice reconnects, over TLS again.
    proxy.cut();
    reconnected(&mut alice_events).await;
    bob.send("room", "after the cut").await.expect("send");
    let after_cut = messages_until(&mut alice_events, "room", 2).await;
    assert_eq!(seqs(&after_cut), [2]);

    // The server goes away; the room moves on while nobody can see it, and
    // a send waits for the next connection.
    server.stop().await;
    next_matching(&mut alice_events, "reconnecting", |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    let outage_send = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.send("room", "sent during the outage").await })
    };
    let carol_cert = cert.cert_pem.clone();
    server
        .elsewhere(|url| async move {
            assert!(url.starts_with("wss://"), "{url}");
            let (carol, _events) = ClientBuilder::new(url)
                .name("carol")
                .root_certificates_pem(carol_cert)
                .connect()
                .await
                .expect("carol connects over TLS");
            carol.join("room").await.expect("carol joins");
            for i in 3..=5 {
                carol
                    .send("room", &format!("missed {i}"))
                    .await
                    .expect("send");
            }
            carol.close().await;
        })
        .await;
    server.restart().await;
    reconnected(&mut alice_events).await;
    reconnected(&mut bob_events).await;

    let ack = tokio::time::timeout(WAIT, outage_send)
        .await
        .expect("the outage send completes")
        .expect("task")
        .expect("acked after reconnecting");
    assert_eq!((ack.seq, ack.duplicate), (6, false));
    let resumed = messages_until(&mut alice_events, "room", 6).await;
    assert_eq!(seqs(&resumed), [3, 4, 5, 6], "each missed once, in order");
    assert_eq!(resumed[0].text, "missed 3");
    bob.send("room", "live again").await.expect("send");
    assert_eq!(
        seqs(&messages_until(&mut alice_events, "room", 7).await),
        [7]
    );
}

async fn reconnected(events: &mut chat_client::Events) {
    next_matching(events, "reconnected", |e| {
        matches!(e, Event::Reconnected(_))
    })
    .await;
}

/// The certificate error of a refused connection; panics on any other
/// outcome.
fn certificate_error(outcome: chat_client::Result<impl std::fmt::Debug>) -> CertificateError {
    let error = outcome.expect_err("the certificate is refused");
    assert!(!error.is_retryable(), "{error}");
    match error {
        Error::Tls {
            source: rustls::Error::InvalidCertificate(why),
            ..
        } => why,
        other => panic!("not a certificate error: {other:?}"),
    }
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_with_a_typed_error() {
    let cert = TestCert::loopback();
    let server = TestServer::start_tls(&cert, &[]).await;
    let url = server.url();

    // The platform's roots alone do not vouch for a self-signed certificate.
    let outcome = ClientBuilder::new(&url).connect().await;
    if let Err(Error::NoRootCertificates) = outcome {
        panic!(
            "this machine has no platform root certificates, which this test needs \
             (install ca-certificates)"
        );
    }
    assert_eq!(certificate_error(outcome), CertificateError::UnknownIssuer);

    // Trusting another certificate is no better. rcgen gives both the same
    // subject name, so the verifier may take the stranger for the issuer
    // and find the signature wrong instead.
    let stranger = TestCert::loopback();
    let outcome = ClientBuilder::new(&url)
        .root_certificates_pem(stranger.cert_pem)
        .connect()
        .await;
    let why = certificate_error(outcome);
    assert!(
        matches!(
            why,
            CertificateError::UnknownIssuer | CertificateError::BadSignature
        ),
        "{why:?}"
    );

    // A trusted certificate for another name than the URL's host.
    let elsewhere = TestCert::for_names(&["chat.example"]);
    let misnamed = TestServer::start_tls(&elsewhere, &[]).await;
    let outcome = ClientBuilder::new(misnamed.url())
        .root_certificates_pem(elsewhere.cert_pem)
        .connect()
        .await;
    let why = certificate_error(outcome);
    assert!(
        matches!(
            why,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        ),
        "{why:?}"
    );

    // The message says what failed, down to the cause.
    let error = ClientBuilder::new(&url)
        .connect()
        .await
        .expect_err("refused");
    let source = std::error::Error::source(&error).map(ToString::to_string);
    assert_eq!(error.to_string(), "the TLS handshake failed");
    assert!(
        source
            .as_deref()
            .is_some_and(|s| s.contains("UnknownIssuer")),
        "{source:?}"
    );
}

#[tokio::test]
async fn unusable_certificates_to_trust_are_refused_before_connecting() {
    // No server at all: the PEM is refused before any connection.
    for url in ["wss://127.0.0.1:9/ws", "ws://127.0.0.1:9/ws"] {
        for pem in [
            &b"not a certificate"[..],
            b"",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n",
        ] {
            let outcome = ClientBuilder::new(url)
                .root_certificates_pem(pem)
                .connect()
                .await;
            assert!(
                matches!(outcome, Err(Error::InvalidRootCertificates { .. })),
                "{url} {pem:?}: {:?}",
                outcome.map(|_| ())
            );
        }
    }
    // A key is PEM, but nothing to trust.
    let cert = TestCert::loopback();
    let outcome = ClientBuilder::new("wss://127.0.0.1:9/ws")
        .root_certificates_pem(cert.key_pem)
        .connect()
        .await;
    let Err(error) = outcome else {
        panic!("a key taken for a certificate");
    };
    assert_eq!(
        error.to_string(),
        "invalid root certificates: no `BEGIN CERTIFICATE` section"
    );
    assert!(!error.is_retryable());
}
