//! Synthetic-weight models for compute benchmarks: the real hyper-parameters, tensor names,
//! shapes and types of an official f16 model, with random weights.
//!
//! Invariants: the mel filters and vocabulary are copied byte for byte from whisper.cpp's
//! weightless test model of the same vocabulary; the same seed gives the same file; the file
//! name always starts with [`SYNTHETIC_PREFIX`], so nobody mistakes one for a trained model
//! (it costs the real model's compute and recognizes nothing).

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::ggml::{
    parse_header, tensor_specs, Cursor, GgmlType, GgmlWriter, TensorRole, WhisperHparams,
};
use super::{create_parent, find, io_error, part_path, ModelError, ModelInfo};

/// The prefix of every synthetic file name.
pub const SYNTHETIC_PREFIX: &str = "synthetic-random-weights-";

/// The model sizes the generator can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyntheticSize {
    TinyEn,
    Tiny,
    BaseEn,
    Base,
}

impl SyntheticSize {
    /// All sizes.
    pub const ALL: [SyntheticSize; 4] = [
        SyntheticSize::TinyEn,
        SyntheticSize::Tiny,
        SyntheticSize::BaseEn,
        SyntheticSize::Base,
    ];

    /// The short name: "tiny.en", "tiny", "base.en", "base".
    pub fn name(self) -> &'static str {
        match self {
            SyntheticSize::TinyEn => "tiny.en",
            SyntheticSize::Tiny => "tiny",
            SyntheticSize::BaseEn => "base.en",
            SyntheticSize::Base => "base",
        }
    }

    /// The output file name, e.g. `synthetic-random-weights-ggml-tiny.en.bin`.
    pub fn file_name(self) -> String {
        format!("{SYNTHETIC_PREFIX}ggml-{}.bin", self.name())
    }

    /// whisper.cpp's weightless test model with this size's vocabulary and mel filters.
    pub fn test_model_file(self) -> String {
        format!("for-tests-ggml-{}.bin", self.name())
    }

    /// The official f16 file of the same shape (its size is what the generator produces).
    pub fn official(self) -> &'static ModelInfo {
        let name = format!("ggml-{}.bin", self.name());
        find(&name).expect("every synthetic size has an official f16 counterpart in MODELS")
    }

    /// The real hyper-parameters (f16 weights).
    pub fn hparams(self) -> WhisperHparams {
        let (state, head, layer) = match self {
            SyntheticSize::TinyEn | SyntheticSize::Tiny => (384, 6, 4),
            SyntheticSize::BaseEn | SyntheticSize::Base => (512, 8, 6),
        };
        let n_vocab = match self {
            SyntheticSize::TinyEn | SyntheticSize::BaseEn => 51_864,
            SyntheticSize::Tiny | SyntheticSize::Base => 51_865,
        };
        WhisperHparams {
            n_vocab,
            n_audio_ctx: 1500,
            n_audio_state: state,
            n_audio_head: head,
            n_audio_layer: layer,
            n_text_ctx: 448,
            n_text_state: state,
            n_text_head: head,
            n_text_layer: layer,
            n_mels: 80,
            ftype: 1,
        }
    }
}

impl std::fmt::Display for SyntheticSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SyntheticSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SyntheticSize::ALL
            .into_iter()
            .find(|size| size.name() == s)
            .ok_or_else(|| {
                format!("unknown model size {s:?} (expected tiny.en, tiny, base.en or base)")
            })
    }
}

/// Writes a ggml whisper model of `size` with random weights to `out`.
///
/// The mel filters and vocabulary are copied byte for byte from `test_model` (whisper.cpp's
/// `for-tests-ggml-<size>.bin`, whose vocabulary must match the size: English-only or
/// multilingual). The same `seed` gives the same file.
pub fn generate_synthetic(
    size: SyntheticSize,
    test_model: &Path,
    out: &Path,
    seed: u64,
) -> Result<(), ModelError> {
    let hparams = size.hparams();
    let mut c = Cursor::open(test_model)?;
    let header = parse_header(&mut c)?;
    if header.hparams.is_multilingual() != hparams.is_multilingual()
        || header.hparams.n_mels != hparams.n_mels
    {
        return Err(ModelError::BadFormat {
            path: test_model.display().to_string(),
            reason: format!(
                "its vocabulary ({} tokens, {} mels) does not fit {size} ({} tokens, {} mels); \
                 use {}",
                header.hparams.n_vocab,
                header.hparams.n_mels,
                hparams.n_vocab,
                hparams.n_mels,
                size.test_model_file()
            ),
        });
    }
    // The mel filters and vocabulary, exactly as stored.
    let mel_and_vocab = c.range(header.mel_offset, header.vocab_end)?;

    create_parent(out)?;
    let part = part_path(out);
    let written = write_synthetic(&part, &hparams, &mel_and_vocab, seed);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, out).map_err(io_error(out))?;
    Ok(())
}

fn write_synthetic(
    path: &Path,
    hparams: &WhisperHparams,
    mel_and_vocab: &[u8],
    seed: u64,
) -> Result<(), ModelError> {
    let mut w = GgmlWriter::create(path)?;
    w.header(hparams, mel_and_vocab)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = Vec::new();
    for spec in tensor_specs(hparams) {
        let ttype = spec.role.ggml_type();
        // A uniform distribution on ±a has standard deviation a / sqrt(3).
        let (center, spread) = match spec.role {
            TensorRole::Matrix { fan_in } => (0.0f32, 3f32.sqrt() / (fan_in as f32).sqrt()),
            TensorRole::Embedding | TensorRole::Position => (0.0, 3f32.sqrt() * 0.02),
            TensorRole::Bias => (0.0, 0.02),
            TensorRole::Gain => (1.0, 0.05),
        };
        let elements = spec.elements();
        data.clear();
        data.reserve(elements * 4);
        for _ in 0..elements {
            let v = center + spread * rng.gen_range(-1.0f32..1.0);
            match ttype {
                GgmlType::F16 => data.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
                _ => data.extend_from_slice(&v.to_le_bytes()),
            }
        }
        w.tensor(&spec.name, &spec.dims, ttype, &data)?;
    }
    w.finish()?;
    Ok(())
}

/// Generates `size` from the test model in `test_models_dir` into `out_dir` under its
/// synthetic name, and returns the path (what `hotline models synth <size>` runs).
pub fn generate_synthetic_into(
    size: SyntheticSize,
    test_models_dir: &Path,
    out_dir: &Path,
    seed: u64,
) -> Result<PathBuf, ModelError> {
    let out = out_dir.join(size.file_name());
    generate_synthetic(
        size,
        &test_models_dir.join(size.test_model_file()),
        &out,
        seed,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_name_their_files() {
        assert_eq!(
            "base.en".parse::<SyntheticSize>(),
            Ok(SyntheticSize::BaseEn)
        );
        assert!("large".parse::<SyntheticSize>().is_err());
        assert_eq!(
            SyntheticSize::TinyEn.file_name(),
            "synthetic-random-weights-ggml-tiny.en.bin"
        );
        assert_eq!(SyntheticSize::Base.official().file, "ggml-base.bin");
    }
}
