//! `GET /admin/trace/{request_id}` (admin only): for one of this instance's recent requests,
//! named by its `x-request-id`, what each cache layer decided and how long each step took
//! (`crate::trace`). An id holding `/` is sent percent-encoded (`%2F`).

use crate::auth::Admin;
use crate::error::AppError;
use crate::http::PathParam;
use crate::state::AppState;
use crate::trace::{TraceReport, Traces};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use shared::dto::ErrorBody;

/// The trace route, reading `traces` (the ones `http::frame` records).
pub fn router(traces: Traces) -> Router<AppState> {
    Router::new().route(
        "/admin/trace/{request_id}",
        get(move |admin, state, id| show(traces.clone(), admin, state, id)),
    )
}

/// Trace a recent request
///
/// Each cache layer's decision for one of this instance's last `TRACE_RECENT_REQUESTS`
/// requests, in the order the steps started, with their timings in microseconds: local tier,
/// generation check, Redis, single flight, bulkhead, computation and its PostgreSQL queries,
/// store, outage hold, stale serving. A collapsed request shows its wait; the computation it
/// waited for is in the leader's trace.
#[utoipa::path(
    get,
    path = "/admin/trace/{request_id}",
    tag = "admin",
    security(("admin_jwt" = [])),
    params(("request_id" = String, Path, description = "The request's `x-request-id` (percent-encoded).")),
    responses(
        (status = 200, description = "The request's trace.", body = TraceReport),
        (status = 401, description = crate::openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = crate::openapi::FORBIDDEN_ADMIN, body = ErrorBody),
        (status = 404, description = "`trace_not_found`: no such request among this instance's \
            recent ones (unknown, evicted, served by another instance, or tracing is off).", body = ErrorBody),
    )
)]
async fn show(
    traces: Traces,
    _: Admin,
    State(state): State<AppState>,
    PathParam(id): PathParam<String>,
) -> Result<Json<TraceReport>, AppError> {
    let instance = state.cache.local_snapshot().instance;
    let Some(mut report) = traces.find(&id) else {
        let message = match traces.capacity() {
            0 => format!("request tracing is off on {instance} (TRACE_RECENT_REQUESTS=0)"),
            kept => format!(
                "no trace of request `{id}` on {instance}: unknown, served by another \
                 instance, or older than its last {kept} requests"
            ),
        };
        return Err(AppError::not_found("trace_not_found", message));
    };
    report.instance = instance;
    Ok(Json(report))
}
