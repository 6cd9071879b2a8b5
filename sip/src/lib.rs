//! hotline-sip: the phone edge. SIP signalling, SDP offer/answer, the RTP media session and
//! DTMF. It knows nothing about bots: it answers calls and hands the application decoded PCM
//! frames, DTMF keys and hang-ups, and takes PCM frames, hang-ups and transfers back.
//!
//! The media layer (codecs, the jitter buffer, RTP/RTCP packets, the port pool and the media
//! counters) is `hotline-media`, shared with the web phone; [`codec`] and [`rtp`] are its
//! modules, re-exported so callers of the phone edge keep their paths.
//!
//! The call logic is sans-IO: [`sdp`], [`dtmf`], [`dialog::SipSession`], [`uac::CallerDialog`] and
//! [`media::MediaSession`] and [`flood::SourceLimiter`] are plain structs fed with bytes and times. The IO layer
//! ([`driver`], [`line`]) is thin: sockets, timers and channels.

pub mod auth;
pub mod dialog;
pub mod driver;
pub mod dtmf;
pub mod flood;
pub mod line;
pub mod media;
pub mod message;
pub mod outbound;
pub mod sdp;
pub mod tls;
pub mod uac;

pub use hotline_media::{codec, rtp};
