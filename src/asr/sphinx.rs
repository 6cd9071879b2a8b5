//! The PocketSphinx recognizer: Debian's PocketSphinx 0.8+5prealpha, offline, English only.
//!
//! Owns one decoder (acoustic model, pronunciation dictionary, the general n-gram language
//! model as the default search) plus one named FSG search per [`Grammar`] it has been asked
//! for. Loading the full language model takes about 4 s, so a recognizer is built once per
//! worker and kept.
//!
//! Invariants:
//! - All `unsafe` lives in the private [`ffi`] and [`Decoder`] below; [`SphinxRecognizer`] is
//!   safe code over `Decoder`.
//! - A decoder is used by one thread at a time: it is `Send` (moved to its worker) but not
//!   `Sync`.
//! - PocketSphinx's logging is switched off once, process-wide, before the first decoder is
//!   built (its log target is global state; swapping it per decoder, as `-logfn` does, would
//!   race with a decoder logging on another thread). Decoders are built one at a time.
//! - Grammar searches are compiled once and cached by grammar; the LM search is `_default`.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::path::Path;
use std::sync::{Mutex, Once};

use super::{AsrError, AsrOptions, Grammar, Interrupt, Recognized, Recognizer};
use crate::language::Language;

const ENGINE: &str = "sphinx";
/// The search PocketSphinx builds from `-lm` at start-up.
const LM_SEARCH: &str = "_default";

/// The C API of PocketSphinx 0.8+5prealpha and SphinxBase (see `pocketsphinx.h`,
/// `ps_search.h`, `sphinxbase/cmd_ln.h`, `err.h`, `logmath.h`, `ckd_alloc.h`).
mod ffi {
    use std::os::raw::{c_char, c_int, c_void};

    /// `ps_decoder_t`.
    #[repr(C)]
    pub struct PsDecoder {
        _opaque: [u8; 0],
    }
    /// `cmd_ln_t`.
    #[repr(C)]
    pub struct CmdLn {
        _opaque: [u8; 0],
    }
    /// `arg_t`.
    #[repr(C)]
    pub struct Arg {
        _opaque: [u8; 0],
    }
    extern "C" {
        pub fn ps_args() -> *const Arg;
        pub fn cmd_ln_init(inout: *mut CmdLn, defn: *const Arg, strict: i32, ...) -> *mut CmdLn;
        pub fn cmd_ln_free_r(cmdln: *mut CmdLn) -> c_int;
        pub fn cmd_ln_float_r(cmdln: *mut CmdLn, name: *const c_char) -> f64;
        pub fn cmd_ln_set_float_r(cmdln: *mut CmdLn, name: *const c_char, fv: f64);
        pub fn ps_init(config: *mut CmdLn) -> *mut PsDecoder;
        pub fn ps_free(ps: *mut PsDecoder) -> c_int;
        pub fn ps_start_utt(ps: *mut PsDecoder) -> c_int;
        pub fn ps_process_raw(
            ps: *mut PsDecoder,
            data: *const i16,
            n_samples: usize,
            no_search: c_int,
            full_utt: c_int,
        ) -> c_int;
        pub fn ps_end_utt(ps: *mut PsDecoder) -> c_int;
        pub fn ps_get_hyp(ps: *mut PsDecoder, out_best_score: *mut i32) -> *const c_char;
        pub fn ps_set_jsgf_string(
            ps: *mut PsDecoder,
            name: *const c_char,
            jsgf_string: *const c_char,
        ) -> c_int;
        pub fn ps_set_search(ps: *mut PsDecoder, name: *const c_char) -> c_int;
        pub fn ps_lookup_word(ps: *mut PsDecoder, word: *const c_char) -> *mut c_char;
        pub fn ckd_free(ptr: *mut c_void);
        /// `FILE *stream`; NULL disables logging.
        pub fn err_set_logfp(stream: *mut c_void);
    }
}

/// Serialises decoder construction (SphinxBase keeps some global state).
static INIT_LOCK: Mutex<()> = Mutex::new(());
static SILENCE_LOG: Once = Once::new();

/// A PocketSphinx decoder and its configuration, freed together.
struct Decoder {
    ps: *mut ffi::PsDecoder,
    config: *mut ffi::CmdLn,
}

// SAFETY: a decoder has no thread affinity; PocketSphinx only requires that one decoder is not
// used from two threads at once, which `&mut self` on every call and the absence of `Sync`
// guarantee.
unsafe impl Send for Decoder {}

fn c_string(what: &str, s: &str) -> Result<CString, AsrError> {
    CString::new(s).map_err(|_| AsrError::Grammar(format!("{what} contains a NUL byte")))
}

fn path_c_string(what: &'static str, path: &Path) -> Result<CString, AsrError> {
    CString::new(path.display().to_string()).map_err(|_| AsrError::ModelLoad {
        what,
        path: path.display().to_string(),
        reason: "the path contains a NUL byte".into(),
    })
}

impl Decoder {
    fn new(hmm: &Path, lm: &Path, dict: &Path) -> Result<Self, AsrError> {
        let hmm_c = path_c_string("PocketSphinx acoustic model", hmm)?;
        let lm_c = path_c_string("PocketSphinx language model", lm)?;
        let dict_c = path_c_string("PocketSphinx dictionary", dict)?;
        let _guard = INIT_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        SILENCE_LOG.call_once(|| {
            // SAFETY: NULL is the documented way to disable logging; called once, before any
            // decoder exists.
            unsafe { ffi::err_set_logfp(std::ptr::null_mut()) }
        });
        // SAFETY: `ps_args()` returns a static table; every vararg is a NUL-terminated string
        // that outlives the call, and the list ends with a NULL pointer as cmd_ln_init requires.
        let config = unsafe {
            ffi::cmd_ln_init(
                std::ptr::null_mut(),
                ffi::ps_args(),
                1,
                c"-hmm".as_ptr(),
                hmm_c.as_ptr(),
                c"-lm".as_ptr(),
                lm_c.as_ptr(),
                c"-dict".as_ptr(),
                dict_c.as_ptr(),
                c"-remove_noise".as_ptr(),
                c"no".as_ptr(),
                std::ptr::null::<std::os::raw::c_char>(),
            )
        };
        if config.is_null() {
            return Err(AsrError::ModelLoad {
                what: "PocketSphinx configuration",
                path: hmm.display().to_string(),
                reason: "cmd_ln_init rejected the arguments".into(),
            });
        }
        // SAFETY: `config` is a valid configuration; ps_init takes its own reference.
        let ps = unsafe { ffi::ps_init(config) };
        if ps.is_null() {
            // SAFETY: `config` is ours and not used again.
            unsafe { ffi::cmd_ln_free_r(config) };
            return Err(AsrError::ModelLoad {
                what: "PocketSphinx models",
                path: format!("{}, {}, {}", hmm.display(), lm.display(), dict.display()),
                reason: "ps_init failed (wrong or damaged model files)".into(),
            });
        }
        Ok(Self { ps, config })
    }

    /// Whether `word` is in the pronunciation dictionary.
    fn knows_word(&mut self, word: &str) -> bool {
        let Ok(word) = CString::new(word) else {
            return false;
        };
        // SAFETY: `self.ps` is valid; `word` is NUL-terminated; the returned string is
        // allocated by SphinxBase and freed here with its own allocator.
        unsafe {
            let phones = ffi::ps_lookup_word(self.ps, word.as_ptr());
            if phones.is_null() {
                false
            } else {
                ffi::ckd_free(phones.cast());
                true
            }
        }
    }

    /// Compiles a JSGF grammar into the search `name` with its own word insertion
    /// probability; false if PocketSphinx rejects the grammar.
    fn add_jsgf(&mut self, name: &CStr, jsgf: &CStr, word_insertion: f64) -> bool {
        // SAFETY: valid decoder, its own configuration object (ps_init retained the same one)
        // and NUL-terminated strings; PocketSphinx copies what it keeps. The FSG search reads
        // `-wip` when it is built, so setting it around the call gives this search its own
        // value and leaves the LM search's untouched.
        unsafe {
            let wip = c"-wip";
            let previous = ffi::cmd_ln_float_r(self.config, wip.as_ptr());
            ffi::cmd_ln_set_float_r(self.config, wip.as_ptr(), word_insertion);
            let added = ffi::ps_set_jsgf_string(self.ps, name.as_ptr(), jsgf.as_ptr()) == 0;
            ffi::cmd_ln_set_float_r(self.config, wip.as_ptr(), previous);
            added
        }
    }

    /// Makes `name` the active search; false if there is no such search.
    fn use_search(&mut self, name: &CStr) -> bool {
        // SAFETY: valid decoder and NUL-terminated name.
        unsafe { ffi::ps_set_search(self.ps, name.as_ptr()) == 0 }
    }

    /// Decodes one whole utterance with the active search: the hypothesis and its path score
    /// (log-likelihood, larger is better). `None` when `interrupt` had risen before the decode
    /// began.
    ///
    /// The audio always goes in as one full utterance: feeding it in chunks would move the
    /// decoder onto live cepstral mean normalisation, whose running state then leaks into the
    /// next utterances (other turns, other calls) and changes what they are heard as. A partial
    /// window is short, so checking the interrupt only before it starts bounds the wait.
    fn decode(
        &mut self,
        pcm: &[i16],
        interrupt: Option<&Interrupt>,
    ) -> Result<Option<(String, i32)>, String> {
        if interrupt.is_some_and(Interrupt::raised) {
            return Ok(None);
        }
        // SAFETY: `self.ps` is valid for the decoder's life; `pcm` is a live slice whose
        // length is passed alongside; the hypothesis string belongs to the decoder and is
        // copied before the next call into it.
        unsafe {
            if ffi::ps_start_utt(self.ps) < 0 {
                return Err("ps_start_utt failed".into());
            }
            let searched = ffi::ps_process_raw(self.ps, pcm.as_ptr(), pcm.len(), 0, 1);
            let ended = ffi::ps_end_utt(self.ps);
            if searched < 0 {
                return Err("ps_process_raw failed".into());
            }
            if ended < 0 {
                return Err("ps_end_utt failed".into());
            }
            let mut score = 0i32;
            let hyp = ffi::ps_get_hyp(self.ps, &mut score);
            if hyp.is_null() {
                return Ok(Some((String::new(), i32::MIN)));
            }
            Ok(Some((
                CStr::from_ptr(hyp).to_string_lossy().trim().to_string(),
                score,
            )))
        }
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: both pointers came from ps_init / cmd_ln_init and are freed exactly once.
        unsafe {
            ffi::ps_free(self.ps);
            ffi::cmd_ln_free_r(self.config);
        }
    }
}

/// PocketSphinx with the general language model, plus grammar searches on demand.
///
/// How each kind of request is decoded:
/// - no grammar: the general n-gram LM;
/// - a JSGF grammar: that grammar only (an FSG search);
/// - a phrase list: the LM first, and if its transcript contains one of the phrases (as whole
///   words in a row) that phrase is the answer — a caller rarely says only the menu words
///   ("I'd like to speak to customer support"), and forcing a whole sentence through a
///   `<choice>` grammar picks an arbitrary phrase; when no phrase is in the transcript, the
///   `<choice>` grammar decides ("yeah" → "yes"). The text is then always one of the phrases
///   (normalised), or empty.
pub struct SphinxRecognizer {
    decoder: Decoder,
    /// Search name per grammar already compiled.
    searches: HashMap<Grammar, CString>,
    /// The search in use, to skip needless switches.
    active: CString,
}

/// Word insertion probability for grammar searches (the LM keeps PocketSphinx's 0.65): loops
/// such as `( one | two | … )+` otherwise insert words into pauses.
pub const GRAMMAR_WORD_INSERTION: f64 = 0.01;

impl std::fmt::Debug for SphinxRecognizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SphinxRecognizer")
            .field("grammars", &self.searches.len())
            .finish()
    }
}

impl SphinxRecognizer {
    /// Loads the acoustic model folder, the n-gram language model and the dictionary
    /// (Debian's `pocketsphinx-en-us`: see [`crate::config::AsrConfig`] defaults). Takes a
    /// few seconds with the full English LM.
    ///
    /// Noise removal is off: it adapts to the audio it has heard, so with it on a turn's
    /// transcript depends on what the worker decoded before (another call, even), and a turn
    /// that starts with speech loses its first word. Each utterance stands alone.
    pub fn new(hmm: &Path, lm: &Path, dict: &Path) -> Result<Self, AsrError> {
        for (what, path, is_dir) in [
            ("PocketSphinx acoustic model folder", hmm, true),
            ("PocketSphinx language model", lm, false),
            ("PocketSphinx dictionary", dict, false),
        ] {
            let there = if is_dir {
                path.is_dir()
            } else {
                path.is_file()
            };
            if !there {
                return Err(AsrError::ModelMissing {
                    what,
                    path: format!("{} (Debian package pocketsphinx-en-us)", path.display()),
                });
            }
        }
        let decoder = Decoder::new(hmm, lm, dict)?;
        Ok(Self {
            decoder,
            searches: HashMap::new(),
            active: CString::from(c"_default"),
        })
    }

    /// The search for a grammar, compiled on first use.
    fn search_for(&mut self, grammar: &Grammar) -> Result<CString, AsrError> {
        if let Some(name) = self.searches.get(grammar) {
            return Ok(name.clone());
        }
        let unknown: Vec<String> = grammar
            .words()?
            .into_iter()
            .filter(|w| !self.decoder.knows_word(w))
            .collect();
        if !unknown.is_empty() {
            return Err(AsrError::Grammar(format!(
                "not in the PocketSphinx dictionary: {}",
                unknown.join(", ")
            )));
        }
        let jsgf = grammar.to_jsgf()?;
        let name = c_string("search name", &format!("grammar{}", self.searches.len()))?;
        let source = c_string("the JSGF grammar", &jsgf)?;
        if !self
            .decoder
            .add_jsgf(&name, &source, GRAMMAR_WORD_INSERTION)
        {
            return Err(AsrError::Grammar(
                "PocketSphinx rejected the JSGF grammar (syntax error, no public rule, or a word \
                 missing from the dictionary)"
                    .into(),
            ));
        }
        self.searches.insert(grammar.clone(), name.clone());
        Ok(name)
    }

    /// Decodes `pcm` with the search `name`.
    /// Decodes `pcm` with the search `name`; [`AsrError::Preempted`] when `interrupt` rose.
    fn decode_with(
        &mut self,
        name: &CStr,
        pcm: &[i16],
        interrupt: Option<&Interrupt>,
    ) -> Result<(String, i32), AsrError> {
        if self.active.as_c_str() != name {
            if !self.decoder.use_search(name) {
                return Err(AsrError::Engine {
                    engine: ENGINE,
                    reason: format!("cannot switch to search {}", name.to_string_lossy()),
                });
            }
            self.active = name.to_owned();
        }
        self.decoder
            .decode(pcm, interrupt)
            .map_err(|reason| AsrError::Engine {
                engine: ENGINE,
                reason,
            })?
            .ok_or(AsrError::Preempted)
    }
}

impl SphinxRecognizer {
    /// A phrase list is a hint, not a cage: callers say more than the phrases, and the open
    /// language model hears that. The open hypothesis is kept when it already holds an expected
    /// phrase, or when it is longer than a short answer and the grammar's forced answer shares no
    /// content word with it (the caller said something else; forcing it into a phrase would
    /// invent an answer). Otherwise the
    /// grammar's answer wins: it is what the caller meant, heard through a noisy open search.
    /// Partial results use the open search only.
    fn decode_phrases(
        &mut self,
        lm: &CStr,
        search: &CStr,
        phrases: &[String],
        pcm: &[i16],
        partial: Option<&Interrupt>,
    ) -> Result<String, AsrError> {
        let (open, _) = self.decode_with(lm, pcm, partial)?;
        if partial.is_some() || spot_phrase(&open, phrases).is_some() {
            return Ok(open);
        }
        let (constrained, _) = self.decode_with(search, pcm, None)?;
        let open_words: Vec<&str> = open.split_whitespace().collect();
        let shared = constrained
            .split_whitespace()
            .any(|w| !FILLER_WORDS.contains(&w) && open_words.contains(&w));
        // A short answer is taken as one of the expected ones, misheard by the open search.
        let short = open_words.len() <= 2;
        Ok(if shared || short { constrained } else { open })
    }
}

/// Words too common to show that two hypotheses agree.
const FILLER_WORDS: &[&str] = &[
    "a", "an", "the", "i", "i'd", "i'm", "to", "my", "me", "you", "it", "is", "and", "of", "for",
    "in", "on", "can", "please", "want", "would", "like", "that", "this", "uh", "um",
];

/// The longest of `phrases` that occurs in `transcript` as whole words in a row (the first
/// one on a tie).
pub fn spot_phrase<'a>(transcript: &str, phrases: &'a [String]) -> Option<&'a str> {
    let words: Vec<&str> = transcript.split_whitespace().collect();
    let mut best: Option<(&'a str, usize)> = None;
    for phrase in phrases {
        let wanted: Vec<&str> = phrase.split_whitespace().collect();
        if wanted.is_empty() || wanted.len() > words.len() {
            continue;
        }
        let found = words.windows(wanted.len()).any(|w| w == wanted.as_slice());
        if found && best.is_none_or(|(_, n)| wanted.len() > n) {
            best = Some((phrase.as_str(), wanted.len()));
        }
    }
    best.map(|(phrase, _)| phrase)
}

impl Recognizer for SphinxRecognizer {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn transcribe(&mut self, pcm: &[i16], opts: &AsrOptions) -> Result<Recognized, AsrError> {
        self.transcribe_interruptible(pcm, opts, &Interrupt::default())
    }

    /// Partials give way when `interrupt` has risen before their decode starts (see
    /// [`Decoder::decode`]); finals always run.
    fn transcribe_interruptible(
        &mut self,
        pcm: &[i16],
        opts: &AsrOptions,
        interrupt: &Interrupt,
    ) -> Result<Recognized, AsrError> {
        let partial = (!opts.is_final).then_some(interrupt);
        if opts.language != Language::En {
            return Err(AsrError::UnsupportedLanguage {
                engine: ENGINE,
                language: opts.language,
            });
        }
        let lm = c_string("search name", LM_SEARCH)?;
        let text = match &opts.grammar {
            None => {
                if pcm.is_empty() {
                    return Ok(Recognized::default());
                }
                self.decode_with(&lm, pcm, partial)?.0
            }
            Some(grammar) => {
                // Compile first, so a bad grammar is reported even for empty audio.
                let search = self.search_for(grammar)?;
                if pcm.is_empty() {
                    return Ok(Recognized::default());
                }
                let phrases = grammar.normalized_phrases()?;
                if phrases.is_empty() {
                    // A JSGF grammar is strict: the caller's answer is one of its sentences.
                    self.decode_with(&search, pcm, partial)?.0
                } else {
                    self.decode_phrases(&lm, &search, &phrases, pcm, partial)?
                }
            }
        };
        Ok(Recognized {
            text,
            confidence: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spotting_finds_whole_word_phrases_and_prefers_the_longest() {
        let phrases: Vec<String> = ["support", "customer support", "billing", "no"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            spot_phrase("i'd like to speak to a customer support", &phrases),
            Some("customer support")
        );
        assert_eq!(spot_phrase("not now", &phrases), None);
        assert_eq!(spot_phrase("no thanks", &phrases), Some("no"));
        assert_eq!(spot_phrase("", &phrases), None);
    }
}
