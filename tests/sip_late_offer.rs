//! Late offer end to end (RFC 3261 13.2.1, RFC 3264): a caller's INVITE without SDP gets
//! hotline's offer in the 200, and the answer in the ACK decides the codec. SIPp answers with
//! PCMU and plays a recorded caller; the record says PCMU, the caller hears the bot through the
//! NAT relay (as in `sip_calls.rs`), and the record ends with the line's media counters
//! (`call_end`). An ACK without an answer gets a BYE and a record that says why.
//!
//! SIPp's pcap player writes through a raw socket, so the SIPp test needs root (CI runs as root).

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::hotline::InProcessHotline;
use common::pcap::{support_request_pcap, PT_PCMU};
use common::ports::RtpPorts;
use common::records::{first, of_type, read_events};
use common::relay::MediaRelay;
use common::sipp::Sipp;

/// hotline's public address, where the relay listens.
const PUBLIC_IP: &str = "127.0.0.3";

/// Waits until the only call record holds `kind`, and returns its events.
async fn record_with(hotline: &InProcessHotline, kind: &str, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let dirs = hotline.call_dirs();
        if let [dir] = &dirs[..] {
            if let Some(events) = read_events(&dir.join("events.jsonl")) {
                if events.iter().any(|e| e["type"] == kind) {
                    return events;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no call record with `{kind}` within {within:?}: {dirs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_offer_answered_with_pcmu_in_the_ack_is_a_pcmu_call() {
    let work = tempfile::tempdir().expect("tempdir");
    let pcap = support_request_pcap(work.path(), PT_PCMU);
    let rtp = RtpPorts::free(2);
    let relay = MediaRelay::start(PUBLIC_IP, &rtp);
    // The default codec list (wideband first): the offer lists them all, the caller picks PCMU.
    let hotline = InProcessHotline::start(
        2,
        &format!("port = 0\npublic_ip = \"{PUBLIC_IP}\"\n{}\n", rtp.toml()),
    )
    .await;
    let sipp = Sipp::scenario("uac_late_offer.xml")
        .remote(hotline.sip_addr())
        .media()
        .key("service", "support")
        .key("pcap", pcap.display());
    tokio::task::spawn_blocking(move || {
        let work = tempfile::tempdir().expect("tempdir");
        sipp.run_ok(work.path())
    })
    .await
    .expect("join");

    let events = record_with(&hotline, "call_end", Duration::from_secs(20)).await;
    let start = first(&events, "call_start");
    assert_eq!(start["codec"], "PCMU", "the ACK's answer chose: {start}");
    assert_eq!(start["transport"], "sip-udp", "{start}");
    let hangup = first(&events, "hangup");
    assert_eq!(hangup["reason"], "caller.hangup", "{hangup}");
    assert!(
        relay.caller_packets() > 100,
        "the caller's RTP reached hotline's offered address"
    );
    let loud = relay.loud_hotline_packets(300.0);
    assert!(loud > 25, "the caller heard the bot ({loud} loud packets)");
    let end = first(&events, "call_end");
    let media = &end["media"];
    let packets_in = media["packets_in"].as_u64().unwrap_or(0);
    assert!(
        packets_in > 100 && packets_in as usize <= relay.caller_packets(),
        "hotline counted the caller's packets the relay passed on: {end}"
    );
    assert!(
        media["packets_out"].as_u64().unwrap_or(0) >= loud as u64,
        "hotline counted what it sent: {end}"
    );
    assert_eq!(media["lost"], 0, "nothing is lost on loopback: {end}");
}

/// One SIP request from a bare UDP socket.
fn request(sip: &UdpSocket, hotline: &str, method: &str, to_tag: &str, cseq: u32) -> String {
    let port = sip.local_addr().expect("addr").port();
    let to_tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    format!(
        "{method} sip:support@{hotline} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{method}-{cseq}\r\n\
         From: <sip:caller@127.0.0.1:{port}>;tag=late\r\nTo: <sip:support@{hotline}>{to_tag}\r\n\
         Call-ID: late-offer-no-answer\r\nCSeq: {cseq} {method}\r\nContact: <sip:caller@127.0.0.1:{port}>\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Reads SIP messages until one starts with `prefix`.
fn receive(sip: &UdpSocket, prefix: &str) -> String {
    let mut buffer = vec![0u8; 65_536];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(len) = sip.recv(&mut buffer) {
            let text = String::from_utf8_lossy(&buffer[..len]).to_string();
            if text.starts_with(prefix) {
                return text;
            }
        }
    }
    panic!("no `{prefix}` from hotline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_without_an_answer_gets_a_bye_and_a_record_that_says_why() {
    let hotline =
        InProcessHotline::start(2, "port = 0\nrtp_port_min = 0\nrtp_port_max = 0\n").await;
    let address = hotline.sip_addr();
    let bye = tokio::task::spawn_blocking(move || {
        let sip = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sip.connect(&address).expect("connect");
        sip.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        sip.send(request(&sip, &address, "INVITE", "", 1).as_bytes())
            .expect("send INVITE");
        let ok = receive(&sip, "SIP/2.0 200");
        assert!(ok.contains("m=audio "), "the 200 carries our offer: {ok}");
        assert!(
            ok.contains("a=rtcp:"),
            "random RTP and RTCP ports: the offer names the RTCP port: {ok}"
        );
        let tag = ok
            .lines()
            .find(|l| l.starts_with("To:"))
            .and_then(|l| l.split(";tag=").nth(1))
            .expect("To tag")
            .trim()
            .to_string();
        sip.send(request(&sip, &address, "ACK", &tag, 1).as_bytes())
            .expect("send ACK");
        let bye = receive(&sip, "BYE ");
        let via = bye
            .lines()
            .find(|l| l.starts_with("Via:"))
            .expect("Via")
            .to_string();
        let answer = format!(
            "SIP/2.0 200 OK\r\n{via}\r\nFrom: <sip:hotline>\r\nTo: <sip:caller>\r\n\
             Call-ID: late-offer-no-answer\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = sip.send(answer.as_bytes());
        bye
    })
    .await
    .expect("join");
    assert!(bye.contains("sdp.no_answer_in_ack"), "{bye}");
    let events = record_with(&hotline, "hangup", Duration::from_secs(10)).await;
    let hangup = first(&events, "hangup");
    assert_eq!(hangup["reason"], "sdp.no_answer_in_ack", "{events:?}");
    assert!(
        of_type(&events, "call_end").is_empty(),
        "no media, no counters"
    );
}
