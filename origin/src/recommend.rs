//! Recommendation strategies that need no trained model: `popular` (most rated unseen movies)
//! and `genre` (best-rated unseen movies of the user's favourite genres), and `hybrid`, their
//! blend. Seen movies never appear: every candidate query excludes the user's ratings.

use crate::db::Db;
use crate::error::AppError;
use shared::dto::{Movie, Recommendation};
use shared::params::{Strategy, UserId};
use std::collections::HashMap;

/// How many favourite genres the `genre` strategy draws from.
const FAVOURITE_GENRES: usize = 3;

/// Top `n` recommendations for `user` with `strategy`.
pub async fn recommend(
    db: &Db,
    user: UserId,
    n: usize,
    strategy: Strategy,
) -> Result<Vec<Recommendation>, AppError> {
    match strategy {
        Strategy::Popular => popular(db, user, n).await,
        Strategy::Genre => genre(db, user, n).await,
        Strategy::Hybrid => hybrid(db, user, n).await,
        Strategy::Collaborative => Err(AppError::Unavailable {
            code: "model_unavailable",
            message: "the collaborative strategy needs a trained model, and none is loaded".into(),
        }),
    }
}

fn item(movie: Movie, score: f64, reason: String) -> Recommendation {
    Recommendation {
        movie_id: movie.id,
        title: movie.title,
        genres: movie.genres,
        score: (score * 10_000.0).round() / 10_000.0,
        reason,
    }
}

async fn popular(db: &Db, user: UserId, n: usize) -> Result<Vec<Recommendation>, AppError> {
    let movies = db.popular_unseen(user, n as i64).await?;
    let top = movies.first().map_or(1, |m| m.rating_count.max(1)) as f64;
    Ok(movies
        .into_iter()
        .map(|m| {
            let score = m.rating_count as f64 / top;
            let reason = format!("Popular: rated by {} people", m.rating_count);
            item(m, score, reason)
        })
        .collect())
}

/// Scored genre candidates: movie id → (score, genre name it scored best under).
async fn genre_scores(
    db: &Db,
    user: UserId,
    per_genre: i64,
) -> Result<HashMap<i32, (f64, String)>, AppError> {
    let affinities: Vec<_> = db
        .genre_affinities(user)
        .await?
        .into_iter()
        .filter(|a| a.weight > 0.0)
        .take(FAVOURITE_GENRES)
        .collect();
    let Some(strongest) = affinities.first().map(|a| a.weight) else {
        return Ok(HashMap::new());
    };
    let weights: HashMap<i16, (f64, &str)> = affinities
        .iter()
        .map(|a| (a.genre_id, (a.weight / strongest, a.name.as_str())))
        .collect();
    let ids: Vec<i16> = affinities.iter().map(|a| a.genre_id).collect();
    let mut scores: HashMap<i32, (f64, String)> = HashMap::new();
    for (genre_id, movie_id, avg_rating) in db.genre_candidates(user, &ids, per_genre).await? {
        let (weight, name) = weights[&genre_id];
        let score = weight * avg_rating / 5.0;
        let slot = scores.entry(movie_id).or_insert((0.0, String::new()));
        if score > slot.0 {
            *slot = (score, name.to_owned());
        }
    }
    Ok(scores)
}

async fn ranked(
    db: &Db,
    mut scored: Vec<(i32, f64, String)>,
    n: usize,
) -> Result<Vec<Recommendation>, AppError> {
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(n);
    let ids: Vec<i32> = scored.iter().map(|s| s.0).collect();
    let mut movies: HashMap<i32, Movie> = db
        .movies(&ids)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    Ok(scored
        .into_iter()
        .filter_map(|(id, score, reason)| movies.remove(&id).map(|m| item(m, score, reason)))
        .collect())
}

async fn genre(db: &Db, user: UserId, n: usize) -> Result<Vec<Recommendation>, AppError> {
    let scores = genre_scores(db, user, (n as i64).max(50)).await?;
    if scores.is_empty() {
        // No liked genre yet (cold start): the most popular unseen movies instead.
        return popular(db, user, n).await;
    }
    let scored = scores
        .into_iter()
        .map(|(id, (score, genre))| {
            (
                id,
                score,
                format!("Top-rated in {genre}, a genre you rate highly"),
            )
        })
        .collect();
    ranked(db, scored, n).await
}

async fn hybrid(db: &Db, user: UserId, n: usize) -> Result<Vec<Recommendation>, AppError> {
    let genre = genre_scores(db, user, (n as i64).max(50)).await?;
    if genre.is_empty() {
        return popular(db, user, n).await;
    }
    let popular = db.popular_unseen(user, (n as i64 * 3).max(50)).await?;
    let top = popular.first().map_or(1, |m| m.rating_count.max(1)) as f64;
    let mut blended: HashMap<i32, (f64, String)> = genre
        .into_iter()
        .map(|(id, (score, g))| {
            (
                id,
                (
                    0.7 * score,
                    format!("Top-rated in {g}, a genre you rate highly"),
                ),
            )
        })
        .collect();
    for movie in popular {
        let share = 0.3 * movie.rating_count as f64 / top;
        let slot = blended.entry(movie.id).or_insert((
            0.0,
            format!("Popular: rated by {} people", movie.rating_count),
        ));
        slot.0 += share;
    }
    ranked(
        db,
        blended.into_iter().map(|(id, (s, r))| (id, s, r)).collect(),
        n,
    )
    .await
}
