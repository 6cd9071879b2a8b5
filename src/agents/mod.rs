//! Humans on the line: queues of agents (automatic call distribution), the desk that runs
//! them, and the hold audio a caller hears while a human is found.
//!
//! A flow hands a call to a queue with `transfer_target = "queue:NAME"` (a `[agents.queues]`
//! name). The call's driver then asks the [`desk::AgentDesk`] for a human: the caller hears
//! [`hold::HoldAudio`] and their place in the queue, the desk rings the longest-idle agent who
//! fits ([`acd::Acd`]), and the agent's console (`/agent`) accepts with its WebRTC offer. The
//! agent's audio becomes a leg of the call ([`crate::call::leg`]), bridged to the caller, and
//! the call is recorded on, both sides. Every way it can end is a `transfer_result` event; on
//! any outcome but `answered` the call goes back to the bot.
//!
//! Ownership: [`acd`] decides (sans-IO, time passed in); [`desk`] owns the task, the consoles'
//! and the calls' channels; the call driver owns the caller's side (hold audio, legs); the web
//! side owns the agent's media.

pub mod acd;
pub mod config;
pub mod desk;
pub mod hold;
pub mod pop;
pub mod words;

pub use acd::{AgentState, TransferOutcome};
pub use config::AgentsConfig;

/// The prefix of a transfer target that names a queue.
pub const QUEUE_PREFIX: &str = "queue:";

/// The queue a transfer target names (`queue:support` → `support`), if it names one.
pub fn queue_of(target: &str) -> Option<&str> {
    target.strip_prefix(QUEUE_PREFIX).filter(|q| !q.is_empty())
}

/// What a caller waiting in a queue hears about their place in it.
pub fn position_prompt(
    language: crate::language::Language,
    position: usize,
    wait_s: u64,
) -> String {
    let minutes = wait_s.div_ceil(60).max(1);
    match language {
        crate::language::Language::Zh => {
            format!("您排在第{position}位，预计等待约{minutes}分钟。请不要挂机。")
        }
        _ => {
            let unit = if minutes == 1 { "minute" } else { "minutes" };
            format!("You are number {position} in the queue. The wait is about {minutes} {unit}. Please stay on the line.")
        }
    }
}
