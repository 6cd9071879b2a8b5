//! The `[agents]` section: queues of human agents, and each agent's skills and languages.
//!
//! ```toml
//! [agents.queues.support]          # a flow transfers here with `transfer_target = "queue:support"`
//! ring_timeout_s = 20              # an agent who does not answer is set away; the next one rings
//! max_wait_s = 120                 # then the caller goes back to the bot
//! wrap_up_s = 10                   # after a call, before the agent rings again
//! warm = false                     # true: the agent hears a summary first, then connects
//! overflow = "queue:billing"       # nobody can take it here: try there (or a sip: URI)
//!
//! [agents.queues.billing]
//! skill = "billing"                # only agents with this skill
//!
//! [agents]
//! sip_transfer = "bridge"          # `sip:` targets: hotline calls and bridges ("refer": REFER)
//! sip_ring_timeout_s = 30
//! refer_fallback = true            # a refused REFER: hotline calls the target and bridges it
//!
//! [agents.people.ann]              # a user (`hotline users add ann --role agent`)
//! skills = ["billing"]
//! languages = ["en"]               # empty: any language
//! ```
//!
//! Invariants: every queue has positive timeouts; an agent not listed under `people` has no
//! skills and takes calls in any language.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::language::Language;

/// A value that parses but makes no sense; names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `agents.{key}`: {message}")]
pub struct AgentsConfigError {
    pub key: String,
    pub message: String,
}

/// One queue.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Only agents with this skill take the queue's calls.
    pub skill: Option<String>,
    /// How long a call rings one agent before it rings the next (the first is set away).
    pub ring_timeout_s: u64,
    /// How long a caller waits in the queue before going back to the bot.
    pub max_wait_s: u64,
    /// An agent's wrap-up time after each call, before they ring again.
    pub wrap_up_s: u64,
    /// Warm transfer: the agent first hears a spoken summary of the call (the caller, on
    /// hold, does not), then connects the caller or declines.
    pub warm: bool,
    /// Where a caller goes when nobody here can take the call (nobody signed in, or the
    /// longest wait passed): another `queue:NAME` or a `sip:` target. None: back to the bot.
    pub overflow: Option<String>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            skill: None,
            ring_timeout_s: 20,
            max_wait_s: 120,
            wrap_up_s: 10,
            warm: false,
            overflow: None,
        }
    }
}

/// What one agent can take.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentProfile {
    pub skills: Vec<String>,
    /// Empty: any language.
    pub languages: Vec<Language>,
}

/// How a transfer to a `sip:` target goes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SipTransfer {
    /// A SIP caller is sent there with REFER (blind: hotline leaves the call); any other
    /// caller is bridged.
    #[default]
    Refer,
    /// hotline calls the target and bridges it to the caller, for every caller: the call
    /// stays recorded, and comes back to the bot when nobody answers.
    Bridge,
}

/// The `[agents]` section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsConfig {
    pub queues: BTreeMap<String, QueueConfig>,
    pub people: BTreeMap<String, AgentProfile>,
    /// How `sip:` transfer targets are reached.
    pub sip_transfer: SipTransfer,
    /// How long a `sip:` target bridged by hotline may ring.
    pub sip_ring_timeout_s: u64,
    /// When a SIP caller's REFER fails, hotline calls the target itself and bridges it.
    pub refer_fallback: bool,
    /// Warm transfer to `sip:` targets bridged by hotline: the agent hears the summary, then
    /// presses 1 to take the call or 2 to decline.
    pub sip_warm: bool,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        let mut queues = BTreeMap::new();
        queues.insert("support".to_string(), QueueConfig::default());
        Self {
            queues,
            people: BTreeMap::new(),
            sip_transfer: SipTransfer::default(),
            sip_ring_timeout_s: 30,
            refer_fallback: true,
            sip_warm: false,
        }
    }
}

impl AgentsConfig {
    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), AgentsConfigError> {
        if self.sip_ring_timeout_s == 0 {
            return Err(AgentsConfigError {
                key: "sip_ring_timeout_s".into(),
                message: "must be at least 1".into(),
            });
        }
        for (name, q) in &self.queues {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
            {
                return Err(AgentsConfigError {
                    key: format!("queues.{name}"),
                    message: "a queue's name is letters, digits, '-' and '_'".into(),
                });
            }
            if let Some(target) = &q.overflow {
                let problem = match crate::agents::queue_of(target) {
                    Some(other) if other == name => Some("overflows to its own queue".to_string()),
                    Some(other) if !self.queues.contains_key(other) => Some(format!(
                        "names no queue; the queues are: {}",
                        self.queues.keys().cloned().collect::<Vec<_>>().join(", ")
                    )),
                    Some(_) => None,
                    None if target.starts_with("sip:") => None,
                    None => Some("is neither `queue:NAME` nor a `sip:` URI".to_string()),
                };
                if let Some(problem) = problem {
                    return Err(AgentsConfigError {
                        key: format!("queues.{name}.overflow"),
                        message: format!("`{target}` {problem}"),
                    });
                }
            }
            for (key, value) in [
                ("ring_timeout_s", q.ring_timeout_s),
                ("max_wait_s", q.max_wait_s),
            ] {
                if value == 0 {
                    return Err(AgentsConfigError {
                        key: format!("queues.{name}.{key}"),
                        message: "must be at least 1".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The profile of agent `name` (no skills, any language when not listed).
    pub fn profile(&self, name: &str) -> AgentProfile {
        self.people.get(name).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_and_people_parse_and_bad_values_name_their_key() {
        let c: AgentsConfig = toml::from_str(
            "[queues.billing]\nskill = \"billing\"\nmax_wait_s = 60\n[people.ann]\nskills = [\"billing\"]\nlanguages = [\"zh\"]\n",
        )
        .expect("parses");
        assert_eq!(c.queues["billing"].max_wait_s, 60);
        assert_eq!(c.queues["billing"].ring_timeout_s, 20);
        assert_eq!(c.profile("ann").languages, vec![Language::Zh]);
        assert!(c.profile("bob").skills.is_empty());
        let bad: AgentsConfig =
            toml::from_str("[queues.support]\nring_timeout_s = 0\n").expect("parses");
        assert_eq!(
            bad.validate().expect_err("zero").to_string(),
            "key `agents.queues.support.ring_timeout_s`: must be at least 1"
        );
        let nowhere: AgentsConfig =
            toml::from_str("[queues.support]\noverflow = \"queue:sales\"\n").expect("parses");
        assert_eq!(
            nowhere.validate().expect_err("unknown").to_string(),
            "key `agents.queues.support.overflow`: `queue:sales` names no queue; the queues are: support"
        );
    }
}
