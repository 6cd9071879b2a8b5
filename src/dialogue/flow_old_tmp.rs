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

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::nlu::{FeatureMode, IntentDef};
use super::slots::{Checksum, SlotKind, SlotType};
use super::template::{Scope, Template};
use crate::language::Language;

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
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    name: String,
    language: Language,
    start: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    kb: Option<String>,
    #[serde(default = "default_transfer_target")]
    transfer_target: String,
    #[serde(default)]
    nlu: NluSettings,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    escalation: EscalationSettings,
    #[serde(default)]
    prompts: RawPrompts,
    #[serde(default)]
    global: BTreeMap<Spanned<String>, RawGlobal>,
    #[serde(default)]
    intents: BTreeMap<Spanned<String>, RawIntent>,
    #[serde(default)]
    routes: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    webhooks: BTreeMap<Spanned<String>, RawWebhook>,
    nodes: BTreeMap<Spanned<String>, RawNode>,
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
struct RawPrompts {
    no_match: Option<String>,
    no_input: Option<String>,
    did_you_mean: Option<String>,
    confirm_slot: Option<String>,
    slot_rejected: Option<String>,
    reask: Option<String>,
    escalate: Option<String>,
    anything_else: Option<String>,
    webhook_failed: Option<String>,
    llm_unavailable: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGlobal {
    say: Option<String>,
    #[serde(default)]
    repeat: bool,
    #[serde(default)]
    help: bool,
    transfer: Option<RawTransfer>,
    hangup: Option<String>,
    goto: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransfer {
    target: Option<String>,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntent {
    label: Option<String>,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    keywords: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    #[serde(default = "default_method")]
    method: Spanned<String>,
    url: Spanned<String>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    body: Option<Spanned<String>>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    save: BTreeMap<String, String>,
    fallback: Option<Spanned<String>>,
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
struct RawSlot {
    name: String,
    #[serde(rename = "type", default = "default_slot_type")]
    slot_type: SlotType,
    length: Option<usize>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    checksum: Option<Checksum>,
    #[serde(default)]
    confirm: bool,
}

fn default_slot_type() -> SlotType {
    SlotType::Text
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransition {
    intent: Option<Spanned<String>>,
    slot: Option<String>,
    equals: Option<String>,
    when: Option<Spanned<String>>,
    goto: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    say: Option<Spanned<String>>,
    audio: Option<String>,
    #[serde(default)]
    set: BTreeMap<String, Spanned<String>>,
    webhook: Option<Spanned<String>>,
    collect: Option<Collect>,
    slot: Option<Spanned<RawSlot>>,
    #[serde(default)]
    on_intent: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    dtmf: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    transitions: Vec<RawTransition>,
    next: Option<Spanned<String>>,
    transfer: Option<RawTransfer>,
    hangup: Option<String>,
    #[serde(default)]
    no_match: Vec<Spanned<String>>,
    #[serde(default)]
    no_input: Vec<Spanned<String>>,
    max_no_match: Option<u32>,
    max_no_input: Option<u32>,
    on_max: Option<Spanned<String>>,
    help: Option<Spanned<String>>,
    kb: Option<bool>,
}

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
}

/// A condition over call variables: all clauses must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub clauses: Vec<Clause>,
}

/// One test of a variable.
#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    Equals(String, String),
    NotEquals(String, String),
    IsSet(String),
    IsUnset(String),
}

impl Condition {
    /// Parses `a == b && c != 'd' && e && !f`.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut clauses = Vec::new();
        for part in source.split("&&") {
            let part = part.trim();
            let unquote = |s: &str| s.trim().trim_matches(|c| c == '\'' || c == '"').to_string();
            let var_ok = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
            };
            let clause = if let Some((l, r)) = part.split_once("!=") {
                Clause::NotEquals(l.trim().to_string(), unquote(r))
            } else if let Some((l, r)) = part.split_once("==") {
                Clause::Equals(l.trim().to_string(), unquote(r))
            } else if let Some(v) = part.strip_prefix('!') {
                Clause::IsUnset(v.trim().to_string())
            } else {
                Clause::IsSet(part.to_string())
            };
            let var = match &clause {
                Clause::Equals(v, _)
                | Clause::NotEquals(v, _)
                | Clause::IsSet(v)
                | Clause::IsUnset(v) => v,
            };
            if !var_ok(var) {
                return Err(format!(
                    "bad condition {source:?}: expected `variable == value`, `variable != value`, \
                     `variable` or `!variable`, joined by `&&`"
                ));
            }
            clauses.push(clause);
        }
        Ok(Self { clauses })
    }

    /// Evaluates against call variables (an unset variable is the empty string).
    pub fn holds(&self, vars: &BTreeMap<String, String>) -> bool {
        let get = |v: &str| vars.get(v).map(String::as_str).unwrap_or("");
        self.clauses.iter().all(|c| match c {
            Clause::Equals(v, x) => get(v) == x,
            Clause::NotEquals(v, x) => get(v) != x,
            Clause::IsSet(v) => !get(v).is_empty(),
            Clause::IsUnset(v) => get(v).is_empty(),
        })
    }
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

/// Places errors in one file.
struct Placer<'a> {
    file: &'a str,
    text: &'a str,
}

impl Placer<'_> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }
    fn at(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> FlowError {
        FlowError::Invalid {
            file: self.file.to_string(),
            line: self.line(span),
            message: message.into(),
        }
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

fn prompt(p: &Placer, s: &Spanned<String>) -> Result<Template, FlowError> {
    Template::parse(s.get_ref(), Scope::Prompt).map_err(|m| p.at(s.span(), m))
}

fn request(p: &Placer, s: &Spanned<String>) -> Result<Template, FlowError> {
    Template::parse(s.get_ref(), Scope::Request).map_err(|m| p.at(s.span(), m))
}

fn fixed(text: &str) -> Template {
    Template::parse(text, Scope::Prompt).expect("built-in prompts are valid templates")
}

fn default_prompts(language: Language) -> [&'static str; 10] {
    match language {
        Language::En => [
            "Sorry, I didn't catch that.",
            "Are you still there?",
            "Did you mean ${intent_label}?",
            "I heard ${slot_spoken}. Is that right?",
            "Sorry, that doesn't look right: ${slot_problem}.",
            "Sorry about that. Let's try again.",
            "Let me put you through to someone who can help.",
            "Is there anything else I can help you with?",
            "Sorry, that system isn't answering right now.",
            "Sorry, I can't look that up right now.",
        ],
        Language::Zh => [
            "抱歉，我没有听清楚。",
            "您还在吗？",
            "您是想${intent_label}吗？",
            "我听到的是${slot_spoken}，对吗？",
            "抱歉，这个号码好像不对：${slot_problem}。",
            "好的，我们再试一次。",
            "我为您转接人工客服。",
            "还有什么可以帮您的吗？",
            "抱歉，系统暂时无法响应。",
            "抱歉，暂时无法查询。",
        ],
    }
}

fn compile(raw: RawFlow, p: &Placer) -> Result<Flow, FlowError> {
    let node_names: Vec<String> = raw.nodes.keys().map(|k| k.get_ref().clone()).collect();
    let intent_names: Vec<String> = raw.intents.keys().map(|k| k.get_ref().clone()).collect();
    let known_intent =
        |n: &str| intent_names.iter().any(|i| i == n) || BUILTIN_INTENTS.contains(&n);
    let check_node = |s: &Spanned<String>, what: &str| -> Result<String, FlowError> {
        if node_names.iter().any(|n| n == s.get_ref()) {
            Ok(s.get_ref().clone())
        } else {
            Err(p.at(
                s.span(),
                format!(
                    "{what} names node {:?}, which does not exist (expected one of: {})",
                    s.get_ref(),
                    node_names.join(", ")
                ),
            ))
        }
    };
    let check_intent = |s: &Spanned<String>, what: &str| -> Result<String, FlowError> {
        if known_intent(s.get_ref()) {
            Ok(s.get_ref().clone())
        } else {
            Err(p.at(
                s.span(),
                format!(
                    "{what} names intent {:?}, which is not defined under [intents] \
                     (expected one of: {})",
                    s.get_ref(),
                    intent_names.join(", ")
                ),
            ))
        }
    };

    let start = check_node(&raw.start, "`start`")?;
    if !(0.0..=1.0).contains(&raw.nlu.accept)
        || !(0.0..=1.0).contains(&raw.nlu.confirm)
        || raw.nlu.confirm > raw.nlu.accept
    {
        return Err(p.at(
            0..0,
            "[nlu]: expected 0 <= confirm <= accept <= 1".to_string(),
        ));
    }

    let d = default_prompts(raw.language);
    let pick = |given: &Option<String>, default: &str| -> Result<Template, FlowError> {
        match given {
            Some(s) => {
                Template::parse(s, Scope::Prompt).map_err(|m| p.at(0..0, format!("[prompts]: {m}")))
            }
            None => Ok(fixed(default)),
        }
    };
    let rp = &raw.prompts;
    let prompts = FlowPrompts {
        no_match: pick(&rp.no_match, d[0])?,
        no_input: pick(&rp.no_input, d[1])?,
        did_you_mean: pick(&rp.did_you_mean, d[2])?,
        confirm_slot: pick(&rp.confirm_slot, d[3])?,
        slot_rejected: pick(&rp.slot_rejected, d[4])?,
        reask: pick(&rp.reask, d[5])?,
        escalate: pick(&rp.escalate, d[6])?,
        anything_else: pick(&rp.anything_else, d[7])?,
        webhook_failed: pick(&rp.webhook_failed, d[8])?,
        llm_unavailable: pick(&rp.llm_unavailable, d[9])?,
    };

    let mut intents = Vec::new();
    let mut intent_labels = BTreeMap::new();
    for (name, intent) in &raw.intents {
        if intent.examples.is_empty() && intent.keywords.is_empty() {
            return Err(p.at(
                name.span(),
                format!(
                    "intent {:?}: expected `examples` or `keywords`",
                    name.get_ref()
                ),
            ));
        }
        intents.push(IntentDef {
            name: name.get_ref().clone(),
            examples: intent.examples.clone(),
            keywords: intent.keywords.clone(),
        });
        intent_labels.insert(
            name.get_ref().clone(),
            intent
                .label
                .clone()
                .unwrap_or_else(|| name.get_ref().replace('_', " ")),
        );
    }

    let mut global = BTreeMap::new();
    for (name, g) in raw.global {
        check_intent(&name, "[global]")?;
        if let Some(goto) = &g.goto {
            check_node(goto, "`goto`")?;
        }
        let acts = g.repeat as u8
            + g.help as u8
            + g.transfer.is_some() as u8
            + g.hangup.is_some() as u8
            + g.goto.is_some() as u8;
        if acts == 0 && g.say.is_none() {
            return Err(p.at(
                name.span(),
                format!(
                    "global intent {:?}: expected one of `say`, `repeat`, `help`, `transfer`, \
                     `hangup`, `goto`",
                    name.get_ref()
                ),
            ));
        }
        let say = match &g.say {
            Some(s) => Some(Template::parse(s, Scope::Prompt).map_err(|m| p.at(name.span(), m))?),
            None => None,
        };
        global.insert(
            name.get_ref().clone(),
            GlobalIntent {
                say,
                repeat: g.repeat,
                help: g.help,
                transfer: g.transfer.map(|t| Transfer {
                    target: t.target.unwrap_or_else(|| raw.transfer_target.clone()),
                    reason: t.reason,
                }),
                hangup: g.hangup,
                goto: g.goto.map(|s| s.into_inner()),
            },
        );
    }

    let mut routes = BTreeMap::new();
    for (intent, node) in &raw.routes {
        check_intent(intent, "[routes]")?;
        routes.insert(intent.get_ref().clone(), check_node(node, "[routes]")?);
    }

    let mut webhooks = BTreeMap::new();
    for (name, w) in &raw.webhooks {
        let method = w.method.get_ref().to_ascii_uppercase();
        if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
            return Err(p.at(
                w.method.span(),
                format!(
                    "webhook method {:?}: expected GET, POST, PUT, PATCH or DELETE",
                    method
                ),
            ));
        }
        if w.timeout_ms == 0 || w.timeout_ms > 60_000 {
            return Err(p.at(name.span(), "webhook `timeout_ms`: expected 1..=60000"));
        }
        let url = request(p, &w.url)?;
        if !(w.url.get_ref().starts_with("http://")
            || w.url.get_ref().starts_with("https://")
            || w.url.get_ref().starts_with("${"))
        {
            return Err(p.at(
                w.url.span(),
                "webhook `url`: expected an http:// or https:// URL",
            ));
        }
        let mut headers = Vec::new();
        for (k, v) in &w.headers {
            headers.push((k.clone(), request(p, v)?));
        }
        webhooks.insert(
            name.get_ref().clone(),
            Webhook {
                name: name.get_ref().clone(),
                method,
                url,
                headers,
                body: w.body.as_ref().map(|b| request(p, b)).transpose()?,
                timeout_ms: w.timeout_ms,
                save: w.save.clone(),
                fallback: w.fallback.as_ref().map(|f| prompt(p, f)).transpose()?,
            },
        );
    }

    let mut nodes = BTreeMap::new();
    for (name, n) in raw.nodes {
        let here = name.span();
        let node_name = name.get_ref().clone();
        let webhook = match &n.webhook {
            Some(w) if !webhooks.contains_key(w.get_ref()) => {
                return Err(p.at(
                    w.span(),
                    format!(
                        "node {node_name:?}: webhook {:?} is not defined under [webhooks]",
                        w.get_ref()
                    ),
                ))
            }
            Some(w) => Some(w.get_ref().clone()),
            None => None,
        };
        let slot = match &n.slot {
            Some(s) => {
                let r = s.get_ref();
                if r.name.is_empty() || !r.name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return Err(p.at(s.span(), "slot `name`: expected letters, digits and `_`"));
                }
                if let (Some(lo), Some(hi)) = (r.min_length, r.max_length) {
                    if lo > hi {
                        return Err(p.at(s.span(), "slot: expected min_length <= max_length"));
                    }
                }
                Some(SlotSpec {
                    name: r.name.clone(),
                    kind: SlotKind {
                        slot_type: r.slot_type,
                        length: r.length,
                        min_length: r.min_length,
                        max_length: r.max_length,
                        checksum: r.checksum,
                    },
                    confirm: r.confirm,
                })
            }
            None => None,
        };
        match (n.collect, &slot) {
            (Some(Collect::Slot | Collect::Dtmf | Collect::Text), None) => {
                return Err(p.at(
                    here,
                    format!(
                        "node {node_name:?} collects a {:?}: expected a `slot = {{ name = ..., \
                         type = ... }}`",
                        n.collect.map(|c| format!("{c:?}").to_lowercase()).unwrap_or_default()
                    ),
                ))
            }
            (Some(Collect::Dtmf), Some(s))
                if !matches!(s.kind.slot_type, SlotType::Digits | SlotType::Id | SlotType::Phone) =>
            {
                return Err(p.at(
                    here,
                    format!("node {node_name:?}: `collect = \"dtmf\"` expects a slot of type digits, id or phone"),
                ))
            }
            _ => {}
        }
        let mut on_intent = BTreeMap::new();
        for (intent, target) in &n.on_intent {
            check_intent(intent, &format!("node {node_name:?} `on_intent`"))?;
            on_intent.insert(intent.get_ref().clone(), check_node(target, "`on_intent`")?);
        }
        let mut dtmf = BTreeMap::new();
        for (key, intent) in &n.dtmf {
            let mut chars = key.get_ref().chars();
            let digit = match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => c,
                _ => {
                    return Err(p.at(
                        key.span(),
                        format!("dtmf key {:?}: expected one of 0-9, * or #", key.get_ref()),
                    ))
                }
            };
            dtmf.insert(
                digit,
                check_intent(intent, &format!("node {node_name:?} `dtmf`"))?,
            );
        }
        let mut transitions = Vec::new();
        for t in &n.transitions {
            let when = match &t.when {
                Some(w) => Some(Condition::parse(w.get_ref()).map_err(|m| p.at(w.span(), m))?),
                None => None,
            };
            transitions.push(Transition {
                intent: t
                    .intent
                    .as_ref()
                    .map(|i| check_intent(i, "transition `intent`"))
                    .transpose()?,
                slot: t.slot.clone(),
                equals: t.equals.clone(),
                when,
                goto: check_node(&t.goto, "transition `goto`")?,
            });
        }
        let next = n
            .next
            .as_ref()
            .map(|s| check_node(s, "`next`"))
            .transpose()?;
        let on_max = match &n.on_max {
            None => OnMax::Escalate,
            Some(s) if s.get_ref() == "escalate" => OnMax::Escalate,
            Some(s) if s.get_ref() == "hangup" => OnMax::Hangup,
            Some(s) => OnMax::Goto(check_node(s, "`on_max` (or \"escalate\" / \"hangup\")")?),
        };
        let ends = n.transfer.is_some() || n.hangup.is_some();
        if n.collect.is_none() && !ends && next.is_none() && transitions.is_empty() {
            return Err(p.at(
                here,
                format!(
                    "node {node_name:?} is a dead end: expected `collect`, `next`, \
                     `transitions`, `transfer` or `hangup`"
                ),
            ));
        }
        if n.collect.is_none()
            && !ends
            && next.is_none()
            && transitions.iter().any(|t| t.when.is_none())
        {
            // Fine: an unconditional transition is the way on.
        }
        if n.collect == Some(Collect::Intent)
            && on_intent.is_empty()
            && dtmf.is_empty()
            && !transitions.iter().any(|t| t.intent.is_some())
            && routes.is_empty()
        {
            return Err(p.at(
                here,
                format!(
                    "node {node_name:?} collects an intent but routes none: expected \
                     `on_intent`, `dtmf`, intent `transitions` or flow-level [routes]"
                ),
            ));
        }
        let set = n
            .set
            .iter()
            .map(|(k, v)| Ok((k.clone(), prompt(p, v)?)))
            .collect::<Result<Vec<_>, FlowError>>()?;
        nodes.insert(
            node_name.clone(),
            Node {
                name: node_name,
                say: n.say.as_ref().map(|s| prompt(p, s)).transpose()?,
                audio: n.audio.clone(),
                set,
                webhook,
                collect: n.collect,
                kb: n.kb.unwrap_or(n.collect == Some(Collect::Intent)),
                slot,
                on_intent,
                dtmf,
                transitions,
                next,
                transfer: n.transfer.map(|t| Transfer {
                    target: t.target.unwrap_or_else(|| raw.transfer_target.clone()),
                    reason: t.reason,
                }),
                hangup: n.hangup.clone(),
                no_match: n
                    .no_match
                    .iter()
                    .map(|s| prompt(p, s))
                    .collect::<Result<_, _>>()?,
                no_input: n
                    .no_input
                    .iter()
                    .map(|s| prompt(p, s))
                    .collect::<Result<_, _>>()?,
                max_no_match: n.max_no_match.unwrap_or(raw.limits.max_no_match),
                max_no_input: n.max_no_input.unwrap_or(raw.limits.max_no_input),
                on_max,
                help: n.help.as_ref().map(|s| prompt(p, s)).transpose()?,
            },
        );
    }

    Ok(Flow {
        name: raw.name,
        language: raw.language,
        description: raw.description,
        start,
        kb: raw.kb,
        transfer_target: raw.transfer_target,
        nlu: raw.nlu,
        limits: raw.limits,
        escalation: raw.escalation,
        prompts,
        global,
        intents,
        intent_labels,
        routes,
        webhooks,
        nodes,
    })
}

#[cfg(test)]
mod tests_old {
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
