//! The success and failure caches of the `dns` processor (Filebeat's `success_cache` and
//! `failure_cache`).
//!
//! Why not the resolver's own cache: a hit must be answered without leaving the pipeline
//! thread (no async call, no channel), and a failure (a timeout, a refused connection) must be
//! remembered too, which a DNS cache does not do. So the processor keeps its own, with
//! Filebeat's rules: an entry lives for its TTL (the record's TTL raised to `min_ttl` for
//! answers, `ttl` for failures), and a full cache first drops expired entries, then an
//! arbitrary one, as Filebeat evicts a random entry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bounded map whose entries expire.
pub(crate) struct TtlCache<V> {
    entries: Mutex<HashMap<String, (Instant, V)>>,
    max: usize,
}

impl<V: Clone> TtlCache<V> {
    /// A cache room for `initial` entries at first, never more than `max`.
    pub(crate) fn new(initial: usize, max: usize) -> Self {
        TtlCache {
            entries: Mutex::new(HashMap::with_capacity(initial.min(max))),
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, V)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value of `key` if it has not expired at `now`.
    pub(crate) fn get(&self, key: &str, now: Instant) -> Option<V> {
        let mut map = self.lock();
        match map.get(key) {
            Some((until, v)) if *until > now => Some(v.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` for `ttl` from `now`, making room when the cache is full.
    pub(crate) fn put(&self, key: &str, value: V, ttl: Duration, now: Instant) {
        let mut map = self.lock();
        if !map.contains_key(key) && map.len() >= self.max {
            map.retain(|_, (until, _)| *until > now);
            if map.len() >= self.max
                && let Some(victim) = map.keys().next().cloned()
            {
                map.remove(&victim);
            }
        }
        map.insert(key.to_owned(), (now + ttl, value));
    }

    /// How many entries are kept (expired ones included until they are touched).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_size_is_bounded() {
        let c = TtlCache::new(2, 3);
        let t0 = Instant::now();
        c.put("a", 1, Duration::from_secs(10), t0);
        assert_eq!(c.get("a", t0 + Duration::from_secs(9)), Some(1));
        assert_eq!(c.get("a", t0 + Duration::from_secs(10)), None);
        assert_eq!(c.len(), 0, "an expired entry is removed when read");
        for (i, k) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            c.put(k, i, Duration::from_secs(10), t0);
            assert!(c.len() <= 3);
        }
        assert_eq!(c.get("e", t0), Some(4), "the newest entry is kept");
        // Expired entries go first when room is needed.
        let c = TtlCache::new(0, 2);
        c.put("old", 0, Duration::from_secs(1), t0);
        c.put("keep", 1, Duration::from_secs(100), t0);
        c.put(
            "new",
            2,
            Duration::from_secs(100),
            t0 + Duration::from_secs(5),
        );
        let later = t0 + Duration::from_secs(6);
        assert_eq!(
            (c.get("keep", later), c.get("new", later)),
            (Some(1), Some(2))
        );
    }
}
