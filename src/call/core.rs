//! `CallCore`: the one place a call's session meets its record, its live event stream and its
//! engines' results. Every way of running a call drives it: the live [`super::driver`] on the
//! wall clock, [`super::virtual_call::VirtualCall`] on a virtual clock (`hotline replay` and
//! `hotline chat`), and the tests.
//!
//! - [`EngineResult`] is the one result type an engine's answer comes back as, with
//!   [`EngineResult::asr`] and [`EngineResult::tts`] turning an engine's raw outcome into it the
//!   same way everywhere (a failed partial is "heard nothing", a failed final is an error).
//! - [`CallCore::poll_work`] drains the session: events are written to the record, published to
//!   live subscribers (and counted in the server's [`Metrics`] for a live call) and kept for
//!   the caller when asked to, in that order; everything else is
//!   [`Work`] for the runner to perform.
//!
//! Invariant: no event reaches a subscriber or a test that is not in the record (when there is
//! one), and the record sees every event the session emits, in order.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::asr::{AsrError, AsrOutput, Recognized};
use crate::audio::Frame;
use crate::dialogue::BotTurn;
use crate::metrics::Metrics;
use crate::session::event::CallMedia;
use crate::session::{
    AudioEndReason, CallEvent, CallSession, ErrorCode, EventKind, SessionOutput, TurnId,
};
use crate::tts::{TtsChunk, TtsError};
use crate::turn::{TurnError, TurnPrediction};

use super::edge::TransferContext;
use super::record::{CallRecord, RecordError};
use super::CallId;

/// Engine work the session asked for: a [`SessionOutput`] that is not an event.
pub type Work = SessionOutput;

/// An engine's answer, on its way back to the session.
#[derive(Debug)]
pub enum EngineResult {
    Transcript {
        turn: TurnId,
        is_final: bool,
        heard: Recognized,
    },
    BotTurn {
        turn: TurnId,
        bot: BotTurn,
    },
    BotAudio {
        turn: TurnId,
        pcm: Vec<i16>,
        /// The words `pcm` speaks.
        text: String,
        last: bool,
    },
    /// A speculative final recognition (asked at a pause, before the turn was known to be
    /// over) for the pause after `last_voice`; `heard` is `None` when it failed.
    SpeculativeTranscript {
        turn: TurnId,
        last_voice: Duration,
        heard: Option<Recognized>,
    },
    TurnPrediction {
        turn: TurnId,
        probability: f32,
    },
    Error {
        turn: TurnId,
        code: ErrorCode,
        message: String,
    },
}

impl EngineResult {
    /// A recognizer's outcome for `turn`. `None` means the worker stopped without answering.
    /// A partial that failed (or was pre-empted by a final) brought no words: the session still
    /// hears of it, so the next partial can be asked for.
    pub fn asr(turn: TurnId, is_final: bool, outcome: Option<Result<AsrOutput, AsrError>>) -> Self {
        let error = match outcome {
            Some(Ok(out)) => {
                return EngineResult::Transcript {
                    turn,
                    is_final,
                    heard: out.heard(),
                }
            }
            Some(Err(e)) => e.to_string(),
            None => "recognizer worker stopped".to_string(),
        };
        if is_final {
            EngineResult::Error {
                turn,
                code: ErrorCode::AsrFailed,
                message: error,
            }
        } else {
            EngineResult::Transcript {
                turn,
                is_final,
                heard: Recognized::default(),
            }
        }
    }

    /// A recognizer's outcome for a speculative final (see [`SessionOutput::Recognize`]'s
    /// `speculative`): a failure brings no text, and the session asks again at the endpoint.
    pub fn speculative_asr(
        turn: TurnId,
        last_voice: Duration,
        outcome: Option<Result<AsrOutput, AsrError>>,
    ) -> Self {
        EngineResult::SpeculativeTranscript {
            turn,
            last_voice,
            heard: match outcome {
                Some(Ok(out)) => Some(out.heard()),
                _ => None,
            },
        }
    }

    /// A recognition's outcome, as the request asked for it: a partial, a final, or a
    /// speculative final for the pause after `speculative`.
    pub fn recognized(
        turn: TurnId,
        is_final: bool,
        speculative: Option<Duration>,
        outcome: Option<Result<AsrOutput, AsrError>>,
    ) -> Self {
        match speculative {
            Some(last_voice) => Self::speculative_asr(turn, last_voice, outcome),
            None => Self::asr(turn, is_final, outcome),
        }
    }

    /// The end-of-turn model's outcome for a pause in `turn`. `None` means the worker stopped.
    pub fn turn(turn: TurnId, outcome: Option<Result<TurnPrediction, TurnError>>) -> Self {
        match outcome {
            Some(Ok(prediction)) => EngineResult::TurnPrediction {
                turn,
                probability: prediction.probability,
            },
            Some(Err(e)) => EngineResult::Error {
                turn,
                code: ErrorCode::TurnFailed,
                message: e.to_string(),
            },
            None => EngineResult::Error {
                turn,
                code: ErrorCode::TurnFailed,
                message: "end-of-turn worker stopped".into(),
            },
        }
    }

    /// One item of a reply's synthesis stream for `turn`.
    pub fn tts(turn: TurnId, item: Result<TtsChunk, TtsError>) -> Self {
        match item {
            Ok(chunk) => EngineResult::BotAudio {
                turn,
                pcm: chunk.pcm,
                text: chunk.text,
                last: chunk.last,
            },
            Err(e) => EngineResult::Error {
                turn,
                code: ErrorCode::TtsFailed,
                message: e.to_string(),
            },
        }
    }

    /// The end of a reply's audio, whatever happened to its stream.
    pub fn audio_complete(turn: TurnId) -> Self {
        EngineResult::BotAudio {
            turn,
            pcm: Vec::new(),
            text: String::new(),
            last: true,
        }
    }

    /// The dialogue's answer, or its failure, for `turn`.
    pub fn dialogue(turn: TurnId, answer: Result<BotTurn, String>) -> Self {
        match answer {
            Ok(bot) => EngineResult::BotTurn { turn, bot },
            Err(message) => EngineResult::Error {
                turn,
                code: ErrorCode::DialogueFailed,
                message,
            },
        }
    }

    /// Whether this is a partial transcript (the replay's recognizer model drops those).
    pub fn is_partial(&self) -> bool {
        matches!(
            self,
            EngineResult::Transcript {
                is_final: false,
                ..
            }
        )
    }
}

/// A call's session with its record and event fan-out. See the module docs.
pub struct CallCore {
    id: Option<CallId>,
    session: CallSession,
    record: Option<CallRecord>,
    live: Option<broadcast::Sender<CallEvent>>,
    kept: Option<Vec<CallEvent>>,
    metrics: Option<Arc<Metrics>>,
    /// What a transfer tells the far end: the last intent and the slots so far.
    context: TransferContext,
    /// The bot's audio was cut since [`CallCore::take_bot_cut`] last said so.
    bot_cut: bool,
}

impl CallCore {
    /// A core for `session`; `id` names the call in logs.
    pub fn new(id: Option<CallId>, session: CallSession) -> Self {
        let call_id = id.as_ref().map(|id| id.0.clone());
        Self {
            id,
            session,
            record: None,
            live: None,
            kept: None,
            metrics: None,
            context: TransferContext {
                call_id,
                ..TransferContext::default()
            },
            bot_cut: false,
        }
    }

    /// Writes every event and the audio to `record`.
    pub fn with_record(mut self, record: CallRecord) -> Self {
        self.record = Some(record);
        self
    }

    /// Publishes every event to live subscribers.
    pub fn with_live_events(mut self, live: broadcast::Sender<CallEvent>) -> Self {
        self.live = Some(live);
        self
    }

    /// A new live subscriber to the call's events from now on (none without live events).
    pub fn watch(&self) -> Option<broadcast::Receiver<CallEvent>> {
        self.live.as_ref().map(|live| live.subscribe())
    }

    /// Counts every event in the server's metrics.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Keeps every event for [`CallCore::take_events`].
    pub fn keeping_events(mut self) -> Self {
        self.kept = Some(Vec::new());
        self
    }

    pub fn session(&self) -> &CallSession {
        &self.session
    }

    pub fn session_mut(&mut self) -> &mut CallSession {
        &mut self.session
    }

    /// Whether the call has ended (the session hung up).
    pub fn is_ended(&self) -> bool {
        self.session.is_ended()
    }

    /// Starts the call: `call_start`, then the greeting is asked for.
    pub fn start(&mut self, call_start: EventKind, now: Duration) {
        self.session.start(call_start, now);
    }

    /// One caller frame in; the bot's frame for the tick out (silence when quiet). Both go to
    /// the recording, aligned as the caller hears them.
    pub fn audio(&mut self, caller: &Frame, now: Duration) -> Frame {
        let bot = self.session.handle_audio(caller, now);
        if let Some(record) = self.record.as_mut() {
            record.audio(caller, bot.as_ref());
        }
        bot.unwrap_or_default()
    }

    /// [`CallCore::audio`] on a call with other legs: `others` (what the bridged legs said,
    /// mixed) goes to the caller with the bot's frame, and to the recording's right channel.
    /// Returns what the caller hears, and the bot's own part of it (for a supervisor).
    pub fn audio_with(&mut self, caller: &Frame, others: &Frame, now: Duration) -> (Frame, Frame) {
        let bot = self.session.handle_audio(caller, now);
        let out = match &bot {
            Some(bot) => super::leg::mix(bot, others),
            None => others.clone(),
        };
        if let Some(record) = self.record.as_mut() {
            record.audio(caller, Some(&out));
        }
        (out, bot.unwrap_or_default())
    }

    /// Feeds an engine's answer to the session.
    pub fn apply(&mut self, result: EngineResult, now: Duration) {
        let session = &mut self.session;
        match result {
            EngineResult::Transcript {
                turn,
                is_final,
                heard,
            } => session.handle_transcript(turn, is_final, &heard, now),
            EngineResult::BotTurn { turn, bot } => session.handle_bot_turn(turn, bot, now),
            EngineResult::BotAudio {
                turn,
                pcm,
                text,
                last,
            } => session.handle_bot_audio(turn, &pcm, &text, last, now),
            EngineResult::SpeculativeTranscript {
                turn,
                last_voice,
                heard,
            } => {
                tracing::debug!(
                    turn = turn.0,
                    last_voice_ms = last_voice.as_millis() as u64,
                    now_ms = now.as_millis() as u64,
                    heard = heard.as_ref().map_or("(nothing)", |h| h.text.as_str()),
                    "speculative final heard"
                );
                session.handle_speculative_transcript(turn, last_voice, heard.as_ref(), now)
            }
            EngineResult::TurnPrediction { turn, probability } => {
                session.handle_turn_prediction(turn, probability, now)
            }
            EngineResult::Error {
                turn,
                code,
                message,
            } => {
                match &self.id {
                    Some(id) => tracing::warn!(call = %id, code = %code, "{message}"),
                    None => tracing::warn!(code = %code, "{message}"),
                }
                session.handle_engine_error(turn, code, &message, now);
            }
        }
    }

    /// The next piece of work the session asked for; events met on the way are recorded and
    /// published.
    pub fn poll_work(&mut self) -> Option<Work> {
        loop {
            match self.session.poll_output()? {
                SessionOutput::Event(event) => self.publish(event),
                work => return Some(work),
            }
        }
    }

    /// Records and publishes an event that did not come from the session (the transport's
    /// `call_end` with its media counters).
    pub fn publish(&mut self, event: CallEvent) {
        match &event.kind {
            EventKind::Intent { name, .. } => self.context.intent = Some(name.clone()),
            EventKind::Slot { name, value, .. } => {
                self.context.slots.insert(name.clone(), value.clone());
            }
            EventKind::BotAudioEnd { reason, .. } if *reason != AudioEndReason::Done => {
                self.bot_cut = true;
            }
            _ => {}
        }
        if let Some(record) = self.record.as_mut() {
            if let Err(e) = record.event(&event) {
                match &self.id {
                    Some(id) => tracing::error!(call = %id, "call record: {e}"),
                    None => tracing::error!("call record: {e}"),
                }
            }
        }
        if let Some(metrics) = &self.metrics {
            metrics.observe(&event);
        }
        if let Some(live) = &self.live {
            // No subscriber is fine: nobody is watching this call.
            let _ = live.send(event.clone());
        }
        if let Some(kept) = self.kept.as_mut() {
            kept.push(event);
        }
    }

    /// Whether the bot's audio was cut (not played to its end) since the last call.
    pub fn take_bot_cut(&mut self) -> bool {
        std::mem::take(&mut self.bot_cut)
    }

    /// The call's context for a transfer: its id, the last intent and the slots.
    pub fn transfer_context(&self) -> &TransferContext {
        &self.context
    }

    /// Records the transport's media counters as the last event, `call_end`.
    pub fn end_with_media(&mut self, media: CallMedia, now: Duration) {
        self.publish(CallEvent {
            t_ms: now.as_millis() as u64,
            kind: EventKind::CallEnd { media },
        });
    }

    /// The events kept so far (with [`CallCore::keeping_events`]), still kept.
    pub fn events(&self) -> &[CallEvent] {
        self.kept.as_deref().unwrap_or_default()
    }

    /// The events kept so far (with [`CallCore::keeping_events`]), handed over.
    pub fn take_events(&mut self) -> Vec<CallEvent> {
        self.kept.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Closes the record (events, recording, transcript); its folder, when there is one.
    pub fn finish(mut self) -> Result<Option<PathBuf>, RecordError> {
        match self.record.take() {
            Some(record) => record.finish().map(Some),
            None => Ok(None),
        }
    }
}
