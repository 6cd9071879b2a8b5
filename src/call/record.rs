//! A call's record: `events.jsonl`, `recording.wav` (stereo: caller left, bot right, aligned as
//! the caller heard it) and `transcript.txt` (both sides, with times).
//!
//! Events are appended to `events.jsonl` as they happen, and the recording is written tick by
//! tick (through a small buffer), so a call holds no audio in memory and a crash loses only the
//! WAV header's lengths (the samples are on disk). The header is completed, and the transcript
//! written, when the call ends.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::audio::{Frame, SAMPLE_RATE_HZ};
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
}

impl CallRecord {
    /// Creates the folder and `events.jsonl`.
    pub fn create(dir: &Path) -> Result<Self, RecordError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| RecordError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let events_path = dir.join("events.jsonl");
        let file = File::create(&events_path).map_err(io(&events_path))?;
        let wav_path = dir.join("recording.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: SAMPLE_RATE_HZ,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let recording =
            hound::WavWriter::create(&wav_path, spec).map_err(|e| RecordError::Wav {
                path: wav_path.display().to_string(),
                message: e.to_string(),
            })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            events_file: BufWriter::new(file),
            events: Vec::new(),
            recording: Some(recording),
            recording_error: None,
        })
    }

    /// The record's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The events so far.
    pub fn events(&self) -> &[CallEvent] {
        &self.events
    }

    /// Appends an event.
    pub fn event(&mut self, event: &CallEvent) -> Result<(), RecordError> {
        let line = serde_json::to_string(event).expect("events always serialize");
        let path = self.dir.join("events.jsonl");
        writeln!(self.events_file, "{line}")
            .and_then(|_| self.events_file.flush())
            .map_err(|source| RecordError::Io {
                path: path.display().to_string(),
                source,
            })?;
        self.events.push(event.clone());
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
            EventKind::BotHeard { text, .. } => {
                format!("{stamp} -- the caller cut the bot; they heard: {text}")
            }
            EventKind::BotResumed { reason, .. } => {
                format!("{stamp} -- the bot went on ({reason})")
            }
            EventKind::Dtmf { digit } => format!("{stamp} caller pressed {digit}"),
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
