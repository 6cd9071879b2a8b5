//! q8_0 quantization of ggml whisper files: what `hotline models quantize IN OUT q8_0` runs.
//!
//! The rule is whisper.cpp's `quantize` (ggml's reference `quantize_row_q8_0`): only 2-D
//! tensors are quantized, except the conv biases and the positional embeddings; convolution
//! kernels (3-D) stay f16 and vectors stay f32. Each block of 32 values stores
//! `d = max|x| / 127` as f16 and 32 × i8 `round(x / d)` (half away from zero, like C `roundf`).
//! The header's ftype becomes `2 × 1000 + 7` (GGML_QNT_VERSION 2, GGML_FTYPE_MOSTLY_Q8_0).
//!
//! Invariants: the mel filters and vocabulary are copied as stored; the output is written to
//! `<out>.part` and renamed into place only once complete and, when an expected trained model
//! is given, only if its size and sha256 match. An input that is already quantized is refused.

use std::path::Path;

use super::ggml::{parse_header, read_tensor_head, Cursor, GgmlType, GgmlWriter, FTYPE_OFFSET};
use super::{commit_part, create_parent, part_path, Converted, ModelError, TrainedModel};

/// Values per q8_0 block.
const QK8_0: usize = 32;

/// The quantizations hotline writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantType {
    /// 8-bit blocks of 32 with an f16 scale (34 bytes per 32 values).
    Q8_0,
}

impl QuantType {
    /// The header's ftype for this quantization (GGML_QNT_VERSION × 1000 + ggml_ftype).
    pub fn ftype(self) -> i32 {
        match self {
            QuantType::Q8_0 => 2 * 1000 + 7,
        }
    }

    /// Its name on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            QuantType::Q8_0 => "q8_0",
        }
    }
}

impl std::fmt::Display for QuantType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for QuantType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "q8_0" => Ok(QuantType::Q8_0),
            _ => Err(format!("unsupported quantization {s:?} (expected q8_0)")),
        }
    }
}

/// Tensors whisper.cpp's quantizer leaves as they are although they are 2-D.
const SKIP: [&str; 4] = [
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
];

/// Whether whisper.cpp's quantizer quantizes this tensor.
pub(super) fn is_quantized(name: &str, dims: &[i32]) -> bool {
    dims.len() == 2 && !SKIP.contains(&name) && dims[0] as usize % QK8_0 == 0
}

/// q8_0 blocks of `values` (a multiple of 32 long).
pub(super) fn q8_0_blocks(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / QK8_0 * (2 + QK8_0));
    for block in values.chunks(QK8_0) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        for v in block {
            out.push((v * id).round() as i8 as u8);
        }
    }
    out
}

/// Quantizes the f16 (or f32) ggml whisper file `input` into `out`. With `expected`, the
/// output must have that trained model's recorded size and sha256 or it is deleted and the
/// call fails.
pub fn quantize_file(
    input: &Path,
    out: &Path,
    quant: QuantType,
    expected: Option<&TrainedModel>,
) -> Result<Converted, ModelError> {
    let mut c = Cursor::open(input)?;
    let header = parse_header(&mut c)?;
    if !matches!(header.hparams.ftype, 0 | 1) {
        return Err(ModelError::Unsupported {
            path: input.display().to_string(),
            reason: format!(
                "ftype {} is already quantized; quantize an f16 or f32 file",
                header.hparams.ftype
            ),
        });
    }
    let mut hparams = header.hparams;
    hparams.ftype = quant.ftype();
    let head = c.range(0, header.vocab_end)?;
    let mel_and_vocab = &head[FTYPE_OFFSET + 4..];

    create_parent(out)?;
    let part = part_path(out);
    let written = (|| {
        let mut w = GgmlWriter::create(&part)?;
        w.header(&hparams, mel_and_vocab)?;
        let mut index = 0;
        while c.remaining() > 0 {
            let t = read_tensor_head(&mut c, index)?;
            let data = c.bytes(t.data_bytes, &format!("data of tensor {}", t.name))?;
            let ttype = GgmlType::from_id(t.ttype).filter(|ty| *ty != GgmlType::Q8_0);
            match ttype {
                Some(ty) if is_quantized(&t.name, &t.dims) => {
                    let values = to_f32(&data, ty);
                    w.tensor(&t.name, &t.dims, GgmlType::Q8_0, &q8_0_blocks(&values))?;
                }
                Some(ty) => w.tensor(&t.name, &t.dims, ty, &data)?,
                None => {
                    return Err(ModelError::Unsupported {
                        path: input.display().to_string(),
                        reason: format!("tensor {} has type {}", t.name, t.ttype),
                    })
                }
            }
            index += 1;
        }
        w.finish()
    })();
    commit_part(&part, out, written, expected, hparams)
}

fn to_f32(data: &[u8], ty: GgmlType) -> Vec<f32> {
    match ty {
        GgmlType::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_follow_ggml_reference() {
        let mut values = vec![0f32; 32];
        values[0] = 127.0; // d = 1
        values[1] = -2.5; // halves round away from zero, like roundf
        values[2] = 2.5;
        values[3] = 0.4;
        let q = q8_0_blocks(&values);
        assert_eq!(q.len(), 34);
        assert_eq!(half::f16::from_le_bytes([q[0], q[1]]).to_f32(), 1.0);
        assert_eq!(q[2] as i8, 127);
        assert_eq!(q[3] as i8, -3);
        assert_eq!(q[4] as i8, 3);
        assert_eq!(q[5] as i8, 0);
        assert_eq!(q8_0_blocks(&[0.0; 32])[2..], [0u8; 32]);
    }

    #[test]
    fn only_2d_weights_are_quantized() {
        assert!(is_quantized(
            "encoder.blocks.0.attn.query.weight",
            &[384, 384]
        ));
        assert!(!is_quantized("encoder.conv1.weight", &[3, 80, 384]));
        assert!(!is_quantized("encoder.conv1.bias", &[1, 384]));
        assert!(!is_quantized("decoder.positional_embedding", &[384, 448]));
        assert!(!is_quantized("decoder.ln.weight", &[384]));
        assert_eq!("q8_0".parse::<QuantType>(), Ok(QuantType::Q8_0));
        assert_eq!(QuantType::Q8_0.ftype(), 2007);
    }
}
