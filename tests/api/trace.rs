//! `GET /admin/trace/{request_id}`: real requests sent with a chosen `x-request-id`, then
//! their traces read back as an operator would, checking each cache layer's decisions in the
//! order they were taken.

use futures::future::BoxFuture;
use origin::hooks::Point;
use origin::settings::RedisMode;
use origin::trace::TraceReport;
use std::sync::Arc;
use std::time::Duration;
use tests::{
    PrivateServer, TestApp, cache_status, fresh_database, redis_mode, redis_url, test_settings,
};
use tokio::sync::Notify;

/// How long a test waits for something that should happen at once.
const DEADLINE: Duration = Duration::from_secs(10);

/// A request id no other request of the run has.
fn fresh_id(label: &str) -> String {
    format!("{label}-{}", uuid::Uuid::new_v4().simple())
}

/// `GET path` with `x-request-id: id` (and a token, if given); returns the response.
async fn send(app: &TestApp, path: &str, id: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path)).header("x-request-id", id);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request")
}

/// The trace of request `id`, read with an admin's token.
async fn trace(app: &TestApp, id: &str) -> TraceReport {
    let response = app
        .get_as(&format!("/admin/trace/{id}"), &app.admin_token())
        .await;
    assert_eq!(response.status(), 200, "trace of {id}");
    response.json().await.expect("trace JSON")
}

/// The steps of `lookup` as `layer decision[ reason]`, PostgreSQL queries left out (how many a
/// computation makes is its own business).
fn steps(report: &TraceReport, lookup: u16) -> Vec<String> {
    report
        .steps
        .iter()
        .filter(|s| s.lookup == Some(lookup) && s.layer != "postgres")
        .map(|s| match &s.reason {
            Some(reason) => format!("{} {} {reason}", s.layer, s.decision),
            None => format!("{} {}", s.layer, s.decision),
        })
        .collect()
}

/// How many PostgreSQL queries `lookup`'s computation made.
fn queries(report: &TraceReport, lookup: u16) -> usize {
    report
        .steps
        .iter()
        .filter(|s| s.lookup == Some(lookup) && s.layer == "postgres")
        .count()
}

/// Waits until the instance's tracking session is live: until then it keeps no shared value
/// in its local tier (and its traces say `no_tracking_session`).
async fn tracking(app: TestApp) -> TestApp {
    let live = async {
        while app.state.cache.local_snapshot().tracking_session == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(DEADLINE, live)
        .await
        .expect("a tracking session");
    app
}

/// Two instances over one database and one cache namespace, each with its tracking session
/// live (so each serves shared values from its local tier).
async fn two_instances() -> (TestApp, TestApp) {
    let mode = redis_mode();
    let db = fresh_database().await;
    let first = test_settings(&db, mode, &redis_url(mode));
    let mut second = first.clone();
    second.migrate_on_start = false;
    (
        tracking(TestApp::spawn_with(first).await).await,
        tracking(TestApp::spawn_with(second).await).await,
    )
}

#[tokio::test]
async fn a_movie_is_computed_then_read_from_redis_then_served_from_the_local_tier() {
    let (a, b) = two_instances().await;

    // Nothing cached: instance A computes the movie and stores it.
    let id = fresh_id("miss");
    let response = send(&a, "/movies/1", &id, None).await;
    assert_eq!(response.status(), 200);
    let report = trace(&a, &id).await;
    assert_eq!(report.request_id, id);
    assert_eq!(
        (
            report.method.as_str(),
            report.route.as_str(),
            report.path.as_str()
        ),
        ("GET", "/movies/{id}", "/movies/1")
    );
    assert_eq!(report.status, 200);
    assert_eq!(
        report.cache_status.as_deref(),
        Some(cache_status(&response).as_str())
    );
    assert!(report.latency_us > 0);
    assert!(
        report.started_at.contains('T') && report.started_at.ends_with('Z'),
        "RFC 3339, UTC: {}",
        report.started_at
    );
    assert_eq!(report.lookups, 1);
    assert!(
        report
            .steps
            .iter()
            .all(|s| s.family.as_deref() == Some("metadata"))
    );
    assert_eq!(
        steps(&report, 1),
        [
            "local miss",
            "redis miss",
            "single_flight leader",
            "bulkhead waited",
            "compute ok",
            "store ok",
            "local kept",
        ]
    );
    assert_eq!(queries(&report, 1), 1, "one query: {:?}", report.steps);
    // The query ran inside the computation.
    let step = |layer: &str| report.steps.iter().find(|s| s.layer == layer).unwrap();
    let (compute, query) = (step("compute"), step("postgres"));
    assert!(compute.start_us <= query.start_us && query.took_us <= compute.took_us);

    // Instance B has nothing locally: Redis has it, and B keeps it.
    let id = fresh_id("redis-hit");
    let response = send(&b, "/movies/1", &id, None).await;
    assert!(cache_status(&response).starts_with("origin; hit"));
    let report = trace(&b, &id).await;
    assert_eq!(steps(&report, 1), ["local miss", "redis hit", "local kept"]);

    // Then B serves it from its local tier, without asking Redis.
    let id = fresh_id("local-hit");
    send(&b, "/movies/1", &id, None).await;
    let report = trace(&b, &id).await;
    assert_eq!(steps(&report, 1), ["local hit"]);
    assert_eq!(report.steps.len(), 1);
}

#[tokio::test]
async fn a_users_recommendations_show_the_generation_check() {
    let app = TestApp::spawn().await;
    let user = 7;
    let token = app.user_token(user);
    let path = format!("/users/{user}/recommendations?n=10&strategy=hybrid");

    // The first: no generation token yet; it is made before the computation.
    let id = fresh_id("recs-first");
    assert_eq!(send(&app, &path, &id, Some(&token)).await.status(), 200);
    let first = trace(&app, &id).await;
    assert_eq!(
        steps(&first, 1),
        [
            "local miss",
            "generation missing",
            "redis miss",
            "single_flight leader",
            "generation established",
            "bulkhead waited",
            "compute ok",
            "store ok",
            "local kept",
        ]
    );
    assert!(first.steps[0].family.as_deref() == Some("recommendations"));
    assert!(
        first.steps.iter().any(|s| s.layer == "postgres"),
        "the computation's queries: {:?}",
        first.steps
    );

    // The second: the local copy is served once the generation confirms it.
    let id = fresh_id("recs-local");
    assert_eq!(send(&app, &path, &id, Some(&token)).await.status(), 200);
    assert_eq!(
        steps(&trace(&app, &id).await, 1),
        ["local hit", "generation found"]
    );

    // A rating replaces the generation: neither copy may be served, and the trace says why.
    assert_eq!(app.rate(user, 1682, 4.5).await.status(), 201);
    let id = fresh_id("recs-after-rating");
    assert_eq!(send(&app, &path, &id, Some(&token)).await.status(), 200);
    assert_eq!(
        steps(&trace(&app, &id).await, 1),
        [
            "local not_servable generation_mismatch",
            "generation found",
            "redis not_servable generation_mismatch",
            "single_flight leader",
            "bulkhead waited",
            "compute ok",
            "store ok",
            "local kept",
        ]
    );
}

#[tokio::test]
async fn every_lookup_of_a_request_is_in_its_trace() {
    let app = tracking(TestApp::spawn().await).await;
    let id = fresh_id("genre-top");
    assert_eq!(
        send(&app, "/genres/drama/top", &id, None).await.status(),
        200
    );
    let report = trace(&app, &id).await;
    // The genre list (to find the genre), then the genre's top list.
    assert_eq!(report.lookups, 2);
    for lookup in [1, 2] {
        assert_eq!(
            steps(&report, lookup),
            [
                "local miss",
                "redis miss",
                "single_flight leader",
                "bulkhead waited",
                "compute ok",
                "store ok",
                "local kept",
            ],
            "lookup {lookup}"
        );
        assert_eq!(queries(&report, lookup), 1, "lookup {lookup}");
    }
    let last_of_first = report.steps.iter().rposition(|s| s.lookup == Some(1));
    let first_of_second = report.steps.iter().position(|s| s.lookup == Some(2));
    assert!(last_of_first < first_of_second, "{:?}", report.steps);
}

#[tokio::test]
async fn a_collapsed_request_shows_its_wait_and_the_leader_the_computation() {
    let app = tracking(TestApp::spawn().await).await;
    let key = app.state.cache.keys().movie(shared::params::MovieId(2));
    // The leader's computation is held until the other request has joined its flight.
    let joined = Arc::new(Notify::new());
    {
        let (joined, key) = (joined.clone(), key.clone());
        app.state
            .cache
            .hooks()
            .install(move |point| -> BoxFuture<'static, ()> {
                let (joined, key) = (joined.clone(), key.clone());
                Box::pin(async move {
                    match point {
                        Point::FlightJoined {
                            key: flight,
                            collapsed: true,
                        } if flight == key => joined.notify_one(),
                        Point::ComputeStarted { key: computing } if computing == key => {
                            // A deadline, not a pace: without a follower the test fails below.
                            let _ = tokio::time::timeout(DEADLINE, joined.notified()).await;
                        }
                        _ => {}
                    }
                })
            });
    }
    let ids = [fresh_id("flight-a"), fresh_id("flight-b")];
    let (first, second) = tokio::join!(
        send(&app, "/movies/2", &ids[0], None),
        send(&app, "/movies/2", &ids[1], None)
    );
    let statuses = [cache_status(&first), cache_status(&second)];
    let mut leader = None;
    let mut follower = None;
    for (id, status) in ids.iter().zip(&statuses) {
        let report = trace(&app, id).await;
        assert_eq!(report.cache_status.as_deref(), Some(status.as_str()));
        if steps(&report, 1).contains(&"single_flight collapsed".to_owned()) {
            follower = Some(report);
        } else {
            leader = Some(report);
        }
    }
    let (leader, follower) = (
        leader.expect("a leader"),
        follower.unwrap_or_else(|| panic!("a collapsed request: {statuses:?}")),
    );
    assert_eq!(
        follower.cache_status.as_deref(),
        Some("origin; fwd=miss; collapsed")
    );
    // The follower waited; the computation's steps are the leader's.
    assert_eq!(
        steps(&follower, 1),
        ["local miss", "redis miss", "single_flight collapsed"]
    );
    assert_eq!(queries(&follower, 1), 0);
    assert_eq!(
        steps(&leader, 1),
        [
            "local miss",
            "redis miss",
            "single_flight leader",
            "bulkhead waited",
            "compute ok",
            "store ok",
            "local kept",
        ]
    );
    assert_eq!(queries(&leader, 1), 1);
}

#[tokio::test]
async fn while_redis_is_down_the_trace_shows_it_skipped_and_the_outage_hold() {
    let redis = PrivateServer::redis();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let app = TestApp::spawn_with(test_settings(
        &fresh_database().await,
        RedisMode::Single,
        &url,
    ))
    .await;
    redis.stop();
    // Until the service knows Redis is gone, a request may still try it.
    let known = async {
        while !app.state.cache.redis().is_down() {
            app.get("/movies/popular").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(DEADLINE, known)
        .await
        .expect("Redis known to be down");

    let skipped = |report: &TraceReport| {
        let first = &report.steps[0];
        assert_eq!(
            (first.layer.as_str(), first.decision.as_str()),
            ("redis", "skipped")
        );
        let reason = first.reason.as_deref().unwrap_or_default();
        assert!(
            ["breaker_open", "not_connected"].contains(&reason),
            "{reason}"
        );
        steps(report, 1)[1..].to_vec()
    };
    let id = fresh_id("outage-compute");
    assert_eq!(send(&app, "/movies/3", &id, None).await.status(), 200);
    assert_eq!(
        skipped(&trace(&app, &id).await),
        [
            "outage_hold miss",
            "single_flight leader",
            "bulkhead waited",
            "compute ok",
            "outage_hold kept",
        ]
    );
    let id = fresh_id("outage-held");
    assert_eq!(send(&app, "/movies/3", &id, None).await.status(), 200);
    assert_eq!(skipped(&trace(&app, &id).await), ["outage_hold hit"]);
}

#[tokio::test]
async fn only_admins_read_traces_and_unknown_ids_are_404() {
    let app = TestApp::spawn().await;
    // An id with a `/` is asked for percent-encoded.
    let id = format!("client.trace:{}/x+y=", uuid::Uuid::new_v4().simple());
    assert_eq!(send(&app, "/movies/1", &id, None).await.status(), 200);
    let encoded = id.replace('/', "%2F");
    assert_eq!(trace(&app, &encoded).await.request_id, id);

    let path = format!("/admin/trace/{encoded}");
    assert_eq!(app.get(&path).await.status(), 401);
    assert_eq!(app.get_as(&path, &app.user_token(1)).await.status(), 403);

    let unknown = app
        .get_as(
            &format!("/admin/trace/{}", fresh_id("never-sent")),
            &app.admin_token(),
        )
        .await;
    assert_eq!(unknown.status(), 404);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "trace_not_found", "{body}");
}

#[tokio::test]
async fn the_oldest_traces_make_room_and_zero_turns_tracing_off() {
    let mode = redis_mode();
    let db = fresh_database().await;
    let mut settings = test_settings(&db, mode, &redis_url(mode));
    settings.trace_recent_requests = 3;
    let app = TestApp::spawn_with(settings.clone()).await;
    let ids: Vec<String> = (0..4).map(|i| fresh_id(&format!("ring-{i}"))).collect();
    for id in &ids {
        send(&app, "/health", id, None).await;
    }
    let status = |id: String| {
        let app = &app;
        async move {
            app.get_as(&format!("/admin/trace/{id}"), &app.admin_token())
                .await
                .status()
        }
    };
    assert_eq!(status(ids[0].clone()).await, 404, "evicted");
    assert_eq!(status(ids[3].clone()).await, 200);

    settings.trace_recent_requests = 0;
    settings.migrate_on_start = false;
    let off = TestApp::spawn_with(settings).await;
    let id = fresh_id("off");
    send(&off, "/movies/1", &id, None).await;
    let response = off
        .get_as(&format!("/admin/trace/{id}"), &off.admin_token())
        .await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("TRACE_RECENT_REQUESTS=0")),
        "{body}"
    );
}
