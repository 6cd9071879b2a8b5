//! whisper decoding policies on trained weights: accuracy (WER for English, CER for Mandarin)
//! against compute per utterance (p50, p95), side by side in one run.
//!
//! Corpora, from the shared recordings (`$HOTLINE_SHARED/audio/index.tsv`):
//! - `en-read`: every English clip with a transcript under `hifitts/` and `en/`;
//! - `en-phone`: the 8 kHz G.711 clips under `telephone/` (upsampled to 16 kHz as a phone
//!   line's audio is);
//! - `zh`: the Mandarin clips with a whole transcript (the caller clip whose transcript
//!   gives only its first word is left out);
//! - `dialog-menu`: the MultiWOZ caller turns under `dialog/` with the demo telecom flow's menu
//!   as the phrase prompt, as `hotline bench` plays them to the demo flow;
//! - `dialog-menu-g711`: the same turns after an 8 kHz G.711 round trip, as they reach the
//!   recognizer from a phone line (written under `target/tmp/asr_policy/`).
//!
//! The `retries` column counts decodes that ran away on the trimmed context and ran again.
//!
//! Models are the trained ones `hotline models fetch` installs (`tiny.en`, `tiny.en-q8_0`,
//! `base`, `base-q8_0`); a model that is not installed is skipped with a note.
//!
//! `cargo bench --bench asr_policy` (release). `HOTLINE_BENCH_MODELS=tiny.en,base` and
//! `HOTLINE_BENCH_POLICIES=full,trim-1.3s-retry` narrow the grid; `HOTLINE_BENCH_THREADS=1,2`.
//! A figure here is never a test assertion: the accuracy thresholds live in `tests/`.

mod common;

use std::path::Path;

use common::{shared_dir, through_g711};
use hotline::asr::score::{evaluate_with, read_index, Sample};
use hotline::asr::whisper::{WhisperRecognizer, WhisperSettings};
use hotline::asr::Grammar;
use hotline::audio::wav::{read_wav_mono_16k, write_wav, Pcm};
use hotline::language::Language;

/// The decoding policies compared.
fn policies() -> Vec<(&'static str, WhisperSettings)> {
    let base = WhisperSettings::default();
    let trim = |pad_ms: u32, retry: bool| WhisperSettings {
        trim_audio_ctx: true,
        trim_pad_ms: pad_ms,
        runaway_retry: retry,
        retry_loops: retry,
        ..base.clone()
    };
    vec![
        (
            "full",
            WhisperSettings {
                trim_audio_ctx: false,
                ..base.clone()
            },
        ),
        ("trim-1.3s", trim(1_280, false)),
        (
            "trim-1.3s-retry-full",
            WhisperSettings {
                retry_pad_ms: 30_000,
                ..trim(1_280, true)
            },
        ),
        ("trim-1.3s-retry", trim(1_280, true)),
        (
            "trim-1.3s-retry-3s",
            WhisperSettings {
                retry_pad_ms: 3_000,
                ..trim(1_280, true)
            },
        ),
        (
            "trim-1.3s-retry-6s",
            WhisperSettings {
                retry_pad_ms: 6_000,
                ..trim(1_280, true)
            },
        ),
        ("trim-6s", trim(6_000, false)),
        ("trim-6s-retry", trim(6_000, true)),
        ("trim-8s-retry", trim(8_000, true)),
        ("trim-5s-retry", trim(5_000, true)),
        ("trim-4s-retry", trim(4_000, true)),
        (
            "trim-8s-retry-prompt48",
            WhisperSettings {
                prompt_max_tokens: 48,
                ..trim(8_000, true)
            },
        ),
        (
            "trim-5s-retry-prompt48",
            WhisperSettings {
                prompt_max_tokens: 48,
                ..trim(5_000, true)
            },
        ),
        ("trim-3s-retry", trim(3_000, true)),
        ("trim-12s", trim(12_000, false)),
        (
            "trim-1.3s-timestamps",
            WhisperSettings {
                timestamps: true,
                ..trim(1_280, false)
            },
        ),
        (
            "trim-1.3s-timestamps-segments",
            WhisperSettings {
                timestamps: true,
                single_segment: false,
                ..trim(1_280, false)
            },
        ),
        ("trim-3s", trim(3_000, false)),
        ("trim-2s", trim(2_000, false)),
        ("trim-1s", trim(1_000, false)),
        (
            "trim-1s-cut",
            WhisperSettings {
                retry_loops: false,
                ..trim(1_000, true)
            },
        ),
        (
            "trim-2s-cut",
            WhisperSettings {
                retry_loops: false,
                ..trim(2_000, true)
            },
        ),
        (
            "trim-1.3s-fallback",
            WhisperSettings {
                temperature_fallback: true,
                ..trim(1_280, false)
            },
        ),
    ]
}

fn list_env(name: &str) -> Option<Vec<String>> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
}

fn corpora(shared: &Path) -> Vec<(&'static str, Vec<Sample>, Option<Grammar>)> {
    let all = read_index(&shared.join("audio/index.tsv")).expect("read the shared index");
    let under = |prefix: &str| {
        let root = shared.join("audio").join(prefix);
        all.iter()
            .filter(|s| s.path.starts_with(&root))
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut read = under("hifitts");
    read.extend(under("en"));
    let zh: Vec<Sample> = all
        .iter()
        .filter(|s| s.language == Language::Zh)
        // Its transcript names only the first word of a longer request.
        .filter(|s| !s.path.ends_with("active-call_hello_book_course_zh_16k.wav"))
        .cloned()
        .collect();
    let dialog = under("dialog");
    let dialog_g711 = through_phone_line(&dialog);
    vec![
        ("en-read", read, None),
        ("en-phone", under("telephone"), None),
        ("zh", zh, None),
        ("dialog-menu", dialog, common::menu_grammar()),
        ("dialog-menu-g711", dialog_g711, common::menu_grammar()),
    ]
}

/// `samples` after an 8 kHz G.711 round trip, written as 16 kHz WAVs under `target/tmp`.
fn through_phone_line(samples: &[Sample]) -> Vec<Sample> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp/asr_policy");
    std::fs::create_dir_all(&dir).expect("create the phone-line corpus folder");
    samples
        .iter()
        .map(|sample| {
            let pcm = read_wav_mono_16k(&sample.path).expect("read a dialog turn");
            let name = sample.path.file_name().expect("a file name");
            let path = dir.join(name);
            let pcm = Pcm {
                sample_rate_hz: 16_000,
                channels: 1,
                samples: through_g711(&pcm),
            };
            write_wav(&path, &pcm).expect("write the phone-line turn");
            Sample {
                path,
                ..sample.clone()
            }
        })
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this target without it,
    // and the whole grid (minutes of compute) is not a test.
    if !std::env::args().any(|a| a == "--bench") {
        println!("asr_policy: a measurement; run it with `cargo bench --bench asr_policy`");
        return;
    }
    let shared = shared_dir();
    let corpora = corpora(&shared);
    let models = list_env("HOTLINE_BENCH_MODELS").unwrap_or_else(|| {
        ["tiny.en", "tiny.en-q8_0", "base", "base-q8_0"]
            .map(String::from)
            .to_vec()
    });
    let wanted_policies = list_env("HOTLINE_BENCH_POLICIES");
    let threads: Vec<usize> = list_env("HOTLINE_BENCH_THREADS")
        .map(|v| v.iter().filter_map(|t| t.parse().ok()).collect())
        .unwrap_or_else(|| vec![2]);
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        eprintln!("load average before the run: {}", load.trim());
    }
    println!("| model | policy | threads | corpus | utterances | error rate | compute p50 | compute p95 | retries |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for name in &models {
        let path = match hotline::models::resolve(name) {
            Ok(path) if path.is_file() => path,
            Ok(path) => {
                eprintln!(
                    "{name}: not installed at {} (run `hotline models fetch {name}`); skipped",
                    path.display()
                );
                continue;
            }
            Err(e) => {
                eprintln!("{name}: {e}; skipped");
                continue;
            }
        };
        let mut whisper =
            WhisperRecognizer::new(&path, WhisperSettings::default()).expect("the model loads");
        for (policy, settings) in policies() {
            if wanted_policies
                .as_ref()
                .is_some_and(|w| !w.iter().any(|p| p == policy))
            {
                continue;
            }
            for &t in &threads {
                whisper.set_settings(WhisperSettings {
                    threads: t,
                    ..settings.clone()
                });
                for (corpus, samples, grammar) in &corpora {
                    let zh = samples.first().is_some_and(|s| s.language == Language::Zh);
                    if zh != whisper.is_multilingual() && zh {
                        continue;
                    }
                    let retries = whisper.retries();
                    let result =
                        evaluate_with(&mut whisper, samples, grammar.as_ref()).expect("evaluate");
                    let ms = |q: f64| result.compute_quantile(q).as_millis();
                    println!(
                        "| {name} | {policy} | {t} | {corpus} | {} | {:.3} | {} ms | {} ms | {} |",
                        samples.len(),
                        result.errors.rate(),
                        ms(0.5),
                        ms(0.95),
                        whisper.retries() - retries,
                    );
                    if std::env::var_os("HOTLINE_BENCH_VERBOSE").is_some() {
                        for (path, heard, errors) in &result.heard {
                            eprintln!(
                                "  {} ({}/{}): {heard}",
                                path.display(),
                                errors.edits,
                                errors.reference
                            );
                        }
                    }
                }
            }
        }
    }
}
