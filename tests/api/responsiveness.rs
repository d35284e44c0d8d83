//! How the served model answers what a user just said, over HTTP as a client sees it (issue
//! #11's item 2), for 50 MovieLens users drawn with a fixed seed:
//! - six 5-star ratings of the best-rated animated films the user has not rated put more
//!   animated films in the `collaborative` top 20 than before, for at least 90% of them;
//! - eight 1-star ratings of horror films never raise horror's share of the top 20: a low
//!   rating is negative evidence, not "watched it".
//!
//! The figures are printed (`--nocapture`) for the README.

use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use shared::dto::Recommendations;
use tests::TestApp;

/// Users drawn from MovieLens 100K's 943.
const USERS: usize = 50;

/// `n` users, the same ones every run.
fn users(n: usize) -> Vec<i32> {
    let all: Vec<i32> = (1..=943).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    all.choose_multiple(&mut rng, n).copied().collect()
}

/// How many items of `list` are in `genre`.
fn in_genre(list: &Recommendations, genre: &str) -> usize {
    list.items
        .iter()
        .filter(|i| i.genres.iter().any(|g| g == genre))
        .count()
}

/// The user's `collaborative` top 20.
async fn top20(app: &TestApp, user: i32) -> Recommendations {
    app.recommendations(user, "?n=20&strategy=collaborative")
        .await
        .1
}

/// `count` films of `genre` that `user` has not rated, in the order `order_by` gives.
async fn unrated(app: &TestApp, user: i32, genre: &str, order_by: &str, count: i64) -> Vec<i32> {
    sqlx::query_scalar(&format!(
        "SELECT m.id FROM movies m \
         JOIN movie_genres mg ON mg.movie_id = m.id JOIN genres g ON g.id = mg.genre_id \
         WHERE g.name = $1 AND m.rating_count >= 20 \
           AND NOT EXISTS (SELECT 1 FROM ratings r WHERE r.user_id = $2 AND r.movie_id = m.id) \
         ORDER BY {order_by}, m.id LIMIT $3"
    ))
    .bind(genre)
    .bind(user)
    .bind(count)
    .fetch_all(app.db())
    .await
    .expect("films to rate")
}

#[tokio::test]
async fn six_five_star_ratings_of_a_genre_bring_more_of_it_for_nine_users_in_ten() {
    let app = TestApp::spawn().await;
    let mut moved = 0;
    let mut counts = Vec::new();
    for user in users(USERS) {
        let before = in_genre(&top20(&app, user).await, "Animation");
        let films = unrated(
            &app,
            user,
            "Animation",
            "m.rating_sum::float8 / m.rating_count DESC",
            6,
        )
        .await;
        assert_eq!(films.len(), 6, "user {user}");
        for film in &films {
            let status = app.rate(user, i64::from(*film), 5.0).await.status();
            assert_eq!(status, 201, "user {user}, film {film}");
        }
        let after = top20(&app, user).await;
        assert!(after.items.iter().all(|i| !films.contains(&i.movie_id)));
        let after = in_genre(&after, "Animation");
        counts.push((user, before, after));
        if after > before {
            moved += 1;
        }
    }
    println!(
        "animated films in the collaborative top 20 went up for {moved} of {USERS} users \
         after six 5-star ratings of animated films: {counts:?}"
    );
    assert!(
        moved * 10 >= USERS * 9,
        "only {moved} of {USERS} users got more animated films: (user, before, after) {counts:?}"
    );
}

#[tokio::test]
async fn eight_one_star_ratings_of_a_genre_never_raise_its_share() {
    let app = TestApp::spawn().await;
    let mut counts = Vec::new();
    let mut fell = 0;
    for user in users(USERS) {
        let before = in_genre(&top20(&app, user).await, "Horror");
        let films = unrated(&app, user, "Horror", "m.rating_count DESC", 8).await;
        assert_eq!(films.len(), 8, "user {user}");
        for film in &films {
            let status = app.rate(user, i64::from(*film), 1.0).await.status();
            assert_eq!(status, 201, "user {user}, film {film}");
        }
        let after = in_genre(&top20(&app, user).await, "Horror");
        if after < before {
            fell += 1;
        }
        counts.push((user, before, after));
    }
    println!(
        "horror in the collaborative top 20 after eight 1-star ratings of horror films: fell \
         for {fell} of {USERS} users, rose for none: {counts:?}"
    );
    let rose: Vec<_> = counts.iter().filter(|(_, b, a)| a > b).collect();
    assert!(
        rose.is_empty(),
        "horror's share rose after 1-star ratings of horror: (user, before, after) {rose:?}"
    );
    assert!(fell > 0, "1-star ratings changed nothing: {counts:?}");
}
