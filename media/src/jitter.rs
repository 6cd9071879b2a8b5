//! The receive jitter buffer, the one for every transport: reorders RTP audio, conceals loss and
//! adapts its depth to jitter. SIP phone lines (G.711, G.722, Opus on their RTP clocks) and the
//! web phone (Opus on WebRTC's 48 kHz clock) both play through it.
//!
//! Owns: encoded payloads keyed by their position on the sender's (extended) timeline, the
//! playout position, and the target depth. It is fed packets with their arrival time and drained
//! one frame per tick; it never reads a clock.
//!
//! Payloads are decoded when their turn to play comes, through a [`PayloadDecoder`], so a
//! stateful decoder (G.722's ADPCM, Opus) always sees the stream in timeline order, and a gap is
//! known to be a gap at that moment: the decoder is asked to conceal it first (Opus uses the
//! next packet's FEC when that packet is already here, else its PLC), and only a decoder that
//! cannot (G.711, G.722) leaves the buffer to fade the last frame out.
//!
//! Depth: the buffer plays a frame as soon as it has come (one frame's minimum depth), and
//! grows only when the line makes it. When a frame is due and has not come, the frame is
//! concealed and the playout position is held, so the packet still plays, a frame later,
//! instead of being dropped as late: for as long as nothing after it has come (an underrun: it
//! is late, or the sender paused), and for up to the target depth when later packets have come
//! (it may be reordered, or lost). The held time is given back as soon as the stream shows it
//! was a pause or a loss (the next packet lies beyond the held position). A held frame is the
//! last frame fading, not the codec's concealment, so the decoder's state stays where the
//! stream is and the awaited packet decodes as if it had come on time. A recognizer hears
//! every word the caller said, as fresh as the line allows; a buffer that has grown too deep
//! skips ahead.
//!
//! Invariants: [`JitterBuffer::pop`] always yields exactly the requested number of samples;
//! payloads are decoded at most once and in timeline order;
//! audio behind the playout position is dropped as late; a duplicate position is ignored; the
//! depth stays between the configured minimum and maximum; a jump in the sender's timeline (new
//! SSRC, resumed stream) restarts buffering rather than stalling; at most [`MAX_SEGMENTS`]
//! payloads are held, so a sender that floods (or a reader that stops popping) cannot grow
//! memory: the oldest are dropped first.

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
    /// Defaults for a phone line: one 20 ms frame to 200 ms. The depth grows past one frame only
    /// as the line's jitter (or a late packet) asks (see the module docs).
    pub fn phone(pcm_rate_hz: u32, rtp_clock_hz: u32) -> Self {
        Self {
            pcm_rate_hz,
            rtp_clock_hz,
            min_delay_ms: 20,
            max_delay_ms: 200,
        }
    }
}

/// Decodes payloads for the buffer, and conceals what never arrived.
pub trait PayloadDecoder {
    /// The payload's duration in PCM samples, or `None` when it is not a valid payload.
    fn samples_in(&self, payload: &[u8]) -> Option<usize>;
    /// Decodes one payload, appending PCM; `false` when the payload turned out malformed.
    fn decode(&mut self, payload: &[u8], pcm: &mut Vec<i16>) -> bool;
    /// Appends up to `samples` of concealment for lost audio; `next` is the payload right
    /// after the gap when it is already buffered (for forward error correction). Returns the
    /// samples appended; 0 means the codec has no concealment of its own.
    fn conceal(&mut self, next: Option<&[u8]>, samples: usize, pcm: &mut Vec<i16>) -> usize;
}

/// What one popped frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout {
    /// Received audio (possibly with a concealed part).
    Audio,
    /// A gap filled by the codec's concealment, or from the last audio, fading out.
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
    /// Payloads the decoder refused when their turn came (concealed instead).
    pub decode_errors: u64,
    /// Samples filled by the codec's own concealment (FEC or PLC), whole frames or parts.
    pub codec_concealed_samples: u64,
    /// Payloads dropped, oldest first, because [`MAX_SEGMENTS`] were already held.
    pub overflowed: u64,
    /// Frames concealed while waiting for the audio due (late, reordered or lost), with the
    /// playout position held (see the module docs).
    pub underruns: u64,
}

/// One payload on the timeline: encoded until its turn to play comes.
#[derive(Debug)]
struct Segment {
    /// Duration in PCM samples.
    samples: usize,
    audio: SegmentAudio,
}

#[derive(Debug)]
enum SegmentAudio {
    Encoded(Vec<u8>),
    Decoded(Vec<i16>),
}

impl Segment {
    fn encoded(&self) -> Option<&[u8]> {
        match &self.audio {
            SegmentAudio::Encoded(payload) => Some(payload),
            SegmentAudio::Decoded(_) => None,
        }
    }
}

/// The buffer.
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    ssrc: Option<Ssrc>,
    /// The highest extended RTP timestamp seen, for unwrapping.
    highest_ts: Option<u64>,
    /// Payloads by position (in PCM samples on the extended timeline).
    segments: BTreeMap<u64, Segment>,
    /// The next PCM position to play; `None` while priming.
    playout: Option<u64>,
    /// Playout time (PCM samples) that passed in underruns without moving `playout`.
    held: u64,
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
/// The most payloads held at once: two seconds of 20 ms packets, far above the deepest
/// configured delay, so only a flood reaches it.
pub const MAX_SEGMENTS: usize = 100;
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
            held: 0,
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

    /// The tuning in use.
    pub fn config(&self) -> JitterConfig {
        self.config
    }

    /// Starts over with a new tuning (a codec change), keeping the counters: everything
    /// buffered is dropped and playout primes again.
    pub fn reset(&mut self, config: JitterConfig) {
        let stats = self.stats;
        *self = Self::new(config);
        self.stats = stats;
    }

    /// Payloads held now (at most [`MAX_SEGMENTS`]).
    pub fn buffered_packets(&self) -> usize {
        self.segments.len()
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
        self.held = 0;
        self.last_transit = None;
        self.stats.restarts += 1;
    }

    /// Adds one packet's payload, `samples` long in PCM samples (from
    /// [`PayloadDecoder::samples_in`]). `arrival_ms` is the receive time on a monotonic clock.
    pub fn push(
        &mut self,
        ssrc: Ssrc,
        timestamp: u32,
        payload: Vec<u8>,
        samples: usize,
        arrival_ms: u64,
    ) {
        if payload.is_empty() || samples == 0 {
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
                return self.push(ssrc, timestamp, payload, samples, arrival_ms);
            }
            if position + samples as u64 <= playout {
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
        self.segments.insert(
            position,
            Segment {
                samples,
                audio: SegmentAudio::Encoded(payload),
            },
        );
        while self.segments.len() > MAX_SEGMENTS {
            let Some((oldest, _)) = self.segments.pop_first() else {
                break;
            };
            self.stats.overflowed += 1;
            // Playout resumes at the oldest payload still held.
            if let (Some(playout), Some((&next, _))) =
                (self.playout, self.segments.first_key_value())
            {
                if playout <= oldest {
                    self.playout = Some(next);
                }
            }
        }
    }

    /// Buffered audio ahead of the playout position (or of the earliest segment while priming).
    pub fn buffered_samples(&self) -> u64 {
        let Some((&first, _)) = self.segments.iter().next() else {
            return 0;
        };
        self.buffered_from(self.playout.unwrap_or(first))
    }

    /// Buffered audio from the timeline position `start` to the end of the latest payload.
    fn buffered_from(&self, start: u64) -> u64 {
        self.segments.iter().next_back().map_or(0, |(&last, seg)| {
            (last + seg.samples as u64).saturating_sub(start)
        })
    }

    /// Fills `out` with exactly `out.len()` samples: the next frame of playout, decoding the
    /// payloads it covers with `decoder` and asking it to conceal what is missing.
    pub fn pop(&mut self, out: &mut [i16], decoder: &mut dyn PayloadDecoder) -> Playout {
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
        // The first payload still to play (any that ends before `start` is stale).
        let ahead = self
            .segments
            .iter()
            .find(|(&key, seg)| key + seg.samples as u64 > start)
            .map(|(&key, _)| key);
        let target = self.target_delay_samples();
        if ahead.is_none_or(|a| a > start) {
            // The frame due has not come. Wait for it (conceal, and hold the position so that
            // it still plays when it comes) while nothing came after it (an underrun: it is
            // late, or the sender paused), or, when later audio came (it was reordered or
            // lost), for as long as the target depth allows.
            let waited_enough = self.held >= target || self.buffered_from(start) > target + n;
            if ahead.is_none() || !waited_enough {
                self.stats.underruns += 1;
                self.held += n;
                // The last frame fades; the decoder is not asked, so that its state stays
                // where the stream is and the awaited packet decodes as if it had come on
                // time (libopus after its PLC fades back in over about 100 ms).
                return self.conceal(out, None, None);
            }
        }
        if let Some(ahead) = ahead.filter(|&a| a > start) {
            // The stream moved on while we held: a pause or a loss, not a late packet. Give the
            // held time back, up to the gap.
            start += self.held.min(ahead - start);
        }
        self.held = 0;
        // Too deep: skip a frame to cut latency.
        if self.buffered_from(start) > target * 2 + n * 2 {
            start += n;
            self.stats.skipped_frames += 1;
        }
        let end = start + n;
        let mut covered = 0u64;
        // Where the frame is filled up to; a segment that starts beyond it leaves a hole.
        let mut cursor = start;
        let mut scratch = Vec::new();
        // Segments that overlap [start, end), in timeline order.
        let keys: Vec<u64> = self.segments.range(..end).map(|(k, _)| *k).collect();
        for key in keys {
            let Some(samples) = self.segments.get(&key).map(|s| s.samples as u64) else {
                continue;
            };
            let seg_end = key + samples;
            if seg_end <= start {
                self.segments.remove(&key);
                continue;
            }
            if key > cursor {
                let next = self.segments.get(&key).and_then(Segment::encoded);
                let filled = conceal_into(
                    decoder,
                    next,
                    &mut out[(cursor - start) as usize..(key - start) as usize],
                    &mut scratch,
                );
                self.stats.codec_concealed_samples += filled as u64;
                cursor = key;
            }
            self.decode_segment(key, decoder);
            let Some(SegmentAudio::Decoded(pcm)) = self.segments.get(&key).map(|s| &s.audio) else {
                continue;
            };
            let from = start.max(key);
            let to = end.min(seg_end);
            let src = &pcm[(from - key) as usize..(to - key) as usize];
            out[(from - start) as usize..(to - start) as usize].copy_from_slice(src);
            covered += to - from;
            cursor = cursor.max(to);
            if seg_end <= end {
                self.segments.remove(&key);
            }
        }
        self.playout = Some(end);
        // FEC can recover a gap only from the payload that directly follows it.
        let next_at_end = self.segments.get(&end).and_then(Segment::encoded);
        if covered > 0 {
            if cursor < end {
                let filled = conceal_into(
                    decoder,
                    next_at_end,
                    &mut out[(cursor - start) as usize..],
                    &mut scratch,
                );
                self.stats.codec_concealed_samples += filled as u64;
            }
            self.concealed_run = 0;
            self.empty_run = 0;
            self.last_frame.clear();
            self.last_frame.extend_from_slice(out);
            return Playout::Audio;
        }
        let next_at_end = next_at_end.map(<[u8]>::to_vec);
        self.conceal(out, next_at_end.as_deref(), Some(decoder))
    }

    /// A frame with no audio of its own: the codec's concealment (with a `decoder`) or the
    /// last frame fading out for [`CONCEAL_FRAMES`], then silence; a long enough run with
    /// nothing buffered primes playout again.
    fn conceal(
        &mut self,
        out: &mut [i16],
        next: Option<&[u8]>,
        decoder: Option<&mut dyn PayloadDecoder>,
    ) -> Playout {
        self.empty_run += 1;
        if self.segments.is_empty() && self.empty_run >= REPRIME_AFTER_EMPTY {
            self.playout = None;
            self.held = 0;
        }
        if self.concealed_run >= CONCEAL_FRAMES {
            return Playout::Silence;
        }
        self.concealed_run += 1;
        let mut scratch = Vec::new();
        let filled = decoder.map_or(0, |d| conceal_into(d, next, out, &mut scratch));
        if filled > 0 {
            self.stats.codec_concealed_samples += filled as u64;
            self.stats.concealed_frames += 1;
            return Playout::Concealed;
        }
        if self.last_frame.len() == out.len() {
            let gain = 1.0 - self.concealed_run as f32 / (CONCEAL_FRAMES + 1) as f32;
            for (o, &s) in out.iter_mut().zip(&self.last_frame) {
                *o = (s as f32 * gain) as i16;
            }
            self.stats.concealed_frames += 1;
            return Playout::Concealed;
        }
        Playout::Silence
    }

    /// Decodes the segment at `key` if it is still encoded. A payload the decoder refuses is
    /// concealed (or left silent) for its whole duration, so the timeline stays intact.
    fn decode_segment(&mut self, key: u64, decoder: &mut dyn PayloadDecoder) {
        let Some(segment) = self.segments.get_mut(&key) else {
            return;
        };
        let SegmentAudio::Encoded(payload) = &segment.audio else {
            return;
        };
        let mut pcm = Vec::with_capacity(segment.samples);
        if !decoder.decode(payload, &mut pcm) {
            self.stats.decode_errors += 1;
            pcm.clear();
            decoder.conceal(None, segment.samples, &mut pcm);
        }
        // The timeline follows the announced duration, whatever the decoder produced.
        pcm.resize(segment.samples, 0);
        segment.audio = SegmentAudio::Decoded(pcm);
    }
}

/// Fills `out` from the decoder's concealment; returns the samples it filled (the rest stay
/// as they were).
fn conceal_into(
    decoder: &mut dyn PayloadDecoder,
    next: Option<&[u8]>,
    out: &mut [i16],
    scratch: &mut Vec<i16>,
) -> usize {
    if out.is_empty() {
        return 0;
    }
    scratch.clear();
    let filled = decoder
        .conceal(next, out.len(), scratch)
        .min(out.len())
        .min(scratch.len());
    out[..filled].copy_from_slice(&scratch[..filled]);
    filled
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::g711::{ulaw_decode, ulaw_encode};
    use crate::codec::{Codec, VoiceCodec};

    const N: usize = 160;

    /// A 20 ms PCMU payload of one level.
    fn frame(value: i16) -> Vec<u8> {
        vec![ulaw_encode(value); N]
    }

    /// The level PCMU plays back for `value`.
    fn q(value: i16) -> i16 {
        ulaw_decode(ulaw_encode(value))
    }

    /// A buffer and the real codec that decodes for it.
    struct Line {
        jb: JitterBuffer,
        codec: VoiceCodec,
    }

    impl Line {
        fn new(codec: Codec) -> Self {
            Self {
                jb: JitterBuffer::new(JitterConfig::phone(
                    codec.pcm_rate_hz(),
                    codec.rtp_clock_hz(),
                )),
                codec: VoiceCodec::new(codec).unwrap(),
            }
        }

        fn push(&mut self, ssrc: u32, timestamp: u32, payload: Vec<u8>, arrival_ms: u64) {
            let samples = self.codec.samples_in(&payload).unwrap();
            self.jb
                .push(Ssrc(ssrc), timestamp, payload, samples, arrival_ms);
        }

        fn pop_frame(&mut self, samples: usize) -> (Playout, Vec<i16>) {
            let mut out = vec![0i16; samples];
            let kind = self.jb.pop(&mut out, &mut self.codec);
            (kind, out)
        }

        fn pop(&mut self) -> (Playout, i16) {
            let (kind, out) = self.pop_frame(N);
            (kind, out[0])
        }
    }

    fn buffer() -> Line {
        Line::new(Codec::Pcmu)
    }

    #[test]
    fn reorders_packets() {
        let mut jb = buffer();
        // Packets 1..=6 arrive as 1 3 2 4 6 5, one a frame, each frame popped as it comes.
        let mut played = Vec::new();
        for (i, seq) in [1u32, 3, 2, 4, 6, 5].iter().enumerate() {
            jb.push(1, seq * N as u32, frame(*seq as i16 * 1000), i as u64 * 20);
            played.push(jb.pop());
        }
        played.push(jb.pop());
        let audio: Vec<i16> = played
            .iter()
            .filter(|(kind, _)| *kind == Playout::Audio)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(audio, (1..=6).map(|s| q(s * 1000)).collect::<Vec<_>>());
        // Packet 2 was waited for, one frame, while packet 3 was already there.
        assert_eq!(played[1].0, Playout::Concealed, "{played:?}");
        assert_eq!(jb.jb.stats().late, 0);
        assert_eq!(jb.jb.stats().underruns, 1);
    }

    /// A packet that comes just after its turn still plays (a frame later), instead of being
    /// dropped; a pause of the sender costs no depth once it resumes.
    #[test]
    fn a_late_packet_plays_and_a_pause_gives_its_wait_back() {
        let mut jb = buffer();
        jb.push(1, 0, frame(1000), 0);
        assert_eq!(jb.pop(), (Playout::Audio, q(1000)));
        // Packet 1 is 5 ms late: its turn comes with nothing buffered.
        assert_eq!(jb.pop().0, Playout::Concealed);
        jb.push(1, N as u32, frame(2000), 25);
        assert_eq!(jb.pop(), (Playout::Audio, q(2000)));
        assert_eq!(jb.jb.stats().late, 0);
        // The depth grew by that frame: packet 2 comes and waits one pop.
        jb.push(1, 2 * N as u32, frame(3000), 45);
        assert_eq!(jb.pop(), (Playout::Audio, q(3000)));
        // The sender pauses for 5 frames (its timeline moves on), then resumes: the frame
        // after the pause plays at once, not 5 concealed frames later.
        for _ in 0..5 {
            jb.pop();
        }
        jb.push(1, 8 * N as u32, frame(4000), 160);
        assert_eq!(jb.pop(), (Playout::Audio, q(4000)));
        jb.push(1, 9 * N as u32, frame(5000), 180);
        assert_eq!(jb.pop(), (Playout::Audio, q(5000)));
    }

    #[test]
    fn conceals_a_lost_packet_then_goes_silent() {
        let mut jb = buffer();
        for seq in [1u32, 2, 3] {
            jb.push(1, seq * N as u32, frame(1000), seq as u64 * 20);
            assert_eq!(jb.pop(), (Playout::Audio, q(1000)));
        }
        // Packet 4 never comes.
        let (kind, value) = jb.pop();
        assert_eq!(kind, Playout::Concealed);
        assert!(value > 0 && value < q(1000), "{value}");
        jb.push(1, 5 * N as u32, frame(2000), 100);
        assert_eq!(jb.pop(), (Playout::Audio, q(2000)));
        assert_eq!(jb.jb.stats().concealed_frames, 1);
        assert_eq!(jb.jb.stats().codec_concealed_samples, 0, "G.711 has no PLC");
        for _ in 0..CONCEAL_FRAMES {
            assert_eq!(jb.pop().0, Playout::Concealed);
        }
        assert_eq!(jb.pop(), (Playout::Silence, 0));
    }

    #[test]
    fn drops_late_and_duplicate_packets() {
        let mut jb = buffer();
        for seq in 1u32..=4 {
            jb.push(1, seq * N as u32, frame(seq as i16 * 1000), seq as u64 * 20);
        }
        jb.push(1, 2 * N as u32, frame(9900), 90);
        assert_eq!(jb.jb.stats().duplicate, 1);
        jb.pop();
        jb.pop();
        jb.push(1, N as u32, frame(7700), 120);
        assert_eq!(jb.jb.stats().late, 1);
        assert_eq!(jb.pop().1, q(3000));
    }

    #[test]
    fn depth_adapts_to_jitter() {
        let mut steady = buffer();
        let mut jittery = buffer();
        for seq in 0u32..200 {
            steady.push(1, seq * N as u32, frame(100), seq as u64 * 20);
            let wobble = if seq % 2 == 0 { 0 } else { 70 };
            jittery.push(1, seq * N as u32, frame(100), seq as u64 * 20 + wobble);
        }
        assert_eq!(
            steady.jb.target_delay_samples(),
            160,
            "the minimum, one frame"
        );
        let target = jittery.jb.target_delay_samples();
        assert!(target > 800, "{target}");
        assert!(target <= 1600, "capped at 200 ms");
    }

    #[test]
    fn survives_timestamp_wrap_and_restarts_on_jumps() {
        let mut jb = buffer();
        let base = u32::MAX - N as u32;
        for i in 0u32..4 {
            jb.push(
                1,
                base.wrapping_add(i * N as u32),
                frame((i as i16 + 1) * 1000),
                i as u64 * 20,
            );
        }
        let played: Vec<i16> = (0..4).map(|_| jb.pop().1).collect();
        assert_eq!(played, (1..=4).map(|s| q(s * 1000)).collect::<Vec<_>>());
        // The sender jumps its timeline by a minute: playout follows after priming.
        for i in 0u32..4 {
            jb.push(1, 480_000 + i * N as u32, frame(9000), 100 + i as u64 * 20);
        }
        assert_eq!(jb.pop(), (Playout::Audio, q(9000)));
        // A new SSRC also restarts.
        for i in 0u32..4 {
            jb.push(2, 7 + i * N as u32, frame(5000), 200 + i as u64 * 20);
        }
        assert_eq!(jb.pop(), (Playout::Audio, q(5000)));
        assert!(jb.jb.stats().restarts >= 2);
    }

    #[test]
    fn too_deep_a_buffer_skips_ahead() {
        let mut jb = buffer();
        for seq in 0u32..40 {
            jb.push(1, seq * N as u32, frame(seq as i16 * 100), 0);
        }
        for _ in 0..40 {
            jb.pop();
        }
        assert!(jb.jb.stats().skipped_frames > 0);
        assert!(jb.jb.buffered_samples() <= jb.jb.target_delay_samples() * 2 + 2 * N as u64);
    }

    fn tone_16k(samples: usize, offset: usize) -> Vec<i16> {
        (offset..offset + samples)
            .map(|n| {
                let t = n as f64 / 16_000.0;
                let mut x = 0.0;
                for h in 1..=6 {
                    x += (2.0 * std::f64::consts::PI * 180.0 * h as f64 * t).sin() / h as f64;
                }
                (5_000.0 * x) as i16
            })
            .collect()
    }

    fn rms(s: &[i16]) -> f64 {
        (s.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / s.len().max(1) as f64).sqrt()
    }

    /// G.722 is stateful ADPCM: decoding at playout keeps the decoder in timeline order, so
    /// reordered arrival plays exactly what in-order arrival plays.
    #[test]
    fn a_stateful_decoder_sees_the_timeline_in_order() {
        let mut encoder = VoiceCodec::new(Codec::G722).unwrap();
        let payloads: Vec<Vec<u8>> = (0..8)
            .map(|i| {
                let mut p = Vec::new();
                encoder.encode(&tone_16k(320, i * 320), &mut p).unwrap();
                p
            })
            .collect();
        let play = |order: &[usize]| {
            let mut line = Line::new(Codec::G722);
            for (arrival, &i) in order.iter().enumerate() {
                line.push(1, i as u32 * 160, payloads[i].clone(), arrival as u64 * 20);
            }
            (0..8)
                .flat_map(|_| line.pop_frame(320).1)
                .collect::<Vec<i16>>()
        };
        let in_order = play(&[0, 1, 2, 3, 4, 5, 6, 7]);
        assert!(rms(&in_order) > 1_000.0);
        assert_eq!(play(&[1, 0, 3, 2, 4, 6, 5, 7]), in_order);
    }

    fn opus_payloads(count: usize) -> Vec<Vec<u8>> {
        let mut encoder = VoiceCodec::new(Codec::Opus).unwrap();
        (0..count)
            .map(|i| {
                let mut p = Vec::new();
                encoder.encode(&tone_16k(320, i * 320), &mut p).unwrap();
                p
            })
            .collect()
    }

    /// A lost Opus packet is recovered from the next packet's FEC when that packet is already
    /// buffered; when nothing follows yet, the buffer waits with a fade.
    #[test]
    fn opus_loss_is_concealed_by_the_codec() {
        let payloads = opus_payloads(40);
        let mut line = Line::new(Codec::Opus);
        let mut heard = Vec::new();
        for (i, payload) in payloads.iter().enumerate().take(30) {
            if i != 12 {
                line.push(1, i as u32 * 960, payload.clone(), i as u64 * 20);
            }
            if i >= 2 {
                heard.push(line.pop_frame(320));
            }
        }
        // Playout started at packet 0; packet 12 was lost with 13 already buffered.
        let kinds: Vec<Playout> = heard.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds[12], Playout::Concealed, "{kinds:?}");
        assert!(
            kinds[..12].iter().all(|k| *k == Playout::Audio),
            "{kinds:?}"
        );
        assert_eq!(kinds[13], Playout::Audio);
        assert!(rms(&heard[12].1) > 500.0, "FEC recovers the voice");
        assert_eq!(line.jb.stats().codec_concealed_samples, 320);
        // The sender stops: the buffer waits for it, fading the last frame out for a few
        // frames without touching the decoder (its state stays where the stream is), then
        // silence.
        let tail: Vec<(Playout, Vec<i16>)> = (0..8).map(|_| line.pop_frame(320)).collect();
        let concealed = tail
            .iter()
            .filter(|(k, _)| *k == Playout::Concealed)
            .count();
        assert_eq!(concealed, CONCEAL_FRAMES as usize);
        assert!(
            rms(&tail[0].1) > 500.0,
            "the fade starts at the voice's level"
        );
        assert_eq!(tail.last().map(|(k, _)| *k), Some(Playout::Silence));
        assert_eq!(line.jb.stats().codec_concealed_samples, 320);
    }

    /// A sender far faster than playout (or a reader that stops popping) cannot grow the
    /// buffer past its bound; playout then resumes from what is held.
    #[test]
    fn a_flood_cannot_grow_memory() {
        let mut jb = buffer();
        for seq in 0u32..1_000 {
            jb.push(1, seq * N as u32, frame(1000), 0);
        }
        assert_eq!(jb.jb.buffered_packets(), MAX_SEGMENTS);
        assert_eq!(jb.jb.stats().overflowed, 1_000 - MAX_SEGMENTS as u64);
        assert_eq!(jb.pop(), (Playout::Audio, q(1000)));
        for seq in 1_000u32..1_500 {
            jb.push(1, seq * N as u32, frame(2000), 20);
            jb.pop();
        }
        assert!(jb.jb.buffered_packets() <= MAX_SEGMENTS);
    }

    #[test]
    fn a_payload_the_decoder_refuses_keeps_the_timeline() {
        let payloads = opus_payloads(6);
        let mut line = Line::new(Codec::Opus);
        let mut kinds = Vec::new();
        for (i, payload) in payloads.iter().enumerate() {
            let mut payload = payload.clone();
            if i == 2 {
                // A TOC byte that announces two frames (code 2, so the duration is known) and
                // a first-frame length beyond the packet: libopus refuses it at decode time.
                payload = vec![(payload[0] & !0x03) | 0x02, 200];
            }
            let samples = line.codec.samples_in(&payload).unwrap_or(320);
            line.jb
                .push(Ssrc(1), i as u32 * 960, payload, samples, i as u64 * 20);
            kinds.push(line.pop_frame(320).0);
        }
        assert!(kinds.iter().all(|k| *k == Playout::Audio), "{kinds:?}");
        assert_eq!(line.jb.stats().decode_errors, 1);
    }
}
