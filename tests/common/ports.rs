//! Free ports on loopback, so that test binaries (and the peers they start) never collide.
//!
//! A single port comes from the kernel (bind port 0, read the port, let it go). A range (for
//! hotline's `rtp_port_min..=rtp_port_max`, or a peer that binds several ports in a row) is
//! probed: a random even base below the kernel's ephemeral range (so ports handed out for port 0
//! do not land in it), every port of the range bound on UDP and TCP at once, and another base
//! tried on any conflict. A port is free when returned; a process started a moment later takes
//! it (the window is small, and the randomness keeps parallel test binaries apart).

use std::net::{TcpListener, UdpSocket};
use std::ops::RangeInclusive;

use rand::Rng;

/// Where probed ranges start: at or above this, below the ephemeral ports.
const RANGE_FLOOR: u16 = 20_000;

/// A UDP port free on 127.0.0.1 right now.
pub fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a free UDP port");
    socket.local_addr().expect("local addr").port()
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free TCP port");
    listener.local_addr().expect("local addr").port()
}

/// A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a free UDP port");
        let port = udp.local_addr().expect("local addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1 after 100 tries");
}

/// The first port above the probed ranges: the start of the kernel's ephemeral range.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .filter(|&start: &u16| start > RANGE_FLOOR + 1_000)
        .unwrap_or(32_768)
}

/// `count` consecutive ports, starting at an even port, all free for UDP and TCP on 127.0.0.1.
pub fn free_port_range(count: u16) -> RangeInclusive<u16> {
    assert!((1..=1_000).contains(&count), "a range of 1 to 1000 ports");
    let ceiling = ephemeral_start() - count;
    let mut rng = rand::thread_rng();
    for _ in 0..200 {
        let base = rng.gen_range(RANGE_FLOOR / 2..ceiling / 2) * 2;
        let mut held = Vec::with_capacity(count as usize * 2);
        let all_free = (base..base + count).all(|port| {
            match (
                UdpSocket::bind(("127.0.0.1", port)),
                TcpListener::bind(("127.0.0.1", port)),
            ) {
                (Ok(udp), Ok(tcp)) => {
                    held.push((udp, tcp));
                    true
                }
                _ => false,
            }
        });
        if all_free {
            return base..=base + count - 1;
        }
    }
    panic!("no {count} free consecutive ports found between {RANGE_FLOOR} and {ceiling}");
}

/// A free RTP range for hotline's `[sip]` section: `pairs` even/odd RTP/RTCP pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPorts {
    pub min: u16,
    pub max: u16,
}

impl RtpPorts {
    /// Probes a free range of `pairs` RTP/RTCP pairs.
    pub fn free(pairs: u16) -> Self {
        let range = free_port_range(pairs * 2);
        Self {
            min: *range.start(),
            max: *range.end(),
        }
    }

    /// The `rtp_port_min`/`rtp_port_max` lines for the `[sip]` section.
    pub fn toml(&self) -> String {
        format!("rtp_port_min = {}\nrtp_port_max = {}\n", self.min, self.max)
    }

    /// Every port of the range.
    pub fn ports(&self) -> RangeInclusive<u16> {
        self.min..=self.max
    }
}
