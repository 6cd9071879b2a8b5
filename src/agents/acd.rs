//! `Acd`: automatic call distribution, sans-IO, on time passed in.
//!
//! Calls wait in named queues; agents sign in with skills and languages and set themselves
//! available or away. [`Acd::poll`] hands out work as [`AcdOutput`]s:
//! - a waiting call rings the **longest-idle** available agent who has the queue's skill and
//!   speaks the call's language, and whom this call has not rung before;
//! - an agent who does not answer within the queue's `ring_timeout_s` is set away, and the call
//!   rings the next one;
//! - a call that waits longer than `max_wait_s`, or that no signed-in agent could ever take,
//!   gives up with a [`TransferOutcome`] (the caller goes back to the bot);
//! - every waiting call is told its position and an estimated wait whenever its position
//!   changes.
//!
//! Agent states: available, ringing, busy (on a call), wrap-up (after a call, for the queue's
//! `wrap_up_s`) and away. An agent's idle time counts from the moment they last became
//! available.
//!
//! Invariants: a call rings at most one agent at a time, and an agent rings for at most one
//! call; a call leaves the queue exactly once (answered, given up or left), and each way out
//! is one output; nothing here reads a clock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::language::Language;
pub use crate::session::reason::TransferOutcome;

use super::config::{AgentProfile, QueueConfig};

/// An agent's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    Available,
    Ringing,
    Busy,
    WrapUp,
    Away,
}

impl AgentState {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            AgentState::Available => "available",
            AgentState::Ringing => "ringing",
            AgentState::Busy => "busy",
            AgentState::WrapUp => "wrap_up",
            AgentState::Away => "away",
        }
    }
}

/// Why the ACD refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    #[error("no queue named `{name}`; the queues are: {valid}")]
    UnknownQueue { name: String, valid: String },
    #[error("agent `{0}` is not signed in")]
    NotSignedIn(String),
    #[error("agent `{agent}` cannot do that while {state}")]
    NotNow { agent: String, state: &'static str },
    #[error("call `{call}` is not ringing agent `{agent}`")]
    NotRinging { call: String, agent: String },
    #[error("call `{0}` is already queued")]
    AlreadyQueued(String),
}

/// What the ACD asks its owner to do or tell.
#[derive(Debug, Clone, PartialEq)]
pub enum AcdOutput {
    /// Ring `agent` with `call` (the console shows the call; the agent accepts or declines).
    Ring { call: String, agent: String },
    /// `agent` no longer rings for `call` (it timed out, or the caller left).
    StopRinging { call: String, agent: String },
    /// The call's place in its queue (1 is next) and an estimated wait.
    Position {
        call: String,
        position: usize,
        wait_s: u64,
    },
    /// `agent` accepted `call`.
    Answered { call: String, agent: String },
    /// The call left the queue unanswered.
    GaveUp {
        call: String,
        outcome: TransferOutcome,
    },
    /// An agent's state changed.
    AgentState { agent: String, state: AgentState },
}

struct Agent {
    profile: AgentProfile,
    state: AgentState,
    /// When the agent last became available (the longest idle rings first).
    idle_since: Duration,
    /// The call ringing this agent, and when the ring times out.
    ringing: Option<(String, Duration)>,
    /// When wrap-up ends.
    wrap_up_until: Option<Duration>,
}

struct Waiting {
    call: String,
    queue: String,
    language: Language,
    enqueued: Duration,
    /// The agent it rings now.
    ringing: Option<String>,
    /// Agents it has rung (not rung again), and whether any declined.
    tried: BTreeSet<String>,
    declined: bool,
    /// The last position told, to tell only changes.
    told: Option<usize>,
}

/// The queues and agents. See the module docs.
pub struct Acd {
    queues: BTreeMap<String, QueueConfig>,
    agents: BTreeMap<String, Agent>,
    waiting: VecDeque<Waiting>,
    outputs: VecDeque<AcdOutput>,
    /// Mean handling time of answered calls, for the wait estimate.
    mean_handle: Duration,
    /// When each busy agent's call started, for `mean_handle`.
    busy_since: BTreeMap<String, Duration>,
}

impl Acd {
    pub fn new(queues: BTreeMap<String, QueueConfig>) -> Self {
        Self {
            queues,
            agents: BTreeMap::new(),
            waiting: VecDeque::new(),
            outputs: VecDeque::new(),
            mean_handle: Duration::from_secs(120),
            busy_since: BTreeMap::new(),
        }
    }

    /// The queues' names.
    pub fn queue_names(&self) -> Vec<String> {
        self.queues.keys().cloned().collect()
    }

    /// An agent's state, if signed in.
    pub fn agent_state(&self, agent: &str) -> Option<AgentState> {
        self.agents.get(agent).map(|a| a.state)
    }

    /// Signed-in agents with their states, by name.
    pub fn agents(&self) -> Vec<(String, AgentState)> {
        self.agents
            .iter()
            .map(|(n, a)| (n.clone(), a.state))
            .collect()
    }

    /// Waiting calls per queue: (queue, call, waited so far).
    pub fn waiting(&self, now: Duration) -> Vec<(String, String, Duration)> {
        self.waiting
            .iter()
            .map(|w| {
                (
                    w.queue.clone(),
                    w.call.clone(),
                    now.saturating_sub(w.enqueued),
                )
            })
            .collect()
    }

    /// An agent signs in (away until they say they are available). Signing in again keeps
    /// the state and takes the new profile.
    pub fn sign_in(&mut self, agent: &str, profile: AgentProfile, now: Duration) {
        match self.agents.get_mut(agent) {
            Some(a) => a.profile = profile,
            None => {
                self.agents.insert(
                    agent.to_string(),
                    Agent {
                        profile,
                        state: AgentState::Away,
                        idle_since: now,
                        ringing: None,
                        wrap_up_until: None,
                    },
                );
                self.outputs.push_back(AcdOutput::AgentState {
                    agent: agent.to_string(),
                    state: AgentState::Away,
                });
            }
        }
    }

    /// An agent signs out (closed the console): a call ringing them rings the next agent.
    pub fn sign_out(&mut self, agent: &str, now: Duration) {
        if let Some(a) = self.agents.remove(agent) {
            if let Some((call, _)) = a.ringing {
                self.unring(&call, agent, false);
            }
            self.busy_since.remove(agent);
        }
        self.assign(now);
    }

    /// The agent sets themselves available or away.
    pub fn set_state(
        &mut self,
        agent: &str,
        state: AgentState,
        now: Duration,
    ) -> Result<(), AcdError> {
        let a = self
            .agents
            .get_mut(agent)
            .ok_or_else(|| AcdError::NotSignedIn(agent.to_string()))?;
        let allowed = matches!(state, AgentState::Available | AgentState::Away)
            && matches!(
                a.state,
                AgentState::Available | AgentState::Away | AgentState::WrapUp
            );
        if !allowed {
            return Err(AcdError::NotNow {
                agent: agent.to_string(),
                state: a.state.code(),
            });
        }
        if a.state != state {
            if state == AgentState::Available {
                a.idle_since = now;
            }
            a.wrap_up_until = None;
            self.set(agent, state);
        }
        self.assign(now);
        Ok(())
    }

    /// A call joins `queue`.
    pub fn enqueue(
        &mut self,
        call: &str,
        queue: &str,
        language: Language,
        now: Duration,
    ) -> Result<(), AcdError> {
        if !self.queues.contains_key(queue) {
            return Err(AcdError::UnknownQueue {
                name: queue.to_string(),
                valid: self.queue_names().join(", "),
            });
        }
        if self.waiting.iter().any(|w| w.call == call) {
            return Err(AcdError::AlreadyQueued(call.to_string()));
        }
        self.waiting.push_back(Waiting {
            call: call.to_string(),
            queue: queue.to_string(),
            language,
            enqueued: now,
            ringing: None,
            tried: BTreeSet::new(),
            declined: false,
            told: None,
        });
        self.assign(now);
        Ok(())
    }

    /// The caller hung up while waiting (or the call ended some other way).
    pub fn leave(&mut self, call: &str, now: Duration) {
        if let Some(i) = self.waiting.iter().position(|w| w.call == call) {
            if let Some(w) = self.waiting.remove(i) {
                if let Some(agent) = w.ringing {
                    self.stop_ringing_agent(&agent, &w.call);
                    self.outputs.push_back(AcdOutput::StopRinging {
                        call: w.call.clone(),
                        agent: agent.clone(),
                    });
                    self.back_to_available(&agent, now);
                }
                self.outputs.push_back(AcdOutput::GaveUp {
                    call: w.call,
                    outcome: TransferOutcome::CallerHangup,
                });
            }
        }
        self.assign(now);
    }

    /// The agent accepts the call ringing them: it leaves the queue, they are busy.
    pub fn accept(&mut self, agent: &str, call: &str, now: Duration) -> Result<(), AcdError> {
        self.check_ringing(agent, call)?;
        self.waiting.retain(|w| w.call != call);
        if let Some(a) = self.agents.get_mut(agent) {
            a.ringing = None;
        }
        self.set(agent, AgentState::Busy);
        self.busy_since.insert(agent.to_string(), now);
        self.outputs.push_back(AcdOutput::Answered {
            call: call.to_string(),
            agent: agent.to_string(),
        });
        self.assign(now);
        Ok(())
    }

    /// The agent declines the call ringing them: it rings the next agent; they stay available.
    pub fn decline(&mut self, agent: &str, call: &str, now: Duration) -> Result<(), AcdError> {
        self.check_ringing(agent, call)?;
        self.unring(call, agent, true);
        self.back_to_available(agent, now);
        self.assign(now);
        Ok(())
    }

    /// The agent's call ended: wrap-up for the queue's `wrap_up_s`, then available.
    pub fn call_done(&mut self, agent: &str, wrap_up: Duration, now: Duration) {
        if let Some(started) = self.busy_since.remove(agent) {
            let handled = now.saturating_sub(started);
            // An exponential mean: recent calls count most.
            self.mean_handle = (self.mean_handle * 3 + handled) / 4;
        }
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        if a.state != AgentState::Busy {
            return;
        }
        a.wrap_up_until = Some(now + wrap_up);
        self.set(agent, AgentState::WrapUp);
        self.assign(now);
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<AcdOutput> {
        self.outputs.pop_front()
    }

    /// When [`Acd::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let rings = self
            .agents
            .values()
            .filter_map(|a| a.ringing.as_ref().map(|r| r.1));
        let wraps = self.agents.values().filter_map(|a| a.wrap_up_until);
        let waits = self.waiting.iter().filter_map(|w| {
            self.queues
                .get(&w.queue)
                .map(|q| w.enqueued + Duration::from_secs(q.max_wait_s))
        });
        rings.chain(wraps).chain(waits).min()
    }

    /// Rings that timed out, wrap-ups that ended, calls that waited too long.
    pub fn handle_timeout(&mut self, now: Duration) {
        let timed_out: Vec<(String, String)> = self
            .agents
            .iter()
            .filter_map(|(name, a)| match &a.ringing {
                Some((call, at)) if *at <= now => Some((name.clone(), call.clone())),
                _ => None,
            })
            .collect();
        for (agent, call) in timed_out {
            // Not answering sets the agent away: they are not at their desk.
            self.unring(&call, &agent, false);
            if let Some(a) = self.agents.get_mut(&agent) {
                a.ringing = None;
            }
            self.set(&agent, AgentState::Away);
        }
        let wrapped: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| a.wrap_up_until.is_some_and(|at| at <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for agent in wrapped {
            self.back_to_available(&agent, now);
        }
        let queues = &self.queues;
        let (expired, kept): (Vec<Waiting>, Vec<Waiting>) = self.waiting.drain(..).partition(|w| {
            queues
                .get(&w.queue)
                .is_some_and(|q| w.enqueued + Duration::from_secs(q.max_wait_s) <= now)
        });
        self.waiting = kept.into();
        for w in expired {
            if let Some(agent) = &w.ringing {
                self.stop_ringing_agent(agent, &w.call);
                self.outputs.push_back(AcdOutput::StopRinging {
                    call: w.call.clone(),
                    agent: agent.clone(),
                });
                self.back_to_available(agent, now);
            }
            self.outputs.push_back(AcdOutput::GaveUp {
                call: w.call,
                outcome: TransferOutcome::NoAnswer,
            });
        }
        self.assign(now);
    }

    fn check_ringing(&self, agent: &str, call: &str) -> Result<(), AcdError> {
        let a = self
            .agents
            .get(agent)
            .ok_or_else(|| AcdError::NotSignedIn(agent.to_string()))?;
        match &a.ringing {
            Some((c, _)) if c == call => Ok(()),
            _ => Err(AcdError::NotRinging {
                call: call.to_string(),
                agent: agent.to_string(),
            }),
        }
    }

    fn set(&mut self, agent: &str, state: AgentState) {
        if let Some(a) = self.agents.get_mut(agent) {
            if a.state == state {
                return;
            }
            a.state = state;
            self.outputs.push_back(AcdOutput::AgentState {
                agent: agent.to_string(),
                state,
            });
        }
    }

    fn back_to_available(&mut self, agent: &str, now: Duration) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.ringing = None;
            a.wrap_up_until = None;
            a.idle_since = now;
        }
        self.set(agent, AgentState::Available);
    }

    fn stop_ringing_agent(&mut self, agent: &str, call: &str) {
        if let Some(a) = self.agents.get_mut(agent) {
            if a.ringing.as_ref().is_some_and(|(c, _)| c == call) {
                a.ringing = None;
            }
        }
    }

    /// `call` no longer rings `agent`; it will not ring them again.
    fn unring(&mut self, call: &str, agent: &str, declined: bool) {
        self.stop_ringing_agent(agent, call);
        if let Some(w) = self.waiting.iter_mut().find(|w| w.call == call) {
            if w.ringing.as_deref() == Some(agent) {
                w.ringing = None;
            }
            w.tried.insert(agent.to_string());
            w.declined |= declined;
            self.outputs.push_back(AcdOutput::StopRinging {
                call: call.to_string(),
                agent: agent.to_string(),
            });
        }
    }

    fn can_serve(agent: &Agent, queue: &QueueConfig, language: Language) -> bool {
        let skill = queue
            .skill
            .as_ref()
            .is_none_or(|s| agent.profile.skills.contains(s));
        let speaks =
            agent.profile.languages.is_empty() || agent.profile.languages.contains(&language);
        skill && speaks
    }

    /// Rings free agents for waiting calls, in queue order; gives up calls nobody can take;
    /// tells positions that changed.
    fn assign(&mut self, now: Duration) {
        let mut gave_up = Vec::new();
        for i in 0..self.waiting.len() {
            let w = &self.waiting[i];
            if w.ringing.is_some() {
                continue;
            }
            let Some(queue) = self.queues.get(&w.queue) else {
                continue;
            };
            let free = self
                .agents
                .iter()
                .filter(|(name, a)| {
                    a.state == AgentState::Available
                        && a.ringing.is_none()
                        && !w.tried.contains(*name)
                        && Self::can_serve(a, queue, w.language)
                })
                .min_by_key(|(name, a)| (a.idle_since, (*name).clone()))
                .map(|(name, _)| name.clone());
            match free {
                Some(agent) => {
                    let ring_until = now + Duration::from_secs(queue.ring_timeout_s);
                    let call = w.call.clone();
                    if let Some(a) = self.agents.get_mut(&agent) {
                        a.ringing = Some((call.clone(), ring_until));
                    }
                    self.waiting[i].ringing = Some(agent.clone());
                    self.set(&agent, AgentState::Ringing);
                    self.outputs.push_back(AcdOutput::Ring { call, agent });
                }
                None => {
                    // Could anyone signed in ever take it (once free)?
                    let someone = self.agents.iter().any(|(name, a)| {
                        a.state != AgentState::Away
                            && !w.tried.contains(name)
                            && Self::can_serve(a, queue, w.language)
                    });
                    if !someone {
                        let outcome = if w.declined {
                            TransferOutcome::Rejected
                        } else if !w.tried.is_empty() {
                            TransferOutcome::NoAnswer
                        } else {
                            TransferOutcome::Busy
                        };
                        gave_up.push((w.call.clone(), outcome));
                    }
                }
            }
        }
        for (call, outcome) in gave_up {
            self.waiting.retain(|w| w.call != call);
            self.outputs.push_back(AcdOutput::GaveUp { call, outcome });
        }
        self.tell_positions();
    }

    fn tell_positions(&mut self) {
        let mut per_queue: BTreeMap<String, usize> = BTreeMap::new();
        let serving = self
            .agents
            .values()
            .filter(|a| a.state != AgentState::Away)
            .count()
            .max(1) as u32;
        let mean = self.mean_handle;
        for w in self.waiting.iter_mut() {
            let n = per_queue.entry(w.queue.clone()).or_insert(0);
            *n += 1;
            let position = *n;
            // A call that rings an agent is not told it waits; once the ring ends it is.
            if w.ringing.is_some() {
                w.told = None;
                continue;
            }
            if w.told != Some(position) {
                w.told = Some(position);
                let wait = mean * position as u32 / serving;
                self.outputs.push_back(AcdOutput::Position {
                    call: w.call.clone(),
                    position,
                    wait_s: wait.as_secs(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues() -> BTreeMap<String, QueueConfig> {
        let mut q = BTreeMap::new();
        q.insert("support".to_string(), QueueConfig::default());
        q.insert(
            "billing".to_string(),
            QueueConfig {
                skill: Some("billing".into()),
                ..QueueConfig::default()
            },
        );
        q
    }

    fn profile(skills: &[&str], languages: &[Language]) -> AgentProfile {
        AgentProfile {
            skills: skills.iter().map(|s| s.to_string()).collect(),
            languages: languages.to_vec(),
        }
    }

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn drain(acd: &mut Acd) -> Vec<AcdOutput> {
        std::iter::from_fn(|| acd.poll_output()).collect()
    }

    fn rings(out: &[AcdOutput]) -> Vec<(String, String)> {
        out.iter()
            .filter_map(|o| match o {
                AcdOutput::Ring { call, agent } => Some((call.clone(), agent.clone())),
                _ => None,
            })
            .collect()
    }

    fn gave_up(out: &[AcdOutput]) -> Vec<(String, TransferOutcome)> {
        out.iter()
            .filter_map(|o| match o {
                AcdOutput::GaveUp { call, outcome } => Some((call.clone(), *outcome)),
                _ => None,
            })
            .collect()
    }

    fn available(acd: &mut Acd, name: &str, p: AgentProfile, at: u64) {
        acd.sign_in(name, p, s(at));
        acd.set_state(name, AgentState::Available, s(at))
            .expect("available");
    }

    #[test]
    fn the_longest_idle_agent_with_the_skill_and_language_rings() {
        let mut acd = Acd::new(queues());
        available(&mut acd, "ann", profile(&["billing"], &[Language::En]), 1);
        available(&mut acd, "bob", profile(&["billing"], &[Language::En]), 2);
        available(&mut acd, "cai", profile(&["billing"], &[Language::Zh]), 0);
        available(&mut acd, "dan", profile(&[], &[]), 0);
        drain(&mut acd);
        acd.enqueue("c1", "billing", Language::En, s(10))
            .expect("queued");
        let out = drain(&mut acd);
        // dan has no billing skill, cai speaks no English; ann has waited longest.
        assert_eq!(rings(&out), vec![("c1".into(), "ann".into())]);
        assert!(
            !out.iter().any(|o| matches!(o, AcdOutput::Position { .. })),
            "a call that rings at once is not told it waits"
        );
        assert_eq!(acd.agent_state("ann"), Some(AgentState::Ringing));
        acd.accept("ann", "c1", s(12)).expect("accept");
        let out = drain(&mut acd);
        assert!(out.contains(&AcdOutput::Answered {
            call: "c1".into(),
            agent: "ann".into()
        }));
        assert_eq!(acd.agent_state("ann"), Some(AgentState::Busy));
        assert!(acd.waiting(s(12)).is_empty());
    }

    #[test]
    fn an_agent_who_does_not_answer_is_set_away_and_the_call_rings_the_next() {
        let mut acd = Acd::new(queues());
        available(&mut acd, "ann", profile(&[], &[]), 0);
        available(&mut acd, "bob", profile(&[], &[]), 1);
        drain(&mut acd);
        acd.enqueue("c1", "support", Language::En, s(5))
            .expect("queued");
        assert_eq!(rings(&drain(&mut acd)), vec![("c1".into(), "ann".into())]);
        let ring_timeout = QueueConfig::default().ring_timeout_s;
        assert_eq!(acd.poll_timeout(), Some(s(5 + ring_timeout)));
        acd.handle_timeout(s(5 + ring_timeout));
        let out = drain(&mut acd);
        assert!(out.contains(&AcdOutput::StopRinging {
            call: "c1".into(),
            agent: "ann".into()
        }));
        assert_eq!(rings(&out), vec![("c1".into(), "bob".into())]);
        assert_eq!(acd.agent_state("ann"), Some(AgentState::Away));
        // bob declines too: nobody is left, and the caller goes back to the bot.
        acd.decline("bob", "c1", s(8 + ring_timeout))
            .expect("decline");
        let out = drain(&mut acd);
        assert_eq!(
            gave_up(&out),
            vec![("c1".into(), TransferOutcome::Rejected)]
        );
        assert_eq!(acd.agent_state("bob"), Some(AgentState::Available));
    }

    #[test]
    fn with_nobody_signed_in_the_call_gives_up_at_once_as_busy() {
        let mut acd = Acd::new(queues());
        acd.enqueue("c1", "support", Language::En, s(0))
            .expect("queued");
        assert_eq!(
            gave_up(&drain(&mut acd)),
            vec![("c1".into(), TransferOutcome::Busy)]
        );
        let err = acd
            .enqueue("c2", "sales", Language::En, s(0))
            .expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "no queue named `sales`; the queues are: billing, support"
        );
    }

    #[test]
    fn a_call_waits_for_a_busy_agent_in_order_and_gives_up_after_the_longest_wait() {
        let mut acd = Acd::new(queues());
        available(&mut acd, "ann", profile(&[], &[]), 0);
        acd.enqueue("c1", "support", Language::En, s(1))
            .expect("queued");
        acd.accept("ann", "c1", s(2)).expect("accept");
        drain(&mut acd);
        acd.enqueue("c2", "support", Language::En, s(3))
            .expect("queued");
        acd.enqueue("c3", "support", Language::En, s(4))
            .expect("queued");
        let out = drain(&mut acd);
        assert!(rings(&out).is_empty(), "ann is busy");
        assert!(out.contains(&AcdOutput::Position {
            call: "c3".into(),
            position: 2,
            wait_s: 240
        }));
        // ann finishes: wrap-up, then c2 rings her (not c3).
        acd.call_done("ann", s(5), s(60));
        assert_eq!(acd.agent_state("ann"), Some(AgentState::WrapUp));
        acd.handle_timeout(s(65));
        let out = drain(&mut acd);
        assert_eq!(rings(&out), vec![("c2".into(), "ann".into())]);
        acd.accept("ann", "c2", s(66)).expect("accept");
        let out = drain(&mut acd);
        assert!(out.contains(&AcdOutput::Position {
            call: "c3".into(),
            position: 1,
            wait_s: out_wait(&out)
        }));
        // c3 waits out the queue's longest wait.
        let max_wait = QueueConfig::default().max_wait_s;
        assert_eq!(acd.poll_timeout(), Some(s(4 + max_wait)));
        acd.handle_timeout(s(4 + max_wait));
        assert_eq!(
            gave_up(&drain(&mut acd)),
            vec![("c3".into(), TransferOutcome::NoAnswer)]
        );
    }

    fn out_wait(out: &[AcdOutput]) -> u64 {
        out.iter()
            .find_map(|o| match o {
                AcdOutput::Position { call, wait_s, .. } if call == "c3" => Some(*wait_s),
                _ => None,
            })
            .unwrap_or(u64::MAX)
    }

    #[test]
    fn a_caller_who_hangs_up_stops_the_ringing_and_frees_the_agent() {
        let mut acd = Acd::new(queues());
        available(&mut acd, "ann", profile(&[], &[]), 0);
        acd.enqueue("c1", "support", Language::En, s(1))
            .expect("queued");
        drain(&mut acd);
        acd.leave("c1", s(2));
        let out = drain(&mut acd);
        assert!(out.contains(&AcdOutput::StopRinging {
            call: "c1".into(),
            agent: "ann".into()
        }));
        assert_eq!(
            gave_up(&out),
            vec![("c1".into(), TransferOutcome::CallerHangup)]
        );
        assert_eq!(acd.agent_state("ann"), Some(AgentState::Available));
        assert!(
            acd.accept("ann", "c1", s(3)).is_err(),
            "nothing rings any more"
        );
    }

    #[test]
    fn an_agent_who_signs_out_while_ringing_passes_the_call_on() {
        let mut acd = Acd::new(queues());
        available(&mut acd, "ann", profile(&[], &[]), 0);
        available(&mut acd, "bob", profile(&[], &[]), 1);
        acd.enqueue("c1", "support", Language::En, s(2))
            .expect("queued");
        drain(&mut acd);
        acd.sign_out("ann", s(3));
        assert_eq!(rings(&drain(&mut acd)), vec![("c1".into(), "bob".into())]);
        assert!(
            acd.set_state("bob", AgentState::Away, s(4)).is_err(),
            "ringing"
        );
    }

    #[test]
    fn failure_codes_map_to_outcomes() {
        for (code, outcome) in [
            ("busy", TransferOutcome::Busy),
            ("transfer.failed.486", TransferOutcome::Busy),
            ("transfer.failed.408", TransferOutcome::NoAnswer),
            ("transfer.refused.603", TransferOutcome::Rejected),
            ("transfer.failed.500", TransferOutcome::Failed),
            ("no_answer", TransferOutcome::NoAnswer),
        ] {
            assert_eq!(TransferOutcome::from_failure(code), outcome, "{code}");
        }
    }
}
