//! Abuse limits on the web side: per-address rates on the call routes, a cap on connections
//! per address and in all, and bounded WebSocket messages.
//!
//! Owns: [`WebGuard`] (the call routes' per-address limiter: the same sans-IO
//! [`SourceLimiter`] the SIP edge uses, run on the server's clock; the client address is the
//! peer's, or the `X-Forwarded-For` client named by a trusted proxy), the middleware
//! [`limit_calls`] that answers 429 `rate.limited` with `Retry-After`, [`GuardedListener`]
//! (refuses a connection over `max_connections_per_ip` or `max_connections`, counted by the
//! [`ConnectionCaps`] SIP over TCP/TLS uses too, so that a
//! slowloris client holding connections open cannot take the server), and [`MessageRate`]
//! for WebSocket message rates.
//!
//! Invariants: a block is logged once when it starts and once when it ends, never per
//! request; a connection's place is given back when its stream is dropped.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hotline_sip::dialog::IpNet;
use hotline_sip::flood::{
    CapReached, ConnectionCaps, ConnectionPlace, SourceLimiter, SourceLimits, Verdict,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::config::WebLimitsConfig;
use super::tls::WebStream;
use super::{ApiError, WebState};
use hotline_sip::tls::TlsCell;

/// The per-address limiter of the call routes.
pub struct WebGuard {
    limiter: Mutex<SourceLimiter>,
    trusted_proxies: Vec<IpNet>,
    started: Instant,
}

impl WebGuard {
    pub fn new(config: &WebLimitsConfig) -> Self {
        let trusted_proxies = config
            .trusted_proxies
            .iter()
            .filter_map(|net| net.parse().ok())
            .collect();
        Self {
            limiter: Mutex::new(SourceLimiter::new(SourceLimits {
                messages_per_s: config.requests_per_s,
                message_burst: config.request_burst,
                calls_per_s: config.calls_per_s,
                call_burst: config.call_burst,
                block_ms: config.block_s.saturating_mul(1000),
                max_sources: SourceLimits::default().max_sources,
                exempt: Vec::new(),
            })),
            trusted_proxies,
            started: Instant::now(),
        }
    }

    /// The client's address: the peer's, or when the peer is a trusted proxy, the last address
    /// in `X-Forwarded-For` that is not one of the trusted proxies.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let trusted = |ip: IpAddr| self.trusted_proxies.iter().any(|net| net.contains(ip));
        if !trusted(peer) {
            return peer;
        }
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|v| v.trim().parse::<IpAddr>().ok())
            .rev()
            .find(|ip| !trusted(*ip))
            .unwrap_or(peer)
    }

    /// Counts a request from `ip`, and a new call when `new_call`; `Err` with the seconds to
    /// wait when the address is blocked.
    fn check(&self, ip: IpAddr, new_call: bool) -> Result<(), u64> {
        self.check_at(self.started.elapsed().as_millis() as u64, ip, new_call)
    }

    /// [`WebGuard::check`] at `now_ms` on the guard's clock.
    fn check_at(&self, now_ms: u64, ip: IpAddr, new_call: bool) -> Result<(), u64> {
        let Ok(mut limiter) = self.limiter.lock() else {
            return Ok(());
        };
        for ended in limiter.expire(now_ms) {
            tracing::info!(ip = %ended.ip, dropped = ended.dropped, "web client unblocked");
        }
        let mut verdict = limiter.check_message(now_ms, ip);
        if verdict == Verdict::Pass && new_call {
            verdict = limiter.check_call(now_ms, ip);
        }
        match verdict {
            Verdict::Pass => Ok(()),
            Verdict::Drop => Err(limiter
                .poll_timeout()
                .map_or(1, |t| t.saturating_sub(now_ms) / 1000 + 1)),
            Verdict::Blocked { limit, until_ms } => {
                let wait_s = until_ms.saturating_sub(now_ms) / 1000;
                tracing::warn!(%ip, limit = limit.code(), block_s = wait_s, "web client blocked: over its rate limit on the call routes");
                Err(wait_s.max(1))
            }
        }
    }
}

/// The client a call route's request came from ([`WebGuard::client_ip`]): what the call's record
/// names as its caller (`web:<ip>`), the peer's address or, behind a trusted reverse proxy, the
/// client the proxy names. Set by [`limit_calls`] on every call route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Middleware on the call routes: `POST /api/call` and `GET /api/ws` start calls, the other
/// call routes only count as requests. Over the limit: 429 `rate.limited` with `Retry-After`.
/// A request let through carries its [`ClientIp`].
pub(super) async fn limit_calls(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let new_call =
        (request.method() == axum::http::Method::POST && path == "/api/call") || path == "/api/ws";
    let ip = state.guard.client_ip(peer.ip(), request.headers());
    match state.guard.check(ip, new_call) {
        Ok(()) => {
            request.extensions_mut().insert(ClientIp(ip));
            next.run(request).await
        }
        Err(wait_s) => {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate.limited",
                format!("too many requests from {ip}; try again in {wait_s} s"),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&wait_s.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

/// WebSocket messages per second from one socket, on average over a second's window; a socket
/// over it is closed.
pub struct MessageRate {
    limit_per_s: u32,
    window_start: Instant,
    count: u32,
}

impl MessageRate {
    pub fn new(limit_per_s: u32) -> Self {
        Self {
            limit_per_s,
            window_start: Instant::now(),
            count: 0,
        }
    }

    /// Counts one message at `now`; false when the socket is over its rate.
    pub fn allow(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.limit_per_s == 0 || self.count <= self.limit_per_s
    }
}

/// A TCP listener that refuses connections over the per-address and total caps.
pub struct GuardedListener {
    inner: TcpListener,
    /// HTTPS: each connection's TLS, when the server has a certificate.
    tls: Option<Arc<TlsCell>>,
    caps: ConnectionCaps,
    last_refusal_log: Option<Instant>,
}

impl GuardedListener {
    pub fn new(inner: TcpListener, config: &WebLimitsConfig, tls: Option<Arc<TlsCell>>) -> Self {
        Self {
            inner,
            tls,
            caps: ConnectionCaps::new(config.max_connections_per_ip, config.max_connections),
            last_refusal_log: None,
        }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = WebStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    tracing::warn!("web accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match self.caps.admit(addr.ip()) {
                Ok(place) => {
                    let stream = GuardedStream {
                        inner: stream,
                        _place: place,
                    };
                    let stream = match &self.tls {
                        Some(tls) => super::tls::wrap(tls, stream),
                        None => WebStream::Plain(stream),
                    };
                    return (stream, addr);
                }
                Err(reached) => {
                    let cap = match reached {
                        CapReached::PerAddress => "web.limits.max_connections_per_ip",
                        CapReached::Total => "web.limits.max_connections",
                    };
                    // One line a second at most, not one per refused connection.
                    let now = Instant::now();
                    if self
                        .last_refusal_log
                        .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
                    {
                        self.last_refusal_log = Some(now);
                        tracing::warn!(ip = %addr.ip(), cap, "web connection refused: too many open");
                    }
                    drop(stream);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that gives its place back when dropped.
pub struct GuardedStream {
    inner: TcpStream,
    _place: ConnectionPlace,
}

impl GuardedStream {
    /// Sends small writes at once (signalling and event messages are small).
    pub fn set_nodelay(&self) {
        let _ = self.inner.set_nodelay(true);
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trusted_proxy_names_the_client_and_others_cannot() {
        let guard = WebGuard::new(&WebLimitsConfig {
            trusted_proxies: vec!["127.0.0.1".into()],
            ..WebLimitsConfig::default()
        });
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.1, 203.0.113.9"),
        );
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "192.0.2.4".parse().unwrap();
        assert_eq!(
            guard.client_ip(proxy, &headers),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(guard.client_ip(stranger, &headers), stranger);
    }

    #[test]
    fn calls_over_the_burst_are_refused_until_the_block_ends() {
        let guard = WebGuard::new(&WebLimitsConfig {
            call_burst: 3.0,
            calls_per_s: 0.001,
            block_s: 1,
            ..WebLimitsConfig::default()
        });
        let ip: IpAddr = "192.0.2.8".parse().unwrap();
        for t in 0..3 {
            assert!(guard.check_at(t, ip, true).is_ok());
        }
        assert_eq!(guard.check_at(10, ip, true), Err(1));
        assert!(
            guard.check_at(20, ip, false).is_err(),
            "blocked for every route"
        );
        let other: IpAddr = "192.0.2.9".parse().unwrap();
        assert!(guard.check_at(30, other, true).is_ok());
        assert!(guard.check_at(1_010, ip, false).is_ok(), "the block ended");
    }

    #[test]
    fn a_socket_over_its_message_rate_is_refused() {
        let mut rate = MessageRate::new(5);
        let now = Instant::now();
        assert!((0..5).all(|_| rate.allow(now)));
        assert!(!rate.allow(now));
        assert!(rate.allow(now + Duration::from_secs(1)));
    }
}
