//! `CallDriver`: the IO task of one live call, on the wall clock.
//!
//! It owns the call's [`CallCore`] and its [`Dialogue`], and waits on four things at once, in
//! this order of priority: control (hang-up, transfer outcome, shutdown, legs: never behind
//! audio), engine results, the caller's frames and keys, and the other legs' frames; plus the
//! session's timer. Work the session asks for goes to the worker pools (ASR, TTS, the dialogue
//! on the blocking pool) and comes back as an [`EngineResult`] tagged with its turn.
//!
//! Cancellation: a reply's synthesis runs only while the session still waits for that turn's
//! audio ([`crate::session::CallSession::speaking_turn`]); the moment it does not (barge-in, a
//! key, a newer reply, hang-up) the stream is dropped, which stops the synthesis worker on that
//! job. A dialogue job whose turn has been superseded by the time it would run is skipped, so
//! the dialogue does not advance on a turn the session would drop. A recognition or end-of-turn
//! job still queued when its call ends is dropped from its pool's queue unrun.
//!
//! Invariant: the driver never blocks on an engine; heavy work runs off the media path.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::path::PathBuf;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::asr::{AsrJob, AsrOptions};
use crate::audio::Frame;
use crate::dialogue::{CallContext, Dialogue};
use crate::privacy::CallRedaction;
use crate::session::{CallEvent, CallSession, EndReason, EventKind, TurnId};

use crate::tts::SpeechCanceller;

use super::core::{CallCore, EngineResult, Work};
use super::edge::CallerEdge;
use super::leg::{mix, Leg, LegHandle, LegId, LegRole};
use super::record::{CallRecord, RecordError};
use super::{CallControl, CallId, CallInfo, CallInput, Engines, MEDIA_REPORT_WAIT};
use crate::agents::desk::QueueUpdate;
use crate::agents::hold::HoldAudio;
use crate::agents::pop::{PopContext, ScreenPop};
use crate::agents::words::Utterances;
use crate::session::{TransferMode, TransferOutcome};

/// What a call needs made before it runs: made on the blocking pool by the driver, so that
/// starting a call never blocks the transport's signalling task on files.
pub(super) struct CallSetup {
    pub record_dir: PathBuf,
    pub ctx: CallContext,
    pub session: CallSession,
    pub events: broadcast::Sender<CallEvent>,
    /// The call's own control channel, handed to the agent who accepts a queue transfer (they
    /// add their audio leg on it).
    pub control: mpsc::UnboundedSender<CallControl>,
}

/// The IO task of one call. See the module docs.
pub(super) struct CallDriver {
    pub engines: Arc<Engines>,
    pub id: CallId,
    /// The caller's transport.
    pub edge: Box<dyn CallerEdge>,
    /// Held for the call's life: its place in the call limit and the registry.
    pub registration: super::Registration,
}

/// The synthesis job of the reply now playing; dropping it cancels the job at once (queued
/// sentences are dropped, the one in synthesis is aborted) and ends its forwarding task.
struct Speaking {
    turn: TurnId,
    canceller: SpeechCanceller,
    _forwarding: oneshot::Sender<()>,
}

impl Drop for Speaking {
    fn drop(&mut self) {
        self.canceller.cancel();
    }
}

impl CallDriver {
    pub async fn run(
        mut self,
        setup: CallSetup,
        info: CallInfo,
        control: mpsc::UnboundedReceiver<CallControl>,
    ) {
        let factory = self.engines.dialogue.clone();
        let redaction = CallRedaction::new(self.engines.redactor.clone());
        let raw_key = self.engines.raw_key.clone();
        let CallSetup {
            record_dir,
            ctx,
            session,
            events,
            control: control_tx,
        } = setup;
        let flow = ctx.plan.flow().to_string();
        let made = tokio::task::spawn_blocking(move || {
            let mut record = CallRecord::create_with(&record_dir, ctx.plan.records_audio())?
                .with_redaction(redaction);
            if let Some(key) = raw_key {
                record = record.with_raw(key)?;
            }
            Ok::<_, RecordError>((record, factory.new_dialogue(&ctx)))
        })
        .await;
        let (record, dialogue) = match made {
            Ok(Ok(made)) => made,
            Ok(Err(e)) => {
                return self
                    .refuse(&format!("cannot write the call record: {e}"))
                    .await
            }
            Err(e) => return self.refuse(&format!("call set-up failed: {e}")).await,
        };
        let core = CallCore::new(Some(self.id.clone()), session)
            .with_record(record)
            .with_live_events(events)
            .with_metrics(self.engines.metrics.clone())
            // The screen-pop of a transfer to a human reads the conversation so far.
            .keeping_events();
        Running {
            engines: self.engines,
            id: self.id,
            core,
            dialogue: Arc::new(Mutex::new(dialogue)),
            registration: self.registration,
            flow,
            control: control_tx,
            from: info.from.clone().unwrap_or_default(),
            started: Instant::now(),
        }
        .run(info, self.edge, control)
        .await
    }

    /// The call cannot run: the transport hangs up (`server.record_failed`).
    async fn refuse(&mut self, why: &str) {
        tracing::error!(call = %self.id, "{why}");
        self.edge
            .hangup(&EndReason::Other("server.record_failed".into()))
            .await;
    }
}

/// A call that runs: its core, dialogue and channels.
struct Running {
    engines: Arc<Engines>,
    id: CallId,
    core: CallCore,
    dialogue: Arc<Mutex<Box<dyn Dialogue>>>,
    registration: super::Registration,
    /// The flow that answers the call (for `call_start`).
    flow: String,
    /// The call's own control channel (see [`CallSetup::control`]).
    control: mpsc::UnboundedSender<CallControl>,
    /// Who called, for the screen-pop.
    from: String,
    /// The call's clock.
    started: Instant,
}

/// A caller waiting for a human: the desk's updates, the hold audio, and the agent who
/// accepted until their audio flows.
struct QueueWait {
    updates: mpsc::UnboundedReceiver<QueueUpdate>,
    hold: HoldAudio,
    /// The agent who accepted, and when.
    accepted: Option<(String, Instant)>,
    /// A warm transfer: the agent hears a summary before the caller is connected.
    warm: bool,
    /// The queue waited in (none: a `sip:` target), and how many overflows led here.
    queue: Option<String>,
    overflows: u8,
}

/// How many times one transfer may overflow from queue to queue (a loop of overflows ends).
const MAX_OVERFLOWS: u8 = 3;

/// How long an agent who accepted has to get their audio flowing before the call goes back
/// to the bot (`failed`).
const BRIDGE_TIMEOUT: Duration = Duration::from_secs(60);

/// The next update for a waiting caller; never, when none waits. `None`: the desk is gone.
/// Once an agent accepted, the desk is done with the call: only the bridge timeout is left.
async fn next_update(wait: &mut Option<QueueWait>) -> Option<QueueUpdate> {
    match wait {
        Some(QueueWait {
            accepted: Some((_, at)),
            ..
        }) => {
            tokio::time::sleep_until((*at + BRIDGE_TIMEOUT).into()).await;
            Some(QueueUpdate::GaveUp {
                outcome: TransferOutcome::Failed,
            })
        }
        Some(w) => w.updates.recv().await,
        None => std::future::pending().await,
    }
}

impl Running {
    async fn run(
        mut self,
        info: CallInfo,
        mut edge: Box<dyn CallerEdge>,
        mut control: mpsc::UnboundedReceiver<CallControl>,
    ) {
        let start = self.started;
        let mut queue: Option<QueueWait> = None;
        // The agent's leg once their audio flows, and their words being cut into utterances.
        let mut agent_leg: Option<LegId> = None;
        let mut agent_words: Option<(String, Utterances)> = None;
        let (said_tx, mut said) = mpsc::unbounded_channel::<(String, String)>();
        // The bot's own audio of the last tick, for supervisors listening in.
        let mut last_bot = Frame::silence();
        let (results_tx, mut results) = mpsc::unbounded_channel::<EngineResult>();
        let (legs_tx, mut leg_frames) = mpsc::channel::<(LegId, Frame)>(64);
        let mut legs: Vec<Leg> = Vec::new();
        let mut next_leg = 1u32;
        let current_turn = Arc::new(AtomicU32::new(0));
        let mut speaking: Option<Speaking> = None;
        let language = self.core.session().language().code().to_string();
        self.core.start(
            EventKind::CallStart {
                call_id: Some(self.id.0.clone()),
                transport: Some(info.transport.clone()),
                from: info.from.clone(),
                to: info.to.clone(),
                codec: info.codec.clone(),
                language: Some(language),
                flow: Some(self.flow.clone()),
                started_unix_ms: Some(crate::call::unix_ms_now()),
            },
            Duration::ZERO,
        );
        self.perform(
            edge.as_mut(),
            &results_tx,
            &current_turn,
            &mut speaking,
            &mut queue,
        )
        .await;
        while !self.core.is_ended() {
            let timeout = self.core.session().poll_timeout().map(|at| start + at);
            tokio::select! {
                biased;
                command = control.recv() => {
                    let now = start.elapsed();
                    let session = self.core.session_mut();
                    match command {
                        Some(CallControl::Hangup { reason }) => session.handle_hangup(reason, now),
                        Some(CallControl::TransferFailed { reason }) => queue = self.transfer_failed(&reason, queue.take(), now),
                        Some(CallControl::Shutdown) => session.handle_shutdown(now),
                        Some(CallControl::AddLeg { role, reply }) => {
                            let id = LegId(next_leg);
                            next_leg += 1;
                            let (out_tx, out_rx) = mpsc::channel(64);
                            legs.push(Leg::new(id, role, out_tx));
                            tracing::info!(call = %self.id, leg = id.0, ?role, "leg added");
                            // The transport may have given up waiting; the leg then just idles.
                            let _ = reply.send(LegHandle::new(id, legs_tx.clone(), out_rx));
                        }
                        Some(CallControl::Bridge { leg, joined }) => {
                            // Control goes first: updates sent before this (an agent's
                            // answer) are applied before the bridge is judged.
                            let sent: Vec<QueueUpdate> = match queue.as_mut() {
                                Some(w) => std::iter::from_fn(|| w.updates.try_recv().ok()).collect(),
                                None => Vec::new(),
                            };
                            for update in sent {
                                self.queue_update(Some(update), &mut queue, now).await;
                            }
                            if let Some(l) = legs.iter_mut().find(|l| l.id == leg) {
                                let accepted = queue.as_ref().is_some_and(|q| q.accepted.is_some());
                                if l.role == LegRole::Agent && joined && agent_leg != Some(leg) {
                                    if accepted {
                                        // The agent's audio flows: the transfer is answered.
                                        let name = queue
                                            .as_ref()
                                            .and_then(|q| q.accepted.as_ref())
                                            .map_or_else(|| "agent".to_string(), |(a, _)| a.clone());
                                        agent_words = Some((name, Utterances::new()));
                                        queue = None;
                                        agent_leg = Some(leg);
                                        l.bridge.joined = true;
                                        self.core.session_mut().handle_transfer_answered(now);
                                    } else {
                                        // A leg bridged straight in, with no transfer waiting
                                        // for it (the leg API's own use).
                                        l.bridge.joined = true;
                                    }
                                } else {
                                    l.bridge.joined = joined;
                                }
                            }
                            // A supervisor listening in leaves the bot alone.
                            let any = legs.iter().any(|l| l.bridge.joined && l.role == LegRole::Agent);
                            self.core.session_mut().set_bridged(any, now);
                        }
                        Some(CallControl::Supervise { leg, who, mode }) => {
                            if let Some(l) = legs.iter_mut().find(|l| l.id == leg && l.role == LegRole::Supervisor) {
                                tracing::info!(call = %self.id, leg = leg.0, mode = mode.code(), "supervisor mode");
                                l.mode = mode;
                                l.who = who.clone();
                                let action = mode.code().to_string();
                                self.core.publish(CallEvent { t_ms: now.as_millis() as u64, kind: EventKind::Supervisor { who, action } });
                            }
                        }
                        Some(CallControl::RemoveLeg { leg }) => {
                            if let Some(l) = legs.iter().find(|l| l.id == leg) {
                                tracing::info!(call = %self.id, leg = leg.0, role = ?l.role, "leg removed");
                                if l.role == LegRole::Supervisor && !l.who.is_empty() {
                                    let who = l.who.clone();
                                    self.core.publish(CallEvent { t_ms: now.as_millis() as u64, kind: EventKind::Supervisor { who, action: "left".into() } });
                                }
                                if agent_leg == Some(leg) {
                                    agent_leg = None;
                                    agent_words = None;
                                    self.core.session_mut().handle_agent_hangup(now);
                                } else if l.role == LegRole::Agent && queue.as_ref().is_some_and(|q| q.accepted.is_some()) {
                                    // The agent accepted but their audio never came.
                                    queue = None;
                                    self.core.session_mut().handle_transfer_failed(TransferOutcome::Failed.code(), now);
                                }
                            }
                            legs.retain(|l| l.id != leg);
                            let any = legs.iter().any(|l| l.bridge.joined && l.role == LegRole::Agent);
                            self.core.session_mut().set_bridged(any, now);
                        }
                        Some(CallControl::Transfer { target }) => {
                            // The agent's leg leaves next: that is no hang-up.
                            if let Some(leg) = agent_leg.take() {
                                if let Some(l) = legs.iter_mut().find(|l| l.id == leg) {
                                    l.bridge.joined = false;
                                }
                            }
                            agent_words = None;
                            tracing::info!(call = %self.id, %target, "the agent hands the caller on");
                            self.core.session_mut().handle_agent_transfer(&target, now);
                        }
                        Some(CallControl::Watch { reply }) => {
                            if let Some(events) = self.core.watch() {
                                let _ = reply.send(events);
                            }
                        }
                        // Every handle dropped: the transport is gone.
                        None => session.handle_hangup(EndReason::TransportClosed, now),
                    }
                }
                Some(result) = results.recv() => self.core.apply(result, start.elapsed()),
                Some((agent, text)) = said.recv() => {
                    let t_ms = start.elapsed().as_millis() as u64;
                    self.core.publish(CallEvent { t_ms, kind: EventKind::AgentTranscript { agent, text } });
                }
                update = next_update(&mut queue) => {
                    let now = start.elapsed();
                    self.queue_update(update, &mut queue, now).await;
                }
                msg = edge.recv() => {
                    let now = start.elapsed();
                    match msg {
                        Some(CallInput::Audio(frame)) => {
                            let mut others = Frame::silence();
                            for leg in legs.iter_mut() {
                                let said = leg.bridge.caller_tick(&frame);
                                if leg.speaks_to_caller() {
                                    others = mix(&others, &said);
                                }
                            }
                            if let Some(wait) = queue.as_mut() {
                                others = mix(&others, &wait.hold.next_frame());
                            }
                            let (out, bot) = self.core.audio_with(&frame, &others, now);
                            last_bot = bot;
                            edge.send_audio(out).await;
                        }
                        Some(CallInput::Dtmf(digit)) => self.core.session_mut().handle_dtmf(digit, now),
                        Some(CallInput::Hangup { reason }) => self.core.session_mut().handle_hangup(reason, now),
                        Some(CallInput::TransferFailed { reason }) => queue = self.transfer_failed(&reason, queue.take(), now),
                        None => self.core.session_mut().handle_hangup(EndReason::TransportClosed, now),
                    }
                }
                Some((id, frame)) = leg_frames.recv() => {
                    let Some(role) = legs.iter().find(|l| l.id == id).map(|l| l.role) else {
                        continue;
                    };
                    // Besides the caller: the other legs it hears, and a supervisor the bot.
                    let mut others = if role == LegRole::Supervisor { last_bot.clone() } else { Frame::silence() };
                    for other in legs.iter().filter(|o| o.id != id && o.bridge.joined && o.heard_by(role)) {
                        others = mix(&others, &other.last);
                    }
                    if agent_leg == Some(id) {
                        if let Some((agent, words)) = agent_words.as_mut() {
                            if let Some(pcm) = words.push(&frame) {
                                self.recognize_agent(agent.clone(), pcm, &said_tx);
                            }
                        }
                    }
                    if let Some(leg) = legs.iter_mut().find(|l| l.id == id) {
                        leg.last = frame.clone();
                        let heard = mix(&leg.bridge.leg_tick(&frame), &others);
                        // A leg that stopped reading is the leg's transport's problem.
                        let _ = leg.output.try_send(heard);
                    }
                }
                _ = sleep_until(timeout) => self.core.session_mut().handle_timeout(start.elapsed()),
            }
            self.perform(
                edge.as_mut(),
                &results_tx,
                &current_turn,
                &mut speaking,
                &mut queue,
            )
            .await;
        }
        drop(speaking);
        if queue.is_some() {
            if let Some(desk) = self.engines.desk.get() {
                desk.leave(&self.id.0);
            }
        }
        // The caller's hang-up comes with the counters; ours waits for the line to go down.
        if let Ok(Some(media)) = tokio::time::timeout(MEDIA_REPORT_WAIT, edge.media()).await {
            self.core.end_with_media(media, start.elapsed());
        }
        match self.core.finish() {
            Ok(Some(dir)) => {
                tracing::info!(call = %self.id, record = %dir.display(), "call ended");
                if let Some(store) = self.engines.store.get() {
                    store.call_finished(dir);
                }
            }
            Ok(None) => tracing::info!(call = %self.id, "call ended"),
            Err(e) => tracing::error!(call = %self.id, "call record: {e}"),
        }
        drop(self.registration);
    }

    /// Performs everything the session asked for, and cancels the synthesis of a reply the
    /// session no longer waits for.
    async fn perform(
        &mut self,
        edge: &mut dyn CallerEdge,
        results: &mpsc::UnboundedSender<EngineResult>,
        current_turn: &Arc<AtomicU32>,
        speaking: &mut Option<Speaking>,
        queue: &mut Option<QueueWait>,
    ) {
        while let Some(work) = self.core.poll_work() {
            match work {
                Work::Recognize {
                    turn,
                    pcm,
                    is_final,
                    speculative,
                    grammar,
                    language,
                } => {
                    let job = AsrJob {
                        pcm,
                        opts: AsrOptions {
                            language,
                            grammar,
                            is_final,
                        },
                    };
                    let rx = match speculative {
                        Some(_) => self.engines.asr.submit_speculative(job),
                        None => Some(self.engines.asr.submit(job)),
                    };
                    if let Some(last_voice) = speculative {
                        tracing::debug!(
                            call = %self.id,
                            turn = turn.0,
                            last_voice_ms = last_voice.as_millis() as u64,
                            shed = rx.is_none(),
                            "speculative final asked"
                        );
                    }
                    match rx {
                        Some(rx) => forward_answer(rx, results, move |outcome| {
                            EngineResult::recognized(turn, is_final, speculative, outcome)
                        }),
                        // Shed under load: the session waits for its endpoint instead.
                        None => {
                            let _ = results.send(EngineResult::recognized(
                                turn,
                                is_final,
                                speculative,
                                None,
                            ));
                        }
                    }
                }
                Work::PredictTurnEnd { turn, pcm } => {
                    let Some(model) = self.engines.turn.as_ref() else {
                        // Not asked for without a model; a pause then just waits.
                        continue;
                    };
                    let rx = model.submit(pcm);
                    forward_answer(rx, results, move |outcome| {
                        EngineResult::turn(turn, outcome)
                    });
                }
                Work::Converse { turn, input } => {
                    current_turn.store(self.core.session().turn().0, Ordering::SeqCst);
                    let dialogue = self.dialogue.clone();
                    let results = results.clone();
                    let current = current_turn.clone();
                    let id = self.id.clone();
                    tokio::spawn(async move {
                        let answer = tokio::task::spawn_blocking(move || {
                            if current.load(Ordering::SeqCst) != turn.0 {
                                // Superseded while it waited: the session would drop the
                                // answer, so the dialogue must not advance on it.
                                tracing::debug!(call = %id, turn = turn.0, "dialogue skipped a superseded turn");
                                return None;
                            }
                            let mut dialogue = dialogue
                                .lock()
                                .unwrap_or_else(|poisoned| poisoned.into_inner());
                            Some(dialogue.handle(&input))
                        })
                        .await;
                        let result = match answer {
                            Ok(Some(bot)) => EngineResult::dialogue(turn, Ok(bot)),
                            Ok(None) => return,
                            Err(e) => EngineResult::dialogue(turn, Err(e.to_string())),
                        };
                        let _ = results.send(result);
                    });
                }
                Work::Speak {
                    turn,
                    prompts,
                    language,
                } => {
                    let mut chunks = self.engines.tts.speak(prompts, language);
                    let results = results.clone();
                    let (forwarding, mut cancelled) = oneshot::channel::<()>();
                    *speaking = Some(Speaking {
                        turn,
                        canceller: chunks.canceller(),
                        _forwarding: forwarding,
                    });
                    tokio::spawn(async move {
                        loop {
                            tokio::select! {
                                biased;
                                // Dropped by the driver: the reply is dead. Dropping `chunks`
                                // stops its synthesis.
                                _ = &mut cancelled => return,
                                item = chunks.recv() => match item {
                                    Some(item) => {
                                        if results.send(EngineResult::tts(turn, item)).is_err() {
                                            return;
                                        }
                                    }
                                    None => break,
                                },
                            }
                        }
                        // Whatever happened, let the session know the reply's audio is complete.
                        let _ = results.send(EngineResult::audio_complete(turn));
                    });
                }
                Work::Transfer { target, reason } => {
                    if let Some(name) = crate::agents::queue_of(&target) {
                        *queue = self.enqueue(name, &reason).await;
                    } else if self.core.session().transfer_mode(&target) == TransferMode::Bridged {
                        *queue = self.dial_agent(target, &reason);
                    } else {
                        let context = self.core.transfer_context().clone();
                        edge.transfer(target, reason, &context).await;
                    }
                }
                Work::Hangup { reason } => edge.hangup(&reason).await,
                // `poll_work` publishes events itself.
                Work::Event(event) => self.core.publish(event),
            }
        }
        if self.core.take_bot_cut() {
            edge.flush();
        }
        let session = self.core.session();
        current_turn.store(session.turn().0, Ordering::SeqCst);
        if speaking
            .as_ref()
            .is_some_and(|s| session.speaking_turn() != Some(s.turn))
        {
            *speaking = None;
        }
    }
}

impl Running {
    /// Queues the caller for a human in `name`; on any refusal the session hears the transfer
    /// failed (`busy` without a desk or agents, `failed` otherwise) and the bot goes on.
    async fn enqueue(&mut self, name: &str, reason: &str) -> Option<QueueWait> {
        let now = self.started.elapsed();
        let Some(desk) = self.engines.desk.get() else {
            tracing::warn!(call = %self.id, queue = name, "no agent desk on this server: the transfer fails as busy");
            self.core
                .session_mut()
                .handle_transfer_failed(TransferOutcome::Busy.code(), now);
            return None;
        };
        let language = self.core.session().language();
        let pop = ScreenPop::of(
            self.core.events(),
            &PopContext {
                call_id: &self.id.0,
                caller: &self.from,
                queue: name,
                flow: &self.flow,
                language: language.code(),
                reason,
                transfer: Some(self.core.transfer_context()),
            },
        );
        match desk.enqueue(pop, language, self.control.clone()).await {
            Ok(updates) => {
                tracing::info!(call = %self.id, queue = name, "waiting for an agent");
                Some(QueueWait {
                    updates,
                    hold: HoldAudio::new(),
                    accepted: None,
                    warm: self
                        .engines
                        .config
                        .agents
                        .queues
                        .get(name)
                        .is_some_and(|q| q.warm),
                    queue: Some(name.to_string()),
                    overflows: 0,
                })
            }
            Err(e) => {
                tracing::warn!(call = %self.id, queue = name, "transfer to a queue refused: {e}");
                self.core
                    .session_mut()
                    .handle_transfer_failed(TransferOutcome::Failed.code(), now);
                None
            }
        }
    }

    /// Recognises one utterance of the agent's (off the media path); its text comes back on
    /// `said` as `agent_transcript`. Nothing is said when it was only noise.
    fn recognize_agent(
        &self,
        agent: String,
        pcm: Vec<i16>,
        said: &mpsc::UnboundedSender<(String, String)>,
    ) {
        let rx = self.engines.asr.submit(AsrJob {
            pcm,
            opts: AsrOptions {
                language: self.core.session().language(),
                grammar: None,
                is_final: true,
            },
        });
        let said = said.clone();
        tokio::spawn(async move {
            tokio::select! {
                answer = rx => {
                    if let Ok(Ok(out)) = answer {
                        let text = out.text.trim().to_string();
                        if !text.is_empty() {
                            let _ = said.send((agent, text));
                        }
                    }
                }
                () = said.closed() => {}
            }
        });
    }

    /// The transport's transfer failed: a blind `sip:` transfer (REFER) falls back to hotline
    /// calling the target and bridging it (`agents.refer_fallback`); anything else goes back to
    /// the bot.
    fn transfer_failed(
        &mut self,
        reason: &str,
        queue: Option<QueueWait>,
        now: Duration,
    ) -> Option<QueueWait> {
        let pending = self.core.session().pending_transfer();
        match pending {
            Some((target, why, TransferMode::Blind))
                if self.engines.config.agents.refer_fallback && target.starts_with("sip:") =>
            {
                tracing::info!(call = %self.id, %target, %reason, "the blind transfer failed: calling the target to bridge it");
                self.core
                    .session_mut()
                    .redirect_transfer(reason, &target, now);
                self.dial_agent(target, &why)
            }
            _ => {
                // Whatever it waited on, the transfer is over: back to the bot.
                drop(queue);
                self.core.session_mut().handle_transfer_failed(reason, now);
                None
            }
        }
    }

    /// Calls a human at a `sip:` target and waits for them like a queue (hold audio, then the
    /// bridge); a target that cannot be called fails the transfer (`failed`).
    fn dial_agent(&mut self, target: String, reason: &str) -> Option<QueueWait> {
        let now = self.started.elapsed();
        let outbound = match self.engines.config.sip.outbound_config() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(call = %self.id, %target, "cannot call the agent: {e}");
                self.core
                    .session_mut()
                    .handle_transfer_failed(TransferOutcome::Failed.code(), now);
                return None;
            }
        };
        let headers = crate::phone::transfer_headers(self.core.transfer_context(), reason);
        let warm = self.engines.config.agents.sip_warm;
        let briefing = warm.then(|| {
            let language = self.core.session().language();
            ScreenPop::of(
                self.core.events(),
                &PopContext {
                    call_id: &self.id.0,
                    caller: &self.from,
                    queue: &target,
                    flow: &self.flow,
                    language: language.code(),
                    reason,
                    transfer: Some(self.core.transfer_context()),
                },
            )
            .briefing()
                + " "
                + crate::phone::agent::take_or_decline(language)
        });
        let ring_wait = Duration::from_secs(self.engines.config.agents.sip_ring_timeout_s);
        let (updates_tx, updates) = mpsc::unbounded_channel();
        let briefing = briefing.map(|text| {
            let language = self.core.session().language();
            self.engines
                .tts
                .speak(vec![crate::dialogue::Prompt::text(text)], language)
        });
        tokio::spawn(crate::phone::agent::dial_agent(
            outbound,
            crate::phone::agent::AgentCall {
                target,
                headers,
                ring_wait,
                briefing,
            },
            self.control.clone(),
            updates_tx,
        ));
        Some(QueueWait {
            updates,
            hold: HoldAudio::new(),
            accepted: None,
            warm,
            queue: None,
            overflows: 0,
        })
    }

    /// A queue's caller who could not be served there goes to its `overflow` target (at most
    /// [`MAX_OVERFLOWS`] times); `None` when there is none to go to.
    async fn overflow(
        &mut self,
        outcome: TransferOutcome,
        wait: Option<&QueueWait>,
        now: Duration,
    ) -> Option<QueueWait> {
        let wait = wait?;
        if !matches!(outcome, TransferOutcome::Busy | TransferOutcome::NoAnswer)
            || wait.overflows >= MAX_OVERFLOWS
        {
            return None;
        }
        let queue = wait.queue.as_ref()?;
        let target = self
            .engines
            .config
            .agents
            .queues
            .get(queue)?
            .overflow
            .clone()?;
        let (_, reason, _) = self.core.session().pending_transfer()?;
        tracing::info!(call = %self.id, %queue, %target, outcome = outcome.code(), "overflow");
        self.core
            .session_mut()
            .redirect_transfer(outcome.code(), &target, now);
        let overflows = wait.overflows + 1;
        let mut next = match crate::agents::queue_of(&target) {
            Some(name) => self.enqueue(name, &reason).await,
            None => self.dial_agent(target, &reason),
        }?;
        next.overflows = overflows;
        Some(next)
    }

    /// What the desk says to a waiting caller.
    async fn queue_update(
        &mut self,
        update: Option<QueueUpdate>,
        queue: &mut Option<QueueWait>,
        now: Duration,
    ) {
        if let Some(QueueUpdate::GaveUp { outcome }) = &update {
            if let Some(next) = self.overflow(*outcome, queue.as_ref(), now).await {
                *queue = Some(next);
                return;
            }
        }
        let session = self.core.session_mut();
        match update {
            Some(QueueUpdate::Position { position, wait_s }) => {
                let text = crate::agents::position_prompt(session.language(), position, wait_s);
                session.announce(&text, now);
            }
            Some(QueueUpdate::Ringing { agent }) => session.handle_transfer_ringing(&agent, now),
            Some(QueueUpdate::Accepted { agent }) => {
                let warm = queue.as_ref().is_some_and(|w| w.warm);
                session.handle_transfer_accepted(&agent, warm, now);
                if let Some(wait) = queue.as_mut() {
                    wait.accepted = Some((agent, Instant::now()));
                }
            }
            Some(QueueUpdate::GaveUp { outcome }) => {
                *queue = None;
                session.handle_transfer_failed(outcome.code(), now);
            }
            None => {
                *queue = None;
                session.handle_transfer_failed(TransferOutcome::Failed.code(), now);
            }
        }
    }
}

/// Hands a worker pool's answer to the driver, as `to_result` makes it; or gives up when the
/// call has ended (the driver dropped its results), dropping the receiver so that the pool skips
/// a job still queued that nobody waits for any more.
fn forward_answer<T: Send + 'static>(
    answer: oneshot::Receiver<T>,
    results: &mpsc::UnboundedSender<EngineResult>,
    to_result: impl FnOnce(Option<T>) -> EngineResult + Send + 'static,
) {
    let results = results.clone();
    tokio::spawn(async move {
        tokio::select! {
            outcome = answer => {
                let _ = results.send(to_result(outcome.ok()));
            }
            () = results.closed() => {}
        }
    });
}

/// Sleeps until `at`, or forever without one (a `select!` branch for an optional timer).
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
