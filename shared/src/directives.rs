//! Parsing a response's `Cache-Control` header into the directives a shared cache obeys.
//!
//! The edge reads the origin's `Cache-Control` (the values in [`crate::cache_control`]) with
//! this parser, then decides storage ([`crate::storable`]) and freshness
//! ([`crate::freshness`]) from the result. It is deliberately strict where strictness is safe:
//! a malformed or repeated lifetime makes the response stale rather than guessed at.

/// The value RFC 9111 1.2.2 prescribes for a delta-seconds that overflows: 2^31 seconds
/// (over 68 years), "infinity" for caching purposes.
pub const DELTA_SECONDS_MAX: u32 = 1 << 31;

/// The argument of a delta-seconds directive (`max-age=60`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaSeconds {
    /// A well-formed value, at most [`DELTA_SECONDS_MAX`].
    Valid(u32),
    /// Not a non-negative integer, missing, or given more than once.
    Invalid,
}

impl DeltaSeconds {
    /// The seconds, or `None` for an invalid value.
    pub fn valid(self) -> Option<u32> {
        match self {
            DeltaSeconds::Valid(secs) => Some(secs),
            DeltaSeconds::Invalid => None,
        }
    }
}

/// The response directives of one `Cache-Control` header, as a shared cache reads them.
///
/// `Default` is the absence of the header: nothing allowed explicitly, nothing forbidden.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheDirectives {
    /// `max-age`: the freshness lifetime for any cache (RFC 9111 5.2.2.1).
    pub max_age: Option<DeltaSeconds>,
    /// `s-maxage`: the freshness lifetime for shared caches, over `max-age` (RFC 9111 5.2.2.10).
    pub s_maxage: Option<DeltaSeconds>,
    /// `public`: any cache may store it, even for a request with `Authorization`.
    pub public: bool,
    /// `private`, in either form. A shared cache never stores such a response.
    pub private: bool,
    /// The field names of a qualified `private="a, b"`, lower-cased; empty when `private` is
    /// absent or unqualified (the whole response is private).
    pub private_fields: Vec<String>,
    /// `no-store`: never store any part of it.
    pub no_store: bool,
    /// `no-cache`, in either form: store, but revalidate before every reuse.
    pub no_cache: bool,
    /// The field names of a qualified `no-cache="a"`, lower-cased; empty when `no-cache` is
    /// absent or unqualified.
    pub no_cache_fields: Vec<String>,
    /// `must-revalidate`: once stale, never served without a successful revalidation.
    pub must_revalidate: bool,
    /// `proxy-revalidate`: `must-revalidate` for shared caches only.
    pub proxy_revalidate: bool,
    /// `stale-while-revalidate` (RFC 5861 3).
    pub stale_while_revalidate: Option<DeltaSeconds>,
    /// `stale-if-error` (RFC 5861 4).
    pub stale_if_error: Option<DeltaSeconds>,
}

/// A directive's argument as written.
enum Argument {
    /// `name` alone.
    Absent,
    /// `name=token` or `name="quoted string"`, unescaped.
    Value(String),
    /// An unterminated quoted string, or junk after one.
    Malformed,
}

impl CacheDirectives {
    /// Parses a `Cache-Control` value (several header lines joined with `, ` are one value).
    ///
    /// Never fails: what cannot be understood is ignored or marked [`DeltaSeconds::Invalid`].
    pub fn parse(header: &str) -> Self {
        let mut directives = CacheDirectives::default();
        let mut rest = header;
        while let Some((name, argument, tail)) = next_directive(rest) {
            directives.apply(&name.to_ascii_lowercase(), argument);
            rest = tail;
        }
        directives
    }

    fn apply(&mut self, name: &str, argument: Argument) {
        // RFC 9111 5.2: "Cache directives are identified by a token, to be compared
        // case-insensitively" (the caller lower-cases `name`).
        match name {
            "max-age" => set_delta(&mut self.max_age, &argument),
            "s-maxage" => set_delta(&mut self.s_maxage, &argument),
            "stale-while-revalidate" => set_delta(&mut self.stale_while_revalidate, &argument),
            "stale-if-error" => set_delta(&mut self.stale_if_error, &argument),
            // Flags ignore any argument: honouring `no-store="x"` as `no-store` is the
            // restrictive reading.
            "public" => self.public = true,
            "no-store" => self.no_store = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "private" => set_qualified(&mut self.private, &mut self.private_fields, &argument),
            "no-cache" => set_qualified(&mut self.no_cache, &mut self.no_cache_fields, &argument),
            // RFC 9111 5.2.3: "A cache MUST ignore unrecognized cache directives."
            _ => {}
        }
    }

    /// The freshness lifetime a shared cache uses, in seconds: `s-maxage`, else `max-age`.
    ///
    /// `None` when neither is present (there is no explicit lifetime; this crate does no
    /// heuristic freshness). An invalid or repeated value gives `Some(0)`: stale at once.
    pub fn freshness_lifetime_shared(&self) -> Option<u32> {
        // RFC 9111 4.2.1: "If the cache is shared and the s-maxage response directive
        // (Section 5.2.2.10) is present, use its value, or If the max-age response directive
        // (Section 5.2.2.1) is present, use its value, or ... Otherwise, no explicit expiration
        // time is present in the response."
        // Expires is not consulted: the origin never sends it, and without it a response is
        // simply not stored (see `storable`), which is the restrictive outcome.
        //
        // RFC 9111 4.2.1: "When there is more than one value present for a given directive
        // (e.g., two Expires header field lines or multiple Cache-Control: max-age directives),
        // either the first occurrence should be used or the response should be considered
        // stale. ... Caches are encouraged to consider responses that have invalid freshness
        // information (e.g., a max-age directive with non-integer content) to be stale."
        self.s_maxage
            .or(self.max_age)
            .map(|delta| delta.valid().unwrap_or(0))
    }

    /// Whether the lifetime [`freshness_lifetime_shared`](Self::freshness_lifetime_shared)
    /// uses is present and well formed (not a stand-in `0` for an invalid value).
    pub fn has_valid_freshness_shared(&self) -> bool {
        matches!(self.s_maxage.or(self.max_age), Some(DeltaSeconds::Valid(_)))
    }

    /// `stale-while-revalidate` in seconds; 0 when absent or invalid.
    pub fn stale_while_revalidate_secs(&self) -> u32 {
        self.stale_while_revalidate
            .and_then(DeltaSeconds::valid)
            .unwrap_or(0)
    }

    /// `stale-if-error` in seconds; 0 when absent or invalid.
    pub fn stale_if_error_secs(&self) -> u32 {
        self.stale_if_error
            .and_then(DeltaSeconds::valid)
            .unwrap_or(0)
    }

    /// Whether a shared cache must revalidate a stale copy before any reuse, which forbids
    /// serving it stale: `must-revalidate`, `proxy-revalidate` or `no-cache`.
    ///
    /// `s-maxage` is deliberately not counted here although RFC 9111 5.2.2.10 gives it the
    /// semantics of `proxy-revalidate`; see [`crate::freshness`] for why.
    pub fn forbids_stale_shared(&self) -> bool {
        // RFC 9111 4.2.4: "A cache MUST NOT generate a stale response if it is prohibited by
        // an explicit in-protocol directive (e.g., by a no-cache response directive, a
        // must-revalidate response directive, or an applicable s-maxage or proxy-revalidate
        // response directive; see Section 5.2.2)."
        self.must_revalidate || self.proxy_revalidate || self.no_cache
    }
}

/// The cache directives this product's edge follows for a response: its targeted field
/// ([`crate::cache_control::EDGE_FIELD`]) when it has one with any content, else its
/// `Cache-Control`. RFC 9213 2.2: a cache that implements a targeted field and finds it in a
/// response uses it and ignores `Cache-Control` (and `Expires`); without one, it behaves as
/// `Cache-Control` says.
pub fn for_edge<'a>(cache_control: Option<&'a str>, targeted: Option<&'a str>) -> &'a str {
    match targeted.map(str::trim) {
        Some(targeted) if !targeted.is_empty() => targeted,
        _ => cache_control.unwrap_or_default(),
    }
}

/// Parses `delta-seconds = 1*DIGIT` (RFC 9111 1.2.2), saturating at [`DELTA_SECONDS_MAX`].
///
/// Also used for the `Age` header. `None` for anything but ASCII digits (no sign, no space,
/// no fraction).
pub fn parse_delta_seconds(raw: &str) -> Option<u32> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // RFC 9111 1.2.2: "If a cache receives a delta-seconds value greater than the greatest
    // integer it can represent, or if any of its subsequent calculations overflows, the cache
    // MUST consider the value to be 2147483648 (2^31) or the greatest positive integer it can
    // conveniently represent."
    let mut value: u64 = 0;
    for digit in raw.bytes() {
        value = value * 10 + u64::from(digit - b'0');
        if value >= u64::from(DELTA_SECONDS_MAX) {
            return Some(DELTA_SECONDS_MAX);
        }
    }
    Some(value as u32)
}

fn set_delta(slot: &mut Option<DeltaSeconds>, argument: &Argument) {
    // A repeated directive is invalid whatever its values (RFC 9111 4.2.1, quoted at
    // `freshness_lifetime_shared`): the response is then treated as stale, the restrictive
    // choice, rather than trusting either occurrence.
    if slot.is_some() {
        *slot = Some(DeltaSeconds::Invalid);
        return;
    }
    // RFC 9111 5.2: "For the directives defined below that define arguments, recipients ought
    // to accept both forms, even if a specific form is required for generation." So
    // `max-age="60"` is 60.
    let parsed = match argument {
        Argument::Value(value) => parse_delta_seconds(value),
        Argument::Absent | Argument::Malformed => None,
    };
    *slot = Some(parsed.map_or(DeltaSeconds::Invalid, DeltaSeconds::Valid));
}

fn set_qualified(flag: &mut bool, fields: &mut Vec<String>, argument: &Argument) {
    let already_whole = *flag && fields.is_empty();
    *flag = true;
    let names: Vec<String> = match argument {
        Argument::Value(list) => list
            .split(',')
            .map(|name| name.trim().to_ascii_lowercase())
            .filter(|name| !name.is_empty())
            .collect(),
        Argument::Absent | Argument::Malformed => Vec::new(),
    };
    if already_whole || names.is_empty() {
        // The unqualified form (anywhere) covers the whole response, which subsumes any list.
        fields.clear();
    } else {
        for name in names {
            if !fields.contains(&name) {
                fields.push(name);
            }
        }
    }
}

/// Splits off the first directive of `input`: its name, argument and the text after it.
/// `cache-directive = token [ "=" ( token / quoted-string ) ]`, elements separated by commas
/// with optional whitespace; empty elements are skipped.
fn next_directive(input: &str) -> Option<(&str, Argument, &str)> {
    let input = input.trim_start_matches([' ', '\t', ',']);
    if input.is_empty() {
        return None;
    }
    let name_end = input.find([',', '=']).unwrap_or(input.len());
    let name = input[..name_end].trim();
    let rest = &input[name_end..];
    let Some(after_equals) = rest.strip_prefix('=') else {
        return Some((name, Argument::Absent, rest));
    };
    let after_equals = after_equals.trim_start_matches([' ', '\t']);
    if let Some(quoted) = after_equals.strip_prefix('"') {
        let (argument, tail) = quoted_string(quoted);
        return Some((name, argument, tail));
    }
    let value_end = after_equals.find(',').unwrap_or(after_equals.len());
    let value = after_equals[..value_end].trim();
    let argument = if value.contains(['"', ' ', '\t']) {
        Argument::Malformed
    } else {
        Argument::Value(value.to_owned())
    };
    Some((name, argument, &after_equals[value_end..]))
}

/// Reads the inside of a quoted string (the opening `"` already consumed): the unescaped value
/// and the text after the element.
fn quoted_string(input: &str) -> (Argument, &str) {
    let mut value = String::new();
    let mut chars = input.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            // RFC 9110 5.6.4: "The backslash octet ("\") can be used as a single-octet quoting
            // mechanism within quoted-string and comment constructs."
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => break,
            },
            '"' => {
                let tail = &input[at + 1..];
                let trimmed = tail.trim_start_matches([' ', '\t']);
                if trimmed.is_empty() || trimmed.starts_with(',') {
                    return (Argument::Value(value), trimmed);
                }
                // Junk after the closing quote: skip to the next element.
                let next = trimmed.find(',').map_or("", |comma| &trimmed[comma..]);
                return (Argument::Malformed, next);
            }
            other => value.push(other),
        }
    }
    // Unterminated: the rest of the header was swallowed, so nothing after it is trusted.
    (Argument::Malformed, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache_control;

    fn valid(secs: u32) -> Option<DeltaSeconds> {
        Some(DeltaSeconds::Valid(secs))
    }

    #[test]
    fn origin_policies_parse() {
        let movie = CacheDirectives::parse(cache_control::MOVIE);
        assert_eq!(
            movie,
            CacheDirectives {
                public: true,
                max_age: valid(3600),
                s_maxage: valid(86400),
                stale_while_revalidate: valid(3600),
                stale_if_error: valid(86400),
                ..CacheDirectives::default()
            }
        );
        assert_eq!(movie.freshness_lifetime_shared(), Some(86400));

        let genres = CacheDirectives::parse(cache_control::GENRES);
        assert_eq!(genres.freshness_lifetime_shared(), Some(86400));
        assert_eq!(genres.stale_if_error_secs(), 604800);

        let private = CacheDirectives::parse(cache_control::PRIVATE);
        assert!(private.private && private.no_cache && private.forbids_stale_shared());
        assert!(private.private_fields.is_empty());

        assert!(CacheDirectives::parse(cache_control::NO_STORE).no_store);
    }

    #[test]
    fn s_maxage_over_max_age() {
        let d = CacheDirectives::parse("max-age=60, s-maxage=600");
        assert_eq!(d.freshness_lifetime_shared(), Some(600));
        let d = CacheDirectives::parse("max-age=60");
        assert_eq!(d.freshness_lifetime_shared(), Some(60));
        let d = CacheDirectives::parse("public");
        assert_eq!(d.freshness_lifetime_shared(), None);
        assert_eq!(CacheDirectives::parse("").freshness_lifetime_shared(), None);
    }

    #[test]
    fn names_are_case_insensitive_and_whitespace_tolerated() {
        let d = CacheDirectives::parse("  PUBLIC ,Max-Age=5,,\tNO-CACHE , S-MaxAge=7 ");
        assert!(d.public && d.no_cache);
        assert_eq!(d.max_age, valid(5));
        assert_eq!(d.s_maxage, valid(7));
    }

    #[test]
    fn quoted_values_are_accepted() {
        let d = CacheDirectives::parse("max-age=\"60\", stale-if-error=\"5\"");
        assert_eq!(d.max_age, valid(60));
        assert_eq!(d.stale_if_error_secs(), 5);
    }

    #[test]
    fn invalid_values_make_the_response_stale() {
        for header in [
            "max-age=abc",
            "max-age=-1",
            "max-age=1.5",
            "max-age=",
            "max-age",
            "max-age=\"6",
            "max-age=\"6\"x",
            "max-age=6 0",
        ] {
            let d = CacheDirectives::parse(header);
            assert_eq!(d.max_age, Some(DeltaSeconds::Invalid), "{header}");
            assert_eq!(d.freshness_lifetime_shared(), Some(0), "{header}");
            assert!(!d.has_valid_freshness_shared(), "{header}");
        }
        // An invalid s-maxage is still the one a shared cache uses.
        let d = CacheDirectives::parse("max-age=60, s-maxage=soon");
        assert_eq!(d.freshness_lifetime_shared(), Some(0));
        // Invalid stale-* values allow no stale serving.
        let d = CacheDirectives::parse("stale-while-revalidate=x, stale-if-error");
        assert_eq!(d.stale_while_revalidate_secs(), 0);
        assert_eq!(d.stale_if_error_secs(), 0);
    }

    #[test]
    fn duplicated_values_are_invalid() {
        for header in ["max-age=60, max-age=60", "max-age=60, MAX-AGE=5"] {
            let d = CacheDirectives::parse(header);
            assert_eq!(d.max_age, Some(DeltaSeconds::Invalid), "{header}");
            assert_eq!(d.freshness_lifetime_shared(), Some(0), "{header}");
        }
        let d = CacheDirectives::parse("stale-while-revalidate=5, stale-while-revalidate=9");
        assert_eq!(d.stale_while_revalidate_secs(), 0);
        // Flags may repeat harmlessly.
        assert!(CacheDirectives::parse("no-store, no-store").no_store);
    }

    #[test]
    fn overflow_saturates_at_two_to_the_31() {
        let d = CacheDirectives::parse("max-age=99999999999999999999999");
        assert_eq!(d.max_age, valid(DELTA_SECONDS_MAX));
        assert_eq!(parse_delta_seconds("2147483647"), Some(2147483647));
        assert_eq!(parse_delta_seconds("2147483648"), Some(DELTA_SECONDS_MAX));
        assert_eq!(parse_delta_seconds("007"), Some(7));
        assert_eq!(parse_delta_seconds("+7"), None);
        assert_eq!(parse_delta_seconds(""), None);
    }

    #[test]
    fn qualified_private_and_no_cache() {
        let d = CacheDirectives::parse("private=\"Set-Cookie, X-User\", max-age=5");
        assert!(d.private);
        assert_eq!(d.private_fields, ["set-cookie", "x-user"]);
        assert_eq!(d.max_age, valid(5));

        let d = CacheDirectives::parse("no-cache=set-cookie");
        assert!(d.no_cache);
        assert_eq!(d.no_cache_fields, ["set-cookie"]);

        // Qualified lists merge; the unqualified form anywhere covers the whole response.
        let d = CacheDirectives::parse("private=\"a\", private=\"b, a\"");
        assert_eq!(d.private_fields, ["a", "b"]);
        for header in ["private=\"a\", private", "private, private=\"a\""] {
            let d = CacheDirectives::parse(header);
            assert!(d.private && d.private_fields.is_empty(), "{header}");
        }
    }

    #[test]
    fn quoted_strings_hide_commas_and_unescape() {
        let d = CacheDirectives::parse(r#"ext="a, max-age=1, \"q\"", max-age=9, community="x\\y""#);
        assert_eq!(d.max_age, valid(9));
        let d = CacheDirectives::parse(r#"no-cache="a\,b""#);
        assert_eq!(d.no_cache_fields, ["a", "b"]);
    }

    #[test]
    fn unknown_directives_are_ignored() {
        let d = CacheDirectives::parse("immutable, x-ext=\"1\", foo=bar, max-age=3");
        assert_eq!(
            d,
            CacheDirectives {
                max_age: valid(3),
                ..CacheDirectives::default()
            }
        );
        // An unterminated quote swallows the rest of the header: nothing after it is trusted.
        let d = CacheDirectives::parse("x=\"oops, max-age=3");
        assert_eq!(d, CacheDirectives::default());
    }

    #[test]
    fn stale_is_forbidden_by_revalidation_directives() {
        for header in [
            "must-revalidate",
            "proxy-revalidate",
            "no-cache",
            "no-cache=\"a\"",
        ] {
            assert!(
                CacheDirectives::parse(header).forbids_stale_shared(),
                "{header}"
            );
        }
        assert!(!CacheDirectives::parse(cache_control::POPULAR).forbids_stale_shared());
    }
}
