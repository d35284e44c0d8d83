//! `GET /health` (liveness: the process answers), `GET /ready` (each dependency's state) and
//! `GET /metrics` (Prometheus text). None is ever cached.

use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use shared::dto::{BreakerStates, Readiness};

/// The operational routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// Liveness
///
/// The process answers; nothing else is asked.
#[utoipa::path(
    get,
    path = "/health",
    tag = "ops",
    responses((status = 200, description = "Always `{\"status\": \"ok\"}`.", body = crate::openapi::schemas::Health))
)]
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness
///
/// 200 while anything can be served: `ready` with both dependencies up, `degraded` with one
/// down (the cache or PostgreSQL stands in). 503 only when both are down. A dependency whose
/// circuit breaker is open is reported down without being asked, so this never waits for it.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "ops",
    responses(
        (status = 200, description = "`ready`, or `degraded` with one dependency down.", body = Readiness),
        (status = 503, description = "`unavailable`: PostgreSQL and Redis are both down.", body = Readiness),
    )
)]
async fn ready(State(state): State<AppState>) -> Response {
    let (postgres, redis) = tokio::join!(state.db.ping(), state.cache.redis().ping());
    let up = |ok: bool| if ok { "up" } else { "down" }.to_owned();
    let body = Readiness {
        status: match (postgres, redis.is_some()) {
            (true, true) => "ready",
            (false, false) => "unavailable",
            _ => "degraded",
        }
        .to_owned(),
        postgres: up(postgres),
        redis: up(redis.is_some()),
        model: state
            .model
            .get()
            .map_or_else(|| "none".to_owned(), |m| m.version.clone()),
        breakers: BreakerStates {
            postgres: state.db.breaker().state().as_str().to_owned(),
            redis: state.cache.redis().breaker().state().as_str().to_owned(),
        },
    };
    let status = if postgres || redis.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics
///
/// The text exposition format: request latency per route, cache counters per family, the
/// local tier, Redis's figures, dependency and circuit-breaker states.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses((status = 200, description = "Prometheus text.", body = String, content_type = "text/plain; version=0.0.4"))
)]
async fn metrics(State(state): State<AppState>) -> Response {
    // Gauges read when scraped: the local tier's size against its bound, whether Redis's
    // change notices are flowing (without them, shared values are not served locally), Redis's
    // figures, each dependency's state and circuit breaker (open: 1) with the times it
    // opened, and the invalidations waiting for Redis.
    let local = state.cache.local_snapshot();
    metrics::gauge!("cache_local_bytes").set(local.tier.size_bytes as f64);
    metrics::gauge!("cache_local_capacity_bytes").set(local.tier.capacity_bytes as f64);
    metrics::gauge!("cache_local_entries").set(local.tier.entries as f64);
    metrics::gauge!("cache_tracking_live").set(f64::from(u8::from(local.tracking_session != 0)));
    // Redis's own figures (INFO of each master, a PING) and whether each dependency answers:
    // what the alert rules of `ops/prometheus/alerts.yml` read. Asked at scrape time only.
    let (redis, postgres_up) = tokio::join!(crate::stats::redis_report(&state), state.db.ping());
    metrics::gauge!("redis_used_memory_bytes").set(redis.used_memory_bytes as f64);
    metrics::gauge!("redis_maxmemory_bytes").set(redis.maxmemory_bytes as f64);
    metrics::counter!("redis_evicted_keys_total").absolute(redis.evicted_keys);
    metrics::gauge!("redis_connected_clients").set(redis.connected_clients as f64);
    metrics::gauge!("redis_ops_per_second").set(redis.ops_per_sec as f64);
    match redis.latency_ms {
        Some(ms) => metrics::gauge!("redis_ping_seconds").set(ms / 1000.0),
        // No answer: the last latency would be a lie; the dependency gauge says why.
        None => metrics::gauge!("redis_ping_seconds").set(f64::NAN),
    }
    metrics::gauge!("dependency_up", "dependency" => "redis")
        .set(f64::from(u8::from(redis.reachable)));
    metrics::gauge!("dependency_up", "dependency" => "postgres")
        .set(f64::from(u8::from(postgres_up)));
    metrics::gauge!("cache_pending_invalidations").set(state.cache.pending_invalidations() as f64);
    for breaker in [state.db.breaker(), state.cache.redis().breaker()] {
        metrics::gauge!("breaker_open", "dependency" => breaker.dependency())
            .set(f64::from(u8::from(!breaker.allows())));
        metrics::counter!("breaker_opened_total", "dependency" => breaker.dependency())
            .absolute(breaker.opened_total());
    }
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
