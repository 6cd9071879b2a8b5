//! `hotline replay` end to end: the real binary, real recordings, the offline recognizer, real
//! TTS. Asserts on `events.jsonl`, `recording.wav` and `transcript.txt` as a user would read them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::shared::shared_dir;

/// Runs `hotline replay` with the offline recognizer and returns the parsed events.
fn replay(wavs: &[PathBuf], out: &Path, extra_config: &str) -> Vec<Value> {
    let config = out.with_extension("toml");
    std::fs::write(
        &config,
        format!("[asr]\nengine = \"sphinx\"\n{extra_config}"),
    )
    .expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--config")
        .arg(&config)
        .arg("replay")
        .args(wavs)
        .arg("--out")
        .arg(out)
        .arg("--report")
        .output()
        .expect("run hotline replay");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "replay failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("endpoint_ms"),
        "--report prints the latency table:\n{stdout}"
    );
    let text = std::fs::read_to_string(out.join("events.jsonl")).expect("events.jsonl");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// Peak absolute sample of each channel of a stereo WAV.
fn channel_peaks(path: &Path) -> (i32, i32) {
    let mut reader = hound::WavReader::open(path).expect("recording.wav opens");
    assert_eq!(reader.spec().channels, 2, "recording is stereo");
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    let peak = |offset: usize| {
        samples
            .iter()
            .skip(offset)
            .step_by(2)
            .map(|s| i32::from(*s).abs())
            .max()
            .unwrap_or(0)
    };
    (peak(0), peak(1))
}

#[test]
fn a_caller_asking_for_support_is_transferred() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("call");
    let wav = shared_dir().join("audio/telephone/speak-to-customer-support_mulaw8k.wav");
    let events = replay(&[wav], &out, "");

    assert_eq!(events[0]["type"], "call_start");
    for e in &events {
        assert!(e["t_ms"].is_u64(), "every event has t_ms: {e}");
    }
    let times: Vec<u64> = events
        .iter()
        .map(|e| e["t_ms"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "events are in call-time order"
    );
    let replies = of_type(&events, "bot_reply");
    assert!(
        replies[0]["text"]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
            .contains("help"),
        "greeting first: {}",
        replies[0]
    );
    assert!(
        !of_type(&events, "speech_start").is_empty() && !of_type(&events, "speech_end").is_empty()
    );
    let finals: Vec<&str> = of_type(&events, "transcript")
        .into_iter()
        .filter(|e| e["final"] == true)
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(
        finals.iter().any(|t| t.contains("customer support")),
        "heard the request: {finals:?}\n{events:#?}"
    );
    let transfer = of_type(&events, "transfer");
    assert_eq!(transfer.len(), 1, "one transfer");
    assert!(
        !transfer[0]["target"].as_str().unwrap_or("").is_empty(),
        "{}",
        transfer[0]
    );
    assert!(
        !transfer[0]["reason"].as_str().unwrap_or("").is_empty(),
        "{}",
        transfer[0]
    );
    let hangup = of_type(&events, "hangup");
    assert_eq!(hangup.len(), 1);
    assert_eq!(
        events.last().map(|e| &e["type"]),
        Some(&Value::from("hangup"))
    );
    let ends: Vec<&str> = of_type(&events, "bot_audio_end")
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(ends.contains(&"done"), "{ends:?}");
    assert!(
        !of_type(&events, "turn_latency").is_empty(),
        "the turn's latency is recorded"
    );

    let (caller, bot) = channel_peaks(&out.join("recording.wav"));
    assert!(
        caller > 1000,
        "the caller's side is in the left channel (peak {caller})"
    );
    assert!(
        bot > 1000,
        "the bot's side is in the right channel (peak {bot})"
    );
    let transcript = std::fs::read_to_string(out.join("transcript.txt")).expect("transcript.txt");
    assert!(
        transcript.contains("caller: ") && transcript.contains("bot: "),
        "{transcript}"
    );
}

#[test]
fn a_multi_turn_dialogue_replays_with_both_sides_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("dialog");
    let turns: Vec<PathBuf> = [1, 3, 5]
        .iter()
        .map(|n| {
            shared_dir().join(format!(
                "audio/dialog/multiwoz_dstc11tts_mul0981_Turn-{n}.wav"
            ))
        })
        .collect();
    let events = replay(&turns, &out, "[replay]\npause_after_reply_ms = 500\n");
    let finals = of_type(&events, "transcript")
        .into_iter()
        .filter(|e| e["final"] == true)
        .count();
    assert!(
        finals >= 3,
        "one final transcript per caller turn, got {finals}"
    );
    let replies = of_type(&events, "bot_reply").len();
    assert!(
        replies >= 4,
        "greeting plus a reply per turn, got {replies}"
    );
    // Caller turns are played one after another, each after the bot's reply.
    let starts = of_type(&events, "speech_start").len();
    assert!(starts >= 3, "{starts} speech starts");
    let (caller, bot) = channel_peaks(&out.join("recording.wav"));
    assert!(
        caller > 1000 && bot > 1000,
        "both sides recorded: {caller} {bot}"
    );
}

#[test]
fn a_corrupt_caller_wav_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.wav");
    std::fs::write(&bad, b"RIFF\x10\0\0\0WAVEfmt garbage").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["replay"])
        .arg(&bad)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.wav"),
        "the error names the file: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
