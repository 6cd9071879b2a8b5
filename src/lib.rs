//! hotline: a voice call-center bot server.
//!
//! The crate is organised around one sans-IO state machine per call ([`session::CallSession`]),
//! fed by transport edges (SIP/RTP in the `hotline-sip` crate, WebRTC, WAV replay, the local
//! microphone) and served by engine worker pools (ASR, TTS, dialogue). See ARCHITECTURE.md.

pub mod agents;
pub mod asr;
pub mod audio;
pub mod bench;
pub mod bundle;
pub mod call;
pub mod chat;
pub mod config;
pub mod dialogue;
pub mod insight;
pub mod language;
pub mod metrics;
pub mod models;
pub mod phone;
pub mod privacy;
pub mod replay;
pub mod serve;
pub mod session;
pub mod store;
pub mod talk;
pub mod tts;
pub mod turn;
pub mod web;
