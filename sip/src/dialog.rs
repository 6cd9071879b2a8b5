//! The SIP user agent server: inbound calls, their dialogs and transactions, and our own
//! requests (BYE, REFER, REGISTER).
//!
//! Owns: every call's signalling state (INVITE → 100 → 180 → 200 with the SDP answer → ACK;
//! a late offer, an INVITE without SDP, gets our offer in the 200 and must be answered in the
//! ACK, or we send BYE with `sdp.no_answer_in_ack`; BYE either way; CANCEL; re-INVITE for
//! hold/unhold and codec changes; INFO DTMF; session timers), flood limits (per-source rate
//! limits and blocks through [`SourceLimiter`]; at most `max_half_open` calls waiting for
//! their ACK, the oldest pushed out by a new one; an ACK timeout of its own), retransmission of our final INVITE responses until ACK over UDP (RFC 3261 17.2.1),
//! retransmission of our requests until answered (17.1.2), trust (IP allowlist and digest
//! challenge), and outbound registration.
//!
//! Sans-IO: feed datagrams with [`SipSession::handle_input`], time with
//! [`SipSession::handle_timeout`]; drain [`SipSession::poll_transmit`] and
//! [`SipSession::poll_event`]; sleep until [`SipSession::poll_timeout`]. Times are milliseconds
//! on a monotonic clock; randomness comes from a seed given at construction.
//!
//! Invariants: every request we can parse gets exactly one final answer (retransmitted as the
//! transport needs); a request we cannot parse is dropped; a call's `CallEnded` event is emitted
//! exactly once; nothing that arrives for one call changes another.
//!
//! Layout: one concern per file, all methods of the one [`SipSession`]:
//! - this file: the public types, the session's queues, message-writing helpers and the
//!   dispatch of requests (the checks every request passes, OPTIONS, 405/501);
//! - `config`: the endpoint's settings ([`EndpointConfig`], the allowlist's [`IpNet`]);
//! - `call`: one call's dialog record, its state machine, and how a call ends;
//! - `invite`: a new INVITE: trust, offer/answer, ringing, accept/reject, our final answers;
//! - `in_dialog`: requests inside a call: ACK, CANCEL, BYE, re-INVITE, INFO, UPDATE;
//! - `transaction`: the RFC 3261 timers and our client transactions (BYE, REFER, REGISTER);
//! - `transfer`: REFER and the NOTIFYs that report on it;
//! - `registration`: outbound REGISTER with digest challenges, refresh and back-off;
//! - `timers`: `poll_timeout` / `handle_timeout` and session timers (RFC 4028).

mod call;
mod config;
mod in_dialog;
mod invite;
mod registration;
mod timers;
mod transaction;
mod transfer;

pub use config::{EndpointConfig, InboundAuth, IpNet, RegistrationConfig, SrtpPolicy};
pub use timers::MIN_SESSION_EXPIRES_S;
pub use transaction::{T1_MS, T2_MS, TIMER_B_MS};
pub use transfer::TRANSFER_NO_ANSWER_MS;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::auth::DigestGuard;
use crate::flood::{LimitKind, SourceLimiter, Verdict};
use crate::message::{scheme_of, uri_of, Defect, MessageWriter, SipMessage, StartLine};
use crate::sdp::Negotiated;

use call::{Call, CallState};
use registration::Registration;
use transaction::ClientTransaction;

/// The methods we serve, for `Allow`.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY, REFER";
/// Methods we know but do not serve (405); anything else is 501.
const KNOWN_UNSERVED: [&str; 5] = ["REGISTER", "SUBSCRIBE", "MESSAGE", "PUBLISH", "PRACK"];
/// A refusal: the final status code and the extra headers that explain it.
type Refusal = (u16, Vec<(&'static str, String)>);

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
    /// SIP over TLS (RFC 3261 26.2; `sips:` in our Contact).
    Tls,
}

impl TransportKind {
    /// The Via token.
    pub fn via_name(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
        }
    }

    /// The name in call records: `sip-udp`, `sip-tcp` or `sip-tls`.
    pub fn record_name(self) -> &'static str {
        match self {
            TransportKind::Udp => "sip-udp",
            TransportKind::Tcp => "sip-tcp",
            TransportKind::Tls => "sip-tls",
        }
    }

    fn reliable(self) -> bool {
        self != TransportKind::Udp
    }
}

/// Where a message came from or goes to. TCP messages name their connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: TransportKind,
    pub addr: SocketAddr,
    /// The driver's id for a TCP connection.
    pub connection: Option<u64>,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub peer: Peer,
    pub data: Vec<u8>,
}

/// A SIP Call-ID: identifies one call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SipCallId(pub String);

impl std::fmt::Display for SipCallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who called and what was agreed, for the application.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingCall {
    pub id: SipCallId,
    pub peer: Peer,
    /// The From URI.
    pub from: String,
    /// The To URI.
    pub to: String,
    /// What the offer in the INVITE and our codecs agreed on; `None` for a late offer (an
    /// INVITE without SDP): [`SipSession::accept`] then sends our offer, and the caller's
    /// answer in the ACK arrives with [`SipEvent::Connected`] (or ends the call).
    pub negotiated: Option<Negotiated>,
    /// Caller context: every header of the INVITE, in order.
    pub headers: Vec<(String, String)>,
}

/// What happened, for the driver and application.
#[derive(Debug, Clone, PartialEq)]
pub enum SipEvent {
    /// A new call: answer it with [`SipSession::accept`] or refuse with [`SipSession::reject`].
    /// It is half-open until its ACK: start nothing expensive for it before
    /// [`SipEvent::Connected`].
    IncomingCall(IncomingCall),
    /// The caller's ACK confirmed an answered call: media can start, with what was agreed
    /// (for a late offer, the answer in the ACK, RFC 3264). `None` when a late offer's ACK
    /// answered nothing usable: a hang-up (`sdp.no_answer_in_ack`) follows at once.
    Connected {
        id: SipCallId,
        negotiated: Option<Negotiated>,
    },
    /// A source broke a rate limit and is blocked: everything it sends is dropped unread until
    /// the block ends.
    SourceBlocked {
        ip: IpAddr,
        limit: LimitKind,
        for_ms: u64,
    },
    /// A block ended, with the messages dropped while it lasted.
    SourceUnblocked { ip: IpAddr, dropped: u64 },
    /// A re-INVITE changed the media.
    MediaUpdated {
        id: SipCallId,
        negotiated: Negotiated,
    },
    /// A DTMF key by SIP INFO.
    Dtmf { id: SipCallId, digit: char },
    /// The transfer target answered (the caller is gone from us).
    TransferDone { id: SipCallId },
    /// The transfer failed; the call stays with us.
    TransferFailed { id: SipCallId, reason: String },
    /// The call is over, with a stable reason code.
    CallEnded { id: SipCallId, reason: String },
    /// Registration state changed.
    Registration { registered: bool, detail: String },
}

/// The SIP endpoint's state.
#[derive(Debug)]
pub struct SipSession {
    config: EndpointConfig,
    rng: StdRng,
    calls: HashMap<SipCallId, Call>,
    client: HashMap<String, ClientTransaction>,
    guard: Option<DigestGuard>,
    registration: Option<Registration>,
    limiter: SourceLimiter,
    transmits: VecDeque<Transmit>,
    events: VecDeque<SipEvent>,
}

impl SipSession {
    /// A new endpoint; `seed` drives tags, branches and nonces.
    pub fn new(config: EndpointConfig, seed: u64, now_ms: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let guard = config
            .inbound_auth
            .as_ref()
            .map(|a| DigestGuard::new(&a.realm, &a.username, &a.password));
        let registration = config
            .registration
            .clone()
            .map(|config| Registration::new(config, &mut rng, now_ms));
        let limiter = SourceLimiter::new(config.limits.clone());
        Self {
            config,
            rng,
            calls: HashMap::new(),
            client: HashMap::new(),
            guard,
            registration,
            limiter,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SipEvent> {
        self.events.pop_front()
    }

    /// Calls that are not over.
    pub fn active_calls(&self) -> usize {
        self.calls
            .values()
            .filter(|c| c.state != CallState::Ended)
            .count()
    }

    /// Calls not over whose ACK has not come yet (ringing, offered or answered).
    pub fn half_open_calls(&self) -> usize {
        self.calls.values().filter(|c| c.half_open()).count()
    }

    /// Sources blocked by the rate limits now.
    pub fn blocked_sources(&self) -> usize {
        self.limiter.blocked_sources()
    }

    /// Applies a rate-limit verdict; true when the message must be dropped.
    fn limited(&mut self, now_ms: u64, ip: IpAddr, verdict: Verdict) -> bool {
        match verdict {
            Verdict::Pass => false,
            Verdict::Drop => true,
            Verdict::Blocked { limit, until_ms } => {
                self.events.push_back(SipEvent::SourceBlocked {
                    ip,
                    limit,
                    for_ms: until_ms.saturating_sub(now_ms),
                });
                true
            }
        }
    }

    fn random_token(&mut self) -> String {
        format!("{:016x}", self.rng.gen::<u64>())
    }

    fn send(&mut self, peer: Peer, data: Vec<u8>) {
        self.transmits.push_back(Transmit { peer, data });
    }

    fn via(&mut self, transport: TransportKind) -> (String, String) {
        let branch = format!("z9hG4bK{}", self.random_token());
        (
            format!(
                "SIP/2.0/{} {}:{};branch={branch};rport",
                transport.via_name(),
                self.host(),
                self.port_for(transport)
            ),
            branch,
        )
    }

    /// Our port for a transport: the TLS port for TLS, the SIP port otherwise.
    fn port_for(&self, transport: TransportKind) -> u16 {
        match (transport, self.config.tls_port) {
            (TransportKind::Tls, Some(port)) => port,
            _ => self.config.sip_port,
        }
    }

    fn host(&self) -> String {
        match self.config.advertised_ip {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        }
    }

    /// Our Contact on a transport. Over TLS it is a `sips:` URI when the caller asked for one
    /// (`sips:` in its Request-URI), else `sip:` with `transport=tls` (RFC 5630 3.1).
    fn contact(&self, transport: TransportKind, sips: bool) -> String {
        let port = self.port_for(transport);
        let host = self.host();
        match (transport, sips) {
            (TransportKind::Udp, _) => format!("<sip:hotline@{host}:{port}>"),
            (TransportKind::Tcp, _) => format!("<sip:hotline@{host}:{port};transport=tcp>"),
            (TransportKind::Tls, true) => format!("<sips:hotline@{host}:{port}>"),
            (TransportKind::Tls, false) => format!("<sip:hotline@{host}:{port};transport=tls>"),
        }
    }

    /// Our Contact in a call: its transport, and `sips:` when its INVITE asked for it.
    fn contact_in(&self, id: &SipCallId) -> String {
        match self.calls.get(id) {
            Some(call) => {
                let sips = match &call.invite.start {
                    StartLine::Request { uri, .. } => scheme_of(uri) == "sips",
                    StartLine::Response { .. } => false,
                };
                self.contact(call.peer.transport, sips)
            }
            None => self.contact(TransportKind::Udp, false),
        }
    }

    fn respond(
        &mut self,
        peer: Peer,
        request: &SipMessage,
        code: u16,
        to_tag: Option<&str>,
        extra: &[(&str, String)],
    ) {
        let mut writer = MessageWriter::response(code).echo(request, to_tag);
        for (name, value) in extra {
            writer = writer.header(name, value);
        }
        let data = writer
            .header("Server", &self.config.user_agent.clone())
            .body(None, b"");
        self.send(peer, data);
    }

    /// Handles one received message.
    pub fn handle_input(&mut self, now_ms: u64, peer: Peer, data: &[u8]) {
        // Every datagram counts against its source's limit, read or not.
        let ip = peer.addr.ip();
        let verdict = self.limiter.check_message(now_ms, ip);
        if self.limited(now_ms, ip, verdict) {
            return;
        }
        // Keep-alive CRLFs (RFC 5626) get a pong on UDP and nothing else.
        if data.iter().all(|b| *b == b'\r' || *b == b'\n') {
            return;
        }
        let Ok(message) = SipMessage::parse(data) else {
            tracing::debug!(%peer.addr, "dropped an unparsable SIP message");
            return;
        };
        match &message.start {
            StartLine::Request { method, uri } => {
                let (method, uri) = (method.clone(), uri.clone());
                // A dialog-opening INVITE also counts against the source's new-call limit.
                let opens_dialog = method == "INVITE"
                    && message.tag("To").is_none()
                    && message
                        .header("Call-ID")
                        .is_some_and(|id| !self.calls.contains_key(&SipCallId(id.to_string())));
                if opens_dialog {
                    let verdict = self.limiter.check_call(now_ms, ip);
                    if self.limited(now_ms, ip, verdict) {
                        return;
                    }
                }
                self.handle_request(now_ms, peer, message, &method, &uri);
            }
            StartLine::Response { code, .. } => {
                let code = *code;
                self.handle_response(now_ms, message, code);
            }
        }
    }

    /// Checks that apply to every request; `Some(code, extra headers)` refuses it.
    fn check_request(
        &self,
        peer: Peer,
        message: &SipMessage,
        method: &str,
        uri: &str,
    ) -> Option<Refusal> {
        match &message.defect {
            Some(Defect::Version(_)) => return Some((505, vec![])),
            Some(Defect::Syntax(why)) => {
                tracing::debug!(%peer.addr, %why, "refused a malformed request");
                return Some((400, vec![]));
            }
            None => {}
        }
        for required in ["From", "To", "Call-ID", "CSeq"] {
            if message.header(required).is_none() {
                return Some((400, vec![]));
            }
        }
        match message.cseq() {
            Some((_, cseq_method)) if cseq_method == method => {}
            _ => return Some((400, vec![])),
        }
        match &message.declared_length {
            Some(Err(_)) => return Some((400, vec![])),
            Some(Ok(length))
                if peer.transport == TransportKind::Udp && *length > message.available_body =>
            {
                return Some((400, vec![]))
            }
            _ => {}
        }
        if let Some(max_forwards) = message.header("Max-Forwards") {
            match max_forwards.trim().parse::<u32>() {
                Ok(0) if method != "OPTIONS" => return Some((483, vec![])),
                Ok(_) => {}
                Err(_) => return Some((400, vec![])),
            }
        }
        // The Request-URI, From and To must be URIs we can use (RFC 4475 3.3.2 to 3.3.4).
        let known = |uri: &str| matches!(scheme_of(uri).as_str(), "sip" | "sips" | "tel");
        if !known(uri)
            || ["From", "To"]
                .iter()
                .any(|h| !known(&uri_of(message.header(h).unwrap_or_default())))
        {
            return Some((416, vec![]));
        }
        if method != "ACK" && method != "CANCEL" {
            let unsupported: Vec<String> = message
                .headers_named("Require")
                .flat_map(|v| v.split(','))
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("timer"))
                .collect();
            if !unsupported.is_empty() {
                return Some((420, vec![("Unsupported", unsupported.join(", "))]));
            }
        }
        None
    }

    fn handle_request(
        &mut self,
        now_ms: u64,
        peer: Peer,
        message: SipMessage,
        method: &str,
        uri: &str,
    ) {
        // Without a Via we cannot route an answer: drop.
        if message.header("Via").is_none() {
            return;
        }
        if let Some((code, extra)) = self.check_request(peer, &message, method, uri) {
            if method != "ACK" {
                self.respond(peer, &message, code, Some("hotline-refused"), &extra);
            }
            return;
        }
        let id = SipCallId(message.header("Call-ID").unwrap_or_default().to_string());
        match method {
            "INVITE" => {
                if self.calls.contains_key(&id) {
                    self.handle_in_dialog_invite(now_ms, peer, &id, message);
                } else if message.tag("To").is_some() {
                    self.respond(peer, &message, 481, None, &[]);
                } else {
                    self.handle_new_invite(now_ms, peer, id, message);
                }
            }
            "ACK" => self.handle_ack(now_ms, &id, &message),
            "CANCEL" => self.handle_cancel(now_ms, peer, &id, &message),
            "BYE" => self.handle_bye(now_ms, peer, &id, &message),
            "OPTIONS" => {
                let extra = [
                    ("Allow", ALLOW.to_string()),
                    ("Accept", "application/sdp".to_string()),
                    ("Supported", "timer".to_string()),
                ];
                self.respond(peer, &message, 200, Some("hotline-options"), &extra);
            }
            "INFO" => self.handle_info(peer, &id, &message),
            "UPDATE" => self.handle_update(now_ms, peer, &id, &message),
            "NOTIFY" => self.handle_notify(now_ms, peer, &id, &message),
            "REFER" => self.respond(peer, &message, 403, None, &[]),
            other if KNOWN_UNSERVED.contains(&other) => self.respond(
                peer,
                &message,
                405,
                Some("hotline-405"),
                &[("Allow", ALLOW.into())],
            ),
            _ => self.respond(
                peer,
                &message,
                501,
                Some("hotline-501"),
                &[("Allow", ALLOW.into())],
            ),
        }
    }
}

#[cfg(test)]
mod tests;
