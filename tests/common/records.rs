//! Reading call records: each call leaves `<records_dir>/<call id>/events.jsonl` (one JSON event
//! per line, with `t_ms` and `type`) and, where recorded, `recording.wav`.
//!
//! Readers never wait; the hotline harnesses poll them until a call is finished (its events hold
//! a `hangup`).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The events of one `events.jsonl`; lines that are not JSON are skipped.
pub fn read_events(path: &Path) -> Option<Vec<Value>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect(),
    )
}

/// The folders of every call record under `records_dir` (none when it does not exist yet).
pub fn call_dirs(records_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(records_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// The events of every finished call (one whose events hold a `hangup`) under `records_dir`.
pub fn finished_calls(records_dir: &Path) -> Vec<Vec<Value>> {
    call_dirs(records_dir)
        .iter()
        .filter_map(|dir| read_events(&dir.join("events.jsonl")))
        .filter(|events| events.iter().any(|e| e["type"] == "hangup"))
        .collect()
}

/// The events of one kind.
pub fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// The first event of a kind; fails naming the kind and listing the events.
pub fn first<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {events:#?}"))
}

/// The texts of the final transcripts, in order.
pub fn final_transcripts(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e["type"] == "transcript" && e["final"] == true)
        .filter_map(|e| e["text"].as_str())
        .collect()
}

/// The DTMF keys of `dtmf` events, in order.
pub fn dtmf_digits(events: &[Value]) -> Vec<&str> {
    of_type(events, "dtmf")
        .into_iter()
        .filter_map(|e| e["digit"].as_str())
        .collect()
}

/// 20 ms frames louder than `threshold` RMS in a WAV file, its channels mixed (what a softphone
/// wrote of its call).
pub fn loud_frames(path: &Path, threshold: f32) -> usize {
    let pcm = read_pcm(path);
    count_loud(&pcm.to_mono(), pcm.sample_rate_hz, threshold)
}

/// 20 ms frames louder than `threshold` RMS in each channel of a WAV file. For a call's
/// `recording.wav` that is `[caller, bot]`.
pub fn loud_frames_per_channel(path: &Path, threshold: f32) -> Vec<usize> {
    let pcm = read_pcm(path);
    let channels = pcm.channels.max(1) as usize;
    (0..channels)
        .map(|channel| {
            let samples: Vec<i16> = pcm
                .samples
                .iter()
                .skip(channel)
                .step_by(channels)
                .copied()
                .collect();
            count_loud(&samples, pcm.sample_rate_hz, threshold)
        })
        .collect()
}

fn read_pcm(path: &Path) -> hotline::audio::wav::Pcm {
    hotline::audio::wav::read_wav(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn count_loud(samples: &[i16], sample_rate_hz: u32, threshold: f32) -> usize {
    let frame = (sample_rate_hz / 50).max(1) as usize;
    samples
        .chunks(frame)
        .filter(|f| hotline::audio::rms(f) > threshold)
        .count()
}
