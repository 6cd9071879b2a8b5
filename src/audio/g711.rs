//! G.711 µ-law and A-law, as the audio core names them: the codec itself is `hotline-media`'s
//! (one copy for RTP payloads and WAV files), re-exported here so `audio::g711` keeps its paths.
//!
//! Owns nothing of its own: G.711 WAV files are read and written in [`super::wav`], with this
//! module's [`G711Law`].

pub use hotline_media::codec::g711::*;
