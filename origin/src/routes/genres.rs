//! `GET /genres` and `GET /genres/{genre}/top`: public, cacheable everywhere. A genre is
//! named by its name (`Sci-Fi`) or slug (`sci-fi`), case-insensitively.

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
use shared::dto::{ErrorBody, GenreTop, Genres};
use shared::params::Limit;
use shared::purge_marks::tag;

/// The genre routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/genres", get(genres))
        .route("/genres/{genre}/top", get(top))
}

/// Every genre
///
/// Alphabetical; each genre's `slug` names it in `/genres/{genre}/top`.
#[utoipa::path(
    get,
    path = "/genres",
    tag = "genres",
    responses(
        (status = 200, description = "Every genre.", body = Genres),
        (status = 304, description = crate::openapi::NOT_MODIFIED),
        (status = 503, description = crate::openapi::DATABASE_UNAVAILABLE, body = ErrorBody),
    )
)]
async fn genres(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let served = reads::genres(&state).await?;
    let response = conditional(
        &headers,
        served.whole(),
        cache_control::GENRES,
        &served.status,
    );
    Ok(tagged(response, &[tag::GENRES]))
}

/// A genre's best-rated movies
///
/// Best average rating first, among movies with more than 50 ratings; follows the hourly
/// refresh of the `top_movies_by_genre` view.
#[utoipa::path(
    get,
    path = "/genres/{genre}/top",
    tag = "genres",
    params(
        ("genre" = String, Path, description = "The genre's name (`Sci-Fi`) or slug (`sci-fi`), case-insensitively."),
        crate::openapi::ListQuery,
    ),
    responses(
        (status = 200, description = "The genre and its best-rated movies.", body = GenreTop),
        (status = 304, description = crate::openapi::NOT_MODIFIED),
        (status = 400, description = "`invalid_limit`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`genre_not_found`.", body = ErrorBody),
        (status = 503, description = crate::openapi::DATABASE_UNAVAILABLE, body = ErrorBody),
    )
)]
async fn top(
    State(state): State<AppState>,
    PathParam(genre): PathParam<String>,
    QueryMap(query): QueryMap,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let limit = Limit::parse(
        "limit",
        query.get("limit").map(String::as_str),
        Limit::DEFAULT,
    )?;
    let genre = reads::find_genre(&state, &genre).await?;
    let genre_tag = tag::genre(&genre.slug);
    let served = reads::genre_top(&state, genre).await?;
    let response = conditional(
        &headers,
        reads::render_list(&served, "movies", limit),
        cache_control::GENRE_TOP,
        &served.status,
    );
    Ok(tagged(response, &[&genre_tag, tag::GENRE_TOP]))
}
