//! The call store's figures: write throughput (calls/s and events/s, through the store's
//! batched writes, and through the whole writer path from record folders), then the time of
//! the dashboard's and API's queries with a large store.
//!
//! `cargo bench --bench store` (SQLite in a temporary folder, 100 000 calls). Options, by
//! environment: `HOTLINE_BENCH_CALLS` (how many calls to store), `HOTLINE_BENCH_STORE_URL`
//! (another store, e.g. `postgres://...`; it should be empty), `HOTLINE_BENCH_KEEP` (a
//! folder to fill and keep, to time the dashboard's pages over HTTP afterwards).
//!
//! The calls are synthetic but shaped like the demo flows' real ones: a greeting, two to four
//! caller turns with intents, latencies and sometimes a barge-in, a knowledge gap in one call
//! in eight, a transfer in one in five, spread over 30 days, two flows and two languages.

use std::path::Path;
use std::time::{Duration, Instant};

use hotline::call::record::transcript_text;
use hotline::insight::qa::QaConfig;
use hotline::session::{AudioEndReason, CallEvent, EndReason, EventKind, TurnId};
use hotline::store::query::CallFilter;
use hotline::store::writer::StoreWriter;
use hotline::store::{Store, StoredCall};

const DAY_MS: u64 = 86_400_000;

/// A seeded generator, so runs are comparable.
struct Rng(rand::rngs::StdRng);

impl Rng {
    fn new() -> Self {
        Self(rand::SeedableRng::seed_from_u64(0x9e37_79b9_7f4a_7c15))
    }

    fn below(&mut self, n: u64) -> u64 {
        rand::Rng::gen_range(&mut self.0, 0..n)
    }
}

const EN_SAID: [(&str, &str); 6] = [
    ("what is my balance", "balance"),
    ("where is my order", "order_status"),
    ("i need to reset my password", "password_reset"),
    ("is there an outage in my area", "outage"),
    ("how do i set up voicemail", "faq"),
    ("i want to speak to an agent", "human"),
];
const ZH_SAID: [(&str, &str); 4] = [
    ("我的订单到哪了", "order_status"),
    ("怎么退货", "faq"),
    ("退款多久到账", "faq"),
    ("转人工", "human"),
];

fn synthetic_call(i: u64, rng: &mut Rng, now_ms: u64) -> Vec<CallEvent> {
    let zh = i % 4 == 3;
    let (flow, language) = if zh {
        ("ecommerce_zh", "zh")
    } else {
        ("telecom_en", "en")
    };
    let started = now_ms - rng.below(30 * DAY_MS);
    let mut t = 0u64;
    let mut events = vec![CallEvent {
        t_ms: 0,
        kind: EventKind::CallStart {
            call_id: Some(format!("bench-{i}")),
            transport: Some(if i % 3 == 0 { "webrtc" } else { "sip-udp" }.into()),
            from: Some(format!(
                "sip:+1555{:07}@carrier.example",
                rng.below(10_000_000)
            )),
            to: Some("sip:support@hotline.example".into()),
            codec: Some("PCMU".into()),
            language: Some(language.into()),
            flow: Some(flow.into()),
            started_unix_ms: Some(started),
        },
    }];
    let mut at = |t: u64, kind: EventKind| events.push(CallEvent { t_ms: t, kind });
    at(
        t,
        EventKind::BotReply {
            turn: TurnId(0),
            text: "Welcome to Acme Telecom. How can I help you today?".into(),
        },
    );
    at(t + 20, EventKind::BotAudioStart { turn: TurnId(0) });
    t += 3000;
    at(
        t,
        EventKind::BotAudioEnd {
            turn: TurnId(0),
            reason: AudioEndReason::Done,
        },
    );
    let turns = 2 + rng.below(3) as u32;
    let mut transferred = false;
    for turn in 1..=turns {
        let (said, intent) = if zh {
            ZH_SAID[rng.below(ZH_SAID.len() as u64) as usize]
        } else {
            EN_SAID[rng.below(EN_SAID.len() as u64) as usize]
        };
        let turn_id = TurnId(turn);
        t += 500 + rng.below(1500);
        at(t, EventKind::SpeechStart { turn: turn_id });
        t += 1200 + rng.below(1800);
        at(
            t,
            EventKind::SpeechEnd {
                turn: turn_id,
                level_dbfs: Some(-26.0 + rng.below(12) as f32),
                by: Some(hotline::session::TurnEnd::Silence),
            },
        );
        let asr = 300 + rng.below(1200);
        t += 600 + asr;
        at(
            t,
            EventKind::Transcript {
                turn: turn_id,
                text: said.into(),
                is_final: true,
                sensitive: false,
            },
        );
        if i % 8 == 0 && turn == 1 {
            at(
                t,
                EventKind::KnowledgeGap {
                    turn: turn_id,
                    text: if zh {
                        "可以开发票吗".into()
                    } else {
                        "can i bring my own phone".into()
                    },
                },
            );
        } else {
            at(
                t,
                EventKind::Intent {
                    turn: turn_id,
                    name: intent.into(),
                    confidence: 0.6 + (rng.below(40) as f32) / 100.0,
                },
            );
        }
        at(
            t + 2,
            EventKind::BotReply {
                turn: turn_id,
                text: "Here is what I found for you.".into(),
            },
        );
        let tts = 20 + rng.below(200);
        at(t + tts, EventKind::BotAudioStart { turn: turn_id });
        at(
            t + tts,
            EventKind::TurnLatency {
                turn: turn_id,
                endpoint_ms: 600,
                asr_ms: asr,
                dialogue_ms: 2,
                tts_ms: tts,
                total_ms: 600 + asr + 2 + tts,
            },
        );
        t += tts + 2500;
        let barge = rng.below(10) == 0;
        at(
            t,
            EventKind::BotAudioEnd {
                turn: turn_id,
                reason: if barge {
                    AudioEndReason::BargeIn
                } else {
                    AudioEndReason::Done
                },
            },
        );
        if intent == "human" || i % 5 == 0 && turn == turns {
            at(
                t,
                EventKind::Transfer {
                    target: "sip:agents@pbx.example".into(),
                    reason: "caller.request".into(),
                },
            );
            transferred = true;
            break;
        }
    }
    t += 400;
    at(
        t,
        EventKind::Hangup {
            reason: if transferred {
                EndReason::TransferDone
            } else {
                EndReason::CallerHangup
            },
        },
    );
    events
}

fn stored(i: u64, rng: &mut Rng, now_ms: u64, qa: &QaConfig) -> StoredCall {
    let events = synthetic_call(i, rng, now_ms);
    let transcript = transcript_text(&events);
    StoredCall::of_events(
        &format!("bench-{i:07}"),
        Path::new("records"),
        events,
        transcript,
        qa,
    )
}

async fn timed<T, F: std::future::Future<Output = T>>(
    what: &str,
    runs: u32,
    mut f: impl FnMut() -> F,
) -> T {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        last = Some(f().await);
        times.push(start.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    let max = times[times.len() - 1];
    println!(
        "  {what:<52} median {:>8.1} ms   max {:>8.1} ms",
        median.as_secs_f64() * 1000.0,
        max.as_secs_f64() * 1000.0
    );
    last.expect("at least one run")
}

fn main() {
    let calls: u64 = std::env::var("HOTLINE_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let keep = std::env::var_os("HOTLINE_BENCH_KEEP").map(std::path::PathBuf::from);
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = keep.clone().unwrap_or_else(|| scratch.path().to_path_buf());
    std::fs::create_dir_all(&dir).expect("bench folder");
    let url = std::env::var("HOTLINE_BENCH_STORE_URL")
        .unwrap_or_else(|_| format!("sqlite:{}", dir.join("hotline.db").display()));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let qa = QaConfig::default();
    let now_ms = hotline::call::unix_ms_now();
    runtime.block_on(async {
        let store = Store::open(&url).await.expect("open the store");
        println!("store: {url}");

        // 1. The store's batched writes (64 calls a transaction, as the writer does); skipped
        // with HOTLINE_BENCH_QUERIES_ONLY over a store kept from an earlier run.
        let mut rng = Rng::new();
        let queries_only = std::env::var_os("HOTLINE_BENCH_QUERIES_ONLY").is_some();
        let batch = 64u64;
        let start = Instant::now();
        let (mut events, mut gen_time) = (0usize, Duration::ZERO);
        let mut i = 0;
        while i < calls && !queries_only {
            let g = Instant::now();
            let chunk: Vec<StoredCall> = (i..(i + batch).min(calls))
                .map(|n| stored(n, &mut rng, now_ms, &qa))
                .collect();
            gen_time += g.elapsed();
            events += chunk.iter().map(|c| c.events.len()).sum::<usize>();
            store.put_calls(&chunk).await.expect("write a batch");
            i += batch;
        }
        let write = start.elapsed() - gen_time;
        if !queries_only {
            println!(
                "write: {calls} calls, {events} events in {:.1} s: {:.0} calls/s, {:.0} events/s \
             (batches of {batch}; generating them not counted)",
                write.as_secs_f64(),
                calls as f64 / write.as_secs_f64(),
                events as f64 / write.as_secs_f64()
            );
        }

        // 2. The whole writer path: record folders read, checked and written.
        let folders = if queries_only { 0 } else { 2_000u64 };
        let records = dir.join("records");
        for n in 0..folders {
            let call = stored(calls + n, &mut rng, now_ms, &qa);
            let folder = records.join(format!("bench-{:07}", calls + n));
            std::fs::create_dir_all(&folder).expect("folder");
            let lines: Vec<String> = call
                .events
                .iter()
                .map(|e| serde_json::to_string(e).expect("json"))
                .collect();
            std::fs::write(folder.join("events.jsonl"), lines.join("\n") + "\n").expect("write");
            std::fs::write(folder.join("transcript.txt"), &call.transcript).expect("write");
        }
        let writer = StoreWriter::start(store.clone(), qa.clone(), 64, 4096);
        let start = Instant::now();
        let report = writer.catch_up(&records).await.expect("catch up");
        let took = start.elapsed();
        println!(
            "writer path (read folder, QA, write): {} calls in {:.2} s: {:.0} calls/s",
            report.stored,
            took.as_secs_f64(),
            report.stored as f64 / took.as_secs_f64()
        );

        // 3. What the dashboard's and API's pages ask, with the store full.
        let total = calls + folders;
        println!("queries over {total} calls (5 runs each):");
        let all = CallFilter::default();
        let page = timed("call list, newest 50", 5, || store.calls(&all))
            .await
            .expect("calls");
        if !queries_only {
            assert_eq!(page.total as u64, total);
        }
        let by_flow = CallFilter {
            flow: Some("telecom_en".into()),
            outcome: Some("transferred".into()),
            ..CallFilter::default()
        };
        timed("call list, flow + outcome filter", 5, || {
            store.calls(&by_flow)
        })
        .await
        .expect("calls");
        let by_text = CallFilter {
            text: Some("outage".into()),
            ..CallFilter::default()
        };
        timed("call list, transcript text search", 5, || {
            store.calls(&by_text)
        })
        .await
        .expect("calls");
        let by_intent = CallFilter {
            intent: Some("password_reset".into()),
            ..CallFilter::default()
        };
        timed("call list, intent filter", 5, || store.calls(&by_intent))
            .await
            .expect("calls");
        let id = page.calls[0].row.id.clone();
        timed("one call in full", 5, || store.call(&id))
            .await
            .expect("call");
        let a = timed("analytics, all 30 days (daily rollups)", 5, || {
            store.analytics(&all)
        })
        .await
        .expect("analytics");
        timed("analytics, all 30 days, counting the calls", 3, || {
            store.analytics_from_calls(&all)
        })
        .await
        .expect("analytics");
        let by_flow = CallFilter {
            flow: Some("ecommerce_zh".into()),
            ..CallFilter::default()
        };
        timed("analytics, one flow (daily rollups)", 5, || {
            store.analytics(&by_flow)
        })
        .await
        .expect("analytics");
        println!(
            "    (containment {:.3}, transfer {:.3}, p50 {:?} ms, p95 {:?} ms, {} days)",
            a.containment_rate.unwrap_or(0.0),
            a.transfer_rate.unwrap_or(0.0),
            a.latency_p50_ms,
            a.latency_p95_ms,
            a.days.len()
        );
        let day = now_ms as i64 - (now_ms as i64).rem_euclid(DAY_MS as i64);
        let today = CallFilter {
            from: Some(day),
            ..CallFilter::default()
        };
        timed("analytics, today (the overview page)", 5, || {
            store.analytics(&today)
        })
        .await
        .expect("analytics");
        timed("knowledge gaps, read and grouped", 5, || async {
            let gaps = store.gaps(None).await.expect("gaps");
            hotline::insight::gaps::group(&gaps, &[])
        })
        .await;
        if let Some(keep) = keep {
            println!("kept: {}", keep.display());
        }
    });
}
