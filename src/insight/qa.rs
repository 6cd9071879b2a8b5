//! Automatic quality checks on every call: configurable rules ([`QaConfig`], `[qa]` in the
//! config) run over a finished call's events and its [`CallSummary`], and each finding has a
//! stable rule code, a severity and a time in the call.
//!
//! | rule | finds | severity |
//! |---|---|---|
//! | `dead_air` | neither side heard for more than `dead_air_s` | minor |
//! | `talk_over` | the bot started speaking while the caller was speaking | minor |
//! | `repeated_no_match` | `repeated_no_match` caller turns in a row not understood | major |
//! | `gave_up` | the call ended on no match or no input | major |
//! | `frustration` | a caller turn with sentiment at or below `frustration_below` | major |
//! | `forbidden_phrase` | the bot said one of `forbidden_phrases` | critical |
//! | `required_phrase` | the bot never said one of `required_phrases` (in a call it answered) | minor |
//! | `transfer_failed` | a transfer that failed | major |
//! | `latency_slo` | a turn slower than `latency_slo_ms` (caller's last word to bot audio) | minor |
//! | `abandoned` | the caller left before saying or pressing anything | info |
//! | `error` | an error event in the call | major |
//!
//! Sans-IO and pure: the store runs [`check`] once, when it stores the call.

use serde::{Deserialize, Serialize};

use super::{CallSummary, Outcome};
use crate::session::{CallEvent, EventKind};

/// How bad a finding is. Ordered: `Info` < `Minor` < `Major` < `Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Minor,
    Major,
    Critical,
}

impl Severity {
    /// The stable code stored and filtered on.
    pub fn code(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }

    /// The severity a code names.
    pub fn from_code(code: &str) -> Option<Self> {
        [
            Severity::Info,
            Severity::Minor,
            Severity::Major,
            Severity::Critical,
        ]
        .into_iter()
        .find(|s| s.code() == code)
    }

    /// Its rank, 0 (`info`) to 3 (`critical`), stored so that queries can compare.
    pub fn rank(self) -> i64 {
        self as i64
    }
}

/// One thing the checks found in a call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The rule's stable code (the table in the module docs).
    pub rule: &'static str,
    pub severity: Severity,
    /// Milliseconds into the call.
    pub t_ms: u64,
    /// What was found, for a person to read.
    pub detail: String,
}

/// `[qa]`: the rules' thresholds and phrase lists.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QaConfig {
    /// Silence on both sides longer than this is dead air, in seconds.
    pub dead_air_s: f64,
    /// This many caller turns in a row not understood is a finding.
    pub repeated_no_match: u32,
    /// A turn whose voice-to-voice latency is over this misses the SLO, in milliseconds.
    pub latency_slo_ms: u64,
    /// A caller turn at or below this sentiment (-1 to 1) shows frustration.
    pub frustration_below: f32,
    /// Phrases the bot (or an agent) must never say; matched case-insensitively.
    pub forbidden_phrases: Vec<String>,
    /// Phrases the bot must say at least once in a call it answered.
    pub required_phrases: Vec<String>,
}

impl Default for QaConfig {
    fn default() -> Self {
        Self {
            dead_air_s: 8.0,
            repeated_no_match: 2,
            latency_slo_ms: 1500,
            frustration_below: -0.5,
            forbidden_phrases: Vec::new(),
            required_phrases: Vec::new(),
        }
    }
}

/// Runs every rule over one call; findings in call-time order.
pub fn check(config: &QaConfig, events: &[CallEvent], summary: &CallSummary) -> Vec<Finding> {
    let mut found = Vec::new();
    dead_air_and_talk_over(config, events, &mut found);
    let mut run = 0u32;
    for t in &summary.turns {
        if t.intent.is_none() {
            run += 1;
            if run == config.repeated_no_match.max(1) {
                found.push(Finding {
                    rule: "repeated_no_match",
                    severity: Severity::Major,
                    t_ms: t.t_ms,
                    detail: format!("{run} caller turns in a row not understood"),
                });
            }
        } else {
            run = 0;
        }
        if t.sentiment <= config.frustration_below {
            found.push(Finding {
                rule: "frustration",
                severity: Severity::Major,
                t_ms: t.t_ms,
                detail: format!("caller sentiment {:.2}: \"{}\"", t.sentiment, t.text),
            });
        }
        if let Some(ms) = t.latency_ms.filter(|ms| *ms > config.latency_slo_ms) {
            found.push(Finding {
                rule: "latency_slo",
                severity: Severity::Minor,
                t_ms: t.t_ms,
                detail: format!(
                    "turn {} answered in {ms} ms (SLO {} ms)",
                    t.turn, config.latency_slo_ms
                ),
            });
        }
    }
    if matches!(summary.end_reason.as_str(), "no_match.max" | "no_input.max") {
        found.push(Finding {
            rule: "gave_up",
            severity: Severity::Major,
            t_ms: summary.duration_ms,
            detail: format!("the bot ended the call: {}", summary.end_reason),
        });
    }
    if summary.outcome == Outcome::Abandoned {
        found.push(Finding {
            rule: "abandoned",
            severity: Severity::Info,
            t_ms: summary.duration_ms,
            detail: "the caller left before saying or pressing anything".into(),
        });
    }
    let mut bot_said = String::new();
    for e in events {
        match &e.kind {
            EventKind::BotReply { text, .. } => {
                let lower = text.to_lowercase();
                for phrase in &config.forbidden_phrases {
                    if lower.contains(&phrase.to_lowercase()) {
                        found.push(Finding {
                            rule: "forbidden_phrase",
                            severity: Severity::Critical,
                            t_ms: e.t_ms,
                            detail: format!("the bot said \"{phrase}\""),
                        });
                    }
                }
                bot_said.push_str(&lower);
                bot_said.push('\n');
            }
            EventKind::TransferFailed { target, reason } => found.push(Finding {
                rule: "transfer_failed",
                severity: Severity::Major,
                t_ms: e.t_ms,
                detail: format!("transfer to {target} failed: {reason}"),
            }),
            EventKind::Error { code, message } => found.push(Finding {
                rule: "error",
                severity: Severity::Major,
                t_ms: e.t_ms,
                detail: format!("{}: {message}", code.code()),
            }),
            _ => {}
        }
    }
    if !bot_said.is_empty() {
        for phrase in &config.required_phrases {
            if !bot_said.contains(&phrase.to_lowercase()) {
                found.push(Finding {
                    rule: "required_phrase",
                    severity: Severity::Minor,
                    t_ms: summary.duration_ms,
                    detail: format!("the bot never said \"{phrase}\""),
                });
            }
        }
    }
    found.sort_by_key(|f| f.t_ms);
    found
}

/// Dead air (both sides silent too long, from the call's start to its hangup) and the bot
/// starting to speak while the caller is speaking.
fn dead_air_and_talk_over(config: &QaConfig, events: &[CallEvent], found: &mut Vec<Finding>) {
    let limit_ms = (config.dead_air_s * 1000.0) as u64;
    let dead_air = |since: u64, until: u64, found: &mut Vec<Finding>| {
        let gap = until.saturating_sub(since);
        if limit_ms > 0 && gap > limit_ms {
            found.push(Finding {
                rule: "dead_air",
                severity: Severity::Minor,
                t_ms: since,
                detail: format!("{:.1} s with neither side speaking", gap as f64 / 1000.0),
            });
        }
    };
    let mut caller_speaking = false;
    let mut bot_speaking = false;
    let mut quiet_since = Some(0u64);
    for e in events {
        match &e.kind {
            EventKind::SpeechStart { .. } => caller_speaking = true,
            EventKind::SpeechEnd { .. } => caller_speaking = false,
            EventKind::BotAudioStart { .. } => {
                if caller_speaking {
                    found.push(Finding {
                        rule: "talk_over",
                        severity: Severity::Minor,
                        t_ms: e.t_ms,
                        detail: "the bot started speaking while the caller was speaking".into(),
                    });
                }
                bot_speaking = true;
            }
            EventKind::BotAudioEnd { .. } => bot_speaking = false,
            EventKind::Hangup { .. } => {
                // The quiet up to the hangup counts too.
                if let Some(since) = quiet_since {
                    dead_air(since, e.t_ms, found);
                }
                return;
            }
            _ => continue,
        }
        let busy = caller_speaking || bot_speaking;
        match (busy, quiet_since) {
            (true, Some(since)) => {
                dead_air(since, e.t_ms, found);
                quiet_since = None;
            }
            (false, None) => quiet_since = Some(e.t_ms),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{AudioEndReason, EndReason, ErrorCode, TurnId};

    fn at(t_ms: u64, kind: EventKind) -> CallEvent {
        CallEvent { t_ms, kind }
    }

    fn rules(config: &QaConfig, events: &[CallEvent]) -> Vec<&'static str> {
        check(config, events, &CallSummary::of(events))
            .into_iter()
            .map(|f| f.rule)
            .collect()
    }

    fn said(t_ms: u64, turn: u32, text: &str) -> [CallEvent; 3] {
        [
            at(
                t_ms.saturating_sub(900),
                EventKind::SpeechStart { turn: TurnId(turn) },
            ),
            at(
                t_ms.saturating_sub(100),
                EventKind::SpeechEnd {
                    turn: TurnId(turn),
                    level_dbfs: None,
                    by: None,
                },
            ),
            at(
                t_ms,
                EventKind::Transcript {
                    turn: TurnId(turn),
                    text: text.into(),
                    is_final: true,
                    sensitive: false,
                },
            ),
        ]
    }

    fn bot(t_ms: u64, turn: u32, text: &str, until: u64) -> [CallEvent; 3] {
        [
            at(
                t_ms,
                EventKind::BotReply {
                    turn: TurnId(turn),
                    text: text.into(),
                },
            ),
            at(t_ms, EventKind::BotAudioStart { turn: TurnId(turn) }),
            at(
                until,
                EventKind::BotAudioEnd {
                    turn: TurnId(turn),
                    reason: AudioEndReason::Done,
                },
            ),
        ]
    }

    #[test]
    fn a_clean_call_has_no_findings() {
        let mut events = vec![];
        events.extend(bot(100, 0, "Welcome. How can I help?", 2000));
        events.extend(said(4000, 1, "my balance please"));
        events.push(at(
            4050,
            EventKind::Intent {
                turn: TurnId(1),
                name: "balance".into(),
                confidence: 0.9,
            },
        ));
        events.extend(bot(4600, 1, "Your balance is ten dollars. Goodbye.", 7000));
        events.push(at(
            7100,
            EventKind::Hangup {
                reason: EndReason::Other("completed".into()),
            },
        ));
        assert!(rules(&QaConfig::default(), &events).is_empty());
    }

    #[test]
    fn each_rule_finds_its_fault_at_its_time() {
        let config = QaConfig {
            forbidden_phrases: vec!["Guaranteed".into()],
            required_phrases: vec!["anything else".into()],
            ..QaConfig::default()
        };
        let mut events = vec![];
        events.extend(bot(100, 0, "Welcome. Results guaranteed!", 1500));
        // 10 s of nothing: dead air.
        events.extend(said(12_500, 1, "blah blah"));
        events.extend(said(15_000, 2, "this is ridiculous and useless"));
        // The bot starts while the caller is still speaking.
        events.push(at(15_200, EventKind::SpeechStart { turn: TurnId(3) }));
        events.extend(bot(15_300, 2, "Sorry?", 16_000));
        events.push(at(
            16_100,
            EventKind::TurnLatency {
                turn: TurnId(2),
                endpoint_ms: 600,
                asr_ms: 1500,
                dialogue_ms: 5,
                tts_ms: 300,
                total_ms: 2405,
            },
        ));
        events.push(at(
            16_200,
            EventKind::TransferFailed {
                target: "sip:agents@pbx".into(),
                reason: "486 Busy Here".into(),
            },
        ));
        events.push(at(
            16_300,
            EventKind::Error {
                code: ErrorCode::TtsFailed,
                message: "synthesis failed".into(),
            },
        ));
        events.push(at(
            17_000,
            EventKind::Hangup {
                reason: EndReason::NoMatchMax,
            },
        ));
        let found = check(&config, &events, &CallSummary::of(&events));
        let codes: Vec<_> = found.iter().map(|f| f.rule).collect();
        for rule in [
            "forbidden_phrase",
            "dead_air",
            "repeated_no_match",
            "frustration",
            "talk_over",
            "latency_slo",
            "transfer_failed",
            "error",
            "gave_up",
            "required_phrase",
        ] {
            assert!(codes.contains(&rule), "{rule} missing from {codes:?}");
        }
        let dead = found.iter().find(|f| f.rule == "dead_air").unwrap();
        assert_eq!(dead.t_ms, 1500);
        assert_eq!(
            found
                .iter()
                .find(|f| f.rule == "forbidden_phrase")
                .unwrap()
                .severity,
            Severity::Critical
        );
    }

    #[test]
    fn a_caller_who_left_at_once_is_an_abandoned_call() {
        let events = [at(
            2000,
            EventKind::Hangup {
                reason: EndReason::CallerHangup,
            },
        )];
        assert_eq!(rules(&QaConfig::default(), &events), vec!["abandoned"]);
    }
}
