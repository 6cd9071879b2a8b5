//! Requests inside a call: ACK, CANCEL, BYE, re-INVITE, INFO and UPDATE.
//!
//! Owns: what each does to the call. The ACK stops our 2xx retransmission and confirms the call
//! (the first one connects it: [`SipEvent::Connected`]; for a late offer it must carry the
//! answer, else we send BYE with `sdp.no_answer_in_ack`);
//! CANCEL ends a call not yet answered (487); BYE ends it; a re-INVITE renegotiates the media
//! (keeping the current codec while the peer still offers it) and refreshes the session timer;
//! INFO carries DTMF; UPDATE refreshes the session timer.
//!
//! Invariants: a request for a call we do not know gets 481; a retransmitted INVITE gets our
//! last answer again; a re-INVITE with an old CSeq gets 500 and one that crosses our own
//! unacknowledged 2xx gets 491 (RFC 3261 14.2).

use crate::dtmf;
use crate::message::SipMessage;
use crate::sdp::{self, SessionDescription};

use super::call::CallState;
use super::{Peer, SipCallId, SipEvent, SipSession};

impl SipSession {
    pub(super) fn handle_ack(&mut self, now_ms: u64, id: &SipCallId, message: &SipMessage) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let cseq = message.cseq().map(|(n, _)| n);
        if call.last_invite_final.as_ref().map(|(n, _)| Some(*n)) == Some(cseq) {
            call.retransmit = None;
        }
        if call.state != CallState::Answered {
            return;
        }
        call.state = CallState::Confirmed;
        let first_ack = !call.connected;
        call.connected = true;
        if !call.late_offer {
            // An ACK to an answer we sent carries no SDP that could change anything.
            if first_ack {
                let negotiated = Some(call.negotiated.clone());
                self.events.push_back(SipEvent::Connected {
                    id: id.clone(),
                    negotiated,
                });
            }
            return;
        }
        // The ACK must answer the offer in our 200 (RFC 3264); a BYE ends the call otherwise
        // (RFC 3261 13.3.1.4).
        let answer = if message.body.is_empty() {
            Err("no SDP".to_string())
        } else {
            SessionDescription::parse(&message.body)
                .and_then(|answer| sdp::accept_answer(&answer, &self.config.codecs))
                .map_err(|e| e.to_string())
        };
        match answer {
            Ok(negotiated) => {
                call.late_offer = false;
                call.negotiated = negotiated.clone();
                tracing::debug!(call = %id, codec = negotiated.codec.name(), "late offer answered in the ACK");
                self.events.push_back(SipEvent::Connected {
                    id: id.clone(),
                    negotiated: Some(negotiated),
                });
            }
            Err(why) => {
                tracing::warn!(call = %id, %why, "the ACK did not answer our offer; hanging up");
                self.events.push_back(SipEvent::Connected {
                    id: id.clone(),
                    negotiated: None,
                });
                self.hangup(now_ms, id, "sdp.no_answer_in_ack");
            }
        }
    }

    pub(super) fn handle_cancel(
        &mut self,
        now_ms: u64,
        peer: Peer,
        id: &SipCallId,
        message: &SipMessage,
    ) {
        let matches = self.calls.get(id).is_some_and(|c| {
            c.invite_branch == message.branch()
                && c.remote_cseq == message.cseq().map(|(n, _)| n).unwrap_or(0)
        });
        if !matches {
            return self.respond(peer, message, 481, None, &[]);
        }
        let Some(call) = self.calls.get(id) else {
            return;
        };
        let (state, tag) = (call.state, call.local_tag.clone());
        self.respond(peer, message, 200, Some(&tag), &[]);
        // Only a call not yet answered is cancelled (RFC 3261 9.2).
        if matches!(state, CallState::Ringing | CallState::Offered) {
            if let Some(call) = self.calls.get_mut(id) {
                call.ringing = None;
            }
            self.send_invite_final(now_ms, id, 487, vec![], None);
            self.end(now_ms, id, Some("caller.cancel"));
        }
    }

    pub(super) fn handle_bye(
        &mut self,
        now_ms: u64,
        peer: Peer,
        id: &SipCallId,
        message: &SipMessage,
    ) {
        let Some(call) = self.calls.get_mut(id) else {
            return self.respond(peer, message, 481, None, &[]);
        };
        let tag = call.local_tag.clone();
        if message.tag("To").as_deref() != Some(tag.as_str()) {
            return self.respond(peer, message, 481, None, &[]);
        }
        let already_ended = call.state == CallState::Ended;
        // A BYE before our ACK still ends the call; stop retransmitting the 200.
        call.retransmit = None;
        self.respond(peer, message, 200, Some(&tag), &[]);
        if !already_ended {
            self.end(now_ms, id, Some("caller.hangup"));
        }
    }

    pub(super) fn handle_in_dialog_invite(
        &mut self,
        now_ms: u64,
        peer: Peer,
        id: &SipCallId,
        message: SipMessage,
    ) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let cseq = message.cseq().map(|(n, _)| n).unwrap_or(0);
        // A retransmitted INVITE gets the same answer again.
        if cseq == call.remote_cseq && message.tag("To").is_none() {
            if let Some((_, data)) = call.last_invite_final.clone() {
                let peer = call.peer;
                self.send(peer, data);
            } else if call.state == CallState::Offered {
                self.respond(peer, &message, 100, None, &[]);
            } else if call.state == CallState::Ringing {
                let tag = call.local_tag.clone();
                self.respond(peer, &message, 180, Some(&tag), &[]);
            }
            return;
        }
        if call.state == CallState::Ended
            || message.tag("To").as_deref() != Some(call.local_tag.as_str())
        {
            return self.respond(peer, &message, 481, None, &[]);
        }
        if cseq <= call.remote_cseq {
            return self.respond(
                peer,
                &message,
                500,
                Some("x"),
                &[("Retry-After", "1".into())],
            );
        }
        if matches!(
            call.state,
            CallState::Ringing | CallState::Offered | CallState::Answered
        ) {
            return self.respond(peer, &message, 491, None, &[]);
        }
        call.remote_cseq = cseq;
        let tag = call.local_tag.clone();
        // A re-INVITE without SDP asks for our offer; answer with the current session.
        let negotiated = if message.body.is_empty() {
            Ok(call.negotiated.clone())
        } else {
            // Keep the current codec when the peer still offers it, and our SRTP key.
            let mut preference = vec![call.negotiated.codec];
            preference.extend(
                self.config
                    .codecs
                    .iter()
                    .copied()
                    .filter(|c| *c != call.negotiated.codec),
            );
            let current = call.negotiated.srtp.clone();
            match SessionDescription::parse(&message.body) {
                Ok(offer) => self.negotiate_with(&offer, &preference, current.as_ref()),
                Err(e) => Err(e.to_string()),
            }
        };
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        match negotiated {
            Err(e) => {
                let warning = format!("304 hotline \"{e}\"");
                call.invite = message;
                self.send_invite_final(now_ms, id, 488, vec![("Warning", warning)], None);
                let _ = tag;
            }
            Ok(negotiated) => {
                call.negotiated = negotiated.clone();
                call.sdp_version += 1;
                call.invite = message;
                call.refresh_session_timer(now_ms);
                let extra = call.session_expires_header();
                let Some(call) = self.calls.get(id) else {
                    return;
                };
                let sdp = self.answer_sdp(call);
                self.send_invite_final(now_ms, id, 200, extra, Some(sdp));
                if let Some(call) = self.calls.get_mut(id) {
                    call.state = CallState::Answered;
                }
                self.events.push_back(SipEvent::MediaUpdated {
                    id: id.clone(),
                    negotiated,
                });
            }
        }
    }

    /// INFO: a DTMF key (`application/dtmf-relay` or `application/dtmf`), or an empty
    /// keepalive probe; any other body gets 415.
    pub(super) fn handle_info(&mut self, peer: Peer, id: &SipCallId, message: &SipMessage) {
        let Some(call) = self.calls.get(id).filter(|c| c.state != CallState::Ended) else {
            return self.respond(peer, message, 481, None, &[]);
        };
        let content_type = message.header("Content-Type").unwrap_or("").to_string();
        let digit = dtmf::info_digit(&content_type, &message.body);
        let (call_id, tag) = (call.id.clone(), call.local_tag.clone());
        if let Some(digit) = digit {
            self.events.push_back(SipEvent::Dtmf { id: call_id, digit });
            self.respond(peer, message, 200, Some(&tag), &[]);
        } else if message.body.is_empty() {
            // An empty INFO is a keepalive probe.
            self.respond(peer, message, 200, Some(&tag), &[]);
        } else {
            self.respond(
                peer,
                message,
                415,
                Some(&tag),
                &[("Accept", "application/dtmf-relay, application/dtmf".into())],
            );
        }
    }

    /// UPDATE (RFC 3311) without SDP: a session refresh.
    pub(super) fn handle_update(
        &mut self,
        now_ms: u64,
        peer: Peer,
        id: &SipCallId,
        message: &SipMessage,
    ) {
        let Some(call) = self
            .calls
            .get_mut(id)
            .filter(|c| c.state != CallState::Ended)
        else {
            return self.respond(peer, message, 481, None, &[]);
        };
        call.refresh_session_timer(now_ms);
        let extra = call.session_expires_header();
        let tag = call.local_tag.clone();
        self.respond(peer, message, 200, Some(&tag), &extra);
    }
}
