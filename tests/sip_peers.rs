//! `hotline serve` against real SIP peers on loopback: trunk registration with digest
//! authentication against a SIPp registrar (`sip/scenarios/registrar.xml`, 401) and one behind
//! an authenticating proxy (`sip/scenarios/proxy_registrar.xml`, 407), and a call from baresip
//! (Debian `baresip-core`) that carries audio both ways.
//!
//! baresip also exchanges RTCP with hotline through a NAT relay, and reports what it made of
//! hotline's sender reports.
//!
//! Each test runs the `hotline` binary with its own config file and free ports, and stops it with
//! SIGINT as an operator would. The calls take turns (`common::alone`): two recognising at once
//! on two cores garble the words they check.

mod common;

use std::time::Duration;

use common::baresip::{g711_source_wav, BaresipCall};
use common::hotline::Hotline;
use common::ports::RtpPorts;
use common::records::{final_transcripts, first, loud_frames};
use common::relay::MediaRelay;
use common::shared::shared;
use common::sipp::{registration_config, Sipp, SippRun};

/// A SIPp registrar (`registrar.xml`) for user 1001 with password s3cret, granting 120 s.
fn registrar(work: &std::path::Path) -> SippRun {
    Sipp::scenario("registrar.xml")
        .timeout_s(30)
        .key("username", "1001")
        .key("password", "s3cret")
        .key("expires", "120")
        .spawn(work)
}

/// hotline registers to a SIPp registrar that challenges with 401: SIPp verifies the digest
/// (exit 0 only then), and hotline takes the granted expiry from the 200 OK.
#[test]
fn registers_with_digest_auth_to_a_sipp_registrar() {
    let work = tempfile::tempdir().expect("tempdir");
    let registrar = registrar(work.path());
    let mut hotline = Hotline::start(&registration_config(registrar.local_port, "s3cret"));
    let outcome = registrar.wait(Duration::from_secs(40));
    assert!(
        outcome.success,
        "the registrar saw a correctly authenticated REGISTER:\n{}\n{}",
        outcome.screen,
        hotline.log_text()
    );
    hotline.wait_for_log(
        &["trunk registration", "registered for 120 s"],
        Duration::from_secs(10),
    );
    assert!(hotline.call_dirs().is_empty(), "registration makes no call");
}

/// With the wrong password the registrar refuses (and the scenario fails); hotline reports the
/// refusal and backs off instead of hammering the registrar.
#[test]
fn a_refused_registration_is_reported_and_retried_later() {
    let work = tempfile::tempdir().expect("tempdir");
    let registrar = registrar(work.path());
    let mut hotline = Hotline::start(&registration_config(registrar.local_port, "wrong"));
    let outcome = registrar.wait(Duration::from_secs(40));
    assert!(
        !outcome.success,
        "a wrong password must not register:\n{}",
        outcome.screen
    );
    let line = hotline.wait_for_log(
        &["trunk registration", "registration.refused.403"],
        Duration::from_secs(10),
    );
    assert!(line.contains("retry in 5 s"), "{line}");
}

/// A proxy in front of the registrar challenges with 407: hotline answers in
/// Proxy-Authorization (SIPp fails the scenario otherwise) and registers.
#[test]
fn answers_a_proxy_challenge_with_proxy_authorization() {
    let work = tempfile::tempdir().expect("tempdir");
    let registrar = Sipp::scenario("proxy_registrar.xml")
        .timeout_s(30)
        .key("expires", "90")
        .spawn(work.path());
    let mut hotline = Hotline::start(&registration_config(registrar.local_port, "s3cret"));
    let outcome = registrar.wait(Duration::from_secs(40));
    assert!(
        outcome.success,
        "the proxy saw its challenge answered:\n{}\n{}",
        outcome.screen,
        hotline.log_text()
    );
    hotline.wait_for_log(
        &["trunk registration", "registered for 90 s"],
        Duration::from_secs(10),
    );
}

/// baresip (a real softphone) calls `hotline serve` over UDP with PCMU. Its audio source plays
/// the recorded caller (converted with sox to the 8 kHz mono 16-bit WAV that baresip's aufile
/// needs); its sndfile filter writes what it sent and what it received. hotline recognises the
/// caller, sends its greeting, and baresip hears it. The call ends when the file does (or when
/// the bot hands the caller over); baresip quits after 25 s at the latest.
#[test]
fn a_baresip_call_is_answered_and_carries_audio_both_ways() {
    let _turn = common::alone();
    let work = tempfile::tempdir().expect("tempdir");
    let caller_wav = work.path().join("caller.wav");
    // One second of silence before the caller speaks, twelve after (time to answer).
    g711_source_wav(
        &shared("audio/telephone/speak-to-customer-support_mulaw8k.wav"),
        &caller_wav,
        1,
        12,
    );
    let hotline = Hotline::start(&format!(
        "port = 0\n{}codecs = [\"PCMU\"]\n",
        RtpPorts::free(5).toml()
    ));
    let baresip = BaresipCall {
        target: format!("sip:bot@{}", hotline.sip_addr()),
        source_wav: &caller_wav,
        codecs: "PCMU",
        extra_modules: &[],
        quit_after_s: 25,
        tls_ca: None,
        account_params: "",
    }
    .run(work.path());
    baresip.assert_established(&hotline.log_text());

    let events = hotline.one_call(Duration::from_secs(20));
    let start = first(&events, "call_start");
    assert_eq!(
        (&start["transport"], &start["codec"]),
        (&serde_json::json!("sip-udp"), &serde_json::json!("PCMU")),
        "{start}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "bot_audio_start" && e["turn"] == 0),
        "the greeting was sent: {events:#?}"
    );
    let finals = final_transcripts(&events);
    assert!(
        finals.iter().any(|t| t.contains("support")),
        "the caller's speech was recognised: {finals:?}\n{events:#?}"
    );

    let sent = loud_frames(&baresip.dump("-enc.wav"), 300.0);
    let heard = loud_frames(&baresip.dump("-dec.wav"), 300.0);
    assert!(sent > 50, "baresip sent the caller ({sent} loud frames)");
    assert!(heard > 25, "baresip heard the bot ({heard} loud frames)");
}

/// SIPp's standard caller over TCP (`-t t1`: one connection): INVITE, 200 OK, ACK, two seconds
/// of call, BYE, 200 OK, all on the one connection. The record says `sip-tcp` and that the caller
/// hung up.
#[test]
fn a_sipp_call_over_tcp_is_answered_and_hung_up() {
    let _turn = common::alone();
    let work = tempfile::tempdir().expect("tempdir");
    let hotline = Hotline::start(&format!("port = 0\n{}", RtpPorts::free(2).toml()));
    let outcome = Sipp::builtin("uac")
        .remote(hotline.sip_addr())
        .timeout_s(30)
        .tcp()
        .key("service", "support")
        .arg("-d")
        .arg("2000")
        .spawn(work.path())
        .wait(Duration::from_secs(40));
    assert!(
        outcome.success,
        "the TCP call completed:\n{}\n{}",
        outcome.screen,
        hotline.log_text()
    );
    let events = hotline.one_call(Duration::from_secs(20));
    let start = first(&events, "call_start");
    assert_eq!(start["transport"], "sip-tcp", "{start}");
    let hangup = first(&events, "hangup");
    assert_eq!(hangup["reason"], "caller.hangup", "{hangup}");
}

/// RTCP both ways with a real softphone. baresip calls `hotline serve` through the NAT relay
/// (hotline advertises 127.0.0.3, where the relay forwards RTP and RTCP) for about 12 s, playing
/// a quiet tone so the bot has nothing to act on. baresip's `rtcpsummary` module prints its
/// RTCP statistics at the end of the call, which it only has once it accepted a sender report
/// from hotline; its packet count and our report blocks show there. At the relay: hotline sent
/// sender reports with a report block about baresip's stream, and baresip's own reports went
/// to hotline's RTCP port in a form hotline counts (`MediaStats::rtcp_received` counts every
/// datagram whose `read_rtcp` summary is not empty).
#[test]
fn rtcp_reports_are_exchanged_with_baresip() {
    let _turn = common::alone();
    let work = tempfile::tempdir().expect("tempdir");
    let tone = work.path().join("tone.wav");
    let sox = std::process::Command::new("sox")
        .args([
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
        ])
        .arg(&tone)
        .args(["synth", "12", "sine", "440", "vol", "0.05"])
        .status()
        .expect("run sox (Debian package sox)");
    assert!(sox.success(), "sox makes the tone");
    let rtp = RtpPorts::free(5);
    let mut relay = MediaRelay::start("127.0.0.3", &rtp);
    let hotline = Hotline::start(&format!(
        "port = 0\npublic_ip = \"127.0.0.3\"\n{}codecs = [\"PCMU\"]\n",
        rtp.toml()
    ));
    // baresip follows hotline's Contact (the public address) for its ACK: SIP goes through the
    // NAT too, or the call never connects.
    relay.forward_sip("127.0.0.3", hotline.sip_port);
    let baresip = BaresipCall {
        target: format!("sip:bot@{}", hotline.sip_addr()),
        source_wav: &tone,
        codecs: "PCMU",
        extra_modules: &["rtcpsummary.so"],
        quit_after_s: 16,
        tls_ca: None,
        account_params: "",
    }
    .run(work.path());
    baresip.assert_established(&hotline.log_text());

    // baresip's view: the summary line exists only once it has taken a sender report from us.
    let summary = baresip
        .screen
        .lines()
        .find(|l| l.contains("EX=BareSip;"))
        .unwrap_or_else(|| panic!("baresip printed no RTCP summary:\n{}", baresip.screen));
    println!("baresip's RTCP summary: {summary}");
    assert!(
        !summary.contains("ERROR"),
        "baresip collected RTCP statistics from hotline's reports: {summary}"
    );
    let field = |name: &str| -> String {
        summary
            .split(';')
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= in {summary}"))
            .to_string()
    };
    let received: u64 = field("PR").parse().expect("PR is a count");
    assert!(
        received > 200,
        "baresip counted hotline's packets: {summary}"
    );
    assert!(
        field("JI").split(',').all(|j| j.parse::<f64>().is_ok()),
        "{summary}"
    );

    // The relay's view of hotline's reports.
    let ours: Vec<_> = relay
        .rtcp(true)
        .iter()
        .map(|d| hotline_sip::rtp::read_rtcp(d))
        .collect();
    assert!(
        ours.iter()
            .any(|r| r.sender_report_ntp_middle.is_some() && r.report_blocks >= 1),
        "hotline sent a sender report with a report block on baresip's stream: {ours:?}"
    );
    // Nothing is lost on loopback: hotline's report blocks on baresip's stream say so, and so
    // does baresip's summary, which takes its TX loss from them.
    let lost: Vec<i32> = relay
        .rtcp(true)
        .iter()
        .filter_map(|d| report_block_cumulative_lost(d))
        .collect();
    assert!(!lost.is_empty(), "hotline's reports carry report blocks");
    assert!(
        lost.iter().all(|&n| (0..50).contains(&n)),
        "hotline reports baresip's packets as lost on loopback (cumulative lost per report: \
         {lost:?}; baresip: {summary})"
    );
    let tx_lost: i64 = field("PL")
        .split(',')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("PL=rx,tx");
    assert!(
        tx_lost < 50,
        "baresip read no loss from hotline's reports: {summary}"
    );

    // And of baresip's: each sender or receiver report is one hotline counts. (baresip also
    // sends APP packets, "PINGPONG", which are no report.)
    let reports: Vec<Vec<u8>> = relay
        .rtcp(false)
        .into_iter()
        .filter(|d| d.len() >= 8 && (d[1] == 200 || d[1] == 201))
        .collect();
    assert!(!reports.is_empty(), "baresip sent RTCP reports to hotline");
    for datagram in &reports {
        let summary = hotline_sip::rtp::read_rtcp(datagram);
        assert_ne!(
            summary,
            hotline_sip::rtp::RtcpSummary::default(),
            "hotline counts baresip's report {datagram:02x?}"
        );
    }
    let events = hotline.one_call(Duration::from_secs(20));
    assert_eq!(first(&events, "call_start")["codec"], "PCMU");
    // hotline's own count, in the record's media counters (written just after the hang-up).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let end = loop {
        let events: Vec<serde_json::Value> = hotline
            .call_dirs()
            .iter()
            .filter_map(|dir| common::records::read_events(&dir.join("events.jsonl")))
            .flatten()
            .collect();
        if let Some(end) = events.into_iter().find(|e| e["type"] == "call_end") {
            break end;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the record ends with call_end:\n{}",
            hotline.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let rtcp_in = end["media"]["rtcp_in"].as_u64().unwrap_or(0);
    assert!(
        rtcp_in > 0 && rtcp_in as usize <= relay.rtcp(false).len(),
        "hotline counted baresip's RTCP ({} datagrams relayed): {end}",
        relay.rtcp(false).len()
    );
    assert!(
        end["media"]["packets_in"].as_u64().unwrap_or(0) > 200,
        "{end}"
    );
}

/// The cumulative packets lost (RFC 3550 6.4.1, signed 24 bits) of the first report block of an
/// RTCP compound packet that starts with an SR or RR carrying one.
fn report_block_cumulative_lost(datagram: &[u8]) -> Option<i32> {
    let blocks = datagram.first()? & 0x1f;
    let block_at = match datagram.get(1)? {
        200 => 28,
        201 => 8,
        _ => return None,
    };
    if blocks == 0 {
        return None;
    }
    let field = datagram.get(block_at + 5..block_at + 8)?;
    let unsigned = (field[0] as i32) << 16 | (field[1] as i32) << 8 | field[2] as i32;
    Some(if unsigned & 0x80_0000 != 0 {
        unsigned - 0x100_0000
    } else {
        unsigned
    })
}
