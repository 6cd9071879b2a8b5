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
//! longest echo delay it looks for) and, for every delay in that tail, the echo's gain: the
//! lowest ratio of the caller's level to the bot's level that long before, over frames where
//! the bot was loud. Echo adds to whatever else the caller's line carries, so at the echo's
//! delay that ratio never falls below the echo's gain, however much the caller talks over the
//! bot, while at the wrong delays it soon does (a loud bot frame meets a quiet caller frame).
//! The floor is soft (each lower frame moves it part of the way), so one odd frame cannot pull
//! it down.
//! The floor drifts up slowly (it doubles in about 5 s) so a line whose echo grows is learned
//! again. The echo expected in a frame is the largest gain-times-level over the delays; a frame
//! louder than that by `margin` is the caller's own voice. Before the bot's audio has reached a
//! delay, that delay's gain is the worst the gate is set for (`margin` below the bot), so the
//! first words of a call are safe too.
//!
//! Sans-IO: frames in, a verdict out; no clock. Cost: a frame's RMS and a few operations per
//! delay.
//! Invariant: with no bot audio in the tail, no frame is echo.

use std::collections::VecDeque;

use crate::audio::{Frame, FRAME_MS};

/// How fast a delay's echo gain may rise again, per frame with loud bot audio at that delay
/// (doubles in about 230 frames, 4.6 s).
const DRIFT: f32 = 1.003;
/// How far one frame that shows a lower ratio moves the gain toward it: a soft floor, so that
/// a single odd frame (a plosive's energy on one side of a frame edge) cannot pull it down.
const DOWN_STEP: f32 = 0.5;
/// Bot frames below this RMS say nothing about the echo path (the ratio would be noise).
const BOT_LOUD_RMS: f32 = 200.0;
/// Bot frames below this RMS put no echo on the line.
const BOT_QUIET_RMS: f32 = 30.0;

/// Tells echo of the bot's own audio from the caller's voice. See the module docs.
#[derive(Debug, Clone)]
pub struct EchoGate {
    /// The bot's level per frame, newest first: `bot[0]` is the frame sent last tick.
    bot: VecDeque<f32>,
    /// Per delay (as in `bot`), the echo's gain: the floor of caller level over bot level.
    gain: Vec<f32>,
    /// Amplitude ratio a caller frame must exceed the expected echo by to be the caller's.
    margin: f32,
    enabled: bool,
}

impl EchoGate {
    /// A gate looking for echo up to `tail_ms` late, that calls a frame the caller's own when
    /// it is `margin_db` louder than the echo expected. `margin_db <= 0` turns the gate off.
    pub fn new(tail_ms: u64, margin_db: f32) -> Self {
        let delays = (tail_ms / u64::from(FRAME_MS)) as usize + 2;
        let margin = 10f32.powf(margin_db / 20.0);
        Self {
            bot: VecDeque::from(vec![0.0; delays]),
            // The worst echo the gate is set for, until the line shows better.
            gain: vec![1.0 / margin.max(1.0); delays],
            margin,
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
        let expected = self
            .gain
            .iter()
            .zip(self.bot.iter())
            .map(|(g, b)| g * b)
            .fold(0.0, f32::max);
        self.learn(c);
        c <= self.margin * expected
    }

    /// The bot's frame sent to the caller this tick (`None` when the bot was quiet).
    pub fn bot_sent(&mut self, bot: Option<&Frame>) {
        self.bot.pop_back();
        self.bot.push_front(bot.map_or(0.0, Frame::rms));
    }

    /// Lowers each delay's gain to what this frame shows, or lets it drift up.
    fn learn(&mut self, caller: f32) {
        for (gain, &b) in self.gain.iter_mut().zip(self.bot.iter()) {
            if b >= BOT_LOUD_RMS {
                let ratio = caller / b;
                *gain = if ratio < *gain {
                    *gain + DOWN_STEP * (ratio - *gain)
                } else {
                    (*gain * DRIFT).min(ratio).min(1.0)
                };
            }
        }
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
