//! TLS certificates for the servers hotline runs: SIP over TLS and HTTPS share this.
//!
//! Owns: loading a certificate chain and its key from PEM files into a rustls `ServerConfig`
//! ([`load`]), the acceptor that new connections use ([`TlsCell`], swapped by a reload;
//! connections already open keep theirs) and the SIGHUP reload loop ([`reload_on_sighup`]).
//!
//! Invariants: a reload that fails (a missing file, a key that does not match) keeps the
//! config in use and says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate {path}: {message}")]
    Cert { path: String, message: String },
    #[error("key {path}: {message}")]
    Key { path: String, message: String },
    #[error("the certificate and the key do not go together: {0}")]
    Mismatch(String),
}

/// Reads the chain and key and builds a server config offering `alpn` (empty: none).
pub fn load(
    cert: &Path,
    key: &Path,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_error = |message: String| TlsError::Cert {
        path: cert.display().to_string(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no certificate in the file".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The acceptor new connections use, and the files it came from (for reloads).
pub struct TlsCell {
    cert: PathBuf,
    key: PathBuf,
    alpn: Vec<Vec<u8>>,
    current: RwLock<TlsAcceptor>,
}

impl std::fmt::Debug for TlsCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCell")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

impl TlsCell {
    /// Loads the files once; start-up fails when they cannot be used.
    pub fn open(cert: &Path, key: &Path, alpn: &[&[u8]]) -> Result<Arc<Self>, TlsError> {
        let config = load(cert, key, alpn)?;
        Ok(Arc::new(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            alpn: alpn.iter().map(|p| p.to_vec()).collect(),
            current: RwLock::new(TlsAcceptor::from(config)),
        }))
    }

    /// Loads the files again; on failure the config in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let alpn: Vec<&[u8]> = self.alpn.iter().map(Vec::as_slice).collect();
        let config = load(&self.cert, &self.key, &alpn)?;
        if let Ok(mut current) = self.current.write() {
            *current = TlsAcceptor::from(config);
        }
        Ok(())
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> Option<TlsAcceptor> {
        self.current.read().ok().map(|a| a.clone())
    }
}

/// Reloads `cell` on every SIGHUP (a renewed certificate takes effect for new connections
/// without a restart); `what` names the server in the log.
pub async fn reload_on_sighup(cell: Arc<TlsCell>, what: &'static str) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangups.recv().await.is_some() {
        match cell.reload() {
            Ok(()) => tracing::info!("{what} TLS certificate reloaded"),
            Err(e) => {
                tracing::error!("{what} TLS certificate not reloaded, the old one stays: {e}")
            }
        }
    }
}
