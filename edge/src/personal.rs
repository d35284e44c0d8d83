//! A user's own requests at the edge: the token verified here, reads kept per user and
//! generation, ratings moving the generation on (the policy is `shared::personal`'s).
//!
//! With the secret `JWT_SECRET` set (the origin's), every request under `/users/{id}/` is
//! checked here, in the origin's order, before anything else happens:
//! - a missing, malformed, expired, wrongly signed or `alg: none` token: 401, no origin round
//!   trip (`shared::token`, the verification the origin runs);
//! - an id that is not a user id: 400 `invalid_id`;
//! - a user's token on another user's path: 403, before any lookup, so no user's entry is
//!   ever looked up for another user's request;
//! - for a read, invalid parameters: the origin's 400.
//!
//! A user's read (`GET /users/{id}/recommendations`, `GET /users/{id}/profile`) is then served
//! from the Cache API under `/__edge/personal/{generation}/users/{id}/...`, where the
//! generation is this location's record for the user (created at the first read). It is
//! stored only when the origin's answer allows it with the edge's targeted field (five
//! seconds, then revalidated with its ETag; `shared::cache_control::EDGE_PERSONAL`).
//! An administrator's reads are passed through: they may read any user, and are rare.
//!
//! A rating (`POST /users/{id}/ratings`) is passed to the origin, and before its answer is
//! returned the user's record at this location is replaced: by the generation the origin's
//! answer carries (the user's rating version), or by a random one when the rating's outcome is
//! unknown (no answer, a server error). The user's next read here keys on the new generation,
//! so it cannot be an entry stored before the rating. A rating the origin refused (a 4xx)
//! changed nothing and moves nothing.
//!
//! Without `JWT_SECRET`, these requests pass through to the origin untouched, as before.

use crate::origin;
use crate::reply;
use crate::serve::{self, Target};
use crate::{Config, store};
use shared::cache_status::Forward;
use shared::params::UserId;
use shared::personal::{GENERATION_HEADER, PersonalPath, Resource};
use shared::token::{Subject, Verifier};
use worker::{Cache, Context, Env, Method, Request, Response, Result, Url};

/// How long a location keeps a user's generation record, in seconds: longer than any entry
/// stored under it (`shared::personal::KEEP_SECS`). A record gone is replaced by a new random
/// one, which only costs the entries under the old.
const GENERATION_KEEP_SECS: u64 = 7 * 86_400;

/// The token verifier, when the worker has `JWT_SECRET`.
pub fn verifier(env: &Env) -> Option<Verifier> {
    let secret = env.secret("JWT_SECRET").ok()?.to_string();
    crate::jwt_crypto::install();
    Verifier::new(secret.as_bytes())
}

/// Handles a request for a user's resource.
pub async fn handle(
    req: Request,
    path: PersonalPath<'_>,
    verifier: &Verifier,
    config: Config,
    ctx: Context,
    env: &Env,
    request_id: &str,
) -> Result<Response> {
    let expected = match path.resource {
        Resource::Ratings => Method::Post,
        Resource::Profile | Resource::Recommendations => Method::Get,
    };
    if req.method() != expected {
        // HEAD, or a method the route does not have (the origin's 405): as before.
        crate::stats::record_pass();
        return origin::pass_through(req, &config, Forward::Method, request_id).await;
    }
    let authorization = req.headers().get("authorization")?;
    let subject = match verifier.authenticate(authorization.as_deref()) {
        Ok(subject) => subject,
        Err(err) => return reply::unauthorized(&err.to_string()),
    };
    let user = match path.user() {
        Some(Ok(user)) => user,
        Some(Err(err)) => return reply::error(400, err.code(), &err.to_string()),
        // Not UTF-8 once decoded: the origin's `invalid_path`.
        None => {
            crate::stats::record_pass();
            return origin::pass_through(req, &config, Forward::Bypass, request_id).await;
        }
    };
    if !subject.may_access(user) {
        return reply::error(403, "forbidden", shared::token::FORBIDDEN_OTHER_USER);
    }
    let url = req.url()?;
    if path.resource == Resource::Ratings {
        return rate(req, &url, user, &config, request_id).await;
    }
    let key = match shared::personal::read_key(user, path.resource, url.query()) {
        Ok(Some(key)) => key,
        Ok(None) => unreachable!("ratings are handled above"),
        Err(err) => return reply::error(400, err.code(), &err.to_string()),
    };
    if subject == Subject::Admin {
        crate::stats::record_pass();
        return origin::pass_through(req, &config, Forward::Bypass, request_id).await;
    }
    let generation = current_generation(&url, user).await?;
    let target = Target {
        key: store::key_url(&url, &shared::personal::entry_key(&generation, &key)),
        fetch: key,
        route: path.resource.as_str(),
        authorization,
        purgeable: false,
        keep_secs: shared::personal::KEEP_SECS,
    };
    serve::cached(req, target, config, ctx, env, request_id.to_owned()).await
}

/// Passes a rating to the origin and moves the user's generation at this location on before
/// answering.
async fn rate(
    req: Request,
    url: &Url,
    user: UserId,
    config: &Config,
    request_id: &str,
) -> Result<Response> {
    crate::stats::record_pass();
    let answer = origin::forward(req, config, request_id).await?;
    let next = match &answer {
        Ok(served) if (200..300).contains(&served.status) => Some(
            served
                .header(GENERATION_HEADER)
                .filter(|generation| shared::personal::valid_generation(generation))
                .map_or_else(random_generation, str::to_owned),
        ),
        // Refused: nothing was written.
        Ok(served) if (400..500).contains(&served.status) => None,
        // A server error or no answer: it may have been written.
        _ => Some(random_generation()),
    };
    if let Some(generation) = next {
        set_generation(url, user, &generation).await?;
    }
    match answer {
        Ok(served) => origin::passed(served, Forward::Method),
        Err(failure) => failure.respond(),
    }
}

/// The user's generation at this location: its record, or a new one recorded now.
async fn current_generation(url: &Url, user: UserId) -> Result<String> {
    let key = store::key_url(url, &shared::personal::generation_key(user));
    if let Some(mut record) = Cache::default().get(&key, false).await? {
        let generation = record.text().await?;
        if shared::personal::valid_generation(&generation) {
            return Ok(generation);
        }
    }
    let generation = random_generation();
    set_generation(url, user, &generation).await?;
    Ok(generation)
}

/// Records `generation` as the user's at this location.
async fn set_generation(url: &Url, user: UserId, generation: &str) -> Result<()> {
    let key = store::key_url(url, &shared::personal::generation_key(user));
    let mut record = Response::ok(generation)?;
    record.headers_mut().set(
        "cache-control",
        &format!("public, max-age={GENERATION_KEEP_SECS}"),
    )?;
    Cache::default().put(&key, record).await
}

/// A generation no rating version can be: `e` and 64 random bits in hex.
fn random_generation() -> String {
    let mut bytes = [0u8; 8];
    // The runtime's `crypto.getRandomValues`; should it fail, the clock still makes a value
    // this location has not used.
    if getrandom::fill(&mut bytes).is_err() {
        bytes = worker::Date::now().as_millis().to_le_bytes();
    }
    format!("e{:016x}", u64::from_le_bytes(bytes))
}
