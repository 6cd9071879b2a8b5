//! Measures (it asserts only that the calls work): CPU per WebRTC call with N concurrent
//! callers, and the Opus codec's own cost per 20 ms frame. Timings are printed, never asserted.
//!
//! Run: `cargo test --release --test web_load -- --ignored --nocapture` (N from
//! `HOTLINE_WEB_LOAD_CALLS`, default "1,4,8"). Each caller is a real webrtc-rs peer sending 20 ms
//! Opus packets; the server decodes them, runs the call (VAD, session, the bot's greeting and
//! prompts through TTS) and encodes the bot's audio back. The caller sends low-level noise, so
//! the figure is the transport's cost (SRTP, jitter buffer, Opus decode + encode, pacing) plus
//! the per-call pipeline, without recognizer turns.

#[path = "web/client.rs"]
mod client;
mod common;
#[path = "web/harness.rs"]
mod harness;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use client::TestCaller;
use harness::{post_offer, Server};
use hotline::audio::{Frame, FRAME_SAMPLES};
use hotline::web::media::WebMediaSession;
use hotline_media::rtp::{RtpPacket, Ssrc};

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are at 11 and 12 after the name.
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// 50 Opus packets (1 s) of quiet noise, like an open microphone in a room.
fn room_noise_packets() -> Result<Vec<Vec<u8>>> {
    let mut enc = WebMediaSession::new()?;
    let mut seed = 12345u32;
    (0..50)
        .map(|_| {
            let samples: Vec<i16> = (0..FRAME_SAMPLES)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    ((seed >> 16) as i16) / 200
                })
                .collect();
            Ok(enc.encode_bot_frame(&Frame::from_slice(&samples))?)
        })
        .collect()
}

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn opus_codec_cost_per_frame() -> Result<()> {
    let packets = room_noise_packets()?;
    let mut session = WebMediaSession::new()?;
    let speechlike: Vec<Frame> = (0..50)
        .map(|i| {
            let s: Vec<i16> = (0..FRAME_SAMPLES)
                .map(|n| {
                    let t = (i * FRAME_SAMPLES + n) as f32 / 16_000.0;
                    (6000.0
                        * (2.0 * std::f32::consts::PI * 180.0 * t).sin()
                        * (1.0 + (t * 3.0).sin())) as i16
                })
                .collect();
            Frame::from_slice(&s)
        })
        .collect();
    let frames = 5_000;
    let started = Instant::now();
    for i in 0..frames {
        let packet = RtpPacket {
            marker: false,
            payload_type: 111,
            sequence: i as u16,
            timestamp: i as u32 * 960,
            ssrc: Ssrc(1),
            payload: &packets[i % packets.len()],
        };
        session.push_rtp(&packet, i as u64 * 20);
        let _ = session.next_caller_frame();
        let _ = session.encode_bot_frame(&speechlike[i % speechlike.len()])?;
    }
    let per_frame_us = started.elapsed().as_secs_f64() * 1e6 / frames as f64;
    println!(
        "opus decode + encode per 20 ms frame: {per_frame_us:.1} µs = {:.2} % of one core per call",
        per_frame_us / 20_000.0 * 100.0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn cpu_per_webrtc_call() -> Result<()> {
    let counts: Vec<usize> = std::env::var("HOTLINE_WEB_LOAD_CALLS")
        .unwrap_or_else(|_| "1,4,8".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let packets = Arc::new(room_noise_packets()?);
    for n in counts {
        let server = Server::start("max_calls = 64\n[web.limits]\ncalls_per_s = 0.0")?;
        let pid = server.pid();
        let idle_start = cpu_seconds(pid)?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle = cpu_seconds(pid)? - idle_start;

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut callers = Vec::new();
        let mut connect_ms = Vec::new();
        for _ in 0..n {
            let mut caller = TestCaller::new().await?;
            let t0 = Instant::now();
            let (status, _, answer) =
                post_offer(&server, "", "application/sdp", caller.offer_sdp.as_bytes());
            ensure!(status == 201, "offer refused: {status} {answer}");
            caller.accept(answer).await?;
            caller.wait_connected(Duration::from_secs(10)).await?;
            connect_ms.push(t0.elapsed().as_millis() as u64);
            let sender = caller.send_loop(Arc::clone(&packets), stop_rx.clone());
            callers.push((caller, sender));
        }
        // Let greetings start, then measure a steady window.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let window = Duration::from_secs(10);
        let cpu_start = cpu_seconds(pid)?;
        let wall = Instant::now();
        let packets_before: Vec<u64> = callers
            .iter()
            .map(|(c, _)| c.packets_in.load(Ordering::Relaxed))
            .collect();
        tokio::time::sleep(window).await;
        let cpu = cpu_seconds(pid)? - cpu_start;
        let secs = wall.elapsed().as_secs_f64();
        let received: Vec<u64> = callers
            .iter()
            .zip(&packets_before)
            .map(|((c, _), before)| c.packets_in.load(Ordering::Relaxed) - before)
            .collect();
        let _ = stop_tx.send(true);
        for (caller, sender) in callers {
            let _ = sender.await;
            caller.close().await;
        }
        let idle_pct = idle / 2.0 * 100.0;
        let total_pct = cpu / secs * 100.0;
        println!(
            "N={n}: server CPU {total_pct:.1} % of one core ({:.2} % per call; idle server {idle_pct:.1} %); \
             offer->connected {:?} ms; bot packets per caller in {secs:.1} s: {:?} (50/s expected)",
            (total_pct - idle_pct).max(0.0) / n as f64,
            connect_ms,
            received,
        );
        for r in &received {
            ensure!(
                *r as f64 > secs * 40.0,
                "a caller got too little bot audio: {received:?}"
            );
        }
        drop(server);
    }
    Ok(())
}
