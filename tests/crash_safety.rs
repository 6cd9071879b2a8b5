//! Crash safety: `kill -9` in the middle of a call loses no finished call, and leaves no record
//! unreadable. A SIPp caller completes one call; a second caller is mid-call (its recording
//! growing on disk) when the server is killed with SIGKILL. The restarted server recovers the
//! unfinished record before it takes calls: every event line parses and the last is a `hangup`
//! with `server.crash`, the WAV file opens with the audio written up to the crash, and the
//! transcript exists. The finished call's record is byte for byte what it was. The call store
//! (SQLite, the default) holds both calls after the restart: the finished one, and the one the
//! crash cut, with `server.crash` and the `failed` outcome.
//!
//! SIPp's pcap player writes through a raw socket, so this test needs root (CI runs as root).

mod common;

use std::time::{Duration, Instant};

use common::hotline::Hotline;
use common::pcap::{support_request_pcap, PT_PCMU};
use common::ports::RtpPorts;
use common::records::{call_dirs, read_events};
use common::sipp::{support_caller, Sipp};

fn caller(target: &str, pcap: &std::path::Path) -> Sipp {
    support_caller(target, pcap).timeout_s(30)
}

#[test]
fn a_kill_9_mid_call_loses_no_finished_call_and_leaves_every_record_readable() {
    let rtp = RtpPorts::free(4);
    let mut hotline =
        Hotline::start_with_web(4, &format!("port = 0\ncodecs = [\"PCMU\"]\n{}", rtp.toml()));
    let token = hotline.api_token();
    let work = tempfile::tempdir().expect("tempdir");
    let pcap = support_request_pcap(work.path(), PT_PCMU);

    // One whole call.
    caller(&hotline.sip_addr(), &pcap).run_ok(work.path());
    let finished = hotline.one_call(Duration::from_secs(20));
    assert!(finished.iter().any(|e| e["type"] == "hangup"));
    let first_dir = call_dirs(&hotline.records).remove(0);
    let snapshot: Vec<(String, Vec<u8>)> = ["events.jsonl", "recording.wav", "transcript.txt"]
        .iter()
        .map(|f| {
            (
                f.to_string(),
                std::fs::read(first_dir.join(f)).expect("a finished record's file"),
            )
        })
        .collect();

    // A second call, killed in the middle.
    let _second = caller(&hotline.sip_addr(), &pcap).spawn(work.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    let second_dir = loop {
        let live = call_dirs(&hotline.records)
            .into_iter()
            .find(|d| *d != first_dir)
            .filter(|d| {
                std::fs::metadata(d.join("recording.wav")).is_ok_and(|m| m.len() > 128 * 1024)
            });
        if let Some(dir) = live {
            break dir;
        }
        assert!(Instant::now() < deadline, "the second call never got going");
        std::thread::sleep(Duration::from_millis(100));
    };
    hotline.kill_and_restart();

    let log = hotline.log_text();
    assert!(
        log.contains("recovered a call record"),
        "the restart recovers the record:\n{log}"
    );
    // The unfinished call is whole again.
    let text = std::fs::read_to_string(second_dir.join("events.jsonl")).expect("events");
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("an event line does not parse ({e}): {line}"));
    }
    let events = read_events(&second_dir.join("events.jsonl")).expect("events");
    assert_eq!(events[0]["type"], "call_start", "{events:?}");
    let last = events.last().expect("events");
    assert_eq!(last["type"], "hangup", "{events:?}");
    assert_eq!(last["reason"], "server.crash", "{events:?}");
    let reader = hound::WavReader::open(second_dir.join("recording.wav")).expect("a readable WAV");
    let seconds = reader.duration() as f64 / reader.spec().sample_rate as f64;
    assert!(
        seconds > 1.0,
        "the audio up to the crash is there: {seconds:.2} s"
    );
    assert!(second_dir.join("transcript.txt").is_file());
    // The finished call is untouched.
    for (file, before) in &snapshot {
        let after = std::fs::read(first_dir.join(file)).expect("still there");
        assert!(after == *before, "{file} of the finished call changed");
    }
    // The store has both calls: the finished one, and the one the crash cut.
    let stored = hotline.stored_calls(&token, 2, Duration::from_secs(30));
    let name = |d: &std::path::Path| d.file_name().unwrap().to_string_lossy().into_owned();
    let find = |id: String| {
        stored
            .iter()
            .find(|c| c["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} is not stored: {stored:?}"))
            .clone()
    };
    assert_eq!(find(name(&first_dir))["outcome"], "transferred");
    let cut = find(name(&second_dir));
    assert_eq!(cut["end_reason"], "server.crash", "{cut}");
    assert_eq!(cut["outcome"], "failed", "{cut}");
    // And the server takes calls again, and stores them.
    caller(&hotline.sip_addr(), &pcap).run_ok(work.path());
    hotline.stored_calls(&token, 3, Duration::from_secs(30));
}
