//! `POST /__edge/purge` with `Authorization: Bearer <PURGE_SECRET>` and a body
//! `{"paths": ["/movies/1", "/movies/popular?limit=5"]}`: removes those entries (each path
//! normalised exactly like a request) from this location's cache. Without the secret: 401.

use crate::operator;
use crate::reply;
use crate::store;
use shared::purge::{PurgeReceipt, PurgeRequest};
use worker::{Env, Method, Request, Response, Result};

/// Handles the purge endpoint.
pub async fn handle(mut req: Request, env: &Env) -> Result<Response> {
    if req.method() != Method::Post {
        return reply::error(405, "method_not_allowed", "use POST");
    }
    if let Some(refusal) = operator::refusal(&req, env)? {
        return Ok(refusal);
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
