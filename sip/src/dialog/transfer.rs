//! Call transfer: a REFER (RFC 3515) followed to its end.
//!
//! Owns: [`SipSession::transfer`] (the Refer-To target, Referred-By, and the caller-context
//! headers for the PBX), the NOTIFYs that report on it (the sipfrag's status line decides: a 2xx
//! ends the call with `transfer.done` after our BYE, 300 and above fail it), and the no-answer
//! deadline [`TRANSFER_NO_ANSWER_MS`].
//!
//! Invariants: a call has at most one transfer pending; a pending transfer ends once, as
//! [`SipEvent::TransferDone`] or [`SipEvent::TransferFailed`] (the REFER refused or unanswered, a
//! failing sipfrag, the subscription over without an answer, no answer in time), or silently when
//! the call itself ends; on failure the call stays up.

use crate::message::SipMessage;

use super::call::CallState;
use super::transaction::Purpose;
use super::{Peer, SipCallId, SipEvent, SipSession};

/// How long a transfer may wait for the target's final answer (the NOTIFY after 202) before it
/// counts as not answered.
pub const TRANSFER_NO_ANSWER_MS: u64 = 45_000;
/// The longest context header value we put on a REFER.
const MAX_CONTEXT_VALUE_CHARS: usize = 256;

impl SipSession {
    /// Hands the call to `target` with REFER (RFC 3515). A bare number becomes a SIP URI at the
    /// caller's host. `context` headers (e.g. `X-Hotline-Call`) go on the REFER for the PBX;
    /// names that are not tokens and values with line breaks are left out.
    ///
    /// The outcome comes back as an event: [`SipEvent::TransferDone`] when the target answered
    /// (NOTIFY `SIP/2.0 200`; we then send BYE), [`SipEvent::TransferFailed`] when the REFER is
    /// refused or unanswered, the NOTIFY reports a final failure, or no final NOTIFY comes in
    /// [`TRANSFER_NO_ANSWER_MS`]. The call stays up on failure.
    pub fn transfer(
        &mut self,
        now_ms: u64,
        id: &SipCallId,
        target: &str,
        context: &[(String, String)],
    ) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if (call.state != CallState::Confirmed && call.state != CallState::Answered)
            || call.transfer_pending
        {
            return;
        }
        call.transfer_pending = true;
        call.transfer_deadline_ms = Some(now_ms + TRANSFER_NO_ANSWER_MS);
        let target = if target.contains(':') {
            target.to_string()
        } else {
            let host = call
                .remote_target
                .split('@')
                .nth(1)
                .unwrap_or("localhost")
                .split(';')
                .next()
                .unwrap_or("localhost")
                .to_string();
            format!("sip:{target}@{host}")
        };
        let contact = self.contact_in(id);
        let mut extra: Vec<(&str, String)> = vec![
            ("Refer-To", format!("<{target}>")),
            ("Referred-By", contact),
        ];
        for (name, value) in context {
            let value: String = value
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_CONTEXT_VALUE_CHARS)
                .collect();
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
            if name_ok && !value.trim().is_empty() {
                extra.push((name.as_str(), value.trim().to_string()));
            }
        }
        self.send_in_dialog(now_ms, id, "REFER", extra, None, Purpose::Refer(id.clone()));
    }

    /// Ends a pending transfer as failed; the call stays.
    pub(super) fn transfer_failed(&mut self, id: &SipCallId, reason: String) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if !call.transfer_pending || call.state == CallState::Ended {
            return;
        }
        call.transfer_pending = false;
        call.transfer_deadline_ms = None;
        tracing::info!(call = %id, %reason, "transfer failed; the call stays");
        self.events.push_back(SipEvent::TransferFailed {
            id: id.clone(),
            reason,
        });
    }

    pub(super) fn handle_notify(
        &mut self,
        now_ms: u64,
        peer: Peer,
        id: &SipCallId,
        message: &SipMessage,
    ) {
        let Some(call) = self.calls.get(id).filter(|c| c.state != CallState::Ended) else {
            return self.respond(peer, message, 481, None, &[]);
        };
        let tag = call.local_tag.clone();
        let pending = call.transfer_pending;
        self.respond(peer, message, 200, Some(&tag), &[]);
        if !pending {
            return;
        }
        // The sipfrag body carries the transfer target's status line (RFC 3515 2.4.5).
        let body = String::from_utf8_lossy(&message.body).to_string();
        let code = body
            .lines()
            .next()
            .filter(|line| line.starts_with("SIP/2.0 "))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|c| c.parse::<u16>().ok());
        let terminated = message
            .header("Subscription-State")
            .is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"));
        match code {
            Some(code) if (200..300).contains(&code) => {
                if let Some(call) = self.calls.get_mut(id) {
                    call.transfer_pending = false;
                    call.transfer_deadline_ms = None;
                }
                self.events
                    .push_back(SipEvent::TransferDone { id: id.clone() });
                self.send_in_dialog(now_ms, id, "BYE", vec![], None, Purpose::Bye(id.clone()));
                self.end(now_ms, id, Some("transfer.done"));
            }
            Some(code) if code >= 300 => {
                self.transfer_failed(id, format!("transfer.failed.{code}"));
            }
            // Progress (1xx) keeps waiting, unless the subscription ended without an answer.
            _ if terminated => self.transfer_failed(id, "transfer.ended".into()),
            _ => {}
        }
    }
}
