//! SDP offer/answer: parse an offer, negotiate it, and read it as an answer to our offer.
#![no_main]

use hotline_sip::sdp::{self, Codec, LocalSdp, MediaPorts, SessionDescription};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(description) = SessionDescription::parse(data) else {
        return;
    };
    let ours = [Codec::G722, Codec::Opus, Codec::Pcmu, Codec::Pcma];
    if let Ok(negotiated) = sdp::negotiate(&description, &ours) {
        let local = LocalSdp {
            ip: "203.0.113.5".parse().expect("ip"),
            ports: MediaPorts::pair(7000),
            session_id: 1,
            session_version: 1,
        };
        let _ = sdp::write_answer(&negotiated, &local);
    }
    let _ = sdp::accept_answer(&description, &ours);
});
