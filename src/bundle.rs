//! What the binary carries, so that a copy of it (or `cargo install`) runs anywhere: the
//! espeak-ng data it speaks with, and the default assets (the basic dialogue, the flows, their
//! knowledge bases and the recorded prompts). The web phone's files are built in apart
//! (`web::assets`), since they are served from memory.
//!
//! Owns: the embedded file sets (through `hotline-embed`), the folder they are unpacked into
//! (`$HOTLINE_DATA_DIR`, else `$XDG_DATA_HOME/hotline`, else `~/.local/share/hotline`, else the
//! system's temporary folder), and unpacking them there once per content: each set goes into
//! a folder named by a fingerprint of its files, written under a temporary name and renamed
//! into place, so that servers starting at once, or a crash half-way, never leave a partial
//! set in use.
//!
//! Invariants: an unpacked set is never changed in place (a new build with other content gets
//! a new folder); [`espeak_data_dir`] and [`assets_dir`] unpack at most once per process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A set of embedded files: (relative path, content).
type FileSet = &'static [(&'static str, &'static [u8])];

/// espeak-ng's compiled data (see `hotline-embed`).
const ESPEAK_DATA: FileSet = hotline_embed::espeak_data!();
/// The default assets under `assets/` (not `assets/web`, served from memory).
const BASIC_DIALOGUE: &[u8] = include_bytes!("../assets/basic_dialogue.toml");
const FLOWS: FileSet = hotline_embed::embed_dir!("assets/flows");
const KB: FileSet = hotline_embed::embed_dir!("assets/kb");
const PROMPTS: FileSet = hotline_embed::embed_dir!("assets/prompts");

/// The environment variable that names the folder embedded files are unpacked into.
pub const DATA_DIR_ENV: &str = "HOTLINE_DATA_DIR";

/// An embedded set could not be unpacked.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot unpack the built-in {what} into {dir}: {message} (set {DATA_DIR_ENV} to a writable folder)")]
pub struct BundleError {
    pub what: &'static str,
    pub dir: String,
    pub message: String,
}

/// Where embedded files are unpacked (see the module docs).
pub fn data_root() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var(DATA_DIR_ENV) {
        return PathBuf::from(dir);
    }
    if let Some(xdg) = var("XDG_DATA_HOME").map(PathBuf::from) {
        if xdg.is_absolute() {
            return xdg.join("hotline");
        }
    }
    match var("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/hotline"),
        None => std::env::temp_dir().join("hotline"),
    }
}

/// The built-in espeak-ng data folder (it holds `phontab`), unpacked on first use.
pub fn espeak_data_dir() -> Result<PathBuf, BundleError> {
    static DIR: OnceLock<Result<PathBuf, BundleError>> = OnceLock::new();
    DIR.get_or_init(|| {
        // espeak-ng reads `<path>/espeak-ng-data`; the folder keeps that name inside.
        unpack(
            &data_root(),
            "espeak-ng data",
            "espeak-ng",
            &[("espeak-ng-data", ESPEAK_DATA)],
        )
        .map(|dir| dir.join("espeak-ng-data"))
    })
    .clone()
}

/// The built-in default assets folder (it holds `basic_dialogue.toml`, `flows/`, `kb/` and
/// `prompts/`), unpacked on first use.
pub fn assets_dir() -> Result<PathBuf, BundleError> {
    static DIR: OnceLock<Result<PathBuf, BundleError>> = OnceLock::new();
    const BASIC: FileSet = &[("basic_dialogue.toml", BASIC_DIALOGUE)];
    DIR.get_or_init(|| {
        unpack(
            &data_root(),
            "assets",
            "assets",
            &[
                ("", BASIC),
                ("flows", FLOWS),
                ("kb", KB),
                ("prompts", PROMPTS),
            ],
        )
    })
    .clone()
}

/// A fingerprint of a set's paths and contents (FNV-1a, 64 bits): the name of its folder.
fn fingerprint(sets: &[(&str, FileSet)]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so that moving bytes between fields changes the hash.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    };
    for (prefix, files) in sets {
        for (name, content) in files.iter() {
            eat(prefix.as_bytes());
            eat(name.as_bytes());
            eat(content);
        }
    }
    hash
}

/// Unpacks the sets (each under its prefix) into `<root>/<name>-<fingerprint>`, unless that
/// folder is already complete there; returns the folder.
fn unpack(
    root: &Path,
    what: &'static str,
    name: &str,
    sets: &[(&str, FileSet)],
) -> Result<PathBuf, BundleError> {
    let dir = root.join(format!("{name}-{:016x}", fingerprint(sets)));
    if dir.join(".complete").is_file() {
        return Ok(dir);
    }
    let error = |message: String| BundleError {
        what,
        dir: dir.display().to_string(),
        message,
    };
    let staging = root.join(format!(
        ".{name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(root)?;
        for (prefix, files) in sets {
            for (file, content) in files.iter() {
                let path = staging.join(prefix).join(file);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&path, content)?;
            }
        }
        std::fs::write(staging.join(".complete"), b"")
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(error(e.to_string()));
    }
    match std::fs::rename(&staging, &dir) {
        Ok(()) => {
            tracing::debug!(dir = %dir.display(), what, "unpacked built-in files");
            Ok(dir)
        }
        // Another server unpacked the same set meanwhile: use theirs.
        Err(_) if dir.join(".complete").is_file() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(dir)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(error(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_sets_hold_what_the_server_needs() {
        let names: Vec<&str> = ESPEAK_DATA.iter().map(|(n, _)| *n).collect();
        for needed in ["phontab", "phondata", "en_dict", "cmn_dict"] {
            assert!(names.contains(&needed), "{needed} in {names:?}");
        }
        assert!(names.iter().any(|n| n.starts_with("lang/")));
        assert!(FLOWS.iter().any(|(n, _)| n.ends_with(".toml")));
        assert!(PROMPTS.iter().any(|(n, _)| n.ends_with(".wav")));
        assert!(!KB.is_empty());
    }

    #[test]
    fn a_set_is_unpacked_once_into_a_folder_named_by_its_content() {
        const A: FileSet = &[("x.txt", b"one"), ("sub/y.txt", b"two")];
        const B: FileSet = &[("x.txt", b"uno"), ("sub/y.txt", b"two")];
        assert_ne!(fingerprint(&[("", A)]), fingerprint(&[("", B)]));
        let home = tempfile::tempdir().expect("tempdir");
        let dir = home.path().join("t");
        let first = unpack(&dir, "test", "test", &[("p", A)]).expect("unpack");
        assert_eq!(
            std::fs::read(first.join("p/sub/y.txt")).expect("read"),
            b"two"
        );
        let again = unpack(&dir, "test", "test", &[("p", A)]).expect("unpack again");
        assert_eq!(first, again);
        let other = unpack(&dir, "test", "test", &[("p", B)]).expect("unpack B");
        assert_ne!(first, other);
        let leftovers = std::fs::read_dir(&dir)
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .count();
        assert_eq!(leftovers, 0, "no staging folder is left behind");
    }
}
