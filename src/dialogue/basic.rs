//! The minimal dialogue: a greeting, FAQ answers by keyword, "goodbye" ends the call and asking
//! for a human transfers it. Its data is a TOML file (`assets/basic_dialogue.toml`).
//!
//! Matching is whole-word and case-insensitive for Latin text, substring for Chinese. The phrases
//! it understands also become the recognizer's phrase grammar for the caller's next answer.

use std::path::Path;

use serde::Deserialize;

use super::{
    Action, BotTurn, CallContext, CallPlan, CallerInput, Dialogue, DialogueError, DialogueFactory,
    FlowChoice, FlowChoiceError, IntentMatch, Prompt,
};
use crate::asr::Grammar;
use crate::language::Language;

/// The dialogue's data, as in the TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicScript {
    pub greeting: String,
    pub fallback: String,
    pub no_input: String,
    pub goodbye_reply: String,
    pub transfer_reply: String,
    pub transfer_target: String,
    pub goodbye: Vec<String>,
    pub human: Vec<String>,
    #[serde(default)]
    pub faq: Vec<FaqEntry>,
}

/// One FAQ answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaqEntry {
    pub name: String,
    pub keywords: Vec<String>,
    pub answer: String,
}

/// The name the basic dialogue answers to as a flow (`--flow basic`, the web phone's list).
pub const BASIC_FLOW: &str = "basic";

/// Loads the script once and makes a [`BasicDialogue`] per call.
pub struct BasicFactory {
    script: BasicScript,
    language: Language,
}

impl BasicFactory {
    /// Loads the script file; errors name the file and line.
    pub fn load(path: &Path, language: Language) -> Result<Self, DialogueError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DialogueError::Load(format!("{}: cannot read: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string(), language)
    }

    /// Parses script text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, language: Language) -> Result<Self, DialogueError> {
        let script: BasicScript = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            DialogueError::Load(match line {
                Some(line) => format!("{origin}:{line}: {}", e.message().trim()),
                None => format!("{origin}: {}", e.message().trim()),
            })
        })?;
        Ok(Self { script, language })
    }
}

impl DialogueFactory for BasicFactory {
    /// The one "flow" is `basic`; the call speaks the caller's language if they chose one,
    /// else the configured `language`.
    fn plan(&self, choice: &FlowChoice) -> Result<CallPlan, FlowChoiceError> {
        match choice.flow.as_deref() {
            None | Some(BASIC_FLOW) => Ok(CallPlan {
                flow: BASIC_FLOW.to_string(),
                language: choice.language.unwrap_or(self.language),
                record_audio: true,
                transfer_failed: None,
            }),
            Some(other) => Err(FlowChoiceError::UnknownFlow {
                name: other.to_string(),
                known: vec![BASIC_FLOW.to_string()],
            }),
        }
    }

    fn new_dialogue(&self, _ctx: &CallContext) -> Box<dyn Dialogue> {
        Box::new(BasicDialogue {
            script: self.script.clone(),
        })
    }

    fn flows(&self) -> Vec<(String, Language)> {
        vec![(BASIC_FLOW.to_string(), self.language)]
    }

    /// The basic dialogue answers from a fixed script: it has no knowledge base to learn into.
    fn learn(
        &self,
        flow: &str,
        _question: &str,
        _answer: &str,
    ) -> Result<std::path::PathBuf, super::kb::LearnError> {
        Err(super::kb::LearnError::Flow {
            flow: flow.to_string(),
            why: "is the basic dialogue, which has no knowledge base (use the flow engine)".into(),
        })
    }
}

/// One call's minimal conversation.
pub struct BasicDialogue {
    script: BasicScript,
}

impl BasicDialogue {
    fn phrases(&self) -> Grammar {
        let mut phrases: Vec<String> = Vec::new();
        phrases.extend(self.script.goodbye.iter().cloned());
        phrases.extend(self.script.human.iter().cloned());
        for entry in &self.script.faq {
            phrases.extend(entry.keywords.iter().cloned());
        }
        phrases.retain(|p| p.is_ascii());
        Grammar::shortest_first(phrases)
    }

    fn say(&self, text: &str) -> BotTurn {
        BotTurn {
            say: vec![Prompt::text(text)],
            expect: Some(self.phrases()),
            ..BotTurn::default()
        }
    }

    fn intent(name: &str, confidence: f32) -> Option<IntentMatch> {
        Some(IntentMatch {
            name: name.to_string(),
            confidence,
        })
    }
}

impl Dialogue for BasicDialogue {
    fn handle(&mut self, input: &CallerInput) -> BotTurn {
        let text = match input {
            CallerInput::Start => return self.say(&self.script.greeting),
            CallerInput::NoInput => return self.say(&self.script.no_input),
            CallerInput::Dtmf { digit: '0' } => String::from("agent"),
            CallerInput::Dtmf { .. } => return self.say(&self.script.fallback),
            CallerInput::Speech { text, .. } => text.to_lowercase(),
        };
        if contains_any(&text, &self.script.human) {
            let mut turn = self.say(&self.script.transfer_reply);
            turn.intent = Self::intent("agent", 1.0);
            turn.action = Some(Action::Transfer {
                target: self.script.transfer_target.clone(),
                reason: "caller.asked_for_agent".into(),
            });
            return turn;
        }
        if contains_any(&text, &self.script.goodbye) {
            let mut turn = self.say(&self.script.goodbye_reply);
            turn.intent = Self::intent("goodbye", 1.0);
            turn.action = Some(Action::Hangup {
                reason: "bot.goodbye".into(),
            });
            return turn;
        }
        if let Some(entry) = self
            .script
            .faq
            .iter()
            .find(|e| contains_any(&text, &e.keywords))
        {
            let mut turn = self.say(&entry.answer);
            turn.intent = Self::intent(&entry.name, 1.0);
            return turn;
        }
        let mut turn = self.say(&self.script.fallback);
        if !text.trim().is_empty() {
            turn.knowledge_gap = Some(text);
        }
        turn
    }
}

/// Whether `text` (lowercase) holds any phrase as whole words (or as a substring, for Chinese).
fn contains_any(text: &str, phrases: &[String]) -> bool {
    let words: Vec<&str> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    phrases.iter().any(|phrase| {
        let phrase = phrase.to_lowercase();
        if !phrase.is_ascii() {
            return text.contains(&phrase);
        }
        let needle: Vec<&str> = phrase.split_whitespace().collect();
        !needle.is_empty() && words.windows(needle.len()).any(|w| w == needle.as_slice())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialogue() -> BasicDialogue {
        let text = include_str!("../../assets/basic_dialogue.toml");
        let factory =
            BasicFactory::parse(text, "basic_dialogue.toml", Language::En).expect("script parses");
        BasicDialogue {
            script: factory.script,
        }
    }

    fn say(d: &mut BasicDialogue, text: &str) -> BotTurn {
        d.handle(&CallerInput::Speech {
            text: text.into(),
            level_vs_baseline_db: 0.0,
        })
    }

    #[test]
    fn asking_for_a_human_transfers() {
        let turn = say(&mut dialogue(), "I'd like to speak to customer support");
        assert!(matches!(turn.action, Some(Action::Transfer { .. })));
    }

    #[test]
    fn goodbye_hangs_up_and_faq_answers() {
        let mut d = dialogue();
        assert!(say(&mut d, "what are your opening hours").say[0]
            .text
            .contains("eight"));
        assert!(matches!(
            say(&mut d, "ok goodbye").action,
            Some(Action::Hangup { .. })
        ));
        let miss = say(&mut d, "tell me about penguins");
        assert_eq!(
            miss.knowledge_gap.as_deref(),
            Some("tell me about penguins")
        );
    }

    #[test]
    fn a_bad_script_names_file_and_line() {
        let err = BasicFactory::parse("greeting = 3\n", "x.toml", Language::En)
            .err()
            .expect("invalid");
        assert!(err.to_string().starts_with("x.toml:1:"), "{err}");
    }
}
