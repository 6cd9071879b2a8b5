//! The session's clock: when it next has work, and what runs then.
//!
//! Owns: [`SipSession::poll_timeout`] and [`SipSession::handle_timeout`]; the calls' timers (the
//! answer delay, our 2xx retransmitted until the ACK, session expiry, the transfer deadline, and
//! forgetting an ended call after Timer B); and session timers (RFC 4028: the least interval
//! [`MIN_SESSION_EXPIRES_S`], the refresh on re-INVITE and UPDATE). The client transactions' and
//! the registration's timers live with them and are run from here.
//!
//! Invariants: `poll_timeout` is the earliest deadline any timer would act on, so a driver that
//! sleeps until then misses no work; each run handles the calls, then the client transactions,
//! then the registration, then the ends of source blocks.

use super::call::{Call, CallState};
use super::transaction::TIMER_B_MS;
use super::{SipEvent, SipSession};

/// The least session interval we accept (RFC 4028 Min-SE).
pub const MIN_SESSION_EXPIRES_S: u32 = 90;

impl Call {
    /// Restarts the session timer (RFC 4028) on a refresh: our 2xx to an INVITE or UPDATE.
    pub(super) fn refresh_session_timer(&mut self, now_ms: u64) {
        if let Some(seconds) = self.session_expires_s {
            self.session_deadline_ms = Some(now_ms + seconds as u64 * 1000);
        }
    }

    /// The `Session-Expires` header of our answer to a refresh, when the call has timers.
    pub(super) fn session_expires_header(&self) -> Vec<(&'static str, String)> {
        self.session_expires_s
            .map(|s| vec![("Session-Expires", format!("{s};refresher=uac"))])
            .unwrap_or_default()
    }
}

impl SipSession {
    /// When [`SipSession::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut earliest: Option<u64> = None;
        let mut consider = |t: Option<u64>| {
            if let Some(t) = t {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        };
        for call in self.calls.values() {
            consider(
                call.retransmit
                    .as_ref()
                    .map(|r| r.next_ms.min(r.give_up_ms)),
            );
            consider(call.session_deadline_ms);
            consider(call.ended_at_ms.map(|t| t + TIMER_B_MS));
            consider(call.ringing.as_ref().map(|(at, _)| *at));
            consider(call.transfer_deadline_ms);
        }
        for tx in self.client.values() {
            consider(tx.retransmit.as_ref().map(|r| r.next_ms));
            consider(Some(tx.give_up_ms));
        }
        consider(self.registration.as_ref().and_then(|r| r.next_attempt_ms));
        consider(self.limiter.poll_timeout());
        earliest
    }

    /// Runs timers: retransmissions, transaction timeouts, session expiry, registration.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.run_call_timers(now_ms);
        self.run_client_timers(now_ms);
        self.run_registration_timer(now_ms);
        for ended in self.limiter.expire(now_ms) {
            self.events.push_back(SipEvent::SourceUnblocked {
                ip: ended.ip,
                dropped: ended.dropped,
            });
        }
    }

    /// The calls' timers: the answer delay, 2xx retransmission and the missing ACK, session
    /// expiry, the transfer deadline, and forgetting calls ended for Timer B.
    fn run_call_timers(&mut self, now_ms: u64) {
        let mut resend = Vec::new();
        let mut expired_sessions = Vec::new();
        let mut unacked = Vec::new();
        let mut forget = Vec::new();
        let mut unanswered_transfers = Vec::new();
        for call in self.calls.values_mut() {
            if call.ringing.as_ref().is_some_and(|(at, _)| now_ms >= *at) {
                if let Some((_, incoming)) = call.ringing.take() {
                    call.state = CallState::Offered;
                    self.events.push_back(SipEvent::IncomingCall(incoming));
                }
            }
            if let Some(r) = call.retransmit.as_mut() {
                if now_ms >= r.give_up_ms {
                    call.retransmit = None;
                    if call.state == CallState::Answered {
                        unacked.push(call.id.clone());
                    }
                } else if now_ms >= r.next_ms {
                    resend.push((call.peer, r.data.clone()));
                    r.back_off(now_ms);
                }
            }
            if call.session_deadline_ms.is_some_and(|d| now_ms >= d) {
                call.session_deadline_ms = None;
                expired_sessions.push(call.id.clone());
            }
            if call.transfer_deadline_ms.is_some_and(|d| now_ms >= d) {
                call.transfer_deadline_ms = None;
                unanswered_transfers.push(call.id.clone());
            }
            if call.ended_at_ms.is_some_and(|t| now_ms >= t + TIMER_B_MS) {
                forget.push(call.id.clone());
            }
        }
        for (peer, data) in resend {
            self.send(peer, data);
        }
        for id in unacked {
            self.hangup(now_ms, &id, "sip.no_ack");
        }
        for id in expired_sessions {
            self.hangup(now_ms, &id, "sip.session_expired");
        }
        for id in unanswered_transfers {
            self.transfer_failed(&id, "transfer.no_answer".into());
        }
        for id in forget {
            self.calls.remove(&id);
        }
    }
}
