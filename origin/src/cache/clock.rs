//! The cache's clock, injected: Unix seconds from the system clock plus an offset that tests
//! move forward to make an entry expire or enter its refresh window, instead of waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The time lookups decide with. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: Arc<AtomicI64>,
}

impl Clock {
    /// Now, in Unix seconds.
    pub fn now(&self) -> i64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        system + self.offset.load(Ordering::Relaxed)
    }

    /// Moves this clock `secs` seconds forward (tests).
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_clock_is_ahead_by_that_much() {
        let clock = Clock::default();
        let shared = clock.clone();
        let before = clock.now();
        shared.advance(3_600);
        let after = clock.now();
        assert!((3_600..=3_601).contains(&(after - before)));
    }
}
