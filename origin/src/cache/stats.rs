//! Per-instance cache counters per family. They feed `/admin/cache/stats` (hit rates, alerts)
//! and are mirrored into the Prometheus metrics of `/metrics`.
//!
//! Client lookups are counted apart from warming: the hit rate is the share of *clients'*
//! lookups served from the cache, so warming at start-up (which misses by design) neither
//! drags it to 0% nor fires `hit_rate_low`. Computations are counted by cause: a client's
//! miss, warming, or a background refresh of a hot entry.

use shared::cache_key::Family;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a lookup or computation happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A client's request.
    Client,
    /// Warming (at start-up or `POST /admin/cache/warm`).
    Warm,
    /// The early refresh of an entry in the last tenth of its life.
    Refresh,
}

impl Cause {
    /// The label value in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Client => "client",
            Cause::Warm => "warm",
            Cause::Refresh => "refresh",
        }
    }
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    local_hits: AtomicU64,
    misses: AtomicU64,
    warm_hits: AtomicU64,
    warm_misses: AtomicU64,
    stale: AtomicU64,
    computations: AtomicU64,
    warm_computations: AtomicU64,
    refresh_computations: AtomicU64,
    refreshes_skipped: AtomicU64,
    invalidations: AtomicU64,
    errors: AtomicU64,
    stores: AtomicU64,
    stored_bytes: AtomicU64,
}

/// A snapshot of one family's counters.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct FamilySnapshot {
    /// Clients' lookups served fresh from the cache (the local tier or Redis).
    pub hits: u64,
    /// Of those, served from this instance's local tier.
    pub local_hits: u64,
    /// Clients' lookups not served from the cache (absent, invalidated, expired).
    pub misses: u64,
    /// Served from Redis past its TTL because PostgreSQL failed.
    pub stale: u64,
    /// Values computed for clients' misses (one per single flight).
    pub computations: u64,
    /// Warming's lookups that found the value cached already.
    pub warm_hits: u64,
    /// Warming's lookups that computed the value.
    pub warm_misses: u64,
    /// Values computed by warming.
    pub warm_computations: u64,
    /// Hot entries recomputed in the background before they expired.
    pub refresh_computations: u64,
    /// Early refreshes left to the instance that claimed them first.
    pub refreshes_skipped: u64,
    /// Invalidations.
    pub invalidations: u64,
    /// Redis commands that failed or timed out.
    pub errors: u64,
    /// Clients' (hits + stale) / (hits + stale + misses); `None` before any client lookup.
    pub hit_rate: Option<f64>,
    /// Values this instance wrote to Redis.
    pub stores: u64,
    /// Their mean size in bytes, key and entry (header and body): what one value of this
    /// family costs Redis before its own per-key overhead; `None` before any write.
    pub bytes_per_entry: Option<u64>,
}

/// The counters of every family.
#[derive(Default)]
pub struct CacheStats {
    families: [Counters; Family::ALL.len()],
    exported: [std::sync::OnceLock<Exported>; Family::ALL.len()],
}

/// What happened to one lookup or write, for counting.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// A client's fresh hit.
    Hit,
    /// A fresh hit in the local tier (a client's, or warming's).
    LocalHit(Cause),
    /// A client's miss.
    Miss,
    /// Warming found the value cached.
    WarmHit,
    /// Warming missed.
    WarmMiss,
    /// Stale copy served.
    Stale,
    /// A value was computed, for this cause.
    Computed(Cause),
    /// An early refresh was left to another claim.
    RefreshSkipped,
    /// A value was invalidated.
    Invalidated,
    /// A Redis command failed.
    Error,
    /// A value of this many bytes (key and entry) was written to Redis.
    Stored(u64),
}

impl Event {
    /// A lookup by `cause` that hit or missed. A refresh never looks up: it is counted as a
    /// client's.
    pub fn lookup(cause: Cause, hit: bool) -> Event {
        match (cause, hit) {
            (Cause::Warm, true) => Event::WarmHit,
            (Cause::Warm, false) => Event::WarmMiss,
            (_, true) => Event::Hit,
            (_, false) => Event::Miss,
        }
    }
}

fn index(family: Family) -> usize {
    Family::ALL
        .iter()
        .position(|f| *f == family)
        .expect("every family is listed")
}

/// One family's Prometheus counters, registered once (at its first event, when the process's
/// recorder is installed): a lookup then costs an atomic increment, not a registry search.
struct Exported {
    hits: metrics::Counter,
    warm_hits: metrics::Counter,
    local_hits: metrics::Counter,
    misses: metrics::Counter,
    warm_misses: metrics::Counter,
    stale: metrics::Counter,
    computed: [metrics::Counter; 3],
    refreshes_skipped: metrics::Counter,
    invalidations: metrics::Counter,
    errors: metrics::Counter,
    stores: metrics::Counter,
    stored_bytes: metrics::Counter,
}

impl Exported {
    fn new(family: Family) -> Exported {
        let f = family.as_str();
        let computed = |cause: Cause| metrics::counter!("cache_computations_total", "family" => f, "cause" => cause.as_str());
        Exported {
            hits: metrics::counter!("cache_hits_total", "family" => f, "source" => "client"),
            warm_hits: metrics::counter!("cache_hits_total", "family" => f, "source" => "warm"),
            local_hits: metrics::counter!("cache_local_hits_total", "family" => f),
            misses: metrics::counter!("cache_misses_total", "family" => f, "source" => "client"),
            warm_misses: metrics::counter!("cache_misses_total", "family" => f, "source" => "warm"),
            stale: metrics::counter!("cache_stale_served_total", "family" => f),
            computed: [
                computed(Cause::Client),
                computed(Cause::Warm),
                computed(Cause::Refresh),
            ],
            refreshes_skipped: metrics::counter!("cache_refreshes_skipped_total", "family" => f),
            invalidations: metrics::counter!("cache_invalidations_total", "family" => f),
            errors: metrics::counter!("cache_errors_total", "family" => f),
            stores: metrics::counter!("cache_stores_total", "family" => f),
            stored_bytes: metrics::counter!("cache_stored_bytes_total", "family" => f),
        }
    }
}

impl CacheStats {
    /// Counts one event here and in the Prometheus metrics.
    pub fn record(&self, family: Family, event: Event) {
        let i = index(family);
        let c = &self.families[i];
        let m = self.exported[i].get_or_init(|| Exported::new(family));
        let (counter, exported) = match event {
            Event::LocalHit(cause) => {
                m.local_hits.increment(1);
                c.local_hits.fetch_add(1, Ordering::Relaxed);
                if cause == Cause::Warm {
                    (&c.warm_hits, &m.warm_hits)
                } else {
                    (&c.hits, &m.hits)
                }
            }
            Event::Hit => (&c.hits, &m.hits),
            Event::Miss => (&c.misses, &m.misses),
            Event::WarmHit => (&c.warm_hits, &m.warm_hits),
            Event::WarmMiss => (&c.warm_misses, &m.warm_misses),
            Event::Stale => (&c.stale, &m.stale),
            Event::Computed(cause) => match cause {
                Cause::Client => (&c.computations, &m.computed[0]),
                Cause::Warm => (&c.warm_computations, &m.computed[1]),
                Cause::Refresh => (&c.refresh_computations, &m.computed[2]),
            },
            Event::RefreshSkipped => (&c.refreshes_skipped, &m.refreshes_skipped),
            Event::Invalidated => (&c.invalidations, &m.invalidations),
            Event::Error => (&c.errors, &m.errors),
            Event::Stored(bytes) => {
                m.stored_bytes.increment(bytes);
                c.stored_bytes.fetch_add(bytes, Ordering::Relaxed);
                (&c.stores, &m.stores)
            }
        };
        exported.increment(1);
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// One family's counters.
    pub fn snapshot(&self, family: Family) -> FamilySnapshot {
        let c = &self.families[index(family)];
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let served = load(&c.hits) + load(&c.stale);
        let misses = load(&c.misses);
        FamilySnapshot {
            hits: load(&c.hits),
            local_hits: load(&c.local_hits),
            misses,
            stale: load(&c.stale),
            computations: load(&c.computations),
            warm_hits: load(&c.warm_hits),
            warm_misses: load(&c.warm_misses),
            warm_computations: load(&c.warm_computations),
            refresh_computations: load(&c.refresh_computations),
            refreshes_skipped: load(&c.refreshes_skipped),
            invalidations: load(&c.invalidations),
            errors: load(&c.errors),
            hit_rate: (served + misses > 0).then(|| served as f64 / (served + misses) as f64),
            stores: load(&c.stores),
            bytes_per_entry: (load(&c.stores) > 0).then(|| load(&c.stored_bytes) / load(&c.stores)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warming_is_not_a_client_miss() {
        let stats = CacheStats::default();
        for _ in 0..10 {
            stats.record(Family::Popular, Event::lookup(Cause::Warm, false));
            stats.record(Family::Popular, Event::Computed(Cause::Warm));
        }
        let warmed = stats.snapshot(Family::Popular);
        assert_eq!((warmed.misses, warmed.warm_misses), (0, 10));
        assert_eq!((warmed.computations, warmed.warm_computations), (0, 10));
        assert_eq!(warmed.hit_rate, None, "no client has asked yet");
        stats.record(Family::Popular, Event::lookup(Cause::Client, true));
        stats.record(Family::Popular, Event::Computed(Cause::Refresh));
        let served = stats.snapshot(Family::Popular);
        assert_eq!(served.hit_rate, Some(1.0));
        assert_eq!((served.computations, served.refresh_computations), (0, 1));
    }
}
