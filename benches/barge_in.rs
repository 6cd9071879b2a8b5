//! Barge-in on a phone line with echo, on the real `CallSession` and virtual time: how often
//! the bot's own echo stops it (false barge-ins), and how soon a caller talking over the echo
//! does (frames from the caller's first voiced frame to the bot's last frame).
//!
//! The bot says one shared recording (scaled to a telephone level); the line sends its frames
//! back `delay` late and `attenuation` down; in the second half of the grid a caller (another
//! recording, at the same level) starts talking 1.5 s into the reply. Delays 50–250 ms,
//! attenuations 6–30 dB, as the turn-taking issue asks; with and without the echo gate.
//!
//! `cargo bench --bench barge_in` (`HOTLINE_BENCH_VERBOSE=1` names every false barge-in). A
//! figure here is never a test assertion.

mod common;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::shared_dir;
use hotline::audio::vad::Vad;
use hotline::audio::wav::read_wav_mono_16k;
use hotline::audio::{Frame, FRAME_DURATION};
use hotline::config::SessionConfig;
use hotline::dialogue::{BotTurn, Prompt};
use hotline::language::Language;
use hotline::session::{CallSession, EventKind, SessionOutput, TurnId};

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

/// One reply over an echoing line. Returns whether the bot was stopped, and, with a caller,
/// the frames the bot played after the caller's first voiced frame.
fn run(
    config: &SessionConfig,
    bot: &[i16],
    delay_ms: usize,
    atten_db: f32,
    caller: Option<&[i16]>,
) -> (bool, Option<usize>) {
    let mut s = CallSession::new(config.clone(), Language::En);
    s.handle_bot_turn(
        TurnId(0),
        BotTurn {
            say: vec![Prompt::text("reply")],
            ..BotTurn::default()
        },
        Duration::ZERO,
    );
    s.handle_bot_audio(TurnId(0), bot, "reply", true, Duration::ZERO);
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
    let voices: Vec<Vec<i16>> = names
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .filter_map(|p| at_level(p, 2_500.0))
        .filter(|v| v.len() > 16_000 * 2)
        .collect();
    println!("{} recordings as bot replies and callers", voices.len());
    for (label, margin) in [("echo gate on (6 dB)", 6.0f32), ("echo gate off", 0.0)] {
        let config = SessionConfig {
            echo_margin_db: margin,
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
                            println!("  false barge-in: reply {k}, echo {delay} ms, {atten} dB");
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
