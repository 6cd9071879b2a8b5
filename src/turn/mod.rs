//! End of turn: is the caller done speaking, or only pausing? The learned model, and the words.
//!
//! Owns Smart Turn v3.2 (pipecat's BSD-2 model, an int8 Whisper-tiny encoder) and the one
//! worker thread that runs it. The session policy asks through [`TurnService::submit`] with the
//! turn's audio so far and gets a [`TurnPrediction`] back on a oneshot channel; it decides what
//! to do with the probability (pipecat calls a turn complete above 0.5).
//!
//! - [`features`]: sans-IO Whisper log-mel features for the model's 8 s window;
//! - [`smart_turn`]: the ONNX Runtime session ([`SmartTurn`]);
//! - [`words`]: the words' verdict on a turn, from the speculative final's text (no model);
//! - this file: [`TurnService`], the worker that owns the model, and [`TurnError`].
//!
//! Invariants:
//! - Exactly one thread touches the model; requests are answered in the order they came.
//! - Dropping the service closes its queue; the worker finishes the request it is on and ends.
//!   A request whose receiver was dropped before its turn is skipped unrun.
//! - [`TurnService::from_cache`] fails, with a message naming `hotline models fetch smart-turn`,
//!   unless both the model and the ONNX Runtime library are in the model cache.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

pub mod features;
pub mod smart_turn;
pub mod words;

pub use smart_turn::SmartTurn;

/// One answer of the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnPrediction {
    /// The probability (0..=1) that the turn is complete.
    pub probability: f32,
    /// How long the features and the model took.
    pub compute: Duration,
}

/// What went wrong with the end-of-turn model.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TurnError {
    #[error("{path} is missing; run `hotline models fetch smart-turn`")]
    Missing { path: String },
    #[error("cannot load ONNX Runtime from {path}: {reason}")]
    Runtime { path: String, reason: String },
    #[error("cannot load the Smart Turn model {path}: {reason}")]
    Model { path: String, reason: String },
    #[error("Smart Turn inference failed: {0}")]
    Inference(String),
    #[error("the end-of-turn worker has stopped")]
    Stopped,
}

/// A request to the worker.
struct Job {
    pcm_16k: Vec<i16>,
    reply: oneshot::Sender<Result<TurnPrediction, TurnError>>,
}

/// The end-of-turn model on its own worker thread.
pub struct TurnService {
    jobs: mpsc::Sender<Job>,
}

impl TurnService {
    /// Loads the model and ONNX Runtime from the model cache (see [`crate::models::cache_dir`]).
    pub fn from_cache() -> Result<Self, TurnError> {
        let (model, runtime) = cached_paths(&crate::models::cache_dir());
        Self::load(&model, &runtime)
    }

    /// Loads the model from `model_path` with ONNX Runtime from `runtime_lib_path`, on a new
    /// worker thread; returns once the model is loaded (or failed to).
    pub fn load(model_path: &Path, runtime_lib_path: &Path) -> Result<Self, TurnError> {
        for path in [model_path, runtime_lib_path] {
            if !path.is_file() {
                return Err(TurnError::Missing {
                    path: path.display().to_string(),
                });
            }
        }
        let (jobs, queue) = mpsc::channel::<Job>();
        let (loaded_tx, loaded_rx) = mpsc::channel();
        let (model_path, runtime_lib_path) =
            (model_path.to_path_buf(), runtime_lib_path.to_path_buf());
        std::thread::Builder::new()
            .name("smart-turn".into())
            .spawn(move || {
                let mut model = match SmartTurn::load(&model_path, &runtime_lib_path) {
                    Ok(model) => {
                        let _ = loaded_tx.send(Ok(()));
                        model
                    }
                    Err(e) => {
                        let _ = loaded_tx.send(Err(e));
                        return;
                    }
                };
                for job in queue {
                    if job.reply.is_closed() {
                        // Nobody waits for it any more (the call ended, or the turn moved on).
                        continue;
                    }
                    let started = Instant::now();
                    let result = model
                        .predict(&job.pcm_16k)
                        .map(|probability| TurnPrediction {
                            probability,
                            compute: started.elapsed(),
                        });
                    let _ = job.reply.send(result);
                }
            })
            .map_err(|e| TurnError::Runtime {
                path: "(worker thread)".into(),
                reason: e.to_string(),
            })?;
        loaded_rx.recv().map_err(|_| TurnError::Stopped)??;
        Ok(Self { jobs })
    }

    /// Asks whether the turn in `pcm` (16 kHz mono, the turn so far; only its last 8 s count)
    /// is complete. The answer comes on the returned channel; a stopped worker answers
    /// [`TurnError::Stopped`].
    pub fn submit(&self, pcm: Vec<i16>) -> oneshot::Receiver<Result<TurnPrediction, TurnError>> {
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::SendError(job)) = self.jobs.send(Job {
            pcm_16k: pcm,
            reply,
        }) {
            let _ = job.reply.send(Err(TurnError::Stopped));
        }
        answer
    }
}

/// Where the model and the ONNX Runtime library are in a model cache.
pub fn cached_paths(cache: &Path) -> (PathBuf, PathBuf) {
    (
        cache.join(crate::models::SMART_TURN_MODEL.file),
        cache.join(crate::models::ONNX_RUNTIME.file),
    )
}
