//! `GET /movies/{id}/similar`: the model's nearest neighbours of a movie, cached per movie and
//! model version at the origin (one list of 100 cut per `limit`) and at the edge.

use serde_json::Value;
use shared::cache_key::Family;
use shared::dto::SimilarMovies;
use shared::params::MovieId;
use tests::edge::EdgeServer;
use tests::{TestApp, cache_status};

/// `path`'s status, `Cache-Status`, ETag and body.
async fn similar(app: &TestApp, path: &str) -> (u16, String, String, Value) {
    tests::read_json(app.get(path).await).await
}

/// How many of a movie's 10 nearest neighbours are Animation or Children's films, with the
/// list for the failure message.
async fn films_for_children_near(app: &TestApp, movie: i32) -> (usize, String) {
    let (status, _, _, body) = similar(app, &format!("/movies/{movie}/similar")).await;
    assert_eq!(status, 200, "{body}");
    let body: SimilarMovies = serde_json::from_value(body).unwrap();
    let count = body
        .similar
        .iter()
        .filter(|m| {
            m.genres
                .iter()
                .any(|g| g == "Animation" || g == "Children's")
        })
        .count();
    let titles: Vec<_> = body.similar.iter().map(|m| (&m.title, &m.genres)).collect();
    (count, format!("{titles:#?}"))
}

/// The model's neighbours make sense to a person: The Lion King's are films for children.
#[tokio::test]
async fn the_lion_kings_neighbours_are_mostly_films_for_children() {
    let app = TestApp::spawn().await;
    let (count, titles) = films_for_children_near(&app, 71).await;
    assert!(
        count >= 6,
        "{count} of 10 are Animation or Children's: {titles}"
    );
}

/// Toy Story's neighbours come from EASE's item-item weights on MovieLens 100K (the cosine of
/// ALS factors put the 1996–97 blockbusters its raters also rated there: 1 of 10 a film for
/// children).
#[tokio::test]
async fn toy_storys_neighbours_are_mostly_films_for_children() {
    let app = TestApp::spawn().await;
    let (count, titles) = films_for_children_near(&app, 1).await;
    assert!(
        count >= 6,
        "{count} of 10 are Animation or Children's: {titles}"
    );
}

/// One list per movie and model, cut per limit; strong ETags, 304s and hits.
#[tokio::test]
async fn similar_movies_are_cached_per_movie_and_model() {
    let app = TestApp::spawn().await;
    let version = app
        .state
        .model
        .get()
        .expect("a trained model")
        .version
        .clone();

    let response = app.get("/movies/1/similar").await;
    assert_eq!(response.status(), 200);
    let cache_control = response.headers()["cache-control"].to_str().unwrap();
    assert!(cache_control.starts_with("public"), "{cache_control}");
    let s_maxage: u64 = cache_control
        .split(", ")
        .find_map(|d| d.strip_prefix("s-maxage="))
        .expect("s-maxage")
        .parse()
        .unwrap();
    assert!(s_maxage >= 3600, "{cache_control}");
    assert_eq!(cache_status(&response), "origin; fwd=miss; stored");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"'), "a strong ETag: {etag}");
    let body: SimilarMovies = response.json().await.unwrap();
    assert_eq!(body.movie_id, 1);
    assert_eq!(body.model_version, version);
    assert_eq!(body.similar.len(), 10, "the default limit");
    assert!(body.similar.iter().all(|m| m.movie_id != 1), "never itself");
    assert!(
        body.similar.windows(2).all(|w| w[0].score >= w[1].score),
        "closest first"
    );
    // Again: a hit, the same body and ETag; the ETag revalidates.
    let (status, cache, again_etag, again) = similar(&app, "/movies/1/similar").await;
    assert_eq!(status, 200);
    assert!(cache.starts_with("origin; hit"), "{cache}");
    assert_eq!(again_etag, etag);
    assert_eq!(
        serde_json::from_value::<SimilarMovies>(again).unwrap(),
        body
    );
    let revalidated = app
        .client
        .get(app.url("/movies/1/similar"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    assert_eq!(revalidated.headers()["etag"].to_str().unwrap(), etag);

    // Every limit is cut from the one stored list: a prefix of it, with its own ETag.
    let (status, cache, three_etag, three) = similar(&app, "/movies/1/similar?limit=3").await;
    assert_eq!(status, 200);
    assert!(cache.starts_with("origin; hit"), "{cache}");
    assert_ne!(three_etag, etag);
    let three: SimilarMovies = serde_json::from_value(three).unwrap();
    assert_eq!(three.similar, body.similar[..3]);
    let (_, _, _, hundred) = similar(&app, "/movies/1/similar?limit=100").await;
    let hundred: SimilarMovies = serde_json::from_value(hundred).unwrap();
    assert_eq!(hundred.similar.len(), 100);
    assert_eq!(hundred.similar[..10], body.similar[..]);
    let stats = app.state.cache.stats().snapshot(Family::Similar);
    assert_eq!(
        (stats.misses, stats.computations),
        (1, 1),
        "one list per movie and model, whatever the limit"
    );

    // Stored under the model's version.
    let key = app.state.cache.keys().similar(MovieId(1), &version);
    let exists: i64 = app
        .state
        .cache
        .redis()
        .query(redis::cmd("EXISTS").arg(&key))
        .await
        .unwrap();
    assert_eq!(exists, 1, "{key}");
    let stats = app.cache_stats().await;
    assert!(
        stats["families"]["similar"]["hits"].as_u64().unwrap() >= 3,
        "{stats}"
    );
    assert_eq!(stats["families"]["similar"]["misses"], 1, "{stats}");
}

#[tokio::test]
async fn similar_refuses_what_it_cannot_answer() {
    let app = TestApp::spawn().await;
    for (path, status, code) in [
        ("/movies/abc/similar", 400, "invalid_id"),
        ("/movies/0/similar", 400, "invalid_id"),
        ("/movies/1/similar?limit=0", 400, "invalid_limit"),
        ("/movies/1/similar?limit=101", 400, "invalid_limit"),
        ("/movies/99999/similar", 404, "movie_not_found"),
    ] {
        let (got, _, _, body) = similar(&app, path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
    }

    // Without a model: 503, as the collaborative recommendations.
    app.state.model.clear();
    let (got, _, _, body) = similar(&app, "/movies/1/similar").await;
    assert_eq!(got, 503, "{body}");
    assert_eq!(body["error"]["code"], "model_unavailable", "{body}");
}

/// A new model is a new key: the old model's neighbours are never served after a reload.
#[tokio::test]
async fn a_new_model_never_serves_old_neighbours() {
    let app = TestApp::spawn().await;
    let (_, cache, _, before) = similar(&app, "/movies/50/similar").await;
    assert_eq!(cache, "origin; fwd=miss; stored");
    let old = before["model_version"].as_str().unwrap().to_owned();
    let params = recommender::als::AlsParams {
        epochs: 2,
        ..Default::default()
    };
    let version = origin::model::train_and_store(&app.state.db, params)
        .await
        .unwrap();
    assert_eq!(app.admin_post("/admin/model/reload").await.status(), 200);
    let (status, cache, _, after) = similar(&app, "/movies/50/similar").await;
    assert_eq!(status, 200);
    assert_eq!(cache, "origin; fwd=miss; stored", "{after}");
    assert_eq!(after["model_version"], version.as_str());
    assert_ne!(old, version);
}

#[tokio::test]
async fn the_edge_serves_similar_movies_from_its_cache() {
    let app = TestApp::spawn().await;
    let edge = EdgeServer::start(&format!("http://{}", app.addr)).await;
    let client = reqwest::Client::new();
    let url = format!("{}/movies/1/similar?utm=x", edge.url);
    let first = client.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(
        cache_status(&first),
        "origin; fwd=miss; stored, edge; fwd=miss; stored"
    );
    let first: SimilarMovies = first.json().await.unwrap();
    assert_eq!(first.similar.len(), 10);
    // The same entry, whatever unknown parameters or spelling.
    let second = client
        .get(format!("{}/movies/01/similar?limit=10", edge.url))
        .send()
        .await
        .unwrap();
    let status = cache_status(&second);
    assert!(
        status.ends_with("edge; hit") || status.contains("edge; hit;"),
        "{status}"
    );
    assert_eq!(second.json::<SimilarMovies>().await.unwrap(), first);
    let lookups = app.state.cache.stats().snapshot(Family::Similar);
    assert_eq!(
        lookups.hits + lookups.misses,
        1,
        "the origin was asked once"
    );
    // Another length is another entry at the edge, cut by the origin from the list it holds,
    // and a purge of the movie's tag reaches both.
    let five = client
        .get(format!("{}/movies/1/similar?limit=5", edge.url))
        .send()
        .await
        .unwrap();
    let status = cache_status(&five);
    assert!(
        status.starts_with("origin; hit") && status.ends_with(", edge; fwd=miss; stored"),
        "{status}"
    );
    let five: SimilarMovies = five.json().await.unwrap();
    assert_eq!(five.similar[..], first.similar[..5]);
    // The edge refuses a bad limit itself, in the origin's words.
    let refused = client
        .get(format!("{}/movies/1/similar?limit=0", edge.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_limit");
}
