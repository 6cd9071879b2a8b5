//! The per-call session. (being written)
pub mod event;
