//! A replaced data set (`origin import --replace`) is never served from the cache: every
//! cached value carries the data set's epoch, and an instance serves only its current one.

use origin::import::{Source, SyntheticSpec};
use serde_json::Value;
use tests::{TestApp, cache_status};

#[tokio::test]
async fn a_replaced_data_set_is_never_served_from_the_cache() {
    let app = TestApp::spawn().await;
    let first: Value = app.get("/movies/1").await.json().await.unwrap();
    assert_eq!(first["title"], "Toy Story");
    assert!(cache_status(&app.get("/movies/1").await).starts_with("origin; hit"));
    app.get("/movies/popular").await;
    assert!(cache_status(&app.get("/movies/popular").await).starts_with("origin; hit"));
    app.recommendations(1, "?strategy=popular").await;
    assert!(
        app.recommendations(1, "?strategy=popular")
            .await
            .0
            .starts_with("origin; hit")
    );
    assert!(app.state.model.get().is_some());

    // What `origin import --synthetic --replace` does, while this instance is serving.
    let spec = SyntheticSpec {
        users: 60,
        movies: 40,
        ratings: 1_500,
        seed: 5,
    };
    origin::import::import(app.db(), &Source::Synthetic(spec), true, false)
        .await
        .expect("replace the data set");
    // The instance reads the new epoch (its watcher does so every second).
    origin::dataset::adopt_epoch(&app.state).await.unwrap();
    let epoch: i64 = sqlx::query_scalar("SELECT epoch FROM dataset_epoch")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(app.state.cache.epoch(), epoch as u64);

    let replaced = app.get("/movies/1").await;
    assert_eq!(cache_status(&replaced), "origin; fwd=miss; stored");
    let replaced: Value = replaced.json().await.unwrap();
    let title: String = sqlx::query_scalar("SELECT title FROM movies WHERE id = 1")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(replaced["title"], title.as_str());
    assert_ne!(replaced["title"], "Toy Story");

    let popular = app.get("/movies/popular?limit=100").await;
    assert_eq!(cache_status(&popular), "origin; fwd=miss; stored");
    let popular: Value = popular.json().await.unwrap();
    assert_eq!(popular["movies"].as_array().unwrap().len(), 40, "the new catalogue");

    let (status, recommendations) = app.recommendations(1, "?strategy=popular").await;
    assert_eq!(status, "origin; fwd=miss; stored");
    assert!(recommendations.items.iter().all(|i| i.movie_id <= 40));
    assert!(
        app.state.model.get().is_none(),
        "the model trained on the old data is no longer served"
    );
}
