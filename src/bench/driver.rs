//! The IO around the bench calls: for each call a SIP, an RTP and an RTCP socket on the address
//! that routes to the target, a timer, and a loop that feeds [`BenchCall`] what arrives and
//! sends what it asks, with the time since the call began; N calls at a time on the tokio
//! runtime; a progress bar (one step per turn answered or given up on) while they run; the
//! server's `/proc` readings before and after.
//!
//! Invariants: a packet's send time and a datagram's arrival time are read right at the
//! socket, so the figures include no queueing in this module beyond one loop turn; the RTCP
//! socket is only drained (the bench reads the bot stream from RTP itself); a call whose
//! sockets cannot be set up fails alone, with the reason, and the others go on.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::net::UdpSocket;

use hotline_media::rtp::Ssrc;

use super::call::{BenchCall, CallOutcome, CallSetup, StreamFigures, Transmit};
use super::report::{AsrModel, Report, RunContext};
use super::server::{per_call, sample};
use super::{Bench, BenchError, Target, ANSWER_WAIT};
use hotline_sip::uac::{DialogSetup, RING_WAIT};

/// The largest datagram read.
const DATAGRAM_BYTES: usize = 65_536;

/// Runs every call of `bench` and reports.
pub async fn run(bench: &Bench) -> Result<Report, BenchError> {
    let options = &bench.options;
    let local_ip = local_ip_towards(bench.target.addr)?;
    let turns = bench.plan.turns.len();
    let progress = ProgressBar::new((options.calls * turns) as u64);
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} turns {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    // Warm-up calls take the numbers after the measured ones, so every call id differs.
    for index in options.calls..options.calls + options.warmup_calls {
        progress.set_message(format!("· warm-up call {}", index - options.calls + 1));
        let plan = Arc::clone(&bench.plan);
        let outcome =
            run_call(index, plan, &bench.target, local_ip, &ProgressBar::hidden()).await?;
        if let Some(error) = outcome.error {
            return Err(error);
        }
    }
    let before = options.server_pid.map(sample).transpose()?;
    let started = Instant::now();
    let target = Arc::new(bench.target.clone());
    let calls = futures::stream::iter(0..options.calls)
        .map(|index| {
            let plan = Arc::clone(&bench.plan);
            let target = Arc::clone(&target);
            let progress = progress.clone();
            let start_after = options.stagger * index as u32;
            tokio::spawn(async move {
                tokio::time::sleep(start_after).await;
                match run_call(index, plan, &target, local_ip, &progress).await {
                    Ok(outcome) => outcome,
                    Err(error) => failed(error),
                }
            })
        })
        .buffer_unordered(options.concurrency);
    let mut outcomes: Vec<CallOutcome> = Vec::with_capacity(options.calls);
    let mut calls = std::pin::pin!(calls);
    while let Some(joined) = calls.next().await {
        let outcome = joined.unwrap_or_else(|_| failed(BenchError::Abandoned));
        outcomes.push(outcome);
        let failures = outcomes.iter().filter(|o| o.error.is_some()).count();
        progress.set_message(format!(
            "· {}/{} calls done, {failures} failed",
            outcomes.len(),
            options.calls
        ));
    }
    progress.finish_and_clear();
    let wall = started.elapsed();
    let after = options.server_pid.map(sample).transpose()?;
    let call_time: Duration = outcomes.iter().map(|o| o.duration).sum();
    let server = before
        .zip(after)
        .and_then(|(before, after)| per_call(before, after, outcomes.len(), call_time));
    Ok(Report::from_outcomes(
        &outcomes,
        RunContext {
            target: bench.target.text.clone(),
            concurrency: options.concurrency.min(options.calls),
            turns_per_call: turns,
            warmup_calls: options.warmup_calls,
            wall,
            server,
            asr_model: options
                .asr_model
                .as_deref()
                .map(AsrModel::named)
                .unwrap_or_default(),
        },
    ))
}

/// A call that never got going.
fn failed(error: BenchError) -> CallOutcome {
    CallOutcome {
        error: Some(error),
        turns: Vec::new(),
        stream: StreamFigures::default(),
        duration: Duration::ZERO,
    }
}

/// The local address the system routes to `target` from.
fn local_ip_towards(target: SocketAddr) -> Result<IpAddr, BenchError> {
    let unspecified: SocketAddr = match target {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let io = |source| BenchError::Io {
        what: format!("finding the local address towards {target}"),
        source,
    };
    let probe = std::net::UdpSocket::bind(unspecified).map_err(io)?;
    probe.connect(target).map_err(io)?;
    Ok(probe.local_addr().map_err(io)?.ip())
}

async fn bind(ip: IpAddr, what: &str) -> Result<UdpSocket, BenchError> {
    UdpSocket::bind((ip, 0))
        .await
        .map_err(|source| BenchError::Io {
            what: format!("binding the {what} socket on {ip}"),
            source,
        })
}

fn local_addr(socket: &UdpSocket) -> Result<SocketAddr, BenchError> {
    socket.local_addr().map_err(|source| BenchError::Io {
        what: "reading a socket's address".into(),
        source,
    })
}

/// One call, from the INVITE to the end.
async fn run_call(
    index: usize,
    plan: Arc<super::CallPlan>,
    target: &Target,
    local_ip: IpAddr,
    progress: &ProgressBar,
) -> Result<CallOutcome, BenchError> {
    let sip = bind(local_ip, "SIP").await?;
    let rtp = bind(local_ip, "RTP").await?;
    let rtcp = bind(local_ip, "RTCP").await?;
    let setup = CallSetup {
        dialog: DialogSetup {
            target: target.addr,
            target_text: target.text.clone(),
            request_uri: target.request_uri.clone(),
            local: local_addr(&sip)?,
            call_id: format!("bench-{index}-{:016x}", rand::random::<u64>()),
            from_tag: format!("{:08x}", rand::random::<u32>()),
            answer_wait: ANSWER_WAIT,
            ring_wait: RING_WAIT,
            user: "bench".into(),
            headers: Vec::new(),
        },
        local_rtp: local_addr(&rtp)?,
        local_rtcp_port: local_addr(&rtcp)?.port(),
        ssrc: Ssrc(rand::random()),
        first_sequence: rand::random(),
        first_timestamp: rand::random(),
        session_id: rand::random::<u32>() as u64,
    };
    let start = Instant::now();
    let mut call = BenchCall::new(plan, setup, Duration::ZERO);
    let mut sip_buffer = vec![0u8; DATAGRAM_BYTES];
    let mut rtp_buffer = vec![0u8; DATAGRAM_BYTES];
    let mut rtcp_buffer = vec![0u8; DATAGRAM_BYTES];
    let mut turns_counted = 0;
    loop {
        while let Some(transmit) = call.poll_transmit() {
            // A lost datagram is what UDP allows; the call's timers deal with it.
            let _ = match transmit {
                Transmit::Sip(bytes) => sip.send_to(&bytes, target.addr).await,
                Transmit::Rtp { to, packet } => rtp.send_to(&packet, to).await,
            };
        }
        let finished = call.turns_finished();
        if finished > turns_counted {
            progress.inc((finished - turns_counted) as u64);
            turns_counted = finished;
        }
        if call.is_over() {
            break;
        }
        let wake = call
            .poll_timeout()
            .unwrap_or(start.elapsed() + Duration::from_secs(1));
        let deadline = tokio::time::Instant::from_std(start + wake);
        tokio::select! {
            received = sip.recv_from(&mut sip_buffer) => {
                // The dialog keeps only its own call's messages.
                if let Ok((len, _)) = received {
                    call.handle_sip(start.elapsed(), &sip_buffer[..len]);
                }
            }
            received = rtp.recv_from(&mut rtp_buffer) => {
                if let Ok((len, _)) = received {
                    call.handle_rtp(start.elapsed(), &rtp_buffer[..len]);
                }
            }
            _ = rtcp.recv_from(&mut rtcp_buffer) => {}
            _ = tokio::time::sleep_until(deadline) => call.handle_timeout(start.elapsed()),
        }
    }
    // Turns never reached (a failed call) still count on the bar, so it ends full.
    let left = call_turns_left(&call, turns_counted);
    progress.inc(left as u64);
    Ok(call.finish())
}

/// The progress-bar steps a call never took.
fn call_turns_left(call: &BenchCall, counted: usize) -> usize {
    call.turn_count().saturating_sub(counted)
}
