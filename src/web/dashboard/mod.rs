//! The dashboard at `/dashboard`, for supervisors and admins, rendered on the server (askama
//! templates in `assets/dashboard`, compiled in; one small script for the live panel and the
//! recording's channels; no build step).
//!
//! | page | shows | least role |
//! |---|---|---|
//! | `/dashboard` | today's figures, and the live calls with their latest lines | supervisor |
//! | `/dashboard/calls` | call history: date, flow, outcome, intent, QA severity, text filters | supervisor |
//! | `/dashboard/calls/{id}` | a call: timeline, turns and latencies, transcript, QA findings, recording | supervisor |
//! | `/dashboard/analytics` | containment, transfers, abandonment, handling time, CSAT, intents, KB hits, latency, barge-ins; charts | supervisor |
//! | `/dashboard/gaps` | knowledge gaps grouped, with the answer form; `/dashboard/gaps.csv` | supervisor |
//! | `/dashboard/admin` | users and API tokens | admin |
//! | `/dashboard/me` | who is signed in; sign out | agent |
//!
//! Sign-in, sessions, CSRF and roles are [`auth`]'s. Every page is sent with a strict content
//! security policy (scripts and styles from this server only), `no-store` and framing denied.

pub mod auth;
pub mod charts;
pub mod live;

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::insight::calendar::{date_text, date_time_text, parse_date};
use crate::insight::gaps::{self, GapAnswer, GapGroup};
use crate::insight::Outcome;
use crate::store::access::Role;
use crate::store::query::{Analytics, CallFilter, CallListItem};
use crate::store::StoreError;
use crate::web::WebState;

use auth::{check_csrf, failed, message, require};

const SCRIPT: &str = include_str!("../../../assets/dashboard/dashboard.js");
const STYLE: &str = include_str!("../../../assets/dashboard/dashboard.css");
const PAGE_SIZE: i64 = 50;

/// The dashboard's routes (and `/login`, `/logout`).
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/dashboard", get(overview))
        .route("/dashboard/live", get(live_panel))
        .route("/dashboard/calls", get(calls))
        .route("/dashboard/calls/{id}", get(call))
        .route("/dashboard/calls/{id}/recording", get(recording))
        .route("/dashboard/analytics", get(analytics))
        .route("/dashboard/gaps", get(gap_list))
        .route("/dashboard/gaps.csv", get(gaps_csv))
        .route("/dashboard/gaps/answer", post(answer_gap))
        .route("/dashboard/admin", get(admin))
        .route("/dashboard/me", get(me))
        .route("/dashboard/static/dashboard.js", get(script))
        .route("/dashboard/static/dashboard.css", get(style))
}

/// A rendered page with the dashboard's headers; a template error is a 500 page.
pub(crate) fn page(status: StatusCode, html: askama::Result<String>) -> Response {
    let (status, body) = match html {
        Ok(html) => (status, html),
        Err(e) => {
            tracing::error!("dashboard: a page did not render: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>This page could not be shown; see the server's log.</p>"
                    .to_string(),
            )
        }
    };
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; \
             script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A file built into the binary (a page's script or style), revalidated on every load.
pub(crate) fn static_text(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The MIME type of the consoles' scripts.
pub(crate) const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

async fn script() -> Response {
    static_text(JAVASCRIPT, SCRIPT)
}

async fn style() -> Response {
    static_text("text/css; charset=utf-8", STYLE)
}

/// The page shown when one is signed in but not allowed, or a message.
#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage<'a> {
    pub title: &'a str,
    pub text: &'a str,
    pub user: &'a str,
    pub role: &'a str,
    pub csrf: &'a str,
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1} %", v * 100.0))
}

fn ms(v: Option<i64>) -> String {
    v.map_or("–".into(), |v| format!("{v} ms"))
}

fn seconds(ms: i64) -> String {
    let s = ms / 1000;
    if s >= 60 {
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// The figures every analytics view shows as tiles.
struct Tiles {
    calls: i64,
    containment: String,
    transfer: String,
    abandonment: String,
    handling: String,
    csat: String,
    kb_hits: String,
    barge_ins: String,
    p50: String,
    p95: String,
    p99: String,
}

impl Tiles {
    fn of(a: &Analytics) -> Self {
        Self {
            calls: a.calls,
            containment: pct(a.containment_rate),
            transfer: pct(a.transfer_rate),
            abandonment: pct(a.abandonment_rate),
            handling: a
                .average_handling_s
                .map_or("–".into(), |s| seconds((s * 1000.0) as i64)),
            csat: a.csat_average.map_or("–".into(), |c| {
                format!("{c:.2} / 5 ({} answers)", a.csat_answers)
            }),
            kb_hits: pct(a.kb_hit_rate),
            barge_ins: pct(a.barge_in_rate),
            p50: ms(a.latency_p50_ms),
            p95: ms(a.latency_p95_ms),
            p99: ms(a.latency_p99_ms),
        }
    }
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage<'a> {
    user: &'a str,
    role: &'a str,
    csrf: &'a str,
    today: String,
    tiles: Tiles,
}

async fn overview(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let (store, session) = match require(&state, &headers, Role::Supervisor, "/dashboard").await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let now = crate::call::unix_ms_now() as i64;
    let day = now - now.rem_euclid(86_400_000);
    let figures = match store
        .analytics(&CallFilter {
            from: Some(day),
            ..CallFilter::default()
        })
        .await
    {
        Ok(f) => f,
        Err(e) => return failed("reading the store", e),
    };
    page(
        StatusCode::OK,
        OverviewPage {
            user: &session.user,
            role: session.role.code(),
            csrf: &session.csrf,
            today: date_text(now),
            tiles: Tiles::of(&figures),
        }
        .render(),
    )
}

struct LiveRow {
    id: String,
    transport: String,
    from: String,
    flow: String,
    elapsed: String,
    lines: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "live.html")]
struct LivePanel {
    calls: Vec<LiveRow>,
}

/// `GET /dashboard/live`: the live calls panel (a fragment the overview reloads).
async fn live_panel(State(state): State<WebState>, headers: HeaderMap) -> Response {
    if let Err(r) = require(&state, &headers, Role::Supervisor, "/dashboard").await {
        return r.into_response();
    }
    let ids = state.engines.live_call_ids();
    let dir = state.engines.config.server.records_dir.clone();
    let read = tokio::task::spawn_blocking(move || {
        ids.iter()
            .filter_map(|id| live::read(&dir, id))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let now = crate::call::unix_ms_now();
    let calls = read
        .into_iter()
        .map(|c| LiveRow {
            elapsed: if c.started_unix_ms > 0 {
                seconds(now.saturating_sub(c.started_unix_ms) as i64)
            } else {
                String::new()
            },
            id: c.id,
            transport: c.transport,
            from: c.from,
            flow: c.flow,
            lines: c.lines,
        })
        .collect();
    page(StatusCode::OK, LivePanel { calls }.render())
}

/// The call list's form, as the browser sends it (dates as `YYYY-MM-DD`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CallsQuery {
    from: String,
    to: String,
    flow: String,
    outcome: String,
    intent: String,
    severity: String,
    text: String,
    page: i64,
}

impl CallsQuery {
    fn filter(&self) -> Result<CallFilter, String> {
        let date = |key: &str, v: &str| -> Result<Option<i64>, String> {
            if v.trim().is_empty() {
                return Ok(None);
            }
            parse_date(v)
                .map(Some)
                .ok_or_else(|| format!("{key}: `{v}` is not a date (YYYY-MM-DD)"))
        };
        let some = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_string());
        Ok(CallFilter {
            from: date("from", &self.from)?,
            // The "to" day is included.
            to: date("to", &self.to)?.map(|d| d + 86_400_000),
            flow: some(&self.flow),
            language: None,
            outcome: some(&self.outcome),
            intent: some(&self.intent),
            severity: some(&self.severity),
            text: some(&self.text),
            limit: Some(PAGE_SIZE),
            offset: Some(self.page.max(0) * PAGE_SIZE),
        })
    }

    /// The query string of this filter at another page.
    fn at_page(&self, page: i64) -> String {
        let pairs = [
            ("from", &self.from),
            ("to", &self.to),
            ("flow", &self.flow),
            ("outcome", &self.outcome),
            ("intent", &self.intent),
            ("severity", &self.severity),
            ("text", &self.text),
        ];
        let mut q: Vec<String> = pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect();
        q.push(format!("page={page}"));
        q.join("&")
    }
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct CallLine {
    id: String,
    started: String,
    duration: String,
    transport: String,
    caller: String,
    flow: String,
    outcome: String,
    qa: String,
    turns: i64,
}

impl CallLine {
    fn of(c: &CallListItem) -> Self {
        Self {
            id: c.row.id.clone(),
            started: date_time_text(c.row.started_at),
            duration: seconds(c.row.duration_ms),
            transport: c.row.transport.clone(),
            caller: c.row.caller.clone(),
            flow: c.row.flow.clone(),
            outcome: c.row.outcome.clone(),
            qa: c.qa_worst.unwrap_or("").to_string(),
            turns: c.row.turns,
        }
    }
}

#[derive(Template)]
#[template(path = "calls.html")]
struct CallsPage<'a> {
    user: &'a str,
    role: &'a str,
    csrf: &'a str,
    q: &'a CallsQuery,
    flows: Vec<String>,
    outcomes: Vec<&'static str>,
    severities: Vec<&'static str>,
    error: String,
    total: i64,
    calls: Vec<CallLine>,
    shown_from: i64,
    shown_to: i64,
    prev: Option<String>,
    next: Option<String>,
}

fn flow_names(state: &WebState) -> Vec<String> {
    let mut names: Vec<String> = state
        .engines
        .dialogue
        .flows()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.sort();
    names
}

async fn calls(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<CallsQuery>,
) -> Response {
    let (store, session) =
        match require(&state, &headers, Role::Supervisor, "/dashboard/calls").await {
            Ok(s) => s,
            Err(r) => return r.into_response(),
        };
    let mut error = String::new();
    let (total, rows) = match q.filter() {
        Ok(filter) => match store.calls(&filter).await {
            Ok(page) => (page.total, page.calls),
            Err(StoreError::Access(m)) => {
                error = m;
                (0, Vec::new())
            }
            Err(e) => return failed("reading the store", e),
        },
        Err(m) => {
            error = m;
            (0, Vec::new())
        }
    };
    let offset = q.page.max(0) * PAGE_SIZE;
    let html = CallsPage {
        user: &session.user,
        role: session.role.code(),
        csrf: &session.csrf,
        q: &q,
        flows: flow_names(&state),
        outcomes: Outcome::ALL.iter().map(|o| o.code()).collect(),
        severities: vec!["info", "minor", "major", "critical"],
        error,
        total,
        shown_from: if rows.is_empty() { 0 } else { offset + 1 },
        shown_to: offset + rows.len() as i64,
        calls: rows.iter().map(CallLine::of).collect(),
        prev: (q.page > 0).then(|| q.at_page(q.page - 1)),
        next: (offset + PAGE_SIZE < total).then(|| q.at_page(q.page + 1)),
    }
    .render();
    page(StatusCode::OK, html)
}

struct TimelineRow {
    at: String,
    kind: String,
    detail: String,
}

struct TurnLine {
    at: String,
    text: String,
    intent: String,
    latency: String,
    sentiment: String,
    barged_in: bool,
}

#[derive(Template)]
#[template(path = "call.html")]
struct CallPage<'a> {
    user: &'a str,
    role: &'a str,
    csrf: &'a str,
    line: CallLine,
    end_reason: String,
    csat: String,
    transcript: String,
    has_recording: bool,
    findings: Vec<(String, String, String, String)>,
    turns: Vec<TurnLine>,
    slots: Vec<(String, String)>,
    gaps: Vec<String>,
    /// What agents saved after the call: (agent, disposition, notes).
    wrap_ups: Vec<(String, String, String)>,
    timeline: Vec<TimelineRow>,
}

fn clock(t_ms: i64) -> String {
    format!(
        "{:02}:{:04.1}",
        t_ms / 60_000,
        (t_ms % 60_000) as f64 / 1000.0
    )
}

/// An event's fields other than its time and type, as `key=value` pairs.
fn event_detail(event: &serde_json::Value) -> String {
    let Some(fields) = event.as_object() else {
        return String::new();
    };
    fields
        .iter()
        .filter(|(k, _)| *k != "t_ms" && *k != "type")
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            v => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join("  ")
}

async fn call(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/dashboard/calls/{id}");
    let (store, session) = match require(&state, &headers, Role::Supervisor, &path).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let c = match store.call(&id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return message(
                StatusCode::NOT_FOUND,
                "No such call",
                &format!("No stored call has the id {id}."),
                Some(&session),
            )
        }
        Err(e) => return failed("reading the store", e),
    };
    let wrap_ups = match store.dispositions(&id).await {
        Ok(d) => d
            .into_iter()
            .map(|d| (d.agent, d.disposition, d.notes))
            .collect(),
        Err(e) => return failed("reading the store", e),
    };
    let line = CallLine::of(&CallListItem {
        row: c.row.clone(),
        qa_worst: c.qa_worst,
    });
    let html = CallPage {
        user: &session.user,
        role: session.role.code(),
        csrf: &session.csrf,
        line,
        end_reason: c.row.end_reason.clone(),
        csat: c.row.csat.map_or("–".into(), |v| format!("{v} / 5")),
        transcript: c.transcript.clone(),
        has_recording: c.has_recording,
        findings: c
            .findings
            .iter()
            .map(|f| {
                (
                    clock(f.t_ms),
                    f.severity.clone(),
                    f.rule.clone(),
                    f.detail.clone(),
                )
            })
            .collect(),
        turns: c
            .turns
            .iter()
            .map(|t| TurnLine {
                at: clock(t.t_ms),
                text: t.text.clone(),
                intent: match (&t.intent, t.confidence) {
                    (Some(i), Some(c)) => format!("{i} ({c:.2})"),
                    (Some(i), None) => i.clone(),
                    _ => "no match".into(),
                },
                latency: ms(t.latency_ms),
                sentiment: format!("{:+.2}", t.sentiment),
                barged_in: t.barged_in != 0,
            })
            .collect(),
        slots: c.slots.clone(),
        gaps: c.knowledge_gaps.clone(),
        wrap_ups,
        timeline: c
            .events
            .iter()
            .map(|e| TimelineRow {
                at: clock(e["t_ms"].as_i64().unwrap_or(0)),
                kind: e["type"].as_str().unwrap_or("").to_string(),
                detail: event_detail(e),
            })
            .collect(),
    }
    .render();
    page(StatusCode::OK, html)
}

/// `GET /dashboard/calls/{id}/recording`: the stereo WAV, for the page's player.
async fn recording(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/dashboard/calls/{id}");
    let (store, _) = match require(&state, &headers, Role::Supervisor, &path).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    match crate::web::api::recording_response(&store, &id).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AnalyticsQuery {
    from: String,
    to: String,
    flow: String,
    language: String,
}

#[derive(Template)]
#[template(path = "analytics.html")]
struct AnalyticsPage<'a> {
    user: &'a str,
    role: &'a str,
    csrf: &'a str,
    q: &'a AnalyticsQuery,
    flows: Vec<String>,
    error: String,
    tiles: Tiles,
    outcomes: Vec<(String, i64)>,
    latency_chart: String,
    days_chart: String,
    intents_chart: String,
    confidence_chart: String,
    reasons_chart: String,
    days: Vec<(String, i64, String, String, String)>,
}

async fn analytics(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<AnalyticsQuery>,
) -> Response {
    let (store, session) =
        match require(&state, &headers, Role::Supervisor, "/dashboard/analytics").await {
            Ok(s) => s,
            Err(r) => return r.into_response(),
        };
    let calls_q = CallsQuery {
        from: q.from.clone(),
        to: q.to.clone(),
        flow: q.flow.clone(),
        ..CallsQuery::default()
    };
    let mut error = String::new();
    let mut filter = match calls_q.filter() {
        Ok(f) => f,
        Err(m) => {
            error = m;
            CallFilter::default()
        }
    };
    filter.language = (!q.language.trim().is_empty()).then(|| q.language.trim().to_string());
    let a = match store.analytics(&filter).await {
        Ok(a) => a,
        Err(e) => return failed("reading the store", e),
    };
    // Every bucket from 0 to the slowest turn's, so the bars' widths are comparable.
    let slowest = a.latency_histogram.last().map_or(0, |(lower, _)| *lower);
    let latency: Vec<(String, f64)> = (0..=slowest / 50)
        .map(|b| {
            let lower = b * 50;
            let n = a
                .latency_histogram
                .iter()
                .find(|(l, _)| *l == lower)
                .map_or(0, |(_, n)| *n);
            (format!("{lower}"), n as f64)
        })
        .filter(|_| !a.latency_histogram.is_empty())
        .collect();
    let every = (latency.len() / 10).max(1);
    let days: Vec<(String, Vec<(&'static str, i64)>)> = a
        .days
        .iter()
        .map(|d| {
            (
                date_text(d.day),
                vec![
                    ("contained", d.contained),
                    ("transferred", d.transferred),
                    ("abandoned", d.abandoned),
                    ("other", d.calls - d.contained - d.transferred - d.abandoned),
                ],
            )
        })
        .collect();
    let confidence: Vec<(String, f64)> = a
        .confidence_histogram
        .iter()
        .map(|(lower, n)| (format!("{lower:.1}"), *n as f64))
        .collect();
    let html = AnalyticsPage {
        user: &session.user,
        role: session.role.code(),
        csrf: &session.csrf,
        q: &q,
        flows: flow_names(&state),
        error,
        tiles: Tiles::of(&a),
        outcomes: a.outcomes.clone(),
        latency_chart: charts::bars(
            "Voice-to-voice latency (ms, 50 ms buckets)",
            &latency,
            every,
        ),
        days_chart: charts::stacked("Calls per day by outcome", &days),
        intents_chart: charts::ranking("Top intents", &a.top_intents),
        confidence_chart: charts::bars("Intent confidence", &confidence, 1),
        reasons_chart: charts::ranking("Transfer reasons", &a.transfer_reasons),
        days: a
            .days
            .iter()
            .map(|d| {
                (
                    date_text(d.day),
                    d.calls,
                    pct((d.calls - d.abandoned > 0)
                        .then(|| d.contained as f64 / (d.calls - d.abandoned) as f64)),
                    ms(d.latency_p50_ms),
                    ms(d.latency_p95_ms),
                )
            })
            .collect(),
    }
    .render();
    page(StatusCode::OK, html)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GapsQuery {
    flow: String,
    /// `open` (default) or `all`.
    show: String,
    done: String,
}

#[derive(Template)]
#[template(path = "gaps.html")]
struct GapsPage<'a> {
    user: &'a str,
    role: &'a str,
    csrf: &'a str,
    q: &'a GapsQuery,
    flows: Vec<String>,
    groups: Vec<GapGroup>,
    open: usize,
    answered: usize,
    notice: String,
}

async fn gap_groups(store: &crate::store::Store, flow: &str) -> Result<Vec<GapGroup>, StoreError> {
    let gaps = store.gaps(Some(flow)).await?;
    let answers = store.gap_answers().await?;
    Ok(gaps::group(&gaps, &answers))
}

async fn gap_list(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<GapsQuery>,
) -> Response {
    let (store, session) =
        match require(&state, &headers, Role::Supervisor, "/dashboard/gaps").await {
            Ok(s) => s,
            Err(r) => return r.into_response(),
        };
    let groups = match gap_groups(&store, &q.flow).await {
        Ok(g) => g,
        Err(e) => return failed("reading the store", e),
    };
    let answered = groups.iter().filter(|g| g.answer.is_some()).count();
    let open = groups.len() - answered;
    let groups = if q.show == "all" {
        groups
    } else {
        groups.into_iter().filter(|g| g.answer.is_none()).collect()
    };
    let notice = if q.done.is_empty() {
        String::new()
    } else {
        format!(
            "Answer saved to the knowledge base of {}; the next caller who asks gets it.",
            q.done
        )
    };
    let html = GapsPage {
        user: &session.user,
        role: session.role.code(),
        csrf: &session.csrf,
        q: &q,
        flows: flow_names(&state),
        groups,
        open,
        answered,
        notice,
    }
    .render();
    page(StatusCode::OK, html)
}

async fn gaps_csv(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<GapsQuery>,
) -> Response {
    let (store, _) = match require(&state, &headers, Role::Supervisor, "/dashboard/gaps").await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    match gap_groups(&store, &q.flow).await {
        Ok(groups) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"knowledge-gaps.csv\"",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            gaps::to_csv(&groups),
        )
            .into_response(),
        Err(e) => failed("reading the store", e),
    }
}

#[derive(Deserialize)]
struct AnswerForm {
    csrf: String,
    key: String,
    flow: String,
    question: String,
    answer: String,
}

/// `POST /dashboard/gaps/answer`: the answer goes into the flow's knowledge base (reloaded for
/// the next call) and the group is marked answered.
async fn answer_gap(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(form): Form<AnswerForm>,
) -> Response {
    let (store, session) =
        match require(&state, &headers, Role::Supervisor, "/dashboard/gaps").await {
            Ok(s) => s,
            Err(r) => return r.into_response(),
        };
    if let Err(r) = check_csrf(&session, &form.csrf) {
        return r.into_response();
    }
    let dialogue = state.engines.dialogue.clone();
    let (flow, question, answer) = (
        form.flow.clone(),
        form.question.clone(),
        form.answer.clone(),
    );
    let learned =
        tokio::task::spawn_blocking(move || dialogue.learn(&flow, &question, &answer)).await;
    let file = match learned {
        Ok(Ok(file)) => file,
        Ok(Err(e)) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Not saved",
                &e.to_string(),
                Some(&session),
            )
        }
        Err(e) => {
            tracing::error!("dashboard: learning an answer: {e}");
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                "Saving the answer failed; see the server's log.",
                Some(&session),
            );
        }
    };
    let answer = GapAnswer {
        flow: form.flow.clone(),
        question: form.question.trim().to_string(),
        answer: form.answer.trim().to_string(),
        answered_by: session.user.clone(),
        answered_at: crate::call::unix_ms_now() as i64,
    };
    if let Err(e) = store.put_gap_answer(&form.key, &answer).await {
        return failed("reading the store", e);
    }
    tracing::info!(
        user = %session.user,
        flow = %form.flow,
        kb = %file.display(),
        "dashboard: a knowledge gap was answered"
    );
    Redirect::to(&format!(
        "/dashboard/gaps?flow={}&done={}",
        form_encode(&form.flow),
        form_encode(&form.flow)
    ))
    .into_response()
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage<'a> {
    user: &'a str,
    role: &'a str,
    csrf: &'a str,
    users: Vec<(String, &'static str, String)>,
    tokens: Vec<(String, String, String, String)>,
}

async fn admin(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let (store, session) = match require(&state, &headers, Role::Admin, "/dashboard/admin").await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let (users, tokens) = match (store.users().await, store.tokens().await) {
        (Ok(u), Ok(t)) => (u, t),
        (Err(e), _) | (_, Err(e)) => return failed("reading the store", e),
    };
    let html = AdminPage {
        user: &session.user,
        role: session.role.code(),
        csrf: &session.csrf,
        users: users
            .into_iter()
            .map(|u| (u.name, u.role.code(), date_time_text(u.created_at)))
            .collect(),
        tokens: tokens
            .into_iter()
            .map(|t| {
                (
                    t.id,
                    t.name,
                    date_time_text(t.created_at),
                    t.last_used_at.map_or("never".into(), date_time_text),
                )
            })
            .collect(),
    }
    .render();
    page(StatusCode::OK, html)
}

async fn me(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let (_, session) = match require(&state, &headers, Role::Agent, "/dashboard/me").await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let text = match session.role {
        Role::Agent => format!(
            "{} is signed in as an agent. The dashboard's pages are for supervisors and admins.",
            session.user
        ),
        role => format!("{} is signed in as {}.", session.user, role.code()),
    };
    message(StatusCode::OK, "Your account", &text, Some(&session))
}
