//! Retention: a server with `retain_days = 30` and `recording_retain_days = 7` deletes, when it
//! starts, the record finished 40 days ago, and the recording (only) of the one finished 10
//! days ago; it keeps a fresh record, and a record a crash left unfinished (it recovers it
//! instead: its time has not come).

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::hotline::Hotline;

/// A finished record (events, recording, transcript) finished `age_days` ago.
fn finished_record(dir: &Path, age_days: u64) {
    std::fs::create_dir_all(dir).expect("record dir");
    std::fs::write(
        dir.join("events.jsonl"),
        "{\"t_ms\":0,\"type\":\"call_start\"}\n{\"t_ms\":900,\"type\":\"hangup\",\"reason\":\"caller.hangup\"}\n",
    )
    .expect("events");
    std::fs::write(dir.join("recording.wav"), vec![0u8; 64_044]).expect("recording");
    let transcript = dir.join("transcript.txt");
    std::fs::write(&transcript, "[00:00.9] -- call ended (caller.hangup)\n").expect("transcript");
    let finished = SystemTime::now() - Duration::from_secs(age_days * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&transcript)
        .and_then(|f| f.set_modified(finished))
        .expect("set the finish time");
}

#[test]
fn old_records_and_recordings_are_deleted_and_the_rest_kept() {
    let mut hotline = Hotline::start_with_server(
        2,
        "retain_days = 30\nrecording_retain_days = 7\n",
        "port = 0\n",
    );
    let records = hotline.records.clone();
    finished_record(&records.join("old"), 40);
    finished_record(&records.join("last-week"), 10);
    finished_record(&records.join("today"), 0);
    let unfinished = records.join("crashed");
    std::fs::create_dir_all(&unfinished).expect("dir");
    std::fs::write(
        unfinished.join("events.jsonl"),
        "{\"t_ms\":0,\"type\":\"call_start\"}\n",
    )
    .expect("events");

    hotline.kill_and_restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while records.join("old").exists() {
        assert!(
            Instant::now() < deadline,
            "the 40-day-old record is still there:\n{}",
            hotline.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !records.join("last-week/recording.wav").exists(),
        "the 10-day-old recording is kept"
    );
    for kept in ["last-week/events.jsonl", "last-week/transcript.txt"] {
        assert!(records.join(kept).is_file(), "{kept} was deleted");
    }
    for kept in ["today/recording.wav", "today/transcript.txt"] {
        assert!(records.join(kept).is_file(), "{kept} was deleted");
    }
    assert!(
        unfinished.join("transcript.txt").is_file(),
        "the unfinished record was not recovered (or was deleted)"
    );
    assert!(
        hotline.log_text().contains("retention: deleted"),
        "no log line says what retention deleted:\n{}",
        hotline.log_text()
    );
}
