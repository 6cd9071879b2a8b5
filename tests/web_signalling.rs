//! Signalling and teardown against a real `hotline serve`, with real webrtc-rs callers:
//! garbage SDP, oversized offers and the wrong content type get clear 400/413/415 errors; the
//! WebRTC call limit answers 503 with Retry-After; a caller that vanishes before media connects
//! (ICE never completes) and one that hangs up abruptly are both ended by the server, which then
//! holds no call, driver, port or extra task; and through all of it a live call is unaffected.

#[path = "web/client.rs"]
mod client;
mod common;
#[path = "web/harness.rs"]
mod harness;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use client::TestCaller;
use harness::{post_offer, Server};
use serde_json::Value;

fn error_code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_offers_limits_and_abrupt_callers() -> Result<()> {
    let media_ports = common::ports::free_port_range(4);
    let server = Server::start(&format!(
        "max_calls = 2\nmax_offer_bytes = 8192\nconnect_timeout_ms = 2000\n\
         ice_disconnected_timeout_ms = 1000\nice_failed_timeout_ms = 1000\n\
         udp_port_min = {}\nudp_port_max = {}\n\
         [web.limits]\ncall_burst = 50.0",
        media_ports.start(),
        media_ports.end()
    ))?;
    let baseline_tasks = server.health()?["tasks_alive"]
        .as_u64()
        .context("tasks_alive")?;

    // A live call that must stay unaffected by everything below.
    let mut live = TestCaller::new().await?;
    let (status, live_id, answer) = post_offer(
        &server,
        "?language=en&order=A123",
        "application/sdp",
        live.offer_sdp.as_bytes(),
    );
    ensure!(
        status == 201,
        "a valid offer was refused: {status} {answer}"
    );
    let live_id = live_id.context("no X-Call-Id")?;
    ensure!(
        answer.starts_with("v=0") && answer.contains("a=candidate:"),
        "answer: {answer}"
    );
    live.accept(answer).await?;
    live.wait_connected(Duration::from_secs(10)).await?;

    // Garbage SDP.
    let (status, _, body) = post_offer(&server, "", "application/sdp", b"hello, I am not SDP");
    ensure!(
        status == 400 && error_code(&body) == "offer.invalid",
        "garbage: {status} {body}"
    );
    // Not even text.
    let (status, _, body) = post_offer(&server, "", "application/sdp", &[0xff, 0xfe, 0x00, 0x80]);
    ensure!(status == 400, "binary: {status} {body}");
    // SDP without audio, and SDP that looks right but does not parse.
    let video = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
    let (status, _, body) = post_offer(&server, "", "application/sdp", video.as_bytes());
    ensure!(
        status == 400 && body.contains("m=audio"),
        "video only: {status} {body}"
    );
    let broken = live_offer_mangled(&live.offer_sdp);
    let (status, _, body) = post_offer(&server, "", "application/sdp", broken.as_bytes());
    ensure!(status == 400, "mangled offer: {status} {body}");
    // Oversized.
    let mut huge = String::from("v=0\r\n");
    huge.push_str(&"a=x-padding:0123456789\r\n".repeat(1000));
    let (status, _, body) = post_offer(&server, "", "application/sdp", huge.as_bytes());
    ensure!(
        status == 413 && error_code(&body) == "offer.too_large",
        "oversized: {status} {body}"
    );
    // Wrong content type, and a language we do not speak.
    let (status, _, body) = post_offer(&server, "", "image/png", live.offer_sdp.as_bytes());
    ensure!(status == 415, "content type: {status} {body}");
    let (status, _, body) = post_offer(
        &server,
        "?language=fr",
        "application/sdp",
        live.offer_sdp.as_bytes(),
    );
    ensure!(
        status == 400 && body.contains("fr"),
        "language: {status} {body}"
    );
    // Hanging up a call that does not exist.
    let missing = ureq::delete(&server.url("/api/call/no-such-call")).call();
    ensure!(
        matches!(missing, Err(ureq::Error::Status(404, _))),
        "DELETE unknown call"
    );

    // A caller that vanishes before media connects: it offers, then is gone.
    let ghost = TestCaller::new().await?;
    let (status, ghost_id, _) =
        post_offer(&server, "", "application/sdp", ghost.offer_sdp.as_bytes());
    ensure!(status == 201, "ghost offer: {status}");
    ghost.close().await;
    // Meanwhile both WebRTC lines are taken: the next caller is told to retry.
    let third = TestCaller::new().await?;
    let url = server.url("/api/call");
    let busy = ureq::post(&url)
        .set("Content-Type", "application/sdp")
        .send_string(&third.offer_sdp);
    match busy {
        Err(ureq::Error::Status(503, r)) => {
            ensure!(r.header("retry-after").is_some(), "503 without Retry-After");
            let body = r.into_string()?;
            ensure!(error_code(&body) == "webrtc.busy", "busy: {body}");
        }
        other => anyhow::bail!("expected 503 at the call limit, got {other:?}"),
    }
    third.close().await;
    let ghost_id = ghost_id.context("no ghost id")?;
    let events = server.wait_record_hangup(&ghost_id, Duration::from_secs(15))?;
    let reason = events
        .iter()
        .rev()
        .find(|e| e["type"] == "hangup")
        .map(|e| e["reason"].clone());
    println!("caller gone before media: ended with {reason:?}");
    ensure!(
        reason
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|r| r.starts_with("webrtc.")),
        "ghost ended with {reason:?}"
    );

    // The live call was unaffected: still live, its record has no hangup, audio flows both ways.
    let h = server.health()?;
    ensure!(h["webrtc_calls"] == 1, "the live call is gone: {h}");
    let events = server.record_events(&live_id)?;
    ensure!(
        !events.iter().any(|e| e["type"] == "hangup"),
        "the live call was ended"
    );
    ensure!(
        live.packets_in.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no bot audio reached the live caller"
    );
    let start = events
        .iter()
        .find(|e| e["type"] == "call_start")
        .context("no call_start")?;
    ensure!(
        start["transport"] == "webrtc" && start["language"] == "en",
        "call_start: {start}"
    );

    // The live caller now drops off abruptly; the server notices and ends the call.
    live.close().await;
    let events = server.wait_record_hangup(&live_id, Duration::from_secs(15))?;
    let reason = events
        .iter()
        .rev()
        .find(|e| e["type"] == "hangup")
        .map(|e| e["reason"].clone());
    println!("caller dropped mid-call: ended with {reason:?}");
    ensure!(
        reason
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|r| r.starts_with("webrtc.")),
        "live call ended with {reason:?}"
    );

    // Nothing leaked: no call, driver, leased port, and the runtime's tasks are back to baseline.
    let h = server.wait_idle(Duration::from_secs(10))?;
    let mut tasks = h["tasks_alive"].as_u64().unwrap_or(u64::MAX);
    for _ in 0..50 {
        if tasks <= baseline_tasks {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        tasks = server.health()?["tasks_alive"].as_u64().unwrap_or(u64::MAX);
    }
    println!("tasks: baseline {baseline_tasks}, after {tasks}");
    ensure!(
        tasks <= baseline_tasks,
        "tasks leaked: {tasks} alive, baseline {baseline_tasks}"
    );

    // And the lines work again: every port of the 4-port range is free for new calls.
    for _ in 0..2 {
        let mut again = TestCaller::new().await?;
        let (status, id, answer) =
            post_offer(&server, "", "application/sdp", again.offer_sdp.as_bytes());
        ensure!(
            status == 201,
            "after teardown a new call was refused: {status} {answer}"
        );
        again.accept(answer).await?;
        again.wait_connected(Duration::from_secs(10)).await?;
        let id = id.context("no id")?;
        let del = ureq::delete(&server.url(&format!("/api/call/{id}"))).call();
        ensure!(
            matches!(del, Ok(ref r) if r.status() == 204),
            "DELETE: {del:?}"
        );
        let events = server.wait_record_hangup(&id, Duration::from_secs(10))?;
        let reason = events
            .iter()
            .rev()
            .find(|e| e["type"] == "hangup")
            .map(|e| e["reason"].clone());
        ensure!(
            reason == Some(Value::from("caller.hangup")),
            "DELETE ended with {reason:?}"
        );
        again.close().await;
    }
    server.wait_idle(Duration::from_secs(10))?;
    Ok(())
}

/// A real offer with its fingerprint and ICE lines corrupted: looks like SDP, cannot be used.
fn live_offer_mangled(sdp: &str) -> String {
    sdp.lines()
        .map(|l| {
            if l.starts_with("a=fingerprint:") {
                "a=fingerprint:sha-256 ZZ:not:a:fingerprint".to_string()
            } else if l.starts_with("m=audio") {
                "m=audio notaport UDP/TLS/RTP/SAVPF 111".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}
