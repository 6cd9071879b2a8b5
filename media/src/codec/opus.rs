//! Opus (RFC 6716) through libopus (the `opus` crate), for phone lines and WebRTC alike.
//!
//! Owns: one call's libopus encoder and decoder. Both run at [`OPUS_PCM_RATE_HZ`] (16 kHz)
//! mono: libopus resamples internally, so the line hands the pipeline its own rate with no
//! resampler of ours, while the RTP clock stays 48 kHz as RFC 7587 requires (senders advance
//! timestamps by [`crate::Codec::rtp_clock_hz`], not by the PCM rate). A browser's stereo
//! stream is downmixed by libopus.
//!
//! Invariants: every payload either decodes or is reported as [`CodecError::Corrupt`], never a
//! panic (libopus validates packets); a packet longer than [`MAX_PACKET_MS`] is refused;
//! concealment ([`OpusCodec::conceal`]) produces exactly the lost duration, using the next
//! packet's in-band FEC when it is at hand and libopus packet loss concealment otherwise, so
//! the decoder's state stays in step with the stream. The encoder sends mono wideband speech at
//! [`OPUS_BITRATE_BPS`] with in-band FEC, tuned for the 10 % loss a bad phone path shows.

use super::CodecError;

/// The PCM rate of the Opus codec: the pipeline's rate.
pub const OPUS_PCM_RATE_HZ: u32 = 16_000;
/// The encoder's bit rate: wideband speech with room for FEC.
pub const OPUS_BITRATE_BPS: i32 = 32_000;
/// The packet loss the encoder plans its FEC for.
pub const OPUS_EXPECTED_LOSS_PERCENT: i32 = 10;
/// The longest audio one Opus packet can carry (RFC 6716 §3.2.5).
pub const MAX_PACKET_MS: usize = 120;
/// The largest packet we write for one 20 ms frame (RFC 6716 caps a frame at 1275 bytes).
pub const MAX_PACKET_BYTES: usize = 1275;
/// libopus conceals and recovers in whole 2.5 ms steps.
const CONCEAL_STEP_SAMPLES: usize = OPUS_PCM_RATE_HZ as usize / 400;

const MAX_PACKET_SAMPLES: usize = OPUS_PCM_RATE_HZ as usize * MAX_PACKET_MS / 1000;

/// A libopus encoder and decoder pair for one call.
pub struct OpusCodec {
    encoder: ::opus::Encoder,
    decoder: ::opus::Decoder,
    /// Decode scratch: room for the longest packet.
    scratch: Vec<i16>,
    packet: Vec<u8>,
}

impl std::fmt::Debug for OpusCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusCodec")
            .field("pcm_rate_hz", &OPUS_PCM_RATE_HZ)
            .field("bitrate_bps", &OPUS_BITRATE_BPS)
            .finish_non_exhaustive()
    }
}

fn setup(error: ::opus::Error) -> CodecError {
    CodecError::Setup(format!("libopus: {error}"))
}

impl OpusCodec {
    /// A mono 16 kHz VoIP encoder with in-band FEC, and a mono 16 kHz decoder (a stereo
    /// sender is downmixed by libopus).
    pub fn new() -> Result<Self, CodecError> {
        let mut encoder = ::opus::Encoder::new(
            OPUS_PCM_RATE_HZ,
            ::opus::Channels::Mono,
            ::opus::Application::Voip,
        )
        .map_err(setup)?;
        encoder
            .set_bitrate(::opus::Bitrate::Bits(OPUS_BITRATE_BPS))
            .map_err(setup)?;
        encoder.set_inband_fec(true).map_err(setup)?;
        encoder
            .set_packet_loss_perc(OPUS_EXPECTED_LOSS_PERCENT)
            .map_err(setup)?;
        let decoder =
            ::opus::Decoder::new(OPUS_PCM_RATE_HZ, ::opus::Channels::Mono).map_err(setup)?;
        Ok(Self {
            encoder,
            decoder,
            scratch: vec![0; MAX_PACKET_SAMPLES],
            packet: vec![0; MAX_PACKET_BYTES],
        })
    }

    /// The duration of a packet in 16 kHz samples, or `None` when it is not a valid Opus
    /// packet or is longer than [`MAX_PACKET_MS`].
    pub fn samples_in(payload: &[u8]) -> Option<usize> {
        if payload.is_empty() {
            return None;
        }
        let samples = ::opus::packet::get_nb_samples(payload, OPUS_PCM_RATE_HZ).ok()?;
        (samples > 0 && samples <= MAX_PACKET_SAMPLES).then_some(samples)
    }

    /// Decodes one packet, appending 16 kHz samples.
    pub fn decode(&mut self, payload: &[u8], pcm: &mut Vec<i16>) -> Result<usize, CodecError> {
        if Self::samples_in(payload).is_none() {
            return Err(CodecError::Corrupt("opus"));
        }
        let n = self
            .decoder
            .decode(payload, &mut self.scratch, false)
            .map_err(|_| CodecError::Corrupt("opus"))?;
        let n = n.min(self.scratch.len());
        pcm.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }

    /// Fills `samples` of lost audio: the FEC copy carried in `next` (the packet that follows
    /// the gap) when there is one, else libopus loss concealment. Returns how many samples were
    /// appended: `samples` rounded down to whole 2.5 ms steps (0 for a gap shorter than that).
    pub fn conceal(&mut self, next: Option<&[u8]>, samples: usize, pcm: &mut Vec<i16>) -> usize {
        let samples =
            (samples.min(MAX_PACKET_SAMPLES) / CONCEAL_STEP_SAMPLES) * CONCEAL_STEP_SAMPLES;
        if samples == 0 {
            return 0;
        }
        let out = &mut self.scratch[..samples];
        let recovered = match next.filter(|p| Self::samples_in(p).is_some()) {
            Some(packet) => self.decoder.decode(packet, out, true),
            None => self.decoder.decode(&[], out, false),
        };
        match recovered {
            Ok(n) => {
                let n = n.min(samples);
                pcm.extend_from_slice(&self.scratch[..n]);
                n
            }
            Err(_) => 0,
        }
    }

    /// Encodes one frame of 16 kHz PCM (2.5, 5, 10, 20, 40 or 60 ms) into one packet.
    pub fn encode(&mut self, pcm: &[i16], payload: &mut Vec<u8>) -> Result<(), CodecError> {
        let n = self
            .encoder
            .encode(pcm, &mut self.packet)
            .map_err(|e| CodecError::Encode(format!("libopus: {e}")))?;
        payload.extend_from_slice(&self.packet[..n]);
        Ok(())
    }

    /// Back to a fresh stream in both directions.
    pub fn reset(&mut self) -> Result<(), CodecError> {
        self.encoder.reset_state().map_err(setup)?;
        self.decoder.reset_state().map_err(setup)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voiced(samples: usize) -> Vec<i16> {
        // A vowel-like signal: a 150 Hz fundamental with harmonics, slowly modulated.
        (0..samples)
            .map(|n| {
                let t = n as f64 / OPUS_PCM_RATE_HZ as f64;
                let envelope = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
                let mut x = 0.0;
                for h in 1..=8 {
                    x += (2.0 * std::f64::consts::PI * 150.0 * h as f64 * t).sin() / h as f64;
                }
                (envelope * 6_000.0 * x) as i16
            })
            .collect()
    }

    fn rms(s: &[i16]) -> f64 {
        (s.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / s.len().max(1) as f64).sqrt()
    }

    #[test]
    fn frames_round_trip_at_16_khz() {
        let mut codec = OpusCodec::new().unwrap();
        let signal = voiced(16_000);
        let mut decoded = Vec::new();
        for frame in signal.chunks(320) {
            let mut packet = Vec::new();
            codec.encode(frame, &mut packet).unwrap();
            assert!(!packet.is_empty() && packet.len() < 400, "{}", packet.len());
            assert_eq!(OpusCodec::samples_in(&packet), Some(320));
            assert_eq!(codec.decode(&packet, &mut decoded).unwrap(), 320);
        }
        assert_eq!(decoded.len(), signal.len());
        let ratio = rms(&decoded[3_200..]) / rms(&signal[3_200..]);
        assert!(ratio > 0.7 && ratio < 1.3, "level ratio {ratio:.2}");
    }

    #[test]
    fn loss_is_concealed_with_fec_or_plc() {
        let mut codec = OpusCodec::new().unwrap();
        let signal = voiced(16_000);
        let packets: Vec<Vec<u8>> = signal
            .chunks(320)
            .map(|frame| {
                let mut p = Vec::new();
                codec.encode(frame, &mut p).unwrap();
                p
            })
            .collect();
        let mut out = Vec::new();
        for p in &packets[..20] {
            codec.decode(p, &mut out).unwrap();
        }
        // Packet 20 is lost; 21 is at hand, so its FEC copy recovers 20.
        assert_eq!(codec.conceal(Some(&packets[21]), 320, &mut out), 320);
        codec.decode(&packets[21], &mut out).unwrap();
        // Packets 22 and 23 are lost with nothing after them yet: PLC.
        assert_eq!(codec.conceal(None, 640, &mut out), 640);
        assert_eq!(out.len(), 24 * 320);
        let recovered = rms(&out[20 * 320..21 * 320]);
        assert!(
            recovered > 0.3 * rms(&signal[20 * 320..21 * 320]),
            "{recovered}"
        );
        assert!(
            rms(&out[22 * 320..23 * 320]) > 100.0,
            "PLC continues the voice"
        );
        // Gaps shorter than 2.5 ms cannot be concealed.
        assert_eq!(codec.conceal(None, 30, &mut out), 0);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut codec = OpusCodec::new().unwrap();
        let mut out = Vec::new();
        let mut state = 0x9e37_79b9u32;
        for len in 0..300usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            let _ = codec.decode(&bytes, &mut out);
        }
        assert!(codec.decode(&[], &mut out).is_err());
        // TOC code 3 with a frame count of 0 is malformed.
        assert!(codec.decode(&[0x03, 0x00], &mut out).is_err());
        assert!(out.len() % 40 == 0, "only whole frames were appended");
        assert!(codec.reset().is_ok());
    }
}
