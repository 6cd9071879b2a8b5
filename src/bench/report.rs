//! What a bench run found: the [`Report`] (written with `--json`, read back by `--compare`),
//! its text form, and the side-by-side comparison of two reports.
//!
//! Owns the JSON schema: `calls` (calls answered, talked through and hung up), `calls_failed`,
//! `voice_to_voice_ms` and `barge_in_ms` (each `{p50, p95, p99, count}`), `cpu_per_call_pct`,
//! `rss_per_call_mib`, `packet_loss_pct`, `jitter_ms` (null when not measured), and `asr_model`
//! (`{file, weights}`), plus the run's context (target, concurrency, turns, wall time, errors).
//! Invariants: a figure that was not measured is null, never 0; every field but the context
//! has a default when read, so reports of older runs still compare.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::call::CallOutcome;
use super::server::ServerFigures;
use super::stats::{change, histogram, render_histogram, Percentiles};
use super::BenchError;

/// The most distinct call errors a report lists.
const MAX_ERRORS: usize = 10;

/// The ASR model the server ran, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsrModel {
    /// The model's file name (or engine name); `unknown` when not given.
    pub file: String,
    /// `trained`, `synthetic` or `unknown`.
    pub weights: String,
}

impl Default for AsrModel {
    fn default() -> Self {
        Self {
            file: "unknown".into(),
            weights: "unknown".into(),
        }
    }
}

impl AsrModel {
    /// What `--asr-model NAME` says: a trained model's name, an official or synthetic file name
    /// or path, or a recognizer (`sphinx`).
    pub fn named(name: &str) -> Self {
        use crate::models::{find, find_trained, trained, SYNTHETIC_PREFIX};
        let file = Path::new(name)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_string());
        if let Some(model) = find_trained(name) {
            return Self {
                file: model.file.to_string(),
                weights: "trained".into(),
            };
        }
        let weights = if file.starts_with(SYNTHETIC_PREFIX) {
            "synthetic"
        } else if trained().iter().any(|t| t.file == file)
            || find(&file).is_some()
            || matches!(file.as_str(), "sphinx" | "pocketsphinx")
        {
            "trained"
        } else {
            "unknown"
        };
        Self {
            file,
            weights: weights.into(),
        }
    }
}

/// The result of a bench run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// Where the calls went.
    pub target: String,
    /// Calls answered, talked through and hung up.
    pub calls: usize,
    /// Calls that failed (not answered, refused, hung up by the server early, ...).
    pub calls_failed: usize,
    /// Calls at once.
    pub concurrency: usize,
    /// Caller turns in each call.
    pub turns_per_call: usize,
    /// Calls placed before the measured ones and left out of every figure.
    pub warmup_calls: usize,
    /// Turns spoken, over every call.
    pub turns_spoken: usize,
    /// Turns the bot answered (the voice-to-voice samples).
    pub turns_answered: usize,
    pub voice_to_voice_ms: Percentiles,
    pub barge_in_ms: Percentiles,
    pub cpu_per_call_pct: Option<f64>,
    pub rss_per_call_mib: Option<f64>,
    pub packet_loss_pct: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub asr_model: AsrModel,
    /// The run's wall time, in seconds.
    pub wall_s: f64,
    /// Distinct call errors with how many calls had each.
    pub errors: BTreeMap<String, usize>,
    /// Every voice-to-voice sample, in ms (for the histogram and later analysis).
    pub voice_to_voice_samples_ms: Vec<f64>,
    /// Every barge-in sample, in ms.
    pub barge_in_samples_ms: Vec<f64>,
}

/// The run's context, besides the calls.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub target: String,
    pub concurrency: usize,
    pub turns_per_call: usize,
    pub warmup_calls: usize,
    pub wall: Duration,
    pub server: Option<ServerFigures>,
    pub asr_model: AsrModel,
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Report {
    /// Puts the calls' outcomes together.
    pub fn from_outcomes(outcomes: &[CallOutcome], context: RunContext) -> Self {
        let mut voice_to_voice = Vec::new();
        let mut barge_in = Vec::new();
        let mut errors: BTreeMap<String, usize> = BTreeMap::new();
        let (mut expected, mut received) = (0u64, 0u64);
        let mut jitters = Vec::new();
        let mut turns_spoken = 0;
        for outcome in outcomes {
            turns_spoken += outcome.turns.len();
            voice_to_voice.extend(
                outcome
                    .turns
                    .iter()
                    .filter_map(|t| t.voice_to_voice)
                    .map(millis),
            );
            barge_in.extend(outcome.turns.iter().filter_map(|t| t.barge_in).map(millis));
            if let Some(error) = &outcome.error {
                if errors.len() < MAX_ERRORS || errors.contains_key(&error.to_string()) {
                    *errors.entry(error.to_string()).or_default() += 1;
                }
            }
            if outcome.stream.received > 0 {
                expected += outcome.stream.expected;
                received += outcome.stream.received;
                jitters.push(outcome.stream.jitter_ms);
            }
        }
        let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
        Self {
            target: context.target,
            calls: outcomes.len() - failed,
            calls_failed: failed,
            concurrency: context.concurrency,
            turns_per_call: context.turns_per_call,
            warmup_calls: context.warmup_calls,
            turns_spoken,
            turns_answered: voice_to_voice.len(),
            voice_to_voice_ms: Percentiles::of(&voice_to_voice),
            barge_in_ms: Percentiles::of(&barge_in),
            cpu_per_call_pct: context.server.map(|s| s.cpu_per_call_pct),
            rss_per_call_mib: context.server.map(|s| s.rss_per_call_mib),
            packet_loss_pct: (expected > 0)
                .then(|| expected.saturating_sub(received) as f64 / expected as f64 * 100.0),
            jitter_ms: (!jitters.is_empty())
                .then(|| jitters.iter().sum::<f64>() / jitters.len() as f64),
            asr_model: context.asr_model,
            wall_s: context.wall.as_secs_f64(),
            errors,
            voice_to_voice_samples_ms: voice_to_voice,
            barge_in_samples_ms: barge_in,
        }
    }

    /// Writes the report as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<(), BenchError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| BenchError::Report {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        std::fs::write(path, text + "\n").map_err(|source| BenchError::Io {
            what: format!("writing {}", path.display()),
            source,
        })
    }

    /// Reads a report written by [`Report::write`].
    pub fn read(path: &Path) -> Result<Self, BenchError> {
        let text = std::fs::read_to_string(path).map_err(|source| BenchError::Io {
            what: format!("reading {}", path.display()),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| BenchError::Report {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// The report as text: the calls, the latency figures with histograms, the stream and the
    /// server.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "hotline bench: {} calls to {} ({} at once), {} turns each, {:.1} s",
            self.calls + self.calls_failed,
            self.target,
            self.concurrency,
            self.turns_per_call,
            self.wall_s
        );
        let _ = writeln!(
            out,
            "calls: {} completed, {} failed",
            self.calls, self.calls_failed
        );
        for (error, count) in &self.errors {
            let _ = writeln!(out, "  {count} × {error}");
        }
        let _ = writeln!(
            out,
            "voice-to-voice ({} of {} turns answered): {}",
            self.turns_answered,
            self.turns_spoken,
            percentiles_text(&self.voice_to_voice_ms)
        );
        out.push_str(&render_histogram(
            &histogram(&self.voice_to_voice_samples_ms),
            40,
        ));
        let _ = writeln!(
            out,
            "barge-in (bot talking over the caller; {} turns): {}",
            self.barge_in_ms.count,
            percentiles_text(&self.barge_in_ms)
        );
        out.push_str(&render_histogram(&histogram(&self.barge_in_samples_ms), 40));
        let _ = writeln!(
            out,
            "bot stream: packet loss {}, jitter {}",
            optional(self.packet_loss_pct, "%", 2),
            optional(self.jitter_ms, "ms", 1)
        );
        match (self.cpu_per_call_pct, self.rss_per_call_mib) {
            (Some(cpu), Some(rss)) => {
                let warm = match self.warmup_calls {
                    0 => String::new(),
                    1 => " (after a warm-up call)".to_string(),
                    n => format!(" (after {n} warm-up calls)"),
                };
                let _ = writeln!(
                    out,
                    "server: {cpu:.1} % of one core per call, {rss:+.1} MiB RSS per call{warm}"
                );
            }
            _ => out.push_str("server: not measured (give --server-pid)\n"),
        }
        let _ = writeln!(
            out,
            "ASR model: {} ({} weights)",
            self.asr_model.file, self.asr_model.weights
        );
        out
    }
}

/// `p50 … ms  p95 … ms  p99 … ms`, or `none measured`.
fn percentiles_text(p: &Percentiles) -> String {
    match (p.p50, p.p95, p.p99) {
        (Some(p50), Some(p95), Some(p99)) => {
            format!("p50 {p50:.0} ms  p95 {p95:.0} ms  p99 {p99:.0} ms")
        }
        _ => "none measured".into(),
    }
}

fn optional(value: Option<f64>, unit: &str, decimals: usize) -> String {
    match value {
        Some(v) => format!("{v:.decimals$} {unit}"),
        None => "n/a".into(),
    }
}

/// Two reports side by side: each figure in A and B, and the change from A to B.
pub fn compare(a: &Report, b: &Report, a_name: &str, b_name: &str) -> String {
    // Counts print whole; measured figures with one decimal.
    let number = |v: Option<f64>| match v {
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "n/a".to_string(),
    };
    let count = |v: usize| Some(v as f64);
    let rows: Vec<(&str, Option<f64>, Option<f64>)> = vec![
        ("calls completed", count(a.calls), count(b.calls)),
        ("calls failed", count(a.calls_failed), count(b.calls_failed)),
        (
            "voice-to-voice p50 ms",
            a.voice_to_voice_ms.p50,
            b.voice_to_voice_ms.p50,
        ),
        (
            "voice-to-voice p95 ms",
            a.voice_to_voice_ms.p95,
            b.voice_to_voice_ms.p95,
        ),
        (
            "voice-to-voice p99 ms",
            a.voice_to_voice_ms.p99,
            b.voice_to_voice_ms.p99,
        ),
        (
            "voice-to-voice count",
            count(a.voice_to_voice_ms.count),
            count(b.voice_to_voice_ms.count),
        ),
        ("barge-in p50 ms", a.barge_in_ms.p50, b.barge_in_ms.p50),
        ("barge-in p95 ms", a.barge_in_ms.p95, b.barge_in_ms.p95),
        ("barge-in p99 ms", a.barge_in_ms.p99, b.barge_in_ms.p99),
        (
            "barge-in count",
            count(a.barge_in_ms.count),
            count(b.barge_in_ms.count),
        ),
        (
            "CPU % of a core per call",
            a.cpu_per_call_pct,
            b.cpu_per_call_pct,
        ),
        ("RSS MiB per call", a.rss_per_call_mib, b.rss_per_call_mib),
        ("packet loss %", a.packet_loss_pct, b.packet_loss_pct),
        ("jitter ms", a.jitter_ms, b.jitter_ms),
    ];
    let mut out = String::new();
    let _ = writeln!(out, "A: {a_name}\nB: {b_name}");
    let _ = writeln!(out, "{:<26} {:>12} {:>12}  change", "", "A", "B");
    for (name, x, y) in rows {
        let _ = writeln!(
            out,
            "{name:<26} {:>12} {:>12}  {}",
            number(x),
            number(y),
            change(x, y)
        );
    }
    for (name, model) in [("A", &a.asr_model), ("B", &b.asr_model)] {
        let _ = writeln!(
            out,
            "ASR model {name}: {} ({} weights)",
            model.file, model.weights
        );
    }
    if a.asr_model != b.asr_model {
        out.push_str("note: the runs used different ASR models\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::call::{StreamFigures, TurnMeasure};

    fn outcome(v2v_ms: &[u64], barge_ms: Option<u64>, error: Option<BenchError>) -> CallOutcome {
        let mut turns: Vec<TurnMeasure> = v2v_ms
            .iter()
            .map(|&ms| TurnMeasure {
                voice_to_voice: Some(Duration::from_millis(ms)),
                ..TurnMeasure::default()
            })
            .collect();
        turns.push(TurnMeasure {
            barge_in: barge_ms.map(Duration::from_millis),
            ..TurnMeasure::default()
        });
        CallOutcome {
            error,
            turns,
            stream: StreamFigures {
                expected: 100,
                received: 99,
                jitter_ms: 2.0,
            },
            duration: Duration::from_secs(10),
        }
    }

    fn context() -> RunContext {
        RunContext {
            target: "sip:127.0.0.1:5060".into(),
            concurrency: 2,
            turns_per_call: 3,
            warmup_calls: 0,
            wall: Duration::from_secs(20),
            server: None,
            asr_model: AsrModel::default(),
        }
    }

    #[test]
    fn outcomes_make_one_report() {
        let outcomes = [
            outcome(&[900, 1_100], Some(300), None),
            outcome(&[1_000], None, Some(BenchError::Abandoned)),
        ];
        let report = Report::from_outcomes(&outcomes, context());
        assert_eq!((report.calls, report.calls_failed), (1, 1));
        assert_eq!(report.turns_spoken, 5);
        assert_eq!(report.turns_answered, 3);
        assert_eq!(report.voice_to_voice_ms.p50, Some(1_000.0));
        assert_eq!(report.voice_to_voice_ms.count, 3);
        assert_eq!(report.barge_in_ms.count, 1);
        assert_eq!(report.packet_loss_pct, Some(1.0));
        assert_eq!(report.jitter_ms, Some(2.0));
        assert_eq!(report.cpu_per_call_pct, None);
        assert_eq!(report.errors.values().sum::<usize>(), 1);
        let text = report.render();
        assert!(text.contains("p50 1000 ms"), "{text}");
        assert!(text.contains("server: not measured"), "{text}");
    }

    #[test]
    fn reports_round_trip_and_compare() {
        let report = Report::from_outcomes(&[outcome(&[800], Some(200), None)], context());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        report.write(&path).expect("write");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        assert_eq!(json["voice_to_voice_ms"]["count"], 1);
        assert_eq!(json["calls"], 1);
        assert!(json["cpu_per_call_pct"].is_null());
        assert_eq!(json["asr_model"]["weights"], "unknown");
        let back = Report::read(&path).expect("read back");
        assert_eq!(back, report);
        let mut faster = back.clone();
        faster.voice_to_voice_ms.p50 = Some(600.0);
        let text = compare(&report, &faster, "a.json", "b.json");
        assert!(text.contains("-200.0 (-25.0 %)"), "{text}");
    }

    #[test]
    fn old_reports_still_read() {
        let report: Report = serde_json::from_str(r#"{"calls": 3}"#).expect("defaults");
        assert_eq!(report.calls, 3);
        assert_eq!(report.voice_to_voice_ms.count, 0);
    }

    #[test]
    fn model_names_say_their_weights() {
        let trained = AsrModel::named("tiny.en-q8_0");
        assert_eq!(trained.weights, "trained");
        assert!(trained.file.ends_with(".bin"), "{trained:?}");
        let synthetic = AsrModel::named("models/synthetic-random-weights-ggml-tiny.en.bin");
        assert_eq!(
            (synthetic.file.as_str(), synthetic.weights.as_str()),
            ("synthetic-random-weights-ggml-tiny.en.bin", "synthetic")
        );
        assert_eq!(AsrModel::named("mystery.bin").weights, "unknown");
    }
}
