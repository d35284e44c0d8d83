//! Strong ETags and `If-None-Match` evaluation.
//!
//! An ETag is the first 128 bits of the SHA-256 of the exact response body: stable across
//! processes, instances and releases (never `DefaultHasher`), so every origin instance and the
//! edge agree on it.

use sha2::{Digest, Sha256};

/// The strong entity tag of `body`, quoted: `"3f2a…"` (32 hex digits).
pub fn strong_etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// Strips the weakness indicator: `W/"x"` → `"x"`.
fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// Whether an `If-None-Match` header value matches the current `etag`, so that the answer is
/// 304 Not Modified.
///
/// RFC 9110 13.1.2: "A recipient MUST use the weak comparison function when comparing
/// entity tags for If-None-Match", and "If the field value is "*", the condition is false if
/// the origin server has a current representation for the target resource."
/// RFC 9110 8.8.3.2: "Weak comparison: two entity tags are equivalent if their opaque-tags
/// match character-by-character, regardless of either or both being tagged as "weak"."
pub fn if_none_match_matches(header: &str, etag: &str) -> bool {
    let current = opaque(etag.trim());
    header
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || opaque(candidate) == current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_value() {
        // Pinned so that a change of hash (and with it every client's and edge's ETag) is noticed.
        assert_eq!(
            strong_etag(b"hello"),
            "\"2cf24dba5fb0a30e26e83b2ac5b9e29e\""
        );
    }

    #[test]
    fn weak_comparison() {
        let tag = strong_etag(b"body");
        assert!(if_none_match_matches(&tag, &tag));
        assert!(if_none_match_matches(&format!("W/{tag}"), &tag));
        assert!(if_none_match_matches(&format!("\"other\", {tag}"), &tag));
        assert!(if_none_match_matches("*", &tag));
        assert!(!if_none_match_matches("\"other\"", &tag));
        assert!(!if_none_match_matches("", &tag));
    }
}
