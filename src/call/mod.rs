//! Live calls: the engines shared by all calls, the call limit and registry, and one
//! [`driver::CallDriver`] task per call.
//!
//! A transport edge (SIP/RTP, WebRTC, the local microphone) starts a call with
//! [`Engines::start_call`] and gets a [`CallHandle`]. The edge paces: every 20 ms it sends one
//! [`CallInput::Audio`] and receives exactly one [`CallOutput::Audio`] back. Control (the
//! caller's hang-up, a transfer's outcome, shutdown, more legs) goes on its own channel,
//! [`CallHandle::control`], and never waits behind audio. Events go to the call's record and to
//! live subscribers.
//!
//! The same [`core::CallCore`] runs every call: live here, on a virtual clock in `hotline
//! replay` and `hotline chat` ([`virtual_call::VirtualCall`]). A call can hold more legs than
//! its caller ([`leg`]): a human agent or a supervisor, bridged to the caller's audio.
//!
//! A transport can also hand the driver its edge ([`Engines::start_call_on`] with an
//! [`edge::CallerEdge`]): the driver then reads and writes it directly, with no task in
//! between; that is how SIP and WebRTC calls run. After the call the driver asks the edge for
//! its media counters (at most [`MEDIA_REPORT_WAIT`]) and writes them as the record's
//! `call_end`.
//!
//! Shutdown ([`Engines::close`], [`Engines::end_calls`], [`Engines::wait_idle`]): the server
//! stops taking calls (transports answer "closed": SIP 503), lets calls in progress finish,
//! then asks the rest to say goodbye; every driver closes its record before it gives back its
//! place, so waiting for no calls is waiting for every record to be complete.
//!
//! Invariant: the driver never blocks on an engine; heavy work runs off the media path, and
//! nothing here blocks the transport's signalling task.

pub mod core;
mod driver;
pub mod edge;
pub mod leg;
pub mod record;
pub mod retention;
pub mod virtual_call;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::asr::{AsrError, AsrPool};
use crate::audio::Frame;
use crate::config::Config;
use crate::config::EndOfTurnKind;
use crate::dialogue::{
    factory_from_config, CallContext, DialogueError, DialogueFactory, FlowChoice, FlowChoiceError,
};
use crate::language::Language;
use crate::metrics::{Gauges, Metrics};
use crate::privacy::{PrivacyError, RawKey, Redactor};
use crate::session::{CallEvent, CallSession, EndReason};
use crate::tts::{TtsError, TtsService};
use crate::turn::{TurnError, TurnService};
pub(crate) use driver::sleep_until;
use leg::{LegHandle, LegId, LegRole};

/// A call's id: unique within this server, and the name of its record folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallId(pub String);

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The engines could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("asr: {0}")]
    Asr(#[from] AsrError),
    #[error("tts: {0}")]
    Tts(#[from] TtsError),
    #[error("dialogue: {0}")]
    Dialogue(#[from] DialogueError),
    #[error("end of turn: {0}")]
    Turn(#[from] TurnError),
    #[error("privacy: {0}")]
    Privacy(#[from] PrivacyError),
}

/// A call could not start.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("busy: {active} calls in progress (server.max_calls)")]
    Busy { active: usize },
    /// The server is shutting down and takes no new calls.
    #[error("closed: the server is shutting down")]
    Closed,
    /// The flow or language the caller or transport chose names no flow.
    #[error("call.flow: {0}")]
    Flow(#[from] FlowChoiceError),
}

/// What a transport knows about a new call.
#[derive(Debug, Clone, Default)]
pub struct CallInfo {
    /// `sip-udp`, `sip-tcp`, `webrtc`, `local`, ...
    pub transport: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub codec: Option<String>,
    /// The caller's language, if the transport or caller chose one.
    pub language: Option<Language>,
    /// The flow the caller chose, if any.
    pub flow: Option<String>,
    /// Caller context: SIP headers, web phone parameters.
    pub vars: BTreeMap<String, String>,
    /// The transport reports whether a transfer happened ([`CallInput::TransferFailed`] or a
    /// hangup); without it the call ends as soon as it is handed over.
    pub tracks_transfers: bool,
}

/// What a transport sends to its call.
// A frame is moved 50 times a second per call; boxing it would allocate for each one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum CallInput {
    /// One 20 ms caller frame (or concealment/silence when nothing arrived).
    Audio(Frame),
    /// A DTMF key.
    Dtmf(char),
    /// The caller hung up. (Prefer [`CallControl::Hangup`], which never waits behind audio.)
    Hangup { reason: EndReason },
    /// A transfer the call asked for did not happen; the caller is still on the line.
    TransferFailed { reason: String },
}

/// Control of a call: never queued behind its audio.
#[derive(Debug)]
pub enum CallControl {
    /// The caller (or the transport) ended the call.
    Hangup { reason: EndReason },
    /// A transfer the call asked for did not happen; the caller is still on the line.
    TransferFailed { reason: String },
    /// The server is shutting down: the bot says goodbye and hangs up.
    Shutdown,
    /// Adds a leg (ringing: not yet bridged); its handle comes back on `reply`.
    AddLeg {
        role: LegRole,
        reply: oneshot::Sender<LegHandle>,
    },
    /// Joins (`true`) or parts (`false`) a leg's audio and the caller's. While any leg is
    /// joined, the bot is quiet and the session only listens, transcribes and records.
    Bridge { leg: LegId, joined: bool },
    /// The leg hung up.
    RemoveLeg { leg: LegId },
    /// A supervisor's leg (`who`) listens, whispers to the agent, or barges in.
    Supervise {
        leg: LegId,
        who: String,
        mode: leg::SupervisorMode,
    },
    /// The agent on the call hands the caller on to `target` (their leg then leaves).
    Transfer { target: String },
    /// A live view of the call's events from now on (an agent's console, a supervisor).
    Watch {
        reply: oneshot::Sender<broadcast::Receiver<CallEvent>>,
    },
}

/// What the call sends back to its transport.
// A frame is moved 50 times a second per call; boxing it would allocate for each one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum CallOutput {
    /// The bot's frame for the tick (silence when quiet).
    Audio(Frame),
    /// Hand the call to `target`.
    Transfer { target: String, reason: String },
    /// The bot ended the call.
    Hangup { reason: EndReason },
}

/// A transport's handle on one call.
pub struct CallHandle {
    pub id: CallId,
    pub input: mpsc::Sender<CallInput>,
    pub control: mpsc::UnboundedSender<CallControl>,
    pub output: mpsc::Receiver<CallOutput>,
    pub events: broadcast::Receiver<CallEvent>,
}

/// How long a finished call waits for its transport's media counters before the record is
/// closed without them (the line hangs up in milliseconds; this only bounds a stuck transport).
pub const MEDIA_REPORT_WAIT: Duration = Duration::from_secs(3);

/// The engines and settings shared by every call.
pub struct Engines {
    pub config: Config,
    pub asr: AsrPool,
    pub tts: TtsService,
    pub dialogue: Arc<dyn DialogueFactory>,
    /// The learned end-of-turn model, when `session.end_of_turn` chose it.
    pub turn: Option<TurnService>,
    /// What records must not keep (`[privacy]`).
    pub redactor: Arc<Redactor>,
    /// The key that seals raw records, with `privacy.keep_raw`.
    pub raw_key: Option<Arc<RawKey>>,
    /// Counters and histograms over every live call's events (`GET /metrics`).
    pub metrics: Arc<Metrics>,
    /// Where finished calls are stored; set once by `serve` when the store is open (replays
    /// and chats have none: their records are folders only).
    pub store: std::sync::OnceLock<crate::store::writer::StoreWriter>,
    /// The human agents' desk; set once by `serve` (replays and chats have none: a queue
    /// transfer there fails as `busy`).
    pub desk: std::sync::OnceLock<crate::agents::desk::AgentDesk>,
    active: Arc<AtomicUsize>,
    next_id: AtomicU64,
    calls: Arc<CallRegistry>,
}

/// The live calls' control channels, and how many there are (for shutdown).
#[derive(Default)]
struct CallRegistry {
    controls: Mutex<HashMap<String, mpsc::UnboundedSender<CallControl>>>,
    count: watch::Sender<usize>,
    closed: AtomicBool,
}

impl CallRegistry {
    fn controls(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<CallControl>>> {
        // Plain data; a panic elsewhere cannot leave it inconsistent.
        self.controls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A call's place in the call limit and the registry, given back when its driver ends (after
/// its record is closed).
struct Registration {
    _slot: CallSlot,
    id: String,
    calls: Arc<CallRegistry>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut controls = self.calls.controls();
        controls.remove(&self.id);
        let n = controls.len();
        drop(controls);
        self.calls.count.send_replace(n);
    }
}

impl Engines {
    /// Loads the recognizer, the synthesizer and the dialogue.
    pub fn load(config: Config) -> Result<Arc<Self>, EngineError> {
        // The dialogue first: its config (flows, `dialogue.default_flow`) is the likeliest to be
        // wrong, and it loads in milliseconds where a recognizer model takes seconds.
        let dialogue = factory_from_config(&config.dialogue, config.language)?;
        let asr = AsrPool::new(&config.asr)?;
        let tts = TtsService::new(&config.tts)?;
        let turn = load_turn_model(config.session.end_of_turn)?;
        let redactor = Arc::new(Redactor::new(&config.privacy)?);
        let raw_key = match config.privacy.keep_raw {
            true => Some(Arc::new(RawKey::from_env()?)),
            false => None,
        };
        Ok(Arc::new(Self {
            config,
            asr,
            tts,
            dialogue,
            turn,
            redactor,
            raw_key,
            metrics: Arc::new(Metrics::new()),
            store: std::sync::OnceLock::new(),
            desk: std::sync::OnceLock::new(),
            active: Arc::new(AtomicUsize::new(0)),
            next_id: AtomicU64::new(1),
            calls: Arc::new(CallRegistry::default()),
        }))
    }

    /// Stops taking calls: every new call is refused with [`CallError::Closed`].
    pub fn close(&self) {
        self.calls.closed.store(true, Ordering::SeqCst);
    }

    /// Whether the server has stopped taking calls.
    pub fn is_closed(&self) -> bool {
        self.calls.closed.load(Ordering::SeqCst)
    }

    /// Asks every call in progress to end: with a spoken goodbye ([`CallControl::Shutdown`]),
    /// or at once (`goodbye: false`, a hangup with `server.shutdown`).
    pub fn end_calls(&self, goodbye: bool) {
        for control in self.calls.controls().values() {
            let message = if goodbye {
                CallControl::Shutdown
            } else {
                CallControl::Hangup {
                    reason: EndReason::ServerShutdown,
                }
            };
            // A call whose driver is ending is about to leave the registry anyway.
            let _ = control.send(message);
        }
    }

    /// The control channel of the live call `id` (a supervisor joining it).
    pub fn control_of(&self, id: &str) -> Option<mpsc::UnboundedSender<CallControl>> {
        self.calls.controls().get(id).cloned()
    }

    /// Waits until no call is in progress (every record closed), at most `limit`; whether
    /// that happened.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let mut count = self.calls.count.subscribe();
        tokio::time::timeout(limit, count.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The ids of the calls in progress (their record folders are `server.records_dir/<id>`).
    pub fn live_call_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.calls.controls().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Calls in progress, across all transports.
    pub fn active_calls(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// `GET /metrics`: the Prometheus text of every call so far, with the gauges of now.
    pub fn metrics_text(&self) -> String {
        self.metrics.render(Gauges {
            calls_active: self.active_calls(),
            asr_queue: self.asr.waiting(),
        })
    }

    /// Starts one call's driver task, for a transport that runs its own task and talks to the
    /// call through channels. Must be called inside a tokio runtime.
    pub fn start_call(self: &Arc<Self>, info: CallInfo) -> Result<CallHandle, CallError> {
        self.start_channels(info)
    }

    fn start_channels(self: &Arc<Self>, info: CallInfo) -> Result<CallHandle, CallError> {
        let (input_tx, input_rx) = mpsc::channel(64);
        let (output_tx, output_rx) = mpsc::channel(64);
        let edge = edge::ChannelEdge {
            input: input_rx,
            output: output_tx,
        };
        let started = self.start_call_on(info, Box::new(edge))?;
        Ok(CallHandle {
            id: started.id,
            input: input_tx,
            control: started.control,
            output: output_rx,
            events: started.events,
        })
    }

    /// Starts one call whose driver reads and writes the caller's transport itself (one hop
    /// each way, no task in between). Must be called inside a tokio runtime; never blocks.
    pub fn start_call_on(
        self: &Arc<Self>,
        info: CallInfo,
        edge: Box<dyn edge::CallerEdge>,
    ) -> Result<StartedCall, CallError> {
        if self.is_closed() {
            return Err(CallError::Closed);
        }
        let plan = self.dialogue.plan(&FlowChoice {
            flow: info.flow.clone(),
            language: info.language,
        })?;
        let slot = CallSlot::take(&self.active, self.config.server.max_calls)?;
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let seq = self.next_id.fetch_add(1, Ordering::SeqCst);
        let id = CallId(format!("{}-{}-{seq}", started.as_secs(), info.transport));
        let record_dir = self.config.server.records_dir.join(&id.0);
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = broadcast::channel(256);
        let language = plan.language();
        let ctx = CallContext {
            plan,
            vars: info.vars.clone(),
        };
        let mut session = CallSession::new(self.config.session.clone(), language);
        session.set_transfer_failed_words(ctx.plan.transfer_failed().map(str::to_string));
        session.track_transfers(info.tracks_transfers);
        // A transport that cannot hand a call over has its `sip:` transfers bridged.
        session.bridge_sip_transfers(
            self.config.agents.sip_transfer == crate::agents::config::SipTransfer::Bridge
                || !info.tracks_transfers,
        );
        session.use_turn_model(self.turn.is_some());
        let registration = {
            let mut controls = self.calls.controls();
            controls.insert(id.0.clone(), control_tx.clone());
            let n = controls.len();
            drop(controls);
            self.calls.count.send_replace(n);
            Registration {
                _slot: slot,
                id: id.0.clone(),
                calls: self.calls.clone(),
            }
        };
        let setup = driver::CallSetup {
            record_dir,
            ctx,
            session,
            events: events_tx,
            control: control_tx.clone(),
        };
        let driver = driver::CallDriver {
            engines: self.clone(),
            id: id.clone(),
            edge,
            registration,
        };
        tracing::info!(call = %id, transport = %info.transport, from = ?info.from, "call started");
        tokio::spawn(driver.run(setup, info, control_rx));
        Ok(StartedCall {
            id,
            control: control_tx,
            events: events_rx,
        })
    }
}

/// A call started on its transport's edge ([`Engines::start_call_on`]).
pub struct StartedCall {
    pub id: CallId,
    pub control: mpsc::UnboundedSender<CallControl>,
    pub events: broadcast::Receiver<CallEvent>,
}

/// The wall-clock time now, Unix milliseconds (a call's `started_unix_ms`).
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The end-of-turn model `session.end_of_turn` asks for, saying which and why.
fn load_turn_model(kind: EndOfTurnKind) -> Result<Option<TurnService>, EngineError> {
    match kind {
        EndOfTurnKind::Silence => {
            tracing::info!(
                "end of turn: a fixed silence, because session.end_of_turn = \"silence\""
            );
            Ok(None)
        }
        EndOfTurnKind::SmartTurn => {
            let model = TurnService::from_cache()?;
            tracing::info!("end of turn: Smart Turn, because session.end_of_turn = \"smart_turn\"");
            Ok(Some(model))
        }
        EndOfTurnKind::Auto => {
            match TurnService::from_cache() {
                Ok(model) => {
                    tracing::info!("end of turn: Smart Turn, because session.end_of_turn = \"auto\" and it is installed");
                    Ok(Some(model))
                }
                Err(e) => {
                    tracing::info!("end of turn: a fixed silence, because session.end_of_turn = \"auto\" and {e}");
                    Ok(None)
                }
            }
        }
    }
}

/// One place in the call limit, given back when dropped.
struct CallSlot(Arc<AtomicUsize>);

impl CallSlot {
    fn take(active: &Arc<AtomicUsize>, max: usize) -> Result<Self, CallError> {
        let mut current = active.load(Ordering::SeqCst);
        loop {
            if current >= max {
                return Err(CallError::Busy { active: current });
            }
            match active.compare_exchange(current, current + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Ok(Self(active.clone())),
                Err(now) => current = now,
            }
        }
    }
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
