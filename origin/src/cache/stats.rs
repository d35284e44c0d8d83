//! Per-instance cache counters: hits, misses, stale serves, computations and invalidations per
//! family. They feed `/admin/cache/stats` (hit rates, alerts) and are mirrored into the
//! Prometheus metrics of `/metrics`.

use shared::cache_key::Family;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    computations: AtomicU64,
    invalidations: AtomicU64,
    errors: AtomicU64,
}

/// A snapshot of one family's counters.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct FamilySnapshot {
    /// Served from Redis, fresh.
    pub hits: u64,
    /// Not in Redis (or invalidated, or expired).
    pub misses: u64,
    /// Served from Redis past its TTL because PostgreSQL failed.
    pub stale: u64,
    /// Values computed from PostgreSQL (one per single flight).
    pub computations: u64,
    /// Invalidations.
    pub invalidations: u64,
    /// Redis commands that failed or timed out.
    pub errors: u64,
    /// hits / (hits + misses), `None` before any lookup.
    pub hit_rate: Option<f64>,
}

/// The counters of every family.
#[derive(Default)]
pub struct CacheStats {
    families: [Counters; 6],
}

/// What happened to one lookup or write, for counting.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// Fresh hit.
    Hit,
    /// Miss.
    Miss,
    /// Stale copy served.
    Stale,
    /// A value was computed.
    Computed,
    /// A value was invalidated.
    Invalidated,
    /// A Redis command failed.
    Error,
}

fn index(family: Family) -> usize {
    Family::ALL
        .iter()
        .position(|f| *f == family)
        .expect("every family is listed")
}

impl CacheStats {
    /// Counts one event here and in the Prometheus metrics.
    pub fn record(&self, family: Family, event: Event) {
        let c = &self.families[index(family)];
        let (counter, name) = match event {
            Event::Hit => (&c.hits, "cache_hits_total"),
            Event::Miss => (&c.misses, "cache_misses_total"),
            Event::Stale => (&c.stale, "cache_stale_served_total"),
            Event::Computed => (&c.computations, "cache_computations_total"),
            Event::Invalidated => (&c.invalidations, "cache_invalidations_total"),
            Event::Error => (&c.errors, "cache_errors_total"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(name, "family" => family.as_str()).increment(1);
    }

    /// One family's counters.
    pub fn snapshot(&self, family: Family) -> FamilySnapshot {
        let c = &self.families[index(family)];
        let hits = c.hits.load(Ordering::Relaxed) + c.stale.load(Ordering::Relaxed);
        let misses = c.misses.load(Ordering::Relaxed);
        FamilySnapshot {
            hits: c.hits.load(Ordering::Relaxed),
            misses,
            stale: c.stale.load(Ordering::Relaxed),
            computations: c.computations.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            hit_rate: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
        }
    }
}
