//! Live calls: the engines shared by all calls, and one `CallDriver` task per call.
//!
//! A transport edge (SIP/RTP, WebRTC, the local microphone) starts a call with
//! [`Engines::start_call`] and gets a [`CallHandle`]. The edge paces: every 20 ms it sends one
//! [`CallInput::Audio`] and receives exactly one [`CallOutput::Audio`] back. The driver task owns
//! the call's [`CallSession`] and its [`Dialogue`], sends engine work to the worker pools (ASR,
//! TTS, dialogue on the blocking pool) and feeds their results back tagged with the turn they
//! belong to. Events go to the call's record and to live subscribers.
//!
//! A transport that counts media packets starts the call with
//! [`Engines::start_call_reporting_media`] and sends its counters once through the
//! [`MediaReport`] when the line is down; the driver waits for them (at most
//! [`MEDIA_REPORT_WAIT`]) after the call ends and writes them as the record's `call_end`.
//!
//! Invariant: the driver never blocks on an engine; heavy work runs off the media path.

pub mod record;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::asr::{AsrError, AsrJob, AsrOptions, AsrPool};
use crate::audio::Frame;
use crate::config::Config;
use crate::dialogue::{
    factory_from_config, CallContext, Dialogue, DialogueError, DialogueFactory, FlowChoice,
    FlowChoiceError,
};
use crate::language::Language;
use crate::session::event::CallMedia;
use crate::session::{CallEvent, CallSession, EventKind, SessionOutput, TurnId};
use crate::tts::{TtsError, TtsService};
use record::CallRecord;

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
}

/// A call could not start.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("busy: {active} calls in progress (server.max_calls)")]
    Busy { active: usize },
    #[error("cannot write the call record: {0}")]
    Record(#[from] record::RecordError),
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
#[derive(Debug, Clone)]
pub enum CallInput {
    /// One 20 ms caller frame (or concealment/silence when nothing arrived).
    Audio(Frame),
    /// A DTMF key.
    Dtmf(char),
    /// The caller hung up.
    Hangup { reason: String },
    /// A transfer the call asked for did not happen; the caller is still on the line.
    TransferFailed { reason: String },
}

/// What the call sends back to its transport.
#[derive(Debug, Clone)]
pub enum CallOutput {
    /// The bot's frame for the tick (silence when quiet).
    Audio(Frame),
    /// Hand the call to `target`.
    Transfer { target: String, reason: String },
    /// The bot ended the call.
    Hangup { reason: String },
}

/// A transport's handle on one call.
pub struct CallHandle {
    pub id: CallId,
    pub input: mpsc::Sender<CallInput>,
    pub output: mpsc::Receiver<CallOutput>,
    pub events: broadcast::Receiver<CallEvent>,
}

/// How long a finished call waits for its transport's media counters before the record is
/// closed without them (the line hangs up in milliseconds; this only bounds a stuck transport).
pub const MEDIA_REPORT_WAIT: Duration = Duration::from_secs(3);

/// A transport's promise to report the call's media counters once, when its line is down.
/// Dropping it unsent closes the record without `call_end`.
#[derive(Debug)]
pub struct MediaReport(oneshot::Sender<CallMedia>);

impl MediaReport {
    /// Sends the counters for the record's `call_end`.
    pub fn send(self, media: CallMedia) {
        // The call may be gone already (it stopped waiting); then there is nothing to record.
        let _ = self.0.send(media);
    }
}

/// The engines and settings shared by every call.
pub struct Engines {
    pub config: Config,
    pub asr: AsrPool,
    pub tts: TtsService,
    pub dialogue: Arc<dyn DialogueFactory>,
    active: Arc<AtomicUsize>,
    next_id: AtomicU64,
}

impl Engines {
    /// Loads the recognizer, the synthesizer and the dialogue.
    pub fn load(config: Config) -> Result<Arc<Self>, EngineError> {
        // The dialogue first: its config (flows, `dialogue.default_flow`) is the likeliest to be
        // wrong, and it loads in milliseconds where a recognizer model takes seconds.
        let dialogue = factory_from_config(&config)?;
        let asr = AsrPool::new(&config.asr)?;
        let tts = TtsService::new(&config.tts)?;
        Ok(Arc::new(Self {
            config,
            asr,
            tts,
            dialogue,
            active: Arc::new(AtomicUsize::new(0)),
            next_id: AtomicU64::new(1),
        }))
    }

    /// Calls in progress, across all transports.
    pub fn active_calls(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Starts one call's driver task. Must be called inside a tokio runtime.
    pub fn start_call(self: &Arc<Self>, info: CallInfo) -> Result<CallHandle, CallError> {
        self.start(info, None)
    }

    /// [`Engines::start_call`] for a transport that counts media packets: the call's record
    /// ends with `call_end` and the counters sent through the [`MediaReport`].
    pub fn start_call_reporting_media(
        self: &Arc<Self>,
        info: CallInfo,
    ) -> Result<(CallHandle, MediaReport), CallError> {
        let (report, media) = oneshot::channel();
        let handle = self.start(info, Some(media))?;
        Ok((handle, MediaReport(report)))
    }

    fn start(
        self: &Arc<Self>,
        info: CallInfo,
        media: Option<oneshot::Receiver<CallMedia>>,
    ) -> Result<CallHandle, CallError> {
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
        let record = CallRecord::create(&self.config.server.records_dir.join(&id.0))?;
        let (input_tx, input_rx) = mpsc::channel(64);
        let (output_tx, output_rx) = mpsc::channel(64);
        let (events_tx, events_rx) = broadcast::channel(256);
        let language = plan.language();
        let ctx = CallContext {
            plan,
            vars: info.vars.clone(),
        };
        let dialogue = Arc::new(Mutex::new(self.dialogue.new_dialogue(&ctx)));
        let driver = CallDriver {
            engines: self.clone(),
            id: id.clone(),
            session: {
                let mut session = CallSession::new(self.config.session.clone(), language);
                session.track_transfers(info.tracks_transfers);
                session
            },
            dialogue,
            record: Some(record),
            events: events_tx,
            output: output_tx,
            media,
            _slot: slot,
        };
        tracing::info!(call = %id, transport = %info.transport, from = ?info.from, "call started");
        tokio::spawn(driver.run(info, input_rx));
        Ok(CallHandle {
            id,
            input: input_tx,
            output: output_rx,
            events: events_rx,
        })
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

/// An engine's answer, on its way back to the driver.
enum EngineResult {
    Transcript {
        turn: TurnId,
        is_final: bool,
        text: String,
    },
    BotTurn {
        turn: TurnId,
        bot: crate::dialogue::BotTurn,
    },
    BotAudio {
        turn: TurnId,
        pcm: Vec<i16>,
        last: bool,
    },
    Error {
        turn: TurnId,
        code: &'static str,
        message: String,
    },
}

/// The IO task of one call. See the module docs.
struct CallDriver {
    engines: Arc<Engines>,
    id: CallId,
    session: CallSession,
    dialogue: Arc<Mutex<Box<dyn Dialogue>>>,
    record: Option<CallRecord>,
    events: broadcast::Sender<CallEvent>,
    output: mpsc::Sender<CallOutput>,
    /// The transport's media counters, when it reports them.
    media: Option<oneshot::Receiver<CallMedia>>,
    _slot: CallSlot,
}

impl CallDriver {
    async fn run(mut self, info: CallInfo, mut input: mpsc::Receiver<CallInput>) {
        let start = Instant::now();
        let (results_tx, mut results) = mpsc::unbounded_channel::<EngineResult>();
        self.session.start(
            EventKind::CallStart {
                call_id: Some(self.id.0.clone()),
                transport: Some(info.transport.clone()),
                from: info.from.clone(),
                to: info.to.clone(),
                codec: info.codec.clone(),
                language: Some(self.session.language().code().to_string()),
            },
            Duration::ZERO,
        );
        self.drain(&results_tx).await;
        while !self.session.is_ended() {
            let timeout = self.session.poll_timeout().map(|at| start + at);
            tokio::select! {
                msg = input.recv() => {
                    let now = start.elapsed();
                    match msg {
                        Some(CallInput::Audio(frame)) => {
                            let bot = self.session.handle_audio(&frame, now);
                            if let Some(record) = self.record.as_mut() {
                                record.audio(&frame, bot.as_ref());
                            }
                            // A full channel means the transport stopped reading; it will hang up.
                            let _ = self.output.try_send(CallOutput::Audio(bot.unwrap_or_default()));
                        }
                        Some(CallInput::Dtmf(digit)) => self.session.handle_dtmf(digit, now),
                        Some(CallInput::Hangup { reason }) => self.session.handle_hangup(&reason, now),
                        Some(CallInput::TransferFailed { reason }) => self.session.handle_transfer_failed(&reason, now),
                        None => self.session.handle_hangup("transport.closed", now),
                    }
                }
                Some(result) = results.recv() => {
                    let now = start.elapsed();
                    match result {
                        EngineResult::Transcript { turn, is_final, text } => self.session.handle_transcript(turn, is_final, &text, now),
                        EngineResult::BotTurn { turn, bot } => self.session.handle_bot_turn(turn, bot, now),
                        EngineResult::BotAudio { turn, pcm, last } => self.session.handle_bot_audio(turn, &pcm, last, now),
                        EngineResult::Error { turn, code, message } => {
                            tracing::warn!(call = %self.id, code, "{message}");
                            self.session.handle_engine_error(turn, code, &message, now);
                        }
                    }
                }
                _ = sleep_until(timeout) => self.session.handle_timeout(start.elapsed()),
            }
            self.drain(&results_tx).await;
        }
        if let Some(media) = self.media.take() {
            // The caller's hang-up comes with the counters; ours waits for the line to go down.
            if let Ok(Ok(media)) = tokio::time::timeout(MEDIA_REPORT_WAIT, media).await {
                let event = CallEvent {
                    t_ms: start.elapsed().as_millis() as u64,
                    kind: EventKind::CallEnd { media },
                };
                if let Some(record) = self.record.as_mut() {
                    if let Err(e) = record.event(&event) {
                        tracing::error!(call = %self.id, "call record: {e}");
                    }
                }
                let _ = self.events.send(event);
            }
        }
        if let Some(record) = self.record.take() {
            match record.finish() {
                Ok(dir) => tracing::info!(call = %self.id, record = %dir.display(), "call ended"),
                Err(e) => tracing::error!(call = %self.id, "call record: {e}"),
            }
        }
    }

    /// Performs everything the session asked for.
    async fn drain(&mut self, results: &mpsc::UnboundedSender<EngineResult>) {
        while let Some(output) = self.session.poll_output() {
            match output {
                SessionOutput::Event(event) => {
                    if let Some(record) = self.record.as_mut() {
                        if let Err(e) = record.event(&event) {
                            tracing::error!(call = %self.id, "call record: {e}");
                        }
                    }
                    let _ = self.events.send(event);
                }
                SessionOutput::Recognize {
                    turn,
                    pcm,
                    is_final,
                    grammar,
                    language,
                } => {
                    let rx = self.engines.asr.submit(AsrJob {
                        pcm,
                        opts: AsrOptions {
                            language,
                            grammar,
                            is_final,
                        },
                    });
                    let results = results.clone();
                    tokio::spawn(async move {
                        let result = match rx.await {
                            Ok(Ok(out)) => EngineResult::Transcript {
                                turn,
                                is_final,
                                text: out.text,
                            },
                            Ok(Err(e)) => EngineResult::Error {
                                turn,
                                code: "asr.failed",
                                message: e.to_string(),
                            },
                            Err(_) => EngineResult::Error {
                                turn,
                                code: "asr.failed",
                                message: "recognizer worker stopped".into(),
                            },
                        };
                        // A failed or pre-empted partial brought no words; the session
                        // still hears of it, so the next partial can be asked for.
                        let result = match result {
                            EngineResult::Error { turn, .. } if !is_final => {
                                EngineResult::Transcript {
                                    turn,
                                    is_final,
                                    text: String::new(),
                                }
                            }
                            other => other,
                        };
                        let _ = results.send(result);
                    });
                }
                SessionOutput::Converse { turn, input } => {
                    let dialogue = self.dialogue.clone();
                    let results = results.clone();
                    tokio::spawn(async move {
                        let answer = tokio::task::spawn_blocking(move || {
                            let mut dialogue = dialogue
                                .lock()
                                .unwrap_or_else(|poisoned| poisoned.into_inner());
                            dialogue.handle(&input)
                        })
                        .await;
                        let result = match answer {
                            Ok(bot) => EngineResult::BotTurn { turn, bot },
                            Err(e) => EngineResult::Error {
                                turn,
                                code: "dialogue.failed",
                                message: e.to_string(),
                            },
                        };
                        let _ = results.send(result);
                    });
                }
                SessionOutput::Speak {
                    turn,
                    prompts,
                    language,
                } => {
                    let mut chunks = self.engines.tts.speak(prompts, language);
                    let results = results.clone();
                    tokio::spawn(async move {
                        while let Some(chunk) = chunks.recv().await {
                            let result = match chunk {
                                Ok(chunk) => EngineResult::BotAudio {
                                    turn,
                                    pcm: chunk.pcm,
                                    last: chunk.last,
                                },
                                Err(e) => EngineResult::Error {
                                    turn,
                                    code: "tts.failed",
                                    message: e.to_string(),
                                },
                            };
                            if results.send(result).is_err() {
                                return;
                            }
                        }
                        // Whatever happened, let the session know the reply's audio is complete.
                        let _ = results.send(EngineResult::BotAudio {
                            turn,
                            pcm: Vec::new(),
                            last: true,
                        });
                    });
                }
                SessionOutput::Transfer { target, reason } => {
                    let _ = self
                        .output
                        .send(CallOutput::Transfer { target, reason })
                        .await;
                }
                SessionOutput::Hangup { reason } => {
                    let _ = self.output.send(CallOutput::Hangup { reason }).await;
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
