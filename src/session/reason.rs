//! Typed reasons: why a call ended, why the bot's audio stopped, and what kind of engine error
//! happened. Each has a stable string code, which is what records, live events and dashboards
//! carry (`hangup.reason`, `bot_audio_end.reason`, `error.code`); the codes never change meaning.
//!
//! Invariants: `code()` and `from_code()` round-trip for every variant; an end reason that
//! hotline does not know (a flow's own `hangup = "..."`, a transport's code) is kept verbatim as
//! [`EndReason::Other`], never mapped onto a known one.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a call ended (`hangup.reason`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The caller hung up (`caller.hangup`).
    CallerHangup,
    /// The transport's channel to the call closed without a hangup (`transport.closed`).
    TransportClosed,
    /// The call was handed over and the transport does not report outcomes (`transfer`).
    Transfer,
    /// A tracked transfer happened: the call is with the human now (`transfer.done`).
    TransferDone,
    /// The server shut down; the caller heard a goodbye if there was time (`server.shutdown`).
    ServerShutdown,
    /// No caller audio arrived for `sip.rtp_timeout_ms` (`rtp.timeout`).
    RtpTimeout,
    /// WebRTC connectivity failed (`webrtc.ice_failed`).
    IceFailed,
    /// The browser closed the peer connection (`webrtc.closed`).
    WebrtcClosed,
    /// The browser never connected media (`webrtc.connect_timeout`).
    ConnectTimeout,
    /// The caller said nothing, too many times (`no_input.max`).
    NoInputMax,
    /// The bot did not understand, too many times (`no_match.max`).
    NoMatchMax,
    /// The server stopped without closing the call (killed, crashed, power lost); written when
    /// the next start recovers the record (`server.crash`).
    ServerCrash,
    /// The human agent the caller was bridged to hung up (`agent.hangup`).
    AgentHangup,
    /// Any other code: a flow's own `hangup = "..."` reason, or a transport's (`sip.bye`, ...).
    Other(String),
}

impl EndReason {
    /// The stable code.
    pub fn code(&self) -> &str {
        match self {
            EndReason::CallerHangup => "caller.hangup",
            EndReason::TransportClosed => "transport.closed",
            EndReason::Transfer => "transfer",
            EndReason::TransferDone => "transfer.done",
            EndReason::ServerShutdown => "server.shutdown",
            EndReason::RtpTimeout => "rtp.timeout",
            EndReason::IceFailed => "webrtc.ice_failed",
            EndReason::WebrtcClosed => "webrtc.closed",
            EndReason::ConnectTimeout => "webrtc.connect_timeout",
            EndReason::NoInputMax => "no_input.max",
            EndReason::NoMatchMax => "no_match.max",
            EndReason::ServerCrash => "server.crash",
            EndReason::AgentHangup => "agent.hangup",
            EndReason::Other(code) => code,
        }
    }

    /// The reason a code names; unknown codes are kept as [`EndReason::Other`].
    pub fn from_code(code: &str) -> Self {
        match code {
            "caller.hangup" => EndReason::CallerHangup,
            "transport.closed" => EndReason::TransportClosed,
            "transfer" => EndReason::Transfer,
            "transfer.done" => EndReason::TransferDone,
            "server.shutdown" => EndReason::ServerShutdown,
            "rtp.timeout" => EndReason::RtpTimeout,
            "webrtc.ice_failed" => EndReason::IceFailed,
            "webrtc.closed" => EndReason::WebrtcClosed,
            "webrtc.connect_timeout" => EndReason::ConnectTimeout,
            "no_input.max" => EndReason::NoInputMax,
            "no_match.max" => EndReason::NoMatchMax,
            "server.crash" => EndReason::ServerCrash,
            "agent.hangup" => EndReason::AgentHangup,
            other => EndReason::Other(other.to_string()),
        }
    }
}

impl PartialEq<str> for EndReason {
    fn eq(&self, code: &str) -> bool {
        self.code() == code
    }
}

impl PartialEq<&str> for EndReason {
    fn eq(&self, code: &&str) -> bool {
        self.code() == *code
    }
}

impl PartialEq<str> for AudioEndReason {
    fn eq(&self, code: &str) -> bool {
        self.code() == code
    }
}

impl PartialEq<&str> for AudioEndReason {
    fn eq(&self, code: &&str) -> bool {
        self.code() == *code
    }
}

impl From<&str> for EndReason {
    fn from(code: &str) -> Self {
        EndReason::from_code(code)
    }
}

impl From<String> for EndReason {
    fn from(code: String) -> Self {
        EndReason::from_code(&code)
    }
}

/// How a transfer to a human ended (`transfer_result.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferOutcome {
    /// A human took the call.
    Answered,
    /// Nobody who could take it was there (no agent signed in; SIP 486/600).
    Busy,
    /// Nobody answered in time (the queue's longest wait; SIP 408/480).
    NoAnswer,
    /// The agents it rang declined it (SIP 603 and other refusals).
    Rejected,
    /// The hand-over broke (the agent's media never connected, a SIP error).
    Failed,
    /// The caller hung up first.
    CallerHangup,
}

impl TransferOutcome {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            TransferOutcome::Answered => "answered",
            TransferOutcome::Busy => "busy",
            TransferOutcome::NoAnswer => "no_answer",
            TransferOutcome::Rejected => "rejected",
            TransferOutcome::Failed => "failed",
            TransferOutcome::CallerHangup => "caller_hangup",
        }
    }

    /// The outcome a transfer failure's reason code stands for: the ACD's own codes, and the
    /// phone line's `transfer.failed.<status>` / `transfer.refused.<status>`.
    pub fn from_failure(reason: &str) -> Self {
        if let Some(own) = [
            TransferOutcome::Busy,
            TransferOutcome::NoAnswer,
            TransferOutcome::Rejected,
            TransferOutcome::CallerHangup,
        ]
        .into_iter()
        .find(|o| o.code() == reason)
        {
            return own;
        }
        let status = reason.rsplit('.').next().unwrap_or("");
        match status {
            "486" | "600" => TransferOutcome::Busy,
            "408" | "480" | "487" => TransferOutcome::NoAnswer,
            "603" | "403" => TransferOutcome::Rejected,
            _ if reason.starts_with("transfer.refused") => TransferOutcome::Rejected,
            _ => TransferOutcome::Failed,
        }
    }
}

/// How a call is handed to a human (`transfer_result.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    /// The caller's line is sent elsewhere (SIP REFER); hotline leaves the call.
    Blind,
    /// hotline rings the human and bridges the audio; the call stays on hotline.
    Bridged,
    /// Bridged, after the human heard a summary the caller did not.
    Warm,
}

impl TransferMode {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            TransferMode::Blind => "blind",
            TransferMode::Bridged => "bridged",
            TransferMode::Warm => "warm",
        }
    }
}

/// What ended the caller's turn (`speech_end.by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnEnd {
    /// The fixed silence, or the longest wait (`silence`).
    Silence,
    /// The speculative final read as a finished sentence (`words`, see `turn::words`).
    Words,
    /// The learned end-of-turn model judged the turn complete (`model`).
    Model,
    /// The turn reached `max_utterance_ms` (`max_length`).
    MaxLength,
}

impl TurnEnd {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            TurnEnd::Silence => "silence",
            TurnEnd::Words => "words",
            TurnEnd::Model => "model",
            TurnEnd::MaxLength => "max_length",
        }
    }
}

/// Why the bot's audio stopped (`bot_audio_end.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioEndReason {
    /// The reply played to its end (`done`).
    Done,
    /// The caller spoke over the bot (`barge_in`).
    BargeIn,
    /// The caller pressed a key (`dtmf`).
    Dtmf,
    /// A newer reply replaced it (`superseded`).
    Superseded,
    /// The call ended while it played (`hangup`).
    Hangup,
}

impl AudioEndReason {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            AudioEndReason::Done => "done",
            AudioEndReason::BargeIn => "barge_in",
            AudioEndReason::Dtmf => "dtmf",
            AudioEndReason::Superseded => "superseded",
            AudioEndReason::Hangup => "hangup",
        }
    }

    /// Whether the caller interrupted the bot (by voice or by key).
    pub fn is_interruption(self) -> bool {
        matches!(self, AudioEndReason::BargeIn | AudioEndReason::Dtmf)
    }
}

/// Why the bot went on with a reply the caller had cut (`bot_resumed.reason`): the barge-in
/// was false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeReason {
    /// The caller only acknowledged ("uh-huh", "ok", "嗯"): `backchannel`.
    Backchannel,
    /// The sound brought no words (a cough, a noise): `no_words`.
    NoWords,
    /// A few words, heard with low confidence, that hold no stop word and nothing the bot was
    /// waiting for: most likely a backchannel misheard over the bot's echo (`unclear`).
    Unclear,
}

impl ResumeReason {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            ResumeReason::Backchannel => "backchannel",
            ResumeReason::NoWords => "no_words",
            ResumeReason::Unclear => "unclear",
        }
    }
}

/// Which engine an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    Asr,
    Dialogue,
    Tts,
    Flow,
    Turn,
}

/// A recoverable engine error (`error.code`); the call goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The recognizer failed on an utterance (`asr.failed`).
    #[serde(rename = "asr.failed")]
    AsrFailed,
    /// The dialogue engine failed on a turn (`dialogue.failed`).
    #[serde(rename = "dialogue.failed")]
    DialogueFailed,
    /// Synthesis or a recorded prompt failed (`tts.failed`).
    #[serde(rename = "tts.failed")]
    TtsFailed,
    /// A changed flow file did not load; the previous version stays (`flow.reload`).
    #[serde(rename = "flow.reload")]
    FlowReload,
    /// The end-of-turn model failed on a pause; the turn waits the longest silence
    /// (`turn.failed`).
    #[serde(rename = "turn.failed")]
    TurnFailed,
}

impl ErrorCode {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            ErrorCode::AsrFailed => "asr.failed",
            ErrorCode::DialogueFailed => "dialogue.failed",
            ErrorCode::TtsFailed => "tts.failed",
            ErrorCode::FlowReload => "flow.reload",
            ErrorCode::TurnFailed => "turn.failed",
        }
    }

    /// The engine it came from.
    pub fn kind(self) -> ErrorKind {
        match self {
            ErrorCode::AsrFailed => ErrorKind::Asr,
            ErrorCode::DialogueFailed => ErrorKind::Dialogue,
            ErrorCode::TtsFailed => ErrorKind::Tts,
            ErrorCode::FlowReload => ErrorKind::Flow,
            ErrorCode::TurnFailed => ErrorKind::Turn,
        }
    }
}

macro_rules! display_code {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }
    )*};
}
display_code!(EndReason, AudioEndReason, ErrorCode, ResumeReason);

impl Serialize for EndReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for EndReason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Ok(EndReason::from_code(&code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for reason in [
            EndReason::CallerHangup,
            EndReason::TransportClosed,
            EndReason::Transfer,
            EndReason::TransferDone,
            EndReason::ServerShutdown,
            EndReason::RtpTimeout,
            EndReason::IceFailed,
            EndReason::WebrtcClosed,
            EndReason::ConnectTimeout,
            EndReason::NoInputMax,
            EndReason::NoMatchMax,
            EndReason::AgentHangup,
            EndReason::Other("sip.bye".into()),
        ] {
            assert_eq!(EndReason::from_code(reason.code()), reason);
            let json = serde_json::to_string(&reason).expect("serializes");
            assert_eq!(json, format!("\"{}\"", reason.code()));
        }
        for reason in [
            AudioEndReason::Done,
            AudioEndReason::BargeIn,
            AudioEndReason::Dtmf,
            AudioEndReason::Superseded,
            AudioEndReason::Hangup,
        ] {
            let json = serde_json::to_string(&reason).expect("serializes");
            assert_eq!(json, format!("\"{}\"", reason.code()));
        }
        for code in [
            ErrorCode::AsrFailed,
            ErrorCode::DialogueFailed,
            ErrorCode::TtsFailed,
            ErrorCode::FlowReload,
            ErrorCode::TurnFailed,
        ] {
            let json = serde_json::to_string(&code).expect("serializes");
            assert_eq!(json, format!("\"{}\"", code.code()));
        }
    }
}
