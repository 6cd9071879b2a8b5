//! A call's record: `events.jsonl`, `recording.wav` (stereo: caller left, bot right, aligned as
//! the caller heard it) and `transcript.txt` (both sides, with times).
//!
//! Events are appended to `events.jsonl` as they happen, and the recording is written tick by
//! tick (through a small buffer), so a call holds no audio in memory and a crash loses only the
//! WAV header's lengths (the samples are on disk). The header is completed, and the transcript
//! written, when the call ends: a record with `transcript.txt` is finished.
//!
//! [`recover`] runs when the server starts: a record left unfinished by a crash (killed, power
//! lost) gets its WAV header's lengths from the samples on disk, loses a half-written last event
//! line, gains a `hangup` with `server.crash` at the time of its last event, and is finished.
//! Finished records are not touched.
//!
//! With a [`CallRedaction`] (live calls and replays), events are stored as it masks them: no
//! card, id, phone number, email or `sensitive` slot value it finds reaches the disk.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::audio::{Frame, SAMPLE_RATE_HZ};
use crate::privacy::{CallRedaction, PrivacyError, RawKey};
use crate::session::{CallEvent, EventKind};

/// A record that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Wav { path: String, message: String },
    #[error("{path}: {source}")]
    Raw { path: String, source: PrivacyError },
}

/// Writes one call's record into a folder.
pub struct CallRecord {
    dir: PathBuf,
    events_file: BufWriter<File>,
    events: Vec<CallEvent>,
    /// `recording.wav`, written as the call goes: interleaved stereo, caller then bot. `None`
    /// after a write failed (the failure is kept for [`CallRecord::finish`]).
    recording: Option<hound::WavWriter<BufWriter<File>>>,
    recording_error: Option<String>,
    /// Masks personal data before an event is stored (`None`: stored as it is).
    redaction: Option<CallRedaction>,
    /// `raw.jsonl.enc`: every event unmasked, each line sealed (`privacy.keep_raw`).
    raw: Option<(Arc<RawKey>, BufWriter<File>)>,
}

impl CallRecord {
    /// Creates the folder, `events.jsonl` and `recording.wav`.
    pub fn create(dir: &Path) -> Result<Self, RecordError> {
        Self::create_with(dir, true)
    }

    /// Creates the folder and `events.jsonl`, and `recording.wav` when `audio` (a flow with
    /// `record_audio = false` keeps no audio: the record has events and a transcript only).
    pub fn create_with(dir: &Path, audio: bool) -> Result<Self, RecordError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| RecordError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let events_path = dir.join("events.jsonl");
        let file = File::create(&events_path).map_err(io(&events_path))?;
        let recording = if audio {
            let wav_path = dir.join("recording.wav");
            let spec = hound::WavSpec {
                channels: 2,
                sample_rate: SAMPLE_RATE_HZ,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let writer =
                hound::WavWriter::create(&wav_path, spec).map_err(|e| RecordError::Wav {
                    path: wav_path.display().to_string(),
                    message: e.to_string(),
                })?;
            Some(writer)
        } else {
            None
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            events_file: BufWriter::new(file),
            events: Vec::new(),
            recording,
            recording_error: None,
            redaction: None,
            raw: None,
        })
    }

    /// Also keeps every event unmasked in `raw.jsonl.enc`, each line sealed with `key`.
    pub fn with_raw(mut self, key: Arc<RawKey>) -> Result<Self, RecordError> {
        let path = self.dir.join("raw.jsonl.enc");
        let file = File::create(&path).map_err(|source| RecordError::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.raw = Some((key, BufWriter::new(file)));
        Ok(self)
    }

    /// Stores events as `redaction` masks them (`[privacy]`): events.jsonl and transcript.txt
    /// keep no personal data it finds.
    pub fn with_redaction(mut self, redaction: CallRedaction) -> Self {
        self.redaction = Some(redaction);
        self
    }

    /// The record's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The events so far.
    pub fn events(&self) -> &[CallEvent] {
        &self.events
    }

    /// Appends an event (redacted, with a redaction).
    pub fn event(&mut self, event: &CallEvent) -> Result<(), RecordError> {
        let stored = match self.redaction.as_mut() {
            Some(redaction) => redaction.event(event),
            None => event.clone(),
        };
        let line = serde_json::to_string(&stored).expect("events always serialize");
        let path = self.dir.join("events.jsonl");
        writeln!(self.events_file, "{line}")
            .and_then(|_| self.events_file.flush())
            .map_err(|source| RecordError::Io {
                path: path.display().to_string(),
                source,
            })?;
        self.events.push(stored);
        if let Some((key, file)) = self.raw.as_mut() {
            let raw = serde_json::to_string(event).expect("events always serialize");
            let path = self.dir.join("raw.jsonl.enc");
            let io = |source| RecordError::Io {
                path: path.display().to_string(),
                source,
            };
            let sealed = key
                .seal(raw.as_bytes())
                .map_err(|e| io(std::io::Error::other(e.to_string())))?;
            writeln!(file, "{sealed}")
                .and_then(|_| file.flush())
                .map_err(io)?;
        }
        Ok(())
    }

    /// Appends one 20 ms tick: what the caller sent and what the bot sent back.
    pub fn audio(&mut self, caller: &Frame, bot: Option<&Frame>) {
        let Some(recording) = self.recording.as_mut() else {
            return;
        };
        let silence = Frame::silence();
        let bot = bot.unwrap_or(&silence);
        let written = caller
            .samples()
            .iter()
            .zip(bot.samples().iter())
            .try_for_each(|(c, b)| {
                recording.write_sample(*c)?;
                recording.write_sample(*b)
            });
        if let Err(e) = written {
            // The rest of the call is not recorded; the events go on, and finish says why.
            self.recording = None;
            self.recording_error = Some(e.to_string());
        }
    }

    /// Writes `transcript.txt` and completes `recording.wav`.
    pub fn finish(mut self) -> Result<PathBuf, RecordError> {
        let _ = self.events_file.flush();
        // The transcript first: a recording that failed does not cost it.
        let transcript_path = self.dir.join("transcript.txt");
        std::fs::write(&transcript_path, transcript_text(&self.events)).map_err(|source| {
            RecordError::Io {
                path: transcript_path.display().to_string(),
                source,
            }
        })?;
        let wav_path = self.dir.join("recording.wav");
        let wav_error = |message: String| RecordError::Wav {
            path: wav_path.display().to_string(),
            message,
        };
        if let Some(recording) = self.recording.take() {
            recording.finalize().map_err(|e| wav_error(e.to_string()))?;
        }
        if let Some(message) = self.recording_error.take() {
            return Err(wav_error(message));
        }
        Ok(self.dir)
    }
}

/// Both sides of the conversation, one line each, with call times.
pub fn transcript_text(events: &[CallEvent]) -> String {
    let mut out = String::new();
    for event in events {
        let stamp = format!(
            "[{:02}:{:02}.{:01}]",
            event.t_ms / 60_000,
            (event.t_ms / 1000) % 60,
            (event.t_ms % 1000) / 100
        );
        let line = match &event.kind {
            EventKind::Transcript {
                text,
                is_final: true,
                ..
            } => format!("{stamp} caller: {text}"),
            EventKind::BotReply { text, .. } => format!("{stamp} bot: {text}"),
            EventKind::AgentTranscript { agent, text } => format!("{stamp} agent {agent}: {text}"),
            EventKind::BotHeard { text, .. } => {
                format!("{stamp} -- the caller cut the bot; they heard: {text}")
            }
            EventKind::BotResumed { reason, .. } => {
                format!("{stamp} -- the bot went on ({reason})")
            }
            EventKind::Dtmf { digit, .. } => format!("{stamp} caller pressed {digit}"),
            EventKind::Transfer { target, reason } => {
                format!("{stamp} -- transferred to {target} ({reason})")
            }
            EventKind::TransferFailed { target, reason } => {
                format!("{stamp} -- transfer to {target} failed ({reason})")
            }
            EventKind::Hangup { reason } => format!("{stamp} -- call ended ({reason})"),
            _ => continue,
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The unmasked events of a record kept with `privacy.keep_raw`, one JSON line each, read
/// back with `key` (`hotline records open`).
pub fn open_raw(dir: &Path, key: &RawKey) -> Result<Vec<String>, RecordError> {
    let path = dir.join("raw.jsonl.enc");
    let text = std::fs::read_to_string(&path).map_err(|source| RecordError::Io {
        path: path.display().to_string(),
        source,
    })?;
    // A crash can leave the last line half-written (no newline after it): it is dropped, as
    // `recover` drops a half-written event line.
    let lines: Vec<&str> = text.lines().collect();
    let whole = if text.ends_with('\n') {
        lines.len()
    } else {
        lines.len().saturating_sub(1)
    };
    lines[..whole]
        .iter()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let plain = key.open(line, i + 1).map_err(|e| RecordError::Raw {
                path: path.display().to_string(),
                source: e,
            })?;
            String::from_utf8(plain).map_err(|_| RecordError::Raw {
                path: path.display().to_string(),
                source: PrivacyError::RawLine { line: i + 1 },
            })
        })
        .collect()
}

/// What [`recover`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Unfinished records made whole.
    pub recovered: Vec<PathBuf>,
    /// Records that could not be (each with why); they are left as they are.
    pub failed: Vec<(PathBuf, String)>,
}

/// Finishes every record under `records_dir` that a crash left unfinished (see the module docs).
pub fn recover(records_dir: &Path) -> Recovery {
    let mut recovery = Recovery::default();
    let Ok(entries) = std::fs::read_dir(records_dir) else {
        return recovery;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let unfinished = dir.join("events.jsonl").is_file() && !dir.join("transcript.txt").exists();
        if !unfinished {
            continue;
        }
        match recover_one(&dir) {
            Ok(()) => recovery.recovered.push(dir),
            Err(e) => recovery.failed.push((dir, e.to_string())),
        }
    }
    recovery.recovered.sort();
    recovery
}

fn recover_one(dir: &Path) -> Result<(), RecordError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| RecordError::Io { path, source }
    };
    // The events: every whole line that parses; a half-written last one is dropped.
    let events_path = dir.join("events.jsonl");
    let text = std::fs::read_to_string(&events_path).map_err(io(&events_path))?;
    let mut events: Vec<CallEvent> = text
        .lines()
        .map_while(|line| serde_json::from_str::<CallEvent>(line).ok())
        .collect();
    let ended = events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Hangup { .. }));
    if !ended {
        let t_ms = events.last().map_or(0, |e| e.t_ms);
        events.push(CallEvent {
            t_ms,
            kind: EventKind::Hangup {
                reason: crate::session::EndReason::ServerCrash,
            },
        });
    }
    let mut lines = String::new();
    for event in &events {
        let line = serde_json::to_string(event).map_err(|e| RecordError::Io {
            path: events_path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        lines.push_str(&line);
        lines.push('\n');
    }
    write_replacing(&events_path, lines.as_bytes()).map_err(io(&events_path))?;
    // The recording: its header's lengths from the samples on disk.
    let wav_path = dir.join("recording.wav");
    if wav_path.is_file() {
        repair_wav_lengths(&wav_path).map_err(io(&wav_path))?;
    }
    let transcript_path = dir.join("transcript.txt");
    std::fs::write(&transcript_path, transcript_text(&events)).map_err(io(&transcript_path))?;
    Ok(())
}

/// Writes `content` to a new file beside `path` and renames it over `path`.
fn write_replacing(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let staging = path.with_extension("recovering");
    std::fs::write(&staging, content)?;
    std::fs::rename(&staging, path)
}

/// Sets a canonical WAV file's RIFF and `data` lengths from its size on disk (whole stereo
/// frames only), as a crash before the header was completed leaves them.
fn repair_wav_lengths(path: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let size = file.metadata()?.len();
    let mut header = [0u8; 12];
    file.read_exact(&mut header)?;
    if &header[0..4] != b"RIFF" || &header[8..12] != b"WAVE" {
        return Err(std::io::Error::other("not a RIFF/WAVE file"));
    }
    // Walk the chunks to `data`.
    let mut at = 12u64;
    loop {
        let mut chunk = [0u8; 8];
        file.seek(SeekFrom::Start(at))?;
        file.read_exact(&mut chunk)?;
        let length = u64::from(u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]));
        if &chunk[0..4] == b"data" {
            let start = at + 8;
            // Whole frames of two 16-bit samples.
            let data = (size.saturating_sub(start) / 4) * 4;
            file.set_len(start + data)?;
            file.seek(SeekFrom::Start(at + 4))?;
            file.write_all(&(data.min(u64::from(u32::MAX)) as u32).to_le_bytes())?;
            file.seek(SeekFrom::Start(4))?;
            let riff = (start + data - 8).min(u64::from(u32::MAX)) as u32;
            file.write_all(&riff.to_le_bytes())?;
            return file.sync_all();
        }
        at += 8 + length + (length & 1);
        if at >= size {
            return Err(std::io::Error::other("no data chunk"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::EndReason;

    #[test]
    fn a_record_left_by_a_crash_is_made_whole_and_a_finished_one_is_left_alone() {
        let root = tempfile::tempdir().expect("tempdir");
        // A finished call.
        let done = root.path().join("done");
        let mut record = CallRecord::create(&done).expect("create");
        record
            .event(&CallEvent {
                t_ms: 0,
                kind: EventKind::Hangup {
                    reason: EndReason::CallerHangup,
                },
            })
            .expect("event");
        record.finish().expect("finish");
        let done_events = std::fs::read(done.join("events.jsonl")).expect("read");
        // A call in progress when the server died: events and two seconds of audio on disk,
        // a half-written event line, and no WAV header lengths.
        let crashed = root.path().join("crashed");
        let mut record = CallRecord::create(&crashed).expect("create");
        record
            .event(&CallEvent {
                t_ms: 1_500,
                kind: EventKind::BotReply {
                    turn: crate::session::event::TurnId(1),
                    text: "Hello.".into(),
                },
            })
            .expect("event");
        let tone = Frame::from_slice(&[1000; 320]);
        for _ in 0..100 {
            record.audio(&tone, Some(&tone));
        }
        std::mem::forget(record); // no finish, no drop: what SIGKILL leaves
        let mut events = std::fs::OpenOptions::new()
            .append(true)
            .open(crashed.join("events.jsonl"))
            .expect("open");
        write!(events, "{{\"t_ms\":17").expect("half a line");
        drop(events);

        let recovery = recover(root.path());
        assert_eq!(recovery.recovered, vec![crashed.clone()], "{recovery:?}");
        assert!(recovery.failed.is_empty());
        let reader = hound::WavReader::open(crashed.join("recording.wav")).expect("readable WAV");
        assert_eq!(reader.spec().channels, 2);
        let frames = reader.duration();
        assert!(
            (16_000..=32_000).contains(&frames),
            "the audio on disk is readable: {frames} frames"
        );
        let text = std::fs::read_to_string(crashed.join("events.jsonl")).expect("events");
        let kinds: Vec<String> = text
            .lines()
            .map(|l| {
                let e: CallEvent = serde_json::from_str(l).expect("every line parses");
                e.kind.type_name().to_string()
            })
            .collect();
        assert_eq!(kinds, vec!["bot_reply", "hangup"]);
        assert!(text.contains("server.crash"));
        assert!(crashed.join("transcript.txt").is_file());
        assert_eq!(
            std::fs::read(done.join("events.jsonl")).expect("read"),
            done_events,
            "a finished record is not touched"
        );
        assert!(recover(root.path()).recovered.is_empty(), "once only");
    }
}
