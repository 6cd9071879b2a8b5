//! Sans-IO tests of the SIP user agent server on virtual time.

use super::registration::MAX_CHALLENGE_ROUNDS;
use super::*;
use crate::auth::{self, DigestParams};
use crate::flood::SourceLimits;
use crate::message::{MessageWriter, SipMessage};
use crate::sdp::{Codec, Direction, MediaPorts};

fn config() -> EndpointConfig {
    EndpointConfig {
        advertised_ip: "203.0.113.5".parse().unwrap(),
        sip_port: 5060,
        tls_port: None,
        user_agent: "hotline-test".into(),
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        allow_from: vec![],
        inbound_auth: None,
        session_expires_s: 1800,
        answer_delay_ms: 0,
        registration: None,
        limits: SourceLimits::default(),
        max_half_open: 64,
        ack_timeout_ms: 32_000,
        srtp: SrtpPolicy::Optional,
    }
}

fn peer() -> Peer {
    Peer {
        transport: TransportKind::Udp,
        addr: "127.0.0.1:5070".parse().unwrap(),
        connection: None,
    }
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";

fn request(
    method: &str,
    call_id: &str,
    cseq: u32,
    to_tag: Option<&str>,
    branch: &str,
    extra: &str,
    body: &str,
) -> Vec<u8> {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let content_type = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_string()
    };
    format!(
        "{method} sip:bot@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n\
         From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bot@127.0.0.1>{to_tag}\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\nContact: <sip:alice@127.0.0.1:5070>\r\nMax-Forwards: 70\r\n{extra}{content_type}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn invite(call_id: &str) -> Vec<u8> {
    request("INVITE", call_id, 1, None, "z9hG4bK-inv", "", SDP)
}

fn drain(s: &mut SipSession) -> Vec<String> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|t| String::from_utf8(t.data).unwrap())
        .collect()
}

fn codes(messages: &[String]) -> Vec<u16> {
    messages
        .iter()
        .filter_map(|m| m.strip_prefix("SIP/2.0 "))
        .map(|m| m[..3].parse().unwrap())
        .collect()
}

fn events(s: &mut SipSession) -> Vec<SipEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn to_tag(response: &str) -> String {
    let message = SipMessage::parse(response.as_bytes()).unwrap();
    message.tag("To").unwrap()
}

/// Runs INVITE, accept and ACK; returns our To tag.
fn established(s: &mut SipSession, call_id: &str) -> String {
    s.handle_input(0, peer(), &invite(call_id));
    let id = SipCallId(call_id.into());
    s.accept(0, &id, 7000);
    let out = drain(s);
    let tag = to_tag(out.last().unwrap());
    s.handle_input(
        10,
        peer(),
        &request("ACK", call_id, 1, Some(&tag), "z9hG4bK-ack", "", ""),
    );
    events(s);
    tag
}

#[test]
fn invite_is_answered_with_trying_ringing_and_sdp() {
    let mut s = SipSession::new(config(), 1, 0);
    s.handle_input(0, peer(), &invite("c1"));
    assert_eq!(codes(&drain(&mut s)), vec![100]);
    let ev = events(&mut s);
    let SipEvent::IncomingCall(call) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(call.from, "sip:alice@127.0.0.1");
    let negotiated = call.negotiated.as_ref().expect("an offer in the INVITE");
    assert_eq!(negotiated.codec, Codec::Pcmu);
    assert_eq!(negotiated.telephone_event_pt, Some(101));
    s.accept(0, &call.id, 7000);
    let out = drain(&mut s);
    assert_eq!(codes(&out), vec![180, 200]);
    let ok = &out[1];
    assert!(ok.contains("m=audio 7000 RTP/AVP 0 101\r\n"), "{ok}");
    assert!(
        ok.contains("c=IN IP4 203.0.113.5"),
        "advertised address in SDP: {ok}"
    );
    assert!(
        ok.contains("Contact: <sip:hotline@203.0.113.5:5060>"),
        "{ok}"
    );
    assert_eq!(to_tag(&out[0]), to_tag(ok));
}

#[test]
fn ok_is_retransmitted_until_ack_then_the_call_survives() {
    let mut s = SipSession::new(config(), 1, 0);
    s.handle_input(0, peer(), &invite("c1"));
    s.accept(0, &SipCallId("c1".into()), 7000);
    let tag = to_tag(drain(&mut s).last().unwrap());
    let mut resent = Vec::new();
    for t in [500u64, 1500, 3500] {
        s.handle_timeout(t);
        resent.extend(codes(&drain(&mut s)));
    }
    assert_eq!(resent, vec![200, 200, 200]);
    s.handle_input(
        3600,
        peer(),
        &request("ACK", "c1", 1, Some(&tag), "z9hG4bK-ack", "", ""),
    );
    s.handle_timeout(20_000);
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.active_calls(), 1);
}

#[test]
fn missing_ack_ends_the_call_with_bye() {
    let mut s = SipSession::new(config(), 1, 0);
    s.handle_input(0, peer(), &invite("c1"));
    s.accept(0, &SipCallId("c1".into()), 7000);
    drain(&mut s);
    events(&mut s);
    let mut t = 0;
    while t <= TIMER_B_MS {
        t += 500;
        s.handle_timeout(t);
    }
    let out = drain(&mut s);
    assert!(out.iter().any(|m| m.starts_with("BYE ")));
    assert_eq!(
        events(&mut s),
        vec![SipEvent::CallEnded {
            id: SipCallId("c1".into()),
            reason: "sip.no_ack".into()
        }]
    );
}

#[test]
fn bye_from_the_caller_ends_the_call_once() {
    let mut s = SipSession::new(config(), 1, 0);
    let tag = established(&mut s, "c1");
    let bye = request("BYE", "c1", 2, Some(&tag), "z9hG4bK-bye", "", "");
    s.handle_input(100, peer(), &bye);
    s.handle_input(600, peer(), &bye);
    assert_eq!(codes(&drain(&mut s)), vec![200, 200]);
    assert_eq!(
        events(&mut s),
        vec![SipEvent::CallEnded {
            id: SipCallId("c1".into()),
            reason: "caller.hangup".into()
        }]
    );
    s.handle_input(
        700,
        peer(),
        &request("BYE", "nope", 2, Some("x"), "z9hG4bK-b2", "", ""),
    );
    assert_eq!(codes(&drain(&mut s)), vec![481]);
}

#[test]
fn our_hangup_sends_bye_retransmitted_until_answered() {
    let mut s = SipSession::new(config(), 1, 0);
    established(&mut s, "c1");
    s.hangup(100, &SipCallId("c1".into()), "bot.goodbye");
    let out = drain(&mut s);
    assert!(
        out[0].starts_with("BYE sip:alice@127.0.0.1:5070 SIP/2.0\r\n"),
        "{}",
        out[0]
    );
    assert!(out[0].contains("From: <sip:bot@127.0.0.1>;tag="));
    assert!(out[0].contains("To: <sip:alice@127.0.0.1>;tag=a1"));
    s.handle_timeout(600);
    assert!(drain(&mut s)[0].starts_with("BYE "));
    let bye = SipMessage::parse(out[0].as_bytes()).unwrap();
    let ok = MessageWriter::response(200)
        .echo(&bye, None)
        .body(None, b"");
    s.handle_input(700, peer(), &ok);
    s.handle_timeout(5_000);
    assert!(drain(&mut s).is_empty());
    assert_eq!(
        events(&mut s),
        vec![SipEvent::CallEnded {
            id: SipCallId("c1".into()),
            reason: "bot.goodbye".into()
        }]
    );
}

#[test]
fn cancel_before_answer_gets_487() {
    let mut s = SipSession::new(config(), 1, 0);
    s.handle_input(0, peer(), &invite("c1"));
    drain(&mut s);
    events(&mut s);
    s.handle_input(
        50,
        peer(),
        &request("CANCEL", "c1", 1, None, "z9hG4bK-inv", "", ""),
    );
    assert_eq!(codes(&drain(&mut s)), vec![200, 487]);
    assert_eq!(
        events(&mut s),
        vec![SipEvent::CallEnded {
            id: SipCallId("c1".into()),
            reason: "caller.cancel".into()
        }]
    );
    // A late accept does nothing; the ACK for the 487 is absorbed.
    s.accept(60, &SipCallId("c1".into()), 7000);
    s.handle_input(
        70,
        peer(),
        &request("ACK", "c1", 1, Some("x"), "z9hG4bK-inv", "", ""),
    );
    assert!(drain(&mut s).is_empty());
    s.handle_input(
        80,
        peer(),
        &request("CANCEL", "c2", 1, None, "z9hG4bK-zz", "", ""),
    );
    assert_eq!(codes(&drain(&mut s)), vec![481]);
}

#[test]
fn a_ringing_call_is_offered_after_the_answer_delay() {
    let mut cfg = config();
    cfg.answer_delay_ms = 2_000;
    let mut s = SipSession::new(cfg, 1, 0);
    s.handle_input(0, peer(), &invite("c1"));
    assert_eq!(codes(&drain(&mut s)), vec![100, 180]);
    assert!(events(&mut s).is_empty(), "not offered while ringing");
    assert_eq!(s.poll_timeout(), Some(2_000));
    // A retransmitted INVITE hears the ringing again.
    s.handle_input(500, peer(), &invite("c1"));
    assert_eq!(codes(&drain(&mut s)), vec![180]);
    s.handle_timeout(1_999);
    assert!(events(&mut s).is_empty());
    s.handle_timeout(2_000);
    let offered = events(&mut s);
    assert!(
        matches!(&offered[..], [SipEvent::IncomingCall(c)] if c.id.0 == "c1"),
        "{offered:?}"
    );
    // Answering does not ring a second time.
    s.accept(2_010, &SipCallId("c1".into()), 7000);
    assert_eq!(codes(&drain(&mut s)), vec![200]);
}

#[test]
fn cancel_while_ringing_ends_the_call_before_the_application_sees_it() {
    let mut cfg = config();
    cfg.answer_delay_ms = 2_000;
    let mut s = SipSession::new(cfg, 1, 0);
    s.handle_input(0, peer(), &invite("c1"));
    drain(&mut s);
    s.handle_input(
        300,
        peer(),
        &request("CANCEL", "c1", 1, None, "z9hG4bK-inv", "", ""),
    );
    assert_eq!(codes(&drain(&mut s)), vec![200, 487]);
    s.handle_timeout(5_000);
    let ev = events(&mut s);
    assert!(
        !ev.iter().any(|e| matches!(e, SipEvent::IncomingCall(_))),
        "{ev:?}"
    );
    assert_eq!(s.active_calls(), 0);
}

#[test]
fn capacity_rejection_carries_retry_after() {
    let mut s = SipSession::new(config(), 1, 0);
    s.handle_input(0, peer(), &invite("c1"));
    drain(&mut s);
    s.reject(0, &SipCallId("c1".into()), 486, Some(30));
    let out = drain(&mut s);
    assert_eq!(codes(&out), vec![486]);
    assert!(out[0].contains("Retry-After: 30\r\n"));
    s.handle_timeout(500);
    assert_eq!(
        codes(&drain(&mut s)),
        vec![486],
        "retransmitted over UDP until ACK"
    );
    s.handle_input(
        600,
        peer(),
        &request("ACK", "c1", 1, Some("x"), "z9hG4bK-inv", "", ""),
    );
    s.handle_timeout(5_000);
    assert!(drain(&mut s).is_empty());
}

#[test]
fn options_unknown_and_unserved_methods() {
    let mut s = SipSession::new(config(), 1, 0);
    s.handle_input(
        0,
        peer(),
        &request("OPTIONS", "o1", 1, None, "z9hG4bK-o", "", ""),
    );
    let out = drain(&mut s);
    assert_eq!(codes(&out), vec![200]);
    assert!(out[0].contains("Allow: INVITE"));
    s.handle_input(
        0,
        peer(),
        &request("REGISTER", "r1", 1, None, "z9hG4bK-r", "", ""),
    );
    s.handle_input(
        0,
        peer(),
        &request("FROBNICATE", "f1", 1, None, "z9hG4bK-f", "", ""),
    );
    assert_eq!(codes(&drain(&mut s)), vec![405, 501]);
}

#[test]
fn no_common_codec_and_bad_sdp_get_488() {
    let mut s = SipSession::new(config(), 1, 0);
    let g729 = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 6000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    s.handle_input(
        0,
        peer(),
        &request("INVITE", "c1", 1, None, "z9hG4bK-1", "", g729),
    );
    s.handle_input(
        0,
        peer(),
        &request(
            "INVITE",
            "c2",
            1,
            None,
            "z9hG4bK-2",
            "",
            "v=0\r\nthis is not sdp\r\n",
        ),
    );
    s.handle_input(
        0,
        peer(),
        &request(
            "INVITE",
            "c3",
            1,
            None,
            "z9hG4bK-3",
            "",
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 99999 RTP/AVP 0\r\n",
        ),
    );
    let out = drain(&mut s);
    assert_eq!(codes(&out), vec![100, 488, 100, 488, 100, 488]);
    assert!(events(&mut s).is_empty());
    assert_eq!(s.active_calls(), 0);
}

#[test]
fn info_dtmf_reaches_the_application() {
    let mut s = SipSession::new(config(), 1, 0);
    let tag = established(&mut s, "c1");
    let info = request("INFO", "c1", 2, Some(&tag), "z9hG4bK-i", "", "")
        .into_iter()
        .collect::<Vec<u8>>();
    let text = String::from_utf8(info).unwrap().replace("Content-Length: 0\r\n\r\n", "Content-Type: application/dtmf-relay\r\nContent-Length: 24\r\n\r\nSignal=7\r\nDuration=160\r\n");
    s.handle_input(100, peer(), text.as_bytes());
    assert_eq!(codes(&drain(&mut s)), vec![200]);
    assert_eq!(
        events(&mut s),
        vec![SipEvent::Dtmf {
            id: SipCallId("c1".into()),
            digit: '7'
        }]
    );
}

#[test]
fn reinvite_holds_and_unholds() {
    let mut s = SipSession::new(config(), 1, 0);
    let tag = established(&mut s, "c1");
    let hold = SDP.to_string() + "a=sendonly\r\n";
    s.handle_input(
        100,
        peer(),
        &request("INVITE", "c1", 2, Some(&tag), "z9hG4bK-h", "", &hold),
    );
    let out = drain(&mut s);
    assert_eq!(codes(&out), vec![200]);
    assert!(out[0].contains("a=recvonly"), "{}", out[0]);
    assert!(
        out[0].contains("o=hotline ") && out[0].contains(" 2 IN IP4"),
        "SDP version moves on: {}",
        out[0]
    );
    let ev = events(&mut s);
    let SipEvent::MediaUpdated { negotiated, .. } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(negotiated.direction, Direction::RecvOnly);
    s.handle_input(
        110,
        peer(),
        &request("ACK", "c1", 2, Some(&tag), "z9hG4bK-a2", "", ""),
    );
    // Unhold with a codec change to PCMA only.
    let pcma = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 6002 RTP/AVP 8\r\n";
    s.handle_input(
        200,
        peer(),
        &request("INVITE", "c1", 3, Some(&tag), "z9hG4bK-u", "", pcma),
    );
    assert_eq!(codes(&drain(&mut s)), vec![200]);
    let ev = events(&mut s);
    let SipEvent::MediaUpdated { negotiated, .. } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (
            negotiated.codec,
            negotiated.direction,
            negotiated.remote_port
        ),
        (Codec::Pcma, Direction::SendRecv, 6002)
    );
    s.handle_input(
        210,
        peer(),
        &request("ACK", "c1", 3, Some(&tag), "z9hG4bK-a3", "", ""),
    );
    // A bad re-offer is refused and the call goes on.
    s.handle_input(
        300,
        peer(),
        &request(
            "INVITE",
            "c1",
            4,
            Some(&tag),
            "z9hG4bK-b",
            "",
            "v=0\r\nm=audio x\r\n",
        ),
    );
    assert_eq!(codes(&drain(&mut s)), vec![488]);
    assert_eq!(s.active_calls(), 1);
}

#[test]
fn session_timer_expiry_hangs_up() {
    let mut s = SipSession::new(config(), 1, 0);
    let invite = request(
        "INVITE",
        "c1",
        1,
        None,
        "z9hG4bK-inv",
        "Supported: timer\r\nSession-Expires: 120\r\n",
        SDP,
    );
    s.handle_input(0, peer(), &invite);
    s.accept(0, &SipCallId("c1".into()), 7000);
    let out = drain(&mut s);
    assert!(
        out[2].contains("Session-Expires: 120;refresher=uac"),
        "{}",
        out[2]
    );
    let tag = to_tag(&out[2]);
    s.handle_input(
        10,
        peer(),
        &request("ACK", "c1", 1, Some(&tag), "z9hG4bK-ack", "", ""),
    );
    events(&mut s);
    s.handle_input(
        60_000,
        peer(),
        &request("UPDATE", "c1", 2, Some(&tag), "z9hG4bK-up", "", ""),
    );
    s.handle_timeout(150_000);
    assert!(
        events(&mut s).is_empty(),
        "the UPDATE refreshed the session"
    );
    s.handle_timeout(181_000);
    assert_eq!(
        events(&mut s),
        vec![SipEvent::CallEnded {
            id: SipCallId("c1".into()),
            reason: "sip.session_expired".into()
        }]
    );
    let small = request(
        "INVITE",
        "c2",
        1,
        None,
        "z9hG4bK-2",
        "Session-Expires: 30\r\n",
        SDP,
    );
    s.handle_input(0, peer(), &small);
    assert!(codes(&drain(&mut s)).contains(&422));
}

#[test]
fn untrusted_callers_are_challenged_or_refused() {
    let mut cfg = config();
    cfg.allow_from = vec!["10.0.0.0/8".parse().unwrap()];
    let mut s = SipSession::new(cfg.clone(), 1, 0);
    s.handle_input(0, peer(), &invite("c1"));
    assert_eq!(codes(&drain(&mut s)), vec![403]);
    let trusted = Peer {
        addr: "10.1.2.3:5060".parse().unwrap(),
        ..peer()
    };
    s.handle_input(0, trusted, &invite("c2"));
    assert_eq!(codes(&drain(&mut s)), vec![100]);

    cfg.inbound_auth = Some(InboundAuth {
        realm: "hotline".into(),
        username: "trunk".into(),
        password: "pw".into(),
    });
    let mut s = SipSession::new(cfg, 1, 0);
    s.handle_input(0, peer(), &invite("c3"));
    let out = drain(&mut s);
    assert_eq!(codes(&out), vec![401]);
    let challenge = SipMessage::parse(out[0].as_bytes()).unwrap();
    let params = DigestParams::parse(challenge.header("WWW-Authenticate").unwrap()).unwrap();
    let answer = auth::authorization(
        &params,
        "trunk",
        "pw",
        "INVITE",
        "sip:bot@127.0.0.1:5060",
        "cn",
        1,
    )
    .unwrap();
    let retry = request(
        "INVITE",
        "c4",
        2,
        None,
        "z9hG4bK-2",
        &format!("Authorization: {answer}\r\n"),
        SDP,
    );
    s.handle_input(10, peer(), &retry);
    assert_eq!(codes(&drain(&mut s)), vec![100]);
    let wrong = auth::authorization(
        &params,
        "trunk",
        "guess",
        "INVITE",
        "sip:bot@127.0.0.1:5060",
        "cn",
        1,
    )
    .unwrap();
    let retry = request(
        "INVITE",
        "c5",
        2,
        None,
        "z9hG4bK-3",
        &format!("Authorization: {wrong}\r\n"),
        SDP,
    );
    s.handle_input(10, peer(), &retry);
    assert_eq!(codes(&drain(&mut s)), vec![401]);
}

#[test]
fn registration_answers_the_challenge_refreshes_and_backs_off() {
    let mut s = registering("pbx.example");
    s.handle_timeout(0);
    let out = drain(&mut s);
    assert!(
        out[0].starts_with("REGISTER sip:pbx.example SIP/2.0\r\n"),
        "{}",
        out[0]
    );
    let register = SipMessage::parse(out[0].as_bytes()).unwrap();
    let challenge = MessageWriter::response(401)
        .echo(&register, Some("r"))
        .header(
            "WWW-Authenticate",
            "Digest realm=\"pbx\", nonce=\"abc\", qop=\"auth\"",
        )
        .body(None, b"");
    s.handle_input(10, peer(), &challenge);
    let out = drain(&mut s);
    let again = SipMessage::parse(out[0].as_bytes()).unwrap();
    let credentials = again.header("Authorization").unwrap();
    let p = DigestParams::parse(credentials).unwrap();
    let expected = auth::digest_response(
        "1001",
        "pbx",
        "pw",
        "REGISTER",
        "sip:pbx.example",
        "abc",
        Some((p.get("cnonce").unwrap(), "00000001")),
    );
    assert_eq!(p.get("response"), Some(expected.as_str()));
    assert_eq!(again.cseq().unwrap().0, register.cseq().unwrap().0 + 1);
    let ok = MessageWriter::response(200)
        .echo(&again, Some("r"))
        .header("Contact", "<sip:hotline@203.0.113.5:5060>;expires=120")
        .body(None, b"");
    s.handle_input(20, peer(), &ok);
    assert_eq!(
        events(&mut s),
        vec![SipEvent::Registration {
            registered: true,
            detail: "registered for 120 s".into()
        }]
    );
    // Refresh before expiry (at 80 % of 120 s).
    s.handle_timeout(95_000);
    assert!(drain(&mut s).is_empty());
    s.handle_timeout(97_000);
    assert!(drain(&mut s)[0].starts_with("REGISTER "));
}

#[test]
fn registration_answers_a_proxy_challenge_with_proxy_authorization() {
    let mut s = registering("");
    s.handle_timeout(0);
    let register = SipMessage::parse(drain(&mut s)[0].as_bytes()).unwrap();
    let challenge = MessageWriter::response(407)
        .echo(&register, Some("r"))
        .header("Proxy-Authenticate", "Digest realm=\"proxy\", nonce=\"n7\"")
        .body(None, b"");
    s.handle_input(10, peer(), &challenge);
    let out = drain(&mut s);
    let again = SipMessage::parse(out[0].as_bytes()).unwrap();
    assert!(again.header("Authorization").is_none(), "{}", out[0]);
    let p = DigestParams::parse(again.header("Proxy-Authorization").unwrap()).unwrap();
    let expected = auth::digest_response(
        "1001",
        "proxy",
        "pw",
        "REGISTER",
        "sip:127.0.0.1",
        "n7",
        None,
    );
    assert_eq!(p.get("response"), Some(expected.as_str()));
}

#[test]
fn registration_failure_backs_off() {
    let mut s = registering("");
    s.handle_timeout(0);
    let register = SipMessage::parse(drain(&mut s)[0].as_bytes()).unwrap();
    s.handle_input(
        10,
        peer(),
        &MessageWriter::response(403)
            .echo(&register, Some("r"))
            .body(None, b""),
    );
    let ev = events(&mut s);
    assert!(
        matches!(&ev[0], SipEvent::Registration { registered: false, detail } if detail.contains("refused.403") && detail.contains("5 s"))
    );
    s.handle_timeout(4_000);
    assert!(drain(&mut s).is_empty());
    s.handle_timeout(5_010);
    let register = SipMessage::parse(drain(&mut s)[0].as_bytes()).unwrap();
    s.handle_input(
        5_020,
        peer(),
        &MessageWriter::response(503)
            .echo(&register, Some("r"))
            .body(None, b""),
    );
    let ev = events(&mut s);
    assert!(
        matches!(&ev[0], SipEvent::Registration { registered: false, detail } if detail.contains("10 s"))
    );
}

#[test]
fn malformed_requests_get_protocol_answers_and_calls_are_unaffected() {
    let mut s = SipSession::new(config(), 1, 0);
    let tag = established(&mut s, "live");
    let cases: Vec<(Vec<u8>, Option<u16>)> = vec![
        (
            request("OPTIONS", "m1", 1, None, "z9hG4bK-m1", "", ""),
            Some(200),
        ),
        // CSeq method mismatch.
        (
            String::from_utf8(request("OPTIONS", "m2", 1, None, "z9hG4bK-m2", "", ""))
                .unwrap()
                .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")
                .into_bytes(),
            Some(400),
        ),
        // Content-Length larger than the body.
        (
            String::from_utf8(request("OPTIONS", "m3", 1, None, "z9hG4bK-m3", "", ""))
                .unwrap()
                .replace("Content-Length: 0", "Content-Length: 500")
                .into_bytes(),
            Some(400),
        ),
        // Non-numeric Content-Length.
        (
            String::from_utf8(request("OPTIONS", "m4", 1, None, "z9hG4bK-m4", "", ""))
                .unwrap()
                .replace("Content-Length: 0", "Content-Length: lots")
                .into_bytes(),
            Some(400),
        ),
        // Max-Forwards exhausted.
        (
            String::from_utf8(request("INVITE", "m5", 1, None, "z9hG4bK-m5", "", SDP))
                .unwrap()
                .replace("Max-Forwards: 70", "Max-Forwards: 0")
                .into_bytes(),
            Some(483),
        ),
        // Unknown URI scheme.
        (
            String::from_utf8(request("OPTIONS", "m6", 1, None, "z9hG4bK-m6", "", ""))
                .unwrap()
                .replace("OPTIONS sip:bot@127.0.0.1:5060", "OPTIONS nobody:bot")
                .into_bytes(),
            Some(416),
        ),
        // Unsupported extension required.
        (
            request(
                "INVITE",
                "m7",
                1,
                None,
                "z9hG4bK-m7",
                "Require: nothingweknow\r\n",
                SDP,
            ),
            Some(420),
        ),
        // No Call-ID.
        (
            String::from_utf8(request("OPTIONS", "m8", 1, None, "z9hG4bK-m8", "", ""))
                .unwrap()
                .replace("Call-ID: m8\r\n", "")
                .into_bytes(),
            Some(400),
        ),
        // No Via: nothing can be answered.
        (
            String::from_utf8(request("OPTIONS", "m9", 1, None, "z9hG4bK-m9", "", ""))
                .unwrap()
                .replace("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-m9\r\n", "")
                .into_bytes(),
            None,
        ),
        (b"\x00\x01\x02garbage\r\n\r\n".to_vec(), None),
        (b"INVITE\r\n\r\n".to_vec(), None),
        (vec![b'A'; 70_000], None),
    ];
    for (data, expected) in cases {
        s.handle_input(100, peer(), &data);
        let got = codes(&drain(&mut s));
        assert_eq!(
            got,
            expected.into_iter().collect::<Vec<_>>(),
            "{}",
            String::from_utf8_lossy(&data[..data.len().min(120)])
        );
    }
    assert_eq!(s.active_calls(), 1);
    s.handle_input(
        200,
        peer(),
        &request("BYE", "live", 2, Some(&tag), "z9hG4bK-bye", "", ""),
    );
    assert_eq!(codes(&drain(&mut s)), vec![200]);
}

fn registering(domain: &str) -> SipSession {
    let mut cfg = config();
    cfg.registration = Some(RegistrationConfig {
        registrar: "127.0.0.1:5090".parse().unwrap(),
        domain: domain.into(),
        username: "1001".into(),
        password: "pw".into(),
        expires_s: 300,
    });
    SipSession::new(cfg, 1, 0)
}

/// Answers the last REGISTER with `code` and the given challenge headers; returns the next
/// REGISTER, if one was sent.
fn challenge(
    s: &mut SipSession,
    now_ms: u64,
    register: &SipMessage,
    code: u16,
    headers: &[(&str, &str)],
) -> Option<SipMessage> {
    let mut writer = MessageWriter::response(code).echo(register, Some("r"));
    for (name, value) in headers {
        writer = writer.header(name, value);
    }
    s.handle_input(now_ms, peer(), &writer.body(None, b""));
    drain(s)
        .into_iter()
        .find(|m| m.starts_with("REGISTER "))
        .map(|m| SipMessage::parse(m.as_bytes()).unwrap())
}

/// Checks one digest answer: its header, realm, nonce, nc, and the response itself.
fn check_answer(register: &SipMessage, header: &str, realm: &str, nonce: &str, nc: Option<&str>) {
    let value = register
        .headers_named(header)
        .find(|v| v.contains(&format!("realm=\"{realm}\"")))
        .unwrap_or_else(|| panic!("no {header} for {realm}: {:?}", register.headers));
    let p = DigestParams::parse(value).unwrap();
    assert_eq!(p.get("nonce"), Some(nonce));
    assert_eq!(p.get("nc"), nc);
    let expected = auth::digest_response(
        "1001",
        realm,
        "pw",
        "REGISTER",
        "sip:pbx.example",
        nonce,
        nc.map(|nc| (p.get("cnonce").unwrap(), nc)),
    );
    assert_eq!(p.get("response"), Some(expected.as_str()), "{value}");
}

const PROXY_CHALLENGE: (&str, &str) = (
    "Proxy-Authenticate",
    "Digest realm=\"proxy\", nonce=\"p1\", qop=\"auth\", algorithm=MD5",
);
const REGISTRAR_CHALLENGE: (&str, &str) =
    ("WWW-Authenticate", "Digest realm=\"pbx\", nonce=\"r1\"");

#[test]
fn registration_answers_a_proxy_then_a_registrar_and_refreshes_with_both() {
    let mut s = registering("pbx.example");
    s.handle_timeout(0);
    let first = SipMessage::parse(drain(&mut s)[0].as_bytes()).unwrap();
    let second = challenge(&mut s, 10, &first, 407, &[PROXY_CHALLENGE]).expect("answered 407");
    check_answer(
        &second,
        "Proxy-Authorization",
        "proxy",
        "p1",
        Some("00000001"),
    );
    assert!(second.header("Authorization").is_none());
    // The registrar behind the proxy challenges too: both answers go on the next REGISTER.
    let third = challenge(&mut s, 20, &second, 401, &[REGISTRAR_CHALLENGE]).expect("answered 401");
    check_answer(
        &third,
        "Proxy-Authorization",
        "proxy",
        "p1",
        Some("00000002"),
    );
    check_answer(&third, "Authorization", "pbx", "r1", None);
    assert!(
        events(&mut s).is_empty(),
        "no failure on the second challenge"
    );
    assert!(challenge(
        &mut s,
        30,
        &third,
        200,
        &[("Contact", "<sip:hotline@203.0.113.5:5060>;expires=120")]
    )
    .is_none());
    assert_eq!(
        events(&mut s),
        vec![SipEvent::Registration {
            registered: true,
            detail: "registered for 120 s".into()
        }]
    );
    // The refresh carries the cached credentials, the counted nonce one step further.
    s.handle_timeout(97_000);
    let refresh = SipMessage::parse(drain(&mut s)[0].as_bytes()).unwrap();
    check_answer(
        &refresh,
        "Proxy-Authorization",
        "proxy",
        "p1",
        Some("00000003"),
    );
    check_answer(&refresh, "Authorization", "pbx", "r1", None);
    assert_eq!(
        refresh.cseq().unwrap().0,
        third.cseq().unwrap().0 + 1,
        "one registration, one CSeq space"
    );
    // The registrar repeats the nonce we answered, not stale: our credentials are refused.
    assert!(challenge(&mut s, 97_010, &refresh, 401, &[REGISTRAR_CHALLENGE]).is_none());
    let ev = events(&mut s);
    assert!(
        matches!(&ev[..], [SipEvent::Registration { registered: false, detail }] if detail.contains("registration.auth_failed") && detail.contains("retry in 5 s")),
        "{ev:?}"
    );
    // The retry starts afresh, without credentials.
    s.handle_timeout(102_020);
    let retry = SipMessage::parse(drain(&mut s)[0].as_bytes()).unwrap();
    assert!(
        retry.header("Authorization").is_none() && retry.header("Proxy-Authorization").is_none()
    );
}

#[test]
fn registration_answers_both_challenges_at_once_and_a_stale_nonce() {
    let mut s = registering("pbx.example");
    s.handle_timeout(0);
    let first = SipMessage::parse(drain(&mut s)[0].as_bytes()).unwrap();
    let second = challenge(
        &mut s,
        10,
        &first,
        407,
        &[PROXY_CHALLENGE, REGISTRAR_CHALLENGE],
    )
    .expect("answered both");
    check_answer(
        &second,
        "Proxy-Authorization",
        "proxy",
        "p1",
        Some("00000001"),
    );
    check_answer(&second, "Authorization", "pbx", "r1", None);
    // The same nonce again, but stale: the password was right, so answer the new round.
    let third = challenge(
        &mut s,
        20,
        &second,
        407,
        &[(
            "Proxy-Authenticate",
            "Digest realm=\"proxy\", nonce=\"p1\", qop=\"auth\", stale=true",
        )],
    )
    .expect("a stale nonce is answered again");
    check_answer(
        &third,
        "Proxy-Authorization",
        "proxy",
        "p1",
        Some("00000001"),
    );
    check_answer(&third, "Authorization", "pbx", "r1", None);
    assert!(events(&mut s).is_empty());
}

#[test]
fn registration_gives_up_on_a_server_that_never_stops_challenging() {
    let mut s = registering("pbx.example");
    s.handle_timeout(0);
    let mut register = SipMessage::parse(drain(&mut s)[0].as_bytes()).unwrap();
    let mut rounds = 0;
    loop {
        let nonce = format!("Digest realm=\"pbx\", nonce=\"n{rounds}\"");
        match challenge(
            &mut s,
            10 + rounds,
            &register,
            401,
            &[("WWW-Authenticate", &nonce)],
        ) {
            Some(next) => register = next,
            None => break,
        }
        rounds += 1;
        assert!(rounds < 10, "no end to the challenges");
    }
    assert_eq!(rounds, MAX_CHALLENGE_ROUNDS as u64);
    let ev = events(&mut s);
    assert!(
        matches!(&ev[..], [SipEvent::Registration { registered: false, detail }] if detail.contains("registration.auth_loop")),
        "{ev:?}"
    );
}

/// An established call "t1" with a transfer asked for; returns our To tag and the REFER.
fn referred(s: &mut SipSession, context: &[(String, String)]) -> (String, SipMessage) {
    let tag = established(s, "t1");
    s.transfer(100, &SipCallId("t1".into()), "2000", context);
    let out = drain(s);
    assert_eq!(out.len(), 1, "{out:?}");
    (tag, SipMessage::parse(out[0].as_bytes()).unwrap())
}

/// The caller's answer to our REFER.
fn answer_refer(s: &mut SipSession, now_ms: u64, refer: &SipMessage, code: u16) {
    let answer = MessageWriter::response(code)
        .echo(refer, None)
        .body(None, b"");
    s.handle_input(now_ms, peer(), &answer);
}

/// A NOTIFY from the caller carrying `sipfrag`.
fn notify(tag: &str, cseq: u32, sipfrag: &str, state: &str) -> Vec<u8> {
    let body = format!("{sipfrag}\r\n");
    let mut message = String::from_utf8(request(
        "NOTIFY",
        "t1",
        cseq,
        Some(tag),
        &format!("z9hG4bK-n{cseq}"),
        &format!(
            "Event: refer\r\nSubscription-State: {state}\r\nContent-Type: message/sipfrag\r\n"
        ),
        "",
    ))
    .unwrap();
    message = message.replace(
        "Content-Length: 0\r\n\r\n",
        &format!("Content-Length: {}\r\n\r\n{body}", body.len()),
    );
    message.into_bytes()
}

#[test]
fn refer_carries_the_target_and_the_context_headers() {
    let mut s = SipSession::new(config(), 1, 0);
    let context = vec![
        (
            "X-Hotline-Call".to_string(),
            "1700000000-sip-udp-1".to_string(),
        ),
        (
            "X-Hotline-Reason".to_string(),
            "caller.asked_for_agent".to_string(),
        ),
        ("X-Evil".to_string(), "a\r\nVia: injected".to_string()),
        ("Bad Name".to_string(), "x".to_string()),
    ];
    let (_, refer) = referred(&mut s, &context);
    assert_eq!(refer.method(), Some("REFER"));
    assert_eq!(refer.header("Refer-To"), Some("<sip:2000@127.0.0.1:5070>"));
    assert_eq!(
        refer.header("Referred-By"),
        Some("<sip:hotline@203.0.113.5:5060>")
    );
    assert_eq!(refer.header("X-Hotline-Call"), Some("1700000000-sip-udp-1"));
    assert_eq!(
        refer.header("X-Hotline-Reason"),
        Some("caller.asked_for_agent")
    );
    // Line breaks are taken out of values, and names that are not tokens are left out.
    assert_eq!(refer.header("X-Evil"), Some("aVia: injected"));
    assert_eq!(refer.headers_named("Via").count(), 1);
    assert!(refer.header("Bad Name").is_none());
    assert!(refer.defect.is_none(), "{:?}", refer.defect);
}

#[test]
fn a_transfer_is_done_when_the_notify_reports_200() {
    let mut s = SipSession::new(config(), 1, 0);
    let (tag, refer) = referred(&mut s, &[]);
    answer_refer(&mut s, 110, &refer, 202);
    assert!(drain(&mut s).is_empty());
    // Progress: still ours.
    s.handle_input(
        120,
        peer(),
        &notify(&tag, 2, "SIP/2.0 100 Trying", "active;expires=60"),
    );
    assert_eq!(codes(&drain(&mut s)), vec![200]);
    assert!(events(&mut s).is_empty());
    s.handle_input(
        130,
        peer(),
        &notify(&tag, 3, "SIP/2.0 200 OK", "terminated;reason=noresource"),
    );
    let out = drain(&mut s);
    assert_eq!(codes(&out), vec![200]);
    assert!(out.iter().any(|m| m.starts_with("BYE ")), "{out:?}");
    let id = SipCallId("t1".into());
    assert_eq!(
        events(&mut s),
        vec![
            SipEvent::TransferDone { id: id.clone() },
            SipEvent::CallEnded {
                id,
                reason: "transfer.done".into()
            }
        ]
    );
    assert_eq!(s.active_calls(), 0);
}

#[test]
fn a_refused_refer_leaves_the_call_up_and_a_new_transfer_can_follow() {
    let mut s = SipSession::new(config(), 1, 0);
    let (_, refer) = referred(&mut s, &[]);
    // A second request while one is pending is not sent.
    s.transfer(105, &SipCallId("t1".into()), "2001", &[]);
    assert!(drain(&mut s).is_empty());
    answer_refer(&mut s, 110, &refer, 603);
    assert_eq!(
        events(&mut s),
        vec![SipEvent::TransferFailed {
            id: SipCallId("t1".into()),
            reason: "transfer.refused.603".into()
        }]
    );
    assert_eq!(s.active_calls(), 1);
    assert!(drain(&mut s).iter().all(|m| !m.starts_with("BYE ")));
    s.transfer(200, &SipCallId("t1".into()), "2001", &[]);
    let again = drain(&mut s);
    assert!(again[0].starts_with("REFER "), "{again:?}");
    assert!(again[0].contains("Refer-To: <sip:2001@127.0.0.1:5070>"));
}

#[test]
fn a_busy_target_reported_by_notify_fails_the_transfer() {
    let mut s = SipSession::new(config(), 1, 0);
    let (tag, refer) = referred(&mut s, &[]);
    answer_refer(&mut s, 110, &refer, 202);
    s.handle_input(
        300,
        peer(),
        &notify(
            &tag,
            2,
            "SIP/2.0 486 Busy Here",
            "terminated;reason=noresource",
        ),
    );
    assert_eq!(codes(&drain(&mut s)), vec![200]);
    assert_eq!(
        events(&mut s),
        vec![SipEvent::TransferFailed {
            id: SipCallId("t1".into()),
            reason: "transfer.failed.486".into()
        }]
    );
    assert_eq!(s.active_calls(), 1);
    // The subscription is over; a late NOTIFY changes nothing.
    s.handle_input(
        310,
        peer(),
        &notify(&tag, 3, "SIP/2.0 503 Service Unavailable", "terminated"),
    );
    assert!(events(&mut s).is_empty());
}

#[test]
fn a_transfer_without_an_answer_or_a_final_notify_times_out() {
    // No answer to the REFER at all: the client transaction gives up.
    let mut s = SipSession::new(config(), 1, 0);
    let _ = referred(&mut s, &[]);
    s.handle_timeout(100 + TIMER_B_MS);
    let ev: Vec<SipEvent> = events(&mut s);
    assert_eq!(
        ev,
        vec![SipEvent::TransferFailed {
            id: SipCallId("t1".into()),
            reason: "transfer.timeout".into()
        }]
    );
    // 202 and progress, then nothing: the transfer counts as not answered.
    let mut s = SipSession::new(config(), 1, 0);
    let (tag, refer) = referred(&mut s, &[]);
    answer_refer(&mut s, 110, &refer, 202);
    s.handle_input(
        120,
        peer(),
        &notify(&tag, 2, "SIP/2.0 180 Ringing", "active"),
    );
    drain(&mut s);
    assert!(s
        .poll_timeout()
        .is_some_and(|t| t <= 100 + TRANSFER_NO_ANSWER_MS));
    s.handle_timeout(100 + TRANSFER_NO_ANSWER_MS);
    assert_eq!(
        events(&mut s),
        vec![SipEvent::TransferFailed {
            id: SipCallId("t1".into()),
            reason: "transfer.no_answer".into()
        }]
    );
    assert_eq!(s.active_calls(), 1);
    // Nothing is left due: the timer does not fire again.
    assert!(s
        .poll_timeout()
        .is_none_or(|t| t > 100 + TRANSFER_NO_ANSWER_MS));
}

/// A late-offer INVITE (no SDP), accepted: returns the 200 with our offer.
fn late_offer_answered(s: &mut SipSession, call_id: &str) -> String {
    s.handle_input(
        0,
        peer(),
        &request("INVITE", call_id, 1, None, "z9hG4bK-late", "", ""),
    );
    let ev = events(s);
    let [SipEvent::IncomingCall(call)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(call.negotiated, None, "nothing agreed before the answer");
    s.accept(0, &call.id, 7000);
    let out = drain(s);
    assert_eq!(codes(&out), vec![100, 180, 200]);
    out[2].clone()
}

/// The ACK to our 200, carrying `answer` (empty: no body).
fn ack_with(call_id: &str, tag: &str, answer: &str) -> Vec<u8> {
    request("ACK", call_id, 1, Some(tag), "z9hG4bK-ack", "", answer)
}

#[test]
fn a_late_offer_gets_our_offer_in_the_200_and_the_ack_answer_starts_the_call() {
    let mut s = SipSession::new(config(), 1, 0);
    let ok = late_offer_answered(&mut s, "late1");
    assert!(ok.contains("Content-Type: application/sdp"), "{ok}");
    assert!(ok.contains("m=audio 7000 RTP/AVP 0 8 101\r\n"), "{ok}");
    assert!(ok.contains("a=rtpmap:101 telephone-event/8000\r\n"), "{ok}");
    assert!(ok.contains("a=sendrecv\r\n") && ok.contains("a=ptime:20\r\n"));
    assert!(events(&mut s).is_empty(), "no media before the answer");
    let tag = to_tag(&ok);
    let answer = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                  m=audio 6100 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    s.handle_input(20, peer(), &ack_with("late1", &tag, answer));
    let ev = events(&mut s);
    let [SipEvent::Connected {
        id,
        negotiated: Some(negotiated),
    }] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(id.0, "late1");
    assert_eq!(
        (
            negotiated.codec,
            negotiated.payload_type,
            negotiated.remote_port
        ),
        (Codec::Pcma, 8, 6100)
    );
    assert_eq!(negotiated.telephone_event_pt, Some(101));
    // The 200 is no longer retransmitted and the call is up.
    s.handle_timeout(600);
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.active_calls(), 1);
    // A later re-INVITE without SDP gets the agreed codec as our offer, not the full list.
    s.handle_input(
        1000,
        peer(),
        &request("INVITE", "late1", 2, Some(&tag), "z9hG4bK-re", "", ""),
    );
    let out = drain(&mut s);
    assert!(
        out[0].contains("m=audio 7000 RTP/AVP 8 101\r\n"),
        "{}",
        out[0]
    );
}

#[test]
fn a_late_offer_ack_without_sdp_ends_the_call_with_bye() {
    let mut s = SipSession::new(config(), 1, 0);
    let ok = late_offer_answered(&mut s, "late2");
    let tag = to_tag(&ok);
    s.handle_input(20, peer(), &ack_with("late2", &tag, ""));
    let out = drain(&mut s);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].starts_with("BYE "), "{}", out[0]);
    assert!(out[0].contains("sdp.no_answer_in_ack"), "{}", out[0]);
    assert_eq!(
        events(&mut s),
        vec![
            SipEvent::Connected {
                id: SipCallId("late2".into()),
                negotiated: None
            },
            SipEvent::CallEnded {
                id: SipCallId("late2".into()),
                reason: "sdp.no_answer_in_ack".into()
            }
        ]
    );
    assert_eq!(s.active_calls(), 0);
}

#[test]
fn a_late_offer_answered_with_a_codec_we_did_not_offer_ends_with_bye() {
    // We offer PCMU and PCMA; G.722 and garbage are not answers to that.
    for (call_id, answer) in [
        (
            "late3",
            "v=0\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6100 RTP/AVP 9\r\n",
        ),
        ("late4", "v=0\r\nthis is not sdp\r\n"),
        (
            "late5",
            "v=0\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n",
        ),
    ] {
        let mut s = SipSession::new(config(), 1, 0);
        let ok = late_offer_answered(&mut s, call_id);
        let tag = to_tag(&ok);
        s.handle_input(20, peer(), &ack_with(call_id, &tag, answer));
        let out = drain(&mut s);
        assert!(
            out.len() == 1 && out[0].starts_with("BYE "),
            "{answer}: {out:?}"
        );
        let ev = events(&mut s);
        assert!(
            matches!(&ev[..], [SipEvent::Connected { negotiated: None, .. }, SipEvent::CallEnded { reason, .. }] if reason == "sdp.no_answer_in_ack"),
            "{answer}: {ev:?}"
        );
    }
}

#[test]
fn our_rtcp_port_is_advertised_when_it_is_not_rtp_plus_one() {
    let mut s = SipSession::new(config(), 1, 0);
    s.handle_input(0, peer(), &invite("r1"));
    events(&mut s);
    s.accept(
        0,
        &SipCallId("r1".into()),
        MediaPorts {
            rtp: 7000,
            rtcp: 41234,
        },
    );
    let ok = drain(&mut s).pop().unwrap();
    assert!(ok.contains("m=audio 7000 "), "{ok}");
    assert!(ok.contains("a=rtcp:41234\r\n"), "{ok}");
    // The same for the offer of a late-offer call.
    s.handle_input(
        0,
        peer(),
        &request("INVITE", "r2", 1, None, "z9hG4bK-r2", "", ""),
    );
    events(&mut s);
    s.accept(
        0,
        &SipCallId("r2".into()),
        MediaPorts {
            rtp: 7002,
            rtcp: 41236,
        },
    );
    let ok = drain(&mut s).pop().unwrap();
    assert!(ok.contains("a=rtcp:41236\r\n"), "{ok}");
    // The usual pair needs no attribute.
    s.handle_input(0, peer(), &invite("r3"));
    events(&mut s);
    s.accept(0, &SipCallId("r3".into()), 7004);
    let ok = drain(&mut s).pop().unwrap();
    assert!(!ok.contains("a=rtcp"), "{ok}");
}

#[test]
fn an_ack_connects_a_call_once_and_a_reinvite_does_not_reconnect_it() {
    let mut s = SipSession::new(config(), 1, 0);
    s.handle_input(0, peer(), &invite("c1"));
    assert!(matches!(&events(&mut s)[..], [SipEvent::IncomingCall(_)]));
    s.accept(0, &SipCallId("c1".into()), 7000);
    assert_eq!(s.half_open_calls(), 1, "answered, not yet acknowledged");
    let tag = to_tag(&drain(&mut s).pop().unwrap());
    s.handle_input(10, peer(), &ack_with("c1", &tag, ""));
    let ev = events(&mut s);
    assert!(
        matches!(&ev[..], [SipEvent::Connected { negotiated: Some(n), .. }] if n.codec == Codec::Pcmu),
        "{ev:?}"
    );
    assert_eq!(s.half_open_calls(), 0);
    // A re-INVITE and its ACK change the media, and connect nothing again.
    s.handle_input(
        1000,
        peer(),
        &request("INVITE", "c1", 2, Some(&tag), "z9hG4bK-re", "", SDP),
    );
    assert_eq!(s.half_open_calls(), 0, "a re-INVITE is not half-open");
    drain(&mut s);
    s.handle_input(
        1010,
        peer(),
        &request("ACK", "c1", 2, Some(&tag), "z9hG4bK-reack", "", ""),
    );
    let ev = events(&mut s);
    assert!(
        !ev.iter().any(|e| matches!(e, SipEvent::Connected { .. })),
        "{ev:?}"
    );
}

/// An INVITE from `ip`, with its own Call-ID.
fn invite_from(call_id: &str, ip: &str) -> (Peer, Vec<u8>) {
    let peer = Peer {
        transport: TransportKind::Udp,
        addr: format!("{ip}:5070").parse().unwrap(),
        connection: None,
    };
    (peer, invite(call_id))
}

#[test]
fn unacknowledged_calls_time_out_early_and_the_oldest_makes_room_for_a_new_one() {
    let mut s = SipSession::new(
        EndpointConfig {
            max_half_open: 3,
            ack_timeout_ms: 4_000,
            ..config()
        },
        1,
        0,
    );
    // Three calls from three sources that never ACK fill the half-open places.
    for (i, ip) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().enumerate() {
        let (peer, data) = invite_from(&format!("junk{i}"), ip);
        s.handle_input(i as u64, peer, &data);
        s.accept(
            i as u64,
            &SipCallId(format!("junk{i}")),
            7000 + 2 * i as u16,
        );
    }
    events(&mut s);
    drain(&mut s);
    assert_eq!(s.half_open_calls(), 3);
    // A fourth pushes out the oldest, which ends with nothing sent to its source.
    let (real, data) = invite_from("real", "198.51.100.7");
    s.handle_input(100, real, &data);
    let out = s.poll_transmit();
    assert!(
        out.is_some_and(|t| t.peer == real),
        "the new caller is answered"
    );
    assert!(drain(&mut s).iter().all(|m| !m.starts_with("BYE ")));
    let ev = events(&mut s);
    assert!(
        ev.contains(&SipEvent::CallEnded {
            id: SipCallId("junk0".into()),
            reason: "sip.half_open_evicted".into()
        }),
        "{ev:?}"
    );
    assert_eq!(s.half_open_calls(), 3);
    // The others are dropped after the ACK timeout, not Timer B's 32 s.
    s.accept(100, &SipCallId("real".into()), 7010);
    let mut t = 100;
    while t < 4_050 {
        t += 50;
        s.handle_timeout(t);
    }
    let ev = events(&mut s);
    let timed_out: Vec<_> = ev
        .iter()
        .filter(|e| matches!(e, SipEvent::CallEnded { reason, .. } if reason == "sip.no_ack"))
        .collect();
    assert_eq!(timed_out.len(), 2, "{ev:?}");
    assert_eq!(s.half_open_calls(), 1, "the newest still waits for its ACK");
}

#[test]
fn an_invite_flood_blocks_its_source_and_the_block_ends() {
    let mut s = SipSession::new(
        EndpointConfig {
            limits: SourceLimits {
                calls_per_s: 5.0,
                call_burst: 5.0,
                block_ms: 10_000,
                ..SourceLimits::default()
            },
            ..config()
        },
        1,
        0,
    );
    let flooder = "192.0.2.66";
    let mut answered = 0;
    for i in 0..200u64 {
        let (peer, data) = invite_from(&format!("flood{i}"), flooder);
        s.handle_input(i, peer, &data);
        answered += drain(&mut s).len();
    }
    assert_eq!(answered, 5, "only the burst was answered (100 Trying each)");
    let ev = events(&mut s);
    let blocks: Vec<_> = ev
        .iter()
        .filter(|e| matches!(e, SipEvent::SourceBlocked { .. }))
        .collect();
    assert_eq!(blocks.len(), 1, "one block, reported once: {ev:?}");
    assert_eq!(s.blocked_sources(), 1);
    // Another source calls meanwhile.
    let (other, data) = invite_from("real", "198.51.100.7");
    s.handle_input(300, other, &data);
    assert!(matches!(&events(&mut s)[..], [SipEvent::IncomingCall(_)]));
    assert!(drain(&mut s)[0].starts_with("SIP/2.0 100"));
    // While blocked, even an OPTIONS gets nothing.
    let options = request("OPTIONS", "o1", 1, None, "z9hG4bK-o1", "", "");
    let (peer, _) = invite_from("x", flooder);
    s.handle_input(5_000, peer, &options);
    assert!(drain(&mut s).is_empty());
    // The block ends on the clock, with the count of what was dropped.
    s.handle_timeout(10_005);
    let ev = events(&mut s);
    assert!(
        ev.contains(&SipEvent::SourceUnblocked {
            ip: flooder.parse().unwrap(),
            dropped: 195
        }),
        "{ev:?}"
    );
    s.handle_input(10_010, peer, &options);
    assert!(drain(&mut s)[0].starts_with("SIP/2.0 200"));
}
