//! `WebCallDriver`: one WebRTC call's edge ([`CallerEdge`]): the call's driver reads the
//! browser's media and the page's keys straight from it and writes the bot's audio straight to
//! it, one hop each way.
//!
//! Once media connects, the edge ticks every 20 ms on tokio's monotonic clock and, per tick,
//! gives the call exactly one caller frame (decoded Opus, loss concealment or silence) from
//! [`WebMediaSession`], which each RTP packet reaches with its arrival time. Each bot frame is
//! Opus-encoded and written to the bot's track. It writes its own typed `peer_state` events to
//! the page's event log; [`forward_page_events`] copies the call's events there, and ends the
//! log with `call_ended` once the call's record is closed.
//!
//! Ending: whoever ends the call (the caller's hang-up, the bot's `Hangup`, ICE failure, a tab
//! that vanished, a connect timeout, server shutdown), the edge stops reading media, gives the
//! call its counters (the record's `call_end`, as a phone call's) and closes the peer
//! connection (which ends the connection's own tasks and frees its socket). An edge dropped
//! without that (a call that never started) closes its connection on a task of its own. The
//! permit and port lease it owns are dropped with it; the registry slot goes with the page's
//! event forwarding, after `call_ended`. Call-end reasons are stable codes: `caller.hangup`,
//! `webrtc.ice_failed`, `webrtc.closed`, `webrtc.connect_timeout`, `server.shutdown`, or the
//! bot's own reason.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rtc::media::Sample;
use tokio::sync::{broadcast, mpsc, watch, OwnedSemaphorePermit};
use tokio::time::{Interval, MissedTickBehavior, Sleep};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::peer_connection::PeerConnection;

use crate::audio::{Frame, FRAME_DURATION};
use crate::call::edge::{CallerEdge, TransferContext};
use crate::call::CallInput;
use crate::phone::call_media;
use crate::session::event::{CallEvent, CallMedia, EventKind, PeerState};
use crate::session::EndReason;

use super::media::WebMediaSession;
use super::peer::{PeerEvent, PeerLink};
use super::registry::{EventLog, PageCommand, WebCallSlot};

/// Everything one WebRTC call's edge is made of.
pub struct WebCallDriver {
    pub link: PeerLink,
    pub media: WebMediaSession,
    pub commands: mpsc::Receiver<PageCommand>,
    /// The page's event log (its own `peer_state` events go there).
    pub events: Arc<EventLog>,
    pub connect_timeout: Duration,
    pub shutdown: watch::Receiver<bool>,
    /// Held for the call's life: its place in the WebRTC call limit.
    pub permit: OwnedSemaphorePermit,
    /// When the offer arrived, for the time-to-connect figure.
    pub offer_at: Instant,
}

impl WebCallDriver {
    /// The edge a call runs on ([`crate::call::Engines::start_call_on`]).
    pub fn into_edge(self) -> WebEdge {
        let PeerLink {
            peer,
            track,
            payload_type,
            ssrc,
            events: peer_events,
            lease,
            ..
        } = self.link;
        // On the process's one media grid (`hotline_media::clock`), with the phone calls.
        let first = hotline_media::clock::next_tick(std::time::Instant::now(), FRAME_DURATION);
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::from_std(first), FRAME_DURATION);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        WebEdge {
            peer,
            track,
            payload_type,
            ssrc,
            peer_events,
            _lease: lease,
            media: self.media,
            commands: self.commands,
            page: self.events,
            connect_deadline: Box::pin(tokio::time::sleep(self.connect_timeout)),
            ticker,
            connected: false,
            shutdown: self.shutdown,
            started: Instant::now(),
            offer_at: self.offer_at,
            _permit: self.permit,
            down: false,
            closed: false,
        }
    }
}

/// A WebRTC call as its driver sees it. See the module docs.
pub struct WebEdge {
    peer: Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticSample>,
    payload_type: u8,
    ssrc: u32,
    peer_events: mpsc::Receiver<PeerEvent>,
    _lease: super::ports::PortLease,
    media: WebMediaSession,
    commands: mpsc::Receiver<PageCommand>,
    page: Arc<EventLog>,
    connect_deadline: Pin<Box<Sleep>>,
    ticker: Interval,
    connected: bool,
    shutdown: watch::Receiver<bool>,
    started: Instant,
    offer_at: Instant,
    _permit: OwnedSemaphorePermit,
    /// The call has ended: no more media is read or written.
    down: bool,
    /// The peer connection has been closed.
    closed: bool,
}

impl WebEdge {
    fn page_event(&self, kind: EventKind) {
        push_event(
            &self.page,
            &CallEvent {
                t_ms: self.started.elapsed().as_millis() as u64,
                kind,
            },
        );
    }

    /// The caller's side ended the call.
    fn end(&mut self, reason: EndReason) -> Option<CallInput> {
        self.down = true;
        Some(CallInput::Hangup { reason })
    }
}

#[async_trait]
impl CallerEdge for WebEdge {
    async fn recv(&mut self) -> Option<CallInput> {
        if self.down {
            return None;
        }
        // Cancel-safe: every branch is, and state changes only in a branch's body.
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => return self.end(EndReason::ServerShutdown),
                event = self.peer_events.recv() => match event {
                    Some(PeerEvent::Rtp(rtp)) => {
                        let arrival = rtp.received_at.saturating_duration_since(self.started);
                        self.media.push_rtp(&rtp.packet(), arrival.as_millis() as u64);
                    }
                    Some(PeerEvent::Connected) => {
                        if !self.connected {
                            self.connected = true;
                            self.ticker.reset();
                            let connect_ms = self.offer_at.elapsed().as_millis() as u64;
                            tracing::info!(connect_ms, "webrtc call connected");
                            self.page_event(EventKind::PeerState {
                                state: PeerState::Connected,
                                connect_ms: Some(connect_ms),
                            });
                        }
                    }
                    Some(PeerEvent::Disconnected) => self.page_event(EventKind::PeerState {
                        state: PeerState::Disconnected,
                        connect_ms: None,
                    }),
                    Some(PeerEvent::Failed) => return self.end(EndReason::IceFailed),
                    Some(PeerEvent::Closed) | None => return self.end(EndReason::WebrtcClosed),
                },
                _ = self.ticker.tick(), if self.connected => {
                    let (frame, _) = self.media.next_caller_frame();
                    return Some(CallInput::Audio(frame));
                }
                command = self.commands.recv() => match command {
                    Some(PageCommand::Dtmf(digit)) => return Some(CallInput::Dtmf(digit)),
                    Some(PageCommand::Hangup) | None => return self.end(EndReason::CallerHangup),
                },
                _ = &mut self.connect_deadline, if !self.connected => {
                    return self.end(EndReason::ConnectTimeout);
                }
            }
        }
    }

    async fn send_audio(&mut self, frame: Frame) {
        if !self.connected || self.down {
            return;
        }
        match self.media.encode_bot_frame(&frame) {
            Ok(opus) => {
                let sample = Sample {
                    data: opus.into(),
                    duration: FRAME_DURATION,
                    ..Sample::new(Instant::now())
                };
                if let Err(e) = self
                    .track
                    .sample_writer(self.ssrc, self.payload_type)
                    .write_sample(&sample)
                    .await
                {
                    tracing::debug!(error = %e, "bot audio write failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "opus encode failed"),
        }
    }

    // The session has recorded the `transfer` event (the page shows it); a web call cannot be
    // handed over, so it ends as the call decides.
    async fn transfer(&mut self, _target: String, _reason: String, _context: &TransferContext) {}

    async fn hangup(&mut self, _reason: &EndReason) {
        self.down = true;
    }

    async fn media(&mut self) -> Option<CallMedia> {
        // The line is down: no more media is read or written, so the counters are final.
        self.down = true;
        let counters = self.media.counters();
        self.closed = true;
        if let Err(e) = self.peer.close().await {
            tracing::debug!(error = %e, "peer close");
        }
        tracing::info!(?counters, "webrtc call ended");
        Some(call_media(&counters))
    }
}

impl Drop for WebEdge {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // A call that never ran (or a driver that stopped early): close the connection so its
        // tasks end and its socket is freed.
        let peer = Arc::clone(&self.peer);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = peer.close().await {
                    tracing::debug!(error = %e, "peer close");
                }
            });
        }
    }
}

/// Copies a web call's events to its page's log until the call's record is closed, then ends
/// the log with `call_ended` (the hang-up's reason) and gives back the call's registry slot.
pub async fn forward_page_events(
    mut call_events: broadcast::Receiver<CallEvent>,
    log: Arc<EventLog>,
    slot: WebCallSlot,
) {
    let started = Instant::now();
    let mut reason = EndReason::TransportClosed;
    loop {
        match call_events.recv().await {
            Ok(event) => {
                if let EventKind::Hangup { reason: r } = &event.kind {
                    reason = r.clone();
                }
                push_event(&log, &event);
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(skipped = n, "page event stream lagged");
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    let end = CallEvent {
        t_ms: started.elapsed().as_millis() as u64,
        kind: EventKind::CallEnded {
            reason: reason.code().to_string(),
        },
    };
    match serde_json::to_string(&end) {
        Ok(json) => log.end(json),
        Err(e) => tracing::warn!(error = %e, "call_ended does not serialize"),
    }
    drop(slot);
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
        let pool = PortPool::new(IpAddr::V4(Ipv4Addr::LOCALHOST), None);
        let (link, network) = unnegotiated_link(pool.lease().expect("port"))
            .await
            .expect("peer connection");
        let (commands_tx, commands) = mpsc::channel(8);
        let events = Arc::new(EventLog::new());
        let permit = Arc::new(Semaphore::new(1))
            .try_acquire_owned()
            .expect("a permit");
        let (_shutdown_tx, shutdown) = watch::channel(false);
        let edge = WebCallDriver {
            link,
            media: WebMediaSession::new().expect("opus"),
            commands,
            events: Arc::clone(&events),
            connect_timeout: Duration::from_secs(10),
            shutdown,
            permit,
            offer_at: Instant::now(),
        }
        .into_edge();
        let started = engines
            .start_call_on(info, Box::new(edge))
            .expect("the call starts");
        let call_id = started.id.to_string();
        let slot = Arc::new(WebCalls::default()).insert(
            call_id.clone(),
            WebCallEntry {
                commands: commands_tx.clone(),
                events: Arc::clone(&events),
            },
        );
        let running = tokio::spawn(forward_page_events(
            started.events,
            Arc::clone(&events),
            slot,
        ));

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
            .expect("the call ends")
            .expect("the page's events end");

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
