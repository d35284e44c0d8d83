//! `GET /movies/popular` and `GET /movies/{id}`: public, cacheable everywhere.

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
use shared::params::{Limit, MovieId};

/// The movie routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/movies/popular", get(popular))
        .route("/movies/{id}", get(movie))
}

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
    Ok(conditional(
        &headers,
        reads::render_list(&served, "movies", limit),
        cache_control::POPULAR,
        &served.status,
    ))
}

async fn movie(
    State(state): State<AppState>,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let id = MovieId::parse(&id)?;
    let served = reads::movie(&state, id).await?;
    Ok(conditional(
        &headers,
        served.whole(),
        cache_control::MOVIE,
        &served.status,
    ))
}
