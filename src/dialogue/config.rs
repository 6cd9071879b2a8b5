//! The dialogue's own settings: the `[dialogue]` section of the config file (and its
//! `[dialogue.llm]` table).
//!
//! Owns: [`DialogueConfig`], [`DialogueEngineKind`], [`LlmConfig`] and the built-in default
//! flow's name, [`BUILTIN_DEFAULT_FLOW`], with their defaults. `crate::config::Config` holds a
//! [`DialogueConfig`] for `[dialogue]`; the dialogue's constructors take this section (and the
//! call language) rather than the whole config, so the dialogue depends on nothing above it.
//!
//! Invariants: this module depends only on serde and std, so any part of the server may use it
//! without a cycle; every table is `deny_unknown_fields` with every key defaulted, so an empty
//! section means the defaults and a misspelt key is an error naming it. Whether the named
//! folders and flows exist is checked when the dialogue loads (`engine::FlowFactory::load`).

use std::path::PathBuf;

use serde::Deserialize;

/// The default flow when neither `dialogue.default_flow` nor `language` is set (the English
/// demo flow).
pub const BUILTIN_DEFAULT_FLOW: &str = "telecom_en";

/// Which dialogue engine runs calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DialogueEngineKind {
    /// The flow engine: flows, intents, slots, knowledge base, webhooks, escalation.
    #[default]
    Flow,
    /// The minimal greeting/FAQ/goodbye/agent dialogue.
    Basic,
}

/// The dialogue (`[dialogue]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialogueConfig {
    pub engine: DialogueEngineKind,
    /// The minimal dialogue's greeting, FAQ and phrases (`engine = "basic"`).
    pub basic: PathBuf,
    /// Where flow files (`*.toml`) live; changed files are reloaded for new calls.
    pub flows_dir: PathBuf,
    /// Where the knowledge-base files that flows name live.
    pub kb_dir: PathBuf,
    /// The flow a call runs when neither the caller nor the transport chooses one, in `serve`,
    /// `replay` and `chat` alike; the call speaks that flow's language. Not set: the first flow
    /// in `language` if that is set, else [`BUILTIN_DEFAULT_FLOW`]. An unknown name fails
    /// start-up with the valid names.
    pub default_flow: Option<String>,
    /// If set, unanswered caller questions (knowledge gaps) are also appended here as JSON lines.
    pub gaps_file: Option<PathBuf>,
    /// The optional LLM (off by default).
    pub llm: LlmConfig,
}

impl Default for DialogueConfig {
    fn default() -> Self {
        Self {
            engine: DialogueEngineKind::Flow,
            basic: PathBuf::from("assets/basic_dialogue.toml"),
            flows_dir: PathBuf::from("assets/flows"),
            kb_dir: PathBuf::from("assets/kb"),
            default_flow: None,
            gaps_file: None,
            llm: LlmConfig::default(),
        }
    }
}

/// LLM settings (`[dialogue.llm]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// Off by default.
    pub enabled: bool,
    /// The API base, up to and including `/v1`.
    pub base_url: String,
    pub model: String,
    /// The environment variable holding the API key (sent as a bearer token if set).
    pub api_key_env: String,
    /// The bound on one whole request, including the streamed answer.
    pub timeout_ms: u64,
    pub max_tokens: u32,
    /// Also ask the LLM for the intent when the phrase matcher is unsure.
    pub extract_intents: bool,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            base_url: "http://127.0.0.1:11434/v1".into(),
            model: "qwen2.5:3b".into(),
            api_key_env: "HOTLINE_LLM_API_KEY".into(),
            timeout_ms: 5_000,
            max_tokens: 200,
            extract_intents: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_section_is_the_defaults() {
        let config: DialogueConfig = toml::from_str("").expect("empty section");
        assert_eq!(config.engine, DialogueEngineKind::Flow);
        assert_eq!(config.flows_dir, PathBuf::from("assets/flows"));
        assert_eq!(config.llm, LlmConfig::default());
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = toml::from_str::<DialogueConfig>("flow_dir = \"x\"")
            .expect_err("misspelt key")
            .to_string();
        assert!(err.contains("flow_dir"), "{err}");
        let err = toml::from_str::<DialogueConfig>("[llm]\nenable = true")
            .expect_err("misspelt llm key")
            .to_string();
        assert!(err.contains("enable"), "{err}");
    }
}
