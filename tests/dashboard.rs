//! The dashboard in headless Chromium, behind its login, over a server with real calls, and a
//! knowledge gap that an answer in the dashboard closes for the next caller.
//!
//! A SIPp caller asks the demo telecom flow something its knowledge base cannot answer
//! (espeak-ng's voice, Sphinx's ears): a knowledge gap. Then Chromium signs in as each role:
//! - nobody signed in is sent to the login form, and a wrong password is refused;
//! - an agent gets 403 on the dashboard and the admin page; a supervisor on the admin page;
//! - a form without the session's CSRF token is refused;
//! - an admin opens every page (screenshots in `target/dashboard-*.png`): the overview, the
//!   call list and its text search, the call (transcript, QA findings, its recording), the
//!   analytics with their charts, the gap list, and the users; then answers the gap.
//!
//! The answer lands in the flow's knowledge-base file (a copy, in the test's folder), and the
//! next caller who asks the same question hears it.
//!
//! SIPp's pcap player writes through a raw socket, so this test needs root (CI runs as root).

mod common;

#[path = "web/harness.rs"]
mod harness;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::hotline::Hotline;
use common::pcap::{spoken_pcap, PT_PCMU};
use common::ports::RtpPorts;
use common::sipp::Sipp;
use serde_json::Value;

const QUESTION: &str = "can you recommend a good pizza place near me";
const ANSWER: &str =
    "We only answer questions about Acme Telecom, but our app lists the nearest Acme store.";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a folder");
    for entry in std::fs::read_dir(from).expect("read a folder").flatten() {
        if entry.path().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy a file");
        }
    }
}

fn caller(target: &str, pcap: &Path) -> Sipp {
    common::sipp::utterance_caller(pcap)
        .remote(target)
        .media()
        .key("service", "telecom")
        .key("codec_pt", PT_PCMU)
        .key("codec_name", "PCMU")
        .timeout_s(40)
}

fn text(v: &Value) -> &str {
    v["text"].as_str().unwrap_or("")
}

#[test]
fn the_dashboard_behind_its_login_and_a_gap_answered_for_the_next_caller() {
    let work = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (flows, kb) = (work.path().join("flows"), work.path().join("kb"));
    copy_dir(&root.join("assets/flows"), &flows);
    copy_dir(&root.join("assets/kb"), &kb);
    let rtp = RtpPorts::free(2);
    let extra = format!(
        "[dialogue]\nflows_dir = {:?}\nkb_dir = {:?}\n",
        flows.display().to_string(),
        kb.display().to_string()
    );
    let hotline = Hotline::start_with_web_and(
        2,
        &extra,
        &format!("port = 0\ncodecs = [\"PCMU\"]\n{}\n", rtp.toml()),
    );
    let password = "correct horse battery";
    for (name, role) in [("ada", "admin"), ("sam", "supervisor"), ("ann", "agent")] {
        hotline.cli(
            &["users", "add", name, "--role", role],
            &[("HOTLINE_PASSWORD", password)],
        );
    }
    let token = hotline.api_token();

    // A caller asks what the knowledge base cannot answer.
    let pcap = spoken_pcap(work.path(), "pizza", QUESTION, PT_PCMU);
    caller(&hotline.sip_addr(), &pcap).run_ok(work.path());
    let first = hotline.one_call(Duration::from_secs(20));
    let gap = first
        .iter()
        .find(|e| e["type"] == "knowledge_gap")
        .unwrap_or_else(|| panic!("the question was not a knowledge gap: {first:?}"));
    println!("the bot heard: {}", text(gap));
    let calls = hotline.stored_calls(&token, 1, Duration::from_secs(30));
    let call_id = calls[0]["id"].as_str().unwrap().to_string();

    // Chromium signs in as each role and goes through the pages.
    let shots = harness::target_dir();
    let out = work.path().join("dashboard.json");
    let who = |name: &str| format!("{name}:{password}");
    let status = Command::new("node")
        .current_dir(root.join("tests/web"))
        .arg("dashboard.mjs")
        .args([
            "--url",
            &format!("http://127.0.0.1:{}", hotline.web_port.unwrap()),
        ])
        .arg("--out")
        .arg(&out)
        .arg("--shots")
        .arg(&shots)
        .args(["--call", &call_id])
        .args([
            "--admin",
            &who("ada"),
            "--supervisor",
            &who("sam"),
            "--agent",
            &who("ann"),
        ])
        .args(["--answer", ANSWER])
        // The transcript search is case-insensitive; the greeting says "Acme Telecom".
        .args(["--search", "ACME telecom"])
        .status()
        .expect("run node tests/web/dashboard.mjs");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("result")).expect("result JSON");
    assert!(
        status.success() && r["error"].is_null(),
        "harness: {}\n{r:#}",
        r["error"]
    );

    // Nobody signed in: the login form. A wrong password: refused.
    assert!(
        r["anonymous"]["url"]
            .as_str()
            .unwrap()
            .contains("/login?next=/dashboard/calls"),
        "{}",
        r["anonymous"]
    );
    assert!(
        text(&r["wrongPassword"]).contains("Wrong name or password"),
        "{}",
        r["wrongPassword"]
    );
    // Roles.
    assert_eq!(
        r["agentDashboard"]["status"], 403,
        "{}",
        r["agentDashboard"]
    );
    assert_eq!(r["agentAdmin"]["status"], 403, "{}", r["agentAdmin"]);
    assert!(r["supervisorLogin"]["url"]
        .as_str()
        .unwrap()
        .ends_with("/dashboard/analytics"));
    assert_eq!(
        r["supervisorAdmin"]["status"], 403,
        "{}",
        r["supervisorAdmin"]
    );
    assert_eq!(r["forgedAnswer"]["status"], 403, "{}", r["forgedAnswer"]);
    // The admin's pages.
    assert!(
        text(&r["overview"]).contains("Live calls"),
        "{}",
        r["overview"]
    );
    assert_eq!(r["calls"]["status"], 200);
    assert!(text(&r["calls"]).contains("1 calls"), "{}", r["calls"]);
    assert!(
        r["search"]["count"].as_str().unwrap().starts_with('1'),
        "the text search finds the call: {}",
        r["search"]
    );
    assert_eq!(r["call"]["status"], 200);
    assert!(
        text(&r["call"]).contains(text(gap)),
        "the call page shows what was said"
    );
    assert!(text(&r["call"]).contains("QA findings"));
    let recording = &r["call"]["recording"];
    assert_eq!(recording["status"], 200, "{recording}");
    assert_eq!(recording["type"], "audio/wav");
    let wav_len = std::fs::metadata(hotline.call_dirs()[0].join("recording.wav"))
        .unwrap()
        .len();
    assert_eq!(
        recording["bytes"].as_u64(),
        Some(wav_len),
        "the player gets the whole recording"
    );
    assert_eq!(r["analytics"]["status"], 200);
    assert!(
        r["analytics"]["charts"].as_u64().unwrap() >= 2,
        "{}",
        r["analytics"]
    );
    assert!(
        text(&r["gaps"]).contains(text(gap)),
        "the gap is listed: {}",
        r["gaps"]
    );
    assert_eq!(r["gapQuestion"], text(gap).to_lowercase());
    assert!(
        text(&r["answered"]).contains("Answer saved"),
        "{}",
        r["answered"]
    );
    assert!(
        text(&r["answeredAll"]).contains("Answered by ada"),
        "{}",
        r["answeredAll"]
    );
    assert_eq!(r["csv"]["status"], 200);
    assert!(
        r["csv"]["text"].as_str().unwrap().contains(",1,yes,"),
        "{}",
        r["csv"]
    );
    assert!(text(&r["admin"]).contains("sam") && text(&r["admin"]).contains("supervisor"));
    assert!(
        r["afterSignOut"]["url"]
            .as_str()
            .unwrap()
            .contains("/login"),
        "{}",
        r["afterSignOut"]
    );
    for name in [
        "login",
        "overview",
        "calls",
        "call",
        "analytics",
        "gaps",
        "admin",
    ] {
        let png = shots.join(format!("dashboard-{name}.png"));
        assert!(png.is_file(), "no screenshot {}", png.display());
    }

    // The answer is in the flow's knowledge base, and the next caller who asks hears it.
    let kb_text = std::fs::read_to_string(kb.join("telecom_en.md")).unwrap();
    assert!(kb_text.contains(ANSWER), "the KB file has the answer");
    caller(&hotline.sip_addr(), &pcap).run_ok(work.path());
    let calls = hotline.finished_calls(Duration::from_secs(20));
    let second = calls
        .iter()
        .find(|c| !c.iter().any(|e| e["type"] == "knowledge_gap"))
        .unwrap_or_else(|| panic!("the second caller's question was a gap again: {calls:?}"));
    let replies: Vec<&str> = second
        .iter()
        .filter(|e| e["type"] == "bot_reply")
        .map(text)
        .collect();
    assert!(
        replies.iter().any(|r| r.contains(ANSWER)),
        "the next caller heard the answer: {replies:?}"
    );
}

/// Signs in over plain HTTP as the login form does (its CSRF cookie and field), and returns
/// the `Cookie` header that carries the session.
fn sign_in(port: u16, user: &str, password: &str) -> String {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let form = agent
        .get(&format!("http://127.0.0.1:{port}/login"))
        .call()
        .expect("GET /login");
    let login_cookie = form
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("the login form's cookie")
        .to_string();
    let html = form.into_string().expect("the login form");
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's csrf field")
        .to_string();
    let response = match agent
        .post(&format!("http://127.0.0.1:{port}/login"))
        .set("Cookie", &login_cookie)
        .send_form(&[("user", user), ("password", password), ("csrf", &csrf)])
    {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST /login: {e}"),
    };
    assert_eq!(response.status(), 303, "signed in");
    let session = response
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("hotline_session=") && !c.starts_with("hotline_session=;"))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    session
}

/// The live panel shows a call while it is in progress, with what the caller said so far,
/// and forgets it when it ends. Without a session the panel is not shown.
#[test]
fn the_live_panel_shows_a_call_in_progress_with_its_latest_lines() {
    let rtp = RtpPorts::free(2);
    let hotline = Hotline::start_with_web_and(
        2,
        "",
        &format!("port = 0\ncodecs = [\"PCMU\"]\n{}\n", rtp.toml()),
    );
    let port = hotline.web_port.unwrap();
    hotline.cli(
        &["users", "add", "sam", "--role", "supervisor"],
        &[("HOTLINE_PASSWORD", "correct horse battery")],
    );
    let cookie = sign_in(port, "sam", "correct horse battery");
    let panel = |cookie: Option<&str>| {
        let agent = ureq::AgentBuilder::new().redirects(0).build();
        let mut request = agent.get(&format!("http://127.0.0.1:{port}/dashboard/live"));
        if let Some(c) = cookie {
            request = request.set("Cookie", c);
        }
        match request.call() {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("GET /dashboard/live: {e}"),
        }
    };
    let (status, _) = panel(None);
    assert_eq!(status, 303, "no session: sent to the login form");
    assert!(panel(Some(&cookie)).1.contains("No call in progress"));

    let work = tempfile::tempdir().expect("tempdir");
    let pcap = common::pcap::support_request_pcap(work.path(), PT_PCMU);
    let call = common::sipp::support_caller(hotline.sip_addr(), &pcap)
        .timeout_s(40)
        .spawn(work.path());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let html = loop {
        let (_, html) = panel(Some(&cookie));
        if html.contains("caller:") && html.contains("support") {
            break html;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the live panel never showed the caller's words: {html}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        html.contains("sip-udp") && html.contains("telecom_en"),
        "{html}"
    );
    assert!(
        html.contains("Welcome to Acme Telecom"),
        "the bot's lines too: {html}"
    );
    let outcome = call.wait(Duration::from_secs(60));
    assert!(outcome.success, "{outcome:?}");
    hotline.one_call(Duration::from_secs(20));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !panel(Some(&cookie)).1.contains("No call in progress") {
        assert!(
            std::time::Instant::now() < deadline,
            "the ended call stays on the panel"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
