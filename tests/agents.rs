//! Humans on the line: a caller who asks for a person is queued, rings a human agent in
//! headless Chromium, and is bridged to them, audio both ways; with nobody there, the caller
//! goes back to the bot and hears why.
//!
//! The flow is the demo telecom flow with `transfer_target = "queue:support"` (a warm queue). The caller is
//! baresip (a real softphone over SIP/RTP, PCMU), playing a recording that asks for customer
//! support, then, once bridged, more words for the agent. The agent signs in to `/agent` with
//! a recording as microphone, becomes available, sees the screen-pop, accepts, and stays until
//! the caller hangs up, then saves a disposition (`tests/web/agent.mjs`; screenshots in
//! `target/agent-*.png`).

mod common;

#[path = "web/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::baresip::{g711_source_wav, BaresipCall};
use common::hotline::Hotline;
use common::pcap::PT_PCMU;
use common::ports::RtpPorts;
use common::records::first;
use common::shared::shared;
use serde_json::Value;

/// The demo flows and knowledge bases, with the telecom flow handing callers to a queue.
fn queue_flows(work: &Path) -> String {
    flows_to(work, "queue:support", "", "warm = true\n")
}

/// The demo flows and knowledge bases, with the telecom flow handing callers to `target`;
/// `agents` are more `[agents]` keys, `queue` more keys of the `support` queue.
fn flows_to(work: &Path, target: &str, agents: &str, queue: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (flows, kb) = (work.join("flows"), work.join("kb"));
    for (from, to) in [("assets/flows", &flows), ("assets/kb", &kb)] {
        std::fs::create_dir_all(to).expect("create a folder");
        for entry in std::fs::read_dir(root.join(from))
            .expect("read a folder")
            .flatten()
        {
            if entry.path().is_file() {
                std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
            }
        }
    }
    let telecom = flows.join("telecom_en.toml");
    let text = std::fs::read_to_string(&telecom).expect("the telecom flow");
    let text = text.replace(
        "transfer_target = \"sip:support@agents.example\"",
        &format!("transfer_target = \"{target}\""),
    );
    assert!(text.contains(target), "the flow's target moved");
    std::fs::write(&telecom, text).expect("write the flow");
    format!(
        "[dialogue]\nflows_dir = {:?}\nkb_dir = {:?}\n[agents]\n{agents}\n[agents.queues.support]\nring_timeout_s = 20\nmax_wait_s = 60\n{queue}",
        flows.display().to_string(),
        kb.display().to_string()
    )
}

/// `hotline serve` for at most `calls` calls, PCMU on the phone line, web on, `extra` config.
fn serve(calls: usize, extra: &str) -> Hotline {
    Hotline::start_with_web_and(
        calls,
        extra,
        &format!(
            "port = 0\ncodecs = [\"PCMU\"]\n{}\n",
            RtpPorts::free(4).toml()
        ),
    )
}

/// A baresip caller playing `wav` to the support line, for at most `quit_after_s`.
fn call_in(
    hotline: &Hotline,
    wav: &Path,
    quit_after_s: u32,
    work: &Path,
) -> common::baresip::BaresipOutcome {
    let outcome = BaresipCall {
        target: format!("sip:support@{}", hotline.sip_addr()),
        source_wav: wav,
        codecs: "PCMU",
        extra_modules: &[],
        quit_after_s,
        tls_ca: None,
        account_params: "",
    }
    .run(work);
    outcome.assert_established(&hotline.log_text());
    outcome
}

/// Every transfer attempt in a call's record: (target, mode, outcome).
fn attempts(events: &[Value]) -> Vec<(String, String, String)> {
    let text = |e: &Value, k: &str| e[k].as_str().unwrap_or("").to_string();
    events
        .iter()
        .filter(|e| e["type"] == "transfer_result")
        .map(|e| (text(e, "target"), text(e, "mode"), text(e, "outcome")))
        .collect()
}

/// 20 ms frames louder than `threshold` RMS in a WAV, between `from` and `to` seconds.
fn loud_frames_between(path: &Path, from_s: f64, to_s: f64, threshold: f64) -> usize {
    let pcm = hotline::audio::wav::read_wav(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mono = pcm.to_mono();
    let frame = (pcm.sample_rate_hz / 50) as usize;
    let start = (from_s * f64::from(pcm.sample_rate_hz)) as usize / frame;
    let end = (to_s * f64::from(pcm.sample_rate_hz)) as usize / frame;
    mono.chunks(frame)
        .enumerate()
        .filter(|(i, _)| (start..end).contains(i))
        .filter(|(_, c)| {
            let e: f64 =
                c.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / c.len() as f64;
            e.sqrt() > threshold
        })
        .count()
}

/// The agent's microphone: a recorded English speaker, 48 kHz for Chromium (it loops it).
fn agent_wav(dir: &Path) -> PathBuf {
    let out = dir.join("agent-48k.wav");
    let status = Command::new("sox")
        .arg(shared("audio/en/cmu_arctic_us_aew_a0001.wav"))
        .arg(shared("audio/en/cmu_arctic_us_aew_a0002.wav"))
        .args(["-r", "48000", "-b", "16", "-e", "signed-integer", "-c", "1"])
        .arg(&out)
        .args(["pad", "0", "0.3"])
        .status()
        .expect("run sox");
    assert!(status.success(), "sox made the agent's microphone");
    out
}

/// The caller: asks for customer support, waits while put through, then speaks to the agent.
fn caller_wav(dir: &Path) -> PathBuf {
    let ask = dir.join("ask.wav");
    // Time to be put through (and, warm, for the agent to hear the summary).
    g711_source_wav(
        &shared("audio/telephone/speak-to-customer-support_mulaw8k.wav"),
        &ask,
        1,
        24,
    );
    let more = common::speech::speak(dir, "more", "can I use my phone abroad");
    let more8k = dir.join("more-8k.wav");
    g711_source_wav(&more, &more8k, 0, 12);
    let out = dir.join("caller.wav");
    let status = Command::new("sox")
        .arg(&ask)
        .arg(&more8k)
        .arg(&out)
        .status()
        .expect("run sox");
    assert!(status.success(), "sox joined the caller's turns");
    out
}

#[test]
fn a_sip_caller_is_queued_to_a_chromium_agent_and_they_talk_both_ways() {
    let _turn = common::alone();
    let work = tempfile::tempdir().expect("tempdir");
    let extra = queue_flows(work.path());
    let hotline = serve(4, &extra);
    let password = "correct horse battery";
    hotline.cli(
        &["users", "add", "ann", "--role", "agent"],
        &[("HOTLINE_PASSWORD", password)],
    );

    // The agent signs in and becomes available.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (out, ready) = (work.path().join("agent.json"), work.path().join("ready"));
    let mut agent = Command::new("node")
        .current_dir(root.join("tests/web"))
        .arg("agent.mjs")
        .args([
            "--url",
            &format!("http://127.0.0.1:{}", hotline.web_port.unwrap()),
        ])
        .args(["--who", &format!("ann:{password}")])
        .arg("--wav")
        .arg(agent_wav(work.path()))
        .arg("--out")
        .arg(&out)
        .arg("--ready")
        .arg(&ready)
        .arg("--shots")
        .arg(harness::target_dir())
        .arg("--warm")
        .spawn()
        .expect("run node tests/web/agent.mjs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        if let Ok(Some(status)) = agent.try_wait() {
            panic!(
                "the agent page stopped before it was ready ({status}): {}",
                std::fs::read_to_string(&out).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the agent never became available"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The caller asks for a person, is put through, and talks to the agent.
    let caller = call_in(&hotline, &caller_wav(work.path()), 55, work.path());
    let events = hotline.one_call(Duration::from_secs(30));

    let deadline = Instant::now() + Duration::from_secs(40);
    while agent.try_wait().expect("agent page").is_none() {
        assert!(Instant::now() < deadline, "the agent page never finished");
        std::thread::sleep(Duration::from_millis(200));
    }
    let seen: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("agent result")).expect("JSON");
    assert!(
        seen["error"].is_null(),
        "agent page: {}\n{seen:#}",
        seen["error"]
    );

    // The record: a bridged transfer, answered by ann, then the caller hung up.
    let transfer = first(&events, "transfer");
    assert_eq!(transfer["target"], "queue:support", "{transfer}");
    let ringing = first(&events, "transfer_ringing");
    assert_eq!(ringing["agent"], "ann", "{ringing}");
    let result = first(&events, "transfer_result");
    assert_eq!(
        (&result["mode"], &result["outcome"], &result["agent"]),
        (
            &Value::from("warm"),
            &Value::from("answered"),
            &Value::from("ann")
        ),
        "{result}"
    );
    println!(
        "transfer decision to ringing: {} ms; answer to audio bridged: {} ms; decision to bridged: {} ms",
        result["ring_ms"], result["bridge_ms"], result["wait_ms"]
    );
    assert_eq!(first(&events, "hangup")["reason"], "caller.hangup");

    // The screen-pop had the caller, the reason and the conversation with the bot.
    let pop = &seen["ring"]["pop"];
    assert!(
        pop["caller"].as_str().unwrap_or("").starts_with("sip:"),
        "{pop:#}"
    );
    assert_eq!(pop["queue"], "support");
    let lines = pop["transcript"].as_array().expect("the transcript");
    assert!(
        lines
            .iter()
            .any(|l| l["who"] == "caller" && l["text"].as_str().unwrap_or("").contains("support")),
        "the caller's request is on the pop: {pop:#}"
    );
    assert!(lines.iter().any(|l| l["who"] == "bot"), "{pop:#}");

    // The agent heard the caller, and the caller's words reached the console live.
    let level = seen["seen"]["maxCallerLevel"].as_f64().unwrap_or(0.0);
    assert!(
        level > 0.02,
        "the agent heard the caller (peak RMS {level})"
    );
    let live: Vec<&Value> = seen["seen"]["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["type"] == "transcript" && e["final"] == true)
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !live.is_empty(),
        "the caller's words while bridged reached the console: {seen:#}"
    );
    // Assist: the knowledge base's answer for what the caller asked the agent.
    let suggested: Vec<&str> = seen["seen"]["assist"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["suggestions"].as_array().into_iter().flatten())
        .filter_map(|s| s["question"].as_str())
        .collect();
    println!("assist offered: {suggested:?}");
    assert!(
        suggested.iter().any(|q| q.contains("abroad")),
        "the agent was offered the answer about using the phone abroad: {suggested:?}"
    );
    assert_eq!(seen["seen"]["ended"], "call.ended", "{seen:#}");
    assert!(
        seen["seen"]["draft"]
            .as_str()
            .unwrap_or("")
            .contains("support"),
        "{seen:#}"
    );
    assert_eq!(
        seen["seen"]["saved"].as_array().map(Vec::len),
        Some(1),
        "the disposition was saved"
    );

    // Both sides of the talk with the agent are in the record: the agent's words too.
    let agent_said: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "agent_transcript")
        .filter_map(|e| e["text"].as_str())
        .collect();
    println!("the agent was heard saying: {agent_said:?}");
    assert!(
        agent_said.iter().any(|t| !t.trim().is_empty()),
        "the agent's words were recognised: {events:#?}"
    );

    // Warm: the agent heard the summary; the caller, on hold meanwhile, heard none of it
    // (nothing louder than the hold chime between the agent's answer and the bridge).
    let briefing = seen["seen"]["briefingLevel"].as_f64().unwrap_or(0.0);
    assert!(
        briefing > 0.02,
        "the agent heard the summary (peak RMS {briefing})"
    );
    let bridged_s = result["t_ms"].as_f64().unwrap_or(f64::MAX) / 1000.0;
    let accepted_s = bridged_s - result["bridge_ms"].as_f64().unwrap_or(0.0) / 1000.0;
    assert!(
        bridged_s - accepted_s > 3.0,
        "the agent connected after the summary: {result}"
    );
    let leaked = loud_frames_between(
        &caller.dump("-dec.wav"),
        accepted_s + 0.6,
        bridged_s - 0.3,
        1_500.0,
    );
    assert!(leaked <= 2, "the caller heard the briefing ({leaked} loud frames between {accepted_s:.1} s and {bridged_s:.1} s)");

    // The caller heard the agent: audio after the bridge, when the bot is quiet and the hold
    // audio has stopped.
    let ended_s = first(&events, "hangup")["t_ms"].as_f64().unwrap_or(0.0) / 1000.0;
    let heard = loud_frames_between(&caller.dump("-dec.wav"), bridged_s + 1.0, ended_s, 300.0);
    assert!(
        heard > 50,
        "the caller heard the agent ({heard} loud frames between {bridged_s:.1} s and {ended_s:.1} s)"
    );
    let _ = PT_PCMU;
}

/// With no agent signed in, a caller who asks for a person stays with the bot, which says
/// that every agent is busy, and the record says `busy`.
#[test]
fn with_nobody_there_the_caller_goes_back_to_the_bot_and_hears_why() {
    let _turn = common::alone();
    let work = tempfile::tempdir().expect("tempdir");
    let extra = queue_flows(work.path());
    let hotline = serve(2, &extra);
    let pcap = common::pcap::support_request_pcap(work.path(), PT_PCMU);
    let outcome = common::sipp::support_caller(hotline.sip_addr(), &pcap)
        .timeout_s(40)
        .spawn(work.path())
        .wait(Duration::from_secs(60));
    assert!(outcome.success, "{outcome:?}");
    let events = hotline.one_call(Duration::from_secs(20));
    let result = first(&events, "transfer_result");
    assert_eq!(
        (&result["mode"], &result["outcome"]),
        (&Value::from("bridged"), &Value::from("busy")),
        "{result}"
    );
    let failed = first(&events, "transfer_failed");
    assert_eq!(failed["reason"], "busy");
    let after: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "bot_reply" && e["t_ms"].as_u64() >= failed["t_ms"].as_u64())
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(
        after.iter().any(|t| t.contains("agents are busy")),
        "the bot says why: {after:?}"
    );
    assert!(
        after
            .iter()
            .any(|t| t.contains("call you back") && t.contains("leave a message")),
        "and offers the flow's options: {after:?}"
    );
    assert!(
        events.iter().any(|e| e["type"] == "bot_audio_start"
            && e["t_ms"].as_u64() > failed["t_ms"].as_u64()),
        "and the caller hears it"
    );
}

/// A baresip caller asks for a person; hotline calls the agent's phone (SIPp, which answers
/// and sends back what it hears) with the call's context headers, and bridges them: the caller
/// hears their own words come back through the agent, so audio went both ways.
#[test]
fn a_sip_caller_is_bridged_to_a_sip_agent_who_answers() {
    let _turn = common::alone();
    let work = tempfile::tempdir().expect("tempdir");
    let agent = common::sipp::Sipp::scenario("uas_agent.xml")
        .media()
        .arg("-rtp_echo")
        .timeout_s(90);
    let extra = flows_to(
        work.path(),
        &format!("sip:agent@127.0.0.1:{}", agent.port()),
        "sip_transfer = \"bridge\"\n",
        "",
    );
    let hotline = serve(4, &extra);
    let agent = agent.spawn(work.path());
    let caller = call_in(&hotline, &caller_wav(work.path()), 45, work.path());
    let events = hotline.one_call(Duration::from_secs(30));
    let outcome = agent.wait(Duration::from_secs(30));
    assert!(
        outcome.success,
        "the agent's phone got the context and a clean call: {outcome:?}"
    );

    let result = first(&events, "transfer_result");
    assert_eq!(
        (&result["mode"], &result["outcome"]),
        (&Value::from("bridged"), &Value::from("answered")),
        "{result}"
    );
    println!(
        "SIP agent: transfer decision to ringing {} ms; answer to audio bridged {} ms; decision to bridged {} ms",
        result["ring_ms"], result["bridge_ms"], result["wait_ms"]
    );
    let bridged_s = result["t_ms"].as_f64().unwrap_or(f64::MAX) / 1000.0;
    let ended_s = first(&events, "hangup")["t_ms"].as_f64().unwrap_or(0.0) / 1000.0;
    let heard = loud_frames_between(&caller.dump("-dec.wav"), bridged_s + 1.0, ended_s, 300.0);
    assert!(
        heard > 25,
        "the caller heard their words come back through the agent ({heard} loud frames between {bridged_s:.1} s and {ended_s:.1} s)"
    );
    assert!(
        events.iter().any(|e| e["type"] == "transcript"
            && e["final"] == true
            && e["t_ms"].as_f64().unwrap_or(0.0) / 1000.0 > bridged_s),
        "the caller is still transcribed while with the agent"
    );
}

/// The agent's phone is busy (486), or rings until hotline gives up (CANCEL): each time the
/// caller goes back to the bot, which says why.
#[test]
fn a_busy_or_unanswered_sip_agent_sends_the_caller_back_to_the_bot() {
    let _turn = common::alone();
    for (scenario, outcome, says) in [
        ("uas_agent_busy.xml", "busy", "agents are busy"),
        (
            "uas_agent_no_answer.xml",
            "no_answer",
            "no agent could answer in time",
        ),
    ] {
        let work = tempfile::tempdir().expect("tempdir");
        let agent = common::sipp::Sipp::scenario(scenario).timeout_s(60);
        let extra = flows_to(
            work.path(),
            &format!("sip:agent@127.0.0.1:{}", agent.port()),
            "sip_transfer = \"bridge\"\nsip_ring_timeout_s = 2\n",
            "",
        );
        let hotline = serve(2, &extra);
        let agent = agent.spawn(work.path());
        let pcap = common::pcap::support_request_pcap(work.path(), PT_PCMU);
        // The caller stays long enough for a slow recognizer, the ring timeout and the bot's
        // word on what happened.
        let call = common::sipp::support_caller(hotline.sip_addr(), &pcap)
            .stays_s(30)
            .timeout_s(50)
            .spawn(work.path())
            .wait(Duration::from_secs(70));
        assert!(call.success, "{call:?}");
        let events = hotline.one_call(Duration::from_secs(20));
        let agent = agent.wait(Duration::from_secs(20));
        assert!(
            agent.success,
            "{scenario}: the agent's phone saw a clean exchange: {agent:?}"
        );
        let result = first(&events, "transfer_result");
        assert_eq!(
            (&result["mode"], &result["outcome"]),
            (&Value::from("bridged"), &Value::from(outcome)),
            "{scenario}: {result}"
        );
        let failed = first(&events, "transfer_failed");
        let after: Vec<&str> = events
            .iter()
            .filter(|e| e["type"] == "bot_reply" && e["t_ms"].as_u64() >= failed["t_ms"].as_u64())
            .filter_map(|e| e["text"].as_str())
            .collect();
        assert!(
            after.iter().any(|t| t.contains(says)),
            "{scenario}: the bot says why: {after:?}"
        );
    }
}

/// A SIP caller's phone refuses the REFER (603): hotline calls the target itself and bridges
/// it (`agents.refer_fallback`), so the caller still reaches the agent and never hears the bot
/// give up. Both attempts are in the record.
#[test]
fn a_refused_refer_falls_back_to_a_bridged_call() {
    let _turn = common::alone();
    let work = tempfile::tempdir().expect("tempdir");
    let agent = common::sipp::Sipp::scenario("uas_agent.xml")
        .media()
        .arg("-rtp_echo")
        .timeout_s(60);
    let extra = flows_to(
        work.path(),
        &format!("sip:agent@127.0.0.1:{}", agent.port()),
        "refer_fallback = true\n",
        "",
    );
    let hotline = serve(2, &extra);
    let agent = agent.spawn(work.path());
    let pcap = common::pcap::support_request_pcap(work.path(), PT_PCMU);
    let caller = common::sipp::Sipp::scenario("uac_transfer_refused.xml")
        .remote(hotline.sip_addr())
        .media()
        .key("service", "support")
        .key("codec_pt", PT_PCMU)
        .key("codec_name", "PCMU")
        .key("pcap", pcap.display())
        .timeout_s(60)
        .spawn(work.path())
        .wait(Duration::from_secs(70));
    assert!(
        caller.success,
        "the caller refused the REFER and was never hung up on: {caller:?}"
    );
    let events = hotline.one_call(Duration::from_secs(20));
    let agent = agent.wait(Duration::from_secs(20));
    assert!(agent.success, "{agent:?}");
    let results: Vec<(String, String)> = attempts(&events)
        .into_iter()
        .map(|(_, mode, outcome)| (mode, outcome))
        .collect();
    let expected = [("blind", "rejected"), ("bridged", "answered")]
        .map(|(m, o)| (m.to_string(), o.to_string()));
    assert_eq!(results, expected, "{events:#?}");
    assert!(
        !events.iter().any(|e| e["type"] == "transfer_failed"),
        "the bot never took the call back"
    );
}

/// Ten seconds of digital silence at 48 kHz: an agent who says nothing.
fn silent_wav(dir: &Path) -> PathBuf {
    let out = dir.join("silence-48k.wav");
    let status = Command::new("sox")
        .args([
            "-n",
            "-r",
            "48000",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-c",
            "1",
        ])
        .arg(&out)
        .args(["trim", "0", "10"])
        .status()
        .expect("run sox");
    assert!(status.success(), "sox made silence");
    out
}

/// Runs a page script in `tests/web` with `args`; returns its child.
fn node(script: &str, args: &[&std::ffi::OsStr]) -> std::process::Child {
    Command::new("node")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web"))
        .arg(script)
        .args(args)
        .spawn()
        .unwrap_or_else(|e| panic!("run node tests/web/{script}: {e}"))
}

/// Waits for a page script and reads its result JSON.
fn result_of(mut child: std::process::Child, out: &Path, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    while child.try_wait().expect("page script").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} never finished within {within:?}: {}",
                out.display(),
                std::fs::read_to_string(out).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let seen: Value = serde_json::from_str(&std::fs::read_to_string(out).expect("page result"))
        .expect("result JSON");
    assert!(
        seen["error"].is_null(),
        "{}: {}\n{seen:#}",
        out.display(),
        seen["error"]
    );
    seen
}

/// A supervisor whispers to an agent on a call: the agent hears the supervisor, the caller
/// does not. The caller is silent once put through and the agent's microphone is silent, so
/// whatever either of them hears in the whisper is the supervisor.
#[test]
fn a_supervisor_whispers_to_the_agent_and_the_caller_does_not_hear_it() {
    let _turn = common::alone();
    let work = tempfile::tempdir().expect("tempdir");
    let extra = flows_to(work.path(), "queue:support", "", "");
    let hotline = serve(4, &extra);
    let password = "correct horse battery";
    for (name, role) in [("ann", "agent"), ("sam", "supervisor")] {
        hotline.cli(
            &["users", "add", name, "--role", role],
            &[("HOTLINE_PASSWORD", password)],
        );
    }
    let url = format!("http://127.0.0.1:{}", hotline.web_port.unwrap());
    let shots = harness::target_dir();
    let (agent_out, ready) = (work.path().join("agent.json"), work.path().join("ready"));
    let silence = silent_wav(work.path());
    let agent = node(
        "agent.mjs",
        &[
            "--url".as_ref(),
            url.as_ref(),
            "--who".as_ref(),
            format!("ann:{password}").as_ref(),
            "--wav".as_ref(),
            silence.as_os_str(),
            "--out".as_ref(),
            agent_out.as_os_str(),
            "--ready".as_ref(),
            ready.as_os_str(),
            "--shots".as_ref(),
            work.path().as_os_str(),
            "--on-call-ms".as_ref(),
            "1000".as_ref(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(
            Instant::now() < deadline,
            "the agent never became available"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let sup_out = work.path().join("supervisor.json");
    let voice = agent_wav(work.path());
    let supervisor = node(
        "supervisor.mjs",
        &[
            "--url".as_ref(),
            url.as_ref(),
            "--who".as_ref(),
            format!("sam:{password}").as_ref(),
            "--wav".as_ref(),
            voice.as_os_str(),
            "--out".as_ref(),
            sup_out.as_os_str(),
            "--shots".as_ref(),
            shots.as_os_str(),
            "--mode".as_ref(),
            "whisper".as_ref(),
            "--stay-ms".as_ref(),
            "8000".as_ref(),
        ],
    );

    let ask = work.path().join("ask.wav");
    g711_source_wav(
        &shared("audio/telephone/speak-to-customer-support_mulaw8k.wav"),
        &ask,
        1,
        34,
    );
    let caller = call_in(&hotline, &ask, 40, work.path());
    let events = hotline.one_call(Duration::from_secs(30));
    let sup = result_of(supervisor, &sup_out, Duration::from_secs(90));
    let agent = result_of(agent, &agent_out, Duration::from_secs(90));

    let result = first(&events, "transfer_result");
    assert_eq!(result["outcome"], "answered", "{result}");
    let supervised: Vec<(&str, f64)> = events
        .iter()
        .filter(|e| e["type"] == "supervisor")
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["t_ms"].as_f64().unwrap_or(0.0) / 1000.0,
            )
        })
        .collect();
    assert_eq!(
        supervised.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        vec!["whisper", "left"],
        "the record has the supervisor's whisper: {events:#?}"
    );
    let (from_s, to_s) = (supervised[0].1, supervised[1].1);
    println!(
        "whisper from {from_s:.1} s to {to_s:.1} s; supervisor steps {}",
        sup["steps"]
    );
    let heard = agent["seen"]["maxCallerLevel"].as_f64().unwrap_or(0.0);
    assert!(
        heard > 0.02,
        "the agent heard the supervisor (peak RMS {heard})"
    );
    let leaked = loud_frames_between(&caller.dump("-dec.wav"), from_s + 0.5, to_s, 300.0);
    assert!(
        leaked <= 2,
        "the caller heard the whisper ({leaked} loud frames between {from_s:.1} s and {to_s:.1} s)"
    );
}

/// A caller on the web phone (headless Chromium) asks for a person and is put through to the
/// agent (another Chromium): each hears the other.
#[test]
fn a_web_caller_is_put_through_to_a_chromium_agent() {
    let _turn = common::alone();
    let work = tempfile::tempdir().expect("tempdir");
    let extra = flows_to(work.path(), "queue:support", "", "");
    let hotline = serve(4, &extra);
    let password = "correct horse battery";
    hotline.cli(
        &["users", "add", "ann", "--role", "agent"],
        &[("HOTLINE_PASSWORD", password)],
    );
    let url = format!("http://127.0.0.1:{}", hotline.web_port.unwrap());
    let (agent_out, ready) = (work.path().join("agent.json"), work.path().join("ready"));
    let voice = agent_wav(work.path());
    let agent = node(
        "agent.mjs",
        &[
            "--url".as_ref(),
            url.as_ref(),
            "--who".as_ref(),
            format!("ann:{password}").as_ref(),
            "--wav".as_ref(),
            voice.as_os_str(),
            "--out".as_ref(),
            agent_out.as_os_str(),
            "--ready".as_ref(),
            ready.as_os_str(),
            "--shots".as_ref(),
            work.path().as_os_str(),
            "--on-call-ms".as_ref(),
            "1000".as_ref(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(
            Instant::now() < deadline,
            "the agent never became available"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The caller's microphone (Chromium loops it): the request for a person, again and again.
    let caller_wav = work.path().join("caller-48k.wav");
    let status = Command::new("sox")
        .arg(shared(
            "audio/telephone/speak-to-customer-support_mulaw8k.wav",
        ))
        .args(["-r", "48000", "-b", "16", "-e", "signed-integer", "-c", "1"])
        .arg(&caller_wav)
        .args(["pad", "1.5", "4"])
        .status()
        .expect("run sox");
    assert!(status.success());
    let caller_out = work.path().join("phone-human.json");
    let shot = harness::target_dir().join("web-caller-with-agent.png");
    let caller = node(
        "phone.mjs",
        &[
            "--url".as_ref(),
            url.as_ref(),
            "--mode".as_ref(),
            "human".as_ref(),
            "--stay-ms".as_ref(),
            "8000".as_ref(),
            "--timeout-ms".as_ref(),
            "60000".as_ref(),
            "--wav".as_ref(),
            caller_wav.as_os_str(),
            "--out".as_ref(),
            caller_out.as_os_str(),
            "--screenshot".as_ref(),
            shot.as_os_str(),
        ],
    );
    let phone = result_of(caller, &caller_out, Duration::from_secs(120));
    let agent = result_of(agent, &agent_out, Duration::from_secs(90));
    let events = hotline.one_call(Duration::from_secs(30));

    let result = first(&events, "transfer_result");
    assert_eq!(
        (&result["mode"], &result["outcome"]),
        (&Value::from("bridged"), &Value::from("answered")),
        "{result}"
    );
    assert_eq!(first(&events, "call_start")["transport"], "webrtc");
    assert_eq!(phone["midCall"]["human"], "ann", "{phone:#}");
    let heard_agent = phone["midCall"]["maxHumanLevel"].as_f64().unwrap_or(0.0);
    assert!(
        heard_agent > 0.02,
        "the web caller heard the agent (peak RMS {heard_agent})"
    );
    let heard_caller = agent["seen"]["maxCallerLevel"].as_f64().unwrap_or(0.0);
    assert!(
        heard_caller > 0.02,
        "the agent heard the web caller (peak RMS {heard_caller})"
    );
}

/// Nobody is signed in to the queue, so the caller overflows to the queue's `overflow` target,
/// a SIP agent who answers: both attempts are in the record.
#[test]
fn a_queue_with_nobody_there_overflows_to_a_sip_agent() {
    let _turn = common::alone();
    let work = tempfile::tempdir().expect("tempdir");
    let agent = common::sipp::Sipp::scenario("uas_agent.xml")
        .media()
        .arg("-rtp_echo")
        .timeout_s(60);
    let extra = flows_to(
        work.path(),
        "queue:support",
        "",
        &format!("overflow = \"sip:agent@127.0.0.1:{}\"\n", agent.port()),
    );
    let hotline = serve(2, &extra);
    let agent = agent.spawn(work.path());
    let pcap = common::pcap::support_request_pcap(work.path(), PT_PCMU);
    let call = common::sipp::support_caller(hotline.sip_addr(), &pcap)
        .timeout_s(40)
        .spawn(work.path())
        .wait(Duration::from_secs(60));
    assert!(call.success, "{call:?}");
    let events = hotline.one_call(Duration::from_secs(20));
    let agent = agent.wait(Duration::from_secs(20));
    assert!(agent.success, "{agent:?}");
    let results = attempts(&events);
    assert_eq!(results.len(), 2, "{events:#?}");
    assert_eq!(
        results[0],
        ("queue:support".into(), "bridged".into(), "busy".into())
    );
    assert!(
        results[1].0.starts_with("sip:agent@") && results[1].2 == "answered",
        "{results:?}"
    );
}

/// Warm transfer to a phone: the agent hears the call's summary and presses 1 to take the
/// call; the caller, on hold meanwhile, hears none of the summary.
#[test]
fn a_phone_agent_hears_the_summary_and_takes_the_call_with_a_key() {
    let _turn = common::alone();
    let work = tempfile::tempdir().expect("tempdir");
    let keys = common::pcap::dtmf_pcap(work.path(), &[1]);
    let agent = common::sipp::Sipp::scenario("uas_agent_warm.xml")
        .media()
        .key("pcap", keys.display())
        .timeout_s(60);
    let extra = flows_to(
        work.path(),
        &format!("sip:agent@127.0.0.1:{}", agent.port()),
        "sip_transfer = \"bridge\"\nsip_warm = true\n",
        "",
    );
    let hotline = serve(2, &extra);
    let agent = agent.spawn(work.path());
    let ask = work.path().join("ask.wav");
    g711_source_wav(
        &shared("audio/telephone/speak-to-customer-support_mulaw8k.wav"),
        &ask,
        1,
        24,
    );
    let caller = call_in(&hotline, &ask, 30, work.path());
    let events = hotline.one_call(Duration::from_secs(30));
    let agent = agent.wait(Duration::from_secs(30));
    assert!(agent.success, "{agent:?}");
    let result = first(&events, "transfer_result");
    assert_eq!(
        (&result["mode"], &result["outcome"]),
        (&Value::from("warm"), &Value::from("answered")),
        "{result}"
    );
    let bridged_s = result["t_ms"].as_f64().unwrap_or(f64::MAX) / 1000.0;
    let answered_s = bridged_s - result["bridge_ms"].as_f64().unwrap_or(0.0) / 1000.0;
    assert!(
        bridged_s - answered_s > 3.0,
        "the agent took the call with the key, after the summary began: {result}"
    );
    let leaked = loud_frames_between(
        &caller.dump("-dec.wav"),
        answered_s + 0.5,
        bridged_s - 0.3,
        1_500.0,
    );
    assert!(
        leaked <= 2,
        "the caller heard the summary ({leaked} loud frames between {answered_s:.1} s and {bridged_s:.1} s)"
    );
}
