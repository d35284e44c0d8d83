//! The local tier: values this instance served recently, in its own memory, in front of
//! Redis. A hit costs no network round trip, no decoding and no hashing: the value is kept as
//! it was decoded, with its responses and their ETags rendered once.
//!
//! Bounded in bytes (`LOCAL_CACHE_BYTES`), not in entries: `moka`'s TinyLFU admission keeps
//! what is asked often and lets a scan of one-off keys pass without flushing it.
//!
//! What may be served from here is decided by the cache (see `cache` and `invalidation`):
//! - a shared value (lists, metadata) while the tracking session it was read in is alive:
//!   Redis tells this instance of every change of those keys (`CLIENT TRACKING`), and each
//!   notice removes the key here;
//! - a user's value only after a `GET` of the user's generation token confirms its tag, so a
//!   rating acknowledged by any instance is never hidden by a copy here.

use super::entry::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The tier. Cloning shares it.
#[derive(Clone)]
pub struct LocalTier {
    values: moka::sync::Cache<Arc<str>, Arc<Value>, foldhash::fast::RandomState>,
    counters: Arc<Counters>,
    capacity: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
}

/// The tier's figures for `/admin/cache/stats`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LocalSnapshot {
    /// The byte bound (`LOCAL_CACHE_BYTES`).
    pub capacity_bytes: u64,
    /// What the values held weigh now (an estimate, see `Value::weight`).
    pub size_bytes: u64,
    /// Values held.
    pub entries: u64,
    /// Lookups served from here.
    pub hits: u64,
    /// Lookups that went on to Redis (nothing here, or nothing servable).
    pub misses: u64,
    /// Values put here.
    pub inserts: u64,
    /// Values removed because Redis said their key changed, or this instance invalidated it.
    pub invalidations: u64,
    /// Times the whole tier was dropped (a tracking session ended, the data set changed).
    pub flushes: u64,
    /// `hits / (hits + misses)`.
    pub hit_rate: Option<f64>,
}

impl LocalTier {
    /// A tier holding at most about `capacity_bytes`; 0 turns it off.
    pub fn new(capacity_bytes: u64) -> LocalTier {
        let values = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|key: &Arc<str>, value: &Arc<Value>| value.weight(key))
            .build_with_hasher(foldhash::fast::RandomState::default());
        LocalTier {
            values,
            counters: Arc::default(),
            capacity: capacity_bytes,
        }
    }

    /// Whether the tier holds anything at all (a zero bound turns it off).
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The value of `key`, if held. Whether it may be served is the caller's decision.
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        if !self.enabled() {
            return None;
        }
        self.values.get(key)
    }

    /// Counts a lookup answered here (`hit`) or passed on.
    pub fn count(&self, hit: bool) {
        let counter = if hit {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Holds `value` under `key`, replacing what was there.
    pub fn insert(&self, key: &str, value: Arc<Value>) {
        if !self.enabled() {
            return;
        }
        self.counters.inserts.fetch_add(1, Ordering::Relaxed);
        self.values.insert(Arc::from(key), value);
    }

    /// Drops `key`.
    pub fn invalidate(&self, key: &str) {
        if !self.enabled() {
            return;
        }
        if self.values.remove(key).is_some() {
            self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops everything.
    pub fn flush(&self) {
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        self.values.invalidate_all();
    }

    /// What the values held weigh now, in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.values.run_pending_tasks();
        self.values.weighted_size()
    }

    /// The figures.
    pub fn snapshot(&self) -> LocalSnapshot {
        let size_bytes = self.size_bytes();
        let c = &self.counters;
        let hits = c.hits.load(Ordering::Relaxed);
        let misses = c.misses.load(Ordering::Relaxed);
        LocalSnapshot {
            capacity_bytes: self.capacity,
            size_bytes,
            entries: self.values.entry_count(),
            hits,
            misses,
            inserts: c.inserts.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            hit_rate: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::Entry;
    use bytes::Bytes;

    fn value(len: usize) -> Arc<Value> {
        Arc::new(Value::new(
            Entry {
                stored_at: 0,
                fresh_until: 10,
                epoch: 1,
                tag: None,
                body: Bytes::from(vec![b'x'; len]),
            },
            1,
        ))
    }

    #[test]
    fn the_tier_stays_within_its_bytes() {
        let tier = LocalTier::new(64 * 1024);
        for i in 0..200 {
            tier.insert(&format!("k{i}"), value(1000));
        }
        let size = tier.size_bytes();
        assert!(size <= 64 * 1024, "{size} bytes held in a 64 KiB tier");
        assert!(tier.snapshot().entries < 200);
    }

    #[test]
    fn invalidation_removes_a_key_and_counts_it() {
        let tier = LocalTier::new(1 << 20);
        tier.insert("a", value(10));
        assert!(tier.get("a").is_some());
        tier.invalidate("a");
        tier.invalidate("never-held");
        assert!(tier.get("a").is_none());
        assert_eq!(tier.snapshot().invalidations, 1);
    }

    #[test]
    fn a_zero_bound_turns_the_tier_off() {
        let tier = LocalTier::new(0);
        tier.insert("a", value(10));
        assert!(tier.get("a").is_none());
    }
}
