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

use crate::asr::{AsrJob, AsrOptions};
use crate::audio::wav::read_wav_mono_16k;
use crate::audio::{frames_of, Frame, FRAME_DURATION};
use crate::call::record::CallRecord;
use crate::call::Engines;
use crate::dialogue::{plan_flow_arg, BotTurn, CallContext, FlowArgError};
use crate::session::{CallEvent, CallSession, EventKind, SessionOutput, TurnId};

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

/// An engine result waiting for its virtual arrival time.
struct Due {
    at: Duration,
    result: Pending,
}

enum Pending {
    Transcript {
        turn: TurnId,
        is_final: bool,
        text: String,
    },
    Error {
        turn: TurnId,
        code: &'static str,
        message: String,
    },
    BotTurn {
        turn: TurnId,
        bot: BotTurn,
    },
    BotAudio {
        turn: TurnId,
        pcm: Vec<i16>,
        last: bool,
    },
}

/// Where the simulated caller is.
enum Caller {
    /// Waiting for the bot to answer and finish; `since` is when the bot last went quiet.
    Waiting {
        since: Option<Duration>,
        started: Duration,
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
    let mut record = CallRecord::create(out)?;
    let language = plan.language();
    let mut session = CallSession::new(config.session.clone(), language);
    let ctx = CallContext {
        plan,
        vars: Default::default(),
    };
    let mut dialogue = engines.dialogue.new_dialogue(&ctx);
    let mut due: Vec<Due> = Vec::new();
    let mut asr_free_at = Duration::ZERO;
    // The live pool's policy on the virtual clock (one worker): a partial runs only when the
    // worker is idle, and a final interrupts a running partial.
    let mut asr_running_partial = false;
    let wall = Instant::now();
    let mut now = Duration::ZERO;
    let mut caller = Caller::Waiting {
        since: None,
        started: now,
    };
    let mut next_turn = 0usize;
    // The bot has finished speaking since the caller's last turn.
    let mut bot_replied = false;

    session.start(
        EventKind::CallStart {
            call_id: None,
            transport: Some("replay".into()),
            from: None,
            to: None,
            codec: Some("L16/16000".into()),
            language: Some(language.code().to_string()),
        },
        now,
    );
    loop {
        // Deliver results whose time has come, in arrival order.
        due.sort_by_key(|d| d.at);
        while due.first().is_some_and(|d| d.at <= now) {
            let d = due.remove(0);
            match d.result {
                Pending::Transcript {
                    turn,
                    is_final,
                    text,
                } => session.handle_transcript(turn, is_final, &text, d.at),
                Pending::Error {
                    turn,
                    code,
                    message,
                } => session.handle_engine_error(turn, code, &message, d.at),
                Pending::BotTurn { turn, bot } => session.handle_bot_turn(turn, bot, d.at),
                Pending::BotAudio { turn, pcm, last } => {
                    session.handle_bot_audio(turn, &pcm, last, d.at)
                }
            }
        }
        // Perform what the session asked for; results become due after their compute time.
        while let Some(output) = session.poll_output() {
            match output {
                SessionOutput::Event(event) => {
                    if matches!(event.kind, EventKind::BotAudioEnd { .. })
                        && matches!(caller, Caller::Waiting { .. })
                    {
                        bot_replied = true;
                    }
                    record.event(&event)?
                }
                SessionOutput::Recognize {
                    turn,
                    pcm,
                    is_final,
                    grammar,
                    language,
                } => {
                    let busy = asr_free_at > now;
                    if busy && !is_final {
                        // No idle worker: the live pool answers `Preempted`, and the driver
                        // tells the session that this partial brought nothing.
                        session.handle_transcript(turn, false, "", now);
                        continue;
                    }
                    if busy && asr_running_partial {
                        // The running partial gives way; its result never arrives.
                        due.retain(|d| {
                            !matches!(
                                d.result,
                                Pending::Transcript {
                                    is_final: false,
                                    ..
                                }
                            )
                        });
                        asr_free_at = now;
                    }
                    asr_running_partial = !is_final;
                    let started = now.max(asr_free_at);
                    let job = AsrJob {
                        pcm,
                        opts: AsrOptions {
                            language,
                            grammar,
                            is_final,
                        },
                    };
                    let result = engines.asr.submit(job).blocking_recv();
                    let (compute, pending) = match result {
                        Ok(Ok(out)) => (
                            out.compute,
                            Pending::Transcript {
                                turn,
                                is_final,
                                text: out.text,
                            },
                        ),
                        // A partial that failed (or found the real pool's worker between
                        // jobs) brought no words, as in the live driver.
                        Ok(Err(_)) if !is_final => (
                            Duration::ZERO,
                            Pending::Transcript {
                                turn,
                                is_final,
                                text: String::new(),
                            },
                        ),
                        Ok(Err(e)) => (
                            Duration::ZERO,
                            Pending::Error {
                                turn,
                                code: "asr.failed",
                                message: e.to_string(),
                            },
                        ),
                        Err(_) => (
                            Duration::ZERO,
                            Pending::Error {
                                turn,
                                code: "asr.failed",
                                message: "recognizer worker stopped".into(),
                            },
                        ),
                    };
                    asr_free_at = started + compute;
                    due.push(Due {
                        at: asr_free_at,
                        result: pending,
                    });
                }
                SessionOutput::Converse { turn, input } => {
                    let t0 = Instant::now();
                    let bot = dialogue.handle(&input);
                    due.push(Due {
                        at: now + t0.elapsed(),
                        result: Pending::BotTurn { turn, bot },
                    });
                }
                SessionOutput::Speak {
                    turn,
                    prompts,
                    language,
                } => {
                    let mut chunks = engines.tts.speak(prompts, language);
                    let mut at = now;
                    while let Some(chunk) = chunks.blocking_recv() {
                        match chunk {
                            Ok(chunk) => {
                                at += chunk.compute;
                                due.push(Due {
                                    at,
                                    result: Pending::BotAudio {
                                        turn,
                                        pcm: chunk.pcm,
                                        last: chunk.last,
                                    },
                                });
                            }
                            Err(e) => due.push(Due {
                                at,
                                result: Pending::Error {
                                    turn,
                                    code: "tts.failed",
                                    message: e.to_string(),
                                },
                            }),
                        }
                    }
                    due.push(Due {
                        at,
                        result: Pending::BotAudio {
                            turn,
                            pcm: Vec::new(),
                            last: true,
                        },
                    });
                }
                SessionOutput::Transfer { .. } | SessionOutput::Hangup { .. } => {}
            }
        }
        if session.is_ended() {
            break;
        }
        // The caller's side of this tick.
        let frame = match &mut caller {
            Caller::Speaking { index, pos } => {
                let frame = turns[*index][*pos].clone();
                *pos += 1;
                if *pos >= turns[*index].len() {
                    caller = Caller::Waiting {
                        since: None,
                        started: now,
                    };
                }
                frame
            }
            Caller::Waiting { since, started } => {
                let bot_busy = session.bot_active() || !due.is_empty();
                if bot_busy {
                    *since = None;
                } else if since.is_none() {
                    *since = Some(now);
                }
                let quiet_for = since.map(|s| now.saturating_sub(s)).unwrap_or_default();
                let waited = now.saturating_sub(*started);
                if next_turn < turns.len()
                    && ((bot_replied && quiet_for >= pause)
                        || quiet_for >= tail
                        || waited >= tail * 6)
                {
                    caller = Caller::Speaking {
                        index: next_turn,
                        pos: 0,
                    };
                    bot_replied = false;
                    next_turn += 1;
                } else if next_turn >= turns.len()
                    && ((bot_replied && quiet_for >= pause)
                        || quiet_for >= tail
                        || waited >= tail * 6)
                {
                    session.handle_hangup("caller.hangup", now);
                    continue;
                }
                Frame::silence()
            }
        };
        let bot = session.handle_audio(&frame, now);
        record.audio(&frame, bot.as_ref());
        now += FRAME_DURATION;
    }
    let events = record.events().to_vec();
    let dir = record.finish()?;
    Ok(ReplayOutcome {
        dir,
        events,
        duration: now,
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
