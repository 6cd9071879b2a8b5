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
//! Over the bot's own echo a recognizer often mishears a backchannel ("mm-hmm" as "I'm
//! handsome", "right" as "bright"). Two things help. The session recognizes words over the bot
//! with [`said_over_the_bot`] added to the node's phrases, so whisper is primed to spell them;
//! and [`judge`] also resumes for such words: one or two words,
//! heard with low confidence, with no stop word, while the bot waits for phrases none of whose
//! words they hold (a word of four letters or more counts when it starts like one of theirs:
//! "billing" for "bill"). A short answer the node expects ("agent", "my bill") still
//! interrupts however unclear it sounded, and so does anything at a node that expects no
//! phrases in particular. Confidence is a weak signal over echo (whisper gives a correctly
//! heard "billing" 0.3), so the threshold is low, and a stop word misheard as something else
//! can still resume the bot: `cargo bench --bench barge_in` measures both sides.
//!
//! The bot's echo reaches whisper too (all of it without the canceller, about 14 dB of it
//! with), and whisper puts the bot's words, or near-words of them, in front of the caller's
//! ("glad you got it", "we're got it"). Words that carry no request (conjunctions, pronouns,
//! auxiliaries, thanks: "and mhm", "okay, can we're sure") leave an acknowledgement one. The
//! bot's words are known, so [`judge`] also weighs what the caller said less the words of the
//! sentences the bot was in when it was cut ([`OverTheBot::bot`]), the text's own echo
//! reference: what is left, if anything, is judged as a backchannel would be. A stop word, and a
//! word of a phrase the bot waits for, are never taken out ("okay, billing" over a bot that
//! says "billing" still answers), and an utterance made only of the bot's words is judged
//! whole (a caller may repeat the bot). It takes out words the bot said, not the near-words
//! whisper makes of a faint residual ("we're" for "Whittemore"): in `cargo bench --bench
//! barge_in` it cuts backchannels left stopped from 46 to 29 of 150 without the canceller. With
//! the canceller, the fillers' rule cuts them from 10 to 3 of 150 on whisper's 96-token
//! prompt ("can we write", "and then them", "and anthem" remain) and to 7 of 150 on the
//! 48-token prompt the recognizer now uses ("uh-huh" heard as "uh-uh", a "no", besides), with
//! no stop word or short answer missed.
//!
//! Pure functions, no state.

use crate::asr::Grammar;
use crate::language::Language;

use super::reason::ResumeReason;

/// English words and phrases that only acknowledge, compared after lower-casing and dropping
/// punctuation. Every word of the utterance must be one of them (or a hum, see [`is_hum`]).
const BACKCHANNELS_EN: &[&str] = &[
    "uh-huh", "uh", "huh", "uhhuh", "mhm", "mm", "mmhm", "mm-hmm", "hmm", "hm", "um", "ok", "okay",
    "right", "yeah", "yep", "yup", "sure", "alright", "i", "see", "got", "it", "cool", "aha", "ah",
    "oh",
];

/// Utterances that are backchannels on their own, whatever their words ("i see", "got it").
const BACKCHANNEL_PHRASES_EN: &[&str] = &["i see", "got it", "i got it"];

/// English words that carry no request of their own: conjunctions, pronouns, auxiliaries and
/// thanks. Around an acknowledgement they leave it one ("and mhm", "okay, thank you", "so
/// yeah"); whisper also makes them of the bot's faint residual echo in front of the caller's
/// word ("we're got it", "okay, can we're sure"). Negations, verbs and nouns are not among
/// them: "we're not sure" and "yeah I want to" are turns.
const FILLERS_EN: &[&str] = &[
    "and", "so", "but", "then", "well", "oh", "the", "a", "you", "we", "we're", "they", "it's",
    "that's", "can", "thank", "thanks",
];

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

/// What callers say over a talking bot, for the recognizer's phrase list while a barge-in is
/// judged: backchannels and stop words, so that whisper spells one as one ("mhm", not "and
/// then them"). Written in words PocketSphinx's dictionary has ("uh huh", "mhm"), so the same
/// list compiles as a Sphinx grammar.
pub fn said_over_the_bot(language: Language) -> &'static [&'static str] {
    match language {
        Language::Zh => &["嗯", "对", "好的", "等一下", "不是"],
        _ => &[
            "uh huh", "mhm", "okay", "right", "yeah", "sure", "I see", "got it", "stop", "wait",
        ],
    }
}

/// The most words (English) or characters (Mandarin) an unclear utterance over the bot has.
const UNCLEAR_MOST_WORDS: usize = 2;
const UNCLEAR_MOST_CHARS_ZH: usize = 4;
/// The letters an English word shares with an expected one from the start, when both have
/// this many or more, to count as naming it ("billing", "bill").
const SAME_START: usize = 4;

/// English words that say nothing about what the caller wants: they do not make an utterance
/// match the phrases the bot waits for.
const FUNCTION_WORDS_EN: &[&str] = &[
    "a", "an", "the", "i", "i'm", "im", "me", "my", "you", "your", "it", "it's", "is", "are", "of",
    "to", "and", "or", "for", "on", "in", "at", "with", "please", "can", "could", "would", "want",
    "like", "need", "about", "do", "this", "that", "what", "how", "be", "have", "get", "so",
];

/// What the caller said over the bot: the words and the recognizer's confidence in them, and
/// what the bot was saying when it was cut (the sentences around the cut; empty when unknown).
#[derive(Debug, Clone, Copy)]
pub struct OverTheBot<'a> {
    pub text: &'a str,
    pub confidence: Option<f32>,
    pub bot: &'a str,
}

/// Whether what the caller said over the bot, while it waits for `expect`, was no real
/// interruption, and why; `None` for a real turn. Words heard with less confidence than
/// `unclear_below` may be unclear (see the module docs).
pub fn judge(
    said: OverTheBot<'_>,
    expect: Option<&Grammar>,
    unclear_below: f32,
    language: Language,
) -> Option<ResumeReason> {
    let OverTheBot {
        text,
        confidence,
        bot,
    } = said;
    if let Some(reason) = false_interruption(text, language) {
        return Some(reason);
    }
    if language != Language::Zh {
        let caller = without_bot_words(text, bot, expect);
        if let Some(reason) = caller.and_then(|c| false_interruption(&c, language)) {
            return Some(reason);
        }
    }
    let unclear = confidence.is_some_and(|c| c < unclear_below);
    let Some(Grammar::Phrases(phrases)) = expect.filter(|_| unclear) else {
        return None;
    };
    let plain = match language {
        Language::Zh => unclear_zh(text, phrases),
        _ => unclear_en(text, phrases),
    };
    plain.then_some(ResumeReason::Unclear)
}

/// The English words of `text` less those of `bot` (the bot's own words, brought back by the
/// echo), keeping stop words and the words of the phrases in `expect`. `None` when that takes
/// nothing out, or everything.
fn without_bot_words(text: &str, bot: &str, expect: Option<&Grammar>) -> Option<String> {
    let bot = en_words(bot);
    if bot.is_empty() {
        return None;
    }
    let expected: Vec<String> = match expect {
        Some(Grammar::Phrases(phrases)) => phrases.iter().flat_map(|p| en_words(p)).collect(),
        _ => Vec::new(),
    };
    let words = en_words(text);
    let kept: Vec<&String> = words
        .iter()
        .filter(|w| !bot.contains(w) || STOP_WORDS_EN.contains(&w.as_str()) || expected.contains(w))
        .collect();
    (!kept.is_empty() && kept.len() < words.len()).then(|| {
        kept.iter()
            .map(|w| w.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// A few English words with no stop word, none of whose content words is in `phrases`.
fn unclear_en(text: &str, phrases: &[String]) -> bool {
    let words = en_words(text);
    if words.len() > UNCLEAR_MOST_WORDS || words.iter().any(|w| STOP_WORDS_EN.contains(&w.as_str()))
    {
        return false;
    }
    let expected: Vec<String> = phrases.iter().flat_map(|p| en_words(p)).collect();
    let names = |word: &str, expected: &str| {
        word == expected
            || (word.len() >= SAME_START
                && expected.len() >= SAME_START
                && word.as_bytes()[..SAME_START] == expected.as_bytes()[..SAME_START])
    };
    !words
        .iter()
        .filter(|w| !FUNCTION_WORDS_EN.contains(&w.as_str()))
        .any(|w| expected.iter().any(|e| names(w, e)))
}

/// A few Mandarin characters with no stop word that share no two characters in a row with
/// `phrases` (nor are one of them).
fn unclear_zh(text: &str, phrases: &[String]) -> bool {
    let heard = zh_chars(text);
    if heard.chars().count() > UNCLEAR_MOST_CHARS_ZH
        || STOP_WORDS_ZH.iter().any(|w| heard.contains(w))
    {
        return false;
    }
    let chars: Vec<char> = heard.chars().collect();
    !phrases.iter().map(|p| zh_chars(p)).any(|phrase| {
        phrase == heard
            || chars
                .windows(2)
                .any(|pair| phrase.contains(&pair.iter().collect::<String>()))
    })
}

/// Whether what the caller said over the bot was no real interruption by its words alone, and
/// why; `None` for a real turn.
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

/// The words of an English text: lower case, without punctuation or sound annotations.
fn en_words(text: &str) -> Vec<String> {
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
    cleaned
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '-' || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The characters of a Mandarin text that are words: no punctuation, spaces, digits or sound
/// annotations.
fn zh_chars(text: &str) -> String {
    without_annotations(text)
        .chars()
        .filter(|c| c.is_alphanumeric() && !c.is_ascii_digit())
        .collect()
}

fn false_interruption_en(text: &str) -> Option<ResumeReason> {
    let words = en_words(text);
    // "all right" is one word however it is spelt ("thank you, all right").
    let mut joined: Vec<&str> = Vec::with_capacity(words.len());
    for w in &words {
        match (joined.last(), w.as_str()) {
            (Some(&"all"), "right") => {
                joined.pop();
                joined.push("alright");
            }
            (_, w) => joined.push(w),
        }
    }
    let words = joined;
    if words.is_empty() {
        return Some(ResumeReason::NoWords);
    }
    if words.iter().any(|w| STOP_WORDS_EN.contains(w)) {
        return None;
    }
    let phrase = words.join(" ");
    let acknowledges = |w: &&str| BACKCHANNELS_EN.contains(w) || is_hum(w);
    if BACKCHANNEL_PHRASES_EN.contains(&phrase.as_str())
        || (words.iter().any(acknowledges)
            && words
                .iter()
                .all(|w| acknowledges(w) || FILLERS_EN.contains(w)))
    {
        return Some(ResumeReason::Backchannel);
    }
    None
}

/// A hum however whisper spells it ("mmm", "m", "mm-m-m-m", "hmm-mm"): only m's and h's,
/// with an m.
fn is_hum(word: &str) -> bool {
    word.contains('m') && word.chars().all(|c| matches!(c, 'm' | 'h' | '-'))
}

fn false_interruption_zh(text: &str) -> Option<ResumeReason> {
    let cleaned = zh_chars(text);
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
            "Mm-m-m-m.",
            "mmm, m",
            "Hmm-mm",
            "and mhm,",
            "Okay, thank you.",
            "So yeah.",
            "we're got it,",
            "Okay, can we're sure?",
            "Thank you, all right.",
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
    fn unclear_words_resume_only_when_they_name_nothing_the_bot_waits_for() {
        let menu = Grammar::Phrases(
            ["bill", "i want to pay my bill", "talk to an agent", "yes"]
                .map(String::from)
                .to_vec(),
        );
        let zh = Grammar::Phrases(["查询订单", "退货", "转人工"].map(String::from).to_vec());
        let judged = |text: &str, confidence: Option<f32>, expect: Option<&Grammar>| {
            let language = if text.is_ascii() {
                Language::En
            } else {
                Language::Zh
            };
            judge(
                OverTheBot {
                    text,
                    confidence,
                    bot: "",
                },
                expect,
                0.4,
                language,
            )
        };
        let unsure = Some(0.3);
        for text in ["I'm handsome.", "Bright.", "Solar sword", "It's fine."] {
            assert_eq!(
                judged(text, unsure, Some(&menu)),
                Some(ResumeReason::Unclear),
                "{text}"
            );
        }
        for text in [
            "Billing.",
            "My bill.",
            "Yes.",
            "An agent",
            "No.",
            "Wait.",
            "three words here",
        ] {
            assert_eq!(judged(text, unsure, Some(&menu)), None, "{text}");
        }
        // Surer words, or no phrases to weigh them against: the caller meant them.
        assert_eq!(judged("Bright.", Some(0.5), Some(&menu)), None);
        assert_eq!(judged("Bright.", None, Some(&menu)), None);
        assert_eq!(judged("Bright.", unsure, None), None);
        // Off.
        assert_eq!(
            judge(
                OverTheBot {
                    text: "Bright.",
                    confidence: unsure,
                    bot: "",
                },
                Some(&menu),
                0.0,
                Language::En
            ),
            None
        );
        // Backchannels need no confidence at all.
        assert_eq!(
            judged("Uh-huh.", Some(0.9), None),
            Some(ResumeReason::Backchannel)
        );
        assert_eq!(
            judged("很难。", unsure, Some(&zh)),
            Some(ResumeReason::Unclear)
        );
        for text in ["订单", "人工", "等一下", "我想退货可以吗"] {
            assert_eq!(judged(text, unsure, Some(&zh)), None, "{text}");
        }
    }

    /// The bot's own words, brought back by the echo in front of a backchannel, do not make it
    /// a turn; a stop word, an expected answer, or only the bot's words still interrupt.
    #[test]
    fn the_bots_own_words_in_front_of_a_backchannel_are_taken_out() {
        let menu = Grammar::Phrases(["billing", "talk to an agent"].map(String::from).to_vec());
        let bot = "Okay, and we're glad you called. Can you tell me about your billing question?";
        let judged = |text: &str| {
            judge(
                OverTheBot {
                    text,
                    confidence: Some(0.6),
                    bot,
                },
                Some(&menu),
                0.0,
                Language::En,
            )
        };
        for text in ["Glad you got it.", "Called, yeah.", "Question? Right."] {
            assert_eq!(judged(text), Some(ResumeReason::Backchannel), "{text}");
        }
        for text in [
            "We're, wait.",
            "Okay, billing.",
            "Can you tell me",
            "Talk to an agent.",
            "We're not sure.",
        ] {
            assert_eq!(judged(text), None, "{text}");
        }
        // Without the bot's words, the echo's words make it a turn.
        assert_eq!(
            judge(
                OverTheBot {
                    text: "Glad you got it.",
                    confidence: Some(0.6),
                    bot: "",
                },
                Some(&menu),
                0.0,
                Language::En,
            ),
            None
        );
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
            "We're not sure.",
            "yeah I want to",
            "and anthem,",
            "Can you?",
            "Thank you, goodbye.",
        ] {
            assert_eq!(false_interruption(text, Language::En), None, "{text}");
        }
        for text in ["等一下", "不是", "好的等等", "我要转人工"] {
            assert_eq!(false_interruption(text, Language::Zh), None, "{text}");
        }
    }
}
