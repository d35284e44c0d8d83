//! Test seams: named points on the request path where a test can hold a request, so that an
//! interleaving (a rating committed between two reads of one computation, followers joining a
//! single flight while its leader computes) is made to happen deterministically with a
//! barrier, not hoped for with a sleep.
//!
//! Nothing is installed in production: each point then costs one atomic load. A test installs
//! one function for the process's cache (`Cache::hooks().install`) and matches the points it
//! cares about.

use futures::future::BoxFuture;
use shared::params::UserId;
use std::sync::{Arc, OnceLock};

/// Where a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Point {
    /// A computation of `user`'s recommendations has read the user's ratings, and has not yet
    /// read anything else.
    RatingsRead {
        /// Whose.
        user: UserId,
    },
    /// A computation of `user`'s recommendations has read from PostgreSQL the ratings its
    /// cached state lacked: those written after rating version `since`, or all of the user's
    /// ratings when `since` is `None` (no usable state); `rows` came back. Reached just
    /// before [`Point::RatingsRead`].
    RatingsDelta {
        /// Whose.
        user: UserId,
        /// The version of the state the read started from.
        since: Option<i64>,
        /// Ratings read.
        rows: usize,
    },
    /// A request missed `key` and joined its single flight; `collapsed` when another request
    /// leads it.
    FlightJoined {
        /// The cache key.
        key: String,
        /// Waits for another request's computation.
        collapsed: bool,
    },
    /// The leader of a single flight starts computing `key`, holding a turn of its family's
    /// bulkhead (so at most `COMPUTE_CONCURRENCY` requests of one family are here at once).
    ComputeStarted {
        /// The cache key.
        key: String,
    },
}

type Hook = Arc<dyn Fn(Point) -> BoxFuture<'static, ()> + Send + Sync>;

/// The installed hook, if any.
#[derive(Default)]
pub struct Hooks {
    hook: OnceLock<Hook>,
}

impl Hooks {
    /// Installs `hook` (once per cache; a second install is refused and returns false).
    pub fn install(
        &self,
        hook: impl Fn(Point) -> BoxFuture<'static, ()> + Send + Sync + 'static,
    ) -> bool {
        self.hook.set(Arc::new(hook)).is_ok()
    }

    /// Whether a hook is installed (to skip building what only a hook would read).
    pub fn installed(&self) -> bool {
        self.hook.get().is_some()
    }

    /// Runs the hook at `point`, if one is installed. `point` is built only then.
    pub async fn at(&self, point: impl FnOnce() -> Point) {
        if let Some(hook) = self.hook.get() {
            hook(point()).await;
        }
    }
}
