//! Requests to the origin: fetches for the cache (with a deadline, optionally conditional) and
//! untouched pass-through of personal and write requests.
//!
//! With several origin instances, a request goes to the first of `shared::origins`'
//! ranking for it, and on to the next only when [`Failover`] allows it (GET and HEAD) and the
//! origin gave no answer: a connection failure or a timeout, each origin asked at most once,
//! each with the full `ORIGIN_TIMEOUT_MS`. Any HTTP status an origin sent, a 500 included, is
//! its answer. With one origin, this is a single request, as before.
//!
//! An origin that gave no answer is ranked last by this isolate for a while
//! (`shared::origins::Ejections`), so after one request found it gone the others, ratings
//! too, go to a survivor first; its first answer afterwards restores it.

use crate::reply::{self, Served};
use crate::{CACHE_NAME, Config};
use futures::future::{Either, select};
use shared::cache_status::{CacheStatus, Forward};
use shared::origins::{Affinity, Ejections, Failover};
use std::cell::RefCell;
use std::time::Duration;
use worker::{
    AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, Response, Result,
};

/// Why the origin gave no response.
#[derive(Debug, Clone)]
pub enum Failure {
    /// No answer within `ORIGIN_TIMEOUT_MS`.
    Timeout,
    /// Refused, reset, DNS: the detail says.
    Unreachable(String),
}

impl Failure {
    /// The JSON 502/504 for a client with nothing stored to fall back on.
    pub fn respond(&self) -> Result<Response> {
        match self {
            Failure::Timeout => reply::origin_failed(true, "timeout"),
            Failure::Unreachable(detail) => reply::origin_failed(false, detail),
        }
    }
}

async fn send(request: Request, config: &Config) -> std::result::Result<Response, Failure> {
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let response = Box::pin(fetch.send_with_signal(&signal));
    let deadline = Box::pin(Delay::from(Duration::from_millis(config.origin_timeout_ms)));
    match select(response, deadline).await {
        Either::Left((Ok(response), _)) => Ok(response),
        Either::Left((Err(err), _)) => Err(Failure::Unreachable(err.to_string())),
        Either::Right(_) => {
            controller.abort();
            Err(Failure::Timeout)
        }
    }
}

async fn buffer(mut response: Response) -> Result<Served> {
    let headers = response.headers().entries().collect();
    let body = response.bytes().await?;
    Ok(Served {
        status: response.status_code(),
        headers,
        body,
    })
}

thread_local! {
    /// This isolate's origins set aside (an isolate runs one thread: no lock is needed).
    static EJECTIONS: RefCell<Ejections> = RefCell::new(Ejections::default());
}

fn now_ms() -> f64 {
    worker::Date::now().as_millis() as f64
}

/// Sends `init` to `path_and_query` on the origins ranked for `affinity`: the first one, then,
/// while `failover` allows, the next after each origin that gave no answer. The last failure
/// when none answered.
async fn exchange(
    config: &Config,
    affinity: &Affinity,
    path_and_query: &str,
    init: &RequestInit,
    failover: Failover,
) -> std::result::Result<Served, Failure> {
    let mut failure = Failure::Unreachable("no origin".to_owned());
    let ranked: Vec<String> = EJECTIONS.with_borrow(|ejections| {
        config
            .origins
            .ranked_avoiding(affinity, ejections, now_ms())
            .into_iter()
            .map(str::to_owned)
            .collect()
    });
    for origin in &ranked {
        // Each attempt a new request from the same init: its body is a byte array, which the
        // Request constructor copies, so a retry sends the same bytes.
        let url = format!("{origin}{path_and_query}");
        failure = match Request::new_with_init(&url, init) {
            Ok(request) => match send(request, config).await {
                Ok(response) => match buffer(response).await {
                    Ok(served) => {
                        EJECTIONS.with_borrow_mut(|ejections| ejections.restore(origin));
                        return Ok(served);
                    }
                    // The answer broke off: no answer, like a failed connection.
                    Err(err) => Failure::Unreachable(err.to_string()),
                },
                Err(failure) => failure,
            },
            Err(err) => Failure::Unreachable(err.to_string()),
        };
        EJECTIONS.with_borrow_mut(|ejections| ejections.eject(origin, now_ms()));
        if failover == Failover::Never {
            break;
        }
    }
    Err(failure)
}

/// `GET {origin}{path_and_query}` for the cache, carrying the client's request's id (and, for
/// a personal read, the client's `Authorization`); with `if_none_match`, a conditional request
/// (revalidation). `path_and_query` is the edge's normalised path and query, which also picks
/// the origin.
pub async fn get(
    config: &Config,
    path_and_query: &str,
    if_none_match: Option<&str>,
    authorization: Option<&str>,
    request_id: &str,
) -> std::result::Result<Served, Failure> {
    let headers = Headers::new();
    let _ = headers.set("accept", "application/json");
    let _ = headers.set(shared::request_id::HEADER, request_id);
    if let Some(authorization) = authorization {
        let _ = headers.set("authorization", authorization);
    }
    if let Some(etag) = if_none_match {
        let _ = headers.set("if-none-match", etag);
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let path = path_and_query.split('?').next().unwrap_or_default();
    let affinity = Affinity::of(path, Some(path_and_query));
    exchange(
        config,
        &affinity,
        path_and_query,
        &init,
        Failover::for_method("GET"),
    )
    .await
}

/// Forwards a request as it is (method, headers with `Authorization`, body; `x-request-id`
/// set to `request_id`) and returns the origin's answer as it is, with the edge's
/// `Cache-Status` member appended. Never stored. Personal requests go to the user's origin
/// instance; only GET and HEAD fail over to the next.
pub async fn pass_through(
    req: Request,
    config: &Config,
    fwd: Forward,
    request_id: &str,
) -> Result<Response> {
    match forward(req, config, request_id).await? {
        Ok(served) => passed(served, fwd),
        Err(failure) => failure.respond(),
    }
}

/// Sends a request on as it is (see [`pass_through`]): the origin's answer, buffered, or why
/// there was none.
pub async fn forward(
    mut req: Request,
    config: &Config,
    request_id: &str,
) -> Result<std::result::Result<Served, Failure>> {
    let url = req.url()?;
    let path_and_query = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let affinity = Affinity::of(url.path(), None);
    let method = req.method();
    let failover = Failover::for_method(method.as_ref());
    let headers = Headers::new();
    for (name, value) in req.headers().entries() {
        if name != "host" {
            headers.append(&name, &value)?;
        }
    }
    // The client's id when well formed, else the edge's replacement for it.
    headers.set(shared::request_id::HEADER, request_id)?;
    let mut init = RequestInit::new();
    init.with_method(method.clone()).with_headers(headers);
    if method != Method::Get && method != Method::Head {
        let body = req.bytes().await?;
        if !body.is_empty() {
            init.with_body(Some(
                worker::js_sys::Uint8Array::from(body.as_slice()).into(),
            ));
        }
    }
    Ok(exchange(config, &affinity, &path_and_query, &init, failover).await)
}

/// The client's response to a request passed through: the origin's answer without the fields
/// meant for the edge, with the edge's `Cache-Status` member appended.
pub fn passed(served: Served, fwd: Forward) -> Result<Response> {
    let status = served.status;
    let headers = Headers::new();
    for (name, value) in &served.headers {
        if name != "cache-status" && name != "content-length" && !reply::internal(name) {
            headers.append(name, value)?;
        }
    }
    headers.set(
        "cache-status",
        &CacheStatus::bypass(CACHE_NAME, fwd).append_to(served.header("cache-status")),
    )?;
    let response = if served.body.is_empty() {
        Response::empty()?
    } else {
        Response::from_bytes(served.body)?
    };
    Ok(response.with_status(status).with_headers(headers))
}
