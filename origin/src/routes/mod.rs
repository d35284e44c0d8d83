//! The HTTP API (SPEC section 3), one module per resource, each exporting `router()`.

mod admin;
mod genres;
mod health;
mod movies;
mod users;

use crate::http::{method_not_allowed, not_found, response_defaults};
use crate::state::AppState;
use axum::Router;

/// Every route, with JSON 404/405 answers and the response-defaults middleware.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(movies::router())
        .merge(genres::router())
        .merge(users::router())
        .merge(health::router())
        .merge(admin::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(response_defaults))
        .with_state(state)
}
