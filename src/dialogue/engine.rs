//! The flow engine: runs a [`Flow`] for one call ([`FlowDialogue`]) and keeps the loaded flows
//! fresh for new calls ([`FlowFactory`]).
//!
//! [`FlowDialogue`] is a state machine driven by [`CallerInput`]s. It sits at one node at a time
//! and waits for what that node collects (an intent, a slot, keys, free text) or for a yes/no
//! to a confirmation it asked ("Did you mean ...?", "I heard 4 7 1 2. Is that right?").
//! Escalation triggers, global intents, the knowledge base and the optional LLM are consulted
//! in that order around the node's own handling. Webhooks block the worker thread for at most
//! their timeout. The only clock it reads is none: timeouts arrive as [`CallerInput::NoInput`].
//!
//! [`FlowFactory`] loads every flow under the flows folder at start-up (all must be valid), and
//! before each new call re-checks the files' modification times: a changed flow or knowledge
//! base is reloaded, and if the new version is invalid the old one stays in service and the
//! error is reported. Each call holds an `Arc` of the version it started with, so calls in
//! progress are never disturbed by a reload. It also decides which flow a call runs
//! ([`DialogueFactory::plan`]): a named flow, else one in the caller's language, else the
//! default flow, which [`choose_default_flow`] fixes at load from `dialogue.default_flow` and
//! `language`. Flows are never removed from the catalog, so a plan's flow stays loadable.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::config::{DialogueConfig, BUILTIN_DEFAULT_FLOW};
use super::escalation::{EscalationMonitor, Trigger};
use super::flow::{Collect, Flow, FlowError, GlobalIntent, Node, OnMax, BUILTIN_INTENTS};
use super::kb::{append_entry, KbError, KnowledgeBase, LearnError};
use super::llm::LlmClient;
use super::nlu::IntentMatcher;
use super::slots::{self, SlotProblem, SlotReject, SlotType};
use super::template::Template;
use super::webhook::{self, WebhookOutcome};
use super::{
    Action, BotTurn, CallContext, CallPlan, CallerInput, Dialogue, DialogueError, DialogueFactory,
    FlowChoice, FlowChoiceError, IntentMatch, Prompt,
};
use crate::asr::Grammar;
use crate::language::Language;

/// A flow with its compiled matcher and knowledge base: one immutable version.
#[derive(Debug)]
pub struct LoadedFlow {
    pub flow: Flow,
    pub matcher: IntentMatcher,
    pub kb: Option<KnowledgeBase>,
    /// The files this version was loaded from, for change detection.
    files: Vec<PathBuf>,
}

/// A flow or its knowledge base failed to load.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Flow(#[from] FlowError),
    #[error(transparent)]
    Kb(#[from] KbError),
    #[error("{0}")]
    Other(String),
}

impl LoadedFlow {
    /// Loads a flow file and the knowledge base it names (from `kb_dir`).
    pub fn load(path: &Path, kb_dir: &Path) -> Result<Self, LoadError> {
        let flow = Flow::load(path)?;
        let mut files = vec![path.to_path_buf()];
        let kb = match &flow.kb {
            Some(name) => {
                let kb_path = kb_dir.join(name);
                files.push(kb_path.clone());
                Some(KnowledgeBase::load(&kb_path)?)
            }
            None => None,
        };
        let matcher = IntentMatcher::new(&flow.intents, flow.nlu.features);
        Ok(Self {
            flow,
            matcher,
            kb,
            files,
        })
    }
}

fn fingerprint(files: &[PathBuf]) -> Vec<(Option<SystemTime>, u64)> {
    files
        .iter()
        .map(|f| match std::fs::metadata(f) {
            Ok(m) => (m.modified().ok(), m.len()),
            Err(_) => (None, 0),
        })
        .collect()
}

struct CatalogEntry {
    loaded: Arc<LoadedFlow>,
    fingerprint: Vec<(Option<SystemTime>, u64)>,
}

/// Loads flows and makes one [`FlowDialogue`] per call.
pub struct FlowFactory {
    flows_dir: PathBuf,
    kb_dir: PathBuf,
    default_flow: String,
    llm: Option<LlmClient>,
    gaps_file: Option<PathBuf>,
    /// Flow name → current version; and flow file → flow name.
    catalog: Mutex<(BTreeMap<String, CatalogEntry>, BTreeMap<PathBuf, String>)>,
}

fn flow_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read the flows folder: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

impl FlowFactory {
    /// Loads every flow in the configured folder. Any invalid flow fails start-up, and so does
    /// a default flow that cannot be chosen (see [`choose_default_flow`]). `language` is the
    /// top-level `language` key, if the config sets it.
    pub fn load(
        config: &DialogueConfig,
        language: Option<Language>,
    ) -> Result<Self, DialogueError> {
        let files = flow_files(&config.flows_dir).map_err(DialogueError::Load)?;
        let mut flows = BTreeMap::new();
        let mut by_file = BTreeMap::new();
        for file in files {
            let loaded = LoadedFlow::load(&file, &config.kb_dir)
                .map_err(|e| DialogueError::Load(e.to_string()))?;
            let name = loaded.flow.name.clone();
            if let Some(name_file) = by_file.iter().find(|(_, n)| **n == name).map(|(f, _)| f) {
                let name_file: &PathBuf = name_file;
                return Err(DialogueError::Load(format!(
                    "{}:1: flow name {name:?} is already used by {}",
                    file.display(),
                    name_file.display()
                )));
            }
            let fingerprint = fingerprint(&loaded.files);
            by_file.insert(file, name.clone());
            flows.insert(
                name,
                CatalogEntry {
                    loaded: Arc::new(loaded),
                    fingerprint,
                },
            );
        }
        let default_flow = choose_default_flow(config, language, &flows)?;
        Ok(Self {
            flows_dir: config.flows_dir.clone(),
            kb_dir: config.kb_dir.clone(),
            default_flow,
            llm: config
                .llm
                .enabled
                .then(|| LlmClient::new(config.llm.clone())),
            gaps_file: config.gaps_file.clone(),
            catalog: Mutex::new((flows, by_file)),
        })
    }

    /// Reloads flows whose files changed (and loads new ones). Returns the errors of flows
    /// that failed to reload; those keep their previous version.
    pub fn refresh(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let Ok(files) = flow_files(&self.flows_dir) else {
            return errors;
        };
        let mut guard = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        let (flows, by_file) = &mut *guard;
        for file in files {
            let unchanged = by_file
                .get(&file)
                .and_then(|name| flows.get(name))
                .is_some_and(|e| fingerprint(&e.loaded.files) == e.fingerprint);
            if unchanged {
                continue;
            }
            match LoadedFlow::load(&file, &self.kb_dir) {
                Ok(loaded) => {
                    let name = loaded.flow.name.clone();
                    tracing::info!(flow = %name, file = %file.display(), "flow reloaded");
                    let fingerprint = fingerprint(&loaded.files);
                    by_file.insert(file, name.clone());
                    flows.insert(
                        name,
                        CatalogEntry {
                            loaded: Arc::new(loaded),
                            fingerprint,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "flow reload failed; the previous version stays");
                    // Remember the broken fingerprint so that the error is reported once.
                    if let Some(entry) = by_file.get(&file).and_then(|n| flows.get_mut(n)) {
                        entry.fingerprint = fingerprint(&entry.loaded.files);
                    }
                    errors.push(e.to_string());
                }
            }
        }
        errors
    }

    /// The flow file `path` names, if it is one of the loaded flows' files (compared as
    /// canonical paths, so `./assets/flows/x.toml` and an absolute path both match).
    fn flow_at_path<'c>(
        path: &str,
        flows: &'c BTreeMap<String, CatalogEntry>,
        by_file: &BTreeMap<PathBuf, String>,
    ) -> Option<&'c CatalogEntry> {
        let wanted = std::fs::canonicalize(path).ok()?;
        by_file
            .iter()
            .find(|(file, _)| std::fs::canonicalize(file).ok().as_ref() == Some(&wanted))
            .and_then(|(_, name)| flows.get(name))
    }

    /// The current version of the flow a plan names.
    fn version(&self, plan: &CallPlan) -> Arc<LoadedFlow> {
        let guard = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .0
            .get(plan.flow())
            .map(|e| e.loaded.clone())
            .expect("a plan names a flow this factory loaded, and loaded flows are never removed")
    }

    /// A dialogue on a given flow version.
    pub fn dialogue_for(&self, loaded: Arc<LoadedFlow>, ctx: &CallContext) -> FlowDialogue {
        FlowDialogue::new(loaded, ctx, self.llm.clone(), self.gaps_file.clone())
    }
}

impl DialogueFactory for FlowFactory {
    /// Picks up changed flows first, then: a named flow (or the path of a flow file in the
    /// flows folder) runs as named; a language alone runs the default flow if it speaks that
    /// language, else the first flow (by name) that does; nothing runs the default flow. The
    /// call speaks its flow's language.
    fn plan(&self, choice: &FlowChoice) -> Result<CallPlan, FlowChoiceError> {
        self.refresh();
        let guard = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        let (flows, by_file) = &*guard;
        let known = || flows.keys().cloned().collect::<Vec<_>>();
        let default = flows
            .get(&self.default_flow)
            .expect("the default flow is checked at load and never removed");
        let entry = match (&choice.flow, choice.language) {
            (Some(name), _) => match flows.get(name) {
                Some(entry) => entry,
                None if looks_like_path(name) => Self::flow_at_path(name, flows, by_file)
                    .ok_or_else(|| FlowChoiceError::NotInFlowsDir {
                        path: name.clone(),
                        flows_dir: self.flows_dir.display().to_string(),
                        known: known(),
                    })?,
                None => {
                    return Err(FlowChoiceError::UnknownFlow {
                        name: name.clone(),
                        known: known(),
                    })
                }
            },
            (None, Some(language)) if default.loaded.flow.language != language => flows
                .values()
                .find(|e| e.loaded.flow.language == language)
                .ok_or_else(|| FlowChoiceError::NoFlowInLanguage {
                    language,
                    known: known(),
                })?,
            (None, _) => default,
        };
        Ok(CallPlan {
            flow: entry.loaded.flow.name.clone(),
            language: entry.loaded.flow.language,
            record_audio: entry.loaded.flow.record_audio,
            transfer_failed: entry.loaded.flow.transfer_failed.clone(),
        })
    }

    fn new_dialogue(&self, ctx: &CallContext) -> Box<dyn Dialogue> {
        Box::new(self.dialogue_for(self.version(&ctx.plan), ctx))
    }

    fn flows(&self) -> Vec<(String, Language)> {
        let guard = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .0
            .values()
            .map(|e| (e.loaded.flow.name.clone(), e.loaded.flow.language))
            .collect()
    }

    /// Appends to the flow's knowledge-base file ([`super::kb::append_entry`]), then reloads:
    /// the next call on the flow can be answered from it.
    fn learn(&self, flow: &str, question: &str, answer: &str) -> Result<PathBuf, LearnError> {
        let kb_file = {
            let guard = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
            let Some(entry) = guard.0.get(flow) else {
                let names: Vec<&str> = guard.0.keys().map(String::as_str).collect();
                return Err(LearnError::Flow {
                    flow: flow.to_string(),
                    why: format!("is not a flow; valid flows: {}", names.join(", ")),
                });
            };
            match &entry.loaded.flow.kb {
                Some(name) => self.kb_dir.join(name),
                None => {
                    return Err(LearnError::Flow {
                        flow: flow.to_string(),
                        why: "has no knowledge base (`kb` in its flow file)".into(),
                    })
                }
            }
        };
        append_entry(&kb_file, question, answer)?;
        for e in self.refresh() {
            tracing::warn!("after a learned answer: {e}");
        }
        Ok(kb_file)
    }

    fn suggest(&self, flow: &str, words: &str, k: usize) -> Vec<super::Suggestion> {
        let loaded = {
            let guard = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
            match guard.0.get(flow) {
                Some(entry) => entry.loaded.clone(),
                None => return Vec::new(),
            }
        };
        let Some(kb) = loaded.kb.as_ref() else {
            return Vec::new();
        };
        kb.search(words, k)
            .into_iter()
            .map(|hit| super::Suggestion {
                question: hit.entry.question.clone(),
                answer: hit.entry.answer.clone(),
                confidence: hit.confidence,
            })
            .collect()
    }
}

/// True when a `--flow` value is meant as a file rather than a flow name.
fn looks_like_path(flow: &str) -> bool {
    flow.contains('/') || flow.contains(std::path::MAIN_SEPARATOR) || flow.ends_with(".toml")
}

/// "name (language), ..." for every loaded flow, for errors about languages.
fn describe_flows(flows: &BTreeMap<String, CatalogEntry>) -> String {
    flows
        .values()
        .map(|e| format!("{} ({})", e.loaded.flow.name, e.loaded.flow.language))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The flow a call runs when nobody chooses one, from the config:
///
/// | `dialogue.default_flow` | `language` | default flow |
/// |---|---|---|
/// | set | not set | that flow (the call speaks its language) |
/// | set | set | that flow; it must speak `language`, else start-up fails |
/// | not set | set | [`BUILTIN_DEFAULT_FLOW`] if it speaks `language`, else the first flow (by name) that does |
/// | not set | not set | [`BUILTIN_DEFAULT_FLOW`] |
///
/// Every failure names the key and lists the flows.
fn choose_default_flow(
    config: &DialogueConfig,
    language: Option<Language>,
    flows: &BTreeMap<String, CatalogEntry>,
) -> Result<String, DialogueError> {
    let names = || flows.keys().cloned().collect::<Vec<_>>().join(", ");
    let dir = config.flows_dir.display();
    let speaks = |name: &str, language: Language| {
        flows
            .get(name)
            .is_some_and(|e| e.loaded.flow.language == language)
    };
    match (&config.default_flow, language) {
        (Some(name), language) => {
            let Some(entry) = flows.get(name) else {
                return Err(DialogueError::Load(format!(
                    "dialogue.default_flow: flow {name:?} not found in {dir} (valid flows: {})",
                    names()
                )));
            };
            let flow_language = entry.loaded.flow.language;
            if let Some(language) = language.filter(|l| *l != flow_language) {
                return Err(DialogueError::Load(format!(
                    "language = \"{language}\" and dialogue.default_flow = {name:?} disagree: that \
                     flow speaks {flow_language}, and a call speaks its flow's language; remove \
                     `language`, or set dialogue.default_flow to a flow in {language} (flows: {})",
                    describe_flows(flows)
                )));
            }
            Ok(name.clone())
        }
        (None, Some(language)) => {
            if speaks(BUILTIN_DEFAULT_FLOW, language) {
                return Ok(BUILTIN_DEFAULT_FLOW.to_string());
            }
            flows
                .values()
                .find(|e| e.loaded.flow.language == language)
                .map(|e| e.loaded.flow.name.clone())
                .ok_or_else(|| {
                    DialogueError::Load(format!(
                        "language = \"{language}\": no flow in {dir} speaks {language}; set \
                         dialogue.default_flow (flows: {})",
                        describe_flows(flows)
                    ))
                })
        }
        (None, None) => {
            if flows.contains_key(BUILTIN_DEFAULT_FLOW) {
                Ok(BUILTIN_DEFAULT_FLOW.to_string())
            } else {
                Err(DialogueError::Load(format!(
                    "dialogue.default_flow: not set, and the built-in default {BUILTIN_DEFAULT_FLOW:?} \
                     is not in {dir}; set it (valid flows: {})",
                    names()
                )))
            }
        }
    }
}

/// What the dialogue waits for.
#[derive(Debug, Clone, PartialEq)]
enum Waiting {
    /// What the current node collects.
    Collect,
    /// A yes/no to "Did you mean <intent>?".
    ConfirmIntent(IntentMatch),
    /// A yes/no (or a correction) to "I heard <value>. Is that right?".
    ConfirmSlot(String),
}

/// Collects a turn's output; prompts go to the streaming sink as soon as they are made.
struct TurnOut<'s> {
    turn: BotTurn,
    sink: &'s mut dyn FnMut(&Prompt),
}

impl TurnOut<'_> {
    fn say(&mut self, prompt: Prompt) {
        if prompt.text.trim().is_empty() && prompt.audio_file.is_none() {
            return;
        }
        (self.sink)(&prompt);
        self.turn.say.push(prompt);
    }
}

/// Limits pass-through hops in one turn, so a flow with a cycle of pass-through nodes cannot
/// spin forever.
const MAX_HOPS: usize = 32;

/// One call on one flow version.
pub struct FlowDialogue {
    loaded: Arc<LoadedFlow>,
    llm: Option<LlmClient>,
    gaps_file: Option<PathBuf>,
    vars: BTreeMap<String, String>,
    node: String,
    waiting: Waiting,
    no_match: u32,
    no_input: u32,
    dtmf_buffer: String,
    last_say: Vec<Prompt>,
    escalation: EscalationMonitor,
    ended: bool,
}

impl FlowDialogue {
    /// A new call. Caller context becomes `caller.*` variables.
    pub fn new(
        loaded: Arc<LoadedFlow>,
        ctx: &CallContext,
        llm: Option<LlmClient>,
        gaps_file: Option<PathBuf>,
    ) -> Self {
        let mut vars = BTreeMap::new();
        for (k, v) in &ctx.vars {
            vars.insert(format!("caller.{k}"), v.clone());
        }
        vars.insert("flow.name".into(), loaded.flow.name.clone());
        vars.insert("flow.language".into(), loaded.flow.language.code().into());
        let escalation = EscalationMonitor::new(loaded.flow.escalation.clone());
        let start = loaded.flow.start.clone();
        Self {
            loaded,
            llm,
            gaps_file,
            vars,
            node: start,
            waiting: Waiting::Collect,
            no_match: 0,
            no_input: 0,
            dtmf_buffer: String::new(),
            last_say: Vec::new(),
            escalation,
            ended: false,
        }
    }

    /// The flow version this call runs.
    pub fn flow(&self) -> &Flow {
        &self.loaded.flow
    }

    /// The call's variables (slots, webhook results, caller context).
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// The node the call is at.
    pub fn node_name(&self) -> &str {
        &self.node
    }

    fn node(&self) -> Node {
        self.loaded
            .flow
            .nodes
            .get(&self.node)
            .cloned()
            .expect("node names are validated at load and only set from validated names")
    }

    fn render(&self, t: &Template) -> String {
        t.render(&self.vars)
    }

    fn say_template(&self, out: &mut TurnOut, t: &Template) {
        out.say(Prompt::text(self.render(t)));
    }

    fn say_node_prompt(&self, out: &mut TurnOut, node: &Node) {
        if let Some(say) = &node.say {
            out.say(Prompt {
                text: self.render(say),
                audio_file: node.audio.clone(),
            });
            if !node.barge_in {
                out.turn.no_barge_in = true;
            }
        }
    }

    /// Enters a node: runs its actions, says its prompt, and follows pass-through nodes.
    fn enter(&mut self, name: &str, out: &mut TurnOut) {
        let mut name = name.to_string();
        for _ in 0..MAX_HOPS {
            self.node = name.clone();
            self.waiting = Waiting::Collect;
            self.no_match = 0;
            self.no_input = 0;
            self.dtmf_buffer.clear();
            let node = self.node();
            for (var, t) in &node.set {
                let value = self.render(t);
                self.vars.insert(var.clone(), value);
            }
            if let Some(hook_name) = &node.webhook {
                let hook = self
                    .loaded
                    .flow
                    .webhooks
                    .get(hook_name)
                    .cloned()
                    .expect("webhook names are validated at load");
                let outcome = webhook::call(&hook, &self.vars);
                self.vars
                    .insert(format!("{hook_name}.result"), outcome.code().to_string());
                match outcome {
                    WebhookOutcome::Ok(saved) => self.vars.extend(saved),
                    // The system answered: the flow branches on `not_found`.
                    WebhookOutcome::NotFound => {}
                    WebhookOutcome::Timeout | WebhookOutcome::Failed(_) => {
                        let t = hook
                            .fallback
                            .as_ref()
                            .unwrap_or(&self.loaded.flow.prompts.webhook_failed);
                        self.say_template(out, t);
                    }
                }
            }
            self.say_node_prompt(out, &node);
            if let Some(t) = &node.transfer {
                out.turn.action = Some(Action::Transfer {
                    target: t.target.clone(),
                    reason: t.reason.clone(),
                });
                return;
            }
            if let Some(reason) = &node.hangup {
                out.turn.action = Some(Action::Hangup {
                    reason: reason.clone(),
                });
                return;
            }
            if node.collect.is_some() {
                return;
            }
            match self.route(&node, None, None) {
                Some(next) => name = next,
                None => {
                    tracing::warn!(node = %node.name, "no transition applies; escalating");
                    self.escalate_with(out, "flow.dead_end");
                    return;
                }
            }
        }
        tracing::warn!(node = %name, "too many pass-through hops; escalating");
        self.escalate_with(out, "flow.loop");
    }

    /// The node a collected intent or slot leads to.
    fn route(
        &self,
        node: &Node,
        intent: Option<&str>,
        slot: Option<(&str, &str)>,
    ) -> Option<String> {
        for t in &node.transitions {
            if let Some(i) = &t.intent {
                if Some(i.as_str()) != intent {
                    continue;
                }
            }
            if let Some(s) = &t.slot {
                match slot {
                    Some((name, value)) if name == s => {
                        if t.equals.as_ref().is_some_and(|eq| eq != value) {
                            continue;
                        }
                    }
                    _ => continue,
                }
            } else if let Some(eq) = &t.equals {
                if slot.is_none_or(|(_, v)| v != eq) {
                    continue;
                }
            }
            if t.when.as_ref().is_some_and(|c| !c.holds(&self.vars)) {
                continue;
            }
            return Some(t.goto.clone());
        }
        if let Some(i) = intent {
            if let Some(n) = node.on_intent.get(i) {
                return Some(n.clone());
            }
            if let Some(n) = self.loaded.flow.routes.get(i) {
                return Some(n.clone());
            }
        }
        node.next.clone()
    }

    fn escalate_with(&mut self, out: &mut TurnOut, reason: &str) {
        let t = self.loaded.flow.prompts.escalate.clone();
        self.say_template(out, &t);
        out.turn.action = Some(Action::Transfer {
            target: self.loaded.flow.transfer_target.clone(),
            reason: reason.to_string(),
        });
    }

    fn escalate(&mut self, out: &mut TurnOut, trigger: Trigger) {
        self.escalate_with(out, trigger.reason());
    }

    fn run_global(&mut self, g: &GlobalIntent, out: &mut TurnOut) {
        let node = self.node();
        if let Some(say) = &g.say {
            self.say_template(out, say);
        }
        if g.repeat {
            let again = if self.last_say.is_empty() {
                node.say
                    .iter()
                    .map(|s| Prompt::text(self.render(s)))
                    .collect()
            } else {
                self.last_say.clone()
            };
            for p in again {
                out.say(p);
            }
        }
        if g.help {
            match &node.help {
                Some(h) => self.say_template(out, h),
                None => self.say_node_prompt(out, &node),
            }
        }
        if let Some(t) = &g.transfer {
            out.turn.action = Some(Action::Transfer {
                target: t.target.clone(),
                reason: t.reason.clone(),
            });
        } else if let Some(reason) = &g.hangup {
            out.turn.action = Some(Action::Hangup {
                reason: reason.clone(),
            });
        } else if let Some(goto) = &g.goto {
            self.enter(&goto.clone(), out);
        }
    }

    /// Acts on a recognized intent at the current node.
    fn take_intent(&mut self, m: IntentMatch, out: &mut TurnOut) {
        let node = self.node();
        out.turn.intent = Some(m.clone());
        self.waiting = Waiting::Collect;
        let local = node
            .transitions
            .iter()
            .any(|t| t.intent.as_deref() == Some(&m.name))
            || node.on_intent.contains_key(&m.name);
        if !local {
            if let Some(g) = self.loaded.flow.global.get(&m.name).cloned() {
                self.run_global(&g, out);
                return;
            }
        }
        match self.route(&node, Some(&m.name), None) {
            Some(next) => self.enter(&next, out),
            None => self.no_match(out),
        }
    }

    /// The intents that mean something at the current node.
    fn candidates(&self, node: &Node) -> Vec<String> {
        let mut c = node.expected_intents();
        c.extend(self.loaded.flow.global.keys().cloned());
        if node.collect == Some(Collect::Intent) {
            c.extend(self.loaded.flow.routes.keys().cloned());
        }
        c.sort();
        c.dedup();
        c
    }

    fn no_match(&mut self, out: &mut TurnOut) {
        self.no_match += 1;
        self.waiting = Waiting::Collect;
        if let Some(trigger) = self.escalation.no_match() {
            self.escalate(out, trigger);
            return;
        }
        let node = self.node();
        if self.no_match > node.max_no_match {
            self.on_max(out, &node, Trigger::NoMatch);
            return;
        }
        match nth_reprompt(&node.no_match, self.no_match) {
            Some(t) => self.say_template(out, t),
            None => {
                let t = self.loaded.flow.prompts.no_match.clone();
                self.say_template(out, &t);
                self.say_node_prompt(out, &node);
            }
        }
    }

    fn on_max(&mut self, out: &mut TurnOut, node: &Node, trigger: Trigger) {
        match &node.on_max {
            OnMax::Escalate => self.escalate(out, trigger),
            OnMax::Hangup => {
                out.turn.action = Some(Action::Hangup {
                    reason: match trigger {
                        Trigger::NoInput => "no_input.max".into(),
                        _ => "no_match.max".into(),
                    },
                })
            }
            OnMax::Goto(n) => self.enter(&n.clone(), out),
        }
    }

    fn on_no_input(&mut self, out: &mut TurnOut) {
        self.no_input += 1;
        let node = self.node();
        if self.no_input > node.max_no_input {
            self.on_max(out, &node, Trigger::NoInput);
            return;
        }
        match nth_reprompt(&node.no_input, self.no_input) {
            Some(t) => self.say_template(out, t),
            None => {
                let t = self.loaded.flow.prompts.no_input.clone();
                self.say_template(out, &t);
                match &self.waiting {
                    Waiting::Collect => self.say_node_prompt(out, &node),
                    Waiting::ConfirmIntent(m) => self.ask_intent_confirmation(out, m.clone()),
                    Waiting::ConfirmSlot(v) => self.ask_slot_confirmation(out, v.clone()),
                }
            }
        }
    }

    fn ask_intent_confirmation(&mut self, out: &mut TurnOut, m: IntentMatch) {
        let label = self
            .loaded
            .flow
            .intent_labels
            .get(&m.name)
            .cloned()
            .unwrap_or_else(|| m.name.clone());
        self.vars.insert("intent_label".into(), label);
        let t = self.loaded.flow.prompts.did_you_mean.clone();
        self.say_template(out, &t);
        self.waiting = Waiting::ConfirmIntent(m);
    }

    fn ask_slot_confirmation(&mut self, out: &mut TurnOut, value: String) {
        self.vars
            .insert("slot_spoken".into(), slots::spell_digits(&value));
        let t = self.loaded.flow.prompts.confirm_slot.clone();
        self.say_template(out, &t);
        self.waiting = Waiting::ConfirmSlot(value);
    }

    /// A slot value was heard (and passed its rules).
    fn slot_heard(&mut self, value: String, out: &mut TurnOut) {
        let node = self.node();
        let Some(spec) = node.slot.clone() else {
            return;
        };
        if spec.confirm {
            self.ask_slot_confirmation(out, value);
        } else {
            self.commit_slot(&spec.name, value, out);
        }
    }

    fn commit_slot(&mut self, name: &str, value: String, out: &mut TurnOut) {
        self.vars.insert(name.to_string(), value.clone());
        out.turn.slots.push((name.to_string(), value.clone()));
        let node = self.node();
        if node
            .slot
            .as_ref()
            .is_some_and(|s| s.name == name && s.sensitive)
        {
            out.turn.sensitive_slots.push(name.to_string());
        }
        match self.route(&node, None, Some((name, &value))) {
            Some(next) => self.enter(&next, out),
            None => {
                tracing::warn!(node = %node.name, "slot filled but no transition applies; escalating");
                self.escalate_with(out, "flow.dead_end");
            }
        }
    }

    fn slot_rejected(&mut self, problem: SlotProblem, out: &mut TurnOut) {
        self.no_match += 1;
        if let Some(trigger) = self.escalation.no_match() {
            self.escalate(out, trigger);
            return;
        }
        let node = self.node();
        if self.no_match > node.max_no_match {
            self.on_max(out, &node, Trigger::NoMatch);
            return;
        }
        // In the flow's words: a Chinese prompt gets a Chinese reason.
        self.vars.insert(
            "slot_problem".into(),
            problem.describe(self.loaded.flow.language),
        );
        let t = self.loaded.flow.prompts.slot_rejected.clone();
        self.say_template(out, &t);
        self.say_node_prompt(out, &node);
    }

    /// Tries the global intents on words a node could not use; true if one was taken.
    fn try_global(&mut self, words: &str, out: &mut TurnOut) -> bool {
        let globals: Vec<String> = self.loaded.flow.global.keys().cloned().collect();
        if let Some(m) = self.loaded.matcher.best(words, Some(&globals)) {
            if m.confidence >= self.loaded.flow.nlu.accept {
                self.take_intent(m, out);
                return true;
            }
        }
        false
    }

    fn log_gap(&self, words: &str) {
        let Some(path) = &self.gaps_file else { return };
        let line =
            serde_json::json!({ "flow": self.loaded.flow.name, "node": self.node, "text": words });
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            tracing::warn!(file = %path.display(), error = %e, "cannot append the knowledge gap");
        }
    }

    fn collect_intent(&mut self, words: &str, out: &mut TurnOut) {
        let node = self.node();
        let candidates = self.candidates(&node);
        let nlu = self.loaded.flow.nlu.clone();
        let best = self.loaded.matcher.best(words, Some(&candidates));
        let best_conf = best.as_ref().map_or(0.0, |m| m.confidence);
        if let Some(m) = best.clone().filter(|m| m.confidence >= nlu.accept) {
            self.take_intent(m, out);
            return;
        }
        // Built-in yes/no, when the node routes on them and no intent is sure.
        if let Some(answer) = slots::yes_no(words) {
            let defined = self.loaded.flow.intents.iter().any(|i| i.name == answer);
            if !defined
                && BUILTIN_INTENTS.contains(&answer)
                && candidates.iter().any(|c| c == answer)
            {
                self.take_intent(
                    IntentMatch {
                        name: answer.to_string(),
                        confidence: 1.0,
                    },
                    out,
                );
                return;
            }
        }
        let loaded = self.loaded.clone();
        let passages: Vec<_> = match (&loaded.kb, node.kb) {
            (Some(kb), true) => kb.search(words, 3),
            _ => Vec::new(),
        };
        if let Some(hit) = passages.first().filter(|h| h.confidence >= nlu.kb_accept) {
            out.turn.intent = Some(IntentMatch {
                name: "faq".into(),
                confidence: hit.confidence,
            });
            let answer = hit.entry.answer.clone();
            out.say(Prompt::text(answer));
            let t = self.loaded.flow.prompts.anything_else.clone();
            self.say_template(out, &t);
            self.no_match = 0;
            return;
        }
        if let Some(m) = best.filter(|m| m.confidence >= nlu.confirm) {
            self.ask_intent_confirmation(out, m);
            return;
        }
        if best_conf < nlu.confirm && node.kb && !words.trim().is_empty() {
            out.turn.knowledge_gap = Some(words.trim().to_string());
            self.log_gap(words.trim());
        }
        if let Some(llm) = self.llm.clone() {
            if llm.extracts_intents() {
                let list: Vec<(String, String)> = candidates
                    .iter()
                    .map(|c| {
                        (
                            c.clone(),
                            self.loaded
                                .flow
                                .intent_labels
                                .get(c)
                                .cloned()
                                .unwrap_or_else(|| c.clone()),
                        )
                    })
                    .collect();
                match llm.extract_intent(words, &list) {
                    Ok(Some(name)) => {
                        self.take_intent(
                            IntentMatch {
                                name,
                                confidence: nlu.accept,
                            },
                            out,
                        );
                        return;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "llm intent extraction failed"),
                }
            }
            if node.kb {
                let entries: Vec<_> = passages.iter().map(|h| h.entry).collect();
                let mut spoken = Vec::new();
                let result = llm.answer(words, &entries, self.loaded.flow.language, &mut |s| {
                    spoken.push(s.to_string());
                    out.say(Prompt::text(s));
                });
                match result {
                    Ok(_) => {
                        out.turn.intent = Some(IntentMatch {
                            name: "llm_answer".into(),
                            confidence: 0.0,
                        });
                        let t = self.loaded.flow.prompts.anything_else.clone();
                        self.say_template(out, &t);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "llm answer failed");
                        if spoken.is_empty() {
                            let t = self.loaded.flow.prompts.llm_unavailable.clone();
                            self.say_template(out, &t);
                        }
                    }
                }
            }
        }
        self.no_match(out);
    }

    fn on_speech(&mut self, words: &str, level_vs_baseline_db: f32, out: &mut TurnOut) {
        if let Some(trigger) = self.escalation.observe(words, level_vs_baseline_db) {
            // The record keeps what the caller asked for, even when escalation answers it.
            out.turn.intent = self
                .loaded
                .matcher
                .best(words, None)
                .filter(|m| m.confidence >= self.loaded.flow.nlu.accept);
            self.escalate(out, trigger);
            return;
        }
        match self.waiting.clone() {
            Waiting::ConfirmIntent(m) => match slots::yes_no(words) {
                Some("yes") => return self.take_intent(m, out),
                Some(_) => {
                    self.waiting = Waiting::Collect;
                    let node = self.node();
                    let t = self.loaded.flow.prompts.reask.clone();
                    self.say_template(out, &t);
                    self.say_node_prompt(out, &node);
                    return;
                }
                None => self.waiting = Waiting::Collect,
            },
            Waiting::ConfirmSlot(value) => {
                let node = self.node();
                let Some(spec) = node.slot.clone() else {
                    return;
                };
                // A correction may come with the no ("no, it's 4 7 1 3"): take the new value.
                let corrected = match spec.kind.slot_type {
                    SlotType::YesNo | SlotType::Text => None,
                    _ => spec.kind.parse(words).ok().filter(|v| *v != value),
                };
                if let Some(new_value) = corrected {
                    self.ask_slot_confirmation(out, new_value);
                    return;
                }
                match slots::yes_no(words) {
                    Some("yes") => return self.commit_slot(&spec.name, value, out),
                    Some(_) => {
                        self.waiting = Waiting::Collect;
                        let t = self.loaded.flow.prompts.reask.clone();
                        self.say_template(out, &t);
                        self.say_node_prompt(out, &node);
                        return;
                    }
                    None => {
                        if self.try_global(words, out) {
                            return;
                        }
                        self.no_match += 1;
                        let node = self.node();
                        if self.no_match > node.max_no_match {
                            self.on_max(out, &node, Trigger::NoMatch);
                        } else {
                            self.ask_slot_confirmation(out, value);
                        }
                        return;
                    }
                }
            }
            Waiting::Collect => {}
        }
        let node = self.node();
        match node.collect {
            Some(Collect::Intent) => self.collect_intent(words, out),
            Some(Collect::Slot | Collect::Text) => {
                let Some(spec) = node.slot.clone() else {
                    return;
                };
                match spec.kind.parse(words) {
                    Ok(value) => {
                        // Free text that is really a global intent ("help") is taken as one.
                        if spec.kind.slot_type == SlotType::Text && self.try_global(words, out) {
                            return;
                        }
                        self.slot_heard(value, out)
                    }
                    Err(SlotReject::Invalid(problem)) => self.slot_rejected(problem, out),
                    Err(SlotReject::NotFound) => {
                        if !self.try_global(words, out) {
                            self.no_match(out);
                        }
                    }
                }
            }
            Some(Collect::Dtmf) if !self.try_global(words, out) => self.no_match(out),
            Some(Collect::Dtmf) | None => {}
        }
    }

    fn on_dtmf(&mut self, digit: char, out: &mut TurnOut) {
        let yes_no_key = match digit {
            '1' => Some("yes"),
            '2' => Some("no"),
            _ => None,
        };
        match self.waiting.clone() {
            Waiting::ConfirmIntent(_) | Waiting::ConfirmSlot(_) => {
                let words = yes_no_key.unwrap_or("");
                if words.is_empty() {
                    return self.no_match(out);
                }
                return self.on_speech(words, 0.0, out);
            }
            Waiting::Collect => {}
        }
        let node = self.node();
        match node.collect {
            Some(Collect::Intent) => match node.dtmf.get(&digit) {
                Some(intent) => self.take_intent(
                    IntentMatch {
                        name: intent.clone(),
                        confidence: 1.0,
                    },
                    out,
                ),
                None => self.no_match(out),
            },
            Some(Collect::Slot | Collect::Dtmf) => {
                let Some(spec) = node.slot.clone() else {
                    return;
                };
                if spec.kind.slot_type == SlotType::YesNo {
                    return match yes_no_key {
                        Some(v) => self.slot_heard(v.to_string(), out),
                        None => self.no_match(out),
                    };
                }
                if !matches!(
                    spec.kind.slot_type,
                    SlotType::Digits | SlotType::Id | SlotType::Phone | SlotType::Number
                ) {
                    return self.no_match(out);
                }
                if digit != '#' && digit != '*' {
                    self.dtmf_buffer.push(digit);
                }
                let complete = digit == '#'
                    || spec
                        .kind
                        .length
                        .is_some_and(|l| self.dtmf_buffer.len() >= l);
                if !complete {
                    return; // wait for more keys, silently
                }
                let keyed = std::mem::take(&mut self.dtmf_buffer);
                match spec.kind.validate(&keyed) {
                    Ok(v) => self.slot_heard(v, out),
                    Err(SlotReject::Invalid(problem)) => self.slot_rejected(problem, out),
                    Err(SlotReject::NotFound) => self.no_match(out),
                }
            }
            Some(Collect::Text) | None => self.no_match(out),
        }
    }

    /// The grammar for the caller's next answer. English flows get phrase lists and JSGF
    /// grammars (PocketSphinx decodes against them; whisper takes a phrase list as its
    /// prompt). Mandarin flows get phrase lists only, in Chinese: no grammar recognizer hears
    /// Mandarin, but whisper's prompt steers it towards the flow's words.
    /// Whether the answer waited for is a `sensitive` slot's value (not a yes/no to it).
    fn answer_is_sensitive(&self) -> bool {
        let node = self.node();
        self.waiting == Waiting::Collect
            && node.collect == Some(Collect::Slot)
            && node.slot.as_ref().is_some_and(|slot| slot.sensitive)
    }

    fn grammar(&self) -> Option<Grammar> {
        let english = self.loaded.flow.language == Language::En;
        match &self.waiting {
            Waiting::ConfirmIntent(_) | Waiting::ConfirmSlot(_) if english => {
                return Some(yes_no_grammar())
            }
            Waiting::ConfirmIntent(_) | Waiting::ConfirmSlot(_) => {
                return Some(mandarin_yes_no_phrases())
            }
            Waiting::Collect => {}
        }
        let node = self.node();
        match node.collect? {
            Collect::Intent => {
                let candidates = self.candidates(&node);
                let mut phrases: Vec<String> = Vec::new();
                for intent in &self.loaded.flow.intents {
                    if candidates.contains(&intent.name) {
                        phrases.extend(intent.examples.iter().chain(&intent.keywords).filter_map(
                            |p| {
                                if english {
                                    grammar_phrase(p)
                                } else {
                                    Some(p.trim().to_string()).filter(|p| !p.is_empty())
                                }
                            },
                        ));
                    }
                }
                if candidates.iter().any(|c| c == "yes" || c == "no") {
                    match mandarin_yes_no_phrases() {
                        Grammar::Phrases(yes_no) if !english => phrases.extend(yes_no),
                        _ => phrases.extend(
                            ["yes", "yes please", "no", "no thanks", "no thank you"]
                                .map(String::from),
                        ),
                    }
                }
                (!phrases.is_empty()).then(|| Grammar::shortest_first(phrases))
            }
            Collect::Slot if !english => match node.slot.as_ref()?.kind.slot_type {
                SlotType::YesNo => Some(mandarin_yes_no_phrases()),
                _ => None,
            },
            Collect::Slot => match node.slot.as_ref()?.kind.slot_type {
                SlotType::Digits | SlotType::Id | SlotType::Phone => Some(digits_grammar()),
                SlotType::YesNo => Some(yes_no_grammar()),
                _ => None,
            },
            Collect::Dtmf | Collect::Text => None,
        }
    }

    /// Answers one input, giving each prompt to `on_prompt` as soon as it is ready.
    fn step(&mut self, input: &CallerInput, sink: &mut dyn FnMut(&Prompt)) -> BotTurn {
        let mut out = TurnOut {
            turn: BotTurn::default(),
            sink,
        };
        if self.ended {
            return out.turn;
        }
        match input {
            CallerInput::Start => {
                out.turn.language = Some(self.loaded.flow.language);
                let start = self.loaded.flow.start.clone();
                self.enter(&start, &mut out);
            }
            CallerInput::Speech {
                text,
                level_vs_baseline_db,
            } => self.on_speech(text, *level_vs_baseline_db, &mut out),
            CallerInput::Dtmf { digit } => self.on_dtmf(*digit, &mut out),
            CallerInput::NoInput => self.on_no_input(&mut out),
        }
        let mut turn = out.turn;
        match &turn.action {
            Some(Action::Hangup { .. }) => self.ended = true,
            Some(Action::Transfer { .. }) => {
                // A transfer that happens ends the call; one that fails (busy, refused, no
                // answer) brings the caller back, and the conversation goes on at this node
                // with fresh counts, so the next turn is answered rather than escalated again.
                self.waiting = Waiting::Collect;
                self.no_match = 0;
                self.no_input = 0;
                self.escalation = EscalationMonitor::new(self.loaded.flow.escalation.clone());
                turn.expect = self.grammar();
            }
            None => turn.expect = self.grammar(),
        }
        turn.sensitive_answer = turn.action.is_none() && self.answer_is_sensitive();
        if !turn.say.is_empty() {
            self.last_say = turn.say.clone();
        }
        turn
    }
}

/// A phrase as the grammar recognizer's dictionary spells it: lower-case ASCII words and
/// apostrophes. `None` for phrases with other scripts.
fn grammar_phrase(p: &str) -> Option<String> {
    if !p.is_ascii() {
        return None;
    }
    let cleaned: String = p
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphabetic() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// A JSGF grammar for yes/no answers.
pub fn yes_no_grammar() -> Grammar {
    Grammar::Jsgf(
        "#JSGF V1.0;\ngrammar yesno;\npublic <answer> = yes | yeah | yep | yes please | correct | \
         that's right | right | no | nope | no thanks | wrong | that's wrong;\n"
            .to_string(),
    )
}

/// Yes and no in Mandarin, as a phrase list (whisper's prompt for a confirmation).
pub fn mandarin_yes_no_phrases() -> Grammar {
    Grammar::Phrases(
        [
            "是",
            "是的",
            "对",
            "对的",
            "好的",
            "不是",
            "不对",
            "不用了",
            "不要",
        ]
        .map(String::from)
        .to_vec(),
    )
}

/// A JSGF grammar for digit strings.
pub fn digits_grammar() -> Grammar {
    Grammar::Jsgf(
        "#JSGF V1.0;\ngrammar digits;\npublic <digits> = <digit>+;\n<digit> = zero | oh | one | \
         two | three | four | five | six | seven | eight | nine;\n"
            .to_string(),
    )
}

/// Whether `grammar` is what a node collecting a digit string (digits, an id, a phone number)
/// expects: [`digits_grammar`].
pub fn collects_digits(grammar: &Grammar) -> bool {
    *grammar == digits_grammar()
}

impl Dialogue for FlowDialogue {
    fn handle(&mut self, input: &CallerInput) -> BotTurn {
        self.step(input, &mut |_| {})
    }

    fn handle_streaming(
        &mut self,
        input: &CallerInput,
        on_prompt: &mut dyn FnMut(&Prompt),
    ) -> BotTurn {
        self.step(input, on_prompt)
    }
}

/// The reprompt for the `count`-th miss in a row (counting from 1): the list's entry, and its
/// last entry once the misses outrun the list; `None` for an empty list.
fn nth_reprompt<T>(list: &[T], count: u32) -> Option<&T> {
    let index = (count as usize).saturating_sub(1);
    list.get(index.min(list.len().saturating_sub(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn telecom() -> FlowDialogue {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let loaded = LoadedFlow::load(&root.join("flows/telecom_en.toml"), &root.join("kb"))
            .expect("the demo flow loads");
        let ctx = CallContext {
            plan: super::super::CallPlan {
                flow: "telecom_en".into(),
                language: Language::En,
                record_audio: true,
                transfer_failed: None,
            },
            vars: BTreeMap::new(),
        };
        FlowDialogue::new(Arc::new(loaded), &ctx, None, None)
    }

    fn speech(text: &str) -> CallerInput {
        CallerInput::Speech {
            text: text.into(),
            level_vs_baseline_db: 0.0,
        }
    }

    #[test]
    fn a_transfer_that_fails_leaves_the_conversation_going() {
        let mut d = telecom();
        d.handle(&CallerInput::Start);
        let asked = d.handle(&speech("I want to talk to a human agent"));
        assert!(
            matches!(asked.action, Some(Action::Transfer { .. })),
            "{asked:?}"
        );
        // The line could not reach an agent: the caller is back, and is answered.
        let next = d.handle(&speech("what about my bill"));
        assert!(!next.say.is_empty(), "{next:?}");
        assert!(next.action.is_none(), "{next:?}");
        let quiet = d.handle(&CallerInput::NoInput);
        assert!(!quiet.say.is_empty(), "no-input is reprompted: {quiet:?}");
    }
}
