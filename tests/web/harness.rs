//! Shared by the web tests: a real `hotline serve` on free ports with its own records folder,
//! HTTP helpers, and the location of the shared test data.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// The shared test data folder (see `common::shared`).
#[allow(unused_imports)]
pub use crate::common::shared::shared_dir;

/// The build's target folder, where the tests leave screenshots.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// A TCP port free right now on loopback.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// A TLS client config that trusts only the certificate `der`.
fn trusting(der: &[u8]) -> Result<std::sync::Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(der.to_vec()))?;
    let client = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(std::sync::Arc::new(client))
}

/// A running `hotline serve`, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    /// `http://127.0.0.1:<port>`, or the HTTPS origin the server was started on.
    pub origin: String,
    agent: ureq::Agent,
    pub records_dir: PathBuf,
    pub log_path: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server with Sphinx ASR, its own records folder and `extra_web` lines added to
    /// the `[web]` section; waits until `/healthz` answers.
    pub fn start(extra_web: &str) -> Result<Self> {
        Self::start_on("127.0.0.1", None, extra_web)
    }

    /// Starts the server listening on `host` (an IP address); with `tls`, over HTTPS with that
    /// certificate and key (PEM files), checked by a client that trusts only that certificate
    /// (its DER form, the third item) and reaches it as `https://<host>:<port>`.
    pub fn start_on(
        host: &str,
        tls: Option<(&Path, &Path, &[u8])>,
        extra_web: &str,
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let records_dir = dir.path().join("records");
        let config_path = dir.path().join("hotline.toml");
        let mut tls_lines = String::new();
        let mut agent = ureq::AgentBuilder::new();
        let mut scheme = "http";
        if let Some((cert, key, der)) = tls {
            tls_lines = format!(
                "tls_cert = {:?}\ntls_key = {:?}\n",
                cert.display().to_string(),
                key.display().to_string()
            );
            agent = agent.tls_config(trusting(der)?);
            scheme = "https";
        }
        let config = format!(
            "[asr]\nengine = \"sphinx\"\n\n[server]\nrecords_dir = {records:?}\n\n\
             [web]\nlisten = \"{host}:{port}\"\n{tls_lines}{extra_web}\n",
            records = records_dir.display().to_string(),
        );
        std::fs::write(&config_path, config)?;
        let log_path = dir.path().join("serve.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(env!("CARGO_BIN_EXE_hotline"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .env(
                "RUST_LOG",
                "info,rtc=warn,rtc_ice=warn,rtc_dtls=warn,webrtc=warn",
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting hotline serve")?;
        let mut server = Server {
            child,
            port,
            origin: format!("{scheme}://{host}:{port}"),
            agent: agent.build(),
            records_dir,
            log_path,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if server.health().is_ok() {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("hotline serve exited with {status}:\n{}", server.log());
            }
            if Instant::now() > deadline {
                bail!("hotline serve did not answer /healthz:\n{}", server.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `/healthz` fetched by a client that trusts only `der` (to check which certificate the
    /// server presents now).
    pub fn client_for(server: &Server, der: &[u8]) -> Result<serde_json::Value> {
        let agent = ureq::AgentBuilder::new().tls_config(trusting(der)?).build();
        let text = agent
            .get(&server.url("/healthz"))
            .timeout(Duration::from_secs(5))
            .call()?
            .into_string()?;
        Ok(serde_json::from_str(&text)?)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// `/healthz` as JSON.
    pub fn health(&self) -> Result<serde_json::Value> {
        let text = self
            .agent
            .get(&self.url("/healthz"))
            .timeout(Duration::from_secs(2))
            .call()?
            .into_string()?;
        Ok(serde_json::from_str(&text)?)
    }

    /// Waits until `/healthz` shows no WebRTC call, driver or leased port.
    pub fn wait_idle(&self, within: Duration) -> Result<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let h = self.health()?;
            if h["webrtc_calls"] == 0 && h["webrtc_drivers"] == 0 && h["media_ports_leased"] == 0 {
                return Ok(h);
            }
            if Instant::now() > deadline {
                bail!("web calls still live after {within:?}: {h}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// The events of a call's record (`events.jsonl`).
    pub fn record_events(&self, call_id: &str) -> Result<Vec<serde_json::Value>> {
        let path = self.records_dir.join(call_id).join("events.jsonl");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        text.lines().map(|l| Ok(serde_json::from_str(l)?)).collect()
    }

    /// Waits until a call's record holds its hangup event, and returns the events.
    pub fn wait_record_hangup(
        &self,
        call_id: &str,
        within: Duration,
    ) -> Result<Vec<serde_json::Value>> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(events) = self.record_events(call_id) {
                if events.iter().any(|e| e["type"] == "hangup") {
                    return Ok(events);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "call {call_id} has no hangup in its record after {within:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A new API bearer token (`hotline tokens create`, on this server's config).
    pub fn api_token(&self) -> Result<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("--config")
            .arg(self.dir.path().join("hotline.toml"))
            .args(["tokens", "create", "tests"])
            .output()?;
        ensure!(
            out.status.success(),
            "hotline tokens create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }

    /// Waits until the store has the call `call_id` (`GET /api/calls/{id}` with `token`), and
    /// returns it.
    pub fn stored_call(
        &self,
        token: &str,
        call_id: &str,
        within: Duration,
    ) -> Result<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let answer = self
                .agent
                .get(&self.url(&format!("/api/calls/{call_id}")))
                .set("Authorization", &format!("Bearer {token}"))
                .call();
            match answer {
                Ok(r) => return Ok(serde_json::from_str(&r.into_string()?)?),
                Err(ureq::Error::Status(404, _)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(e) => bail!("GET /api/calls/{call_id}: {e}\n{}", self.log()),
            }
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Posts an offer; returns (status, headers' call id, body).
pub fn post_offer(
    server: &Server,
    query: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Option<String>, String) {
    let url = server.url(&format!("/api/call{query}"));
    let result = ureq::post(&url)
        .set("Content-Type", content_type)
        .timeout(Duration::from_secs(20))
        .send_bytes(body);
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {url}: {e}"),
    };
    let status = response.status();
    let call_id = response.header("x-call-id").map(str::to_string);
    let text = response.into_string().unwrap_or_default();
    (status, call_id, text)
}
