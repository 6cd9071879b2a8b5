//! The supervisor's console at `/supervisor` (supervisors and admins): every live call, bot or
//! human, with its latest lines and its agent; the agents and their states; the callers
//! waiting in the queues. A supervisor joins a call over WebRTC to listen, whisper to the
//! agent (only the agent hears), or barge in (three-way), and can switch between them.
//!
//! One WebSocket, `/supervisor/ws`, JSON with a `type`:
//!
//! | from the page | what it does |
//! |---|---|
//! | `join {call_id, mode, sdp}` | joins the call (`listen`, `whisper` or `barge`) with the page's offer |
//! | `mode {mode}` | switches mode on the call joined |
//! | `leave` | leaves it (the call goes on) |
//!
//! | to the page | when |
//! |---|---|
//! | `snapshot {calls, agents, waiting}` | every two seconds |
//! | `answer {call_id, sdp}` | the SDP answer for the joined call's audio |
//! | `mode {mode}` | the mode took effect |
//! | `left {call_id, reason}` | the supervisor's leg ended (they left, or the call did) |
//! | `error {code, message}` | a request that could not be done |
//!
//! Who hears whom is the call's mixing ([`SupervisorMode`]); the leg itself is the agent
//! console's ([`super::agent::open_leg`]). Invariants: as the agent console's (signed-in, same
//! origin, a bad message gets an error and the socket stays); the supervisor's leg never makes
//! the bot fall quiet (listening in is not a transfer).

use std::time::Duration;

use askama::Template;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::call::leg::{LegRole, SupervisorMode};
use crate::call::CallControl;
use crate::store::access::Role;

use super::agent::{call_news, console_user, open_leg, CallNews, OnCall};
use super::dashboard::auth::require;
use super::dashboard::live;
use super::dashboard::{page, static_text, JAVASCRIPT};
use super::registry::PageCommand;
use super::WebState;

const SCRIPT: &str = include_str!("../../assets/dashboard/supervisor.js");

/// How often the page gets a fresh snapshot.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);

/// The console's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/supervisor", get(console_page))
        .route("/supervisor/ws", get(console_ws))
        .route("/supervisor/static/supervisor.js", get(script))
}

#[derive(Template)]
#[template(path = "supervisor.html")]
struct SupervisorPage<'a> {
    user: &'a str,
    role: &'a str,
    csrf: &'a str,
}

async fn console_page(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let (_, session) = match require(&state, &headers, Role::Supervisor, "/supervisor").await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    page(
        StatusCode::OK,
        SupervisorPage {
            user: &session.user,
            role: session.role.code(),
            csrf: &session.csrf,
        }
        .render(),
    )
}

async fn script() -> Response {
    static_text(JAVASCRIPT, SCRIPT)
}

async fn console_ws(
    State(state): State<WebState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let session = match console_user(&state, &headers, Role::Supervisor, "/supervisor").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let limit = state.config.max_offer_bytes + 4096;
    ws.max_message_size(limit).on_upgrade(move |socket| {
        Supervisor {
            state,
            who: session.user,
            socket,
            joined: None,
            leg: None,
        }
        .run()
    })
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Request {
    Join {
        call_id: String,
        mode: SupervisorMode,
        sdp: String,
    },
    Mode {
        mode: SupervisorMode,
    },
    Leave,
}

struct Supervisor {
    state: WebState,
    who: String,
    socket: WebSocket,
    /// The call joined, and the supervisor's leg on it.
    joined: Option<String>,
    leg: Option<OnCall>,
}

impl Supervisor {
    async fn run(mut self) {
        tracing::info!(supervisor = %self.who, "supervisor console connected");
        let mut ticker = tokio::time::interval(SNAPSHOT_EVERY);
        loop {
            let news = tokio::select! {
                message = self.socket.recv() => Step::Message(message),
                _ = ticker.tick() => Step::Snapshot,
                news = call_news(&mut self.leg) => Step::News(news),
            };
            match news {
                Step::Message(Some(Ok(Message::Text(text)))) => self.request(&text).await,
                Step::Message(Some(Ok(Message::Close(_))) | None | Some(Err(_))) => break,
                Step::Message(Some(Ok(_))) => {}
                Step::Snapshot => {
                    let snapshot = snapshot(self.state.clone()).await;
                    self.send(snapshot).await;
                }
                Step::News(CallNews::Ended(reason)) => {
                    self.leg = None;
                    let call_id = self.joined.take();
                    self.send(json!({"type": "left", "call_id": call_id, "reason": reason}))
                        .await;
                }
                Step::News(CallNews::Event(None)) => {
                    if let Some(c) = self.leg.as_mut() {
                        c.events = None;
                    }
                }
                Step::News(_) => {}
            }
        }
        if let Some(call) = self.leg.take() {
            let _ = call.commands.send(PageCommand::Hangup).await;
        }
        tracing::info!(supervisor = %self.who, "supervisor console closed");
    }

    async fn send(&mut self, value: Value) {
        let _ = self
            .socket
            .send(Message::Text(value.to_string().into()))
            .await;
    }

    async fn error(&mut self, code: &str, message: impl std::fmt::Display) {
        tracing::info!(supervisor = %self.who, code, "supervisor console: {message}");
        self.send(json!({"type": "error", "code": code, "message": message.to_string()}))
            .await;
    }

    async fn request(&mut self, text: &str) {
        let request: Request = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                return self
                    .error("console.invalid", format!("not understood: {e}"))
                    .await
            }
        };
        match request {
            Request::Join { call_id, mode, sdp } => self.join(call_id, mode, sdp).await,
            Request::Mode { mode } => {
                let Some(call) = &self.leg else {
                    return self.error("console.no_call", "join a call first").await;
                };
                let _ = call.control.send(CallControl::Supervise {
                    leg: call.leg,
                    who: self.who.clone(),
                    mode,
                });
                tracing::info!(supervisor = %self.who, mode = mode.code(), "supervisor mode");
                self.send(json!({"type": "mode", "mode": mode})).await;
            }
            Request::Leave => {
                if let Some(call) = &self.leg {
                    let _ = call.commands.send(PageCommand::Hangup).await;
                }
            }
        }
    }

    async fn join(&mut self, call_id: String, mode: SupervisorMode, offer: String) {
        if self.leg.is_some() {
            return self
                .error("console.busy", "leave the call you are on first")
                .await;
        }
        if let Err(e) = super::peer::check_offer(&offer) {
            return self.error("offer.invalid", e).await;
        }
        let Some(control) = self.state.engines.control_of(&call_id) else {
            let live = self.state.engines.live_call_ids().join(", ");
            return self
                .error(
                    "console.no_such_call",
                    format!("no live call `{call_id}`; live calls: {live}"),
                )
                .await;
        };
        match open_leg(
            &self.state,
            &self.who,
            LegRole::Supervisor,
            &control,
            offer,
            None,
        )
        .await
        {
            Ok((sdp, call)) => {
                let _ = control.send(CallControl::Supervise {
                    leg: call.leg,
                    who: self.who.clone(),
                    mode,
                });
                tracing::info!(supervisor = %self.who, call = %call_id, mode = mode.code(), "supervisor joined a call");
                self.joined = Some(call_id.clone());
                self.leg = Some(call);
                self.send(json!({"type": "answer", "call_id": call_id, "sdp": sdp, "mode": mode}))
                    .await;
            }
            Err(e) => self.error("console.media", e).await,
        }
    }
}

/// Live calls (from their record folders), the agents and the queues.
async fn snapshot(state: WebState) -> Value {
    let desk = match state.engines.desk.get() {
        Some(desk) => desk.snapshot().await.unwrap_or_default(),
        None => Default::default(),
    };
    let dir = state.engines.config.server.records_dir.clone();
    let ids = state.engines.live_call_ids();
    let calls = tokio::task::spawn_blocking(move || {
        ids.iter()
            .filter_map(|id| live::read(&dir, id))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let calls: Vec<Value> = calls
            .into_iter()
            .map(|c| {
                let agent = desk
                    .agents
                    .iter()
                    .find(|a| a.call_id.as_deref() == Some(c.id.as_str()))
                    .map(|a| a.agent.clone());
                json!({
                    "id": c.id,
                    "transport": c.transport,
                    "from": c.from,
                    "flow": c.flow,
                    "started_unix_ms": c.started_unix_ms,
                    "agent": agent,
                    "lines": c.lines.iter().map(|(who, text)| json!({"who": who, "text": text})).collect::<Vec<_>>(),
                })
            })
            .collect();
    json!({"type": "snapshot", "calls": calls, "agents": desk.agents, "waiting": desk.waiting})
}

/// One turn of the console's loop.
enum Step {
    Message(Option<Result<Message, axum::Error>>),
    Snapshot,
    News(CallNews),
}
