//! The screen-pop: what an agent sees when a call rings, worked out from the call's events so
//! far (pure: the same events give the same pop).
//!
//! It carries who is calling, why the bot handed over, the last intent and the slots, the
//! caller's mood (the worst turn sentiment, [`crate::insight::sentiment`]), a summary a human
//! reads at a glance, and the whole conversation with the bot. Slots and words marked
//! sensitive arrive as the record keeps them (masked).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::call::edge::TransferContext;
use crate::insight::CallSummary;
use crate::session::{CallEvent, EventKind};

/// One line of the bot's conversation so far, for the screen-pop.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PopLine {
    /// `caller` or `bot`.
    pub who: &'static str,
    pub text: String,
}

/// What an agent sees when a call rings: who, why, and what the bot learned.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct ScreenPop {
    pub call_id: String,
    pub caller: String,
    pub queue: String,
    /// The flow the bot ran (the agent's knowledge-base answers come from its knowledge base).
    pub flow: String,
    pub language: String,
    /// Why the call came to a human (the flow's transfer reason).
    pub reason: String,
    /// The last intent the bot matched.
    pub intent: Option<String>,
    pub slots: BTreeMap<String, String>,
    /// The caller's mood, -1 (upset) to 1, and in words.
    pub sentiment: f32,
    pub mood: &'static str,
    /// A line or two a human reads at a glance.
    pub summary: String,
    /// The whole conversation with the bot.
    pub transcript: Vec<PopLine>,
}

/// Who and why, as the call's driver knows them at the transfer.
#[derive(Debug, Clone, Default)]
pub struct PopContext<'a> {
    pub call_id: &'a str,
    pub caller: &'a str,
    pub queue: &'a str,
    pub flow: &'a str,
    pub language: &'a str,
    pub reason: &'a str,
    pub transfer: Option<&'a TransferContext>,
}

/// A mood word for a sentiment score.
pub fn mood(sentiment: f32) -> &'static str {
    if sentiment <= -0.4 {
        "upset"
    } else if sentiment < -0.1 {
        "unhappy"
    } else if sentiment >= 0.3 {
        "pleased"
    } else {
        "neutral"
    }
}

impl ScreenPop {
    /// The pop for a call handed over now, from its events so far.
    pub fn of(events: &[CallEvent], ctx: &PopContext<'_>) -> Self {
        let summary = CallSummary::of(events);
        let transcript: Vec<PopLine> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Transcript {
                    text,
                    is_final: true,
                    ..
                } if !text.is_empty() => Some(PopLine {
                    who: "caller",
                    text: text.clone(),
                }),
                EventKind::BotReply { text, .. } if !text.is_empty() => Some(PopLine {
                    who: "bot",
                    text: text.clone(),
                }),
                _ => None,
            })
            .collect();
        let mut slots: BTreeMap<String, String> = summary.slots.iter().cloned().collect();
        let mut intent = summary.turns.iter().rev().find_map(|t| t.intent.clone());
        if let Some(t) = ctx.transfer {
            slots.extend(t.slots.clone());
            intent = t.intent.clone().or(intent);
        }
        let sentiment = summary.worst_sentiment();
        let mood = mood(sentiment);
        let mut parts = Vec::new();
        let said: Vec<&str> = summary
            .turns
            .iter()
            .filter(|t| !t.text.is_empty())
            .map(|t| t.text.as_str())
            .collect();
        match said.last() {
            Some(last) => parts.push(format!("Caller said \"{last}\"")),
            None => parts.push("Caller said nothing yet".to_string()),
        }
        if let Some(intent) = &intent {
            parts.push(format!("intent {intent}"));
        }
        if !slots.is_empty() {
            let listed: Vec<String> = slots.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.push(listed.join(", "));
        }
        let turns = match said.len() {
            1 => "1 turn".to_string(),
            n => format!("{n} turns"),
        };
        parts.push(format!(
            "{turns} with the bot, {} not understood; mood {mood}; handed over: {}",
            summary.turns.iter().filter(|t| t.intent.is_none()).count(),
            ctx.reason
        ));
        ScreenPop {
            call_id: ctx.call_id.to_string(),
            caller: ctx.caller.to_string(),
            queue: ctx.queue.to_string(),
            flow: ctx.flow.to_string(),
            language: ctx.language.to_string(),
            reason: ctx.reason.to_string(),
            intent,
            slots,
            sentiment,
            mood,
            summary: parts.join("; "),
            transcript,
        }
    }
}

impl ScreenPop {
    /// What a warm transfer tells the agent before the caller is connected (spoken; the
    /// caller does not hear it).
    pub fn briefing(&self) -> String {
        let caller = if self.caller.is_empty() {
            "unknown"
        } else {
            &self.caller
        };
        let caller = caller.trim_start_matches("sip:").trim_start_matches("web:");
        let said = self
            .transcript
            .iter()
            .rev()
            .find(|l| l.who == "caller")
            .map_or("", |l| l.text.as_str());
        let slots: Vec<String> = self.slots.iter().map(|(k, v)| format!("{k} {v}")).collect();
        if self.language == "zh" {
            return format!(
                "来电：{caller}。原因：{}。客户说：{said}。{}。情绪：{}。",
                self.reason,
                slots.join("，"),
                self.mood
            );
        }
        format!(
            "Call from {caller}. {}. They said: {said}. {}. Mood: {}.",
            self.reason.replace(['.', '_'], " "),
            slots.join(", "),
            self.mood
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::TurnId;

    fn at(t_ms: u64, kind: EventKind) -> CallEvent {
        CallEvent { t_ms, kind }
    }

    #[test]
    fn the_pop_has_the_conversation_slots_mood_and_a_summary() {
        let events = vec![
            at(
                0,
                EventKind::BotReply {
                    turn: TurnId(0),
                    text: "Welcome.".into(),
                },
            ),
            at(
                900,
                EventKind::Transcript {
                    turn: TurnId(1),
                    text: "this is useless I want a person".into(),
                    is_final: true,
                    sensitive: false,
                },
            ),
            at(
                1000,
                EventKind::BotReply {
                    turn: TurnId(1),
                    text: "Connecting you.".into(),
                },
            ),
        ];
        let mut transfer = TransferContext::default();
        transfer.slots.insert("account".into(), "12345".into());
        transfer.intent = Some("human".into());
        let pop = ScreenPop::of(
            &events,
            &PopContext {
                call_id: "c1",
                caller: "sip:alice@example.com",
                queue: "support",
                flow: "telecom_en",
                language: "en",
                reason: "caller.request",
                transfer: Some(&transfer),
            },
        );
        assert_eq!(pop.transcript.len(), 3);
        assert_eq!(
            pop.transcript[1],
            PopLine {
                who: "caller",
                text: "this is useless I want a person".into()
            }
        );
        assert_eq!(pop.slots["account"], "12345");
        assert_eq!(pop.intent.as_deref(), Some("human"));
        assert!(
            pop.sentiment < 0.0,
            "\"useless\" is negative: {}",
            pop.sentiment
        );
        assert!(
            pop.summary.contains("account=12345") && pop.summary.contains("caller.request"),
            "{}",
            pop.summary
        );
        assert!(
            pop.summary.contains("1 turn with the bot"),
            "{}",
            pop.summary
        );
    }
}
