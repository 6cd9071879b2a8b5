//! Links the system libraries that hotline's engines use beside the crates that vendor theirs.
//!
//! - libsonic: espeak-rs-sys builds espeak-ng 1.52 against the system's libsonic (Debian
//!   `libsonic-dev`) instead of fetching sonic's source at build time.
//! - PocketSphinx and SphinxBase (Debian `libpocketsphinx-dev`), for the offline recognizer.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-lib=sonic");
    for lib in ["pocketsphinx", "sphinxbase"] {
        if let Err(e) = pkg_config::Config::new().probe(lib) {
            panic!("{lib} not found through pkg-config ({e}); install libpocketsphinx-dev (see README)");
        }
    }
}
