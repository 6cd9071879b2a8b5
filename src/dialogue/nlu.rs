//! Intent recognition: example phrases and keywords, in English and Chinese, scored with a
//! confidence in 0..1.
//!
//! Each intent is a set of example phrases and keywords. A caller's words are turned into
//! sparse TF-IDF feature vectors and compared (cosine) with every example; the best example
//! gives the intent's similarity. A keyword heard in the words (exactly, or within one edit for
//! longer English keywords, so that ASR slips such as "ballance" still count) lifts the score.
//!
//! Features come in three [`FeatureMode`]s so that they can be measured against each other on
//! the labelled set in `tests/data/` (see `tests/nlu.rs`):
//! - [`FeatureMode::CharNgrams`]: character trigrams of English words, Han characters and
//!   Han bigrams. Robust to misheard word endings and to Chinese without spaces.
//! - [`FeatureMode::Words`]: English words (lightly stemmed) and jieba-rs words for Chinese.
//! - [`FeatureMode::Hybrid`]: both, the default.
//!
//! Each flow chooses its mode (`[nlu] features`). On the labelled sets hybrid measured best in
//! English and character n-grams best in Chinese, where homophone slips (定单 for 订单) break
//! jieba's words but keep most character pairs (`cargo test --test nlu -- --nocapture`).
//!
//! Invariants: the matcher is immutable after [`IntentMatcher::new`], so one instance is shared
//! by every call of a flow version; scores are always within 0..=1.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::text::{self, Segment, EN_STOPWORDS, ZH_STOPCHARS};
use super::IntentMatch;

/// Which features represent a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureMode {
    /// Character n-grams only.
    CharNgrams,
    /// Words only (whitespace for English, jieba for Chinese).
    Words,
    /// Character n-grams and words together.
    #[default]
    Hybrid,
}

/// One intent as a flow defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentDef {
    /// The intent's name, as flows route on it.
    pub name: String,
    /// Example phrases, in any of the flow's languages.
    pub examples: Vec<String>,
    /// Words or phrases that, heard anywhere in the caller's words, point at this intent.
    pub keywords: Vec<String>,
}

/// A sparse, L2-normalized TF-IDF vector.
#[derive(Debug, Clone, Default)]
struct SparseVec {
    weights: HashMap<String, f32>,
}

impl SparseVec {
    fn cosine(&self, other: &SparseVec) -> f32 {
        let (small, large) = if self.weights.len() <= other.weights.len() {
            (self, other)
        } else {
            (other, self)
        };
        small
            .weights
            .iter()
            .filter_map(|(term, w)| large.weights.get(term).map(|v| w * v))
            .sum::<f32>()
            .clamp(0.0, 1.0)
    }
}

/// A normalized keyword, ready to look for.
#[derive(Debug, Clone)]
struct Keyword {
    /// Normalized text; for Latin keywords, padded with spaces for whole-word matching.
    needle: String,
    /// Whether one edit is tolerated (single Latin words of five letters or more).
    fuzzy: bool,
}

#[derive(Debug, Clone)]
struct CompiledIntent {
    name: String,
    examples: Vec<SparseVec>,
    keywords: Vec<Keyword>,
}

/// Matches caller words to intents.
#[derive(Debug, Clone)]
pub struct IntentMatcher {
    mode: FeatureMode,
    intents: Vec<CompiledIntent>,
    idf: HashMap<String, f32>,
    /// The idf given to a feature no example has (the rarest possible).
    unseen_idf: f32,
}

/// How much a keyword hit counts: the confidence of a keyword hit with no example overlap.
const KEYWORD_FLOOR: f32 = 0.62;

impl IntentMatcher {
    /// Compiles intents. Examples and keywords are normalized here, once.
    pub fn new(intents: &[IntentDef], mode: FeatureMode) -> Self {
        let mut doc_freq: HashMap<String, usize> = HashMap::new();
        let mut docs = 0usize;
        let mut raw: Vec<Vec<HashMap<String, f32>>> = Vec::with_capacity(intents.len());
        for intent in intents {
            let mut per_intent = Vec::new();
            for example in &intent.examples {
                let features = features(&text::normalize(example), mode);
                for term in features.keys() {
                    *doc_freq.entry(term.clone()).or_default() += 1;
                }
                docs += 1;
                per_intent.push(features);
            }
            raw.push(per_intent);
        }
        let n = docs.max(1) as f32;
        let idf: HashMap<String, f32> = doc_freq
            .into_iter()
            .map(|(term, df)| (term, (1.0 + n / df as f32).ln()))
            .collect();
        let unseen_idf = (1.0 + n).ln();
        let mut matcher = IntentMatcher {
            mode,
            intents: Vec::new(),
            idf,
            unseen_idf,
        };
        for (intent, examples) in intents.iter().zip(raw) {
            let examples = examples.into_iter().map(|f| matcher.weigh(f)).collect();
            let keywords = intent
                .keywords
                .iter()
                .map(|k| text::normalize(k))
                .filter(|k| !k.is_empty())
                .map(|k| {
                    let latin = !k.chars().any(text::is_han);
                    let fuzzy = latin && !k.contains(' ') && k.chars().count() >= 5;
                    Keyword {
                        needle: if latin { format!(" {k} ") } else { k },
                        fuzzy,
                    }
                })
                .collect();
            matcher.intents.push(CompiledIntent {
                name: intent.name.clone(),
                examples,
                keywords,
            });
        }
        matcher
    }

    /// The feature mode in use.
    pub fn mode(&self) -> FeatureMode {
        self.mode
    }

    /// Turns raw term counts into an L2-normalized TF-IDF vector.
    fn weigh(&self, counts: HashMap<String, f32>) -> SparseVec {
        let mut weights: HashMap<String, f32> = counts
            .into_iter()
            .map(|(term, tf)| {
                let idf = self.idf.get(&term).copied().unwrap_or(self.unseen_idf);
                (term, (1.0 + tf.ln()) * idf)
            })
            .collect();
        let norm = weights.values().map(|w| w * w).sum::<f32>().sqrt();
        if norm > 0.0 {
            for w in weights.values_mut() {
                *w /= norm;
            }
        }
        SparseVec { weights }
    }

    /// Scores every intent (or only those named in `candidates`), best first.
    pub fn rank(&self, words: &str, candidates: Option<&[String]>) -> Vec<IntentMatch> {
        let normalized = text::normalize(words);
        if normalized.is_empty() {
            return Vec::new();
        }
        let query = self.weigh(features(&normalized, self.mode));
        let padded = format!(" {normalized} ");
        let query_words: Vec<&str> = normalized.split(' ').collect();
        let mut out: Vec<IntentMatch> = self
            .intents
            .iter()
            .filter(|i| candidates.is_none_or(|c| c.iter().any(|n| n == &i.name)))
            .map(|intent| {
                let similarity = intent
                    .examples
                    .iter()
                    .map(|e| e.cosine(&query))
                    .fold(0.0f32, f32::max);
                let keyword_hit = intent
                    .keywords
                    .iter()
                    .any(|k| keyword_heard(k, &padded, &query_words));
                let confidence = if keyword_hit {
                    KEYWORD_FLOOR + (1.0 - KEYWORD_FLOOR) * similarity
                } else {
                    similarity
                };
                IntentMatch {
                    name: intent.name.clone(),
                    confidence: confidence.clamp(0.0, 1.0),
                }
            })
            .collect();
        out.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        out
    }

    /// The best intent (among `candidates`, if given), or `None` when nothing overlaps at all.
    pub fn best(&self, words: &str, candidates: Option<&[String]>) -> Option<IntentMatch> {
        self.rank(words, candidates)
            .into_iter()
            .next()
            .filter(|m| m.confidence > 0.0)
    }
}

fn keyword_heard(keyword: &Keyword, padded_query: &str, query_words: &[&str]) -> bool {
    if padded_query.contains(&keyword.needle) {
        return true;
    }
    if keyword.fuzzy {
        let k = keyword.needle.trim();
        return query_words.iter().any(|w| within_one_edit(k, w));
    }
    false
}

/// True when `a` and `b` differ by at most one insertion, deletion or substitution.
pub fn within_one_edit(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let (mut i, mut j, mut edits) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            i += 1;
            j += 1;
            continue;
        }
        edits += 1;
        if edits > 1 {
            return false;
        }
        match a.len().cmp(&b.len()) {
            std::cmp::Ordering::Greater => i += 1,
            std::cmp::Ordering::Less => j += 1,
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    edits + (a.len() - i) + (b.len() - j) <= 1
}

/// The shared jieba segmenter (its dictionary loads once per process).
pub fn jieba() -> &'static jieba_rs::Jieba {
    static JIEBA: OnceLock<jieba_rs::Jieba> = OnceLock::new();
    JIEBA.get_or_init(jieba_rs::Jieba::new)
}

/// Term counts of normalized text under a feature mode.
fn features(normalized: &str, mode: FeatureMode) -> HashMap<String, f32> {
    let mut out: HashMap<String, f32> = HashMap::new();
    let mut add = |term: String| *out.entry(term).or_default() += 1.0;
    let grams = matches!(mode, FeatureMode::CharNgrams | FeatureMode::Hybrid);
    let words = matches!(mode, FeatureMode::Words | FeatureMode::Hybrid);
    for segment in text::segments(normalized) {
        match segment {
            Segment::Word(w) => {
                let stop = EN_STOPWORDS.contains(&w);
                if words && !stop {
                    add(format!("w:{}", text::stem(w)));
                }
                if grams && !stop {
                    let padded: Vec<char> = format!("^{w}$").chars().collect();
                    for g in padded.windows(3) {
                        add(format!("c:{}", g.iter().collect::<String>()));
                    }
                }
            }
            Segment::Han(run) => {
                let chars: Vec<char> = run.chars().collect();
                if grams {
                    for c in chars.iter().filter(|c| !ZH_STOPCHARS.contains(c)) {
                        add(format!("h:{c}"));
                    }
                    for pair in chars.windows(2) {
                        add(format!("b:{}{}", pair[0], pair[1]));
                    }
                }
                if words {
                    for token in jieba().cut(run, true) {
                        let single_stop = token.word.chars().count() == 1
                            && token.word.chars().all(|c| ZH_STOPCHARS.contains(&c));
                        if !single_stop {
                            add(format!("j:{}", token.word));
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs() -> Vec<IntentDef> {
        vec![
            IntentDef {
                name: "balance".into(),
                examples: vec!["what is my balance".into(), "how much do I owe".into()],
                keywords: vec!["balance".into(), "bill".into()],
            },
            IntentDef {
                name: "order".into(),
                examples: vec!["where is my order".into(), "查订单".into()],
                keywords: vec!["订单".into()],
            },
        ]
    }

    #[test]
    fn matches_both_languages_and_noise() {
        for mode in [
            FeatureMode::CharNgrams,
            FeatureMode::Words,
            FeatureMode::Hybrid,
        ] {
            let m = IntentMatcher::new(&defs(), mode);
            assert_eq!(
                m.best("What's my ballance?", None).map(|m| m.name),
                Some("balance".into())
            );
            assert_eq!(
                m.best("我想查一下订单", None).map(|m| m.name),
                Some("order".into())
            );
        }
    }

    #[test]
    fn unrelated_words_score_low() {
        let m = IntentMatcher::new(&defs(), FeatureMode::Hybrid);
        let best = m.best("the weather in paris tomorrow", None);
        assert!(best.as_ref().is_none_or(|b| b.confidence < 0.3), "{best:?}");
    }

    #[test]
    fn one_edit() {
        assert!(within_one_edit("balance", "ballance"));
        assert!(within_one_edit("balance", "balence"));
        assert!(!within_one_edit("balance", "bal"));
    }
}
