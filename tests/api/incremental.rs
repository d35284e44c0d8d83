//! A rating no longer means a recomputation from scratch: each user's state (ratings as of a
//! PostgreSQL rating version, with the fold-in's equations and embedding) is cached, and a
//! recommendation after a rating reads only the ratings written since and updates the state.
//! What is served must equal what an instance with nothing cached computes; hybrid's genre
//! weights must equal PostgreSQL's; a title an import changed must not be served after it.

use origin::hooks::Point;
use origin::model::Catalogue;
use origin::recommend::{UserState, genre_weights};
use shared::dto::Recommendations;
use shared::params::UserId;
use std::sync::{Arc, Mutex};
use tests::{TestApp, fresh_database, redis_mode, redis_url, test_settings};

/// What the recommendation computations of one user read from PostgreSQL, in order: the
/// version their cached state started from (`None`: no state, all ratings read) and the
/// number of ratings that came back.
type Reads = Arc<Mutex<Vec<(Option<i64>, usize)>>>;

fn record_reads(app: &TestApp, user: i32) -> Reads {
    let reads: Reads = Arc::default();
    let recorded = reads.clone();
    app.state.cache.hooks().install(move |point| {
        if let Point::RatingsDelta {
            user: UserId(who),
            since,
            rows,
        } = point
            && who == user
        {
            recorded.lock().unwrap().push((since, rows));
        }
        Box::pin(async {})
    });
    reads
}

fn take(reads: &Reads) -> Vec<(Option<i64>, usize)> {
    std::mem::take(&mut *reads.lock().unwrap())
}

async fn rating_count(app: &TestApp, user: i32) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM ratings WHERE user_id = $1")
        .bind(user)
        .fetch_one(app.db())
        .await
        .unwrap() as usize
}

/// The most popular movies `user` has not rated.
async fn unseen(app: &TestApp, user: i32, n: i64) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT id FROM movies m WHERE NOT EXISTS \
           (SELECT 1 FROM ratings r WHERE r.user_id = $1 AND r.movie_id = m.id) \
         ORDER BY rating_count DESC, id LIMIT $2",
    )
    .bind(user)
    .bind(n)
    .fetch_all(app.db())
    .await
    .unwrap()
}

/// The same recommendations: movies, titles, genres and reasons exactly, scores to float
/// precision (the served embedding was updated rating by rating, the other folded in from
/// scratch; the two agree to about 1e-6, which can move the fourth decimal by one).
fn assert_same(served: &Recommendations, fresh: &Recommendations, what: &str) {
    assert_eq!(served.model_version, fresh.model_version, "{what}");
    assert_eq!(served.items.len(), fresh.items.len(), "{what}");
    for (a, b) in served.items.iter().zip(&fresh.items) {
        assert_eq!(
            (a.movie_id, &a.title, &a.genres, &a.reason),
            (b.movie_id, &b.title, &b.genres, &b.reason),
            "{what}"
        );
        assert!(
            (a.score - b.score).abs() <= 2e-4,
            "{what}: {} vs {}",
            a.score,
            b.score
        );
    }
}

/// `recommendation_user_states_total{outcome}` as the instance reports it (0 before any).
async fn states(app: &TestApp, outcome: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let series = format!("recommendation_user_states_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// A heavy rater (636 ratings, more than two per factor): the state keeps the fold-in's
/// equations, and each rating updates them.
#[tokio::test]
async fn a_heavy_rater_s_state_is_updated_by_the_delta_and_equals_a_fresh_computation() {
    ratings_read_only_the_delta_and_equal_a_fresh_computation(13, "updated").await;
}

/// A light rater (183 ratings): the state is small, its equations rebuilt from the ratings it
/// holds; PostgreSQL is still read for the delta only.
#[tokio::test]
async fn a_light_rater_s_state_is_rebuilt_from_its_ratings_and_equals_a_fresh_computation() {
    ratings_read_only_the_delta_and_equal_a_fresh_computation(42, "refolded").await;
}

/// Recommendations of `user`, then ratings (new and replaced), then recommendations again:
/// each computation after a rating reads only the ratings since the cached state (a test
/// seam counts them), folds them in the way `outcome` says, and serves what an instance with
/// nothing cached computes.
async fn ratings_read_only_the_delta_and_equal_a_fresh_computation(user: i32, outcome: &str) {
    let url = fresh_database().await;
    let mode = redis_mode();
    let app = TestApp::spawn_with(test_settings(&url, mode, &redis_url(mode))).await;
    let reads = record_reads(&app, user);
    let history = rating_count(&app, user).await;

    let (_, before) = app.recommendations(user, "?n=20").await;
    assert_eq!(
        take(&reads),
        [(None, history)],
        "nothing cached: every rating read once"
    );

    // Two new ratings and a replaced one: a movie it recommended rated down, the most
    // popular unseen one rated up, and an earlier rating changed.
    let recommended = before.items[0].movie_id;
    let popular = unseen(&app, user, 5)
        .await
        .into_iter()
        .find(|m| *m != recommended)
        .unwrap();
    let earlier: (i32, f32) = sqlx::query_as(
        "SELECT movie_id, rating FROM ratings WHERE user_id = $1 ORDER BY movie_id LIMIT 1",
    )
    .bind(user)
    .fetch_one(app.db())
    .await
    .unwrap();
    let replacement = if earlier.1 >= 3.0 { 1.0 } else { 5.0 };
    assert_eq!(app.rate(user, recommended as i64, 0.5).await.status(), 201);
    assert_eq!(app.rate(user, popular as i64, 5.0).await.status(), 201);
    assert_eq!(
        app.rate(user, earlier.0 as i64, replacement).await.status(),
        200
    );

    let folded = states(&app, outcome).await;
    let (status, served) = app.recommendations(user, "?n=20").await;
    assert!(status.contains("fwd=miss"), "recomputed: {status}");
    assert_eq!(states(&app, outcome).await, folded + 1, "{outcome}");
    assert_eq!(
        take(&reads),
        [(Some(0), 3)],
        "from the cached state: only the three ratings since (imported ratings are version 0)"
    );
    assert!(
        served
            .items
            .iter()
            .all(|i| i.movie_id != recommended && i.movie_id != popular),
        "rated movies are gone at once"
    );
    let (_, collaborative) = app
        .recommendations(user, "?n=15&strategy=collaborative")
        .await;
    assert_eq!(
        take(&reads),
        [(Some(3), 0)],
        "another list of the same user: the state is current, nothing to read but the check"
    );

    // An instance sharing PostgreSQL but nothing cached (its own cache namespace).
    let fresh = TestApp::spawn_with(test_settings(&url, mode, &redis_url(mode))).await;
    let (status, recomputed) = fresh.recommendations(user, "?n=20").await;
    assert!(status.contains("fwd=miss"), "{status}");
    assert_same(&served, &recomputed, "hybrid");
    let (_, recomputed) = fresh
        .recommendations(user, "?n=15&strategy=collaborative")
        .await;
    assert_same(&collaborative, &recomputed, "collaborative");
    assert_ne!(
        before.items.iter().map(|i| i.movie_id).collect::<Vec<_>>(),
        served.items.iter().map(|i| i.movie_id).collect::<Vec<_>>(),
        "the ratings changed the recommendations"
    );

    // More ratings in a row, each followed by a recommendation: each reads one rating.
    let more = unseen(&app, user, 6).await;
    for (i, movie) in more.into_iter().skip(2).enumerate() {
        assert_eq!(app.rate(user, movie as i64, 4.5).await.status(), 201);
        let (_, served) = app.recommendations(user, "?n=20").await;
        assert_eq!(take(&reads), [(Some(3 + i as i64), 1)], "rating {i}");
        // Another instance with nothing cached (the first one's cache now holds this user's
        // lists and state, and is not told of ratings made through another namespace).
        let fresh = TestApp::spawn_with(test_settings(&url, mode, &redis_url(mode))).await;
        let (_, recomputed) = fresh.recommendations(user, "?n=20").await;
        assert_same(&served, &recomputed, &format!("after rating {i}"));
    }
}

/// The state replaces the bare embedding under the embedding key: binary (not JSON), kept a
/// `READER_STATE_SECS` for a user who only reads and `RATER_STATE_SECS` once they rate, read again without being stored
/// again while nothing changed, stored once after a rating.
#[tokio::test]
async fn the_state_is_cached_as_binary_and_stored_again_only_when_it_changed() {
    let app = TestApp::spawn().await;
    app.recommendations(3, "?strategy=collaborative").await;
    let key = app.state.cache.keys().embedding(UserId(3));
    let redis = app.state.cache.redis();
    let raw: Vec<u8> = redis.query(redis::cmd("GET").arg(&key)).await.unwrap();
    let body = &raw[raw.iter().position(|b| *b == b'\n').unwrap() + 1..];
    let state = UserState::decode(body).expect("a user state, not JSON");
    let factors = app.state.model.get().unwrap().params.factors;
    assert_eq!(state.embedding().len(), factors);
    assert_eq!(state.ratings().len(), rating_count(&app, 3).await);
    let ttl: i64 = redis.query(redis::cmd("TTL").arg(&key)).await.unwrap();
    let reader_secs = origin::reads::READER_STATE_SECS as i64;
    assert!(
        (reader_secs - 10..=reader_secs).contains(&ttl),
        "a user who has not rated since the model was trained: READER_STATE_SECS, {ttl}"
    );

    let family = shared::cache_key::Family::Embedding;
    let before = app.state.cache.stats().snapshot(family).computations;
    app.recommendations(3, "?strategy=collaborative&n=11").await;
    assert_eq!(
        app.state.cache.stats().snapshot(family).computations,
        before,
        "the state was current: reused, not stored again"
    );
    assert_eq!(app.rate(3, 1, 4.0).await.status(), 201);
    app.recommendations(3, "?strategy=collaborative").await;
    assert_eq!(
        app.state.cache.stats().snapshot(family).computations,
        before + 1,
        "a rating: brought up to date and stored"
    );
    let raw: Vec<u8> = redis.query(redis::cmd("GET").arg(&key)).await.unwrap();
    let body = &raw[raw.iter().position(|b| *b == b'\n').unwrap() + 1..];
    let state = UserState::decode(body).unwrap();
    let ttl: i64 = redis.query(redis::cmd("TTL").arg(&key)).await.unwrap();
    let rater_secs = app.state.settings.rater_state_secs as i64;
    assert!(
        rater_secs > reader_secs && (rater_secs - 10..=rater_secs).contains(&ttl),
        "a user who rates: RATER_STATE_SECS, {ttl}, and no grace: a state is never served stale"
    );
    assert_eq!(state.version, 1);
    assert!(
        state
            .ratings()
            .iter()
            .any(|r| r.movie == 1 && r.rating == 4.0)
    );
}

#[tokio::test]
async fn a_state_that_does_not_match_postgresql_is_rebuilt_from_every_rating() {
    let app = TestApp::spawn().await;
    let user = 7;
    let reads = record_reads(&app, user);
    let history = rating_count(&app, user).await;
    app.recommendations(user, "?strategy=collaborative").await;
    assert_eq!(take(&reads), [(None, history)]);

    // As after an import that restarted every version: the state is ahead of PostgreSQL.
    let movie = unseen(&app, user, 1).await[0];
    assert_eq!(app.rate(user, movie as i64, 4.0).await.status(), 201);
    app.recommendations(user, "?strategy=collaborative").await;
    assert_eq!(take(&reads), [(Some(0), 1)]);
    sqlx::query("UPDATE users SET rating_version = 0 WHERE id = $1")
        .bind(user)
        .execute(app.db())
        .await
        .unwrap();
    app.rate(user, unseen(&app, user, 1).await[0] as i64, 2.0)
        .await;
    let (_, served) = app.recommendations(user, "?strategy=collaborative").await;
    assert_eq!(
        take(&reads),
        [(Some(1), 0), (None, history + 2)],
        "the delta disagrees (version 1 again): every rating read"
    );
    assert_eq!(served.items.len(), 10);
}

/// Hybrid's genre weights come from the state's ratings and the in-memory catalogue: the
/// same numbers as the `genre_affinities` query (which profiles and the `genre` strategy
/// use), for users with few and many ratings, movies of several genres and dislikes.
#[tokio::test]
async fn genre_weights_from_the_state_equal_postgresql_s() {
    let app = TestApp::spawn().await;
    let catalogue = Catalogue::load(&app.state.db).await.unwrap();
    assert_eq!(catalogue.epoch, app.state.cache.epoch());
    for user in [1, 13, 42, 166, 405, 655, 943] {
        let all = app
            .state
            .db
            .ratings_since(UserId(user), None)
            .await
            .unwrap()
            .unwrap();
        let ours = genre_weights(&all.ratings, &catalogue);
        let affinities = app.state.db.genre_affinities(UserId(user)).await.unwrap();
        let strongest = affinities.first().map_or(0.0, |a| a.weight);
        let mut theirs = [0.0; 32];
        for a in affinities.iter().filter(|a| (0..32).contains(&a.genre_id)) {
            theirs[a.genre_id as usize] = if strongest > 0.0 {
                a.weight / strongest
            } else {
                0.0
            };
        }
        assert_eq!(ours, theirs, "user {user}");
    }
}

/// The catalogue is loaded with the model; an import that changes titles changes the data
/// set's epoch, and from the moment an instance serves the new epoch it renders the new
/// titles, even though the model (same version) was kept.
#[tokio::test]
async fn a_title_changed_by_an_import_is_not_served_afterwards() {
    let app = TestApp::spawn().await;
    let user = 21;
    let (_, before) = app
        .recommendations(user, "?n=5&strategy=collaborative")
        .await;
    let movie = before.items[0].movie_id;
    // What an import does, in one transaction: new rows and a new epoch.
    let mut tx = app.db().begin().await.unwrap();
    sqlx::query("UPDATE movies SET title = 'Renamed by an import' WHERE id = $1")
        .bind(movie)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE dataset_epoch SET epoch = epoch + 1")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(origin::dataset::adopt_epoch(&app.state).await.unwrap());
    let model = app.state.model.get().unwrap();
    assert_eq!(
        Some(&model.version),
        before.model_version.as_ref(),
        "the model was kept"
    );

    let (status, after) = app
        .recommendations(user, "?n=5&strategy=collaborative")
        .await;
    assert!(status.contains("fwd=miss"), "{status}");
    let item = after.items.iter().find(|i| i.movie_id == movie).unwrap();
    assert_eq!(item.title, "Renamed by an import");
    assert_eq!(model.catalogue().epoch, app.state.cache.epoch());
}

/// A profile made from the user's state equals the one PostgreSQL computes, before and after
/// ratings (new and replaced), and a profile after a rating reads only the new rows.
#[tokio::test]
async fn profiles_from_the_state_equal_the_databases() {
    let app = TestApp::spawn().await;
    let served = |user: i32| {
        let app = &app;
        async move {
            let response = app
                .get_as(&format!("/users/{user}/profile"), &app.user_token(user))
                .await;
            assert_eq!(response.status(), 200);
            response
                .json::<shared::dto::Profile>()
                .await
                .expect("profile JSON")
        }
    };
    for user in [1, 2, 13, 42, 99, 450, 943] {
        // The state is cached by a recommendation first for some, not for others.
        if user % 2 == 1 {
            app.recommendations(user, "").await;
        }
        let expected = app.state.db.profile(UserId(user)).await.unwrap().unwrap();
        assert_eq!(served(user).await, expected, "user {user}");
    }
    let reads = record_reads(&app, 13);
    for (movie, rating) in [(1, 5.0), (50, 1.0), (1, 2.5), (1000, 4.5)] {
        assert!(app.rate(13, movie, rating).await.status().is_success());
        let expected = app.state.db.profile(UserId(13)).await.unwrap().unwrap();
        assert_eq!(
            served(13).await,
            expected,
            "after rating movie {movie} {rating}"
        );
    }
    let reads = reads.lock().unwrap().clone();
    assert!(!reads.is_empty());
    assert!(
        reads
            .iter()
            .all(|(since, rows)| since.is_some() && *rows <= 4),
        "each profile read only the ratings since the cached state: {reads:?}"
    );
}
