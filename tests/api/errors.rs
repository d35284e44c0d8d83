//! Every 400/401/403/404/405/422 case, each with the JSON error shape.

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
    assert_error(not_json, 400, "unsupported_media_type").await;
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
