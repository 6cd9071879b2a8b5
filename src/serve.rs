//! `hotline serve`: loads the config and engines, starts the transports, and runs until
//! SIGTERM or Ctrl-C, then shuts down gracefully (mini-redis's `shutdown.rs` is the model).
//!
//! Each transport is a task given the shared [`Engines`] and a shutdown signal; a transport that
//! fails to start is reported and the others keep serving.
//!
//! Shutdown, on the first signal:
//! 1. no new calls ([`Engines::close`]): SIP answers 503 with Retry-After, the web phone says the
//!    line is closed, `/healthz` says `closing`;
//! 2. calls in progress go on, for up to `server.drain_timeout_s`;
//! 3. the rest hear a spoken goodbye and are hung up (`server.shutdown`);
//! 4. the transports stop once every call's record is closed.
//!
//! A second signal skips the waiting: every call is hung up at once, and the server still
//! waits (briefly) for their records to close.
//!
//! At start, before any call, the call store is opened (its migrations applied; a store that
//! cannot open stops the start) and records a crash left unfinished are made whole
//! ([`crate::call::record::recover`]). Finished records the store lacks are then added in
//! the background ([`StoreWriter::catch_up`]), and every call that ends is queued to it. At
//! start and every hour, records kept longer than `server.retain_days` (recordings:
//! `recording_retain_days`) are deleted ([`crate::call::retention`]), from the store too.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::call::retention::{self, RetentionPolicy};
use crate::call::Engines;
use crate::store::writer::StoreWriter;
use crate::store::{Store, StoreError};

/// Tells transports to stop: they see `true` on the channel.
pub type Shutdown = watch::Receiver<bool>;

/// The longest the goodbyes may take (synthesis and playout) before the calls are cut.
const GOODBYE_LIMIT: Duration = Duration::from_secs(15);
/// The longest calls that were hung up may take to close their records (the line's media
/// counters wait at most `call::MEDIA_REPORT_WAIT`).
const RECORD_CLOSE_LIMIT: Duration = Duration::from_secs(5);

/// SIGTERM and Ctrl-C (SIGINT), as one stream of shutdown requests.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            let term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => Some(term),
                    Err(e) => {
                        tracing::warn!("cannot listen for SIGTERM ({e}); Ctrl-C still stops");
                        None
                    }
                };
            Self { term }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Resolves at the next SIGTERM or Ctrl-C.
    async fn next(&mut self) {
        #[cfg(unix)]
        {
            let term = async {
                match self.term.as_mut() {
                    Some(term) => {
                        term.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = term => {}
                r = tokio::signal::ctrl_c() => {
                    if let Err(e) = r {
                        tracing::warn!("cannot listen for Ctrl-C: {e}");
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs the server until SIGTERM or Ctrl-C, then shuts down as the module docs say. Fails
/// only when the call store cannot be opened (before any call is taken).
pub async fn serve(engines: Arc<Engines>) -> Result<(), StoreError> {
    let config = &engines.config;
    let store = Store::open(&config.store.url_for(&config.server.records_dir)).await?;
    let writer = StoreWriter::start(
        store.clone(),
        config.qa.clone(),
        config.store.batch_max,
        config.store.queue,
    );
    // Records a crash left unfinished are made whole before any new call starts.
    let records_dir = engines.config.server.records_dir.clone();
    let recovery =
        tokio::task::spawn_blocking(move || crate::call::record::recover(&records_dir)).await;
    if let Ok(recovery) = recovery {
        for dir in &recovery.recovered {
            tracing::warn!(record = %dir.display(), "recovered a call record the last run left unfinished (hangup server.crash)");
        }
        for (dir, why) in &recovery.failed {
            tracing::error!(record = %dir.display(), "cannot recover an unfinished call record: {why}");
        }
    }
    // Finished calls the store lacks (a crash came before they were written) are added while
    // the server already takes calls.
    let _ = engines.store.set(writer.clone());
    let _ = engines.desk.set(crate::agents::desk::AgentDesk::start(
        &engines.config.agents,
    ));
    tokio::spawn(catch_up(
        writer.clone(),
        engines.config.server.records_dir.clone(),
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(keep_records_within_retention(
        store,
        engines.config.server.records_dir.clone(),
        RetentionPolicy {
            retain_days: engines.config.server.retain_days,
            recording_retain_days: engines.config.server.recording_retain_days,
        },
        stop_rx.clone(),
    ));
    let mut transports: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
    transports.spawn(crate::web::run(engines.clone(), stop_rx.clone()));
    transports.spawn(crate::phone::run(engines.clone(), stop_rx));
    tracing::info!(
        asr = engines.asr.engine_name(),
        max_calls = engines.config.server.max_calls,
        "hotline is ready"
    );
    let mut signals = Signals::new();
    signals.next().await;
    drain(&engines, &mut signals).await;
    // Transports stop last: every call has ended and closed its record by now (or was given
    // its chance to).
    let _ = stop_tx.send(true);
    while transports.join_next().await.is_some() {}
    writer.flush().await;
    tracing::info!("hotline stopped");
    Ok(())
}

/// Stores the finished records the store lacks; one log line when there were some.
async fn catch_up(writer: StoreWriter, records_dir: PathBuf) {
    match writer.catch_up(&records_dir).await {
        Ok(report) if report.stored > 0 => tracing::info!(
            stored = report.stored,
            records = report.finished,
            "store: added finished calls it lacked"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!("store: cannot catch up with the records: {e}"),
    }
}

/// How often retention looks for records past their time.
const RETENTION_EVERY: Duration = Duration::from_secs(60 * 60);

/// Deletes what `policy` says has been kept long enough, at start-up and then every hour, on
/// the blocking pool; one log line for each pass that deleted something. Ends at shutdown.
async fn keep_records_within_retention(
    store: Store,
    records_dir: PathBuf,
    policy: RetentionPolicy,
    mut stop: watch::Receiver<bool>,
) {
    if !policy.prunes() {
        return;
    }
    loop {
        let dir = records_dir.clone();
        let pruned = tokio::task::spawn_blocking(move || {
            retention::prune(&dir, policy, std::time::SystemTime::now())
        })
        .await;
        if let Ok(report) = pruned {
            if report.records_deleted + report.recordings_deleted > 0 {
                tracing::info!(
                    records = report.records_deleted,
                    recordings = report.recordings_deleted,
                    mib_freed = report.bytes_freed / (1024 * 1024),
                    "retention: deleted records past server.retain_days / recording_retain_days"
                );
            }
            for (path, why) in &report.failed {
                tracing::warn!(path = %path.display(), "retention: cannot delete: {why}");
            }
        }
        if policy.retain_days > 0 {
            let cutoff = crate::call::unix_ms_now()
                .saturating_sub(u64::from(policy.retain_days) * 86_400_000);
            match store.delete_before(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    calls = n,
                    "retention: deleted stored calls past server.retain_days"
                ),
                Err(e) => tracing::warn!("retention: cannot delete stored calls: {e}"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RETENTION_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Steps 1 to 3 of the shutdown; a second signal cuts them short.
async fn drain(engines: &Engines, signals: &mut Signals) {
    engines.close();
    let drain = Duration::from_secs(engines.config.server.drain_timeout_s);
    let active = engines.active_calls();
    tracing::info!(
        active,
        drain_timeout_s = drain.as_secs(),
        "shutting down: no new calls; calls in progress may finish"
    );
    let graceful = async {
        if engines.wait_idle(drain).await {
            return;
        }
        tracing::info!(
            active = engines.active_calls(),
            "drain timeout: saying goodbye to the calls still in progress"
        );
        engines.end_calls(true);
        if !engines.wait_idle(GOODBYE_LIMIT).await {
            tracing::warn!(
                active = engines.active_calls(),
                "goodbyes did not finish; hanging up"
            );
            engines.end_calls(false);
            engines.wait_idle(RECORD_CLOSE_LIMIT).await;
        }
    };
    tokio::select! {
        _ = graceful => {}
        _ = signals.next() => {
            tracing::info!(active = engines.active_calls(), "second signal: hanging up every call now");
            engines.end_calls(false);
            if !engines.wait_idle(RECORD_CLOSE_LIMIT).await {
                tracing::warn!(active = engines.active_calls(), "some call records did not close in time");
            }
        }
    }
}
