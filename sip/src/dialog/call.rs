//! One call's dialog record and how a call ends.
//!
//! Owns: [`Call`], the dialog state RFC 3261 12 keeps (tags, both CSeqs, the route set, the
//! remote target) with our media, session-timer and transfer bookkeeping, and its
//! [`CallState`] machine: Ringing → Offered → Answered → Confirmed → Ended (a re-INVITE takes
//! Confirmed back to Answered until its ACK); [`SipSession::end`] and [`SipSession::hangup`].
//!
//! A call is half-open from its INVITE until its first ACK (`connected`); a re-INVITE's
//! Answered state is not half-open.
//!
//! Invariants: `Ended` is final. A call the application saw reaches it only through `end`,
//! which clears every pending deadline and emits `CallEnded` at most once; a refused INVITE is
//! recorded as ended from the start. An ended call is kept for
//! [`TIMER_B_MS`](super::TIMER_B_MS) to absorb retransmissions, then forgotten.

use crate::message::SipMessage;
use crate::sdp::{MediaPorts, Negotiated};

use super::transaction::{Purpose, Retransmit};
use super::{IncomingCall, Peer, SipCallId, SipEvent, SipSession};

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallState {
    /// INVITE received and ringing (180 sent); offered to the application when the answer
    /// delay is over.
    Ringing,
    /// INVITE received, waiting for the application.
    Offered,
    /// 200 OK sent, waiting for ACK.
    Answered,
    Confirmed,
    /// Over; kept for a while to absorb retransmissions.
    Ended,
}

/// One call's dialog and its bookkeeping.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) id: SipCallId,
    pub(super) peer: Peer,
    pub(super) state: CallState,
    pub(super) invite: SipMessage,
    pub(super) invite_branch: Option<String>,
    pub(super) local_tag: String,
    pub(super) remote_cseq: u32,
    pub(super) local_cseq: u32,
    pub(super) remote_target: String,
    pub(super) route_set: Vec<String>,
    pub(super) local_party: String,
    pub(super) remote_party: String,
    /// For a late offer, a placeholder until the ACK's answer arrives.
    pub(super) negotiated: Negotiated,
    /// The INVITE had no SDP: our 200 carries the offer, and the ACK must carry the answer.
    pub(super) late_offer: bool,
    pub(super) local_ports: MediaPorts,
    pub(super) sdp_session_id: u64,
    pub(super) sdp_version: u64,
    /// The last final response to an INVITE (initial or re-), for retransmission.
    pub(super) last_invite_final: Option<(u32, Vec<u8>)>,
    pub(super) retransmit: Option<Retransmit>,
    pub(super) session_expires_s: Option<u32>,
    pub(super) session_deadline_ms: Option<u64>,
    pub(super) ended_at_ms: Option<u64>,
    pub(super) transfer_pending: bool,
    /// While a transfer is pending: when it counts as not answered.
    pub(super) transfer_deadline_ms: Option<u64>,
    /// While ringing: when the call is offered to the application, and what it is told.
    pub(super) ringing: Option<(u64, IncomingCall)>,
    /// 180 Ringing has been sent.
    pub(super) ringing_sent: bool,
    /// When the INVITE arrived.
    pub(super) opened_ms: u64,
    /// The first ACK has come: the call is connected, no longer half-open.
    pub(super) connected: bool,
}

impl Call {
    /// Not over and not yet confirmed by its first ACK (ringing, offered or answered).
    pub(super) fn half_open(&self) -> bool {
        self.state != CallState::Ended && !self.connected
    }
}

impl SipSession {
    /// Marks a call over; `reason` is the `CallEnded` code, `None` for a call the application
    /// refused (it already knows).
    pub(super) fn end(&mut self, now_ms: u64, id: &SipCallId, reason: Option<&str>) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if call.state == CallState::Ended {
            return;
        }
        call.state = CallState::Ended;
        call.ended_at_ms = Some(now_ms);
        call.session_deadline_ms = None;
        call.transfer_pending = false;
        call.transfer_deadline_ms = None;
        if let Some(reason) = reason {
            self.events.push_back(SipEvent::CallEnded {
                id: id.clone(),
                reason: reason.to_string(),
            });
        }
    }

    /// Ends a call from our side: BYE when answered, 480 before.
    pub fn hangup(&mut self, now_ms: u64, id: &SipCallId, reason: &str) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        match call.state {
            CallState::Ended => {}
            CallState::Ringing | CallState::Offered => {
                self.send_invite_final(now_ms, id, 480, vec![], None);
                self.end(now_ms, id, Some(reason));
            }
            CallState::Answered | CallState::Confirmed => {
                self.send_in_dialog(
                    now_ms,
                    id,
                    "BYE",
                    vec![("Reason", format!("Q.850;cause=16;text=\"{reason}\""))],
                    None,
                    Purpose::Bye(id.clone()),
                );
                self.end(now_ms, id, Some(reason));
            }
        }
    }
}
