//! `Cache-Status` members (RFC 9211).
//!
//! RFC 9211 2: "Its value is a List. Each member of the List represents a cache that has
//! handled the request. The first member represents the cache closest to the origin server,
//! and the last member represents the cache closest to the user (possibly including the user
//! agent's cache itself if it appends a value)." and "When adding a value to the Cache-Status
//! header field, caches SHOULD preserve the existing field value, to allow debugging of the
//! entire chain of caches handling the request." So each layer appends its member after the
//! ones the layers nearer the origin wrote ([`CacheStatus::append_to`]), and the outcome a
//! client saw is the last member's ([`client_side_hit`]): through the edge,
//! `origin; fwd=miss; stored, edge; hit; ttl=86399`.

use std::fmt;

/// Why a cache forwarded a request (RFC 9211 2.2, `fwd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// "The cache was configured to not handle this request."
    Bypass,
    /// "The request method's semantics require the request to be forwarded."
    Method,
    /// "The cache did not contain any responses that could be used to satisfy this request
    /// (to be used when an implementation cannot distinguish between uri-miss and
    /// vary-miss)." The SPEC's headers use `miss` (both caches key by URI alone, so the more
    /// specific `uri-miss`, "The cache did not contain any responses that matched the request
    /// URI.", would also be true).
    Miss,
    /// "The cache was able to select a response for the request, but it was stale."
    Stale,
}

impl Forward {
    fn as_str(self) -> &'static str {
        match self {
            Forward::Bypass => "bypass",
            Forward::Method => "method",
            Forward::Miss => "miss",
            Forward::Stale => "stale",
        }
    }
}

/// One cache's entry in `Cache-Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStatus {
    /// The cache's name (`origin`, `edge`).
    pub cache: &'static str,
    /// Served from this cache without going further (`hit`).
    pub hit: bool,
    /// Why the request went further, if it did.
    pub fwd: Option<Forward>,
    /// The response was stored by this cache (`stored`).
    pub stored: bool,
    /// The request waited for another request's identical computation (`collapsed`).
    pub collapsed: bool,
    /// Remaining freshness in seconds; negative for a stale response (`ttl`).
    pub ttl: Option<i64>,
    /// Implementation detail (`detail`), e.g. `stale` or `cache-unavailable`.
    pub detail: Option<&'static str>,
}

impl CacheStatus {
    /// An entry with nothing set.
    pub fn new(cache: &'static str) -> Self {
        CacheStatus {
            cache,
            hit: false,
            fwd: None,
            stored: false,
            collapsed: false,
            ttl: None,
            detail: None,
        }
    }

    /// A fresh hit with `ttl` seconds left.
    pub fn hit(cache: &'static str, ttl: i64) -> Self {
        CacheStatus {
            hit: true,
            ttl: Some(ttl),
            ..Self::new(cache)
        }
    }

    /// A stale copy served because the source of truth failed; `ttl` is negative.
    pub fn stale(cache: &'static str, ttl: i64) -> Self {
        CacheStatus {
            hit: true,
            ttl: Some(ttl),
            detail: Some("stale"),
            ..Self::new(cache)
        }
    }

    /// A miss that was computed and (if `stored`) stored.
    pub fn miss(cache: &'static str, stored: bool) -> Self {
        CacheStatus {
            fwd: Some(Forward::Miss),
            stored,
            ..Self::new(cache)
        }
    }

    /// Not cacheable by this cache at all (writes, health, admin).
    pub fn bypass(cache: &'static str, fwd: Forward) -> Self {
        CacheStatus {
            fwd: Some(fwd),
            ..Self::new(cache)
        }
    }

    /// The field value with this member appended after `upstream`, the value the next hop
    /// towards the origin sent (if any), which is kept as it is (see the module
    /// documentation).
    pub fn append_to(&self, upstream: Option<&str>) -> String {
        match upstream.map(str::trim).filter(|s| !s.is_empty()) {
            Some(upstream) => format!("{upstream}, {self}"),
            None => self.to_string(),
        }
    }
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.cache)?;
        if self.hit {
            f.write_str("; hit")?;
        }
        if let Some(fwd) = self.fwd {
            write!(f, "; fwd={}", fwd.as_str())?;
        }
        if self.stored {
            f.write_str("; stored")?;
        }
        if self.collapsed {
            f.write_str("; collapsed")?;
        }
        if let Some(ttl) = self.ttl {
            write!(f, "; ttl={ttl}")?;
        }
        if let Some(detail) = self.detail {
            write!(f, "; detail={detail}")?;
        }
        Ok(())
    }
}

/// Whether the cache closest to the client answered without forwarding: the last member of
/// a `Cache-Status` value carries `hit` (`origin; fwd=miss; stored, edge; hit`, or
/// `origin; hit` straight from the origin).
///
/// RFC 9211 2.1: `hit` "indicates that the request was satisfied by the cache; that is, it
/// was not forwarded, and the response was obtained from the cache." Each cache appends its
/// member (see the module documentation), so the last member is the one closest to the user.
/// Commas and semicolons inside quoted strings (a `detail="..."`) do not split members or
/// parameters; `hit=?1` is `hit`, `hit=?0` is not. With several `Cache-Status` field lines,
/// pass the last one (or all of them joined with `, `).
pub fn client_side_hit(value: &str) -> bool {
    split_unquoted(value, ',')
        .pop()
        .map(str::trim)
        .filter(|member| !member.is_empty())
        .is_some_and(|member| {
            split_unquoted(member, ';')
                .into_iter()
                .skip(1)
                .any(|param| matches!(param.trim(), "hit" | "hit=?1"))
        })
}

/// `value` split at each `separator` outside a quoted string (RFC 8941 3.3.3: a String is
/// delimited by `"`, with `\"` and `\\` escaped inside).
fn split_unquoted(value: &str, separator: char) -> Vec<&str> {
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&value[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_layer_closest_to_the_client() {
        assert!(client_side_hit("origin; hit; ttl=30"));
        assert!(!client_side_hit("origin; fwd=miss; stored"));
        // The edge forwarded, whatever the origin did.
        assert!(!client_side_hit(
            "origin; hit; ttl=3, edge; fwd=miss; stored"
        ));
        assert!(client_side_hit(
            "origin; fwd=miss; stored, edge; hit; ttl=86399"
        ));
        assert!(client_side_hit(
            "origin; fwd=miss; stored, edge; hit; ttl=-5; detail=stale-if-error"
        ));
        assert!(!client_side_hit("origin; fwd=method, edge; fwd=method"));
        // Structured-field Booleans.
        assert!(client_side_hit("edge; hit=?1"));
        assert!(!client_side_hit("edge; hit=?0"));
        // Quoted strings do not split members or parameters.
        assert!(!client_side_hit(
            "origin; hit, edge; fwd=miss; detail=\"a, b; hit\""
        ));
        assert!(client_side_hit("origin; fwd=miss, \"CDN, \\\"x\\\"\"; hit"));
        // Nothing, or only a cache's name.
        assert!(!client_side_hit(""));
        assert!(!client_side_hit("origin; hit, "));
        assert!(!client_side_hit("hit"));
    }

    #[test]
    fn formats() {
        assert_eq!(
            CacheStatus::hit("origin", 42).to_string(),
            "origin; hit; ttl=42"
        );
        assert_eq!(
            CacheStatus::miss("origin", true).to_string(),
            "origin; fwd=miss; stored"
        );
        assert_eq!(
            CacheStatus::stale("origin", -5).to_string(),
            "origin; hit; ttl=-5; detail=stale"
        );
        assert_eq!(
            CacheStatus::bypass("origin", Forward::Method).to_string(),
            "origin; fwd=method"
        );
        let collapsed = CacheStatus {
            collapsed: true,
            ..CacheStatus::miss("origin", false)
        };
        assert_eq!(collapsed.to_string(), "origin; fwd=miss; collapsed");
    }

    #[test]
    fn appends_after_the_layers_nearer_the_origin() {
        let edge = CacheStatus::miss("edge", true);
        assert_eq!(
            edge.append_to(Some("origin; fwd=miss; stored")),
            "origin; fwd=miss; stored, edge; fwd=miss; stored"
        );
        assert_eq!(
            CacheStatus::hit("edge", 86399).append_to(Some(" origin; fwd=miss; stored ")),
            "origin; fwd=miss; stored, edge; hit; ttl=86399"
        );
        assert_eq!(edge.append_to(None), "edge; fwd=miss; stored");
        assert_eq!(edge.append_to(Some("  ")), "edge; fwd=miss; stored");
        // What a layer appends is what a reader of the last member sees.
        assert!(client_side_hit(
            &CacheStatus::hit("edge", 1).append_to(Some("origin; fwd=miss"))
        ));
        assert!(!client_side_hit(
            &CacheStatus::miss("edge", true).append_to(Some("origin; hit; ttl=5"))
        ));
    }
}
