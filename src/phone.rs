//! Phone callers: maps the `hotline-sip` edge onto live calls.
//!
//! Owns: the `[sip]` config section, and turning each answered SIP call into a call on
//! [`Engines::start_call_on`] (all transports share `server.max_calls`; at the limit a caller
//! gets 486 Busy Here with Retry-After, and while the server shuts down 503 with Retry-After)
//! with a [`PhoneEdge`]: the call's driver reads the line's media task and writes to it
//! directly, converting the line's PCM rate to the pipeline's 16 kHz frames and back (8 kHz
//! G.711 is resampled; G.722 and Opus already decode to 16 kHz and pass straight through).
//! Invariants: exactly one caller frame per media tick reaches the session, and nothing else
//! answers it; a caller's hang-up reaches the call as [`CallInput::Hangup`] exactly once. A
//! transfer goes out as REFER with the call's context (record id, reason, last intent and
//! slots) and its failure comes back to the call as [`CallInput::TransferFailed`]; the call
//! stays up then. The line's media counters at hang-up become the record's `call_end`
//! ([`call_media`]).

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::watch;

use hotline_media::MediaCounters;
use hotline_sip::dialog::{EndpointConfig, InboundAuth, IpNet, RegistrationConfig};
use hotline_sip::driver::{
    CallAcceptor, PhoneCall, PhoneCommand, PhoneConfig, PhoneEvent, PhoneServer, Refusal,
};
use hotline_sip::sdp::Codec;

use crate::audio::resample::StreamResampler;
use crate::audio::{Frame, FRAME_SAMPLES, SAMPLE_RATE_HZ};
use crate::call::edge::{CallerEdge, TransferContext};
use crate::call::{CallError, CallInfo, CallInput, Engines};
use crate::session::event::CallMedia;
use crate::session::EndReason;

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

/// The `[sip]` section: phone callers over SIP and RTP.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
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
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 5060,
            tcp: true,
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
        Ok(PhoneConfig {
            bind_ip: self.bind_ip,
            sip_port: self.port,
            tcp: self.tcp,
            rtp_port_min: self.rtp_port_min,
            rtp_port_max: self.rtp_port_max,
            rtp_timeout_ms: self.rtp_timeout_ms,
            busy_retry_after_s: self.busy_retry_after_s,
            endpoint: EndpointConfig {
                advertised_ip: self.public_ip.unwrap_or(self.bind_ip),
                sip_port: self.port,
                user_agent: self.user_agent.clone(),
                codecs: self.codec_preference()?,
                allow_from: self.allowlist()?,
                inbound_auth,
                session_expires_s: self.session_expires_s,
                answer_delay_ms: self.answer_delay_ms,
                registration,
            },
        })
    }
}

/// Serves phone callers until `shutdown` says stop (the `hotline serve` transport).
pub async fn run(engines: Arc<Engines>, shutdown: watch::Receiver<bool>) {
    let config = engines.config.sip.clone();
    if !config.enabled {
        return;
    }
    match bind(&config).await {
        Ok(server) => {
            tracing::info!(sip = %server.local_addr(), tcp = config.tcp, "answering phone calls");
            serve(server, engines, shutdown).await;
        }
        Err(e) => tracing::error!("phone line: {e}"),
    }
}

/// Binds the phone edge for a config (tests bind port 0 and read the address).
pub async fn bind(config: &SipConfig) -> Result<PhoneServer, PhoneBindError> {
    let phone = config.phone_config().await?;
    Ok(PhoneServer::bind(phone).await?)
}

/// The phone edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum PhoneBindError {
    #[error(transparent)]
    Config(#[from] SipConfigError),
    #[error(transparent)]
    Phone(#[from] hotline_sip::driver::PhoneError),
}

/// Runs a bound phone edge against the engines until `shutdown` says stop.
pub async fn serve(
    server: PhoneServer,
    engines: Arc<Engines>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = Arc::new(EngineAcceptor { engines });
    server
        .run(acceptor, async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await;
}

/// Starts a live call for each phone call.
struct EngineAcceptor {
    engines: Arc<Engines>,
}

impl CallAcceptor for EngineAcceptor {
    fn accept(&self, call: PhoneCall) -> Result<(), Refusal> {
        let mut vars = BTreeMap::new();
        for (name, value) in &call.headers {
            // Repeated headers are joined, as HTTP does.
            vars.entry(format!("sip.{}", name.to_ascii_lowercase()))
                .and_modify(|v: &mut String| {
                    v.push_str(", ");
                    v.push_str(value);
                })
                .or_insert_with(|| value.clone());
        }
        vars.insert("sip.call_id".into(), call.id.0.clone());
        let info = CallInfo {
            transport: call.transport.record_name().to_string(),
            from: Some(call.from.clone()),
            to: Some(call.to.clone()),
            codec: call.codec.clone(),
            language: None,
            flow: None,
            vars,
            tracks_transfers: true,
        };
        let sip_call = call.id.clone();
        let from = call.from.clone();
        let codec = call.codec.clone();
        match self
            .engines
            .start_call_on(info, Box::new(PhoneEdge::new(call)))
        {
            Ok(started) => {
                tracing::info!(call = %started.id, sip_call = %sip_call, from = %from, codec = codec.as_deref().unwrap_or("none"), "phone call answered");
                Ok(())
            }
            Err(CallError::Busy { active }) => {
                tracing::warn!(active, "phone call refused: busy");
                Err(Refusal::Busy)
            }
            Err(CallError::Closed) => {
                // 503 with Retry-After: the caller's proxy tries another server.
                tracing::info!(%from, "phone call refused: the server is shutting down");
                Err(Refusal::Unavailable)
            }
            Err(e) => {
                tracing::error!("phone call refused: {e}");
                Err(Refusal::Unavailable)
            }
        }
    }
}

/// Converts a stream of PCM to exact frames at another rate (or the same rate: then it only
/// re-cuts frames, with no filter and no delay).
struct Reframer {
    same_rate: bool,
    resampler: Option<StreamResampler>,
    pending: VecDeque<i16>,
    frame_samples: usize,
}

impl Reframer {
    fn new(from_hz: u32, to_hz: u32, frame_samples: usize) -> Self {
        let resampler = if from_hz == to_hz {
            None
        } else {
            match StreamResampler::new(from_hz, to_hz) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!("phone audio cannot be converted: {e}");
                    None
                }
            }
        };
        Self {
            same_rate: from_hz == to_hz,
            resampler,
            pending: VecDeque::new(),
            frame_samples,
        }
    }

    /// Feeds one frame in and returns exactly one frame out (silence while the filter fills).
    fn convert(&mut self, input: &[i16]) -> Vec<i16> {
        if self.same_rate {
            self.pending.extend(input);
        } else if let Some(resampler) = self.resampler.as_mut() {
            self.pending.extend(resampler.process(input));
        }
        // Never let the queue grow: keep at most two frames.
        while self.pending.len() > self.frame_samples * 2 {
            self.pending.pop_front();
        }
        if self.pending.len() >= self.frame_samples {
            self.pending.drain(..self.frame_samples).collect()
        } else {
            vec![0; self.frame_samples]
        }
    }
}

/// The phone line as a call's edge ([`CallerEdge`]): the call driver reads the media task's
/// events and writes its commands directly, one hop each way. The line's PCM (8 kHz for G.711,
/// 16 kHz for G.722 and Opus) becomes the pipeline's 16 kHz frames, one per media tick, and the
/// bot's frames go back at the line's rate; both conversions run on the driver's task.
pub struct PhoneEdge {
    call: PhoneCall,
    to_pipeline: Reframer,
    to_line: Reframer,
    /// The line's counters, once its hang-up has brought them.
    media: Option<CallMedia>,
    /// The line has hung up (its last event has come).
    down: bool,
}

impl PhoneEdge {
    /// The edge of an answered phone call.
    pub fn new(call: PhoneCall) -> Self {
        let line_rate_hz = call.pcm_rate_hz;
        let line_frame = (line_rate_hz / 50) as usize;
        Self {
            to_pipeline: Reframer::new(line_rate_hz, SAMPLE_RATE_HZ, FRAME_SAMPLES),
            to_line: Reframer::new(SAMPLE_RATE_HZ, line_rate_hz, line_frame),
            call,
            media: None,
            down: false,
        }
    }

    /// The SIP call this edge carries.
    pub fn sip_call(&self) -> &PhoneCall {
        &self.call
    }

    /// Turns one line event into the call's input; `None` for an event that is only kept.
    fn input(&mut self, event: PhoneEvent) -> CallInput {
        match event {
            PhoneEvent::Audio(pcm) => {
                CallInput::Audio(Frame::from_slice(&self.to_pipeline.convert(&pcm)))
            }
            PhoneEvent::Dtmf(digit) => CallInput::Dtmf(digit),
            PhoneEvent::TransferFailed { reason } => {
                tracing::warn!(sip_call = %self.call.id, %reason, "transfer failed; the call stays");
                CallInput::TransferFailed { reason }
            }
            PhoneEvent::Hangup { reason, media } => {
                self.down = true;
                self.media = media.as_ref().map(call_media);
                CallInput::Hangup {
                    reason: EndReason::from_code(&reason),
                }
            }
        }
    }
}

#[async_trait]
impl CallerEdge for PhoneEdge {
    async fn recv(&mut self) -> Option<CallInput> {
        if self.down {
            return None;
        }
        // Cancel-safe: nothing happens between the receive and the return.
        let event = self.call.events.recv().await?;
        Some(self.input(event))
    }

    fn send_audio(&mut self, frame: Frame) {
        let pcm = self.to_line.convert(frame.samples());
        // A full queue means the media task is behind; a frame is dropped, not delayed.
        let _ = self.call.commands.try_send(PhoneCommand::Audio(pcm));
    }

    async fn transfer(&mut self, target: String, reason: String, context: &TransferContext) {
        tracing::info!(sip_call = %self.call.id, %target, %reason, "transferring");
        let headers = transfer_headers(context, &reason);
        let _ = self
            .call
            .commands
            .send(PhoneCommand::Transfer { target, headers })
            .await;
    }

    async fn hangup(&mut self, reason: &EndReason) {
        let _ = self
            .call
            .commands
            .send(PhoneCommand::Hangup {
                reason: reason.code().to_string(),
            })
            .await;
    }

    async fn media(&mut self) -> Option<CallMedia> {
        // After our hang-up the line's last event brings the counters.
        while !self.down {
            let event = self.call.events.recv().await?;
            if matches!(event, PhoneEvent::Hangup { .. }) {
                self.input(event);
            }
        }
        self.media
    }
}

/// The record's view of a line's counters (`call_end`), for every transport: the phone line
/// and the web phone count with the same [`MediaCounters`].
pub fn call_media(counters: &MediaCounters) -> CallMedia {
    CallMedia {
        packets_in: counters.packets_in,
        packets_out: counters.packets_out,
        lost: counters.lost,
        late: counters.late,
        concealed_frames: counters.concealed_frames,
        rtcp_in: counters.rtcp_in,
    }
}

/// The REFER headers for a transfer: record id, reason, last intent, slots.
fn transfer_headers(context: &TransferContext, reason: &str) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    if let Some(id) = &context.call_id {
        headers.push(("X-Hotline-Call".to_string(), id.clone()));
    }
    headers.push(("X-Hotline-Reason".to_string(), reason.to_string()));
    if let Some(intent) = &context.intent {
        headers.push(("X-Hotline-Intent".to_string(), intent.clone()));
    }
    if !context.slots.is_empty() {
        let joined: Vec<String> = context
            .slots
            .iter()
            .map(|(name, value)| format!("{name}={}", value.replace([';', ','], " ")))
            .collect();
        headers.push(("X-Hotline-Slots".to_string(), joined.join(";")));
    }
    headers
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

    #[test]
    fn a_16_khz_line_passes_through_unchanged() {
        let mut same = Reframer::new(16_000, 16_000, 320);
        let frame: Vec<i16> = (0..320).map(|i| (i * 37 % 2000) as i16).collect();
        assert_eq!(same.convert(&frame), frame, "no filter, no delay");
        assert_eq!(
            same.convert(&frame[..100]),
            vec![0; 320],
            "waits for a whole frame"
        );
        let next = same.convert(&frame);
        assert_eq!(&next[..100], &frame[..100]);
        assert_eq!(&next[100..], &frame[..220]);
    }

    #[test]
    fn reframer_gives_exact_frames() {
        let mut up = Reframer::new(8_000, 16_000, 320);
        let tone: Vec<i16> = (0..160)
            .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
            .collect();
        let mut loud = 0;
        for _ in 0..20 {
            let out = up.convert(&tone);
            assert_eq!(out.len(), 320);
            if crate::audio::rms(&out) > 1000.0 {
                loud += 1;
            }
        }
        assert!(loud >= 17, "{loud}");
    }
}
