//! Faults: each dependency's circuit breaker (opens on failures, is visible in `/ready` and
//! `/metrics`, closes by itself when its probe is answered), what is served while Redis is
//! known to be down (values held in the local tier for a few seconds, a user's under their
//! rating version), the bulkhead that bounds the computations of one family, and short runs
//! of the load generator with a dependency stopped or a cluster master killed.
//!
//! The tests that stop a server use private ones (`PrivateServer`), so no other test is
//! disturbed.

use futures::FutureExt;
use origin::hooks::Point;
use origin::settings::RedisMode;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tests::{PrivateServer, TestApp, cache_status, eventually, fresh_database, test_settings};

async fn ready(app: &TestApp) -> Value {
    app.get("/ready").await.json().await.unwrap()
}

async fn metrics(app: &TestApp) -> String {
    app.get("/metrics").await.text().await.unwrap()
}

#[tokio::test]
async fn with_redis_down_its_breaker_opens_shared_values_are_held_and_it_closes_when_redis_returns()
{
    let redis = PrivateServer::redis();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let mut settings = test_settings(&fresh_database().await, RedisMode::Single, &url);
    // Long enough that no pause of a loaded machine ends it; the test moves the clock instead.
    settings.cache_outage_hold_secs = 3600;
    let app = TestApp::spawn_with(settings).await;
    assert_eq!(ready(&app).await["breakers"]["redis"], "closed");
    assert!(
        metrics(&app)
            .await
            .contains(r#"breaker_open{dependency="redis"} 0"#)
    );

    redis.stop();
    // Every request is answered while the failures that open the breaker happen.
    for movie in 1..=12 {
        let response = app.get(&format!("/movies/{movie}")).await;
        assert_eq!(response.status(), 200, "/movies/{movie} without Redis");
    }
    let body = ready(&app).await;
    assert_eq!(
        (&body["redis"], &body["breakers"]["redis"], &body["status"]),
        (
            &Value::from("down"),
            &Value::from("open"),
            &Value::from("degraded")
        ),
        "{body}"
    );
    let text = metrics(&app).await;
    assert!(
        text.contains(r#"breaker_open{dependency="redis"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"breaker_opened_total{dependency="redis"} 1"#),
        "{text}"
    );

    // A shared value is computed once, then served from this instance's memory.
    let first = app.get("/movies/popular?limit=5").await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        cache_status(&first),
        "origin; fwd=miss; detail=cache-unavailable"
    );
    let held = app.get("/movies/popular?limit=5").await;
    assert_eq!(held.status(), 200);
    assert!(
        cache_status(&held).starts_with("origin; hit; ttl=")
            && cache_status(&held).ends_with("detail=cache-unavailable"),
        "{}",
        cache_status(&held)
    );
    assert_eq!(
        first.text().await.unwrap(),
        held.text().await.unwrap(),
        "the same list"
    );
    // A user's value is held under the user's rating version: served from memory until the
    // user rates, and never after (the rating bumps the version before it is acknowledged).
    let token = app.user_token(1);
    let profile = async || {
        let response = app.get_as("/users/1/profile", &token).await;
        assert_eq!(response.status(), 200);
        let status = cache_status(&response);
        let body: Value = response.json().await.unwrap();
        (status, body["rating_count"].as_i64().unwrap())
    };
    let (status, count) = profile().await;
    assert_eq!(status, "origin; fwd=miss; detail=cache-unavailable");
    let (status, held_count) = profile().await;
    assert!(
        status.starts_with("origin; hit; ttl=") && status.ends_with("detail=cache-unavailable"),
        "{status}"
    );
    assert_eq!(held_count, count);
    assert_eq!(app.rate(1, 1682, 4.0).await.status(), 201);
    let (status, after) = profile().await;
    assert_eq!(status, "origin; fwd=miss; detail=cache-unavailable");
    assert_eq!(after, count + 1, "the rating is read at once");
    // The hold ends: computed again.
    app.state.cache.clock().advance(3601);
    assert_eq!(
        cache_status(&app.get("/movies/popular?limit=5").await),
        "origin; fwd=miss; detail=cache-unavailable"
    );

    // Redis returns: the probe closes the breaker by itself, and nothing held through the
    // outage is served any more (it may have missed another instance's change).
    redis.start();
    let closed = eventually(Duration::from_secs(15), || async {
        ready(&app).await["breakers"]["redis"] == "closed"
    })
    .await;
    assert!(closed, "the breaker closes when Redis answers again");
    let back = eventually(Duration::from_secs(15), || async {
        cache_status(&app.get("/movies/popular?limit=5").await) == "origin; fwd=miss; stored"
    })
    .await;
    assert!(back, "Redis is used again, the held value is not");
    assert!(
        metrics(&app)
            .await
            .contains(r#"breaker_open{dependency="redis"} 0"#)
    );
}

#[tokio::test]
async fn the_bulkhead_bounds_the_computations_of_one_family() {
    const TURNS: usize = 2;
    const REQUESTS: usize = 6;
    let mode = tests::redis_mode();
    let mut settings = test_settings(&fresh_database().await, mode, &tests::redis_url(mode));
    settings.compute_concurrency = TURNS as u32;
    let app = TestApp::spawn_with(settings).await;

    // Every computation of a movie is held until the test lets it go; the hook records how
    // many ran at once.
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let movie_prefix = app.state.cache.keys().movie(shared::params::MovieId(1));
    let movie_prefix = movie_prefix.trim_end_matches('1').to_owned();
    {
        let (running, most, release) = (running.clone(), most.clone(), release.clone());
        app.state.cache.hooks().install(move |point| {
            let (running, most, release, started) = (
                running.clone(),
                most.clone(),
                release.clone(),
                started_tx.clone(),
            );
            let movie_prefix = movie_prefix.clone();
            async move {
                if let Point::ComputeStarted { key } = point
                    && key.starts_with(&movie_prefix)
                {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let _ = started.send(());
                    release.acquire().await.unwrap().forget();
                    running.fetch_sub(1, Ordering::SeqCst);
                }
            }
            .boxed()
        });
    }

    let requests: Vec<_> = (1..=REQUESTS)
        .map(|movie| {
            let url = app.url(&format!("/movies/{movie}"));
            tokio::spawn(async move { reqwest::get(url).await.unwrap().status() })
        })
        .collect();
    // Once TURNS computations are inside (without a bulkhead, all of them would be by now),
    // let one go each time another starts.
    for _ in 0..TURNS {
        started_rx.recv().await.expect("a computation starts");
    }
    for _ in TURNS..REQUESTS {
        release.add_permits(1);
        started_rx.recv().await.expect("a computation starts");
    }
    release.add_permits(TURNS);
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    let most = most.load(Ordering::SeqCst);
    assert!(
        (1..=TURNS).contains(&most),
        "{most} computations of one family ran at once; the bulkhead allows {TURNS}"
    );
}

/// A short run of the load generator against `app` (8 connections, 1 s warm-up, 6 s
/// measured, a tenth of the requests ratings) with `fault` from the first second for
/// `lasting`, the ratings ledger checked against `database`. Returns the report and its
/// per-second table (for failure messages); fails if the fault could not be injected or
/// restored, or if the ledger is off.
async fn run_fault(
    app: &TestApp,
    secret: secrecy::SecretString,
    database: &str,
    fault: loadgen::FaultKind,
    lasting: Duration,
) -> (loadgen::Report, String) {
    let config = loadgen::Config {
        target: app.url("/").parse().unwrap(),
        connections: 8,
        warmup: Duration::from_secs(1),
        duration: Duration::from_secs(6),
        seed: 11,
        users: 943,
        movies: 1682,
        mix: "recommendations=35,movie=25,popular=15,profile=10,genre_top=5,rating=10"
            .parse()
            .unwrap(),
        jwt_secret: secret,
        timeout: Duration::from_secs(5),
        allow_remote: false,
    };
    let options = loadgen::Options {
        faults: vec![loadgen::Fault::new(fault, Duration::from_secs(1), lasting)],
        ledger: Some(database.to_owned().into()),
        ..loadgen::Options::default()
    };
    let report = loadgen::run_with(&config, &options, std::future::pending())
        .await
        .unwrap();
    let table = report.timeline_table();
    assert!(report.fault_failures().is_empty(), "{report}");
    assert_eq!(report.ledger_balanced(), Some(true), "{report}");
    let ratings = report.kind(loadgen::Kind::Rating).map_or(0, |k| k.ok);
    assert!(ratings > 0, "ratings were made: {report}");
    (report, table)
}

/// A PostgreSQL of the test's own with MovieLens 100K imported, and its `movies` URL.
async fn private_postgres() -> (PrivateServer, String) {
    let pg = PrivateServer::postgres();
    let server = format!("postgres://origin@127.0.0.1:{}", pg.port);
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    sqlx::query("CREATE DATABASE movies")
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let url = format!("{server}/movies");
    tests::import_movielens(&url).await;
    (pg, url)
}

/// The short version of the README's fault benchmark: the load generator stops this test's
/// own Redis for 3 s of a 6 s run. No request fails, Redis's breaker opens and closes again,
/// and every rating acknowledged is a row in PostgreSQL, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_stopped_redis_costs_no_request_and_no_rating() {
    let redis = PrivateServer::redis();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let database = fresh_database().await;
    let settings = test_settings(&database, RedisMode::Single, &url);
    let secret = settings.jwt_secret.clone();
    let app = TestApp::spawn_with(settings).await;

    let (report, table) = run_fault(
        &app,
        secret,
        &database,
        loadgen::FaultKind::Redis {
            dir: redis.dir.clone(),
            port: redis.port,
        },
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        report.failures(),
        0,
        "no 5xx, no request unanswered\n{table}"
    );
    assert_eq!(report.total.refused, 0, "{report}");
    let breaker = app.state.cache.redis().breaker();
    assert!(breaker.opened_total() >= 1, "the breaker opened\n{table}");
    let closed = eventually(Duration::from_secs(15), || async { breaker.allows() }).await;
    assert!(closed, "and closed once Redis was back");
}

/// The same with this test's own PostgreSQL stopped: the only errors are 503s (with the
/// breaker open, nothing waits for the database), PostgreSQL's breaker opens and closes
/// again, and a rating is either acknowledged and in PostgreSQL or refused: the ledger
/// balances exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_stopped_postgres_is_answered_503_and_loses_no_rating() {
    let (pg, database) = private_postgres().await;
    let mode = tests::redis_mode();
    let settings = test_settings(&database, mode, &tests::redis_url(mode));
    let secret = settings.jwt_secret.clone();
    let app = TestApp::spawn_with(settings).await;

    let (report, table) = run_fault(
        &app,
        secret,
        &database,
        loadgen::FaultKind::Postgres {
            dir: pg.dir.clone(),
            port: pg.port,
        },
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        report.total.server_errors, report.total.unavailable,
        "every 5xx is a 503\n{table}"
    );
    assert_eq!(report.total.transport_errors, 0, "{table}");
    assert!(report.total.unavailable > 0, "the outage was felt\n{table}");
    let breaker = app.state.db.breaker();
    assert!(breaker.opened_total() >= 1, "the breaker opened\n{table}");
    let closed = eventually(Duration::from_secs(15), || async { breaker.allows() }).await;
    assert!(closed, "and closed once PostgreSQL was back");
}

/// The same with a master of this test's own Redis Cluster killed (SIGKILL) and restarted 4 s
/// later: no request fails (a command on the dead master's slots falls back to PostgreSQL),
/// the failover window is measured, the cluster client follows the promoted replica without a
/// restart, and the ledger is exact. Run in the cluster pass of the suite only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_killed_cluster_master_fails_no_request() {
    if tests::redis_mode() != RedisMode::Cluster {
        return;
    }
    let cluster = PrivateServer::cluster();
    let database = fresh_database().await;
    let settings = test_settings(&database, RedisMode::Cluster, &cluster.cluster_urls());
    let secret = settings.jwt_secret.clone();
    let app = TestApp::spawn_with(settings).await;

    let (report, table) = run_fault(
        &app,
        secret,
        &database,
        loadgen::FaultKind::ClusterMaster {
            dir: cluster.dir.clone(),
            base_port: cluster.port,
        },
        Duration::from_secs(4),
    )
    .await;
    assert_eq!(
        report.failures(),
        0,
        "no 5xx, no request unanswered\n{table}"
    );
    let window = report.faults[0].failover.as_ref().and_then(|f| f.secs());
    assert!(
        window.is_some(),
        "the failover window is measured: {report}"
    );
    // After the failover every key is served by Redis again, without a restart.
    let recovered = eventually(Duration::from_secs(20), || async {
        cache_status(&app.get("/movies/popular?limit=3").await).starts_with("origin; hit")
            && cache_status(&app.get("/genres").await).starts_with("origin; hit")
    })
    .await;
    assert!(
        recovered,
        "the cache serves again after the failover\n{table}"
    );
}

/// A Redis that keeps its data across a restart (an append-only file) brings back the users'
/// generation tokens and values as they were. A rating made while it was down could not
/// replace its user's token, and the instance that made it may be gone before Redis returns
/// (here: an instance that never reaches Redis at all). The rating is recorded in PostgreSQL
/// before it is answered, and an instance that lost its connection reads no user's value from
/// Redis again before delivering every recorded one: the other instance serves the profile as
/// it is after the rating, although Redis brought back the entry from before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_that_kept_its_data_never_serves_a_value_a_rating_made_meanwhile_changed()
{
    let redis = PrivateServer::redis_persistent();
    let database = fresh_database().await;
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let reader_settings = test_settings(&database, RedisMode::Single, &url);
    let mut writer_settings = test_settings(
        &database,
        RedisMode::Single,
        &format!("redis://127.0.0.1:{}", tests::free_port()),
    );
    writer_settings.cache_namespace = reader_settings.cache_namespace.clone();
    writer_settings.jwt_secret = reader_settings.jwt_secret.clone();
    writer_settings.migrate_on_start = false;
    let reader = TestApp::spawn_with(reader_settings).await;
    let writer = TestApp::spawn_with(writer_settings).await;

    let user = 11;
    let token = reader.user_token(user);
    let path = format!("/users/{user}/profile");
    async fn profile(app: &TestApp, path: &str, token: &str) -> shared::dto::Profile {
        let response = app.get_as(path, token).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
    let before = profile(&reader, &path, &token).await;
    let cached = profile(&reader, &path, &token).await;
    assert_eq!(cached.rating_count, before.rating_count);
    let key = reader
        .state
        .cache
        .keys()
        .profile(shared::params::UserId(user));

    let pool = sqlx::PgPool::connect(&database).await.unwrap();
    let unrated: i32 = sqlx::query_scalar(
        "SELECT id FROM movies m WHERE NOT EXISTS \
         (SELECT 1 FROM ratings r WHERE r.user_id = $1 AND r.movie_id = m.id) ORDER BY id LIMIT 1",
    )
    .bind(user)
    .fetch_one(&pool)
    .await
    .unwrap();

    redis.stop();
    let rated = writer.rate(user, unrated.into(), 4.0).await;
    assert_eq!(
        rated.status(),
        201,
        "a new rating, which needs PostgreSQL only"
    );
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM cache_invalidations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        recorded, 1,
        "the rating's invalidation is recorded for every instance"
    );

    redis.start();
    let raw = redis::Client::open(url.as_str()).unwrap();
    let mut raw = raw.get_multiplexed_async_connection().await.unwrap();
    let restored: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        restored.is_some(),
        "Redis brought back the profile from before the rating"
    );
    // Every read after the restart shows the rating, until one has gone through the restarted
    // Redis rather than around it (its breaker closes once Redis answers again).
    let mut through_redis = false;
    for _ in 0..200 {
        let response = reader.get_as(&path, &token).await;
        assert_eq!(response.status(), 200);
        let status = cache_status(&response);
        let after: shared::dto::Profile = response.json().await.unwrap();
        assert_eq!(
            after.rating_count,
            before.rating_count + 1,
            "the reader serves the profile as it is after the rating ({status})"
        );
        if !status.contains("cache-unavailable") {
            through_redis = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(through_redis, "Redis was used again within 10 s");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM cache_invalidations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "delivered and deleted");
}

/// A Redis that comes back empty (restarted without persistence) finds the values of the users
/// this instance served lately cached again: on the connection's return the instance warms
/// them (`WARM_ON_RECONNECT`). A user nobody served is not warmed.
#[tokio::test]
async fn after_redis_comes_back_empty_the_users_served_lately_are_warmed_again() {
    let (redis, url, app) = rewarming_app().await;
    let (served, unseen) = (11, 12);
    let path = |user: i32| format!("/users/{user}/recommendations");
    let first = app.get_as(&path(served), &app.user_token(served)).await;
    assert_eq!(first.status(), 200);
    let warmed_before = warm_computations(&app).await;

    redis.stop();
    redis.start();
    // The warming after the reconnection computes the served user's recommendations and
    // profile again (the restarted Redis is empty); wait for both, for at most 30 s.
    let rewarmed = eventually(Duration::from_secs(30), || async {
        warm_computations(&app).await >= warmed_before + 2
    })
    .await;
    assert!(rewarmed, "no warming after Redis came back");
    let raw = redis::Client::open(url.as_str()).unwrap();
    let mut raw = raw.get_multiplexed_async_connection().await.unwrap();
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut raw).await.unwrap();
    assert!(size > 0, "the warmed values are in the restarted Redis");
    let again = app.get_as(&path(served), &app.user_token(served)).await;
    assert!(
        cache_status(&again).starts_with("origin; hit"),
        "{}",
        cache_status(&again)
    );
    let other = app.get_as(&path(unseen), &app.user_token(unseen)).await;
    assert!(
        cache_status(&other).contains("miss"),
        "{}",
        cache_status(&other)
    );
}

/// A connection lost to a Redis that kept its values (here only the connection was cut; a
/// restart from an append-only file is the same) is not followed by a re-warming: the values
/// are there, and warming them would only look them up, competing with the clients.
#[tokio::test]
async fn after_a_connection_loss_to_a_redis_that_kept_its_values_nothing_is_warmed_again() {
    // `_redis` stops its server when dropped: kept to the end.
    let (_redis, url, app) = rewarming_app().await;
    let served = 11;
    let path = format!("/users/{served}/recommendations");
    assert_eq!(
        app.get_as(&path, &app.user_token(served)).await.status(),
        200
    );
    let rewarms = |outcome: &'static str| {
        let app = &app;
        async move {
            let line = format!("cache_rewarms_total{{outcome=\"{outcome}\"}} ");
            metrics(app)
                .await
                .lines()
                .find_map(|l| {
                    l.strip_prefix(line.as_str())
                        .map(|v| v.parse::<u64>().unwrap())
                })
                .unwrap_or(0)
        }
    };
    let (kept_before, warmed_before) = (rewarms("kept").await, rewarms("warmed").await);
    let lookups_before = warm_lookups(&app).await;
    let raw = redis::Client::open(url.as_str()).unwrap();
    let mut raw = raw.get_multiplexed_async_connection().await.unwrap();
    // The value is in Redis before the cut (a store may finish after the response).
    let key = app.state.cache.keys().recommendations(
        shared::params::UserId(served),
        shared::params::Limit::DEFAULT_N.get(),
        shared::params::Strategy::Hybrid,
    );
    let stored = eventually(Duration::from_secs(10), || {
        let (mut raw, key) = (raw.clone(), key.clone());
        async move {
            let n: i64 = redis::cmd("EXISTS")
                .arg(&key)
                .query_async(&mut raw)
                .await
                .unwrap();
            n == 1
        }
    })
    .await;
    assert!(stored, "{key} in Redis");

    // Every client connection but this one is cut: the instance's connections are lost.
    let cut: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(cut > 0, "the origin's connections were cut");
    let decided = eventually(Duration::from_secs(30), || async {
        rewarms("kept").await > kept_before
    })
    .await;
    assert!(decided, "the reconnection was not found to keep the values");
    assert_eq!(rewarms("warmed").await, warmed_before, "nothing re-warmed");
    assert_eq!(
        warm_lookups(&app).await,
        lookups_before,
        "not even looked up"
    );
    let again = app.get_as(&path, &app.user_token(served)).await;
    assert!(
        cache_status(&again).contains("hit"),
        "{}",
        cache_status(&again)
    );
}

/// An instance on a Redis of its own that warms again after a reconnection
/// (`WARM_ON_RECONNECT`) and warms no user at start-up: the Redis, its URL, the instance.
async fn rewarming_app() -> (PrivateServer, String, TestApp) {
    let redis = PrivateServer::redis();
    let database = fresh_database().await;
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let mut settings = test_settings(&database, RedisMode::Single, &url);
    settings.warm_on_reconnect = true;
    settings.warm_max_users = 0;
    let app = TestApp::spawn_with(settings).await;
    (redis, url, app)
}

/// Lookups of recommendations and profiles made by warming so far (hits and misses).
async fn warm_lookups(app: &TestApp) -> u64 {
    let stats = app.cache_stats().await;
    ["recommendations", "profile"]
        .iter()
        .flat_map(|family| ["warm_hits", "warm_misses"].map(|field| (family, field)))
        .map(|(family, field)| stats["families"][family][field].as_u64().unwrap_or(0))
        .sum()
}

/// Recommendations and profiles computed by warming so far.
async fn warm_computations(app: &TestApp) -> u64 {
    let stats = app.cache_stats().await;
    ["recommendations", "profile"]
        .iter()
        .map(|family| {
            stats["families"][family]["warm_computations"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum()
}
