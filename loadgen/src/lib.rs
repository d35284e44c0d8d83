//! The project's load generator (SPEC section 8): replays the access pattern of SPEC
//! section 1 against the origin or the edge and reports throughput, latency percentiles and
//! the cache hit rate per request kind; optionally breaks the project's own services while it
//! does (faults), and checks that no acknowledged rating was lost.
//!
//! - [`pattern`]: the traffic's shape, pure and seeded;
//! - [`run`]: the HTTP workers (closed loop, or paced to a rate) and the run's order of events;
//! - [`report`]: per-kind recording and the report; [`timeline`]: the same second by second;
//! - [`fault`]: faults as data and the `--fault` syntax; [`inject`]: running them through the
//!   project's scripts, on services identified as the project's own; [`cluster`]: reading a
//!   Redis Cluster's view of itself (the failover window);
//! - [`ledger`]: rating answers against the rows PostgreSQL gained;
//! - [`memory`]: the origin's and Redis's memory over a soak;
//! - [`wrk`]: the same pattern as a `wrk` script; [`error`]: the crate's one error.
//!
//! By default each of `connections` workers sends its next request when the previous one
//! answered, so the figures are the service's throughput at that concurrency and the latency
//! each request saw. A test drives faults on its own servers with [`run_with`]:
//!
//! ```no_run
//! # async fn example(config: loadgen::Config) -> Result<(), loadgen::LoadError> {
//! use loadgen::{Fault, FaultKind, Options};
//! use std::time::Duration;
//!
//! let options = Options {
//!     faults: vec![Fault::new(
//!         FaultKind::Redis { dir: "/tmp/my-redis".into(), port: 6499 },
//!         Duration::from_secs(2),
//!         Duration::from_secs(3),
//!     )],
//!     ..Options::default()
//! };
//! let report = loadgen::run_with(&config, &options, std::future::pending()).await?;
//! assert!(report.fault_failures().is_empty());
//! # Ok(()) }
//! ```

pub mod cluster;
pub mod error;
pub mod fault;
pub mod inject;
pub mod ledger;
pub mod link;
pub mod memory;
pub mod pattern;
pub mod report;
pub mod run;
pub mod timeline;
pub mod wrk;

pub use error::LoadError;
pub use fault::{Fault, FaultKind, FaultSpec, Layout};
pub use inject::{FaultReport, Scripts};
pub use ledger::{Ledger, RatingFate, Verdict};
pub use memory::{MemoryProbe, OriginProcess};
pub use pattern::{Kind, Mix};
pub use report::Report;
pub use run::{Config, Options, run, run_with, warm};
