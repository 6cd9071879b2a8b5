//! Speech synthesis with the real espeak-ng 1.52: English and Mandarin speech, Mandarin read as
//! Hanzi (not tone digits), sentence streaming, the cache, recorded prompt files, and
//! cancellation on barge-in (queued sentences dropped, the sentence in synthesis aborted).

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
    split_sentences, CancelToken, EspeakSynthesizer, Speech, Synthesizer, TtsChunk, TtsError,
    TtsService,
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
async fn collect(mut rx: Speech) -> Vec<Result<TtsChunk, TtsError>> {
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
        // The data espeak-rs-sys compiled, carried in the binary and unpacked on first use.
        assert!(
            dir.starts_with(hotline::bundle::data_root()),
            "expected the built-in espeak-ng data under {}, got {}",
            hotline::bundle::data_root().display(),
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
    let tts =
        TtsService::with_synthesizer(&config(), Box::new(gated)).unwrap_or_else(|e| panic!("{e}"));
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

/// A long reply: `n` distinct sentences, so none comes from the cache.
fn long_reply(n: usize, topic: &str) -> String {
    (1..=n)
        .map(|i| {
            format!("Step {i} of the {topic} procedure takes a little while, so please stay on the line and listen carefully.")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// TTS cancellation on barge-in: the stale reply stops synthesising. The caller barges in
/// after the first chunk of a long reply; the bot cancels it and speaks a new one at once.
/// The old reply yields nothing more, its queued sentences are dropped unsynthesized (at most
/// the one in flight when it was cancelled is finished or aborted), and the new reply's audio
/// arrives in full.
#[tokio::test]
async fn tts_cancellation_on_barge_in_the_stale_reply_stops_synthesising() {
    const OLD_SENTENCES: usize = 8;
    let tts = TtsService::new(&config()).unwrap_or_else(|e| panic!("{e}"));
    let old_text = long_reply(OLD_SENTENCES, "password reset");
    assert_eq!(split_sentences(&old_text).len(), OLD_SENTENCES);
    let mut old = tts.speak(vec![Prompt::text(old_text)], Language::En);
    let first = tokio::time::timeout(GUARD, old.recv())
        .await
        .expect("first chunk")
        .expect("stream open")
        .expect("audio");
    assert!(!first.last && !first.cached && rms(&first.pcm) > 500.0);

    // Barge-in: cancel the old reply and start the new one straight away.
    old.cancel();
    let new_text = "Sure, I can transfer you now. Please hold for a moment.";
    let new_sentences = split_sentences(new_text).len();
    let new = collect(tts.speak(vec![Prompt::text(new_text)], Language::En)).await;

    assert_eq!(new.len(), new_sentences, "one chunk per new sentence");
    let new: Vec<TtsChunk> = new.into_iter().map(|r| r.expect("audio")).collect();
    assert!(new.iter().all(|c| !c.cached && rms(&c.pcm) > 500.0));
    assert!(new.last().is_some_and(|c| c.last));

    // The stale reply produced no further chunks...
    assert!(old.is_cancelled());
    assert!(
        old.recv().await.is_none(),
        "a chunk arrived after the cancel"
    );
    assert!(old.try_recv().is_err());
    // ...and its remaining sentences were never synthesized. The worker had received the
    // first chunk's receipt just before the cancel, so it may have been working on the second
    // sentence: that one is aborted, or finished and discarded. Nothing after it started.
    let stats = tts.stats();
    eprintln!("{stats:?}");
    let (old_n, new_n) = (OLD_SENTENCES as u64, new_sentences as u64);
    assert_eq!(stats.replies, 2);
    assert_eq!(stats.units_queued, old_n + new_n);
    assert_eq!(
        stats.units_started + stats.units_dropped,
        stats.units_queued
    );
    assert!(
        stats.units_dropped >= old_n - 2,
        "only {} of the old reply's queued sentences were dropped",
        stats.units_dropped
    );
    let old_started = stats.units_started - new_n;
    assert!(
        (1..=2).contains(&old_started),
        "{old_started} old sentences started"
    );
    // The old reply's second sentence, if it started, was aborted, or thrown away when it
    // finished after the cancel, or (finished just before it) sent but never delivered.
    let old_second_sent = stats.items_sent - 1 - new_n;
    assert_eq!(
        stats.sentences_aborted + stats.units_discarded + old_second_sent,
        old_started - 1
    );
    assert_eq!(
        stats.sentences_synthesized + stats.sentences_aborted,
        stats.units_started
    );
    assert!(stats.items_sent <= 2 + new_n);
}

/// Dropping the stream (a caller that hangs up, a driver that lets go) cancels as well.
#[tokio::test]
async fn dropping_a_reply_drops_its_queued_sentences() {
    const SENTENCES: usize = 6;
    let tts = TtsService::new(&config()).unwrap_or_else(|e| panic!("{e}"));
    let mut reply = tts.speak(
        vec![Prompt::text(long_reply(SENTENCES, "account recovery"))],
        Language::En,
    );
    let canceller = reply.canceller();
    tokio::time::timeout(GUARD, reply.recv())
        .await
        .expect("first chunk")
        .expect("stream open")
        .expect("audio");
    drop(reply);
    assert!(canceller.is_cancelled(), "dropping the stream cancels it");
    // A reply after it is spoken in full.
    let next = collect(tts.speak(vec![Prompt::text("Goodbye.")], Language::En)).await;
    assert!(next.len() == 1 && next[0].as_ref().is_ok_and(|c| c.last));
    let stats = tts.stats();
    eprintln!("{stats:?}");
    assert!(stats.units_dropped >= SENTENCES as u64 - 2);
    assert_eq!(
        stats.units_started + stats.units_dropped,
        stats.units_queued
    );
}

/// espeak-ng stops mid-sentence when its reply is cancelled: the synth callback returns 1 at
/// its next audio buffer. Checked on one very long sentence, cancelled once espeak has made a
/// few buffers of it; the engine then speaks the next sentence normally.
#[test]
fn espeak_aborts_a_sentence_mid_way_when_cancelled() {
    let espeak = EspeakSynthesizer::new(&config()).unwrap_or_else(|e| panic!("{e}"));
    // One sentence (no full stop until the end) of several minutes of speech.
    let long = format!(
        "{}.",
        (1..=120)
            .map(|i| format!("item {i} on the list is a reminder to check the account details"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(split_sentences(&long).len(), 1);
    let native_hz = EspeakSynthesizer::native_sample_rate_hz().expect("rate") as f64;

    let cancel = CancelToken::new();
    let worker = {
        let (espeak, cancel, long) = (espeak.clone(), cancel.clone(), long.clone());
        std::thread::spawn(move || {
            espeak.synthesize_native_cancellable(&long, Language::En, &cancel)
        })
    };
    // Wait (no timing assumption) until espeak has polled the token a few times: it is
    // producing audio for this sentence.
    while cancel.checks() < 5 && !worker.is_finished() {
        std::thread::yield_now();
    }
    assert!(cancel.cancel());
    let result = worker.join().expect("synthesis thread");
    let samples = match result {
        Err(TtsError::Cancelled { samples }) => samples,
        Err(e) => panic!("expected a cancelled synthesis, got {e}"),
        Ok(pcm) => panic!(
            "the sentence finished ({:.1} s of audio) before the cancel",
            pcm.len() as f64 / native_hz
        ),
    };
    let full = espeak
        .synthesize_native(&long, Language::En)
        .expect("the full sentence");
    eprintln!(
        "aborted after {:.2} s of {:.1} s of audio ({} polls)",
        samples as f64 / native_hz,
        full.len() as f64 / native_hz,
        cancel.checks()
    );
    assert!(samples > 0, "espeak had made audio before the cancel");
    assert!(
        samples < full.len() / 2,
        "the abort came late: {samples} of {} samples",
        full.len()
    );
    assert!(full.len() as f64 / native_hz > 60.0, "a long sentence");

    // A token cancelled before the request starts stops it before espeak runs.
    let early = CancelToken::new();
    early.cancel();
    assert!(matches!(
        espeak.synthesize_native_cancellable("Hello.", Language::En, &early),
        Err(TtsError::Cancelled { samples: 0 })
    ));
    // And espeak is left in a clean state: the next sentence is whole.
    let mut espeak = espeak;
    let after = espeak
        .synthesize("Thank you for calling.", Language::En)
        .expect("after");
    assert!(seconds(&after) > 0.8 && rms(&after) > 500.0);
}
