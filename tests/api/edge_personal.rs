//! Personal reads at the edge (issue #12, item 3): the edge verifies the token itself, keeps a
//! user's recommendations and profile under a key bound to that user and their generation,
//! never answers one user's request with another's data, and reads a rating that passed
//! through it back at once. The real origin behind a counting relay (`InstanceFront`), so each
//! test knows what reached it; the worker in workerd with the origin's `JWT_SECRET`.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tests::edge::EdgeServer;
use tests::{InstanceFront, TestApp, read_json};

/// The origin, a relay counting what reaches it, and an edge that verifies tokens.
async fn setup() -> (TestApp, InstanceFront, EdgeServer) {
    let app = TestApp::spawn().await;
    let front = InstanceFront::start(app.addr).await;
    let secret = app.jwt_secret();
    let edge = EdgeServer::start_with(&front.url, &[("JWT_SECRET", &secret)]).await;
    (app, front, edge)
}

async fn get(edge: &EdgeServer, path: &str, token: &str) -> (u16, String, String, Value) {
    read_json(
        reqwest::Client::new()
            .get(format!("{}{path}", edge.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("request through the edge"),
    )
    .await
}

async fn rate(edge: &EdgeServer, user: i32, token: &str, movie: i32, rating: f32) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/users/{user}/ratings", edge.url))
        .bearer_auth(token)
        .json(&json!({"movie_id": movie, "rating": rating}))
        .send()
        .await
        .expect("rating through the edge")
        .status()
        .as_u16()
}

/// The edge's own member of `Cache-Status`, the last one.
fn edge_member(cache: &str) -> &str {
    cache.rsplit(", ").next().unwrap_or_default()
}

fn recommended(body: &Value) -> Vec<i64> {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["movie_id"].as_i64().expect("movie_id"))
        .collect()
}

#[tokio::test]
async fn a_users_reads_are_kept_at_the_edge_for_that_user_only() {
    let (app, front, edge) = setup().await;
    let (a, b) = (app.user_token(1), app.user_token(2));

    // A's first read crosses to the origin and is stored; the second is the edge's.
    for path in ["/users/1/recommendations", "/users/1/profile"] {
        let (status, cache, etag, first) = get(&edge, path, &a).await;
        assert_eq!(status, 200, "{path}: {first}");
        assert_eq!(edge_member(&cache), "edge; fwd=miss; stored", "{path}");
        assert_eq!(first["user_id"], 1, "{path}");
        let crossed = front.requests().len();
        let (status, cache, again_etag, again) = get(&edge, path, &a).await;
        assert_eq!(status, 200);
        assert!(
            edge_member(&cache).starts_with("edge; hit"),
            "{path}: {cache}"
        );
        assert_eq!(
            (again, again_etag),
            (first, etag),
            "{path}: the same response"
        );
        assert_eq!(
            front.requests().len(),
            crossed,
            "a hit never reaches the origin"
        );
    }
    // Spellings of the same read share A's entry; the conditional one is a 304 from it.
    let crossed = front.requests().len();
    for path in [
        "/users/%31/recommendations?utm=x",
        "/users/1/recommendations?n=10&strategy=hybrid",
        "/users/01/profile",
    ] {
        let (status, cache, _, body) = get(&edge, path, &a).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            edge_member(&cache).starts_with("edge; hit"),
            "{path}: {cache}"
        );
        assert_eq!(body["user_id"], 1, "{path}");
    }
    assert_eq!(front.requests().len(), crossed);

    // B's token on anything of A's, however spelled, and A's on B's: 403 at the edge, nothing
    // looked up, nothing sent to the origin.
    let crossed = front.requests().len();
    for (token, path) in [
        (&b, "/users/1/recommendations"),
        (&b, "/users/1/profile"),
        (&b, "/users/01/recommendations"),
        (&b, "/users/%31/profile"),
        (&b, "/users/1/recommendations?n=10&strategy=hybrid&user=2"),
        (&b, "/users/1/recommendations?exclude=1&genre=drama"),
        (&a, "/users/2/recommendations"),
        (&a, "/users/2/profile"),
    ] {
        let (status, cache, _, body) = get(&edge, path, token).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"]["code"], "forbidden", "{path}");
        assert_eq!(cache, "", "made by the edge, from nothing stored: {path}");
    }
    assert_eq!(rate(&edge, 1, &b, 50, 5.0).await, 403);
    assert_eq!(
        front.requests().len(),
        crossed,
        "refused at the edge: {:?}",
        front.requests()
    );

    // B's own reads, with the very parameters A's entries were stored under: B's data, each
    // fetched for B.
    for path in [
        "/users/2/recommendations",
        "/users/2/recommendations?n=10&strategy=hybrid",
        "/users/2/profile",
    ] {
        let (status, _, _, body) = get(&edge, path, &b).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body["user_id"], 2, "{path}: never A's data");
    }
    assert!(front.requests().len() > crossed, "B's reads were fetched");

    // Every read either user makes, whatever the parameters, holds that user's data: 200s
    // for their own, 403s for the other's.
    let queries = [
        "",
        "?n=5",
        "?strategy=collaborative",
        "?strategy=popular&n=3",
        "?exclude=50,1&genre=comedy",
        "?genre=Comedy",
    ];
    for (me, token) in [(1, &a), (2, &b)] {
        for user in [1, 2] {
            for query in queries {
                let path = format!("/users/{user}/recommendations{query}");
                let (status, _, _, body) = get(&edge, &path, token).await;
                if user == me {
                    assert_eq!(status, 200, "{path}");
                    assert_eq!(body["user_id"], me, "{path}");
                } else {
                    assert_eq!(status, 403, "{path}");
                }
            }
        }
    }

    // Invalid parameters: the origin's 400, answered at the edge.
    let crossed = front.requests().len();
    let (status, _, _, body) = get(&edge, "/users/1/recommendations?n=0", &a).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_limit"))
    );
    let (status, _, _, body) = get(&edge, "/users/x/profile", &a).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_id"))
    );
    assert_eq!(front.requests().len(), crossed);

    // The edge's own fields never reach the client.
    let response = reqwest::Client::new()
        .get(format!("{}/users/1/profile", edge.url))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["cache-control"],
        "private, no-cache",
        "what the browser is told is unchanged"
    );
    for internal in ["movierec-edge-cache-control", "x-user-generation"] {
        assert!(response.headers().get(internal).is_none(), "{internal}");
    }
}

fn sign(algorithm: Algorithm, secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn bad_tokens_are_refused_at_the_edge() {
    let (app, front, edge) = setup().await;
    let secret = app.jwt_secret();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let valid = app.user_token(1);
    let payload = valid.split('.').nth(1).unwrap();
    let cases = [
        ("garbage", Some("not-a-jwt".to_owned())),
        // {"alg":"none","typ":"JWT"}, a valid payload, no signature.
        (
            "alg none",
            Some(format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")),
        ),
        (
            "expired",
            Some(sign(
                Algorithm::HS256,
                &secret,
                json!({"sub": "1", "exp": now - 3600}),
            )),
        ),
        (
            "another secret",
            Some(sign(
                Algorithm::HS256,
                "another-secret",
                json!({"sub": "1", "exp": now + 3600}),
            )),
        ),
        (
            "HS512",
            Some(sign(
                Algorithm::HS512,
                &secret,
                json!({"sub": "1", "exp": now + 3600}),
            )),
        ),
        ("no token", None),
    ];
    let client = reqwest::Client::new();
    for (name, token) in &cases {
        for (method, path) in [
            ("GET", "/users/1/recommendations"),
            ("GET", "/users/1/profile"),
            ("POST", "/users/1/ratings"),
        ] {
            let mut request = match method {
                "GET" => client.get(format!("{}{path}", edge.url)),
                _ => client
                    .post(format!("{}{path}", edge.url))
                    .json(&json!({"movie_id": 1, "rating": 4.0})),
            };
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 401, "{name}: {method} {path}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer", "{name}");
            let (_, _, _, body) = read_json(response).await;
            assert_eq!(body["error"]["code"], "unauthorized", "{name}");
        }
    }
    assert_eq!(
        front.requests(),
        Vec::<String>::new(),
        "no bad token costs an origin round trip"
    );
    // The valid token still reads.
    let (status, _, _, _) = get(&edge, "/users/1/profile", &valid).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_rating_through_the_edge_is_read_back_at_once() {
    let (app, front, edge) = setup().await;
    let token = app.user_token(3);
    let admin = app.admin_token();
    let (_, _, _, profile) = get(&edge, "/users/3/profile", &token).await;
    let mut count = profile["rating_count"].as_i64().expect("rating_count");
    for round in 0..4 {
        // Both reads cached at the edge.
        let path = "/users/3/recommendations?strategy=collaborative";
        get(&edge, path, &token).await;
        let (_, cache, _, before) = get(&edge, path, &token).await;
        assert!(edge_member(&cache).starts_with("edge; hit"), "{cache}");
        let (_, cache, _, _) = get(&edge, "/users/3/profile", &token).await;
        assert!(edge_member(&cache).starts_with("edge; hit"), "{cache}");

        // Rate the first recommendation (the user's own token, then an administrator's).
        let movie = recommended(&before)[0] as i32;
        let rater = if round % 2 == 0 { &token } else { &admin };
        assert_eq!(rate(&edge, 3, rater, movie, 5.0).await, 201);
        count += 1;
        let crossed = front.requests().len();

        // The next reads are the origin's, and show the rating.
        let (status, cache, _, after) = get(&edge, path, &token).await;
        assert_eq!(status, 200);
        assert_eq!(
            edge_member(&cache),
            "edge; fwd=miss; stored",
            "round {round}"
        );
        assert!(
            !recommended(&after).contains(&(movie as i64)),
            "round {round}: movie {movie} was just rated, yet recommended: {after}"
        );
        let (_, cache, _, profile) = get(&edge, "/users/3/profile", &token).await;
        assert_eq!(
            edge_member(&cache),
            "edge; fwd=miss; stored",
            "round {round}"
        );
        assert_eq!(profile["rating_count"], count, "round {round}");
        assert_eq!(front.requests().len(), crossed + 2);
    }
    // A rating the origin refuses moves nothing: the next read is still a hit.
    assert_eq!(rate(&edge, 3, &token, 999_999, 5.0).await, 404);
    let (_, cache, _, _) = get(&edge, "/users/3/profile", &token).await;
    assert!(edge_member(&cache).starts_with("edge; hit"), "{cache}");
}

/// A second location (another `wrangler dev`, with its own cache) never sees a rating pass:
/// it serves its entry until the entry's five seconds are up, then revalidates it. This is the
/// window the README states; the test shows both sides of it and asserts no duration.
#[tokio::test]
async fn another_location_revalidates_within_its_entrys_lifetime() {
    let (app, _front, here) = setup().await;
    let secret = app.jwt_secret();
    let far =
        EdgeServer::start_with(&format!("http://{}", app.addr), &[("JWT_SECRET", &secret)]).await;
    let token = app.user_token(4);
    let (_, _, _, before) = get(&far, "/users/4/profile", &token).await;
    let count = before["rating_count"].as_i64().unwrap();
    let (_, _, _, recommendations) = get(&here, "/users/4/recommendations", &token).await;
    let movie = recommended(&recommendations)[0] as i32;
    assert_eq!(rate(&here, 4, &token, movie, 3.0).await, 201);
    let (_, cache, _, seen) = get(&far, "/users/4/profile", &token).await;
    if edge_member(&cache).starts_with("edge; hit") {
        // Within the window: the other location's copy, from before the rating.
        assert_eq!(seen["rating_count"], count);
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, cache, _, seen) = get(&far, "/users/4/profile", &token).await;
    assert!(
        edge_member(&cache).starts_with("edge; fwd=stale"),
        "past max-age, revalidated: {cache}"
    );
    assert_eq!(seen["rating_count"], count + 1);
}
