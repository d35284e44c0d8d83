//! The cached routes, public and personal ([`Target`] says which key, what to fetch, with
//! which token). With a stored copy: fresh → served with `Age`; stale within
//! `stale-while-revalidate` → served at once and revalidated in the background; otherwise
//! revalidated with a conditional request first (a 304 refreshes the stored copy; an error
//! within `stale-if-error` serves the stale copy). Without one: forwarded, stored when
//! `shared::storable` allows, or a JSON 502/504 when the origin fails. Every request to the
//! origin, the background revalidation included, carries the client's request's id.
//!
//! **Collapsed misses.** Concurrent misses for one key in one isolate make one origin request:
//! the first (the leader) fetches and stores, the others wait for its answer and serve it with
//! `Cache-Status: edge; fwd=miss; collapsed` (RFC 9211 2.5). The leader drives the fetch in
//! its own request's context and hands the buffered answer over in a channel, which each
//! follower checks on its own timer (every 5 ms): the Workers runtime forbids one request
//! from touching another's I/O objects (a shared future polled by whichever request wakes
//! first fails, and so does a response built after being woken from the leader's context),
//! and cancels a request that waits on nothing of its own as hung. An isolate runs on one
//! thread, so the waiting requests are a thread-local map; if the leader is cancelled (its
//! client hung up), its guard removes the entry, the followers' channels close, and each
//! fetches on its own.

use crate::origin::{self, Failure};
use crate::reply::Served;
use crate::store::{self, Stored};
use crate::{CACHE_NAME, Config};
use futures::channel::oneshot;
use shared::cache_status::{CacheStatus, Forward};
use shared::directives::CacheDirectives;
use shared::edge_key::EdgeRoute;
use shared::edge_stats::EdgeOutcome;
use shared::freshness::Freshness;
use shared::purge_marks::{Verdict, verdict};
use shared::revalidation::{OriginAnswer, Revalidated, after_revalidation, refreshed_headers};
use shared::storable::may_store;
use std::cell::RefCell;
use std::collections::HashMap;
use worker::{Context, Env, Request, Response, Result};

/// What a fetch for a miss gives every request waiting for it: the origin's answer and
/// whether it was stored (or why not), or the failure.
type Fetched = std::result::Result<(Served, std::result::Result<(), &'static str>), Failure>;

thread_local! {
    /// The fetches under way in this isolate, by cache key, each with the requests waiting
    /// for its answer.
    static IN_FLIGHT: RefCell<HashMap<String, Vec<oneshot::Sender<Fetched>>>> =
        RefCell::new(HashMap::new());
}

/// How often a request waiting for a leader's answer looks for it, in ms.
const FOLLOWER_POLL_MS: u64 = 5;

/// How much longer than `ORIGIN_TIMEOUT_MS` a request waits for the leader's answer before
/// fetching on its own (the leader's fetch is bounded by that timeout, plus storing).
const FOLLOWER_GRACE_MS: u64 = 1_000;

/// A leader's claim on a key in [`IN_FLIGHT`]: removed when dropped, finished or not.
struct Leading(String);

impl Drop for Leading {
    fn drop(&mut self) {
        IN_FLIGHT.with(|in_flight| in_flight.borrow_mut().remove(&self.0));
    }
}

/// What a request for a missing key does: fetch it, or wait for the fetch under way.
enum Role {
    Lead(Leading),
    Follow(oneshot::Receiver<Fetched>),
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

fn now() -> u64 {
    now_ms() / 1000
}

/// One cacheable request: where its copy is kept, and how it is fetched.
pub struct Target {
    /// The Cache API key (a URL).
    pub key: String,
    /// The normalised path and query fetched from the origin.
    pub fetch: String,
    /// The route's name, for the counters.
    pub route: &'static str,
    /// The client's `Authorization`, sent with every fetch (personal reads; `None` for public
    /// ones, which never send it).
    pub authorization: Option<String>,
    /// Whether purge marks apply (public entries, which carry tags); a personal entry is
    /// bound to its user's generation instead.
    pub purgeable: bool,
    /// The least time the Cache API keeps a stored copy, in seconds: past its freshness, so it
    /// can be revalidated rather than fetched again.
    pub keep_secs: u64,
}

impl Target {
    /// A public route: its normalised key, no token, purge marks, kept as long as its
    /// directives allow it to be served.
    pub fn public(req: &Request, route: &EdgeRoute) -> Result<Target> {
        Ok(Target {
            key: store::key_url(&req.url()?, &route.key),
            fetch: route.key.clone(),
            route: route.kind.as_str(),
            authorization: None,
            purgeable: true,
            keep_secs: 0,
        })
    }
}

/// Serves a cacheable GET.
pub async fn cached(
    req: Request,
    target: Target,
    config: Config,
    ctx: Context,
    env: &Env,
    request_id: String,
) -> Result<Response> {
    let if_none_match = req.headers().get("if-none-match")?;
    let inm = if_none_match.as_deref();
    let route_name = target.route;
    // A stored copy purged (anywhere) since it was fetched is no copy; a soft-purged one is
    // revalidated before it is served.
    let stored = match store::get(&target.key).await? {
        Some(stored) if target.purgeable => {
            let marks = crate::marks::of(env, &stored.tags_with_path(&target.fetch)).await;
            match verdict(stored.fetched_at_ms, marks) {
                Verdict::Valid => Some((stored, false)),
                Verdict::Stale => Some((stored, true)),
                Verdict::Purged => None,
            }
        }
        Some(stored) => Some((stored, false)),
        None => None,
    };
    let Some((stored, soft_purged)) = stored else {
        let (outcome, response) = miss(&config, &target, inm, &request_id).await;
        crate::stats::record(route_name, outcome);
        return response;
    };
    let freshness = match stored.meta.freshness(now()) {
        Freshness::Fresh { age, ttl } | Freshness::StaleWhileRevalidate { age, ttl }
            if soft_purged =>
        {
            Freshness::Expired { age, ttl }
        }
        freshness => freshness,
    };
    match freshness {
        Freshness::Fresh { age, ttl } => {
            crate::stats::record(route_name, EdgeOutcome::Hit);
            stored
                .served
                .respond(CacheStatus::hit(CACHE_NAME, ttl), Some(age), inm)
        }
        Freshness::StaleWhileRevalidate { age, ttl } => {
            crate::stats::record(route_name, EdgeOutcome::Stale);
            let background = stored.clone();
            ctx.wait_until(async move {
                let _ = revalidate(&config, &target, background, &request_id).await;
            });
            let status = CacheStatus {
                detail: Some("stale-while-revalidate"),
                ..CacheStatus::stale(CACHE_NAME, ttl)
            };
            stored.served.respond(status, Some(age), inm)
        }
        Freshness::StaleIfErrorOnly { .. } | Freshness::Expired { .. } => {
            match revalidate(&config, &target, stored, &request_id).await? {
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

/// No stored copy: ask the origin (or join the fetch another request started for the same
/// key), store what may be stored. Says whether the origin answered ([`EdgeOutcome::Miss`])
/// or not ([`EdgeOutcome::Error`]).
async fn miss(
    config: &Config,
    target: &Target,
    inm: Option<&str>,
    request_id: &str,
) -> (EdgeOutcome, Result<Response>) {
    let key = target.key.as_str();
    let role = IN_FLIGHT.with(|in_flight| {
        let mut in_flight = in_flight.borrow_mut();
        match in_flight.get_mut(key) {
            Some(waiting) => {
                let (sender, receiver) = oneshot::channel();
                waiting.push(sender);
                Role::Follow(receiver)
            }
            None => {
                in_flight.insert(key.to_owned(), Vec::new());
                Role::Lead(Leading(key.to_owned()))
            }
        }
    });
    let (fetched, collapsed) = match role {
        Role::Lead(leading) => {
            let fetched = fetch_and_store(config, target, request_id).await;
            let waiting = IN_FLIGHT.with(|in_flight| in_flight.borrow_mut().remove(key));
            drop(leading);
            for sender in waiting.unwrap_or_default() {
                let _ = sender.send(fetched.clone());
            }
            (fetched, false)
        }
        Role::Follow(receiver) => {
            crate::stats::record_collapsed(target.route);
            match wait_for_leader(receiver, config.origin_timeout_ms + FOLLOWER_GRACE_MS).await {
                Some(fetched) => (fetched, true),
                // The leader was cancelled, or took longer than any fetch may: fetch on our own.
                None => (fetch_and_store(config, target, request_id).await, false),
            }
        }
    };
    let (served, stored) = match fetched {
        Ok(fetched) => fetched,
        Err(failure) => return (EdgeOutcome::Error, failure.respond()),
    };
    let mut status = CacheStatus::miss(CACHE_NAME, stored.is_ok() && !collapsed);
    status.collapsed = collapsed;
    status.detail = stored.err();
    (EdgeOutcome::Miss, served.respond(status, None, inm))
}

/// The leader's answer, or `None` if it was cancelled or `within_ms` passed. Polled on this
/// request's own timer, every [`FOLLOWER_POLL_MS`]: awaiting the channel would resume this
/// request from the leader's context (where the channel is woken), and the runtime refuses a
/// response built there (one request may not touch another's I/O objects), while awaiting
/// nothing of its own gets the request cancelled as hung.
async fn wait_for_leader(
    mut receiver: oneshot::Receiver<Fetched>,
    within_ms: u64,
) -> Option<Fetched> {
    let mut waited = 0;
    loop {
        match receiver.try_recv() {
            Ok(Some(fetched)) => return Some(fetched),
            Ok(None) if waited < within_ms => {
                worker::Delay::from(std::time::Duration::from_millis(FOLLOWER_POLL_MS)).await;
                waited += FOLLOWER_POLL_MS;
            }
            Ok(None) | Err(oneshot::Canceled) => return None,
        }
    }
}

/// The fetch of a miss: the origin's answer, buffered, and stored when allowed.
async fn fetch_and_store(config: &Config, target: &Target, request_id: &str) -> Fetched {
    let started = now_ms();
    let served = fetch(config, target, None, request_id).await?;
    let stored = store_if_allowed(target, &served, started).await;
    Ok((served, stored))
}

/// `target`'s fetch from the origin, with the client's token when it has one; conditional
/// with `etag`.
async fn fetch(
    config: &Config,
    target: &Target,
    etag: Option<&str>,
    request_id: &str,
) -> std::result::Result<Served, Failure> {
    let authorization = target.authorization.as_deref();
    origin::get(config, &target.fetch, etag, authorization, request_id).await
}

/// Stores `served` (fetched by a request that started at `fetched_at_ms`) if RFC 9111 and our
/// policy allow, reading the edge's targeted field over `Cache-Control` (RFC 9213); the
/// refusal reason otherwise.
async fn store_if_allowed(
    target: &Target,
    served: &Served,
    fetched_at_ms: u64,
) -> std::result::Result<(), &'static str> {
    let directives = CacheDirectives::parse(store::policy(served));
    may_store(
        "GET",
        served.status,
        &directives,
        served.header("set-cookie").is_some(),
        target.authorization.is_some(),
    )
    .map_err(|reason| reason.as_str())?;
    store::put(
        &target.key,
        served,
        now(),
        served.header("age"),
        fetched_at_ms,
        target.keep_secs,
    )
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
    target: &Target,
    stored: Stored,
    request_id: &str,
) -> Result<Outcome> {
    let key = target.key.as_str();
    let etag = stored.served.header("etag").map(str::to_owned);
    let started = now_ms();
    let answer = fetch(config, target, etag.as_deref(), request_id).await;
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
            let mut headers = refreshed_headers(&stored.served.headers, &not_modified.headers);
            // The tags stay the stored entry's (the 304's own, if it names them, win).
            if !stored.tags.is_empty()
                && !headers
                    .iter()
                    .any(|(name, _)| name == shared::purge_marks::TAGS_HEADER)
            {
                headers.push((
                    shared::purge_marks::TAGS_HEADER.to_owned(),
                    stored.tags.join(" "),
                ));
            }
            let refreshed = Served {
                status: stored.served.status,
                headers,
                body: stored.served.body,
            };
            let saved = store::put(
                key,
                &refreshed,
                now,
                not_modified.header("age"),
                started,
                target.keep_secs,
            )
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
            let saved = store_if_allowed(target, &fresh, started).await;
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
