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

use std::time::Duration;

use crate::call::core::CallCore;
use crate::call::virtual_call::{Timing, VirtualCall};
use crate::config::{Config, DialogueEngineKind};
use crate::dialogue::engine::FlowFactory;
use crate::dialogue::{
    self, plan_flow_arg, CallContext, CallPlan, DialogueError, DialogueFactory, FlowArgError,
    FlowChoice,
};
use crate::session::{CallEvent, CallSession, EndReason, ErrorCode, EventKind};

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

/// One chat call: a [`VirtualCall`] with text in place of audio, no recognizer and silent
/// replies, on instant timing (repeatable runs).
struct ChatCall {
    call: VirtualCall<'static>,
}

impl ChatCall {
    fn open(&self) -> bool {
        !self.call.is_ended()
    }
}

struct Chat<'a, W: Write> {
    out: W,
    events: bool,
    config: &'a Config,
    calls: u32,
    flow_factory: Option<&'a FlowFactory>,
    factory: Arc<dyn DialogueFactory>,
}

impl<W: Write> Chat<'_, W> {
    /// Writes events: as JSON lines, or as the bot's lines and notes in text mode.
    fn write(&mut self, events: Vec<CallEvent>) -> std::io::Result<()> {
        for event in events {
            if self.events {
                let line = serde_json::to_string(&event).map_err(std::io::Error::other)?;
                writeln!(self.out, "{line}")?;
                continue;
            }
            match &event.kind {
                EventKind::BotReply { text, .. } => writeln!(self.out, "bot: {text}")?,
                EventKind::Intent {
                    name, confidence, ..
                } => writeln!(self.out, "  · intent {name} ({confidence:.2})")?,
                EventKind::Slot { name, value, .. } => {
                    writeln!(self.out, "  · slot {name} = {value}")?
                }
                EventKind::KnowledgeGap { text, .. } => {
                    writeln!(self.out, "  · knowledge gap: {text}")?
                }
                EventKind::Transfer { target, reason } => {
                    writeln!(self.out, "  · transfer to {target} ({reason})")?
                }
                EventKind::Hangup { reason } => writeln!(self.out, "  · hangup ({reason})")?,
                EventKind::Error { code, message } => {
                    writeln!(self.out, "  · error {code}: {message}")?
                }
                _ => {}
            }
        }
        self.out.flush()
    }

    fn note(&mut self, text: &str) -> std::io::Result<()> {
        if !self.events {
            writeln!(self.out, "  · {text}")?;
        }
        Ok(())
    }

    /// Counts a new call and reports flows that failed to reload (a call about to start is
    /// when flows are reloaded), before the call's flow is chosen.
    fn begin_call(&mut self) -> Result<(), ChatError> {
        self.calls += 1;
        if let Some(f) = self.flow_factory {
            let errors: Vec<CallEvent> = f
                .refresh()
                .into_iter()
                .map(|message| CallEvent {
                    t_ms: 0,
                    kind: EventKind::Error {
                        code: ErrorCode::FlowReload,
                        message,
                    },
                })
                .collect();
            if self.events {
                self.write(errors)?;
            } else {
                for e in errors {
                    if let EventKind::Error { message, .. } = e.kind {
                        writeln!(
                            self.out,
                            "! flow reload failed, the previous version stays: {message}"
                        )?;
                    }
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
        let language = plan.language();
        let flow_name = plan.flow().to_string();
        let ctx = CallContext {
            plan,
            vars: vars.clone(),
        };
        let dialogue = self.factory.new_dialogue(&ctx);
        let session = CallSession::new(self.config.session.clone(), language);
        let core = CallCore::new(None, session).keeping_events();
        let mut call = VirtualCall::new(core, dialogue, None, None, Timing::Instant);
        call.start(EventKind::CallStart {
            call_id: Some(format!("chat-{}", self.calls)),
            transport: Some("chat".into()),
            from: vars.get("from").cloned(),
            to: vars.get("to").cloned(),
            codec: None,
            language: Some(language.code().to_string()),
            flow: Some(flow_name),
            started_unix_ms: Some(crate::call::unix_ms_now()),
        });
        call.run_until_idle();
        let events = call.take_events();
        self.write(events)?;
        Ok(ChatCall { call })
    }

    /// What the caller does on one line, then the bot's answer.
    fn input(
        &mut self,
        call: &mut ChatCall,
        input: ChatInput,
        advance_ms: u64,
    ) -> Result<(), ChatError> {
        if !call.open() {
            self.note("the call has ended; `/call` starts another")?;
            return Ok(());
        }
        let c = &mut call.call;
        match input {
            // Nothing happens until the no-input timeout.
            ChatInput::Silence => c.wait_for_timer(),
            _ => c.wait(Duration::from_millis(advance_ms)),
        }
        let now = c.now();
        let session = c.core_mut().session_mut();
        match input {
            ChatInput::Say { text, level_db } => session.handle_text(&text, level_db, now),
            ChatInput::Key(digit) => session.handle_dtmf(digit, now),
            ChatInput::Silence => {}
            ChatInput::Hangup => session.handle_hangup(EndReason::CallerHangup, now),
        }
        c.run_until_idle();
        let events = c.take_events();
        self.write(events)?;
        Ok(())
    }
}

/// One thing the caller does.
enum ChatInput {
    Say {
        text: String,
        level_db: f32,
    },
    Key(char),
    /// Nothing: the no-input timeout runs out during the wait.
    Silence,
    Hangup,
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
        None => dialogue::factory_from_config(&config.dialogue, config.language)?,
    };
    let mut chat = Chat {
        out: output,
        events,
        config,
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
                ChatInput::Say {
                    text: text.to_string(),
                    level_db: 0.0,
                },
                SPEECH_MS,
            )?;
            continue;
        };
        let mut words = command.split_whitespace();
        let name = words.next().unwrap_or("");
        let rest: Vec<&str> = words.collect();
        match name {
            "silence" => chat.input(&mut call, ChatInput::Silence, 0)?,
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
                    chat.input(&mut call, ChatInput::Key(digit), KEY_MS)?;
                }
            }
            "shout" => {
                let said = rest.join(" ");
                chat.input(
                    &mut call,
                    ChatInput::Say {
                        text: said,
                        level_db: SHOUT_DB,
                    },
                    SPEECH_MS,
                )?
            }
            "hangup" => {
                if call.open() {
                    chat.input(&mut call, ChatInput::Hangup, SPEECH_MS)?;
                }
            }
            "call" => {
                if call.open() {
                    chat.input(&mut call, ChatInput::Hangup, 0)?;
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
    if call.open() {
        chat.input(&mut call, ChatInput::Hangup, SPEECH_MS)?;
    }
    chat.out.flush()?;
    Ok(())
}
