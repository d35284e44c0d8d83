//! The edge far from the origin (issue #12, item 5): a relay in front of the origin holds
//! every byte 80 ms each way (`tests::InstanceFront::start_with_delay`), as a client's nearby
//! edge location would see an origin on another continent. Through the edge, one request at a
//! time: public hits, personal reads (recommendations and profile, hits and misses) and
//! ratings. The test checks what crosses the distance (a hit, public or personal, nothing; a
//! personal miss and a rating one request) and prints each kind's latency for the README; it
//! asserts no time.

use serde_json::json;
use std::time::{Duration, Instant};
use tests::edge::EdgeServer;
use tests::{InstanceFront, TestApp, cache_status};

/// The one-way delay between the edge and the origin.
const ONE_WAY: Duration = Duration::from_millis(80);

/// Requests of each kind.
const ROUNDS: usize = 10;

fn median_ms(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1000.0
}

#[tokio::test]
async fn across_the_distance_only_what_the_edge_cannot_answer_pays_the_round_trip() {
    let app = TestApp::spawn().await;
    let far = InstanceFront::start_with_delay(app.addr, ONE_WAY).await;
    let edge = EdgeServer::start_with(&far.url, &[("JWT_SECRET", &app.jwt_secret())]).await;
    let client = reqwest::Client::new();
    let token = app.user_token(1);
    let timed = |request: reqwest::RequestBuilder| async move {
        let started = Instant::now();
        let response = request.send().await.expect("request through the edge");
        let status = response.status();
        let cache = cache_status(&response);
        response.bytes().await.expect("body");
        (started.elapsed(), status, cache)
    };

    // The first read of a public movie crosses the distance, and is stored.
    let (first, status, _) = timed(client.get(format!("{}/movies/1", edge.url))).await;
    assert_eq!(status, 200);
    let crossed = far.requests().len();

    let mut public = Vec::new();
    for _ in 0..ROUNDS {
        let (took, status, cache) = timed(client.get(format!("{}/movies/1", edge.url))).await;
        assert_eq!(status, 200);
        assert!(cache.contains("edge; hit"), "{cache}");
        public.push(took);
    }
    assert_eq!(
        far.requests().len(),
        crossed,
        "a public hit crosses nothing: {:?}",
        far.requests()
    );

    // Personal reads: each round a rating through the edge (it crosses), then the user's first
    // read (a miss: the rating moved the user's generation, so it crosses once) and a second
    // (a hit, kept for that user: it crosses nothing).
    let mut ratings = Vec::new();
    let mut misses = Vec::new();
    let mut hits = Vec::new();
    for round in 0..ROUNDS {
        let crossed = far.requests().len();
        let (took, status, _) = timed(
            client
                .post(format!("{}/users/1/ratings", edge.url))
                .bearer_auth(&token)
                .json(&json!({"movie_id": 1600 + round, "rating": 4.0})),
        )
        .await;
        assert!(status.is_success(), "{status}");
        ratings.push(took);
        let path = if round % 2 == 0 {
            "/users/1/recommendations"
        } else {
            "/users/1/profile"
        };
        let read = || {
            client
                .get(format!("{}{path}", edge.url))
                .bearer_auth(&token)
        };
        let (took, status, cache) = timed(read()).await;
        assert_eq!(status, 200);
        assert!(cache.ends_with("edge; fwd=miss; stored"), "{cache}");
        misses.push(took);
        let (took, status, cache) = timed(read()).await;
        assert_eq!(status, 200);
        assert!(cache.contains("edge; hit"), "{cache}");
        hits.push(took);
        assert_eq!(
            far.requests().len(),
            crossed + 2,
            "the rating and the first read crossed, the second read did not: {:?}",
            far.requests()
        );
    }
    println!(
        "through the edge, origin {} ms away each way: first public read {:.1} ms; public hit \
         P50 {:.1} ms; personal hit P50 {:.1} ms; personal miss P50 {:.1} ms; rating P50 \
         {:.1} ms",
        ONE_WAY.as_millis(),
        first.as_secs_f64() * 1000.0,
        median_ms(public),
        median_ms(hits),
        median_ms(misses),
        median_ms(ratings)
    );
}
