//! Caller speech the tests make themselves: espeak-ng's command line speaks a caller's turn
//! into a WAV file (a fixture that always exists, unlike a recording).

use std::path::{Path, PathBuf};
use std::process::Command;

/// One caller turn spoken by espeak-ng (US English, 150 words a minute) into `dir/name.wav`.
pub fn speak(dir: &Path, name: &str, text: &str) -> PathBuf {
    let wav = dir.join(format!("{name}.wav"));
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng is installed (apt-get install espeak-ng)");
    assert!(status.success(), "espeak-ng failed for {text:?}");
    wav
}
