//! `CallSession`: one call's turn-taking state machine, sans-IO.
//!
//! The session owns VAD, endpointing, turn ids, barge-in, the bot's playout queue and the
//! no-input timer. It never reads a clock, a socket or a thread: every input carries the call
//! time (`now`, a [`Duration`] since the call started), and everything it wants done comes out
//! of [`CallSession::poll_output`] as a [`SessionOutput`] (an event to record, a request for
//! ASR, the dialogue or TTS). The same code runs live, in `hotline replay` on a virtual clock,
//! and in benchmarks.
//!
//! Invariants:
//! - Audio is exchanged one 20 ms [`Frame`] at a time: each [`CallSession::handle_audio`]
//!   returns the bot's frame for that tick (or `None` when the bot is quiet).
//! - Engine results carry the [`TurnId`] they were asked for; a result for any turn other than
//!   the current one is stale and dropped, except a final transcript for an utterance of the
//!   caller's current request (see [`Heard`]): it is kept in order, and the dialogue is asked
//!   once every utterance of the request has its text. A new caller utterance, a DTMF key or
//!   a barge-in starts a new turn.
//! - After [`SessionOutput::Hangup`] the session ignores all input.
//! - A transfer on a transport that reports its outcome ([`CallSession::track_transfers`])
//!   keeps the session waiting, silent and deaf, until [`CallSession::handle_transfer_failed`]
//!   (the bot apologises and the call goes on) or a hangup (the transfer happened).

pub mod barge;
pub mod canceller;
pub mod echo;
pub mod event;
pub mod reason;

use std::collections::VecDeque;
use std::time::Duration;

use crate::asr::{Grammar, Recognized};
use crate::audio::vad::Vad;
use crate::audio::{Frame, FRAME_DURATION, FRAME_SAMPLES, SAMPLE_RATE_HZ};
use crate::config::SessionConfig;
use crate::dialogue::{Action, BotTurn, CallerInput, Prompt};
use crate::language::Language;
use crate::turn::words::Words;
use canceller::EchoCanceller;
use echo::EchoGate;
pub use event::{CallEvent, EventKind, TurnId};
pub use reason::{
    AudioEndReason, EndReason, ErrorCode, ErrorKind, ResumeReason, TransferMode, TransferOutcome,
    TurnEnd,
};

/// Samples in one millisecond at the pipeline rate.
const SAMPLES_PER_MS: usize = (SAMPLE_RATE_HZ / 1000) as usize;
/// The longest window sent for a partial transcript.
const PARTIAL_WINDOW_MS: usize = 8_000;
/// The audio the end-of-turn model judges: the utterance's last 8 s.
const TURN_WINDOW_MS: usize = 8_000;
/// Audio kept after the caller's last voiced frame when an utterance ends.
const KEEP_AFTER_VOICE_MS: usize = 200;
/// A barge-in whose sound never became an utterance (a click, a short noise) is false once the
/// caller has been quiet this long: the bot goes on.
const LONE_BARGE_IN_MS: u64 = 400;

/// Something the session wants done. The driver performs it and feeds the result back.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionOutput {
    /// Record this event.
    Event(CallEvent),
    /// Recognize this audio; answer with [`CallSession::handle_transcript`], or, for a
    /// `speculative` final (asked at the pause after that last voiced frame, before the turn is
    /// known to be over), with [`CallSession::handle_speculative_transcript`].
    Recognize {
        turn: TurnId,
        pcm: Vec<i16>,
        is_final: bool,
        speculative: Option<Duration>,
        grammar: Option<Grammar>,
        language: Language,
    },
    /// Ask the end-of-turn model whether the caller has finished (the utterance so far, its
    /// last 8 s at most); answer with [`CallSession::handle_turn_prediction`].
    PredictTurnEnd { turn: TurnId, pcm: Vec<i16> },
    /// Ask the dialogue; answer with [`CallSession::handle_bot_turn`].
    Converse { turn: TurnId, input: CallerInput },
    /// Synthesize these prompts; feed audio with [`CallSession::handle_bot_audio`].
    Speak {
        turn: TurnId,
        prompts: Vec<Prompt>,
        language: Language,
    },
    /// Hand the call over (the transport does it). Without transfer tracking the session ends
    /// with a hangup after; with it, it waits for the outcome.
    Transfer { target: String, reason: String },
    /// The call is over; the transport hangs up.
    Hangup { reason: EndReason },
}

/// Where the caller is in speaking.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Speech {
    /// Quiet; `voiced` counts consecutive voiced frames toward an onset.
    Quiet { voiced: u32 },
    /// Speaking since `started`; the last voiced frame was at `last_voice`.
    Speaking {
        started: Duration,
        last_voice: Duration,
    },
}

/// Timestamps of one turn's pipeline, for the latency breakdown.
#[derive(Debug, Clone, Copy, Default)]
struct TurnClock {
    last_voice: Option<Duration>,
    endpoint: Option<Duration>,
    transcript: Option<Duration>,
    reply: Option<Duration>,
    first_audio: Option<Duration>,
    reported: bool,
}

/// The bot's side: the reply's audio, how far it has played, and what happens when it ends.
#[derive(Debug, Default)]
struct Playout {
    /// The reply's audio so far, kept whole so that a false barge-in can resume it.
    audio: Vec<i16>,
    /// Samples of `audio` played.
    pos: usize,
    /// Where each piece (a sentence, a recorded prompt) of `audio` ends, with its words.
    pieces: Vec<(usize, String)>,
    /// The turn whose audio is queued or awaited.
    turn: Option<TurnId>,
    /// All audio for `turn` has arrived.
    complete: bool,
    /// A frame of `turn` has been played.
    started: bool,
    /// When the first frame was played.
    started_at: Duration,
    /// What to do once the audio has played.
    then: Option<Action>,
    /// The caller cannot interrupt this reply (a flow node's `barge_in = false`, or a reply
    /// followed by a hang-up): their speech and keys are not acted on while it plays.
    locked: bool,
}

impl Playout {
    /// Samples not yet played.
    fn remaining(&self) -> usize {
        self.audio.len().saturating_sub(self.pos)
    }

    /// What the caller has heard so far: every piece played to its end, and the words of the
    /// piece being played in proportion to its audio played (cut at a word).
    fn heard(&self, language: Language) -> String {
        let mut heard: Vec<String> = Vec::new();
        let mut start = 0;
        for (end, text) in &self.pieces {
            if *end <= self.pos {
                heard.push(text.clone());
            } else {
                let share = (self.pos - start.min(self.pos)) as f64 / (end - start).max(1) as f64;
                heard.push(leading_share(text, share, language));
                break;
            }
            start = *end;
        }
        let separator = if language == Language::Zh { "" } else { " " };
        heard
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(separator)
    }

    /// The words of the piece being played and of the one before it: what the echo of the
    /// last few hundred milliseconds can hold.
    fn words_at_cut(&self, language: Language) -> String {
        let at = self
            .pieces
            .iter()
            .position(|(end, _)| *end > self.pos)
            .unwrap_or(self.pieces.len().saturating_sub(1));
        let separator = if language == Language::Zh { "" } else { " " };
        self.pieces[at.saturating_sub(1)..(at + 1).min(self.pieces.len())]
            .iter()
            .map(|(_, text)| text.as_str())
            .collect::<Vec<_>>()
            .join(separator)
    }

    /// Where the piece being played began: a resumed reply starts its sentence again.
    fn piece_start(&self) -> usize {
        self.pieces
            .iter()
            .map(|(end, _)| *end)
            .take_while(|end| *end <= self.pos)
            .last()
            .unwrap_or(0)
    }
}

/// The first `share` (0 to 1) of `text`: whole words in English, characters in Mandarin.
fn leading_share(text: &str, share: f64, language: Language) -> String {
    let share = share.clamp(0.0, 1.0);
    if language == Language::Zh {
        let chars: Vec<char> = text.chars().collect();
        let n = (chars.len() as f64 * share).floor() as usize;
        return chars[..n].iter().collect();
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let n = (words.len() as f64 * share).floor() as usize;
    words[..n].join(" ")
}

/// A final recognition asked for at a pause, before the turn was known to be over.
#[derive(Debug, Clone, PartialEq)]
struct Speculation {
    turn: TurnId,
    /// The caller's last voiced frame before the pause: the speculation holds only while the
    /// utterance ends there.
    last_voice: Duration,
    /// What it heard, once it has arrived.
    heard: Option<Recognized>,
    /// The utterance did end there, and its final waits for this.
    ended: bool,
}

/// One utterance of the caller's current request.
///
/// A pause ends an utterance and asks for its final transcript, which takes real compute
/// (0.3 to 1.5 s with whisper). A caller who goes on speaking meanwhile starts a new turn,
/// so the earlier final arrives for a superseded turn. It is not stale: it is kept here, in
/// order, and the dialogue is asked only once every utterance of the request has its text.
#[derive(Debug, Clone, PartialEq)]
struct Heard {
    turn: TurnId,
    /// The final transcript, once it has arrived.
    text: Option<String>,
    /// The recognizer's confidence in it, where it gives one.
    confidence: Option<f32>,
}

/// One call's turn-taking state machine. See the module docs.
pub struct CallSession {
    config: SessionConfig,
    language: Language,
    vad: Vad,
    speech: Speech,
    /// The current turn.
    turn: TurnId,
    /// Recent caller audio kept for the pre-roll.
    preroll: VecDeque<i16>,
    /// The current utterance.
    utterance: Vec<i16>,
    /// Utterance length at the last partial request.
    partial_at_samples: usize,
    partial_in_flight: bool,
    /// The caller's request since the bot last answered: each utterance in order, with its
    /// final transcript once it has arrived. See [`Heard`].
    request: Vec<Heard>,
    /// The dialogue has been asked about `request` for the current turn.
    asked: bool,
    /// The dialogue's last turn said the caller's next answer is personal data: what they say
    /// or key until the next turn says otherwise is marked `sensitive` in its events.
    answer_sensitive: bool,
    /// Voiced frames heard while the bot talks (toward a barge-in).
    barge_voiced: u32,
    /// The dialogue's grammar for the next answer.
    expect: Option<Grammar>,
    playout: Playout,
    /// A reply cut by caller speech, kept until the caller's words tell whether the barge-in
    /// was real (the reply is dropped) or false (it resumes); with when it was cut.
    paused: Option<(Playout, Duration)>,
    /// Tells the caller's voice from the echo of the bot's own audio.
    echo: EchoGate,
    /// Takes the bot's echo out of what the caller's frames carry, on the gate's path.
    canceller: EchoCanceller,
    /// The speculative final in flight or arrived, if any.
    speculation: Option<Speculation>,
    /// The pause (after this last voiced frame) whose speculative final brought nothing: the
    /// endpoint's final answers it.
    unspeculated_pause: Option<Duration>,
    clock: TurnClock,
    /// When the no-input timer fires, if armed.
    no_input_at: Option<Duration>,
    /// Loudness of earlier utterances (dB), for shouting detection.
    baseline_db: Option<f32>,
    utterance_energy: f64,
    utterance_frames: u32,
    /// The loudest voiced frame's RMS in the current utterance.
    utterance_peak_rms: f32,
    /// `pause_below_peak_db` as an amplitude ratio (0: off).
    pause_below_peak: f32,
    /// An end-of-turn model answers [`SessionOutput::PredictTurnEnd`].
    turn_model: bool,
    /// The pause the model was asked about: the last voiced frame's time, while it thinks.
    turn_asked_at: Option<Duration>,
    /// The model or the words judged the current pause unfinished: wait up to
    /// `turn_max_silence_ms`.
    turn_unsure: bool,
    /// The words judged the current pause a finished sentence before it reached
    /// `words_min_silence_ms`: the turn ends when it does.
    turn_finished: bool,
    outputs: VecDeque<SessionOutput>,
    ended: bool,
    /// The transport tells us whether a transfer happened.
    tracks_transfers: bool,
    /// The transfer whose outcome we wait for.
    transferring: Option<PendingTransfer>,
    /// The server is shutting down: the bot says goodbye and hangs up; the caller is no longer
    /// heard.
    closing: bool,
    /// The caller is bridged to another leg (a human): the session goes on listening,
    /// transcribing and recording, but the bot does not answer.
    bridged: bool,
    /// hotline dials `sip:` targets itself and bridges them (else the transport transfers).
    bridge_sip: bool,
    /// The flow's words after a failed transfer ([`crate::dialogue::CallPlan::transfer_failed`]).
    transfer_failed_then: Option<String>,
}

/// A transfer waiting for its outcome, with its timings on the call clock.
#[derive(Debug, Clone)]
struct PendingTransfer {
    target: String,
    /// Why (the flow's reason), for the far end's context.
    reason: String,
    mode: TransferMode,
    /// When the decision was made.
    since: Duration,
    /// When the first human rang (bridged).
    rang_at: Option<Duration>,
    /// When the human accepted (bridged); the audio is bridged once media flows.
    accepted_at: Option<Duration>,
    /// Who accepted.
    agent: Option<String>,
}

/// What the bot says when the server shuts down with the call still in progress.
fn shutdown_prompt(language: Language) -> Prompt {
    Prompt::text(match language {
        Language::Zh => "抱歉，服务即将关闭，请稍后再拨。再见。",
        _ => "Sorry, this line is closing now. Please call again later. Goodbye.",
    })
}

/// What the bot says when a transfer fails, before the call goes on: what happened, then the
/// flow's own words (its options), or back to the conversation.
fn transfer_failed_prompt(
    language: Language,
    outcome: TransferOutcome,
    then: Option<&str>,
) -> Prompt {
    let what = match (language, outcome) {
        (Language::Zh, TransferOutcome::Busy) => "抱歉，人工客服现在都在忙。",
        (Language::Zh, TransferOutcome::NoAnswer) => "抱歉，暂时没有人工客服接听。",
        (Language::Zh, _) => "抱歉，现在无法为您接通人工客服。",
        (_, TransferOutcome::Busy) => "Sorry, all our agents are busy right now.",
        (_, TransferOutcome::NoAnswer) => "Sorry, no agent could answer in time.",
        _ => "Sorry, I couldn't reach an agent right now.",
    };
    let then = then.unwrap_or(match language {
        Language::Zh => "我们继续吧，还有什么可以帮您？",
        _ => "Let's carry on: how else can I help you?",
    });
    let gap = if language == Language::Zh { "" } else { " " };
    Prompt::text(format!("{what}{gap}{then}"))
}

impl CallSession {
    /// A session for one call in `language`.
    pub fn new(config: SessionConfig, language: Language) -> Self {
        let echo = EchoGate::new(config.echo_tail_ms, config.echo_margin_db);
        let canceller = EchoCanceller::new(config.echo_tail_ms);
        let pause_below_peak = if config.pause_below_peak_db > 0.0 {
            10f32.powf(-config.pause_below_peak_db / 20.0)
        } else {
            0.0
        };
        Self {
            config,
            language,
            vad: Vad::new(),
            speech: Speech::Quiet { voiced: 0 },
            turn: TurnId(0),
            preroll: VecDeque::new(),
            utterance: Vec::new(),
            partial_at_samples: 0,
            partial_in_flight: false,
            request: Vec::new(),
            asked: false,
            answer_sensitive: false,
            barge_voiced: 0,
            expect: None,
            playout: Playout::default(),
            paused: None,
            echo,
            canceller,
            speculation: None,
            unspeculated_pause: None,
            clock: TurnClock::default(),
            no_input_at: None,
            baseline_db: None,
            utterance_energy: 0.0,
            utterance_frames: 0,
            utterance_peak_rms: 0.0,
            pause_below_peak,
            turn_model: false,
            turn_asked_at: None,
            turn_unsure: false,
            turn_finished: false,
            outputs: VecDeque::new(),
            ended: false,
            tracks_transfers: false,
            transferring: None,
            closing: false,
            bridged: false,
            bridge_sip: false,
            transfer_failed_then: None,
        }
    }

    /// The caller is bridged to another leg (`true`) or back with the bot (`false`). While
    /// bridged the bot is quiet: caller speech is still recognized and recorded as
    /// transcripts, but the dialogue is not asked and no timers run.
    pub fn set_bridged(&mut self, bridged: bool, now: Duration) {
        if self.ended || self.bridged == bridged {
            return;
        }
        self.bridged = bridged;
        if bridged {
            self.stop_bot(now, AudioEndReason::Superseded);
            self.no_input_at = None;
        } else {
            self.arm_no_input(now);
        }
    }

    /// Whether an end-of-turn model answers [`SessionOutput::PredictTurnEnd`] (the driver
    /// says so when one is loaded). Without one, a fixed `endpoint_silence_ms` ends a turn.
    pub fn use_turn_model(&mut self, on: bool) {
        self.turn_model = on;
    }

    /// The end-of-turn model's answer for the pause it was asked about in `turn`: at or above
    /// `turn_complete_threshold` the turn ends now; below it, the pause may last up to
    /// `turn_max_silence_ms`. An answer for a pause the caller has since broken is stale.
    pub fn handle_turn_prediction(&mut self, turn: TurnId, probability: f32, now: Duration) {
        if self.ended || turn != self.turn {
            return;
        }
        let Speech::Speaking { last_voice, .. } = self.speech else {
            return;
        };
        if self.turn_asked_at != Some(last_voice) {
            return; // the caller spoke again meanwhile
        }
        self.turn_asked_at = None;
        let complete = probability >= self.config.turn_complete_threshold;
        self.emit(
            now,
            EventKind::TurnPrediction {
                turn,
                probability,
                complete,
            },
        );
        if complete {
            self.end_utterance(last_voice, now, TurnEnd::Model);
        } else {
            self.turn_unsure = true;
        }
    }

    /// Whether the caller is bridged to another leg.
    pub fn is_bridged(&self) -> bool {
        self.bridged
    }

    /// The turn whose reply is playing or awaited, if any: a synthesis job for any other turn
    /// is dead and may be dropped.
    pub fn speaking_turn(&self) -> Option<TurnId> {
        self.playout
            .turn
            .or_else(|| self.paused.as_ref().and_then(|(p, _)| p.turn))
    }

    /// What the bot says after a transfer nobody took, after its word on what happened (the
    /// flow's options; none: "how else can I help?").
    pub fn set_transfer_failed_words(&mut self, words: Option<String>) {
        self.transfer_failed_then = words;
    }

    /// Whether hotline dials `sip:` transfer targets itself and bridges them to the caller
    /// (the driver says so: `agents.sip_transfer = "bridge"`, or a transport that cannot hand
    /// a call over).
    pub fn bridge_sip_transfers(&mut self, on: bool) {
        self.bridge_sip = on;
    }

    /// How a call is handed to `target`: a `queue:NAME` target is always bridged by hotline;
    /// a SIP URI is bridged when [`CallSession::bridge_sip_transfers`] says so, else it is the
    /// transport's blind transfer (SIP REFER).
    pub fn transfer_mode(&self, target: &str) -> TransferMode {
        if crate::agents::queue_of(target).is_some() || self.bridge_sip {
            TransferMode::Bridged
        } else {
            TransferMode::Blind
        }
    }

    /// Whether the transport reports transfer outcomes (SIP REFER does; a web call cannot be
    /// handed over). With tracking, a transfer waits for [`CallSession::handle_transfer_failed`]
    /// or a hangup instead of ending the call.
    pub fn track_transfers(&mut self, on: bool) {
        self.tracks_transfers = on;
    }

    /// The transfer failed (`reason` is a stable code from the transport): the call stays, the
    /// bot says so, and the conversation goes on where it was.
    pub fn handle_transfer_failed(&mut self, reason: &str, now: Duration) {
        if self.ended {
            return;
        }
        let Some(pending) = self.transferring.take() else {
            return;
        };
        let outcome = TransferOutcome::from_failure(reason);
        self.emit_result(&pending, outcome, now);
        self.emit(
            now,
            EventKind::TransferFailed {
                target: pending.target,
                reason: reason.to_string(),
            },
        );
        self.new_turn();
        self.clear_request();
        let prompt =
            transfer_failed_prompt(self.language, outcome, self.transfer_failed_then.as_deref());
        self.say_own(prompt, None, now);
    }

    /// A bridged transfer rings `agent` (the first ring sets `ring_ms`).
    pub fn handle_transfer_ringing(&mut self, agent: &str, now: Duration) {
        let Some(pending) = self.transferring.as_mut() else {
            return;
        };
        pending.rang_at.get_or_insert(now);
        let target = pending.target.clone();
        self.emit(
            now,
            EventKind::TransferRinging {
                target,
                agent: agent.to_string(),
            },
        );
    }

    /// The human accepted the bridged transfer; the audio is bridged once their media flows
    /// ([`CallSession::handle_transfer_answered`]). Queue announcements stop.
    pub fn handle_transfer_accepted(&mut self, agent: &str, warm: bool, now: Duration) {
        let Some(pending) = self.transferring.as_mut() else {
            return;
        };
        pending.accepted_at = Some(now);
        pending.agent = Some(agent.to_string());
        if warm {
            pending.mode = TransferMode::Warm;
        }
        self.stop_bot(now, AudioEndReason::Superseded);
    }

    /// The human's audio flows: the transfer is answered and the caller bridged to them.
    pub fn handle_transfer_answered(&mut self, now: Duration) {
        if self.ended {
            return;
        }
        let Some(pending) = self.transferring.take() else {
            return;
        };
        self.emit_result(&pending, TransferOutcome::Answered, now);
        self.new_turn();
        self.clear_request();
        self.set_bridged(true, now);
    }

    /// The transfer waiting for its outcome: its target, reason and mode.
    pub fn pending_transfer(&self) -> Option<(String, String, TransferMode)> {
        self.transferring
            .as_ref()
            .map(|p| (p.target.clone(), p.reason.clone(), p.mode))
    }

    /// The attempt under way failed (`failure`, a transport's or the ACD's code) and hotline
    /// tries `target` instead, bridged (a refused REFER's own target, a queue's overflow): the
    /// attempt is recorded (`transfer_result`), and the transfer goes on from now, the caller
    /// still waiting.
    pub fn redirect_transfer(&mut self, failure: &str, target: &str, now: Duration) {
        let Some(pending) = self.transferring.as_mut() else {
            return;
        };
        let attempt = pending.clone();
        *pending = PendingTransfer {
            target: target.to_string(),
            reason: attempt.reason.clone(),
            mode: TransferMode::Bridged,
            since: now,
            rang_at: None,
            accepted_at: None,
            agent: None,
        };
        self.emit_result(&attempt, TransferOutcome::from_failure(failure), now);
    }

    /// Whether a transfer waits for its outcome.
    pub fn is_transferring(&self) -> bool {
        self.transferring.is_some()
    }

    /// While the caller waits on a bridged transfer: says `text` (their place in the queue),
    /// unless the bot is already saying something. Nothing the caller says is listened to.
    pub fn announce(&mut self, text: &str, now: Duration) {
        let waiting = self
            .transferring
            .as_ref()
            .is_some_and(|p| p.accepted_at.is_none());
        if self.ended || !waiting || self.bot_active() {
            return;
        }
        self.new_turn();
        self.say_own(Prompt::text(text), None, now);
    }

    /// The human on the bridged leg hands the caller on to `target` (another queue, a SIP
    /// target): the caller leaves the bridge and waits again, as for any transfer
    /// (`reason` `agent.transfer`).
    pub fn handle_agent_transfer(&mut self, target: &str, now: Duration) {
        if self.ended || !self.bridged || self.transferring.is_some() {
            return;
        }
        self.bridged = false;
        self.new_turn();
        self.clear_request();
        let action = Action::Transfer {
            target: target.to_string(),
            reason: "agent.transfer".to_string(),
        };
        self.perform(action, now);
    }

    /// The human on the bridged leg hung up: the call ends (`agent.hangup`).
    pub fn handle_agent_hangup(&mut self, now: Duration) {
        if self.ended || !self.bridged {
            return;
        }
        self.keep_unanswered_words(now);
        self.finish(EndReason::AgentHangup, now);
    }

    fn emit_result(&mut self, p: &PendingTransfer, outcome: TransferOutcome, now: Duration) {
        let ms = |d: Duration| d.as_millis() as u64;
        self.emit(
            now,
            EventKind::TransferResult {
                target: p.target.clone(),
                mode: p.mode,
                outcome,
                agent: p.agent.clone(),
                wait_ms: ms(now.saturating_sub(p.since)),
                ring_ms: p.rang_at.map(|at| ms(at.saturating_sub(p.since))),
                bridge_ms: p.accepted_at.map(|at| ms(now.saturating_sub(at))),
            },
        );
    }

    /// The session's own words (not the dialogue's), as a turn of their own: recorded, spoken,
    /// then `then`.
    fn say_own(&mut self, prompt: Prompt, then: Option<Action>, now: Duration) {
        let turn = self.turn;
        self.emit(
            now,
            EventKind::BotReply {
                turn,
                text: prompt.text.clone(),
            },
        );
        self.playout = Playout {
            turn: Some(turn),
            then,
            ..Playout::default()
        };
        self.outputs.push_back(SessionOutput::Speak {
            turn,
            prompts: vec![prompt],
            language: self.language,
        });
    }

    /// Starts the call: records `call_start` and asks the dialogue for its greeting.
    pub fn start(&mut self, call_start: EventKind, now: Duration) {
        self.emit(now, call_start);
        self.outputs.push_back(SessionOutput::Converse {
            turn: self.turn,
            input: CallerInput::Start,
        });
    }

    /// The current turn.
    pub fn turn(&self) -> TurnId {
        self.turn
    }

    /// The call's language (the dialogue may change it).
    pub fn language(&self) -> Language {
        self.language
    }

    /// Whether the call is over.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Whether the bot is speaking or has audio on the way.
    pub fn bot_active(&self) -> bool {
        self.playout.turn.is_some()
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<SessionOutput> {
        self.outputs.pop_front()
    }

    /// When [`CallSession::handle_timeout`] must next be called, if a timer is armed.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.ended {
            return None;
        }
        self.no_input_at
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Duration) {
        if self.ended {
            return;
        }
        if let Some(at) = self.no_input_at {
            if now >= at
                && matches!(self.speech, Speech::Quiet { .. })
                && !self.bot_active()
                && !self.closing
                && !self.bridged
                && self.transferring.is_none()
            {
                self.no_input_at = None;
                self.new_turn();
                self.clear_request();
                self.outputs.push_back(SessionOutput::Converse {
                    turn: self.turn,
                    input: CallerInput::NoInput,
                });
            }
        }
    }

    /// Takes one 20 ms caller frame and returns the bot's frame for the same tick.
    pub fn handle_audio(&mut self, frame: &Frame, now: Duration) -> Option<Frame> {
        if self.ended {
            return None;
        }
        if self.transferring.is_some() {
            // Waiting on a hand-over: the caller is not listened to; announcements play.
            return self.next_bot_frame(now);
        }
        self.handle_timeout(now);
        if !self.closing {
            // The gate learns on every frame, so it is asked even when the VAD hears nothing.
            let echo = self.echo.is_echo(frame);
            // The VAD and the recognizer hear the frame with the echo taken out; the filter
            // learns only on frames that are echo alone.
            let path = if self.config.echo_cancel {
                self.echo.path()
            } else {
                None
            };
            let heard = self.canceller.cancel(frame, path, echo);
            let vad_voiced = self.vad.score(&heard) >= self.config.vad_threshold;
            // A reply that cannot be interrupted is not listened over.
            let listening = !(self.playout.turn.is_some() && self.playout.locked);
            let voiced = vad_voiced && !echo && listening;
            self.track_speech(&heard, voiced, now);
            self.track_barge_in(voiced, now);
            self.resume_after_lone_barge_in(now);
        }
        let bot = self.next_bot_frame(now);
        self.echo.bot_sent(bot.as_ref());
        self.canceller.bot_sent(bot.as_ref());
        bot
    }

    /// Takes a caller utterance that arrives as text (`hotline chat`): a complete request of
    /// its own, heard at once, at the loudness given (dB over the caller's baseline).
    pub fn handle_text(&mut self, text: &str, level_vs_baseline_db: f32, now: Duration) {
        if self.ended || self.transferring.is_some() || self.closing {
            return;
        }
        self.stop_bot(now, AudioEndReason::BargeIn);
        self.new_turn();
        self.clear_request();
        self.no_input_at = None;
        self.clock = TurnClock::default();
        let turn = self.turn;
        let text = text.trim().to_string();
        self.emit(
            now,
            EventKind::Transcript {
                turn,
                text: text.clone(),
                is_final: true,
                sensitive: self.answer_sensitive,
            },
        );
        self.asked = true;
        self.outputs.push_back(SessionOutput::Converse {
            turn,
            input: CallerInput::Speech {
                text,
                level_vs_baseline_db,
            },
        });
    }

    /// The server is shutting down: the bot stops what it is saying, says goodbye and hangs
    /// up with `server.shutdown` once the goodbye has played. The caller is no longer heard.
    /// A call waiting on a transfer ends at once.
    pub fn handle_shutdown(&mut self, now: Duration) {
        if self.ended || self.closing {
            return;
        }
        if let Some(pending) = self.transferring.take() {
            self.emit_result(&pending, TransferOutcome::Failed, now);
            self.finish(EndReason::ServerShutdown, now);
            return;
        }
        self.closing = true;
        self.stop_bot(now, AudioEndReason::Superseded);
        self.keep_unanswered_words(now);
        self.new_turn();
        self.clear_request();
        self.no_input_at = None;
        let goodbye = Action::Hangup {
            reason: EndReason::ServerShutdown.code().to_string(),
        };
        self.say_own(shutdown_prompt(self.language), Some(goodbye), now);
    }

    /// Takes a DTMF key: it interrupts the bot and goes to the dialogue as its own turn.
    pub fn handle_dtmf(&mut self, digit: char, now: Duration) {
        if self.ended || self.transferring.is_some() || self.closing {
            return;
        }
        self.emit(
            now,
            EventKind::Dtmf {
                digit: digit.to_string(),
                sensitive: self.answer_sensitive,
            },
        );
        if self.bridged || (self.playout.turn.is_some() && self.playout.locked) {
            // Recorded, not acted on: a human answers, or the reply may not be interrupted.
            return;
        }
        self.stop_bot(now, AudioEndReason::Dtmf);
        self.new_turn();
        // A key is a request of its own: speech still being recognized is superseded.
        self.clear_request();
        self.no_input_at = None;
        self.outputs.push_back(SessionOutput::Converse {
            turn: self.turn,
            input: CallerInput::Dtmf { digit },
        });
    }

    /// Takes a recognizer result for `turn`.
    ///
    /// A partial counts only for the current turn. A final counts for any utterance of the
    /// caller's current request, even one the caller has since continued (see [`Heard`]);
    /// anything else is stale and dropped.
    pub fn handle_transcript(
        &mut self,
        turn: TurnId,
        is_final: bool,
        heard: &Recognized,
        now: Duration,
    ) {
        if self.ended {
            return;
        }
        let text = heard.text.trim();
        let confidence = heard.confidence;
        if !is_final {
            if turn != self.turn {
                return;
            }
            self.partial_in_flight = false;
            if !text.is_empty() && !self.asked {
                self.emit(
                    now,
                    EventKind::Transcript {
                        turn,
                        text: text.to_string(),
                        is_final: false,
                        sensitive: self.answer_sensitive,
                    },
                );
            }
            return;
        }
        let Some(heard) = self
            .request
            .iter_mut()
            .find(|h| h.turn == turn && h.text.is_none())
        else {
            return; // stale, or a second final for the same utterance
        };
        heard.text = Some(text.to_string());
        heard.confidence = confidence;
        self.settle_request(now);
    }

    /// Asks the dialogue once the request is complete: the caller is not speaking again, and
    /// every utterance has its final transcript. The transcript is the utterances in order.
    fn settle_request(&mut self, now: Duration) {
        let current = self.request.last().is_some_and(|h| h.turn == self.turn);
        if self.asked || !current || self.request.iter().any(|h| h.text.is_none()) {
            return;
        }
        let full = self.request_text();
        let turn = self.turn;
        self.clock.transcript = Some(now);
        self.emit(
            now,
            EventKind::Transcript {
                turn,
                text: full.clone(),
                is_final: true,
                sensitive: self.answer_sensitive,
            },
        );
        if self.bridged {
            // Heard and recorded; the human on the other leg answers.
            self.clear_request();
            return;
        }
        if let Some((paused, _)) = self.paused.take() {
            // The least sure of the request's utterances speaks for it.
            let confidence = self
                .request
                .iter()
                .filter_map(|h| h.confidence)
                .reduce(f32::min);
            let bot = paused.words_at_cut(self.language);
            let said = barge::OverTheBot {
                text: &full,
                confidence,
                bot: &bot,
            };
            let judged = barge::judge(
                said,
                self.expect.as_ref(),
                self.config.barge_in_unclear_below,
                self.language,
            );
            if let Some(reason) = judged {
                self.clear_request();
                self.resume(paused, reason, now);
                return;
            }
            // A real turn: the cut reply stays cut (its `bot_heard` is in the record).
        }
        self.asked = true;
        let level_vs_baseline_db = self.take_loudness();
        self.outputs.push_back(SessionOutput::Converse {
            turn,
            input: CallerInput::Speech {
                text: full,
                level_vs_baseline_db,
            },
        });
    }

    /// The call ends while the request still waits for a final: the words that did arrive go
    /// into the record as the request's final transcript, so none is lost (the dialogue is
    /// not asked any more).
    fn keep_unanswered_words(&mut self, now: Duration) {
        if self.asked {
            return;
        }
        let heard = self.request_text();
        if heard.is_empty() {
            return;
        }
        let turn = self.turn;
        self.emit(
            now,
            EventKind::Transcript {
                turn,
                text: heard,
                is_final: true,
                sensitive: self.answer_sensitive,
            },
        );
        self.clear_request();
    }

    /// The texts of the request's utterances that have arrived, in order.
    fn request_text(&self) -> String {
        let separator = match self.language {
            Language::Zh => "",
            _ => " ",
        };
        self.request
            .iter()
            .filter_map(|h| h.text.as_deref())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(separator)
    }

    /// Forgets the caller's request (answered, or superseded by a key or a timeout).
    fn clear_request(&mut self) {
        self.request.clear();
        self.asked = false;
        self.speculation = None;
    }

    /// Takes a speculative final for the pause after `last_voice` in `turn` (`None`: it
    /// failed). It counts only if the utterance ended at that pause: kept if the utterance has
    /// not ended yet, used at once if its end waits for it, dropped if the caller went on.
    ///
    /// With `end_on_words`, the text also has its say on a pause still going on
    /// ([`crate::turn::words`]): a finished sentence ends the turn now (unless the model judged
    /// the pause unfinished), and an unfinished one waits up to `turn_max_silence_ms`.
    pub fn handle_speculative_transcript(
        &mut self,
        turn: TurnId,
        last_voice: Duration,
        heard: Option<&Recognized>,
        now: Duration,
    ) {
        if self.ended {
            return;
        }
        let Some(speculation) = self.speculation.as_mut() else {
            return;
        };
        if speculation.turn != turn || speculation.last_voice != last_voice {
            return; // the caller went on: a newer pause, or a newer utterance
        }
        if !speculation.ended {
            match heard {
                Some(heard) => {
                    speculation.heard = Some(heard.clone());
                    if self.config.end_on_words {
                        self.judge_words(&heard.text, last_voice, now);
                    }
                }
                // The endpoint will ask for a final of its own; this pause is not asked
                // about again (a recognizer shedding speculation under load, or failing).
                None => {
                    self.speculation = None;
                    self.unspeculated_pause = Some(last_voice);
                }
            }
            return;
        }
        self.speculation = None;
        match heard {
            Some(heard) => self.handle_transcript(turn, true, heard, now),
            None => self.handle_engine_error(
                turn,
                ErrorCode::AsrFailed,
                "the speculative final recognition failed",
                now,
            ),
        }
    }

    /// The words' verdict on the pause after `last_voice`, still going on: see
    /// [`CallSession::handle_speculative_transcript`].
    fn judge_words(&mut self, text: &str, last_voice: Duration, now: Duration) {
        if !matches!(self.speech, Speech::Speaking { last_voice: l, .. } if l == last_voice) {
            return;
        }
        let digits = self
            .expect
            .as_ref()
            .is_some_and(crate::dialogue::collects_digits);
        match crate::turn::words::judge(text, self.language, digits) {
            Words::Finished if !self.turn_unsure => {
                if now.saturating_sub(last_voice) >= self.words_min_silence() {
                    self.end_utterance(last_voice, now, TurnEnd::Words)
                } else {
                    self.turn_finished = true;
                }
            }
            Words::Unfinished => self.turn_unsure = true,
            _ => {}
        }
    }

    /// Takes an engine failure for `turn`; the call goes on.
    pub fn handle_engine_error(
        &mut self,
        turn: TurnId,
        code: ErrorCode,
        message: &str,
        now: Duration,
    ) {
        if self.ended {
            return;
        }
        self.emit(
            now,
            EventKind::Error {
                code,
                message: message.to_string(),
            },
        );
        if code.kind() == ErrorKind::Turn && turn == self.turn {
            // No judgement: the pause may last the longest silence.
            self.turn_asked_at = None;
            self.turn_unsure = true;
        }
        if code.kind() == ErrorKind::Asr {
            // A failed final recognition counts as "heard nothing" for its utterance, so the
            // request still completes and the dialogue can reprompt.
            self.handle_transcript(turn, true, &Recognized::default(), now);
        }
    }

    /// Takes the dialogue's answer for `turn`. Stale answers are dropped.
    pub fn handle_bot_turn(&mut self, turn: TurnId, bot: BotTurn, now: Duration) {
        if self.ended || self.closing || turn != self.turn {
            return;
        }
        self.clock.reply = Some(now);
        self.clear_request();
        self.answer_sensitive = bot.sensitive_answer;
        if let Some(intent) = &bot.intent {
            self.emit(
                now,
                EventKind::Intent {
                    turn,
                    name: intent.name.clone(),
                    confidence: intent.confidence,
                },
            );
        }
        for (name, value) in &bot.slots {
            self.emit(
                now,
                EventKind::Slot {
                    turn,
                    name: name.clone(),
                    value: value.clone(),
                    sensitive: bot.sensitive_slots.contains(name),
                },
            );
        }
        if let Some(text) = &bot.knowledge_gap {
            self.emit(
                now,
                EventKind::KnowledgeGap {
                    turn,
                    text: text.clone(),
                },
            );
        }
        if let Some(language) = bot.language {
            self.language = language;
        }
        self.expect = bot.expect;
        let prompts: Vec<Prompt> = bot
            .say
            .into_iter()
            .filter(|p| !p.text.trim().is_empty() || p.audio_file.is_some())
            .collect();
        for prompt in &prompts {
            self.emit(
                now,
                EventKind::BotReply {
                    turn,
                    text: prompt.text.clone(),
                },
            );
        }
        // A new reply replaces whatever the bot was saying.
        self.stop_bot(now, AudioEndReason::Superseded);
        if prompts.is_empty() {
            if let Some(action) = bot.action {
                self.perform(action, now);
            } else {
                self.arm_no_input(now);
            }
            return;
        }
        // A reply that the call's end follows plays to its end: cutting it would drop the
        // hang-up (the dialogue is done), and leave the caller on a line that no longer
        // answers. A transfer's reply stays open: the caller's words over it go on to the
        // dialogue.
        let locked = bot.no_barge_in || matches!(bot.action, Some(Action::Hangup { .. }));
        self.playout = Playout {
            turn: Some(turn),
            then: bot.action,
            locked,
            ..Playout::default()
        };
        self.no_input_at = None;
        self.outputs.push_back(SessionOutput::Speak {
            turn,
            prompts,
            language: self.language,
        });
    }

    /// Takes synthesized audio (16 kHz mono) for `turn`, with the words it speaks (for what
    /// the caller heard of a cut reply); `last` marks the end of its reply. Audio for a reply
    /// paused by a barge-in goes on arriving, in case it resumes.
    pub fn handle_bot_audio(
        &mut self,
        turn: TurnId,
        pcm: &[i16],
        text: &str,
        last: bool,
        now: Duration,
    ) {
        if self.ended {
            return;
        }
        let active = self.playout.turn == Some(turn);
        let playout = match self.paused.as_mut() {
            _ if active => &mut self.playout,
            Some((paused, _)) if paused.turn == Some(turn) => paused,
            _ => return,
        };
        playout.audio.extend_from_slice(pcm);
        if !pcm.is_empty() {
            playout.pieces.push((playout.audio.len(), text.to_string()));
        }
        if last {
            playout.complete = true;
        }
        if !active {
            return;
        }
        if self.clock.first_audio.is_none() && !pcm.is_empty() {
            self.clock.first_audio = Some(now);
        }
        if last && self.playout.remaining() == 0 && !self.playout.started {
            // A reply with no audio at all (silent, or every sentence failed): nothing to wait
            // for.
            self.finish_playout(now);
        }
    }

    /// The caller (or the transport) ended the call.
    pub fn handle_hangup(&mut self, reason: EndReason, now: Duration) {
        if self.ended {
            return;
        }
        self.stop_bot(now, AudioEndReason::Hangup);
        self.keep_unanswered_words(now);
        if let Some(pending) = self.transferring.take() {
            let outcome = match reason {
                EndReason::TransferDone => TransferOutcome::Answered,
                EndReason::CallerHangup => TransferOutcome::CallerHangup,
                _ => TransferOutcome::Failed,
            };
            self.emit_result(&pending, outcome, now);
        }
        self.finish(reason, now);
    }

    // ---- caller side ----

    fn track_speech(&mut self, frame: &Frame, voiced: bool, now: Duration) {
        let frame_ms = FRAME_DURATION.as_millis() as u64;
        match self.speech {
            Speech::Quiet { voiced: n } => {
                self.push_preroll(frame);
                let n = if voiced { n + 1 } else { 0 };
                if u64::from(n) * frame_ms >= self.config.speech_start_ms.max(frame_ms) {
                    self.begin_utterance(now, n);
                } else {
                    self.speech = Speech::Quiet { voiced: n };
                }
            }
            Speech::Speaking {
                started,
                last_voice,
            } => {
                self.utterance.extend_from_slice(frame.samples());
                // The detector goes on calling the fading tail of a word voice for a few
                // frames (40 to 140 ms on the shared dialog turns): a frame far below the
                // utterance's loudest one already belongs to the pause.
                let rms = frame.rms();
                let voiced = voiced && rms >= self.utterance_peak_rms * self.pause_below_peak;
                let last_voice = if voiced { now } else { last_voice };
                if voiced {
                    self.utterance_energy += f64::from(rms).powi(2);
                    self.utterance_frames += 1;
                    self.utterance_peak_rms = self.utterance_peak_rms.max(rms);
                }
                self.speech = Speech::Speaking {
                    started,
                    last_voice,
                };
                let silence = now.saturating_sub(last_voice);
                let length = now.saturating_sub(started);
                if voiced {
                    // The pause, if any, is broken: the next one is judged afresh, and a
                    // speculative final for it is void.
                    self.turn_asked_at = None;
                    self.turn_unsure = false;
                    self.turn_finished = false;
                    if self.speculation.as_ref().is_some_and(|s| !s.ended) {
                        self.speculation = None;
                    }
                }
                if silence >= self.endpoint_wait() {
                    self.end_utterance(last_voice, now, TurnEnd::Silence);
                    return;
                }
                if self.turn_finished && !self.turn_unsure && silence >= self.words_min_silence() {
                    self.end_utterance(last_voice, now, TurnEnd::Words);
                    return;
                }
                if length >= Duration::from_millis(self.config.max_utterance_ms) {
                    self.end_utterance(last_voice, now, TurnEnd::MaxLength);
                    return;
                }
                if voiced {
                    self.maybe_partial();
                    return;
                }
                if self.config.speculative_asr_ms > 0
                    && silence >= Duration::from_millis(self.config.speculative_asr_ms)
                    && self.speculation.is_none()
                    && self.unspeculated_pause != Some(last_voice)
                {
                    self.speculate(last_voice, now);
                }
                if self.turn_model
                    && self.turn_asked_at.is_none()
                    && !self.turn_unsure
                    && silence >= Duration::from_millis(self.config.turn_check_ms)
                {
                    self.ask_turn_model(last_voice);
                }
            }
        }
    }

    /// The silence that ends a turn: the fixed endpoint, unless a model is used or the pause
    /// was judged unfinished; then the longest wait (the model ends a complete turn earlier,
    /// see [`CallSession::handle_turn_prediction`]; so do finished words, see
    /// [`CallSession::handle_speculative_transcript`]).
    fn endpoint_wait(&self) -> Duration {
        if self.turn_model || self.turn_unsure {
            Duration::from_millis(self.config.turn_max_silence_ms)
        } else {
            Duration::from_millis(self.config.endpoint_silence_ms)
        }
    }

    /// The shortest pause that finished words end (`words_min_silence_ms`).
    fn words_min_silence(&self) -> Duration {
        Duration::from_millis(self.config.words_min_silence_ms)
    }

    /// Asks the end-of-turn model about the pause that began after `last_voice`.
    fn ask_turn_model(&mut self, last_voice: Duration) {
        self.turn_asked_at = Some(last_voice);
        let window = TURN_WINDOW_MS * SAMPLES_PER_MS;
        let start = self.utterance.len().saturating_sub(window);
        self.outputs.push_back(SessionOutput::PredictTurnEnd {
            turn: self.turn,
            pcm: self.utterance[start..].to_vec(),
        });
    }

    fn push_preroll(&mut self, frame: &Frame) {
        self.preroll.extend(frame.samples().iter().copied());
        let keep = self.config.preroll_ms as usize * SAMPLES_PER_MS + FRAME_SAMPLES;
        while self.preroll.len() > keep {
            self.preroll.pop_front();
        }
    }

    fn begin_utterance(&mut self, now: Duration, voiced_frames: u32) {
        // A caller who goes on speaking before the bot answered continues the same request:
        // its utterances stay in `request`, and the dialogue will be asked again with all of
        // them (the answer to the earlier question, if any comes, is for a superseded turn).
        self.asked = false;
        self.new_turn();
        let onset = now.saturating_sub(FRAME_DURATION * voiced_frames.saturating_sub(1));
        self.speech = Speech::Speaking {
            started: onset,
            last_voice: now,
        };
        self.utterance.clear();
        self.utterance.extend(self.preroll.drain(..));
        self.partial_at_samples = self.utterance.len();
        self.utterance_energy = 0.0;
        self.utterance_frames = 0;
        self.utterance_peak_rms = 0.0;
        self.no_input_at = None;
        self.emit(now, EventKind::SpeechStart { turn: self.turn });
    }

    fn maybe_partial(&mut self) {
        let interval = self.config.partial_interval_ms as usize * SAMPLES_PER_MS;
        if interval == 0
            || self.partial_in_flight
            || self.utterance.len() < self.partial_at_samples + interval
        {
            return;
        }
        self.partial_at_samples = self.utterance.len();
        self.partial_in_flight = true;
        let window = PARTIAL_WINDOW_MS * SAMPLES_PER_MS;
        let start = self.utterance.len().saturating_sub(window);
        self.outputs.push_back(SessionOutput::Recognize {
            turn: self.turn,
            pcm: self.utterance[start..].to_vec(),
            is_final: false,
            speculative: None,
            grammar: self.recognition_grammar(),
            language: self.language,
        });
    }

    /// The utterance as a final recognition hears it if it ends at `now`: up to
    /// [`KEEP_AFTER_VOICE_MS`] after the last voiced frame, the rest of the silence dropped.
    fn utterance_len_at(&self, last_voice: Duration, now: Duration) -> usize {
        let trailing_ms = now.saturating_sub(last_voice).as_millis() as usize;
        let cut = trailing_ms.saturating_sub(KEEP_AFTER_VOICE_MS) * SAMPLES_PER_MS;
        self.utterance.len().saturating_sub(cut)
    }

    /// Asks for the final recognition of the utterance as it would end now, before the turn is
    /// known to be over; the same audio the endpoint would send, so the same words.
    /// The grammar the current utterance is recognized with: the node's, and while the
    /// utterance has stopped the bot (its reply paused until the words are judged), what
    /// callers say over a bot ([`barge::said_over_the_bot`]) first, then the node's phrases, so
    /// that a backchannel or a stop word comes back spelled as one (a recognizer's prompt
    /// takes a list's first phrases). A node without a phrase list keeps its grammar.
    fn recognition_grammar(&self) -> Option<Grammar> {
        match (&self.expect, &self.paused) {
            (Some(Grammar::Phrases(node)), Some(_)) => {
                let mut phrases: Vec<String> = barge::said_over_the_bot(self.language)
                    .iter()
                    .map(|s| (*s).to_string())
                    .collect();
                for phrase in node {
                    if !phrases.iter().any(|p| p.eq_ignore_ascii_case(phrase)) {
                        phrases.push(phrase.clone());
                    }
                }
                Some(Grammar::Phrases(phrases))
            }
            _ => self.expect.clone(),
        }
    }

    fn speculate(&mut self, last_voice: Duration, now: Duration) {
        let len = self.utterance_len_at(last_voice, now);
        self.speculation = Some(Speculation {
            turn: self.turn,
            last_voice,
            heard: None,
            ended: false,
        });
        self.outputs.push_back(SessionOutput::Recognize {
            turn: self.turn,
            pcm: self.utterance[..len].to_vec(),
            is_final: true,
            speculative: Some(last_voice),
            grammar: self.recognition_grammar(),
            language: self.language,
        });
    }

    fn end_utterance(&mut self, last_voice: Duration, now: Duration, by: TurnEnd) {
        self.speech = Speech::Quiet { voiced: 0 };
        self.turn_asked_at = None;
        self.turn_unsure = false;
        self.turn_finished = false;
        let len = self.utterance_len_at(last_voice, now);
        self.utterance.truncate(len);
        self.clock = TurnClock {
            last_voice: Some(last_voice),
            endpoint: Some(now),
            ..TurnClock::default()
        };
        let level_dbfs = crate::audio::level_dbfs(&self.utterance);
        self.emit(
            now,
            EventKind::SpeechEnd {
                turn: self.turn,
                level_dbfs,
                by: Some(by),
            },
        );
        self.partial_in_flight = false;
        self.request.push(Heard {
            turn: self.turn,
            text: None,
            confidence: None,
        });
        let turn = self.turn;
        match self.speculation.as_mut() {
            Some(s) if s.turn == turn && s.last_voice == last_voice && !s.ended => {
                // The speculative final heard exactly this audio.
                self.utterance.clear();
                match s.heard.take() {
                    Some(heard) => {
                        self.speculation = None;
                        self.handle_transcript(turn, true, &heard, now);
                    }
                    None => s.ended = true,
                }
            }
            _ => {
                // A speculation about an earlier pause of this utterance (one the caller broke,
                // or the longest utterance cut it short) is void.
                if self.speculation.as_ref().is_some_and(|s| !s.ended) {
                    self.speculation = None;
                }
                self.outputs.push_back(SessionOutput::Recognize {
                    turn,
                    pcm: std::mem::take(&mut self.utterance),
                    is_final: true,
                    speculative: None,
                    grammar: self.recognition_grammar(),
                    language: self.language,
                });
            }
        }
    }

    fn take_loudness(&mut self) -> f32 {
        if self.utterance_frames == 0 {
            return 0.0;
        }
        let rms = (self.utterance_energy / f64::from(self.utterance_frames))
            .sqrt()
            .max(1.0);
        let db = (20.0 * rms.log10()) as f32;
        self.utterance_frames = 0;
        self.utterance_energy = 0.0;
        match self.baseline_db {
            None => {
                self.baseline_db = Some(db);
                0.0
            }
            Some(base) => {
                self.baseline_db = Some(0.7 * base + 0.3 * db);
                db - base
            }
        }
    }

    fn new_turn(&mut self) {
        self.turn = TurnId(self.turn.0 + 1);
        self.partial_in_flight = false;
    }

    // ---- bot side ----

    /// Counts the caller's voice over the bot toward a barge-in. The count leaks (a frame the
    /// echo gate or the VAD misses takes one off, it does not start again), so speech over
    /// loud bot audio, which the gate hides in places, still gets through.
    fn track_barge_in(&mut self, voiced: bool, now: Duration) {
        if !self.playout.started || self.playout.locked {
            self.barge_voiced = 0;
            return;
        }
        let into_prompt = now.saturating_sub(self.playout.started_at);
        if into_prompt < Duration::from_millis(self.config.barge_in_grace_ms) {
            self.barge_voiced = 0;
            return;
        }
        if !voiced {
            self.barge_voiced = self.barge_voiced.saturating_sub(1);
            return;
        }
        self.barge_voiced += 1;
        let frame_ms = FRAME_DURATION.as_millis() as u64;
        if u64::from(self.barge_voiced) * frame_ms
            >= self.config.barge_in_min_speech_ms.max(frame_ms)
        {
            self.barge_in(now);
        }
    }

    /// The caller spoke over the bot: its audio stops in this tick. With
    /// `barge_in_resume`, the reply is kept, paused, until the caller's words tell whether
    /// to drop it or go on with it.
    fn barge_in(&mut self, now: Duration) {
        self.record_cut(now, AudioEndReason::BargeIn);
        let mut playout = std::mem::take(&mut self.playout);
        self.barge_voiced = 0;
        if self.config.barge_in_resume {
            playout.pos = playout.piece_start();
            playout.started = false;
            self.paused = Some((playout, now));
        }
    }

    /// The barge-in was false: the paused reply goes on from the start of the piece it was
    /// cut in. No latency is reported for it (it answers nothing new).
    fn resume(&mut self, paused: Playout, reason: ResumeReason, now: Duration) {
        let Some(turn) = paused.turn else {
            return;
        };
        self.emit(now, EventKind::BotResumed { turn, reason });
        self.playout = paused;
        self.clock.reported = true;
        self.no_input_at = None;
    }

    /// A barge-in whose sound never became an utterance (shorter than `speech_start_ms`):
    /// once the caller has been quiet a moment with nothing left to recognize, the bot goes on.
    fn resume_after_lone_barge_in(&mut self, now: Duration) {
        let Some((_, at)) = &self.paused else {
            return;
        };
        let quiet = matches!(self.speech, Speech::Quiet { .. });
        if quiet
            && self.request.is_empty()
            && now.saturating_sub(*at) >= Duration::from_millis(LONE_BARGE_IN_MS)
        {
            if let Some((paused, _)) = self.paused.take() {
                self.resume(paused, ResumeReason::NoWords, now);
            }
        }
    }

    fn next_bot_frame(&mut self, now: Duration) -> Option<Frame> {
        let turn = self.playout.turn?;
        if self.playout.remaining() == 0 {
            if self.playout.complete {
                self.finish_playout(now);
            }
            return None;
        }
        if !self.playout.started {
            self.playout.started = true;
            self.playout.started_at = now;
            self.emit(now, EventKind::BotAudioStart { turn });
            self.report_latency(turn, now);
        }
        let start = self.playout.pos;
        let end = (start + FRAME_SAMPLES).min(self.playout.audio.len());
        let frame = Frame::from_slice(&self.playout.audio[start..end]);
        self.playout.pos = end;
        if self.playout.remaining() == 0 && self.playout.complete {
            self.finish_playout(now + FRAME_DURATION);
        }
        Some(frame)
    }

    fn report_latency(&mut self, turn: TurnId, now: Duration) {
        let c = self.clock;
        if c.reported {
            return;
        }
        let (Some(last_voice), Some(endpoint)) = (c.last_voice, c.endpoint) else {
            return; // greeting, DTMF or no-input turns have no caller speech to measure from
        };
        let transcript = c.transcript.unwrap_or(endpoint);
        let reply = c.reply.unwrap_or(transcript);
        let first_audio = c.first_audio.unwrap_or(now);
        let ms = |d: Duration| d.as_millis() as u64;
        self.clock.reported = true;
        self.emit(
            now,
            EventKind::TurnLatency {
                turn,
                endpoint_ms: ms(endpoint.saturating_sub(last_voice)),
                asr_ms: ms(transcript.saturating_sub(endpoint)),
                dialogue_ms: ms(reply.saturating_sub(transcript)),
                tts_ms: ms(first_audio.saturating_sub(reply)),
                total_ms: ms(now.saturating_sub(last_voice)),
            },
        );
    }

    fn finish_playout(&mut self, now: Duration) {
        let Some(turn) = self.playout.turn else {
            return;
        };
        let then = self.playout.then.take();
        if self.playout.started {
            self.emit(
                now,
                EventKind::BotAudioEnd {
                    turn,
                    reason: AudioEndReason::Done,
                },
            );
        }
        self.playout = Playout::default();
        match then {
            Some(action) => self.perform(action, now),
            None => self.arm_no_input(now),
        }
    }

    /// Stops the bot's audio now, dropping what is queued and what is still being made (and a
    /// reply paused by a barge-in).
    fn stop_bot(&mut self, now: Duration, reason: AudioEndReason) {
        self.record_cut(now, reason);
        self.playout = Playout::default();
        self.paused = None;
        self.barge_voiced = 0;
    }

    /// Records that the playing reply stopped for `reason`, and what the caller heard of it.
    fn record_cut(&mut self, now: Duration, reason: AudioEndReason) {
        let Some(turn) = self.playout.turn else {
            return;
        };
        if !self.playout.started {
            return;
        }
        self.emit(now, EventKind::BotAudioEnd { turn, reason });
        let text = self.playout.heard(self.language);
        let played_ms = (self.playout.pos / SAMPLES_PER_MS) as u64;
        self.emit(
            now,
            EventKind::BotHeard {
                turn,
                text,
                played_ms,
            },
        );
    }

    fn arm_no_input(&mut self, now: Duration) {
        if self.config.no_input_timeout_ms > 0 {
            self.no_input_at = Some(now + Duration::from_millis(self.config.no_input_timeout_ms));
        }
    }

    fn perform(&mut self, action: Action, now: Duration) {
        match action {
            Action::Transfer { target, reason } => {
                self.emit(
                    now,
                    EventKind::Transfer {
                        target: target.clone(),
                        reason: reason.clone(),
                    },
                );
                self.outputs.push_back(SessionOutput::Transfer {
                    target: target.clone(),
                    reason: reason.clone(),
                });
                let mode = self.transfer_mode(&target);
                if self.tracks_transfers || mode != TransferMode::Blind {
                    self.transferring = Some(PendingTransfer {
                        target,
                        reason,
                        mode,
                        since: now,
                        rang_at: None,
                        accepted_at: None,
                        agent: None,
                    });
                    self.no_input_at = None;
                } else {
                    self.finish(EndReason::Transfer, now);
                }
            }
            Action::Hangup { reason } => self.finish(EndReason::from_code(&reason), now),
        }
    }

    fn finish(&mut self, reason: EndReason, now: Duration) {
        self.emit(
            now,
            EventKind::Hangup {
                reason: reason.clone(),
            },
        );
        self.outputs.push_back(SessionOutput::Hangup { reason });
        self.ended = true;
        self.no_input_at = None;
    }

    fn emit(&mut self, now: Duration, kind: EventKind) {
        self.outputs.push_back(SessionOutput::Event(CallEvent {
            t_ms: now.as_millis() as u64,
            kind,
        }));
    }
}

#[cfg(test)]
mod transfer_tests {
    use super::*;

    fn drain(s: &mut CallSession) -> Vec<SessionOutput> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    fn kinds(outputs: &[SessionOutput]) -> Vec<&'static str> {
        outputs
            .iter()
            .filter_map(|o| match o {
                SessionOutput::Event(e) => Some(e.kind.type_name()),
                _ => None,
            })
            .collect()
    }

    /// A session for a call on `transport` that has started.
    fn started(transport: &str) -> CallSession {
        let mut s = CallSession::new(SessionConfig::default(), Language::En);
        s.start(
            EventKind::CallStart {
                call_id: None,
                transport: Some(transport.into()),
                from: None,
                to: None,
                codec: None,
                language: None,
                flow: None,
                started_unix_ms: None,
            },
            Duration::ZERO,
        );
        s
    }

    /// A session that has asked for a transfer (without a prompt first).
    fn transferring(tracked: bool) -> (CallSession, Vec<SessionOutput>) {
        let mut s = started("sip-udp");
        s.track_transfers(tracked);
        drain(&mut s);
        let bot = BotTurn {
            action: Some(Action::Transfer {
                target: "agent".into(),
                reason: "caller.asked_for_agent".into(),
            }),
            ..BotTurn::default()
        };
        s.handle_bot_turn(TurnId(0), bot, Duration::from_millis(100));
        let out = drain(&mut s);
        (s, out)
    }

    #[test]
    fn an_untracked_transfer_ends_the_call() {
        let (s, out) = transferring(false);
        assert_eq!(kinds(&out), vec!["transfer", "hangup"]);
        assert!(s.is_ended());
    }

    #[test]
    fn a_tracked_transfer_waits_then_a_failure_brings_the_bot_back() {
        let (mut s, out) = transferring(true);
        assert_eq!(kinds(&out), vec!["transfer"]);
        assert!(out
            .iter()
            .any(|o| matches!(o, SessionOutput::Transfer { target, .. } if target == "agent")));
        assert!(!s.is_ended(), "the call waits for the outcome");
        // While the PBX works on it, the session is silent and ignores keys.
        let tone: Vec<i16> = (0..FRAME_SAMPLES)
            .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
            .collect();
        assert!(s
            .handle_audio(&Frame::from_slice(&tone), Duration::from_millis(120))
            .is_none());
        s.handle_dtmf('0', Duration::from_millis(140));
        assert!(drain(&mut s).is_empty());
        s.handle_transfer_failed("transfer.refused.603", Duration::from_millis(500));
        let out = drain(&mut s);
        assert_eq!(
            kinds(&out),
            vec!["transfer_result", "transfer_failed", "bot_reply"]
        );
        assert!(matches!(
            &out[0],
            SessionOutput::Event(CallEvent {
                kind: EventKind::TransferResult {
                    mode: TransferMode::Blind,
                    outcome: TransferOutcome::Rejected,
                    wait_ms: 400,
                    ..
                },
                ..
            })
        ));
        let SessionOutput::Event(CallEvent {
            kind: EventKind::TransferFailed { target, reason },
            ..
        }) = &out[1]
        else {
            panic!("{out:?}")
        };
        assert_eq!(
            (target.as_str(), reason.as_str()),
            ("agent", "transfer.refused.603")
        );
        let Some(SessionOutput::Speak { turn, prompts, .. }) = out.last() else {
            panic!("the bot speaks its apology: {out:?}")
        };
        assert!(prompts[0].text.contains("couldn't reach an agent"));
        // The apology plays, then the conversation goes on: keys reach the dialogue again.
        let turn = *turn;
        s.handle_bot_audio(
            turn,
            &vec![1000; FRAME_SAMPLES * 3],
            "Sorry.",
            true,
            Duration::from_millis(520),
        );
        let mut played = 0;
        for i in 0..5 {
            let now = Duration::from_millis(540 + 20 * i);
            if s.handle_audio(&Frame::silence(), now).is_some() {
                played += 1;
            }
        }
        assert_eq!(played, 3);
        drain(&mut s);
        s.handle_dtmf('1', Duration::from_millis(700));
        assert!(drain(&mut s).iter().any(|o| matches!(
            o,
            SessionOutput::Converse {
                input: CallerInput::Dtmf { digit: '1' },
                ..
            }
        )));
        // A second failure report without a pending transfer changes nothing.
        s.handle_transfer_failed("transfer.timeout", Duration::from_millis(720));
        assert!(kinds(&drain(&mut s)).is_empty());
        assert!(!s.is_ended());
    }

    #[test]
    fn a_tracked_transfer_that_happens_ends_with_the_hangup() {
        let (mut s, _) = transferring(true);
        s.handle_hangup(EndReason::TransferDone, Duration::from_millis(900));
        let out = drain(&mut s);
        assert!(out.iter().any(|o| matches!(o, SessionOutput::Event(CallEvent { kind: EventKind::Hangup { reason }, .. }) if reason == "transfer.done")));
        assert!(out.iter().any(|o| matches!(
            o,
            SessionOutput::Event(CallEvent {
                kind: EventKind::TransferResult {
                    outcome: TransferOutcome::Answered,
                    ..
                },
                ..
            })
        )));
        assert!(s.is_ended());
    }

    /// A queue transfer waits on any transport: announcements play, the caller is not heard;
    /// once the agent's audio flows the caller is bridged; the agent's hang-up ends the call.
    #[test]
    fn a_queue_transfer_announces_rings_and_bridges_then_the_agent_hangs_up() {
        let mut s = started("webrtc");
        drain(&mut s);
        let bot = BotTurn {
            action: Some(Action::Transfer {
                target: "queue:support".into(),
                reason: "caller.request".into(),
            }),
            ..BotTurn::default()
        };
        s.handle_bot_turn(TurnId(0), bot, Duration::from_millis(100));
        assert_eq!(kinds(&drain(&mut s)), vec!["transfer"]);
        assert!(
            s.is_transferring() && !s.is_ended(),
            "an untracked transport waits too"
        );
        s.announce("You are number 1 in the queue.", Duration::from_millis(200));
        let out = drain(&mut s);
        let Some(SessionOutput::Speak { turn, .. }) = out.last() else {
            panic!("the announcement is spoken: {out:?}")
        };
        s.handle_bot_audio(
            *turn,
            &vec![900; FRAME_SAMPLES * 2],
            "You are number 1.",
            true,
            Duration::from_millis(250),
        );
        let loud = vec![8000i16; FRAME_SAMPLES];
        let played = (0..4)
            .filter(|i| {
                s.handle_audio(
                    &Frame::from_slice(&loud),
                    Duration::from_millis(260 + 20 * i),
                )
                .is_some()
            })
            .count();
        assert_eq!(
            played, 2,
            "the announcement plays over a caller who is not heard"
        );
        assert!(!kinds(&drain(&mut s)).contains(&"speech_start"));
        s.handle_transfer_ringing("ann", Duration::from_millis(1_100));
        s.handle_transfer_accepted("ann", false, Duration::from_millis(3_100));
        s.announce(
            "You are number 1 in the queue.",
            Duration::from_millis(3_200),
        );
        assert!(
            !kinds(&drain(&mut s)).contains(&"bot_reply"),
            "no announcement once accepted"
        );
        s.handle_transfer_answered(Duration::from_millis(3_400));
        let out = drain(&mut s);
        let result = out.iter().find_map(|o| match o {
            SessionOutput::Event(CallEvent {
                kind:
                    EventKind::TransferResult {
                        mode,
                        outcome,
                        agent,
                        wait_ms,
                        ring_ms,
                        bridge_ms,
                        ..
                    },
                ..
            }) => Some((
                *mode,
                *outcome,
                agent.clone(),
                *wait_ms,
                *ring_ms,
                *bridge_ms,
            )),
            _ => None,
        });
        assert_eq!(
            result,
            Some((
                TransferMode::Bridged,
                TransferOutcome::Answered,
                Some("ann".into()),
                3_300,
                Some(1_000),
                Some(300)
            ))
        );
        assert!(s.is_bridged() && !s.is_transferring());
        s.handle_agent_hangup(Duration::from_millis(9_000));
        let out = drain(&mut s);
        assert!(out.iter().any(|o| matches!(o, SessionOutput::Event(CallEvent { kind: EventKind::Hangup { reason }, .. }) if reason == "agent.hangup")));
        assert!(s.is_ended());
    }

    /// An agent hands the caller on: the caller waits again for the new target; a queue that
    /// overflows records its attempt and goes on to the next target.
    #[test]
    fn an_agent_hands_the_caller_on_and_an_overflow_is_a_new_attempt() {
        let mut s = started("sip-udp");
        let bot = BotTurn {
            action: Some(Action::Transfer {
                target: "queue:support".into(),
                reason: "caller.request".into(),
            }),
            ..BotTurn::default()
        };
        s.handle_bot_turn(TurnId(0), bot, Duration::from_millis(100));
        s.handle_transfer_accepted("ann", false, Duration::from_millis(1_000));
        s.handle_transfer_answered(Duration::from_millis(1_200));
        drain(&mut s);
        s.handle_agent_transfer("queue:billing", Duration::from_millis(5_000));
        let out = drain(&mut s);
        assert!(out.iter().any(|o| matches!(o, SessionOutput::Transfer { target, reason } if target == "queue:billing" && reason == "agent.transfer")), "{out:?}");
        assert!(
            !s.is_bridged() && s.is_transferring(),
            "the caller waits again"
        );
        s.redirect_transfer("no_answer", "sip:desk@pbx", Duration::from_millis(9_000));
        let out = drain(&mut s);
        assert!(out.iter().any(|o| matches!(
            o,
            SessionOutput::Event(CallEvent {
                kind: EventKind::TransferResult { target, outcome: TransferOutcome::NoAnswer, wait_ms: 4_000, .. },
                ..
            }) if target == "queue:billing"
        )), "{out:?}");
        assert_eq!(
            s.pending_transfer(),
            Some((
                "sip:desk@pbx".into(),
                "agent.transfer".into(),
                TransferMode::Bridged
            ))
        );
    }
}
