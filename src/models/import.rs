//! CTranslate2 Whisper models to ggml: what `hotline models import CT2_DIR OUT.bin` runs.
//!
//! A CT2 model directory holds `model.bin` (version 6, spec "WhisperSpec": named variables
//! with shape, dtype and raw bytes, then aliases), `vocabulary.txt` (one GPT-2 byte-level token
//! per line) and `config.json` (not needed here). The conversion follows whisper.cpp's
//! `convert-pt-to-ggml.py`: hyper-parameters from the variables' shapes, the Slaney mel filter
//! bank computed as librosa computes it, the first [`GGML_VOCAB_ENTRIES`] tokens turned back
//! into bytes (whisper.cpp adds the special tokens itself), then the tensors of
//! [`tensor_specs`](super::tensor_specs), each cut out of CT2's fused projections (Q, K and V
//! are fused along the output dimension; the all-zero key bias is dropped).
//!
//! Invariants:
//! - Every length in `model.bin` is checked against the file before use: a truncated or
//!   foreign file is a [`ModelError::BadCt2`] naming the file, never a panic.
//! - The output is written to `<out>.part` and renamed into place only once complete and,
//!   when an expected trained model is given, only if its size and sha256 match.

use std::collections::HashMap;
use std::path::Path;

use super::ggml::{mel_and_vocab_bytes, tensor_specs, GgmlType, GgmlWriter, WhisperHparams};
use super::quantize::{is_quantized, q8_0_blocks, QuantType};
use super::{commit_part, create_parent, io_error, part_path, Converted, ModelError, TrainedModel};

/// Vocabulary entries a ggml whisper file stores (GPT-2's 50256 byte-level tokens and
/// `<|endoftext|>`); whisper.cpp makes up the special tokens after them.
pub const GGML_VOCAB_ENTRIES: usize = 50_257;

/// The audio sample rate and FFT size whisper's mel spectrogram uses.
const SAMPLE_RATE_HZ: f64 = 16_000.0;
const N_FFT: usize = 400;

// ---------------------------------------------------------------------------------------------
// Mel filters and vocabulary
// ---------------------------------------------------------------------------------------------

/// librosa's Slaney-scale Hz → mel (`htk=False`).
fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

/// librosa's Slaney-scale mel → Hz.
fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// whisper's mel filter bank: `librosa.filters.mel(sr=16000, n_fft=400, n_mels)` with
/// `htk=False, norm="slaney"`, computed the way librosa computes it (triangles in f64 stored
/// as f32, then scaled in f64 by the Slaney norm and stored as f32). `n_mels` rows of 201.
pub fn mel_filters_slaney(n_mels: usize) -> Vec<f32> {
    let n_bins = N_FFT / 2 + 1;
    // np.fft.rfftfreq(400, 1/16000): 40 Hz steps, exact in f64.
    let bin_hz = 1.0 / (N_FFT as f64 * (1.0 / SAMPLE_RATE_HZ));
    let fft_hz: Vec<f64> = (0..n_bins).map(|j| j as f64 * bin_hz).collect();
    // np.linspace(min_mel, max_mel, n_mels + 2), then back to Hz.
    let (min_mel, max_mel) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE_HZ / 2.0));
    let points = n_mels + 2;
    let step = (max_mel - min_mel) / (points - 1) as f64;
    let mel_hz: Vec<f64> = (0..points)
        .map(|i| {
            let mel = if i == points - 1 {
                max_mel
            } else {
                i as f64 * step + min_mel
            };
            mel_to_hz(mel)
        })
        .collect();
    let mut weights = vec![0f32; n_mels * n_bins];
    for i in 0..n_mels {
        let lower_diff = mel_hz[i + 1] - mel_hz[i];
        let upper_diff = mel_hz[i + 2] - mel_hz[i + 1];
        let enorm = 2.0 / (mel_hz[i + 2] - mel_hz[i]);
        for (j, &f) in fft_hz.iter().enumerate() {
            let lower = -(mel_hz[i] - f) / lower_diff;
            let upper = (mel_hz[i + 2] - f) / upper_diff;
            let w = 0f64.max(lower.min(upper)) as f32;
            weights[i * n_bins + j] = (f64::from(w) * enorm) as f32;
        }
    }
    weights
}

/// GPT-2's byte → printable character table (`bytes_to_unicode`), inverted.
fn gpt2_byte_decoder() -> HashMap<char, u8> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut next = 256u32;
    let mut decoder = HashMap::with_capacity(256);
    for b in 0u32..256 {
        let c = if printable(b) {
            b
        } else {
            next += 1;
            next - 1
        };
        let c = char::from_u32(c).expect("code points below 512 are characters");
        decoder.insert(c, b as u8);
    }
    decoder
}

/// The ggml vocabulary block (i32 count, then per token i32 length and bytes) from a CT2
/// `vocabulary.txt`: its first [`GGML_VOCAB_ENTRIES`] tokens, back from GPT-2's byte-level
/// characters to bytes. Tokens stay raw bytes, as in the official files (344 of them are
/// parts of multi-byte characters; whisper.cpp's weightless test models store those as
/// U+FFFD instead, which would break Mandarin transcripts).
pub fn vocab_block_from_ct2(vocabulary: &Path) -> Result<Vec<u8>, ModelError> {
    let bad = |reason: String| ModelError::BadCt2 {
        path: vocabulary.display().to_string(),
        reason,
    };
    if !vocabulary.is_file() {
        return Err(ModelError::Ct2Missing {
            path: vocabulary.display().to_string(),
        });
    }
    let text = std::fs::read(vocabulary).map_err(io_error(vocabulary))?;
    let text = String::from_utf8(text).map_err(|e| bad(format!("not UTF-8: {e}")))?;
    let decoder = gpt2_byte_decoder();
    let lines: Vec<&str> = text.split('\n').take(GGML_VOCAB_ENTRIES).collect();
    if lines.len() < GGML_VOCAB_ENTRIES {
        return Err(bad(format!(
            "{} tokens, a whisper vocabulary has at least {GGML_VOCAB_ENTRIES}",
            lines.len()
        )));
    }
    let mut block = Vec::with_capacity(GGML_VOCAB_ENTRIES * 12);
    block.extend_from_slice(&(GGML_VOCAB_ENTRIES as i32).to_le_bytes());
    let mut token = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        token.clear();
        for c in line.chars() {
            let b = decoder.get(&c).ok_or_else(|| {
                bad(format!(
                    "line {}: {c:?} is not a GPT-2 byte-level character",
                    i + 1
                ))
            })?;
            token.push(*b);
        }
        block.extend_from_slice(&(token.len() as i32).to_le_bytes());
        block.extend_from_slice(&token);
    }
    Ok(block)
}

// ---------------------------------------------------------------------------------------------
// model.bin
// ---------------------------------------------------------------------------------------------

/// CT2 data types (ctranslate2's `DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ct2Type {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Type {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Ct2Type::F32,
            1 => Ct2Type::I8,
            2 => Ct2Type::I16,
            3 => Ct2Type::I32,
            4 => Ct2Type::F16,
            5 => Ct2Type::Bf16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Ct2Type::I8 => 1,
            Ct2Type::I16 | Ct2Type::F16 | Ct2Type::Bf16 => 2,
            Ct2Type::F32 | Ct2Type::I32 => 4,
        }
    }
}

/// One variable of `model.bin`: its shape, type and where its bytes are.
#[derive(Debug, Clone)]
struct Ct2Var {
    dims: Vec<usize>,
    dtype: Ct2Type,
    offset: usize,
    len: usize,
}

/// A parsed `model.bin`, held in memory.
struct Ct2Model {
    path: String,
    data: Vec<u8>,
    vars: HashMap<String, Ct2Var>,
}

/// A bounds-checked reader over `model.bin`'s bytes.
struct Ct2Reader<'a> {
    data: &'a [u8],
    offset: usize,
    path: &'a str,
}

impl<'a> Ct2Reader<'a> {
    fn bad(&self, reason: impl Into<String>) -> ModelError {
        ModelError::BadCt2 {
            path: self.path.to_string(),
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ModelError> {
        let left = self.data.len() - self.offset;
        if n > left {
            return Err(self.bad(format!(
                "truncated: {what} needs {n} bytes at offset {}, {left} left",
                self.offset
            )));
        }
        let bytes = &self.data[self.offset..self.offset + n];
        self.offset += n;
        Ok(bytes)
    }

    fn u8(&mut self, what: &str) -> Result<u8, ModelError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, ModelError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A string: u16 length including a final NUL, then the bytes.
    fn string(&mut self, what: &str) -> Result<String, ModelError> {
        let len = self.u16(what)? as usize;
        let bytes = self.take(len, what)?;
        let text = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        String::from_utf8(text.to_vec()).map_err(|_| self.bad(format!("{what} is not UTF-8")))
    }
}

impl Ct2Model {
    fn load(path: &Path) -> Result<Self, ModelError> {
        if !path.is_file() {
            return Err(ModelError::Ct2Missing {
                path: path.display().to_string(),
            });
        }
        let data = std::fs::read(path).map_err(io_error(path))?;
        let path = path.display().to_string();
        let vars = Self::parse(&data, &path)?;
        Ok(Self { path, data, vars })
    }

    fn parse(data: &[u8], path: &str) -> Result<HashMap<String, Ct2Var>, ModelError> {
        let mut r = Ct2Reader {
            data,
            offset: 0,
            path,
        };
        let version = r.u32("format version")?;
        if version != 6 {
            return Err(r.bad(format!(
                "format version {version} (expected 6; this is not a CT2 model.bin, or a \
                 version this importer does not read)"
            )));
        }
        let spec = r.string("spec name")?;
        if spec != "WhisperSpec" {
            return Err(r.bad(format!("spec {spec:?}, expected \"WhisperSpec\"")));
        }
        let _revision = r.u32("spec revision")?;
        let count = r.u32("variable count")?;
        let mut vars = HashMap::new();
        for i in 0..count {
            let name = r.string(&format!("name of variable {i}"))?;
            let rank = r.u8(&format!("rank of {name}"))?;
            if rank > 4 {
                return Err(r.bad(format!("{name}: rank {rank}")));
            }
            let mut dims = Vec::with_capacity(rank as usize);
            for _ in 0..rank {
                dims.push(r.u32(&format!("shape of {name}"))? as usize);
            }
            let type_id = r.u8(&format!("dtype of {name}"))?;
            let dtype = Ct2Type::from_id(type_id)
                .ok_or_else(|| r.bad(format!("{name}: unknown dtype {type_id}")))?;
            let len = r.u32(&format!("byte count of {name}"))? as usize;
            let elements: usize = dims.iter().product();
            if elements.checked_mul(dtype.size()) != Some(len) {
                return Err(r.bad(format!(
                    "{name}: {len} bytes for shape {dims:?} of {dtype:?}"
                )));
            }
            let offset = r.offset;
            r.take(len, &format!("data of {name}"))?;
            vars.insert(
                name,
                Ct2Var {
                    dims,
                    dtype,
                    offset,
                    len,
                },
            );
        }
        let aliases = r.u32("alias count")?;
        for i in 0..aliases {
            let alias = r.string(&format!("alias {i}"))?;
            let target = r.string(&format!("target of alias {alias}"))?;
            if let Some(var) = vars.get(&target).cloned() {
                vars.entry(alias).or_insert(var);
            }
        }
        Ok(vars)
    }

    fn bad(&self, reason: impl Into<String>) -> ModelError {
        ModelError::BadCt2 {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn var(&self, name: &str) -> Result<&Ct2Var, ModelError> {
        self.vars
            .get(name)
            .ok_or_else(|| self.bad(format!("lacks variable {name}")))
    }

    /// A scalar integer (num_heads).
    fn scalar(&self, name: &str) -> Result<i64, ModelError> {
        let var = self.var(name)?;
        let b = &self.data[var.offset..var.offset + var.len];
        Ok(match (var.dtype, b.len()) {
            (Ct2Type::I8, 1) => i64::from(b[0] as i8),
            (Ct2Type::I16, 2) => i64::from(i16::from_le_bytes([b[0], b[1]])),
            (Ct2Type::I32, 4) => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            _ => return Err(self.bad(format!("{name} is not an integer scalar"))),
        })
    }

    /// `dims[axis]` of a variable of rank `rank`.
    fn dim(&self, name: &str, rank: usize, axis: usize) -> Result<i32, ModelError> {
        let var = self.var(name)?;
        if var.dims.len() != rank {
            return Err(self.bad(format!(
                "{name} has shape {:?}, expected rank {rank}",
                var.dims
            )));
        }
        i32::try_from(var.dims[axis]).map_err(|_| self.bad(format!("{name}: shape {:?}", var.dims)))
    }

    /// Layers `prefix/layer_0 …` present.
    fn layers(&self, prefix: &str) -> i32 {
        let mut n = 0;
        while self.vars.contains_key(&format!(
            "{prefix}/layer_{n}/self_attention/linear_0/weight"
        )) {
            n += 1;
        }
        n
    }

    fn hparams(&self) -> Result<WhisperHparams, ModelError> {
        let state = self.dim("encoder/position_encodings/encodings", 2, 1)?;
        let heads = |name: &str| -> Result<i32, ModelError> {
            i32::try_from(self.scalar(name)?).map_err(|_| self.bad(format!("{name} out of range")))
        };
        let h = WhisperHparams {
            n_vocab: self.dim("decoder/embeddings/weight", 2, 0)?,
            n_audio_ctx: self.dim("encoder/position_encodings/encodings", 2, 0)?,
            n_audio_state: state,
            n_audio_head: heads("encoder/num_heads")?,
            n_audio_layer: self.layers("encoder"),
            n_text_ctx: self.dim("decoder/position_encodings/encodings", 2, 0)?,
            n_text_state: self.dim("decoder/embeddings/weight", 2, 1)?,
            n_text_head: heads("decoder/num_heads")?,
            n_text_layer: self.layers("decoder"),
            n_mels: self.dim("encoder/conv1/weight", 3, 1)?,
            ftype: 1,
        };
        if h.n_audio_layer == 0 || h.n_text_layer == 0 {
            return Err(self.bad("no encoder or decoder layers"));
        }
        if h.n_text_state != h.n_audio_state {
            return Err(self.bad(format!(
                "decoder width {} differs from encoder width {}",
                h.n_text_state, h.n_audio_state
            )));
        }
        Ok(h)
    }

    /// Rows `[start, start + rows)` of a variable (elements for rank 1), as raw bytes.
    fn rows(&self, name: &str, start: usize, rows: usize) -> Result<(&[u8], Ct2Type), ModelError> {
        let var = self.var(name)?;
        let per_row: usize = var.dims.iter().skip(1).product();
        let first = var.dims.first().copied().unwrap_or(1);
        if start + rows > first {
            return Err(self.bad(format!(
                "{name} has shape {:?}, too small for rows {start}..{}",
                var.dims,
                start + rows
            )));
        }
        let size = var.dtype.size();
        let begin = var.offset + start * per_row * size;
        let end = begin + rows * per_row * size;
        Ok((&self.data[begin..end], var.dtype))
    }
}

/// Where a ggml tensor comes from in `model.bin`: a variable and, for a part of a fused
/// projection, which block of `s` rows (0 = first).
fn ct2_source(name: &str) -> Option<(String, Option<usize>)> {
    let direct = |v: &str| Some((v.to_string(), None));
    match name {
        "encoder.positional_embedding" => return direct("encoder/position_encodings/encodings"),
        "decoder.positional_embedding" => return direct("decoder/position_encodings/encodings"),
        "decoder.token_embedding.weight" => return direct("decoder/embeddings/weight"),
        "encoder.conv1.weight" => return direct("encoder/conv1/weight"),
        "encoder.conv1.bias" => return direct("encoder/conv1/bias"),
        "encoder.conv2.weight" => return direct("encoder/conv2/weight"),
        "encoder.conv2.bias" => return direct("encoder/conv2/bias"),
        "encoder.ln_post.weight" => return direct("encoder/layer_norm/gamma"),
        "encoder.ln_post.bias" => return direct("encoder/layer_norm/beta"),
        "decoder.ln.weight" => return direct("decoder/layer_norm/gamma"),
        "decoder.ln.bias" => return direct("decoder/layer_norm/beta"),
        _ => {}
    }
    // "{encoder|decoder}.blocks.{i}.{module}.{weight|bias}"
    let (side, rest) = name.split_once(".blocks.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, param) = rest.rsplit_once('.')?;
    let prefix = format!("{side}/layer_{layer}");
    let norm = |m: &str| {
        let p = if param == "weight" { "gamma" } else { "beta" };
        Some((format!("{prefix}/{m}/layer_norm/{p}"), None))
    };
    let linear = |m: &str, block: Option<usize>| Some((format!("{prefix}/{m}/{param}"), block));
    match module {
        "attn_ln" => norm("self_attention"),
        "cross_attn_ln" => norm("attention"),
        "mlp_ln" => norm("ffn"),
        "attn.query" => linear("self_attention/linear_0", Some(0)),
        "attn.key" => linear("self_attention/linear_0", Some(1)),
        "attn.value" => linear("self_attention/linear_0", Some(2)),
        "attn.out" => linear("self_attention/linear_1", None),
        "cross_attn.query" => linear("attention/linear_0", None),
        "cross_attn.key" => linear("attention/linear_1", Some(0)),
        "cross_attn.value" => linear("attention/linear_1", Some(1)),
        "cross_attn.out" => linear("attention/linear_2", None),
        "mlp.0" => linear("ffn/linear_0", None),
        "mlp.2" => linear("ffn/linear_1", None),
        _ => None,
    }
}

/// Raw CT2 values as f32.
fn to_f32(raw: &[u8], dtype: Ct2Type) -> Option<Vec<f32>> {
    Some(match dtype {
        Ct2Type::F32 => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Ct2Type::F16 => raw
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Ct2Type::Bf16 => raw
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Ct2Type::I8 | Ct2Type::I16 | Ct2Type::I32 => return None,
    })
}

/// Converts a CT2 Whisper model directory (`model.bin`, `vocabulary.txt`) to a ggml whisper
/// file at `out`, optionally quantized. With `expected`, the output must have that trained
/// model's recorded size and sha256 or it is deleted and the call fails.
pub fn import_ct2(
    ct2_dir: &Path,
    out: &Path,
    quant: Option<QuantType>,
    expected: Option<&TrainedModel>,
) -> Result<Converted, ModelError> {
    if !ct2_dir.is_dir() {
        return Err(ModelError::Ct2Missing {
            path: ct2_dir.display().to_string(),
        });
    }
    // The small file first, so that a missing vocabulary fails before a big read.
    let vocab_block = vocab_block_from_ct2(&ct2_dir.join("vocabulary.txt"))?;
    let model = Ct2Model::load(&ct2_dir.join("model.bin"))?;
    let mut hparams = model.hparams()?;
    if let Some(q) = quant {
        hparams.ftype = q.ftype();
    }
    let n_bins = (N_FFT / 2 + 1) as i32;
    let filters = mel_filters_slaney(hparams.n_mels as usize);
    let mel_and_vocab = mel_and_vocab_bytes(hparams.n_mels, n_bins, &filters, &vocab_block);

    create_parent(out)?;
    let part = part_path(out);
    let written = write_ggml(&model, &hparams, &mel_and_vocab, quant, &part);
    commit_part(&part, out, written, expected, hparams)
}

fn write_ggml(
    model: &Ct2Model,
    hparams: &WhisperHparams,
    mel_and_vocab: &[u8],
    quant: Option<QuantType>,
    part: &Path,
) -> Result<super::Written, ModelError> {
    let s = hparams.n_audio_state as usize;
    let mut w = GgmlWriter::create(part)?;
    w.header(hparams, mel_and_vocab)?;
    let mut data = Vec::new();
    for spec in tensor_specs(hparams) {
        let (var, block) = ct2_source(&spec.name)
            .ok_or_else(|| model.bad(format!("no CT2 source for tensor {}", spec.name)))?;
        let elements = spec.elements();
        let (raw, dtype) = match block {
            // Fused projections stack their parts along the output dimension, s rows each.
            Some(b) => model.rows(&var, b * s, s)?,
            None => model.rows(&var, 0, model.var(&var)?.dims.first().copied().unwrap_or(1))?,
        };
        if raw.len() != elements * dtype.size() {
            return Err(model.bad(format!(
                "{var} has shape {:?}; tensor {} needs {elements} values",
                model.var(&var)?.dims,
                spec.name
            )));
        }
        let mut ttype = spec.role.ggml_type();
        data.clear();
        match (ttype, dtype) {
            (GgmlType::F16, Ct2Type::F16) => data.extend_from_slice(raw),
            _ => {
                let values = to_f32(raw, dtype).ok_or_else(|| {
                    model.bad(format!(
                        "{var} is {dtype:?}: a quantized CT2 conversion; convert with \
                         --quantization float16 (or float32)"
                    ))
                })?;
                match ttype {
                    GgmlType::F16 => {
                        for v in values {
                            data.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
                        }
                    }
                    _ => {
                        for v in values {
                            data.extend_from_slice(&v.to_le_bytes());
                        }
                    }
                }
            }
        }
        if let Some(QuantType::Q8_0) = quant {
            if is_quantized(&spec.name, &spec.dims) {
                let values = match ttype {
                    GgmlType::F16 => to_f32(&data, Ct2Type::F16),
                    _ => to_f32(&data, Ct2Type::F32),
                }
                .expect("f16 and f32 always convert");
                data = q8_0_blocks(&values);
                ttype = GgmlType::Q8_0;
            }
        }
        w.tensor(&spec.name, &spec.dims, ttype, &data)?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_decoder_covers_all_bytes() {
        let d = gpt2_byte_decoder();
        assert_eq!(d.len(), 256);
        assert_eq!(d[&'Ġ'], b' ');
        assert_eq!(d[&'Ċ'], b'\n');
        assert_eq!(d[&'!'], b'!');
    }

    #[test]
    fn mel_filters_have_whisper_shape() {
        let f = mel_filters_slaney(80);
        assert_eq!(f.len(), 80 * 201);
        // Every filter is a non-empty triangle.
        for row in f.chunks(201) {
            assert!(row.iter().any(|&w| w > 0.0));
        }
    }

    #[test]
    fn fused_projections_map_to_their_blocks() {
        assert_eq!(
            ct2_source("encoder.blocks.3.attn.value.bias"),
            Some((
                "encoder/layer_3/self_attention/linear_0/bias".into(),
                Some(2)
            ))
        );
        assert_eq!(
            ct2_source("decoder.blocks.0.cross_attn.key.weight"),
            Some(("decoder/layer_0/attention/linear_1/weight".into(), Some(0)))
        );
        assert_eq!(
            ct2_source("decoder.blocks.1.cross_attn_ln.bias"),
            Some(("decoder/layer_1/attention/layer_norm/beta".into(), None))
        );
        assert_eq!(
            ct2_source("encoder.blocks.0.mlp.2.weight"),
            Some(("encoder/layer_0/ffn/linear_1/weight".into(), None))
        );
        let h = crate::models::SyntheticSize::Base.hparams();
        for spec in tensor_specs(&h) {
            assert!(ct2_source(&spec.name).is_some(), "{}", spec.name);
        }
    }

    #[test]
    fn a_truncated_model_bin_is_an_error_naming_the_file() {
        let mut data = 6u32.to_le_bytes().to_vec();
        data.extend_from_slice(&12u16.to_le_bytes());
        data.extend_from_slice(b"WhisperSpec\0");
        data.extend_from_slice(&3u32.to_le_bytes());
        data.extend_from_slice(&1u32.to_le_bytes());
        data.extend_from_slice(&4u16.to_le_bytes());
        data.extend_from_slice(b"ab");
        let err = Ct2Model::parse(&data, "dir/model.bin")
            .expect_err("truncated")
            .to_string();
        assert!(err.starts_with("dir/model.bin: "), "{err}");
        assert!(err.contains("truncated"), "{err}");
    }
}
