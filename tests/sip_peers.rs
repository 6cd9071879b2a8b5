//! `hotline serve` against real SIP peers on loopback: trunk registration with digest
//! authentication against a SIPp registrar (`sip/scenarios/registrar.xml`, 401) and one behind
//! an authenticating proxy (`sip/scenarios/proxy_registrar.xml`, 407).
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
