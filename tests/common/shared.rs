//! Where the shared test data (recordings, models) and the SIPp scenarios are.
//!
//! The shared folder is `$HOTLINE_SHARED`, else `../shared` beside the repository. Its files are
//! read in place, never copied into the repository.

use std::path::{Path, PathBuf};

/// The shared test data folder (`$HOTLINE_SHARED`, else `../shared` beside the repository).
/// Fails with a clear message when it is absent.
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("HOTLINE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    assert!(
        dir.join("audio").is_dir(),
        "shared test data not found at {} (set HOTLINE_SHARED to the folder holding audio/ and models/)",
        dir.display()
    );
    dir
}

/// A file or folder in the shared test data, e.g. `shared("audio/en/jfk.wav")`. Fails with a
/// clear message when it is absent.
pub fn shared(relative: &str) -> PathBuf {
    let path = shared_dir().join(relative);
    assert!(
        path.exists(),
        "shared test data lacks {relative} (looked in {}; set HOTLINE_SHARED)",
        path.display()
    );
    path
}

/// A SIPp scenario of this repository (`sip/scenarios/<name>`).
pub fn scenario(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sip/scenarios")
        .join(name);
    assert!(path.is_file(), "no SIPp scenario {}", path.display());
    path
}

/// A trained whisper model that `hotline models fetch` installs (`make test` fetches the
/// defaults before the tests run), by name: `tiny.en-q8_0`, `base-q8_0`, … Fails with a
/// clear message when it is not installed: these tests never fall back to another model.
pub fn trained_model(name: &str) -> PathBuf {
    let path =
        hotline::models::resolve(name).unwrap_or_else(|e| panic!("trained model {name}: {e}"));
    assert!(
        path.is_file(),
        "the trained whisper model {name} is not installed at {} (run `make test`, or \
         `cargo run --release -- models fetch {name}`)",
        path.display()
    );
    path
}
