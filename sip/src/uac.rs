//! An outgoing call's SIP dialog (RFC 3261 user-agent client), sans-IO: INVITE with an SDP
//! offer, provisional and final responses, ACK, CANCEL, BYE from either side. `hotline bench`
//! places its calls with it, and hotline dials human agents with it (a bridged transfer).
//!
//! Owns the INVITE client transaction over UDP (retransmitted from 500 ms, doubling, until any
//! response; given up after the answer wait with "no answer from …", or after `ring_wait` of
//! ringing), the ACK (for a 2xx a request of its own, sent again for every retransmitted 2xx;
//! for a refusal part of the INVITE transaction), our CANCEL of a call still ringing (the 487
//! that follows is acknowledged; a 2xx that crosses it is acknowledged and hung up), our BYE
//! (retransmitted until a final response or [`BYE_WAIT`]), and answers to the far end's
//! requests (200 to BYE and to harmless in-dialog requests, 501 or 488 to what we do not do).
//! Invariants: every input carries `now` (time since the call began) and nothing here reads a
//! clock or a socket; every datagram goes to the target address (no proxies: the target is
//! the next hop); the dialog ends exactly once, with one [`DialogEvent::Ended`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use crate::message::{uri_of, MessageWriter, SipMessage, StartLine};

/// Why an outgoing call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UacError {
    #[error("no answer from {target} within {within_s} s")]
    NoAnswer { target: String, within_s: f32 },
    #[error("{target} refused the call: {code} {reason}")]
    Refused {
        target: String,
        code: u16,
        reason: String,
    },
    #[error("{target} did not answer our BYE within {within_s} s")]
    ByeUnanswered { target: String, within_s: f32 },
    #[error("the call to {target} was cancelled while it rang")]
    Cancelled { target: String },
}

/// RFC 3261's T1: the first retransmission interval.
pub const T1: Duration = Duration::from_millis(500);
/// The longest retransmission interval (T2).
pub const T2: Duration = Duration::from_secs(4);
/// How long a ringing call may take to be answered by default (Timer B, 64 × T1).
pub const RING_WAIT: Duration = Duration::from_secs(32);
/// How long our BYE waits for its answer.
pub const BYE_WAIT: Duration = Duration::from_secs(5);

/// Who the dialog calls and from where.
#[derive(Debug, Clone)]
pub struct DialogSetup {
    /// Where every datagram goes.
    pub target: SocketAddr,
    /// The target as the user wrote it, for messages.
    pub target_text: String,
    /// The INVITE's Request-URI and To.
    pub request_uri: String,
    /// Our SIP socket's address (Via, From, Contact).
    pub local: SocketAddr,
    pub call_id: String,
    pub from_tag: String,
    /// How long the INVITE may go without any response.
    pub answer_wait: Duration,
    /// How long a ringing call may take to be answered ([`RING_WAIT`] by default).
    pub ring_wait: Duration,
    /// The user part of our From and Contact (`bench`, `hotline`).
    pub user: String,
    /// More INVITE headers (`X-Hotline-*` context for an agent).
    pub headers: Vec<(String, String)>,
}

/// Something the dialog did.
#[derive(Debug)]
pub enum DialogEvent {
    /// The first provisional response (100 Trying, 180 Ringing, 183) arrived.
    Ringing { code: u16 },
    /// A 2xx to the INVITE arrived (and was acknowledged); its body is the SDP answer.
    Answered { body: Vec<u8> },
    /// The dialog is over.
    Ended(DialogEnd),
}

/// How the dialog ended.
#[derive(Debug)]
pub enum DialogEnd {
    /// Our BYE was answered.
    ByeAnswered,
    /// The server sent BYE (answered 200).
    ServerBye,
    /// The call failed: no answer, a refusal, our CANCEL, or no answer to our BYE.
    Failed(UacError),
}

/// Where the dialog stands.
#[derive(Debug)]
enum State {
    Inviting {
        sent: Duration,
        /// The next retransmission (none after a provisional response).
        retransmit: Option<(Duration, Duration)>,
        ringing_since: Option<Duration>,
    },
    Confirmed,
    /// Our CANCEL is out; the INVITE's 487 (or a crossing 2xx) ends it, with `error`.
    Cancelling {
        sent: Duration,
        error: UacError,
    },
    Closing {
        sent: Duration,
        retransmit: (Duration, Duration),
    },
    Terminated,
}

/// The caller's side of one call's signalling.
#[derive(Debug)]
pub struct CallerDialog {
    setup: DialogSetup,
    state: State,
    invite: Vec<u8>,
    /// The ACK for the 2xx, resent for each retransmitted 2xx.
    ack: Option<Vec<u8>>,
    bye: Option<Vec<u8>>,
    /// The server's Contact URI (the in-dialog Request-URI) and its To header (with its tag).
    remote_target: String,
    remote_to: String,
    outbox: VecDeque<Vec<u8>>,
    events: VecDeque<DialogEvent>,
}

impl CallerDialog {
    /// Starts the call: the INVITE carrying `sdp_offer` is queued at once.
    pub fn invite(setup: DialogSetup, sdp_offer: &str, now: Duration) -> Self {
        let local = setup.local;
        let mut invite = MessageWriter::request("INVITE", &setup.request_uri)
            .header(
                "Via",
                &format!(
                    "SIP/2.0/UDP {local};branch={}",
                    branch(&setup.call_id, "invite")
                ),
            )
            .header("Max-Forwards", "70")
            .header("From", &from_header(&setup))
            .header("To", &format!("<{}>", setup.request_uri))
            .header("Call-ID", &setup.call_id)
            .header("CSeq", "1 INVITE")
            .header("Contact", &format!("<sip:{}@{local}>", setup.user))
            .header("User-Agent", &format!("hotline-{}", setup.user));
        for (name, value) in &setup.headers {
            invite = invite.header(name, value);
        }
        let invite = invite.body(Some("application/sdp"), sdp_offer.as_bytes());
        let mut dialog = Self {
            remote_target: setup.request_uri.clone(),
            remote_to: format!("<{}>", setup.request_uri),
            setup,
            state: State::Inviting {
                sent: now,
                retransmit: Some((now + T1, T1)),
                ringing_since: None,
            },
            invite: invite.clone(),
            ack: None,
            bye: None,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
        };
        dialog.outbox.push_back(invite);
        dialog
    }

    /// The next datagram to send to the target.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<DialogEvent> {
        self.events.pop_front()
    }

    /// Whether the dialog is over.
    pub fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    /// Whether the call was answered and is not ending.
    pub fn is_confirmed(&self) -> bool {
        matches!(self.state, State::Confirmed)
    }

    /// When [`Self::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match &self.state {
            State::Inviting {
                sent,
                retransmit,
                ringing_since,
            } => {
                let give_up = match ringing_since {
                    Some(since) => *since + self.setup.ring_wait,
                    None => *sent + self.setup.answer_wait,
                };
                Some(retransmit.map_or(give_up, |(at, _)| at.min(give_up)))
            }
            State::Cancelling { sent, .. } => Some(*sent + BYE_WAIT),
            State::Closing { sent, retransmit } => Some(retransmit.0.min(*sent + BYE_WAIT)),
            State::Confirmed | State::Terminated => None,
        }
    }

    /// Runs the timers due at `now`: retransmissions and giving up.
    pub fn handle_timeout(&mut self, now: Duration) {
        match &mut self.state {
            State::Inviting {
                sent,
                retransmit,
                ringing_since,
            } => {
                let (give_up, waited) = match ringing_since {
                    Some(since) => (*since + self.setup.ring_wait, self.setup.ring_wait),
                    None => (*sent + self.setup.answer_wait, self.setup.answer_wait),
                };
                if now >= give_up {
                    let error = UacError::NoAnswer {
                        target: self.setup.target_text.clone(),
                        within_s: waited.as_secs_f32(),
                    };
                    if ringing_since.is_some() {
                        // It rang out: stop it ringing; its 487 ends the call.
                        self.outbox.push_back(self.cancel_request());
                        self.state = State::Cancelling { sent: now, error };
                    } else {
                        self.end(DialogEnd::Failed(error));
                    }
                    return;
                }
                if let Some((at, interval)) = retransmit {
                    if now >= *at {
                        let next = (*interval * 2).min(T2);
                        *retransmit = Some((now + next, next));
                        self.outbox.push_back(self.invite.clone());
                    }
                }
            }
            State::Cancelling { sent, error } => {
                if now >= *sent + BYE_WAIT {
                    let error = error.clone();
                    self.end(DialogEnd::Failed(error));
                }
            }
            State::Closing { sent, retransmit } => {
                if now >= *sent + BYE_WAIT {
                    let error = UacError::ByeUnanswered {
                        target: self.setup.target_text.clone(),
                        within_s: BYE_WAIT.as_secs_f32(),
                    };
                    self.end(DialogEnd::Failed(error));
                    return;
                }
                if now >= retransmit.0 {
                    let next = (retransmit.1 * 2).min(T2);
                    *retransmit = (now + next, next);
                    if let Some(bye) = &self.bye {
                        self.outbox.push_back(bye.clone());
                    }
                }
            }
            State::Confirmed | State::Terminated => {}
        }
    }

    /// Hangs up: BYE on an answered call, CANCEL on one still ringing (or not yet answered at
    /// all); a call already over is left as it is.
    pub fn hang_up(&mut self, now: Duration) {
        if matches!(self.state, State::Inviting { .. }) {
            self.outbox.push_back(self.cancel_request());
            let error = UacError::Cancelled {
                target: self.setup.target_text.clone(),
            };
            self.state = State::Cancelling { sent: now, error };
            return;
        }
        if !self.is_confirmed() {
            return;
        }
        let bye = self.in_dialog_request("BYE", 2, "bye");
        self.outbox.push_back(bye.clone());
        self.bye = Some(bye);
        self.state = State::Closing {
            sent: now,
            retransmit: (now + T1, T1),
        };
    }

    /// Takes one datagram from the target.
    pub fn handle_datagram(&mut self, now: Duration, data: &[u8]) {
        let Ok(message) = SipMessage::parse(data) else {
            return;
        };
        if message.header("Call-ID") != Some(self.setup.call_id.as_str()) {
            return;
        }
        match &message.start {
            StartLine::Response { code, reason } => {
                let (code, reason) = (*code, reason.clone());
                self.handle_response(now, &message, code, &reason);
            }
            StartLine::Request { method, .. } => {
                let method = method.clone();
                self.handle_request(&message, &method);
            }
        }
    }

    fn handle_response(&mut self, now: Duration, message: &SipMessage, code: u16, reason: &str) {
        let Some((_, method)) = message.cseq() else {
            return;
        };
        match (method.as_str(), &mut self.state) {
            (
                "INVITE",
                State::Inviting {
                    retransmit,
                    ringing_since,
                    ..
                },
            ) => {
                if code < 200 {
                    *retransmit = None;
                    if ringing_since.is_none() {
                        *ringing_since = Some(now);
                        self.events.push_back(DialogEvent::Ringing { code });
                    }
                } else if code < 300 {
                    self.remote_to = message.header("To").unwrap_or_default().to_string();
                    if let Some(contact) = message.header("Contact") {
                        self.remote_target = uri_of(contact);
                    }
                    let ack = self.in_dialog_request("ACK", 1, "ack");
                    self.outbox.push_back(ack.clone());
                    self.ack = Some(ack);
                    self.state = State::Confirmed;
                    self.events.push_back(DialogEvent::Answered {
                        body: message.body.clone(),
                    });
                } else {
                    // The ACK to a refusal belongs to the INVITE transaction (RFC 3261 17.1.1.3).
                    self.outbox.push_back(self.refusal_ack(message));
                    let error = UacError::Refused {
                        target: self.setup.target_text.clone(),
                        code,
                        reason: reason.to_string(),
                    };
                    self.end(DialogEnd::Failed(error));
                }
            }
            ("INVITE", State::Cancelling { .. }) if (200..300).contains(&code) => {
                // Answered as we cancelled: acknowledge it, then hang up.
                self.remote_to = message.header("To").unwrap_or_default().to_string();
                if let Some(contact) = message.header("Contact") {
                    self.remote_target = uri_of(contact);
                }
                let ack = self.in_dialog_request("ACK", 1, "ack");
                self.outbox.push_back(ack.clone());
                self.ack = Some(ack);
                self.state = State::Confirmed;
                self.hang_up(now);
            }
            ("INVITE", State::Cancelling { error, .. }) if code >= 300 => {
                let error = error.clone();
                self.outbox.push_back(self.refusal_ack(message));
                self.end(DialogEnd::Failed(error));
            }
            ("INVITE", _) if (200..300).contains(&code) => {
                // A retransmitted 2xx: our ACK was lost.
                if let Some(ack) = &self.ack {
                    self.outbox.push_back(ack.clone());
                }
            }
            ("BYE", State::Closing { .. }) if code >= 200 => self.end(DialogEnd::ByeAnswered),
            _ => {}
        }
    }

    fn handle_request(&mut self, message: &SipMessage, method: &str) {
        let code = match method {
            "ACK" => return,
            "BYE" => 200,
            "OPTIONS" | "INFO" | "UPDATE" | "NOTIFY" => 200,
            // A re-offer would need an answer of ours: a bench caller keeps its one stream.
            "INVITE" => 488,
            _ => 501,
        };
        let response = MessageWriter::response(code)
            .echo(message, Some(&self.setup.from_tag))
            .body(None, b"");
        self.outbox.push_back(response);
        if method == "BYE" && !self.is_terminated() {
            self.end(DialogEnd::ServerBye);
        }
    }

    /// A request inside the dialog: ACK (for the 2xx) or BYE.
    fn in_dialog_request(&self, method: &str, cseq: u32, label: &str) -> Vec<u8> {
        self.request(method, &self.remote_target, label, &self.remote_to, cseq)
    }

    /// The CANCEL of our INVITE: its Request-URI, branch, From, To and Call-ID (RFC 3261 9.1).
    fn cancel_request(&self) -> Vec<u8> {
        let to = format!("<{}>", self.setup.request_uri);
        self.request("CANCEL", &self.setup.request_uri, "invite", &to, 1)
    }

    /// The ACK to a refusal: the INVITE's Request-URI and branch, the response's To.
    fn refusal_ack(&self, response: &SipMessage) -> Vec<u8> {
        let to = response.header("To").unwrap_or_default();
        self.request("ACK", &self.setup.request_uri, "invite", to, 1)
    }

    /// One of our requests without a body: to `uri`, in the transaction `label` names.
    fn request(&self, method: &str, uri: &str, label: &str, to: &str, cseq: u32) -> Vec<u8> {
        let local = self.setup.local;
        MessageWriter::request(method, uri)
            .header(
                "Via",
                &format!(
                    "SIP/2.0/UDP {local};branch={}",
                    branch(&self.setup.call_id, label)
                ),
            )
            .header("Max-Forwards", "70")
            .header("From", &from_header(&self.setup))
            .header("To", to)
            .header("Call-ID", &self.setup.call_id)
            .header("CSeq", &format!("{cseq} {method}"))
            .body(None, b"")
    }

    fn end(&mut self, end: DialogEnd) {
        self.state = State::Terminated;
        self.events.push_back(DialogEvent::Ended(end));
    }
}

/// Our From header.
fn from_header(setup: &DialogSetup) -> String {
    format!(
        "<sip:{}@{}>;tag={}",
        setup.user, setup.local, setup.from_tag
    )
}

/// A transaction branch (RFC 3261's magic cookie, then the call and the transaction).
fn branch(call_id: &str, label: &str) -> String {
    let call: String = call_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("z9hG4bK-{call}-{label}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> DialogSetup {
        DialogSetup {
            target: "127.0.0.1:5060".parse().expect("addr"),
            target_text: "sip:127.0.0.1:5060".into(),
            request_uri: "sip:bot@127.0.0.1:5060".into(),
            local: "127.0.0.1:40000".parse().expect("addr"),
            call_id: "bench-1".into(),
            from_tag: "ft1".into(),
            answer_wait: Duration::from_secs(5),
            ring_wait: RING_WAIT,
            user: "bench".into(),
            headers: vec![("X-Hotline-Call".into(), "c1".into())],
        }
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).expect("utf-8")
    }

    fn response(code: u16, cseq: &str, body: &str) -> Vec<u8> {
        format!(
            "SIP/2.0 {code} {}\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-x\r\n\
             From: <sip:bench@127.0.0.1:40000>;tag=ft1\r\nTo: <sip:bot@127.0.0.1:5060>;tag=srv\r\n\
             Call-ID: bench-1\r\nCSeq: {cseq}\r\nContact: <sip:hotline@127.0.0.1:5060>\r\n\
             Content-Length: {}\r\n\r\n{body}",
            crate::message::reason_phrase(code),
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn answered_call_is_acknowledged_and_hung_up() {
        let mut dialog = CallerDialog::invite(setup(), "v=0\r\n", ms(0));
        let invite = text(dialog.poll_transmit().expect("invite"));
        assert!(invite.starts_with("INVITE sip:bot@127.0.0.1:5060 SIP/2.0\r\n"));
        assert!(invite.contains("Content-Type: application/sdp"));
        assert!(invite.contains("X-Hotline-Call: c1\r\n"), "{invite}");
        // Retransmitted until a provisional response.
        dialog.handle_timeout(ms(500));
        assert!(dialog.poll_transmit().is_some(), "INVITE again after T1");
        dialog.handle_datagram(ms(600), &response(100, "1 INVITE", ""));
        assert!(matches!(
            dialog.poll_event(),
            Some(DialogEvent::Ringing { code: 100 })
        ));
        dialog.handle_timeout(ms(2_000));
        assert!(
            dialog.poll_transmit().is_none(),
            "no retransmission once ringing"
        );
        dialog.handle_datagram(ms(700), &response(200, "1 INVITE", "v=0\r\n"));
        let ack = text(dialog.poll_transmit().expect("ack"));
        assert!(
            ack.starts_with("ACK sip:hotline@127.0.0.1:5060 SIP/2.0"),
            "{ack}"
        );
        assert!(ack.contains("To: <sip:bot@127.0.0.1:5060>;tag=srv"));
        assert!(matches!(
            dialog.poll_event(),
            Some(DialogEvent::Answered { body }) if body == b"v=0\r\n"
        ));
        // A retransmitted 200 gets the ACK again.
        dialog.handle_datagram(ms(800), &response(200, "1 INVITE", "v=0\r\n"));
        assert!(text(dialog.poll_transmit().expect("ack again")).starts_with("ACK "));
        dialog.hang_up(ms(1_000));
        let bye = text(dialog.poll_transmit().expect("bye"));
        assert!(bye.starts_with("BYE sip:hotline@127.0.0.1:5060"));
        assert!(bye.contains("CSeq: 2 BYE"));
        dialog.handle_datagram(ms(1_050), &response(200, "2 BYE", ""));
        assert!(matches!(
            dialog.poll_event(),
            Some(DialogEvent::Ended(DialogEnd::ByeAnswered))
        ));
        assert!(dialog.is_terminated());
    }

    #[test]
    fn silence_is_no_answer() {
        let mut dialog = CallerDialog::invite(setup(), "v=0\r\n", ms(0));
        let mut now = ms(0);
        while !dialog.is_terminated() {
            now = dialog.poll_timeout().expect("a timer");
            dialog.handle_timeout(now);
        }
        assert_eq!(now, ms(5_000));
        let Some(DialogEvent::Ended(DialogEnd::Failed(error))) = dialog.poll_event() else {
            panic!("the call fails");
        };
        assert_eq!(
            error.to_string(),
            "no answer from sip:127.0.0.1:5060 within 5 s"
        );
        // INVITE at 0, 0.5, 1.5, 3.5 s.
        assert_eq!(std::iter::from_fn(|| dialog.poll_transmit()).count(), 4);
    }

    #[test]
    fn refusal_is_acknowledged_and_reported() {
        let mut dialog = CallerDialog::invite(setup(), "v=0\r\n", ms(0));
        dialog.poll_transmit();
        dialog.handle_datagram(ms(10), &response(486, "1 INVITE", ""));
        let ack = text(dialog.poll_transmit().expect("ack"));
        assert!(ack.starts_with("ACK sip:bot@127.0.0.1:5060"));
        assert!(ack.contains("branch=z9hG4bK-bench1-invite"));
        let Some(DialogEvent::Ended(DialogEnd::Failed(error))) = dialog.poll_event() else {
            panic!("the call fails");
        };
        assert_eq!(
            error.to_string(),
            "sip:127.0.0.1:5060 refused the call: 486 Busy Here"
        );
    }

    #[test]
    fn server_bye_is_answered() {
        let mut dialog = CallerDialog::invite(setup(), "v=0\r\n", ms(0));
        dialog.poll_transmit();
        dialog.handle_datagram(ms(10), &response(200, "1 INVITE", "v=0\r\n"));
        dialog.poll_transmit();
        dialog.poll_event();
        let bye = "BYE sip:bench@127.0.0.1:40000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-s1\r\n\
                   From: <sip:bot@127.0.0.1:5060>;tag=srv\r\nTo: <sip:bench@127.0.0.1:40000>;tag=ft1\r\n\
                   Call-ID: bench-1\r\nCSeq: 7 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        dialog.handle_datagram(ms(20), bye.as_bytes());
        let ok = text(dialog.poll_transmit().expect("200"));
        assert!(ok.starts_with("SIP/2.0 200 OK"));
        assert!(ok.contains("CSeq: 7 BYE"));
        assert!(matches!(
            dialog.poll_event(),
            Some(DialogEvent::Ended(DialogEnd::ServerBye))
        ));
    }

    #[test]
    fn a_ringing_call_that_rings_out_is_cancelled_and_a_hang_up_cancels_too() {
        let mut short = setup();
        short.ring_wait = ms(3_000);
        let mut dialog = CallerDialog::invite(short, "v=0\r\n", ms(0));
        dialog.poll_transmit();
        dialog.handle_datagram(ms(100), &response(180, "1 INVITE", ""));
        assert!(matches!(
            dialog.poll_event(),
            Some(DialogEvent::Ringing { code: 180 })
        ));
        assert_eq!(dialog.poll_timeout(), Some(ms(3_100)));
        dialog.handle_timeout(ms(3_100));
        let cancel = text(dialog.poll_transmit().expect("cancel"));
        assert!(
            cancel.starts_with("CANCEL sip:bot@127.0.0.1:5060 SIP/2.0"),
            "{cancel}"
        );
        assert!(
            cancel.contains("branch=z9hG4bK-bench1-invite") && cancel.contains("CSeq: 1 CANCEL")
        );
        assert!(dialog.poll_event().is_none(), "the 487 ends it");
        dialog.handle_datagram(ms(3_150), &response(487, "1 INVITE", ""));
        assert!(text(dialog.poll_transmit().expect("ack")).starts_with("ACK "));
        assert!(matches!(
            dialog.poll_event(),
            Some(DialogEvent::Ended(DialogEnd::Failed(
                UacError::NoAnswer { .. }
            )))
        ));

        let mut dialog = CallerDialog::invite(setup(), "v=0\r\n", ms(0));
        dialog.poll_transmit();
        dialog.handle_datagram(ms(100), &response(180, "1 INVITE", ""));
        assert!(matches!(
            dialog.poll_event(),
            Some(DialogEvent::Ringing { code: 180 })
        ));
        dialog.hang_up(ms(200));
        assert!(text(dialog.poll_transmit().expect("cancel")).starts_with("CANCEL "));
        dialog.handle_datagram(ms(250), &response(487, "1 INVITE", ""));
        assert!(text(dialog.poll_transmit().expect("ack")).starts_with("ACK "));
        assert!(matches!(
            dialog.poll_event(),
            Some(DialogEvent::Ended(DialogEnd::Failed(
                UacError::Cancelled { .. }
            )))
        ));
    }
}
