//! The audio core: 20 ms frames of 16 kHz mono i16 inside the pipeline; codecs, resampling
//! and WAV files live at the edges. The codecs and the resampler are `hotline-media`'s, shared
//! with both transports; [`g711`] and [`resample`] re-export them under their old paths.
//!
//! Invariant: every [`Frame`] holds exactly [`FRAME_SAMPLES`] samples at [`SAMPLE_RATE_HZ`].

pub mod g711;
pub mod resample;
pub mod vad;
pub mod wav;

/// The pipeline's sample rate.
pub const SAMPLE_RATE_HZ: u32 = 16_000;
/// The pipeline's frame duration.
pub const FRAME_MS: u32 = 20;
/// Samples in one frame (20 ms at 16 kHz).
pub const FRAME_SAMPLES: usize = (SAMPLE_RATE_HZ * FRAME_MS / 1000) as usize;
/// One frame as a [`std::time::Duration`].
pub const FRAME_DURATION: std::time::Duration = std::time::Duration::from_millis(FRAME_MS as u64);

/// One 20 ms frame of 16 kHz mono PCM.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    samples: [i16; FRAME_SAMPLES],
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame(rms={:.0})", self.rms())
    }
}

impl Default for Frame {
    fn default() -> Self {
        Self::silence()
    }
}

impl Frame {
    /// A frame of digital silence.
    pub const fn silence() -> Self {
        Self {
            samples: [0; FRAME_SAMPLES],
        }
    }

    /// Builds a frame from up to [`FRAME_SAMPLES`] samples; a short slice is padded with silence
    /// and a long one is cut.
    pub fn from_slice(samples: &[i16]) -> Self {
        let mut frame = Self::silence();
        let n = samples.len().min(FRAME_SAMPLES);
        frame.samples[..n].copy_from_slice(&samples[..n]);
        frame
    }

    /// The samples.
    pub fn samples(&self) -> &[i16; FRAME_SAMPLES] {
        &self.samples
    }

    /// The samples, mutable.
    pub fn samples_mut(&mut self) -> &mut [i16; FRAME_SAMPLES] {
        &mut self.samples
    }

    /// Root-mean-square level, in sample units (0..=32768).
    pub fn rms(&self) -> f32 {
        rms(&self.samples)
    }
}

/// Root-mean-square level of a slice, in sample units.
pub fn rms(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| (s as f64) * (s as f64)).sum();
    (sum / samples.len() as f64).sqrt() as f32
}

/// The level of a slice in dB below full scale (RMS; 0 dBFS is a full-scale square wave),
/// rounded to a tenth; `None` for no samples or digital silence.
pub fn level_dbfs(samples: &[i16]) -> Option<f32> {
    let r = rms(samples);
    (r > 0.0).then(|| (20.0 * (r / 32768.0).log10() * 10.0).round() / 10.0)
}

/// Splits 16 kHz mono PCM into frames; the last one is padded with silence.
pub fn frames_of(samples: &[i16]) -> impl Iterator<Item = Frame> + '_ {
    samples.chunks(FRAME_SAMPLES).map(Frame::from_slice)
}
