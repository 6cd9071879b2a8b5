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

/// Abuse limits on the web side (`[web.limits]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebLimitsConfig {
    /// Requests per second one client address may make to the call routes (`/api/call`,
    /// `/api/ws`, the events sockets), on average (0: no limit).
    pub requests_per_s: f64,
    /// Requests a client may make at once above that average.
    pub request_burst: f64,
    /// Calls per second one client address may start (`POST /api/call`, `/api/ws`), on
    /// average (0: no limit).
    pub calls_per_s: f64,
    /// Calls a client may start at once above that average.
    pub call_burst: f64,
    /// How long a client over a limit gets 429 on the call routes.
    pub block_s: u64,
    /// Open connections from one address, at most (a slowloris client holding connections
    /// open reaches this and no more).
    pub max_connections_per_ip: usize,
    /// Open connections in all, at most.
    pub max_connections: usize,
    /// Messages per second a page may send on a WebSocket; a socket over it is closed.
    pub ws_messages_per_s: u32,
    /// The largest message a page may send on an events WebSocket, in bytes.
    pub max_ws_message_bytes: usize,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`127.0.0.1`, `10.0.0.0/8`);
    /// empty: the peer address is the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for WebLimitsConfig {
    fn default() -> Self {
        Self {
            requests_per_s: 10.0,
            request_burst: 60.0,
            calls_per_s: 1.0,
            call_burst: 10.0,
            block_s: 60,
            max_connections_per_ip: 64,
            max_connections: 4096,
            ws_messages_per_s: 20,
            max_ws_message_bytes: 4096,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The `[web]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
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
    /// Serve the demo business systems at `/demo` (the demo flows' webhooks call them). Unset:
    /// only while `listen` is a loopback address and no reverse proxy is trusted (a demo on one
    /// machine), never on a network unless set to true.
    pub demo: Option<bool>,
    /// Abuse limits (`[web.limits]`).
    pub limits: WebLimitsConfig,
    /// HTTPS: the certificate chain (PEM). With `tls_key`, the server speaks only HTTPS, and
    /// reloads both files on SIGHUP. A browser gives the microphone only to a secure origin
    /// (HTTPS, or `localhost`).
    pub tls_cert: Option<PathBuf>,
    /// HTTPS: the private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
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
            demo: None,
            limits: WebLimitsConfig::default(),
            tls_cert: None,
            tls_key: None,
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
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(invalid("tls_key", "tls_cert and tls_key go together"));
        }
        let limits = &self.limits;
        for (key, value) in [
            ("limits.requests_per_s", limits.requests_per_s),
            ("limits.request_burst", limits.request_burst),
            ("limits.calls_per_s", limits.calls_per_s),
            ("limits.call_burst", limits.call_burst),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(invalid(key, "must be a number, 0 or more"));
            }
        }
        if limits.max_connections_per_ip == 0 || limits.max_connections == 0 {
            return Err(invalid(
                "limits.max_connections_per_ip",
                "connection caps must be at least 1",
            ));
        }
        if limits.max_ws_message_bytes < 256 {
            return Err(invalid(
                "limits.max_ws_message_bytes",
                "must be at least 256",
            ));
        }
        for proxy in &limits.trusted_proxies {
            if let Err(message) = proxy.parse::<hotline_sip::dialog::IpNet>() {
                return Err(invalid("limits.trusted_proxies", &message));
            }
        }
        if self.ice_disconnected_timeout_ms == 0 || self.ice_failed_timeout_ms == 0 {
            return Err(invalid(
                "ice_failed_timeout_ms",
                "ICE timeouts must be above 0",
            ));
        }
        Ok(())
    }

    /// Whether `/demo` is served (see [`WebConfig::demo`]). A loopback `listen` with trusted
    /// proxies is a server behind a reverse proxy, on a network: no demo unless set.
    pub fn serves_demo(&self) -> bool {
        self.demo.unwrap_or_else(|| {
            self.listen.ip().is_loopback() && self.limits.trusted_proxies.is_empty()
        })
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
        assert!(
            config.serves_demo(),
            "a local demo has its business systems"
        );
        let network = WebConfig {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..WebConfig::default()
        };
        assert!(
            !network.serves_demo(),
            "a server on a network does not, unless told"
        );
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
