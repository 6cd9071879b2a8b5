//! The flow file as written: the TOML schema of `assets/flows/*.toml`.
//!
//! Owns: the serde types a flow file is read into (`RawFlow` and its parts) with their
//! defaults, and the settings that pass into the compiled [`Flow`](super::Flow) unchanged
//! ([`NluSettings`], [`Limits`], [`EscalationSettings`], [`Collect`]).
//!
//! Invariants: every table is `deny_unknown_fields`, so a misspelt key is an error placed at
//! its line; names that other parts refer to are kept `Spanned`, so that the compiler can place
//! a dangling one. Nothing here is checked beyond its type: that is `compile`'s work.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::dialogue::nlu::FeatureMode;
use crate::dialogue::slots::{Checksum, SlotType};
use crate::language::Language;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlow {
    pub(super) name: String,
    pub(super) language: Language,
    pub(super) start: Spanned<String>,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default)]
    pub(super) kb: Option<String>,
    #[serde(default = "default_transfer_target")]
    pub(super) transfer_target: String,
    #[serde(default = "default_record_audio")]
    pub(super) record_audio: bool,
    #[serde(default)]
    pub(super) nlu: NluSettings,
    #[serde(default)]
    pub(super) limits: Limits,
    #[serde(default)]
    pub(super) escalation: EscalationSettings,
    #[serde(default)]
    pub(super) prompts: RawPrompts,
    #[serde(default)]
    pub(super) global: BTreeMap<Spanned<String>, RawGlobal>,
    #[serde(default)]
    pub(super) intents: BTreeMap<Spanned<String>, RawIntent>,
    #[serde(default)]
    pub(super) routes: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) webhooks: BTreeMap<Spanned<String>, RawWebhook>,
    pub(super) nodes: BTreeMap<Spanned<String>, RawNode>,
}

fn default_transfer_target() -> String {
    "agents".into()
}

/// Intent-matching thresholds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NluSettings {
    /// At or above this confidence an intent is taken.
    pub accept: f32,
    /// Between this and `accept` the bot asks "Did you mean ...?".
    pub confirm: f32,
    /// Knowledge-base answers need at least this confidence.
    pub kb_accept: f32,
    /// Features used for matching.
    pub features: FeatureMode,
}

impl Default for NluSettings {
    fn default() -> Self {
        Self {
            accept: 0.55,
            confirm: 0.35,
            kb_accept: 0.5,
            features: FeatureMode::Hybrid,
        }
    }
}

/// Per-node retry limits (a node may override them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_no_match: u32,
    pub max_no_input: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_no_match: 2,
            max_no_input: 2,
        }
    }
}

/// When the call is handed to a human without being asked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationSettings {
    /// Frustration-lexicon hits, summed over the call, that trigger a transfer (0 = off).
    pub frustration_hits: u32,
    /// An utterance this many dB above the caller's own baseline counts as shouting.
    pub shouting_db: f32,
    /// Shouted turns that trigger a transfer (0 = off).
    pub shouting_turns: u32,
    /// No-matches over the whole call that trigger a transfer (0 = off).
    pub no_match_total: u32,
    /// Phrases that always mean "give me a person".
    pub explicit: Vec<String>,
    /// Extra frustration words for this flow (added to the built-in lexicon).
    pub frustration_words: Vec<String>,
}

impl Default for EscalationSettings {
    fn default() -> Self {
        Self {
            frustration_hits: 2,
            shouting_db: 12.0,
            shouting_turns: 2,
            no_match_total: 5,
            explicit: Vec::new(),
            frustration_words: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrompts {
    pub(super) no_match: Option<String>,
    pub(super) no_input: Option<String>,
    pub(super) did_you_mean: Option<String>,
    pub(super) confirm_slot: Option<String>,
    pub(super) slot_rejected: Option<String>,
    pub(super) reask: Option<String>,
    pub(super) escalate: Option<String>,
    pub(super) anything_else: Option<String>,
    pub(super) webhook_failed: Option<String>,
    pub(super) llm_unavailable: Option<String>,
    pub(super) transfer_failed: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGlobal {
    pub(super) say: Option<String>,
    #[serde(default)]
    pub(super) repeat: bool,
    #[serde(default)]
    pub(super) help: bool,
    pub(super) transfer: Option<RawTransfer>,
    pub(super) hangup: Option<String>,
    pub(super) goto: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTransfer {
    pub(super) target: Option<String>,
    pub(super) reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIntent {
    pub(super) label: Option<String>,
    #[serde(default)]
    pub(super) examples: Vec<String>,
    #[serde(default)]
    pub(super) keywords: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    #[serde(default = "default_method")]
    pub(super) method: Spanned<String>,
    pub(super) url: Spanned<String>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, Spanned<String>>,
    pub(super) body: Option<Spanned<String>>,
    #[serde(default = "default_timeout_ms")]
    pub(super) timeout_ms: u64,
    #[serde(default)]
    pub(super) save: BTreeMap<String, String>,
    pub(super) fallback: Option<Spanned<String>>,
}

fn default_method() -> Spanned<String> {
    Spanned::new(0..0, "GET".to_string())
}

fn default_timeout_ms() -> u64 {
    2_000
}

/// What a node collects from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collect {
    /// An intent (with DTMF menu keys, FAQ answers and global intents).
    Intent,
    /// A typed slot, spoken or keyed.
    Slot,
    /// Keys only.
    Dtmf,
    /// Free text into a variable.
    Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlot {
    pub(super) name: String,
    #[serde(rename = "type", default = "default_slot_type")]
    pub(super) slot_type: SlotType,
    pub(super) length: Option<usize>,
    pub(super) min_length: Option<usize>,
    pub(super) max_length: Option<usize>,
    pub(super) checksum: Option<Checksum>,
    #[serde(default)]
    pub(super) confirm: bool,
    #[serde(default)]
    pub(super) sensitive: bool,
}

fn default_record_audio() -> bool {
    true
}

fn default_slot_type() -> SlotType {
    SlotType::Text
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTransition {
    pub(super) intent: Option<Spanned<String>>,
    pub(super) slot: Option<String>,
    pub(super) equals: Option<String>,
    pub(super) when: Option<Spanned<String>>,
    pub(super) goto: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) say: Option<Spanned<String>>,
    pub(super) audio: Option<String>,
    #[serde(default)]
    pub(super) set: BTreeMap<String, Spanned<String>>,
    pub(super) webhook: Option<Spanned<String>>,
    pub(super) collect: Option<Collect>,
    pub(super) slot: Option<Spanned<RawSlot>>,
    #[serde(default)]
    pub(super) on_intent: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) dtmf: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) transitions: Vec<RawTransition>,
    pub(super) next: Option<Spanned<String>>,
    pub(super) transfer: Option<RawTransfer>,
    pub(super) hangup: Option<String>,
    #[serde(default)]
    pub(super) no_match: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) no_input: Vec<Spanned<String>>,
    pub(super) max_no_match: Option<u32>,
    pub(super) max_no_input: Option<u32>,
    pub(super) on_max: Option<Spanned<String>>,
    pub(super) help: Option<Spanned<String>>,
    pub(super) kb: Option<bool>,
    /// Whether the caller may interrupt this node's prompt (default true; `false` for a legal
    /// notice that must be heard whole).
    #[serde(default = "default_barge_in")]
    pub(super) barge_in: bool,
}

fn default_barge_in() -> bool {
    true
}
