//! hotline-media: the media layer both transports share. The phone line (`hotline-sip`) and the
//! web phone (`hotline::web`) play callers' audio through the same codecs, the same jitter
//! buffer and the same counters, and take their ports from the same pool. It knows nothing of
//! SIP, SDP or WebRTC (rustpbx's media crate and str0m's sans-IO style are the models).
//!
//! | module | owns |
//! |---|---|
//! | [`clock`] | the media clock: the one 20 ms grid every call's tick falls on |
//! | [`codec`] | the codec identities ([`Codec`]) and one copy of each codec: G.711, G.722, Opus |
//! | [`jitter`] | the one jitter buffer: reorder, adaptive depth, concealment, bounded memory |
//! | [`rtp`] | RTP packets, RTCP reports, RFC 3550 receive statistics, [`rtp::Ssrc`] |
//! | [`receive`] | one stream's receive side: sequence accounting + jitter buffer + counters |
//! | [`counters`] | [`MediaCounters`], what a call's media did, for the call record |
//! | [`resample`] | sample-rate conversion (rubato) between the pipeline's 16 kHz and the edges |
//! | [`ports`] | the RTP port pool: single ports (WebRTC) and even/odd RTP/RTCP pairs (SIP) |
//!
//! Everything but [`ports`] is sans-IO: plain structs fed with bytes and times (milliseconds on
//! the caller's monotonic clock); nothing reads a clock or a socket. The port pool binds
//! sockets to know a port is free, and hands them over.

pub mod clock;
pub mod codec;
pub mod counters;
pub mod jitter;
pub mod ports;
pub mod receive;
pub mod resample;
pub mod rtp;

pub use codec::{Codec, CodecError, VoiceCodec};
pub use counters::MediaCounters;
pub use jitter::{JitterBuffer, JitterConfig, JitterStats, PayloadDecoder, Playout};
pub use receive::ReceiveStream;
pub use rtp::Ssrc;
