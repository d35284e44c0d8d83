//! Cached reads: for each family, its key, TTL and computation in one place, used by the
//! routes and by warming alike. Each returns the stored bytes and the cache outcome: JSON,
//! except a user's recommendations by the model, stored as picks and rendered when read
//! ([`recommendations_response`]).
//! Every computation reads its inputs after the cache has pinned the generation it will be
//! stored under (see `cache`), and the recommendation path is gather, compute, store.

use crate::cache::{Computed, Pinned, Rendered, Scope, Served};
use crate::error::AppError;
use crate::hooks::Point;
use crate::model::{Catalogue, LoadedModel};
use crate::picks::{Pick, Picks};
use crate::recommend;
use crate::state::AppState;
use shared::cache_key::Family;
use shared::dto::{Genre, Genres, Profile, Recommendation, Recommendations, SimilarMovie};
use shared::params::{Exclude, Limit, MovieId, Strategy, UserId};
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

/// Lists (popular, genre top, similar) are stored at full length as lines, so that every
/// `limit` is served by cutting bytes rather than parsing and re-serialising 100 movies per
/// request: the first line holds the fields before the list (`"genre":{...}`, or nothing),
/// each further line one item's JSON (which never contains a raw newline).
fn encode_list<T: serde::Serialize>(
    head: &[(&str, Vec<u8>)],
    items: &[T],
) -> Result<Vec<u8>, AppError> {
    let mut out = Vec::new();
    for (i, (field, value)) in head.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(format!("\"{field}\":").as_bytes());
        out.extend_from_slice(value);
    }
    for item in items {
        out.push(b'\n');
        out.extend_from_slice(&json(item)?);
    }
    Ok(out)
}

/// The response of a stored list cut to `limit`: `{<head>,"<field>":[first limit items]}`
/// (byte for byte what serialising `PopularMovies` / `GenreTop` / `SimilarMovies` gives), with its ETag; each
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
                body: encode_list(&[], &movies)?,
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
                body: encode_list(&[("genre", json(&genre)?)], &movies)?,
                ttl_secs: ttl,
            })
        })
        .await
}

/// The 100 movies closest to `movie` in the model being served (every `limit` is cut from
/// this one list), stored per movie and model version: the key names the version, so a new
/// model never serves an old model's neighbours. The neighbours come from
/// [`LoadedModel::similar`] on the blocking pool, rendered from the model's catalogue. 503
/// `model_unavailable` without a model; 404 for a movie the data set does not have; an empty
/// list for one the model does not know yet.
pub async fn similar(state: &AppState, movie: MovieId) -> Result<Served, AppError> {
    let model = state.model.get().ok_or_else(|| AppError::Unavailable {
        code: "model_unavailable",
        message: "similar movies need a trained model, and none is loaded".into(),
    })?;
    let key = state.cache.keys().similar(movie, &model.version);
    let ttl = ttl_secs(Family::Similar, false, &key);
    let state_for_compute = state.clone();
    state
        .cache
        .get_or_compute(Family::Similar, key, Scope::Global, move |_| async move {
            let catalogue = catalogue(&state_for_compute, &model).await?;
            if catalogue.get(movie.0).is_none() {
                return Err(AppError::not_found(
                    "movie_not_found",
                    format!("movie {} does not exist", movie.0),
                ));
            }
            let computing = Arc::clone(&model);
            let neighbours =
                tokio::task::spawn_blocking(move || match computing.index.get(&movie.0) {
                    Some(row) => computing.similar(*row, Limit::MAX as usize),
                    None => Vec::new(),
                })
                .await
                .map_err(|e| AppError::from(anyhow::Error::new(e).context("similarity task")))?;
            let similar: Vec<SimilarMovie> = neighbours
                .into_iter()
                .filter_map(|(row, score)| {
                    let id = *model.item_ids.get(row as usize)?;
                    let entry = catalogue.get(id)?;
                    Some(SimilarMovie {
                        movie_id: id,
                        title: entry.title.clone(),
                        genres: entry.genres.clone(),
                        score: (score as f64 * 10_000.0).round() / 10_000.0,
                    })
                })
                .collect();
            let head = [
                ("movie_id", json(&movie.0)?),
                ("model_version", json(&model.version)?),
            ];
            Ok(Computed {
                body: encode_list(&head, &similar)?,
                ttl_secs: ttl,
            })
        })
        .await
}

/// A user's profile. With a model loaded, it is made from the user's recommender state
/// brought up to date by one query (see [`gather_user_state`]): after a rating, no
/// aggregation over the user's history runs in PostgreSQL. The state is read, never stored
/// here (only a computation that also folds it in stores it). Without a model, PostgreSQL
/// computes it.
pub async fn profile(state: &AppState, user: UserId) -> Result<Served, AppError> {
    let key = state.cache.keys().profile(user);
    let ttl = ttl_secs(Family::Profile, false, &key);
    let state_for_compute = state.clone();
    state
        .cache
        .get_or_compute(
            Family::Profile,
            key,
            Scope::User(user),
            move |_| async move {
                let state = state_for_compute;
                let profile = match state.model.get() {
                    Some(model) => profile_from_state(&state, &model, user).await?,
                    None => state
                        .db
                        .profile(user)
                        .await?
                        .ok_or_else(|| user_not_found(user))?,
                };
                Ok(Computed {
                    body: json(&profile)?,
                    ttl_secs: ttl,
                })
            },
        )
        .await
}

/// The profile `Db::profile` computes, from the user's state and the catalogue.
async fn profile_from_state(
    state: &AppState,
    model: &LoadedModel,
    user: UserId,
) -> Result<Profile, AppError> {
    let gathered = gather_user_state(state, user).await?;
    let catalogue = catalogue(state, model).await?;
    let genres: Genres = parse(&genres(state).await?)?;
    let count = gathered.rating_count;
    Ok(Profile {
        user_id: user.0,
        rating_count: count,
        avg_rating: (count > 0)
            .then(|| ((gathered.rating_sum / count as f64) * 1000.0).round() / 1000.0),
        favourite_genres: recommend::favourite_genres(
            gathered.state.ratings(),
            &catalogue,
            &genres.genres,
            3,
        ),
        last_activity: gathered
            .last_rated_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    })
}

/// A user's recommendations; power users' live 24 h, others' 1 h. Values computed with a
/// model are tied to its version, so none is served after a reload.
///
/// The computation is one-way: the cache pins the user's generation before it starts, every
/// input is read after that, the ranking is pure, and the result is stored under the pinned
/// generation. The model strategies start from the user's cached state, which is only a
/// starting point: it is brought up to date by the ratings PostgreSQL shows after its version
/// (see [`with_model`]), so what is computed reflects every rating committed before the pin,
/// whatever state was cached, and read-your-writes holds by construction.
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
            move |pinned| async move {
                let state = state_for_compute;
                let n_items = n.get() as usize;
                let (body, rating_count) = match model {
                    Some(model) => {
                        let version = model.version.clone();
                        let (answer, rating_count) =
                            with_model(&state, model, user, n_items, strategy, &pinned).await?;
                        let body = match answer {
                            Answer::Picks(items) => Picks {
                                user_id: user.0,
                                strategy,
                                model_version: version,
                                items,
                            }
                            .encode(),
                            Answer::Items(items) => {
                                json(&listed(user, strategy, Some(version), items))?
                            }
                        };
                        (body, rating_count)
                    }
                    None => {
                        let activity = state
                            .db
                            .user_activity(user)
                            .await?
                            .ok_or_else(|| user_not_found(user))?;
                        let items =
                            recommend::without_model(&state.db, user, n_items, strategy).await?;
                        (
                            json(&listed(user, strategy, None, items))?,
                            activity.rating_count,
                        )
                    }
                };
                let power = state.is_power_user(rating_count);
                Ok(Computed {
                    body,
                    ttl_secs: ttl_secs(Family::Recommendations, power, &key),
                })
            },
        )
        .await
}

/// The response of a user's recommendations computed as `items`.
fn listed(
    user: UserId,
    strategy: Strategy,
    model_version: Option<String>,
    items: Vec<Recommendation>,
) -> Recommendations {
    Recommendations {
        user_id: user.0,
        strategy: strategy.as_str().to_owned(),
        model_version,
        items,
    }
}

/// What a recommendation computation made: the model's picks (stored as such, rendered when
/// read: [`crate::picks`]), or the items of an answer without the model (stored as JSON).
enum Answer {
    Picks(Vec<Pick>),
    Items(Vec<Recommendation>),
}

/// The response body of a user's recommendations value, with its ETag: picks rendered with
/// the catalogue (once per value and instance: the rendering is kept with the value in the
/// local tier), a JSON body as it is.
pub async fn recommendations_response(
    state: &AppState,
    served: &Served,
) -> Result<Rendered, AppError> {
    if !Picks::is_encoded(served.body()) {
        return Ok(served.whole());
    }
    let catalogue = rendering_catalogue(state).await?;
    served.try_rendered(0, |body| {
        let picks = Picks::decode(body).ok_or_else(undecodable_picks)?;
        let body = picks
            .render_json(&catalogue)
            .map_err(|e| AppError::from(anyhow::Error::new(e).context("serialising")))?;
        Ok(body.into())
    })
}

/// A user's recommendations value as the list it answers (see
/// [`recommendations_response`]).
pub async fn recommendations_list(
    state: &AppState,
    served: &Served,
) -> Result<Recommendations, AppError> {
    match Picks::decode(served.body()) {
        Some(picks) => Ok(picks.render(&*rendering_catalogue(state).await?)),
        None if Picks::is_encoded(served.body()) => Err(undecodable_picks()),
        None => parse(served),
    }
}

/// The catalogue picks are rendered with: the loaded model's (read again if the data set
/// changed since, see [`catalogue`]), or without a model one read now.
async fn rendering_catalogue(state: &AppState) -> Result<Arc<Catalogue>, AppError> {
    match state.model.get() {
        Some(model) => catalogue(state, &model).await,
        None => Ok(Arc::new(Catalogue::load(&state.db).await?)),
    }
}

fn undecodable_picks() -> AppError {
    AppError::from(anyhow::anyhow!(
        "a cached recommendations value is not valid picks"
    ))
}

/// The filters of `GET /users/{id}/recommendations` (`exclude`, `genre`). They are applied to
/// the user's cached list at the largest `n` ([`Limit::MAX`], stored under the same key as any
/// request for `n=100`), then cut to the `n` asked: filters never add cache keys, and a
/// rating invalidates the filtered reads with the rest. Fewer than `n` items come back when
/// fewer survive the filters.
#[derive(Debug, Clone, Default)]
pub struct RecommendationFilter {
    /// Movies to leave out.
    pub exclude: Option<Exclude>,
    /// The genre every item must have.
    pub genre: Option<Genre>,
}

impl RecommendationFilter {
    /// Whether any filter is set (else the list is served as computed for its `n`).
    pub fn is_active(&self) -> bool {
        self.exclude.is_some() || self.genre.is_some()
    }

    /// The first `n` items of `list` that pass the filters.
    pub fn apply(&self, mut list: Recommendations, n: Limit) -> Recommendations {
        list.items = list
            .items
            .into_iter()
            .filter(|item| {
                self.exclude
                    .as_ref()
                    .is_none_or(|exclude| !exclude.contains(item.movie_id))
            })
            .filter(|item| {
                self.genre.as_ref().is_none_or(|genre| {
                    item.genres
                        .iter()
                        .any(|g| g.eq_ignore_ascii_case(&genre.name))
                })
            })
            .take(n.get() as usize)
            .collect();
        list
    }
}

/// A user's recommendations with `filter` applied: the superset (`n=100`, see
/// [`RecommendationFilter`]) filtered and cut to `n`, rendered with its own ETag.
pub async fn filtered_recommendations(
    state: &AppState,
    user: UserId,
    n: Limit,
    strategy: Strategy,
    filter: &RecommendationFilter,
) -> Result<(Rendered, shared::cache_status::CacheStatus), AppError> {
    let served = recommendations(state, user, Limit::LONGEST, strategy).await?;
    let list = recommendations_list(state, &served).await?;
    let body = json(&filter.apply(list, n))?;
    Ok((Rendered::new(body.into()), served.status))
}

fn user_not_found(user: UserId) -> AppError {
    AppError::not_found("user_not_found", format!("user {} does not exist", user.0))
}

/// The histogram of the time a user's fold-in took (`fold`: `updated` or `refolded`), on the
/// dashboard's model panel. Its buckets are finer than the requests' (`startup`): a fold-in
/// takes microseconds to a few milliseconds.
pub const FOLD_IN_SECONDS: &str = "recommend_fold_in_seconds";

/// The histogram of each part of a recommendation computed with the model (`part`): `read`
/// (the user's state from the cache and the ratings since from PostgreSQL, the catalogue),
/// `solve` (the fold-in: nothing when the state was current), `score` (every movie, with the
/// genre term for `hybrid`), `select` (the top N without seen movies, and their reasons),
/// `render` (the picks kept as stored, each with the liked movie explaining it; titles and
/// genres are added when the value is read, once per value and instance, not counted). Where an uncached recommendation's time goes, on the same fine
/// buckets as the fold-in's.
pub const PART_SECONDS: &str = "recommend_part_seconds";

/// Records `started.elapsed()` as `part` of a recommendation ([`PART_SECONDS`]).
fn record_part(part: &'static str, started: std::time::Instant) {
    metrics::histogram!(PART_SECONDS, "part" => part).record(started.elapsed().as_secs_f64());
}

/// The model strategies, gather, compute, store: the user's state (cached, brought up to
/// date by one query: [`gather_user_state`]) and the catalogue; on the blocking pool the
/// state's fold-in updated ([`recommend::UserState::fold`]) and every movie ranked; the state
/// stored back if it changed; the picks rendered from the catalogue. Returns the
/// recommendations and the user's rating count (from the same query).
async fn with_model(
    state: &AppState,
    model: Arc<LoadedModel>,
    user: UserId,
    n: usize,
    strategy: Strategy,
    pinned: &Pinned,
) -> Result<(Answer, i64), AppError> {
    let reading = std::time::Instant::now();
    let gathered = gather_user_state(state, user).await?;
    let catalogue = catalogue(state, &model).await?;
    record_part("read", reading);
    let rating_count = gathered.rating_count;
    let (computing, catalogue_for_ranking) = (Arc::clone(&model), Arc::clone(&catalogue));
    let (outcome, to_store, scored) = tokio::task::spawn_blocking(move || {
        let GatheredState {
            state: mut user_state,
            changes,
            from_cache,
            ..
        } = gathered;
        let folding = std::time::Instant::now();
        let fold = user_state.fold(&computing, &changes);
        record_part("solve", folding);
        // Only a fold-in that did work: a kept one costs nothing and would hide the cost of
        // the others in the quantiles.
        if fold != recommend::Fold::Kept {
            metrics::histogram!(FOLD_IN_SECONDS, "fold" => fold.as_str())
                .record(folding.elapsed().as_secs_f64());
        }
        let outcome = match (from_cache, fold) {
            (false, _) => StateOutcome::Rebuilt,
            (true, recommend::Fold::Kept) => StateOutcome::Current,
            (true, recommend::Fold::Updated) => StateOutcome::Updated,
            (true, recommend::Fold::Refolded) => StateOutcome::Refolded,
        };
        let to_store = (outcome != StateOutcome::Current).then(|| {
            (
                user_state.encode(),
                user_state.rated_since(computing.trained_at),
            )
        });
        let scored =
            recommend::inputs(&computing, &catalogue_for_ranking, &user_state, strategy, n).map(
                |inputs| {
                    let scoring = std::time::Instant::now();
                    let scores = recommend::score_all(&computing, &inputs);
                    record_part("score", scoring);
                    let selecting = std::time::Instant::now();
                    let scored = recommend::select(&computing, &inputs, &scores);
                    record_part("select", selecting);
                    scored
                },
            );
        (outcome, to_store, scored)
    })
    .await
    .map_err(|e| AppError::from(anyhow::Error::new(e).context("scoring task")))?;
    metrics::counter!("recommendation_user_states_total", "outcome" => outcome.as_str())
        .increment(1);
    // Warming stores no state: it computes every user it warms, most of whom will not ask
    // again within the state's 30 or 40 s, and at the 25M shape their states (the raters'
    // too: tens of thousands of users rated since the model was trained) would fill Redis with
    // bytes that answer no read, evicting the values warming is there to cache.
    let to_store = to_store.filter(|_| !crate::cache::is_warming());
    if let Some((body, rated_since_training)) = to_store {
        // Inline, not in the background: one write per rating, and the next computation
        // (often the very next request) then starts from it. Kept `RATER_STATE_SECS` for a
        // user who rated since the model was trained, else `READER_STATE_SECS`.
        let key = state.cache.keys().embedding(user);
        let ttl_secs = match rated_since_training {
            true => state.settings.rater_state_secs,
            false => READER_STATE_SECS,
        };
        let computed = Computed { body, ttl_secs };
        state
            .cache
            .store_unscoped(Family::Embedding, &key, pinned.epoch(), computed)
            .await;
    }
    match scored {
        Some(scored) => {
            let rendering = std::time::Instant::now();
            let picks = recommend::picks(&model, &catalogue, &scored);
            record_part("render", rendering);
            Ok((Answer::Picks(picks), rating_count))
        }
        None => {
            // Cold start: no rating the model knows, nothing to fold in.
            let fallback = match strategy {
                Strategy::Hybrid => Strategy::Hybrid,
                _ => Strategy::Popular,
            };
            let items = recommend::without_model(&state.db, user, n, fallback).await?;
            Ok((Answer::Items(items), rating_count))
        }
    }
}

/// How long a user's recommender state is kept in Redis when only read since the model was
/// trained: long enough for the rating that follows a read (look at the list, rate a movie,
/// look again), which then updates it instead of reading every rating. Kept longer, the states
/// of users who only read would take the memory of the values that answer reads: at the
/// MovieLens-25M shape a state is about 3 KB (9 KB with a heavy rater's fold-in sums) against
/// about 300 bytes for the user's recommendations, and with a 7-day life they filled two
/// thirds of the design's 256 MB of Redis (see the README's measurements). Shorter than
/// `RATER_STATE_SECS`: a reader's next request is rarely a rating.
pub const READER_STATE_SECS: u64 = 30;

/// Where a computation's user state came from, for the metric
/// `recommendation_user_states_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StateOutcome {
    /// The cached state was current: no rating since, nothing folded in.
    Current,
    /// The cached state took the ratings since, its fold-in updated by them.
    Updated,
    /// The cached state's ratings were reused, its fold-in rebuilt from them (another model,
    /// or the periodic rebuild).
    Refolded,
    /// No usable cached state: every rating was read.
    Rebuilt,
}

impl StateOutcome {
    fn as_str(&self) -> &'static str {
        match self {
            StateOutcome::Current => "current",
            StateOutcome::Updated => "updated",
            StateOutcome::Refolded => "refolded",
            StateOutcome::Rebuilt => "rebuilt",
        }
    }
}

/// A user's state as of one PostgreSQL snapshot, and what it took to get there.
struct GatheredState {
    state: recommend::UserState,
    /// The ratings applied to the cached state (none when it was rebuilt).
    changes: Vec<recommend::Change>,
    /// The user's rating count in the same snapshot.
    rating_count: i64,
    /// Whether it started from the cached state.
    from_cache: bool,
    /// The sum of the user's ratings, in the same snapshot.
    rating_sum: f64,
    /// When the user last rated, in the same snapshot.
    last_rated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The user's state, up to date with PostgreSQL: the cached state, if any, and in one query
/// (one snapshot) the user's row and the ratings written after the state's version, applied
/// to it. Without a cached state the query reads all the user's ratings; so it does, in a
/// second query, when the cached one does not agree with the snapshot (another data set).
/// 404 for an unknown user.
async fn gather_user_state(state: &AppState, user: UserId) -> Result<GatheredState, AppError> {
    let key = state.cache.keys().embedding(user);
    let cached = state
        .cache
        .peek_unscoped(Family::Embedding, &key)
        .await
        .and_then(|bytes| recommend::UserState::decode(&bytes));
    let mut read = read_ratings_since(state, user, cached.as_ref().map(|s| s.version)).await?;
    let gathered = match cached {
        Some(mut cached)
            if cached.agrees_with(read.rating_version, read.rating_count, &read.ratings) =>
        {
            let changes = cached.apply(read.rating_version, std::mem::take(&mut read.ratings));
            GatheredState::from_row(cached, changes, true, &read)
        }
        Some(_) => GatheredState::rebuilt(read_ratings_since(state, user, None).await?),
        None => GatheredState::rebuilt(read),
    };
    state.cache.hooks().at(|| Point::RatingsRead { user }).await;
    Ok(gathered)
}

/// The user's row and their ratings after `since` (all of them for `None`); 404 for an
/// unknown user. Announced to the test seams with what it read.
async fn read_ratings_since(
    state: &AppState,
    user: UserId,
    since: Option<i64>,
) -> Result<crate::db::RatingsSince, AppError> {
    let read = state
        .db
        .ratings_since(user, since)
        .await?
        .ok_or_else(|| user_not_found(user))?;
    state
        .cache
        .hooks()
        .at(|| Point::RatingsDelta {
            user,
            since,
            rows: read.ratings.len(),
        })
        .await;
    Ok(read)
}

impl GatheredState {
    /// A state made from every rating of `all`.
    fn rebuilt(mut all: crate::db::RatingsSince) -> Self {
        let ratings = std::mem::take(&mut all.ratings);
        let state = recommend::UserState::from_ratings(all.rating_version, ratings);
        GatheredState::from_row(state, Vec::new(), false, &all)
    }

    /// `state`, with the user's row as `read` shows it.
    fn from_row(
        state: recommend::UserState,
        changes: Vec<recommend::Change>,
        from_cache: bool,
        read: &crate::db::RatingsSince,
    ) -> Self {
        GatheredState {
            state,
            changes,
            rating_count: read.rating_count,
            from_cache,
            rating_sum: read.rating_sum,
            last_rated_at: read.last_rated_at,
        }
    }
}

/// The catalogue to render with: the model's, unless it was read in another data set's
/// epoch than the one this instance serves now (an import replaced titles or genres since).
/// Then it is read again, after the pin and so at least as new as the pinned epoch, and kept
/// for the next computations. A title an import changed is thus never rendered under the
/// epoch that import made.
async fn catalogue(state: &AppState, model: &LoadedModel) -> Result<Arc<Catalogue>, AppError> {
    let held = model.catalogue();
    if held.epoch == state.cache.epoch() {
        return Ok(held);
    }
    let read = Arc::new(Catalogue::load(&state.db).await?);
    tracing::info!(
        epoch = format!("{:x}", read.epoch),
        movies = read.len(),
        "catalogue read again: the data set changed"
    );
    model.set_catalogue(Arc::clone(&read));
    Ok(read)
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
        let popular = served(encode_list(&[], &movies).unwrap());
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
        let top = served(encode_list(&[("genre", json(&genre).unwrap())], &movies).unwrap());
        let expected = serde_json::to_vec(&GenreTop {
            genre: genre.clone(),
            movies: movies[..3].to_vec(),
        })
        .unwrap();
        assert_eq!(render_list(&top, "movies", three).body, expected);
        let empty = served(encode_list::<Movie>(&[("genre", json(&genre).unwrap())], &[]).unwrap());
        let expected = serde_json::to_vec(&GenreTop {
            genre,
            movies: vec![],
        })
        .unwrap();
        assert_eq!(render_list(&empty, "movies", three).body, expected);

        let similar: Vec<SimilarMovie> = (1..=5)
            .map(|id| SimilarMovie {
                movie_id: id,
                title: format!("Line\nbreak \"{id}\""),
                genres: vec!["Drama".into()],
                score: 0.5,
            })
            .collect();
        let head = [
            ("movie_id", json(&7).unwrap()),
            ("model_version", json(&"als-1").unwrap()),
        ];
        let stored = served(encode_list(&head, &similar).unwrap());
        let expected = serde_json::to_vec(&shared::dto::SimilarMovies {
            movie_id: 7,
            model_version: "als-1".into(),
            similar: similar[..3].to_vec(),
        })
        .unwrap();
        assert_eq!(render_list(&stored, "similar", three).body, expected);
    }

    #[test]
    fn filters_keep_the_order_and_cut_to_n() {
        let item = |id: i32, genre: &str| Recommendation {
            movie_id: id,
            title: format!("m{id}"),
            genres: vec![genre.to_owned()],
            score: 1.0 / id as f64,
            reason: String::new(),
        };
        let list = Recommendations {
            user_id: 1,
            strategy: "hybrid".into(),
            model_version: None,
            items: vec![
                item(1, "Drama"),
                item(2, "Children's"),
                item(3, "Drama"),
                item(4, "Comedy"),
                item(5, "Drama"),
            ],
        };
        let ids = |list: Recommendations| list.items.iter().map(|i| i.movie_id).collect::<Vec<_>>();
        let two = Limit::parse("n", Some("2"), Limit::DEFAULT_N).unwrap();
        let ten = Limit::DEFAULT_N;
        let exclude = RecommendationFilter {
            exclude: Some(Exclude::parse("1,4").unwrap()),
            genre: None,
        };
        assert!(exclude.is_active());
        assert_eq!(ids(exclude.apply(list.clone(), ten)), [2, 3, 5]);
        assert_eq!(ids(exclude.apply(list.clone(), two)), [2, 3]);
        let drama = RecommendationFilter {
            exclude: Some(Exclude::parse("3").unwrap()),
            genre: Some(Genre {
                id: 8,
                name: "Drama".into(),
                slug: "drama".into(),
            }),
        };
        assert_eq!(ids(drama.apply(list.clone(), ten)), [1, 5]);
        assert!(!RecommendationFilter::default().is_active());
        assert_eq!(
            ids(RecommendationFilter::default().apply(list, two)),
            [1, 2]
        );
    }
}
