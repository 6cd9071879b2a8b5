//! Sample-rate conversion between the pipeline's 16 kHz and the edges' rates: `hotline-media`'s
//! resampler (rubato's synchronous FFT resampler), re-exported so `audio::resample` keeps its
//! paths. See [`hotline_media::resample`] for its invariants.

pub use hotline_media::resample::*;
