//! Whisper log-mel features for Smart Turn: 8 s of 16 kHz PCM in, an `[80, 800]` matrix out.
//!
//! Owns the feature extraction only (sans-IO: no files, clocks or threads). It matches
//! pipecat 1.14's `_whisper_features.compute_whisper_log_mel_features(do_normalize=True)`
//! after `truncate_audio_to_last_n_seconds(8)`, step by step:
//! 1. keep the last 8 s (128 000 samples), zero-padding at the *front* when shorter;
//! 2. i16 / 32768, then zero-mean unit-variance over the whole padded window (eps 1e-7);
//! 3. reflect-pad 200 samples each side, 801 frames of 400 (hop 160), periodic Hann,
//!    real FFT, power;
//! 4. Slaney mel filters (80 bands, the ones `models::mel_filters_slaney` computes), floor 1e-10,
//!    log10, drop the last frame, clamp to (max - 8), then (x + 4) / 4.
//!
//! Invariants: the output always has [`N_MELS`] × [`N_FRAMES`] values, mel-major (row `m`
//! holds band `m` for every frame), as the model's `input_features` `[1, 80, 800]` wants;
//! every value is finite and lies in `[max - 2, max]` with `max <= ~1.5` for real audio.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// The sample rate the model hears.
pub const SAMPLE_RATE_HZ: u32 = 16_000;
/// The window the model sees: the last 8 s.
pub const WINDOW_SAMPLES: usize = 8 * SAMPLE_RATE_HZ as usize;
/// Mel bands.
pub const N_MELS: usize = 80;
/// Feature frames (10 ms each) in the window.
pub const N_FRAMES: usize = 800;
/// FFT size (25 ms).
const N_FFT: usize = 400;
/// Hop between frames (10 ms).
const HOP_SAMPLES: usize = 160;
/// Frequency bins of the real FFT.
const N_BINS: usize = N_FFT / 2 + 1;
/// Floor of the mel power before the log.
const MEL_FLOOR: f64 = 1e-10;
/// Added to the variance before normalizing.
const NORM_VARIANCE_EPS: f64 = 1e-7;

/// Computes Smart Turn's input features; holds the FFT plan, the window, the mel filters and
/// scratch buffers, so one extractor serves any number of calls without allocating much.
pub struct LogMelExtractor {
    fft: Arc<dyn RealToComplex<f64>>,
    hann: Vec<f64>,
    /// `[N_MELS][N_BINS]`, row-major.
    filters: Vec<f64>,
    frame: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl Default for LogMelExtractor {
    fn default() -> Self {
        Self::new()
    }
}

impl LogMelExtractor {
    /// Plans the FFT and computes the window and mel filters.
    pub fn new() -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        // np.hanning(N + 1)[:-1]: the periodic Hann window (torch.hann_window).
        let hann = (0..N_FFT)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos())
            .collect();
        let filters = crate::models::mel_filters_slaney(N_MELS)
            .into_iter()
            .map(f64::from)
            .collect();
        let frame = fft.make_input_vec();
        let spectrum = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        Self {
            fft,
            hann,
            filters,
            frame,
            spectrum,
            scratch,
        }
    }

    /// The features of the last 8 s of `pcm_16k` (front-padded with silence when shorter):
    /// [`N_MELS`] × [`N_FRAMES`] values, mel-major.
    pub fn compute(&mut self, pcm_16k: &[i16]) -> Vec<f32> {
        let window = normalized_window(pcm_16k);
        let padded = reflect_pad(&window, N_FFT / 2);
        let n_frames = (padded.len() - N_FFT) / HOP_SAMPLES + 1; // 801
        let mut log_mel = vec![0f64; N_MELS * N_FRAMES];
        let mut power = [0f64; N_BINS];
        // The reference drops the last of the 801 frames.
        for t in 0..n_frames.min(N_FRAMES) {
            let start = t * HOP_SAMPLES;
            for (i, slot) in self.frame.iter_mut().enumerate() {
                *slot = padded[start + i] * self.hann[i];
            }
            self.fft
                .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
                .expect("the buffers come from the plan, so their lengths match");
            for (p, c) in power.iter_mut().zip(&self.spectrum) {
                *p = c.norm_sqr();
            }
            for m in 0..N_MELS {
                let row = &self.filters[m * N_BINS..(m + 1) * N_BINS];
                let mel: f64 = row.iter().zip(&power).map(|(w, p)| w * p).sum();
                log_mel[m * N_FRAMES + t] = mel.max(MEL_FLOOR).log10();
            }
        }
        let max = log_mel.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        log_mel
            .into_iter()
            .map(|v| ((v.max(max - 8.0) + 4.0) / 4.0) as f32)
            .collect()
    }
}

/// The last [`WINDOW_SAMPLES`] of `pcm` (front-padded with zeros), scaled to [-1, 1) and
/// normalized to zero mean and unit variance, in f32 as the reference does.
fn normalized_window(pcm: &[i16]) -> Vec<f32> {
    let tail = &pcm[pcm.len().saturating_sub(WINDOW_SAMPLES)..];
    let mut window = vec![0f32; WINDOW_SAMPLES - tail.len()];
    window.extend(tail.iter().map(|&s| f32::from(s) / 32768.0));
    let n = window.len() as f64;
    let mean = window.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = window
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / n;
    let (mean, scale) = (mean as f32, (var + NORM_VARIANCE_EPS).sqrt() as f32);
    for x in &mut window {
        *x = (*x - mean) / scale;
    }
    window
}

/// numpy's `np.pad(x, (pad, pad), mode="reflect")` (the edge sample is not repeated).
fn reflect_pad(x: &[f32], pad: usize) -> Vec<f64> {
    let n = x.len();
    let mut out = Vec::with_capacity(n + 2 * pad);
    out.extend((1..=pad).rev().map(|k| f64::from(x[k])));
    out.extend(x.iter().map(|&v| f64::from(v)));
    out.extend((0..pad).map(|k| f64::from(x[n - 2 - k])));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq_hz: f64, samples: usize, amplitude: f64) -> Vec<i16> {
        (0..samples)
            .map(|n| {
                let t = n as f64 / f64::from(SAMPLE_RATE_HZ);
                (amplitude * (2.0 * std::f64::consts::PI * freq_hz * t).sin()) as i16
            })
            .collect()
    }

    fn band_mean(features: &[f32], mel: usize, frames: std::ops::Range<usize>) -> f32 {
        let row = &features[mel * N_FRAMES..(mel + 1) * N_FRAMES];
        let n = frames.len() as f32;
        row[frames].iter().sum::<f32>() / n
    }

    #[test]
    fn silence_gives_the_floor_everywhere() {
        let features = LogMelExtractor::new().compute(&[]);
        assert_eq!(features.len(), N_MELS * N_FRAMES);
        // All zeros: every mel power is floored to 1e-10, so log10 = -10, (-10 + 4) / 4 = -1.5.
        for v in &features {
            assert!((v + 1.5).abs() < 1e-6, "{v}");
        }
    }

    #[test]
    fn a_tone_peaks_in_its_band_and_stays_in_range() {
        let features = LogMelExtractor::new().compute(&tone(1000.0, WINDOW_SAMPLES, 8000.0));
        assert_eq!(features.len(), N_MELS * N_FRAMES);
        let max = features.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let min = features.iter().copied().fold(f32::INFINITY, f32::min);
        assert!(features.iter().all(|v| v.is_finite()));
        assert!(max < 2.0 && max > 0.0, "max {max}");
        assert!(
            min >= max - 2.0 - 1e-6,
            "the clamp keeps 8 decades: {min} .. {max}"
        );
        // 1 kHz is 15 Slaney mels; the 82 band edges are 0.55 mel apart up to 8 kHz, so the
        // band centred nearest 1 kHz is 26.
        let peak = (0..N_MELS)
            .max_by(|&a, &b| {
                band_mean(&features, a, 100..700).total_cmp(&band_mean(&features, b, 100..700))
            })
            .expect("80 bands");
        assert!((25..=27).contains(&peak), "peak band {peak}");
    }

    #[test]
    fn short_audio_is_padded_at_the_front() {
        // 2 s of tone: the last 200 frames hear it, the first 600 are (normalized) silence.
        let features = LogMelExtractor::new().compute(&tone(1000.0, 2 * 16_000, 8000.0));
        let peak_band = 26;
        let early = band_mean(&features, peak_band, 10..590);
        let late = band_mean(&features, peak_band, 610..790);
        assert!(
            late > early + 1.0,
            "tone at the end: early {early}, late {late}"
        );
        // Longer audio keeps only its last 8 s: 10 s of silence then 2 s of tone looks the same.
        let mut long = vec![0i16; 10 * 16_000];
        long.extend(tone(1000.0, 2 * 16_000, 8000.0));
        let again = LogMelExtractor::new().compute(&long);
        let diff = features
            .iter()
            .zip(&again)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-6, "{diff}");
    }

    #[test]
    fn reflect_padding_matches_numpy() {
        let x = [1.0f32, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(
            reflect_pad(&x, 2),
            vec![3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 5.0, 4.0, 3.0]
        );
    }
}
