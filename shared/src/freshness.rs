//! How old a stored response is, and whether the edge may serve it: fresh, stale while it
//! revalidates in the background, stale only if the origin fails, or not at all.
//!
//! The Workers Cache API knows only `max-age`; `stale-while-revalidate` and `stale-if-error`
//! (RFC 5861) are implemented by the worker from this module's single decision,
//! [`StoredResponse::freshness`]. Times are unix seconds passed in by the caller (`now`, and
//! the moment the edge stored the response), so every rule is tested without a clock.
//!
//! Age is the simplified RFC 9111 4.2.3 computation available to a cache that records when it
//! received a response: the origin's `Age` at that moment plus the time resident since. The
//! request's round trip (`response_delay`) and the `Date` header are not used; our origin
//! answers in milliseconds and sends no `Age`, so both are negligible. When a 304 refreshes an
//! entry, store the new time and the 304's `Age`: the age restarts from the revalidation.
//!
//! `s-maxage` and stale serving: RFC 9111 5.2.2.10 says "The s-maxage directive incorporates
//! the semantics of the proxy-revalidate response directive (Section 5.2.2.8) for a shared
//! cache", which on its own would forbid a shared cache from serving any `s-maxage` response
//! stale. But RFC 9111 4.2.4 also lets a cache serve stale when "doing so is explicitly
//! permitted by the client or origin server (e.g., by ... extension directives such as those
//! defined in \[RFC5861\] ...)", and RFC 5861 4 lets `stale-if-error` apply "regardless of other
//! freshness information". Our origin sends `s-maxage` together with explicit
//! `stale-while-revalidate`/`stale-if-error` precisely so the edge serves stale (SPEC
//! section 6), so here an explicit `stale-*` in the same response wins over the implied
//! `proxy-revalidate` of `s-maxage`, as CDNs commonly do. The explicit `must-revalidate`,
//! `proxy-revalidate` and `no-cache` still forbid all stale serving.

use crate::directives::{CacheDirectives, DELTA_SECONDS_MAX, parse_delta_seconds};

/// What the edge may do with a stored response right now.
///
/// `age` is the current age in seconds (send it as `Age`); `ttl` is the remaining freshness
/// in seconds, negative once stale (send it as the `Cache-Status` `ttl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it without contacting the origin.
    Fresh {
        /// Current age in seconds.
        age: u64,
        /// Seconds of freshness left, > 0.
        ttl: i64,
    },
    /// Serve it stale now and revalidate in the background (`wait_until`).
    StaleWhileRevalidate {
        /// Current age in seconds.
        age: u64,
        /// Seconds of freshness left, <= 0.
        ttl: i64,
    },
    /// Revalidate before answering; if the origin fails (unreachable, or 500, 502, 503, 504),
    /// serve it stale instead of the error.
    StaleIfErrorOnly {
        /// Current age in seconds.
        age: u64,
        /// Seconds of freshness left, <= 0.
        ttl: i64,
    },
    /// Revalidate before answering (a conditional request with the stored `ETag`: a 304 makes
    /// it usable again); if the origin fails, pass the failure on, never this copy.
    Expired {
        /// Current age in seconds.
        age: u64,
        /// Seconds of freshness left; <= 0, except for a `no-cache` response that must be
        /// revalidated although its lifetime has not run out.
        ttl: i64,
    },
}

impl Freshness {
    /// The state's name for logs and `Cache-Status` details: `fresh`, `stale-while-revalidate`,
    /// `stale-if-error`, `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Freshness::Fresh { .. } => "fresh",
            Freshness::StaleWhileRevalidate { .. } => "stale-while-revalidate",
            Freshness::StaleIfErrorOnly { .. } => "stale-if-error",
            Freshness::Expired { .. } => "expired",
        }
    }

    /// The current age in seconds, whatever the state.
    pub fn age(self) -> u64 {
        match self {
            Freshness::Fresh { age, .. }
            | Freshness::StaleWhileRevalidate { age, .. }
            | Freshness::StaleIfErrorOnly { age, .. }
            | Freshness::Expired { age, .. } => age,
        }
    }

    /// The remaining freshness in seconds (negative once stale), whatever the state.
    pub fn ttl(self) -> i64 {
        match self {
            Freshness::Fresh { ttl, .. }
            | Freshness::StaleWhileRevalidate { ttl, .. }
            | Freshness::StaleIfErrorOnly { ttl, .. }
            | Freshness::Expired { ttl, .. } => ttl,
        }
    }
}

/// A response as the edge stored it: enough to compute its age and freshness at any `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// When the edge received (and stored) it, in unix seconds.
    pub stored_at: u64,
    /// The `Age` the response carried when it was received, in seconds (0 if none).
    pub age_at_store: u32,
    /// Its parsed `Cache-Control`.
    pub directives: CacheDirectives,
}

impl StoredResponse {
    /// A stored response from the raw header values it was received with (`Age`, and
    /// `Cache-Control`, `None` when absent).
    pub fn new(stored_at: u64, age_header: Option<&str>, cache_control: Option<&str>) -> Self {
        StoredResponse {
            stored_at,
            age_at_store: age_header.and_then(parse_age).unwrap_or(0),
            directives: cache_control
                .map(CacheDirectives::parse)
                .unwrap_or_default(),
        }
    }

    /// The current age in seconds at `now`, at most 2^31.
    pub fn current_age(&self, now: u64) -> u64 {
        // RFC 9111 4.2.3: "corrected_initial_age = max(apparent_age, corrected_age_value);
        // resident_time = now - response_time; current_age = corrected_initial_age +
        // resident_time;" with, here, corrected_initial_age = age_value (the `Age` received)
        // and response_time = stored_at. A clock that went backwards counts as no time.
        let resident_time = now.saturating_sub(self.stored_at);
        // RFC 9111 1.2.2: "... if any of its subsequent calculations overflows, the cache
        // MUST consider the value to be 2147483648 (2^31)".
        u64::from(self.age_at_store)
            .saturating_add(resident_time)
            .min(u64::from(DELTA_SECONDS_MAX))
    }

    /// The shared-cache freshness lifetime in seconds; 0 without an explicit one.
    pub fn freshness_lifetime(&self) -> u64 {
        u64::from(self.directives.freshness_lifetime_shared().unwrap_or(0))
    }

    /// Seconds of freshness left at `now`; negative once stale.
    pub fn ttl(&self, now: u64) -> i64 {
        self.freshness_lifetime() as i64 - self.current_age(now) as i64
    }

    /// Whether it is fresh at `now`.
    pub fn is_fresh(&self, now: u64) -> bool {
        // RFC 9111 4.2: "response_is_fresh = (freshness_lifetime > current_age)"
        self.freshness_lifetime() > self.current_age(now)
    }

    /// Seconds it has been stale at `now` (0 while fresh or exactly at expiry).
    fn staleness(&self, now: u64) -> u64 {
        self.current_age(now)
            .saturating_sub(self.freshness_lifetime())
    }

    /// Whether it is stale at `now` but may still be served while revalidating in the
    /// background.
    pub fn may_serve_stale_while_revalidate(&self, now: u64) -> bool {
        // RFC 5861 3: "When present in an HTTP response, the stale-while-revalidate
        // Cache-Control extension indicates that caches MAY serve the response in which it
        // appears after it becomes stale, up to the indicated number of seconds."
        // The window is half-open like freshness: with `stale-while-revalidate=30` a response
        // whose lifetime ended at t serves stale from t up to, not including, t + 30.
        !self.is_fresh(now)
            && !self.directives.forbids_stale_shared()
            && self.staleness(now) < u64::from(self.directives.stale_while_revalidate_secs())
    }

    /// Whether it is stale at `now` but may be served if revalidation fails with an error.
    pub fn may_serve_stale_if_error(&self, now: u64) -> bool {
        // RFC 5861 4: "The stale-if-error Cache-Control extension indicates that when an error
        // is encountered, a cached stale response MAY be used to satisfy the request,
        // regardless of other freshness information." and "Its value indicates the upper
        // limit to staleness; when the cached response is more stale than the indicated
        // amount, the cached response SHOULD NOT be used to satisfy the request, absent other
        // information." (Half-open window, as for stale-while-revalidate.)
        !self.is_fresh(now)
            && !self.directives.forbids_stale_shared()
            && self.staleness(now) < u64::from(self.directives.stale_if_error_secs())
    }

    /// The one decision the edge matches on.
    pub fn freshness(&self, now: u64) -> Freshness {
        let age = self.current_age(now);
        let ttl = self.ttl(now);
        if self.directives.no_cache {
            // RFC 9111 5.2.2.4: "The no-cache response directive, in its unqualified form
            // (without an argument), indicates that the response MUST NOT be used to satisfy
            // any other request without forwarding it for validation and receiving a
            // successful response". The qualified form is treated alike: "the no-cache
            // response directive with field-names is often handled by caches as if an
            // unqualified no-cache directive was received".
            return Freshness::Expired { age, ttl };
        }
        if self.is_fresh(now) {
            return Freshness::Fresh { age, ttl };
        }
        if self.may_serve_stale_while_revalidate(now) {
            return Freshness::StaleWhileRevalidate { age, ttl };
        }
        if self.may_serve_stale_if_error(now) {
            return Freshness::StaleIfErrorOnly { age, ttl };
        }
        // RFC 9111 5.2.2.2: "The must-revalidate response directive indicates that once the
        // response has become stale, a cache MUST NOT reuse that response to satisfy another
        // request until it has been successfully validated by the origin".
        // RFC 9111 5.2.2.8: "The proxy-revalidate response directive indicates that shared
        // caches MUST NOT reuse a response to satisfy another request until it has been
        // successfully validated by the origin".
        Freshness::Expired { age, ttl }
    }
}

/// Parses an `Age` header value (`Age = delta-seconds`, RFC 9111 5.1); `None` if malformed,
/// which the age calculation then treats as absent ("or 0, if not available", RFC 9111 4.2.3).
pub fn parse_age(value: &str) -> Option<u32> {
    parse_delta_seconds(value.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache_control;

    const T0: u64 = 1_700_000_000;

    fn stored(cache_control: &str) -> StoredResponse {
        StoredResponse::new(T0, None, Some(cache_control))
    }

    #[test]
    fn age_is_age_header_plus_resident_time() {
        let r = StoredResponse::new(T0, Some("30"), Some("max-age=100"));
        assert_eq!(r.current_age(T0), 30);
        assert_eq!(r.current_age(T0 + 10), 40);
        // A clock that went backwards adds nothing.
        assert_eq!(r.current_age(T0 - 100), 30);
        // A malformed Age counts as none.
        assert_eq!(StoredResponse::new(T0, Some("-5"), None).current_age(T0), 0);
        assert_eq!(
            StoredResponse::new(T0, Some(" 7 "), None).current_age(T0),
            7
        );
        // Overflow saturates at 2^31.
        let huge = StoredResponse::new(0, Some("2147483648"), None);
        assert_eq!(huge.current_age(u64::MAX), u64::from(DELTA_SECONDS_MAX));
    }

    #[test]
    fn fresh_while_lifetime_exceeds_age() {
        let r = stored("max-age=60, s-maxage=100");
        assert!(r.is_fresh(T0));
        assert!(r.is_fresh(T0 + 99));
        // freshness_lifetime > current_age is strict: at age == lifetime it is stale.
        assert!(!r.is_fresh(T0 + 100));
        assert_eq!(r.freshness(T0 + 40), Freshness::Fresh { age: 40, ttl: 60 });
        // The Age received counts against the lifetime.
        let aged = StoredResponse::new(T0, Some("90"), Some("s-maxage=100"));
        assert_eq!(aged.freshness(T0 + 5), Freshness::Fresh { age: 95, ttl: 5 });
        assert!(!aged.is_fresh(T0 + 10));
    }

    #[test]
    fn stale_while_revalidate_window() {
        // POPULAR: s-maxage=600, stale-while-revalidate=300, stale-if-error=86400.
        let r = stored(cache_control::POPULAR);
        assert!(!r.may_serve_stale_while_revalidate(T0 + 599));
        assert_eq!(
            r.freshness(T0 + 600),
            Freshness::StaleWhileRevalidate { age: 600, ttl: 0 }
        );
        assert_eq!(
            r.freshness(T0 + 899),
            Freshness::StaleWhileRevalidate {
                age: 899,
                ttl: -299
            }
        );
        assert!(!r.may_serve_stale_while_revalidate(T0 + 900));
        assert_eq!(
            r.freshness(T0 + 900),
            Freshness::StaleIfErrorOnly {
                age: 900,
                ttl: -300
            }
        );
    }

    #[test]
    fn stale_if_error_window() {
        let r = stored("max-age=600, stale-if-error=1200");
        assert!(!r.may_serve_stale_while_revalidate(T0 + 700));
        assert!(r.may_serve_stale_if_error(T0 + 600));
        assert!(r.may_serve_stale_if_error(T0 + 1799));
        assert!(!r.may_serve_stale_if_error(T0 + 1800));
        assert_eq!(
            r.freshness(T0 + 900),
            Freshness::StaleIfErrorOnly {
                age: 900,
                ttl: -300
            }
        );
        assert_eq!(
            r.freshness(T0 + 1800),
            Freshness::Expired {
                age: 1800,
                ttl: -1200
            }
        );
        // Neither stale-* is allowed while fresh: nothing is stale yet.
        assert!(!r.may_serve_stale_if_error(T0 + 10));
    }

    #[test]
    fn revalidation_directives_forbid_all_stale_serving() {
        for extra in ["must-revalidate", "proxy-revalidate"] {
            let r = stored(&format!(
                "max-age=10, stale-while-revalidate=100, stale-if-error=100, {extra}"
            ));
            assert!(r.is_fresh(T0 + 5), "{extra}");
            assert!(!r.may_serve_stale_while_revalidate(T0 + 20), "{extra}");
            assert!(!r.may_serve_stale_if_error(T0 + 20), "{extra}");
            assert_eq!(
                r.freshness(T0 + 20),
                Freshness::Expired { age: 20, ttl: -10 },
                "{extra}"
            );
        }
    }

    #[test]
    fn no_cache_always_revalidates() {
        let r = stored("max-age=100, no-cache, stale-if-error=100");
        assert_eq!(r.freshness(T0 + 1), Freshness::Expired { age: 1, ttl: 99 });
        assert!(!r.may_serve_stale_if_error(T0 + 150));
        let qualified = stored("max-age=100, no-cache=\"set-cookie\"");
        assert_eq!(qualified.freshness(T0).as_str(), "expired");
    }

    #[test]
    fn without_lifetime_or_with_invalid_lifetime_it_is_stale() {
        assert_eq!(
            stored("public").freshness(T0),
            Freshness::Expired { age: 0, ttl: 0 }
        );
        assert_eq!(
            StoredResponse::new(T0, None, None).freshness(T0 + 3),
            Freshness::Expired { age: 3, ttl: -3 }
        );
        let dup = stored("max-age=100, max-age=100, stale-while-revalidate=50");
        assert_eq!(
            dup.freshness(T0 + 1),
            Freshness::StaleWhileRevalidate { age: 1, ttl: -1 }
        );
    }

    #[test]
    fn origin_policies() {
        let movie = stored(cache_control::MOVIE);
        assert_eq!(movie.freshness(T0 + 86_399).as_str(), "fresh");
        assert_eq!(
            movie.freshness(T0 + 86_400).as_str(),
            "stale-while-revalidate"
        );
        assert_eq!(
            movie.freshness(T0 + 86_400 + 3_600).as_str(),
            "stale-if-error"
        );
        assert_eq!(movie.freshness(T0 + 2 * 86_400).as_str(), "expired");

        // GENRES has no s-maxage: max-age is the shared lifetime.
        let genres = stored(cache_control::GENRES);
        assert_eq!(genres.ttl(T0 + 400), 86_000);

        let private = stored(cache_control::PRIVATE);
        assert_eq!(private.freshness(T0).as_str(), "expired");
    }

    #[test]
    fn accessors_agree_with_variants() {
        let f = stored(cache_control::POPULAR).freshness(T0 + 700);
        assert_eq!((f.age(), f.ttl()), (700, -100));
        assert_eq!(f.as_str(), "stale-while-revalidate");
    }
}
