//! Links the system libraries that hotline's engines use beside the crates that vendor theirs.
//!
//! - libsonic: espeak-rs-sys builds espeak-ng 1.52 against the system's libsonic (Debian
//!   `libsonic-dev`) instead of fetching sonic's source at build time.
//! - libpcaudio: espeak-ng's cmake enables its audio output when it finds libpcaudio (Debian
//!   `libpcaudio-dev`, pulled in by `libespeak-ng-dev`); the static library then needs it at link
//!   time even though hotline only uses synchronous synthesis. Linked when cmake would find it.
//! - PocketSphinx and SphinxBase (Debian `libpocketsphinx-dev`), for the offline recognizer.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-lib=sonic");
    if pcaudio_installed() {
        println!("cargo:rustc-link-lib=pcaudio");
    }
    for lib in ["pocketsphinx", "sphinxbase"] {
        if let Err(e) = pkg_config::Config::new().probe(lib) {
            panic!("{lib} not found through pkg-config ({e}); install libpocketsphinx-dev (see README)");
        }
    }
}

/// Mirrors espeak-ng's `find_library(pcaudio)` and `find_path(pcaudiolib/audio.h)`.
fn pcaudio_installed() -> bool {
    let header = ["/usr/include", "/usr/local/include"].iter().any(|dir| {
        std::path::Path::new(dir)
            .join("pcaudiolib/audio.h")
            .is_file()
    });
    let library = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
    ]
    .iter()
    .any(|dir| {
        ["libpcaudio.so", "libpcaudio.a"]
            .iter()
            .any(|f| std::path::Path::new(dir).join(f).is_file())
    });
    header && library
}
