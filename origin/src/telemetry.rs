//! Request tracing and the log subscriber.
//!
//! Every response carries `x-request-id`: the client's when it is well formed, else a fresh
//! one (the policy is `shared::request_id`, which the edge follows too). Every request is
//! logged once, at INFO, when its response is ready: method, route template, status, latency,
//! cache outcome (`Cache-Status`) and request id. The id is a field of the request's span, so
//! anything else logged while the request runs carries it as well.
//!
//! Logs go to stderr, as text (coloured only on a terminal) or, with `LOG_FORMAT=json`, as
//! one JSON object per line.

use crate::http::CACHE_STATUS;
use axum::extract::{MatchedPath, Request};
use axum::http::{self, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use shared::request_id;
use std::io::IsTerminal;
use std::time::Duration;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{MakeSpan, OnResponse, TraceLayer};
use tracing::Span;

/// The filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_http=info";

/// The route logged for a request that matched no route (the 404 fallback).
const UNMATCHED: &str = "unmatched";

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
        // The event's fields at the top level, the request's span (method, route, request id)
        // under "span".
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .flatten_event(true)
            .with_span_list(false)
            .init(),
    }
}

/// Middleware: settles the request's id (the client's `x-request-id` if well formed, else a
/// fresh one), writes it into the request (so the span and handlers read the settled id) and
/// into the response, error responses included.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let kept = request
        .headers()
        .get(request_id::HEADER)
        .and_then(|v| request_id::accept(v.to_str().ok()))
        .and_then(|v| HeaderValue::from_str(v).ok());
    let id = kept.unwrap_or_else(fresh_id);
    request.headers_mut().insert(request_id::HEADER, id.clone());
    let mut response = next.run(request).await;
    response.headers_mut().insert(request_id::HEADER, id);
    response
}

/// A fresh id from 128 random bits.
fn fresh_id() -> HeaderValue {
    HeaderValue::from_str(&request_id::format(rand::random()))
        .expect("hexadecimal digits are a valid header value")
}

/// The layer that logs each request once; it runs inside [`request_id`], which settles the id
/// it logs, and outside the middleware that sets `Cache-Status`, which it logs.
pub type RequestTrace =
    TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan, (), RequestLine, (), (), ()>;

/// [`RequestTrace`]: a span per request, one line per response, nothing else (the default
/// "started processing" and failure events would make two lines of one request).
pub fn trace_layer() -> RequestTrace {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_request(())
        .on_response(RequestLine)
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

/// The span of a request: method, route template and request id.
#[derive(Debug, Clone, Copy)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &http::Request<B>) -> Span {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNMATCHED, |p| p.as_str());
        let id = request
            .headers()
            .get(request_id::HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            method = %request.method(),
            route,
            request_id = id,
        )
    }
}

/// The one line logged per request: status, latency and cache outcome (in the request's span).
#[derive(Debug, Clone, Copy)]
pub struct RequestLine;

impl<B> OnResponse<B> for RequestLine {
    fn on_response(self, response: &http::Response<B>, latency: Duration, _: &Span) {
        let cache_status = response
            .headers()
            .get(CACHE_STATUS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = latency.as_secs_f64() * 1e3,
            cache_status,
            "request"
        );
    }
}
