//! One call core: a live call, a replay and a chat of the same conversation give the same
//! events apart from timing and audio; a call bridges a second leg both ways while the session
//! goes on listening and recording.
//!
//! Real parts throughout: the telecom flow, the offline recognizer (PocketSphinx) on caller
//! speech synthesized by espeak-ng, espeak-ng for the bot, and the real call driver on tokio's
//! clock, paced at 20 ms like a transport.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hotline::audio::wav::read_wav_mono_16k;
use hotline::audio::{frames_of, Frame, FRAME_DURATION};
use hotline::call::leg::LegRole;
use hotline::call::{CallControl, CallHandle, CallInfo, CallInput, CallOutput, Engines};
use hotline::config::Config;
use hotline::session::{CallEvent, EndReason, EventKind};
use tokio::sync::{broadcast, oneshot};

use common::speech::speak;

fn engines(records: &Path) -> Arc<Engines> {
    let text = format!(
        "[asr]\nengine = \"sphinx\"\n\n[dialogue]\ndefault_flow = \"telecom_en\"\n\n\
         [server]\nrecords_dir = {:?}\n",
        records.display().to_string()
    );
    let config = Config::parse(&text, "test config").expect("config parses");
    Engines::load(config).expect("engines load")
}

/// The conversation in a list of events: what was heard, understood and said, and how the
/// call ended, with their turns. Timing, audio and partial results are left out.
fn conversation(events: &[CallEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Transcript {
                turn,
                text,
                is_final: true,
                ..
            } => Some(format!("{} heard {text:?}", turn.0)),
            EventKind::Intent {
                turn,
                name,
                confidence,
            } => Some(format!("{} intent {name} {confidence:.3}", turn.0)),
            EventKind::Slot {
                turn, name, value, ..
            } => Some(format!("{} slot {name}={value}", turn.0)),
            EventKind::BotReply { turn, text } => Some(format!("{} says {text:?}", turn.0)),
            EventKind::KnowledgeGap { turn, text } => Some(format!("{} gap {text:?}", turn.0)),
            EventKind::Dtmf { digit, .. } => Some(format!("key {digit}")),
            EventKind::Transfer { target, reason } => Some(format!("transfer {target} {reason}")),
            EventKind::Error { code, .. } => Some(format!("error {code}")),
            EventKind::Hangup { reason } => Some(format!("hangup {reason}")),
            _ => None,
        })
        .collect()
}

/// Collects a live call's events until its hangup (or the channel closes).
async fn collect_until_hangup(mut events: broadcast::Receiver<CallEvent>) -> Vec<CallEvent> {
    let mut out = Vec::new();
    loop {
        match events.recv().await {
            Ok(event) => {
                let done = matches!(event.kind, EventKind::Hangup { .. });
                out.push(event);
                if done {
                    // `call_end` may follow; nothing else does.
                    return out;
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => panic!("lost {n} events"),
            Err(broadcast::error::RecvError::Closed) => return out,
        }
    }
}

/// Paces one 20 ms frame into the call and reads the bot's frame back, like a transport.
struct Pacer {
    ticker: tokio::time::Interval,
}

impl Pacer {
    fn new() -> Self {
        let mut ticker = tokio::time::interval(FRAME_DURATION);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        Self { ticker }
    }

    async fn frame(&mut self, call: &mut CallHandle, frame: Frame) -> Option<Frame> {
        self.ticker.tick().await;
        call.input.send(CallInput::Audio(frame)).await.ok()?;
        loop {
            match call.output.recv().await? {
                CallOutput::Audio(bot) => return Some(bot),
                CallOutput::Transfer { .. } | CallOutput::Hangup { .. } => continue,
            }
        }
    }
}

/// Plays silence until the bot has finished a reply (its audio ended) and `pause` has passed.
async fn until_bot_done(
    call: &mut CallHandle,
    pacer: &mut Pacer,
    seen: &mut broadcast::Receiver<CallEvent>,
    pause: Duration,
) {
    let mut done = false;
    for _ in 0..3_000 {
        if pacer.frame(call, Frame::silence()).await.is_none() {
            return;
        }
        while let Ok(event) = seen.try_recv() {
            if matches!(event.kind, EventKind::BotAudioEnd { .. }) {
                done = true;
            }
        }
        if done {
            break;
        }
    }
    assert!(done, "the bot never finished speaking");
    for _ in 0..(pause.as_millis() / 20) {
        pacer.frame(call, Frame::silence()).await;
    }
}

#[test]
fn live_replay_and_chat_give_the_same_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = speak(dir.path(), "order", "where is my order");
    let engines = engines(&dir.path().join("records"));

    // Replay: the recorded caller on the virtual clock.
    let replayed = hotline::replay::replay(
        &engines,
        None,
        std::slice::from_ref(&wav),
        &dir.path().join("replay"),
    )
    .expect("replay runs");
    let replayed = conversation(&replayed.events);
    let heard: Vec<String> = replayed
        .iter()
        .filter_map(|l| l.strip_prefix("1 heard "))
        .map(|t| t.trim_matches('"').to_string())
        .collect();
    assert_eq!(
        heard.len(),
        1,
        "the replay heard one caller turn: {replayed:#?}"
    );
    assert!(
        replayed.iter().any(|l| l.contains(" intent order_status")),
        "the bot understood the caller: {replayed:#?}"
    );

    // Live: the same audio through the call driver, paced in real time.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let live = runtime.block_on(async {
        let mut call = engines
            .start_call(CallInfo {
                transport: "test".into(),
                ..CallInfo::default()
            })
            .expect("call starts");
        let events = call.events.resubscribe();
        let mut seen = call.events.resubscribe();
        let collector = tokio::spawn(collect_until_hangup(events));
        let mut pacer = Pacer::new();
        let pause = Duration::from_millis(engines.config.replay.pause_after_reply_ms);
        until_bot_done(&mut call, &mut pacer, &mut seen, pause).await;
        let pcm = read_wav_mono_16k(&wav).expect("caller wav");
        for frame in frames_of(&pcm) {
            pacer.frame(&mut call, frame).await;
        }
        until_bot_done(&mut call, &mut pacer, &mut seen, pause).await;
        call.control
            .send(CallControl::Hangup {
                reason: EndReason::CallerHangup,
            })
            .expect("call is up");
        // Keep reading so the driver can finish.
        while pacer.frame(&mut call, Frame::silence()).await.is_some() {}
        collector.await.expect("collector")
    });
    let live = conversation(&live);

    // Chat: the words the replay heard, typed.
    let mut out = Vec::new();
    hotline::chat::run_chat(
        &engines.config,
        None,
        true,
        format!("{}\n", heard[0]).as_bytes(),
        &mut out,
    )
    .expect("chat runs");
    let chatted: Vec<CallEvent> = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event"))
        .collect();
    let chatted = conversation(&chatted);

    assert_eq!(live, replayed, "live and replay differ");
    assert_eq!(chatted, replayed, "chat and replay differ");
}

/// Sends `frames` from both sides of a bridged call and returns what each side heard.
#[test]
fn two_legs_are_bridged_both_ways_while_the_session_listens_and_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let caller_wav = speak(dir.path(), "caller", "where is my order");
    let records = dir.path().join("records");
    let engines = engines(&records);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (caller_sent, agent_heard, caller_heard, agent_sent, id) = runtime.block_on(async {
        let mut call = engines
            .start_call(CallInfo {
                transport: "test".into(),
                ..CallInfo::default()
            })
            .expect("call starts");
        let id = call.id.clone();
        let mut pacer = Pacer::new();
        // The greeting starts; an agent leg is added and joined while the bot speaks.
        for _ in 0..50 {
            pacer.frame(&mut call, Frame::silence()).await;
        }
        let (reply, leg) = oneshot::channel();
        call.control
            .send(CallControl::AddLeg {
                role: LegRole::Agent,
                reply,
            })
            .expect("call is up");
        let mut agent = leg.await.expect("a leg handle");
        call.control
            .send(CallControl::Bridge {
                leg: agent.id,
                joined: true,
            })
            .expect("call is up");
        // The agent speaks a steady tone; the caller speaks words. Both pace at 20 ms.
        let agent_frame = |i: usize| {
            let samples: Vec<i16> = (0..hotline::audio::FRAME_SAMPLES)
                .map(|n| {
                    let t = (i * hotline::audio::FRAME_SAMPLES + n) as f32 / 16_000.0;
                    (6_000.0 * (2.0 * std::f32::consts::PI * 1_000.0 * t).sin()) as i16
                })
                .collect();
            Frame::from_slice(&samples)
        };
        let pcm = read_wav_mono_16k(&caller_wav).expect("caller wav");
        let mut caller_frames: Vec<Frame> = frames_of(&pcm).collect();
        caller_frames.extend(std::iter::repeat_n(Frame::silence(), 60));
        let (mut caller_sent, mut caller_heard) = (Vec::new(), Vec::new());
        let (mut agent_sent, mut agent_heard) = (Vec::new(), Vec::new());
        for (i, frame) in caller_frames.into_iter().enumerate() {
            let heard = pacer
                .frame(&mut call, frame.clone())
                .await
                .expect("call is up");
            caller_sent.push(frame);
            caller_heard.push(heard);
            let said = agent_frame(i);
            assert!(agent.send(said.clone()).await, "call is up");
            agent_sent.push(said);
            agent_heard.push(agent.output.recv().await.expect("agent hears"));
        }
        call.control
            .send(CallControl::Hangup {
                reason: EndReason::CallerHangup,
            })
            .expect("call is up");
        while pacer.frame(&mut call, Frame::silence()).await.is_some() {}
        (caller_sent, agent_heard, caller_heard, agent_sent, id)
    });

    // Each side heard the other's frames, in order (one tick behind at most a few frames).
    let spoken: Vec<&Frame> = caller_sent.iter().filter(|f| f.rms() > 100.0).collect();
    let delivered = spoken.iter().filter(|f| agent_heard.contains(f)).count();
    assert!(
        delivered * 10 >= spoken.len() * 9,
        "the agent heard {delivered} of the caller's {} voiced frames",
        spoken.len()
    );
    let tones_delivered = agent_sent
        .iter()
        .filter(|f| caller_heard.contains(f))
        .count();
    assert!(
        tones_delivered * 10 >= agent_sent.len() * 9,
        "the caller heard {tones_delivered} of the agent's {} frames",
        agent_sent.len()
    );

    // The session kept listening: the caller's words are in the record, and the bot said
    // nothing after the bridge.
    let record = records.join(&id.0);
    let text = std::fs::read_to_string(record.join("events.jsonl")).expect("events.jsonl");
    let events: Vec<CallEvent> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event"))
        .collect();
    let finals: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Transcript {
                text,
                is_final: true,
                ..
            } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        finals.iter().any(|t| t.contains("order")),
        "the caller's words were recognized while bridged: {finals:?}"
    );
    let replies_after_greeting = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::BotReply { .. }))
        .filter(|e| e.t_ms > 1_500)
        .count();
    assert_eq!(
        replies_after_greeting, 0,
        "the bot stayed quiet while bridged"
    );

    // The recording has the caller on the left and the agent on the right.
    let mut reader = hound::WavReader::open(record.join("recording.wav")).expect("recording");
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    let tail = &samples[samples.len().saturating_sub(2 * 16_000 * 3)..];
    let right_peak = tail
        .iter()
        .skip(1)
        .step_by(2)
        .map(|s| s.unsigned_abs())
        .max();
    assert!(
        right_peak.unwrap_or(0) > 3_000,
        "the agent's tone is on the right channel"
    );
}
