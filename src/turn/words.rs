//! The words' say on the end of a turn: does the caller's sentence, as the speculative final
//! recognition heard it, read as finished?
//!
//! whisper punctuates what it hears. A sentence that ends in `.`, `?` or `!` (`。`, `？`, `！` in
//! Mandarin), on a word that can end one, reads as finished: the session ends the turn at once
//! instead of waiting out the fixed silence. A trailing comma or ellipsis, or a last word that
//! leads on ("and", "because", "um", "the"; "然后", "还有", "因为", "嗯"; "to" and "of" only when
//! whisper did not close the sentence after them), reads as unfinished:
//! the session waits longer (`session.turn_max_silence_ms`). While the node collects digits, a
//! digit string is never finished by its words (callers pause between groups of a number) and
//! waits longer too. Anything else (no punctuation, a non-speech tag) is left to the silence.
//!
//! Pure text in, a [`Words`] verdict out; no state, no clock.

use crate::language::Language;

/// What the words say about the turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Words {
    /// A finished sentence: end the turn now.
    Finished,
    /// The caller is mid-sentence (a word that leads on, a trailing comma, a digit string
    /// being given): wait longer than the fixed silence.
    Unfinished,
    /// The words cannot tell: the fixed silence decides.
    Unsure,
}

/// English words a finished sentence does not end on (compared lower-case, apostrophes kept).
/// Words a question can end on ("is", "with", "from", "for") are not among them.
const EN_LEADS_ON: &[&str] = &[
    "and", "or", "but", "because", "cause", "um", "umm", "uh", "er", "erm", "the", "a", "an", "my",
    "your", "our", "their", "if", "than", "whether", "i'm", "i'd", "i'll", "we're", "it's",
];

/// English words that usually lead on ("I want to", "the number of") but can also end a
/// sentence ("a museum to go to.", "what is it made of?"): unfinished unless whisper closed
/// the sentence after them.
const EN_MAY_END: &[&str] = &["to", "of"];

/// Mandarin endings a finished sentence does not have.
const ZH_LEADS_ON: &[&str] = &[
    "然后", "还有", "和", "跟", "但是", "可是", "因为", "所以", "或者", "还是", "那个", "就是",
    "嗯", "呃", "额", "的话", "如果", "我想", "我要",
];

/// Punctuation that ends a sentence.
const FINAL_MARKS: &[char] = &['.', '?', '!', '。', '？', '！'];

/// Punctuation after which a sentence goes on.
const OPEN_MARKS: &[char] = &[',', ';', ':', '-', '—', '–', '，', '、', '；', '：', '…'];

/// Judges `text` (a final recognition of the turn so far) in `language`; `digits`: the node
/// is collecting a digit string (a number, an id, a phone number).
pub fn judge(text: &str, language: Language, digits: bool) -> Words {
    let text = text
        .trim()
        .trim_end_matches(['"', '\'', '”', '’', ')', ']', '」']);
    if text.is_empty() || text.starts_with(['[', '(', '*', '♪']) {
        return Words::Unsure;
    }
    if text.ends_with("...") || text.ends_with(OPEN_MARKS) {
        return Words::Unfinished;
    }
    let bare = text.trim_end_matches(FINAL_MARKS).trim_end();
    if digits {
        // A number is given in groups; only the silence (the longer wait) says it is whole.
        return match bare.chars().last() {
            Some(c) if c.is_ascii_digit() || is_digit_word(last_word(bare)) => Words::Unfinished,
            _ => Words::Unsure,
        };
    }
    let closed = text.ends_with(FINAL_MARKS);
    if leads_on(bare, language)
        || (!closed && language != Language::Zh && EN_MAY_END.contains(&last_word(bare).as_str()))
    {
        return Words::Unfinished;
    }
    if closed {
        Words::Finished
    } else {
        Words::Unsure
    }
}

/// The last whitespace-separated word of `text`, lower-case, without punctuation around it.
fn last_word(text: &str) -> String {
    text.split_whitespace()
        .next_back()
        .unwrap_or("")
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
        .to_lowercase()
}

fn is_digit_word(word: String) -> bool {
    matches!(
        word.as_str(),
        "zero"
            | "oh"
            | "one"
            | "two"
            | "three"
            | "four"
            | "five"
            | "six"
            | "seven"
            | "eight"
            | "nine"
    )
}

/// Whether `text` (final punctuation stripped) ends on a word that leads on.
fn leads_on(text: &str, language: Language) -> bool {
    match language {
        Language::Zh => {
            let text = text.trim_end_matches(|c: char| !c.is_alphanumeric());
            ZH_LEADS_ON.iter().any(|w| text.ends_with(w))
        }
        _ => EN_LEADS_ON.contains(&last_word(text).as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_sentence_ends_the_turn() {
        for text in [
            "I'd like to speak to customer support.",
            "What are your opening hours?",
            "Thank you!",
            " Yes. ",
            "\"Cancel my order.\"",
            "Yes, I'm looking for a museum to go to.",
            "What is this charge made of?",
        ] {
            assert_eq!(judge(text, Language::En, false), Words::Finished, "{text}");
        }
        for text in ["我想查一下我的订单。", "你们几点开门？"] {
            assert_eq!(judge(text, Language::Zh, false), Words::Finished, "{text}");
        }
    }

    #[test]
    fn a_sentence_that_leads_on_waits_longer() {
        for text in [
            "I want to check my balance and",
            "I want to check my balance and.",
            "My order number is,",
            "Well, because...",
            "I'd like to um.",
            "Can I speak to the",
            "I would like to",
            "It's the cost of",
            "It's about my…",
        ] {
            assert_eq!(
                judge(text, Language::En, false),
                Words::Unfinished,
                "{text}"
            );
        }
        for text in ["我想查一下然后", "我的订单，", "嗯。"] {
            assert_eq!(
                judge(text, Language::Zh, false),
                Words::Unfinished,
                "{text}"
            );
        }
    }

    #[test]
    fn digits_are_never_finished_by_their_words() {
        assert_eq!(judge("4 1 2 7.", Language::En, true), Words::Unfinished);
        assert_eq!(
            judge("one two three", Language::En, true),
            Words::Unfinished
        );
        assert_eq!(judge("I don't know.", Language::En, true), Words::Unsure);
        // Outside a digit node a number is an answer like any other.
        assert_eq!(judge("4 1 2 7.", Language::En, false), Words::Finished);
    }

    #[test]
    fn what_the_words_cannot_tell_is_left_to_the_silence() {
        for text in [
            "",
            "  ",
            "[BLANK_AUDIO]",
            "(coughing)",
            "I want to check my balance",
        ] {
            assert_eq!(judge(text, Language::En, false), Words::Unsure, "{text:?}");
        }
        assert_eq!(judge("我想查一下订单", Language::Zh, false), Words::Unsure);
    }
}
