//! End of turn: a fixed silence against the learned model (Smart Turn v3.2), as false cut-offs
//! against mean wait, in the style of eot-bench. Every figure comes from the real
//! `CallSession` fed the shared recordings frame by frame on a virtual clock; the model's
//! answers come from the real model, delivered after the compute they took.
//!
//! Each recording is one caller turn. It is played twice: as recorded, and with a hesitation
//! (the speech cut in the middle of its voiced span, 800 ms of silence, then the rest, as a
//! caller who stops to think). A *false cut-off* is a turn ended before the caller's last word
//! (a `speech_end` before the end of the voice); the *wait* is the time from the caller's last
//! voiced frame to the end of the turn. Both at 16 kHz and after an 8 kHz G.711 round trip
//! (a phone caller; the model is known to lose accuracy there).
//!
//! The words' verdict (`session.end_on_words`, [`hotline::turn::words`]) needs the speculative
//! final's text: those rows run trained whisper (`tiny.en-q8_0`, the English default) on every
//! speculative final the session asks for, and deliver its text after the compute it took. They
//! cover the English recordings, beside the fixed silence on the same ones.
//!
//! `cargo bench --bench end_of_turn` (release). Needs `hotline models fetch smart-turn` and
//! `hotline models fetch tiny.en-q8_0`; without them only the fixed silences are measured. A
//! figure here is never a test assertion.

mod common;

use std::time::{Duration, Instant};

use common::{shared_dir, through_g711};
use hotline::asr::score::read_index;
use hotline::asr::whisper::{WhisperRecognizer, WhisperSettings};
use hotline::asr::{AsrOptions, Recognized, Recognizer};
use hotline::audio::vad::Vad;
use hotline::audio::wav::read_wav_mono_16k;
use hotline::audio::{frames_of, FRAME_DURATION};
use hotline::config::SessionConfig;
use hotline::language::Language;
use hotline::session::{CallSession, EventKind, SessionOutput, TurnId};
use hotline::turn::TurnService;

/// The recognizer that gives the words (the English default).
const WORDS_MODEL: &str = "tiny.en-q8_0";

/// The hesitation put in the middle of each recording.
const HESITATION_MS: usize = 800;

/// One caller turn: its audio, where its voice ends (in samples), and its language.
struct Turn {
    pcm: Vec<i16>,
    voice_end: usize,
    language: Language,
}

/// The voiced frames of `pcm`, as the session's VAD hears them.
fn voiced(pcm: &[i16]) -> Vec<bool> {
    let mut vad = Vad::new();
    frames_of(pcm).map(|f| vad.score(&f) >= 0.5).collect()
}

/// The shared single-turn recordings, each as recorded and with a hesitation.
fn turns() -> (Vec<Turn>, Vec<Turn>) {
    let shared = shared_dir();
    let samples = read_index(&shared.join("audio/index.tsv")).expect("read the shared index");
    let roots = ["en", "dialog", "zh", "hifitts"].map(|p| shared.join("audio").join(p));
    let (mut whole, mut hesitant) = (Vec::new(), Vec::new());
    for s in samples
        .iter()
        .filter(|s| roots.iter().any(|r| s.path.starts_with(r)))
    {
        let Ok(pcm) = read_wav_mono_16k(&s.path) else {
            continue;
        };
        let v = voiced(&pcm);
        let (Some(first), Some(last)) = (v.iter().position(|&x| x), v.iter().rposition(|&x| x))
        else {
            continue;
        };
        if last - first < 50 {
            continue;
        }
        let voice_end = (last + 1) * 320;
        let half = first + (last - first) / 2;
        let cut = (half..last.saturating_sub(5))
            .find(|&i| v[i.saturating_sub(5)..=i + 5].iter().all(|&x| x))
            .unwrap_or(half)
            * 320;
        let mut with_pause = pcm[..cut].to_vec();
        with_pause.extend(std::iter::repeat_n(0, HESITATION_MS * 16));
        with_pause.extend_from_slice(&pcm[cut..]);
        hesitant.push(Turn {
            pcm: with_pause,
            voice_end: voice_end + HESITATION_MS * 16,
            language: s.language,
        });
        whole.push(Turn {
            pcm,
            voice_end,
            language: s.language,
        });
    }
    (whole, hesitant)
}

/// How one turn ended: whether it was cut before the caller's last word, and the wait after it.
struct Outcome {
    cut_off: bool,
    wait: Duration,
}

/// An answer on its way to the session: the model's, or a speculative final's text.
enum Answer {
    Model(TurnId, f32),
    Words(TurnId, Duration, Recognized),
}

/// Plays `turn` (then 2 s of silence) into a session; the model and the recognizer, if any,
/// answer each question after the compute it took.
fn play(
    turn: &Turn,
    config: &SessionConfig,
    model: Option<&TurnService>,
    mut asr: Option<&mut WhisperRecognizer>,
) -> Outcome {
    let mut session = CallSession::new(config.clone(), turn.language);
    session.use_turn_model(model.is_some());
    let voice_end = Duration::from_millis(turn.voice_end as u64 / 16);
    let mut pending: Vec<(Duration, Answer)> = Vec::new();
    let mut ends = Vec::new();
    let mut pcm = turn.pcm.clone();
    pcm.extend(std::iter::repeat_n(0, 32_000));
    let mut now = Duration::ZERO;
    for frame in frames_of(&pcm) {
        let (due, later): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(at, _)| *at <= now);
        pending = later;
        for (_, answer) in due {
            match answer {
                Answer::Model(t, p) => session.handle_turn_prediction(t, p, now),
                Answer::Words(t, last_voice, heard) => {
                    session.handle_speculative_transcript(t, last_voice, Some(&heard), now)
                }
            }
        }
        session.handle_audio(&frame, now);
        while let Some(out) = session.poll_output() {
            match out {
                SessionOutput::PredictTurnEnd { turn, pcm } => {
                    if let Some(model) = model {
                        let p = model
                            .submit(pcm)
                            .blocking_recv()
                            .expect("the model answers")
                            .expect("the model runs");
                        pending.push((now + p.compute, Answer::Model(turn, p.probability)));
                    }
                }
                SessionOutput::Recognize {
                    turn,
                    pcm,
                    speculative: Some(last_voice),
                    grammar,
                    language,
                    ..
                } => {
                    if let Some(asr) = asr.as_deref_mut() {
                        let started = Instant::now();
                        let options = AsrOptions {
                            language,
                            grammar,
                            is_final: true,
                        };
                        let heard = asr.transcribe(&pcm, &options).expect("whisper runs");
                        pending.push((
                            now + started.elapsed(),
                            Answer::Words(turn, last_voice, heard),
                        ));
                    }
                }
                SessionOutput::Event(e) if matches!(e.kind, EventKind::SpeechEnd { .. }) => {
                    ends.push(Duration::from_millis(e.t_ms));
                }
                _ => {}
            }
        }
        now += FRAME_DURATION;
    }
    let cut_off = ends.iter().any(|&t| t < voice_end);
    let last = ends.last().copied().unwrap_or(now);
    Outcome {
        cut_off,
        wait: last.saturating_sub(voice_end),
    }
}

fn report(label: &str, policy: &str, outcomes: &[Outcome]) {
    let cut = outcomes.iter().filter(|o| o.cut_off).count();
    let mean_ms =
        outcomes.iter().map(|o| o.wait.as_secs_f64()).sum::<f64>() * 1e3 / outcomes.len() as f64;
    println!(
        "| {label:<22} | {policy:<30} | {:>5.1} % ({cut}/{}) | {mean_ms:>6.0} ms |",
        100.0 * cut as f64 / outcomes.len() as f64,
        outcomes.len()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this target without it,
    // and the model over every recording (a minute of compute) is not a test.
    if !std::env::args().any(|a| a == "--bench") {
        println!("end_of_turn: a measurement; run it with `cargo bench --bench end_of_turn`");
        return;
    }
    let (whole, hesitant) = turns();
    let model = match TurnService::from_cache() {
        Ok(m) => Some(m),
        Err(e) => {
            println!(
                "Smart Turn not measured ({e}); `hotline models fetch smart-turn` installs it"
            );
            None
        }
    };
    let mut whisper = match hotline::models::resolve(WORDS_MODEL) {
        Ok(path) if path.is_file() => {
            Some(WhisperRecognizer::new(&path, WhisperSettings::default()).expect("whisper loads"))
        }
        _ => {
            println!(
                "the words not measured: `hotline models fetch {WORDS_MODEL}` installs whisper"
            );
            None
        }
    };
    println!(
        "{} recordings; each as recorded and with an {HESITATION_MS} ms hesitation mid-sentence",
        whole.len()
    );
    println!("| audio | end of turn | false cut-offs | mean wait |");
    println!("|---|---|---|---|");
    for (rate, g711) in [("16 kHz", false), ("8 kHz G.711", true)] {
        let prepare = |turns: &[Turn]| -> Vec<Turn> {
            turns
                .iter()
                .map(|t| Turn {
                    pcm: if g711 {
                        through_g711(&t.pcm)
                    } else {
                        t.pcm.clone()
                    },
                    voice_end: t.voice_end,
                    language: t.language,
                })
                .collect()
        };
        let (whole, hesitant) = (prepare(&whole), prepare(&hesitant));
        let mut all: Vec<&Turn> = whole.iter().collect();
        all.extend(hesitant.iter());
        let no_words = SessionConfig {
            end_on_words: false,
            ..SessionConfig::default()
        };
        for silence_ms in [300u64, 500, 600, 800, 1000] {
            let config = SessionConfig {
                endpoint_silence_ms: silence_ms,
                ..no_words.clone()
            };
            let outcomes: Vec<Outcome> = all.iter().map(|t| play(t, &config, None, None)).collect();
            report(rate, &format!("silence {silence_ms} ms"), &outcomes);
        }
        if let Some(whisper) = whisper.as_mut() {
            let english: Vec<&Turn> = all
                .iter()
                .copied()
                .filter(|t| t.language == Language::En)
                .collect();
            let label = format!("{rate}, English");
            let outcomes: Vec<Outcome> = english
                .iter()
                .map(|t| play(t, &no_words, None, None))
                .collect();
            report(&label, "silence 600 ms", &outcomes);
            // Side by side: the pause starting where the VAD stops calling the fading end of
            // the last word speech (`pause_below_peak_db = 0`), as before.
            let late = SessionConfig {
                pause_below_peak_db: 0.0,
                ..no_words.clone()
            };
            let outcomes: Vec<Outcome> =
                english.iter().map(|t| play(t, &late, None, None)).collect();
            report(
                &label,
                "silence 600 ms, pause from the VAD alone",
                &outcomes,
            );
            let late_words = SessionConfig {
                pause_below_peak_db: 0.0,
                ..SessionConfig::default()
            };
            let outcomes: Vec<Outcome> = english
                .iter()
                .map(|t| play(t, &late_words, None, Some(&mut *whisper)))
                .collect();
            report(
                &label,
                "words (defaults), pause from the VAD alone",
                &outcomes,
            );
            // The defaults: the speculative final 200 ms into a pause, the words' verdict on
            // it from 400 ms into the pause, 600 ms of silence otherwise, 1.5 s for a turn
            // judged unfinished; and the speculative final asked sooner, or its verdict taken
            // sooner, than that.
            let defaults = SessionConfig::default();
            for (speculative_asr_ms, words_min_silence_ms) in [
                (defaults.speculative_asr_ms, defaults.words_min_silence_ms),
                (200, 0),
                (200, 300),
                (200, 350),
                (150, 400),
            ] {
                let config = SessionConfig {
                    speculative_asr_ms,
                    words_min_silence_ms,
                    ..SessionConfig::default()
                };
                let outcomes: Vec<Outcome> = english
                    .iter()
                    .map(|t| play(t, &config, None, Some(&mut *whisper)))
                    .collect();
                report(
                    &label,
                    &format!(
                        "words at {} ms, from {} ms, else {}, max {}",
                        config.speculative_asr_ms,
                        config.words_min_silence_ms,
                        config.endpoint_silence_ms,
                        config.turn_max_silence_ms
                    ),
                    &outcomes,
                );
            }
        }
        if let Some(model) = model.as_ref() {
            for (threshold, max_ms) in [(0.5f32, 1_500u64), (0.5, 1_000), (0.7, 1_500)] {
                let config = SessionConfig {
                    turn_check_ms: 200,
                    turn_complete_threshold: threshold,
                    turn_max_silence_ms: max_ms,
                    ..no_words.clone()
                };
                let outcomes: Vec<Outcome> = all
                    .iter()
                    .map(|t| play(t, &config, Some(model), None))
                    .collect();
                report(
                    rate,
                    &format!("smart-turn p≥{threshold}, max {max_ms} ms"),
                    &outcomes,
                );
            }
        }
    }
}
