//! Redaction recall on a labelled set: 200 synthetic call transcripts, half English, half
//! Chinese, written as recognizers write them (digits grouped in different ways, digit words,
//! Chinese numerals, full-width digits, spoken emails), each with the personal data it holds
//! labelled, and 60 more lines with numbers that are not personal (order numbers, dates,
//! prices, times). Prints recall (labelled items masked whole) per kind and the false-positive
//! rate (clean lines changed), and holds them to a floor.
//!
//! The set is generated from a fixed seed, so every run scores the same lines.

use hotline::privacy::{PrivacyConfig, Redactor};

/// A tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn digits(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() % 10) as u8).collect()
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn text(digits: &[u8]) -> String {
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

/// Groups `digits` as `sizes`, joined by `sep`.
fn grouped(digits: &[u8], sizes: &[usize], sep: &str) -> String {
    let mut out = Vec::new();
    let mut at = 0;
    for &n in sizes {
        out.push(text(&digits[at..(at + n).min(digits.len())]));
        at += n;
    }
    if at < digits.len() {
        out.push(text(&digits[at..]));
    }
    out.join(sep)
}

fn words(digits: &[u8]) -> String {
    const WORDS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    digits
        .iter()
        .map(|&d| WORDS[d as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

fn chinese(digits: &[u8]) -> String {
    const NUMERALS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
    digits.iter().map(|&d| NUMERALS[d as usize]).collect()
}

fn full_width(digits: &[u8]) -> String {
    digits
        .iter()
        .map(|&d| char::from_u32('０' as u32 + u32::from(d)).unwrap_or('０'))
        .collect()
}

/// A card number that passes Luhn (16 digits, a 4 or 5 in front).
fn card(rng: &mut Rng) -> Vec<u8> {
    let mut digits = vec![4 + (rng.next() % 2) as u8];
    digits.extend(rng.digits(14));
    for check in 0..10 {
        let mut candidate = digits.clone();
        candidate.push(check);
        if hotline::privacy::luhn_ok(&candidate) {
            return candidate;
        }
    }
    unreachable!("one check digit always fits")
}

/// A Chinese national id with its right check character; `true` when it is `X`.
fn national_id(rng: &mut Rng) -> (String, bool) {
    let mut digits = vec![1 + (rng.next() % 6) as u8];
    digits.extend(rng.digits(5));
    digits.extend([1, 9, 8 + (rng.next() % 2) as u8, (rng.next() % 10) as u8]);
    digits.extend([0, 1 + (rng.next() % 9) as u8, 1, 1 + (rng.next() % 8) as u8]);
    digits.extend(rng.digits(3));
    for check in 0..10u8 {
        let mut candidate = digits.clone();
        candidate.push(check);
        if hotline::privacy::national_id_ok(&candidate, false) {
            return (text(&candidate), false);
        }
    }
    assert!(hotline::privacy::national_id_ok(&digits, true));
    (format!("{}X", text(&digits)), true)
}

/// One labelled line: the text and the personal items in it (kind, exact text).
struct Labelled {
    text: String,
    items: Vec<(&'static str, String)>,
}

fn english(rng: &mut Rng) -> Labelled {
    let first = rng.pick(&["anna", "john", "wei", "maria", "li", "omar"]);
    let last = rng.pick(&["lee", "smith", "zhang", "garcia", "chen"]);
    let domain = rng.pick(&["example", "gmail", "outlook", "acme"]);
    let (kind, item) = match rng.below(6) {
        0 => {
            let c = card(rng);
            let form = match rng.below(3) {
                0 => grouped(&c, &[4, 4, 4, 4], " "),
                1 => grouped(&c, &[4, 4, 4, 4], "-"),
                _ => text(&c),
            };
            ("card", form)
        }
        1 => {
            let mut p = vec![2 + (rng.next() % 8) as u8];
            p.extend(rng.digits(9));
            let form = match rng.below(4) {
                0 => format!("({}) {}-{}", text(&p[..3]), text(&p[3..6]), text(&p[6..])),
                1 => grouped(&p, &[3, 3, 4], "-"),
                2 => format!("+1 {}", grouped(&p, &[3, 3, 4], " ")),
                _ => grouped(&p, &[3, 3, 4], "."),
            };
            ("phone", form)
        }
        2 => {
            let mut p = vec![2 + (rng.next() % 8) as u8];
            p.extend(rng.digits(9));
            ("phone", words(&p))
        }
        3 => ("email", format!("{first}.{last}@{domain}.com")),
        4 => ("email", format!("{first} dot {last} at {domain} dot com")),
        _ => {
            let c = card(rng);
            ("card", words(&c))
        }
    };
    let template = rng.pick(&[
        "sure, it's {} thanks",
        "my details are {}",
        "you can use {}",
        "okay {}",
        "I said {} earlier",
    ]);
    Labelled {
        text: template.replace("{}", &item),
        items: vec![(kind, item)],
    }
}

fn chinese_line(rng: &mut Rng) -> Labelled {
    let user = rng.pick(&["zhangsan", "liwei", "wang.fang", "chen88"]);
    let domain = rng.pick(&["qq", "163", "sina", "126"]);
    let (kind, item) = match rng.below(6) {
        0 => {
            let (id, _) = national_id(rng);
            ("id", id)
        }
        1 => {
            let mut p = vec![1, 3 + (rng.next() % 6) as u8];
            p.extend(rng.digits(9));
            let form = match rng.below(4) {
                0 => text(&p),
                1 => grouped(&p, &[3, 4, 4], " "),
                2 => format!("+86 {}", grouped(&p, &[3, 4, 4], "-")),
                _ => full_width(&p),
            };
            ("phone", form)
        }
        2 => {
            let mut p = vec![1, 3 + (rng.next() % 6) as u8];
            p.extend(rng.digits(9));
            ("phone", chinese(&p))
        }
        3 => {
            let c = card(rng);
            let form = if rng.below(2) == 0 {
                text(&c)
            } else {
                grouped(&c, &[4, 4, 4, 4], " ")
            };
            ("card", form)
        }
        4 => ("email", format!("{user}@{domain}.com")),
        _ => ("email", format!("{user} 艾特 {domain} 点 com")),
    };
    let template = rng.pick(&[
        "我的号码是{}",
        "好的，是{}。",
        "你记一下{}谢谢",
        "嗯，{}",
        "就是{}这个",
    ]);
    Labelled {
        text: template.replace("{}", &item),
        items: vec![(kind, item)],
    }
}

/// Lines with numbers that are not personal: they must come out unchanged.
fn clean_lines(rng: &mut Rng) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..10 {
        let order = text(&rng.digits(6));
        lines.push(format!("my order number is {order}"));
        lines.push(format!("订单号是{order}"));
        let day = 1 + rng.below(28);
        let month = 1 + rng.below(12);
        lines.push(format!("it was delivered on 2026-{month:02}-{day:02}"));
        lines.push(format!("{month}月{day}日送到的"));
        let price = 10 + rng.below(5000);
        lines.push(format!(
            "the bill was {price}.{:02} dollars",
            rng.below(100)
        ));
        lines.push(format!(
            "call me after {}:{:02} or press one for sales, two for support",
            1 + rng.below(12),
            rng.below(60)
        ));
    }
    lines
}

/// `text` with every `[label]` mask cut out.
fn mask_labels(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in text.chars() {
        match c {
            '[' => inside = true,
            ']' if inside => {
                inside = false;
                out.push('|');
            }
            _ if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

#[test]
fn redaction_recall_on_200_labelled_transcripts_in_english_and_chinese() {
    let redactor = Redactor::new(&PrivacyConfig::default()).expect("built-ins");
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let mut set: Vec<(&str, Labelled)> = Vec::new();
    for i in 0..200 {
        if i % 2 == 0 {
            set.push(("en", english(&mut rng)));
        } else {
            set.push(("zh", chinese_line(&mut rng)));
        }
    }
    let mut per_kind: std::collections::BTreeMap<(&str, &str), (usize, usize)> = Default::default();
    let mut missed = Vec::new();
    for (language, line) in &set {
        let masked = redactor.redact(&line.text, &[]);
        // The masks' own letters do not count as survivors.
        let rest = mask_labels(&masked).replace(' ', "");
        for (kind, item) in &line.items {
            // Masked whole: no run of 4 or more of its characters survives.
            let chars: Vec<char> = item.chars().filter(|c| !c.is_whitespace()).collect();
            let survives = chars.windows(4).any(|w| {
                let piece: String = w.iter().collect();
                rest.contains(&piece)
            });
            let entry = per_kind.entry((language, kind)).or_default();
            entry.1 += 1;
            if survives {
                missed.push(format!("{language} {kind}: {} -> {masked}", line.text));
            } else {
                entry.0 += 1;
            }
        }
    }
    let clean = clean_lines(&mut rng);
    let changed: Vec<String> = clean
        .iter()
        .filter_map(|line| {
            let masked = redactor.redact(line, &[]);
            (masked != line.as_str()).then(|| format!("{line} -> {masked}"))
        })
        .collect();
    let (hit, total) = per_kind
        .values()
        .fold((0, 0), |(h, t), (a, b)| (h + a, t + b));
    println!("redaction recall on {} labelled lines:", set.len());
    for ((language, kind), (h, t)) in &per_kind {
        println!("  {language} {kind:6} {h}/{t}");
    }
    println!(
        "  all     {hit}/{total} = {:.1} %; clean lines changed: {}/{} ({:.1} %)",
        hit as f64 * 100.0 / total as f64,
        changed.len(),
        clean.len(),
        changed.len() as f64 * 100.0 / clean.len() as f64
    );
    for line in missed.iter().chain(&changed) {
        println!("  {line}");
    }
    assert!(
        hit as f64 >= total as f64 * 0.98,
        "recall below 98 %: missed {missed:#?}"
    );
    assert!(
        changed.len() * 20 <= clean.len(),
        "more than 5 % of clean lines changed: {changed:#?}"
    );
}
