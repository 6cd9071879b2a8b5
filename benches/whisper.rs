//! whisper compute time on synthetic-weight models (being written).
fn main() {}
