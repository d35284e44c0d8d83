//! The lookup decision, pure: given an entry, what the lookup wants (epoch, tag) and `now`,
//! may it be served, and should it be refreshed? The same rules for the local tier and for
//! Redis, tested here without either and without waiting for time to pass.

use super::entry::Entry;

/// What a lookup may do with an entry it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve it; `refresh` when it is in the last tenth of its life (recompute it in the
    /// background so a hot key never expires under load).
    Fresh {
        /// Seconds of freshness left.
        ttl: i64,
        /// Start an early refresh.
        refresh: bool,
    },
    /// Past its freshness but inside the grace period: served (marked stale) only when the
    /// value cannot be computed.
    Stale {
        /// Seconds since it expired, negated (RFC 9211 `ttl` of a stale response).
        ttl: i64,
    },
    /// Not servable at all, for this reason.
    Unusable(Unusable),
}

/// Why an entry is not servable at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// Computed in another data set's epoch.
    OtherEpoch,
    /// Stored under another user generation or model version (or, for a user, none).
    OtherGeneration,
    /// Past its freshness and its grace period.
    Expired,
}

/// What a lookup accepts: values of this epoch, with this tag (`None`: shared values).
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// The data set's epoch the instance serves.
    pub epoch: u64,
    /// The user's generation (and model version) the value must carry; `None` for a shared
    /// value, which carries none.
    pub tag: Option<&'a str>,
}

/// Decides what to do with `entry` at `now` (Unix seconds), `grace` seconds of stale grace.
pub fn decide(entry: &Entry, wanted: Wanted<'_>, now: i64, grace: i64) -> Decision {
    if entry.epoch != wanted.epoch {
        return Decision::Unusable(Unusable::OtherEpoch);
    }
    if entry.tag.as_deref() != wanted.tag {
        return Decision::Unusable(Unusable::OtherGeneration);
    }
    if now < entry.fresh_until {
        return Decision::Fresh {
            ttl: entry.fresh_until - now,
            refresh: shared::ttl::should_refresh_early(entry.stored_at, entry.fresh_until, now),
        };
    }
    if now < entry.fresh_until + grace {
        return Decision::Stale {
            ttl: entry.fresh_until - now,
        };
    }
    Decision::Unusable(Unusable::Expired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entry(epoch: u64, tag: Option<&str>) -> Entry {
        Entry {
            stored_at: 1_000,
            fresh_until: 2_000,
            epoch,
            tag: tag.map(Into::into),
            body: Bytes::new(),
        }
    }

    const SHARED: Wanted<'static> = Wanted {
        epoch: 7,
        tag: None,
    };

    #[test]
    fn a_fresh_entry_is_served_and_refreshed_in_its_last_tenth() {
        let e = entry(7, None);
        assert_eq!(
            decide(&e, SHARED, 1_500, 60),
            Decision::Fresh {
                ttl: 500,
                refresh: false
            }
        );
        assert_eq!(
            decide(&e, SHARED, 1_950, 60),
            Decision::Fresh {
                ttl: 50,
                refresh: true
            }
        );
    }

    #[test]
    fn an_expired_entry_is_stale_for_the_grace_period_then_unusable() {
        let e = entry(7, None);
        assert_eq!(decide(&e, SHARED, 2_000, 60), Decision::Stale { ttl: 0 });
        assert_eq!(decide(&e, SHARED, 2_059, 60), Decision::Stale { ttl: -59 });
        assert_eq!(
            decide(&e, SHARED, 2_060, 60),
            Decision::Unusable(Unusable::Expired)
        );
    }

    #[test]
    fn another_epoch_or_generation_is_never_served() {
        assert_eq!(
            decide(&entry(6, None), SHARED, 1_500, 60),
            Decision::Unusable(Unusable::OtherEpoch)
        );
        let mine = Wanted {
            epoch: 7,
            tag: Some("g2"),
        };
        assert_eq!(
            decide(&entry(7, Some("g1")), mine, 1_500, 60),
            Decision::Unusable(Unusable::OtherGeneration),
            "a value of an older generation"
        );
        assert_eq!(
            decide(&entry(7, None), mine, 1_500, 60),
            Decision::Unusable(Unusable::OtherGeneration),
            "an untagged value for a user"
        );
        assert!(matches!(
            decide(&entry(7, Some("g2")), mine, 1_500, 60),
            Decision::Fresh { .. }
        ));
    }
}
