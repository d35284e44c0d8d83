//! Public catalogue endpoints: happy paths, caching outcomes, ETags and 304s.

use serde_json::Value;
use shared::dto::{GenreTop, Genres, Movie, PopularMovies};
use tests::{TestApp, cache_status};

#[tokio::test]
async fn movie_metadata_is_cached_with_a_strong_etag_and_304() {
    let app = TestApp::spawn().await;
    let first = app.get("/movies/1").await;
    assert_eq!(first.status(), 200);
    assert_eq!(cache_status(&first), "origin; fwd=miss; stored");
    assert!(
        first.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "strong etag: {etag}"
    );
    let movie: Movie = first.json().await.unwrap();
    assert_eq!(movie.title, "Toy Story");
    assert_eq!(movie.year, Some(1995));
    assert_eq!(movie.genres, ["Animation", "Children's", "Comedy"]);
    assert_eq!(movie.rating_count, 452);

    let second = app.get("/movies/1").await;
    assert!(
        cache_status(&second).starts_with("origin; hit; ttl="),
        "{}",
        cache_status(&second)
    );
    assert_eq!(second.headers()["etag"].to_str().unwrap(), etag);

    for candidate in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"nope\", {etag}"),
        "*".into(),
    ] {
        let response = app
            .client
            .get(app.url("/movies/1"))
            .header("if-none-match", &candidate)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 304, "If-None-Match: {candidate}");
        assert_eq!(response.headers()["etag"].to_str().unwrap(), etag);
        assert!(response.headers().contains_key("cache-status"));
        assert!(response.bytes().await.unwrap().is_empty());
    }
    let other = app
        .client
        .get(app.url("/movies/1"))
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn popular_lists_every_limit_from_one_cached_list() {
    let app = TestApp::spawn().await;
    let default: PopularMovies = app.get("/movies/popular").await.json().await.unwrap();
    assert_eq!(default.movies.len(), 20);
    assert_eq!(default.movies[0].title, "Star Wars");
    assert!(
        default
            .movies
            .windows(2)
            .all(|w| w[0].rating_count >= w[1].rating_count)
    );

    let three = app.get("/movies/popular?limit=3&utm_source=x").await;
    assert!(
        cache_status(&three).starts_with("origin; hit"),
        "one list serves every limit"
    );
    let etag = three.headers()["etag"].to_str().unwrap().to_owned();
    let three: PopularMovies = three.json().await.unwrap();
    assert_eq!(three.movies, default.movies[..3]);
    let hundred: PopularMovies = app
        .get("/movies/popular?limit=100")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(hundred.movies.len(), 100);

    let not_modified = app
        .client
        .get(app.url("/movies/popular?limit=3"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    let different = app
        .client
        .get(app.url("/movies/popular?limit=4"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        different.status(),
        200,
        "another limit is another representation"
    );
}

#[tokio::test]
async fn genres_and_genre_top_lists() {
    let app = TestApp::spawn().await;
    let response = app.get("/genres").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
    let genres: Genres = response.json().await.unwrap();
    assert_eq!(genres.genres.len(), 19);
    assert!(
        genres
            .genres
            .iter()
            .any(|g| g.name == "Children's" && g.slug == "childrens")
    );

    let by_name = app.get("/genres/Sci-Fi/top?limit=5").await;
    assert_eq!(by_name.status(), 200);
    let etag = by_name.headers()["etag"].to_str().unwrap().to_owned();
    let top: GenreTop = by_name.json().await.unwrap();
    assert_eq!(top.genre.name, "Sci-Fi");
    assert_eq!(top.movies.len(), 5);
    assert_eq!(top.movies[0].title, "Star Wars");
    for movie in &top.movies {
        assert!(movie.genres.contains(&"Sci-Fi".to_owned()));
        assert!(
            movie.rating_count > 50,
            "the view keeps movies with more than 50 ratings"
        );
    }
    assert!(
        top.movies
            .windows(2)
            .all(|w| w[0].avg_rating >= w[1].avg_rating)
    );

    let by_slug = app
        .client
        .get(app.url("/genres/sci-fi/top?limit=5"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(by_slug.status(), 304, "name and slug are the same resource");
    let quoted = app.get("/genres/Children's/top").await;
    assert_eq!(quoted.status(), 200);
    let top: Value = quoted.json().await.unwrap();
    assert_eq!(top["movies"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn hot_entries_are_refreshed_before_they_expire() {
    // Without the local tier: the test ages the entry in Redis through the instance's own
    // connection, whose writes its tracking session is not told of (NOLOOP), so a copy held
    // in the local tier would go on being served fresh and the race with it decide the test.
    let mode = tests::redis_mode();
    let mut settings = tests::test_settings(
        &tests::fresh_database().await,
        mode,
        &tests::redis_url(mode),
    );
    settings.local_cache_bytes = 0;
    let app = TestApp::spawn_with(settings).await;
    let family = shared::cache_key::Family::Metadata;
    app.get("/movies/1").await;
    let key = app.state.cache.keys().movie(shared::params::MovieId(1));
    let refreshes = || {
        app.state
            .cache
            .stats()
            .snapshot(family)
            .refresh_computations
    };
    let clients = app.state.cache.stats().snapshot(family).computations;
    // Stored 1000 s ago, 10 s left: in the last tenth of its life.
    app.set_freshness(&key, 1000, 10).await;
    let response = app.get("/movies/1").await;
    assert!(
        cache_status(&response).starts_with("origin; hit; ttl="),
        "still served from the cache: {}",
        cache_status(&response)
    );
    // Every background refresh has finished: what was recomputed is now a fact.
    app.state.cache.settled().await;
    let status = cache_status(&app.get("/movies/1").await);
    let ttl: i64 = status
        .trim_start_matches("origin; hit; ttl=")
        .parse()
        .unwrap_or(0);
    assert!(
        ttl > 3600,
        "recomputed in the background before expiring: {status}"
    );
    assert_eq!(refreshes(), 1, "once");

    // The refresh is claimed in Redis: a request that read the old entry just as the refresh
    // finished (here or on another instance) does not recompute it again.
    app.set_freshness(&key, 1000, 10).await;
    app.get("/movies/1").await;
    app.state.cache.settled().await;
    assert_eq!(refreshes(), 1, "claimed once");
    assert_eq!(
        app.state.cache.stats().snapshot(family).refreshes_skipped,
        1,
        "the second refresh found the claim"
    );
    // An entry in the first nine tenths of its life is left alone.
    app.set_freshness(&key, 100, 1000).await;
    app.get("/movies/1").await;
    app.state.cache.settled().await;
    assert_eq!(refreshes(), 1);
    assert_eq!(
        app.state.cache.stats().snapshot(family).computations,
        clients,
        "refreshes are not clients' computations"
    );
}

/// Warming is not a client's miss: right after a warming run the hit rate has no client
/// lookup to report and `hit_rate_low` does not fire; clients reading what was warmed hit.
#[tokio::test]
async fn warming_does_not_count_as_client_misses() {
    let app = TestApp::spawn().await;
    let warmed: Value = app.warm().await;
    assert!(warmed["users_warmed"].as_u64().unwrap() > 20, "{warmed}");
    let after_warming = app.cache_stats().await;
    assert_eq!(after_warming["hit_rate"], Value::Null, "{after_warming}");
    assert_ne!(after_warming["alerts"]["hit_rate_low"]["state"], "firing");
    let recommendations = &after_warming["families"]["recommendations"];
    assert_eq!(recommendations["misses"], 0);
    assert!(recommendations["warm_computations"].as_u64().unwrap() > 20);

    for _ in 0..25 {
        app.get("/movies/popular").await;
    }
    let served = app.cache_stats().await;
    assert_eq!(served["hit_rate"], 1.0, "{served}");
    assert_eq!(served["alerts"]["hit_rate_low"]["state"], "ok");
}

/// Each family's `bytes_per_entry` is what its values cost Redis: the key and the stored
/// entry, as `STRLEN` finds them.
#[tokio::test]
async fn each_familys_bytes_per_entry_is_what_redis_holds() {
    let app = TestApp::spawn().await;
    let token = app.user_token(5);
    app.get("/movies/1").await;
    app.get("/movies/2").await;
    let response = app.get_as("/users/5/recommendations", &token).await;
    assert_eq!(response.status(), 200);
    let keys = app.state.cache.keys().clone();
    let redis = app.state.cache.redis();
    let stored = |key: String| async move {
        let len: u64 = redis.query(redis::cmd("STRLEN").arg(&key)).await.unwrap();
        assert!(len > 0, "{key} is stored");
        len + key.len() as u64
    };
    let movies = stored(keys.movie(shared::params::MovieId(1))).await
        + stored(keys.movie(shared::params::MovieId(2))).await;
    let recommendations = stored(keys.recommendations(
        shared::params::UserId(5),
        10,
        shared::params::Strategy::Hybrid,
    ))
    .await;
    let stats = app.cache_stats().await;
    let family = |name: &str| stats["families"][name].clone();
    assert_eq!(family("metadata")["stores"], 2, "{stats}");
    assert_eq!(family("metadata")["bytes_per_entry"], movies / 2, "{stats}");
    assert_eq!(family("recommendations")["stores"], 1, "{stats}");
    assert_eq!(
        family("recommendations")["bytes_per_entry"],
        recommendations,
        "{stats}"
    );
    assert_eq!(family("similar")["bytes_per_entry"], Value::Null);
}
