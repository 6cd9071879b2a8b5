//! `hotline talk`: a developer talks to the bot through this machine's microphone and speaker.
//!
//! The local audio device is one more transport edge: cpal callbacks fill and drain two sample
//! queues at the device's rate and channel count, and a 20 ms paced loop moves frames between
//! them and the call, resampling to and from 16 kHz. Where no audio device exists, it says so.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use crate::audio::resample::StreamResampler;
use crate::audio::{Frame, FRAME_SAMPLES, SAMPLE_RATE_HZ};
use crate::call::{CallInfo, CallInput, CallOutput, Engines};
use crate::session::EventKind;

/// The local audio device could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TalkError {
    #[error("no audio {0} device: hotline talk needs a microphone and a speaker (on a server, call it over SIP or the web phone instead)")]
    NoDevice(&'static str),
    #[error("audio device: {0}")]
    Device(String),
    #[error("call: {0}")]
    Call(#[from] crate::call::CallError),
}

type Queue = Arc<Mutex<VecDeque<i16>>>;

/// Runs one call on the local microphone and speaker until the call ends or Ctrl-C.
pub async fn talk(engines: Arc<Engines>) -> Result<(), TalkError> {
    let host = cpal::default_host();
    let mic = host
        .default_input_device()
        .ok_or(TalkError::NoDevice("input"))?;
    let speaker = host
        .default_output_device()
        .ok_or(TalkError::NoDevice("output"))?;
    let mic_config = mic
        .default_input_config()
        .map_err(|_| TalkError::NoDevice("input"))?
        .config();
    let speaker_config = speaker
        .default_output_config()
        .map_err(|_| TalkError::NoDevice("output"))?
        .config();
    let (mic_hz, mic_channels) = (mic_config.sample_rate.0, usize::from(mic_config.channels));
    let (spk_hz, spk_channels) = (
        speaker_config.sample_rate.0,
        usize::from(speaker_config.channels),
    );

    let captured: Queue = Arc::default();
    let playback: Queue = Arc::default();
    let device_error = |e: cpal::StreamError| tracing::warn!("audio device: {e}");
    let sink = captured.clone();
    let input = mic
        .build_input_stream(
            &mic_config,
            move |data: &[f32], _| {
                let mut q = sink.lock().unwrap_or_else(|p| p.into_inner());
                // First channel only; keep at most 2 s so a stalled call cannot grow memory.
                q.extend(
                    data.iter()
                        .step_by(mic_channels)
                        .map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16),
                );
                let excess = q.len().saturating_sub(2 * mic_hz as usize);
                q.drain(..excess);
            },
            device_error,
            None,
        )
        .map_err(|e| TalkError::Device(e.to_string()))?;
    let source = playback.clone();
    let output = speaker
        .build_output_stream(
            &speaker_config,
            move |data: &mut [f32], _| {
                let mut q = source.lock().unwrap_or_else(|p| p.into_inner());
                for frame in data.chunks_mut(spk_channels) {
                    let s = q.pop_front().map_or(0.0, |s| f32::from(s) / 32768.0);
                    frame.iter_mut().for_each(|x| *x = s);
                }
            },
            device_error,
            None,
        )
        .map_err(|e| TalkError::Device(e.to_string()))?;
    input.play().map_err(|e| TalkError::Device(e.to_string()))?;
    output
        .play()
        .map_err(|e| TalkError::Device(e.to_string()))?;

    let mut to_16k = StreamResampler::new(mic_hz, SAMPLE_RATE_HZ)
        .map_err(|e| TalkError::Device(e.to_string()))?;
    let mut from_16k = StreamResampler::new(SAMPLE_RATE_HZ, spk_hz)
        .map_err(|e| TalkError::Device(e.to_string()))?;
    let mut call = engines.start_call(CallInfo {
        transport: "local".into(),
        ..CallInfo::default()
    })?;
    println!(
        "Talking to hotline (call {}). Speak after the greeting; Ctrl-C hangs up.",
        call.id
    );
    let mut pending: Vec<i16> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mic_frame = mic_hz as usize / 50;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let raw: Vec<i16> = {
                    let mut q = captured.lock().unwrap_or_else(|p| p.into_inner());
                    let n = q.len().min(mic_frame);
                    q.drain(..n).collect()
                };
                pending.extend(to_16k.process(&raw));
                let take = pending.len().min(FRAME_SAMPLES);
                let frame = Frame::from_slice(&pending[..take]);
                pending.drain(..take);
                if call.input.send(CallInput::Audio(frame)).await.is_err() {
                    break;
                }
            }
            Some(out) = call.output.recv() => match out {
                CallOutput::Audio(frame) => {
                    let samples = from_16k.process(frame.samples());
                    playback.lock().unwrap_or_else(|p| p.into_inner()).extend(samples);
                }
                CallOutput::Transfer { target, reason } => println!("-- transfer to {target} ({reason})"),
                CallOutput::Hangup { reason } => { println!("-- call ended ({reason})"); break; }
            },
            Ok(event) = call.events.recv() => match event.kind {
                EventKind::Transcript { text, is_final: true, .. } => println!("you: {text}"),
                EventKind::BotReply { text, .. } => println!("bot: {text}"),
                _ => {}
            },
            _ = tokio::signal::ctrl_c() => {
                let _ = call.input.send(CallInput::Hangup { reason: "caller.hangup".into() }).await;
                break;
            }
        }
    }
    // Let the bot's last words play out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}
