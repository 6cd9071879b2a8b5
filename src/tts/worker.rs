//! The one synthesis worker of a [`super::TtsService`]: a thread that owns the engine, takes
//! units from the [`SpeechQueue`] and sends each reply's items to its stream.
//!
//! Invariants:
//! - the engine is touched by this thread only (no lock around it), one unit at a time;
//! - the queue lock is never held while a unit is rendered, so `speak`, `cancel` and a
//!   listener's receipt never wait for synthesis;
//! - the engine polls the unit's [`CancelToken`] while it works (espeak-ng once per 60 ms audio
//!   buffer), so a reply cancelled mid-sentence frees the worker within one buffer;
//! - a unit's report reaches the queue before its items are sent, and a unit whose reply was
//!   cancelled by then sends nothing (its audio is counted as discarded);
//! - when the worker stops (the last service handle is gone and the queue is idle, or the
//!   engine panicked), every queued reply gets [`TtsError::WorkerGone`] and its stream closes;
//!   later replies get the same error at once.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::mpsc;

use super::cache::{CacheKey, PcmCache};
use super::queue::{SpeechQueue, Unit, UnitReport, Work};
use super::{CancelToken, Synthesizer, TtsChunk, TtsError};
use crate::language::Language;

/// Where a reply's items go.
pub(crate) type Sink = mpsc::UnboundedSender<Result<TtsChunk, TtsError>>;

/// How many items a reply may run ahead of its listener (see the queue's policy).
pub(crate) const LOOKAHEAD_ITEMS: usize = 1;

/// What the service, its speech handles and the worker share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Signalled when the worker may have something to do.
    wake: Condvar,
}

/// Guarded by [`Shared::state`].
pub(crate) struct State {
    pub queue: SpeechQueue<Sink>,
    /// Every service handle is gone: stop once the queue is idle.
    pub closed: bool,
    /// The worker has stopped; nothing more will be spoken.
    pub gone: bool,
}

impl Shared {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                queue: SpeechQueue::new(LOOKAHEAD_ITEMS),
                closed: false,
                gone: false,
            }),
            wake: Condvar::new(),
        }
    }

    /// The state. Its operations do not panic midway, so a poisoned lock still holds
    /// consistent data.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the worker.
    pub fn wake(&self) {
        self.wake.notify_all();
    }
}

/// Everything the worker needs to turn a unit into audio.
pub(crate) struct Renderer {
    pub synthesizer: Box<dyn Synthesizer>,
    pub engine: &'static str,
    pub voice_en: String,
    pub voice_zh: String,
    pub rate_wpm: u32,
    pub prompts_dir: PathBuf,
    pub cache: Arc<Mutex<PcmCache>>,
}

/// Starts the worker thread.
pub(crate) fn spawn(shared: Arc<Shared>, renderer: Renderer) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("tts-worker".into())
        .spawn(move || run(&shared, renderer))
        .map(|_| ())
}

/// Marks the worker gone when its thread ends, even by a panic.
struct Stopped<'a>(&'a Shared);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        let sinks = {
            let mut state = self.0.lock();
            state.gone = true;
            state.queue.drain()
        };
        for sink in sinks {
            let _ = sink.send(Err(TtsError::WorkerGone));
        }
        self.0.wake();
    }
}

fn run(shared: &Shared, mut renderer: Renderer) {
    let _stopped = Stopped(shared);
    let mut state = shared.lock();
    loop {
        if let Some(work) = state.queue.take() {
            drop(state);
            let job = work.job;
            let cancel = work.cancel.clone();
            let sink = work.sink.clone();
            let (items, mut report) = renderer.render(work);
            state = shared.lock();
            if cancel.is_cancelled() {
                report.discarded = !items.is_empty();
                report.items_sent = 0;
                state.queue.finish(job, report);
            } else {
                report.items_sent = items.len() as u64;
                state.queue.finish(job, report);
                drop(state);
                for item in items {
                    if sink.send(item).is_err() {
                        break;
                    }
                }
                // The final unit's sink is the reply's last: dropping it closes the stream.
                drop(sink);
                state = shared.lock();
            }
            continue;
        }
        if state.closed && state.queue.is_idle() {
            return;
        }
        state = shared
            .wake
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

impl Renderer {
    /// Turns one unit into the items its listener gets: one chunk, or an error in its place;
    /// an unplayable prompt file gives its error and then its words spoken. Nothing when a
    /// cancel stopped the engine.
    fn render(&mut self, work: Work<Sink>) -> (Vec<Result<TtsChunk, TtsError>>, UnitReport) {
        let Work {
            unit,
            last,
            language,
            cancel,
            ..
        } = work;
        let mut report = UnitReport::default();
        let mut items = Vec::new();
        let started = Instant::now();
        let result = match &unit {
            Unit::Sentence(text) => self.sentence_pcm(text, language, &cancel, &mut report),
            Unit::File { file, text } => match self.prompt_file_pcm(file, &mut report) {
                Err(e) if !text.trim().is_empty() => {
                    // Say so in the record, then speak the prompt's words instead.
                    tracing::warn!(error = %e, "prompt file unplayable; speaking its text");
                    items.push(Err(e));
                    self.sentence_pcm(text, language, &cancel, &mut report)
                }
                other => other,
            },
        };
        match result {
            Err(TtsError::Cancelled { samples }) => {
                tracing::debug!(samples, "sentence aborted: its reply was cancelled");
                items.clear();
            }
            Err(e) => {
                tracing::warn!(error = %e, "speech unit failed");
                items.push(Err(e));
            }
            Ok((pcm, cached)) => items.push(Ok(TtsChunk {
                pcm: pcm.to_vec(),
                text: match &unit {
                    Unit::Sentence(text) | Unit::File { text, .. } => text.clone(),
                },
                last,
                compute: started.elapsed(),
                cached,
            })),
        }
        (items, report)
    }

    /// One sentence as 16 kHz PCM, from the cache or the engine; `true` when cached.
    fn sentence_pcm(
        &mut self,
        text: &str,
        language: Language,
        cancel: &CancelToken,
        report: &mut UnitReport,
    ) -> Result<(Arc<[i16]>, bool), TtsError> {
        let voice = match language {
            Language::En => &self.voice_en,
            Language::Zh => &self.voice_zh,
        };
        let key = CacheKey::Speech {
            engine: self.engine,
            language,
            voice: voice.clone(),
            rate_wpm: self.rate_wpm,
            text: text.to_string(),
        };
        if let Some(pcm) = self.cache().get(&key) {
            report.cache_hits += 1;
            return Ok((pcm, true));
        }
        let pcm: Arc<[i16]> = match self
            .synthesizer
            .synthesize_cancellable(text, language, cancel)
        {
            Ok(pcm) => Arc::from(pcm),
            Err(e) => {
                if matches!(e, TtsError::Cancelled { .. }) {
                    report.aborted += 1;
                }
                return Err(e);
            }
        };
        report.synthesized += 1;
        self.cache().insert(key, Arc::clone(&pcm));
        Ok((pcm, false))
    }

    /// A recorded prompt as 16 kHz PCM, from the cache or the file; `true` when cached.
    fn prompt_file_pcm(
        &mut self,
        file: &str,
        report: &mut UnitReport,
    ) -> Result<(Arc<[i16]>, bool), TtsError> {
        let path = super::prompt_path(&self.prompts_dir, file);
        let key = CacheKey::File(path.clone());
        if let Some(pcm) = self.cache().get(&key) {
            report.cache_hits += 1;
            return Ok((pcm, true));
        }
        let pcm: Arc<[i16]> = Arc::from(crate::audio::wav::read_wav_mono_16k(&path)?);
        self.cache().insert(key, Arc::clone(&pcm));
        Ok((pcm, false))
    }

    fn cache(&self) -> MutexGuard<'_, PcmCache> {
        // The cache holds plain data; a panic elsewhere cannot leave it inconsistent.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
