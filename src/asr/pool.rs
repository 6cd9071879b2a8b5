//! The ASR worker pool: two bounded queues (finals and partials) in front of a fixed number of
//! threads, each owning one [`Recognizer`].
//!
//! Invariants:
//! - At most [`QUEUE_JOBS_PER_WORKER`] × workers jobs wait; a submit to a full pool is answered
//!   at once with [`AsrError::Overloaded`] instead of blocking the caller (which is usually an
//!   async task on the media path). A final that finds the pool full evicts the oldest waiting
//!   partial first.
//! - Finals go first: a worker takes the oldest waiting final before any partial.
//! - Partials are a nicety: one is queued only when a worker is idle (else it is answered with
//!   [`AsrError::Preempted`]), and a running partial is interrupted as soon as a final waits
//!   (engines check the [`Interrupt`] where they can: whisper.cpp while it computes, Sphinx
//!   before a partial starts). So a final waits for at most one
//!   partial's next check, not for a queue of them.
//! - A job whose receiver was dropped before a worker picked it up is skipped; one dropped
//!   while it runs finishes and its result is discarded (send errors are ignored).
//! - A panic inside an engine is caught on the worker and returned as
//!   [`AsrError::Panicked`]; the worker keeps serving.
//! - Workers stop when the last clone of the pool is dropped (the queues close).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::sphinx::SphinxRecognizer;
use super::whisper::{WhisperByLanguage, WhisperRecognizer, WhisperSettings};
use super::{AsrError, AsrOptions, Interrupt, Recognized, Recognizer};
use crate::config::{AsrConfig, AsrEngineKind};

/// Queue slots per worker. Jobs beyond this are refused rather than left to grow latency.
pub const QUEUE_JOBS_PER_WORKER: usize = 16;

/// One utterance to recognize.
#[derive(Debug, Clone)]
pub struct AsrJob {
    /// 16 kHz mono PCM.
    pub pcm: Vec<i16>,
    pub opts: AsrOptions,
}

/// A finished job.
#[derive(Debug, Clone, PartialEq)]
pub struct AsrOutput {
    pub text: String,
    pub confidence: Option<f32>,
    /// The engine that produced it.
    pub engine: &'static str,
    /// Time spent inside the engine (not counting the wait in the queue).
    pub compute: Duration,
}

impl AsrOutput {
    /// What was heard, without how it was computed.
    pub fn heard(self) -> Recognized {
        Recognized {
            text: self.text,
            confidence: self.confidence,
        }
    }
}

type Reply = oneshot::Sender<Result<AsrOutput, AsrError>>;

struct QueuedJob {
    job: AsrJob,
    reply: Reply,
}

/// The waiting jobs, guarded by [`Shared::lanes`].
#[derive(Default)]
struct Lanes {
    finals: VecDeque<QueuedJob>,
    partials: VecDeque<QueuedJob>,
    /// Workers waiting for a job.
    idle: usize,
    closed: bool,
}

impl Lanes {
    fn waiting(&self) -> usize {
        self.finals.len() + self.partials.len()
    }
}

/// What the pool handle and its workers share.
struct Shared {
    lanes: Mutex<Lanes>,
    ready: Condvar,
    /// Finals queued and not yet taken by a worker: partials give way while it is above zero.
    finals_waiting: Arc<AtomicUsize>,
    capacity: usize,
}

impl Shared {
    fn new(capacity: usize) -> Self {
        Self {
            lanes: Mutex::new(Lanes::default()),
            ready: Condvar::new(),
            finals_waiting: Arc::new(AtomicUsize::new(0)),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lanes> {
        // Workers never panic while holding the lock (engines run outside it), so a poisoned
        // lock still holds consistent queues.
        self.lanes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Queues a job, or answers it at once when the pool cannot take it.
    fn submit(&self, queued: QueuedJob) {
        let mut lanes = self.lock();
        if lanes.closed {
            let _ = queued.reply.send(Err(AsrError::NoWorker));
            return;
        }
        if !queued.job.opts.is_final {
            if lanes.idle <= lanes.waiting() || lanes.waiting() >= self.capacity {
                let _ = queued.reply.send(Err(AsrError::Preempted));
                return;
            }
            lanes.partials.push_back(queued);
        } else {
            if lanes.waiting() >= self.capacity {
                match lanes.partials.pop_front() {
                    Some(evicted) => {
                        let _ = evicted.reply.send(Err(AsrError::Preempted));
                    }
                    None => {
                        let _ = queued.reply.send(Err(AsrError::Overloaded {
                            capacity: self.capacity,
                        }));
                        return;
                    }
                }
            }
            lanes.finals.push_back(queued);
            self.finals_waiting.fetch_add(1, Ordering::AcqRel);
        }
        drop(lanes);
        self.ready.notify_one();
    }

    /// Blocks until a job is waiting (finals first) or the pool closes.
    fn next_job(&self) -> Option<QueuedJob> {
        let mut lanes = self.lock();
        loop {
            if let Some(job) = lanes.finals.pop_front() {
                self.finals_waiting.fetch_sub(1, Ordering::AcqRel);
                return Some(job);
            }
            if let Some(job) = lanes.partials.pop_front() {
                return Some(job);
            }
            if lanes.closed {
                return None;
            }
            lanes.idle += 1;
            lanes = self
                .ready
                .wait(lanes)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            lanes.idle -= 1;
        }
    }
}

/// Closes the queues when the last pool clone goes.
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A bounded pool of recognizer threads. Cloning shares the pool.
#[derive(Clone)]
pub struct AsrPool {
    handle: Option<Arc<Handle>>,
    capacity: usize,
    engine: &'static str,
}

impl std::fmt::Debug for AsrPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsrPool")
            .field("engine", &self.engine)
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// Which engine [`AsrPool::new`] runs for a config, with which model files, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineChoice {
    /// [`AsrEngineKind::Whisper`] or [`AsrEngineKind::Sphinx`], never `Auto`.
    pub engine: AsrEngineKind,
    /// The whisper model for English turns (with whisper).
    pub model: Option<PathBuf>,
    /// The whisper model for Mandarin turns, when it is installed.
    pub model_zh: Option<PathBuf>,
    /// Why, in words, for the start-up log line.
    pub reason: String,
}

/// Decides the engine: `auto` means whisper when the English model is installed, else
/// Sphinx. A model named in the config that hotline does not know is an error (listing the
/// names it knows), never a fallback.
pub fn choose_engine(config: &AsrConfig) -> Result<EngineChoice, AsrError> {
    let resolve = |key: &'static str, value: &Path| {
        crate::models::resolve(&value.to_string_lossy()).map_err(|e| AsrError::UnknownModel {
            key,
            message: e.to_string(),
        })
    };
    let sphinx = |reason: String| EngineChoice {
        engine: AsrEngineKind::Sphinx,
        model: None,
        model_zh: None,
        reason,
    };
    if config.engine == AsrEngineKind::Sphinx {
        return Ok(sphinx("asr.engine = \"sphinx\"".into()));
    }
    let model = resolve("asr.model", &config.model)?;
    let model_zh = if config.model_zh.as_os_str().is_empty() {
        None
    } else {
        Some(resolve("asr.model_zh", &config.model_zh)?)
    };
    if !model.is_file() {
        if config.engine == AsrEngineKind::Whisper {
            return Err(AsrError::ModelMissing {
                what: "whisper model",
                path: model.display().to_string(),
            });
        }
        return Ok(sphinx(format!(
            "asr.engine = \"auto\" and the whisper model {} is not installed at {} \
             (`hotline models fetch` installs it)",
            config.model.display(),
            model.display()
        )));
    }
    let zh_note = match &model_zh {
        Some(zh) if zh.is_file() => format!(", Mandarin with {}", config.model_zh.display()),
        Some(zh) => format!(
            "; the Mandarin model {} is not installed at {}, so Mandarin turns go to the \
             English model",
            config.model_zh.display(),
            zh.display()
        ),
        None => String::new(),
    };
    Ok(EngineChoice {
        engine: AsrEngineKind::Whisper,
        reason: format!(
            "asr.engine = \"{}\" and {} is installed{zh_note}",
            match config.engine {
                AsrEngineKind::Auto => "auto",
                _ => "whisper",
            },
            config.model.display()
        ),
        model: Some(model),
        model_zh: model_zh.filter(|zh| zh.is_file()),
    })
}

/// The engine [`choose_engine`] picks (Sphinx when the config names no usable model).
pub fn resolve_engine(config: &AsrConfig) -> AsrEngineKind {
    choose_engine(config).map_or(AsrEngineKind::Sphinx, |c| c.engine)
}

impl AsrPool {
    /// Starts `config.workers` threads, each loading its own recognizer of the configured
    /// engine, and waits until all have loaded. The first load error is returned (and the
    /// threads that did load stop).
    pub fn new(config: &AsrConfig) -> Result<Self, AsrError> {
        let choice = choose_engine(config)?;
        let workers = config.workers.max(1);
        let (loaded_tx, loaded_rx) = mpsc::channel::<Result<&'static str, AsrError>>();
        let capacity = QUEUE_JOBS_PER_WORKER * workers;
        let shared = Arc::new(Shared::new(capacity));
        let handle = Arc::new(Handle(Arc::clone(&shared)));
        for index in 0..workers {
            let config = config.clone();
            let choice = choice.clone();
            let loaded_tx = loaded_tx.clone();
            let shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("asr-{index}"))
                .spawn(move || {
                    let loaded = catch_unwind(AssertUnwindSafe(|| load(&choice, &config)))
                        .unwrap_or_else(|panic| {
                            Err(AsrError::Panicked {
                                engine: "loader",
                                message: panic_message(panic.as_ref()),
                            })
                        });
                    match loaded {
                        Ok(recognizer) => {
                            // The constructor may already have given up; then the queues are
                            // closed and the worker loop ends at once.
                            let _ = loaded_tx.send(Ok(recognizer.name()));
                            drop(loaded_tx);
                            run_worker(recognizer, &shared);
                        }
                        Err(e) => {
                            let _ = loaded_tx.send(Err(e));
                        }
                    }
                });
            if let Err(e) = spawned {
                return Err(AsrError::Engine {
                    engine: "pool",
                    reason: format!("cannot start worker thread: {e}"),
                });
            }
        }
        drop(loaded_tx);
        let mut engine_name = "none";
        for _ in 0..workers {
            match loaded_rx.recv() {
                Ok(Ok(name)) => engine_name = name,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(AsrError::NoWorker),
            }
        }
        tracing::info!(
            engine = engine_name,
            workers,
            threads = config.threads,
            trim_audio_ctx = config.trim_audio_ctx,
            "ASR ready: {engine_name} ({}), because {}",
            model_description(&choice, config),
            choice.reason
        );
        Ok(Self {
            handle: Some(handle),
            capacity,
            engine: engine_name,
        })
    }

    /// A pool over recognizers that are already loaded, one thread each. An empty list gives a
    /// pool that answers every job with [`AsrError::NoWorker`].
    pub fn from_recognizers(recognizers: Vec<Box<dyn Recognizer>>) -> Self {
        let Some(first) = recognizers.first() else {
            return Self {
                handle: None,
                capacity: 0,
                engine: "none",
            };
        };
        let engine = first.name();
        let capacity = QUEUE_JOBS_PER_WORKER * recognizers.len();
        let shared = Arc::new(Shared::new(capacity));
        let handle = Arc::new(Handle(Arc::clone(&shared)));
        let mut started = 0;
        for (index, recognizer) in recognizers.into_iter().enumerate() {
            let shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("asr-{index}"))
                .spawn(move || run_worker(recognizer, &shared));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!("cannot start ASR worker thread {index}: {e}"),
            }
        }
        if started == 0 {
            return Self {
                handle: None,
                capacity: 0,
                engine,
            };
        }
        Self {
            handle: Some(handle),
            capacity,
            engine,
        }
    }

    /// The engine the workers run ("whisper", "sphinx"; "none" for an empty pool).
    pub fn engine_name(&self) -> &'static str {
        self.engine
    }

    /// Recognitions queued and not yet taken by a worker (finals and partials).
    pub fn waiting(&self) -> usize {
        self.handle.as_ref().map_or(0, |h| h.0.lock().waiting())
    }

    /// Queues a speculative final (asked at a pause, before the turn is known to be over),
    /// unless other finals already wait for a worker: it would only make them wait longer,
    /// for words that may never be needed. `None` then; the caller's endpoint asks for the
    /// final it needs.
    pub fn submit_speculative(
        &self,
        job: AsrJob,
    ) -> Option<oneshot::Receiver<Result<AsrOutput, AsrError>>> {
        let busy = self
            .handle
            .as_ref()
            .is_some_and(|h| h.0.finals_waiting.load(Ordering::Acquire) > 0);
        (!busy).then(|| self.submit(job))
    }

    /// Queues one utterance. The answer arrives on the returned receiver; dropping it
    /// abandons the job. A partial may be answered with [`AsrError::Preempted`] (no idle
    /// worker, or a final needed the worker); callers drop such answers.
    pub fn submit(&self, job: AsrJob) -> oneshot::Receiver<Result<AsrOutput, AsrError>> {
        let (reply, answer) = oneshot::channel();
        match &self.handle {
            Some(handle) => handle.0.submit(QueuedJob { job, reply }),
            None => {
                let _ = reply.send(Err(AsrError::NoWorker));
            }
        }
        answer
    }
}

/// The silence a trimmed context covers after a Mandarin utterance, on its own model
/// (`asr.model_zh`, base by default). base did not start the shared Mandarin recordings over
/// with 1.3 s (no retries, CER 0.286 either way), and the 8 s the English model needs would
/// nearly triple its compute (p50 131 → 374 ms; `cargo bench --bench asr_policy`).
const ZH_TRIM_PAD_MS: u32 = 1_280;
/// The Mandarin model's prompt budget: Mandarin phrases take several tokens a character, and
/// the 48-token English budget left the e-commerce flow's "订单" out of the prompt (a request
/// for an order heard as "天堂"); the English measurement behind 48 does not hold here.
const ZH_PROMPT_MAX_TOKENS: usize = 96;

/// Loads one recognizer of the chosen engine.
fn load(choice: &EngineChoice, config: &AsrConfig) -> Result<Box<dyn Recognizer>, AsrError> {
    match (choice.engine, &choice.model) {
        (AsrEngineKind::Whisper, Some(model)) => {
            let settings = WhisperSettings {
                threads: config.threads,
                trim_audio_ctx: config.trim_audio_ctx,
                ..WhisperSettings::default()
            };
            let en = WhisperRecognizer::new(model, settings.clone())?;
            let zh_settings = WhisperSettings {
                trim_pad_ms: ZH_TRIM_PAD_MS,
                prompt_max_tokens: ZH_PROMPT_MAX_TOKENS,
                ..settings
            };
            let zh = match &choice.model_zh {
                Some(zh) if zh != model => Some(WhisperRecognizer::new(zh, zh_settings)?),
                _ => None,
            };
            Ok(Box::new(WhisperByLanguage::new(en, zh)))
        }
        _ => Ok(Box::new(SphinxRecognizer::new(
            &config.sphinx_hmm,
            &config.sphinx_lm,
            &config.sphinx_dict,
        )?)),
    }
}

fn model_description(choice: &EngineChoice, config: &AsrConfig) -> String {
    let show = |p: &Path| p.display().to_string();
    match (&choice.model, &choice.model_zh) {
        (Some(en), Some(zh)) => format!("model {}, Mandarin {}", show(en), show(zh)),
        (Some(en), None) => format!("model {}", show(en)),
        _ => format!(
            "hmm {}, lm {}, dict {}",
            show(&config.sphinx_hmm),
            show(&config.sphinx_lm),
            show(&config.sphinx_dict)
        ),
    }
}

/// A worker's loop: take a job (finals first), run it, answer; until the queues close.
fn run_worker(mut recognizer: Box<dyn Recognizer>, shared: &Shared) {
    let interrupt = Interrupt::when_finals_wait(Arc::clone(&shared.finals_waiting));
    let never = Interrupt::default();
    while let Some(QueuedJob { job, reply }) = shared.next_job() {
        if reply.is_closed() {
            continue;
        }
        let engine = recognizer.name();
        let started = Instant::now();
        // Finals run to the end; partials stop when a final waits.
        let stop = if job.opts.is_final {
            &never
        } else {
            &interrupt
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            recognizer.transcribe_interruptible(&job.pcm, &job.opts, stop)
        }));
        let compute = started.elapsed();
        tracing::debug!(
            engine,
            is_final = job.opts.is_final,
            audio_ms = job.pcm.len() / 16,
            compute_ms = compute.as_millis() as u64,
            "recognition done"
        );
        let answer = match result {
            Ok(Ok(recognized)) => Ok(AsrOutput {
                text: recognized.text,
                confidence: recognized.confidence,
                engine,
                compute,
            }),
            Ok(Err(e)) => Err(e),
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                tracing::error!(engine, "ASR engine panicked: {message}");
                Err(AsrError::Panicked { engine, message })
            }
        };
        let _ = reply.send(answer);
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asr::Recognized;

    /// A recognizer that names the job it ran; a partial runs until interrupted (or gives up
    /// after 20 s, which fails the test rather than hanging it).
    struct Scripted {
        started: std::sync::mpsc::Sender<bool>,
    }

    impl Recognizer for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }

        fn transcribe(&mut self, pcm: &[i16], opts: &AsrOptions) -> Result<Recognized, AsrError> {
            self.transcribe_interruptible(pcm, opts, &Interrupt::default())
        }

        fn transcribe_interruptible(
            &mut self,
            pcm: &[i16],
            opts: &AsrOptions,
            interrupt: &Interrupt,
        ) -> Result<Recognized, AsrError> {
            let _ = self.started.send(opts.is_final);
            if !opts.is_final {
                let deadline = Instant::now() + Duration::from_secs(20);
                while Instant::now() < deadline {
                    if interrupt.raised() {
                        return Err(AsrError::Preempted);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Ok(Recognized {
                text: format!("{} samples", pcm.len()),
                confidence: None,
            })
        }
    }

    fn job(samples: usize, is_final: bool) -> AsrJob {
        AsrJob {
            pcm: vec![0; samples],
            opts: AsrOptions {
                is_final,
                ..AsrOptions::default()
            },
        }
    }

    #[test]
    fn a_final_interrupts_a_running_partial_and_busy_workers_refuse_partials() {
        let (started_tx, started) = std::sync::mpsc::channel();
        let pool = AsrPool::from_recognizers(vec![Box::new(Scripted {
            started: started_tx,
        })]);
        // A partial is only taken by an idle worker: retry until the new thread waits.
        let mut partial = pool.submit(job(10, false));
        for _ in 0..2_000 {
            match partial.try_recv() {
                Ok(Err(AsrError::Preempted)) => {
                    std::thread::sleep(Duration::from_millis(5));
                    partial = pool.submit(job(10, false));
                }
                _ => break,
            }
        }
        assert!(!started.recv().expect("the partial starts"));
        // The only worker is busy: another partial is refused at once.
        let refused = pool
            .submit(job(20, false))
            .blocking_recv()
            .expect("answered");
        assert!(matches!(refused, Err(AsrError::Preempted)), "{refused:?}");
        // A final interrupts the running partial and is then served.
        let final_answer = pool.submit(job(30, true));
        let partial = partial.blocking_recv().expect("answered");
        assert!(matches!(partial, Err(AsrError::Preempted)), "{partial:?}");
        let final_answer = final_answer.blocking_recv().expect("answered").expect("ok");
        assert_eq!(final_answer.text, "30 samples");
        assert!(started.recv().expect("the final starts"));
    }

    #[test]
    fn finals_are_taken_before_waiting_partials() {
        let (started_tx, started) = std::sync::mpsc::channel();
        let pool = AsrPool::from_recognizers(vec![Box::new(Scripted {
            started: started_tx,
        })]);
        // Occupy the worker with a final (runs at once), then queue: the final behind it wins
        // over nothing else; a partial cannot even queue while the worker is busy.
        let first = pool.submit(job(1, true));
        let second = pool.submit(job(2, true));
        assert_eq!(
            first.blocking_recv().expect("answered").expect("ok").text,
            "1 samples"
        );
        assert_eq!(
            second.blocking_recv().expect("answered").expect("ok").text,
            "2 samples"
        );
        assert_eq!(started.try_iter().collect::<Vec<_>>(), [true, true]);
    }

    /// A recognizer whose every job waits to be let go.
    struct Gated {
        started: std::sync::mpsc::Sender<()>,
        release: std::sync::mpsc::Receiver<()>,
    }

    impl Recognizer for Gated {
        fn name(&self) -> &'static str {
            "gated"
        }

        fn transcribe(&mut self, pcm: &[i16], _: &AsrOptions) -> Result<Recognized, AsrError> {
            let _ = self.started.send(());
            let _ = self.release.recv_timeout(Duration::from_secs(20));
            Ok(Recognized {
                text: format!("{} samples", pcm.len()),
                confidence: None,
            })
        }
    }

    #[test]
    fn speculation_is_shed_while_finals_wait() {
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        let pool = AsrPool::from_recognizers(vec![Box::new(Gated {
            started: started_tx,
            release: release_rx,
        })]);
        let running = pool.submit(job(1, true));
        started.recv().expect("the first final runs");
        let waiting = pool.submit(job(2, true));
        assert!(
            pool.submit_speculative(job(3, true)).is_none(),
            "a final waits: no speculation"
        );
        release.send(()).expect("let the first go");
        started.recv().expect("the second final runs");
        let speculative = pool
            .submit_speculative(job(4, true))
            .expect("nothing waits any more");
        release.send(()).expect("let the second go");
        release.send(()).expect("let the speculation go");
        for (answer, samples) in [(running, 1), (waiting, 2), (speculative, 4)] {
            let text = answer.blocking_recv().expect("answered").expect("ok").text;
            assert_eq!(text, format!("{samples} samples"));
        }
    }

    #[test]
    fn an_empty_pool_answers_no_worker() {
        let pool = AsrPool::from_recognizers(Vec::new());
        let answer = pool.submit(job(1, true)).blocking_recv().expect("answered");
        assert!(matches!(answer, Err(AsrError::NoWorker)));
    }
}
