//! `VirtualCall`: a call on a virtual clock, for `hotline replay` (recorded audio) and
//! `hotline chat` (text in place of audio). It drives the same [`CallCore`] as a live call, so
//! the events of a replay, a chat and a live call of the same conversation are the same apart
//! from their timing.
//!
//! The clock advances 20 ms per [`VirtualCall::tick`], without waiting. When the session asks
//! for work, the engine really runs, and its result is delivered at `now + compute time`
//! ([`Timing::Measured`], as it would arrive live) or at `now` ([`Timing::Instant`], for
//! repeatable chat runs). The recognizer is modelled as the live pool's single worker: finals
//! wait only for another final; a partial finds the worker busy and brings nothing, or gives
//! way to a final. Without a synthesizer ([`VirtualCall::new`] with `tts: None`) a reply's
//! audio is complete at once and silent.
//!
//! Invariant: results are delivered in order of their arrival time, and the session never
//! sees a time earlier than one it has already seen.

use std::time::{Duration, Instant};

use crate::asr::{AsrJob, AsrOptions, AsrPool};
use crate::audio::{Frame, FRAME_DURATION};
use crate::dialogue::Dialogue;
use crate::session::{CallEvent, EventKind};
use crate::tts::TtsService;
use crate::turn::TurnService;

use super::core::{CallCore, EngineResult, Work};
use super::record::RecordError;

/// When an engine's result arrives on the virtual clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// After the compute time the engine really took.
    Measured,
    /// At once: runs are repeatable to the millisecond.
    Instant,
}

/// A result waiting for its arrival time.
struct Due {
    at: Duration,
    result: EngineResult,
}

/// The longest a virtual call waits for the bot to go quiet before giving up (a bound on
/// [`VirtualCall::run_until_idle`], never reached by a working flow).
const IDLE_LIMIT: Duration = Duration::from_secs(600);

/// One call on a virtual clock. See the module docs.
pub struct VirtualCall<'a> {
    core: CallCore,
    dialogue: Box<dyn Dialogue>,
    asr: Option<&'a AsrPool>,
    tts: Option<&'a TtsService>,
    /// The end-of-turn model, when the call uses one.
    turn: Option<&'a TurnService>,
    timing: Timing,
    due: Vec<Due>,
    asr_free_at: Duration,
    asr_running_partial: bool,
    now: Duration,
}

impl<'a> VirtualCall<'a> {
    /// A call on `core` with its `dialogue`; `asr` recognizes caller audio (without it caller
    /// speech is heard as nothing), `tts` speaks the replies (without it they are silent).
    pub fn new(
        core: CallCore,
        dialogue: Box<dyn Dialogue>,
        asr: Option<&'a AsrPool>,
        tts: Option<&'a TtsService>,
        timing: Timing,
    ) -> Self {
        Self {
            core,
            dialogue,
            asr,
            tts,
            turn: None,
            timing,
            due: Vec::new(),
            asr_free_at: Duration::ZERO,
            asr_running_partial: false,
            now: Duration::ZERO,
        }
    }

    /// Ends the caller's turns with the learned end-of-turn model, as live calls do when one
    /// is installed.
    pub fn with_turn_model(mut self, model: &'a TurnService) -> Self {
        self.turn = Some(model);
        self.core.session_mut().use_turn_model(true);
        self
    }

    /// The call time.
    pub fn now(&self) -> Duration {
        self.now
    }

    pub fn core(&self) -> &CallCore {
        &self.core
    }

    pub fn core_mut(&mut self) -> &mut CallCore {
        &mut self.core
    }

    /// Whether the call has ended.
    pub fn is_ended(&self) -> bool {
        self.core.is_ended()
    }

    /// Whether the bot is speaking or an engine result is still on its way.
    pub fn is_busy(&self) -> bool {
        self.core.session().bot_active() || !self.due.is_empty()
    }

    /// Starts the call with its `call_start` event and runs the greeting's work.
    pub fn start(&mut self, call_start: EventKind) {
        self.core.start(call_start, self.now);
        self.settle();
    }

    /// One 20 ms tick: due results are delivered, work is performed, then `caller` is heard
    /// and the bot's frame for the tick is returned; the clock advances.
    pub fn tick(&mut self, caller: &Frame) -> Frame {
        self.settle();
        if self.is_ended() {
            return Frame::silence();
        }
        let bot = self.core.audio(caller, self.now);
        // Work this frame led to (a final to recognize, a timeout's turn) starts now, and what
        // is already due is delivered at this time.
        self.settle();
        self.now += FRAME_DURATION;
        bot
    }

    /// Ticks silence for `duration`.
    pub fn wait(&mut self, duration: Duration) {
        let until = self.now + duration;
        while self.now < until && !self.is_ended() {
            self.tick(&Frame::silence());
        }
        self.settle();
    }

    /// Ticks silence until the session's next timer (the no-input timeout) has fired, if one is
    /// armed.
    pub fn wait_for_timer(&mut self) {
        let Some(at) = self.core.session().poll_timeout() else {
            return;
        };
        let limit = self.now + IDLE_LIMIT;
        while self.now <= at && !self.is_ended() && self.now < limit {
            self.tick(&Frame::silence());
        }
        self.settle();
    }

    /// Ticks silence until the bot is quiet and nothing is on its way (or the call ends).
    pub fn run_until_idle(&mut self) {
        let limit = self.now + IDLE_LIMIT;
        self.settle();
        while self.is_busy() && !self.is_ended() && self.now < limit {
            self.tick(&Frame::silence());
            self.settle();
        }
    }

    /// Delivers the results whose time has come and performs the work they lead to, until
    /// nothing more is due now.
    pub fn settle(&mut self) {
        loop {
            self.perform();
            self.due.sort_by_key(|d| d.at);
            if self.due.first().is_none_or(|d| d.at > self.now) {
                return;
            }
            let d = self.due.remove(0);
            self.core.apply(d.result, d.at.max(self.now));
        }
    }

    /// Performs everything the session asked for; results become due after their compute time.
    fn perform(&mut self) {
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
                    let Some(asr) = self.asr else {
                        let result = EngineResult::recognized(turn, is_final, speculative, None);
                        self.push(self.now, result);
                        continue;
                    };
                    let now = self.now;
                    let busy = self.asr_free_at > now;
                    if busy && !is_final {
                        // No idle worker: the live pool pre-empts the partial, which brings
                        // nothing.
                        self.core.apply(EngineResult::asr(turn, false, None), now);
                        continue;
                    }
                    if busy && self.asr_running_partial {
                        // The running partial gives way; its result never arrives.
                        self.due.retain(|d| !d.result.is_partial());
                        self.asr_free_at = now;
                    }
                    self.asr_running_partial = !is_final;
                    let started = now.max(self.asr_free_at);
                    let job = AsrJob {
                        pcm,
                        opts: AsrOptions {
                            language,
                            grammar,
                            is_final,
                        },
                    };
                    let outcome = asr.submit(job).blocking_recv().ok();
                    let compute = match &outcome {
                        Some(Ok(out)) => out.compute,
                        _ => Duration::ZERO,
                    };
                    self.asr_free_at = started + self.compute(compute);
                    let result = EngineResult::recognized(turn, is_final, speculative, outcome);
                    self.push(self.asr_free_at, result);
                }
                Work::PredictTurnEnd { turn, pcm } => {
                    let Some(model) = self.turn else {
                        continue;
                    };
                    let outcome = model.submit(pcm).blocking_recv().ok();
                    let compute = match &outcome {
                        Some(Ok(p)) => p.compute,
                        _ => Duration::ZERO,
                    };
                    let at = self.now + self.compute(compute);
                    self.push(at, EngineResult::turn(turn, outcome));
                }
                Work::Converse { turn, input } => {
                    let started = Instant::now();
                    let bot = self.dialogue.handle(&input);
                    let at = self.now + self.compute(started.elapsed());
                    self.push(at, EngineResult::dialogue(turn, Ok(bot)));
                }
                Work::Speak {
                    turn,
                    prompts,
                    language,
                } => {
                    let mut at = self.now;
                    if let Some(tts) = self.tts {
                        let mut chunks = tts.speak(prompts, language);
                        while let Some(item) = chunks.blocking_recv() {
                            if let Ok(chunk) = &item {
                                at += self.compute(chunk.compute);
                            }
                            self.push(at, EngineResult::tts(turn, item));
                        }
                    }
                    self.push(at, EngineResult::audio_complete(turn));
                }
                // The caller side of a virtual call is its driver's: a transfer or a hangup
                // is in the events.
                Work::Transfer { .. } | Work::Hangup { .. } => {}
                // `poll_work` publishes events itself.
                Work::Event(event) => self.core.publish(event),
            }
        }
    }

    fn compute(&self, took: Duration) -> Duration {
        match self.timing {
            Timing::Measured => took,
            Timing::Instant => Duration::ZERO,
        }
    }

    fn push(&mut self, at: Duration, result: EngineResult) {
        self.due.push(Due { at, result });
    }

    /// The events kept so far (when the core keeps them).
    pub fn take_events(&mut self) -> Vec<CallEvent> {
        self.core.take_events()
    }

    /// Ends the call's record; its folder, if it has one.
    pub fn finish(self) -> Result<Option<std::path::PathBuf>, RecordError> {
        self.core.finish()
    }
}
