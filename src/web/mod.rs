//! The HTTP server and WebRTC callers: the web phone at `/`, WHIP-style signalling, live call
//! events, health, and any routers other parts mount (the dialogue's `/demo`).
//!
//! Routes:
//! - `GET /` (+ `/app.js`, `/style.css`, `/favicon.svg`): the web phone ([`assets`]).
//! - `POST /api/call?flow=&language=&<var>=`: body = SDP offer (`application/sdp`); answers
//!   `201 Created` with the SDP answer, `Location: /api/call/<id>` and `X-Call-Id`. Other query
//!   parameters become the call's `vars`. Errors are JSON `{"error": code, "message": text}`:
//!   400 `offer.invalid`, 413 `offer.too_large`, 415 `offer.content_type`, 503 `webrtc.busy` /
//!   `server.busy` / `webrtc.no_ports` (with `Retry-After`), 500 `webrtc.internal`.
//! - `DELETE /api/call/<id>`: hang up (WHIP's teardown).
//! - `GET /api/call/<id>/events` (WebSocket): the call's events, the same JSON as
//!   `events.jsonl`, from the start of the call, then live; plus `peer_state` and a final
//!   `call_ended`. The page sends `{"type":"dtmf","digit":"5"}` and `{"type":"hangup"}` on it.
//! - `GET /api/ws` (WebSocket): signalling without HTTP: send `{"type":"offer","sdp":...}`,
//!   get `{"type":"answer","call_id":...,"sdp":...}`, then the events as above; closing the
//!   socket hangs up.
//! - `GET /api/flows`: the flows and languages a caller can choose.
//! - `GET /healthz`: liveness and counters (calls, WebRTC calls, drivers, leased ports, tasks).
//! - `GET /metrics`: Prometheus text.
//! - `GET /api/calls`, `/api/calls/<id>`, `/api/calls/<id>/recording`, `/api/analytics`: the
//!   call store, behind a bearer token (`api`).
//! - `/login`, `/logout`, `/dashboard/...`: the dashboard, behind a sign-in (`dashboard`).
//! - `/agent` (+ the WebSocket `/agent/ws`): the human agent's console, behind the same
//!   sign-in (`agent`); `/supervisor` (+ `/supervisor/ws`): live calls, agents and queues,
//!   listen, whisper and barge (`supervisor`).
//! - `/demo/...`: the demo business systems, only where `web.demo` allows (by default only on
//!   a loopback `listen` address).
//!
//! HTTPS (`tls`): with `web.tls_cert` and `web.tls_key` the server speaks only HTTPS, and
//! reloads the files on SIGHUP.
//!
//! Limits (`guard`, `[web.limits]`): the call routes answer 429 `rate.limited` with
//! `Retry-After` to an address over its request or call rate (blocked for `block_s`);
//! connections over `max_connections_per_ip` or `max_connections` are closed at once; a page
//! may send `ws_messages_per_s` messages of at most `max_ws_message_bytes` on a WebSocket.
//!
//! Invariants: at most `web.max_calls` WebRTC calls hold a permit at once (and `Engines` caps
//! all transports at `server.max_calls`); every accepted offer gets exactly one driver task,
//! which owns the call's permit, port lease and registry slot and drops them when it ends;
//! bad input gets an error response, never a panic.
//!
//! Layout: this file owns start-up and shutdown ([`run`], [`serve`]), the shared [`WebState`],
//! the route table ([`router`]) and the two error types ([`WebError`] for start-up,
//! [`ApiError`] for a refused request). The handlers live by concern: `http` (files, health,
//! flows, `POST` / `DELETE /api/call`), `offer` (answering an offer and starting the call's
//! driver, shared by both kinds of signalling), `signalling` (`/api/ws`), `events`
//! (`/api/call/<id>/events`), `api` (the store's JSON API), `dashboard`, `agent` and `supervisor`.

pub mod agent;
mod api;
pub mod assets;
pub mod config;
pub mod dashboard;
pub mod driver;
pub mod events;
pub mod guard;
mod http;
pub mod media;
pub mod offer;
pub mod peer;
pub mod ports;
pub mod registry;
pub mod signalling;
pub mod supervisor;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::{watch, Semaphore};

use crate::call::Engines;

pub use config::{TurnServerConfig, WebConfig, WebConfigError, WebLimitsConfig};
use guard::{GuardedListener, WebGuard};
use ports::PortPool;
use registry::WebCalls;

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(transparent)]
    Config(#[from] WebConfigError),
    #[error("web.listen {addr}: cannot bind: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("http server: {0}")]
    Serve(#[source] std::io::Error),
    #[error("web.tls_cert / web.tls_key: {0}")]
    Tls(#[from] hotline_sip::tls::TlsError),
}

/// A failed API request: status, stable code and a sentence for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.code, "message": self.message}));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct WebState {
    engines: Arc<Engines>,
    config: Arc<WebConfig>,
    calls: Arc<WebCalls>,
    permits: Arc<Semaphore>,
    ports: PortPool,
    guard: Arc<WebGuard>,
    shutdown: watch::Receiver<bool>,
    /// Failed dashboard sign-ins per address.
    login_throttle: Arc<dashboard::auth::LoginThrottle>,
}

impl WebState {
    /// State for a server over `engines`, using their `[web]` config.
    pub fn new(engines: Arc<Engines>, shutdown: watch::Receiver<bool>) -> Result<Self, WebError> {
        let config = engines.config.web.clone();
        config.validate()?;
        let range =
            (config.udp_port_max != 0).then_some((config.udp_port_min, config.udp_port_max));
        Ok(Self {
            ports: PortPool::new(config.media_bind_ip(), range),
            permits: Arc::new(Semaphore::new(config.max_calls)),
            calls: Arc::new(WebCalls::default()),
            guard: Arc::new(WebGuard::new(&config.limits)),
            config: Arc::new(config),
            engines,
            shutdown,
            login_throttle: Arc::default(),
        })
    }

    /// The call store, once `serve` has opened it.
    pub(crate) fn store(&self) -> Option<crate::store::Store> {
        self.engines.store.get().map(|w| w.store().clone())
    }

    /// WebRTC calls live now.
    pub fn webrtc_calls(&self) -> usize {
        self.calls.len()
    }
}

/// The web transport's task for `hotline serve`: serves until `shutdown` turns true, then ends
/// live WebRTC calls. Errors (a taken port, a bad `[web]` section) are logged.
pub async fn run(engines: Arc<Engines>, shutdown: watch::Receiver<bool>) {
    // Other parts' routers are mounted here; the demo systems only where the config says.
    let mut extra: Vec<(&str, Router)> = Vec::new();
    if engines.config.web.serves_demo() {
        extra.push(("/demo", crate::dialogue::demo_router()));
    }
    if let Err(e) = serve(engines, extra, wait_for_shutdown(shutdown)).await {
        tracing::error!("web server: {e}");
    }
}

/// Resolves when the shutdown channel says `true` (or its sender is gone).
async fn wait_for_shutdown(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Runs the HTTP server, with extra routers nested at the given paths, until `shutdown`
/// completes; then ends live WebRTC calls and returns.
pub async fn serve(
    engines: Arc<Engines>,
    extra: Vec<(&str, Router)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    let config = engines.config.web.clone();
    config.validate()?;
    if !config.enabled {
        shutdown.await;
        return Ok(());
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = WebState::new(engines, stop_rx)?;
    let mut app = router(state.clone());
    for (path, extra_router) in extra {
        app = app.nest(path, extra_router);
    }
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(hotline_sip::tls::TlsCell::open(cert, key, tls::ALPN)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| WebError::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().unwrap_or(config.listen);
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("web phone at {scheme}://{local}/");
    if let Some(cell) = tls.clone() {
        tokio::spawn(hotline_sip::tls::reload_on_sighup(cell, "web"));
    }
    // (tap_io also gives the guarded listener axum's connect info: the peer's address.)
    let listener = GuardedListener::new(listener, &config.limits, tls)
        .tap_io(|io: &mut tls::WebStream| io.set_nodelay());
    let graceful = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(graceful)
    .await
    .map_err(WebError::Serve)?;
    // Give the drivers time to hang up their calls and close their peers.
    let deadline = Instant::now() + Duration::from_secs(5);
    while state.calls.drivers() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The server's routes over `state`. The call routes go through the per-address limits
/// ([`guard::limit_calls`]).
pub fn router(state: WebState) -> Router {
    let calls = Router::new()
        .route("/api/call", post(http::post_offer))
        .route("/api/call/{id}", axum::routing::delete(http::delete_call))
        .route("/api/call/{id}/events", get(events::events_ws))
        .route("/api/ws", get(signalling::signalling_ws))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::limit_calls,
        ));
    let store_api = Router::new()
        .route("/api/calls", get(api::calls))
        .route("/api/calls/{id}", get(api::call))
        .route("/api/calls/{id}/recording", get(api::recording))
        .route("/api/analytics", get(api::analytics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::require_token,
        ));
    Router::new()
        .route("/", get(http::index))
        .route("/{asset}", get(http::asset))
        .route("/healthz", get(http::healthz))
        .route("/metrics", get(http::metrics))
        .route("/api/flows", get(http::flows))
        .merge(calls)
        .merge(store_api)
        .merge(dashboard::routes())
        .merge(agent::routes())
        .merge(supervisor::routes())
        .with_state(state)
}
