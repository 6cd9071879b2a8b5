//! A new call: the INVITE server transaction up to our final answer.
//!
//! Owns: trust (the IP allowlist, then a digest challenge), the checks of the INVITE itself
//! (body type, Accept, the SDP offer and its negotiation, the session interval against
//! Min-SE), 100 Trying and 180 Ringing, the answer delay, [`SipSession::accept`] and
//! [`SipSession::reject`], and writing and keeping our final INVITE responses (a 2xx is
//! retransmitted until the ACK on every transport, others on UDP only).
//!
//! Also owns the half-open limit: at most `max_half_open` calls wait for their ACK, the
//! oldest pushed out by a new one, and an answered call waits `ack_timeout_ms` for it.
//!
//! Invariants: every INVITE gets exactly one final answer; a refused one is remembered as an
//! ended call so that its retransmissions and ACK are absorbed, and the application never sees
//! it; the application is offered a call once, when it becomes `Offered`.

use std::net::IpAddr;

use rand::Rng;

use crate::auth::DigestVerdict;
use crate::message::{uri_of, MessageWriter, SipMessage};
use crate::sdp::{self, Codec, LocalSdp, MediaPorts, Negotiated, SessionDescription};

use super::call::{Call, CallState};
use super::timers::MIN_SESSION_EXPIRES_S;
use super::transaction::{Retransmit, T1_MS};
use super::{IncomingCall, Peer, Refusal, SipCallId, SipEvent, SipSession, Transmit, ALLOW};

impl SipSession {
    fn trusted(&mut self, now_ms: u64, peer: Peer, message: &SipMessage) -> Result<(), Refusal> {
        let allowed = self
            .config
            .allow_from
            .iter()
            .any(|net| net.contains(peer.addr.ip()));
        if allowed {
            return Ok(());
        }
        if self.guard.is_none() {
            return if self.config.allow_from.is_empty() {
                Ok(())
            } else {
                Err((403, vec![]))
            };
        }
        let verdict = match (message.header("Authorization"), self.guard.as_mut()) {
            (Some(credentials), Some(guard)) => guard.verify(credentials, "INVITE", now_ms),
            _ => DigestVerdict::Invalid,
        };
        if verdict == DigestVerdict::Valid {
            return Ok(());
        }
        let nonce = format!("{:032x}", self.rng.gen::<u128>());
        let stale = verdict == DigestVerdict::Stale;
        let challenge = self
            .guard
            .as_mut()
            .map(|g| g.challenge(nonce, now_ms, stale))
            .unwrap_or_default();
        Err((401, vec![("WWW-Authenticate", challenge)]))
    }

    pub(super) fn handle_new_invite(
        &mut self,
        now_ms: u64,
        peer: Peer,
        id: SipCallId,
        message: SipMessage,
    ) {
        if let Err((code, extra)) = self.trusted(now_ms, peer, &message) {
            let tag = self.random_token();
            self.respond(peer, &message, code, Some(&tag), &extra);
            self.remember_refusal(now_ms, peer, id, message, tag, code);
            return;
        }
        self.respond(peer, &message, 100, None, &[]);
        let local_tag = self.random_token();
        let content_type = message.header("Content-Type").unwrap_or("application/sdp");
        if !message.body.is_empty()
            && !content_type
                .to_ascii_lowercase()
                .starts_with("application/sdp")
        {
            self.respond(
                peer,
                &message,
                415,
                Some(&local_tag),
                &[("Accept", "application/sdp".into())],
            );
            return self.remember_refusal(now_ms, peer, id, message, local_tag, 415);
        }
        // Our answer carries SDP; a caller that accepts no SDP cannot read it (RFC 4475 3.3.15).
        let accepts_sdp = |value: &str| {
            value.split(',').any(|range| {
                let range = range.split(';').next().unwrap_or("").trim();
                ["application/sdp", "application/*", "*/*"]
                    .iter()
                    .any(|ok| range.eq_ignore_ascii_case(ok))
            })
        };
        if message.header("Accept").is_some() && !message.headers_named("Accept").any(accepts_sdp) {
            self.respond(
                peer,
                &message,
                406,
                Some(&local_tag),
                &[("Accept", "application/sdp".into())],
            );
            return self.remember_refusal(now_ms, peer, id, message, local_tag, 406);
        }
        // No SDP: a late offer (RFC 3261 13.2.1). We offer in the 200 and read the ACK's answer.
        let late_offer = message.body.is_empty();
        let offer = match SessionDescription::parse(&message.body) {
            _ if late_offer => None,
            Ok(offer) => Some(offer),
            Err(e) => {
                let warning = format!("399 hotline \"{}\"", e.to_string().replace('"', "'"));
                self.respond(
                    peer,
                    &message,
                    488,
                    Some(&local_tag),
                    &[("Warning", warning)],
                );
                return self.remember_refusal(now_ms, peer, id, message, local_tag, 488);
            }
        };
        let negotiated = match offer.map(|offer| self.negotiate_secure(&offer, None)) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => {
                let warning = format!("304 hotline \"{e}\"");
                self.respond(
                    peer,
                    &message,
                    488,
                    Some(&local_tag),
                    &[("Warning", warning)],
                );
                return self.remember_refusal(now_ms, peer, id, message, local_tag, 488);
            }
        };
        // Session timers (RFC 4028).
        let supports_timer = message
            .headers_named("Supported")
            .chain(message.headers_named("Require"))
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("timer")));
        let asked = message
            .header("Session-Expires")
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.trim().parse::<u32>().ok());
        if let Some(asked) = asked {
            if asked < MIN_SESSION_EXPIRES_S {
                self.respond(
                    peer,
                    &message,
                    422,
                    Some(&local_tag),
                    &[("Min-SE", MIN_SESSION_EXPIRES_S.to_string())],
                );
                return self.remember_refusal(now_ms, peer, id, message, local_tag, 422);
            }
        }
        let session_expires_s = match asked {
            Some(s) => Some(s),
            None if supports_timer && self.config.session_expires_s > 0 => {
                Some(self.config.session_expires_s.max(MIN_SESSION_EXPIRES_S))
            }
            None => None,
        };
        let from = message.header("From").unwrap_or_default().to_string();
        let to = message.header("To").unwrap_or_default().to_string();
        let remote_target = message
            .header("Contact")
            .map(uri_of)
            .unwrap_or_else(|| uri_of(&from));
        let route_set = message
            .headers_named("Record-Route")
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_string())
            .collect();
        let remote_cseq = message.cseq().map(|(n, _)| n).unwrap_or(0);
        let incoming = IncomingCall {
            id: id.clone(),
            peer,
            from: uri_of(&from),
            to: uri_of(&to),
            negotiated: negotiated.clone(),
            headers: message.headers.clone(),
        };
        let ringing_until =
            (self.config.answer_delay_ms > 0).then(|| now_ms + self.config.answer_delay_ms);
        let call = Call {
            id: id.clone(),
            peer,
            state: if ringing_until.is_some() {
                CallState::Ringing
            } else {
                CallState::Offered
            },
            invite_branch: message.branch(),
            local_party: format!("{to};tag={local_tag}"),
            remote_party: from,
            invite: message,
            local_tag,
            remote_cseq,
            local_cseq: self.rng.gen_range(1..10_000),
            remote_target,
            route_set,
            negotiated: negotiated
                .unwrap_or_else(|| placeholder_negotiated(&self.config.codecs, peer.addr.ip())),
            late_offer,
            local_ports: MediaPorts::pair(0),
            sdp_session_id: self.rng.gen_range(1..u32::MAX as u64),
            sdp_version: 1,
            last_invite_final: None,
            retransmit: None,
            session_expires_s,
            session_deadline_ms: None,
            ended_at_ms: None,
            transfer_pending: false,
            transfer_deadline_ms: None,
            ringing: None,
            ringing_sent: false,
            opened_ms: now_ms,
            connected: false,
        };
        self.make_half_open_room(now_ms);
        self.calls.insert(id.clone(), call);
        match ringing_until {
            None => self.events.push_back(SipEvent::IncomingCall(incoming)),
            Some(at) => {
                self.send_ringing(&id);
                if let Some(call) = self.calls.get_mut(&id) {
                    call.ringing = Some((at, incoming));
                }
            }
        }
    }

    /// Keeps the half-open calls under `max_half_open` before a new one is added: the oldest
    /// is pushed out. A caller who is really there sends its ACK within a round trip, so only
    /// a flood of INVITEs that are never confirmed loses calls this way, and only its own.
    /// An answered one is dropped without a BYE (its 200 may have gone to a forged address:
    /// nothing more is sent there); one not yet answered gets 503.
    fn make_half_open_room(&mut self, now_ms: u64) {
        let limit = self.config.max_half_open.max(1);
        while self.half_open_calls() >= limit {
            let Some((id, state)) = self
                .calls
                .values()
                .filter(|c| c.half_open())
                .min_by_key(|c| c.opened_ms)
                .map(|c| (c.id.clone(), c.state))
            else {
                return;
            };
            if matches!(state, CallState::Ringing | CallState::Offered) {
                self.send_invite_final(now_ms, &id, 503, vec![], None);
            }
            if let Some(call) = self.calls.get_mut(&id) {
                call.ringing = None;
                call.retransmit = None;
            }
            self.end(now_ms, &id, Some("sip.half_open_evicted"));
        }
    }

    /// Negotiates an offer under the SRTP policy: an SRTP answer gets our key (`current`, the
    /// call's key so far on a re-INVITE, else a fresh random one).
    pub(super) fn negotiate_secure(
        &mut self,
        offer: &sdp::SessionDescription,
        current: Option<&sdp::SrtpKeys>,
    ) -> Result<Negotiated, String> {
        self.negotiate_with(offer, &self.config.codecs.clone(), current)
    }

    /// [`SipSession::negotiate_secure`] with a codec preference of its own.
    pub(super) fn negotiate_with(
        &mut self,
        offer: &sdp::SessionDescription,
        preference: &[Codec],
        current: Option<&sdp::SrtpKeys>,
    ) -> Result<Negotiated, String> {
        let mut negotiated = sdp::negotiate(offer, preference).map_err(|e| e.to_string())?;
        match (&mut negotiated.srtp, self.config.srtp) {
            (Some(_), super::SrtpPolicy::Off) => {
                return Err("SRTP is not enabled here (sip.srtp = \"off\")".into())
            }
            (None, super::SrtpPolicy::Required) => {
                return Err("only SRTP calls are taken here (sip.srtp = \"required\")".into())
            }
            (Some(keys), _) => {
                keys.local = match current {
                    Some(current) if current.suite == keys.suite => current.local.clone(),
                    _ => {
                        let mut key = vec![0u8; sdp::SrtpSuite::KEY_SALT_LEN];
                        self.rng.fill(key.as_mut_slice());
                        key
                    }
                };
            }
            (None, _) => {}
        }
        Ok(negotiated)
    }

    /// Sends 180 Ringing for a call not yet answered (once).
    fn send_ringing(&mut self, id: &SipCallId) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if call.ringing_sent {
            return;
        }
        call.ringing_sent = true;
        let (peer, tag, invite) = (call.peer, call.local_tag.clone(), call.invite.clone());
        self.respond(peer, &invite, 180, Some(&tag), &[]);
    }

    /// Keeps a refused INVITE's answer so that retransmissions and the ACK are absorbed.
    fn remember_refusal(
        &mut self,
        now_ms: u64,
        peer: Peer,
        id: SipCallId,
        invite: SipMessage,
        local_tag: String,
        code: u16,
    ) {
        let Some(Transmit { data, .. }) = self.transmits.back().cloned() else {
            return;
        };
        let cseq = invite.cseq().map(|(n, _)| n).unwrap_or(0);
        let retransmit =
            (!peer.transport.reliable()).then(|| Retransmit::start(data.clone(), now_ms));
        let call = Call {
            id: id.clone(),
            peer,
            state: CallState::Ended,
            invite_branch: invite.branch(),
            local_party: String::new(),
            remote_party: String::new(),
            remote_cseq: cseq,
            invite,
            local_tag,
            local_cseq: 0,
            remote_target: String::new(),
            route_set: Vec::new(),
            negotiated: placeholder_negotiated(&[], peer.addr.ip()),
            late_offer: false,
            local_ports: MediaPorts::pair(0),
            sdp_session_id: 0,
            sdp_version: 0,
            last_invite_final: Some((cseq, data)),
            retransmit,
            session_expires_s: None,
            session_deadline_ms: None,
            ended_at_ms: Some(now_ms),
            transfer_pending: false,
            transfer_deadline_ms: None,
            ringing: None,
            ringing_sent: false,
            opened_ms: now_ms,
            connected: false,
        };
        tracing::debug!(call = %id, code, "refused a call");
        self.calls.insert(id, call);
    }

    fn local_sdp(&self, call: &Call) -> LocalSdp {
        LocalSdp {
            ip: self.config.advertised_ip,
            ports: call.local_ports,
            session_id: call.sdp_session_id,
            session_version: call.sdp_version,
        }
    }

    /// Our answer to the caller's offer, or for a late-offer call whose ACK has not yet come,
    /// our offer.
    pub(super) fn answer_sdp(&self, call: &Call) -> String {
        if call.late_offer {
            sdp::write_offer(&self.config.codecs, &self.local_sdp(call))
        } else {
            sdp::write_answer(&call.negotiated, &self.local_sdp(call))
        }
    }

    pub(super) fn send_invite_final(
        &mut self,
        now_ms: u64,
        id: &SipCallId,
        code: u16,
        extra: Vec<(&str, String)>,
        body: Option<String>,
    ) {
        let contact = self.contact_in(id);
        let user_agent = self.config.user_agent.clone();
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let invite = &call.invite;
        let mut writer = MessageWriter::response(code).echo(invite, Some(&call.local_tag));
        for (name, value) in &extra {
            writer = writer.header(name, value);
        }
        if code < 300 {
            writer = writer
                .header("Contact", &contact)
                .header("Allow", ALLOW)
                .header("Supported", "timer");
            for rr in invite.headers_named("Record-Route") {
                writer = writer.header("Record-Route", rr);
            }
        }
        writer = writer.header("Server", &user_agent);
        let data = match &body {
            Some(sdp) => writer.body(Some("application/sdp"), sdp.as_bytes()),
            None => writer.body(None, b""),
        };
        let cseq = invite.cseq().map(|(n, _)| n).unwrap_or(0);
        call.last_invite_final = Some((cseq, data.clone()));
        // 2xx is retransmitted until ACK on every transport (RFC 3261 13.3.1.4); others on UDP.
        if code < 300 || !call.peer.transport.reliable() {
            call.retransmit = Some(Retransmit::start(data.clone(), now_ms));
        }
        let peer = call.peer;
        self.send(peer, data);
    }

    /// Answers a call: 180 Ringing, then 200 OK with our SDP naming `ports` (a bare RTP port
    /// means RTCP on the port above it; any other RTCP port is written as `a=rtcp`). The SDP is
    /// our answer, or for a late offer ([`IncomingCall::negotiated`] is `None`) our offer with
    /// every configured codec.
    pub fn accept(&mut self, now_ms: u64, id: &SipCallId, ports: impl Into<MediaPorts>) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if call.state != CallState::Offered {
            return;
        }
        call.local_ports = ports.into();
        call.state = CallState::Answered;
        self.send_ringing(id);
        let Some(call) = self.calls.get(id) else {
            return;
        };
        let sdp = self.answer_sdp(call);
        let mut extra = Vec::new();
        if let Some(seconds) = call.session_expires_s {
            extra.push(("Session-Expires", format!("{seconds};refresher=uac")));
            extra.push(("Require", "timer".to_string()));
        }
        self.send_invite_final(now_ms, id, 200, extra, Some(sdp));
        let ack_timeout_ms = self.config.ack_timeout_ms;
        if let Some(call) = self.calls.get_mut(id) {
            call.refresh_session_timer(now_ms);
            // A half-open call waits for its ACK only this long (RFC 3261's 64×T1 at most).
            if let Some(r) = call.retransmit.as_mut() {
                r.give_up_ms = r.give_up_ms.min(now_ms + ack_timeout_ms.max(T1_MS));
            }
        }
    }

    /// Refuses a call the application cannot take (486/503 with Retry-After at capacity).
    pub fn reject(&mut self, now_ms: u64, id: &SipCallId, code: u16, retry_after_s: Option<u32>) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        if call.state != CallState::Offered {
            return;
        }
        let extra = retry_after_s
            .map(|s| vec![("Retry-After", s.to_string())])
            .unwrap_or_default();
        self.send_invite_final(now_ms, id, code, extra, None);
        self.end(now_ms, id, None);
    }
}

/// The media of a call before it has any (refused calls, late offers before the ACK): nothing
/// flows.
fn placeholder_negotiated(codecs: &[Codec], remote_ip: IpAddr) -> Negotiated {
    let codec = codecs.first().copied().unwrap_or(Codec::Pcmu);
    Negotiated {
        codec,
        payload_type: sdp::offer_payload_type(codec),
        telephone_event_pt: None,
        direction: sdp::Direction::Inactive,
        remote_ip,
        remote_port: 0,
        rtcp: sdp::RtcpTarget::NextPort,
        srtp: None,
    }
}
