//! The VAD choice: earshot (what hotline runs, `hotline::audio::vad::Vad`) against whisper.cpp's
//! Silero v6.2 (`whisper_rs::WhisperVadContext`) on the shared recordings.
//!
//! Prints, per file and overall: frame-level agreement on 20 ms frames (raw decisions at
//! probability 0.5, and after the same hangover smoothing for both), the share of speech each
//! one finds, and speed as a multiple of real time. Run with `--nocapture` to see the table,
//! and in release (`cargo test --release --test vad_choice -- --nocapture`) for meaningful
//! speeds. The assertions guard agreement and detection, never timings.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hotline::audio::vad::Vad;
use hotline::audio::{frames_of, FRAME_SAMPLES, SAMPLE_RATE_HZ};
use whisper_rs::{WhisperVadContext, WhisperVadContextParams};

use common::shared::shared_dir;

/// Speech when the probability is at least this (the session's default threshold).
const THRESHOLD: f32 = 0.5;
/// Smoothing: speech starts after this many voiced frames in a row (100 ms) …
const START_FRAMES: usize = 5;
/// … and ends after this many unvoiced frames in a row (300 ms).
const END_FRAMES: usize = 15;

/// earshot's decision per 20 ms frame, and the time it took.
fn earshot_frames(pcm: &[i16]) -> (Vec<bool>, Duration) {
    let mut vad = Vad::new();
    let started = Instant::now();
    let decisions = frames_of(pcm)
        .map(|frame| vad.score(&frame) >= THRESHOLD)
        .collect();
    (decisions, started.elapsed())
}

/// Silero's decision per 20 ms frame (the probability of the Silero window holding the
/// frame's centre), and the time it took.
fn silero_frames(ctx: &mut WhisperVadContext, pcm: &[i16]) -> (Vec<bool>, Duration) {
    let samples: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
    let started = Instant::now();
    ctx.detect_speech(&samples).expect("Silero runs");
    let elapsed = started.elapsed();
    let probs = ctx.probabilities();
    assert!(!probs.is_empty(), "Silero gave no probabilities");
    let window = pcm.len().div_ceil(probs.len()).max(1);
    let frames = pcm.len().div_ceil(FRAME_SAMPLES);
    let decisions = (0..frames)
        .map(|i| {
            let centre = i * FRAME_SAMPLES + FRAME_SAMPLES / 2;
            probs[(centre / window).min(probs.len() - 1)] >= THRESHOLD
        })
        .collect();
    (decisions, elapsed)
}

/// Hangover smoothing: speech after [`START_FRAMES`] voiced frames, silence after
/// [`END_FRAMES`] unvoiced ones (applied the same way to both detectors).
fn smooth(raw: &[bool]) -> Vec<bool> {
    let mut out = vec![false; raw.len()];
    let mut speaking = false;
    let mut run = 0usize;
    for (i, &voiced) in raw.iter().enumerate() {
        if voiced != speaking {
            run += 1;
            let needed = if speaking { END_FRAMES } else { START_FRAMES };
            if run >= needed {
                speaking = voiced;
                // The frames that made the switch belong to the new state.
                for o in &mut out[i + 1 - run..=i] {
                    *o = speaking;
                }
                run = 0;
                continue;
            }
        } else {
            run = 0;
        }
        out[i] = speaking;
    }
    out
}

fn segments(mask: &[bool]) -> usize {
    mask.windows(2).filter(|w| !w[0] && w[1]).count() + usize::from(mask.first() == Some(&true))
}

fn agreement(a: &[bool], b: &[bool]) -> (usize, usize) {
    let n = a.len().min(b.len());
    (a.iter().zip(b).filter(|(x, y)| x == y).count(), n)
}

fn share(mask: &[bool]) -> f64 {
    mask.iter().filter(|&&v| v).count() as f64 / mask.len().max(1) as f64
}

#[test]
fn earshot_and_silero_agree_on_the_shared_recordings() {
    let shared = shared_dir();
    let mut files = vec![shared.join("audio/long/silero_vad_test_60s.wav")];
    let mut english: Vec<PathBuf> = std::fs::read_dir(shared.join("audio/en"))
        .expect("audio/en")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    english.sort();
    files.extend(english);

    // whisper.cpp's own log lines go to `tracing` (silent here) instead of stderr.
    whisper_rs::install_logging_hooks();
    let model = shared.join("models/for-tests-silero-v6.2.0-ggml.bin");
    let mut params = WhisperVadContextParams::new();
    params.set_n_threads(1);
    let load_started = Instant::now();
    let mut silero = WhisperVadContext::new(model.to_str().expect("UTF-8 path"), params)
        .expect("whisper.cpp loads the Silero model");
    let silero_load = load_started.elapsed();

    let mut totals = Totals::default();
    println!(
        "{:<40} {:>6} {:>8} {:>8} {:>7} {:>7} {:>5} {:>5}",
        "file", "sec", "raw agr", "smo agr", "ear sp", "sil sp", "e seg", "s seg"
    );
    for path in &files {
        let pcm = hotline::audio::wav::read_wav_mono_16k(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let seconds = pcm.len() as f64 / f64::from(SAMPLE_RATE_HZ);
        let (ear, ear_time) = earshot_frames(&pcm);
        let (sil, sil_time) = silero_frames(&mut silero, &pcm);
        let (raw_same, n) = agreement(&ear, &sil);
        let (ear_s, sil_s) = (smooth(&ear), smooth(&sil));
        let (smooth_same, _) = agreement(&ear_s, &sil_s);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        println!(
            "{:<40} {:>6.1} {:>7.1}% {:>7.1}% {:>6.0}% {:>6.0}% {:>5} {:>5}",
            name,
            seconds,
            100.0 * raw_same as f64 / n as f64,
            100.0 * smooth_same as f64 / n as f64,
            100.0 * share(&ear),
            100.0 * share(&sil),
            segments(&ear_s),
            segments(&sil_s)
        );
        // Both hear speech in every recording.
        assert!(
            share(&ear_s) > 0.2,
            "{name}: earshot found almost no speech"
        );
        assert!(share(&sil_s) > 0.2, "{name}: Silero found almost no speech");
        totals.add(seconds, raw_same, smooth_same, n, ear_time, sil_time);
    }
    let raw = totals.raw_same as f64 / totals.frames as f64;
    let smoothed = totals.smooth_same as f64 / totals.frames as f64;
    println!(
        "overall: {:.1} s of audio, {} frames; raw agreement {:.1}%, smoothed {:.1}%",
        totals.seconds,
        totals.frames,
        100.0 * raw,
        100.0 * smoothed
    );
    println!(
        "speed: earshot {:.0}× real time ({:?}), Silero via whisper.cpp {:.0}× real time ({:?}, \
         plus {:?} to load)",
        totals.seconds / totals.earshot.as_secs_f64(),
        totals.earshot,
        totals.seconds / totals.silero.as_secs_f64(),
        totals.silero,
        silero_load
    );
    // Regression guards on agreement (measured well above these; see the report figures).
    assert!(
        raw > 0.75,
        "raw frame agreement fell to {:.1}%",
        100.0 * raw
    );
    assert!(
        smoothed > 0.80,
        "smoothed frame agreement fell to {:.1}%",
        100.0 * smoothed
    );
}

#[derive(Default)]
struct Totals {
    seconds: f64,
    raw_same: usize,
    smooth_same: usize,
    frames: usize,
    earshot: Duration,
    silero: Duration,
}

impl Totals {
    fn add(&mut self, seconds: f64, raw: usize, smooth: usize, n: usize, e: Duration, s: Duration) {
        self.seconds += seconds;
        self.raw_same += raw;
        self.smooth_same += smooth;
        self.frames += n;
        self.earshot += e;
        self.silero += s;
    }
}

#[test]
fn smoothing_needs_runs_to_switch() {
    let f = false;
    let t = true;
    // Four voiced frames are not enough; five are.
    assert!(smooth(&[t, t, t, t, f, f]).iter().all(|v| !v));
    let s = smooth(&[t, t, t, t, t, f, f]);
    assert_eq!(&s[..5], &[t; 5]);
    assert_eq!(segments(&s), 1);
}
