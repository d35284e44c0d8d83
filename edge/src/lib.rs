//! The edge: a Cloudflare Worker in front of the origin.
//!
//! Public, cacheable GETs (`/movies/{id}`, `/movies/popular`, `/movies/{id}/similar`,
//! `/genres`, `/genres/{genre}/top`) are served from the Workers Cache API with HTTP cache
//! semantics; so are a user's own reads (recommendations, profile), once the edge has verified
//! the user's token, under a key bound to that user and their generation ([`personal`]).
//! Everything else is forwarded to the origin untouched. Every decision
//! (which key, fresh or stale, storable or not, 304 or not) is made by pure functions of
//! `shared`, unit tested natively; this crate is only the glue to the Workers runtime:
//!
//! - [`serve`]: the cached routes: hit, stale-while-revalidate, stale-if-error, miss;
//! - [`personal`]: a user's requests: the token checked here, reads kept per user and
//!   generation, ratings moving the generation on;
//! - [`jwt_crypto`]: the HS256-only crypto `jsonwebtoken` verifies tokens with here;
//! - [`store`]: the Cache API, with the metadata the Cache API itself would not keep;
//! - [`origin`]: requests to the origin, with a deadline, to the instance `shared::origins`
//!   ranks first for the request and, for reads, on to the next when one cannot be reached;
//! - [`reply`]: building responses (JSON errors, 304s, `Cache-Status`);
//! - [`purge`]: the authenticated purge endpoint, by path or tag, hard or soft, for every
//!   location;
//! - [`marks`]: when each tag was purged, in Workers KV, read through an isolate cache;
//! - [`stats`]: the authenticated counters of what the edge did with each cacheable request;
//! - [`operator`]: the secret those two endpoints need;
//! - [`request_id`]: the `x-request-id` that follows the request to the origin and back;
//! - [`cors`]: preflights answered here, and each response's CORS headers for its requester.
//!
//! `Cache-Status` (RFC 9211) gets the edge's member appended after the origin's, so the last
//! member says what the edge did: `origin; fwd=miss; stored, edge; hit; ttl=86399`. A
//! response the edge makes itself (a 400, a 502/504, the purge endpoint's answers) carries no
//! `Cache-Status`: RFC 9211 §2, "An intermediary SHOULD NOT append a Cache-Status member to
//! responses that it generates locally, even if that intermediary contains a cache, except
//! when the generated response is based upon a stored response (e.g., a 304 Not Modified or
//! 206 Partial Content)."
//!
//! Configuration comes from the worker's environment: `ORIGIN_URL` (one origin URL, or several
//! instances separated by commas), `ORIGIN_TIMEOUT_MS` and `CORS_ALLOWED_ORIGINS` (`[vars]` in
//! `wrangler.toml`) and the secrets `PURGE_SECRET` (for `/__edge/purge` and `/__edge/stats`)
//! and `JWT_SECRET` (the origin's token secret; without it, personal requests pass through).
//!
//! With several origin instances, each request goes to the one `shared::origins` ranks first
//! for it: by user id for `/users/{id}/...` (a user's requests reach one instance and its
//! in-process cache), by cache key or path otherwise. When that instance cannot be reached
//! (connection failure or timeout, not an HTTP error it sent), a GET or HEAD asks the next
//! one, each at most once; a POST is never sent twice (a rating must not be written twice).

mod cors;
mod jwt_crypto;
mod marks;
mod operator;
mod origin;
mod personal;
mod purge;
mod reply;
mod request_id;
mod serve;
mod stats;
mod store;

use shared::cache_status::Forward;
use shared::edge_key::{EdgeReject, EdgeRoute};
use shared::origins::Origins;
use worker::{Context, Env, Method, Request, Response, Result, event};

/// This cache's name in `Cache-Status`.
pub(crate) const CACHE_NAME: &str = "edge";
/// The path of the purge endpoint (outside the origin's API).
const PURGE_PATH: &str = "/__edge/purge";
/// The path of the counters endpoint.
const STATS_PATH: &str = "/__edge/stats";

/// Settings read from the environment on every request (they are tiny).
pub(crate) struct Config {
    /// The origin instances, each without a trailing slash: `ORIGIN_URL`, one URL or several
    /// separated by commas.
    pub origins: Origins,
    /// How long to wait for each origin asked, in milliseconds.
    pub origin_timeout_ms: u64,
}

impl Config {
    fn from_env(env: &Env) -> Result<Config> {
        let list = env
            .var("ORIGIN_URL")
            .map(|v| v.to_string())
            .unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned());
        // A list that names no usable origin is a deployment mistake: every request fails
        // with the edge's JSON 500 rather than guessing where the origin is.
        let origins = Origins::parse(&list)
            .map_err(|err| worker::Error::RustError(format!("ORIGIN_URL: {err}")))?;
        let origin_timeout_ms = env
            .var("ORIGIN_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.to_string().parse().ok())
            .unwrap_or(5_000);
        Ok(Config {
            origins,
            origin_timeout_ms,
        })
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let request_id = request_id::of(&req);
    let policy = cors::policy(&env);
    let origin = req.headers().get("origin")?;
    let preflight = cors::preflight(&req, &policy)?;
    let is_preflight = preflight.is_some();
    let mut response = match preflight {
        // Answered here: a preflight never costs an origin round trip.
        Some(preflight) => preflight,
        None => match route(req, &env, ctx, &request_id).await {
            Ok(response) => response,
            // Still a JSON error with the request's id (the runtime's own 500 would carry
            // neither); the detail stays out of the body, as the origin keeps its internal
            // errors.
            Err(_) => reply::error(500, "internal", "the edge could not handle the request")?,
        },
    };
    // Every response, whichever path made it (a stored copy's own id was dropped on storing).
    response
        .headers_mut()
        .set(shared::request_id::HEADER, &request_id)?;
    if !is_preflight {
        cors::apply(&mut response, &policy, origin.as_deref())?;
    }
    Ok(response)
}

async fn route(req: Request, env: &Env, ctx: Context, request_id: &str) -> Result<Response> {
    let url = req.url()?;
    if url.path() == PURGE_PATH {
        return purge::handle(req, env).await;
    }
    if url.path() == STATS_PATH {
        return stats::handle(&req, env);
    }
    let config = Config::from_env(env)?;
    if let Some(path) = shared::personal::PersonalPath::parse(url.path())
        && let Some(verifier) = personal::verifier(env)
    {
        return personal::handle(req, path, &verifier, config, ctx, env, request_id).await;
    }
    if req.method() != Method::Get {
        stats::record_pass();
        return origin::pass_through(req, &config, Forward::Method, request_id).await;
    }
    match EdgeRoute::parse(url.path(), url.query()) {
        Ok(route) => {
            let target = serve::Target::public(&req, &route)?;
            serve::cached(req, target, config, ctx, env, request_id.to_owned()).await
        }
        // Invalid ids and limits: the origin's answer, without asking it.
        Err(EdgeReject::Invalid(err)) => reply::error(400, err.code(), &err.to_string()),
        Err(EdgeReject::NotCacheable) => {
            stats::record_pass();
            origin::pass_through(req, &config, Forward::Bypass, request_id).await
        }
    }
}
