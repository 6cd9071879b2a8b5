//! A bounded cache of synthesized sentences and decoded prompt files (16 kHz mono PCM).
//!
//! Call-center bots repeat themselves (greetings, "one moment please", menus), so a hit saves
//! the whole synthesis. Eviction is least-recently-used, found by a scan on insert: the cache
//! holds hundreds of entries, so the scan costs far less than one synthesis.
//!
//! Invariant: the cache never holds more than its capacity; capacity 0 disables it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::language::Language;

/// What a cached clip was made from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CacheKey {
    /// A sentence synthesized by one engine, voice and speaking rate.
    Speech {
        engine: &'static str,
        language: Language,
        voice: String,
        rate_wpm: u32,
        text: String,
    },
    /// A recorded prompt file, by resolved path.
    File(PathBuf),
}

/// The cache: clips with the tick of their last use.
#[derive(Debug)]
pub struct PcmCache {
    capacity: usize,
    tick: u64,
    entries: HashMap<CacheKey, (Arc<[i16]>, u64)>,
}

impl PcmCache {
    /// An empty cache holding at most `capacity` clips.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            tick: 0,
            entries: HashMap::with_capacity(capacity.min(4096)),
        }
    }

    /// The clip for `key`, marking it as recently used.
    pub fn get(&mut self, key: &CacheKey) -> Option<Arc<[i16]>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(pcm, used)| {
            *used = tick;
            Arc::clone(pcm)
        })
    }

    /// Stores a clip, evicting the least recently used one when full.
    pub fn insert(&mut self, key: CacheKey, pcm: Arc<[i16]>) {
        if self.capacity == 0 {
            return;
        }
        self.tick += 1;
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, (pcm, self.tick));
    }

    /// Clips held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> CacheKey {
        CacheKey::Speech {
            engine: "test",
            language: Language::En,
            voice: "v".into(),
            rate_wpm: 175,
            text: text.into(),
        }
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut cache = PcmCache::new(2);
        cache.insert(key("a"), Arc::from(vec![1i16]));
        cache.insert(key("b"), Arc::from(vec![2i16]));
        assert!(cache.get(&key("a")).is_some());
        cache.insert(key("c"), Arc::from(vec![3i16]));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&key("b")).is_none(), "b was least recently used");
        assert_eq!(cache.get(&key("a")).as_deref(), Some(&[1i16][..]));
        assert_eq!(cache.get(&key("c")).as_deref(), Some(&[3i16][..]));
    }

    #[test]
    fn capacity_zero_disables() {
        let mut cache = PcmCache::new(0);
        cache.insert(key("a"), Arc::from(vec![1i16]));
        assert!(cache.is_empty());
    }
}
