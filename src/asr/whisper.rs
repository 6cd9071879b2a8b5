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
//!   30 s; it covers 1 s of silence after the audio ([`WhisperSettings::trim_pad_ms`]);
//! - the decoder may emit at most [`max_tokens_for`] tokens, a generous bound on speech, and
//!   a decode whose text starts to loop ends there ([`end_a_loop`]), instead of looping on to
//!   that bound; the loop is cut to its first copy ([`drop_restart`]), and only a decode that
//!   fills the bound is decoded again on a longer context;
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
/// The smallest trimmed encoder context.
pub const AUDIO_CTX_MIN: usize = 128;
/// The most prompt tokens a phrase list may become by default
/// ([`WhisperSettings::prompt_max_tokens`]). whisper keeps at most half its text context
/// (224 tokens) of prompt, and a long prompt costs decoder time on every turn and invites
/// whisper to repeat prompt words; the shortest phrases (keywords) go first. 48: on the dialog
/// turns with the demo menu's prompt (`cargo bench --bench asr_policy`, tiny.en-q8_0), 96
/// tokens took 255 ms of compute at the median, 48 took 217 ms, with fewer words wrong
/// (3.7 % against 1.2 %).
pub const PROMPT_MAX_TOKENS: usize = 48;
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
    /// Cut the encoder's context to the audio's length plus [`WhisperSettings::trim_pad_ms`].
    pub trim_audio_ctx: bool,
    /// Silence after the utterance that a trimmed context still covers. whisper learnt to end
    /// its transcript where it sees the speech stop and the padding begin; on a context cut
    /// close to the speech it often transcribes the utterance and then starts it over, which
    /// the loop stop ends at once ([`WhisperSettings::retry_loops`]). 1 s: on tiny.en-q8_0
    /// (`cargo bench --bench asr_policy`), compute p50 80 ms against 195 ms with 8 s on the
    /// read English clips, at a word error rate of 6.2 % against 6.5 %; 135 ms against
    /// 260 ms on the dialog turns, with the same words.
    pub trim_pad_ms: u32,
    /// Re-decode at higher temperatures when the greedy result looks poor (whisper.cpp's
    /// default); off keeps latency bounded.
    pub temperature_fallback: bool,
    /// Decode again with a longer context when a trimmed decode fills its token budget: the
    /// cost of the long context only where needed.
    pub runaway_retry: bool,
    /// Also decode again when a trimmed decode loops (with [`WhisperSettings::runaway_retry`]).
    /// Off: the loop is stopped where it starts ([`end_a_loop`]) and cut to its first copy,
    /// less a restart's first words ([`drop_restart`]). On a context cut close to the speech,
    /// whisper transcribes the utterance and then starts it over ("knowing that there was
    /// time to spare. Knowing that there was time"); the first copy is the utterance, and a
    /// second decode on a longer context paid 200-300 ms for the same words.
    pub retry_loops: bool,
    /// The silence after the utterance that the retry's context covers (the full 30 s
    /// context when it reaches it).
    pub retry_pad_ms: u32,
    /// Let whisper predict timestamp tokens (it then tends to close the utterance with an
    /// end timestamp rather than start it over); the text is the same without them.
    pub timestamps: bool,
    /// Decode the audio as one segment.
    pub single_segment: bool,
    /// The most tokens a phrase-list prompt may take: whisper decodes the prompt on every
    /// utterance, so each token costs time on every turn.
    pub prompt_max_tokens: usize,
}

impl Default for WhisperSettings {
    fn default() -> Self {
        Self {
            threads: 2,
            trim_audio_ctx: true,
            trim_pad_ms: 1_000,
            temperature_fallback: false,
            runaway_retry: true,
            retry_loops: false,
            retry_pad_ms: 12_000,
            timestamps: false,
            single_segment: true,
            prompt_max_tokens: PROMPT_MAX_TOKENS,
        }
    }
}

/// The encoder context for `samples` of 16 kHz audio followed by `pad_ms` of silence:
/// ceil(seconds × 50), clamped to [`AUDIO_CTX_MIN`]..=[`AUDIO_CTX_FULL`].
pub fn audio_ctx_for(samples: usize, pad_ms: u32) -> usize {
    let rate = SAMPLE_RATE_HZ as usize;
    let positions = (samples * AUDIO_CTX_PER_SECOND).div_ceil(rate);
    let pad = (pad_ms as usize * AUDIO_CTX_PER_SECOND).div_ceil(1000);
    (positions + pad).clamp(AUDIO_CTX_MIN, AUDIO_CTX_FULL)
}

/// Whether a decode ran away: it filled its token budget, or its end repeats what came
/// before it ([`repeated_tail`]).
pub fn is_runaway(tokens: &[i32], max_tokens: usize) -> bool {
    tokens.len() >= max_tokens || repeated_tail(tokens).is_some()
}

/// The length of the end of `tokens` that repeats the run just before it, if it is a loop:
/// for some period p, each of the last L tokens equals the one p places earlier, with
/// L ≥ 4 and L ≥ p / 2. That covers a word said five times, a phrase three times, and a
/// sentence started over ("and there I grew up when I was little, and there I grew up
/// when I was"); "no no no" or a repeated word is speech.
pub fn repeated_tail(tokens: &[i32]) -> Option<usize> {
    const MIN_REPEAT: usize = 4;
    let n = tokens.len();
    (1..=n.saturating_sub(MIN_REPEAT)).find_map(|period| {
        let repeat = (period..n)
            .rev()
            .take_while(|&i| tokens[i] == tokens[i - period])
            .count();
        (repeat >= MIN_REPEAT && 2 * repeat >= period).then_some(repeat)
    })
}

/// `tokens` without a looping tail: one copy of what was said.
fn cut_repetition(tokens: &[i32]) -> &[i32] {
    let mut end = tokens.len();
    while let Some(repeat) = repeated_tail(&tokens[..end]) {
        end -= repeat;
    }
    &tokens[..end]
}

/// `text`, the first copy of a loop, without the first words of the copy that followed it,
/// and without the comma the first copy ended on.
///
/// A restart rarely repeats its first token exactly ("… time to spare. Knowing" after
/// "knowing that there was time …"), so [`cut_repetition`] leaves the restart's first words
/// behind. They go when they repeat the text's first words (ignoring case and punctuation)
/// and follow the end of a phrase (a word ending in `.`, `,`, `?`, `!`, `;` or `:`): at most
/// three words, and never the whole text.
///
/// whisper joins the copies with a comma more often than with a full stop ("foam flew from
/// his lips, foam flew from his lips"): that comma marks the restart, not a sentence going
/// on, and `turn::words` would read it as one (14 of the 76 read English clips). It goes,
/// and the words are judged without it.
pub fn drop_restart(text: &str) -> &str {
    drop_restart_words(text).trim_end_matches([',', ';', ':', '，', '、', '；', '：'])
}

fn drop_restart_words(text: &str) -> &str {
    const MAX_WORDS: usize = 3;
    let words: Vec<(usize, &str)> = text
        .split_whitespace()
        .map(|w| (w.as_ptr() as usize - text.as_ptr() as usize, w))
        .collect();
    let n = words.len();
    let norm = |w: &str| {
        w.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    for k in (1..=MAX_WORDS.min(n / 2)).rev() {
        let ends_phrase = words[n - k - 1].1.ends_with(['.', ',', '?', '!', ';', ':']);
        let repeats = (0..k).all(|i| {
            let head = norm(words[i].1);
            !head.is_empty() && head == norm(words[n - k + i].1)
        });
        if ends_phrase && repeats {
            return text[..words[n - k].0].trim_end();
        }
    }
    text
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
    /// The prompt that steers Mandarin towards simplified characters.
    zh_prompt: Vec<i32>,
    /// Reused buffer for the float samples.
    samples_f32: Vec<f32>,
    /// Text tokens the decoder produced for the last utterance.
    last_token_count: usize,
    /// Decodes run again on a longer context since the model loaded.
    retries: usize,
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
        let zh_prompt = tokenize(&context, SIMPLIFIED_PROMPT).map_err(|e| AsrError::ModelLoad {
            what: "whisper model",
            path: path.clone(),
            reason: format!("cannot tokenize the Mandarin prompt: {e}"),
        })?;
        Ok(Self {
            context,
            state,
            settings,
            multilingual,
            prompts: HashMap::new(),
            zh_prompt,
            samples_f32: Vec::new(),
            last_token_count: 0,
            retries: 0,
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &WhisperSettings {
        &self.settings
    }

    /// Changes the settings (for benchmarks that compare them on one loaded model).
    pub fn set_settings(&mut self, settings: WhisperSettings) {
        // The prompts were cut to the old settings' length.
        self.prompts.clear();
        self.settings = settings;
    }

    /// Text tokens the decoder produced for the last utterance (decoding cost grows with it;
    /// benchmarks report it beside their timings).
    pub fn last_token_count(&self) -> usize {
        self.last_token_count
    }

    /// How many decodes ran away on a trimmed context and ran again on a longer one since the
    /// model loaded (benchmarks report it beside their timings).
    pub fn retries(&self) -> usize {
        self.retries
    }

    /// Whether the model hears more than English.
    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    /// The prompt for a phrase-list grammar: as many phrases as fit in
    /// [`WhisperSettings::prompt_max_tokens`], whole, in the list's order (a list gives its
    /// most useful phrases first: [`Grammar::shortest_first`]).
    fn prompt_tokens(&mut self, grammar: &Grammar) -> Result<Vec<i32>, AsrError> {
        if let Some(tokens) = self.prompts.get(grammar) {
            return Ok(tokens.clone());
        }
        let phrases = grammar.normalized_phrases()?;
        let mut prompt = String::new();
        let mut tokens = Vec::new();
        for phrase in &phrases {
            let longer = if prompt.is_empty() {
                phrase.clone()
            } else {
                format!("{prompt}, {phrase}")
            };
            // English phrases end as a sentence does: whisper copies the prompt's style, and
            // after a list with no full stop it leaves the caller's sentences without one too,
            // which is what `turn::words` reads to end a turn early.
            let ending = if longer.is_ascii() { "." } else { "" };
            let candidate = tokenize(&self.context, &format!("{longer}{ending}")).map_err(|e| {
                AsrError::Grammar(format!("cannot turn the phrase list into a prompt: {e}"))
            })?;
            if candidate.len() > self.settings.prompt_max_tokens {
                break;
            }
            prompt = longer;
            tokens = candidate;
        }
        self.prompts.insert(grammar.clone(), tokens.clone());
        Ok(tokens)
    }

    /// One decode of the samples in `self.samples_f32`; returns the text tokens.
    fn decode(
        &mut self,
        opts: &AsrOptions,
        prompt: &[i32],
        audio_ctx: usize,
        max_tokens: usize,
        interrupt: &Interrupt,
    ) -> Result<Vec<(i32, f32)>, AsrError> {
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
        params.set_no_timestamps(!self.settings.timestamps);
        params.set_single_segment(self.settings.single_segment);
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
        params.set_max_tokens(i32::try_from(max_tokens).unwrap_or(i32::MAX));
        if audio_ctx < AUDIO_CTX_FULL {
            params.set_audio_ctx(i32::try_from(audio_ctx).unwrap_or(0));
        }
        if !prompt.is_empty() {
            params.set_tokens(prompt);
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

        // Kept alive until `full` returns, as the interrupt's counter is.
        let loop_stop = LoopStop {
            eot: self.context.token_eot(),
            n_vocab: usize::try_from(self.context.n_vocab()).unwrap_or(0),
        };
        // SAFETY: the callback only reads `loop_stop`, which lives until after `full`
        // returns, and writes within the `n_vocab` logits whisper.cpp hands it.
        unsafe {
            params.set_filter_logits_callback(Some(end_a_loop));
            params.set_filter_logits_callback_user_data(
                &loop_stop as *const LoopStop as *mut std::ffi::c_void,
            );
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
        let mut tokens = Vec::new();
        for segment in self.state.as_iter() {
            for i in 0..segment.n_tokens() {
                if let Some(token) = segment.get_token(i) {
                    if token.token_id() < token_eot {
                        tokens.push((token.token_id(), token.token_probability()));
                    }
                }
            }
        }
        Ok(tokens)
    }

    /// The text of `tokens`, joined as bytes (a character may span tokens).
    fn detokenize(&self, tokens: &[i32]) -> String {
        let mut bytes = Vec::new();
        for &token in tokens {
            if let Ok(piece) = self.context.token_to_bytes(token) {
                bytes.extend_from_slice(piece);
            }
        }
        String::from_utf8_lossy(&bytes).trim().to_string()
    }
}

/// Steers whisper's Mandarin towards simplified characters ("what follows are sentences in
/// Mandarin"); whisper otherwise often writes traditional ones.
pub const SIMPLIFIED_PROMPT: &str = "以下是普通话的句子。";

/// Tokenizes `text` with a buffer sized from the text, so whisper.cpp can never report more
/// tokens than the buffer holds (each token is at least one byte).
///
/// whisper-rs 0.16's own `tokenize(text, max)` trusts whisper.cpp's return value: when the
/// text has more than `max` tokens whisper.cpp returns minus the count, and whisper-rs turns
/// that into a huge length ("capacity overflow", or worse). Sizing from the text means the
/// negative return cannot happen.
fn tokenize(context: &WhisperContext, text: &str) -> Result<Vec<i32>, whisper_rs::WhisperError> {
    context.tokenize(text, text.len() + 1)
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
            None if opts.language == Language::Zh => self.zh_prompt.clone(),
            None => Vec::new(),
        };

        self.samples_f32.clear();
        self.samples_f32
            .extend(pcm.iter().map(|&s| f32::from(s) / 32768.0));
        if self.samples_f32.len() < MIN_AUDIO_SAMPLES {
            self.samples_f32.resize(MIN_AUDIO_SAMPLES, 0.0);
        }
        let n_samples = self.samples_f32.len();

        let max_tokens = max_tokens_for(n_samples);
        let trimmed = self.settings.trim_audio_ctx;
        let audio_ctx = if trimmed {
            audio_ctx_for(pcm.len(), self.settings.trim_pad_ms)
        } else {
            AUDIO_CTX_FULL
        };
        let mut tokens = self.decode(opts, &prompt, audio_ctx, max_tokens, interrupt)?;
        let ids: Vec<i32> = tokens.iter().map(|t| t.0).collect();
        let retry_ctx = audio_ctx_for(pcm.len(), self.settings.retry_pad_ms);
        let ran_away = if self.settings.retry_loops {
            is_runaway(&ids, max_tokens)
        } else {
            ids.len() >= max_tokens
        };
        if trimmed && self.settings.runaway_retry && retry_ctx > audio_ctx && ran_away {
            tracing::debug!(
                tokens = ids.len(),
                audio_ctx,
                retry_ctx,
                text = %self.detokenize(&ids),
                "whisper ran away on a trimmed context; decoding again with a longer one"
            );
            self.retries += 1;
            tokens = self.decode(opts, &prompt, retry_ctx, max_tokens, interrupt)?;
        }
        let ids: Vec<i32> = tokens.iter().map(|t| t.0).collect();
        let looped = repeated_tail(&ids).is_some();
        let kept = cut_repetition(&ids);
        let tokens = &tokens[..kept.len()];
        self.last_token_count = tokens.len();
        let confidence = (!tokens.is_empty())
            .then(|| {
                let sum: f64 = tokens.iter().map(|t| f64::from(t.1)).sum();
                (sum / tokens.len() as f64) as f32
            })
            .filter(|c| c.is_finite());
        let mut text = self.detokenize(kept);
        if looped {
            text = drop_restart(&text).to_string();
        }
        if opts.language == Language::Zh {
            text = crate::language::to_simplified(&text);
        }
        Ok(Recognized { text, confidence })
    }
}

/// whisper with a model per language: the English model for English turns, and a
/// multilingual model for Mandarin. A Mandarin turn without a Mandarin model goes to the
/// English model, which refuses it unless it is multilingual.
#[derive(Debug)]
pub struct WhisperByLanguage {
    en: WhisperRecognizer,
    zh: Option<WhisperRecognizer>,
}

impl WhisperByLanguage {
    /// Routes English to `en` and Mandarin to `zh` (or to `en` when there is none).
    pub fn new(en: WhisperRecognizer, zh: Option<WhisperRecognizer>) -> Self {
        Self { en, zh }
    }

    fn for_language(&mut self, language: Language) -> &mut WhisperRecognizer {
        match (language, self.zh.as_mut()) {
            (Language::Zh, Some(zh)) => zh,
            _ => &mut self.en,
        }
    }
}

impl Recognizer for WhisperByLanguage {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn transcribe(&mut self, pcm: &[i16], opts: &AsrOptions) -> Result<Recognized, AsrError> {
        self.for_language(opts.language).transcribe(pcm, opts)
    }

    fn transcribe_interruptible(
        &mut self,
        pcm: &[i16],
        opts: &AsrOptions,
        interrupt: &Interrupt,
    ) -> Result<Recognized, AsrError> {
        self.for_language(opts.language)
            .transcribe_interruptible(pcm, opts, interrupt)
    }
}

/// What [`end_a_loop`] needs of the model.
struct LoopStop {
    /// The end-of-text token: ids below it are text.
    eot: i32,
    /// The length of the logits array.
    n_vocab: usize,
}

/// whisper.cpp's logits filter: once the text decoded so far ends in a loop
/// ([`repeated_tail`]: "Yes. Yes. Yes. Yes"), only the end of text may come next. A loop runs
/// to the token budget otherwise (27 tokens for a one-second "Yes."), the decoder's steps
/// spent on words that [`cut_repetition`] then drops, on the worker every call shares.
unsafe extern "C" fn end_a_loop(
    _ctx: *mut whisper_rs::WhisperSysContext,
    _state: *mut whisper_rs::WhisperSysState,
    tokens: *const whisper_rs::WhisperTokenData,
    n_tokens: std::os::raw::c_int,
    logits: *mut f32,
    user_data: *mut std::ffi::c_void,
) {
    let n = usize::try_from(n_tokens).unwrap_or(0);
    if user_data.is_null() || logits.is_null() || tokens.is_null() || n == 0 {
        return;
    }
    // SAFETY: `user_data` is the `LoopStop` kept alive by `decode` for the whole `full` call;
    // `tokens` holds the `n_tokens` tokens this decoder has produced (whisper.cpp's sequence).
    let (stop, tokens) = unsafe {
        (
            &*(user_data as *const LoopStop),
            std::slice::from_raw_parts(tokens, n),
        )
    };
    let text: Vec<i32> = tokens
        .iter()
        .map(|t| t.id)
        .filter(|&id| id < stop.eot)
        .collect();
    if repeated_tail(&text).is_none() {
        return;
    }
    let Ok(eot) = usize::try_from(stop.eot) else {
        return;
    };
    if eot >= stop.n_vocab {
        return;
    }
    // SAFETY: whisper.cpp passes the current step's logits, `n_vocab` of them.
    let logits = unsafe { std::slice::from_raw_parts_mut(logits, stop.n_vocab) };
    for (id, logit) in logits.iter_mut().enumerate() {
        if id != eot {
            *logit = f32::NEG_INFINITY;
        }
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
        // 3 s: 150 positions + 1 s of padding.
        assert_eq!(audio_ctx_for(3 * 16_000, 1_000), 200);
        // Short audio is clamped up, long audio down to the full context.
        assert_eq!(audio_ctx_for(1_000, 0), AUDIO_CTX_MIN);
        assert_eq!(audio_ctx_for(60 * 16_000, 1_000), AUDIO_CTX_FULL);
        // Part of a position rounds up.
        assert_eq!(audio_ctx_for(16_000 * 3 + 1, 0), 151);
    }

    /// The logits `end_a_loop` leaves after `text`, on a vocabulary of 10 with end of text 8.
    fn logits_after(text: &[i32]) -> Vec<f32> {
        let stop = LoopStop {
            eot: 8,
            n_vocab: 10,
        };
        let tokens: Vec<whisper_rs::WhisperTokenData> = text
            .iter()
            .map(|&id| {
                // SAFETY: a plain C struct of numbers; all zeros is a valid value.
                let mut t: whisper_rs::WhisperTokenData = unsafe { std::mem::zeroed() };
                t.id = id;
                t
            })
            .collect();
        let mut logits = vec![1.0f32; 10];
        // SAFETY: the pointers and lengths match, as whisper.cpp's do.
        unsafe {
            end_a_loop(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                tokens.as_ptr(),
                tokens.len() as std::os::raw::c_int,
                logits.as_mut_ptr(),
                &stop as *const LoopStop as *mut std::ffi::c_void,
            );
        }
        logits
    }

    #[test]
    fn a_loop_can_only_end() {
        // "Yes. Yes. Yes. Yes": the loop is found, and only the end of text may follow.
        let logits = logits_after(&[1, 2, 3, 2, 3, 2, 3]);
        assert_eq!(logits[8], 1.0);
        assert!(logits
            .iter()
            .enumerate()
            .all(|(i, &l)| i == 8 || l == f32::NEG_INFINITY));
        // Words, and a word said three times, go on as whisper likes.
        assert_eq!(logits_after(&[1, 2, 3, 4]), vec![1.0; 10]);
        assert_eq!(logits_after(&[5, 5, 5]), vec![1.0; 10]);
        // Tokens at or above the end of text (timestamps) are not text.
        assert_eq!(logits_after(&[1, 9, 2, 9, 3]), vec![1.0; 10]);
    }

    #[test]
    fn runaway_repetition_is_found_and_cut() {
        let looped = [5, 1, 2, 3, 1, 2, 3, 1, 2, 3];
        assert_eq!(repeated_tail(&looped), Some(6));
        assert!(is_runaway(&looped, 100));
        assert_eq!(cut_repetition(&looped), &[5, 1, 2, 3]);
        // A sentence started over, cut off by the budget.
        let again = [9, 1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5];
        assert_eq!(cut_repetition(&again), &[9, 1, 2, 3, 4, 5, 6, 7]);
        // Speech that repeats a word or two is speech.
        let no_no_no = [7, 9, 9, 9];
        assert_eq!(repeated_tail(&no_no_no), None);
        assert_eq!(cut_repetition(&no_no_no), &no_no_no);
        assert_eq!(repeated_tail(&[1, 2, 1, 2]), None);
        assert!(!is_runaway(&[1, 2, 3], 100));
        // A full budget is a runaway whatever it says.
        assert!(is_runaway(&[1, 2, 3], 3));
    }

    #[test]
    fn a_restart_left_after_a_loop_is_dropped() {
        assert_eq!(
            drop_restart("knowing that there was time to spare. Knowing"),
            "knowing that there was time to spare."
        );
        assert_eq!(
            drop_restart("Yet when he got up, yet when"),
            "Yet when he got up"
        );
        assert_eq!(
            drop_restart("foam flew from his lips,"),
            "foam flew from his lips"
        );
        // Words that do not repeat the start, or follow no phrase end, are speech.
        assert_eq!(drop_restart("Yes, I need help"), "Yes, I need help");
        assert_eq!(drop_restart("no more no"), "no more no");
        assert_eq!(drop_restart("Help."), "Help.");
        assert_eq!(drop_restart(""), "");
    }

    #[test]
    fn token_budget_grows_with_the_audio() {
        assert_eq!(max_tokens_for(16_000), 26);
        assert_eq!(max_tokens_for(3 * 16_000), 46);
    }
}
