//! TLS below HTTP: with `--tls-cert` and `--tls-key` the same routes are
//! served as `https://` and `wss://`.
//!
//! The handshake is the first step of a connection's task at the edge
//! ([`edge`](crate::edge)), after the same admission checks as plain TCP
//! and under the same bounds as a request head: `--header-timeout-ms`, and
//! the pool of pending connections, which closes the oldest when full. A
//! client that never completes its handshake thus holds only its own task,
//! never the accept loop, for a bounded time. Above this, hyper, the
//! WebSocket upgrade and the transports are generic over the stream and
//! know nothing of TLS.
//!
//! Certificates are replaced without a restart: rustls asks a [`CertStore`]
//! for the certificate at every handshake, and [`Tls::reload`] swaps what it
//! holds. main.rs reloads on SIGHUP, and a watcher reloads when either
//! file's size or modification time changes (checked every
//! [`WATCH_INTERVAL`]). A failed reload (a half-written file, a key that
//! does not match the certificate) keeps the certificate in use and says
//! why; open connections are never touched.
//!
//! The crypto provider is *ring*: it builds with a C compiler alone, where
//! rustls' default, aws-lc-rs, also needs cmake.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use chat_core::sync::{self, lock};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{Accept, TlsAcceptor};

/// How often the certificate files are checked for changes.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(10);

/// Where the certificate chain and its private key are (PEM files).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no PEM private key in it")]
    NoKey { path: PathBuf },
    #[error("{path}: {source}")]
    Pem { path: PathBuf, source: pem::Error },
    #[error("TLS key {key} for certificate {cert}: {source}")]
    Key {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS setup: {0}")]
    Setup(rustls::Error),
}

/// The server's TLS state: the configuration every handshake uses and the
/// certificate it presents, which [`Tls::reload`] replaces.
pub struct Tls {
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    store: Arc<CertStore>,
    acceptor: TlsAcceptor,
    /// The files as last loaded (or tried), so the watcher sees changes.
    loaded: Mutex<Option<Stamp>>,
}

impl Tls {
    /// Loads the certificate and key; fails if they are missing, are not
    /// PEM, or do not belong together.
    pub fn load(config: TlsConfig) -> Result<Arc<Tls>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamp = stamp(&config);
        let store = Arc::new(CertStore {
            current: RwLock::new(Arc::new(certified_key(&config, &provider)?)),
        });
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?
            .with_no_client_auth()
            .with_cert_resolver(store.clone());
        // We speak HTTP/1.1 only (WebSocket upgrades need it).
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(Tls {
            config,
            provider,
            store,
            acceptor: TlsAcceptor::from(Arc::new(server)),
            loaded: Mutex::new(stamp),
        }))
    }

    /// Reads the files again and, if they hold a valid certificate and key,
    /// presents them from the next handshake on.
    pub fn reload(&self) -> Result<(), TlsError> {
        *lock(&self.loaded) = stamp(&self.config);
        let key = certified_key(&self.config, &self.provider)?;
        *sync::write(&self.store.current) = Arc::new(key);
        Ok(())
    }

    /// The server side of a handshake on `stream`.
    pub fn accept<S: AsyncRead + AsyncWrite + Unpin>(&self, stream: S) -> Accept<S> {
        self.acceptor.accept(stream)
    }

    /// Reloads the files whenever they change; runs until dropped.
    pub async fn watch(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(WATCH_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let now = stamp(&self.config);
            let changed = now.is_some() && now != *lock(&self.loaded);
            if changed {
                match self.reload() {
                    Ok(()) => tracing::info!("TLS certificate files changed: reloaded"),
                    Err(error) => tracing::warn!(
                        %error,
                        "TLS certificate files changed but cannot be used; keeping the current ones"
                    ),
                }
            }
        }
    }
}

/// Size and modification time of both files; `None` while either is
/// missing (being replaced).
type Stamp = [(u64, SystemTime); 2];

fn stamp(config: &TlsConfig) -> Option<Stamp> {
    let one = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.len(), meta.modified().ok()?))
    };
    Some([one(&config.cert)?, one(&config.key)?])
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certified_key(config: &TlsConfig, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let pem_error = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Pem { path, source }
    };
    let chain = CertificateDer::pem_slice_iter(&read(&config.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(&config.cert))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: config.cert.clone(),
        });
    }
    let key = match PrivateKeyDer::from_pem_slice(&read(&config.key)?) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: config.key.clone(),
            });
        }
        Err(source) => return Err(pem_error(&config.key)(source)),
    };
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Key {
        cert: config.cert.clone(),
        key: config.key.clone(),
        source,
    })
}

/// Hands rustls the current certificate at each handshake.
struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(sync::read(&self.current).clone())
    }
}
