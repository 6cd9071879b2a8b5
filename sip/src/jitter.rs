//! The receive jitter buffer: reorders RTP audio, conceals loss and adapts its depth to jitter.
//!
//! Owns: decoded PCM segments keyed by their position on the sender's (extended) timeline, the
//! playout position, and the target depth. It is fed packets with their arrival time and drained
//! one frame per tick; it never reads a clock.
//!
//! Invariants: [`JitterBuffer::pop`] always yields exactly the requested number of samples;
//! audio behind the playout position is dropped as late; a duplicate position is ignored; the
//! depth stays between the configured minimum and maximum; a jump in the sender's timeline (new
//! SSRC, resumed stream) restarts buffering rather than stalling.

use std::collections::BTreeMap;

use crate::rtp::Ssrc;

/// Tuning for one buffer.
#[derive(Debug, Clone, Copy)]
pub struct JitterConfig {
    /// PCM samples per second of the decoded audio.
    pub pcm_rate_hz: u32,
    /// The RTP clock rate of the stream.
    pub rtp_clock_hz: u32,
    /// The least depth kept before playout.
    pub min_delay_ms: u32,
    /// The most depth; above it, audio is skipped to catch up.
    pub max_delay_ms: u32,
}

impl JitterConfig {
    /// Defaults for a phone line: 40 ms to 200 ms.
    pub fn phone(pcm_rate_hz: u32, rtp_clock_hz: u32) -> Self {
        Self {
            pcm_rate_hz,
            rtp_clock_hz,
            min_delay_ms: 40,
            max_delay_ms: 200,
        }
    }
}

/// What one popped frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout {
    /// Received audio (possibly with a concealed part).
    Audio,
    /// A gap filled from the last audio, fading out.
    Concealed,
    /// Nothing to play (not started, or a long gap).
    Silence,
}

/// Counters for records and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub pushed: u64,
    pub late: u64,
    pub duplicate: u64,
    pub concealed_frames: u64,
    pub skipped_frames: u64,
    pub restarts: u64,
}

/// The buffer.
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    ssrc: Option<Ssrc>,
    /// The highest extended RTP timestamp seen, for unwrapping.
    highest_ts: Option<u64>,
    /// PCM segments by position (in PCM samples on the extended timeline).
    segments: BTreeMap<u64, Vec<i16>>,
    /// The next PCM position to play; `None` while priming.
    playout: Option<u64>,
    /// Interarrival jitter estimate in PCM samples, times 16.
    jitter_x16: u64,
    last_transit: Option<i64>,
    last_frame: Vec<i16>,
    concealed_run: u32,
    empty_run: u32,
    stats: JitterStats,
}

/// Frames concealed by fading the last audio before falling to silence.
const CONCEAL_FRAMES: u32 = 3;
/// Empty pops after which the buffer primes again (a paused or held stream).
const REPRIME_AFTER_EMPTY: u32 = 10;

impl JitterBuffer {
    pub fn new(config: JitterConfig) -> Self {
        Self {
            config,
            ssrc: None,
            highest_ts: None,
            segments: BTreeMap::new(),
            playout: None,
            jitter_x16: 0,
            last_transit: None,
            last_frame: Vec::new(),
            concealed_run: 0,
            empty_run: 0,
            stats: JitterStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The current target depth in PCM samples.
    pub fn target_delay_samples(&self) -> u64 {
        let ms_to_samples = |ms: u32| ms as u64 * self.config.pcm_rate_hz as u64 / 1000;
        let jitter = self.jitter_x16 >> 4;
        (3 * jitter).clamp(
            ms_to_samples(self.config.min_delay_ms),
            ms_to_samples(self.config.max_delay_ms),
        )
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> u32 {
        ((self.jitter_x16 >> 4) * 1000 / self.config.pcm_rate_hz.max(1) as u64) as u32
    }

    fn pcm_position(&self, extended_ts: u64) -> u64 {
        extended_ts * self.config.pcm_rate_hz as u64 / self.config.rtp_clock_hz.max(1) as u64
    }

    /// Extends a 32-bit RTP timestamp relative to the highest seen. Returns `None` for an
    /// impossible value (before the start of the extended timeline).
    pub fn extend_timestamp(&self, timestamp: u32) -> Option<u64> {
        match self.highest_ts {
            None => Some((1u64 << 32) + timestamp as u64),
            Some(highest) => {
                let delta = timestamp.wrapping_sub(highest as u32) as i32 as i64;
                u64::try_from(highest as i64 + delta).ok()
            }
        }
    }

    fn restart(&mut self, ssrc: Ssrc) {
        self.ssrc = Some(ssrc);
        self.highest_ts = None;
        self.segments.clear();
        self.playout = None;
        self.last_transit = None;
        self.stats.restarts += 1;
    }

    /// Adds one packet's decoded audio. `arrival_ms` is the receive time on a monotonic clock.
    pub fn push(&mut self, ssrc: Ssrc, timestamp: u32, pcm: Vec<i16>, arrival_ms: u64) {
        if pcm.is_empty() {
            return;
        }
        if self.ssrc != Some(ssrc) {
            self.restart(ssrc);
        }
        let Some(ext) = self.extend_timestamp(timestamp) else {
            self.stats.late += 1;
            return;
        };
        let position = self.pcm_position(ext);
        // A far jump (the sender restarted its timeline) restarts buffering.
        let jump_limit = self.config.pcm_rate_hz as u64 * 2;
        if let Some(playout) = self.playout {
            if position > playout + jump_limit || position + jump_limit < playout {
                self.restart(ssrc);
                return self.push(ssrc, timestamp, pcm, arrival_ms);
            }
            if position + pcm.len() as u64 <= playout {
                self.stats.late += 1;
                return;
            }
        }
        self.highest_ts = Some(self.highest_ts.map_or(ext, |h| h.max(ext)));
        // Jitter (RFC 3550 A.8) on the PCM clock.
        let arrival = arrival_ms as i64 * self.config.pcm_rate_hz as i64 / 1000;
        let transit = arrival - position as i64;
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs();
            self.jitter_x16 = self.jitter_x16 + d - ((self.jitter_x16 + 8) >> 4);
        }
        self.last_transit = Some(transit);
        if self.segments.contains_key(&position) {
            self.stats.duplicate += 1;
            return;
        }
        self.stats.pushed += 1;
        self.segments.insert(position, pcm);
    }

    /// Buffered audio ahead of the playout position (or of the earliest segment while priming).
    pub fn buffered_samples(&self) -> u64 {
        let Some((&first, _)) = self.segments.iter().next() else {
            return 0;
        };
        let Some((&last, seg)) = self.segments.iter().next_back() else {
            return 0;
        };
        let start = self.playout.unwrap_or(first);
        (last + seg.len() as u64).saturating_sub(start)
    }

    /// Fills `out` with exactly `out.len()` samples: the next frame of playout.
    pub fn pop(&mut self, out: &mut [i16]) -> Playout {
        out.fill(0);
        let n = out.len() as u64;
        if self.playout.is_none() {
            if self.buffered_samples() >= self.target_delay_samples().max(n) {
                self.playout = self.segments.keys().next().copied();
            } else {
                return Playout::Silence;
            }
        }
        let Some(mut start) = self.playout else {
            return Playout::Silence;
        };
        // Too deep: skip a frame to cut latency.
        if self.buffered_samples() > self.target_delay_samples() * 2 + n * 2 {
            start += n;
            self.stats.skipped_frames += 1;
        }
        let end = start + n;
        let mut covered = 0u64;
        // Segments that overlap [start, end).
        let keys: Vec<u64> = self.segments.range(..end).map(|(k, _)| *k).collect();
        for key in keys {
            let Some(seg) = self.segments.get(&key) else {
                continue;
            };
            let seg_end = key + seg.len() as u64;
            if seg_end <= start {
                self.segments.remove(&key);
                continue;
            }
            let from = start.max(key);
            let to = end.min(seg_end);
            let src = &seg[(from - key) as usize..(to - key) as usize];
            out[(from - start) as usize..(to - start) as usize].copy_from_slice(src);
            covered += to - from;
            if seg_end <= end {
                self.segments.remove(&key);
            }
        }
        self.playout = Some(end);
        if covered > 0 {
            self.concealed_run = 0;
            self.empty_run = 0;
            self.last_frame.clear();
            self.last_frame.extend_from_slice(out);
            return Playout::Audio;
        }
        self.empty_run += 1;
        if self.segments.is_empty() && self.empty_run >= REPRIME_AFTER_EMPTY {
            self.playout = None;
        }
        if self.concealed_run < CONCEAL_FRAMES && self.last_frame.len() == out.len() {
            self.concealed_run += 1;
            let gain = 1.0 - self.concealed_run as f32 / (CONCEAL_FRAMES + 1) as f32;
            for (o, &s) in out.iter_mut().zip(&self.last_frame) {
                *o = (s as f32 * gain) as i16;
            }
            self.stats.concealed_frames += 1;
            return Playout::Concealed;
        }
        Playout::Silence
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = 160;

    fn frame(value: i16) -> Vec<i16> {
        vec![value; N]
    }

    fn buffer() -> JitterBuffer {
        JitterBuffer::new(JitterConfig::phone(8_000, 8_000))
    }

    fn pop(jb: &mut JitterBuffer) -> (Playout, i16) {
        let mut out = [0i16; N];
        let kind = jb.pop(&mut out);
        (kind, out[0])
    }

    #[test]
    fn reorders_packets() {
        let mut jb = buffer();
        // Packets 1..=6 arrive as 1 3 2 4 6 5.
        for (i, seq) in [1u32, 3, 2, 4, 6, 5].iter().enumerate() {
            jb.push(Ssrc(1), seq * N as u32, frame(*seq as i16), i as u64 * 20);
        }
        let played: Vec<i16> = (0..6).map(|_| pop(&mut jb).1).collect();
        assert_eq!(played, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn conceals_a_lost_packet_then_goes_silent() {
        let mut jb = buffer();
        for seq in [1u32, 2, 3] {
            jb.push(Ssrc(1), seq * N as u32, frame(1000), seq as u64 * 20);
        }
        jb.push(Ssrc(1), 5 * N as u32, frame(2000), 100);
        assert_eq!(pop(&mut jb), (Playout::Audio, 1000));
        assert_eq!(pop(&mut jb), (Playout::Audio, 1000));
        assert_eq!(pop(&mut jb), (Playout::Audio, 1000));
        let (kind, value) = pop(&mut jb);
        assert_eq!(kind, Playout::Concealed);
        assert!(value > 0 && value < 1000, "{value}");
        assert_eq!(pop(&mut jb), (Playout::Audio, 2000));
        assert_eq!(jb.stats().concealed_frames, 1);
        for _ in 0..CONCEAL_FRAMES {
            assert_eq!(pop(&mut jb).0, Playout::Concealed);
        }
        assert_eq!(pop(&mut jb), (Playout::Silence, 0));
    }

    #[test]
    fn drops_late_and_duplicate_packets() {
        let mut jb = buffer();
        for seq in 1u32..=4 {
            jb.push(Ssrc(1), seq * N as u32, frame(seq as i16), seq as u64 * 20);
        }
        jb.push(Ssrc(1), 2 * N as u32, frame(99), 90);
        assert_eq!(jb.stats().duplicate, 1);
        pop(&mut jb);
        pop(&mut jb);
        jb.push(Ssrc(1), N as u32, frame(77), 120);
        assert_eq!(jb.stats().late, 1);
        assert_eq!(pop(&mut jb).1, 3);
    }

    #[test]
    fn depth_adapts_to_jitter() {
        let mut steady = buffer();
        let mut jittery = buffer();
        for seq in 0u32..200 {
            steady.push(Ssrc(1), seq * N as u32, frame(1), seq as u64 * 20);
            let wobble = if seq % 2 == 0 { 0 } else { 70 };
            jittery.push(Ssrc(1), seq * N as u32, frame(1), seq as u64 * 20 + wobble);
        }
        assert_eq!(steady.target_delay_samples(), 320, "the minimum, 40 ms");
        assert!(
            jittery.target_delay_samples() > 800,
            "{}",
            jittery.target_delay_samples()
        );
        assert!(jittery.target_delay_samples() <= 1600, "capped at 200 ms");
    }

    #[test]
    fn survives_timestamp_wrap_and_restarts_on_jumps() {
        let mut jb = buffer();
        let base = u32::MAX - N as u32;
        for i in 0u32..4 {
            jb.push(
                Ssrc(1),
                base.wrapping_add(i * N as u32),
                frame(i as i16 + 1),
                i as u64 * 20,
            );
        }
        let played: Vec<i16> = (0..4).map(|_| pop(&mut jb).1).collect();
        assert_eq!(played, vec![1, 2, 3, 4]);
        // The sender jumps its timeline by a minute: playout follows after priming.
        for i in 0u32..4 {
            jb.push(
                Ssrc(1),
                480_000 + i * N as u32,
                frame(9),
                100 + i as u64 * 20,
            );
        }
        assert_eq!(pop(&mut jb), (Playout::Audio, 9));
        // A new SSRC also restarts.
        for i in 0u32..4 {
            jb.push(Ssrc(2), 7 + i * N as u32, frame(5), 200 + i as u64 * 20);
        }
        assert_eq!(pop(&mut jb), (Playout::Audio, 5));
        assert!(jb.stats().restarts >= 2);
    }

    #[test]
    fn too_deep_a_buffer_skips_ahead() {
        let mut jb = buffer();
        for seq in 0u32..40 {
            jb.push(Ssrc(1), seq * N as u32, frame(seq as i16), 0);
        }
        for _ in 0..40 {
            pop(&mut jb);
        }
        assert!(jb.stats().skipped_frames > 0);
        assert!(jb.buffered_samples() <= jb.target_delay_samples() * 2 + 2 * N as u64);
    }
}
