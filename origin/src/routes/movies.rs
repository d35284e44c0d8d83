//! `GET /movies/popular`, `GET /movies/{id}` and `GET /movies/{id}/similar`: public,
//! cacheable everywhere.

use crate::error::AppError;
use crate::http::{PathParam, QueryMap, conditional, tagged};
use crate::reads;
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use shared::cache_control;
use shared::dto::{ErrorBody, Movie, PopularMovies, SimilarMovies};
use shared::params::{Limit, MovieId};
use shared::purge_marks::tag;

/// The movie routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/movies/popular", get(popular))
        .route("/movies/{id}", get(movie))
        .route("/movies/{id}/similar", get(similar))
}

/// The most rated movies
///
/// Most rated first; served from the cache, revalidated with its ETag.
#[utoipa::path(
    get,
    path = "/movies/popular",
    tag = "movies",
    params(crate::openapi::ListQuery),
    responses(
        (status = 200, description = "The most rated movies.", body = PopularMovies),
        (status = 304, description = crate::openapi::NOT_MODIFIED),
        (status = 400, description = "`invalid_limit`.", body = ErrorBody),
        (status = 503, description = crate::openapi::DATABASE_UNAVAILABLE, body = ErrorBody),
    )
)]
async fn popular(
    State(state): State<AppState>,
    QueryMap(query): QueryMap,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let limit = Limit::parse(
        "limit",
        query.get("limit").map(String::as_str),
        Limit::DEFAULT,
    )?;
    let served = reads::popular(&state).await?;
    let response = conditional(
        &headers,
        reads::render_list(&served, "movies", limit),
        cache_control::POPULAR,
        &served.status,
    );
    Ok(tagged(response, &[tag::POPULAR]))
}

/// One movie
///
/// Its metadata and rating statistics.
#[utoipa::path(
    get,
    path = "/movies/{id}",
    tag = "movies",
    params(("id" = i32, Path, minimum = 1, description = "The movie's id.")),
    responses(
        (status = 200, description = "The movie.", body = Movie),
        (status = 304, description = crate::openapi::NOT_MODIFIED),
        (status = 400, description = "`invalid_id`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`movie_not_found`.", body = ErrorBody),
        (status = 503, description = crate::openapi::DATABASE_UNAVAILABLE, body = ErrorBody),
    )
)]
async fn movie(
    State(state): State<AppState>,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let id = MovieId::parse(&id)?;
    let served = reads::movie(&state, id).await?;
    let response = conditional(
        &headers,
        served.whole(),
        cache_control::MOVIE,
        &served.status,
    );
    Ok(tagged(response, &[&tag::movie(id.0)]))
}

/// Movies similar to one
///
/// The movies closest to this one in the model being served (on a small catalogue its
/// precomputed neighbours by co-loving users, else the cosine of the ALS factors), closest
/// first, with the score. Cached per movie and model version
/// (a new model never serves old neighbours), and at the edge like the other public reads.
#[utoipa::path(
    get,
    path = "/movies/{id}/similar",
    tag = "movies",
    params(
        ("id" = i32, Path, minimum = 1, description = "The movie's id."),
        crate::openapi::SimilarQuery,
    ),
    responses(
        (status = 200, description = "The movie's nearest neighbours; an empty list for a movie \
            the model does not know yet (added since it was trained).", body = SimilarMovies),
        (status = 304, description = crate::openapi::NOT_MODIFIED),
        (status = 400, description = "`invalid_id`, `invalid_path`, `invalid_limit`.", body = ErrorBody),
        (status = 404, description = "`movie_not_found`.", body = ErrorBody),
        (status = 503, description = "`model_unavailable`: no trained model is loaded; or \
            `database_unavailable` (retry shortly).", body = ErrorBody),
    )
)]
async fn similar(
    State(state): State<AppState>,
    PathParam(id): PathParam<String>,
    QueryMap(query): QueryMap,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let id = MovieId::parse(&id)?;
    let limit = Limit::parse(
        "limit",
        query.get("limit").map(String::as_str),
        Limit::DEFAULT_SIMILAR,
    )?;
    let served = reads::similar(&state, id).await?;
    let response = conditional(
        &headers,
        reads::render_list(&served, "similar", limit),
        cache_control::SIMILAR,
        &served.status,
    );
    Ok(tagged(response, &[&tag::similar(id.0)]))
}
