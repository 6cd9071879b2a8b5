//! `hotline serve` against real SIP peers on loopback: trunk registration with digest
//! authentication against a SIPp registrar (`sip/scenarios/registrar.xml`, 401) and one behind
//! an authenticating proxy (`sip/scenarios/proxy_registrar.xml`, 407), and a call from baresip
//! (Debian `baresip-core`) that carries audio both ways.
//!
//! Each test runs the `hotline` binary with its own config file and ports, and stops it with
//! SIGINT as an operator would.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn shared() -> PathBuf {
    let dir = std::env::var_os("HOTLINE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    assert!(
        dir.join("audio").is_dir(),
        "shared test data not found at {} (set HOTLINE_SHARED)",
        dir.display()
    );
    dir
}

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("sip/scenarios")
        .join(name)
}

/// A running `hotline serve`; its log goes to a file. Stopped with SIGINT on drop.
struct Served {
    child: Child,
    log: PathBuf,
    records: PathBuf,
    _work: tempfile::TempDir,
}

impl Served {
    /// Starts `hotline serve` with the offline recognizer, no web server, and `sip` as the body
    /// of the `[sip]` section (followed by anything else, e.g. `[sip.registration]`).
    fn start(sip: &str) -> Self {
        let work = tempfile::tempdir().expect("tempdir");
        let records = work.path().join("records");
        let config = work.path().join("hotline.toml");
        std::fs::write(
            &config,
            format!(
                "[asr]\nengine = \"sphinx\"\n[server]\nrecords_dir = \"{}\"\nmax_calls = 4\n\
                 [web]\nenabled = false\n[sip]\n{sip}\n",
                records.display()
            ),
        )
        .expect("write config");
        let log = work.path().join("hotline.log");
        let child = Command::new(env!("CARGO_BIN_EXE_hotline"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("RUST_LOG", "info,hotline_sip=debug")
            .env("HOTLINE_SHARED", shared())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start hotline serve");
        Self {
            child,
            log,
            records,
            _work: work,
        }
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Waits until the log has a line containing every one of `needles`.
    fn wait_for_log(&mut self, needles: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.log_text();
            if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_string();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("hotline serve exited ({status}):\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs SIPp in the background; `wait` collects its exit status and screen.
struct Sipp {
    child: Child,
    screen: PathBuf,
}

impl Sipp {
    fn spawn(args: &[&str], keys: &[(&str, &str)], work: &Path) -> Self {
        let screen = work.join(format!("sipp-{}.log", std::process::id()));
        let mut command = Command::new("sipp");
        command.args(args).args([
            "-i",
            "127.0.0.1",
            "-m",
            "1",
            "-timeout",
            "30s",
            "-timeout_error",
            "-nostdin",
        ]);
        for (key, value) in keys {
            command.args(["-key", key, value]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&screen).expect("sipp log"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run sipp (Debian package sip-tester)");
        Self { child, screen }
    }

    /// Waits for SIPp to finish; `(success, screen)`.
    fn wait(mut self, within: Duration) -> (bool, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let screen = std::fs::read_to_string(&self.screen).unwrap_or_default();
        let tail = screen[screen.len().saturating_sub(4000)..].to_string();
        (status.is_some_and(|s| s.success()), tail)
    }
}

fn registration_config(registrar_port: u16, rtp_min: u16, password: &str) -> String {
    format!(
        "port = 0\nrtp_port_min = {rtp_min}\nrtp_port_max = {}\n\
         [sip.registration]\nregistrar = \"127.0.0.1:{registrar_port}\"\nusername = \"1001\"\n\
         password = \"{password}\"\nexpires_s = 300\n",
        rtp_min + 3
    )
}

/// hotline registers to a SIPp registrar that challenges with 401: SIPp verifies the digest
/// (exit 0 only then), and hotline takes the granted expiry from the 200 OK.
#[test]
fn registers_with_digest_auth_to_a_sipp_registrar() {
    let work = tempfile::tempdir().expect("tempdir");
    let registrar_port = 37_000;
    let registrar = Sipp::spawn(
        &[
            "-sf",
            scenario("registrar.xml").to_str().expect("utf-8 path"),
            "-p",
            &registrar_port.to_string(),
        ],
        &[
            ("username", "1001"),
            ("password", "s3cret"),
            ("expires", "120"),
        ],
        work.path(),
    );
    let mut hotline = Served::start(&registration_config(registrar_port, 37_100, "s3cret"));
    let (ok, screen) = registrar.wait(Duration::from_secs(40));
    assert!(
        ok,
        "the registrar saw a correctly authenticated REGISTER:\n{screen}\n{}",
        hotline.log_text()
    );
    hotline.wait_for_log(
        &["trunk registration", "registered for 120 s"],
        Duration::from_secs(10),
    );
    assert!(
        !hotline.records.exists()
            || std::fs::read_dir(&hotline.records)
                .map(|d| d.count() == 0)
                .unwrap_or(true),
        "registration makes no call"
    );
}

/// With the wrong password the registrar refuses (and the scenario fails); hotline reports the
/// refusal and backs off instead of hammering the registrar.
#[test]
fn a_refused_registration_is_reported_and_retried_later() {
    let work = tempfile::tempdir().expect("tempdir");
    let registrar_port = 37_200;
    let registrar = Sipp::spawn(
        &[
            "-sf",
            scenario("registrar.xml").to_str().expect("utf-8 path"),
            "-p",
            &registrar_port.to_string(),
        ],
        &[
            ("username", "1001"),
            ("password", "s3cret"),
            ("expires", "120"),
        ],
        work.path(),
    );
    let mut hotline = Served::start(&registration_config(registrar_port, 37_300, "wrong"));
    let (ok, screen) = registrar.wait(Duration::from_secs(40));
    assert!(!ok, "a wrong password must not register:\n{screen}");
    let line = hotline.wait_for_log(
        &["trunk registration", "registration.refused.403"],
        Duration::from_secs(10),
    );
    assert!(line.contains("retry in 5 s"), "{line}");
}

/// A proxy in front of the registrar challenges with 407: hotline answers in
/// Proxy-Authorization (SIPp fails the scenario otherwise) and registers.
#[test]
fn answers_a_proxy_challenge_with_proxy_authorization() {
    let work = tempfile::tempdir().expect("tempdir");
    let registrar_port = 37_400;
    let registrar = Sipp::spawn(
        &[
            "-sf",
            scenario("proxy_registrar.xml")
                .to_str()
                .expect("utf-8 path"),
            "-p",
            &registrar_port.to_string(),
        ],
        &[("expires", "90")],
        work.path(),
    );
    let mut hotline = Served::start(&registration_config(registrar_port, 37_500, "s3cret"));
    let (ok, screen) = registrar.wait(Duration::from_secs(40));
    assert!(
        ok,
        "the proxy saw its challenge answered:\n{screen}\n{}",
        hotline.log_text()
    );
    hotline.wait_for_log(
        &["trunk registration", "registered for 90 s"],
        Duration::from_secs(10),
    );
}

/// The finished call records under `records`: each one's events, once it has a hangup.
fn finished_calls(records: &Path, within: Duration) -> Vec<Vec<serde_json::Value>> {
    let deadline = Instant::now() + within;
    loop {
        let mut finished = Vec::new();
        for entry in std::fs::read_dir(records).into_iter().flatten().flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path().join("events.jsonl")) {
                let events: Vec<serde_json::Value> = text
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect();
                if events.iter().any(|e| e["type"] == "hangup") {
                    finished.push(events);
                }
            }
        }
        if !finished.is_empty() || Instant::now() >= deadline {
            return finished;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// 20 ms frames (8 kHz) louder than `threshold` RMS in a 16-bit WAV file.
fn loud_frames(path: &Path, threshold: f32) -> usize {
    let pcm = hotline::audio::wav::read_wav(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let samples = pcm.to_mono();
    let frame = (pcm.sample_rate_hz / 50) as usize;
    samples
        .chunks(frame)
        .filter(|f| hotline::audio::rms(f) > threshold)
        .count()
}

/// baresip (a real softphone) calls `hotline serve` over UDP with PCMU. Its audio source plays
/// the recorded caller (converted with sox to the 8 kHz mono 16-bit WAV that baresip's aufile
/// needs); its sndfile filter writes what it sent and what it received. hotline recognises the
/// caller, sends its greeting, and baresip hears it. The call ends when the file does (or when
/// the bot hands the caller over); baresip quits after 25 s at the latest.
#[test]
fn a_baresip_call_is_answered_and_carries_audio_both_ways() {
    let work = tempfile::tempdir().expect("tempdir");
    let caller_wav = work.path().join("caller.wav");
    let sox = Command::new("sox")
        .arg(shared().join("audio/telephone/speak-to-customer-support_mulaw8k.wav"))
        .args(["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"])
        .arg(&caller_wav)
        // One second of silence before the caller speaks, twelve after (time to answer).
        .args(["pad", "1", "12"])
        .status()
        .expect("run sox (Debian package sox)");
    assert!(sox.success(), "sox converts the recording");

    let (sip_port, rtp_min, baresip_port) = (38_010u16, 38_020u16, 38_040u16);
    let mut hotline = Served::start(&format!(
        "port = {sip_port}\nrtp_port_min = {rtp_min}\nrtp_port_max = {}\ncodecs = [\"PCMU\"]\n",
        rtp_min + 9
    ));
    hotline.wait_for_log(&["answering phone calls"], Duration::from_secs(30));

    let config_dir = work.path().join("baresip");
    let dumps = work.path().join("heard");
    std::fs::create_dir_all(&config_dir).expect("baresip dir");
    std::fs::create_dir_all(&dumps).expect("dump dir");
    // baresip refuses `net_interface lo`; sip_listen pins it to loopback. It has no sound card
    // here: ALSA's null device plays (and discards) what it hears; sndfile keeps a copy.
    std::fs::write(
        config_dir.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{baresip_port}\nsip_trans_def udp\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\n\
             module sndfile.so\nmodule alsa.so\nmodule_app account.so\nmodule_app menu.so\n\
             audio_player alsa,null\naudio_alert alsa,null\naudio_source aufile,{}\n\
             rtp_ports {}-{}\nsnd_path {}\n",
            caller_wav.display(),
            baresip_port + 10,
            baresip_port + 19,
            dumps.display()
        ),
    )
    .expect("baresip config");
    std::fs::write(
        config_dir.join("accounts"),
        "<sip:caller@127.0.0.1>;regint=0;audio_codecs=PCMU\n",
    )
    .expect("baresip accounts");
    let screen = work.path().join("baresip.log");
    let mut baresip = Command::new("baresip")
        .arg("-f")
        .arg(&config_dir)
        .args([
            "-e",
            &format!("/dial sip:bot@127.0.0.1:{sip_port}"),
            "-t",
            "25",
        ])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&screen).expect("baresip log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("run baresip (Debian package baresip-core)");
    let deadline = Instant::now() + Duration::from_secs(60);
    while baresip.try_wait().ok().flatten().is_none() {
        if Instant::now() >= deadline {
            let _ = baresip.kill();
            let _ = baresip.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let screen = std::fs::read_to_string(&screen).unwrap_or_default();
    assert!(
        screen.contains("Call established"),
        "hotline answered baresip:\n{screen}\n{}",
        hotline.log_text()
    );

    let calls = finished_calls(&hotline.records, Duration::from_secs(20));
    assert_eq!(calls.len(), 1, "one finished call record");
    let events = &calls[0];
    let start = events
        .iter()
        .find(|e| e["type"] == "call_start")
        .expect("call_start");
    assert_eq!(
        (&start["transport"], &start["codec"]),
        (&serde_json::json!("sip-udp"), &serde_json::json!("PCMU")),
        "{start}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "bot_audio_start" && e["turn"] == 0),
        "the greeting was sent: {events:#?}"
    );
    let finals: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "transcript" && e["final"] == true)
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(
        finals.iter().any(|t| t.contains("support")),
        "the caller's speech was recognised: {finals:?}\n{events:#?}"
    );

    let dump = |suffix: &str| {
        std::fs::read_dir(&dumps)
            .expect("dumps")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(suffix))
            .unwrap_or_else(|| panic!("baresip wrote no *{suffix}:\n{screen}"))
    };
    let sent = loud_frames(&dump("-enc.wav"), 300.0);
    let heard = loud_frames(&dump("-dec.wav"), 300.0);
    assert!(sent > 50, "baresip sent the caller ({sent} loud frames)");
    assert!(heard > 25, "baresip heard the bot ({heard} loud frames)");
}

/// SIPp's standard caller over TCP (`-t t1`: one connection): INVITE, 200 OK, ACK, two seconds
/// of call, BYE, 200 OK, all on the one connection. The record says `sip-tcp` and that the caller
/// hung up.
#[test]
fn a_sipp_call_over_tcp_is_answered_and_hung_up() {
    let work = tempfile::tempdir().expect("tempdir");
    let (sip_port, rtp_min, sipp_port) = (38_210u16, 38_220u16, 38_240u16);
    let mut hotline = Served::start(&format!(
        "port = {sip_port}\nrtp_port_min = {rtp_min}\nrtp_port_max = {}\n",
        rtp_min + 3
    ));
    hotline.wait_for_log(&["answering phone calls"], Duration::from_secs(30));
    let caller = Sipp::spawn(
        &[
            &format!("127.0.0.1:{sip_port}"),
            "-sn",
            "uac",
            "-t",
            "t1",
            "-s",
            "support",
            "-d",
            "2000",
            "-p",
            &sipp_port.to_string(),
        ],
        &[],
        work.path(),
    );
    let (ok, screen) = caller.wait(Duration::from_secs(40));
    assert!(
        ok,
        "the TCP call completed:\n{screen}\n{}",
        hotline.log_text()
    );
    let calls = finished_calls(&hotline.records, Duration::from_secs(20));
    assert_eq!(calls.len(), 1, "one finished call record");
    let events = &calls[0];
    let start = events
        .iter()
        .find(|e| e["type"] == "call_start")
        .expect("call_start");
    assert_eq!(start["transport"], "sip-tcp", "{start}");
    let hangup = events
        .iter()
        .find(|e| e["type"] == "hangup")
        .expect("hangup");
    assert_eq!(hangup["reason"], "caller.hangup", "{hangup}");
}
