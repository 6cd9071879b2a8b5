//! One bench call, sans-IO: a caller that dials, listens to the bot, speaks its recorded turns
//! and measures what it hears, as a phone would.
//!
//! Owns the call's script and its measurements. Once answered, the caller sends one G.711 µ-law
//! packet every 20 ms until it hangs up (silence between turns, as a phone does). It waits for
//! the bot's greeting to start and then go quiet ([`CallPlan::bot_quiet`] without bot audio),
//! speaks turn 1, waits for the answer to start and end, speaks the next turn, and so on; after
//! the last answer it hangs up. One turn ([`CallPlan::barge_in_turn`]) is spoken over the bot
//! instead: [`CallPlan::barge_in_after`] after the bot's previous answer starts.
//!
//! What is measured, all on the caller's clock:
//! - **voice-to-voice**: from the send time of the turn's last voiced frame to the arrival of
//!   the first bot packet carrying audio (decoded RMS above [`BOT_AUDIO_RMS`]: the server sends
//!   silent packets while the bot is quiet) of a run of bot audio that starts after it;
//! - **barge-in**: from the send time of the barge-in turn's first voiced frame to the last bot
//!   audio packet of the run it talked over (how long the bot kept talking over the caller);
//! - the bot stream's loss (sequence gaps) and interarrival jitter (RFC 3550, through the media
//!   layer's `ReceiveStats`).
//!
//! Invariants: every input carries `now` (time since the call began); nothing here reads a
//! clock or a socket; a run of bot audio is one stretch with no gap of `bot_quiet` or more, so
//! an answer never counts as started while the bot is still playing the run before it; the
//! call ends exactly once and [`BenchCall::finish`] says how.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hotline_media::rtp::{is_rtcp, ReceiveStats, RtpPacket, Ssrc};
use hotline_media::Codec;
use hotline_sip::sdp::{accept_answer, write_offer, LocalSdp, MediaPorts, SessionDescription};

use super::turns::{silent_frame, CallerTurn, LINE_RATE_HZ};
use super::BenchError;
use hotline_sip::uac::{CallerDialog, DialogEnd, DialogEvent, DialogSetup};

/// The packetisation interval.
pub const PTIME: Duration = Duration::from_millis(20);
/// Decoded RMS (sample units) from which a bot packet carries audio.
pub const BOT_AUDIO_RMS: f32 = 64.0;
/// RTP timestamp units per packet (20 ms at 8 kHz).
const TIMESTAMP_STEP: u32 = LINE_RATE_HZ / 50;
/// The codecs the caller offers: G.711 µ-law only, as a plain phone line.
const OFFERED: [Codec; 1] = [Codec::Pcmu];

/// What every call of a run does.
#[derive(Debug, Clone)]
pub struct CallPlan {
    pub turns: Arc<Vec<CallerTurn>>,
    /// The turn (0-based) spoken over the bot's previous answer (the greeting for turn 0).
    pub barge_in_turn: Option<usize>,
    /// How long after the bot's answer starts the barge-in turn starts.
    pub barge_in_after: Duration,
    /// Bot silence that ends the bot's greeting or answer.
    pub bot_quiet: Duration,
    /// How long the caller waits for the bot to start answering before going on.
    pub answer_timeout: Duration,
    /// The longest answer the caller listens to before going on.
    pub max_answer: Duration,
}

/// The addresses and identifiers of one call.
#[derive(Debug, Clone)]
pub struct CallSetup {
    pub dialog: DialogSetup,
    /// Our RTP socket's address (written in the SDP offer).
    pub local_rtp: SocketAddr,
    /// Our RTCP socket's port (written as `a=rtcp` when not RTP + 1).
    pub local_rtcp_port: u16,
    pub ssrc: Ssrc,
    pub first_sequence: u16,
    pub first_timestamp: u32,
    /// The SDP `o=` session id.
    pub session_id: u64,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// On the SIP socket, to the target.
    Sip(Vec<u8>),
    /// On the RTP socket.
    Rtp { to: SocketAddr, packet: Vec<u8> },
}

/// What was measured on one turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnMeasure {
    /// When the turn's first voiced frame was sent.
    pub onset_sent: Option<Duration>,
    /// When the turn's last voiced frame was sent.
    pub voice_end_sent: Option<Duration>,
    /// From the last voiced frame sent to the bot's first audio packet after it.
    pub voice_to_voice: Option<Duration>,
    /// From the onset sent to the last bot audio packet of the run talked over.
    pub barge_in: Option<Duration>,
}

/// The bot stream as received.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StreamFigures {
    pub expected: u64,
    pub received: u64,
    /// RFC 3550 interarrival jitter at the end of the call.
    pub jitter_ms: f64,
}

/// How a call went.
#[derive(Debug)]
pub struct CallOutcome {
    /// Why the call failed; `None` when it was answered, talked through and hung up.
    pub error: Option<BenchError>,
    /// One entry per turn spoken.
    pub turns: Vec<TurnMeasure>,
    pub stream: StreamFigures,
    /// From the INVITE to the end.
    pub duration: Duration,
}

/// A stretch of bot audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    start: Duration,
    last: Duration,
}

/// Where the script stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Dialing,
    /// Waiting for the bot's answer (the greeting when `next` is 0) before turn `next`.
    Listening {
        next: usize,
        since: Duration,
    },
    Speaking {
        turn: usize,
        frame: usize,
    },
    HangingUp,
    Over,
}

/// The answer the caller is waiting for: the first run of bot audio starting at or after
/// `after` (the last voiced frame sent, or the call's start for the greeting).
#[derive(Debug, Clone, Copy)]
struct Awaited {
    /// The turn it answers; `None` for the greeting.
    turn: Option<usize>,
    after: Duration,
    started: Option<Duration>,
    ended: bool,
}

/// A barge-in being measured: the onset went out while the bot played the run from `run_start`.
#[derive(Debug, Clone, Copy)]
struct BargeIn {
    turn: usize,
    onset: Duration,
    run_start: Duration,
}

/// Our RTP stream.
#[derive(Debug)]
struct Sender {
    remote: SocketAddr,
    payload_type: u8,
    ssrc: Ssrc,
    sequence: u16,
    timestamp: u32,
    next_due: Duration,
    first: bool,
}

/// One bench call.
#[derive(Debug)]
pub struct BenchCall {
    plan: Arc<CallPlan>,
    setup: CallSetup,
    dialog: CallerDialog,
    phase: Phase,
    sender: Option<Sender>,
    bot_payload_type: Option<u8>,
    receive: ReceiveStats,
    current_run: Option<Run>,
    awaited: Option<Awaited>,
    barge_in: Option<BargeIn>,
    turns: Vec<TurnMeasure>,
    turns_finished: usize,
    error: Option<BenchError>,
    ended_at: Option<Duration>,
    outbox: VecDeque<Transmit>,
}

impl BenchCall {
    /// Dials: the INVITE with our SDP offer is queued at once (`now` is the call's start).
    pub fn new(plan: Arc<CallPlan>, setup: CallSetup, now: Duration) -> Self {
        let offer = write_offer(
            &OFFERED,
            &LocalSdp {
                ip: setup.local_rtp.ip(),
                ports: MediaPorts {
                    rtp: setup.local_rtp.port(),
                    rtcp: setup.local_rtcp_port,
                },
                session_id: setup.session_id,
                session_version: 1,
            },
        );
        let dialog = CallerDialog::invite(setup.dialog.clone(), &offer, now);
        let mut call = Self {
            plan,
            setup,
            dialog,
            phase: Phase::Dialing,
            sender: None,
            bot_payload_type: None,
            receive: ReceiveStats::default(),
            current_run: None,
            awaited: None,
            barge_in: None,
            turns: Vec::new(),
            turns_finished: 0,
            error: None,
            ended_at: None,
            outbox: VecDeque::new(),
        };
        call.drain_dialog(now);
        call
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// Whether the call is over (nothing more to send or wait for).
    pub fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// Turns whose answer the caller has finished waiting for (answered or not).
    pub fn turns_finished(&self) -> usize {
        self.turns_finished
    }

    /// The turns the call speaks.
    pub fn turn_count(&self) -> usize {
        self.plan.turns.len()
    }

    /// When [`Self::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let rtp = self.sender.as_ref().map(|s| s.next_due);
        match (rtp, self.dialog.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A datagram on the SIP socket.
    pub fn handle_sip(&mut self, now: Duration, data: &[u8]) {
        self.dialog.handle_datagram(now, data);
        self.drain_dialog(now);
        self.handle_timeout(now);
    }

    /// A datagram on the RTP socket.
    pub fn handle_rtp(&mut self, now: Duration, data: &[u8]) {
        if is_rtcp(data) {
            return;
        }
        let Ok(packet) = RtpPacket::parse(data) else {
            return;
        };
        if Some(packet.payload_type) != self.bot_payload_type {
            return;
        }
        let arrival_rtp = now.as_micros() as u64 * LINE_RATE_HZ as u64 / 1_000_000;
        self.receive
            .on_packet(packet.ssrc, packet.sequence, packet.timestamp, arrival_rtp);
        let pcm = crate::audio::g711::ulaw_decode_slice(packet.payload);
        if crate::audio::rms(&pcm) >= BOT_AUDIO_RMS {
            self.bot_audio(now);
        }
        self.handle_timeout(now);
    }

    /// Runs whatever is due at `now`: SIP timers, the script, the packets to send.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.dialog.handle_timeout(now);
        self.drain_dialog(now);
        self.check_quiet(now);
        self.step(now);
        self.send_due(now);
    }

    /// The outcome, once the call is over (or abandoned).
    pub fn finish(self) -> CallOutcome {
        let error = match (self.error, self.phase) {
            (Some(error), _) => Some(error),
            (None, Phase::Over) => None,
            (None, _) => Some(BenchError::Abandoned),
        };
        CallOutcome {
            error,
            turns: self.turns,
            stream: StreamFigures {
                expected: self.receive.expected(),
                received: self.receive.received(),
                jitter_ms: self.receive.jitter() as f64 * 1000.0 / LINE_RATE_HZ as f64,
            },
            duration: self.ended_at.unwrap_or_default(),
        }
    }

    fn drain_dialog(&mut self, now: Duration) {
        while let Some(datagram) = self.dialog.poll_transmit() {
            self.outbox.push_back(Transmit::Sip(datagram));
        }
        while let Some(event) = self.dialog.poll_event() {
            match event {
                DialogEvent::Ringing { .. } => {}
                DialogEvent::Answered { body } => self.answered(now, &body),
                DialogEvent::Ended(end) => self.ended(now, end),
            }
            while let Some(datagram) = self.dialog.poll_transmit() {
                self.outbox.push_back(Transmit::Sip(datagram));
            }
        }
    }

    /// The call was answered: read the SDP answer and start the stream and the script.
    fn answered(&mut self, now: Duration, body: &[u8]) {
        let negotiated = SessionDescription::parse(body)
            .and_then(|answer| accept_answer(&answer, &OFFERED))
            .map_err(|source| BenchError::Sdp {
                target: self.setup.dialog.target_text.clone(),
                source,
            });
        match negotiated {
            Ok(negotiated) => {
                self.bot_payload_type = Some(negotiated.payload_type);
                self.sender = Some(Sender {
                    remote: SocketAddr::new(negotiated.remote_ip, negotiated.remote_port),
                    payload_type: negotiated.payload_type,
                    ssrc: self.setup.ssrc,
                    sequence: self.setup.first_sequence,
                    timestamp: self.setup.first_timestamp,
                    next_due: now,
                    first: true,
                });
                self.awaited = Some(Awaited {
                    turn: None,
                    after: now,
                    started: None,
                    ended: false,
                });
                self.phase = Phase::Listening {
                    next: 0,
                    since: now,
                };
            }
            Err(error) => {
                self.error.get_or_insert(error);
                self.hang_up(now);
            }
        }
    }

    fn ended(&mut self, now: Duration, end: DialogEnd) {
        let turn_count = self.plan.turns.len();
        match end {
            DialogEnd::ByeAnswered => {}
            DialogEnd::ServerBye => {
                // After the last turn, the bot may well say goodbye itself.
                let all_spoken = matches!(self.phase, Phase::Listening { next, .. } if next >= turn_count)
                    || self.phase == Phase::HangingUp;
                if !all_spoken {
                    let stage = match self.phase {
                        Phase::Listening { next: 0, .. } => "the greeting".to_string(),
                        Phase::Listening { next, .. } => {
                            format!("the answer to turn {next} of {turn_count}")
                        }
                        Phase::Speaking { turn, .. } => {
                            format!("turn {} of {turn_count}", turn + 1)
                        }
                        _ => "the call set-up".to_string(),
                    };
                    self.error.get_or_insert(BenchError::HungUp {
                        target: self.setup.dialog.target_text.clone(),
                        stage,
                    });
                }
            }
            DialogEnd::Failed(error) => {
                self.error.get_or_insert(error.into());
            }
        }
        self.sender = None;
        self.phase = Phase::Over;
        self.ended_at = Some(now);
    }

    fn hang_up(&mut self, now: Duration) {
        self.sender = None;
        if self.dialog.is_confirmed() {
            self.phase = Phase::HangingUp;
            self.dialog.hang_up(now);
            self.drain_dialog(now);
        } else if !self.dialog.is_terminated() {
            // Nothing to hang up yet: let the INVITE transaction end on its own.
            self.phase = Phase::HangingUp;
        } else {
            self.phase = Phase::Over;
            self.ended_at.get_or_insert(now);
        }
    }

    /// A bot packet carrying audio arrived.
    fn bot_audio(&mut self, now: Duration) {
        match &mut self.current_run {
            Some(run) => run.last = now,
            None => {
                self.current_run = Some(Run {
                    start: now,
                    last: now,
                });
                if let Some(awaited) = &mut self.awaited {
                    if awaited.started.is_none() && now >= awaited.after {
                        awaited.started = Some(now);
                        if let Some(turn) = awaited.turn {
                            let measure = &mut self.turns[turn];
                            measure.voice_to_voice =
                                measure.voice_end_sent.map(|sent| now.saturating_sub(sent));
                        }
                    }
                }
            }
        }
    }

    /// Ends the bot's current run once it has been quiet long enough.
    fn check_quiet(&mut self, now: Duration) {
        let Some(run) = self.current_run else {
            return;
        };
        if now < run.last + self.plan.bot_quiet {
            return;
        }
        self.current_run = None;
        if let Some(barge) = self.barge_in {
            if barge.run_start == run.start {
                self.barge_in = None;
                if run.last > barge.onset {
                    self.turns[barge.turn].barge_in = Some(run.last - barge.onset);
                }
            }
        }
        if let Some(awaited) = &mut self.awaited {
            if awaited.started == Some(run.start) {
                awaited.ended = true;
            }
        }
    }

    /// Moves the script on.
    fn step(&mut self, now: Duration) {
        let Phase::Listening { next, since } = self.phase else {
            return;
        };
        let Some(awaited) = self.awaited else {
            return;
        };
        let plan = &self.plan;
        let barge_in_now = plan.barge_in_turn == Some(next)
            && next < plan.turns.len()
            && matches!(
                (awaited.started, self.current_run),
                (Some(start), Some(run)) if run.start == start && now >= start + plan.barge_in_after
            );
        let answered = awaited.ended;
        let gave_up = match awaited.started {
            None => now >= since + plan.answer_timeout,
            Some(start) => now >= start + plan.max_answer,
        };
        if !(barge_in_now || answered || gave_up) {
            return;
        }
        if awaited.turn.is_some() {
            self.turns_finished += 1;
        }
        self.awaited = None;
        if next < plan.turns.len() {
            self.turns.push(TurnMeasure::default());
            self.phase = Phase::Speaking {
                turn: next,
                frame: 0,
            };
        } else {
            self.hang_up(now);
        }
    }

    /// Sends every packet due by `now`: the current turn's next frame, or silence.
    fn send_due(&mut self, now: Duration) {
        while self.sender.as_ref().is_some_and(|s| s.next_due <= now) {
            let payload = self.next_payload(now);
            let Some(sender) = &mut self.sender else {
                return;
            };
            let mut packet = Vec::with_capacity(12 + payload.len());
            RtpPacket {
                marker: sender.first,
                payload_type: sender.payload_type,
                sequence: sender.sequence,
                timestamp: sender.timestamp,
                ssrc: sender.ssrc,
                payload: &payload,
            }
            .write(&mut packet);
            sender.first = false;
            sender.sequence = sender.sequence.wrapping_add(1);
            sender.timestamp = sender.timestamp.wrapping_add(TIMESTAMP_STEP);
            sender.next_due += PTIME;
            self.outbox.push_back(Transmit::Rtp {
                to: sender.remote,
                packet,
            });
        }
    }

    /// The payload of the packet sent at `now`, noting the onset and the end of voice.
    fn next_payload(&mut self, now: Duration) -> [u8; 160] {
        let Phase::Speaking { turn, frame } = self.phase else {
            return silent_frame();
        };
        let plan = Arc::clone(&self.plan);
        let spoken = &plan.turns[turn];
        let payload = spoken
            .frames
            .get(frame)
            .copied()
            .unwrap_or_else(silent_frame);
        if frame == spoken.first_voiced {
            self.turns[turn].onset_sent = Some(now);
            if plan.barge_in_turn == Some(turn) {
                if let Some(run) = self.current_run {
                    self.barge_in = Some(BargeIn {
                        turn,
                        onset: now,
                        run_start: run.start,
                    });
                }
            }
        }
        if frame == spoken.last_voiced {
            self.turns[turn].voice_end_sent = Some(now);
            self.awaited = Some(Awaited {
                turn: Some(turn),
                after: now,
                started: None,
                ended: false,
            });
        }
        self.phase = if frame + 1 >= spoken.frames.len() {
            Phase::Listening {
                next: turn + 1,
                since: now,
            }
        } else {
            Phase::Speaking {
                turn,
                frame: frame + 1,
            }
        };
        payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::turns::FRAME_SAMPLES_8K;

    const SERVER_SIP: &str = "127.0.0.1:5060";
    const SERVER_RTP: &str = "127.0.0.1:30000";

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// A turn of `lead` silent frames, `voice` loud frames and `tail` silent frames.
    fn turn(lead: usize, voice: usize, tail: usize) -> CallerTurn {
        let mut samples = vec![0i16; lead * FRAME_SAMPLES_8K];
        samples
            .extend((0..voice * FRAME_SAMPLES_8K).map(|i| if i % 2 == 0 { 6_000 } else { -6_000 }));
        samples.resize(samples.len() + tail * FRAME_SAMPLES_8K, 0);
        CallerTurn::from_samples("t.wav", &samples).expect("voiced")
    }

    fn plan(turns: Vec<CallerTurn>, barge_in_turn: Option<usize>) -> Arc<CallPlan> {
        Arc::new(CallPlan {
            turns: Arc::new(turns),
            barge_in_turn,
            barge_in_after: ms(500),
            bot_quiet: ms(600),
            answer_timeout: ms(10_000),
            max_answer: ms(60_000),
        })
    }

    fn setup() -> CallSetup {
        CallSetup {
            dialog: DialogSetup {
                target: SERVER_SIP.parse().expect("addr"),
                target_text: "sip:127.0.0.1:5060".into(),
                request_uri: "sip:bot@127.0.0.1:5060".into(),
                local: "127.0.0.1:40000".parse().expect("addr"),
                call_id: "c1".into(),
                from_tag: "f1".into(),
                answer_wait: ms(5_000),
                ring_wait: hotline_sip::uac::RING_WAIT,
                user: "bench".into(),
                headers: Vec::new(),
            },
            local_rtp: "127.0.0.1:40002".parse().expect("addr"),
            local_rtcp_port: 40003,
            ssrc: Ssrc(7),
            first_sequence: 100,
            first_timestamp: 1_000,
            session_id: 1,
        }
    }

    /// A scripted server: answers the INVITE, then plays bot audio in the given windows (ms of
    /// call time) and silence otherwise, one packet every 20 ms.
    struct FakeServer {
        sequence: u16,
        talk: Vec<(u64, u64)>,
        sent_rtp: Vec<(Duration, Vec<u8>)>,
        sip_out: Vec<String>,
    }

    impl FakeServer {
        fn ok(&self) -> Vec<u8> {
            let sdp = format!(
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
                SERVER_RTP.rsplit(':').next().unwrap_or("0")
            );
            format!(
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-c1-invite\r\n\
                 From: <sip:bench@127.0.0.1:40000>;tag=f1\r\nTo: <sip:bot@127.0.0.1:5060>;tag=s\r\n\
                 Call-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:hotline@127.0.0.1:5060>\r\n\
                 Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            )
            .into_bytes()
        }

        fn bye_ok(&self) -> Vec<u8> {
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-c1-bye\r\n\
             From: <sip:bench@127.0.0.1:40000>;tag=f1\r\nTo: <sip:bot@127.0.0.1:5060>;tag=s\r\n\
             Call-ID: c1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
                .as_bytes()
                .to_vec()
        }

        fn packet(&mut self, at_ms: u64) -> Vec<u8> {
            let loud = self.talk.iter().any(|&(a, b)| (a..b).contains(&at_ms));
            let payload: Vec<u8> = if loud {
                (0..160)
                    .map(|i| {
                        crate::audio::g711::ulaw_encode(if i % 2 == 0 { 4_000 } else { -4_000 })
                    })
                    .collect()
            } else {
                silent_frame().to_vec()
            };
            let mut out = Vec::new();
            RtpPacket {
                marker: false,
                payload_type: 0,
                sequence: self.sequence,
                timestamp: self.sequence as u32 * 160,
                ssrc: Ssrc(99),
                payload: &payload,
            }
            .write(&mut out);
            self.sequence = self.sequence.wrapping_add(1);
            out
        }
    }

    /// Runs the call against the fake server on a virtual clock, 1 ms at a time.
    fn run(call: &mut BenchCall, server: &mut FakeServer, until_ms: u64) {
        for t in 0..until_ms {
            let now = ms(t);
            if t % 20 == 5 && call.sender.is_some() {
                let packet = server.packet(t);
                call.handle_rtp(now, &packet);
            }
            call.handle_timeout(now);
            while let Some(out) = call.poll_transmit() {
                match out {
                    Transmit::Sip(bytes) => {
                        let text = String::from_utf8_lossy(&bytes).to_string();
                        let reply = if text.starts_with("INVITE") {
                            Some(server.ok())
                        } else if text.starts_with("BYE") {
                            Some(server.bye_ok())
                        } else {
                            None
                        };
                        server.sip_out.push(text);
                        if let Some(reply) = reply {
                            call.handle_sip(now, &reply);
                        }
                    }
                    Transmit::Rtp { to, packet } => {
                        assert_eq!(to, SERVER_RTP.parse::<SocketAddr>().expect("addr"));
                        server.sent_rtp.push((now, packet));
                    }
                }
            }
            if call.is_over() {
                return;
            }
        }
    }

    #[test]
    fn two_turns_measured_at_the_caller() {
        // Turn 1: 5 silent, 25 voiced, 10 silent frames (0.8 s); turn 2 barges in.
        let plan = plan(vec![turn(5, 25, 10), turn(3, 40, 0)], Some(1));
        let mut call = BenchCall::new(plan, setup(), ms(0));
        let mut server = FakeServer {
            sequence: 1,
            // The greeting; the answer to turn 1; the answer to turn 2.
            talk: vec![(100, 2_000), (3_900, 8_000), (10_000, 11_000)],
            sent_rtp: Vec::new(),
            sip_out: Vec::new(),
        };
        // Turn 1 starts once the greeting has been quiet 600 ms (2 000 + 600 ms, on the next
        // packet), its voice ends 30 frames later; turn 2 barges in 500 ms into the answer.
        run(&mut call, &mut server, 20_000);
        assert!(call.is_over(), "the call ends");
        assert!(server.sip_out[1].starts_with("ACK "));
        assert!(server.sip_out.last().is_some_and(|m| m.starts_with("BYE ")));
        let outcome = call.finish();
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        assert_eq!(outcome.turns.len(), 2);
        let first = outcome.turns[0];
        let voice_end = first.voice_end_sent.expect("voice end sent");
        let onset = first.onset_sent.expect("onset sent");
        assert_eq!(voice_end - onset, ms(24 * 20));
        // The first bot audio packet at or after 3 900 ms arrives at 3 905 ms.
        assert_eq!(first.voice_to_voice, Some(ms(3_905) - voice_end));
        assert_eq!(first.barge_in, None);
        let second = outcome.turns[1];
        let onset = second.onset_sent.expect("onset");
        // Sent 500 ms after the answer started (plus the turn's 3 silent frames).
        assert!(
            onset >= ms(3_905 + 500) && onset <= ms(3_905 + 500 + 4 * 20),
            "{onset:?}"
        );
        // The bot talks on until 8 000 ms: its last audio packet arrives at 7 985 ms.
        assert_eq!(second.barge_in, Some(ms(7_985) - onset));
        let voice_end = second.voice_end_sent.expect("voice end");
        assert_eq!(second.voice_to_voice, Some(ms(10_005) - voice_end));
        assert_eq!(outcome.stream.expected, outcome.stream.received);
        // Our packets are continuous: one every 20 ms, sequence numbers in a row.
        let sequences: Vec<u16> = server
            .sent_rtp
            .iter()
            .map(|(_, p)| RtpPacket::parse(p).expect("rtp").sequence)
            .collect();
        assert!(sequences.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
        assert!(server
            .sent_rtp
            .windows(2)
            .all(|w| w[1].0 - w[0].0 == ms(20)));
    }

    #[test]
    fn a_silent_bot_leaves_turns_unanswered() {
        let plan = plan(vec![turn(0, 10, 0)], None);
        let mut call = BenchCall::new(plan, setup(), ms(0));
        let mut server = FakeServer {
            sequence: 1,
            talk: Vec::new(),
            sent_rtp: Vec::new(),
            sip_out: Vec::new(),
        };
        run(&mut call, &mut server, 30_000);
        assert!(call.is_over());
        assert_eq!(call.turns_finished(), 1);
        let outcome = call.finish();
        assert!(outcome.error.is_none());
        assert_eq!(outcome.turns.len(), 1);
        assert_eq!(outcome.turns[0].voice_to_voice, None);
    }
}
