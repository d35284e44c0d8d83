//! The access pattern of SPEC section 1, as a seeded sampler of requests. Pure: no I/O, so the
//! shape of the traffic is unit tested rather than trusted.
//!
//! - 70% of recommendation (and profile and rating) requests come from 20% of the users, the
//!   power users;
//! - 40% of movie reads go to the 100 most popular movies;
//! - the request kinds follow a configurable [`Mix`] (mostly reads, a few rating writes).
//!
//! Which users are the power users is a seeded choice: the generator speaks HTTP only and
//! cannot know the origin's own activity ranking. The hit rate does not depend on which users
//! they are, only on how concentrated the traffic is.

use rand::Rng;
use rand::SeedableRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// Share of the users who are power users.
pub const POWER_USER_SHARE: f64 = 0.2;
/// Share of per-user requests made by power users.
pub const POWER_USER_TRAFFIC: f64 = 0.7;
/// Share of movie reads that go to the top 100.
pub const TOP_MOVIE_TRAFFIC: f64 = 0.4;

/// The kinds of request, one per endpoint the pattern exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `GET /users/{id}/recommendations?n=10`.
    Recommendations,
    /// `GET /movies/{id}`.
    Movie,
    /// `GET /movies/popular?limit=N`.
    Popular,
    /// `GET /users/{id}/profile`.
    Profile,
    /// `GET /genres/{genre}/top`.
    GenreTop,
    /// `POST /users/{id}/ratings`.
    Rating,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 6] = [
        Kind::Recommendations,
        Kind::Movie,
        Kind::Popular,
        Kind::Profile,
        Kind::GenreTop,
        Kind::Rating,
    ];

    /// The name used in `--mix` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Recommendations => "recommendations",
            Kind::Movie => "movie",
            Kind::Popular => "popular",
            Kind::Profile => "profile",
            Kind::GenreTop => "genre_top",
            Kind::Rating => "rating",
        }
    }

    /// Whether the response may come from a cache (every read; never a write).
    pub fn cacheable(self) -> bool {
        self != Kind::Rating
    }

    /// Whether the request is a user's own, sent with their token.
    pub fn per_user(self) -> bool {
        matches!(self, Kind::Recommendations | Kind::Profile | Kind::Rating)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Relative weights of the request kinds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mix {
    weights: Vec<(Kind, u32)>,
}

impl Default for Mix {
    /// Mostly recommendations and metadata, a few writes: 45/25/15/8/5/2.
    fn default() -> Self {
        Mix {
            weights: vec![
                (Kind::Recommendations, 45),
                (Kind::Movie, 25),
                (Kind::Popular, 15),
                (Kind::Profile, 8),
                (Kind::GenreTop, 5),
                (Kind::Rating, 2),
            ],
        }
    }
}

/// A `--mix` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid mix {0:?}: expected kind=weight pairs such as recommendations=45,movie=25 (kinds: recommendations, movie, popular, profile, genre_top, rating) with a positive total"
)]
pub struct BadMix(pub String);

impl FromStr for Mix {
    type Err = BadMix;

    /// `recommendations=45,movie=25,...`; kinds left out get weight 0.
    fn from_str(raw: &str) -> Result<Self, BadMix> {
        let bad = || BadMix(raw.to_owned());
        let mut weights = Vec::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = pair.split_once('=').ok_or_else(bad)?;
            let kind = Kind::ALL
                .into_iter()
                .find(|k| k.name() == name.trim())
                .ok_or_else(bad)?;
            if weights.iter().any(|(k, _)| *k == kind) {
                return Err(bad());
            }
            weights.push((kind, weight.trim().parse::<u32>().map_err(|_| bad())?));
        }
        if weights.iter().map(|(_, w)| u64::from(*w)).sum::<u64>() == 0 {
            return Err(bad());
        }
        Ok(Mix { weights })
    }
}

impl Mix {
    fn pick(&self, rng: &mut impl Rng) -> Kind {
        let total: u32 = self.weights.iter().map(|(_, w)| w).sum();
        let mut roll = rng.random_range(0..total);
        for (kind, weight) in &self.weights {
            if roll < *weight {
                return *kind;
            }
            roll -= weight;
        }
        unreachable!("roll below the total weight")
    }

    /// The weight of `kind` (0 when absent).
    pub fn weight(&self, kind: Kind) -> u32 {
        self.weights
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, w)| *w)
    }
}

/// One request to make.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// A user's recommendations (`n=10`, the default strategy).
    Recommendations {
        /// The user.
        user: i32,
    },
    /// One movie's metadata.
    Movie {
        /// The movie.
        id: i32,
    },
    /// The popular list.
    Popular {
        /// `limit`.
        limit: u32,
    },
    /// A user's profile.
    Profile {
        /// The user.
        user: i32,
    },
    /// A genre's top list.
    GenreTop {
        /// The genre's slug.
        slug: String,
    },
    /// A rating write.
    Rating {
        /// The user.
        user: i32,
        /// The movie.
        movie: i32,
        /// 0.5–5.0 in steps of 0.5.
        rating: f64,
    },
}

impl Request {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Request::Recommendations { .. } => Kind::Recommendations,
            Request::Movie { .. } => Kind::Movie,
            Request::Popular { .. } => Kind::Popular,
            Request::Profile { .. } => Kind::Profile,
            Request::GenreTop { .. } => Kind::GenreTop,
            Request::Rating { .. } => Kind::Rating,
        }
    }

    /// The path and query.
    pub fn path(&self) -> String {
        match self {
            Request::Recommendations { user } => format!("/users/{user}/recommendations?n=10"),
            Request::Movie { id } => format!("/movies/{id}"),
            Request::Popular { limit } => format!("/movies/popular?limit={limit}"),
            Request::Profile { user } => format!("/users/{user}/profile"),
            Request::GenreTop { slug } => format!("/genres/{slug}/top"),
            Request::Rating { user, .. } => format!("/users/{user}/ratings"),
        }
    }

    /// The user whose token the request needs, if any.
    pub fn user(&self) -> Option<i32> {
        match self {
            Request::Recommendations { user }
            | Request::Profile { user }
            | Request::Rating { user, .. } => Some(*user),
            _ => None,
        }
    }
}

/// What the pattern draws from.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// User ids `1..=users`.
    pub users: i32,
    /// Movie ids `1..=movies`.
    pub movies: i32,
    /// The 100 most popular movies' ids (from the service itself).
    pub top: Vec<i32>,
    /// Genre slugs (from the service itself).
    pub genres: Vec<String>,
}

/// A seeded sampler of requests following the pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    catalogue: Catalogue,
    mix: Mix,
    power: Vec<i32>,
    casual: Vec<i32>,
}

impl Pattern {
    /// The pattern over `catalogue`; `seed` chooses the power users.
    pub fn new(catalogue: Catalogue, mix: Mix, seed: u64) -> Self {
        let mut users: Vec<i32> = (1..=catalogue.users.max(1)).collect();
        users.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let power_count = ((users.len() as f64 * POWER_USER_SHARE).round() as usize).max(1);
        let casual = users.split_off(power_count.min(users.len()));
        Pattern {
            catalogue,
            mix,
            power: users,
            casual,
        }
    }

    /// Whether `user` is one of the pattern's power users.
    pub fn is_power_user(&self, user: i32) -> bool {
        self.power.contains(&user)
    }

    fn user(&self, rng: &mut impl Rng) -> i32 {
        let group = if self.casual.is_empty() || rng.random_bool(POWER_USER_TRAFFIC) {
            &self.power
        } else {
            &self.casual
        };
        *group.choose(rng).expect("at least one user")
    }

    fn movie(&self, rng: &mut impl Rng) -> i32 {
        match self.catalogue.top.choose(rng) {
            Some(top) if rng.random_bool(TOP_MOVIE_TRAFFIC) => *top,
            _ => rng.random_range(1..=self.catalogue.movies.max(1)),
        }
    }

    /// The next request.
    pub fn next(&self, rng: &mut impl Rng) -> Request {
        match self.mix.pick(rng) {
            Kind::Recommendations => Request::Recommendations {
                user: self.user(rng),
            },
            Kind::Movie => Request::Movie {
                id: self.movie(rng),
            },
            Kind::Popular => Request::Popular {
                limit: *[10, 20, 20, 20, 50, 100].choose(rng).expect("non-empty"),
            },
            Kind::Profile => Request::Profile {
                user: self.user(rng),
            },
            Kind::GenreTop => match self.catalogue.genres.choose(rng) {
                Some(slug) => Request::GenreTop { slug: slug.clone() },
                None => Request::Popular { limit: 20 },
            },
            Kind::Rating => Request::Rating {
                user: self.user(rng),
                movie: self.movie(rng),
                rating: f64::from(rng.random_range(1..=10u8)) / 2.0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern() -> Pattern {
        Pattern::new(
            Catalogue {
                users: 1000,
                movies: 2000,
                top: (1..=100).map(|i| i * 7).collect(),
                genres: vec!["action".into(), "drama".into()],
            },
            Mix::default(),
            1,
        )
    }

    fn sample(n: usize) -> (Pattern, Vec<Request>) {
        let p = pattern();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let requests = (0..n).map(|_| p.next(&mut rng)).collect();
        (p, requests)
    }

    #[test]
    fn power_users_make_seventy_percent_of_user_requests() {
        let (p, requests) = sample(100_000);
        let users: Vec<i32> = requests.iter().filter_map(Request::user).collect();
        let power = users.iter().filter(|u| p.is_power_user(**u)).count();
        let share = power as f64 / users.len() as f64;
        assert!((share - 0.7).abs() < 0.01, "{share}");
        assert_eq!((1..=1000).filter(|u| p.is_power_user(*u)).count(), 200);
    }

    #[test]
    fn the_top_hundred_get_at_least_forty_percent_of_movie_reads() {
        let (p, requests) = sample(100_000);
        let movies: Vec<i32> = requests
            .iter()
            .filter_map(|r| match r {
                Request::Movie { id } => Some(*id),
                _ => None,
            })
            .collect();
        let top = movies
            .iter()
            .filter(|m| p.catalogue.top.contains(m))
            .count();
        let share = top as f64 / movies.len() as f64;
        // 40% aimed at the top, plus the top's share of the uniform rest (100 of 2000).
        assert!((share - (0.4 + 0.6 * 0.05)).abs() < 0.01, "{share}");
        assert!(movies.iter().all(|m| (1..=2000).contains(m)));
    }

    #[test]
    fn kinds_follow_the_mix_and_the_sequence_is_seeded() {
        let (_, requests) = sample(100_000);
        for kind in Kind::ALL {
            let share =
                requests.iter().filter(|r| r.kind() == kind).count() as f64 / requests.len() as f64;
            let expected = f64::from(Mix::default().weight(kind)) / 100.0;
            assert!((share - expected).abs() < 0.01, "{kind}: {share}");
        }
        assert_eq!(sample(50).1, sample(50).1);
        assert!(requests.iter().all(|r| match r {
            Request::Rating { rating, .. } =>
                (0.5..=5.0).contains(rating) && rating * 2.0 == (rating * 2.0).round(),
            _ => true,
        }));
    }

    #[test]
    fn exactly_the_per_user_kinds_carry_a_user() {
        let (_, requests) = sample(10_000);
        for request in &requests {
            assert_eq!(
                request.user().is_some(),
                request.kind().per_user(),
                "{request:?}"
            );
        }
    }

    #[test]
    fn mixes_parse_and_bad_ones_are_refused() {
        let mix: Mix = "movie=3, popular=1".parse().unwrap();
        assert_eq!((mix.weight(Kind::Movie), mix.weight(Kind::Rating)), (3, 0));
        for bad in [
            "",
            "movie",
            "movie=x",
            "films=1",
            "movie=0",
            "movie=1,movie=2",
        ] {
            assert!(bad.parse::<Mix>().is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(
            Request::Recommendations { user: 4 }.path(),
            "/users/4/recommendations?n=10"
        );
        assert_eq!(
            Request::GenreTop {
                slug: "sci-fi".into()
            }
            .path(),
            "/genres/sci-fi/top"
        );
        assert_eq!(
            Request::Popular { limit: 50 }.path(),
            "/movies/popular?limit=50"
        );
    }
}
