//! The trained recommender: quality floor, determinism, fold-in of new ratings, seen movies,
//! cold start, the embedding cache and model reloads.

use origin::model::{load_ratings, train_and_store};
use recommender::als::AlsParams;
use serde_json::Value;
use shared::dto::Recommendations;
use tests::{TestApp, fresh_database, redis_mode, redis_url, test_settings};

async fn genres_of(app: &TestApp, movies: &[i32]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for id in movies {
        let movie: Value = app
            .get(&format!("/movies/{id}"))
            .await
            .json()
            .await
            .unwrap();
        out.push(
            movie["genres"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g.as_str().unwrap().to_owned())
                .collect(),
        );
    }
    out
}

#[tokio::test]
async fn quality_stays_well_above_the_popularity_baseline() {
    let app = TestApp::spawn().await;
    let matrix = load_ratings(&app.state.db).await.unwrap();
    // The evaluation protocol of `origin eval`, with the served hyper-parameters only.
    let report = tokio::task::spawn_blocking(move || {
        recommender::evaluation::run(
            &matrix.rows,
            matrix.item_ids.len(),
            &[AlsParams::default()],
            42,
            |_| {},
        )
    })
    .await
    .unwrap();
    let (model, popularity) = (report.model, report.popularity);
    assert_eq!(model.users, 943);
    assert!(
        model.precision >= 0.42,
        "precision@10 {:.4}",
        model.precision
    );
    assert!(model.ndcg >= 0.48, "NDCG@10 {:.4}", model.ndcg);
    assert!(
        model.precision > 1.6 * popularity.precision,
        "{model:?} vs {popularity:?}"
    );
    assert!(
        model.coverage > 4.0 * popularity.coverage,
        "{model:?} vs {popularity:?}"
    );
}

#[tokio::test]
async fn training_is_deterministic_for_a_seed() {
    let app = TestApp::spawn().await;
    let params = AlsParams {
        epochs: 3,
        ..AlsParams::default()
    };
    let a = train_and_store(&app.state.db, params).await.unwrap();
    let b = train_and_store(&app.state.db, params).await.unwrap();
    let c = train_and_store(&app.state.db, AlsParams { seed: 7, ..params })
        .await
        .unwrap();
    let hash = |version: &str| version.rsplit('-').next().unwrap().to_owned();
    assert_eq!(
        hash(&a),
        hash(&b),
        "same seed, same data: same factors hash"
    );
    assert_ne!(hash(&a), hash(&c));
    let db = app.db().clone();
    let factors = |version: String| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, Vec<u8>>("SELECT item_factors FROM models WHERE version = $1")
                .bind(version)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let (fa, fb, fc) = (factors(a).await, factors(b).await, factors(c).await);
    assert_eq!(fa.len(), 1682 * params.factors * 4);
    assert!(fa == fb, "same seed, same data: same model");
    assert!(fa != fc, "another seed: another model");
}

#[tokio::test]
async fn seen_movies_never_appear() {
    let app = TestApp::spawn().await;
    for user in [1, 13, 405, 655, 942] {
        let rated: Vec<i32> = sqlx::query_scalar("SELECT movie_id FROM ratings WHERE user_id = $1")
            .bind(user)
            .fetch_all(app.db())
            .await
            .unwrap();
        for strategy in ["collaborative", "hybrid"] {
            let (_, r) = app
                .recommendations(user, &format!("?n=100&strategy={strategy}"))
                .await;
            assert_eq!(r.items.len(), 100);
            assert!(
                r.items.iter().all(|i| !rated.contains(&i.movie_id)),
                "user {user}, {strategy}"
            );
            assert!(
                r.items
                    .iter()
                    .all(|i| i.reason.starts_with("Because you liked")
                        || i.reason == "Matches your ratings")
            );
        }
    }
}

#[tokio::test]
async fn rating_animated_films_moves_recommendations_toward_animation() {
    let app = TestApp::spawn().await;
    // A user with many ratings and no animated film among them.
    let user: i32 = sqlx::query_scalar(
        "SELECT u.id FROM users u WHERE u.rating_count >= 40 AND NOT EXISTS ( \
           SELECT 1 FROM ratings r JOIN movie_genres mg ON mg.movie_id = r.movie_id \
           JOIN genres g ON g.id = mg.genre_id WHERE r.user_id = u.id AND g.name = 'Animation') \
         ORDER BY u.id LIMIT 1",
    )
    .fetch_one(app.db())
    .await
    .unwrap();
    let animated = |r: &Recommendations| {
        r.items
            .iter()
            .filter(|i| i.genres.iter().any(|g| g == "Animation"))
            .count()
    };
    let (_, before) = app.recommendations(user, "?n=20").await;
    let films: Vec<i32> = sqlx::query_scalar(
        "SELECT m.id FROM movies m JOIN movie_genres mg ON mg.movie_id = m.id JOIN genres g ON g.id = mg.genre_id \
         WHERE g.name = 'Animation' ORDER BY m.rating_count DESC LIMIT 5",
    )
    .fetch_all(app.db())
    .await
    .unwrap();
    for film in &films {
        assert_eq!(app.rate(user, *film as i64, 5.0).await.status(), 201);
    }
    let (status, after) = app.recommendations(user, "?n=20").await;
    let (_, collaborative) = app
        .recommendations(user, "?n=20&strategy=collaborative")
        .await;
    assert!(
        collaborative
            .items
            .iter()
            .all(|i| !films.contains(&i.movie_id))
    );
    assert!(
        status.starts_with("origin; fwd="),
        "recomputed at once: {status}"
    );
    assert!(after.items.iter().all(|i| !films.contains(&i.movie_id)));
    assert!(
        animated(&after) >= animated(&before) + 2,
        "animated films in the top 20: {} before, {} after",
        animated(&before),
        animated(&after)
    );
    let genres = genres_of(
        &app,
        &after
            .items
            .iter()
            .take(5)
            .map(|i| i.movie_id)
            .collect::<Vec<_>>(),
    )
    .await;
    assert!(
        genres
            .iter()
            .any(|g| g.contains(&"Animation".to_owned()) || g.contains(&"Children's".to_owned())),
        "{genres:?}"
    );
}

#[tokio::test]
async fn a_star_wars_fan_gets_related_films() {
    let app = TestApp::spawn().await;
    sqlx::query("INSERT INTO users (id) VALUES (5001)")
        .execute(app.db())
        .await
        .unwrap();
    assert_eq!(app.rate(5001, 50, 5.0).await.status(), 201);
    let (_, r) = app
        .recommendations(5001, "?n=10&strategy=collaborative")
        .await;
    let titles: Vec<&str> = r.items.iter().map(|i| i.title.as_str()).collect();
    // The Empire Strikes Back (172), Return of the Jedi (181).
    let ids: Vec<i32> = r.items.iter().map(|i| i.movie_id).collect();
    assert!([172, 181].contains(&ids[0]), "a sequel first: {titles:?}");
    assert!(
        r.items
            .iter()
            .all(|i| i.reason == "Because you liked Star Wars"),
        "{:?}",
        r.items
    );
}

#[tokio::test]
async fn users_without_ratings_get_results() {
    let app = TestApp::spawn().await;
    sqlx::query("INSERT INTO users (id) VALUES (5000)")
        .execute(app.db())
        .await
        .unwrap();
    for strategy in ["hybrid", "collaborative", "genre", "popular"] {
        let (_, r) = app
            .recommendations(5000, &format!("?n=10&strategy={strategy}"))
            .await;
        assert_eq!(r.items.len(), 10, "{strategy}");
        assert_eq!(r.items[0].title, "Star Wars", "{strategy}: popular first");
    }
}

#[tokio::test]
async fn reloading_a_new_model_switches_versions_and_drops_old_recommendations() {
    let app = TestApp::spawn().await;
    let (_, old) = app.recommendations(5, "").await;
    let old_version = old.model_version.clone().unwrap();
    assert!(
        app.recommendations(5, "")
            .await
            .0
            .starts_with("origin; hit")
    );

    let new_version = train_and_store(
        &app.state.db,
        AlsParams {
            epochs: 2,
            seed: 9,
            ..AlsParams::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        app.recommendations(5, "").await.1.model_version.unwrap(),
        old_version,
        "served until reloaded"
    );
    let reload = app.admin_post("/admin/model/reload").await;
    assert_eq!(reload.status(), 200);
    let reload: Value = reload.json().await.unwrap();
    assert_eq!(
        (reload["version"].as_str(), reload["previous"].as_str()),
        (Some(new_version.as_str()), Some(old_version.as_str()))
    );
    assert_eq!(reload["changed"], true);

    let (status, new) = app.recommendations(5, "").await;
    assert_eq!(new.model_version.as_deref(), Some(new_version.as_str()));
    assert!(
        !status.starts_with("origin; hit"),
        "nothing of the old model is served: {status}"
    );
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["model"], new_version.as_str());
}

#[tokio::test]
async fn without_a_model_collaborative_is_unavailable_and_hybrid_still_works() {
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM models")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let app =
        TestApp::spawn_with(test_settings(&url, redis_mode(), &redis_url(redis_mode()))).await;
    let response = app
        .get_as(
            "/users/1/recommendations?strategy=collaborative",
            &app.user_token(1),
        )
        .await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_unavailable");
    let (_, hybrid) = app.recommendations(1, "").await;
    assert_eq!((hybrid.items.len(), hybrid.model_version), (10, None));
    let reload = app.admin_post("/admin/model/reload").await;
    assert_eq!(reload.status(), 503);
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["model"], "none");
}
