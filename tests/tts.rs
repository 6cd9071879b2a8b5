//! Speech synthesis with the real espeak-ng 1.52: English and Mandarin speech, Mandarin read as
//! Hanzi (not tone digits), sentence streaming, the cache, and recorded prompt files.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use hotline::audio::wav::read_wav_mono_16k;
use hotline::audio::{rms, SAMPLE_RATE_HZ};
use hotline::config::TtsConfig;
use hotline::dialogue::Prompt;
use hotline::language::Language;
use hotline::tts::{
    split_sentences, EspeakSynthesizer, Synthesizer, TtsChunk, TtsError, TtsService,
};

/// Long enough for any synthesis here; only a guard against a hung test.
const GUARD: Duration = Duration::from_secs(120);

fn config() -> TtsConfig {
    TtsConfig {
        prompts_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/prompts"),
        ..TtsConfig::default()
    }
}

fn seconds(pcm: &[i16]) -> f64 {
    pcm.len() as f64 / SAMPLE_RATE_HZ as f64
}

/// Collects a whole reply.
async fn collect(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Result<TtsChunk, TtsError>>,
) -> Vec<Result<TtsChunk, TtsError>> {
    let mut items = Vec::new();
    loop {
        match tokio::time::timeout(GUARD, rx.recv())
            .await
            .expect("speech stream stalled")
        {
            Some(item) => items.push(item),
            None => return items,
        }
    }
}

fn speech_of(items: &[Result<TtsChunk, TtsError>]) -> Vec<i16> {
    items
        .iter()
        .flat_map(|i| i.as_ref().map(|c| c.pcm.clone()).unwrap_or_default())
        .collect()
}

#[test]
fn uses_the_vendored_espeak_data() {
    let dir = EspeakSynthesizer::data_dir().unwrap_or_else(|e| panic!("{e}"));
    if std::env::var_os("HOTLINE_ESPEAK_DATA").is_none() {
        assert!(
            dir.to_string_lossy().contains("espeak-rs-sys"),
            "expected espeak-rs-sys's compiled data, got {}",
            dir.display()
        );
    }
    assert!(
        dir.join("cmn_dict").is_file(),
        "{} lacks the Mandarin dictionary",
        dir.display()
    );
    assert_eq!(
        EspeakSynthesizer::native_sample_rate_hz().expect("rate"),
        22_050
    );
}

#[tokio::test]
async fn english_reply_is_speech_of_plausible_length() {
    let tts = TtsService::new(&config()).unwrap_or_else(|e| panic!("{e}"));
    let items = collect(tts.speak(
        vec![Prompt::text(
            "Thank you for calling. How can I help you today?",
        )],
        Language::En,
    ))
    .await;
    assert_eq!(items.len(), 2, "two sentences, two chunks");
    let pcm = speech_of(&items);
    let duration = seconds(&pcm);
    assert!(
        (1.5..8.0).contains(&duration),
        "{duration:.2} s for two short sentences"
    );
    assert!(
        rms(&pcm) > 500.0,
        "rms {:.0}: expected audible speech",
        rms(&pcm)
    );
}

#[tokio::test]
async fn mandarin_reply_is_speech_of_plausible_length() {
    let tts = TtsService::new(&config()).unwrap_or_else(|e| panic!("{e}"));
    let items = collect(tts.speak(vec![Prompt::text("你好，欢迎致电")], Language::Zh)).await;
    assert_eq!(items.len(), 1);
    let pcm = speech_of(&items);
    let duration = seconds(&pcm);
    assert!(
        duration > 0.5 && duration < 5.0,
        "你好，欢迎致电 lasted {duration:.2} s"
    );
    assert!(
        rms(&pcm) > 500.0,
        "rms {:.0}: expected audible speech",
        rms(&pcm)
    );
}

/// Debian's espeak-ng 1.51 says "ni three hao three" for 你好. 1.52 must read the Hanzi with
/// Mandarin phonemes: no switch to English, no English digit words, and a much shorter clip.
#[test]
fn mandarin_is_read_as_hanzi_not_tone_digits() {
    let espeak = EspeakSynthesizer::new(&config()).unwrap_or_else(|e| panic!("{e}"));
    let zh = espeak.phonemes("你好", Language::Zh).expect("phonemes");
    let digits: Vec<String> = ["three", "two", "one", "four", "five"]
        .iter()
        .map(|w| espeak.phonemes(w, Language::En).expect("phonemes"))
        .collect();
    eprintln!("你好 -> {zh:?}; English digits -> {digits:?}");
    assert!(!zh.is_empty(), "no phonemes for 你好");
    assert!(
        !zh.contains("(en)"),
        "espeak switched to English for 你好: {zh}"
    );
    for digit in &digits {
        assert!(
            !zh.contains(digit.as_str()),
            "你好 contains the English digit {digit:?}: {zh}"
        );
    }
    // Mandarin syllables carry tone numbers in espeak's mnemonics (n'i35, X'Au214).
    assert!(
        zh.chars().any(|c| c.is_ascii_digit()),
        "no tone marks in {zh}"
    );

    let mut espeak = espeak;
    let nihao = espeak.synthesize("你好", Language::Zh).expect("你好");
    let digits_read = espeak
        .synthesize("ni three hao three", Language::En)
        .expect("English");
    let (a, b) = (seconds(&nihao), seconds(&digits_read));
    eprintln!("你好: {a:.2} s; \"ni three hao three\": {b:.2} s");
    assert!(
        b > 1.5 * a,
        "你好 ({a:.2} s) is as long as the tone-digit reading ({b:.2} s)"
    );
}

/// Wraps the real engine and holds every sentence after the first until the test opens the
/// gate, to show that the first chunk is delivered before the second is synthesized.
struct GatedEspeak {
    inner: EspeakSynthesizer,
    calls: Arc<AtomicUsize>,
    gate: Arc<Mutex<std_mpsc::Receiver<()>>>,
}

impl Synthesizer for GatedEspeak {
    fn name(&self) -> &'static str {
        "espeak-ng-gated"
    }
    fn synthesize(&mut self, text: &str, language: Language) -> Result<Vec<i16>, TtsError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= 1 {
            let gate = self.gate.lock().expect("gate");
            gate.recv_timeout(GUARD)
                .expect("the test never opened the gate");
        }
        self.inner.synthesize(text, language)
    }
}

#[tokio::test]
async fn first_sentence_streams_before_the_rest_is_synthesized() {
    let sentences = [
        "Your order has shipped.",
        "It will arrive on Monday.",
        "Is there anything else?",
    ];
    let reply = sentences.join(" ");
    assert_eq!(split_sentences(&reply), sentences);

    let mut alone = EspeakSynthesizer::new(&config()).unwrap_or_else(|e| panic!("{e}"));
    let first_alone = alone
        .synthesize(sentences[0], Language::En)
        .expect("first sentence");

    let calls = Arc::new(AtomicUsize::new(0));
    let (open, gate) = std_mpsc::channel();
    let gated = GatedEspeak {
        inner: alone.clone(),
        calls: Arc::clone(&calls),
        gate: Arc::new(Mutex::new(gate)),
    };
    let tts = TtsService::with_synthesizer(&config(), Box::new(gated));
    let mut rx = tts.speak(vec![Prompt::text(reply)], Language::En);

    let first = tokio::time::timeout(GUARD, rx.recv())
        .await
        .expect("first chunk")
        .expect("stream open")
        .expect("audio");
    assert!(!first.last, "the first of three chunks is not the last");
    assert!(!first.cached);
    // espeak-ng's output differs by a few samples between runs (its voice state carries
    // over), so compare durations: the first chunk is the first sentence, not all three.
    let (got, alone_s) = (seconds(&first.pcm), seconds(&first_alone));
    assert!(
        (got - alone_s).abs() < 0.1 * alone_s,
        "the first chunk lasts {got:.2} s; the first sentence alone lasts {alone_s:.2} s"
    );
    // The second sentence is still held at the gate: nothing more has been delivered.
    assert!(
        rx.try_recv().is_err(),
        "a second chunk arrived before its synthesis was allowed"
    );

    open.send(()).expect("gate");
    open.send(()).expect("gate");
    let rest = collect(rx).await;
    assert_eq!(rest.len(), 2);
    let rest: Vec<TtsChunk> = rest.into_iter().map(|r| r.expect("audio")).collect();
    assert!(
        !rest[0].last && rest[1].last,
        "only the final chunk is marked last"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(rest.iter().all(|c| seconds(&c.pcm) > 0.5));
}

#[tokio::test]
async fn repeated_sentences_come_from_the_cache() {
    let tts = TtsService::new(&config()).unwrap_or_else(|e| panic!("{e}"));
    let text = "One moment please, I am looking that up.";
    let first = collect(tts.speak(vec![Prompt::text(text)], Language::En)).await;
    let second = collect(tts.speak(vec![Prompt::text(text)], Language::En)).await;
    let (first, second) = (
        first[0].as_ref().expect("audio"),
        second[0].as_ref().expect("audio"),
    );
    assert!(
        !first.cached && second.cached,
        "first synthesized, then cached"
    );
    assert_eq!(first.pcm, second.pcm);
    assert!(first.last && second.last);
    // The same words in the other language's voice are a different entry.
    let zh = collect(tts.speak(vec![Prompt::text(text)], Language::Zh)).await;
    assert!(!zh[0].as_ref().expect("audio").cached);
    assert_eq!(tts.cached_entries(), 2);
}

#[tokio::test]
async fn recorded_prompts_play_from_files() {
    let tts = TtsService::new(&config()).unwrap_or_else(|e| panic!("{e}"));
    let hold = Prompt {
        text: "Please hold while I connect you to an agent.".into(),
        audio_file: Some("hold_en.wav".into()),
    };
    // µ-law at 8 kHz, played at 16 kHz.
    let welcome = Prompt {
        text: "您好，欢迎致电客服中心。".into(),
        audio_file: Some("welcome_zh.wav".into()),
    };
    let items = collect(tts.speak(vec![hold.clone(), welcome], Language::En)).await;
    assert_eq!(items.len(), 2);
    let dir = config().prompts_dir;
    let expected_hold = read_wav_mono_16k(&dir.join("hold_en.wav")).expect("hold_en.wav");
    let first = items[0].as_ref().expect("hold prompt");
    assert_eq!(first.pcm, expected_hold);
    assert!(!first.last && !first.cached);
    let second = items[1].as_ref().expect("welcome prompt");
    assert!(second.last);
    assert!(seconds(&second.pcm) > 2.0 && rms(&second.pcm) > 500.0);

    let again = collect(tts.speak(vec![hold], Language::En)).await;
    assert!(again[0].as_ref().expect("hold again").cached);
}

#[tokio::test]
async fn missing_or_corrupt_prompt_files_are_errors_naming_the_file_and_their_text_is_spoken() {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        tmp.path().join("corrupt.wav"),
        b"RIFF\x04\x00\x00\x00WAVEjunk",
    )
    .expect("fixture");
    let tts = TtsService::new(&TtsConfig {
        prompts_dir: tmp.path().to_path_buf(),
        ..config()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let items = collect(tts.speak(
        vec![
            Prompt {
                text: "Welcome.".into(),
                audio_file: Some("no-such-prompt.wav".into()),
            },
            Prompt {
                text: "Welcome.".into(),
                audio_file: Some("corrupt.wav".into()),
            },
            Prompt::text("Goodbye."),
        ],
        Language::En,
    ))
    .await;
    // Each unplayable file: an error naming it, then its words spoken instead.
    assert_eq!(items.len(), 5);
    let missing = items[0].as_ref().expect_err("missing file").to_string();
    assert!(missing.contains("no-such-prompt.wav"), "{missing}");
    let spoken = items[1]
        .as_ref()
        .expect("the missing prompt's text is spoken");
    assert!(seconds(&spoken.pcm) > 0.3 && rms(&spoken.pcm) > 300.0);
    let corrupt = items[2].as_ref().expect_err("corrupt file").to_string();
    assert!(corrupt.contains("corrupt.wav"), "{corrupt}");
    assert!(items[3].is_ok(), "the corrupt prompt's text is spoken");
    let goodbye = items[4]
        .as_ref()
        .expect("the text prompt after the failures still plays");
    assert!(goodbye.last && seconds(&goodbye.pcm) > 0.3);
}

#[test]
fn bad_settings_are_refused() {
    let bad_voice = TtsConfig {
        voice_en: "no-such-voice".into(),
        ..config()
    };
    let err = TtsService::new(&bad_voice)
        .expect_err("unknown voice")
        .to_string();
    assert!(err.contains("no-such-voice"), "{err}");
    let bad_rate = TtsConfig {
        rate_wpm: 5,
        ..config()
    };
    let err = TtsService::new(&bad_rate).expect_err("rate").to_string();
    assert!(err.contains("tts.rate_wpm"), "{err}");
}

#[test]
fn splits_english_and_chinese_sentences() {
    assert_eq!(
        split_sentences("Hi! Your balance is 12.50 dollars. Anything else?"),
        ["Hi!", "Your balance is 12.50 dollars.", "Anything else?"]
    );
    assert_eq!(
        split_sentences("您好。请问您要办理什么业务？谢谢！"),
        ["您好。", "请问您要办理什么业务？", "谢谢！"]
    );
}
