//! Recognition accuracy: word error rate (English) and character error rate (Mandarin),
//! after a normalisation that forgives what a caller would not count as a mistake (case,
//! punctuation, "3" for "three", traditional for simplified characters).
//!
//! Owns the one scoring used by the accuracy tests, the decoding-policy benchmark and
//! `hotline models eval`, so every figure hotline reports is computed the same way.
//!
//! Invariants:
//! - An error rate is edit distance over reference length, summed over a corpus
//!   ([`ErrorCount`]); an empty reference counts every inserted unit as an error.
//! - Normalisation never drops a word's letters: it lower-cases, removes punctuation other
//!   than apostrophes inside words, and writes number words from zero to twenty (and the
//!   tens) as digits.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{AsrOptions, Grammar, Recognizer};
use crate::audio::wav::read_wav_mono_16k;
use crate::language::{to_simplified, Language};

/// Why a corpus could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Index {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Audio { path: String, reason: String },
    #[error("{path}: {reason}")]
    Recognizer { path: String, reason: String },
}

/// One recording with what was said.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The WAV file.
    pub path: PathBuf,
    pub language: Language,
    /// The words spoken (never empty).
    pub transcript: String,
}

/// Reads an index of recordings: tab-separated lines `file`, `language`, `transcript`
/// (further columns ignored), paths relative to the index's folder. A first line that starts
/// with `file` is a header. Lines without a transcript, or in a language hotline does not
/// speak, are skipped.
pub fn read_index(path: &Path) -> Result<Vec<Sample>, ScoreError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScoreError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || (i == 0 && line.starts_with("file")) {
            continue;
        }
        let mut columns = line.split('\t');
        let (Some(file), Some(language)) = (columns.next(), columns.next()) else {
            return Err(ScoreError::Index {
                path: path.display().to_string(),
                line: i + 1,
                reason: "expected file<TAB>language<TAB>transcript".into(),
            });
        };
        let transcript = columns.next().unwrap_or("").trim();
        let Ok(language) = language.parse::<Language>() else {
            continue;
        };
        if transcript.is_empty() || !file.ends_with(".wav") {
            continue;
        }
        out.push(Sample {
            path: base.join(file),
            language,
            transcript: transcript.to_string(),
        });
    }
    Ok(out)
}

/// What [`evaluate`] measured on a corpus.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// Errors summed over the corpus.
    pub errors: ErrorCount,
    /// Compute per utterance, in corpus order.
    pub compute: Vec<Duration>,
    /// (sample, what was heard, its errors), in corpus order.
    pub heard: Vec<(PathBuf, String, ErrorCount)>,
}

impl Evaluation {
    /// A quantile (0..=1) of the compute per utterance.
    pub fn compute_quantile(&self, q: f64) -> Duration {
        let mut sorted = self.compute.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let index = ((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        sorted[index]
    }
}

/// Runs every sample through `recognizer` (as a final, without a grammar) and scores it.
pub fn evaluate(
    recognizer: &mut dyn Recognizer,
    samples: &[Sample],
) -> Result<Evaluation, ScoreError> {
    evaluate_with(recognizer, samples, None)
}

/// [`evaluate`] with `grammar` given for every utterance, as a flow node waiting on it gives
/// it (whisper takes a phrase list as its prompt).
pub fn evaluate_with(
    recognizer: &mut dyn Recognizer,
    samples: &[Sample],
    grammar: Option<&Grammar>,
) -> Result<Evaluation, ScoreError> {
    let mut out = Evaluation::default();
    for sample in samples {
        let shown = sample.path.display().to_string();
        let pcm = read_wav_mono_16k(&sample.path).map_err(|e| ScoreError::Audio {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let opts = AsrOptions {
            language: sample.language,
            grammar: grammar.cloned(),
            ..AsrOptions::default()
        };
        let started = Instant::now();
        let heard = recognizer
            .transcribe(&pcm, &opts)
            .map_err(|e| ScoreError::Recognizer {
                path: shown,
                reason: e.to_string(),
            })?;
        out.compute.push(started.elapsed());
        let errors = score(sample.language, &sample.transcript, &heard.text);
        out.errors += errors;
        out.heard.push((sample.path.clone(), heard.text, errors));
    }
    Ok(out)
}

/// Edits against a reference, summable over a corpus.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCount {
    /// Substitutions, deletions and insertions.
    pub edits: usize,
    /// Units (words or characters) in the reference.
    pub reference: usize,
}

impl ErrorCount {
    /// The error rate: edits over reference units (0 for an empty corpus).
    pub fn rate(&self) -> f64 {
        if self.reference == 0 {
            return if self.edits == 0 { 0.0 } else { 1.0 };
        }
        self.edits as f64 / self.reference as f64
    }
}

impl std::ops::AddAssign for ErrorCount {
    fn add_assign(&mut self, other: Self) {
        self.edits += other.edits;
        self.reference += other.reference;
    }
}

/// Scores `hypothesis` against `reference` in `language`: words for English, characters for
/// Mandarin.
pub fn score(language: Language, reference: &str, hypothesis: &str) -> ErrorCount {
    let (r, h) = match language {
        Language::En => (words(reference), words(hypothesis)),
        Language::Zh => (characters(reference), characters(hypothesis)),
    };
    ErrorCount {
        edits: edit_distance(&r, &h),
        reference: r.len(),
    }
}

/// English text as normalised words.
pub fn words(text: &str) -> Vec<String> {
    let spaced: String = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                ' '
            }
        })
        .collect();
    spaced
        .split_whitespace()
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .flat_map(|w| match contraction(w) {
            Some(expanded) => expanded.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            None => vec![number_word(w).map_or_else(|| w.to_string(), str::to_string)],
        })
        .collect()
}

/// Contractions written out, as whisper's own English normaliser does, so "I'm" and "I am"
/// are the same words. Ambiguous ones ("I'd": would or had) stay as they are.
fn contraction(word: &str) -> Option<&'static [&'static str]> {
    const CONTRACTIONS: &[(&str, &[&str])] = &[
        ("i'm", &["i", "am"]),
        ("i'll", &["i", "will"]),
        ("i've", &["i", "have"]),
        ("you're", &["you", "are"]),
        ("you'll", &["you", "will"]),
        ("you've", &["you", "have"]),
        ("we're", &["we", "are"]),
        ("we'll", &["we", "will"]),
        ("we've", &["we", "have"]),
        ("they're", &["they", "are"]),
        ("they'll", &["they", "will"]),
        ("it's", &["it", "is"]),
        ("that's", &["that", "is"]),
        ("there's", &["there", "is"]),
        ("what's", &["what", "is"]),
        ("he's", &["he", "is"]),
        ("she's", &["she", "is"]),
        ("can't", &["can", "not"]),
        ("cannot", &["can", "not"]),
        ("won't", &["will", "not"]),
        ("don't", &["do", "not"]),
        ("doesn't", &["does", "not"]),
        ("didn't", &["did", "not"]),
        ("isn't", &["is", "not"]),
        ("aren't", &["are", "not"]),
        ("wasn't", &["was", "not"]),
        ("weren't", &["were", "not"]),
        ("haven't", &["have", "not"]),
        ("hasn't", &["has", "not"]),
        ("couldn't", &["could", "not"]),
        ("wouldn't", &["would", "not"]),
        ("shouldn't", &["should", "not"]),
        ("let's", &["let", "us"]),
        ("em", &["them"]),
    ];
    CONTRACTIONS
        .iter()
        .find(|(c, _)| *c == word)
        .map(|(_, expanded)| *expanded)
}

/// Mandarin text as simplified characters, without punctuation or spaces.
pub fn characters(text: &str) -> Vec<String> {
    to_simplified(text)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .map(String::from)
        .collect()
}

fn number_word(word: &str) -> Option<&'static str> {
    const NUMBERS: [(&str, &str); 28] = [
        ("zero", "0"),
        ("oh", "0"),
        ("one", "1"),
        ("two", "2"),
        ("three", "3"),
        ("four", "4"),
        ("five", "5"),
        ("six", "6"),
        ("seven", "7"),
        ("eight", "8"),
        ("nine", "9"),
        ("ten", "10"),
        ("eleven", "11"),
        ("twelve", "12"),
        ("thirteen", "13"),
        ("fourteen", "14"),
        ("fifteen", "15"),
        ("sixteen", "16"),
        ("seventeen", "17"),
        ("eighteen", "18"),
        ("nineteen", "19"),
        ("twenty", "20"),
        ("thirty", "30"),
        ("forty", "40"),
        ("fifty", "50"),
        ("sixty", "60"),
        ("seventy", "70"),
        ("eighty", "80"),
    ];
    NUMBERS.iter().find(|(w, _)| *w == word).map(|(_, d)| *d)
}

/// Levenshtein distance between two sequences.
fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(x != y);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_errors_forgive_case_punctuation_and_digits() {
        let e = score(Language::En, "Press one, two or THREE.", "press 1 2 or 3");
        assert_eq!(
            e,
            ErrorCount {
                edits: 0,
                reference: 5
            }
        );
        let e = score(
            Language::En,
            "ask not what your country",
            "ask what your country can",
        );
        assert_eq!(e.edits, 2);
        assert!((e.rate() - 0.4).abs() < 1e-9);
        assert_eq!(words("I'd like 'em"), ["i'd", "like", "them"]);
        assert_eq!(
            words("I'm sure it's fine"),
            ["i", "am", "sure", "it", "is", "fine"]
        );
    }

    #[test]
    fn character_errors_forgive_traditional_characters_and_punctuation() {
        let e = score(Language::Zh, "恭喜发财", "恭喜發財！");
        assert_eq!(
            e,
            ErrorCount {
                edits: 0,
                reference: 4
            }
        );
        let e = score(Language::Zh, "砸自己的脚", "砸自己脚");
        assert_eq!(e.edits, 1);
    }

    #[test]
    fn corpus_rates_sum_edits_over_reference_units() {
        let mut total = ErrorCount::default();
        total += score(Language::En, "a b c d", "a b c d");
        total += score(Language::En, "e f", "e");
        assert_eq!(
            total,
            ErrorCount {
                edits: 1,
                reference: 6
            }
        );
        assert_eq!(
            ErrorCount {
                edits: 2,
                reference: 0
            }
            .rate(),
            1.0
        );
    }
}
