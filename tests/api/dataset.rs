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
    assert_eq!(
        popular["movies"].as_array().unwrap().len(),
        40,
        "the new catalogue"
    );

    let (status, recommendations) = app.recommendations(1, "?strategy=popular").await;
    assert_eq!(status, "origin; fwd=miss; stored");
    assert!(recommendations.items.iter().all(|i| i.movie_id <= 40));
    assert!(
        app.state.model.get().is_none(),
        "the model trained on the old data is no longer served"
    );
}

/// `origin import --replace --purge-edge URL` also tells the edge (one purge of the tag `all`):
/// what it stored of the old data is gone from it, and the next request fetches the new.
#[tokio::test]
async fn a_replacing_import_purges_the_edge() {
    use secrecy::ExposeSecret;
    use tests::edge::{EdgeServer, PURGE_SECRET};
    let app = TestApp::spawn().await;
    let edge = EdgeServer::start(&format!("http://{}", app.addr)).await;
    let client = reqwest::Client::new();
    let paths = ["/movies/1", "/movies/popular?limit=5", "/genres/drama/top"];
    for path in paths {
        client
            .get(format!("{}{path}", edge.url))
            .send()
            .await
            .unwrap();
        let stored = client
            .get(format!("{}{path}", edge.url))
            .send()
            .await
            .unwrap();
        assert!(
            cache_status(&stored).contains("edge; hit"),
            "{path}: {}",
            cache_status(&stored)
        );
    }

    let output = std::process::Command::new(tests::origin_binary())
        .args(["import", "--synthetic", "--users", "60", "--movies", "40"])
        .args(["--ratings", "1500", "--seed", "5", "--replace"])
        .args(["--purge-edge", &edge.url])
        .env(
            "DATABASE_URL",
            app.state.settings.database.database_url.expose_secret(),
        )
        .env("PURGE_SECRET", PURGE_SECRET)
        .output()
        .expect("run origin import");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("everything it held purged"), "{stderr}");
    origin::dataset::adopt_epoch(&app.state).await.unwrap();

    for path in paths {
        let response = client
            .get(format!("{}{path}", edge.url))
            .send()
            .await
            .unwrap();
        assert!(
            cache_status(&response).ends_with("edge; fwd=miss; stored"),
            "{path} purged from the edge: {}",
            cache_status(&response)
        );
    }
    let movie: Value = client
        .get(format!("{}/movies/1", edge.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(movie["title"], "Toy Story", "the new data set's movie");
}
