//! Daily rollups: analytics' counts per UTC day, flow and language (`daily_calls`,
//! `daily_turns`), added to in the same transaction that stores each call, so that
//! [`crate::store::Store::analytics`] over a period reads a row per day and group, not every
//! call and turn. They answer a filter of whole days, a flow and a language ([`covers`]); any
//! other filter (an outcome, an intent, text, a time of day) counts the calls themselves.
//!
//! Invariant: for a filter they cover, the rollups give the figures counting the calls gives
//! (tested against each other on both databases). Retention deletes them by whole days.

use std::collections::BTreeMap;

use sqlx::{Any, Transaction};

use super::query::{sum, CallFilter, Counts, Param, Where, DAY_MS, LATENCY_BUCKET_MS};
use super::{Store, StoreError, StoredCall};

/// A turn's intent confidence in tenths (0.95 is 9), as stored and counted.
pub fn tenth(confidence: f32) -> i64 {
    ((f64::from(confidence) * 10.0).floor() as i64).clamp(0, 10)
}

/// Whether the rollups answer `filter`: only whole days (from and to at midnight UTC), a flow
/// and a language.
pub fn covers(f: &CallFilter) -> bool {
    let whole_day = |t: Option<i64>| t.is_none_or(|t| t.rem_euclid(DAY_MS) == 0);
    let none = |v: &Option<String>| v.as_deref().is_none_or(|v| v.trim().is_empty());
    whole_day(f.from)
        && whole_day(f.to)
        && none(&f.outcome)
        && none(&f.intent)
        && none(&f.severity)
        && none(&f.text)
}

/// Adds a stored call to its day's rollups.
pub async fn add_call(
    tx: &mut Transaction<'_, Any>,
    call: &StoredCall,
    transfer_reason: &str,
) -> Result<(), StoreError> {
    let s = &call.summary;
    let day = call.started_unix_ms as i64 / DAY_MS;
    let flow = s.flow.clone().unwrap_or_default();
    let language = s.language.clone().unwrap_or_default();
    sqlx::query(
        "INSERT INTO daily_calls (day, flow, language, outcome, transfer_reason, calls, \
         duration_ms, turns, kb_answers, barge_ins, csat_sum, csat_answers) \
         VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (day, flow, language, outcome, transfer_reason) DO UPDATE SET \
         calls = daily_calls.calls + 1, \
         duration_ms = daily_calls.duration_ms + excluded.duration_ms, \
         turns = daily_calls.turns + excluded.turns, \
         kb_answers = daily_calls.kb_answers + excluded.kb_answers, \
         barge_ins = daily_calls.barge_ins + excluded.barge_ins, \
         csat_sum = daily_calls.csat_sum + excluded.csat_sum, \
         csat_answers = daily_calls.csat_answers + excluded.csat_answers",
    )
    .bind(day)
    .bind(&flow)
    .bind(&language)
    .bind(s.outcome.code())
    .bind(transfer_reason)
    .bind(s.duration_ms as i64)
    .bind(s.turns.len() as i64)
    .bind(i64::from(s.kb_answers))
    .bind(i64::from(s.barge_ins))
    .bind(s.csat.map_or(0, i64::from))
    .bind(i64::from(s.csat.is_some()))
    .execute(&mut **tx)
    .await?;
    // The call's turns, counted per (measure, label, value) first: one row each.
    let mut turns: BTreeMap<(&str, String, i64), i64> = BTreeMap::new();
    for t in &s.turns {
        if let Some(intent) = &t.intent {
            *turns.entry(("intent", intent.clone(), 0)).or_default() += 1;
        }
        if let Some(c) = t.confidence {
            *turns
                .entry(("confidence", String::new(), tenth(c)))
                .or_default() += 1;
        }
        if let Some(ms) = t.latency_ms {
            *turns
                .entry(("latency", String::new(), ms as i64 / LATENCY_BUCKET_MS))
                .or_default() += 1;
        }
    }
    for ((measure, label, value), n) in turns {
        sqlx::query(
            "INSERT INTO daily_turns (day, flow, language, measure, label, value, turns) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (day, flow, language, measure, label, value) DO UPDATE SET \
             turns = daily_turns.turns + excluded.turns",
        )
        .bind(day)
        .bind(&flow)
        .bind(&language)
        .bind(measure)
        .bind(label)
        .bind(value)
        .bind(n)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Retention: the rollups of the whole days before `cutoff_unix_ms`.
pub async fn delete_days_before(
    tx: &mut Transaction<'_, Any>,
    cutoff_unix_ms: i64,
) -> Result<(), StoreError> {
    let day = cutoff_unix_ms.div_euclid(DAY_MS);
    for table in ["daily_calls", "daily_turns"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE day < $1"))
            .bind(day)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl Store {
    /// Analytics' counts from the rollups (`filter` must be one they [`covers`]).
    pub(super) async fn rollup_counts(&self, filter: &CallFilter) -> Result<Counts, StoreError> {
        let mut w = Where::default();
        if let Some(v) = filter.from {
            w.push("d.day >= ?", Param::Int(v.div_euclid(DAY_MS)));
        }
        if let Some(v) = filter.to {
            w.push("d.day < ?", Param::Int(v.div_euclid(DAY_MS)));
        }
        if let Some(v) = filter.flow.as_ref().filter(|v| !v.is_empty()) {
            w.push("d.flow = ?", Param::Text(v.clone()));
        }
        if let Some(v) = filter.language.as_ref().filter(|v| !v.is_empty()) {
            w.push("d.language = ?", Param::Text(v.clone()));
        }
        let ws = w.sql();
        let and = if ws.is_empty() { " WHERE" } else { " AND" };
        let pool = self.pool();
        let totals = w
            .bind(sqlx::query_as(&format!(
                "SELECT {}, {}, {}, {}, {}, {}, {} FROM daily_calls d{ws}",
                sum("d.calls"),
                sum("d.duration_ms"),
                sum("d.turns"),
                sum("d.kb_answers"),
                sum("d.barge_ins"),
                sum("d.csat_sum"),
                sum("d.csat_answers"),
            )))
            .fetch_one(pool)
            .await?;
        let outcomes = w
            .bind(sqlx::query_as(&format!(
                "SELECT d.outcome, {} FROM daily_calls d{ws} GROUP BY d.outcome ORDER BY d.outcome",
                sum("d.calls")
            )))
            .fetch_all(pool)
            .await?;
        let transfer_reasons = w
            .bind(sqlx::query_as(&format!(
                "SELECT d.transfer_reason, {s} FROM daily_calls d{ws}{and} d.outcome = 'transferred' \
                 GROUP BY d.transfer_reason ORDER BY {s} DESC, d.transfer_reason",
                s = sum("d.calls")
            )))
            .fetch_all(pool)
            .await?;
        let top_intents = w
            .bind(sqlx::query_as(&format!(
                "SELECT d.label, {s} FROM daily_turns d{ws}{and} d.measure = 'intent' \
                 GROUP BY d.label ORDER BY {s} DESC, d.label LIMIT 10",
                s = sum("d.turns")
            )))
            .fetch_all(pool)
            .await?;
        let confidence = w
            .bind(sqlx::query_as(&format!(
                "SELECT d.value, {} FROM daily_turns d{ws}{and} d.measure = 'confidence' \
                 GROUP BY d.value ORDER BY 1",
                sum("d.turns")
            )))
            .fetch_all(pool)
            .await?;
        let latency = w
            .bind(sqlx::query_as(&format!(
                "SELECT d.day, d.value, {} FROM daily_turns d{ws}{and} d.measure = 'latency' \
                 GROUP BY d.day, d.value ORDER BY 1, 2",
                sum("d.turns")
            )))
            .fetch_all(pool)
            .await?;
        let days = w
            .bind(sqlx::query_as(&format!(
                "SELECT d.day, {}, {}, {}, {} FROM daily_calls d{ws} GROUP BY d.day ORDER BY 1",
                sum("d.calls"),
                sum("CASE WHEN d.outcome = 'contained' THEN d.calls ELSE 0 END"),
                sum("CASE WHEN d.outcome = 'transferred' THEN d.calls ELSE 0 END"),
                sum("CASE WHEN d.outcome = 'abandoned' THEN d.calls ELSE 0 END"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_days_flows_and_languages_are_rolled_up() {
        assert!(covers(&CallFilter::default()));
        assert!(covers(&CallFilter {
            from: Some(3 * DAY_MS),
            to: Some(5 * DAY_MS),
            flow: Some("telecom_en".into()),
            language: Some("en".into()),
            ..CallFilter::default()
        }));
        assert!(!covers(&CallFilter {
            from: Some(3 * DAY_MS + 1),
            ..CallFilter::default()
        }));
        assert!(!covers(&CallFilter {
            outcome: Some("contained".into()),
            ..CallFilter::default()
        }));
        assert_eq!(tenth(0.95), 9);
        assert_eq!(tenth(1.0), 10);
    }
}
