//! Pure types and policy shared by the origin (native) and the edge (wasm32).
//!
//! Nothing here performs I/O or reads the clock: every function takes what it needs (bodies,
//! header values, `now`) as arguments, so the same rules run on both sides and are unit tested
//! natively.
//!
//! - [`dto`]: the JSON bodies of the HTTP API, errors included.
//! - [`params`]: validated input (`MovieId::parse`, `Limit::parse`, `Rating::parse`, ...).
//! - [`cache_key`]: the application-cache families and their Redis keys.
//! - [`ttl`]: how long each family lives, power users included.
//! - [`cache_control`]: the `Cache-Control` each route answers with.
//! - [`etag`]: strong ETags and `If-None-Match` matching.
//! - [`cache_status`]: `Cache-Status` (RFC 9211) entries.
//! - [`cors`]: which origins browsers may call the API from, and the CORS headers.
//! - [`request_id`]: which `x-request-id` values are kept, and the form of fresh ones.
//! - [`token`]: the bearer tokens (HS256 JWTs), verified alike by the origin and the edge.
//!
//! The edge's HTTP-cache policy (RFC 9111, RFC 5861), which the worker only calls:
//! - [`edge_key`]: which requests the edge caches, and their normalised keys.
//! - [`personal`]: a user's own reads at the edge, keyed by the verified user and generation.
//! - [`purge_marks`]: global purge by tag: when each tag was purged, and what that makes of a
//!   stored entry.
//! - [`edge_stats`]: the edge's counters per route (hits, stale, misses...), for the dashboard.
//! - [`directives`]: a response's `Cache-Control` parsed as a shared cache reads it.
//! - [`storable`]: whether the edge may store a response, and why not.
//! - [`freshness`]: a stored response's age, and whether it is fresh, stale-usable or expired.
//! - [`revalidation`]: `If-None-Match` from the cache, and the origin's answer to a revalidation.
//! - [`purge`]: the purge endpoint's body and the keys it removes.
//! - [`origins`]: which origin instance a request goes to, and whether a failure may try the next.

pub mod cache_control;
pub mod cache_key;
pub mod cache_status;
pub mod cors;
pub mod directives;
pub mod dto;
pub mod edge_key;
pub mod edge_stats;
pub mod etag;
pub mod freshness;
pub mod origins;
pub mod params;
pub mod personal;
pub mod purge;
pub mod purge_marks;
pub mod request_id;
pub mod revalidation;
pub mod storable;
pub mod token;
pub mod ttl;
