//! The Workers Cache API, with what it does not keep for us.
//!
//! The Cache API drops an entry when its `Cache-Control` lifetime ends and knows nothing of
//! `stale-while-revalidate` or `stale-if-error`. So an entry is stored with a lifetime long
//! enough for its stale windows too, and the facts `shared::freshness` needs travel in
//! internal header fields: when it was stored, its `Age` then, and the origin's own
//! `Cache-Control`. They are removed again before anything reaches a client.
//!
//! A response with the edge's targeted field (`shared::cache_control::EDGE_FIELD`, RFC 9213)
//! is kept by that field's directives rather than its `Cache-Control` ([`policy`]); both are
//! kept, as received, for the revalidations to come, and neither field of the edge's own
//! reaches a client (`reply`).
//!
//! An entry also keeps its tags (the origin's `x-cache-tags`, removed from what is served) and
//! when the fetch that got it started, which `shared::purge_marks` judges it by.
//!
//! The `x-request-id` of the request that stored an entry is not stored: each response
//! carries its own request's id (set in `lib.rs`). Nor are CORS headers, or the `Vary`
//! members that only concern them: each response gets its own requester's (`cors`).

use crate::reply::Served;
use shared::directives::CacheDirectives;
use shared::freshness::StoredResponse;
use worker::{Cache, Headers, Response, Result, Url};

const STORED_AT: &str = "x-edge-stored-at";
const AGE_AT_STORE: &str = "x-edge-age-at-store";
const ORIGIN_CACHE_CONTROL: &str = "x-edge-cache-control";
const TAGS: &str = "x-edge-tags";
const FETCHED_AT_MS: &str = "x-edge-fetched-at-ms";
const TARGETED: &str = "x-edge-targeted-cache-control";

/// The directives the edge keeps `served` by: its targeted field if it has one, else its
/// `Cache-Control` (`shared::directives::for_edge`).
pub fn policy(served: &Served) -> &str {
    shared::directives::for_edge(
        served.header("cache-control"),
        served.header(shared::cache_control::EDGE_FIELD),
    )
}

/// A stored response and its metadata.
#[derive(Debug, Clone)]
pub struct Stored {
    /// What is served from it (the origin's headers, restored).
    pub served: Served,
    /// Age and freshness.
    pub meta: StoredResponse,
    /// The origin's tags for it.
    pub tags: Vec<String>,
    /// When the fetch that got it started, in ms since the Unix epoch.
    pub fetched_at_ms: u64,
}

impl Stored {
    /// Its tags, its own path's (`key` is its normalised path and query) and `all`, which
    /// every entry has whatever the origin named (an import purges it).
    pub fn tags_with_path(&self, key: &str) -> Vec<String> {
        let mut tags = self.tags.clone();
        tags.push(shared::purge_marks::path_tag(key));
        let all = shared::purge_marks::tag::ALL;
        if !tags.iter().any(|tag| tag == all) {
            tags.push(all.to_owned());
        }
        tags
    }
}

/// The Cache API key of a normalised path: the request's scheme and host, then the path, so
/// environments sharing a cache never share entries.
pub fn key_url(request: &Url, path_and_query: &str) -> String {
    let host = request.host_str().unwrap_or("edge");
    match request.port() {
        Some(port) => format!("{}://{host}:{port}{path_and_query}", request.scheme()),
        None => format!("{}://{host}{path_and_query}", request.scheme()),
    }
}

/// The stored copy, if the Cache API still holds one.
pub async fn get(key: &str) -> Result<Option<Stored>> {
    let Some(mut response) = Cache::default().get(key, false).await? else {
        return Ok(None);
    };
    let mut stored_at = None;
    let mut age_at_store = None;
    let mut origin_cache_control = None;
    let mut tags = Vec::new();
    let mut fetched_at_ms = None;
    let mut targeted = None;
    let mut headers = Vec::new();
    for (name, value) in response.headers().entries() {
        match name.as_str() {
            STORED_AT => stored_at = value.parse::<u64>().ok(),
            AGE_AT_STORE => age_at_store = Some(value),
            ORIGIN_CACHE_CONTROL => origin_cache_control = Some(value),
            TAGS => tags = shared::purge_marks::parse_tags(&value),
            FETCHED_AT_MS => fetched_at_ms = value.parse::<u64>().ok(),
            TARGETED => targeted = Some(value),
            // `x-request-id`: entries stored before it was dropped on storing.
            "cache-control"
            | "age"
            | "content-length"
            | "cf-cache-status"
            | shared::request_id::HEADER => {}
            _ => headers.push((name, value)),
        }
    }
    // An entry without our metadata is not ours to interpret: treat it as absent.
    let (Some(stored_at), Some(cache_control)) = (stored_at, origin_cache_control) else {
        return Ok(None);
    };
    headers.push(("cache-control".to_owned(), cache_control.clone()));
    if let Some(targeted) = &targeted {
        headers.push((
            shared::cache_control::EDGE_FIELD.to_owned(),
            targeted.clone(),
        ));
    }
    let policy = shared::directives::for_edge(Some(&cache_control), targeted.as_deref());
    let body = response.bytes().await?;
    Ok(Some(Stored {
        served: Served {
            status: response.status_code(),
            headers,
            body,
        },
        meta: StoredResponse::new(stored_at, age_at_store.as_deref(), Some(policy)),
        tags,
        fetched_at_ms: fetched_at_ms.unwrap_or(stored_at * 1000),
    }))
}

/// Stores `served` (received at `stored_at` with `Age: age`, by a fetch that started at
/// `fetched_at_ms`) under `key`, with the tags of its `x-cache-tags`, for as long as its
/// directives allow it to be served, and at least `keep_secs`.
pub async fn put(
    key: &str,
    served: &Served,
    stored_at: u64,
    age: Option<&str>,
    fetched_at_ms: u64,
    keep_secs: u64,
) -> Result<()> {
    let cache_control = served
        .header("cache-control")
        .unwrap_or_default()
        .to_owned();
    let targeted = served.header(shared::cache_control::EDGE_FIELD);
    let directives = CacheDirectives::parse(policy(served));
    let lifetime = directives.freshness_lifetime_shared().unwrap_or(0) as u64;
    let windows = directives
        .stale_while_revalidate_secs()
        .max(directives.stale_if_error_secs()) as u64;
    let headers = Headers::new();
    for (name, value) in &served.headers {
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "cache-control"
                | "age"
                | "content-length"
                | "set-cookie"
                | "connection"
                | shared::request_id::HEADER
                | shared::purge_marks::TAGS_HEADER
                | shared::cache_control::EDGE_FIELD
                | shared::personal::GENERATION_HEADER
        ) || shared::cors::per_requester(&lower)
        {
            continue;
        }
        // CORS is added per request (`crate::cors`): the stored copy does not vary by `Origin`.
        if lower == "vary" {
            if let Some(vary) = shared::cors::vary_for_storage(value) {
                headers.append(name, &vary)?;
            }
            continue;
        }
        headers.append(name, value)?;
    }
    headers.set(
        "cache-control",
        &format!(
            "public, max-age={}",
            (lifetime + windows).max(keep_secs).max(1)
        ),
    )?;
    headers.set(STORED_AT, &stored_at.to_string())?;
    headers.set(AGE_AT_STORE, age.unwrap_or("0"))?;
    headers.set(ORIGIN_CACHE_CONTROL, &cache_control)?;
    headers.set(FETCHED_AT_MS, &fetched_at_ms.to_string())?;
    if let Some(targeted) = targeted {
        headers.set(TARGETED, targeted)?;
    }
    if let Some(tags) = served.header(shared::purge_marks::TAGS_HEADER) {
        headers.set(TAGS, &shared::purge_marks::parse_tags(tags).join(" "))?;
    }
    let response = Response::from_bytes(served.body.clone())?
        .with_status(served.status)
        .with_headers(headers);
    Cache::default().put(key, response).await
}

/// Removes `key`; whether something was there.
pub async fn delete(key: &str) -> Result<bool> {
    Ok(matches!(
        Cache::default().delete(key, false).await?,
        worker::CacheDeletionOutcome::Success
    ))
}
