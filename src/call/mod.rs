//! Live call driver. (being written)
