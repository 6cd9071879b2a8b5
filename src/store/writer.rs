//! Fills the store from finished record folders, in batches, off the media path.
//!
//! A call that ends hands its folder to [`StoreWriter::call_finished`], which never blocks:
//! the folder joins a bounded queue. One task takes what is waiting (up to `store.batch_max`),
//! reads and checks the folders on the blocking pool ([`StoredCall::read`]), and writes them in
//! one transaction. A call that never connected (no ACK) is logged and not stored. A full
//! queue, or a write that fails, costs the store nothing for good: the
//! folder stays, and [`StoreWriter::catch_up`] at the next start stores every finished folder
//! the store lacks. That is also how calls a crash (`kill -9`) kept out get in.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError, StoredCall};
use crate::insight::qa::QaConfig;

enum Job {
    Store(PathBuf),
    /// Answers once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// The handle calls use to reach the store.
#[derive(Clone)]
pub struct StoreWriter {
    jobs: mpsc::Sender<Job>,
    store: Store,
}

/// How a catch-up went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CatchUp {
    /// Finished folders found.
    pub finished: usize,
    /// Of them, newly stored.
    pub stored: usize,
}

impl StoreWriter {
    /// Starts the writing task. It ends when every handle is dropped, after writing what is
    /// queued.
    pub fn start(store: Store, qa: QaConfig, batch_max: usize, queue: usize) -> Self {
        let (jobs, rx) = mpsc::channel(queue.max(1));
        tokio::spawn(write_batches(
            store.clone(),
            Arc::new(qa),
            batch_max.max(1),
            rx,
        ));
        Self { jobs, store }
    }

    /// The store it writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A call's record folder is finished: queue it to be stored. Never blocks.
    pub fn call_finished(&self, dir: PathBuf) {
        if let Err(e) = self.jobs.try_send(Job::Store(dir)) {
            let dir = match e {
                mpsc::error::TrySendError::Full(Job::Store(d))
                | mpsc::error::TrySendError::Closed(Job::Store(d)) => d,
                _ => return,
            };
            tracing::warn!(record = %dir.display(), "the store's queue is full; the call is stored at the next start");
        }
    }

    /// Resolves once every call queued before it is written (or its write failed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Stores every finished folder in `records_dir` that the store lacks (at start-up, after
    /// unfinished records are recovered), and waits until they are written.
    pub async fn catch_up(&self, records_dir: &Path) -> Result<CatchUp, StoreError> {
        let known = self.store.call_ids().await?;
        let dir = records_dir.to_path_buf();
        let finished = tokio::task::spawn_blocking(move || finished_folders(&dir))
            .await
            .unwrap_or_default();
        let mut report = CatchUp {
            finished: finished.len(),
            stored: 0,
        };
        for folder in finished {
            let name = folder.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.is_some_and(|n| !known.contains(&n)) {
                report.stored += 1;
                if self.jobs.send(Job::Store(folder)).await.is_err() {
                    break;
                }
            }
        }
        self.flush().await;
        Ok(report)
    }
}

/// The finished record folders (with `transcript.txt`) in `records_dir`.
fn finished_folders(records_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(records_dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("transcript.txt").is_file())
        .collect();
    dirs.sort();
    dirs
}

async fn write_batches(
    store: Store,
    qa: Arc<QaConfig>,
    batch_max: usize,
    mut rx: mpsc::Receiver<Job>,
) {
    let mut jobs = Vec::with_capacity(batch_max);
    while rx.recv_many(&mut jobs, batch_max).await > 0 {
        let mut dirs = Vec::new();
        let mut flushes = Vec::new();
        for job in jobs.drain(..) {
            match job {
                Job::Store(dir) => dirs.push(dir),
                Job::Flush(done) => flushes.push(done),
            }
        }
        if !dirs.is_empty() {
            write_batch(&store, &qa, dirs).await;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Reads, checks and writes one batch; failures are logged, and the folders stay for the next
/// start's catch-up.
async fn write_batch(store: &Store, qa: &Arc<QaConfig>, dirs: Vec<PathBuf>) {
    let qa = qa.clone();
    let read = tokio::task::spawn_blocking(move || {
        let mut calls = Vec::with_capacity(dirs.len());
        for dir in dirs {
            match StoredCall::read(&dir, &qa) {
                Ok(Some(call)) if !call.summary.connected() => tracing::info!(
                    record = %dir.display(),
                    reason = %call.summary.end_reason,
                    "a call that never connected is not stored"
                ),
                Ok(Some(call)) => calls.push(call),
                Ok(None) => tracing::warn!(record = %dir.display(), "not a finished call record; not stored"),
                Err(e) => tracing::error!("cannot store a call: {e}"),
            }
        }
        calls
    })
    .await;
    let Ok(calls) = read else { return };
    if calls.is_empty() {
        return;
    }
    if let Err(e) = store.put_calls(&calls).await {
        tracing::error!(
            calls = calls.len(),
            "cannot write calls to the store (they are stored at the next start): {e}"
        );
    }
}
