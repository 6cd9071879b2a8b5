//! Speech synthesis: what the bot says, as 16 kHz mono PCM, sentence by sentence.
//!
//! - [`Synthesizer`] is one engine that turns a sentence into PCM ([`EspeakSynthesizer`]:
//!   espeak-ng 1.52 in process, on its single espeak thread).
//! - [`TtsService`] is the shared, clonable front. [`TtsService::speak`] splits a bot turn's
//!   [`Prompt`]s into units (sentences, recorded prompt files), queues them as one reply and
//!   returns a [`Speech`]: a stream of [`TtsChunk`]s, one per unit, so the first sentence plays
//!   while the next is synthesized. Sentences and prompt files are cached
//!   ([`cache::PcmCache`], keyed by engine, language, voice, rate and text, or by file).
//! - One worker thread per service owns the engine (`worker.rs`) and serves every reply from
//!   one queue (`queue.rs`, sans-IO): a reply that has not started goes before replies already
//!   speaking, replies already speaking take turns, and a reply runs at most one item ahead of
//!   its listener.
//! - Cancellation. A reply is cancelled by [`Speech::cancel`], by a [`SpeechCanceller`] (for
//!   the code that decides a barge-in while another task reads the stream), or by dropping its
//!   [`Speech`]. Its queued units are dropped at once; the unit being synthesized is aborted
//!   mid-sentence (espeak-ng's synth callback returns 1 at its next 60 ms buffer), so the next
//!   reply waits at most one audio buffer's work behind a dead one. [`TtsService::stats`]
//!   counts what was synthesized, dropped, aborted and discarded.
//!
//! Invariants: chunks come in prompt order; a chunk holds whole sentences; the final chunk of a
//! stream has `last: true` unless its unit failed, and the stream ends after the final item
//! either way; after a cancel the stream yields nothing more, and no unit of the reply is
//! started. Errors (a missing prompt file, a failed sentence) arrive as `Err` items in place of
//! that unit's audio, and the stream goes on with the next one; an unplayable prompt file's
//! error is followed by its words, spoken.

pub mod cache;
pub mod espeak;
mod queue;
mod sentences;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

use crate::audio::wav::WavError;
use crate::config::TtsConfig;
use crate::dialogue::Prompt;
use crate::language::Language;
use cache::PcmCache;
use queue::{JobId, Unit};
use worker::{Renderer, Shared};

pub use espeak::EspeakSynthesizer;
pub use queue::TtsStats;
pub use sentences::split_sentences;

/// Speech synthesis that failed.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// A TTS setting is unusable.
    #[error("config key `{key}`: {message}")]
    Config { key: &'static str, message: String },
    /// espeak-ng's data folder could not be found.
    #[error("espeak-ng data: {message}")]
    EspeakData { message: String },
    /// espeak-ng did not start.
    #[error("espeak-ng: {0}")]
    EspeakInit(String),
    /// A voice could not be loaded.
    #[error("voice {voice:?}: {message}")]
    Voice { voice: String, message: String },
    /// The engine failed on a sentence.
    #[error("synthesis failed: {message}")]
    Synthesis { message: String },
    /// The reply was cancelled and the engine stopped after `samples` samples of the sentence
    /// (at its own rate; 0 when it had not begun). Never sent on a stream: nobody listens.
    #[error("synthesis cancelled after {samples} samples")]
    Cancelled { samples: usize },
    /// A recorded prompt file could not be played (the error names the file).
    #[error("prompt file: {0}")]
    PromptFile(#[from] WavError),
    /// Converting the engine's rate to 16 kHz failed.
    #[error("{0}")]
    Resample(#[from] crate::audio::resample::ResampleError),
    /// The synthesis worker could not start.
    #[error("cannot start the synthesis worker: {0}")]
    WorkerStart(std::io::Error),
    /// The synthesis worker has stopped.
    #[error("the synthesis worker has stopped")]
    WorkerGone,
}

/// One synthesis engine.
pub trait Synthesizer: Send {
    /// The engine's name, for records and cache keys.
    fn name(&self) -> &'static str;
    /// Synthesizes one sentence to 16 kHz mono PCM.
    fn synthesize(&mut self, text: &str, language: Language) -> Result<Vec<i16>, TtsError>;
    /// Synthesizes one sentence unless `cancel` is cancelled: an engine that can stop midway
    /// polls it ([`CancelToken::check`]) and answers [`TtsError::Cancelled`]. By default the
    /// token is checked once, before the sentence.
    fn synthesize_cancellable(
        &mut self,
        text: &str,
        language: Language,
        cancel: &CancelToken,
    ) -> Result<Vec<i16>, TtsError> {
        if cancel.check() {
            return Err(TtsError::Cancelled { samples: 0 });
        }
        self.synthesize(text, language)
    }
}

/// A cancel flag shared by a reply's handle, the queue and the engine working on it.
/// Cancelling is permanent.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<CancelFlag>);

#[derive(Debug, Default)]
struct CancelFlag {
    cancelled: AtomicBool,
    /// Times an engine polled the flag while working.
    checks: AtomicU64,
}

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels; answers `true` for the call that did it.
    pub fn cancel(&self) -> bool {
        !self.0.cancelled.swap(true, Ordering::AcqRel)
    }

    /// Whether it is cancelled (without counting a check).
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Acquire)
    }

    /// An engine's poll while it works: counts the check and answers whether to stop.
    pub fn check(&self) -> bool {
        self.0.checks.fetch_add(1, Ordering::Relaxed);
        self.is_cancelled()
    }

    /// How often an engine has polled this token: espeak-ng polls once per audio buffer, so
    /// a count above zero means its synthesis is under way.
    pub fn checks(&self) -> u64 {
        self.0.checks.load(Ordering::Relaxed)
    }
}

/// One piece of a spoken reply: a sentence or a recorded prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct TtsChunk {
    /// 16 kHz mono PCM.
    pub pcm: Vec<i16>,
    /// The words this audio speaks (a sentence, or a recorded prompt's text), so that what
    /// the caller heard of a cut reply can be told.
    pub text: String,
    /// Whether this is the reply's final chunk.
    pub last: bool,
    /// Time spent producing this chunk (synthesis and conversion, or the cache lookup); not
    /// the time it waited in the queue.
    pub compute: Duration,
    /// Whether the audio came from the cache.
    pub cached: bool,
}

/// A reply being spoken: its items in order, then the end. Dropping it cancels the reply.
#[derive(Debug)]
pub struct Speech {
    items: mpsc::UnboundedReceiver<Result<TtsChunk, TtsError>>,
    canceller: SpeechCanceller,
}

impl Speech {
    /// The next item; `None` at the end of the reply or once it is cancelled.
    pub async fn recv(&mut self) -> Option<Result<TtsChunk, TtsError>> {
        if self.canceller.is_cancelled() {
            return None;
        }
        let item = self.items.recv().await;
        self.accept(item)
    }

    /// [`Self::recv`] for synchronous code (not inside an async runtime).
    pub fn blocking_recv(&mut self) -> Option<Result<TtsChunk, TtsError>> {
        if self.canceller.is_cancelled() {
            return None;
        }
        let item = self.items.blocking_recv();
        self.accept(item)
    }

    /// The next item if one has arrived; `Disconnected` at the end or once cancelled.
    pub fn try_recv(&mut self) -> Result<Result<TtsChunk, TtsError>, TryRecvError> {
        if self.canceller.is_cancelled() {
            return Err(TryRecvError::Disconnected);
        }
        match self.items.try_recv() {
            Ok(item) => self.accept(Some(item)).ok_or(TryRecvError::Disconnected),
            Err(e) => Err(e),
        }
    }

    /// Cancels the reply: nothing more is received, its queued units are dropped and the
    /// sentence being synthesized is aborted.
    pub fn cancel(&self) {
        self.canceller.cancel();
    }

    /// Whether the reply was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.canceller.is_cancelled()
    }

    /// A handle that cancels this reply from elsewhere (it does not cancel when dropped).
    pub fn canceller(&self) -> SpeechCanceller {
        self.canceller.clone()
    }

    /// Drops an item that arrived after a cancel, and lets the worker go on with the reply.
    fn accept(
        &self,
        item: Option<Result<TtsChunk, TtsError>>,
    ) -> Option<Result<TtsChunk, TtsError>> {
        if self.canceller.is_cancelled() {
            return None;
        }
        let item = item?;
        if let (Some(job), Some(shared)) = (self.canceller.job, &self.canceller.shared) {
            let ready = shared.lock().queue.received(job);
            if ready {
                shared.wake();
            }
        }
        Some(item)
    }
}

impl Drop for Speech {
    fn drop(&mut self) {
        self.canceller.cancel();
    }
}

/// Cancels one reply; clones share it. Dropping it does nothing.
#[derive(Clone)]
pub struct SpeechCanceller {
    token: CancelToken,
    /// The reply in the queue; `None` for a reply with nothing queued.
    job: Option<JobId>,
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for SpeechCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeechCanceller")
            .field("job", &self.job)
            .field("cancelled", &self.token.is_cancelled())
            .finish()
    }
}

impl SpeechCanceller {
    /// Cancels the reply (again is a no-op): its queued units are dropped now, and the engine
    /// sees the token at its next poll.
    pub fn cancel(&self) {
        if !self.token.cancel() {
            return;
        }
        if let (Some(job), Some(shared)) = (self.job, &self.shared) {
            let dropped = shared.lock().queue.cancel(job);
            if dropped > 0 {
                tracing::debug!(dropped, "speech cancelled; its queued units dropped");
            }
            shared.wake();
        }
    }

    /// Whether the reply was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}

/// The shared synthesis front. Clones share the worker, the engine and the cache.
#[derive(Clone)]
pub struct TtsService {
    inner: Arc<ServiceInner>,
}

impl std::fmt::Debug for TtsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtsService")
            .field("engine", &self.inner.engine)
            .field("prompts_dir", &self.inner.prompts_dir)
            .field("stats", &self.stats())
            .finish()
    }
}

struct ServiceInner {
    shared: Arc<Shared>,
    cache: Arc<Mutex<PcmCache>>,
    engine: &'static str,
    prompts_dir: PathBuf,
}

impl Drop for ServiceInner {
    fn drop(&mut self) {
        // The last handle: the worker stops once the replies still being read are done.
        self.shared.lock().closed = true;
        self.shared.wake();
    }
}

impl TtsService {
    /// A service on espeak-ng: starts the espeak thread (once per process), checks the
    /// configured voices and starts this service's worker.
    pub fn new(config: &TtsConfig) -> Result<Self, TtsError> {
        let synthesizer = EspeakSynthesizer::new(config)?;
        Self::with_synthesizer(config, Box::new(synthesizer))
    }

    /// A service on another engine; `config` gives the voices (for cache keys), the cache size
    /// and the prompts folder. Starts the worker that will own the engine.
    pub fn with_synthesizer(
        config: &TtsConfig,
        synthesizer: Box<dyn Synthesizer>,
    ) -> Result<Self, TtsError> {
        let engine = synthesizer.name();
        let shared = Arc::new(Shared::new());
        let cache = Arc::new(Mutex::new(PcmCache::new(config.cache_entries)));
        worker::spawn(
            Arc::clone(&shared),
            Renderer {
                synthesizer,
                engine,
                voice_en: config.voice_en.clone(),
                voice_zh: config.voice_zh.clone(),
                rate_wpm: config.rate_wpm,
                prompts_dir: config.prompts_dir.clone(),
                cache: Arc::clone(&cache),
            },
        )
        .map_err(TtsError::WorkerStart)?;
        Ok(Self {
            inner: Arc::new(ServiceInner {
                shared,
                cache,
                engine,
                prompts_dir: config.prompts_dir.clone(),
            }),
        })
    }

    /// Speaks prompts in order, streaming: the first unit's audio is sent before later ones
    /// are synthesized. The reply joins the worker's queue; cancel it (or drop the [`Speech`])
    /// on barge-in.
    pub fn speak(&self, prompts: Vec<Prompt>, language: Language) -> Speech {
        let (tx, rx) = mpsc::unbounded_channel();
        let token = CancelToken::new();
        let units = units_of(prompts);
        let mut speech = Speech {
            items: rx,
            canceller: SpeechCanceller {
                token: token.clone(),
                job: None,
                shared: None,
            },
        };
        if units.is_empty() {
            return speech;
        }
        let shared = &self.inner.shared;
        {
            let mut state = shared.lock();
            if state.gone {
                let _ = tx.send(Err(TtsError::WorkerGone));
                return speech;
            }
            speech.canceller.job = Some(state.queue.push(units, language, token, tx));
        }
        speech.canceller.shared = Some(Arc::clone(shared));
        shared.wake();
        speech
    }

    /// Where a prompt's `audio_file` lives: absolute paths as given, others under `prompts_dir`.
    pub fn prompt_path(&self, file: &str) -> PathBuf {
        prompt_path(&self.inner.prompts_dir, file)
    }

    /// The engine's name.
    pub fn engine(&self) -> &'static str {
        self.inner.engine
    }

    /// Clips in the cache.
    pub fn cached_entries(&self) -> usize {
        // The cache holds plain data; a panic elsewhere cannot leave it inconsistent.
        self.inner
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// The worker's counters so far.
    pub fn stats(&self) -> TtsStats {
        self.inner.shared.lock().queue.stats()
    }
}

/// A reply's units in speaking order: a recorded prompt is one unit, text is one per sentence.
fn units_of(prompts: Vec<Prompt>) -> Vec<Unit> {
    prompts
        .into_iter()
        .flat_map(|prompt| match prompt.audio_file {
            Some(file) => vec![Unit::File {
                file,
                text: prompt.text,
            }],
            None => split_sentences(&prompt.text)
                .into_iter()
                .map(Unit::Sentence)
                .collect(),
        })
        .collect()
}

/// Where a prompt's `audio_file` lives: absolute paths as given, others under `prompts_dir`.
fn prompt_path(prompts_dir: &Path, file: &str) -> PathBuf {
    let path = Path::new(file);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        prompts_dir.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine that makes a short beep per sentence, and panics on "crash".
    struct Beeper;

    impl Synthesizer for Beeper {
        fn name(&self) -> &'static str {
            "beeper"
        }
        fn synthesize(&mut self, text: &str, _language: Language) -> Result<Vec<i16>, TtsError> {
            assert!(text != "crash.", "the engine crashed");
            Ok(vec![1000; 160])
        }
    }

    fn service() -> TtsService {
        TtsService::with_synthesizer(&TtsConfig::default(), Box::new(Beeper)).expect("worker")
    }

    #[test]
    fn a_reply_streams_in_order_and_ends() {
        let tts = service();
        let mut speech = tts.speak(vec![Prompt::text("One. Two. Three.")], Language::En);
        let mut lasts = Vec::new();
        while let Some(item) = speech.blocking_recv() {
            lasts.push(item.expect("beep").last);
        }
        assert_eq!(lasts, [false, false, true]);
        let stats = tts.stats();
        assert_eq!((stats.sentences_synthesized, stats.items_sent), (3, 3));
        // Nothing to say: the stream is over at once, and nothing was queued.
        assert!(tts
            .speak(Vec::new(), Language::En)
            .blocking_recv()
            .is_none());
        assert_eq!(tts.stats().replies, 1);
    }

    #[test]
    fn a_cancelled_reply_yields_nothing_more() {
        let tts = service();
        let mut speech = tts.speak(vec![Prompt::text("One. Two. Three.")], Language::En);
        assert!(speech.blocking_recv().is_some());
        let canceller = speech.canceller();
        canceller.cancel();
        canceller.cancel();
        assert!(speech.is_cancelled());
        assert!(speech.blocking_recv().is_none());
        assert!(matches!(speech.try_recv(), Err(TryRecvError::Disconnected)));
        // Flush the worker with a second reply, then count.
        let mut next = tts.speak(vec![Prompt::text("Four.")], Language::En);
        assert!(next.blocking_recv().is_some_and(|item| item.is_ok()));
        assert!(next.blocking_recv().is_none());
        let stats = tts.stats();
        assert!(stats.units_dropped >= 1, "{stats:?}");
        assert_eq!(stats.units_started + stats.units_dropped, 4);
    }

    #[test]
    fn a_panicking_engine_ends_every_stream_and_later_replies_get_worker_gone() {
        let tts = service();
        let mut crashed = tts.speak(vec![Prompt::text("crash.")], Language::En);
        // The reply in flight ends without audio.
        assert!(crashed.blocking_recv().is_none());
        let mut later = tts.speak(vec![Prompt::text("Hello.")], Language::En);
        assert!(matches!(
            later.blocking_recv(),
            Some(Err(TtsError::WorkerGone))
        ));
        assert!(later.blocking_recv().is_none());
    }
}
