//! A soak: many SIPp callers at once against a real `hotline serve` for a while, mixing
//! - callers who speak over the greeting (barge-in) and ask for customer support, which the
//!   bot transfers (REFER, accepted, NOTIFY 200; half of all calls);
//! - callers who press keys (RFC 4733 and SIP INFO; a quarter);
//! - callers who hang up at a random moment, 0.3 to 4 s after the answer (a quarter).
//!
//! Afterwards: every call SIPp placed left a whole record (every line parses, `call_start`
//! first, a `hangup`, a `call_end` with media counters); the server's open files and tokio
//! tasks are back to where they were before the first call; its memory after the warm-up (the
//! first quarter) grew less than the bound, and the figures are printed.
//!
//! `HOTLINE_SOAK_SECONDS` (120) and `HOTLINE_SOAK_CALLS` (calls at once, 8) set the size; the
//! hour-long soak is `HOTLINE_SOAK_SECONDS=3600 HOTLINE_SOAK_CALLS=50` (its recordings take
//! about 12 GB: 64 KB/s per call; a full disk shows up as records without `call_end`). Memory may grow 5 % at
//! most over a soak of 30 minutes or more, 25 % over a short one (a few minutes are mostly
//! the allocator settling).
//!
//! SIPp's pcap player writes through a raw socket, so this test needs root (CI runs as root).

mod common;

use std::time::{Duration, Instant};

use common::hotline::Hotline;
use common::pcap::{dtmf_pcap, support_request_pcap, PT_PCMU};
use common::ports::RtpPorts;
use common::records::call_dirs;
use common::sipp::{support_caller, Sipp, SippOutcome};

/// More calls than a soak places: each SIPp runs until it is asked to stop.
const UNTIL_STOPPED: u32 = 10_000_000;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The server's resident memory in KiB, open files and threads, from `/proc`.
fn process_figures(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss_kib, fds)
}

/// The server's live tokio tasks once they are back to `baseline` (two more allowed), or after
/// a minute: a transaction whose peer went quiet keeps its task for its timers (32 s at most).
fn tasks_settle(hotline: &Hotline, baseline: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tasks = hotline.health()["tasks_alive"].as_u64().unwrap_or(u64::MAX);
        if tasks <= baseline + 2 || Instant::now() >= deadline {
            return tasks;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn many_callers_for_a_while_leave_every_record_and_no_leak() {
    let _alone = common::alone();
    let seconds = env_number("HOTLINE_SOAK_SECONDS", 120);
    let concurrent = env_number("HOTLINE_SOAK_CALLS", 8).max(4) as u32;
    let rtp = RtpPorts::free((concurrent * 2 + 8) as u16);
    let hotline = Hotline::start_with_web(
        concurrent as usize * 2 + 4,
        &format!(
            "port = 0\ncodecs = [\"PCMU\"]\nrtp_timeout_ms = 10000\n{}\n[sip.limits]\ncalls_per_s = 0.0\n",
            rtp.toml()
        ),
    );
    let pid = hotline.pid();
    let work = tempfile::tempdir().expect("tempdir");
    let speech = support_request_pcap(work.path(), PT_PCMU);
    let keys = dtmf_pcap(work.path(), &[1, 5, 11]);

    // Warm the engines with one call, then take the baseline.
    Sipp::scenario("uac_hangup_random.xml")
        .remote(hotline.sip_addr())
        .media()
        .key("service", "support")
        .key("codec_pt", PT_PCMU)
        .key("codec_name", "PCMU")
        .key("pcap", speech.display())
        .run_ok(work.path());
    std::thread::sleep(Duration::from_secs(2));
    let baseline_tasks = hotline.health()["tasks_alive"].as_u64().unwrap_or(0);
    let (_, baseline_fds) = process_figures(pid);

    // Each kind of call at its share of the callers, placing calls until the time is up; then
    // each SIPp is asked to stop smoothly (no new call, the calls under way run to their end),
    // so that every call is counted as SIPp saw it.
    let share = |part: u32| (concurrent * part / 4).max(1);
    let runs = [
        (
            common::sipp::utterance_caller(&speech).calls(UNTIL_STOPPED, share(2)),
            "speech, barge-in and transfer",
        ),
        (
            Sipp::scenario("uac_dtmf.xml")
                .key("pcap", keys.display())
                .key("info_digit", "7")
                .calls(UNTIL_STOPPED, share(1)),
            "keys",
        ),
        (
            Sipp::scenario("uac_hangup_random.xml")
                .key("pcap", speech.display())
                .calls(UNTIL_STOPPED, share(1)),
            "random hang-ups",
        ),
    ];
    let started = Instant::now();
    let running: Vec<_> = runs
        .into_iter()
        .map(|(sipp, what)| {
            let run = sipp
                .remote(hotline.sip_addr())
                .media()
                .key("service", "support")
                .key("codec_pt", PT_PCMU)
                .key("codec_name", "PCMU")
                .timeout_s(seconds as u32 + 180)
                .spawn(work.path());
            (run, what)
        })
        .collect();
    // Memory every 5 s while the calls go on.
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut outcomes: Vec<(SippOutcome, &str)> = Vec::new();
    let mut running: Vec<_> = running.into_iter().map(Some).collect();
    let mut stopping = false;
    while running.iter().any(Option::is_some) {
        if !stopping && started.elapsed() >= Duration::from_secs(seconds) {
            for (run, _) in running.iter().flatten() {
                run.stop_placing_calls();
            }
            stopping = true;
        }
        for slot in running.iter_mut() {
            let finished = slot.as_mut().is_some_and(|(run, _)| run.finished());
            if finished {
                if let Some((run, what)) = slot.take() {
                    outcomes.push((run.wait(Duration::from_secs(5)), what));
                }
            }
        }
        let (rss, _) = process_figures(pid);
        samples.push((started.elapsed().as_secs_f64(), rss));
        assert!(
            started.elapsed() < Duration::from_secs(seconds + 300),
            "the soak's callers did not finish"
        );
        std::thread::sleep(Duration::from_secs(5));
    }
    let ran_s = started.elapsed().as_secs_f64();

    // Every call is over on the server.
    calls_gone(&hotline, 90, "calls still up");
    std::thread::sleep(Duration::from_secs(2));

    let mut placed = 1; // the warm-up call
    for (outcome, what) in &outcomes {
        let ok = outcome.count("Successful call");
        let failed = outcome.count("Failed call");
        println!("{what}: {ok} successful, {failed} failed");
        placed += ok + failed;
    }
    // Nothing leaked.
    let tasks = tasks_settle(&hotline, baseline_tasks);
    let (rss_end, fds) = process_figures(pid);
    let warm = samples
        .iter()
        .find(|(t, _)| *t >= ran_s / 4.0)
        .map_or(rss_end, |(_, rss)| *rss);
    let peak = samples.iter().map(|(_, r)| *r).max().unwrap_or(0);
    let last_loaded = samples.last().map_or(rss_end, |(_, r)| *r);
    let growth = (last_loaded as f64 - warm as f64) / warm.max(1) as f64 * 100.0;
    // Every call left a whole record (problems are collected, then reported together).
    let dirs = call_dirs(&hotline.records);
    let mut events_total = 0usize;
    let mut broken: Vec<String> = Vec::new();
    let mut call_ids = std::collections::HashSet::new();
    for dir in &dirs {
        let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
        let events: Vec<serde_json::Value> = match text
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
        {
            Ok(events) => events,
            Err(e) => {
                broken.push(format!(
                    "{}: an event line does not parse: {e}",
                    dir.display()
                ));
                continue;
            }
        };
        events_total += events.len();
        if let Some(id) = events.first().and_then(|e| e["call_id"].as_str()) {
            if !call_ids.insert(id.to_string()) {
                broken.push(format!("{}: a second record of call {id}", dir.display()));
            }
        }
        let whole = events.first().is_some_and(|e| e["type"] == "call_start")
            && events.iter().any(|e| e["type"] == "hangup")
            && events.last().is_some_and(|e| e["type"] == "call_end")
            && dir.join("transcript.txt").is_file()
            && hound::WavReader::open(dir.join("recording.wav")).is_ok();
        if !whole {
            broken.push(format!(
                "{}: not whole (call_start first, a hangup, call_end last, transcript, readable WAV)",
                dir.display()
            ));
        }
    }
    println!(
        "soak: {placed} calls ({concurrent} at once) in {ran_s:.0} s, {events_total} events; \
         RSS after warm-up {:.1} MiB, at the end of the calls {:.1} MiB ({growth:+.1} %), peak \
         {:.1} MiB, idle {:.1} MiB; files {baseline_fds} -> {fds}; tasks {baseline_tasks} -> {tasks}",
        warm as f64 / 1024.0,
        last_loaded as f64 / 1024.0,
        peak as f64 / 1024.0,
        rss_end as f64 / 1024.0
    );
    assert!(
        broken.is_empty(),
        "{} of {} records are not whole, e.g. {:?}",
        broken.len(),
        dirs.len(),
        &broken[..broken.len().min(5)]
    );
    assert_eq!(dirs.len() as u64, placed, "one record per call SIPp placed");
    assert!(
        fds <= baseline_fds + 2,
        "open files leaked: {baseline_fds} before, {fds} after"
    );
    assert!(
        tasks <= baseline_tasks + 2,
        "tasks leaked: {baseline_tasks} before, {tasks} after"
    );
    let bound = if seconds >= 1800 { 5.0 } else { 25.0 };
    assert!(
        growth < bound,
        "memory grew {growth:.1} % after the warm-up (bound {bound} %)"
    );
}

/// Callers whose phones die mid-call (SIPp killed: no BYE, no more RTP). The server hangs each
/// call up when its media stops, records it, and once its BYE has given up on the silent
/// peer, nothing of the call is left: no task and no open file.
#[test]
fn callers_who_vanish_mid_call_leave_nothing_behind() {
    let _alone = common::alone();
    let rtp = RtpPorts::free(20);
    let hotline = Hotline::start_with_web(
        10,
        &format!(
            "port = 0\ncodecs = [\"PCMU\"]\nrtp_timeout_ms = 2000\n{}\n",
            rtp.toml()
        ),
    );
    let pid = hotline.pid();
    let work = tempfile::tempdir().expect("tempdir");
    let speech = support_request_pcap(work.path(), PT_PCMU);
    let call = || support_caller(hotline.sip_addr(), &speech);
    // The warm-up call ends with the bot's transfer or, on a slow machine where the transfer
    // comes later, with the RTP timeout once its audio has ended (hotline's BYE, which SIPp
    // counts as unexpected): either way every engine has run. The baseline is taken once it is
    // gone.
    let _ = call()
        .timeout_s(30)
        .spawn(work.path())
        .wait(Duration::from_secs(40));
    calls_gone(&hotline, 20, "the warm-up call is still up");
    std::thread::sleep(Duration::from_secs(2));
    let baseline_tasks = hotline.health()["tasks_alive"].as_u64().unwrap_or(0);
    let (_, baseline_fds) = process_figures(pid);

    // Eight callers a second apart, gone 12 s after the first answer: they vanish at every
    // point of the call (speaking, heard, answered, being transferred).
    let callers = call().calls(8, 8).arg("-r").arg("1").spawn(work.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    while hotline.health()["calls"] == 0 {
        assert!(
            Instant::now() < deadline,
            "no call connected: {}",
            hotline.health()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(12));
    callers.vanish();

    calls_gone(&hotline, 30, "calls still up");
    let gone = Instant::now();
    let tasks = tasks_settle(&hotline, baseline_tasks);
    println!(
        "vanished callers: tasks {baseline_tasks} -> {tasks} after {:.1} s",
        gone.elapsed().as_secs_f64()
    );
    let (_, fds) = process_figures(pid);
    assert!(
        tasks <= baseline_tasks + 2,
        "tasks leaked: {baseline_tasks} before, {tasks} after"
    );
    assert!(
        fds <= baseline_fds + 2,
        "open files leaked: {baseline_fds} before, {fds} after"
    );
    let dirs = call_dirs(&hotline.records);
    assert_eq!(dirs.len(), 9, "one record per call");
    for dir in &dirs[..] {
        let text = std::fs::read_to_string(dir.join("events.jsonl")).expect("events");
        assert!(
            text.lines()
                .last()
                .is_some_and(|l| l.contains("\"call_end\"")),
            "{}: the record is not closed",
            dir.display()
        );
    }
}

/// Waits up to `seconds` for the server to have no call up; fails with `what` and its health.
fn calls_gone(hotline: &Hotline, seconds: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while hotline.health()["calls"] != 0 {
        assert!(Instant::now() < deadline, "{what}: {}", hotline.health());
        std::thread::sleep(Duration::from_millis(200));
    }
}
