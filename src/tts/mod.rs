//! Speech synthesis behind one trait, on its own worker. (being written)
