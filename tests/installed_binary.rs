//! A release runs outside the build tree. A copy of the `hotline` binary, in a folder of its
//! own, started in an empty working directory with a fresh `HOME` (no `assets/`, no espeak-ng
//! build output, nothing pointing at the checkout), answers a SIPp caller: it recognises what
//! the caller says and the caller hears the bot speak, through the NAT relay of `sip_calls.rs`.
//! The flows, prompts and espeak-ng data come out of the binary itself, and espeak-ng's note
//! about the Mandarin dictionary does not reach the log.
//!
//! SIPp's pcap player writes through a raw socket, so this test needs root (CI runs as root).

mod common;

use std::time::Duration;

use common::hotline::Hotline;
use common::pcap::{support_request_pcap, PT_PCMU};
use common::ports::RtpPorts;
use common::records::{final_transcripts, first, of_type};
use common::relay::MediaRelay;
use common::sipp::support_caller;

const PUBLIC_IP: &str = "127.0.0.3";

#[test]
fn a_copy_of_the_binary_in_an_empty_folder_answers_a_call_with_speech() {
    let rtp = RtpPorts::free(2);
    let relay = MediaRelay::start(PUBLIC_IP, &rtp);
    let hotline = Hotline::start_installed(&format!(
        "port = 0\npublic_ip = \"{PUBLIC_IP}\"\ncodecs = [\"PCMU\"]\n{}",
        rtp.toml()
    ));
    let work = tempfile::tempdir().expect("tempdir");
    let pcap = support_request_pcap(work.path(), PT_PCMU);
    support_caller(hotline.sip_addr(), &pcap).run_ok(work.path());
    let events = hotline.one_call(Duration::from_secs(20));
    let log = hotline.log_text();
    assert!(
        log.contains("espeak-ng ready") && log.contains("/hotline/espeak-ng-"),
        "espeak-ng speaks with the built-in data:\n{log}"
    );
    assert!(
        !log.contains("Full dictionary is not installed"),
        "espeak-ng's dictionary note stays out of the log:\n{log}"
    );
    let start = first(&events, "call_start");
    assert_eq!(start["codec"], "PCMU", "{start}");
    assert!(
        !of_type(&events, "bot_reply").is_empty(),
        "the built-in dialogue answered: {events:#?}"
    );
    let finals = final_transcripts(&events);
    assert!(
        finals.iter().any(|t| t.contains("support")),
        "the caller's speech was recognized: {finals:?}"
    );
    assert!(
        !of_type(&events, "bot_audio_start").is_empty(),
        "the bot spoke: {events:#?}"
    );
    let loud = relay.loud_hotline_packets(300.0);
    assert!(loud > 25, "the caller heard the bot ({loud} loud packets)");
}
