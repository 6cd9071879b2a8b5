//! The call store, filled by real calls: a SIPp caller asks for customer support and is
//! transferred, and the call must end up whole in the database, in SQLite (the default) and
//! in PostgreSQL: its events as stored on disk, its redacted transcript, its turns, its QA
//! findings (the same as the rules find in its record), and its recording, all through the
//! JSON API, which refuses a request without a valid bearer token. Analytics count the call.
//!
//! SIPp's pcap player writes through a raw socket, so this test needs root (CI runs as root).

mod common;

use std::time::Duration;

use common::hotline::Hotline;
use common::pcap::{support_request_pcap, PT_PCMU};
use common::ports::RtpPorts;
use common::sipp::support_caller;
use common::store::FreshPostgres;
use hotline::insight::qa::{self, QaConfig};
use hotline::insight::CallSummary;
use hotline::session::CallEvent;
use serde_json::Value;

/// A phrase the demo flow never says, so the `required_phrase` rule must find it missing.
const NEVER_SAID: &str = "have a wonderful day";

fn a_sip_call_ends_up_whole_in_the_store(store: &str) {
    let rtp = RtpPorts::free(2);
    let extra = format!("{store}\n[qa]\nrequired_phrases = [\"{NEVER_SAID}\"]\n");
    let hotline = Hotline::start_with_web_and(
        2,
        &extra,
        &format!("port = 0\ncodecs = [\"PCMU\"]\n{}\n", rtp.toml()),
    );
    let token = hotline.api_token();

    // No token, a wrong token: refused, and nothing read.
    for bad in [None, Some("hl_0000_not-a-token"), Some("nonsense")] {
        let (status, body) = hotline.api_get("/api/calls", bad);
        assert_eq!(status, 401, "{bad:?}: {}", String::from_utf8_lossy(&body));
        let body: Value = serde_json::from_slice(&body).expect("JSON error");
        assert!(
            body["error"].as_str().unwrap().starts_with("auth."),
            "{body}"
        );
    }
    // The caller-facing web phone stays public.
    assert_eq!(hotline.api_get("/api/flows", None).0, 200);

    let work = tempfile::tempdir().expect("tempdir");
    let pcap = support_request_pcap(work.path(), PT_PCMU);
    support_caller(hotline.sip_addr(), &pcap)
        .timeout_s(40)
        .run_ok(work.path());
    hotline.one_call(Duration::from_secs(20));
    let dir = hotline.call_dirs().remove(0);
    let listed = hotline.stored_calls(&token, 1, Duration::from_secs(30));
    let id = listed[0]["id"].as_str().expect("id").to_string();
    assert_eq!(
        dir.file_name().unwrap().to_string_lossy(),
        id,
        "the stored call is the record's"
    );
    assert_eq!(listed[0]["transport"], "sip-udp", "{listed:?}");
    assert_eq!(listed[0]["outcome"], "transferred", "{listed:?}");

    let call = hotline.api_json(&format!("/api/calls/{id}"), &token);
    // Every event, as stored on disk (already redacted), in order.
    let on_disk: Vec<CallEvent> = std::fs::read_to_string(dir.join("events.jsonl"))
        .expect("events.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event"))
        .collect();
    let stored: Vec<CallEvent> = call["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| serde_json::from_value(e.clone()).expect("a stored event"))
        .collect();
    assert_eq!(stored, on_disk, "the stored events are the record's");
    assert_eq!(
        call["transcript"].as_str().unwrap(),
        std::fs::read_to_string(dir.join("transcript.txt")).unwrap(),
        "the stored transcript is the record's"
    );
    assert_eq!(call["flow"], "telecom_en", "{call}");
    assert_eq!(call["end_reason"], "transfer.done", "{call}");
    let turns = call["turns"].as_array().expect("turns");
    assert!(
        turns
            .iter()
            .any(|t| t["text"].as_str().unwrap_or("").contains("support")),
        "the bot heard the caller ask for support: {turns:?}"
    );
    // QA ran when it was stored: the same findings as the rules find in the record.
    let summary = CallSummary::of(&on_disk);
    let config = QaConfig {
        required_phrases: vec![NEVER_SAID.into()],
        ..QaConfig::default()
    };
    let expected: Vec<(String, u64)> = qa::check(&config, &on_disk, &summary)
        .into_iter()
        .map(|f| (f.rule.to_string(), f.t_ms))
        .collect();
    let found: Vec<(String, u64)> = call["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["t_ms"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(found, expected, "{call}");
    assert!(
        found.iter().any(|(rule, _)| rule == "required_phrase"),
        "{found:?}"
    );
    // The recording, as kept in the folder.
    let (status, wav) = hotline.api_get(&format!("/api/calls/{id}/recording"), Some(&token));
    assert_eq!(status, 200);
    assert_eq!(
        wav,
        std::fs::read(dir.join("recording.wav")).unwrap(),
        "the recording served is the record's"
    );
    assert_eq!(
        hotline.api_get("/api/calls/no-such-call", Some(&token)).0,
        404
    );

    // Analytics count it; filters narrow the list and name valid values.
    let figures = hotline.api_json("/api/analytics?flow=telecom_en", &token);
    assert_eq!(figures["calls"], 1, "{figures}");
    assert_eq!(figures["transfer_rate"], 1.0, "{figures}");
    assert_eq!(
        figures["transfer_reasons"][0][0], "escalation.request",
        "{figures}"
    );
    let none = hotline.api_json("/api/calls?outcome=contained", &token);
    assert_eq!(none["total"], 0, "{none}");
    let by_text = hotline.api_json("/api/calls?text=SUPPORT", &token);
    assert_eq!(by_text["total"], 1, "{by_text}");
    let (status, body) = hotline.api_get("/api/calls?outcome=won", Some(&token));
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("contained, transferred"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

#[test]
fn a_sip_call_ends_up_whole_in_sqlite() {
    a_sip_call_ends_up_whole_in_the_store("");
}

#[test]
fn a_sip_call_ends_up_whole_in_postgres() {
    let db = FreshPostgres::new();
    a_sip_call_ends_up_whole_in_the_store(&format!("[store]\nurl = {:?}", db.url));
}

/// A call answered but never acknowledged (the caller's ACK never comes) is not a call: no
/// record, nothing stored. The store lists only the real call after it.
#[test]
fn a_call_that_never_connected_is_not_stored() {
    let rtp = RtpPorts::free(2);
    let hotline = Hotline::start_with_web_and(
        2,
        "",
        &format!(
            "port = 0\ncodecs = [\"PCMU\"]\n{}\n[sip.limits]\nack_timeout_ms = 1000\n",
            rtp.toml()
        ),
    );
    let token = hotline.api_token();
    // An INVITE, and then nothing: no ACK to the 200.
    let sip = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sip.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = sip.local_addr().unwrap().port();
    let target = hotline.sip_addr();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0\r\n";
    let invite = format!(
        "INVITE sip:bot@{target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-noack\r\n\
         From: <sip:tester@127.0.0.1:{port}>;tag=noack\r\nTo: <sip:bot@{target}>\r\nCall-ID: no-ack-1\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:tester@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    sip.send_to(invite.as_bytes(), &target)
        .expect("send INVITE");
    let mut buffer = [0u8; 8192];
    let answered = (0..10).any(|_| {
        sip.recv_from(&mut buffer)
            .is_ok_and(|(n, _)| String::from_utf8_lossy(&buffer[..n]).starts_with("SIP/2.0 200"))
    });
    assert!(answered, "hotline answered the INVITE");
    // Past the ACK timeout (1 s) and the 200's retransmissions.
    std::thread::sleep(Duration::from_secs(3));

    // A real call after it: the store has that one only.
    let work = tempfile::tempdir().expect("tempdir");
    let pcap = support_request_pcap(work.path(), PT_PCMU);
    support_caller(hotline.sip_addr(), &pcap)
        .timeout_s(40)
        .run_ok(work.path());
    let stored = hotline.stored_calls(&token, 1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    let page = hotline.api_json("/api/calls", &token);
    assert_eq!(page["total"], 1, "only the call that connected: {page}");
    assert_eq!(stored[0]["outcome"], "transferred", "{stored:?}");
    assert_eq!(
        hotline.call_dirs().len(),
        1,
        "no record for the unacknowledged call"
    );
}

/// What the dashboard and the CLI do to a store, on each database: users and their roles,
/// sign-in sessions (a removed user's session ends), API tokens (a revoked one no longer
/// opens the API), a knowledge-gap answer, and retention deleting old calls with everything
/// stored for them.
fn accounts_sessions_tokens_and_retention(url: &str) {
    use hotline::insight::gaps::GapAnswer;
    use hotline::session::{EndReason, EventKind};
    use hotline::store::access::Role;
    use hotline::store::{Store, StoredCall};

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = Store::open(url).await.expect("open the store");
        // Opening again finds the schema up to date.
        let store2 = Store::open(url).await.expect("open the store again");

        store
            .put_user("ada", Role::Admin, "correct horse battery")
            .await
            .unwrap();
        assert!(store.put_user("bob", Role::Agent, "short").await.is_err());
        assert_eq!(
            store
                .verify_user("ada", "correct horse battery")
                .await
                .unwrap(),
            Some(Role::Admin)
        );
        assert_eq!(store.verify_user("ada", "wrong").await.unwrap(), None);
        assert_eq!(store.verify_user("nobody", "x").await.unwrap(), None);
        // A role changed later counts for the sessions already open.
        let (secret, session) = store.create_session("ada", Role::Admin).await.unwrap();
        assert_eq!(session.role, Role::Admin);
        store
            .put_user("ada", Role::Supervisor, "correct horse battery")
            .await
            .unwrap();
        let seen = store2
            .session(&secret)
            .await
            .unwrap()
            .expect("a live session");
        assert_eq!(seen.role, Role::Supervisor);
        assert_eq!(seen.csrf, session.csrf);
        assert!(store.session("not-a-session").await.unwrap().is_none());
        assert!(store.remove_user("ada").await.unwrap());
        assert!(
            store.session(&secret).await.unwrap().is_none(),
            "a removed user is signed out"
        );

        let (token, secret) = store.create_token("reports").await.unwrap();
        assert!(store.check_token(&secret).await.unwrap().is_some());
        assert!(store.check_token("hl_x_y").await.unwrap().is_none());
        let listed = store.tokens().await.unwrap();
        assert!(listed[0].last_used_at.is_some(), "use is noted: {listed:?}");
        assert!(store.revoke_token(&token.id).await.unwrap());
        assert!(store.check_token(&secret).await.unwrap().is_none());

        let answer = GapAnswer {
            flow: "telecom_en".into(),
            question: "can i bring my own phone".into(),
            answer: "Yes.".into(),
            answered_by: "sam".into(),
            answered_at: 1,
        };
        store.put_gap_answer("k1", &answer).await.unwrap();
        store.put_gap_answer("k1", &answer).await.unwrap();
        assert_eq!(store.gap_answers().await.unwrap(), vec![answer]);

        // Two calls, 40 and 2 days old; retention at 30 days keeps the newer.
        let now = hotline::call::unix_ms_now();
        let day = 86_400_000u64;
        let call = |id: &str, started: u64| {
            let events = vec![
                CallEvent {
                    t_ms: 0,
                    kind: EventKind::CallStart {
                        call_id: Some(id.into()),
                        transport: Some("sip-udp".into()),
                        from: None,
                        to: None,
                        codec: None,
                        language: Some("en".into()),
                        flow: Some("telecom_en".into()),
                        started_unix_ms: Some(started),
                    },
                },
                CallEvent {
                    t_ms: 1000,
                    kind: EventKind::KnowledgeGap {
                        turn: hotline::session::TurnId(1),
                        text: "can i bring my own phone".into(),
                    },
                },
                CallEvent {
                    t_ms: 2000,
                    kind: EventKind::Hangup {
                        reason: EndReason::CallerHangup,
                    },
                },
            ];
            StoredCall::of_events(
                id,
                std::path::Path::new(id),
                events,
                String::new(),
                &QaConfig::default(),
            )
        };
        let calls = [call("old", now - 40 * day), call("new", now - 2 * day)];
        assert_eq!(store.put_calls(&calls).await.unwrap(), 2);
        assert_eq!(store.put_calls(&calls).await.unwrap(), 0, "stored once");
        assert_eq!(store.gaps(None).await.unwrap().len(), 2);
        // An agent's wrap-up of each call, kept with it and deleted with it.
        for id in ["old", "new"] {
            store
                .save_disposition(id, "ann", "resolved", "Caller's bill explained.")
                .await
                .unwrap();
        }
        let kept = store.dispositions("new").await.unwrap();
        assert_eq!(
            kept.iter()
                .map(|d| (d.agent.as_str(), d.disposition.as_str(), d.notes.as_str()))
                .collect::<Vec<_>>(),
            vec![("ann", "resolved", "Caller's bill explained.")]
        );
        assert_eq!(store.delete_before(now - 30 * day).await.unwrap(), 1);
        assert!(
            store.dispositions("old").await.unwrap().is_empty(),
            "the wrap-up goes with its call"
        );
        assert_eq!(store.dispositions("new").await.unwrap().len(), 1);
        let ids = store.call_ids().await.unwrap();
        assert!(ids.contains("new") && !ids.contains("old"), "{ids:?}");
        assert_eq!(store.gaps(None).await.unwrap().len(), 1, "its rows go too");
        assert!(store.call("old").await.unwrap().is_none());
    });
}

#[test]
fn accounts_sessions_tokens_and_retention_in_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    accounts_sessions_tokens_and_retention(&format!(
        "sqlite:{}",
        dir.path().join("hotline.db").display()
    ));
}

#[test]
fn accounts_sessions_tokens_and_retention_in_postgres() {
    let db = FreshPostgres::new();
    accounts_sessions_tokens_and_retention(&db.url);
}

/// Analytics read from the daily rollups give exactly what counting the calls gives, for every
/// filter the rollups answer, after calls over several days, flows and languages (and after
/// retention deleted the oldest days from both).
fn rollups_agree_with_counting_the_calls(url: &str) {
    use hotline::session::{AudioEndReason, EndReason, EventKind, TurnId};
    use hotline::store::query::CallFilter;
    use hotline::store::{Store, StoredCall};
    use rand::{Rng, SeedableRng};

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let day = 86_400_000u64;
    let today = hotline::call::unix_ms_now() / day * day;
    let mut calls = Vec::new();
    for i in 0..240u64 {
        let zh = i % 3 == 0;
        let started = today - rng.gen_range(0..6) * day + rng.gen_range(0..day / 2);
        let mut events = vec![CallEvent {
            t_ms: 0,
            kind: EventKind::CallStart {
                call_id: Some(format!("c{i}")),
                transport: Some("sip-udp".into()),
                from: None,
                to: None,
                codec: None,
                language: Some(if zh { "zh" } else { "en" }.into()),
                flow: Some(if zh { "ecommerce_zh" } else { "telecom_en" }.into()),
                started_unix_ms: Some(started),
            },
        }];
        let mut t = 1000;
        // The first call's turns have no intent (so a NULL confidence is the first bound).
        let turns = if i == 0 { 2 } else { rng.gen_range(0..4u32) };
        for turn in 1..=turns {
            t += 3000;
            let id = TurnId(turn);
            events.push(CallEvent {
                t_ms: t,
                kind: EventKind::Transcript {
                    turn: id,
                    text: "words".into(),
                    is_final: true,
                    sensitive: false,
                },
            });
            if i > 0 && rng.gen_bool(0.8) {
                let intents = ["balance", "faq", "order_status", "human"];
                events.push(CallEvent {
                    t_ms: t,
                    kind: EventKind::Intent {
                        turn: id,
                        name: intents[rng.gen_range(0..intents.len())].into(),
                        confidence: rng.gen_range(0.3..1.0),
                    },
                });
            }
            if rng.gen_bool(0.5) {
                events.push(CallEvent {
                    t_ms: t,
                    kind: EventKind::Slot {
                        turn: id,
                        name: "csat".into(),
                        value: rng.gen_range(1..6).to_string(),
                        sensitive: false,
                    },
                });
            }
            let total_ms = rng.gen_range(300..3000);
            events.push(CallEvent {
                t_ms: t + 10,
                kind: EventKind::TurnLatency {
                    turn: id,
                    endpoint_ms: 600,
                    asr_ms: 100,
                    dialogue_ms: 1,
                    tts_ms: 10,
                    total_ms,
                },
            });
            if rng.gen_bool(0.2) {
                events.push(CallEvent {
                    t_ms: t + 20,
                    kind: EventKind::BotAudioEnd {
                        turn: id,
                        reason: AudioEndReason::BargeIn,
                    },
                });
            }
        }
        if rng.gen_bool(0.3) {
            events.push(CallEvent {
                t_ms: t + 100,
                kind: EventKind::Transfer {
                    target: "sip:agents@pbx".into(),
                    reason: ["caller.request", "escalation.no_match"][rng.gen_range(0..2)].into(),
                },
            });
        }
        let reasons = [
            EndReason::CallerHangup,
            EndReason::NoMatchMax,
            EndReason::ServerCrash,
        ];
        events.push(CallEvent {
            t_ms: t + 500,
            kind: EventKind::Hangup {
                reason: reasons[rng.gen_range(0..reasons.len())].clone(),
            },
        });
        let id = format!("c{i:04}");
        calls.push(StoredCall::of_events(
            &id,
            std::path::Path::new(&id),
            events,
            String::new(),
            &QaConfig::default(),
        ));
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = Store::open(url).await.expect("open the store");
        for batch in calls.chunks(64) {
            store.put_calls(batch).await.expect("store calls");
        }
        let day = day as i64;
        let today = today as i64;
        let filters = |label: &str| -> Vec<(String, CallFilter)> {
            let mut out = vec![(format!("{label}: all"), CallFilter::default())];
            for flow in ["telecom_en", "ecommerce_zh"] {
                out.push((
                    format!("{label}: {flow}"),
                    CallFilter {
                        flow: Some(flow.into()),
                        ..CallFilter::default()
                    },
                ));
            }
            out.push((
                format!("{label}: zh, three days"),
                CallFilter {
                    language: Some("zh".into()),
                    from: Some(today - 3 * day),
                    to: Some(today),
                    ..CallFilter::default()
                },
            ));
            out.push((
                format!("{label}: today"),
                CallFilter {
                    from: Some(today),
                    ..CallFilter::default()
                },
            ));
            out
        };
        let check = |label: &'static str| {
            let store = store.clone();
            async move {
                for (what, f) in filters(label) {
                    let rolled = store.analytics_from_rollups(&f).await.expect("analytics");
                    let counted = store.analytics_from_calls(&f).await.expect("analytics");
                    assert_eq!(rolled, counted, "{what}");
                }
            }
        };
        check("stored").await;
        let all = store.analytics(&CallFilter::default()).await.unwrap();
        assert_eq!(all.calls, 240);
        assert!(
            all.top_intents.len() >= 3 && all.csat_answers > 0,
            "{all:?}"
        );
        // Retention at a day boundary removes the same calls from both.
        store.delete_before((today - 3 * day) as u64).await.unwrap();
        check("after retention").await;
        // An outcome is no filter the rollups answer.
        let by_outcome = CallFilter {
            outcome: Some("contained".into()),
            ..CallFilter::default()
        };
        assert!(store.analytics_from_rollups(&by_outcome).await.is_err());
        assert!(store.analytics(&CallFilter::default()).await.unwrap().calls < 240);
    });
}

#[test]
fn rollups_agree_with_counting_the_calls_in_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    rollups_agree_with_counting_the_calls(&format!(
        "sqlite:{}",
        dir.path().join("hotline.db").display()
    ));
}

#[test]
fn rollups_agree_with_counting_the_calls_in_postgres() {
    let db = FreshPostgres::new();
    rollups_agree_with_counting_the_calls(&db.url);
}
