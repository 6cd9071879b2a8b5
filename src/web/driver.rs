//! `WebCallDriver`: the IO task of one WebRTC call. It joins the browser's peer connection to
//! the call core.
//!
//! Once media connects, it ticks every 20 ms on tokio's monotonic clock and, per tick, sends the
//! call exactly one caller frame (decoded Opus, loss concealment or silence) from
//! [`WebMediaSession`], which each RTP packet reaches with its arrival time. Each bot frame that
//! comes back is Opus-encoded and written to the bot's track. It also forwards the call's events
//! to the page's event log (with its own typed `peer_state` events) and the page's keypad and
//! hang-up to the call.
//!
//! Ending: whoever ends the call (the caller's hang-up, the bot's `Hangup`, ICE failure, a tab
//! that vanished, a connect timeout, server shutdown), the driver stops the media, sends the
//! call's [`MediaReport`] (when the call was started with
//! [`crate::call::Engines::start_call_reporting_media`]: the record then ends with `call_end`
//! and these counters, as a phone call's does), tells the call if the call did not end it
//! itself, lets the call write its last events, closes the peer connection (which ends the
//! connection's own tasks and frees its socket), and appends the page's end marker
//! (`call_ended`). The [`WebCallSlot`] and [`PortLease`] it owns are dropped on return, however
//! it returns. Call-end reasons are stable codes: `caller.hangup`, `webrtc.ice_failed`,
//! `webrtc.closed`, `webrtc.connect_timeout`, `server.shutdown`, or the bot's own reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::media::Sample;
use tokio::sync::{broadcast, mpsc, watch, OwnedSemaphorePermit};
use tokio::time::MissedTickBehavior;

use crate::audio::FRAME_DURATION;
use crate::call::{CallControl, CallHandle, CallInput, CallOutput, MediaReport};
use crate::phone::call_media;
use crate::session::event::{CallEvent, EventKind, PeerState};

use super::media::WebMediaSession;
use super::peer::{PeerEvent, PeerLink};
use super::ports::PortLease;
use super::registry::{EventLog, PageCommand, WebCallSlot};

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
    /// Runs the call to its end, for a call started without a media report (its record has no
    /// `call_end`).
    pub async fn run(self) {
        self.run_to_end(None).await
    }

    /// Runs the call to its end and reports its media counters through `report` once the
    /// media stops: the record's `call_end`. For calls started with
    /// [`crate::call::Engines::start_call_reporting_media`].
    pub async fn run_reporting_media(self, report: MediaReport) {
        self.run_to_end(Some(report)).await
    }

    async fn run_to_end(self, report: Option<MediaReport>) {
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
            control,
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
        let page_event = |kind: EventKind| CallEvent { t_ms: t_ms(), kind };

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
                    Some(PeerEvent::Rtp(rtp)) => {
                        let arrival = rtp.received_at.saturating_duration_since(started);
                        media.push_rtp(&rtp.packet(), arrival.as_millis() as u64);
                    }
                    Some(PeerEvent::Connected) => {
                        if !connected {
                            connected = true;
                            ticker.reset();
                            let connect_ms = offer_at.elapsed().as_millis() as u64;
                            tracing::info!(call = %call_id, connect_ms, "webrtc call connected");
                            push_event(&events, &page_event(EventKind::PeerState {
                                state: PeerState::Connected,
                                connect_ms: Some(connect_ms),
                            }));
                        }
                    }
                    Some(PeerEvent::Disconnected) => {
                        push_event(&events, &page_event(EventKind::PeerState {
                            state: PeerState::Disconnected,
                            connect_ms: None,
                        }));
                    }
                    Some(PeerEvent::Failed) => break Ending::ByEdge("webrtc.ice_failed".into()),
                    Some(PeerEvent::Closed) | None => break Ending::ByEdge("webrtc.closed".into()),
                },
                _ = ticker.tick(), if connected => {
                    let (frame, _) = media.next_caller_frame();
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
                    // The session has recorded the `transfer` event (the page shows it); a web
                    // call cannot be handed over, so it ends as the call decides.
                    Some(CallOutput::Transfer { .. }) => {}
                    Some(CallOutput::Hangup { reason }) => break Ending::ByCall(reason.code().to_string()),
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

        // The line is down: no more media is read or written, so the counters are final. The
        // call's record takes them as its `call_end`, after its `hangup`.
        let counters = media.counters();
        if let Some(report) = report {
            report.send(call_media(&counters));
        }
        let reason = match ending {
            Ending::ByCall(reason) => reason,
            Ending::ByEdge(reason) => {
                // The call may have ended on its own meanwhile.
                let _ = control.send(CallControl::Hangup {
                    reason: reason.as_str().into(),
                });
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
        tracing::info!(call = %call_id, %reason, ?counters, "webrtc call ended");
        match serde_json::to_string(&page_event(EventKind::CallEnded { reason })) {
            Ok(json) => events.end(json),
            Err(e) => tracing::warn!(error = %e, "call_ended does not serialize"),
        }
        drop::<(WebCallSlot, OwnedSemaphorePermit, PortLease)>((slot, permit, lease));
    }
}

/// Appends one call event, serialized exactly as in `events.jsonl`.
fn push_event(log: &EventLog, event: &CallEvent) {
    match serde_json::to_string(event) {
        Ok(json) => log.push(json),
        Err(e) => tracing::warn!(error = %e, "call event does not serialize"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::Path;

    use hotline_media::rtp::Ssrc;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::audio::{Frame, FRAME_SAMPLES};
    use crate::call::{CallInfo, Engines};
    use crate::config::Config;
    use crate::web::peer::{unnegotiated_link, RtpIn};
    use crate::web::ports::PortPool;
    use crate::web::registry::{WebCallEntry, WebCalls, CALL_ENDED};

    /// One second of a caller's Opus packets: a 300 Hz tone.
    fn caller_packets() -> Vec<Vec<u8>> {
        let mut encoder = WebMediaSession::new().expect("opus");
        (0..50)
            .map(|i| {
                let samples: Vec<i16> = (0..FRAME_SAMPLES)
                    .map(|n| {
                        let t = (i * FRAME_SAMPLES + n) as f32 / 16_000.0;
                        (4_000.0 * (2.0 * std::f32::consts::PI * 300.0 * t).sin()) as i16
                    })
                    .collect();
                encoder
                    .encode_bot_frame(&Frame::from_slice(&samples))
                    .expect("encode")
            })
            .collect()
    }

    /// The record's events, once it holds `call_end` (the call writes it after `hangup`).
    async fn record_with_call_end(dir: &Path) -> Vec<serde_json::Value> {
        let path = dir.join("events.jsonl");
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&path) {
                let events: Vec<serde_json::Value> = text
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect();
                if events.iter().any(|e| e["type"] == "call_end") {
                    return events;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no call_end in {}", path.display());
    }

    /// A web call started with a media report ends its record with `call_end` and the web
    /// media's counters, as a phone call does; the page's log gets typed `peer_state` events
    /// and ends with `call_ended`. The network is played by the test (an unnegotiated peer
    /// connection), the call is real (Sphinx, espeak-ng, the basic dialogue).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_web_call_record_ends_with_its_media_counters() {
        let records = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "[asr]\nengine = \"sphinx\"\n[server]\nrecords_dir = {:?}\n[web]\nenabled = false\n",
            records.path().display().to_string()
        );
        let config = Config::parse(&text, "test config").expect("config parses");
        let engines = tokio::task::spawn_blocking(move || Engines::load(config))
            .await
            .expect("join")
            .expect("engines load (needs pocketsphinx-en-us and espeak-ng)");
        let info = CallInfo {
            transport: "webrtc".into(),
            codec: Some("opus/48000".into()),
            ..CallInfo::default()
        };
        let (call, report) = engines
            .start_call_reporting_media(info)
            .expect("the call starts");
        let call_id = call.id.to_string();

        let pool = PortPool::new(IpAddr::V4(Ipv4Addr::LOCALHOST), None);
        let (link, network) = unnegotiated_link(pool.lease().expect("port"))
            .await
            .expect("peer connection");
        let (commands_tx, commands) = mpsc::channel(8);
        let events = Arc::new(EventLog::new());
        let slot = Arc::new(WebCalls::default()).insert(
            call_id.clone(),
            WebCallEntry {
                commands: commands_tx.clone(),
                events: Arc::clone(&events),
            },
        );
        let permit = Arc::new(Semaphore::new(1))
            .try_acquire_owned()
            .expect("a permit");
        let (_shutdown_tx, shutdown) = watch::channel(false);
        let driver = WebCallDriver {
            call,
            link,
            media: WebMediaSession::new().expect("opus"),
            commands,
            events: Arc::clone(&events),
            connect_timeout: Duration::from_secs(10),
            shutdown,
            slot,
            permit,
            offer_at: Instant::now(),
        };
        let running = tokio::spawn(driver.run_reporting_media(report));

        network.send(PeerEvent::Connected).await.expect("driver");
        for (i, payload) in caller_packets().into_iter().enumerate() {
            let rtp = RtpIn {
                ssrc: Ssrc(0x00c0_ffee),
                sequence: 9_000 + i as u16,
                timestamp: i as u32 * 960,
                payload_type: 111,
                marker: i == 0,
                payload: payload.into(),
                received_at: Instant::now(),
            };
            network.send(PeerEvent::Rtp(rtp)).await.expect("driver");
            tokio::time::sleep(FRAME_DURATION).await;
        }
        commands_tx.send(PageCommand::Hangup).await.expect("driver");
        tokio::time::timeout(Duration::from_secs(20), running)
            .await
            .expect("the driver ends")
            .expect("the driver does not panic");

        let record = record_with_call_end(&records.path().join(&call_id)).await;
        let last = record.last().expect("events");
        assert_eq!(last["type"], "call_end", "{last}");
        let media = &last["media"];
        assert_eq!(media["packets_in"], 50, "{media}");
        assert!(media["packets_out"].as_u64() > Some(0), "{media}");
        assert_eq!(media["lost"], 0, "{media}");
        let hangup = record
            .iter()
            .find(|e| e["type"] == "hangup")
            .expect("hangup");
        assert_eq!(hangup["reason"], "caller.hangup", "{hangup}");

        let page: Vec<serde_json::Value> = events
            .subscribe()
            .backlog
            .iter()
            .map(|json| serde_json::from_str(json).expect("page events are JSON"))
            .collect();
        assert!(
            page.iter().any(|e| e["type"] == "peer_state"
                && e["state"] == "connected"
                && e["connect_ms"].is_u64()),
            "{page:?}"
        );
        let end = page.last().expect("page events");
        assert_eq!(end["type"], CALL_ENDED, "{end}");
        assert_eq!(end["reason"], "caller.hangup", "{end}");
        assert_eq!(pool.leased(), 0);
    }
}
