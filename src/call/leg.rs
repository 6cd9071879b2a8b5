//! Call legs: the parties on one call besides its first caller (a human agent, a supervisor),
//! each with its own transport, codec and pacing, and the bridge that joins their audio.
//!
//! Inside a call every leg speaks the pipeline's 16 kHz 20 ms frames; a leg's transport does
//! its own transcoding (G.711, G.722, Opus) at its edge, so a SIP caller bridges to a WebRTC
//! agent with no codec in the middle. Each leg paces itself, as the caller does: for every
//! frame it sends, it gets exactly one frame back.
//!
//! Who hears whom: the caller hears the agents and a supervisor who barges in; an agent hears
//! the caller and a supervisor who whispers or barges; a supervisor hears the caller, the bot
//! and the agents ([`SupervisorMode`], [`Leg::speaks_to_caller`], [`Leg::heard_by`]).
//!
//! [`Bridge`] is sans-IO: it buffers what each side said until the other side's next tick, at
//! most [`BRIDGE_DEPTH`] frames (two clocks that drift apart lose the oldest frame, never grow
//! the delay).
//!
//! Invariant: a frame from one side is delivered to the other side at most once, in order.

use std::collections::VecDeque;

use tokio::sync::mpsc;

use crate::audio::Frame;

/// How many frames a bridge holds for a side that has not ticked yet (60 ms).
pub const BRIDGE_DEPTH: usize = 3;

/// Identifies a leg within its call; the first caller is never a `LegId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u32);

/// Who is on a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegRole {
    /// A human agent who talks with the caller.
    Agent,
    /// A supervisor: listens, and may whisper to the agent or barge in.
    Supervisor,
}

/// What a supervisor's leg does. Whoever is heard by whom:
///
/// | mode | the supervisor hears | the agent hears the supervisor | the caller hears the supervisor |
/// |---|---|---|---|
/// | `listen` | caller, bot, agents | no | no |
/// | `whisper` | caller, bot, agents | yes | no |
/// | `barge` | caller, bot, agents | yes | yes |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SupervisorMode {
    #[default]
    Listen,
    Whisper,
    Barge,
}

impl SupervisorMode {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            SupervisorMode::Listen => "listen",
            SupervisorMode::Whisper => "whisper",
            SupervisorMode::Barge => "barge",
        }
    }
}

/// A leg's transport side: it sends the leg's frames and receives one frame back for each.
pub struct LegHandle {
    pub id: LegId,
    /// The leg's 20 ms frames, tagged for the call's one leg inbox.
    input: mpsc::Sender<(LegId, Frame)>,
    /// What the leg hears, one frame per frame sent.
    pub output: mpsc::Receiver<Frame>,
}

impl std::fmt::Debug for LegHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegHandle").field("id", &self.id).finish()
    }
}

impl LegHandle {
    pub(super) fn new(
        id: LegId,
        input: mpsc::Sender<(LegId, Frame)>,
        output: mpsc::Receiver<Frame>,
    ) -> Self {
        Self { id, input, output }
    }

    /// Sends one frame of the leg's audio; `false` when the call has ended.
    pub async fn send(&self, frame: Frame) -> bool {
        self.input.send((self.id, frame)).await.is_ok()
    }
}

/// The call's side of a leg.
pub(super) struct Leg {
    pub id: LegId,
    pub role: LegRole,
    pub output: mpsc::Sender<Frame>,
    pub bridge: Bridge,
    /// A supervisor's mode (agents ignore it).
    pub mode: SupervisorMode,
    /// What the leg said last (other legs hear it on their tick).
    pub last: Frame,
    /// Who is on it, once known (a supervisor's name, for the record).
    pub who: String,
}

impl Leg {
    pub fn new(id: LegId, role: LegRole, output: mpsc::Sender<Frame>) -> Self {
        Self {
            id,
            role,
            output,
            bridge: Bridge::default(),
            mode: SupervisorMode::default(),
            last: Frame::silence(),
            who: String::new(),
        }
    }

    /// Whether the caller hears this leg: an agent, or a supervisor barging in.
    pub fn speaks_to_caller(&self) -> bool {
        self.role == LegRole::Agent || self.mode == SupervisorMode::Barge
    }

    /// Whether a leg of `listener`'s role hears this one: a supervisor hears the agents; an
    /// agent hears a supervisor who whispers or barges.
    pub fn heard_by(&self, listener: LegRole) -> bool {
        match (self.role, listener) {
            (LegRole::Agent, LegRole::Supervisor) => true,
            (LegRole::Supervisor, LegRole::Agent) => self.mode != SupervisorMode::Listen,
            _ => false,
        }
    }
}

/// Two sides' audio, each buffered for the other. See the module docs.
#[derive(Debug, Default)]
pub struct Bridge {
    /// Frames from the caller, waiting for the leg's next tick.
    to_leg: VecDeque<Frame>,
    /// Frames from the leg, waiting for the caller's next tick.
    to_caller: VecDeque<Frame>,
    /// Whether the two sides hear each other (a new leg rings first: not yet).
    pub joined: bool,
}

impl Bridge {
    /// The caller said `frame`; returns what the leg said for the caller to hear (silence when
    /// the leg has said nothing, or is not joined).
    pub fn caller_tick(&mut self, frame: &Frame) -> Frame {
        if !self.joined {
            return Frame::silence();
        }
        push_bounded(&mut self.to_leg, frame.clone());
        self.to_caller.pop_front().unwrap_or_default()
    }

    /// The leg said `frame`; returns what the caller said for the leg to hear.
    pub fn leg_tick(&mut self, frame: &Frame) -> Frame {
        if !self.joined {
            return Frame::silence();
        }
        push_bounded(&mut self.to_caller, frame.clone());
        self.to_leg.pop_front().unwrap_or_default()
    }
}

fn push_bounded(queue: &mut VecDeque<Frame>, frame: Frame) {
    if queue.len() >= BRIDGE_DEPTH {
        queue.pop_front();
    }
    queue.push_back(frame);
}

/// Adds two frames sample by sample, saturating.
pub fn mix(a: &Frame, b: &Frame) -> Frame {
    let samples: Vec<i16> = a
        .samples()
        .iter()
        .zip(b.samples())
        .map(|(x, y)| x.saturating_add(*y))
        .collect();
    Frame::from_slice(&samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(value: i16) -> Frame {
        Frame::from_slice(&[value; crate::audio::FRAME_SAMPLES])
    }

    #[test]
    fn each_side_hears_the_other_one_tick_later() {
        let mut b = Bridge {
            joined: true,
            ..Bridge::default()
        };
        assert_eq!(b.caller_tick(&tone(1)), Frame::silence());
        assert_eq!(b.leg_tick(&tone(2)), tone(1));
        assert_eq!(b.caller_tick(&tone(3)), tone(2));
        assert_eq!(b.leg_tick(&tone(4)), tone(3));
    }

    #[test]
    fn a_side_that_stops_ticking_cannot_grow_the_delay() {
        let mut b = Bridge {
            joined: true,
            ..Bridge::default()
        };
        for v in 1..=10 {
            b.caller_tick(&tone(v));
        }
        // Only the newest frames wait.
        assert_eq!(b.leg_tick(&Frame::silence()), tone(8));
        assert_eq!(b.leg_tick(&Frame::silence()), tone(9));
        assert_eq!(b.leg_tick(&Frame::silence()), tone(10));
        assert_eq!(b.leg_tick(&Frame::silence()), Frame::silence());
    }

    #[test]
    fn a_ringing_leg_hears_nothing_and_says_nothing() {
        let mut b = Bridge::default();
        assert_eq!(b.caller_tick(&tone(5)), Frame::silence());
        assert_eq!(b.leg_tick(&tone(6)), Frame::silence());
        b.joined = true;
        assert_eq!(b.caller_tick(&tone(7)), Frame::silence());
    }

    #[test]
    fn who_hears_a_supervisor_depends_on_the_mode() {
        let (tx, _rx) = mpsc::channel(1);
        let agent = Leg::new(LegId(1), LegRole::Agent, tx.clone());
        let mut sup = Leg::new(LegId(2), LegRole::Supervisor, tx);
        assert!(agent.speaks_to_caller() && agent.heard_by(LegRole::Supervisor));
        for (mode, agent_hears, caller_hears) in [
            (SupervisorMode::Listen, false, false),
            (SupervisorMode::Whisper, true, false),
            (SupervisorMode::Barge, true, true),
        ] {
            sup.mode = mode;
            assert_eq!(sup.heard_by(LegRole::Agent), agent_hears, "{mode:?}");
            assert_eq!(sup.speaks_to_caller(), caller_hears, "{mode:?}");
        }
    }

    #[test]
    fn mixing_saturates() {
        assert_eq!(mix(&tone(i16::MAX), &tone(10)), tone(i16::MAX));
        assert_eq!(mix(&tone(3), &tone(4)), tone(7));
    }
}
