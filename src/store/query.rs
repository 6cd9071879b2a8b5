//! Reading the store: the call list with its filters, one call in full, and the analytics
//! (each for a period, a flow and a language).
//!
//! Every filter value is a bound parameter, never text spliced into SQL. Percentiles come from
//! a latency histogram the database counts (50 ms buckets), so analytics over many calls move
//! counts, not rows.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyArguments;
use sqlx::query::QueryAs;
use sqlx::{Any, FromRow};

use super::{Store, StoreError};
use crate::insight::gaps::{Gap, GapAnswer};
use crate::insight::qa::Severity;
use crate::insight::Outcome;

/// One day, in milliseconds (analytics group by the UTC day).
pub(super) const DAY_MS: i64 = 86_400_000;
/// The latency histogram's bucket width.
pub(super) const LATENCY_BUCKET_MS: i64 = 50;

/// Which calls a list or analytics covers. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CallFilter {
    /// Calls that started at or after this time (Unix ms).
    pub from: Option<i64>,
    /// Calls that started before this time (Unix ms).
    pub to: Option<i64>,
    pub flow: Option<String>,
    pub language: Option<String>,
    /// An outcome code (`contained`, `transferred`, `abandoned`, `unresolved`, `failed`).
    pub outcome: Option<String>,
    /// Calls with a turn of this intent.
    pub intent: Option<String>,
    /// Calls with a QA finding at least this severe (`info`, `minor`, `major`, `critical`).
    pub severity: Option<String>,
    /// Calls whose transcript contains this text (case-insensitive).
    pub text: Option<String>,
    /// The most calls listed (default 50, at most 500).
    pub limit: Option<i64>,
    /// Calls skipped (paging).
    pub offset: Option<i64>,
}

/// A parameter of a built query.
#[derive(Debug, Clone)]
pub(super) enum Param {
    Int(i64),
    Text(String),
}

/// A `WHERE` clause built from a filter, with its parameters in order.
#[derive(Debug, Default)]
pub(super) struct Where {
    clauses: Vec<String>,
    params: Vec<Param>,
}

impl Where {
    pub(super) fn push(&mut self, clause: &str, param: Param) {
        self.params.push(param);
        self.clauses
            .push(clause.replace('?', &format!("${}", self.params.len())));
    }

    pub(super) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub(super) fn bind<'q, T>(
        &self,
        mut q: QueryAs<'q, Any, T, AnyArguments<'q>>,
    ) -> QueryAs<'q, Any, T, AnyArguments<'q>> {
        for p in &self.params {
            q = match p {
                Param::Int(v) => q.bind(*v),
                Param::Text(v) => q.bind(v.clone()),
            };
        }
        q
    }
}

impl CallFilter {
    /// Checks the codes it names, listing the valid ones.
    pub fn validate(&self) -> Result<(), StoreError> {
        if let Some(o) = &self.outcome {
            if !Outcome::ALL.iter().any(|x| x.code() == o) {
                let valid: Vec<_> = Outcome::ALL.iter().map(|o| o.code()).collect();
                return Err(StoreError::Access(format!(
                    "unknown outcome `{o}`; valid: {}",
                    valid.join(", ")
                )));
            }
        }
        if let Some(s) = &self.severity {
            if Severity::from_code(s).is_none() {
                return Err(StoreError::Access(format!(
                    "unknown severity `{s}`; valid: info, minor, major, critical"
                )));
            }
        }
        Ok(())
    }

    /// The `WHERE` clause over `calls` (aliased `c`).
    fn where_clause(&self) -> Where {
        let mut w = Where::default();
        if let Some(v) = self.from {
            w.push("c.started_at >= ?", Param::Int(v));
        }
        if let Some(v) = self.to {
            w.push("c.started_at < ?", Param::Int(v));
        }
        if let Some(v) = self.flow.as_ref().filter(|v| !v.is_empty()) {
            w.push("c.flow = ?", Param::Text(v.clone()));
        }
        if let Some(v) = self.language.as_ref().filter(|v| !v.is_empty()) {
            w.push("c.language = ?", Param::Text(v.clone()));
        }
        if let Some(v) = self.outcome.as_ref().filter(|v| !v.is_empty()) {
            w.push("c.outcome = ?", Param::Text(v.clone()));
        }
        if let Some(v) = self.intent.as_ref().filter(|v| !v.is_empty()) {
            w.push(
                "c.id IN (SELECT call_id FROM call_turns WHERE intent = ?)",
                Param::Text(v.clone()),
            );
        }
        if let Some(s) = self.severity.as_deref().and_then(Severity::from_code) {
            w.push("c.qa_worst >= ?", Param::Int(s.rank()));
        }
        if let Some(v) = self.text.as_ref().filter(|v| !v.trim().is_empty()) {
            let escaped = v.trim().to_lowercase().replace(['%', '_'], "");
            w.push(
                "lower(c.transcript) LIKE ?",
                Param::Text(format!("%{escaped}%")),
            );
        }
        w
    }
}

/// One call in a list.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct CallRow {
    pub id: String,
    pub started_at: i64,
    pub duration_ms: i64,
    pub transport: String,
    pub caller: String,
    pub language: String,
    pub flow: String,
    pub outcome: String,
    pub end_reason: String,
    pub turns: i64,
    pub csat: Option<i64>,
    pub sentiment: f64,
    /// The worst QA finding's rank (-1: none); see [`CallRow::qa`].
    #[serde(skip)]
    pub qa_worst: i64,
    pub qa_findings: i64,
}

impl CallRow {
    /// The worst QA finding's severity code, if any.
    pub fn qa(&self) -> Option<&'static str> {
        [
            Severity::Info,
            Severity::Minor,
            Severity::Major,
            Severity::Critical,
        ]
        .into_iter()
        .find(|s| s.rank() == self.qa_worst)
        .map(Severity::code)
    }
}

/// A page of the call list.
#[derive(Debug, Clone, Serialize)]
pub struct CallPage {
    /// Every call the filter matches (not only this page's).
    pub total: i64,
    pub calls: Vec<CallListItem>,
}

/// A call in the list, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CallListItem {
    #[serde(flatten)]
    pub row: CallRow,
    /// The worst QA finding's severity, if any.
    pub qa_worst: Option<&'static str>,
}

/// One turn of a call.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct TurnRow {
    pub turn: i64,
    pub t_ms: i64,
    pub text: String,
    pub intent: Option<String>,
    pub confidence: Option<f64>,
    pub latency_ms: Option<i64>,
    pub sentiment: f64,
    pub barged_in: i64,
}

/// One QA finding of a call.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct FindingRow {
    pub rule: String,
    pub severity: String,
    pub t_ms: i64,
    pub detail: String,
}

/// One call in full.
#[derive(Debug, Clone, Serialize)]
pub struct CallDetail {
    #[serde(flatten)]
    pub row: CallRow,
    pub qa_worst: Option<&'static str>,
    pub transcript: String,
    /// Whether the call's recording is kept (`recording.wav` in its folder).
    pub has_recording: bool,
    pub turns: Vec<TurnRow>,
    pub slots: Vec<(String, String)>,
    pub findings: Vec<FindingRow>,
    pub knowledge_gaps: Vec<String>,
    /// The call's events, as stored (redacted).
    pub events: Vec<serde_json::Value>,
}

/// The figures of a period, a flow and a language.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analytics {
    pub calls: i64,
    /// Calls by outcome code.
    pub outcomes: Vec<(String, i64)>,
    /// Contained calls over calls that were not abandoned.
    pub containment_rate: Option<f64>,
    pub transfer_rate: Option<f64>,
    /// Transfers by their reason.
    pub transfer_reasons: Vec<(String, i64)>,
    pub abandonment_rate: Option<f64>,
    /// Average handling time, in seconds.
    pub average_handling_s: Option<f64>,
    pub csat_average: Option<f64>,
    pub csat_answers: i64,
    /// The ten most frequent intents, with their counts.
    pub top_intents: Vec<(String, i64)>,
    /// Intent confidence in tenths: (lower bound, turns).
    pub confidence_histogram: Vec<(f64, i64)>,
    /// Turns answered from the knowledge base, over caller turns.
    pub kb_hit_rate: Option<f64>,
    /// Turns the caller spoke over the bot, over caller turns.
    pub barge_in_rate: Option<f64>,
    /// Voice-to-voice latency percentiles over every turn, in milliseconds.
    pub latency_p50_ms: Option<i64>,
    pub latency_p95_ms: Option<i64>,
    pub latency_p99_ms: Option<i64>,
    /// The latency histogram: (bucket's lower bound in ms, turns).
    pub latency_histogram: Vec<(i64, i64)>,
    /// Per UTC day: calls, contained, transferred, abandoned, latency p50 and p95.
    pub days: Vec<DayFigures>,
}

/// One day's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayFigures {
    /// The day's start, Unix ms (UTC).
    pub day: i64,
    pub calls: i64,
    pub contained: i64,
    pub transferred: i64,
    pub abandoned: i64,
    pub latency_p50_ms: Option<i64>,
    pub latency_p95_ms: Option<i64>,
}

const ROW_COLUMNS: &str = "c.id, c.started_at, c.duration_ms, c.transport, c.caller, \
    c.language, c.flow, c.outcome, c.end_reason, c.turns, c.csat, c.sentiment, c.qa_worst, \
    c.qa_findings";

/// `SUM(expr)` as a BIGINT in both databases (PostgreSQL sums BIGINTs as NUMERIC), 0 over
/// no rows.
pub(super) fn sum(expr: &str) -> String {
    format!("CAST(COALESCE(SUM({expr}), 0) AS BIGINT)")
}

fn ratio(n: i64, d: i64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// The `q`-quantile (0 to 1) of a histogram of (bucket lower bound, count), as the bucket's
/// upper bound.
fn quantile(histogram: &[(i64, i64)], q: f64) -> Option<i64> {
    let total: i64 = histogram.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as i64;
    let mut seen = 0;
    for (lower, n) in histogram {
        seen += n;
        if seen >= rank {
            return Some(lower + LATENCY_BUCKET_MS);
        }
    }
    histogram.last().map(|(lower, _)| lower + LATENCY_BUCKET_MS)
}

/// The most recent knowledge gaps the gap list groups.
const GAPS_READ: i64 = 20_000;

impl Store {
    /// The knowledge gaps of the newest calls (of one flow, or all), newest first.
    pub async fn gaps(&self, flow: Option<&str>) -> Result<Vec<Gap>, StoreError> {
        let mut w = Where::default();
        if let Some(flow) = flow.filter(|f| !f.is_empty()) {
            w.push("c.flow = ?", Param::Text(flow.to_string()));
        }
        let sql = format!(
            "SELECT g.call_id, c.flow, c.language, c.started_at, g.text FROM knowledge_gaps g \
             JOIN calls c ON c.id = g.call_id{} ORDER BY c.started_at DESC, g.call_id, g.seq \
             LIMIT {GAPS_READ}",
            w.sql()
        );
        let rows: Vec<(String, String, String, i64, String)> =
            w.bind(sqlx::query_as(&sql)).fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(|(call_id, flow, language, started_at, text)| Gap {
                call_id,
                flow,
                language,
                started_at,
                text,
            })
            .collect())
    }

    /// Every answer supervisors wrote to knowledge gaps, oldest first.
    pub async fn gap_answers(&self) -> Result<Vec<GapAnswer>, StoreError> {
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT flow, question, answer, answered_by, answered_at FROM gap_answers \
             ORDER BY answered_at, id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(flow, question, answer, answered_by, answered_at)| GapAnswer {
                    flow,
                    question,
                    answer,
                    answered_by,
                    answered_at,
                },
            )
            .collect())
    }

    /// Keeps a supervisor's answer to a gap group (`key`, from [`crate::insight::gaps`]).
    pub async fn put_gap_answer(&self, key: &str, answer: &GapAnswer) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO gap_answers (id, flow, question, answer, answered_by, answered_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
             answer = excluded.answer, answered_by = excluded.answered_by, \
             answered_at = excluded.answered_at",
        )
        .bind(key)
        .bind(&answer.flow)
        .bind(&answer.question)
        .bind(&answer.answer)
        .bind(&answer.answered_by)
        .bind(answer.answered_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Keeps what a human agent recorded after taking `call_id`.
    pub async fn save_disposition(
        &self,
        call_id: &str,
        agent: &str,
        disposition: &str,
        notes: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO dispositions (call_id, agent, disposition, notes, saved_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(call_id)
        .bind(agent)
        .bind(disposition)
        .bind(notes)
        .bind(crate::call::unix_ms_now() as i64)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The dispositions agents saved for `call_id`, oldest first.
    pub async fn dispositions(&self, call_id: &str) -> Result<Vec<Disposition>, StoreError> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT agent, disposition, notes, saved_at FROM dispositions WHERE call_id = $1 \
             ORDER BY saved_at",
        )
        .bind(call_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(agent, disposition, notes, saved_at)| Disposition {
                agent,
                disposition,
                notes,
                saved_at,
            })
            .collect())
    }

    /// A page of the calls `filter` matches, newest first.
    pub async fn calls(&self, filter: &CallFilter) -> Result<CallPage, StoreError> {
        filter.validate()?;
        let w = filter.where_clause();
        let limit = filter.limit.unwrap_or(50).clamp(1, 500);
        let offset = filter.offset.unwrap_or(0).max(0);
        let total_sql = format!("SELECT COUNT(*) FROM calls c{}", w.sql());
        let (total,): (i64,) = w
            .bind(sqlx::query_as(&total_sql))
            .fetch_one(self.pool())
            .await?;
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM calls c{} ORDER BY c.started_at DESC, c.id DESC \
             LIMIT {limit} OFFSET {offset}",
            w.sql()
        );
        let rows: Vec<CallRow> = w.bind(sqlx::query_as(&sql)).fetch_all(self.pool()).await?;
        Ok(CallPage {
            total,
            calls: rows
                .into_iter()
                .map(|row| CallListItem {
                    qa_worst: row.qa(),
                    row,
                })
                .collect(),
        })
    }

    /// One call in full, or `None` when no call has that id.
    pub async fn call(&self, id: &str) -> Result<Option<CallDetail>, StoreError> {
        let sql = format!(
            "SELECT {ROW_COLUMNS}, c.transcript, c.has_recording FROM calls c WHERE c.id = $1"
        );
        let Some(found) = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        use sqlx::Row;
        let row = CallRow::from_row(&found)?;
        let transcript: String = found.try_get("transcript")?;
        let has_recording: i64 = found.try_get("has_recording")?;
        let turns: Vec<TurnRow> = sqlx::query_as(
            "SELECT turn, t_ms, text, intent, confidence, latency_ms, sentiment, barged_in \
             FROM call_turns WHERE call_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let slots: Vec<(String, String)> =
            sqlx::query_as("SELECT name, value FROM call_slots WHERE call_id = $1 ORDER BY seq")
                .bind(id)
                .fetch_all(self.pool())
                .await?;
        let findings: Vec<FindingRow> = sqlx::query_as(
            "SELECT rule, severity, t_ms, detail FROM qa_findings WHERE call_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let gaps: Vec<(String,)> =
            sqlx::query_as("SELECT text FROM knowledge_gaps WHERE call_id = $1 ORDER BY seq")
                .bind(id)
                .fetch_all(self.pool())
                .await?;
        let events: Vec<(String,)> =
            sqlx::query_as("SELECT body FROM call_events WHERE call_id = $1 ORDER BY seq")
                .bind(id)
                .fetch_all(self.pool())
                .await?;
        Ok(Some(CallDetail {
            qa_worst: row.qa(),
            row,
            transcript,
            has_recording: has_recording != 0,
            turns,
            slots,
            findings,
            knowledge_gaps: gaps.into_iter().map(|(t,)| t).collect(),
            events: events
                .into_iter()
                .filter_map(|(b,)| serde_json::from_str(&b).ok())
                .collect(),
        }))
    }

    /// Where a call's folder is (for its recording), if the call is stored.
    pub async fn record_dir(&self, id: &str) -> Result<Option<String>, StoreError> {
        let dir: Option<(String,)> = sqlx::query_as("SELECT record_dir FROM calls WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(dir.map(|(d,)| d))
    }

    /// The figures of the calls `filter` matches (its paging is ignored). A filter of whole
    /// days, a flow and a language is answered from the daily rollups ([`super::rollup`]),
    /// whatever the number of calls; any other filter counts the calls themselves.
    pub async fn analytics(&self, filter: &CallFilter) -> Result<Analytics, StoreError> {
        filter.validate()?;
        let counts = match super::rollup::covers(filter) {
            true => self.rollup_counts(filter).await?,
            false => self.call_counts(filter).await?,
        };
        Ok(counts.assemble())
    }

    /// [`Store::analytics`] from the daily rollups; an error for a filter they do not cover.
    pub async fn analytics_from_rollups(
        &self,
        filter: &CallFilter,
    ) -> Result<Analytics, StoreError> {
        filter.validate()?;
        if !super::rollup::covers(filter) {
            return Err(StoreError::Access(
                "the daily rollups answer whole days, a flow and a language only".into(),
            ));
        }
        Ok(self.rollup_counts(filter).await?.assemble())
    }

    /// [`Store::analytics`] counted from the calls themselves, whatever the filter.
    pub async fn analytics_from_calls(&self, filter: &CallFilter) -> Result<Analytics, StoreError> {
        filter.validate()?;
        Ok(self.call_counts(filter).await?.assemble())
    }

    async fn call_counts(&self, filter: &CallFilter) -> Result<Counts, StoreError> {
        let w = filter.where_clause();
        let ws = w.sql();
        let pool = self.pool();
        let totals_sql = format!(
            "SELECT COUNT(*), {}, {}, {}, {}, {}, COUNT(c.csat) FROM calls c{ws}",
            sum("c.duration_ms"),
            sum("c.turns"),
            sum("c.kb_answers"),
            sum("c.barge_ins"),
            sum("c.csat")
        );
        let totals = w.bind(sqlx::query_as(&totals_sql)).fetch_one(pool).await?;
        let outcomes: Vec<(String, i64)> = w
            .bind(sqlx::query_as(&format!(
                "SELECT c.outcome, COUNT(*) FROM calls c{ws} GROUP BY c.outcome ORDER BY c.outcome"
            )))
            .fetch_all(pool)
            .await?;
        let and = if ws.is_empty() { " WHERE" } else { " AND" };
        let transfer_reasons: Vec<(String, i64)> = w
            .bind(sqlx::query_as(&format!(
                "SELECT c.transfer_reason, COUNT(*) FROM calls c{ws}{and} c.outcome = 'transferred' \
                 GROUP BY c.transfer_reason ORDER BY COUNT(*) DESC, c.transfer_reason"
            )))
            .fetch_all(pool)
            .await?;
        let top_intents: Vec<(String, i64)> = w
            .bind(sqlx::query_as(&format!(
                "SELECT t.intent, COUNT(*) FROM calls c CROSS JOIN call_turns t{ws}{and} t.call_id = c.id AND \
                 t.intent IS NOT NULL GROUP BY t.intent ORDER BY COUNT(*) DESC, t.intent LIMIT 10"
            )))
            .fetch_all(pool)
            .await?;
        let confidence: Vec<(i64, i64)> = w
            .bind(sqlx::query_as(&format!(
                "SELECT t.confidence_tenth, COUNT(*) FROM calls c CROSS JOIN call_turns t{ws}{and} \
                 t.call_id = c.id AND t.confidence_tenth IS NOT NULL \
                 GROUP BY t.confidence_tenth ORDER BY 1"
            )))
            .fetch_all(pool)
            .await?;
        let latency: Vec<(i64, i64, i64)> = w
            .bind(sqlx::query_as(&format!(
                "SELECT c.started_at / {DAY_MS}, t.latency_ms / {LATENCY_BUCKET_MS}, COUNT(*) \
                 FROM calls c CROSS JOIN call_turns t{ws}{and} t.call_id = c.id AND t.latency_ms IS NOT NULL \
                 GROUP BY c.started_at / {DAY_MS}, t.latency_ms / {LATENCY_BUCKET_MS} ORDER BY 1, 2"
            )))
            .fetch_all(pool)
            .await?;
        let days: Vec<(i64, i64, i64, i64, i64)> = w
            .bind(sqlx::query_as(&format!(
                "SELECT c.started_at / {DAY_MS}, COUNT(*), {}, {}, {} \
                 FROM calls c{ws} GROUP BY c.started_at / {DAY_MS} ORDER BY 1",
                sum("CASE WHEN c.outcome = 'contained' THEN 1 ELSE 0 END"),
                sum("CASE WHEN c.outcome = 'transferred' THEN 1 ELSE 0 END"),
                sum("CASE WHEN c.outcome = 'abandoned' THEN 1 ELSE 0 END")
            )))
            .fetch_all(pool)
            .await?;
        Ok(Counts {
            totals,
            outcomes,
            transfer_reasons,
            top_intents,
            confidence,
            latency,
            days,
        })
    }
}

/// What analytics count, from the calls or from the rollups, before the rates and percentiles.
#[derive(Debug, Default)]
pub(super) struct Counts {
    /// Calls, duration (ms), turns, KB answers, barge-ins, CSAT sum, CSAT answers.
    pub totals: (i64, i64, i64, i64, i64, i64, i64),
    pub outcomes: Vec<(String, i64)>,
    pub transfer_reasons: Vec<(String, i64)>,
    pub top_intents: Vec<(String, i64)>,
    /// (confidence in tenths, turns).
    pub confidence: Vec<(i64, i64)>,
    /// (day number, latency bucket number, turns).
    pub latency: Vec<(i64, i64, i64)>,
    /// (day number, calls, contained, transferred, abandoned).
    pub days: Vec<(i64, i64, i64, i64, i64)>,
}

impl Counts {
    fn assemble(self) -> Analytics {
        let (calls, duration, turns, kb, barge, csat_sum, csat_n) = self.totals;
        let count = |code: &str| {
            self.outcomes
                .iter()
                .find(|(o, _)| o == code)
                .map_or(0, |(_, n)| *n)
        };
        let mut histogram: std::collections::BTreeMap<i64, i64> = Default::default();
        for (_, bucket, n) in &self.latency {
            *histogram.entry(bucket * LATENCY_BUCKET_MS).or_default() += n;
        }
        let histogram: Vec<(i64, i64)> = histogram.into_iter().collect();
        let day_figures = self
            .days
            .iter()
            .map(|&(day, n, contained, transferred, abandoned)| {
                let h: Vec<(i64, i64)> = self
                    .latency
                    .iter()
                    .filter(|(d, _, _)| *d == day)
                    .map(|(_, b, n)| (b * LATENCY_BUCKET_MS, *n))
                    .collect();
                DayFigures {
                    day: day * DAY_MS,
                    calls: n,
                    contained,
                    transferred,
                    abandoned,
                    latency_p50_ms: quantile(&h, 0.5),
                    latency_p95_ms: quantile(&h, 0.95),
                }
            })
            .collect();
        let abandoned = count("abandoned");
        Analytics {
            calls,
            containment_rate: ratio(count("contained"), calls - abandoned),
            transfer_rate: ratio(count("transferred"), calls),
            abandonment_rate: ratio(abandoned, calls),
            average_handling_s: ratio(duration, calls).map(|ms| ms / 1000.0),
            csat_average: ratio(csat_sum, csat_n),
            csat_answers: csat_n,
            confidence_histogram: self
                .confidence
                .iter()
                .map(|&(tenth, n)| (tenth as f64 / 10.0, n))
                .collect(),
            kb_hit_rate: ratio(kb, turns),
            barge_in_rate: ratio(barge, turns),
            latency_p50_ms: quantile(&histogram, 0.5),
            latency_p95_ms: quantile(&histogram, 0.95),
            latency_p99_ms: quantile(&histogram, 0.99),
            latency_histogram: histogram,
            days: day_figures,
            outcomes: self.outcomes,
            transfer_reasons: self.transfer_reasons,
            top_intents: self.top_intents,
        }
    }
}

/// What a human agent recorded after a call (`/agent`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Disposition {
    pub agent: String,
    pub disposition: String,
    pub notes: String,
    /// Unix milliseconds.
    pub saved_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_histograms_buckets() {
        let h = [(300, 50), (400, 45), (1000, 5)];
        assert_eq!(quantile(&h, 0.5), Some(350));
        assert_eq!(quantile(&h, 0.95), Some(450));
        assert_eq!(quantile(&h, 0.99), Some(1050));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn filters_bind_every_value_and_name_valid_codes() {
        let f = CallFilter {
            flow: Some("telecom_en".into()),
            text: Some("50% off'; DROP".into()),
            ..Default::default()
        };
        let w = f.where_clause();
        assert_eq!(
            w.sql(),
            " WHERE c.flow = $1 AND lower(c.transcript) LIKE $2"
        );
        assert_eq!(w.params.len(), 2);
        let bad = CallFilter {
            outcome: Some("won".into()),
            ..Default::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("contained, transferred"), "{e}");
    }
}
