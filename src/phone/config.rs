//! The `[sip]` config section: phone callers over SIP and RTP, checked at start-up with errors
//! that name the key, and turned into the phone edge's own config.
//!
//! Depends on nothing of hotline's above it (only the `hotline-sip` crate's types), so the one
//! typed config (`crate::config`) can hold it without an import cycle.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Deserialize;

use hotline_sip::dialog::{EndpointConfig, InboundAuth, IpNet, RegistrationConfig, SrtpPolicy};
use hotline_sip::driver::PhoneConfig;
use hotline_sip::flood::SourceLimits;
use hotline_sip::sdp::Codec;

/// A `[sip]` value that parses but makes no sense; names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `sip.{key}`: {message}")]
pub struct SipConfigError {
    pub key: &'static str,
    pub message: String,
}

/// Outbound registration to a SIP trunk or PBX (`[sip.registration]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SipRegistrationConfig {
    /// The registrar, `host:port` (an IP or a name resolved at start-up).
    pub registrar: String,
    /// The domain of our address of record; the registrar's host when empty.
    #[serde(default)]
    pub domain: String,
    pub username: String,
    pub password: String,
    /// The registration lifetime we ask for.
    #[serde(default = "default_register_expires_s")]
    pub expires_s: u32,
}

/// The default `sip.codecs`: wideband first (see [`SipConfig::codecs`]).
pub const DEFAULT_CODECS: [&str; 4] = ["G722", "opus", "PCMU", "PCMA"];

/// The longest ringing before answer we allow (`sip.answer_delay_ms`).
const MAX_ANSWER_DELAY_MS: u64 = 30_000;

fn default_register_expires_s() -> u32 {
    3600
}

/// Flood limits (`[sip.limits]`), after Kamailio's pike and Asterisk's half-open handling.
/// Sources in `allow_from` (trusted trunks and PBXs) are never rate limited.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SipLimitsConfig {
    /// SIP messages per second one source address may send on average (0: no limit).
    pub messages_per_s: f64,
    /// Messages a source may send at once above that average.
    pub message_burst: f64,
    /// New calls (INVITEs) per second one source may start on average (0: no limit).
    pub calls_per_s: f64,
    /// New calls a source may start at once above that average.
    pub call_burst: f64,
    /// How long a source over a limit is blocked: everything it sends is dropped unread.
    pub block_s: u64,
    /// Calls answered but not yet confirmed by their ACK, at most; a new INVITE beyond this
    /// pushes out the oldest of them. They hold only an RTP port pair: the call itself (its
    /// session, recognizer, dialogue and record) starts at the ACK.
    pub max_half_open: usize,
    /// How long an answered call waits for its ACK before it is dropped (RFC 3261 allows 32 s;
    /// a caller that is really there answers in a round trip).
    pub ack_timeout_ms: u64,
    /// SIP over TCP and TLS: connections one address may hold open at most (a PBX or trunk
    /// needs a few; a client holding many idle ones is refused, not served).
    pub max_connections_per_ip: usize,
    /// SIP over TCP and TLS: connections open at most, from all addresses.
    pub max_connections: usize,
}

impl Default for SipLimitsConfig {
    fn default() -> Self {
        let limits = SourceLimits::default();
        Self {
            messages_per_s: limits.messages_per_s,
            message_burst: limits.message_burst,
            calls_per_s: limits.calls_per_s,
            call_burst: limits.call_burst,
            block_s: limits.block_ms / 1000,
            max_half_open: 64,
            ack_timeout_ms: 8_000,
            max_connections_per_ip: 32,
            max_connections: 1024,
        }
    }
}

/// The `[sip]` section: phone callers over SIP and RTP.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Answer SIP calls at all.
    pub enabled: bool,
    /// The address SIP and RTP sockets bind.
    pub bind_ip: IpAddr,
    /// The SIP port, for UDP and TCP.
    pub port: u16,
    /// Serve SIP over TCP as well as UDP.
    pub tcp: bool,
    /// SIP over TLS (RFC 3261 26; `sips:` in our Contact): the certificate chain (PEM). With
    /// `tls_key`, TLS is served on `tls_port`; both files are reloaded on SIGHUP.
    pub tls_cert: Option<std::path::PathBuf>,
    /// SIP over TLS: the private key (PEM).
    pub tls_key: Option<std::path::PathBuf>,
    /// The SIP-over-TLS port.
    pub tls_port: u16,
    /// SRTP with SDES keys (RFC 4568): `optional` answers an `RTP/SAVP` offer with SRTP and a
    /// plain one with RTP; `required` refuses plain RTP (488); `off` refuses SRTP (488). Keys
    /// travel in the SDP, so use it with SIP over TLS.
    pub srtp: String,
    /// The public address put in Contact and SDP when hotline is behind NAT; default `bind_ip`.
    pub public_ip: Option<IpAddr>,
    /// The RTP port range (even ports for RTP, the odd one above for RTCP).
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Codecs in preference order, from `PCMU`, `PCMA`, `G722` and `opus` (names are
    /// case-insensitive). The default puts wideband first: the recognizer runs at 16 kHz, and
    /// G.722 and Opus give it the 4–7 kHz band (consonants) that G.711's 8 kHz cuts off, with no
    /// resampling. G.722 leads because it costs a fraction of Opus's CPU per call and is what
    /// desk phones and PBXs offer; Opus, which survives loss better (FEC, PLC), comes next;
    /// G.711 (what carriers offer) last.
    pub codecs: Vec<String>,
    /// Sources trusted without a challenge (`10.0.0.0/8`, `192.0.2.7`). Empty: everyone when no
    /// digest credentials are set.
    pub allow_from: Vec<String>,
    /// Digest credentials callers outside `allow_from` must present (both or neither).
    pub auth_username: Option<String>,
    pub auth_password: Option<String>,
    /// The digest realm.
    pub auth_realm: String,
    /// The session-timer interval offered to callers that support timers (0: off).
    pub session_expires_s: u32,
    /// Hang up after this long without RTP from the caller.
    pub rtp_timeout_ms: u64,
    /// Retry-After seconds on 486 when all calls are taken.
    pub busy_retry_after_s: u32,
    /// How long a new call rings (180 Ringing) before it is answered; a caller who cancels in
    /// that time never becomes a call. 0 answers at once.
    pub answer_delay_ms: u64,
    pub user_agent: String,
    pub registration: Option<SipRegistrationConfig>,
    /// Flood limits (`[sip.limits]`).
    pub limits: SipLimitsConfig,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 5060,
            tcp: true,
            tls_cert: None,
            tls_key: None,
            tls_port: 5061,
            srtp: "optional".into(),
            public_ip: None,
            rtp_port_min: 20_000,
            rtp_port_max: 29_999,
            codecs: DEFAULT_CODECS.iter().map(|c| c.to_string()).collect(),
            allow_from: Vec::new(),
            auth_username: None,
            auth_password: None,
            auth_realm: "hotline".into(),
            session_expires_s: 1800,
            rtp_timeout_ms: 60_000,
            busy_retry_after_s: 30,
            answer_delay_ms: 0,
            user_agent: concat!("hotline/", env!("CARGO_PKG_VERSION")).into(),
            registration: None,
            limits: SipLimitsConfig::default(),
        }
    }
}

impl SipConfig {
    /// Checks the section; errors name the key.
    pub fn validate(&self) -> Result<(), SipConfigError> {
        self.codec_preference()?;
        self.allowlist()?;
        let invalid = |key, message: &str| {
            Err(SipConfigError {
                key,
                message: message.to_string(),
            })
        };
        if self.rtp_port_min > self.rtp_port_max || self.rtp_port_max == u16::MAX {
            return invalid(
                "rtp_port_min",
                "must not exceed rtp_port_max (and rtp_port_max < 65535)",
            );
        }
        if self.rtp_port_min != 0 && self.rtp_port_max - self.rtp_port_min < 1 {
            return invalid("rtp_port_max", "the range needs at least one even/odd pair");
        }
        if self.bind_ip.is_unspecified() && self.public_ip.is_none() {
            return invalid(
                "public_ip",
                "must be set when bind_ip is 0.0.0.0 or ::, for Contact and SDP",
            );
        }
        self.srtp_policy()?;
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return invalid("tls_key", "tls_cert and tls_key go together");
        }
        if self.auth_username.is_some() != self.auth_password.is_some() {
            return invalid(
                "auth_password",
                "auth_username and auth_password go together",
            );
        }
        if self.session_expires_s != 0
            && self.session_expires_s < hotline_sip::dialog::MIN_SESSION_EXPIRES_S
        {
            return invalid("session_expires_s", "must be 0 (off) or at least 90");
        }
        if self.answer_delay_ms > MAX_ANSWER_DELAY_MS {
            return invalid(
                "answer_delay_ms",
                "must be at most 30000 (callers and proxies give up on long ringing)",
            );
        }
        if self.rtp_timeout_ms < 1_000 {
            return invalid("rtp_timeout_ms", "must be at least 1000");
        }
        let limits = &self.limits;
        for (key, value) in [
            ("limits.messages_per_s", limits.messages_per_s),
            ("limits.message_burst", limits.message_burst),
            ("limits.calls_per_s", limits.calls_per_s),
            ("limits.call_burst", limits.call_burst),
        ] {
            if !value.is_finite() || value < 0.0 {
                return invalid(key, "must be a number, 0 or more");
            }
        }
        if limits.max_half_open == 0 {
            return invalid("limits.max_half_open", "must be at least 1");
        }
        if !(500..=32_000).contains(&limits.ack_timeout_ms) {
            return invalid("limits.ack_timeout_ms", "must be 500 to 32000");
        }
        if limits.max_connections_per_ip == 0 {
            return invalid("limits.max_connections_per_ip", "must be at least 1");
        }
        if limits.max_connections < limits.max_connections_per_ip {
            return invalid(
                "limits.max_connections",
                "must be at least limits.max_connections_per_ip",
            );
        }
        if let Some(registration) = &self.registration {
            if registration.expires_s < 60 {
                return invalid("registration.expires_s", "must be at least 60");
            }
            if !registration.registrar.contains(':') {
                return invalid("registration.registrar", "must be host:port");
            }
        }
        Ok(())
    }

    /// Where calls hotline places (to human agents) come from: this section's address, RTP
    /// range, timeout and codecs.
    pub fn outbound_config(&self) -> Result<hotline_sip::outbound::OutboundConfig, SipConfigError> {
        Ok(hotline_sip::outbound::OutboundConfig {
            bind_ip: self.bind_ip,
            advertised_ip: self.public_ip.unwrap_or(self.bind_ip),
            rtp_port_min: self.rtp_port_min,
            rtp_port_max: self.rtp_port_max,
            rtp_timeout_ms: self.rtp_timeout_ms,
            codecs: self.codec_preference()?,
        })
    }

    fn codec_preference(&self) -> Result<Vec<Codec>, SipConfigError> {
        let mut codecs = Vec::new();
        for name in &self.codecs {
            match Codec::from_name(name) {
                Some(codec) if codecs.contains(&codec) => {
                    return Err(SipConfigError {
                        key: "codecs",
                        message: format!("`{name}` is listed twice"),
                    })
                }
                Some(codec) => codecs.push(codec),
                None => {
                    return Err(SipConfigError {
                        key: "codecs",
                        message: format!("unknown codec `{name}` (known: PCMU, PCMA, G722, opus)"),
                    })
                }
            }
        }
        if codecs.is_empty() {
            return Err(SipConfigError {
                key: "codecs",
                message: "needs at least one codec".into(),
            });
        }
        Ok(codecs)
    }

    fn srtp_policy(&self) -> Result<SrtpPolicy, SipConfigError> {
        match self.srtp.to_ascii_lowercase().as_str() {
            "off" => Ok(SrtpPolicy::Off),
            "optional" => Ok(SrtpPolicy::Optional),
            "required" => Ok(SrtpPolicy::Required),
            other => Err(SipConfigError {
                key: "srtp",
                message: format!("unknown value `{other}` (valid: off, optional, required)"),
            }),
        }
    }

    fn allowlist(&self) -> Result<Vec<IpNet>, SipConfigError> {
        self.allow_from
            .iter()
            .map(|s| {
                s.parse::<IpNet>().map_err(|message| SipConfigError {
                    key: "allow_from",
                    message,
                })
            })
            .collect()
    }

    /// The phone edge's settings; resolves the registrar's name.
    pub async fn phone_config(&self) -> Result<PhoneConfig, SipConfigError> {
        self.validate()?;
        let registration = match &self.registration {
            None => None,
            Some(r) => {
                let registrar: SocketAddr = tokio::net::lookup_host(&r.registrar)
                    .await
                    .ok()
                    .and_then(|mut addrs| addrs.next())
                    .ok_or_else(|| SipConfigError {
                        key: "registration.registrar",
                        message: format!("cannot resolve `{}`", r.registrar),
                    })?;
                Some(RegistrationConfig {
                    registrar,
                    domain: r.domain.clone(),
                    username: r.username.clone(),
                    password: r.password.clone(),
                    expires_s: r.expires_s,
                })
            }
        };
        let inbound_auth = match (&self.auth_username, &self.auth_password) {
            (Some(username), Some(password)) => Some(InboundAuth {
                realm: self.auth_realm.clone(),
                username: username.clone(),
                password: password.clone(),
            }),
            _ => None,
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(
                hotline_sip::tls::TlsCell::open(cert, key, &[]).map_err(|e| SipConfigError {
                    key: "tls_cert",
                    message: e.to_string(),
                })?,
            ),
            _ => None,
        };
        Ok(PhoneConfig {
            bind_ip: self.bind_ip,
            sip_port: self.port,
            tcp: self.tcp,
            tls,
            tls_port: self.tls_port,
            rtp_port_min: self.rtp_port_min,
            rtp_port_max: self.rtp_port_max,
            rtp_timeout_ms: self.rtp_timeout_ms,
            busy_retry_after_s: self.busy_retry_after_s,
            max_connections_per_ip: self.limits.max_connections_per_ip,
            max_connections: self.limits.max_connections,
            endpoint: EndpointConfig {
                advertised_ip: self.public_ip.unwrap_or(self.bind_ip),
                sip_port: self.port,
                tls_port: None,
                user_agent: self.user_agent.clone(),
                codecs: self.codec_preference()?,
                allow_from: self.allowlist()?,
                inbound_auth,
                session_expires_s: self.session_expires_s,
                answer_delay_ms: self.answer_delay_ms,
                registration,
                limits: SourceLimits {
                    messages_per_s: self.limits.messages_per_s,
                    message_burst: self.limits.message_burst,
                    calls_per_s: self.limits.calls_per_s,
                    call_burst: self.limits.call_burst,
                    block_ms: self.limits.block_s.saturating_mul(1000),
                    max_sources: SourceLimits::default().max_sources,
                    exempt: self.allowlist()?,
                },
                max_half_open: self.limits.max_half_open,
                ack_timeout_ms: self.limits.ack_timeout_ms,
                srtp: self.srtp_policy()?,
            },
        })
    }

    /// Whether anyone who can reach the port can call: a non-loopback address with neither an
    /// allowlist nor digest credentials.
    pub fn open_to_everyone(&self) -> bool {
        !self.bind_ip.is_loopback() && self.allow_from.is_empty() && self.auth_username.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_key() {
        let mut c = SipConfig::default();
        assert!(c.validate().is_ok());
        c.codecs = vec!["G729".into()];
        assert_eq!(c.validate().unwrap_err().key, "codecs");
        c.codecs = vec!["PCMU".into(), "pcmu".into()];
        assert_eq!(c.validate().unwrap_err().key, "codecs");
        c.codecs = Vec::new();
        assert_eq!(c.validate().unwrap_err().key, "codecs");
        c = SipConfig {
            allow_from: vec!["10.0.0.0/99".into()],
            ..SipConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "allow_from");
        c = SipConfig {
            bind_ip: "0.0.0.0".parse().unwrap(),
            ..SipConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "public_ip");
        c = SipConfig {
            auth_username: Some("u".into()),
            ..SipConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "auth_password");
        c = SipConfig {
            answer_delay_ms: 60_000,
            ..SipConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "answer_delay_ms");
        c = SipConfig::default();
        c.limits.ack_timeout_ms = 60_000;
        assert_eq!(c.validate().unwrap_err().key, "limits.ack_timeout_ms");
        c.limits = SipLimitsConfig {
            calls_per_s: -1.0,
            ..SipLimitsConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "limits.calls_per_s");
        c = SipConfig {
            srtp: "sometimes".into(),
            ..SipConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "srtp");
    }

    #[test]
    fn every_built_in_codec_is_accepted_in_the_configured_order() {
        let c = SipConfig {
            codecs: vec!["opus".into(), "g722".into(), "PCMA".into(), "PCMU".into()],
            ..SipConfig::default()
        };
        assert_eq!(
            c.codec_preference().unwrap(),
            vec![Codec::Opus, Codec::G722, Codec::Pcma, Codec::Pcmu]
        );
        assert_eq!(
            SipConfig::default().codec_preference().unwrap(),
            vec![Codec::G722, Codec::Opus, Codec::Pcmu, Codec::Pcma]
        );
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus] {
            assert!(
                hotline_sip::codec::VoiceCodec::new(codec).is_ok(),
                "{codec:?} is built in"
            );
        }
    }
}
