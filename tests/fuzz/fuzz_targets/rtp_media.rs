//! A call's media session: RTP and RTCP from the network (split at "\0\0\0"), with DTMF events,
//! decoded on the 20 ms tick, for each codec. Covers RTP/RTCP parsing, the jitter buffer and
//! the decoders with their concealment.
#![no_main]

use hotline_sip::media::MediaSession;
use hotline_sip::rtp::Ssrc;
use hotline_sip::sdp::{Codec, Direction, Negotiated, RtcpTarget};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, data)) = data.split_first() else {
        return;
    };
    let codec = [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus][usize::from(selector % 4)];
    let negotiated = Negotiated {
        codec,
        payload_type: hotline_sip::sdp::offer_payload_type(codec),
        telephone_event_pt: Some(101),
        direction: Direction::SendRecv,
        remote_ip: "192.0.2.1".parse().expect("ip"),
        remote_port: 6000,
        rtcp: RtcpTarget::NextPort,
        srtp: None,
    };
    let Ok(mut media) = MediaSession::new(negotiated, Ssrc(1), 1, 1, 60_000, 0) else {
        return;
    };
    let from = "192.0.2.1:6000".parse().expect("addr");
    let mut now = 0u64;
    for packet in data.split(|b| *b == 0xff).filter(|p| !p.is_empty()) {
        if packet[0] & 1 == 0 {
            media.handle_rtp(from, packet, now);
        } else {
            media.handle_rtcp(packet, now);
        }
        now += 20;
        let _ = media.tick(now);
        let _ = media.poll_rtcp(now, 0);
        while media.poll_event().is_some() {}
    }
});
