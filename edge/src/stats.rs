//! `GET /__edge/stats` (with the purge secret): what this isolate did with each cacheable
//! request since it started, per route (`shared::edge_stats`). The counters are the isolate's
//! memory: a Worker isolate runs one request handler at a time on one thread, so a
//! thread-local cell is all the synchronisation there is to have.

use crate::operator;
use shared::edge_stats::{EdgeOutcome, EdgeStats};
use std::cell::RefCell;
use worker::{Env, Method, Request, Response, Result};

thread_local! {
    static STATS: RefCell<EdgeStats> = RefCell::new(EdgeStats::new(
        shared::request_id::format(crate::request_id::random_u128()),
        worker::Date::now().as_millis(),
    ));
}

/// Counts one request for a cacheable route.
pub fn record(route: &str, outcome: EdgeOutcome) {
    STATS.with(|stats| stats.borrow_mut().record(route, outcome));
}

/// Counts a miss that joined another request's fetch (counted again as a miss when served).
pub fn record_collapsed(route: &str) {
    STATS.with(|stats| stats.borrow_mut().record_collapsed(route));
}

/// Counts one request forwarded without a cache lookup.
pub fn record_pass() {
    STATS.with(|stats| stats.borrow_mut().record_pass());
}

/// Handles the stats endpoint.
pub fn handle(req: &Request, env: &Env) -> Result<Response> {
    if req.method() != Method::Get {
        return crate::reply::error(405, "method_not_allowed", "use GET");
    }
    if let Some(refusal) = operator::refusal(req, env)? {
        return Ok(refusal);
    }
    let mut response = STATS.with(|stats| Response::from_json(&*stats.borrow()))?;
    response
        .headers_mut()
        .set("cache-control", shared::cache_control::NO_STORE)?;
    Ok(response)
}
