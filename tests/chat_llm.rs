//! The optional LLM against a real HTTP peer: a small server in the test that speaks the
//! OpenAI chat-completions streaming format (server-sent events), driven through
//! `hotline chat --events` with `[dialogue.llm]` pointing at it.
//!
//! A question the knowledge base cannot answer gets the streamed answer, one `bot_reply` per
//! finished sentence, grounded in the retrieved passages; a peer that does not answer in time
//! gives the spoken fallback.

use std::convert::Infallible;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use axum::routing::post;
use futures::StreamExt;
use serde_json::{json, Value};

const QUESTION: &str = "do you sell gift cards";
/// The answer's pieces as the peer streams them; a sentence ends inside the second piece.
const PIECES: &[&str] = &[
    "I'm not sure ",
    "about gift cards. I can",
    " help with your phone",
    " service, though!",
];

type Requests = Arc<Mutex<Vec<Value>>>;

fn sse_event(delta: &str) -> String {
    let chunk = json!({
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "model": "test-model",
        "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": null}],
    });
    format!("data: {chunk}\n\n")
}

async fn stream_answer(State(requests): State<Requests>, body: String) -> Response {
    let request: Value = serde_json::from_str(&body).expect("the request body is JSON");
    requests.lock().expect("lock").push(request);
    let mut events: Vec<String> = vec![format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    )];
    events.extend(PIECES.iter().map(|p| sse_event(p)));
    events.push("data: [DONE]\n\n".into());
    let stream = futures::stream::iter(events).then(|e| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok::<_, Infallible>(e)
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .expect("response")
}

async fn never_answer(State(requests): State<Requests>, body: String) -> Response {
    requests
        .lock()
        .expect("lock")
        .push(serde_json::from_str(&body).unwrap_or(Value::Null));
    tokio::time::sleep(Duration::from_secs(30)).await;
    Response::new(Body::from(sse_event("too late.")))
}

/// The chat-completions peer on a free loopback port: `/v1` answers, `/slow/v1` never does.
fn start_llm_peer() -> (String, Requests) {
    let requests: Requests = Arc::default();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let state = requests.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let app = axum::Router::new()
                .route("/v1/chat/completions", post(stream_answer))
                .route("/slow/v1/chat/completions", post(never_answer))
                .with_state(state);
            axum::serve(listener, app).await.expect("llm peer");
        });
    });
    (format!("http://127.0.0.1:{port}"), requests)
}

fn chat_with_llm(dir: &Path, base_url: &str, timeout_ms: u64, script: &str) -> Vec<Value> {
    let config = dir.join("hotline.toml");
    std::fs::write(
        &config,
        format!(
            "[dialogue]\ndefault_flow = \"telecom_en\"\n\n[dialogue.llm]\nenabled = true\n\
             base_url = {base_url:?}\nmodel = \"test-model\"\ntimeout_ms = {timeout_ms}\n"
        ),
    )
    .expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .env_remove("HOTLINE_CONFIG")
        .env_remove("HOTLINE_LLM_API_KEY")
        .arg("--config")
        .arg(&config)
        .args(["chat", "--events"])
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

fn of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == t).collect()
}

fn replies(events: &[Value]) -> Vec<String> {
    of_type(events, "bot_reply")
        .iter()
        .filter_map(|e| e["text"].as_str().map(str::to_string))
        .collect()
}

fn intents(events: &[Value]) -> Vec<String> {
    of_type(events, "intent")
        .iter()
        .filter_map(|e| e["name"].as_str().map(str::to_string))
        .collect()
}

fn dump(events: &[Value]) -> String {
    events
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_question_the_kb_cannot_answer_gets_the_streamed_llm_answer() {
    let (peer, requests) = start_llm_peer();
    let dir = tempfile::tempdir().expect("tempdir");
    let events = chat_with_llm(
        dir.path(),
        &format!("{peer}/v1"),
        5_000,
        &format!("{QUESTION}\n"),
    );
    let text = dump(&events);

    // Each finished sentence is its own reply, in order, then the flow carries on.
    let r = replies(&events);
    let first = r
        .iter()
        .position(|x| x == "I'm not sure about gift cards.")
        .unwrap_or_else(|| panic!("the first streamed sentence is spoken on its own:\n{text}"));
    assert_eq!(
        r.get(first + 1).map(String::as_str),
        Some("I can help with your phone service, though!"),
        "{text}"
    );
    assert_eq!(
        r.get(first + 2).map(String::as_str),
        Some("Is there anything else I can help you with?"),
        "{text}"
    );
    assert!(
        intents(&events).contains(&"llm_answer".to_string()),
        "{text}"
    );
    // The knowledge base had no answer, so the gap is still logged.
    let gaps = of_type(&events, "knowledge_gap");
    assert_eq!(gaps.len(), 1, "{text}");
    assert_eq!(gaps[0]["text"], QUESTION);
    assert!(
        !r.iter().any(|x| x.starts_with("Sorry, I didn't")),
        "no no-match prompt when the LLM answered:\n{text}"
    );

    // What the peer was asked: a streamed completion with the caller's words, grounded in
    // retrieved passages.
    let requests = requests.lock().expect("lock");
    assert_eq!(requests.len(), 1, "{requests:?}");
    let req = &requests[0];
    assert_eq!(req["model"], "test-model");
    assert_eq!(req["stream"], true);
    let messages = req["messages"].as_array().expect("messages");
    assert_eq!(messages.last().map(|m| &m["role"]), Some(&json!("user")));
    assert_eq!(
        messages.last().map(|m| &m["content"]),
        Some(&json!(QUESTION))
    );
    let system = messages[0]["content"].as_str().unwrap_or("");
    assert!(
        system.contains("[1] Q: ") && system.contains("A: "),
        "the knowledge-base passages go into the prompt: {system}"
    );
}

#[test]
fn an_llm_that_does_not_answer_in_time_gives_the_fallback_prompt() {
    let (peer, requests) = start_llm_peer();
    let dir = tempfile::tempdir().expect("tempdir");
    let events = chat_with_llm(
        dir.path(),
        &format!("{peer}/slow/v1"),
        300,
        &format!("{QUESTION}\ngoodbye\n"),
    );
    let text = dump(&events);
    let r = replies(&events);
    assert!(
        r.iter()
            .any(|x| x == "Sorry, I can't look that up right now."),
        "the fallback prompt is spoken:\n{text}"
    );
    assert!(!r.iter().any(|x| x.contains("too late")), "{text}");
    assert!(
        !intents(&events).contains(&"llm_answer".to_string()),
        "{text}"
    );
    assert_eq!(
        requests.lock().expect("lock").len(),
        1,
        "the peer was asked once"
    );
    // The call goes on after the fallback.
    assert_eq!(
        of_type(&events, "hangup")
            .first()
            .and_then(|e| e["reason"].as_str()),
        Some("caller.goodbye"),
        "{text}"
    );
}
