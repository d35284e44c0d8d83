//! The OpenAPI 3.1 document of the origin's API, served at `GET /openapi.json` so that API
//! clients (and their code generators) have a machine-readable description of it.
//!
//! It is generated from the code by utoipa, once, when the router is built:
//! - each handler's `#[utoipa::path]` (path, parameters, request body, every status it can
//!   answer with and its body), gathered in `routes::Operations`;
//! - the JSON bodies of `shared::dto`, which derive `ToSchema` behind `shared`'s `openapi`
//!   feature (only the origin turns it on: the wasm edge does not build utoipa);
//! - [`schemas`]: the admin and health bodies the handlers build in place or from this crate's
//!   internal types;
//! - [`Conventions`]: what every route shares, added here rather than repeated in each
//!   annotation (security schemes, the headers every response carries, `ETag` on conditional
//!   responses, `WWW-Authenticate` on 401, `Retry-After` on 503, the opaque 500).
//!
//! `tests/api/openapi.rs` keeps the document from drifting: every route the router serves must
//! be in it, and real responses of every route (errors, 304s and 503s included) are validated
//! against it.

use crate::cache::{CACHE_NAME, Rendered};
use crate::http::conditional;
use crate::state::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use shared::cache_status::{CacheStatus, Forward};
use shared::dto::ErrorBody;
use shared::params::{Limit, Strategy};
use std::sync::LazyLock;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    Content, Object, ObjectBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder, Type,
};
use utoipa::{IntoParams, Modify, OpenApi};

/// `Cache-Control` of `/openapi.json`: it changes only with a deployment, and its ETag makes
/// revalidation cheap.
pub const CACHE_CONTROL: &str = "public, max-age=300, stale-while-revalidate=3600";

/// The description of every 304.
pub const NOT_MODIFIED: &str = "`If-None-Match` matched the current `ETag`: no body.";
/// The description of a 503 of a read or write that needs PostgreSQL.
pub const DATABASE_UNAVAILABLE: &str = "`database_unavailable`: PostgreSQL cannot be reached and \
    no cached copy can stand in; retry after `Retry-After` seconds.";
/// The description of every 401.
pub const UNAUTHORIZED: &str = "`unauthorized`: no `Authorization: Bearer` token, or one that \
    does not verify (bad signature, expired, `sub` not a user id).";
/// The description of a 403 of a user's route.
pub const FORBIDDEN_USER: &str =
    "`forbidden`: a user's token for another user's data (an admin's token may read anyone's).";
/// The description of a 403 of an admin route.
pub const FORBIDDEN_ADMIN: &str = "`forbidden`: a valid token without the admin role.";
/// The description of every 413.
pub const PAYLOAD_TOO_LARGE: &str =
    "`payload_too_large`: a request body over the limit (16 KiB, `http::MAX_BODY_BYTES`).";

/// What is not any one route's: the document's title, tags, the `/openapi.json` operation and
/// the error body every route may answer with.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Movie recommendations",
        description = "The origin's HTTP API: public, cacheable movie and genre lists; a user's \
            profile, recommendations and ratings (the user's JWT or an admin's); administration \
            (an admin's JWT); health and metrics. Every error is \
            `{\"error\": {\"code\", \"message\"}}` with a stable snake_case `code`; every \
            response carries `x-request-id` and `Cache-Status`."
    ),
    paths(serve),
    components(schemas(ErrorBody)),
    tags(
        (name = "movies", description = "Public movie data, cacheable by browsers and the edge."),
        (name = "genres", description = "Genres and their best-rated movies, cacheable everywhere."),
        (name = "users", description = "A user's own data: the user's token or an admin's."),
        (name = "admin", description = "Maintenance and statistics: an admin's token."),
        (name = "ops", description = "Health, readiness, metrics and this document."),
    )
)]
struct Base;

/// The whole document: [`Base`], every route's operation, then [`Conventions`].
pub fn document() -> Document {
    let mut document = Base::openapi();
    document.merge(crate::routes::Operations::openapi());
    Conventions.modify(&mut document);
    document
}

/// The document as served: rendered once, on first use (the router forces it at start-up).
static RENDERED: LazyLock<Rendered> = LazyLock::new(|| {
    let json = document()
        .to_json()
        .expect("the OpenAPI document serialises");
    Rendered::new(Bytes::from(json))
});

/// `GET /openapi.json`, rendered now rather than by the first client to ask.
pub fn router() -> Router<AppState> {
    LazyLock::force(&RENDERED);
    Router::new().route("/openapi.json", get(serve))
}

/// This document
///
/// The OpenAPI 3.1 description of this API, generated from the code.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "ops",
    responses(
        (status = 200, description = "The document.", body = Object, content_type = "application/json"),
        (status = 304, description = NOT_MODIFIED),
    )
)]
async fn serve(headers: HeaderMap) -> Response {
    conditional(
        &headers,
        RENDERED.clone(),
        CACHE_CONTROL,
        &CacheStatus::bypass(CACHE_NAME, Forward::Bypass),
    )
}

/// `?limit=` of the movie lists.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many movies to list.
    #[param(schema_with = limit_schema)]
    pub limit: Option<u32>,
}

/// `?limit=` of the similar movies.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SimilarQuery {
    /// How many similar movies to list.
    #[param(schema_with = similar_limit_schema)]
    pub limit: Option<u32>,
}

/// `?n=&strategy=&exclude=&genre=` of the recommendations.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecommendationsQuery {
    /// How many recommendations.
    #[param(schema_with = n_schema)]
    pub n: Option<u32>,
    /// How they are chosen.
    #[param(schema_with = strategy_schema)]
    pub strategy: Option<String>,
    /// Movies to leave out.
    #[param(schema_with = exclude_schema)]
    pub exclude: Option<String>,
    /// Only movies of this genre.
    #[param(schema_with = genre_filter_schema)]
    pub genre: Option<String>,
}

/// A list length as `Limit::parse` accepts it: an integer from 1 to `Limit::MAX`.
fn list_length(default: Limit) -> Object {
    ObjectBuilder::new()
        .description(Some(format!(
            "How many: 1 to {}, {} when absent; anything else is a 400 `invalid_limit`.",
            Limit::MAX,
            default.get()
        )))
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(Limit::MAX))
        .default(Some(default.get().into()))
        .build()
}

fn limit_schema() -> Object {
    list_length(Limit::DEFAULT)
}

fn n_schema() -> Object {
    list_length(Limit::DEFAULT_N)
}

fn similar_limit_schema() -> Object {
    list_length(Limit::DEFAULT_SIMILAR)
}

/// `exclude` as `Exclude::parse` accepts it.
fn exclude_schema() -> Object {
    ObjectBuilder::new()
        .description(Some(format!(
            "Movie ids to leave out, comma-separated (`1,50,172`): 1 to {} positive integers; \
             anything else is a 400 `invalid_exclude`. Applied, with `genre`, to the user's \
             list of {} (cached as any `n={}` request is), then cut to `n`: fewer than `n` items \
             come back when fewer survive.",
            shared::params::Exclude::MAX,
            Limit::MAX,
            Limit::MAX,
        )))
        .schema_type(Type::String)
        .pattern(Some("^[0-9]+(,[0-9]+)*$"))
        .build()
}

/// `genre` as `reads::find_genre` resolves it.
fn genre_filter_schema() -> Object {
    ObjectBuilder::new()
        .description(Some(
            "Only movies of this genre, named as `/genres/{genre}/top` accepts (name or slug, \
             case-insensitively); an unknown genre is a 404 `genre_not_found`, as there.",
        ))
        .schema_type(Type::String)
        .build()
}

/// The strategies `Strategy::parse` accepts, and the one it picks when none is given.
fn strategy_schema() -> Object {
    let default = Strategy::parse(None).map(Strategy::as_str).ok();
    ObjectBuilder::new()
        .description(Some(
            "How they are chosen; anything else is a 400 `invalid_strategy`. `collaborative` \
             needs a trained model (a 503 `model_unavailable` without one); `hybrid` blends the \
             others.",
        ))
        .schema_type(Type::String)
        .enum_values(Some(Strategy::ALL.map(Strategy::as_str)))
        .default(default.map(Into::into))
        .build()
}

/// What every route shares, applied to the merged document:
/// - the two bearer schemes: a user's JWT (`sub` = the user id) and an admin's (`role: admin`);
/// - on every response: `x-request-id`, `Cache-Status` and `Cache-Control`;
/// - on the 200 and 304 of a route that answers 304: its strong `ETag`;
/// - on every 401: `WWW-Authenticate: Bearer`; on every 503 with the error body: `Retry-After`;
/// - on every operation: the opaque 500 (logged in full, shown as `internal`).
///
/// Every header documented on a response is sent with it (`tests/api/openapi.rs` checks).
pub struct Conventions;

impl Modify for Conventions {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "user_jwt",
            bearer("A user's HS256 JWT: `sub` is the user id. It reads and writes that user's data only."),
        );
        components.add_security_scheme(
            "admin_jwt",
            bearer("An administrator's HS256 JWT: `role` is `admin`. It may call every route."),
        );
        for (name, description) in HEADERS {
            let header = HeaderBuilder::new()
                .schema(Some(Object::with_type(Type::String)))
                .description(Some(description))
                .build();
            components.headers.insert(name.into(), RefOr::T(header));
        }
        for item in document.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                shared_responses(operation);
            }
        }
    }
}

/// The response headers of [`Conventions`]: `(name, description)`, kept once in
/// `components.headers` and referenced from each response.
const HEADERS: [(&str, &str); 6] = [
    (
        shared::request_id::HEADER,
        "The request's id: the client's when well-formed, else a new one. It names the request \
         in the logs and in `GET /admin/trace/{request_id}`.",
    ),
    (
        "cache-status",
        "RFC 9211: how the origin's cache answered, e.g. `origin; hit; ttl=3541`, \
         `origin; fwd=miss; stored` or `origin; fwd=bypass`.",
    ),
    (
        "cache-control",
        "How long the response may be kept: the route's own policy on its 200 and 304 (public \
         lists for minutes to a day, `private, no-cache` for a user's data), `no-store` on \
         errors, writes and uncacheable routes.",
    ),
    (
        "etag",
        "A strong validator of the body: send it back in `If-None-Match` for a 304.",
    ),
    (
        "www-authenticate",
        "`Bearer`: the scheme to authenticate with.",
    ),
    ("retry-after", "Seconds to wait before retrying."),
];

/// The headers and the 500 of [`Conventions`], on one operation.
fn shared_responses(operation: &mut Operation) {
    let error_body = || Content::new(Some(Ref::from_schema_name("ErrorBody")));
    operation.responses.responses.insert(
        "500".into(),
        ResponseBuilder::new()
            .description("`internal`: an unexpected failure, logged with the request's id.")
            .content("application/json", error_body())
            .into(),
    );
    let conditional = operation.responses.responses.contains_key("304");
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        let has_error_body = matches!(
            response.content.get("application/json"),
            Some(RefOr::T(Content { schema: Some(RefOr::Ref(r)), .. }))
                if r.ref_location.ends_with("/ErrorBody")
        );
        let mut names = vec![shared::request_id::HEADER, "cache-status", "cache-control"];
        if conditional && (status == "200" || status == "304") {
            names.push("etag");
        }
        if status == "401" {
            names.push("www-authenticate");
        }
        if status == "503" && has_error_body {
            names.push("retry-after");
        }
        for name in names {
            let reference = Ref::new(format!("#/components/headers/{name}"));
            response.headers.insert(name.into(), RefOr::Ref(reference));
        }
    }
}

/// Bodies of routes that build them in place (`json!`) or from this crate's internal report
/// types, which live beside the code that fills them (some in `cache`, which the document
/// should not reach into). These are copies: `tests/api/openapi.rs` validates real responses
/// against them, with unknown properties refused and every property required (an absent value
/// is sent as `null`), so a changed report fails the test until its copy here follows.
pub mod schemas {
    use std::collections::BTreeMap;
    use utoipa::ToSchema;

    /// `GET /health`.
    #[derive(ToSchema)]
    pub struct Health {
        /// Always `ok`.
        pub status: String,
    }

    /// `POST /admin/views/refresh`.
    #[derive(ToSchema)]
    pub struct ViewRefresh {
        /// Whether this instance refreshed the view (false: another instance is refreshing it).
        pub refreshed: bool,
        /// What happened, in words.
        pub detail: String,
        /// Duration, ms.
        pub elapsed_ms: u64,
    }

    /// `POST /admin/model/reload`.
    #[derive(ToSchema)]
    pub struct ModelReload {
        /// The version now served.
        pub version: String,
        /// The version served before, if any.
        #[schema(required = true)]
        pub previous: Option<String>,
        /// Whether the model changed (then the power users' recommendations are recomputed in
        /// the background).
        pub changed: bool,
    }

    /// `POST /admin/cache/warm` (`warm::WarmReport`).
    #[derive(ToSchema)]
    pub struct WarmReport {
        /// The popular list is cached.
        pub popular: bool,
        /// Genre lists cached.
        pub genres: u64,
        /// Movies whose metadata is cached (the most rated, at most `WARM_MOVIES`).
        pub movies: u64,
        /// Users this instance served in the last `ACTIVITY_WINDOW_SECS`, warmed first.
        pub recent_users: u64,
        /// Users to warm: the recent ones, then the most active by rating count (power users
        /// first), at most `WARM_MAX_USERS` of those.
        pub users: u64,
        /// Users whose default recommendations and profile are cached.
        pub users_warmed: u64,
        /// Computations that failed.
        pub failed: u64,
        /// The deadline stopped the run early.
        pub timed_out: bool,
        /// Duration of the run, ms.
        pub elapsed_ms: u64,
    }

    /// `GET /admin/cache/stats` (`stats::CacheReport`).
    #[derive(ToSchema)]
    pub struct CacheReport {
        /// Per cache family (`popular`, `metadata`, ...), this instance's counters.
        pub families: BTreeMap<String, FamilySnapshot>,
        /// Over all families: (hits + stale) / lookups; `null` before any lookup.
        #[schema(required = true)]
        pub hit_rate: Option<f64>,
        /// Invalidations waiting for Redis.
        pub pending_invalidations: u64,
        /// This instance's local tier (each instance reports its own).
        pub local: LocalTierStats,
        /// Redis.
        pub redis: RedisReport,
        /// The alert states.
        pub alerts: Alerts,
    }

    /// One family's counters (`cache::stats::FamilySnapshot`).
    #[derive(ToSchema)]
    pub struct FamilySnapshot {
        /// Clients' lookups served fresh from the cache (the local tier or Redis).
        pub hits: u64,
        /// Of those, served from this instance's local tier.
        pub local_hits: u64,
        /// Clients' lookups not served from the cache (absent, invalidated, expired).
        pub misses: u64,
        /// Served from Redis past its TTL because PostgreSQL failed.
        pub stale: u64,
        /// Values computed for clients' misses (one per single flight).
        pub computations: u64,
        /// Warming's lookups that found the value cached already.
        pub warm_hits: u64,
        /// Warming's lookups that computed the value.
        pub warm_misses: u64,
        /// Values computed by warming.
        pub warm_computations: u64,
        /// Hot entries recomputed in the background before they expired.
        pub refresh_computations: u64,
        /// Early refreshes left to the instance that claimed them first.
        pub refreshes_skipped: u64,
        /// Invalidations.
        pub invalidations: u64,
        /// Redis commands that failed or timed out.
        pub errors: u64,
        /// Clients' (hits + stale) / (hits + stale + misses); `null` before any lookup.
        #[schema(required = true)]
        pub hit_rate: Option<f64>,
        /// Values this instance wrote to Redis.
        pub stores: u64,
        /// Their mean size in bytes (key and entry), before Redis's own per-key overhead;
        /// `null` before any write.
        #[schema(required = true)]
        pub bytes_per_entry: Option<u64>,
    }

    /// The local tier of one instance (`cache::LocalTierStats`).
    #[derive(ToSchema)]
    pub struct LocalTierStats {
        /// The instance (`INSTANCE_NAME`).
        pub instance: String,
        /// The byte bound (`LOCAL_CACHE_BYTES`).
        pub capacity_bytes: u64,
        /// What the values held weigh now (an estimate).
        pub size_bytes: u64,
        /// Values held.
        pub entries: u64,
        /// Lookups served from here.
        pub hits: u64,
        /// Lookups that went on to Redis.
        pub misses: u64,
        /// Values put here.
        pub inserts: u64,
        /// Values removed because their key changed.
        pub invalidations: u64,
        /// Times the whole tier was dropped (a tracking session ended, the data set changed).
        pub flushes: u64,
        /// `hits / (hits + misses)`; `null` before any lookup.
        #[schema(required = true)]
        pub hit_rate: Option<f64>,
        /// The live tracking session (0: none; shared values are then not served locally).
        pub tracking_session: u64,
        /// Tracking sessions started (more than 1: connections to Redis were remade).
        pub tracking_sessions_started: u64,
        /// Changes of shared keys this instance heard of.
        pub tracking_notices: u64,
    }

    /// Redis's figures (`stats::RedisReport`), summed over a cluster's masters.
    #[derive(ToSchema)]
    pub struct RedisReport {
        /// `single` or `cluster`.
        pub mode: RedisMode,
        /// Whether Redis answered.
        pub reachable: bool,
        /// Round trip of a `PING`, ms; `null` without an answer.
        #[schema(required = true)]
        pub latency_ms: Option<f64>,
        /// Masters that answered `INFO`.
        pub masters: u64,
        /// `used_memory`, bytes.
        pub used_memory_bytes: u64,
        /// `maxmemory`, bytes (0 = unlimited).
        pub maxmemory_bytes: u64,
        /// `evicted_keys`.
        pub evicted_keys: u64,
        /// `connected_clients`.
        pub connected_clients: u64,
        /// `instantaneous_ops_per_sec`.
        pub ops_per_sec: u64,
    }

    /// How the origin reaches Redis.
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum RedisMode {
        /// One server.
        Single,
        /// A Redis Cluster.
        Cluster,
    }

    /// The alerts of `/admin/cache/stats`.
    #[derive(ToSchema)]
    pub struct Alerts {
        /// The hit rate over all families below 60%.
        pub hit_rate_low: Alert,
        /// Redis's used memory above 90% of `maxmemory`.
        pub memory_high: Alert,
        /// A `PING` slower than 10 ms (or no answer).
        pub latency_high: Alert,
    }

    /// One alert.
    #[derive(ToSchema)]
    pub struct Alert {
        /// Its state.
        pub state: AlertState,
        /// The measured value; `null` when there is none.
        #[schema(required = true)]
        pub value: Option<f64>,
        /// The threshold it is compared with.
        pub threshold: f64,
    }

    /// An alert's state.
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum AlertState {
        /// Within its threshold.
        Ok,
        /// Past its threshold.
        Firing,
        /// Too little data to judge.
        Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn as_json() -> Value {
        serde_json::to_value(document()).unwrap()
    }

    #[test]
    fn the_document_is_openapi_3_1_with_both_bearer_schemes() {
        let document = as_json();
        assert_eq!(document["openapi"], "3.1.0");
        for scheme in ["user_jwt", "admin_jwt"] {
            let scheme = &document["components"]["securitySchemes"][scheme];
            assert_eq!(
                (&scheme["type"], &scheme["scheme"]),
                (&json!("http"), &json!("bearer"))
            );
        }
    }

    #[test]
    fn the_list_parameters_follow_the_parsers() {
        let document = as_json();
        let parameter = |path: &str, name: &str| {
            document["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{path} documents `{name}`"))["schema"]
                .clone()
        };
        let limit = parameter("/movies/popular", "limit");
        assert_eq!(limit["maximum"], Limit::MAX);
        assert_eq!(limit["default"], Limit::DEFAULT.get());
        let n = parameter("/users/{id}/recommendations", "n");
        assert_eq!(n["default"], Limit::DEFAULT_N.get());
        let strategy = parameter("/users/{id}/recommendations", "strategy");
        assert_eq!(strategy["default"], "hybrid");
        assert_eq!(
            strategy["enum"].as_array().unwrap().len(),
            Strategy::ALL.len()
        );
    }

    #[test]
    fn the_body_limit_described_is_the_one_applied() {
        let kib = crate::http::MAX_BODY_BYTES / 1024;
        assert!(PAYLOAD_TOO_LARGE.contains(&format!("({kib} KiB")));
    }
}
