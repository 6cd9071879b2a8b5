//! `--log-format json` (or `HOTLINE_LOG_FORMAT=json`): every line hotline logs is one JSON
//! object with a timestamp, a level, a target and the event's fields flattened beside the
//! message, so a log collector can read the ready line's addresses without parsing prose.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn json_logs_are_one_object_per_line_with_fields() {
    let work = tempfile::tempdir().expect("tempdir");
    let config = work.path().join("hotline.toml");
    std::fs::write(
        &config,
        format!(
            "[asr]\nengine = \"sphinx\"\n[server]\nrecords_dir = {:?}\n[web]\nenabled = false\n[sip]\nport = 0\n",
            work.path().join("records").display().to_string()
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("HOTLINE_LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hotline serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    let ready = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            panic!(
                "no ready line within a minute; logged:\n{}",
                lines.join("\n")
            );
        };
        let value: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(value.get(key).is_some(), "no {key} in {line}");
        }
        lines.push(line);
        if value["message"]
            .as_str()
            .is_some_and(|m| m.contains("answering phone calls"))
        {
            break value;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let sip: std::net::SocketAddr = ready["sip"]
        .as_str()
        .unwrap_or_else(|| panic!("the ready line has the SIP address as a field: {ready}"))
        .parse()
        .expect("an address");
    assert_ne!(sip.port(), 0, "{ready}");
}
