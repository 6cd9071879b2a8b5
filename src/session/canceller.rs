//! `EchoCanceller`: takes the bot's own echo out of the caller's audio before the recognizer
//! and the VAD hear it.
//!
//! The echo gate ([`super::echo`]) decides whether a frame is the caller's at all; it cannot
//! clean a frame that holds both. A caller who says "uh-huh" over the bot reaches whisper mixed
//! with the bot's words 12 dB down, and whisper hears "I'm handsome": the bot stays stopped
//! for a backchannel. A phone line's echo (the far end's hybrid, a handset) is linear: the bot's
//! audio, delayed, scaled and smeared over a few milliseconds. So, as line echo cancellers do
//! (ITU-T G.168), an adaptive FIR filter driven by the bot's outgoing audio predicts the echo,
//! and the caller frame minus that prediction is what the caller said.
//!
//! How: the filter is NLMS (normalized least mean squares), `TAPS` long (16 ms), and sparse:
//! it covers only the few milliseconds around the echo's delay that the gate has learned
//! ([`EchoPath`]), not the gate's whole tail (300 ms would be 4,800 taps a sample). When the
//! gate's estimate moves, the window moves with it and keeps the taps it still covers. It
//! adapts only on frames the gate calls echo, so the caller's own voice (double talk) does not
//! pull the filter off the echo path; it cancels on every frame.
//!
//! Sans-IO: frames in, frames out; no clock. Cost: about 2 x `TAPS` multiply-adds a sample while
//! the bot's audio is in the window (13 µs a 20 ms frame on this project's 2-core machine,
//! `cargo bench --bench session -- echo_canceller`), nothing while it is not.
//! Invariant: with no learned path or no bot audio in the window, a frame passes unchanged.

use std::collections::VecDeque;

use crate::audio::{Frame, FRAME_SAMPLES};

use super::echo::EchoPath;

/// Filter length in 16 kHz samples (16 ms): the gate's half-block uncertainty either side of
/// the delay, plus the echo's dispersion after it.
const TAPS: usize = 256;
/// Taps before the gate's delay estimate (the estimate is good to half a 5 ms block).
const TAPS_BEFORE: usize = 96;
/// The window moves when the gate's delay moves by at least this many samples.
const MOVE_AT: usize = 48;
/// NLMS step size (0 < mu < 2; small enough to ride out a quiet caller under the echo).
const STEP: f32 = 0.3;
/// Regularization: the window's energy never counts as less than bot audio at this RMS.
const QUIET_RMS: f32 = 30.0;

/// The canceller (see the module docs).
#[derive(Debug, Clone)]
pub struct EchoCanceller {
    /// The bot's samples sent, oldest first, exactly `history` long.
    bot: VecDeque<f32>,
    history: usize,
    /// Taps in time-reversed order: `weights[j]` is for the delay `start + TAPS - 1 - j`.
    weights: Vec<f32>,
    /// The delay (samples) of the window's first tap; `None` until the gate knows the path.
    start: Option<usize>,
    /// The largest delay the window may start at.
    latest_start: usize,
    /// Contiguous copy of the reference a frame needs, reused.
    scratch: Vec<f32>,
}

impl EchoCanceller {
    /// A canceller for echo up to `tail_ms` late (the gate's tail).
    pub fn new(tail_ms: u64) -> Self {
        let tail = tail_ms as usize * 16;
        let latest_start = tail.max(FRAME_SAMPLES);
        let history = latest_start + TAPS + FRAME_SAMPLES;
        Self {
            bot: VecDeque::from(vec![0.0; history]),
            history,
            weights: vec![0.0; TAPS],
            start: None,
            latest_start,
            scratch: Vec::with_capacity(TAPS + FRAME_SAMPLES),
        }
    }

    /// Where the filter's window starts for a path, clamped so that every tap lies at least
    /// one frame back (the bot audio a caller frame can echo has been sent).
    fn window_for(&self, path: EchoPath) -> usize {
        path.delay_samples
            .saturating_sub(TAPS_BEFORE)
            .clamp(FRAME_SAMPLES, self.latest_start)
    }

    /// Moves the window to `start`, keeping the taps both windows cover.
    fn move_to(&mut self, start: usize) {
        let Some(old) = self.start.replace(start) else {
            return;
        };
        let mut moved = vec![0.0; TAPS];
        // weights[j] is for delay old + TAPS - 1 - j; in the new window that delay is at
        // j + (start - old).
        for (j, &w) in self.weights.iter().enumerate() {
            let at = j as i64 + start as i64 - old as i64;
            if let Ok(at) = usize::try_from(at) {
                if let Some(slot) = moved.get_mut(at) {
                    *slot = w;
                }
            }
        }
        self.weights = moved;
    }

    /// The caller's frame for this tick with the echo predicted from the bot's audio taken
    /// out. `path` is the gate's estimate now; `adapt` says the gate called this frame echo
    /// (the filter learns only then). Call once per tick, before [`EchoCanceller::bot_sent`]
    /// for the same tick.
    pub fn cancel(&mut self, caller: &Frame, path: Option<EchoPath>, adapt: bool) -> Frame {
        if let Some(path) = path {
            let start = self.window_for(path);
            match self.start {
                Some(old) if old.abs_diff(start) < MOVE_AT => {}
                _ => self.move_to(start),
            }
        }
        let Some(start) = self.start else {
            return caller.clone();
        };
        // Caller sample n echoes the bot at (virtual) index history + n - delay; the window's
        // reference for n is scratch[n .. n + TAPS], its last element at delay `start`.
        let base = self.history + 1 - start - TAPS;
        self.scratch.clear();
        self.scratch
            .extend(self.bot.range(base..base + TAPS + FRAME_SAMPLES - 1));
        if self.scratch.iter().all(|&x| x == 0.0) {
            return caller.clone();
        }
        let mut energy: f32 = self.scratch[..TAPS].iter().map(|x| x * x).sum();
        let floor = TAPS as f32 * QUIET_RMS * QUIET_RMS;
        let mut out = [0i16; FRAME_SAMPLES];
        for (n, (&c, o)) in caller.samples().iter().zip(out.iter_mut()).enumerate() {
            let x = &self.scratch[n..n + TAPS];
            let echo = dot(x, &self.weights);
            let error = f32::from(c) - echo;
            *o = error.round().clamp(-32768.0, 32767.0) as i16;
            if adapt {
                let step = STEP * error / (energy + floor);
                for (w, &a) in self.weights.iter_mut().zip(x) {
                    *w += step * a;
                }
            }
            if n + 1 < FRAME_SAMPLES {
                let (gone, added) = (x[0], self.scratch[n + TAPS]);
                energy = (energy - gone * gone + added * added).max(0.0);
            }
        }
        Frame::from_slice(&out)
    }

    /// The bot's frame sent to the caller this tick (`None` when the bot was quiet).
    pub fn bot_sent(&mut self, bot: Option<&Frame>) {
        self.bot.drain(..FRAME_SAMPLES);
        match bot {
            Some(frame) => self
                .bot
                .extend(frame.samples().iter().map(|&s| f32::from(s))),
            None => self.bot.extend(std::iter::repeat_n(0.0, FRAME_SAMPLES)),
        }
    }
}

/// The dot product of two equally long slices, summed in eight lanes so that it vectorizes
/// (a plain sum of floats must keep its order, and runs one multiply-add at a time).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Speech-like bot audio: a few partials whose loudness changes every 60 ms.
    fn bot_frame(tick: usize) -> Frame {
        let level = [9000.0, 4000.0, 12000.0, 2500.0, 7000.0, 10000.0][tick / 3 % 6];
        let s: Vec<i16> = (0..FRAME_SAMPLES)
            .map(|i| {
                let t = (tick * FRAME_SAMPLES + i) as f32 / 16_000.0;
                let v = (t * 2.0 * std::f32::consts::PI * 210.0).sin()
                    + 0.6 * (t * 2.0 * std::f32::consts::PI * 730.0 + 0.3).sin()
                    + 0.4 * (t * 2.0 * std::f32::consts::PI * 1_630.0 + 1.1).sin()
                    + 0.3
                        * (((tick * FRAME_SAMPLES + i) * 2_654_435_761 % 1_000) as f32 / 500.0
                            - 1.0);
                (v * level / 2.3) as i16
            })
            .collect();
        Frame::from_slice(&s)
    }

    fn rms(samples: &[f32]) -> f32 {
        (samples.iter().map(|x| x * x).sum::<f32>() / samples.len().max(1) as f32).sqrt()
    }

    /// The bot talks over a line whose echo is `delay` samples late, `gain` down and smeared
    /// over three taps; a caller tone starts at tick 150. Returns the echo left (RMS) over
    /// ticks 120..150 and the caller tone's error (RMS) over ticks 170..200, with `path`
    /// given as the gate would (`delay_error` samples off).
    fn run(delay: usize, gain: f32, delay_error: i64) -> (f32, f32) {
        let mut canceller = EchoCanceller::new(300);
        let mut sent: Vec<f32> = Vec::new();
        let (mut residual, mut caller_error) = (Vec::new(), Vec::new());
        let path = EchoPath {
            delay_samples: (delay as i64 + delay_error) as usize,
            gain,
        };
        for tick in 0..200usize {
            let now = tick * FRAME_SAMPLES;
            let echo_at = |k: usize| -> f32 {
                let at = |d: usize| {
                    (now + k)
                        .checked_sub(d)
                        .and_then(|i| sent.get(i))
                        .copied()
                        .unwrap_or(0.0)
                };
                gain * (0.7 * at(delay) + 0.4 * at(delay + 3) - 0.2 * at(delay + 9))
            };
            let voice = |k: usize| -> f32 {
                ((now + k) as f32 * 0.19).sin() * 2_000.0 * f32::from(tick >= 150)
            };
            let line: Vec<i16> = (0..FRAME_SAMPLES)
                .map(|k| (echo_at(k) + voice(k)) as i16)
                .collect();
            let out = canceller.cancel(&Frame::from_slice(&line), Some(path), tick < 150);
            for (k, &o) in out.samples().iter().enumerate() {
                if (120..150).contains(&tick) {
                    residual.push(f32::from(o));
                }
                if (170..200).contains(&tick) {
                    caller_error.push(f32::from(o) - voice(k));
                }
            }
            let bot = bot_frame(tick);
            sent.extend(bot.samples().iter().map(|&s| f32::from(s)));
            canceller.bot_sent(Some(&bot));
        }
        (rms(&residual), rms(&caller_error))
    }

    #[test]
    fn the_echo_is_taken_out_and_the_caller_kept() {
        for delay in [800, 1_920, 4_000] {
            for (gain, delay_error) in [(0.5, 0), (0.25, 40), (0.1, -40)] {
                let echo_rms = 7_000.0 * gain;
                let (residual, caller_error) = run(delay, gain, delay_error);
                assert!(
                    residual < echo_rms / 10.0,
                    "delay {delay}, gain {gain}: {residual} left of about {echo_rms}"
                );
                assert!(
                    caller_error < 2_000.0 / 10.0,
                    "delay {delay}, gain {gain}: the caller's tone is off by {caller_error}"
                );
            }
        }
    }

    #[test]
    fn without_a_path_or_bot_audio_frames_pass_unchanged() {
        let mut canceller = EchoCanceller::new(300);
        let caller = bot_frame(3);
        assert_eq!(
            canceller.cancel(&caller, None, true).samples(),
            caller.samples()
        );
        let path = EchoPath {
            delay_samples: 1_000,
            gain: 0.3,
        };
        // A path, but the bot has said nothing yet.
        assert_eq!(
            canceller.cancel(&caller, Some(path), true).samples(),
            caller.samples()
        );
        canceller.bot_sent(None);
        assert_eq!(
            canceller.cancel(&caller, Some(path), true).samples(),
            caller.samples()
        );
    }

    #[test]
    fn a_moved_window_keeps_the_taps_it_still_covers() {
        let mut canceller = EchoCanceller::new(300);
        canceller.start = Some(1_000);
        canceller.weights[TAPS - 1] = 0.5; // the tap for delay 1000
        canceller.move_to(1_064);
        // Delay 1000 now lies before the window.
        assert!(canceller.weights.iter().all(|&w| w == 0.0));
        canceller.start = Some(1_000);
        canceller.weights = vec![0.0; TAPS];
        canceller.weights[155] = 0.5;
        canceller.move_to(936);
        assert_eq!(canceller.weights[155 - 64], 0.5);
    }
}
