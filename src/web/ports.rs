//! Media UDP ports for WebRTC calls, from the configured range.
//!
//! A [`PortLease`] holds one port for one call and gives it back when dropped, so a call that
//! ends any way at all (hang-up, ICE failure, panic in its task) frees its port. Invariant: a
//! port is leased to at most one call at a time. With no range configured every lease is
//! port 0 (the OS picks a free ephemeral port per call).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

/// No port in the range is free.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no free media port in {min}..={max}")]
pub struct PortsExhausted {
    pub min: u16,
    pub max: u16,
}

/// The media port range and the ports in use.
#[derive(Debug, Clone)]
pub struct PortPool {
    ip: IpAddr,
    range: Option<(u16, u16)>,
    in_use: Arc<Mutex<BTreeSet<u16>>>,
}

impl PortPool {
    /// A pool over `min..=max` on `ip`; `None` for OS-chosen ports.
    pub fn new(ip: IpAddr, range: Option<(u16, u16)>) -> Self {
        Self {
            ip,
            range,
            in_use: Arc::new(Mutex::new(BTreeSet::new())),
        }
    }

    /// Leases a port that is free now (it is test-bound before it is handed out).
    pub fn lease(&self) -> Result<PortLease, PortsExhausted> {
        let Some((min, max)) = self.range else {
            return Ok(PortLease {
                addr: SocketAddr::new(self.ip, 0),
                pool: None,
            });
        };
        let mut in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        for port in min..=max {
            if in_use.contains(&port) {
                continue;
            }
            let addr = SocketAddr::new(self.ip, port);
            if UdpSocket::bind(addr).is_ok() {
                in_use.insert(port);
                return Ok(PortLease {
                    addr,
                    pool: Some(self.clone()),
                });
            }
        }
        Err(PortsExhausted { min, max })
    }

    /// Ports leased now.
    pub fn leased(&self) -> usize {
        self.in_use.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One call's media address; the port returns to the pool on drop.
#[derive(Debug)]
pub struct PortLease {
    addr: SocketAddr,
    pool: Option<PortPool>,
}

impl PortLease {
    /// The address to bind.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.in_use
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.addr.port());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_exclusive_and_return_on_drop() {
        // Find two adjacent free ports.
        let probe = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let base = probe.local_addr().expect("addr").port();
        drop(probe);
        let pool = PortPool::new("127.0.0.1".parse().expect("ip"), Some((base, base)));
        let first = pool.lease().expect("one port");
        assert_eq!(first.addr().port(), base);
        assert_eq!(
            pool.lease().expect_err("exhausted"),
            PortsExhausted {
                min: base,
                max: base
            }
        );
        drop(first);
        assert_eq!(pool.leased(), 0);
        assert_eq!(pool.lease().expect("free again").addr().port(), base);
    }

    #[test]
    fn no_range_means_ephemeral() {
        let pool = PortPool::new("127.0.0.1".parse().expect("ip"), None);
        assert_eq!(pool.lease().expect("lease").addr().port(), 0);
        assert_eq!(pool.leased(), 0);
    }
}
