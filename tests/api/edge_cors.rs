//! CORS at the edge (workerd): preflights answered without an origin round trip, every
//! response's CORS headers set for its own requester, and a stored copy shared by every site
//! without one site's `Access-Control-Allow-Origin` reaching another.

use tests::edge::{EdgeServer, FakeOrigin};
use tests::{TestApp, assert_preflight_allows, assert_readable_by, cache_status, header};

const SITE: &str = "http://localhost:5173";
const OTHER_SITE: &str = "http://127.0.0.1:3000";
const EVIL: &str = "https://evil.example";

async fn get_from(client: &reqwest::Client, url: &str, origin: Option<&str>) -> reqwest::Response {
    let mut request = client.get(url);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.expect("request to the edge")
}

#[tokio::test]
async fn preflights_are_answered_at_the_edge() {
    let origin = FakeOrigin::start().await;
    let edge = EdgeServer::start(&origin.url).await;
    let client = reqwest::Client::new();
    let preflight = client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/users/1/recommendations", edge.url),
        )
        .header("origin", SITE)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_preflight_allows(&preflight, SITE);
    assert_eq!(
        header(&preflight, "access-control-expose-headers"),
        None,
        "a preflight's answer exposes nothing: it has no body to read"
    );
    assert!(header(&preflight, "vary").is_some_and(|v| v.contains("origin")));
    assert!(header(&preflight, "cache-status").is_none());

    let refused = client
        .request(reqwest::Method::OPTIONS, format!("{}/movies/1", edge.url))
        .header("origin", EVIL)
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 204);
    assert_eq!(header(&refused, "access-control-allow-origin"), None);
    assert_eq!(header(&refused, "access-control-allow-headers"), None);
    assert!(
        origin.seen().is_empty(),
        "no preflight reached the origin: {:?}",
        origin.seen()
    );
}

#[tokio::test]
async fn one_stored_copy_serves_every_site_with_its_own_headers() {
    let app = TestApp::spawn().await;
    let edge = EdgeServer::start(&format!("http://{}", app.addr)).await;
    let client = reqwest::Client::new();
    let url = format!("{}/movies/1", edge.url);

    // A disallowed site asks first: its miss is stored, without any CORS header.
    let evil = get_from(&client, &url, Some(EVIL)).await;
    assert_eq!(evil.status(), 200);
    assert!(cache_status(&evil).ends_with("edge; fwd=miss; stored"));
    assert_eq!(header(&evil, "access-control-allow-origin"), None);
    assert!(header(&evil, "vary").is_some_and(|v| v.contains("origin")));

    for site in [SITE, OTHER_SITE] {
        let hit = get_from(&client, &url, Some(site)).await;
        assert!(
            cache_status(&hit).contains("edge; hit"),
            "{}",
            cache_status(&hit)
        );
        assert_readable_by(&hit, site);
    }
    let again = get_from(&client, &url, Some(EVIL)).await;
    assert!(cache_status(&again).contains("edge; hit"));
    assert_eq!(
        header(&again, "access-control-allow-origin"),
        None,
        "no allowed site's header reaches another"
    );
    let plain = get_from(&client, &url, None).await;
    assert_eq!(header(&plain, "access-control-allow-origin"), None);

    // A 304 from the stored copy carries the requester's CORS headers too.
    let etag = header(&plain, "etag").unwrap().to_owned();
    let not_modified = client
        .get(&url)
        .header("origin", SITE)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert_eq!(
        header(&not_modified, "access-control-allow-origin"),
        Some(SITE)
    );

    // Personal data passes through, with the edge's policy applied.
    let recommendations = client
        .get(format!("{}/users/1/recommendations", edge.url))
        .header("origin", SITE)
        .bearer_auth(app.user_token(1))
        .send()
        .await
        .unwrap();
    assert_eq!(recommendations.status(), 200);
    assert_eq!(
        header(&recommendations, "access-control-allow-origin"),
        Some(SITE)
    );
    let denied = client
        .get(format!("{}/users/1/recommendations", edge.url))
        .header("origin", EVIL)
        .bearer_auth(app.user_token(1))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&denied, "access-control-allow-origin"), None);
}
