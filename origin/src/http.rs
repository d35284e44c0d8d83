//! HTTP plumbing shared by the routes: extractors whose rejections use the JSON error shape,
//! conditional responses (strong ETag, 304 on `If-None-Match`), and the middleware that gives
//! every response `Cache-Status` and `Cache-Control` and records its latency.

use crate::error::AppError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use shared::cache_status::{CacheStatus, Forward};
use std::collections::HashMap;
use std::time::Instant;

/// The `Cache-Status` header name (RFC 9211).
pub const CACHE_STATUS: &str = "cache-status";

/// `axum::Json` with JSON error bodies: malformed JSON is 400, well-formed JSON with wrong
/// fields or types is 422.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct JsonBody<T>(pub T);

/// The query string as a map; unknown parameters are ignored, malformed ones are 400.
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        Ok(QueryMap(map))
    }
}

/// A path parameter, validated by the handler (`MovieId::parse`, ...).
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(value) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(PathParam(value))
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(err) => AppError::Unprocessable {
                code: "invalid_body",
                message: err.body_text(),
            },
            JsonRejection::MissingJsonContentType(_) => AppError::bad_request(
                "unsupported_media_type",
                "expected a JSON body with `Content-Type: application/json`",
            ),
            other => AppError::bad_request("malformed_json", other.body_text()),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        AppError::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        AppError::bad_request("invalid_path", rejection.body_text())
    }
}

/// A cacheable JSON response: strong ETag over `body`, 304 when the client's `If-None-Match`
/// matches, and the given `Cache-Control` and `Cache-Status`.
pub fn conditional(
    request: &HeaderMap,
    body: Vec<u8>,
    cache_control: &'static str,
    status: &CacheStatus,
) -> Response {
    let etag = shared::etag::strong_etag(&body);
    let not_modified = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| shared::etag::if_none_match_matches(v, &etag));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    set_cache_status(headers, status);
    response
}

/// Sets `Cache-Status`.
pub fn set_cache_status(headers: &mut HeaderMap, status: &CacheStatus) {
    if let Ok(value) = HeaderValue::from_str(&status.to_string()) {
        headers.insert(CACHE_STATUS, value);
    }
}

/// Middleware: every response gets `Cache-Status` and `Cache-Control` (the handler's, or
/// `fwd=bypass`/`fwd=method` and `no-store`), and its latency is recorded per route.
pub async fn response_defaults(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key(CACHE_STATUS) {
        let fwd = if method == Method::GET || method == Method::HEAD {
            Forward::Bypass
        } else {
            Forward::Method
        };
        set_cache_status(headers, &CacheStatus::bypass(crate::cache::CACHE_NAME, fwd));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(shared::cache_control::NO_STORE),
        );
    }
    metrics::histogram!(
        "http_request_duration_seconds",
        "method" => method.to_string(),
        "route" => route,
        "status" => response.status().as_u16().to_string(),
    )
    .record(start.elapsed().as_secs_f64());
    response
}

/// The JSON 404 for unknown routes.
pub async fn not_found() -> AppError {
    AppError::not_found("not_found", "no such route")
}

/// The JSON 405 for known routes with another method.
pub async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
