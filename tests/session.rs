//! CallSession on virtual time: endpointing, turn ids, barge-in, stale results, transfer and
//! no-input, driven with real recorded speech.

mod common;

use std::time::Duration;

use hotline::asr::{Grammar, Recognized};
use hotline::audio::wav::read_wav_mono_16k;
use hotline::audio::{frames_of, Frame, FRAME_DURATION};
use hotline::config::SessionConfig;
use hotline::dialogue::{Action, BotTurn, CallerInput, Prompt};
use hotline::language::Language;
use hotline::session::{CallSession, EndReason, EventKind, SessionOutput, TurnEnd, TurnId};

use common::shared::shared_dir;

/// The session's defaults with the final recognition asked only at the endpoint (no
/// speculative final): the endpointing tests count those requests.
/// A recognizer's result with no confidence given.
fn final_words(text: &str) -> Recognized {
    Recognized {
        text: text.to_string(),
        confidence: None,
    }
}

fn endpoint_config() -> SessionConfig {
    SessionConfig {
        speculative_asr_ms: 0,
        ..SessionConfig::default()
    }
}

/// A sentence spoken without pauses (none as long as 200 ms).
fn speech() -> Vec<Frame> {
    recording("audio/en/speechbrain_spk1_snt3.wav")
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
                flow: None,
                started_unix_ms: None,
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
        self.session
            .handle_bot_audio(turn, &tone, text, true, self.now);
        self.drain();
    }
}

#[test]
fn speech_is_endpointed_after_the_configured_silence() {
    for endpoint_ms in [400u64, 1200] {
        let config = SessionConfig {
            endpoint_silence_ms: endpoint_ms,
            ..endpoint_config()
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
            ..endpoint_config()
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
    let mut h = Harness::new(endpoint_config());
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
    let mut h = Harness::new(endpoint_config());
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
    let mut h = Harness::new(endpoint_config());
    h.silence(300);
    for f in speech() {
        h.feed(&f);
    }
    h.silence(1500);
    let (turn, _) = h.final_requests()[0];
    h.session.handle_transcript(
        TurnId(turn.0 + 5),
        true,
        &final_words("from another turn"),
        h.now,
    );
    h.session
        .handle_transcript(turn, true, &final_words("one two three"), h.now);
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
    let mut h = Harness::new(endpoint_config());
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
        ..endpoint_config()
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
    let mut h = Harness::new(endpoint_config());
    h.bot_says(TurnId(0), "Press 1 for billing.", None);
    h.silence(200);
    h.session.handle_dtmf('1', h.now);
    h.drain();
    assert!(matches!(h.first("dtmf"), Some((_, EventKind::Dtmf { digit, .. })) if digit == "1"));
    assert!(h.feed(&Frame::silence()).is_none(), "the prompt stopped");
    assert!(h.outputs.iter().any(|(_, o)| matches!(o, SessionOutput::Converse { input: CallerInput::Dtmf { digit: '1' }, turn } if *turn == TurnId(1))));
}

/// Three sentences with short pauses: each pause ends an utterance, and each final arrives
/// only after the caller has started the next sentence (real recognizers take 0.3–1.5 s).
/// Every sentence must reach the dialogue, in order, in one request.
#[test]
fn finals_that_arrive_after_the_caller_went_on_are_merged_in_order() {
    let mut h = Harness::new(endpoint_config());
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
        .handle_transcript(finals[2].0, true, &final_words(words[2]), h.now);
    h.drain();
    assert!(
        h.first("transcript").is_none(),
        "the request waits for the earlier sentences"
    );
    h.session
        .handle_transcript(finals[0].0, true, &final_words(words[0]), h.now);
    h.session
        .handle_transcript(finals[1].0, true, &final_words(words[1]), h.now);
    // A second final for a sentence already heard changes nothing.
    h.session
        .handle_transcript(finals[1].0, true, &final_words("ignored"), h.now);
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
                ..
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
    let mut h = Harness::new(endpoint_config());
    h.silence(300);
    for f in speech() {
        h.feed(&f);
    }
    h.silence(800);
    let first = h.final_requests()[0].0;
    h.session
        .handle_transcript(first, true, &final_words("i want to"), h.now);
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
        .handle_transcript(second, true, &final_words("pay my bill"), h.now);
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
    let mut h = Harness::new(endpoint_config());
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
        &final_words("the child almost hurt the small dog"),
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
        ..endpoint_config()
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

// ---- barge-in defences, resume, what the caller heard, speculative finals ----

/// A recording scaled to `rms` (speech at a set level).
fn at_level(path: &str, rms: f32) -> Vec<i16> {
    let pcm = read_wav_mono_16k(&shared_dir().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let now = hotline::audio::rms(&pcm).max(1.0);
    pcm.iter()
        .map(|&s| (f32::from(s) * rms / now).clamp(-32768.0, 32767.0) as i16)
        .collect()
}

impl Harness {
    /// The bot starts saying `pieces` (text and audio each) for `turn`.
    fn bot_speaks(&mut self, turn: TurnId, pieces: &[(&str, Vec<i16>)]) {
        self.bot_asks(turn, pieces, None);
    }

    /// The bot says `pieces`, then waits for an answer to `expect`.
    fn bot_asks(&mut self, turn: TurnId, pieces: &[(&str, Vec<i16>)], expect: Option<Grammar>) {
        let bot = BotTurn {
            say: pieces.iter().map(|(t, _)| Prompt::text(*t)).collect(),
            expect,
            ..BotTurn::default()
        };
        self.session.handle_bot_turn(turn, bot, self.now);
        for (i, (text, pcm)) in pieces.iter().enumerate() {
            let last = i + 1 == pieces.len();
            self.session
                .handle_bot_audio(turn, pcm, text, last, self.now);
        }
        self.drain();
    }

    fn count(&self, name: &str) -> usize {
        self.events()
            .iter()
            .filter(|(_, k)| k.type_name() == name)
            .count()
    }

    /// The finals asked for, speculative or not, with their turn.
    fn all_final_requests(&self) -> Vec<(TurnId, Option<Duration>)> {
        self.outputs
            .iter()
            .filter_map(|(_, o)| match o {
                SessionOutput::Recognize {
                    turn,
                    is_final: true,
                    speculative,
                    ..
                } => Some((*turn, *speculative)),
                _ => None,
            })
            .collect()
    }
}

/// A phone line: the caller hears the bot's frames, and the bot hears them back `delay_ms` late
/// and `atten_db` down, with the caller's own `voice` (if any) from `voice_at` on.
fn call_with_echo(
    config: SessionConfig,
    delay_ms: usize,
    atten_db: f32,
    voice: Option<&[i16]>,
    voice_at: Duration,
) -> Harness {
    let mut h = Harness::new(config);
    let bot = at_level("audio/en/jfk.wav", 3000.0);
    h.bot_speaks(
        h.session.turn(),
        &[("And so, my fellow Americans, ask not.", bot)],
    );
    let gain = 10f32.powf(-atten_db / 20.0);
    let mut line: std::collections::VecDeque<i16> = std::iter::repeat_n(0, delay_ms * 16).collect();
    let mut voice_pos = 0;
    for _ in 0..(12_000 / 20) {
        let echo: Vec<i16> = line.drain(..320).collect();
        let mut caller: Vec<i16> = echo.iter().map(|&s| (f32::from(s) * gain) as i16).collect();
        if let Some(voice) = voice {
            if h.now >= voice_at {
                for c in caller.iter_mut() {
                    let v = voice.get(voice_pos).copied().unwrap_or(0);
                    *c = c.saturating_add(v);
                    voice_pos += 1;
                }
            }
        }
        let sent = h.feed(&Frame::from_slice(&caller)).unwrap_or_default();
        line.extend(sent.samples().iter().copied());
    }
    h
}

#[test]
fn the_bots_own_echo_does_not_interrupt_it() {
    let mut false_barge_ins = 0;
    let mut cases = 0;
    for delay_ms in [50, 120, 250] {
        for atten_db in [6.0, 12.0, 20.0, 30.0] {
            cases += 1;
            let h = call_with_echo(
                SessionConfig::default(),
                delay_ms,
                atten_db,
                None,
                Duration::ZERO,
            );
            if h.count("speech_start") > 0 || h.count("bot_audio_end") != 1 {
                false_barge_ins += 1;
                eprintln!(
                    "echo at {delay_ms} ms, {atten_db} dB: {:?}",
                    h.events()
                        .iter()
                        .map(|(t, k)| format!("{}@{}", k.type_name(), t.as_millis()))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
    assert_eq!(false_barge_ins, 0, "false barge-ins in {cases} echo cases");
    // Without the gate the same echo does interrupt: the test hears what the gate removes.
    let h = call_with_echo(
        SessionConfig {
            echo_margin_db: 0.0,
            ..SessionConfig::default()
        },
        120,
        12.0,
        None,
        Duration::ZERO,
    );
    assert!(
        h.count("speech_start") > 0,
        "ungated echo is heard as speech"
    );
}

#[test]
fn a_caller_talking_over_the_echo_does_interrupt() {
    let voice = at_level("audio/en/librispeech-1995-1837-0001.wav", 3000.0);
    for delay_ms in [50, 250] {
        for atten_db in [6.0, 20.0] {
            let h = call_with_echo(
                SessionConfig::default(),
                delay_ms,
                atten_db,
                Some(&voice),
                Duration::from_millis(2_000),
            );
            let barge = h.events().into_iter().find(
                |(_, k)| matches!(k, EventKind::BotAudioEnd { reason, .. } if reason == "barge_in"),
            );
            let (at, _) = barge.unwrap_or_else(|| {
                panic!("echo at {delay_ms} ms, {atten_db} dB: the caller never got through")
            });
            // Stopped within a few frames of the caller's first words (the recording starts
            // with a breath, so allow for its onset).
            assert!(
                at >= Duration::from_millis(2_000) && at <= Duration::from_millis(2_600),
                "echo at {delay_ms} ms, {atten_db} dB: stopped at {at:?}"
            );
        }
    }
}

/// What the recognizer is asked to hear of a caller who talks over the bot's echo, against
/// the caller's own voice: the RMS of the difference (what else it carries), at the frame
/// shift that lines them up best.
fn echo_left_in_the_final(config: SessionConfig, voice: &[i16]) -> f32 {
    let h = call_with_echo(config, 120, 12.0, Some(voice), Duration::from_millis(2_000));
    let heard = h
        .outputs
        .iter()
        .find_map(|(_, o)| match o {
            SessionOutput::Recognize {
                pcm,
                is_final: true,
                ..
            } => Some(pcm.clone()),
            _ => None,
        })
        .expect("the caller's words were sent to the recognizer");
    // The utterance starts on a frame, up to the preroll before the voice or later in it.
    let diff = |frames: i64| -> Vec<i16> {
        heard
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let j = usize::try_from(i as i64 + frames * 320).ok();
                x.saturating_sub(j.and_then(|j| voice.get(j)).copied().unwrap_or(0))
            })
            .collect()
    };
    let best = (-20i64..=150)
        .min_by(|&a, &b| hotline::audio::rms(&diff(a)).total_cmp(&hotline::audio::rms(&diff(b))))
        .unwrap_or(0);
    // The bot stops within a few frames of the caller's voice: its echo lies in the first
    // 400 ms of what the recognizer hears (the preroll and the barge-in).
    let d = diff(best);
    hotline::audio::rms(&d[..d.len().min(6_400)])
}

#[test]
fn the_recognizer_hears_the_caller_with_the_echo_taken_out() {
    let voice = at_level("audio/en/librispeech-1995-1837-0001.wav", 3000.0);
    let with = echo_left_in_the_final(SessionConfig::default(), &voice);
    let without = echo_left_in_the_final(
        SessionConfig {
            echo_cancel: false,
            ..SessionConfig::default()
        },
        &voice,
    );
    // The bot at 3000 RMS, 12 dB down: several hundred of echo under the caller's first words
    // without the canceller. With it, at least 12 dB less.
    eprintln!("echo left in the final: {with:.0} with the canceller, {without:.0} without");
    assert!(
        without > 300.0,
        "the echo reached the recognizer: {without}"
    );
    assert!(
        with < without / 4.0,
        "echo left with the canceller {with}, without {without}"
    );
}

/// The bot says two sentences; the caller speaks over the second. Returns the harness just
/// after the caller's utterance ended (its final asked for), and the turn of that utterance.
fn barged_in_by(words: &[Frame]) -> (Harness, TurnId) {
    barged_in_asking(words, None)
}

/// [`barged_in_by`], the bot waiting for an answer to `expect`.
fn barged_in_asking(words: &[Frame], expect: Option<Grammar>) -> (Harness, TurnId) {
    barged_in_with(endpoint_config(), words, expect)
}

/// [`barged_in_asking`] on a session with `config`.
fn barged_in_with(
    config: SessionConfig,
    words: &[Frame],
    expect: Option<Grammar>,
) -> (Harness, TurnId) {
    let mut h = Harness::new(config);
    let first = at_level("audio/en/cmu_arctic_us_aew_a0001.wav", 3000.0);
    let second = at_level("audio/en/jfk.wav", 3000.0);
    h.bot_asks(
        TurnId(0),
        &[
            ("Author of the danger trail.", first.clone()),
            (
                "And so, my fellow Americans, ask not what your country can do for you.",
                second,
            ),
        ],
        expect,
    );
    // Into the second sentence by 2 s.
    h.silence(first.len() as u64 / 16 + 2_000);
    for f in words {
        h.feed(f);
    }
    h.silence(800);
    let (turn, _) = *h
        .all_final_requests()
        .last()
        .expect("the caller's words are recognized");
    (h, turn)
}

#[test]
fn a_backchannel_does_not_interrupt_the_bot_and_stop_does() {
    let short = &speech()[..40];
    // "uh-huh": the bot stops at once (it cannot know yet), then goes on from the start of
    // the sentence it was cut in, and the dialogue is not asked.
    let (mut h, turn) = barged_in_by(short);
    let (_, heard) = h
        .first("bot_heard")
        .expect("what the caller heard is recorded");
    let EventKind::BotHeard {
        text, played_ms, ..
    } = heard
    else {
        unreachable!()
    };
    assert!(
        text.starts_with("Author of the danger trail. And so"),
        "{text}"
    );
    assert!(!text.contains("your country"), "{text}");
    assert!(played_ms > 3_000, "{played_ms}");
    h.session
        .handle_transcript(turn, true, &final_words("Uh-huh."), h.now);
    h.drain();
    assert!(matches!(
        h.first("bot_resumed"),
        Some((_, EventKind::BotResumed { reason, .. })) if reason.code() == "backchannel"
    ));
    let before = h.bot_frames;
    h.silence(1_000);
    assert_eq!(h.bot_frames - before, 50, "the bot speaks again");
    assert!(!h.outputs.iter().any(|(_, o)| matches!(
        o,
        SessionOutput::Converse {
            input: CallerInput::Speech { .. },
            ..
        }
    )));
    h.silence(12_000);
    assert!(matches!(
        h.events().iter().rev().find(|(_, k)| k.type_name() == "bot_audio_end"),
        Some((_, EventKind::BotAudioEnd { reason, .. })) if reason == "done"
    ));

    // "stop": a real interruption; the reply stays cut and the dialogue hears the words.
    let (mut h, turn) = barged_in_by(short);
    h.session
        .handle_transcript(turn, true, &final_words("Stop."), h.now);
    h.drain();
    assert!(h.first("bot_resumed").is_none());
    assert!(h.outputs.iter().any(|(_, o)| matches!(
        o,
        SessionOutput::Converse { input: CallerInput::Speech { text, .. }, .. } if text == "Stop."
    )));
    let before = h.bot_frames;
    h.silence(1_000);
    assert_eq!(h.bot_frames, before, "the bot stays quiet");
}

#[test]
fn words_over_the_bot_are_recognized_with_backchannels_and_stop_words_in_the_phrase_list() {
    let short = &speech()[..40];
    let menu = Grammar::Phrases(["billing", "talk to an agent"].map(String::from).to_vec());
    let grammars = |h: &Harness| -> Vec<Option<Grammar>> {
        h.outputs
            .iter()
            .filter_map(|(_, o)| match o {
                SessionOutput::Recognize {
                    is_final: true,
                    grammar,
                    ..
                } => Some(grammar.clone()),
                _ => None,
            })
            .collect()
    };
    // Over the bot: what callers say over a bot first (a prompt takes a list's first
    // phrases), then the menu.
    let (h, _) = barged_in_asking(short, Some(menu.clone()));
    let over = grammars(&h);
    assert!(!over.is_empty());
    for grammar in &over {
        let Some(Grammar::Phrases(phrases)) = grammar else {
            panic!("a phrase list: {grammar:?}");
        };
        assert_eq!(
            &phrases[phrases.len() - 2..],
            &["billing", "talk to an agent"]
        );
        for said in ["uh huh", "mhm", "okay", "stop", "wait"] {
            let at = phrases.iter().position(|p| p == said);
            assert!(
                at.is_some_and(|i| i < phrases.len() - 2),
                "{said} first in {phrases:?}"
            );
        }
    }
    // Once the bot has finished, an answer is recognized with the menu alone.
    let mut h = Harness::new(endpoint_config());
    h.bot_asks(
        TurnId(0),
        &[("Say billing.", vec![0; 3_200])],
        Some(menu.clone()),
    );
    h.silence(400);
    for f in short {
        h.feed(f);
    }
    h.silence(800);
    let after = grammars(&h);
    assert!(!after.is_empty());
    assert!(after.iter().all(|g| g.as_ref() == Some(&menu)), "{after:?}");
    // A node with no phrase list keeps none.
    let (h, _) = barged_in_asking(short, None);
    assert!(grammars(&h).iter().all(Option::is_none));
}

#[test]
fn unclear_words_over_the_bot_resume_it_unless_they_answer_what_it_asks() {
    let short = &speech()[..40];
    let menu = Grammar::Phrases(
        ["billing", "talk to an agent", "internet outage"]
            .map(String::from)
            .to_vec(),
    );
    let said = |text: &str, confidence: f32| Recognized {
        text: text.to_string(),
        confidence: Some(confidence),
    };
    let unclear_at = |below: f32| SessionConfig {
        barge_in_unclear_below: below,
        ..endpoint_config()
    };
    let outcome_with = |config: SessionConfig, expect: Option<Grammar>, words: Recognized| {
        let (mut h, turn) = barged_in_with(config, short, expect);
        h.session.handle_transcript(turn, true, &words, h.now);
        h.drain();
        let resumed = match h.first("bot_resumed") {
            Some((_, EventKind::BotResumed { reason, .. })) => Some(reason.code()),
            _ => None,
        };
        let asked = h.outputs.iter().any(|(_, o)| {
            matches!(
                o,
                SessionOutput::Converse {
                    input: CallerInput::Speech { .. },
                    ..
                }
            )
        });
        let before = h.bot_frames;
        h.silence(1_000);
        (resumed, asked, h.bot_frames > before)
    };
    let outcome =
        |expect: Option<Grammar>, words: Recognized| outcome_with(unclear_at(0.3), expect, words);
    // The rule is off by default: unsure words are taken as meant.
    assert_eq!(
        outcome_with(
            SessionConfig::default(),
            Some(menu.clone()),
            said("I'm handsome.", 0.2)
        ),
        (None, true, false)
    );
    // With it on, a backchannel misheard over the echo: a few unsure words the menu does not name. The
    // bot goes on and the dialogue is not asked.
    assert_eq!(
        outcome(Some(menu.clone()), said("I'm handsome.", 0.2)),
        (Some("unclear"), false, true)
    );
    // The same words heard with confidence: the caller meant them.
    assert_eq!(
        outcome(Some(menu.clone()), said("I'm handsome.", 0.9)),
        (None, true, false)
    );
    // An answer the menu names stops the bot, however unsure the recognizer was.
    assert_eq!(
        outcome(Some(menu.clone()), said("An agent.", 0.2)),
        (None, true, false)
    );
    // So does a stop word.
    assert_eq!(outcome(Some(menu), said("Wait.", 0.2)), (None, true, false));
    // A bot that waits for no phrases in particular takes any words as meant.
    assert_eq!(
        outcome(None, said("I'm handsome.", 0.2)),
        (None, true, false)
    );
}

#[test]
fn a_short_noise_over_the_bot_resumes_it() {
    let mut h = Harness::new(endpoint_config());
    let bot = at_level("audio/en/jfk.wav", 3000.0);
    h.bot_speaks(TurnId(0), &[("And so, my fellow Americans.", bot)]);
    h.silence(1_000);
    // 80 ms of a loud click: enough to stop the bot, too short to be speech.
    let click: Vec<i16> = (0..1_280)
        .map(|i| ((i as f32 * 0.9).sin() * 12_000.0) as i16)
        .collect();
    for f in frames_of(&click) {
        h.feed(&f);
    }
    h.silence(1_000);
    if h.count("bot_audio_end") > 0 {
        assert!(matches!(
            h.first("bot_resumed"),
            Some((_, EventKind::BotResumed { reason, .. })) if reason.code() == "no_words"
        ));
    }
    let before = h.bot_frames;
    h.silence(400);
    assert_eq!(h.bot_frames - before, 20, "the bot is speaking");
}

#[test]
fn a_prompt_without_barge_in_plays_through_speech_and_keys() {
    let mut h = Harness::new(endpoint_config());
    let bot = BotTurn {
        say: vec![Prompt::text("This call may be recorded.")],
        no_barge_in: true,
        ..BotTurn::default()
    };
    h.session.handle_bot_turn(TurnId(0), bot, h.now);
    h.session.handle_bot_audio(
        TurnId(0),
        &vec![3000; 16_000 * 4],
        "This call may be recorded.",
        true,
        h.now,
    );
    h.drain();
    h.silence(500);
    for f in speech() {
        h.feed(&f);
    }
    h.session.handle_dtmf('5', h.now);
    h.drain();
    assert_eq!(h.count("dtmf"), 1, "the key is recorded");
    assert!(
        h.first("speech_start").is_none(),
        "speech over it is not acted on"
    );
    h.silence(1_000);
    let (_, end) = h.first("bot_audio_end").expect("the prompt ended");
    assert!(matches!(end, EventKind::BotAudioEnd { reason, .. } if reason == "done"));
    assert!(!h.outputs.iter().any(|(_, o)| matches!(
        o,
        SessionOutput::Converse {
            input: CallerInput::Dtmf { .. },
            ..
        }
    )));
}

/// The caller who talks over the bot's goodbye does not leave the call on a line that no longer
/// answers: a reply that the hang-up follows plays to its end, and the call ends.
#[test]
fn a_goodbye_plays_through_speech_and_the_call_ends() {
    let mut h = Harness::new(endpoint_config());
    h.bot_says(
        TurnId(0),
        "Thanks for calling. Goodbye!",
        Some(Action::Hangup {
            reason: "bot.goodbye".into(),
        }),
    );
    h.silence(300);
    for f in speech() {
        h.feed(&f);
    }
    assert!(
        h.first("speech_start").is_none(),
        "speech over it is not acted on"
    );
    h.silence(3_000);
    let (_, end) = h.first("bot_audio_end").expect("the goodbye ended");
    assert!(matches!(end, EventKind::BotAudioEnd { reason, .. } if reason == "done"));
    assert!(h
        .outputs
        .iter()
        .any(|(_, o)| matches!(o, SessionOutput::Hangup { .. })));
}

/// The caller says a sentence and pauses 300 ms: the one final asked for so far is the
/// speculative one. Returns when the sentence ended, and the speculation's turn and pause.
fn spoke_then_paused(config: &SessionConfig) -> (Harness, Duration, TurnId, Duration) {
    let mut h = Harness::new(config.clone());
    h.silence(300);
    for f in speech() {
        h.feed(&f);
    }
    let spoke_until = h.now;
    h.silence(300);
    let asked = h.all_final_requests();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let (turn, Some(last_voice)) = asked[0] else {
        panic!("the first final is speculative: {asked:?}")
    };
    (h, spoke_until, turn, last_voice)
}

#[test]
fn a_speculative_final_answers_at_the_endpoint_and_is_dropped_when_the_caller_goes_on() {
    let config = SessionConfig {
        speculative_asr_ms: 200,
        endpoint_silence_ms: 600,
        ..SessionConfig::default()
    };
    // The caller stops: the final is asked 200 ms into the pause, and when its text is back
    // before the endpoint, the dialogue is asked at the endpoint itself.
    let (mut h, spoke_until, turn, last_voice) = spoke_then_paused(&config);
    h.session.handle_speculative_transcript(
        turn,
        last_voice,
        Some(&final_words("one two three")),
        h.now,
    );
    h.drain();
    assert!(
        h.first("transcript").is_none(),
        "nothing is final before the endpoint"
    );
    h.silence(600);
    assert_eq!(h.all_final_requests().len(), 1, "no second recognition");
    let (ended, _) = h.first("speech_end").expect("speech_end");
    let (heard, _) = h
        .first("transcript")
        .expect("the speculative text is the final");
    assert_eq!(ended, heard, "the dialogue is asked at the endpoint");
    assert!(ended <= spoke_until + Duration::from_millis(700));
    assert!(h.outputs.iter().any(|(_, o)| matches!(
        o,
        SessionOutput::Converse { input: CallerInput::Speech { text, .. }, .. } if text == "one two three"
    )));

    // The caller goes on after the speculation: its text is dropped, and the next pause asks
    // for the whole utterance.
    let mut h = Harness::new(config);
    h.silence(300);
    let frames = speech();
    for f in &frames {
        h.feed(f);
    }
    h.silence(300);
    let (turn, Some(first_pause)) = h.all_final_requests()[0] else {
        panic!("speculative first")
    };
    for f in &frames {
        h.feed(f);
    }
    h.session.handle_speculative_transcript(
        turn,
        first_pause,
        Some(&final_words("half of it")),
        h.now,
    );
    h.silence(1_000);
    let finals = h.all_final_requests();
    assert_eq!(finals.len(), 2, "{finals:?}");
    let (same_turn, Some(second_pause)) = finals[1] else {
        panic!("{finals:?}")
    };
    assert_eq!(same_turn, turn, "one utterance");
    assert!(second_pause > first_pause);
    assert!(
        h.first("transcript").is_none(),
        "the stale text is not the final"
    );
    h.session.handle_speculative_transcript(
        turn,
        second_pause,
        Some(&final_words("all of it")),
        h.now,
    );
    h.drain();
    assert!(matches!(
        h.first("transcript"),
        Some((_, EventKind::Transcript { text, .. })) if text == "all of it"
    ));
}

/// The words' say on a pause (`session.end_on_words`): a speculative final that reads as a
/// finished sentence ends the turn as soon as it is back, once the pause is
/// `words_min_silence_ms` long; one that leads on keeps the turn open past the fixed endpoint,
/// up to the longest silence.
#[test]
fn finished_words_end_the_turn_early_and_words_that_lead_on_wait_longer() {
    let config = SessionConfig {
        speculative_asr_ms: 200,
        endpoint_silence_ms: 600,
        turn_max_silence_ms: 1_500,
        words_min_silence_ms: 0,
        ..SessionConfig::default()
    };
    let ended_by = |h: &Harness| match h.first("speech_end") {
        Some((at, EventKind::SpeechEnd { by, .. })) => Some((at, by)),
        _ => None,
    };

    // Finished: the turn ends the moment the text is back, 300 ms into the pause, with that
    // text as the final.
    let (mut h, spoke_until, turn, last_voice) = spoke_then_paused(&config);
    let sentence = "I'd like to speak to customer support.";
    h.session
        .handle_speculative_transcript(turn, last_voice, Some(&final_words(sentence)), h.now);
    h.drain();
    let (ended, by) = ended_by(&h).expect("the words end the turn");
    assert_eq!(by, Some(TurnEnd::Words));
    assert!(
        ended <= spoke_until + Duration::from_millis(400),
        "{ended:?}"
    );
    assert!(h.outputs.iter().any(|(_, o)| matches!(
        o,
        SessionOutput::Converse { input: CallerInput::Speech { text, .. }, .. } if text == sentence
    )));
    assert_eq!(h.all_final_requests().len(), 1, "no second recognition");

    // Back before the shortest pause the words end: the turn ends when the pause reaches it,
    // and not before.
    let floor = SessionConfig {
        words_min_silence_ms: 450,
        ..config.clone()
    };
    let (mut h, _, turn, last_voice) = spoke_then_paused(&floor);
    h.session
        .handle_speculative_transcript(turn, last_voice, Some(&final_words(sentence)), h.now);
    h.drain();
    assert!(ended_by(&h).is_none(), "the pause is shorter than 450 ms");
    h.silence(200);
    let (ended, by) = ended_by(&h).expect("the words end the turn at 450 ms");
    assert_eq!(by, Some(TurnEnd::Words));
    assert!(
        ended >= last_voice + Duration::from_millis(450)
            && ended < last_voice + Duration::from_millis(600),
        "{ended:?} {last_voice:?}"
    );
    // The caller going on before it voids the verdict: the next pause is judged afresh.
    let (mut h, _, turn, last_voice) = spoke_then_paused(&floor);
    h.session
        .handle_speculative_transcript(turn, last_voice, Some(&final_words(sentence)), h.now);
    h.drain();
    for f in speech() {
        h.feed(&f);
    }
    h.silence(500);
    assert!(
        ended_by(&h).is_none(),
        "the words were about the last pause"
    );

    // Leading on: past the fixed endpoint the turn is still open; the longest silence ends it.
    let (mut h, spoke_until, turn, last_voice) = spoke_then_paused(&config);
    h.session.handle_speculative_transcript(
        turn,
        last_voice,
        Some(&final_words("I want to check my balance and")),
        h.now,
    );
    h.drain();
    h.silence(700);
    assert!(ended_by(&h).is_none(), "a sentence that leads on waits");
    h.silence(800);
    let (ended, by) = ended_by(&h).expect("the longest silence ends it");
    assert_eq!(by, Some(TurnEnd::Silence));
    assert!(
        ended >= spoke_until + Duration::from_millis(1_000),
        "{ended:?}"
    );

    // Switched off, finished words wait for the fixed endpoint.
    let off = SessionConfig {
        end_on_words: false,
        ..config
    };
    let (mut h, spoke_until, turn, last_voice) = spoke_then_paused(&off);
    h.session
        .handle_speculative_transcript(turn, last_voice, Some(&final_words(sentence)), h.now);
    h.drain();
    assert!(ended_by(&h).is_none());
    h.silence(400);
    let (ended, by) = ended_by(&h).expect("the fixed endpoint");
    assert_eq!(by, Some(TurnEnd::Silence));
    assert!(
        ended > spoke_until + Duration::from_millis(300),
        "{ended:?}"
    );
}

#[test]
fn a_quiet_gap_the_vad_still_calls_voice_is_a_pause() {
    // This sentence has a 240 ms gap 35 to 59 dB below its loudest frame, which the VAD
    // bridges as voice. Counted as pause, it is long enough for the speculative final.
    let sentence = recording("audio/en/speechbrain_spk1_snt1.wav");
    let speculated_mid_sentence = |pause_below_peak_db: f32| {
        let mut h = Harness::new(SessionConfig {
            speculative_asr_ms: 200,
            pause_below_peak_db,
            ..SessionConfig::default()
        });
        h.silence(300);
        for f in &sentence {
            h.feed(f);
        }
        !h.all_final_requests().is_empty()
    };
    assert!(speculated_mid_sentence(30.0));
    assert!(
        !speculated_mid_sentence(0.0),
        "the VAD alone bridges the gap"
    );
}

#[test]
fn barge_in_stops_the_bot_within_the_configured_frames() {
    for min_speech_ms in [40u64, 80, 160] {
        let mut h = Harness::new(SessionConfig {
            barge_in_min_speech_ms: min_speech_ms,
            ..endpoint_config()
        });
        h.bot_says(TurnId(0), "Hello, how can I help?", None);
        h.silence(500);
        // The session's own VAD tells when the caller's voice begins; from that frame on the
        // bot may play at most the configured speech, in frames.
        let mut vad = hotline::audio::vad::Vad::new();
        let mut voiced_from = None;
        let mut bot_after_onset = 0;
        for (i, f) in recording("audio/en/speechbrain_spk1_snt1.wav")
            .iter()
            .enumerate()
        {
            if voiced_from.is_none() && vad.score(f) >= 0.5 {
                voiced_from = Some(i);
            }
            let out = h.feed(f);
            if voiced_from.is_some() && out.is_some() {
                bot_after_onset += 1;
            }
        }
        assert!(voiced_from.is_some(), "the caller spoke");
        let allowed = (min_speech_ms / 20) as usize;
        assert!(
            bot_after_onset < allowed,
            "barge-in after {min_speech_ms} ms: the bot played {bot_after_onset} frames over the caller"
        );
        assert!(h.count("bot_heard") == 1);
    }
}
