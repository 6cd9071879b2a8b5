//! Speech recognition on real recordings: PocketSphinx with its language model and with
//! grammars, the real whisper-rs path on whisper.cpp's test model and on a synthetic-weight
//! model, the worker pool, and the model download and checks.
//!
//! Shared data comes from `$HOTLINE_SHARED` (default: `../shared` beside the repository).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result};
use hotline::asr::sphinx::SphinxRecognizer;
use hotline::asr::whisper::{WhisperRecognizer, WhisperSettings};
use hotline::asr::{AsrError, AsrJob, AsrOptions, AsrPool, Grammar, Recognized, Recognizer};
use hotline::config::{AsrConfig, AsrEngineKind};
use hotline::language::Language;
use hotline::models::{self, ModelError, ModelInfo, SyntheticSize};

use common::shared::shared;

/// A Mandarin caller clip (AISHELL-1).
const ZH_CLIP: &str = "audio/zh/aishell-BAC009S0724W0121.wav";

fn speech(rel: &str) -> Vec<i16> {
    let path = shared(rel);
    hotline::audio::wav::read_wav_mono_16k(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn english() -> AsrOptions {
    AsrOptions {
        language: Language::En,
        grammar: None,
        is_final: true,
    }
}

fn with_grammar(grammar: Grammar) -> AsrOptions {
    AsrOptions {
        grammar: Some(grammar),
        is_final: true,
        ..english()
    }
}

fn phrases(list: &[&str]) -> Grammar {
    Grammar::Phrases(list.iter().map(|s| s.to_string()).collect())
}

/// One Sphinx recognizer for the whole test binary: the full LM takes seconds to load.
fn sphinx() -> std::sync::MutexGuard<'static, SphinxRecognizer> {
    static SPHINX: OnceLock<Mutex<SphinxRecognizer>> = OnceLock::new();
    SPHINX
        .get_or_init(|| {
            let c = AsrConfig::default();
            Mutex::new(
                SphinxRecognizer::new(&c.sphinx_hmm, &c.sphinx_lm, &c.sphinx_dict)
                    .expect("PocketSphinx with Debian's en-us model (pocketsphinx-en-us)"),
            )
        })
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn sphinx_config() -> AsrConfig {
    AsrConfig {
        engine: AsrEngineKind::Sphinx,
        ..AsrConfig::default()
    }
}

/// Synthesizes `text` with the espeak-ng command line into a temp WAV and reads it at 16 kHz.
fn espeak(dir: &Path, text: &str) -> Result<Vec<i16>> {
    let wav = dir.join(format!("{}.wav", text.replace(' ', "_")));
    let status = std::process::Command::new("espeak-ng")
        .arg("-w")
        .arg(&wav)
        .arg(text)
        .status()
        .context("running espeak-ng (Debian package espeak-ng)")?;
    anyhow::ensure!(status.success(), "espeak-ng failed: {status}");
    Ok(hotline::audio::wav::read_wav_mono_16k(&wav)?)
}

// ------------------------------------------------------------------------------------------
// PocketSphinx
// ------------------------------------------------------------------------------------------

#[test]
fn sphinx_hears_one_two_three_with_the_language_model() {
    let pcm = speech("audio/en/one_two_three.wav");
    let heard = sphinx().transcribe(&pcm, &english()).expect("decode");
    println!("sphinx LM on one_two_three.wav: {heard:?}");
    assert_eq!(heard.text, "one two three");
}

#[test]
fn sphinx_takes_a_menu_with_what_callers_say_over_the_bot() {
    // While the bot is paused by a barge-in, the session adds these to the node's phrases:
    // every word must be in the dictionary, or the caller's words would not be recognized.
    let mut list: Vec<&str> = vec!["billing", "talk to an agent"];
    list.extend(hotline::session::barge::said_over_the_bot(
        hotline::language::Language::En,
    ));
    let pcm = speech("audio/en/one_two_three.wav");
    let heard = sphinx().transcribe(&pcm, &with_grammar(phrases(&list)));
    assert!(heard.is_ok(), "{heard:?}");
}

#[test]
fn sphinx_hears_one_two_three_with_a_digits_grammar() {
    let digits = Grammar::Jsgf(
        "#JSGF V1.0;\ngrammar digits;\n\
         public <digits> = ( zero | one | two | three | four | five | six | seven | eight | nine )+;\n"
            .into(),
    );
    let pcm = speech("audio/en/one_two_three.wav");
    let heard = sphinx()
        .transcribe(&pcm, &with_grammar(digits.clone()))
        .expect("decode");
    println!("sphinx digits grammar on one_two_three.wav: {heard:?}");
    assert_eq!(heard.text, "one two three");
    // The LM is still there afterwards, and the compiled grammar is reused.
    let again = sphinx()
        .transcribe(&pcm, &english())
        .expect("decode with LM");
    assert_eq!(again.text, "one two three");
    let third = sphinx()
        .transcribe(&pcm, &with_grammar(digits))
        .expect("cached grammar");
    assert_eq!(third.text, "one two three");
}

#[test]
fn sphinx_picks_customer_support_from_a_phrase_list_on_a_phone_recording() {
    // 8 kHz µ-law from a real phone line: "I'd like to speak to customer support".
    let pcm = speech("audio/telephone/speak-to-customer-support_mulaw8k.wav");
    let menu = phrases(&[
        "customer support",
        "speak to an agent",
        "billing",
        "goodbye",
    ]);
    let heard = sphinx()
        .transcribe(&pcm, &with_grammar(menu))
        .expect("decode");
    println!("sphinx phrase list on the phone recording: {heard:?}");
    // The expected phrase is spotted in what the open search heard, which is kept whole.
    assert!(heard.text.contains("customer support"), "{heard:?}");

    let open = sphinx()
        .transcribe(&pcm, &english())
        .expect("decode with LM");
    println!("sphinx general LM on the phone recording: {open:?}");
    assert!(!open.text.is_empty(), "the LM heard nothing at all");
}

#[test]
fn sphinx_tells_yes_from_no_on_synthesized_speech() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let yes_no = phrases(&["yes", "no"]);
    for word in ["yes", "no"] {
        let pcm = espeak(dir.path(), word)?;
        let heard = sphinx().transcribe(&pcm, &with_grammar(yes_no.clone()))?;
        println!("sphinx yes/no grammar on espeak-ng {word:?}: {heard:?}");
        assert_eq!(heard.text, word);
    }
    Ok(())
}

#[test]
fn sphinx_names_words_missing_from_its_dictionary() {
    let err = sphinx()
        .transcribe(
            &[0; 16_000],
            &with_grammar(phrases(&["billing", "zorblaxq"])),
        )
        .expect_err("an unknown word must be refused");
    assert!(matches!(err, AsrError::Grammar(_)), "{err:?}");
    assert!(err.to_string().contains("zorblaxq"), "{err}");
    assert!(!err.to_string().contains("billing"), "{err}");
}

#[test]
fn sphinx_refuses_a_broken_jsgf_grammar_and_mandarin() {
    let broken = Grammar::Jsgf("#JSGF V1.0; grammar x; public <a> = ( one | ;".into());
    let err = sphinx()
        .transcribe(&[0; 16_000], &with_grammar(broken))
        .expect_err("broken JSGF");
    assert_eq!(err.code(), "asr.grammar", "{err}");
    let zh = AsrOptions {
        language: Language::Zh,
        ..english()
    };
    let err = sphinx()
        .transcribe(&[0; 16_000], &zh)
        .expect_err("Sphinx has no Mandarin model");
    assert!(
        matches!(err, AsrError::UnsupportedLanguage { .. }),
        "{err:?}"
    );
    // The recognizer still works after refusing.
    let pcm = speech("audio/en/one_two_three.wav");
    assert_eq!(
        sphinx().transcribe(&pcm, &english()).expect("decode").text,
        "one two three"
    );
}

#[test]
fn sphinx_gives_a_clear_error_for_missing_model_files() {
    let c = AsrConfig::default();
    let err = SphinxRecognizer::new(Path::new("/nonexistent/hmm"), &c.sphinx_lm, &c.sphinx_dict)
        .expect_err("missing acoustic model");
    assert!(matches!(err, AsrError::ModelMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/hmm"), "{err}");
}

// ------------------------------------------------------------------------------------------
// whisper
// ------------------------------------------------------------------------------------------

#[test]
fn whisper_runs_the_test_model_on_real_speech_with_and_without_trimming() {
    let model = shared("models/for-tests-ggml-tiny.en.bin");
    let jfk = speech("audio/en/jfk.wav");
    let three_seconds = &jfk[..3 * 16_000];
    for trim_audio_ctx in [true, false] {
        let settings = WhisperSettings {
            threads: 2,
            trim_audio_ctx,
            ..WhisperSettings::default()
        };
        let mut whisper = WhisperRecognizer::new(&model, settings).expect("the test model loads");
        assert_eq!(whisper.name(), "whisper");
        assert!(!whisper.is_multilingual());
        let heard: Recognized = whisper.transcribe(three_seconds, &english()).expect("runs");
        println!("whisper test model, trim_audio_ctx={trim_audio_ctx}: {heard:?}");
        // Half a second (padded to a second) and a phrase-list prompt run too.
        let short = whisper
            .transcribe(
                &jfk[..8_000],
                &with_grammar(phrases(&["billing", "support"])),
            )
            .expect("short audio with a prompt");
        println!("whisper test model on 0.5 s: {short:?}");
        assert_eq!(whisper.transcribe(&[], &english()).expect("empty").text, "");
    }
}

#[test]
fn whisper_english_model_refuses_mandarin() {
    let model = shared("models/for-tests-ggml-tiny.en.bin");
    let mut whisper = WhisperRecognizer::new(&model, WhisperSettings::default()).expect("loads");
    let zh = AsrOptions {
        language: Language::Zh,
        ..english()
    };
    let err = whisper
        .transcribe(&[0; 16_000], &zh)
        .expect_err(".en model");
    assert!(
        matches!(err, AsrError::UnsupportedLanguage { .. }),
        "{err:?}"
    );

    let multi = shared("models/for-tests-ggml-tiny.bin");
    let mut whisper = WhisperRecognizer::new(&multi, WhisperSettings::default()).expect("loads");
    assert!(whisper.is_multilingual());
    let zh_clip = speech(ZH_CLIP);
    whisper
        .transcribe(&zh_clip, &zh)
        .expect("the multilingual model takes zh");
}

#[test]
fn whisper_gives_clear_errors_for_missing_and_corrupt_models() -> Result<()> {
    let err = WhisperRecognizer::new(
        Path::new("models/no-such-model.bin"),
        WhisperSettings::default(),
    )
    .expect_err("missing");
    assert!(matches!(err, AsrError::ModelMissing { .. }), "{err:?}");
    assert!(
        err.to_string().contains("models/no-such-model.bin"),
        "{err}"
    );
    assert!(err.to_string().contains("hotline models fetch"), "{err}");

    let dir = tempfile::tempdir()?;
    let garbage = dir.path().join("garbage.bin");
    std::fs::write(&garbage, b"this is not a model at all, just some text")?;
    let err = WhisperRecognizer::new(&garbage, WhisperSettings::default()).expect_err("garbage");
    assert!(matches!(err, AsrError::ModelLoad { .. }), "{err:?}");
    assert!(err.to_string().contains("bad magic"), "{err}");

    let real = std::fs::read(shared("models/for-tests-ggml-tiny.en.bin"))?;
    let truncated = dir.path().join("truncated.bin");
    std::fs::write(&truncated, &real[..real.len() / 2])?;
    let err = WhisperRecognizer::new(&truncated, WhisperSettings::default()).expect_err("cut");
    assert!(err.to_string().contains("truncated"), "{err}");

    // A tensor record cut off in the middle of its data.
    let synthetic = dir.path().join("synthetic.bin");
    models::generate_synthetic(
        SyntheticSize::TinyEn,
        &shared("models/for-tests-ggml-tiny.en.bin"),
        &synthetic,
        1,
    )?;
    let whole = std::fs::read(&synthetic)?;
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, &whole[..whole.len() - 1000])?;
    let err = WhisperRecognizer::new(&cut, WhisperSettings::default()).expect_err("cut tensor");
    assert!(err.to_string().contains("truncated"), "{err}");
    Ok(())
}

#[test]
fn synthetic_tiny_en_has_the_official_layout_and_runs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out =
        models::generate_synthetic_into(SyntheticSize::TinyEn, &shared("models"), dir.path(), 42)?;
    assert_eq!(
        out.file_name().and_then(|n| n.to_str()),
        Some("synthetic-random-weights-ggml-tiny.en.bin")
    );
    let summary = models::inspect(&out)?;
    assert_eq!(summary.hparams, SyntheticSize::TinyEn.hparams());
    assert_eq!(summary.tensors, 7 + 15 * 4 + 4 + 24 * 4);
    println!(
        "synthetic tiny.en: {} bytes (official ggml-tiny.en.bin: {} bytes)",
        summary.bytes,
        SyntheticSize::TinyEn.official().bytes
    );
    // The same tensors and types as the official f16 file; only the vocabulary block can
    // differ, and by little.
    let official = SyntheticSize::TinyEn.official().bytes as i64;
    assert!(
        (summary.bytes as i64 - official).abs() < 64 * 1024,
        "{} vs {official}",
        summary.bytes
    );

    // The same seed gives the same file.
    let again = dir.path().join("again.bin");
    models::generate_synthetic(
        SyntheticSize::TinyEn,
        &shared("models/for-tests-ggml-tiny.en.bin"),
        &again,
        42,
    )?;
    assert_eq!(models::sha256_file(&out)?, models::sha256_file(&again)?);

    let mut whisper = WhisperRecognizer::new(&out, WhisperSettings::default())?;
    let jfk = speech("audio/en/jfk.wav");
    let heard = whisper.transcribe(&jfk[..2 * 16_000], &english())?;
    println!(
        "synthetic tiny.en on 2 s of jfk.wav: {} tokens, {heard:?}",
        whisper.last_token_count()
    );
    // Random weights decode tokens (the weightless test model decodes none): the decoder
    // really ran over real-sized tensors.
    assert!(whisper.last_token_count() > 0);
    Ok(())
}

#[test]
fn synthetic_generator_refuses_a_test_model_with_the_wrong_vocabulary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = models::generate_synthetic(
        SyntheticSize::Tiny,
        &shared("models/for-tests-ggml-tiny.en.bin"),
        &dir.path().join("x.bin"),
        1,
    )
    .expect_err("an English-only vocabulary for a multilingual model");
    assert!(err.to_string().contains("for-tests-ggml-tiny.bin"), "{err}");
}

// ------------------------------------------------------------------------------------------
// The pool
// ------------------------------------------------------------------------------------------

/// A recognizer that panics, to check that the pool survives an engine failure.
struct PanickingRecognizer;

impl Recognizer for PanickingRecognizer {
    fn name(&self) -> &'static str {
        "panicking"
    }
    fn transcribe(&mut self, pcm: &[i16], _: &AsrOptions) -> Result<Recognized, AsrError> {
        if pcm.len() == 1 {
            panic!("engine blew up");
        }
        Ok(Recognized {
            text: format!("{} samples", pcm.len()),
            confidence: None,
        })
    }
}

#[tokio::test]
async fn pool_runs_sphinx_jobs_and_survives_a_panicking_engine() -> Result<()> {
    let pool = AsrPool::new(&sphinx_config())?;
    assert_eq!(pool.engine_name(), "sphinx");
    let pcm = speech("audio/en/one_two_three.wav");
    let dropped = pool.submit(AsrJob {
        pcm: pcm.clone(),
        opts: english(),
    });
    drop(dropped);
    let out = pool
        .submit(AsrJob {
            pcm,
            opts: english(),
        })
        .await??;
    assert_eq!(out.text, "one two three");
    assert_eq!(out.engine, "sphinx");
    println!(
        "pool: sphinx decoded one_two_three.wav in {:?}",
        out.compute
    );

    let pool = AsrPool::from_recognizers(vec![Box::new(PanickingRecognizer)]);
    let err = pool
        .submit(AsrJob {
            pcm: vec![0],
            opts: english(),
        })
        .await?
        .expect_err("the panic becomes an error");
    assert_eq!(err.code(), "asr.panicked");
    assert!(err.to_string().contains("engine blew up"), "{err}");
    let after = pool
        .submit(AsrJob {
            pcm: vec![0; 5],
            opts: english(),
        })
        .await??;
    assert_eq!(after.text, "5 samples");
    Ok(())
}

#[tokio::test]
async fn pool_without_workers_answers_with_an_error() -> Result<()> {
    let pool = AsrPool::from_recognizers(Vec::new());
    assert_eq!(pool.engine_name(), "none");
    let err = pool
        .submit(AsrJob {
            pcm: vec![0; 10],
            opts: english(),
        })
        .await?
        .expect_err("none");
    assert_eq!(err.code(), "asr.no_worker");
    Ok(())
}

#[test]
fn pool_engine_choice_follows_the_config() {
    // auto without a model file falls back to Sphinx; whisper without one is an error.
    let auto = AsrConfig {
        model: PathBuf::from("models/absent.bin"),
        ..AsrConfig::default()
    };
    assert_eq!(
        hotline::asr::pool::resolve_engine(&auto),
        AsrEngineKind::Sphinx
    );
    let with_model = AsrConfig {
        model: shared("models/for-tests-ggml-tiny.en.bin"),
        ..AsrConfig::default()
    };
    assert_eq!(
        hotline::asr::pool::resolve_engine(&with_model),
        AsrEngineKind::Whisper
    );
    let whisper = AsrConfig {
        engine: AsrEngineKind::Whisper,
        ..auto
    };
    let err = AsrPool::new(&whisper).expect_err("no model");
    assert_eq!(err.code(), "asr.model_missing");
    let pool = AsrPool::new(&AsrConfig {
        workers: 2,
        ..with_model
    })
    .expect("two whisper workers");
    assert_eq!(pool.engine_name(), "whisper");
}

// ------------------------------------------------------------------------------------------
// Model download and checks
// ------------------------------------------------------------------------------------------

/// Serves one HTTP response on a loopback port and returns its URL.
fn serve_once(status: &'static str, body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{addr}/ggml-test.bin")
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn download_verifies_the_checksum_and_renames_into_place() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let body_file = dir.path().join("body");
    std::fs::write(&body_file, &body)?;
    let info = ModelInfo {
        file: "ggml-test.bin",
        bytes: body.len() as u64,
        sha256: leak(models::sha256_file(&body_file)?),
    };
    let models_dir = dir.path().join("models");
    let path = models::download_from(&serve_once("200 OK", body.clone()), &info, &models_dir)?;
    assert_eq!(path, models_dir.join("ggml-test.bin"));
    assert_eq!(std::fs::read(&path)?, body);
    assert!(!models_dir.join("ggml-test.bin.part").exists());
    Ok(())
}

#[test]
fn download_deletes_a_part_file_whose_checksum_does_not_match() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let info = ModelInfo {
        file: "ggml-bad.bin",
        bytes: 5,
        sha256: models::list()[0].sha256,
    };
    let err = models::download_from(&serve_once("200 OK", b"hello".to_vec()), &info, dir.path())
        .expect_err("wrong checksum");
    assert!(
        matches!(err, ModelError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("deleted"), "{err}");
    assert!(!dir.path().join("ggml-bad.bin.part").exists());
    assert!(!dir.path().join("ggml-bad.bin").exists());
    Ok(())
}

#[test]
fn download_reports_http_errors_and_unreachable_hosts_clearly() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let info = models::list()[0];
    let err = models::download_from(&serve_once("404 Not Found", Vec::new()), &info, dir.path())
        .expect_err("404");
    assert!(
        matches!(err, ModelError::Http { status: 404, .. }),
        "{err:?}"
    );

    // A port nobody listens on: bind one, note it, close it.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let err = models::download_from(&format!("http://127.0.0.1:{port}/m.bin"), &info, dir.path())
        .expect_err("refused");
    let message = err.to_string();
    println!("{message}");
    assert!(
        message.starts_with(&format!("cannot reach 127.0.0.1:{port}")),
        "{message}"
    );
    assert!(
        message.contains("runs offline with the Sphinx recognizer"),
        "{message}"
    );
    assert!(message.contains("models/README.md"), "{message}");

    let err = models::download("ggml-huge-v9.bin", dir.path()).expect_err("unknown");
    assert!(err.to_string().contains("ggml-base.en-q5_1.bin"), "{err}");
    Ok(())
}

#[test]
fn verify_checks_size_and_checksum_of_official_files() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let fake = dir.path().join("ggml-tiny.en-q5_1.bin");
    std::fs::write(&fake, b"not the model")?;
    let err = models::verify(&fake).expect_err("wrong size");
    assert!(matches!(err, ModelError::SizeMismatch { .. }), "{err:?}");
    let unknown = dir.path().join("my-model.bin");
    std::fs::write(&unknown, b"x")?;
    assert!(matches!(
        models::verify(&unknown),
        Err(ModelError::UnknownModel { .. })
    ));
    Ok(())
}

/// Reaches the real model server: downloads the smallest model when online (32 MB), and
/// otherwise must explain that hotline runs offline. `cargo test --test asr -- --ignored`.
#[test]
#[ignore = "uses the network when there is one"]
fn download_from_huggingface_or_explain_offline() -> Result<()> {
    let dir = tempfile::tempdir()?;
    match models::download("ggml-tiny.en-q5_1.bin", dir.path()) {
        Ok(path) => {
            models::verify(&path)?;
            println!("downloaded and verified {}", path.display());
        }
        Err(err) => {
            println!("{err}");
            assert!(matches!(err, ModelError::Unreachable { .. }), "{err:?}");
            assert!(
                err.to_string().starts_with("cannot reach huggingface.co: "),
                "{err}"
            );
            assert!(!dir.path().join("ggml-tiny.en-q5_1.bin.part").exists());
        }
    }
    Ok(())
}
