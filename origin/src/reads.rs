//! Cached reads: for each family, its key, TTL and computation in one place, used by the
//! routes and by warming alike. Each returns the stored JSON bytes and the cache outcome.
//! Every computation reads its inputs after the cache has pinned the generation it will be
//! stored under (see `cache`), and the recommendation path is gather, compute, store.

use crate::cache::{Computed, Pinned, Rendered, Scope, Served};
use crate::error::AppError;
use crate::hooks::Point;
use crate::model::LoadedModel;
use crate::recommend;
use crate::state::AppState;
use shared::cache_key::Family;
use shared::dto::{Genre, Genres, Profile, Recommendation, Recommendations};
use shared::params::{Limit, MovieId, Strategy, UserId};
use shared::ttl::ttl_secs;
use std::sync::Arc;

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, AppError> {
    serde_json::to_vec(value)
        .map_err(|e| AppError::from(anyhow::Error::new(e).context("serialising")))
}

/// Parses a cached body back (lists are stored once, at full length, and cut per request).
pub fn parse<T: serde::de::DeserializeOwned>(served: &Served) -> Result<T, AppError> {
    serde_json::from_slice(served.body())
        .map_err(|e| AppError::from(anyhow::Error::new(e).context("parsing cached value")))
}

/// Lists (popular, genre top) are stored at full length as lines, so that every `limit` is
/// served by cutting bytes rather than parsing and re-serialising 100 movies per request: the
/// first line holds the fields before the list (`"genre":{...}`, or nothing), each further
/// line one movie's JSON (which never contains a raw newline).
fn encode_list(
    head: Option<(&str, Vec<u8>)>,
    items: &[shared::dto::Movie],
) -> Result<Vec<u8>, AppError> {
    let mut out = Vec::new();
    if let Some((field, value)) = head {
        out.extend_from_slice(format!("\"{field}\":").as_bytes());
        out.extend_from_slice(&value);
    }
    for item in items {
        out.push(b'\n');
        out.extend_from_slice(&json(item)?);
    }
    Ok(out)
}

/// The response of a stored list cut to `limit`: `{<head>,"<field>":[first limit items]}`
/// (byte for byte what serialising `PopularMovies` / `GenreTop` gives), with its ETag; each
/// limit is rendered once per value.
pub fn render_list(served: &Served, field: &str, limit: Limit) -> Rendered {
    served.rendered(limit.get(), |body| cut_list(body, field, limit).into())
}

fn cut_list(body: &[u8], field: &str, limit: Limit) -> Vec<u8> {
    let mut lines = body.split(|b| *b == b'\n');
    let head = lines.next().unwrap_or_default();
    let mut out = Vec::with_capacity(body.len() + 32);
    out.push(b'{');
    if !head.is_empty() {
        out.extend_from_slice(head);
        out.push(b',');
    }
    out.extend_from_slice(format!("\"{field}\":[").as_bytes());
    for (i, item) in lines.take(limit.get() as usize).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"]}");
    out
}

/// One movie's metadata.
pub async fn movie(state: &AppState, id: MovieId) -> Result<Served, AppError> {
    let key = state.cache.keys().movie(id);
    let ttl = ttl_secs(Family::Metadata, false, &key);
    let db = state.db.clone();
    state
        .cache
        .get_or_compute(Family::Metadata, key, Scope::Global, move |_| async move {
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
        .get_or_compute(Family::Popular, key, Scope::Global, move |_| async move {
            let movies = db.popular(Limit::MAX as i64).await?;
            Ok(Computed {
                body: encode_list(None, &movies)?,
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
        .get_or_compute(Family::Genres, key, Scope::Global, move |_| async move {
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
        .get_or_compute(Family::Genres, key, Scope::Global, move |_| async move {
            let movies = db.genre_top(genre.id, Limit::MAX as i64).await?;
            Ok(Computed {
                body: encode_list(Some(("genre", json(&genre)?)), &movies)?,
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
            move |_| async move {
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

/// A user's recommendations; power users' live 24 h, others' 1 h. Values computed with a
/// model are tied to its version, so none is served after a reload.
///
/// The computation is one-way: the cache pins the user's generation before it starts, every
/// input (activity, ratings, the cached embedding, genre weights) is read after that, the
/// ranking is pure, and the embedding it folds in is stored under the same pinned generation.
/// So an embedding computed from ratings read before a write can never be stored under the
/// generation that write created.
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
            scope.clone(),
            move |pinned| async move {
                let state = state_for_compute;
                let activity = state.db.user_activity(user).await?.ok_or_else(|| {
                    AppError::not_found("user_not_found", format!("user {} does not exist", user.0))
                })?;
                let model_version = model.as_ref().map(|m| m.version.clone());
                let n_items = n.get() as usize;
                let items = match model {
                    Some(model) => {
                        with_model(&state, model, user, n_items, strategy, &scope, &pinned).await?
                    }
                    None => recommend::without_model(&state.db, user, n_items, strategy).await?,
                };
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

/// The model strategies: gather (ratings, the embedding cached under `pinned`, genre weights),
/// score on the blocking pool, store a newly folded-in embedding under `pinned`, render.
async fn with_model(
    state: &AppState,
    model: Arc<LoadedModel>,
    user: UserId,
    n: usize,
    strategy: Strategy,
    scope: &Scope,
    pinned: &Pinned,
) -> Result<Vec<Recommendation>, AppError> {
    let ratings = state.db.user_ratings(user).await?;
    state.cache.hooks().at(|| Point::RatingsRead { user }).await;
    let rows = model.rows(&ratings);
    if rows.is_empty() {
        // Cold start: nothing to fold in.
        let fallback = match strategy {
            Strategy::Hybrid => Strategy::Hybrid,
            _ => Strategy::Popular,
        };
        return recommend::without_model(&state.db, user, n, fallback).await;
    }
    let embedding_key = state.cache.keys().embedding(user);
    let embedding = state
        .cache
        .peek(Family::Embedding, &embedding_key, scope, pinned)
        .await
        .map(|bytes| decode_f32(&bytes));
    let long_term = match strategy {
        Strategy::Hybrid => Some(recommend::genre_weights(&state.db, user).await?),
        _ => None,
    };
    let inputs = recommend::Inputs {
        recent: model.recent_rows(&ratings),
        rows,
        embedding,
        long_term,
        n,
    };
    let scoring = Arc::clone(&model);
    let scored = tokio::task::spawn_blocking(move || recommend::score(&scoring, inputs))
        .await
        .map_err(|e| AppError::from(anyhow::Error::new(e).context("scoring task")))?;
    if let Some(vector) = &scored.computed_embedding {
        let computed = Computed {
            body: vector.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ttl_secs: ttl_secs(Family::Embedding, false, &embedding_key),
        };
        state
            .cache
            .store(Family::Embedding, &embedding_key, scope, pinned, computed)
            .await;
    }
    let movies = state
        .db
        .movies(&recommend::movie_ids(&model, &scored))
        .await?;
    Ok(recommend::render(&model, &scored, movies))
}

/// Little-endian f32s, as the embedding is stored.
fn decode_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::cache_status::CacheStatus;
    use shared::dto::{GenreTop, Movie, PopularMovies};

    fn movie(id: i32) -> Movie {
        Movie {
            id,
            title: format!("Line\nbreak \"{id}\""),
            year: Some(1990),
            genres: vec!["Drama".into()],
            avg_rating: Some(3.5),
            rating_count: 10,
        }
    }

    fn served(body: Vec<u8>) -> Served {
        Served {
            value: std::sync::Arc::new(crate::cache::Value::detached(body.into())),
            status: CacheStatus::new("origin"),
        }
    }

    #[test]
    fn cut_lists_are_what_serde_would_write() {
        let movies: Vec<Movie> = (1..=5).map(movie).collect();
        let popular = served(encode_list(None, &movies).unwrap());
        let three = Limit::parse("limit", Some("3"), Limit::DEFAULT).unwrap();
        let expected = serde_json::to_vec(&PopularMovies {
            movies: movies[..3].to_vec(),
        })
        .unwrap();
        assert_eq!(render_list(&popular, "movies", three).body, expected);
        let all = serde_json::to_vec(&PopularMovies {
            movies: movies.clone(),
        })
        .unwrap();
        assert_eq!(render_list(&popular, "movies", Limit::DEFAULT).body, all);

        let genre = Genre {
            id: 2,
            name: "Sci-Fi".into(),
            slug: "sci-fi".into(),
        };
        let top = served(encode_list(Some(("genre", json(&genre).unwrap())), &movies).unwrap());
        let expected = serde_json::to_vec(&GenreTop {
            genre: genre.clone(),
            movies: movies[..3].to_vec(),
        })
        .unwrap();
        assert_eq!(render_list(&top, "movies", three).body, expected);
        let empty = served(encode_list(Some(("genre", json(&genre).unwrap())), &[]).unwrap());
        let expected = serde_json::to_vec(&GenreTop {
            genre,
            movies: vec![],
        })
        .unwrap();
        assert_eq!(render_list(&empty, "movies", three).body, expected);
    }
}
