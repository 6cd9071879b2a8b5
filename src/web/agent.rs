//! The agent console at `/agent`: a human agent signs in (the dashboard's login, any role),
//! sets their state, and takes the calls the bot hands to a queue, over two-way WebRTC audio.
//!
//! The page (askama `agent.html`, `agent.js`) talks over one WebSocket, `/agent/ws`, in JSON
//! messages with a `type`:
//!
//! | from the page | what it does |
//! |---|---|
//! | `state {state: available\|away}` | sets the agent's state |
//! | `accept {call_id, sdp}` | takes the ringing call, with the page's WebRTC offer |
//! | `decline {call_id}` | passes it to the next agent; after a warm briefing, sends the caller back to the bot (`rejected`) |
//! | `connect` | after a warm briefing, connects the caller |
//! | `mute {on}` / `hold {on}` | the caller stops hearing the agent / hears hold audio |
//! | `hangup` | ends the agent's side (the call ends: `agent.hangup`) |
//! | `transfer {target}` | hands the caller on to another `queue:NAME` or a `sip:` target; the agent's side ends |
//! | `disposition {call_id, disposition, notes}` | saves the wrap-up to the call's record |
//!
//! | to the page | when |
//! |---|---|
//! | `state {state}` | the agent's state changed |
//! | `ring {call_id, pop, ring_timeout_s}` | a call rings this agent, with the screen-pop |
//! | `stop_ringing {call_id}` | it rings no more (timed out, the caller left) |
//! | `answer {call_id, sdp}` | the SDP answer for the accepted call's audio |
//! | `briefing_done {call_id}` | a warm transfer's spoken summary has played; connect or decline |
//! | `event {event}` | the call's live events (the caller's words as they are recognised) |
//! | `assist {call_id, said, suggestions}` | knowledge-base answers for what the caller just said |
//! | `call_ended {call_id, reason, draft}` | the call is over; `draft` is a wrap-up summary |
//! | `saved {call_id}` / `error {code, message}` | replies |
//! | `replaced` | this agent signed in on another page |
//!
//! Warm transfer (`warm = true` on the queue): once the agent's audio connects, they hear the
//! call's summary spoken ([`ScreenPop::briefing`]) while the caller stays on hold, hearing none
//! of it; the leg joins the call only when the agent connects.
//!
//! Ownership: the desk ([`crate::agents::desk`]) decides who rings; this module owns the
//! console's socket and the agent's media leg. The leg is a [`WebEdge`] (the same WebRTC edge a
//! web caller has) pumped into a call leg ([`crate::call::leg`]): per 20 ms, one frame from the
//! agent to the call and the one frame the agent hears back.
//!
//! Invariants: only a signed-in user reaches the socket, from this server's own pages (the
//! `Origin` must match `Host`); a bad message gets an `error` and the socket stays; closing the
//! page signs the agent out and hangs up their leg (the caller's call then ends).

use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::agents::desk::{AgentDesk, ConsoleMessage};
use crate::agents::pop::ScreenPop;
use crate::agents::AgentState;
use crate::audio::Frame;
use crate::call::edge::CallerEdge;
use crate::call::leg::{LegHandle, LegRole};
use crate::call::{CallControl, CallInput};
use crate::dialogue::Prompt;
use crate::session::{CallEvent, EventKind};
use crate::store::access::Role;

use super::dashboard::auth::require;
use super::dashboard::{page, static_text, JAVASCRIPT};
use super::driver::{WebCallDriver, WebEdge};
use super::media::WebMediaSession;
use super::peer;
use super::registry::{EventLog, PageCommand};
use super::WebState;
use crate::store::access::Session;

const SCRIPT: &str = include_str!("../../assets/dashboard/agent.js");

/// The console's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/agent", get(console_page))
        .route("/agent/ws", get(console_ws))
        .route("/agent/static/agent.js", get(script))
}

#[derive(Template)]
#[template(path = "agent.html")]
struct AgentPage<'a> {
    user: &'a str,
    role: &'a str,
    csrf: &'a str,
}

async fn console_page(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let (_, session) = match require(&state, &headers, Role::Agent, "/agent").await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    page(
        StatusCode::OK,
        AgentPage {
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

/// Who may open a console's socket at `path`: a request from this server's own page, signed
/// in with at least `least`; otherwise the response that refuses it (403, or the login).
pub(super) async fn console_user(
    state: &WebState,
    headers: &HeaderMap,
    least: Role,
    path: &str,
) -> Result<Session, Response> {
    if !same_origin(headers) {
        tracing::warn!(path, "console: a socket from another origin was refused");
        return Err((
            StatusCode::FORBIDDEN,
            "console: cross-origin socket refused",
        )
            .into_response());
    }
    match require(state, headers, least, path).await {
        Ok((_, session)) => Ok(session),
        Err(r) => Err(r.into_response()),
    }
}

/// Whether a WebSocket request comes from this server's own page (browsers always send
/// `Origin` on WebSocket requests; another site's page must not drive a console).
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
    match (host, origin) {
        (Some(host), Some(origin)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host),
        _ => false,
    }
}

async fn console_ws(
    State(state): State<WebState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let session = match console_user(&state, &headers, Role::Agent, "/agent").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(desk) = state.engines.desk.get().cloned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "agent console: the agent desk is not running",
        )
            .into_response();
    };
    let limit = state.config.max_offer_bytes + 4096;
    ws.max_message_size(limit).on_upgrade(move |socket| {
        Console {
            state,
            desk,
            agent: session.user,
            socket,
            call: None,
            ringing: Vec::new(),
        }
        .run()
    })
}

/// What the page asks.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Request {
    State {
        state: String,
    },
    Accept {
        call_id: String,
        sdp: String,
    },
    Decline {
        call_id: String,
    },
    Mute {
        on: bool,
    },
    Hold {
        on: bool,
    },
    Connect,
    Hangup,
    Transfer {
        target: String,
    },
    Disposition {
        call_id: String,
        disposition: String,
        #[serde(default)]
        notes: String,
    },
}

/// The call a console is on (an agent's, or a supervisor's): its leg and the news from it.
pub(super) struct OnCall {
    /// The leg, as the call knows it.
    pub(super) leg: crate::call::leg::LegId,
    pub(super) pop: ScreenPop,
    /// Hangs up the agent's leg.
    pub(super) commands: mpsc::Sender<PageCommand>,
    /// Mute and hold, for the leg's pump.
    pub(super) leg_mode: tokio::sync::watch::Sender<LegMode>,
    /// The call's live events.
    pub(super) events: Option<broadcast::Receiver<CallEvent>>,
    /// Why the leg ended, once it has.
    pub(super) ended: oneshot::Receiver<String>,
    /// What the caller said while with the agent, for the wrap-up draft.
    pub(super) said: Vec<String>,
    /// The call's control channel (a declined warm transfer goes back to the bot on it).
    pub(super) control: mpsc::UnboundedSender<CallControl>,
    /// Warm: connects the caller; and the news that the briefing has played.
    pub(super) connect: Option<tokio::sync::watch::Sender<bool>>,
    pub(super) briefed: Option<oneshot::Receiver<()>>,
}

/// What the caller hears of the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum LegMode {
    #[default]
    Talking,
    Muted,
    Held,
}

struct Console {
    state: WebState,
    desk: AgentDesk,
    agent: String,
    socket: WebSocket,
    call: Option<OnCall>,
    /// Calls ringing this console, with their pops.
    ringing: Vec<ScreenPop>,
}

impl Console {
    async fn run(mut self) {
        let (tx, mut from_desk) = mpsc::unbounded_channel();
        let Ok(connection) = self.desk.connect(&self.agent, tx).await else {
            return;
        };
        tracing::info!(agent = %self.agent, "agent console connected");
        loop {
            tokio::select! {
                message = self.socket.recv() => match message {
                    Some(Ok(Message::Text(text))) => self.request(&text).await,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                message = from_desk.recv() => match message {
                    Some(ConsoleMessage::Replaced) | None => {
                        self.send(json!({"type": "replaced"})).await;
                        break;
                    }
                    Some(message) => self.desk_said(message).await,
                },
                news = call_news(&mut self.call) => match news {
                    CallNews::Event(event) => self.call_event(event).await,
                    CallNews::Briefed => {
                        let call_id = self.call.as_ref().map(|c| c.pop.call_id.clone());
                        self.send(json!({"type": "briefing_done", "call_id": call_id})).await;
                    }
                    CallNews::Ended(reason) => self.call_over(reason).await,
                },
            }
        }
        if let Some(call) = self.call.take() {
            let _ = call.commands.send(PageCommand::Hangup).await;
        }
        self.desk.disconnect(&self.agent, connection);
        tracing::info!(agent = %self.agent, "agent console closed");
    }

    async fn send(&mut self, value: Value) {
        let _ = self
            .socket
            .send(Message::Text(value.to_string().into()))
            .await;
    }

    async fn error(&mut self, code: &str, message: impl std::fmt::Display) {
        tracing::info!(agent = %self.agent, code, "agent console: {message}");
        self.send(json!({"type": "error", "code": code, "message": message.to_string()}))
            .await;
    }

    async fn desk_said(&mut self, message: ConsoleMessage) {
        match &message {
            ConsoleMessage::Ring { pop, .. } => self.ringing.push((**pop).clone()),
            ConsoleMessage::StopRinging { call_id } => {
                self.ringing.retain(|p| &p.call_id != call_id)
            }
            _ => {}
        }
        match serde_json::to_value(&message) {
            Ok(value) => self.send(value).await,
            Err(e) => tracing::error!("agent console: a message did not serialize: {e}"),
        }
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
            Request::State { state } => {
                let state = match state.as_str() {
                    "available" => AgentState::Available,
                    "away" => AgentState::Away,
                    other => {
                        return self
                            .error(
                                "console.state",
                                format!(
                                    "`{other}` is not a state you can set; valid: available, away"
                                ),
                            )
                            .await
                    }
                };
                if let Err(e) = self.desk.set_state(&self.agent, state).await {
                    self.error("console.state", e).await;
                }
            }
            Request::Accept { call_id, sdp } => self.accept(call_id, sdp).await,
            Request::Decline { call_id } => {
                if let Some(call) = self.call.as_mut().filter(|c| c.pop.call_id == call_id) {
                    if call.connect.as_ref().is_some_and(|c| !*c.borrow()) {
                        // Declined after the briefing: the caller goes back to the bot.
                        let _ = call.control.send(CallControl::TransferFailed {
                            reason: crate::session::TransferOutcome::Rejected.code().to_string(),
                        });
                        let _ = call.commands.send(PageCommand::Hangup).await;
                    }
                    return;
                }
                self.ringing.retain(|p| p.call_id != call_id);
                if let Err(e) = self.desk.decline(&self.agent, &call_id).await {
                    self.error("console.decline", e).await;
                }
            }
            Request::Connect => match self.call.as_ref().and_then(|c| c.connect.as_ref()) {
                Some(connect) => {
                    connect.send_replace(true);
                }
                None => {
                    self.error("console.no_call", "there is no warm call to connect")
                        .await
                }
            },
            Request::Mute { on } => self.set_mode(on, LegMode::Muted).await,
            Request::Hold { on } => self.set_mode(on, LegMode::Held).await,
            Request::Transfer { target } => self.transfer(target).await,
            Request::Hangup => match &self.call {
                Some(call) => {
                    let _ = call.commands.send(PageCommand::Hangup).await;
                }
                None => {
                    self.error("console.no_call", "there is no call to hang up")
                        .await
                }
            },
            Request::Disposition {
                call_id,
                disposition,
                notes,
            } => self.save_disposition(call_id, disposition, notes).await,
        }
    }

    /// Hands the caller on: the call starts a transfer to `target`, and the agent's leg ends.
    async fn transfer(&mut self, target: String) {
        let queues = &self.state.engines.config.agents.queues;
        let valid = match crate::agents::queue_of(&target) {
            Some(queue) => queues.contains_key(queue),
            None => target.starts_with("sip:"),
        };
        if !valid {
            let names: Vec<String> = queues.keys().map(|q| format!("queue:{q}")).collect();
            return self
                .error(
                    "console.transfer",
                    format!(
                        "`{target}` is not a target; use a sip: URI or one of {}",
                        names.join(", ")
                    ),
                )
                .await;
        }
        let Some(call) = &self.call else {
            return self
                .error("console.no_call", "there is no call to hand on")
                .await;
        };
        if call.control.send(CallControl::Transfer { target }).is_ok() {
            let _ = call.commands.send(PageCommand::Hangup).await;
        }
    }

    async fn set_mode(&mut self, on: bool, mode: LegMode) {
        let Some(call) = &self.call else {
            return self.error("console.no_call", "there is no call").await;
        };
        let next = if on { mode } else { LegMode::Talking };
        call.leg_mode.send_replace(next);
    }

    /// Takes the ringing call: the desk hands over its control channel, the call adds a leg
    /// for the agent, and the page's offer is answered; the leg joins once its media flows.
    async fn accept(&mut self, call_id: String, offer: String) {
        if self.call.is_some() {
            return self
                .error("console.busy", "finish the call you are on first")
                .await;
        }
        if let Err(e) = peer::check_offer(&offer) {
            return self.error("offer.invalid", e).await;
        }
        let accepted = match self.desk.accept(&self.agent, &call_id).await {
            Ok(a) => a,
            Err(e) => return self.error("console.accept", e).await,
        };
        self.ringing.retain(|p| p.call_id != call_id);
        let warm = self
            .state
            .engines
            .config
            .agents
            .queues
            .get(&accepted.pop.queue)
            .is_some_and(|q| q.warm);
        let briefing = warm.then(|| {
            let language = accepted.pop.language.parse().unwrap_or_default();
            self.state
                .engines
                .tts
                .speak(vec![Prompt::text(accepted.pop.briefing())], language)
        });
        match open_leg(
            &self.state,
            &self.agent,
            LegRole::Agent,
            &accepted.control,
            offer,
            briefing,
        )
        .await
        {
            Ok((sdp, on_call)) => {
                self.call = Some(OnCall {
                    pop: accepted.pop,
                    ..on_call
                });
                self.send(json!({"type": "answer", "call_id": call_id, "sdp": sdp}))
                    .await;
            }
            Err(e) => {
                // The caller goes back to the bot at once (the leg never joined): `failed`.
                let _ = accepted.control.send(CallControl::TransferFailed {
                    reason: crate::session::TransferOutcome::Failed.code().to_string(),
                });
                self.desk.call_done(&self.agent);
                self.error("console.media", e).await;
            }
        }
    }

    async fn call_event(&mut self, event: Option<CallEvent>) {
        let Some(event) = event else {
            if let Some(call) = self.call.as_mut() {
                call.events = None;
            }
            return;
        };
        let assist = match &event.kind {
            EventKind::Transcript {
                text,
                is_final: true,
                ..
            } if !text.is_empty() => Some(text.clone()),
            _ => None,
        };
        self.send(json!({"type": "event", "event": event})).await;
        let Some(said) = assist else {
            return;
        };
        let Some(call) = self.call.as_mut() else {
            return;
        };
        call.said.push(said.clone());
        let (call_id, flow) = (call.pop.call_id.clone(), call.pop.flow.clone());
        let suggestions = self.state.engines.dialogue.suggest(&flow, &said, 3);
        self.send(
            json!({"type": "assist", "call_id": call_id, "said": said, "suggestions": suggestions}),
        )
        .await;
    }

    async fn call_over(&mut self, reason: String) {
        let Some(call) = self.call.take() else {
            return;
        };
        self.desk.call_done(&self.agent);
        let draft = wrap_up_draft(&call.pop, &call.said, &self.agent);
        self.send(json!({"type": "call_ended", "call_id": call.pop.call_id, "reason": reason, "draft": draft}))
            .await;
    }

    async fn save_disposition(&mut self, call_id: String, disposition: String, notes: String) {
        if disposition.trim().is_empty() || disposition.len() > 64 || notes.len() > 8_000 {
            return self
                .error(
                    "console.disposition",
                    "a disposition is 1 to 64 characters, notes at most 8000",
                )
                .await;
        }
        let Some(store) = self.state.store() else {
            return self
                .error("store.unavailable", "the call store is not open")
                .await;
        };
        match store
            .save_disposition(&call_id, &self.agent, disposition.trim(), &notes)
            .await
        {
            Ok(()) => {
                self.send(json!({"type": "saved", "call_id": call_id}))
                    .await
            }
            Err(e) => self.error("store.failed", e).await,
        }
    }
}

/// Opens a human's WebRTC leg on a call: adds the leg (`role`), answers the page's offer, and
/// starts pumping its media ([`pump_leg`]); with a `briefing`, the leg joins only once it has
/// played and the human connects. Returns the SDP answer and the console's side of the leg.
pub(super) async fn open_leg(
    web: &WebState,
    who: &str,
    role: LegRole,
    control: &mpsc::UnboundedSender<CallControl>,
    offer: String,
    briefing: Option<crate::tts::Speech>,
) -> Result<(String, OnCall), String> {
    let offer_at = Instant::now();
    let (reply, leg) = oneshot::channel();
    control
        .send(CallControl::AddLeg { role, reply })
        .map_err(|_| "the call has ended".to_string())?;
    let leg = tokio::time::timeout(Duration::from_secs(2), leg)
        .await
        .map_err(|_| "the call did not add the leg".to_string())?
        .map_err(|_| "the call has ended".to_string())?;
    let leg_id = leg.id;
    let remove = |control: &mpsc::UnboundedSender<CallControl>, leg: &LegHandle| {
        let _ = control.send(CallControl::RemoveLeg { leg: leg.id });
    };
    let permit = match std::sync::Arc::clone(&web.permits).try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            remove(control, &leg);
            return Err("every web line is busy".into());
        }
    };
    let lease = match web.ports.lease() {
        Ok(l) => l,
        Err(e) => {
            remove(control, &leg);
            return Err(e.to_string());
        }
    };
    let media = match WebMediaSession::new() {
        Ok(m) => m,
        Err(e) => {
            remove(control, &leg);
            return Err(e.to_string());
        }
    };
    let link = match peer::answer_offer(&web.config, offer, lease).await {
        Ok(l) => l,
        Err(e) => {
            remove(control, &leg);
            return Err(e.to_string());
        }
    };
    let sdp = link.answer_sdp.clone();
    let (commands, commands_rx) = mpsc::channel(8);
    let edge = WebCallDriver {
        link,
        media,
        commands: commands_rx,
        events: std::sync::Arc::new(EventLog::new()),
        connect_timeout: Duration::from_millis(web.config.connect_timeout_ms),
        shutdown: web.shutdown.clone(),
        permit,
        offer_at,
    }
    .into_edge();
    let (watch_reply, watched) = oneshot::channel();
    let _ = control.send(CallControl::Watch { reply: watch_reply });
    let events = tokio::time::timeout(Duration::from_secs(2), watched)
        .await
        .ok()
        .and_then(Result::ok);
    let (mode_tx, mode_rx) = tokio::sync::watch::channel(LegMode::Talking);
    let (ended_tx, ended) = oneshot::channel();
    let (warm, connect, briefed) = match briefing {
        Some(speech) => {
            let (connect_tx, connect_rx) = tokio::sync::watch::channel(false);
            let (briefed_tx, briefed_rx) = oneshot::channel();
            (
                Some(Warm {
                    speech,
                    connect: connect_rx,
                    briefed: Some(briefed_tx),
                }),
                Some(connect_tx),
                Some(briefed_rx),
            )
        }
        None => (None, None, None),
    };
    tokio::spawn(pump_leg(
        edge,
        leg,
        control.clone(),
        mode_rx,
        warm,
        ended_tx,
    ));
    tracing::info!(who, ?role, "leg answered");
    Ok((
        sdp,
        OnCall {
            leg: leg_id,
            pop: ScreenPop::default(),
            commands,
            leg_mode: mode_tx,
            events,
            ended,
            said: Vec::new(),
            control: control.clone(),
            connect,
            briefed,
        },
    ))
}

/// The wrap-up summary the console offers when a call ends; the agent edits it.
pub fn wrap_up_draft(pop: &ScreenPop, said: &[String], agent: &str) -> String {
    let mut draft = format!(
        "{} called. {}.",
        if pop.caller.is_empty() {
            "A caller"
        } else {
            &pop.caller
        },
        pop.summary
    );
    if said.is_empty() {
        draft.push_str(&format!(
            " With {agent}, the caller said nothing the line recognised."
        ));
    } else {
        let last: Vec<&str> = said
            .iter()
            .rev()
            .take(3)
            .rev()
            .map(String::as_str)
            .collect();
        draft.push_str(&format!(
            " With {agent}, the caller said: \"{}\".",
            last.join("\" / \"")
        ));
    }
    draft
}

/// What happened on the call this console is on.
pub(super) enum CallNews {
    /// A live event (`None`: the call's events ended).
    Event(Option<CallEvent>),
    /// A warm transfer's briefing has played.
    Briefed,
    /// The agent's leg ended, and why.
    Ended(String),
}

/// The next news of the console's call; never, without one.
pub(super) async fn call_news(call: &mut Option<OnCall>) -> CallNews {
    let Some(c) = call.as_mut() else {
        return std::future::pending().await;
    };
    tokio::select! {
        biased;
        event = next_event(&mut c.events) => CallNews::Event(event),
        _ = briefed(&mut c.briefed) => {
            c.briefed = None;
            CallNews::Briefed
        }
        reason = &mut c.ended => CallNews::Ended(reason.unwrap_or_else(|_| "closed".into())),
    }
}

async fn briefed(briefed: &mut Option<oneshot::Receiver<()>>) {
    match briefed.as_mut() {
        Some(rx) => {
            if rx.await.is_err() {
                // The leg ended before the briefing did: nothing to tell.
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

async fn next_event(events: &mut Option<broadcast::Receiver<CallEvent>>) -> Option<CallEvent> {
    let Some(events) = events.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        match events.recv().await {
            Ok(event) => return Some(event),
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

/// A warm transfer's briefing, for the leg's pump.
struct Warm {
    speech: crate::tts::Speech,
    /// Set when the agent connects the caller.
    connect: tokio::sync::watch::Receiver<bool>,
    /// Told once the briefing has played.
    briefed: Option<oneshot::Sender<()>>,
}

/// Pumps the agent's media into their call leg: per tick, the agent's frame to the call (or
/// silence, muted; hold audio goes the other way, held) and the call's frame back. Joins the
/// leg on the first frame (media flows), or, warm, once the agent heard the briefing and
/// connected; removes it when either side ends.
async fn pump_leg(
    mut edge: WebEdge,
    mut leg: LegHandle,
    control: mpsc::UnboundedSender<CallControl>,
    mode: tokio::sync::watch::Receiver<LegMode>,
    warm: Option<Warm>,
    ended: oneshot::Sender<String>,
) {
    let mut joined = false;
    let mut hold = crate::agents::hold::HoldAudio::new();
    let mut briefing: Option<(std::collections::VecDeque<i16>, Warm)> = None;
    if let Some(mut warm) = warm {
        let mut pcm = std::collections::VecDeque::new();
        while let Some(chunk) = warm.speech.recv().await {
            match chunk {
                Ok(chunk) => pcm.extend(chunk.pcm),
                Err(e) => {
                    tracing::warn!("the agent's briefing could not be spoken: {e}");
                    break;
                }
            }
        }
        briefing = Some((pcm, warm));
    }
    let reason = loop {
        match edge.recv().await {
            Some(CallInput::Audio(frame)) => {
                if let Some((pcm, warm)) = briefing.as_mut() {
                    // The agent hears the summary; the caller, on hold, does not.
                    if *warm.connect.borrow() {
                        briefing = None;
                    } else {
                        let n = crate::audio::FRAME_SAMPLES.min(pcm.len());
                        let said: Vec<i16> = pcm.drain(..n).collect();
                        if pcm.is_empty() {
                            if let Some(done) = warm.briefed.take() {
                                let _ = done.send(());
                            }
                        }
                        let mut frame = [0i16; crate::audio::FRAME_SAMPLES];
                        frame[..said.len()].copy_from_slice(&said);
                        edge.send_audio(Frame::from_slice(&frame)).await;
                        continue;
                    }
                }
                if !joined {
                    joined = true;
                    let _ = control.send(CallControl::Bridge {
                        leg: leg.id,
                        joined: true,
                    });
                }
                let current = *mode.borrow();
                let to_call = match current {
                    LegMode::Talking => frame,
                    LegMode::Muted => Frame::silence(),
                    LegMode::Held => hold.next_frame(),
                };
                if !leg.send(to_call).await {
                    break "call.ended".to_string();
                }
                match leg.output.recv().await {
                    Some(heard) if current != LegMode::Held => edge.send_audio(heard).await,
                    Some(_) => edge.send_audio(Frame::silence()).await,
                    None => break "call.ended".to_string(),
                }
            }
            Some(CallInput::Hangup { reason }) => break reason.code().to_string(),
            Some(_) => {}
            None => break "closed".to_string(),
        }
    };
    let _ = control.send(CallControl::RemoveLeg { leg: leg.id });
    // Closes the agent's peer connection and frees its port.
    let _ = edge.media().await;
    let _ = ended.send(reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_servers_pages_open_a_console() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(!same_origin(&h), "no Origin: refused");
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
    }

    #[test]
    fn the_wrap_up_draft_has_the_summary_and_the_last_words() {
        let pop = ScreenPop {
            caller: "sip:alice@example.com".into(),
            reason: "caller.request".into(),
            summary: "intent balance".into(),
            ..ScreenPop::default()
        };
        let draft = wrap_up_draft(&pop, &["my bill is wrong".into(), "thanks".into()], "ann");
        assert!(draft.contains("sip:alice@example.com") && draft.contains("intent balance"));
        assert!(
            draft.contains("\"my bill is wrong\" / \"thanks\""),
            "{draft}"
        );
    }
}
