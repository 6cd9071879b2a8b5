//! Escalation: noticing when a caller should be handed to a human without waiting for the
//! flow to get there.
//!
//! [`EscalationMonitor`] is a small sans-IO state machine, one per call. Each caller turn is
//! fed to [`EscalationMonitor::observe`], which returns a [`Trigger`] when one fires:
//! - an explicit request ("agent", "representative", "人工", "转人工", plus the flow's phrases);
//! - frustration, from a lexicon over the transcripts in both languages, summed over the call;
//! - shouting: an utterance's loudness against the caller's own baseline (measured by the
//!   session and passed as `level_vs_baseline_db`), counted over the call;
//! - repeated no-match over the whole call ([`EscalationMonitor::no_match`]).
//!
//! Each trigger has a stable reason code (`escalation.request`, `escalation.frustration`,
//! `escalation.shouting`, `escalation.no_match`, `escalation.no_input`) for call records.

use super::flow::EscalationSettings;
use super::text;

/// Why a call is escalated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Request,
    Frustration,
    Shouting,
    NoMatch,
    NoInput,
}

impl Trigger {
    /// The stable reason code recorded with the transfer.
    pub fn reason(self) -> &'static str {
        match self {
            Trigger::Request => "escalation.request",
            Trigger::Frustration => "escalation.frustration",
            Trigger::Shouting => "escalation.shouting",
            Trigger::NoMatch => "escalation.no_match",
            Trigger::NoInput => "escalation.no_input",
        }
    }
}

/// Phrases that always ask for a person.
const EXPLICIT: &[&str] = &[
    "agent",
    "representative",
    "operator",
    "real person",
    "human being",
    "talk to a human",
    "speak to a human",
    "customer support",
    "customer service",
    "人工",
    "转人工",
    "人工客服",
    "真人",
];

/// Words and phrases of frustration, with their weight (2 for strong, 1 for mild).
const FRUSTRATION: &[(&str, u32)] = &[
    ("ridiculous", 2),
    ("useless", 2),
    ("stupid", 2),
    ("terrible", 1),
    ("awful", 1),
    ("angry", 2),
    ("furious", 2),
    ("annoyed", 1),
    ("annoying", 1),
    ("frustrated", 2),
    ("frustrating", 2),
    ("fed up", 2),
    ("sick of", 2),
    ("waste of time", 2),
    ("hate", 1),
    ("damn", 1),
    ("hell", 1),
    ("crap", 1),
    ("worst", 1),
    ("unacceptable", 2),
    ("pathetic", 2),
    ("not listening", 2),
    ("doesnt work", 1),
    ("for god sake", 2),
    ("come on", 1),
    ("烦死了", 2),
    ("烦", 1),
    ("垃圾", 2),
    ("气死", 2),
    ("生气", 2),
    ("太慢", 1),
    ("投诉", 2),
    ("什么破", 2),
    ("没用", 2),
    ("离谱", 2),
    ("受不了", 2),
    ("差劲", 2),
    ("无语", 1),
    ("搞什么", 2),
    ("听不懂", 1),
];

/// One call's escalation state.
#[derive(Debug, Clone)]
pub struct EscalationMonitor {
    settings: EscalationSettings,
    frustration: u32,
    shouted_turns: u32,
    no_matches: u32,
}

impl EscalationMonitor {
    /// A monitor for one call under a flow's settings.
    pub fn new(settings: EscalationSettings) -> Self {
        Self {
            settings,
            frustration: 0,
            shouted_turns: 0,
            no_matches: 0,
        }
    }

    /// The frustration score of one utterance (sum of lexicon weights heard).
    pub fn frustration_score(&self, words: &str) -> u32 {
        let normalized = text::normalize(words);
        let padded = format!(" {normalized} ");
        let heard = |phrase: &str| {
            if phrase.chars().any(text::is_han) {
                normalized.contains(phrase)
            } else {
                padded.contains(&format!(" {phrase} "))
            }
        };
        let builtin: u32 = FRUSTRATION
            .iter()
            .filter(|(p, _)| heard(p))
            .map(|(_, w)| w)
            .sum();
        let extra = self
            .settings
            .frustration_words
            .iter()
            .filter(|p| heard(&text::normalize(p)))
            .count();
        builtin + extra as u32 * 2
    }

    /// Whether the words ask for a person outright.
    pub fn explicit_request(&self, words: &str) -> bool {
        let normalized = text::normalize(words);
        let padded = format!(" {normalized} ");
        EXPLICIT
            .iter()
            .copied()
            .chain(self.settings.explicit.iter().map(String::as_str))
            .map(text::normalize)
            .filter(|p| !p.is_empty())
            .any(|p| {
                if p.chars().any(text::is_han) {
                    normalized.contains(&p)
                } else {
                    padded.contains(&format!(" {p} "))
                }
            })
    }

    /// Observes one caller utterance; returns the trigger that fires, if any.
    pub fn observe(&mut self, words: &str, level_vs_baseline_db: f32) -> Option<Trigger> {
        if self.explicit_request(words) {
            return Some(Trigger::Request);
        }
        if self.settings.shouting_turns > 0 && level_vs_baseline_db >= self.settings.shouting_db {
            self.shouted_turns += 1;
            if self.shouted_turns >= self.settings.shouting_turns {
                return Some(Trigger::Shouting);
            }
        }
        if self.settings.frustration_hits > 0 {
            self.frustration += self.frustration_score(words);
            if self.frustration >= self.settings.frustration_hits {
                return Some(Trigger::Frustration);
            }
        }
        None
    }

    /// Counts a no-match; returns the trigger when the call-wide limit is reached.
    pub fn no_match(&mut self) -> Option<Trigger> {
        self.no_matches += 1;
        (self.settings.no_match_total > 0 && self.no_matches >= self.settings.no_match_total)
            .then_some(Trigger::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers() {
        let mut m = EscalationMonitor::new(EscalationSettings::default());
        assert_eq!(
            m.observe("I'd like to speak to customer support", 0.0),
            Some(Trigger::Request)
        );
        assert_eq!(m.observe("我要转人工", 0.0), Some(Trigger::Request));
        assert_eq!(m.observe("this is annoying", 0.0), None);
        assert_eq!(
            m.observe("this is so annoying", 0.0),
            Some(Trigger::Frustration)
        );
        let mut m = EscalationMonitor::new(EscalationSettings::default());
        assert_eq!(m.observe("where is my order", 15.0), None);
        assert_eq!(
            m.observe("where is my order", 15.0),
            Some(Trigger::Shouting)
        );
        let mut m = EscalationMonitor::new(EscalationSettings::default());
        assert_eq!(m.observe("气死我了", 0.0), Some(Trigger::Frustration));
        let mut m = EscalationMonitor::new(EscalationSettings::default());
        assert_eq!(m.observe("what a hell of a day", 0.0), None);
    }
}
