//! The dialogue: what the bot says and does in answer to the caller.
//!
//! A [`Dialogue`] is one call's conversation state. It is driven by [`CallerInput`]s and answers
//! each with a [`BotTurn`]. It runs in a worker, off the media path, so it may block (webhooks).
//! [`basic::BasicDialogue`] is the minimal greeting/FAQ/goodbye/agent dialogue; the flow engine
//! ([`engine::FlowDialogue`], flows as data in `assets/flows/`) is the default and implements the
//! same trait. Its parts: [`config`] (the `[dialogue]` settings, which depend on nothing above
//! the dialogue), [`flow`] (the schema and its validation), [`nlu`] (intents), [`slots`],
//! [`kb`] (FAQ retrieval), [`webhook`], [`escalation`], [`llm`] (optional), [`template`],
//! [`text`] (normalization) and [`demo`] (the demo business systems hotline serves itself).
//!
//! Which flow a call runs, and so its language, has one owner: [`DialogueFactory::plan`].
//! Every transport of `hotline serve` (through `Engines::start_call`), `hotline replay` and
//! `hotline chat` ask it, and the command line's `--flow` goes through [`plan_flow_arg`].

pub mod basic;
pub mod config;
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

pub use config::{DialogueConfig, DialogueEngineKind};
pub use demo::demo_router;
pub use engine::collects_digits;

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
    /// Which of `slots` the flow marks `sensitive`: records keep them masked.
    pub sensitive_slots: Vec<String>,
    /// The caller's next answer is personal data (the value of a `sensitive` slot the flow now
    /// waits for): records keep none of what they say or key for it.
    pub sensitive_answer: bool,
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
    /// The caller may not interrupt this turn's words (a flow node's `barge_in = false`, for a
    /// legal notice): speech and keys are not acted on while they play.
    pub no_barge_in: bool,
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

/// What a caller, a transport or the command line asked a call to run. Both are optional;
/// [`DialogueFactory::plan`] turns a choice into a [`CallPlan`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowChoice {
    /// A flow name (`hotline chat --flow`, `hotline replay --flow`, `/call flow=`, the web
    /// phone's `flow`), or the path of a flow file in `dialogue.flows_dir` (for flow authors
    /// who have the file at hand; a file elsewhere is refused, since flows run from that folder).
    pub flow: Option<String>,
    /// A language the caller chose without a flow (the web phone's `language`).
    pub language: Option<Language>,
}

impl FlowChoice {
    /// A choice of flow by name (or flow file path), `None` for the default flow.
    pub fn flow(flow: Option<&str>) -> Self {
        Self {
            flow: flow.map(str::to_string),
            language: None,
        }
    }
}

/// Which flow a call runs and the language it starts in, as [`DialogueFactory::plan`]
/// resolved them. Only a factory makes one, so its flow is one the factory knows.
#[derive(Debug, Clone, PartialEq)]
pub struct CallPlan {
    flow: String,
    language: Language,
    record_audio: bool,
    transfer_failed: Option<String>,
}

impl CallPlan {
    /// The flow's name (`basic` for the basic dialogue).
    pub fn flow(&self) -> &str {
        &self.flow
    }

    /// The call's language: the flow's own (for the basic dialogue, the configured one).
    pub fn language(&self) -> Language {
        self.language
    }

    /// Whether the call's record keeps its audio (the flow's `record_audio`, default true).
    pub fn records_audio(&self) -> bool {
        self.record_audio
    }

    /// What the flow has the bot say after a transfer nobody took (its options: try again,
    /// a call back, a message), after the bot's word on what happened.
    pub fn transfer_failed(&self) -> Option<&str> {
        self.transfer_failed.as_deref()
    }
}

/// A [`FlowChoice`] that names nothing this factory can run. The message lists what it can.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlowChoiceError {
    #[error("unknown flow {name:?} (valid flows: {})", known.join(", "))]
    UnknownFlow { name: String, known: Vec<String> },
    #[error(
        "{path:?} is not a flow file in dialogue.flows_dir ({flows_dir}); a flow runs from that \
         folder (copy the file there, or point dialogue.flows_dir at its folder), by name or by \
         its path there (valid flows: {})",
        known.join(", ")
    )]
    NotInFlowsDir {
        path: String,
        flows_dir: String,
        known: Vec<String>,
    },
    #[error("no flow speaks {language} (valid flows: {})", known.join(", "))]
    NoFlowInLanguage {
        language: Language,
        known: Vec<String>,
    },
}

/// What a dialogue knows about its call when it starts.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The flow and language, from [`DialogueFactory::plan`].
    pub plan: CallPlan,
    /// Caller context: SIP headers (`from`, `to`, ...), web phone parameters.
    pub vars: BTreeMap<String, String>,
}

/// Makes one [`Dialogue`] per call. Shared by all calls; implementations hold the loaded
/// flows and knowledge bases.
pub trait DialogueFactory: Send + Sync {
    /// Which flow a call runs, and in which language: the one owner of that rule, asked by
    /// every transport (`serve`), `replay` and `chat`. An empty choice gives the default flow;
    /// a name that is not a flow is an error listing the valid names, never the default.
    fn plan(&self, choice: &FlowChoice) -> Result<CallPlan, FlowChoiceError>;
    /// A new conversation for one call, on the flow its plan names.
    fn new_dialogue(&self, ctx: &CallContext) -> Box<dyn Dialogue>;
    /// The flows a caller can choose from (name, language), for the web phone.
    fn flows(&self) -> Vec<(String, Language)>;
    /// Adds an answer to `flow`'s knowledge base (a question callers asked that it could not
    /// answer), for the calls that start from now on. Returns the file it was written to.
    fn learn(
        &self,
        flow: &str,
        question: &str,
        answer: &str,
    ) -> Result<std::path::PathBuf, kb::LearnError>;
    /// Up to `k` knowledge-base answers for what a caller just said on `flow`, best first,
    /// for the human agent's assist panel. Engines without a knowledge base have none.
    fn suggest(&self, _flow: &str, _words: &str, _k: usize) -> Vec<Suggestion> {
        Vec::new()
    }
}

/// A knowledge-base answer offered to a human agent.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Suggestion {
    pub question: String,
    pub answer: String,
    /// 0 to 1, as the bot's own knowledge-base answers are judged.
    pub confidence: f32,
}

/// A `--flow` (of `hotline chat` or `hotline replay`) that names no flow.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--flow: {0}")]
pub struct FlowArgError(pub FlowChoiceError);

impl From<FlowChoiceError> for FlowArgError {
    fn from(e: FlowChoiceError) -> Self {
        Self(e)
    }
}

/// The plan for the command line's `--flow NAME` (or a flow file's path in the flows folder;
/// `None`: the default flow). `chat` and `replay` both resolve their flag here, with the same
/// rule as any call and the same error.
pub fn plan_flow_arg(
    factory: &dyn DialogueFactory,
    flow: Option<&str>,
) -> Result<CallPlan, FlowArgError> {
    Ok(factory.plan(&FlowChoice::flow(flow))?)
}

/// A dialogue engine that could not load.
#[derive(Debug, thiserror::Error)]
pub enum DialogueError {
    #[error("{0}")]
    Load(String),
}

/// Builds the configured dialogue engine from the `[dialogue]` section and the config's
/// `language` (see `crate::config::Config::language`).
pub fn factory_from_config(
    config: &DialogueConfig,
    language: Option<Language>,
) -> Result<Arc<dyn DialogueFactory>, DialogueError> {
    match config.engine {
        DialogueEngineKind::Flow => Ok(Arc::new(engine::FlowFactory::load(config, language)?)),
        DialogueEngineKind::Basic => Ok(Arc::new(basic::BasicFactory::load(
            &config.basic,
            language.unwrap_or_default(),
        )?)),
    }
}
