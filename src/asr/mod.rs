//! Speech recognition behind one trait, run off the media path in a worker pool.
//!
//! Owns the [`Recognizer`] trait and its two engines — [`whisper::WhisperRecognizer`]
//! (whisper.cpp through whisper-rs, for open speech in English and Mandarin) and
//! [`sphinx::SphinxRecognizer`] (Debian's PocketSphinx, offline English, strong with a
//! [`Grammar`]) — and the [`AsrPool`] that runs them on dedicated threads.
//!
//! Invariants:
//! - Audio handed to a recognizer is one utterance of 16 kHz mono i16 PCM (the pipeline's
//!   format, see [`crate::audio`]); resampling happens at the transport edges, never here.
//! - A recognizer is owned by exactly one worker thread (`Send`, not `Sync`); engines that
//!   are not thread-safe are never shared.
//! - A failing or panicking engine turns into an [`AsrError`] for that job; it never takes the
//!   pool down. Results are matched to turns by the caller (the session drops stale ones by
//!   `TurnId`).
//! - Final results come first: a worker takes a waiting final before any waiting partial, a
//!   partial is only queued when a worker is idle, and a partial already running gives way
//!   (its engine stops at the next [`Interrupt`] check and answers [`AsrError::Preempted`]).
//!   Finals are never interrupted.

pub mod pool;
pub mod score;
pub mod sphinx;
pub mod whisper;

pub use pool::{AsrJob, AsrOutput, AsrPool};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::language::Language;

/// Tells a running partial recognition that a final one is waiting for its worker.
///
/// Engines poll [`Interrupt::raised`] at safe points (before a decode starts, inside whisper.cpp's
/// abort callback) and give up with [`AsrError::Preempted`]. The default never rises.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Option<Arc<AtomicUsize>>);

impl Interrupt {
    /// An interrupt that rises while `finals_waiting` is above zero.
    pub fn when_finals_wait(finals_waiting: Arc<AtomicUsize>) -> Self {
        Self(Some(finals_waiting))
    }

    /// Whether the job should stop now.
    pub fn raised(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|waiting| waiting.load(Ordering::Acquire) > 0)
    }

    /// The counter behind the interrupt, for engines that poll it from C.
    pub(crate) fn counter(&self) -> Option<&Arc<AtomicUsize>> {
        self.0.as_ref()
    }
}

/// Constrains the recognizer for one caller answer (Sphinx grammar mode).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Grammar {
    /// A JSGF grammar source.
    Jsgf(String),
    /// A list of phrases, any one of which the caller may say.
    Phrases(Vec<String>),
}

impl Grammar {
    /// A phrase list in the order a recognizer's prompt takes it: shortest first (the
    /// keywords), without duplicates. A prompt is cut to a few dozen tokens, in list order.
    pub fn shortest_first(mut phrases: Vec<String>) -> Grammar {
        phrases.sort();
        phrases.dedup();
        phrases.sort_by_key(String::len);
        Grammar::Phrases(phrases)
    }

    /// The grammar as JSGF source. A phrase list becomes
    /// `public <choice> = phrase one | phrase two;` with each phrase normalised to lower-case
    /// words (punctuation other than apostrophes dropped).
    pub fn to_jsgf(&self) -> Result<String, AsrError> {
        match self {
            Grammar::Jsgf(source) => {
                if source.trim().is_empty() {
                    return Err(AsrError::Grammar("the JSGF source is empty".into()));
                }
                Ok(source.clone())
            }
            Grammar::Phrases(phrases) => {
                let alternatives: Vec<String> = self.normalized_phrases()?;
                if alternatives.is_empty() {
                    return Err(AsrError::Grammar(format!(
                        "the phrase list {phrases:?} has no words"
                    )));
                }
                Ok(format!(
                    "#JSGF V1.0;\ngrammar hotline;\npublic <choice> = {};\n",
                    alternatives.join(" | ")
                ))
            }
        }
    }

    /// The phrases of a [`Grammar::Phrases`], lower-cased, with punctuation other than
    /// apostrophes removed and blank phrases dropped; empty for a JSGF grammar.
    pub fn normalized_phrases(&self) -> Result<Vec<String>, AsrError> {
        let Grammar::Phrases(phrases) = self else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(phrases.len());
        for phrase in phrases {
            let words: Vec<String> = phrase
                .split_whitespace()
                .map(|w| {
                    w.chars()
                        .filter(|c| c.is_alphanumeric() || *c == '\'')
                        .flat_map(char::to_lowercase)
                        .collect::<String>()
                })
                .filter(|w| !w.is_empty())
                .collect();
            if words.is_empty() {
                continue;
            }
            out.push(words.join(" "));
        }
        Ok(out)
    }

    /// All distinct words a phrase list uses (for dictionary checks); empty for JSGF.
    pub fn words(&self) -> Result<Vec<String>, AsrError> {
        let mut words: Vec<String> = self
            .normalized_phrases()?
            .iter()
            .flat_map(|p| p.split(' ').map(str::to_string).collect::<Vec<_>>())
            .collect();
        words.sort();
        words.dedup();
        Ok(words)
    }
}

/// What the caller of [`Recognizer::transcribe`] asks for one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct AsrOptions {
    /// The language spoken.
    pub language: Language,
    /// Restricts what may be heard (Sphinx decodes against it; whisper uses a phrase list as
    /// its initial prompt).
    pub grammar: Option<Grammar>,
    /// `false` for a partial result on a sliding window while the caller is still talking.
    pub is_final: bool,
}

impl Default for AsrOptions {
    fn default() -> Self {
        Self {
            language: Language::En,
            grammar: None,
            is_final: true,
        }
    }
}

/// One recognized utterance.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recognized {
    /// The words heard, trimmed; empty when nothing was recognized.
    pub text: String,
    /// The engine's confidence in 0..=1, where it gives one.
    pub confidence: Option<f32>,
}

/// A speech recognizer. Each worker thread owns one.
pub trait Recognizer: Send {
    /// The engine's stable name ("whisper", "sphinx"), for logs and call records.
    fn name(&self) -> &'static str;
    /// Transcribes one utterance of 16 kHz mono PCM.
    fn transcribe(&mut self, pcm: &[i16], opts: &AsrOptions) -> Result<Recognized, AsrError>;
    /// Transcribes like [`Recognizer::transcribe`], giving up with [`AsrError::Preempted`] when
    /// `interrupt` rises. Engines that cannot stop early just finish.
    fn transcribe_interruptible(
        &mut self,
        pcm: &[i16],
        opts: &AsrOptions,
        interrupt: &Interrupt,
    ) -> Result<Recognized, AsrError> {
        let _ = interrupt;
        self.transcribe(pcm, opts)
    }
}

/// Why recognition failed.
#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    /// The model file (or folder) is not there.
    #[error("{what} not found at {path} (`hotline models fetch` installs the trained models; see models/README.md, or use the Sphinx engine)")]
    ModelMissing { what: &'static str, path: String },
    /// The config names a model hotline does not know.
    #[error("{key}: {message}")]
    UnknownModel { key: &'static str, message: String },
    /// The model exists but could not be loaded.
    #[error("cannot load {what} from {path}: {reason}")]
    ModelLoad {
        what: &'static str,
        path: String,
        reason: String,
    },
    /// The engine failed on this utterance.
    #[error("{engine} failed: {reason}")]
    Engine {
        engine: &'static str,
        reason: String,
    },
    /// The grammar is invalid or uses words the engine does not know.
    #[error("invalid grammar: {0}")]
    Grammar(String),
    /// The engine does not handle this language.
    #[error("{engine} does not recognize {language}")]
    UnsupportedLanguage {
        engine: &'static str,
        language: Language,
    },
    /// The engine panicked on this utterance; the worker carries on.
    #[error("{engine} panicked: {message}")]
    Panicked {
        engine: &'static str,
        message: String,
    },
    /// Too many jobs are waiting; the job was not queued.
    #[error("ASR queue is full ({capacity} jobs waiting)")]
    Overloaded { capacity: usize },
    /// The pool has no worker to run the job (it was built without recognizers, or every
    /// worker has stopped).
    #[error("ASR pool has no running worker")]
    NoWorker,
    /// A partial result was not computed, or stopped halfway, because a final one needed the
    /// worker (or no worker was idle to take it).
    #[error("partial recognition gave way to a final one")]
    Preempted,
}

impl AsrError {
    /// A stable code for call records and dashboards.
    pub fn code(&self) -> &'static str {
        match self {
            AsrError::ModelMissing { .. } => "asr.model_missing",
            AsrError::ModelLoad { .. } => "asr.model_load",
            AsrError::UnknownModel { .. } => "asr.unknown_model",
            AsrError::Engine { .. } => "asr.engine",
            AsrError::Grammar(_) => "asr.grammar",
            AsrError::UnsupportedLanguage { .. } => "asr.unsupported_language",
            AsrError::Panicked { .. } => "asr.panicked",
            AsrError::Overloaded { .. } => "asr.overloaded",
            AsrError::NoWorker => "asr.no_worker",
            AsrError::Preempted => "asr.preempted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrase_list_becomes_a_choice_grammar() {
        let g = Grammar::Phrases(vec![
            "Customer support".into(),
            "speak to an agent!".into(),
            "  ".into(),
            "I'd like billing.".into(),
        ]);
        let jsgf = g.to_jsgf().expect("valid phrase list");
        assert!(
            jsgf.contains(
                "public <choice> = customer support | speak to an agent | i'd like billing;"
            ),
            "{jsgf}"
        );
        assert_eq!(
            g.words().expect("words"),
            ["agent", "an", "billing", "customer", "i'd", "like", "speak", "support", "to"]
        );
    }

    #[test]
    fn empty_grammars_are_rejected() {
        assert!(matches!(
            Grammar::Phrases(vec![" ! ".into()]).to_jsgf(),
            Err(AsrError::Grammar(_))
        ));
        assert!(matches!(
            Grammar::Jsgf(" \n".into()).to_jsgf(),
            Err(AsrError::Grammar(_))
        ));
    }
}
