//! Prometheus metrics for `GET /metrics`: counters and histograms fed by the calls' events.
//!
//! Owns [`Metrics`]: every live call's [`crate::call::core::CallCore`] hands it each event as it
//! publishes it ([`Metrics::observe`]), so the figures come from the same single source as the
//! records. [`Metrics::render`] writes the Prometheus text format (version 0.0.4), with the
//! gauges of the moment (calls in progress, recognition queue) passed in. Sans-IO: no clock,
//! no socket; the web server serves what it renders.
//!
//! | metric | type | from |
//! |---|---|---|
//! | `hotline_calls_total{transport}` | counter | `call_start` |
//! | `hotline_calls_ended_total{reason}` | counter | `hangup` (its stable code) |
//! | `hotline_calls_active` | gauge | the call registry |
//! | `hotline_turn_latency_seconds` | histogram | `turn_latency` `total_ms`: the caller's last voiced frame to the bot's first audio |
//! | `hotline_endpoint_seconds`, `hotline_asr_seconds`, `hotline_dialogue_seconds`, `hotline_tts_first_audio_seconds` | histogram | `turn_latency`'s parts |
//! | `hotline_barge_ins_total` | counter | `bot_audio_end` with `barge_in` |
//! | `hotline_transfers_total{outcome}` | counter | `transfer` (`started`), `transfer_failed` (`failed`) |
//! | `hotline_knowledge_gaps_total` | counter | `knowledge_gap` |
//! | `hotline_errors_total{code}` | counter | `error` (its stable code) |
//! | `hotline_asr_queue` | gauge | recognitions waiting for a worker |
//!
//! Invariant: label values come from stable codes and transport names, never from what a
//! caller says, so the number of series stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::session::{AudioEndReason, CallEvent, EventKind};

/// Histogram bucket bounds, in seconds: fine below a second, where turn-taking lives.
const BUCKETS_S: [f64; 13] = [
    0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Observations at or below each bound (not cumulative; summed when rendered).
    counts: [u64; BUCKETS_S.len()],
    count: u64,
    sum_s: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS_S.iter().position(|&bound| seconds <= bound) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum_s += seconds;
    }
}

#[derive(Debug, Default)]
struct Figures {
    calls: BTreeMap<String, u64>,
    ended: BTreeMap<String, u64>,
    transfers: BTreeMap<&'static str, u64>,
    errors: BTreeMap<String, u64>,
    barge_ins: u64,
    knowledge_gaps: u64,
    turn_latency: Histogram,
    endpoint: Histogram,
    asr: Histogram,
    dialogue: Histogram,
    tts: Histogram,
}

/// The server's metrics. See the module docs.
#[derive(Debug, Default)]
pub struct Metrics {
    figures: Mutex<Figures>,
}

/// What is true at the moment of a scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub calls_active: usize,
    pub asr_queue: usize,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one call event.
    pub fn observe(&self, event: &CallEvent) {
        let mut f = self.figures.lock().unwrap_or_else(|p| p.into_inner());
        match &event.kind {
            EventKind::CallStart { transport, .. } => {
                let transport = transport.clone().unwrap_or_else(|| "unknown".into());
                *f.calls.entry(transport).or_default() += 1;
            }
            EventKind::Hangup { reason } => {
                *f.ended.entry(reason.code().to_string()).or_default() += 1;
            }
            EventKind::TurnLatency {
                endpoint_ms,
                asr_ms,
                dialogue_ms,
                tts_ms,
                total_ms,
                ..
            } => {
                let s = |ms: &u64| *ms as f64 / 1000.0;
                f.turn_latency.observe(s(total_ms));
                f.endpoint.observe(s(endpoint_ms));
                f.asr.observe(s(asr_ms));
                f.dialogue.observe(s(dialogue_ms));
                f.tts.observe(s(tts_ms));
            }
            EventKind::BotAudioEnd {
                reason: AudioEndReason::BargeIn,
                ..
            } => f.barge_ins += 1,
            EventKind::Transfer { .. } => *f.transfers.entry("started").or_default() += 1,
            EventKind::TransferFailed { .. } => *f.transfers.entry("failed").or_default() += 1,
            EventKind::KnowledgeGap { .. } => f.knowledge_gaps += 1,
            EventKind::Error { code, .. } => {
                *f.errors.entry(code.code().to_string()).or_default() += 1;
            }
            _ => {}
        }
    }

    /// The Prometheus text exposition of everything, with `gauges` as they are now.
    pub fn render(&self, gauges: Gauges) -> String {
        let f = self.figures.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        labelled(
            &mut out,
            "hotline_calls_total",
            "counter",
            "Calls started, by transport.",
            "transport",
            f.calls.iter().map(|(k, v)| (k.as_str(), *v)),
        );
        labelled(
            &mut out,
            "hotline_calls_ended_total",
            "counter",
            "Calls ended, by the hang-up's reason code.",
            "reason",
            f.ended.iter().map(|(k, v)| (k.as_str(), *v)),
        );
        single(
            &mut out,
            "hotline_calls_active",
            "gauge",
            "Calls in progress.",
            gauges.calls_active as f64,
        );
        single(
            &mut out,
            "hotline_asr_queue",
            "gauge",
            "Recognitions waiting for a worker.",
            gauges.asr_queue as f64,
        );
        for (name, help, histogram) in [
            (
                "hotline_turn_latency_seconds",
                "From the caller's last voiced frame to the bot's first audio sent, per turn.",
                &f.turn_latency,
            ),
            (
                "hotline_endpoint_seconds",
                "From the caller's last voiced frame to the end-of-turn decision.",
                &f.endpoint,
            ),
            (
                "hotline_asr_seconds",
                "From the end of the turn to its final transcript.",
                &f.asr,
            ),
            (
                "hotline_dialogue_seconds",
                "From the final transcript to the dialogue's reply.",
                &f.dialogue,
            ),
            (
                "hotline_tts_first_audio_seconds",
                "From the reply to its first synthesized audio.",
                &f.tts,
            ),
        ] {
            render_histogram(&mut out, name, help, histogram);
        }
        single(
            &mut out,
            "hotline_barge_ins_total",
            "counter",
            "Bot replies cut by the caller speaking over them.",
            f.barge_ins as f64,
        );
        labelled(
            &mut out,
            "hotline_transfers_total",
            "counter",
            "Transfers to a human, by outcome.",
            "outcome",
            f.transfers.iter().map(|(k, v)| (*k, *v)),
        );
        single(
            &mut out,
            "hotline_knowledge_gaps_total",
            "counter",
            "Caller questions the bot could not answer.",
            f.knowledge_gaps as f64,
        );
        labelled(
            &mut out,
            "hotline_errors_total",
            "counter",
            "Recoverable engine errors, by code.",
            "code",
            f.errors.iter().map(|(k, v)| (k.as_str(), *v)),
        );
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

fn labelled<'a>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = (&'a str, u64)>,
) {
    header(out, name, kind, help);
    for (value, count) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {count}", escape(value));
    }
}

fn render_histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    header(out, name, "histogram", help);
    let mut cumulative = 0;
    for (bound, count) in BUCKETS_S.iter().zip(h.counts) {
        cumulative += count;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", h.sum_s);
    let _ = writeln!(out, "{name}_count {}", h.count);
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{EndReason, TurnId};

    fn event(kind: EventKind) -> CallEvent {
        CallEvent { t_ms: 0, kind }
    }

    #[test]
    fn events_become_counters_and_histograms() {
        let metrics = Metrics::new();
        metrics.observe(&event(EventKind::CallStart {
            call_id: None,
            transport: Some("sip/udp".into()),
            from: None,
            to: None,
            codec: None,
            language: None,
            flow: None,
            started_unix_ms: None,
        }));
        metrics.observe(&event(EventKind::TurnLatency {
            turn: TurnId(1),
            endpoint_ms: 300,
            asr_ms: 250,
            dialogue_ms: 5,
            tts_ms: 40,
            total_ms: 620,
        }));
        metrics.observe(&event(EventKind::BotAudioEnd {
            turn: TurnId(1),
            reason: AudioEndReason::BargeIn,
        }));
        metrics.observe(&event(EventKind::Hangup {
            reason: EndReason::CallerHangup,
        }));
        let text = metrics.render(Gauges {
            calls_active: 2,
            asr_queue: 0,
        });
        for line in [
            "hotline_calls_total{transport=\"sip/udp\"} 1",
            "hotline_calls_ended_total{reason=\"caller.hangup\"} 1",
            "hotline_calls_active 2",
            "hotline_turn_latency_seconds_bucket{le=\"0.6\"} 0",
            "hotline_turn_latency_seconds_bucket{le=\"0.8\"} 1",
            "hotline_turn_latency_seconds_bucket{le=\"+Inf\"} 1",
            "hotline_turn_latency_seconds_count 1",
            "hotline_barge_ins_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
