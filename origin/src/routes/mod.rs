//! The HTTP API (SPEC section 3), one module per resource, each exporting `router()`.

mod admin;
mod genres;
mod health;
mod movies;
mod users;

use crate::http::{method_not_allowed, not_found};
use crate::state::AppState;
use axum::Router;

/// Every route, with JSON 404/405 answers, the response-defaults middleware, and request
/// tracing around them (`x-request-id` on every response, one log line per request).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(movies::router())
        .merge(genres::router())
        .merge(users::router())
        .merge(health::router())
        .merge(admin::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Request ids, CORS, response defaults, latency, the log line: one pass.
        .layer(axum::middleware::from_fn_with_state(
            state.settings.clone(),
            crate::http::frame,
        ))
        .with_state(state)
}
