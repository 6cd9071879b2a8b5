//! Text normalization shared by intent matching, slot parsing and knowledge-base retrieval.
//!
//! Transcripts arrive from ASR engines and typists in many shapes: mixed case, full-width
//! forms, Chinese without spaces, punctuation from whisper. Everything downstream works on the
//! output of [`normalize`]: lower-case, full-width ASCII folded to half-width, punctuation turned
//! into spaces, runs of spaces collapsed. Chinese characters pass through unchanged.
//!
//! [`Segment`]s split normalized text into Latin words and Han runs, so that each script gets
//! the features that suit it (words and character trigrams for English; characters, bigrams
//! and jieba words for Chinese).

/// True for a CJK unified ideograph (the Han characters used in Chinese text).
pub fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2A6DF)
}

/// Folds full-width ASCII forms (U+FF01..U+FF5E) and the ideographic space to half-width.
fn fold_width(c: char) -> char {
    match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    }
}

/// Lower-cases, folds width, maps punctuation to spaces and collapses whitespace.
/// Apostrophes inside words are dropped ("what's" becomes "whats") so that ASR variants agree.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last_space = true;
    for c in text.chars().map(fold_width) {
        if c == '\'' || c == '’' {
            continue;
        }
        if c.is_alphanumeric() {
            for l in c.to_lowercase() {
                out.push(l);
            }
            last_space = false;
        } else if !last_space {
            out.push(' ');
            last_space = true;
        }
    }
    while out.ends_with(' ') {
        out.pop();
    }
    out
}

/// A run of normalized text in one script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment<'a> {
    /// A word of Latin letters and/or digits.
    Word(&'a str),
    /// A run of Han characters with no spaces inside.
    Han(&'a str),
}

/// Splits normalized text into words and Han runs. A word touching Han characters is split
/// at the script boundary ("查一下order" gives `Han("查一下")`, `Word("order")`).
pub fn segments(normalized: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for token in normalized.split(' ').filter(|t| !t.is_empty()) {
        let mut start = 0;
        let mut current_han: Option<bool> = None;
        for (i, c) in token.char_indices() {
            let han = is_han(c);
            if let Some(prev) = current_han {
                if prev != han {
                    push_segment(&mut out, &token[start..i], prev);
                    start = i;
                }
            }
            current_han = Some(han);
        }
        if let Some(prev) = current_han {
            push_segment(&mut out, &token[start..], prev);
        }
    }
    out
}

fn push_segment<'a>(out: &mut Vec<Segment<'a>>, s: &'a str, han: bool) {
    if s.is_empty() {
        return;
    }
    out.push(if han {
        Segment::Han(s)
    } else {
        Segment::Word(s)
    });
}

/// English words that carry little meaning for retrieval and matching.
pub const EN_STOPWORDS: &[&str] = &[
    "a", "an", "the", "i", "me", "my", "you", "your", "we", "our", "is", "are", "am", "was", "be",
    "to", "of", "for", "in", "on", "at", "it", "its", "this", "that", "and", "or", "do", "does",
    "did", "can", "could", "would", "will", "please", "um", "uh", "erm", "hmm", "like", "just",
    "so", "well", "oh", "hi", "hello", "hey", "with", "about", "what", "whats", "how", "im", "id",
    "want", "need", "some", "get", "there", "if", "then", "up", "any",
];

/// Chinese characters that carry little meaning on their own (particles, pronouns).
pub const ZH_STOPCHARS: &[char] = &[
    '的', '了', '吗', '呢', '吧', '啊', '呀', '嗯', '我', '你', '是', '在', '有', '个', '一', '下',
    '那', '这', '想', '要', '请', '么', '就', '还', '也', '和', '给', '帮', '能', '可', '以',
];

/// Strips a few English suffixes so that "orders", "ordered" and "ordering" meet.
pub fn stem(word: &str) -> &str {
    for suffix in ["ing", "ed", "es", "s"] {
        if word.len() > suffix.len() + 2 && word.ends_with(suffix) {
            return &word[..word.len() - suffix.len()];
        }
    }
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_width_and_punctuation() {
        assert_eq!(normalize("  What's MY Balance?! "), "whats my balance");
        assert_eq!(normalize("查订单，谢谢！"), "查订单 谢谢");
        assert_eq!(normalize("ＡＢＣ１２３"), "abc123");
    }

    #[test]
    fn splits_scripts() {
        let n = normalize("查一下order 123");
        assert_eq!(
            segments(&n),
            vec![
                Segment::Han("查一下"),
                Segment::Word("order"),
                Segment::Word("123")
            ]
        );
    }
}
