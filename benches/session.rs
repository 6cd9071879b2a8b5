//! One `CallSession` tick: a 20 ms caller frame in (VAD, endpointing, barge-in), the bot's frame
//! out, with the bot speaking so that the playout path runs too.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use hotline::audio::{Frame, FRAME_DURATION, FRAME_SAMPLES};
use hotline::config::SessionConfig;
use hotline::dialogue::{BotTurn, Prompt};
use hotline::language::Language;
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
    let mut now = Duration::ZERO;
    c.bench_function("session_tick", |b| {
        b.iter(|| {
            // Keep the bot talking so every tick also plays out a frame.
            if !session.bot_active() {
                session.handle_bot_turn(
                    session.turn(),
                    BotTurn {
                        say: vec![Prompt::text("hello")],
                        ..BotTurn::default()
                    },
                    now,
                );
            }
            session.handle_bot_audio(session.turn(), frame.samples(), "", false, now);
            let out = session.handle_audio(&frame, now);
            while session.poll_output().is_some() {}
            now += FRAME_DURATION;
            out
        })
    });
}

criterion_group!(benches, session_tick);
criterion_main!(benches);
