//! `x-request-id`: which identifiers a client may choose, so that one request can be followed
//! from the edge to the origin's log line.
//!
//! A client's id is kept when it is well formed: 1 to 128 characters, each an ASCII letter or
//! digit or one of `-_.:/+=`. So ids from a client's own tracing (UUIDs, W3C trace ids, base64
//! tokens) pass through unchanged. Anything else (empty, too long, spaces, control
//! characters, non-ASCII) is replaced by a fresh id, so a header value can never break a log
//! line or a downstream header. Generating the fresh id needs randomness and is left to the
//! caller: the origin and the edge each have their own source.

/// The header name (lower case, as HTTP/2 writes it).
pub const HEADER: &str = "x-request-id";

/// The longest id kept.
pub const MAX_LEN: usize = 128;

/// Whether `value` may be used as a request id as it is.
pub fn is_well_formed(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
}

/// The client's id if it is well formed, else `None` (the caller generates one).
pub fn accept(value: Option<&str>) -> Option<&str> {
    value.filter(|v| is_well_formed(v))
}

/// A fresh id from 128 random bits: 32 lower-case hex digits.
pub fn format(random: u128) -> String {
    format!("{random:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_ordinary_ids_and_refuses_the_rest() {
        for ok in [
            "3f2a9c1e-5b7d-4e0a-9f11-0c2d4e6f8a9b",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "abc",
            "dGVzdA==",
        ] {
            assert!(is_well_formed(ok), "{ok}");
        }
        for bad in ["", " ", "a b", "a\nb", "é", &"x".repeat(129), "a;b", "a,b"] {
            assert!(!is_well_formed(bad), "{bad:?}");
        }
        assert_eq!(accept(Some("abc")), Some("abc"));
        assert_eq!(accept(Some("a b")), None);
        assert_eq!(accept(None), None);
    }

    #[test]
    fn formats_fresh_ids() {
        assert_eq!(format(0xab), "000000000000000000000000000000ab");
        assert!(is_well_formed(&format(u128::MAX)));
    }
}
