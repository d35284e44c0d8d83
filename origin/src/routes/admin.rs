//! Administration (admin role only): warm the caches, refresh the top-by-genre view, reload
//! the model, and read cache statistics with alert states.
//!
//! Warming and the view refresh write in several steps (the refresh under an advisory lock):
//! they run to completion on a task of their own (`warm::to_completion`), so a client that
//! hangs up does not cut them short. A model reload is a read followed by one atomic swap,
//! with no await between the swap and the warming it spawns: nothing to leave halfway.

use crate::auth::Admin;
use crate::error::AppError;
use crate::state::AppState;
use crate::{stats, warm};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use shared::dto::ErrorBody;
use shared::edge_stats::EdgeStats;
use std::time::Instant;

/// The admin routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/cache/warm", post(warm_caches))
        .route("/admin/views/refresh", post(refresh_views))
        .route("/admin/model/reload", post(reload_model))
        .route("/admin/cache/stats", get(cache_stats))
        .route("/admin/edge/stats", get(edge_stats))
}

/// Warm the caches
///
/// Fills the popular list, the genre lists and the power users' recommendations, within
/// `WARM_TIMEOUT_SECS`; runs to completion even if the client hangs up.
#[utoipa::path(
    post,
    path = "/admin/cache/warm",
    tag = "admin",
    security(("admin_jwt" = [])),
    responses(
        (status = 200, description = "What the run did.", body = crate::openapi::schemas::WarmReport),
        (status = 401, description = crate::openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = crate::openapi::FORBIDDEN_ADMIN, body = ErrorBody),
        (status = 413, description = crate::openapi::PAYLOAD_TOO_LARGE, body = ErrorBody),
    )
)]
async fn warm_caches(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<warm::WarmReport>, AppError> {
    let report = warm::to_completion(async move { warm::warm(&state).await }).await?;
    Ok(Json(report))
}

/// Refresh the top-by-genre view
///
/// Refreshes `top_movies_by_genre` (one instance at a time, under an advisory lock) and
/// invalidates the genre lists.
#[utoipa::path(
    post,
    path = "/admin/views/refresh",
    tag = "admin",
    security(("admin_jwt" = [])),
    responses(
        (status = 200, description = "Refreshed, or left to the instance refreshing it now.", body = crate::openapi::schemas::ViewRefresh),
        (status = 401, description = crate::openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = crate::openapi::FORBIDDEN_ADMIN, body = ErrorBody),
        (status = 413, description = crate::openapi::PAYLOAD_TOO_LARGE, body = ErrorBody),
        (status = 503, description = crate::openapi::DATABASE_UNAVAILABLE, body = ErrorBody),
    )
)]
async fn refresh_views(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, AppError> {
    let start = Instant::now();
    let refreshed = warm::refresh_views(&state).await?;
    Ok(Json(serde_json::json!({
        "refreshed": refreshed,
        "detail": if refreshed { "top_movies_by_genre refreshed; genre lists invalidated" }
                  else { "another instance is refreshing the view right now" },
        "elapsed_ms": start.elapsed().as_millis() as u64,
    })))
}

/// Reload the model
///
/// Loads the newest stored model; when it changed, recommendations of the old model stop
/// being served at once (their cache entries carry its version) and the power users'
/// recommendations are recomputed in the background.
#[utoipa::path(
    post,
    path = "/admin/model/reload",
    tag = "admin",
    security(("admin_jwt" = [])),
    responses(
        (status = 200, description = "The model now served, and whether it changed.", body = crate::openapi::schemas::ModelReload),
        (status = 401, description = crate::openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = crate::openapi::FORBIDDEN_ADMIN, body = ErrorBody),
        (status = 413, description = crate::openapi::PAYLOAD_TOO_LARGE, body = ErrorBody),
        (status = 503, description = "`database_unavailable`, or `model_unavailable`: no trained model \
            is stored (`origin train`).", body = ErrorBody),
    )
)]
async fn reload_model(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, AppError> {
    let previous = state.model.get().map(|m| m.version.clone());
    let (version, changed) = match state.reload_model().await {
        Ok(outcome) => outcome,
        Err(_) if !state.db.ping().await => return Err(AppError::database_unavailable()),
        Err(err) => return Err(err.into()),
    };
    let Some(version) = version else {
        return Err(AppError::Unavailable {
            code: "model_unavailable",
            message: "no trained model is stored: run `origin train`".into(),
        });
    };
    if changed {
        let background = state.clone();
        tokio::spawn(async move { warm::warm(&background).await });
    }
    Ok(Json(
        serde_json::json!({ "version": version, "previous": previous, "changed": changed }),
    ))
}

/// Cache statistics
///
/// Hit rate per family (this instance), its local tier, Redis's memory, evictions, clients,
/// ops/s and latency, and the alert states.
#[utoipa::path(
    get,
    path = "/admin/cache/stats",
    tag = "admin",
    security(("admin_jwt" = [])),
    responses(
        (status = 200, description = "The report.", body = crate::openapi::schemas::CacheReport),
        (status = 401, description = crate::openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = crate::openapi::FORBIDDEN_ADMIN, body = ErrorBody),
    )
)]
async fn cache_stats(_: Admin, State(state): State<AppState>) -> Json<stats::CacheReport> {
    Json(stats::report(&state).await)
}

/// `GET /admin/edge/stats`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EdgeReading {
    /// Whether this origin knows its edge (`EDGE_PURGE_URL` and `PURGE_SECRET`).
    pub configured: bool,
    /// The edge's counters; `null` when not configured.
    pub stats: Option<EdgeStats>,
}

/// Read the edge's counters
///
/// What the edge in front of this origin (`EDGE_PURGE_URL`, with `PURGE_SECRET`) did with each
/// cacheable request since its isolate started (its `GET /__edge/stats`): hits, stale copies,
/// revalidations, misses and errors per route. For the dashboard's edge layer: a hit at the
/// edge never reaches the origin. On Cloudflare, a reading is the answering isolate's sample;
/// locally (`wrangler dev`, one isolate) it is the edge's.
#[utoipa::path(
    get,
    path = "/admin/edge/stats",
    tag = "admin",
    security(("admin_jwt" = [])),
    responses(
        (status = 200, description = "The edge's counters, or `configured: false` without an edge.", body = EdgeReading),
        (status = 401, description = crate::openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = crate::openapi::FORBIDDEN_ADMIN, body = ErrorBody),
        (status = 502, description = "`edge_error`: the edge did not answer within 2 s, refused the secret or sent something else.", body = ErrorBody),
    )
)]
async fn edge_stats(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<EdgeReading>, AppError> {
    let (Some(url), Some(secret)) = (&state.settings.edge_url, &state.settings.purge_secret) else {
        return Ok(Json(EdgeReading {
            configured: false,
            stats: None,
        }));
    };
    let stats = crate::edge::stats(url, secret)
        .await
        .map_err(|err| AppError::BadGateway {
            code: "edge_error",
            message: err.to_string(),
        })?;
    Ok(Json(EdgeReading {
        configured: true,
        stats: Some(stats),
    }))
}
