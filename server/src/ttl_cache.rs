//! A small map whose entries expire: the API-key and quota lookups of the ingest path
//! (ENGINE.md: two of the four round trips of every request were these). The time-to-live is
//! the longest a change made by another process (a revoked key, a new quota) takes to apply
//! here; changes made through this process call `forget`/`clear` and apply at once.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct TtlCache<K, V> {
    ttl: Duration,
    /// Entries past this count are dropped all at once: bounded memory under a flood of
    /// distinct keys, and a refill costs one lookup each.
    capacity: usize,
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        TtlCache { ttl, capacity, entries: Mutex::new(HashMap::new()) }
    }

    /// The value stored for `key` less than the time-to-live before `now`.
    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).filter(|(_, at)| now.saturating_duration_since(*at) < self.ttl).map(|(v, _)| v.clone())
    }

    pub fn put(&self, key: K, value: V, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, (value, now));
    }

    pub fn forget(&self, key: &K) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lives_for_the_ttl_and_no_longer() {
        let cache = TtlCache::new(Duration::from_secs(5), 10);
        let t0 = Instant::now();
        cache.put("key", 1, t0);
        assert_eq!(cache.get(&"key", t0 + Duration::from_millis(4_999)), Some(1));
        assert_eq!(cache.get(&"key", t0 + Duration::from_secs(5)), None, "expired at the TTL");
        assert_eq!(cache.get(&"other", t0), None);
    }

    #[test]
    fn forget_and_capacity_drop_entries() {
        let cache = TtlCache::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        cache.put("a", 1, t0);
        cache.forget(&"a");
        assert_eq!(cache.get(&"a", t0), None);
        cache.put("a", 1, t0);
        cache.put("b", 2, t0);
        cache.put("c", 3, t0); // over capacity: the old entries go
        assert_eq!((cache.get(&"a", t0), cache.get(&"c", t0)), (None, Some(3)));
        cache.clear();
        assert_eq!(cache.get(&"c", t0), None);
    }
}
