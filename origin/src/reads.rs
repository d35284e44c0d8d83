//! Cached reads: for each family, its key, TTL and computation in one place, used by the
//! routes and by warming alike. Each returns the stored JSON bytes and the cache outcome.

use crate::cache::{Computed, Scope, Served};
use crate::error::AppError;
use crate::model::LoadedModel;
use crate::state::AppState;
use shared::cache_key::Family;
use shared::dto::{Genre, GenreTop, Genres, PopularMovies, Profile, Recommendations};
use shared::params::{Limit, MovieId, Strategy, UserId};
use shared::ttl::ttl_secs;
use std::sync::Arc;

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, AppError> {
    serde_json::to_vec(value)
        .map_err(|e| AppError::from(anyhow::Error::new(e).context("serialising")))
}

/// Parses a cached body back (lists are stored once, at full length, and cut per request).
pub fn parse<T: serde::de::DeserializeOwned>(served: &Served) -> Result<T, AppError> {
    serde_json::from_slice(&served.body)
        .map_err(|e| AppError::from(anyhow::Error::new(e).context("parsing cached value")))
}

/// One movie's metadata.
pub async fn movie(state: &AppState, id: MovieId) -> Result<Served, AppError> {
    let key = state.cache.keys().movie(id);
    let ttl = ttl_secs(Family::Metadata, false, &key);
    let db = state.db.clone();
    state
        .cache
        .get_or_compute(Family::Metadata, key, Scope::Global, move || async move {
            let movie = db.movie(id).await?.ok_or_else(|| {
                AppError::not_found("movie_not_found", format!("movie {} does not exist", id.0))
            })?;
            Ok(Computed {
                body: json(&movie)?,
                ttl_secs: ttl,
            })
        })
        .await
}

/// The 100 most popular movies (every `limit` is served from this one list).
pub async fn popular(state: &AppState) -> Result<Served, AppError> {
    let key = state.cache.keys().popular();
    let ttl = ttl_secs(Family::Popular, false, &key);
    let db = state.db.clone();
    state
        .cache
        .get_or_compute(Family::Popular, key, Scope::Global, move || async move {
            let movies = db.popular(Limit::MAX as i64).await?;
            Ok(Computed {
                body: json(&PopularMovies { movies })?,
                ttl_secs: ttl,
            })
        })
        .await
}

/// The genre list.
pub async fn genres(state: &AppState) -> Result<Served, AppError> {
    let key = state.cache.keys().genres();
    let ttl = ttl_secs(Family::Genres, false, &key);
    let db = state.db.clone();
    state
        .cache
        .get_or_compute(Family::Genres, key, Scope::Global, move || async move {
            Ok(Computed {
                body: json(&Genres {
                    genres: db.genres().await?,
                })?,
                ttl_secs: ttl,
            })
        })
        .await
}

/// Finds a genre by name or slug, case-insensitively.
pub async fn find_genre(state: &AppState, wanted: &str) -> Result<Genre, AppError> {
    let genres: Genres = parse(&genres(state).await?)?;
    genres
        .genres
        .into_iter()
        .find(|g| g.name.eq_ignore_ascii_case(wanted) || g.slug.eq_ignore_ascii_case(wanted))
        .ok_or_else(|| {
            AppError::not_found(
                "genre_not_found",
                format!("genre `{wanted}` does not exist"),
            )
        })
}

/// The 100 best-rated movies of a genre.
pub async fn genre_top(state: &AppState, genre: Genre) -> Result<Served, AppError> {
    let key = state.cache.keys().genre_top(&genre.slug);
    let ttl = ttl_secs(Family::Genres, false, &key);
    let db = state.db.clone();
    state
        .cache
        .get_or_compute(Family::Genres, key, Scope::Global, move || async move {
            let movies = db.genre_top(genre.id, Limit::MAX as i64).await?;
            Ok(Computed {
                body: json(&GenreTop { genre, movies })?,
                ttl_secs: ttl,
            })
        })
        .await
}

/// A user's profile.
pub async fn profile(state: &AppState, user: UserId) -> Result<Served, AppError> {
    let key = state.cache.keys().profile(user);
    let ttl = ttl_secs(Family::Profile, false, &key);
    let db = state.db.clone();
    state
        .cache
        .get_or_compute(
            Family::Profile,
            key,
            Scope::User(user),
            move || async move {
                let profile: Profile = db.profile(user).await?.ok_or_else(|| {
                    AppError::not_found("user_not_found", format!("user {} does not exist", user.0))
                })?;
                Ok(Computed {
                    body: json(&profile)?,
                    ttl_secs: ttl,
                })
            },
        )
        .await
}

/// A user's embedding for `model` (see `LoadedModel::embed`), cached as little-endian f32
/// for 7 days.
pub async fn embedding(
    state: &AppState,
    model: &Arc<LoadedModel>,
    user: UserId,
    rows: Vec<(u32, f32)>,
    recent: Vec<(u32, f32)>,
) -> Result<Vec<f32>, AppError> {
    let key = state.cache.keys().embedding(user);
    let ttl = ttl_secs(Family::Embedding, false, &key);
    let scope = Scope::UserModel(user, Arc::from(model.version.as_str()));
    let model = Arc::clone(model);
    let served = state
        .cache
        .get_or_compute(Family::Embedding, key, scope, move || async move {
            let vector = tokio::task::spawn_blocking(move || model.embed(&rows, &recent))
                .await
                .map_err(|e| AppError::from(anyhow::Error::new(e).context("fold-in task")))?;
            Ok(Computed {
                body: vector.iter().flat_map(|v| v.to_le_bytes()).collect(),
                ttl_secs: ttl,
            })
        })
        .await?;
    Ok(served
        .body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// A user's recommendations; power users' live 24 h, others' 1 h. Values computed with a
/// model are tied to its version, so none is served after a reload.
pub async fn recommendations(
    state: &AppState,
    user: UserId,
    n: Limit,
    strategy: Strategy,
) -> Result<Served, AppError> {
    let key = state.cache.keys().recommendations(user, n.get(), strategy);
    let model = state
        .model
        .get()
        .filter(|_| matches!(strategy, Strategy::Collaborative | Strategy::Hybrid));
    let scope = match &model {
        Some(model) => Scope::UserModel(user, Arc::from(model.version.as_str())),
        None => Scope::User(user),
    };
    let state_for_compute = state.clone();
    state
        .cache
        .get_or_compute(
            Family::Recommendations,
            key.clone(),
            scope,
            move || async move {
                let state = state_for_compute;
                let activity = state.db.user_activity(user).await?.ok_or_else(|| {
                    AppError::not_found("user_not_found", format!("user {} does not exist", user.0))
                })?;
                let model_version = model.as_ref().map(|m| m.version.clone());
                let items =
                    crate::recommend::recommend(&state, model, user, n.get() as usize, strategy)
                        .await?;
                let body = Recommendations {
                    user_id: user.0,
                    strategy: strategy.as_str().to_owned(),
                    model_version,
                    items,
                };
                let power = state.is_power_user(activity.rating_count);
                Ok(Computed {
                    body: json(&body)?,
                    ttl_secs: ttl_secs(Family::Recommendations, power, &key),
                })
            },
        )
        .await
}
