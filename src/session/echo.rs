//! `EchoGate`: tells the caller's own voice from the bot's echo, with the bot's outgoing audio
//! as the reference.
//!
//! No carrier path cancels echo, so on a phone line the caller's stream carries the bot's own
//! words back, delayed (50–250 ms is typical) and attenuated (6–30 dB). A VAD calls that
//! speech, and the bot interrupts itself. A blanket "ignore the first N ms of each prompt"
//! both misses late echo and deafens the bot to a real interruption. The gate instead learns
//! the line's echo path from the audio itself, and calls a caller frame *echo* when the bot's
//! recent audio explains its level.
//!
//! How: per 20 ms frame it keeps the RMS level of what the bot sent for the last `tail` (the
//! longest echo delay it looks for) and, for every delay in that tail, the smoothed products
//! of the caller's level with the bot's level that long before (a forgetting factor of about
//! 0.7 s). The delay whose bot levels correlate best with the caller's is the echo path, and
//! its least-squares gain is the echo's attenuation; the echo expected in a frame is that gain
//! times the loudest bot frame at or beside that delay (an echo between two frames mixes
//! them). A frame louder than the expected echo by `margin` is the caller's own voice (double
//! talk); the estimates learn only from frames that are not, so a caller talking over the bot
//! does not teach the gate that the echo is loud. Until it has heard enough of the bot
//! (a tail's worth and [`WARM_FRAMES`] more frames judged echo), the gate assumes the worst echo it is set for
//! (`margin` below the bot) at any delay.
//!
//! Sans-IO: frames in, a verdict out; no clock. Cost: a few multiply-adds per delay per frame.
//! Invariant: with no bot audio in the tail, no frame is echo.

use std::collections::VecDeque;

use crate::audio::{Frame, FRAME_MS};

/// The forgetting factor of the estimates, per frame (about 0.7 s of memory).
const FORGET: f32 = 0.97;
/// Bot frames below this RMS carry no evidence about the echo path.
const BOT_QUIET_RMS: f32 = 30.0;
/// Frames with bot audio judged echo, beyond a whole tail's worth (an echo may not have
/// arrived before that), before the learned path replaces the worst-case prior.
const WARM_FRAMES: u32 = 10;

/// What the gate has learned about one delay.
#[derive(Debug, Clone, Copy, Default)]
struct Fit {
    /// Σ caller·bot (smoothed).
    cross: f32,
    /// Σ bot² (smoothed).
    power: f32,
}

impl Fit {
    /// The least-squares gain of the caller's level on the bot's at this delay.
    fn gain(&self) -> f32 {
        if self.power > 0.0 {
            self.cross / self.power
        } else {
            0.0
        }
    }

    /// How well the bot's level at this delay explains the caller's (the correlation, up to a
    /// factor every delay shares).
    fn score(&self) -> f32 {
        if self.power > 0.0 {
            self.cross / self.power.sqrt()
        } else {
            0.0
        }
    }
}

/// Tells echo of the bot's own audio from the caller's voice. See the module docs.
#[derive(Debug, Clone)]
pub struct EchoGate {
    /// The bot's level per frame, newest first: `bot[0]` is the frame sent last tick.
    bot: VecDeque<f32>,
    fits: Vec<Fit>,
    /// Frames with bot audio in the tail judged echo so far (up to the tail plus
    /// [`WARM_FRAMES`]).
    learned: u32,
    /// Amplitude ratio a caller frame must exceed the expected echo by to be the caller's.
    margin: f32,
    enabled: bool,
}

impl EchoGate {
    /// A gate looking for echo up to `tail_ms` late, that calls a frame the caller's own when
    /// it is `margin_db` louder than the echo expected. `margin_db <= 0` turns the gate off.
    pub fn new(tail_ms: u64, margin_db: f32) -> Self {
        let delays = (tail_ms / u64::from(FRAME_MS)) as usize + 2;
        Self {
            bot: VecDeque::from(vec![0.0; delays]),
            fits: vec![Fit::default(); delays],
            learned: 0,
            margin: 10f32.powf(margin_db / 20.0),
            enabled: margin_db > 0.0,
        }
    }

    /// Whether the caller frame of this tick is echo of the bot's recent audio (and so not the
    /// caller speaking). Call once per tick, before [`EchoGate::bot_sent`] for the same tick.
    pub fn is_echo(&mut self, caller: &Frame) -> bool {
        if !self.enabled || self.bot.iter().all(|&b| b < BOT_QUIET_RMS) {
            return false;
        }
        let c = caller.rms();
        let echo = c <= self.margin * self.expected_echo();
        if echo {
            self.learn(c);
        }
        echo
    }

    /// The bot's frame sent to the caller this tick (`None` when the bot was quiet).
    pub fn bot_sent(&mut self, bot: Option<&Frame>) {
        self.bot.pop_back();
        self.bot.push_front(bot.map_or(0.0, Frame::rms));
    }

    /// The echo level expected in the caller frame now.
    fn expected_echo(&self) -> f32 {
        if (self.learned as usize) < self.bot.len() + WARM_FRAMES as usize {
            // The worst echo the gate is set for, at whatever delay.
            let loudest = self.bot.iter().copied().fold(0.0, f32::max);
            return loudest / self.margin;
        }
        let best = self
            .fits
            .iter()
            .enumerate()
            .max_by(|(_, a), (_, b)| a.score().total_cmp(&b.score()))
            .map_or(0, |(d, _)| d);
        let lo = best.saturating_sub(1);
        let hi = (best + 1).min(self.bot.len() - 1);
        let level = (lo..=hi).map(|d| self.bot[d]).fold(0.0, f32::max);
        self.fits[best].gain() * level
    }

    /// Updates every delay's fit with a frame judged echo (or quiet).
    fn learn(&mut self, caller: f32) {
        for (fit, &b) in self.fits.iter_mut().zip(self.bot.iter()) {
            fit.cross = FORGET * fit.cross + caller * b;
            fit.power = FORGET * fit.power + b * b;
        }
        self.learned = (self.learned + 1).min(self.bot.len() as u32 + WARM_FRAMES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME_SAMPLES;

    fn tone(level: f32, phase: usize) -> Frame {
        let s: Vec<i16> = (0..FRAME_SAMPLES)
            .map(|i| (((i + phase) as f32 * 0.21).sin() * level) as i16)
            .collect();
        Frame::from_slice(&s)
    }

    /// Bot frames whose level changes like speech (syllables of different loudness).
    fn bot_level(tick: usize) -> f32 {
        [9000.0, 4000.0, 12000.0, 500.0, 7000.0, 0.0, 10000.0][tick / 3 % 7]
    }

    /// Runs `ticks` of bot audio with its echo `delay` frames late at `atten_db`, plus a caller
    /// voice at `voice` from tick 60; counts the caller frames called the caller's own.
    fn run(delay: usize, atten_db: f32, voice: f32) -> (usize, usize) {
        let mut gate = EchoGate::new(300, 6.0);
        let gain = 10f32.powf(-atten_db / 20.0);
        let mut sent: Vec<f32> = Vec::new();
        let (mut own_before, mut own_after) = (0, 0);
        for tick in 0..150 {
            let echo = if tick >= delay {
                sent[tick - delay] * gain
            } else {
                0.0
            };
            let v = if tick >= 60 { voice } else { 0.0 };
            let caller = tone((echo * echo + v * v).sqrt(), tick * 7);
            if !gate.is_echo(&caller) && caller.rms() > 50.0 {
                if tick < 60 {
                    own_before += 1;
                } else {
                    own_after += 1;
                }
            }
            let level = bot_level(tick);
            sent.push(level);
            gate.bot_sent(Some(&tone(level, tick)));
        }
        (own_before, own_after)
    }

    #[test]
    fn echo_alone_is_never_the_caller() {
        for delay in [2, 5, 8, 12] {
            for atten in [6.0, 12.0, 20.0, 30.0] {
                let (before, after) = run(delay, atten, 0.0);
                assert_eq!((before, after), (0, 0), "delay {delay} frames, {atten} dB");
            }
        }
    }

    #[test]
    fn a_caller_talking_over_the_echo_is_heard() {
        for delay in [2, 8, 12] {
            for atten in [6.0, 20.0] {
                // A voice 3 dB above the loudest echo plus the margin: the level a caller at
                // the phone has over the echo of the earpiece.
                let loudest_echo = 12_000.0 * 10f32.powf(-atten / 20.0);
                let voice = loudest_echo * 2.0 * 1.4;
                let (_, after) = run(delay, atten, voice);
                assert!(
                    after > 60,
                    "delay {delay}, {atten} dB: {after} of 90 frames"
                );
            }
        }
    }

    #[test]
    fn without_bot_audio_nothing_is_echo() {
        let mut gate = EchoGate::new(300, 6.0);
        assert!(!gate.is_echo(&tone(3000.0, 0)));
        gate.bot_sent(None);
        assert!(!gate.is_echo(&tone(3000.0, 0)));
        let mut off = EchoGate::new(300, 0.0);
        off.bot_sent(Some(&tone(9000.0, 0)));
        assert!(!off.is_echo(&tone(100.0, 0)));
    }
}
