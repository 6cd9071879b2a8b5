//! whisper compute time for one 3 s caller turn (the first 3 s of `audio/en/jfk.wav`) on the
//! trained models `hotline models fetch` installs (tiny.en in f16 and q8_0, multilingual
//! base): 1 and 2 threads, the default trimmed context against the full one.
//!
//! A model that is not installed is skipped with a note. The token count each model decodes
//! is printed beside it. Accuracy per policy is `cargo bench --bench asr_policy`.
//!
//! `cargo bench --bench whisper` (release). Shared data from `$HOTLINE_SHARED`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use hotline::asr::whisper::{audio_ctx_for, WhisperRecognizer, WhisperSettings};
use hotline::asr::{AsrOptions, Recognizer};
use hotline::models;

fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("HOTLINE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    assert!(
        dir.join("audio").is_dir() && dir.join("models").is_dir(),
        "shared test data not found at {} (set HOTLINE_SHARED to the folder holding audio/ and models/)",
        dir.display()
    );
    dir
}

fn whisper_3s(c: &mut Criterion) {
    let shared = shared_dir();
    let jfk = hotline::audio::wav::read_wav_mono_16k(&shared.join("audio/en/jfk.wav"))
        .expect("read jfk.wav");
    let utterance = jfk[..3 * 16_000].to_vec();
    let opts = AsrOptions::default();
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        eprintln!("load average before the run: {}", load.trim());
    }
    eprintln!(
        "3 s utterance; trimmed encoder context {} of {} positions",
        audio_ctx_for(utterance.len(), WhisperSettings::default().trim_pad_ms),
        hotline::asr::whisper::AUDIO_CTX_FULL
    );

    for size in ["tiny.en", "tiny.en-q8_0", "base"] {
        let path = match models::resolve(size) {
            Ok(path) if path.is_file() => path,
            _ => {
                eprintln!("{size} is not installed (`hotline models fetch {size}`); skipped");
                continue;
            }
        };
        let mut whisper = WhisperRecognizer::new(&path, WhisperSettings::default())
            .expect("the trained model loads");
        let heard = whisper.transcribe(&utterance, &opts).expect("warm-up run");
        eprintln!(
            "{size}: {} tokens per run ({:?})",
            whisper.last_token_count(),
            heard.text
        );

        let mut group = c.benchmark_group(format!("whisper_{size}_3s"));
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(8));
        for threads in [1, 2] {
            for trim_audio_ctx in [true, false] {
                whisper.set_settings(WhisperSettings {
                    threads,
                    trim_audio_ctx,
                    ..WhisperSettings::default()
                });
                let ctx = if trim_audio_ctx {
                    "trimmed_ctx"
                } else {
                    "full_ctx"
                };
                group.bench_function(format!("threads_{threads}/{ctx}"), |b| {
                    b.iter(|| whisper.transcribe(&utterance, &opts).expect("transcribe"))
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, whisper_3s);
criterion_main!(benches);
