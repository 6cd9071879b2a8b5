//! Outbound registration to a trunk or PBX (RFC 3261 10), with digest challenges.
//!
//! Owns: the one registration's state ([`Registration`]: the Call-ID, tag and CSeq space that
//! every REGISTER shares, and the challenges we hold), sending REGISTER with an answer to each
//! held challenge (`Authorization` for a registrar's 401, `Proxy-Authorization` for a proxy's
//! 407), refreshing before the granted expiry runs out, and backing off after a failure (5 s,
//! doubling up to 5 min).
//!
//! Invariants: one attempt answers at most [`MAX_CHALLENGE_ROUNDS`] challenges; a challenge that
//! repeats a nonce we answered, without `stale=true`, means our credentials were refused; a
//! failure drops every held challenge, so the next attempt starts clean; every change of state
//! is reported as [`SipEvent::Registration`].

use rand::{rngs::StdRng, Rng};

use crate::auth::{self, DigestParams};
use crate::message::{param, MessageWriter, SipMessage};

use super::transaction::Purpose;
use super::{Peer, RegistrationConfig, SipEvent, SipSession, TransportKind};

/// The outbound registration's state.
#[derive(Debug)]
pub(super) struct Registration {
    config: RegistrationConfig,
    call_id: String,
    from_tag: String,
    cseq: u32,
    registered: bool,
    /// When the next REGISTER is due (`None` while one is in flight).
    pub(super) next_attempt_ms: Option<u64>,
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
pub(super) const MAX_CHALLENGE_ROUNDS: u32 = 4;

impl Registration {
    /// The registration's state before its first REGISTER, which is due at `now_ms`.
    pub(super) fn new(config: RegistrationConfig, rng: &mut StdRng, now_ms: u64) -> Self {
        Self {
            config,
            call_id: format!("{:016x}@hotline", rng.gen::<u64>()),
            from_tag: format!("{:08x}", rng.gen::<u32>()),
            cseq: 0,
            registered: false,
            next_attempt_ms: Some(now_ms),
            backoff_ms: 5_000,
            challenges: Vec::new(),
            challenge_rounds: 0,
        }
    }

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

impl SipSession {
    /// Sends the REGISTER that is due: the first, a refresh, or a retry after a failure.
    pub(super) fn run_registration_timer(&mut self, now_ms: u64) {
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
        let contact = self.contact(TransportKind::Udp, false);
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

    pub(super) fn on_register_response(&mut self, now_ms: u64, message: &SipMessage, code: u16) {
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

    pub(super) fn on_register_failure(&mut self, now_ms: u64, reason: &str) {
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
