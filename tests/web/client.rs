//! A WebRTC caller for tests and load runs: a real webrtc-rs peer that offers Opus audio, can
//! send pre-encoded Opus packets every 20 ms, and counts the packets it gets back.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use tokio::sync::watch;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
    RTCSessionDescription, Registry, SettingEngineBuilder,
};

/// What the caller's connection reports.
struct ClientHandler {
    gathered: watch::Sender<bool>,
    connected: watch::Sender<bool>,
    packets_in: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ClientHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            let _ = self.connected.send(true);
        }
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let packets_in = Arc::clone(&self.packets_in);
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(_) = event {
                    packets_in.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// One test caller.
pub struct TestCaller {
    pub peer: Arc<dyn PeerConnection>,
    pub offer_sdp: String,
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    connected: watch::Receiver<bool>,
    pub packets_in: Arc<AtomicU64>,
}

fn opus() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 111,
    }
}

impl TestCaller {
    /// Builds the peer on loopback and creates its (gathered) offer.
    pub async fn new() -> Result<Self> {
        let mut media_engine = MediaEngine::default();
        media_engine.register_codec(opus(), RtpCodecKind::Audio)?;
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
        let (gathered_tx, mut gathered_rx) = watch::channel(false);
        let (connected_tx, connected_rx) = watch::channel(false);
        let packets_in = Arc::new(AtomicU64::new(0));
        let handler = Arc::new(ClientHandler {
            gathered: gathered_tx,
            connected: connected_tx,
            packets_in: Arc::clone(&packets_in),
        });
        let peer: Arc<dyn PeerConnection> = Arc::new(
            PeerConnectionBuilder::new()
                .with_media_engine(media_engine)
                .with_interceptor_registry(registry)
                .with_setting_engine(
                    SettingEngineBuilder::new()
                        .with_include_loopback_candidate(true)
                        .build(),
                )
                .with_handler(handler)
                .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
                .build()
                .await?,
        );
        let ssrc: u32 = rand::random();
        let track = Arc::new(TrackLocalStaticSample::new(
            Instant::now(),
            MediaStreamTrack::new(
                "caller".into(),
                "caller-audio".into(),
                "mic".into(),
                RtpCodecKind::Audio,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: opus().rtp_codec,
                    ..Default::default()
                }],
            ),
        )?);
        peer.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await?;
        let offer = peer.create_offer(None).await?;
        peer.set_local_description(offer).await?;
        let _ = tokio::time::timeout(Duration::from_secs(3), gathered_rx.wait_for(|g| *g)).await;
        let offer_sdp = peer
            .local_description()
            .await
            .context("no local description")?
            .sdp;
        Ok(Self {
            peer,
            offer_sdp,
            track,
            ssrc,
            connected: connected_rx,
            packets_in,
        })
    }

    /// Applies the server's answer.
    pub async fn accept(&self, answer_sdp: String) -> Result<()> {
        self.peer
            .set_remote_description(RTCSessionDescription::answer(answer_sdp)?)
            .await?;
        Ok(())
    }

    /// Waits until media is connected.
    pub async fn wait_connected(&mut self, within: Duration) -> Result<()> {
        tokio::time::timeout(within, self.connected.wait_for(|c| *c))
            .await
            .context("not connected in time")??;
        Ok(())
    }

    /// Sends pre-encoded 20 ms Opus packets, in a loop, every 20 ms until `stop`.
    pub fn send_loop(
        &self,
        packets: Arc<Vec<Vec<u8>>>,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let track = Arc::clone(&self.track);
        let ssrc = self.ssrc;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut i = 0usize;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let sample = Sample {
                            data: packets[i % packets.len()].clone().into(),
                            duration: Duration::from_millis(20),
                            ..Sample::new(Instant::now())
                        };
                        let _ = track.sample_writer(ssrc, 111).write_sample(&sample).await;
                        i += 1;
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    }

    /// Closes the peer (a polite goodbye: DTLS close).
    pub async fn close(&self) {
        let _ = self.peer.close().await;
    }
}
