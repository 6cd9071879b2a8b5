//! The config loader: TOML, every section's keys and the checks on their values.
#![no_main]

use hotline::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Config::parse(text, "fuzz.toml");
});
