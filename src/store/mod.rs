//! The call store: every finished call's metadata, events, turns, slots, QA findings and
//! knowledge gaps in a database, with the dashboard's users and the API's tokens.
//!
//! One query layer (sqlx's `Any` driver) over SQLite, the default (a file beside the records,
//! WAL, zero set-up), and PostgreSQL (`store.url = "postgres://..."`), so that several servers
//! can share one store. The schema is versioned migrations under `src/store/migrations`,
//! written once in SQL both accept, and applied when the store opens.
//!
//! The record folders stay the journal: a call is first a folder (`events.jsonl`, the
//! recording, `transcript.txt`), written as it goes; the store is filled from finished folders
//! by [`writer`], in batches, off the media path. A call a crash kept out of the store is added
//! at the next start ([`writer::StoreWriter::catch_up`]), so a `kill -9` loses no finished
//! call. Recordings stay WAV files in their folders; the store keeps where they are.
//!
//! Submodules: [`writer`] (the queue and batches), [`query`] (call lists, a call, analytics,
//! knowledge gaps), [`access`] (users and API tokens).

pub mod access;
pub mod query;
mod rollup;
pub mod writer;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use serde::Deserialize;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::AnyPool;
use sqlx::{Any, Executor, Transaction};

use crate::insight::qa::{self, Finding, QaConfig};
use crate::insight::CallSummary;
use crate::session::CallEvent;

/// The schema's migrations, in order (embedded: the binary carries its schema).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "calls", include_str!("migrations/0001_calls.sql")),
    (
        2,
        "dashboard",
        include_str!("migrations/0002_dashboard.sql"),
    ),
    (3, "rollups", include_str!("migrations/0003_rollups.sql")),
    (
        4,
        "dispositions",
        include_str!("migrations/0004_dispositions.sql"),
    ),
];

/// SQLite connections: one writes (WAL), the others read for the dashboard and the API.
const SQLITE_CONNECTIONS: u32 = 4;

/// What the store could not do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store.url: {0}")]
    Url(String),
    #[error("cannot open the store {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot bring the store's schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{path}: {message}")]
    Record { path: String, message: String },
    #[error("{0}")]
    Access(String),
}

/// `[store]`: where calls are stored.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite:PATH` or `postgres://USER:PASSWORD@HOST/DB`; empty: SQLite at
    /// `<server.records_dir>/hotline.db`.
    pub url: String,
    /// The most finished calls written in one transaction.
    pub batch_max: usize,
    /// The most finished calls waiting to be written; past it, a call waits for the next start
    /// (its folder is kept) and a warning is logged.
    pub queue: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            batch_max: 64,
            queue: 4096,
        }
    }
}

impl StoreConfig {
    /// The URL the store opens: `url`, or SQLite beside the records.
    pub fn url_for(&self, records_dir: &Path) -> String {
        if self.url.is_empty() {
            format!("sqlite:{}", records_dir.join("hotline.db").display())
        } else {
            self.url.clone()
        }
    }

    /// Checks the URL names a database the store can use.
    pub fn validate(&self) -> Result<(), StoreError> {
        let u = &self.url;
        if u.is_empty()
            || u.starts_with("sqlite:")
            || u.starts_with("postgres://")
            || u.starts_with("postgresql://")
        {
            Ok(())
        } else {
            Err(StoreError::Url(format!(
                "`{u}` is not a database URL; use sqlite:PATH or postgres://USER:PASSWORD@HOST/DB"
            )))
        }
    }
}

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An open store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// The migrations, as sqlx wants them.
#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, name, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*name),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

impl Store {
    /// Opens (for SQLite: creates) the store at `url` and applies the migrations it lacks.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(format!(
                "`{url}` is not a database URL; use sqlite:PATH or postgres://USER:PASSWORD@HOST/DB"
            )));
        };
        let connect_url = match backend {
            Backend::Sqlite => {
                let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
                let path = path.split('?').next().unwrap_or(path);
                if let Some(parent) = Path::new(path).parent() {
                    if !parent.as_os_str().is_empty() {
                        std::fs::create_dir_all(parent).map_err(|e| StoreError::Open {
                            url: url.to_string(),
                            source: sqlx::Error::Io(e),
                        })?;
                    }
                }
                if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                }
            }
            Backend::Postgres => url.to_string(),
        };
        // SQLite: a fixed set of connections, opened at once and kept (a local file has no
        // reason to recycle them), so the server's open files stay the same however busy it
        // gets. PostgreSQL: up to 8, opened as needed.
        let options = match backend {
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(SQLITE_CONNECTIONS)
                .min_connections(SQLITE_CONNECTIONS)
                .idle_timeout(None)
                .max_lifetime(None),
            Backend::Postgres => AnyPoolOptions::new().max_connections(8),
        };
        let pool = options
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect(&connect_url)
            .await
            .map_err(|source| StoreError::Open {
                url: redact_password(url),
                source,
            })?;
        let migrator = Migrator::new(Embedded).await?;
        migrator.run(&pool).await?;
        tracing::info!(store = %redact_password(url), "call store open");
        Ok(Self { pool, backend })
    }

    /// Which database is behind the store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Writes finished calls in one transaction; a call already stored is left as it is.
    /// Returns how many were new.
    pub async fn put_calls(&self, calls: &[StoredCall]) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut added = 0;
        for call in calls {
            if put_call(&mut tx, call).await? {
                added += 1;
            }
        }
        tx.commit().await?;
        Ok(added)
    }

    /// The ids of every stored call.
    pub async fn call_ids(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let ids: Vec<(String,)> = sqlx::query_as("SELECT id FROM calls")
            .fetch_all(&self.pool)
            .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// Deletes the calls that started before `cutoff_unix_ms`, with everything stored for
    /// them (retention), and the daily rollups of the whole days before it. Returns how many
    /// calls.
    pub async fn delete_before(&self, cutoff_unix_ms: u64) -> Result<u64, StoreError> {
        let cutoff = cutoff_unix_ms as i64;
        let mut tx = self.pool.begin().await?;
        for table in [
            "call_events",
            "call_turns",
            "call_slots",
            "qa_findings",
            "knowledge_gaps",
            "dispositions",
        ] {
            let sql = format!(
                "DELETE FROM {table} WHERE call_id IN (SELECT id FROM calls WHERE started_at < $1)"
            );
            sqlx::query(&sql).bind(cutoff).execute(&mut *tx).await?;
        }
        let done = sqlx::query("DELETE FROM calls WHERE started_at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        rollup::delete_days_before(&mut tx, cutoff).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}

/// A URL fit for a log line: its password replaced.
fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// One finished call, read from its folder and checked, ready to store.
#[derive(Debug, Clone)]
pub struct StoredCall {
    /// The call's id: its folder's name.
    pub id: String,
    pub record_dir: PathBuf,
    pub has_recording: bool,
    pub events: Vec<CallEvent>,
    pub summary: CallSummary,
    pub findings: Vec<Finding>,
    pub transcript: String,
    /// When the call started, Unix milliseconds.
    pub started_unix_ms: u64,
}

impl StoredCall {
    /// Reads a finished record folder (blocking file IO) and runs the QA rules on it.
    /// `None` for a folder that is not a finished record.
    pub fn read(dir: &Path, qa_config: &QaConfig) -> Result<Option<Self>, StoreError> {
        let transcript_path = dir.join("transcript.txt");
        let Ok(transcript) = std::fs::read_to_string(&transcript_path) else {
            return Ok(None);
        };
        let events_path = dir.join("events.jsonl");
        let text = std::fs::read_to_string(&events_path).map_err(|e| StoreError::Record {
            path: events_path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut events = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let event =
                serde_json::from_str::<CallEvent>(line).map_err(|e| StoreError::Record {
                    path: events_path.display().to_string(),
                    message: format!("line {}: {e}", n + 1),
                })?;
            events.push(event);
        }
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut call = Self::of_events(&id, dir, events, transcript, qa_config);
        call.has_recording = dir.join("recording.wav").is_file();
        if call.summary.started_unix_ms.is_none() {
            // Older records: the id starts with the start's Unix seconds; else the file's time.
            call.started_unix_ms = id
                .split('-')
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .map(|s| s * 1000)
                .or_else(|| {
                    std::fs::metadata(&events_path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| (d.as_millis() as u64).saturating_sub(call.summary.duration_ms))
                })
                .unwrap_or(0);
        }
        Ok(Some(call))
    }

    /// A call from its events (as stored, redacted) and transcript, checked by the QA rules.
    pub fn of_events(
        id: &str,
        record_dir: &Path,
        events: Vec<CallEvent>,
        transcript: String,
        qa_config: &QaConfig,
    ) -> Self {
        let summary = CallSummary::of(&events);
        let findings = qa::check(qa_config, &events, &summary);
        Self {
            id: id.to_string(),
            record_dir: record_dir.to_path_buf(),
            has_recording: false,
            started_unix_ms: summary.started_unix_ms.unwrap_or(0),
            events,
            summary,
            findings,
            transcript,
        }
    }
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

/// Why a call was transferred (the first transfer that did not fail), or `""`.
fn transfer_reason_of(s: &CallSummary) -> String {
    s.transfers
        .iter()
        .find(|t| !t.2)
        .map(|t| t.1.clone())
        .unwrap_or_default()
}

/// Inserts one call and its rows; `false` when it was already stored.
async fn put_call(tx: &mut Transaction<'_, Any>, call: &StoredCall) -> Result<bool, StoreError> {
    let s = &call.summary;
    let transfer_reason = transfer_reason_of(s);
    let worst = call
        .findings
        .iter()
        .map(|f| f.severity.rank())
        .max()
        .unwrap_or(-1);
    let inserted = sqlx::query(
        "INSERT INTO calls (id, started_at, duration_ms, transport, caller, callee, language, \
         flow, outcome, end_reason, turns, barge_ins, kb_answers, transfer_reason, csat, \
         sentiment, qa_worst, qa_findings, transcript, record_dir, has_recording, stored_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21, $22) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&call.id)
    .bind(call.started_unix_ms as i64)
    .bind(s.duration_ms as i64)
    .bind(opt(&s.transport))
    .bind(opt(&s.from))
    .bind(opt(&s.to))
    .bind(opt(&s.language))
    .bind(opt(&s.flow))
    .bind(s.outcome.code())
    .bind(&s.end_reason)
    .bind(s.turns.len() as i64)
    .bind(s.barge_ins as i64)
    .bind(s.kb_answers as i64)
    .bind(transfer_reason)
    .bind(s.csat.map(i64::from))
    .bind(f64::from(s.worst_sentiment()))
    .bind(worst)
    .bind(call.findings.len() as i64)
    .bind(&call.transcript)
    .bind(call.record_dir.display().to_string())
    .bind(i64::from(call.has_recording))
    .bind(crate::call::unix_ms_now() as i64)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    rollup::add_call(tx, call, &transfer_reason_of(s)).await?;
    for (seq, e) in call.events.iter().enumerate() {
        let body = serde_json::to_string(e).unwrap_or_default();
        sqlx::query(
            "INSERT INTO call_events (call_id, seq, t_ms, kind, body) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&call.id)
        .bind(seq as i64)
        .bind(e.t_ms as i64)
        .bind(e.kind.type_name())
        .bind(body)
        .execute(&mut **tx)
        .await?;
    }
    for (seq, t) in s.turns.iter().enumerate() {
        sqlx::query(
            // A missing confidence is bound as -1 and stored as NULL: sqlx 0.8's `Any` driver
            // sends a NULL DOUBLE PRECISION to PostgreSQL typed as a REAL, and a statement
            // first prepared so refuses every later confidence.
            "INSERT INTO call_turns (call_id, seq, turn, t_ms, text, intent, confidence, \
             confidence_tenth, latency_ms, sentiment, barged_in) \
             VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, -1.0), $8, $9, $10, $11)",
        )
        .bind(&call.id)
        .bind(seq as i64)
        .bind(i64::from(t.turn))
        .bind(t.t_ms as i64)
        .bind(&t.text)
        .bind(t.intent.clone())
        .bind(t.confidence.map_or(-1.0, f64::from))
        .bind(t.confidence.map(rollup::tenth))
        .bind(t.latency_ms.map(|ms| ms as i64))
        .bind(f64::from(t.sentiment))
        .bind(i64::from(t.barged_in))
        .execute(&mut **tx)
        .await?;
    }
    for (seq, (name, value)) in s.slots.iter().enumerate() {
        sqlx::query("INSERT INTO call_slots (call_id, seq, name, value) VALUES ($1, $2, $3, $4)")
            .bind(&call.id)
            .bind(seq as i64)
            .bind(name)
            .bind(value)
            .execute(&mut **tx)
            .await?;
    }
    for (seq, f) in call.findings.iter().enumerate() {
        sqlx::query(
            "INSERT INTO qa_findings (call_id, seq, rule, severity, t_ms, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&call.id)
        .bind(seq as i64)
        .bind(f.rule)
        .bind(f.severity.code())
        .bind(f.t_ms as i64)
        .bind(&f.detail)
        .execute(&mut **tx)
        .await?;
    }
    for (seq, (t_ms, text)) in s.gaps.iter().enumerate() {
        sqlx::query(
            "INSERT INTO knowledge_gaps (call_id, seq, t_ms, text) VALUES ($1, $2, $3, $4)",
        )
        .bind(&call.id)
        .bind(seq as i64)
        .bind(*t_ms as i64)
        .bind(text)
        .execute(&mut **tx)
        .await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_in_a_log_line_hides_its_password() {
        assert_eq!(
            redact_password("postgres://hotline:s3cret@db/hotline"),
            "postgres://hotline:***@db/hotline"
        );
        assert_eq!(
            redact_password("sqlite:records/hotline.db"),
            "sqlite:records/hotline.db"
        );
    }

    #[test]
    fn only_database_urls_are_accepted() {
        let bad = StoreConfig {
            url: "mysql://x".into(),
            ..StoreConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("store.url"));
        assert!(StoreConfig::default().validate().is_ok());
    }
}
