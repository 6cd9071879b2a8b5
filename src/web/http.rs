//! The plain HTTP routes: the web phone's files, `GET /healthz`, `GET /metrics`, `GET /api/flows`, the
//! WHIP-style `POST /api/call` (SDP offer in, SDP answer out) and `DELETE /api/call/<id>`.
//!
//! Owns reading an offer off HTTP: its content type (`application/sdp` or `text/plain`), its
//! size (`web.max_offer_bytes`, checked on `Content-Length` and again while reading) and its
//! encoding (UTF-8), before [`super::offer::start_web_call`] answers it; and the `201 Created`
//! reply with `Content-Type: application/sdp`, `Location: /api/call/<id>` and `X-Call-Id`.
//!
//! Invariants: an offer is read only up to the limit, and only a UTF-8 one of the right type
//! is answered; a hang-up is a [`PageCommand`] to the call's driver, which ends the call (this
//! module never removes a call itself); every refusal is an [`ApiError`] JSON body with its
//! status (404 `not_found` / `call.not_found`, 400 `offer.invalid`, 413 `offer.too_large`,
//! 415 `offer.content_type`, and what answering the offer refuses).

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use crate::dialogue::FlowChoice;
use crate::language::Language;

use super::assets;
use super::guard::ClientIp;
use super::offer::{start_web_call, CallChoice};
use super::registry::PageCommand;
use super::{ApiError, WebState};

/// `GET /`: the web phone's page.
pub(super) async fn index(State(state): State<WebState>) -> Response {
    serve_asset(&state, "index.html")
}

/// `GET /<asset>`: one of the page's files, or 404 `not_found`.
pub(super) async fn asset(State(state): State<WebState>, Path(name): Path<String>) -> Response {
    serve_asset(&state, &name)
}

/// A file from `web.assets_dir` or the built-in set, never cached by the browser.
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

/// `GET /healthz`: `ok` or `closing`, with the call, driver, port and task counters.
pub(super) async fn healthz(State(state): State<WebState>) -> Json<serde_json::Value> {
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

/// `GET /metrics`: the Prometheus text exposition (see [`crate::metrics`]).
pub(super) async fn metrics(State(state): State<WebState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.engines.metrics_text(),
    )
        .into_response()
}

/// `GET /api/flows`: the flows and languages a caller can choose, and the defaults.
pub(super) async fn flows(State(state): State<WebState>) -> Json<serde_json::Value> {
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

/// `POST /api/call`: the WHIP-style offer/answer.
pub(super) async fn post_offer(
    State(state): State<WebState>,
    Extension(ClientIp(client)): Extension<ClientIp>,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match post_offer_inner(&state, client, params, &headers, body).await {
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

/// An oversized offer up to this size is read (and dropped) before the 413 is sent.
const DRAIN_BEFORE_REFUSING_BYTES: usize = 256 * 1024;

/// Checks and reads the offer's body and the caller's choice, then answers it.
async fn post_offer_inner(
    state: &WebState,
    client: IpAddr,
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
            // Read a modest body to its end before refusing it, so the caller gets the 413
            // rather than a connection reset while still sending; a huge one is cut off.
            if len <= DRAIN_BEFORE_REFUSING_BYTES {
                let _ = axum::body::to_bytes(body, DRAIN_BEFORE_REFUSING_BYTES).await;
            }
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
    start_web_call(state, offer, choice, Some(client)).await
}

/// `DELETE /api/call/<id>`: the caller hangs up.
pub(super) async fn delete_call(State(state): State<WebState>, Path(id): Path<String>) -> Response {
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
