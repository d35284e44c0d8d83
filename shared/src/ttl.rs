//! How long each cache family lives, and when a hot entry is refreshed ahead of expiry.
//!
//! All functions take `now` and the key as arguments: no clock, no randomness, so the rules are
//! unit tested exactly. Expiry is spread per key (up to 10% earlier, derived from a stable hash
//! of the key) so that entries written together, e.g. by warming, do not expire together.

use crate::cache_key::Family;
use sha2::{Digest, Sha256};

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// The share of users, most active first, whose recommendations live 24 h instead of 1 h.
pub const POWER_USER_SHARE: f64 = 0.20;

/// The nominal TTL of a family, in seconds. `power_user` only matters for recommendations.
pub fn base_ttl_secs(family: Family, power_user: bool) -> u64 {
    match family {
        Family::Recommendations if power_user => DAY,
        Family::Recommendations => HOUR,
        Family::Popular => 6 * HOUR,
        Family::Profile => 30 * MINUTE,
        Family::Metadata => DAY,
        Family::Embedding => 7 * DAY,
        Family::Genres => HOUR,
        // Keyed by model version: nothing changes a stored value but an import (the epoch).
        Family::Similar => DAY,
    }
}

/// The TTL actually used for `key`: the nominal TTL shortened by 0–10%, the same for the same
/// key every time.
pub fn ttl_secs(family: Family, power_user: bool, key: &str) -> u64 {
    let base = base_ttl_secs(family, power_user);
    let digest = Sha256::digest(key.as_bytes());
    let spread = u16::from_be_bytes([digest[0], digest[1]]) as u64; // 0..=65535
    base - base * spread / 65536 / 10
}

/// Whether a user with `rating_count` ratings is a power user, given the activity threshold
/// (the smallest rating count of the top 20% of users).
pub fn is_power_user(rating_count: i64, threshold: i64) -> bool {
    threshold > 0 && rating_count >= threshold
}

/// Whether an entry stored at `stored_at` (seconds) that is fresh until `fresh_until` should be
/// recomputed now, in the background, while it is still served: in the last 10% of its life.
pub fn should_refresh_early(stored_at: i64, fresh_until: i64, now: i64) -> bool {
    let lifetime = (fresh_until - stored_at).max(0);
    now < fresh_until && (fresh_until - now) * 10 <= lifetime
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_users_keep_recommendations_a_day() {
        assert_eq!(base_ttl_secs(Family::Recommendations, true), 86_400);
        assert_eq!(base_ttl_secs(Family::Recommendations, false), 3_600);
        assert_eq!(base_ttl_secs(Family::Popular, false), 21_600);
        assert_eq!(base_ttl_secs(Family::Profile, true), 1_800);
        assert_eq!(base_ttl_secs(Family::Metadata, false), 86_400);
        assert_eq!(base_ttl_secs(Family::Embedding, false), 604_800);
        assert_eq!(base_ttl_secs(Family::Similar, false), 86_400);
    }

    #[test]
    fn jitter_is_stable_and_bounded() {
        let a = ttl_secs(Family::Popular, false, "movies:popular:limit:100");
        assert_eq!(
            a,
            ttl_secs(Family::Popular, false, "movies:popular:limit:100")
        );
        let spread: std::collections::HashSet<u64> = (0..50)
            .map(|i| ttl_secs(Family::Recommendations, false, &format!("k{i}")))
            .inspect(|t| assert!((3_240..=3_600).contains(t)))
            .collect();
        assert!(spread.len() > 10, "keys should not all expire together");
    }

    #[test]
    fn power_threshold() {
        assert!(is_power_user(300, 200));
        assert!(!is_power_user(20, 200));
        assert!(!is_power_user(0, 0));
    }

    #[test]
    fn refresh_in_the_last_tenth_only() {
        assert!(!should_refresh_early(0, 100, 50));
        assert!(!should_refresh_early(0, 100, 89));
        assert!(should_refresh_early(0, 100, 90));
        assert!(should_refresh_early(0, 100, 99));
        assert!(
            !should_refresh_early(0, 100, 100),
            "expired is a miss, not a refresh"
        );
    }
}
