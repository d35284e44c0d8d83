//! The HTTP API (SPEC section 3), one module per resource, each exporting `router()`.

mod admin;
mod genres;
mod health;
mod movies;
mod users;

use crate::http::{method_not_allowed, not_found, response_defaults};
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
        .layer(axum::middleware::from_fn(response_defaults))
        // Preflights are answered here, before any route; actual responses get their CORS
        // headers and `Vary: Origin`.
        .layer(crate::http::cors_layer(&state.settings.cors_policy))
        // Outside `response_defaults`, so the logged line sees the final `Cache-Status`.
        .layer(crate::telemetry::trace_layer())
        // Outermost: the id is settled before the request's span is made, and set on every
        // response.
        .layer(axum::middleware::from_fn(crate::telemetry::request_id))
        .with_state(state)
}
