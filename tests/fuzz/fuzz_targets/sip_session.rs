//! The SIP user agent: a run of datagrams (split at "\0\0") from two sources, with the clock
//! moving between them, answered and hung up as the application would. Must never panic.
#![no_main]

use hotline_sip::dialog::{EndpointConfig, Peer, SipEvent, SipSession, SrtpPolicy, TransportKind};
use hotline_sip::flood::SourceLimits;
use hotline_sip::sdp::Codec;
use libfuzzer_sys::fuzz_target;

fn config() -> EndpointConfig {
    EndpointConfig {
        advertised_ip: "203.0.113.5".parse().expect("ip"),
        sip_port: 5060,
        tls_port: None,
        user_agent: "fuzz".into(),
        codecs: vec![Codec::G722, Codec::Opus, Codec::Pcmu, Codec::Pcma],
        allow_from: vec![],
        inbound_auth: None,
        session_expires_s: 1800,
        answer_delay_ms: 0,
        registration: None,
        limits: SourceLimits::default(),
        max_half_open: 8,
        ack_timeout_ms: 4_000,
        srtp: SrtpPolicy::Optional,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut session = SipSession::new(config(), 7, 0);
    let mut now = 0u64;
    for (i, datagram) in data
        .split(|b| *b == 0)
        .filter(|d| !d.is_empty())
        .enumerate()
    {
        let peer = Peer {
            transport: if i % 3 == 2 {
                TransportKind::Tcp
            } else {
                TransportKind::Udp
            },
            addr: if i % 2 == 0 {
                "192.0.2.1:5070"
            } else {
                "198.51.100.2:5062"
            }
            .parse()
            .expect("addr"),
            connection: (i % 3 == 2).then_some(1),
        };
        session.handle_input(now, peer, datagram);
        now += u64::from(datagram[0]) * 50;
        session.handle_timeout(now);
        while let Some(event) = session.poll_event() {
            match event {
                SipEvent::IncomingCall(call) if call.id.0.len() % 2 == 0 => {
                    session.accept(now, &call.id, 7000)
                }
                SipEvent::IncomingCall(call) => session.reject(now, &call.id, 486, Some(30)),
                SipEvent::Connected { id, .. } if id.0.len() % 3 == 0 => {
                    session.transfer(now, &id, "sip:agent@192.0.2.9", &[]);
                }
                SipEvent::Connected { id, .. } => session.hangup(now, &id, "fuzz"),
                _ => {}
            }
        }
        while session.poll_transmit().is_some() {}
    }
});
