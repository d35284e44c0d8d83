//! CORS at the edge, by `shared::cors`: preflights answered here without an origin round
//! trip, and every response's CORS headers set for the request's own `Origin`.
//!
//! What the edge stores never holds CORS headers (see `store`): it fetches without an
//! `Origin`, so one stored copy serves every site, and each response gets the
//! `Access-Control-Allow-Origin` of its own requester (or none) and `Vary: Origin`. So one
//! site's header is never served to another, and a disallowed origin cannot poison an entry.

use shared::cors::{self, CorsPolicy};
use worker::{Env, Headers, Method, Request, Response, Result};

/// The policy from `CORS_ALLOWED_ORIGINS` (`[vars]` or a secret), or the local default. A
/// value that does not parse allows no origin at all (and says why in the log), rather than
/// more than was meant.
pub fn policy(env: &Env) -> CorsPolicy {
    let configured = env
        .var("CORS_ALLOWED_ORIGINS")
        .map(|v| v.to_string())
        .or_else(|_| env.secret("CORS_ALLOWED_ORIGINS").map(|v| v.to_string()));
    match configured {
        Ok(value) => CorsPolicy::parse(&value).unwrap_or_else(|err| {
            worker::console_error!("CORS_ALLOWED_ORIGINS: {err}; no origin is allowed");
            CorsPolicy::parse("").expect("the empty list parses")
        }),
        Err(_) => CorsPolicy::default(),
    }
}

/// The answer to a CORS preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`): 204 with the policy's headers; `None` for any other
/// request.
pub fn preflight(req: &Request, policy: &CorsPolicy) -> Result<Option<Response>> {
    if req.method() != Method::Options {
        return Ok(None);
    }
    let headers = req.headers();
    let (Some(origin), Some(method)) = (
        headers.get("origin")?,
        headers.get("access-control-request-method")?,
    ) else {
        return Ok(None);
    };
    let answer = Headers::new();
    for (name, value) in policy.preflight(&origin, &method) {
        answer.set(name, &value)?;
    }
    answer.set("cache-control", shared::cache_control::NO_STORE)?;
    Ok(Some(
        Response::empty()?.with_status(204).with_headers(answer),
    ))
}

/// Sets the CORS headers of an actual response for a request from `origin`: whatever the
/// origin sent is replaced by the edge's policy, and `Vary` gains `origin` (on every
/// response: a browser cache must not reuse an answer to a request without `Origin` for one
/// with it).
pub fn apply(response: &mut Response, policy: &CorsPolicy, origin: Option<&str>) -> Result<()> {
    let headers = response.headers_mut();
    for name in cors::RESPONSE_HEADERS {
        headers.delete(name)?;
    }
    for (name, value) in policy.actual(origin) {
        headers.set(name, &value)?;
    }
    let vary = cors::vary_with_origin(headers.get("vary")?.as_deref());
    headers.set("vary", &vary)?;
    Ok(())
}
