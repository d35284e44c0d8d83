//! The application-cache families and their Redis keys.
//!
//! Keys follow the design's names (`recommendations:user:{id}:n:{n}:strategy:{s}`, ...), with
//! the user part written as a Redis Cluster hash tag, `{user:42}`, so that all of one user's
//! keys, including the generation token that invalidates them, live in one slot: one `MGET`
//! reads a value together with its token, on one Redis or a cluster alike. An optional
//! namespace prefix lets several deployments (or test runs) share one Redis.

use crate::params::{MovieId, Strategy, UserId};

/// A family of cached values: one TTL rule, one line in the hit-rate statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// A user's recommendations for one `n` and strategy.
    Recommendations,
    /// The popular list (the top 100; smaller limits are served from it).
    Popular,
    /// A user's profile.
    Profile,
    /// One movie's metadata.
    Metadata,
    /// A user's state for the recommender (binary: their ratings as of a PostgreSQL version,
    /// the folded-in embedding and what updates it), brought up to date, never invalidated.
    Embedding,
    /// The genre list and each genre's top list.
    Genres,
    /// A movie's nearest neighbours in one model (the top 100; smaller limits are cut from
    /// it).
    Similar,
}

impl Family {
    /// Every family, in the order statistics list them.
    pub const ALL: [Family; 7] = [
        Family::Recommendations,
        Family::Popular,
        Family::Profile,
        Family::Metadata,
        Family::Embedding,
        Family::Genres,
        Family::Similar,
    ];

    /// The family's name in metrics and statistics.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Recommendations => "recommendations",
            Family::Popular => "popular",
            Family::Profile => "profile",
            Family::Metadata => "metadata",
            Family::Embedding => "embedding",
            Family::Genres => "genres",
            Family::Similar => "similar",
        }
    }
}

/// Builds keys under an optional namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySpace {
    prefix: String,
}

/// A namespace that would break hash tags or key parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache namespace `{0}` may only hold ASCII letters, digits, `-` and `_`")]
pub struct BadNamespace(pub String);

impl KeySpace {
    /// A key space; an empty namespace gives the bare design names.
    pub fn new(namespace: &str) -> Result<Self, BadNamespace> {
        if !namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(BadNamespace(namespace.to_owned()));
        }
        let prefix = if namespace.is_empty() {
            String::new()
        } else {
            format!("{namespace}:")
        };
        Ok(KeySpace { prefix })
    }

    /// `recommendations:{user:42}:n:10:strategy:hybrid`
    pub fn recommendations(&self, user: UserId, n: u32, strategy: Strategy) -> String {
        format!(
            "{}recommendations:{{user:{}}}:n:{n}:strategy:{}",
            self.prefix,
            user.0,
            strategy.as_str()
        )
    }

    /// `user:profile:{user:42}`
    pub fn profile(&self, user: UserId) -> String {
        format!("{}user:profile:{{user:{}}}", self.prefix, user.0)
    }

    /// `embeddings:{user:42}`
    pub fn embedding(&self, user: UserId) -> String {
        format!("{}embeddings:{{user:{}}}", self.prefix, user.0)
    }

    /// `user:gen:{user:42}`: the token every cached value of this user was computed under.
    /// Replacing it invalidates all of them at once, whatever their `n` and strategy.
    pub fn user_generation(&self, user: UserId) -> String {
        format!("{}user:gen:{{user:{}}}", self.prefix, user.0)
    }

    /// The prefixes of the shared families' keys (metadata, lists, genres): what every
    /// instance asks Redis to tell it of changes to (`CLIENT TRACKING ... PREFIX`). None is a
    /// prefix of another, as Redis requires.
    pub fn shared_prefixes(&self) -> [String; 3] {
        [
            format!("{}movie:", self.prefix),
            format!("{}movies:", self.prefix),
            format!("{}genres:", self.prefix),
        ]
    }

    /// `movies:popular:limit:100`: the one popular list stored; every limit is a prefix of it.
    pub fn popular(&self) -> String {
        format!("{}movies:popular:limit:100", self.prefix)
    }

    /// `movie:metadata:7`
    pub fn movie(&self, movie: MovieId) -> String {
        format!("{}movie:metadata:{}", self.prefix, movie.0)
    }

    /// `movie:similar:7:model:als-20261125T190000Z-1a2b3c4d`: the movie's 100 nearest
    /// neighbours in that model (every limit is a prefix of it). The model version is part of
    /// the key, so a new model never serves an old model's neighbours, and nothing needs
    /// invalidating: the old model's keys expire. Under the tracked `movie:` prefix.
    pub fn similar(&self, movie: MovieId, model_version: &str) -> String {
        format!(
            "{}movie:similar:{}:model:{model_version}",
            self.prefix, movie.0
        )
    }

    /// `dataset:epoch`: the data set's epoch the instances serve, kept so that an instance
    /// starting while PostgreSQL is down still serves the current epoch's cached values.
    pub fn dataset_epoch(&self) -> String {
        format!("{}dataset:epoch", self.prefix)
    }

    /// `genres:all`
    pub fn genres(&self) -> String {
        format!("{}genres:all", self.prefix)
    }

    /// `genres:top:sci-fi:limit:100`: one stored list per genre, every limit a prefix of it.
    pub fn genre_top(&self, slug: &str) -> String {
        format!("{}genres:top:{slug}:limit:100", self.prefix)
    }
}

/// `{key}:refresh`: the short-lived claim of one early refresh of `key`, taken with `SET NX`
/// so that one instance recomputes a hot entry. It keeps the key's hash tag, so it lives in
/// the key's slot.
pub fn refresh_claim(key: &str) -> String {
    format!("{key}:refresh")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_names_with_hash_tags() {
        let k = KeySpace::default();
        assert_eq!(
            k.recommendations(UserId(42), 10, Strategy::Hybrid),
            "recommendations:{user:42}:n:10:strategy:hybrid"
        );
        assert_eq!(k.profile(UserId(42)), "user:profile:{user:42}");
        assert_eq!(k.embedding(UserId(42)), "embeddings:{user:42}");
        assert_eq!(k.user_generation(UserId(42)), "user:gen:{user:42}");
        assert_eq!(k.popular(), "movies:popular:limit:100");
        assert_eq!(k.dataset_epoch(), "dataset:epoch");
        assert_eq!(k.movie(MovieId(7)), "movie:metadata:7");
        assert_eq!(k.genre_top("sci-fi"), "genres:top:sci-fi:limit:100");
        assert_eq!(
            k.similar(MovieId(7), "als-20261125T190000Z-1a2b3c4d"),
            "movie:similar:7:model:als-20261125T190000Z-1a2b3c4d"
        );
        assert_eq!(
            refresh_claim(&k.embedding(UserId(42))),
            "embeddings:{user:42}:refresh"
        );
    }

    #[test]
    fn tracked_prefixes_cover_the_shared_keys_only() {
        let k = KeySpace::new("t1").unwrap();
        let prefixes = k.shared_prefixes();
        let tracked = |key: &str| prefixes.iter().any(|p| key.starts_with(p.as_str()));
        for shared in [
            k.movie(MovieId(7)),
            k.popular(),
            k.genres(),
            k.genre_top("drama"),
            k.similar(MovieId(7), "als-1"),
        ] {
            assert!(tracked(&shared), "{shared} is tracked");
        }
        for personal in [
            k.recommendations(UserId(1), 10, Strategy::Hybrid),
            k.profile(UserId(1)),
            k.embedding(UserId(1)),
            k.user_generation(UserId(1)),
            k.dataset_epoch(),
        ] {
            assert!(!tracked(&personal), "{personal} is not tracked");
        }
        for a in &prefixes {
            for b in &prefixes {
                assert!(a == b || !(a.starts_with(b.as_str()) || b.starts_with(a.as_str())));
            }
        }
        assert!(
            !KeySpace::new("t2")
                .unwrap()
                .movie(MovieId(7))
                .starts_with(&prefixes[0])
        );
    }

    #[test]
    fn namespaces_prefix_and_keep_the_tag() {
        let k = KeySpace::new("t-1").unwrap();
        assert_eq!(k.profile(UserId(1)), "t-1:user:profile:{user:1}");
        assert!(KeySpace::new("a{b}").is_err());
        assert!(KeySpace::new("a:b").is_err());
    }
}
