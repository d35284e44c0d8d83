//! The trained model's life in the origin: training from PostgreSQL's ratings, storing a
//! versioned model in PostgreSQL (so every instance can load it), loading the newest one, and
//! swapping it in while requests are served; and the reports of `origin eval`, stored for the
//! dashboard.
//!
//! A stored model is the item factors plus the hyper-parameters fold-in needs. Users are never
//! stored: each user's vector is folded in from their current ratings when needed (and cached
//! in Redis as `embeddings:{user:42}`, within the user's state: see `recommend::UserState`),
//! so a rating made after training counts at once.
//!
//! A loaded model carries the [`Catalogue`] (every movie's title and genres) that
//! recommendations are rendered with and hybrid's genre weights are computed from, so that a
//! recommendation reads no movie from PostgreSQL. The catalogue knows the data set's epoch it
//! was read in; only an import changes titles or genres, and it changes the epoch, so a
//! catalogue of another epoch than the instance's is read again before it is used.

use crate::db::{CatalogueMovie, Db, UserRating};
use crate::error::AppError;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use recommender::als::{self, AlsParams};
use recommender::blend::{self, BlendParams, ModelKind};
use recommender::data::{Interactions, Row};
use recommender::ease::Ease;
use recommender::evaluation::{self, Report, Trial};
use recommender::model::ItemModel;
use recommender::neighbours::Neighbours;
use recommender::user_step::UserEquations;
use sha2::{Digest, Sha256};
use sqlx::Row as _;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// How much the ratings made since training weigh in a user's embedding, against their whole
/// history ([`LoadedModel::embed`]). Chosen on issue #11's test of 50 MovieLens users each
/// rating six animated films 5 stars (`tests/api/responsiveness.rs`): the `collaborative` top
/// 20 gained animated films for 26 of them at 1, 45 at 2, 49 at 3, 49 at 4.
pub const RECENT_WEIGHT: f32 = 3.0;

/// A model ready to serve.
pub struct LoadedModel {
    /// `als-20261125T190000Z-1a2b3c4d`.
    pub version: String,
    /// How it was trained.
    pub params: AlsParams,
    /// Factors and fold-in.
    pub model: ItemModel,
    /// EASE's item-item weights, on a catalogue small enough for them
    /// ([`recommender::blend::kind_for`]); `None` serves ALS alone.
    pub ease: Option<Ease>,
    /// How ALS and EASE are blended (unused without [`LoadedModel::ease`]).
    pub blend: BlendParams,
    /// Each movie's nearest movies by co-loving users, with EASE (the same catalogues);
    /// `None`: the cosine of the ALS item factors stands in.
    pub neighbours: Option<Neighbours>,
    /// Movie id of each factor row.
    pub item_ids: Vec<i32>,
    /// Factor row of each movie id.
    pub index: HashMap<i32, u32>,
    /// When it was stored: ratings made later are news to it.
    pub trained_at: chrono::DateTime<chrono::Utc>,
    /// Genres of each factor row, as bit sets of genre ids (for `hybrid`).
    pub item_genres: ItemGenres,
    /// Titles and genres, by movie id. A std `RwLock` around an `Arc`, like [`ModelSlot`]:
    /// held only to clone or replace the `Arc`, replaced only when the data set changed.
    catalogue: RwLock<Arc<Catalogue>>,
}

/// The movies' genres: each distinct bit set of genre ids once, and each factor row's set. A
/// catalogue has far fewer distinct sets than movies (MovieLens 100K: 216 for 1,682 movies;
/// the synthetic 25M shape 811 for 62,000), so `hybrid`'s genre term is computed once per set
/// and added to each movie by its set's index: a gather instead of two walks over the genre
/// bits of every movie, the same sums.
#[derive(Debug, Clone, Default)]
pub struct ItemGenres {
    /// Each distinct bit set, in order of first appearance.
    pub sets: Vec<u32>,
    /// Each factor row's set: an index into `sets`.
    pub of_row: Vec<u32>,
}

impl ItemGenres {
    /// The sets of each factor row's genres, in row order.
    pub fn new(rows: impl IntoIterator<Item = u32>) -> Self {
        let mut seen = HashMap::new();
        let mut sets = Vec::new();
        let of_row = rows
            .into_iter()
            .map(|genres| {
                *seen.entry(genres).or_insert_with(|| {
                    sets.push(genres);
                    sets.len() as u32 - 1
                })
            })
            .collect();
        ItemGenres { sets, of_row }
    }

    /// The genres of factor row `row`.
    pub fn of(&self, row: usize) -> u32 {
        self.sets[self.of_row[row] as usize]
    }
}

/// Every movie's title and genres, as of one data set's epoch.
#[derive(Debug, Default)]
pub struct Catalogue {
    /// The data set's epoch the movies were read in (in the same snapshot).
    pub epoch: u64,
    movies: HashMap<i32, CatalogueEntry, foldhash::fast::RandomState>,
}

/// One movie of the [`Catalogue`].
#[derive(Debug, Clone)]
pub struct CatalogueEntry {
    /// Its title.
    pub title: String,
    /// Its genres' names, in the order every movie answer lists them.
    pub genres: Vec<String>,
    /// Its genre ids below 32 as a bit set (what genre weights are indexed by).
    pub genre_bits: u32,
}

impl Catalogue {
    /// A catalogue of `movies` read in `epoch`.
    pub fn new(epoch: u64, movies: Vec<CatalogueMovie>) -> Self {
        let movies = movies
            .into_iter()
            .map(|m| {
                let genre_bits = m
                    .genre_ids
                    .iter()
                    .filter(|g| (0..32).contains(*g))
                    .fold(0u32, |bits, g| bits | 1 << g);
                let entry = CatalogueEntry {
                    title: m.title,
                    genres: m.genres,
                    genre_bits,
                };
                (m.id, entry)
            })
            .collect();
        Catalogue { epoch, movies }
    }

    /// Reads the catalogue of the current data set.
    pub async fn load(db: &Db) -> Result<Self, AppError> {
        let (epoch, movies) = db.catalogue().await?;
        Ok(Catalogue::new(epoch, movies))
    }

    /// A movie, if the data set has it.
    pub fn get(&self, movie: i32) -> Option<&CatalogueEntry> {
        self.movies.get(&movie)
    }

    /// Number of movies.
    pub fn len(&self) -> usize {
        self.movies.len()
    }

    /// Whether it holds no movie.
    pub fn is_empty(&self) -> bool {
        self.movies.is_empty()
    }
}

impl LoadedModel {
    /// A model of `items` (factor rows of `item_ids`), without genres or catalogue.
    pub(crate) fn new(
        version: String,
        params: AlsParams,
        item_ids: Vec<i32>,
        items: Array2<f32>,
        trained_at: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let index = item_ids
            .iter()
            .enumerate()
            .map(|(row, id)| (*id, row as u32))
            .collect();
        let model = ItemModel::new(items, params.regularisation(), params.alpha);
        LoadedModel {
            version,
            model,
            ease: None,
            blend: BlendParams::default(),
            neighbours: None,
            params,
            item_ids,
            index,
            trained_at,
            item_genres: ItemGenres::default(),
            catalogue: RwLock::default(),
        }
    }

    /// The catalogue loaded with the model, or read since (see [`LoadedModel::set_catalogue`]).
    pub fn catalogue(&self) -> Arc<Catalogue> {
        self.catalogue
            .read()
            .expect("catalogue lock poisoned")
            .clone()
    }

    /// Serves `catalogue` from now on (one read after the data set's epoch changed).
    pub fn set_catalogue(&self, catalogue: Arc<Catalogue>) {
        *self.catalogue.write().expect("catalogue lock poisoned") = catalogue;
    }

    /// A user's ratings as (factor row, rating), skipping movies the model does not know.
    pub fn rows(&self, ratings: &[UserRating]) -> Vec<(u32, f32)> {
        ratings
            .iter()
            .filter_map(|r| self.index.get(&r.movie).map(|row| (*row, r.rating)))
            .collect()
    }

    /// The ratings made after the model was trained: what the user did since it last learned.
    pub fn recent_rows(&self, ratings: &[UserRating]) -> Vec<(u32, f32)> {
        let recent: Vec<UserRating> = ratings
            .iter()
            .filter(|r| r.rated_at > self.trained_at)
            .copied()
            .collect();
        self.rows(&recent)
    }

    /// The user's embedding: their whole history folded in (`all`, the normal equations of
    /// every rating the model knows, see [`ItemModel::equations`]), plus what they rated since
    /// training folded in on its own, [`RECENT_WEIGHT`] times, so fresh ratings steer the next
    /// recommendations instead of being averaged away by a long history. Without recent
    /// ratings it is the plain ALS user vector (and offline evaluation, which has none,
    /// measures exactly that). Only liked movies move the recent part (a fold-in of dislikes
    /// alone is zero: they have preference 0); dislikes act through the whole history.
    pub fn embed(&self, all: &UserEquations, recent: &[(u32, f32)]) -> ndarray::Array1<f32> {
        let mut vector = self.model.solve(all);
        if !recent.is_empty() && recent.len() < all.len() {
            vector.scaled_add(RECENT_WEIGHT, &self.model.fold_in(recent));
        }
        vector
    }

    /// Which model this is: ALS alone, or blended with EASE.
    pub fn kind(&self) -> ModelKind {
        if self.ease.is_some() {
            ModelKind::AlsEase
        } else {
            ModelKind::Als
        }
    }

    /// Every movie's score for a user with `embedding` (their ALS vector) and `rows` (their
    /// ratings as (factor row, rating)): ALS's scores, or with EASE the blend of both
    /// ([`recommender::blend::scores`], standardised over the movies the user has not rated)
    /// mapped back onto ALS's scale (ALS's mean and standard deviation over those movies), so
    /// that a score reads the same whichever model served, and `hybrid`'s genre term keeps its
    /// weight against it.
    pub fn scores(
        &self,
        embedding: ndarray::ArrayView1<f32>,
        rows: &[(u32, f32)],
    ) -> ndarray::Array1<f32> {
        blend::scores(
            &self.model,
            self.ease.as_ref(),
            embedding,
            rows,
            self.blend.als_weight,
        )
    }

    /// The `n` movies closest to the one at factor row `movie_index`, as (factor row,
    /// similarity), closest first, never the movie itself; empty for a row the model does not
    /// have. On a small catalogue, the precomputed neighbours by co-loving users
    /// ([`recommender::neighbours`]: the share of a movie's fans who love this one too, so
    /// that the blockbusters everyone rated are not everyone's neighbour); on a large one, the
    /// cosine of the ALS item factors, where a movie whose factors are all zero (never rated
    /// in training) is close to none. The one place `GET /movies/{id}/similar` asks.
    pub fn similar(&self, movie_index: u32, n: usize) -> Vec<(u32, f32)> {
        if let Some(neighbours) = &self.neighbours {
            return neighbours.get(movie_index, n);
        }
        let items = self.model.items();
        let row = movie_index as usize;
        if row >= items.nrows() {
            return Vec::new();
        }
        // Computed with the model, not per request: a second pass over every factor.
        let norms = self.model.norms();
        if norms[row] == 0.0 {
            return Vec::new();
        }
        let mut scores = items.dot(&items.row(row));
        for (score, norm) in scores.iter_mut().zip(norms) {
            *score = if *norm > 0.0 {
                *score / (norm * norms[row])
            } else {
                f32::NEG_INFINITY
            };
        }
        ItemModel::top_n(&scores, &[movie_index], n)
    }
}

/// The model being served, swapped atomically on reload. A std `RwLock` around an `Arc`:
/// readers hold the lock only to clone the `Arc`, so a reload never waits for a scoring run
/// and a scoring run keeps the model it started with.
#[derive(Default)]
pub struct ModelSlot {
    current: RwLock<Option<Arc<LoadedModel>>>,
}

impl ModelSlot {
    /// The model now, if any.
    pub fn get(&self) -> Option<Arc<LoadedModel>> {
        self.current.read().expect("model lock poisoned").clone()
    }

    /// Serves no model from now on (the data it was trained on was replaced).
    pub fn clear(&self) -> Option<Arc<LoadedModel>> {
        self.current.write().expect("model lock poisoned").take()
    }

    /// Serves `model` from now on; returns the previous one.
    pub fn set(&self, model: LoadedModel) -> Option<Arc<LoadedModel>> {
        self.current
            .write()
            .expect("model lock poisoned")
            .replace(Arc::new(model))
    }
}

/// All ratings, by user, with the id ↔ row maps.
pub struct RatingMatrix {
    /// Movie id of each item row.
    pub item_ids: Vec<i32>,
    /// Per user row: (item row, rating).
    pub rows: Vec<Row>,
}

/// Reads every rating from PostgreSQL into per-user rows (ids ordered, so the same data gives
/// the same matrix).
pub async fn load_ratings(db: &Db) -> anyhow::Result<RatingMatrix> {
    let item_ids: Vec<i32> = sqlx::query_scalar("SELECT id FROM movies ORDER BY id")
        .fetch_all(db.pool())
        .await
        .context("reading movies")?;
    let index: HashMap<i32, u32> = item_ids
        .iter()
        .enumerate()
        .map(|(row, id)| (*id, row as u32))
        .collect();
    let ratings =
        sqlx::query("SELECT user_id, movie_id, rating FROM ratings ORDER BY user_id, movie_id")
            .fetch_all(db.pool())
            .await
            .context("reading ratings")?;
    let mut rows: Vec<Row> = Vec::new();
    let mut last_user = None;
    for rating in ratings {
        let user: i32 = rating.get(0);
        if last_user != Some(user) {
            rows.push(Vec::new());
            last_user = Some(user);
        }
        let movie: i32 = rating.get(1);
        let value: f32 = rating.get(2);
        if let (Some(row), Some(item)) = (rows.last_mut(), index.get(&movie)) {
            row.push((*item, value));
        }
    }
    Ok(RatingMatrix { item_ids, rows })
}

fn progress(len: u64, template: &str) -> ProgressBar {
    let bar = if console_is_interactive() {
        ProgressBar::new(len)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

fn console_is_interactive() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// What `models.algorithm` says of a model trained by this build: its kind and the revision of
/// the training (bumped when a model trained before would serve differently, as when low
/// ratings became negative evidence). `origin train --if-outdated` trains when the newest
/// model's differs.
pub fn algorithm(kind: ModelKind) -> String {
    format!("{}:{ALGORITHM_REVISION}", kind.name())
}

/// See [`algorithm`]. 3: a 1-star rating is negative evidence in a user's fold-in (training counts
/// every rating as an interaction), and small catalogues get EASE and
/// precomputed neighbours (1 was every rating positive, ALS alone).
const ALGORITHM_REVISION: &str = "3";

/// Neighbours kept per movie: the longest `GET /movies/{id}/similar` list.
const NEIGHBOURS_KEPT: usize = shared::params::Limit::MAX as usize;

/// Whether the newest stored model is one this build would train now for the data held (same
/// kind for the catalogue's size, same training revision); `false` without a model.
pub async fn newest_is_current(db: &Db) -> anyhow::Result<bool> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT algorithm, (SELECT count(*) FROM movies) FROM models \
         ORDER BY created_at DESC, version DESC LIMIT 1",
    )
    .fetch_optional(db.pool())
    .await
    .context("reading the newest model's algorithm")?;
    Ok(row.is_some_and(|(stored, movies)| {
        stored == algorithm(blend::kind_for(usize::try_from(movies).unwrap_or(0)))
    }))
}

/// Trains on every rating and stores the model as a new version; returns the version. On a
/// catalogue of at most [`blend::DENSE_ITEM_LIMIT`] movies EASE is trained too and blended
/// with ALS ([`blend::kind_for`]); the version starts with the kind (`als-...` or
/// `als-ease-...`) and ends with a hash of the weights, so the same model trained twice in one
/// second is stored once.
/// Serving is not disturbed: instances keep their model until they reload.
pub async fn train_and_store(db: &Db, params: AlsParams) -> anyhow::Result<String> {
    let matrix = load_ratings(db).await?;
    let n_items = matrix.item_ids.len();
    anyhow::ensure!(
        n_items > 0 && !matrix.rows.is_empty(),
        "no ratings to train on: run `origin import` first"
    );
    let kind = blend::kind_for(n_items);
    let blend_params = BlendParams::default();
    let data = Interactions::from_user_rows(n_items, matrix.rows);
    tracing::info!(
        users = data.n_users,
        movies = n_items,
        ratings = data.len(),
        kind = kind.name(),
        ?params,
        "training"
    );
    let bar = progress(
        params.epochs as u64,
        "training {bar:30} epoch {pos}/{len}  loss {msg}  {elapsed}",
    );
    let (factors, last_loss, ease, neighbours) = tokio::task::spawn_blocking({
        let bar = bar.clone();
        move || {
            let mut last_loss = f64::NAN;
            let factors = als::train(&data, &params, |epoch, loss| {
                last_loss = loss;
                bar.set_position(epoch as u64);
                bar.set_message(format!("{loss:.5}"));
                if bar.is_hidden() {
                    eprintln!("epoch {epoch}/{}: loss {loss:.5}", params.epochs);
                }
            });
            let (ease, neighbours) = if kind == ModelKind::AlsEase {
                (
                    Some(Ease::train(&data.by_user, n_items, &blend_params.ease)),
                    Some(Neighbours::train(&data.by_user, n_items, NEIGHBOURS_KEPT)),
                )
            } else {
                (None, None)
            };
            (factors, last_loss, ease, neighbours)
        }
    })
    .await
    .context("training task")?;
    bar.finish();
    let items = factors.items;
    let bytes: Vec<u8> = items.iter().flat_map(|v| v.to_le_bytes()).collect();
    let item_item = ease.as_ref().map(Ease::to_bytes);
    let item_neighbours = neighbours.as_ref().map(Neighbours::to_bytes);
    let mut hash = Sha256::new();
    hash.update(&bytes);
    for part in [&item_item, &item_neighbours].into_iter().flatten() {
        hash.update(part);
    }
    let digest = hex::encode(&hash.finalize()[..4]);
    let version = format!(
        "{}-{}-{digest}",
        kind.name().replace('+', "-"),
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    sqlx::query(
        "INSERT INTO models (version, algorithm, params, factors, item_ids, item_factors, final_loss, \
                             item_item, blend, item_neighbours) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (version) DO NOTHING",
    )
    .bind(&version)
    .bind(algorithm(kind))
    .bind(sqlx::types::Json(&params))
    .bind(params.factors as i32)
    .bind(&matrix.item_ids)
    .bind(&bytes)
    .bind(last_loss.is_finite().then_some(last_loss))
    .bind(item_item)
    .bind(ease.is_some().then_some(sqlx::types::Json(&blend_params)))
    .bind(item_neighbours)
    .execute(db.pool())
    .await
    .context("storing the model")?;
    Ok(version)
}

/// The newest stored model, if any.
pub async fn load_newest(db: &Db) -> anyhow::Result<Option<LoadedModel>> {
    let Some(row) = sqlx::query(
        "SELECT version, params, factors, item_ids, item_factors, created_at, item_item, blend, \
                item_neighbours \
         FROM models ORDER BY created_at DESC, version DESC LIMIT 1",
    )
    .fetch_optional(db.pool())
    .await
    .context("reading the newest model")?
    else {
        return Ok(None);
    };
    let version: String = row.get(0);
    let params: sqlx::types::Json<AlsParams> = row.get(1);
    let factors = row.get::<i32, _>(2) as usize;
    let item_ids: Vec<i32> = row.get(3);
    let bytes: Vec<u8> = row.get(4);
    let trained_at: chrono::DateTime<chrono::Utc> = row.get(5);
    anyhow::ensure!(
        bytes.len() == item_ids.len() * factors * 4,
        "model {version} is corrupt: wrong factor size"
    );
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let items = Array2::from_shape_vec((item_ids.len(), factors), values).context("model shape")?;
    let blend_params: Option<sqlx::types::Json<BlendParams>> = row.get(7);
    let n_items = item_ids.len();
    let ease = stored_part(row.get(6), &version, "EASE weights", n_items, |bytes| {
        Ease::from_bytes(bytes).map(|ease| (ease.n_items(), ease))
    })?;
    let neighbours = stored_part(row.get(8), &version, "neighbours", n_items, |bytes| {
        Neighbours::from_bytes(bytes).map(|neighbours| (neighbours.n_items(), neighbours))
    })?;
    let mut loaded = LoadedModel::new(version, params.0, item_ids, items, trained_at);
    loaded.ease = ease;
    loaded.neighbours = neighbours;
    loaded.blend = blend_params.map(|b| b.0).unwrap_or_default();
    let catalogue = Catalogue::load(db)
        .await
        .map_err(anyhow::Error::from)
        .context("reading the catalogue")?;
    loaded.item_genres = ItemGenres::new(
        loaded
            .item_ids
            .iter()
            .map(|id| catalogue.get(*id).map_or(0, |m| m.genre_bits)),
    );
    loaded.set_catalogue(Arc::new(catalogue));
    Ok(Some(loaded))
}

/// A model's optional part stored as bytes (`decode` gives it with the number of movies it
/// covers), checked to cover the model's `n_items` movies.
fn stored_part<T>(
    bytes: Option<Vec<u8>>,
    version: &str,
    what: &str,
    n_items: usize,
    decode: impl FnOnce(&[u8]) -> Option<(usize, T)>,
) -> anyhow::Result<Option<T>> {
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    let (covered, part) =
        decode(&bytes).with_context(|| format!("model {version} is corrupt: {what}"))?;
    anyhow::ensure!(
        covered == n_items,
        "model {version} is corrupt: {what} of {covered} movies, factors of {n_items}"
    );
    Ok(Some(part))
}

/// Runs the evaluation protocol on every rating in PostgreSQL, showing progress over the grid.
pub async fn evaluate(db: &Db, epochs: usize, seed: u64) -> anyhow::Result<Report> {
    let matrix = load_ratings(db).await?;
    anyhow::ensure!(
        !matrix.rows.is_empty(),
        "no ratings to evaluate on: run `origin import` first"
    );
    let grid = evaluation::default_grid(epochs, seed);
    let bar = progress(
        grid.len() as u64 + 1,
        "evaluating {bar:30} {pos}/{len} candidates  {msg}  {elapsed}",
    );
    let report = tokio::task::spawn_blocking({
        let bar = bar.clone();
        move || {
            evaluation::run(
                &matrix.rows,
                matrix.item_ids.len(),
                &grid,
                seed,
                |trial: &Trial| {
                    bar.inc(1);
                    bar.set_message(format!(
                        "factors {} reg {} alpha {}: ndcg@10 {:.4}",
                        trial.params.factors,
                        trial.params.reg,
                        trial.params.alpha,
                        trial.validation.ndcg
                    ));
                },
            )
        }
    })
    .await
    .context("evaluation task")?;
    bar.finish_and_clear();
    Ok(report)
}

/// Runs the evaluation over several splits (`origin eval --split-seeds`) on every rating in
/// PostgreSQL, with a progress bar over its steps.
pub async fn evaluate_splits(
    db: &Db,
    seeds: &[u64],
    mode: evaluation::Mode,
) -> anyhow::Result<evaluation::MultiReport> {
    let matrix = load_ratings(db).await?;
    anyhow::ensure!(
        !matrix.rows.is_empty(),
        "no ratings to evaluate on: run `origin import` first"
    );
    let bar = progress(0, "evaluating {bar:30} {pos}/{len} steps  {msg}  {elapsed}");
    let seeds = seeds.to_vec();
    let report = tokio::task::spawn_blocking({
        let bar = bar.clone();
        move || {
            evaluation::run_seeds(
                &matrix.rows,
                matrix.item_ids.len(),
                &seeds,
                mode,
                |step: &evaluation::Progress| {
                    bar.set_length(step.total as u64);
                    bar.set_position(step.done as u64);
                    bar.set_message(step.message.clone());
                    if bar.is_hidden() {
                        eprintln!("{}/{}: {}", step.done, step.total, step.message);
                    }
                },
            )
        }
    })
    .await
    .context("evaluation task")?;
    bar.finish_and_clear();
    Ok(report)
}

/// The newest report of `origin eval`, as the dashboard shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredEvaluation {
    /// When it was stored.
    pub evaluated_at: chrono::DateTime<chrono::Utc>,
    /// The data set's epoch it was evaluated on (`dataset_epoch`), if there was one.
    pub epoch: Option<i64>,
    /// The hyper-parameters it chose.
    pub chosen: AlsParams,
    /// The chosen model on the test split.
    pub model: recommender::metrics::Metrics,
    /// The popularity baseline on the same split.
    pub popularity: recommender::metrics::Metrics,
    /// How many candidates the grid tried.
    pub candidates: usize,
}

/// Stores `report` (the whole of it, as `origin eval --json` prints it) with the data set's
/// epoch, so that the dashboard shows the newest evaluation beside the model being served.
pub async fn store_evaluation(db: &Db, report: &Report) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO model_evaluations (epoch, report) \
         VALUES ((SELECT epoch FROM dataset_epoch WHERE singleton), $1)",
    )
    .bind(sqlx::types::Json(report))
    .execute(db.pool())
    .await
    .context("storing the evaluation")?;
    Ok(())
}

/// The newest stored evaluation, if `origin eval` ever ran on this database.
pub async fn newest_evaluation(db: &Db) -> Result<Option<StoredEvaluation>, AppError> {
    let row = sqlx::query(
        "SELECT evaluated_at, epoch, report->'chosen', report->'model', report->'popularity', \
                jsonb_array_length(report->'trials') \
         FROM model_evaluations ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let chosen: sqlx::types::Json<AlsParams> = row.try_get(2)?;
    let model: sqlx::types::Json<recommender::metrics::Metrics> = row.try_get(3)?;
    let popularity: sqlx::types::Json<recommender::metrics::Metrics> = row.try_get(4)?;
    Ok(Some(StoredEvaluation {
        evaluated_at: row.try_get(0)?,
        epoch: row.try_get(1)?,
        chosen: chosen.0,
        model: model.0,
        popularity: popularity.0,
        candidates: row.try_get::<i32, _>(5)?.max(0) as usize,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_is_the_cosine_of_the_item_factors() {
        let items = ndarray::array![
            [1.0f32, 0.0],
            [2.0, 0.1],
            [0.0, 1.0],
            [-1.0, 0.0],
            [0.0, 0.0],
        ];
        let model = LoadedModel::new(
            "v".into(),
            AlsParams::default(),
            vec![10, 11, 12, 13, 14],
            items,
            chrono::Utc::now(),
        );
        let similar = model.similar(0, 10);
        let rows: Vec<u32> = similar.iter().map(|(row, _)| *row).collect();
        assert_eq!(
            rows,
            [1, 2, 3],
            "closest first, not itself, not the zero row"
        );
        assert!((similar[0].1 - 2.0 / 4.01f32.sqrt()).abs() < 1e-6);
        assert!((similar[2].1 + 1.0).abs() < 1e-6);
        assert_eq!(model.similar(0, 1).len(), 1);
        assert!(model.similar(4, 10).is_empty(), "a row without factors");
        assert!(model.similar(99, 10).is_empty(), "a row the model lacks");
    }
}
