//! Who asked lately: the users whose personal reads or ratings this instance served in the
//! last `ACTIVITY_WINDOW_SECS` (an hour), most recent first.
//!
//! Warming uses it to learn who will ask. The most active users of all time (PostgreSQL's
//! rating counts) are not the ones reading now, and after Redis lost its data (a restart
//! without persistence, a failover to an empty replica) the users of the last hour are the
//! ones whose next request would miss. The record lives in the instance's memory, bounded in
//! entries (a `moka` cache with a time to live), so it costs no I/O on the request path and
//! survives exactly the fault it serves: a Redis that comes back empty.
use shared::params::UserId;
use std::time::{Duration, Instant};

/// Users seen recently, with when they were last seen.
#[derive(Clone)]
pub struct Activity {
    seen: moka::sync::Cache<i32, Instant, foldhash::fast::RandomState>,
    /// A user seen again within this long is not written again (a hot user's every request
    /// would otherwise rewrite the same entry).
    resolution: Duration,
}

impl Activity {
    /// Remembers at most `capacity` users for `window` after each was last seen.
    pub fn new(window: Duration, capacity: u64) -> Self {
        Self {
            seen: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(window)
                // As the local tier's (`cache::local`): cheaper than SipHash on every request.
                .build_with_hasher(foldhash::fast::RandomState::default()),
            resolution: Duration::from_secs(1).min(window),
        }
    }

    /// Notes a request of `user`'s.
    pub fn saw(&self, user: UserId) {
        let now = Instant::now();
        match self.seen.get(&user.0) {
            Some(at) if now.saturating_duration_since(at) < self.resolution => {}
            _ => self.seen.insert(user.0, now),
        }
    }

    /// The users seen in the window, most recent first, at most `limit`.
    pub fn recent(&self, limit: usize) -> Vec<UserId> {
        let mut seen: Vec<(i32, Instant)> = self.seen.iter().map(|(id, at)| (*id, at)).collect();
        seen.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        seen.into_iter()
            .take(limit)
            .map(|(id, _)| UserId(id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_recent_come_first_and_each_once() {
        let activity = Activity {
            seen: moka::sync::Cache::builder()
                .max_capacity(100)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            resolution: Duration::ZERO,
        };
        // Each `saw` a millisecond apart, so no two are seen at the same instant.
        for id in [2, 1, 3, 2] {
            activity.saw(UserId(id));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(activity.recent(10), vec![UserId(2), UserId(3), UserId(1)]);
        assert_eq!(activity.recent(2), vec![UserId(2), UserId(3)]);
    }
}
