//! `CallerEdge`: the caller's transport as the call driver sees it, with no task in between.
//!
//! The driver reads the caller's frames, keys and hang-up straight from the edge and writes the
//! bot's frames straight to it, so a frame makes exactly one channel hop each way between the
//! transport's socket task and the session. The edge does its own conversion on the driver's
//! task (the phone line's 8 kHz G.711 is resampled there; wideband lines pass through).
//!
//! [`ChannelEdge`] is the edge for transports that hand over channels ([`super::CallHandle`]:
//! the web phone, the local microphone, tests); the phone line's edge is `phone::PhoneEdge`.
//!
//! Invariants: `recv` is cancel-safe (the driver selects on it); `send_audio` never waits on
//! the far end (a transport that stopped reading loses frames, and hangs up on its own).

use std::collections::BTreeMap;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::audio::Frame;
use crate::session::event::CallMedia;
use crate::session::EndReason;

use super::{CallInput, CallOutput};

/// What a transfer tells the far end about the call (SIP: `X-Hotline-*` headers, `sip/PBX.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferContext {
    /// The call's record id.
    pub call_id: Option<String>,
    /// The last intent the dialogue matched.
    pub intent: Option<String>,
    /// The slots filled so far.
    pub slots: BTreeMap<String, String>,
}

/// The caller's transport. See the module docs.
#[async_trait]
pub trait CallerEdge: Send + 'static {
    /// The caller's next input; `None` when the transport is gone. Cancel-safe.
    async fn recv(&mut self) -> Option<CallInput>;
    /// The bot's frame for this tick (silence when quiet). Never waits on the far end: a
    /// transport that is not reading loses the frame.
    async fn send_audio(&mut self, frame: Frame);
    /// Hands the call over to `target`.
    async fn transfer(&mut self, target: String, reason: String, context: &TransferContext);
    /// The bot ended the call: the transport hangs up.
    async fn hangup(&mut self, reason: &EndReason);
    /// The bot's audio was cut (barge-in, a key, a newer reply, hang-up): drop whatever of it
    /// the transport still holds, so the caller hears the cut at once.
    fn flush(&mut self) {}
    /// Once the call has ended: the line's media counters, when the transport counts them (the
    /// driver bounds the wait).
    async fn media(&mut self) -> Option<CallMedia>;
}

/// An edge made of channels, for transports that run their own task (they count no media).
pub struct ChannelEdge {
    pub input: mpsc::Receiver<CallInput>,
    pub output: mpsc::Sender<CallOutput>,
}

#[async_trait]
impl CallerEdge for ChannelEdge {
    async fn recv(&mut self) -> Option<CallInput> {
        self.input.recv().await
    }

    async fn send_audio(&mut self, frame: Frame) {
        // A full channel means the transport stopped reading; it will hang up.
        let _ = self.output.try_send(CallOutput::Audio(frame));
    }

    async fn transfer(&mut self, target: String, reason: String, _context: &TransferContext) {
        // A transport that is gone has nobody to transfer.
        let _ = self
            .output
            .send(CallOutput::Transfer { target, reason })
            .await;
    }

    async fn hangup(&mut self, reason: &EndReason) {
        let _ = self
            .output
            .send(CallOutput::Hangup {
                reason: reason.clone(),
            })
            .await;
    }

    async fn media(&mut self) -> Option<CallMedia> {
        None
    }
}
