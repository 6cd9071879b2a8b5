//! Whisper model files: the official list with checksums, the download, verification, a
//! structural check of ggml files, and the synthetic-weight generator for benchmarks.
//!
//! Owns everything `hotline models …` does (the CLI in `main.rs` only calls these functions).
//!
//! Invariants:
//! - A download lands in `<file>.part` and is renamed into place only after its size and
//!   sha256 match the official list; a mismatch deletes the part file.
//! - [`inspect`] reads a ggml whisper file's header and walks its tensor records without
//!   loading the weights, so a foreign, truncated or damaged file is refused with a clear
//!   error before whisper.cpp sees it.
//! - [`generate_synthetic`] writes a file with the real hyper-parameters, tensor names, shapes
//!   and types of an official f16 model (mel filters and vocabulary copied from whisper.cpp's
//!   test model) and random weights. It costs exactly the compute of the real model and
//!   recognizes nothing; its name always starts with `synthetic-random-weights-`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// ggml's file magic ("ggml" as a little-endian u32).
pub const GGML_MAGIC: u32 = 0x6767_6d6c;
/// Where official files are downloaded from.
pub const MODEL_BASE_URL: &str = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main";
/// The prefix of every synthetic file name.
pub const SYNTHETIC_PREFIX: &str = "synthetic-random-weights-";

/// One official whisper.cpp model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    /// The file name, as in the whisper.cpp model repository.
    pub file: &'static str,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its sha256, lower-case hex.
    pub sha256: &'static str,
}

impl ModelInfo {
    /// The download URL.
    pub fn url(&self) -> String {
        format!("{MODEL_BASE_URL}/{}", self.file)
    }
}

const MODELS: &[ModelInfo] = &[
    ModelInfo {
        file: "ggml-tiny.en-q5_1.bin",
        bytes: 32_166_155,
        sha256: "c77c5766f1cef09b6b7d47f21b546cbddd4157886b3b5d6d4f709e91e66c7c2b",
    },
    ModelInfo {
        file: "ggml-tiny-q5_1.bin",
        bytes: 32_152_673,
        sha256: "818710568da3ca15689e31a743197b520007872ff9576237bda97bd1b469c3d7",
    },
    ModelInfo {
        file: "ggml-tiny.en-q8_0.bin",
        bytes: 43_550_795,
        sha256: "5bc2b3860aa151a4c6e7bb095e1fcce7cf12c7b020ca08dcec0c6d018bb7dd94",
    },
    ModelInfo {
        file: "ggml-tiny.en.bin",
        bytes: 77_704_715,
        sha256: "921e4cf8686fdd993dcd081a5da5b6c365bfde1162e72b08d75ac75289920b1f",
    },
    ModelInfo {
        file: "ggml-tiny.bin",
        bytes: 77_691_713,
        sha256: "be07e048e1e599ad46341c8d2a135645097a538221678b7acdd1b1919c6e1b21",
    },
    ModelInfo {
        file: "ggml-base.en-q5_1.bin",
        bytes: 59_721_011,
        sha256: "4baf70dd0d7c4247ba2b81fafd9c01005ac77c2f9ef064e00dcf195d0e2fdd2f",
    },
    ModelInfo {
        file: "ggml-base-q5_1.bin",
        bytes: 59_707_625,
        sha256: "422f1ae452ade6f30a004d7e5c6a43195e4433bc370bf23fac9cc591f01a8898",
    },
    ModelInfo {
        file: "ggml-base.en.bin",
        bytes: 147_964_211,
        sha256: "a03779c86df3323075f5e796cb2ce5029f00ec8869eee3fdfb897afe36c6d002",
    },
    ModelInfo {
        file: "ggml-base.bin",
        bytes: 147_951_465,
        sha256: "60ed5bc3dd14eea856493d334349b405782ddcaf0028d4b5df4088345fba2efe",
    },
];

/// The official model files hotline knows, smallest first.
pub fn list() -> &'static [ModelInfo] {
    MODELS
}

/// Looks up an official file by name.
pub fn find(name: &str) -> Option<&'static ModelInfo> {
    MODELS.iter().find(|m| m.file == name)
}

/// What went wrong with a model file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model {name:?}; known models: {known}")]
    UnknownModel { name: String, known: String },
    #[error("cannot reach {host}: {reason} — hotline runs offline with the Sphinx recognizer; copy a model file into models/ by hand (see models/README.md)")]
    Unreachable { host: String, reason: String },
    #[error("{url}: the server answered HTTP {status}")]
    Http { url: String, status: u16 },
    #[error("{file}: checksum mismatch (expected sha256 {expected}, got {actual}); the partial download {part} was deleted")]
    ChecksumMismatch {
        file: String,
        expected: String,
        actual: String,
        part: String,
    },
    #[error("{file}: {actual} bytes, but the official file has {expected}")]
    SizeMismatch {
        file: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: not a whisper ggml file: {reason}")]
    BadFormat { path: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.display().to_string(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Download and verification
// ---------------------------------------------------------------------------------------------

/// Downloads an official model into `dir` (created if needed) and returns its path. A file
/// already there that verifies is kept as it is.
pub fn download(name: &str, dir: &Path) -> Result<PathBuf, ModelError> {
    let info = find(name).ok_or_else(|| ModelError::UnknownModel {
        name: name.to_string(),
        known: MODELS.iter().map(|m| m.file).collect::<Vec<_>>().join(", "),
    })?;
    let dest = dir.join(info.file);
    if dest.is_file() && verify(&dest).is_ok() {
        tracing::info!("{} is already present and verified", dest.display());
        return Ok(dest);
    }
    download_from(&info.url(), info, dir)
}

/// Downloads `info`'s file from `url` (a mirror, or a local server in tests) into `dir`,
/// streaming to `<file>.part`, checking size and sha256, then renaming it into place.
pub fn download_from(url: &str, info: &ModelInfo, dir: &Path) -> Result<PathBuf, ModelError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let dest = dir.join(info.file);
    let part = dir.join(format!("{}.part", info.file));
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or(url)
        .to_string();

    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(Duration::from_secs(60))
        .build();
    let response = match agent.get(url).call() {
        Ok(response) => response,
        Err(ureq::Error::Status(status, _)) => {
            return Err(ModelError::Http {
                url: url.to_string(),
                status,
            })
        }
        Err(ureq::Error::Transport(t)) => {
            return Err(ModelError::Unreachable {
                host,
                reason: t.to_string(),
            })
        }
    };
    let total = response
        .header("Content-Length")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(info.bytes);

    let progress = indicatif::ProgressBar::new(total);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    progress.set_message(info.file.to_string());

    let streamed = stream_to_part(response.into_reader(), &part, &progress);
    progress.finish_and_clear();
    let (actual_bytes, actual_sha) = match streamed {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    if actual_sha != info.sha256 {
        let _ = std::fs::remove_file(&part);
        return Err(ModelError::ChecksumMismatch {
            file: info.file.to_string(),
            expected: info.sha256.to_string(),
            actual: actual_sha,
            part: part.display().to_string(),
        });
    }
    if actual_bytes != info.bytes {
        let _ = std::fs::remove_file(&part);
        return Err(ModelError::SizeMismatch {
            file: info.file.to_string(),
            expected: info.bytes,
            actual: actual_bytes,
        });
    }
    std::fs::rename(&part, &dest).map_err(io_error(&dest))?;
    tracing::info!(
        "downloaded {} ({} bytes, sha256 ok)",
        dest.display(),
        actual_bytes
    );
    Ok(dest)
}

/// Copies the body into `part`, hashing as it goes; returns (bytes, sha256 hex).
fn stream_to_part(
    mut body: impl Read,
    part: &Path,
    progress: &indicatif::ProgressBar,
) -> Result<(u64, String), ModelError> {
    let file = File::create(part).map_err(io_error(part))?;
    let mut out = BufWriter::new(file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = body.read(&mut buf).map_err(io_error(part))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_error(part))?;
        bytes += n as u64;
        progress.inc(n as u64);
    }
    let file = out.into_inner().map_err(|e| ModelError::Io {
        path: part.display().to_string(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_error(part))?;
    Ok((bytes, hex(&hasher.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut file = BufReader::new(File::open(path).map_err(io_error(path))?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(io_error(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Checks an official model file by its name: size, then sha256.
pub fn verify(path: &Path) -> Result<&'static ModelInfo, ModelError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let info = find(name).ok_or_else(|| ModelError::UnknownModel {
        name: name.to_string(),
        known: MODELS.iter().map(|m| m.file).collect::<Vec<_>>().join(", "),
    })?;
    let actual_bytes = std::fs::metadata(path).map_err(io_error(path))?.len();
    if actual_bytes != info.bytes {
        return Err(ModelError::SizeMismatch {
            file: path.display().to_string(),
            expected: info.bytes,
            actual: actual_bytes,
        });
    }
    let actual = sha256_file(path)?;
    if actual != info.sha256 {
        return Err(ModelError::ChecksumMismatch {
            file: path.display().to_string(),
            expected: info.sha256.to_string(),
            actual,
            part: "(nothing: the file was left in place)".into(),
        });
    }
    Ok(info)
}

// ---------------------------------------------------------------------------------------------
// The ggml whisper file format
// ---------------------------------------------------------------------------------------------

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
    /// 0 = f32, 1 = f16, 7 = q5_1, 8 = q8_0, … (plus 1000 × quantization version).
    pub ftype: i32,
}

impl WhisperHparams {
    fn to_array(self) -> [i32; 11] {
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

/// Bytes per block and elements per block of a ggml tensor type, for the types whisper
/// model files use.
fn ggml_type_layout(ttype: i32) -> Option<(u64, u64)> {
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

struct Cursor<R> {
    inner: R,
    offset: u64,
    len: u64,
    path: String,
}

impl<R: Read + Seek> Cursor<R> {
    fn bad(&self, reason: impl Into<String>) -> ModelError {
        ModelError::BadFormat {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.offset)
    }

    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, ModelError> {
        if n > self.remaining() {
            return Err(self.bad(format!(
                "truncated: {what} needs {n} bytes at offset {}, {} left",
                self.offset,
                self.remaining()
            )));
        }
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

    fn i32(&mut self, what: &str) -> Result<i32, ModelError> {
        let b = self.bytes(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), ModelError> {
        if n > self.remaining() {
            return Err(self.bad(format!(
                "truncated: {what} needs {n} bytes at offset {}, {} left",
                self.offset,
                self.remaining()
            )));
        }
        self.inner
            .seek(SeekFrom::Current(n as i64))
            .map_err(|e| ModelError::Io {
                path: self.path.clone(),
                source: e,
            })?;
        self.offset += n;
        Ok(())
    }
}

/// The header of a ggml whisper file up to the end of the vocabulary.
struct ParsedHeader {
    hparams: WhisperHparams,
    mel_filters: (i32, i32),
    vocab_entries: usize,
    /// Offset of the mel filter block (right after the hyper-parameters).
    mel_offset: u64,
    /// Offset just after the vocabulary.
    vocab_end: u64,
}

fn parse_header<R: Read + Seek>(c: &mut Cursor<R>) -> Result<ParsedHeader, ModelError> {
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
        vocab_end: c.offset,
    })
}

/// Reads a ggml whisper file's header and walks its tensor records (skipping the data),
/// checking that every length stays inside the file.
pub fn inspect(path: &Path) -> Result<GgmlSummary, ModelError> {
    let file = File::open(path).map_err(io_error(path))?;
    let len = file.metadata().map_err(io_error(path))?.len();
    let mut c = Cursor {
        inner: BufReader::new(file),
        offset: 0,
        len,
        path: path.display().to_string(),
    };
    let header = parse_header(&mut c)?;
    let mut tensors = 0usize;
    while c.remaining() > 0 {
        let n_dims = c.i32("tensor rank")?;
        let name_len = c.i32("tensor name length")?;
        let ttype = c.i32("tensor type")?;
        if !(1..=4).contains(&n_dims) {
            return Err(c.bad(format!("tensor {tensors}: rank {n_dims}")));
        }
        if !(1..=512).contains(&name_len) {
            return Err(c.bad(format!("tensor {tensors}: name length {name_len}")));
        }
        let (block_bytes, block_elems) = ggml_type_layout(ttype)
            .ok_or_else(|| c.bad(format!("tensor {tensors}: unknown type {ttype}")))?;
        let mut elements = 1u64;
        for _ in 0..n_dims {
            let ne = c.i32("tensor dimension")?;
            if ne < 1 {
                return Err(c.bad(format!("tensor {tensors}: dimension {ne}")));
            }
            elements = elements.saturating_mul(ne as u64);
        }
        let name = c.bytes(name_len as u64, "tensor name")?;
        let data = elements.div_ceil(block_elems).saturating_mul(block_bytes);
        let name = String::from_utf8_lossy(&name).into_owned();
        c.skip(data, &format!("data of tensor {name}"))?;
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

// ---------------------------------------------------------------------------------------------
// Synthetic-weight models
// ---------------------------------------------------------------------------------------------

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

/// How a tensor's random values are drawn.
#[derive(Debug, Clone, Copy)]
enum Init {
    /// f16 matrix, uniform with standard deviation 1/sqrt(fan_in).
    Matrix { fan_in: u64 },
    /// f16 token embedding, standard deviation 0.02 (it also projects to the logits).
    Embedding,
    /// f32 positional embedding, standard deviation 0.02.
    Position,
    /// f32 bias, uniform in ±0.02.
    Bias,
    /// f32 layer-norm gain, 1 ± 0.05.
    Gain,
}

/// One tensor of the whisper architecture: name, ggml dims (innermost first), init.
struct TensorSpec {
    name: String,
    dims: Vec<i32>,
    init: Init,
}

/// The tensors whisper.cpp's `whisper_model_load` expects, with their shapes and types.
fn tensor_specs(h: &WhisperHparams) -> Vec<TensorSpec> {
    let s = h.n_audio_state;
    let t = |name: String, dims: Vec<i32>, init: Init| TensorSpec { name, dims, init };
    let matrix = |n_in: i32| Init::Matrix {
        fan_in: n_in as u64,
    };
    let mut out = vec![
        t(
            "encoder.positional_embedding".into(),
            vec![s, h.n_audio_ctx],
            Init::Position,
        ),
        t(
            "encoder.conv1.weight".into(),
            vec![3, h.n_mels, s],
            matrix(3 * h.n_mels),
        ),
        t("encoder.conv1.bias".into(), vec![1, s], Init::Bias),
        t("encoder.conv2.weight".into(), vec![3, s, s], matrix(3 * s)),
        t("encoder.conv2.bias".into(), vec![1, s], Init::Bias),
        t("encoder.ln_post.weight".into(), vec![s], Init::Gain),
        t("encoder.ln_post.bias".into(), vec![s], Init::Bias),
    ];
    // The attention and MLP block, shared by encoder self-attention, decoder self-attention
    // and decoder cross-attention (which has no MLP of its own).
    let attention = |out: &mut Vec<TensorSpec>, prefix: &str, ln: &str, attn: &str| {
        out.push(t(format!("{prefix}.{ln}.weight"), vec![s], Init::Gain));
        out.push(t(format!("{prefix}.{ln}.bias"), vec![s], Init::Bias));
        out.push(t(
            format!("{prefix}.{attn}.query.weight"),
            vec![s, s],
            matrix(s),
        ));
        out.push(t(
            format!("{prefix}.{attn}.query.bias"),
            vec![s],
            Init::Bias,
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
            Init::Bias,
        ));
        out.push(t(
            format!("{prefix}.{attn}.out.weight"),
            vec![s, s],
            matrix(s),
        ));
        out.push(t(format!("{prefix}.{attn}.out.bias"), vec![s], Init::Bias));
    };
    let mlp = |out: &mut Vec<TensorSpec>, prefix: &str| {
        out.push(t(format!("{prefix}.mlp_ln.weight"), vec![s], Init::Gain));
        out.push(t(format!("{prefix}.mlp_ln.bias"), vec![s], Init::Bias));
        out.push(t(
            format!("{prefix}.mlp.0.weight"),
            vec![s, 4 * s],
            matrix(s),
        ));
        out.push(t(format!("{prefix}.mlp.0.bias"), vec![4 * s], Init::Bias));
        out.push(t(
            format!("{prefix}.mlp.2.weight"),
            vec![4 * s, s],
            matrix(4 * s),
        ));
        out.push(t(format!("{prefix}.mlp.2.bias"), vec![s], Init::Bias));
    };
    for i in 0..h.n_audio_layer {
        let prefix = format!("encoder.blocks.{i}");
        attention(&mut out, &prefix, "attn_ln", "attn");
        mlp(&mut out, &prefix);
    }
    out.push(t(
        "decoder.positional_embedding".into(),
        vec![s, h.n_text_ctx],
        Init::Position,
    ));
    out.push(t(
        "decoder.token_embedding.weight".into(),
        vec![s, h.n_vocab],
        Init::Embedding,
    ));
    out.push(t("decoder.ln.weight".into(), vec![s], Init::Gain));
    out.push(t("decoder.ln.bias".into(), vec![s], Init::Bias));
    for i in 0..h.n_text_layer {
        let prefix = format!("decoder.blocks.{i}");
        attention(&mut out, &prefix, "attn_ln", "attn");
        attention(&mut out, &prefix, "cross_attn_ln", "cross_attn");
        mlp(&mut out, &prefix);
    }
    out
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
    let file = File::open(test_model).map_err(io_error(test_model))?;
    let len = file.metadata().map_err(io_error(test_model))?.len();
    let mut c = Cursor {
        inner: BufReader::new(file),
        offset: 0,
        len,
        path: test_model.display().to_string(),
    };
    let header = parse_header(&mut c)?;
    let multilingual = |n_vocab: i32| n_vocab >= 51_865;
    if multilingual(header.hparams.n_vocab) != multilingual(hparams.n_vocab)
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
    c.inner
        .seek(SeekFrom::Start(header.mel_offset))
        .map_err(io_error(test_model))?;
    let mut mel_and_vocab = vec![0u8; (header.vocab_end - header.mel_offset) as usize];
    c.inner
        .read_exact(&mut mel_and_vocab)
        .map_err(io_error(test_model))?;

    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let tmp = out.with_extension("bin.part");
    let written = write_synthetic(&tmp, &hparams, &mel_and_vocab, seed);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, out).map_err(io_error(out))?;
    Ok(())
}

fn write_synthetic(
    path: &Path,
    hparams: &WhisperHparams,
    mel_and_vocab: &[u8],
    seed: u64,
) -> Result<(), ModelError> {
    let file = File::create(path).map_err(io_error(path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut put = |bytes: &[u8]| w.write_all(bytes).map_err(io_error(path));
    put(&GGML_MAGIC.to_le_bytes())?;
    for v in hparams.to_array() {
        put(&v.to_le_bytes())?;
    }
    put(mel_and_vocab)?;

    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = Vec::new();
    for spec in tensor_specs(hparams) {
        let elements: usize = spec.dims.iter().map(|&d| d as usize).product();
        let (ttype, half) = match spec.init {
            Init::Matrix { .. } | Init::Embedding => (1i32, true),
            Init::Position | Init::Bias | Init::Gain => (0i32, false),
        };
        put(&(spec.dims.len() as i32).to_le_bytes())?;
        put(&(spec.name.len() as i32).to_le_bytes())?;
        put(&ttype.to_le_bytes())?;
        for d in &spec.dims {
            put(&d.to_le_bytes())?;
        }
        put(spec.name.as_bytes())?;

        // A uniform distribution on ±a has standard deviation a / sqrt(3).
        let (center, spread) = match spec.init {
            Init::Matrix { fan_in } => (0.0f32, 3f32.sqrt() / (fan_in as f32).sqrt()),
            Init::Embedding | Init::Position => (0.0, 3f32.sqrt() * 0.02),
            Init::Bias => (0.0, 0.02),
            Init::Gain => (1.0, 0.05),
        };
        data.clear();
        data.reserve(elements * if half { 2 } else { 4 });
        for _ in 0..elements {
            let v = center + spread * rng.gen_range(-1.0f32..1.0);
            if half {
                data.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
            } else {
                data.extend_from_slice(&v.to_le_bytes());
            }
        }
        put(&data)?;
    }
    let file = w.into_inner().map_err(|e| ModelError::Io {
        path: path.display().to_string(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_error(path))?;
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

    #[test]
    fn list_has_urls_and_checksums() {
        assert_eq!(list().len(), 9);
        for m in list() {
            assert_eq!(m.sha256.len(), 64, "{}", m.file);
            assert!(m.url().ends_with(m.file));
        }
        assert!(find("ggml-base.en-q5_1.bin").is_some());
    }
}
