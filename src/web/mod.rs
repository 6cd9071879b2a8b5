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
//!
//! Invariants: at most `web.max_calls` WebRTC calls hold a permit at once (and `Engines` caps
//! all transports at `server.max_calls`); every accepted offer gets exactly one driver task,
//! which owns the call's permit, port lease and registry slot and drops them when it ends;
//! bad input gets an error response, never a panic.

pub mod assets;
pub mod config;
pub mod driver;
pub mod media;
pub mod peer;
pub mod ports;
pub mod registry;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::call::{CallError, CallInfo, Engines};
use crate::dialogue::FlowChoice;
use crate::language::Language;

pub use config::{TurnServerConfig, WebConfig, WebConfigError};
use driver::WebCallDriver;
use media::WebMediaSession;
use peer::PeerError;
use ports::PortPool;
use registry::{PageCommand, WebCallEntry, WebCalls, CALL_ENDED};

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
    shutdown: watch::Receiver<bool>,
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
            config: Arc::new(config),
            engines,
            shutdown,
        })
    }

    /// WebRTC calls live now.
    pub fn webrtc_calls(&self) -> usize {
        self.calls.len()
    }
}

/// The web transport's task for `hotline serve`: serves until `shutdown` turns true, then ends
/// live WebRTC calls. Errors (a taken port, a bad `[web]` section) are logged.
pub async fn run(engines: Arc<Engines>, shutdown: watch::Receiver<bool>) {
    // Other parts' routers are mounted here.
    let extra: Vec<(&str, Router)> = vec![("/demo", crate::dialogue::demo_router())];
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
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| WebError::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().unwrap_or(config.listen);
    tracing::info!("web phone at http://{local}/");
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

/// The server's routes over `state`.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/{asset}", get(asset))
        .route("/healthz", get(healthz))
        .route("/api/flows", get(flows))
        .route("/api/call", post(post_offer))
        .route("/api/call/{id}", axum::routing::delete(delete_call))
        .route("/api/call/{id}/events", get(events_ws))
        .route("/api/ws", get(signalling_ws))
        .with_state(state)
}

async fn index(State(state): State<WebState>) -> Response {
    serve_asset(&state, "index.html")
}

async fn asset(State(state): State<WebState>, Path(name): Path<String>) -> Response {
    serve_asset(&state, &name)
}

fn serve_asset(state: &WebState, name: &str) -> Response {
    match assets::load(name, state.config.assets_dir.as_deref()) {
        Some((mime, bytes)) => (
            [
                (header::CONTENT_TYPE, mime),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such file: {name}"),
        )
        .into_response(),
    }
}

async fn healthz(State(state): State<WebState>) -> Json<serde_json::Value> {
    let tasks_alive = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let status = if state.engines.is_closed() {
        "closing"
    } else {
        "ok"
    };
    Json(json!({
        "status": status,
        "calls": state.engines.active_calls(),
        "webrtc_calls": state.calls.len(),
        "webrtc_drivers": state.calls.drivers(),
        "webrtc_max_calls": state.config.max_calls,
        "media_ports_leased": state.ports.leased(),
        "tasks_alive": tasks_alive,
    }))
}

async fn flows(State(state): State<WebState>) -> Json<serde_json::Value> {
    // The default is what a call that chooses nothing runs (the dialogue's plan).
    let default = state.engines.dialogue.plan(&FlowChoice::default()).ok();
    let default_language = default.as_ref().map(|p| p.language()).unwrap_or_default();
    let flows: Vec<serde_json::Value> = state
        .engines
        .dialogue
        .flows()
        .into_iter()
        .map(|(name, language)| json!({"name": name, "language": language}))
        .collect();
    let mut languages: Vec<Language> = vec![default_language];
    for f in state.engines.dialogue.flows() {
        if !languages.contains(&f.1) {
            languages.push(f.1);
        }
    }
    let default_flow = default.as_ref().map(|p| p.flow().to_string());
    Json(json!({
        "default_flow": default_flow,
        "default_language": default_language,
        "flows": flows,
        "languages": languages,
    }))
}

/// What a caller chose on the page.
#[derive(Debug, Default, Clone)]
struct CallChoice {
    flow: Option<String>,
    language: Option<Language>,
    vars: BTreeMap<String, String>,
}

impl CallChoice {
    /// Reads `flow`, `language` and free-form vars from query parameters.
    fn from_params(mut params: BTreeMap<String, String>) -> Result<Self, ApiError> {
        let flow = params.remove("flow").filter(|f| !f.is_empty());
        let language = match params.remove("language").filter(|l| !l.is_empty()) {
            Some(l) => Some(
                l.parse::<Language>()
                    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "call.language", e))?,
            ),
            None => None,
        };
        if params.len() > 32 || params.iter().any(|(k, v)| k.len() > 64 || v.len() > 512) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "call.vars",
                "at most 32 parameters, names up to 64 bytes, values up to 512",
            ));
        }
        Ok(Self {
            flow,
            language,
            vars: params,
        })
    }
}

/// Answers one offer and starts the call's driver. Returns the call id and SDP answer.
async fn start_web_call(
    state: &WebState,
    offer: String,
    choice: CallChoice,
    remote: Option<SocketAddr>,
) -> Result<(String, String), ApiError> {
    let offer_at = Instant::now();
    if *state.shutdown.borrow() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server.shutdown",
            "the server is shutting down",
        ));
    }
    peer::check_offer(&offer).map_err(peer_error)?;
    let permit = Arc::clone(&state.permits)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "webrtc.busy",
                format!(
                    "all {} web lines are busy; try again shortly",
                    state.config.max_calls
                ),
            )
        })?;
    let lease = state.ports.lease().map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "webrtc.no_ports",
            e.to_string(),
        )
    })?;
    let media = WebMediaSession::new().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "webrtc.internal",
            e.to_string(),
        )
    })?;
    let link = peer::answer_offer(&state.config, offer, lease)
        .await
        .map_err(peer_error)?;

    let mut vars = choice.vars;
    if let Some(remote) = remote {
        vars.insert("remote_addr".into(), remote.to_string());
    }
    let info = CallInfo {
        transport: "webrtc".into(),
        from: remote.map(|r| format!("web:{}", r.ip())),
        to: None,
        codec: Some("opus/48000".into()),
        language: choice.language,
        flow: choice.flow,
        vars,
        tracks_transfers: false,
    };
    let (call, media_report) = match state.engines.start_call_reporting_media(info) {
        Ok(started) => started,
        Err(e) => {
            let _ = link.peer.close().await;
            return Err(match e {
                CallError::Busy { .. } => ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server.busy",
                    "every line is busy; try again shortly",
                ),
                CallError::Flow(e) => {
                    ApiError::new(StatusCode::BAD_REQUEST, "call.flow", e.to_string())
                }
                CallError::Closed => ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server.closed",
                    "the line is closed: the server is shutting down; call again later",
                ),
                #[allow(unreachable_patterns)]
                other => ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "call.start",
                    other.to_string(),
                ),
            });
        }
    };
    let call_id = call.id.to_string();
    let answer = link.answer_sdp.clone();
    let (commands_tx, commands_rx) = mpsc::channel(32);
    let events = Arc::new(registry::EventLog::new());
    let slot = state.calls.insert(
        call_id.clone(),
        WebCallEntry {
            commands: commands_tx,
            events: Arc::clone(&events),
        },
    );
    let driver = WebCallDriver {
        call,
        link,
        media,
        commands: commands_rx,
        events,
        connect_timeout: Duration::from_millis(state.config.connect_timeout_ms),
        shutdown: state.shutdown.clone(),
        slot,
        permit,
        offer_at,
    };
    tokio::spawn(driver.run_reporting_media(media_report));
    tracing::info!(call = %call_id, answer_ms = offer_at.elapsed().as_millis() as u64, "webrtc offer answered");
    Ok((call_id, answer))
}

fn peer_error(e: PeerError) -> ApiError {
    match e {
        PeerError::BadOffer(m) => ApiError::new(StatusCode::BAD_REQUEST, "offer.invalid", m),
        PeerError::Stack(m) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "webrtc.internal", m)
        }
    }
}

/// `POST /api/call`: the WHIP-style offer/answer.
async fn post_offer(
    State(state): State<WebState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match post_offer_inner(&state, remote, params, &headers, body).await {
        Ok((call_id, answer)) => {
            let location = format!("/api/call/{call_id}");
            let mut response = (StatusCode::CREATED, answer).into_response();
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/sdp"),
            );
            if let Ok(v) = HeaderValue::from_str(&location) {
                h.insert(header::LOCATION, v);
            }
            if let Ok(v) = HeaderValue::from_str(&call_id) {
                h.insert("x-call-id", v);
            }
            response
        }
        Err(e) => {
            tracing::info!(code = e.code, message = %e.message, "webrtc offer refused");
            e.into_response()
        }
    }
}

async fn post_offer_inner(
    state: &WebState,
    remote: SocketAddr,
    params: BTreeMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(String, String), ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        if !ct.starts_with("application/sdp") && !ct.starts_with("text/plain") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "offer.content_type",
                format!("send the offer as application/sdp, not {ct}"),
            ));
        }
    }
    let limit = state.config.max_offer_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "offer.too_large",
            format!("the offer is larger than {limit} bytes"),
        )
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
    {
        if len > limit {
            return Err(too_large());
        }
    }
    let bytes: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let offer = String::from_utf8(bytes.to_vec()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "offer.invalid",
            "the offer is not UTF-8 text",
        )
    })?;
    let choice = CallChoice::from_params(params)?;
    start_web_call(state, offer, choice, Some(remote)).await
}

/// `DELETE /api/call/<id>`: the caller hangs up.
async fn delete_call(State(state): State<WebState>, Path(id): Path<String>) -> Response {
    match state.calls.get(&id) {
        Some(entry) => {
            let _ = entry.commands.send(PageCommand::Hangup).await;
            StatusCode::NO_CONTENT.into_response()
        }
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "call.not_found",
            format!("no live call {id}"),
        )
        .into_response(),
    }
}

/// `GET /api/call/<id>/events`: the live event stream (WebSocket).
async fn events_ws(
    State(state): State<WebState>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    match state.calls.get(&id) {
        Some(entry) => ws.on_upgrade(move |socket| pump_events(socket, entry, false)),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "call.not_found",
            format!("no live call {id}"),
        )
        .into_response(),
    }
}

/// A message from the page on an events socket.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PageMessage {
    Dtmf { digit: String },
    Hangup,
}

/// Sends the call's events to the socket and the page's commands to the call. With
/// `hangup_on_close`, a socket that closes hangs up the call (WebSocket signalling).
async fn pump_events(mut socket: WebSocket, entry: WebCallEntry, hangup_on_close: bool) {
    let sub = entry.events.subscribe();
    for json in sub.backlog {
        if socket
            .send(Message::Text(json.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
    }
    let Some(mut live) = sub.live else {
        let _ = socket.send(Message::Close(None)).await;
        return;
    };
    loop {
        tokio::select! {
            event = live.recv() => match event {
                Ok(json) => {
                    let ended = json.contains(&format!("\"type\":\"{CALL_ENDED}\""));
                    if socket.send(Message::Text(json.to_string().into())).await.is_err() {
                        break;
                    }
                    if ended {
                        let _ = socket.send(Message::Close(None)).await;
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    match parse_page_message(&text) {
                        Ok(command) => {
                            let _ = entry.commands.send(command).await;
                        }
                        Err(message) => {
                            let reply = json!({"type": "error", "error": "ws.bad_message", "message": message});
                            if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    if hangup_on_close {
        let _ = entry.commands.send(PageCommand::Hangup).await;
    }
}

/// Parses a page command; errors say what is wrong.
fn parse_page_message(text: &str) -> Result<PageCommand, String> {
    let message: PageMessage = serde_json::from_str(text)
        .map_err(|e| format!("expected {{\"type\":\"dtmf\"|\"hangup\"}}: {e}"))?;
    match message {
        PageMessage::Hangup => Ok(PageCommand::Hangup),
        PageMessage::Dtmf { digit } => {
            let mut chars = digit.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() || "*#ABCD".contains(c) => {
                    Ok(PageCommand::Dtmf(c))
                }
                _ => Err(format!("{digit:?} is not a DTMF key (0-9, *, #, A-D)")),
            }
        }
    }
}

/// The first message on `/api/ws`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum SignalOffer {
    Offer {
        sdp: String,
        #[serde(default)]
        flow: Option<String>,
        #[serde(default)]
        language: Option<String>,
        #[serde(default)]
        vars: BTreeMap<String, String>,
    },
}

/// `GET /api/ws`: offer/answer and events over one WebSocket.
async fn signalling_ws(
    State(state): State<WebState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let limit = state.config.max_offer_bytes + 4096;
    ws.max_message_size(limit)
        .on_upgrade(move |socket| signal_over_ws(socket, state, remote))
}

async fn signal_over_ws(mut socket: WebSocket, state: WebState, remote: SocketAddr) {
    let first = match tokio::time::timeout(Duration::from_secs(10), socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => text,
        Ok(Some(Err(_))) => {
            let e = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "offer.too_large",
                "the offer message is too large",
            );
            send_ws_error(&mut socket, &e).await;
            return;
        }
        _ => return,
    };
    let result = async {
        let SignalOffer::Offer {
            sdp,
            flow,
            language,
            mut vars,
        } = serde_json::from_str(&first).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "offer.invalid",
                format!("expected {{\"type\":\"offer\",\"sdp\":...}}: {e}"),
            )
        })?;
        if sdp.len() > state.config.max_offer_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "offer.too_large",
                format!(
                    "the offer is larger than {} bytes",
                    state.config.max_offer_bytes
                ),
            ));
        }
        if let Some(flow) = flow {
            vars.insert("flow".into(), flow);
        }
        if let Some(language) = language {
            vars.insert("language".into(), language);
        }
        let choice = CallChoice::from_params(vars)?;
        start_web_call(&state, sdp, choice, Some(remote)).await
    }
    .await;
    match result {
        Ok((call_id, answer)) => {
            let reply = json!({"type": "answer", "call_id": call_id, "sdp": answer});
            if socket
                .send(Message::Text(reply.to_string().into()))
                .await
                .is_err()
            {
                if let Some(entry) = state.calls.get(&call_id) {
                    let _ = entry.commands.send(PageCommand::Hangup).await;
                }
                return;
            }
            match state.calls.get(&call_id) {
                Some(entry) => pump_events(socket, entry, true).await,
                None => {
                    let _ = socket.send(Message::Close(None)).await;
                }
            }
        }
        Err(e) => send_ws_error(&mut socket, &e).await,
    }
}

async fn send_ws_error(socket: &mut WebSocket, e: &ApiError) {
    let reply = json!({"type": "error", "error": e.code, "status": e.status.as_u16(), "message": e.message});
    let _ = socket.send(Message::Text(reply.to_string().into())).await;
    let _ = socket.send(Message::Close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_messages_parse_or_explain() {
        assert_eq!(
            parse_page_message(r#"{"type":"dtmf","digit":"5"}"#),
            Ok(PageCommand::Dtmf('5'))
        );
        assert_eq!(
            parse_page_message(r##"{"type":"dtmf","digit":"#"}"##),
            Ok(PageCommand::Dtmf('#'))
        );
        assert_eq!(
            parse_page_message(r#"{"type":"hangup"}"#),
            Ok(PageCommand::Hangup)
        );
        assert!(parse_page_message(r#"{"type":"dtmf","digit":"55"}"#).is_err());
        assert!(parse_page_message(r#"{"type":"dtmf","digit":"x"}"#).is_err());
        assert!(parse_page_message("not json").is_err());
    }

    #[test]
    fn call_choice_reads_flow_language_and_vars() {
        let params: BTreeMap<String, String> =
            [("flow", "orders"), ("language", "zh"), ("order", "A123")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let choice = CallChoice::from_params(params).expect("valid");
        assert_eq!(choice.flow.as_deref(), Some("orders"));
        assert_eq!(choice.language, Some(Language::Zh));
        assert_eq!(choice.vars.get("order").map(String::as_str), Some("A123"));
        let bad = [("language".to_string(), "fr".to_string())]
            .into_iter()
            .collect();
        let err = CallChoice::from_params(bad).expect_err("fr");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
    }
}
