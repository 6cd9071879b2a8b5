//! Graceful shutdown, as an operator meets it: `hotline serve` gets SIGTERM with a SIPp call in
//! progress. A new INVITE during the drain is refused with 503 (and Retry-After); the call in
//! progress hears the bot's goodbye when `server.drain_timeout_s` runs out and gets a BYE; its
//! record is complete (the goodbye, the hangup with `server.shutdown`, the media counters, a
//! readable recording and a transcript); then the server exits on its own, with success.

mod common;

use std::path::Path;
use std::time::Duration;

use common::hotline::Hotline;
use common::pcap::{g711_silence, RtpStream};
use common::ports::RtpPorts;
use common::records::{first, of_type};
use common::sipp::{Sipp, SippRun};

/// A hotline with `server` keys and a SIPp caller on it who says nothing for 30 s and waits
/// for the bot to hang up, once the call is answered and the greeting has begun.
fn call_in_progress(work: &Path, server: &str) -> (Hotline, SippRun) {
    let silence = g711_silence(0);
    let mut stream = RtpStream::default();
    stream.push_g711(0, 0, &vec![silence; 8_000 * 30], silence);
    let pcap = work.join("silence.pcap");
    stream.write_pcap(&pcap);
    let mut hotline = Hotline::start_with_server(
        4,
        server,
        &format!("port = 0\n{}", RtpPorts::free(3).toml()),
    );
    let caller = Sipp::scenario("uac_wait_for_bye.xml")
        .remote(hotline.sip_addr())
        .media()
        .key("service", "support")
        .key("pcap", pcap.display())
        .timeout_s(60)
        .spawn(work);
    hotline.wait_for_log(&["phone call answered"], Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1_500));
    (hotline, caller)
}

#[test]
fn sigterm_drains_says_goodbye_closes_records_and_refuses_new_calls() {
    let work = tempfile::tempdir().expect("tempdir");
    // The greeting is playing when the operator stops the server.
    let (mut hotline, caller) = call_in_progress(work.path(), "drain_timeout_s = 2");
    hotline.signal("TERM");
    hotline.wait_for_log(&["shutting down"], Duration::from_secs(5));

    // A caller during the drain is refused, per protocol.
    let refused = Sipp::scenario("uac_expect_503.xml")
        .remote(hotline.sip_addr())
        .media()
        .key("service", "support")
        .timeout_s(10)
        .spawn(work.path())
        .wait(Duration::from_secs(20));
    assert!(
        refused.success,
        "a new INVITE during the drain gets 503:\n{}\n{}",
        refused.screen,
        hotline.log_text()
    );

    // The call in progress is ended by the bot, with a BYE SIPp answers.
    let outcome = caller.wait(Duration::from_secs(60));
    assert!(
        outcome.success,
        "the caller got the bot's BYE:\n{}\n{}",
        outcome.screen,
        hotline.log_text()
    );
    let status = hotline.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "hotline exits on its own, with success ({status:?}):\n{}",
        hotline.log_text()
    );

    // One record, complete; none for the refused caller.
    let events = hotline.one_call(Duration::from_secs(1));
    let goodbye = of_type(&events, "bot_reply")
        .into_iter()
        .filter_map(|e| e["text"].as_str())
        .any(|t| t.contains("closing") && t.contains("Goodbye"));
    assert!(goodbye, "the bot said goodbye: {events:#?}");
    let hangup = first(&events, "hangup");
    assert_eq!(hangup["reason"], "server.shutdown", "{hangup}");
    let end = first(&events, "call_end");
    assert!(
        end["media"]["packets_in"].as_u64().unwrap_or(0) > 50,
        "the media counters are in the record: {end}"
    );
    let dir = &hotline.call_dirs()[0];
    let wav = hound::WavReader::open(dir.join("recording.wav")).expect("recording.wav reads");
    let seconds = wav.duration() as f64 / f64::from(wav.spec().sample_rate);
    assert!(
        seconds > 3.0,
        "the recording covers the call: {seconds:.1} s"
    );
    let transcript = std::fs::read_to_string(dir.join("transcript.txt")).expect("transcript");
    assert!(transcript.contains("Goodbye"), "{transcript}");
    let log = hotline.log_text();
    assert!(
        log.contains("refused: the server is shutting down"),
        "{log}"
    );
}

#[test]
fn a_second_signal_hangs_up_at_once_and_still_closes_the_record() {
    let work = tempfile::tempdir().expect("tempdir");
    // A drain long enough that only the second signal can end the call in time.
    let (mut hotline, caller) = call_in_progress(work.path(), "drain_timeout_s = 600");
    hotline.signal("TERM");
    hotline.wait_for_log(&["shutting down"], Duration::from_secs(5));
    hotline.signal("INT");
    hotline.wait_for_log(&["second signal"], Duration::from_secs(5));

    let outcome = caller.wait(Duration::from_secs(30));
    assert!(
        outcome.success,
        "the caller got a BYE:\n{}\n{}",
        outcome.screen,
        hotline.log_text()
    );
    let status = hotline.wait_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "hotline exits ({status:?}):\n{}",
        hotline.log_text()
    );
    let events = hotline.one_call(Duration::from_secs(1));
    let hangup = first(&events, "hangup");
    assert_eq!(hangup["reason"], "server.shutdown", "{hangup}");
    assert!(
        !of_type(&events, "bot_reply")
            .iter()
            .any(|e| e["text"].as_str().unwrap_or("").contains("Goodbye")),
        "no goodbye on a second signal: {events:#?}"
    );
    let dir = &hotline.call_dirs()[0];
    hound::WavReader::open(dir.join("recording.wav")).expect("recording.wav reads");
    assert!(
        dir.join("transcript.txt").exists(),
        "transcript.txt written"
    );
}
