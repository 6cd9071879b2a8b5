//! The caller's recorded turns, ready to send: every WAV in a folder, read with the project's
//! WAV reader, mixed to mono, resampled to 8 kHz with the media layer's resampler, cut into
//! 20 ms frames and µ-law encoded with the media layer's G.711.
//!
//! Owns the voiced-frame decision the latency figures rest on: a frame is voiced when its RMS
//! is within [`VOICED_BELOW_PEAK_DB`] of the loudest frame of the file (and above an absolute
//! floor, so a silent file has no voice). Leading and trailing silence in a WAV are therefore
//! not voice, and the turn's voice ends with its last voiced frame.
//! Invariants: files are taken in natural name order (`Turn-3` before `Turn-11`); every turn
//! has at least one voiced frame (a silent file is an error that names it); every frame holds
//! exactly [`FRAME_SAMPLES_8K`] samples (the last one is padded with silence).

use std::path::{Path, PathBuf};

use crate::audio::g711::{ulaw_encode, ulaw_encode_slice};
use crate::audio::resample::resample;
use crate::audio::wav::read_wav;

use super::BenchError;

/// The line rate: G.711 narrowband.
pub const LINE_RATE_HZ: u32 = 8_000;
/// Samples in one 20 ms packet at [`LINE_RATE_HZ`].
pub const FRAME_SAMPLES_8K: usize = 160;
/// How far below the file's loudest frame a frame still counts as voice.
pub const VOICED_BELOW_PEAK_DB: f32 = 30.0;
/// Below this RMS (in sample units) a frame is never voice.
pub const VOICED_FLOOR_RMS: f32 = 50.0;

/// One µ-law packet payload: 20 ms at 8 kHz.
pub type UlawFrame = [u8; FRAME_SAMPLES_8K];

/// The payload of a silent packet (µ-law of 0).
pub fn silent_frame() -> UlawFrame {
    [ulaw_encode(0); FRAME_SAMPLES_8K]
}

/// One recorded caller turn.
#[derive(Debug, Clone)]
pub struct CallerTurn {
    /// The WAV's file name.
    pub name: String,
    /// The turn as packet payloads, 20 ms each.
    pub frames: Vec<UlawFrame>,
    /// The first voiced frame (the caller's onset).
    pub first_voiced: usize,
    /// The last voiced frame (the end of the caller's voice).
    pub last_voiced: usize,
}

impl CallerTurn {
    /// Builds a turn from 8 kHz mono samples; `None` when no frame is voiced.
    pub fn from_samples(name: &str, samples: &[i16]) -> Option<Self> {
        let chunks: Vec<&[i16]> = samples.chunks(FRAME_SAMPLES_8K).collect();
        let levels: Vec<f32> = chunks.iter().map(|c| crate::audio::rms(c)).collect();
        let (first_voiced, last_voiced) = voiced_span(&levels)?;
        let frames = chunks
            .iter()
            .map(|chunk| {
                let mut frame = silent_frame();
                let encoded = ulaw_encode_slice(chunk);
                frame[..encoded.len()].copy_from_slice(&encoded);
                frame
            })
            .collect();
        Some(Self {
            name: name.to_string(),
            frames,
            first_voiced,
            last_voiced,
        })
    }

    /// How long the turn plays.
    pub fn duration_ms(&self) -> u64 {
        self.frames.len() as u64 * 20
    }
}

/// The first and last voiced frame, given each frame's RMS; `None` when none is voiced.
pub fn voiced_span(levels: &[f32]) -> Option<(usize, usize)> {
    let peak = levels.iter().copied().fold(0.0f32, f32::max);
    let threshold = (peak * 10f32.powf(-VOICED_BELOW_PEAK_DB / 20.0)).max(VOICED_FLOOR_RMS);
    let voiced = |level: &f32| *level >= threshold;
    let first = levels.iter().position(voiced)?;
    let last = levels.iter().rposition(voiced)?;
    Some((first, last))
}

/// Orders names with their digit runs compared as numbers (`Turn-3` before `Turn-11`).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn pieces(text: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = text.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &text[start..i]));
                start = i;
            }
        }
        out
    }
    let (pa, pb) = (pieces(a), pieces(b));
    for ((digits_a, x), (digits_b, y)) in pa.iter().zip(&pb) {
        let order = if *digits_a && *digits_b {
            let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        } else {
            x.cmp(y)
        };
        if order.is_ne() {
            return order;
        }
    }
    pa.len().cmp(&pb.len()).then_with(|| a.cmp(b))
}

/// The `.wav` files in `dir`, in natural name order.
pub fn wav_files(dir: &Path) -> Result<Vec<PathBuf>, BenchError> {
    let entries = std::fs::read_dir(dir).map_err(|source| BenchError::Io {
        what: format!("reading the turns folder {}", dir.display()),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
        })
        .collect();
    files.sort_by(|a, b| {
        let name = |p: &PathBuf| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        natural_cmp(&name(a), &name(b))
    });
    Ok(files)
}

/// Reads every WAV in `dir` as a caller turn.
pub fn load_turns(dir: &Path) -> Result<Vec<CallerTurn>, BenchError> {
    let files = wav_files(dir)?;
    if files.is_empty() {
        return Err(BenchError::NoTurns {
            dir: dir.display().to_string(),
        });
    }
    files.iter().map(|path| load_turn(path)).collect()
}

/// Reads one WAV as a caller turn at 8 kHz.
pub fn load_turn(path: &Path) -> Result<CallerTurn, BenchError> {
    let pcm = read_wav(path)?;
    let mono = pcm.to_mono();
    let samples = resample(&mono, pcm.sample_rate_hz, LINE_RATE_HZ).map_err(|source| {
        BenchError::Resample {
            path: path.display().to_string(),
            source,
        }
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    CallerTurn::from_samples(&name, &samples).ok_or_else(|| BenchError::SilentTurn {
        path: path.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_and_leading_silence_are_not_voice() {
        let levels = [0.0, 3.0, 900.0, 2_000.0, 40.0, 1_500.0, 20.0, 0.0];
        // 2000 × -30 dB ≈ 63: the 40 in the middle is below it but lies inside the span.
        assert_eq!(voiced_span(&levels), Some((2, 5)));
    }

    #[test]
    fn quiet_noise_is_never_voice() {
        assert_eq!(voiced_span(&[10.0, 30.0, 45.0]), None);
        assert_eq!(voiced_span(&[]), None);
    }

    #[test]
    fn frames_are_whole_packets() {
        let mut samples = vec![0i16; 160 * 2];
        samples.extend((0..200).map(|i| if i % 2 == 0 { 8_000 } else { -8_000 }));
        let turn = CallerTurn::from_samples("t.wav", &samples).expect("voiced");
        assert_eq!(turn.frames.len(), 4);
        assert_eq!((turn.first_voiced, turn.last_voiced), (2, 3));
        // The last frame is padded with µ-law silence.
        assert_eq!(turn.frames[3][40..], silent_frame()[40..]);
        assert_eq!(turn.frames[0], silent_frame());
        assert_eq!(turn.duration_ms(), 80);
    }

    #[test]
    fn names_sort_naturally() {
        let mut names = vec![
            "Turn-11.wav",
            "Turn-3.wav",
            "Turn-1.wav",
            "a.wav",
            "Turn-03b.wav",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "Turn-1.wav",
                "Turn-3.wav",
                "Turn-03b.wav",
                "Turn-11.wav",
                "a.wav"
            ]
        );
    }
}
