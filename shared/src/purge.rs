//! The body of the edge's purge endpoint, and the cache keys it removes.
//!
//! `{"paths": [...]}` or `{"tags": [...]}` (or both), with `"soft": true` to mark the entries
//! stale instead of removing them (see `crate::purge_marks`: a purge reaches every location).
//!
//! `{"paths": ["/movies/1", "/movies/popular?limit=5"]}`: each path is normalised exactly as a
//! request for it would be ([`EdgeRoute::parse`]), so purging a path removes the entry that
//! request would hit. Defaults are filled in like any request's: `/movies/popular` purges
//! `/movies/popular?limit=20`; other lengths are named explicitly (`?limit=5`).

use crate::edge_key::{EdgeReject, EdgeRoute};
use crate::params::ParamError;
use serde::{Deserialize, Serialize};

/// The purge request body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Paths, each with an optional query: `/movies/1`, `/genres/drama/top?limit=5`.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Tags the origin names its responses with: `movie:7`, `popular`, `genre:sci-fi`,
    /// `similar:7`, `all`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Mark the entries stale (revalidated before they are served again) instead of removing
    /// them.
    #[serde(default)]
    pub soft: bool,
}

/// The purge response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeReceipt {
    /// The keys this location held and removed (hard purges by path), as
    /// [`PurgeRequest::keys`] gave them. Every location stops serving them either way.
    pub purged: Vec<String>,
    /// The tags marked purged for every location (each path's own tag included).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Whether it was a soft purge.
    #[serde(default)]
    pub soft: bool,
}

/// Why a purge request was refused (400); `code()` is the error body's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurgeError {
    /// No paths and no tags.
    #[error("nothing to purge: give `paths` or `tags`")]
    Empty,
    /// A tag that is not 1 to 200 bytes of lower-case letters, digits and `:-_./?=&%`.
    #[error("`{0}` is not a valid tag")]
    InvalidTag(String),
    /// More tags than one request may purge.
    #[error("{0} tags given: at most 50 per purge request")]
    TooManyTags(usize),
    /// More paths than one request may purge.
    #[error("{got} paths given: at most {max} per purge request")]
    TooMany {
        /// How many were given.
        got: usize,
        /// [`PurgeRequest::MAX_PATHS`].
        max: usize,
    },
    /// A path that is not one of the edge's cached routes.
    #[error("`{0}` is not a path the edge caches")]
    NotCacheable(String),
    /// A cached route with an invalid id or limit.
    #[error("`{path}`: {source}")]
    Invalid {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        source: ParamError,
    },
}

impl PurgeError {
    /// The stable, snake_case error code: `empty_purge`, `too_many_paths`,
    /// `not_cacheable_path`, or the parameter's own (`invalid_id`, `invalid_limit`).
    pub fn code(&self) -> &'static str {
        match self {
            PurgeError::Empty => "empty_purge",
            PurgeError::InvalidTag(_) => "invalid_tag",
            PurgeError::TooManyTags(_) => "too_many_tags",
            PurgeError::TooMany { .. } => "too_many_paths",
            PurgeError::NotCacheable(_) => "not_cacheable_path",
            PurgeError::Invalid { source, .. } => source.code(),
        }
    }
}

impl PurgeRequest {
    /// The most paths one request may purge, so that one request makes a bounded number of
    /// Cache API calls.
    pub const MAX_PATHS: usize = 50;

    /// The cache keys to delete, without duplicates, in the order given; the whole request is
    /// refused if any path is not purgeable.
    pub fn keys(&self) -> Result<Vec<String>, PurgeError> {
        if self.paths.is_empty() && self.tags.is_empty() {
            return Err(PurgeError::Empty);
        }
        if self.paths.len() > Self::MAX_PATHS {
            return Err(PurgeError::TooMany {
                got: self.paths.len(),
                max: Self::MAX_PATHS,
            });
        }
        let mut keys: Vec<String> = Vec::with_capacity(self.paths.len());
        for path in &self.paths {
            let (route_path, query) = match path.split_once('?') {
                Some((route_path, query)) => (route_path, Some(query)),
                None => (path.as_str(), None),
            };
            let key = match EdgeRoute::parse(route_path, query) {
                Ok(route) => route.key,
                Err(EdgeReject::NotCacheable) => {
                    return Err(PurgeError::NotCacheable(path.clone()));
                }
                Err(EdgeReject::Invalid(source)) => {
                    return Err(PurgeError::Invalid {
                        path: path.clone(),
                        source,
                    });
                }
            };
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// Every tag to mark: the tags given, then each path's own tag
    /// ([`crate::purge_marks::path_tag`]), without duplicates; the whole request is refused if
    /// a path or a tag is not valid.
    pub fn tags_to_mark(&self) -> Result<Vec<String>, PurgeError> {
        let keys = self.keys()?;
        if self.tags.len() > crate::purge_marks::MAX_TAGS {
            return Err(PurgeError::TooManyTags(self.tags.len()));
        }
        let mut tags: Vec<String> = Vec::new();
        for tag in &self.tags {
            if !crate::purge_marks::valid_tag(tag) {
                return Err(PurgeError::InvalidTag(tag.clone()));
            }
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        tags.extend(keys.iter().map(|key| crate::purge_marks::path_tag(key)));
        Ok(tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(paths: &[&str]) -> PurgeRequest {
        PurgeRequest {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            ..PurgeRequest::default()
        }
    }

    #[test]
    fn body_shape() {
        let body: PurgeRequest =
            serde_json::from_str(r#"{"paths": ["/movies/1", "/genres"]}"#).unwrap();
        assert_eq!(body, request(&["/movies/1", "/genres"]));
        let receipt = PurgeReceipt {
            purged: vec!["/movies/1".into()],
            tags: vec!["path:/movies/1".into()],
            soft: false,
        };
        assert_eq!(
            serde_json::to_string(&receipt).unwrap(),
            r#"{"purged":["/movies/1"],"tags":["path:/movies/1"],"soft":false}"#
        );
        let by_tag: PurgeRequest =
            serde_json::from_str(r#"{"tags": ["movie:1", "all"], "soft": true}"#).unwrap();
        assert_eq!(by_tag.tags_to_mark().unwrap(), ["movie:1", "all"]);
        assert!(by_tag.soft);
        let both: PurgeRequest =
            serde_json::from_str(r#"{"paths": ["/movies/01"], "tags": ["popular"]}"#).unwrap();
        assert_eq!(both.tags_to_mark().unwrap(), ["popular", "path:/movies/1"]);
        let bad: PurgeRequest = serde_json::from_str(r#"{"tags": ["Popular"]}"#).unwrap();
        assert_eq!(bad.tags_to_mark().unwrap_err().code(), "invalid_tag");
        assert!(serde_json::from_str::<PurgeRequest>(r#"{"path": ["/movies/1"]}"#).is_err());
    }

    #[test]
    fn paths_become_normalised_keys_once() {
        let keys = request(&[
            "/movies/1",
            "/movies/popular",
            "/movies/popular?limit=20&utm=x",
            "/movies/popular?limit=5",
            "/genres/Drama/top",
            "/movies/001",
            "/movies/1/similar",
            "/movies/01/similar?limit=10",
        ])
        .keys()
        .unwrap();
        assert_eq!(
            keys,
            [
                "/movies/1",
                "/movies/popular?limit=20",
                "/movies/popular?limit=5",
                "/genres/drama/top?limit=20",
                "/movies/1/similar?limit=10",
            ]
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(request(&[]).keys().unwrap_err().code(), "empty_purge");
        let many = vec!["/genres"; PurgeRequest::MAX_PATHS + 1];
        assert_eq!(request(&many).keys().unwrap_err().code(), "too_many_paths");
        assert_eq!(
            request(&["/movies/1", "/users/1/profile"])
                .keys()
                .unwrap_err(),
            PurgeError::NotCacheable("/users/1/profile".into())
        );
        let err = request(&["/movies/popular?limit=0"]).keys().unwrap_err();
        assert_eq!(err.code(), "invalid_limit");
        assert_eq!(
            err.to_string(),
            "`/movies/popular?limit=0`: `0` is not a valid limit: expected an integer from 1 to 100"
        );
        assert_eq!(
            request(&["/movies/abc"]).keys().unwrap_err().code(),
            "invalid_id"
        );
        assert_eq!(
            request(&["https://example.com/movies/1"])
                .keys()
                .unwrap_err()
                .code(),
            "not_cacheable_path"
        );
    }
}
