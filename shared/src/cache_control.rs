//! The `Cache-Control` each route of the origin answers with.
//!
//! Public lists and metadata may be stored by shared caches (the edge) longer than by browsers
//! (`s-maxage` over `max-age`), served stale while the edge revalidates, and served stale when
//! the origin fails. Personal responses are `private, no-cache`: a browser keeps them but asks
//! again every time (a cheap 304), so a new rating shows at once.

/// `GET /movies/{id}`: metadata changes about weekly.
pub const MOVIE: &str =
    "public, max-age=3600, s-maxage=86400, stale-while-revalidate=3600, stale-if-error=86400";
/// `GET /movies/popular`: changes slowly; the edge keeps it ten minutes.
pub const POPULAR: &str =
    "public, max-age=60, s-maxage=600, stale-while-revalidate=300, stale-if-error=86400";
/// `GET /genres`: the genre list practically never changes.
pub const GENRES: &str =
    "public, max-age=86400, stale-while-revalidate=86400, stale-if-error=604800";
/// `GET /genres/{genre}/top`: follows the hourly refresh of the materialized view.
pub const GENRE_TOP: &str =
    "public, max-age=300, s-maxage=3600, stale-while-revalidate=600, stale-if-error=86400";
/// `GET /movies/{id}/similar`: changes only when a new model is loaded; the edge keeps it an
/// hour, which bounds how long an edge serves the previous model's neighbours.
pub const SIMILAR: &str =
    "public, max-age=600, s-maxage=3600, stale-while-revalidate=600, stale-if-error=86400";
/// Profiles and recommendations: only the user's browser may keep them, and must revalidate.
pub const PRIVATE: &str = "private, no-cache";
/// The targeted cache-control field (RFC 9213) this product's edge reads, and no other cache:
/// when a response has it, the edge follows it instead of `Cache-Control` (RFC 9213 2.2), and
/// removes it before the response goes on. A CDN in front of the origin, which would key by
/// URL alone, never reads it, so `private` keeps personal responses out of it.
pub const EDGE_FIELD: &str = "movierec-edge-cache-control";
/// [`EDGE_FIELD`] on profiles and recommendations: the edge, which keys them by the verified
/// user and that user's generation (`crate::personal`), may keep them five seconds, then must
/// revalidate (a 304 when nothing changed). Five seconds is how long a client at another
/// location may read the recommendations from before a rating; `must-revalidate` also keeps
/// it from serving them stale when the origin fails (RFC 9111 5.2.2.2), and lets a response to
/// a request with `Authorization` be stored at all (RFC 9111 3.5).
pub const EDGE_PERSONAL: &str = "max-age=5, must-revalidate";
/// Writes, errors, health, metrics and admin endpoints.
pub const NO_STORE: &str = "no-store";
