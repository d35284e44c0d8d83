//! Personal reads at the edge: which requests are a user's own, and the keys the edge keeps
//! them under, bound to the verified user and to that user's generation at the edge's
//! location.
//!
//! `GET /users/{id}/recommendations` and `GET /users/{id}/profile` are `private, no-cache` for
//! browsers and every other cache. The origin allows this product's edge, and no other cache,
//! to keep them a few seconds with a targeted field (RFC 9213):
//! `Movierec-Edge-Cache-Control: max-age=5, must-revalidate` ([`crate::cache_control`]). The
//! edge verifies the token itself ([`crate::token`]) and keys each entry by
//! - the user the token names (a request for another user's path is a 403 before any lookup,
//!   so no key of user A is ever looked up with user B's token);
//! - that user's generation at this location: a value the edge replaces whenever a rating of
//!   that user passes through it, before the rating's response returns, with the one the
//!   origin's answer carries (`x-user-generation`, the user's rating version) or, when the
//!   outcome is unknown, a new random one. Entries under an older generation are never looked
//!   up again (read-your-writes at this location);
//! - the canonical path and query: only the parameters the origin reads, validated as it
//!   validates them (same 400s), defaults filled in, `exclude` as a sorted set.
//!
//! Another location never sees that rating pass: it serves its entry until the entry's
//! `max-age` (5 s) runs out, then revalidates it with `If-None-Match`, so a client elsewhere
//! may read the older recommendations for at most five seconds after a rating.

use crate::edge_key::{decode_segment, encode_segment, query_param};
use crate::params::{Exclude, Limit, ParamError, Strategy, UserId};

/// The response field carrying the user's generation after a rating (the origin's rating
/// version for that user), for the edge; removed before the client sees it.
pub const GENERATION_HEADER: &str = "x-user-generation";

/// How long a personal entry is kept once stored, in seconds: long past its `max-age`, so that
/// a later read revalidates it with its ETag (a 304 and no body) instead of fetching it again.
pub const KEEP_SECS: u64 = 3600;

/// A user's resource under `/users/{id}/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `GET /users/{id}/profile`.
    Profile,
    /// `GET /users/{id}/recommendations`.
    Recommendations,
    /// `POST /users/{id}/ratings`.
    Ratings,
}

impl Resource {
    /// The route's name in the edge's counters: `profile`, `recommendations`, `ratings`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Profile => "profile",
            Resource::Recommendations => "recommendations",
            Resource::Ratings => "ratings",
        }
    }
}

/// A request path of a user's resource: `/users/{id}/profile`, `/users/{id}/recommendations`
/// or `/users/{id}/ratings`, with the id segment as sent (percent-encoded). Matched raw, as
/// the origin's router matches; the id is checked after the token, in the origin's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonalPath<'a> {
    /// The `{id}` segment, raw.
    pub raw_id: &'a str,
    /// Which resource.
    pub resource: Resource,
}

impl<'a> PersonalPath<'a> {
    /// The personal path `path` names, if any.
    pub fn parse(path: &'a str) -> Option<Self> {
        let rest = path.strip_prefix("/users/")?;
        let (raw_id, tail) = rest.split_once('/')?;
        let resource = match tail {
            "profile" => Resource::Profile,
            "recommendations" => Resource::Recommendations,
            "ratings" => Resource::Ratings,
            _ => return None,
        };
        (!raw_id.is_empty()).then_some(PersonalPath { raw_id, resource })
    }

    /// The user the path names, as the origin extracts it: percent-decoded, then
    /// [`UserId::parse`] (`invalid_id`). `None` for a segment that is not UTF-8 once decoded,
    /// which the origin answers itself (`invalid_path`).
    pub fn user(&self) -> Option<Result<UserId, ParamError>> {
        decode_segment(self.raw_id).map(|id| UserId::parse(&id))
    }
}

/// The canonical path and query of a personal read of `user` (`query` raw, without `?`):
/// the URL the edge fetches and the end of its key. The parameters are validated as the
/// origin validates them, in its order (`n`, `strategy`, `exclude`); `genre` is kept as
/// given, ASCII lower-cased (the origin matches it case-insensitively and answers an unknown
/// one with 404). `None` for [`Resource::Ratings`], which is never read.
pub fn read_key(
    user: UserId,
    resource: Resource,
    query: Option<&str>,
) -> Result<Option<String>, ParamError> {
    let query = query.unwrap_or("");
    Ok(match resource {
        Resource::Profile => Some(format!("/users/{}/profile", user.0)),
        Resource::Ratings => None,
        Resource::Recommendations => {
            let n = Limit::parse("n", query_param(query, "n").as_deref(), Limit::DEFAULT_N)?;
            let strategy = Strategy::parse(query_param(query, "strategy").as_deref())?;
            let mut key = format!(
                "/users/{}/recommendations?n={}&strategy={}",
                user.0,
                n.get(),
                strategy.as_str()
            );
            if let Some(raw) = query_param(query, "exclude") {
                let exclude = Exclude::parse(&raw)?;
                let ids: Vec<String> = exclude.sorted().iter().map(|id| id.to_string()).collect();
                key.push_str("&exclude=");
                key.push_str(&ids.join(","));
            }
            if let Some(genre) = query_param(query, "genre") {
                key.push_str("&genre=");
                key.push_str(&encode_segment(&genre.to_ascii_lowercase()));
            }
            Some(key)
        }
    })
}

/// Whether a generation from the origin may be used in a key: 1 to 64 ASCII letters, digits,
/// `-` or `_`.
pub fn valid_generation(generation: &str) -> bool {
    (1..=64).contains(&generation.len())
        && generation
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The path of the entry holding `user`'s generation at a location.
pub fn generation_key(user: UserId) -> String {
    format!("/__edge/generation/users/{}", user.0)
}

/// The path of the entry holding a personal read (`read_key`) under `generation`.
pub fn entry_key(generation: &str, read_key: &str) -> String {
    format!("/__edge/personal/{generation}{read_key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(resource: Resource, query: &str) -> String {
        read_key(UserId(7), resource, Some(query)).unwrap().unwrap()
    }

    #[test]
    fn paths() {
        assert_eq!(
            PersonalPath::parse("/users/7/profile"),
            Some(PersonalPath {
                raw_id: "7",
                resource: Resource::Profile
            })
        );
        assert_eq!(
            PersonalPath::parse("/users/%37/recommendations").map(|p| p.user()),
            Some(Some(Ok(UserId(7))))
        );
        assert_eq!(
            PersonalPath::parse("/users/x/ratings").map(|p| p.user().unwrap().unwrap_err().code()),
            Some("invalid_id")
        );
        for other in [
            "/users/7",
            "/users//profile",
            "/users/7/profile/",
            "/users/7/other",
            "/movies/7",
            "/users/7/profile/x",
        ] {
            assert_eq!(PersonalPath::parse(other), None, "{other}");
        }
    }

    #[test]
    fn canonical_keys() {
        assert_eq!(key(Resource::Profile, "x=1"), "/users/7/profile");
        assert_eq!(
            key(Resource::Recommendations, ""),
            "/users/7/recommendations?n=10&strategy=hybrid"
        );
        assert_eq!(
            key(
                Resource::Recommendations,
                "utm=1&strategy=popular&n=05&exclude=9,3,9&genre=Sci-Fi"
            ),
            "/users/7/recommendations?n=5&strategy=popular&exclude=3,9&genre=sci-fi"
        );
        // The last occurrence counts, as in the origin's query map.
        assert_eq!(
            key(Resource::Recommendations, "n=3&n=4"),
            "/users/7/recommendations?n=4&strategy=hybrid"
        );
        assert_eq!(
            key(Resource::Recommendations, "genre=children%27s"),
            "/users/7/recommendations?n=10&strategy=hybrid&genre=children%27s"
        );
        assert_eq!(read_key(UserId(7), Resource::Ratings, None), Ok(None));
    }

    #[test]
    fn invalid_parameters_are_the_origins_400s() {
        let code = |query: &str| {
            read_key(UserId(7), Resource::Recommendations, Some(query))
                .unwrap_err()
                .code()
        };
        assert_eq!(code("n=0"), "invalid_limit");
        assert_eq!(code("n=101&strategy=nope"), "invalid_limit");
        assert_eq!(code("strategy=nope"), "invalid_strategy");
        assert_eq!(code("exclude="), "invalid_exclude");
        assert_eq!(code("exclude=1,x"), "invalid_exclude");
    }

    #[test]
    fn keys_bind_user_and_generation() {
        assert_eq!(generation_key(UserId(7)), "/__edge/generation/users/7");
        assert_eq!(
            entry_key("42", "/users/7/profile"),
            "/__edge/personal/42/users/7/profile"
        );
        assert!(valid_generation("42"));
        assert!(valid_generation("e-1f_a"));
        assert!(!valid_generation(""));
        assert!(!valid_generation("../x"));
        assert!(!valid_generation(&"a".repeat(65)));
    }
}
