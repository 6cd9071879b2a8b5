//! `HoldAudio`: what a caller hears while a human is found: a soft two-note chime every few
//! seconds, generated (no file to ship), at a level well under speech so that the queue
//! announcements over it stay clear.
//!
//! Invariant: every frame is exactly one 20 ms frame at the pipeline's rate; the pattern
//! repeats without a click (each note fades in and out).

use crate::audio::{Frame, FRAME_SAMPLES, SAMPLE_RATE_HZ};

/// One cycle: two notes of `NOTE_MS` each, then quiet, `CYCLE_MS` in all.
const NOTE_MS: u32 = 350;
const CYCLE_MS: u32 = 3_000;
/// The notes (an E5 then a B4: a falling fifth).
const NOTES_HZ: [f32; 2] = [659.26, 493.88];
/// Peak amplitude, about -27 dBFS: well under speech, so a listener can tell them apart.
const PEAK: f32 = 1_400.0;

/// The hold sound's generator. See the module docs.
#[derive(Debug, Default)]
pub struct HoldAudio {
    /// Samples since the start of the current cycle.
    pos: u32,
}

impl HoldAudio {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next 20 ms of hold audio.
    pub fn next_frame(&mut self) -> Frame {
        let rate = SAMPLE_RATE_HZ;
        let note_len = rate * NOTE_MS / 1000;
        let cycle_len = rate * CYCLE_MS / 1000;
        let mut samples = [0i16; FRAME_SAMPLES];
        for s in samples.iter_mut() {
            let note = (self.pos / note_len) as usize;
            if let Some(hz) = NOTES_HZ.get(note) {
                let i = self.pos % note_len;
                let t = i as f32 / rate as f32;
                // A raised-cosine envelope: no click at either end.
                let env = 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / note_len as f32).cos();
                *s = (PEAK * env * (std::f32::consts::TAU * hz * t).sin()) as i16;
            }
            self.pos = (self.pos + 1) % cycle_len;
        }
        Frame::from_slice(&samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(f: &Frame) -> f64 {
        let s = f.samples();
        (s.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / s.len() as f64).sqrt()
    }

    #[test]
    fn a_cycle_chimes_then_rests_quietly_and_repeats() {
        let mut hold = HoldAudio::new();
        let frames: Vec<Frame> = (0..300).map(|_| hold.next_frame()).collect();
        let per_cycle = (CYCLE_MS / 20) as usize;
        let loud = frames[..per_cycle]
            .iter()
            .filter(|f| rms(f) > 300.0)
            .count();
        assert!(
            (20..=35).contains(&loud),
            "about 700 ms of chime per cycle: {loud}"
        );
        assert!(frames
            .iter()
            .all(|f| f.samples().iter().all(|s| s.unsigned_abs() <= PEAK as u16)));
        assert_eq!(frames[5], frames[5 + per_cycle], "the pattern repeats");
        assert_eq!(
            rms(&frames[per_cycle - 1]),
            0.0,
            "quiet before the next chime"
        );
    }
}
