//! The official whisper.cpp files: download from huggingface.co (or a mirror) and verification.
//!
//! Invariants: a download streams into `<file>.part` and is renamed into place only after its
//! size and sha256 match the official list; a mismatch or a broken transfer deletes the part
//! file. An unreachable host is one [`ModelError::Unreachable`], never a retry loop.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{find, hex, io_error, part_path, sha256_file, ModelError, ModelInfo, MODELS};

/// How long the download waits for a connection (huggingface.co answers in well under this).
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

fn unknown_official(name: &str) -> ModelError {
    ModelError::UnknownModel {
        name: name.to_string(),
        known: MODELS.iter().map(|m| m.file).collect::<Vec<_>>().join(", "),
    }
}

/// Downloads an official model into `dir` (created if needed) and returns its path. A file
/// already there that verifies is kept as it is.
pub fn download(name: &str, dir: &Path) -> Result<PathBuf, ModelError> {
    let info = find(name).ok_or_else(|| unknown_official(name))?;
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
    download_with_timeout(url, info, dir, CONNECT_TIMEOUT)
}

/// [`download_from`] with a given connect timeout.
pub(super) fn download_with_timeout(
    url: &str,
    info: &ModelInfo,
    dir: &Path,
    connect_timeout: Duration,
) -> Result<PathBuf, ModelError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let dest = dir.join(info.file);
    let part = part_path(&dest);
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or(url)
        .to_string();

    let agent = ureq::AgentBuilder::new()
        .timeout_connect(connect_timeout)
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
pub(super) fn stream_to_part(
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

/// Checks an official model file by its name: size, then sha256.
pub fn verify(path: &Path) -> Result<&'static ModelInfo, ModelError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let info = find(name).ok_or_else(|| unknown_official(name))?;
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
