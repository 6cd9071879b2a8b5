//! Voice codecs at the RTP edge: G.711 µ-law and A-law, G.722 and Opus.
//!
//! Owns: turning one RTP payload into PCM at the codec's own rate ([`Codec::pcm_rate_hz`]) and
//! back, each call with its own codec state ([`VoiceCodec`]), and filling lost audio where the
//! codec can do better than the jitter buffer's fade (Opus FEC and PLC).
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

pub use g711::{alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear};

use self::g722::{G722Decoder, G722Encoder};
use self::opus::OpusCodec;
use crate::jitter::PayloadDecoder;
use crate::sdp::Codec;

/// Why a codec cannot be used or a payload cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("codec {0} is not built into this phone edge")]
    Unsupported(&'static str),
    #[error("codec could not be set up: {0}")]
    Setup(String),
    #[error("{0} payload is malformed")]
    Corrupt(&'static str),
    #[error("encoding failed: {0}")]
    Encode(String),
}

/// One call's codec state for the negotiated codec.
#[derive(Debug)]
enum State {
    G711,
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
    /// Makes the codec's state for a new call (or a codec change on re-INVITE).
    pub fn new(codec: Codec) -> Result<Self, CodecError> {
        let state = match codec {
            Codec::Pcmu | Codec::Pcma => State::G711,
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
        match (&mut self.state, self.codec) {
            (State::G711, Codec::Pcma) => pcm.extend(payload.iter().map(|&b| alaw_to_linear(b))),
            (State::G711, _) => pcm.extend(payload.iter().map(|&b| ulaw_to_linear(b))),
            (State::G722(g722), _) => g722.1.decode(payload, pcm),
            (State::Opus(opus), _) => {
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
            State::G711 | State::G722(_) => 0,
        }
    }

    /// Encodes one frame of PCM at [`Codec::pcm_rate_hz`] into one payload.
    pub fn encode(&mut self, pcm: &[i16], payload: &mut Vec<u8>) -> Result<(), CodecError> {
        match (&mut self.state, self.codec) {
            (State::G711, Codec::Pcma) => payload.extend(pcm.iter().map(|&s| linear_to_alaw(s))),
            (State::G711, _) => payload.extend(pcm.iter().map(|&s| linear_to_ulaw(s))),
            (State::G722(g722), _) => g722.0.encode(pcm, payload),
            (State::Opus(opus), _) => opus.encode(pcm, payload)?,
        }
        Ok(())
    }

    /// Back to a fresh stream in both directions.
    pub fn reset(&mut self) -> Result<(), CodecError> {
        match &mut self.state {
            State::G711 => Ok(()),
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
