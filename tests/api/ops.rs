//! Health, readiness, metrics and the admin endpoints.

use serde_json::Value;
use tests::{TestApp, cache_status};

#[tokio::test]
async fn health_ready_and_metrics() {
    let app = TestApp::spawn().await;
    let health = app.get("/health").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["cache-control"], "no-store");
    assert_eq!(cache_status(&health), "origin; fwd=bypass");
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["postgres"], "up");
    assert_eq!(ready["redis"], "up");
    assert_eq!(
        ready["breakers"],
        serde_json::json!({"postgres": "closed", "redis": "closed"})
    );
    assert!(
        ready["model"].as_str().unwrap().starts_with("als-"),
        "{ready}"
    );

    app.get("/movies/1").await;
    app.get("/movies/1").await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    assert_eq!(metrics.headers()["cache-control"], "no-store");
    let text = metrics.text().await.unwrap();
    assert!(text.contains("http_request_duration_seconds_bucket{method=\"GET\",route=\"/movies/{id}\",status=\"200\""), "{text}");
    assert!(
        text.contains("cache_hits_total{family=\"metadata\",source=\"client\"}"),
        "{text}"
    );
    assert!(
        text.contains("cache_misses_total{family=\"metadata\",source=\"client\"}"),
        "{text}"
    );
    for dependency in ["postgres", "redis"] {
        assert!(
            text.contains(&format!("breaker_open{{dependency=\"{dependency}\"}} 0")),
            "{text}"
        );
    }
}

#[tokio::test]
async fn admin_warm_refresh_reload_and_stats() {
    let app = TestApp::spawn().await;
    let warm: Value = app.warm().await;
    assert_eq!(warm["popular"], true);
    assert_eq!(warm["genres"], 19);
    assert_eq!(warm["users"], 50, "WARM_MAX_USERS bounds the run");
    assert_eq!(warm["users_warmed"], 50);
    assert_eq!(warm["movies"], 50, "WARM_MOVIES bounds the run");
    assert_eq!(warm["failed"], 0);
    // Warmed: the most active user's default recommendations are a hit.
    let top: i32 =
        sqlx::query_scalar("SELECT id FROM users ORDER BY rating_count DESC, id LIMIT 1")
            .fetch_one(app.db())
            .await
            .unwrap();
    let response = app
        .get_as(
            &format!("/users/{top}/recommendations"),
            &app.user_token(top),
        )
        .await;
    assert!(
        cache_status(&response).starts_with("origin; hit"),
        "{}",
        cache_status(&response)
    );
    assert!(cache_status(&app.get("/movies/popular").await).starts_with("origin; hit"));
    let profile = app
        .get_as(&format!("/users/{top}/profile"), &app.user_token(top))
        .await;
    assert!(
        cache_status(&profile).starts_with("origin; hit"),
        "the profile too"
    );
    let most_rated: i32 =
        sqlx::query_scalar("SELECT id FROM movies ORDER BY rating_count DESC, id LIMIT 1")
            .fetch_one(app.db())
            .await
            .unwrap();
    let movie = app.get(&format!("/movies/{most_rated}")).await;
    assert!(
        cache_status(&movie).starts_with("origin; hit"),
        "and the most rated movies"
    );

    let refresh = app.admin_post("/admin/views/refresh").await;
    assert_eq!(refresh.status(), 200);
    let refresh: Value = refresh.json().await.unwrap();
    assert_eq!(refresh["refreshed"], true);
    assert_eq!(
        cache_status(&app.get("/genres/drama/top").await),
        "origin; fwd=miss; stored",
        "refresh invalidates genre lists"
    );

    let reload = app.admin_post("/admin/model/reload").await;
    assert_eq!(reload.status(), 200);
    let reload: Value = reload.json().await.unwrap();
    assert_eq!(
        reload["changed"], false,
        "the newest model is already served: {reload}"
    );

    let stats = app
        .client
        .get(app.url("/admin/cache/stats"))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), 200);
    let stats: Value = stats.json().await.unwrap();
    for family in [
        "recommendations",
        "popular",
        "profile",
        "metadata",
        "embedding",
        "genres",
    ] {
        assert!(stats["families"][family].is_object(), "{family}: {stats}");
    }
    assert!(
        stats["families"]["recommendations"]["hits"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert!(stats["families"]["popular"]["hit_rate"].as_f64().unwrap() > 0.0);
    let redis = &stats["redis"];
    assert_eq!(redis["reachable"], true);
    assert!(redis["used_memory_bytes"].as_u64().unwrap() > 0);
    assert!(
        redis["maxmemory_bytes"].as_u64().unwrap() > 0,
        "services run Redis with maxmemory"
    );
    assert!(redis["connected_clients"].as_u64().unwrap() >= 1);
    assert!(redis["evicted_keys"].is_u64() && redis["ops_per_sec"].is_u64());
    let expected_masters = if tests::redis_mode() == origin::settings::RedisMode::Cluster {
        3
    } else {
        1
    };
    assert_eq!(redis["masters"], expected_masters);
    for alert in ["hit_rate_low", "memory_high", "latency_high"] {
        let state = stats["alerts"][alert]["state"].as_str().unwrap();
        assert!(
            ["ok", "firing", "unknown"].contains(&state),
            "{alert}: {state}"
        );
    }
    assert_eq!(stats["alerts"]["memory_high"]["state"], "ok");
}

/// A client that hangs up during `POST /admin/views/refresh` does not cut the refresh short:
/// it completes (the genre lists built from the old view are invalidated) and releases its
/// advisory lock (the next refresh runs).
#[tokio::test]
async fn a_view_refresh_survives_its_client_hanging_up() {
    use axum::body::Body;
    use axum::http::Request;
    use secrecy::ExposeSecret;
    use sqlx::Connection;
    use tower::ServiceExt;

    let app = TestApp::spawn().await;
    app.get("/genres/drama/top").await;
    assert!(cache_status(&app.get("/genres/drama/top").await).starts_with("origin; hit"));
    let key = app.state.cache.keys().genre_top("drama");

    // Another session refreshes the view in an open transaction: the origin's refresh takes
    // its advisory lock, then waits for the view.
    let url = app.state.settings.database.database_url.expose_secret();
    let mut blocker = sqlx::PgConnection::connect(url).await.unwrap();
    let blocker_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut blocker)
        .await
        .unwrap();
    let mut blocking = blocker.begin().await.unwrap();
    sqlx::query("REFRESH MATERIALIZED VIEW CONCURRENTLY top_movies_by_genre")
        .execute(&mut *blocking)
        .await
        .unwrap();

    // The request, driven in this task, is dropped as soon as its refresh waits behind the
    // blocker: what hyper does with a handler when its client disconnects.
    let request = Request::post("/admin/views/refresh")
        .header("authorization", format!("Bearer {}", app.admin_token()))
        .body(Body::empty())
        .unwrap();
    let call = origin::routes::router(app.state.clone()).oneshot(request);
    tokio::select! {
        response = call => panic!("the refresh answered while the view was held: {response:?}"),
        () = blocked_behind(app.db(), blocker_pid) => {}
    }
    assert_eq!(
        advisory_locks(app.db()).await,
        1,
        "the refresh had its lock when the client left"
    );
    blocking.rollback().await.unwrap();

    // The refresh goes on without its client: it invalidates the genre lists last.
    let redis = app.state.cache.redis();
    let invalidated = async {
        loop {
            let exists: i64 = redis.query(redis::cmd("EXISTS").arg(&key)).await.unwrap();
            if exists == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), invalidated)
        .await
        .expect("the refresh whose client hung up never invalidated the genre lists");
    assert_eq!(advisory_locks(app.db()).await, 0, "its lock was released");
    let again: Value = app
        .admin_post("/admin/views/refresh")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["refreshed"], true, "{again}");
}

/// Returns once a session of this database waits for a lock that `pid` holds.
async fn blocked_behind(db: &sqlx::PgPool, pid: i32) {
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND $1 = ANY(pg_blocking_pids(pid))",
        )
        .bind(pid)
        .fetch_one(db)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Advisory locks held in this database.
async fn advisory_locks(db: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
         WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
    )
    .fetch_one(db)
    .await
    .unwrap()
}

/// The metric names a PromQL or Grafana file reads: the words with one of the origin's metric
/// prefixes (label names have none of them), a histogram's `_bucket`/`_count`/`_sum` as the
/// histogram.
fn metric_names_in(text: &str) -> std::collections::BTreeSet<String> {
    const PREFIXES: [&str; 6] = [
        "cache_",
        "redis_",
        "breaker_",
        "dependency_",
        "http_",
        "recommend_",
    ];
    text.split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .filter(|word| PREFIXES.iter().any(|p| word.starts_with(p)))
        .map(|word| {
            ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .unwrap_or(word)
                .to_owned()
        })
        .collect()
}

/// `ops/prometheus/alerts.yml` (checked by `promtool` in scripts/test.sh) and the Grafana
/// dashboard read only metrics the origin exports: a renamed metric fails here, not silently
/// in production.
#[tokio::test]
async fn the_alert_rules_and_the_grafana_dashboard_read_metrics_that_exist() {
    let app = TestApp::spawn().await;
    // Every histogram has a sample: a request, and a recommendation (a fold-in).
    let token = app.user_token(1);
    assert_eq!(
        app.get_as("/users/1/recommendations", &token)
            .await
            .status(),
        200
    );
    let text = app.get("/metrics").await.text().await.unwrap();
    let exported: std::collections::BTreeSet<String> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(|name| metric_names_in(name).into_iter().next().unwrap_or_default())
        .collect();

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let alerts = std::fs::read_to_string(root.join("ops/prometheus/alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(root.join("ops/grafana/movierec-origin.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| target["expr"].as_str().expect("a PromQL expr").to_owned())
        .collect();
    assert!(exprs.len() >= 10, "the dashboard has its panels");

    for (file, read) in [
        ("alerts.yml", metric_names_in(&alerts)),
        ("movierec-origin.json", metric_names_in(&exprs.join("\n"))),
    ] {
        assert!(!read.is_empty(), "{file} reads metrics");
        let missing: Vec<&String> = read.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{file} reads metrics /metrics does not export: {missing:?}\n{text}"
        );
    }
}

/// Warming learns who will ask: the users this instance served lately come first, whatever
/// their activity of all time. With `WARM_MAX_USERS=0` only they are warmed.
#[tokio::test]
async fn warming_starts_with_the_users_served_lately() {
    let database = tests::fresh_database().await;
    let mode = tests::redis_mode();
    let mut settings = tests::test_settings(&database, mode, &tests::redis_url(mode));
    settings.warm_max_users = 0;
    let app = TestApp::spawn_with(settings).await;
    // The least active user asks once; a rating then drops what was cached for them.
    let quiet: i32 = sqlx::query_scalar("SELECT id FROM users ORDER BY rating_count, id LIMIT 1")
        .fetch_one(app.db())
        .await
        .unwrap();
    let other: i32 =
        sqlx::query_scalar("SELECT id FROM users WHERE id <> $1 ORDER BY rating_count, id LIMIT 1")
            .bind(quiet)
            .fetch_one(app.db())
            .await
            .unwrap();
    let path = |user: i32| format!("/users/{user}/recommendations");
    let first = app.get_as(&path(quiet), &app.user_token(quiet)).await;
    assert_eq!(first.status(), 200);
    let unrated: i32 = sqlx::query_scalar(
        "SELECT id FROM movies m WHERE NOT EXISTS \
         (SELECT 1 FROM ratings r WHERE r.user_id = $1 AND r.movie_id = m.id) ORDER BY id LIMIT 1",
    )
    .bind(quiet)
    .fetch_one(app.db())
    .await
    .unwrap();
    assert_eq!(app.rate(quiet, unrated.into(), 4.0).await.status(), 201);

    let warm: Value = app.warm().await;
    assert_eq!(warm["recent_users"], 1, "{warm}");
    assert_eq!(warm["users_warmed"], 1, "{warm}");
    for (route, user) in [
        (path(quiet), quiet),
        (format!("/users/{quiet}/profile"), quiet),
    ] {
        let response = app.get_as(&route, &app.user_token(user)).await;
        assert!(
            cache_status(&response).starts_with("origin; hit"),
            "{route}: {}",
            cache_status(&response)
        );
    }
    let unseen = app.get_as(&path(other), &app.user_token(other)).await;
    assert!(
        cache_status(&unseen).contains("miss"),
        "a user nobody served is not warmed: {}",
        cache_status(&unseen)
    );
}
