//! Intent matching time per utterance (placeholder until the labelled set lands).
fn main() {}
