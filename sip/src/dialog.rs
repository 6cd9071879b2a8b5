//! The SIP user agent server: inbound calls, their dialogs and transactions, and our own
//! requests (BYE, REFER, REGISTER).
//!
//! Owns: every call's signalling state (INVITE → 100 → 180 → 200 with the SDP answer → ACK;
//! a late offer, an INVITE without SDP, gets our offer in the 200 and must be answered in the
//! ACK, or we send BYE with `sdp.no_answer_in_ack`; BYE either way; CANCEL; re-INVITE for hold/unhold and codec changes; INFO DTMF; session
//! timers), retransmission of our final INVITE responses until ACK over UDP (RFC 3261 17.2.1),
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

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::auth::{self, DigestGuard, DigestParams};
use crate::dtmf;
use crate::message::{param, scheme_of, uri_of, Defect, MessageWriter, SipMessage, StartLine};
use crate::sdp::{self, Codec, LocalSdp, MediaPorts, Negotiated, SessionDescription};

/// RFC 3261 timer T1 (RTT estimate).
pub const T1_MS: u64 = 500;
/// RFC 3261 timer T2 (the retransmission cap for non-INVITE requests and INVITE responses).
pub const T2_MS: u64 = 4_000;
/// 64 × T1: how long a transaction lives.
pub const TIMER_B_MS: u64 = 64 * T1_MS;

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY, REFER";
/// Methods we know but do not serve (405); anything else is 501.
const KNOWN_UNSERVED: [&str; 5] = ["REGISTER", "SUBSCRIBE", "MESSAGE", "PUBLISH", "PRACK"];
/// How long a transfer may wait for the target's final answer (the NOTIFY after 202) before it
/// counts as not answered.
pub const TRANSFER_NO_ANSWER_MS: u64 = 45_000;
/// The longest context header value we put on a REFER.
const MAX_CONTEXT_VALUE_CHARS: usize = 256;
/// The least session interval we accept (RFC 4028 Min-SE).
pub const MIN_SESSION_EXPIRES_S: u32 = 90;

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
}

impl TransportKind {
    /// The Via token.
    pub fn via_name(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
        }
    }

    /// The name in call records: `sip-udp` or `sip-tcp`.
    pub fn record_name(self) -> &'static str {
        match self {
            TransportKind::Udp => "sip-udp",
            TransportKind::Tcp => "sip-tcp",
        }
    }

    fn reliable(self) -> bool {
        self == TransportKind::Tcp
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

/// An IPv4/IPv6 network for the allowlist, e.g. `10.0.0.0/8` or a bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: bad prefix length"))?,
            None => max,
        };
        Ok(IpNet { addr, prefix_len })
    }
}

impl IpNet {
    /// Whether the address is inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - self.prefix_len as u32)
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - self.prefix_len as u32)
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Credentials for inbound digest challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundAuth {
    pub realm: String,
    pub username: String,
    pub password: String,
}

/// Outbound registration to a trunk or PBX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// The registrar's address.
    pub registrar: SocketAddr,
    /// The domain in the AOR (`sip:username@domain`); the registrar's IP when empty.
    pub domain: String,
    pub username: String,
    pub password: String,
    pub expires_s: u32,
}

/// The endpoint's settings.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The address we put in Via, Contact and SDP (the public address behind NAT).
    pub advertised_ip: IpAddr,
    /// Our SIP port (for Via and Contact).
    pub sip_port: u16,
    pub user_agent: String,
    /// Codecs in preference order.
    pub codecs: Vec<Codec>,
    /// Sources trusted without a challenge; empty means all when no digest is configured.
    pub allow_from: Vec<IpNet>,
    /// Digest credentials callers outside the allowlist must present.
    pub inbound_auth: Option<InboundAuth>,
    /// Our session interval when the caller supports timers (0 turns timers off).
    pub session_expires_s: u32,
    /// How long a new call rings (180 sent) before it is offered to the application; a CANCEL
    /// in that time ends it without the application ever seeing it. 0 offers it at once.
    pub answer_delay_ms: u64,
    pub registration: Option<RegistrationConfig>,
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
    /// answer in the ACK arrives as [`SipEvent::LateAnswer`] (or ends the call).
    pub negotiated: Option<Negotiated>,
    /// Caller context: every header of the INVITE, in order.
    pub headers: Vec<(String, String)>,
}

/// What happened, for the driver and application.
#[derive(Debug, Clone, PartialEq)]
pub enum SipEvent {
    /// A new call: answer it with [`SipSession::accept`] or refuse with [`SipSession::reject`].
    IncomingCall(IncomingCall),
    /// The ACK answered the offer we sent for a late-offer call (RFC 3264): media can start.
    LateAnswer {
        id: SipCallId,
        negotiated: Negotiated,
    },
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
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

#[derive(Debug)]
struct Retransmit {
    data: Vec<u8>,
    next_ms: u64,
    interval_ms: u64,
    give_up_ms: u64,
}

#[derive(Debug)]
struct Call {
    id: SipCallId,
    peer: Peer,
    state: CallState,
    invite: SipMessage,
    invite_branch: Option<String>,
    local_tag: String,
    remote_cseq: u32,
    local_cseq: u32,
    remote_target: String,
    route_set: Vec<String>,
    local_party: String,
    remote_party: String,
    /// For a late offer, a placeholder until the ACK's answer arrives.
    negotiated: Negotiated,
    /// The INVITE had no SDP: our 200 carries the offer, and the ACK must carry the answer.
    late_offer: bool,
    local_ports: MediaPorts,
    sdp_session_id: u64,
    sdp_version: u64,
    /// The last final response to an INVITE (initial or re-), for retransmission.
    last_invite_final: Option<(u32, Vec<u8>)>,
    retransmit: Option<Retransmit>,
    session_expires_s: Option<u32>,
    session_deadline_ms: Option<u64>,
    ended_at_ms: Option<u64>,
    transfer_pending: bool,
    /// While a transfer is pending: when it counts as not answered.
    transfer_deadline_ms: Option<u64>,
    /// While ringing: when the call is offered to the application, and what it is told.
    ringing: Option<(u64, IncomingCall)>,
    /// 180 Ringing has been sent.
    ringing_sent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    Bye(SipCallId),
    Refer(SipCallId),
    Register,
}

#[derive(Debug)]
struct ClientTransaction {
    peer: Peer,
    purpose: Purpose,
    retransmit: Option<Retransmit>,
    give_up_ms: u64,
}

#[derive(Debug)]
struct Registration {
    config: RegistrationConfig,
    call_id: String,
    from_tag: String,
    cseq: u32,
    registered: bool,
    next_attempt_ms: Option<u64>,
    backoff_ms: u64,
    /// The challenges we answer on every REGISTER (a proxy's 407 and a registrar's 401 can both
    /// stand), kept for refreshes until the server changes its nonce.
    challenges: Vec<CachedChallenge>,
    /// Challenge responses in the current attempt; past [`MAX_CHALLENGE_ROUNDS`] it has failed.
    challenge_rounds: u32,
}

/// One digest challenge we keep answering.
#[derive(Debug)]
struct CachedChallenge {
    /// `Authorization` for a WWW-Authenticate challenge, `Proxy-Authorization` for a
    /// Proxy-Authenticate one (RFC 3261 22.3).
    answer_header: &'static str,
    challenge: DigestParams,
    /// Answers sent to this nonce so far (the `nc` of the last one).
    answers: u32,
}

/// The most challenges one registration attempt answers before it counts as failed (a proxy
/// and a registrar need two; servers that rotate nonces on every request would loop).
const MAX_CHALLENGE_ROUNDS: u32 = 4;

impl Registration {
    /// Takes the challenges of a 401 or 407 (a response may carry WWW-Authenticate and
    /// Proxy-Authenticate together). A challenge replaces the one we hold for the same realm; one
    /// that repeats a nonce we already answered, without `stale=true`, means our credentials
    /// were refused.
    fn take_challenges(&mut self, message: &SipMessage) -> Result<(), &'static str> {
        self.challenge_rounds += 1;
        if self.challenge_rounds > MAX_CHALLENGE_ROUNDS {
            return Err("registration.auth_loop");
        }
        let found: Vec<(&'static str, DigestParams)> = message
            .headers_named("WWW-Authenticate")
            .map(|v| ("Authorization", v))
            .chain(
                message
                    .headers_named("Proxy-Authenticate")
                    .map(|v| ("Proxy-Authorization", v)),
            )
            .filter_map(|(header, value)| DigestParams::parse(value).map(|p| (header, p)))
            .collect();
        if found.is_empty() {
            return Err("registration.bad_challenge");
        }
        for (answer_header, challenge) in found {
            // Only challenges we can answer (MD5, with realm and nonce) are taken.
            let answerable = auth::authorization(&challenge, "", "", "REGISTER", "sip:x", "c", 1);
            if answerable.is_none() {
                return Err("registration.bad_challenge");
            }
            let stale = challenge
                .get("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true"));
            let held = self.challenges.iter_mut().find(|c| {
                c.answer_header == answer_header
                    && c.challenge.get("realm") == challenge.get("realm")
            });
            match held {
                Some(held)
                    if held.answers > 0
                        && held.challenge.get("nonce") == challenge.get("nonce")
                        && !stale =>
                {
                    return Err("registration.auth_failed");
                }
                Some(held) => {
                    held.challenge = challenge;
                    held.answers = 0;
                }
                None => self.challenges.push(CachedChallenge {
                    answer_header,
                    challenge,
                    answers: 0,
                }),
            }
        }
        Ok(())
    }
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
        let registration = config.registration.clone().map(|config| Registration {
            config,
            call_id: format!("{:016x}@hotline", rng.gen::<u64>()),
            from_tag: format!("{:08x}", rng.gen::<u32>()),
            cseq: 0,
            registered: false,
            next_attempt_ms: Some(now_ms),
            backoff_ms: 5_000,
            challenges: Vec::new(),
            challenge_rounds: 0,
        });
        Self {
            config,
            rng,
            calls: HashMap::new(),
            client: HashMap::new(),
            guard,
            registration,
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
        earliest
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
                self.config.sip_port
            ),
            branch,
        )
    }

    fn host(&self) -> String {
        match self.config.advertised_ip {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        }
    }

    fn contact(&self, transport: TransportKind) -> String {
        let transport = match transport {
            TransportKind::Udp => "",
            TransportKind::Tcp => ";transport=tcp",
        };
        format!(
            "<sip:hotline@{}:{}{transport}>",
            self.host(),
            self.config.sip_port
        )
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
    ) -> Option<(u16, Vec<(&'static str, String)>)> {
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
            "INFO" => {
                let Some(call) = self.calls.get(&id).filter(|c| c.state != CallState::Ended) else {
                    return self.respond(peer, &message, 481, None, &[]);
                };
                let content_type = message.header("Content-Type").unwrap_or("").to_string();
                let digit = dtmf::info_digit(&content_type, &message.body);
                let (call_id, tag) = (call.id.clone(), call.local_tag.clone());
                if let Some(digit) = digit {
                    self.events.push_back(SipEvent::Dtmf { id: call_id, digit });
                    self.respond(peer, &message, 200, Some(&tag), &[]);
                } else if message.body.is_empty() {
                    // An empty INFO is a keepalive probe.
                    self.respond(peer, &message, 200, Some(&tag), &[]);
                } else {
                    self.respond(
                        peer,
                        &message,
                        415,
                        Some(&tag),
                        &[("Accept", "application/dtmf-relay, application/dtmf".into())],
                    );
                }
            }
            "UPDATE" => {
                let Some(call) = self
                    .calls
                    .get_mut(&id)
                    .filter(|c| c.state != CallState::Ended)
                else {
                    return self.respond(peer, &message, 481, None, &[]);
                };
                if let Some(seconds) = call.session_expires_s {
                    call.session_deadline_ms = Some(now_ms + seconds as u64 * 1000);
                }
                let extra: Vec<(&str, String)> = call
                    .session_expires_s
                    .map(|s| vec![("Session-Expires", format!("{s};refresher=uac"))])
                    .unwrap_or_default();
                let tag = call.local_tag.clone();
                self.respond(peer, &message, 200, Some(&tag), &extra);
            }
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

    fn trusted(
        &mut self,
        peer: Peer,
        message: &SipMessage,
    ) -> Result<(), (u16, Vec<(&'static str, String)>)> {
        let allowed = self
            .config
            .allow_from
            .iter()
            .any(|net| net.contains(peer.addr.ip()));
        if allowed {
            return Ok(());
        }
        match self.guard.as_mut() {
            None if self.config.allow_from.is_empty() => Ok(()),
            None => Err((403, vec![])),
            Some(guard) => {
                if let Some(credentials) = message.header("Authorization") {
                    if guard.verify(credentials, "INVITE") {
                        return Ok(());
                    }
                }
                let nonce = format!("{:032x}", self.rng.gen::<u128>());
                let challenge = self
                    .guard
                    .as_mut()
                    .map(|g| g.challenge(nonce))
                    .unwrap_or_default();
                Err((401, vec![("WWW-Authenticate", challenge)]))
            }
        }
    }

    fn handle_new_invite(&mut self, now_ms: u64, peer: Peer, id: SipCallId, message: SipMessage) {
        if let Err((code, extra)) = self.trusted(peer, &message) {
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
        let negotiated = match offer.map(|offer| sdp::negotiate(&offer, &self.config.codecs)) {
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
        };
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
        let retransmit = (!peer.transport.reliable()).then(|| Retransmit {
            data: data.clone(),
            next_ms: now_ms + T1_MS,
            interval_ms: T1_MS,
            give_up_ms: now_ms + TIMER_B_MS,
        });
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
    fn answer_sdp(&self, call: &Call) -> String {
        if call.late_offer {
            sdp::write_offer(&self.config.codecs, &self.local_sdp(call))
        } else {
            sdp::write_answer(&call.negotiated, &self.local_sdp(call))
        }
    }

    fn send_invite_final(
        &mut self,
        now_ms: u64,
        id: &SipCallId,
        code: u16,
        extra: Vec<(&str, String)>,
        body: Option<String>,
    ) {
        let contact = self.contact(
            self.calls
                .get(id)
                .map(|c| c.peer.transport)
                .unwrap_or(TransportKind::Udp),
        );
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
            call.retransmit = Some(Retransmit {
                data: data.clone(),
                next_ms: now_ms + T1_MS,
                interval_ms: T1_MS,
                give_up_ms: now_ms + TIMER_B_MS,
            });
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
        if let Some(call) = self.calls.get_mut(id) {
            if let Some(seconds) = call.session_expires_s {
                call.session_deadline_ms = Some(now_ms + seconds as u64 * 1000);
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

    fn end(&mut self, now_ms: u64, id: &SipCallId, reason: Option<&str>) {
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
        let transport = call.peer.transport;
        let contact = self.contact(transport);
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
    fn transfer_failed(&mut self, id: &SipCallId, reason: String) {
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

    fn send_in_dialog(
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

    fn start_client_transaction(
        &mut self,
        now_ms: u64,
        peer: Peer,
        branch: String,
        data: Vec<u8>,
        purpose: Purpose,
    ) {
        let retransmit = (!peer.transport.reliable()).then(|| Retransmit {
            data: data.clone(),
            next_ms: now_ms + T1_MS,
            interval_ms: T1_MS,
            give_up_ms: now_ms + TIMER_B_MS,
        });
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

    fn handle_ack(&mut self, now_ms: u64, id: &SipCallId, message: &SipMessage) {
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
        if !call.late_offer {
            // An ACK to an answer we sent carries no SDP that could change anything.
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
                self.events.push_back(SipEvent::LateAnswer {
                    id: id.clone(),
                    negotiated,
                });
            }
            Err(why) => {
                tracing::warn!(call = %id, %why, "the ACK did not answer our offer; hanging up");
                self.hangup(now_ms, id, "sdp.no_answer_in_ack");
            }
        }
    }

    fn handle_cancel(&mut self, now_ms: u64, peer: Peer, id: &SipCallId, message: &SipMessage) {
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

    fn handle_bye(&mut self, now_ms: u64, peer: Peer, id: &SipCallId, message: &SipMessage) {
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

    fn handle_in_dialog_invite(
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
            SessionDescription::parse(&message.body).and_then(|offer| {
                // Keep the current codec when the peer still offers it.
                let mut preference = vec![call.negotiated.codec];
                preference.extend(
                    self.config
                        .codecs
                        .iter()
                        .copied()
                        .filter(|c| *c != call.negotiated.codec),
                );
                sdp::negotiate(&offer, &preference)
            })
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
                if let Some(seconds) = call.session_expires_s {
                    call.session_deadline_ms = Some(now_ms + seconds as u64 * 1000);
                }
                let extra: Vec<(&str, String)> = call
                    .session_expires_s
                    .map(|s| vec![("Session-Expires", format!("{s};refresher=uac"))])
                    .unwrap_or_default();
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

    fn handle_notify(&mut self, now_ms: u64, peer: Peer, id: &SipCallId, message: &SipMessage) {
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

    fn handle_response(&mut self, now_ms: u64, message: SipMessage, code: u16) {
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

    /// Runs timers: retransmissions, transaction timeouts, session expiry, registration.
    pub fn handle_timeout(&mut self, now_ms: u64) {
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
                    r.interval_ms = (r.interval_ms * 2).min(T2_MS);
                    r.next_ms = now_ms + r.interval_ms;
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
                    r.interval_ms = (r.interval_ms * 2).min(T2_MS);
                    r.next_ms = now_ms + r.interval_ms;
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
        if self
            .registration
            .as_ref()
            .and_then(|r| r.next_attempt_ms)
            .is_some_and(|t| now_ms >= t)
        {
            self.send_register(now_ms);
        }
    }

    /// Sends REGISTER with an answer to every challenge we hold (RFC 3261 22.3: `Authorization`
    /// for a registrar's 401, `Proxy-Authorization` for a proxy's 407).
    fn send_register(&mut self, now_ms: u64) {
        let contact = self.contact(TransportKind::Udp);
        let (via, branch) = self.via(TransportKind::Udp);
        let cnonce = self.random_token();
        let user_agent = self.config.user_agent.clone();
        let Some(reg) = self.registration.as_mut() else {
            return;
        };
        reg.next_attempt_ms = None;
        reg.cseq += 1;
        let domain = if reg.config.domain.is_empty() {
            reg.config.registrar.ip().to_string()
        } else {
            reg.config.domain.clone()
        };
        let aor = format!("sip:{}@{domain}", reg.config.username);
        let registrar_uri = format!("sip:{domain}");
        let mut writer = MessageWriter::request("REGISTER", &registrar_uri)
            .header("Via", &via)
            .header("Max-Forwards", "70")
            .header("From", &format!("<{aor}>;tag={}", reg.from_tag))
            .header("To", &format!("<{aor}>"))
            .header("Call-ID", &reg.call_id)
            .header("CSeq", &format!("{} REGISTER", reg.cseq))
            .header("Contact", &contact)
            .header("Expires", &reg.config.expires_s.to_string())
            .header("User-Agent", &user_agent);
        // Registrar answers first, then the proxy's: the order does not matter to RFC 3261, and
        // peers that look headers up by substring find each where they expect it.
        let mut ordered: Vec<&mut CachedChallenge> = reg.challenges.iter_mut().collect();
        ordered.sort_by_key(|c| c.answer_header != "Authorization");
        for cached in ordered {
            let answer = auth::authorization(
                &cached.challenge,
                &reg.config.username,
                &reg.config.password,
                "REGISTER",
                &registrar_uri,
                &cnonce,
                cached.answers + 1,
            );
            // Challenges we cannot answer were refused when they arrived.
            if let Some(answer) = answer {
                cached.answers += 1;
                writer = writer.header(cached.answer_header, &answer);
            }
        }
        let data = writer.body(None, b"");
        let peer = Peer {
            transport: TransportKind::Udp,
            addr: reg.config.registrar,
            connection: None,
        };
        self.start_client_transaction(now_ms, peer, branch, data, Purpose::Register);
    }

    fn on_register_response(&mut self, now_ms: u64, message: &SipMessage, code: u16) {
        let Some(reg) = self.registration.as_mut() else {
            return;
        };
        match code {
            200..=299 => {
                // The granted expiry: our Contact's expires param, else Expires, else what we asked.
                let granted = message
                    .headers_named("Contact")
                    .find_map(|c| param(c, "expires").and_then(|e| e.parse::<u32>().ok()))
                    .or_else(|| {
                        message
                            .header("Expires")
                            .and_then(|e| e.trim().parse().ok())
                    })
                    .unwrap_or(reg.config.expires_s);
                let refresh_s = if granted > 60 {
                    granted - granted / 5
                } else {
                    granted / 2
                }
                .max(1);
                reg.next_attempt_ms = Some(now_ms + refresh_s as u64 * 1000);
                reg.backoff_ms = 5_000;
                reg.challenge_rounds = 0;
                reg.registered = true;
                self.events.push_back(SipEvent::Registration {
                    registered: true,
                    detail: format!("registered for {granted} s"),
                });
            }
            401 | 407 => match reg.take_challenges(message) {
                Ok(()) => self.send_register(now_ms),
                Err(reason) => self.on_register_failure(now_ms, reason),
            },
            _ => self.on_register_failure(now_ms, &format!("registration.refused.{code}")),
        }
    }

    fn on_register_failure(&mut self, now_ms: u64, reason: &str) {
        let Some(reg) = self.registration.as_mut() else {
            return;
        };
        reg.registered = false;
        // The next attempt starts without credentials and answers whatever it is asked then.
        reg.challenges.clear();
        reg.challenge_rounds = 0;
        reg.next_attempt_ms = Some(now_ms + reg.backoff_ms);
        let detail = format!("{reason}; retry in {} s", reg.backoff_ms / 1000);
        reg.backoff_ms = (reg.backoff_ms * 2).min(300_000);
        self.events.push_back(SipEvent::Registration {
            registered: false,
            detail,
        });
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
    }
}

#[cfg(test)]
mod tests;
