//! Degraded operation: Redis stopped, paused and restarted; PostgreSQL stopped and restarted.
//! These tests start private servers (so stopping them disturbs no other test).

use origin::settings::RedisMode;
use serde_json::Value;
use shared::params::MovieId;
use std::time::Duration;
use tests::{
    PrivateServer, TestApp, cache_status, eventually, fresh_database, import_movielens,
    test_settings,
};

async fn rating_count(app: &TestApp, user: i32) -> i64 {
    let response = app
        .get_as(&format!("/users/{user}/profile"), &app.user_token(user))
        .await;
    assert_eq!(response.status(), 200, "profile answers");
    let body: Value = response.json().await.unwrap();
    body["rating_count"].as_i64().unwrap()
}

#[tokio::test]
async fn without_redis_requests_are_answered_and_the_cache_comes_back() {
    let redis = PrivateServer::redis();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let app = TestApp::spawn_with(test_settings(
        &fresh_database().await,
        RedisMode::Single,
        &url,
    ))
    .await;
    assert_eq!(
        cache_status(&app.get("/movies/1").await),
        "origin; fwd=miss; stored"
    );
    assert_eq!(rating_count(&app, 1).await, 272);

    // Redis unresponsive (paused) while a rating is written: the invalidation cannot be
    // delivered, yet the user reads their write, during the pause and after it.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(app.rate(1, 1682, 4.0).await.status(), 201);
    assert!(app.state.cache.pending_invalidations() >= 1);
    assert_eq!(rating_count(&app, 1).await, 273, "during the pause");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.state.cache.pending_invalidations() == 0
        })
        .await
    );
    assert_eq!(
        rating_count(&app, 1).await,
        273,
        "after the pause: the old cached profile is not served"
    );

    redis.stop();
    // The instance hears of the lost connection from its reader, asynchronously; until then
    // a value it holds locally is still served (nothing could have changed it: Redis is
    // gone). What is asserted below is after it heard.
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.state.cache.local_snapshot().tracking_session == 0
        })
        .await,
        "the instance did not notice that Redis stopped"
    );
    for path in [
        "/movies/1",
        "/movies/2",
        "/movies/popular",
        "/genres",
        "/genres/drama/top",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path} without Redis");
        assert!(
            cache_status(&response).contains("fwd=miss"),
            "{path}: {}",
            cache_status(&response)
        );
    }
    assert_eq!(app.rate(1, 1681, 3.5).await.status(), 201);
    assert_eq!(rating_count(&app, 1).await, 274);
    let recs = app
        .get_as("/users/1/recommendations", &app.user_token(1))
        .await;
    assert_eq!(recs.status(), 200);
    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["redis"].as_str()),
        (Some("degraded"), Some("down"))
    );

    // Redis returns (empty: it keeps nothing on disk); the service uses it again by itself.
    redis.start();
    let recovered = eventually(Duration::from_secs(15), || async {
        cache_status(&app.get("/movies/3").await).ends_with("stored")
    })
    .await;
    assert!(recovered, "the cache is used again after Redis returns");
    assert!(cache_status(&app.get("/movies/3").await).starts_with("origin; hit"));
    assert_eq!(rating_count(&app, 1).await, 274);
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
}

#[tokio::test]
async fn without_postgres_cached_data_is_served_and_writes_are_refused() {
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
    import_movielens(&url).await;
    let mode = tests::redis_mode();
    let app = TestApp::spawn_with(test_settings(&url, mode, &tests::redis_url(mode))).await;

    let token = app.user_token(1);
    for path in [
        "/movies/1",
        "/movies/50",
        "/movies/popular",
        "/genres",
        "/genres/drama/top",
    ] {
        assert_eq!(app.get(path).await.status(), 200);
    }
    assert_eq!(rating_count(&app, 1).await, 272);
    let recs_before = app
        .get_as("/users/1/recommendations", &token)
        .await
        .text()
        .await
        .unwrap();
    // As if its TTL had run out a minute ago.
    app.set_freshness(&app.state.cache.keys().movie(MovieId(50)), 3600, -60)
        .await;

    pg.stop();
    let fresh = app.get("/movies/1").await;
    assert_eq!(fresh.status(), 200);
    assert!(
        cache_status(&fresh).starts_with("origin; hit"),
        "{}",
        cache_status(&fresh)
    );
    let stale = app.get("/movies/50").await;
    assert_eq!(stale.status(), 200, "past its TTL, within the grace window");
    let status = cache_status(&stale);
    assert!(
        status.starts_with("origin; hit; ttl=-") && status.ends_with("detail=stale"),
        "{status}"
    );
    let movie: Value = stale.json().await.unwrap();
    assert_eq!(movie["title"], "Star Wars");
    for path in ["/movies/popular?limit=5", "/genres", "/genres/drama/top"] {
        assert_eq!(app.get(path).await.status(), 200, "{path} from the cache");
    }
    assert_eq!(rating_count(&app, 1).await, 272);
    assert_eq!(
        app.get_as("/users/1/recommendations", &token)
            .await
            .text()
            .await
            .unwrap(),
        recs_before
    );

    let missing = app.get("/movies/2").await;
    assert_eq!(missing.status(), 503, "not cached, no database");
    assert_eq!(missing.headers()["content-type"], "application/json");
    assert!(missing.headers().contains_key("retry-after"));
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "database_unavailable");
    // Failures in a row open PostgreSQL's breaker: from then on nothing waits for it.
    for movie in 3..=8 {
        let response = app.get(&format!("/movies/{movie}")).await;
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
    }
    let ready_now: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready_now["breakers"]["postgres"], "open", "{ready_now}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"breaker_open{dependency="postgres"} 1"#),
        "{metrics}"
    );
    // Cached reads are still answered, from the cache, with the breaker open.
    assert_eq!(app.get("/movies/1").await.status(), 200);
    assert_eq!(rating_count(&app, 1).await, 272);
    let write = app.rate(1, 1682, 4.0).await;
    assert_eq!(
        write.status(),
        503,
        "a rating is not acknowledged unless committed"
    );
    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["postgres"].as_str()),
        (Some("degraded"), Some("down"))
    );

    pg.start();
    let back = eventually(Duration::from_secs(15), || async {
        app.get("/movies/2").await.status() == 200
    })
    .await;
    assert!(
        back,
        "the service recovers by itself when PostgreSQL returns"
    );
    let stored: Option<f32> =
        sqlx::query_scalar("SELECT rating FROM ratings WHERE user_id = 1 AND movie_id = 1682")
            .fetch_optional(app.db())
            .await
            .unwrap();
    assert_eq!(stored, None, "the refused rating was not written");
    assert_eq!(app.rate(1, 1682, 4.0).await.status(), 201);
    assert_eq!(rating_count(&app, 1).await, 273);
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["breakers"]["postgres"], "closed", "{ready}");
}
