//! The origin's memory stays flat: when nobody scrapes `/metrics`, and under the mixed
//! workload with ratings (the short version of the README's soak, `loadgen --duration 600
//! --rate R --sample-memory`).
//!
//! Every request records a latency sample in a histogram, which keeps it until upkeep folds
//! it into the buckets; every rating replaces cached values, here and in Redis. This binary
//! counts the heap's live bytes with an instrumented global allocator (hence a test binary of
//! its own), drives requests through the origin's router, and checks that the heap does not
//! grow with the request count once every structure has reached its working size.

use axum::body::Body;
use axum::http::{Request, header};
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

/// One round of the soak: every movie, every user's recommendations and profile, the lists,
/// and `ratings` ratings (users and movies chosen by the round, values alternating).
async fn soak_round(router: &axum::Router, tokens: &[String], round: usize, ratings: usize) {
    let get = |path: String, token: Option<&String>| {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, token);
        }
        request.body(Body::empty()).unwrap()
    };
    let mut requests = Vec::new();
    for movie in 1..=1682 {
        requests.push(get(format!("/movies/{movie}"), None));
    }
    for (i, token) in tokens.iter().enumerate() {
        let user = i + 1;
        requests.push(get(format!("/users/{user}/recommendations"), Some(token)));
        requests.push(get(format!("/users/{user}/profile"), Some(token)));
    }
    for path in ["/movies/popular?limit=20", "/genres", "/genres/drama/top"] {
        requests.push(get(path.to_owned(), None));
    }
    for i in 0..ratings {
        let user = (round * ratings + i) % tokens.len() + 1;
        let movie = (round * 37 + i * 13) % 1682 + 1;
        let body = format!(
            r#"{{"movie_id": {movie}, "rating": {}}}"#,
            1 + (round + i) % 5
        );
        requests.push(
            Request::post(format!("/users/{user}/ratings"))
                .header(header::AUTHORIZATION, &tokens[user - 1])
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .unwrap(),
        );
    }
    for request in requests {
        let path = request.uri().to_string();
        let response = router.clone().oneshot(request).await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
}

#[tokio::test]
async fn the_heap_stays_flat_under_the_mixed_workload_with_ratings() {
    const RATINGS: usize = 40;
    let mode = redis_mode();
    let mut settings = test_settings(&fresh_database().await, mode, &redis_url(mode));
    settings.metrics_upkeep_ms = 10;
    let app = TestApp::spawn_with(settings).await;
    let router = origin::routes::router(app.state.clone());
    let tokens: Vec<String> = (1..=943)
        .map(|user| format!("Bearer {}", app.user_token(user)))
        .collect();
    let settle = async || {
        app.state.cache.settled().await;
        upkeep_ran().await;
        // Runs the local tier's pending maintenance (replaced values are dropped).
        app.state.cache.local_snapshot();
    };

    // Two rounds compute every value once and replace the rated users' ones: every cache,
    // table and pool is at its working size.
    for round in 0..2 {
        soak_round(&router, &tokens, round, RATINGS).await;
    }
    settle().await;
    let before = live_heap_bytes();
    const ROUNDS: usize = 4;
    for round in 2..2 + ROUNDS {
        soak_round(&router, &tokens, round, RATINGS).await;
    }
    settle().await;
    let after = live_heap_bytes();

    // Each round is about 3,600 requests and replaces the values of 40 users. A leak of even
    // 64 bytes a request would pass the bound over four rounds (~920 KB).
    let requests = ROUNDS * (1682 + 2 * 943 + 3 + RATINGS);
    let growth = after - before;
    eprintln!("live heap: {before} B before, {after} B after {requests} more requests");
    assert!(
        growth < (64 * requests) as i64,
        "the heap grew by {growth} B over {requests} requests"
    );
}
