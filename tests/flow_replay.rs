//! A whole demo flow through audio: synthesized caller turns (espeak-ng) played by
//! `hotline replay` into the offline recognizer, with the flow's grammar for each answer
//! (digits and yes/no are strict grammars), the real telecom flow and the real demo order
//! system over loopback HTTP. Asserts on `events.jsonl` as a user would read it.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::speech::speak;

/// The demo systems (`hotline::dialogue::demo_router`) on a free loopback port; returns the base
/// URL that the flow's webhooks take from `HOTLINE_DEMO_URL`.
fn start_demo_systems() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let app = axum::Router::new().nest("/demo", hotline::dialogue::demo_router());
            axum::serve(listener, app).await.expect("demo server");
        });
    });
    format!("http://127.0.0.1:{port}/demo")
}

fn replay(wavs: &[PathBuf], out: &Path, demo_url: &str) -> Vec<Value> {
    replay_with(wavs, out, demo_url, "", &[])
}

/// [`replay`] with more config (`extra`, whole sections) and environment.
fn replay_with(
    wavs: &[PathBuf],
    out: &Path,
    demo_url: &str,
    extra: &str,
    env: &[(&str, &str)],
) -> Vec<Value> {
    let config = out.with_extension("toml");
    std::fs::write(
        &config,
        format!("[asr]\nengine = \"sphinx\"\n\n[dialogue]\ndefault_flow = \"telecom_en\"\n{extra}"),
    )
    .expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .envs(env.iter().copied())
        .env("HOTLINE_DEMO_URL", demo_url)
        .env_remove("HOTLINE_CONFIG")
        .arg("--config")
        .arg(&config)
        .arg("replay")
        .args(wavs)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run hotline replay");
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

/// The caller's turns, each spoken by espeak-ng into `dir/<name>.wav`.
fn speak_turns(dir: &Path, turns: &[(&str, &str)]) -> Vec<PathBuf> {
    turns
        .iter()
        .map(|(name, text)| speak(dir, name, text))
        .collect()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn texts(events: &[Value], kind: &str) -> Vec<String> {
    of_type(events, kind)
        .into_iter()
        .filter(|e| kind != "transcript" || e["final"] == true)
        .filter_map(|e| e["text"].as_str().map(str::to_string))
        .collect()
}

fn dump(events: &[Value]) -> String {
    events
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn order_status_by_voice_from_menu_to_goodbye() {
    let demo = start_demo_systems();
    let dir = tempfile::tempdir().expect("tempdir");
    let turns = [
        ("t1", "where is my order"),
        ("t2", "four seven one two three five"),
        ("t3", "yes"),
        ("t4", "no thanks"),
    ];
    let wavs = speak_turns(dir.path(), &turns);
    let events = replay(&wavs, &dir.path().join("call"), &demo);
    let all = dump(&events);

    // What the recognizer heard: the order id comes through the digits grammar as words.
    let finals = texts(&events, "transcript");
    assert_eq!(
        finals.len(),
        4,
        "one final transcript per turn: {finals:?}\n{all}"
    );
    assert!(finals[0].contains("order"), "{finals:?}");
    assert_eq!(finals[1], "four seven one two three five", "{finals:?}");
    assert_eq!(finals[2], "yes", "{finals:?}");
    assert_eq!(finals[3], "no thanks", "{finals:?}");

    let intents: Vec<&str> = of_type(&events, "intent")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(intents, vec!["order_status", "goodbye"], "{all}");

    let slots: Vec<(&str, &str)> = of_type(&events, "slot")
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?, e["value"].as_str()?)))
        .collect();
    assert!(
        slots.contains(&("order_id", "471235")),
        "the order id is confirmed and filled: {slots:?}\n{all}"
    );

    let replies = texts(&events, "bot_reply");
    let said = |needle: &str| replies.iter().any(|r| r.contains(needle));
    assert!(said("Welcome to Acme Telecom"), "{replies:#?}");
    assert!(said("six digit order number"), "{replies:#?}");
    assert!(said("4 7 1 2 3 5"), "the id is read back: {replies:#?}");
    assert!(
        said("Order 471235 is"),
        "the order system answered: {replies:#?}"
    );
    assert!(said("Goodbye"), "{replies:#?}");

    assert!(of_type(&events, "transfer").is_empty(), "{all}");
    let hangup = of_type(&events, "hangup");
    assert_eq!(hangup.len(), 1, "{all}");
    assert_eq!(hangup[0]["reason"], "caller.goodbye", "{all}");
    assert_eq!(
        events.last().map(|e| &e["type"]),
        Some(&Value::from("hangup"))
    );
}

#[test]
fn a_spoken_request_for_an_agent_transfers_with_the_intent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wavs = [speak(
        dir.path(),
        "t1",
        "I'd like to speak to customer support",
    )];
    let events = replay(&wavs, &dir.path().join("call"), "http://127.0.0.1:9/demo");
    let all = dump(&events);
    let finals = texts(&events, "transcript");
    assert!(
        finals.iter().any(|t| t.contains("customer support")),
        "{finals:?}\n{all}"
    );
    let intents: Vec<&str> = of_type(&events, "intent")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(intents, vec!["human"], "{all}");
    let transfer = of_type(&events, "transfer");
    assert_eq!(transfer.len(), 1, "{all}");
    assert_eq!(transfer[0]["reason"], "escalation.request", "{all}");
}

/// A caller who says their phone number to get their balance: the flow uses the number (the
/// CRM answers), but the stored record keeps no trace of it. What they said for the
/// `sensitive` slot is `[sensitive]`, the read-back is masked (`[phone]`), and the slot is
/// `[sensitive]`, in events.jsonl and in transcript.txt alike. With `privacy.keep_raw`, the
/// unmasked events are in `raw.jsonl.enc`, sealed: `hotline records open` reads them back
/// with the key, and fails, naming the key, with another.
#[test]
fn a_phone_number_said_on_a_call_is_used_but_not_stored() {
    let demo = start_demo_systems();
    let dir = tempfile::tempdir().expect("tempdir");
    let turns = [
        ("t1", "check my balance"),
        ("t2", "four one five five five five zero one nine nine"),
        ("t3", "yes"),
        ("t4", "no thanks"),
    ];
    let wavs = speak_turns(dir.path(), &turns);
    let out = dir.path().join("call");
    let key = "0123456789abcdef".repeat(4);
    let events = replay_with(
        &wavs,
        &out,
        &demo,
        "[privacy]\nkeep_raw = true\n",
        &[("HOTLINE_RAW_KEY", key.as_str())],
    );
    let all = dump(&events);
    let transcript = std::fs::read_to_string(out.join("transcript.txt")).expect("transcript");

    // The call worked on the real number: the CRM found the account.
    let replies = texts(&events, "bot_reply");
    assert!(
        replies.iter().any(|r| r.contains("Your balance is")),
        "the balance was read out: {replies:#?}\n{all}"
    );
    // What the caller said was heard, and stored masked.
    let finals = texts(&events, "transcript");
    assert!(
        finals.iter().any(|t| t == "[sensitive]"),
        "the number was heard and masked: {finals:?}\n{all}"
    );
    assert!(
        replies.iter().any(|r| r.contains("[phone]")),
        "the read-back is masked: {replies:#?}"
    );
    let slot = of_type(&events, "slot")
        .into_iter()
        .find(|e| e["name"] == "account_number")
        .unwrap_or_else(|| panic!("the account number slot was filled\n{all}"));
    assert_eq!(slot["value"], "[sensitive]", "{all}");
    assert_eq!(slot["sensitive"], true, "{all}");
    let sealed = std::fs::read_to_string(out.join("raw.jsonl.enc")).expect("raw.jsonl.enc");
    assert!(
        !sealed.contains("four") && !sealed.contains("transcript"),
        "the raw record is not sealed"
    );
    let open = |key: &str| {
        Command::new(env!("CARGO_BIN_EXE_hotline"))
            .env("HOTLINE_RAW_KEY", key)
            .args(["records", "open"])
            .arg(&out)
            .output()
            .expect("run hotline records open")
    };
    let opened = open(&key);
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    let raw: Vec<Value> = String::from_utf8_lossy(&opened.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each raw line is JSON"))
        .collect();
    assert_eq!(raw.len(), events.len(), "one raw line per event");
    // What the caller really said for the slot, and its value, as the raw record has them.
    let said = of_type(&raw, "transcript")
        .into_iter()
        .find(|e| e["final"] == true && e["sensitive"] == true)
        .and_then(|e| e["text"].as_str())
        .unwrap_or_else(|| panic!("the raw record has the sensitive answer: {raw:#?}"));
    assert!(said.starts_with("four one five"), "{said}");
    let value = of_type(&raw, "slot")
        .into_iter()
        .find(|e| e["name"] == "account_number")
        .and_then(|e| e["value"].as_str())
        .expect("the raw slot value");
    assert!(value.starts_with("415"), "{value}");
    let spaced: Vec<String> = value.chars().map(String::from).collect();
    // Nowhere in the stored record, in any form.
    let events_text = std::fs::read_to_string(out.join("events.jsonl")).expect("events");
    for stored in [&events_text, &transcript] {
        for form in [said, value, spaced.join(" ").as_str(), "five five five"] {
            assert!(
                !stored.contains(form),
                "the record keeps {form:?}:\n{stored}"
            );
        }
    }
    let refused = open(&"f".repeat(64));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("HOTLINE_RAW_KEY"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
