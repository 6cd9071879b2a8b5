//! The knowledge-gap list: questions the bot could not answer, grouped by similarity with the
//! NLU's own terms ([`crate::dialogue::kb::terms`]: stemmed English words, Chinese characters
//! and character pairs), per flow, with counts and example calls, and marked answered once a
//! supervisor's answer covers them.
//!
//! Pure: the store reads the gaps and the answers, this groups them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::dialogue::kb::terms;

/// Two questions whose term sets overlap at least this much (Jaccard) are one group.
pub const SIMILAR: f32 = 0.5;
/// Example calls kept per group.
const EXAMPLES: usize = 5;

/// One unanswered question, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    pub call_id: String,
    pub flow: String,
    pub language: String,
    pub started_at: i64,
    pub text: String,
}

/// A supervisor's answer to a group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapAnswer {
    pub flow: String,
    pub question: String,
    pub answer: String,
    pub answered_by: String,
    pub answered_at: i64,
}

/// Similar questions in one flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapGroup {
    /// Stable while the group's question stays the same: the flow and question, hashed.
    pub key: String,
    pub flow: String,
    pub language: String,
    /// The group's most frequent wording.
    pub question: String,
    pub count: usize,
    /// Other wordings, most frequent first.
    pub variants: Vec<String>,
    /// Up to five calls that asked it, newest first: (call id, wording).
    pub examples: Vec<(String, String)>,
    pub last_seen: i64,
    /// The answer that covers it, once a supervisor wrote one.
    pub answer: Option<GapAnswer>,
}

fn term_set(text: &str) -> BTreeSet<String> {
    terms(text).into_iter().collect()
}

fn overlap(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f32 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f32 / union as f32
}

/// A short stable key for a flow's question.
fn key_of(flow: &str, question: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{flow}\n{}", question.to_lowercase()).as_bytes(),
    );
    digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Groups `gaps` (newest first) per flow by similarity; the groups most asked first.
pub fn group(gaps: &[Gap], answers: &[GapAnswer]) -> Vec<GapGroup> {
    struct Building {
        flow: String,
        language: String,
        terms: BTreeSet<String>,
        wordings: BTreeMap<String, usize>,
        examples: Vec<(String, String)>,
        count: usize,
        last_seen: i64,
    }
    let mut groups: Vec<Building> = Vec::new();
    for gap in gaps {
        let t = term_set(&gap.text);
        let found = groups
            .iter_mut()
            .filter(|g| g.flow == gap.flow)
            .map(|g| {
                let s = overlap(&g.terms, &t);
                (g, s)
            })
            .filter(|(_, s)| *s >= SIMILAR)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(g, _)| g);
        let g = match found {
            Some(g) => g,
            None => {
                groups.push(Building {
                    flow: gap.flow.clone(),
                    language: gap.language.clone(),
                    terms: t.clone(),
                    wordings: BTreeMap::new(),
                    examples: Vec::new(),
                    count: 0,
                    last_seen: gap.started_at,
                });
                groups.last_mut().expect("just pushed")
            }
        };
        g.count += 1;
        *g.wordings
            .entry(gap.text.trim().to_lowercase())
            .or_default() += 1;
        if g.examples.len() < EXAMPLES {
            g.examples.push((gap.call_id.clone(), gap.text.clone()));
        }
        g.last_seen = g.last_seen.max(gap.started_at);
    }
    let mut out: Vec<GapGroup> = groups
        .into_iter()
        .map(|g| {
            let mut wordings: Vec<(String, usize)> = g.wordings.into_iter().collect();
            wordings.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let question = wordings.first().map(|w| w.0.clone()).unwrap_or_default();
            let answer = answers
                .iter()
                .filter(|a| a.flow == g.flow)
                .map(|a| (a, overlap(&term_set(&a.question), &g.terms)))
                .filter(|(_, s)| *s >= SIMILAR)
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(a, _)| a.clone());
            GapGroup {
                key: key_of(&g.flow, &question),
                flow: g.flow,
                language: g.language,
                variants: wordings.iter().skip(1).map(|w| w.0.clone()).collect(),
                question,
                count: g.count,
                examples: g.examples,
                last_seen: g.last_seen,
                answer,
            }
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_seen.cmp(&a.last_seen)));
    out
}

/// The groups as CSV (flow, language, question, count, answered, answer, variants), for a
/// spreadsheet.
pub fn to_csv(groups: &[GapGroup]) -> String {
    let quote = |s: &str| {
        // A leading =, +, - or @ would be a formula in a spreadsheet.
        let s = if s.starts_with(['=', '+', '-', '@']) {
            format!("'{s}")
        } else {
            s.to_string()
        };
        format!("\"{}\"", s.replace('"', "\"\""))
    };
    let mut out = String::from("flow,language,question,count,answered,answer,variants\n");
    for g in groups {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            quote(&g.flow),
            quote(&g.language),
            quote(&g.question),
            g.count,
            if g.answer.is_some() { "yes" } else { "no" },
            quote(g.answer.as_ref().map_or("", |a| a.answer.as_str())),
            quote(&g.variants.join(" | ")),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(call: &str, flow: &str, at: i64, text: &str) -> Gap {
        Gap {
            call_id: call.into(),
            flow: flow.into(),
            language: "en".into(),
            started_at: at,
            text: text.into(),
        }
    }

    #[test]
    fn similar_questions_group_per_flow_most_asked_first() {
        let gaps = [
            gap("c5", "telecom_en", 5, "can I bring my own phone"),
            gap("c4", "telecom_en", 4, "do you sell gift cards"),
            gap("c3", "telecom_en", 3, "can I bring my own phone to you"),
            gap("c2", "shop_en", 2, "can I bring my own phone"),
            gap("c1", "telecom_en", 1, "bring my own phone"),
        ];
        let groups = group(&gaps, &[]);
        assert_eq!(groups.len(), 3, "{groups:#?}");
        assert_eq!(groups[0].flow, "telecom_en");
        assert_eq!(groups[0].count, 3);
        assert_eq!(groups[0].examples[0].0, "c5");
        assert!(groups.iter().any(|g| g.flow == "shop_en" && g.count == 1));
        assert!(groups.iter().all(|g| g.answer.is_none()));
    }

    #[test]
    fn chinese_questions_group_by_characters() {
        let gaps = [
            gap("a", "shop_zh", 2, "可以开发票吗"),
            gap("b", "shop_zh", 1, "能开发票吗"),
            gap("c", "shop_zh", 0, "几点发货"),
        ];
        let groups = group(&gaps, &[]);
        assert_eq!(groups.len(), 2, "{groups:#?}");
        assert_eq!(groups[0].count, 2);
    }

    #[test]
    fn an_answer_covers_its_group_and_csv_quotes_safely() {
        let gaps = [gap("c1", "telecom_en", 1, "can I bring my own phone")];
        let answer = GapAnswer {
            flow: "telecom_en".into(),
            question: "can I bring my own phone".into(),
            answer: "Yes, any unlocked phone works.".into(),
            answered_by: "sam".into(),
            answered_at: 9,
        };
        let groups = group(&gaps, std::slice::from_ref(&answer));
        assert_eq!(groups[0].answer.as_ref(), Some(&answer));
        let csv = to_csv(&groups);
        assert!(
            csv.contains("\"telecom_en\",\"en\",\"can i bring my own phone\",1,yes,"),
            "{csv}"
        );
        let evil = [gap("c", "f", 1, "=cmd|' /C calc'!A0")];
        assert!(to_csv(&group(&evil, &[])).contains("\"'=cmd"));
    }
}
