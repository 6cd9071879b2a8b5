//! Smart Turn v3.2 (pipecat's learned end-of-turn model) through ONNX Runtime.
//!
//! Owns one ONNX Runtime session of `smart-turn-v3.2-cpu.onnx` and the feature extractor in
//! front of it. [`SmartTurn::predict`] takes the turn so far (16 kHz mono) and returns the
//! probability that the caller has finished speaking; pipecat calls a turn complete above 0.5.
//!
//! Invariants:
//! - ONNX Runtime is loaded once per process, from the `libonnxruntime.so` the first
//!   [`SmartTurn::load`] names (`ort`'s `load-dynamic`: nothing is linked at build time). A later
//!   load naming another library reuses the first one and logs that it did.
//! - The session runs as pipecat runs it: sequential, one inter-op and one intra-op thread,
//!   every graph optimization on. One `SmartTurn` is used by one thread at a time (`&mut self`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;

use super::features::{LogMelExtractor, N_FRAMES, N_MELS};
use super::TurnError;

/// The input the model reads.
const INPUT_NAME: &str = "input_features";

/// The process's ONNX Runtime: the library it was loaded from and its environment.
static RUNTIME: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);

/// The process's ONNX Runtime environment, loading `lib` on first use.
fn runtime(lib: &Path) -> Result<Environment, TurnError> {
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((loaded, env)) = slot.as_ref() {
        if loaded != lib {
            tracing::info!(
                "ONNX Runtime is already loaded from {}; not loading {}",
                loaded.display(),
                lib.display()
            );
        }
        return Ok(env.clone());
    }
    if !lib.is_file() {
        return Err(TurnError::Missing {
            path: lib.display().to_string(),
        });
    }
    let ort_error = |e: &dyn std::fmt::Display| TurnError::Runtime {
        path: lib.display().to_string(),
        reason: e.to_string(),
    };
    let env = ort::init_from(lib)
        .map_err(|e| ort_error(&e))?
        .with_name("hotline")
        .build()
        .map_err(|e| ort_error(&e))?;
    *slot = Some((lib.to_path_buf(), env.clone()));
    Ok(env)
}

/// The loaded model and its feature extractor.
pub struct SmartTurn {
    session: Session,
    features: LogMelExtractor,
}

impl SmartTurn {
    /// Loads ONNX Runtime from `runtime_lib_path` (once per process) and the model from
    /// `model_path`.
    pub fn load(model_path: &Path, runtime_lib_path: &Path) -> Result<Self, TurnError> {
        if !model_path.is_file() {
            return Err(TurnError::Missing {
                path: model_path.display().to_string(),
            });
        }
        let env = runtime(runtime_lib_path)?;
        let model_error = |e: &dyn std::fmt::Display| TurnError::Model {
            path: model_path.display().to_string(),
            reason: e.to_string(),
        };
        let session = Session::builder(&env)
            .map_err(|e| model_error(&e))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| model_error(&e))?
            .with_inter_threads(1)
            .map_err(|e| model_error(&e))?
            .with_intra_threads(1)
            .map_err(|e| model_error(&e))?
            .commit_from_file(model_path)
            .map_err(|e| model_error(&e))?;
        if !session.inputs().iter().any(|i| i.name() == INPUT_NAME) {
            return Err(model_error(&format!("no input named {INPUT_NAME}")));
        }
        if session.outputs().is_empty() {
            return Err(model_error(&"the model has no output"));
        }
        Ok(Self {
            session,
            features: LogMelExtractor::new(),
        })
    }

    /// The probability (0..=1) that the turn in `pcm_16k` is complete. Only its last 8 s
    /// count; shorter audio is padded with silence at the front.
    pub fn predict(&mut self, pcm_16k: &[i16]) -> Result<f32, TurnError> {
        let features = self.features.compute(pcm_16k);
        let input = Tensor::from_array(([1usize, N_MELS, N_FRAMES], features))
            .map_err(|e| TurnError::Inference(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![INPUT_NAME => input])
            .map_err(|e| TurnError::Inference(e.to_string()))?;
        // pipecat reads `outputs[0][0]`: the first output, a sigmoid probability.
        let (_, values) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| TurnError::Inference(e.to_string()))?;
        let probability = values
            .first()
            .copied()
            .ok_or_else(|| TurnError::Inference("the model returned an empty tensor".into()))?;
        Ok(probability)
    }
}
