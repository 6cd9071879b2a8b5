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
//! How: it keeps the level of what the bot sent in 5 ms blocks, for the last `tail` (the
//! longest echo delay it looks for). For every candidate delay (in 5 ms steps, from one frame
//! up to the tail) the bot audio that would lie under the caller's frame is exactly four
//! blocks, so its level lines up with the caller frame's whatever the delay (an echo 50 ms
//! late straddles two 20 ms frames; at 5 ms steps nothing does). Per delay the gate learns the
//! echo's gain: a floor of the caller's level over that bot level, over frames where the bot
//! was loud. Echo adds to whatever else the line carries, so at the echo's delay that ratio
//! never falls below the echo's gain, however much the caller talks over the bot, while at the
//! wrong delays it soon does (loud bot audio meets a quiet caller). The floor falls fast and
//! rises slowly (about 1 % a frame), so a line whose echo grows is learned again. The echo
//! expected in a frame is the largest gain times bot level over the delays; a frame louder
//! than that by `margin` is the caller's own voice. Before the bot's audio has reached a
//! delay, that delay's gain is the worst the gate is set for (`margin` below the bot), so the
//! first words of a call are safe too.
//!
//! Sans-IO: frames in, a verdict out; no clock. Cost: a frame's RMS and a few operations per
//! delay.
//! Invariant: with no bot audio in the tail, no frame is echo.

use std::collections::VecDeque;

use crate::audio::{Frame, FRAME_MS, FRAME_SAMPLES};

/// How fast a delay's echo gain rises again, per frame with loud bot audio at that delay.
const RISE: f32 = 1.01;
/// The least a delay's gain rises from: a gain learned on digital silence (zero) must still be
/// able to rise if echo appears later (about -80 dB).
const GAIN_FLOOR: f32 = 1e-4;
/// The most one frame that shows a lower ratio takes off a delay's gain (a factor).
const FALL: f32 = 0.6;
/// Bot audio below this RMS says nothing about the echo path (the ratio would be noise).
const BOT_LOUD_RMS: f32 = 200.0;
/// Bot audio below this RMS puts no echo on the line.
const BOT_QUIET_RMS: f32 = 30.0;
/// Samples in one level block (5 ms at 16 kHz).
const BLOCK: usize = 80;
/// Blocks in one frame.
const BLOCKS_PER_FRAME: usize = FRAME_SAMPLES / BLOCK;

/// Tells echo of the bot's own audio from the caller's voice. See the module docs.
#[derive(Debug, Clone)]
pub struct EchoGate {
    /// The bot's mean square per 5 ms block, newest first: `bot[0]` ends the frame sent last.
    bot: VecDeque<f32>,
    /// Per delay (`d` blocks more than one frame), the echo's gain.
    gain: Vec<f32>,
    /// Per delay, the frames with loud bot audio its gain was learned on (saturating).
    seen: Vec<u16>,
    /// Amplitude ratio a caller frame must exceed the expected echo by to be the caller's.
    margin: f32,
    enabled: bool,
}

/// The echo path as the gate has learned it: where the echo lies and how loud it is, for the
/// echo canceller ([`super::canceller`]) to centre its filter on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoPath {
    /// The echo's delay behind the bot's audio, in 16 kHz samples (±half a 5 ms block).
    pub delay_samples: usize,
    /// The echo's amplitude gain (0.25 is 12 dB down).
    pub gain: f32,
}

/// Frames of loud bot audio a delay needs before its gain says where the echo is.
const PATH_SEEN_FRAMES: u16 = 25;
/// An echo gain below this (about -50 dB) is no echo worth cancelling.
const PATH_LEAST_GAIN: f32 = 0.003;

impl EchoGate {
    /// A gate looking for echo up to `tail_ms` late, that calls a frame the caller's own when
    /// it is `margin_db` louder than the echo expected. `margin_db <= 0` turns the gate off.
    pub fn new(tail_ms: u64, margin_db: f32) -> Self {
        let block_ms = (BLOCK * 1000) as u64 / 16_000;
        let delays = (tail_ms.saturating_sub(u64::from(FRAME_MS)) / block_ms) as usize + 1;
        let margin = 10f32.powf(margin_db / 20.0);
        Self {
            bot: VecDeque::from(vec![0.0; delays + BLOCKS_PER_FRAME]),
            // The worst echo the gate is set for, until the line shows better.
            gain: vec![1.0 / margin.max(1.0); delays],
            seen: vec![0; delays],
            margin,
            enabled: margin_db > 0.0,
        }
    }

    /// Whether the caller frame of this tick is echo of the bot's recent audio (and so not the
    /// caller speaking). Call once per tick, before [`EchoGate::bot_sent`] for the same tick.
    pub fn is_echo(&mut self, caller: &Frame) -> bool {
        let quiet = BOT_QUIET_RMS * BOT_QUIET_RMS;
        if !self.enabled || self.bot.iter().all(|&e| e < quiet) {
            return false;
        }
        let c = caller.rms();
        let mut expected = 0.0f32;
        for d in 0..self.gain.len() {
            let level = self.level_at(d);
            expected = expected.max(self.gain[d] * level);
            if level >= BOT_LOUD_RMS {
                self.seen[d] = self.seen[d].saturating_add(1);
                let ratio = c / level;
                let g = &mut self.gain[d];
                *g = if ratio < *g {
                    ratio.max(*g * FALL)
                } else {
                    ratio.min(g.max(GAIN_FLOOR) * RISE).min(1.0)
                };
            }
        }
        c <= self.margin * expected
    }

    /// The echo path learned so far: the delay with the largest gain among those that have
    /// seen enough loud bot audio. `None` before that, with the gate off, or when the line
    /// shows no echo.
    pub fn path(&self) -> Option<EchoPath> {
        if !self.enabled {
            return None;
        }
        let (d, &gain) = self
            .gain
            .iter()
            .enumerate()
            .filter(|&(d, _)| self.seen[d] >= PATH_SEEN_FRAMES)
            .max_by(|a, b| a.1.total_cmp(b.1))?;
        (gain >= PATH_LEAST_GAIN).then_some(EchoPath {
            delay_samples: FRAME_SAMPLES + d * BLOCK,
            gain,
        })
    }

    /// The bot's frame sent to the caller this tick (`None` when the bot was quiet).
    pub fn bot_sent(&mut self, bot: Option<&Frame>) {
        let blocks: Vec<f32> = match bot {
            Some(frame) => frame
                .samples()
                .chunks(BLOCK)
                .map(|b| b.iter().map(|&x| f32::from(x) * f32::from(x)).sum::<f32>() / BLOCK as f32)
                .collect(),
            None => vec![0.0; BLOCKS_PER_FRAME],
        };
        for energy in blocks {
            self.bot.pop_back();
            self.bot.push_front(energy);
        }
    }

    /// The RMS of the bot audio a caller frame holds when the echo is `d` blocks more than one
    /// frame late: blocks `d..d + 4`.
    fn level_at(&self, d: usize) -> f32 {
        let sum: f32 = self.bot.range(d..d + BLOCKS_PER_FRAME).sum();
        (sum / BLOCKS_PER_FRAME as f32).sqrt()
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
    fn the_path_is_the_echo_delay_and_gain() {
        for (delay, atten) in [(2usize, 6.0f32), (5, 12.0), (12, 20.0)] {
            let mut gate = EchoGate::new(300, 6.0);
            let gain = 10f32.powf(-atten / 20.0);
            let mut sent: Vec<f32> = Vec::new();
            for tick in 0..150 {
                let echo = if tick >= delay {
                    sent[tick - delay] * gain
                } else {
                    0.0
                };
                gate.is_echo(&tone(echo, tick * 7));
                let level = bot_level(tick);
                sent.push(level);
                gate.bot_sent(Some(&tone(level, tick)));
            }
            let path = gate.path().expect("a learned path");
            // Frame-long level steps make the frame's whole span a match: the path lies
            // within it.
            let at = delay * FRAME_SAMPLES;
            assert!(
                (at.saturating_sub(FRAME_SAMPLES)..=at + FRAME_SAMPLES)
                    .contains(&path.delay_samples),
                "delay {delay} frames: {path:?}"
            );
            assert!((path.gain / gain - 1.0).abs() < 0.3, "{atten} dB: {path:?}");
        }
        // No echo on the line: no path.
        let mut gate = EchoGate::new(300, 6.0);
        for tick in 0..150 {
            gate.is_echo(&tone(0.0, tick));
            gate.bot_sent(Some(&tone(bot_level(tick), tick)));
        }
        assert_eq!(gate.path(), None);
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

    #[test]
    fn echo_that_appears_after_digital_silence_is_learned_again() {
        let mut gate = EchoGate::new(300, 6.0);
        let mut sent = Vec::new();
        let mut own_late = 0;
        for tick in 0..2_000usize {
            // Digital silence on the line for 5 s, then echo 4 frames late at 12 dB.
            let echo = if tick >= 250 {
                sent[tick - 4] * 0.25
            } else {
                0.0
            };
            let caller = tone(echo, tick * 7);
            if !gate.is_echo(&caller) && tick >= 1_500 && caller.rms() > 50.0 {
                own_late += 1;
            }
            let level = bot_level(tick);
            sent.push(level);
            gate.bot_sent(Some(&tone(level, tick)));
        }
        assert_eq!(own_late, 0, "the echo is learned again");
    }
}
