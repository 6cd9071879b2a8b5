//! The IO around the sans-IO parts: SIP sockets (UDP, TCP and TLS), per-call RTP/RTCP sockets, the
//! 20 ms media clock, and the channels to the application.
//!
//! Owns: the sockets and tasks. One signalling task runs [`SipSession`]; each answered call gets
//! a media task that runs its [`MediaSession`] on a monotonic 20 ms interval. The application
//! sees a [`PhoneCall`] per call: decoded PCM frames, DTMF and hang-ups come out, PCM frames,
//! hang-ups and transfers go in.
//! Invariants: a call's media task ends exactly once and reports [`PhoneEvent::Hangup`] to the
//! application exactly once; a slow application loses frames rather than stalling the media
//! clock; RTP and RTCP ports come from `hotline-media`'s port pool, from the configured range in
//! even/odd pairs (with the range `0..=0`, from the OS: then our SDP names the RTCP port with
//! `a=rtcp`), and go back to it when the call's media task ends.
//!
//! A new call is half-open until its ACK: at the INVITE the application is only asked whether
//! it has a free place ([`CallAcceptor::admit`]) and the call's RTP sockets are bound for our
//! answer; the application gets the call ([`CallAcceptor::accept`]) and its media task starts
//! when the ACK connects it (for a late offer, an INVITE without SDP, the ACK brings the
//! caller's answer and the codec). A call that ends before its ACK (refused, cancelled, never
//! acknowledged: a flood) is logged and never reaches the application. One whose ACK came
//! without a usable answer does, already hung up with the reason, so that it is recorded.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use hotline_media::ports::{PortLease, PortPool};
use hotline_media::MediaCounters;

use crate::dialog::{
    EndpointConfig, IncomingCall, Peer, SipCallId, SipEvent, SipSession, TransportKind,
};
use crate::flood::{CapReached, ConnectionCaps, ConnectionPlace};
use crate::line::LineSockets;
use crate::media::{MediaEvent, MediaSession};
use crate::message::StreamFramer;
use crate::rtp::Ssrc;
use crate::sdp::{MediaPorts, Negotiated};
use crate::tls::TlsCell;

/// The phone edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    #[error("cannot bind SIP {transport} on {addr}: {source}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("bad RTP port range {min}..={max}")]
    PortRange { min: u16, max: u16 },
}

/// Everything the phone edge needs.
#[derive(Debug, Clone)]
pub struct PhoneConfig {
    /// The address SIP and RTP sockets bind.
    pub bind_ip: IpAddr,
    /// The SIP port (UDP and TCP); 0 picks a free one (tests).
    pub sip_port: u16,
    /// Serve SIP over TCP too.
    pub tcp: bool,
    /// Serve SIP over TLS on `tls_port` (0 picks a free one), with this certificate.
    pub tls: Option<Arc<TlsCell>>,
    pub tls_port: u16,
    /// The RTP port range, inclusive; RTP takes even ports, RTCP the odd one above.
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Hang up after this long without RTP from a caller who should be sending.
    pub rtp_timeout_ms: u64,
    /// Retry-After (seconds) sent with 486 when the application is at capacity.
    pub busy_retry_after_s: u32,
    /// SIP over TCP/TLS connections one address may hold open, and all addresses together; a
    /// connection over a cap is closed at once.
    pub max_connections_per_ip: usize,
    pub max_connections: usize,
    /// The SIP endpoint (its `sip_port` is filled in from the bound socket when 0).
    pub endpoint: EndpointConfig,
}

/// What the application hears from one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneEvent {
    /// The caller's next 20 ms, decoded at [`PhoneCall::pcm_rate_hz`]; one per tick.
    Audio(Vec<i16>),
    /// A DTMF key (RFC 4733, SIP INFO or in-band).
    Dtmf(char),
    /// A transfer did not happen; the call is still ours.
    TransferFailed { reason: String },
    /// The call is over (the caller hung up, timed out, or our hang-up completed), with the
    /// media counters of the whole call (`None` when media never started).
    Hangup {
        reason: String,
        media: Option<MediaCounters>,
    },
}

/// What the application tells one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneCommand {
    /// One frame of PCM at [`PhoneCall::pcm_rate_hz`], to be sent on a coming tick.
    Audio(Vec<i16>),
    /// Drop queued outbound audio (barge-in).
    Flush,
    /// End the call with a reason code.
    Hangup { reason: String },
    /// Hand the call to a SIP URI or number with REFER; `headers` carry the call's context to
    /// the PBX (see `sip/PBX.md`). The outcome comes back as [`PhoneEvent::TransferFailed`] or,
    /// when it worked, as the hang-up that follows.
    Transfer {
        target: String,
        headers: Vec<(String, String)>,
    },
}

/// One answered call, as the application sees it.
#[derive(Debug)]
pub struct PhoneCall {
    pub id: SipCallId,
    pub transport: TransportKind,
    pub from: String,
    pub to: String,
    /// The codec name (PCMU, PCMA, ...); `None` for a late-offer call that ended before the
    /// caller answered our offer (its first event is the hang-up).
    pub codec: Option<String>,
    /// The rate of the PCM in [`PhoneEvent::Audio`] and [`PhoneCommand::Audio`].
    pub pcm_rate_hz: u32,
    /// The INVITE's headers, in order.
    pub headers: Vec<(String, String)>,
    pub events: mpsc::Receiver<PhoneEvent>,
    pub commands: mpsc::Sender<PhoneCommand>,
}

/// Why the application refuses a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// At capacity: 486 Busy Here with Retry-After.
    Busy,
    /// Anything else: 503 Service Unavailable.
    Unavailable,
}

/// The application's side: takes each new call, or refuses it. Called on the signalling task,
/// so it must not block.
pub trait CallAcceptor: Send + Sync + 'static {
    /// Whether a new call could be taken now (a free place, not shutting down): asked at the
    /// INVITE, before it is answered, so that a refusal is still a final response. Must be
    /// cheap: a flood of INVITEs asks it for every one.
    fn admit(&self) -> Result<(), Refusal> {
        Ok(())
    }

    /// Takes a connected call (its ACK has come), or one that ended just after its ACK.
    fn accept(&self, call: PhoneCall) -> Result<(), Refusal>;
}

/// Messages from media tasks to the signalling task.
#[derive(Debug)]
enum DriverMessage {
    Hangup {
        id: SipCallId,
        reason: String,
    },
    Transfer {
        id: SipCallId,
        target: String,
        headers: Vec<(String, String)>,
    },
}

/// Messages from the signalling task to a media task.
#[derive(Debug)]
enum MediaControl {
    Update(Negotiated),
    Dtmf(char),
    TransferFailed(String),
    Ended(String),
}

/// A call between its INVITE and its ACK: it holds only its RTP ports.
struct HalfOpenCall {
    incoming: IncomingCall,
    sockets: MediaSockets,
    /// The ACK came, but without a usable answer to our offer (a late offer): a hang-up follows.
    acked: bool,
}

/// One call's RTP and RTCP sockets, their ports, and the lease that holds them in the pool.
struct MediaSockets {
    line: LineSockets,
    ports: MediaPorts,
    _lease: PortLease,
}

impl MediaSockets {
    /// Binds a pair from the pool, read on the media tick ([`LineSockets`]).
    fn bind(pool: &PortPool) -> Option<MediaSockets> {
        let pair = match pool.bind_pair() {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!("RTP ports: {e}");
                return None;
            }
        };
        let line = match LineSockets::new(pair.rtp, pair.rtcp) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!("RTP sockets: {e}");
                return None;
            }
        };
        let rtp_port = pair.lease.addr().port();
        let ports = MediaPorts {
            rtp: rtp_port,
            rtcp: pair.lease.rtcp_port().unwrap_or(rtp_port.wrapping_add(1)),
        };
        Some(MediaSockets {
            line,
            ports,
            _lease: pair.lease,
        })
    }
}

/// How often `sip.port = 0` takes another kernel-chosen port when its number is taken on TCP.
const PORT_ZERO_TRIES: u32 = 16;

/// Binds SIP's UDP socket and, with `config.tcp`, the TCP listener on the same port. With port
/// 0 the kernel picks the UDP port; a number TCP already uses elsewhere (an outgoing
/// connection's ephemeral port) is given back for another, up to [`PORT_ZERO_TRIES`] times.
async fn bind_udp_and_tcp(
    config: &PhoneConfig,
) -> Result<(UdpSocket, SocketAddr, Option<TcpListener>), PhoneError> {
    let addr = SocketAddr::new(config.bind_ip, config.sip_port);
    let mut tries = 0;
    loop {
        tries += 1;
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|source| PhoneError::Bind {
                transport: "UDP",
                addr,
                source,
            })?;
        let local = udp.local_addr().map_err(|source| PhoneError::Bind {
            transport: "UDP",
            addr,
            source,
        })?;
        if !config.tcp {
            return Ok((udp, local, None));
        }
        let tcp_addr = SocketAddr::new(config.bind_ip, local.port());
        match TcpListener::bind(tcp_addr).await {
            Ok(tcp) => return Ok((udp, local, Some(tcp))),
            Err(e)
                if config.sip_port == 0
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && tries < PORT_ZERO_TRIES =>
            {
                continue
            }
            Err(source) => {
                return Err(PhoneError::Bind {
                    transport: "TCP",
                    addr: tcp_addr,
                    source,
                })
            }
        }
    }
}

/// The bound phone edge, ready to run.
pub struct PhoneServer {
    config: PhoneConfig,
    udp: Arc<UdpSocket>,
    tcp: Option<TcpListener>,
    tls: Option<TcpListener>,
}

impl PhoneServer {
    /// Binds the SIP sockets.
    pub async fn bind(mut config: PhoneConfig) -> Result<Self, PhoneError> {
        if config.rtp_port_min > config.rtp_port_max || config.rtp_port_max == u16::MAX {
            return Err(PhoneError::PortRange {
                min: config.rtp_port_min,
                max: config.rtp_port_max,
            });
        }
        let (udp, local, tcp) = bind_udp_and_tcp(&config).await?;
        let tls = match &config.tls {
            Some(_) => {
                let tls_addr = SocketAddr::new(config.bind_ip, config.tls_port);
                let listener =
                    TcpListener::bind(tls_addr)
                        .await
                        .map_err(|source| PhoneError::Bind {
                            transport: "TLS",
                            addr: tls_addr,
                            source,
                        })?;
                let port = listener
                    .local_addr()
                    .map(|a| a.port())
                    .unwrap_or(config.tls_port);
                config.tls_port = port;
                config.endpoint.tls_port = Some(port);
                Some(listener)
            }
            None => None,
        };
        config.sip_port = local.port();
        config.endpoint.sip_port = local.port();
        Ok(Self {
            config,
            udp: Arc::new(udp),
            tcp,
            tls,
        })
    }

    /// The bound SIP address.
    pub fn local_addr(&self) -> SocketAddr {
        SocketAddr::new(self.config.bind_ip, self.config.sip_port)
    }

    /// The certificate SIP over TLS uses (to reload it).
    pub fn tls_cell(&self) -> Option<Arc<TlsCell>> {
        self.config.tls.clone()
    }

    /// The bound SIP-over-TLS address, when TLS is served.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
            .as_ref()
            .map(|_| SocketAddr::new(self.config.bind_ip, self.config.tls_port))
    }

    /// Serves until `shutdown` completes; then hangs up every call and returns.
    pub async fn run(self, acceptor: Arc<dyn CallAcceptor>, shutdown: impl Future<Output = ()>) {
        let started = Instant::now();
        let now_ms = move || started.elapsed().as_millis() as u64;
        let seed = rand::random::<u64>();
        let mut session = SipSession::new(self.config.endpoint.clone(), seed, now_ms());
        let (driver_tx, mut driver_rx) = mpsc::unbounded_channel::<DriverMessage>();
        let (tcp_in_tx, mut tcp_in_rx) = mpsc::unbounded_channel::<(Peer, Vec<u8>)>();
        let mut tcp_writers: HashMap<u64, mpsc::UnboundedSender<Vec<u8>>> = HashMap::new();
        let mut next_connection = 1u64;
        let caps = ConnectionCaps::new(
            self.config.max_connections_per_ip,
            self.config.max_connections,
        );
        let mut last_refusal_log: Option<Instant> = None;
        let mut calls: HashMap<SipCallId, mpsc::UnboundedSender<MediaControl>> = HashMap::new();
        let mut half_open: HashMap<SipCallId, HalfOpenCall> = HashMap::new();
        let range = (self.config.rtp_port_max != 0)
            .then_some((self.config.rtp_port_min, self.config.rtp_port_max));
        let ports = PortPool::new(self.config.bind_ip, range).with_seed(seed);
        let mut buffer = vec![0u8; 65_536];
        tokio::pin!(shutdown);
        loop {
            let wake = session
                .poll_timeout()
                .map(|t| t.saturating_sub(now_ms()))
                .unwrap_or(60_000);
            tokio::select! {
                _ = &mut shutdown => break,
                received = self.udp.recv_from(&mut buffer) => {
                    if let Ok((len, from)) = received {
                        let peer = Peer { transport: TransportKind::Udp, addr: from, connection: None };
                        session.handle_input(now_ms(), peer, &buffer[..len]);
                    }
                }
                accepted = accept_tcp(self.tcp.as_ref()) => {
                    let admitted = accepted.ok().and_then(|(stream, from)| {
                        admit_connection(&caps, from, "TCP", &mut last_refusal_log).map(|place| (stream, from, place))
                    });
                    if let Some((stream, from, place)) = admitted {
                        let id = next_connection;
                        next_connection += 1;
                        let (writer_tx, writer_rx) = mpsc::unbounded_channel();
                        tcp_writers.insert(id, writer_tx);
                        let peer = Peer { transport: TransportKind::Tcp, addr: from, connection: Some(id) };
                        tokio::spawn(tcp_connection(stream, peer, place, tcp_in_tx.clone(), writer_rx));
                    }
                }
                accepted = accept_tcp(self.tls.as_ref()) => {
                    let admitted = accepted.ok().and_then(|(stream, from)| {
                        admit_connection(&caps, from, "TLS", &mut last_refusal_log).map(|place| (stream, from, place))
                    });
                    if let (Some((stream, from, place)), Some(acceptor)) = (admitted, self.config.tls.as_ref().and_then(|t| t.acceptor())) {
                        let id = next_connection;
                        next_connection += 1;
                        let (writer_tx, writer_rx) = mpsc::unbounded_channel();
                        tcp_writers.insert(id, writer_tx);
                        let peer = Peer { transport: TransportKind::Tls, addr: from, connection: Some(id) };
                        let incoming = tcp_in_tx.clone();
                        tokio::spawn(async move {
                            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => tcp_connection(tls, peer, place, incoming, writer_rx).await,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer.addr, "SIP TLS handshake failed: {e}");
                                    let _ = incoming.send((peer, Vec::new()));
                                }
                                Err(_) => {
                                    tracing::debug!(%peer.addr, "SIP TLS handshake timed out");
                                    let _ = incoming.send((peer, Vec::new()));
                                }
                            }
                        });
                    }
                }
                Some((peer, data)) = tcp_in_rx.recv() => {
                    if data.is_empty() {
                        if let Some(id) = peer.connection { tcp_writers.remove(&id); }
                    } else {
                        session.handle_input(now_ms(), peer, &data);
                    }
                }
                Some(message) = driver_rx.recv() => match message {
                    DriverMessage::Hangup { id, reason } => session.hangup(now_ms(), &id, &reason),
                    DriverMessage::Transfer { id, target, headers } => session.transfer(now_ms(), &id, &target, &headers),
                },
                _ = tokio::time::sleep(Duration::from_millis(wake)) => session.handle_timeout(now_ms()),
            }
            // Events first: accepting a call queues its answer.
            while let Some(event) = session.poll_event() {
                match event {
                    SipEvent::IncomingCall(incoming) => {
                        let id = incoming.id.clone();
                        // Half-open until the ACK: only a cheap check that a place is free now,
                        // and the RTP ports our answer names. The call itself starts at the ACK.
                        if let Err(refusal) = acceptor.admit() {
                            session.reject(
                                now_ms(),
                                &id,
                                refusal.sip_code(),
                                Some(self.config.busy_retry_after_s),
                            );
                            continue;
                        }
                        let Some(sockets) = MediaSockets::bind(&ports) else {
                            tracing::warn!(call = %id, "no free RTP port pair; refusing the call");
                            session.reject(
                                now_ms(),
                                &id,
                                503,
                                Some(self.config.busy_retry_after_s),
                            );
                            continue;
                        };
                        let media_ports = sockets.ports;
                        half_open.insert(
                            id.clone(),
                            HalfOpenCall {
                                incoming,
                                sockets,
                                acked: false,
                            },
                        );
                        session.accept(now_ms(), &id, media_ports);
                    }
                    SipEvent::Connected { id, negotiated } => {
                        let Some(negotiated) = negotiated else {
                            // The ACK came without a usable answer: the hang-up that follows
                            // is reported as a call, so that it is recorded.
                            if let Some(call) = half_open.get_mut(&id) {
                                call.acked = true;
                            }
                            continue;
                        };
                        let Some(call) = half_open.remove(&id) else {
                            continue;
                        };
                        match self.start_call(
                            &call.incoming,
                            negotiated,
                            call.sockets,
                            acceptor.as_ref(),
                            driver_tx.clone(),
                        ) {
                            Ok(control) => {
                                calls.insert(id, control);
                            }
                            Err(refusal) => {
                                // Already answered: the refusal can only be a BYE now.
                                let reason = match refusal {
                                    Refusal::Busy => "server.busy",
                                    Refusal::Unavailable => "server.unavailable",
                                };
                                tracing::warn!(call = %id, reason, "connected call refused; hanging up");
                                session.hangup(now_ms(), &id, reason);
                            }
                        }
                    }
                    SipEvent::SourceBlocked { ip, limit, for_ms } => {
                        tracing::warn!(%ip, limit = limit.code(), block_s = for_ms / 1000, "SIP source blocked: over its rate limit; everything it sends is dropped until the block ends");
                    }
                    SipEvent::SourceUnblocked { ip, dropped } => {
                        tracing::info!(%ip, dropped, "SIP source unblocked");
                    }
                    SipEvent::MediaUpdated { id, negotiated } => {
                        send_control(&calls, &id, MediaControl::Update(negotiated))
                    }
                    SipEvent::Dtmf { id, digit } => {
                        send_control(&calls, &id, MediaControl::Dtmf(digit))
                    }
                    SipEvent::TransferDone { id } => {
                        tracing::info!(call = %id, "transfer completed")
                    }
                    SipEvent::TransferFailed { id, reason } => {
                        send_control(&calls, &id, MediaControl::TransferFailed(reason))
                    }
                    SipEvent::CallEnded { id, reason } => {
                        if let Some(control) = calls.remove(&id) {
                            let _ = control.send(MediaControl::Ended(reason));
                        } else if let Some(call) = half_open.remove(&id) {
                            never_connected(&call, &reason, acceptor.as_ref());
                        }
                    }
                    SipEvent::Registration { registered, detail } => {
                        if registered {
                            tracing::info!(%detail, "trunk registration");
                        } else {
                            tracing::warn!(%detail, "trunk registration");
                        }
                    }
                }
            }
            self.flush(&mut session, &tcp_writers).await;
        }
        // Shutdown: hang up every call and give the BYEs a moment to leave.
        for id in calls.keys().cloned().collect::<Vec<_>>() {
            session.hangup(now_ms(), &id, "server.shutdown");
        }
        for id in half_open.keys().cloned().collect::<Vec<_>>() {
            session.hangup(now_ms(), &id, "server.shutdown");
        }
        while let Some(event) = session.poll_event() {
            if let SipEvent::CallEnded { id, reason } = event {
                if let Some(control) = calls.remove(&id) {
                    let _ = control.send(MediaControl::Ended(reason));
                } else if let Some(call) = half_open.remove(&id) {
                    never_connected(&call, &reason, acceptor.as_ref());
                }
            }
        }
        self.flush(&mut session, &tcp_writers).await;
    }

    async fn flush(
        &self,
        session: &mut SipSession,
        tcp_writers: &HashMap<u64, mpsc::UnboundedSender<Vec<u8>>>,
    ) {
        while let Some(transmit) = session.poll_transmit() {
            match (transmit.peer.transport, transmit.peer.connection) {
                (TransportKind::Tcp | TransportKind::Tls, Some(id)) => {
                    if let Some(writer) = tcp_writers.get(&id) {
                        let _ = writer.send(transmit.data);
                    }
                }
                _ => {
                    if let Err(e) = self.udp.send_to(&transmit.data, transmit.peer.addr).await {
                        tracing::debug!(to = %transmit.peer.addr, "SIP send failed: {e}");
                    }
                }
            }
        }
    }

    /// Hands an answered call to the application and starts its media task on `sockets`.
    fn start_call(
        &self,
        incoming: &IncomingCall,
        negotiated: Negotiated,
        sockets: MediaSockets,
        acceptor: &dyn CallAcceptor,
        driver: mpsc::UnboundedSender<DriverMessage>,
    ) -> Result<mpsc::UnboundedSender<MediaControl>, Refusal> {
        let seed = rand::random::<u64>();
        let codec = negotiated.codec;
        // The media session runs on the media task's clock, which starts now (at 0), not on
        // the signalling task's: its first RTCP report and its RTP timeout count from here.
        let clock = Instant::now();
        let media = MediaSession::new(
            negotiated,
            Ssrc(seed as u32),
            (seed >> 32) as u16,
            (seed >> 16) as u32,
            self.config.rtp_timeout_ms,
            0,
        )
        .map_err(|_| Refusal::Unavailable)?;
        let (event_tx, event_rx) = mpsc::channel(64);
        let (command_tx, command_rx) = mpsc::channel(64);
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let call = PhoneCall {
            id: incoming.id.clone(),
            transport: incoming.peer.transport,
            from: incoming.from.clone(),
            to: incoming.to.clone(),
            codec: Some(codec.name().to_string()),
            pcm_rate_hz: codec.pcm_rate_hz(),
            headers: incoming.headers.clone(),
            events: event_rx,
            commands: command_tx,
        };
        acceptor.accept(call)?;
        tokio::spawn(media_task(
            incoming.id.clone(),
            (clock, media),
            sockets,
            event_tx,
            command_rx,
            control_rx,
            driver,
        ));
        Ok(control_tx)
    }
}

impl Refusal {
    /// The final response that refuses a call not yet answered.
    fn sip_code(&self) -> u16 {
        match self {
            Refusal::Busy => 486,
            Refusal::Unavailable => 503,
        }
    }
}

/// A call that ended before it connected. One that never had its ACK (refused, cancelled, a
/// flood's INVITE, pushed out or timed out while half-open) is only logged: it was never a
/// call, and it leaves no record. One whose ACK came without a usable answer is reported to
/// the application, already hung up, so that its record says why.
fn never_connected(call: &HalfOpenCall, reason: &str, acceptor: &dyn CallAcceptor) {
    if call.acked {
        report_unanswered(&call.incoming, reason, acceptor);
    } else {
        tracing::debug!(call = %call.incoming.id, from = %call.incoming.peer.addr, %reason, "a call ended before its ACK; not a call");
    }
}

/// Tells the application about a call that was answered (our 200) and acknowledged but ended
/// before media could start: a call whose only event is its hang-up.
fn report_unanswered(incoming: &IncomingCall, reason: &str, acceptor: &dyn CallAcceptor) {
    let (event_tx, event_rx) = mpsc::channel(1);
    let (command_tx, _commands) = mpsc::channel(1);
    let hangup = PhoneEvent::Hangup {
        reason: reason.to_string(),
        media: None,
    };
    if event_tx.try_send(hangup).is_err() {
        return;
    }
    let call = PhoneCall {
        id: incoming.id.clone(),
        transport: incoming.peer.transport,
        from: incoming.from.clone(),
        to: incoming.to.clone(),
        codec: None,
        pcm_rate_hz: 8_000,
        headers: incoming.headers.clone(),
        events: event_rx,
        commands: command_tx,
    };
    if let Err(refusal) = acceptor.accept(call) {
        tracing::debug!(call = %incoming.id, ?refusal, "ended call not taken by the application");
    }
}

fn send_control(
    calls: &HashMap<SipCallId, mpsc::UnboundedSender<MediaControl>>,
    id: &SipCallId,
    control: MediaControl,
) {
    if let Some(tx) = calls.get(id) {
        let _ = tx.send(control);
    }
}

async fn accept_tcp(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// How long a SIP-over-TLS client may take to finish its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Takes a place for a new SIP stream connection from `from`, or refuses it (the caller drops
/// the stream, closing it): logged at most once a second, not once per connection.
fn admit_connection(
    caps: &ConnectionCaps,
    from: SocketAddr,
    transport: &'static str,
    last_log: &mut Option<Instant>,
) -> Option<ConnectionPlace> {
    match caps.admit(from.ip()) {
        Ok(place) => Some(place),
        Err(reached) => {
            let now = Instant::now();
            if last_log.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1)) {
                *last_log = Some(now);
                let cap = match reached {
                    CapReached::PerAddress => "sip.limits.max_connections_per_ip",
                    CapReached::Total => "sip.limits.max_connections",
                };
                tracing::warn!(ip = %from.ip(), transport, cap, "SIP connection refused: too many open");
            }
            None
        }
    }
}

/// Reads framed messages from one stream connection (TCP, or TLS over it) and writes what the
/// session sends to it. An empty message tells the signalling task the connection is gone. It
/// holds its place under the connection caps until it closes.
async fn tcp_connection<S>(
    stream: S,
    peer: Peer,
    _place: ConnectionPlace,
    incoming: mpsc::UnboundedSender<(Peer, Vec<u8>)>,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut framer = StreamFramer::default();
    let mut buffer = vec![0u8; 16_384];
    loop {
        tokio::select! {
            read = reader.read(&mut buffer) => {
                let Ok(n) = read else { break };
                if n == 0 { break }
                framer.push(&buffer[..n]);
                loop {
                    match framer.next_message() {
                        Ok(Some(message)) => { let _ = incoming.send((peer, message)); }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(%peer.addr, "closing a broken SIP stream: {e}");
                            let _ = incoming.send((peer, Vec::new()));
                            return;
                        }
                    }
                }
            }
            Some(data) = outgoing.recv() => {
                if writer.write_all(&data).await.is_err() { break }
            }
        }
    }
    let _ = incoming.send((peer, Vec::new()));
}

/// NTP time (RFC 3550) for sender reports.
pub(crate) fn ntp_now() -> u64 {
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since_unix.as_secs() + 2_208_988_800;
    let fraction = ((since_unix.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

/// One call's media: paced on the process's 20 ms media grid; packet times are on a clock
/// that starts when the session was made (`timed.0`). Its ports go back to the pool when it
/// returns (the sockets and their lease drop here).
async fn media_task(
    id: SipCallId,
    timed: (Instant, MediaSession),

    sockets: MediaSockets,
    events: mpsc::Sender<PhoneEvent>,
    mut commands: mpsc::Receiver<PhoneCommand>,
    mut control: mpsc::UnboundedReceiver<MediaControl>,
    driver: mpsc::UnboundedSender<DriverMessage>,
) {
    let (started, mut media) = timed;
    let mut sockets = sockets;
    let now_ms = move || started.elapsed().as_millis() as u64;
    let period = Duration::from_millis(crate::media::PTIME_MS as u64);
    // On the process's one media grid, so that calls tick together (see `hotline_media::clock`).
    let first = hotline_media::clock::next_tick(std::time::Instant::now(), period);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::from_std(first), period);
    let mut commands_open = true;
    let reason = loop {
        tokio::select! {
            _ = ticker.tick() => {
                let now = now_ms();
                // The line's packets are read here too, all that came since the last tick
                // (see `crate::line`).
                sockets.line.receive(&mut media, now);
                let out = media.tick(now);
                sockets.line.send(&mut media, out.rtp, now, ntp_now());
                // A slow application loses a frame rather than stalling the clock.
                if events.try_send(PhoneEvent::Audio(out.caller_pcm)).is_err() && events.is_closed() {
                    let _ = driver.send(DriverMessage::Hangup { id: id.clone(), reason: "app.gone".into() });
                    break "app.gone".to_string();
                }
            }
            // The bot's frame leaves as soon as it comes: it answers the caller frame this
            // tick gave, and waiting for the next tick would add 20 ms to every reply and
            // every barge-in.
            command = commands.recv(), if commands_open => match command {
                Some(PhoneCommand::Audio(pcm)) => sockets.line.send_rtp(media.queue_audio(pcm)),
                Some(PhoneCommand::Flush) => media.flush_audio(),
                Some(PhoneCommand::Hangup { reason }) => {
                    let _ = driver.send(DriverMessage::Hangup { id: id.clone(), reason });
                }
                Some(PhoneCommand::Transfer { target, headers }) => {
                    let _ = driver.send(DriverMessage::Transfer { id: id.clone(), target, headers });
                }
                None => commands_open = false,
            },
            message = control.recv() => match message {
                Some(MediaControl::Update(negotiated)) => {
                    if let Err(e) = media.update(negotiated) {
                        tracing::warn!(call = %id, "media update refused: {e}");
                    }
                }
                Some(MediaControl::Dtmf(digit)) => { let _ = events.send(PhoneEvent::Dtmf(digit)).await; }
                Some(MediaControl::TransferFailed(reason)) => { let _ = events.send(PhoneEvent::TransferFailed { reason }).await; }
                Some(MediaControl::Ended(reason)) => break reason,
                None => break "server.shutdown".to_string(),
            },
        }
        while let Some(event) = media.poll_event() {
            match event {
                MediaEvent::Dtmf(digit) => {
                    let _ = events.send(PhoneEvent::Dtmf(digit)).await;
                }
                MediaEvent::Timeout => {
                    let _ = driver.send(DriverMessage::Hangup {
                        id: id.clone(),
                        reason: "rtp.timeout".into(),
                    });
                }
                MediaEvent::Latched(addr) => tracing::debug!(call = %id, %addr, "RTP latched"),
            }
        }
    };
    let counters = media.counters();
    tracing::info!(call = %id, %reason, rtp_in = counters.packets_in, rtp_out = counters.packets_out, lost = counters.lost, underruns = counters.underruns, rtcp_in = counters.rtcp_in, malformed = counters.dropped_malformed, "call media ended");
    // The line is down: the ports go back before the application hears of the hang-up.
    drop(sockets);
    let _ = events
        .send(PhoneEvent::Hangup {
            reason,
            media: Some(counters),
        })
        .await;
}
