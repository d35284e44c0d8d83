//! The HTTP API (SPEC section 3), one module per resource, each exporting `router()`; each
//! handler carries its OpenAPI description (`#[utoipa::path]`), gathered in [`Operations`].

mod admin;
mod dashboard;
mod genres;
mod health;
mod movies;
mod trace;
mod users;

use crate::http::{method_not_allowed, not_found};
use crate::state::AppState;
use axum::Router;

/// Every route, with JSON 404/405 answers, the response-defaults middleware, and request
/// tracing around them (`x-request-id` on every response, one log line per request).
pub fn router(state: AppState) -> Router {
    let traces = crate::trace::Traces::new(state.settings.trace_recent_requests);
    Router::new()
        .merge(movies::router())
        .merge(genres::router())
        .merge(users::router())
        .merge(health::router())
        .merge(admin::router())
        .merge(dashboard::router())
        .merge(trace::router(traces.clone()))
        .merge(crate::openapi::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Request ids, CORS, response defaults, latency, the log line: one pass.
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(crate::http::Frame {
                settings: state.settings.clone(),
                traces,
            }),
            crate::http::frame,
        ))
        .with_state(state)
}

/// The documented operations: every handler above, listed here because the route modules are
/// private. `crate::openapi` adds what every route shares; `tests/api/openapi.rs` fails when a
/// route the router serves is missing here.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    movies::popular,
    movies::movie,
    movies::similar,
    genres::genres,
    genres::top,
    users::profile,
    users::recommendations,
    users::rate,
    health::health,
    health::ready,
    health::metrics,
    admin::warm_caches,
    admin::refresh_views,
    admin::reload_model,
    admin::cache_stats,
    admin::edge_stats,
    dashboard::page,
    dashboard::script,
    dashboard::style,
    dashboard::model,
    dashboard::favicon,
    trace::show,
))]
pub(crate) struct Operations;
