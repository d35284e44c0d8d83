//! Request tracing and the log subscriber.
//!
//! Every response carries `x-request-id`: the client's when it is well formed, else a fresh
//! one (the policy is `shared::request_id`, which the edge follows too). Every request is
//! logged once, at INFO with the target `origin::access`, when its response is ready: method,
//! route template, status, latency, cache outcome (`Cache-Status`) and request id, as the
//! fields of one event (`RUST_LOG=info,origin::access=off` turns these lines off). Errors
//! logged while a request runs carry its id too ([`current_request_id`]). The middleware that
//! calls these is `http::frame`.
//!
//! One event per request rather than `tower-http`'s `TraceLayer` with a span per request:
//! measured with `wrk` on a cached `GET /movies/1` on the 2-core machine, the span (created,
//! its fields formatted, entered and left on every poll) cost about a tenth of the throughput
//! on top of the line itself. A `request` span is still made at DEBUG (`RUST_LOG=debug`), for
//! whoever wants every event of a request grouped.
//!
//! Logs go to stderr, as text (coloured only on a terminal) or, with `LOG_FORMAT=json`, as
//! one JSON object per line. Each line is one `write`, as it is logged: a process that is
//! killed loses no line it has logged.

use crate::http::CACHE_STATUS;
use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use shared::request_id;
use std::io::IsTerminal;
use std::time::Duration;
use tracing::Instrument;

/// The filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the process's log subscriber: stderr, filtered by `RUST_LOG` (default
/// [`DEFAULT_FILTER`]), in `format`.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| DEFAULT_FILTER.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colour codes in a file or a pipe are noise for whoever reads it: only on a terminal.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // The event's fields at the top level.
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .flatten_event(true)
            .with_span_list(false)
            .init(),
    }
}

tokio::task_local! {
    static REQUEST_ID: HeaderValue;
}

/// The id of the request the current task serves, if it serves one (for error logs).
pub fn current_request_id() -> Option<String> {
    REQUEST_ID
        .try_with(|id| id.to_str().map(str::to_owned).ok())
        .ok()
        .flatten()
}

/// Settles the request's id: the client's `x-request-id` if well formed, else a fresh one,
/// written into the request (handlers read the settled id) and returned for the response.
pub fn settle_request_id(request: &mut Request) -> HeaderValue {
    let kept = request
        .headers()
        .get(request_id::HEADER)
        .and_then(|v| request_id::accept(v.to_str().ok()))
        .and_then(|v| HeaderValue::from_str(v).ok());
    let id = kept.unwrap_or_else(fresh_id);
    request.headers_mut().insert(request_id::HEADER, id.clone());
    id
}

/// Runs a request's handling with its id known to [`current_request_id`], in a `request`
/// span when DEBUG is enabled.
pub async fn in_request<F: Future<Output = Response>>(id: HeaderValue, handling: F) -> Response {
    let span = tracing::debug_span!("request", request_id = id.to_str().unwrap_or_default());
    REQUEST_ID.scope(id, handling).instrument(span).await
}

/// The response's `Cache-Status` (empty without one), for the log line and the trace.
pub fn cache_status(response: &Response) -> &str {
    response
        .headers()
        .get(CACHE_STATUS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The request's one log line (target `origin::access`, INFO): method, route, status,
/// latency, `Cache-Status` and request id.
pub fn log_request(
    method: &Method,
    route: &str,
    response: &Response,
    cache_status: &str,
    latency: Duration,
    id: &HeaderValue,
) {
    tracing::info!(
        target: "origin::access",
        method = %method,
        route,
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1e3,
        cache_status,
        request_id = id.to_str().unwrap_or_default(),
        "request"
    );
}

/// A fresh id from 128 random bits.
fn fresh_id() -> HeaderValue {
    HeaderValue::from_str(&request_id::format(rand::random()))
        .expect("hexadecimal digits are a valid header value")
}
