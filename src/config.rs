//! The typed configuration: one TOML file, every key optional, unknown keys rejected.
//!
//! Defaults are embedded in the binary, so `hotline serve` runs with no file at all. Errors name
//! the file, line and key (the `toml` crate reports the span; we add the path).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::language::Language;

/// A config file that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: key `{key}`: {message}")]
    Invalid {
        path: String,
        key: String,
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The calls' language. With the flow engine a call speaks its flow's language, so this
    /// only chooses the default flow when `dialogue.default_flow` is not set (the first flow in
    /// this language), and if both are set they must agree (start-up fails otherwise). With the
    /// basic engine it is the calls' language. Not set: the default flow's language (`en` for
    /// the basic engine).
    pub language: Option<Language>,
    pub session: SessionConfig,
    pub asr: AsrConfig,
    pub tts: TtsConfig,
    pub dialogue: DialogueConfig,
    pub server: ServerConfig,
    pub replay: ReplayConfig,
    pub web: crate::web::config::WebConfig,
    pub sip: crate::phone::config::SipConfig,
    pub privacy: crate::privacy::PrivacyConfig,
    pub store: crate::store::StoreConfig,
    pub qa: crate::insight::qa::QaConfig,
    /// Queues of human agents (`agents::config`).
    pub agents: crate::agents::AgentsConfig,
}

/// Turn-taking: VAD, endpointing, barge-in and timers (see `session`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// VAD probability at or above which a frame counts as speech.
    pub vad_threshold: f32,
    /// A frame the VAD calls speech counts as pause when it is this much (dB) below the
    /// utterance's loudest frame: the VAD goes on calling the fading tail of the last word
    /// voice, which would start every pause late. `0` turns this off.
    pub pause_below_peak_db: f32,
    /// Voiced time needed before speech counts as started.
    pub speech_start_ms: u64,
    /// Silence after speech that ends the caller's turn (the endpoint).
    pub endpoint_silence_ms: u64,
    /// A turn longer than this is ended even without silence.
    pub max_utterance_ms: u64,
    /// Audio kept from before the speech onset.
    pub preroll_ms: u64,
    /// Caller speech needed, while the bot talks, to stop the bot (barge-in).
    pub barge_in_min_speech_ms: u64,
    /// Barge-in is ignored during the first part of each bot prompt (a blunt echo defence; the
    /// echo gate below is the better one).
    pub barge_in_grace_ms: u64,
    /// The echo gate: a caller frame counts as the caller's own voice only when it is this
    /// much louder than the echo the bot's recent audio explains (`session::echo`); `0` turns
    /// the gate off.
    pub echo_margin_db: f32,
    /// The echo gate: the longest echo delay it looks for.
    pub echo_tail_ms: u64,
    /// The echo canceller: takes the bot's echo, on the path the gate learned, out of what the
    /// VAD and the recognizer hear (`session::canceller`). Needs the gate.
    pub echo_cancel: bool,
    /// After a barge-in that turns out to be false (a backchannel such as "uh-huh", or a cough
    /// or noise that brings no words), the bot resumes its reply from the sentence it was cut in.
    pub barge_in_resume: bool,
    /// With `barge_in_resume`: a final over the bot that the recognizer gives less confidence
    /// than this, of at most two words (four Mandarin characters), with no stop word and
    /// nothing the bot waits for in it, is taken for a misheard backchannel and the bot
    /// resumes (`bot_resumed` reason `unclear`); `0` (the default) turns this off.
    pub barge_in_unclear_below: f32,
    /// The final recognition starts, speculatively, after this much silence (before the turn
    /// is known to be over); its text is used if the caller does not go on, and dropped if
    /// they do. `0` waits for the endpoint.
    pub speculative_asr_ms: u64,
    /// The speculative final's words have their say on a pause (`turn::words`): a finished
    /// sentence ends the turn at once, one that leads on ("and", a trailing comma, a digit
    /// string being given) waits up to `turn_max_silence_ms`. Needs `speculative_asr_ms`.
    pub end_on_words: bool,
    /// With `end_on_words`: the shortest pause that a finished sentence ends. Callers pause
    /// 300-450 ms between the sentences of one turn; a speculative final that comes back
    /// sooner than this waits for it. `0`: the turn ends as soon as the words come back; at
    /// or above the silence that ends the turn anyway, the words end none early.
    pub words_min_silence_ms: u64,
    /// How often a partial transcript is requested while the caller speaks.
    pub partial_interval_ms: u64,
    /// Silence after the bot finishes before the dialogue hears "no input".
    pub no_input_timeout_ms: u64,
    /// How the end of the caller's turn is decided: `silence` (a fixed `endpoint_silence_ms`),
    /// `smart_turn` (the learned end-of-turn model; an error at start-up when it is not
    /// installed) or `auto` (the model when installed, else silence).
    pub end_of_turn: EndOfTurnKind,
    /// With the model: the silence after which it is asked whether the turn is complete.
    pub turn_check_ms: u64,
    /// With the model: the probability from which a turn counts as complete (it ends at once).
    pub turn_complete_threshold: f32,
    /// With the model: the longest silence a turn the model thinks unfinished waits for.
    pub turn_max_silence_ms: u64,
}

/// How the end of a caller's turn is decided (`session.end_of_turn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EndOfTurnKind {
    /// The learned model when it is installed, else silence.
    Auto,
    /// The learned end-of-turn model (Smart Turn); start-up fails when it is missing.
    SmartTurn,
    /// A fixed silence (`endpoint_silence_ms`).
    #[default]
    Silence,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            vad_threshold: 0.5,
            pause_below_peak_db: 30.0,
            speech_start_ms: 100,
            endpoint_silence_ms: 600,
            max_utterance_ms: 15_000,
            preroll_ms: 200,
            barge_in_min_speech_ms: 80,
            barge_in_grace_ms: 0,
            echo_margin_db: 6.0,
            echo_tail_ms: 300,
            echo_cancel: true,
            barge_in_resume: true,
            barge_in_unclear_below: 0.0,
            speculative_asr_ms: 200,
            end_on_words: true,
            words_min_silence_ms: 400,
            partial_interval_ms: 2_000,
            no_input_timeout_ms: 8_000,
            end_of_turn: EndOfTurnKind::Silence,
            turn_check_ms: 200,
            turn_complete_threshold: 0.5,
            turn_max_silence_ms: 1_500,
        }
    }
}

/// Which recognizer to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AsrEngineKind {
    /// whisper when its model file exists, else Sphinx.
    #[default]
    Auto,
    Whisper,
    Sphinx,
}

/// The English whisper model a default config runs (chosen by measurement; see README).
pub const DEFAULT_MODEL_EN: &str = "tiny.en-q8_0";
/// The Mandarin whisper model a default config runs.
pub const DEFAULT_MODEL_ZH: &str = "base-q8_0";

/// Speech recognition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AsrConfig {
    pub engine: AsrEngineKind,
    /// The whisper model for English: a trained model's name (`hotline models list`), looked
    /// up in the model cache, or the path of a ggml file.
    pub model: PathBuf,
    /// The multilingual whisper model for Mandarin turns (a name or a path; empty for none).
    pub model_zh: PathBuf,
    /// whisper threads per worker.
    pub threads: usize,
    /// Shrink whisper's encoder context to the audio's length (faster on short turns).
    pub trim_audio_ctx: bool,
    /// Recognizer workers (each loads its own model).
    pub workers: usize,
    /// PocketSphinx acoustic model folder.
    pub sphinx_hmm: PathBuf,
    /// PocketSphinx language model.
    pub sphinx_lm: PathBuf,
    /// PocketSphinx pronunciation dictionary.
    pub sphinx_dict: PathBuf,
}

impl Default for AsrConfig {
    fn default() -> Self {
        Self {
            engine: AsrEngineKind::Auto,
            model: PathBuf::from(DEFAULT_MODEL_EN),
            model_zh: PathBuf::from(DEFAULT_MODEL_ZH),
            threads: 2,
            trim_audio_ctx: true,
            workers: 1,
            sphinx_hmm: PathBuf::from("/usr/share/pocketsphinx/model/en-us/en-us"),
            sphinx_lm: PathBuf::from("/usr/share/pocketsphinx/model/en-us/en-us.lm.bin"),
            sphinx_dict: PathBuf::from("/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict"),
        }
    }
}

/// Speech synthesis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TtsConfig {
    /// espeak-ng voice for English.
    pub voice_en: String,
    /// espeak-ng voice for Mandarin.
    pub voice_zh: String,
    /// Speaking rate, words per minute.
    pub rate_wpm: u32,
    /// Synthesized sentences kept in memory.
    pub cache_entries: usize,
    /// Where recorded prompt files live.
    pub prompts_dir: PathBuf,
}

impl Default for TtsConfig {
    fn default() -> Self {
        Self {
            voice_en: "en-us".into(),
            voice_zh: "cmn".into(),
            rate_wpm: 175,
            cache_entries: 512,
            prompts_dir: PathBuf::from("assets/prompts"),
        }
    }
}

/// The `[dialogue]` section is the dialogue's own type (`dialogue::config`), re-exported here so
/// that every section of the file can be named from this module.
pub use crate::dialogue::config::{DialogueConfig, DialogueEngineKind, BUILTIN_DEFAULT_FLOW};

/// The server's shared settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Where each call's record (events, recording, transcript) is written.
    pub records_dir: PathBuf,
    /// The most calls at once, across all transports.
    pub max_calls: usize,
    /// On SIGTERM or Ctrl-C, how long calls in progress may go on before the bot says goodbye
    /// and hangs up (new calls are refused meanwhile). A second signal ends them at once.
    pub drain_timeout_s: u64,
    /// Delete a finished call's record folder after this many days (0: keep for ever).
    pub retain_days: u32,
    /// Delete only a record's `recording.wav` after this many days (0: as long as the record).
    pub recording_retain_days: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            records_dir: PathBuf::from("records"),
            max_calls: 32,
            drain_timeout_s: 30,
            retain_days: 0,
            recording_retain_days: 0,
        }
    }
}

/// `hotline replay`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplayConfig {
    /// The pause after each bot reply before the next caller WAV plays.
    pub pause_after_reply_ms: u64,
    /// How long replay waits for the bot after the last caller turn.
    pub tail_ms: u64,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            pause_after_reply_ms: 800,
            tail_ms: 10_000,
        }
    }
}

impl Config {
    /// Loads a config file; keys it does not give keep their defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: describe_toml_error(text, &e),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Points the asset paths still at their defaults (`assets/...`, relative to the working
    /// directory) at the binary's built-in copies when the working directory has no such file
    /// or folder: a server started anywhere has its flows, knowledge bases and prompts, and an
    /// `assets/` folder where it starts overrides them. A path the config sets is left alone.
    pub fn with_built_in_assets(mut self) -> Self {
        let defaults = (DialogueConfig::default(), TtsConfig::default());
        let paths: [(&mut PathBuf, PathBuf, &str); 4] = [
            (
                &mut self.dialogue.basic,
                defaults.0.basic,
                "basic_dialogue.toml",
            ),
            (&mut self.dialogue.flows_dir, defaults.0.flows_dir, "flows"),
            (&mut self.dialogue.kb_dir, defaults.0.kb_dir, "kb"),
            (&mut self.tts.prompts_dir, defaults.1.prompts_dir, "prompts"),
        ];
        for (path, default, built_in) in paths {
            if *path != default || path.exists() {
                continue;
            }
            match crate::bundle::assets_dir() {
                Ok(dir) => *path = dir.join(built_in),
                Err(e) => {
                    tracing::warn!("{e}");
                    break;
                }
            }
        }
        self
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            path: origin.to_string(),
            key: key.to_string(),
            message: message.to_string(),
        };
        if !(0.0..=1.0).contains(&self.session.vad_threshold) {
            return Err(invalid("session.vad_threshold", "must be between 0 and 1"));
        }
        if !(0.0..=80.0).contains(&self.session.pause_below_peak_db) {
            return Err(invalid(
                "session.pause_below_peak_db",
                "must be between 0 (off) and 80",
            ));
        }
        if self.session.endpoint_silence_ms < 100 {
            return Err(invalid(
                "session.endpoint_silence_ms",
                "must be at least 100",
            ));
        }
        if !(0.0..=1.0).contains(&self.session.barge_in_unclear_below) {
            return Err(invalid(
                "session.barge_in_unclear_below",
                "must be between 0 and 1",
            ));
        }
        if !(0.0..=1.0).contains(&self.session.turn_complete_threshold) {
            return Err(invalid(
                "session.turn_complete_threshold",
                "must be between 0 and 1",
            ));
        }
        if self.session.turn_check_ms >= self.session.turn_max_silence_ms {
            return Err(invalid(
                "session.turn_check_ms",
                "must be shorter than session.turn_max_silence_ms",
            ));
        }
        if !(0.0..=40.0).contains(&self.session.echo_margin_db) {
            return Err(invalid(
                "session.echo_margin_db",
                "must be between 0 (off) and 40",
            ));
        }
        if self.session.echo_tail_ms > 1_000 {
            return Err(invalid("session.echo_tail_ms", "must be at most 1000"));
        }
        if self.asr.workers == 0 {
            return Err(invalid("asr.workers", "must be at least 1"));
        }
        if self.asr.threads == 0 {
            return Err(invalid("asr.threads", "must be at least 1"));
        }
        for (key, value) in [
            ("asr.model", &self.asr.model),
            ("asr.model_zh", &self.asr.model_zh),
        ] {
            if value.as_os_str().is_empty() && key == "asr.model_zh" {
                continue;
            }
            if let Err(e) = crate::models::resolve(&value.to_string_lossy()) {
                return Err(invalid(key, &e.to_string()));
            }
        }
        if self.server.max_calls == 0 {
            return Err(invalid("server.max_calls", "must be at least 1"));
        }
        if let Err(e) = self.web.validate() {
            return Err(invalid(&format!("web.{}", e.key), &e.message));
        }
        if let Err(e) = self.sip.validate() {
            return Err(invalid(&format!("sip.{}", e.key), &e.message));
        }
        if let Err(e) = self.privacy.validate() {
            return Err(invalid(&format!("privacy.{}", e.key()), &e.to_string()));
        }
        if let Err(crate::store::StoreError::Url(message)) = self.store.validate() {
            return Err(invalid("store.url", &message));
        }
        if self.store.batch_max == 0 {
            return Err(invalid("store.batch_max", "must be at least 1"));
        }
        if self.store.queue == 0 {
            return Err(invalid("store.queue", "must be at least 1"));
        }
        if self.qa.dead_air_s.is_nan() || self.qa.dead_air_s < 0.0 {
            return Err(invalid("qa.dead_air_s", "must be 0 (off) or more"));
        }
        if let Err(e) = self.agents.validate() {
            return Err(invalid(&format!("agents.{}", e.key), &e.message));
        }
        if self.qa.repeated_no_match == 0 {
            return Err(invalid("qa.repeated_no_match", "must be at least 1"));
        }
        if !(-1.0..=1.0).contains(&self.qa.frustration_below) {
            return Err(invalid("qa.frustration_below", "must be between -1 and 1"));
        }
        Ok(())
    }
}

/// Renders a TOML error as "line N: message".
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployment_example_parses_and_is_not_open_to_everyone() {
        let text = include_str!("../assets/deploy/hotline.toml");
        let config = Config::parse(text, "assets/deploy/hotline.toml").expect("parses");
        assert!(!config.sip.bind_ip.is_loopback());
        assert!(!config.sip.open_to_everyone());
        assert!(config.web.enabled);
    }

    #[test]
    fn asset_paths_the_config_sets_are_kept() {
        let mut config = Config::default();
        config.dialogue.flows_dir = PathBuf::from("/nowhere/flows");
        let config = config.with_built_in_assets();
        assert_eq!(config.dialogue.flows_dir, PathBuf::from("/nowhere/flows"));
    }
}
