//! HTTP plumbing shared by the routes: extractors whose rejections use the JSON error shape
//! (request bodies: JSON objects of at most [`MAX_BODY_BYTES`]), conditional responses (strong ETag, 304 on `If-None-Match`), and the middleware that gives
//! every response `Cache-Status` and `Cache-Control` and records its latency and trace.

use crate::cache::Rendered;
use crate::error::AppError;
use crate::settings::Settings;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{
    DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Path, Query, Request, State,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use shared::cache_status::{CacheStatus, Forward};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// The `Cache-Status` header name (RFC 9211).
pub const CACHE_STATUS: &str = "cache-status";

/// The largest request body the origin reads: 16 KiB. Every body of this API is a small JSON
/// object (a rating is about 30 bytes), so this leaves ample room and keeps a client from making
/// the origin buffer megabytes (axum's own default is 2 MB). A larger body is a 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON object body deserialised into `T`, refused in the JSON error shape:
/// - no `Content-Type: application/json` (or `application/*+json`): 415 `unsupported_media_type`;
/// - more than [`MAX_BODY_BYTES`]: 413 `payload_too_large`;
/// - not JSON (syntax error, truncated, trailing characters): 400 `malformed_json`;
/// - JSON that is not an object, or an object with missing, unknown or mistyped fields:
///   422 `invalid_body`.
///
/// Every request body of this API is an object. serde's derives would also accept a struct
/// written as an array (`[1, 4.5]` as movie 1 rated 4.5), so anything but an object is refused.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(mut request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(request.headers()) {
            return Err(AppError::UnsupportedMediaType);
        }
        DefaultBodyLimit::max(MAX_BODY_BYTES).apply(&mut request);
        let bytes = Bytes::from_request(request, state).await?;
        let parsed = axum::Json::<T>::from_bytes(&bytes);
        // Well-formed JSON that is not an object; a syntax error stays a 400.
        let well_formed = matches!(parsed, Ok(_) | Err(JsonRejection::JsonDataError(_)));
        if well_formed && !is_json_object(&bytes) {
            return Err(AppError::Unprocessable {
                code: "invalid_body",
                message: "expected a JSON object".into(),
            });
        }
        let axum::Json(value) = parsed?;
        Ok(JsonBody(value))
    }
}

/// `application/json`, or any `application/*+json`, with or without parameters (RFC 6839).
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", subtype)) => subtype == "json" || subtype.ends_with("+json"),
        _ => false,
    }
}

/// Whether the JSON text starts with `{` (after the whitespace JSON allows).
fn is_json_object(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|b| *b == b'{')
}

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
            JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType,
            JsonRejection::BytesRejection(err) => err.into(),
            other => AppError::bad_request("malformed_json", other.body_text()),
        }
    }
}

impl From<BytesRejection> for AppError {
    /// Over the limit is 413 (the limit [`JsonBody`] applies); a body that could not be read
    /// (the client went away mid-body) is 400.
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            }
        } else {
            AppError::bad_request("unreadable_body", rejection.body_text())
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

/// `response` with its cache tags (`shared::purge_marks`, plus `all`) in `x-cache-tags`, for
/// the edge: it stores them, strips the header, and drops the entry when a tag is purged.
pub fn tagged(mut response: Response, tags: &[&str]) -> Response {
    let mut value = tags.join(" ");
    value.push(' ');
    value.push_str(shared::purge_marks::tag::ALL);
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(shared::purge_marks::TAGS_HEADER, value);
    }
    response
}

/// A cacheable JSON response: the rendered body with its strong ETag (computed once, when the
/// value was rendered), 304 when the client's `If-None-Match` matches, and the given
/// `Cache-Control` and `Cache-Status`.
pub fn conditional(
    request: &HeaderMap,
    rendered: Rendered,
    cache_control: &'static str,
    status: &CacheStatus,
) -> Response {
    let Rendered { body, etag } = rendered;
    let not_modified = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .zip(etag.to_str().ok())
        .is_some_and(|(v, etag)| shared::etag::if_none_match_matches(v, etag));
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
    headers.insert(header::ETAG, etag);
    set_cache_status(headers, status);
    response
}

/// Sets `Cache-Status`.
pub fn set_cache_status(headers: &mut HeaderMap, status: &CacheStatus) {
    if let Ok(value) = HeaderValue::from_str(&status.to_string()) {
        headers.insert(CACHE_STATUS, value);
    }
}

/// What [`frame`] needs: the settings, and where request traces are kept. Behind one `Arc`:
/// axum clones the middleware's state for every request.
pub struct Frame {
    /// The service's settings.
    pub settings: Arc<Settings>,
    /// The recent requests' traces (`crate::trace`).
    pub traces: crate::trace::Traces,
}

/// Middleware around every route, in one pass: the request's id (`telemetry`), CORS
/// ([`cors_preflight`], [`cors_headers`]), the defaults every response gets (`Cache-Status` and
/// `Cache-Control`: the handler's, or `fwd=bypass`/`fwd=method` and `no-store`), the latency
/// histogram per route, the request's log line and its trace (`crate::trace`).
///
/// One layer rather than one per concern: axum clones and boxes every layer on the routes for
/// each request, and on the 2-core machine each cost a few percent of the cached-read
/// throughput.
pub async fn frame(State(frame): State<Arc<Frame>>, mut request: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = crate::telemetry::settle_request_id(&mut request);
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let trace = frame
        .traces
        .begin(&id, &method, route.as_ref(), request.uri(), start);
    let settings = &frame.settings;
    let origin = request.headers().get(header::ORIGIN).cloned();
    let preflight = cors_preflight(&settings.cors_policy, &request, origin.as_ref());
    let mut response = match (preflight, read_body(request).await) {
        (Some(preflight), _) => preflight,
        (None, Ok(request)) => {
            let handling = crate::telemetry::in_request(id.clone(), next.run(request));
            crate::trace::scope(trace.clone(), handling).await
        }
        (None, Err(refused)) => refused.into_response(),
    };
    let route = route.as_ref().map_or("unmatched", |r| r.as_str());
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
    cors_headers(headers, &settings.cors_policy, origin);
    let latency = start.elapsed();
    metrics::histogram!(
        "http_request_duration_seconds",
        "method" => method.to_string(),
        "route" => route.to_owned(),
        "status" => response.status().as_u16().to_string(),
    )
    .record(latency.as_secs_f64());
    let cache_status = crate::telemetry::cache_status(&response);
    crate::telemetry::log_request(&method, route, &response, cache_status, latency, &id);
    if let Some(trace) = trace {
        let status = response.status();
        frame.traces.finish(trace, status, cache_status, latency);
    }
    response
        .headers_mut()
        .insert(shared::request_id::HEADER, id);
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

/// The request with its body read into memory, up to [`MAX_BODY_BYTES`]: a 413 past it.
///
/// Every body is read before the route runs, whether the route wants it or not (a `GET` with
/// content, a `PUT` on a read-only path): a server that answers and closes with unread bytes
/// in its socket makes the kernel reset the connection, and the client may lose the answer
/// (the end-to-end fuzzer saw a long `/metrics` cut off this way, and the edge report a 502).
/// A request without content costs one size check.
async fn read_body(request: Request) -> Result<Request, AppError> {
    if axum::body::HttpBody::size_hint(request.body()).exact() == Some(0) {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let mut content = Request::new(body);
    DefaultBodyLimit::max(MAX_BODY_BYTES).apply(&mut content);
    // Over the limit is 413, a body that could not be read 400 (`From<BytesRejection>`).
    let bytes = Bytes::from_request(content, &()).await?;
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

/// CORS for browsers that call the origin directly, by the same policy as the edge
/// (`shared::cors`, `CORS_ALLOWED_ORIGINS`): the answer to a preflight (`OPTIONS` with
/// `Origin` and `Access-Control-Request-Method`), a 204 made before any route; `None` for any
/// other request.
///
/// Not `tower-http`'s `CorsLayer`, which was tried first: layered on the routes it is cloned
/// and builds a header map for every request, and measured with `wrk` on a cached
/// `GET /movies/1` on the 2-core machine it cost a tenth of the throughput (35,300 against
/// 39,300 req/s without it). This is the edge's policy, unit tested in `shared`, adding two
/// or three headers.
pub fn cors_preflight(
    policy: &shared::cors::CorsPolicy,
    request: &Request,
    origin: Option<&HeaderValue>,
) -> Option<Response> {
    if request.method() != Method::OPTIONS {
        return None;
    }
    let origin = origin?.to_str().ok()?;
    let method = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)?
        .to_str()
        .ok()?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    for (name, value) in policy.preflight(origin, method) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    Some(response)
}

/// The CORS headers of an actual response to a request from `origin`: its own
/// `Access-Control-Allow-Origin` and the exposed headers when allowed, nothing otherwise, and
/// `Vary: origin` in every case.
pub fn cors_headers(
    headers: &mut HeaderMap,
    policy: &shared::cors::CorsPolicy,
    origin: Option<HeaderValue>,
) {
    if headers.contains_key(header::ACCESS_CONTROL_ALLOW_METHODS) {
        return; // a preflight's answer, complete
    }
    let allowed = origin.filter(|o| o.to_str().is_ok_and(|o| policy.allows(o)));
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(shared::cors::EXPOSE_HEADERS),
        );
    }
    let vary = match headers.get(header::VARY).and_then(|v| v.to_str().ok()) {
        None => HeaderValue::from_static("origin"),
        Some(vary) => match HeaderValue::from_str(&shared::cors::vary_with_origin(Some(vary))) {
            Ok(vary) => vary,
            Err(_) => return,
        },
    };
    headers.insert(header::VARY, vary);
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use serde_json::Value;
    use tower::ServiceExt;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Pair {
        a: i64,
        b: f64,
    }

    /// POSTs `body` to a route taking `JsonBody<Pair>`: the status and the error code.
    async fn post_body(content_type: Option<&str>, body: Body) -> (StatusCode, Option<String>) {
        let app = Router::new().route(
            "/",
            post(|JsonBody(pair): JsonBody<Pair>| async move { format!("{} {}", pair.a, pair.b) }),
        );
        let mut request = axum::http::Request::post("/");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let response = app.oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let code = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
        (status, code)
    }

    async fn post_json(body: &str) -> (StatusCode, Option<String>) {
        post_body(Some("application/json"), Body::from(body.to_owned())).await
    }

    #[tokio::test]
    async fn objects_with_the_right_fields_are_accepted() {
        assert_eq!(
            post_json(r#"{"a": 1, "b": 2.5}"#).await,
            (StatusCode::OK, None)
        );
        assert_eq!(
            post_json(" \n\t{\"a\":1,\"b\":2}\r\n").await.0,
            StatusCode::OK
        );
        for content_type in [
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            let body = Body::from(r#"{"a": 1, "b": 2}"#);
            assert_eq!(
                post_body(Some(content_type), body).await.0,
                StatusCode::OK,
                "{content_type}"
            );
        }
    }

    #[tokio::test]
    async fn anything_but_json_content_is_415() {
        for content_type in [
            None,
            Some("text/plain"),
            Some("text/json"),
            Some("application/x-www-form-urlencoded"),
            Some("application/jsonx"),
        ] {
            assert_eq!(
                post_body(content_type, Body::from(r#"{"a": 1, "b": 2}"#)).await,
                (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    Some("unsupported_media_type".into())
                ),
                "{content_type:?}"
            );
        }
    }

    #[tokio::test]
    async fn malformed_json_is_400() {
        for body in [
            "",
            "{",
            r#"{"a": 1,"#,
            "[1, 2.5",
            "{a: 1}",
            r#"{"a":1,"b":2} x"#,
        ] {
            assert_eq!(
                post_json(body).await,
                (StatusCode::BAD_REQUEST, Some("malformed_json".into())),
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn json_that_is_not_the_object_is_422() {
        for body in [
            "[1, 2.5]",
            " [1, 2.5]",
            "[]",
            r#""a""#,
            "12",
            "null",
            "true",
            r#"{"a": 1}"#,
            r#"{"a": "1", "b": 2}"#,
            r#"{"a": 1.5, "b": 2}"#,
            r#"{"a": 1, "b": 2, "c": 3}"#,
        ] {
            assert_eq!(
                post_json(body).await,
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some("invalid_body".into())
                ),
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413_announced_or_streamed() {
        let object = r#"{"a": 1, "b": 2}"#;
        let exactly = format!("{object}{}", " ".repeat(MAX_BODY_BYTES - object.len()));
        assert_eq!(post_json(&exactly).await.0, StatusCode::OK);
        let over = format!("{exactly} ");
        assert_eq!(
            post_json(&over).await,
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                Some("payload_too_large".into())
            )
        );
        // Without a length up front (chunked): cut off once the limit is passed.
        let chunks = over
            .into_bytes()
            .chunks(1000)
            .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>();
        let streamed = Body::from_stream(futures::stream::iter(chunks));
        assert_eq!(
            post_body(Some("application/json"), streamed).await,
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                Some("payload_too_large".into())
            )
        );
    }
}
