//! Voice codecs at the transport edges: G.711 µ-law and A-law, G.722 and Opus, one copy each,
//! for the phone line and the web phone alike.
//!
//! Owns: the codec identities ([`Codec`]: names, rates, static payload types), turning one RTP
//! payload into PCM at the codec's own rate ([`Codec::pcm_rate_hz`]) and back, each call with its
//! own codec state ([`VoiceCodec`]), and filling lost audio where the codec can do better than
//! the jitter buffer's fade (Opus FEC and PLC).
//! Invariants: no payload makes decoding panic. G.711 and G.722 decode every byte sequence;
//! Opus reports a malformed packet as [`CodecError::Corrupt`]. A payload's duration
//! ([`VoiceCodec::samples_in`]) is known before it is decoded, so the jitter buffer can place
//! it on the timeline and decode it only when its turn to play comes, in order.
//!
//! | codec | PCM rate | RTP clock | our code |
//! |---|---|---|---|
//! | PCMU, PCMA | 8 kHz | 8 kHz | [`g711`] |
//! | G722 | 16 kHz | 8 kHz (RFC 3551's historical error) | [`g722`] |
//! | opus | 16 kHz (libopus resamples) | 48 kHz | [`opus`] (libopus) |

pub mod g711;
pub mod g722;
pub mod opus;

use self::g711::G711Law;
use self::g722::{G722Decoder, G722Encoder};
use self::opus::OpusCodec;
use crate::jitter::PayloadDecoder;

/// Why a codec cannot be used or a payload cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("codec {0} is not built in")]
    Unsupported(&'static str),
    #[error("codec could not be set up: {0}")]
    Setup(String),
    #[error("{0} payload is malformed")]
    Corrupt(&'static str),
    #[error("encoding failed: {0}")]
    Encode(String),
}

/// An audio codec hotline speaks on a line: the phone's four, of which the web phone uses Opus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, 8 kHz.
    Pcmu,
    /// G.711 A-law, 8 kHz.
    Pcma,
    /// G.722, 16 kHz audio on an 8 kHz RTP clock.
    G722,
    /// Opus, 48 kHz RTP clock; we decode and encode at 16 kHz (libopus resamples inside).
    Opus,
}

impl Codec {
    /// The encoding name used in `a=rtpmap` and in call records.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus => "opus",
        }
    }

    /// Parses a configured or rtpmap name, case-insensitively.
    pub fn from_name(name: &str) -> Option<Codec> {
        match name.to_ascii_lowercase().as_str() {
            "pcmu" => Some(Codec::Pcmu),
            "pcma" => Some(Codec::Pcma),
            "g722" => Some(Codec::G722),
            "opus" => Some(Codec::Opus),
            _ => None,
        }
    }

    /// The static payload type (RFC 3551), where the codec has one.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::G722 => Some(9),
            Codec::Opus => None,
        }
    }

    /// The RTP clock rate (G.722 famously says 8000 though it carries 16 kHz audio).
    pub fn rtp_clock_hz(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => 8_000,
            Codec::Opus => 48_000,
        }
    }

    /// The rate of the PCM the codec decodes to and encodes from. Opus runs at the pipeline's
    /// 16 kHz: libopus decodes and encodes at that rate directly, which saves a resampler and
    /// loses nothing the 16 kHz recognizer could use. Timestamps still count the RTP clock.
    pub fn pcm_rate_hz(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8_000,
            Codec::G722 | Codec::Opus => 16_000,
        }
    }

    /// The channel count an rtpmap names (RFC 7587 signals Opus as stereo even for mono).
    pub fn rtpmap_channels(self) -> Option<u8> {
        match self {
            Codec::Opus => Some(2),
            Codec::Pcmu | Codec::Pcma | Codec::G722 => None,
        }
    }
}

/// One call's codec state for the negotiated codec.
#[derive(Debug)]
enum State {
    G711(G711Law),
    G722(Box<(G722Encoder, G722Decoder)>),
    Opus(Box<OpusCodec>),
}

/// A decoder/encoder pair for one negotiated codec.
#[derive(Debug)]
pub struct VoiceCodec {
    codec: Codec,
    state: State,
}

impl VoiceCodec {
    /// Makes the codec's state for a new call (or a codec change on re-INVITE). Takes anything
    /// that names a [`Codec`].
    pub fn new(codec: impl Into<Codec>) -> Result<Self, CodecError> {
        let codec = codec.into();
        let state = match codec {
            Codec::Pcmu => State::G711(G711Law::Ulaw),
            Codec::Pcma => State::G711(G711Law::Alaw),
            Codec::G722 => State::G722(Box::new((G722Encoder::new(), G722Decoder::new()))),
            Codec::Opus => State::Opus(Box::new(OpusCodec::new()?)),
        };
        Ok(Self { codec, state })
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The duration of a payload in PCM samples at [`Codec::pcm_rate_hz`], without decoding it;
    /// `None` when it is empty or not a valid payload for the codec.
    pub fn samples_in(&self, payload: &[u8]) -> Option<usize> {
        if payload.is_empty() {
            return None;
        }
        match self.codec {
            Codec::Pcmu | Codec::Pcma => Some(payload.len()),
            Codec::G722 => Some(payload.len() * 2),
            Codec::Opus => OpusCodec::samples_in(payload),
        }
    }

    /// Decodes one payload, appending PCM at [`Codec::pcm_rate_hz`]; returns the samples added.
    pub fn decode(&mut self, payload: &[u8], pcm: &mut Vec<i16>) -> Result<usize, CodecError> {
        let before = pcm.len();
        match &mut self.state {
            State::G711(law) => pcm.extend(payload.iter().map(|&b| law.decode(b))),
            State::G722(g722) => g722.1.decode(payload, pcm),
            State::Opus(opus) => {
                opus.decode(payload, pcm)?;
            }
        }
        Ok(pcm.len() - before)
    }

    /// Fills `samples` of lost audio from the codec's own concealment, appending PCM; `next`
    /// is the payload right after the gap when it has arrived. Returns the samples added: 0
    /// when the codec has no concealment of its own (G.711, G.722), and the caller fades.
    pub fn conceal(&mut self, next: Option<&[u8]>, samples: usize, pcm: &mut Vec<i16>) -> usize {
        match &mut self.state {
            State::Opus(opus) => opus.conceal(next, samples, pcm),
            State::G711(_) | State::G722(_) => 0,
        }
    }

    /// Encodes one frame of PCM at [`Codec::pcm_rate_hz`] into one payload.
    pub fn encode(&mut self, pcm: &[i16], payload: &mut Vec<u8>) -> Result<(), CodecError> {
        match &mut self.state {
            State::G711(law) => payload.extend(pcm.iter().map(|&s| law.encode(s))),
            State::G722(g722) => g722.0.encode(pcm, payload),
            State::Opus(opus) => opus.encode(pcm, payload)?,
        }
        Ok(())
    }

    /// Back to a fresh stream in both directions.
    pub fn reset(&mut self) -> Result<(), CodecError> {
        match &mut self.state {
            State::G711(_) => Ok(()),
            State::G722(g722) => {
                g722.0.reset();
                g722.1.reset();
                Ok(())
            }
            State::Opus(opus) => opus.reset(),
        }
    }
}

impl PayloadDecoder for VoiceCodec {
    fn samples_in(&self, payload: &[u8]) -> Option<usize> {
        VoiceCodec::samples_in(self, payload)
    }

    fn decode(&mut self, payload: &[u8], pcm: &mut Vec<i16>) -> bool {
        VoiceCodec::decode(self, payload, pcm).is_ok()
    }

    fn conceal(&mut self, next: Option<&[u8]>, samples: usize, pcm: &mut Vec<i16>) -> usize {
        VoiceCodec::conceal(self, next, samples, pcm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_rates_match_the_rtp_profiles() {
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus] {
            assert_eq!(Codec::from_name(codec.name()), Some(codec));
            assert_eq!(
                Codec::from_name(&codec.name().to_ascii_uppercase()),
                Some(codec)
            );
            assert!(VoiceCodec::new(codec).is_ok(), "{codec:?} is built in");
        }
        assert_eq!(Codec::from_name("gsm"), None);
        assert_eq!(
            (Codec::G722.pcm_rate_hz(), Codec::G722.rtp_clock_hz()),
            (16_000, 8_000)
        );
        assert_eq!(
            (Codec::Opus.pcm_rate_hz(), Codec::Opus.rtp_clock_hz()),
            (16_000, 48_000)
        );
    }

    #[test]
    fn g711_payloads_use_the_g711_tables() {
        for (codec, law) in [(Codec::Pcmu, G711Law::Ulaw), (Codec::Pcma, G711Law::Alaw)] {
            let mut voice = VoiceCodec::new(codec).expect("G.711 is built in");
            let pcm: Vec<i16> = (0..160).map(|i| (i * 200 - 16_000) as i16).collect();
            let mut payload = Vec::new();
            voice.encode(&pcm, &mut payload).expect("G.711 encodes");
            assert_eq!(payload, law.encode_slice(&pcm));
            let mut back = Vec::new();
            assert_eq!(voice.decode(&payload, &mut back), Ok(160));
            assert_eq!(back, law.decode_slice(&payload));
            assert_eq!(voice.conceal(None, 160, &mut back), 0, "G.711 has no PLC");
        }
    }
}
