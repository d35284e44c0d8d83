//! The recommendation strategies. Seen movies never appear: every candidate excludes the
//! user's ratings.
//!
//! - `collaborative`: every movie scored against the user's embedding (folded in from their
//!   current ratings, so a new rating counts at once), top N, each explained by the liked movie
//!   it is closest to.
//! - `hybrid` (default): collaborative scores plus a genre term (long-term favourites, and
//!   more strongly the genres rated since the model was trained); without a model, or for a
//!   user without ratings, genre and popularity blended.
//! - `popular`: the most rated movies; `genre`: the best rated of the user's favourite genres.
//!
//! The collaborative path is one-way (see `reads::recommendations`): the caller pins the
//! user's generation, gathers every input ([`Inputs`]: ratings, a cached embedding, genre
//! weights), then [`score`] (pure, run on the blocking pool) ranks the movies and
//! [`render`] (pure) explains them with their titles. Nothing here reads the cache, so
//! nothing can be read under another generation than the one the result is stored with.
//! The other strategies read PostgreSQL only.

use crate::db::Db;
use crate::error::AppError;
use crate::model::LoadedModel;
use recommender::model::ItemModel;
use shared::dto::{Movie, Recommendation};
use shared::params::{Strategy, UserId};
use std::collections::HashMap;

/// How many favourite genres the `genre` strategy draws from.
const FAVOURITE_GENRES: usize = 3;
/// Weight of long-term genre affinity in `hybrid`, against collaborative scores of about 0–1.
const LONG_TERM_GENRE_WEIGHT: f64 = 0.05;
/// Weight of the genres rated since the model was trained.
const RECENT_GENRE_WEIGHT: f64 = 0.25;
/// A rating from which a movie counts as liked (for explanations).
const LIKED: f32 = 4.0;

/// Top `n` for the strategies that need no model (`popular`, `genre`, and `hybrid` when no
/// model is loaded), and the cold-start answer of the model strategies; PostgreSQL only.
/// `collaborative` without a model is a 503.
pub async fn without_model(
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

/// Everything a model strategy computes from, gathered under one pinned generation.
pub struct Inputs {
    /// The user's ratings as (factor row, rating); not empty.
    pub rows: Vec<(u32, f32)>,
    /// The ratings made since the model was trained.
    pub recent: Vec<(u32, f32)>,
    /// The user's cached embedding for this model and generation, if there was one.
    pub embedding: Option<Vec<f32>>,
    /// For `hybrid`: the user's long-term genre weights (see [`genre_weights`]).
    pub long_term: Option<[f64; 32]>,
    /// How many to recommend.
    pub n: usize,
}

/// What [`score`] found.
pub struct Scored {
    /// The embedding, when it was computed here (the caller stores it).
    pub computed_embedding: Option<Vec<f32>>,
    /// The top movies as (factor row, score), best first.
    pub top: Vec<(u32, f32)>,
    /// For each, the liked movie (factor row) it is closest to.
    pub because: Vec<Option<u32>>,
}

/// Scores every movie against the user's embedding (folded in unless cached), plus, for
/// `hybrid`, a genre term: long-term favourites and, weighted more, the genres rated since the
/// model was trained, so a fresh taste shows in the very next recommendations. Seen movies
/// are excluded. Pure and CPU-bound: run it on the blocking pool.
pub fn score(model: &LoadedModel, inputs: Inputs) -> Scored {
    let (embedding, computed_embedding) = match inputs.embedding {
        Some(cached) if cached.len() == model.model.factors() => (cached, None),
        _ => {
            let vector = model.embed(&inputs.rows, &inputs.recent).to_vec();
            (vector.clone(), Some(vector))
        }
    };
    let mut scores = model.model.scores(ndarray::ArrayView1::from(&embedding));
    if let Some(long_term) = inputs.long_term {
        let recent = recent_genre_weights(model, &inputs.recent);
        for (score, genres) in scores.iter_mut().zip(&model.item_genres) {
            *score += (LONG_TERM_GENRE_WEIGHT * strongest(*genres, &long_term)
                + RECENT_GENRE_WEIGHT * strongest(*genres, &recent)) as f32;
        }
    }
    let seen: Vec<u32> = inputs.rows.iter().map(|(row, _)| *row).collect();
    let top = ItemModel::top_n(&scores, &seen, inputs.n);

    // Explanation: the liked movie (or, failing that, the best-rated one) closest to each pick.
    let best = inputs.rows.iter().map(|(_, r)| *r).fold(0.0f32, f32::max);
    let liked: Vec<u32> = inputs
        .rows
        .iter()
        .filter(|(_, r)| *r >= LIKED.min(best))
        .map(|(row, _)| *row)
        .collect();
    let because = top
        .iter()
        .map(|(item, _)| {
            liked.iter().copied().max_by(|a, b| {
                let affinity = |row: u32| model.model.item_affinity(*item as usize, row as usize);
                affinity(*a).total_cmp(&affinity(*b))
            })
        })
        .collect();
    Scored {
        computed_embedding,
        top,
        because,
    }
}

/// The movie ids [`render`] needs the metadata of: the picks and the movies explaining them.
pub fn movie_ids(model: &LoadedModel, scored: &Scored) -> Vec<i32> {
    let picks = scored.top.iter().map(|(row, _)| *row);
    let reasons = scored.because.iter().flatten().copied();
    picks
        .chain(reasons)
        .map(|row| model.item_ids[row as usize])
        .collect()
}

/// The recommendations of `scored`, with titles and reasons from `movies`.
pub fn render(model: &LoadedModel, scored: &Scored, movies: Vec<Movie>) -> Vec<Recommendation> {
    let mut movies: HashMap<i32, Movie> = movies.into_iter().map(|m| (m.id, m)).collect();
    let reasons: Vec<String> = scored
        .because
        .iter()
        .map(|row| {
            row.and_then(|row| movies.get(&model.item_ids[row as usize]))
                .map(|liked| format!("Because you liked {}", liked.title))
                .unwrap_or_else(|| "Matches your ratings".to_owned())
        })
        .collect();
    scored
        .top
        .iter()
        .zip(reasons)
        .filter_map(|((row, score), reason)| {
            let movie = movies.remove(&model.item_ids[*row as usize])?;
            Some(item(movie, *score as f64, reason))
        })
        .collect()
}

/// The largest weight among a movie's genres (a bit set of genre ids).
fn strongest(genres: u32, weights: &[f64; 32]) -> f64 {
    (0..32)
        .filter(|bit| genres & (1 << bit) != 0)
        .map(|bit| weights[bit])
        .fold(0.0, f64::max)
}

/// The user's genre affinities by genre id (bit), the strongest 1.0.
pub async fn genre_weights(db: &Db, user: UserId) -> Result<[f64; 32], AppError> {
    let mut weights = [0.0; 32];
    let affinities = db.genre_affinities(user).await?;
    let strongest = affinities.first().map_or(0.0, |a| a.weight);
    if strongest > 0.0 {
        for a in affinities.iter().filter(|a| (0..32).contains(&a.genre_id)) {
            weights[a.genre_id as usize] = a.weight / strongest;
        }
    }
    Ok(weights)
}

/// Genre affinities from the ratings made since training only, the strongest 1.0.
fn recent_genre_weights(model: &LoadedModel, recent: &[(u32, f32)]) -> [f64; 32] {
    let mut weights = [0.0; 32];
    for (row, rating) in recent {
        let genres = model.item_genres[*row as usize];
        for (bit, weight) in weights.iter_mut().enumerate() {
            if genres & (1 << bit) != 0 {
                *weight += (*rating as f64 - 2.5).max(0.0);
            }
        }
    }
    let strongest = weights.iter().copied().fold(0.0, f64::max);
    if strongest > 0.0 {
        weights.iter_mut().for_each(|w| *w /= strongest);
    }
    weights
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
