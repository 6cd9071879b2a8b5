//! Phone callers: maps the `hotline-sip` edge onto live calls.
//!
//! Owns: the `[sip]` config section, and turning each connected SIP call into a call on
//! [`Engines::start_call_on`] (all transports share `server.max_calls`; at the limit a caller
//! gets 486 Busy Here with Retry-After, and while the server shuts down 503 with Retry-After;
//! both are checked at the INVITE, and the call itself starts at the ACK)
//! with a [`PhoneEdge`]: the call's driver reads the line's media task and writes to it
//! directly, converting the line's PCM rate to the pipeline's 16 kHz frames and back (8 kHz
//! G.711 is resampled; G.722 and Opus already decode to 16 kHz and pass straight through).
//! Invariants: exactly one caller frame per media tick reaches the session, and nothing else
//! answers it; a caller's hang-up reaches the call as [`CallInput::Hangup`] exactly once. A
//! transfer goes out as REFER with the call's context (record id, reason, last intent and
//! slots) and its failure comes back to the call as [`CallInput::TransferFailed`]; the call
//! stays up then. The line's media counters at hang-up become the record's `call_end`
//! ([`call_media`]).

pub mod agent;
pub mod config;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use hotline_media::MediaCounters;
use hotline_sip::driver::{
    CallAcceptor, PhoneCall, PhoneCommand, PhoneEvent, PhoneServer, Refusal,
};

pub use config::{
    SipConfig, SipConfigError, SipLimitsConfig, SipRegistrationConfig, DEFAULT_CODECS,
};

use crate::audio::resample::StreamResampler;
use crate::audio::{Frame, FRAME_SAMPLES, SAMPLE_RATE_HZ};
use crate::call::edge::{CallerEdge, TransferContext};
use crate::call::{CallError, CallInfo, CallInput, Engines};
use crate::session::event::CallMedia;
use crate::session::EndReason;

/// Serves phone callers until `shutdown` says stop (the `hotline serve` transport).
pub async fn run(engines: Arc<Engines>, shutdown: watch::Receiver<bool>) {
    let config = engines.config.sip.clone();
    if !config.enabled {
        return;
    }
    match bind(&config).await {
        Ok(server) => {
            if config.open_to_everyone() {
                tracing::warn!(
                    sip = %server.local_addr(),
                    "SIP IS OPEN TO EVERYONE: sip.bind_ip is not loopback and neither sip.allow_from nor sip.auth_username is set, so anyone who reaches this port can call (and run up your trunk). Set one of them"
                );
            }
            if let Some(tls) = server.tls_cell() {
                tokio::spawn(hotline_sip::tls::reload_on_sighup(tls, "SIP"));
            }
            let tls = server.tls_addr().map(|a| a.to_string());
            tracing::info!(sip = %server.local_addr(), tcp = config.tcp, tls = tls.as_deref().unwrap_or("off"), "answering phone calls");
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
    fn admit(&self) -> Result<(), Refusal> {
        if self.engines.is_closed() {
            // 503 with Retry-After: the caller's proxy tries another server.
            tracing::info!("phone call refused: the server is shutting down");
            return Err(Refusal::Unavailable);
        }
        let active = self.engines.active_calls();
        if active >= self.engines.config.server.max_calls {
            tracing::warn!(active, "phone call refused: busy");
            return Err(Refusal::Busy);
        }
        Ok(())
    }

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
pub(crate) struct Reframer {
    same_rate: bool,
    resampler: Option<StreamResampler>,
    pending: VecDeque<i16>,
    frame_samples: usize,
}

impl Reframer {
    pub(crate) fn new(from_hz: u32, to_hz: u32, frame_samples: usize) -> Self {
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
    pub(crate) fn convert(&mut self, input: &[i16]) -> Vec<i16> {
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

    async fn send_audio(&mut self, frame: Frame) {
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

    fn flush(&mut self) {
        // Best effort: with the command queue full the flush is lost, and the frames already
        // queued play out (the media task holds at most a second of them).
        let _ = self.call.commands.try_send(PhoneCommand::Flush);
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
        underruns: counters.underruns,
        rtcp_in: counters.rtcp_in,
    }
}

/// The REFER headers for a transfer: record id, reason, last intent, slots.
pub(crate) fn transfer_headers(context: &TransferContext, reason: &str) -> Vec<(String, String)> {
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
