//! The WebRTC media edge, sans-IO: Opus packets from the browser in, 20 ms pipeline frames out,
//! and the bot's frames back to Opus packets.
//!
//! [`WebMediaSession`] is the web phone's use of `hotline-media`, the layer the phone line uses
//! too: the receive side is a [`ReceiveStream`] (RFC 3550 sequence accounting and the one jitter
//! buffer: reorder, adaptive depth, Opus FEC/PLC for loss, bounded memory) and the codec is the
//! shared libopus [`VoiceCodec`]. It never reads a clock or a socket: the driver pushes each
//! received RTP packet with its arrival time ([`WebMediaSession::push_rtp`]) and, every 20 ms
//! on its monotonic clock, takes exactly one caller frame with
//! [`WebMediaSession::next_caller_frame`]. Bot frames become Opus payloads with
//! [`WebMediaSession::encode_bot_frame`]. [`WebMediaSession::counters`] are the call's
//! [`MediaCounters`], the same as a phone call's, for the record's `call_end`.
//!
//! Rates: browsers send Opus with a 48 kHz RTP clock, which places packets on the jitter
//! buffer's timeline. libopus decodes straight to the pipeline's 16 kHz and encodes from it
//! (Opus's internal band-limiting is the resampler), so this edge needs no separate resampler
//! and no 48 kHz buffers. RTP timestamps on the way out still advance by 960 per 20 ms, as the
//! 48 kHz clock demands; the WebRTC packetizer does that.
//!
//! Invariants: every call to `next_caller_frame` returns exactly one frame (caller audio, loss
//! concealment or silence); a malformed packet is counted and concealed, never fatal; the
//! jitter buffer holds at most [`MAX_SEGMENTS`] packets, so a sender faster than our clock
//! cannot grow memory.

use hotline_media::codec::opus::MAX_PACKET_BYTES;
use hotline_media::rtp::RtpPacket;
use hotline_media::{Codec, CodecError, MediaCounters, Playout, ReceiveStream, VoiceCodec};

use crate::audio::Frame;

#[cfg(doc)]
use hotline_media::jitter::MAX_SEGMENTS;

/// An Opus codec failure.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("opus: {0}")]
    Codec(#[from] CodecError),
}

/// One WebRTC call's audio state (see the module docs).
#[derive(Debug)]
pub struct WebMediaSession {
    codec: VoiceCodec,
    receive: ReceiveStream,
    packets_out: u64,
    encode_errors: u64,
}

impl WebMediaSession {
    /// A new session: the shared Opus codec (16 kHz PCM, 48 kHz RTP clock) and its receive
    /// stream.
    pub fn new() -> Result<Self, MediaError> {
        Ok(Self {
            codec: VoiceCodec::new(Codec::Opus)?,
            receive: ReceiveStream::new(Codec::Opus),
            packets_out: 0,
            encode_errors: 0,
        })
    }

    /// Takes one RTP packet from the caller (Opus) that arrived at `arrival_ms` on the
    /// driver's monotonic clock.
    pub fn push_rtp(&mut self, packet: &RtpPacket<'_>, arrival_ms: u64) {
        self.receive.receive(packet, arrival_ms, &self.codec);
    }

    /// The caller's next 20 ms frame and what it holds: decoded audio, loss concealment, or
    /// silence when nothing has arrived. Call exactly once per 20 ms tick.
    pub fn next_caller_frame(&mut self) -> (Frame, Playout) {
        let mut frame = Frame::silence();
        let playout = self.receive.pop(frame.samples_mut(), &mut self.codec);
        (frame, playout)
    }

    /// Encodes one bot frame as an Opus payload (20 ms).
    pub fn encode_bot_frame(&mut self, frame: &Frame) -> Result<Vec<u8>, MediaError> {
        let mut payload = Vec::with_capacity(MAX_PACKET_BYTES);
        match self.codec.encode(frame.samples(), &mut payload) {
            Ok(()) => {
                self.packets_out += 1;
                Ok(payload)
            }
            Err(e) => {
                self.encode_errors += 1;
                Err(e.into())
            }
        }
    }

    /// The call's media counters so far. RTCP is the WebRTC stack's, so `rtcp_in` stays 0.
    pub fn counters(&self) -> MediaCounters {
        MediaCounters {
            packets_out: self.packets_out,
            encode_errors: self.encode_errors,
            ..self.receive.counters()
        }
    }

    /// Caller packets waiting in the jitter buffer.
    pub fn buffered_packets(&self) -> usize {
        self.receive.jitter().buffered_packets()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{FRAME_SAMPLES, SAMPLE_RATE_HZ};
    use hotline_media::jitter::MAX_SEGMENTS;
    use hotline_media::Ssrc;

    /// 48 kHz RTP clock ticks per 20 ms packet.
    const TS_STEP: u32 = 960;

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

    /// Packet `index` of a browser's stream that starts at sequence `first_seq`.
    fn rtp(first_seq: u16, index: usize, payload: &[u8]) -> RtpPacket<'_> {
        RtpPacket {
            marker: false,
            payload_type: 111,
            sequence: first_seq.wrapping_add(index as u16),
            timestamp: 0xffff_f000u32.wrapping_add(index as u32 * TS_STEP),
            ssrc: Ssrc(0x5eed),
            payload,
        }
    }

    /// A live call: one packet arrives per 20 ms tick, in the given order (packet indices of a
    /// stream from `first_seq`), and one frame is played per tick (the first packet plays at
    /// once: the buffer primes on one frame); then one more frame. Nothing may be lost.
    fn play(packets: &[Vec<u8>], first_seq: u16, order: &[usize]) -> Vec<(Frame, Playout)> {
        let mut rx = WebMediaSession::new().expect("codec");
        let mut played = Vec::new();
        for (tick, &i) in order.iter().enumerate() {
            rx.push_rtp(&rtp(first_seq, i, &packets[i]), tick as u64 * 20);
            played.push(rx.next_caller_frame());
        }
        played.push(rx.next_caller_frame());
        assert_eq!(rx.counters().lost, 0);
        assert_eq!(rx.counters().late, 0);
        played
    }

    fn audio_frames(played: &[(Frame, Playout)]) -> usize {
        played.iter().filter(|(_, k)| *k == Playout::Audio).count()
    }

    #[test]
    fn opus_round_trip_keeps_the_signal() {
        let packets = encoded_tone(50);
        let mut rx = WebMediaSession::new().expect("codec");
        let mut energy = 0.0;
        for (i, p) in packets.iter().enumerate() {
            rx.push_rtp(&rtp(1000, i, p), i as u64 * 20);
            let (frame, _) = rx.next_caller_frame();
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
        let counters = rx.counters();
        assert_eq!((counters.packets_in, counters.lost), (50, 0));
        assert_eq!(counters.concealed_frames, 0);
    }

    #[test]
    fn silence_before_first_packet_and_concealment_when_the_sender_stalls() {
        let mut rx = WebMediaSession::new().expect("codec");
        assert_eq!(rx.next_caller_frame(), (Frame::silence(), Playout::Silence));
        let packets = encoded_tone(4);
        for (i, p) in packets.iter().enumerate() {
            rx.push_rtp(&rtp(7, i, p), i as u64 * 20);
        }
        let kinds: Vec<Playout> = (0..12).map(|_| rx.next_caller_frame().1).collect();
        assert!(kinds[..4].iter().all(|k| *k == Playout::Audio), "{kinds:?}");
        // The sender stalls: libopus conceals a few frames, then silence.
        assert_eq!(kinds[4], Playout::Concealed, "{kinds:?}");
        assert_eq!(kinds.last(), Some(&Playout::Silence), "{kinds:?}");
        assert_eq!(rx.next_caller_frame().0, Frame::silence());
    }

    /// Reordered arrival loses nothing: the buffer waits a frame for a packet that comes
    /// after its successor, and the stateful Opus decoder sees the stream in timeline order.
    #[test]
    fn reordered_packets_play_in_sequence() {
        let packets = encoded_tone(8);
        let in_order = play(&packets, 1000, &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(audio_frames(&in_order[..8]), 8, "{in_order:?}");
        let reordered = play(&packets, 1000, &[0, 2, 1, 3, 5, 4, 6, 7]);
        assert_eq!(audio_frames(&reordered), 8, "{reordered:?}");
        assert_eq!(reordered[1].1, Playout::Concealed, "packet 1 is waited for");
        // The waited-for packet plays exactly what it plays in order: the decoder was not
        // asked to conceal while the buffer waited.
        assert_eq!(reordered[2].0, in_order[1].0);
    }

    /// A packet that never comes is concealed when its turn comes, and the next one plays on
    /// time; the loss is counted once.
    #[test]
    fn a_lost_packet_is_concealed_and_the_next_plays_on_time() {
        let packets = encoded_tone(10);
        let mut rx = WebMediaSession::new().expect("codec");
        let mut kinds = Vec::new();
        for (tick, packet) in packets.iter().enumerate() {
            // Packet 4 never comes; frame `tick` plays at each tick.
            if tick != 4 {
                rx.push_rtp(&rtp(1, tick, packet), tick as u64 * 20);
            }
            kinds.push(rx.next_caller_frame().1);
        }
        assert_eq!(kinds[0], Playout::Audio, "no priming wait");
        assert_eq!(kinds[4], Playout::Concealed, "frame 4: {kinds:?}");
        assert_eq!(kinds.iter().filter(|k| **k == Playout::Audio).count(), 9);
        let counters = rx.counters();
        assert_eq!((counters.lost, counters.concealed_frames), (1, 1));

        // Packet 2 comes after 3: it is waited for, and nothing is lost.
        let late = play(&packets, 1, &[0, 1, 3, 2, 4]);
        assert_eq!(audio_frames(&late), 5, "{late:?}");
    }

    #[test]
    fn sequence_numbers_and_timestamps_wrap() {
        let packets = encoded_tone(8);
        // Sequence 65534, 65535, 0, 1, ...; the timestamps cross 2^32 as well.
        let played = play(&packets, 65_534, &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(audio_frames(&played), 8, "{played:?}");
    }

    #[test]
    fn lost_and_malformed_packets_are_concealed_not_fatal() {
        let packets = encoded_tone(10);
        let mut rx = WebMediaSession::new().expect("codec");
        let mut frames = Vec::new();
        let garbage = [0xff, 0xff, 0xff, 0xff, 0x00];
        for tick in 0..12usize {
            // Garbage in place of packet 1, then 2 missing, then 3..=6.
            let payload = match tick {
                1 => Some(&garbage[..]),
                0 | 3..=6 => packets.get(tick).map(Vec::as_slice),
                _ => None,
            };
            if let Some(payload) = payload {
                rx.push_rtp(&rtp(0, tick, payload), tick as u64 * 20);
            }
            frames.push(rx.next_caller_frame());
        }
        let kinds: Vec<Playout> = frames.iter().map(|(_, k)| *k).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == Playout::Audio).count(),
            5,
            "packets 0 and 3..=6 play: {kinds:?}"
        );
        assert!(frames
            .iter()
            .any(|(f, k)| *k == Playout::Audio && f.rms() > 1000.0));
        let counters = rx.counters();
        assert_eq!(counters.packets_in, 6, "{counters:?}");
        assert_eq!(counters.lost, 1, "{counters:?}");
        assert_eq!(counters.dropped_malformed, 1, "{counters:?}");
        assert!(counters.concealed_frames >= 2, "{counters:?}");
    }

    #[test]
    fn a_flood_cannot_grow_memory() {
        let packets = encoded_tone(5);
        let mut rx = WebMediaSession::new().expect("codec");
        for i in 0..1000 {
            rx.push_rtp(&rtp(0, i, &packets[i % 5]), 0);
        }
        assert!(rx.buffered_packets() <= MAX_SEGMENTS);
        assert_eq!(rx.next_caller_frame().1, Playout::Audio);
        assert!(rx.buffered_packets() <= MAX_SEGMENTS);
    }
}
