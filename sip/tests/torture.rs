//! The RFC 4475 torture messages, fed to the SIP user agent server one by one.
//!
//! Each file under `tests/torture/` is one message of RFC 4475, named after the RFC's test
//! (section 3.1.1 valid, 3.1.2 invalid, 3.2 transaction layer, 3.3 application layer, 3.4
//! backward compatibility). The table gives what RFC 4475 expects from a user agent server for
//! each: the responses we must send (a call offered to the application is accepted, so a valid
//! INVITE shows as 100, 180, 200), or nothing for messages the RFC says to drop. Where the RFC
//! lets an element either refuse or accept, the table lists both answers and nothing else.

use std::path::PathBuf;

use hotline_sip::dialog::{
    EndpointConfig, Peer, SipCallId, SipEvent, SipSession, SrtpPolicy, TransportKind,
};
use hotline_sip::flood::SourceLimits;
use hotline_sip::message::SipMessage;
use hotline_sip::sdp::Codec;

/// A valid INVITE: 100 Trying, then (once the application accepts) 180 Ringing and 200 OK.
const CALL: &[u16] = &[100, 180, 200];

/// What RFC 4475 expects of a user agent server for each message; each entry lists the
/// acceptable answers (one list of response codes each).
const TABLE: &[(&str, &[&[u16]])] = &[
    // 3.1.1 Valid messages.
    // 3.1.1.1: well formed; it carries a To tag for a dialog we do not have.
    ("wsinv", &[&[481]]),
    // 3.1.1.2: an unknown method with odd but legal characters: 501.
    ("intmeth", &[&[501]]),
    // 3.1.1.3: %-escapes in URIs; a valid INVITE.
    ("esc01", &[CALL]),
    // 3.1.1.4: escaped nulls; a REGISTER, which we do not serve.
    ("escnull", &[&[405]]),
    // 3.1.1.5: % is no escape in a method name: an unknown method.
    ("esc02", &[&[501]]),
    // 3.1.1.6: no LWS between display name and <: accept.
    ("lwsdisp", &[&[200]]),
    // 3.1.1.7: long values and 34 Vias: a valid INVITE.
    ("longreq", &[CALL]),
    // 3.1.1.8: a REGISTER followed by noise that looks like an INVITE: only the REGISTER counts.
    ("dblreq", &[&[405]]),
    // 3.1.1.9: a semicolon in the Request-URI's user part.
    ("semiuri", &[&[200]]),
    // 3.1.1.10: every transport in Via.
    ("transports", &[&[200]]),
    // 3.1.1.11: a multipart MESSAGE with binary octets: framed right, refused as unserved.
    ("mpart01", &[&[405]]),
    // 3.1.1.12 and 3.1.1.13: responses that match no transaction of ours are dropped.
    ("unreason", &[&[]]),
    ("noreason", &[&[]]),
    // 3.1.2 Invalid messages.
    // 3.1.2.1: extra semicolons and commas in Via and Contact: 400.
    ("badinv01", &[&[400]]),
    // 3.1.2.2: Content-Length larger than the datagram: 400.
    ("clerr", &[&[400]]),
    // 3.1.2.3: negative Content-Length: an error.
    ("ncl", &[&[400]]),
    // 3.1.2.4: scalar fields out of range (CSeq > 2**32-1): 400.
    ("scalar02", &[&[400]]),
    // 3.1.2.5: a response with out-of-range scalars: dropped.
    ("scalarlg", &[&[]]),
    // 3.1.2.6: an unterminated quote in To: 400.
    ("quotbal", &[&[400]]),
    // 3.1.2.7: a Request-URI in <>: 400.
    ("ltgtruri", &[&[400]]),
    // 3.1.2.8: LWS inside the Request-URI: 400.
    ("lwsruri", &[&[400]]),
    // 3.1.2.9: several SP between start-line elements: refuse, or accept liberally.
    ("lwsstart", &[&[400], CALL]),
    // 3.1.2.10: SP after the version: refuse, or accept liberally.
    ("trws", &[&[400], &[200]]),
    // 3.1.2.11: escaped headers in the Request-URI: refuse, or ignore them.
    ("escruri", &[&[400], CALL]),
    // 3.1.2.12: a non-GMT Date we never use: accept, or refuse.
    ("baddate", &[CALL, &[400]]),
    // 3.1.2.13: an escaped header in an addr-spec Contact; REGISTER is refused either way.
    ("regbadct", &[&[400], &[405]]),
    // 3.1.2.14: spaces inside an addr-spec: refuse, or ignore them.
    ("badaspec", &[&[400], &[200]]),
    // 3.1.2.15: unquoted display names with non-token characters: refuse, or infer quotes.
    ("baddn", &[&[400], &[200]]),
    // 3.1.2.16: SIP/7.0: 505 Version Not Supported.
    ("badvers", &[&[505]]),
    // 3.1.2.17: CSeq method differs from the start line: 400.
    ("mismatch01", &[&[400]]),
    // 3.1.2.18: an unknown method with a mismatched CSeq: 501 (400 also allowed).
    ("mismatch02", &[&[501], &[400]]),
    // 3.1.2.19: a status code over 699: dropped.
    ("bigcode", &[&[]]),
    // 3.2.1: z9hG4bK with no identifier: answer, or 400.
    ("badbranch", &[&[200], &[400]]),
    // 3.3 Application layer.
    // 3.3.1: missing To, From, Call-ID and Max-Forwards: 400.
    ("insuf", &[&[400]]),
    // 3.3.2: an unknown Request-URI scheme: 416.
    ("unkscm", &[&[416]]),
    // 3.3.3: a novel scheme (soap.beep): 416.
    ("novelsc", &[&[416]]),
    // 3.3.4: unknown schemes in To, From and Contact: 416 (a REGISTER: 405 also fits).
    ("unksm2", &[&[416], &[405]]),
    // 3.3.5: Require of unknown extensions: 420 (Proxy-Require is for proxies).
    ("bext01", &[&[420]]),
    // 3.3.6: an INVITE with a body type we cannot read: 415 (after our 100 Trying).
    ("invut", &[&[100, 415]]),
    // 3.3.7: a REGISTER with an unknown auth scheme: we do not serve REGISTER.
    ("regaut01", &[&[405]]),
    // 3.3.8: several Call-ID, CSeq, To and From values: 400.
    ("multi01", &[&[400]]),
    // 3.3.9: two Content-Length values: 400.
    ("mcl01", &[&[400]]),
    // 3.3.10: a 200 with a broadcast Via: responses to nothing are dropped.
    ("bcast", &[&[]]),
    // 3.3.11: Max-Forwards 0 at an endpoint: process the request normally.
    ("zeromf", &[&[200]]),
    // 3.3.12 and 3.3.13: Contact parameters; REGISTER, which we do not serve.
    ("cparam01", &[&[405]]),
    ("cparam02", &[&[405]]),
    // 3.3.14: an escaped Route in a name-addr Contact: legal; REGISTER is unserved.
    ("regescrt", &[&[405]]),
    // 3.3.15: Accept excludes application/sdp, so no answer can carry SDP: 406 (after 100).
    ("sdp01", &[&[100, 406]]),
    // 3.4.1: an RFC 2543 INVITE (no branch, no Max-Forwards, no Content-Length): accept.
    ("inv2543", &[CALL]),
];

fn torture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/torture")
}

fn load(name: &str) -> Vec<u8> {
    let path = torture_dir().join(format!("{name}.sip"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn config() -> EndpointConfig {
    EndpointConfig {
        advertised_ip: "192.0.2.200".parse().unwrap(),
        sip_port: 5060,
        tls_port: None,
        user_agent: "hotline-torture".into(),
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        allow_from: vec![],
        inbound_auth: None,
        session_expires_s: 0,
        answer_delay_ms: 0,
        registration: None,
        limits: SourceLimits::default(),
        max_half_open: 64,
        ack_timeout_ms: 32_000,
        srtp: SrtpPolicy::Optional,
    }
}

fn udp_peer() -> Peer {
    Peer {
        transport: TransportKind::Udp,
        addr: "192.0.2.1:5060".parse().unwrap(),
        connection: None,
    }
}

fn status(data: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(data);
    text.strip_prefix("SIP/2.0 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not a response: {text}"))
}

/// Feeds one message and accepts any call it offers; returns the response codes sent and the
/// calls offered.
fn feed(s: &mut SipSession, now_ms: u64, data: &[u8]) -> (Vec<u16>, Vec<SipCallId>) {
    s.handle_input(now_ms, udp_peer(), data);
    let mut codes = Vec::new();
    let mut offered = Vec::new();
    loop {
        let mut progressed = false;
        while let Some(t) = s.poll_transmit() {
            codes.push(status(&t.data));
            progressed = true;
        }
        while let Some(event) = s.poll_event() {
            progressed = true;
            if let SipEvent::IncomingCall(call) = event {
                s.accept(now_ms, &call.id, 40_000);
                offered.push(call.id);
            }
        }
        if !progressed {
            break;
        }
    }
    (codes, offered)
}

#[test]
fn every_file_is_in_the_table_and_every_entry_has_a_file() {
    let mut files: Vec<String> = std::fs::read_dir(torture_dir())
        .expect("the torture set lives in sip/tests/torture")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter_map(|n| n.strip_suffix(".sip").map(str::to_string))
        .collect();
    files.sort();
    let mut names: Vec<String> = TABLE.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(files, names);
    assert!(names.len() >= 49, "RFC 4475 has 49 messages");
}

#[test]
fn each_message_gets_the_answer_rfc_4475_expects() {
    let mut failures = Vec::new();
    for (name, allowed) in TABLE {
        let data = load(name);
        let mut s = SipSession::new(config(), 7, 0);
        let (codes, offered) = feed(&mut s, 0, &data);
        if !allowed.contains(&codes.as_slice()) {
            failures.push(format!(
                "{name}: sent {codes:?}, expected one of {allowed:?}"
            ));
        }
        // A call is offered exactly when the answer says so.
        let is_call = codes.as_slice() == CALL;
        if is_call != (offered.len() == 1) {
            failures.push(format!("{name}: offered {offered:?} with answer {codes:?}"));
        }
        // Answers are themselves well-formed SIP that echoes the request's Call-ID.
        s.handle_input(0, udp_peer(), &data);
        while let Some(t) = s.poll_transmit() {
            match SipMessage::parse(&t.data) {
                Ok(m) => {
                    if m.header("Via").is_none() {
                        failures.push(format!("{name}: an answer without Via"));
                    }
                }
                Err(e) => failures.push(format!("{name}: an unparsable answer: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn dblreq_answers_the_register_and_ignores_the_trailing_invite() {
    let mut s = SipSession::new(config(), 7, 0);
    let (codes, offered) = feed(&mut s, 0, &load("dblreq"));
    assert_eq!(codes, vec![405]);
    assert!(offered.is_empty());
    assert_eq!(s.active_calls(), 0);
}

#[test]
fn answers_to_version_and_extension_errors_say_what_we_support() {
    let mut s = SipSession::new(config(), 7, 0);
    s.handle_input(0, udp_peer(), &load("badvers"));
    let answer = String::from_utf8(s.poll_transmit().expect("505").data).unwrap();
    assert!(
        answer.starts_with("SIP/2.0 505 Version Not Supported\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("Call-ID: badvers.31417@c.example.com\r\n"),
        "{answer}"
    );
    s.handle_input(0, udp_peer(), &load("bext01"));
    let answer = String::from_utf8(s.poll_transmit().expect("420").data).unwrap();
    assert!(
        answer.contains("Unsupported: nothingSupportsThis, nothingSupportsThisEither\r\n"),
        "{answer}"
    );
    assert!(!answer.contains("noProxiesSupportThis"), "{answer}");
    s.handle_input(0, udp_peer(), &load("invut"));
    let answer = std::iter::from_fn(|| s.poll_transmit())
        .last()
        .expect("415");
    let answer = String::from_utf8(answer.data).unwrap();
    assert!(answer.starts_with("SIP/2.0 415 "), "{answer}");
    assert!(answer.contains("Accept: application/sdp\r\n"), "{answer}");
    s.handle_input(0, udp_peer(), &load("intmeth"));
    let answer = String::from_utf8(s.poll_transmit().expect("501").data).unwrap();
    assert!(answer.contains("Allow: INVITE, ACK"), "{answer}");
}

#[test]
fn folded_compact_and_escaped_headers_are_read() {
    let m = SipMessage::parse(&load("wsinv")).expect("wsinv is well formed");
    assert_eq!(m.header("Call-ID"), Some("wsinv.ndaksdj@192.0.2.1"));
    assert_eq!(m.cseq(), Some((9, "INVITE".to_string())));
    assert_eq!(m.tag("To").as_deref(), Some("1918181833n"));
    assert_eq!(m.tag("From").as_deref(), Some("98asjd8"));
    assert_eq!(m.header("Max-Forwards"), Some("0068"));
    // Three Via values: one folded header, one compact header with two comma-separated values.
    let vias: Vec<&str> = m.headers_named("Via").collect();
    assert_eq!(vias.len(), 2, "{vias:?}");
    assert_eq!(m.branch().as_deref(), Some("390skdjuw"));
    assert_eq!(m.body.len(), 150);
    let m = SipMessage::parse(&load("esc01")).expect("esc01 is well formed");
    assert_eq!(
        m.header("Call-ID"),
        Some("esc01.239409asdfakjkn23onasd0-3234")
    );
    assert_eq!(m.header("Content-Type"), Some("application/sdp"));
    let m = SipMessage::parse(&load("longreq")).expect("longreq is well formed");
    assert_eq!(m.headers_named("Via").count(), 34);
}

#[test]
fn a_call_in_progress_is_unaffected_by_the_whole_set() {
    let mut s = SipSession::new(config(), 7, 0);
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
        m=audio 6000 RTP/AVP 0\r\na=sendrecv\r\n";
    let invite = format!(
        "INVITE sip:bot@192.0.2.200 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-live\r\n\
         From: <sip:alice@192.0.2.1>;tag=live-a\r\nTo: <sip:bot@192.0.2.200>\r\nCall-ID: live-call\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.1:5060>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    s.handle_input(0, udp_peer(), invite.as_bytes());
    let Some(SipEvent::IncomingCall(call)) = s.poll_event() else {
        panic!("the live call was not offered")
    };
    s.accept(0, &call.id, 40_000);
    let mut tag = String::new();
    while let Some(t) = s.poll_transmit() {
        let m = SipMessage::parse(&t.data).unwrap();
        tag = m.tag("To").unwrap_or_default();
    }
    let ack = format!(
        "ACK sip:hotline@192.0.2.200:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-ack\r\n\
         From: <sip:alice@192.0.2.1>;tag=live-a\r\nTo: <sip:bot@192.0.2.200>;tag={tag}\r\nCall-ID: live-call\r\n\
         CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    s.handle_input(10, udp_peer(), ack.as_bytes());
    assert!(s.poll_transmit().is_none());
    let mut now_ms = 20;
    for (name, _) in TABLE {
        feed(&mut s, now_ms, &load(name));
        now_ms += 20;
        // Nothing in the set may end or touch the live call.
        assert!(
            s.active_calls() >= 1,
            "{name} ended the live call ({} active)",
            s.active_calls()
        );
    }
    let bye = format!(
        "BYE sip:hotline@192.0.2.200:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-bye\r\n\
         From: <sip:alice@192.0.2.1>;tag=live-a\r\nTo: <sip:bot@192.0.2.200>;tag={tag}\r\nCall-ID: live-call\r\n\
         CSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    s.handle_input(now_ms, udp_peer(), bye.as_bytes());
    assert_eq!(status(&s.poll_transmit().expect("200 to BYE").data), 200);
    let ended: Vec<SipEvent> = std::iter::from_fn(|| s.poll_event()).collect();
    assert_eq!(
        ended,
        vec![SipEvent::CallEnded {
            id: SipCallId("live-call".into()),
            reason: "caller.hangup".into()
        }]
    );
}
