//! Every 400/401/403/404/405/413/415/422 case, each with the JSON error shape; a sweep of
//! malformed requests that must not change the database; and `origin serve` refusing the
//! development JWT secret off loopback.

use reqwest::Method;
use serde_json::{Value, json};
use tests::TestApp;

async fn assert_error(response: reqwest::Response, status: u16, code: &str) {
    assert_eq!(response.status(), status, "{} {}", response.url(), code);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().contains_key("cache-status"));
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn bad_requests_are_400() {
    let app = TestApp::spawn().await;
    let token = app.user_token(1);
    for path in [
        "/movies/abc",
        "/movies/0",
        "/movies/-3",
        "/movies/1.5",
        "/movies/99999999999",
    ] {
        assert_error(app.get(path).await, 400, "invalid_id").await;
    }
    for limit in ["0", "101", "abc", "-1", ""] {
        assert_error(
            app.get(&format!("/movies/popular?limit={limit}")).await,
            400,
            "invalid_limit",
        )
        .await;
        assert_error(
            app.get(&format!("/genres/drama/top?limit={limit}")).await,
            400,
            "invalid_limit",
        )
        .await;
    }
    assert_error(
        app.get_as("/users/1/recommendations?n=0", &token).await,
        400,
        "invalid_limit",
    )
    .await;
    assert_error(
        app.get_as("/users/1/recommendations?strategy=magic", &token)
            .await,
        400,
        "invalid_strategy",
    )
    .await;
    assert_error(
        app.get_as("/users/abc/profile", &app.admin_token()).await,
        400,
        "invalid_id",
    )
    .await;
    let malformed = app
        .client
        .post(app.url("/users/1/ratings"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"movie_id\": 1, \"rating\": ")
        .send()
        .await
        .unwrap();
    assert_error(malformed, 400, "malformed_json").await;
    let not_json = app
        .client
        .post(app.url("/users/1/ratings"))
        .bearer_auth(&token)
        .body("movie_id=1")
        .send()
        .await
        .unwrap();
    assert_error(not_json, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn missing_or_bad_tokens_are_401_and_wrong_users_403() {
    let app = TestApp::spawn().await;
    assert_error(app.get("/users/1/profile").await, 401, "unauthorized").await;
    assert_error(
        app.get_as("/users/1/recommendations", "not-a-jwt").await,
        401,
        "unauthorized",
    )
    .await;
    let foreign =
        origin::auth::Tokens::new(&secrecy::SecretString::from("another-secret".to_owned()))
            .unwrap()
            .mint(
                origin::auth::Caller::User(shared::params::UserId(1)),
                std::time::Duration::from_secs(60),
            )
            .unwrap();
    assert_error(
        app.get_as("/users/1/profile", &foreign).await,
        401,
        "unauthorized",
    )
    .await;
    let basic = app
        .client
        .get(app.url("/users/1/profile"))
        .header("authorization", "Basic dXNlcjpwdw==")
        .send()
        .await
        .unwrap();
    assert_error(basic, 401, "unauthorized").await;
    let no_token_post = app
        .client
        .post(app.url("/users/1/ratings"))
        .json(&json!({"movie_id": 1, "rating": 4}))
        .send()
        .await
        .unwrap();
    assert_error(no_token_post, 401, "unauthorized").await;
    assert_error(
        app.admin_post_without_token("/admin/cache/warm").await,
        401,
        "unauthorized",
    )
    .await;

    let user2 = app.user_token(2);
    assert_error(
        app.get_as("/users/1/profile", &user2).await,
        403,
        "forbidden",
    )
    .await;
    assert_error(
        app.get_as("/users/1/recommendations", &user2).await,
        403,
        "forbidden",
    )
    .await;
    let other = app
        .client
        .post(app.url("/users/1/ratings"))
        .bearer_auth(&user2)
        .json(&json!({"movie_id": 1, "rating": 4}))
        .send()
        .await
        .unwrap();
    assert_error(other, 403, "forbidden").await;
    for (method, path) in [
        (Method::POST, "/admin/cache/warm"),
        (Method::POST, "/admin/views/refresh"),
        (Method::POST, "/admin/model/reload"),
        (Method::GET, "/admin/cache/stats"),
    ] {
        let response = app
            .client
            .request(method, app.url(path))
            .bearer_auth(&user2)
            .send()
            .await
            .unwrap();
        assert_error(response, 403, "forbidden").await;
    }
    // The admin may read anyone's data.
    assert_eq!(
        app.get_as("/users/1/profile", &app.admin_token())
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn unknown_things_are_404() {
    let app = TestApp::spawn().await;
    assert_error(app.get("/movies/99999").await, 404, "movie_not_found").await;
    assert_error(app.get("/genres/polka/top").await, 404, "genre_not_found").await;
    assert_error(app.get("/nowhere").await, 404, "not_found").await;
    let admin = app.admin_token();
    assert_error(
        app.get_as("/users/99999/profile", &admin).await,
        404,
        "user_not_found",
    )
    .await;
    assert_error(
        app.get_as("/users/99999/recommendations", &admin).await,
        404,
        "user_not_found",
    )
    .await;
    assert_error(app.rate(1, 99999, 4.0).await, 404, "movie_not_found").await;
    assert_error(app.rate(99999, 1, 4.0).await, 404, "user_not_found").await;
}

#[tokio::test]
async fn wrong_methods_are_405() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        (Method::POST, "/movies/1"),
        (Method::DELETE, "/movies/popular"),
        (Method::PUT, "/genres"),
        (Method::GET, "/users/1/ratings"),
        (Method::DELETE, "/users/1/ratings"),
        (Method::GET, "/admin/cache/warm"),
        (Method::POST, "/health"),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_error(response, 405, "method_not_allowed").await;
    }
}

#[tokio::test]
async fn invalid_rating_values_are_422() {
    let app = TestApp::spawn().await;
    let token = app.user_token(1);
    let post = |body: Value| {
        app.client
            .post(app.url("/users/1/ratings"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    for rating in [0.0, 4.3, 5.5, -1.0, 0.25] {
        assert_error(
            post(json!({"movie_id": 1, "rating": rating}))
                .await
                .unwrap(),
            422,
            "invalid_rating",
        )
        .await;
    }
    for movie in [0, -4, 9_999_999_999i64] {
        assert_error(
            post(json!({"movie_id": movie, "rating": 4})).await.unwrap(),
            422,
            "invalid_movie_id",
        )
        .await;
    }
    assert_error(
        post(json!({"movie_id": 1})).await.unwrap(),
        422,
        "invalid_body",
    )
    .await;
    assert_error(
        post(json!({"movie_id": "one", "rating": 4})).await.unwrap(),
        422,
        "invalid_body",
    )
    .await;
    assert_error(
        post(json!({"movie_id": 1, "rating": 4, "extra": true}))
            .await
            .unwrap(),
        422,
        "invalid_body",
    )
    .await;
    // Nothing was written by any of them.
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM ratings WHERE user_id = 1")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(count, 272);
}

/// One row of the sweep: a request and the error it must get.
struct Case {
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    status: u16,
    code: &'static str,
    /// How the row reads in the release note.
    label: String,
}

impl Case {
    fn new(method: Method, path: impl Into<String>) -> Case {
        let path = path.into();
        Case {
            label: format!("{method} {path}"),
            method,
            path,
            headers: Vec::new(),
            body: None,
            status: 0,
            code: "",
        }
    }

    fn get(path: impl Into<String>) -> Case {
        Case::new(Method::GET, path)
    }

    /// `POST /users/1/ratings` with a JSON `body`, as user 1.
    fn rating(body: &str, token: &str) -> Case {
        Case::new(Method::POST, "/users/1/ratings")
            .bearer(token)
            .header("content-type", "application/json")
            .body(body)
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.headers.push((name, value.into()));
        self
    }

    fn bearer(self, token: &str) -> Case {
        self.header("authorization", format!("Bearer {token}"))
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Case {
        self.body = Some(body.into());
        self
    }

    /// What the release note says about the request beyond method and path.
    fn note(mut self, note: &str) -> Case {
        self.label = format!("{}: {note}", self.label);
        self
    }

    fn expect(mut self, status: u16, code: &'static str) -> Case {
        self.status = status;
        self.code = code;
        self
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A token signed with `secret` (HS256 unless `algorithm` says otherwise).
fn sign(algorithm: jsonwebtoken::Algorithm, secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .expect("sign token")
}

/// The sweep: malformed ids, limits, strategies, bodies, content types and tokens, wrong
/// methods and unknown routes. Each gets its exact status and `error.code` in the JSON error
/// shape with `Cache-Control: no-store`, and none of them changes the database. Run with
/// `--no-capture` to print the table for the release note.
#[tokio::test]
async fn sweep_of_malformed_requests() {
    use jsonwebtoken::Algorithm::{HS256, HS512};
    use secrecy::ExposeSecret;

    let app = TestApp::spawn().await;
    let secret = app.state.settings.jwt_secret.expose_secret().to_owned();
    let user1 = app.user_token(1);
    let user2 = app.user_token(2);
    let admin = app.admin_token();
    let exp = now() + 3600;
    let payload = user1.split('.').nth(1).expect("JWT payload").to_owned();
    // {"alg":"none","typ":"JWT"} over user 1's own claims, without a signature.
    let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    let expired = sign(
        HS256,
        &secret,
        json!({"sub": "1", "exp": now() - 3600, "iat": now() - 7200}),
    );
    let wrong_secret = sign(HS256, "not-the-secret", json!({"sub": "1", "exp": exp}));
    let hs512 = sign(HS512, &secret, json!({"sub": "1", "exp": exp}));
    let no_sub = sign(HS256, &secret, json!({"exp": exp}));
    let no_exp = sign(HS256, &secret, json!({"sub": "1"}));
    let no_role = sign(HS256, &secret, json!({"sub": "admin", "exp": exp}));
    let not_yet = sign(
        HS256,
        &secret,
        json!({"sub": "1", "exp": exp, "nbf": now() + 3600}),
    );
    let valid = r#"{"movie_id": 1, "rating": 2}"#;
    let oversized = format!(
        r#"{{"movie_id": 1, "rating": 2, "pad": "{}"}}"#,
        "x".repeat(origin::http::MAX_BODY_BYTES)
    );

    let cases = vec![
        // Ids.
        Case::get("/movies/abc").expect(400, "invalid_id"),
        Case::get("/movies/0").expect(400, "invalid_id"),
        Case::get("/movies/-1").expect(400, "invalid_id"),
        Case::get("/movies/1.5").expect(400, "invalid_id"),
        Case::get("/movies/2147483648").expect(400, "invalid_id"),
        Case::get("/movies/99999999999999999999").expect(400, "invalid_id"),
        Case::get("/movies/99999").expect(404, "movie_not_found"),
        Case::get("/users/abc/profile")
            .bearer(&admin)
            .note("admin token")
            .expect(400, "invalid_id"),
        Case::get("/users/0/recommendations")
            .bearer(&admin)
            .note("admin token")
            .expect(400, "invalid_id"),
        Case::new(Method::POST, "/users/-1/ratings")
            .bearer(&admin)
            .header("content-type", "application/json")
            .body(valid)
            .note("admin token, valid body")
            .expect(400, "invalid_id"),
        Case::get("/users/99999/profile")
            .bearer(&admin)
            .note("admin token")
            .expect(404, "user_not_found"),
        Case::new(Method::POST, "/users/99999/ratings")
            .bearer(&admin)
            .header("content-type", "application/json")
            .body(valid)
            .note("admin token, valid body")
            .expect(404, "user_not_found"),
        // Limits and `n`.
        Case::get("/movies/popular?limit=0").expect(400, "invalid_limit"),
        Case::get("/movies/popular?limit=101").expect(400, "invalid_limit"),
        Case::get("/movies/popular?limit=x").expect(400, "invalid_limit"),
        Case::get("/movies/popular?limit=").expect(400, "invalid_limit"),
        Case::get("/movies/popular?limit=-1").expect(400, "invalid_limit"),
        Case::get("/movies/popular?limit=1.5").expect(400, "invalid_limit"),
        Case::get("/genres/drama/top?limit=0").expect(400, "invalid_limit"),
        Case::get("/genres/drama/top?limit=101").expect(400, "invalid_limit"),
        Case::get("/genres/polka/top").expect(404, "genre_not_found"),
        Case::get("/users/1/recommendations?n=0")
            .bearer(&user1)
            .expect(400, "invalid_limit"),
        Case::get("/users/1/recommendations?n=101")
            .bearer(&user1)
            .expect(400, "invalid_limit"),
        Case::get("/users/1/recommendations?n=x")
            .bearer(&user1)
            .expect(400, "invalid_limit"),
        Case::get("/users/1/recommendations?n=")
            .bearer(&user1)
            .expect(400, "invalid_limit"),
        // Strategies.
        Case::get("/users/1/recommendations?strategy=magic")
            .bearer(&user1)
            .expect(400, "invalid_strategy"),
        Case::get("/users/1/recommendations?strategy=")
            .bearer(&user1)
            .expect(400, "invalid_strategy"),
        Case::get("/users/1/recommendations?strategy=HYBRID")
            .bearer(&user1)
            .expect(400, "invalid_strategy"),
        // Bodies: not JSON.
        Case::rating(r#"{"movie_id": 1, "rating": "#, &user1)
            .note("truncated JSON")
            .expect(400, "malformed_json"),
        Case::rating("{movie_id: 1, rating: 2}", &user1)
            .note("unquoted keys")
            .expect(400, "malformed_json"),
        Case::rating("", &user1)
            .note("empty body")
            .expect(400, "malformed_json"),
        Case::rating(&format!("{valid} x"), &user1)
            .note("trailing characters")
            .expect(400, "malformed_json"),
        // Bodies: JSON, but not a rating object.
        Case::rating("[1, 2]", &user1)
            .note("array `[1, 2]`")
            .expect(422, "invalid_body"),
        Case::rating("[]", &user1)
            .note("empty array")
            .expect(422, "invalid_body"),
        Case::rating(r#""1 2""#, &user1)
            .note("string")
            .expect(422, "invalid_body"),
        Case::rating("4.5", &user1)
            .note("number")
            .expect(422, "invalid_body"),
        Case::rating("null", &user1)
            .note("null")
            .expect(422, "invalid_body"),
        Case::rating("{}", &user1)
            .note("empty object")
            .expect(422, "invalid_body"),
        Case::rating(r#"{"movie_id": 1}"#, &user1)
            .note("missing rating")
            .expect(422, "invalid_body"),
        Case::rating(r#"{"rating": 2}"#, &user1)
            .note("missing movie_id")
            .expect(422, "invalid_body"),
        Case::rating(r#"{"movie_id": "1", "rating": 2}"#, &user1)
            .note("movie_id a string")
            .expect(422, "invalid_body"),
        Case::rating(r#"{"movie_id": 1.5, "rating": 2}"#, &user1)
            .note("movie_id a fraction")
            .expect(422, "invalid_body"),
        Case::rating(r#"{"movie_id": 1, "rating": "2"}"#, &user1)
            .note("rating a string")
            .expect(422, "invalid_body"),
        Case::rating(r#"{"movie_id": null, "rating": 2}"#, &user1)
            .note("movie_id null")
            .expect(422, "invalid_body"),
        Case::rating(r#"{"movie_id": 1, "rating": 2, "extra": true}"#, &user1)
            .note("unknown field")
            .expect(422, "invalid_body"),
        Case::rating(r#"{"movie_id": 1, "movie_id": 2, "rating": 2}"#, &user1)
            .note("duplicate field")
            .expect(422, "invalid_body"),
        // Bodies: a rating object with invalid values.
        Case::rating(r#"{"movie_id": 1, "rating": 5.5}"#, &user1)
            .note("rating 5.5")
            .expect(422, "invalid_rating"),
        Case::rating(r#"{"movie_id": 1, "rating": 0}"#, &user1)
            .note("rating 0")
            .expect(422, "invalid_rating"),
        Case::rating(r#"{"movie_id": 1, "rating": -1}"#, &user1)
            .note("rating -1")
            .expect(422, "invalid_rating"),
        Case::rating(r#"{"movie_id": 1, "rating": 4.3}"#, &user1)
            .note("rating 4.3 (not a half step)")
            .expect(422, "invalid_rating"),
        Case::rating(r#"{"movie_id": 1, "rating": 0.25}"#, &user1)
            .note("rating 0.25")
            .expect(422, "invalid_rating"),
        Case::rating(r#"{"movie_id": 0, "rating": 2}"#, &user1)
            .note("movie_id 0")
            .expect(422, "invalid_movie_id"),
        Case::rating(r#"{"movie_id": -4, "rating": 2}"#, &user1)
            .note("movie_id -4")
            .expect(422, "invalid_movie_id"),
        Case::rating(r#"{"movie_id": 9999999999, "rating": 2}"#, &user1)
            .note("movie_id 9999999999")
            .expect(422, "invalid_movie_id"),
        Case::rating(r#"{"movie_id": 99999, "rating": 2}"#, &user1)
            .note("unknown movie")
            .expect(404, "movie_not_found"),
        // Bodies: size and media type.
        Case::rating(&oversized, &user1)
            .note("body over 16 KiB")
            .expect(413, "payload_too_large"),
        Case::new(Method::POST, "/users/1/ratings")
            .bearer(&user1)
            .header("content-type", "text/plain")
            .body(valid)
            .note("`Content-Type: text/plain`")
            .expect(415, "unsupported_media_type"),
        Case::new(Method::POST, "/users/1/ratings")
            .bearer(&user1)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("movie_id=1&rating=2")
            .note("form body")
            .expect(415, "unsupported_media_type"),
        Case::new(Method::POST, "/users/1/ratings")
            .bearer(&user1)
            .body(valid)
            .note("no `Content-Type`")
            .expect(415, "unsupported_media_type"),
        // Tokens.
        Case::get("/users/1/profile")
            .note("no token")
            .expect(401, "unauthorized"),
        Case::new(Method::POST, "/users/1/ratings")
            .header("content-type", "application/json")
            .body(valid)
            .note("no token, valid body")
            .expect(401, "unauthorized"),
        Case::get("/users/1/profile")
            .bearer("garbage")
            .note("garbage token")
            .expect(401, "unauthorized"),
        Case::get("/users/1/profile")
            .header("authorization", "Basic dXNlcjpwdw==")
            .note("Basic credentials")
            .expect(401, "unauthorized"),
        Case::get("/users/1/profile")
            .bearer(&expired)
            .note("expired token")
            .expect(401, "unauthorized"),
        Case::get("/users/1/profile")
            .bearer(&not_yet)
            .note("token with `nbf` an hour ahead")
            .expect(401, "unauthorized"),
        Case::rating(valid, &alg_none)
            .note("`alg: none` token, valid body")
            .expect(401, "unauthorized"),
        Case::rating(valid, &wrong_secret)
            .note("token signed with another secret, valid body")
            .expect(401, "unauthorized"),
        Case::get("/users/1/profile")
            .bearer(&hs512)
            .note("HS512 token")
            .expect(401, "unauthorized"),
        Case::get("/users/1/profile")
            .bearer(&no_sub)
            .note("token without `sub`")
            .expect(401, "unauthorized"),
        Case::get("/users/1/profile")
            .bearer(&no_exp)
            .note("token without `exp`")
            .expect(401, "unauthorized"),
        Case::get("/admin/cache/stats")
            .bearer(&no_role)
            .note("`sub: admin` without the `role` claim")
            .expect(401, "unauthorized"),
        Case::get("/users/1/profile")
            .bearer(&user2)
            .note("user 2's token")
            .expect(403, "forbidden"),
        Case::rating(valid, &user2)
            .note("user 2's token, valid body")
            .expect(403, "forbidden"),
        Case::rating("[1, 2]", &user2)
            .note("user 2's token, array body")
            .expect(403, "forbidden"),
        Case::get("/admin/cache/stats")
            .bearer(&user1)
            .note("user token")
            .expect(403, "forbidden"),
        Case::new(Method::POST, "/admin/cache/warm")
            .bearer(&user1)
            .note("user token")
            .expect(403, "forbidden"),
        // Methods and routes.
        Case::new(Method::POST, "/movies/1").expect(405, "method_not_allowed"),
        Case::new(Method::DELETE, "/users/1/ratings").expect(405, "method_not_allowed"),
        Case::get("/users/1/ratings").expect(405, "method_not_allowed"),
        Case::new(Method::PUT, "/genres").expect(405, "method_not_allowed"),
        Case::get("/admin/cache/warm").expect(405, "method_not_allowed"),
        Case::get("/nowhere").expect(404, "not_found"),
        Case::get("/movies").expect(404, "not_found"),
        Case::get("/users/1").expect(404, "not_found"),
        Case::new(Method::POST, "/users/1/rating")
            .bearer(&user1)
            .header("content-type", "application/json")
            .body(valid)
            .expect(404, "not_found"),
    ];
    assert!(cases.len() >= 30);

    let before = app.ratings_snapshot().await;
    let mut failures = Vec::new();
    let mut table = vec![
        "| request | status | `error.code` |".to_owned(),
        "| --- | --- | --- |".to_owned(),
    ];
    for case in &cases {
        let mut request = app.client.request(case.method.clone(), app.url(&case.path));
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        if let Some(body) = &case.body {
            request = request.body(body.clone());
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let (content_type, cache_control) = (header("content-type"), header("cache-control"));
        let www_authenticate = header("www-authenticate");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let error = &body["error"];
        let shape_ok = body.as_object().is_some_and(|o| o.len() == 1)
            && error.as_object().is_some_and(|o| o.len() == 2)
            && error["code"].is_string()
            && error["message"].as_str().is_some_and(|m| !m.is_empty());
        let code = error["code"].as_str().unwrap_or_default();
        let mut wrong = Vec::new();
        if status != case.status || code != case.code {
            wrong.push(format!("got {status} `{code}`"));
        }
        if !shape_ok {
            wrong.push(format!("not the JSON error shape: {body}"));
        }
        if content_type != "application/json" {
            wrong.push(format!("Content-Type `{content_type}`"));
        }
        if cache_control != "no-store" {
            wrong.push(format!("Cache-Control `{cache_control}`"));
        }
        if status == 401 && www_authenticate != "Bearer" {
            wrong.push(format!("WWW-Authenticate `{www_authenticate}`"));
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{} (expected {} `{}`): {}",
                case.label,
                case.status,
                case.code,
                wrong.join("; ")
            ));
        }
        table.push(format!(
            "| {} | {status} | `{code}` |",
            case.label.replace('|', "\\|")
        ));
    }
    println!("{}", table.join("\n"));
    assert!(
        failures.is_empty(),
        "{} of {} requests answered wrongly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    let after = app.ratings_snapshot().await;
    assert_eq!(before, after, "a malformed request changed the ratings");
    // The snapshot does see a change: the valid body, sent properly, replaces user 1's rating
    // of movie 1 (a 5 in MovieLens 100K) with a 2.
    let replaced = app
        .client
        .post(app.url("/users/1/ratings"))
        .bearer_auth(&user1)
        .header("content-type", "application/json")
        .body(valid)
        .send()
        .await
        .expect("request");
    assert_eq!(replaced.status(), 200);
    assert_ne!(app.ratings_snapshot().await, before);
}

/// The `origin` binary beside this test binary (`target/debug/deps/api-*` → `target/debug/`),
/// else under `CARGO_TARGET_DIR` or the repository's `target/`. `cargo nextest run -p tests`
/// does not build it: `cargo build -p origin` first (scripts/test.sh builds every target).
fn origin_binary() -> std::path::PathBuf {
    let name = format!("origin{}", std::env::consts::EXE_SUFFIX);
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join(&name)));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .map(|dir| {
            if dir.is_relative() {
                tests::repo_root().join(dir)
            } else {
                dir
            }
        })
        .unwrap_or_else(|| tests::repo_root().join("target"));
    beside
        .into_iter()
        .chain([target.join("debug").join(&name)])
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no `origin` binary in {}: run `cargo build -p origin` first",
                target.display()
            )
        })
}

/// `origin serve` with the development JWT secret on an address other machines can reach exits
/// at once with code 2 and one line on stderr, before connecting to anything.
#[tokio::test]
async fn serve_refuses_the_development_secret_off_loopback() {
    let binary = origin_binary();
    // Stands in for PostgreSQL and Redis: nothing may connect to it.
    let bystander = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    bystander.set_nonblocking(true).expect("nonblocking");
    let port = bystander.local_addr().expect("addr").port();
    for (listen, secret) in [
        ("0.0.0.0:0", None),
        ("[::]:0", Some(origin::settings::DEV_JWT_SECRET)),
    ] {
        let mut command = tokio::process::Command::new(&binary);
        command
            .arg("serve")
            .env("ORIGIN_LISTEN", listen)
            .env(
                "DATABASE_URL",
                format!("postgres://origin@127.0.0.1:{port}/movies"),
            )
            .env("REDIS_URL", format!("redis://127.0.0.1:{port}"))
            .env("WARM_ON_START", "false")
            // Should the check ever come too late, start-up still fails (bad namespace)
            // instead of serving.
            .env("CACHE_NAMESPACE", "not a namespace!")
            .env("RUST_BACKTRACE", "full")
            .env("RUST_LIB_BACKTRACE", "1")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        match secret {
            Some(secret) => command.env("JWT_SECRET", secret),
            None => command.env_remove("JWT_SECRET"),
        };
        // A guard against hanging forever, not a measurement.
        let output = tokio::time::timeout(std::time::Duration::from_secs(120), command.output())
            .await
            .expect("origin serve exited")
            .expect("run origin serve");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{listen}: {stderr}");
        assert!(
            output.stdout.is_empty(),
            "{listen}: stdout {:?}",
            output.stdout
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{listen}: one line expected:\n{stderr}");
        let expected = format!(
            "origin: refusing to listen on {listen}: JWT_SECRET is the built-in development value"
        );
        assert!(lines[0].starts_with(&expected), "{listen}: {}", lines[0]);
        assert!(
            !lines[0].contains(origin::settings::DEV_JWT_SECRET),
            "{}",
            lines[0]
        );
    }
    match bystander.accept() {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("origin serve connected to PostgreSQL or Redis before refusing: {other:?}"),
    }
}

/// Content nobody reads is still read (up to the 16 KiB limit) before the answer, so the
/// connection is never reset under a long answer (the fuzzer's `/metrics` cut short); past the
/// limit, whatever the method, it is a 413.
#[tokio::test]
async fn request_content_is_read_or_refused_whatever_the_route() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/movies/1").await.status(), 200); // something to report
    let small = app
        .client
        .get(app.url("/metrics"))
        .header("content-type", "application/json")
        .body(vec![b'x'; 8 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 200);
    let text = small.text().await.expect("the whole answer arrives");
    assert!(text.contains("http_request_duration_seconds"));

    for (method, path) in [
        (reqwest::Method::GET, "/movies/1"),
        (reqwest::Method::PUT, "/users/1/profile"),
        (reqwest::Method::POST, "/admin/cache/warm"),
    ] {
        let large = app
            .client
            .request(method.clone(), app.url(path))
            .header("content-type", "application/json")
            .body(vec![b' '; 64 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(large.status(), 413, "{method} {path}");
        let body: Value = large.json().await.unwrap();
        assert_eq!(body["error"]["code"], "payload_too_large");
    }
}
