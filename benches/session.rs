//! One `CallSession` tick: a 20 ms caller frame in (VAD, the echo gate, endpointing,
//! barge-in), the bot's frame out, with the bot speaking so that the playout path runs too; and
//! the turn-taking pieces alone: the echo gate's tick, the echo canceller's tick (adapting, with
//! bot audio in its window: its most expensive case) and the backchannel judgement.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use hotline::audio::{Frame, FRAME_DURATION, FRAME_SAMPLES};
use hotline::config::SessionConfig;
use hotline::dialogue::{BotTurn, Prompt};
use hotline::language::Language;
use hotline::session::barge::false_interruption;
use hotline::session::canceller::EchoCanceller;
use hotline::session::echo::{EchoGate, EchoPath};
use hotline::session::{CallSession, EventKind, TurnId};

fn session_tick(c: &mut Criterion) {
    // A voiced-like frame: a 200 Hz tone with harmonics.
    let samples: Vec<i16> = (0..FRAME_SAMPLES)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            ((2.0 * std::f32::consts::PI * 200.0 * t).sin() * 6000.0
                + (2.0 * std::f32::consts::PI * 600.0 * t).sin() * 2000.0) as i16
        })
        .collect();
    let frame = Frame::from_slice(&samples);
    let mut session = CallSession::new(
        SessionConfig {
            barge_in_min_speech_ms: 1_000_000,
            ..SessionConfig::default()
        },
        Language::En,
    );
    session.start(
        EventKind::CallStart {
            call_id: None,
            transport: None,
            from: None,
            to: None,
            codec: None,
            language: None,
            flow: None,
            started_unix_ms: None,
        },
        Duration::ZERO,
    );
    session.handle_bot_turn(
        TurnId(0),
        BotTurn {
            say: vec![Prompt::text("hello")],
            ..BotTurn::default()
        },
        Duration::ZERO,
    );
    let reply: Vec<i16> = frame.samples().repeat(500);
    let mut now = Duration::ZERO;
    c.bench_function("session_tick", |b| {
        b.iter(|| {
            // Keep the bot talking (10 s replies) so every tick also plays out a frame.
            if !session.bot_active() {
                let turn = session.turn();
                session.handle_bot_turn(
                    turn,
                    BotTurn {
                        say: vec![Prompt::text("hello")],
                        ..BotTurn::default()
                    },
                    now,
                );
                session.handle_bot_audio(turn, &reply, "hello", true, now);
            }
            let out = session.handle_audio(&frame, now);
            while session.poll_output().is_some() {}
            now += FRAME_DURATION;
            out
        })
    });
}

/// 50 frames of bot audio whose level changes like speech, and their echo 18 dB down.
fn bot_and_echo() -> (Vec<Frame>, Vec<Frame>) {
    let bot: Vec<Frame> = (0..50)
        .map(|k| {
            let level = [9000.0, 3000.0, 12000.0, 400.0, 7000.0][k % 5];
            let s: Vec<i16> = (0..FRAME_SAMPLES)
                .map(|i| ((i as f32 * 0.11 + k as f32).sin() * level) as i16)
                .collect();
            Frame::from_slice(&s)
        })
        .collect();
    let echo = bot
        .iter()
        .map(|f| {
            let s: Vec<i16> = f.samples().iter().map(|&x| x / 8).collect();
            Frame::from_slice(&s)
        })
        .collect();
    (bot, echo)
}

/// The echo gate's work per tick: judge the caller frame, note the bot's.
fn echo_gate(c: &mut Criterion) {
    let (bot, echo) = bot_and_echo();
    let mut gate = EchoGate::new(300, 6.0);
    let mut k = 0usize;
    c.bench_function("echo_gate_tick", |b| {
        b.iter(|| {
            let caller = &echo[(k + 45) % 50];
            let is_echo = gate.is_echo(caller);
            gate.bot_sent(Some(&bot[k % 50]));
            k += 1;
            is_echo
        })
    });
}

/// The echo canceller's work per tick while the bot talks: cancel and adapt on a caller frame,
/// note the bot's.
fn echo_canceller(c: &mut Criterion) {
    let (bot, echo) = bot_and_echo();
    let path = EchoPath {
        delay_samples: 5 * FRAME_SAMPLES,
        gain: 0.125,
    };
    let mut canceller = EchoCanceller::new(300);
    let mut k = 0usize;
    c.bench_function("echo_canceller_tick", |b| {
        b.iter(|| {
            let caller = &echo[(k + 45) % 50];
            let heard = canceller.cancel(caller, Some(path), true);
            canceller.bot_sent(Some(&bot[k % 50]));
            k += 1;
            heard
        })
    });
}

/// Judging the words said over the bot: a backchannel, a stop word, a request.
fn backchannel(c: &mut Criterion) {
    let lines = [
        "Uh-huh.",
        "okay, right",
        "No, stop.",
        "I want to speak to an agent about my bill",
    ];
    c.bench_function("false_interruption", |b| {
        b.iter(|| {
            lines
                .iter()
                .filter(|l| false_interruption(l, Language::En).is_some())
                .count()
        })
    });
}

criterion_group!(
    benches,
    session_tick,
    echo_gate,
    echo_canceller,
    backchannel
);
criterion_main!(benches);
