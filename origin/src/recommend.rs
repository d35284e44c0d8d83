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
//! The model strategies start from the user's [`UserState`]: their ratings as of a
//! PostgreSQL rating version, with the embedding the model folded in from them (and, for
//! users with many ratings, the fold-in's normal equations), cached in Redis. A rating does
//! not mean starting again: the caller reads only the ratings written since the state's
//! version (`Db::ratings_since`), [`UserState::apply`] merges them, and [`UserState::fold`]
//! updates the equations by the new and replaced ratings (a low-rank change, O(k²) each) or,
//! for a short history, rebuilds them from the ratings held, and solves them again. With no
//! new rating the cached embedding is used as it is. Everything here is pure:
//! the caller gathers (cached state, delta, catalogue) after pinning, [`UserState::fold`] and
//! [`rank`] compute on the blocking pool, [`picks`] keeps the movies the catalogue has with
//! their explanations (rendered with titles when read: [`crate::picks`]), and the caller
//! stores. Nothing here reads the cache or PostgreSQL on that path.
//! The other strategies read PostgreSQL only.

use crate::db::{Db, UserRating};
use crate::error::AppError;
use crate::model::{Catalogue, LoadedModel};
use crate::picks::Pick;
use recommender::model::ItemModel;
use recommender::user_step::UserEquations;
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

/// How many incremental updates a state's equations take before they are rebuilt from the
/// ratings it holds. The equations are stored with `M` in f32 (see
/// [`UserEquations::write_compact`]), and each round trip through Redis rounds it again:
/// rebuilding now and then (O(n·k²), against O(k²) per update) bounds what a long run of
/// updates could accumulate, far below the tolerance the fold-in is tested to.
pub const REFOLD_AFTER: u32 = 64;

/// A state keeps its equations only for users with at least this many ratings per factor.
/// The equations are 2·k(k + 1) bytes whatever the history (33 KB at 128 factors, against
/// about 7 bytes a rating), and rebuilding them from the ratings costs O(n·k²): measured at 128
/// factors, about 70 µs for 100 ratings and 170 µs for 300, against 3 µs for an update and
/// 110 µs for the solve that follows either way. Below 2·k ratings rebuilding costs less
/// than that solve, so those states (most users) stay small and rebuild; the heavy raters,
/// whose rebuilds would cost most and who rate most, keep theirs and update them.
pub const EQUATIONS_KEPT_FROM_RATINGS_PER_FACTOR: usize = 2;

/// The first bytes of an encoded [`UserState`] (and its format's version).
const STATE_FORMAT: &[u8; 4] = b"UST2";

/// One user's ratings as of a PostgreSQL rating version, and what a model folded in from them:
/// the starting point of the user's next recommendations, cached in Redis (family
/// `Embedding`, valid for one data set's epoch). It says itself what it reflects, so a state
/// of any age is safe to start from: the ratings written after its version are read and
/// applied before it is used.
#[derive(Debug, Clone, PartialEq)]
pub struct UserState {
    /// `users.rating_version` the ratings reflect: every rating stamped up to it, none after.
    pub version: i64,
    /// Every rating, by movie id.
    ratings: Vec<UserRating>,
    /// The fold-in of one model version, if one was computed.
    folded: Option<Folded>,
}

/// A state's fold-in under one model.
#[derive(Debug, Clone, PartialEq)]
struct Folded {
    /// The model it was computed with.
    model_version: String,
    /// Incremental updates since the equations were built from the ratings.
    updates: u32,
    /// The ALS user step's sums over the ratings of movies the model knows; `None` when they
    /// were not stored (see [`EQUATIONS_KEPT_FROM_RATINGS_PER_FACTOR`]).
    equations: Option<UserEquations>,
    /// The user's embedding (see `LoadedModel::embed`).
    embedding: Vec<f32>,
}

/// A rating [`UserState::apply`] brought in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// The rating of the same movie it replaced, if any.
    pub old: Option<UserRating>,
    /// The rating.
    pub new: UserRating,
}

/// What [`UserState::fold`] did to the fold-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// Nothing changed: the stored embedding is used as it is.
    Kept,
    /// The equations were updated by the changes and solved again.
    Updated,
    /// The equations were built from every rating held (no fold-in of this model yet, a
    /// state stored without its equations, or [`REFOLD_AFTER`] updates reached).
    Refolded,
}

impl Fold {
    /// For logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Fold::Kept => "kept",
            Fold::Updated => "updated",
            Fold::Refolded => "refolded",
        }
    }
}

impl UserState {
    /// The state of a user whose ratings at `version` are `ratings` (all of them).
    pub fn from_ratings(version: i64, mut ratings: Vec<UserRating>) -> Self {
        ratings.sort_unstable_by_key(|r| r.movie);
        UserState {
            version,
            ratings,
            folded: None,
        }
    }

    /// Every rating, by movie id.
    pub fn ratings(&self) -> &[UserRating] {
        &self.ratings
    }

    /// The embedding folded in by [`UserState::fold`] (empty before).
    pub fn embedding(&self) -> &[f32] {
        self.folded.as_ref().map_or(&[], |f| &f.embedding)
    }

    /// Whether `delta` (the ratings written after this state's version, as a snapshot at
    /// rating version `version` with `rating_count` ratings shows them) can bring this state
    /// up to date: the snapshot is not older than the state, and the ratings after applying
    /// it are as many as PostgreSQL counts. A state of another data set (an import restarts
    /// every version at 0) fails this, and is then rebuilt from all the ratings.
    pub fn agrees_with(&self, version: i64, rating_count: i64, delta: &[UserRating]) -> bool {
        let added = delta
            .iter()
            .filter(|r| self.position(r.movie).is_err())
            .count();
        version >= self.version && (self.ratings.len() + added) as i64 == rating_count
    }

    fn position(&self, movie: i32) -> Result<usize, usize> {
        self.ratings.binary_search_by_key(&movie, |r| r.movie)
    }

    /// Brings the ratings to `version` with `delta`, the ratings written after this state's
    /// version (new ones, and new values of rated movies); returns what changed.
    pub fn apply(&mut self, version: i64, delta: Vec<UserRating>) -> Vec<Change> {
        let mut changes = Vec::with_capacity(delta.len());
        for new in delta {
            match self.position(new.movie) {
                Ok(i) => {
                    let old = std::mem::replace(&mut self.ratings[i], new);
                    changes.push(Change {
                        old: Some(old),
                        new,
                    });
                }
                Err(i) => {
                    self.ratings.insert(i, new);
                    changes.push(Change { old: None, new });
                }
            }
        }
        self.version = version;
        changes
    }

    /// Brings the fold-in up to date with `model` after `changes` (what [`UserState::apply`]
    /// returned): kept when nothing changed, updated by the changes (each new rating adds its
    /// term to the equations, each replaced one takes its old term out first), or built from
    /// every rating held when the state has no fold-in of this model. Equal, to float
    /// precision, to folding the ratings in from scratch.
    pub fn fold(&mut self, model: &LoadedModel, changes: &[Change]) -> Fold {
        let rows = model.rows(&self.ratings);
        let recent = model.recent_rows(&self.ratings);
        let k = model.model.factors();
        if let Some(folded) = self
            .folded
            .as_mut()
            .filter(|f| f.model_version == model.version && f.embedding.len() == k)
        {
            if changes.is_empty() {
                return Fold::Kept;
            }
            let Folded {
                updates,
                equations,
                embedding,
                ..
            } = folded;
            if let Some(equations) = equations.as_mut()
                && equations.factors() == k
                && *updates as usize + changes.len() <= REFOLD_AFTER as usize
            {
                for change in changes {
                    if let Some(old) = change.old
                        && let Some(row) = model.index.get(&old.movie)
                    {
                        model.model.unrate(equations, *row, old.rating);
                    }
                    if let Some(row) = model.index.get(&change.new.movie) {
                        model.model.rate(equations, *row, change.new.rating);
                    }
                }
                *updates += changes.len() as u32;
                // Always true when the changes were what `apply` returned; checked anyway,
                // since a wrong count would silently fit a wrong regularisation.
                if equations.len() == rows.len() {
                    *embedding = model.embed(equations, &recent).to_vec();
                    return Fold::Updated;
                }
            }
        }
        let equations = model.model.equations(&rows);
        let embedding = model.embed(&equations, &recent).to_vec();
        self.folded = Some(Folded {
            model_version: model.version.clone(),
            updates: 0,
            equations: Some(equations),
            embedding,
        });
        Fold::Refolded
    }

    /// Whether the user rated anything after `at` (for the model strategies: since the model
    /// was trained).
    pub fn rated_since(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        self.ratings.iter().any(|r| r.rated_at > at)
    }

    /// The state as stored, little-endian: [`STATE_FORMAT`], the version (i64), the ratings
    /// ([`UserState::write_ratings`]), then whether a fold-in follows (u8) and if so its model
    /// version (u16 length, UTF-8), updates (u32), embedding (u16 length, f32s), and whether the
    /// equations follow (u8, see [`EQUATIONS_KEPT_FROM_RATINGS_PER_FACTOR`]) and if so them
    /// (`write_compact`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 8 * self.ratings.len());
        out.extend_from_slice(STATE_FORMAT);
        out.extend_from_slice(&self.version.to_le_bytes());
        self.write_ratings(&mut out);
        match &self.folded {
            None => out.push(0),
            Some(f) => {
                out.push(1);
                out.extend_from_slice(&(f.model_version.len() as u16).to_le_bytes());
                out.extend_from_slice(f.model_version.as_bytes());
                out.extend_from_slice(&f.updates.to_le_bytes());
                out.extend_from_slice(&(f.embedding.len() as u16).to_le_bytes());
                for v in &f.embedding {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                let kept = f
                    .equations
                    .as_ref()
                    .filter(|e| e.len() >= EQUATIONS_KEPT_FROM_RATINGS_PER_FACTOR * e.factors());
                match kept {
                    None => out.push(0),
                    Some(equations) => {
                        out.push(1);
                        equations.write_compact(&mut out);
                    }
                }
            }
        }
        out
    }

    /// A state [`UserState::encode`] wrote, or `None` for anything else (another format, an
    /// embedding cached by an older version of the service, a cut value): then there is no
    /// state to start from.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut input = Input(bytes.strip_prefix(STATE_FORMAT)?);
        let version = i64::from_le_bytes(input.take()?);
        let ratings = input.ratings()?;
        let folded = match input.take::<1>()? {
            [0] => None,
            [1] => {
                let len = u16::from_le_bytes(input.take()?) as usize;
                let model_version = std::str::from_utf8(input.bytes(len)?).ok()?.to_owned();
                let updates = u32::from_le_bytes(input.take()?);
                let k = u16::from_le_bytes(input.take()?) as usize;
                let embedding = input
                    .bytes(4 * k)?
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                let equations = match input.take::<1>()? {
                    [0] => None,
                    [1] => {
                        let (equations, rest) = UserEquations::read_compact(input.0)?;
                        input.0 = rest;
                        Some(equations)
                    }
                    _ => return None,
                };
                Some(Folded {
                    model_version,
                    updates,
                    equations,
                    embedding,
                })
            }
            _ => return None,
        };
        (input.0.is_empty()).then_some(UserState {
            version,
            ratings,
            folded,
        })
    }
}

impl UserState {
    /// The ratings, compactly: a user's ratings are a state's bulk, and the states share Redis
    /// with everything else (at the 25M shape, 16 bytes a rating made them two thirds of it).
    /// Their number (varint); a flags byte (bit 0: every rating is a whole number of half
    /// stars from 0.5 to 127.5, so one byte `2·rating` each, else an f32; bit 1: some time has
    /// a fraction of a second); the earliest time's whole seconds since 1970 (zigzag varint);
    /// then per rating, by ascending movie id: the gap from the previous id (varint; the first
    /// from 0, zigzag), the rating, the seconds after the earliest (varint), and with bit 1 the
    /// microseconds within that second (varint). About 7 bytes a rating, every value exact.
    fn write_ratings(&self, out: &mut Vec<u8>) {
        let half_stars = self.ratings.iter().all(|r| {
            let doubled = r.rating * 2.0;
            doubled.fract() == 0.0 && (1.0..=255.0).contains(&doubled)
        });
        let fractions = self
            .ratings
            .iter()
            .any(|r| r.rated_at.timestamp_subsec_micros() != 0);
        let earliest = self
            .ratings
            .iter()
            .map(|r| r.rated_at.timestamp())
            .min()
            .unwrap_or(0);
        write_varint(out, self.ratings.len() as u64);
        out.push(u8::from(half_stars) | u8::from(fractions) << 1);
        write_varint(out, zigzag(earliest));
        let mut previous = 0i64;
        for r in &self.ratings {
            write_varint(out, zigzag(r.movie as i64 - previous));
            previous = r.movie as i64;
            if half_stars {
                out.push((r.rating * 2.0) as u8);
            } else {
                out.extend_from_slice(&r.rating.to_le_bytes());
            }
            write_varint(out, (r.rated_at.timestamp() - earliest) as u64);
            if fractions {
                write_varint(out, r.rated_at.timestamp_subsec_micros() as u64);
            }
        }
    }
}

/// LEB128: 7 bits a byte, low first, the high bit set on every byte but the last.
fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Signed to unsigned, small magnitudes small: 0, -1, 1, -2... → 0, 1, 2, 3...
fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

/// The unread part of an encoded state.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let [byte] = self.take::<1>()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// Ratings [`UserState::write_ratings`] wrote: `None` unless well formed, movie ids
    /// strictly ascending.
    fn ratings(&mut self) -> Option<Vec<UserRating>> {
        let count = usize::try_from(self.varint()?).ok()?;
        let [flags] = self.take::<1>()?;
        let (half_stars, fractions) = (flags & 1 != 0, flags & 2 != 0);
        if flags > 3 {
            return None;
        }
        let earliest = unzigzag(self.varint()?);
        // At least three bytes a rating: never reserve for more than the input can hold.
        let mut ratings = Vec::with_capacity(count.min(self.0.len() / 3));
        let mut previous = 0i64;
        for _ in 0..count {
            let movie = previous.checked_add(unzigzag(self.varint()?))?;
            if !ratings.is_empty() && movie <= previous {
                return None;
            }
            previous = movie;
            let rating = if half_stars {
                f32::from(self.take::<1>()?[0]) / 2.0
            } else {
                f32::from_le_bytes(self.take()?)
            };
            let secs = earliest.checked_add(i64::try_from(self.varint()?).ok()?)?;
            let micros = if fractions { self.varint()? } else { 0 };
            let nanos = u32::try_from(micros).ok().filter(|m| *m < 1_000_000)? * 1000;
            ratings.push(UserRating {
                movie: i32::try_from(movie).ok()?,
                rating,
                rated_at: chrono::DateTime::from_timestamp(secs, nanos)?,
            });
        }
        Some(ratings)
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
}

/// Everything a model strategy scores with, taken from a folded [`UserState`].
#[derive(Clone)]
pub struct Inputs {
    /// The user's ratings as (factor row, rating); not empty.
    pub rows: Vec<(u32, f32)>,
    /// The ratings made since the model was trained.
    pub recent: Vec<(u32, f32)>,
    /// The user's embedding.
    pub embedding: Vec<f32>,
    /// For `hybrid`: the user's long-term genre weights (see [`genre_weights`]).
    pub long_term: Option<[f64; 32]>,
    /// How many to recommend.
    pub n: usize,
}

/// What [`score`] found.
pub struct Scored {
    /// The top movies as (factor row, score), best first.
    pub top: Vec<(u32, f32)>,
    /// For each, the liked movie (factor row) it is closest to.
    pub because: Vec<Option<u32>>,
}

/// What the model strategies rank a folded `state` by (see [`UserState::fold`]): `None` for
/// a user who rated no movie the model knows (cold start: the caller answers without the
/// model). `hybrid` adds genre weights from the state's ratings and `catalogue`.
pub fn inputs(
    model: &LoadedModel,
    catalogue: &Catalogue,
    state: &UserState,
    strategy: Strategy,
    n: usize,
) -> Option<Inputs> {
    let rows = model.rows(state.ratings());
    if rows.is_empty() {
        return None;
    }
    Some(Inputs {
        recent: model.recent_rows(state.ratings()),
        rows,
        embedding: state.embedding().to_vec(),
        long_term: matches!(strategy, Strategy::Hybrid)
            .then(|| genre_weights(state.ratings(), catalogue)),
        n,
    })
}

/// Scores every movie against the user's embedding (blended with EASE's scores of the user's
/// ratings when the model has EASE, see [`LoadedModel::scores`]), plus, for `hybrid`, a genre
/// term:
/// long-term favourites and, weighted more, the genres rated since the model was trained, so a
/// fresh taste shows in the very next recommendations. Seen movies are excluded. Pure and
/// CPU-bound: run it on the blocking pool.
pub fn score(model: &LoadedModel, inputs: &Inputs) -> Scored {
    select(model, inputs, &score_all(model, inputs))
}

/// Every movie's score, as [`select`] takes it.
pub enum AllScores {
    /// The exact scores (the blend with EASE standardises over all of them).
    Exact(ndarray::Array1<f32>),
    /// ALS alone: every score approximated through 8-bit factors, from which [`select`]
    /// finds the exact top N ([`recommender::screen`]), with the genre term of each movie.
    Screened {
        /// The approximate scores, genre term included.
        approximate: recommender::screen::Approximate,
        /// The genre term by movie, for `hybrid`.
        genre_term: Option<Vec<f32>>,
    },
}

/// Every movie's score (the first half of [`score`]).
pub fn score_all(model: &LoadedModel, inputs: &Inputs) -> AllScores {
    let genre_term = genre_term(model, inputs);
    let embedding = ndarray::ArrayView1::from(&inputs.embedding);
    if model.ease.is_none()
        && let Some(approximate) = model.model.approximate(embedding, genre_term.as_deref())
    {
        return AllScores::Screened {
            approximate,
            genre_term,
        };
    }
    let mut scores = model.scores(embedding, &inputs.rows);
    if let Some(term) = &genre_term {
        for (score, term) in scores.iter_mut().zip(term) {
            *score += term;
        }
    }
    AllScores::Exact(scores)
}

/// `hybrid`'s genre term of every movie (by factor row), `None` for the other strategies:
/// computed once per distinct genre set, then given to each movie by its set.
fn genre_term(model: &LoadedModel, inputs: &Inputs) -> Option<Vec<f32>> {
    let long_term = inputs.long_term.as_ref()?;
    let recent = recent_genre_weights(model, &inputs.recent);
    let terms: Vec<f32> = model
        .item_genres
        .sets
        .iter()
        .map(|genres| {
            (LONG_TERM_GENRE_WEIGHT * strongest(*genres, long_term)
                + RECENT_GENRE_WEIGHT * strongest(*genres, &recent)) as f32
        })
        .collect();
    let rows = model.model.n_items();
    let term = |row: usize| {
        model
            .item_genres
            .of_row
            .get(row)
            .map_or(0.0, |set| terms[*set as usize])
    };
    Some((0..rows).map(term).collect())
}

/// The best `inputs.n` of `scores` without the seen movies, each with its explanation (the
/// second half of [`score`]).
pub fn select(model: &LoadedModel, inputs: &Inputs, scores: &AllScores) -> Scored {
    let seen: Vec<u32> = inputs.rows.iter().map(|(row, _)| *row).collect();
    let top = match scores {
        AllScores::Exact(scores) => ItemModel::top_n(scores, &seen, inputs.n),
        AllScores::Screened {
            approximate,
            genre_term,
        } => model.model.screened_top_n(
            approximate,
            ndarray::ArrayView1::from(&inputs.embedding),
            genre_term.as_deref(),
            &seen,
            inputs.n,
        ),
    };

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
    Scored { top, because }
}

/// The picks of `scored` as the cache stores them (see [`crate::picks`]): each movie with
/// its score and the liked movie explaining it, leaving out a movie `catalogue` lacks (as a
/// movie PostgreSQL lacks was) and an explanation by one.
pub fn picks(model: &LoadedModel, catalogue: &Catalogue, scored: &Scored) -> Vec<Pick> {
    scored
        .top
        .iter()
        .zip(&scored.because)
        .filter_map(|((row, score), because)| {
            let id = model.item_ids[*row as usize];
            catalogue.get(id)?;
            let liked = because
                .map(|row| model.item_ids[row as usize])
                .filter(|liked| catalogue.get(*liked).is_some());
            Some(Pick::new(id, *score, liked))
        })
        .collect()
}

/// The largest weight among a movie's genres (a bit set of genre ids). Visits only the set
/// bits (a movie has one to three genres): this runs for every distinct genre set of the
/// catalogue on every `hybrid` recommendation.
fn strongest(mut genres: u32, weights: &[f64; 32]) -> f64 {
    let mut best = 0.0f64;
    while genres != 0 {
        best = best.max(weights[genres.trailing_zeros() as usize]);
        genres &= genres - 1;
    }
    best
}

/// The user's genre affinities by genre id (bit), the strongest 1.0: per genre, the sum over
/// the user's ratings of movies in it of how far above 2.5 they are (dislikes count 0), over
/// every rated movie of the catalogue, in the model or not. The same sums as
/// `Db::genre_affinities`, which the `genre` strategy and profiles read, made from the state's
/// ratings instead of a query.
pub fn genre_weights(ratings: &[UserRating], catalogue: &Catalogue) -> [f64; 32] {
    let mut weights = [0.0; 32];
    for rating in ratings {
        let Some(movie) = catalogue.get(rating.movie) else {
            continue;
        };
        let liking = (rating.rating as f64 - 2.5).max(0.0);
        for (bit, weight) in weights.iter_mut().enumerate() {
            if movie.genre_bits & (1 << bit) != 0 {
                *weight += liking;
            }
        }
    }
    normalised(weights)
}

/// A user's `k` favourite genres by name, as `Db::profile` lists them: the genres whose
/// affinity (see [`genre_weights`], not normalised) is positive, strongest first, then by how
/// many of the user's movies are in it, then by name. Made from the state's ratings, so a
/// profile after a rating needs no aggregation over the user's history in PostgreSQL. Genres
/// with an id of 32 or more are not counted (MovieLens has 19).
pub fn favourite_genres(
    ratings: &[UserRating],
    catalogue: &Catalogue,
    genres: &[shared::dto::Genre],
    k: usize,
) -> Vec<String> {
    let mut weight = [0.0f64; 32];
    let mut count = [0u32; 32];
    for rating in ratings {
        let Some(movie) = catalogue.get(rating.movie) else {
            continue;
        };
        let liking = (rating.rating as f64 - 2.5).max(0.0);
        for bit in 0..32 {
            if movie.genre_bits & (1 << bit) != 0 {
                weight[bit] += liking;
                count[bit] += 1;
            }
        }
    }
    let mut ranked: Vec<(&str, f64, u32)> = genres
        .iter()
        .filter_map(|genre| {
            let bit = usize::try_from(genre.id).ok().filter(|bit| *bit < 32)?;
            (weight[bit] > 0.0).then_some((genre.name.as_str(), weight[bit], count[bit]))
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(b.2.cmp(&a.2))
            .then_with(|| a.0.cmp(b.0))
    });
    ranked
        .into_iter()
        .take(k)
        .map(|(name, ..)| name.to_owned())
        .collect()
}

/// `weights` divided by the strongest, unless none is positive.
fn normalised(mut weights: [f64; 32]) -> [f64; 32] {
    let strongest = weights.iter().copied().fold(0.0, f64::max);
    if strongest > 0.0 {
        weights.iter_mut().for_each(|w| *w /= strongest);
    }
    weights
}

/// Genre affinities from the ratings made since training only, the strongest 1.0.
fn recent_genre_weights(model: &LoadedModel, recent: &[(u32, f32)]) -> [f64; 32] {
    let mut weights = [0.0; 32];
    for (row, rating) in recent {
        let genres = model.item_genres.of(*row as usize);
        for (bit, weight) in weights.iter_mut().enumerate() {
            if genres & (1 << bit) != 0 {
                *weight += (*rating as f64 - 2.5).max(0.0);
            }
        }
    }
    normalised(weights)
}

/// A score as responses give it: to four decimal places.
pub fn rounded(score: f64) -> f64 {
    (score * 10_000.0).round() / 10_000.0
}

fn item(movie: Movie, score: f64, reason: String) -> Recommendation {
    Recommendation {
        movie_id: movie.id,
        title: movie.title,
        genres: movie.genres,
        score: rounded(score),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::CatalogueMovie;
    use crate::model::ItemGenres;
    use chrono::{DateTime, Duration, Utc};
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use recommender::als::AlsParams;

    #[test]
    fn strongest_is_the_largest_weight_among_the_set_bits() {
        let mut weights = [0.0; 32];
        weights[1] = 0.25;
        weights[3] = 0.75;
        weights[31] = 0.5;
        assert_eq!(strongest(0, &weights), 0.0);
        assert_eq!(strongest(0b10, &weights), 0.25);
        assert_eq!(strongest(0b1010, &weights), 0.75);
        assert_eq!(strongest(1 << 31 | 0b10, &weights), 0.5);
        assert_eq!(strongest(u32::MAX, &weights), 0.75);
    }

    /// Movie ids are 10, 20, … (row i is movie 10·(i + 1)); movie 5 is in the catalogue but
    /// not in the model.
    fn model(factors: usize, trained_at: DateTime<Utc>) -> LoadedModel {
        let mut rng = ChaCha8Rng::seed_from_u64(factors as u64);
        let n_items = 80;
        let items =
            Array2::from_shape_simple_fn((n_items, factors), || rng.random_range(-0.3f32..0.3));
        let params = AlsParams {
            factors,
            ..AlsParams::default()
        };
        let ids = (1..=n_items as i32).map(|i| i * 10).collect();
        let mut model = LoadedModel::new("als-test".into(), params, ids, items, trained_at);
        model.item_genres = ItemGenres::new((0..n_items as u32).map(|i| 1 << (1 + i % 3)));
        model
    }

    #[test]
    fn the_genre_term_by_set_is_the_term_by_movie() {
        let mut model = model(8, Utc::now());
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let genres: Vec<u32> = (0..model.item_ids.len())
            .map(|_| (0..3).fold(0, |set, _| set | 1 << rng.random_range(0..20)))
            .collect();
        model.item_genres = ItemGenres::new(genres.iter().copied());
        assert!(model.item_genres.sets.len() < genres.len());
        let mut long_term = [0.0; 32];
        long_term
            .iter_mut()
            .for_each(|w| *w = rng.random_range(0.0..1.0));
        let inputs = Inputs {
            rows: vec![(0, 5.0), (7, 1.0)],
            recent: vec![(3, 4.0)],
            embedding: vec![0.1; 8],
            long_term: Some(long_term),
            n: 10,
        };
        let without = Inputs {
            long_term: None,
            ..inputs.clone()
        };
        let recent = recent_genre_weights(&model, &inputs.recent);
        let expected: Vec<f32> = genres
            .iter()
            .map(|set| {
                (LONG_TERM_GENRE_WEIGHT * strongest(*set, &long_term)
                    + RECENT_GENRE_WEIGHT * strongest(*set, &recent)) as f32
            })
            .collect();
        assert_eq!(genre_term(&model, &inputs), Some(expected));
        assert_eq!(genre_term(&model, &without), None);
    }

    #[test]
    fn the_top_found_through_8_bit_factors_is_the_full_products_top() {
        let mut model = model(8, Utc::now());
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        model.item_genres = ItemGenres::new((0..80).map(|_| 1u32 << rng.random_range(0..20)));
        for round in 0..50 {
            let mut long_term = [0.0; 32];
            long_term
                .iter_mut()
                .for_each(|w| *w = rng.random_range(0.0..1.0));
            let inputs = Inputs {
                rows: (0..rng.random_range(1..40))
                    .map(|_| (rng.random_range(0..80), 4.0))
                    .collect(),
                recent: vec![(rng.random_range(0..80), 5.0)],
                embedding: (0..8).map(|_| rng.random_range(-1.0..1.0)).collect(),
                long_term: rng.random_bool(0.5).then_some(long_term),
                n: [1, 10, 100][round % 3],
            };
            let scores = score_all(&model, &inputs);
            assert!(matches!(scores, AllScores::Screened { .. }));
            let mut full = model.scores(ndarray::ArrayView1::from(&inputs.embedding), &inputs.rows);
            if let Some(term) = genre_term(&model, &inputs) {
                full += &ndarray::Array1::from(term);
            }
            let seen: Vec<u32> = inputs.rows.iter().map(|(row, _)| *row).collect();
            assert_eq!(
                select(&model, &inputs, &scores).top,
                ItemModel::top_n(&full, &seen, inputs.n),
                "round {round}"
            );
        }
    }

    fn catalogue() -> Catalogue {
        let movie = |id: i32, genre_ids: Vec<i16>| CatalogueMovie {
            id,
            title: format!("Movie {id}"),
            genres: genre_ids.iter().map(|g| format!("Genre {g}")).collect(),
            genre_ids,
        };
        let mut movies: Vec<CatalogueMovie> = (1..=40)
            .map(|i| movie(i * 10, vec![(1 + (i - 1) % 3) as i16]))
            .collect();
        movies.push(movie(5, vec![1, 3]));
        Catalogue::new(7, movies)
    }

    fn at(base: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
        base + Duration::seconds(secs)
    }

    fn rating(movie: i32, rating: f32, rated_at: DateTime<Utc>) -> UserRating {
        UserRating {
            movie,
            rating,
            rated_at,
        }
    }

    fn relative_gap(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let gap = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        gap / norm(a).max(norm(b)).max(1.0)
    }

    /// The state `ratings` would be folded in from nothing cached.
    fn from_scratch(model: &LoadedModel, version: i64, ratings: &[UserRating]) -> UserState {
        let mut state = UserState::from_ratings(version, ratings.to_vec());
        assert_eq!(state.fold(model, &[]), Fold::Refolded);
        state
    }

    #[test]
    fn states_round_trip_and_anything_else_is_no_state() {
        let trained = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let model = model(16, trained);
        let ratings = vec![
            rating(30, 4.5, at(trained, -100)),
            rating(10, 2.0, at(trained, 5) + Duration::microseconds(17)),
            rating(5, 3.0, at(trained, -3)),
        ];
        let bare = UserState::from_ratings(12, ratings.clone());
        assert_eq!(UserState::decode(&bare.encode()), Some(bare.clone()));
        let folded = from_scratch(&model, 12, &ratings);
        let decoded = UserState::decode(&folded.encode()).unwrap();
        assert_eq!(decoded.version, 12);
        assert_eq!(decoded.ratings(), folded.ratings(), "times kept to the µs");
        assert_eq!(decoded.embedding(), folded.embedding());

        let encoded = folded.encode();
        assert!(UserState::decode(&encoded[..encoded.len() - 1]).is_none());
        let mut longer = encoded.clone();
        longer.push(0);
        assert!(UserState::decode(&longer).is_none());
        let old_embedding: Vec<u8> = folded
            .embedding()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert!(
            UserState::decode(&old_embedding).is_none(),
            "an embedding cached by the previous version is no state"
        );
    }

    /// Property: runs of new and replaced ratings (some of movies the model lacks, some
    /// before and some after training), each applied to the state as stored and read back,
    /// give the embedding folded in from scratch, and the same recommendations. States of
    /// users with at least 2·k ratings keep their equations and are updated; the others are
    /// rebuilt from their ratings.
    #[test]
    fn a_state_updated_by_deltas_equals_one_folded_from_scratch() {
        let trained = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let catalogue = catalogue();
        let (mut updated, mut refolded) = (0, 0);
        for seed in 0..12u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let model = model([4, 8, 16][seed as usize % 3], trained);
            let kept_from = EQUATIONS_KEPT_FROM_RATINGS_PER_FACTOR * model.model.factors();
            let mut version = 0i64;
            let mut ratings: Vec<UserRating> = (0..rng.random_range(1..40))
                .map(|i| rating(10 * (1 + i * 2), 4.0, at(trained, -1000 + i as i64)))
                .collect();
            let mut stored = from_scratch(&model, version, &ratings).encode();
            for step in 0..30 {
                let movie = match rng.random_range(0..10) {
                    0 => 5,
                    _ => 10 * rng.random_range(1..=80),
                };
                let new = rating(
                    movie,
                    rng.random_range(1..=10u8) as f32 / 2.0,
                    at(trained, rng.random_range(-50..500)),
                );
                match ratings.iter_mut().find(|r| r.movie == movie) {
                    Some(held) => *held = new,
                    None => ratings.push(new),
                }
                version += 1;
                let mut state = UserState::decode(&stored).expect("stored state");
                let had = model.rows(state.ratings()).len();
                assert!(state.agrees_with(version, ratings.len() as i64, &[new]));
                let changes = state.apply(version, vec![new]);
                let fold = state.fold(&model, &changes);
                if had >= kept_from {
                    assert_eq!(fold, Fold::Updated, "seed {seed}, step {step}");
                    updated += 1;
                } else {
                    assert_eq!(fold, Fold::Refolded, "seed {seed}, step {step}");
                    refolded += 1;
                }
                let fresh = from_scratch(&model, version, &ratings);
                assert_eq!(state.ratings(), fresh.ratings());
                let gap = relative_gap(state.embedding(), fresh.embedding());
                assert!(gap < 1e-4, "seed {seed}, step {step}: {gap} apart");
                // The same picks, up to ties: the same scores at every position.
                let top = |s: &UserState| {
                    inputs(&model, &catalogue, s, Strategy::Hybrid, 5)
                        .map_or(vec![], |i| score(&model, &i).top)
                };
                let (got, want) = (top(&state), top(&fresh));
                assert_eq!(got.len(), want.len());
                for ((_, a), (_, b)) in got.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-3, "seed {seed}, step {step}: {a} vs {b}");
                }
                stored = state.encode();
            }
        }
        assert!(
            updated > 100 && refolded > 50,
            "{updated} updated, {refolded} rebuilt"
        );
    }

    #[test]
    fn ratings_are_stored_compactly_and_exactly() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for round in 0..300 {
            let half_stars = round % 3 != 0;
            let fractions = round % 4 == 0;
            let mut movies: Vec<i32> = (0..rng.random_range(0..200))
                .map(|_| rng.random_range(-5..200_000))
                .collect();
            movies.sort_unstable();
            movies.dedup();
            let ratings: Vec<UserRating> = movies
                .iter()
                .map(|&movie| {
                    let rating = if half_stars {
                        rng.random_range(1..=10) as f32 / 2.0
                    } else {
                        rng.random_range(0.0..5.0)
                    };
                    let secs = rng.random_range(-1_000_000i64..2_000_000_000);
                    let micros = if fractions {
                        rng.random_range(0..1_000_000)
                    } else {
                        0
                    };
                    let rated_at = DateTime::from_timestamp(secs, micros * 1000).unwrap();
                    self::rating(movie, rating, rated_at)
                })
                .collect();
            let state = UserState::from_ratings(round, ratings.clone());
            let encoded = state.encode();
            assert_eq!(UserState::decode(&encoded), Some(state), "round {round}");
            if half_stars && !fractions && ratings.len() > 20 {
                // A gap of two bytes, a rating, four bytes of time: the old format took 16.
                assert!(encoded.len() < 32 + 8 * ratings.len(), "{}", encoded.len());
            }
        }
    }

    #[test]
    fn only_heavy_raters_keep_their_equations() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let model = model(8, now);
        let many: Vec<UserRating> = (1..=16).map(|i| rating(i * 10, 3.0, now)).collect();
        let few = &many[..15];
        let heavy = from_scratch(&model, 1, &many).encode();
        let light = from_scratch(&model, 1, few).encode();
        let matrix = 4 * 8 * 9 / 2;
        assert!(
            heavy.len() > light.len() + matrix,
            "{} vs {}",
            heavy.len(),
            light.len()
        );
        let mut light = UserState::decode(&light).unwrap();
        assert_eq!(light.fold(&model, &[]), Fold::Kept, "the embedding is kept");
        let changes = light.apply(2, vec![rating(300, 5.0, now)]);
        assert_eq!(light.fold(&model, &changes), Fold::Refolded);
    }

    #[test]
    fn nothing_new_keeps_the_fold_and_another_model_refolds() {
        let trained = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let model = model(8, trained);
        let ratings = vec![rating(10, 4.0, trained), rating(20, 1.0, trained)];
        let mut state = from_scratch(&model, 3, &ratings);
        assert_eq!(state.fold(&model, &[]), Fold::Kept);
        let mut retrained = self::model(8, at(trained, 60));
        retrained.version = "als-other".into();
        assert_eq!(state.fold(&retrained, &[]), Fold::Refolded);
        assert_eq!(state.fold(&retrained, &[]), Fold::Kept);
    }

    #[test]
    fn a_state_agrees_only_with_snapshots_it_can_reach() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let state = UserState::from_ratings(5, vec![rating(10, 4.0, now), rating(20, 3.0, now)]);
        let replaced = [rating(10, 1.0, now)];
        let added = [rating(30, 1.0, now)];
        assert!(state.agrees_with(5, 2, &[]));
        assert!(state.agrees_with(6, 2, &replaced));
        assert!(state.agrees_with(6, 3, &added));
        assert!(!state.agrees_with(6, 2, &added), "a rating missing");
        assert!(
            !state.agrees_with(2, 2, &[]),
            "a snapshot older than the state: another data set"
        );
    }

    #[test]
    fn applying_replaces_and_inserts_in_movie_order() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut state =
            UserState::from_ratings(1, vec![rating(30, 4.0, now), rating(10, 2.0, now)]);
        let changes = state.apply(3, vec![rating(20, 5.0, now), rating(30, 1.0, now)]);
        assert_eq!(state.version, 3);
        let movies: Vec<i32> = state.ratings().iter().map(|r| r.movie).collect();
        assert_eq!(movies, [10, 20, 30]);
        assert_eq!(changes[0].old, None);
        assert_eq!(changes[1].old, Some(rating(30, 4.0, now)));
        assert_eq!(state.ratings()[2].rating, 1.0);
    }

    #[test]
    fn genre_weights_sum_likings_over_every_rated_movie() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        // Movie 10: genre 1; 20: genre 2; 5 (not in the model): genres 1 and 3; 999: unknown.
        let ratings = [
            rating(10, 4.5, now),
            rating(20, 2.0, now),
            rating(5, 3.5, now),
            rating(999, 5.0, now),
        ];
        let weights = genre_weights(&ratings, &catalogue());
        assert_eq!(weights[1], 1.0, "2.0 + 1.0, the strongest");
        assert_eq!(weights[3], 1.0 / 3.0);
        assert_eq!(weights[2], 0.0, "a dislike counts nothing");
        assert_eq!(genre_weights(&[], &catalogue()), [0.0; 32]);
    }

    #[test]
    fn picks_keep_the_movies_the_catalogue_has() {
        let model = model(8, DateTime::from_timestamp(0, 0).unwrap());
        let scored = Scored {
            top: vec![(0, 0.123456), (1, 0.1)],
            because: vec![Some(2), None],
        };
        let picks = picks(&model, &catalogue(), &scored);
        assert_eq!(
            picks,
            [Pick::new(10, 0.123456, Some(30)), Pick::new(20, 0.1, None)]
        );
        let gone = Catalogue::new(
            7,
            vec![CatalogueMovie {
                id: 20,
                title: "Only".into(),
                genres: vec![],
                genre_ids: vec![],
            }],
        );
        assert_eq!(
            super::picks(&model, &gone, &scored),
            [Pick::new(20, 0.1, None)],
            "unknown movies left out"
        );
    }
}
