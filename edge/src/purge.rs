//! `POST /__edge/purge` with `Authorization: Bearer <PURGE_SECRET>` and a body
//! `{"paths": ["/movies/1", "/movies/popular?limit=5"]}`: removes those entries (each path
//! normalised exactly like a request) from this location's cache. Without the secret: 401.

use crate::reply;
use crate::store;
use shared::purge::{PurgeReceipt, PurgeRequest};
use worker::{Env, Method, Request, Response, Result};

/// Compares in time independent of where the strings differ.
fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Handles the purge endpoint.
pub async fn handle(mut req: Request, env: &Env) -> Result<Response> {
    if req.method() != Method::Post {
        return reply::error(405, "method_not_allowed", "use POST");
    }
    let Ok(secret) = env.secret("PURGE_SECRET").map(|s| s.to_string()) else {
        return reply::error(
            503,
            "purge_unconfigured",
            "PURGE_SECRET is not set for this worker",
        );
    };
    let authorised = req
        .headers()
        .get("authorization")?
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
        .is_some_and(|token| !secret.is_empty() && same_secret(token.trim(), &secret));
    if !authorised {
        return reply::error(
            401,
            "unauthorized",
            "purging needs `Authorization: Bearer <PURGE_SECRET>`",
        );
    }
    let body = req.bytes().await?;
    let request: PurgeRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return reply::error(400, "malformed_json", &err.to_string()),
    };
    let keys = match request.keys() {
        Ok(keys) => keys,
        Err(err) => return reply::error(400, err.code(), &err.to_string()),
    };
    let url = req.url()?;
    let mut purged = Vec::new();
    for key in keys {
        if store::delete(&store::key_url(&url, &key)).await? {
            purged.push(key);
        }
    }
    let mut response = Response::from_json(&PurgeReceipt { purged })?;
    response
        .headers_mut()
        .set("cache-control", shared::cache_control::NO_STORE)?;
    Ok(response)
}
