//! `hotline bench` against a real `hotline serve` over loopback SIP/UDP and RTP: two calls,
//! each replaying two caller turns spoken by espeak-ng (the second spoken over the bot), with
//! the report checked the way a user would read it: both calls completed, one voice-to-voice
//! figure per turn the bot answered (as the server's own call records count them), every figure
//! positive, and barge-in measured. The server runs the offline recognizer, so no trained
//! whisper model is needed; the bot answers whatever it hears, a reprompt being enough.
//! No timing is asserted beyond "greater than zero".

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::hotline::Hotline;
use common::ports::RtpPorts;
use common::records;
use common::speech::speak;
use serde_json::Value;

#[test]
fn bench_calls_a_live_hotline_and_measures_at_the_caller() {
    let hotline = Hotline::start(&format!("port = 0\n{}", RtpPorts::free(4).toml()));
    let work = tempfile::tempdir().expect("tempdir");
    let turns = work.path().join("turns");
    std::fs::create_dir(&turns).expect("turns folder");
    speak(&turns, "turn-1", "I would like to check my balance");
    speak(&turns, "turn-2", "what is the status of my order");
    let json = work.path().join("report.json");

    let output = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .arg("bench")
        .arg("--target")
        .arg(format!("sip:{}", hotline.sip_addr()))
        .arg("--turns")
        .arg(&turns)
        .args(["--calls", "2", "--json"])
        .arg(&json)
        .env("NO_COLOR", "1")
        .output()
        .expect("run hotline bench");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "hotline bench failed:\n{printed}\nserver log:\n{}",
        hotline.log_text()
    );
    assert!(printed.contains("voice-to-voice"), "{printed}");

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("report"))
        .expect("the report is JSON");
    assert_eq!(report["calls"], 2, "both calls completed:\n{printed}");
    assert_eq!(report["calls_failed"], 0, "{printed}");

    // The server's records say which caller turns the bot answered.
    let deadline = Instant::now() + Duration::from_secs(10);
    let calls = loop {
        let calls = records::finished_calls(&hotline.records);
        if calls.len() >= 2 || Instant::now() >= deadline {
            break calls;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(calls.len(), 2, "two call records");
    let answered: usize = calls
        .iter()
        .map(|events| {
            records::of_type(events, "bot_audio_start")
                .iter()
                .filter_map(|e| e["turn"].as_u64())
                .filter(|&turn| turn >= 1)
                .collect::<BTreeSet<u64>>()
                .len()
        })
        .sum();
    assert!(answered >= 2, "the bot answered the callers:\n{calls:?}");

    let voice_to_voice = &report["voice_to_voice_ms"];
    assert_eq!(
        voice_to_voice["count"].as_u64(),
        Some(answered as u64),
        "one voice-to-voice figure per turn answered:\n{printed}"
    );
    assert_eq!(report["turns_answered"].as_u64(), Some(answered as u64));
    for key in ["p50", "p95", "p99"] {
        let value = voice_to_voice[key].as_f64().unwrap_or(0.0);
        assert!(value > 0.0, "voice-to-voice {key} = {value}:\n{printed}");
    }
    let samples = report["voice_to_voice_samples_ms"]
        .as_array()
        .expect("samples");
    assert!(samples.iter().all(|v| v.as_f64().unwrap_or(0.0) > 0.0));

    let barge_in = &report["barge_in_ms"];
    assert!(
        barge_in["count"].as_u64().unwrap_or(0) >= 1,
        "barge-in measured:\n{printed}"
    );
    assert!(barge_in["p50"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(report["packet_loss_pct"].as_f64().is_some());
    assert!(report["jitter_ms"].as_f64().is_some());
    // No --server-pid: the server's figures are not measured, so they are null.
    assert!(report["cpu_per_call_pct"].is_null());
    assert!(report["rss_per_call_mib"].is_null());
    assert_eq!(report["asr_model"]["file"], "unknown");
}
