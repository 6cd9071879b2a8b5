//! The knowledge base: FAQ entries from Markdown or CSV in `assets/kb/`, answered by BM25
//! retrieval over English words and Chinese characters, with a confidence score.
//!
//! Markdown: each `## question` heading starts an entry (text before the first is ignored); optional `Also: a | b` lines give other
//! ways to ask; the remaining lines are the answer. CSV: a `question,answer[,also]` header, then
//! one entry per row (`also` separated by `|`; fields may be double-quoted).
//!
//! Ranking is BM25 (k1 = 1.2, b = 0.75). The confidence of the best entry is its idf-weighted
//! coverage of the caller's words: the share of the question's information (sum of idf of its
//! terms, with unknown terms counted as the rarest) that the entry contains. It lies in 0..1 and
//! does not depend on how many entries the base holds, so one threshold serves all bases. It is
//! scaled down when fewer than two terms match, since one shared term is thin evidence.
//! Invariant: a [`KnowledgeBase`] is immutable once loaded and shared by all calls of a flow.

use std::collections::HashMap;
use std::path::Path;

use super::text::{self, Segment, EN_STOPWORDS, ZH_STOPCHARS};

/// A knowledge-base file that could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KbError {
    #[error("{file}: cannot read: {message}")]
    Read { file: String, message: String },
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
}

/// A learned answer that could not be added to a knowledge base (nothing was changed).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LearnError {
    #[error("{0}")]
    Invalid(String),
    #[error("{file}: cannot write: {message}")]
    Write { file: String, message: String },
    #[error("the knowledge base would no longer load, so it was left as it was: {0}")]
    Rejected(KbError),
    #[error("flow `{flow}` {why}")]
    Flow { flow: String, why: String },
}

/// Adds one entry (a question callers asked, and its answer) to the end of a `.md` or `.csv`
/// knowledge base, in that file's own format. The file is then loaded again: if it would no
/// longer load, the old content is put back and nothing changes. Returns the entries it has.
pub fn append_entry(path: &Path, question: &str, answer: &str) -> Result<usize, LearnError> {
    let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let (question, answer) = (one_line(question), one_line(answer));
    if question.is_empty() || answer.is_empty() {
        return Err(LearnError::Invalid(
            "a question and an answer are both needed".into(),
        ));
    }
    let file = path.display().to_string();
    let before = std::fs::read_to_string(path).map_err(|e| LearnError::Write {
        file: file.clone(),
        message: e.to_string(),
    })?;
    let entry = match path.extension().and_then(|e| e.to_str()) {
        Some("md") => {
            let question = question.trim_start_matches('#').trim();
            format!("\n## {question}\n{answer}\n")
        }
        Some("csv") => {
            let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
            let header = before.lines().next().unwrap_or_default();
            let columns = csv_fields(header.trim_start_matches('\u{feff}'))
                .map_err(|m| LearnError::Invalid(format!("{file}: line 1: {m}")))?;
            let row: Vec<String> = columns
                .iter()
                .map(|c| match c.trim() {
                    "question" => quote(&question),
                    "answer" => quote(&answer),
                    _ => String::new(),
                })
                .collect();
            format!(
                "{}{}\n",
                if before.ends_with('\n') { "" } else { "\n" },
                row.join(",")
            )
        }
        _ => {
            return Err(LearnError::Invalid(format!(
                "{file}: expected a .md or .csv file"
            )))
        }
    };
    let write = |text: &str| {
        std::fs::write(path, text).map_err(|e| LearnError::Write {
            file: file.clone(),
            message: e.to_string(),
        })
    };
    write(&format!("{before}{entry}"))?;
    match KnowledgeBase::load(path) {
        Ok(kb) => Ok(kb.entries().len()),
        Err(e) => {
            write(&before)?;
            Err(LearnError::Rejected(e))
        }
    }
}

/// One FAQ entry.
#[derive(Debug, Clone, PartialEq)]
pub struct KbEntry {
    pub question: String,
    pub also: Vec<String>,
    pub answer: String,
    /// Where it was written (file:line), for authors.
    pub origin: String,
}

/// An answer with its confidence.
#[derive(Debug, Clone, PartialEq)]
pub struct KbHit<'a> {
    pub entry: &'a KbEntry,
    pub confidence: f32,
    pub bm25: f32,
}

#[derive(Debug, Clone)]
struct Doc {
    tf: HashMap<String, f32>,
    len: f32,
}

/// A loaded, indexed knowledge base.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeBase {
    entries: Vec<KbEntry>,
    docs: Vec<Doc>,
    idf: HashMap<String, f32>,
    unseen_idf: f32,
    avg_len: f32,
}

/// Terms of a text for retrieval: stemmed English words without stopwords; Chinese characters
/// (without particles) and character bigrams.
pub fn terms(words: &str) -> Vec<String> {
    let normalized = text::normalize(words);
    let mut out = Vec::new();
    for segment in text::segments(&normalized) {
        match segment {
            Segment::Word(w) => {
                if !EN_STOPWORDS.contains(&w) {
                    out.push(text::stem(w).to_string());
                }
            }
            Segment::Han(run) => {
                let chars: Vec<char> = run.chars().collect();
                out.extend(
                    chars
                        .iter()
                        .filter(|c| !ZH_STOPCHARS.contains(c))
                        .map(|c| c.to_string()),
                );
                out.extend(chars.windows(2).map(|p| format!("{}{}", p[0], p[1])));
            }
        }
    }
    out
}

const K1: f32 = 1.2;
/// Terms a question must share with an entry for full confidence.
const MIN_MATCHED_TERMS: f32 = 2.0;
const B: f32 = 0.75;

impl KnowledgeBase {
    /// Loads a `.md` or `.csv` file.
    pub fn load(path: &Path) -> Result<Self, KbError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| KbError::Read {
            file: file.clone(),
            message: e.to_string(),
        })?;
        let entries = match path.extension().and_then(|e| e.to_str()) {
            Some("md") => parse_markdown(&text, &file)?,
            Some("csv") => parse_csv(&text, &file)?,
            _ => {
                return Err(KbError::Invalid {
                    file,
                    line: 1,
                    message: "expected a .md or .csv file".into(),
                })
            }
        };
        Ok(Self::from_entries(entries))
    }

    /// Indexes entries.
    pub fn from_entries(entries: Vec<KbEntry>) -> Self {
        let docs: Vec<Doc> = entries
            .iter()
            .map(|e| {
                let mut tf: HashMap<String, f32> = HashMap::new();
                // The question and its variants count twice: they are how callers ask.
                for q in std::iter::once(&e.question).chain(e.also.iter()) {
                    for t in terms(q) {
                        *tf.entry(t).or_default() += 2.0;
                    }
                }
                for t in terms(&e.answer) {
                    *tf.entry(t).or_default() += 1.0;
                }
                let len = tf.values().sum();
                Doc { tf, len }
            })
            .collect();
        let n = docs.len().max(1) as f32;
        let mut df: HashMap<String, f32> = HashMap::new();
        for d in &docs {
            for t in d.tf.keys() {
                *df.entry(t.clone()).or_default() += 1.0;
            }
        }
        let idf = df
            .into_iter()
            .map(|(t, f)| (t, ((n - f + 0.5) / (f + 0.5) + 1.0).ln()))
            .collect();
        let avg_len = docs.iter().map(|d| d.len).sum::<f32>() / n;
        Self {
            entries,
            docs,
            idf,
            unseen_idf: ((n + 0.5) / 0.5f32).ln(),
            avg_len: avg_len.max(1.0),
        }
    }

    /// The entries, in file order.
    pub fn entries(&self) -> &[KbEntry] {
        &self.entries
    }

    /// The best `k` entries for the caller's words, best first.
    pub fn search(&self, words: &str, k: usize) -> Vec<KbHit<'_>> {
        let mut query = terms(words);
        query.sort();
        query.dedup();
        if query.is_empty() {
            return Vec::new();
        }
        let idf = |t: &str| self.idf.get(t).copied().unwrap_or(self.unseen_idf);
        let total_info: f32 = query.iter().map(|t| idf(t)).sum();
        let mut hits: Vec<KbHit<'_>> = self
            .docs
            .iter()
            .zip(&self.entries)
            .filter_map(|(doc, entry)| {
                let mut bm25 = 0.0;
                let mut covered = 0.0;
                let mut matched = 0usize;
                for t in &query {
                    if let Some(tf) = doc.tf.get(t) {
                        let w = idf(t);
                        bm25 += w * tf * (K1 + 1.0)
                            / (tf + K1 * (1.0 - B + B * doc.len / self.avg_len));
                        covered += w;
                        matched += 1;
                    }
                }
                // One shared term is thin evidence ("还有" shares a bigram with many answers).
                let evidence = (matched as f32 / MIN_MATCHED_TERMS).min(1.0);
                (bm25 > 0.0).then(|| KbHit {
                    entry,
                    bm25,
                    confidence: (covered / total_info * evidence).clamp(0.0, 1.0),
                })
            })
            .collect();
        hits.sort_by(|a, b| b.bm25.total_cmp(&a.bm25));
        hits.truncate(k);
        hits
    }
}

fn parse_markdown(text: &str, file: &str) -> Result<Vec<KbEntry>, KbError> {
    let mut entries: Vec<KbEntry> = Vec::new();
    let mut current: Option<(KbEntry, usize)> = None;
    let finish = |c: Option<(KbEntry, usize)>, entries: &mut Vec<KbEntry>| -> Result<(), KbError> {
        if let Some((mut e, line)) = c {
            e.answer = e.answer.trim().to_string();
            if e.answer.is_empty() {
                return Err(KbError::Invalid {
                    file: file.to_string(),
                    line,
                    message: format!(
                        "entry {:?}: expected an answer below the heading",
                        e.question
                    ),
                });
            }
            entries.push(e);
        }
        Ok(())
    };
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = line.trim();
        if let Some(q) = trimmed.strip_prefix("## ") {
            finish(current.take(), &mut entries)?;
            if q.trim().is_empty() {
                return Err(KbError::Invalid {
                    file: file.to_string(),
                    line: line_no,
                    message: "expected a question after `## `".into(),
                });
            }
            current = Some((
                KbEntry {
                    question: q.trim().to_string(),
                    also: Vec::new(),
                    answer: String::new(),
                    origin: format!("{file}:{line_no}"),
                },
                line_no,
            ));
        } else if trimmed.starts_with("# ") || trimmed.is_empty() && current.is_none() {
            continue;
        } else if let Some((entry, _)) = current.as_mut() {
            if let Some(also) = trimmed
                .strip_prefix("Also:")
                .or_else(|| trimmed.strip_prefix("也问："))
            {
                entry.also.extend(
                    also.split('|')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty()),
                );
            } else {
                if !entry.answer.is_empty() {
                    entry.answer.push(' ');
                }
                entry.answer.push_str(trimmed);
            }
        }
        // Text before the first heading is an introduction for authors.
    }
    finish(current.take(), &mut entries)?;
    if entries.is_empty() {
        return Err(KbError::Invalid {
            file: file.to_string(),
            line: 1,
            message: "no entries: expected `## question` headings with answers".into(),
        });
    }
    Ok(entries)
}

/// Splits one CSV record (RFC 4180 quoting, no embedded newlines).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == ',' {
            fields.push(std::mem::take(&mut field));
            at_start = true;
        } else {
            field.push(c);
            at_start = false;
        }
    }
    if quoted {
        return Err("unterminated quoted field (expected a closing `\"`)".into());
    }
    fields.push(field);
    Ok(fields)
}

fn parse_csv(text: &str, file: &str) -> Result<Vec<KbEntry>, KbError> {
    let invalid = |line: usize, message: String| KbError::Invalid {
        file: file.to_string(),
        line,
        message,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| invalid(1, "empty file: expected a `question,answer` header".into()))?;
    let header: Vec<String> =
        csv_fields(header.trim_start_matches('\u{feff}')).map_err(|m| invalid(1, m))?;
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let (Some(qi), Some(ai)) = (col("question"), col("answer")) else {
        return Err(invalid(
            1,
            format!("header {header:?}: expected columns `question` and `answer`"),
        ));
    };
    let also_i = col("also");
    let mut entries = Vec::new();
    for (i, line) in lines {
        let line_no = i + 1;
        let fields = csv_fields(line).map_err(|m| invalid(line_no, m))?;
        if fields.len() != header.len() {
            return Err(invalid(
                line_no,
                format!(
                    "{} fields, expected {} (as in the header)",
                    fields.len(),
                    header.len()
                ),
            ));
        }
        let (q, a) = (fields[qi].trim(), fields[ai].trim());
        if q.is_empty() || a.is_empty() {
            return Err(invalid(
                line_no,
                "expected a non-empty question and answer".into(),
            ));
        }
        entries.push(KbEntry {
            question: q.to_string(),
            also: also_i
                .map(|j| {
                    fields[j]
                        .split('|')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            answer: a.to_string(),
            origin: format!("{file}:{line_no}"),
        });
    }
    if entries.is_empty() {
        return Err(invalid(1, "no entries below the header".into()));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD: &str = "# FAQ\n\n## How do I pay my bill?\nAlso: payment methods | pay online\nPay online or by phone.\n\n## Is there an outage in my area?\nCheck the status page.\n\n## 怎么退货？\n也问：退换货 | 我要退货\n七天内可以无理由退货。\n";

    #[test]
    fn markdown_entries_and_retrieval() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("faq.md");
        std::fs::write(&path, MD).expect("write");
        let kb = KnowledgeBase::load(&path).expect("valid kb");
        assert_eq!(kb.entries().len(), 3);
        let hits = kb.search("how can I pay the bill", 1);
        assert_eq!(hits[0].entry.question, "How do I pay my bill?");
        assert!(hits[0].confidence > 0.6, "{}", hits[0].confidence);
        let zh = kb.search("我想退货", 1);
        assert_eq!(zh[0].entry.question, "怎么退货？");
        let miss = kb.search("can you recommend a pizza place", 1);
        assert!(miss.first().is_none_or(|h| h.confidence < 0.3));
    }

    #[test]
    fn csv_errors_are_placed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("faq.csv");
        std::fs::write(&path, "question,answer\n\"a\",b\nc,d,e\n").expect("write");
        let err = KnowledgeBase::load(&path).expect_err("bad row").to_string();
        assert!(
            err.ends_with("faq.csv:3: 3 fields, expected 2 (as in the header)"),
            "{err}"
        );
    }
}
