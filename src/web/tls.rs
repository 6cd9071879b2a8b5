//! HTTPS for the web server: rustls with a certificate chain and a key from PEM files
//! (`web.tls_cert`, `web.tls_key`), reloaded on SIGHUP.
//!
//! Owns: loading the files into a rustls `ServerConfig` ([`load`]), the current config that
//! new connections use ([`TlsCell`], swapped on reload; connections already open keep theirs),
//! and [`WebStream`], a connection that is plain or TLS. A TLS connection does its handshake
//! on its own task, the first time it is read or written (so a slow client never holds up
//! `accept`), and must finish it within [`HANDSHAKE_TIMEOUT`].
//!
//! Invariants: a reload that fails (a missing file, a key that does not match) keeps the
//! config in use and says why; browsers are offered HTTP/1.1 (WebSockets upgrade over it).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;

use super::guard::GuardedStream;

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("web.tls_cert {path}: {message}")]
    Cert { path: String, message: String },
    #[error("web.tls_key {path}: {message}")]
    Key { path: String, message: String },
    #[error("web.tls_cert and web.tls_key do not go together: {0}")]
    Mismatch(String),
}

/// Reads the chain and key and builds the server config.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
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
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The config new connections use, and where it came from (for reloads).
pub struct TlsCell {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<TlsAcceptor>,
}

impl TlsCell {
    /// Loads the files once; start-up fails when they cannot be used.
    pub fn open(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let config = load(cert, key)?;
        Ok(Arc::new(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(TlsAcceptor::from(config)),
        }))
    }

    /// Loads the files again (SIGHUP); on failure the config in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load(&self.cert, &self.key)?;
        if let Ok(mut current) = self.current.write() {
            *current = TlsAcceptor::from(config);
        }
        Ok(())
    }

    fn acceptor(&self) -> Option<TlsAcceptor> {
        self.current.read().ok().map(|a| a.clone())
    }

    /// A connection that will do its handshake when first used.
    pub fn wrap(&self, stream: GuardedStream) -> WebStream {
        match self.acceptor() {
            Some(acceptor) => WebStream::Tls(Box::new(TlsConnection::Handshaking {
                accept: acceptor.accept(stream),
                deadline: Box::pin(tokio::time::sleep(HANDSHAKE_TIMEOUT)),
            })),
            None => WebStream::Plain(stream),
        }
    }
}

/// One connection to the web server.
pub enum WebStream {
    Plain(GuardedStream),
    Tls(Box<TlsConnection>),
}

impl WebStream {
    /// Sends small writes at once.
    pub fn set_nodelay(&self) {
        match self {
            WebStream::Plain(stream) => stream.set_nodelay(),
            WebStream::Tls(tls) => match tls.as_ref() {
                TlsConnection::Handshaking { accept, .. } => {
                    if let Some(stream) = accept.get_ref() {
                        stream.set_nodelay();
                    }
                }
                TlsConnection::Ready(stream) => stream.get_ref().0.set_nodelay(),
                TlsConnection::Failed => {}
            },
        }
    }
}

/// A TLS connection: its handshake, then the stream.
pub enum TlsConnection {
    Handshaking {
        accept: tokio_rustls::Accept<GuardedStream>,
        deadline: Pin<Box<tokio::time::Sleep>>,
    },
    Ready(tokio_rustls::server::TlsStream<GuardedStream>),
    Failed,
}

impl TlsConnection {
    /// Drives the handshake; `Ready(Ok)` once the stream can be used.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        loop {
            match self {
                TlsConnection::Handshaking { accept, deadline } => {
                    if deadline.as_mut().poll(cx).is_ready() {
                        *self = TlsConnection::Failed;
                        return Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "TLS handshake timed out",
                        )));
                    }
                    match Pin::new(accept).poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(stream)) => *self = TlsConnection::Ready(stream),
                        Poll::Ready(Err(e)) => {
                            tracing::debug!("TLS handshake failed: {e}");
                            *self = TlsConnection::Failed;
                            return Poll::Ready(Err(e));
                        }
                    }
                }
                TlsConnection::Ready(_) => return Poll::Ready(Ok(())),
                TlsConnection::Failed => {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "TLS handshake failed",
                    )))
                }
            }
        }
    }
}

impl AsyncRead for WebStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            WebStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            WebStream::Tls(tls) => {
                if let Poll::Ready(Err(e)) = tls.poll_ready(cx) {
                    return Poll::Ready(Err(e));
                }
                match tls.as_mut() {
                    TlsConnection::Ready(stream) => Pin::new(stream).poll_read(cx, buf),
                    _ => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for WebStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            WebStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            WebStream::Tls(tls) => {
                if let Poll::Ready(Err(e)) = tls.poll_ready(cx) {
                    return Poll::Ready(Err(e));
                }
                match tls.as_mut() {
                    TlsConnection::Ready(stream) => Pin::new(stream).poll_write(cx, buf),
                    _ => Poll::Pending,
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            WebStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            WebStream::Tls(tls) => match tls.as_mut() {
                TlsConnection::Ready(stream) => Pin::new(stream).poll_flush(cx),
                _ => Poll::Ready(Ok(())),
            },
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            WebStream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            WebStream::Tls(tls) => match tls.as_mut() {
                TlsConnection::Ready(stream) => Pin::new(stream).poll_shutdown(cx),
                _ => Poll::Ready(Ok(())),
            },
        }
    }
}
