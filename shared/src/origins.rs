//! Which origin instance the edge sends a request to, and what it does when that instance
//! cannot be reached.
//!
//! The edge's `ORIGIN_URL` may list several instances ([`Origins::parse`]). Each request is
//! ranked over all of them by rendezvous (highest-random-weight) hashing: every origin gets a
//! weight from a stable hash of its URL and the request's [`Affinity`], and the heaviest is
//! asked first ([`Origins::ranked`]). Rendezvous rather than "hash modulo N" because adding or
//! removing one instance only moves the requests that instance gains or loses: every other
//! user keeps their instance, and with it that instance's in-process cache of their values.
//!
//! - Personal requests (`/users/{id}` and below, reads and writes alike) are ranked by the
//!   user id, so one user's requests reach one instance while it is up.
//! - Everything else is ranked by its normalised cache key (the edge's cacheable routes,
//!   [`crate::edge_key`]) or its path, so each public value is computed on one instance.
//!
//! The weight is SHA-256 of the origin's URL and the affinity key, never std's randomly keyed
//! SipHash: every isolate of the worker, on every machine and after every restart, must rank
//! the origins alike (the weights are pinned in a test).
//!
//! When the chosen origin gives no answer (the connection fails, or no response comes within
//! the deadline), [`Failover`] says whether the edge may ask the next one. An HTTP error
//! status the origin sent is an answer, passed on as it is, and never a reason to ask another.
//!
//! An origin that gave no answer is also set aside for a while ([`Ejections`], passive
//! outlier detection as Envoy does it): new requests rank it last, so once one request has
//! found an instance gone, the others, ratings included, go straight to a survivor instead of
//! each finding out for itself (a rating, which is never retried elsewhere, would otherwise
//! fail). After [`Ejections::PERIOD_MS`] it is ranked as before again, and the first request
//! that reaches it brings it back.

use crate::params::UserId;
use sha2::{Digest, Sha256};

/// The origin instances the edge spreads requests over, in the order they were configured,
/// each without a trailing slash, none twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origins(Vec<String>);

/// Why an origin list is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginsError {
    /// The list names no origin (empty, or only commas and spaces).
    #[error("no origin URL is configured")]
    Empty,
    /// An entry is not an `http://` or `https://` URL with a host.
    #[error("not an http(s) origin URL: {0:?}")]
    NotHttp(String),
}

impl Origins {
    /// Parses a comma-separated list, e.g. `http://127.0.0.1:8080,http://127.0.0.1:8081`.
    /// A single URL (the original form of `ORIGIN_URL`) is a list of one. Spaces around
    /// entries, empty entries and trailing slashes are dropped; a repeated URL counts once
    /// (it would otherwise get the same weight twice and be tried twice).
    pub fn parse(list: &str) -> Result<Origins, OriginsError> {
        let mut urls: Vec<String> = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let url = entry.trim_end_matches('/');
            let host = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            if host.is_none_or(|host| host.is_empty() || host.contains(char::is_whitespace)) {
                return Err(OriginsError::NotHttp(entry.to_owned()));
            }
            if !urls.iter().any(|known| known == url) {
                urls.push(url.to_owned());
            }
        }
        if urls.is_empty() {
            return Err(OriginsError::Empty);
        }
        Ok(Origins(urls))
    }

    /// The origins as configured.
    pub fn urls(&self) -> &[String] {
        &self.0
    }

    /// [`Origins::ranked`], with the origins `ejections` sets aside at `now_ms` moved last
    /// (each group keeps its order).
    pub fn ranked_avoiding(
        &self,
        affinity: &Affinity,
        ejections: &Ejections,
        now_ms: f64,
    ) -> Vec<&str> {
        let mut ranked = self.ranked(affinity);
        // A stable sort: `false` (not set aside) first.
        ranked.sort_by_key(|url| ejections.is_ejected(url, now_ms));
        ranked
    }

    /// Every origin once, the one to ask first first: by descending rendezvous [`weight`]
    /// for `affinity` (ties, which SHA-256 makes practically impossible, by URL).
    pub fn ranked(&self, affinity: &Affinity) -> Vec<&str> {
        let key = affinity.key();
        let mut ranked: Vec<(u64, &str)> = self
            .0
            .iter()
            .map(|url| (weight(url, &key), url.as_str()))
            .collect();
        ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        ranked.into_iter().map(|(_, url)| url).collect()
    }
}

/// The origins that recently gave no answer, each until when it is ranked last (in
/// milliseconds of the caller's clock: the edge's `Date.now()`). Kept per isolate: each finds
/// out for itself, which is at most one failed request each.
#[derive(Debug, Clone, Default)]
pub struct Ejections {
    until: Vec<(String, f64)>,
}

impl Ejections {
    /// How long an origin that gave no answer is ranked last.
    pub const PERIOD_MS: f64 = 10_000.0;

    /// `origin` gave no answer at `now_ms`.
    pub fn eject(&mut self, origin: &str, now_ms: f64) {
        let until = now_ms + Self::PERIOD_MS;
        match self.until.iter_mut().find(|(url, _)| url == origin) {
            Some(entry) => entry.1 = until,
            None => self.until.push((origin.to_owned(), until)),
        }
    }

    /// `origin` answered: it is ranked as usual again.
    pub fn restore(&mut self, origin: &str) {
        self.until.retain(|(url, _)| url != origin);
    }

    /// Whether `origin` is set aside at `now_ms`.
    pub fn is_ejected(&self, origin: &str, now_ms: f64) -> bool {
        self.until
            .iter()
            .any(|(url, until)| url == origin && now_ms < *until)
    }
}

/// What a request's origin is chosen by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Affinity {
    /// `/users/{id}` and everything below it: the user's requests, reads and writes, go to one
    /// instance, which keeps that instance's cache of their personal values warm.
    User(UserId),
    /// Any other request: by its normalised cache key, or its path.
    Resource(String),
}

impl Affinity {
    /// The affinity of a request for `path` (without the query). `cache_key` is the edge's
    /// normalised key when the route is cacheable ([`crate::edge_key::EdgeRoute::key`]), so
    /// that spellings sharing one cache entry also share one origin.
    ///
    /// A user id segment is percent-decoded first, like the origin's router does
    /// (`/users/%31/profile` is user 1 there too); a segment that is no valid id leaves the
    /// request to the path (the origin answers it with a 400 anyway).
    pub fn of(path: &str, cache_key: Option<&str>) -> Affinity {
        let user = path
            .strip_prefix("/users/")
            .and_then(|rest| decode_digits(rest.split('/').next().unwrap_or_default()))
            .and_then(|id| UserId::parse(&id).ok());
        match user {
            Some(user) => Affinity::User(user),
            None => Affinity::Resource(cache_key.unwrap_or(path).to_owned()),
        }
    }

    /// The hashed form: `user:{id}` or `resource:{key}`.
    pub fn key(&self) -> String {
        match self {
            Affinity::User(user) => format!("user:{}", user.0),
            Affinity::Resource(key) => format!("resource:{key}"),
        }
    }
}

/// The rendezvous weight of `origin` for an affinity key: the first 8 bytes of
/// SHA-256(`origin` NUL `key`), big-endian. Stable across processes, builds and targets.
pub fn weight(origin: &str, key: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(origin.as_bytes());
    hasher.update([0]);
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// A segment with `%XX` escapes decoded, if the result is ASCII digits (anything else is no
/// user id, so the exact decoding of other bytes does not matter here).
fn decode_digits(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            i += 3;
            u8::from_str_radix(hex, 16).ok()?
        } else {
            i += 1;
            bytes[i - 1]
        };
        if !byte.is_ascii_digit() {
            return None;
        }
        out.push(byte as char);
    }
    Some(out)
}

/// What the edge does when the origin it asked gave no answer: the connection failed, or no
/// response came within `ORIGIN_TIMEOUT_MS`.
///
/// RFC 9110 9.2.2: "A user agent SHOULD NOT automatically retry a request with a
/// non-idempotent method unless it has some means to know that the request semantics are
/// actually idempotent, regardless of the method, or some means to detect that the original
/// request was never applied." A POST (a rating) may have been written before the connection
/// failed, so it is asked of one origin only. The one case that would be safe, a connection
/// refused outright, cannot be told apart in the Workers runtime: workerd reports a refused
/// connection, a reset before the request was sent and a close after it was read all as
/// `Network connection lost.`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failover {
    /// A safe method (GET, HEAD; RFC 9110 9.2.1): ask the next origin in the ranking, each at
    /// most once.
    NextOrigin,
    /// Any other method: answer the failure (a 502 or 504) without asking another origin.
    Never,
}

impl Failover {
    /// The failover for a request `method` (upper case, as HTTP spells it).
    pub fn for_method(method: &str) -> Failover {
        match method {
            "GET" | "HEAD" => Failover::NextOrigin,
            _ => Failover::Never,
        }
    }

    /// `next-origin` or `never`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Failover::NextOrigin => "next-origin",
            Failover::Never => "never",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "http://127.0.0.1:8080";
    const B: &str = "http://127.0.0.1:8081";
    const C: &str = "http://127.0.0.1:8082";

    fn origins(urls: &[&str]) -> Origins {
        Origins::parse(&urls.join(",")).expect("valid list")
    }

    fn first(origins: &Origins, affinity: &Affinity) -> String {
        origins.ranked(affinity)[0].to_owned()
    }

    #[test]
    fn an_origin_that_gave_no_answer_is_asked_last_for_a_while() {
        let all = origins(&[A, B, C]);
        let mut ejections = Ejections::default();
        // A user whose first choice is A.
        let user = (1..)
            .map(|id| Affinity::User(UserId(id)))
            .find(|a| all.ranked(a)[0] == A)
            .unwrap();
        let usual = all.ranked(&user);
        ejections.eject(A, 1_000.0);
        let avoiding = all.ranked_avoiding(&user, &ejections, 1_001.0);
        assert_eq!(avoiding.last(), Some(&A));
        assert_eq!(avoiding[..2], usual[1..], "the others keep their order");
        // The period ends: ranked as usual, and an answer clears it at once.
        let later = 1_000.0 + Ejections::PERIOD_MS;
        assert_eq!(all.ranked_avoiding(&user, &ejections, later), usual);
        ejections.eject(A, 2_000.0);
        ejections.restore(A);
        assert_eq!(all.ranked_avoiding(&user, &ejections, 2_001.0), usual);
    }

    #[test]
    fn weights_are_pinned() {
        // SHA-256("http://127.0.0.1:8080\0user:1") begins 54dd5bdf341a6385: a change here
        // would move every user to another instance on deploy.
        assert_eq!(weight(A, "user:1"), 0x54dd_5bdf_341a_6385);
        assert_eq!(weight(B, "user:1"), 0xe4ca_4609_831c_ca05);
        assert_eq!(
            weight(A, "resource:/movies/popular?limit=20"),
            0x1635_12cd_74de_eeb6
        );
        // So user 1 lives on B of these two.
        let pair = origins(&[A, B]);
        assert_eq!(pair.ranked(&Affinity::User(UserId(1))), [B, A]);
    }

    #[test]
    fn one_url_is_a_list_of_one() {
        let one = Origins::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(one.urls(), [A]);
        assert_eq!(one.ranked(&Affinity::of("/movies/1", None)), [A]);
    }

    #[test]
    fn lists_are_trimmed_and_deduplicated() {
        let list = Origins::parse(" http://127.0.0.1:8080 ,, http://127.0.0.1:8081/,").unwrap();
        assert_eq!(list.urls(), [A, B]);
        let twice = Origins::parse(&format!("{A},{B},{A}/")).unwrap();
        assert_eq!(twice.urls(), [A, B]);
        assert_eq!(
            Origins::parse("https://origin.example.com").unwrap().urls(),
            ["https://origin.example.com"]
        );
    }

    #[test]
    fn unusable_lists_are_refused() {
        assert_eq!(Origins::parse(""), Err(OriginsError::Empty));
        assert_eq!(Origins::parse(" , "), Err(OriginsError::Empty));
        for bad in ["127.0.0.1:8080", "ftp://x", "http://", "http://a b"] {
            assert_eq!(
                Origins::parse(&format!("{A},{bad}")),
                Err(OriginsError::NotHttp(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_origin_is_ranked_once() {
        let list = origins(&[A, B, C]);
        for user in 1..200 {
            let mut ranked = list.ranked(&Affinity::User(UserId(user)));
            ranked.sort_unstable();
            assert_eq!(ranked, [A, B, C]);
        }
    }

    #[test]
    fn a_users_requests_share_one_origin() {
        let list = origins(&[A, B, C]);
        for user in 1..100 {
            let home = first(&list, &Affinity::User(UserId(user)));
            for path in [
                format!("/users/{user}/recommendations"),
                format!("/users/{user}/profile"),
                format!("/users/{user}/ratings"),
                format!("/users/{user}"),
                // Percent-encoded, as the origin's router decodes it.
                format!(
                    "/users/{}/profile",
                    user.to_string()
                        .bytes()
                        .map(|b| format!("%{b:02X}"))
                        .collect::<String>()
                ),
            ] {
                assert_eq!(first(&list, &Affinity::of(&path, None)), home, "{path}");
            }
        }
    }

    #[test]
    fn affinities_follow_the_path() {
        assert_eq!(
            Affinity::of("/users/42/recommendations", None),
            Affinity::User(UserId(42))
        );
        assert_eq!(
            Affinity::of("/users/%34%32", None),
            Affinity::User(UserId(42))
        );
        // No valid id: left to the path (the origin answers 400).
        for path in [
            "/users/0/profile",
            "/users/abc/profile",
            "/users/%4",
            "/users/",
        ] {
            assert_eq!(
                Affinity::of(path, None),
                Affinity::Resource(path.to_owned()),
                "{path}"
            );
        }
        // Cacheable routes go by their normalised key, so spellings of one entry agree.
        assert_eq!(
            Affinity::of("/movies/popular", Some("/movies/popular?limit=20")),
            Affinity::Resource("/movies/popular?limit=20".to_owned())
        );
        assert_eq!(
            Affinity::of("/admin/cache/stats", None).key(),
            "resource:/admin/cache/stats"
        );
        assert_eq!(Affinity::User(UserId(7)).key(), "user:7");
    }

    #[test]
    fn users_spread_evenly() {
        for list in [origins(&[A, B]), origins(&[A, B, C])] {
            let n = list.urls().len();
            let users = 30_000;
            let mut counts = vec![0usize; n];
            for user in 1..=users {
                let home = first(&list, &Affinity::User(UserId(user)));
                counts[list.urls().iter().position(|u| *u == home).unwrap()] += 1;
            }
            let fair = users as usize / n;
            for count in counts {
                assert!(
                    count.abs_diff(fair) < fair / 20,
                    "within 5% of {fair}: {count}"
                );
            }
        }
    }

    #[test]
    fn adding_an_origin_moves_only_the_users_it_takes() {
        let two = origins(&[A, B]);
        let three = origins(&[A, B, C]);
        let mut moved = 0;
        for user in 1..=10_000 {
            let affinity = Affinity::User(UserId(user));
            let before = first(&two, &affinity);
            let after = first(&three, &affinity);
            if before != after {
                assert_eq!(after, C, "user {user} moved between the old instances");
                moved += 1;
            }
        }
        // About a third moves, to the new instance only.
        assert!((3_000..3_700).contains(&moved), "{moved}");
    }

    #[test]
    fn the_ranking_does_not_depend_on_the_configured_order() {
        let forward = origins(&[A, B, C]);
        let backward = origins(&[C, B, A]);
        for user in 1..100 {
            let affinity = Affinity::User(UserId(user));
            assert_eq!(forward.ranked(&affinity), backward.ranked(&affinity));
        }
    }

    #[test]
    fn only_safe_methods_fail_over() {
        assert_eq!(Failover::for_method("GET"), Failover::NextOrigin);
        assert_eq!(Failover::for_method("HEAD"), Failover::NextOrigin);
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get"] {
            assert_eq!(Failover::for_method(method), Failover::Never, "{method}");
        }
        assert_eq!(Failover::NextOrigin.as_str(), "next-origin");
        assert_eq!(Failover::Never.as_str(), "never");
    }
}
