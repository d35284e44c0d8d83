//! The edge worker in real workerd (`wrangler dev`) in front of the real origin, or of a
//! scripted origin where a test needs one-second lifetimes, failures or hangs.

use serde_json::{Value, json};
use shared::cache_key::Family;
use std::time::Duration;
use tests::edge::{EdgeServer, FakeOrigin, PURGE_SECRET, Seen};
use tests::{TestApp, cache_status};

/// Requests the origin answered for a family (its own cache counts every lookup).
fn origin_lookups(app: &TestApp, family: Family) -> u64 {
    let s = app.state.cache.stats().snapshot(family);
    s.hits + s.misses + s.stale
}

async fn get(client: &reqwest::Client, url: String) -> reqwest::Response {
    client.get(url).send().await.expect("request to the edge")
}

/// The edge's member of `Cache-Status`: the last one, as the cache closest to the client
/// (RFC 9211 2: "the last member represents the cache closest to the user").
fn edge_status(response: &reqwest::Response) -> String {
    let status = cache_status(response);
    let last = status.rsplit(", ").next().unwrap_or_default().to_owned();
    assert!(
        last.starts_with("edge"),
        "the edge's member is last: {status}"
    );
    last
}

/// The response's one `x-request-id`.
fn request_id(response: &reqwest::Response) -> String {
    let ids: Vec<_> = response.headers().get_all("x-request-id").iter().collect();
    assert_eq!(ids.len(), 1, "exactly one x-request-id: {ids:?}");
    ids[0].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_edge_serves_public_routes_from_its_cache() {
    let app = TestApp::spawn().await;
    let edge = EdgeServer::start(&format!("http://{}", app.addr)).await;
    let client = reqwest::Client::new();

    // MISS, then HIT with no second origin request.
    let first = get(&client, format!("{}/movies/1", edge.url)).await;
    assert_eq!(first.status(), 200);
    // RFC 9211 order: the origin's member first, the edge's (closest to the client) last.
    assert_eq!(
        cache_status(&first),
        "origin; fwd=miss; stored, edge; fwd=miss; stored"
    );
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["title"], "Toy Story");
    let second = get(&client, format!("{}/movies/1", edge.url)).await;
    let status = cache_status(&second);
    assert!(
        status.starts_with("origin; fwd=miss; stored, edge; hit; ttl="),
        "{status}"
    );
    assert!(second.headers().contains_key("age"));
    assert_eq!(second.headers()["etag"].to_str().unwrap(), etag);
    assert!(
        second.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("s-maxage=86400"),
        "the origin's Cache-Control"
    );
    assert!(
        second.headers().get("x-edge-stored-at").is_none(),
        "internal fields never leave the edge"
    );
    assert_eq!(
        origin_lookups(&app, Family::Metadata),
        1,
        "exactly one origin request"
    );

    // If-None-Match from the client: 304 from the edge.
    let not_modified = client
        .get(format!("{}/movies/1", edge.url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert!(
        edge_status(&not_modified).starts_with("edge; hit; ttl="),
        "{}",
        cache_status(&not_modified)
    );
    assert_eq!(not_modified.headers()["etag"].to_str().unwrap(), etag);
    assert!(not_modified.bytes().await.unwrap().is_empty());
    assert_eq!(origin_lookups(&app, Family::Metadata), 1);

    // Keys are normalised: unknown parameters and their order do not split the cache.
    let a = get(
        &client,
        format!("{}/movies/popular?utm_source=x&limit=5", edge.url),
    )
    .await;
    assert_eq!(edge_status(&a), "edge; fwd=miss; stored");
    let list: Value = a.json().await.unwrap();
    assert_eq!(list["movies"].as_array().unwrap().len(), 5);
    let b = get(
        &client,
        format!("{}/movies/popular?limit=5&fbclid=1&utm_source=y", edge.url),
    )
    .await;
    assert!(
        edge_status(&b).starts_with("edge; hit"),
        "{}",
        cache_status(&b)
    );
    get(&client, format!("{}/movies/popular", edge.url)).await;
    let default = get(&client, format!("{}/movies/popular?limit=20&x=1", edge.url)).await;
    assert!(
        edge_status(&default).starts_with("edge; hit"),
        "the default limit is filled in"
    );
    assert!(
        edge_status(&get(&client, format!("{}/genres/Sci-Fi/top?limit=3", edge.url)).await)
            .starts_with("edge; fwd=miss")
    );
    assert!(
        edge_status(&get(&client, format!("{}/genres/sci-fi/top?limit=3", edge.url)).await)
            .starts_with("edge; hit")
    );
    assert!(
        edge_status(&get(&client, format!("{}/genres", edge.url)).await)
            .starts_with("edge; fwd=miss")
    );
    assert!(
        edge_status(&get(&client, format!("{}/genres?lang=fr", edge.url)).await)
            .starts_with("edge; hit")
    );

    // Invalid input is refused at the edge, in the origin's error shape, without asking it.
    let before = origin_lookups(&app, Family::Metadata) + origin_lookups(&app, Family::Popular);
    for (path, code) in [
        ("/movies/abc", "invalid_id"),
        ("/movies/0", "invalid_id"),
        ("/movies/popular?limit=500", "invalid_limit"),
    ] {
        let response = get(&client, format!("{}{path}", edge.url)).await;
        assert_eq!(response.status(), 400, "{path}");
        assert!(
            response.headers().get("cache-status").is_none(),
            "an answer the edge made itself carries no Cache-Status (RFC 9211 2)"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code);
        let direct: Value = app.get(path).await.json().await.unwrap();
        assert_eq!(body, direct, "the same error as the origin's");
    }
    assert_eq!(
        origin_lookups(&app, Family::Metadata) + origin_lookups(&app, Family::Popular),
        before
    );

    // An unknown movie: the origin's 404 passes through and is not stored.
    for _ in 0..2 {
        let missing = get(&client, format!("{}/movies/99999", edge.url)).await;
        assert_eq!(missing.status(), 404);
        assert!(
            edge_status(&missing).starts_with("edge; fwd=miss; detail=status"),
            "{}",
            cache_status(&missing)
        );
    }

    // Personal and write requests go through untouched, Authorization included, never stored.
    let token = app.user_token(1);
    for _ in 0..2 {
        let recs = client
            .get(format!("{}/users/1/recommendations?n=3", edge.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(recs.status(), 200);
        let status = cache_status(&recs);
        assert!(
            status.starts_with("origin; ") && status.ends_with(", edge; fwd=bypass"),
            "{status}"
        );
        assert_eq!(recs.headers()["cache-control"], "private, no-cache");
        let body: Value = recs.json().await.unwrap();
        assert_eq!(body["items"].as_array().unwrap().len(), 3);
    }
    let anonymous = get(&client, format!("{}/users/1/recommendations", edge.url)).await;
    assert_eq!(
        anonymous.status(),
        401,
        "without a token the origin refuses, even after a cached 200"
    );
    let rating = client
        .post(format!("{}/users/1/ratings", edge.url))
        .bearer_auth(&token)
        .json(&json!({"movie_id": 1682, "rating": 4.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(rating.status(), 201);
    let status = cache_status(&rating);
    assert!(
        status.starts_with("origin; fwd=method") && status.ends_with(", edge; fwd=method"),
        "{status}"
    );
    let receipt: Value = rating.json().await.unwrap();
    assert_eq!(receipt["rating"], 4.5);

    // Purge: needs the secret; removes the entry.
    let purge = |secret: Option<&str>| {
        let mut request = client
            .post(format!("{}/__edge/purge", edge.url))
            .json(&json!({"paths": ["/movies/1", "/movies/2"]}));
        if let Some(secret) = secret {
            request = request.bearer_auth(secret);
        }
        request.send()
    };
    let refused = purge(None).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get("cache-status").is_none());
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(purge(Some("wrong-secret")).await.unwrap().status(), 401);
    assert!(
        edge_status(&get(&client, format!("{}/movies/1", edge.url)).await).starts_with("edge; hit"),
        "still stored"
    );
    let lookups = origin_lookups(&app, Family::Metadata);
    let purged = purge(Some(PURGE_SECRET)).await.unwrap();
    assert_eq!(purged.status(), 200);
    assert!(purged.headers().get("cache-status").is_none());
    let receipt: Value = purged.json().await.unwrap();
    assert_eq!(
        receipt["purged"],
        json!(["/movies/1"]),
        "only what was stored"
    );
    let after = get(&client, format!("{}/movies/1", edge.url)).await;
    assert_eq!(
        edge_status(&after),
        "edge; fwd=miss; stored",
        "{}",
        cache_status(&after)
    );
    assert_eq!(origin_lookups(&app, Family::Metadata), lookups + 1);
}

const SWR: &str = "public, max-age=0, s-maxage=1, stale-while-revalidate=60";
const LONGER: &str = "public, max-age=0, s-maxage=60, stale-while-revalidate=60";

#[tokio::test]
async fn stale_while_revalidate_serves_at_once_and_refreshes_in_the_background() {
    let origin = FakeOrigin::start().await;
    origin.route("/movies/1", 200, SWR, false);
    origin.route("/movies/2", 200, SWR, false);
    let edge = EdgeServer::start(&origin.url).await;
    let client = reqwest::Client::new();
    let body = |r: reqwest::Response| async move {
        r.json::<Value>().await.unwrap()["version"]
            .as_u64()
            .unwrap()
    };

    // A changed resource: stale v1 at once, then v2 once the background refresh stored it.
    assert_eq!(
        edge_status(&get(&client, format!("{}/movies/1", edge.url)).await),
        "edge; fwd=miss; stored"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // The new version lives a minute, so the refreshed copy stays fresh while the test looks.
    origin.set_version(2);
    origin.route("/movies/1", 200, LONGER, false);
    let stale = client
        .get(format!("{}/movies/1", edge.url))
        .header("x-request-id", "swr-trigger")
        .send()
        .await
        .unwrap();
    let status = edge_status(&stale);
    assert!(
        status.starts_with("edge; hit; ttl=-") && status.contains("detail=stale-while-revalidate"),
        "{status}"
    );
    assert_eq!(request_id(&stale), "swr-trigger");
    assert_eq!(body(stale).await, 1, "the stale copy, at once");
    let mut refreshed = None;
    for _ in 0..50 {
        let response = get(&client, format!("{}/movies/1", edge.url)).await;
        if edge_status(&response).starts_with("edge; hit; ttl=")
            && !edge_status(&response).contains("stale")
        {
            refreshed = Some(body(response).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refreshed, Some(2), "the refreshed copy afterwards");
    let conditional = origin
        .seen()
        .into_iter()
        .filter(|seen| seen.path == "/movies/1" && seen.if_none_match.is_some())
        .collect::<Vec<_>>();
    assert_eq!(
        conditional
            .first()
            .and_then(|seen| seen.if_none_match.clone())
            .as_deref(),
        Some("\"v1\""),
        "revalidated with the stored ETag"
    );
    assert!(
        conditional
            .iter()
            .any(|seen| seen.request_id.as_deref() == Some("swr-trigger")),
        "the background revalidation carries the id of the request that started it: {conditional:?}"
    );

    // An unchanged resource: the origin's 304 refreshes the stored copy.
    get(&client, format!("{}/movies/2", edge.url)).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // The 304 will carry a longer lifetime: the refreshed copy takes it (RFC 9111 4.3.4).
    origin.route("/movies/2", 200, LONGER, false);
    let stale = get(&client, format!("{}/movies/2", edge.url)).await;
    assert!(edge_status(&stale).contains("stale-while-revalidate"));
    let mut fresh_again = false;
    for _ in 0..50 {
        let response = get(&client, format!("{}/movies/2", edge.url)).await;
        let status = cache_status(&response);
        let edge_member = edge_status(&response);
        if edge_member.starts_with("edge; hit; ttl=") && !edge_member.contains("stale") {
            let ttl: i64 = edge_member["edge; hit; ttl=".len()..].parse().unwrap();
            assert!(
                ttl > 50 && status.starts_with("origin; hit, "),
                "headers refreshed from the 304: {status}"
            );
            assert_eq!(body(response).await, 2);
            fresh_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fresh_again, "a 304 makes the stored copy fresh again");
    // Counted: two misses, the stale copies served, the hits while the refreshes landed.
    let stats = edge.stats().await;
    let movie = &stats["routes"]["movie"];
    assert_eq!(movie["misses"], 2, "{stats:#}");
    assert!(movie["stale"].as_u64() >= Some(2), "{stats:#}");
    assert!(movie["hits"].as_u64() >= Some(2), "{stats:#}");
    assert_eq!(movie["errors"], 0, "{stats:#}");
    // One full fetch; after it only conditional requests with the stored ETag (each stale
    // hit before the refresh landed may have started one), all answered 304.
    let fetches: Vec<Seen> = origin
        .seen()
        .into_iter()
        .filter(|seen| seen.path == "/movies/2")
        .collect();
    assert!(fetches.len() >= 2, "{fetches:?}");
    assert_eq!(fetches[0].if_none_match, None);
    assert!(
        fetches[1..]
            .iter()
            .all(|seen| seen.if_none_match.as_deref() == Some("\"v2\"")),
        "{fetches:?}"
    );
}

#[tokio::test]
async fn stale_if_error_when_the_origin_fails_and_json_errors_without_a_copy() {
    let origin = FakeOrigin::start().await;
    let sie = "public, s-maxage=1, stale-if-error=60";
    origin.route("/movies/1", 200, sie, false);
    origin.route("/movies/3", 500, "no-store", false);
    origin.route("/genres", 200, "private, max-age=60", false);
    origin.route("/movies/popular?limit=20", 200, "public, s-maxage=60", true);
    let edge = EdgeServer::start(&origin.url).await;
    let client = reqwest::Client::new();

    // Errors, private responses and responses with Set-Cookie are never stored.
    for path in ["/movies/3", "/genres", "/movies/popular"] {
        for _ in 0..2 {
            let response = get(&client, format!("{}{path}", edge.url)).await;
            assert!(
                edge_status(&response).starts_with("edge; fwd=miss; detail="),
                "{path}: {}",
                cache_status(&response)
            );
        }
        let fetched = origin
            .seen()
            .iter()
            .filter(|seen| seen.path.starts_with(path))
            .count();
        assert_eq!(fetched, 2, "{path} was fetched every time");
    }

    get(&client, format!("{}/movies/1", edge.url)).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    origin.stop();
    let stale = get(&client, format!("{}/movies/1", edge.url)).await;
    assert_eq!(stale.status(), 200);
    let status = edge_status(&stale);
    assert!(
        status.starts_with("edge; hit; ttl=-") && status.contains("detail=stale-if-error"),
        "{status}"
    );
    let body: Value = stale.json().await.unwrap();
    assert_eq!(body["version"], 1);

    // Nothing stored and the origin refuses: a JSON 502.
    let refused = get(&client, format!("{}/movies/2", edge.url)).await;
    assert_eq!(refused.status(), 502);
    assert!(
        refused.headers().get("cache-status").is_none(),
        "an answer the edge made itself carries no Cache-Status (RFC 9211 2)"
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "origin_unavailable");

    // The edge counted each of those, per route, for its operator (and only for them).
    let stats_url = format!("{}/__edge/stats", edge.url);
    let anonymous = client.get(&stats_url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = client
        .get(&stats_url)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let posted = client
        .post(&stats_url)
        .bearer_auth(PURGE_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 405);
    let stats = edge.stats().await;
    let counts = |hits, stale, misses, errors| json!({"hits": hits, "stale": stale, "revalidated": 0, "misses": misses, "errors": errors, "collapsed": 0});
    // /movies/3 twice, /movies/1 (miss), then its stale copy, /movies/2 (refused: an error).
    assert_eq!(stats["routes"]["movie"], counts(0, 1, 3, 1), "{stats:#}");
    assert_eq!(stats["routes"]["genres"], counts(0, 0, 2, 0), "{stats:#}");
    assert_eq!(stats["routes"]["popular"], counts(0, 0, 2, 0), "{stats:#}");
    assert_eq!(stats["passed"], 0, "{stats:#}");
    assert!(stats["isolate"].as_str().is_some_and(|id| !id.is_empty()));

    // Nothing stored and the origin hangs: a JSON 504 after ORIGIN_TIMEOUT_MS.
    let hanging = FakeOrigin::start().await;
    hanging.hang();
    let edge = EdgeServer::start(&hanging.url).await;
    let timed_out = get(&client, format!("{}/movies/5", edge.url)).await;
    assert_eq!(timed_out.status(), 504);
    assert!(timed_out.headers().get("cache-status").is_none());
    let body: Value = timed_out.json().await.unwrap();
    assert_eq!(body["error"]["code"], "origin_timeout");
}

#[tokio::test]
async fn every_answer_carries_the_request_id_the_origin_saw() {
    use reqwest::Method;
    let origin = FakeOrigin::start().await;
    origin.route("/movies/1", 200, "public, s-maxage=60", false);
    // `no-cache`: stored, but revalidated before every use.
    origin.route("/movies/2", 200, "public, no-cache, s-maxage=60", false);
    let edge = EdgeServer::start(&origin.url).await;
    let client = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str, id: Option<&str>| {
        let mut request = client.request(method, format!("{}{path}", edge.url));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    let last_seen = |path: &str| {
        origin
            .seen()
            .into_iter()
            .rev()
            .find(|seen| seen.path == path)
            .unwrap_or_else(|| panic!("the origin saw {path}"))
    };

    // A miss: the client's id goes to the origin and comes back.
    let miss = send(Method::GET, "/movies/1", Some("client-1"))
        .await
        .unwrap();
    assert_eq!(edge_status(&miss), "edge; fwd=miss; stored");
    assert_eq!(request_id(&miss), "client-1");
    assert_eq!(
        last_seen("/movies/1").request_id.as_deref(),
        Some("client-1")
    );

    // A hit: this request's id, never the one of the request that stored the copy.
    let hit = send(Method::GET, "/movies/1", Some("client-2"))
        .await
        .unwrap();
    assert!(
        edge_status(&hit).starts_with("edge; hit"),
        "{}",
        cache_status(&hit)
    );
    assert_eq!(request_id(&hit), "client-2");
    let etag = hit.headers()["etag"].to_str().unwrap().to_owned();
    let not_modified = client
        .get(format!("{}/movies/1", edge.url))
        .header("if-none-match", &etag)
        .header("x-request-id", "client-3")
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert_eq!(request_id(&not_modified), "client-3");

    // No id, or one that is not well formed: a fresh one (32 hex digits), new every time.
    let too_long = "x".repeat(129);
    let mut fresh = Vec::new();
    for given in [
        None,
        Some("has space"),
        Some("semi;colon"),
        Some(too_long.as_str()),
    ] {
        let response = send(Method::GET, "/movies/1", given).await.unwrap();
        assert!(edge_status(&response).starts_with("edge; hit"));
        let id = request_id(&response);
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{given:?} -> {id}"
        );
        fresh.push(id);
    }
    fresh.sort();
    fresh.dedup();
    assert_eq!(fresh.len(), 4, "a new id per request: {fresh:?}");

    // A revalidation carries the id of the request that needed it.
    send(Method::GET, "/movies/2", Some("client-4"))
        .await
        .unwrap();
    let revalidated = send(Method::GET, "/movies/2", Some("client-5"))
        .await
        .unwrap();
    assert!(
        edge_status(&revalidated).starts_with("edge; fwd=stale"),
        "{}",
        cache_status(&revalidated)
    );
    assert_eq!(request_id(&revalidated), "client-5");
    let seen = last_seen("/movies/2");
    assert_eq!(seen.if_none_match.as_deref(), Some("\"v1\""));
    assert_eq!(seen.request_id.as_deref(), Some("client-5"));

    // Personal and write requests: forwarded with the client's id, or with the edge's
    // replacement for a malformed one (the one the client gets back).
    let write = send(Method::POST, "/users/1/ratings", Some("client-6"))
        .await
        .unwrap();
    assert_eq!(request_id(&write), "client-6");
    assert_eq!(
        last_seen("/users/1/ratings").request_id.as_deref(),
        Some("client-6")
    );
    let personal = send(Method::GET, "/users/1/recommendations", Some("bad id"))
        .await
        .unwrap();
    let replaced = request_id(&personal);
    assert_ne!(replaced, "bad id");
    assert_eq!(
        last_seen("/users/1/recommendations").request_id,
        Some(replaced)
    );

    // Answers the edge makes itself.
    let invalid = send(Method::GET, "/movies/abc", Some("client-7"))
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    assert_eq!(request_id(&invalid), "client-7");
    let purge = send(Method::POST, "/__edge/purge", Some("client-8"))
        .await
        .unwrap();
    assert_eq!(purge.status(), 401);
    assert_eq!(request_id(&purge), "client-8");
    origin.stop();
    let failed = send(Method::GET, "/movies/3", Some("client-9"))
        .await
        .unwrap();
    assert_eq!(failed.status(), 502);
    assert_eq!(request_id(&failed), "client-9");
}

#[tokio::test]
async fn concurrent_misses_for_one_key_make_one_origin_request() {
    const CLIENTS: usize = 24;
    let origin = FakeOrigin::start().await;
    origin.route("/movies/7", 200, LONGER, false);
    let edge = EdgeServer::start(&origin.url).await;
    let client = reqwest::Client::new();

    // The origin holds its answer until every client's request is waiting at the edge.
    origin.hold();
    let requests: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url) = (client.clone(), format!("{}/movies/7", edge.url));
            tokio::spawn(async move { client.get(url).send().await.expect("request") })
        })
        .collect();
    // The barrier: all but the first joined the first one's fetch (the edge counts them).
    let joined = tests::eventually(Duration::from_secs(30), || async {
        edge.stats().await["routes"]["movie"]["collapsed"].as_u64() == Some(CLIENTS as u64 - 1)
    })
    .await;
    let asked = origin
        .seen()
        .iter()
        .filter(|s| s.path == "/movies/7")
        .count();
    origin.release();
    assert!(
        joined,
        "{CLIENTS} concurrent misses did not wait for one fetch: the origin was asked {asked} times"
    );
    let mut statuses = Vec::new();
    for request in requests {
        let response = request.await.unwrap();
        assert_eq!(response.status(), 200);
        statuses.push(edge_status(&response));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["version"], 1);
    }
    assert_eq!(
        origin
            .seen()
            .iter()
            .filter(|s| s.path == "/movies/7")
            .count(),
        1,
        "one origin request for {CLIENTS} clients"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| *s == "edge; fwd=miss; stored")
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| *s == "edge; fwd=miss; collapsed")
            .count(),
        CLIENTS - 1,
        "{statuses:?}"
    );
    // Stored once: the next request is a hit.
    let next = get(&client, format!("{}/movies/7", edge.url)).await;
    assert!(
        edge_status(&next).starts_with("edge; hit"),
        "{}",
        cache_status(&next)
    );
}

/// The real origin behind the edge, the origin knowing the edge (its URL and secret), so that
/// it purges the edge's copies when it invalidates its own.
async fn origin_and_edge(milestone: i64) -> (TestApp, EdgeServer) {
    let edge_port = tests::free_port();
    let mode = tests::redis_mode();
    let mut settings = tests::test_settings(
        &tests::fresh_database().await,
        mode,
        &tests::redis_url(mode),
    );
    settings.rating_milestone = milestone;
    settings.edge_url = Some(format!("http://127.0.0.1:{edge_port}").parse().unwrap());
    settings.purge_secret = Some(PURGE_SECRET.to_owned().into());
    let app = TestApp::spawn_with(settings).await;
    let edge = EdgeServer::start_on(edge_port, &app.url(""), &[]).await;
    (app, edge)
}

async fn purge(edge: &EdgeServer, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/__edge/purge", edge.url))
        .bearer_auth(PURGE_SECRET)
        .json(&body)
        .send()
        .await
        .expect("purge")
}

#[tokio::test]
async fn purges_by_tag_and_path_hard_and_soft() {
    let (app, edge) = origin_and_edge(100).await;
    let client = reqwest::Client::new();
    let movie = format!("{}/movies/1", edge.url);
    let popular = format!("{}/movies/popular?limit=5", edge.url);
    for url in [&movie, &popular] {
        assert_eq!(
            edge_status(&get(&client, url.clone()).await),
            "edge; fwd=miss; stored"
        );
        let hit = get(&client, url.clone()).await;
        assert!(
            edge_status(&hit).starts_with("edge; hit"),
            "{}",
            cache_status(&hit)
        );
        assert!(
            hit.headers().get("x-cache-tags").is_none(),
            "the tags never reach a client"
        );
    }

    // A hard purge by tag: the movie's entry is gone, the popular list is not.
    let receipt: Value = purge(&edge, json!({"tags": ["movie:1"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["tags"], json!(["movie:1"]));
    assert_eq!(
        edge_status(&get(&client, movie.clone()).await),
        "edge; fwd=miss; stored"
    );
    assert!(edge_status(&get(&client, popular.clone()).await).starts_with("edge; hit"));

    // A soft purge: the next read revalidates (the origin's 304 keeps the stored body).
    let lookups = origin_lookups(&app, Family::Metadata);
    let receipt: Value = purge(&edge, json!({"tags": ["movie:1"], "soft": true}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["soft"], true);
    let revalidated = get(&client, movie.clone()).await;
    assert_eq!(
        edge_status(&revalidated),
        "edge; fwd=stale; stored",
        "{}",
        cache_status(&revalidated)
    );
    assert_eq!(
        revalidated.json::<Value>().await.unwrap()["title"],
        "Toy Story"
    );
    assert_eq!(
        origin_lookups(&app, Family::Metadata),
        lookups + 1,
        "one conditional request"
    );
    assert!(edge_status(&get(&client, movie.clone()).await).starts_with("edge; hit"));

    // A purge by path reaches the entry under its normalised key; `all` reaches everything.
    let receipt: Value = purge(&edge, json!({"paths": ["/movies/popular?limit=05"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["purged"], json!(["/movies/popular?limit=5"]));
    assert_eq!(receipt["tags"], json!(["path:/movies/popular?limit=5"]));
    assert_eq!(
        edge_status(&get(&client, popular.clone()).await),
        "edge; fwd=miss; stored"
    );
    purge(&edge, json!({"tags": ["all"]})).await;
    for url in [&movie, &popular] {
        assert_eq!(
            edge_status(&get(&client, url.clone()).await),
            "edge; fwd=miss; stored"
        );
    }

    // Refused: nothing to purge, a bad tag, an unknown field.
    for (body, code) in [
        (json!({}), "empty_purge"),
        (json!({"tags": ["Movie:1"]}), "invalid_tag"),
        (json!({"tag": ["movie:1"]}), "malformed_json"),
    ] {
        let refused = purge(&edge, body).await;
        assert_eq!(refused.status(), 400);
        assert_eq!(
            refused.json::<Value>().await.unwrap()["error"]["code"],
            code
        );
    }
}

#[tokio::test]
async fn a_rating_milestone_purges_the_edges_popular_list() {
    let (app, edge) = origin_and_edge(100).await;
    let client = reqwest::Client::new();
    let popular = format!("{}/movies/popular", edge.url);
    get(&client, popular.clone()).await;
    assert!(edge_status(&get(&client, popular.clone()).await).starts_with("edge; hit"));

    // A movie one rating short of 100, and a user who has not rated it.
    let (movie, user): (i32, i32) = sqlx::query_as(
        "SELECT m.id, u.id FROM movies m, users u WHERE m.rating_count = 99 \
         AND NOT EXISTS (SELECT 1 FROM ratings r WHERE r.movie_id = m.id AND r.user_id = u.id) \
         ORDER BY m.id, u.id LIMIT 1",
    )
    .fetch_one(app.db())
    .await
    .expect("a movie with 99 ratings");
    let rated = app.rate(user, i64::from(movie), 4.0).await;
    assert_eq!(rated.status(), 201);
    assert_eq!(
        rated.json::<Value>().await.unwrap()["movie_rating_count"],
        100
    );

    // The origin tells the edge in the background: soon the edge fetches the list again,
    // long before its `s-maxage` (10 minutes).
    let refetched = tests::eventually(Duration::from_secs(15), || async {
        edge_status(&get(&client, popular.clone()).await).starts_with("edge; fwd=miss")
    })
    .await;
    assert!(
        refetched,
        "the edge kept serving the popular list after the milestone"
    );
}
