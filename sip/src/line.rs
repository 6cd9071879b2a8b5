//! A call's RTP and RTCP sockets, read and written on the media tick: the I/O half of a
//! [`MediaSession`], for the answered calls of [`crate::driver`] and the dialled calls of
//! [`crate::outbound`] alike.
//!
//! The sockets are read at the tick, every datagram that has come since the last one, not as
//! each comes. A caller frame is only due at the tick, and the jitter buffer plays a frame as
//! soon as it is there, so reading earlier would gain no time. And a socket the runtime does
//! not watch wakes no thread when a packet comes: the line's packets cost no wake-up of their
//! own (the tick, on the process's one grid with every other call's, reads them). Our packets
//! leave at the tick, or as soon as the application's frame for the tick comes (see
//! [`MediaSession`]'s slots).
//!
//! Owns: the two sockets (non-blocking, never registered with the runtime) and the receive
//! buffer. Invariants: at most [`READ_PER_TICK`] datagrams are read from a socket a tick, so a
//! flood on one call's port cannot hold the runtime; what is left waits in the kernel's buffer
//! (which drops beyond its size); a send that would block drops the packet, as a full network
//! queue does.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};

use crate::media::MediaSession;

/// The most datagrams read from one socket in one tick: two seconds of 20 ms packets.
pub const READ_PER_TICK: usize = 100;

/// A call's media sockets (see the module docs).
#[derive(Debug)]
pub struct LineSockets {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    buffer: Vec<u8>,
}

impl LineSockets {
    /// The pair, switched to non-blocking.
    pub fn new(rtp: UdpSocket, rtcp: UdpSocket) -> std::io::Result<Self> {
        rtp.set_nonblocking(true)?;
        rtcp.set_nonblocking(true)?;
        Ok(Self {
            rtp,
            rtcp,
            buffer: vec![0u8; 2048],
        })
    }

    /// Hands every datagram waiting on both ports to `media`, as come at `now_ms`.
    pub fn receive(&mut self, media: &mut MediaSession, now_ms: u64) {
        for _ in 0..READ_PER_TICK {
            match self.rtp.recv_from(&mut self.buffer) {
                Ok((len, from)) => media.handle_rtp(from, &self.buffer[..len], now_ms),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // An ICMP error from an earlier send (port unreachable) and the like: the
                // socket goes on.
                Err(_) => continue,
            }
        }
        for _ in 0..READ_PER_TICK {
            match self.rtcp.recv_from(&mut self.buffer) {
                Ok((len, _)) => media.handle_rtcp(&self.buffer[..len], now_ms),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => continue,
            }
        }
    }

    /// Sends an RTP packet, if any: the one a frame of ours made when it came
    /// ([`MediaSession::queue_audio`]).
    pub fn send_rtp(&self, rtp: Option<(SocketAddr, Vec<u8>)>) {
        if let Some((to, packet)) = rtp {
            let _ = self.rtp.send_to(&packet, to);
        }
    }

    /// Sends the tick's RTP packet, and an RTCP report when one is due (`ntp`: the wall
    /// clock as an NTP timestamp).
    pub fn send(
        &self,
        media: &mut MediaSession,
        rtp: Option<(SocketAddr, Vec<u8>)>,
        now_ms: u64,
        ntp: u64,
    ) {
        self.send_rtp(rtp);
        if let Some((to, report)) = media.poll_rtcp(now_ms, ntp) {
            // Muxed RTCP (a=rtcp-mux) leaves from the RTP port, as the peer expects.
            let socket = if media.rtcp_muxed() {
                &self.rtp
            } else {
                &self.rtcp
            };
            let _ = socket.send_to(&report, to);
        }
    }
}
