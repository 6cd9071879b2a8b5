//! `hotline replay` with trained whisper weights, end to end through the real binary: the
//! call record keeps every sentence of a caller who pauses between them, and spoken requests
//! (English with the demo flow's grammars, Mandarin through the zh flow) reach the right
//! intent or transfer. No panic anywhere in the logs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::records::{final_transcripts, of_type};
use common::shared::{shared, trained_model};
use hotline::asr::score::score;
use hotline::config::{DEFAULT_MODEL_EN, DEFAULT_MODEL_ZH};
use hotline::language::Language;

/// Runs `hotline replay` on whisper (never the Sphinx fallback) and returns the events and
/// the log.
fn replay(
    wavs: &[PathBuf],
    out: &Path,
    extra_config: &str,
    flow: Option<&str>,
) -> (Vec<Value>, String) {
    let _alone = common::alone();
    trained_model(DEFAULT_MODEL_EN);
    trained_model(DEFAULT_MODEL_ZH);
    let config = out.with_extension("toml");
    std::fs::write(
        &config,
        format!("[asr]\nengine = \"whisper\"\n{extra_config}"),
    )
    .expect("write config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_hotline"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("HOTLINE_CONFIG")
        .env("HOTLINE_DEMO_URL", "http://127.0.0.1:9/demo")
        .arg("--config")
        .arg(&config)
        .arg("replay")
        .args(wavs)
        .arg("--out")
        .arg(out)
        .arg("--report");
    if let Some(flow) = flow {
        command.arg("--flow").arg(flow);
    }
    let output = command.output().expect("run hotline replay");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "replay failed:\n{log}");
    assert!(!log.contains("panicked"), "a panic in the log:\n{log}");
    assert!(log.contains("ASR ready: whisper"), "whisper ran:\n{log}");
    let text = std::fs::read_to_string(out.join("events.jsonl")).expect("events.jsonl");
    let events = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    (events, log)
}

/// Writes 16 kHz mono PCM as a WAV file.
fn write_wav(path: &Path, pcm: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create wav");
    for s in pcm {
        writer.write_sample(*s).expect("write");
    }
    writer.finalize().expect("finalize");
}

fn espeak(dir: &Path, name: &str, voice: &str, text: &str) -> PathBuf {
    let wav = dir.join(format!("{name}.wav"));
    let status = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng is installed");
    assert!(status.success(), "espeak-ng failed for {text:?}");
    wav
}

/// Ten read sentences of the shared recordings with pauses of 0.3 to 0.9 s between them, as
/// one caller turn: each pause ends an utterance, and the next sentence starts before the
/// earlier final has been computed.
#[test]
fn a_caller_who_pauses_between_sentences_keeps_every_sentence() {
    let index = std::fs::read_to_string(shared("audio/index.tsv")).expect("index");
    let sentences: Vec<(String, String)> = index
        .lines()
        .filter(|l| l.starts_with("hifitts/"))
        .filter_map(|l| {
            let mut c = l.split('\t');
            let file = c.next()?;
            let transcript = c.nth(1)?;
            (transcript.split_whitespace().count() >= 5)
                .then(|| (file.to_string(), transcript.to_string()))
        })
        .take(10)
        .collect();
    assert_eq!(sentences.len(), 10);
    let pauses_ms = [300, 600, 900, 450, 750, 350, 800, 500, 650, 400];
    let mut pcm: Vec<i16> = Vec::new();
    for ((file, _), pause) in sentences.iter().zip(pauses_ms) {
        let clip = hotline::audio::wav::read_wav_mono_16k(&shared(&format!("audio/{file}")))
            .expect("read clip");
        pcm.extend_from_slice(&clip);
        pcm.extend(std::iter::repeat_n(0i16, 16 * pause));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("ten-sentences.wav");
    write_wav(&wav, &pcm);

    let (events, _) = replay(&[wav], &dir.path().join("call"), "", None);
    let heard = final_transcripts(&events).join(" ");
    let said: Vec<&str> = sentences.iter().map(|(_, t)| t.as_str()).collect();
    let errors = score(Language::En, &said.join(" "), &heard);
    println!("WER {:.3} over ten sentences: {heard}", errors.rate());
    assert!(
        errors.rate() <= 0.2,
        "WER {:.3}: heard {heard:?}",
        errors.rate()
    );
    // Every sentence is there: most of its words appear in what was heard.
    let heard_words = hotline::asr::score::words(&heard);
    for sentence in &said {
        let words = hotline::asr::score::words(sentence);
        let found = words.iter().filter(|w| heard_words.contains(w)).count();
        assert!(
            found * 4 >= words.len() * 3,
            "{sentence:?} is missing from {heard:?}"
        );
    }
}

#[test]
fn a_phone_caller_asking_for_support_is_transferred() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = shared("audio/telephone/speak-to-customer-support_mulaw8k.wav");
    let (events, _) = replay(&[wav], &dir.path().join("call"), "", Some("telecom_en"));
    let finals = final_transcripts(&events);
    assert!(
        finals
            .iter()
            .any(|t| t.to_lowercase().contains("customer support")),
        "{finals:?}"
    );
    let transfer = of_type(&events, "transfer");
    assert_eq!(transfer.len(), 1, "{events:#?}");
}

/// The telecom flow's menus send whisper their phrase lists as prompts (over 300 tokens at the
/// main menu): the order-status conversation goes through to the goodbye.
#[test]
fn order_status_by_voice_with_the_flow_grammars() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wavs: Vec<PathBuf> = [
        ("t1", "where is my order"),
        ("t2", "four seven one two three five"),
        ("t3", "yes"),
        ("t4", "no thanks"),
    ]
    .iter()
    .map(|(name, text)| espeak(dir.path(), name, "en-us", text))
    .collect();
    let (events, _) = replay(&wavs, &dir.path().join("call"), "", Some("telecom_en"));
    let intents: Vec<&str> = of_type(&events, "intent")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(intents.first(), Some(&"order_status"), "{events:#?}");
    assert!(intents.contains(&"goodbye"), "{intents:?}\n{events:#?}");
}

/// A Mandarin request through the zh flow: heard in simplified characters, the right intent,
/// a Chinese reply. The caller is hotline's own espeak-ng 1.52 (Debian's 1.51 `cmn` voice
/// reads tone digits in English).
#[test]
fn a_mandarin_request_reaches_the_zh_flow_intent() {
    use hotline::tts::Synthesizer;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut voice = hotline::tts::EspeakSynthesizer::new(&hotline::config::TtsConfig::default())
        .expect("espeak-ng starts");
    let pcm = voice
        .synthesize("我想查一下我的订单。", Language::Zh)
        .expect("synthesize");
    let wav = dir.path().join("zh1.wav");
    write_wav(&wav, &pcm);
    let (events, _) = replay(&[wav], &dir.path().join("call"), "", Some("ecommerce_zh"));
    let finals = final_transcripts(&events);
    assert!(
        finals.iter().any(|t| t.contains("订单")),
        "{finals:?}\n{events:#?}"
    );
    let intents: Vec<&str> = of_type(&events, "intent")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(intents.first(), Some(&"order_status"), "{events:#?}");
    let replies: Vec<&str> = of_type(&events, "bot_reply")
        .iter()
        .filter_map(|e| e["text"].as_str())
        .collect();
    let last = replies.last().expect("the bot answered");
    assert!(
        last.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "a Chinese reply: {replies:?}"
    );
}
