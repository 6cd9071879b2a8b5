//! One browser's WebRTC peer connection (webrtc-rs): SDP offer checks, the answer, and the
//! connection's events turned into [`PeerEvent`]s for the call driver.
//!
//! The answer is non-trickle (WHIP-style): local candidates are gathered before it is returned,
//! so one HTTP round trip sets the call up. Only Opus audio is negotiated. The remote track's
//! RTP packets reach the driver through a bounded channel as [`RtpIn`]: the header fields the
//! shared jitter buffer needs (SSRC, sequence number, timestamp) with the payload and its
//! arrival time. When the driver falls behind, packets are dropped (and concealed), never
//! queued without limit.
//!
//! Invariant: every task this module spawns ends when the peer connection is closed (the remote
//! track's `poll` returns `None`), so closing the [`PeerLink::peer`] releases the socket and the
//! tasks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateType, RTCIceGatheringState,
    RTCIceServer, RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
};

use hotline_media::rtp::{RtpPacket, Ssrc};

use super::config::WebConfig;
use super::ports::PortLease;

/// The Opus payload type we offer in answers when the browser leaves it to us.
const OPUS_PAYLOAD_TYPE: u8 = 111;
/// RTP packets buffered between the network task and the call driver.
const RTP_CHANNEL_PACKETS: usize = 256;

/// An offer we cannot answer, or a peer connection that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The offer is not SDP, or not an SDP we can answer (the caller's fault: HTTP 400).
    #[error("bad offer: {0}")]
    BadOffer(String),
    /// The WebRTC stack failed (our side: HTTP 500).
    #[error("webrtc: {0}")]
    Stack(String),
}

/// What the connection tells the call driver.
#[derive(Debug)]
pub enum PeerEvent {
    /// ICE and DTLS are up: media flows.
    Connected,
    /// Consent checks stopped getting answers; it may recover.
    Disconnected,
    /// ICE failed or the peer closed: the caller is gone.
    Failed,
    /// The peer closed the connection (DTLS close or our own close).
    Closed,
    /// One RTP packet of caller audio.
    Rtp(RtpIn),
}

/// One received RTP packet of caller audio (SRTP already removed by the stack).
#[derive(Debug, Clone)]
pub struct RtpIn {
    pub ssrc: Ssrc,
    pub sequence: u16,
    /// On the 48 kHz Opus clock.
    pub timestamp: u32,
    pub payload_type: u8,
    pub marker: bool,
    pub payload: bytes::Bytes,
    /// When the network task took it, on the monotonic clock.
    pub received_at: Instant,
}

impl RtpIn {
    /// The packet as the media layer reads RTP.
    pub fn packet(&self) -> RtpPacket<'_> {
        RtpPacket {
            marker: self.marker,
            payload_type: self.payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            payload: &self.payload,
        }
    }
}

/// A negotiated peer: the answer to send, and what the driver needs to run media.
pub struct PeerLink {
    /// The SDP answer, with gathered host candidates.
    pub answer_sdp: String,
    /// The connection; close it to end the call's media and tasks.
    pub peer: Arc<dyn PeerConnection>,
    /// The bot's audio track (Opus samples in, RTP out).
    pub track: Arc<TrackLocalStaticSample>,
    /// The negotiated Opus payload type for the bot's track.
    pub payload_type: u8,
    /// The bot track's SSRC.
    pub ssrc: u32,
    /// Connection events and caller audio.
    pub events: mpsc::Receiver<PeerEvent>,
    /// The media port, held until the call ends.
    pub lease: PortLease,
}

/// Rejects offers we cannot answer before spending a socket on them.
pub fn check_offer(sdp: &str) -> Result<(), PeerError> {
    let trimmed = sdp.trim_start();
    if !trimmed.starts_with("v=0") {
        return Err(PeerError::BadOffer(
            "not an SDP offer: it must start with \"v=0\"".into(),
        ));
    }
    if !sdp.lines().any(|l| l.starts_with("m=audio ")) {
        return Err(PeerError::BadOffer(
            "the offer has no audio (m=audio) section".into(),
        ));
    }
    let has_opus = sdp
        .lines()
        .any(|l| l.starts_with("a=rtpmap:") && l.to_ascii_lowercase().contains(" opus/48000"));
    if !has_opus {
        return Err(PeerError::BadOffer(
            "the offer has no Opus 48 kHz codec".into(),
        ));
    }
    if !sdp.lines().any(|l| l.starts_with("a=fingerprint:")) {
        return Err(PeerError::BadOffer(
            "the offer has no DTLS fingerprint".into(),
        ));
    }
    if !sdp.lines().any(|l| l.starts_with("a=ice-ufrag:")) {
        return Err(PeerError::BadOffer(
            "the offer has no ICE credentials".into(),
        ));
    }
    Ok(())
}

/// The events the connection raises, forwarded to the driver.
struct PeerHandler {
    events: mpsc::Sender<PeerEvent>,
    gathered: watch::Sender<bool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PeerHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let event = match state {
            RTCPeerConnectionState::Connected => PeerEvent::Connected,
            RTCPeerConnectionState::Disconnected => PeerEvent::Disconnected,
            RTCPeerConnectionState::Failed => PeerEvent::Failed,
            RTCPeerConnectionState::Closed => PeerEvent::Closed,
            _ => return,
        };
        // State changes are rare; waiting here cannot build a backlog.
        let _ = self.events.send(event).await;
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if track.kind().await != RtpCodecKind::Audio {
            return;
        }
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    let rtp = PeerEvent::Rtp(RtpIn {
                        ssrc: Ssrc(packet.header.ssrc),
                        sequence: packet.header.sequence_number,
                        timestamp: packet.header.timestamp,
                        payload_type: packet.header.payload_type,
                        marker: packet.header.marker,
                        payload: packet.payload,
                        received_at: Instant::now(),
                    });
                    match events.try_send(rtp) {
                        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                        Err(mpsc::error::TrySendError::Closed(_)) => break,
                    }
                }
            }
        });
    }
}

/// The Opus codec both sides use: 48 kHz RTP clock, stereo signalled as RFC 7587 requires.
fn opus_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: OPUS_PAYLOAD_TYPE,
    }
}

/// Answers an offer: builds the peer connection on the leased port, adds the bot's track,
/// gathers candidates and returns the answer.
pub async fn answer_offer(
    config: &WebConfig,
    offer_sdp: String,
    lease: PortLease,
) -> Result<PeerLink, PeerError> {
    check_offer(&offer_sdp)?;
    let offer = RTCSessionDescription::offer(offer_sdp)
        .map_err(|e| PeerError::BadOffer(format!("SDP does not parse: {e}")))?;

    let stack = |e: webrtc::error::Error| PeerError::Stack(e.to_string());
    let codec = opus_codec();
    let mut media_engine = MediaEngine::default();
    media_engine
        .register_codec(codec.clone(), RtpCodecKind::Audio)
        .map_err(stack)?;
    let registry =
        register_default_interceptors(Registry::new(), &mut media_engine).map_err(stack)?;

    let mut settings = SettingEngineBuilder::new().with_ice_timeouts(
        Some(Duration::from_millis(config.ice_disconnected_timeout_ms)),
        Some(Duration::from_millis(config.ice_failed_timeout_ms)),
        Some(Duration::from_secs(1)),
    );
    if let Some(public_ip) = config.public_ip {
        settings =
            settings.with_nat_1to1_ips(vec![public_ip.to_string()], RTCIceCandidateType::Host);
    }
    if lease.addr().ip().is_loopback() {
        settings = settings.with_include_loopback_candidate(true);
    }
    let mut ice_servers = Vec::new();
    if !config.stun_urls.is_empty() {
        ice_servers.push(RTCIceServer {
            urls: config.stun_urls.clone(),
            ..Default::default()
        });
    }
    for turn in &config.turn_servers {
        ice_servers.push(RTCIceServer {
            urls: turn.urls.clone(),
            username: turn.username.clone(),
            credential: turn.credential.clone(),
        });
    }
    let rtc_config = RTCConfigurationBuilder::new()
        .with_ice_servers(ice_servers)
        .build();

    let (events_tx, events_rx) = mpsc::channel(RTP_CHANNEL_PACKETS);
    let (gathered_tx, mut gathered_rx) = watch::channel(false);
    let handler = Arc::new(PeerHandler {
        events: events_tx,
        gathered: gathered_tx,
    });
    let peer: Arc<dyn PeerConnection> = Arc::new(
        PeerConnectionBuilder::new()
            .with_configuration(rtc_config)
            .with_setting_engine(settings.build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_udp_addrs(vec![lease.addr()])
            .build()
            .await
            .map_err(stack)?,
    );

    // From here on, any failure must close the connection so its socket and driver go away.
    match negotiate(config, &peer, offer, codec, &mut gathered_rx).await {
        Ok((answer_sdp, track, payload_type, ssrc)) => Ok(PeerLink {
            answer_sdp,
            peer,
            track,
            payload_type,
            ssrc,
            events: events_rx,
            lease,
        }),
        Err(e) => {
            let _ = peer.close().await;
            Err(e)
        }
    }
}

/// The bot's audio track, on a random SSRC.
fn bot_track(
    codec: &RTCRtpCodecParameters,
) -> Result<(Arc<TrackLocalStaticSample>, u32), PeerError> {
    let ssrc: u32 = rand::random();
    let track = TrackLocalStaticSample::new(
        Instant::now(),
        MediaStreamTrack::new(
            "hotline".to_owned(),
            "hotline-bot-audio".to_owned(),
            "bot".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec.rtp_codec.clone(),
                ..Default::default()
            }],
        ),
    )
    .map_err(|e| PeerError::Stack(e.to_string()))?;
    Ok((Arc::new(track), ssrc))
}

/// A link whose peer connection is built but never negotiated, with the sender of its events:
/// tests of the call driver play the network's part through it.
#[cfg(test)]
pub(super) async fn unnegotiated_link(
    lease: PortLease,
) -> Result<(PeerLink, mpsc::Sender<PeerEvent>), PeerError> {
    let (events_tx, events_rx) = mpsc::channel(RTP_CHANNEL_PACKETS);
    let (gathered, _) = watch::channel(false);
    let handler = Arc::new(PeerHandler {
        events: events_tx.clone(),
        gathered,
    });
    let peer: Arc<dyn PeerConnection> = Arc::new(
        PeerConnectionBuilder::new()
            .with_handler(handler)
            .with_udp_addrs(vec![lease.addr()])
            .build()
            .await
            .map_err(|e| PeerError::Stack(e.to_string()))?,
    );
    let codec = opus_codec();
    let (track, ssrc) = bot_track(&codec)?;
    let link = PeerLink {
        answer_sdp: String::new(),
        peer,
        track,
        payload_type: codec.payload_type,
        ssrc,
        events: events_rx,
        lease,
    };
    Ok((link, events_tx))
}

/// Adds the bot track, applies the offer, creates the answer and waits for gathering.
async fn negotiate(
    config: &WebConfig,
    peer: &Arc<dyn PeerConnection>,
    offer: RTCSessionDescription,
    codec: RTCRtpCodecParameters,
    gathered: &mut watch::Receiver<bool>,
) -> Result<(String, Arc<TrackLocalStaticSample>, u8, u32), PeerError> {
    let stack = |e: webrtc::error::Error| PeerError::Stack(e.to_string());
    let (track, ssrc) = bot_track(&codec)?;
    peer.set_remote_description(offer)
        .await
        .map_err(|e| PeerError::BadOffer(format!("offer rejected: {e}")))?;
    let sender = peer
        .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
        .await
        .map_err(stack)?;
    let answer = peer.create_answer(None).await.map_err(stack)?;
    peer.set_local_description(answer).await.map_err(stack)?;

    let gather_timeout = Duration::from_millis(config.gather_timeout_ms);
    // Past the timeout we answer with the candidates gathered so far.
    let _ = tokio::time::timeout(gather_timeout, gathered.wait_for(|done| *done)).await;

    let answer_sdp = peer
        .local_description()
        .await
        .map(|d| d.sdp)
        .ok_or_else(|| PeerError::Stack("no local description after answering".into()))?;
    let payload_type = sender
        .get_parameters()
        .await
        .map_err(stack)?
        .rtp_parameters
        .codecs
        .first()
        .map(|c| c.payload_type)
        .unwrap_or(OPUS_PAYLOAD_TYPE);
    Ok((answer_sdp, track, payload_type, ssrc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_an_offer() {
        for bad in ["", "hello", "v=0\r\ns=-\r\n", "\u{0}\u{1}binary"] {
            assert!(
                matches!(check_offer(bad), Err(PeerError::BadOffer(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_offer_needs_opus_audio() {
        let video_only = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
        let err = check_offer(video_only).expect_err("no audio");
        assert!(err.to_string().contains("m=audio"), "{err}");
        let pcmu_only = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n";
        let err = check_offer(pcmu_only).expect_err("no opus");
        assert!(err.to_string().contains("Opus"), "{err}");
    }
}
