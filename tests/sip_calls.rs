//! Phone callers end to end: SIPp (a real SIP peer, Debian `sip-tester`) calls hotline over UDP
//! on loopback, plays a recorded caller as RTP from a pcap, and hangs up. hotline runs with its
//! real engines (offline recognizer, espeak-ng TTS). Between SIPp and hotline's RTP ports sits a
//! small NAT emulation: hotline advertises a public address (127.0.0.3) where the test relays
//! media, so the relay sees what the caller hears and hotline must answer symmetrically.
//! A caller who cancels while hotline rings (`sip.answer_delay_ms`) leaves no call behind.
//!
//! SIPp's pcap player writes through a raw socket, so these tests need root (CI runs as root);
//! they say so and fail when SIPp cannot send.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::hotline::InProcessHotline;
use common::pcap::{dtmf_pcap, dtmf_tone, g711_encode, support_request_pcap, RtpStream, PT_PCMU};
use common::ports::RtpPorts;
use common::records::{dtmf_digits, final_transcripts, first};
use common::relay::MediaRelay;
use common::sipp::Sipp;

/// hotline's public address, where the relay listens.
const PUBLIC_IP: &str = "127.0.0.3";

/// An in-process hotline behind the relay, with two RTP port pairs.
/// Config after the `[sip]` keys that turns the record's redaction off.
const NO_REDACTION: &str = "\n[privacy]\nredact = false\n";

async fn start_hotline(extra_sip: &str) -> (InProcessHotline, MediaRelay) {
    let rtp = RtpPorts::free(2);
    let relay = MediaRelay::start(PUBLIC_IP, &rtp);
    let hotline = InProcessHotline::start(
        4,
        &format!(
            "port = 0\npublic_ip = \"{PUBLIC_IP}\"\n{}{extra_sip}\n",
            rtp.toml()
        ),
    )
    .await;
    (hotline, relay)
}

/// Runs SIPp (with media) against hotline on a blocking thread; fails unless it succeeds.
async fn run_sipp(sipp: Sipp) {
    tokio::task::spawn_blocking(move || {
        let work = tempfile::tempdir().expect("tempdir");
        sipp.run_ok(work.path())
    })
    .await
    .expect("join");
}

async fn caller_is_heard_and_greeted(payload_type: u8, codec: &str) {
    let work = tempfile::tempdir().expect("tempdir");
    let pcap = support_request_pcap(work.path(), payload_type);
    let (hotline, relay) = start_hotline(&format!("codecs = [\"{codec}\"]")).await;
    run_sipp(
        common::sipp::utterance_caller(&pcap)
            .remote(hotline.sip_addr())
            .media()
            .key("service", "support")
            .key("codec_pt", payload_type)
            .key("codec_name", codec),
    )
    .await;
    let events = hotline.one_call(Duration::from_secs(20)).await;

    let start = first(&events, "call_start");
    assert_eq!(start["transport"], "sip-udp", "{start}");
    assert_eq!(start["codec"], codec, "{start}");
    assert!(
        start["from"]
            .as_str()
            .unwrap_or("")
            .starts_with("sip:caller@127.0.0.1"),
        "{start}"
    );
    assert!(
        start["to"]
            .as_str()
            .unwrap_or("")
            .starts_with("sip:support@"),
        "{start}"
    );
    let finals = final_transcripts(&events);
    assert!(
        finals.iter().any(|t| t.contains("support")),
        "the caller's speech was recognized: {finals:?}\n{events:#?}"
    );
    assert!(
        relay.caller_packets() > 100,
        "the caller's RTP went through the relay"
    );
    let loud = relay.loud_hotline_packets(300.0);
    assert!(
        loud > 25,
        "the caller heard the bot (non-silent RTP packets: {loud})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_caller_on_pcmu_is_recognized_and_hears_the_greeting() {
    caller_is_heard_and_greeted(0, "PCMU").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_caller_on_pcma_is_recognized_and_hears_the_greeting() {
    caller_is_heard_and_greeted(8, "PCMA").await;
}

/// A SIPp caller presses 1, 5 and # as RFC 4733 events (without marker bits), then 7 by SIP
/// INFO; returns the call's record.
async fn press_1_5_pound_then_info_7(hotline: &InProcessHotline) -> Vec<serde_json::Value> {
    let work = tempfile::tempdir().expect("tempdir");
    let pcap = dtmf_pcap(work.path(), &[1, 5, 11]);
    run_sipp(
        Sipp::scenario("uac_dtmf.xml")
            .remote(hotline.sip_addr())
            .media()
            .key("service", "keys")
            .key("pcap", pcap.display())
            .key("info_digit", "7"),
    )
    .await;
    hotline.one_call(Duration::from_secs(20)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_arrives_from_rfc4733_without_marker_and_from_sip_info() {
    // Key 1 is the balance, whose next question (the phone number) is a `sensitive` slot: the
    // record would mask the keys after it. This test is about the keys' transport.
    let (hotline, _relay) = start_hotline(NO_REDACTION).await;
    let events = press_1_5_pound_then_info_7(&hotline).await;
    assert_eq!(
        dtmf_digits(&events),
        vec!["1", "5", "#", "7"],
        "{events:#?}"
    );
}

/// The same keys with the record's privacy on (the default): key 1 chooses the balance, whose
/// next question is the phone number, a `sensitive` slot. The keys pressed for it reach the
/// bot (it answers that one digit is too few), but the record keeps them as `*`, marked
/// `sensitive`, and the transcript names none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_pressed_for_a_sensitive_slot_are_stored_masked() {
    let (hotline, _relay) = start_hotline("").await;
    let events = press_1_5_pound_then_info_7(&hotline).await;
    assert_eq!(
        dtmf_digits(&events),
        vec!["1", "*", "*", "*"],
        "{events:#?}"
    );
    let keys: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "dtmf").collect();
    assert!(
        keys[1..].iter().all(|e| e["sensitive"] == true),
        "{keys:#?}"
    );
    assert!(
        events.iter().any(|e| e["type"] == "bot_reply"
            && e["text"]
                .as_str()
                .is_some_and(|t| t.contains("heard 1 digits"))),
        "the bot heard the key pressed for the slot: {events:#?}"
    );
    let dirs = common::records::call_dirs(hotline.records.path());
    let transcript = std::fs::read_to_string(dirs[0].join("transcript.txt")).expect("transcript");
    for key in ["pressed 5", "pressed #", "pressed 7"] {
        assert!(!transcript.contains(key), "{transcript}");
    }
}

/// Key tones as a phone sends them in-band: each key 100 ms of its two sines at about -8 dBm0
/// per tone, then 100 ms of silence; half a second of silence before and after.
fn inband_dtmf_pcap(dir: &Path, keys: &str) -> PathBuf {
    let mut pcm = vec![0i16; 4_000];
    for key in keys.chars() {
        pcm.extend(dtmf_tone(key, 100, 9_000.0));
        pcm.extend(std::iter::repeat_n(0i16, 800));
    }
    pcm.extend(std::iter::repeat_n(0i16, 4_000));
    let mut stream = RtpStream::default();
    stream.push_g711(PT_PCMU, 0, &g711_encode(PT_PCMU, &pcm), 0xff);
    let path = dir.join("inband-dtmf.pcap");
    stream.write_pcap(&path);
    path
}

/// A caller whose phone offers PCMU without telephone-event (SIPp checks the answer offers none
/// either) and sends its keys as tones inside the audio: hotline's tone detector hears every key,
/// in order, and the call record has them as `dtmf` events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inband_dtmf_tones_are_detected_when_no_telephone_event_is_offered() {
    let work = tempfile::tempdir().expect("tempdir");
    let keys = "159#0*";
    let pcap = inband_dtmf_pcap(work.path(), keys);
    let (hotline, relay) = start_hotline(NO_REDACTION).await;
    run_sipp(
        Sipp::scenario("uac_inband_dtmf.xml")
            .remote(hotline.sip_addr())
            .media()
            .key("service", "keys")
            .key("pcap", pcap.display()),
    )
    .await;
    let events = hotline.one_call(Duration::from_secs(20)).await;
    assert_eq!(first(&events, "call_start")["codec"], "PCMU");
    assert!(
        relay.caller_packets() > 80,
        "the tones went through as audio"
    );
    let expected: Vec<String> = keys.chars().map(String::from).collect();
    assert_eq!(dtmf_digits(&events), expected, "{events:#?}");
}

/// A caller puts the bot on hold and takes it off again with re-INVITEs (SIPp's
/// `uac_reinvite.xml`; SIPp checks that the hold is answered `recvonly` and the unhold not). The
/// relay sees hotline's RTP stop for the hold and resume after it with the same SSRC, the next
/// sequence number, and a timestamp that moved on with the media clock over the hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_unhold_by_reinvite_keep_one_continuous_rtp_stream() {
    let work = tempfile::tempdir().expect("tempdir");
    // The caller keeps sending (silence) for the whole call, hold included.
    let mut stream = RtpStream::default();
    stream.push_g711(PT_PCMU, 0, &[0xff; 13 * 8_000], 0xff);
    let pcap = work.path().join("caller-silence.pcap");
    stream.write_pcap(&pcap);
    let (hotline, relay) = start_hotline("codecs = [\"PCMU\"]").await;
    run_sipp(
        Sipp::scenario("uac_reinvite.xml")
            .remote(hotline.sip_addr())
            .media()
            .key("service", "support")
            .key("pcap", pcap.display()),
    )
    .await;
    let events = hotline.one_call(Duration::from_secs(20)).await;
    assert_eq!(
        first(&events, "hangup")["reason"],
        "caller.hangup",
        "the call lasted through hold and unhold: {events:#?}"
    );

    let sent = relay.hotline_rtp();
    assert!(
        sent.len() > 200,
        "hotline sent RTP ({} packets)",
        sent.len()
    );
    let ssrcs: std::collections::BTreeSet<u32> = sent.iter().map(|p| p.ssrc).collect();
    assert_eq!(ssrcs.len(), 1, "one SSRC for the whole call: {ssrcs:x?}");
    for pair in sent.windows(2) {
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence.wrapping_add(1),
            "sequence numbers continue through the relay (a missing number is a packet hotline \
             sent elsewhere, such as the SDP address behind the NAT instead of the latched one): \
             {pair:?}"
        );
        assert_eq!(
            pair[1].timestamp.wrapping_sub(pair[0].timestamp) % 160,
            0,
            "timestamps move in 20 ms steps: {pair:?}"
        );
    }
    // The hold: the one long silence in hotline's stream (the scenario holds for 3 s).
    let (at, longest) = sent
        .windows(2)
        .enumerate()
        .map(|(i, pair)| (i, pair[1].at - pair[0].at))
        .max_by_key(|&(_, gap)| gap)
        .expect("packets");
    assert!(
        longest > Duration::from_millis(2_000),
        "hotline stopped sending while held (longest pause {longest:?})"
    );
    let others_over_a_second = sent
        .windows(2)
        .filter(|pair| pair[1].at - pair[0].at > Duration::from_secs(1))
        .count();
    assert_eq!(others_over_a_second, 1, "one hold, one pause");
    let (before, after) = (sent[at], sent[at + 1]);
    assert!(
        sent[..=at].len() > 50 && sent[at + 1..].len() > 50,
        "RTP flowed before the hold and after the unhold ({} and {} packets)",
        at + 1,
        sent.len() - at - 1
    );
    // The media clock ran on while held: the timestamp jump matches the pause, give or take the
    // scheduling of a loaded machine.
    let jump_ms = after.timestamp.wrapping_sub(before.timestamp) as f64 / 8.0;
    let pause_ms = longest.as_secs_f64() * 1000.0;
    assert!(
        (jump_ms - pause_ms).abs() < 0.25 * pause_ms + 200.0,
        "the timestamp advanced with the hold: {jump_ms} ms of timestamps over a {pause_ms:.0} ms pause"
    );
}

/// A caller who cancels while it rings gets 487 for the INVITE and 200 for the CANCEL (SIPp
/// checks both and that nothing follows), and no call is started or recorded, even after the
/// ringing time is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_cancels_while_ringing_leaves_no_call() {
    let (hotline, _relay) = start_hotline("answer_delay_ms = 2500").await;
    run_sipp(
        Sipp::scenario("uac_cancel.xml")
            .remote(hotline.sip_addr())
            .media()
            .key("service", "support"),
    )
    .await;
    // Past the ringing time: a call that was not forgotten would be answered by now.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let records = hotline.call_dirs();
    let left: Vec<PathBuf> = std::fs::read_dir(hotline.records.path())
        .expect("records dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        records.is_empty() && left.is_empty(),
        "a cancelled call left records: {left:?}"
    );
    assert_eq!(hotline.engines.active_calls(), 0, "no call is in progress");
}
