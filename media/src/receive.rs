//! The receive side of one RTP audio stream: sequence accounting, the jitter buffer and the
//! receive counters, for the phone line and the web phone alike (str0m's `StreamRx` is the
//! model).
//!
//! Owns: the stream's [`ReceiveStats`] (RFC 3550 loss and jitter, for records and RTCP reports)
//! and its [`JitterBuffer`], configured from the codec's PCM rate and RTP clock. The codec's
//! state stays with the caller (it also encodes), and is lent to [`ReceiveStream::receive`] and
//! [`ReceiveStream::pop`] as a [`PayloadDecoder`]. Sans-IO: every packet comes with its
//! arrival time on the caller's monotonic clock, in milliseconds.
//!
//! Invariants: every packet of the stream is counted once, audio or not (telephone-events share
//! the sequence numbers, so they are counted with [`ReceiveStream::count`] to keep loss right);
//! a payload whose duration the codec cannot tell is counted as malformed and never buffered;
//! a codec change keeps the counters.

use crate::codec::Codec;
use crate::counters::MediaCounters;
use crate::jitter::{JitterBuffer, JitterConfig, PayloadDecoder, Playout};
use crate::rtp::{ReceiveStats, RtpPacket};

/// One stream's receive state (see the module docs).
#[derive(Debug)]
pub struct ReceiveStream {
    rtp_clock_hz: u32,
    jitter: JitterBuffer,
    received: ReceiveStats,
    packets_in: u64,
    malformed: u64,
}

impl ReceiveStream {
    /// A stream of `codec` audio, with a phone line's jitter tuning.
    pub fn new(codec: Codec) -> Self {
        Self::with_config(JitterConfig::phone(
            codec.pcm_rate_hz(),
            codec.rtp_clock_hz(),
        ))
    }

    /// A stream with its own jitter tuning.
    pub fn with_config(config: JitterConfig) -> Self {
        Self {
            rtp_clock_hz: config.rtp_clock_hz,
            jitter: JitterBuffer::new(config),
            received: ReceiveStats::default(),
            packets_in: 0,
            malformed: 0,
        }
    }

    /// The codec changed (a re-INVITE): buffered audio is dropped, the counters carry on.
    pub fn set_codec(&mut self, codec: Codec) {
        let config = JitterConfig {
            pcm_rate_hz: codec.pcm_rate_hz(),
            rtp_clock_hz: codec.rtp_clock_hz(),
            ..self.jitter.config()
        };
        self.rtp_clock_hz = config.rtp_clock_hz;
        self.jitter.reset(config);
    }

    /// Counts one packet of the stream (audio or telephone-event) for loss and jitter.
    pub fn count(&mut self, packet: &RtpPacket<'_>, arrival_ms: u64) {
        self.packets_in += 1;
        let arrival_rtp = arrival_ms * self.rtp_clock_hz as u64 / 1000;
        self.received
            .on_packet(packet.ssrc, packet.sequence, packet.timestamp, arrival_rtp);
    }

    /// Counts one audio packet and places its payload on the timeline, to be decoded when its
    /// turn to play comes. Returns `false` when the payload is empty or `decoder` cannot tell
    /// its duration (counted as malformed, not buffered).
    pub fn receive(
        &mut self,
        packet: &RtpPacket<'_>,
        arrival_ms: u64,
        decoder: &dyn PayloadDecoder,
    ) -> bool {
        self.count(packet, arrival_ms);
        let Some(samples) = decoder.samples_in(packet.payload) else {
            self.malformed += 1;
            return false;
        };
        self.jitter.push(
            packet.ssrc,
            packet.timestamp,
            packet.payload.to_vec(),
            samples,
            arrival_ms,
        );
        true
    }

    /// Fills `out` with the next frame of playout (see [`JitterBuffer::pop`]).
    pub fn pop(&mut self, out: &mut [i16], decoder: &mut dyn PayloadDecoder) -> Playout {
        self.jitter.pop(out, decoder)
    }

    /// The jitter buffer, for its depth and detailed counters.
    pub fn jitter(&self) -> &JitterBuffer {
        &self.jitter
    }

    /// The sequence accounting, for RTCP reception reports (which move its interval on).
    pub fn rtcp_stats_mut(&mut self) -> &mut ReceiveStats {
        &mut self.received
    }

    /// The receive side's counters; the transport adds its own (packets out, RTCP, ...).
    pub fn counters(&self) -> MediaCounters {
        let jitter = self.jitter.stats();
        MediaCounters {
            packets_in: self.packets_in,
            lost: self
                .received
                .expected()
                .saturating_sub(self.received.received()),
            late: jitter.late,
            concealed_frames: jitter.concealed_frames,
            underruns: jitter.underruns,
            dropped_malformed: self.malformed,
            decode_errors: jitter.decode_errors,
            ..MediaCounters::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::g711::ulaw_encode;
    use crate::codec::VoiceCodec;
    use crate::rtp::Ssrc;

    fn packet(sequence: u16, payload: &[u8]) -> RtpPacket<'_> {
        RtpPacket {
            marker: false,
            payload_type: 0,
            sequence,
            timestamp: sequence as u32 * 160,
            ssrc: Ssrc(9),
            payload,
        }
    }

    #[test]
    fn counts_loss_late_and_malformed_payloads() {
        let mut codec = VoiceCodec::new(Codec::Pcmu).expect("G.711");
        let mut stream = ReceiveStream::new(Codec::Pcmu);
        let voice = vec![ulaw_encode(3000); 160];
        let mut out = vec![0; 160];
        let mut played = Vec::new();
        // Packet 4 never comes; each frame is popped as its packet is due.
        for seq in [1u16, 2, 3, 0, 5, 6] {
            if seq != 0 {
                assert!(stream.receive(&packet(seq, &voice), seq as u64 * 20, &codec));
            }
            played.push(stream.pop(&mut out, &mut codec));
        }
        assert!(!stream.receive(&packet(7, &[]), 140, &codec));
        assert_eq!(played[3], Playout::Concealed, "{played:?}");
        assert_eq!(played[4], Playout::Audio, "{played:?}");
        let counters = stream.counters();
        assert_eq!(counters.packets_in, 6);
        assert_eq!(counters.lost, 1, "packet 4 never came");
        assert_eq!(counters.dropped_malformed, 1);
        assert!(counters.concealed_frames >= 1);
        assert_eq!(
            counters.underruns, 1,
            "packet 4's frame was waited for once"
        );
        // Packet 2 arrives again, long after its turn.
        stream.receive(&packet(2, &voice), 200, &codec);
        assert_eq!(stream.counters().late, 1);
        // A codec change keeps the counters.
        stream.set_codec(Codec::G722);
        assert_eq!(stream.counters().late, 1);
        assert_eq!(stream.jitter().config().pcm_rate_hz, 16_000);
    }
}
