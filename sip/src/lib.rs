//! hotline-sip: the phone edge. SIP signalling, SDP offer/answer, RTP/RTCP, the jitter buffer
//! and DTMF. It knows nothing about bots: it answers calls and hands the application decoded PCM
//! frames, DTMF keys and hang-ups, and takes PCM frames, hang-ups and transfers back.
//!
//! The call logic is sans-IO: [`sdp`], [`rtp`], [`jitter`], [`dtmf`], [`dialog::SipSession`] and
//! [`media::MediaSession`] are plain structs fed with bytes and times. The IO layer
//! ([`driver`]) is thin: sockets, timers and channels.

pub mod auth;
pub mod codec;
pub mod dialog;
pub mod driver;
pub mod dtmf;
pub mod jitter;
pub mod media;
pub mod message;
pub mod rtp;
pub mod sdp;
