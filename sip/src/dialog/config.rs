//! The endpoint's settings, as the application hands them to
//! [`SipSession::new`](super::SipSession::new).
//!
//! Owns: [`EndpointConfig`] and its parts: the trust allowlist ([`IpNet`], written
//! `10.0.0.0/8` or as a bare address), the inbound digest credentials ([`InboundAuth`]), the
//! outbound registration ([`RegistrationConfig`]), and the flood limits (the per-source
//! [`SourceLimits`], the half-open dialogs allowed and their ACK timeout).
//!
//! Invariants: plain data with no IO; an [`IpNet`] always has a prefix length that fits its
//! address family, so [`IpNet::contains`] never shifts out of range. Reading these from a file
//! and naming bad keys is the application's config's concern.

use std::net::{IpAddr, SocketAddr};

use crate::flood::SourceLimits;
use crate::sdp::Codec;

/// An IPv4/IPv6 network for the allowlist, e.g. `10.0.0.0/8` or a bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: bad prefix length"))?,
            None => max,
        };
        Ok(IpNet { addr, prefix_len })
    }
}

impl IpNet {
    /// Whether the address is inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - self.prefix_len as u32)
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - self.prefix_len as u32)
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Credentials for inbound digest challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundAuth {
    pub realm: String,
    pub username: String,
    pub password: String,
}

/// Outbound registration to a trunk or PBX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// The registrar's address.
    pub registrar: SocketAddr,
    /// The domain in the AOR (`sip:username@domain`); the registrar's IP when empty.
    pub domain: String,
    pub username: String,
    pub password: String,
    pub expires_s: u32,
}

/// Whether calls use SRTP (SDES keys in the SDP, RFC 4568).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpPolicy {
    /// An `RTP/SAVP` offer is refused (488).
    Off,
    /// An `RTP/SAVP` offer is answered with SRTP, a plain one with plain RTP.
    #[default]
    Optional,
    /// Only `RTP/SAVP` offers are taken; a plain one is refused (488).
    Required,
}

/// The endpoint's settings.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The address we put in Via, Contact and SDP (the public address behind NAT).
    pub advertised_ip: IpAddr,
    /// Our SIP port (for Via and Contact).
    pub sip_port: u16,
    /// Our SIP-over-TLS port, when we serve TLS (for Via and the `sips:` Contact).
    pub tls_port: Option<u16>,
    pub user_agent: String,
    /// Codecs in preference order.
    pub codecs: Vec<Codec>,
    /// Sources trusted without a challenge; empty means all when no digest is configured.
    pub allow_from: Vec<IpNet>,
    /// Digest credentials callers outside the allowlist must present.
    pub inbound_auth: Option<InboundAuth>,
    /// Our session interval when the caller supports timers (0 turns timers off).
    pub session_expires_s: u32,
    /// How long a new call rings (180 sent) before it is offered to the application; a CANCEL
    /// in that time ends it without the application ever seeing it. 0 offers it at once.
    pub answer_delay_ms: u64,
    pub registration: Option<RegistrationConfig>,
    /// Per-source rate limits and blocks.
    pub limits: SourceLimits,
    /// Calls answered (or ringing) whose ACK has not come yet, at most; a new INVITE beyond
    /// this pushes out the oldest of them.
    pub max_half_open: usize,
    /// How long an answered call waits for its ACK before it is dropped.
    pub ack_timeout_ms: u64,
    /// SRTP.
    pub srtp: SrtpPolicy,
}
