//! Voice activity detection on 20 ms frames.
//!
//! hotline uses earshot (pure Rust, 16 ms analysis frames). It was chosen over whisper.cpp's
//! Silero by measuring both on the recordings in the shared test audio: see ARCHITECTURE.md and
//! `tests/vad.rs`. The detector keeps a small carry-over buffer because our 20 ms frames
//! (320 samples) do not divide into earshot's 256-sample frames; each 20 ms frame gets the
//! highest score among the earshot frames that completed inside it.

/// earshot's analysis frame, in samples at 16 kHz (16 ms).
const DETECTOR_FRAME_SAMPLES: usize = 256;

/// A per-stream voice activity detector. Create one per call direction.
pub struct Vad {
    detector: Box<earshot::Detector>,
    carry: Vec<i16>,
    last_score: f32,
}

impl Default for Vad {
    fn default() -> Self {
        Self::new()
    }
}

impl Vad {
    /// A fresh detector.
    pub fn new() -> Self {
        Self {
            detector: earshot::Detector::default_boxed(),
            carry: Vec::with_capacity(2 * DETECTOR_FRAME_SAMPLES),
            last_score: 0.0,
        }
    }

    /// Scores one 20 ms frame: the probability (0..1) that it holds speech.
    pub fn score(&mut self, frame: &super::Frame) -> f32 {
        self.carry.extend_from_slice(frame.samples());
        let mut best: Option<f32> = None;
        let mut consumed = 0;
        while self.carry.len() - consumed >= DETECTOR_FRAME_SAMPLES {
            let chunk = &self.carry[consumed..consumed + DETECTOR_FRAME_SAMPLES];
            let p = self.detector.predict_i16(chunk);
            best = Some(best.map_or(p, |b: f32| b.max(p)));
            consumed += DETECTOR_FRAME_SAMPLES;
        }
        self.carry.drain(..consumed);
        if let Some(p) = best {
            self.last_score = p;
        }
        self.last_score
    }

    /// Forgets all history (for a new stream).
    pub fn reset(&mut self) {
        self.detector.reset();
        self.carry.clear();
        self.last_score = 0.0;
    }
}
