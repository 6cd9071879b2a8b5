//! Sample-rate conversion between the pipeline's 16 kHz and the edges' rates (8 kHz G.711,
//! 48 kHz Opus and WebAudio, 22 050 Hz espeak-ng, 24/44.1 kHz files).
//!
//! Both entry points use rubato's synchronous FFT resampler (`FftFixedInOut`): it filters in the
//! frequency domain with a windowed-sinc anti-aliasing filter and works on chunks whose sizes
//! keep the exact rational ratio, so no drift builds up over a long call.
//!
//! - [`resample`] converts a whole buffer. Its output has exactly `ceil(len × to / from)` samples
//!   and is aligned with the input (the filter delay is removed and the tail is flushed).
//! - [`StreamResampler`] converts a stream chunk by chunk with a short filter (about 10 ms per
//!   chunk, so 5 ms of delay, between 8/16/24/48 kHz; 20–40 ms chunks for 22.05/44.1 kHz, whose
//!   ratios to 16 kHz have longer periods) for the per-frame work at the transport edges. Its output
//!   lags the input by [`StreamResampler::delay_samples`] and [`StreamResampler::flush`] drains
//!   the tail.
//!
//! Invariants: `from_hz == to_hz` is an exact copy; samples are clamped, never wrapped, on the
//! way back to i16; bad rates give a [`ResampleError`], never a panic.

use rubato::{FftFixedInOut, Resampler};

/// The rates hotline meets at its edges; others work when their ratio to the target is simple
/// enough (see [`ResampleError::UnsupportedRate`]).
pub const COMMON_RATES_HZ: [u32; 6] = [8_000, 16_000, 22_050, 24_000, 44_100, 48_000];

/// Lowest accepted sample rate.
const MIN_RATE_HZ: u32 = 1_000;
/// Highest accepted sample rate.
const MAX_RATE_HZ: u32 = 384_000;
/// Largest accepted reduced ratio term (`rate / gcd(from, to)`); it sets the smallest FFT size.
const MAX_RATIO_TERM: u32 = 4_800;

/// A conversion that cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    /// A rate out of range, or a ratio whose reduced form needs enormous FFT blocks.
    #[error("cannot resample {from_hz} Hz to {to_hz} Hz: {reason}")]
    UnsupportedRate {
        from_hz: u32,
        to_hz: u32,
        reason: &'static str,
    },
    /// rubato refused the chunk (an internal invariant broke).
    #[error("resampler failed: {0}")]
    Engine(String),
}

/// Converts a whole buffer of mono samples from `from_hz` to `to_hz`.
///
/// The result has `ceil(input.len() × to_hz / from_hz)` samples, aligned with the input.
pub fn resample(input: &[i16], from_hz: u32, to_hz: u32) -> Result<Vec<i16>, ResampleError> {
    check_rates(from_hz, to_hz)?;
    if from_hz == to_hz {
        return Ok(input.to_vec());
    }
    let expected_len = output_len(input.len(), from_hz, to_hz);
    if input.is_empty() {
        return Ok(Vec::new());
    }
    // Whole buffers can afford a longer filter: about 50 ms per chunk.
    let mut engine = Engine::new(from_hz, to_hz, from_hz as usize / 20)?;
    let delay = engine.delay_samples();
    let mut out: Vec<f32> = Vec::with_capacity(expected_len + delay + engine.chunk_out);
    let mut scratch = vec![0.0f32; engine.chunk_in];
    let mut chunks = input.chunks(engine.chunk_in);
    while out.len() < delay + expected_len {
        scratch.iter_mut().for_each(|s| *s = 0.0);
        if let Some(chunk) = chunks.next() {
            for (dst, &src) in scratch.iter_mut().zip(chunk) {
                *dst = to_f32(src);
            }
        }
        engine.process_chunk(&scratch, &mut out)?;
    }
    Ok(out[delay..delay + expected_len]
        .iter()
        .map(|&s| to_i16(s))
        .collect())
}

/// Samples that [`resample`] returns for `input_len` input samples.
pub fn output_len(input_len: usize, from_hz: u32, to_hz: u32) -> usize {
    if from_hz == 0 {
        return 0;
    }
    let numerator = input_len as u128 * to_hz as u128;
    numerator.div_ceil(from_hz as u128) as usize
}

/// A streaming converter for one mono stream, fed in pieces of any size (typically one 20 ms
/// frame per call).
///
/// Input is buffered until a whole chunk (about 10 ms) is there; each call returns every output
/// sample that is ready. The output lags the input by [`Self::delay_samples`] output samples.
pub struct StreamResampler {
    /// `None` when the rates are equal (the input is passed through).
    engine: Option<Engine>,
    pending: Vec<f32>,
    out: Vec<f32>,
    from_hz: u32,
    to_hz: u32,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("from_hz", &self.from_hz)
            .field("to_hz", &self.to_hz)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl StreamResampler {
    /// A converter from `from_hz` to `to_hz`.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        check_rates(from_hz, to_hz)?;
        let engine = if from_hz == to_hz {
            None
        } else {
            // About 10 ms per chunk: a 20 ms frame is two chunks for most rates.
            Some(Engine::new(from_hz, to_hz, from_hz as usize / 100)?)
        };
        let pending_capacity = engine.as_ref().map_or(0, |e| 2 * e.chunk_in);
        Ok(Self {
            engine,
            pending: Vec::with_capacity(pending_capacity),
            out: Vec::new(),
            from_hz,
            to_hz,
        })
    }

    /// The input rate.
    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    /// The output rate.
    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// How far the output lags the input, in output samples (0 for identity).
    pub fn delay_samples(&self) -> usize {
        self.engine.as_ref().map_or(0, Engine::delay_samples)
    }

    /// Input samples the converter needs per internal chunk (1 for identity).
    pub fn chunk_samples(&self) -> usize {
        self.engine.as_ref().map_or(1, |e| e.chunk_in)
    }

    /// Feeds input and returns all output that is ready.
    pub fn process(&mut self, input: &[i16]) -> Vec<i16> {
        let Some(engine) = self.engine.as_mut() else {
            return input.to_vec();
        };
        self.pending.extend(input.iter().map(|&s| to_f32(s)));
        self.out.clear();
        let mut consumed = 0;
        while self.pending.len() - consumed >= engine.chunk_in {
            let chunk = &self.pending[consumed..consumed + engine.chunk_in];
            // The chunk has exactly the size the engine was built for, so rubato cannot refuse it.
            if engine.process_chunk(chunk, &mut self.out).is_err() {
                break;
            }
            consumed += engine.chunk_in;
        }
        self.pending.drain(..consumed);
        self.out.iter().map(|&s| to_i16(s)).collect()
    }

    /// Ends the stream: pads the buffered input with silence and drains the filter, so that
    /// every input sample has come out. The converter is then ready for a new stream.
    pub fn flush(&mut self) -> Vec<i16> {
        let Some(engine) = self.engine.as_mut() else {
            return Vec::new();
        };
        self.out.clear();
        let tail_len = self.pending.len();
        let wanted = output_len(tail_len, self.from_hz, self.to_hz) + engine.delay_samples();
        let mut chunk = vec![0.0f32; engine.chunk_in];
        let mut first = true;
        while self.out.len() < wanted || first {
            chunk.iter_mut().for_each(|s| *s = 0.0);
            if first {
                chunk[..tail_len].copy_from_slice(&self.pending);
                first = false;
            }
            if engine.process_chunk(&chunk, &mut self.out).is_err() {
                break;
            }
        }
        self.out.truncate(wanted);
        self.pending.clear();
        engine.reset();
        self.out.iter().map(|&s| to_i16(s)).collect()
    }

    /// Forgets buffered input and filter history (for a new stream), without output.
    pub fn reset(&mut self) {
        self.pending.clear();
        if let Some(engine) = self.engine.as_mut() {
            engine.reset();
        }
    }
}

/// rubato's FFT resampler for one channel, with its buffers.
struct Engine {
    inner: FftFixedInOut<f32>,
    chunk_in: usize,
    chunk_out: usize,
    wave_in: Vec<Vec<f32>>,
    wave_out: Vec<Vec<f32>>,
}

impl Engine {
    /// An engine whose chunks hold at least `min_chunk_in` input samples.
    ///
    /// A chunk is a whole number of ratio periods (`from / gcd` input samples each), and an even
    /// number of them: rubato's filter is centred on input sample `chunk_in / 2`, so an even
    /// count makes that delay a whole number of output samples, which [`resample`] removes
    /// exactly.
    fn new(from_hz: u32, to_hz: u32, min_chunk_in: usize) -> Result<Self, ResampleError> {
        let period_in = (from_hz / gcd(from_hz, to_hz)) as usize;
        let periods = min_chunk_in.max(1).div_ceil(period_in).next_multiple_of(2);
        let inner =
            FftFixedInOut::<f32>::new(from_hz as usize, to_hz as usize, periods * period_in, 1)
                .map_err(|e| ResampleError::Engine(e.to_string()))?;
        let chunk_in = inner.input_frames_next();
        let chunk_out = inner.output_frames_next();
        Ok(Self {
            inner,
            chunk_in,
            chunk_out,
            wave_in: vec![vec![0.0; chunk_in]],
            wave_out: vec![vec![0.0; chunk_out]],
        })
    }

    fn delay_samples(&self) -> usize {
        self.inner.output_delay()
    }

    /// Resamples exactly one chunk and appends the result to `out`.
    fn process_chunk(&mut self, chunk: &[f32], out: &mut Vec<f32>) -> Result<(), ResampleError> {
        self.wave_in[0].copy_from_slice(chunk);
        let (_, produced) = self
            .inner
            .process_into_buffer(&self.wave_in, &mut self.wave_out, None)
            .map_err(|e| ResampleError::Engine(e.to_string()))?;
        out.extend_from_slice(&self.wave_out[0][..produced]);
        Ok(())
    }

    fn reset(&mut self) {
        self.inner.reset();
    }
}

fn check_rates(from_hz: u32, to_hz: u32) -> Result<(), ResampleError> {
    let unsupported = |reason| {
        Err(ResampleError::UnsupportedRate {
            from_hz,
            to_hz,
            reason,
        })
    };
    for rate in [from_hz, to_hz] {
        if !(MIN_RATE_HZ..=MAX_RATE_HZ).contains(&rate) {
            return unsupported("rates must be between 1000 and 384000 Hz");
        }
    }
    let divisor = gcd(from_hz, to_hz);
    if from_hz / divisor > MAX_RATIO_TERM || to_hz / divisor > MAX_RATIO_TERM {
        return unsupported("the rates' ratio is not simple enough for block resampling");
    }
    Ok(())
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn to_f32(sample: i16) -> f32 {
    sample as f32 / 32_768.0
}

fn to_i16(sample: f32) -> i16 {
    (sample * 32_768.0)
        .round()
        .clamp(i16::MIN as f32, i16::MAX as f32) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_rates() {
        assert!(resample(&[0; 10], 0, 16_000).is_err());
        assert!(StreamResampler::new(16_000, 44_101).is_err());
        assert!(StreamResampler::new(8_000, 16_000).is_ok());
    }

    #[test]
    fn output_length_rounds_up() {
        assert_eq!(output_len(160, 8_000, 16_000), 320);
        assert_eq!(output_len(1, 48_000, 16_000), 1);
        assert_eq!(output_len(441, 22_050, 16_000), 320);
    }
}
