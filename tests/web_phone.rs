//! End to end: `hotline serve`, then headless Chromium with a recorded caller as its microphone
//! opens the web phone and calls. Asserts: the call connects; the server's events show the
//! caller's words recognized (offline Sphinx, real words); the page shows the transcript; the
//! bot's audio reaches the page (WebAudio level above silence); hanging up ends the call on both
//! sides. Then a second caller closes the tab mid-call and the server ends that call too.
//! Leaves `target/web-phone.png`, the web phone mid-call.
//!
//! Over HTTPS: the server on this machine's network address (not loopback, where a browser
//! allows the microphone without a secure origin) with a self-signed certificate that
//! Chromium is told to trust (by its public key's hash); the call connects, the caller's words
//! are recognized and the bot's audio reaches the page. A SIGHUP reloads the certificate
//! while the server keeps serving.
//!
//! Behind a reverse proxy: nginx with the shipped `assets/deploy/nginx.conf` ends HTTPS on the
//! network address and passes the page, the API and the WebSockets to hotline on loopback; the
//! call works through it, and its record names the browser, not the proxy.
//!
//! Needs: node + npm (playwright-core, installed into tests/web by `npm ci`), /usr/bin/chromium
//! (or CHROMIUM), nginx (or NGINX), sox, PocketSphinx, and the shared test data.

mod common;
#[path = "web/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use harness::{shared_dir, target_dir, Server};
use serde_json::Value;

/// The caller WAV as Chromium's fake microphone wants it: 48 kHz 16-bit mono PCM, with
/// silence before (so the greeting starts) and after (so the endpoint is reached).
fn caller_wav(dir: &Path) -> Result<PathBuf> {
    let source = shared_dir().join("audio/telephone/speak-to-customer-support_mulaw8k.wav");
    ensure!(source.exists(), "missing {}", source.display());
    let out = dir.join("caller-48k.wav");
    let status = Command::new("sox")
        .arg(&source)
        .args(["-r", "48000", "-b", "16", "-e", "signed-integer", "-c", "1"])
        .arg(&out)
        .args(["pad", "1.5", "6"])
        .status()
        .context("running sox (apt-get install sox)")?;
    ensure!(status.success(), "sox failed");
    Ok(out)
}

/// Ten seconds of digital silence at 48 kHz: a caller who never speaks, so only the transport
/// can end the call.
fn silent_wav(dir: &Path) -> Result<PathBuf> {
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
        .context("running sox")?;
    ensure!(status.success(), "sox failed");
    Ok(out)
}

/// The Node harness folder, with playwright-core installed.
fn harness_dir() -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    if !dir.join("node_modules/playwright-core").is_dir() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .context("running npm ci in tests/web (install node and npm)")?;
        ensure!(status.success(), "npm ci in tests/web failed");
    }
    Ok(dir)
}

/// Runs the Chromium harness and returns its result JSON.
fn run_phone(
    url: &str,
    wav: &Path,
    out_dir: &Path,
    mode: &str,
    screenshot: Option<&Path>,
    chrome_args: &[String],
) -> Result<Value> {
    let out = out_dir.join(format!("phone-{mode}.json"));
    let mut cmd = Command::new("node");
    cmd.current_dir(harness_dir()?)
        .arg("phone.mjs")
        .args(["--url", url, "--mode", mode, "--timeout-ms", "45000"])
        .arg("--wav")
        .arg(wav)
        .arg("--out")
        .arg(&out);
    if let Some(png) = screenshot {
        cmd.arg("--screenshot").arg(png);
    }
    for arg in chrome_args {
        cmd.arg("--chrome-arg").arg(arg);
    }
    let mut child = cmd.spawn().context("running node tests/web/phone.mjs")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("the Chromium harness hung for 300 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    ensure!(status.success(), "the Chromium harness failed ({status})");
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
    ensure!(
        result["error"].is_null(),
        "harness error: {}",
        result["error"]
    );
    Ok(result)
}

fn final_transcripts(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "transcript" && e["final"] == true)
        .filter_map(|e| e["text"].as_str().map(str::to_lowercase))
        .collect()
}

#[test]
fn web_phone_call_in_chromium() -> Result<()> {
    let _turn = common::alone();
    // Short ICE timeouts so a vanished tab is noticed within seconds.
    let mut server =
        Server::start("ice_disconnected_timeout_ms = 1000\nice_failed_timeout_ms = 2000")?;
    let token = server.api_token()?;
    let work = tempfile::tempdir()?;
    let wav = caller_wav(work.path())?;
    let screenshot = target_dir().join("web-phone.png");
    let _ = std::fs::remove_file(&screenshot);

    let result = run_phone(
        &server.url("/"),
        &wav,
        work.path(),
        "call",
        Some(&screenshot),
        &[],
    )?;
    let steps = &result["steps"];
    println!("harness steps: {steps}");
    println!("page console: {}", result["console"]);

    // WebSocket signalling refuses a bad offer with a clear error.
    let ws_bad = &result["wsBadOffer"];
    ensure!(
        ws_bad["type"] == "error" && ws_bad["error"] == "offer.invalid",
        "WebSocket bad offer: {ws_bad}"
    );

    // 1. The call connects.
    ensure!(
        result["connected"] == true,
        "the call did not connect: {result}"
    );
    let call_id = result["callId"]
        .as_str()
        .context("the page has no call id")?
        .to_string();
    let mid = &result["midCall"];
    println!(
        "time to connect (click to connected): {} ms; offer to answer over HTTP: {} ms",
        mid["connectMs"], mid["answerMs"]
    );

    // 2. The server's record shows the caller's words recognized, and the hangup.
    let events = server.wait_record_hangup(&call_id, Duration::from_secs(15))?;
    let finals = final_transcripts(&events);
    println!("final transcripts: {finals:?}");
    ensure!(
        finals
            .iter()
            .any(|t| t.contains("support") || t.contains("customer")),
        "the caller's words were not recognized: {finals:?}"
    );
    let start = events
        .iter()
        .find(|e| e["type"] == "call_start")
        .context("no call_start")?;
    ensure!(start["transport"] == "webrtc", "transport: {start}");

    // 3. The page shows the transcript: the caller's words and the bot's reply.
    let caller_bubbles: Vec<String> = serde_json::from_value(mid["callerBubbles"].clone())?;
    ensure!(
        caller_bubbles
            .iter()
            .any(|t| t.to_lowercase().contains("support")),
        "the page does not show the caller's words: {caller_bubbles:?}"
    );
    ensure!(
        mid["botBubbles"].as_array().is_some_and(|b| !b.is_empty()),
        "no bot reply on the page"
    );

    // 4. The bot's audio reached the browser: its WebAudio level rose above silence (RMS of
    //    full-scale floats; digital silence is 0, comfort noise stays under 0.001).
    let bot_level = mid["maxBotLevel"].as_f64().context("no bot level")?;
    println!("bot audio level in the page (peak RMS): {bot_level:.3}");
    ensure!(
        bot_level > 0.01,
        "no bot audio reached the page (peak RMS {bot_level})"
    );

    // 5. Hang-up ends the call on both sides.
    let end = &result["end"];
    ensure!(
        end["state"] == "ended" || end["state"] == "idle",
        "the page did not end the call: {}",
        end["state"]
    );
    let hangup = events
        .iter()
        .rev()
        .find(|e| e["type"] == "hangup")
        .context("no hangup")?;
    ensure!(
        hangup["reason"] == "caller.hangup",
        "hangup reason: {hangup}"
    );
    ensure!(
        end["events"]
            .as_array()
            .is_some_and(|ev| ev.iter().any(|e| e["type"] == "call_ended")),
        "the page never heard call_ended"
    );
    // The record ends with the web line's media counters, as a phone call's does.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let call_end = loop {
        let events = server.record_events(&call_id)?;
        if let Some(end) = events.iter().find(|e| e["type"] == "call_end") {
            break end.clone();
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no call_end in the record: {events:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    ensure!(
        call_end["media"]["packets_in"].as_u64().unwrap_or(0) > 50
            && call_end["media"]["packets_out"].as_u64().unwrap_or(0) > 50,
        "the media counters count the call: {call_end}"
    );
    server.wait_idle(Duration::from_secs(10))?;

    // The keypad reached the server during the call.
    ensure!(
        events
            .iter()
            .any(|e| e["type"] == "dtmf" && e["digit"] == "1"),
        "the keypad's 1 never reached the call"
    );
    ensure!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
    println!("screenshot: {}", screenshot.display());

    // The call is in the store, whole: every event of its record, its transcript, its turns
    // and its recording.
    let stored = server.stored_call(&token, &call_id, Duration::from_secs(20))?;
    ensure!(stored["transport"] == "webrtc", "stored: {stored}");
    let on_disk = server.record_events(&call_id)?;
    ensure!(
        stored["events"].as_array().map(Vec::len) == Some(on_disk.len()),
        "the store has every event of the record: {stored}"
    );
    let transcript =
        std::fs::read_to_string(server.records_dir.join(&call_id).join("transcript.txt"))?;
    ensure!(
        stored["transcript"] == transcript.as_str(),
        "stored transcript: {stored}"
    );
    ensure!(stored["has_recording"] == true, "stored: {stored}");
    ensure!(
        stored["turns"].as_array().is_some_and(|turns| turns
            .iter()
            .any(|t| t["text"].as_str().is_some_and(|x| x.contains("support")))),
        "the stored turns hold the caller's words: {stored}"
    );

    // A second caller's tab crashes mid-call (no hang-up, no DTLS close): ICE notices and the
    // server ends the call by itself.
    let silence = silent_wav(work.path())?;
    let closed = run_phone(
        &server.url("/"),
        &silence,
        work.path(),
        "close-tab",
        None,
        &[],
    )?;
    ensure!(
        closed["connected"] == true,
        "the second call did not connect: {closed}"
    );
    let closed_id = closed["callId"].as_str().context("no call id")?;
    let events = server.wait_record_hangup(closed_id, Duration::from_secs(20))?;
    let hangup = events
        .iter()
        .rev()
        .find(|e| e["type"] == "hangup")
        .context("no hangup")?;
    println!(
        "tab closed: the server ended the call with {}",
        hangup["reason"]
    );
    ensure!(
        hangup["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("webrtc.")),
        "unexpected reason {hangup}"
    );
    let health = server.wait_idle(Duration::from_secs(10))?;
    ensure!(server.alive(), "the server died");
    println!("after both calls: {health}");
    Ok(())
}

/// This machine's first non-loopback IPv4 address.
fn network_address() -> Result<String> {
    let output = Command::new("hostname")
        .arg("-I")
        .output()
        .context("hostname -I")?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    text.split_whitespace()
        .filter_map(|a| a.parse::<std::net::Ipv4Addr>().ok())
        .find(|a| !a.is_loopback())
        .map(|a| a.to_string())
        .with_context(|| format!("no non-loopback IPv4 address on this machine: {text:?}"))
}

/// Checks a call the harness made (`how` it went, for the messages): it connected, its record
/// has the caller's words and a hang-up, and the bot's audio reached the page. Returns the
/// record's events.
fn heard_both_ways(server: &Server, result: &Value, how: &str) -> Result<Vec<Value>> {
    println!("page console: {}", result["console"]);
    ensure!(
        result["connected"] == true,
        "the call {how} did not connect: {result}\n{}",
        server.log()
    );
    let call_id = result["callId"].as_str().context("no call id")?.to_string();
    let events = server.wait_record_hangup(&call_id, Duration::from_secs(15))?;
    let finals = final_transcripts(&events);
    ensure!(
        finals
            .iter()
            .any(|t| t.contains("support") || t.contains("customer")),
        "the caller's words were not recognized {how}: {finals:?}"
    );
    let bot_level = result["midCall"]["maxBotLevel"].as_f64().unwrap_or(0.0);
    ensure!(
        bot_level > 0.01,
        "no bot audio reached the page {how} (peak RMS {bot_level})"
    );
    Ok(events)
}

/// A self-signed certificate for `host`, written to `dir` as `cert.pem` and `key.pem`, and the
/// hash of its public key that Chromium is told to trust.
fn self_signed(
    dir: &Path,
    host: &str,
) -> Result<(
    rcgen::CertifiedKey<rcgen::KeyPair>,
    PathBuf,
    PathBuf,
    String,
)> {
    use base64::Engine;
    use rcgen::PublicKeyData;
    use sha2::Digest;

    let certified = rcgen::generate_simple_self_signed(vec![host.to_string()])?;
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem())?;
    std::fs::write(&key_path, certified.signing_key.serialize_pem())?;
    let spki = sha2::Sha256::digest(certified.signing_key.subject_public_key_info());
    let spki = base64::engine::general_purpose::STANDARD.encode(spki);
    Ok((certified, cert_path, key_path, spki))
}

#[test]
fn web_phone_over_https_on_a_network_address() -> Result<()> {
    let _turn = common::alone();
    let host = network_address()?;
    let work = tempfile::tempdir()?;
    let (certified, cert_path, key_path, spki) = self_signed(work.path(), &host)?;
    let server = Server::start_on(
        &host,
        Some((&cert_path, &key_path, certified.cert.der().as_ref())),
        "",
    )?;
    ensure!(
        server.url("/").starts_with("https://"),
        "{}",
        server.url("/")
    );
    // Plain HTTP on the HTTPS port is refused, not served.
    let plain = ureq::get(&format!("http://{host}:{}/healthz", server.port))
        .timeout(Duration::from_secs(5))
        .call();
    ensure!(plain.is_err(), "plain HTTP was served on the HTTPS port");

    let wav = caller_wav(work.path())?;
    let result = run_phone(
        &server.url("/"),
        &wav,
        work.path(),
        "call",
        None,
        &[format!("--ignore-certificate-errors-spki-list={spki}")],
    )?;
    heard_both_ways(&server, &result, "over HTTPS")?;

    // A renewed certificate: SIGHUP reloads it, and the server goes on serving.
    let renewed = rcgen::generate_simple_self_signed(vec![host.clone()])?;
    std::fs::write(&cert_path, renewed.cert.pem())?;
    std::fs::write(&key_path, renewed.signing_key.serialize_pem())?;
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()?;
    ensure!(status.success(), "kill -HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.log().contains("web TLS certificate reloaded") {
        ensure!(
            std::time::Instant::now() < deadline,
            "no reload in the log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let renewed_server = Server::client_for(&server, renewed.cert.der().as_ref())?;
    ensure!(
        renewed_server["status"] == "ok",
        "the renewed certificate is served: {renewed_server}"
    );
    Ok(())
}

/// nginx, running as it is the set-up `assets/deploy/nginx.conf` (README, "Behind a reverse
/// proxy"), killed on drop.
struct Nginx {
    child: std::process::Child,
    error_log: PathBuf,
}

impl Nginx {
    /// Starts nginx in `dir` with the shipped server block, its placeholders replaced: HTTPS on
    /// `host:port` with `cert`/`key`, proxying to hotline on `upstream`.
    fn start(
        dir: &Path,
        host: &str,
        port: u16,
        cert: &Path,
        key: &Path,
        upstream: u16,
    ) -> Result<Self> {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/deploy/nginx.conf");
        let mut site = std::fs::read_to_string(&shipped)?;
        for (from, to) in [
            (
                "listen 443 ssl;".to_string(),
                format!("listen {host}:{port} ssl;"),
            ),
            (
                "/etc/ssl/hotline/fullchain.pem".into(),
                cert.display().to_string(),
            ),
            (
                "/etc/ssl/hotline/privkey.pem".into(),
                key.display().to_string(),
            ),
            (
                "http://127.0.0.1:8080".into(),
                format!("http://127.0.0.1:{upstream}"),
            ),
        ] {
            ensure!(
                site.contains(&from),
                "{} no longer has {from:?}",
                shipped.display()
            );
            site = site.replace(&from, &to);
        }
        std::fs::write(dir.join("hotline-site.conf"), site)?;
        let d = dir.display();
        let main = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/nginx-access.log;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
             scgi_temp_path {d}/scgi;\n  include {d}/hotline-site.conf;\n}}\n"
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, main)?;
        let error_log = dir.join("nginx-error.log");
        let nginx = std::env::var("NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".into());
        let child = Command::new(&nginx)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(&error_log)
            .arg("-c")
            .arg(&conf)
            .stdin(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("running {nginx} (install nginx)"))?;
        let mut proxy = Self { child, error_log };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((host, port)).is_err() {
            if let Some(status) = proxy.child.try_wait()? {
                anyhow::bail!("nginx exited ({status}):\n{}", proxy.log());
            }
            ensure!(
                std::time::Instant::now() < deadline,
                "nginx did not listen:\n{}",
                proxy.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(proxy)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Behind nginx: the page, the API and the WebSockets pass the proxy over HTTPS on this
/// machine's network address, hotline listens on loopback and trusts the proxy. The call
/// connects, the words are recognized, the bot's audio reaches the page, and the call's record
/// names the browser's address (from `X-Forwarded-For`), not the proxy's.
#[test]
fn web_phone_behind_a_reverse_proxy() -> Result<()> {
    let _turn = common::alone();
    let host = network_address()?;
    let work = tempfile::tempdir()?;
    let (_, cert_path, key_path, spki) = self_signed(work.path(), &host)?;
    let server = Server::start_on(
        "127.0.0.1",
        None,
        &format!("media_ip = \"{host}\"\n\n[web.limits]\ntrusted_proxies = [\"127.0.0.1\"]\n"),
    )?;
    let proxy_port = harness::free_port();
    let proxy = Nginx::start(
        work.path(),
        &host,
        proxy_port,
        &cert_path,
        &key_path,
        server.port,
    )?;

    let wav = caller_wav(work.path())?;
    let result = run_phone(
        &format!("https://{host}:{proxy_port}/"),
        &wav,
        work.path(),
        "call",
        None,
        &[format!("--ignore-certificate-errors-spki-list={spki}")],
    )?;
    let events = heard_both_ways(&server, &result, "through the proxy")
        .with_context(|| format!("nginx's log:\n{}", proxy.log()))?;
    let start = events
        .iter()
        .find(|e| e["type"] == "call_start")
        .context("no call_start in the record")?;
    ensure!(
        start["from"] == format!("web:{host}").as_str(),
        "the record should name the browser ({host}), not the proxy: {start}"
    );
    // Behind a trusted proxy the server is on a network: /demo is not served unless enabled.
    let demo = ureq::get(&server.url("/demo/down/orders/1"))
        .timeout(Duration::from_secs(5))
        .call();
    ensure!(
        matches!(demo, Err(ureq::Error::Status(404, _))),
        "/demo is served behind a proxy without web.demo: {demo:?}"
    );
    Ok(())
}
