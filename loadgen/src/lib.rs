//! The project's load generator (SPEC section 8): replays the access pattern of SPEC
//! section 1 against the origin or the edge and reports throughput, latency percentiles and
//! the cache hit rate per request kind.
//!
//! - [`pattern`]: the traffic's shape, pure and seeded;
//! - [`report`]: recording and the report;
//! - [`run`]: the HTTP workers.
//!
//! A closed loop: each of `connections` workers sends its next request when the previous one
//! answered, so the figures are the service's throughput at that concurrency and the latency
//! each request saw (not an open-loop arrival rate).

pub mod pattern;
pub mod report;
pub mod run;
pub mod wrk;

pub use pattern::{Kind, Mix};
pub use report::Report;
pub use run::{Config, LoadError, run, warm};
