//! Cross-origin requests from browsers (the Fetch standard's CORS protocol), as pure policy:
//! which origins may read the API, and the headers of a preflight and of an actual response.
//! The edge answers preflights with it and adds its headers to every response it sends; the
//! origin applies the same configuration through `tower-http`'s CORS layer.
//!
//! - Allowed origins come from `CORS_ALLOWED_ORIGINS`: `*`, or a comma-separated list of
//!   serialized origins (`https://movies.example.com`), where the port may be `*` (any port of
//!   that scheme and host). The default, for local use, is [`LOCAL_DEFAULT`]: any port of
//!   `http://localhost` and `http://127.0.0.1`.
//! - An allowed origin is echoed in `Access-Control-Allow-Origin` (never `*`, so one policy
//!   works for every request mode), and every response says `Vary: Origin`, with or without
//!   an `Origin` in its request, so no cache hands one requester's answer to another. A disallowed origin
//!   gets no CORS header at all, so the browser withholds the response from the page.
//! - Fetch standard, CORS-preflight fetch: the `Access-Control-Allow-Headers` wildcard "`*`"
//!   does not cover `Authorization` ("the `Authorization` header cannot be wildcarded"), so
//!   every request header the API reads is listed by name ([`ALLOW_HEADERS`]).
//! - Fetch standard, CORS-safelisted response-header names are only `Cache-Control`,
//!   `Content-Language`, `Content-Length`, `Content-Type`, `Expires`, `Last-Modified` and
//!   `Pragma`: the headers a client of this API reads beyond those are exposed by name
//!   ([`EXPOSE_HEADERS`]).

/// The default allowed origins: any port of `http://localhost` and `http://127.0.0.1`.
pub const LOCAL_DEFAULT: &str = "http://localhost:*,http://127.0.0.1:*";

/// `Access-Control-Allow-Methods`: every method the API answers.
pub const ALLOW_METHODS: &str = "GET, HEAD, POST, OPTIONS";

/// `Access-Control-Allow-Headers`: the request headers the API reads, by name.
pub const ALLOW_HEADERS: &str = "authorization, content-type, if-none-match, x-request-id";

/// `Access-Control-Expose-Headers`: the response headers a page may read beyond the
/// safelisted ones.
pub const EXPOSE_HEADERS: &str = "etag, age, cache-status, x-request-id, retry-after";

/// `Access-Control-Max-Age` in seconds (browsers cap it: Chromium at 2 hours).
pub const MAX_AGE_SECS: u32 = 7200;

/// `Vary` of a preflight's answer: it depends on all three request headers.
pub const PREFLIGHT_VARY: &str =
    "origin, access-control-request-method, access-control-request-headers";

/// A malformed `CORS_ALLOWED_ORIGINS` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an origin: expected `*` or `scheme://host[:port]` (port may be `*`), e.g. `https://movies.example.com`"
)]
pub struct BadOrigin(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Port {
    /// Not written: the scheme's default.
    Default,
    /// `:*`.
    Any,
    /// `:8080`.
    Exact(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    scheme: String,
    host: String,
    port: Port,
}

/// Which origins may read the API's responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    any: bool,
    patterns: Vec<Pattern>,
}

impl Default for CorsPolicy {
    fn default() -> Self {
        CorsPolicy::parse(LOCAL_DEFAULT).expect("the default parses")
    }
}

/// Splits a serialized origin `scheme://host[:port]` (no path, query or user info); ASCII
/// lower case, as browsers serialize them.
fn split(origin: &str) -> Option<(String, String, Option<&str>)> {
    let (scheme, rest) = origin.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        || rest.is_empty()
        || rest.contains(['/', '?', '#', '@', ' ', ','])
    {
        return None;
    }
    // An IPv6 literal keeps its brackets: the port follows the closing one.
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (inside, after) = v6.split_once(']')?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (format!("[{inside}]"), port)
        }
        None => match rest.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (rest.to_owned(), None),
        },
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    Some((scheme.to_ascii_lowercase(), host.to_ascii_lowercase(), port))
}

/// A port as a serialized origin writes it: decimal digits only (`u16::from_str` would also
/// take a leading `+`).
fn port_number(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl CorsPolicy {
    /// Parses `CORS_ALLOWED_ORIGINS`: `*`, or a comma-separated list of origins.
    pub fn parse(config: &str) -> Result<Self, BadOrigin> {
        let mut policy = CorsPolicy {
            any: false,
            patterns: Vec::new(),
        };
        for entry in config.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                policy.any = true;
                continue;
            }
            let bad = || BadOrigin(entry.to_owned());
            let (scheme, host, port) = split(entry).ok_or_else(bad)?;
            let port = match port {
                None => Port::Default,
                Some("*") => Port::Any,
                Some(p) => Port::Exact(port_number(p).ok_or_else(bad)?),
            };
            policy.patterns.push(Pattern { scheme, host, port });
        }
        Ok(policy)
    }

    /// Whether a page on `origin` (the request's `Origin` header, as the browser sent it) may
    /// read the API's responses. `null` (opaque origins) never may, unless every origin may.
    pub fn allows(&self, origin: &str) -> bool {
        if self.any {
            return true;
        }
        let Some((scheme, host, port)) = split(origin) else {
            return false;
        };
        let port = match port {
            None => None,
            Some(p) => match port_number(p) {
                Some(p) => Some(p),
                None => return false,
            },
        };
        self.patterns.iter().any(|p| {
            p.scheme == scheme
                && p.host == host
                && match (&p.port, port) {
                    (Port::Any, _) => true,
                    (Port::Default, None) => true,
                    (Port::Exact(want), Some(got)) => *want == got,
                    _ => false,
                }
        })
    }

    /// The CORS headers of an actual (non-preflight) response to a request from `origin`:
    /// `Access-Control-Allow-Origin` and `Access-Control-Expose-Headers` when the origin is
    /// allowed, nothing otherwise. Every response also says `Vary: origin` (see
    /// [`vary_with_origin`]), whatever the request: whether it carries these headers depends on
    /// the `Origin` it was asked with.
    pub fn actual(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        match origin {
            Some(origin) if self.allows(origin) => vec![
                ("access-control-allow-origin", origin.to_owned()),
                ("access-control-expose-headers", EXPOSE_HEADERS.to_owned()),
            ],
            _ => Vec::new(),
        }
    }

    /// The answer to a request `OPTIONS` with `Origin` and `Access-Control-Request-Method`
    /// (a CORS preflight): its headers, for a 204. A disallowed origin, or a method the API
    /// does not answer, gets only `Vary` (the browser then refuses the actual request).
    pub fn preflight(&self, origin: &str, request_method: &str) -> Vec<(&'static str, String)> {
        let mut headers = vec![("vary", PREFLIGHT_VARY.to_owned())];
        let method_known = ALLOW_METHODS
            .split(", ")
            .any(|m| m.eq_ignore_ascii_case(request_method.trim()));
        if self.allows(origin) && method_known {
            headers.extend([
                ("access-control-allow-origin", origin.to_owned()),
                ("access-control-allow-methods", ALLOW_METHODS.to_owned()),
                ("access-control-allow-headers", ALLOW_HEADERS.to_owned()),
                ("access-control-max-age", MAX_AGE_SECS.to_string()),
            ]);
        }
        headers
    }
}

/// The CORS response headers, which a shared cache must not store (they belong to one
/// requester's `Origin`; the edge adds them per request instead).
pub const RESPONSE_HEADERS: [&str; 2] = [
    "access-control-allow-origin",
    "access-control-expose-headers",
];

/// `value` (a `Vary` field value, or none) with `origin` among its members: what a response
/// whose CORS headers depend on the request's `Origin` must say to caches.
pub fn vary_with_origin(value: Option<&str>) -> String {
    let members: Vec<&str> = value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    if members
        .iter()
        .any(|m| m.eq_ignore_ascii_case("origin") || *m == "*")
    {
        return members.join(", ");
    }
    members
        .into_iter()
        .chain(std::iter::once("origin"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a response header field is left out of what a shared cache stores: the CORS
/// headers belong to one requester's `Origin` (the edge adds them per request).
pub fn per_requester(name: &str) -> bool {
    RESPONSE_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

/// A stored response's `Vary` without the members that only concern CORS (`Origin` and the
/// preflight's request headers): the edge fetches without an `Origin` and adds the CORS
/// headers and `Vary: origin` per request, so what it stores does not vary by them. `None`
/// when nothing is left.
pub fn vary_for_storage(value: &str) -> Option<String> {
    let kept: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|m| {
            !m.is_empty()
                && ![
                    "origin",
                    "access-control-request-method",
                    "access-control-request-headers",
                ]
                .iter()
                .any(|cors| m.eq_ignore_ascii_case(cors))
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_default_allows_any_local_port_only() {
        let policy = CorsPolicy::default();
        for ok in [
            "http://localhost:5173",
            "http://127.0.0.1:8000",
            "http://localhost",
            "http://LOCALHOST:3000",
        ] {
            assert!(policy.allows(ok), "{ok}");
        }
        for no in [
            "https://localhost:5173",
            "http://127.0.0.2:80",
            "http://localhost.evil.com",
            "http://evil.com",
            "null",
            "",
            "http://localhost:99999",
            "http://localhost:5173/path",
            "http://localhost:+5173",
        ] {
            assert!(!policy.allows(no), "{no}");
        }
    }

    #[test]
    fn lists_and_the_wildcard() {
        let policy = CorsPolicy::parse("https://movies.example.com, http://[::1]:8080").unwrap();
        assert!(policy.allows("https://movies.example.com"));
        assert!(!policy.allows("https://movies.example.com:8443"));
        assert!(!policy.allows("http://movies.example.com"));
        assert!(policy.allows("http://[::1]:8080"));
        assert!(!policy.allows("http://[::1]:8081"));
        let any = CorsPolicy::parse("*").unwrap();
        assert!(any.allows("https://anything.example") && any.allows("null"));
        let none = CorsPolicy::parse("").unwrap();
        assert!(!none.allows("http://localhost:1"));
        for bad in [
            "movies.example.com",
            "https://x.com/path",
            "http://x:port",
            "https://",
        ] {
            assert_eq!(
                CorsPolicy::parse(bad),
                Err(BadOrigin(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn vary_and_storage() {
        assert_eq!(vary_with_origin(None), "origin");
        assert_eq!(
            vary_with_origin(Some("accept-encoding")),
            "accept-encoding, origin"
        );
        assert_eq!(vary_with_origin(Some("Origin, x")), "Origin, x");
        assert_eq!(vary_with_origin(Some("*")), "*");
        assert_eq!(
            vary_for_storage(
                "origin, access-control-request-method, access-control-request-headers"
            ),
            None
        );
        assert_eq!(
            vary_for_storage("Accept-Encoding, Origin").as_deref(),
            Some("Accept-Encoding")
        );
        assert!(per_requester("Access-Control-Allow-Origin"));
        assert!(!per_requester("etag"));
    }

    #[test]
    fn headers_of_actual_responses_and_preflights() {
        let policy = CorsPolicy::parse("https://movies.example.com").unwrap();
        let actual = policy.actual(Some("https://movies.example.com"));
        assert_eq!(
            actual,
            [
                (
                    "access-control-allow-origin",
                    "https://movies.example.com".to_owned()
                ),
                ("access-control-expose-headers", EXPOSE_HEADERS.to_owned()),
            ]
        );
        assert!(policy.actual(Some("https://evil.example")).is_empty());
        assert!(policy.actual(None).is_empty());

        let preflight = policy.preflight("https://movies.example.com", "POST");
        let get = |name: &str| {
            preflight
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        // `Authorization` by name: a `*` would not cover it.
        assert!(
            get("access-control-allow-headers")
                .unwrap()
                .contains("authorization")
        );
        assert_eq!(get("access-control-allow-methods"), Some(ALLOW_METHODS));
        assert_eq!(get("access-control-max-age"), Some("7200"));
        let refused = policy.preflight("https://evil.example", "GET");
        assert_eq!(refused, [("vary", PREFLIGHT_VARY.to_owned())]);
        let unknown_method = policy.preflight("https://movies.example.com", "DELETE");
        assert_eq!(unknown_method, [("vary", PREFLIGHT_VARY.to_owned())]);
    }
}
