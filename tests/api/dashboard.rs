//! The operator's dashboard (`GET /admin/dashboard`) in headless Chromium: the page is given an
//! admin token through its form (a user's token is refused first), fills its charts with live
//! data while requests flow (to the origin, and through the edge in front of it: the edge's
//! layer of the hit rate comes from the edge's own counters), shows the model and the stored `origin eval` report, and shows
//! `memory_high` once Redis's `maxmemory` is lowered under what it holds; the console stays
//! free of errors. A screenshot is saved in `target/dashboard/dashboard.png`; with
//! `UPDATE_SCREENSHOT=1` the test lets a minute of data come in first and also writes the
//! screenshot to `docs/dashboard.png`, the README's.
//!
//! The origin runs on a private Redis (whatever `TEST_REDIS_MODE` says): the test lowers its
//! `maxmemory`, which no other test may see. Needs the bundle built into the origin
//! (`scripts/build-dashboard.sh` before `cargo build`; scripts/test.sh does it) and Chromium
//! (`tests::browser`).

use origin::settings::RedisMode;
use recommender::als::AlsParams;
use recommender::evaluation::{Report, Trial};
use recommender::metrics::Metrics;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tests::browser::{ChromeDriver, Session, assert_browser_installed};
use tests::edge::{EdgeServer, PURGE_SECRET};
use tests::{PrivateServer, TestApp, fresh_database, repo_root, test_settings};

/// The charts that must hold live data, each by its element id.
const CHARTS: [&str; 9] = [
    "chart-requests",
    "chart-latency",
    "chart-families",
    "chart-layers",
    "chart-memory",
    "chart-latency-redis",
    "chart-ops",
    "chart-evictions",
    "chart-fold-in",
];

/// Requests in the background until dropped: cached reads (hits), and for one user after
/// another a rating and then their recommendations (a miss, and a fold-in: the rating changed
/// the user's state), paced so that the page and Chromium get their share of the two cores.
/// The public reads and a personal one also go through the edge.
struct Traffic(tokio::task::JoinHandle<()>);

impl Traffic {
    fn start(app: &TestApp, edge: &EdgeServer) -> Traffic {
        let (client, base, token) = (app.client.clone(), app.url(""), app.admin_token());
        let edge = edge.url.clone();
        Traffic(tokio::spawn(async move {
            let bearer = format!("Bearer {token}");
            for i in 0u32.. {
                let user = i % 100 + 1;
                let movie = i % 40 + 1;
                let requests = [
                    client.get(format!("{edge}/movies/popular?limit=10")),
                    client.get(format!("{edge}/movies/{movie}")),
                    client.get(format!("{edge}/genres/drama/top")),
                    client
                        .get(format!("{edge}/users/{user}/profile"))
                        .header("authorization", &bearer),
                    client.get(format!("{base}/movies/popular?limit=10")),
                    client.get(format!("{base}/movies/{movie}")),
                    client.get(format!("{base}/genres/drama/top")),
                    client
                        .post(format!("{base}/users/{user}/ratings"))
                        .header("authorization", &bearer)
                        .json(&json!({ "movie_id": 1 + (i * 7) % 1682, "rating": 4.0 })),
                    client
                        .get(format!("{base}/users/{user}/recommendations"))
                        .header("authorization", &bearer),
                ];
                for request in requests {
                    let _ = request.send().await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }))
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The page's `window.dashboard.state()`.
async fn page_state(driver: &ChromeDriver, session: &Session) -> Value {
    driver
        .execute(
            session,
            "return window.dashboard ? window.dashboard.state() : null;",
            json!([]),
        )
        .await
}

/// Polls the page's state until `ready` holds, for up to `within`; returns that state.
async fn wait_for(
    driver: &ChromeDriver,
    session: &Session,
    within: Duration,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let state = page_state(driver, session).await;
        if ready(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard did not show {what} within {within:?}; its state: {state:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether chart `id` has a series with at least `points` values.
fn has_points(state: &Value, id: &str, points: u64) -> bool {
    state["charts"][id].as_object().is_some_and(|series| {
        series
            .values()
            .any(|s| s["points"].as_u64() >= Some(points))
    })
}

/// The element's text.
async fn text(driver: &ChromeDriver, session: &Session, selector: &str) -> String {
    driver
        .execute(
            session,
            "return document.querySelector(arguments[0]).textContent;",
            json!([selector]),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn sign_in(driver: &ChromeDriver, session: &Session, token: &str) {
    let input = driver.find(session, "#token").await;
    driver.type_into(session, &input, token).await;
    let button = driver.find(session, "#sign-in-button").await;
    driver.click(session, &button).await;
}

/// The evaluation `origin eval` would store.
fn evaluation() -> Report {
    let metrics = |ndcg| Metrics {
        precision: 0.25,
        recall: 0.125,
        ndcg,
        coverage: 0.5,
        users: 943,
    };
    let chosen = AlsParams::default();
    Report {
        chosen,
        trials: vec![
            Trial {
                params: chosen,
                validation: metrics(0.3),
            },
            Trial {
                params: AlsParams {
                    factors: chosen.factors * 2,
                    ..chosen
                },
                validation: metrics(0.2),
            },
        ],
        model: metrics(0.3125),
        popularity: metrics(0.1875),
    }
}

#[tokio::test]
async fn the_dashboard_shows_live_data_and_the_memory_alert_in_a_browser() {
    assert_browser_installed();
    let redis = PrivateServer::redis();
    let redis_url = format!("redis://127.0.0.1:{}", redis.port);
    // The edge's port first: the origin reads the edge's counters from it.
    let edge_port = tests::free_port();
    let mut settings = test_settings(&fresh_database().await, RedisMode::Single, &redis_url);
    settings.edge_url = Some(format!("http://127.0.0.1:{edge_port}").parse().unwrap());
    settings.purge_secret = Some(PURGE_SECRET.to_owned().into());
    let app = TestApp::spawn_with(settings).await;
    let edge = EdgeServer::start_on(edge_port, &app.url(""), &[]).await;
    origin::model::store_evaluation(&app.state.db, &evaluation())
        .await
        .expect("store an evaluation");
    let version = app
        .state
        .model
        .get()
        .expect("the template has a model")
        .version
        .clone();

    // The shell is public and holds nothing secret; the data needs the admin role.
    let page = app.get("/admin/dashboard").await;
    assert_eq!(page.status(), 200);
    let policy = tests::header(&page, "content-security-policy")
        .unwrap_or_default()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let html = page.text().await.expect("the page");
    assert!(
        html.contains("/admin/dashboard/dashboard.js"),
        "the origin was built without the dashboard's bundle: run scripts/build-dashboard.sh, \
         then build again (the page says: {html})"
    );
    assert_eq!(app.get("/admin/dashboard/model").await.status(), 401);
    let user_token = app.user_token(1);
    assert_eq!(
        app.get_as("/admin/dashboard/model", &user_token)
            .await
            .status(),
        403
    );
    let icon = app.get("/favicon.ico").await;
    assert_eq!(icon.status(), 200);
    assert_eq!(tests::header(&icon, "content-type"), Some("image/png"));

    let _traffic = Traffic::start(&app, &edge);
    let driver = ChromeDriver::start().await;
    let session = driver.session().await;
    driver.set_window_size(&session, 1280, 1000).await;
    let url = app.url("/admin/dashboard");
    driver.open(&session, &url).await;

    // A user's token: refused, the form asks again and says why.
    wait_for(
        &driver,
        &session,
        Duration::from_secs(10),
        "its sign-in form",
        |s| s["signedIn"] == false,
    )
    .await;
    sign_in(&driver, &session, &user_token).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !text(&driver, &session, "#sign-in-error")
        .await
        .contains("403")
    {
        assert!(
            Instant::now() < deadline,
            "a user's token is not refused on the page"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refusals = driver.console_errors(&session).await;
    assert!(
        refusals.iter().all(|e| e.contains("403")),
        "only the refused calls: {refusals:?}"
    );

    // The admin's token: kept in the tab, never in the URL.
    let admin_token = app.admin_token();
    sign_in(&driver, &session, &admin_token).await;
    let kept = driver
        .execute(
            &session,
            "window.notReloaded = true; return sessionStorage.getItem('movierec.dashboard.admin-token');",
            json!([]),
        )
        .await;
    assert_eq!(kept, admin_token.as_str());
    let location = driver
        .command(
            reqwest::Method::GET,
            &format!("{}/url", session.path),
            Value::Null,
        )
        .await;
    assert_eq!(location, url.as_str(), "the token is not in the URL");

    // Live data in every chart, refreshed in place: two points at least, no reload.
    let state = wait_for(
        &driver,
        &session,
        Duration::from_secs(90),
        "live data in every chart",
        |s| CHARTS.iter().all(|id| has_points(s, id, 2)),
    )
    .await;
    let reloaded = driver
        .execute(&session, "return window.notReloaded === true;", json!([]))
        .await;
    assert_eq!(reloaded, true, "the page refreshed without reloading");
    assert!(
        state["charts"]["chart-requests"]
            .as_object()
            .is_some_and(|s| s.contains_key("GET /movies/{id}")),
        "requests per route: {state:#}"
    );
    assert!(
        has_points(&state, "chart-latency", 2),
        "P50/P95/P99 of all routes: {state:#}"
    );
    assert_eq!(state["model"], version.as_str(), "{state:#}");
    // The edge's layer, from its counters: the edge hits (40 movies, three lists, repeated).
    let state = wait_for(
        &driver,
        &session,
        Duration::from_secs(30),
        "the edge's hit rate",
        |s| {
            s["charts"]["chart-layers"]["edge (its lookups)"]["points"].as_u64() >= Some(2)
                && s["charts"]["chart-layers"]["edge (its lookups)"]["last"]
                    .as_f64()
                    .is_some_and(|rate| rate > 0.0)
        },
    )
    .await;
    let edge_note = text(&driver, &session, "#edge-note").await;
    assert!(edge_note.contains("isolate"), "{edge_note}");
    // Hits on some route (the lists repeat from the second round; the 40 movies only from
    // the 41st, which a slow run may not reach yet) and the personal reads passed through.
    let counted = edge.stats().await;
    let hits: u64 = counted["routes"]
        .as_object()
        .map(|routes| routes.values().filter_map(|r| r["hits"].as_u64()).sum())
        .unwrap_or(0);
    assert!(
        hits > 0 && counted["passed"].as_u64() > Some(0),
        "the edge counted hits and the personal reads it forwarded: {counted:#}"
    );
    assert_eq!(state["evaluation"]["model"]["ndcg"], 0.3125, "{state:#}");
    assert_eq!(state["evaluation"]["candidates"], 2, "{state:#}");
    assert!(
        text(&driver, &session, "#evaluation")
            .await
            .contains("0.3125"),
        "the evaluation is on the page"
    );
    assert!(
        !state["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n == "memory_high")),
        "no memory alert before maxmemory is lowered: {state:#}"
    );

    // For the README's picture, a minute of data: the charts span a minute at least.
    let update_screenshot = std::env::var("UPDATE_SCREENSHOT").is_ok_and(|v| v == "1");
    if update_screenshot {
        let ticks = state["ticks"].as_u64().unwrap_or_default();
        wait_for(
            &driver,
            &session,
            Duration::from_secs(150),
            "a minute of data",
            |s| s["ticks"].as_u64() >= Some(ticks + 28),
        )
        .await;
    }

    // Redis nearly full: `maxmemory` just above what it uses, so used/maxmemory > 90%.
    let client = redis::Client::open(redis_url.as_str()).expect("redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the private Redis");
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .expect("INFO memory");
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used + used / 20)
        .query_async(&mut conn)
        .await
        .expect("CONFIG SET maxmemory");
    let state = wait_for(
        &driver,
        &session,
        Duration::from_secs(30),
        "memory_high",
        |s| {
            s["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|n| n == "memory_high"))
                && s["charts"]["chart-memory"]["used / maxmemory"]["last"]
                    .as_f64()
                    .is_some_and(|share| share > 0.9)
        },
    )
    .await;
    let alerts = text(&driver, &session, "#alerts").await;
    assert!(
        alerts.contains("memory_high") && alerts.contains("maxmemory"),
        "the alert is shown: {alerts}"
    );

    // The whole page in one picture, after a redraw at that size.
    let height = driver
        .execute(
            &session,
            "return document.documentElement.scrollHeight;",
            json!([]),
        )
        .await
        .as_u64()
        .expect("the page's height");
    driver
        .set_window_size(&session, 1280, u32::try_from(height).unwrap_or(4000) + 120)
        .await;
    let ticks = state["ticks"].as_u64().unwrap_or_default();
    wait_for(
        &driver,
        &session,
        Duration::from_secs(10),
        "another refresh",
        |s| s["ticks"].as_u64() > Some(ticks + 1),
    )
    .await;
    let png = driver.screenshot(&session).await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let folder = repo_root().join("target/dashboard");
    std::fs::create_dir_all(&folder).expect("target/dashboard");
    std::fs::write(folder.join("dashboard.png"), &png).expect("save the screenshot");
    if update_screenshot {
        std::fs::create_dir_all(repo_root().join("docs")).expect("docs/");
        std::fs::write(repo_root().join("docs/dashboard.png"), &png).expect("docs/dashboard.png");
    }

    let errors = driver.console_errors(&session).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    driver.close(session).await;
}
