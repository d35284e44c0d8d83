//! `GET /genres` and `GET /genres/{genre}/top`: public, cacheable everywhere. A genre is
//! named by its name (`Sci-Fi`) or slug (`sci-fi`), case-insensitively.

use crate::error::AppError;
use crate::http::{PathParam, QueryMap, conditional};
use crate::reads;
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use shared::cache_control;
use shared::params::Limit;

/// The genre routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/genres", get(genres))
        .route("/genres/{genre}/top", get(top))
}

async fn genres(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let served = reads::genres(&state).await?;
    Ok(conditional(
        &headers,
        served.whole(),
        cache_control::GENRES,
        &served.status,
    ))
}

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
    let served = reads::genre_top(&state, genre).await?;
    Ok(conditional(
        &headers,
        reads::render_list(&served, "movies", limit),
        cache_control::GENRE_TOP,
        &served.status,
    ))
}
