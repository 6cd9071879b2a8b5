//! Whether a barge-in was real: what the caller said over the bot, judged once its words are
//! known.
//!
//! The session stops the bot the moment the caller's voice is heard over it (callers notice a
//! bot that talks on), but not every sound over the bot is an interruption. A backchannel
//! ("uh-huh", "ok", "right", "嗯", "对", "好的") only says "go on", and a cough or a noise brings
//! no words at all. [`false_interruption`] tells those apart from a real turn, so the bot can
//! resume its reply. Words that ask the bot to stop ("stop", "no", "wait", "等一下") are never
//! backchannels, so they always interrupt.
//!
//! Pure functions, no state.

use crate::language::Language;

use super::reason::ResumeReason;

/// English words and phrases that only acknowledge, compared after lower-casing and dropping
/// punctuation. Every word of the utterance must be one of them.
const BACKCHANNELS_EN: &[&str] = &[
    "uh-huh", "uh", "huh", "uhhuh", "mhm", "mm", "mmhm", "mm-hmm", "hmm", "hm", "um", "ok", "okay",
    "right", "yeah", "yep", "yup", "sure", "alright", "i", "see", "got", "it", "cool", "aha", "ah",
    "oh",
];

/// Utterances that are backchannels on their own, whatever their words ("i see", "got it").
const BACKCHANNEL_PHRASES_EN: &[&str] = &["i see", "got it", "all right", "i got it"];

/// Words that always interrupt, even among backchannel words ("ok stop", "no").
const STOP_WORDS_EN: &[&str] = &["stop", "no", "wait", "hold", "cancel", "nope", "pause"];

/// Mandarin acknowledgements, compared after dropping punctuation and spaces.
const BACKCHANNELS_ZH: &[&str] = &[
    "嗯",
    "嗯嗯",
    "嗯哼",
    "对",
    "对对",
    "对对对",
    "好",
    "好的",
    "好好",
    "行",
    "是",
    "是的",
    "哦",
    "噢",
    "啊",
    "明白",
    "知道了",
    "了解",
];

/// Mandarin words that always interrupt.
const STOP_WORDS_ZH: &[&str] = &["等一下", "等等", "停", "不", "不是", "不要", "别说了"];

/// Whether what the caller said over the bot was no real interruption, and why; `None` for a
/// real turn.
pub fn false_interruption(text: &str, language: Language) -> Option<ResumeReason> {
    match language {
        Language::Zh => false_interruption_zh(text),
        _ => false_interruption_en(text),
    }
}

/// The text without a recognizer's sound annotations ("[cough]", "(music)", "[BLANK_AUDIO]"):
/// they are not words.
fn without_annotations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0u32;
    for c in text.chars() {
        match c {
            '[' | '(' | '（' | '【' => depth += 1,
            ']' | ')' | '）' | '】' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn false_interruption_en(text: &str) -> Option<ResumeReason> {
    let cleaned: String = without_annotations(text)
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let words: Vec<&str> = cleaned
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '-' || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return Some(ResumeReason::NoWords);
    }
    if words.iter().any(|w| STOP_WORDS_EN.contains(w)) {
        return None;
    }
    let phrase = words.join(" ");
    if BACKCHANNEL_PHRASES_EN.contains(&phrase.as_str())
        || words.iter().all(|w| BACKCHANNELS_EN.contains(w))
    {
        return Some(ResumeReason::Backchannel);
    }
    None
}

fn false_interruption_zh(text: &str) -> Option<ResumeReason> {
    let cleaned: String = without_annotations(text)
        .chars()
        .filter(|c| c.is_alphanumeric() && !c.is_ascii_digit())
        .collect();
    if cleaned.is_empty() {
        return Some(ResumeReason::NoWords);
    }
    if STOP_WORDS_ZH.iter().any(|w| cleaned.contains(w)) {
        return None;
    }
    if BACKCHANNELS_ZH.contains(&cleaned.as_str()) {
        return Some(ResumeReason::Backchannel);
    }
    // English backchannels said on a Mandarin line ("OK").
    false_interruption_en(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backchannels_and_noise_are_false_interruptions() {
        for text in [
            "Uh-huh.",
            "OK",
            "okay, right",
            "Mm-hmm",
            "I see.",
            "yeah yeah",
            "Got it!",
        ] {
            assert_eq!(
                false_interruption(text, Language::En),
                Some(ResumeReason::Backchannel),
                "{text}"
            );
        }
        for text in ["", "  ", "...", "[cough]"] {
            let reason = false_interruption(text, Language::En);
            assert!(reason.is_some(), "{text:?}");
        }
        assert_eq!(
            false_interruption("", Language::En),
            Some(ResumeReason::NoWords)
        );
        for text in ["嗯", "对。", "好的", "嗯嗯", "OK"] {
            assert_eq!(
                false_interruption(text, Language::Zh),
                Some(ResumeReason::Backchannel),
                "{text}"
            );
        }
    }

    #[test]
    fn stop_words_and_requests_always_interrupt() {
        for text in [
            "stop",
            "No.",
            "wait",
            "ok stop",
            "yeah no",
            "I want to speak to an agent",
            "what are your opening hours",
        ] {
            assert_eq!(false_interruption(text, Language::En), None, "{text}");
        }
        for text in ["等一下", "不是", "好的等等", "我要转人工"] {
            assert_eq!(false_interruption(text, Language::Zh), None, "{text}");
        }
    }
}
