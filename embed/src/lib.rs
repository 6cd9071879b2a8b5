//! hotline-embed: puts files into the `hotline` binary at build time, so that a copy of the
//! binary (or `cargo install`) runs anywhere with its voice and its default assets.
//!
//! Owns two macros, each expanding to a `&'static [(&'static str, &'static [u8])]` of
//! (relative path, content) pairs, one `include_bytes!` per file (so the compiler tracks every
//! file, and a changed one rebuilds the crate):
//! - [`espeak_data!`]: the espeak-ng data that `espeak-rs-sys` compiles into its build output
//!   (phonemes, intonations, the English and Mandarin dictionaries, the language and voice
//!   definitions). A macro rather than a build script because only the compile of the crate
//!   that depends on `espeak-rs-sys` is ordered after that crate's build script: the macro runs
//!   then, finds `<profile>/build/espeak-rs-sys-*/out/share/espeak-ng-data` beside the calling
//!   crate's `OUT_DIR` (the newest one), or takes `HOTLINE_ESPEAK_DATA` when it is set.
//! - [`embed_dir!`]: every file under a folder of the calling crate (`CARGO_MANIFEST_DIR`).
//!
//! Invariants: the lists are sorted by path; a missing folder or data set is a compile error
//! that says where it looked. No IO at run time.

use std::path::{Path, PathBuf};

use proc_macro::TokenStream;

/// The espeak-ng data files hotline speaks with (see the crate docs).
const ESPEAK_FILES: [&str; 6] = [
    "phontab",
    "phonindex",
    "phondata",
    "intonations",
    "en_dict",
    "cmn_dict",
];
/// The espeak-ng data folders embedded whole: language and voice definitions.
const ESPEAK_DIRS: [&str; 2] = ["lang", "voices"];

/// `espeak_data!()`: the espeak-ng data set, as (path under `espeak-ng-data`, bytes) pairs.
#[proc_macro]
pub fn espeak_data(_input: TokenStream) -> TokenStream {
    let dir = match find_espeak_data() {
        Ok(dir) => dir,
        Err(message) => return compile_error(&message),
    };
    let mut files: Vec<(String, PathBuf)> = ESPEAK_FILES
        .iter()
        .map(|name| (name.to_string(), dir.join(name)))
        .collect();
    for sub in ESPEAK_DIRS {
        if let Err(e) = walk(&dir, &dir.join(sub), &mut files) {
            return compile_error(&format!("reading {}: {e}", dir.join(sub).display()));
        }
    }
    if let Some((_, missing)) = files.iter().find(|(_, path)| !path.is_file()) {
        return compile_error(&format!(
            "espeak-ng data is incomplete: {} is missing",
            missing.display()
        ));
    }
    list(files)
}

/// `embed_dir!("assets/flows")`: every file under a folder of the calling crate, as (path
/// relative to that folder, bytes) pairs.
#[proc_macro]
pub fn embed_dir(input: TokenStream) -> TokenStream {
    let literal = input.to_string();
    let relative = literal.trim().trim_matches('"');
    let Some(manifest) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return compile_error("CARGO_MANIFEST_DIR is not set: embed_dir! runs under cargo");
    };
    let root = Path::new(&manifest).join(relative);
    let mut files = Vec::new();
    if let Err(e) = walk(&root, &root, &mut files) {
        return compile_error(&format!("embed_dir!: reading {}: {e}", root.display()));
    }
    list(files)
}

/// The newest compiled data set (see the crate docs).
fn find_espeak_data() -> Result<PathBuf, String> {
    if let Some(given) = std::env::var_os("HOTLINE_ESPEAK_DATA") {
        let given = PathBuf::from(given);
        return [given.join("espeak-ng-data"), given.clone()]
            .into_iter()
            .find(|dir| dir.join("phontab").is_file())
            .ok_or_else(|| {
                format!(
                    "HOTLINE_ESPEAK_DATA={} holds no espeak-ng data",
                    given.display()
                )
            });
    }
    let out_dir = std::env::var_os("OUT_DIR")
        .map(PathBuf::from)
        .ok_or("OUT_DIR is not set: the crate that calls espeak_data! needs a build script")?;
    // OUT_DIR is <profile>/build/<crate>-<hash>/out.
    let build = out_dir
        .ancestors()
        .nth(2)
        .ok_or_else(|| format!("OUT_DIR {} is not under a build folder", out_dir.display()))?;
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    let entries = std::fs::read_dir(build).map_err(|e| format!("{}: {e}", build.display()))?;
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with("espeak-rs-sys-")
        {
            continue;
        }
        let dir = entry.path().join("out/share/espeak-ng-data");
        let Ok(built) = std::fs::metadata(dir.join("phontab")).and_then(|m| m.modified()) else {
            continue;
        };
        if best.as_ref().is_none_or(|(time, _)| built > *time) {
            best = Some((built, dir));
        }
    }
    best.map(|(_, dir)| dir).ok_or_else(|| {
        format!(
            "no espeak-ng data under {}/espeak-rs-sys-*/out/share/espeak-ng-data (espeak-rs-sys builds it with its compile-espeak-intonations feature), and HOTLINE_ESPEAK_DATA is not set",
            build.display()
        )
    })
}

/// Every file under `dir`, with its path relative to `root` ('/'-separated).
fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(root, &path, files)?;
        } else if path.is_file() {
            let relative = path
                .strip_prefix(root)
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.push((relative, path));
        }
    }
    Ok(())
}

/// The `&[(path, include_bytes!(file))]` expression.
fn list(mut files: Vec<(String, PathBuf)>) -> TokenStream {
    files.sort();
    let items: Vec<String> = files
        .iter()
        .map(|(name, path)| {
            format!(
                "({name:?}, include_bytes!({:?}) as &[u8])",
                path.display().to_string()
            )
        })
        .collect();
    format!("&[{}] as &[(&str, &[u8])]", items.join(", "))
        .parse()
        .unwrap_or_else(|_| compile_error("embed: could not write the file list"))
}

fn compile_error(message: &str) -> TokenStream {
    format!("compile_error!({message:?})")
        .parse()
        .unwrap_or_default()
}
