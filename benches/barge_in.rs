//! Barge-in on a phone line with echo, on the real `CallSession` and virtual time: how often
//! the bot's own echo stops it (false barge-ins), and how soon a caller talking over the echo
//! does (frames from the caller's first voiced frame to the bot's last frame).
//!
//! The bot says one shared recording (scaled to a telephone level); the line sends its frames
//! back `delay` late and `attenuation` down; in the second half of the grid a caller (another
//! recording, at the same level) starts talking 1.5 s into the reply. Delays 50–250 ms,
//! attenuations 6–30 dB, as the turn-taking issue asks; with the echo gate and canceller, the
//! gate alone, and neither.
//!
//! Then backchannels, stop words and short answers said over the bot while it waits on the demo
//! telecom flow's menu, on a phone line: the bot's audio goes out over G.711, the far end's
//! hybrid reflects it 12 dB down and smeared over a few taps, and it comes back over G.711
//! 120 ms late (`HOTLINE_BENCH_WORDS_LINE=digital` echoes the bot's frames themselves, `quiet`
//! has no echo: the floor echo handling can reach); with the echo canceller off and on: short clips spoken by
//! espeak-ng in three voices ("uh-huh", "okay", "I see", ...; "stop", "wait", "hold on", ...;
//! "agent", "billing", ...), heard by trained whisper (`tiny.en-q8_0`, with the menu's phrase
//! prompt; its text and confidence delivered after the compute it took). A backchannel is a false
//! barge-in when the bot stayed stopped (it did not resume its reply); a stop word or an answer
//! is missed when the bot talked on or resumed.
//!
//! `cargo bench --bench barge_in` (`HOTLINE_BENCH_VERBOSE=1` prints what whisper heard in every
//! run, and its confidence). A figure here is never a test assertion.

mod common;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::shared_dir;
use hotline::asr::whisper::{WhisperRecognizer, WhisperSettings};
use hotline::asr::{AsrOptions, Grammar, Recognized, Recognizer};
use hotline::audio::resample::StreamResampler;
use hotline::audio::vad::Vad;
use hotline::audio::wav::read_wav_mono_16k;
use hotline::audio::{Frame, FRAME_DURATION};
use hotline::config::SessionConfig;
use hotline::dialogue::{BotTurn, Prompt};
use hotline::language::Language;
use hotline::session::{CallSession, EventKind, SessionOutput, TurnId};
use hotline_media::codec::g711::G711Law;

/// A recording scaled to `rms`.
fn at_level(path: &Path, rms: f32) -> Option<Vec<i16>> {
    let pcm = read_wav_mono_16k(path).ok()?;
    let now = hotline::audio::rms(&pcm).max(1.0);
    Some(
        pcm.iter()
            .map(|&s| (f32::from(s) * rms / now).clamp(-32768.0, 32767.0) as i16)
            .collect(),
    )
}

/// A session whose bot has just started saying `bot` (one reply, whose words are `text`),
/// waiting for an answer to `expect` (the demo flow's menu, in the words runs).
fn saying(config: &SessionConfig, bot: &[i16], text: &str, expect: Option<Grammar>) -> CallSession {
    let mut s = CallSession::new(config.clone(), Language::En);
    s.handle_bot_turn(
        TurnId(0),
        BotTurn {
            say: vec![Prompt::text(text)],
            expect,
            ..BotTurn::default()
        },
        Duration::ZERO,
    );
    s.handle_bot_audio(TurnId(0), bot, text, true, Duration::ZERO);
    s
}

/// The transcripts of the shared recordings (`audio/index.tsv`), by file name.
fn transcripts() -> std::collections::HashMap<String, String> {
    let index = std::fs::read_to_string(shared_dir().join("audio/index.tsv")).unwrap_or_default();
    index
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let file = fields.next()?;
            let text = fields.nth(1)?;
            let name = file.rsplit('/').next()?;
            Some((name.to_string(), text.to_string()))
        })
        .collect()
}

/// One reply over an echoing line. Returns whether the bot was stopped, and, with a caller,
/// the frames the bot played after the caller's first voiced frame.
fn run(
    config: &SessionConfig,
    bot: &[i16],
    delay_ms: usize,
    atten_db: f32,
    caller: Option<&[i16]>,
) -> (bool, Option<usize>) {
    let mut s = saying(config, bot, "reply", None);
    let gain = 10f32.powf(-atten_db / 20.0);
    let mut line: VecDeque<i16> = std::iter::repeat_n(0, delay_ms * 16).collect();
    let voice_at = 75; // frames: 1.5 s
    let mut vad = Vad::new();
    let (mut onset, mut played_after) = (None, 0usize);
    let mut stopped = false;
    let frames = bot.len() / 320 + 25;
    for i in 0..frames {
        let now = FRAME_DURATION * i as u32;
        let mut pcm: Vec<i16> = line
            .drain(..320)
            .map(|x| (f32::from(x) * gain) as i16)
            .collect();
        if let Some(voice) = caller.filter(|_| i >= voice_at) {
            let at = (i - voice_at) * 320;
            for (k, p) in pcm.iter_mut().enumerate() {
                *p = p.saturating_add(voice.get(at + k).copied().unwrap_or(0));
            }
            let clean = Frame::from_slice(&voice[at.min(voice.len())..(at + 320).min(voice.len())]);
            if onset.is_none() && vad.score(&clean) >= 0.5 {
                onset = Some(i);
            }
        }
        let out = s.handle_audio(&Frame::from_slice(&pcm), now);
        if onset.is_some() && out.is_some() {
            played_after += 1;
        }
        line.extend(out.unwrap_or_default().samples().iter().copied());
        while let Some(o) = s.poll_output() {
            if let SessionOutput::Event(e) = o {
                if matches!(e.kind, EventKind::BotAudioEnd { reason, .. } if reason == "barge_in") {
                    stopped = true;
                }
            }
        }
    }
    (stopped, onset.map(|_| played_after))
}

/// How one reply went with words said over it.
struct Spoken {
    /// The bot was stopped by the caller's voice.
    stopped: bool,
    /// It then went on with the reply (the barge-in was judged false).
    resumed: bool,
    /// What whisper heard last, and its confidence.
    heard: String,
    confidence: Option<f32>,
}

/// The far end of a phone line, as the caller's stream brings the bot's audio back: the bot's
/// frames go out over G.711 (8 kHz μ-law), the far end's hybrid reflects them `gain` down and
/// smeared over three taps, and the reflection comes back over G.711, to be delayed by the
/// caller.
struct PhoneEcho {
    down: StreamResampler,
    up: StreamResampler,
    gain: f32,
    taps: [f32; 3],
}

impl PhoneEcho {
    fn new(gain: f32) -> Self {
        Self {
            down: StreamResampler::new(16_000, 8_000).expect("16 to 8 kHz"),
            up: StreamResampler::new(8_000, 16_000).expect("8 to 16 kHz"),
            gain,
            taps: [0.0; 3],
        }
    }

    /// The echo (16 kHz, not yet delayed) of one bot frame.
    fn reflect(&mut self, bot: &[i16]) -> Vec<i16> {
        let law = G711Law::Ulaw;
        let narrow = law.decode_slice(&law.encode_slice(&self.down.process(bot)));
        let mut hybrid = Vec::with_capacity(narrow.len());
        for x in narrow {
            self.taps = [f32::from(x), self.taps[0], self.taps[1]];
            let y = 0.8 * self.taps[0] + 0.35 * self.taps[1] - 0.15 * self.taps[2];
            hybrid.push((y * self.gain).clamp(-32768.0, 32767.0) as i16);
        }
        self.up
            .process(&law.decode_slice(&law.encode_slice(&hybrid)))
    }
}

/// The line the words are said over.
#[derive(Debug, Clone, Copy)]
enum WordsLine {
    /// No echo at all: the floor that echo handling can reach.
    Quiet,
    /// The bot's frames themselves, 120 ms late and `dB` down.
    Digital(f32),
    /// [`PhoneEcho`] at `dB`, 120 ms late.
    Phone(f32),
}

impl std::fmt::Display for WordsLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WordsLine::Quiet => write!(f, "no echo"),
            WordsLine::Digital(db) => write!(f, "echo 120 ms, {db} dB"),
            WordsLine::Phone(db) => write!(f, "G.711 line, hybrid echo 120 ms, {db} dB"),
        }
    }
}

/// One reply over a line echoing it (120 ms, 12 dB), with `clip` said over it 1.5 s in; every
/// final the session asks for is recognized by `whisper`, its text delivered after the compute.
fn run_words(
    config: &SessionConfig,
    (bot, text): (&[i16], &str),
    clip: &[i16],
    expect: &Grammar,
    whisper: &mut WhisperRecognizer,
    echo: WordsLine,
) -> Spoken {
    let mut s = saying(config, bot, text, Some(expect.clone()));
    let gain = |db: f32| 10f32.powf(-db / 20.0);
    let mut phone = match echo {
        WordsLine::Phone(db) => Some(PhoneEcho::new(gain(db))),
        _ => None,
    };
    let digital = match echo {
        WordsLine::Digital(db) => gain(db),
        _ => 0.0,
    };
    let mut line: VecDeque<i16> = std::iter::repeat_n(0, 120 * 16).collect();
    let voice_at = 75;
    let mut pending: Vec<(Duration, TurnId, Option<Duration>, Recognized)> = Vec::new();
    let mut spoken = Spoken {
        stopped: false,
        resumed: false,
        heard: String::new(),
        confidence: None,
    };
    for i in 0..(2 * bot.len() / 320 + 250) {
        let now = FRAME_DURATION * i as u32;
        let (due, later): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(at, ..)| *at <= now);
        pending = later;
        for (_, turn, speculative, heard) in due {
            match speculative {
                Some(last_voice) => {
                    s.handle_speculative_transcript(turn, last_voice, Some(&heard), now)
                }
                None => s.handle_transcript(turn, true, &heard, now),
            }
        }
        let mut pcm: Vec<i16> = line.drain(..320).collect();
        if i >= voice_at {
            let at = (i - voice_at) * 320;
            for (k, p) in pcm.iter_mut().enumerate() {
                *p = p.saturating_add(clip.get(at + k).copied().unwrap_or(0));
            }
        }
        let out = s
            .handle_audio(&Frame::from_slice(&pcm), now)
            .unwrap_or_default();
        match phone.as_mut() {
            Some(phone) => line.extend(phone.reflect(out.samples())),
            None => line.extend(
                out.samples()
                    .iter()
                    .map(|&x| (f32::from(x) * digital) as i16),
            ),
        }
        // The line started 120 ms deep, which covers the resamplers' own delay; this only guards.
        line.resize(line.len().max(320), 0);
        while let Some(o) = s.poll_output() {
            match o {
                SessionOutput::Event(e) => match e.kind {
                    EventKind::BotAudioEnd { reason, .. } if reason == "barge_in" => {
                        spoken.stopped = true
                    }
                    EventKind::BotResumed { .. } => spoken.resumed = true,
                    _ => {}
                },
                SessionOutput::Recognize {
                    turn,
                    pcm,
                    is_final: true,
                    speculative,
                    grammar,
                    language,
                } => {
                    let started = Instant::now();
                    let options = AsrOptions {
                        language,
                        grammar,
                        is_final: true,
                    };
                    let heard = whisper.transcribe(&pcm, &options).expect("whisper runs");
                    spoken.heard = heard.text.clone();
                    spoken.confidence = heard.confidence;
                    pending.push((now + started.elapsed(), turn, speculative, heard));
                }
                _ => {}
            }
        }
    }
    spoken
}

/// `text` spoken by espeak-ng (`voice`, `rate` words a minute, `pitch`), at 16 kHz and `rms`.
fn espeak(text: &str, voice: &str, rate: u32, pitch: u32, rms: f32) -> Option<Vec<i16>> {
    let wav = std::env::temp_dir().join(format!("hotline-barge-{}.wav", std::process::id()));
    let ok = std::process::Command::new("espeak-ng")
        .args([
            "-v",
            voice,
            "-s",
            &rate.to_string(),
            "-p",
            &pitch.to_string(),
            "-w",
        ])
        .arg(&wav)
        .arg(text)
        .status()
        .is_ok_and(|s| s.success());
    let pcm = ok.then(|| at_level(&wav, rms)).flatten();
    let _ = std::fs::remove_file(&wav);
    pcm
}

/// What callers say over the bot that only says "go on", and what asks it to stop.
const BACKCHANNELS: &[&str] = &[
    "uh-huh",
    "mm-hmm",
    "okay",
    "right",
    "yeah",
    "I see",
    "got it",
    "sure",
    "alright",
    "okay yeah",
];
const STOP_WORDS: &[&str] = &[
    "stop",
    "wait",
    "no",
    "hold on",
    "no that's wrong",
    "wait a second",
];
/// Short answers to the menu said over it: real interruptions, though no stop words.
const SHORT_ANSWERS: &[&str] = &[
    "agent",
    "billing",
    "password reset",
    "my bill",
    "internet outage",
    "a human please",
];

/// Backchannels, stop words and short answers over the bot's replies: false barge-ins and
/// missed interruptions.
fn words_over_the_bot(replies: &[(Vec<i16>, String)]) {
    let Some(path) = hotline::models::resolve("tiny.en-q8_0")
        .ok()
        .filter(|p| p.is_file())
    else {
        println!("backchannels not measured: `hotline models fetch tiny.en-q8_0` installs whisper");
        return;
    };
    let Some(menu) = common::menu_grammar() else {
        println!("backchannels not measured: the demo flow's menu grammar did not load");
        return;
    };
    let mut whisper =
        WhisperRecognizer::new(&path, WhisperSettings::default()).expect("whisper loads");
    let voices = [
        ("en-us", 150, 50),
        ("en-gb", 175, 40),
        ("en-us+f3", 140, 70),
    ];
    let verbose = std::env::var_os("HOTLINE_BENCH_VERBOSE").is_some();
    // The line: `HOTLINE_BENCH_WORDS_LINE=phone` (default), `digital` or `quiet`.
    let line = match std::env::var("HOTLINE_BENCH_WORDS_LINE").as_deref() {
        Ok("quiet") => WordsLine::Quiet,
        Ok("digital") => WordsLine::Digital(12.0),
        _ => WordsLine::Phone(12.0),
    };
    // Side by side: the canceller off and on, and the bot's words known to the judgement (as
    // in a call) or not (the reply is called "reply": the judgement weighs the caller's words alone).
    let default = SessionConfig::default();
    // `HOTLINE_BENCH_WORDS_DEFAULT_ONLY=1` runs the defaults alone (a quicker A/B of builds).
    let grid = [(false, true), (true, false), (true, true)];
    let default_only = std::env::var_os("HOTLINE_BENCH_WORDS_DEFAULT_ONLY").is_some();
    for (echo_cancel, bot_words) in grid
        .into_iter()
        .filter(|&(c, b)| !default_only || (c == default.echo_cancel && b))
    {
        let config = SessionConfig {
            echo_cancel,
            ..default.clone()
        };
        println!(
            "echo_cancel = {echo_cancel}, the bot's words {}:",
            if bot_words { "known" } else { "unknown" }
        );
        for (kind, words) in [
            ("backchannels", BACKCHANNELS),
            ("stop words", STOP_WORDS),
            ("short answers", SHORT_ANSWERS),
        ] {
            let backchannel = std::ptr::eq(words, BACKCHANNELS);
            let (mut runs, mut stopped, mut resumed, mut wrong) = (0, 0, 0, 0);
            for (k, (bot, reply)) in replies.iter().take(5).enumerate() {
                let reply = if bot_words { reply.as_str() } else { "reply" };
                for text in words {
                    for (voice, rate, pitch) in voices {
                        let Some(clip) = espeak(text, voice, rate, pitch, 2_500.0) else {
                            println!("espeak-ng is needed for the backchannels");
                            return;
                        };
                        let r = run_words(&config, (bot, reply), &clip, &menu, &mut whisper, line);
                        runs += 1;
                        stopped += usize::from(r.stopped);
                        resumed += usize::from(r.resumed);
                        let bad = if backchannel {
                            r.stopped && !r.resumed
                        } else {
                            !r.stopped || r.resumed
                        };
                        wrong += usize::from(bad);
                        if verbose {
                            println!(
                                "  {} {kind}: {text:?} ({voice}) over reply {k} heard as {:?}, confidence {:?}",
                                if bad { "WRONG" } else { "ok" },
                                r.heard,
                                r.confidence,
                            );
                        }
                    }
                }
            }
            let what = if backchannel {
                "false barge-ins (stopped, not resumed)"
            } else {
                "missed (talked on or resumed)"
            };
            println!(
                "{kind} over the bot ({line}): {runs} runs; bot paused {stopped}, resumed {resumed}; {what} {wrong}/{runs} ({:.1} %)",
                100.0 * wrong as f64 / runs as f64
            );
        }
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("barge_in: a measurement; run it with `cargo bench --bench barge_in`");
        return;
    }
    let dir = shared_dir().join("audio/en");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    names.sort();
    let texts = transcripts();
    let replies: Vec<(Vec<i16>, String)> = names
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            Some((
                at_level(p, 2_500.0)?,
                texts.get(&name).cloned().unwrap_or_default(),
            ))
        })
        .filter(|(v, _)| v.len() > 16_000 * 2)
        .collect();
    let voices: Vec<Vec<i16>> = replies.iter().map(|(v, _)| v.clone()).collect();
    println!("{} recordings as bot replies and callers", voices.len());
    // `HOTLINE_BENCH_MIN_SPEECH_MS=80,60` compares `barge_in_min_speech_ms` values side by side
    // (default: the configured default alone).
    let min_speech: Vec<u64> = std::env::var("HOTLINE_BENCH_MIN_SPEECH_MS")
        .ok()
        .map(|v| v.split(',').filter_map(|m| m.trim().parse().ok()).collect())
        .filter(|v: &Vec<u64>| !v.is_empty())
        .unwrap_or_else(|| vec![SessionConfig::default().barge_in_min_speech_ms]);
    let settings = [
        ("echo gate (6 dB) and canceller", 6.0f32, true),
        ("echo gate (6 dB), no canceller", 6.0, false),
        ("no echo gate", 0.0, false),
    ];
    for (label, margin, echo_cancel) in settings {
        for &min_speech_ms in &min_speech {
            let label = format!("{label}, {min_speech_ms} ms of speech");
            let config = SessionConfig {
                echo_margin_db: margin,
                echo_cancel,
                barge_in_min_speech_ms: min_speech_ms,
                ..SessionConfig::default()
            };
            let (mut false_barge, mut echo_runs) = (0, 0);
            let (mut heard, mut talk_runs, mut frames_over) = (0, 0, Vec::new());
            for (k, bot) in voices.iter().enumerate() {
                let caller = &voices[(k + 1) % voices.len()];
                for delay in [50, 120, 250] {
                    for atten in [6.0, 12.0, 20.0, 30.0] {
                        echo_runs += 1;
                        if run(&config, bot, delay, atten, None).0 {
                            false_barge += 1;
                            if std::env::var_os("HOTLINE_BENCH_VERBOSE").is_some() {
                                println!(
                                    "  false barge-in: reply {k}, echo {delay} ms, {atten} dB"
                                );
                            }
                        }
                        talk_runs += 1;
                        let (stopped, over) = run(&config, bot, delay, atten, Some(caller));
                        if stopped {
                            heard += 1;
                            frames_over.extend(over);
                        }
                    }
                }
            }
            frames_over.sort_unstable();
            let pct = |p: f64| {
                frames_over
                    .get(((frames_over.len() as f64 - 1.0) * p).round() as usize)
                    .map_or(0, |f| f * 20)
            };
            println!(
            "{label}: false barge-ins on echo {false_barge}/{echo_runs} ({:.1} %); callers heard over \
             the echo {heard}/{talk_runs}; bot audio after the caller's onset p50 {} ms, p95 {} ms, max {} ms",
            100.0 * f64::from(false_barge) / f64::from(echo_runs),
            pct(0.5),
            pct(0.95),
            pct(1.0),
        );
        }
    }
    words_over_the_bot(&replies);
}
