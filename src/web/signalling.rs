//! WebSocket signalling, `GET /api/ws`: offer/answer and the call's events over one socket,
//! for clients that would rather not use WHIP-style HTTP.
//!
//! Owns the exchange: the first message, within 10 s, is `{"type":"offer","sdp":...}` with
//! optional `flow`, `language` and `vars`; the reply is `{"type":"answer","call_id":...,
//! "sdp":...}` and then the events as on `/api/call/<id>/events` ([`super::events`]), or one
//! `{"type":"error","error":code,"status":...,"message":...}` and a close.
//!
//! Invariants: a message is at most `web.max_offer_bytes` + 4 KiB and its SDP at most
//! `web.max_offer_bytes`; the offer is answered by the same [`start_web_call`] as
//! `POST /api/call`, so the codes and limits are the same; closing the socket hangs up the call,
//! and so does an answer that cannot be sent.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde::Deserialize;
use serde_json::json;

use super::events::pump_events;
use super::guard::ClientIp;
use super::offer::{start_web_call, CallChoice};
use super::registry::PageCommand;
use super::{ApiError, WebState};

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
pub(super) async fn signalling_ws(
    State(state): State<WebState>,
    Extension(ClientIp(client)): Extension<ClientIp>,
    ws: WebSocketUpgrade,
) -> Response {
    let limit = state.config.max_offer_bytes + 4096;
    ws.max_message_size(limit)
        .on_upgrade(move |socket| signal_over_ws(socket, state, client))
}

/// Reads the offer (a socket silent for 10 s is dropped), answers it, then pumps the events.
async fn signal_over_ws(mut socket: WebSocket, state: WebState, client: IpAddr) {
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
        let (sdp, choice) = read_offer_message(&first, state.config.max_offer_bytes)?;
        start_web_call(&state, sdp, choice, Some(client)).await
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
                Some(entry) => {
                    let rate = state.config.limits.ws_messages_per_s;
                    pump_events(socket, entry, true, rate).await
                }
                None => {
                    let _ = socket.send(Message::Close(None)).await;
                }
            }
        }
        Err(e) => send_ws_error(&mut socket, &e).await,
    }
}

/// Reads the first message on `/api/ws`: the offer's SDP and what the caller chose, or the
/// error the page is sent (`offer.invalid`, `offer.too_large`, `call.language`, `call.vars`).
/// Sans-IO, so that the fuzz target reads messages exactly as the socket does.
pub fn read_offer_message(
    text: &str,
    max_offer_bytes: usize,
) -> Result<(String, CallChoice), ApiError> {
    let SignalOffer::Offer {
        sdp,
        flow,
        language,
        mut vars,
    } = serde_json::from_str(text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "offer.invalid",
            format!("expected {{\"type\":\"offer\",\"sdp\":...}}: {e}"),
        )
    })?;
    if sdp.len() > max_offer_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "offer.too_large",
            format!("the offer is larger than {max_offer_bytes} bytes"),
        ));
    }
    if let Some(flow) = flow {
        vars.insert("flow".into(), flow);
    }
    if let Some(language) = language {
        vars.insert("language".into(), language);
    }
    Ok((sdp, CallChoice::from_params(vars)?))
}

/// Sends one error message, then closes the socket.
async fn send_ws_error(socket: &mut WebSocket, e: &ApiError) {
    let reply = json!({"type": "error", "error": e.code, "status": e.status.as_u16(), "message": e.message});
    let _ = socket.send(Message::Text(reply.to_string().into())).await;
    let _ = socket.send(Message::Close(None)).await;
}
