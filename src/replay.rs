//! `hotline replay`: a recorded caller through the real pipeline, on a virtual clock.
//!
//! The caller's WAVs play as successive turns: the first after the greeting, each next one a
//! configurable pause after the bot's reply. The engines really run; each result is fed back at
//! `now + compute time`, as it would arrive live (the recognizer is one worker, so its jobs queue
//! behind each other). The clock then advances in 20 ms ticks without waiting, so a replay
//! runs faster than real time and is repeatable apart from engine compute times.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audio::wav::read_wav_mono_16k;
use crate::audio::{frames_of, Frame};
use crate::call::core::CallCore;
use crate::call::record::CallRecord;
use crate::call::virtual_call::{Timing, VirtualCall};
use crate::call::Engines;
use crate::dialogue::{plan_flow_arg, CallContext, FlowArgError};
use crate::privacy::CallRedaction;
use crate::session::{CallEvent, CallSession, EndReason, EventKind};

/// A replay that could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {message}")]
    Input { path: String, message: String },
    #[error("record: {0}")]
    Record(#[from] crate::call::record::RecordError),
    #[error(transparent)]
    Flow(#[from] FlowArgError),
}

/// What a replay produced.
#[derive(Debug)]
pub struct ReplayOutcome {
    /// The record folder (events.jsonl, recording.wav, transcript.txt).
    pub dir: PathBuf,
    /// Every event, in order.
    pub events: Vec<CallEvent>,
    /// Call time at the end.
    pub duration: Duration,
    /// Wall time the replay took.
    pub wall: Duration,
}

/// Where the simulated caller is.
enum Caller {
    /// Waiting for the bot to answer and finish; `since` is when the bot last went quiet.
    Waiting {
        since: Option<Duration>,
        started: Duration,
        /// How many events there were when the caller stopped speaking.
        events_seen: usize,
    },
    /// Playing turn `index` from frame `pos`.
    Speaking { index: usize, pos: usize },
}

/// Runs the caller WAVs through the pipeline and writes the record into `out`. `flow` is
/// `--flow` (`None`: the default flow), resolved as `hotline chat` resolves it.
pub fn replay(
    engines: &Arc<Engines>,
    flow: Option<&str>,
    wavs: &[PathBuf],
    out: &Path,
) -> Result<ReplayOutcome, ReplayError> {
    let plan = plan_flow_arg(engines.dialogue.as_ref(), flow)?;
    let turns: Vec<Vec<Frame>> = wavs
        .iter()
        .map(|path| {
            read_wav_mono_16k(path)
                .map(|pcm| frames_of(&pcm).collect())
                .map_err(|e| ReplayError::Input {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    let config = &engines.config;
    let pause = Duration::from_millis(config.replay.pause_after_reply_ms);
    let tail = Duration::from_millis(config.replay.tail_ms);
    let mut record = CallRecord::create_with(out, plan.records_audio())?
        .with_redaction(CallRedaction::new(engines.redactor.clone()));
    if let Some(key) = &engines.raw_key {
        record = record.with_raw(key.clone())?;
    }
    let language = plan.language();
    let flow_name = plan.flow().to_string();
    let session = CallSession::new(config.session.clone(), language);
    let ctx = CallContext {
        plan,
        vars: Default::default(),
    };
    let dialogue = engines.dialogue.new_dialogue(&ctx);
    let core = CallCore::new(None, session)
        .with_record(record)
        .keeping_events();
    let mut call = VirtualCall::new(
        core,
        dialogue,
        Some(&engines.asr),
        Some(&engines.tts),
        Timing::Measured,
    );
    if let Some(model) = &engines.turn {
        call = call.with_turn_model(model);
    }
    let wall = Instant::now();
    let mut caller = Caller::Waiting {
        since: None,
        started: Duration::ZERO,
        events_seen: 0,
    };
    let mut next_turn = 0usize;

    call.start(EventKind::CallStart {
        call_id: None,
        transport: Some("replay".into()),
        from: None,
        to: None,
        codec: Some("L16/16000".into()),
        language: Some(language.code().to_string()),
        flow: Some(flow_name),
        started_unix_ms: Some(crate::call::unix_ms_now()),
    });
    loop {
        call.settle();
        if call.is_ended() {
            break;
        }
        let now = call.now();
        // The caller's side of this tick.
        let frame = match &mut caller {
            Caller::Speaking { index, pos } => {
                let frame = turns[*index][*pos].clone();
                *pos += 1;
                if *pos >= turns[*index].len() {
                    caller = Caller::Waiting {
                        since: None,
                        started: now,
                        events_seen: call.core().events().len(),
                    };
                }
                frame
            }
            Caller::Waiting {
                since,
                started,
                events_seen,
            } => {
                // The bot has finished speaking since the caller's last turn.
                let bot_replied = call.core().events()[*events_seen..]
                    .iter()
                    .any(|e| matches!(e.kind, EventKind::BotAudioEnd { .. }));
                if call.is_busy() {
                    *since = None;
                } else if since.is_none() {
                    *since = Some(now);
                }
                let quiet_for = since.map(|s| now.saturating_sub(s)).unwrap_or_default();
                let waited = now.saturating_sub(*started);
                let caller_may_go_on =
                    (bot_replied && quiet_for >= pause) || quiet_for >= tail || waited >= tail * 6;
                if caller_may_go_on && next_turn < turns.len() {
                    caller = Caller::Speaking {
                        index: next_turn,
                        pos: 0,
                    };
                    next_turn += 1;
                } else if caller_may_go_on {
                    call.core_mut()
                        .session_mut()
                        .handle_hangup(EndReason::CallerHangup, now);
                    continue;
                }
                Frame::silence()
            }
        };
        call.tick(&frame);
    }
    let duration = call.now();
    let events = call.take_events();
    let dir = call.finish()?.unwrap_or_else(|| out.to_path_buf());
    Ok(ReplayOutcome {
        dir,
        events,
        duration,
        wall: wall.elapsed(),
    })
}

/// The `--report` table: each bot turn's latency breakdown.
pub fn latency_report(events: &[CallEvent]) -> String {
    let mut out =
        String::from("turn  endpoint_ms  asr_ms  dialogue_ms  tts_first_audio_ms  total_ms\n");
    for event in events {
        if let EventKind::TurnLatency {
            turn,
            endpoint_ms,
            asr_ms,
            dialogue_ms,
            tts_ms,
            total_ms,
        } = &event.kind
        {
            out.push_str(&format!(
                "{:>4}  {:>11}  {:>6}  {:>11}  {:>18}  {:>8}\n",
                turn.0, endpoint_ms, asr_ms, dialogue_ms, tts_ms, total_ms
            ));
        }
    }
    out
}
