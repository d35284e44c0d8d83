//! Circuit breakers, one per dependency (PostgreSQL, Redis): fail fast instead of waiting for
//! a dependency known to be down.
//!
//! A breaker is closed while its dependency answers. After `threshold` failures in a row
//! (connection refused or lost, timeouts: never an answer the dependency gave, such as a
//! constraint violation) it opens: from then on no request asks the dependency at all, each
//! is answered at once from what the caches hold, or with 503 and `Retry-After`. While it is
//! open, exactly one probe at a time asks the dependency (the owner's prober, a background
//! task, never a client's request); the first probe that gets an answer closes it.
//!
//! The state is two atomics, read on every query: a request pays one load. The prober is
//! started by whoever saw the breaker open ([`Breaker::failed`] says so), so a breaker needs
//! no runtime of its own and has no task while closed.
//!
//! Why not a crate: the maintained ones (`failsafe`) let every call through when half-open
//! (not one probe) and do not expose the state that `/ready` and `/metrics` report; the state
//! machine here is the few lines below, and tested.

use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// A breaker's state, as `/ready` and `/metrics` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// The dependency answers; requests use it.
    Closed,
    /// The dependency is down; requests do not wait for it, a probe checks it.
    Open,
}

impl BreakerState {
    /// `closed` or `open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
        }
    }
}

/// How a breaker trips and probes.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Failures in a row that open it (at least 1).
    pub threshold: u32,
    /// How often the prober asks the dependency while it is open.
    pub probe_every: Duration,
}

impl Default for BreakerConfig {
    /// `origin serve`'s defaults (`BREAKER_FAILURES`, `BREAKER_PROBE_MS`).
    fn default() -> Self {
        BreakerConfig {
            threshold: 5,
            probe_every: Duration::from_millis(250),
        }
    }
}

struct Inner {
    dependency: &'static str,
    config: BreakerConfig,
    open: AtomicBool,
    failures: AtomicU32,
    opened: AtomicU64,
}

/// One dependency's breaker; clones share it.
#[derive(Clone)]
pub struct Breaker {
    inner: Arc<Inner>,
}

impl Breaker {
    /// A closed breaker for `dependency` (`postgres`, `redis`: its name in logs and metrics).
    pub fn new(dependency: &'static str, config: BreakerConfig) -> Self {
        Breaker {
            inner: Arc::new(Inner {
                dependency,
                config: BreakerConfig {
                    threshold: config.threshold.max(1),
                    ..config
                },
                open: AtomicBool::new(false),
                failures: AtomicU32::new(0),
                opened: AtomicU64::new(0),
            }),
        }
    }

    /// The dependency's name.
    pub fn dependency(&self) -> &'static str {
        self.inner.dependency
    }

    /// How often to probe while open.
    pub fn probe_every(&self) -> Duration {
        self.inner.config.probe_every
    }

    /// Whether a request may ask the dependency (the breaker is closed).
    pub fn allows(&self) -> bool {
        !self.inner.open.load(Ordering::Acquire)
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        if self.allows() {
            BreakerState::Closed
        } else {
            BreakerState::Open
        }
    }

    /// Times it opened since start.
    pub fn opened_total(&self) -> u64 {
        self.inner.opened.load(Ordering::Relaxed)
    }

    /// The dependency answered: the run of failures is over.
    pub fn succeeded(&self) {
        // A load first: the common case writes nothing, so the cache line stays shared.
        if self.inner.failures.load(Ordering::Relaxed) != 0 {
            self.inner.failures.store(0, Ordering::Relaxed);
        }
    }

    /// The dependency did not answer. Returns `true` exactly once per opening: the caller
    /// that opened it starts the prober.
    #[must_use = "the caller that opens the breaker must start its prober"]
    pub fn failed(&self) -> bool {
        let failures = self.inner.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures < self.inner.config.threshold {
            return false;
        }
        let opened = self
            .inner
            .open
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if opened {
            self.inner.opened.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                dependency = self.inner.dependency,
                failures,
                "circuit breaker opened: requests no longer wait for this dependency"
            );
        }
        opened
    }

    /// A probe got an answer: requests use the dependency again.
    pub fn close(&self) {
        self.inner.failures.store(0, Ordering::Relaxed);
        if self.inner.open.swap(false, Ordering::AcqRel) {
            tracing::info!(
                dependency = self.inner.dependency,
                "circuit breaker closed: the dependency answers again"
            );
        }
    }

    /// Runs `probe` every [`Breaker::probe_every`] until it answers `true`, then closes the
    /// breaker. The owner calls it in a background task when [`Breaker::failed`] returned
    /// `true`: one prober per opening, so one probe at a time.
    pub async fn probe_until_closed<F, Fut>(&self, mut probe: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        loop {
            tokio::time::sleep(self.probe_every()).await;
            if probe().await {
                self.close();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32) -> Breaker {
        Breaker::new(
            "test",
            BreakerConfig {
                threshold,
                probe_every: Duration::from_millis(1),
            },
        )
    }

    #[test]
    fn opens_after_the_threshold_of_failures_in_a_row_and_says_so_once() {
        let b = breaker(3);
        assert!(!b.failed());
        assert!(!b.failed());
        assert!(b.allows());
        assert!(b.failed(), "the third failure opens it");
        assert!(!b.allows());
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.failed(), "only the opening failure starts a prober");
        assert_eq!(b.opened_total(), 1);
    }

    #[test]
    fn a_success_ends_the_run_of_failures() {
        let b = breaker(2);
        assert!(!b.failed());
        b.succeeded();
        assert!(!b.failed());
        assert!(b.allows());
        assert!(b.failed());
    }

    #[test]
    fn closing_starts_a_new_count() {
        let b = breaker(2);
        assert!(!b.failed());
        assert!(b.failed());
        b.close();
        assert!(b.allows());
        assert!(!b.failed(), "one failure after closing is not two");
        assert!(b.failed());
        assert_eq!(b.opened_total(), 2);
    }

    #[tokio::test]
    async fn the_prober_closes_it_on_the_first_answer() {
        let b = breaker(1);
        assert!(b.failed());
        let mut asked = 0;
        b.probe_until_closed(|| {
            asked += 1;
            let answer = asked == 3;
            async move { answer }
        })
        .await;
        assert_eq!(asked, 3);
        assert!(b.allows());
    }
}
