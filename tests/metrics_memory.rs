//! The metrics recorder's memory stays bounded when nobody scrapes `/metrics`.
//!
//! Every request records a latency sample in a histogram, which keeps it until upkeep folds
//! it into the buckets. This binary counts the heap's live bytes with an instrumented global
//! allocator (hence a test binary of its own), drives requests through the origin's router
//! without ever scraping, and checks that the heap does not grow with the request count.

use axum::body::Body;
use axum::http::Request;
use origin::startup::metrics_upkeep_runs;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use std::alloc::System;
use std::time::Duration;
use tests::{TestApp, fresh_database, redis_mode, redis_url, test_settings};
use tower::ServiceExt;

#[global_allocator]
static HEAP: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed, by every thread of the process.
fn live_heap_bytes() -> i64 {
    let stats = HEAP.stats();
    stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
}

/// Requests of the first round; the second round makes four times as many.
const N: usize = 25_000;

async fn drive(router: &axum::Router, requests: usize) {
    for _ in 0..requests {
        let response = router
            .clone()
            .oneshot(Request::get("/health").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

/// Returns after two more upkeep runs have finished, so one started after the last request.
async fn upkeep_ran() {
    let target = metrics_upkeep_runs() + 2;
    let wait = async {
        while metrics_upkeep_runs() < target {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the metrics upkeep does not run");
}

#[tokio::test]
async fn histogram_samples_do_not_pile_up_without_a_scrape() {
    let mode = redis_mode();
    let mut settings = test_settings(&fresh_database().await, mode, &redis_url(mode));
    settings.metrics_upkeep_ms = 10;
    let app = TestApp::spawn_with(settings).await;
    let router = origin::routes::router(app.state.clone());

    // The first round also brings every lazily built structure to its working size.
    drive(&router, N).await;
    upkeep_ran().await;
    let after_n = live_heap_bytes();
    drive(&router, 4 * N).await;
    upkeep_ran().await;
    let after_5n = live_heap_bytes();

    // Kept samples would cost at least 8 bytes each: 4N more requests, 800 KB. A bound of a
    // byte per request separates the two by a factor of 8.
    let growth = after_5n - after_n;
    eprintln!(
        "live heap: {after_n} B after {N} requests, {after_5n} B after {}",
        5 * N
    );
    assert!(
        growth < (4 * N) as i64,
        "the heap grew by {growth} B over {} requests without a scrape",
        4 * N
    );
}
