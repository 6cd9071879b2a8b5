//! Retention: how long finished call records, and their recordings, are kept.
//!
//! `server.retain_days` deletes a whole record folder once it has been finished that long;
//! `server.recording_retain_days` deletes only its `recording.wav` sooner (the recording is
//! nearly all of a record's size: 64 KB a second), keeping the events and the transcript.
//! 0 keeps them for ever (the default).
//!
//! [`plan`] is sans-IO: given the records with their finish times and the time now, it says
//! what goes. [`prune`] reads the folder, applies the plan and reports; `hotline serve` runs
//! it at start-up and then every hour, on the blocking pool.
//!
//! Invariants: only finished records (with `transcript.txt`) are ever touched, so a call in
//! progress, or one a crash left for [`super::record::recover`], is never deleted; a record's
//! age is its `transcript.txt`'s modification time (when it was finished); nothing outside
//! `records_dir`'s own sub-folders is touched.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// How long records are kept (`[server]` `retain_days`, `recording_retain_days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionPolicy {
    /// Whole records, in days; 0: for ever.
    pub retain_days: u32,
    /// Recordings only, in days; 0: as long as the record.
    pub recording_retain_days: u32,
}

impl RetentionPolicy {
    /// Whether anything is ever deleted.
    pub fn prunes(&self) -> bool {
        self.retain_days > 0 || self.recording_retain_days > 0
    }
}

/// One finished record, as [`plan`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub dir: PathBuf,
    /// When the call's record was finished.
    pub finished: SystemTime,
    /// Whether it still has its recording.
    pub has_recording: bool,
}

/// What retention deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prune {
    /// The whole record folder.
    Record(PathBuf),
    /// Only the record's `recording.wav`.
    Recording(PathBuf),
}

/// What goes, now, under `policy` (see the module docs).
pub fn plan(records: &[StoredRecord], policy: RetentionPolicy, now: SystemTime) -> Vec<Prune> {
    let older_than = |record: &StoredRecord, days: u32| {
        days > 0
            && now
                .duration_since(record.finished)
                .is_ok_and(|age| age >= DAY * days)
    };
    records
        .iter()
        .filter_map(|record| {
            if older_than(record, policy.retain_days) {
                Some(Prune::Record(record.dir.clone()))
            } else if record.has_recording && older_than(record, policy.recording_retain_days) {
                Some(Prune::Recording(record.dir.clone()))
            } else {
                None
            }
        })
        .collect()
}

/// What [`prune`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    pub records_deleted: usize,
    pub recordings_deleted: usize,
    pub bytes_freed: u64,
    /// What could not be deleted, and why.
    pub failed: Vec<(PathBuf, String)>,
}

/// Applies [`plan`] to the records under `records_dir`, at `now`.
pub fn prune(records_dir: &Path, policy: RetentionPolicy, now: SystemTime) -> PruneReport {
    let mut report = PruneReport::default();
    if !policy.prunes() {
        return report;
    }
    let Ok(entries) = std::fs::read_dir(records_dir) else {
        return report;
    };
    let records: Vec<StoredRecord> = entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|entry| {
            let dir = entry.path();
            let finished = std::fs::metadata(dir.join("transcript.txt"))
                .and_then(|m| m.modified())
                .ok()?;
            Some(StoredRecord {
                has_recording: dir.join("recording.wav").is_file(),
                dir,
                finished,
            })
        })
        .collect();
    for prune in plan(&records, policy, now) {
        match prune {
            Prune::Record(dir) => {
                let size = folder_size(&dir);
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => {
                        report.records_deleted += 1;
                        report.bytes_freed += size;
                    }
                    Err(e) => report.failed.push((dir, e.to_string())),
                }
            }
            Prune::Recording(dir) => {
                let wav = dir.join("recording.wav");
                let size = std::fs::metadata(&wav).map_or(0, |m| m.len());
                match std::fs::remove_file(&wav) {
                    Ok(()) => {
                        report.recordings_deleted += 1;
                        report.bytes_freed += size;
                    }
                    Err(e) => report.failed.push((wav, e.to_string())),
                }
            }
        }
    }
    report
}

/// The bytes of the files directly in `dir` (a record has no sub-folders).
fn folder_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, age_days: u64, has_recording: bool, now: SystemTime) -> StoredRecord {
        StoredRecord {
            dir: PathBuf::from(name),
            finished: now - DAY * age_days as u32 - Duration::from_secs(1),
            has_recording,
        }
    }

    #[test]
    fn old_records_go_whole_and_recordings_go_sooner() {
        let now = SystemTime::now();
        let records = [
            record("fresh", 0, true, now),
            record("week", 7, true, now),
            record("month", 31, true, now),
            record("week-no-wav", 8, false, now),
        ];
        let policy = RetentionPolicy {
            retain_days: 30,
            recording_retain_days: 7,
        };
        assert_eq!(
            plan(&records, policy, now),
            vec![
                Prune::Recording(PathBuf::from("week")),
                Prune::Record(PathBuf::from("month")),
            ]
        );
        assert!(plan(&records, RetentionPolicy::default(), now).is_empty());
    }

    #[test]
    fn a_clock_set_back_deletes_nothing() {
        let now = SystemTime::now();
        let future = StoredRecord {
            dir: PathBuf::from("future"),
            finished: now + DAY * 40,
            has_recording: true,
        };
        let policy = RetentionPolicy {
            retain_days: 1,
            recording_retain_days: 1,
        };
        assert!(plan(&[future], policy, now).is_empty());
    }
}
