//! Transfers that can fail, end to end: SIPp calls hotline over UDP (through the NAT-emulating
//! relay of the other phone tests), plays the recorded caller asking for customer support, and
//! answers hotline's REFER.
//!
//! - `uac_transfer_ok.xml` accepts it (202), reports progress and the target's answer in NOTIFY
//!   sipfrag, and expects hotline's BYE: the record shows the transfer and ends with
//!   `transfer.done`.
//! - `uac_transfer_refused.xml` declines it (603) and stays on the line: hotline must not hang up
//!   (SIPp fails on a BYE), the record shows `transfer_failed` with `transfer.refused.603`, and
//!   the bot speaks again (its apology) before the caller hangs up.
//!
//! SIPp's pcap player writes through a raw socket, so these tests need root (CI runs as root).

mod common;

use std::time::Duration;

use serde_json::Value;

use common::hotline::InProcessHotline;
use common::pcap::{support_request_pcap, PT_PCMU};
use common::ports::RtpPorts;
use common::records::{first, of_type};
use common::relay::MediaRelay;
use common::sipp::Sipp;

/// hotline's public address, where the relay listens.
const PUBLIC_IP: &str = "127.0.0.4";

async fn start_hotline() -> (InProcessHotline, MediaRelay) {
    let rtp = RtpPorts::free(2);
    let relay = MediaRelay::start(PUBLIC_IP, &rtp);
    let hotline = InProcessHotline::start(
        4,
        &format!(
            // A refused REFER stays refused (no fallback to calling the target: its host is
            // a placeholder).
            "port = 0\npublic_ip = \"{PUBLIC_IP}\"\ncodecs = [\"PCMU\"]\n{}\n[agents]\nrefer_fallback = false\n",
            rtp.toml()
        ),
    )
    .await;
    (hotline, relay)
}

/// Runs one SIPp caller with `scenario` against hotline; fails unless SIPp succeeds. Returns
/// the call's record.
async fn call(scenario: &str, extra_keys: &[(&str, &str)]) -> (Vec<Value>, MediaRelay) {
    let (hotline, relay) = start_hotline().await;
    let mut sipp = Sipp::scenario(scenario)
        .remote(hotline.sip_addr())
        .media()
        .key("service", "support")
        .key("codec_pt", PT_PCMU)
        .key("codec_name", "PCMU")
        .timeout_s(60);
    for (name, value) in extra_keys {
        sipp = sipp.key(name, value);
    }
    tokio::task::spawn_blocking(move || {
        let work = tempfile::tempdir().expect("tempdir");
        let pcap = support_request_pcap(work.path(), PT_PCMU);
        sipp.key("pcap", pcap.display()).run_ok(work.path())
    })
    .await
    .expect("join");
    let events = hotline.one_call(Duration::from_secs(20)).await;
    (events, relay)
}

fn t_ms(event: &Value) -> u64 {
    event["t_ms"].as_u64().expect("t_ms")
}

/// Where the first event of `kind` is in the record (records are in the order things happened;
/// an event stamped at the end of a playout may carry a time up to one frame ahead).
fn position(events: &[Value], kind: &str) -> usize {
    events
        .iter()
        .position(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event: {events:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_transfer_ends_the_call_when_the_target_answers() {
    let (events, _relay) = call("uac_transfer_ok.xml", &[]).await;
    let transfer = first(&events, "transfer");
    assert!(
        transfer["target"].as_str().is_some_and(|t| !t.is_empty()),
        "{transfer}"
    );
    assert!(
        of_type(&events, "transfer_failed").is_empty(),
        "{events:#?}"
    );
    let hangup = first(&events, "hangup");
    assert_eq!(hangup["reason"], "transfer.done", "{hangup}");
    assert!(
        position(&events, "hangup") > position(&events, "transfer"),
        "{events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_transfer_keeps_the_call_and_the_bot_carries_on() {
    let (events, relay) = call("uac_transfer_refused.xml", &[]).await;
    let transfer = first(&events, "transfer");
    let failed = first(&events, "transfer_failed");
    assert_eq!(failed["reason"], "transfer.refused.603", "{failed}");
    assert_eq!(failed["target"], transfer["target"], "{failed}");
    let failed_at = position(&events, "transfer_failed");
    assert!(failed_at > position(&events, "transfer"), "{events:#?}");
    // The bot speaks again after the failure: its apology reaches the caller as audio.
    let after = &events[failed_at..];
    let apology = after
        .iter()
        .find(|e| e["type"] == "bot_reply")
        .unwrap_or_else(|| panic!("no reply after the failure: {events:#?}"));
    assert!(
        apology["text"].as_str().unwrap_or("").contains("agent"),
        "{apology}"
    );
    assert!(
        after.iter().any(|e| e["type"] == "bot_audio_start"),
        "the apology was played: {events:#?}"
    );
    // The caller hung up, not hotline.
    let hangup = first(&events, "hangup");
    assert_eq!(hangup["reason"], "caller.hangup", "{hangup}");
    assert!(t_ms(hangup) >= t_ms(failed) + 5_000, "{hangup}");
    // hotline's RTP went on to the end of the call.
    let rtp = relay.hotline_rtp();
    let span = rtp.last().expect("RTP from hotline").at - rtp[0].at;
    assert!(
        span >= Duration::from_millis(t_ms(hangup) - 2_000),
        "hotline sent RTP for {span:?} of a {} ms call",
        t_ms(hangup)
    );
}
