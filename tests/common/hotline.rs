//! A hotline to call: [`Hotline`] runs the `hotline serve` binary with a config of its own (the
//! real product, stopped with SIGINT as an operator would), [`InProcessHotline`] runs the same
//! phone edge and engines inside the test (for tests that look at the engines, such as the
//! count of active calls).
//!
//! Both use the offline recognizer (Sphinx), no web server, and a fresh records folder; the test
//! gives the body of the `[sip]` section. Use `port = 0` there: the harness reads the bound SIP
//! port back (from the log line "answering phone calls", or from the bound server).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use super::records;
use super::shared::shared_dir;

/// How long a hotline may take to load its engines and bind.
const READY_WITHIN: Duration = Duration::from_secs(90);

/// A hotline config: the offline recognizer, `records_dir`, `max_calls`, no web server, and
/// `sip` as the body of the `[sip]` section (which may go on with `[sip.registration]`).
///
/// Partial results are off: these tests check calls and their final words, and PocketSphinx
/// decodes each partial as a whole utterance that a final cannot interrupt, so several calls
/// at once on two cores would starve the finals they check.
pub fn config_toml(records_dir: &Path, max_calls: usize, sip: &str) -> String {
    config_toml_with(records_dir, max_calls, "", sip)
}

/// [`config_toml`] with more `[server]` keys (`server` is their lines).
pub fn config_toml_with(records_dir: &Path, max_calls: usize, server: &str, sip: &str) -> String {
    format!(
        "[asr]\nengine = \"sphinx\"\n[session]\npartial_interval_ms = 0\n[server]\nrecords_dir = {records:?}\nmax_calls = {max_calls}\n\
         {server}\n[web]\nenabled = false\n[sip]\n{sip}\n",
        records = records_dir.display().to_string()
    )
}

/// Text without ANSI colour sequences (in case the log is coloured).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `command` set up as `hotline --config CONFIG serve`, its log (stderr) to `log`.
fn serve<'a>(command: &'a mut Command, config: &Path, log: &Path) -> &'a mut Command {
    command
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("RUST_LOG", "info,hotline_sip=debug")
        .env("NO_COLOR", "1")
        .env("HOTLINE_SHARED", shared_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
}

/// A running `hotline serve`; its log goes to a file. Stopped with SIGINT (then killed) on drop.
pub struct Hotline {
    child: Child,
    /// The bound SIP port (UDP, and TCP when enabled).
    pub sip_port: u16,
    /// The bound SIP-over-TLS port, when TLS is served.
    pub tls_port: Option<u16>,
    /// Where the calls' records go.
    pub records: PathBuf,
    log: PathBuf,
    /// The web server's port, when it has one ([`Hotline::start_with_web`]).
    pub web_port: Option<u16>,
    _work: tempfile::TempDir,
}

impl Hotline {
    /// Starts `hotline serve` for at most 4 calls with `sip` as the `[sip]` body, and waits until
    /// it answers phone calls.
    pub fn start(sip: &str) -> Self {
        Self::start_with(4, sip)
    }

    /// Starts `hotline serve` for at most `max_calls` calls with `sip` as the `[sip]` body, and
    /// waits until it answers phone calls.
    pub fn start_with(max_calls: usize, sip: &str) -> Self {
        Self::start_with_server(max_calls, "", sip)
    }

    /// [`Hotline::start_with`] with more `[server]` keys (`server` is their lines).
    pub fn start_with_server(max_calls: usize, server: &str, sip: &str) -> Self {
        Self::spawn(max_calls, server, sip, false, None)
    }

    /// [`Hotline::start_with`], with the web server on a free loopback port (for `/healthz`).
    pub fn start_with_web(max_calls: usize, sip: &str) -> Self {
        Self::spawn(
            max_calls,
            "",
            sip,
            false,
            Some(super::ports::free_tcp_port()),
        )
    }

    /// [`Hotline::start_with_web`] with more config: `extra` is lines after `[server]`'s (keys
    /// of `[server]`, then whole tables such as `[store]` or `[qa]`).
    pub fn start_with_web_and(max_calls: usize, extra: &str, sip: &str) -> Self {
        Self::spawn(
            max_calls,
            extra,
            sip,
            false,
            Some(super::ports::free_tcp_port()),
        )
    }

    /// Runs `hotline --config <this server's config> ARGS` with `env`; its standard output.
    /// Panics with its error output when it fails.
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("--config")
            .arg(self._work.path().join("hotline.toml"))
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("run hotline");
        assert!(
            out.status.success(),
            "hotline {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A new API bearer token (`hotline tokens create`).
    pub fn api_token(&self) -> String {
        self.cli(&["tokens", "create", "tests"], &[])
            .trim()
            .to_string()
    }

    /// `GET path` on the web server with `token` as the bearer (none: no header): the status and
    /// the body's bytes.
    pub fn api_get(&self, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
        let port = self.web_port.expect("started with the web server");
        let mut request =
            ureq::get(&format!("http://127.0.0.1:{port}{path}")).timeout(Duration::from_secs(20));
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let response = match request.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("GET {path}: {e}"),
        };
        let status = response.status();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut body).expect("read body");
        (status, body)
    }

    /// `GET path` that must answer 200 with JSON.
    pub fn api_json(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.api_get(path, Some(token));
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).expect("JSON")
    }

    /// Waits until the store lists `count` calls; the list.
    pub fn stored_calls(&self, token: &str, count: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let page = self.api_json("/api/calls?limit=500", token);
            let calls = page["calls"].as_array().cloned().unwrap_or_default();
            if calls.len() >= count {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "the store lists {} calls, not {count}: {page}",
                calls.len()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts a copy of the `hotline` binary as an installed server: copied out of the build
    /// tree into a folder of its own, started in an empty working directory with a fresh
    /// `HOME` and nothing pointing at the checkout's assets or espeak-ng data.
    pub fn start_installed(sip: &str) -> Self {
        Self::spawn(4, "", sip, true, None)
    }

    fn spawn(
        max_calls: usize,
        server: &str,
        sip: &str,
        installed: bool,
        web_port: Option<u16>,
    ) -> Self {
        let work = tempfile::tempdir().expect("tempdir");
        let records = work.path().join("records");
        let config = work.path().join("hotline.toml");
        let mut text = config_toml_with(&records, max_calls, server, sip);
        if let Some(port) = web_port {
            text = text.replace(
                "[web]\nenabled = false\n",
                &format!("[web]\nlisten = \"127.0.0.1:{port}\"\ndemo = false\n"),
            );
        }
        std::fs::write(&config, text).expect("write config");
        let log = work.path().join("hotline.log");
        let mut command = if installed {
            let bin = work.path().join("bin");
            let run = work.path().join("run");
            let home = work.path().join("home");
            for dir in [&bin, &run, &home] {
                std::fs::create_dir_all(dir).expect("create a folder");
            }
            let program = bin.join("hotline");
            std::fs::copy(env!("CARGO_BIN_EXE_hotline"), &program).expect("copy the binary");
            let mut command = Command::new(program);
            command
                .current_dir(run)
                .env("HOME", home)
                .env_remove("HOTLINE_ESPEAK_DATA")
                .env_remove("HOTLINE_DATA_DIR")
                .env_remove("XDG_DATA_HOME")
                .env_remove("CARGO_TARGET_DIR");
            command
        } else {
            let mut command = Command::new(env!("CARGO_BIN_EXE_hotline"));
            command.current_dir(env!("CARGO_MANIFEST_DIR"));
            command
        };
        let child = serve(&mut command, &config, &log)
            .spawn()
            .expect("start hotline serve");
        let mut hotline = Self {
            child,
            sip_port: 0,
            tls_port: None,
            records,
            log,
            web_port,
            _work: work,
        };
        hotline.read_ports();
        hotline
    }

    /// `127.0.0.1:<sip port>`.
    pub fn sip_addr(&self) -> String {
        format!("127.0.0.1:{}", self.sip_port)
    }

    /// The log so far (without colour).
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        strip_ansi(&text)
    }

    /// Waits until the log has a line containing every one of `needles`; returns the line.
    /// Fails (with the log) when hotline exits or the time is up.
    pub fn wait_for_log(&mut self, needles: &[&str], within: Duration) -> String {
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
                "no log line with {needles:?} within {within:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The finished calls' events (each holding a hangup), once there is at least one or the
    /// time is up (then possibly none).
    pub fn finished_calls(&self, within: Duration) -> Vec<Vec<Value>> {
        let deadline = Instant::now() + within;
        loop {
            let finished = records::finished_calls(&self.records);
            if !finished.is_empty() || Instant::now() >= deadline {
                return finished;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The events of the one finished call; fails when there is none within `within`, or more.
    pub fn one_call(&self, within: Duration) -> Vec<Value> {
        let mut calls = self.finished_calls(within);
        assert_eq!(
            calls.len(),
            1,
            "one finished call record in {}:\n{}",
            self.records.display(),
            self.log_text()
        );
        calls.remove(0)
    }

    /// The call record folders so far.
    pub fn call_dirs(&self) -> Vec<PathBuf> {
        records::call_dirs(&self.records)
    }

    /// Sends the server a signal (`TERM`, `INT`), as an operator or a service manager would.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// The server's `/healthz` (with [`Hotline::start_with_web`]).
    pub fn health(&self) -> Value {
        let port = self.web_port.expect("started with the web server");
        let text = ureq::get(&format!("http://127.0.0.1:{port}/healthz"))
            .timeout(Duration::from_secs(5))
            .call()
            .expect("GET /healthz")
            .into_string()
            .expect("health text");
        serde_json::from_str(&text).expect("health JSON")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL (no shutdown at all: what a crash or a power cut leaves),
    /// then starts it again on the same config and records, and waits until it answers calls.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let work = self._work.path();
        self.log = work.join("hotline-restarted.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_hotline"));
        command.current_dir(env!("CARGO_MANIFEST_DIR"));
        self.child = serve(&mut command, &work.join("hotline.toml"), &self.log)
            .spawn()
            .expect("restart hotline serve");
        self.read_ports();
    }

    /// Waits for the ready line and reads the bound SIP (and TLS) ports from it.
    fn read_ports(&mut self) {
        let line = self.wait_for_log(&["answering phone calls"], READY_WITHIN);
        let port_of = |key: &str| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix(key))
                .and_then(|addr| addr.trim_matches('"').parse::<std::net::SocketAddr>().ok())
                .map(|addr| addr.port())
        };
        self.tls_port = port_of("tls=");
        self.sip_port =
            port_of("sip=").unwrap_or_else(|| panic!("no sip=ADDRESS in the ready line: {line}"));
    }

    /// Waits for the server to exit on its own; its exit status, or `None` when it is still
    /// running after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Hotline {
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

/// hotline's phone edge and engines running in this test's tokio runtime. Stops on drop.
pub struct InProcessHotline {
    /// The bound SIP port.
    pub sip_port: u16,
    /// Where the calls' records go.
    pub records: tempfile::TempDir,
    pub engines: Arc<hotline::call::Engines>,
    stop: watch::Sender<bool>,
}

impl InProcessHotline {
    /// Loads the engines for at most `max_calls` calls with `sip` as the `[sip]` body, binds the
    /// phone edge and serves it on the current runtime.
    pub async fn start(max_calls: usize, sip: &str) -> Self {
        let records = tempfile::tempdir().expect("tempdir");
        let text = config_toml(records.path(), max_calls, sip);
        let config = hotline::config::Config::parse(&text, "test config").expect("config parses");
        let sip = config.sip.clone();
        let engines = tokio::task::spawn_blocking(move || hotline::call::Engines::load(config))
            .await
            .expect("join")
            .expect("engines load (needs pocketsphinx-en-us and espeak-ng)");
        let server = hotline::phone::bind(&sip)
            .await
            .expect("bind the phone edge");
        let sip_port = server.local_addr().port();
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(hotline::phone::serve(server, engines.clone(), stop_rx));
        Self {
            sip_port,
            records,
            engines,
            stop,
        }
    }

    /// `127.0.0.1:<sip port>`.
    pub fn sip_addr(&self) -> String {
        format!("127.0.0.1:{}", self.sip_port)
    }

    /// Waits (without blocking the runtime) until `count` calls have finished records, and
    /// returns their events; fails when they do not within `within`.
    pub async fn finished_calls(&self, count: usize, within: Duration) -> Vec<Vec<Value>> {
        let deadline = Instant::now() + within;
        loop {
            let finished = records::finished_calls(self.records.path());
            if finished.len() >= count {
                return finished;
            }
            assert!(
                Instant::now() < deadline,
                "{count} finished call records expected in {}, found {}",
                self.records.path().display(),
                finished.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The events of the one finished call.
    pub async fn one_call(&self, within: Duration) -> Vec<Value> {
        let mut calls = self.finished_calls(1, within).await;
        assert_eq!(calls.len(), 1, "one finished call record");
        calls.remove(0)
    }

    /// The call record folders so far.
    pub fn call_dirs(&self) -> Vec<PathBuf> {
        records::call_dirs(self.records.path())
    }
}

impl Drop for InProcessHotline {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
