//! What the measuring benches share: where the shared recordings are.

use std::path::{Path, PathBuf};

/// The shared test data (`$HOTLINE_SHARED`, else `../shared` beside the repository).
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("HOTLINE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    assert!(
        dir.join("audio/index.tsv").is_file(),
        "shared test data not found at {} (set HOTLINE_SHARED)",
        dir.display()
    );
    dir
}
