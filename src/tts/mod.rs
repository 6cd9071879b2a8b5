//! Speech synthesis: what the bot says, as 16 kHz mono PCM, sentence by sentence.
//!
//! - [`Synthesizer`] is one engine that turns a sentence into PCM ([`EspeakSynthesizer`]:
//!   espeak-ng 1.52 in process, on its single worker thread).
//! - [`TtsService`] is the shared, clonable front: [`TtsService::speak`] takes a bot turn's
//!   [`Prompt`]s and streams [`TtsChunk`]s, one per sentence or recorded prompt, so the first
//!   sentence plays while the next is synthesized. Sentences and prompt files are cached
//!   ([`cache::PcmCache`], keyed by engine, language, voice, rate and text, or by file).
//!
//! Invariants: chunks come in prompt order; a chunk holds whole sentences; the final chunk of a
//! stream has `last: true` unless its prompt failed, and the channel closes after the final
//! item either way. Dropping the receiver (barge-in) stops synthesis before the next sentence.
//! Errors (a missing prompt file, a failed sentence) arrive as `Err` items in place of that
//! unit's audio, and the stream goes on with the next one.

pub mod cache;
pub mod espeak;
mod sentences;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::audio::wav::WavError;
use crate::config::TtsConfig;
use crate::dialogue::Prompt;
use crate::language::Language;
use cache::{CacheKey, PcmCache};

pub use espeak::EspeakSynthesizer;
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
    /// A recorded prompt file could not be played (the error names the file).
    #[error("prompt file: {0}")]
    PromptFile(#[from] WavError),
    /// Converting the engine's rate to 16 kHz failed.
    #[error("{0}")]
    Resample(#[from] crate::audio::resample::ResampleError),
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
}

/// One piece of a spoken reply: a sentence or a recorded prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct TtsChunk {
    /// 16 kHz mono PCM.
    pub pcm: Vec<i16>,
    /// Whether this is the reply's final chunk.
    pub last: bool,
    /// Time spent producing this chunk (synthesis and conversion, or the cache lookup).
    pub compute: Duration,
    /// Whether the audio came from the cache.
    pub cached: bool,
}

/// The shared synthesis front. Clones share the engine and the cache.
#[derive(Clone)]
pub struct TtsService {
    inner: Arc<ServiceInner>,
}

impl std::fmt::Debug for TtsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtsService")
            .field("voice_en", &self.inner.voice_en)
            .field("voice_zh", &self.inner.voice_zh)
            .field("rate_wpm", &self.inner.rate_wpm)
            .field("prompts_dir", &self.inner.prompts_dir)
            .finish()
    }
}

struct ServiceInner {
    /// One engine for all calls: espeak-ng runs on one thread anyway.
    synthesizer: Mutex<Box<dyn Synthesizer>>,
    engine: &'static str,
    voice_en: String,
    voice_zh: String,
    rate_wpm: u32,
    prompts_dir: PathBuf,
    cache: Mutex<PcmCache>,
}

/// One unit of a reply, in speaking order.
enum Unit {
    Sentence(String),
    /// A recorded prompt, and its words to speak if the file cannot be played.
    File {
        file: String,
        text: String,
    },
}

impl TtsService {
    /// A service on espeak-ng: starts the espeak worker thread (once per process) and checks the
    /// configured voices.
    pub fn new(config: &TtsConfig) -> Result<Self, TtsError> {
        let synthesizer = EspeakSynthesizer::new(config)?;
        Ok(Self::with_synthesizer(config, Box::new(synthesizer)))
    }

    /// A service on another engine; `config` gives the voices (for cache keys), the cache size
    /// and the prompts folder.
    pub fn with_synthesizer(config: &TtsConfig, synthesizer: Box<dyn Synthesizer>) -> Self {
        let engine = synthesizer.name();
        Self {
            inner: Arc::new(ServiceInner {
                synthesizer: Mutex::new(synthesizer),
                engine,
                voice_en: config.voice_en.clone(),
                voice_zh: config.voice_zh.clone(),
                rate_wpm: config.rate_wpm,
                prompts_dir: config.prompts_dir.clone(),
                cache: Mutex::new(PcmCache::new(config.cache_entries)),
            }),
        }
    }

    /// Speaks prompts in order, streaming: the first sentence's audio is sent before later
    /// sentences are synthesized. Work runs on a thread of its own; dropping the receiver stops
    /// it before the next sentence.
    pub fn speak(
        &self,
        prompts: Vec<Prompt>,
        language: Language,
    ) -> mpsc::UnboundedReceiver<Result<TtsChunk, TtsError>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let units: Vec<Unit> = prompts
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
            .collect();
        if units.is_empty() {
            return rx;
        }
        let service = self.clone();
        let error_tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name("tts-speak".into())
            .spawn(move || service.run_units(units, language, tx));
        if let Err(e) = spawned {
            let _ = error_tx.send(Err(TtsError::Synthesis {
                message: format!("cannot start a synthesis thread: {e}"),
            }));
        }
        rx
    }

    fn run_units(
        &self,
        units: Vec<Unit>,
        language: Language,
        tx: mpsc::UnboundedSender<Result<TtsChunk, TtsError>>,
    ) {
        let count = units.len();
        for (index, unit) in units.into_iter().enumerate() {
            if tx.is_closed() {
                tracing::debug!(remaining = count - index, "speech cancelled");
                return;
            }
            let started = Instant::now();
            let result = match &unit {
                Unit::Sentence(text) => self.sentence_pcm(text, language),
                Unit::File { file, text } => match self.prompt_file_pcm(file) {
                    Err(e) if !text.trim().is_empty() => {
                        // Say so in the record, then speak the prompt's words instead.
                        tracing::warn!(error = %e, "prompt file unplayable; speaking its text");
                        if tx.send(Err(e)).is_err() {
                            return;
                        }
                        self.sentence_pcm(text, language)
                    }
                    other => other,
                },
            };
            let item = result.map(|(pcm, cached)| TtsChunk {
                pcm: pcm.to_vec(),
                last: index + 1 == count,
                compute: started.elapsed(),
                cached,
            });
            if let Err(e) = &item {
                tracing::warn!(error = %e, "speech unit failed");
            }
            if tx.send(item).is_err() {
                return;
            }
        }
    }

    /// One sentence as 16 kHz PCM, from the cache or the engine; `true` when cached.
    pub fn sentence_pcm(
        &self,
        text: &str,
        language: Language,
    ) -> Result<(Arc<[i16]>, bool), TtsError> {
        let voice = match language {
            Language::En => &self.inner.voice_en,
            Language::Zh => &self.inner.voice_zh,
        };
        let key = CacheKey::Speech {
            engine: self.inner.engine,
            language,
            voice: voice.clone(),
            rate_wpm: self.inner.rate_wpm,
            text: text.to_string(),
        };
        if let Some(pcm) = self.cache().get(&key) {
            return Ok((pcm, true));
        }
        let pcm: Arc<[i16]> = {
            let mut synthesizer = self
                .inner
                .synthesizer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            Arc::from(synthesizer.synthesize(text, language)?)
        };
        self.cache().insert(key, Arc::clone(&pcm));
        Ok((pcm, false))
    }

    /// A recorded prompt as 16 kHz PCM, from the cache or the file; `true` when cached.
    pub fn prompt_file_pcm(&self, file: &str) -> Result<(Arc<[i16]>, bool), TtsError> {
        let path = self.prompt_path(file);
        let key = CacheKey::File(path.clone());
        if let Some(pcm) = self.cache().get(&key) {
            return Ok((pcm, true));
        }
        let pcm: Arc<[i16]> = Arc::from(crate::audio::wav::read_wav_mono_16k(&path)?);
        self.cache().insert(key, Arc::clone(&pcm));
        Ok((pcm, false))
    }

    /// Where a prompt's `audio_file` lives: absolute paths as given, others under `prompts_dir`.
    pub fn prompt_path(&self, file: &str) -> PathBuf {
        let path = Path::new(file);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.inner.prompts_dir.join(path)
        }
    }

    /// The engine's name.
    pub fn engine(&self) -> &'static str {
        self.inner.engine
    }

    /// Clips in the cache.
    pub fn cached_entries(&self) -> usize {
        self.cache().len()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, PcmCache> {
        // The cache holds plain data; a panic elsewhere cannot leave it inconsistent.
        self.inner
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
