//! The JSON bodies of the HTTP API. The origin serialises them, the edge and the tests read
//! them; one definition keeps the three in step. With the `openapi` feature (the origin's) each
//! also describes itself as a JSON Schema for the OpenAPI document; the wasm edge leaves it off.

use serde::{Deserialize, Serialize};

/// One movie with its rating statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Movie {
    /// The movie's id.
    pub id: i32,
    /// The title, without the year.
    pub title: String,
    /// Release year, when known.
    pub year: Option<i16>,
    /// Genre names.
    pub genres: Vec<String>,
    /// Mean rating, `None` before the first rating.
    pub avg_rating: Option<f64>,
    /// Number of ratings.
    pub rating_count: i64,
}

/// `GET /movies/popular`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PopularMovies {
    /// Most rated first.
    pub movies: Vec<Movie>,
}

/// One genre.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Genre {
    /// The genre's id.
    pub id: i16,
    /// Display name, e.g. `Sci-Fi`.
    pub name: String,
    /// URL form, e.g. `sci-fi`; `/genres/{genre}/top` accepts either.
    pub slug: String,
}

/// `GET /genres`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Genres {
    /// Alphabetical.
    pub genres: Vec<Genre>,
}

/// `GET /genres/{genre}/top`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GenreTop {
    /// The genre.
    pub genre: Genre,
    /// Best average rating first, among movies with more than 50 ratings.
    pub movies: Vec<Movie>,
}

/// `GET /users/{id}/profile`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Profile {
    /// The user.
    pub user_id: i32,
    /// Number of ratings.
    pub rating_count: i64,
    /// Mean of the user's ratings.
    pub avg_rating: Option<f64>,
    /// Up to three genres the user rates most and highest.
    pub favourite_genres: Vec<String>,
    /// When the user last rated (RFC 3339).
    pub last_activity: Option<String>,
}

/// One recommended movie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recommendation {
    /// The movie.
    pub movie_id: i32,
    /// Its title.
    pub title: String,
    /// Its genres.
    pub genres: Vec<String>,
    /// Higher is better; comparable within one response only.
    pub score: f64,
    /// Why it was chosen, in a few words.
    pub reason: String,
}

/// `GET /users/{id}/recommendations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recommendations {
    /// The user.
    pub user_id: i32,
    /// The strategy used.
    pub strategy: String,
    /// The model version the scores come from, when a model was used.
    pub model_version: Option<String>,
    /// Best first; never a movie the user rated.
    pub items: Vec<Recommendation>,
}

/// One neighbour in [`SimilarMovies`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimilarMovie {
    /// The movie.
    pub movie_id: i32,
    /// Its title.
    pub title: String,
    /// Its genres.
    pub genres: Vec<String>,
    /// Cosine similarity to the movie asked about, from -1 to 1; higher is closer.
    pub score: f64,
}

/// `GET /movies/{id}/similar`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimilarMovies {
    /// The movie asked about.
    pub movie_id: i32,
    /// The model the neighbours come from.
    pub model_version: String,
    /// Closest first; never the movie itself. Empty for a movie the model does not know yet.
    pub similar: Vec<SimilarMovie>,
}

/// `POST /users/{id}/ratings` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewRating {
    /// The movie rated.
    pub movie_id: i64,
    /// 0.5 to 5.0 in steps of 0.5.
    pub rating: f64,
}

/// `POST /users/{id}/ratings` answer (201 for a new rating, 200 for a replaced one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RatingReceipt {
    /// The user.
    pub user_id: i32,
    /// The movie.
    pub movie_id: i32,
    /// The rating now stored.
    pub rating: f32,
    /// Whether an earlier rating of this movie was replaced.
    pub replaced: bool,
    /// The movie's rating count after this rating.
    pub movie_rating_count: i64,
}

/// `GET /ready`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Readiness {
    /// `ready` when PostgreSQL answers (the cache is optional), else `degraded`.
    pub status: String,
    /// `up` or `down`.
    pub postgres: String,
    /// `up` or `down`.
    pub redis: String,
    /// `loaded`, or `none` while no model is trained.
    pub model: String,
    /// Each dependency's circuit breaker: `closed` (requests use it) or `open` (requests do
    /// not wait for it; a probe checks it).
    pub breakers: BreakerStates,
}

/// The circuit breakers' states in [`Readiness`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakerStates {
    /// PostgreSQL's.
    pub postgres: String,
    /// Redis's.
    pub redis: String,
}

/// Every error body: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable snake_case code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl ErrorBody {
    /// An error body.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}
