//! The minimal dialogue. (being written)
