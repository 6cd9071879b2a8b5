//! The media counters of one call, the same type for every transport.
//!
//! Owns: [`MediaCounters`], what a call's media did from the line's point of view. The receive
//! side ([`crate::receive::ReceiveStream::counters`]) fills what it sees (packets in, loss,
//! late packets, concealment, payloads it could not place or decode); the transport adds what
//! only it knows (packets out, RTCP in, datagrams from elsewhere, encoder failures). The call
//! record's `call_end` line carries them.
//!
//! Invariants: every counter only grows during a call; `lost` is RFC 3550's cumulative loss
//! (expected from the sequence numbers seen minus received, never negative), so a reordered
//! packet is never counted lost.

/// What one call's media did. Plain numbers, cheap to copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaCounters {
    /// RTP packets received from the caller (audio and telephone-events).
    pub packets_in: u64,
    /// RTP packets sent to the caller.
    pub packets_out: u64,
    /// Caller packets that never arrived (from their sequence numbers).
    pub lost: u64,
    /// Caller packets that arrived after their playout time and were dropped.
    pub late: u64,
    /// Caller frames filled by concealment (codec PLC/FEC or a fade) because nothing was
    /// there to play.
    pub concealed_frames: u64,
    /// Of those, frames concealed while the caller's audio due was late: the line's jitter
    /// (or a sender that paused), as the caller's words reached the bot a frame late.
    pub underruns: u64,
    /// RTCP packets received from the caller.
    pub rtcp_in: u64,
    /// Datagrams or payloads refused as malformed: not RTP, an unknown payload type, or a
    /// payload whose duration cannot be known.
    pub dropped_malformed: u64,
    /// RTP from a source other than the caller's (after symmetric RTP latched).
    pub dropped_foreign: u64,
    /// Payloads the decoder refused at playout (concealed instead).
    pub decode_errors: u64,
    /// Outbound frames the encoder failed on (not sent; the timeline goes on).
    pub encode_errors: u64,
}
