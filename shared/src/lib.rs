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

pub mod cache_control;
pub mod cache_key;
pub mod cache_status;
pub mod dto;
pub mod etag;
pub mod params;
pub mod ttl;
