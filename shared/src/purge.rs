//! The body of the edge's purge endpoint, and the cache keys it removes.
//!
//! `{"paths": ["/movies/1", "/movies/popular?limit=5"]}`: each path is normalised exactly as a
//! request for it would be ([`EdgeRoute::parse`]), so purging a path removes the entry that
//! request would hit. Defaults are filled in like any request's: `/movies/popular` purges
//! `/movies/popular?limit=20`; other lengths are named explicitly (`?limit=5`).

use crate::edge_key::{EdgeReject, EdgeRoute};
use crate::params::ParamError;
use serde::{Deserialize, Serialize};

/// The purge request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeRequest {
    /// Paths, each with an optional query: `/movies/1`, `/genres/drama/top?limit=5`.
    pub paths: Vec<String>,
}

/// The purge response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeReceipt {
    /// The keys the edge removed, as [`PurgeRequest::keys`] gave them.
    pub purged: Vec<String>,
}

/// Why a purge request was refused (400); `code()` is the error body's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurgeError {
    /// No paths at all.
    #[error("`paths` is empty: give at least one path to purge")]
    Empty,
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
        if self.paths.is_empty() {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(paths: &[&str]) -> PurgeRequest {
        PurgeRequest {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn body_shape() {
        let body: PurgeRequest =
            serde_json::from_str(r#"{"paths": ["/movies/1", "/genres"]}"#).unwrap();
        assert_eq!(body, request(&["/movies/1", "/genres"]));
        let receipt = PurgeReceipt {
            purged: vec!["/movies/1".into()],
        };
        assert_eq!(
            serde_json::to_string(&receipt).unwrap(),
            r#"{"purged":["/movies/1"]}"#
        );
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
