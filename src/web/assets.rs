//! The web phone's files: plain HTML, JS and CSS from `assets/web/`, built into the binary so
//! `hotline serve` works from any directory. With `web.assets_dir` set, files are read from
//! that folder first (edit the page without rebuilding); a file missing there falls back to
//! the built-in copy. Only the fixed names below are served, so no request can walk the disk.

use std::path::Path;

/// One servable file: its URL name, MIME type and built-in content.
struct Asset {
    name: &'static str,
    mime: &'static str,
    builtin: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        mime: "text/html; charset=utf-8",
        builtin: include_bytes!("../../assets/web/index.html"),
    },
    Asset {
        name: "app.js",
        mime: "text/javascript; charset=utf-8",
        builtin: include_bytes!("../../assets/web/app.js"),
    },
    Asset {
        name: "style.css",
        mime: "text/css; charset=utf-8",
        builtin: include_bytes!("../../assets/web/style.css"),
    },
    Asset {
        name: "favicon.svg",
        mime: "image/svg+xml",
        builtin: include_bytes!("../../assets/web/favicon.svg"),
    },
];

/// The content and MIME type of a web phone file, or `None` if there is no such file.
pub fn load(name: &str, assets_dir: Option<&Path>) -> Option<(&'static str, Vec<u8>)> {
    let asset = ASSETS.iter().find(|a| a.name == name)?;
    if let Some(dir) = assets_dir {
        if let Ok(bytes) = std::fs::read(dir.join(asset.name)) {
            return Some((asset.mime, bytes));
        }
    }
    Some((asset.mime, asset.builtin.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_files_are_served_and_others_are_not() {
        let (mime, html) = load("index.html", None).expect("index");
        assert!(mime.starts_with("text/html"));
        assert!(String::from_utf8_lossy(&html).contains("app.js"));
        assert!(load("../Cargo.toml", None).is_none());
        assert!(load("secret", None).is_none());
    }

    #[test]
    fn a_folder_overrides_and_falls_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("style.css"), "body{}").expect("write");
        let (_, css) = load("style.css", Some(dir.path())).expect("css");
        assert_eq!(css, b"body{}");
        let (_, js) = load("app.js", Some(dir.path())).expect("fallback");
        assert!(!js.is_empty());
    }
}
