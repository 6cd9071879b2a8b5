//! `AgentDesk`: the task that runs the [`Acd`] on the wall clock, between the calls waiting
//! for a human and the agents' consoles.
//!
//! - A call's driver [`AgentDesk::enqueue`]s itself with its screen-pop and its control
//!   channel, and gets [`QueueUpdate`]s back: its position, who rings, who accepted, or the
//!   outcome it gave up with.
//! - A console [`AgentDesk::connect`]s for its signed-in agent and gets [`ConsoleMessage`]s:
//!   its state, the calls that ring it (with the screen-pop), the calls that stop ringing it.
//!   It sets its state, accepts (and gets the call's control channel to add its audio leg) or
//!   declines, and says when its call is done.
//! - Supervisors read a [`DeskSnapshot`]: agents, their states, and the waiting calls.
//!
//! Invariants: one console per agent (a second sign-in replaces the first, which is told);
//! a console that goes away signs its agent out; every queued call gets exactly one final
//! update (`Accepted` or `GaveUp`); nothing here waits on a call or a console (their channels
//! are unbounded and a closed one is dropped).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::call::{sleep_until, CallControl};
use crate::language::Language;

use super::acd::{Acd, AcdError, AcdOutput, AgentState, TransferOutcome};
use super::config::AgentsConfig;
use super::pop::ScreenPop;

/// What a waiting call hears from the desk.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueUpdate {
    Position {
        position: usize,
        wait_s: u64,
    },
    Ringing {
        agent: String,
    },
    /// The agent accepted; their audio leg comes on the call's control channel.
    Accepted {
        agent: String,
    },
    GaveUp {
        outcome: TransferOutcome,
    },
}

/// What a console hears from the desk (sent to the page as JSON with `type`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConsoleMessage {
    State {
        state: &'static str,
    },
    Ring {
        call_id: String,
        pop: Box<ScreenPop>,
        ring_timeout_s: u64,
        /// A warm transfer: the agent hears a summary before connecting the caller.
        warm: bool,
    },
    StopRinging {
        call_id: String,
    },
    /// This agent signed in elsewhere; this console is done.
    Replaced,
}

/// The accepted call, for the console that accepted it.
#[derive(Debug)]
pub struct AcceptedCall {
    pub control: mpsc::UnboundedSender<CallControl>,
    pub pop: ScreenPop,
}

/// Agents, states and waiting calls, for supervisors.
#[derive(Debug, Clone, Serialize, Default)]
pub struct DeskSnapshot {
    pub agents: Vec<AgentRow>,
    pub waiting: Vec<WaitingRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentRow {
    pub agent: String,
    pub state: &'static str,
    /// The call they are on or ringing for.
    pub call_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WaitingRow {
    pub queue: String,
    pub call_id: String,
    pub caller: String,
    pub waited_s: u64,
}

/// The desk is gone (the server is stopping).
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("{0}")]
    Acd(#[from] AcdError),
    #[error("the agent desk has stopped")]
    Stopped,
}

enum Command {
    Enqueue {
        pop: Box<ScreenPop>,
        language: Language,
        control: mpsc::UnboundedSender<CallControl>,
        updates: mpsc::UnboundedSender<QueueUpdate>,
        reply: oneshot::Sender<Result<(), AcdError>>,
    },
    Leave {
        call: String,
    },
    Connect {
        agent: String,
        console: mpsc::UnboundedSender<ConsoleMessage>,
        reply: oneshot::Sender<u64>,
    },
    Disconnect {
        agent: String,
        connection: u64,
    },
    SetState {
        agent: String,
        state: AgentState,
        reply: oneshot::Sender<Result<(), AcdError>>,
    },
    Accept {
        agent: String,
        call: String,
        reply: oneshot::Sender<Result<AcceptedCall, AcdError>>,
    },
    Decline {
        agent: String,
        call: String,
        reply: oneshot::Sender<Result<(), AcdError>>,
    },
    CallDone {
        agent: String,
    },
    Snapshot {
        reply: oneshot::Sender<DeskSnapshot>,
    },
}

/// A handle on the desk's task; cheap to clone. See the module docs.
#[derive(Clone)]
pub struct AgentDesk {
    commands: mpsc::UnboundedSender<Command>,
    queues: Vec<String>,
}

impl AgentDesk {
    /// Starts the desk's task on the current runtime.
    pub fn start(config: &AgentsConfig) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let desk = Desk {
            acd: Acd::new(config.queues.clone()),
            config: config.clone(),
            calls: HashMap::new(),
            on_call: HashMap::new(),
            consoles: HashMap::new(),
            next_connection: 1,
            start: Instant::now(),
        };
        tokio::spawn(desk.run(rx));
        Self {
            commands: tx,
            queues: config.queues.keys().cloned().collect(),
        }
    }

    /// The queues' names.
    pub fn queues(&self) -> &[String] {
        &self.queues
    }

    /// Queues a call; its updates come on the returned channel.
    pub async fn enqueue(
        &self,
        pop: ScreenPop,
        language: Language,
        control: mpsc::UnboundedSender<CallControl>,
    ) -> Result<mpsc::UnboundedReceiver<QueueUpdate>, DeskError> {
        let (updates, rx) = mpsc::unbounded_channel();
        self.ask(|reply| Command::Enqueue {
            pop: Box::new(pop),
            language,
            control,
            updates,
            reply,
        })
        .await??;
        Ok(rx)
    }

    /// The call left (its caller hung up, or it ended): it stops waiting or ringing.
    pub fn leave(&self, call: &str) {
        let _ = self.commands.send(Command::Leave {
            call: call.to_string(),
        });
    }

    /// A console signs `agent` in; returns the connection's id (for [`AgentDesk::disconnect`]).
    pub async fn connect(
        &self,
        agent: &str,
        console: mpsc::UnboundedSender<ConsoleMessage>,
    ) -> Result<u64, DeskError> {
        self.ask(|reply| Command::Connect {
            agent: agent.to_string(),
            console,
            reply,
        })
        .await
    }

    /// The console went away: its agent is signed out (unless a newer console replaced it).
    pub fn disconnect(&self, agent: &str, connection: u64) {
        let _ = self.commands.send(Command::Disconnect {
            agent: agent.to_string(),
            connection,
        });
    }

    pub async fn set_state(&self, agent: &str, state: AgentState) -> Result<(), DeskError> {
        Ok(self
            .ask(|reply| Command::SetState {
                agent: agent.to_string(),
                state,
                reply,
            })
            .await??)
    }

    pub async fn accept(&self, agent: &str, call: &str) -> Result<AcceptedCall, DeskError> {
        Ok(self
            .ask(|reply| Command::Accept {
                agent: agent.to_string(),
                call: call.to_string(),
                reply,
            })
            .await??)
    }

    pub async fn decline(&self, agent: &str, call: &str) -> Result<(), DeskError> {
        Ok(self
            .ask(|reply| Command::Decline {
                agent: agent.to_string(),
                call: call.to_string(),
                reply,
            })
            .await??)
    }

    /// The agent's call is over: wrap-up, then they ring again.
    pub fn call_done(&self, agent: &str) {
        let _ = self.commands.send(Command::CallDone {
            agent: agent.to_string(),
        });
    }

    pub async fn snapshot(&self) -> Result<DeskSnapshot, DeskError> {
        self.ask(|reply| Command::Snapshot { reply }).await
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, DeskError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(command(tx))
            .map_err(|_| DeskError::Stopped)?;
        rx.await.map_err(|_| DeskError::Stopped)
    }
}

struct QueuedCall {
    pop: ScreenPop,
    control: mpsc::UnboundedSender<CallControl>,
    updates: mpsc::UnboundedSender<QueueUpdate>,
}

/// The task's state.
struct Desk {
    acd: Acd,
    config: AgentsConfig,
    /// Calls waiting (or ringing), by call id.
    calls: HashMap<String, QueuedCall>,
    /// Which call each busy agent is on, and its queue (for wrap-up).
    on_call: HashMap<String, (String, String)>,
    consoles: HashMap<String, (u64, mpsc::UnboundedSender<ConsoleMessage>)>,
    next_connection: u64,
    start: Instant,
}

impl Desk {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            let timeout = self.acd.poll_timeout().map(|at| self.start + at);
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.handle(command),
                    None => return,
                },
                _ = sleep_until(timeout) => {
                    let now = self.start.elapsed();
                    self.acd.handle_timeout(now);
                }
            }
            self.route();
        }
    }

    fn handle(&mut self, command: Command) {
        let now = self.start.elapsed();
        match command {
            Command::Enqueue {
                pop,
                language,
                control,
                updates,
                reply,
            } => {
                let call = pop.call_id.clone();
                let queued = self.acd.enqueue(&call, &pop.queue, language, now);
                if queued.is_ok() {
                    self.calls.insert(
                        call,
                        QueuedCall {
                            pop: *pop,
                            control,
                            updates,
                        },
                    );
                }
                let _ = reply.send(queued);
            }
            Command::Leave { call } => self.acd.leave(&call, now),
            Command::Connect {
                agent,
                console,
                reply,
            } => {
                let connection = self.next_connection;
                self.next_connection += 1;
                if let Some((_, old)) = self.consoles.insert(agent.clone(), (connection, console)) {
                    let _ = old.send(ConsoleMessage::Replaced);
                }
                self.acd.sign_in(&agent, self.config.profile(&agent), now);
                let state = self.acd.agent_state(&agent).unwrap_or(AgentState::Away);
                self.tell(
                    &agent,
                    ConsoleMessage::State {
                        state: state.code(),
                    },
                );
                let _ = reply.send(connection);
            }
            Command::Disconnect { agent, connection } => {
                if self
                    .consoles
                    .get(&agent)
                    .is_some_and(|(c, _)| *c == connection)
                {
                    self.consoles.remove(&agent);
                    self.acd.sign_out(&agent, now);
                    self.on_call.remove(&agent);
                }
            }
            Command::SetState {
                agent,
                state,
                reply,
            } => {
                let _ = reply.send(self.acd.set_state(&agent, state, now));
            }
            Command::Accept { agent, call, reply } => {
                let result = self.acd.accept(&agent, &call, now).and_then(|()| {
                    let queued = self
                        .calls
                        .remove(&call)
                        .ok_or_else(|| AcdError::NotRinging {
                            call: call.clone(),
                            agent: agent.clone(),
                        })?;
                    let _ = queued.updates.send(QueueUpdate::Accepted {
                        agent: agent.clone(),
                    });
                    self.on_call
                        .insert(agent.clone(), (call.clone(), queued.pop.queue.clone()));
                    Ok(AcceptedCall {
                        control: queued.control,
                        pop: queued.pop,
                    })
                });
                let _ = reply.send(result);
            }
            Command::Decline { agent, call, reply } => {
                let _ = reply.send(self.acd.decline(&agent, &call, now));
            }
            Command::CallDone { agent } => {
                if let Some((_, queue)) = self.on_call.remove(&agent) {
                    let wrap = self.config.queues.get(&queue).map_or(0, |q| q.wrap_up_s);
                    self.acd.call_done(&agent, Duration::from_secs(wrap), now);
                }
            }
            Command::Snapshot { reply } => {
                let _ = reply.send(self.snapshot(now));
            }
        }
    }

    /// Hands the ACD's outputs to the calls and consoles they are for.
    fn route(&mut self) {
        while let Some(output) = self.acd.poll_output() {
            match output {
                AcdOutput::Ring { call, agent } => {
                    let Some(queued) = self.calls.get(&call) else {
                        continue;
                    };
                    let _ = queued.updates.send(QueueUpdate::Ringing {
                        agent: agent.clone(),
                    });
                    let queue = self.config.queues.get(&queued.pop.queue);
                    let message = ConsoleMessage::Ring {
                        call_id: call,
                        pop: Box::new(queued.pop.clone()),
                        ring_timeout_s: queue.map_or(0, |q| q.ring_timeout_s),
                        warm: queue.is_some_and(|q| q.warm),
                    };
                    self.tell(&agent, message);
                }
                AcdOutput::StopRinging { call, agent } => {
                    self.tell(&agent, ConsoleMessage::StopRinging { call_id: call });
                }
                AcdOutput::Position {
                    call,
                    position,
                    wait_s,
                } => {
                    if let Some(queued) = self.calls.get(&call) {
                        let _ = queued
                            .updates
                            .send(QueueUpdate::Position { position, wait_s });
                    }
                }
                // The accepting console was answered directly (`Command::Accept`).
                AcdOutput::Answered { .. } => {}
                AcdOutput::GaveUp { call, outcome } => {
                    if let Some(queued) = self.calls.remove(&call) {
                        tracing::info!(call = %call, queue = %queued.pop.queue, outcome = outcome.code(), "left the queue unanswered");
                        let _ = queued.updates.send(QueueUpdate::GaveUp { outcome });
                    }
                }
                AcdOutput::AgentState { agent, state } => {
                    tracing::info!(agent = %agent, state = state.code(), "agent state");
                    self.tell(
                        &agent,
                        ConsoleMessage::State {
                            state: state.code(),
                        },
                    );
                }
            }
        }
    }

    fn tell(&self, agent: &str, message: ConsoleMessage) {
        if let Some((_, console)) = self.consoles.get(agent) {
            let _ = console.send(message);
        }
    }

    fn snapshot(&self, now: Duration) -> DeskSnapshot {
        let agents = self
            .acd
            .agents()
            .into_iter()
            .map(|(agent, state)| AgentRow {
                call_id: self.on_call.get(&agent).map(|(c, _)| c.clone()),
                agent,
                state: state.code(),
            })
            .collect();
        let waiting = self
            .acd
            .waiting(now)
            .into_iter()
            .map(|(queue, call_id, waited)| WaitingRow {
                caller: self
                    .calls
                    .get(&call_id)
                    .map(|q| q.pop.caller.clone())
                    .unwrap_or_default(),
                queue,
                call_id,
                waited_s: waited.as_secs(),
            })
            .collect();
        DeskSnapshot { agents, waiting }
    }
}
