//! Flows as data: the TOML schema of `assets/flows/*.toml`, its validation, and the compiled
//! [`Flow`] the engine runs.
//!
//! A flow is a graph of named nodes. A node may say a prompt, set variables, call a webhook,
//! collect something from the caller (an intent, a slot, DTMF keys or free text), and then move
//! on by intent, slot value or condition, or end the call with a transfer or a hang-up. Global
//! intents (help, repeat, human, goodbye) work from any node; `routes` send an intent to a node
//! from anywhere. The schema is documented by `assets/flows/README.md` and the demo flows.
//!
//! Invariants of a [`Flow`] (checked by [`Flow::parse`], so the engine never meets a dangling
//! name): every node, intent and webhook a flow names exists; every template and condition
//! parses; every node either collects or leads somewhere. Every error carries the file and line
//! and says what was expected.
//!
//! Layout: this file owns the compiled types and the entry points ([`Flow::load`],
//! [`Flow::parse`]); `schema` the file as written; `compile` the validation, in named steps;
//! `condition` the `when` conditions.

mod compile;
mod condition;
mod schema;

pub use condition::{Clause, Condition};
pub use schema::{Collect, EscalationSettings, Limits, NluSettings};

use std::collections::BTreeMap;
use std::path::Path;

use super::nlu::IntentDef;
use super::slots::SlotKind;
use super::template::Template;
use crate::language::Language;

use compile::{compile, Placer};
use schema::RawFlow;

/// A flow file that could not be loaded, placed at file:line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlowError {
    #[error("{file}: cannot read: {message}")]
    Read { file: String, message: String },
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
}

/// The names of intents that are built in (recognized by the yes/no slot parser) when a flow
/// does not define them itself.
pub const BUILTIN_INTENTS: &[&str] = &["yes", "no"];

// ---------------------------------------------------------------------------------------------
// The compiled flow.

/// A compiled, validated flow.
#[derive(Debug, Clone)]
pub struct Flow {
    pub name: String,
    pub language: Language,
    pub description: String,
    pub start: String,
    /// The knowledge-base file (in the kb folder), if any.
    pub kb: Option<String>,
    pub transfer_target: String,
    /// What the bot says after a transfer nobody took, following its own word on what
    /// happened (`[prompts] transfer_failed`, plain text; `None`: "how else can I help?").
    pub transfer_failed: Option<String>,
    /// Whether a call on this flow keeps `recording.wav` (events and transcript are kept
    /// either way).
    pub record_audio: bool,
    pub nlu: NluSettings,
    pub limits: Limits,
    pub escalation: EscalationSettings,
    pub prompts: FlowPrompts,
    pub global: BTreeMap<String, GlobalIntent>,
    pub intents: Vec<IntentDef>,
    /// Human-readable intent names for "Did you mean ...?".
    pub intent_labels: BTreeMap<String, String>,
    pub routes: BTreeMap<String, String>,
    pub webhooks: BTreeMap<String, Webhook>,
    pub nodes: BTreeMap<String, Node>,
}

/// The engine's own phrases, per flow (so that each flow speaks its language).
#[derive(Debug, Clone)]
pub struct FlowPrompts {
    pub no_match: Template,
    pub no_input: Template,
    pub did_you_mean: Template,
    pub confirm_slot: Template,
    pub slot_rejected: Template,
    pub reask: Template,
    pub escalate: Template,
    pub anything_else: Template,
    pub webhook_failed: Template,
    pub llm_unavailable: Template,
}

/// What a global intent does.
#[derive(Debug, Clone)]
pub struct GlobalIntent {
    pub say: Option<Template>,
    pub repeat: bool,
    pub help: bool,
    pub transfer: Option<Transfer>,
    pub hangup: Option<String>,
    pub goto: Option<String>,
}

/// A transfer: where to and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    pub target: String,
    pub reason: String,
}

/// A webhook to a business system.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub name: String,
    pub method: String,
    pub url: Template,
    pub headers: Vec<(String, Template)>,
    pub body: Option<Template>,
    pub timeout_ms: u64,
    /// Variable name → dotted path into the JSON response.
    pub save: BTreeMap<String, String>,
    /// Said when the system is slow or down.
    pub fallback: Option<Template>,
}

/// A slot a node collects.
#[derive(Debug, Clone)]
pub struct SlotSpec {
    pub name: String,
    pub kind: SlotKind,
    /// Read the value back and ask the caller to confirm it.
    pub confirm: bool,
    /// Personal data (an account number, a name): records keep it masked.
    pub sensitive: bool,
}

/// One transition out of a node: every given criterion must hold.
#[derive(Debug, Clone)]
pub struct Transition {
    pub intent: Option<String>,
    pub slot: Option<String>,
    pub equals: Option<String>,
    pub when: Option<Condition>,
    pub goto: String,
}

/// What happens after a node's retries run out.
#[derive(Debug, Clone, PartialEq)]
pub enum OnMax {
    /// Transfer to a human (the default).
    Escalate,
    /// End the call.
    Hangup,
    /// Go to a node.
    Goto(String),
}

/// A compiled node.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub say: Option<Template>,
    pub audio: Option<String>,
    /// Whether the caller may interrupt this node's prompt.
    pub barge_in: bool,
    pub set: Vec<(String, Template)>,
    pub webhook: Option<String>,
    pub collect: Option<Collect>,
    pub slot: Option<SlotSpec>,
    pub on_intent: BTreeMap<String, String>,
    /// DTMF key → intent.
    pub dtmf: BTreeMap<char, String>,
    pub transitions: Vec<Transition>,
    pub next: Option<String>,
    pub transfer: Option<Transfer>,
    pub hangup: Option<String>,
    pub no_match: Vec<Template>,
    pub no_input: Vec<Template>,
    pub max_no_match: u32,
    pub max_no_input: u32,
    pub on_max: OnMax,
    pub help: Option<Template>,
    /// Whether FAQ answers from the knowledge base are given at this node.
    pub kb: bool,
}

impl Node {
    /// The intents this node routes on (its own, its transitions', its DTMF menu's).
    pub fn expected_intents(&self) -> Vec<String> {
        let mut out: Vec<String> = self.on_intent.keys().cloned().collect();
        out.extend(self.transitions.iter().filter_map(|t| t.intent.clone()));
        out.extend(self.dtmf.values().cloned());
        out.sort();
        out.dedup();
        out
    }
}

impl Flow {
    /// Loads and validates a flow file.
    pub fn load(path: &Path) -> Result<Self, FlowError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| FlowError::Read {
            file: file.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &file)
    }

    /// Parses and validates flow text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, FlowError> {
        let p = Placer { file, text };
        let raw: RawFlow = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            p.at(span, e.message().trim().to_string())
        })?;
        compile(raw, &p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
language = "en"
start = "menu"

[intents.bill]
examples = ["my bill"]

[nodes.menu]
say = "Hi"
collect = "intent"
on_intent = { bill = "bye" }

[nodes.bye]
say = "Bye"
hangup = "done"
"#;

    #[test]
    fn minimal_flow_loads() {
        let flow = Flow::parse(MINIMAL, "t.toml").expect("valid flow");
        assert_eq!(flow.start, "menu");
        assert_eq!(flow.nodes["menu"].on_intent["bill"], "bye");
    }

    #[test]
    fn dangling_node_is_placed() {
        let bad = MINIMAL.replace(
            "on_intent = { bill = \"bye\" }",
            "on_intent = { bill = \"byee\" }",
        );
        let err = Flow::parse(&bad, "t.toml").expect_err("dangling");
        let text = err.to_string();
        assert!(text.starts_with("t.toml:12:"), "{text}");
        assert!(
            text.contains("byee") && text.contains("expected one of"),
            "{text}"
        );
    }

    #[test]
    fn unknown_field_is_placed() {
        let bad = MINIMAL.replace("say = \"Bye\"", "sya = \"Bye\"");
        let text = Flow::parse(&bad, "t.toml")
            .expect_err("unknown field")
            .to_string();
        assert!(
            text.starts_with("t.toml:15:") && text.contains("sya"),
            "{text}"
        );
    }

    #[test]
    fn conditions() {
        let c = Condition::parse("a == ok && !b").expect("valid");
        let mut vars = BTreeMap::new();
        vars.insert("a".to_string(), "ok".to_string());
        assert!(c.holds(&vars));
        vars.insert("b".to_string(), "x".to_string());
        assert!(!c.holds(&vars));
        assert!(Condition::parse("a b == c").is_err());
    }
}
