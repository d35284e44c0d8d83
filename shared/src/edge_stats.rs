//! The edge's own counters: what it did with each cacheable request, per route, since its
//! isolate started. Served by the worker at `GET /__edge/stats` (with the purge secret) and
//! read through the origin's `GET /admin/edge/stats` by the dashboard, whose hit rate per
//! layer needs the one layer the origin never sees: a hit at the edge does not reach it.
//!
//! The counters live in one isolate's memory: `wrangler dev` runs one, so locally they are the
//! edge's; on Cloudflare each location runs isolates of its own, started and evicted at will,
//! so a reading is a sample of the isolate that answered (its `started_at` says since when).
//! Cloudflare's cache analytics are the global figure there. A reading from another isolate, or
//! from one started since, is told apart by `isolate` and `started_at`, and a reader treats
//! counters that went down as a restart, as Prometheus's `rate()` does.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the edge did with one request for a cacheable route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeOutcome {
    /// A fresh stored copy, served without asking the origin.
    Hit,
    /// A stale stored copy served (within `stale-while-revalidate`, revalidated in the
    /// background, or within `stale-if-error` because the origin failed).
    Stale,
    /// A stored copy revalidated with a conditional request and confirmed (a 304): its body
    /// served, after an origin round trip.
    Revalidated,
    /// No usable stored copy: the origin's answer served (and stored when allowed).
    Miss,
    /// The origin failed (unreachable: the edge's 502 or 504; or its own server error,
    /// passed on) and nothing stored could stand in.
    Error,
}

/// One route's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EdgeCounts {
    /// [`EdgeOutcome::Hit`]s.
    pub hits: u64,
    /// [`EdgeOutcome::Stale`]s.
    pub stale: u64,
    /// [`EdgeOutcome::Revalidated`]s.
    pub revalidated: u64,
    /// [`EdgeOutcome::Miss`]es.
    pub misses: u64,
    /// [`EdgeOutcome::Error`]s.
    pub errors: u64,
    /// Misses that waited for another request's fetch of the same key instead of asking the
    /// origin (counted as misses too when served).
    pub collapsed: u64,
}

impl EdgeCounts {
    /// Every request counted.
    pub fn lookups(&self) -> u64 {
        self.hits + self.stale + self.revalidated + self.misses + self.errors
    }

    /// The share served from the edge's store without waiting for the origin (hits and stale
    /// copies), as the origin counts its own; `None` before any lookup.
    pub fn hit_rate(&self) -> Option<f64> {
        let lookups = self.lookups();
        (lookups > 0).then(|| (self.hits + self.stale) as f64 / lookups as f64)
    }

    fn add(&mut self, outcome: EdgeOutcome) {
        let counter = match outcome {
            EdgeOutcome::Hit => &mut self.hits,
            EdgeOutcome::Stale => &mut self.stale,
            EdgeOutcome::Revalidated => &mut self.revalidated,
            EdgeOutcome::Miss => &mut self.misses,
            EdgeOutcome::Error => &mut self.errors,
        };
        *counter += 1;
    }
}

/// An isolate's counters: `GET /__edge/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EdgeStats {
    /// A random id of the isolate that answered.
    pub isolate: String,
    /// When it started counting, in milliseconds since the Unix epoch.
    pub started_at: u64,
    /// Per cacheable route (`movie`, `popular`, `similar`, `genres`, `genre_top`, as
    /// [`crate::edge_key::RouteKind::as_str`] names them).
    pub routes: BTreeMap<String, EdgeCounts>,
    /// Requests forwarded without a cache lookup: personal reads, writes, other routes.
    pub passed: u64,
}

impl EdgeStats {
    /// Counters starting now, for the isolate `isolate`.
    pub fn new(isolate: String, started_at: u64) -> Self {
        EdgeStats {
            isolate,
            started_at,
            ..EdgeStats::default()
        }
    }

    /// Counts one request for `route`.
    pub fn record(&mut self, route: &str, outcome: EdgeOutcome) {
        match self.routes.get_mut(route) {
            Some(counts) => counts.add(outcome),
            None => {
                let mut counts = EdgeCounts::default();
                counts.add(outcome);
                self.routes.insert(route.to_owned(), counts);
            }
        }
    }

    /// Counts a miss that joined another request's fetch for `route`.
    pub fn record_collapsed(&mut self, route: &str) {
        self.routes.entry(route.to_owned()).or_default().collapsed += 1;
    }

    /// Counts one request forwarded without a lookup.
    pub fn record_pass(&mut self) {
        self.passed += 1;
    }

    /// Every route's counters added up.
    pub fn total(&self) -> EdgeCounts {
        self.routes
            .values()
            .fold(EdgeCounts::default(), |sum, c| EdgeCounts {
                hits: sum.hits + c.hits,
                stale: sum.stale + c.stale,
                revalidated: sum.revalidated + c.revalidated,
                misses: sum.misses + c.misses,
                errors: sum.errors + c.errors,
                collapsed: sum.collapsed + c.collapsed,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_outcome_per_route_and_in_total() {
        let mut stats = EdgeStats::new("a".into(), 1);
        for outcome in [
            EdgeOutcome::Miss,
            EdgeOutcome::Hit,
            EdgeOutcome::Hit,
            EdgeOutcome::Stale,
        ] {
            stats.record("movie", outcome);
        }
        stats.record("popular", EdgeOutcome::Revalidated);
        stats.record("popular", EdgeOutcome::Error);
        stats.record_collapsed("popular");
        stats.record_pass();
        let movie = stats.routes["movie"];
        assert_eq!((movie.hits, movie.stale, movie.misses), (2, 1, 1));
        assert_eq!(movie.hit_rate(), Some(0.75));
        let total = stats.total();
        assert_eq!(total.lookups(), 6);
        assert_eq!(
            (total.revalidated, total.errors, total.collapsed),
            (1, 1, 1)
        );
        assert_eq!(total.hit_rate(), Some(0.5));
        assert_eq!(stats.passed, 1);
        assert_eq!(EdgeCounts::default().hit_rate(), None);
    }

    #[test]
    fn round_trips_through_json() {
        let mut stats = EdgeStats::new("isolate-1".into(), 1_700_000_000_000);
        stats.record("genre_top", EdgeOutcome::Hit);
        let json = serde_json::to_string(&stats).unwrap();
        assert_eq!(serde_json::from_str::<EdgeStats>(&json).unwrap(), stats);
    }
}
