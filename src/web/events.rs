//! The live events WebSocket, `GET /api/call/<id>/events`, and the pump behind it that
//! `/api/ws` ([`super::signalling`]) reuses once it has answered.
//!
//! Owns the socket's two directions: out, the call's events as JSON (the same lines as
//! `events.jsonl`), first the backlog from the start of the call, then live, ending with
//! `call_ended` and a close; in, the page's commands (`{"type":"dtmf","digit":"5"}`,
//! `{"type":"hangup"}`), parsed into [`PageCommand`]s for the call's driver, or answered with a
//! `ws.bad_message` error that says what is wrong.
//!
//! Invariants: the pump never owns the call (it holds a [`WebCallEntry`], a sender and an
//! event log, and the driver ends the call); a slow socket skips lagged events rather than
//! holding the call back; only with `hangup_on_close` does a closing socket hang up.

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::guard::MessageRate;
use super::registry::{PageCommand, WebCallEntry, CALL_ENDED};
use super::{ApiError, WebState};

/// `GET /api/call/<id>/events`: the live event stream (WebSocket).
pub(super) async fn events_ws(
    State(state): State<WebState>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    match state.calls.get(&id) {
        Some(entry) => {
            let limits = &state.config.limits;
            let rate = limits.ws_messages_per_s;
            ws.max_message_size(limits.max_ws_message_bytes)
                .max_frame_size(limits.max_ws_message_bytes)
                .on_upgrade(move |socket| pump_events(socket, entry, false, rate))
        }
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
/// A page that sends more than `messages_per_s` messages a second is disconnected (close code
/// 1008, policy violation).
pub(super) async fn pump_events(
    mut socket: WebSocket,
    entry: WebCallEntry,
    hangup_on_close: bool,
    messages_per_s: u32,
) {
    let mut rate = MessageRate::new(messages_per_s);
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
                Some(Ok(_)) if !rate.allow(std::time::Instant::now()) => {
                    tracing::info!("a page sent too many WebSocket messages; closing its socket");
                    let close = CloseFrame { code: close_code::POLICY, reason: "too many messages".into() };
                    let _ = socket.send(Message::Close(Some(close))).await;
                    break;
                }
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

/// Parses a message a page sends on its events socket (`dtmf`, `hangup`); errors say what is
/// wrong.
pub fn parse_page_message(text: &str) -> Result<PageCommand, String> {
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
}
