//! Which requests the edge caches, and under which normalised key.
//!
//! Only the five public routes are cacheable at the edge: `GET /movies/{id}`,
//! `/movies/popular`, `/movies/{id}/similar`, `/genres` and `/genres/{genre}/top`. Their key is a canonical path and query: only the parameters the origin reads, defaults filled in, in a fixed order, so that
//! requests differing only in unknown parameters (`?utm=x`) or spelling (`?limit=05`,
//! `/movies/%34%32`, `/genres/SCI-FI/top`) share one entry (SPEC section 6).
//!
//! Normalisation must never merge requests the origin answers differently, so it follows the
//! origin's own parsing exactly:
//! - ids and limits go through [`MovieId::parse`] and [`Limit::parse`], the origin's own
//!   validation, so an invalid one is rejected with the same `code()` and message
//!   (`invalid_id`, `invalid_limit`), and `limit=05` is 5 there as here;
//! - path segments are matched raw (`/movies/%70opular` is the id route, like axum's router)
//!   and then percent-decoded; a segment that is not UTF-8 once decoded is left to the origin
//!   (its 400 `invalid_path`), as are unknown paths (its 404);
//! - the query is decoded as `application/x-www-form-urlencoded` (`+` is a space, bad UTF-8
//!   replaced), like axum's `Query`; a parameter given twice counts by its **last**
//!   occurrence, because the origin collects the query into a `HashMap`, which keeps the last
//!   (`?limit=5&limit=10` is 10 on both);
//! - a genre is lower-cased in ASCII only, as the origin matches genre names and slugs with
//!   `eq_ignore_ascii_case`. A name and its slug that differ beyond case (`children's`,
//!   `childrens`) get separate entries holding the same body: harmless, and it keeps
//!   the edge from answering for genres the origin would 404.
//!
//! Fetch [`EdgeRoute::key`] from the origin (not the client's raw URL), so that what is stored
//! is exactly what the key names, and build the Cache API request URL from it.

use crate::params::{Limit, MovieId, ParamError};

/// One of the edge's cacheable routes, with its validated parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteKind {
    /// `GET /movies/{id}`.
    Movie(MovieId),
    /// `GET /movies/popular?limit=N`.
    Popular {
        /// The list length, default 20.
        limit: Limit,
    },
    /// `GET /movies/{id}/similar?limit=N`.
    Similar {
        /// The movie.
        id: MovieId,
        /// The list length, default 10.
        limit: Limit,
    },
    /// `GET /genres`.
    Genres,
    /// `GET /genres/{genre}/top?limit=N`.
    GenreTop {
        /// The genre as the client named it (name or slug), percent-decoded and ASCII
        /// lower-cased; the origin resolves it.
        genre: String,
        /// The list length, default 20.
        limit: Limit,
    },
}

impl RouteKind {
    /// The route's name for logs and metrics: `movie`, `popular`, `similar`, `genres`,
    /// `genre_top`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RouteKind::Movie(_) => "movie",
            RouteKind::Popular { .. } => "popular",
            RouteKind::Similar { .. } => "similar",
            RouteKind::Genres => "genres",
            RouteKind::GenreTop { .. } => "genre_top",
        }
    }
}

/// A cacheable request: its route and its canonical key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeRoute {
    /// Which route, with its parameters.
    pub kind: RouteKind,
    /// The canonical path and query, e.g. `/movies/popular?limit=20`: the cache key and the
    /// URL to fetch from the origin.
    pub key: String,
}

/// Why a request gets no edge route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EdgeReject {
    /// A cacheable route with an invalid id or limit: answer 400 with the origin's error
    /// body, `ErrorBody::new(err.code(), err.to_string())` (or forward it; the origin says the
    /// same).
    #[error(transparent)]
    Invalid(#[from] ParamError),
    /// Not one of the five public routes (or a path only the origin can judge): forward it
    /// to the origin untouched.
    #[error("not a route the edge caches")]
    NotCacheable,
}

impl EdgeRoute {
    /// Maps a request's path (as sent, percent-encoded) and raw query string (without `?`;
    /// `None` or empty when there is none) to its route and key.
    pub fn parse(path: &str, query: Option<&str>) -> Result<Self, EdgeReject> {
        let Some(rest) = path.strip_prefix('/') else {
            return Err(EdgeReject::NotCacheable);
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let kind = match segments.as_slice() {
            ["movies", "popular"] => RouteKind::Popular {
                limit: limit(query)?,
            },
            ["movies", raw_id] => {
                let id = decode_segment(raw_id).ok_or(EdgeReject::NotCacheable)?;
                RouteKind::Movie(MovieId::parse(&id)?)
            }
            ["movies", raw_id, "similar"] => {
                // The id before the limit, as the origin extracts them.
                let id = decode_segment(raw_id).ok_or(EdgeReject::NotCacheable)?;
                RouteKind::Similar {
                    id: MovieId::parse(&id)?,
                    limit: limit_or(query, Limit::DEFAULT_SIMILAR)?,
                }
            }
            ["genres"] => RouteKind::Genres,
            ["genres", raw_genre, "top"] => {
                // The path is extracted before the query at the origin: check it first too.
                let genre = decode_segment(raw_genre).ok_or(EdgeReject::NotCacheable)?;
                // `.` and `..` would be removed from the key's URL as dot segments (even
                // encoded as `%2E`), so the key could not name them; no genre is called so.
                if genre == "." || genre == ".." {
                    return Err(EdgeReject::NotCacheable);
                }
                RouteKind::GenreTop {
                    genre: genre.to_ascii_lowercase(),
                    limit: limit(query)?,
                }
            }
            _ => return Err(EdgeReject::NotCacheable),
        };
        let key = match &kind {
            RouteKind::Movie(id) => format!("/movies/{}", id.0),
            RouteKind::Popular { limit } => format!("/movies/popular?limit={}", limit.get()),
            RouteKind::Similar { id, limit } => {
                format!("/movies/{}/similar?limit={}", id.0, limit.get())
            }
            RouteKind::Genres => "/genres".to_owned(),
            RouteKind::GenreTop { genre, limit } => {
                format!(
                    "/genres/{}/top?limit={}",
                    encode_segment(genre),
                    limit.get()
                )
            }
        };
        Ok(EdgeRoute { kind, key })
    }
}

/// The `limit` query parameter of the lists, validated as the origin does.
fn limit(query: Option<&str>) -> Result<Limit, ParamError> {
    limit_or(query, Limit::DEFAULT)
}

/// The `limit` query parameter, `default` when absent, validated as the origin does.
fn limit_or(query: Option<&str>, default: Limit) -> Result<Limit, ParamError> {
    let raw = query_param(query.unwrap_or(""), "limit");
    Limit::parse("limit", raw.as_deref(), default)
}

/// The value of the last `name` parameter of a form-encoded query, decoded.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(key) == name).then(|| form_decode(value))
        })
        .next_back()
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte, invalid UTF-8
/// replaced by U+FFFD.
fn form_decode(raw: &str) -> String {
    String::from_utf8_lossy(&percent_decode(raw, true)).into_owned()
}

/// A path segment percent-decoded; `None` if the result is not UTF-8.
pub(crate) fn decode_segment(raw: &str) -> Option<String> {
    if raw.is_empty() {
        // Nothing the edge could cache: the origin answers `/movies/` with 404 (no route)
        // and `/genres//top` with 404 `genre_not_found`. Leave both to it.
        return None;
    }
    String::from_utf8(percent_decode(raw, false)).ok()
}

/// Decodes `%XX` escapes (a `%` not followed by two hex digits stays as it is).
fn percent_decode(raw: &str, plus_is_space: bool) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(high << 4 | low);
            i += 3;
            continue;
        }
        out.push(if byte == b'+' && plus_is_space {
            b' '
        } else {
            byte
        });
        i += 1;
    }
    out
}

fn hex(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

/// Percent-encodes every byte but the unreserved characters (RFC 3986 2.3: ALPHA, DIGIT,
/// `-`, `.`, `_`, `~`), so the key is one canonical spelling of the segment.
pub(crate) fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str, query: Option<&str>) -> String {
        EdgeRoute::parse(path, query).unwrap().key
    }

    fn reject_code(path: &str, query: Option<&str>) -> &'static str {
        match EdgeRoute::parse(path, query) {
            Err(EdgeReject::Invalid(err)) => err.code(),
            Err(EdgeReject::NotCacheable) => "not_cacheable",
            Ok(route) => panic!("{path}?{query:?} was accepted as {route:?}"),
        }
    }

    #[test]
    fn pinned_keys() {
        assert_eq!(key("/movies/42", None), "/movies/42");
        assert_eq!(key("/movies/popular", None), "/movies/popular?limit=20");
        assert_eq!(key("/genres", None), "/genres");
        assert_eq!(key("/movies/1/similar", None), "/movies/1/similar?limit=10");
        assert_eq!(
            key("/genres/Sci-Fi/top", None),
            "/genres/sci-fi/top?limit=20"
        );
        assert_eq!(
            key("/genres/Children's/top", Some("limit=3")),
            "/genres/children%27s/top?limit=3"
        );
    }

    #[test]
    fn unknown_parameters_are_dropped() {
        let plain = key("/movies/popular", Some("limit=5"));
        assert_eq!(plain, "/movies/popular?limit=5");
        assert_eq!(key("/movies/popular", Some("utm=x&limit=5")), plain);
        assert_eq!(key("/movies/popular", Some("limit=5&utm=x&&")), plain);
        assert_eq!(key("/movies/42", Some("utm=x&limit=5")), "/movies/42");
        assert_eq!(key("/genres", Some("limit=7")), "/genres");
        assert_eq!(
            key("/movies/1/similar", Some("utm=x&limit=10&n=3")),
            "/movies/1/similar?limit=10"
        );
        assert_eq!(
            key("/movies/popular", Some("")),
            key("/movies/popular", None)
        );
    }

    #[test]
    fn values_are_canonicalised_as_the_origin_reads_them() {
        // Limit::parse reads up to three digits, so leading zeros are accepted there: 05 is 5.
        assert_eq!(
            key("/movies/popular", Some("limit=05")),
            "/movies/popular?limit=5"
        );
        assert_eq!(
            key("/movies/popular", Some("limit=020")),
            "/movies/popular?limit=20"
        );
        assert_eq!(
            key("/movies/popular", Some("limit=%35")),
            "/movies/popular?limit=5"
        );
        assert_eq!(
            key("/movies/popular", Some("li%6Dit=5")),
            "/movies/popular?limit=5"
        );
        assert_eq!(key("/movies/042", None), "/movies/42");
        assert_eq!(key("/movies/%34%32", None), "/movies/42");
        assert_eq!(
            key("/movies/%30%31/similar", Some("limit=007&limit=010")),
            "/movies/1/similar?limit=10"
        );
        assert_eq!(
            key("/movies/1/similar", Some("limit=7&utm=x")),
            "/movies/1/similar?limit=7"
        );
        assert_eq!(
            key("/movies/1/similar", Some("limit=10")),
            key("/movies/1/similar", None)
        );
        assert_eq!(
            key("/genres/SCI%2DFI/top", Some("limit=100")),
            "/genres/sci-fi/top?limit=100"
        );
    }

    #[test]
    fn duplicated_parameters_take_the_last_like_the_origin() {
        assert_eq!(
            key("/movies/popular", Some("limit=5&limit=10")),
            "/movies/popular?limit=10"
        );
        assert_eq!(
            reject_code("/movies/popular", Some("limit=5&limit=0")),
            "invalid_limit"
        );
    }

    #[test]
    fn invalid_parameters_are_rejected_with_the_origins_error() {
        for bad in [
            "0", "101", "-1", "ten", "", "1e2", "0100", "+5", "%2B5", "5%",
        ] {
            let query = format!("limit={bad}");
            assert_eq!(
                reject_code("/movies/popular", Some(&query)),
                "invalid_limit",
                "{query}"
            );
            assert_eq!(
                reject_code("/genres/drama/top", Some(&query)),
                "invalid_limit",
                "{query}"
            );
            assert_eq!(
                reject_code("/movies/1/similar", Some(&query)),
                "invalid_limit",
                "{query}"
            );
        }
        // A bare `limit` is an empty value at the origin too.
        assert_eq!(
            reject_code("/movies/popular", Some("limit")),
            "invalid_limit"
        );
        for bad in [
            "0",
            "-1",
            "abc",
            "1.5",
            "2147483648",
            "%70opular",
            "popular",
        ] {
            if bad != "popular" {
                assert_eq!(
                    reject_code(&format!("/movies/{bad}"), None),
                    "invalid_id",
                    "{bad}"
                );
            }
            // The id is judged before the limit, as at the origin.
            assert_eq!(
                reject_code(&format!("/movies/{bad}/similar"), Some("limit=0")),
                "invalid_id",
                "{bad}"
            );
        }
        // Same message as the origin's.
        let Err(EdgeReject::Invalid(err)) = EdgeRoute::parse("/movies/popular", Some("limit=0"))
        else {
            panic!("accepted");
        };
        assert_eq!(
            err.to_string(),
            "`0` is not a valid limit: expected an integer from 1 to 100"
        );
    }

    #[test]
    fn other_paths_are_not_cacheable() {
        for path in [
            "",
            "movies/1",
            "/",
            "/movies",
            "/movies/",
            "/movies/1/",
            "/movies/1/extra",
            "/movies/1/similar/",
            "/movies/1/similar/extra",
            "/movies//similar",
            "/movies/%FF/similar",
            "/Movies/1",
            "/genres/",
            "/genres/drama",
            "/genres/drama/top/",
            "/genres//top",
            "/genres/%2E%2E/top",
            "/genres/./top",
            "/genres/%FF/top",
            "/movies/%FF",
            "/users/1/profile",
            "/users/1/recommendations",
            "/health",
            "/metrics",
            "/admin/cache/stats",
        ] {
            assert_eq!(reject_code(path, None), "not_cacheable", "{path:?}");
        }
    }

    #[test]
    fn genres_are_decoded_lowercased_and_reencoded() {
        let route = EdgeRoute::parse("/genres/Film%20Noir/top", Some("limit=2")).unwrap();
        assert_eq!(
            route.kind,
            RouteKind::GenreTop {
                genre: "film noir".into(),
                limit: Limit::parse("limit", Some("2"), Limit::DEFAULT).unwrap(),
            }
        );
        assert_eq!(route.key, "/genres/film%20noir/top?limit=2");
        // An encoded slash stays inside the segment.
        assert_eq!(key("/genres/a%2Fb/top", None), "/genres/a%2Fb/top?limit=20");
        // Only ASCII is lower-cased, as the origin's eq_ignore_ascii_case compares.
        assert_eq!(
            key("/genres/%C3%89/top", None),
            "/genres/%C3%89/top?limit=20"
        );
        // A literal `%` that is no escape is kept, and encoded in the key.
        assert_eq!(key("/genres/100%/top", None), "/genres/100%25/top?limit=20");
    }

    #[test]
    fn kinds_name_themselves() {
        let kinds = [
            ("/movies/1", "movie"),
            ("/movies/popular", "popular"),
            ("/movies/1/similar", "similar"),
            ("/genres", "genres"),
            ("/genres/drama/top", "genre_top"),
        ];
        for (path, name) in kinds {
            assert_eq!(EdgeRoute::parse(path, None).unwrap().kind.as_str(), name);
        }
        assert_eq!(
            EdgeRoute::parse("/movies/7", None).unwrap().kind,
            RouteKind::Movie(MovieId(7))
        );
        assert_eq!(
            EdgeRoute::parse("/movies/7/similar", Some("limit=10"))
                .unwrap()
                .kind,
            RouteKind::Similar {
                id: MovieId(7),
                limit: Limit::DEFAULT_SIMILAR,
            }
        );
    }
}
