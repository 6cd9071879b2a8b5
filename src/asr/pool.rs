//! The ASR worker pool: a bounded queue in front of a fixed number of threads, each owning one
//! [`Recognizer`].
//!
//! Invariants:
//! - Jobs wait in one shared queue of at most [`QUEUE_JOBS_PER_WORKER`] × workers entries; a
//!   submit to a full queue is answered at once with [`AsrError::Overloaded`] instead of
//!   blocking the caller (which is usually an async task on the media path).
//! - A job whose receiver was dropped before a worker picked it up is skipped; one dropped
//!   while it runs finishes and its result is discarded (send errors are ignored).
//! - A panic inside an engine is caught on the worker and returned as
//!   [`AsrError::Panicked`]; the worker keeps serving.
//! - Workers stop when the last clone of the pool is dropped (the queue closes).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::sphinx::SphinxRecognizer;
use super::whisper::{WhisperRecognizer, WhisperSettings};
use super::{AsrError, AsrOptions, Recognizer};
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

type Reply = oneshot::Sender<Result<AsrOutput, AsrError>>;

struct QueuedJob {
    job: AsrJob,
    reply: Reply,
}

/// A bounded pool of recognizer threads. Cloning shares the pool.
#[derive(Clone)]
pub struct AsrPool {
    queue: Option<SyncSender<QueuedJob>>,
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

/// Which engine [`AsrPool::new`] picks for a config: `auto` means whisper when its model file
/// exists, else Sphinx.
pub fn resolve_engine(config: &AsrConfig) -> AsrEngineKind {
    match config.engine {
        AsrEngineKind::Auto if config.model.is_file() => AsrEngineKind::Whisper,
        AsrEngineKind::Auto => AsrEngineKind::Sphinx,
        other => other,
    }
}

impl AsrPool {
    /// Starts `config.workers` threads, each loading its own recognizer of the configured
    /// engine, and waits until all have loaded. The first load error is returned (and the
    /// threads that did load stop).
    pub fn new(config: &AsrConfig) -> Result<Self, AsrError> {
        let engine = resolve_engine(config);
        let workers = config.workers.max(1);
        let (loaded_tx, loaded_rx) = mpsc::channel::<Result<&'static str, AsrError>>();
        let capacity = QUEUE_JOBS_PER_WORKER * workers;
        let (queue, jobs) = mpsc::sync_channel::<QueuedJob>(capacity);
        let jobs = Arc::new(Mutex::new(jobs));
        for index in 0..workers {
            let config = config.clone();
            let loaded_tx = loaded_tx.clone();
            let jobs = Arc::clone(&jobs);
            let spawned = std::thread::Builder::new()
                .name(format!("asr-{index}"))
                .spawn(move || {
                    let loaded = catch_unwind(AssertUnwindSafe(|| load(engine, &config)))
                        .unwrap_or_else(|panic| {
                            Err(AsrError::Panicked {
                                engine: "loader",
                                message: panic_message(panic.as_ref()),
                            })
                        });
                    match loaded {
                        Ok(recognizer) => {
                            // The constructor may already have given up; then the queue is
                            // closed and the worker loop ends at once.
                            let _ = loaded_tx.send(Ok(recognizer.name()));
                            drop(loaded_tx);
                            run_worker(recognizer, &jobs);
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
            model = %model_description(engine, config),
            workers,
            threads = config.threads,
            trim_audio_ctx = config.trim_audio_ctx,
            "ASR ready: {engine_name} ({})",
            model_description(engine, config)
        );
        Ok(Self {
            queue: Some(queue),
            capacity,
            engine: engine_name,
        })
    }

    /// A pool over recognizers that are already loaded, one thread each. An empty list gives a
    /// pool that answers every job with [`AsrError::NoWorker`].
    pub fn from_recognizers(recognizers: Vec<Box<dyn Recognizer>>) -> Self {
        let Some(first) = recognizers.first() else {
            return Self {
                queue: None,
                capacity: 0,
                engine: "none",
            };
        };
        let engine = first.name();
        let capacity = QUEUE_JOBS_PER_WORKER * recognizers.len();
        let (queue, jobs) = mpsc::sync_channel::<QueuedJob>(capacity);
        let jobs = Arc::new(Mutex::new(jobs));
        let mut started = 0;
        for (index, recognizer) in recognizers.into_iter().enumerate() {
            let jobs = Arc::clone(&jobs);
            let spawned = std::thread::Builder::new()
                .name(format!("asr-{index}"))
                .spawn(move || run_worker(recognizer, &jobs));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!("cannot start ASR worker thread {index}: {e}"),
            }
        }
        if started == 0 {
            return Self {
                queue: None,
                capacity: 0,
                engine,
            };
        }
        Self {
            queue: Some(queue),
            capacity,
            engine,
        }
    }

    /// The engine the workers run ("whisper", "sphinx"; "none" for an empty pool).
    pub fn engine_name(&self) -> &'static str {
        self.engine
    }

    /// Queues one utterance. The answer arrives on the returned receiver; dropping it
    /// abandons the job.
    pub fn submit(&self, job: AsrJob) -> oneshot::Receiver<Result<AsrOutput, AsrError>> {
        let (reply, answer) = oneshot::channel();
        let Some(queue) = &self.queue else {
            let _ = reply.send(Err(AsrError::NoWorker));
            return answer;
        };
        match queue.try_send(QueuedJob { job, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(queued)) => {
                let _ = queued.reply.send(Err(AsrError::Overloaded {
                    capacity: self.capacity,
                }));
            }
            Err(TrySendError::Disconnected(queued)) => {
                let _ = queued.reply.send(Err(AsrError::NoWorker));
            }
        }
        answer
    }
}

/// Loads one recognizer of the resolved engine.
fn load(engine: AsrEngineKind, config: &AsrConfig) -> Result<Box<dyn Recognizer>, AsrError> {
    match engine {
        AsrEngineKind::Sphinx => Ok(Box::new(SphinxRecognizer::new(
            &config.sphinx_hmm,
            &config.sphinx_lm,
            &config.sphinx_dict,
        )?)),
        AsrEngineKind::Whisper | AsrEngineKind::Auto => {
            let settings = WhisperSettings {
                threads: config.threads,
                trim_audio_ctx: config.trim_audio_ctx,
                ..WhisperSettings::default()
            };
            Ok(Box::new(WhisperRecognizer::new(&config.model, settings)?))
        }
    }
}

fn model_description(engine: AsrEngineKind, config: &AsrConfig) -> String {
    let show = |p: &Path| p.display().to_string();
    match engine {
        AsrEngineKind::Sphinx => format!(
            "hmm {}, lm {}, dict {}",
            show(&config.sphinx_hmm),
            show(&config.sphinx_lm),
            show(&config.sphinx_dict)
        ),
        _ => format!("model {}", show(&config.model)),
    }
}

/// A worker's loop: take a job, run it, answer; until the queue closes.
fn run_worker(mut recognizer: Box<dyn Recognizer>, jobs: &Mutex<Receiver<QueuedJob>>) {
    loop {
        let next = {
            let Ok(guard) = jobs.lock() else {
                // Another worker panicked while holding the lock, which it never does
                // (it only calls recv); stop rather than serve from a broken queue.
                return;
            };
            guard.recv()
        };
        let Ok(QueuedJob { job, reply }) = next else {
            return;
        };
        if reply.is_closed() {
            continue;
        }
        let engine = recognizer.name();
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| {
            recognizer.transcribe(&job.pcm, &job.opts)
        }));
        let compute = started.elapsed();
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
