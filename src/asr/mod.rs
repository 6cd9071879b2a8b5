//! Speech recognition behind one trait, run off the media path in a worker pool.
// (being written: see the ASR brief)

/// Constrains the recognizer for one caller answer (Sphinx grammar mode).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Grammar {
    /// A JSGF grammar source.
    Jsgf(String),
    /// A list of phrases, any one of which the caller may say.
    Phrases(Vec<String>),
}
