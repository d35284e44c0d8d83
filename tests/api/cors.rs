//! CORS at the origin, for browsers that call it directly: preflights answered before any
//! route, allowed origins echoed with the exposed headers, others get no CORS header.

use tests::TestApp;

const PAGE: &str = "http://localhost:5173";

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

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
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        header(&preflight, "access-control-allow-origin"),
        Some(PAGE)
    );
    let allowed = header(&preflight, "access-control-allow-headers").unwrap_or_default();
    for name in [
        "authorization",
        "content-type",
        "if-none-match",
        "x-request-id",
    ] {
        assert!(allowed.contains(name), "{name} allowed by name: {allowed}");
    }
    assert!(header(&preflight, "access-control-allow-methods").is_some_and(|m| m.contains("POST")));
    assert_eq!(header(&preflight, "access-control-max-age"), Some("7200"));

    let movie = app
        .client
        .get(app.url("/movies/1"))
        .header("origin", PAGE)
        .send()
        .await
        .unwrap();
    assert_eq!(movie.status(), 200);
    assert_eq!(header(&movie, "access-control-allow-origin"), Some(PAGE));
    let exposed = header(&movie, "access-control-expose-headers").unwrap_or_default();
    for name in ["etag", "age", "cache-status", "x-request-id", "retry-after"] {
        assert!(exposed.contains(name), "{name} exposed: {exposed}");
    }
    assert!(header(&movie, "vary").is_some_and(|v| v.contains("origin")));

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
