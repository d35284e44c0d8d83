//! Personal endpoints and the cache rules around them: read-your-writes, replaced ratings,
//! milestones, power-user TTLs, single flight, empty results.

use origin::hooks::Point;
use serde_json::Value;
use shared::dto::{PopularMovies, Profile, RatingReceipt};
use shared::params::{Strategy, UserId};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tests::{TestApp, cache_status};
use tokio::sync::{Barrier, Notify};

/// The longest a test waits for a request to reach a test seam: a deadline that only a broken
/// test or build ever meets, never a pace the test relies on.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

async fn profile(app: &TestApp, user: i32) -> (String, Profile) {
    let response = app
        .get_as(&format!("/users/{user}/profile"), &app.user_token(user))
        .await;
    assert_eq!(response.status(), 200);
    (cache_status(&response), response.json().await.unwrap())
}

async fn seen(app: &TestApp, user: i32) -> Vec<i32> {
    sqlx::query_scalar("SELECT movie_id FROM ratings WHERE user_id = $1")
        .bind(user)
        .fetch_all(app.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn profile_and_recommendations_for_each_strategy() {
    let app = TestApp::spawn().await;
    let (status, p) = profile(&app, 1).await;
    assert_eq!(status, "origin; fwd=miss; stored");
    assert_eq!(p.rating_count, 272);
    assert_eq!(p.favourite_genres.len(), 3);
    assert!(p.last_activity.is_some());
    assert!(profile(&app, 1).await.0.starts_with("origin; hit"));

    let rated = seen(&app, 1).await;
    for strategy in ["popular", "genre", "hybrid"] {
        let (status, r) = app
            .recommendations(1, &format!("?n=15&strategy={strategy}"))
            .await;
        assert_eq!(status, "origin; fwd=miss; stored");
        assert_eq!(r.strategy, strategy);
        assert_eq!(r.items.len(), 15);
        assert!(
            r.items.iter().all(|i| !rated.contains(&i.movie_id)),
            "{strategy}: seen movies never appear"
        );
        assert!(r.items.windows(2).all(|w| w[0].score >= w[1].score));
        assert!(r.items.iter().all(|i| !i.reason.is_empty()));
    }
    let (_, default) = app.recommendations(1, "").await;
    assert_eq!(
        (default.strategy.as_str(), default.items.len()),
        ("hybrid", 10)
    );

    // Conditional request on a private resource.
    let token = app.user_token(1);
    let first = app.get_as("/users/1/recommendations", &token).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let again = app
        .client
        .get(app.url("/users/1/recommendations"))
        .bearer_auth(&token)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    // The template database holds a trained model: the collaborative strategy uses it.
    let (_, collaborative) = app.recommendations(1, "?strategy=collaborative&n=20").await;
    assert!(collaborative.model_version.is_some());
    assert_eq!(collaborative.items.len(), 20);
    assert!(
        collaborative
            .items
            .iter()
            .all(|i| !rated.contains(&i.movie_id))
    );
}

#[tokio::test]
async fn a_new_rating_is_visible_at_once() {
    let app = TestApp::spawn().await;
    let user = 1;
    let (_, before) = app.recommendations(user, "?n=10&strategy=popular").await;
    let (_, before_genre) = app.recommendations(user, "?n=5&strategy=genre").await;
    let (_, profile_before) = profile(&app, user).await;
    assert!(
        app.recommendations(user, "?n=10&strategy=popular")
            .await
            .0
            .starts_with("origin; hit")
    );
    assert!(profile(&app, user).await.0.starts_with("origin; hit"));

    let movie = before.items[0].movie_id;
    let response = app.rate(user, movie as i64, 5.0).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let receipt: RatingReceipt = response.json().await.unwrap();
    assert!(!receipt.replaced);

    // Every cached value of this user is invalid, whatever its n and strategy.
    let (status, after) = app.recommendations(user, "?n=10&strategy=popular").await;
    assert!(status.starts_with("origin; fwd="), "{status}");
    assert!(
        after.items.iter().all(|i| i.movie_id != movie),
        "the rated movie is gone"
    );
    assert_eq!(after.items[0].movie_id, before.items[1].movie_id);
    let (status, after_genre) = app.recommendations(user, "?n=5&strategy=genre").await;
    assert!(status.starts_with("origin; fwd="), "{status}");
    assert!(after_genre.items.iter().all(|i| i.movie_id != movie));
    let (status, p) = profile(&app, user).await;
    assert!(status.starts_with("origin; fwd="), "{status}");
    assert_eq!(p.rating_count, profile_before.rating_count + 1);

    // Replacing the rating: 200, count unchanged, average moves.
    let response = app.rate(user, movie as i64, 1.0).await;
    assert_eq!(response.status(), 200);
    let receipt: RatingReceipt = response.json().await.unwrap();
    assert!(receipt.replaced);
    assert_eq!(receipt.rating, 1.0);
    let (status, replaced) = profile(&app, user).await;
    assert!(status.starts_with("origin; fwd="), "{status}");
    assert_eq!(replaced.rating_count, p.rating_count);
    let expected = (profile_before.avg_rating.unwrap() * 272.0 + 1.0) / 273.0;
    assert!(
        (replaced.avg_rating.unwrap() - expected).abs() < 0.001,
        "{:?} vs {expected}",
        replaced.avg_rating
    );
    let stored: f32 =
        sqlx::query_scalar("SELECT rating FROM ratings WHERE user_id = $1 AND movie_id = $2")
            .bind(user)
            .bind(movie)
            .fetch_one(app.db())
            .await
            .unwrap();
    assert_eq!(stored, 1.0, "committed before the answer");

    // Another user's cache is untouched.
    app.recommendations(2, "?strategy=popular").await;
    app.rate(user, before.items[3].movie_id as i64, 3.0).await;
    assert!(
        app.recommendations(2, "?strategy=popular")
            .await
            .0
            .starts_with("origin; hit")
    );

    // Rating the genre strategy's first pick takes it out of the genre recommendations.
    let picked = before_genre.items[0].movie_id;
    assert!(
        app.recommendations(user, "?n=5&strategy=genre")
            .await
            .1
            .items
            .iter()
            .any(|i| i.movie_id == picked),
        "still recommended before it is rated"
    );
    assert!(
        app.rate(user, picked as i64, 4.0)
            .await
            .status()
            .is_success()
    );
    let (status, regenre) = app.recommendations(user, "?n=5&strategy=genre").await;
    assert!(status.starts_with("origin; fwd="), "{status}");
    assert_eq!(regenre.items.len(), 5);
    assert!(regenre.items.iter().all(|i| i.movie_id != picked));
}

#[tokio::test]
async fn every_milestone_rating_of_a_movie_invalidates_the_lists() {
    // The most popular movie, two ratings short of a milestone (RATING_MILESTONE is set so),
    // and two users who have not rated it: the popular list must show its new count.
    let db = tests::fresh_database().await;
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let (movie, count): (i32, i32) = sqlx::query_as(
        "SELECT id, rating_count FROM movies ORDER BY rating_count DESC, id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    let mode = tests::redis_mode();
    let mut settings = tests::test_settings(&db, mode, &tests::redis_url(mode));
    settings.rating_milestone = i64::from(count) + 2;
    let app = TestApp::spawn_with(settings).await;
    let users: Vec<i32> = sqlx::query_scalar(
        "SELECT id FROM users u WHERE NOT EXISTS (SELECT 1 FROM ratings r WHERE r.user_id = u.id AND r.movie_id = $1) ORDER BY id LIMIT 2",
    )
    .bind(movie)
    .fetch_all(app.db())
    .await
    .unwrap();

    app.get("/movies/popular").await;
    app.get(&format!("/movies/{movie}")).await;
    assert!(cache_status(&app.get("/movies/popular").await).starts_with("origin; hit"));

    assert_eq!(app.rate(users[0], movie as i64, 4.0).await.status(), 201);
    assert!(
        cache_status(&app.get("/movies/popular").await).starts_with("origin; hit"),
        "not a milestone"
    );

    let receipt: RatingReceipt = app
        .rate(users[1], movie as i64, 4.0)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt.movie_rating_count, count as i64 + 2);
    let response = app.get("/movies/popular?limit=100").await;
    assert_eq!(
        cache_status(&response),
        "origin; fwd=miss; stored",
        "milestone invalidates the popular list"
    );
    let list: PopularMovies = response.json().await.unwrap();
    let listed = list
        .movies
        .iter()
        .find(|m| m.id == movie)
        .expect("the most popular movie is in the popular list");
    assert_eq!(listed.rating_count, receipt.movie_rating_count);
    let metadata = app.get(&format!("/movies/{movie}")).await;
    assert_eq!(cache_status(&metadata), "origin; fwd=miss; stored");
    let metadata: Value = metadata.json().await.unwrap();
    assert_eq!(metadata["rating_count"], receipt.movie_rating_count);
}

#[tokio::test]
async fn power_users_keep_recommendations_a_day_others_an_hour() {
    let app = TestApp::spawn().await;
    app.state.refresh_power_threshold().await.unwrap();
    let (power, casual): (i32, i32) = sqlx::query_as(
        "SELECT (SELECT id FROM users ORDER BY rating_count DESC LIMIT 1), (SELECT id FROM users ORDER BY rating_count LIMIT 1)",
    )
    .fetch_one(app.db())
    .await
    .unwrap();
    app.recommendations(power, "").await;
    app.recommendations(casual, "").await;
    let keys = app.state.cache.keys();
    let ttl = |user: i32| {
        let key = keys.recommendations(UserId(user), 10, Strategy::Hybrid);
        let redis = app.state.cache.redis().clone();
        async move {
            redis
                .query::<i64>(redis::cmd("TTL").arg(key))
                .await
                .unwrap()
        }
    };
    let grace = app.state.settings.cache_stale_grace_secs as i64;
    let (power_ttl, casual_ttl) = (ttl(power).await - grace, ttl(casual).await - grace);
    assert!(
        (77_760..=86_400).contains(&power_ttl),
        "power user: {power_ttl} s"
    );
    assert!(
        (3_240..=3_600).contains(&casual_ttl),
        "casual user: {casual_ttl} s"
    );
}

#[tokio::test]
async fn concurrent_misses_compute_once() {
    let app = TestApp::spawn().await;
    let token = app.user_token(7);
    let key = app
        .state
        .cache
        .keys()
        .recommendations(UserId(7), 25, Strategy::Hybrid);
    // The leader's computation is held until the 23 other requests have joined its flight,
    // so the misses overlap for sure.
    let followers = Arc::new(AtomicUsize::new(0));
    let all_joined = Arc::new(Notify::new());
    {
        let (followers, all_joined, key) = (followers.clone(), all_joined.clone(), key.clone());
        app.state.cache.hooks().install(move |point| {
            let (followers, all_joined, key) = (followers.clone(), all_joined.clone(), key.clone());
            Box::pin(async move {
                match point {
                    Point::FlightJoined {
                        key: joined,
                        collapsed: true,
                    } if joined == key && followers.fetch_add(1, Ordering::SeqCst) + 1 == 23 => {
                        all_joined.notify_one();
                    }
                    Point::ComputeStarted { key: computing } if computing == key => {
                        // A deadline, not a pace: if the requests never overlap, the
                        // leader goes on and the `collapsed` count below fails.
                        let _ = tokio::time::timeout(DEADLINE, all_joined.notified()).await;
                    }
                    _ => {}
                }
            })
        });
    }
    let before = app
        .state
        .cache
        .stats()
        .snapshot(shared::cache_key::Family::Recommendations)
        .computations;
    let requests = (0..24).map(|_| {
        app.client
            .get(app.url("/users/7/recommendations?n=25&strategy=hybrid"))
            .bearer_auth(&token)
            .send()
    });
    let responses = futures::future::join_all(requests).await;
    let mut bodies = Vec::new();
    let mut statuses = Vec::new();
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.status(), 200);
        statuses.push(cache_status(&response));
        bodies.push(response.text().await.unwrap());
    }
    let after = app
        .state
        .cache
        .stats()
        .snapshot(shared::cache_key::Family::Recommendations)
        .computations;
    assert_eq!(
        after - before,
        1,
        "24 concurrent misses, one computation: {statuses:?}"
    );
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    let count = |status: &str| statuses.iter().filter(|s| *s == status).count();
    assert_eq!(count("origin; fwd=miss; stored"), 1, "{statuses:?}");
    assert_eq!(
        count("origin; fwd=miss; collapsed"),
        23,
        "the others waited for it: {statuses:?}"
    );
}

/// Read-your-writes under concurrency: a recommendation whose computation read the user's
/// ratings just before a rating committed must not leave anything (its embedding above all)
/// that later recommendations would use. The computation is held at a barrier between its
/// reads while the rating commits; then what the user is served must equal what is computed
/// from nothing cached.
#[tokio::test]
async fn a_rating_during_a_computation_is_never_hidden_by_it() {
    let app = TestApp::spawn().await;
    let user = 13;
    let query = "?n=20&strategy=collaborative";
    let paused = Arc::new(Barrier::new(2));
    let resume = Arc::new(Barrier::new(2));
    let armed = Arc::new(AtomicBool::new(true));
    {
        let (paused, resume, armed) = (paused.clone(), resume.clone(), armed.clone());
        app.state.cache.hooks().install(move |point| {
            let (paused, resume, armed) = (paused.clone(), resume.clone(), armed.clone());
            Box::pin(async move {
                if point == (Point::RatingsRead { user: UserId(user) })
                    && armed.swap(false, Ordering::SeqCst)
                {
                    paused.wait().await;
                    resume.wait().await;
                }
            })
        });
    }
    let movie: i32 = sqlx::query_scalar(
        "SELECT id FROM movies m WHERE NOT EXISTS (SELECT 1 FROM ratings r WHERE r.user_id = $1 AND r.movie_id = m.id) ORDER BY rating_count DESC, id LIMIT 1",
    )
    .bind(user)
    .fetch_one(app.db())
    .await
    .unwrap();

    let first = tokio::spawn({
        let request = app
            .client
            .get(app.url(&format!("/users/{user}/recommendations{query}")))
            .bearer_auth(app.user_token(user));
        async move { request.send().await.unwrap().status() }
    });
    tokio::time::timeout(DEADLINE, paused.wait())
        .await
        .expect("the computation reached the point between its reads");
    assert_eq!(app.rate(user, movie as i64, 5.0).await.status(), 201);
    tokio::time::timeout(DEADLINE, resume.wait())
        .await
        .expect("the held computation resumes");
    assert_eq!(first.await.unwrap(), 200);

    let (_, served) = app.recommendations(user, query).await;
    assert!(served.items.iter().all(|i| i.movie_id != movie));
    // The same, computed from nothing cached (a new generation: no list; no recommender
    // state either).
    assert!(app.state.cache.invalidate_user(UserId(user)).await);
    let state_key = app.state.cache.keys().embedding(UserId(user));
    let _: i64 = app
        .state
        .cache
        .redis()
        .query(redis::cmd("DEL").arg(&state_key))
        .await
        .unwrap();
    let (status, fresh) = app.recommendations(user, query).await;
    assert_eq!(status, "origin; fwd=miss; stored");
    assert_eq!(
        serde_json::to_value(&served).unwrap(),
        serde_json::to_value(&fresh).unwrap(),
        "what was served after the rating is computed from it"
    );
}

#[tokio::test]
async fn empty_results_are_cached_values() {
    let app = TestApp::spawn().await;
    // MovieLens' `unknown` genre has no movie with more than 50 ratings.
    let first = app.get("/genres/unknown/top").await;
    assert_eq!(cache_status(&first), "origin; fwd=miss; stored");
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["movies"], Value::Array(vec![]));
    assert!(cache_status(&app.get("/genres/unknown/top").await).starts_with("origin; hit"));
}
