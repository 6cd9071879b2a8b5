//! What a finished call's events add up to: its [`CallSummary`] (outcome, turns, intents,
//! slots, latencies, knowledge gaps, sentiment) and its automatic quality check ([`qa`]).
//!
//! Sans-IO and pure: the input is the call's events as stored (already redacted), the output
//! is plain data that [`crate::store`] keeps and analytics count. The same function reads a
//! call that just ended and a record imported after a crash, so both are stored alike.

pub mod calendar;
pub mod gaps;
pub mod qa;
pub mod sentiment;

use serde::Serialize;

use crate::session::{AudioEndReason, CallEvent, EventKind, TurnId};

/// End reasons of calls that never connected.
const NEVER_CONNECTED: [&str; 3] = [
    "sip.no_ack",
    "sip.half_open_evicted",
    "webrtc.connect_timeout",
];

/// How a call ended, as analytics count it. Stable codes ([`Outcome::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The bot handled the call to its end: no transfer, no give-up.
    Contained,
    /// The call was handed to a human (a transfer that did not fail).
    Transferred,
    /// The caller left before saying or pressing anything.
    Abandoned,
    /// The bot gave up (no match or no input too often) or a transfer failed and the call ended.
    Unresolved,
    /// The server ended it: a crash, a shutdown, a record that could not be written.
    Failed,
}

impl Outcome {
    /// The stable code stored and filtered on.
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Contained => "contained",
            Outcome::Transferred => "transferred",
            Outcome::Abandoned => "abandoned",
            Outcome::Unresolved => "unresolved",
            Outcome::Failed => "failed",
        }
    }

    /// Every outcome, in the order analytics list them.
    pub const ALL: [Outcome; 5] = [
        Outcome::Contained,
        Outcome::Transferred,
        Outcome::Abandoned,
        Outcome::Unresolved,
        Outcome::Failed,
    ];
}

/// One caller turn: what they said (final, as stored) and how it went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnSummary {
    pub turn: u32,
    pub t_ms: u64,
    pub text: String,
    /// The intent the NLU named, if any (`None`: a no-match, unless a slot was filled).
    pub intent: Option<String>,
    pub confidence: Option<f32>,
    /// The caller's last voiced frame to the bot's first audio (`turn_latency` `total_ms`).
    pub latency_ms: Option<u64>,
    /// -1 (angry) to 1 (pleased), from the words and the speaking rate ([`sentiment`]).
    pub sentiment: f32,
    /// Whether the caller spoke over the bot's reply in this turn.
    pub barged_in: bool,
}

/// Everything analytics and the call list need from one call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallSummary {
    pub transport: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub language: Option<String>,
    pub flow: Option<String>,
    /// When the call started, Unix milliseconds (`call_start`'s, when it has one).
    pub started_unix_ms: Option<u64>,
    pub duration_ms: u64,
    pub end_reason: String,
    pub outcome: Outcome,
    pub turns: Vec<TurnSummary>,
    /// Slots as stored (a `sensitive` one is already masked).
    pub slots: Vec<(String, String)>,
    /// Each transfer: target, reason, and whether it failed.
    pub transfers: Vec<(String, String, bool)>,
    /// Questions the knowledge base could not answer: (time, text).
    pub gaps: Vec<(u64, String)>,
    pub barge_ins: u32,
    /// Turns answered from the knowledge base (the `faq` intent).
    pub kb_answers: u32,
    /// The post-call survey's score (1 to 5): a flow's `csat` slot, filled by a key or a word.
    pub csat: Option<u8>,
}

impl CallSummary {
    /// The summary of a call from its events, in the order they happened.
    pub fn of(events: &[CallEvent]) -> Self {
        let mut s = CallSummary {
            transport: None,
            from: None,
            to: None,
            language: None,
            flow: None,
            started_unix_ms: None,
            duration_ms: events.iter().map(|e| e.t_ms).max().unwrap_or(0),
            end_reason: String::new(),
            outcome: Outcome::Contained,
            turns: Vec::new(),
            slots: Vec::new(),
            transfers: Vec::new(),
            gaps: Vec::new(),
            barge_ins: 0,
            kb_answers: 0,
            csat: None,
        };
        let mut speech_start: Option<(TurnId, u64)> = None;
        let mut speech: std::collections::BTreeMap<u32, u64> = Default::default();
        let mut levels: std::collections::BTreeMap<u32, f32> = Default::default();
        let mut caller_acted = false;
        // The bot turns whose reply the caller cut.
        let mut cut_replies: Vec<u32> = Vec::new();
        for e in events {
            match &e.kind {
                EventKind::CallStart {
                    transport,
                    from,
                    to,
                    language,
                    flow,
                    started_unix_ms,
                    ..
                } => {
                    s.transport = transport.clone();
                    s.from = from.clone();
                    s.to = to.clone();
                    s.language = language.clone();
                    s.flow = flow.clone();
                    s.started_unix_ms = *started_unix_ms;
                }
                EventKind::SpeechStart { turn } => speech_start = Some((*turn, e.t_ms)),
                EventKind::SpeechEnd {
                    turn, level_dbfs, ..
                } => {
                    if let Some(level) = level_dbfs {
                        levels.insert(turn.0, *level);
                    }
                    if let Some((t, at)) = speech_start.take() {
                        if t == *turn {
                            *speech.entry(turn.0).or_default() += e.t_ms.saturating_sub(at);
                        }
                    }
                }
                EventKind::Transcript {
                    turn,
                    text,
                    is_final: true,
                    ..
                } if !text.trim().is_empty() => {
                    caller_acted = true;
                    s.turns.push(TurnSummary {
                        turn: turn.0,
                        t_ms: e.t_ms,
                        text: text.clone(),
                        intent: None,
                        confidence: None,
                        latency_ms: None,
                        sentiment: 0.0,
                        barged_in: false,
                    });
                }
                EventKind::Dtmf { .. } => caller_acted = true,
                EventKind::Intent {
                    turn,
                    name,
                    confidence,
                } => {
                    if let Some(t) = s.turn_mut(*turn) {
                        t.intent = Some(name.clone());
                        t.confidence = Some(*confidence);
                    }
                    if name == "faq" {
                        s.kb_answers += 1;
                    }
                }
                EventKind::Slot { name, value, .. } => {
                    if name == "csat" {
                        s.csat = value
                            .trim()
                            .parse::<u8>()
                            .ok()
                            .filter(|v| (1..=5).contains(v));
                    }
                    s.slots.push((name.clone(), value.clone()))
                }
                EventKind::TurnLatency { turn, total_ms, .. } => {
                    if let Some(t) = s.turn_mut(*turn) {
                        t.latency_ms.get_or_insert(*total_ms);
                    }
                }
                EventKind::BotAudioEnd {
                    turn,
                    reason: AudioEndReason::BargeIn,
                } => {
                    s.barge_ins += 1;
                    cut_replies.push(turn.0);
                }
                EventKind::Transfer { target, reason } => {
                    s.transfers.push((target.clone(), reason.clone(), false))
                }
                EventKind::TransferFailed { target, .. } => {
                    if let Some(t) = s.transfers.iter_mut().rev().find(|t| &t.0 == target) {
                        t.2 = true;
                    }
                }
                EventKind::KnowledgeGap { text, .. } => s.gaps.push((e.t_ms, text.clone())),
                EventKind::Hangup { reason } => s.end_reason = reason.code().to_string(),
                _ => {}
            }
        }
        // A cut reply's barge-in is the caller's next turn.
        for cut in cut_replies {
            if let Some(t) = s.turns.iter_mut().find(|t| t.turn > cut) {
                t.barged_in = true;
            }
        }
        // A raised voice is measured against the caller's own median turn.
        let mut sorted: Vec<f32> = levels.values().copied().collect();
        sorted.sort_by(f32::total_cmp);
        let median = sorted.get(sorted.len() / 2).copied();
        for t in &mut s.turns {
            let words = sentiment::words(&t.text);
            let delivery = sentiment::Delivery {
                speaking_ms: speech.get(&t.turn).copied(),
                louder_db: levels
                    .get(&t.turn)
                    .zip(median)
                    .map(|(level, median)| level - median),
            };
            t.sentiment = sentiment::score(&t.text, words, delivery);
        }
        s.outcome = s.outcome_of(caller_acted);
        s
    }

    fn turn_mut(&mut self, turn: TurnId) -> Option<&mut TurnSummary> {
        self.turns.iter_mut().rev().find(|t| t.turn == turn.0)
    }

    fn outcome_of(&self, caller_acted: bool) -> Outcome {
        let transferred = self.transfers.iter().any(|t| !t.2)
            || matches!(self.end_reason.as_str(), "transfer" | "transfer.done");
        if transferred {
            return Outcome::Transferred;
        }
        match self.end_reason.as_str() {
            "server.crash" | "server.shutdown" | "server.record_failed" => Outcome::Failed,
            "no_match.max" | "no_input.max" => Outcome::Unresolved,
            _ if self.transfers.iter().any(|t| t.2) => Outcome::Unresolved,
            _ if !caller_acted => Outcome::Abandoned,
            _ => Outcome::Contained,
        }
    }

    /// Whether the call ever connected: a SIP call never acknowledged (`sip.no_ack`, or
    /// evicted half-open) or a browser whose media never came up (`webrtc.connect_timeout`) did
    /// not. Such calls are logged, not stored as calls.
    pub fn connected(&self) -> bool {
        !NEVER_CONNECTED.contains(&self.end_reason.as_str())
    }

    /// The call's lowest turn sentiment (0 with no turn).
    pub fn worst_sentiment(&self) -> f32 {
        self.turns
            .iter()
            .map(|t| t.sentiment)
            .fold(0.0f32, f32::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::EndReason;

    fn at(t_ms: u64, kind: EventKind) -> CallEvent {
        CallEvent { t_ms, kind }
    }

    fn said(t_ms: u64, turn: u32, text: &str) -> CallEvent {
        at(
            t_ms,
            EventKind::Transcript {
                turn: TurnId(turn),
                text: text.into(),
                is_final: true,
                sensitive: false,
            },
        )
    }

    fn hangup(t_ms: u64, reason: EndReason) -> CallEvent {
        at(t_ms, EventKind::Hangup { reason })
    }

    #[test]
    fn outcomes_follow_how_the_call_ended() {
        let served = [
            said(1000, 1, "what is my balance"),
            at(
                1100,
                EventKind::Intent {
                    turn: TurnId(1),
                    name: "balance".into(),
                    confidence: 0.9,
                },
            ),
            hangup(5000, EndReason::CallerHangup),
        ];
        let s = CallSummary::of(&served);
        assert_eq!(s.outcome, Outcome::Contained);
        assert_eq!(s.turns[0].intent.as_deref(), Some("balance"));
        assert_eq!(s.duration_ms, 5000);
        assert_eq!(
            CallSummary::of(&[hangup(900, EndReason::CallerHangup)]).outcome,
            Outcome::Abandoned
        );
        assert_eq!(
            CallSummary::of(&[said(1000, 1, "uh"), hangup(9000, EndReason::NoMatchMax)]).outcome,
            Outcome::Unresolved
        );
        let handed = [
            said(1000, 1, "agent please"),
            at(
                1200,
                EventKind::Transfer {
                    target: "sip:agents@pbx".into(),
                    reason: "caller.request".into(),
                },
            ),
            hangup(3000, EndReason::Transfer),
        ];
        assert_eq!(CallSummary::of(&handed).outcome, Outcome::Transferred);
        let failed = [
            said(1000, 1, "agent please"),
            at(
                1200,
                EventKind::Transfer {
                    target: "sip:agents@pbx".into(),
                    reason: "caller.request".into(),
                },
            ),
            at(
                1900,
                EventKind::TransferFailed {
                    target: "sip:agents@pbx".into(),
                    reason: "486".into(),
                },
            ),
            hangup(3000, EndReason::CallerHangup),
        ];
        let s = CallSummary::of(&failed);
        assert_eq!(s.outcome, Outcome::Unresolved);
        assert!(s.transfers[0].2);
        assert_eq!(
            CallSummary::of(&[said(1000, 1, "hi"), hangup(2000, EndReason::ServerCrash)]).outcome,
            Outcome::Failed
        );
    }

    #[test]
    fn a_call_that_never_connected_says_so() {
        let never = [hangup(8000, EndReason::Other("sip.no_ack".into()))];
        assert!(!CallSummary::of(&never).connected());
        assert!(CallSummary::of(&[hangup(900, EndReason::CallerHangup)]).connected());
    }

    #[test]
    fn a_survey_slot_is_the_calls_satisfaction_score() {
        let events = [
            said(1000, 1, "four"),
            at(
                1100,
                EventKind::Slot {
                    turn: TurnId(1),
                    name: "csat".into(),
                    value: "4".into(),
                    sensitive: false,
                },
            ),
            hangup(2000, EndReason::CallerHangup),
        ];
        assert_eq!(CallSummary::of(&events).csat, Some(4));
    }
}
