//! A human agent on a phone: a bridged transfer to a `sip:` target. hotline places the call
//! (INVITE with the call's `X-Hotline-*` context, `sip/PBX.md`), and once the agent answers,
//! their line becomes a leg of the caller's call ([`crate::call::leg`]), bridged both ways.
//!
//! [`dial_agent`] runs one such call as a task and reports to the caller's driver in the same
//! [`QueueUpdate`]s a queue sends: ringing, accepted (answered), or the outcome it gave up
//! with (486/600 `busy`, 603 and other refusals `rejected`, no answer or ringing out
//! `no_answer`, anything else `failed`). The agent's line is converted to the pipeline's 16 kHz
//! frames and back, as a caller's is ([`super::Reframer`]).
//!
//! Warm ([`AgentCall::briefing`], `agents.sip_warm`): once the agent answers, their line hears
//! the call's summary, spoken, while the caller stays on hold and hears none of it; the agent
//! presses 1 to take the call (the bridge) or 2 to decline it (`rejected`, back to the bot).
//!
//! Invariants: one frame to the call for each frame from the line, and one back; the caller's
//! driver dropping its updates (the caller hung up) hangs up or cancels the agent's call; the
//! leg is removed exactly once, when the agent's call ends.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use hotline_sip::outbound::{
    dial, DialRequest, OutboundCommand, OutboundConfig, OutboundEnd, OutboundEvent,
};
use hotline_sip::uac::UacError;

use crate::agents::desk::QueueUpdate;
use crate::audio::{Frame, FRAME_SAMPLES, SAMPLE_RATE_HZ};
use crate::call::leg::LegRole;
use crate::call::CallControl;
use crate::session::TransferOutcome;

use super::Reframer;

/// What an unanswered agent call's failure means for the caller.
pub fn outcome_of(error: &UacError) -> TransferOutcome {
    match error {
        UacError::Refused {
            code: 486 | 600, ..
        } => TransferOutcome::Busy,
        UacError::Refused {
            code: 408 | 480, ..
        }
        | UacError::NoAnswer { .. } => TransferOutcome::NoAnswer,
        UacError::Refused { .. } => TransferOutcome::Rejected,
        UacError::ByeUnanswered { .. } | UacError::Cancelled { .. } => TransferOutcome::Failed,
    }
}

/// One agent to call.
pub struct AgentCall {
    /// `sip:user@host[:port]`.
    pub target: String,
    /// The call's context (`X-Hotline-*`).
    pub headers: Vec<(String, String)>,
    pub ring_wait: Duration,
    /// Warm: the summary the agent hears before taking the call, being synthesized.
    pub briefing: Option<crate::tts::Speech>,
}

/// What a phone agent is told after the summary.
pub fn take_or_decline(language: crate::language::Language) -> &'static str {
    match language {
        crate::language::Language::Zh => "接听请按1，拒绝请按2。",
        _ => "Press 1 to take the call, or 2 to decline it.",
    }
}

/// Dials the agent for the call whose control channel is `control`; reports on `updates`.
pub async fn dial_agent(
    config: OutboundConfig,
    agent: AgentCall,
    control: mpsc::UnboundedSender<CallControl>,
    updates: mpsc::UnboundedSender<QueueUpdate>,
) {
    let AgentCall {
        target,
        headers,
        ring_wait,
        briefing,
    } = agent;
    let mut briefing = briefing;
    let placed = dial(
        &config,
        DialRequest {
            target: target.clone(),
            headers,
            ring_wait,
        },
    )
    .await;
    let mut call = match placed {
        Ok(call) => call,
        Err(e) => {
            tracing::warn!(%target, "cannot call the agent: {e}");
            let _ = updates.send(QueueUpdate::GaveUp {
                outcome: TransferOutcome::Failed,
            });
            return;
        }
    };
    tracing::info!(%target, "calling an agent");
    let mut bridge: Option<Bridged> = None;
    loop {
        let event = tokio::select! {
            event = call.events.recv() => event,
            // Once bridged, the caller's call ending is the leg's to tell.
            () = updates.closed(), if bridge.is_none() => {
                // The caller is gone: stop ringing, or hang up.
                let _ = call.commands.send(OutboundCommand::HangUp).await;
                None
            }
        };
        match event {
            Some(OutboundEvent::Ringing) => {
                let _ = updates.send(QueueUpdate::Ringing {
                    agent: target.clone(),
                });
            }
            Some(OutboundEvent::Answered { codec, pcm_rate_hz }) => {
                tracing::info!(%target, %codec, "the agent answered");
                match Bridged::add(&control, pcm_rate_hz).await {
                    Some(mut b) => {
                        if let Some(speech) = briefing.take() {
                            b.brief(speech).await;
                        }
                        let _ = updates.send(QueueUpdate::Accepted {
                            agent: target.clone(),
                        });
                        bridge = Some(b);
                    }
                    None => {
                        let _ = call.commands.send(OutboundCommand::HangUp).await;
                    }
                }
            }
            Some(OutboundEvent::Audio(pcm)) => {
                let Some(b) = bridge.as_mut() else {
                    continue;
                };
                match b.pump(&control, &pcm).await {
                    Some(back) => {
                        let _ = call.commands.try_send(OutboundCommand::Audio(back));
                    }
                    None => {
                        // The caller's call ended.
                        let _ = call.commands.send(OutboundCommand::HangUp).await;
                    }
                }
            }
            Some(OutboundEvent::Dtmf(key)) => {
                let Some(b) = bridge.as_mut() else {
                    continue;
                };
                match (b.waiting_for_key(), key) {
                    (true, '1') => b.take(),
                    (true, '2') => {
                        tracing::info!(%target, "the agent declined the call");
                        let _ = control.send(CallControl::TransferFailed {
                            reason: TransferOutcome::Rejected.code().to_string(),
                        });
                        let _ = call.commands.send(OutboundCommand::HangUp).await;
                    }
                    _ => {}
                }
            }
            Some(OutboundEvent::Ended(end)) => {
                tracing::info!(%target, ?end, "the agent's call ended");
                match (&bridge, end) {
                    (Some(b), _) => {
                        let _ = control.send(CallControl::RemoveLeg { leg: b.leg.id });
                    }
                    (None, OutboundEnd::NotAnswered(error)) => {
                        let _ = updates.send(QueueUpdate::GaveUp {
                            outcome: outcome_of(&error),
                        });
                    }
                    (None, _) => {
                        let _ = updates.send(QueueUpdate::GaveUp {
                            outcome: TransferOutcome::Failed,
                        });
                    }
                }
                return;
            }
            None => {
                // The caller went first; wait for the agent's call to wind down.
                while let Some(event) = call.events.recv().await {
                    if matches!(event, OutboundEvent::Ended(_)) {
                        break;
                    }
                }
                if let Some(b) = &bridge {
                    let _ = control.send(CallControl::RemoveLeg { leg: b.leg.id });
                }
                return;
            }
        }
    }
}

/// The agent's line as a leg of the call.
struct Bridged {
    leg: crate::call::leg::LegHandle,
    joined: bool,
    to_pipeline: Reframer,
    to_line: Reframer,
    /// Warm: the summary still to play to the agent (16 kHz), and whether the agent must
    /// press a key before the caller is connected.
    briefing: std::collections::VecDeque<i16>,
    warm: bool,
}

impl Bridged {
    async fn add(control: &mpsc::UnboundedSender<CallControl>, line_rate_hz: u32) -> Option<Self> {
        let (reply, leg) = oneshot::channel();
        control
            .send(CallControl::AddLeg {
                role: LegRole::Agent,
                reply,
            })
            .ok()?;
        let leg = tokio::time::timeout(Duration::from_secs(2), leg)
            .await
            .ok()?
            .ok()?;
        let line_frame = (line_rate_hz / 50) as usize;
        Some(Self {
            leg,
            joined: false,
            to_pipeline: Reframer::new(line_rate_hz, SAMPLE_RATE_HZ, FRAME_SAMPLES),
            to_line: Reframer::new(SAMPLE_RATE_HZ, line_rate_hz, line_frame),
            briefing: std::collections::VecDeque::new(),
            warm: false,
        })
    }

    /// Warm: synthesizes the summary (and the keys to press) for the agent to hear first.
    async fn brief(&mut self, mut speech: crate::tts::Speech) {
        self.warm = true;
        while let Some(chunk) = speech.recv().await {
            match chunk {
                Ok(chunk) => self.briefing.extend(chunk.pcm),
                Err(e) => {
                    tracing::warn!("the agent's briefing could not be spoken: {e}");
                    break;
                }
            }
        }
        self.briefing
            .extend(std::iter::repeat_n(0, SAMPLE_RATE_HZ as usize / 4));
    }

    /// Whether the agent heard the summary and the caller waits on their key.
    fn waiting_for_key(&self) -> bool {
        self.warm && !self.joined
    }

    /// The agent took the call: it is bridged at the next frame.
    fn take(&mut self) {
        self.warm = false;
        self.briefing.clear();
    }

    /// One frame from the agent's line to the call, and what the agent hears back (at the
    /// line's rate); `None` once the call has ended.
    async fn pump(
        &mut self,
        control: &mpsc::UnboundedSender<CallControl>,
        line_pcm: &[i16],
    ) -> Option<Vec<i16>> {
        if self.warm {
            // The agent hears the summary, then silence until they press a key; the caller,
            // on hold, hears none of it.
            let n = FRAME_SAMPLES.min(self.briefing.len());
            let mut frame: Vec<i16> = self.briefing.drain(..n).collect();
            frame.resize(FRAME_SAMPLES, 0);
            return Some(self.to_line.convert(&frame));
        }
        if !self.joined {
            self.joined = true;
            let _ = control.send(CallControl::Bridge {
                leg: self.leg.id,
                joined: true,
            });
        }
        let frame = Frame::from_slice(&self.to_pipeline.convert(line_pcm));
        if !self.leg.send(frame).await {
            return None;
        }
        let heard = self.leg.output.recv().await?;
        Some(self.to_line.convert(heard.samples()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_transfer_outcomes() {
        let refused = |code| UacError::Refused {
            target: "sip:a@b".into(),
            code,
            reason: String::new(),
        };
        assert_eq!(outcome_of(&refused(486)), TransferOutcome::Busy);
        assert_eq!(outcome_of(&refused(603)), TransferOutcome::Rejected);
        assert_eq!(outcome_of(&refused(480)), TransferOutcome::NoAnswer);
        let rang_out = UacError::NoAnswer {
            target: "sip:a@b".into(),
            within_s: 20.0,
        };
        assert_eq!(outcome_of(&rang_out), TransferOutcome::NoAnswer);
    }
}
