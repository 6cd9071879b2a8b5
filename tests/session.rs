//! CallSession on virtual time: endpointing, turn ids, barge-in, stale results, transfer and
//! no-input, driven with real recorded speech.

mod common;

use std::time::Duration;

use hotline::audio::wav::read_wav_mono_16k;
use hotline::audio::{frames_of, Frame, FRAME_DURATION};
use hotline::config::SessionConfig;
use hotline::dialogue::{Action, BotTurn, CallerInput, Prompt};
use hotline::language::Language;
use hotline::session::{CallSession, EndReason, EventKind, SessionOutput, TurnId};

use common::shared::shared_dir;

/// A sentence spoken without pauses.
fn speech() -> Vec<Frame> {
    recording("audio/en/speechbrain_spk1_snt1.wav")
}

fn recording(path: &str) -> Vec<Frame> {
    let pcm =
        read_wav_mono_16k(&shared_dir().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"));
    frames_of(&pcm).collect()
}

/// A session driven on a virtual clock, keeping everything it emitted.
struct Harness {
    session: CallSession,
    now: Duration,
    outputs: Vec<(Duration, SessionOutput)>,
    bot_frames: usize,
}

impl Harness {
    fn new(config: SessionConfig) -> Self {
        let mut h = Self {
            session: CallSession::new(config, Language::En),
            now: Duration::ZERO,
            outputs: vec![],
            bot_frames: 0,
        };
        h.session.start(
            EventKind::CallStart {
                call_id: None,
                transport: None,
                from: None,
                to: None,
                codec: None,
                language: None,
            },
            h.now,
        );
        h.drain();
        h
    }

    fn drain(&mut self) {
        while let Some(out) = self.session.poll_output() {
            self.outputs.push((self.now, out));
        }
    }

    fn feed(&mut self, frame: &Frame) -> Option<Frame> {
        let out = self.session.handle_audio(frame, self.now);
        if out.is_some() {
            self.bot_frames += 1;
        }
        self.now += FRAME_DURATION;
        self.drain();
        out
    }

    fn silence(&mut self, ms: u64) {
        for _ in 0..ms / 20 {
            self.feed(&Frame::silence());
        }
    }

    fn events(&self) -> Vec<(Duration, EventKind)> {
        self.outputs
            .iter()
            .filter_map(|(_, o)| match o {
                SessionOutput::Event(e) => Some((Duration::from_millis(e.t_ms), e.kind.clone())),
                _ => None,
            })
            .collect()
    }

    fn first(&self, name: &str) -> Option<(Duration, EventKind)> {
        self.events()
            .into_iter()
            .find(|(_, k)| k.type_name() == name)
    }

    fn final_requests(&self) -> Vec<(TurnId, usize)> {
        self.outputs
            .iter()
            .filter_map(|(_, o)| match o {
                SessionOutput::Recognize {
                    turn,
                    pcm,
                    is_final: true,
                    ..
                } => Some((*turn, pcm.len())),
                _ => None,
            })
            .collect()
    }

    /// Answers the greeting with `say` and 3 s of bot audio.
    fn bot_says(&mut self, turn: TurnId, text: &str, action: Option<Action>) {
        let bot = BotTurn {
            say: vec![Prompt::text(text)],
            action,
            ..BotTurn::default()
        };
        self.session.handle_bot_turn(turn, bot, self.now);
        self.drain();
        let tone: Vec<i16> = (0..48_000)
            .map(|i| ((i as f32 * 0.07).sin() * 8000.0) as i16)
            .collect();
        self.session.handle_bot_audio(turn, &tone, true, self.now);
        self.drain();
    }
}

#[test]
fn speech_is_endpointed_after_the_configured_silence() {
    for endpoint_ms in [400u64, 1200] {
        let config = SessionConfig {
            endpoint_silence_ms: endpoint_ms,
            ..SessionConfig::default()
        };
        let mut h = Harness::new(config);
        h.silence(500);
        let frames = speech();
        let speech_len = Duration::from_millis(frames.len() as u64 * 20);
        for f in &frames {
            h.feed(f);
        }
        h.silence(2000);
        let (start, _) = h.first("speech_start").expect("speech_start");
        let (end, _) = h.first("speech_end").expect("speech_end");
        assert!(
            start >= Duration::from_millis(500) && start < Duration::from_millis(500) + speech_len,
            "start {start:?}"
        );
        // The endpoint comes after the speech plus the configured silence, not before.
        let ended_after_speech = end.saturating_sub(Duration::from_millis(500) + speech_len);
        assert!(
            end > start + Duration::from_millis(endpoint_ms),
            "end {end:?} start {start:?}"
        );
        assert!(
            ended_after_speech <= Duration::from_millis(endpoint_ms + 100),
            "endpoint {endpoint_ms}: {ended_after_speech:?} after the audio"
        );
        let finals = h.final_requests();
        assert_eq!(finals.len(), 1, "one final recognition per utterance");
        // The utterance sent to ASR holds the speech, not the surrounding silence.
        let secs = finals[0].1 as f32 / 16_000.0;
        assert!(
            secs > 0.5 && secs <= speech_len.as_secs_f32() + 0.5,
            "utterance {secs} s"
        );
    }
}

#[test]
fn the_endpoint_silence_decides_whether_pauses_split_a_turn() {
    // "one ... two ... three", with pauses between the words.
    let count = |endpoint_silence_ms| {
        let mut h = Harness::new(SessionConfig {
            endpoint_silence_ms,
            ..SessionConfig::default()
        });
        h.silence(300);
        for f in recording("audio/en/one_two_three.wav") {
            h.feed(&f);
        }
        h.silence(2500);
        h.final_requests().len()
    };
    assert!(count(200) > 1, "short endpoint: each word is a turn");
    assert_eq!(count(2000), 1, "long endpoint: one turn");
}

#[test]
fn silence_alone_is_not_speech() {
    let mut h = Harness::new(SessionConfig::default());
    h.silence(5000);
    assert!(h.first("speech_start").is_none());
    let noise: Vec<i16> = (0..16_000)
        .map(|i| ((i * 7919 % 200) as i16) - 100)
        .collect();
    for f in frames_of(&noise) {
        h.feed(&f);
    }
    assert!(
        h.first("speech_start").is_none(),
        "low noise counted as speech"
    );
}

#[test]
fn caller_speech_stops_the_bot_at_once() {
    let mut h = Harness::new(SessionConfig::default());
    h.bot_says(TurnId(0), "Hello, how can I help?", None);
    h.silence(400);
    assert!(
        h.bot_frames >= 19,
        "the bot was playing ({} frames)",
        h.bot_frames
    );
    let (started, _) = h.first("bot_audio_start").expect("bot_audio_start");
    assert_eq!(started, Duration::ZERO);
    let talk_start = h.now;
    let mut frames_after_barge = 0;
    for f in speech() {
        if h.feed(&f).is_some() && h.first("bot_audio_end").is_some() {
            frames_after_barge += 1;
        }
    }
    let (ended, kind) = h.first("bot_audio_end").expect("bot_audio_end");
    assert!(
        matches!(kind, EventKind::BotAudioEnd { ref reason, .. } if reason == "barge_in"),
        "{kind:?}"
    );
    assert_eq!(frames_after_barge, 0, "no bot audio after the barge-in");
    // Stopped within the configured barge-in speech plus the VAD onset (well under 3 s of prompt).
    assert!(
        ended - talk_start <= Duration::from_millis(600),
        "stopped {:?} after the caller began",
        ended - talk_start
    );
    // The bot's reply for the old turn is stale now.
    assert!(h.session.turn() > TurnId(0));
}

#[test]
fn stale_results_are_dropped_by_turn() {
    let mut h = Harness::new(SessionConfig::default());
    h.silence(300);
    for f in speech() {
        h.feed(&f);
    }
    h.silence(1500);
    let (turn, _) = h.final_requests()[0];
    h.session
        .handle_transcript(TurnId(turn.0 + 5), true, "from another turn", h.now);
    h.session
        .handle_transcript(turn, true, "one two three", h.now);
    h.drain();
    let transcripts: Vec<_> = h
        .events()
        .into_iter()
        .filter(|(_, k)| k.type_name() == "transcript")
        .collect();
    assert_eq!(transcripts.len(), 1);
    assert!(
        matches!(&transcripts[0].1, EventKind::Transcript { text, is_final: true, .. } if text == "one two three")
    );
    let asked = h.outputs.iter().any(|(_, o)| matches!(o, SessionOutput::Converse { input: CallerInput::Speech { text, .. }, .. } if text == "one two three"));
    assert!(asked, "the final transcript goes to the dialogue");
}

#[test]
fn transfer_happens_after_the_reply_has_played() {
    let mut h = Harness::new(SessionConfig::default());
    let action = Action::Transfer {
        target: "agent".into(),
        reason: "caller.asked_for_agent".into(),
    };
    h.bot_says(TurnId(0), "Connecting you to an agent.", Some(action));
    h.silence(1000);
    assert!(
        h.first("transfer").is_none(),
        "transfer waits for the prompt"
    );
    h.silence(3000);
    let (t_transfer, _) = h.first("transfer").expect("transfer");
    let (t_done, kind) = h.first("bot_audio_end").expect("bot_audio_end");
    assert!(matches!(kind, EventKind::BotAudioEnd { ref reason, .. } if reason == "done"));
    assert!(t_transfer >= t_done && t_transfer >= Duration::from_millis(2900));
    assert!(h.session.is_ended());
    assert!(
        matches!(h.first("hangup"), Some((_, EventKind::Hangup { reason })) if reason == "transfer")
    );
}

#[test]
fn silence_after_the_bot_is_no_input() {
    let config = SessionConfig {
        no_input_timeout_ms: 2000,
        ..SessionConfig::default()
    };
    let mut h = Harness::new(config);
    h.bot_says(TurnId(0), "How can I help?", None);
    h.silence(3000 + 1500);
    assert!(!h.outputs.iter().any(|(_, o)| matches!(
        o,
        SessionOutput::Converse {
            input: CallerInput::NoInput,
            ..
        }
    )));
    h.silence(1000);
    let at = h
        .outputs
        .iter()
        .find(|(_, o)| {
            matches!(
                o,
                SessionOutput::Converse {
                    input: CallerInput::NoInput,
                    ..
                }
            )
        })
        .map(|(t, _)| *t)
        .expect("no-input reached the dialogue");
    assert!(
        at >= Duration::from_millis(5000) && at <= Duration::from_millis(5100),
        "{at:?}"
    );
}

#[test]
fn dtmf_interrupts_and_starts_a_turn() {
    let mut h = Harness::new(SessionConfig::default());
    h.bot_says(TurnId(0), "Press 1 for billing.", None);
    h.silence(200);
    h.session.handle_dtmf('1', h.now);
    h.drain();
    assert!(matches!(h.first("dtmf"), Some((_, EventKind::Dtmf { digit })) if digit == "1"));
    assert!(h.feed(&Frame::silence()).is_none(), "the prompt stopped");
    assert!(h.outputs.iter().any(|(_, o)| matches!(o, SessionOutput::Converse { input: CallerInput::Dtmf { digit: '1' }, turn } if *turn == TurnId(1))));
}

/// Three sentences with short pauses: each pause ends an utterance, and each final arrives
/// only after the caller has started the next sentence (real recognizers take 0.3–1.5 s).
/// Every sentence must reach the dialogue, in order, in one request.
#[test]
fn finals_that_arrive_after_the_caller_went_on_are_merged_in_order() {
    let mut h = Harness::new(SessionConfig::default());
    let sentences = [
        "audio/en/speechbrain_spk1_snt1.wav",
        "audio/en/speechbrain_spk1_snt2.wav",
        "audio/en/speechbrain_spk1_snt3.wav",
    ];
    let words = [
        "the child almost hurt the small dog",
        "drop the two",
        "the air is pure",
    ];
    for path in sentences {
        h.silence(700);
        for f in recording(path) {
            h.feed(&f);
        }
    }
    h.silence(700);
    let finals = h.final_requests();
    assert_eq!(
        finals.len(),
        3,
        "one final request per sentence: {finals:?}"
    );
    // The results come back late and out of order; the last one first.
    h.session
        .handle_transcript(finals[2].0, true, words[2], h.now);
    h.drain();
    assert!(
        h.first("transcript").is_none(),
        "the request waits for the earlier sentences"
    );
    h.session
        .handle_transcript(finals[0].0, true, words[0], h.now);
    h.session
        .handle_transcript(finals[1].0, true, words[1], h.now);
    // A second final for a sentence already heard changes nothing.
    h.session
        .handle_transcript(finals[1].0, true, "ignored", h.now);
    h.drain();
    let expected = words.join(" ");
    let transcripts: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|(_, k)| match k {
            EventKind::Transcript {
                text,
                is_final: true,
                turn,
            } => Some((turn, text)),
            _ => None,
        })
        .collect();
    assert_eq!(transcripts, vec![(finals[2].0, expected.clone())]);
    let asked: Vec<_> = h
        .outputs
        .iter()
        .filter_map(|(_, o)| match o {
            SessionOutput::Converse {
                turn,
                input: CallerInput::Speech { text, .. },
            } => Some((*turn, text.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(asked, vec![(finals[2].0, expected)]);
}

/// A caller who continues after the dialogue was asked: the old answer is stale, and the new
/// request holds both utterances.
#[test]
fn speech_after_the_question_continues_the_request() {
    let mut h = Harness::new(SessionConfig::default());
    h.silence(300);
    for f in speech() {
        h.feed(&f);
    }
    h.silence(800);
    let first = h.final_requests()[0].0;
    h.session.handle_transcript(first, true, "i want to", h.now);
    h.drain();
    for f in recording("audio/en/speechbrain_spk1_snt2.wav") {
        h.feed(&f);
    }
    h.silence(800);
    // The dialogue's answer to the first question arrives late: stale.
    h.session.handle_bot_turn(
        first,
        BotTurn {
            say: vec![Prompt::text("stale")],
            ..BotTurn::default()
        },
        h.now,
    );
    let second = h.final_requests()[1].0;
    h.session
        .handle_transcript(second, true, "pay my bill", h.now);
    h.drain();
    assert!(h
        .events()
        .iter()
        .all(|(_, k)| !matches!(k, EventKind::BotReply { text, .. } if text == "stale")));
    let last_ask = h.outputs.iter().rev().find_map(|(_, o)| match o {
        SessionOutput::Converse {
            turn,
            input: CallerInput::Speech { text, .. },
        } => Some((*turn, text.clone())),
        _ => None,
    });
    assert_eq!(
        last_ask,
        Some((second, "i want to pay my bill".to_string()))
    );
}

/// A caller who hangs up while a later sentence is still being recognized: the sentences
/// that were recognized stay in the record.
#[test]
fn words_recognized_before_a_hangup_stay_in_the_record() {
    let mut h = Harness::new(SessionConfig::default());
    for path in [
        "audio/en/speechbrain_spk1_snt1.wav",
        "audio/en/speechbrain_spk1_snt2.wav",
    ] {
        h.silence(700);
        for f in recording(path) {
            h.feed(&f);
        }
    }
    h.silence(700);
    let finals = h.final_requests();
    assert_eq!(finals.len(), 2);
    h.session.handle_transcript(
        finals[0].0,
        true,
        "the child almost hurt the small dog",
        h.now,
    );
    h.session.handle_hangup(EndReason::CallerHangup, h.now);
    h.drain();
    let kept: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|(_, k)| match k {
            EventKind::Transcript {
                text,
                is_final: true,
                ..
            } => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(
        kept,
        vec!["the child almost hurt the small dog".to_string()]
    );
}

/// The end-of-turn policy on virtual time: the session asks about a pause after
/// `turn_check_ms`, ends a turn judged complete at once, lets one judged unfinished wait up to
/// `turn_max_silence_ms`, and drops a judgement about a pause the caller has since broken. The
/// model's answers are the test's: this is the session's side of the model.
/// A session with an end-of-turn model after the caller said a sentence and paused 300 ms;
/// also when the sentence ended.
fn paused_with_model(config: &SessionConfig) -> (Harness, Duration) {
    let mut h = Harness::new(config.clone());
    h.session.use_turn_model(true);
    h.silence(500);
    for f in &speech() {
        h.feed(f);
    }
    let spoke_until = h.now;
    h.silence(300);
    (h, spoke_until)
}

#[test]
fn the_end_of_turn_model_ends_complete_turns_early_and_waits_on_unfinished_ones() {
    let config = SessionConfig {
        turn_check_ms: 200,
        turn_max_silence_ms: 1_500,
        ..SessionConfig::default()
    };
    let asked = |h: &Harness| -> Vec<(Duration, TurnId)> {
        h.outputs
            .iter()
            .filter_map(|(at, o)| match o {
                SessionOutput::PredictTurnEnd { turn, .. } => Some((*at, *turn)),
                _ => None,
            })
            .collect()
    };

    // Judged complete: the turn ends when the answer comes, long before any fixed endpoint.
    let (mut h, spoke_until) = paused_with_model(&config);
    let questions = asked(&h);
    assert_eq!(questions.len(), 1, "one question per pause");
    let (asked_at, turn) = questions[0];
    assert!(asked_at.saturating_sub(spoke_until) <= Duration::from_millis(300));
    assert!(
        h.final_requests().is_empty(),
        "no endpoint before the answer"
    );
    h.session.handle_turn_prediction(turn, 0.93, h.now);
    h.drain();
    assert_eq!(h.final_requests().len(), 1, "a complete turn ends at once");
    let (_, judged) = h
        .first("turn_prediction")
        .expect("the judgement is recorded");
    assert!(matches!(
        judged,
        EventKind::TurnPrediction { complete: true, .. }
    ));

    // Judged unfinished: the pause may go on past the fixed endpoint (600 ms), and the turn
    // ends only at the longest silence.
    let (mut h, spoke_until) = paused_with_model(&config);
    let (_, turn) = asked(&h)[0];
    h.session.handle_turn_prediction(turn, 0.08, h.now);
    h.drain();
    h.silence(700);
    assert!(h.final_requests().is_empty(), "an unfinished turn waits");
    h.silence(700);
    // 1.7 s of silence in all: the longest silence (1.5 s) has ended it.
    let (ended_at, _) = h
        .first("speech_end")
        .expect("the turn ends at the longest silence");
    assert!(ended_at > spoke_until + Duration::from_millis(1_000));

    // A stale judgement: the caller went on speaking before the answer came.
    let (mut h, _) = paused_with_model(&config);
    let frames = speech();
    let (_, turn) = asked(&h)[0];
    for f in frames.iter().take(25) {
        h.feed(f);
    }
    h.session.handle_turn_prediction(turn, 0.99, h.now);
    h.drain();
    assert!(
        h.first("turn_prediction").is_none(),
        "a judgement about a broken pause is dropped"
    );
    assert!(h.final_requests().is_empty());
}
