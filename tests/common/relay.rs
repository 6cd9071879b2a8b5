//! A media relay that stands in for a NAT in front of hotline's RTP ports. hotline advertises a
//! public address (its `sip.public_ip`, a second loopback address such as 127.0.0.3) where the
//! relay listens on every port of hotline's RTP range (RTP on the even port, RTCP on the odd);
//! the relay forwards the caller's datagrams to the same port on 127.0.0.1, where hotline binds,
//! and hotline's back to the caller. Because hotline answers symmetrically, its packets come
//! back through the relay, which keeps a copy of every datagram both ways for the test to check
//! (what the caller heard, SSRC/sequence/timestamp continuity, RTCP reports).
//!
//! Invariants: the relay's threads end when it is dropped; it never changes what it forwards.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hotline_media::codec::g711::{alaw_decode as alaw_to_linear, ulaw_decode as ulaw_to_linear};
use hotline_media::rtp::{is_rtcp, RtpPacket};

use super::ports::RtpPorts;

/// One datagram the relay forwarded.
#[derive(Debug, Clone)]
pub struct Relayed {
    /// When it arrived, from the relay's start.
    pub at: Duration,
    /// Sent by hotline (else by the caller).
    pub from_hotline: bool,
    /// Arrived on an RTCP (odd) port.
    pub rtcp_port: bool,
    pub data: Vec<u8>,
}

/// The RTP header fields of one packet hotline sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub at: Duration,
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// The relay; stops when dropped.
pub struct MediaRelay {
    relayed: Arc<Mutex<Vec<Relayed>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl MediaRelay {
    /// Listens on `public_ip` at every port of `rtp` (RTP and RTCP) and relays to 127.0.0.1.
    pub fn start(public_ip: &str, rtp: &RtpPorts) -> Self {
        let public_ip: IpAddr = public_ip.parse().expect("the relay's address is an IP");
        let relayed = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut threads = Vec::new();
        // The caller's RTP address, per RTP port: RTCP goes to its port + 1 until the caller's
        // own RTCP shows where it comes from.
        let mut caller_rtp: Option<Arc<Mutex<Option<SocketAddr>>>> = None;
        for port in rtp.ports() {
            let socket = UdpSocket::bind((public_ip, port))
                .unwrap_or_else(|e| panic!("bind the relay on {public_ip}:{port} (loopback): {e}"));
            socket
                .set_read_timeout(Some(Duration::from_millis(100)))
                .expect("set a read timeout");
            let hotline: SocketAddr = ([127, 0, 0, 1], port).into();
            let (relayed, stop) = (relayed.clone(), stop.clone());
            let rtcp_port = port % 2 == 1;
            let rtp_caller = match (&caller_rtp, rtcp_port) {
                (Some(shared), true) => shared.clone(),
                _ => {
                    let shared = Arc::new(Mutex::new(None));
                    caller_rtp = Some(shared.clone());
                    shared
                }
            };
            threads.push(std::thread::spawn(move || {
                let mut caller: Option<SocketAddr> = None;
                let mut buffer = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, from)) = socket.recv_from(&mut buffer) else {
                        continue;
                    };
                    let from_hotline = from == hotline;
                    relayed.lock().expect("relay log").push(Relayed {
                        at: started.elapsed(),
                        from_hotline,
                        rtcp_port,
                        data: buffer[..len].to_vec(),
                    });
                    let to = if from_hotline {
                        caller.or_else(|| {
                            let rtp = *rtp_caller.lock().expect("caller address");
                            rtp.filter(|_| rtcp_port)
                                .map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1)))
                        })
                    } else {
                        caller = Some(from);
                        if !rtcp_port {
                            *rtp_caller.lock().expect("caller address") = Some(from);
                        }
                        Some(hotline)
                    };
                    if let Some(to) = to {
                        let _ = socket.send_to(&buffer[..len], to);
                    }
                }
            }));
        }
        Self {
            relayed,
            stop,
            threads,
        }
    }

    /// Also forwards SIP over UDP on `public_ip:sip_port` to hotline's `127.0.0.1:sip_port` and
    /// back, as a 1:1 NAT would: a peer that follows hotline's Contact (the public address),
    /// like baresip does for its ACK and BYE, reaches hotline through it. SIP is not logged.
    pub fn forward_sip(&mut self, public_ip: &str, sip_port: u16) {
        let public_ip: IpAddr = public_ip.parse().expect("the relay's address is an IP");
        let socket = UdpSocket::bind((public_ip, sip_port))
            .unwrap_or_else(|e| panic!("bind the SIP relay on {public_ip}:{sip_port}: {e}"));
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set a read timeout");
        let hotline: SocketAddr = ([127, 0, 0, 1], sip_port).into();
        let stop = self.stop.clone();
        self.threads.push(std::thread::spawn(move || {
            let mut peer: Option<SocketAddr> = None;
            let mut buffer = [0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buffer) else {
                    continue;
                };
                let to = if from == hotline {
                    peer
                } else {
                    peer = Some(from);
                    Some(hotline)
                };
                if let Some(to) = to {
                    let _ = socket.send_to(&buffer[..len], to);
                }
            }
        }));
    }

    /// Every datagram so far.
    pub fn relayed(&self) -> Vec<Relayed> {
        self.relayed.lock().expect("relay log").clone()
    }

    /// RTP packets (not RTCP) the caller sent.
    pub fn caller_packets(&self) -> usize {
        self.relayed()
            .iter()
            .filter(|r| !r.from_hotline && !r.rtcp_port && !is_rtcp(&r.data))
            .count()
    }

    /// The RTP packets hotline sent, parsed (RTCP and what does not parse left out).
    pub fn hotline_rtp(&self) -> Vec<RtpHeader> {
        self.relayed()
            .iter()
            .filter(|r| r.from_hotline && !r.rtcp_port && !is_rtcp(&r.data))
            .filter_map(|r| {
                let p = RtpPacket::parse(&r.data).ok()?;
                Some(RtpHeader {
                    at: r.at,
                    payload_type: p.payload_type,
                    marker: p.marker,
                    sequence: p.sequence,
                    timestamp: p.timestamp,
                    ssrc: p.ssrc.0,
                })
            })
            .collect()
    }

    /// hotline's G.711 RTP packets whose audio is louder than `threshold` RMS (what the caller
    /// heard of the bot).
    pub fn loud_hotline_packets(&self, threshold: f32) -> usize {
        self.relayed()
            .iter()
            .filter(|r| r.from_hotline && !r.rtcp_port)
            .filter_map(|r| {
                let p = RtpPacket::parse(&r.data).ok()?;
                let samples: Vec<i16> = p
                    .payload
                    .iter()
                    .map(|&b| {
                        if p.payload_type == 8 {
                            alaw_to_linear(b)
                        } else {
                            ulaw_to_linear(b)
                        }
                    })
                    .collect();
                (hotline::audio::rms(&samples) > threshold).then_some(())
            })
            .count()
    }

    /// RTCP datagrams (on the RTCP port or muxed) sent by hotline (`true`) or the caller.
    pub fn rtcp(&self, from_hotline: bool) -> Vec<Vec<u8>> {
        self.relayed()
            .into_iter()
            .filter(|r| r.from_hotline == from_hotline && (r.rtcp_port || is_rtcp(&r.data)))
            .map(|r| r.data)
            .collect()
    }
}

impl Drop for MediaRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
