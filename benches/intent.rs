//! Intent matching time per utterance, for each feature mode, over the labelled sets in
//! `tests/data/` against the demo flows' intents. Criterion reports the time per whole set and,
//! through the throughput, utterances per second.
//!
//! `cargo bench --bench intent`

use std::path::PathBuf;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use hotline::dialogue::flow::Flow;
use hotline::dialogue::nlu::{FeatureMode, IntentMatcher};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn utterances(file: &str) -> Vec<String> {
    std::fs::read_to_string(repo().join("tests/data").join(file))
        .expect("labelled set")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t').map(|(_, w)| w.to_string()))
        .collect()
}

fn intent_match(c: &mut Criterion) {
    for (lang, flow_file, data) in [
        ("en", "telecom_en.toml", "nlu_en.tsv"),
        ("zh", "ecommerce_zh.toml", "nlu_zh.tsv"),
    ] {
        let flow = Flow::load(&repo().join("assets/flows").join(flow_file)).expect("demo flow");
        let words = utterances(data);
        let mut group = c.benchmark_group(format!("intent_{lang}"));
        group.throughput(Throughput::Elements(words.len() as u64));
        for mode in [
            FeatureMode::CharNgrams,
            FeatureMode::Words,
            FeatureMode::Hybrid,
        ] {
            let matcher = IntentMatcher::new(&flow.intents, mode);
            // Warm the jieba dictionary outside the measurement.
            let _ = matcher.best("查订单", None);
            group.bench_function(format!("{mode:?}"), |b| {
                b.iter(|| {
                    for w in &words {
                        black_box(matcher.best(black_box(w), None));
                    }
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, intent_match);
criterion_main!(benches);
