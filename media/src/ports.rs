//! The RTP port pool: media UDP ports for calls, from a configured range, for every transport.
//!
//! Owns: which ports of the range are held, and where the next search starts. A phone call
//! takes an RTP/RTCP pair with [`PortPool::bind_pair`] (an even RTP port and the odd RTCP port
//! above it, RFC 3550 §11, both bound and handed over as sockets); a WebRTC call takes one port
//! with [`PortPool::lease`] (its stack binds it, with RTCP muxed). Without a range the OS picks:
//! a single lease is port 0, a pair is two ephemeral sockets (then the RTCP port is rarely
//! RTP + 1, and SDP must name it with `a=rtcp`).
//!
//! Invariants: a port is held by at most one lease at a time, and a [`PortLease`] gives its
//! ports back when dropped, so a call that ends any way at all (hang-up, ICE failure, a panic
//! in its task) frees them; every port handed out was free (bound, then released or kept) a
//! moment before; searches rotate through the range, so a port just freed is the last to be
//! used again (stray packets for the call that had it die out first).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard};

/// No lease could be made.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Every port (or pair) of the range is held or bound by someone else.
    #[error("no free media port in {min}..={max}")]
    Exhausted { min: u16, max: u16 },
    /// The OS would not give an ephemeral port.
    #[error("cannot bind a media port on {ip}: {source}")]
    Bind {
        ip: IpAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Shared between the pool's clones and its leases.
#[derive(Debug)]
struct Held {
    ports: BTreeSet<u16>,
    /// Where the next search starts.
    next: u16,
}

/// The media port range and the ports held now. Clones share the same pool.
#[derive(Debug, Clone)]
pub struct PortPool {
    ip: IpAddr,
    range: Option<(u16, u16)>,
    held: Arc<Mutex<Held>>,
}

impl PortPool {
    /// A pool over `min..=max` on `ip`; `None` for OS-chosen ports.
    pub fn new(ip: IpAddr, range: Option<(u16, u16)>) -> Self {
        let next = range.map_or(0, |(min, _)| min);
        Self {
            ip,
            range,
            held: Arc::new(Mutex::new(Held {
                ports: BTreeSet::new(),
                next,
            })),
        }
    }

    /// Starts the searches at a place in the range that `seed` picks, so a restarted server
    /// does not reuse the ports its last calls had.
    pub fn with_seed(self, seed: u64) -> Self {
        if let Some((min, max)) = self.range {
            let span = u64::from(max.saturating_sub(min)) + 1;
            // In the range, so it fits in u16.
            let offset = (seed % span) as u16;
            self.lock().next = min + offset;
        }
        self
    }

    /// The address ports are bound on.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ports held now.
    pub fn leased(&self) -> usize {
        self.lock().ports.len()
    }

    /// Leases one port that is free now (it is test-bound before it is handed out); the
    /// caller binds it. Without a range the lease is port 0: the OS picks when it is bound.
    pub fn lease(&self) -> Result<PortLease, PortError> {
        let Some((min, max)) = self.range else {
            return Ok(PortLease {
                addr: SocketAddr::new(self.ip, 0),
                rtcp_port: None,
                pool: None,
            });
        };
        let mut held = self.lock();
        let start = held.next.clamp(min, max);
        for port in rotation(min, max, start, 1) {
            if held.ports.contains(&port) {
                continue;
            }
            let addr = SocketAddr::new(self.ip, port);
            if UdpSocket::bind(addr).is_ok() {
                held.ports.insert(port);
                held.next = next_after(port, 1, min, max);
                return Ok(PortLease {
                    addr,
                    rtcp_port: None,
                    pool: Some(self.clone()),
                });
            }
        }
        Err(PortError::Exhausted { min, max })
    }

    /// Binds an RTP/RTCP pair: an even RTP port and the RTCP port above it, from the range;
    /// without a range, two OS-chosen ports.
    pub fn bind_pair(&self) -> Result<BoundPair, PortError> {
        let bind_error = |source| PortError::Bind {
            ip: self.ip,
            source,
        };
        let Some((min, max)) = self.range else {
            let rtp = UdpSocket::bind(SocketAddr::new(self.ip, 0)).map_err(bind_error)?;
            let rtcp = UdpSocket::bind(SocketAddr::new(self.ip, 0)).map_err(bind_error)?;
            let addr = rtp.local_addr().map_err(bind_error)?;
            let rtcp_port = rtcp.local_addr().map_err(bind_error)?.port();
            return Ok(BoundPair {
                rtp,
                rtcp,
                lease: PortLease {
                    addr,
                    rtcp_port: Some(rtcp_port),
                    pool: None,
                },
            });
        };
        let first = min.saturating_add(min % 2);
        let exhausted = PortError::Exhausted { min, max };
        if first >= max {
            return Err(exhausted);
        }
        let last = max - 1;
        let mut held = self.lock();
        let start = held.next.clamp(first, last);
        let start = start - (start - first) % 2;
        for port in rotation(first, last, start, 2) {
            if held.ports.contains(&port) || held.ports.contains(&(port + 1)) {
                continue;
            }
            let Ok(rtp) = UdpSocket::bind(SocketAddr::new(self.ip, port)) else {
                continue;
            };
            let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(self.ip, port + 1)) else {
                continue;
            };
            held.ports.insert(port);
            held.ports.insert(port + 1);
            held.next = next_after(port, 2, first, last);
            return Ok(BoundPair {
                rtp,
                rtcp,
                lease: PortLease {
                    addr: SocketAddr::new(self.ip, port),
                    rtcp_port: Some(port + 1),
                    pool: Some(self.clone()),
                },
            });
        }
        Err(exhausted)
    }

    fn release(&self, lease: &PortLease) {
        let mut held = self.lock();
        held.ports.remove(&lease.addr.port());
        if let Some(rtcp) = lease.rtcp_port {
            held.ports.remove(&rtcp);
        }
    }
}

/// The ports `first..=last` in steps of `step`, starting at `start` and wrapping around once.
fn rotation(first: u16, last: u16, start: u16, step: u16) -> impl Iterator<Item = u16> {
    let from_start = (start..=last).step_by(step as usize);
    let wrapped = (first..start).step_by(step as usize);
    from_start.chain(wrapped)
}

/// Where the search after `port` starts.
fn next_after(port: u16, step: u16, first: u16, last: u16) -> u16 {
    match port.checked_add(step) {
        Some(next) if next <= last => next,
        _ => first,
    }
}

/// One call's media ports; they return to the pool on drop.
#[derive(Debug)]
pub struct PortLease {
    addr: SocketAddr,
    rtcp_port: Option<u16>,
    pool: Option<PortPool>,
}

impl PortLease {
    /// The (RTP) address to bind or that is bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The RTCP port of a pair.
    pub fn rtcp_port(&self) -> Option<u16> {
        self.rtcp_port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.release(self);
        }
    }
}

/// A bound RTP/RTCP socket pair and the lease that holds its ports.
#[derive(Debug)]
pub struct BoundPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub lease: PortLease,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> IpAddr {
        "127.0.0.1".parse().expect("ip")
    }

    /// A free even port with the next one free too, found by binding.
    fn free_even_pair() -> u16 {
        for _ in 0..100 {
            let probe = UdpSocket::bind("127.0.0.1:0").expect("bind");
            let port = probe.local_addr().expect("addr").port();
            let even = port - port % 2;
            drop(probe);
            if even > 1024
                && UdpSocket::bind(("127.0.0.1", even)).is_ok()
                && UdpSocket::bind(("127.0.0.1", even + 1)).is_ok()
            {
                return even;
            }
        }
        panic!("no free pair of ports");
    }

    #[test]
    fn single_leases_are_exclusive_and_return_on_drop() {
        let base = free_even_pair();
        let pool = PortPool::new(loopback(), Some((base, base)));
        let first = pool.lease().expect("one port");
        assert_eq!(first.addr().port(), base);
        assert!(matches!(
            pool.lease(),
            Err(PortError::Exhausted { min, max }) if min == base && max == base
        ));
        drop(first);
        assert_eq!(pool.leased(), 0);
        assert_eq!(pool.lease().expect("free again").addr().port(), base);
    }

    #[test]
    fn no_range_means_ephemeral() {
        let pool = PortPool::new(loopback(), None);
        assert_eq!(pool.lease().expect("lease").addr().port(), 0);
        let pair = pool.bind_pair().expect("two OS ports");
        let rtp = pair.rtp.local_addr().expect("addr").port();
        assert_ne!(rtp, 0);
        assert_eq!(pair.lease.addr().port(), rtp);
        assert_eq!(
            pair.lease.rtcp_port(),
            Some(pair.rtcp.local_addr().expect("addr").port())
        );
        assert_eq!(pool.leased(), 0, "the OS holds ephemeral ports");
    }

    #[test]
    fn pairs_are_even_and_odd_and_held_until_dropped() {
        let base = free_even_pair();
        // An odd minimum: RTP still starts on the even port above it.
        let pool = PortPool::new(loopback(), Some((base - 1, base + 1)));
        let pair = pool.bind_pair().expect("one pair fits");
        assert_eq!(pair.lease.addr().port(), base);
        assert_eq!(pair.lease.rtcp_port(), Some(base + 1));
        assert_eq!(pair.rtcp.local_addr().expect("addr").port(), base + 1);
        assert_eq!(pool.leased(), 2);
        assert!(matches!(pool.bind_pair(), Err(PortError::Exhausted { .. })));
        drop(pair);
        assert_eq!(pool.leased(), 0);
        assert!(pool.bind_pair().is_ok(), "free again");
        // A range with room for no pair at all.
        let tiny = PortPool::new(loopback(), Some((base + 1, base + 1)));
        assert!(matches!(tiny.bind_pair(), Err(PortError::Exhausted { .. })));
    }

    #[test]
    fn searches_rotate_through_the_range() {
        assert_eq!(
            rotation(10, 16, 14, 2).collect::<Vec<_>>(),
            vec![14, 16, 10, 12]
        );
        assert_eq!(rotation(5, 7, 5, 1).collect::<Vec<_>>(), vec![5, 6, 7]);
        assert_eq!(next_after(16, 2, 10, 16), 10);
        assert_eq!(next_after(u16::MAX, 1, 1, u16::MAX), 1);
        let seeded = PortPool::new(loopback(), Some((40_000, 40_009))).with_seed(7);
        assert_eq!(seeded.lock().next, 40_007);
    }
}
