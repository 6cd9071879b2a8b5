//! Which flow a call runs, through the real binary: `dialogue.default_flow` is the flow of every
//! call that chooses none in `hotline serve` (a SIPp call) and `hotline replay`, whatever the
//! top-level `language` would have picked; `replay --flow` resolves and fails exactly as
//! `chat --flow` does; an unknown `dialogue.default_flow` fails start-up naming the key and the
//! valid flows. (`hotline chat`'s side is in `tests/chat.rs`.)

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::hotline::Hotline;
use common::records::{first, of_type};
use common::sipp::Sipp;

/// The Chinese demo flow's greeting, and the English one's.
const ZH_GREETING: &str = "欢迎致电优选商城";
const EN_GREETING: &str = "Welcome to Acme Telecom";

/// The error every entry point gives for an unknown `--flow nope`, word for word.
const UNKNOWN_FLOW: &str = "--flow: unknown flow \"nope\" (valid flows: ecommerce_zh, telecom_en)";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One second of silence as a caller turn (the greeting is what these tests look at).
fn silence_wav(dir: &Path) -> PathBuf {
    let path = dir.join("silence.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).expect("create wav");
    for _ in 0..16_000 {
        writer.write_sample(0i16).expect("sample");
    }
    writer.finalize().expect("finalize wav");
    path
}

/// Writes `config` (top-level keys first, so it goes before an offline-recognizer `[asr]`
/// section) into `dir` and runs `hotline` with it and `args`.
fn hotline(dir: &Path, config: &str, args: &[&str]) -> Output {
    let path = dir.join("hotline.toml");
    std::fs::write(&path, format!("{config}\n[asr]\nengine = \"sphinx\"\n")).expect("write config");
    Command::new(env!("CARGO_BIN_EXE_hotline"))
        .current_dir(repo())
        .env_remove("HOTLINE_CONFIG")
        .env("RUST_LOG", "warn")
        .arg("--config")
        .arg(&path)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run hotline")
}

/// `hotline replay` of one silent turn with `config` and `args`; returns the events.
fn replay(config: &str, args: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = silence_wav(dir.path());
    let out = dir.path().join("call");
    let mut all: Vec<&str> = vec!["replay"];
    all.extend(args);
    let wav_arg = wav.display().to_string();
    let out_arg = out.display().to_string();
    all.extend([wav_arg.as_str(), "--out", out_arg.as_str()]);
    let output = hotline(dir.path(), config, &all);
    assert!(
        output.status.success(),
        "replay failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(out.join("events.jsonl")).expect("events.jsonl");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

fn greeting(events: &[Value]) -> String {
    of_type(events, "bot_reply")
        .first()
        .and_then(|e| e["text"].as_str())
        .unwrap_or_else(|| panic!("no bot_reply in {events:#?}"))
        .to_string()
}

#[test]
fn replay_runs_the_configured_default_flow_in_its_language() {
    let events = replay("[dialogue]\ndefault_flow = \"ecommerce_zh\"\n", &[]);
    assert!(greeting(&events).contains(ZH_GREETING), "{events:#?}");
    assert_eq!(first(&events, "call_start")["language"], "zh");

    // The top-level `language` alone still chooses a flow in that language.
    let events = replay("language = \"zh\"\n", &[]);
    assert!(greeting(&events).contains(ZH_GREETING), "{events:#?}");
}

#[test]
fn replay_flow_flag_resolves_as_chat_does() {
    let events = replay("", &["--flow", "ecommerce_zh"]);
    assert!(greeting(&events).contains(ZH_GREETING), "{events:#?}");
    assert_eq!(first(&events, "call_start")["language"], "zh");
    let events = replay(
        "[dialogue]\ndefault_flow = \"ecommerce_zh\"\n",
        &["--flow", "assets/flows/telecom_en.toml"],
    );
    assert!(greeting(&events).contains(EN_GREETING), "{events:#?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let wav = silence_wav(dir.path());
    let out = dir.path().join("call");
    let replayed = hotline(
        dir.path(),
        "",
        &[
            "replay",
            "--flow",
            "nope",
            &wav.display().to_string(),
            "--out",
            &out.display().to_string(),
        ],
    );
    let chatted = hotline(dir.path(), "", &["chat", "--flow", "nope"]);
    for (what, output) in [("replay", &replayed), ("chat", &chatted)] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{what} --flow nope must fail");
        assert!(
            stderr.contains(UNKNOWN_FLOW),
            "{what}: expected {UNKNOWN_FLOW:?} in: {stderr}"
        );
    }
    assert!(
        !out.join("events.jsonl").exists(),
        "no record for a call that never started"
    );
}

/// Runs `hotline serve` with `config` until it exits (at most a minute).
fn serve_until_exit(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hotline.toml");
    std::fs::write(
        &path,
        format!("{config}\n[asr]\nengine = \"sphinx\"\n[web]\nenabled = false\n"),
    )
    .expect("write config");
    let log = dir.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .current_dir(repo())
        .env_remove("HOTLINE_CONFIG")
        .env("NO_COLOR", "1")
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start hotline serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    (status.is_some_and(|s| !s.success()), text)
}

#[test]
fn an_unknown_default_flow_fails_start_up_naming_the_key_and_the_flows() {
    let config = "[dialogue]\ndefault_flow = \"nope\"\n";
    let (failed, log) = serve_until_exit(config);
    assert!(
        failed,
        "serve must not start with an unknown default flow:\n{log}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = silence_wav(dir.path());
    let out = dir.path().join("call");
    let replayed = hotline(
        dir.path(),
        config,
        &[
            "replay",
            &wav.display().to_string(),
            "--out",
            &out.display().to_string(),
        ],
    );
    assert!(!replayed.status.success());
    let replay_err = String::from_utf8_lossy(&replayed.stderr).to_string();
    for (what, text) in [("serve", &log), ("replay", &replay_err)] {
        assert!(
            text.contains(
                "dialogue.default_flow: flow \"nope\" not found in assets/flows \
                 (valid flows: ecommerce_zh, telecom_en)"
            ),
            "{what}: {text}"
        );
        assert!(!text.contains("panicked"), "{what}: {text}");
    }

    // A `language` that contradicts the default flow is refused, naming both keys.
    let (failed, log) =
        serve_until_exit("language = \"en\"\n[dialogue]\ndefault_flow = \"ecommerce_zh\"\n");
    assert!(failed, "{log}");
    assert!(
        log.contains("language = \"en\" and dialogue.default_flow = \"ecommerce_zh\" disagree"),
        "{log}"
    );
}

#[test]
fn a_phone_call_to_serve_runs_the_configured_default_flow() {
    let mut hotline = Hotline::start("port = 0\n\n[dialogue]\ndefault_flow = \"ecommerce_zh\"");
    hotline.wait_for_log(&["answering phone calls"], Duration::from_secs(5));
    let work = tempfile::tempdir().expect("tempdir");
    // SIPp's built-in caller: INVITE, ACK, three seconds of call, BYE.
    Sipp::builtin("uac")
        .remote(hotline.sip_addr())
        .arg("-d")
        .arg("3000")
        .run_ok(work.path());
    let events = hotline.one_call(Duration::from_secs(20));
    assert_eq!(
        first(&events, "call_start")["language"],
        "zh",
        "{events:#?}"
    );
    assert!(greeting(&events).contains(ZH_GREETING), "{events:#?}");
}

/// A flow with `record_audio = false` (the telecom demo under another name): a phone call on
/// it is recorded as events and a transcript, with no `recording.wav`.
#[test]
fn a_flow_that_keeps_no_audio_leaves_a_record_without_a_recording() {
    let flows = tempfile::tempdir().expect("tempdir");
    let telecom =
        std::fs::read_to_string(repo().join("assets/flows/telecom_en.toml")).expect("demo flow");
    let private = telecom.replacen(
        "name = \"telecom_en\"",
        "name = \"telecom_private\"\nrecord_audio = false",
        1,
    );
    assert_ne!(private, telecom, "the demo flow names itself telecom_en");
    std::fs::write(flows.path().join("telecom_private.toml"), private).expect("write flow");
    let hotline = Hotline::start(&format!(
        "port = 0\n\n[dialogue]\nflows_dir = {:?}\ndefault_flow = \"telecom_private\"",
        flows.path().display().to_string()
    ));
    let work = tempfile::tempdir().expect("tempdir");
    Sipp::builtin("uac")
        .remote(hotline.sip_addr())
        .arg("-d")
        .arg("3000")
        .run_ok(work.path());
    let events = hotline.one_call(Duration::from_secs(20));
    assert!(greeting(&events).contains(EN_GREETING), "{events:#?}");
    let dirs = common::records::call_dirs(&hotline.records);
    assert_eq!(dirs.len(), 1);
    assert!(dirs[0].join("transcript.txt").is_file());
    assert!(
        !dirs[0].join("recording.wav").exists(),
        "a flow with record_audio = false left a recording"
    );
}
