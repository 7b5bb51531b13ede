//! TLS for `wss://`: which certificate authorities a client trusts.
//!
//! rustls with the *ring* provider, as the server uses: it builds with a C
//! compiler alone, and naming the provider here (rather than relying on a
//! process-wide default) cannot panic when an application links another.
//!
//! Trust is the platform's root store plus any roots the application adds
//! ([`ClientBuilder::root_certificates_pem`](crate::ClientBuilder::root_certificates_pem)),
//! so a server with a private or self-signed certificate is trusted by
//! naming its certificate, never by turning verification off (there is no
//! way to).
//!
//! Why the platform's store (`rustls-native-certs`) rather than a bundled
//! one (`webpki-roots`): it is the set the machine's administrator keeps,
//! so a company CA installed there, a CA the distribution distrusts, and
//! `SSL_CERT_FILE`/`SSL_CERT_DIR` all apply, as they do for curl and the
//! rest of the system; a bundle compiled in would only change when this
//! program is rebuilt. The store is read once per client, when it first
//! connects to a `wss://` URL; reconnects reuse the configuration.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

use crate::error::{Error, Result};

/// Whether `url` asks for TLS.
pub(crate) fn is_tls(url: &str) -> bool {
    url.starts_with("wss://")
}

/// The certificates in PEM `bundles` (each may hold several), checked
/// before any connection so a bad file shows at once, whatever the URL.
pub(crate) fn parse_roots(bundles: &[Vec<u8>]) -> Result<Vec<CertificateDer<'static>>> {
    let mut roots = Vec::new();
    for (n, pem) in bundles.iter().enumerate() {
        let which = || ordinal(n, bundles.len());
        let before = roots.len();
        for item in CertificateDer::pem_slice_iter(pem) {
            let der = item.map_err(|e| Error::InvalidRootCertificates {
                why: format!("{}malformed PEM: {e}", which()),
            })?;
            roots.push(der);
        }
        if roots.len() == before {
            return Err(Error::InvalidRootCertificates {
                why: format!("{}no `BEGIN CERTIFICATE` section", which()),
            });
        }
    }
    Ok(roots)
}

/// `PEM 2 of 3: ` when several were given; nothing for just one.
fn ordinal(n: usize, of: usize) -> String {
    if of < 2 {
        String::new()
    } else {
        format!("PEM {} of {of}: ", n + 1)
    }
}

/// The configuration every `wss://` connection of a client to `url`
/// uses: the platform's roots and `extra`.
pub(crate) fn client_config(
    url: &str,
    extra: Vec<CertificateDer<'static>>,
) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    add_platform_roots(&mut roots);
    add_extra_roots(&mut roots, extra)?;
    config_trusting(url, roots)
}

/// The platform's roots, as far as they can be read: one unreadable file
/// in a certificate directory should not cost the others, so problems are
/// logged rather than fatal (a store left empty is refused by
/// [`config_trusting`]).
fn add_platform_roots(roots: &mut RootCertStore) {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "cannot read some of the platform's root certificates");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        tracing::debug!(
            added,
            ignored,
            "platform root certificates rustls cannot use"
        );
    }
    tracing::debug!(added, "platform root certificates trusted");
}

/// Roots the application gave: each must be usable, since it was named on
/// purpose and silently dropping it would turn into a baffling "unknown
/// issuer" later.
fn add_extra_roots(roots: &mut RootCertStore, extra: Vec<CertificateDer<'static>>) -> Result<()> {
    let count = extra.len();
    for (n, der) in extra.into_iter().enumerate() {
        roots.add(der).map_err(|e| Error::InvalidRootCertificates {
            why: format!(
                "certificate {} of {count} is not usable as a root: {e}",
                n + 1
            ),
        })?;
    }
    Ok(())
}

fn config_trusting(url: &str, roots: RootCertStore) -> Result<Arc<ClientConfig>> {
    if roots.is_empty() {
        return Err(Error::NoRootCertificates);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // TLS 1.2 and 1.3, which the ring provider supports: cannot fail.
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| Error::Tls {
            url: url.to_owned(),
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The rustls error behind a failed connection attempt, if TLS is what
/// failed: tokio-rustls reports a handshake error as an I/O error wrapping
/// it.
pub(crate) fn handshake_error(
    error: &tokio_tungstenite::tungstenite::Error,
) -> Option<rustls::Error> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::error::TlsError;
    match error {
        WsError::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>().cloned(),
        WsError::Tls(TlsError::Rustls(e)) => Some((**e).clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed() -> String {
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .expect("a certificate")
            .cert
            .pem()
    }

    #[test]
    fn a_bundle_of_certificates_is_read_whole() {
        let bundle = format!("{}\n{}", self_signed(), self_signed());
        let roots = parse_roots(&[bundle.into_bytes()]).expect("two certificates");
        assert_eq!(roots.len(), 2);
        let mut store = RootCertStore::empty();
        add_extra_roots(&mut store, roots).expect("usable roots");
        assert_eq!(store.len(), 2);
        assert!(config_trusting("wss://h/ws", store).is_ok());
    }

    #[test]
    fn pem_without_a_certificate_is_refused() {
        let key = rcgen::KeyPair::generate().expect("a key").serialize_pem();
        for (pem, want) in [
            (b"not PEM at all".to_vec(), "no `BEGIN CERTIFICATE` section"),
            (Vec::new(), "no `BEGIN CERTIFICATE` section"),
            // A private key is PEM, but no certificate to trust.
            (key.into_bytes(), "no `BEGIN CERTIFICATE` section"),
            (
                b"-----BEGIN CERTIFICATE-----\nAAAA\n".to_vec(),
                "malformed PEM: missing section end marker",
            ),
        ] {
            let error = parse_roots(&[pem]).expect_err("refused");
            assert!(
                matches!(&error, Error::InvalidRootCertificates { why } if why.contains(want)),
                "{error:?}"
            );
        }
    }

    #[test]
    fn a_bad_bundle_among_several_is_named() {
        let error = parse_roots(&[self_signed().into_bytes(), b"junk".to_vec()]).expect_err("bad");
        assert_eq!(
            error.to_string(),
            "invalid root certificates: PEM 2 of 2: no `BEGIN CERTIFICATE` section"
        );
    }

    #[test]
    fn a_certificate_that_is_not_one_is_refused_as_a_root() {
        // Well-formed PEM around bytes that are no X.509 certificate.
        let pem = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let roots = parse_roots(&[pem.as_bytes().to_vec()]).expect("PEM");
        let error = add_extra_roots(&mut RootCertStore::empty(), roots).expect_err("no root");
        assert!(
            error
                .to_string()
                .contains("certificate 1 of 1 is not usable as a root"),
            "{error}"
        );
    }

    #[test]
    fn nothing_to_trust_is_refused() {
        let error = config_trusting("wss://h/ws", RootCertStore::empty()).expect_err("no roots");
        assert!(matches!(error, Error::NoRootCertificates), "{error:?}");
    }

    #[test]
    fn only_wss_asks_for_tls() {
        assert!(is_tls("wss://h/ws"));
        assert!(!is_tls("ws://h/ws"));
    }
}
