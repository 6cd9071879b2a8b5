//! whisper on trained weights, through the recognizer the server runs: accuracy on the
//! shared recordings (word error rate for English read and telephone speech, character error
//! rate for Mandarin), decoding that never runs away on trimmed audio, and flow grammars
//! longer than whisper's prompt limit.
//!
//! The thresholds are accuracy, never time. The figures behind them (and the compute each
//! policy costs) come from `cargo bench --bench asr_policy`.

mod common;

use hotline::asr::score::{evaluate, read_index, score, Sample};
use hotline::asr::whisper::{repeated_tail, WhisperRecognizer, WhisperSettings};
use hotline::asr::{AsrOptions, Grammar, Recognizer};
use hotline::audio::wav::read_wav_mono_16k;
use hotline::config::{DEFAULT_MODEL_EN, DEFAULT_MODEL_ZH};
use hotline::language::{to_simplified, Language};

use common::shared::{shared, shared_dir, trained_model};

fn corpus(prefixes: &[&str]) -> Vec<Sample> {
    let all = read_index(&shared("audio/index.tsv")).expect("read the shared index");
    let roots: Vec<_> = prefixes
        .iter()
        .map(|p| shared_dir().join("audio").join(p))
        .collect();
    all.into_iter()
        .filter(|s| roots.iter().any(|r| s.path.starts_with(r)))
        .filter(|s| !s.path.ends_with("active-call_hello_book_course_zh_16k.wav"))
        .collect()
}

use common::alone;

fn default_whisper(name: &str) -> WhisperRecognizer {
    WhisperRecognizer::new(&trained_model(name), WhisperSettings::default())
        .unwrap_or_else(|e| panic!("{name} loads: {e}"))
}

fn show(result: &hotline::asr::score::Evaluation) -> String {
    result
        .heard
        .iter()
        .map(|(p, heard, e)| format!("  {}/{} {}: {heard}\n", e.edits, e.reference, p.display()))
        .collect()
}

#[test]
fn english_read_speech_is_recognized_with_the_default_model_and_policy() {
    let _alone = alone();
    let samples = corpus(&["hifitts", "en"]);
    assert!(samples.len() >= 70, "{} clips", samples.len());
    let mut whisper = default_whisper(DEFAULT_MODEL_EN);
    let result = evaluate(&mut whisper, &samples).expect("evaluate");
    let wer = result.errors.rate();
    println!(
        "{DEFAULT_MODEL_EN}, default policy: WER {wer:.3} on {} clips",
        samples.len()
    );
    assert!(wer <= 0.12, "WER {wer:.3}\n{}", show(&result));
    // No transcript runs away into a loop.
    for (path, heard, _) in &result.heard {
        let mut ids = std::collections::HashMap::new();
        let words: Vec<i32> = hotline::asr::score::words(heard)
            .into_iter()
            .map(|w| {
                let next = ids.len() as i32;
                *ids.entry(w).or_insert(next)
            })
            .collect();
        assert!(
            repeated_tail(&words).is_none(),
            "{} looks like a loop: {heard}",
            path.display()
        );
    }
}

#[test]
fn english_phone_line_speech_is_recognized() {
    let _alone = alone();
    let samples = corpus(&["telephone"]);
    assert_eq!(samples.len(), 7);
    let mut whisper = default_whisper(DEFAULT_MODEL_EN);
    let result = evaluate(&mut whisper, &samples).expect("evaluate");
    let wer = result.errors.rate();
    println!("{DEFAULT_MODEL_EN} on 8 kHz G.711: WER {wer:.3}");
    assert!(wer <= 0.2, "WER {wer:.3}\n{}", show(&result));
}

#[test]
fn mandarin_is_recognized_in_simplified_characters() {
    let _alone = alone();
    let samples = corpus(&["zh"]);
    assert_eq!(samples.len(), 3, "{samples:?}");
    let mut whisper = default_whisper(DEFAULT_MODEL_ZH);
    assert!(whisper.is_multilingual());
    let result = evaluate(&mut whisper, &samples).expect("evaluate");
    let cer = result.errors.rate();
    println!("{DEFAULT_MODEL_ZH}: CER {cer:.3}\n{}", show(&result));
    assert!(cer <= 0.35, "CER {cer:.3}\n{}", show(&result));
    for (path, heard, _) in &result.heard {
        assert_eq!(
            &to_simplified(heard),
            heard,
            "{} came out in traditional characters",
            path.display()
        );
    }
    // The caller clip that starts with a greeting.
    let pcm = read_wav_mono_16k(&shared("audio/zh/active-call_hello_book_course_zh_16k.wav"))
        .expect("read");
    let heard = whisper
        .transcribe(
            &pcm,
            &AsrOptions {
                language: Language::Zh,
                ..AsrOptions::default()
            },
        )
        .expect("transcribe");
    assert!(heard.text.starts_with("你好"), "{:?}", heard.text);
}

/// A phrase list whose prompt is far longer than whisper allows (the demo flows' main menus
/// tokenize to over 300 tokens): it must become a prompt of whole phrases within the limit,
/// never an overflow, and still help.
#[test]
fn a_phrase_list_longer_than_whisper_allows_becomes_a_bounded_prompt() {
    let _alone = alone();
    let mut phrases: Vec<String> = (0..400)
        .map(|i| format!("account number {i} please check my balance and my bill"))
        .collect();
    phrases.push("customer support".into());
    phrases.push("speak to an agent".into());
    let grammar = Grammar::Phrases(phrases);
    let mut whisper = default_whisper(DEFAULT_MODEL_EN);
    let pcm = read_wav_mono_16k(&shared(
        "audio/telephone/speak-to-customer-support_mulaw8k.wav",
    ))
    .expect("read");
    let heard = whisper
        .transcribe(
            &pcm,
            &AsrOptions {
                grammar: Some(grammar),
                ..AsrOptions::default()
            },
        )
        .expect("a long phrase list is not an error");
    let errors = score(
        Language::En,
        "I'd like to speak to customer support",
        &heard.text,
    );
    assert!(errors.edits <= 1, "{:?}", heard.text);
}

/// The old trimmed context (cut tight to the speech) made tiny.en repeat itself on read
/// speech; the default policy never does, and a clip that loops without the guard still
/// comes back as one copy of what was said.
#[test]
fn trimmed_decoding_does_not_loop() {
    let _alone = alone();
    let samples = corpus(&["hifitts"]);
    let mut whisper = default_whisper(DEFAULT_MODEL_EN);
    let unguarded = WhisperSettings {
        runaway_retry: false,
        trim_pad_ms: 0,
        ..WhisperSettings::default()
    };
    let guarded = whisper.settings().clone();
    let mut looped = 0;
    for sample in &samples {
        let pcm = read_wav_mono_16k(&sample.path).expect("read");
        whisper.set_settings(unguarded.clone());
        let raw = whisper
            .transcribe(&pcm, &AsrOptions::default())
            .expect("transcribe");
        let raw_tokens = whisper.last_token_count();
        whisper.set_settings(guarded.clone());
        let heard = whisper
            .transcribe(&pcm, &AsrOptions::default())
            .expect("transcribe");
        let max = hotline::asr::whisper::max_tokens_for(pcm.len().max(16_000));
        assert!(
            whisper.last_token_count() < max,
            "{}: the guarded decode filled its budget: {:?}",
            sample.path.display(),
            heard.text
        );
        if raw_tokens >= max {
            looped += 1;
            let errors = score(Language::En, &sample.transcript, &heard.text);
            assert!(
                errors.rate() <= 0.5,
                "{}: {:?} (unguarded: {:?})",
                sample.path.display(),
                heard.text,
                raw.text
            );
        }
    }
    println!(
        "{looped} of {} clips ran away without the guard",
        samples.len()
    );
}
