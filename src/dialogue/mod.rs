//! The dialogue: what the bot says and does in answer to the caller.
//!
//! A [`Dialogue`] is one call's conversation state. It is driven by [`CallerInput`]s and answers
//! each with a [`BotTurn`]. It runs in a worker, off the media path, so it may block (webhooks).
//! [`basic::BasicDialogue`] is the minimal greeting/FAQ/goodbye/agent dialogue; the flow engine
//! ([`engine::FlowDialogue`], flows as data in `assets/flows/`) is the default and implements the
//! same trait. Its parts: [`flow`] (the schema and its validation), [`nlu`] (intents), [`slots`],
//! [`kb`] (FAQ retrieval), [`webhook`], [`escalation`], [`llm`] (optional), [`template`],
//! [`text`] (normalization) and [`demo`] (the demo business systems hotline serves itself).

pub mod basic;
pub mod demo;
pub mod engine;
pub mod escalation;
pub mod flow;
pub mod kb;
pub mod llm;
pub mod nlu;
pub mod slots;
pub mod template;
pub mod text;
pub mod webhook;

pub use demo::demo_router;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::asr::Grammar;
use crate::language::Language;

/// What the caller did, as the dialogue sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum CallerInput {
    /// The call was answered; the dialogue greets.
    Start,
    /// The caller said something (the final transcript; may be empty if nothing was understood).
    Speech {
        text: String,
        /// The utterance's loudness against the caller's own earlier turns, in dB (0 for the
        /// first turn); a high value means shouting.
        level_vs_baseline_db: f32,
    },
    /// The caller pressed a key.
    Dtmf { digit: char },
    /// The caller said nothing for the no-input timeout after the bot finished.
    NoInput,
}

/// One thing for the bot to say: text for TTS, or a recorded prompt file with its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// The words, for TTS, records and transcripts.
    pub text: String,
    /// A recorded prompt (WAV, relative to `assets/prompts/` or absolute) played instead of TTS.
    pub audio_file: Option<String>,
}

impl Prompt {
    /// A prompt spoken by TTS.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            audio_file: None,
        }
    }
}

/// What the call does after the bot has finished speaking.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Hand the call to a human line or agent.
    Transfer { target: String, reason: String },
    /// End the call.
    Hangup { reason: String },
}

/// A matched intent with its confidence (0..1).
#[derive(Debug, Clone, PartialEq)]
pub struct IntentMatch {
    pub name: String,
    pub confidence: f32,
}

/// The bot's answer to one caller input.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BotTurn {
    /// The intent matched, if any.
    pub intent: Option<IntentMatch>,
    /// Slots filled by this input: (name, value).
    pub slots: Vec<(String, String)>,
    /// What to say, in order.
    pub say: Vec<Prompt>,
    /// What to do after speaking.
    pub action: Option<Action>,
    /// A grammar that constrains the recognizer for the caller's next answer.
    pub expect: Option<Grammar>,
    /// The language to speak and hear from now on, if it changes.
    pub language: Option<Language>,
    /// Caller words the bot could not answer, logged as a knowledge gap.
    pub knowledge_gap: Option<String>,
}

/// One call's conversation.
pub trait Dialogue: Send {
    /// Answers one caller input.
    fn handle(&mut self, input: &CallerInput) -> BotTurn;

    /// Answers one caller input, giving each prompt to `on_prompt` as soon as it is ready (an
    /// LLM answer streams sentence by sentence), so that speech can start before the turn is
    /// complete. The returned turn still lists every prompt, for the record; a caller that
    /// spoke them from `on_prompt` must not speak them again.
    fn handle_streaming(
        &mut self,
        input: &CallerInput,
        on_prompt: &mut dyn FnMut(&Prompt),
    ) -> BotTurn {
        let turn = self.handle(input);
        for prompt in &turn.say {
            on_prompt(prompt);
        }
        turn
    }
}

/// What a dialogue knows about its call when it starts.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The call's language.
    pub language: Language,
    /// The flow the caller chose (web phone) or the transport routed to; `None` for the default.
    pub flow: Option<String>,
    /// Caller context: SIP headers (`from`, `to`, ...), web phone parameters.
    pub vars: BTreeMap<String, String>,
}

/// Makes one [`Dialogue`] per call. Shared by all calls; implementations hold the loaded
/// flows and knowledge bases.
pub trait DialogueFactory: Send + Sync {
    /// A new conversation for one call.
    fn new_dialogue(&self, ctx: &CallContext) -> Box<dyn Dialogue>;
    /// The flows a caller can choose from (name, language), for the web phone.
    fn flows(&self) -> Vec<(String, Language)>;
}

/// A dialogue engine that could not load.
#[derive(Debug, thiserror::Error)]
pub enum DialogueError {
    #[error("{0}")]
    Load(String),
}

/// Builds the configured dialogue engine.
pub fn factory_from_config(
    config: &crate::config::Config,
) -> Result<Arc<dyn DialogueFactory>, DialogueError> {
    match config.dialogue.engine {
        crate::config::DialogueEngineKind::Flow => {
            Ok(Arc::new(engine::FlowFactory::load(&config.dialogue)?))
        }
        crate::config::DialogueEngineKind::Basic => Ok(Arc::new(basic::BasicFactory::load(
            &config.dialogue.basic,
            config.language,
        )?)),
    }
}
