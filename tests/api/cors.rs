//! CORS at the origin, for browsers that call it directly: preflights answered before any
//! route, allowed origins echoed with the exposed headers, others get no CORS header.

use tests::{TestApp, assert_preflight_allows, assert_readable_by, header};

const PAGE: &str = "http://localhost:5173";

#[tokio::test]
async fn preflights_and_actual_responses_follow_the_policy() {
    let app = TestApp::spawn().await;
    let preflight = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            app.url("/users/1/recommendations"),
        )
        .header("origin", PAGE)
        .header("access-control-request-method", "GET")
        .header(
            "access-control-request-headers",
            "authorization, if-none-match",
        )
        .send()
        .await
        .unwrap();
    assert_preflight_allows(&preflight, PAGE);

    let movie = app
        .client
        .get(app.url("/movies/1"))
        .header("origin", PAGE)
        .send()
        .await
        .unwrap();
    assert_eq!(movie.status(), 200);
    assert_readable_by(&movie, PAGE);

    // Another site: no CORS header, so its page cannot read the response.
    let other = app
        .client
        .get(app.url("/movies/1"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(header(&other, "access-control-allow-origin"), None);
    assert!(header(&other, "vary").is_some_and(|v| v.contains("origin")));
    let refused = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/movies/1"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&refused, "access-control-allow-origin"), None);
}
