//! The live calls panel: every call in progress, with who called, the flow, how long it has
//! run and its latest transcript lines. Read from the calls' own record folders, which are
//! written (redacted) as the calls go, so the panel shows what the store will keep and needs
//! no plumbing into the calls.

use std::path::Path;

use crate::session::{CallEvent, EventKind};

/// Transcript lines shown per live call.
const LINES: usize = 6;

/// One call in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveCall {
    pub id: String,
    pub transport: String,
    pub from: String,
    pub flow: String,
    pub started_unix_ms: u64,
    /// Its latest lines: ("caller", "bot" or "agent", text).
    pub lines: Vec<(&'static str, String)>,
}

/// The live call `id`, from its record folder under `records_dir` (`None` when unreadable).
pub fn read(records_dir: &Path, id: &str) -> Option<LiveCall> {
    let text = std::fs::read_to_string(records_dir.join(id).join("events.jsonl")).ok()?;
    let mut call = LiveCall {
        id: id.to_string(),
        transport: String::new(),
        from: String::new(),
        flow: String::new(),
        started_unix_ms: 0,
        lines: Vec::new(),
    };
    // A line being written may be cut: events that do not parse are skipped.
    for event in text
        .lines()
        .filter_map(|l| serde_json::from_str::<CallEvent>(l).ok())
    {
        match event.kind {
            EventKind::CallStart {
                transport,
                from,
                flow,
                started_unix_ms,
                ..
            } => {
                call.transport = transport.unwrap_or_default();
                call.from = from.unwrap_or_default();
                call.flow = flow.unwrap_or_default();
                call.started_unix_ms = started_unix_ms.unwrap_or_default();
            }
            EventKind::Transcript {
                text,
                is_final: true,
                ..
            } => call.lines.push(("caller", text)),
            EventKind::BotReply { text, .. } => call.lines.push(("bot", text)),
            EventKind::AgentTranscript { text, .. } => call.lines.push(("agent", text)),
            _ => {}
        }
    }
    let skip = call.lines.len().saturating_sub(LINES);
    call.lines.drain(..skip);
    Some(call)
}
