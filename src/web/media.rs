//! The WebRTC media edge, sans-IO: Opus packets from the browser in, 20 ms pipeline frames out,
//! and the bot's frames back to Opus packets.
//!
//! [`WebMediaSession`] owns a small reorder/jitter buffer keyed by RTP sequence number, a libopus
//! decoder and a libopus encoder. It never reads a clock or a socket: the driver pushes each
//! received RTP payload with [`WebMediaSession::push_rtp`] and, every 20 ms on its monotonic
//! clock, takes exactly one caller frame with [`WebMediaSession::next_caller_frame`]. Bot frames
//! are turned into Opus payloads with [`WebMediaSession::encode_bot_frame`].
//!
//! Rates: browsers send Opus with a 48 kHz RTP clock. libopus decodes straight to the
//! pipeline's 16 kHz and encodes from it (Opus's internal band-limiting is the resampler), so
//! this edge needs no separate resampler and no 48 kHz buffers. RTP timestamps on the way out
//! still advance by 960 per 20 ms, as the 48 kHz clock demands; the packetizer does that.
//!
//! Invariants: the jitter buffer holds at most [`MAX_BUFFERED_PACKETS`] packets and the decoded
//! FIFO at most [`MAX_FIFO_MS`] of audio, so a sender faster than our clock cannot grow memory;
//! every call to `next_caller_frame` returns exactly one frame (caller audio, loss concealment
//! or silence).

use std::collections::{BTreeMap, VecDeque};

use crate::audio::{Frame, FRAME_SAMPLES, SAMPLE_RATE_HZ};

/// Packets held for reordering before a missing one is declared lost.
pub const JITTER_DEPTH_PACKETS: usize = 3;
/// The most packets the jitter buffer holds; beyond it the oldest are played out at once.
pub const MAX_BUFFERED_PACKETS: usize = 50;
/// The most decoded caller audio kept ahead of the pipeline clock.
pub const MAX_FIFO_MS: usize = 200;
/// The largest Opus packet a 20 ms frame can produce (RFC 6716 §3.4 caps a frame at 1275 bytes).
pub const MAX_OPUS_PACKET_BYTES: usize = 1275;
/// The longest audio one Opus packet can carry: 120 ms.
const MAX_PACKET_MS: usize = 120;
/// The encoder's bit rate: wideband speech.
pub const OPUS_BITRATE_BPS: i32 = 32_000;

/// An Opus codec failure.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("opus codec could not be created: {0}")]
    Codec(#[source] opus::Error),
    #[error("opus encode failed: {0}")]
    Encode(#[source] opus::Error),
}

/// Counters for one call's media, for the call record and the CPU benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// RTP packets received from the caller.
    pub packets_in: u64,
    /// Packets that arrived after their turn had been played out (or were duplicates).
    pub packets_late: u64,
    /// Packets never received, concealed by Opus loss concealment.
    pub packets_lost: u64,
    /// Packets libopus rejected as malformed (concealed too).
    pub packets_malformed: u64,
    /// Caller frames that had no audio at all (before the first packet, or the sender stalled).
    pub frames_silence: u64,
    /// Opus packets encoded for the caller.
    pub packets_out: u64,
}

/// What the jitter buffer hands out next.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Playout {
    /// The next packet in sequence.
    Packet(Vec<u8>),
    /// The next packet never came.
    Lost,
}

/// Reorders RTP payloads by sequence number and declares gaps lost once enough later packets
/// have arrived. Sequence numbers are unwrapped to 64 bits so the 16-bit wrap is invisible.
#[derive(Debug, Default)]
struct JitterBuffer {
    packets: BTreeMap<u64, Vec<u8>>,
    /// The unwrapped sequence number expected next; `None` before the first packet.
    next_seq: Option<u64>,
    /// The highest unwrapped sequence number seen, for unwrapping the next one.
    highest_seq: Option<u64>,
}

impl JitterBuffer {
    /// Unwraps a 16-bit sequence number against the highest one seen.
    fn unwrap_seq(&self, seq: u16) -> u64 {
        let Some(highest) = self.highest_seq else {
            // Start well above zero so a slightly earlier packet still unwraps.
            return (1 << 16) + u64::from(seq);
        };
        let base = highest & !0xffff;
        let candidates = [base.wrapping_sub(1 << 16), base, base + (1 << 16)];
        candidates
            .iter()
            .map(|b| b.wrapping_add(u64::from(seq)))
            .min_by_key(|c| c.abs_diff(highest))
            .expect("three candidates")
    }

    /// Adds a packet; returns false when it is late or a duplicate and was dropped.
    fn push(&mut self, seq: u16, payload: Vec<u8>) -> bool {
        let seq = self.unwrap_seq(seq);
        if let Some(next) = self.next_seq {
            if seq < next || self.packets.contains_key(&seq) {
                return false;
            }
        } else {
            self.next_seq = Some(seq);
        }
        self.highest_seq = Some(self.highest_seq.map_or(seq, |h| h.max(seq)));
        self.packets.insert(seq, payload);
        while self.packets.len() > MAX_BUFFERED_PACKETS {
            // A burst we cannot hold: skip ahead to the oldest packet we keep.
            let oldest = *self.packets.keys().next().expect("buffer is not empty");
            self.packets.remove(&oldest);
            self.next_seq = self.packets.keys().next().copied();
        }
        true
    }

    /// The next packet in order, a loss, or nothing yet.
    fn pop(&mut self) -> Option<Playout> {
        let next = self.next_seq?;
        if let Some(payload) = self.packets.remove(&next) {
            self.next_seq = Some(next + 1);
            return Some(Playout::Packet(payload));
        }
        if self.packets.len() >= JITTER_DEPTH_PACKETS {
            self.next_seq = Some(next + 1);
            return Some(Playout::Lost);
        }
        None
    }
}

/// One WebRTC call's audio codec state (see the module docs).
pub struct WebMediaSession {
    jitter: JitterBuffer,
    decoder: opus::Decoder,
    encoder: opus::Encoder,
    /// Decoded caller audio at 16 kHz, not yet handed to the pipeline.
    fifo: VecDeque<i16>,
    /// Scratch for one decoded packet (up to 120 ms at 16 kHz).
    decode_buf: Vec<i16>,
    /// Whether any caller packet has been decoded (concealment only makes sense after one).
    started: bool,
    stats: MediaStats,
}

impl std::fmt::Debug for WebMediaSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebMediaSession")
            .field("fifo_samples", &self.fifo.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl WebMediaSession {
    /// A new session: a mono 16 kHz Opus decoder and a VoIP-tuned mono 16 kHz encoder.
    pub fn new() -> Result<Self, MediaError> {
        let decoder =
            opus::Decoder::new(SAMPLE_RATE_HZ, opus::Channels::Mono).map_err(MediaError::Codec)?;
        let mut encoder = opus::Encoder::new(
            SAMPLE_RATE_HZ,
            opus::Channels::Mono,
            opus::Application::Voip,
        )
        .map_err(MediaError::Codec)?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(OPUS_BITRATE_BPS))
            .map_err(MediaError::Codec)?;
        encoder.set_inband_fec(true).map_err(MediaError::Codec)?;
        Ok(Self {
            jitter: JitterBuffer::default(),
            decoder,
            encoder,
            fifo: VecDeque::with_capacity(samples_for_ms(MAX_FIFO_MS)),
            decode_buf: vec![0; samples_for_ms(MAX_PACKET_MS)],
            started: false,
            stats: MediaStats::default(),
        })
    }

    /// Takes one RTP payload from the caller (Opus), with its RTP sequence number.
    pub fn push_rtp(&mut self, seq: u16, payload: &[u8]) {
        self.stats.packets_in += 1;
        if payload.is_empty() {
            return;
        }
        if !self.jitter.push(seq, payload.to_vec()) {
            self.stats.packets_late += 1;
        }
    }

    /// The caller's next 20 ms frame: decoded audio, loss concealment, or silence when nothing
    /// has arrived. Call exactly once per 20 ms tick.
    pub fn next_caller_frame(&mut self) -> Frame {
        while self.fifo.len() < FRAME_SAMPLES {
            match self.jitter.pop() {
                Some(Playout::Packet(payload)) => self.decode(&payload),
                Some(Playout::Lost) => {
                    self.stats.packets_lost += 1;
                    self.conceal();
                }
                None => break,
            }
        }
        if self.fifo.is_empty() {
            self.stats.frames_silence += 1;
            return Frame::silence();
        }
        let n = self.fifo.len().min(FRAME_SAMPLES);
        let samples: Vec<i16> = self.fifo.drain(..n).collect();
        Frame::from_slice(&samples)
    }

    /// Encodes one bot frame as an Opus payload (20 ms).
    pub fn encode_bot_frame(&mut self, frame: &Frame) -> Result<Vec<u8>, MediaError> {
        let mut out = vec![0u8; MAX_OPUS_PACKET_BYTES];
        let n = self
            .encoder
            .encode(frame.samples(), &mut out)
            .map_err(MediaError::Encode)?;
        out.truncate(n);
        self.stats.packets_out += 1;
        Ok(out)
    }

    /// The counters so far.
    pub fn stats(&self) -> MediaStats {
        self.stats
    }

    /// Decodes one packet into the FIFO; a packet libopus rejects is concealed instead.
    fn decode(&mut self, payload: &[u8]) {
        match self.decoder.decode(payload, &mut self.decode_buf, false) {
            Ok(n) => {
                self.started = true;
                let n = n.min(self.decode_buf.len());
                self.fifo.extend(&self.decode_buf[..n]);
                self.trim_fifo();
            }
            Err(_) => {
                self.stats.packets_malformed += 1;
                self.conceal();
            }
        }
    }

    /// Fills one 20 ms gap with Opus packet-loss concealment.
    fn conceal(&mut self) {
        if !self.started {
            return;
        }
        let frame = &mut self.decode_buf[..FRAME_SAMPLES];
        match self.decoder.decode(&[], frame, false) {
            Ok(n) => {
                let n = n.min(FRAME_SAMPLES);
                self.fifo.extend(&self.decode_buf[..n]);
            }
            Err(_) => self.fifo.extend(std::iter::repeat_n(0, FRAME_SAMPLES)),
        }
        self.trim_fifo();
    }

    /// Drops the oldest audio when the sender runs ahead of our clock.
    fn trim_fifo(&mut self) {
        let max = samples_for_ms(MAX_FIFO_MS);
        if self.fifo.len() > max {
            let excess = self.fifo.len() - max;
            self.fifo.drain(..excess);
        }
    }
}

/// Samples at the pipeline rate in `ms` milliseconds.
const fn samples_for_ms(ms: usize) -> usize {
    SAMPLE_RATE_HZ as usize * ms / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 20 ms frame of a 440 Hz tone at the given amplitude, phase-continuous across frames.
    fn tone(frame_index: usize, amplitude: f32) -> Frame {
        let mut samples = [0i16; FRAME_SAMPLES];
        for (i, s) in samples.iter_mut().enumerate() {
            let t = (frame_index * FRAME_SAMPLES + i) as f32 / SAMPLE_RATE_HZ as f32;
            *s = (amplitude * (2.0 * std::f32::consts::PI * 440.0 * t).sin()) as i16;
        }
        Frame::from_slice(&samples)
    }

    fn encoded_tone(frames: usize) -> Vec<Vec<u8>> {
        let mut enc = WebMediaSession::new().expect("codec");
        (0..frames)
            .map(|i| enc.encode_bot_frame(&tone(i, 8000.0)).expect("encode"))
            .collect()
    }

    #[test]
    fn opus_round_trip_keeps_the_signal() {
        let packets = encoded_tone(50);
        let mut rx = WebMediaSession::new().expect("codec");
        let mut energy = 0.0;
        for (i, p) in packets.iter().enumerate() {
            rx.push_rtp(1000 + i as u16, p);
            let frame = rx.next_caller_frame();
            if i > 5 {
                energy += frame.rms();
            }
        }
        let mean_rms = energy / 44.0;
        // A 8000-amplitude sine has an RMS of about 5657; Opus keeps it within a few dB.
        assert!(
            mean_rms > 3000.0 && mean_rms < 8000.0,
            "mean rms {mean_rms}"
        );
        assert_eq!(rx.stats().packets_lost, 0);
        assert_eq!(rx.stats().frames_silence, 0);
    }

    #[test]
    fn silence_before_first_packet_and_when_sender_stalls() {
        let mut rx = WebMediaSession::new().expect("codec");
        assert_eq!(rx.next_caller_frame(), Frame::silence());
        assert_eq!(rx.next_caller_frame(), Frame::silence());
        assert_eq!(rx.stats().frames_silence, 2);
        let packets = encoded_tone(2);
        rx.push_rtp(7, &packets[0]);
        rx.push_rtp(8, &packets[1]);
        let _ = rx.next_caller_frame();
        let _ = rx.next_caller_frame();
        assert_eq!(rx.stats().frames_silence, 2);
        assert_eq!(rx.next_caller_frame(), Frame::silence());
        assert_eq!(rx.stats().frames_silence, 3);
    }

    #[test]
    fn reordered_packets_play_in_sequence() {
        let mut jb = JitterBuffer::default();
        assert!(jb.push(10, vec![10]));
        assert!(jb.push(12, vec![12]));
        assert!(jb.push(11, vec![11]));
        assert_eq!(jb.pop(), Some(Playout::Packet(vec![10])));
        assert_eq!(jb.pop(), Some(Playout::Packet(vec![11])));
        assert_eq!(jb.pop(), Some(Playout::Packet(vec![12])));
        assert_eq!(jb.pop(), None);
        // Late and duplicate packets are refused.
        assert!(!jb.push(11, vec![11]));
    }

    #[test]
    fn a_gap_is_declared_lost_once_later_packets_wait() {
        let mut jb = JitterBuffer::default();
        jb.push(1, vec![1]);
        assert_eq!(jb.pop(), Some(Playout::Packet(vec![1])));
        // 2 is missing; with fewer than JITTER_DEPTH_PACKETS waiting we hold on.
        jb.push(3, vec![3]);
        jb.push(4, vec![4]);
        assert_eq!(jb.pop(), None);
        jb.push(5, vec![5]);
        assert_eq!(jb.pop(), Some(Playout::Lost));
        assert_eq!(jb.pop(), Some(Playout::Packet(vec![3])));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut jb = JitterBuffer::default();
        for seq in [65534u16, 65535, 0, 1] {
            assert!(jb.push(seq, vec![seq as u8]));
        }
        let order: Vec<_> = std::iter::from_fn(|| jb.pop()).collect();
        assert_eq!(
            order,
            vec![
                Playout::Packet(vec![254]),
                Playout::Packet(vec![255]),
                Playout::Packet(vec![0]),
                Playout::Packet(vec![1])
            ]
        );
    }

    #[test]
    fn lost_and_malformed_packets_are_concealed_not_fatal() {
        let packets = encoded_tone(10);
        let mut rx = WebMediaSession::new().expect("codec");
        rx.push_rtp(0, &packets[0]);
        assert!(rx.next_caller_frame().rms() > 0.0);
        // Garbage in place of packet 1, then 2 missing, then 3..=6.
        rx.push_rtp(1, &[0xff, 0xff, 0xff, 0xff, 0x00]);
        for seq in 3..=6u16 {
            rx.push_rtp(seq, &packets[seq as usize]);
        }
        for _ in 0..6 {
            let _ = rx.next_caller_frame();
        }
        let stats = rx.stats();
        assert_eq!(stats.packets_lost, 1, "{stats:?}");
        assert!(stats.packets_malformed <= 1, "{stats:?}");
        assert_eq!(stats.packets_in, 6);
    }

    #[test]
    fn a_flood_cannot_grow_memory() {
        let packets = encoded_tone(5);
        let mut rx = WebMediaSession::new().expect("codec");
        for seq in 0..1000u16 {
            rx.push_rtp(seq, &packets[seq as usize % 5]);
        }
        assert!(rx.jitter.packets.len() <= MAX_BUFFERED_PACKETS);
        let _ = rx.next_caller_frame();
        assert!(rx.fifo.len() <= samples_for_ms(MAX_FIFO_MS));
    }
}
