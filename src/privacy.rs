//! Privacy: what a call's stored record must not keep.
//!
//! Owns [`Redactor`], the sans-IO finder and masker of personal data in text, and its settings
//! ([`PrivacyConfig`], the `[privacy]` section). Built in, for English and Chinese:
//! - digit strings, in any mix of ASCII or full-width digits, Chinese numerals (`一三八`, `幺`,
//!   `〇`) and English digit words (`four one five`, `oh`), with spaces, dashes, dots, commas
//!   and brackets between them. A string of 7 digits or more is masked as
//!   - `[id]`: 18 characters that pass the Chinese national id's check digit (ISO 7064 MOD 11-2,
//!     last character a digit or `X`);
//!   - `[card]`: 13 to 19 digits that pass the Luhn check;
//!   - `[phone]`: 7 to 15 digits (with a leading `+` kept inside the mask);
//!   - `[number]`: any other string of 16 digits or more;
//!
//!   unless it is a date (`2026-12-06`, `06/12/2026`), which is left alone;
//! - email addresses, written (`a.b@example.com`) or spoken (`anna at example dot com`,
//!   `anna 艾特 163 点 com`): `[email]`;
//! - the configured patterns (`[[privacy.patterns]]`, regular expressions): `[NAME]`;
//! - the values of the slots a flow marks `sensitive`, wherever they appear once known
//!   ([`CallRedaction`]): `[sensitive]`.
//!
//! [`CallRedaction`] applies it to one call's events before they are stored: the text of what
//! the caller said and what the bot said or was heard saying, knowledge gaps, and slot values.
//! Live subscribers (the caller's own page, an agent) get the events as they are; only the
//! record is redacted. The caller id in `call_start` is kept: it is what a callback needs.
//!
//! With `keep_raw`, the record also keeps every event unmasked in `raw.jsonl.enc`, each line
//! sealed with [`RawKey`] (AES-256-GCM, the key from `HOTLINE_RAW_KEY`, a fresh nonce per
//! line); `hotline records open DIR` reads it back with the same key.
//!
//! Invariant: redaction only ever replaces a span with its `[label]`; the text around it is
//! kept byte for byte. The raw text is never on disk unsealed.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;

use crate::session::{CallEvent, EventKind};

/// A `[privacy]` setting that cannot be used, or a raw record that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("patterns[{index}] ({name}): {message}")]
    Pattern {
        index: usize,
        name: String,
        message: String,
    },
    #[error("privacy.keep_raw needs {RAW_KEY_ENV}: 64 hex digits (a 256-bit key): {message}")]
    RawKey { message: String },
    #[error(
        "raw record line {line}: cannot decrypt it (a different {RAW_KEY_ENV}, or a damaged file)"
    )]
    RawLine { line: usize },
}

/// The environment variable that holds the raw record key.
pub const RAW_KEY_ENV: &str = "HOTLINE_RAW_KEY";

impl PrivacyError {
    /// The config key at fault, under `privacy.`.
    pub fn key(&self) -> String {
        match self {
            PrivacyError::Pattern { index, .. } => format!("patterns[{index}]"),
            PrivacyError::RawKey { .. } | PrivacyError::RawLine { .. } => "keep_raw".into(),
        }
    }
}

/// The `[privacy]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Mask personal data in stored records (events and transcripts). On by default.
    pub redact: bool,
    /// More things to mask: each a `name` (the mask reads `[name]`) and a `regex`.
    pub patterns: Vec<PatternConfig>,
    /// Also keep every event unmasked in `raw.jsonl.enc`, encrypted (AES-256-GCM) with the
    /// key in `HOTLINE_RAW_KEY`; `hotline records open DIR` reads it back with that key.
    pub keep_raw: bool,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            redact: true,
            patterns: Vec::new(),
            keep_raw: false,
        }
    }
}

/// One configured pattern (`[[privacy.patterns]]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatternConfig {
    pub name: String,
    pub regex: String,
}

impl PrivacyConfig {
    /// Checks that every pattern has a plain name and compiles.
    pub fn validate(&self) -> Result<(), PrivacyError> {
        Redactor::new(self).map(|_| ())
    }
}

/// One piece of personal data found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What it is: `card`, `id`, `phone`, `number`, `email`, `sensitive` or a pattern's name.
    pub label: String,
    /// Where it is, in bytes.
    pub span: Range<usize>,
}

/// Finds and masks personal data in text. See the module docs.
#[derive(Debug, Clone)]
pub struct Redactor {
    enabled: bool,
    email: Regex,
    patterns: Vec<(String, Regex)>,
}

/// Written and spoken email addresses (English `at`/`dot`, Chinese `艾特`/`点`), in the group
/// `m` (written) or `s` (spoken). The address must not run on from a name-like character
/// before it or after it; Chinese text may touch it on either side.
const EMAIL: &str = r"(?i)(?:^|[^a-z0-9._%+\-])(?P<m>[a-z0-9][a-z0-9._%+\-]*@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,})|(?:^|[^a-z0-9._\-])(?P<s>[a-z0-9][a-z0-9._\-]*(?:\s+dot\s+[a-z0-9_\-]+)*(?:\s+at\s+|\s*艾特\s*)[a-z0-9\-]+(?:(?:\s+dot\s+|\s*点\s*)[a-z0-9\-]+)*(?:\s+dot\s+|\s*点\s*)(?:com|net|org|edu|gov|cn|io|co|uk|de|fr|jp))(?:$|[^a-z0-9])";

impl Redactor {
    /// A redactor with the built-in detectors and `config`'s patterns (masks nothing when
    /// `redact` is off).
    pub fn new(config: &PrivacyConfig) -> Result<Self, PrivacyError> {
        let mut patterns = Vec::new();
        for (index, pattern) in config.patterns.iter().enumerate() {
            let fail = |message: String| PrivacyError::Pattern {
                index,
                name: pattern.name.clone(),
                message,
            };
            if pattern.name.is_empty()
                || !pattern
                    .name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            {
                return Err(fail("`name`: expected letters, digits, `_` and `-`".into()));
            }
            let regex = Regex::new(&pattern.regex).map_err(|e| fail(format!("`regex`: {e}")))?;
            patterns.push((pattern.name.clone(), regex));
        }
        Ok(Self {
            enabled: config.redact,
            email: Regex::new(EMAIL).map_err(|e| PrivacyError::Pattern {
                index: 0,
                name: "built-in email".into(),
                message: e.to_string(),
            })?,
            patterns,
        })
    }

    /// Whether it masks anything at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Everything personal in `text`, in order, without overlaps (the earlier, then the longer
    /// finding wins). `known` are values to mask wherever they appear (`sensitive` slots).
    pub fn find(&self, text: &str, known: &[String]) -> Vec<Finding> {
        if !self.enabled {
            return Vec::new();
        }
        let mut found = digit_strings(text);
        found.extend(
            self.email
                .captures_iter(text)
                .filter_map(|c| c.name("m").or_else(|| c.name("s")))
                .map(|m| Finding {
                    label: "email".into(),
                    span: m.range(),
                }),
        );
        for (name, regex) in &self.patterns {
            found.extend(
                regex
                    .find_iter(text)
                    .filter(|m| !m.is_empty())
                    .map(|m| Finding {
                        label: name.clone(),
                        span: m.range(),
                    }),
            );
        }
        for value in known.iter().filter(|v| v.trim().chars().count() >= 2) {
            found.extend(text.match_indices(value.as_str()).map(|(at, v)| Finding {
                label: "sensitive".into(),
                span: at..at + v.len(),
            }));
        }
        found.sort_by(|a, b| {
            a.span
                .start
                .cmp(&b.span.start)
                .then(b.span.end.cmp(&a.span.end))
        });
        let mut kept: Vec<Finding> = Vec::with_capacity(found.len());
        for finding in found {
            match kept.last_mut() {
                Some(last) if finding.span.start < last.span.end => {
                    last.span.end = last.span.end.max(finding.span.end);
                }
                _ => kept.push(finding),
            }
        }
        kept
    }

    /// `text` with everything personal replaced by its `[label]`.
    pub fn redact<'a>(&self, text: &'a str, known: &[String]) -> Cow<'a, str> {
        let found = self.find(text, known);
        if found.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for finding in found {
            out.push_str(&text[at..finding.span.start]);
            out.push('[');
            out.push_str(&finding.label);
            out.push(']');
            at = finding.span.end;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }
}

/// One call's redaction: the shared [`Redactor`] and the `sensitive` slot values this call has
/// met so far, masked from then on.
#[derive(Debug, Clone)]
pub struct CallRedaction {
    redactor: Arc<Redactor>,
    known: Vec<String>,
}

impl CallRedaction {
    pub fn new(redactor: Arc<Redactor>) -> Self {
        Self {
            redactor,
            known: Vec::new(),
        }
    }

    /// Masks `value` wherever it comes up from now on.
    fn learn(&mut self, value: String) {
        if !value.trim().is_empty() && !self.known.contains(&value) {
            self.known.push(value);
        }
    }

    /// The event as the record keeps it.
    pub fn event(&mut self, event: &CallEvent) -> CallEvent {
        let mut stored = event.clone();
        if !self.redactor.enabled() {
            return stored;
        }
        let redactor = &self.redactor;
        let known = &self.known;
        let mask = |text: &mut String| {
            if let Cow::Owned(masked) = redactor.redact(text, known) {
                *text = masked;
            }
        };
        match &mut stored.kind {
            EventKind::Transcript {
                text,
                sensitive: true,
                is_final,
                ..
            } => {
                let said = std::mem::replace(text, "[sensitive]".into());
                // A final answer is worth looking for again; a partial's first words ("four")
                // would mask ordinary words later.
                if *is_final {
                    self.learn(said);
                }
            }
            EventKind::Dtmf {
                digit,
                sensitive: true,
            } => *digit = "*".into(),
            EventKind::Transcript { text, .. }
            | EventKind::BotReply { text, .. }
            | EventKind::BotHeard { text, .. }
            | EventKind::AgentTranscript { text, .. }
            | EventKind::KnowledgeGap { text, .. } => mask(text),
            EventKind::Slot {
                value, sensitive, ..
            } => {
                if *sensitive {
                    let value = std::mem::replace(value, "[sensitive]".into());
                    self.learn(value);
                } else {
                    mask(value);
                }
            }
            _ => {}
        }
        stored
    }
}

/// The key that seals raw records (`privacy.keep_raw`): AES-256-GCM, each line under a fresh
/// random 96-bit nonce, written as base64 of nonce then ciphertext and tag.
pub struct RawKey {
    key: ring::aead::LessSafeKey,
    rng: ring::rand::SystemRandom,
}

impl std::fmt::Debug for RawKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawKey(..)")
    }
}

impl RawKey {
    /// The key from `HOTLINE_RAW_KEY`.
    pub fn from_env() -> Result<Self, PrivacyError> {
        let hex = std::env::var(RAW_KEY_ENV).map_err(|_| PrivacyError::RawKey {
            message: "not set".into(),
        })?;
        Self::from_hex(&hex)
    }

    /// A key from 64 hex digits.
    pub fn from_hex(hex: &str) -> Result<Self, PrivacyError> {
        let hex = hex.trim();
        let bad = |message: &str| PrivacyError::RawKey {
            message: message.into(),
        };
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad("expected 64 hex digits"));
        }
        let bytes = (0..32)
            .map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| bad("expected 64 hex digits"))?;
        let key = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &bytes)
            .map_err(|_| bad("not an AES-256 key"))?;
        Ok(Self {
            key: ring::aead::LessSafeKey::new(key),
            rng: ring::rand::SystemRandom::new(),
        })
    }

    /// One sealed line (no newline) holding `plain`.
    pub fn seal(&self, plain: &[u8]) -> Result<String, PrivacyError> {
        use base64::Engine as _;
        use ring::rand::SecureRandom;
        let mut nonce = [0u8; ring::aead::NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| PrivacyError::RawKey {
                message: "no randomness for a nonce".into(),
            })?;
        let mut sealed = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::empty(),
                &mut sealed,
            )
            .map_err(|_| PrivacyError::RawKey {
                message: "sealing failed".into(),
            })?;
        let mut line = nonce.to_vec();
        line.extend(sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(line))
    }

    /// What a sealed line holds; `number` (from 1) names the line in the error.
    pub fn open(&self, line: &str, number: usize) -> Result<Vec<u8>, PrivacyError> {
        use base64::Engine as _;
        let fail = || PrivacyError::RawLine { line: number };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line.trim())
            .map_err(|_| fail())?;
        if bytes.len() < ring::aead::NONCE_LEN {
            return Err(fail());
        }
        let (nonce, sealed) = bytes.split_at(ring::aead::NONCE_LEN);
        let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, ring::aead::Aad::empty(), &mut sealed)
            .map_err(|_| fail())?;
        Ok(plain.to_vec())
    }
}

/// A digit of a spoken or written number, and where it is.
struct Digit {
    value: u8,
    span: Range<usize>,
}

/// English digit words, as a recognizer writes spoken digits.
const DIGIT_WORDS: [(&str, u8); 11] = [
    ("zero", 0),
    ("oh", 0),
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
];

fn digit_char(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '０'..='９' => Some((c as u32 - '０' as u32) as u8),
        '零' | '〇' => Some(0),
        '一' | '幺' => Some(1),
        '二' => Some(2),
        '三' => Some(3),
        '四' => Some(4),
        '五' => Some(5),
        '六' => Some(6),
        '七' => Some(7),
        '八' => Some(8),
        '九' => Some(9),
        _ => None,
    }
}

/// What may stand between two digits of one number.
fn is_joiner(c: char) -> bool {
    matches!(
        c,
        ' ' | '-' | '.' | ',' | '(' | ')' | '/' | '，' | '、' | '－'
    )
}

/// Every digit string of 7 digits or more in `text`, classified (see the module docs).
fn digit_strings(text: &str) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut run: Vec<Digit> = Vec::new();
    // Bytes of joiners since the last digit (a run ends after more than three).
    let mut joined = 0usize;
    let mut separators: Vec<char> = Vec::new();
    let mut check_x: Option<Range<usize>> = None;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < text.len() {
        let c = text[i..].chars().next().unwrap_or(' ');
        let len = c.len_utf8();
        if let Some(value) = digit_char(c) {
            run.push(Digit {
                value,
                span: i..i + len,
            });
            joined = 0;
            i += len;
            continue;
        }
        if c.is_ascii_alphabetic() {
            // A whole English word: a digit word, or the end of the run (an `X` right after 17
            // digits may be an id's check character).
            let end = text[i..]
                .find(|ch: char| !ch.is_ascii_alphabetic())
                .map_or(text.len(), |e| i + e);
            let word = text[i..end].to_ascii_lowercase();
            let starts_word = i == 0 || !bytes[i - 1].is_ascii_alphabetic();
            if starts_word {
                if let Some((_, value)) = DIGIT_WORDS.iter().find(|(w, _)| *w == word) {
                    run.push(Digit {
                        value: *value,
                        span: i..end,
                    });
                    joined = 0;
                    i = end;
                    continue;
                }
                if word == "x" && joined == 0 && run.len() == 17 {
                    check_x = Some(i..end);
                }
            }
            close_run(text, &mut run, &separators, check_x.take(), &mut found);
            separators.clear();
            joined = 0;
            i = end;
            continue;
        }
        if is_joiner(c) && !run.is_empty() && joined < 3 {
            if c != ' ' {
                separators.push(c);
            }
            joined += 1;
            i += len;
            continue;
        }
        close_run(text, &mut run, &separators, None, &mut found);
        separators.clear();
        joined = 0;
        i += len;
    }
    close_run(text, &mut run, &separators, check_x, &mut found);
    found
}

/// Classifies a finished run of digits and clears it.
fn close_run(
    text: &str,
    run: &mut Vec<Digit>,
    separators: &[char],
    check_x: Option<Range<usize>>,
    found: &mut Vec<Finding>,
) {
    let digits: Vec<u8> = run.iter().map(|d| d.value).collect();
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return;
    };
    let mut span = first.span.start..last.span.end;
    // A leading `+` (country code) or `(` (area code) belongs to the number.
    let lead = text[..span.start].ends_with(['+', '(']);
    run.clear();
    if digits.len() + usize::from(check_x.is_some()) < 7 || is_date(text, &span, separators) {
        return;
    }
    let label = if let Some(x) = check_x.filter(|_| digits.len() == 17) {
        if national_id_ok(&digits, true) {
            span.end = x.end;
            "id"
        } else {
            "phone"
        }
    } else if digits.len() == 18 && national_id_ok(&digits, false) {
        "id"
    } else if (13..=19).contains(&digits.len()) && luhn_ok(&digits) {
        "card"
    } else if digits.len() <= 15 {
        "phone"
    } else {
        "number"
    };
    if lead && label == "phone" {
        span.start -= 1;
    }
    found.push(Finding {
        label: label.into(),
        span,
    });
}

/// `2026-12-06`, `06/12/2026`, `2026.12.06`: digit groups of 4-2-2 or 2-2-4 joined by one kind
/// of date separator.
fn is_date(text: &str, span: &Range<usize>, separators: &[char]) -> bool {
    let Some(&sep) = separators.first() else {
        return false;
    };
    if !matches!(sep, '-' | '/' | '.') || separators.iter().any(|&s| s != sep) {
        return false;
    }
    let groups: Vec<usize> = text[span.clone()]
        .split(sep)
        .map(|g| g.trim().chars().count())
        .collect();
    matches!(groups.as_slice(), [4, 1..=2, 1..=2] | [1..=2, 1..=2, 4])
}

/// The Luhn check of card numbers.
pub fn luhn_ok(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    !digits.is_empty() && sum % 10 == 0
}

/// The check character of a Chinese national id (GB 11643, ISO 7064 MOD 11-2) over its first
/// 17 digits: `0`-`9`, or `X` for 10. `digits` is 17 digits with `x_last`, else 18.
pub fn national_id_ok(digits: &[u8], x_last: bool) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [u8; 11] = [1, 0, 10, 9, 8, 7, 6, 5, 4, 3, 2];
    if digits.len() < 17 {
        return false;
    }
    let sum: u32 = digits[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    let expected = CHECK[(sum % 11) as usize];
    match (x_last, digits.get(17)) {
        (true, None) => expected == 10,
        (false, Some(&last)) => expected == last,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> String {
        Redactor::new(&PrivacyConfig::default())
            .expect("built-ins compile")
            .redact(text, &[])
            .into_owned()
    }

    #[test]
    fn cards_pass_luhn_and_others_do_not() {
        assert_eq!(redact("card 4111 1111 1111 1111 ok"), "card [card] ok");
        assert_eq!(redact("4111-1111-1111-1111."), "[card].");
        // Fails Luhn: 16 digits are a long number, still masked, but not called a card.
        assert_eq!(redact("4111 1111 1111 1112"), "[number]");
    }

    #[test]
    fn chinese_ids_need_their_check_digit() {
        assert_eq!(redact("身份证号11010519491231002X。"), "身份证号[id]。");
        assert!(national_id_ok(
            &[1, 1, 0, 1, 0, 5, 1, 9, 4, 9, 1, 2, 3, 1, 0, 0, 2],
            true
        ));
        // The same id with a wrong check digit is no id (but still a long number).
        assert!(!national_id_ok(
            &[1, 1, 0, 1, 0, 5, 1, 9, 4, 9, 1, 2, 3, 1, 0, 0, 2, 1],
            false
        ));
        assert_ne!(redact("id 110105194912310021"), "id [id]");
    }

    #[test]
    fn phones_in_digits_words_and_chinese_numerals() {
        assert_eq!(
            redact("call me on (415) 555-0199 please"),
            "call me on [phone] please"
        );
        assert_eq!(redact("+86 138 0013 8000"), "[phone]");
        assert_eq!(
            redact("it's four one five five five five zero one nine nine"),
            "it's [phone]"
        );
        assert_eq!(
            redact("我的手机是一三八零零一三八零零零"),
            "我的手机是[phone]"
        );
        assert_eq!(redact("电话１３８００１３８０００"), "电话[phone]");
    }

    #[test]
    fn short_numbers_dates_and_plain_words_are_kept() {
        for kept in [
            "order 123456 please",
            "delivered on 2026-12-06",
            "on 06/12/2026 at 10",
            "one or two things",
            "I have three cats and one dog",
            "我想查一下订单",
            "no problem, oh well",
        ] {
            assert_eq!(redact(kept), kept);
        }
    }

    #[test]
    fn emails_written_and_spoken() {
        assert_eq!(redact("mail anna.lee@example.com now"), "mail [email] now");
        assert_eq!(
            redact("it's anna dot lee at example dot com"),
            "it's [email]"
        );
        assert_eq!(redact("邮箱是 zhangsan 艾特 163 点 com"), "邮箱是 [email]");
    }

    #[test]
    fn configured_patterns_and_known_values() {
        let config = PrivacyConfig {
            patterns: vec![PatternConfig {
                name: "policy".into(),
                regex: r"\bPOL-[A-Z0-9]{6}\b".into(),
            }],
            ..PrivacyConfig::default()
        };
        let redactor = Redactor::new(&config).expect("compiles");
        assert_eq!(
            redactor.redact("policy POL-AB12CD for Wei Zhang", &["Wei Zhang".into()]),
            "policy [policy] for [sensitive]"
        );
        let bad = PrivacyConfig {
            patterns: vec![PatternConfig {
                name: "broken".into(),
                regex: "(".into(),
            }],
            ..PrivacyConfig::default()
        };
        let e = Redactor::new(&bad).expect_err("a broken regex is refused");
        assert_eq!(e.key(), "patterns[0]");
    }

    #[test]
    fn raw_lines_open_with_their_key_only() {
        let key = RawKey::from_hex(&"ab".repeat(32)).expect("a key");
        let line = key.seal(b"4111 1111 1111 1111").expect("sealed");
        assert!(!line.contains("4111"));
        assert_eq!(key.open(&line, 1).expect("opens"), b"4111 1111 1111 1111");
        let other = RawKey::from_hex(&"cd".repeat(32)).expect("a key");
        assert!(matches!(
            other.open(&line, 3),
            Err(PrivacyError::RawLine { line: 3 })
        ));
        assert!(RawKey::from_hex("abc").is_err());
        // A fresh nonce each time: the same text seals differently.
        assert_ne!(
            key.seal(b"x").expect("sealed"),
            key.seal(b"x").expect("sealed")
        );
    }

    #[test]
    fn off_masks_nothing() {
        let redactor = Redactor::new(&PrivacyConfig {
            redact: false,
            ..PrivacyConfig::default()
        })
        .expect("compiles");
        assert_eq!(
            redactor.redact("4111 1111 1111 1111", &[]),
            "4111 1111 1111 1111"
        );
    }

    #[test]
    fn a_sensitive_answer_is_stored_masked_and_so_is_its_echo() {
        use crate::session::TurnId;
        let redactor = Arc::new(Redactor::new(&PrivacyConfig::default()).expect("built-ins"));
        let mut call = CallRedaction::new(redactor);
        let event = |kind| CallEvent { t_ms: 0, kind };
        let said = call.event(&event(EventKind::Transcript {
            turn: TurnId(2),
            text: "wei zhang".into(),
            is_final: true,
            sensitive: true,
        }));
        assert!(matches!(&said.kind, EventKind::Transcript { text, .. } if text == "[sensitive]"));
        let key = call.event(&event(EventKind::Dtmf {
            digit: "7".into(),
            sensitive: true,
        }));
        assert!(matches!(&key.kind, EventKind::Dtmf { digit, .. } if digit == "*"));
        let reply = call.event(&event(EventKind::BotReply {
            turn: TurnId(2),
            text: "Thanks wei zhang, and your card 4111 1111 1111 1111?".into(),
        }));
        assert!(
            matches!(&reply.kind, EventKind::BotReply { text, .. } if text == "Thanks [sensitive], and your card [card]?"),
            "{reply:?}"
        );
        let plain = call.event(&event(EventKind::Dtmf {
            digit: "1".into(),
            sensitive: false,
        }));
        assert!(matches!(&plain.kind, EventKind::Dtmf { digit, .. } if digit == "1"));
    }
}
