//! whisper compute time for one 3 s caller turn (the first 3 s of `audio/en/jfk.wav`) on
//! synthetic-weight tiny.en and base.en models: 1 and 2 threads, with and without the encoder
//! context cut to the audio's length. Eight figures.
//!
//! The models are generated on first run (random weights, the real shapes, so the compute is
//! the real model's) into cargo's target tmp dir. Random weights decode a different number of
//! tokens than a trained model would; the token count is printed beside each model, and the
//! decoder is capped by [`hotline::asr::whisper::max_tokens_for`] as in production.
//!
//! `cargo bench --bench whisper` (release). Shared data from `$HOTLINE_SHARED`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use hotline::asr::whisper::{audio_ctx_for, WhisperRecognizer, WhisperSettings};
use hotline::asr::{AsrOptions, Recognizer};
use hotline::models::{self, SyntheticSize};

const SEED: u64 = 7;

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

/// The synthetic model of `size`, generated once and kept in the target tmp dir.
fn synthetic_model(size: SyntheticSize) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("synthetic-models");
    let path = dir.join(size.file_name());
    let fresh = models::inspect(&path).is_ok_and(|s| s.hparams == size.hparams() && s.tensors > 0);
    if !fresh {
        eprintln!("generating {} …", path.display());
        models::generate_synthetic_into(size, &shared_dir().join("models"), &dir, SEED)
            .expect("generate the synthetic model");
    }
    path
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
        audio_ctx_for(utterance.len()),
        hotline::asr::whisper::AUDIO_CTX_FULL
    );

    for size in [SyntheticSize::TinyEn, SyntheticSize::BaseEn] {
        let path = synthetic_model(size);
        let mut whisper = WhisperRecognizer::new(&path, WhisperSettings::default())
            .expect("the synthetic model loads");
        whisper.transcribe(&utterance, &opts).expect("warm-up run");
        eprintln!(
            "{size}: the random weights decode {} tokens per run",
            whisper.last_token_count()
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
