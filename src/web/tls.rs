//! HTTPS for the web server: the certificate and key files (`web.tls_cert`, `web.tls_key`)
//! through `hotline_sip::tls` (loading, the acceptor in use, the SIGHUP reload), and
//! [`WebStream`], a connection that is plain or TLS.
//!
//! Owns: a TLS connection's handshake, done on the connection's own task the first time it is
//! read or written (so a slow client never holds up `accept`) and within [`HANDSHAKE_TIMEOUT`].
//! Browsers are offered HTTP/1.1 ([`ALPN`]; WebSockets upgrade over it).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hotline_sip::tls::TlsCell;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::guard::GuardedStream;

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTPS offers HTTP/1.1 (WebSockets upgrade over it).
pub const ALPN: &[&[u8]] = &[b"http/1.1"];

/// A connection that will do its handshake when first used.
pub fn wrap(cell: &TlsCell, stream: GuardedStream) -> WebStream {
    match cell.acceptor() {
        Some(acceptor) => WebStream::Tls(Box::new(TlsConnection::Handshaking {
            accept: acceptor.accept(stream),
            deadline: Box::pin(tokio::time::sleep(HANDSHAKE_TIMEOUT)),
        })),
        None => WebStream::Plain(stream),
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
