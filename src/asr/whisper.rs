//! The whisper recognizer: whisper.cpp (vendored by whisper-rs 0.16) on one utterance at a
//! time.
//!
//! Owns one whisper context (the loaded ggml model) and one decoding state. Settings chosen
//! for a phone line, where latency matters more than the last bit of accuracy:
//! - greedy sampling, no timestamps, one segment, non-speech tokens suppressed, no context
//!   carried between utterances (each turn stands alone);
//! - no temperature fallback by default: a fallback re-decodes the whole utterance up to five
//!   times, which makes latency unbounded ([`WhisperSettings::temperature_fallback`]);
//! - the encoder's context is cut to the audio's length ([`audio_ctx_for`]): whisper's encoder
//!   always works on 1500 positions (30 s) unless told otherwise, so a 3 s turn would pay for
//!   30 s;
//! - the decoder may emit at most [`max_tokens_for`] tokens, a generous bound on speech that
//!   stops runaway repetition;
//! - audio shorter than [`MIN_AUDIO_SAMPLES`] is padded with silence (whisper.cpp skips input
//!   under 100 ms and is unreliable under a second).
//!
//! whisper.cpp's own log lines go to `tracing` (whisper-rs `tracing_backend`); nothing is
//! printed to stdout. A phrase-list grammar becomes the decoder's prompt, which biases whisper
//! towards those words without restricting it; a JSGF grammar is ignored.

use std::collections::HashMap;
use std::path::Path;

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use super::{AsrError, AsrOptions, Grammar, Interrupt, Recognized, Recognizer};
use crate::audio::SAMPLE_RATE_HZ;
use crate::language::Language;

/// whisper's encoder positions per second of audio (100 mel frames per second, stride 2).
pub const AUDIO_CTX_PER_SECOND: usize = 50;
/// Encoder positions added beyond the audio's own length.
pub const AUDIO_CTX_MARGIN: usize = 64;
/// The smallest trimmed encoder context.
pub const AUDIO_CTX_MIN: usize = 128;
/// whisper's full encoder context (30 s).
pub const AUDIO_CTX_FULL: usize = 1500;
/// Audio shorter than this (1 s at 16 kHz) is padded with silence.
pub const MIN_AUDIO_SAMPLES: usize = SAMPLE_RATE_HZ as usize;

const ENGINE: &str = "whisper";

/// How the whisper recognizer runs.
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperSettings {
    /// CPU threads for one transcription.
    pub threads: usize,
    /// Cut the encoder's context to the audio's length.
    pub trim_audio_ctx: bool,
    /// Re-decode at higher temperatures when the greedy result looks poor (whisper.cpp's
    /// default); off keeps latency bounded.
    pub temperature_fallback: bool,
}

impl Default for WhisperSettings {
    fn default() -> Self {
        Self {
            threads: 2,
            trim_audio_ctx: true,
            temperature_fallback: false,
        }
    }
}

/// The encoder context for `samples` of 16 kHz audio: ceil(seconds × 50) plus a margin,
/// clamped to [`AUDIO_CTX_MIN`]..=[`AUDIO_CTX_FULL`].
pub fn audio_ctx_for(samples: usize) -> usize {
    let rate = SAMPLE_RATE_HZ as usize;
    let positions = (samples * AUDIO_CTX_PER_SECOND).div_ceil(rate);
    (positions + AUDIO_CTX_MARGIN).clamp(AUDIO_CTX_MIN, AUDIO_CTX_FULL)
}

/// The most tokens the decoder may emit for `samples` of audio: ten per second (fast speech
/// is about seven) plus sixteen.
pub fn max_tokens_for(samples: usize) -> usize {
    let rate = SAMPLE_RATE_HZ as usize;
    (samples * 10).div_ceil(rate) + 16
}

/// whisper.cpp on one model.
pub struct WhisperRecognizer {
    context: WhisperContext,
    state: WhisperState,
    settings: WhisperSettings,
    multilingual: bool,
    /// Prompt tokens per phrase-list grammar (tokenizing is cheap, but grammars repeat).
    prompts: HashMap<Grammar, Vec<i32>>,
    /// Reused buffer for the float samples.
    samples_f32: Vec<f32>,
    /// Text tokens the decoder produced for the last utterance.
    last_token_count: usize,
}

impl std::fmt::Debug for WhisperRecognizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperRecognizer")
            .field("settings", &self.settings)
            .field("multilingual", &self.multilingual)
            .finish()
    }
}

impl WhisperRecognizer {
    /// Loads a ggml whisper model. The file's header is checked first, so a missing,
    /// truncated or foreign file gives a clear error instead of reaching whisper.cpp.
    pub fn new(model: &Path, settings: WhisperSettings) -> Result<Self, AsrError> {
        whisper_rs::install_logging_hooks();
        let path = model.display().to_string();
        if !model.is_file() {
            return Err(AsrError::ModelMissing {
                what: "whisper model",
                path,
            });
        }
        let summary = crate::models::inspect(model).map_err(|e| AsrError::ModelLoad {
            what: "whisper model",
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if summary.tensors == 0 {
            tracing::warn!(
                "{path} has no weights (a test model): it loads and runs but transcribes nothing"
            );
        }
        let context = WhisperContext::new_with_params(model, WhisperContextParameters::default())
            .map_err(|e| AsrError::ModelLoad {
            what: "whisper model",
            path: path.clone(),
            reason: format!("whisper.cpp refused it: {e}"),
        })?;
        let state = context.create_state().map_err(|e| AsrError::ModelLoad {
            what: "whisper model",
            path: path.clone(),
            reason: format!("cannot create a decoding state: {e}"),
        })?;
        let multilingual = context.is_multilingual();
        Ok(Self {
            context,
            state,
            settings,
            multilingual,
            prompts: HashMap::new(),
            samples_f32: Vec::new(),
            last_token_count: 0,
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &WhisperSettings {
        &self.settings
    }

    /// Changes the settings (for benchmarks that compare them on one loaded model).
    pub fn set_settings(&mut self, settings: WhisperSettings) {
        self.settings = settings;
    }

    /// Text tokens the decoder produced for the last utterance (decoding cost grows with it;
    /// benchmarks report it beside their timings).
    pub fn last_token_count(&self) -> usize {
        self.last_token_count
    }

    /// Whether the model hears more than English.
    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    fn prompt_tokens(&mut self, grammar: &Grammar) -> Result<Vec<i32>, AsrError> {
        if let Some(tokens) = self.prompts.get(grammar) {
            return Ok(tokens.clone());
        }
        let phrases = grammar.normalized_phrases()?;
        let tokens = if phrases.is_empty() {
            Vec::new()
        } else {
            let prompt = phrases.join(", ");
            // whisper keeps at most half its text context (224 tokens) of prompt.
            self.context.tokenize(&prompt, 200).map_err(|e| {
                AsrError::Grammar(format!("cannot turn the phrase list into a prompt: {e}"))
            })?
        };
        self.prompts.insert(grammar.clone(), tokens.clone());
        Ok(tokens)
    }
}

impl Recognizer for WhisperRecognizer {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn transcribe(&mut self, pcm: &[i16], opts: &AsrOptions) -> Result<Recognized, AsrError> {
        self.transcribe_interruptible(pcm, opts, &Interrupt::default())
    }

    fn transcribe_interruptible(
        &mut self,
        pcm: &[i16],
        opts: &AsrOptions,
        interrupt: &Interrupt,
    ) -> Result<Recognized, AsrError> {
        self.last_token_count = 0;
        if pcm.is_empty() {
            return Ok(Recognized::default());
        }
        if !self.multilingual && opts.language != Language::En {
            return Err(AsrError::UnsupportedLanguage {
                engine: ENGINE,
                language: opts.language,
            });
        }
        let prompt = match &opts.grammar {
            Some(grammar) => self.prompt_tokens(grammar)?,
            None => Vec::new(),
        };

        self.samples_f32.clear();
        self.samples_f32
            .extend(pcm.iter().map(|&s| f32::from(s) / 32768.0));
        if self.samples_f32.len() < MIN_AUDIO_SAMPLES {
            self.samples_f32.resize(MIN_AUDIO_SAMPLES, 0.0);
        }
        let n_samples = self.samples_f32.len();

        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        let threads = i32::try_from(self.settings.threads.max(1)).unwrap_or(i32::MAX);
        params.set_n_threads(threads);
        if opts.language != Language::En {
            // whisper's default language is already "en"; whisper-rs keeps the string alive
            // for the rest of the process (a few bytes per call).
            params.set_language(Some(opts.language.code()));
        }
        params.set_translate(false);
        params.set_no_context(true);
        params.set_no_timestamps(true);
        params.set_single_segment(true);
        params.set_suppress_nst(true);
        params.set_suppress_blank(true);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_temperature(0.0);
        params.set_temperature_inc(if self.settings.temperature_fallback {
            0.2
        } else {
            0.0
        });
        params.set_max_tokens(i32::try_from(max_tokens_for(n_samples)).unwrap_or(i32::MAX));
        if self.settings.trim_audio_ctx {
            params.set_audio_ctx(i32::try_from(audio_ctx_for(n_samples)).unwrap_or(0));
        }
        if !prompt.is_empty() {
            params.set_tokens(&prompt);
        }
        // Kept alive until `full` returns: whisper.cpp reads it from its compute threads.
        let interrupt_counter = interrupt.counter().cloned();
        if let Some(counter) = &interrupt_counter {
            // SAFETY: the callback only reads the AtomicUsize behind the pointer, which
            // `interrupt_counter` keeps alive for the whole `full` call below; whisper.cpp
            // does not keep the pointer after `full` returns.
            unsafe {
                params.set_abort_callback(Some(abort_when_finals_wait));
                params.set_abort_callback_user_data(
                    std::sync::Arc::as_ptr(counter) as *mut std::ffi::c_void
                );
            }
        }

        let decoded = self.state.full(params, &self.samples_f32);
        drop(interrupt_counter);
        if decoded.is_err() && interrupt.raised() {
            return Err(AsrError::Preempted);
        }
        decoded.map_err(|e| AsrError::Engine {
            engine: ENGINE,
            reason: e.to_string(),
        })?;

        let token_eot = self.context.token_eot();
        let mut text = String::new();
        let mut probability_sum = 0.0f64;
        let mut probability_count = 0usize;
        for segment in self.state.as_iter() {
            let piece = segment.to_str_lossy().map_err(|e| AsrError::Engine {
                engine: ENGINE,
                reason: e.to_string(),
            })?;
            text.push_str(&piece);
            for i in 0..segment.n_tokens() {
                if let Some(token) = segment.get_token(i) {
                    if token.token_id() < token_eot {
                        probability_sum += f64::from(token.token_probability());
                        probability_count += 1;
                    }
                }
            }
        }
        self.last_token_count = probability_count;
        let confidence = (probability_count > 0)
            .then(|| (probability_sum / probability_count as f64) as f32)
            .filter(|c| c.is_finite());
        Ok(Recognized {
            text: text.trim().to_string(),
            confidence,
        })
    }
}

/// whisper.cpp's abort callback: stop while a final recognition waits for this worker.
unsafe extern "C" fn abort_when_finals_wait(user_data: *mut std::ffi::c_void) -> bool {
    if user_data.is_null() {
        return false;
    }
    // SAFETY: `user_data` points at the AtomicUsize of the interrupt, kept alive by the caller
    // of `full` for as long as whisper.cpp may call this.
    let waiting = unsafe { &*(user_data as *const std::sync::atomic::AtomicUsize) };
    waiting.load(std::sync::atomic::Ordering::Acquire) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_ctx_follows_the_audio_length() {
        // 3 s: 150 positions + margin.
        assert_eq!(audio_ctx_for(3 * 16_000), 150 + AUDIO_CTX_MARGIN);
        // Short audio is clamped up, long audio down to the full context.
        assert_eq!(audio_ctx_for(1_000), AUDIO_CTX_MIN);
        assert_eq!(audio_ctx_for(60 * 16_000), AUDIO_CTX_FULL);
        // Part of a position rounds up.
        assert_eq!(audio_ctx_for(16_000 * 3 + 1), 151 + AUDIO_CTX_MARGIN);
    }

    #[test]
    fn token_budget_grows_with_the_audio() {
        assert_eq!(max_tokens_for(16_000), 26);
        assert_eq!(max_tokens_for(3 * 16_000), 46);
    }
}
