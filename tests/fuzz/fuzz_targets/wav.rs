//! The WAV reader: RIFF chunks, `fmt ` fields, integer, float and G.711 data, then the mono
//! 16 kHz conversion every replayed or uploaded file goes through.
#![no_main]

use hotline::audio::{resample, wav};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pcm) = wav::parse_wav(data, "fuzz.wav") else {
        return;
    };
    // A file can declare any rate; converting a long file at a wild ratio is real work, not a
    // finding, so only short ones go on to the resampler.
    if pcm.samples.len() <= 64 * 1024 {
        let _ = resample::resample(&pcm.to_mono(), pcm.sample_rate_hz, 16_000);
    }
});
