//! The ggml whisper file format: hyper-parameters, the header reader behind [`inspect`], the
//! tensor list whisper.cpp expects ([`tensor_specs`]) and the one writer every producer uses
//! (the synthetic generator, the CT2 importer and the quantizer).
//!
//! Layout (little-endian, as whisper.cpp's `convert-pt-to-ggml.py` writes it): magic
//! `0x67676d6c`, 11 × i32 hyper-parameters, the mel filter bank (i32 n_mel, i32 n_fft, then
//! n_mel × n_fft f32), the vocabulary (i32 count, then per token i32 length and bytes), then
//! tensor records (i32 rank, i32 name length, i32 type, rank × i32 dims innermost first, the
//! name, the data).
//!
//! Invariants:
//! - The reader checks every length against the file's size before it reads or skips, so a
//!   foreign, truncated or damaged file is a [`ModelError::BadFormat`], never a panic or a
//!   huge allocation.
//! - [`tensor_specs`] lists tensors in the order of the official files (PyTorch's state-dict
//!   order), so a faithful conversion is byte-identical to the official file.
//! - The writer refuses a tensor whose data length does not match its dims and type, and it
//!   hashes what it writes, so producers get the sha256 without reading the file again.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{hex, io_error, ModelError, Written};

/// ggml's file magic ("ggml" as a little-endian u32).
pub const GGML_MAGIC: u32 = 0x6767_6d6c;

/// whisper's hyper-parameters, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhisperHparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    /// 0 = f32, 1 = f16, 7 = q5_1 (as `ggml_ftype`), … plus 1000 × quantization version.
    pub ftype: i32,
}

impl WhisperHparams {
    pub(super) fn to_array(self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    fn from_array(a: [i32; 11]) -> Self {
        Self {
            n_vocab: a[0],
            n_audio_ctx: a[1],
            n_audio_state: a[2],
            n_audio_head: a[3],
            n_audio_layer: a[4],
            n_text_ctx: a[5],
            n_text_state: a[6],
            n_text_head: a[7],
            n_text_layer: a[8],
            n_mels: a[9],
            ftype: a[10],
        }
    }

    /// Whether the vocabulary is the multilingual one (51865 tokens and more).
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51_865
    }
}

/// What [`inspect`] found in a ggml whisper file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgmlSummary {
    pub hparams: WhisperHparams,
    /// Mel filter bank: (n_mel, n_fft).
    pub mel_filters: (i32, i32),
    /// Vocabulary entries stored in the file.
    pub vocab_entries: usize,
    /// Byte offset where the tensor records start (after the vocabulary).
    pub tensors_offset: u64,
    /// Tensor records (0 for whisper.cpp's weightless test models).
    pub tensors: usize,
    /// The file's size.
    pub bytes: u64,
}

/// The ggml tensor types hotline writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GgmlType {
    F32,
    F16,
    Q8_0,
}

impl GgmlType {
    /// The type id in tensor records.
    pub(super) fn id(self) -> i32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q8_0 => 8,
        }
    }

    pub(super) fn from_id(id: i32) -> Option<Self> {
        match id {
            0 => Some(GgmlType::F32),
            1 => Some(GgmlType::F16),
            8 => Some(GgmlType::Q8_0),
            _ => None,
        }
    }
}

/// Bytes per block and elements per block of a ggml tensor type, for the types whisper
/// model files use.
pub(super) fn ggml_type_layout(ttype: i32) -> Option<(u64, u64)> {
    Some(match ttype {
        0 => (4, 1),     // f32
        1 => (2, 1),     // f16
        2 => (18, 32),   // q4_0
        3 => (20, 32),   // q4_1
        6 => (22, 32),   // q5_0
        7 => (24, 32),   // q5_1
        8 => (34, 32),   // q8_0
        9 => (36, 32),   // q8_1
        10 => (84, 256), // q2_K
        11 => (110, 256),
        12 => (144, 256),
        13 => (176, 256),
        14 => (210, 256),
        15 => (292, 256),
        30 => (2, 1), // bf16
        _ => return None,
    })
}

/// The bytes of a tensor of `elements` values of type `ttype` (None: unknown type).
pub(super) fn tensor_bytes(ttype: i32, elements: u64) -> Option<u64> {
    let (block_bytes, block_elems) = ggml_type_layout(ttype)?;
    Some(elements.div_ceil(block_elems).saturating_mul(block_bytes))
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// A bounds-checked reader over a ggml file.
pub(super) struct Cursor<R> {
    inner: R,
    offset: u64,
    len: u64,
    path: String,
}

impl Cursor<BufReader<File>> {
    /// Opens `path` for reading.
    pub(super) fn open(path: &Path) -> Result<Self, ModelError> {
        let file = File::open(path).map_err(io_error(path))?;
        let len = file.metadata().map_err(io_error(path))?.len();
        Ok(Cursor {
            inner: BufReader::with_capacity(1 << 20, file),
            offset: 0,
            len,
            path: path.display().to_string(),
        })
    }
}

impl<R: Read + Seek> Cursor<R> {
    pub(super) fn bad(&self, reason: impl Into<String>) -> ModelError {
        ModelError::BadFormat {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    pub(super) fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.offset)
    }

    fn check(&self, n: u64, what: &str) -> Result<(), ModelError> {
        if n > self.remaining() {
            return Err(self.bad(format!(
                "truncated: {what} needs {n} bytes at offset {}, {} left",
                self.offset,
                self.remaining()
            )));
        }
        Ok(())
    }

    pub(super) fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, ModelError> {
        self.check(n, what)?;
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| ModelError::Io {
                path: self.path.clone(),
                source: e,
            })?;
        self.offset += n;
        Ok(buf)
    }

    pub(super) fn i32(&mut self, what: &str) -> Result<i32, ModelError> {
        let b = self.bytes(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), ModelError> {
        self.check(n, what)?;
        let io = |e| ModelError::Io {
            path: self.path.clone(),
            source: e,
        };
        if n <= 64 * 1024 {
            // Short skips (token texts) read through the buffer: a seek would discard it,
            // and the vocabulary's 50 000 seeks would each refill it.
            let copied =
                std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink()).map_err(io)?;
            if copied != n {
                return Err(self.bad(format!("truncated: {what} at offset {}", self.offset)));
            }
        } else {
            self.inner.seek(SeekFrom::Current(n as i64)).map_err(io)?;
        }
        self.offset += n;
        Ok(())
    }

    /// Reads `[start, end)` of the file and leaves the cursor after it.
    pub(super) fn range(&mut self, start: u64, end: u64) -> Result<Vec<u8>, ModelError> {
        self.inner
            .seek(SeekFrom::Start(start))
            .map_err(|e| ModelError::Io {
                path: self.path.clone(),
                source: e,
            })?;
        self.offset = start;
        self.bytes(end.saturating_sub(start), "header block")
    }
}

/// The header of a ggml whisper file up to the end of the vocabulary.
pub(super) struct ParsedHeader {
    pub(super) hparams: WhisperHparams,
    pub(super) mel_filters: (i32, i32),
    pub(super) vocab_entries: usize,
    /// Offset of the mel filter block (right after the hyper-parameters).
    pub(super) mel_offset: u64,
    /// Offset of the vocabulary block (its count).
    pub(super) vocab_offset: u64,
    /// Offset just after the vocabulary.
    pub(super) vocab_end: u64,
}

/// Byte offset of `ftype` in the header (after the magic and ten hyper-parameters).
pub(super) const FTYPE_OFFSET: usize = 4 + 10 * 4;

pub(super) fn parse_header<R: Read + Seek>(c: &mut Cursor<R>) -> Result<ParsedHeader, ModelError> {
    let magic = c.i32("magic")? as u32;
    if magic != GGML_MAGIC {
        return Err(c.bad(format!(
            "bad magic {magic:#010x} (expected {GGML_MAGIC:#010x})"
        )));
    }
    let mut raw = [0i32; 11];
    for (i, v) in raw.iter_mut().enumerate() {
        *v = c.i32(&format!("hyper-parameter {i}"))?;
    }
    let hparams = WhisperHparams::from_array(raw);
    let positive = [
        ("n_vocab", hparams.n_vocab),
        ("n_audio_ctx", hparams.n_audio_ctx),
        ("n_audio_state", hparams.n_audio_state),
        ("n_audio_head", hparams.n_audio_head),
        ("n_audio_layer", hparams.n_audio_layer),
        ("n_text_ctx", hparams.n_text_ctx),
        ("n_text_state", hparams.n_text_state),
        ("n_text_head", hparams.n_text_head),
        ("n_text_layer", hparams.n_text_layer),
        ("n_mels", hparams.n_mels),
    ];
    for (name, v) in positive {
        if !(1..=1_000_000).contains(&v) {
            return Err(c.bad(format!("implausible {name} = {v}")));
        }
    }
    if hparams.n_audio_state != hparams.n_text_state {
        return Err(c.bad(format!(
            "n_audio_state {} differs from n_text_state {}",
            hparams.n_audio_state, hparams.n_text_state
        )));
    }
    if ggml_type_layout(hparams.ftype % 1000).is_none() {
        return Err(c.bad(format!("unknown ftype {}", hparams.ftype)));
    }
    let mel_offset = c.offset;
    let n_mel = c.i32("mel filter count")?;
    let n_fft = c.i32("mel filter length")?;
    if !(1..=1024).contains(&n_mel) || !(1..=4096).contains(&n_fft) {
        return Err(c.bad(format!("implausible mel filter bank {n_mel} × {n_fft}")));
    }
    c.skip(n_mel as u64 * n_fft as u64 * 4, "mel filters")?;
    let vocab_offset = c.offset;
    let n_vocab_stored = c.i32("vocabulary size")?;
    if !(0..=1_000_000).contains(&n_vocab_stored) {
        return Err(c.bad(format!("implausible vocabulary size {n_vocab_stored}")));
    }
    for i in 0..n_vocab_stored {
        let len = c.i32("token length")? as u32;
        if len > 1024 {
            return Err(c.bad(format!("token {i} claims {len} bytes")));
        }
        c.skip(u64::from(len), "token text")?;
    }
    Ok(ParsedHeader {
        hparams,
        mel_filters: (n_mel, n_fft),
        vocab_entries: n_vocab_stored as usize,
        mel_offset,
        vocab_offset,
        vocab_end: c.offset,
    })
}

/// The head of one tensor record; its data follows.
pub(super) struct TensorHead {
    pub(super) name: String,
    pub(super) dims: Vec<i32>,
    pub(super) ttype: i32,
    pub(super) data_bytes: u64,
}

/// Reads the next tensor record's head (`index` is for messages).
pub(super) fn read_tensor_head<R: Read + Seek>(
    c: &mut Cursor<R>,
    index: usize,
) -> Result<TensorHead, ModelError> {
    let n_dims = c.i32("tensor rank")?;
    let name_len = c.i32("tensor name length")?;
    let ttype = c.i32("tensor type")?;
    if !(1..=4).contains(&n_dims) {
        return Err(c.bad(format!("tensor {index}: rank {n_dims}")));
    }
    if !(1..=512).contains(&name_len) {
        return Err(c.bad(format!("tensor {index}: name length {name_len}")));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    let mut elements = 1u64;
    for _ in 0..n_dims {
        let ne = c.i32("tensor dimension")?;
        if ne < 1 {
            return Err(c.bad(format!("tensor {index}: dimension {ne}")));
        }
        elements = elements.saturating_mul(ne as u64);
        dims.push(ne);
    }
    let name = c.bytes(name_len as u64, "tensor name")?;
    let name = String::from_utf8_lossy(&name).into_owned();
    let data_bytes = tensor_bytes(ttype, elements)
        .ok_or_else(|| c.bad(format!("tensor {name}: unknown type {ttype}")))?;
    if data_bytes > c.remaining() {
        return Err(c.bad(format!(
            "truncated: data of tensor {name} needs {data_bytes} bytes, {} left",
            c.remaining()
        )));
    }
    Ok(TensorHead {
        name,
        dims,
        ttype,
        data_bytes,
    })
}

/// Reads a ggml whisper file's header and walks its tensor records (skipping the data),
/// checking that every length stays inside the file.
pub fn inspect(path: &Path) -> Result<GgmlSummary, ModelError> {
    let mut c = Cursor::open(path)?;
    let len = c.len;
    let header = parse_header(&mut c)?;
    let mut tensors = 0usize;
    while c.remaining() > 0 {
        let head = read_tensor_head(&mut c, tensors)?;
        c.skip(head.data_bytes, &format!("data of tensor {}", head.name))?;
        tensors += 1;
    }
    Ok(GgmlSummary {
        hparams: header.hparams,
        mel_filters: header.mel_filters,
        vocab_entries: header.vocab_entries,
        tensors_offset: header.vocab_end,
        tensors,
        bytes: len,
    })
}

/// The mel filter bank and the vocabulary block of a ggml file, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderBlocks {
    pub hparams: WhisperHparams,
    pub n_mel: i32,
    pub n_fft: i32,
    /// n_mel × n_fft filter weights, row by row.
    pub mel_filters: Vec<f32>,
    /// The vocabulary block byte for byte: i32 count, then per token i32 length and bytes.
    pub vocab_block: Vec<u8>,
}

/// Reads the mel filters and the vocabulary block of a ggml file (e.g. whisper.cpp's test
/// models, which carry the real ones).
pub fn header_blocks(path: &Path) -> Result<HeaderBlocks, ModelError> {
    let mut c = Cursor::open(path)?;
    let header = parse_header(&mut c)?;
    let mel = c.range(header.mel_offset + 8, header.vocab_offset)?;
    let vocab_block = c.range(header.vocab_offset, header.vocab_end)?;
    Ok(HeaderBlocks {
        hparams: header.hparams,
        n_mel: header.mel_filters.0,
        n_fft: header.mel_filters.1,
        mel_filters: mel
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        vocab_block,
    })
}

// ---------------------------------------------------------------------------------------------
// The tensor list
// ---------------------------------------------------------------------------------------------

/// What a tensor is in the model, which fixes its ggml type (and the synthetic generator's
/// random distribution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorRole {
    /// f16 weight matrix (or convolution kernel) with `fan_in` inputs per output.
    Matrix { fan_in: u64 },
    /// f16 token embedding (it also projects to the logits).
    Embedding,
    /// f32 positional embedding.
    Position,
    /// f32 bias.
    Bias,
    /// f32 layer-norm gain.
    Gain,
}

impl TensorRole {
    /// The type of this tensor in an f16 model file.
    pub(super) fn ggml_type(self) -> GgmlType {
        match self {
            TensorRole::Matrix { .. } | TensorRole::Embedding => GgmlType::F16,
            TensorRole::Position | TensorRole::Bias | TensorRole::Gain => GgmlType::F32,
        }
    }
}

/// One tensor of the whisper architecture: name, ggml dims (innermost first), role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<i32>,
    pub role: TensorRole,
}

impl TensorSpec {
    /// The number of values.
    pub fn elements(&self) -> usize {
        self.dims.iter().map(|&d| d as usize).product()
    }
}

/// The tensors whisper.cpp's `whisper_model_load` expects, with their shapes and roles, in
/// the order of the official f16 files.
pub fn tensor_specs(h: &WhisperHparams) -> Vec<TensorSpec> {
    let s = h.n_audio_state;
    let t = |name: String, dims: Vec<i32>, role: TensorRole| TensorSpec { name, dims, role };
    let matrix = |n_in: i32| TensorRole::Matrix {
        fan_in: n_in as u64,
    };
    // One residual block in PyTorch's order: self-attention, its norm, cross-attention and its
    // norm (decoder only), the MLP and its norm.
    let block = |out: &mut Vec<TensorSpec>, prefix: &str, cross: bool| {
        let mut attention = |attn: &str, ln: &str| {
            out.push(t(
                format!("{prefix}.{attn}.query.weight"),
                vec![s, s],
                matrix(s),
            ));
            out.push(t(
                format!("{prefix}.{attn}.query.bias"),
                vec![s],
                TensorRole::Bias,
            ));
            out.push(t(
                format!("{prefix}.{attn}.key.weight"),
                vec![s, s],
                matrix(s),
            ));
            out.push(t(
                format!("{prefix}.{attn}.value.weight"),
                vec![s, s],
                matrix(s),
            ));
            out.push(t(
                format!("{prefix}.{attn}.value.bias"),
                vec![s],
                TensorRole::Bias,
            ));
            out.push(t(
                format!("{prefix}.{attn}.out.weight"),
                vec![s, s],
                matrix(s),
            ));
            out.push(t(
                format!("{prefix}.{attn}.out.bias"),
                vec![s],
                TensorRole::Bias,
            ));
            out.push(t(
                format!("{prefix}.{ln}.weight"),
                vec![s],
                TensorRole::Gain,
            ));
            out.push(t(format!("{prefix}.{ln}.bias"), vec![s], TensorRole::Bias));
        };
        attention("attn", "attn_ln");
        if cross {
            attention("cross_attn", "cross_attn_ln");
        }
        out.push(t(
            format!("{prefix}.mlp.0.weight"),
            vec![s, 4 * s],
            matrix(s),
        ));
        out.push(t(
            format!("{prefix}.mlp.0.bias"),
            vec![4 * s],
            TensorRole::Bias,
        ));
        out.push(t(
            format!("{prefix}.mlp.2.weight"),
            vec![4 * s, s],
            matrix(4 * s),
        ));
        out.push(t(format!("{prefix}.mlp.2.bias"), vec![s], TensorRole::Bias));
        out.push(t(
            format!("{prefix}.mlp_ln.weight"),
            vec![s],
            TensorRole::Gain,
        ));
        out.push(t(
            format!("{prefix}.mlp_ln.bias"),
            vec![s],
            TensorRole::Bias,
        ));
    };
    let mut out = vec![
        t(
            "encoder.positional_embedding".into(),
            vec![s, h.n_audio_ctx],
            TensorRole::Position,
        ),
        t(
            "encoder.conv1.weight".into(),
            vec![3, h.n_mels, s],
            matrix(3 * h.n_mels),
        ),
        t("encoder.conv1.bias".into(), vec![1, s], TensorRole::Bias),
        t("encoder.conv2.weight".into(), vec![3, s, s], matrix(3 * s)),
        t("encoder.conv2.bias".into(), vec![1, s], TensorRole::Bias),
    ];
    for i in 0..h.n_audio_layer {
        block(&mut out, &format!("encoder.blocks.{i}"), false);
    }
    out.push(t(
        "encoder.ln_post.weight".into(),
        vec![s],
        TensorRole::Gain,
    ));
    out.push(t("encoder.ln_post.bias".into(), vec![s], TensorRole::Bias));
    out.push(t(
        "decoder.positional_embedding".into(),
        vec![s, h.n_text_ctx],
        TensorRole::Position,
    ));
    out.push(t(
        "decoder.token_embedding.weight".into(),
        vec![s, h.n_vocab],
        TensorRole::Embedding,
    ));
    for i in 0..h.n_text_layer {
        block(&mut out, &format!("decoder.blocks.{i}"), true);
    }
    out.push(t("decoder.ln.weight".into(), vec![s], TensorRole::Gain));
    out.push(t("decoder.ln.bias".into(), vec![s], TensorRole::Bias));
    out
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// Writes a ggml whisper file, hashing as it goes. Producers write the header once, then
/// each tensor, then call [`GgmlWriter::finish`].
pub(super) struct GgmlWriter {
    out: BufWriter<File>,
    path: PathBuf,
    hasher: Sha256,
    bytes: u64,
}

impl GgmlWriter {
    /// Creates (truncates) `path`.
    pub(super) fn create(path: &Path) -> Result<Self, ModelError> {
        let file = File::create(path).map_err(io_error(path))?;
        Ok(Self {
            out: BufWriter::with_capacity(1 << 20, file),
            path: path.to_path_buf(),
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), ModelError> {
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        self.out.write_all(bytes).map_err(io_error(&self.path))
    }

    /// The magic, the hyper-parameters and the mel filter and vocabulary blocks (as stored:
    /// `i32 n_mel, i32 n_fft, f32 …, i32 count, (i32 len, bytes) …`).
    pub(super) fn header(
        &mut self,
        hparams: &WhisperHparams,
        mel_and_vocab: &[u8],
    ) -> Result<(), ModelError> {
        self.put(&GGML_MAGIC.to_le_bytes())?;
        for v in hparams.to_array() {
            self.put(&v.to_le_bytes())?;
        }
        self.put(mel_and_vocab)
    }

    /// One tensor record.
    pub(super) fn tensor(
        &mut self,
        name: &str,
        dims: &[i32],
        ttype: GgmlType,
        data: &[u8],
    ) -> Result<(), ModelError> {
        let elements: u64 = dims.iter().map(|&d| d.max(0) as u64).product();
        let expected = tensor_bytes(ttype.id(), elements).unwrap_or(0);
        if data.len() as u64 != expected {
            return Err(ModelError::BadFormat {
                path: self.path.display().to_string(),
                reason: format!(
                    "tensor {name} {dims:?} of type {ttype:?} needs {expected} bytes, got {}",
                    data.len()
                ),
            });
        }
        self.put(&(dims.len() as i32).to_le_bytes())?;
        self.put(&(name.len() as i32).to_le_bytes())?;
        self.put(&ttype.id().to_le_bytes())?;
        for d in dims {
            self.put(&d.to_le_bytes())?;
        }
        self.put(name.as_bytes())?;
        self.put(data)
    }

    /// Flushes and syncs the file; returns its size and sha256.
    pub(super) fn finish(self) -> Result<Written, ModelError> {
        let path = self.path;
        let file = self.out.into_inner().map_err(|e| ModelError::Io {
            path: path.display().to_string(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_error(&path))?;
        Ok(Written {
            bytes: self.bytes,
            sha256: hex(&self.hasher.finalize()),
        })
    }
}

/// Encodes a mel filter bank and a vocabulary as the header stores them.
pub(super) fn mel_and_vocab_bytes(
    n_mel: i32,
    n_fft: i32,
    filters: &[f32],
    vocab_block: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + filters.len() * 4 + vocab_block.len());
    out.extend_from_slice(&n_mel.to_le_bytes());
    out.extend_from_slice(&n_fft.to_le_bytes());
    for f in filters {
        out.extend_from_slice(&f.to_le_bytes());
    }
    out.extend_from_slice(vocab_block);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::SyntheticSize;

    #[test]
    fn tensor_list_matches_whisper_cpp_counts() {
        // whisper_model_load: 7 encoder tensors + 15 per encoder layer, 4 decoder tensors +
        // 24 per decoder layer.
        for size in SyntheticSize::ALL {
            let h = size.hparams();
            let specs = tensor_specs(&h);
            let expected = 7 + 15 * h.n_audio_layer + 4 + 24 * h.n_text_layer;
            assert_eq!(specs.len(), expected as usize, "{size}");
            let mut names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), specs.len(), "{size}: duplicate tensor names");
        }
    }

    #[test]
    fn an_f16_tiny_en_has_the_official_size() {
        // Header and vocabulary of tiny.en: 48 + 8 + 80 × 201 × 4 + 521_859 bytes (the
        // vocabulary block with raw token bytes).
        let h = SyntheticSize::TinyEn.hparams();
        let header = 48 + 8 + 80 * 201 * 4 + 521_859u64;
        let tensors: u64 = tensor_specs(&h)
            .iter()
            .map(|s| {
                let t = s.role.ggml_type();
                12 + 4 * s.dims.len() as u64
                    + s.name.len() as u64
                    + tensor_bytes(t.id(), s.elements() as u64).unwrap_or(0)
            })
            .sum();
        assert_eq!(header + tensors, 77_704_715);
    }

    #[test]
    fn the_writer_refuses_data_of_the_wrong_length() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.bin");
        let mut w = GgmlWriter::create(&path).expect("create");
        let err = w
            .tensor("t", &[4, 2], GgmlType::F32, &[0u8; 31])
            .expect_err("31 bytes for 8 f32");
        assert!(err.to_string().contains("needs 32 bytes"), "{err}");
    }
}
