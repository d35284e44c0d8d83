//! The load generator against a real origin: it makes only valid requests of every kind,
//! and the hits it reports are hits the origin's own cache counted; through the edge, they
//! are the edge's; a wrong secret or a remote target stops it before it sends load.

use loadgen::{Config, Kind, LoadError, Mix};
use shared::cache_key::Family;
use std::time::Duration;
use tests::edge::EdgeServer;
use tests::{TestApp, fresh_database, redis_mode, redis_url, test_settings};

fn config(target: &str, secret: secrecy::SecretString) -> Config {
    Config {
        target: target.parse().unwrap(),
        connections: 4,
        // No warm-up: every request is in the report, so its hits can be compared with the
        // origin's own counters one for one.
        warmup: Duration::ZERO,
        duration: Duration::from_secs(2),
        seed: 7,
        users: 943,
        movies: 1682,
        mix: Mix::default(),
        jwt_secret: secret,
        timeout: Duration::from_secs(5),
        allow_remote: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_makes_valid_requests_and_reports_real_hits() {
    let db = fresh_database().await;
    let mode = redis_mode();
    let settings = test_settings(&db, mode, &redis_url(mode));
    let secret = settings.jwt_secret.clone();
    let app = TestApp::spawn_with(settings).await;

    let config = config(&app.url("/"), secret);
    // `--warm`: the admin warm-up with a token minted from the same secret.
    loadgen::warm(&config).await.unwrap();
    let warmed = app
        .state
        .cache
        .stats()
        .snapshot(Family::Popular)
        .warm_computations;
    assert_eq!(warmed, 1, "the popular list was warmed");
    let report = loadgen::run(&config).await.unwrap();

    assert_eq!(report.failures(), 0, "{report}");
    assert_eq!(
        report.total.refused, 0,
        "tokens, ids and bodies are all valid: {report}"
    );
    for kind in Kind::ALL {
        let ok = report.kind(kind).map_or(0, |k| k.ok);
        assert!(ok > 0, "{kind} exercised: {report}");
    }
    // What it calls a hit is exactly what the origin's cache counted as one: one lookup per
    // request in these families (warming's lookups are counted apart). The one hit the report
    // leaves out is its own discovery of the (warmed) popular list.
    let stats = app.state.cache.stats();
    for (kind, family, unreported) in [
        (Kind::Movie, Family::Metadata, 0),
        (Kind::Recommendations, Family::Recommendations, 0),
        (Kind::Popular, Family::Popular, 1),
    ] {
        let line = report.kind(kind).unwrap();
        let reported = line.hits;
        assert!(reported > 0, "{kind}: repeated reads hit: {report}");
        assert_eq!(
            stats.snapshot(family).hits,
            reported + unreported,
            "{kind}: hits reported vs counted by the origin"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_edge_it_reports_the_edges_hits() {
    let app = TestApp::spawn().await;
    let edge = EdgeServer::start(&format!("http://{}", app.addr)).await;
    // Movie reads only: no token needed, and only they touch the origin's metadata family.
    let config = Config {
        mix: "movie=1".parse().unwrap(),
        ..config(&edge.url, "unused".to_owned().into())
    };
    let report = loadgen::run(&config).await.unwrap();

    assert_eq!(report.failures(), 0, "{report}");
    assert_eq!(report.total.refused, 0, "{report}");
    let movies = report.kind(Kind::Movie).unwrap();
    assert!(movies.hits > 0, "repeated movies hit at the edge: {report}");
    // A hit is a read the edge answered by itself (the last Cache-Status member); each of the
    // others went to the origin exactly once, whatever the origin's own cache did, or joined
    // another read's request for the same movie (a collapsed miss, which the edge counts).
    // Reading the first member (the origin's) would count the origin's hits instead.
    let metadata = app.state.cache.stats().snapshot(Family::Metadata);
    let collapsed = edge.stats().await["routes"]["movie"]["collapsed"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(
        movies.ok,
        movies.hits + metadata.hits + metadata.misses + metadata.stale + collapsed,
        "every read is an edge hit, one origin request, or collapsed into one \
         ({collapsed} collapsed): {report}"
    );
}

#[tokio::test]
async fn the_load_generator_stops_at_once_when_its_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let err = loadgen::run(&config(&app.url("/"), "not-the-secret".to_owned().into()))
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("JWT_SECRET"), "{err}");

    // A mix of public reads sends no token, so it needs no secret.
    let public = Config {
        mix: "movie=3,popular=1".parse().unwrap(),
        duration: Duration::from_millis(500),
        ..config(&app.url("/"), "not-the-secret".to_owned().into())
    };
    let report = loadgen::run(&public).await.unwrap();
    assert_eq!(report.failures(), 0, "{report}");
    assert_eq!(report.total.refused, 0, "{report}");
    assert!(report.total.ok > 0, "{report}");
}

#[tokio::test]
async fn the_load_generator_refuses_targets_off_loopback() {
    let err = loadgen::run(&config("http://192.0.2.1:8080", "s".to_owned().into()))
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::Remote(_)), "{err}");
}
