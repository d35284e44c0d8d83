//! Whether the edge (a shared cache) may store a response it received from the origin.
//!
//! RFC 9111 3 lists when a cache MUST NOT store; the edge adds the SPEC's own refusals on top
//! (section 6: "Never stores personal responses, responses with `Set-Cookie`, or errors"), and
//! since it does no heuristic freshness it stores only responses with an explicit lifetime.
//! A refusal carries its reason, for logs and `Cache-Status` details.

use crate::directives::CacheDirectives;

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoStoreReason {
    /// The request method is not GET.
    Method,
    /// The status is not 200.
    Status,
    /// `Cache-Control: no-store`.
    NoStore,
    /// `Cache-Control: private` (either form).
    Private,
    /// The request carried `Authorization` and nothing in the response allows sharing it.
    Authorization,
    /// The response sets a cookie.
    SetCookie,
    /// No valid `s-maxage` or `max-age`.
    NoFreshness,
}

impl NoStoreReason {
    /// The reason's snake_case name: `method`, `status`, `no_store`, `private`,
    /// `authorization`, `set_cookie`, `no_freshness`.
    pub fn as_str(self) -> &'static str {
        match self {
            NoStoreReason::Method => "method",
            NoStoreReason::Status => "status",
            NoStoreReason::NoStore => "no_store",
            NoStoreReason::Private => "private",
            NoStoreReason::Authorization => "authorization",
            NoStoreReason::SetCookie => "set_cookie",
            NoStoreReason::NoFreshness => "no_freshness",
        }
    }
}

impl std::fmt::Display for NoStoreReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the edge may store the response to a `method` request that answered `status` with
/// `cache_control`. The checks run in the order of [`NoStoreReason`]; the first that fails is
/// the reason.
///
/// Only a full 200 is stored; a 304 received while revalidating refreshes the stored entry
/// instead (see [`crate::revalidation`]).
pub fn may_store(
    method: &str,
    status: u16,
    cache_control: &CacheDirectives,
    has_set_cookie: bool,
    has_authorization_in_request: bool,
) -> Result<(), NoStoreReason> {
    // RFC 9111 3: "A cache MUST NOT store a response to a request unless: the request method
    // is understood by the cache". RFC 9110 9.2.3: "this specification defines GET, HEAD, and
    // POST as cacheable, although the overwhelming majority of cache implementations only
    // support GET and HEAD". The edge stores GET only (a HEAD response has no body to serve a
    // later GET). RFC 9110 9.1: "The method token is case-sensitive", so `get` is not GET.
    if method != "GET" {
        return Err(NoStoreReason::Method);
    }
    // RFC 9110 15.1: "Responses with status codes that are defined as heuristically cacheable
    // (e.g., 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, and 501 in this
    // specification) can be reused by a cache". The edge is stricter: the SPEC forbids storing
    // errors, and the public routes answer nothing else worth keeping than 200.
    if status != 200 {
        return Err(NoStoreReason::Status);
    }
    // RFC 9111 3: "the no-store cache directive is not present in the response".
    // RFC 9111 5.2.2.5: "The no-store response directive indicates that a cache MUST NOT store
    // any part of either the immediate request or the response".
    if cache_control.no_store {
        return Err(NoStoreReason::NoStore);
    }
    // RFC 9111 5.2.2.7: "The unqualified private response directive indicates that a shared
    // cache MUST NOT store the response". The qualified form would allow storing the rest of
    // the response, but the edge treats it alike, as the RFC's note says is common: "This
    // usage of the qualified form of the directive is often handled by caches as if an
    // unqualified private directive was received".
    if cache_control.private {
        return Err(NoStoreReason::Private);
    }
    // RFC 9111 3.5: "A shared cache MUST NOT use a cached response to a request with an
    // Authorization header field ... to satisfy any subsequent request unless the response
    // contains a Cache-Control field with a response directive (Section 5.2.2) that allows it
    // to be stored by a shared cache ... In this specification, the following Cache-Control
    // response directives have such an effect: must-revalidate (Section 5.2.2.2), public
    // (Section 5.2.2.9), and s-maxage (Section 5.2.2.10)."
    if has_authorization_in_request
        && !(cache_control.public
            || cache_control.s_maxage.is_some()
            || cache_control.must_revalidate)
    {
        return Err(NoStoreReason::Authorization);
    }
    // SPEC section 6: "Never stores ... responses with `Set-Cookie`": a cookie belongs to one
    // client and must not be replayed to others.
    if has_set_cookie {
        return Err(NoStoreReason::SetCookie);
    }
    // RFC 9111 3: the response must contain "at least one of" public, Expires, max-age,
    // s-maxage, an extension, or a heuristically cacheable status. The edge computes no
    // heuristic lifetime and ignores Expires, so it requires s-maxage or max-age, well formed:
    // RFC 9111 4.2.1: "Caches are encouraged to consider responses that have invalid freshness
    // information (e.g., a max-age directive with non-integer content) to be stale."
    if !cache_control.has_valid_freshness_shared() {
        return Err(NoStoreReason::NoFreshness);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache_control;

    fn check(
        method: &str,
        status: u16,
        cc: &str,
        cookie: bool,
        auth: bool,
    ) -> Result<(), &'static str> {
        may_store(method, status, &CacheDirectives::parse(cc), cookie, auth)
            .map_err(NoStoreReason::as_str)
    }

    #[test]
    fn public_origin_responses_are_stored() {
        for cc in [
            cache_control::MOVIE,
            cache_control::POPULAR,
            cache_control::GENRES,
            cache_control::GENRE_TOP,
        ] {
            assert_eq!(check("GET", 200, cc, false, false), Ok(()), "{cc}");
        }
    }

    #[test]
    fn personal_and_uncacheable_origin_responses_are_not() {
        assert_eq!(
            check("GET", 200, cache_control::PRIVATE, false, false),
            Err("private")
        );
        assert_eq!(
            check("GET", 200, cache_control::NO_STORE, false, false),
            Err("no_store")
        );
    }

    #[test]
    fn only_get() {
        for method in ["HEAD", "POST", "PUT", "DELETE", "get"] {
            assert_eq!(
                check(method, 200, cache_control::MOVIE, false, false),
                Err("method"),
                "{method}"
            );
        }
    }

    #[test]
    fn only_200() {
        for status in [203, 204, 206, 301, 304, 400, 404, 410, 500, 503] {
            assert_eq!(
                check("GET", status, cache_control::MOVIE, false, false),
                Err("status"),
                "{status}"
            );
        }
    }

    #[test]
    fn private_wins_over_public_and_its_qualified_form_counts() {
        assert_eq!(
            check("GET", 200, "public, private, max-age=60", false, false),
            Err("private")
        );
        assert_eq!(
            check("GET", 200, "private=\"x-user\", max-age=60", false, false),
            Err("private")
        );
    }

    #[test]
    fn never_with_set_cookie() {
        assert_eq!(
            check("GET", 200, cache_control::MOVIE, true, false),
            Err("set_cookie")
        );
    }

    #[test]
    fn authorization_needs_explicit_permission() {
        assert_eq!(
            check("GET", 200, "max-age=60", false, true),
            Err("authorization")
        );
        for cc in [
            "public, max-age=60",
            "s-maxage=60",
            "must-revalidate, max-age=60",
        ] {
            assert_eq!(check("GET", 200, cc, false, true), Ok(()), "{cc}");
        }
        assert_eq!(check("GET", 200, cache_control::MOVIE, false, true), Ok(()));
    }

    #[test]
    fn an_explicit_valid_lifetime_is_required() {
        for cc in ["", "public", "stale-while-revalidate=60", "max-age=soon"] {
            assert_eq!(
                check("GET", 200, cc, false, false),
                Err("no_freshness"),
                "{cc:?}"
            );
        }
        assert_eq!(
            check("GET", 200, "max-age=1, max-age=2", false, false),
            Err("no_freshness")
        );
        // s-maxage decides for a shared cache, even when max-age is fine.
        assert_eq!(
            check("GET", 200, "max-age=60, s-maxage=x", false, false),
            Err("no_freshness")
        );
        // max-age=0 is explicit: stored, and revalidated on every use.
        assert_eq!(check("GET", 200, "max-age=0", false, false), Ok(()));
        // no-cache is storable: it only forbids reuse without revalidation.
        assert_eq!(
            check("GET", 200, "no-cache, max-age=60", false, false),
            Ok(())
        );
    }

    #[test]
    fn reasons_display_as_their_names() {
        assert_eq!(NoStoreReason::NoFreshness.to_string(), "no_freshness");
    }
}
