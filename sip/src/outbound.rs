//! Calls hotline places (a human agent's phone, for a bridged transfer): the IO around the
//! sans-IO [`CallerDialog`] and [`MediaSession`].
//!
//! [`dial`] binds a signalling socket and an RTP/RTCP pair, sends the INVITE with our SDP offer
//! and the request's extra headers, and runs one task for the call. The application gets an
//! [`OutboundCall`]: [`OutboundEvent`]s out (ringing, answered, one PCM frame per 20 ms at the
//! codec's rate, DTMF keys, ended with why) and [`OutboundCommand`]s in (PCM frames, hang up).
//!
//! Invariants: the call ends exactly once, with one [`OutboundEvent::Ended`], after which its
//! sockets and ports are freed; every datagram goes to the target's address (the target is the
//! next hop: a PBX or a phone); a hang-up before the answer CANCELs the INVITE; the media clock
//! never waits on the application (a frame it does not take is dropped).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use hotline_media::ports::{PortLease, PortPool};

use crate::line::LineSockets;
use crate::media::{MediaEvent, MediaSession, PTIME_MS};
use crate::rtp::Ssrc;
use crate::sdp::{accept_answer, write_offer, Codec, LocalSdp, MediaPorts, SessionDescription};
use crate::uac::{CallerDialog, DialogEnd, DialogEvent, DialogSetup, UacError};

/// How long an INVITE may go without any response before the call fails.
const ANSWER_WAIT: Duration = Duration::from_secs(8);

/// Where outgoing calls come from.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// The address signalling and media sockets bind.
    pub bind_ip: IpAddr,
    /// The address our SDP and Contact name (a 1:1 NAT's public address, else `bind_ip`).
    pub advertised_ip: IpAddr,
    /// The RTP port range, inclusive (0..=0: any free port).
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Hang up after this long without RTP from the far end.
    pub rtp_timeout_ms: u64,
    /// The codecs offered, best first.
    pub codecs: Vec<Codec>,
}

/// One call to place.
#[derive(Debug, Clone)]
pub struct DialRequest {
    /// `sip:user@host[:port]`; the host is an IP address or a name to resolve.
    pub target: String,
    /// More INVITE headers (`X-Hotline-*`).
    pub headers: Vec<(String, String)>,
    /// How long it may ring.
    pub ring_wait: Duration,
}

/// The call could not be placed at all.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("bad SIP target {target:?}: {why} (expected sip:user@host[:port])")]
    Target { target: String, why: String },
    #[error("cannot bind a socket for an outgoing call: {0}")]
    Bind(#[from] std::io::Error),
    #[error("RTP ports: {0}")]
    Ports(#[from] hotline_media::ports::PortError),
}

/// Why an outgoing call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboundEnd {
    /// It was never answered: refused, no answer, cancelled.
    NotAnswered(UacError),
    /// The far end hung up.
    RemoteHangup,
    /// We hung up.
    LocalHangup,
    /// The answer's SDP named nothing we can use.
    BadAnswer(String),
    /// No RTP from the far end for the timeout.
    MediaTimeout,
}

/// What the call does.
#[derive(Debug)]
pub enum OutboundEvent {
    /// The far end is ringing (the first provisional response).
    Ringing,
    /// It answered; frames follow at `pcm_rate_hz`.
    Answered {
        codec: String,
        pcm_rate_hz: u32,
    },
    /// One 20 ms frame from the far end.
    Audio(Vec<i16>),
    Dtmf(char),
    Ended(OutboundEnd),
}

/// What the application tells the call.
#[derive(Debug)]
pub enum OutboundCommand {
    /// One 20 ms frame at the codec's rate, to send.
    Audio(Vec<i16>),
    HangUp,
}

/// The application's handle on a call it placed.
pub struct OutboundCall {
    pub events: mpsc::Receiver<OutboundEvent>,
    pub commands: mpsc::Sender<OutboundCommand>,
}

/// `sip:user@host[:port]` → the next hop's address and the Request-URI.
pub async fn resolve_target(target: &str) -> Result<(SocketAddr, String), DialError> {
    let bad = |why: &str| DialError::Target {
        target: target.to_string(),
        why: why.to_string(),
    };
    let rest = target
        .strip_prefix("sip:")
        .ok_or_else(|| bad("not a sip: URI"))?;
    let rest = rest.split(';').next().unwrap_or(rest);
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    if host_port.is_empty() {
        return Err(bad("no host"));
    }
    let with_port = if host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host_port.to_string()
    } else {
        format!("{host_port}:5060")
    };
    let addr = tokio::net::lookup_host(&with_port)
        .await
        .map_err(|e| bad(&format!("cannot resolve {with_port}: {e}")))?
        .next()
        .ok_or_else(|| bad(&format!("{with_port} resolves to nothing")))?;
    Ok((addr, format!("sip:{rest}")))
}

/// Places a call. See the module docs.
pub async fn dial(
    config: &OutboundConfig,
    request: DialRequest,
) -> Result<OutboundCall, DialError> {
    let (target, request_uri) = resolve_target(&request.target).await?;
    let sip = UdpSocket::bind(SocketAddr::new(config.bind_ip, 0)).await?;
    let local = SocketAddr::new(config.advertised_ip, sip.local_addr()?.port());
    let range = (config.rtp_port_max != 0).then_some((config.rtp_port_min, config.rtp_port_max));
    let pair = PortPool::new(config.bind_ip, range).bind_pair()?;
    let line = LineSockets::new(pair.rtp, pair.rtcp)?;
    let rtp_port = pair.lease.addr().port();
    let ports = MediaPorts {
        rtp: rtp_port,
        rtcp: pair.lease.rtcp_port().unwrap_or(rtp_port.wrapping_add(1)),
    };
    let offer = write_offer(
        &config.codecs,
        &LocalSdp {
            ip: config.advertised_ip,
            ports,
            session_id: u64::from(rand::random::<u32>()),
            session_version: 1,
        },
    );
    let setup = DialogSetup {
        target,
        target_text: request.target.clone(),
        request_uri,
        local,
        call_id: format!("hotline-{:016x}", rand::random::<u64>()),
        from_tag: format!("{:08x}", rand::random::<u32>()),
        answer_wait: ANSWER_WAIT,
        ring_wait: request.ring_wait,
        user: "hotline".into(),
        headers: request.headers,
    };
    let (events_tx, events) = mpsc::channel(64);
    let (commands, commands_rx) = mpsc::channel(64);
    let call = Call {
        config: config.clone(),
        sip,
        line,
        _lease: pair.lease,
        target,
        started: Instant::now(),
        events: events_tx,
    };
    let dialog = CallerDialog::invite(setup, &offer, Duration::ZERO);
    tokio::spawn(call.run(dialog, commands_rx));
    Ok(OutboundCall { events, commands })
}

/// The call's task state.
struct Call {
    config: OutboundConfig,
    sip: UdpSocket,
    line: LineSockets,
    _lease: PortLease,
    target: SocketAddr,
    started: Instant,
    events: mpsc::Sender<OutboundEvent>,
}

impl Call {
    async fn run(
        mut self,
        mut dialog: CallerDialog,
        mut commands: mpsc::Receiver<OutboundCommand>,
    ) {
        let mut media: Option<MediaSession> = None;
        let mut ended: Option<OutboundEnd> = None;
        let period = Duration::from_millis(u64::from(PTIME_MS));
        let first = hotline_media::clock::next_tick(std::time::Instant::now(), period);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::from_std(first), period);
        let mut sip_buf = vec![0u8; 4096];
        let mut commands_open = true;
        loop {
            self.flush(&mut dialog).await;
            let mut hang_up = false;
            while let Some(event) = dialog.poll_event() {
                match event {
                    DialogEvent::Ringing { .. } => {
                        let _ = self.events.send(OutboundEvent::Ringing).await;
                    }
                    DialogEvent::Answered { body } => match self.start_media(&body) {
                        Ok(m) => {
                            let _ = self
                                .events
                                .send(OutboundEvent::Answered {
                                    codec: m.negotiated().codec.name().to_string(),
                                    pcm_rate_hz: m.negotiated().codec.pcm_rate_hz(),
                                })
                                .await;
                            media = Some(m);
                        }
                        Err(why) => {
                            ended.get_or_insert(OutboundEnd::BadAnswer(why));
                            hang_up = true;
                        }
                    },
                    DialogEvent::Ended(end) => {
                        let end = match end {
                            DialogEnd::ServerBye => OutboundEnd::RemoteHangup,
                            DialogEnd::ByeAnswered => OutboundEnd::LocalHangup,
                            DialogEnd::Failed(UacError::ByeUnanswered { .. }) => {
                                OutboundEnd::LocalHangup
                            }
                            DialogEnd::Failed(e) => OutboundEnd::NotAnswered(e),
                        };
                        ended.get_or_insert(end);
                    }
                }
            }
            if hang_up {
                dialog.hang_up(self.now());
                continue;
            }
            if dialog.is_terminated() {
                break;
            }
            let timeout = dialog.poll_timeout().map(|t| self.started + t);
            tokio::select! {
                received = self.sip.recv_from(&mut sip_buf) => {
                    if let Ok((len, _)) = received {
                        dialog.handle_datagram(self.now(), &sip_buf[..len]);
                    }
                }
                _ = sleep_until(timeout) => dialog.handle_timeout(self.now()),
                _ = ticker.tick(), if media.is_some() => {
                    if let Some(m) = media.as_mut() {
                        let now = self.now_ms();
                        // Read at the tick, as the answered calls' lines are (`crate::line`).
                        self.line.receive(m, now);
                        let out = m.tick(now);
                        self.line.send(m, out.rtp, now, crate::driver::ntp_now());
                        // The media clock never waits on the application.
                        let _ = self.events.try_send(OutboundEvent::Audio(out.caller_pcm));
                        while let Some(event) = m.poll_event() {
                            match event {
                                MediaEvent::Dtmf(digit) => {
                                    let _ = self.events.try_send(OutboundEvent::Dtmf(digit));
                                }
                                MediaEvent::Timeout => {
                                    ended.get_or_insert(OutboundEnd::MediaTimeout);
                                    dialog.hang_up(self.now());
                                }
                                MediaEvent::Latched(_) => {}
                            }
                        }
                    }
                }
                command = commands.recv(), if commands_open => match command {
                    Some(OutboundCommand::Audio(pcm)) => {
                        if let Some(m) = media.as_mut() {
                            self.line.send_rtp(m.queue_audio(pcm));
                        }
                    }
                    Some(OutboundCommand::HangUp) | None => {
                        commands_open = false;
                        ended.get_or_insert(OutboundEnd::LocalHangup);
                        dialog.hang_up(self.now());
                    }
                },
            }
        }
        self.flush(&mut dialog).await;
        let end = ended.unwrap_or(OutboundEnd::LocalHangup);
        let _ = self.events.send(OutboundEvent::Ended(end)).await;
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn flush(&self, dialog: &mut CallerDialog) {
        while let Some(datagram) = dialog.poll_transmit() {
            let _ = self.sip.send_to(&datagram, self.target).await;
        }
    }

    fn start_media(&self, body: &[u8]) -> Result<MediaSession, String> {
        let negotiated = SessionDescription::parse(body)
            .and_then(|answer| accept_answer(&answer, &self.config.codecs))
            .map_err(|e| e.to_string())?;
        MediaSession::new(
            negotiated,
            Ssrc(rand::random()),
            rand::random(),
            rand::random(),
            self.config.rtp_timeout_ms,
            self.now_ms(),
        )
        .map_err(|e| e.to_string())
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn targets_resolve_to_the_next_hop_and_a_request_uri() {
        let (addr, uri) = resolve_target("sip:agent@127.0.0.1:5070")
            .await
            .expect("ok");
        assert_eq!(
            (addr.to_string().as_str(), uri.as_str()),
            ("127.0.0.1:5070", "sip:agent@127.0.0.1:5070")
        );
        let (addr, _) = resolve_target("sip:1001@127.0.0.1").await.expect("ok");
        assert_eq!(addr.port(), 5060);
        for bad in ["tel:+15551234", "sip:", "sip:agent@"] {
            assert!(resolve_target(bad).await.is_err(), "{bad}");
        }
    }
}
