//! The voice activity detector on real recordings: speech frames score high, digital silence
//! and low noise score low.
//!
//! Speech regions come from the recordings themselves (frames well above the recording's noise
//! floor); silence is padding the test adds around them (digital zeros and a low hiss), so the
//! truth is known without hand labels.

mod common;

use hotline::audio::vad::Vad;
use hotline::audio::wav::read_wav_mono_16k;
use hotline::audio::{frames_of, rms, FRAME_SAMPLES};

use common::shared::shared_dir;

fn load(relative: &str) -> Vec<i16> {
    let path = shared_dir().join("audio").join(relative);
    read_wav_mono_16k(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Low white noise (about -60 dBFS), from a fixed seed.
fn hiss(samples: usize, amplitude: i32) -> Vec<i16> {
    let mut state: u32 = 0x1234_5678;
    (0..samples)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            ((state % (2 * amplitude as u32 + 1)) as i32 - amplitude) as i16
        })
        .collect()
}

/// Scores each 20 ms frame with a fresh detector.
fn scores(samples: &[i16]) -> Vec<f32> {
    let mut vad = Vad::new();
    frames_of(samples).map(|frame| vad.score(&frame)).collect()
}

fn fraction_over(scores: &[f32], threshold: f32) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    scores.iter().filter(|&&s| s > threshold).count() as f64 / scores.len() as f64
}

/// Pads `speech` with 2 s of digital silence and 2 s of hiss on each side; returns the scores
/// of the padding (leaving out 300 ms after the speech, where the detector may hang over) and
/// of the loud frames of the speech.
fn speech_and_padding_scores(speech: &[i16]) -> (Vec<f32>, Vec<f32>) {
    let second = 16_000;
    let mut signal = vec![0i16; 2 * second];
    signal.extend(hiss(2 * second, 30));
    let speech_start = signal.len();
    signal.extend_from_slice(speech);
    let speech_end = signal.len();
    signal.extend(hiss(2 * second, 30));
    signal.extend(vec![0i16; 2 * second]);

    let all = scores(&signal);
    let start_frame = speech_start / FRAME_SAMPLES;
    let end_frame = speech_end.div_ceil(FRAME_SAMPLES);
    let hangover_frames = 15;
    let padding: Vec<f32> = all[..start_frame]
        .iter()
        .chain(all[(end_frame + hangover_frames).min(all.len())..].iter())
        .copied()
        .collect();
    // Loud frames: more than 20 dB above the recording's quietest tenth.
    let levels: Vec<f32> = speech.chunks(FRAME_SAMPLES).map(rms).collect();
    let mut sorted = levels.clone();
    sorted.sort_by(f32::total_cmp);
    let floor = sorted[sorted.len() / 10].max(10.0);
    let loud: Vec<f32> = levels
        .iter()
        .enumerate()
        .filter(|(_, &level)| level > floor * 10.0)
        .filter_map(|(i, _)| all.get(start_frame + i).copied())
        .collect();
    assert!(
        loud.len() > 50,
        "too few loud frames to judge ({})",
        loud.len()
    );
    (loud, padding)
}

#[test]
fn jfk_speech_scores_high_and_padding_low() {
    let (loud, padding) = speech_and_padding_scores(&load("en/jfk.wav"));
    let speech_hits = fraction_over(&loud, 0.5);
    let false_alarms = fraction_over(&padding, 0.5);
    eprintln!(
        "jfk: {:.1}% of loud speech frames over 0.5, {:.1}% of padding",
        100.0 * speech_hits,
        100.0 * false_alarms
    );
    assert!(
        speech_hits > 0.8,
        "only {:.1}% of speech frames scored over 0.5",
        100.0 * speech_hits
    );
    assert!(
        false_alarms < 0.02,
        "{:.1}% of silent frames scored over 0.5",
        100.0 * false_alarms
    );
}

#[test]
fn mandarin_speech_scores_high_and_padding_low() {
    let (loud, padding) = speech_and_padding_scores(&load("zh/aishell-BAC009S0724W0121.wav"));
    let speech_hits = fraction_over(&loud, 0.5);
    let false_alarms = fraction_over(&padding, 0.5);
    eprintln!(
        "aishell: {:.1}% of loud speech frames over 0.5, {:.1}% of padding",
        100.0 * speech_hits,
        100.0 * false_alarms
    );
    assert!(
        speech_hits > 0.8,
        "only {:.1}% of speech frames scored over 0.5",
        100.0 * speech_hits
    );
    assert!(
        false_alarms < 0.02,
        "{:.1}% of silent frames scored over 0.5",
        100.0 * false_alarms
    );
}

/// The 60 s recording with pauses: loud frames are mostly speech, and the quiet stretches
/// between utterances mostly are not.
#[test]
fn long_recording_separates_speech_from_pauses() {
    let samples = load("long/silero_vad_test_60s.wav");
    let all = scores(&samples);
    let levels: Vec<f32> = samples.chunks(FRAME_SAMPLES).map(rms).collect();
    let mut sorted = levels.clone();
    sorted.sort_by(f32::total_cmp);
    let floor = sorted[sorted.len() / 20].max(10.0);
    // Quiet: within 6 dB of the floor, and in a run of at least 300 ms (a pause, not a stop
    // consonant).
    let quiet_frame: Vec<bool> = levels.iter().map(|&l| l < floor * 2.0).collect();
    let mut in_pause = vec![false; levels.len()];
    let mut run_start = 0;
    for i in 0..=levels.len() {
        if i == levels.len() || !quiet_frame[i] {
            if i - run_start >= 15 {
                // Leave out the first 200 ms of each pause (hangover after speech).
                in_pause[run_start + 10..i]
                    .iter_mut()
                    .for_each(|p| *p = true);
            }
            run_start = i + 1;
        }
    }
    let pause: Vec<f32> = all
        .iter()
        .zip(&in_pause)
        .filter(|(_, &p)| p)
        .map(|(&s, _)| s)
        .collect();
    let loud: Vec<f32> = all
        .iter()
        .zip(&levels)
        .filter(|(_, &l)| l > floor * 30.0)
        .map(|(&s, _)| s)
        .collect();
    let speech_hits = fraction_over(&loud, 0.5);
    let false_alarms = fraction_over(&pause, 0.5);
    eprintln!(
        "60 s recording: {} loud frames, {:.1}% over 0.5; {} pause frames, {:.1}% over 0.5",
        loud.len(),
        100.0 * speech_hits,
        pause.len(),
        100.0 * false_alarms
    );
    assert!(
        loud.len() > 500 && pause.len() > 100,
        "the recording should have both speech and pauses"
    );
    assert!(
        speech_hits > 0.8,
        "only {:.1}% of loud frames scored over 0.5",
        100.0 * speech_hits
    );
    assert!(
        false_alarms < 0.1,
        "{:.1}% of pause frames scored over 0.5",
        100.0 * false_alarms
    );
}

#[test]
fn reset_forgets_the_previous_stream() {
    let speech = load("en/jfk.wav");
    let mut vad = Vad::new();
    let fresh: Vec<f32> = frames_of(&speech[..16_000])
        .map(|f| vad.score(&f))
        .collect();
    vad.reset();
    let again: Vec<f32> = frames_of(&speech[..16_000])
        .map(|f| vad.score(&f))
        .collect();
    assert_eq!(fresh, again, "a reset detector scores like a new one");
}
