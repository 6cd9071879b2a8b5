//! Compiling a flow as written into a checked [`Flow`].
//!
//! Owns: every check [`Flow::parse`] makes beyond the schema's types, and placing its errors at
//! file:line ([`Placer`]). The work runs in named steps, in a fixed order, so that a file with
//! several mistakes always reports the same first one: `start`, `[nlu]`, `[prompts]`,
//! `[intents]`, `[global]`, `[routes]`, `[webhooks]`, then each node in name order (its webhook,
//! slot, what it collects, `on_intent`, `dtmf`, `transitions`, `next`, `on_max`, whether it
//! leads anywhere, then its templates).
//!
//! Invariants: a compiled flow names no node, intent or webhook that does not exist; every
//! template and condition in it parses; every node collects something or leads somewhere. The
//! wording of each error is part of the interface: flow authors and tests match on it.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::schema::{
    RawFlow, RawGlobal, RawIntent, RawNode, RawPrompts, RawSlot, RawTransition, RawWebhook,
};
use super::{
    Collect, Condition, Flow, FlowError, FlowPrompts, GlobalIntent, Limits, NluSettings, Node,
    OnMax, SlotSpec, Transfer, Transition, Webhook, BUILTIN_INTENTS,
};
use crate::dialogue::nlu::IntentDef;
use crate::dialogue::slots::{SlotKind, SlotType};
use crate::dialogue::template::{Scope, Template};
use crate::language::Language;

/// Places errors in one file.
pub(super) struct Placer<'a> {
    pub(super) file: &'a str,
    pub(super) text: &'a str,
}

impl Placer<'_> {
    /// The 1-based line a byte offset falls on.
    fn line(&self, span: Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    /// An error at the line of `span`.
    pub(super) fn at(&self, span: Range<usize>, message: impl Into<String>) -> FlowError {
        FlowError::Invalid {
            file: self.file.to_string(),
            line: self.line(span),
            message: message.into(),
        }
    }
}

/// A prompt template (call variables only), placed at its line when it does not parse.
fn prompt(p: &Placer, s: &Spanned<String>) -> Result<Template, FlowError> {
    Template::parse(s.get_ref(), Scope::Prompt).map_err(|m| p.at(s.span(), m))
}

/// A request template (webhook URL, headers and body), placed when it does not parse.
fn request(p: &Placer, s: &Spanned<String>) -> Result<Template, FlowError> {
    Template::parse(s.get_ref(), Scope::Request).map_err(|m| p.at(s.span(), m))
}

/// A built-in prompt.
fn fixed(text: &str) -> Template {
    Template::parse(text, Scope::Prompt).expect("built-in prompts are valid templates")
}

/// The engine's phrases in `language`, in [`FlowPrompts`] order, for prompts a flow leaves out.
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

/// Compiles a flow as written, checking it step by step (see the module doc for the order).
pub(super) fn compile(raw: RawFlow, p: &Placer) -> Result<Flow, FlowError> {
    let names = Names::of(&raw, p);
    let start = names.node(&raw.start, "`start`")?;
    check_nlu(&raw.nlu, p)?;
    let prompts = compile_prompts(&raw.prompts, raw.language, p)?;
    let (intents, intent_labels) = compile_intents(&raw.intents, p)?;
    let global = compile_global(raw.global, &raw.transfer_target, &names)?;
    let routes = compile_routes(&raw.routes, &names)?;
    let webhooks = compile_webhooks(&raw.webhooks, p)?;
    let context = NodeContext {
        names: &names,
        webhooks: &webhooks,
        has_routes: !routes.is_empty(),
        transfer_target: &raw.transfer_target,
        limits: &raw.limits,
    };
    let mut nodes = BTreeMap::new();
    for (name, raw_node) in raw.nodes {
        let node = context.compile(name, raw_node)?;
        nodes.insert(node.name.clone(), node);
    }

    Ok(Flow {
        name: raw.name,
        language: raw.language,
        description: raw.description,
        start,
        kb: raw.kb,
        transfer_target: raw.transfer_target,
        transfer_failed: raw.prompts.transfer_failed.clone(),
        record_audio: raw.record_audio,
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

/// The node and intent names a flow defines, to check the names it uses against.
struct Names<'a> {
    p: &'a Placer<'a>,
    nodes: Vec<String>,
    intents: Vec<String>,
}

impl<'a> Names<'a> {
    fn of(raw: &RawFlow, p: &'a Placer<'a>) -> Self {
        Self {
            p,
            nodes: raw.nodes.keys().map(|k| k.get_ref().clone()).collect(),
            intents: raw.intents.keys().map(|k| k.get_ref().clone()).collect(),
        }
    }

    /// `s` as the name of a node; `what` says who names it in the error.
    fn node(&self, s: &Spanned<String>, what: &str) -> Result<String, FlowError> {
        if self.nodes.iter().any(|n| n == s.get_ref()) {
            Ok(s.get_ref().clone())
        } else {
            Err(self.p.at(
                s.span(),
                format!(
                    "{what} names node {:?}, which does not exist (expected one of: {})",
                    s.get_ref(),
                    self.nodes.join(", ")
                ),
            ))
        }
    }

    /// `s` as the name of an intent the flow defines or [`BUILTIN_INTENTS`] has.
    fn intent(&self, s: &Spanned<String>, what: &str) -> Result<String, FlowError> {
        let n = s.get_ref().as_str();
        if self.intents.iter().any(|i| i == n) || BUILTIN_INTENTS.contains(&n) {
            Ok(s.get_ref().clone())
        } else {
            Err(self.p.at(
                s.span(),
                format!(
                    "{what} names intent {:?}, which is not defined under [intents] \
                     (expected one of: {})",
                    s.get_ref(),
                    self.intents.join(", ")
                ),
            ))
        }
    }
}

/// `[nlu]`: the thresholds are ordered probabilities.
fn check_nlu(nlu: &NluSettings, p: &Placer) -> Result<(), FlowError> {
    if !(0.0..=1.0).contains(&nlu.accept)
        || !(0.0..=1.0).contains(&nlu.confirm)
        || nlu.confirm > nlu.accept
    {
        return Err(p.at(
            0..0,
            "[nlu]: expected 0 <= confirm <= accept <= 1".to_string(),
        ));
    }
    Ok(())
}

/// `[prompts]`: the flow's own phrases, or the defaults of its language.
fn compile_prompts(
    rp: &RawPrompts,
    language: Language,
    p: &Placer,
) -> Result<FlowPrompts, FlowError> {
    let d = default_prompts(language);
    let pick = |given: &Option<String>, default: &str| -> Result<Template, FlowError> {
        match given {
            Some(s) => {
                Template::parse(s, Scope::Prompt).map_err(|m| p.at(0..0, format!("[prompts]: {m}")))
            }
            None => Ok(fixed(default)),
        }
    };
    Ok(FlowPrompts {
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
    })
}

/// `[intents]`: each has examples or keywords; its label defaults to its name in words.
fn compile_intents(
    raw: &BTreeMap<Spanned<String>, RawIntent>,
    p: &Placer,
) -> Result<(Vec<IntentDef>, BTreeMap<String, String>), FlowError> {
    let mut intents = Vec::new();
    let mut intent_labels = BTreeMap::new();
    for (name, intent) in raw {
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
    Ok((intents, intent_labels))
}

/// `[global]`: intents that work from any node, each doing at least one thing.
fn compile_global(
    raw: BTreeMap<Spanned<String>, RawGlobal>,
    transfer_target: &str,
    names: &Names,
) -> Result<BTreeMap<String, GlobalIntent>, FlowError> {
    let p = names.p;
    let mut global = BTreeMap::new();
    for (name, g) in raw {
        names.intent(&name, "[global]")?;
        if let Some(goto) = &g.goto {
            names.node(goto, "`goto`")?;
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
                    target: t.target.unwrap_or_else(|| transfer_target.to_string()),
                    reason: t.reason,
                }),
                hangup: g.hangup,
                goto: g.goto.map(|s| s.into_inner()),
            },
        );
    }
    Ok(global)
}

/// `[routes]`: intent → node from anywhere.
fn compile_routes(
    raw: &BTreeMap<Spanned<String>, Spanned<String>>,
    names: &Names,
) -> Result<BTreeMap<String, String>, FlowError> {
    let mut routes = BTreeMap::new();
    for (intent, node) in raw {
        names.intent(intent, "[routes]")?;
        routes.insert(intent.get_ref().clone(), names.node(node, "[routes]")?);
    }
    Ok(routes)
}

/// `[webhooks]`: a known method, a bounded timeout, an http(s) URL, parsing templates.
fn compile_webhooks(
    raw: &BTreeMap<Spanned<String>, RawWebhook>,
    p: &Placer,
) -> Result<BTreeMap<String, Webhook>, FlowError> {
    let mut webhooks = BTreeMap::new();
    for (name, w) in raw {
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
    Ok(webhooks)
}

/// What a node is checked against: the flow's names, webhooks, routes and defaults.
struct NodeContext<'a> {
    names: &'a Names<'a>,
    webhooks: &'a BTreeMap<String, Webhook>,
    /// The flow has `[routes]`, so any intent-collecting node routes somewhere.
    has_routes: bool,
    transfer_target: &'a str,
    limits: &'a Limits,
}

impl NodeContext<'_> {
    /// `[nodes.NAME]`, step by step (see the module doc for the order).
    fn compile(&self, name: Spanned<String>, n: RawNode) -> Result<Node, FlowError> {
        let (names, p) = (self.names, self.names.p);
        let here = name.span();
        let node_name = name.into_inner();
        let webhook = self.webhook(&n, &node_name)?;
        let slot = n.slot.as_ref().map(|s| compile_slot(s, p)).transpose()?;
        check_collect(n.collect, slot.as_ref(), &here, &node_name, p)?;
        let on_intent = self.on_intent(&n, &node_name)?;
        let dtmf = self.dtmf(&n, &node_name)?;
        let transitions = self.transitions(&n.transitions)?;
        let next = n
            .next
            .as_ref()
            .map(|s| names.node(s, "`next`"))
            .transpose()?;
        let on_max = match &n.on_max {
            None => OnMax::Escalate,
            Some(s) if s.get_ref() == "escalate" => OnMax::Escalate,
            Some(s) if s.get_ref() == "hangup" => OnMax::Hangup,
            Some(s) => OnMax::Goto(names.node(s, "`on_max` (or \"escalate\" / \"hangup\")")?),
        };
        let way_on = WayOn {
            next: next.is_some(),
            transitions: &transitions,
            on_intent: !on_intent.is_empty(),
            dtmf: !dtmf.is_empty(),
            routes: self.has_routes,
        };
        way_on.check(&n, &here, &node_name, p)?;
        let set = n
            .set
            .iter()
            .map(|(k, v)| Ok((k.clone(), prompt(p, v)?)))
            .collect::<Result<Vec<_>, FlowError>>()?;
        Ok(Node {
            name: node_name,
            say: n.say.as_ref().map(|s| prompt(p, s)).transpose()?,
            audio: n.audio.clone(),
            barge_in: n.barge_in,
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
                target: t.target.unwrap_or_else(|| self.transfer_target.to_string()),
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
            max_no_match: n.max_no_match.unwrap_or(self.limits.max_no_match),
            max_no_input: n.max_no_input.unwrap_or(self.limits.max_no_input),
            on_max,
            help: n.help.as_ref().map(|s| prompt(p, s)).transpose()?,
        })
    }

    /// The node's `webhook`, which `[webhooks]` must define.
    fn webhook(&self, n: &RawNode, node_name: &str) -> Result<Option<String>, FlowError> {
        match &n.webhook {
            Some(w) if !self.webhooks.contains_key(w.get_ref()) => Err(self.names.p.at(
                w.span(),
                format!(
                    "node {node_name:?}: webhook {:?} is not defined under [webhooks]",
                    w.get_ref()
                ),
            )),
            Some(w) => Ok(Some(w.get_ref().clone())),
            None => Ok(None),
        }
    }

    /// `on_intent`: intent → node.
    fn on_intent(
        &self,
        n: &RawNode,
        node_name: &str,
    ) -> Result<BTreeMap<String, String>, FlowError> {
        let mut on_intent = BTreeMap::new();
        for (intent, target) in &n.on_intent {
            self.names
                .intent(intent, &format!("node {node_name:?} `on_intent`"))?;
            on_intent.insert(
                intent.get_ref().clone(),
                self.names.node(target, "`on_intent`")?,
            );
        }
        Ok(on_intent)
    }

    /// `dtmf`: one key (0-9, `*`, `#`) → intent.
    fn dtmf(&self, n: &RawNode, node_name: &str) -> Result<BTreeMap<char, String>, FlowError> {
        let mut dtmf = BTreeMap::new();
        for (key, intent) in &n.dtmf {
            let mut chars = key.get_ref().chars();
            let digit = match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => c,
                _ => {
                    return Err(self.names.p.at(
                        key.span(),
                        format!("dtmf key {:?}: expected one of 0-9, * or #", key.get_ref()),
                    ))
                }
            };
            dtmf.insert(
                digit,
                self.names
                    .intent(intent, &format!("node {node_name:?} `dtmf`"))?,
            );
        }
        Ok(dtmf)
    }

    /// `transitions`: each `when` parses, each intent and `goto` exists.
    fn transitions(&self, raw: &[RawTransition]) -> Result<Vec<Transition>, FlowError> {
        let (names, p) = (self.names, self.names.p);
        let mut transitions = Vec::new();
        for t in raw {
            let when = match &t.when {
                Some(w) => Some(Condition::parse(w.get_ref()).map_err(|m| p.at(w.span(), m))?),
                None => None,
            };
            transitions.push(Transition {
                intent: t
                    .intent
                    .as_ref()
                    .map(|i| names.intent(i, "transition `intent`"))
                    .transpose()?,
                slot: t.slot.clone(),
                equals: t.equals.clone(),
                when,
                goto: names.node(&t.goto, "transition `goto`")?,
            });
        }
        Ok(transitions)
    }
}

/// A node's `slot`: a plain name and consistent lengths.
fn compile_slot(s: &Spanned<RawSlot>, p: &Placer) -> Result<SlotSpec, FlowError> {
    let r = s.get_ref();
    if r.name.is_empty() || !r.name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(p.at(s.span(), "slot `name`: expected letters, digits and `_`"));
    }
    if let (Some(lo), Some(hi)) = (r.min_length, r.max_length) {
        if lo > hi {
            return Err(p.at(s.span(), "slot: expected min_length <= max_length"));
        }
    }
    Ok(SlotSpec {
        name: r.name.clone(),
        kind: SlotKind {
            slot_type: r.slot_type,
            length: r.length,
            min_length: r.min_length,
            max_length: r.max_length,
            checksum: r.checksum,
        },
        confirm: r.confirm,
        sensitive: r.sensitive,
    })
}

/// `collect`: a slot, keys or text need a `slot`; keys need a slot that keys can fill.
fn check_collect(
    collect: Option<Collect>,
    slot: Option<&SlotSpec>,
    here: &Range<usize>,
    node_name: &str,
    p: &Placer,
) -> Result<(), FlowError> {
    match (collect, slot) {
        (Some(Collect::Slot | Collect::Dtmf | Collect::Text), None) => Err(p.at(
            here.clone(),
            format!(
                "node {node_name:?} collects a {:?}: expected a `slot = {{ name = ..., \
                 type = ... }}`",
                collect.map(|c| format!("{c:?}").to_lowercase()).unwrap_or_default()
            ),
        )),
        (Some(Collect::Dtmf), Some(s))
            if !matches!(s.kind.slot_type, SlotType::Digits | SlotType::Id | SlotType::Phone) =>
        {
            Err(p.at(
                here.clone(),
                format!("node {node_name:?}: `collect = \"dtmf\"` expects a slot of type digits, id or phone"),
            ))
        }
        _ => Ok(()),
    }
}

/// The ways a node has to move on, to check that it is not a dead end.
struct WayOn<'a> {
    next: bool,
    transitions: &'a [Transition],
    on_intent: bool,
    dtmf: bool,
    routes: bool,
}

impl WayOn<'_> {
    /// A node collects, ends the call or leads on; an intent-collecting node routes some intent.
    fn check(
        &self,
        n: &RawNode,
        here: &Range<usize>,
        node_name: &str,
        p: &Placer,
    ) -> Result<(), FlowError> {
        let ends = n.transfer.is_some() || n.hangup.is_some();
        if n.collect.is_none() && !ends && !self.next && self.transitions.is_empty() {
            return Err(p.at(
                here.clone(),
                format!(
                    "node {node_name:?} is a dead end: expected `collect`, `next`, \
                     `transitions`, `transfer` or `hangup`"
                ),
            ));
        }
        if n.collect == Some(Collect::Intent)
            && !self.on_intent
            && !self.dtmf
            && !self.transitions.iter().any(|t| t.intent.is_some())
            && !self.routes
        {
            return Err(p.at(
                here.clone(),
                format!(
                    "node {node_name:?} collects an intent but routes none: expected \
                     `on_intent`, `dtmf`, intent `transitions` or flow-level [routes]"
                ),
            ));
        }
        Ok(())
    }
}
