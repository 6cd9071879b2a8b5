//! Intent accuracy on the labelled sets in `tests/data/` (English and Chinese caller words with
//! ASR-like noise), for each feature mode, against the real demo flows' intents.
//!
//! Run with `--nocapture` to see the table. The flows' mode (hybrid) must reach the bar below in
//! both languages; the other modes are measured for comparison.

use std::path::PathBuf;

use hotline::dialogue::flow::Flow;
use hotline::dialogue::nlu::{FeatureMode, IntentMatcher};

struct Case {
    label: String,
    words: String,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cases(file: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(repo().join("tests/data").join(file)).expect("labelled set");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (label, words) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("label<TAB>words: {l:?}"));
            Case {
                label: label.to_string(),
                words: words.to_string(),
            }
        })
        .collect()
}

/// Accuracy, with `none` predicted below the flow's accept threshold.
fn accuracy(flow: &Flow, cases: &[Case], mode: FeatureMode) -> (f32, Vec<String>) {
    let matcher = IntentMatcher::new(&flow.intents, mode);
    let mut wrong = Vec::new();
    for case in cases {
        let predicted = matcher
            .best(&case.words, None)
            .filter(|m| m.confidence >= flow.nlu.accept)
            .map(|m| m.name)
            .unwrap_or_else(|| "none".into());
        if predicted != case.label {
            wrong.push(format!(
                "{:?}: expected {}, got {}",
                case.words, case.label, predicted
            ));
        }
    }
    (1.0 - wrong.len() as f32 / cases.len() as f32, wrong)
}

#[test]
fn intent_accuracy_on_the_labelled_sets() {
    let sets = [
        ("en", "telecom_en.toml", "nlu_en.tsv"),
        ("zh", "ecommerce_zh.toml", "nlu_zh.tsv"),
    ];
    let mut chosen = Vec::new();
    for (lang, flow_file, data) in sets {
        let flow = Flow::load(&repo().join("assets/flows").join(flow_file)).expect("demo flow");
        let cases = cases(data);
        assert!(cases.len() >= 40, "{data}: the set is too small to measure");
        for mode in [
            FeatureMode::CharNgrams,
            FeatureMode::Words,
            FeatureMode::Hybrid,
        ] {
            let (acc, wrong) = accuracy(&flow, &cases, mode);
            println!(
                "{lang} {mode:?}: accuracy {:.1}% on {} utterances",
                acc * 100.0,
                cases.len()
            );
            for w in &wrong {
                println!("    {w}");
            }
            if mode == flow.nlu.features {
                chosen.push((lang, acc));
            }
        }
    }
    for (lang, acc) in chosen {
        assert!(
            acc >= 0.9,
            "{lang}: the flow's feature mode reached only {:.1}%",
            acc * 100.0
        );
    }
}
