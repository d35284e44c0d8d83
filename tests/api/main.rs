//! End-to-end tests of the origin against real PostgreSQL and Redis (or Redis Cluster, with
//! `TEST_REDIS_MODE=cluster`). Start the services first: `scripts/test.sh` does it all.

mod browser;
mod catalog;
mod coherence;
mod cors;
mod dashboard;
mod dataset;
mod degraded;
mod edge;
mod edge_cors;
mod edge_distance;
mod edge_instances;
mod edge_personal;
mod errors;
mod faults;
mod filters;
mod fuzz;
mod incremental;
mod load;
mod openapi;
mod ops;
mod recommender;
mod responsiveness;
mod similar;
mod trace;
mod tracing;
mod users;
