//! `GET /metrics` after a real call: a SIPp caller speaks over the greeting and asks for
//! customer support, and the bot transfers the call. The page must parse as Prometheus text
//! (every sample a declared metric, every value a number, histogram buckets cumulative), and
//! its figures must say what happened: one call started and ended, at least one timed turn,
//! one transfer, and no call in progress.
//!
//! SIPp's pcap player writes through a raw socket, so this test needs root (CI runs as root).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::hotline::Hotline;
use common::pcap::{support_request_pcap, PT_PCMU};
use common::ports::RtpPorts;
use common::sipp::support_caller;

/// One sample: its metric name, its labels as written, its value.
type Sample = (String, String, f64);

/// Parses the text exposition format strictly; panics with the line at fault.
fn parse(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "unknown type: {line}"
            );
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "a stray comment: {line}");
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("labels end with }");
                for pair in labels.split(',') {
                    let (key, quoted) = pair.split_once('=').expect("label=value");
                    assert!(
                        key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "bad label name: {line}"
                    );
                    assert!(
                        quoted.starts_with('"') && quoted.ends_with('"'),
                        "unquoted label value: {line}"
                    );
                }
                (name, labels)
            }
            None => (series, ""),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "no # TYPE for {line}");
        samples.push((name.to_string(), labels.to_string(), value));
    }
    samples
}

fn total(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, _, v)| v)
        .sum()
}

#[test]
fn metrics_after_a_call_parse_as_prometheus_text_and_count_it() {
    let rtp = RtpPorts::free(4);
    let hotline = Hotline::start_with_web(
        2,
        &format!("port = 0\ncodecs = [\"PCMU\"]\n{}\n", rtp.toml()),
    );
    let port = hotline.web_port.expect("web server");
    let scrape = || {
        ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
            .timeout(Duration::from_secs(5))
            .call()
            .expect("GET /metrics")
    };
    let before = parse(&scrape().into_string().expect("text"));
    assert_eq!(total(&before, "hotline_calls_total"), 0.0);

    let work = tempfile::tempdir().expect("tempdir");
    let pcap = support_request_pcap(work.path(), PT_PCMU);
    support_caller(hotline.sip_addr(), &pcap)
        .timeout_s(40)
        .run_ok(work.path());
    let call = hotline.one_call(Duration::from_secs(20));

    let response = scrape();
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "content type: {:?}",
        response.header("content-type")
    );
    let text = response.into_string().expect("text");
    let samples = parse(&text);
    assert_eq!(total(&samples, "hotline_calls_total"), 1.0, "{text}");
    assert_eq!(total(&samples, "hotline_calls_ended_total"), 1.0, "{text}");
    assert_eq!(total(&samples, "hotline_calls_active"), 0.0, "{text}");
    let turns = call.iter().filter(|e| e["type"] == "turn_latency").count() as f64;
    assert!(turns >= 1.0, "the call had a timed turn: {call:?}");
    assert_eq!(
        total(&samples, "hotline_turn_latency_seconds_count"),
        turns,
        "one latency observation per turn_latency event\n{text}"
    );
    let transfers = call.iter().filter(|e| e["type"] == "transfer").count() as f64;
    assert_eq!(transfers, 1.0, "the bot transferred the call: {call:?}");
    assert!(
        samples
            .iter()
            .any(|(n, l, v)| n == "hotline_transfers_total"
                && l == "outcome=\"started\""
                && *v == 1.0),
        "{text}"
    );
    // Buckets are cumulative and end with the count.
    let buckets: Vec<f64> = samples
        .iter()
        .filter(|(n, _, _)| n == "hotline_turn_latency_seconds_bucket")
        .map(|(_, _, v)| *v)
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(buckets.last().copied(), Some(turns), "{text}");
}
