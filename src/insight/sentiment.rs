//! A caller turn's sentiment, from -1 (angry) to 1 (pleased): cue words and phrases in English
//! and Chinese, a negation just before a cue turns it round, and a fast speaking rate or a
//! voice raised above the caller's own usual level makes a negative turn more so. Pure and
//! cheap: it runs on every turn of every call.

/// Negative cues and their weights. Matched on word boundaries (English) or as substrings
/// (Chinese, which has no spaces).
const NEGATIVE: &[(&str, f32)] = &[
    ("ridiculous", 0.8),
    ("useless", 0.8),
    ("terrible", 0.8),
    ("awful", 0.7),
    ("angry", 0.7),
    ("furious", 0.9),
    ("frustrated", 0.7),
    ("frustrating", 0.7),
    ("annoying", 0.6),
    ("stupid", 0.8),
    ("hate", 0.7),
    ("worst", 0.8),
    ("complaint", 0.6),
    ("complain", 0.6),
    ("cancel", 0.3),
    ("wrong", 0.4),
    ("not working", 0.5),
    ("doesn't work", 0.5),
    ("still waiting", 0.5),
    ("again", 0.2),
    ("real person", 0.5),
    ("human", 0.3),
    ("垃圾", 0.8),
    ("投诉", 0.7),
    ("生气", 0.7),
    ("太差", 0.8),
    ("差劲", 0.8),
    ("没用", 0.7),
    ("烦", 0.6),
    ("怎么回事", 0.5),
    ("搞什么", 0.7),
    ("退款", 0.3),
    ("人工", 0.3),
    ("还没", 0.3),
];

/// Positive cues and their weights.
const POSITIVE: &[(&str, f32)] = &[
    ("thank you", 0.6),
    ("thanks", 0.6),
    ("great", 0.6),
    ("perfect", 0.7),
    ("excellent", 0.7),
    ("helpful", 0.6),
    ("good", 0.3),
    ("happy", 0.5),
    ("appreciate", 0.6),
    ("谢谢", 0.6),
    ("太好了", 0.7),
    ("满意", 0.6),
    ("不错", 0.5),
    ("好的", 0.2),
];

/// Words that turn the next cue round ("not good", "不满意").
const NEGATIONS: &[&str] = &["not", "never", "no", "don't", "isn't", "不", "没"];

/// English words a second above which a negative turn counts as agitated (Chinese: syllables,
/// at a proportionally higher rate).
const FAST_WORDS_PER_S: f32 = 3.5;
const FAST_SYLLABLES_PER_S: f32 = 5.5;
/// A turn this much louder than the caller's median turn is a raised voice.
const RAISED_DB: f32 = 6.0;

/// How many words (English) or syllables (Chinese characters) `text` has.
pub fn words(text: &str) -> usize {
    let han = text.chars().filter(|c| is_han(*c)).count();
    let latin = text
        .split(|c: char| c.is_whitespace() || is_han(c))
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count();
    han + latin
}

fn is_han(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// How the caller sounded in a turn, from the turn's speech events.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Delivery {
    /// How long the caller spoke.
    pub speaking_ms: Option<u64>,
    /// How much louder (dB) than the caller's median turn.
    pub louder_db: Option<f32>,
}

/// The sentiment of one turn: `text` as stored, `words` its [`words`], and how it was said.
pub fn score(text: &str, words: usize, delivery: Delivery) -> f32 {
    let lower = text.to_lowercase();
    let mut total = 0.0f32;
    for (cue, weight) in NEGATIVE {
        total -= weight * signed_hits(&lower, cue);
    }
    for (cue, weight) in POSITIVE {
        total += weight * signed_hits(&lower, cue);
    }
    if total < 0.0 {
        if lower.contains('!') || lower.contains('！') {
            total *= 1.2;
        }
        if delivery.louder_db.is_some_and(|db| db >= RAISED_DB) {
            total *= 1.25;
        }
        if let Some(ms) = delivery.speaking_ms.filter(|ms| *ms > 0) {
            let per_s = words as f32 * 1000.0 / ms as f32;
            let han = lower.chars().any(is_han);
            if per_s
                > if han {
                    FAST_SYLLABLES_PER_S
                } else {
                    FAST_WORDS_PER_S
                }
            {
                total *= 1.25;
            }
        }
    }
    total.clamp(-1.0, 1.0)
}

/// Each occurrence of `cue` counts 1, or -1 when a negation comes just before it.
fn signed_hits(lower: &str, cue: &str) -> f32 {
    let mut sum = 0.0;
    let mut from = 0;
    while let Some(i) = lower[from..].find(cue) {
        let start = from + i;
        let end = start + cue.len();
        from = end;
        let ascii = cue.is_ascii();
        if ascii && !(boundary(lower, start, true) && boundary(lower, end, false)) {
            continue;
        }
        let before = lower[..start].trim_end();
        let negated = if ascii {
            before
                .rsplit(|c: char| !c.is_alphanumeric() && c != '\'')
                .next()
                .is_some_and(|w| NEGATIONS.contains(&w))
        } else {
            NEGATIONS
                .iter()
                .any(|n| !n.is_ascii() && before.ends_with(n))
        };
        sum += if negated { -1.0 } else { 1.0 };
    }
    sum
}

/// Whether the character before (`before`) or at `i` is not part of a word.
fn boundary(s: &str, i: usize, before: bool) -> bool {
    let c = if before {
        s[..i].chars().next_back()
    } else {
        s[i..].chars().next()
    };
    c.is_none_or(|c| !c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> f32 {
        score(text, words(text), Delivery::default())
    }

    #[test]
    fn anger_is_negative_and_thanks_positive_in_both_languages() {
        assert!(of("this is ridiculous, the service is useless") < -0.9);
        assert!(of("你们的服务太差了，我要投诉") < -0.9);
        assert!(of("great, thank you so much") > 0.9);
        assert!(of("好的，谢谢") > 0.5);
        assert_eq!(of("what is my balance"), 0.0);
    }

    #[test]
    fn a_negation_turns_a_cue_round_and_words_match_whole() {
        assert!(of("that is not good") < 0.0);
        assert!(of("我不满意") < 0.0);
        // "hate" inside "whatever" is no cue.
        assert_eq!(of("whatever works"), 0.0);
    }

    #[test]
    fn fast_angry_speech_scores_lower_than_slow() {
        let text = "this is so annoying";
        let at = |ms| Delivery {
            speaking_ms: Some(ms),
            louder_db: None,
        };
        let fast = score(text, words(text), at(800));
        let slow = score(text, words(text), at(3000));
        assert!(fast < slow, "{fast} {slow}");
        let raised = Delivery {
            speaking_ms: Some(3000),
            louder_db: Some(8.0),
        };
        assert!(score(text, words(text), raised) < slow);
        // Loud thanks is no anger.
        assert!(score("thanks", 1, raised) > 0.0);
        assert_eq!(words("我要 check 余额"), 5);
    }
}
