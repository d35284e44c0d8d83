//! The origin: a native axum + tokio service in front of PostgreSQL (the source of truth) and
//! Redis (the application cache).
//!
//! A tour:
//! - [`settings`]: typed configuration from flags and environment.
//! - [`startup`]: `Application::build` / `run_until_stopped`.
//! - [`routes`]: the HTTP API, one module per resource; [`http`]: extractors, ETags, 304s,
//!   `Cache-Status`, CORS and the middleware around every request; [`auth`]: JWTs; [`error`]: the one error type and its JSON bodies;
//!   [`openapi`]: the OpenAPI 3.1 document of the API, generated from the handlers' annotations.
//! - [`breaker`]: the circuit breakers that keep requests from waiting for a dependency known
//!   to be down.
//! - [`reads`]: each cached family's key, TTL and computation; [`cache`]: the Redis cache
//!   (single flight, generations, stale serving, degraded mode); [`stats`]: its report.
//! - [`dataset`]: the data set's epoch, so a replaced data set is never served from cache.
//! - [`db`]: PostgreSQL queries; [`recommend`]: the recommendation strategies; [`model`]:
//!   training, storing, loading and swapping the recommender model.
//! - [`hooks`]: test seams where a test holds a request to make an interleaving happen.
//! - [`warm`]: warming and hourly maintenance; [`import`]: MovieLens and synthetic data.
//! - [`telemetry`]: `x-request-id`, the one log line per request, the log subscriber;
//!   [`trace`]: each recent request's cache decisions and timings, by request id.

pub mod activity;
pub mod auth;
pub mod breaker;
pub mod cache;
pub mod dataset;
pub mod db;
pub mod edge;
pub mod error;
pub mod hooks;
pub mod http;
pub mod import;
pub mod model;
pub mod openapi;
pub mod picks;
pub mod reads;
pub mod recommend;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod stats;
pub mod telemetry;
pub mod trace;
pub mod warm;
