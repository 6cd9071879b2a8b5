//! Call events: the single record of what happened in a call.
//!
//! Every event serializes as one JSON object with `t_ms` (call time, from the call's start) and
//! `type`. `events.jsonl`, the live event stream, transcripts, analytics and tests all read these.
//! Existing types keep their meaning; new ones may be added.

use serde::{Deserialize, Serialize};

pub use super::reason::{
    AudioEndReason, EndReason, ErrorCode, ErrorKind, ResumeReason, TransferMode, TransferOutcome,
    TurnEnd,
};

/// Identifies one caller turn within a call. A new caller utterance, a DTMF key or a barge-in
/// starts a new turn; results tagged with an older turn are stale and dropped.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct TurnId(pub u32);

/// One event with its call time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    /// Milliseconds since the call started.
    pub t_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. Serialized with `type` in snake_case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The call began. Transports fill in what they know.
    CallStart {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transport: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        codec: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
        /// The flow that answers the call (`basic` for the basic dialogue).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flow: Option<String>,
        /// The wall-clock time the call started, Unix milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started_unix_ms: Option<u64>,
    },
    /// The caller started speaking.
    SpeechStart { turn: TurnId },
    /// The caller stopped speaking (the endpoint was reached). `level_dbfs`: how loud the
    /// utterance was (RMS, dB below full scale), for the turn's sentiment; `by`: what decided
    /// the turn was over.
    SpeechEnd {
        turn: TurnId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        level_dbfs: Option<f32>,
        /// What ended the turn (records from before it was kept have none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<TurnEnd>,
    },
    /// What the recognizer heard.
    Transcript {
        turn: TurnId,
        text: String,
        #[serde(rename = "final")]
        is_final: bool,
        /// The answer the dialogue waited for is personal data (a `sensitive` slot): the
        /// record keeps `[sensitive]` instead of the words.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sensitive: bool,
    },
    /// The intent the dialogue matched.
    Intent {
        turn: TurnId,
        name: String,
        confidence: f32,
    },
    /// A slot the dialogue filled. A `sensitive` one (the flow says so) is never stored as it
    /// is: the record keeps `[sensitive]` (see `privacy`).
    Slot {
        turn: TurnId,
        name: String,
        value: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sensitive: bool,
    },
    /// What the bot says.
    BotReply { turn: TurnId, text: String },
    /// The bot's audio began to play to the caller.
    BotAudioStart { turn: TurnId },
    /// The bot's audio stopped: `done`, `barge_in`, `dtmf`, `superseded` or `hangup`.
    BotAudioEnd {
        turn: TurnId,
        reason: AudioEndReason,
    },
    /// What the caller heard of a reply that was cut (after `bot_audio_end` with any reason
    /// but `done`): the words up to the cut, worked out from the audio actually sent, and how
    /// much of it played.
    BotHeard {
        turn: TurnId,
        text: String,
        played_ms: u64,
    },
    /// The bot went on with a reply the caller had cut, from the start of the sentence it was
    /// cut in: the barge-in was false (`reason`: `backchannel` or `no_words`).
    BotResumed { turn: TurnId, reason: ResumeReason },
    /// A DTMF key from the caller.
    Dtmf {
        digit: String,
        /// Keyed into a `sensitive` slot: the record keeps `*` instead of the key.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sensitive: bool,
    },
    /// The call is handed to a human.
    Transfer { target: String, reason: String },
    /// The hand-over failed (refused, busy, no answer); the call stays with the bot. `reason` is
    /// a stable code such as `transfer.refused.603` or `transfer.failed.486`.
    TransferFailed { target: String, reason: String },
    /// What the human agent on the call said (recognised from their leg, for the two-sided
    /// transcript while the caller talks with a person).
    AgentTranscript { agent: String, text: String },
    /// A supervisor on the call (`who`): `action` is `listen`, `whisper`, `barge` (joined, or
    /// switched to it) or `left`.
    Supervisor { who: String, action: String },
    /// A bridged transfer rings a human (`agent`): the caller waits with hold audio.
    TransferRinging { target: String, agent: String },
    /// How a transfer ended, with its timings from the decision (`transfer`): `mode` is
    /// `blind`, `bridged` or `warm`; `outcome` is `answered`, `busy`, `no_answer`,
    /// `rejected`, `failed` or `caller_hangup`. `ring_ms` is when the first agent rang;
    /// `bridge_ms` the time from the agent's answer to the audio bridged.
    TransferResult {
        target: String,
        mode: TransferMode,
        outcome: TransferOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        wait_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ring_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bridge_ms: Option<u64>,
    },
    /// The end-of-turn model's judgement of a pause in the caller's speech: `complete` ends
    /// the turn at once; otherwise the session waits longer for the caller to go on.
    TurnPrediction {
        turn: TurnId,
        probability: f32,
        complete: bool,
    },
    /// The latency breakdown of one bot turn, measured on the call clock.
    TurnLatency {
        turn: TurnId,
        /// From the caller's last voiced frame to the endpoint decision.
        endpoint_ms: u64,
        /// From the endpoint to the final transcript.
        asr_ms: u64,
        /// From the final transcript to the dialogue's reply.
        dialogue_ms: u64,
        /// From the reply to the first synthesized audio.
        tts_ms: u64,
        /// From the caller's last voiced frame to the first bot audio sent to the caller.
        total_ms: u64,
    },
    /// Something the bot could not answer, for the knowledge base to learn from.
    KnowledgeGap { turn: TurnId, text: String },
    /// A recoverable error in an engine; the call goes on.
    Error { code: ErrorCode, message: String },
    /// The call ended.
    Hangup { reason: EndReason },
    /// The record's last line, after `hangup`, from transports that count media packets (phone
    /// calls): the whole call's counters. Not written when media never started.
    CallEnd { media: CallMedia },
    /// The web phone's connection to the browser (the page's live events, not the record):
    /// `connected` with the time from the offer to media, or `disconnected` (it may recover).
    PeerState {
        state: PeerState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connect_ms: Option<u64>,
    },
    /// The web phone's end marker on the page's live events, after the record's last line:
    /// nothing follows it.
    CallEnded { reason: String },
}

/// A WebRTC connection's state, as the page sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// ICE and DTLS are up: media flows.
    Connected,
    /// Consent checks stopped getting answers; it may recover.
    Disconnected,
}

/// A call's media counters, as the transport saw them (the `media` of `call_end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CallMedia {
    /// RTP packets received from the caller.
    pub packets_in: u64,
    /// RTP packets sent to the caller.
    pub packets_out: u64,
    /// Caller packets that never arrived (from their sequence numbers).
    pub lost: u64,
    /// Caller packets that arrived after their playout time and were dropped.
    pub late: u64,
    /// 20 ms frames filled by concealment because nothing was there to play.
    pub concealed_frames: u64,
    /// Of those, frames concealed while the caller's audio due was late (the line's jitter,
    /// or a pause of the sender). Records written before it was counted read 0.
    #[serde(default)]
    pub underruns: u64,
    /// RTCP packets received from the caller.
    pub rtcp_in: u64,
}

impl EventKind {
    /// The `type` string of this event.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::CallStart { .. } => "call_start",
            EventKind::SpeechStart { .. } => "speech_start",
            EventKind::SpeechEnd { .. } => "speech_end",
            EventKind::Transcript { .. } => "transcript",
            EventKind::Intent { .. } => "intent",
            EventKind::Slot { .. } => "slot",
            EventKind::BotReply { .. } => "bot_reply",
            EventKind::BotAudioStart { .. } => "bot_audio_start",
            EventKind::BotAudioEnd { .. } => "bot_audio_end",
            EventKind::BotHeard { .. } => "bot_heard",
            EventKind::BotResumed { .. } => "bot_resumed",
            EventKind::Dtmf { .. } => "dtmf",
            EventKind::Transfer { .. } => "transfer",
            EventKind::TransferFailed { .. } => "transfer_failed",
            EventKind::TransferRinging { .. } => "transfer_ringing",
            EventKind::Supervisor { .. } => "supervisor",
            EventKind::AgentTranscript { .. } => "agent_transcript",
            EventKind::TransferResult { .. } => "transfer_result",
            EventKind::TurnPrediction { .. } => "turn_prediction",
            EventKind::TurnLatency { .. } => "turn_latency",
            EventKind::KnowledgeGap { .. } => "knowledge_gap",
            EventKind::Error { .. } => "error",
            EventKind::Hangup { .. } => "hangup",
            EventKind::CallEnd { .. } => "call_end",
            EventKind::PeerState { .. } => "peer_state",
            EventKind::CallEnded { .. } => "call_ended",
        }
    }
}
