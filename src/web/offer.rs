//! Answering an offer: the one place a web call starts, shared by `POST /api/call`
//! ([`super::http`]) and `/api/ws` ([`super::signalling`]).
//!
//! Owns the caller's choice read from query parameters or the signalling message
//! ([`CallChoice`]: `flow`, `language` and free-form `vars`, bounded in number and size), and
//! [`start_web_call`]: the checks in order (shutdown, SDP, a web permit, a UDP port, the media
//! session, the answer, a line from `Engines`), then the registry entry and the driver.
//!
//! Invariants: an offer that gets an answer gets exactly one [`WebCallDriver`] task, which
//! holds the call's permit, port lease and registry slot until the call ends; an offer refused
//! at any step gives back what it took (dropping the permit and lease, closing the peer) and
//! the caller gets an [`ApiError`] with a stable code (`server.shutdown`, `offer.invalid`,
//! `webrtc.busy`, `webrtc.no_ports`, `webrtc.internal`, `server.busy`, `call.flow`,
//! `server.closed`, `call.start`, `call.language`, `call.vars`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use tokio::sync::mpsc;

use crate::call::{CallError, CallInfo};
use crate::language::Language;

use super::driver::{forward_page_events, WebCallDriver};
use super::media::WebMediaSession;
use super::peer::{self, PeerError};
use super::registry::{self, WebCallEntry};
use super::{ApiError, WebState};

/// What a caller chose on the page.
#[derive(Debug, Default, Clone)]
pub struct CallChoice {
    flow: Option<String>,
    language: Option<Language>,
    vars: BTreeMap<String, String>,
}

impl CallChoice {
    /// Reads `flow`, `language` and free-form vars from query parameters.
    pub fn from_params(mut params: BTreeMap<String, String>) -> Result<Self, ApiError> {
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
pub(super) async fn start_web_call(
    state: &WebState,
    offer: String,
    choice: CallChoice,
    client: Option<IpAddr>,
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
    if let Some(client) = client {
        vars.insert("remote_addr".into(), client.to_string());
    }
    let info = CallInfo {
        transport: "webrtc".into(),
        from: client.map(|ip| format!("web:{ip}")),
        to: None,
        codec: Some("opus/48000".into()),
        language: choice.language,
        flow: choice.flow,
        vars,
        tracks_transfers: false,
    };
    let answer = link.answer_sdp.clone();
    let (commands_tx, commands_rx) = mpsc::channel(32);
    let events = Arc::new(registry::EventLog::new());
    let edge = WebCallDriver {
        link,
        media,
        commands: commands_rx,
        events: Arc::clone(&events),
        connect_timeout: Duration::from_millis(state.config.connect_timeout_ms),
        shutdown: state.shutdown.clone(),
        permit,
        offer_at,
    }
    .into_edge();
    // A refused call drops its edge, which closes the peer connection.
    let started = match state.engines.start_call_on(info, Box::new(edge)) {
        Ok(started) => started,
        Err(e) => {
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
    let call_id = started.id.to_string();
    let slot = state.calls.insert(
        call_id.clone(),
        WebCallEntry {
            commands: commands_tx,
            events: Arc::clone(&events),
        },
    );
    tokio::spawn(forward_page_events(started.events, events, slot));
    tracing::info!(call = %call_id, answer_ms = offer_at.elapsed().as_millis() as u64, "webrtc offer answered");
    Ok((call_id, answer))
}

/// A peer's failure as the caller sees it: a bad offer is theirs, the stack's is ours.
fn peer_error(e: PeerError) -> ApiError {
    match e {
        PeerError::BadOffer(m) => ApiError::new(StatusCode::BAD_REQUEST, "offer.invalid", m),
        PeerError::Stack(m) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "webrtc.internal", m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
