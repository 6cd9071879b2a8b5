//! `hotline chat`: the dialogue engine in text, without audio, for flow authors and tests.
//!
//! Caller lines come from `input`, one per turn; the bot's replies go to `output`. With
//! `events`, the output is the same JSON event lines a call records in `events.jsonl`
//! (`call_start`, `transcript`, `dtmf`, `intent`, `slot`, `knowledge_gap`, `bot_reply`,
//! `transfer`, `hangup`, `error`), timed by a virtual clock: each caller line advances it, so runs
//! are repeatable. Lines that start with `/` are commands:
//!
//! | line | means |
//! |---|---|
//! | `/silence` | the caller says nothing until the no-input timeout |
//! | `/dtmf 47#` | the caller presses keys (one turn per key) |
//! | `/shout words` | the caller says `words` loudly (20 dB over their baseline) |
//! | `/call [flow=NAME] [key=value ...]` | end this call and start another (on flow `NAME`, else the `--flow` one), with caller context |
//! | `/hangup` | the caller hangs up |
//!
//! The flow is chosen as for any call ([`DialogueFactory::plan`]): `--flow` and `flow=` take a
//! flow name or the path of a flow file in `dialogue.flows_dir`; anything else is an error that
//! lists the valid names. Blank lines and lines starting with `#` are ignored. Each new call
//! picks up flows that changed on disk (hot reload); calls in progress keep the version they
//! started with.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::Arc;

use crate::config::{Config, DialogueEngineKind};
use crate::dialogue::engine::FlowFactory;
use crate::dialogue::{
    self, plan_flow_arg, Action, BotTurn, CallContext, CallPlan, CallerInput, Dialogue,
    DialogueError, DialogueFactory, FlowArgError, FlowChoice,
};
use crate::session::event::{CallEvent, EventKind, TurnId};

/// Why a chat could not run.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("loading the dialogue: {0}")]
    Load(#[from] DialogueError),
    #[error(transparent)]
    Flow(#[from] FlowArgError),
    #[error("chat i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {message}")]
    BadLine { line: usize, message: String },
}

/// The virtual time one spoken caller line takes.
const SPEECH_MS: u64 = 2_000;
/// The virtual time between keys.
const KEY_MS: u64 = 300;
/// How much louder than the baseline `/shout` is.
const SHOUT_DB: f32 = 20.0;

/// One chat call.
struct ChatCall {
    dialogue: Box<dyn Dialogue>,
    turn: u32,
    open: bool,
}

struct Chat<'a, W: Write> {
    out: W,
    events: bool,
    t_ms: u64,
    no_input_ms: u64,
    calls: u32,
    flow_factory: Option<&'a FlowFactory>,
    factory: Arc<dyn DialogueFactory>,
}

impl<W: Write> Chat<'_, W> {
    fn event(&mut self, kind: EventKind) -> std::io::Result<()> {
        if self.events {
            let event = CallEvent {
                t_ms: self.t_ms,
                kind,
            };
            let line = serde_json::to_string(&event).map_err(std::io::Error::other)?;
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }

    fn note(&mut self, text: &str) -> std::io::Result<()> {
        if !self.events {
            writeln!(self.out, "  · {text}")?;
        }
        Ok(())
    }

    /// Starts the clock for a new call and reports flows that failed to reload (a call about
    /// to start is when flows are reloaded), before the call's flow is chosen.
    fn begin_call(&mut self) -> Result<(), ChatError> {
        self.calls += 1;
        self.t_ms = 0;
        if let Some(f) = self.flow_factory {
            for error in f.refresh() {
                self.event(EventKind::Error {
                    code: "flow.reload".into(),
                    message: error.clone(),
                })?;
                if !self.events {
                    writeln!(
                        self.out,
                        "! flow reload failed, the previous version stays: {error}"
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Starts a call on `plan` (after [`Chat::begin_call`]) and answers with its greeting.
    fn start_call(
        &mut self,
        plan: CallPlan,
        vars: BTreeMap<String, String>,
    ) -> Result<ChatCall, ChatError> {
        let ctx = CallContext {
            plan,
            vars: vars.clone(),
        };
        let mut dialogue = self.factory.new_dialogue(&ctx);
        self.event(EventKind::CallStart {
            call_id: Some(format!("chat-{}", self.calls)),
            transport: Some("chat".into()),
            from: vars.get("from").cloned(),
            to: vars.get("to").cloned(),
            codec: None,
            language: None,
        })?;
        let mut call = ChatCall {
            dialogue: Box::new(NoDialogue),
            turn: 0,
            open: true,
        };
        let turn = self.ask(&mut dialogue, &CallerInput::Start, TurnId(0))?;
        call.dialogue = dialogue;
        self.finish_turn(&mut call, turn)?;
        Ok(call)
    }

    /// Runs one input through the dialogue, printing prompts as they stream in text mode.
    fn ask(
        &mut self,
        dialogue: &mut Box<dyn Dialogue>,
        input: &CallerInput,
        _turn: TurnId,
    ) -> std::io::Result<BotTurn> {
        let mut streamed = Vec::new();
        let events = self.events;
        let out = &mut self.out;
        let mut io_error = None;
        let turn = dialogue.handle_streaming(input, &mut |p| {
            streamed.push(p.text.clone());
            if !events {
                if let Err(e) = writeln!(out, "bot: {}", p.text).and_then(|_| out.flush()) {
                    io_error.get_or_insert(e);
                }
            }
        });
        if let Some(e) = io_error {
            return Err(e);
        }
        Ok(turn)
    }

    fn finish_turn(&mut self, call: &mut ChatCall, turn: BotTurn) -> Result<(), ChatError> {
        let id = TurnId(call.turn);
        if let Some(m) = &turn.intent {
            self.event(EventKind::Intent {
                turn: id,
                name: m.name.clone(),
                confidence: m.confidence,
            })?;
            self.note(&format!("intent {} ({:.2})", m.name, m.confidence))?;
        }
        for (name, value) in &turn.slots {
            self.event(EventKind::Slot {
                turn: id,
                name: name.clone(),
                value: value.clone(),
            })?;
            self.note(&format!("slot {name} = {value}"))?;
        }
        if let Some(gap) = &turn.knowledge_gap {
            self.event(EventKind::KnowledgeGap {
                turn: id,
                text: gap.clone(),
            })?;
            self.note(&format!("knowledge gap: {gap}"))?;
        }
        for prompt in &turn.say {
            self.event(EventKind::BotReply {
                turn: id,
                text: prompt.text.clone(),
            })?;
        }
        match &turn.action {
            Some(Action::Transfer { target, reason }) => {
                self.event(EventKind::Transfer {
                    target: target.clone(),
                    reason: reason.clone(),
                })?;
                self.note(&format!("transfer to {target} ({reason})"))?;
                call.open = false;
            }
            Some(Action::Hangup { reason }) => {
                self.event(EventKind::Hangup {
                    reason: reason.clone(),
                })?;
                self.note(&format!("hangup ({reason})"))?;
                call.open = false;
            }
            None => {}
        }
        self.out.flush()?;
        Ok(())
    }

    fn input(
        &mut self,
        call: &mut ChatCall,
        input: CallerInput,
        advance_ms: u64,
    ) -> Result<(), ChatError> {
        if !call.open {
            self.note("the call has ended; `/call` starts another")?;
            return Ok(());
        }
        self.t_ms += advance_ms;
        call.turn += 1;
        let id = TurnId(call.turn);
        match &input {
            CallerInput::Speech { text, .. } => self.event(EventKind::Transcript {
                turn: id,
                text: text.clone(),
                is_final: true,
            })?,
            CallerInput::Dtmf { digit } => self.event(EventKind::Dtmf {
                digit: digit.to_string(),
            })?,
            CallerInput::NoInput | CallerInput::Start => {}
        }
        let turn = self.ask(&mut call.dialogue, &input, id)?;
        self.finish_turn(call, turn)
    }
}

/// A placeholder while a call's dialogue is being built.
struct NoDialogue;

impl Dialogue for NoDialogue {
    fn handle(&mut self, _input: &CallerInput) -> BotTurn {
        BotTurn::default()
    }
}

fn parse_vars(
    words: &[&str],
    line: usize,
) -> Result<(Option<String>, BTreeMap<String, String>), ChatError> {
    let mut flow = None;
    let mut vars = BTreeMap::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(ChatError::BadLine {
                line,
                message: format!("{w:?}: expected key=value"),
            });
        };
        if k == "flow" {
            flow = Some(v.to_string());
        } else {
            vars.insert(k.to_string(), v.to_string());
        }
    }
    Ok((flow, vars))
}

/// Runs a text chat: caller lines from `input`, the bot's replies (or events) to `output`.
pub fn run_chat(
    config: &Config,
    flow: Option<&str>,
    events: bool,
    input: impl BufRead,
    output: impl Write,
) -> Result<(), ChatError> {
    let flow_factory = match config.dialogue.engine {
        DialogueEngineKind::Flow => Some(Arc::new(FlowFactory::load(
            &config.dialogue,
            config.language,
        )?)),
        DialogueEngineKind::Basic => None,
    };
    let factory: Arc<dyn DialogueFactory> = match &flow_factory {
        Some(f) => f.clone(),
        None => dialogue::factory_from_config(config)?,
    };
    let mut chat = Chat {
        out: output,
        events,
        t_ms: 0,
        no_input_ms: config.session.no_input_timeout_ms,
        calls: 0,
        flow_factory: flow_factory.as_deref(),
        factory,
    };
    let default_vars: BTreeMap<String, String> = [("from".to_string(), "chat".to_string())]
        .into_iter()
        .collect();
    // `--flow` is checked before any caller line is read: a typo fails at once.
    chat.begin_call()?;
    let plan = plan_flow_arg(chat.factory.as_ref(), flow)?;
    let mut call = chat.start_call(plan, default_vars.clone())?;
    for (i, line) in input.lines().enumerate() {
        let line_no = i + 1;
        let line = line?;
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let Some(command) = text.strip_prefix('/') else {
            chat.input(
                &mut call,
                CallerInput::Speech {
                    text: text.to_string(),
                    level_vs_baseline_db: 0.0,
                },
                SPEECH_MS,
            )?;
            continue;
        };
        let mut words = command.split_whitespace();
        let name = words.next().unwrap_or("");
        let rest: Vec<&str> = words.collect();
        match name {
            "silence" => {
                let ms = chat.no_input_ms;
                chat.input(&mut call, CallerInput::NoInput, ms)?
            }
            "dtmf" => {
                let keys: String = rest.concat();
                if keys.is_empty()
                    || !keys
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
                {
                    return Err(ChatError::BadLine {
                        line: line_no,
                        message: format!("/dtmf {keys:?}: expected keys 0-9, * or #"),
                    });
                }
                for digit in keys.chars() {
                    chat.input(&mut call, CallerInput::Dtmf { digit }, KEY_MS)?;
                }
            }
            "shout" => {
                let said = rest.join(" ");
                chat.input(
                    &mut call,
                    CallerInput::Speech {
                        text: said,
                        level_vs_baseline_db: SHOUT_DB,
                    },
                    SPEECH_MS,
                )?
            }
            "hangup" => {
                if call.open {
                    chat.t_ms += SPEECH_MS;
                    chat.event(EventKind::Hangup {
                        reason: "caller.hangup".into(),
                    })?;
                    chat.note("caller hung up")?;
                    call.open = false;
                }
            }
            "call" => {
                if call.open {
                    chat.event(EventKind::Hangup {
                        reason: "caller.hangup".into(),
                    })?;
                }
                let (f, mut vars) = parse_vars(&rest, line_no)?;
                for (k, v) in &default_vars {
                    vars.entry(k.clone()).or_insert_with(|| v.clone());
                }
                if !chat.events {
                    writeln!(chat.out, "--- new call ---")?;
                }
                chat.begin_call()?;
                let plan = match f {
                    Some(name) => {
                        chat.factory
                            .plan(&FlowChoice::flow(Some(&name)))
                            .map_err(|e| ChatError::BadLine {
                                line: line_no,
                                message: format!("/call flow={name}: {e}"),
                            })?
                    }
                    None => plan_flow_arg(chat.factory.as_ref(), flow)?,
                };
                call = chat.start_call(plan, vars)?;
            }
            other => {
                return Err(ChatError::BadLine {
                    line: line_no,
                    message: format!(
                    "unknown command /{other} (expected /silence, /dtmf, /shout, /call or /hangup)"
                ),
                })
            }
        }
    }
    if call.open {
        chat.t_ms += SPEECH_MS;
        chat.event(EventKind::Hangup {
            reason: "caller.hangup".into(),
        })?;
    }
    chat.out.flush()?;
    Ok(())
}
