//! Slot values from caller words or keys: digits, numbers, yes/no, dates, times, phone
//! numbers, order and account ids, free text. English and Chinese.
//!
//! Every parser takes a transcript and returns the value in one canonical spelling (digits as
//! ASCII, yes/no as `yes`/`no`, dates as `YYYY-MM-DD`, `MM-DD` or a relative word, times as
//! `HH:MM`) or a [`SlotReject`] saying why not. Parsers are pure functions: no clock, no state.
//! Keyed digits (DTMF) are gathered by the dialogue and checked with [`SlotKind::validate`].
//! A broken rule is a [`SlotProblem`], which the dialogue words in the call's language
//! ([`SlotProblem::describe`]) for its `${slot_problem}` prompt.

use serde::Deserialize;

use super::text::{self, Segment};
use crate::language::Language;

/// What kind of value a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotType {
    /// A string of digits ("one two three", "一二三", or keys).
    Digits,
    /// A whole number ("three hundred fifty", "三百五十").
    Number,
    /// Yes or no.
    YesNo,
    /// A calendar date or a relative day.
    Date,
    /// A time of day.
    Time,
    /// A telephone number.
    Phone,
    /// An order or account id: digits, checked by length and checksum.
    Id,
    /// Whatever the caller said.
    Text,
}

/// A checksum rule for ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Checksum {
    /// The Luhn mod-10 check digit (the last digit), as on card and many account numbers.
    Luhn,
}

/// A slot's type with its constraints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotKind {
    pub slot_type: SlotType,
    /// Exact digit count, if fixed.
    pub length: Option<usize>,
    /// Digit-count bounds (inclusive).
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub checksum: Option<Checksum>,
}

/// Why no value was taken from the caller's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotReject {
    /// Nothing of the right kind was heard.
    #[error("no value heard")]
    NotFound,
    /// A value was heard but it breaks a rule (length, checksum).
    #[error("{0}")]
    Invalid(SlotProblem),
}

/// The rule a heard value breaks. [`Display`](std::fmt::Display) is the English wording (for
/// logs); [`SlotProblem::describe`] words it for the caller in the call's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlotProblem {
    /// Too few or too many digits: `heard`, where `min..=max` was expected (`max` is
    /// `usize::MAX` when there is no upper bound).
    #[error("{}", self.describe(Language::En))]
    Length {
        heard: usize,
        min: usize,
        max: usize,
    },
    /// The check digit (the last one) does not match the others.
    #[error("{}", self.describe(Language::En))]
    CheckDigit,
}

impl SlotProblem {
    /// The problem in words for the caller, in `language`, to fit the flows' built-in
    /// "that doesn't look right: ${slot_problem}." prompt.
    pub fn describe(&self, language: Language) -> String {
        match (*self, language) {
            (Self::Length { heard, min, max }, Language::En) => {
                let expected = if min == max {
                    format!("{min} digits")
                } else if max == usize::MAX {
                    format!("at least {min} digits")
                } else {
                    format!("{min} to {max} digits")
                };
                format!("heard {heard} digits, expected {expected}")
            }
            (Self::Length { heard, min, max }, Language::Zh) => {
                let expected = if min == max {
                    format!("应该是{min}位")
                } else if max == usize::MAX {
                    format!("至少应该是{min}位")
                } else {
                    format!("应该是{min}到{max}位")
                };
                format!("听到{heard}位数字，{expected}")
            }
            (Self::CheckDigit, Language::En) => "check digit does not match".to_string(),
            (Self::CheckDigit, Language::Zh) => "校验位不匹配".to_string(),
        }
    }
}

impl SlotKind {
    /// A kind with no constraints.
    pub fn plain(slot_type: SlotType) -> Self {
        Self {
            slot_type,
            length: None,
            min_length: None,
            max_length: None,
            checksum: None,
        }
    }

    /// Takes a value from caller words.
    pub fn parse(&self, words: &str) -> Result<String, SlotReject> {
        let value = match self.slot_type {
            SlotType::Digits | SlotType::Id | SlotType::Phone => {
                spoken_digits(words).ok_or(SlotReject::NotFound)?
            }
            SlotType::Number => number(words).ok_or(SlotReject::NotFound)?.to_string(),
            SlotType::YesNo => yes_no(words).ok_or(SlotReject::NotFound)?.to_string(),
            SlotType::Date => date(words).ok_or(SlotReject::NotFound)?,
            SlotType::Time => time(words).ok_or(SlotReject::NotFound)?,
            SlotType::Text => {
                let t = words.trim();
                if t.is_empty() {
                    return Err(SlotReject::NotFound);
                }
                t.to_string()
            }
        };
        self.validate(&value)
    }

    /// Checks a value (spoken or keyed) against the kind's rules; returns it canonical.
    pub fn validate(&self, value: &str) -> Result<String, SlotReject> {
        if !matches!(
            self.slot_type,
            SlotType::Digits | SlotType::Id | SlotType::Phone
        ) {
            return Ok(value.to_string());
        }
        if value.is_empty() || !value.chars().all(|c| c.is_ascii_digit()) {
            return Err(SlotReject::NotFound);
        }
        let n = value.len();
        let (min, max) = match (self.length, self.slot_type) {
            (Some(l), _) => (l, l),
            (None, SlotType::Phone) => {
                (self.min_length.unwrap_or(7), self.max_length.unwrap_or(15))
            }
            _ => (
                self.min_length.unwrap_or(1),
                self.max_length.unwrap_or(usize::MAX),
            ),
        };
        if n < min || n > max {
            return Err(SlotReject::Invalid(SlotProblem::Length {
                heard: n,
                min,
                max,
            }));
        }
        if self.checksum == Some(Checksum::Luhn) && !luhn_valid(value) {
            return Err(SlotReject::Invalid(SlotProblem::CheckDigit));
        }
        Ok(value.to_string())
    }
}

/// True when the digits pass the Luhn check (the last digit is the check digit).
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = c.to_digit(10) else {
            return false;
        };
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum % 10 == 0
}

/// Spells a digit string for speech: "4712" becomes "4 7 1 2".
pub fn spell_digits(value: &str) -> String {
    if value.chars().all(|c| c.is_ascii_digit()) && value.len() > 1 {
        value
            .chars()
            .map(String::from)
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        value.to_string()
    }
}

/// An English word's digit, and whether the word is also common as a non-digit ("to", "for").
fn en_digit(word: &str) -> Option<(char, bool)> {
    Some(match word {
        "zero" | "oh" | "o" => ('0', false),
        "one" | "won" => ('1', word == "won"),
        "two" => ('2', false),
        "to" | "too" => ('2', true),
        "three" | "tree" => ('3', false),
        "four" => ('4', false),
        "for" | "fore" => ('4', true),
        "five" => ('5', false),
        "six" => ('6', false),
        "seven" => ('7', false),
        "eight" => ('8', false),
        "ate" => ('8', true),
        "nine" => ('9', false),
        _ => return None,
    })
}

fn zh_digit(c: char) -> Option<char> {
    Some(match c {
        '零' | '〇' | '洞' => '0',
        '一' | '幺' | '壹' => '1',
        '二' | '两' | '贰' => '2',
        '三' | '叁' => '3',
        '四' | '肆' => '4',
        '五' | '伍' => '5',
        '六' | '陆' => '6',
        '七' | '柒' => '7',
        '八' | '捌' => '8',
        '九' | '玖' => '9',
        c if c.is_ascii_digit() => c,
        _ => return None,
    })
}

/// Digits spoken one by one (or written), in English or Chinese: "four seven one two",
/// "double five", "4 7 12", "四七一二". `None` when no digit was heard.
pub fn spoken_digits(words: &str) -> Option<String> {
    let normalized = text::normalize(words);
    // (digits, ambiguous) per token, in order.
    let mut tokens: Vec<Option<(String, bool)>> = Vec::new();
    let mut repeat = 1usize;
    for segment in text::segments(&normalized) {
        match segment {
            Segment::Word(w) => {
                if w == "double" {
                    repeat = 2;
                    continue;
                }
                if w == "triple" {
                    repeat = 3;
                    continue;
                }
                let token = if w.chars().all(|c| c.is_ascii_digit()) {
                    Some((w.to_string(), false))
                } else {
                    en_digit(w).map(|(d, amb)| (d.to_string(), amb))
                };
                tokens.push(token.map(|(d, amb)| (d.repeat(repeat), amb)));
                repeat = 1;
            }
            Segment::Han(run) => {
                for c in run.chars() {
                    tokens.push(zh_digit(c).map(|d| (d.to_string(), false)));
                }
            }
        }
    }
    let mut out = String::new();
    for (i, token) in tokens.iter().enumerate() {
        let Some((digits, ambiguous)) = token else {
            continue;
        };
        if *ambiguous {
            let neighbour_digit = |j: Option<usize>| {
                j.and_then(|j| tokens.get(j))
                    .is_some_and(|t| matches!(t, Some((_, false))))
            };
            if !neighbour_digit(i.checked_sub(1)) && !neighbour_digit(Some(i + 1)) {
                continue;
            }
        }
        out.push_str(digits);
    }
    (!out.is_empty()).then_some(out)
}

fn en_small(word: &str) -> Option<u64> {
    Some(match word {
        "zero" | "oh" => 0,
        "one" | "a" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        "twenty" => 20,
        "thirty" => 30,
        "forty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "seventy" => 70,
        "eighty" => 80,
        "ninety" => 90,
        _ => return None,
    })
}

/// A whole number in words or digits: "three hundred and fifty", "350", "三百五十", "两万".
pub fn number(words: &str) -> Option<u64> {
    let normalized = text::normalize(words);
    for segment in text::segments(&normalized) {
        if let Segment::Han(run) = segment {
            if let Some(n) = zh_number(run) {
                return Some(n);
            }
        }
    }
    let mut total = 0u64;
    let mut current = 0u64;
    let mut seen = false;
    for w in normalized.split(' ') {
        if let Ok(n) = w.parse::<u64>() {
            current = current
                .checked_mul(10u64.pow(w.len() as u32))?
                .checked_add(n)?;
            seen = true;
        } else if let Some(n) = en_small(w) {
            if w == "a" && seen {
                continue;
            }
            current = current.checked_add(n)?;
            seen |= w != "a";
        } else if w == "hundred" {
            current = current.max(1).checked_mul(100)?;
            seen = true;
        } else if w == "thousand" || w == "million" {
            let scale = if w == "thousand" { 1_000 } else { 1_000_000 };
            total = total.checked_add(current.max(1).checked_mul(scale)?)?;
            current = 0;
            seen = true;
        } else if w == "and" || !seen {
            continue;
        } else {
            break;
        }
    }
    seen.then_some(total + current)
}

/// A Chinese number: "三百五十", "一千零五", "十五", "两万三千", or plain digits "一二三".
pub fn zh_number(run: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut section = 0u64;
    let mut digit: Option<u64> = None;
    let mut seen = false;
    let mut plain = String::new();
    let mut has_unit = false;
    for c in run.chars() {
        if let Some(d) = zh_digit(c) {
            let d = d.to_digit(10).map(u64::from)?;
            plain.push(char::from(b'0' + d as u8));
            digit = Some(d);
            seen = true;
            continue;
        }
        let unit = match c {
            '十' | '拾' => 10,
            '百' | '佰' => 100,
            '千' | '仟' => 1_000,
            '万' => 10_000,
            '亿' => 100_000_000,
            _ => {
                if seen {
                    break;
                }
                continue;
            }
        };
        has_unit = true;
        seen = true;
        if unit >= 10_000 {
            section += digit.take().unwrap_or(0);
            total = (total + section.max(1)).checked_mul(unit)?;
            section = 0;
        } else {
            section += digit.take().unwrap_or(1) * unit;
        }
    }
    if !seen {
        return None;
    }
    if !has_unit {
        return plain.parse().ok();
    }
    Some(total + section + digit.unwrap_or(0))
}

/// Yes or no, in English or Chinese. Negation is checked first ("不是" is no, not yes).
pub fn yes_no(words: &str) -> Option<&'static str> {
    let normalized = text::normalize(words);
    if normalized.is_empty() {
        return None;
    }
    const ZH_NO: &[&str] = &[
        "不是", "不对", "不用", "不要", "没有", "不行", "错了", "不", "否",
    ];
    const ZH_YES: &[&str] = &[
        "是的", "对的", "对", "是", "好的", "好", "没错", "可以", "行", "嗯", "确认", "正确",
        "还有",
    ];
    const EN_NO: &[&str] = &[
        "no",
        "nope",
        "nah",
        "not",
        "wrong",
        "incorrect",
        "negative",
        "dont",
        "isnt",
        "thats not",
    ];
    const EN_YES: &[&str] = &[
        "yes",
        "yeah",
        "yep",
        "yup",
        "sure",
        "correct",
        "right",
        "ok",
        "okay",
        "affirmative",
        "absolutely",
        "definitely",
        "please do",
        "that is right",
        "thats right",
        "exactly",
        "indeed",
        "true",
    ];
    let padded = format!(" {normalized} ");
    let has_word = |list: &[&str]| list.iter().any(|w| padded.contains(&format!(" {w} ")));
    let han: String = normalized.chars().filter(|c| text::is_han(*c)).collect();
    if ZH_NO.iter().any(|w| han.contains(w)) || has_word(EN_NO) {
        return Some("no");
    }
    if ZH_YES.iter().any(|w| han.contains(w)) || has_word(EN_YES) {
        return Some("yes");
    }
    None
}

const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAYS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn ordinal_day(w: &str) -> Option<u64> {
    let stripped = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if !stripped.is_empty() && stripped.len() <= 2 {
        return stripped.parse().ok().filter(|d| (1..=31).contains(d));
    }
    let ordinals = [
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "sixth",
        "seventh",
        "eighth",
        "ninth",
        "tenth",
        "eleventh",
        "twelfth",
        "thirteenth",
        "fourteenth",
        "fifteenth",
        "sixteenth",
        "seventeenth",
        "eighteenth",
        "nineteenth",
        "twentieth",
    ];
    ordinals.iter().position(|o| *o == w).map(|i| i as u64 + 1)
}

/// A date: ISO "2025-03-05", "march 5th", "the fifth of march", "today", "tomorrow", a
/// weekday, "3月5日", "三月五号", "今天", "明天", "后天". Returns `YYYY-MM-DD`, `MM-DD` or the
/// relative word in English (`today`, `tomorrow`, `day_after_tomorrow`, `monday`...).
pub fn date(words: &str) -> Option<String> {
    let raw = words.trim();
    // ISO dates survive normalization badly (the dashes become spaces), so look first.
    let parts: Vec<&str> = raw.split(['-', '/']).collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    {
        let (y, m, d) = (
            parts[0].parse::<u32>().ok()?,
            parts[1].parse::<u32>().ok()?,
            parts[2].parse::<u32>().ok()?,
        );
        if (1..=12).contains(&m) && (1..=31).contains(&d) {
            return Some(format!("{y:04}-{m:02}-{d:02}"));
        }
    }
    let normalized = text::normalize(words);
    for (word, value) in [
        ("今天", "today"),
        ("明天", "tomorrow"),
        ("后天", "day_after_tomorrow"),
        ("昨天", "yesterday"),
    ] {
        if normalized.contains(word) {
            return Some(value.to_string());
        }
    }
    if let Some(pos) = normalized.find('月') {
        let month_part: String = normalized[..pos]
            .chars()
            .rev()
            .take_while(|c| zh_digit(*c).is_some() || *c == '十')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let rest = &normalized[pos + '月'.len_utf8()..];
        let day_part: String = rest
            .chars()
            .take_while(|c| zh_digit(*c).is_some() || *c == '十')
            .collect();
        if let (Some(m), Some(d)) = (zh_number(&month_part), zh_number(&day_part)) {
            if (1..=12).contains(&m) && (1..=31).contains(&d) {
                return Some(format!("{m:02}-{d:02}"));
            }
        }
    }
    let words: Vec<&str> = normalized.split(' ').collect();
    for w in &words {
        match *w {
            "today" => return Some("today".into()),
            "tomorrow" => return Some("tomorrow".into()),
            "yesterday" => return Some("yesterday".into()),
            _ => {}
        }
        if WEEKDAYS.contains(w) {
            return Some((*w).to_string());
        }
    }
    if let Some(mi) = words.iter().position(|w| MONTHS.contains(w)) {
        let month = MONTHS.iter().position(|m| *m == words[mi]).map(|i| i + 1)?;
        let after = words.get(mi + 1).and_then(|w| ordinal_day(w));
        let before = words[..mi].iter().rev().find_map(|w| ordinal_day(w));
        if let Some(day) = after.or(before) {
            return Some(format!("{month:02}-{day:02}"));
        }
    }
    None
}

/// A time of day: "15:30", "3 pm", "three thirty pm", "half past three", "noon", "下午三点",
/// "三点半", "上午十点十五分". Returns `HH:MM` (24-hour).
pub fn time(words: &str) -> Option<String> {
    let raw = words.trim().to_lowercase();
    if let Some((h, m)) = raw.split_once(':') {
        let h: String = h
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let m: String = m.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let (Ok(h), Ok(mm)) = (h.parse::<u32>(), m.parse::<u32>()) {
            let pm = raw.contains("pm") || raw.contains("p m");
            let h = if pm && h < 12 { h + 12 } else { h };
            if h < 24 && mm < 60 {
                return Some(format!("{h:02}:{mm:02}"));
            }
        }
    }
    let normalized = text::normalize(words);
    if let Some(pos) = normalized.find('点') {
        let before: String = normalized[..pos]
            .chars()
            .rev()
            .take_while(|c| zh_digit(*c).is_some() || *c == '十')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let after = &normalized[pos + '点'.len_utf8()..];
        let mut h = zh_number(&before)? as u32;
        let minutes = if after.starts_with('半') {
            30
        } else {
            let m: String = after
                .chars()
                .take_while(|c| zh_digit(*c).is_some() || *c == '十')
                .collect();
            zh_number(&m).unwrap_or(0) as u32
        };
        let pm = ["下午", "晚上", "傍晚"]
            .iter()
            .any(|w| normalized.contains(w));
        if pm && h < 12 {
            h += 12;
        }
        if normalized.contains("中午") && h < 6 {
            h += 12;
        }
        if h < 24 && minutes < 60 {
            return Some(format!("{h:02}:{minutes:02}"));
        }
    }
    let ws: Vec<&str> = normalized.split(' ').collect();
    if ws.contains(&"noon") || ws.contains(&"midday") {
        return Some("12:00".into());
    }
    if ws.contains(&"midnight") {
        return Some("00:00".into());
    }
    let pm = ws
        .iter()
        .any(|w| matches!(*w, "pm" | "evening" | "afternoon" | "tonight"))
        || normalized.contains("p m");
    let am = ws.iter().any(|w| matches!(*w, "am" | "morning")) || normalized.contains("a m");
    let value = |w: &str| {
        w.parse::<u32>()
            .ok()
            .or_else(|| en_small(w).map(|n| n as u32))
    };
    let (mut h, mut m) = (None, 0u32);
    if let Some(i) = ws.iter().position(|w| *w == "half") {
        if ws.get(i + 1) == Some(&"past") {
            h = ws.get(i + 2).and_then(|w| value(w));
            m = 30;
        }
    } else if let Some(i) = ws.iter().position(|w| *w == "quarter") {
        let hour = ws.get(i + 2).and_then(|w| value(w));
        match ws.get(i + 1) {
            Some(&"past") => {
                h = hour;
                m = 15;
            }
            Some(&"to") => {
                h = hour.map(|x| if x == 1 { 12 } else { x - 1 });
                m = 45;
            }
            _ => {}
        }
    } else {
        let nums: Vec<u32> = ws.iter().filter_map(|w| value(w)).collect();
        if let Some(first) = nums.first() {
            if (1..=24).contains(first)
                && (am || pm || ws.contains(&"oclock") || ws.contains(&"at") || nums.len() > 1)
            {
                h = Some(*first);
                m = nums[1..].iter().sum();
            }
        }
    }
    let mut h = h?;
    if pm && h < 12 {
        h += 12;
    }
    if am && h == 12 {
        h = 0;
    }
    (h < 24 && m < 60).then(|| format!("{h:02}:{m:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_in_both_languages() {
        assert_eq!(spoken_digits("four seven one two").as_deref(), Some("4712"));
        assert_eq!(spoken_digits("it's 4 7 double 1").as_deref(), Some("4711"));
        assert_eq!(spoken_digits("一二三").as_deref(), Some("123"));
        assert_eq!(spoken_digits("幺三八零").as_deref(), Some("1380"));
        assert_eq!(spoken_digits("I want to check"), None);
        assert_eq!(spoken_digits("one two for five").as_deref(), Some("1245"));
    }

    #[test]
    fn numbers() {
        assert_eq!(number("three hundred and fifty"), Some(350));
        assert_eq!(number("三百五十"), Some(350));
        assert_eq!(number("一千零五"), Some(1005));
        assert_eq!(number("十五"), Some(15));
        assert_eq!(number("两万三千"), Some(23_000));
        assert_eq!(number("twenty five thousand"), Some(25_000));
        assert_eq!(number("hello"), None);
    }

    #[test]
    fn yes_and_no() {
        assert_eq!(yes_no("yes please"), Some("yes"));
        assert_eq!(yes_no("no that's wrong"), Some("no"));
        assert_eq!(yes_no("不是"), Some("no"));
        assert_eq!(yes_no("是的"), Some("yes"));
        assert_eq!(yes_no("对，没错"), Some("yes"));
        assert_eq!(yes_no("banana"), None);
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(date("march fifth").as_deref(), Some("03-05"));
        assert_eq!(date("the 5th of march").as_deref(), Some("03-05"));
        assert_eq!(date("2025-03-05").as_deref(), Some("2025-03-05"));
        assert_eq!(date("三月五号").as_deref(), Some("03-05"));
        assert_eq!(date("明天").as_deref(), Some("tomorrow"));
        assert_eq!(time("3 pm").as_deref(), Some("15:00"));
        assert_eq!(time("three thirty pm").as_deref(), Some("15:30"));
        assert_eq!(time("half past two").as_deref(), Some("02:30"));
        assert_eq!(time("下午三点半").as_deref(), Some("15:30"));
        assert_eq!(time("15:45").as_deref(), Some("15:45"));
    }

    #[test]
    fn ids_checked_by_length_and_luhn() {
        let kind = SlotKind {
            slot_type: SlotType::Id,
            length: Some(6),
            min_length: None,
            max_length: None,
            checksum: Some(Checksum::Luhn),
        };
        assert!(luhn_valid("79927398713"));
        assert_eq!(
            kind.parse("four seven one two three five").as_deref(),
            Ok("471235")
        );
        assert!(matches!(
            kind.parse("four seven one two three six"),
            Err(SlotReject::Invalid(_))
        ));
        assert!(matches!(
            kind.parse("four seven one"),
            Err(SlotReject::Invalid(_))
        ));
        assert_eq!(
            kind.parse("four seven one two three six"),
            Err(SlotReject::Invalid(SlotProblem::CheckDigit))
        );
        let phone = SlotKind::plain(SlotType::Phone);
        assert_eq!(
            phone.parse("five five five one two three four").as_deref(),
            Ok("5551234")
        );
    }

    #[test]
    fn every_problem_is_worded_in_the_call_language() {
        let problems = [
            SlotProblem::Length {
                heard: 3,
                min: 6,
                max: 6,
            },
            SlotProblem::Length {
                heard: 3,
                min: 7,
                max: usize::MAX,
            },
            SlotProblem::Length {
                heard: 3,
                min: 7,
                max: 15,
            },
            SlotProblem::CheckDigit,
        ];
        let zh: Vec<String> = problems.iter().map(|p| p.describe(Language::Zh)).collect();
        assert_eq!(
            zh,
            [
                "听到3位数字，应该是6位",
                "听到3位数字，至少应该是7位",
                "听到3位数字，应该是7到15位",
                "校验位不匹配",
            ]
        );
        for text in &zh {
            assert!(
                !text.chars().any(|c| c.is_ascii_alphabetic()),
                "no English in a Chinese problem: {text}"
            );
        }
        let en: Vec<String> = problems.iter().map(|p| p.describe(Language::En)).collect();
        assert_eq!(
            en,
            [
                "heard 3 digits, expected 6 digits",
                "heard 3 digits, expected at least 7 digits",
                "heard 3 digits, expected 7 to 15 digits",
                "check digit does not match",
            ]
        );
        assert_eq!(SlotProblem::CheckDigit.to_string(), en[3]);
    }
}
