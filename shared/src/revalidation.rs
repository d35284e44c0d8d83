//! Conditional requests at the edge: answering a client's `If-None-Match` from a stored
//! response, and what to do with the origin's answer when the edge revalidates its own copy.
//!
//! The edge revalidates with `If-None-Match: <stored ETag>`; the origin answers 304 when the
//! body is unchanged (its strong ETag is a hash of the body, [`crate::etag`]), so a stale
//! entry is renewed without resending it. ETag matching itself is
//! [`etag::if_none_match_matches`], shared with the origin.

use crate::etag;
use crate::freshness::StoredResponse;

/// Whether a client's request can be answered `304 Not Modified` from a stored response.
///
/// Call it only when the stored response is about to be served (fresh, or stale while
/// revalidating); `false` when either header is missing.
pub fn serve_not_modified(if_none_match: Option<&str>, stored_etag: Option<&str>) -> bool {
    // RFC 9111 4.3.2: "If a cache receives a request that can be satisfied by reusing a
    // stored 200 (OK) or 206 (Partial Content) response, as per Section 4, the cache SHOULD
    // evaluate any applicable conditional header field preconditions received in that
    // request with respect to the corresponding validators contained within the stored
    // response."
    // RFC 9110 13.1.2: "A recipient MUST use the weak comparison function when comparing
    // entity tags for If-None-Match" (done by `etag::if_none_match_matches`). A stored
    // response without an ETag has no validator to compare, so nothing matches, not even `*`
    // (the edge cannot tell the client's copy is current).
    match (if_none_match, stored_etag) {
        (Some(header), Some(etag)) => etag::if_none_match_matches(header, etag),
        _ => false,
    }
}

/// The header fields a 304 the edge generates copies from the stored response (plus `Age`
/// and `Cache-Status`, which the edge computes), lower-case.
pub const NOT_MODIFIED_FIELDS: [&str; 6] = [
    // RFC 9110 15.4.5: "The server generating a 304 response MUST generate any of the
    // following header fields that would have been sent in a 200 (OK) response to the same
    // request: Content-Location, Date, ETag, and Vary; Cache-Control and Expires".
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "vary",
];

/// What the origin said to the edge's conditional request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginAnswer {
    /// A response with this status.
    Status(u16),
    /// No response: connection refused, DNS failure, timeout.
    Unreachable,
}

/// What the edge does after revalidating a stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revalidated {
    /// 304: serve the stored body with its headers updated from the 304
    /// ([`refreshed_headers`]), and store that back with `stored_at = now` and the 304's `Age`.
    Refresh,
    /// A full response: serve it; store it if [`crate::storable::may_store`] allows,
    /// otherwise delete the stored entry (it is no longer what the origin serves).
    UseNew,
    /// An error (unreachable, or 500, 502, 503, 504) within the `stale-if-error` window: serve
    /// the stored response stale, keep it stored.
    ServeStale,
    /// An error and no stale serving allowed: pass the origin's error on (502 or 504 when it
    /// was unreachable), keep the stored entry for a later revalidation.
    PassError,
}

impl Revalidated {
    /// The outcome's name for logs: `refresh`, `use_new`, `serve_stale`, `pass_error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Revalidated::Refresh => "refresh",
            Revalidated::UseNew => "use_new",
            Revalidated::ServeStale => "serve_stale",
            Revalidated::PassError => "pass_error",
        }
    }
}

/// Whether a status counts as an error for `stale-if-error`.
pub fn is_stale_if_error_status(status: u16) -> bool {
    // RFC 5861 4: "In this context, an error is any situation that would result in a 500,
    // 502, 503, or 504 HTTP response status code being returned."
    matches!(status, 500 | 502 | 503 | 504)
}

/// Decides what to do with the origin's `answer` to revalidating `stored` at `now`.
pub fn after_revalidation(answer: OriginAnswer, stored: &StoredResponse, now: u64) -> Revalidated {
    match answer {
        // RFC 9111 4.3.3: "A 304 (Not Modified) response status code indicates that the
        // stored response can be updated and reused; see Section 4.3.4."
        OriginAnswer::Status(304) => Revalidated::Refresh,
        // RFC 9111 4.3.3: "However, if a cache receives a 5xx (Server Error) response while
        // attempting to validate a response, it can either forward this response to the
        // requesting client or act as if the server failed to respond. In the latter case,
        // the cache can send a previously stored response, subject to its constraints on
        // doing so (see Section 4.2.4)". The constraints: `StoredResponse` (stale-if-error
        // window, no must-revalidate, proxy-revalidate or no-cache).
        OriginAnswer::Status(status) if is_stale_if_error_status(status) => {
            stale_or_error(stored, now)
        }
        OriginAnswer::Unreachable => stale_or_error(stored, now),
        // RFC 9111 4.3.3: "A full response (i.e., one containing content) indicates that none
        // of the stored responses nominated in the conditional request are suitable. Instead,
        // the cache MUST use the full response to satisfy the request. The cache MAY store
        // such a full response, subject to its constraints (see Section 3)."
        OriginAnswer::Status(_) => Revalidated::UseNew,
    }
}

fn stale_or_error(stored: &StoredResponse, now: u64) -> Revalidated {
    if stored.may_serve_stale_if_error(now) {
        Revalidated::ServeStale
    } else {
        Revalidated::PassError
    }
}

/// Header fields a 304 never changes in the stored response: framing and connection fields,
/// the coding the stored body is in, and `Set-Cookie` (the edge never stores cookies).
const NOT_UPDATED: [&str; 10] = [
    "connection",
    "content-encoding",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "set-cookie",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The stored response's header fields updated from a 304: every field of the 304 replaces
/// the stored field of the same name, except those in `NOT_UPDATED`. Names are compared
/// case-insensitively; the stored fields keep their order and the 304's new ones follow.
pub fn refreshed_headers(
    stored: &[(String, String)],
    not_modified: &[(String, String)],
) -> Vec<(String, String)> {
    // RFC 9111 3.2: "When doing so, the cache MUST add each header field in the provided
    // response to the stored response, replacing field values that are already present, with
    // the following exceptions: Header fields excepted from storage in Section 3.1, Header
    // fields that the cache's stored response depends upon, as described below, Header fields
    // that are automatically processed and removed by the recipient, as described below, and
    // The Content-Length header field."
    let updates: Vec<&(String, String)> = not_modified
        .iter()
        .filter(|(name, _)| !NOT_UPDATED.contains(&name.to_ascii_lowercase().as_str()))
        .collect();
    let replaced = |name: &str| updates.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    stored
        .iter()
        .filter(|(name, _)| !replaced(name))
        .cloned()
        .chain(updates.iter().map(|field| (*field).clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache_control;

    const T0: u64 = 1_700_000_000;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn not_modified_needs_both_a_condition_and_a_stored_etag() {
        let tag = etag::strong_etag(b"body");
        assert!(serve_not_modified(Some(&tag), Some(&tag)));
        assert!(serve_not_modified(Some(&format!("W/{tag}")), Some(&tag)));
        assert!(serve_not_modified(Some("*"), Some(&tag)));
        assert!(!serve_not_modified(Some("\"other\""), Some(&tag)));
        assert!(!serve_not_modified(None, Some(&tag)));
        assert!(!serve_not_modified(Some("*"), None));
    }

    #[test]
    fn revalidation_outcomes() {
        // POPULAR: s-maxage=600, stale-while-revalidate=300, stale-if-error=86400.
        let stored = StoredResponse::new(T0, None, Some(cache_control::POPULAR));
        let later = T0 + 1000; // stale, past the revalidate window, inside stale-if-error
        let after = |answer| after_revalidation(answer, &stored, later);
        assert_eq!(after(OriginAnswer::Status(304)), Revalidated::Refresh);
        assert_eq!(after(OriginAnswer::Status(200)), Revalidated::UseNew);
        assert_eq!(after(OriginAnswer::Status(404)), Revalidated::UseNew);
        assert_eq!(after(OriginAnswer::Status(501)), Revalidated::UseNew);
        for status in [500, 502, 503, 504] {
            assert_eq!(
                after(OriginAnswer::Status(status)),
                Revalidated::ServeStale,
                "{status}"
            );
        }
        assert_eq!(after(OriginAnswer::Unreachable), Revalidated::ServeStale);
        // Past stale-if-error, the error goes through.
        assert_eq!(
            after_revalidation(OriginAnswer::Unreachable, &stored, T0 + 600 + 86_400),
            Revalidated::PassError
        );
    }

    #[test]
    fn must_revalidate_passes_errors_on() {
        let stored = StoredResponse::new(
            T0,
            None,
            Some("max-age=10, stale-if-error=600, must-revalidate"),
        );
        let outcome = after_revalidation(OriginAnswer::Status(503), &stored, T0 + 20);
        assert_eq!(outcome, Revalidated::PassError);
        assert_eq!(outcome.as_str(), "pass_error");
    }

    #[test]
    fn a_304_updates_headers_but_not_framing_or_cookies() {
        let stored = pairs(&[
            ("Content-Type", "application/json"),
            ("Content-Length", "120"),
            ("ETag", "\"abc\""),
            ("Cache-Control", "public, max-age=60"),
            ("Cache-Status", "origin; fwd=miss; stored"),
        ]);
        let not_modified = pairs(&[
            ("cache-control", "public, max-age=120"),
            ("etag", "\"abc\""),
            ("content-length", "0"),
            ("Set-Cookie", "a=b"),
            ("cache-status", "origin; hit"),
            ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ]);
        assert_eq!(
            refreshed_headers(&stored, &not_modified),
            pairs(&[
                ("Content-Type", "application/json"),
                ("Content-Length", "120"),
                ("cache-control", "public, max-age=120"),
                ("etag", "\"abc\""),
                ("cache-status", "origin; hit"),
                ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
            ])
        );
    }

    #[test]
    fn error_statuses_for_stale_if_error() {
        assert!(is_stale_if_error_status(502));
        assert!(!is_stale_if_error_status(501));
        assert!(!is_stale_if_error_status(429));
    }
}
