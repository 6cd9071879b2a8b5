//! Scripted text conversations through `hotline chat --events`: the real binary, the real demo
//! flows in `assets/flows/`, and the real demo business systems served over loopback HTTP.
//!
//! Each test feeds caller lines on stdin and asserts on the JSON event lines the call records
//! (`intent`, `slot`, `bot_reply`, `knowledge_gap`, `transfer`, `hangup`, `error`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

/// The demo systems (`hotline::dialogue::demo_router`) on a free loopback port, once per test
/// binary; returns the base URL that flows use as `HOTLINE_DEMO_URL`.
fn demo_base() -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
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
    })
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `hotline chat --events` with `script` on stdin; returns the events.
fn chat_with(args: &[&str], demo_url: &str, config: Option<&Path>, script: &str) -> Vec<Value> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hotline"));
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.arg("chat").arg("--events").args(args);
    let mut child = cmd
        .current_dir(repo())
        .env("HOTLINE_DEMO_URL", demo_url)
        .env("RUST_LOG", "warn")
        .env_remove("HOTLINE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hotline chat");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write script");
    let out = child.wait_with_output().expect("chat output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "hotline chat failed: {}\nstdout:\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON event ({e}): {l}")))
        .collect()
}

fn chat(args: &[&str], script: &str) -> Vec<Value> {
    chat_with(args, demo_base(), None, script)
}

fn of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == t).collect()
}

fn replies(events: &[Value]) -> Vec<String> {
    of_type(events, "bot_reply")
        .iter()
        .map(|e| e["text"].as_str().unwrap_or("").to_string())
        .collect()
}

fn intents(events: &[Value]) -> Vec<String> {
    of_type(events, "intent")
        .iter()
        .map(|e| e["name"].as_str().unwrap_or("").to_string())
        .collect()
}

fn slots(events: &[Value]) -> Vec<(String, String)> {
    of_type(events, "slot")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("").to_string(),
                e["value"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn transfer_reason(events: &[Value]) -> Option<String> {
    of_type(events, "transfer")
        .first()
        .map(|e| e["reason"].as_str().unwrap_or("").to_string())
}

fn hangup_reason(events: &[Value]) -> Option<String> {
    of_type(events, "hangup")
        .first()
        .map(|e| e["reason"].as_str().unwrap_or("").to_string())
}

fn said(events: &[Value], needle: &str) -> bool {
    replies(events).iter().any(|r| r.contains(needle))
}

fn dump(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn events_are_timed_json_lines_with_a_greeting() {
    let events = chat(&[], "goodbye\n");
    assert_eq!(events[0]["type"], "call_start", "{}", dump(&events));
    assert!(
        said(&events, "Welcome to Acme Telecom"),
        "{}",
        dump(&events)
    );
    assert!(events
        .windows(2)
        .all(|w| w[0]["t_ms"].as_u64() <= w[1]["t_ms"].as_u64()));
    assert_eq!(intents(&events), vec!["goodbye"]);
    assert_eq!(hangup_reason(&events).as_deref(), Some("caller.goodbye"));
}

#[test]
fn order_status_with_slot_correction_and_webhook_success() {
    // A wrong check digit is rejected; then a value is read back, corrected in the same breath,
    // confirmed, and looked up in the order system.
    let script = "where is my order\nfour seven one two three six\nfour seven one two three five\nno it's four seven one three one eight\nyes\nno thanks\n";
    let events = chat(&[], script);
    let text = dump(&events);
    assert_eq!(
        intents(&events).first().map(String::as_str),
        Some("order_status"),
        "{text}"
    );
    assert!(said(&events, "check digit does not match"), "{text}");
    assert!(
        said(&events, "I heard 4 7 1 2 3 5. Is that right?"),
        "{text}"
    );
    assert!(
        said(&events, "I heard 4 7 1 3 1 8. Is that right?"),
        "{text}"
    );
    assert_eq!(
        slots(&events),
        vec![("order_id".to_string(), "471318".to_string())],
        "{text}"
    );
    // 4+7+1+3+1+8 = 24, 24 % 3 = 0: the demo order system says delivered.
    assert!(
        said(&events, "Order 471318 is delivered, already delivered."),
        "{text}"
    );
    // "no thanks" to "anything else?" is the global goodbye.
    assert_eq!(
        hangup_reason(&events).as_deref(),
        Some("caller.goodbye"),
        "{text}"
    );
}

#[test]
fn dtmf_menu_and_keyed_order_id() {
    let events = chat(&[], "/dtmf 2\n/dtmf 471235\n/dtmf 1\nno\n");
    let text = dump(&events);
    assert_eq!(of_type(&events, "dtmf").len(), 8, "{text}");
    assert_eq!(intents(&events)[0], "order_status", "{text}");
    assert_eq!(
        slots(&events),
        vec![("order_id".to_string(), "471235".to_string())],
        "{text}"
    );
    assert!(
        said(&events, "Order 471235 is shipped, arriving on Thursday."),
        "{text}"
    );
}

#[test]
fn webhook_timeout_gives_the_spoken_fallback() {
    let slow = format!("{}/slow", demo_base());
    let events = chat_with(&[], &slow, None, "order status\n4 7 1 2 3 5\nyes\n");
    let text = dump(&events);
    assert!(
        said(&events, "our order system is slow to answer"),
        "{text}"
    );
    assert!(!said(&events, "Order 471235 is"), "{text}");
    assert!(said(&events, "anything else"), "{text}");
}

#[test]
fn webhook_failure_gives_the_spoken_fallback() {
    for base in [
        format!("{}/down", demo_base()),
        "http://127.0.0.1:9/demo".to_string(),
    ] {
        let events = chat_with(&[], &base, None, "order status\n4 7 1 2 3 5\nyes\n");
        let text = dump(&events);
        assert!(
            said(&events, "our order system is slow to answer"),
            "{base}: {text}"
        );
        assert!(!said(&events, "Order 471235 is"), "{base}: {text}");
    }
}

/// A caller with no number the CRM knows: the CRM answers 404, which is an answer
/// (`not_found`), not a failure: the bot asks for the number without apologising for a
/// system that is down.
#[test]
fn an_unknown_caller_is_asked_for_their_number_without_a_false_apology() {
    let events = chat(&[], "what's my balance\n");
    let text = dump(&events);
    assert!(said(&events, "phone number on your account"), "{text}");
    assert!(!said(&events, "isn't answering"), "{text}");
}

#[test]
fn caller_context_reaches_the_crm_webhook() {
    let events = chat(&[], "/call from=+15551234567\nwhat's my balance\nno\n");
    let text = dump(&events);
    assert!(said(&events, "Thanks Alex. Your balance is"), "{text}");
    assert_eq!(
        hangup_reason(&events).as_deref(),
        Some("caller.hangup"),
        "{text}"
    );
}

#[test]
fn password_reset_posts_a_ticket_with_a_templated_body() {
    let events = chat(&[], "I forgot my password\nyes please\nno\n");
    let text = dump(&events);
    assert_eq!(intents(&events)[0], "password_reset", "{text}");
    assert_eq!(
        slots(&events),
        vec![("send_reset".to_string(), "yes".to_string())],
        "{text}"
    );
    assert!(
        replies(&events)
            .iter()
            .any(|r| r.starts_with("Done.") && r.contains("reference is T")),
        "{text}"
    );
}

#[test]
fn knowledge_base_hit_and_miss_with_the_gap_logged() {
    let events = chat(
        &[],
        "how do I set up my voicemail\ncan you recommend a good pizza place near me\n",
    );
    let text = dump(&events);
    assert_eq!(intents(&events)[0], "faq", "{text}");
    assert!(said(&events, "Dial 1 2 1"), "{text}");
    let gaps = of_type(&events, "knowledge_gap");
    assert_eq!(gaps.len(), 1, "{text}");
    assert_eq!(
        gaps[0]["text"],
        "can you recommend a good pizza place near me"
    );
    assert!(said(&events, "Sorry, I didn't get that."), "{text}");
}

#[test]
fn no_match_escalates_after_the_retries() {
    let events = chat(
        &[],
        "purple monkey dishwasher\nbanana telescope\nwobble wobble\n",
    );
    let text = dump(&events);
    assert!(said(&events, "Sorry, I didn't get that."), "{text}");
    assert!(said(&events, "Press 1 for your balance"), "{text}");
    assert_eq!(
        transfer_reason(&events).as_deref(),
        Some("escalation.no_match"),
        "{text}"
    );
}

#[test]
fn no_input_escalates_after_the_retries() {
    let events = chat(&[], "/silence\n/silence\n/silence\n");
    let text = dump(&events);
    assert!(said(&events, "Are you still there?"), "{text}");
    assert_eq!(
        transfer_reason(&events).as_deref(),
        Some("escalation.no_input"),
        "{text}"
    );
    let t: Vec<u64> = of_type(&events, "transfer")
        .iter()
        .filter_map(|e| e["t_ms"].as_u64())
        .collect();
    assert_eq!(
        t,
        vec![24_000],
        "three no-input timeouts on the virtual clock: {text}"
    );
}

#[test]
fn frustration_shouting_and_explicit_requests_escalate() {
    let events = chat(&[], "this is ridiculous\nyou are useless\n");
    assert_eq!(
        transfer_reason(&events).as_deref(),
        Some("escalation.frustration"),
        "{}",
        dump(&events)
    );
    let events = chat(
        &[],
        "/shout where is my order\n/shout four seven one two three five\n",
    );
    assert_eq!(
        transfer_reason(&events).as_deref(),
        Some("escalation.shouting"),
        "{}",
        dump(&events)
    );
    let events = chat(&[], "I'd like to speak to customer support\n");
    assert_eq!(
        transfer_reason(&events).as_deref(),
        Some("escalation.request"),
        "{}",
        dump(&events)
    );
    // The escalated turn still records what the caller asked for.
    assert_eq!(intents(&events), vec!["human"], "{}", dump(&events));
    let events = chat(&["--flow", "ecommerce_zh"], "转人工\n");
    assert!(transfer_reason(&events).is_some(), "{}", dump(&events));
    assert!(
        intents(&events).iter().any(|i| i == "human"),
        "{}",
        dump(&events)
    );
    let events = chat(&["--flow", "ecommerce_zh"], "这也太离谱了\n气死我了\n");
    assert_eq!(
        transfer_reason(&events).as_deref(),
        Some("escalation.frustration"),
        "{}",
        dump(&events)
    );
}

#[test]
fn global_intents_work_from_any_node() {
    // help and repeat inside a slot node, then goodbye from it.
    let events = chat(&[], "order status\nhelp\nsay that again\ngoodbye\n");
    let text = dump(&events);
    let r = replies(&events);
    let ask = "Please say or key in your six digit order number.";
    assert!(
        r.iter().filter(|x| x.as_str() == ask).count() >= 3,
        "{text}"
    );
    assert_eq!(
        hangup_reason(&events).as_deref(),
        Some("caller.goodbye"),
        "{text}"
    );
}

#[test]
fn low_confidence_asks_did_you_mean() {
    let events = chat(&[], "shipping\nyes\n");
    let text = dump(&events);
    assert!(
        replies(&events)
            .iter()
            .any(|r| r.starts_with("Did you mean")),
        "{text}"
    );
    assert!(said(&events, "six digit order number"), "{text}");
}

#[test]
fn chinese_order_lookup_returns_and_transfer() {
    let script = "我想查一下订单\n四七一二三五\n对\n还有\n我要退货\n四七一三一八\n是的\n明天\n尺码不合适\n没有了\n";
    let events = chat(&["--flow", "ecommerce_zh"], script);
    let text = dump(&events);
    assert!(said(&events, "欢迎致电优选商城"), "{text}");
    assert_eq!(intents(&events)[0], "order_status", "{text}");
    assert!(said(&events, "我听到的是4 7 1 2 3 5，对吗？"), "{text}");
    assert!(
        said(&events, "您的订单471235已发货，预计周四送达。"),
        "{text}"
    );
    assert!(intents(&events).contains(&"returns".to_string()), "{text}");
    let s = slots(&events);
    assert!(
        s.contains(&("pickup_date".to_string(), "tomorrow".to_string())),
        "{text}"
    );
    assert!(
        s.contains(&("return_reason".to_string(), "尺码不合适".to_string())),
        "{text}"
    );
    assert!(
        replies(&events)
            .iter()
            .any(|r| r.starts_with("已为您提交退换货申请，服务单号是T")),
        "{text}"
    );
    assert_eq!(
        hangup_reason(&events).as_deref(),
        Some("caller.goodbye"),
        "{text}"
    );

    let events = chat(&["--flow", "ecommerce_zh"], "转人工\n");
    assert_eq!(
        transfer_reason(&events).as_deref(),
        Some("escalation.request"),
        "{}",
        dump(&events)
    );
    let events = chat(
        &["--flow", "ecommerce_zh"],
        "查物流\n/dtmf 471235\n/dtmf 1\n",
    );
    assert!(said(&events, "您的包裹由"), "{}", dump(&events));
    let events = chat(&["--flow", "ecommerce_zh"], "七天无理由退货怎么弄\n");
    assert!(
        intents(&events).contains(&"faq".to_string())
            || intents(&events).contains(&"returns".to_string()),
        "{}",
        dump(&events)
    );
}

/// A config that reads flows and knowledge bases from `dir`.
fn config_for(dir: &Path) -> PathBuf {
    let path = dir.join("hotline.toml");
    let text = format!(
        "[dialogue]\nflows_dir = {:?}\nkb_dir = {:?}\ndefault_flow = \"telecom_en\"\n",
        dir.join("flows").display().to_string(),
        repo().join("assets/kb").display().to_string()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn flow_dir_with(flows: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("flows")).expect("mkdir");
    for (name, text) in flows {
        std::fs::write(dir.path().join("flows").join(name), text).expect("write flow");
    }
    dir
}

fn telecom() -> String {
    std::fs::read_to_string(repo().join("assets/flows/telecom_en.toml")).expect("demo flow")
}

#[test]
fn invalid_flows_fail_with_file_line_and_what_was_expected() {
    let base = telecom();
    let line_of = |needle: &str| {
        base.lines()
            .position(|l| l.contains(needle))
            .expect("needle")
            + 1
    };
    let cases: Vec<(String, usize, &str)> = vec![
        (
            base.replace("next = \"order_lookup\"", "next = \"order_lookup_typo\""),
            line_of("next = \"order_lookup\""),
            "names node \"order_lookup_typo\", which does not exist",
        ),
        (
            base.replace("[nodes.outage]\nsay =", "[nodes.outage]\nsya ="),
            line_of("[nodes.outage]") + 1,
            "unknown field `sya`, expected one of",
        ),
        (
            base.replace("Order ${order_id} is", "Order ${order_id is"),
            line_of("Order ${order_id} is"),
            "bad variable name",
        ),
        (
            base.replace("\"4\" = \"outage\", \"0\"", "\"44\" = \"outage\", \"0\""),
            line_of("\"4\" = \"outage\", \"0\""),
            "expected one of 0-9, * or #",
        ),
        (
            base.replace(
                "on_intent = { yes = \"menu_again\"",
                "on_intent = { maybe = \"menu_again\"",
            ),
            line_of("on_intent = { yes = \"menu_again\""),
            "names intent \"maybe\", which is not defined",
        ),
        (
            base.replace(
                "Thanks ${customer_name:-there}",
                "Thanks ${env.HOTLINE_CRM_TOKEN}",
            ),
            line_of("Thanks ${customer_name:-there}"),
            "never in prompts",
        ),
        (
            base.replace(
                "collect = \"slot\"\nslot = { name = \"send_reset\"",
                "collect = \"slott\"\nslot = { name = \"send_reset\"",
            ),
            line_of("name = \"send_reset\"") - 1,
            "unknown variant `slott`",
        ),
    ];
    for (text, line, expected) in cases {
        let dir = flow_dir_with(&[("telecom_en.toml", &text)]);
        let config = config_for(dir.path());
        let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
            .arg("--config")
            .arg(&config)
            .args(["chat", "--events"])
            .current_dir(repo())
            .stdin(Stdio::null())
            .output()
            .expect("run chat");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "an invalid flow must not run: {expected}"
        );
        let place = format!("telecom_en.toml:{line}:");
        assert!(stderr.contains(&place), "expected {place} in: {stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in: {stderr}"
        );
    }
}

/// Reads event lines from a running chat until one matches.
fn read_until(rx: &mpsc::Receiver<Value>, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(v) => {
                let done = pred(&v);
                seen.push(v);
                if done {
                    return seen;
                }
            }
            Err(_) => panic!("waiting for {what}; saw:\n{}", dump(&seen)),
        }
    }
}

#[test]
fn hot_reload_serves_new_calls_and_keeps_calls_in_progress() {
    let v1 = telecom();
    let dir = flow_dir_with(&[("telecom_en.toml", &v1)]);
    let config = config_for(dir.path());
    let flow_path = dir.path().join("flows/telecom_en.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .arg("--config")
        .arg(&config)
        .args(["chat", "--events"])
        .current_dir(repo())
        .env("HOTLINE_DEMO_URL", demo_base())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run chat");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    let is_reply = |needle: &'static str| {
        move |v: &Value| {
            v["type"] == "bot_reply" && v["text"].as_str().unwrap_or("").contains(needle)
        }
    };
    read_until(&rx, "the v1 greeting", is_reply("Welcome to Acme Telecom"));

    // A new version of the flow lands while the call is in progress.
    let v2 = v1
        .replace("Welcome to Acme Telecom.", "Hello from the new Acme flow.")
        .replace(
            "help = \"You can say balance,",
            "help = \"In version two, say balance,",
        );
    assert_ne!(v1, v2);
    std::fs::write(&flow_path, &v2).expect("write v2");
    writeln!(stdin, "help").expect("stdin");
    let seen = read_until(
        &rx,
        "the call in progress keeps v1",
        is_reply("You can say balance"),
    );
    assert!(!seen.iter().any(|v| v.to_string().contains("version two")));

    // A new call gets v2.
    writeln!(stdin, "/call").expect("stdin");
    read_until(
        &rx,
        "the v2 greeting",
        is_reply("Hello from the new Acme flow."),
    );

    // A broken version is reported and v2 stays in service.
    std::fs::write(
        &flow_path,
        v2.replace("next = \"order_lookup\"", "next = \"nowhere\""),
    )
    .expect("write broken");
    writeln!(stdin, "/call").expect("stdin");
    let seen = read_until(
        &rx,
        "v2 still serving",
        is_reply("Hello from the new Acme flow."),
    );
    let error = seen
        .iter()
        .find(|v| v["type"] == "error")
        .expect("a reload error event");
    assert_eq!(error["code"], "flow.reload");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or("")
            .contains("telecom_en.toml:"),
        "{error}"
    );
    drop(stdin);
    let status = child.wait().expect("chat exits");
    assert!(status.success());
}

/// Runs `hotline chat --events` with `args` and `script`, expecting it to fail; returns stderr.
fn chat_failure(args: &[&str], config: Option<&Path>, script: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hotline"));
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let mut child = cmd
        .args(["chat", "--events"])
        .args(args)
        .current_dir(repo())
        .env("HOTLINE_DEMO_URL", demo_base())
        .env("RUST_LOG", "warn")
        .env_remove("HOTLINE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hotline chat");
    // The chat may fail before it reads its input; a closed pipe is then no error.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes());
    let out = child.wait_with_output().expect("chat output");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "chat {args:?} must fail; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn an_unknown_flow_is_an_error_listing_the_flows_and_a_flow_file_in_the_folder_runs() {
    let stderr = chat_failure(&["--flow", "nope"], None, "hello\n");
    assert!(
        stderr.contains("--flow: unknown flow \"nope\" (valid flows: ecommerce_zh, telecom_en)"),
        "{stderr}"
    );

    // A flow file in the flows folder is accepted by its path, as the flow it holds.
    let events = chat(&["--flow", "assets/flows/ecommerce_zh.toml"], "");
    assert!(said(&events, "欢迎致电优选商城"), "{}", dump(&events));
    let absolute = repo().join("assets/flows/ecommerce_zh.toml");
    let events = chat(&["--flow", &absolute.display().to_string()], "");
    assert!(said(&events, "欢迎致电优选商城"), "{}", dump(&events));

    // A flow file elsewhere is refused, saying why and where flows run from.
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = dir.path().join("my_flow.toml");
    std::fs::write(&outside, telecom()).expect("write flow");
    let stderr = chat_failure(&["--flow", &outside.display().to_string()], None, "");
    assert!(
        stderr.contains("is not a flow file in dialogue.flows_dir (assets/flows)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("(valid flows: ecommerce_zh, telecom_en)"),
        "{stderr}"
    );

    // `/call flow=` is checked the same way, naming the script line.
    let stderr = chat_failure(&[], None, "hello\n/call flow=nope\n");
    assert!(
        stderr.contains(
            "line 2: /call flow=nope: unknown flow \"nope\" (valid flows: ecommerce_zh, telecom_en)"
        ),
        "{stderr}"
    );
    let events = chat(&[], "/call flow=ecommerce_zh\n");
    assert!(said(&events, "欢迎致电优选商城"), "{}", dump(&events));
}

#[test]
fn the_configured_default_flow_runs_whatever_the_language() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("hotline.toml");
    std::fs::write(&config, "[dialogue]\ndefault_flow = \"ecommerce_zh\"\n").expect("write");
    let events = chat_with(&[], demo_base(), Some(&config), "");
    assert!(said(&events, "欢迎致电优选商城"), "{}", dump(&events));

    std::fs::write(&config, "language = \"zh\"\n").expect("write");
    let events = chat_with(&[], demo_base(), Some(&config), "");
    assert!(said(&events, "欢迎致电优选商城"), "{}", dump(&events));

    std::fs::write(
        &config,
        "language = \"en\"\n[dialogue]\ndefault_flow = \"ecommerce_zh\"\n",
    )
    .expect("write");
    let stderr = chat_failure(&[], Some(&config), "");
    assert!(
        stderr.contains("language = \"en\" and dialogue.default_flow = \"ecommerce_zh\" disagree"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ecommerce_zh (zh), telecom_en (en)"),
        "{stderr}"
    );
}

#[test]
fn slot_validation_messages_are_in_the_flow_language() {
    // A Luhn failure and a short id, spoken and keyed, in the Chinese flow.
    let script = "我想查一下订单\n四七一二三六\n四七一\n/call\n我想查一下订单\n/dtmf 471236\n";
    let events = chat(&["--flow", "ecommerce_zh"], script);
    let text = dump(&events);
    let rejected: Vec<String> = replies(&events)
        .into_iter()
        .filter(|r| r.starts_with("抱歉，这个号码好像不对"))
        .collect();
    assert_eq!(
        rejected,
        [
            "抱歉，这个号码好像不对：校验位不匹配。",
            "抱歉，这个号码好像不对：听到3位数字，应该是6位。",
            "抱歉，这个号码好像不对：校验位不匹配。",
        ],
        "{text}"
    );
    for reply in replies(&events) {
        assert!(
            !reply.chars().any(|c| c.is_ascii_alphabetic()),
            "English in a Chinese reply: {reply}\n{text}"
        );
    }

    // The English flow keeps its English reasons.
    let events = chat(&[], "where is my order\nfour seven one two three six\n");
    assert!(
        said(
            &events,
            "that doesn't look right: check digit does not match."
        ),
        "{}",
        dump(&events)
    );
}

/// The demo flow's post-call survey: "no" to "anything else?" asks for a score from 1 to 5,
/// a key or a word answers it, and the call's satisfaction (CSAT) is that score.
#[test]
fn the_post_call_survey_gives_the_calls_satisfaction_score() {
    let events = chat(&[], "is there an outage in my area\nno\nfour\n");
    let text = dump(&events);
    assert!(said(&events, "how satisfied were you"), "{text}");
    assert_eq!(
        slots(&events),
        vec![("csat".to_string(), "4".to_string())],
        "{text}"
    );
    assert_eq!(
        hangup_reason(&events).as_deref(),
        Some("completed"),
        "{text}"
    );
    let typed: Vec<hotline::session::CallEvent> = events
        .iter()
        .map(|e| serde_json::from_value(e.clone()).expect("an event"))
        .collect();
    assert_eq!(hotline::insight::CallSummary::of(&typed).csat, Some(4));
    // A key answers it too.
    let keyed = chat(&[], "is there an outage in my area\nno\n/dtmf 5\n");
    assert_eq!(
        slots(&keyed),
        vec![("csat".to_string(), "5".to_string())],
        "{}",
        dump(&keyed)
    );
}

/// What a caller can do when no agent took the call, as the demo flow offers it: leave a
/// number to be called back on (booked in the ticket system) or a message (kept as a slot).
#[test]
fn a_caller_leaves_a_number_to_call_back_and_a_message() {
    let script = "call me back\n4155550199\nyes\nyes\nleave a message\nmy router keeps dropping the line every evening\nno\n";
    let events = chat(&[], script);
    let got = slots(&events);
    assert!(
        got.iter()
            .any(|(name, value)| name == "callback_number" && value.contains("4155550199")),
        "{}",
        dump(&events)
    );
    assert!(said(&events, "call you back on"), "{}", dump(&events));
    assert!(
        got.iter()
            .any(|(name, value)| name == "voicemail" && value.contains("router keeps dropping")),
        "{}",
        dump(&events)
    );
    assert!(
        said(&events, "your message is recorded"),
        "{}",
        dump(&events)
    );
}
