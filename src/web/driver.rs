//! `WebCallDriver`: the IO task of one WebRTC call. It joins the browser's peer connection to
//! the call core.
//!
//! Once media connects, it ticks every 20 ms on tokio's monotonic clock and, per tick, sends the
//! call exactly one caller frame (decoded Opus, loss concealment or silence) from
//! [`WebMediaSession`]. Each bot frame that comes back is Opus-encoded and written to the bot's
//! track. It also forwards the call's events to the page's event log and the page's keypad and
//! hang-up to the call.
//!
//! Ending: whoever ends the call (the caller's hang-up, the bot's `Hangup`, ICE failure, a tab
//! that vanished, a connect timeout, server shutdown), the driver tells the call if the call did
//! not end it itself, lets the call write its last events, closes the peer connection (which
//! ends the connection's own tasks and frees its socket), and appends `call_ended`. The
//! [`WebCallSlot`] and [`PortLease`] it owns are dropped on return, however it returns.
//! Call-end reasons are stable codes: `caller.hangup`, `webrtc.ice_failed`, `webrtc.closed`,
//! `webrtc.connect_timeout`, `server.shutdown`, or the bot's own reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::media::Sample;
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch, OwnedSemaphorePermit};
use tokio::time::MissedTickBehavior;

use crate::audio::FRAME_DURATION;
use crate::call::{CallHandle, CallInput, CallOutput};

use super::media::WebMediaSession;
use super::peer::{PeerEvent, PeerLink};
use super::ports::PortLease;
use super::registry::{EventLog, PageCommand, WebCallSlot, CALL_ENDED};

/// How long the call gets to write its last events after a caller-side hang-up.
const HANGUP_DRAIN: Duration = Duration::from_secs(3);

/// Everything one call's driver owns.
pub struct WebCallDriver {
    pub call: CallHandle,
    pub link: PeerLink,
    pub media: WebMediaSession,
    pub commands: mpsc::Receiver<PageCommand>,
    pub events: Arc<EventLog>,
    pub connect_timeout: Duration,
    pub shutdown: watch::Receiver<bool>,
    /// Held for the call's life: its place in the registry and the WebRTC call limit.
    pub slot: WebCallSlot,
    pub permit: OwnedSemaphorePermit,
    /// When the offer arrived, for the time-to-connect figure.
    pub offer_at: Instant,
}

/// Why the loop stopped.
enum Ending {
    /// The bot or the call core ended the call; it has already written its hangup.
    ByCall(String),
    /// The caller or the transport ended it; the call must be told.
    ByEdge(String),
}

impl WebCallDriver {
    /// Runs the call to its end.
    pub async fn run(self) {
        let WebCallDriver {
            call,
            link,
            mut media,
            mut commands,
            events,
            connect_timeout,
            mut shutdown,
            slot,
            permit,
            offer_at,
        } = self;
        let CallHandle {
            id,
            input,
            mut output,
            events: mut call_events,
        } = call;
        let PeerLink {
            peer,
            track,
            payload_type,
            ssrc,
            events: mut peer_events,
            lease,
            ..
        } = link;
        let call_id = id.to_string();
        let started = Instant::now();
        let t_ms = move || started.elapsed().as_millis() as u64;

        let mut ticker = tokio::time::interval(FRAME_DURATION);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let connect_deadline = tokio::time::sleep(connect_timeout);
        tokio::pin!(connect_deadline);
        let mut connected = false;
        let mut call_events_open = true;

        let ending = loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break Ending::ByEdge("server.shutdown".into()),
                event = peer_events.recv() => match event {
                    Some(PeerEvent::Rtp { seq, payload }) => media.push_rtp(seq, &payload),
                    Some(PeerEvent::Connected) => {
                        if !connected {
                            connected = true;
                            ticker.reset();
                            let connect_ms = offer_at.elapsed().as_millis() as u64;
                            tracing::info!(call = %call_id, connect_ms, "webrtc call connected");
                            events.push(json!({"t_ms": t_ms(), "type": "peer_state",
                                "state": "connected", "connect_ms": connect_ms}).to_string());
                        }
                    }
                    Some(PeerEvent::Disconnected) => {
                        events.push(json!({"t_ms": t_ms(), "type": "peer_state",
                            "state": "disconnected"}).to_string());
                    }
                    Some(PeerEvent::Failed) => break Ending::ByEdge("webrtc.ice_failed".into()),
                    Some(PeerEvent::Closed) | None => break Ending::ByEdge("webrtc.closed".into()),
                },
                _ = ticker.tick(), if connected => {
                    let frame = media.next_caller_frame();
                    if input.send(CallInput::Audio(frame)).await.is_err() {
                        break Ending::ByCall("call.ended".into());
                    }
                }
                out = output.recv() => match out {
                    Some(CallOutput::Audio(frame)) => {
                        if !connected {
                            continue;
                        }
                        match media.encode_bot_frame(&frame) {
                            Ok(opus) => {
                                let sample = Sample {
                                    data: opus.into(),
                                    duration: FRAME_DURATION,
                                    ..Sample::new(Instant::now())
                                };
                                if let Err(e) = track.sample_writer(ssrc, payload_type)
                                    .write_sample(&sample).await {
                                    tracing::debug!(call = %call_id, error = %e, "bot audio write failed");
                                }
                            }
                            Err(e) => tracing::warn!(call = %call_id, error = %e, "opus encode failed"),
                        }
                    }
                    Some(CallOutput::Transfer { target, reason }) => {
                        events.push(json!({"t_ms": t_ms(), "type": "peer_state",
                            "state": "transferring", "target": target, "reason": reason}).to_string());
                    }
                    Some(CallOutput::Hangup { reason }) => break Ending::ByCall(reason),
                    None => break Ending::ByCall("call.ended".into()),
                },
                event = call_events.recv(), if call_events_open => match event {
                    Ok(event) => push_event(&events, &event),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(call = %call_id, skipped = n, "page event stream lagged");
                    }
                    Err(broadcast::error::RecvError::Closed) => call_events_open = false,
                },
                command = commands.recv() => match command {
                    Some(PageCommand::Dtmf(digit)) => {
                        if input.send(CallInput::Dtmf(digit)).await.is_err() {
                            break Ending::ByCall("call.ended".into());
                        }
                    }
                    Some(PageCommand::Hangup) | None => break Ending::ByEdge("caller.hangup".into()),
                },
                _ = &mut connect_deadline, if !connected => {
                    break Ending::ByEdge("webrtc.connect_timeout".into());
                }
            }
        };

        let reason = match ending {
            Ending::ByCall(reason) => reason,
            Ending::ByEdge(reason) => {
                let _ = input
                    .send(CallInput::Hangup {
                        reason: reason.clone(),
                    })
                    .await;
                // Let the call finish: it answers pending frames and writes its hangup event.
                let drain = tokio::time::sleep(HANGUP_DRAIN);
                tokio::pin!(drain);
                loop {
                    tokio::select! {
                        out = output.recv() => if out.is_none() { break },
                        event = call_events.recv(), if call_events_open => match event {
                            Ok(event) => push_event(&events, &event),
                            Err(broadcast::error::RecvError::Lagged(_)) => {}
                            Err(broadcast::error::RecvError::Closed) => call_events_open = false,
                        },
                        _ = &mut drain => break,
                    }
                }
                reason
            }
        };
        while let Ok(event) = call_events.try_recv() {
            push_event(&events, &event);
        }
        drop(input);
        if let Err(e) = peer.close().await {
            tracing::debug!(call = %call_id, error = %e, "peer close");
        }
        let stats = media.stats();
        tracing::info!(call = %call_id, %reason, ?stats, "webrtc call ended");
        events.end(
            json!({"t_ms": t_ms(), "type": CALL_ENDED, "reason": reason,
                "media": {"packets_in": stats.packets_in, "packets_lost": stats.packets_lost,
                          "packets_late": stats.packets_late, "packets_out": stats.packets_out}})
            .to_string(),
        );
        drop::<(WebCallSlot, OwnedSemaphorePermit, PortLease)>((slot, permit, lease));
    }
}

/// Appends one call event, serialized exactly as in `events.jsonl`.
fn push_event(log: &EventLog, event: &crate::session::event::CallEvent) {
    match serde_json::to_string(event) {
        Ok(json) => log.push(json),
        Err(e) => tracing::warn!(error = %e, "call event does not serialize"),
    }
}
