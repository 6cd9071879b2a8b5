//! `[web]`: the HTTP server (web phone, signalling, live events, health) and WebRTC media.
//!
//! Defaults suit one machine: the server listens on `127.0.0.1:8080`, so the web phone is at
//! `http://localhost:8080`, and media binds the same address. A deployment sets
//! `listen = "0.0.0.0:8080"`, `public_ip` (1:1 NAT), a UDP port range it opens in its firewall,
//! and STUN/TURN servers for callers behind NAT. Invariant after [`WebConfig::validate`]:
//! limits are non-zero and the port range is ordered.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

/// A `[web]` value that parses but makes no sense; names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `web.{key}`: {message}")]
pub struct WebConfigError {
    pub key: &'static str,
    pub message: String,
}

/// A TURN server for callers whose network blocks direct UDP.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TurnServerConfig {
    /// `turn:host:port` or `turns:host:port` URLs.
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// The `[web]` section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Serve HTTP and WebRTC at all.
    pub enabled: bool,
    /// The HTTP listen address.
    pub listen: SocketAddr,
    /// Serve the web phone from this folder instead of the copy built into the binary (for
    /// editing the page without rebuilding). Missing files fall back to the built-in copy.
    pub assets_dir: Option<PathBuf>,
    /// The most WebRTC calls at once (the server-wide `server.max_calls` applies as well).
    pub max_calls: usize,
    /// The largest SDP offer accepted, in bytes.
    pub max_offer_bytes: usize,
    /// The address media sockets bind; default: the `listen` address's IP. Binding `0.0.0.0`
    /// offers every interface except loopback.
    pub media_ip: Option<IpAddr>,
    /// The public address of a 1:1 NAT, advertised in host candidates instead of `media_ip`.
    pub public_ip: Option<IpAddr>,
    /// The lowest UDP port for media; 0 with `udp_port_max = 0` means any free port.
    pub udp_port_min: u16,
    /// The highest UDP port for media.
    pub udp_port_max: u16,
    /// STUN server URLs (`stun:host:port`), for server-reflexive candidates.
    pub stun_urls: Vec<String>,
    /// TURN servers.
    pub turn_servers: Vec<TurnServerConfig>,
    /// How long a call may take from the answer to connected media before it is dropped.
    pub connect_timeout_ms: u64,
    /// Silence on the ICE path after which the caller counts as disconnected.
    pub ice_disconnected_timeout_ms: u64,
    /// Time disconnected after which ICE fails and the call ends.
    pub ice_failed_timeout_ms: u64,
    /// How long gathering local candidates may take before the answer is sent with what we have.
    pub gather_timeout_ms: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            assets_dir: None,
            max_calls: 16,
            max_offer_bytes: 16 * 1024,
            media_ip: None,
            public_ip: None,
            udp_port_min: 0,
            udp_port_max: 0,
            stun_urls: Vec::new(),
            turn_servers: Vec::new(),
            connect_timeout_ms: 15_000,
            ice_disconnected_timeout_ms: 3_000,
            ice_failed_timeout_ms: 5_000,
            gather_timeout_ms: 2_000,
        }
    }
}

impl WebConfig {
    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), WebConfigError> {
        let invalid = |key, message: &str| WebConfigError {
            key,
            message: message.to_string(),
        };
        if self.max_calls == 0 {
            return Err(invalid("max_calls", "must be at least 1"));
        }
        if self.max_offer_bytes < 256 {
            return Err(invalid("max_offer_bytes", "must be at least 256"));
        }
        if (self.udp_port_min == 0) != (self.udp_port_max == 0) {
            return Err(invalid(
                "udp_port_min",
                "set both udp_port_min and udp_port_max, or neither",
            ));
        }
        if self.udp_port_min > self.udp_port_max {
            return Err(invalid("udp_port_max", "must not be below udp_port_min"));
        }
        for url in &self.stun_urls {
            if !url.starts_with("stun:") && !url.starts_with("stuns:") {
                return Err(invalid("stun_urls", &format!("{url:?} is not a stun: URL")));
            }
        }
        for turn in &self.turn_servers {
            if turn
                .urls
                .iter()
                .any(|u| !u.starts_with("turn:") && !u.starts_with("turns:"))
            {
                return Err(invalid(
                    "turn_servers",
                    "every URL must start with turn: or turns:",
                ));
            }
        }
        if self.connect_timeout_ms < 1_000 {
            return Err(invalid("connect_timeout_ms", "must be at least 1000"));
        }
        if self.ice_disconnected_timeout_ms == 0 || self.ice_failed_timeout_ms == 0 {
            return Err(invalid(
                "ice_failed_timeout_ms",
                "ICE timeouts must be above 0",
            ));
        }
        Ok(())
    }

    /// The IP media sockets bind.
    pub fn media_bind_ip(&self) -> IpAddr {
        self.media_ip.unwrap_or(self.listen.ip())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_local() {
        let config = WebConfig::default();
        config.validate().expect("defaults validate");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.media_bind_ip().to_string(), "127.0.0.1");
    }

    #[test]
    fn half_a_port_range_names_the_key() {
        let config = WebConfig {
            udp_port_min: 40000,
            ..WebConfig::default()
        };
        let err = config.validate().expect_err("half range");
        assert_eq!(err.key, "udp_port_min");
        assert!(err.to_string().contains("web.udp_port_min"));
    }

    #[test]
    fn parses_a_deployment_section() {
        let text = r#"
            listen = "0.0.0.0:8443"
            public_ip = "203.0.113.7"
            udp_port_min = 40000
            udp_port_max = 40100
            stun_urls = ["stun:stun.example.org:3478"]
            [[turn_servers]]
            urls = ["turn:turn.example.org:3478"]
            username = "u"
            credential = "p"
        "#;
        let config: WebConfig = toml::from_str(text).expect("parses");
        config.validate().expect("valid");
        assert_eq!(config.media_bind_ip().to_string(), "0.0.0.0");
        assert_eq!(config.turn_servers.len(), 1);
        let bad: Result<WebConfig, _> = toml::from_str("listen_addr = \"x\"");
        assert!(bad.is_err(), "unknown keys are rejected");
    }
}
