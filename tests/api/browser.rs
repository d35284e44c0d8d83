//! CORS proven in a real browser: headless Chromium loads a page from one local site whose
//! JavaScript calls the API through the edge (a public list, a movie and its 304, a user's
//! recommendations with a bearer token, a rating POSTed as JSON) and reads each status, body
//! and exposed header; a page from a site the edge does not allow makes the same public call
//! and the browser refuses it.
//!
//! Chromium is driven over W3C WebDriver (`tests::browser`): the test awaits the page's own
//! promise instead of guessing how long the fetches take, and it reads the browser console,
//! so an unexpected CORS error fails the test.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`apt-get install -y chromium
//! chromium-driver`; scripts/test.sh installs them) and the built edge (scripts/build-edge.sh).

use serde_json::{Value, json};
use tests::TestApp;
use tests::browser::{ChromeDriver, assert_browser_installed};
use tests::edge::EdgeServer;

/// The test page. `__CONFIG__` becomes `{"api", "token", "user", "movie", "full"}`. On load it
/// makes its calls and leaves their outcome in the promise `window.result` (and on screen).
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>CORS check</title></head>
<body>
<h1>CORS check</h1>
<pre id="result">running…</pre>
<script>
"use strict";
const CONFIG = __CONFIG__;
// The exposed headers the page wants, and `Vary`: sent (the edge adds `Vary: Origin` to every
// response to a request with an `Origin`) but not exposed, so the browser must hide it.
const READ = ["etag", "age", "cache-status", "x-request-id", "vary"];

async function call(name, path, init, field) {
  const step = { name };
  try {
    const response = await fetch(CONFIG.api + path, init);
    step.status = response.status;
    step.headers = {};
    for (const header of READ) step.headers[header] = response.headers.get(header);
    if (field) step.body = field(await response.json());
  } catch (error) {
    step.error = error.name;
    step.message = error.message;
  }
  return step;
}

async function run() {
  // `no-store`: every call goes to the edge; the browser's own HTTP cache stays out of it.
  const steps = [await call("popular", "/movies/popular?limit=5", { cache: "no-store" },
                            (body) => body.movies.length)];
  if (!CONFIG.full) return steps;
  const movie = await call("movie", "/movies/1", { cache: "no-store" }, (body) => body.title);
  steps.push(movie);
  steps.push(await call("movie again", "/movies/1", {
    cache: "no-store",
    headers: { "If-None-Match": movie.headers && movie.headers.etag },
  }, null));
  const bearer = "Bearer " + CONFIG.token;
  steps.push(await call("recommendations", `/users/${CONFIG.user}/recommendations`, {
    cache: "no-store",
    headers: { "Authorization": bearer },
  }, (body) => body.user_id));
  steps.push(await call("rating", `/users/${CONFIG.user}/ratings`, {
    method: "POST",
    headers: { "Authorization": bearer, "Content-Type": "application/json" },
    body: JSON.stringify({ movie_id: CONFIG.movie, rating: 4.5 }),
  }, (body) => body.movie_id));
  return steps;
}

window.result = run().then((steps) => {
  document.getElementById("result").textContent = JSON.stringify(steps, null, 2);
  return steps;
});
</script>
</body>
</html>
"#;

/// A 1×1 transparent PNG: Chromium asks every site for `/favicon.ico`, and a 404 there would
/// be a console error.
const FAVICON: [u8; 68] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0b, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x00, 0x02, 0x00,
    0x00, 0x05, 0x00, 0x01, 0x7a, 0x5e, 0xab, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44,
    0xae, 0x42, 0x60, 0x82,
];

/// A site serving the test page on 127.0.0.1: bound first (so its origin can be allowed
/// before the edge starts), serving once the page's configuration is known.
struct PageSite {
    /// `http://127.0.0.1:PORT`, as the browser sends it in `Origin`.
    origin: String,
    listener: Option<tokio::net::TcpListener>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl PageSite {
    async fn bind() -> PageSite {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the page's site");
        let origin = format!("http://{}", listener.local_addr().expect("addr"));
        PageSite {
            origin,
            listener: Some(listener),
            task: None,
        }
    }

    /// Serves the page at `/` with `config`, and the favicon.
    fn serve(&mut self, config: Value) {
        use axum::http::header::CONTENT_TYPE;
        let html = PAGE.replace("__CONFIG__", &config.to_string());
        let router = axum::Router::new()
            .route(
                "/",
                axum::routing::get(|| async { axum::response::Html(html) }),
            )
            .route(
                "/favicon.ico",
                axum::routing::get(|| async { ([(CONTENT_TYPE, "image/png")], FAVICON) }),
            );
        let listener = self.listener.take().expect("served once");
        self.task = Some(tokio::spawn(async move {
            axum::serve(listener, router).await.expect("page site");
        }));
    }
}

impl Drop for PageSite {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The step named `name` of a page's result.
fn step<'a>(steps: &'a Value, name: &str) -> &'a Value {
    steps
        .as_array()
        .unwrap_or_else(|| panic!("the page's steps: {steps}"))
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {steps}"))
}

/// Asserts the page read `status` and the exposed headers of a step, but not `Vary`.
fn assert_read<'a>(steps: &'a Value, name: &str, status: u64) -> &'a Value {
    let step = step(steps, name);
    assert_eq!(
        step["status"], status,
        "{name}: the page reads the status: {step}"
    );
    let headers = &step["headers"];
    let id = headers["x-request-id"].as_str().unwrap_or_default();
    assert!(
        !id.is_empty() && !id.contains(','),
        "{name}: the page reads one x-request-id: {step}"
    );
    assert!(
        headers["cache-status"]
            .as_str()
            .is_some_and(|s| s.contains("origin")),
        "{name}: the page reads Cache-Status: {step}"
    );
    assert_eq!(
        headers["vary"],
        Value::Null,
        "{name}: Vary is not exposed, so the browser hides it: {step}"
    );
    step
}

#[tokio::test]
async fn a_page_on_an_allowed_site_reads_the_api_through_the_edge_and_others_cannot() {
    assert_browser_installed();
    let app = TestApp::spawn().await;
    let mut allowed = PageSite::bind().await;
    let mut other = PageSite::bind().await;
    let edge = EdgeServer::start_with(
        &format!("http://{}", app.addr),
        &[("CORS_ALLOWED_ORIGINS", &allowed.origin)],
    )
    .await;
    let user = 1;
    let movie: i32 = sqlx::query_scalar(
        "SELECT id FROM movies m WHERE NOT EXISTS (SELECT 1 FROM ratings r WHERE r.user_id = $1 AND r.movie_id = m.id) ORDER BY id LIMIT 1",
    )
    .bind(user)
    .fetch_one(app.db())
    .await
    .expect("a movie user 1 has not rated");
    allowed.serve(json!({
        "api": edge.url, "token": app.user_token(user), "user": user, "movie": movie, "full": true,
    }));
    other.serve(json!({ "api": edge.url, "full": false }));

    let driver = ChromeDriver::start().await;
    let session = driver.session().await;

    driver.open(&session, &format!("{}/", allowed.origin)).await;
    let steps = driver.page_result(&session).await;
    let console = driver.console(&session).await;

    let popular = assert_read(&steps, "popular", 200);
    assert_eq!(popular["body"], 5, "the page reads the list: {popular}");
    assert!(popular["headers"]["etag"].is_string(), "{popular}");

    let first = assert_read(&steps, "movie", 200);
    assert_eq!(
        first["body"], "Toy Story",
        "the page reads the movie: {first}"
    );
    let etag = first["headers"]["etag"].as_str().unwrap_or_default();
    assert!(etag.starts_with('"'), "the page reads the ETag: {first}");

    // Its conditional request is answered 304 by the edge from its stored copy, with `Age`.
    let again = assert_read(&steps, "movie again", 304);
    assert_eq!(again["headers"]["etag"], etag, "{again}");
    assert!(
        again["headers"]["cache-status"]
            .as_str()
            .is_some_and(|s| s.contains("edge; hit")),
        "an edge hit: {again}"
    );
    assert!(
        again["headers"]["age"]
            .as_str()
            .is_some_and(|age| age.parse::<u64>().is_ok()),
        "the page reads Age on an edge hit: {again}"
    );

    let recommendations = assert_read(&steps, "recommendations", 200);
    assert_eq!(
        recommendations["body"], user,
        "the page reads the user's recommendations: {recommendations}"
    );

    let rating = assert_read(&steps, "rating", 201);
    assert_eq!(
        rating["body"], movie,
        "the page reads the receipt: {rating}"
    );
    let stored: Option<f32> =
        sqlx::query_scalar("SELECT rating FROM ratings WHERE user_id = $1 AND movie_id = $2")
            .bind(user)
            .bind(movie)
            .fetch_optional(app.db())
            .await
            .expect("read the rating");
    assert_eq!(stored, Some(4.5), "the page's rating was stored");

    let errors: Vec<_> = console
        .iter()
        .filter(|(level, _)| level == "SEVERE")
        .collect();
    assert!(
        errors.is_empty(),
        "console errors on the allowed page: {errors:?}"
    );

    // The other site: the edge answers, but without `Access-Control-Allow-Origin`, so the
    // browser rejects the fetch and the page reads nothing.
    driver.open(&session, &format!("{}/", other.origin)).await;
    let steps = driver.page_result(&session).await;
    let console = driver.console(&session).await;
    let refused = step(&steps, "popular");
    assert_eq!(
        refused["error"], "TypeError",
        "the browser blocks it: {refused}"
    );
    assert_eq!(refused["status"], Value::Null, "{refused}");
    let errors: Vec<_> = console
        .iter()
        .filter(|(level, _)| level == "SEVERE")
        .collect();
    assert!(
        errors.iter().any(|(_, message)| {
            message.contains(&format!("from origin '{}'", other.origin))
                && message.contains("has been blocked by CORS policy")
        }),
        "the console says why: {errors:?}"
    );
    for (_, message) in &errors {
        assert!(
            message.contains("blocked by CORS policy")
                || message.contains("/movies/popular?limit=5 - Failed to load resource"),
            "only the expected CORS error: {errors:?}"
        );
    }

    driver.close(session).await;

    // What the browser hid from the page was sent: the `Vary: Origin` of every response to a
    // request with an `Origin` (so the page's null `Vary` above is the browser's doing).
    let sent = app
        .client
        .get(format!("{}/movies/1", edge.url))
        .header("origin", &allowed.origin)
        .send()
        .await
        .expect("request to the edge");
    assert!(
        sent.headers()
            .get("vary")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("origin")),
        "the edge sends Vary: Origin: {:?}",
        sent.headers()
    );
}
