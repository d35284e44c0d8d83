//! Validated request input. Each newtype has a `parse` that either yields a value the rest of
//! the code can trust or a [`ParamError`] that names the problem in the API's error vocabulary.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a piece of input was refused. `code()` is the `error.code` of the JSON error body.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParamError {
    /// A path id that is not a positive integer.
    #[error("`{0}` is not a valid id: expected a positive integer")]
    InvalidId(String),
    /// A `limit` or `n` outside 1..=100 or not a number.
    #[error("`{value}` is not a valid {name}: expected an integer from 1 to {max}")]
    InvalidLimit {
        /// The parameter's name (`limit`, `n`).
        name: &'static str,
        /// What the client sent.
        value: String,
        /// The largest value accepted.
        max: u32,
    },
    /// An unknown recommendation strategy.
    #[error("`{0}` is not a strategy: expected one of collaborative, popular, genre, hybrid")]
    InvalidStrategy(String),
    /// A rating outside 0.5..=5.0 or not a multiple of 0.5.
    #[error("{0} is not a valid rating: expected 0.5 to 5.0 in steps of 0.5")]
    InvalidRating(String),
    /// An `exclude` list that is not 1 to [`Exclude::MAX`] comma-separated movie ids.
    #[error("`{value}` is not a valid exclude list: {why}")]
    InvalidExclude {
        /// What the client sent (cut to a readable length).
        value: String,
        /// What is wrong with it.
        why: String,
    },
}

impl ParamError {
    /// The stable, snake_case error code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            ParamError::InvalidId(_) => "invalid_id",
            ParamError::InvalidLimit { .. } => "invalid_limit",
            ParamError::InvalidStrategy(_) => "invalid_strategy",
            ParamError::InvalidRating(_) => "invalid_rating",
            ParamError::InvalidExclude { .. } => "invalid_exclude",
        }
    }
}

fn parse_id(raw: &str) -> Result<i32, ParamError> {
    // Digits only: no sign, no whitespace, no leading `+`; and it must fit a PostgreSQL INTEGER.
    if raw.is_empty() || raw.len() > 10 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParamError::InvalidId(raw.to_owned()));
    }
    match raw.parse::<i32>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ParamError::InvalidId(raw.to_owned())),
    }
}

/// A movie id: a positive 32-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MovieId(pub i32);

impl MovieId {
    /// Parses a path segment.
    pub fn parse(raw: &str) -> Result<Self, ParamError> {
        parse_id(raw).map(MovieId)
    }
}

/// A user id: a positive 32-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserId(pub i32);

impl UserId {
    /// Parses a path segment (or a JWT `sub`).
    pub fn parse(raw: &str) -> Result<Self, ParamError> {
        parse_id(raw).map(UserId)
    }
}

/// A list length: 1 ≤ N ≤ 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit(u32);

impl Limit {
    /// The largest list any endpoint returns.
    pub const MAX: u32 = 100;
    /// The default list length of `/movies/popular` and `/genres/{genre}/top`.
    pub const DEFAULT: Limit = Limit(20);
    /// The default `n` of the recommendations endpoint.
    pub const DEFAULT_N: Limit = Limit(10);
    /// The longest list: what is stored, and cut to shorter limits.
    pub const LONGEST: Limit = Limit(Self::MAX);
    /// The default `limit` of `/movies/{id}/similar`.
    pub const DEFAULT_SIMILAR: Limit = Limit(10);

    /// Parses the query value of the parameter `name`; `None` (absent) gives `default`.
    pub fn parse(
        name: &'static str,
        raw: Option<&str>,
        default: Limit,
    ) -> Result<Self, ParamError> {
        let Some(raw) = raw else { return Ok(default) };
        let err = || ParamError::InvalidLimit {
            name,
            value: raw.to_owned(),
            max: Self::MAX,
        };
        if raw.is_empty() || raw.len() > 3 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        match raw.parse::<u32>() {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Limit(n)),
            _ => Err(err()),
        }
    }

    /// The value.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// The `exclude` filter of the recommendations: 1 to [`Exclude::MAX`] movie ids, comma
/// separated (`exclude=1,50,172`), each a valid id as [`MovieId::parse`] reads a path id.
/// Duplicates are allowed and count towards the bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclude(Vec<MovieId>);

impl Exclude {
    /// The most ids one request may exclude.
    pub const MAX: usize = 100;

    /// Parses the query value.
    pub fn parse(raw: &str) -> Result<Self, ParamError> {
        let err = |why: String| {
            let mut value: String = raw.chars().take(64).collect();
            if value.len() < raw.len() {
                value.push('…');
            }
            ParamError::InvalidExclude { value, why }
        };
        let parts: Vec<&str> = raw.split(',').collect();
        if parts.len() > Self::MAX {
            return Err(err(format!(
                "{} ids given, at most {} may be excluded",
                parts.len(),
                Self::MAX
            )));
        }
        parts
            .into_iter()
            .map(|part| {
                MovieId::parse(part).map_err(|_| {
                    err(format!(
                        "`{part}` is not a movie id: expected 1 to {} comma-separated positive \
                         integers",
                        Self::MAX
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Exclude)
    }

    /// The excluded ids, ascending, each once: the set the origin applies, whatever the order
    /// or repetitions it was given in.
    pub fn sorted(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.0.iter().map(|m| m.0).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Whether `movie` is excluded.
    pub fn contains(&self, movie: i32) -> bool {
        self.0.iter().any(|m| m.0 == movie)
    }

    /// The ids, as given.
    pub fn ids(&self) -> &[MovieId] {
        &self.0
    }
}

/// A rating: 0.5 to 5.0 in steps of 0.5, stored exactly.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
pub struct Rating(f32);

impl Rating {
    /// Validates a rating sent by a client.
    pub fn parse(value: f64) -> Result<Self, ParamError> {
        let doubled = value * 2.0;
        if value.is_finite() && (0.5..=5.0).contains(&value) && doubled == doubled.round() {
            Ok(Rating(value as f32))
        } else {
            Err(ParamError::InvalidRating(value.to_string()))
        }
    }

    /// The value.
    pub fn get(self) -> f32 {
        self.0
    }
}

/// How recommendations are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Matrix-factorisation scores (needs a trained model).
    Collaborative,
    /// The most rated movies the user has not seen.
    Popular,
    /// Top-rated movies of the user's favourite genres.
    Genre,
    /// A blend of the above (the default).
    Hybrid,
}

impl Strategy {
    /// Every strategy, in a fixed order (warming, tests).
    pub const ALL: [Strategy; 4] = [
        Strategy::Collaborative,
        Strategy::Popular,
        Strategy::Genre,
        Strategy::Hybrid,
    ];

    /// Parses the `strategy` query value; `None` gives the default, `hybrid`.
    pub fn parse(raw: Option<&str>) -> Result<Self, ParamError> {
        match raw {
            None => Ok(Strategy::Hybrid),
            Some("collaborative") => Ok(Strategy::Collaborative),
            Some("popular") => Ok(Strategy::Popular),
            Some("genre") => Ok(Strategy::Genre),
            Some("hybrid") => Ok(Strategy::Hybrid),
            Some(other) => Err(ParamError::InvalidStrategy(other.to_owned())),
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Collaborative => "collaborative",
            Strategy::Popular => "popular",
            Strategy::Genre => "genre",
            Strategy::Hybrid => "hybrid",
        }
    }
}

/// The URL slug of a genre name: lower case, apostrophes dropped, other non-alphanumerics
/// collapsed to `-` (`Children's` → `childrens`, `Sci-Fi` → `sci-fi`).
pub fn genre_slug(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars().filter(|c| *c != '\'') {
        if c.is_alphanumeric() {
            slug.extend(c.to_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_integers_only() {
        assert_eq!(MovieId::parse("42"), Ok(MovieId(42)));
        for bad in [
            "0",
            "-1",
            "+1",
            "abc",
            "",
            "1.5",
            " 1",
            "99999999999",
            "2147483648",
        ] {
            assert_eq!(
                MovieId::parse(bad),
                Err(ParamError::InvalidId(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(UserId::parse("2147483647"), Ok(UserId(i32::MAX)));
    }

    #[test]
    fn limits_default_and_bounds() {
        assert_eq!(
            Limit::parse("limit", None, Limit::DEFAULT),
            Ok(Limit::DEFAULT)
        );
        assert_eq!(
            Limit::parse("limit", Some("1"), Limit::DEFAULT)
                .unwrap()
                .get(),
            1
        );
        assert_eq!(
            Limit::parse("limit", Some("100"), Limit::DEFAULT)
                .unwrap()
                .get(),
            100
        );
        for bad in ["0", "101", "-5", "ten", "", "1e2", "0100"] {
            let err = Limit::parse("limit", Some(bad), Limit::DEFAULT).unwrap_err();
            assert_eq!(err.code(), "invalid_limit", "{bad}");
        }
    }

    #[test]
    fn ratings_in_half_steps() {
        for ok in [0.5, 1.0, 3.5, 5.0] {
            assert_eq!(Rating::parse(ok).unwrap().get() as f64, ok);
        }
        for bad in [0.0, 0.25, 4.3, 5.5, -1.0, f64::NAN, f64::INFINITY] {
            assert!(Rating::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn strategies() {
        assert_eq!(Strategy::parse(None), Ok(Strategy::Hybrid));
        for s in Strategy::ALL {
            assert_eq!(Strategy::parse(Some(s.as_str())), Ok(s));
        }
        assert_eq!(
            Strategy::parse(Some("random")).unwrap_err().code(),
            "invalid_strategy"
        );
    }

    #[test]
    fn exclude_lists() {
        let ids = |raw: &str| {
            Exclude::parse(raw).map(|e| e.ids().iter().map(|m| m.0).collect::<Vec<_>>())
        };
        assert_eq!(ids("1"), Ok(vec![1]));
        assert_eq!(ids("1,50,1"), Ok(vec![1, 50, 1]));
        let hundred = (1..=100)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(ids(&hundred).unwrap().len(), 100);
        assert!(Exclude::parse("7,8").unwrap().contains(8));
        assert!(!Exclude::parse("7,8").unwrap().contains(9));
        let too_many = format!("{hundred},101");
        for bad in [
            "",
            "1,",
            ",1",
            "1,,2",
            "a",
            "0",
            "1, 2",
            "-1",
            "1;2",
            too_many.as_str(),
        ] {
            let err = Exclude::parse(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_exclude", "{bad}");
        }
        assert!(
            Exclude::parse(&too_many)
                .unwrap_err()
                .to_string()
                .contains("101 ids given, at most 100")
        );
    }

    #[test]
    fn slugs() {
        assert_eq!(genre_slug("Children's"), "childrens");
        assert_eq!(genre_slug("Sci-Fi"), "sci-fi");
        assert_eq!(genre_slug("Film-Noir"), "film-noir");
        assert_eq!(genre_slug("Drama"), "drama");
    }
}
