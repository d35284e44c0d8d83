//! The edge's operator endpoints (`/__edge/purge`, `/__edge/stats`) are for whoever holds the
//! worker's secret `PURGE_SECRET`, sent as `Authorization: Bearer <PURGE_SECRET>`.

use crate::reply;
use worker::{Env, Request, Response, Result};

/// Compares in time independent of where the strings differ.
fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// `None` when `req` carries the secret; otherwise the response to send instead: 503 when
/// the worker has no secret configured, 401 when the request does not carry it.
pub fn refusal(req: &Request, env: &Env) -> Result<Option<Response>> {
    let Ok(secret) = env.secret("PURGE_SECRET").map(|s| s.to_string()) else {
        return reply::error(
            503,
            "purge_unconfigured",
            "PURGE_SECRET is not set for this worker",
        )
        .map(Some);
    };
    let authorised = req
        .headers()
        .get("authorization")?
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
        .is_some_and(|token| !secret.is_empty() && same_secret(token.trim(), &secret));
    if authorised {
        return Ok(None);
    }
    reply::error(
        401,
        "unauthorized",
        "the edge's operator endpoints need `Authorization: Bearer <PURGE_SECRET>`",
    )
    .map(Some)
}
