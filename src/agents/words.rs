//! `Utterances`: cuts a human agent's audio into utterances to recognise, so the call's live
//! transcript (and its record) has both sides while a caller talks with a person.
//!
//! Sans-IO, one per agent leg, fed the leg's 20 ms frames: speech starts after
//! [`START_FRAMES`] voiced frames (with [`PREROLL_FRAMES`] of audio before the onset kept), and
//! an utterance ends after [`END_FRAMES`] of silence or at [`MAX_FRAMES`]; what it returns is the
//! utterance's audio for one final recognition. The caller's side is the session's.
//!
//! Invariants: every voiced stretch long enough to count is returned exactly once; an
//! utterance is never longer than [`MAX_FRAMES`] frames plus the preroll.

use std::collections::VecDeque;

use crate::audio::vad::Vad;
use crate::audio::Frame;

/// Voiced frames that start an utterance (100 ms).
pub const START_FRAMES: usize = 5;
/// Silent frames that end one (600 ms, the caller's default endpoint).
pub const END_FRAMES: usize = 30;
/// The longest utterance (15 s).
pub const MAX_FRAMES: usize = 750;
/// Audio kept from before the onset (200 ms).
pub const PREROLL_FRAMES: usize = 10;
/// VAD probability from which a frame is speech.
const VOICED: f32 = 0.5;

/// See the module docs.
pub struct Utterances {
    vad: Vad,
    preroll: VecDeque<Frame>,
    /// Voiced frames in a row while quiet.
    onset: usize,
    /// The utterance being collected, and the silent frames at its end.
    speaking: Option<(Vec<i16>, usize, usize)>,
}

impl Default for Utterances {
    fn default() -> Self {
        Self::new()
    }
}

impl Utterances {
    pub fn new() -> Self {
        Self {
            vad: Vad::new(),
            preroll: VecDeque::new(),
            onset: 0,
            speaking: None,
        }
    }

    /// Takes one frame; returns a finished utterance's audio (16 kHz) when this frame ends one.
    pub fn push(&mut self, frame: &Frame) -> Option<Vec<i16>> {
        let voiced = self.vad.score(frame) >= VOICED;
        self.push_judged(frame, voiced)
    }

    /// [`Utterances::push`] with the VAD's judgement given.
    fn push_judged(&mut self, frame: &Frame, voiced: bool) -> Option<Vec<i16>> {
        match self.speaking.as_mut() {
            Some((pcm, silent, frames)) => {
                pcm.extend_from_slice(frame.samples());
                *frames += 1;
                *silent = if voiced { 0 } else { *silent + 1 };
                if *silent >= END_FRAMES || *frames >= MAX_FRAMES {
                    let (pcm, _, _) = self.speaking.take()?;
                    self.onset = 0;
                    return Some(pcm);
                }
                None
            }
            None => {
                self.onset = if voiced { self.onset + 1 } else { 0 };
                self.preroll.push_back(frame.clone());
                if self.preroll.len() > PREROLL_FRAMES {
                    self.preroll.pop_front();
                }
                if self.onset >= START_FRAMES {
                    let pcm: Vec<i16> = self
                        .preroll
                        .drain(..)
                        .flat_map(|f| f.samples().to_vec())
                        .collect();
                    let frames = pcm.len() / crate::audio::FRAME_SAMPLES;
                    self.speaking = Some((pcm, 0, frames));
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME_SAMPLES;

    fn feed(u: &mut Utterances, voiced: &[bool]) -> Vec<usize> {
        let frame = Frame::from_slice(&[100; FRAME_SAMPLES]);
        voiced
            .iter()
            .filter_map(|&v| u.push_judged(&frame, v))
            .map(|pcm| pcm.len() / FRAME_SAMPLES)
            .collect()
    }

    #[test]
    fn a_stretch_of_speech_is_one_utterance_with_its_preroll_and_its_tail() {
        let mut u = Utterances::new();
        let mut voiced = vec![false; 50];
        voiced.extend(vec![true; 40]);
        voiced.extend(vec![false; 10]);
        voiced.extend(vec![true; 20]);
        voiced.extend(vec![false; 40]);
        // One utterance: the preroll (10, the onset included), the rest of the speech with its
        // short pause, and the 30 silent frames that end it.
        assert_eq!(feed(&mut u, &voiced), vec![10 + 35 + 10 + 20 + 30]);
        assert!(feed(&mut u, &[false; 100]).is_empty(), "silence is nothing");
        assert!(
            feed(&mut u, &[true, true, false, true, false]).is_empty(),
            "a click is nothing"
        );
    }

    #[test]
    fn a_long_talker_is_cut_at_the_longest_utterance() {
        let mut u = Utterances::new();
        let got = feed(&mut u, &vec![true; 2 * MAX_FRAMES]);
        assert!(
            got.len() >= 2 && got.iter().all(|&n| n <= MAX_FRAMES),
            "{got:?}"
        );
    }
}
