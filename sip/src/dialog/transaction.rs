//! Our client transactions: the requests we send (BYE, REFER, REGISTER) until they are answered.
//!
//! Owns: the RFC 3261 timers ([`T1_MS`], [`T2_MS`], [`TIMER_B_MS`]); the retransmission schedule
//! [`Retransmit`], which our final INVITE answers share; building an in-dialog request from a
//! call's dialog state (CSeq, route set, remote target); and routing each final response to what
//! the request was for ([`Purpose`]: a refused REFER fails the transfer, a REGISTER's answer goes
//! to the registration).
//!
//! Invariants: a transaction is keyed by its Via branch and ends at its first final response or
//! after Timer B, whichever comes first; over UDP a request is resent at T1, doubling up to T2 (at
//! T2 once a provisional response came, 17.1.2.2); over TCP it is never resent.

use crate::message::{MessageWriter, SipMessage};

use super::{Peer, SipCallId, SipSession};

/// RFC 3261 timer T1 (RTT estimate).
pub const T1_MS: u64 = 500;
/// RFC 3261 timer T2 (the retransmission cap for non-INVITE requests and INVITE responses).
pub const T2_MS: u64 = 4_000;
/// 64 × T1: how long a transaction lives.
pub const TIMER_B_MS: u64 = 64 * T1_MS;

/// When to send a message again, until an answer (or the ACK) stops it.
#[derive(Debug)]
pub(super) struct Retransmit {
    pub(super) data: Vec<u8>,
    pub(super) next_ms: u64,
    pub(super) interval_ms: u64,
    pub(super) give_up_ms: u64,
}

impl Retransmit {
    /// A schedule from `now_ms`: the first resend after T1, giving up after Timer B.
    pub(super) fn start(data: Vec<u8>, now_ms: u64) -> Self {
        Self {
            data,
            next_ms: now_ms + T1_MS,
            interval_ms: T1_MS,
            give_up_ms: now_ms + TIMER_B_MS,
        }
    }

    /// After a resend at `now_ms`: the interval doubles, up to T2.
    pub(super) fn back_off(&mut self, now_ms: u64) {
        self.interval_ms = (self.interval_ms * 2).min(T2_MS);
        self.next_ms = now_ms + self.interval_ms;
    }
}

/// What a request we sent was for, and so what its answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Purpose {
    Bye(SipCallId),
    Refer(SipCallId),
    Register,
}

/// One request of ours waiting for its final response.
#[derive(Debug)]
pub(super) struct ClientTransaction {
    pub(super) peer: Peer,
    pub(super) purpose: Purpose,
    pub(super) retransmit: Option<Retransmit>,
    pub(super) give_up_ms: u64,
}

impl SipSession {
    pub(super) fn send_in_dialog(
        &mut self,
        now_ms: u64,
        id: &SipCallId,
        method: &str,
        extra: Vec<(&str, String)>,
        body: Option<(&str, Vec<u8>)>,
        purpose: Purpose,
    ) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        let transport = call.peer.transport;
        let (via, branch) = self.via(transport);
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        call.local_cseq += 1;
        let mut writer = MessageWriter::request(method, &call.remote_target)
            .header("Via", &via)
            .header("Max-Forwards", "70")
            .header("From", &call.local_party)
            .header("To", &call.remote_party)
            .header("Call-ID", &call.id.0)
            .header("CSeq", &format!("{} {method}", call.local_cseq));
        for route in call.route_set.iter() {
            writer = writer.header("Route", route);
        }
        for (name, value) in &extra {
            writer = writer.header(name, value);
        }
        let data = match &body {
            Some((content_type, bytes)) => writer
                .header("User-Agent", &self.config.user_agent)
                .body(Some(content_type), bytes),
            None => writer
                .header("User-Agent", &self.config.user_agent)
                .body(None, b""),
        };
        let peer = call.peer;
        self.start_client_transaction(now_ms, peer, branch, data, purpose);
    }

    pub(super) fn start_client_transaction(
        &mut self,
        now_ms: u64,
        peer: Peer,
        branch: String,
        data: Vec<u8>,
        purpose: Purpose,
    ) {
        let retransmit =
            (!peer.transport.reliable()).then(|| Retransmit::start(data.clone(), now_ms));
        self.client.insert(
            branch,
            ClientTransaction {
                peer,
                purpose,
                retransmit,
                give_up_ms: now_ms + TIMER_B_MS,
            },
        );
        self.send(peer, data);
    }

    pub(super) fn handle_response(&mut self, now_ms: u64, message: SipMessage, code: u16) {
        let Some(branch) = message.branch() else {
            return;
        };
        if code < 200 {
            if let Some(tx) = self.client.get_mut(&branch) {
                // Provisional: keep waiting, but stop retransmitting at T2 pace.
                if let Some(r) = tx.retransmit.as_mut() {
                    r.interval_ms = T2_MS;
                }
            }
            return;
        }
        let Some(tx) = self.client.remove(&branch) else {
            return;
        };
        match tx.purpose {
            Purpose::Bye(_) => {}
            Purpose::Refer(id) => {
                if code >= 300 {
                    self.transfer_failed(&id, format!("transfer.refused.{code}"));
                }
            }
            Purpose::Register => self.on_register_response(now_ms, &message, code),
        }
    }

    /// The client transactions' timers: retransmission over UDP and Timer B, which fails the
    /// REFER or REGISTER that was not answered.
    pub(super) fn run_client_timers(&mut self, now_ms: u64) {
        let mut resend = Vec::new();
        let mut timed_out = Vec::new();
        for (branch, tx) in self.client.iter_mut() {
            if now_ms >= tx.give_up_ms {
                timed_out.push(branch.clone());
                continue;
            }
            if let Some(r) = tx.retransmit.as_mut() {
                if now_ms >= r.next_ms {
                    resend.push((tx.peer, r.data.clone()));
                    r.back_off(now_ms);
                }
            }
        }
        for (peer, data) in resend {
            self.send(peer, data);
        }
        for branch in timed_out {
            if let Some(tx) = self.client.remove(&branch) {
                match tx.purpose {
                    Purpose::Register => self.on_register_failure(now_ms, "registration.timeout"),
                    Purpose::Refer(id) => self.transfer_failed(&id, "transfer.timeout".into()),
                    Purpose::Bye(_) => {}
                }
            }
        }
    }
}
