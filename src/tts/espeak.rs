//! espeak-ng, in process, on the one thread that owns it.
//!
//! espeak-ng keeps its state in globals and is not thread-safe, so the process has exactly one
//! espeak worker thread, started on first use and shared by every [`EspeakSynthesizer`] (and so
//! by every `TtsService`). Requests arrive over a channel, one sentence at a time, and each
//! carries the voice and rate it needs, so callers with different settings can share the worker.
//!
//! The library is espeak-ng 1.52 as vendored and built by `espeak-rs-sys` (Debian's 1.51 reads
//! Mandarin tone digits as English words). That crate compiles the phoneme and dictionary data
//! into its build output (with the `compile-espeak-intonations` feature), and the binary
//! carries the part hotline speaks with (`crate::bundle`), so it runs outside the build tree.
//! [`find_data_dir`] takes the `HOTLINE_ESPEAK_DATA` environment variable (a folder holding
//! `phontab`, or its parent) when it is set, else the built-in data, unpacked on first use.
//!
//! espeak-ng prints "Full dictionary is not installed for 'cmn'" on stderr each time it loads
//! the Mandarin voice (the extended Mandarin word list is not compiled in; the rules and the
//! short list are). The worker catches what espeak-ng writes while it loads a voice and logs
//! that line at debug level; anything else written meanwhile goes on to stderr unchanged.
//!
//! espeak-ng speaks at 22 050 Hz; [`EspeakSynthesizer`] converts to the pipeline's 16 kHz.
//!
//! Cancellation: a synthesis request may carry a [`CancelToken`]. The worker checks it before
//! it starts the sentence, and espeak-ng's synth callback polls it after every audio buffer
//! (60 ms of audio, the smallest espeak-ng allows): returning 1 makes espeak-ng stop
//! (`SpeakNextClause(2)` empties its phoneme list and command queue) and answer
//! `ENS_SPEECH_STOPPED`, which becomes [`TtsError::Cancelled`]. The next request starts from
//! clean state: each synthesis decodes its text afresh.

use std::cell::RefCell;
use std::ffi::{c_int, c_short, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, OnceLock};

use espeak_rs_sys as sys;

use super::{CancelToken, Synthesizer, TtsError};
use crate::config::TtsConfig;
use crate::language::Language;

/// The environment variable that points at an espeak-ng data folder.
pub const DATA_ENV: &str = "HOTLINE_ESPEAK_DATA";

/// Files a usable data folder must hold.
const REQUIRED_DATA_FILES: [&str; 5] =
    ["phontab", "phonindex", "phondata", "intonations", "en_dict"];

/// Slowest and fastest rates espeak-ng accepts, in words per minute.
pub const RATE_WPM_RANGE: std::ops::RangeInclusive<u32> = 80..=450;

/// Finds the espeak-ng data folder (see the module docs for the order).
pub fn find_data_dir() -> Result<PathBuf, TtsError> {
    if let Some(value) = std::env::var_os(DATA_ENV) {
        let given = PathBuf::from(value);
        return [given.clone(), given.join("espeak-ng-data")]
            .into_iter()
            .find(|dir| is_data_dir(dir))
            .ok_or_else(|| TtsError::EspeakData {
                message: format!(
                    "{DATA_ENV}={} holds no compiled espeak-ng data (phontab, en_dict, ...)",
                    given.display()
                ),
            });
    }
    crate::bundle::espeak_data_dir().map_err(|e| TtsError::EspeakData {
        message: e.to_string(),
    })
}

fn is_data_dir(dir: &Path) -> bool {
    REQUIRED_DATA_FILES.iter().all(|f| dir.join(f).is_file())
}

/// Runs `f` with the process's stderr caught in a pipe, then puts stderr back: espeak-ng's
/// notes about missing dictionaries become a debug log line, and anything else caught goes on
/// to stderr as it was. Without a pipe, `f` just runs.
fn with_stderr_caught<R>(f: impl FnOnce() -> R) -> R {
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    let mut fds = [0 as c_int; 2];
    // SAFETY: plain POSIX calls on descriptors this function owns; stderr (2) is restored
    // before it returns, whatever `f` did.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) != 0 {
            return f();
        }
        let saved = libc::dup(2);
        if saved < 0 || libc::dup2(fds[1], 2) < 0 {
            libc::close(fds[0]);
            libc::close(fds[1]);
            if saved >= 0 {
                libc::close(saved);
            }
            return f();
        }
        let result = f();
        libc::dup2(saved, 2);
        libc::close(saved);
        libc::close(fds[1]);
        let mut caught = Vec::new();
        let mut reader = std::fs::File::from_raw_fd(fds[0]);
        let _ = reader.read_to_end(&mut caught);
        let mut passed = Vec::new();
        for line in String::from_utf8_lossy(&caught).lines() {
            if line.starts_with("Full dictionary is not installed") {
                tracing::debug!("espeak-ng: {line}");
            } else {
                passed.extend_from_slice(line.as_bytes());
                passed.push(b'\n');
            }
        }
        if !passed.is_empty() {
            let _ = std::io::stderr().write_all(&passed);
        }
        result
    }
}

/// One request to the espeak worker.
enum Request {
    /// Speaks `text`; answers 22 050 Hz (or the worker's rate) mono PCM.
    Synthesize {
        voice: String,
        rate_wpm: u32,
        text: String,
        cancel: Option<CancelToken>,
        reply: mpsc::Sender<Result<Vec<i16>, TtsError>>,
    },
    /// Translates `text` to espeak's phoneme mnemonics.
    Phonemes {
        voice: String,
        text: String,
        reply: mpsc::Sender<Result<String, TtsError>>,
    },
    /// Checks that a voice loads.
    CheckVoice {
        voice: String,
        reply: mpsc::Sender<Result<(), TtsError>>,
    },
}

/// The process's espeak worker: a channel to its thread.
struct Worker {
    requests: mpsc::Sender<Request>,
    sample_rate_hz: u32,
    data_dir: PathBuf,
}

/// The worker, started on first use; `Err` holds why it could not start.
static WORKER: OnceLock<Result<Worker, String>> = OnceLock::new();

fn worker() -> Result<&'static Worker, TtsError> {
    WORKER
        .get_or_init(start_worker)
        .as_ref()
        .map_err(|message| TtsError::EspeakInit(message.clone()))
}

fn start_worker() -> Result<Worker, String> {
    let data_dir = find_data_dir().map_err(|e| e.to_string())?;
    let (requests, inbox) = mpsc::channel::<Request>();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<u32, String>>();
    let thread_data_dir = data_dir.clone();
    std::thread::Builder::new()
        .name("espeak".into())
        .spawn(move || {
            let mut engine = match Engine::initialize(&thread_data_dir) {
                Ok(engine) => {
                    let _ = ready_tx.send(Ok(engine.sample_rate_hz));
                    engine
                }
                Err(message) => {
                    let _ = ready_tx.send(Err(message));
                    return;
                }
            };
            // The worker lives as long as the process; requests come from every service.
            while let Ok(request) = inbox.recv() {
                engine.serve(request);
            }
        })
        .map_err(|e| format!("cannot start the espeak thread: {e}"))?;
    let sample_rate_hz = ready_rx
        .recv()
        .map_err(|_| "the espeak thread stopped while starting".to_string())??;
    tracing::info!(data = %data_dir.display(), sample_rate_hz, "espeak-ng ready");
    Ok(Worker {
        requests,
        sample_rate_hz,
        data_dir,
    })
}

thread_local! {
    /// Samples of the sentence being synthesized; only the espeak thread touches it.
    static SYNTH_BUFFER: RefCell<Vec<i16>> = const { RefCell::new(Vec::new()) };
    /// The token of the sentence being synthesized, if it can be cancelled.
    static SYNTH_CANCEL: RefCell<Option<CancelToken>> = const { RefCell::new(None) };
}

/// espeak's synchronous-mode callback: appends each block of samples to [`SYNTH_BUFFER`], or
/// aborts the synthesis (returns 1) once [`SYNTH_CANCEL`] is cancelled.
unsafe extern "C" fn collect_samples(
    wav: *mut c_short,
    samples: c_int,
    _events: *mut sys::espeak_EVENT,
) -> c_int {
    let cancelled =
        SYNTH_CANCEL.with(|cancel| cancel.borrow().as_ref().is_some_and(CancelToken::check));
    if cancelled {
        return 1; // abort synthesis
    }
    if !wav.is_null() && samples > 0 {
        // SAFETY: espeak passes `samples` valid samples at `wav` for the duration of the call.
        let block = unsafe { std::slice::from_raw_parts(wav, samples as usize) };
        SYNTH_BUFFER.with(|buffer| buffer.borrow_mut().extend_from_slice(block));
    }
    0 // continue synthesis
}

/// The initialized library, owned by the worker thread.
struct Engine {
    sample_rate_hz: u32,
    voice: Option<String>,
}

impl Engine {
    fn initialize(data_dir: &Path) -> Result<Self, String> {
        let path = CString::new(data_dir.as_os_str().as_encoded_bytes()).map_err(|_| {
            format!(
                "espeak data path {} contains a NUL byte",
                data_dir.display()
            )
        })?;
        // SAFETY: called once, on the only thread that ever calls into espeak; `path` outlives
        // the call (espeak copies it).
        unsafe {
            sys::espeak_ng_InitializePath(path.as_ptr());
            let mut context: sys::espeak_ng_ERROR_CONTEXT = std::ptr::null_mut();
            let status = sys::espeak_ng_Initialize(&mut context);
            if status != sys::espeak_ng_STATUS_ENS_OK {
                sys::espeak_ng_ClearErrorContext(&mut context);
                return Err(format!(
                    "espeak-ng failed to load its data from {}: {}",
                    data_dir.display(),
                    status_message(status)
                ));
            }
            let status = sys::espeak_ng_InitializeOutput(
                sys::espeak_ng_OUTPUT_MODE_ENOUTPUT_MODE_SYNCHRONOUS,
                0,
                std::ptr::null(),
            );
            if status != sys::espeak_ng_STATUS_ENS_OK {
                return Err(format!(
                    "espeak-ng output setup failed: {}",
                    status_message(status)
                ));
            }
            sys::espeak_SetSynthCallback(Some(collect_samples));
            let sample_rate_hz = sys::espeak_ng_GetSampleRate();
            if sample_rate_hz <= 0 {
                return Err(format!(
                    "espeak-ng reports a sample rate of {sample_rate_hz}"
                ));
            }
            Ok(Self {
                sample_rate_hz: sample_rate_hz as u32,
                voice: None,
            })
        }
    }

    fn serve(&mut self, request: Request) {
        match request {
            Request::Synthesize {
                voice,
                rate_wpm,
                text,
                cancel,
                reply,
            } => {
                let _ = reply.send(self.synthesize(&voice, rate_wpm, &text, cancel));
            }
            Request::Phonemes { voice, text, reply } => {
                let _ = reply.send(self.phonemes(&voice, &text));
            }
            Request::CheckVoice { voice, reply } => {
                let _ = reply.send(self.set_voice(&voice));
            }
        }
    }

    fn set_voice(&mut self, voice: &str) -> Result<(), TtsError> {
        if self.voice.as_deref() == Some(voice) {
            return Ok(());
        }
        let name = CString::new(voice).map_err(|_| TtsError::Voice {
            voice: voice.to_string(),
            message: "contains a NUL byte".into(),
        })?;
        // SAFETY: espeak thread only; `name` is a valid C string for the call.
        let status = with_stderr_caught(|| unsafe { sys::espeak_ng_SetVoiceByName(name.as_ptr()) });
        if status != sys::espeak_ng_STATUS_ENS_OK {
            self.voice = None;
            return Err(TtsError::Voice {
                voice: voice.to_string(),
                message: status_message(status),
            });
        }
        self.voice = Some(voice.to_string());
        Ok(())
    }

    fn synthesize(
        &mut self,
        voice: &str,
        rate_wpm: u32,
        text: &str,
        cancel: Option<CancelToken>,
    ) -> Result<Vec<i16>, TtsError> {
        if cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            // Cancelled while the request waited for this thread.
            return Err(TtsError::Cancelled { samples: 0 });
        }
        self.set_voice(voice)?;
        // SAFETY: espeak thread only; a plain parameter setter.
        let status = unsafe {
            sys::espeak_ng_SetParameter(sys::espeak_PARAMETER_espeakRATE, rate_wpm as c_int, 0)
        };
        if status != sys::espeak_ng_STATUS_ENS_OK {
            return Err(TtsError::Synthesis {
                message: format!("rate {rate_wpm}: {}", status_message(status)),
            });
        }
        let text = c_text(text);
        SYNTH_BUFFER.with(|buffer| buffer.borrow_mut().clear());
        SYNTH_CANCEL.with(|slot| *slot.borrow_mut() = cancel);
        // SAFETY: espeak thread only; `text` is a valid C string for the call. In synchronous
        // mode `espeak_ng_Synthesize` returns after every callback has run, so the thread-local
        // buffer then holds the whole sentence, or what was made before the callback aborted.
        let status = unsafe {
            let bytes = text.as_bytes_with_nul();
            sys::espeak_ng_Synthesize(
                bytes.as_ptr().cast::<c_void>(),
                bytes.len(),
                0,
                sys::espeak_POSITION_TYPE_POS_CHARACTER,
                0,
                sys::espeakCHARS_UTF8,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        let cancelled = SYNTH_CANCEL
            .with(|slot| slot.borrow_mut().take())
            .is_some_and(|token| token.is_cancelled());
        let pcm = SYNTH_BUFFER.with(|buffer| std::mem::take(&mut *buffer.borrow_mut()));
        if status == sys::espeak_ng_STATUS_ENS_SPEECH_STOPPED && cancelled {
            return Err(TtsError::Cancelled { samples: pcm.len() });
        }
        if status != sys::espeak_ng_STATUS_ENS_OK {
            return Err(TtsError::Synthesis {
                message: status_message(status),
            });
        }
        Ok(pcm)
    }

    fn phonemes(&mut self, voice: &str, text: &str) -> Result<String, TtsError> {
        self.set_voice(voice)?;
        let text = c_text(text);
        let mut parts: Vec<String> = Vec::new();
        let mut cursor: *const c_void = text.as_ptr().cast();
        // SAFETY: espeak thread only. espeak advances `cursor` through `text` (alive for the
        // loop) clause by clause and sets it to null at the end; each returned string is valid
        // until the next call and is copied at once.
        unsafe {
            while !cursor.is_null() {
                let phonemes =
                    sys::espeak_TextToPhonemes(&mut cursor, sys::espeakCHARS_UTF8 as c_int, 0);
                if phonemes.is_null() {
                    break;
                }
                let clause = CStr::from_ptr(phonemes)
                    .to_string_lossy()
                    .trim()
                    .to_string();
                if !clause.is_empty() {
                    parts.push(clause);
                }
            }
        }
        Ok(parts.join(" "))
    }
}

/// Text as a C string (NUL bytes in the text are dropped).
fn c_text(text: &str) -> CString {
    CString::new(text.replace('\0', "")).expect("NUL bytes were removed")
}

fn status_message(status: sys::espeak_ng_STATUS) -> String {
    let mut buffer = [0 as std::ffi::c_char; 512];
    // SAFETY: espeak writes at most `buffer.len()` bytes, NUL-terminated; this function only
    // formats a message and touches no synthesis state.
    unsafe {
        sys::espeak_ng_GetStatusCodeMessage(status, buffer.as_mut_ptr(), buffer.len());
        CStr::from_ptr(buffer.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

/// espeak-ng speech, converted to 16 kHz. Cheap to clone: it is a handle on the shared worker.
#[derive(Debug, Clone)]
pub struct EspeakSynthesizer {
    voice_en: String,
    voice_zh: String,
    rate_wpm: u32,
}

impl EspeakSynthesizer {
    /// Starts the worker if needed and checks that both voices load.
    pub fn new(config: &TtsConfig) -> Result<Self, TtsError> {
        if !RATE_WPM_RANGE.contains(&config.rate_wpm) {
            return Err(TtsError::Config {
                key: "tts.rate_wpm",
                message: format!(
                    "{} is outside espeak-ng's {}..={}",
                    config.rate_wpm,
                    RATE_WPM_RANGE.start(),
                    RATE_WPM_RANGE.end()
                ),
            });
        }
        let synthesizer = Self {
            voice_en: config.voice_en.clone(),
            voice_zh: config.voice_zh.clone(),
            rate_wpm: config.rate_wpm,
        };
        for voice in [&synthesizer.voice_en, &synthesizer.voice_zh] {
            ask(|reply| Request::CheckVoice {
                voice: voice.clone(),
                reply,
            })?;
        }
        Ok(synthesizer)
    }

    /// The voice used for `language`.
    pub fn voice(&self, language: Language) -> &str {
        match language {
            Language::En => &self.voice_en,
            Language::Zh => &self.voice_zh,
        }
    }

    /// The speaking rate.
    pub fn rate_wpm(&self) -> u32 {
        self.rate_wpm
    }

    /// The data folder the worker loaded.
    pub fn data_dir() -> Result<PathBuf, TtsError> {
        worker().map(|w| w.data_dir.clone())
    }

    /// espeak's own output rate (22 050 Hz).
    pub fn native_sample_rate_hz() -> Result<u32, TtsError> {
        worker().map(|w| w.sample_rate_hz)
    }

    /// Speaks `text` at espeak's own rate ([`Self::native_sample_rate_hz`]).
    pub fn synthesize_native(&self, text: &str, language: Language) -> Result<Vec<i16>, TtsError> {
        self.request_synthesis(text, language, None)
    }

    /// [`Self::synthesize_native`], stopped within one 60 ms audio buffer once `cancel` is
    /// cancelled: then [`TtsError::Cancelled`] with the samples made so far.
    pub fn synthesize_native_cancellable(
        &self,
        text: &str,
        language: Language,
        cancel: &CancelToken,
    ) -> Result<Vec<i16>, TtsError> {
        self.request_synthesis(text, language, Some(cancel.clone()))
    }

    fn request_synthesis(
        &self,
        text: &str,
        language: Language,
        cancel: Option<CancelToken>,
    ) -> Result<Vec<i16>, TtsError> {
        let voice = self.voice(language).to_string();
        let rate_wpm = self.rate_wpm;
        ask(|reply| Request::Synthesize {
            voice,
            rate_wpm,
            text: text.to_string(),
            cancel,
            reply,
        })
    }

    /// espeak's 22 050 Hz speech as the pipeline's 16 kHz.
    fn to_pipeline_rate(native: &[i16]) -> Result<Vec<i16>, TtsError> {
        let from_hz = Self::native_sample_rate_hz()?;
        Ok(crate::audio::resample::resample(
            native,
            from_hz,
            crate::audio::SAMPLE_RATE_HZ,
        )?)
    }

    /// espeak's phoneme mnemonics for `text` (what it will say), clause by clause.
    pub fn phonemes(&self, text: &str, language: Language) -> Result<String, TtsError> {
        let voice = self.voice(language).to_string();
        ask(|reply| Request::Phonemes {
            voice,
            text: text.to_string(),
            reply,
        })
    }
}

impl Synthesizer for EspeakSynthesizer {
    fn name(&self) -> &'static str {
        "espeak-ng"
    }

    fn synthesize(&mut self, text: &str, language: Language) -> Result<Vec<i16>, TtsError> {
        Self::to_pipeline_rate(&self.synthesize_native(text, language)?)
    }

    fn synthesize_cancellable(
        &mut self,
        text: &str,
        language: Language,
        cancel: &CancelToken,
    ) -> Result<Vec<i16>, TtsError> {
        Self::to_pipeline_rate(&self.synthesize_native_cancellable(text, language, cancel)?)
    }
}

/// Sends one request to the worker and waits for its answer.
fn ask<T>(make: impl FnOnce(mpsc::Sender<Result<T, TtsError>>) -> Request) -> Result<T, TtsError> {
    let worker = worker()?;
    let (reply, answer) = mpsc::channel();
    worker
        .requests
        .send(make(reply))
        .map_err(|_| TtsError::WorkerGone)?;
    answer.recv().map_err(|_| TtsError::WorkerGone)?
}
