//! Phone-line media load: N concurrent SIP calls carrying audio both ways over loopback, media
//! only. hotline's phone edge (SIP, RTP sockets, jitter buffer, G.711, RTCP, 20 ms pacing) and
//! the per-call bridge (8 ↔ 16 kHz resampling, one frame per tick) run for real; the call task
//! behind each bridge answers every caller frame with that frame (an echo), so no recognizer,
//! dialogue or synthesis runs.
//!
//! The callers run in one thread of this process: each sends a 400 Hz tone as PCMU every 20 ms
//! and counts what comes back. CPU is read from /proc (user and system time of the process and
//! of the callers' thread); hotline's share is the difference. Also measures call setup time
//! (INVITE sent → 200 OK received).
//!
//! A benchmark, so ignored by default; run it on a release build:
//! `cargo test --release --test sip_media_load -- --ignored --nocapture`
//! (`HOTLINE_SIP_LOAD_CALLS=1,10,50`, `HOTLINE_SIP_LOAD_SECONDS=20` change the run). It fails when
//! a call loses more than 5 % of its audio or hears silence.

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use hotline::call::edge::CallerEdge;
use hotline::call::CallInput;
use hotline::phone::PhoneEdge;
use hotline_media::codec::g711::{ulaw_decode as ulaw_to_linear, ulaw_encode as linear_to_ulaw};
use hotline_media::rtp::{RtpPacket, Ssrc};
use hotline_sip::driver::{CallAcceptor, PhoneCall, Refusal};

/// User and system CPU seconds from a /proc `stat` file (fields 14 and 15, in USER_HZ = 100).
fn cpu_seconds(stat_path: &str) -> (f64, f64) {
    let text = std::fs::read_to_string(stat_path).expect("read /proc stat");
    let after_name = &text[text.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name, field 3 (state) is index 0, so utime (14) is index 11.
    let ticks = |i: usize| fields[i].parse::<f64>().expect("ticks") / 100.0;
    (ticks(11), ticks(12))
}

/// Every call goes through the real phone edge (8 <-> 16 kHz conversion, one frame per tick)
/// into an echoing call task that stands where the call driver would: one task per call, one
/// channel hop each way, as in production.
struct EchoCalls;

impl CallAcceptor for EchoCalls {
    fn accept(&self, call: PhoneCall) -> Result<(), Refusal> {
        let mut edge = PhoneEdge::new(call);
        tokio::spawn(async move {
            while let Some(input) = edge.recv().await {
                match input {
                    CallInput::Audio(frame) => edge.send_audio(frame).await,
                    CallInput::Dtmf(_) | CallInput::TransferFailed { .. } => {}
                    CallInput::Hangup { .. } => break,
                }
            }
        });
        Ok(())
    }
}

struct Call {
    sip: UdpSocket,
    rtp: UdpSocket,
    call_id: String,
    to_tag: String,
    hotline_rtp: std::net::SocketAddr,
    received: usize,
    loud: usize,
}

fn request(
    sip: &UdpSocket,
    hotline: &str,
    method: &str,
    call_id: &str,
    cseq: u32,
    to_tag: &str,
    body: &str,
) -> String {
    let port = sip.local_addr().expect("addr").port();
    let to_tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:bot@{hotline} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id}-{cseq}\r\n\
         From: <sip:load@127.0.0.1:{port}>;tag=l-{call_id}\r\nTo: <sip:bot@{hotline}>{to_tag}\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\nContact: <sip:load@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n{content_type}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The first final response for `call_id`.
fn final_response(sip: &UdpSocket, call_id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buffer = [0u8; 8192];
    while Instant::now() < deadline {
        let Ok((len, _)) = sip.recv_from(&mut buffer) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buffer[..len]).to_string();
        let code: u16 = text.get(8..11).and_then(|c| c.parse().ok()).unwrap_or(0);
        if code >= 200 && text.contains(call_id) {
            return text;
        }
    }
    panic!("no final response for {call_id}");
}

/// Places a call; returns it and the setup time (INVITE → 200 OK).
fn place_call(hotline: &str, n: usize, run: usize) -> (Call, Duration) {
    let sip = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sip.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let call_id = format!("load-{run}-{n}");
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\n",
        rtp.local_addr().expect("addr").port()
    );
    let started = Instant::now();
    sip.send_to(
        request(&sip, hotline, "INVITE", &call_id, 1, "", &sdp).as_bytes(),
        hotline,
    )
    .expect("send");
    let answer = final_response(&sip, &call_id);
    let setup = started.elapsed();
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    let to_tag = answer
        .lines()
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .expect("To tag")
        .trim()
        .to_string();
    let port: u16 = answer
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("SDP answer port");
    sip.send_to(
        request(&sip, hotline, "ACK", &call_id, 1, &to_tag, "").as_bytes(),
        hotline,
    )
    .expect("send");
    rtp.set_nonblocking(true).expect("nonblocking");
    (
        Call {
            sip,
            rtp,
            call_id,
            to_tag,
            hotline_rtp: ([127, 0, 0, 1], port).into(),
            received: 0,
            loud: 0,
        },
        setup,
    )
}

struct Figures {
    calls: usize,
    seconds: f64,
    hotline_user_s: f64,
    hotline_sys_s: f64,
    callers_cpu_s: f64,
    setup_ms: Vec<f64>,
    worst_received: f64,
    /// The process's resident memory grown while the calls were placed and ran, in MiB.
    rss_growth_mib: f64,
}

/// The process's resident memory in MiB (`VmRSS` in /proc/self/status).
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs `calls` calls for `seconds` from this (blocking) thread.
fn drive(hotline: &str, calls: usize, seconds: u64, run: usize) -> Figures {
    let mut setup_ms = Vec::new();
    let rss_before = rss_mib();
    let mut lines: Vec<Call> = (0..calls)
        .map(|n| {
            let (call, setup) = place_call(hotline, n, run);
            setup_ms.push(setup.as_secs_f64() * 1000.0);
            call
        })
        .collect();
    let tone: Vec<u8> = (0..160)
        .map(|i| {
            let t = i as f32 / 8000.0;
            linear_to_ulaw(((t * 400.0 * std::f32::consts::TAU).sin() * 8000.0) as i16)
        })
        .collect();
    // Let the jitter buffers and resamplers settle before measuring.
    let mut packet = Vec::with_capacity(200);
    let mut buffer = [0u8; 2048];
    let mut tick = |lines: &mut [Call], seq: u16, count: bool| {
        for (n, line) in lines.iter_mut().enumerate() {
            packet.clear();
            RtpPacket {
                marker: false,
                payload_type: 0,
                sequence: seq,
                timestamp: seq as u32 * 160,
                ssrc: Ssrc(0x1000 + n as u32),
                payload: &tone,
            }
            .write(&mut packet);
            let _ = line.rtp.send_to(&packet, line.hotline_rtp);
            while let Ok((len, _)) = line.rtp.recv_from(&mut buffer) {
                if !count {
                    continue;
                }
                if let Ok(rtp) = RtpPacket::parse(&buffer[..len]) {
                    line.received += 1;
                    let samples: Vec<i16> =
                        rtp.payload.iter().map(|&b| ulaw_to_linear(b)).collect();
                    if hotline::audio::rms(&samples) > 1000.0 {
                        line.loud += 1;
                    }
                }
            }
        }
    };
    let warmup_ticks = 50u16;
    let measured_ticks = (seconds * 50) as u16;
    let started = Instant::now();
    let mut seq = 0u16;
    let mut process_before = (0.0, 0.0);
    let mut callers_before = (0.0, 0.0);
    let mut measure_start = Instant::now();
    while seq < warmup_ticks + measured_ticks {
        if seq == warmup_ticks {
            process_before = cpu_seconds("/proc/self/stat");
            callers_before = cpu_seconds("/proc/thread-self/stat");
            measure_start = Instant::now();
        }
        tick(&mut lines, seq, seq >= warmup_ticks);
        seq += 1;
        let next = started + Duration::from_millis(20 * seq as u64);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let wall = measure_start.elapsed().as_secs_f64();
    let rss_growth_mib = rss_mib() - rss_before;
    let process_after = cpu_seconds("/proc/self/stat");
    let callers_after = cpu_seconds("/proc/thread-self/stat");
    let callers_cpu_s = (callers_after.0 - callers_before.0) + (callers_after.1 - callers_before.1);
    let callers_user = callers_after.0 - callers_before.0;
    let callers_sys = callers_after.1 - callers_before.1;
    let hotline_user_s = (process_after.0 - process_before.0) - callers_user;
    let hotline_sys_s = (process_after.1 - process_before.1) - callers_sys;
    let expected = measured_ticks as f64;
    let mut worst_received = 1.0f64;
    for line in &lines {
        let share = line.received as f64 / expected;
        worst_received = worst_received.min(share);
        assert!(
            line.loud as f64 > 0.8 * line.received as f64,
            "{} hears its echo ({} loud of {})",
            line.call_id,
            line.loud,
            line.received
        );
    }
    for line in &lines {
        let _ = line.sip.send_to(
            request(
                &line.sip,
                hotline,
                "BYE",
                &line.call_id,
                2,
                &line.to_tag,
                "",
            )
            .as_bytes(),
            hotline,
        );
    }
    for line in &lines {
        let _ = final_response(&line.sip, &line.call_id);
    }
    Figures {
        calls,
        seconds: wall,
        hotline_user_s,
        hotline_sys_s,
        callers_cpu_s,
        setup_ms,
        worst_received,
        rss_growth_mib,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --release -- --ignored --nocapture"]
async fn media_cpu_per_call() {
    let counts: Vec<usize> = std::env::var("HOTLINE_SIP_LOAD_CALLS")
        .unwrap_or_else(|_| "1,10,50".into())
        .split(',')
        .map(|n| n.trim().parse().expect("HOTLINE_SIP_LOAD_CALLS: numbers"))
        .collect();
    let seconds: u64 = std::env::var("HOTLINE_SIP_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let most = counts.iter().copied().max().unwrap_or(1);
    let rtp = common::ports::RtpPorts::free(most as u16 + 5);
    let config = hotline::phone::SipConfig {
        port: 0,
        rtp_port_min: rtp.min,
        rtp_port_max: rtp.max,
        session_expires_s: 0,
        // Every call comes from this one address, faster than a caller's flood limit.
        limits: hotline::phone::SipLimitsConfig {
            calls_per_s: 1_000.0,
            call_burst: 1_000.0,
            ..hotline::phone::SipLimitsConfig::default()
        },
        ..hotline::phone::SipConfig::default()
    };
    let server = hotline::phone::bind(&config)
        .await
        .expect("bind the phone edge");
    let hotline = server.local_addr().to_string();
    let (stop, mut stop_rx) = watch::channel(false);
    let served = tokio::spawn(server.run(Arc::new(EchoCalls), async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    println!(
        "calls  seconds  hotline user s  sys s  CPU s per call-second  % of one core  callers' CPU s  setup ms (median / max)  worst audio received  RSS growth MiB per call"
    );
    for (run, &calls) in counts.iter().enumerate() {
        let address = hotline.clone();
        let f = tokio::task::spawn_blocking(move || drive(&address, calls, seconds, run))
            .await
            .expect("the callers");
        let mut setup = f.setup_ms.clone();
        setup.sort_by(|a, b| a.total_cmp(b));
        let cpu = f.hotline_user_s + f.hotline_sys_s;
        println!(
            "{:>5}  {:>7.1}  {:>14.2}  {:>5.2}  {:>21.5}  {:>13.1}  {:>14.2}  {:>10.2} / {:>6.2}  {:>6.1} %  {:>8.3}",
            f.calls,
            f.seconds,
            f.hotline_user_s,
            f.hotline_sys_s,
            cpu / (f.calls as f64 * f.seconds),
            100.0 * cpu / f.seconds,
            f.callers_cpu_s,
            setup[setup.len() / 2],
            setup[setup.len() - 1],
            100.0 * f.worst_received,
            f.rss_growth_mib / f.calls as f64,
        );
        assert!(
            f.worst_received > 0.95,
            "every call gets its audio back ({:.1} % at worst)",
            100.0 * f.worst_received,
        );
        // Let the hung-up calls' tasks finish before the next run.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let _ = stop.send(true);
    let _ = served.await;
}
