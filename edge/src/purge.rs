//! `POST /__edge/purge` with `Authorization: Bearer <PURGE_SECRET>` and a body
//! `{"paths": ["/movies/1", "/movies/popular?limit=5"]}` (each path normalised exactly like a
//! request) and/or `{"tags": ["movie:7", "popular"]}`, optionally `"soft": true`. Every tag,
//! and each path's own, is marked purged in Workers KV (`crate::marks`), so every location
//! stops serving those entries (a soft purge: revalidates them first); a hard purge by path
//! also deletes the entries this location holds at once. Without the secret: 401; without the
//! KV binding: 503.

use crate::marks;
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
    let (keys, tags) = match request
        .keys()
        .and_then(|keys| Ok((keys, request.tags_to_mark()?)))
    {
        Ok(both) => both,
        Err(err) => return reply::error(400, err.code(), &err.to_string()),
    };
    if !marks::configured(env) {
        return reply::error(
            503,
            "purge_unconfigured",
            "the KV binding PURGE_MARKS is not configured for this worker",
        );
    }
    marks::mark(env, &tags, request.soft).await?;
    let url = req.url()?;
    let mut purged = Vec::new();
    if !request.soft {
        for key in keys {
            if store::delete(&store::key_url(&url, &key)).await? {
                purged.push(key);
            }
        }
    }
    let mut response = Response::from_json(&PurgeReceipt {
        purged,
        tags,
        soft: request.soft,
    })?;
    response
        .headers_mut()
        .set("cache-control", shared::cache_control::NO_STORE)?;
    Ok(response)
}
