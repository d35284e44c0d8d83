//! The cached routes. With a stored copy: fresh → served with `Age`; stale within
//! `stale-while-revalidate` → served at once and revalidated in the background; otherwise
//! revalidated with a conditional request first (a 304 refreshes the stored copy; an error
//! within `stale-if-error` serves the stale copy). Without one: forwarded, stored when
//! `shared::storable` allows, or a JSON 502/504 when the origin fails. Every request to the
//! origin, the background revalidation included, carries the client's request's id.

use crate::origin::{self, Failure};
use crate::reply::Served;
use crate::store::{self, Stored};
use crate::{CACHE_NAME, Config};
use shared::cache_status::{CacheStatus, Forward};
use shared::directives::CacheDirectives;
use shared::edge_key::EdgeRoute;
use shared::edge_stats::EdgeOutcome;
use shared::freshness::Freshness;
use shared::revalidation::{OriginAnswer, Revalidated, after_revalidation, refreshed_headers};
use shared::storable::may_store;
use worker::{Context, Request, Response, Result};

fn now() -> u64 {
    worker::Date::now().as_millis() / 1000
}

/// Serves a cacheable GET.
pub async fn cached(
    req: Request,
    route: EdgeRoute,
    config: Config,
    ctx: Context,
    request_id: String,
) -> Result<Response> {
    let key = store::key_url(&req.url()?, &route.key);
    let if_none_match = req.headers().get("if-none-match")?;
    let inm = if_none_match.as_deref();
    let route_name = route.kind.as_str();
    let Some(stored) = store::get(&key).await? else {
        let (outcome, response) = miss(&config, &key, &route.key, inm, &request_id).await;
        crate::stats::record(route_name, outcome);
        return response;
    };
    let freshness = stored.meta.freshness(now());
    match freshness {
        Freshness::Fresh { age, ttl } => {
            crate::stats::record(route_name, EdgeOutcome::Hit);
            stored
                .served
                .respond(CacheStatus::hit(CACHE_NAME, ttl), Some(age), inm)
        }
        Freshness::StaleWhileRevalidate { age, ttl } => {
            crate::stats::record(route_name, EdgeOutcome::Stale);
            let (background_key, path) = (key.clone(), route.key.clone());
            let background = stored.clone();
            ctx.wait_until(async move {
                let _ = revalidate(&config, &background_key, &path, background, &request_id).await;
            });
            let status = CacheStatus {
                detail: Some("stale-while-revalidate"),
                ..CacheStatus::stale(CACHE_NAME, ttl)
            };
            stored.served.respond(status, Some(age), inm)
        }
        Freshness::StaleIfErrorOnly { .. } | Freshness::Expired { .. } => {
            match revalidate(&config, &key, &route.key, stored, &request_id).await? {
                Outcome::Served(served, status, age, outcome) => {
                    crate::stats::record(route_name, outcome);
                    served.respond(status, age, inm)
                }
                Outcome::Failed(failure) => {
                    crate::stats::record(route_name, EdgeOutcome::Error);
                    failure.respond()
                }
            }
        }
    }
}

/// No stored copy: ask the origin, store what may be stored. Says whether the origin
/// answered ([`EdgeOutcome::Miss`]) or not ([`EdgeOutcome::Error`]).
async fn miss(
    config: &Config,
    key: &str,
    path: &str,
    inm: Option<&str>,
    request_id: &str,
) -> (EdgeOutcome, Result<Response>) {
    let served = match origin::get(config, path, None, request_id).await {
        Ok(served) => served,
        Err(failure) => return (EdgeOutcome::Error, failure.respond()),
    };
    let stored = store_if_allowed(key, &served).await;
    let mut status = CacheStatus::miss(CACHE_NAME, stored.is_ok());
    status.detail = stored.err();
    (EdgeOutcome::Miss, served.respond(status, None, inm))
}

/// Stores `served` if RFC 9111 and our policy allow; the refusal reason otherwise.
async fn store_if_allowed(key: &str, served: &Served) -> std::result::Result<(), &'static str> {
    let directives = CacheDirectives::parse(served.header("cache-control").unwrap_or_default());
    may_store(
        "GET",
        served.status,
        &directives,
        served.header("set-cookie").is_some(),
        false,
    )
    .map_err(|reason| reason.as_str())?;
    store::put(key, served, now(), served.header("age"))
        .await
        .map_err(|_| "cache-put-failed")
}

enum Outcome {
    /// Something to serve: the response, the edge's `Cache-Status` entry, its `Age`, and
    /// what the edge did, for its counters.
    Served(Served, CacheStatus, Option<u64>, EdgeOutcome),
    /// The origin failed and the stored copy may not stand in.
    Failed(Failure),
}

/// Revalidates `stored` with a conditional request and decides what to serve.
async fn revalidate(
    config: &Config,
    key: &str,
    path: &str,
    stored: Stored,
    request_id: &str,
) -> Result<Outcome> {
    let etag = stored.served.header("etag").map(str::to_owned);
    let answer = origin::get(config, path, etag.as_deref(), request_id).await;
    let now = now();
    let decision = match &answer {
        Ok(fresh) => after_revalidation(OriginAnswer::Status(fresh.status), &stored.meta, now),
        Err(_) => after_revalidation(OriginAnswer::Unreachable, &stored.meta, now),
    };
    let revalidated = CacheStatus {
        fwd: Some(Forward::Stale),
        ..CacheStatus::new(CACHE_NAME)
    };
    Ok(match (decision, answer) {
        (Revalidated::Refresh, Ok(not_modified)) => {
            let headers = refreshed_headers(&stored.served.headers, &not_modified.headers);
            let refreshed = Served {
                status: stored.served.status,
                headers,
                body: stored.served.body,
            };
            let saved = store::put(key, &refreshed, now, not_modified.header("age"))
                .await
                .is_ok();
            Outcome::Served(
                refreshed,
                CacheStatus {
                    stored: saved,
                    ..revalidated
                },
                None,
                EdgeOutcome::Revalidated,
            )
        }
        (Revalidated::UseNew, Ok(fresh)) => {
            let saved = store_if_allowed(key, &fresh).await;
            if saved.is_err() {
                // The origin no longer serves what is stored: do not keep serving it.
                let _ = store::delete(key).await;
            }
            Outcome::Served(
                fresh,
                CacheStatus {
                    stored: saved.is_ok(),
                    detail: saved.err(),
                    ..revalidated
                },
                None,
                EdgeOutcome::Miss,
            )
        }
        (Revalidated::ServeStale, _) => {
            let freshness = stored.meta.freshness(now);
            let status = CacheStatus {
                detail: Some("stale-if-error"),
                ..CacheStatus::stale(CACHE_NAME, freshness.ttl())
            };
            Outcome::Served(
                stored.served,
                status,
                Some(freshness.age()),
                EdgeOutcome::Stale,
            )
        }
        (Revalidated::PassError, Ok(error)) => {
            Outcome::Served(error, revalidated, None, EdgeOutcome::Error)
        }
        (_, Err(failure)) => Outcome::Failed(failure),
    })
}
